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
