/* cuda.c: the CUDA runtime (sattn/cuda.h). The driver API is reached
 * through dlopen("libcuda.so.1") and a table of entry points, so that
 * nothing here needs cuda.h or a driver at build or load time. Types are
 * the driver ABI's: CUresult is an int, handles are pointers, device
 * addresses 64-bit integers. */
#define _GNU_SOURCE
#include "sattn/cuda.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult;
typedef void *CUcontext, *CUmodule, *CUfunction, *CUstream, *CUevent;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;

enum {
  ATTR_CC_MAJOR = 75,               /* CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR */
  ATTR_CC_MINOR = 76,               /* ..._MINOR */
  ATTR_SHARED_OPTIN = 97,           /* CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN */
  FUNC_MAX_DYNAMIC_SHARED = 8,      /* CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES */
  JIT_ERROR_LOG_BUFFER = 5,         /* CU_JIT_ERROR_LOG_BUFFER */
  JIT_ERROR_LOG_BUFFER_SIZE = 6,    /* CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES */
};

/* X(field, symbol, return, parameters) */
#define CU_ENTRIES(X)                                                                                     \
  X(init, "cuInit", CUresult, (unsigned))                                                                 \
  X(device_get, "cuDeviceGet", CUresult, (CUdevice *, int))                                               \
  X(device_name, "cuDeviceGetName", CUresult, (char *, int, CUdevice))                                    \
  X(device_attr, "cuDeviceGetAttribute", CUresult, (int *, int, CUdevice))                                \
  X(ctx_retain, "cuDevicePrimaryCtxRetain", CUresult, (CUcontext *, CUdevice))                           \
  X(ctx_release, "cuDevicePrimaryCtxRelease_v2", CUresult, (CUdevice))                                    \
  X(ctx_set, "cuCtxSetCurrent", CUresult, (CUcontext))                                                    \
  X(ctx_sync, "cuCtxSynchronize", CUresult, (void))                                                       \
  X(mem_alloc, "cuMemAlloc_v2", CUresult, (CUdeviceptr *, size_t))                                        \
  X(mem_free, "cuMemFree_v2", CUresult, (CUdeviceptr))                                                    \
  X(htod, "cuMemcpyHtoD_v2", CUresult, (CUdeviceptr, const void *, size_t))                               \
  X(dtoh, "cuMemcpyDtoH_v2", CUresult, (void *, CUdeviceptr, size_t))                                     \
  X(memset8, "cuMemsetD8_v2", CUresult, (CUdeviceptr, unsigned char, size_t))                             \
  X(module_load, "cuModuleLoadDataEx", CUresult, (CUmodule *, const void *, unsigned, int *, void **))    \
  X(module_unload, "cuModuleUnload", CUresult, (CUmodule))                                                \
  X(module_function, "cuModuleGetFunction", CUresult, (CUfunction *, CUmodule, const char *))             \
  X(func_attr, "cuFuncSetAttribute", CUresult, (CUfunction, int, int))                                    \
  X(launch, "cuLaunchKernel", CUresult,                                                                   \
    (CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream, void **, \
     void **))                                                                                            \
  X(event_create, "cuEventCreate", CUresult, (CUevent *, unsigned))                                       \
  X(event_destroy, "cuEventDestroy_v2", CUresult, (CUevent))                                              \
  X(event_record, "cuEventRecord", CUresult, (CUevent, CUstream))                                         \
  X(event_sync, "cuEventSynchronize", CUresult, (CUevent))                                                \
  X(error_string, "cuGetErrorString", CUresult, (CUresult, const char **))

typedef struct {
#define X(f, sym, ret, params) ret(*f) params;
  CU_ENTRIES(X)
#undef X
  /* cuEventElapsedTime changed name in CUDA 12.8; either will do. */
  CUresult (*elapsed)(float *, CUevent, CUevent);
} CuApi;

struct SaCuda {
  void *lib;
  CuApi api;
  CUdevice dev;
  CUcontext ctx;
  int shared_optin;
};

#define MAX_FUNCS 64

struct SaCudaModule {
  SaCuda *cu;
  CUmodule mod;
  int n;
  struct {
    char name[128];
    CUfunction fn;
    int shared_set;
  } funcs[MAX_FUNCS];
  CUdeviceptr ws; /* the selection kernels' workspace, ws_bytes of it */
  size_t ws_bytes;
};

