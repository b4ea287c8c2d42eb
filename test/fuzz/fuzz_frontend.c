/* libFuzzer target: the whole front end (lexer, parser, checks) on
 * arbitrary bytes. Any outcome but a crash, a sanitizer report, a leak or a
 * silent rejection is fine. Fault injection rides along: the first input
 * byte, when it is below 32, makes that allocation fail. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../compiler/compiler.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  long fail_at = size > 0 && data[0] < 32 ? data[0] : 0;
  char *text = malloc(size + 1);
  if (!text)
    return 0;
  memcpy(text, data, size);
  text[size] = 0;
  FrontEnd fe = {0};
  fe.arena.fail_at = fail_at;
  Diag d = {.out = NULL};
  bool ok = fe_run(&fe, "fuzz", text, size, FE_STOP_CHECK, &d);
  if (!ok && d.errors == 0)
    abort(); /* a rejection must say why */
  if (ok) {
    FILE *null = fopen("/dev/null", "w");
    if (null) {
      fe_print_ast(null, &fe.file, NULL);
      fclose(null);
    }
  }
  fe_free(&fe);
  free(text);
  return 0;
}
