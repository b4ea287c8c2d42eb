/* Names of the status codes, from the table in sattn/status.h. */
#include "sattn/status.h"

const char *sa_status_name(SaStatus st) {
  switch (st) {
#define X(e, s) \
  case e:       \
    return s;
    SA_STATUSES(X)
#undef X
  case SA_STATUS_COUNT:
    break;
  }
  return "unknown status";
}
