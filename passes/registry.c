/* registry.c: the pass table and the glue that wraps a pass body in an
 * MLIR external pass. */
#include <pthread.h>
#include <string.h>

#include "mlir-c/BuiltinTypes.h"
#include "mlir-c/Support.h"
#include "passes.h"

const PassInfo pass_table[] = {
#define X(fn, flag, summary) {flag, summary, fn},
    SATTN_PASSES(X)
#undef X
};
const int pass_count = (int)(sizeof pass_table / sizeof *pass_table);

const PassInfo *pass_lookup(const char *flag, size_t len) {
  for (int i = 0; i < pass_count; i++)
    if (strlen(pass_table[i].flag) == len && memcmp(pass_table[i].flag, flag, len) == 0)
      return &pass_table[i];
  return NULL;
}

/* One TypeID per pass for the whole process: MLIR identifies pass kinds by
 * TypeID, and the allocator must outlive every pass made from it. */
static MlirTypeIDAllocator type_ids;
static MlirTypeID pass_ids[16];
static pthread_once_t ids_once = PTHREAD_ONCE_INIT;

static void make_ids(void) {
  type_ids = mlirTypeIDAllocatorCreate();
  for (int i = 0; i < pass_count; i++)
    pass_ids[i] = mlirTypeIDAllocatorAllocateTypeID(type_ids);
}

static void ext_construct(void *ud) { (void)ud; }
static void ext_destruct(void *ud) { (void)ud; }
static MlirLogicalResult ext_initialize(MlirContext ctx, void *ud) {
  (void)ctx;
  (void)ud;
  return mlirLogicalResultSuccess();
}
/* The user data is the static PassInfo: nothing to copy. */
static void *ext_clone(void *ud) { return ud; }
static void ext_run(MlirOperation op, MlirExternalPass pass, void *ud) {
  const PassInfo *info = ud;
  if (!info->run(op))
    mlirExternalPassSignalFailure(pass);
}

MlirPass pass_create(const PassInfo *info) {
  pthread_once(&ids_once, make_ids);
  MlirExternalPassCallbacks cb = {ext_construct, ext_destruct, ext_initialize, ext_clone, ext_run};
  return mlirCreateExternalPass(pass_ids[info - pass_table], mlirStringRefCreateFromCString(info->flag),
                                mlirStringRefCreateFromCString(info->flag),
                                mlirStringRefCreateFromCString(info->summary),
                                mlirStringRefCreateFromCString("builtin.module"), 0, NULL, cb, (void *)info);
}

bool pass_tensor(MlirType t, int rank, int64_t *out_dims) {
  if (!mlirTypeIsARankedTensor(t) || mlirShapedTypeGetRank(t) != rank)
    return false;
  for (int i = 0; i < rank; i++)
    out_dims[i] = mlirShapedTypeIsDynamicDim(t, i) ? -1 : mlirShapedTypeGetDimSize(t, i);
  return true;
}
