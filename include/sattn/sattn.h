/* sattn/sattn.h: the compiler as a library.
 *
 * A program compiles attention specs (docs/spec-language.md) in memory:
 *
 *   SattnContext *ctx = sattn_context_create();
 *   SattnModule *m;
 *   if (sattn_module_parse(ctx, "layer.sattn", text, len, &m) == SA_OK) {
 *     SattnArtifact *obj;
 *     SattnOptions opt = {.target = SATTN_TARGET_CPU, .cpu = "znver4"};
 *     if (sattn_emit(m, SATTN_ARTIFACT_OBJECT, &opt, &obj) == SA_OK) {
 *       size_t n;
 *       const void *bytes = sattn_artifact_data(obj, &n);
 *       ... write or link the ELF object ...
 *       sattn_artifact_destroy(obj);
 *     }
 *     sattn_module_destroy(m);
 *   }
 *   sattn_context_destroy(ctx);
 *
 * or compiles and runs CPU kernels in process (sattn_jit_create). The tools
 * (sattnc, sattn-run, sattn-opt, sattn-eval, sattn-bench) use nothing else.
 *
 * Failure: every fallible function returns an SaStatus (sattn/status.h) and
 * leaves its out-parameter NULL on failure. Problems in the user's input
 * (syntax, spec checks, IR verification, unknown names) are also reported
 * as diagnostics with a location through the context's handler; statuses
 * without a diagnostic are SA_ERR_INVALID_ARGUMENT for a NULL or out of range
 * argument of the call itself and SA_ERR_OUT_OF_MEMORY.
 *
 * Threads: there is no global mutable state. A context and everything made
 * from it (modules, artifacts, JITs) must be used by one thread at a time;
 * different contexts may be used concurrently from different threads.
 * Artifacts and JIT'ed kernels are immutable: once made they may be read or
 * called from any thread.
 *
 * Ownership: a function named *_create, *_parse*, sattn_emit, sattn_lex or
 * sattn_opt gives the caller an object to destroy with the matching
 * *_destroy; every pointer a getter returns is borrowed and lives as long
 * as the object it came from. Input strings are copied when needed; the
 * caller may free them after the call returns. */
#ifndef SATTN_SATTN_H
#define SATTN_SATTN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sattn/cpu.h"
#include "sattn/spec.h"
#include "sattn/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SATTN_VERSION_MAJOR 0
#define SATTN_VERSION_MINOR 1
#define SATTN_VERSION_PATCH 0

/* "MAJOR.MINOR.PATCH" of the library actually linked. Static string. */
const char *sattn_version(void);

/* ---- contexts and diagnostics ---- */

typedef struct SattnContext SattnContext;

typedef enum {
  SATTN_SEVERITY_ERROR,
  SATTN_SEVERITY_WARNING,
  SATTN_SEVERITY_NOTE,
  SATTN_SEVERITY_REMARK,
} SattnSeverity;

/* One message. Every pointer is valid only during the handler's call. */
typedef struct {
  SattnSeverity severity;
  const char *file;        /* the display name given to the parse, or a tool's name; never NULL */
  int line, col;           /* 1-based; 0 when the message has no position */
  const char *message;     /* one line, no trailing newline */
  const char *source_line; /* the text of `line` (non-printing bytes shown as '?'), or NULL */
} SattnDiagnostic;

typedef void (*SattnDiagnosticFn)(const SattnDiagnostic *d, void *user);

/* A compiler context. Loads nothing until the first call that needs MLIR,
 * so parsing alone is cheap. Diagnostics go to sattn_print_diagnostic on
 * stderr until a handler is set. NULL when out of memory. */
SattnContext *sattn_context_create(void);

/* Destroys the context. Every module, artifact and JIT made from it must be
 * destroyed first. NULL is a no-op. */
void sattn_context_destroy(SattnContext *ctx);

/* Sends later diagnostics to fn(d, user); fn NULL restores the default. */
void sattn_context_set_diagnostic_handler(SattnContext *ctx, SattnDiagnosticFn fn, void *user);

/* The number of error diagnostics reported through ctx so far. */
int sattn_context_error_count(const SattnContext *ctx);

/* Prints d the way compilers do: `file:line:col: error: message`, then the
 * source line and a caret under the column when source_line is set. */
