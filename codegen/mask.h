/* mask.h: the static mask tree of a KernelPlan as MLIR text, shared by the
 * code generators (CPU and CUDA).
 *
 * Every function writes arith ops on i64 values through an Em: the mask's
 * predicate for one (query, key) pair, a closed-form key range per query,
 * and closed-form facts about a rectangle of pairs (empty, full). They read
 * only the mask ops' attributes, so no mask tensor exists at run time and
 * nothing depends on a sequence length known at compile time; `seq` (i64)
 * is the run's sequence length, which BigBird's random blocks depend on. */
#ifndef SATTN_CODEGEN_MASK_H
#define SATTN_CODEGEN_MASK_H

#include <stdbool.h>

#include "codegen.h"
#include "emit.h"

/* allowed(i, j) of node m as i1; i, j as i64. */
V mask_pred(Em *e, const MaskNode *m, V seq, V i, V j);

/* The closed-form key range [lo, hi) (i64) outside which m allows nothing
 * for query i. Both ends grow with i. False when the node bounds nothing
 * (every key may be allowed). */
bool mask_bounds(Em *e, const MaskNode *m, V i, V *lo, V *hi);

/* Whether m allows exactly the keys of mask_bounds' range (every key when
 * it gives none) for every query: then the range alone decides a pair. */
bool mask_bounds_exact(const MaskNode *m);

/* Facts about rows [i0, i1) x keys [k0, k1) (i64): *need is false only when
 * m allows no pair there, *full true only when it allows every pair. */
void mask_tile_facts(Em *e, const MaskNode *m, V i0, V i1, V k0, V k1, V *need, V *full);

/* SplitMix64 of an i64 state with wrapping arithmetic (docs/semantics.md §8). */
V mask_splitmix(Em *e, V state);

#endif