/* 4 warps own 64 query rows; K and V tiles of 64 keys (32 past head_dim
 * 128, to keep O's accumulators in registers); shared memory holds the Q
 * tile and two K and two V buffers, rows padded by 16 bytes. */
void sa_cuda_describe(const SaSpec *s, SaCudaKernel *out) {
  /* 16-bit inputs: head_dim padded to the mma's k of 16, rows padded by 8
   * elements. fp32 inputs (tf32 mma, k of 8): padded to 8, rows padded by 4
   * elements, which keeps every lane's 4-byte fragment load in its own bank.
   * Key tiles shrink with head_dim so that Q, two K and two V buffers fit
   * in the 99 KB a block may have on sm_86 and sm_89. */
  bool f32 = s->storage == DT_FP32;
  int dp = f32 ? (int)((s->head_dim + 7) / 8 * 8) : (int)((s->head_dim + 15) / 16 * 16);
  int stride = f32 ? dp + 4 : dp + 8, bytes = f32 ? 4 : 2;
  memset(out, 0, sizeof *out);
  out->name = s->name;
  out->threads = 128;
  out->query_tile = 64;
  if (f32)
    out->key_tile = dp <= 64 ? 64 : dp <= 128 ? 32 : 8;
  else
    out->key_tile = dp <= 128 ? 64 : 32;
  out->shared_bytes = (out->query_tile + 4 * out->key_tile) * stride * bytes;
  out->heads = s->heads;
  out->kv_heads = s->kv_heads;
  out->head_dim = s->head_dim;
  out->layout = s->layout;
  out->storage = s->storage;
  out->output = s->output;
  int stage[SA_MAX_FILTER_ROUNDS + 1];
  int rounds = sa_cuda_select_stages(s, stage);
  if (rounds > 0) {
    /* A warp per query row (select and attend), 4 to a block; the attend
     * kernel keeps each warp's query row in f32, head_dim padded to 32. */
    out->query_tile = 4;
    out->key_tile = 0;
    out->shared_bytes = 4 * (int)((s->head_dim + 31) / 32 * 32) * 4;
    out->select_rounds = rounds;
    out->grid_bytes = 0;
    for (int r = 0; r < rounds; r++) {
      int64_t len = stage[r] < 0 ? s->predict_dim : s->head_dim;
      out->grid_bytes += (int)((len + 15) / 16 * 16);
    }
    /* the first stage bounds every later list */
    SaKeep first = stage[0] < 0 ? s->predict_keep : s->filter[stage[0]].keep;
    if (first.kind == KEEP_TOP_COUNT)
      out->list_count = (int64_t)first.value;
    else if (first.kind == KEEP_TOP_RATIO)
      out->list_ratio = first.value;
  }
  if (s->token_keep < 1 || s->head_keep < 1 || s->value_keep < 1 || s->has_progressive ||
      (s->nm_m > 0 && (rounds > 0 || 8 % s->nm_m != 0))) {
    /* SpAtten's pruning, N:M after a selection, or N:M whose groups do not
     * fit the flash kernel's 8-key blocks (all on exact scores, the
     * pruning kernels): a warp per query row, 4 to a block, each with its query
     * row (f32, head_dim padded to 32), for value pruning a 1 KiB
     * histogram, and a stash of 2048 f64 scores (rows with more keys
     * recompute theirs on each pass) */
    out->query_tile = 4;
    out->key_tile = 0;
    out->shared_bytes = 4 * (int)((s->head_dim + 31) / 32 * 32) * 4 + (s->value_keep < 1 ? 4096 : 0) + 4 * 2048 * 8;
    out->pruning = 1;
    out->progressive = s->has_progressive;
  }
}

static bool keeps_all(const SaSpec *s, SaKeep k) {
  return k.kind == KEEP_ALL || (k.kind == KEEP_TOP_RATIO && k.value >= 1.0) ||
         (k.kind == KEEP_TOP_COUNT && s->seq > 0 && k.value >= (double)s->seq);
}

int sa_cuda_select_stages(const SaSpec *s, int out[SA_MAX_FILTER_ROUNDS + 1]) {
  int n = 0;
  if (s->has_predict && !keeps_all(s, s->predict_keep))
    out[n++] = -1;
  for (int r = 0; r < s->n_filter_rounds && r < SA_MAX_FILTER_ROUNDS; r++)
    if (!keeps_all(s, s->filter[r].keep))
      out[n++] = r;
  return n;
}

