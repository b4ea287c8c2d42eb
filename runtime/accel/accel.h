/* accel.h: the accelerator runtime's internal header: the program a
 * validated stream becomes, and the stream writer the compiler uses (one
 * implementation of the format for both sides). */
#ifndef SATTN_ACCEL_INTERNAL_H
#define SATTN_ACCEL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "isa.h"
#include "sattn/accel.h"

struct SaAccelProgram {
  char name[64];
  int64_t header[H_COUNT], mask[M_COUNT];
  uint64_t config_hash;
  int64_t *globals;
  SaBlockPair *blocks;
  int64_t *offsets;
  size_t n_offsets;
  uint64_t *code;
  size_t n_code;
  bool dynamic; /* has the DYNAMIC section */
  int64_t dyn[D_COUNT];
  SaSpec spec; /* the layer, pointing into the arrays above */
};

/* What a stream holds, for acc_stream_write. */
typedef struct {
  const char *name;
  uint64_t config_hash;
  const int64_t *header; /* H_COUNT */
  const int64_t *mask;   /* M_COUNT */
  const int64_t *globals;
  int n_globals;
  const SaBlockPair *blocks;
  int n_blocks;
  const int64_t *offsets;
  size_t n_offsets;
  const uint64_t *code;
  size_t n_code;
  const int64_t *dynamic; /* D_COUNT fields, or NULL for static patterns */
} AccStreamParts;

/* The .sacc bytes (malloc'ed; *len set), or NULL when out of memory. */
unsigned char *acc_stream_write(const AccStreamParts *s, size_t *len);

const char *acc_op_name(AccOpcode op);

/* The query rows one tile may hold on machine c at head dimension d and
 * in_bytes per stored element: the array's rows, fewer when the Q buffer
 * (the rows at storage width) or the output buffer (their fp32
 * accumulators) holds fewer. 0 when not even one row fits. */
int64_t acc_tile_rows(const SaAccelConfig *c, int64_t d, int64_t in_bytes);

/* Writes a reason to err (when not NULL) and returns st. */
SaStatus acc_fail(char *err, size_t cap, SaStatus st, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
