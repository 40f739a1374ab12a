/* test_paths.c - every CPU code path this machine can run agrees with the
   portable reference path, within a stated tolerance (the paths sum in a
   different order and the SIMD ones use fused multiply-adds, so bits differ;
   each path on its own is bit-identical across thread counts, which the ops
   and autograd suites check per path). */
#include "test.h"

/* Tolerance: |simd - portable| <= 1e-5 + 1e-5 * |portable| for sums of up to a
   few thousand products of values in [-1, 1]. */
#define T_PATH_ATOL 1e-5
#define T_PATH_RTOL 1e-5

static sft_tensor *t_filled(sft_context *ctx, int64_t d0, int64_t d1, uint64_t seed) {
    int64_t shape[2], i;
    sft_tensor *t = NULL;
    shape[0] = d0; shape[1] = d1;
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, 2, shape, &t));
    for (i = 0; t && i < d0 * d1; i++) ((float *)t->data)[i] = t_rand(&seed, -1.0f, 1.0f);
    return t;
}

/* run one matmul on a context forced to path; returns a malloc'd copy of C */
static float *t_matmul_on(sft_cpu_path path, int64_t M, int64_t N, int64_t K, int ta, int tb, uint64_t seed) {
    sft_context *ctx = t_context(2);
    sft_tensor *a, *b, *c = NULL;
    float *out = NULL;
    CHECK_OK(sft_cpu_path_set(ctx, path));
    a = ta ? t_filled(ctx, K, M, seed) : t_filled(ctx, M, K, seed);
    b = tb ? t_filled(ctx, N, K, seed + 1) : t_filled(ctx, K, N, seed + 1);
    CHECK_OK(sft_matmul(ctx, a, b, ta, tb, &c));
    if (c) {
        out = (float *)malloc((size_t)(M * N) * sizeof(float));
        memcpy(out, c->data, (size_t)(M * N) * sizeof(float));
    }
    sft_tensor_destroy(a); sft_tensor_destroy(b);
    sft_context_destroy(ctx);
    return out;
}

static void every_path_matches_portable_matmul_in_every_orientation(void) {
    static const int64_t sizes[][3] = {{1, 1, 1}, {6, 16, 1}, {7, 17, 300}, {13, 33, 257}, {96, 64, 256}, {97, 2049, 5},
                                       {200, 40, 513}, {5, 300, 1000}};
    int path, s, ta, tb;
    for (path = SFT_CPU_AVX2; path < SFT_CPU_PATH_COUNT; path++) {
        if (!t_cpu_path_runnable((sft_cpu_path)path)) continue;
        for (s = 0; s < 8; s++)
            for (ta = 0; ta < 2; ta++)
                for (tb = 0; tb < 2; tb++) {
                    int64_t M = sizes[s][0], N = sizes[s][1], K = sizes[s][2];
                    float *want = t_matmul_on(SFT_CPU_PORTABLE, M, N, K, ta, tb, 10 + (uint64_t)s);
                    float *got = t_matmul_on((sft_cpu_path)path, M, N, K, ta, tb, 10 + (uint64_t)s);
                    char what[160];
                    snprintf(what, sizeof what, "%s vs portable, %lldx%lldx%lld ta=%d tb=%d", sft_cpu_path_name((sft_cpu_path)path),
                             (long long)M, (long long)N, (long long)K, ta, tb);
                    if (want && got) CHECK_CLOSE(what, got, want, M * N, T_PATH_ATOL * sqrt((double)K), T_PATH_RTOL);
                    free(want); free(got);
                }
    }
}

/* a two-layer network's loss and gradients on a path: x W1^T -> silu -> W2^T -> CE */
static void t_mlp_on(sft_cpu_path path, float *loss_out, float *g1, float *g2) {
    sft_context *ctx = t_context(2);
    sft_tensor *x, *w1, *w2, *labels, *h, *logits, *loss = NULL;
    int64_t ls[1] = {37}, i;
    CHECK_OK(sft_cpu_path_set(ctx, path));
    x = t_filled(ctx, 37, 70, 1); w1 = t_filled(ctx, 50, 70, 2); w2 = t_filled(ctx, 13, 50, 3);
    CHECK_OK(sft_tensor_create(ctx, SFT_I32, 1, ls, &labels));
    for (i = 0; i < 37; i++) ((int32_t *)labels->data)[i] = (int32_t)((i * 7) % 13);
    sft_tensor_set_requires_grad(w1, 1); sft_tensor_set_requires_grad(w2, 1);
    CHECK_OK(sft_matmul(ctx, x, w1, 0, 1, &h));
    CHECK_OK(sft_silu(ctx, h, &h));
    CHECK_OK(sft_matmul(ctx, h, w2, 0, 1, &logits));
    CHECK_OK(sft_cross_entropy(ctx, logits, labels, NULL, &loss));
    if (loss) {
        CHECK_OK(sft_backward(ctx, loss));
        *loss_out = ((float *)loss->data)[0];
        memcpy(g1, w1->grad->data, 50 * 70 * sizeof(float));
        memcpy(g2, w2->grad->data, 13 * 50 * sizeof(float));
    }
    sft_tensor_destroy(x); sft_tensor_destroy(w1); sft_tensor_destroy(w2); sft_tensor_destroy(labels);
    sft_context_destroy(ctx);
}

static void every_path_matches_portable_loss_and_gradients(void) {
    static float g1[2][50 * 70], g2[2][13 * 50];
    float loss[2] = {0, 0};
    int path;
    t_mlp_on(SFT_CPU_PORTABLE, &loss[0], g1[0], g2[0]);
    for (path = SFT_CPU_AVX2; path < SFT_CPU_PATH_COUNT; path++) {
        if (!t_cpu_path_runnable((sft_cpu_path)path)) continue;
        t_mlp_on((sft_cpu_path)path, &loss[1], g1[1], g2[1]);
        CHECK_CLOSE("loss", &loss[1], &loss[0], 1, 1e-5, 1e-5);
        CHECK_CLOSE("dW1", g1[1], g1[0], 50 * 70, 1e-6, 1e-4);
        CHECK_CLOSE("dW2", g2[1], g2[0], 13 * 50, 1e-6, 1e-4);
    }
}

#ifdef SFT_USE_CBLAS
/* built with SFT_USE_CBLAS: the automatic path's GEMM is the BLAS's */
static void cblas_gemm_matches_portable_in_every_orientation(void) {
    static const int64_t sizes[][3] = {{1, 1, 1}, {7, 17, 300}, {97, 2049, 5}, {200, 40, 513}};
    int s, ta, tb;
    for (s = 0; s < 4; s++)
        for (ta = 0; ta < 2; ta++)
            for (tb = 0; tb < 2; tb++) {
                int64_t M = sizes[s][0], N = sizes[s][1], K = sizes[s][2];
                float *want = t_matmul_on(SFT_CPU_PORTABLE, M, N, K, ta, tb, 30 + (uint64_t)s);
                float *got = t_matmul_on(SFT_CPU_AUTO, M, N, K, ta, tb, 30 + (uint64_t)s);
                if (want && got) CHECK_CLOSE("cblas vs portable", got, want, M * N, T_PATH_ATOL * sqrt((double)K), T_PATH_RTOL);
                free(want); free(got);
            }
}
#endif

void suite_paths(void) {
    RUN(every_path_matches_portable_matmul_in_every_orientation);
    RUN(every_path_matches_portable_loss_and_gradients);
#ifdef SFT_USE_CBLAS
    RUN(cblas_gemm_matches_portable_in_every_orientation);
#endif
}
