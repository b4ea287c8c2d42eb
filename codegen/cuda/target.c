/* target.c: from the gpu.module sattn-lower-cuda makes to PTX and cubins,
 * and the header that describes the kernels (docs/cuda.md).
 *
 * PTX comes from MLIR: nvvm-attach-target names the chip and the PTX
 * version explicitly (MLIR's canned pipeline defaults to sm_50 and a
 * newer chip without features stops LLVM with a fatal error), then
 * gpu-module-to-binary runs LLVM's NVPTX back end. A cubin is ptxas's
 * translation of that PTX, run from the toolkit the caller names. */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../dialect/dialect.h"
#include "../codegen.h"
#include "mlir-c/BuiltinAttributes.h"
#include "mlir-c/Dialect/GPU.h"
#include "sattn/cuda.h"

extern char **environ;

/* X(name): the chips the CUDA target compiles for. Every one gets PTX 8.5
 * (CUDA 12.5 and later), which mma.sp::ordered_metadata on sm_90a needs. */
#define CUDA_ARCHES(X) X("sm_80") X("sm_86") X("sm_89") X("sm_90") X("sm_90a")

static const char *const arches[] = {
#define X(n) n,
    CUDA_ARCHES(X)
#undef X
        NULL};

const char *const *cg_cuda_arches(void) { return arches; }

bool cg_cuda_arch_known(const char *arch) {
  for (int i = 0; arches[i]; i++)
    if (arch && !strcmp(arch, arches[i]))
      return true;
  return false;
}

void cg_cuda_pipeline(const char *arch, char *buf, size_t cap) {
  snprintf(buf, cap,
           "nvvm-attach-target{chip=%s features=+ptx85 O=3},gpu.module(convert-scf-to-cf),convert-nvvm-to-llvm,"
           "convert-arith-to-llvm,convert-index-to-llvm,gpu.module(convert-gpu-to-nvvm,canonicalize,cse,"
           "reconcile-unrealized-casts),gpu-module-to-binary{format=isa}",
           arch);
}

bool cg_cuda_write_ptx(MlirModule m, FILE *out, char *err, size_t cap) {
  MlirBlock body = mlirModuleGetBody(m);
  for (MlirOperation op = mlirBlockGetFirstOperation(body); !mlirOperationIsNull(op);
       op = mlirOperationGetNextInBlock(op)) {
    MlirStringRef name = mlirIdentifierStr(mlirOperationGetName(op));
    if (name.length != 10 || memcmp(name.data, "gpu.binary", 10))
      continue;
    MlirAttribute objs = mlirOperationGetAttributeByName(op, dl_ref("objects"));
    if (mlirAttributeIsNull(objs) || !mlirAttributeIsAArray(objs) || mlirArrayAttrGetNumElements(objs) < 1)
      break;
    MlirAttribute obj = mlirArrayAttrGetElement(objs, 0);
    if (!mlirAttributeIsAGPUObjectAttr(obj))
      break;
    MlirStringRef text = mlirGPUObjectAttrGetObject(obj);
    fwrite(text.data, 1, text.length, out);
    return true;
  }
  snprintf(err, cap, "internal error: the GPU pipeline left no gpu.binary with PTX");
  return false;
}

/* The ptxas of the toolkit: cuda_path, else $CUDA_HOME, else /usr/local/cuda. */
static void ptxas_path(const char *cuda_path, char *buf, size_t cap) {
  const char *root = cuda_path && *cuda_path ? cuda_path : getenv("CUDA_HOME");
  if (!root || !*root)
    root = "/usr/local/cuda";
  snprintf(buf, cap, "%s/bin/ptxas", root);
}

static bool slurp(const char *path, FILE *out) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return false;
  char buf[65536];
  size_t n;
  bool ok = true;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0)
    ok = fwrite(buf, 1, n, out) == n && ok;
  fclose(f);
  return ok;
}

