/* isa.h: the accelerator's instruction set, as one table.
 *
 * Every instruction is one 64-bit little-endian word of four fields:
 *
 *   63      56 55      48 47                    32 31                                    0
 *  +----------+----------+------------------------+---------------------------------------+
 *  |  opcode  |    a     |           b            |                   c                   |
 *  +----------+----------+------------------------+---------------------------------------+
 *     8 bits     8 bits          16 bits                         32 bits
 *
 * What a, b and c mean depends on the opcode (the table below). The cost
 * column is the cycles the model charges (docs/accel-isa.md explains each):
 * R and C are the PE array's rows and columns, G its global PEs, d the
 * head dimension. The machine the stream runs on:
 *
 *   - an R x C array of PEs, each holding one (query row, key column) pair
 *     of a pass; Q rows enter from the left, K/V rows on a skewed diagonal,
 *     so column c of row r can see key (row0 + r + offset[c]) (DIAG, SALO's
 *     data scheduler) or key (key0 + c) (BLOCK);
 *   - G global key columns beside the array and one global query row that
 *     attends over every key (GROW), working alongside it;
 *   - per query row an online softmax (running max, sum and weighted
 *     sum of V) in fp32, with a base-2 exponent from a 64-entry table.
 *
 * X(enum, mnemonic, a, b, c, cost) */
#ifndef SATTN_ACCEL_ISA_H
#define SATTN_ACCEL_ISA_H

#include <stdint.h>

#define ACC_OPCODES(X)                                                                                        \
  X(OP_NOP, "nop", "-", "-", "-", "1")                                                                         \
  X(OP_HEADS, "heads", "-", "heads: iterations", "body length in words", "0 (loop control)")                   \
  X(OP_LOADQ, "loadq", "-", "rows (<= R)", "first query row", "0: DMA, overlapped")                            \
  X(OP_DIAG, "diag", "-", "columns (<= C)", "first entry of the offset table", "0: sets the pass's key stream") \
  X(OP_BLOCK, "block", "-", "columns (<= C)", "first key", "0: sets the pass's key stream")                    \
  X(OP_GCOL, "gcol", "-", "global keys", "first entry of the global table", "0 when <= G, else passes")       \
  X(OP_GROW, "grow", "-", "-", "global query token", "ceil(seq/C)*(2d+C+3), on the global row")              \
  X(OP_QK, "qk", "-", "-", "-", "d")                                                                           \
  X(OP_SOFTMAX, "softmax", "-", "-", "-", "C+3")                                                               \
  X(OP_AV, "av", "-", "-", "-", "d")                                                                           \
  X(OP_SYNC, "sync", "-", "-", "-", "1")                                                                       \
  X(OP_STORE, "store", "-", "rows (<= R)", "first query row", "0: DMA, overlapped")                            \
  X(OP_END, "end", "-", "-", "-", "C+G-1 (drain)")                                                            \
  X(OP_TPRUNE, "tprune", "-", "-", "-", "top-k engine over seq")                                               \
  X(OP_HPRUNE, "hprune", "-", "-", "-", "top-k engine over heads")                                             \
  X(OP_CAND, "cand", "-", "-", "-", "ceil(seq/C)")                                                             \
  X(OP_LOWQK, "lowqk", "-", "source", "-", "ceil(n/C)*ceil(dim*bits/16)")                                     \
  X(OP_SELECT, "select", "-", "source", "-", "mean: ceil(n/C)+3; top: 2ceil(n/C)+4ceil(log2(n+1))")            \
  X(OP_FULLQK, "fullqk", "-", "-", "-", "ceil(n/C)*d")                                                         \
  X(OP_NM, "nm", "-", "N", "M", "ceil(n/C)")                                                                   \
  X(OP_MSBQK, "msbqk", "-", "-", "-", "ceil(n/C)*d")                                                           \
  X(OP_RSOFTMAX, "rsoftmax", "-", "-", "-", "ceil(n/C)+C+3")                                                   \
  X(OP_REQUANT, "requant", "-", "-", "-", "ceil(n/C)*d + ceil(n/C)+C+3 when a row requantizes")               \
  X(OP_VPRUNE, "vprune", "-", "-", "-", "2ceil(n/C)+4ceil(log2(n+1))")                                         \
  X(OP_RAV, "rav", "-", "-", "-", "ceil(kept/C)*d")

typedef enum {
#define X(e, m, a, b, c, cost) e,
  ACC_OPCODES(X)
#undef X
  OP_COUNT
} AccOpcode;

/* The classes statistics are reported by. */
#define ACC_CLASSES(X)       \
  X(CL_CONTROL, "control")   \
  X(CL_LOAD, "load")         \
  X(CL_QK, "qk")             \
  X(CL_SOFTMAX, "softmax")   \
  X(CL_AV, "av")             \
  X(CL_GLOBAL, "global")     \
  X(CL_STORE, "store")

