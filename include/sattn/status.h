/* sattn/status.h: the result codes of the runtime and the reference.
 *
 * Every fallible function returns one of these instead of aborting, so a
 * host program can report the failure in its own way. */
#ifndef SATTN_STATUS_H
#define SATTN_STATUS_H

/* X(enum, description). SA_OK comes first so that it is 0. Kernels and the
 * reference return the first four; the compiler API (sattn/sattn.h) adds
 * the next four, always with a diagnostic that says more, and the
 * accelerator runtime (sattn/accel.h) SA_ERR_BAD_STREAM, the CUDA runtime
 * (sattn/cuda.h) SA_ERR_DEVICE. */
#define SA_STATUSES(X)                                  \
  X(SA_OK, "ok")                                        \
  X(SA_ERR_INVALID_ARGUMENT, "invalid argument")        \
  X(SA_ERR_OUT_OF_MEMORY, "out of memory")              \
  X(SA_ERR_SHAPE, "shape mismatch")                     \
  X(SA_ERR_INVALID_SPEC, "invalid spec or IR")          \
  X(SA_ERR_UNSUPPORTED, "not supported by the target")  \
  X(SA_ERR_NOT_FOUND, "no such kernel")                 \
  X(SA_ERR_IO, "cannot read or write a file")           \
  X(SA_ERR_BAD_STREAM, "malformed accelerator stream") \
  X(SA_ERR_DEVICE, "the GPU or its driver failed")

typedef enum {
#define X(e, s) e,
  SA_STATUSES(X)
#undef X
  SA_STATUS_COUNT
} SaStatus;

/* A short lower-case description of `st` ("unknown status" for a value
 * outside the enum). The string is static: never free it. Thread-safe. */
const char *sa_status_name(SaStatus st);

#endif
