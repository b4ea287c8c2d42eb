/* ref.h: the reference's building blocks that the accelerator model shares
 * (runtime/accel/exec.c): its selection units and quantizers implement the
 * rules of docs/semantics.md, so they are the reference's own code, and the
 * two agree on every kept key by construction. Internal to the runtime;
 * libsattn.so does not export them. */
#ifndef SATTN_REF_H
#define SATTN_REF_H

#include <stdbool.h>
#include <stdint.h>

#include "sattn/spec.h"

typedef struct {
  double val;
  int64_t idx;
} RefRank;

/* Members of a flag set. */
int64_t ref_count(const bool *set, int64_t n);
/* Shrinks `set` to its k members with the largest `val`, ties to the lower
 * index; rank has room for n entries. */
void ref_keep_top(const double *val, bool *set, int64_t n, int64_t k, RefRank *rank);
/* ceil(ratio * n) in double. */
int64_t ref_ceil_ratio(double ratio, int64_t n);
/* One selection rule (top ratio, top count, Energon's mean threshold). */
void ref_select(SaKeep keep, const double *a, bool *cand, int64_t n, RefRank *rank);
/* Symmetric per-row quantization: the integer grid of x into out, and the step. */
double ref_quant_grid(const double *x, int64_t n, int bits, double *out);
void ref_quant_grid_rows(const double *x, int64_t rows, int64_t n, int bits, double *grid, double *steps);
/* The same dequantized (grid * step). */
void ref_quant_rows(const double *x, int64_t rows, int64_t n, int bits, double *out);
double ref_dot(const double *x, const double *y, int64_t n);
/* DSA's projection matrix (head_dim x predict_dim) and projected grid rows. */
void ref_build_projection(const SaSpec *s, double *proj);
void ref_project_rows(const SaSpec *s, const double *x, int64_t S, const double *proj, double *out, double *steps);
/* Scores of row i against the candidates: exact (scale * q.k in double) and
 * from integer grids (((scale * step_q) * step_k) * integer dot). */
void ref_scores(const SaSpec *s, const double *q, const double *k, int64_t dim, int64_t i, const bool *cand,
                int64_t S, double *out);
void ref_grid_scores(const SaSpec *s, const double *q, const double *q_step, const double *k, const double *k_step,
                     int64_t dim, int64_t i, const bool *cand, int64_t S, double *out);

/* A head's quantized copies, made from its storage-rounded rows q and k
 * (S x head_dim): DSA's projected grids, each filter round's grids, and
 * SpAtten's MSB and MSB+LSB rows of K. Arrays a spec does not use may be
 * NULL. */
typedef struct {
  const double *q, *k, *proj;
  double *pq, *pk, *pq_step, *pk_step;
  double *fq, *fk, *fq_step, *fk_step; /* round r at offset r * S * D (steps r * S) */
  double *k_msb, *k_full;
} RefHeadQuant;
void ref_quantize_head(const SaSpec *s, int64_t S, const RefHeadQuant *h);

/* Whether the dynamic-stage fields of s are in the ranges the semantics define. */
bool ref_dynamic_valid(const SaSpec *s);

#endif
