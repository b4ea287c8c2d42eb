/* The small queries declared at the bottom of sattn/spec.h. */
#include "sattn/spec.h"

#include <stddef.h>

const char *sa_dtype_name(SaDtype t) {
  switch (t) {
#define X(e, s, b, f) \
  case e:             \
    return s;
    SA_DTYPES(X)
#undef X
  case DT_COUNT:
    break;
  }
  return "unknown";
}

int sa_dtype_bits(SaDtype t) {
  switch (t) {
#define X(e, s, b, f) \
  case e:             \
    return b;
    SA_DTYPES(X)
#undef X
  case DT_COUNT:
    break;
  }
  return 0;
}

bool sa_dtype_is_float(SaDtype t) {
  switch (t) {
#define X(e, s, b, f) \
  case e:             \
    return f;
    SA_DTYPES(X)
#undef X
  case DT_COUNT:
    break;
  }
  return false;
}

/* Global tokens alone do not restrict anything: with no local term L is
 * true everywhere, so only the causal and local terms count here. */
bool sa_spec_has_static_mask(const SaSpec *s) {
  if (s == NULL)
    return false;
  return s->causal || s->has_window || s->has_window2d || s->block > 0 ||
         s->has_bigbird;
}

/* Head pruning is left out: it removes whole heads, not scores of a row.
 * Progressive quantization changes scores but never which ones survive. */
bool sa_spec_has_dynamic_selection(const SaSpec *s) {
  if (s == NULL)
    return false;
  return s->has_predict || s->n_filter_rounds > 0 || s->nm_m > 0 ||
         s->token_keep < 1.0 || s->value_keep < 1.0;
}
