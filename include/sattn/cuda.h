/* sattn/cuda.h: running sattn's CUDA kernels (docs/cuda.md).
 *
 * sattnc --target=cuda writes PTX or a cubin holding one kernel per spec,
 * and a header with one SaCudaKernel per kernel: everything needed to
 * launch it. This runtime loads the image and launches kernels through the
 * CUDA driver API. libcuda.so.1 is opened with dlopen on sa_cuda_open, so
 * programs linked with the runtime start and run everywhere; on a machine
 * without a driver sa_cuda_open returns SA_ERR_UNSUPPORTED.
 *
 * The runtime needs neither LLVM, MLIR nor the CUDA toolkit to build: on a
 * GPU machine, build libsattn_runtime and the runner, carry the PTX or
 * cubin and the header, and run.
 *
 * Every call returns a status and, on failure, writes a message into err
 * (cap bytes) when err is not NULL; nothing aborts. Device memory is plain
 * cuMemAlloc memory (never managed). One SaCuda per thread. */
#ifndef SATTN_CUDA_H
#define SATTN_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "sattn/spec.h"
#include "sattn/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Shared memory of the selection kernels' name_select (bytes) */
#define SA_CUDA_SELECT_SHARED 32768

/* One compiled kernel: its launch contract.
 *   name(const T *q, const T *k, const T *v, U *o, int64_t seq)
 * grid (ceil(seq / query_tile), batch * heads, 1), block (threads, 1, 1),
 * shared_bytes of dynamic shared memory. q and o hold [batch, heads, seq,
 * head_dim] and k and v [batch, kv_heads, seq, head_dim] elements in the
 * order `layout` names; pointers are 16-byte aligned when a row of
 * head_dim elements is a multiple of 16 bytes (head_dim a multiple of 8 for
 * fp16 and bf16, of 4 for fp32). */
typedef struct {
  const char *name;
  int threads, query_tile, key_tile, shared_bytes;
  int64_t heads, kv_heads, head_dim;
  SaLayout layout;
  SaDtype storage, output;
  const char *arch; /* the sm_XX it was compiled for */
  /* Filter rounds and DSA prediction (select_rounds > 0, the number of
   * selection stages): three kernels, launched in this order, each
   *   f(q, k, v, o, int64_t seq, uint8_t *workspace)
   * name_grids  grid (ceil(seq / 128), batch * (heads + kv_heads)), 128 threads:
   *             each row's quantized (or projected) grids and steps
   * name_select grid (ceil(seq / query_tile), batch * heads), threads,
   *             SA_CUDA_SELECT_SHARED bytes of shared memory (2048 radix bins
   *             a warp): each query row's exact top-k, a list of keys
   * name        the same grid, shared_bytes: attention over each row's list
   * The workspace holds sa_cuda_workspace_bytes(k, batch, seq) bytes
   * (docs/cuda.md gives its layout); grid_bytes is the sum over stages of
   * their grid rows' bytes, list_count and list_ratio bound a row's list
   * (the first stage's rule, and 32 entries of slack; both 0: seq).
   * sa_cuda_launch keeps the
   * workspace itself. */
  int select_rounds, grid_bytes;
  int64_t list_count;
  double list_ratio;
  /* SpAtten's token, head and value pruning and progressive quantization,
   * and N:M after a selection, with pruning or progressive quantization, or
   * with groups of more than 8 keys or M not dividing 8 (pruning 1: the
   * kernels on exact scores; progressive 1 when K is quantized): three
   * kernels, launched
   * in this order, each
   *   f(q, k, v, o, int64_t seq, uint8_t *workspace, const float *token_in,
   *     const float *head_in, float *token_out, float *head_out)
   * name_prune  grid (ceil(seq / 128), batch), 128 threads, 4096 bytes of
   *             shared memory: the kept tokens and heads, K's grids
   * name        grid (ceil(seq / query_tile), batch * heads), shared_bytes:
   *             a warp per query row
   * name_finish grid (ceil(seq / 128), batch), 128 threads: the importance
   *             outputs
   * The importance vectors ([batch, seq] and [batch, heads] f32) may be 0
   * (sa_cuda_launch_importance); the workspace holds
   * sa_cuda_workspace_bytes(k, batch, seq) bytes. With select_rounds > 0
   * too, five kernels, all with these ten arguments: name_grids,
   * name_prune, name_select, name, name_finish. */
  int pruning, progressive;
} SaCudaKernel;

