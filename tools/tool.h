/* tool.h: what the command-line tools share beyond the public API: reading
 * a whole input and splitting it into parts (--split-input-file). */
#ifndef SATTN_TOOL_H
#define SATTN_TOOL_H

#include <stddef.h>
#include <stdio.h>

/* Reads a whole file ("-" is standard input) into malloc'ed memory with a
 * terminating NUL. NULL with `error: cannot open ...` on stderr. */
char *tool_read_file(const char *path, size_t *out_len);

/* Calls fn on each part of text between lines that start with `marker`
 * (`// -----` for IR, `# -----` for specs), as a NUL-terminated copy padded
 * with the newlines before it, so that messages keep the file's line
 * numbers; prints the marker line to out between parts. Returns the OR of
 * fn's results, or 1 when out of memory. */
int tool_for_each_part(const char *text, size_t len, const char *marker, FILE *out,
                       int (*fn)(const char *part, size_t n, void *ud), void *ud);

#endif