void sattn_print_diagnostic(const SattnDiagnostic *d, FILE *out);

/* ---- modules: a checked file of attention specs ---- */

typedef struct SattnModule SattnModule;

/* Lexes, parses and checks `len` bytes of spec text (no NUL needed);
 * `name` is the file name diagnostics show (NULL: "<input>").
 * SA_ERR_INVALID_SPEC after diagnostics when the text has errors. */
SaStatus sattn_module_parse(SattnContext *ctx, const char *name, const char *text, size_t len, SattnModule **out);

/* The same for a file; "-" reads standard input. SA_ERR_IO (with a
 * diagnostic) when it cannot be read. */
SaStatus sattn_module_parse_file(SattnContext *ctx, const char *path, SattnModule **out);

/* NULL is a no-op. */
void sattn_module_destroy(SattnModule *m);

/* The specs in source order; the spec pointer lives as long as m. */
int sattn_module_kernel_count(const SattnModule *m);
const SaSpec *sattn_module_kernel(const SattnModule *m, int i); /* NULL when i is out of range */
/* The index of the spec called `name`, or -1. */
int sattn_module_find(const SattnModule *m, const char *name);

/* Shape overrides for one spec, for compiling a kernel at a size other than
 * the file's. A field of 0 keeps the spec's value. */
typedef struct {
  int64_t batch, seq, heads, kv_heads, head_dim;
} SattnShape;

/* Changes spec i's shape (heads also sets kv_heads when they were equal;
 * head_dim also changes a default 1/sqrt(head_dim) scale). Fixed batch or
 * seq become the new values; SA_DYNAMIC ones stay dynamic. Later emits and
 * JITs see the new shape. SA_ERR_INVALID_SPEC with a diagnostic when the
 * result breaks a rule of the language (heads not a multiple of kv_heads,
 * a global token or block beyond seq, ...); the spec is then unchanged. */
SaStatus sattn_module_set_shape(SattnModule *m, int i, const SattnShape *shape);

/* ---- compiling ---- */

/* X(enum, name used by sattnc --target=) */
#define SATTN_TARGETS(X)           \
  X(SATTN_TARGET_CPU, "cpu")       \
  X(SATTN_TARGET_ACCEL, "accel")   \
  X(SATTN_TARGET_CUDA, "cuda")

typedef enum {
#define X(e, s) e,
  SATTN_TARGETS(X)
#undef X
  SATTN_TARGET_COUNT
} SattnTarget;

/* X(enum, name used by sattnc --emit=, binary). mlir-cpu to obj need the
 * cpu target; mlir-accel, accel, accel-asm and accel-c (the scheduled
 * programs in the saccel dialect, a .sacc stream, its listing, and a C
 * source that embeds the streams of every selected spec) the accel target;
 * mlir-cuda, ptx, cubin and ptx-c (the kernels as a gpu.module, as PTX,
 * assembled by ptxas, and a C source that embeds each selected spec's PTX
 * as NAME_ptx and NAME_ptx_size) the cuda target; a header declares the
 * cpu kernels, the embedded streams or the CUDA kernels' launch contracts
 * (sattn/cuda.h) and embedded PTX. */
#define SATTN_ARTIFACTS(X)                                  \
  X(SATTN_ARTIFACT_TOKENS, "tokens", 0)                     \
  X(SATTN_ARTIFACT_AST, "ast", 0)                           \
  X(SATTN_ARTIFACT_MLIR, "mlir", 0)                         \
  X(SATTN_ARTIFACT_MLIR_CANONICAL, "mlir-canonical", 0)     \
  X(SATTN_ARTIFACT_MLIR_CPU, "mlir-cpu", 0)                 \
  X(SATTN_ARTIFACT_MLIR_LLVM, "mlir-llvm", 0)               \
  X(SATTN_ARTIFACT_LLVM_IR, "llvm", 0)                      \
  X(SATTN_ARTIFACT_ASM, "asm", 0)                           \
  X(SATTN_ARTIFACT_OBJECT, "obj", 1)                        \
  X(SATTN_ARTIFACT_HEADER, "header", 0)                     \
  X(SATTN_ARTIFACT_MASK_SVG, "mask-svg", 0)                 \
  X(SATTN_ARTIFACT_MASK_PNG, "mask-png", 1)                 \
  X(SATTN_ARTIFACT_ACCEL, "accel", 1)                       \
  X(SATTN_ARTIFACT_ACCEL_ASM, "accel-asm", 0)               \
  X(SATTN_ARTIFACT_ACCEL_C, "accel-c", 0)                   \
  X(SATTN_ARTIFACT_MLIR_ACCEL, "mlir-accel", 0)             \
  X(SATTN_ARTIFACT_MLIR_CUDA, "mlir-cuda", 0)               \
  X(SATTN_ARTIFACT_PTX, "ptx", 0)                           \
  X(SATTN_ARTIFACT_CUBIN, "cubin", 1)                       \
  X(SATTN_ARTIFACT_PTX_C, "ptx-c", 0)