/* A row's list capacity: what the first selecting stage can keep of seq
 * candidates (ceil(ratio * seq) in double, as the rule computes it) and 32
 * entries more, at most seq: the select kernel writes the keys above the
 * top-k's last radix bin and the up to 32 in it before it drops the bin's
 * losers. */
static int64_t list_cap(const SaCudaKernel *k, int64_t seq) {
  int64_t c = seq;
  if (k->list_count > 0)
    c = k->list_count < seq ? k->list_count : seq;
  else if (k->list_ratio > 0) {
    double y = k->list_ratio * (double)seq;
    c = (int64_t)y;
    c += (double)c < y;
  }
  return c < seq - 32 ? c + 32 : seq;
}

/* Per batch (docs/cuda.md): steps (f64) of every stage, Q's heads then
 * K's; the rows' list lengths (i32); grids (i8) of every stage; lists
 * (i32, list_cap entries per row); the whole rounded up to 256 bytes. */
/* SpAtten's, per batch: token sums (f64) and head sums (f64), token and
 * head flags (u8); from a 16-byte boundary, with progressive quantization,
 * K's steps (f64) and grids (i16, rows of head_dim rounded up to 8), MSB
 * then full for each; the whole rounded up to 256 bytes. */
static size_t prune_workspace_bytes(const SaCudaKernel *k, int64_t batch, int64_t seq) {
  int64_t dp = (k->head_dim + 7) / 8 * 8;
  double est = ((9.0 + (k->progressive ? (double)k->kv_heads * (16.0 + 4.0 * (double)dp) : 0.0)) * (double)seq +
                9.0 * (double)k->heads + 512.0) *
               (double)batch;
  if (est > 0x1p62)
    return SIZE_MAX;
  int64_t at = (9 * seq + 9 * k->heads + 15) / 16 * 16;
  if (k->progressive)
    at += seq * k->kv_heads * (16 + 4 * dp);
  at = (at + 255) / 256 * 256;
  return (size_t)(at * batch);
}

static size_t select_workspace_bytes(const SaCudaKernel *k, int64_t batch, int64_t seq);

/* The selection's blocks and the pruning's, batch by batch: each batch's
 * block is its selection part then its pruning part. */
size_t sa_cuda_workspace_bytes(const SaCudaKernel *k, int64_t batch, int64_t seq) {
  if (!k || batch <= 0 || seq <= 0 || k->heads <= 0 || k->kv_heads <= 0)
    return 0;
  size_t a = k->select_rounds > 0 ? select_workspace_bytes(k, batch, seq) : 0;
  size_t b = k->pruning ? prune_workspace_bytes(k, batch, seq) : 0;
  return a == SIZE_MAX || b == SIZE_MAX || a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

static size_t select_workspace_bytes(const SaCudaKernel *k, int64_t batch, int64_t seq) {
  /* in double first: a shape whose workspace passes 2^62 bytes gets
   * SIZE_MAX, which no allocation satisfies */
  double nh = (double)(k->heads + k->kv_heads), s = (double)seq;
  double est = (8.0 * nh * k->select_rounds + 4.0 * k->heads + nh * k->grid_bytes +
                4.0 * k->heads * (double)list_cap(k, seq)) * s * (double)batch + 512.0 * (double)batch;
  if (est > 0x1p62)
    return SIZE_MAX;
  int64_t hs = k->heads + k->kv_heads;
  int64_t at = 8 * seq * hs * k->select_rounds;
  at += 4 * seq * k->heads;
  at = (at + 15) / 16 * 16;
  at += seq * hs * k->grid_bytes;
  at += 4 * seq * k->heads * list_cap(k, seq);
  at = (at + 255) / 256 * 256;
  return (size_t)(at * batch);
}

static void say(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *err, size_t cap, const char *fmt, ...) {
  if (!err || !cap)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, cap, fmt, ap);
  va_end(ap);
}

/* SA_OK, or SA_ERR_DEVICE with the driver's message for call `what`. */
static SaStatus check(SaCuda *cu, CUresult r, const char *what, char *err, size_t cap) {
  if (r == 0)
    return SA_OK;
  const char *msg = NULL;
  if (!cu->api.error_string || cu->api.error_string(r, &msg) != 0 || !msg)
    msg = "unknown error";
  say(err, cap, "%s failed: %s (CUresult %d)", what, msg, r);
  return SA_ERR_DEVICE;
}

