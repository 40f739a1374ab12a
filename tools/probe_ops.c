/* probe_ops.c - a quick look at the speed of the portable CPU kernels (dev only;
   `make bench` with an OpenBLAS reference arrives with the CPU-speed work).

   cc -O2 tools/probe_ops.c -o build/probe_ops -lm -lpthread && ./build/probe_ops

   Prints one JSON object per line: sft_matmul GFLOP/s for the projections of a
   SmolLM2-135M decoder layer at 512 tokens (y = x W^T), and attention
   forward+backward tokens/s, each with 1 and 2 threads. */
#define SFT_IMPLEMENTATION
#include "../sft.h"
#include <stdio.h>
#include <time.h>
#include <string.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static sft_tensor *filled(sft_context *ctx, int ndim, const int64_t *shape) {
    sft_tensor *t;
    int64_t i;
    if (sft_tensor_create(ctx, SFT_F32, ndim, shape, &t) != SFT_OK) { fprintf(stderr, "%s\n", sft_last_error()); exit(1); }
    for (i = 0; i < sft_tensor_numel(t); i++) ((float *)t->data)[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
    return t;
}

static void probe_gemm(int threads, int64_t m, int64_t n, int64_t k) {
    sft_context *ctx;
    sft_context_desc d;
    memset(&d, 0, sizeof d);
    int64_t xs[2], ws[2];
    sft_tensor *x, *w, *y;
    double t0, best = 1e30;
    int rep;
    d.threads = threads;
    sft_context_create(&d, &ctx);
    xs[0] = m; xs[1] = k; ws[0] = n; ws[1] = k;
    x = filled(ctx, 2, xs); w = filled(ctx, 2, ws);
    for (rep = 0; rep < 3; rep++) {
        sft_step_begin(ctx);
        t0 = now();
        sft_matmul(ctx, x, w, 0, 1, &y);
        if (now() - t0 < best) best = now() - t0;
    }
    printf("{\"bench\":\"gemm_portable\",\"threads\":%d,\"m\":%lld,\"n\":%lld,\"k\":%lld,\"gflops\":%.2f}\n", threads,
           (long long)m, (long long)n, (long long)k, 2.0 * m * n * k / best / 1e9);
    sft_tensor_destroy(x); sft_tensor_destroy(w);
    sft_context_destroy(ctx);
}

static void probe_attention(int threads, int64_t T) {
    sft_context *ctx;
    sft_context_desc d;
    memset(&d, 0, sizeof d);
    int64_t qs[4] = {1, 0, 9, 64}, ks[4] = {1, 0, 3, 64}, one[2] = {1, 1};
    sft_tensor *q, *k, *v, *o, *r, *loss, *flat;
    double t0;
    d.threads = threads;
    sft_context_create(&d, &ctx);
    qs[1] = ks[1] = T;
    q = filled(ctx, 4, qs); k = filled(ctx, 4, ks); v = filled(ctx, 4, ks); r = filled(ctx, 4, qs);
    sft_tensor_set_requires_grad(q, 1); sft_tensor_set_requires_grad(k, 1); sft_tensor_set_requires_grad(v, 1);
    (void)one;
    t0 = now();
    sft_step_begin(ctx);
    sft_attention(ctx, q, k, v, NULL, 0.0f, &o);
    {
        int64_t f[2] = {1, 0};
        f[1] = sft_tensor_numel(o);
        sft_reshape(ctx, o, 2, f, &flat);
        sft_reshape(ctx, r, 2, f, &r);
        sft_matmul(ctx, flat, r, 0, 1, &loss);
    }
    sft_backward(ctx, loss);
    printf("{\"bench\":\"attention_fwd_bwd_portable\",\"threads\":%d,\"T\":%lld,\"heads\":9,\"kv_heads\":3,\"head_dim\":64,"
           "\"tokens_per_s\":%.0f}\n", threads, (long long)T, (double)T / (now() - t0));
    sft_tensor_destroy(q); sft_tensor_destroy(k); sft_tensor_destroy(v);
    sft_context_destroy(ctx);
}

int main(void) {
    static const int64_t shapes[][2] = {{576, 576}, {192, 576}, {1536, 576}, {576, 1536}}; /* n, k */
    int threads, i;
    for (threads = 1; threads <= 2; threads++) {
        for (i = 0; i < 4; i++) probe_gemm(threads, 512, shapes[i][0], shapes[i][1]);
        probe_attention(threads, 512);
    }
    return 0;
}