typedef enum {
#define X(e, s, b) e,
  SATTN_ARTIFACTS(X)
#undef X
  SATTN_ARTIFACT_COUNT
} SattnArtifactKind;

/* Names of targets and artifact kinds, and their inverses (-1 when the name
 * is unknown). Static strings; "unknown" for a value out of range. */
const char *sattn_target_name(SattnTarget t);
int sattn_target_parse(const char *name);
const char *sattn_artifact_kind_name(SattnArtifactKind k);
int sattn_artifact_kind_parse(const char *name);
/* Whether artifacts of kind k hold bytes rather than text. */
bool sattn_artifact_kind_is_binary(SattnArtifactKind k);

typedef struct {
  SattnTarget target; /* the back end; 0 is cpu */
  const char *cpu;    /* LLVM CPU name for mlir-cpu, llvm, asm and obj (znver4,
                         skylake-avx512, haswell, x86-64, ...); NULL or "native": the
                         host. The JIT always compiles for the host; a CPU named here
                         only keeps out instructions it lacks (AVX512-VNNI) */
  const char *kernel; /* only the spec with this name; NULL: every spec */
  int64_t seq;        /* mask pictures and accelerator streams: the sequence length
                         to draw or schedule for; 0: the spec's */
  uint64_t picture_seed;    /* mask pictures of dynamic patterns: the inputs' seed */
  const char *accel_config; /* accel target: a hardware configuration's text
                               (sattn/accel.h); NULL: the defaults */
  const char *arch;         /* cuda target: sm_80 (NULL), sm_86, sm_89, sm_90, sm_90a */
  const char *cuda_path;    /* cuda target, cubin: the toolkit whose ptxas assembles;
                               NULL: $CUDA_HOME, then /usr/local/cuda */
} SattnOptions;

/* Names of the CPUs `cpu` accepts, NULL-terminated. Static. */
const char *const *sattn_cpu_names(void);

typedef struct SattnArtifact SattnArtifact;

/* How a CPU kernel call splits into tasks on the runtime's pool. With a
 * token_out or head_out array the call always runs as one task, since
 * importance adds up over heads. */
typedef enum {
  SATTN_SPLIT_TILES, /* batch * heads * ceil(seq / query_tile) tasks (static patterns) */
  SATTN_SPLIT_HEADS, /* batch * heads tasks (dynamic selection) */
  SATTN_SPLIT_NONE,  /* one task (token or head pruning decides across heads) */
} SattnWorkSplit;

/* What a caller needs to call one compiled CPU kernel (docs/cpu-abi.md):
 *   int32_t name(const T *q, const T *k, const T *v, U *o, int64_t batch,
 *                int64_t seq, const float *token_in, float *token_out,
 *                const float *head_in, float *head_out);
 * q and o hold [batch, heads, seq, head_dim] elements and k and v
 * [batch, kv_heads, seq, head_dim], in the order `layout` names (bhsd or
 * bshd); T is the storage type and U the output type. */
typedef struct {
  const char *name;       /* the C symbol */
  const SaSpec *spec;     /* the checked spec, with any sattn_module_set_shape applied */
  const char *prototype;  /* the C declaration, as in the generated header */
  int64_t batch, seq;     /* SA_DYNAMIC: chosen per call */
  int64_t heads, kv_heads, head_dim;
  SaLayout layout;
  SaDtype storage, output;
  size_t storage_bytes, output_bytes; /* bytes per element of q/k/v and of o */
  bool prunes_tokens, prunes_heads;   /* token_out/head_out carry the next layer's importance */
  SattnWorkSplit split;
  int64_t query_tile; /* queries per task for SATTN_SPLIT_TILES, else 0 */
} SattnKernelInfo;