SaStatus sa_cuda_open(int device, SaCuda **out, char *err, size_t cap) {
  if (!out)
    return SA_ERR_INVALID_ARGUMENT;
  *out = NULL;
  SaCuda *cu = calloc(1, sizeof *cu);
  if (!cu)
    return SA_ERR_OUT_OF_MEMORY;
  cu->lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!cu->lib) {
    say(err, cap, "no CUDA driver: libcuda.so.1 cannot be loaded (%s)", dlerror());
    free(cu);
    return SA_ERR_UNSUPPORTED;
  }
#define X(f, sym, ret, params)                                                     \
  if (!(*(void **)&cu->api.f = dlsym(cu->lib, sym))) {                             \
    say(err, cap, "the CUDA driver has no %s: it is older than this runtime", sym); \
    sa_cuda_close(cu);                                                             \
    return SA_ERR_UNSUPPORTED;                                                     \
  }
  CU_ENTRIES(X)
#undef X
  if (!(*(void **)&cu->api.elapsed = dlsym(cu->lib, "cuEventElapsedTime_v2")) &&
      !(*(void **)&cu->api.elapsed = dlsym(cu->lib, "cuEventElapsedTime"))) {
    say(err, cap, "the CUDA driver has no cuEventElapsedTime");
    sa_cuda_close(cu);
    return SA_ERR_UNSUPPORTED;
  }
  SaStatus st = check(cu, cu->api.init(0), "cuInit", err, cap);
  if (st == SA_OK)
    st = check(cu, cu->api.device_get(&cu->dev, device), "cuDeviceGet", err, cap);
  if (st == SA_OK)
    st = check(cu, cu->api.ctx_retain(&cu->ctx, cu->dev), "cuDevicePrimaryCtxRetain", err, cap);
  if (st == SA_OK)
    st = check(cu, cu->api.ctx_set(cu->ctx), "cuCtxSetCurrent", err, cap);
  if (st == SA_OK)
    st = check(cu, cu->api.device_attr(&cu->shared_optin, ATTR_SHARED_OPTIN, cu->dev), "cuDeviceGetAttribute", err,
               cap);
  if (st != SA_OK) {
    sa_cuda_close(cu);
    return st;
  }
  *out = cu;
  return SA_OK;
}

void sa_cuda_close(SaCuda *cu) {
  if (!cu)
    return;
  if (cu->ctx)
    cu->api.ctx_release(cu->dev);
  if (cu->lib)
    dlclose(cu->lib);
  free(cu);
}

SaStatus sa_cuda_device(SaCuda *cu, char *name, size_t name_cap, int *capability) {
  if (!cu)
    return SA_ERR_INVALID_ARGUMENT;
  int major = 0, minor = 0;
  if (name && name_cap && cu->api.device_name(name, (int)name_cap, cu->dev) != 0)
    snprintf(name, name_cap, "unknown");
  if (cu->api.device_attr(&major, ATTR_CC_MAJOR, cu->dev) != 0 || cu->api.device_attr(&minor, ATTR_CC_MINOR, cu->dev))
    return SA_ERR_DEVICE;
  if (capability)
    *capability = major * 10 + minor;
  return SA_OK;
}

SaStatus sa_cuda_alloc(SaCuda *cu, size_t bytes, SaCudaPtr *out, char *err, size_t cap) {
  if (!cu || !out)
    return SA_ERR_INVALID_ARGUMENT;
  CUdeviceptr p = 0;
  CUresult r = cu->api.mem_alloc(&p, bytes ? bytes : 1);
  if (r == 2) { /* CUDA_ERROR_OUT_OF_MEMORY */
    say(err, cap, "cuMemAlloc of %zu bytes: out of device memory", bytes);
    return SA_ERR_OUT_OF_MEMORY;
  }
  SaStatus st = check(cu, r, "cuMemAlloc", err, cap);
  *out = st == SA_OK ? (SaCudaPtr)p : 0;
  return st;
}

void sa_cuda_free(SaCuda *cu, SaCudaPtr p) {
  if (cu && p)
    cu->api.mem_free((CUdeviceptr)p);
}

