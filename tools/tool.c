/* tool.c: input helpers of the command-line tools. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "tool.h"

char *tool_read_file(const char *path, size_t *out_len) {
  FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "error: cannot open '%s': %s\n", path, strerror(errno));
    return NULL;
  }
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  while (buf) {
    n += fread(buf + n, 1, cap - n - 1, f);
    if (n < cap - 1)
      break;
    char *g = realloc(buf, cap * 2);
    if (!g) {
      free(buf);
      buf = NULL;
      break;
    }
    buf = g;
    cap *= 2;
  }
  bool bad = !buf || ferror(f);
  if (f != stdin)
    fclose(f);
  if (bad) {
    fprintf(stderr, "error: cannot read '%s'%s\n", path, buf ? "" : ": out of memory");
    free(buf);
    return NULL;
  }
  buf[n] = 0;
  *out_len = n;
  return buf;
}

int tool_for_each_part(const char *text, size_t len, const char *marker, FILE *out,
                      int (*fn)(const char *part, size_t n, void *ud), void *ud) {
  char *part = malloc(len + 1);
  if (!part) {
    fputs("error: out of memory\n", stderr);
    return 1;
  }
  size_t mlen = strlen(marker), start = 0, line = 0, start_line = 0;
  int rc = 0;
  for (size_t i = 0; i <= len; i++) {
    bool sep = i < len && (i == 0 || text[i - 1] == '\n') && strncmp(text + i, marker, mlen) == 0;
    if (!sep && i < len) {
      line += text[i] == '\n';
      continue;
    }
    /* The padding never exceeds the text before the part, so len + 1 bytes hold it. */
    size_t n = 0;
    for (size_t l = 0; l < start_line; l++)
      part[n++] = '\n';
    memcpy(part + n, text + start, i - start);
    n += i - start;
    part[n] = 0;
    if (start > 0)
      fprintf(out, "%s\n", marker);
    rc |= fn(part, n, ud);
    if (i == len)
      break;
    while (i < len && text[i] != '\n')
      i++;
    line++;
    start = i + 1;
    start_line = line;
  }
  free(part);
  return rc;
}
