/* sattn/cpu.h: what compiled CPU kernels call at run time, and how a host
 * program sets the number of threads they use.
 *
 * Kernels of static patterns spread their (batch, head, query tile) work
 * over a small pool of worker threads owned by this runtime
 * (runtime/cpu/parallel.c, libsattn_runtime.a). Link it with every object
 * `sattnc --target=cpu --emit=obj` produces, plus -lpthread. */
#ifndef SATTN_CPU_H
#define SATTN_CPU_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Every compiled CPU kernel has this ABI (docs/cpu-abi.md); q, k, v point
 * at the storage type's elements and o at the output type's. */
typedef int32_t (*SattnCpuKernelFn)(const void *q, const void *k, const void *v, void *o, int64_t batch,
                                    int64_t seq, const float *token_in, float *token_out, const float *head_in,
                                    float *head_out);

/* Runs fn(ctx, i) for every i in [0, n), spread over the pool's threads and
 * the calling thread; returns when all are done. Tasks must be
 * independent. A call made while another is running (from another thread,
 * or from inside a task) runs its tasks serially in the caller, so calls
 * never deadlock. Returns 0; never fails (without threads it runs serially).
 * Which thread runs a task never changes its result. After a call the
 * pool's threads poll for 0.2 ms for the next one before they sleep, so
 * calls back to back do not wait for threads to wake. */
int32_t sattn_cpu_parallel(void (*fn)(void *ctx, int64_t i), void *ctx, int64_t n);

/* The number of threads (the caller included) later calls use: n >= 1, or
 * 0 for the default, which is $SATTN_NUM_THREADS when set, else the number
 * of online CPUs (at most 64). Thread-safe. */
void sattn_cpu_set_threads(int n);
int sattn_cpu_threads(void);

#ifdef __cplusplus
}
#endif

#endif
