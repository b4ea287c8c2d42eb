/* machine.h: the state of the accelerator model while it runs a program,
 * shared by the pass engine (exec.c, static patterns) and the row engine
 * (rows.c, dynamic stages). */
#ifndef SATTN_ACCEL_MACHINE_H
#define SATTN_ACCEL_MACHINE_H

#include "../reference/ref.h"
#include "accel.h"

enum { EXP_SEGMENTS = 64 };

/* The hardware's constant table: 2^(k/64) for k = 0..64, in fp32. */
typedef struct {
  float t[EXP_SEGMENTS + 1];
} ExpTable;

void exp_table_init(ExpTable *e);
/* 2^x for x <= 0, from the table with linear interpolation. */
float exp2_table(const ExpTable *e, float x);

/* Planes of a key row that DRAM traffic is counted for, once per head in
 * the row engine: K, V, SpAtten's MSB and LSB planes of K, and the low-bit
 * K of each selection source (DSA's projection, Energon's rounds). */
enum { PL_K, PL_V, PL_MSB, PL_LSB, PL_LOW, PL_COUNT = PL_LOW + 1 + SA_MAX_FILTER_ROUNDS };

typedef struct Rows Rows;

typedef struct {
  const SaAccelProgram *p;
  const SaAccelConfig *c;
  int64_t H, KVH, S, D, R, C, G;
  size_t in_bytes, out_bytes;
  float scale_log2e; /* scores in base-2 units: scale * log2(e) */
  ExpTable exp;
  /* inputs of the current batch entry, rounded to the storage type */
  const float *q, *k, *v;
  float *o;
  int64_t b, h; /* the batch entry and the head register */
  /* per head: rows already finished by the global row */
  bool *grown;
  /* the tile */
  int64_t row0, rows;
  unsigned char *seen; /* rows x S bits: pairs scored in this tile */
  float *m, *l, *acc;  /* per tile row: running max (base 2), sum, weighted V */
  /* the pass */
  int64_t *keys; /* rows x cols key per PE, -1 when idle */
  float *score;  /* rows x cols */
  int64_t ncols;
  bool global_pass;
  /* K/V buffer: resident[j] is the fetch stamp of key row j, FIFO eviction */
  int64_t *resident, capacity, fetched;
  Rows *rows_engine; /* NULL for programs without dynamic stages */
  /* counters */
  int64_t array_cycles, global_cycles;
  SaAccelClassStats cls[CL_COUNT];
  int64_t pairs, engine_rows, requantized_rows;
} M;

size_t qrow(const M *m, int64_t h, int64_t i);
size_t kvrow(const M *m, int64_t kh, int64_t j);
/* The mask unit: whether the static pattern allows (i, j). */
bool allowed(const M *m, int64_t i, int64_t j);

/* ---- rows.c: the row engine ---- */

/* Scratch for the row engine; false when out of memory. */
bool rows_alloc(M *m, const float *token_in, float *token_out, const float *head_in, float *head_out);
void rows_free(M *m);
/* Per batch entry: importance in, every token and head kept. */
void rows_begin_batch(M *m);
/* Whether head h runs (head pruning); prepares its quantized copies. */
bool rows_begin_head(M *m);
/* Executes one row-engine instruction (tprune, hprune, cand ... rav) and
 * returns its cycles. */
int64_t rows_exec(M *m, AccInsn in, AccClass *cl);
/* Per batch entry: the importance outputs. */
void rows_end_batch(M *m);

#endif
