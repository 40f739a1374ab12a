/* test_cuda.cu - sft.h's CUDA backend against its CPU backend, through the
   public API: the shared helpers (tests/test_cuda.h), the tests of the seam
   itself (memory, copies, devices, errors) and main. The other test_cuda_*.cu
   files hold the operators, the layers and the whole model.

   The program links against sft.h's implementation compiled with SFT_CUDA
   (sft.h itself compiled as the translation unit, see the Makefile):
     make cuda-emu   g++ on the CPU emulator (tests/cuda_emu), run under three
                     schedules that must give one checksum
     make cuda       nvcc for sm_80, sm_89, sm_90a; build/test_cuda needs a GPU
                     (without one it prints "no CUDA device: skipped")
   usage: test_cuda [substring]   runs only the tests whose name contains it

   It ends with one line per test, "checksum exact|libm <test> <hex>", the hash
   of every device result the test read back (see CU_RUN in test_cuda.h), and
   "checksum all <hex>". */
#include "../sft.h"
#include "test_cuda.h"
#include <cuda_runtime.h>   /* the emulator's fault injection and accounting */

#include "runner.c"   /* the runner behind test.h, shared with tests/main.c */

/* ---------------------------------------------------------------------------
   Helpers (declared in test_cuda.h) */

#define CU_MAX_TESTS 256
static struct { const char *name; uint64_t hash; int libm; } cu_sums[CU_MAX_TESTS];
static int cu_n_sums;
static uint64_t cu_cur_hash;

void cu_hash(const void *p, size_t n) {
    const unsigned char *b = (const unsigned char *)p;
    size_t i;
    for (i = 0; i < n; i++) cu_cur_hash = (cu_cur_hash ^ b[i]) * 1099511628211ull;   /* FNV-1a */
}

void cu_run(const char *name, void (*fn)(void), int libm) {
    cu_cur_hash = 1469598103934665603ull;
    t_run(name, fn);
    if (cu_n_sums < CU_MAX_TESTS && (!t_filter || strstr(name, t_filter))) {
        cu_sums[cu_n_sums].name = name;
        cu_sums[cu_n_sums].hash = cu_cur_hash;
        cu_sums[cu_n_sums].libm = libm;
        cu_n_sums++;
    }
}

sft_context *cu_context(void) {
    sft_context *ctx = t_context(2);
    if (ctx) CHECK_OK(sft_cpu_path_set(ctx, SFT_CPU_PORTABLE));
    return ctx;
}

sft_tensor *cu_random(sft_context *ctx, int ndim, const int64_t *shape, uint64_t seed, float lo, float hi) {
    sft_tensor *t = NULL;
    int64_t i, n;
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, ndim, shape, &t));
    if (!t) return NULL;
    n = sft_tensor_numel(t);
    for (i = 0; i < n; i++) ((float *)t->data)[i] = t_rand(&seed, lo, hi);
    return t;
}

sft_tensor *cu_ids(sft_context *ctx, int ndim, const int64_t *shape, uint64_t seed, int32_t n) {
    sft_tensor *t = NULL;
    int64_t i, count;
    CHECK_OK(sft_tensor_create(ctx, SFT_I32, ndim, shape, &t));
    if (!t) return NULL;
    count = sft_tensor_numel(t);
    for (i = 0; i < count; i++) {
        int32_t v = (int32_t)t_rand(&seed, 0.0f, (float)n);
        ((int32_t *)t->data)[i] = v < n ? v : n - 1;
    }
    return t;
}

sft_tensor *cu_on(sft_context *ctx, const sft_tensor *t, sft_device device) {
    sft_tensor *out = NULL;
    if (t) CHECK_OK(sft_tensor_to_device(ctx, t, device, &out));
    return out;
}

sft_tensor *cu_fetch(sft_context *ctx, const sft_tensor *dev) {
    sft_tensor *host = NULL;
    if (!dev) { CHECK_MSG(0, "cu_fetch: no tensor"); return NULL; }
    CHECK_MSG(dev->device == CU, "cu_fetch: the tensor is not on the CUDA device");
    host = cu_on(ctx, dev, SFT_DEVICE_CPU);
    if (host) cu_hash(host->data, sft_tensor_nbytes(host));
    return host;
}