/* Compiles the specs of m (or opt->kernel alone) to artifact `kind`; opt
 * NULL means defaults. The artifact lists the kernels it holds.
 * SA_ERR_NOT_FOUND when opt->kernel names no spec; SA_ERR_INVALID_SPEC when
 * IR checks fail or the target's lowering refuses a spec (int8 storage on
 * the CPU, say); SA_ERR_UNSUPPORTED for an unknown cpu name or when LLVM
 * cannot generate code; each with a diagnostic. */
SaStatus sattn_emit(SattnModule *m, SattnArtifactKind kind, const SattnOptions *opt, SattnArtifact **out);

/* The tokens of spec text (SATTN_ARTIFACT_TOKENS), for text that need not
 * parse. SA_ERR_INVALID_SPEC after diagnostics when it does not even lex. */
SaStatus sattn_lex(SattnContext *ctx, const char *name, const char *text, size_t len, SattnArtifact **out);

/* Parses `len` bytes of MLIR (a module, or one op that gets a module around
 * it), verifies it, runs `pipeline` (comma-separated sattn pass flags and
 * upstream pipeline elements, optionally wrapped in builtin.module(...))
 * and prints the result, in the generic form when `generic`.
 * SA_ERR_INVALID_SPEC after diagnostics when parsing, the pipeline or a
 * pass fails. */
SaStatus sattn_opt(SattnContext *ctx, const char *name, const char *text, size_t len, const char *pipeline,
                   bool generic, SattnArtifact **out);

/* The .sacc stream (an artifact of kind SATTN_ARTIFACT_ACCEL) of a program
 * in the saccel dialect: `len` bytes of MLIR holding func.func ops with the
 * saccel.program attribute, as sattn-lower-accel and --emit=mlir-accel give
 * them (and as a user may edit or transform them). `program` names the one
 * to encode; NULL when there is only one. The program is verified, encoded
 * word for word, and the stream checked by the runtime's loader.
 * SA_ERR_INVALID_SPEC after diagnostics; SA_ERR_NOT_FOUND when no program
 * has that name. */
SaStatus sattn_accel_encode(SattnContext *ctx, const char *name, const char *text, size_t len, const char *program,
                            SattnArtifact **out);

/* The sattn passes sattn_opt accepts by flag: i in [0, count). Static strings. */
int sattn_pass_count(void);
const char *sattn_pass_flag(int i);
const char *sattn_pass_summary(int i);

/* The artifact's bytes; text artifacts are NUL-terminated (not counted in
 * *size). size may be NULL. */
const void *sattn_artifact_data(const SattnArtifact *a, size_t *size);
SattnArtifactKind sattn_artifact_kind(const SattnArtifact *a);
int sattn_artifact_kernel_count(const SattnArtifact *a);
/* NULL when i is out of range. */
const SattnKernelInfo *sattn_artifact_kernel(const SattnArtifact *a, int i);
/* Writes the bytes to `path` ("-": standard output). SA_ERR_IO with a
 * diagnostic through ctx when it cannot. */
SaStatus sattn_artifact_write(const SattnArtifact *a, SattnContext *ctx, const char *path);
/* NULL is a no-op. */
void sattn_artifact_destroy(SattnArtifact *a);

/* ---- running CPU kernels in this process ---- */

typedef struct SattnJit SattnJit;

/* Compiles the specs of m (or opt->kernel alone) for the host CPU at O3 and
 * loads them. Fails as sattn_emit does. The JIT keeps what it needs: m may
 * be destroyed or changed afterwards. */
SaStatus sattn_jit_create(SattnModule *m, const SattnOptions *opt, SattnJit **out);

/* The kernel called `name` (its ABI: SattnKernelInfo), or NULL. The
 * function stays valid until sattn_jit_destroy; concurrent calls are safe
 * when they write different outputs. */
SattnCpuKernelFn sattn_jit_lookup(const SattnJit *jit, const char *name);
int sattn_jit_kernel_count(const SattnJit *jit);
const SattnKernelInfo *sattn_jit_kernel(const SattnJit *jit, int i);
/* NULL is a no-op. */
void sattn_jit_destroy(SattnJit *jit);

#ifdef __cplusplus
}
#endif

#endif