SaStatus sa_cuda_upload(SaCuda *cu, SaCudaPtr dst, const void *src, size_t bytes, char *err, size_t cap) {
  if (!cu || (!src && bytes))
    return SA_ERR_INVALID_ARGUMENT;
  return bytes ? check(cu, cu->api.htod((CUdeviceptr)dst, src, bytes), "cuMemcpyHtoD", err, cap) : SA_OK;
}

SaStatus sa_cuda_download(SaCuda *cu, void *dst, SaCudaPtr src, size_t bytes, char *err, size_t cap) {
  if (!cu || (!dst && bytes))
    return SA_ERR_INVALID_ARGUMENT;
  return bytes ? check(cu, cu->api.dtoh(dst, (CUdeviceptr)src, bytes), "cuMemcpyDtoH", err, cap) : SA_OK;
}

SaStatus sa_cuda_fill(SaCuda *cu, SaCudaPtr dst, unsigned char byte, size_t bytes, char *err, size_t cap) {
  if (!cu)
    return SA_ERR_INVALID_ARGUMENT;
  return bytes ? check(cu, cu->api.memset8((CUdeviceptr)dst, byte, bytes), "cuMemsetD8", err, cap) : SA_OK;
}

SaStatus sa_cuda_sync(SaCuda *cu, char *err, size_t cap) {
  if (!cu)
    return SA_ERR_INVALID_ARGUMENT;
  return check(cu, cu->api.ctx_sync(), "cuCtxSynchronize (a kernel failed)", err, cap);
}

SaStatus sa_cuda_module_load(SaCuda *cu, const void *image, size_t len, SaCudaModule **out, char *err, size_t cap) {
  if (!cu || !image || !len || !out)
    return SA_ERR_INVALID_ARGUMENT;
  *out = NULL;
  SaCudaModule *m = calloc(1, sizeof *m);
  if (!m)
    return SA_ERR_OUT_OF_MEMORY;
  m->cu = cu;
  /* PTX must end in a NUL; copy it when the caller's bytes do not. */
  const unsigned char *bytes = image;
  bool elf = len >= 4 && bytes[0] == 0x7f && bytes[1] == 'E' && bytes[2] == 'L' && bytes[3] == 'F';
  char *copy = NULL;
  if (!elf && bytes[len - 1] != 0) {
    if (!(copy = malloc(len + 1))) {
      free(m);
      return SA_ERR_OUT_OF_MEMORY;
    }
    memcpy(copy, image, len);
    copy[len] = 0;
    image = copy;
  }
  char log[2048] = "";
  int opts[2] = {JIT_ERROR_LOG_BUFFER, JIT_ERROR_LOG_BUFFER_SIZE};
  void *vals[2] = {log, (void *)(uintptr_t)sizeof log};
  CUresult r = cu->api.module_load(&m->mod, image, 2, opts, vals);
  free(copy);
  if (r != 0) {
    SaStatus st = check(cu, r, "cuModuleLoadDataEx", err, cap);
    if (log[0] && err && cap) {
      size_t n = strlen(err);
      snprintf(err + n, cap - n, ": %s", log);
    }
    free(m);
    return st;
  }
  *out = m;
  return SA_OK;
}

void sa_cuda_module_unload(SaCudaModule *m) {
  if (!m)
    return;
  if (m->ws)
    m->cu->api.mem_free(m->ws);
  m->cu->api.module_unload(m->mod);
  free(m);
}

/* The function `name` (a kernel's or one of its stages'), with `shared`
 * bytes of dynamic shared memory allowed. */
static SaStatus function(SaCudaModule *m, const char *name, int shared, CUfunction *fn, char *err, size_t cap) {
  SaCuda *cu = m->cu;
  for (int i = 0; i < m->n; i++)
    if (!strcmp(m->funcs[i].name, name)) {
      *fn = m->funcs[i].fn;
      return SA_OK;
    }
  if (strlen(name) >= sizeof m->funcs[0].name || m->n == MAX_FUNCS) {
    say(err, cap, "kernel '%s': too many kernels or too long a name", name);
    return SA_ERR_INVALID_ARGUMENT;
  }
  SaStatus st = check(cu, cu->api.module_function(fn, m->mod, name), "cuModuleGetFunction", err, cap);
  if (st != SA_OK)
    return st;
  if (shared > cu->shared_optin) {
    say(err, cap, "kernel '%s' needs %d bytes of shared memory; this GPU allows %d per block", name, shared,
        cu->shared_optin);
    return SA_ERR_UNSUPPORTED;
  }
  st = check(cu, cu->api.func_attr(*fn, FUNC_MAX_DYNAMIC_SHARED, shared), "cuFuncSetAttribute", err, cap);
  if (st != SA_OK)
    return st;
  snprintf(m->funcs[m->n].name, sizeof m->funcs[0].name, "%s", name);
  m->funcs[m->n++].fn = *fn;
  return SA_OK;
}