bool cg_cuda_write_cubin(const char *ptx, size_t len, const char *arch, const char *cuda_path, FILE *out, char *err,
                         size_t cap) {
  char ptxas[1024];
  ptxas_path(cuda_path, ptxas, sizeof ptxas);
  if (access(ptxas, X_OK) != 0) {
    snprintf(err, cap, "no ptxas at %s: give the CUDA toolkit's path (sattnc --cuda-path DIR or CUDA_HOME)", ptxas);
    return false;
  }
  const char *tmp = getenv("TMPDIR");
  char dir[512];
  snprintf(dir, sizeof dir, "%s/sattn-ptxas-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(dir)) {
    snprintf(err, cap, "cannot make a temporary directory for ptxas: %s", strerror(errno));
    return false;
  }
  char in[600], cubin[600], log[600];
  snprintf(in, sizeof in, "%s/kernels.ptx", dir);
  snprintf(cubin, sizeof cubin, "%s/kernels.cubin", dir);
  snprintf(log, sizeof log, "%s/ptxas.log", dir);
  bool ok = false;
  FILE *f = fopen(in, "wb");
  if (f) {
    ok = fwrite(ptx, 1, len, f) == len;
    ok = fclose(f) == 0 && ok;
  }
  if (!ok) {
    snprintf(err, cap, "cannot write %s", in);
  } else {
    char archflag[64];
    snprintf(archflag, sizeof archflag, "-arch=%s", arch);
    char *argv[] = {ptxas, archflag, "-O3", in, "-o", cubin, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    int rc = posix_spawn(&pid, ptxas, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    int status = 0;
    if (rc != 0) {
      snprintf(err, cap, "cannot run %s: %s", ptxas, strerror(rc));
      ok = false;
    } else if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      char first[400] = "";
      FILE *lf = fopen(log, "r");
      if (lf) {
        if (!fgets(first, sizeof first, lf))
          first[0] = 0;
        fclose(lf);
      }
      first[strcspn(first, "\n")] = 0;
      snprintf(err, cap, "ptxas failed on the generated PTX: %s", first[0] ? first : "no message");
      ok = false;
    } else if (!(ok = slurp(cubin, out))) {
      snprintf(err, cap, "cannot read ptxas's output %s", cubin);
    }
  }
  unlink(in);
  unlink(cubin);
  unlink(log);
  rmdir(dir);
  return ok;
}

/* The C element type (16-bit floats travel as their bits). */
static const char *ctype(SaDtype t) { return t == DT_FP32 ? "float" : "uint16_t"; }

void cg_cuda_header(FILE *f, const SaSpec *const *specs, int n, const char *arch) {
  fprintf(f, "/* Generated by sattnc --target=cuda --arch=%s --emit=header: the launch contract of each\n"
             " * kernel in the matching PTX or cubin (docs/cuda.md). Launch them with sa_cuda_launch\n"
             " * (sattn/cuda.h, libsattn_runtime.a). */\n"
             "#pragma once\n#include <stddef.h>\n#include <stdint.h>\n#include \"sattn/cuda.h\"\n",
          arch);
  for (int i = 0; i < n; i++) {
    SaCudaKernel k;
    sa_cuda_describe(specs[i], &k);
    fprintf(f,
            "\n/* %s(const %s *q, const %s *k, const %s *v, %s *o, int64_t seq): %s in, %s out\n"
            " * grid (ceil(seq / %d), batch * %lld, 1), block (%d, 1, 1), %d bytes of dynamic shared memory */\n"
            "static const SaCudaKernel %s_cuda = {\"%s\", %d, %d, %d, %d, %lld, %lld, %lld, %s, %s, %s, \"%s\", %d, "
            "%d, %lld, %.17g, %d, %d};\n",
            k.name, ctype(k.storage), ctype(k.storage), ctype(k.storage), ctype(k.output), sa_dtype_name(k.storage),
            sa_dtype_name(k.output), k.query_tile,
            (long long)k.heads, k.threads, k.shared_bytes, k.name, k.name, k.threads, k.query_tile, k.key_tile,
            k.shared_bytes, (long long)k.heads, (long long)k.kv_heads, (long long)k.head_dim,
            k.layout == LAYOUT_BHSD ? "LAYOUT_BHSD" : "LAYOUT_BSHD",
            k.storage == DT_FP16 ? "DT_FP16" : k.storage == DT_BF16 ? "DT_BF16" : "DT_FP32",
            k.output == DT_FP16 ? "DT_FP16" : k.output == DT_BF16 ? "DT_BF16" : "DT_FP32", arch, k.select_rounds,
            k.grid_bytes, (long long)k.list_count, k.list_ratio, k.pruning, k.progressive);
    if (k.select_rounds > 0 && k.pruning)
      fprintf(f, "/* selection (%d stage%s) and pruning: kernels %s_grids, %s_prune, %s_select, %s, %s_finish, each\n"
                 " * with the workspace and the four importance vectors as further arguments;\n"
                 " * sa_cuda_launch_importance runs all five */\n",
              k.select_rounds, k.select_rounds == 1 ? "" : "s", k.name, k.name, k.name, k.name, k.name);
    else if (k.select_rounds > 0)
      fprintf(f, "/* selection: %d stage%s; kernels %s_grids, %s_select, %s, each with a sixth argument, the\n"
                 " * workspace (sa_cuda_workspace_bytes); sa_cuda_launch runs all three */\n",
              k.select_rounds, k.select_rounds == 1 ? "" : "s", k.name, k.name, k.name);
    else if (k.pruning)
      fprintf(f, "/* pruning: kernels %s_prune, %s, %s_finish, each with the workspace and the four importance\n"
                 " * vectors as further arguments; sa_cuda_launch_importance runs all three */\n",
              k.name, k.name, k.name);
    fprintf(f, "/* its PTX, when embedded by --emit=ptx-c */\nextern const unsigned char %s_ptx[];\nextern const size_t %s_ptx_size;\n",
            k.name, k.name);
  }
}