/* cu_pair: dev fetched and checked against want's size; NULL on a mismatch */
static sft_tensor *cu_pair(const char *what, sft_context *ctx, const sft_tensor *dev, const sft_tensor *want) {
    sft_tensor *got;
    if (!dev || !want) { CHECK_MSG(0, "%s: missing tensor (device %p, cpu %p)", what, (const void *)dev, (const void *)want); return NULL; }
    got = cu_fetch(ctx, dev);
    if (got && sft_tensor_numel(got) != sft_tensor_numel(want)) {
        CHECK_MSG(0, "%s: %lld elements, want %lld", what, (long long)sft_tensor_numel(got), (long long)sft_tensor_numel(want));
        sft_tensor_destroy(got);
        return NULL;
    }
    return got;
}

void cu_same(const char *what, sft_context *ctx, const sft_tensor *dev, const sft_tensor *want) {
    sft_tensor *got = cu_pair(what, ctx, dev, want);
    if (got) CHECK_SAME(what, (const float *)got->data, (const float *)want->data, sft_tensor_numel(want));
    sft_tensor_destroy(got);
}

void cu_close(const char *what, sft_context *ctx, const sft_tensor *dev, const sft_tensor *want, double atol, double rtol) {
    sft_tensor *got = cu_pair(what, ctx, dev, want);
    if (got) CHECK_CLOSE(what, (const float *)got->data, (const float *)want->data, sft_tensor_numel(want), atol, rtol);
    sft_tensor_destroy(got);
}

void cu_rel(const char *what, sft_context *ctx, const sft_tensor *dev, const sft_tensor *want, double tol) {
    sft_tensor *got = cu_pair(what, ctx, dev, want);
    if (got) CHECK_REL(what, (const float *)got->data, (const float *)want->data, sft_tensor_numel(want), tol);
    sft_tensor_destroy(got);
}

void cu_bounded(const char *what, sft_context *ctx, const sft_tensor *dev, const sft_tensor *want, const sft_tensor *bound, double factor) {
    sft_tensor *got = cu_pair(what, ctx, dev, want);
    int64_t i, n = sft_tensor_numel(want), worst = -1;
    double worst_ratio = 0.0;
    if (!got || !bound) { sft_tensor_destroy(got); return; }
    for (i = 0; i < n; i++) {
        double d = fabs((double)((const float *)got->data)[i] - ((const float *)want->data)[i]);
        double tol = factor * ((const float *)bound->data)[i] + 1e-30;
        if (!(d <= tol) && (worst < 0 || d / tol > worst_ratio)) { worst = i; worst_ratio = d / tol; }
    }
    if (worst >= 0)
        CHECK_MSG(0, "%s: [%lld] got %.9g want %.9g, |diff| is %.3g times the bound %.3g", what, (long long)worst,
                  ((const float *)got->data)[worst], ((const float *)want->data)[worst], worst_ratio,
                  factor * ((const float *)bound->data)[worst]);
    sft_tensor_destroy(got);
}

void cu_same_libm(const char *what, sft_context *ctx, const sft_tensor *dev, const sft_tensor *want, double atol, double rtol) {
#ifdef CUDA_EMU
    (void)atol; (void)rtol;
    cu_same(what, ctx, dev, want);
#else
    cu_close(what, ctx, dev, want, atol, rtol);
#endif
}

int cu_gemm_exact(void) {
#ifdef CUDA_EMU
    return 1;
#else
    const char *e = getenv("SFT_CUDA_GEMM");
    return e && strcmp(e, "reference") == 0;
#endif
}

sft_tensor *cu_sum_product(sft_context *ctx, sft_tensor *y, const sft_tensor *g_cpu) {
    sft_tensor *g = y->device == SFT_DEVICE_CPU ? (sft_tensor *)g_cpu : NULL, *loss = NULL;
    if (!g) {   /* a step tensor holding g on y's device */
        sft_tensor *tmp = NULL;
        CHECK_OK(sft_tensor_to_device(ctx, g_cpu, y->device, &tmp));
        if (!tmp) return NULL;
        CHECK_OK(sft_scale(ctx, tmp, 1.0f, &g));
        sft_tensor_destroy(tmp);
        if (!g) return NULL;
    }
    loss = t_sum_product(ctx, y, g);
    return loss;
}

