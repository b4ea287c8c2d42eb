/* sattn/reference.h: the plain C reference implementation of the attention
 * semantics in docs/semantics.md.
 *
 * It computes in double precision and in the most direct way, one row at a
 * time; the kernels and runtimes are tested against it. It needs only the
 * C standard library and libm. */
#ifndef SATTN_REFERENCE_H
#define SATTN_REFERENCE_H

#include <stdbool.h>
#include <stdint.h>

#include "sattn/spec.h"
#include "sattn/status.h"

/* The tensors of one call. All pointers are borrowed from the caller. */
typedef struct {
  int64_t batch, seq; /* run-time values; must equal the spec's where the spec fixes them */
  /* fp32 values in the spec's layout: q [B,H,S,D], k and v [B,KVH,S,D] for
   * LAYOUT_BHSD; [B,S,H,D] and [B,S,KVH,D] for LAYOUT_BSHD. */
  const float *q, *k, *v;
  float *out; /* [B,H,S,D] (or [B,S,H,D]), same layout as q */
  const float *token_importance_in; /* [B,S] or NULL (NULL = all zeros, every token alive) */
  float *token_importance_out;      /* [B,S] or NULL */
  const float *head_importance_in;  /* [B,H] or NULL (NULL = all zeros) */
  float *head_importance_out;       /* [B,H] or NULL */
  /* Introspection for evaluation tools, both [B,H,S,S] (query i, key j) or
   * NULL: survivors_out is 1 where key j reaches softmax in row i (before
   * value pruning), probs_out the final weights p_ij (after it). Pruned
   * heads and query rows are all zero. */
  uint8_t *survivors_out;
  float *probs_out;
} SaProblem;

/* Runs the layer described by `spec` on `p` and writes p->out and, where
 * given, the importance outputs; *out_kept_fraction (if not NULL) receives
 * the number of (batch, head, query, key) scores that reach softmax in kept
 * heads and kept query rows, divided by B*H*S*S.
 *
 * Ownership: reads the spec and the inputs, writes only the output arrays;
 * scratch memory is allocated and freed inside the call.
 * Failure: SA_ERR_INVALID_ARGUMENT for NULL pointers, non-positive sizes or
 * spec fields out of range; SA_ERR_SHAPE when batch or seq differ from values
 * the spec fixes, or the tensors are too large to address; SA_ERR_OUT_OF_MEMORY
 * when scratch cannot be allocated. All checks and allocations happen before
 * anything is written, so on failure the outputs are untouched.
 * Thread safety: reentrant; concurrent calls are safe as long as they do not
 * write the same output arrays. */
SaStatus sa_reference(const SaSpec *spec, const SaProblem *p,
                      double *out_kept_fraction);

/* `x` rounded to the nearest value of type `t`, ties to even. fp16, bf16 and
 * fp8e5m2 overflow to infinity like IEEE formats; fp8e4m3 (max 448, no
 * infinity) saturates to +-448, infinities included. NaN stays NaN. fp32 and
 * the integer types return `x` unchanged (integers never store floats here).
 * Pure function: thread-safe, cannot fail. */
float sa_round_to_dtype(float x, SaDtype t);

/* Whether the static pattern of `s` allows query `i` to see key `j` in a
 * sequence of length `seq` (the run-time length, which BigBird's block count
 * depends on). False for a NULL spec or an index outside [0, seq).
 * Pure function: thread-safe, cannot fail. */
bool sa_static_allowed(const SaSpec *s, int64_t seq, int64_t i, int64_t j);

/* The project's one PRNG (SplitMix64): advances *state and returns the next
 * 64-bit value. The caller owns the state; one state per thread. */
uint64_t sa_splitmix64(uint64_t *state);

/* A standard normal draw from two SplitMix64 values (Box-Muller), for the
 * tools' seeded inputs. Same state rules as sa_splitmix64. */
double sa_gaussian(uint64_t *state);

#endif
