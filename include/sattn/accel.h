/* sattn/accel.h: the sparse-attention accelerator's runtime: hardware
 * configurations, loading and validating instruction streams (.sacc), and
 * executing them on a model of the machine that computes the attention
 * result and counts cycles, memory traffic and energy.
 *
 * The instruction set and the stream format are in docs/accel-isa.md.
 * Everything here is plain C (libsattn_runtime.a); nothing needs LLVM.
 *
 * Failure: every fallible function returns an SaStatus and, when `err` is
 * not NULL, a one-line reason in err[0..cap). A malformed stream is
 * SA_ERR_BAD_STREAM; nothing here aborts or reads outside its inputs.
 * Threads: a loaded program is immutable; any number of threads may run it
 * at once with their own outputs and statistics. */
#ifndef SATTN_ACCEL_H
#define SATTN_ACCEL_H

#include <stddef.h>
#include <stdint.h>

#include "sattn/spec.h"
#include "sattn/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A hardware configuration. Text form: `key = value` lines, `#` comments;
 * the keys are these field names (docs/accel-isa.md lists the defaults). */
typedef struct {
  int64_t pe_rows, pe_cols; /* the PE array: query rows x key columns of one pass */
  int64_t global_pes;       /* global key columns beside the array (and one global query row) */
  double clock_ghz;
  int64_t sram_q_bytes, sram_kv_bytes, sram_out_bytes;
  double dram_bytes_per_cycle; /* 0: compute only (no DRAM time, as SALO's model) */
  int64_t dram_channels, dram_latency_cycles;
  /* energy in picojoules */
  double e_mac_fp32_pj, e_mac_fp16_pj, e_mac_int8_pj; /* one multiply-accumulate */
  double e_exp_pj;                                    /* one exponent (table + interpolation) */
  double e_sram_byte_pj, e_dram_byte_pj;              /* one byte moved */
} SaAccelConfig;

/* The defaults: SALO's array (32 x 32 PEs, one global row and column,
 * 1 GHz) with 45 nm-class energies (docs/accel-isa.md). */
void sa_accel_config_default(SaAccelConfig *c);

/* Parses the text form over the defaults. SA_ERR_INVALID_ARGUMENT with the
 * line in err for an unknown key or a bad value. */
SaStatus sa_accel_config_parse(const char *text, size_t len, SaAccelConfig *out, char *err, size_t cap);

/* The hash a stream records of the configuration it was scheduled for: the
 * fields that shape a schedule (array and global PEs). */
uint64_t sa_accel_config_hash(const SaAccelConfig *c);

typedef struct SaAccelProgram SaAccelProgram;

/* Validates `len` bytes of a stream (magic, version, section table and
 * bounds, checksum, header and mask fields, every instruction's operands)
 * and copies what it needs. The bytes may be freed afterwards. */
SaStatus sa_accel_load(const void *bytes, size_t len, SaAccelProgram **out, char *err, size_t cap);
void sa_accel_free(SaAccelProgram *p);

/* The layer the program computes, as a spec (for the reference): shapes,
 * layout, types, scale and static pattern. Lives as long as p. */
const SaSpec *sa_accel_spec(const SaAccelProgram *p);
uint64_t sa_accel_program_config_hash(const SaAccelProgram *p);
size_t sa_accel_program_words(const SaAccelProgram *p);

/* The readable listing of the program (malloc'ed, NUL-terminated; the
 * caller frees it), or NULL when out of memory. sattnc --emit=accel-asm
 * prints the same text for the stream it makes. */
char *sa_accel_disassemble(const SaAccelProgram *p);

/* Statistics per instruction class (control, load, qk, softmax, av,
 * global, store). */
#define SA_ACCEL_CLASSES 7
typedef struct {
  const char *name;
  int64_t instructions, cycles;
  int64_t dram_read_bytes, dram_write_bytes, dram_requests, sram_bytes;
  int64_t macs, low_macs, exps; /* MACs at the storage precision, low-bit (<= 8-bit) MACs, exponents */
  double energy_pj;
} SaAccelClassStats;

typedef struct {
  SaAccelClassStats cls[SA_ACCEL_CLASSES];
  int64_t compute_cycles; /* the array and the global row, overlapped */
  int64_t dram_cycles;    /* DRAM time: bytes / bandwidth + requests x latency / channels */
  int64_t cycles;         /* the total: compute, plus DRAM time it cannot hide */
  double seconds;
  int64_t dram_read_bytes, dram_write_bytes, dram_requests, sram_bytes, macs, low_macs;
  double energy_pj;
  int64_t pairs;        /* (head, query, key) full-precision scores computed, per batch entry */
  int64_t rows, requantized_rows; /* query rows the row engine ran, and those it requantized */
} SaAccelStats;

/* The importance arrays of SpAtten's cascade pruning (docs/semantics.md
 * §5), as the CPU kernels take them: token_in/token_out [batch, seq],
 * head_in/head_out [batch, heads]; any may be NULL (a NULL input is all
 * zeros, a NULL output is not written). Outputs are written only by
 * programs with dynamic stages. */
typedef struct {
  const float *token_in;
  float *token_out;
  const float *head_in;
  float *head_out;
} SaAccelImportance;

/* Runs p on fp32 tensors in the program's layout (q [batch, heads, seq,
 * head_dim], k and v [batch, kv_heads, seq, head_dim], or bshd order),
 * rounding inputs to the program's storage type and the output to its
 * output type, on machine c, whose hash must match the program's
 * (SA_ERR_UNSUPPORTED otherwise). Statistics are for the whole batch.
 * SA_ERR_SHAPE when batch differs from a batch the program fixes. */
SaStatus sa_accel_run(const SaAccelProgram *p, const SaAccelConfig *c, const float *q, const float *k,
                      const float *v, float *o, int64_t batch, const SaAccelImportance *importance,
                      SaAccelStats *stats, char *err, size_t cap);

#ifdef __cplusplus
}
#endif

#endif