size_t cu_device_bytes(void) {
#ifdef CUDA_EMU
    return cuda_emu::bytes_in_use();
#else
    return 0;
#endif
}

int cu_fail_malloc_after(long long n) {
#ifdef CUDA_EMU
    cuda_emu::fail_malloc_after(n);
    return 1;
#else
    (void)n;
    return 0;
#endif
}

/* ---------------------------------------------------------------------------
   Memory and copies */

static void cuda_tensors_start_zeroed_and_copy_exactly_every_way(void) {
    sft_context *ctx = cu_context();
    int64_t shape[2] = {37, 129};
    sft_tensor *zero_cpu = NULL, *x = cu_random(ctx, 2, shape, 1, -2, 2), *dev = NULL, *dev2 = NULL, *back = NULL;
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, 2, shape, &zero_cpu));
    CHECK_OK(sft_tensor_create_on(ctx, CU, SFT_F32, 2, shape, &dev));
    cu_same("fresh cuda tensor", ctx, dev, zero_cpu);                    /* zero-filled, like the CPU's */
    CHECK_OK(sft_tensor_copy_from(dev, x));                              /* host to device */
    CHECK_OK(sft_tensor_create_on(ctx, CU, SFT_F32, 2, shape, &dev2));
    CHECK_OK(sft_tensor_copy_from(dev2, dev));                           /* device to device */
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, 2, shape, &back));
    CHECK_OK(sft_tensor_copy_from(back, dev2));                          /* device to host */
    CHECK_SAME("host -> device -> device -> host", (const float *)back->data, (const float *)x->data, 37 * 129);
    sft_tensor_zero_grad(dev);                                           /* no grad yet: nothing to do */
    sft_tensor_destroy(zero_cpu); sft_tensor_destroy(x); sft_tensor_destroy(dev); sft_tensor_destroy(dev2);
    sft_tensor_destroy(back);
    sft_context_destroy(ctx);
}

static void device_bytes_are_counted_in_the_memory_statistics(void) {
    sft_context *ctx = cu_context();
    int64_t shape[2] = {100, 25};
    sft_tensor *a = NULL, *b = NULL, *s = NULL;
    sft_mem_stats st;
    CHECK_OK(sft_tensor_create_on(ctx, CU, SFT_F32, 2, shape, &a));
    st = sft_context_mem_stats(ctx);
    CHECK_MSG(st.device_bytes_in_use == 10000 && st.device_peak_bytes == 10000, "device bytes %zu, peak %zu after one tensor of 10000",
              st.device_bytes_in_use, st.device_peak_bytes);
    CHECK_OK(sft_tensor_create_on(ctx, CU, SFT_F32, 2, shape, &b));
    sft_tensor_destroy(b);
    if (a) CHECK_OK(sft_scale(ctx, a, 2.0f, &s));                       /* the step arena's first block */
    st = sft_context_mem_stats(ctx);
    CHECK_MSG(st.device_arena_capacity > 0 && st.device_bytes_in_use == 10000 + st.device_arena_capacity,
              "in use %zu = tensor 10000 + arena %zu", st.device_bytes_in_use, st.device_arena_capacity);
    CHECK(st.device_peak_bytes >= 20000);
    sft_context_mem_reset_peak(ctx);
    st = sft_context_mem_stats(ctx);
    CHECK(st.device_peak_bytes == st.device_bytes_in_use);
    sft_tensor_destroy(a);
    sft_context_destroy(ctx);
}

static void cuda_allocation_failure_is_nomem_naming_the_size(void) {
    sft_context *ctx = cu_context();
    int64_t huge = (int64_t)1 << 40, small = 5;   /* 4 TiB of f32: more than any device holds */
    sft_tensor *t = NULL, *a = NULL, *s = NULL, *back = NULL;
    CHECK_STATUS(sft_tensor_create_on(ctx, CU, SFT_F32, 1, &huge, &t), SFT_ERR_NOMEM);
    CHECK(t == NULL);
    CHECK_ERROR_MENTIONS("cudaMalloc");
    CHECK_ERROR_MENTIONS("4398046511104");
    /* the failure is not sticky: the next kernel launch runs and reports success */
    CHECK_OK(sft_tensor_create_on(ctx, CU, SFT_F32, 1, &small, &a));
    if (a) CHECK_OK(sft_scale(ctx, a, 2.0f, &s));
    if (s) back = cu_fetch(ctx, s);
    if (back) CHECK(((const float *)back->data)[4] == 0.0f);
    sft_tensor_destroy(a); sft_tensor_destroy(back);
    sft_context_destroy(ctx);
}

