/* codegen.h: the back ends' shared view of a fused attention kernel, and
 * the CPU code generator.
 *
 * A KernelPlan is what the lowering passes read out of one sattn func: the shapes
 * and precisions, the static mask as a tree of mask ops, and the dynamic
 * stages in the order docs/semantics.md runs them. cg_cpu_kernel turns a
 * plan into a func.func in upstream dialects (scf, vector, memref, arith,
 * math, llvm) with the C ABI documented in docs/cpu-abi.md. */
#ifndef SATTN_CODEGEN_H
#define SATTN_CODEGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <stdio.h>

#include "mlir-c/ExecutionEngine.h"
#include "mlir-c/IR.h"
#include "sattn/cpu.h"
#include "sattn/spec.h"

/* X(enum, op name without the "sattn.mask_" prefix) */
#define CG_MASK_KINDS(X) \
  X(MK_ALL, "all")       \
  X(MK_CAUSAL, "causal") \
  X(MK_WINDOW, "window") \
  X(MK_WINDOW2D, "window2d") \
  X(MK_GLOBAL, "global") \
  X(MK_BLOCKS, "blocks") \
  X(MK_BIGBIRD, "bigbird") \
  X(MK_AND, "and")       \
  X(MK_OR, "or")

typedef enum {
#define X(e, s) e,
  CG_MASK_KINDS(X)
#undef X
} MaskKind;

typedef struct MaskNode {
  MaskKind kind;
  /* window: size, dilation. window2d: image_h, image_w, win_h, win_w,
   * offset. blocks: block. bigbird: block, window, random, global, seed. */
  int64_t a[5];
  int n_list; /* global: tokens; blocks: 2 * pairs (query, key) */
  int64_t *list;
  struct MaskNode *lhs, *rhs;
} MaskNode;

typedef struct {
  /* Shapes, precisions, the scale and every dynamic stage; the static
   * pattern fields of the spec are unused (the mask tree says it). */
  SaSpec s;
  const MaskNode *mask; /* NULL: every pair */
} KernelPlan;

/* The kernel as MLIR text: one func.func named s.name with the C ABI, to
 * be parsed into the module being lowered. With vnni, the kernel may call
 * AVX512-VNNI instructions (the module is for a CPU that has them). NULL
 * when out of memory. The caller frees the text. */
char *cg_cpu_kernel(const KernelPlan *plan, bool vnni);

/* The module attribute that tells sattn-lower-cpu the target CPU has
 * AVX512-VNNI (a unit attribute on builtin.module). */
#define CG_CPU_VNNI_ATTR "sattn.x86_vnni"

/* How a call of the kernel for s splits into tasks when it asks for no
 * importance output: tiles of the returned number of queries, or (when 0)
 * one task per (batch, head) if *per_head, else one task. */
int64_t cg_cpu_query_tile(const SaSpec *s, bool *per_head);

/* The storage and output types the CPU kernels read and write. */
bool cg_cpu_dtype_supported(SaDtype t);

/* ---- cuda/kernel.c: fused attention for NVIDIA GPUs (docs/cuda.md) ---- */

/* How a kernel is launched is the runtime's sa_cuda_describe (sattn/cuda.h). */

/* ---- cuda/target.c: PTX, cubins and headers ---- */
/* The chips --arch accepts, NULL-terminated. Static. */
const char *const *cg_cuda_arches(void);
bool cg_cuda_arch_known(const char *arch);
/* The pipeline from sattn-lower-cuda's output to a gpu.binary of PTX. */
void cg_cuda_pipeline(const char *arch, char *buf, size_t cap);
/* Writes the PTX of the module's gpu.binary. */
bool cg_cuda_write_ptx(MlirModule m, FILE *out, char *err, size_t cap);
/* Assembles PTX into a cubin with the toolkit's ptxas (cuda_path, else
 * $CUDA_HOME, else /usr/local/cuda). */
bool cg_cuda_write_cubin(const char *ptx, size_t len, const char *arch, const char *cuda_path, FILE *out, char *err,
                         size_t cap);
/* The C header: one SaCudaKernel per spec. */
void cg_cuda_header(FILE *f, const SaSpec *const *specs, int n, const char *arch);
/* Whether the CUDA generator handles s; if not, why (into why, cap bytes). */
bool cg_cuda_supported(const SaSpec *s, char *why, size_t cap);
/* The kernel as a gpu.func (text) for the module's gpu.module, which must
 * also hold the dynamic shared block @sattn_smem. NULL when out of memory. */
char *cg_cuda_kernel(const KernelPlan *plan);
/* Filter rounds and DSA prediction (select.c): whether the CUDA target
 * runs this selection spec (else why), and its three gpu.funcs as MLIR
 * text (name_grids, name_select, name; sattn/cuda.h). NULL when out of
 * memory or when the runtime's contract disagrees. */
