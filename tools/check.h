/* check.h: what the tools that run kernels share: tensors converted
 * between fp32 and the kernels' element types, and the comparison of an
 * output with the reference's (docs/cpu-abi.md has the tolerances). No
 * LLVM or MLIR: the runtime-only GPU runner uses it too. */
#ifndef SATTN_TOOLS_CHECK_H
#define SATTN_TOOLS_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sattn/spec.h"

/* At least `bytes` bytes (and one more) from a 64-byte boundary, for free();
 * NULL when out of memory. */
void *chk_alloc64(size_t bytes);
/* Bytes per element of a tensor of type t in the kernel's memory. */
size_t chk_dtype_bytes(SaDtype t);
/* The kernel's memory for n values of type t (each rounded to t first);
 * 64-byte aligned, for free(); NULL when out of memory. */
void *chk_encode(const float *x, size_t n, SaDtype t);
/* n values of type t (fp32, fp16, bf16) in memory back to fp32. */
void chk_decode(const void *mem, size_t n, SaDtype t, float *out);

/* A raw little-endian fp32 file of exactly want values. malloc'ed; NULL
 * after an error on stderr, prefixed with tool. */
float *chk_read_f32(const char *tool, const char *path, size_t want);
/* How many fp32 values the file at path holds (its size, without reading
 * it); false after an error on stderr. */
bool chk_f32_count(const char *tool, const char *path, size_t *out_n);

/* Tensor files hold [batch, heads, seq, head_dim] whatever the spec's
 * layout: copies such a tensor of nh heads into the spec's layout, or back
 * (back = true: `src` in the spec's layout, `dst` in that order). */
void chk_to_layout(const SaSpec *s, int64_t B, int64_t nh, int64_t S, const float *src, float *dst, bool back);

typedef struct {
  double max_abs, rel, ref_max;
  bool mismatch_nonfinite; /* one side finite where the other is not */
} ChkErr;

/* Errors of got against want (relative Frobenius, largest absolute). */
ChkErr chk_compare(const float *got, const float *want, size_t n);
/* The documented tolerance of an output type: relative Frobenius error and
 * largest absolute error relative to the largest reference value. */
void chk_tolerance(SaDtype out, double *rel, double *abs_rel);
bool chk_within(ChkErr e, double rel, double abs_rel);
/* A bound on |logit|: scale * max |q_i| * max |k_j| (Cauchy-Schwarz). f32
 * scores carry about bound * 2^-24 of error, which tolerances add. */
double chk_logit_bound(const SaSpec *s, const float *q, size_t nq, const float *k, size_t nkv);
/* Widens rel and abs_rel for the CUDA kernels' roundings (docs/cuda.md):
 * P is rounded to the input type (tf32 for fp32 inputs) for the P V mma;
 * fp32 inputs are rounded to tf32, which moves V by 2^-11 relative and a
 * logit by up to 2^-10 of logit_bound (a weight by up to twice that). */
void chk_cuda_widen(const SaSpec *s, double logit_bound, double *rel, double *abs_rel);

#endif