/* The three stages of a selection or pruning kernel (sattn/cuda.h), on m's
 * workspace; imp (pruning only) the importance vectors. */
static SaStatus launch_stages(SaCudaModule *m, const SaCudaKernel *k, CUdeviceptr a[4], const SaCudaImportance *imp,
                              int64_t batch, int64_t seq, char *err, size_t cap) {
  SaCuda *cu = m->cu;
  size_t need = sa_cuda_workspace_bytes(k, batch, seq);
  int64_t gy_grids = batch * (k->heads + k->kv_heads);
  if (k->select_rounds > 0 && gy_grids > 65535) {
    say(err, cap, "kernel '%s': batch %lld x (heads + kv_heads) is beyond the grid's limits", k->name,
        (long long)batch);
    return SA_ERR_INVALID_ARGUMENT;
  }
  if (need == SIZE_MAX) {
    say(err, cap, "kernel '%s': batch %lld x seq %lld needs a workspace beyond any GPU's memory", k->name,
        (long long)batch, (long long)seq);
    return SA_ERR_INVALID_ARGUMENT;
  }
  if (need > m->ws_bytes) {
    if (m->ws)
      cu->api.mem_free(m->ws);
    m->ws = 0, m->ws_bytes = 0;
    SaStatus st = check(cu, cu->api.mem_alloc(&m->ws, need), "cuMemAlloc (workspace)", err, cap);
    if (st != SA_OK)
      return st;
    m->ws_bytes = need;
  }
  char name[160];
  struct {
    const char *suffix;
    int64_t rows, gy;
    int shared;
  } select[3] = {{"_grids", 128, gy_grids, 0}, {"_select", k->query_tile, batch * k->heads, SA_CUDA_SELECT_SHARED},
                 {"", k->query_tile, batch * k->heads, k->shared_bytes}},
    prune[3] = {{"_prune", 128, batch, 4096}, {"", k->query_tile, batch * k->heads, k->shared_bytes},
                {"_finish", 128, batch, 0}},
    both[5] = {{"_grids", 128, gy_grids, 0}, {"_prune", 128, batch, 4096},
               {"_select", k->query_tile, batch * k->heads, SA_CUDA_SELECT_SHARED},
               {"", k->query_tile, batch * k->heads, k->shared_bytes}, {"_finish", 128, batch, 0}},
    *stage = k->pruning ? (k->select_rounds > 0 ? both : prune) : select;
  int stages = k->pruning && k->select_rounds > 0 ? 5 : 3;
  int64_t s = seq;
  CUdeviceptr ws = m->ws;
  const SaCudaImportance none = {0, 0, 0, 0}, *vi = imp ? imp : &none;
  CUdeviceptr iv[4] = {vi->token_in, vi->head_in, vi->token_out, vi->head_out};
  void *params[10] = {&a[0], &a[1], &a[2], &a[3], &s, &ws, &iv[0], &iv[1], &iv[2], &iv[3]};
  for (int i = 0; i < stages; i++) {
    snprintf(name, sizeof name, "%s%s", k->name, stage[i].suffix);
    CUfunction fn;
    SaStatus st = function(m, name, stage[i].shared, &fn, err, cap);
    if (st != SA_OK)
      return st;
    unsigned gx = (unsigned)((seq + stage[i].rows - 1) / stage[i].rows);
    st = check(cu, cu->api.launch(fn, gx, (unsigned)stage[i].gy, 1, (unsigned)k->threads, 1, 1,
                                  (unsigned)stage[i].shared, NULL, params, NULL),
               "cuLaunchKernel", err, cap);
    if (st != SA_OK)
      return st;
  }
  return SA_OK;
}

SaStatus sa_cuda_launch(SaCudaModule *m, const SaCudaKernel *k, SaCudaPtr q, SaCudaPtr kk, SaCudaPtr v, SaCudaPtr o,
                        int64_t batch, int64_t seq, char *err, size_t cap) {
  return sa_cuda_launch_importance(m, k, q, kk, v, o, NULL, batch, seq, err, cap);
}