bool cg_cuda_select_supported(const SaSpec *s, char *why, size_t cap);
char *cg_cuda_select_kernels(const KernelPlan *plan);
/* SpAtten's token, head and value pruning and progressive quantization
 * (select.c): whether the CUDA target runs this spec (else why), and its
 * three gpu.funcs (name_prune, name, name_finish; sattn/cuda.h). */
bool cg_cuda_prune_supported(const SaSpec *s, char *why, size_t cap);
char *cg_cuda_prune_kernels(const KernelPlan *plan);

/* ---- cpu/header.c: the C header for n kernels' objects ---- */
void cg_cpu_header(FILE *out, const SaSpec *const *specs, int n);
/* The kernel's C declaration (no semicolon) into buf, truncated to cap. */
void cg_cpu_prototype(const SaSpec *s, char *buf, size_t cap);

/* ---- cpu/target.c: from the lowered module to machine code ---- */

/* The upstream pass pipeline from sattn-lower-cpu's output to the LLVM
 * dialect (a comma-separated list for a builtin.module pass manager). */
extern const char cg_cpu_llvm_pipeline[];

typedef enum { CG_OUT_LLVM, CG_OUT_ASM, CG_OUT_OBJ } CgOutput;

/* Registers the x86 back end with LLVM, once per process. Thread-safe. */
void cg_cpu_init(void);

/* The CPU names cg_cpu_emit accepts besides "native", NULL-terminated. */
const char *const *cg_cpu_names(void);

/* Whether --cpu names a CPU the back end knows (NULL and "native" do). */
bool cg_cpu_known(const char *cpu);

/* Whether the CPU (NULL or "native": the host) has AVX512-VNNI and
 * AVX512BW; false for names cg_cpu_known rejects. */
bool cg_cpu_has_vnni(const char *cpu);

/* Translates a module in the LLVM dialect to LLVM IR, runs LLVM's O3
 * pipeline for `cpu` (an LLVM CPU name such as skylake-avx512, haswell or
 * x86-64; NULL or "native" detects the host and its features) and writes
 * optimized LLVM IR, assembly or an ELF object to out. False with a message
 * in err on failure. The module is only read. */
bool cg_cpu_emit(MlirModule m, const char *cpu, CgOutput what, FILE *out, char *err, size_t cap);

/* The kernel ABI of docs/cpu-abi.md, with untyped tensor pointers. */
typedef SattnCpuKernelFn CgKernelFn;

/* An in-process JIT of a module in the LLVM dialect, compiled at O3 for the
 * host. The engine owns the code: functions looked up stay valid until
 * cg_cpu_jit_destroy. */
typedef struct {
  MlirExecutionEngine engine;
} CgJit;
bool cg_cpu_jit_create(MlirModule m, CgJit *out);
CgKernelFn cg_cpu_jit_lookup(CgJit *jit, const char *name); /* NULL when absent */
void cg_cpu_jit_destroy(CgJit *jit);

/* ---- accel/: the accelerator back end ---- */
#include "../runtime/accel/isa.h"
#include "sattn/accel.h"

/* A scheduled accelerator program: what a .sacc stream holds
 * (docs/accel-isa.md), before encoding. Every array is owned. */
typedef struct {
  char name[64];
  uint64_t config_hash;
  int64_t header[H_COUNT], mask[M_COUNT];
  int64_t *globals;
  int n_globals;
  SaBlockPair *blocks;
  int n_blocks;
  int64_t *offsets;
  size_t n_offsets;
  uint64_t *code; /* encoded words; a HEADS word's body length included */
  size_t n_code;
  bool dynamic; /* dyn holds the DYNAMIC section */
  int64_t dyn[D_COUNT];
} CgAccel;

/* schedule.c: the program of spec s (a fixed seq; the static pattern in its
 * pattern fields) for cfg's PE array. False with a reason in err when the
 * spec holds what the accelerator does not run, or out of memory. */
bool cg_accel_schedule(const SaSpec *s, const SaAccelConfig *cfg, CgAccel *out, char *err, size_t cap);
void cg_accel_free(CgAccel *p);

/* saccel.c: the program as a func.func in the saccel dialect
 * (dialect/saccel.irdl.mlir), as MLIR text; NULL when out of memory. */
char *cg_accel_print(const CgAccel *p);
/* saccel.c: the program of a func.func in the saccel dialect. False with a
 * diagnostic at the offending op. */
bool cg_accel_read(MlirOperation func, CgAccel *out);
/* The .sacc bytes of p (malloc'ed), or NULL when out of memory. */
unsigned char *cg_accel_write(const CgAccel *p, size_t *len);

#endif