typedef enum {
#define X(e, s) e,
  ACC_CLASSES(X)
#undef X
  CL_COUNT
} AccClass;

typedef struct {
  AccOpcode op;
  uint8_t a;
  uint16_t b;
  uint32_t c;
} AccInsn;

static inline uint64_t acc_encode(AccInsn i) {
  return (uint64_t)i.op << 56 | (uint64_t)i.a << 48 | (uint64_t)i.b << 32 | i.c;
}

static inline AccInsn acc_decode(uint64_t w) {
  return (AccInsn){(AccOpcode)(w >> 56), (uint8_t)(w >> 48), (uint16_t)(w >> 32), (uint32_t)w};
}

/* ---- the container (docs/accel-isa.md, "Streams") ---- */

#define ACC_MAGIC "SACC"
#define ACC_VERSION 1

/* X(enum, name, element size in bytes) */
#define ACC_SECTIONS(X)          \
  X(SEC_HEADER, "header", 8)     \
  X(SEC_MASK, "mask", 8)         \
  X(SEC_GLOBALS, "globals", 8)   \
  X(SEC_BLOCKS, "blocks", 8)     \
  X(SEC_OFFSETS, "offsets", 8)   \
  X(SEC_CODE, "code", 8)         \
  X(SEC_NAME, "name", 1)         \
  X(SEC_DYNAMIC, "dynamic", 8)

typedef enum {
#define X(e, s, z) e,
  ACC_SECTIONS(X)
#undef X
  SEC_COUNT
} AccSection;

/* The HEADER section's 64-bit fields, in order. */
#define ACC_HEADER_FIELDS(X) \
  X(H_BATCH)                 \
  X(H_HEADS)                 \
  X(H_KV_HEADS)              \
  X(H_SEQ)                   \
  X(H_HEAD_DIM)              \
  X(H_LAYOUT)                \
  X(H_STORAGE)               \
  X(H_OUTPUT)                \
  X(H_SCALE_BITS)            \
  X(H_ROWS)                  \
  X(H_COLS)                  \
  X(H_GLOBAL_PES)

typedef enum {
#define X(e) e,
  ACC_HEADER_FIELDS(X)
#undef X
  H_COUNT
} AccHeaderField;

/* The MASK section's 64-bit fields: the static pattern the mask unit
 * evaluates (docs/semantics.md §3). */
#define ACC_MASK_FIELDS(X) \
  X(M_CAUSAL)              \
  X(M_HAS_WINDOW)          \
  X(M_WINDOW)              \
  X(M_DILATION)            \
  X(M_HAS_WINDOW2D)        \
  X(M_IMAGE_H)             \
  X(M_IMAGE_W)             \
  X(M_WIN_H)               \
  X(M_WIN_W)               \
  X(M_IMAGE_OFFSET)        \
  X(M_BLOCK)               \
  X(M_HAS_BIGBIRD)         \
  X(M_BB_WINDOW)           \
  X(M_BB_RANDOM)           \
  X(M_BB_GLOBAL)           \
  X(M_BB_SEED)

typedef enum {
#define X(e) e,
  ACC_MASK_FIELDS(X)
#undef X
  M_COUNT
} AccMaskField;

/* The DYNAMIC section's 64-bit fields: the dynamic stages' parameters
 * (docs/semantics.md §4-8). Ratios, keep values and the threshold are f64
 * bits; keep kinds are SaKeepKind. Then, per filter round r < 8, four
 * fields at D_ROUNDS + 4r: q_bits, k_bits, keep kind, keep value. */
#define ACC_DYNAMIC_FIELDS(X) \
  X(D_HAS_PREDICT)            \
  X(D_PREDICT_DIM)            \
  X(D_PREDICT_BITS)           \
  X(D_PREDICT_KEEP_KIND)      \
  X(D_PREDICT_KEEP_VALUE)     \
  X(D_PREDICT_SEED)           \
  X(D_NM_N)                   \
  X(D_NM_M)                   \
  X(D_TOKEN_KEEP)             \
  X(D_HEAD_KEEP)              \
  X(D_VALUE_KEEP)             \
  X(D_HAS_PROGRESSIVE)        \
  X(D_MSB_BITS)               \
  X(D_LSB_BITS)               \
  X(D_THRESHOLD)              \
  X(D_FILTER_ROUNDS)          \
  X(D_ROUNDS)

typedef enum {
#define X(e) e,
  ACC_DYNAMIC_FIELDS(X)
#undef X
  D_COUNT = D_ROUNDS + 4 * 8
} AccDynamicField;

#endif
