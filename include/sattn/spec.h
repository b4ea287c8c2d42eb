/* sattn/spec.h: the checked description of one attention layer.
 *
 * This is what the front end produces after semantic checks and what every
 * consumer reads: the IR builder, the reference implementation, the runtimes.
 * It depends on nothing but the C standard library, so the runtime and the
 * reference build on machines without LLVM or MLIR.
 *
 * Ownership: a SaSpec and every array it points to belong to whoever made it
 * (the front end's arena for parsed specs). Consumers only read it.
 * Thread safety: immutable once built; any number of threads may read it. */
#ifndef SATTN_SPEC_H
#define SATTN_SPEC_H

#include <stdbool.h>
#include <stdint.h>

/* A dimension that is fixed only at run time (`?` in the spec). */
#define SA_DYNAMIC INT64_C(-1)

/* Element types. X(enum, spelling, bits, is_float) */
#define SA_DTYPES(X)                 \
  X(DT_FP32, "fp32", 32, 1)          \
  X(DT_FP16, "fp16", 16, 1)          \
  X(DT_BF16, "bf16", 16, 1)          \
  X(DT_FP8E4M3, "fp8e4m3", 8, 1)     \
  X(DT_FP8E5M2, "fp8e5m2", 8, 1)     \
  X(DT_INT8, "int8", 8, 0)           \
  X(DT_INT4, "int4", 4, 0)           \
  X(DT_INT2, "int2", 2, 0)

typedef enum {
#define X(e, s, b, f) e,
  SA_DTYPES(X)
#undef X
  DT_COUNT
} SaDtype;

const char *sa_dtype_name(SaDtype t);
int sa_dtype_bits(SaDtype t);
bool sa_dtype_is_float(SaDtype t);

/* Memory layout of Q, K, V and O. */
typedef enum {
  LAYOUT_BHSD, /* [batch, heads, seq, head_dim] */
  LAYOUT_BSHD, /* [batch, seq, heads, head_dim] */
} SaLayout;

/* How a dynamic selection decides which scores survive in a row. */
typedef enum {
  KEEP_ALL,       /* no selection */
  KEEP_TOP_RATIO, /* the ceil(value * candidates) largest */
  KEEP_TOP_COUNT, /* the min(value, candidates) largest */
  KEEP_MEAN,      /* Energon's threshold: alpha = value, see docs/semantics.md */
} SaKeepKind;

typedef struct {
  SaKeepKind kind;
  double value;
} SaKeep;

typedef struct {
  int q_bits, k_bits; /* quantization of Q and K for this round's scores */
  SaKeep keep;
} SaFilterRound;

#define SA_MAX_FILTER_ROUNDS 8

typedef struct {
  int64_t q, k; /* query block, key block */
} SaBlockPair;

typedef struct SaSpec {
  const char *name;
  /* Where the spec starts in its source (for diagnostics downstream). */
  const char *file;
  int line, col;

  /* Shapes. batch and seq may be SA_DYNAMIC. kv_heads divides heads. */
  int64_t batch, heads, kv_heads, seq, head_dim;
  SaLayout layout;

  /* Precision of each stage. */
  SaDtype storage, score, softmax, accumulate, output;
  double scale; /* always set: 1/sqrt(head_dim) unless the spec says otherwise */

  /* Static pattern: allowed(i,j) = C(i,j) and (L(i,j) or G(i,j)).
   * See docs/semantics.md for each term. */
  bool causal;
  bool has_window;
  int64_t window, dilation;
  bool has_window2d;
  int64_t image_h, image_w, win_h, win_w, image_offset;
  int n_global;
  const int64_t *global; /* sorted, unique token indices */
  int64_t block;         /* block size of a block layout, 0 if none */
  int n_block_pairs;
  const SaBlockPair *block_pairs;
  bool has_bigbird; /* block-level BigBird rule, uses `block` */
  int64_t bb_window, bb_random, bb_global;
  uint64_t bb_seed;

  /* Dynamic selection, applied in this order after the static mask. */
  bool has_predict; /* DSA */
  int64_t predict_dim;
  int predict_bits;
  SaKeep predict_keep;
  uint64_t predict_seed;
  int n_filter_rounds; /* Energon */
  SaFilterRound filter[SA_MAX_FILTER_ROUNDS];
  int nm_n, nm_m; /* DFSS; 0:0 when absent */

  /* SpAtten. Keep ratios in (0, 1]; 1 means no pruning. */
  double token_keep, head_keep, value_keep;
  bool has_progressive;
  int msb_bits, lsb_bits;
  double requant_threshold;
} SaSpec;

#endif
