/* test_cuda.h - what the CUDA test files share (defined in tests/test_cuda.cu).

   The CUDA tests run the same computation on the CPU backend and on the device
   and compare. The CPU side runs the portable path (the reference: plain C,
   k summed in order), two threads. Every device result a test reads back goes
   through cu_fetch, which also folds its bits into the test's checksum: `make
   cuda-emu` requires one checksum under three emulator schedules, and `make
   test-cuda` compares the checksums of a GPU run with the emulator's. */
#ifndef SFT_TEST_CUDA_H
#define SFT_TEST_CUDA_H

#include "test.h"

#define CU SFT_DEVICE_CUDA

/* a CPU-path-portable context with two threads */
sft_context *cu_context(void);
/* a CPU f32 tensor of uniform values in [lo, hi) from seed */
sft_tensor *cu_random(sft_context *ctx, int ndim, const int64_t *shape, uint64_t seed, float lo, float hi);
/* a CPU i32 tensor of values in [0, n) from seed */
sft_tensor *cu_ids(sft_context *ctx, int ndim, const int64_t *shape, uint64_t seed, int32_t n);
/* a new persistent copy of t on device (either direction; NULL stays NULL) */
sft_tensor *cu_on(sft_context *ctx, const sft_tensor *t, sft_device device);
/* a CPU copy of a device tensor (a persistent tensor: destroy it), hashed */
sft_tensor *cu_fetch(sft_context *ctx, const sft_tensor *dev);
/* cu_same: dev's values and the CPU tensor want are bit for bit equal.
   cu_same_libm: the same under the emulator (its expf/cosf/logf are the CPU's);
   on a GPU, whose libdevice functions differ by a few ulp, within
   |diff| <= atol + rtol |want|.
   cu_close: within |diff| <= atol + rtol |want| everywhere. */
void cu_same(const char *what, sft_context *ctx, const sft_tensor *dev, const sft_tensor *want);
void cu_same_libm(const char *what, sft_context *ctx, const sft_tensor *dev, const sft_tensor *want, double atol, double rtol);
void cu_close(const char *what, sft_context *ctx, const sft_tensor *dev, const sft_tensor *want, double atol, double rtol);
/* cu_rel: max |diff| <= tol * max |want| (relative to the tensor's largest value) */
void cu_rel(const char *what, sft_context *ctx, const sft_tensor *dev, const sft_tensor *want, double tol);
/* cu_bounded: |diff_i| <= factor * bound_i + 1e-30 for a CPU bound of want's size */
void cu_bounded(const char *what, sft_context *ctx, const sft_tensor *dev, const sft_tensor *want, const sft_tensor *bound, double factor);
/* CU_TRY: return a failing status (the graph builders) */
#define CU_TRY(expr) do { sft_status cu_s_ = (expr); if (cu_s_ != SFT_OK) return cu_s_; } while (0)
/* the unit roundoff of f32, 2^-24 */
#define CU_U (1.0 / 16777216.0)
/* 1 when the dense GEMMs run the reference kernel (emulator, or
   SFT_CUDA_GEMM=reference on a GPU) and so match the portable CPU GEMM bit for bit */
int cu_gemm_exact(void);
/* loss = sum(y * g) on y's device for a CPU g (copied over); its gradient
   with respect to y is g, exactly */
sft_tensor *cu_sum_product(sft_context *ctx, sft_tensor *y, const sft_tensor *g_cpu);
/* fold n bytes into the running test's checksum */
void cu_hash(const void *p, size_t n);
/* device bytes the process has allocated now (the emulator's count; 0 on a GPU) */
size_t cu_device_bytes(void);
/* make the cudaMalloc n calls from now fail (emulator only; returns 0 on a GPU) */
int cu_fail_malloc_after(long long n);

/* the suites in other files */
void cuda_ops_tests(void);
void cuda_layer_tests(void);
void cuda_model_tests(void);
void cuda_tc_tests(void);
/* CU_RUN: run a test and record its checksum. CU_RUN marks a test whose
   device results are the same bits on a GPU as in the emulator (IEEE
   arithmetic only); CU_RUN_LIBM one that calls expf, logf, cosf or sinf, whose
   GPU versions differ from the host's by a few ulp, or whose results come out
   of mma.sync, whose order of additions inside one instruction is the
   hardware's (make test-cuda compares the first kind bit for bit with the
   emulator). */
void cu_run(const char *name, void (*fn)(void), int libm);
#define CU_RUN(fn) cu_run(#fn, fn, 0)
#define CU_RUN_LIBM(fn) cu_run(#fn, fn, 1)

#endif
