/* target.c: the CPU back end after sattn-lower-cpu: upstream lowering to
 * the LLVM dialect, translation to LLVM IR, LLVM's O3 pipeline for a named
 * or detected CPU, and emission as LLVM IR, assembly or an object file; or
 * an in-process JIT through MLIR's ExecutionEngine. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "../codegen.h"
#include "sattn/cpu.h"
#include "llvm-c/Core.h"
#include "llvm-c/Error.h"
#include "llvm-c/Target.h"
#include "llvm-c/TargetMachine.h"
#include "llvm-c/Transforms/PassBuilder.h"
#include "mlir-c/ExecutionEngine.h"
#include "mlir-c/Target/LLVMIR.h"

/* Vector transfers become loops first; reductions may be reassociated (a
 * serial chain otherwise); canonicalize and cse shrink the text LLVM sees. */
const char cg_cpu_llvm_pipeline[] =
    "canonicalize,cse,func.func(convert-vector-to-scf),convert-scf-to-cf,"
    "convert-vector-to-llvm{reassociate-fp-reductions=true enable-x86vector=true},convert-math-to-llvm,expand-strided-metadata,"
    "finalize-memref-to-llvm,convert-arith-to-llvm,convert-index-to-llvm,convert-func-to-llvm,"
    "convert-cf-to-llvm,reconcile-unrealized-casts";

/* The CPUs --cpu accepts (LLVM's names); LLVM itself only warns about an
 * unknown name and falls back to a generic one, which would hide a typo.
 * vnni: the CPU has AVX512-VNNI (and AVX512BW), so kernels may use
 * vpdpbusd (docs/cpu-abi.md). */
static const struct {
  const char *name;
  bool vnni;
} cpus[] = {
    {"x86-64", false},         {"x86-64-v2", false},      {"x86-64-v3", false},     {"x86-64-v4", false},
    {"nehalem", false},        {"sandybridge", false},    {"ivybridge", false},     {"haswell", false},
    {"broadwell", false},      {"skylake", false},        {"skylake-avx512", false}, {"cascadelake", true},
    {"cooperlake", true},      {"cannonlake", false},     {"icelake-client", true}, {"icelake-server", true},
    {"tigerlake", true},       {"alderlake", false},      {"raptorlake", false},    {"meteorlake", false},
    {"sapphirerapids", true},  {"emeraldrapids", true},   {"graniterapids", true},  {"znver1", false},
    {"znver2", false},         {"znver3", false},         {"znver4", true},         {"znver5", true},
};
#define N_CPUS (sizeof cpus / sizeof *cpus)
static const char *known_cpus[N_CPUS + 1];
static pthread_once_t names_once = PTHREAD_ONCE_INIT;
static void fill_names(void) {
  for (size_t i = 0; i < N_CPUS; i++)
    known_cpus[i] = cpus[i].name;
}

const char *const *cg_cpu_names(void) {
  pthread_once(&names_once, fill_names);
  return known_cpus;
}

bool cg_cpu_known(const char *cpu) {
  if (cpu == NULL || strcmp(cpu, "native") == 0)
    return true;
  for (size_t i = 0; i < N_CPUS; i++)
    if (strcmp(cpu, cpus[i].name) == 0)
      return true;
  return false;
}

bool cg_cpu_has_vnni(const char *cpu) {
  if (cpu == NULL || strcmp(cpu, "native") == 0) {
    char *f = LLVMGetHostCPUFeatures();
    bool yes = f && strstr(f, "+avx512vnni") && strstr(f, "+avx512bw");
    LLVMDisposeMessage(f);
    return yes;
  }
  for (size_t i = 0; i < N_CPUS; i++)
    if (strcmp(cpu, cpus[i].name) == 0)
      return cpus[i].vnni;
  return false;
}

/* LLVM's target registry is process-wide and not safe to fill from two
 * threads at once: contexts on different threads share one initialization. */
static pthread_once_t x86_once = PTHREAD_ONCE_INIT;
static void init_x86_once(void) {
  LLVMInitializeX86TargetInfo();
  LLVMInitializeX86Target();
  LLVMInitializeX86TargetMC();
  LLVMInitializeX86AsmPrinter();
}
void cg_cpu_init(void) { pthread_once(&x86_once, init_x86_once); }

static bool take_error(LLVMErrorRef e, char *err, size_t cap, const char *what) {
  if (!e)
    return true;
  char *msg = LLVMGetErrorMessage(e);
  snprintf(err, cap, "%s: %s", what, msg);
  LLVMDisposeErrorMessage(msg);
  return false;
}