/* The selection stages the CUDA kernels of s run, in order, into out:
 * -1 for DSA's prediction, r for filter round r; a stage whose rule keeps
 * every key (top 100%, or a count of at least a static seq) is none, as
 * the compiler drops it. Returns their number. */
int sa_cuda_select_stages(const SaSpec *s, int out[SA_MAX_FILTER_ROUNDS + 1]);

/* The launch contract of the kernel sattn generates for s (the compiler
 * follows it; runners without the compiler call it too). arch is left
 * NULL. */
void sa_cuda_describe(const SaSpec *s, SaCudaKernel *out);

typedef struct SaCuda SaCuda;
typedef struct SaCudaModule SaCudaModule;
typedef uint64_t SaCudaPtr; /* a device address */

/* Opens the driver, device `device` and its primary context. */
SaStatus sa_cuda_open(int device, SaCuda **out, char *err, size_t cap);
void sa_cuda_close(SaCuda *cu); /* NULL is a no-op */
/* The device's name and compute capability (major * 10 + minor). */
SaStatus sa_cuda_device(SaCuda *cu, char *name, size_t name_cap, int *capability);

SaStatus sa_cuda_alloc(SaCuda *cu, size_t bytes, SaCudaPtr *out, char *err, size_t cap);
void sa_cuda_free(SaCuda *cu, SaCudaPtr p);
SaStatus sa_cuda_upload(SaCuda *cu, SaCudaPtr dst, const void *src, size_t bytes, char *err, size_t cap);
SaStatus sa_cuda_download(SaCuda *cu, void *dst, SaCudaPtr src, size_t bytes, char *err, size_t cap);
/* Sets `bytes` bytes at dst to `byte` (to poison outputs). */
SaStatus sa_cuda_fill(SaCuda *cu, SaCudaPtr dst, unsigned char byte, size_t bytes, char *err, size_t cap);
SaStatus sa_cuda_sync(SaCuda *cu, char *err, size_t cap);

/* Loads a PTX text (NUL-terminated) or a cubin. */
SaStatus sa_cuda_module_load(SaCuda *cu, const void *image, size_t len, SaCudaModule **out, char *err, size_t cap);
void sa_cuda_module_unload(SaCudaModule *m);

/* Launches kernel k of m on the default stream (asynchronous), all its
 * stages for select_rounds > 0 (with m's workspace, grown as needed and
 * freed by sa_cuda_module_unload). batch and seq must be at least 0;
 * nothing runs when either is 0.
 * SA_ERR_INVALID_ARGUMENT for shapes the grid cannot hold. */
SaStatus sa_cuda_launch(SaCudaModule *m, const SaCudaKernel *k, SaCudaPtr q, SaCudaPtr kk, SaCudaPtr v, SaCudaPtr o,
                        int64_t batch, int64_t seq, char *err, size_t cap);

/* SpAtten's importance vectors on the device, each 0 when absent: the
 * inputs as a previous layer left them (an absent one reads as zeros), the
 * outputs as the reference defines them (sattn/reference.h). */
typedef struct {
  SaCudaPtr token_in, head_in;   /* [batch, seq], [batch, heads] f32 */
  SaCudaPtr token_out, head_out; /* the same shapes */
} SaCudaImportance;

/* sa_cuda_launch with the importance vectors of a pruning kernel (imp may
 * be NULL: none). SA_ERR_INVALID_ARGUMENT when a kernel without pruning is
 * given any. */
SaStatus sa_cuda_launch_importance(SaCudaModule *m, const SaCudaKernel *k, SaCudaPtr q, SaCudaPtr kk, SaCudaPtr v,
                                   SaCudaPtr o, const SaCudaImportance *imp, int64_t batch, int64_t seq, char *err,
                                   size_t cap);

/* Bytes of workspace a kernel with select_rounds > 0 or pruning needs (0
 * otherwise): batch blocks of the per-batch layout in docs/cuda.md. */
size_t sa_cuda_workspace_bytes(const SaCudaKernel *k, int64_t batch, int64_t seq);

/* Times `reps` back-to-back launches with CUDA events after one warm-up;
 * *ms is the mean per launch. */
SaStatus sa_cuda_time(SaCudaModule *m, const SaCudaKernel *k, SaCudaPtr q, SaCudaPtr kk, SaCudaPtr v, SaCudaPtr o,
                      int64_t batch, int64_t seq, int reps, double *ms, char *err, size_t cap);

#ifdef __cplusplus
}
#endif

#endif