SaStatus sa_cuda_launch_importance(SaCudaModule *m, const SaCudaKernel *k, SaCudaPtr q, SaCudaPtr kk, SaCudaPtr v,
                                   SaCudaPtr o, const SaCudaImportance *imp, int64_t batch, int64_t seq, char *err,
                                   size_t cap) {
  if (!m || !k || !k->name || batch < 0 || seq < 0 || k->query_tile <= 0 || k->threads <= 0)
    return SA_ERR_INVALID_ARGUMENT;
  if (imp && !k->pruning && (imp->token_in || imp->head_in || imp->token_out || imp->head_out)) {
    say(err, cap, "kernel '%s' does no pruning: importance vectors are for SpAtten's pruning kernels", k->name);
    return SA_ERR_INVALID_ARGUMENT;
  }
  if (batch == 0 || seq == 0)
    return SA_OK;
  int64_t gx = (seq + k->query_tile - 1) / k->query_tile, gy = batch * k->heads;
  if (seq > INT32_MAX - 64 || gy > 65535) { /* the kernels step i32 positions 32 at a time */
    say(err, cap, "kernel '%s': batch %lld x heads %lld or seq %lld is beyond the grid's limits", k->name,
        (long long)batch, (long long)k->heads, (long long)seq);
    return SA_ERR_INVALID_ARGUMENT;
  }
  if (k->head_dim % (k->storage == DT_FP32 ? 4 : 8) == 0 && ((q | kk | v) & 15)) {
    say(err, cap, "kernel '%s': q, k and v must be 16-byte aligned", k->name);
    return SA_ERR_INVALID_ARGUMENT;
  }
  CUdeviceptr a[4] = {q, kk, v, o};
  if (k->select_rounds > 0 || k->pruning)
    return launch_stages(m, k, a, imp, batch, seq, err, cap);
  CUfunction fn;
  SaStatus st = function(m, k->name, k->shared_bytes, &fn, err, cap);
  if (st != SA_OK)
    return st;
  int64_t s = seq;
  void *params[5] = {&a[0], &a[1], &a[2], &a[3], &s};
  return check(m->cu,
               m->cu->api.launch(fn, (unsigned)gx, (unsigned)gy, 1, (unsigned)k->threads, 1, 1,
                                 (unsigned)k->shared_bytes, NULL, params, NULL),
               "cuLaunchKernel", err, cap);
}

SaStatus sa_cuda_time(SaCudaModule *m, const SaCudaKernel *k, SaCudaPtr q, SaCudaPtr kk, SaCudaPtr v, SaCudaPtr o,
                      int64_t batch, int64_t seq, int reps, double *ms, char *err, size_t cap) {
  if (!m || !ms || reps < 1)
    return SA_ERR_INVALID_ARGUMENT;
  SaCuda *cu = m->cu;
  SaStatus st = sa_cuda_launch(m, k, q, kk, v, o, batch, seq, err, cap);
  if (st != SA_OK)
    return st;
  CUevent ev[2] = {NULL, NULL};
  st = check(cu, cu->api.event_create(&ev[0], 0), "cuEventCreate", err, cap);
  if (st == SA_OK)
    st = check(cu, cu->api.event_create(&ev[1], 0), "cuEventCreate", err, cap);
  if (st == SA_OK)
    st = check(cu, cu->api.event_record(ev[0], NULL), "cuEventRecord", err, cap);
  for (int i = 0; st == SA_OK && i < reps; i++)
    st = sa_cuda_launch(m, k, q, kk, v, o, batch, seq, err, cap);
  if (st == SA_OK)
    st = check(cu, cu->api.event_record(ev[1], NULL), "cuEventRecord", err, cap);
  if (st == SA_OK)
    st = check(cu, cu->api.event_sync(ev[1]), "cuEventSynchronize (a kernel failed)", err, cap);
  float total = 0;
  if (st == SA_OK)
    st = check(cu, cu->api.elapsed(&total, ev[0], ev[1]), "cuEventElapsedTime", err, cap);
  for (int i = 0; i < 2; i++)
    if (ev[i])
      cu->api.event_destroy(ev[i]);
  *ms = st == SA_OK ? total / reps : 0;
  return st;
}