bool cg_cpu_emit(MlirModule m, const char *cpu, CgOutput what, FILE *out, char *err, size_t cap) {
  if (!cg_cpu_known(cpu)) {
    snprintf(err, cap, "unknown CPU '%s' (use native, x86-64, x86-64-v3, haswell, skylake-avx512, znver4, ...)", cpu);
    return false;
  }
  cg_cpu_init();
  bool host = cpu == NULL || strcmp(cpu, "native") == 0;
  char *host_cpu = host ? LLVMGetHostCPUName() : NULL;
  char *host_features = host ? LLVMGetHostCPUFeatures() : NULL;
  const char *cpu_name = host ? host_cpu : cpu;
  const char *features = host ? host_features : "";
  char *triple = LLVMGetDefaultTargetTriple();
  LLVMTargetRef target;
  char *msg = NULL;
  bool ok = false;
  LLVMContextRef lctx = LLVMContextCreate();
  LLVMModuleRef mod = NULL;
  LLVMTargetMachineRef tm = NULL;
  if (LLVMGetTargetFromTriple(triple, &target, &msg)) {
    snprintf(err, cap, "no LLVM target for '%s': %s", triple, msg);
    goto done;
  }
  tm = LLVMCreateTargetMachine(target, triple, cpu_name, features, LLVMCodeGenLevelAggressive, LLVMRelocPIC,
                               LLVMCodeModelDefault);
  if (!tm) {
    snprintf(err, cap, "cannot create a target machine for cpu '%s'", cpu_name);
    goto done;
  }
  mod = mlirTranslateModuleToLLVMIR(mlirModuleGetOperation(m), lctx);
  if (!mod) {
    snprintf(err, cap, "the module does not translate to LLVM IR");
    goto done;
  }
  LLVMSetTarget(mod, triple);
  LLVMTargetDataRef dl = LLVMCreateTargetDataLayout(tm);
  char *dls = LLVMCopyStringRepOfTargetData(dl);
  LLVMSetDataLayout(mod, dls);
  LLVMDisposeMessage(dls);
  LLVMDisposeTargetData(dl);
  /* Every function is compiled for the chosen CPU, whatever the caller's flags. */
  for (LLVMValueRef f = LLVMGetFirstFunction(mod); f; f = LLVMGetNextFunction(f)) {
    if (LLVMIsDeclaration(f))
      continue;
    LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex,
                               LLVMCreateStringAttribute(lctx, "target-cpu", 10, cpu_name, (unsigned)strlen(cpu_name)));
    if (features[0])
      LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex,
                                 LLVMCreateStringAttribute(lctx, "target-features", 15, features,
                                                           (unsigned)strlen(features)));
  }
  LLVMPassBuilderOptionsRef opts = LLVMCreatePassBuilderOptions();
  bool passes_ok = take_error(LLVMRunPasses(mod, "default<O3>", tm, opts), err, cap, "LLVM O3");
  LLVMDisposePassBuilderOptions(opts);
  if (!passes_ok)
    goto done;
  if (what == CG_OUT_LLVM) {
    char *text = LLVMPrintModuleToString(mod);
    fputs(text, out);
    LLVMDisposeMessage(text);
    ok = true;
    goto done;
  }
  LLVMMemoryBufferRef buf;
  if (LLVMTargetMachineEmitToMemoryBuffer(tm, mod, what == CG_OUT_ASM ? LLVMAssemblyFile : LLVMObjectFile, &msg,
                                          &buf)) {
    snprintf(err, cap, "code generation failed: %s", msg);
    goto done;
  }
  size_t n = LLVMGetBufferSize(buf);
  ok = fwrite(LLVMGetBufferStart(buf), 1, n, out) == n;
  if (!ok)
    snprintf(err, cap, "cannot write the output");
  LLVMDisposeMemoryBuffer(buf);
done:
  if (msg)
    LLVMDisposeMessage(msg);
  if (mod)
    LLVMDisposeModule(mod);
  if (tm)
    LLVMDisposeTargetMachine(tm);
  LLVMContextDispose(lctx);
  LLVMDisposeMessage(triple);
  if (host_cpu)
    LLVMDisposeMessage(host_cpu);
  if (host_features)
    LLVMDisposeMessage(host_features);
  return ok;
}

bool cg_cpu_jit_create(MlirModule m, CgJit *out) {
  out->engine = mlirExecutionEngineCreate(m, 3, 0, NULL, false, false);
  if (mlirExecutionEngineIsNull(out->engine))
    return false;
  /* kernels of static patterns run their tiles on the runtime's pool */
  int32_t (*par)(void (*)(void *, int64_t), void *, int64_t) = sattn_cpu_parallel;
  void *sym;
  memcpy(&sym, &par, sizeof sym);
  mlirExecutionEngineRegisterSymbol(out->engine, mlirStringRefCreateFromCString("sattn_cpu_parallel"), sym);
  return true;
}

CgKernelFn cg_cpu_jit_lookup(CgJit *jit, const char *name) {
  void *sym = mlirExecutionEngineLookup(jit->engine, mlirStringRefCreateFromCString(name));
  CgKernelFn fn;
  memcpy(&fn, &sym, sizeof fn); /* object pointer to function pointer, as dlsym */
  return fn;
}

void cg_cpu_jit_destroy(CgJit *jit) {
  if (!mlirExecutionEngineIsNull(jit->engine))
    mlirExecutionEngineDestroy(jit->engine);
  jit->engine.ptr = NULL;
}