/* Every cudaMalloc an operator makes fails in turn: the op reports NOMEM and,
   once the context is gone, no device byte is left. */
static void injected_allocation_failures_leak_nothing(void) {
    int64_t shape[2] = {3, 70}, k;
    size_t before = cu_device_bytes();
    if (!cu_fail_malloc_after(0)) { cu_fail_malloc_after(-1); return; }   /* needs the emulator */
    cu_fail_malloc_after(-1);
    for (k = 0; k < 3; k++) {
        sft_context *ctx = cu_context();
        sft_tensor *x = cu_random(ctx, 2, shape, 3, -1, 1), *dx = cu_on(ctx, x, CU), *w = NULL, *dw = NULL, *y = NULL;
        sft_status s;
        int64_t ws[1] = {70};
        w = cu_random(ctx, 1, ws, 4, 0.5f, 1.5f);
        dw = cu_on(ctx, w, CU);
        cu_fail_malloc_after(k);   /* the k-th allocation from here fails */
        s = sft_rmsnorm(ctx, dx, dw, 1e-5f, &y);
        cu_fail_malloc_after(-1);
        if (s != SFT_OK) {
            CHECK_MSG(s == SFT_ERR_NOMEM && y == NULL, "allocation %lld: %s (%s)", (long long)k, sft_status_str(s), sft_last_error());
            CHECK_ERROR_MENTIONS("cudaMalloc");
        }
        sft_tensor_destroy(x); sft_tensor_destroy(dx); sft_tensor_destroy(w); sft_tensor_destroy(dw);
        sft_context_destroy(ctx);
        CHECK_MSG(cu_device_bytes() == before, "allocation %lld: %zu device bytes left", (long long)k, cu_device_bytes() - before);
    }
}

static void inputs_on_different_devices_are_rejected(void) {
    sft_context *ctx = cu_context();
    int64_t shape[1] = {8};
    sft_tensor *a = cu_random(ctx, 1, shape, 51, -2, 2), *b = cu_on(ctx, a, CU), *out = NULL;
    CHECK_STATUS(sft_add(ctx, a, b, &out), SFT_ERR_DEVICE);
    CHECK_ERROR_MENTIONS("add");
    CHECK_ERROR_MENTIONS("cuda");
    CHECK(out == NULL);
    sft_tensor_destroy(a); sft_tensor_destroy(b);
    sft_context_destroy(ctx);
}

int main(int argc, char **argv) {
    int i;
    uint64_t all = 1469598103934665603ull;
    if (!sft_cuda_available()) {
        printf("no CUDA device: skipped\n");
        printf("0 passed, 0 failed\n");
        return 0;
    }
    if (!t_begin(argc, argv)) return 2;
    printf("cuda: seam\n");
    CU_RUN(cuda_tensors_start_zeroed_and_copy_exactly_every_way);
    CU_RUN(device_bytes_are_counted_in_the_memory_statistics);
    CU_RUN(cuda_allocation_failure_is_nomem_naming_the_size);
    CU_RUN(injected_allocation_failures_leak_nothing);
    CU_RUN(inputs_on_different_devices_are_rejected);
    cuda_ops_tests();
    cuda_layer_tests();
    cuda_tc_tests();
    cuda_model_tests();
    for (i = 0; i < cu_n_sums; i++) {
        printf("checksum %s %s %016llx\n", cu_sums[i].libm ? "libm" : "exact", cu_sums[i].name, (unsigned long long)cu_sums[i].hash);
        all = (all ^ cu_sums[i].hash) * 1099511628211ull;
    }
    printf("checksum all %016llx\n", (unsigned long long)all);
    return t_end();
}
