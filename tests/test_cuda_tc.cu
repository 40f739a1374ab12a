/* test_cuda_tc.cu - the tensor-core products (sft_cuda.cuh, "tensor cores")
   against the CUDA-core kernels of part 1.

   A frozen base in compute_dtype bf16 or f16 goes to mma.sync: the fused
   kernel (W's tiles decoded into shared memory, fed to ldmatrix + mma) or the
   dequantize path (x and W written as 16-bit matrices, then cuBLASLt; under
   the emulator the same mma kernel reading them through cp.async). Each is
   checked for y = x W^T and dx = dy W against the same layer computed in f32
   (compute_dtype f32: the CUDA-core kernels), element by element:

     |tensor core - f32| <= (2^-7 + 2 gamma_K) sum_k |x_k w_k|   bf16 (u = 2^-8)
     |tensor core - f32| <= (2^-10 + 2 gamma_K) sum_k |x_k w_k|  f16 (u = 2^-11)

   with gamma_K = K u32 / (1 - K u32): each side sums K products in f32 (2
   gamma_K), and rounding both operands to the compute type moves a product by
   at most 2 u + u^2 relative (the 2^-7 or 2^-10; the u^2 and the products'
   own growth are far below what random inputs use of the bound, and the
   figures printed show how far). Bases: NF4 with double quantization, FP4, a
   bf16 weight and an f32 weight; shapes odd in every dimension and K both a
   multiple of 8 (the dequantize path's cp.async rows) and not.

   Plus: SFT_CUDA_GEMM=reference keeps these products on the CUDA-core kernel
   (bit for bit the CPU's for bf16), and the dispatcher's choice by M. */
#include "../sft.h"
#include "test_cuda.h"
#include <stdlib.h>

/* SFT_CUDA_GEMM for the contexts made from now on (each reads it when its CUDA
   state is made); tc_mode_restore puts back what the process started with */
static char tc_saved[64];
static int tc_had;
static void tc_mode(const char *mode) {
    static int saved;
    if (!saved) {
        const char *e = getenv("SFT_CUDA_GEMM");
        saved = 1; tc_had = e != NULL;
        if (e) snprintf(tc_saved, sizeof tc_saved, "%s", e);
    }
    if (mode) setenv("SFT_CUDA_GEMM", mode, 1);
    else unsetenv("SFT_CUDA_GEMM");
}
static void tc_mode_restore(void) {
    if (tc_had) setenv("SFT_CUDA_GEMM", tc_saved, 1);
    else unsetenv("SFT_CUDA_GEMM");
}

typedef enum { TC_NF4, TC_FP4, TC_BF16W, TC_F32W } tc_base;
static const char *const tc_base_names[4] = {"nf4", "fp4", "bf16 weight", "f32 weight"};

/* a frozen [N, K] layer on the device, and the f32 values of its weight on the
   CPU; a 4-bit one with blocks of `blocksize` (0: 64), doubly quantized when
   dq (-1: for NF4) */
static sft_linear *tc_layer_q(sft_context *ctx, tc_base base, int blocksize, int dq, int64_t N, int64_t K, uint64_t seed, sft_tensor **w_values) {
    int64_t ws[2] = {N, K};
    sft_tensor *w = cu_random(ctx, 2, ws, seed, -0.4f, 0.4f);
    sft_linear_desc d;
    sft_linear *l = NULL;
    *w_values = NULL;
    if (!w) return NULL;
    memset(&d, 0, sizeof d);
    if (base == TC_NF4 || base == TC_FP4) {
        sft_quant_desc qd;
        sft_qweight *q = NULL;
        memset(&qd, 0, sizeof qd);
        qd.type = base == TC_NF4 ? SFT_QUANT_NF4 : SFT_QUANT_FP4; qd.double_quant = dq >= 0 ? dq : base == TC_NF4;
        qd.blocksize = blocksize;
        CHECK_OK(sft_quantize(ctx, w, &qd, &q));
        if (q) CHECK_OK(sft_dequantize(ctx, q, w_values));
        if (q) CHECK_OK(sft_qweight_to_device(ctx, q, CU, &d.qweight));
        sft_qweight_destroy(q);
    } else {
        sft_tensor *conv = NULL;
        CHECK_OK(sft_tensor_convert(ctx, w, base == TC_BF16W ? SFT_BF16 : SFT_F32, &conv));
        if (conv) CHECK_OK(sft_tensor_convert(ctx, conv, SFT_F32, w_values));   /* the values the layer holds */
        d.weight = cu_on(ctx, conv, CU);
        sft_tensor_destroy(conv);
    }
    sft_tensor_destroy(w);
    if (d.qweight || d.weight) CHECK_OK(sft_linear_create(ctx, &d, &l));
    return l;
}
static sft_linear *tc_layer(sft_context *ctx, tc_base base, int64_t N, int64_t K, uint64_t seed, sft_tensor **w_values) {
    return tc_layer_q(ctx, base, 0, -1, N, K, seed, w_values);
}

/* y and dx of the layer in the given compute dtype, for x and dy on the CPU */
static void tc_run(sft_context *ctx, sft_linear *l, sft_dtype dtype, const sft_tensor *x, const sft_tensor *G, sft_tensor **y, sft_tensor **dx) {
    sft_tensor *xd = cu_on(ctx, x, CU), *yd = NULL, *loss;
    *y = *dx = NULL;
    CHECK_OK(sft_linear_set_compute_dtype(l, dtype));
    if (!xd) return;
    sft_tensor_set_requires_grad(xd, 1);
    sft_step_begin(ctx);
    CHECK_OK(sft_linear_forward(ctx, l, xd, NULL, &yd));
    if (yd) {
        *y = cu_fetch(ctx, yd);
        if ((loss = cu_sum_product(ctx, yd, G)) != NULL) CHECK_OK(sft_backward(ctx, loss));
        if (xd->grad) *dx = cu_fetch(ctx, xd->grad);
    }
    sft_tensor_destroy(xd);
}

/* bound[i] = sum_k |a[i, k] b[j, k]| style sums: y's (x against W's rows) when
   dy is NULL, else dx's (dy against W's columns) */
static sft_tensor *tc_abs_sums(sft_context *ctx, const sft_tensor *a, const sft_tensor *w, int dx) {
    int64_t M = a->shape[0], N = w->shape[0], K = w->shape[1], rows = dx ? K : N, inner = dx ? N : K, shape[2] = {M, rows}, m, r, k;
    sft_tensor *out = NULL;
    const float *A = (const float *)a->data, *W = (const float *)w->data;
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, 2, shape, &out));
    for (m = 0; out && m < M; m++)
        for (r = 0; r < rows; r++) {
            double s = 0.0;
            for (k = 0; k < inner; k++) s += fabs((double)A[m * inner + k] * (dx ? W[k * K + r] : W[r * K + k]));
            ((float *)out->data)[m * rows + r] = (float)s;
        }
    return out;
}

/* the largest |got - want| / bound over the elements */
static double tc_worst(const sft_tensor *got, const sft_tensor *want, const sft_tensor *bound) {
    double worst = 0.0;
    int64_t i;
    for (i = 0; got && want && bound && i < sft_tensor_numel(want); i++) {
        double d = fabs((double)((const float *)got->data)[i] - ((const float *)want->data)[i]) / (((const float *)bound->data)[i] + 1e-30);
        if (!(d <= worst)) worst = d;
    }
    return worst;
}

static void tc_case(const char *path, tc_base base, sft_dtype dtype, int64_t M, int64_t N, int64_t K, uint64_t seed, double *worst) {
    sft_context *ctx;
    int64_t xs[2] = {M, K}, ys[2] = {M, N};
    sft_tensor *wv = NULL, *x, *G, *y32 = NULL, *dx32 = NULL, *ylo = NULL, *dxlo = NULL, *by = NULL, *bdx = NULL;
    sft_linear *l;
    double u = dtype == SFT_BF16 ? 1.0 / 256.0 : 1.0 / 2048.0, gamma_y = K * CU_U / (1.0 - K * CU_U), gamma_dx = N * CU_U / (1.0 - N * CU_U);
    char what[160];
    tc_mode(path);
    ctx = cu_context();
    x = cu_random(ctx, 2, xs, seed + 1, -1, 1);
    G = cu_random(ctx, 2, ys, seed + 2, -1, 1);
    l = tc_layer(ctx, base, N, K, seed, &wv);
    if (l && x && G && wv) {
        tc_run(ctx, l, SFT_F32, x, G, &y32, &dx32);
        tc_run(ctx, l, dtype, x, G, &ylo, &dxlo);
        by = tc_abs_sums(ctx, x, wv, 0);
        bdx = tc_abs_sums(ctx, G, wv, 1);
        if (y32 && ylo && by) {
            double f = 2.0 * u + 2.0 * gamma_y, r = tc_worst(ylo, y32, by) / f;
            snprintf(what, sizeof what, "%s %s %s y %lldx%lldx%lld", path, tc_base_names[base], dtype == SFT_BF16 ? "bf16" : "f16",
                     (long long)M, (long long)N, (long long)K);
            CHECK_MSG(r <= 1.0, "%s: an error %.3g times the bound", what, r);
            if (r > *worst) *worst = r;
        } else CHECK_MSG(0, "%s %s: no y", path, tc_base_names[base]);
        if (dx32 && dxlo && bdx) {
            double f = 2.0 * u + 2.0 * gamma_dx, r = tc_worst(dxlo, dx32, bdx) / f;
            snprintf(what, sizeof what, "%s %s %s dx %lldx%lldx%lld", path, tc_base_names[base], dtype == SFT_BF16 ? "bf16" : "f16",
                     (long long)M, (long long)N, (long long)K);
            CHECK_MSG(r <= 1.0, "%s: an error %.3g times the bound", what, r);
            if (r > *worst) *worst = r;
        } else CHECK_MSG(0, "%s %s: no dx", path, tc_base_names[base]);
    }
    sft_tensor_destroy(wv); sft_tensor_destroy(x); sft_tensor_destroy(G);
    sft_tensor_destroy(y32); sft_tensor_destroy(dx32); sft_tensor_destroy(ylo); sft_tensor_destroy(dxlo);
    sft_tensor_destroy(by); sft_tensor_destroy(bdx);
    sft_linear_destroy(l);
    sft_context_destroy(ctx);
    tc_mode_restore();
}

static void tensor_core_products_hold_the_bound_against_cuda_cores(void) {
    static const struct { tc_base base; int64_t M, N, K; } shapes[] = {
        {TC_NF4, 37, 70, 100}, {TC_NF4, 70, 45, 64}, {TC_FP4, 19, 33, 96}, {TC_BF16W, 33, 70, 72}, {TC_F32W, 65, 31, 40}};
    static const char *const paths[2] = {"fused", "dequant"};
    double worst[2][2] = {{0, 0}, {0, 0}};
    size_t s;
    int p, t;
    for (p = 0; p < 2; p++)
        for (t = 0; t < 2; t++)
            for (s = 0; s < sizeof shapes / sizeof *shapes; s++)
                tc_case(paths[p], shapes[s].base, t ? SFT_F16 : SFT_BF16, shapes[s].M, shapes[s].N, shapes[s].K, 900 + 10 * s, &worst[p][t]);
    printf("\n    largest error / bound: fused bf16 %.3f f16 %.3f, dequant bf16 %.3f f16 %.3f ", worst[0][0], worst[0][1], worst[1][0],
           worst[1][1]);
}

/* the dequantize path's workspace holds exactly the fused path's operands: with
   SFT_CUDA_GEMM=dequant_mma both feed the same mma kernel, so y = x W^T and
   dx = dy W agree bit for bit (an element of x or W written wrong would show).
   NF4 and FP4 with and without double quantization, blocksizes 32 to 256, K a
   multiple of 8 (the 4-bit row writer) and not, N and K on and off the 32 x 32
   tiles of the transposing writer; the bf16 and f32 weights (the general
   writer); bf16 and f16 */
static void the_dequantize_workspace_holds_the_fused_operands_bit_for_bit(void) {
    static const struct { tc_base base; int bs, dq; int64_t M, N, K; } cases[] = {
        {TC_NF4, 64, 1, 37, 70, 100}, {TC_NF4, 64, 1, 20, 96, 64}, {TC_NF4, 32, 0, 9, 45, 72}, {TC_FP4, 128, 0, 19, 33, 256},
        {TC_FP4, 256, 1, 5, 130, 96}, {TC_NF4, 64, 1, 3, 64, 33}, {TC_BF16W, 0, -1, 33, 70, 72}, {TC_F32W, 0, -1, 65, 31, 40}};
    size_t c;
    int t, p;
    for (c = 0; c < sizeof cases / sizeof *cases; c++)
        for (t = 0; t < 2; t++) {
            sft_dtype dtype = t ? SFT_F16 : SFT_BF16;
            int64_t xs[2] = {cases[c].M, cases[c].K}, ys[2] = {cases[c].M, cases[c].N};
            sft_tensor *y[2] = {NULL, NULL}, *dx[2] = {NULL, NULL};
            sft_context *ctx[2];            /* each path's own (a context reads SFT_CUDA_GEMM once); y and dx live in it */
            for (p = 0; p < 2; p++) {
                sft_tensor *wv = NULL, *x, *G;
                sft_linear *l;
                tc_mode(p ? "dequant_mma" : "fused");
                ctx[p] = cu_context();
                x = cu_random(ctx[p], 2, xs, 300 + c, -1, 1);
                G = cu_random(ctx[p], 2, ys, 400 + c, -1, 1);
                l = tc_layer_q(ctx[p], cases[c].base, cases[c].bs, cases[c].dq, cases[c].N, cases[c].K, 500 + c, &wv);
                if (l && x && G) tc_run(ctx[p], l, dtype, x, G, &y[p], &dx[p]);
                sft_tensor_destroy(wv); sft_tensor_destroy(x); sft_tensor_destroy(G);
                sft_linear_destroy(l);
                tc_mode_restore();
            }
            CHECK_MSG(y[0] && y[1] && memcmp(y[0]->data, y[1]->data, sft_tensor_nbytes(y[0])) == 0, "case %zu %s: y differs between the paths", c,
                      t ? "f16" : "bf16");
            CHECK_MSG(dx[0] && dx[1] && memcmp(dx[0]->data, dx[1]->data, sft_tensor_nbytes(dx[0])) == 0, "case %zu %s: dx differs between the paths",
                      c, t ? "f16" : "bf16");
            for (p = 0; p < 2; p++) { sft_tensor_destroy(y[p]); sft_tensor_destroy(dx[p]); sft_context_destroy(ctx[p]); }
        }
}

/* SFT_CUDA_GEMM=reference: the products stay on the CUDA-core kernel, whose
   bf16 is the CPU's portable bf16 bit for bit */
static void reference_mode_keeps_bf16_on_cuda_cores_bit_for_bit(void) {
    int64_t M = 21, N = 37, K = 70, xs[2] = {M, K}, ys[2] = {M, N};
    sft_context *ctx;
    sft_tensor *x, *G, *wv = NULL, *w = NULL, *yd = NULL, *dxd = NULL, *xc, *yc = NULL, *loss;
    sft_linear *ld, *lc = NULL;
    sft_linear_desc d;
    sft_quant_desc qd;
    sft_qweight *q = NULL;
    int64_t ws[2] = {N, K};
    tc_mode("reference");
    ctx = cu_context();
    x = cu_random(ctx, 2, xs, 71, -1, 1);
    G = cu_random(ctx, 2, ys, 72, -1, 1);
    ld = tc_layer(ctx, TC_NF4, N, K, 70, &wv);
    if (ld && x && G) tc_run(ctx, ld, SFT_BF16, x, G, &yd, &dxd);
    /* the CPU layer: the same NF4 weight (quantized from the same values) */
    w = cu_random(ctx, 2, ws, 70, -0.4f, 0.4f);
    memset(&qd, 0, sizeof qd);
    qd.type = SFT_QUANT_NF4; qd.double_quant = 1;
    if (w) CHECK_OK(sft_quantize(ctx, w, &qd, &q));
    memset(&d, 0, sizeof d);
    d.qweight = q; d.compute_dtype = SFT_BF16;
    if (q) CHECK_OK(sft_linear_create(ctx, &d, &lc));
    xc = x ? cu_on(ctx, x, SFT_DEVICE_CPU) : NULL;
    if (lc && xc && yd && dxd) {
        sft_tensor_set_requires_grad(xc, 1);
        sft_step_begin(ctx);
        CHECK_OK(sft_linear_forward(ctx, lc, xc, NULL, &yc));
        if (yc && (loss = cu_sum_product(ctx, yc, G)) != NULL) CHECK_OK(sft_backward(ctx, loss));
        if (yc) CHECK_SAME("bf16 y, reference", (const float *)yd->data, (const float *)yc->data, M * N);
        if (xc->grad) CHECK_SAME("bf16 dx, reference", (const float *)dxd->data, (const float *)xc->grad->data, M * K);
    } else CHECK(0);
    sft_tensor_destroy(x); sft_tensor_destroy(G); sft_tensor_destroy(wv); sft_tensor_destroy(w); sft_tensor_destroy(xc);
    sft_tensor_destroy(yd); sft_tensor_destroy(dxd);
    sft_linear_destroy(ld); sft_linear_destroy(lc);
    sft_context_destroy(ctx);
    tc_mode_restore();
}

/* the device peak of one bf16 forward of an NF4 layer [40, 64] over M rows,
   under SFT_CUDA_GEMM=mode (NULL: the dispatcher's own choice) */
static size_t tc_peak(const char *mode, int64_t M) {
    int64_t N = 40, K = 64, xs[2] = {M, K};
    sft_context *ctx;
    sft_linear *l;
    sft_tensor *wv = NULL, *x, *xd, *y = NULL, *yh = NULL;
    size_t peak = 0;
    tc_mode(mode);
    ctx = cu_context();
    l = tc_layer(ctx, TC_NF4, N, K, 55, &wv);
    x = cu_random(ctx, 2, xs, 56, -1, 1);
    xd = cu_on(ctx, x, CU);
    if (l) CHECK_OK(sft_linear_set_compute_dtype(l, SFT_BF16));
    sft_step_begin(ctx);
    if (l && xd) CHECK_OK(sft_linear_forward(ctx, l, xd, NULL, &y));
    if (y) yh = cu_fetch(ctx, y);
    if (yh) peak = sft_context_mem_stats(ctx).device_peak_bytes;
    sft_tensor_destroy(wv); sft_tensor_destroy(yh); sft_tensor_destroy(x); sft_tensor_destroy(xd);
    sft_linear_destroy(l);
    sft_context_destroy(ctx);
    tc_mode_restore();
    return peak;
}

/* the dispatcher: with no override, up to M* rows run fused and more the
   dequantize path. M* is SFT_CUDA_FUSED_MAX_ROWS where set (here 32), else
   the part's row of the table (every row below 600; sm_90's is 0). The two
   paths give the same bits here (the same 16-bit inputs into the same mma
   kernel), so they are told apart by their device peak: the dequantize path
   keeps a workspace of M K + N K 16-bit values. */
static void the_dispatcher_picks_fused_up_to_m_star_rows_and_dequant_beyond(void) {
    static const int64_t ms[2] = {16, 600};
    int i, table;
    for (table = 0; table < 2; table++)
        for (i = 0; i < 2; i++) {
            size_t fused, dequant, chosen, work = (size_t)(ms[i] * 64 + 40 * 64) * 2;
            if (!table) setenv("SFT_CUDA_FUSED_MAX_ROWS", "32", 1);
            fused = tc_peak("fused", ms[i]); dequant = tc_peak("dequant", ms[i]); chosen = tc_peak(NULL, ms[i]);
            unsetenv("SFT_CUDA_FUSED_MAX_ROWS");
            CHECK_MSG(fused > 0 && dequant >= fused + work, "M = %lld: device peak %zu fused, %zu dequantize (a workspace of %zu expected)",
                      (long long)ms[i], fused, dequant, work);
            if (table && i == 0) continue;   /* the part's own M*: either path may be right */
            CHECK_MSG(chosen == (i == 0 ? fused : dequant), "M = %lld, M* %s: the dispatcher's run peaked at %zu bytes; fused %zu, dequantize %zu",
                      (long long)ms[i], table ? "from the table" : "32", chosen, fused, dequant);
        }
}

/* SFT_CUDA_FUSED_MAX_ROWS that is not a row count is refused by name */
static void a_malformed_fused_max_rows_is_refused_by_name(void) {
    static const char *const bad[3] = {"", "-1", "12rows"};
    int i;
    for (i = 0; i < 3; i++) {
        sft_context *ctx = NULL;
        sft_tensor *t = NULL;
        int64_t shape[1] = {4};
        setenv("SFT_CUDA_FUSED_MAX_ROWS", bad[i], 1);
        CHECK_OK(sft_context_create(NULL, &ctx));
        CHECK_MSG(ctx && sft_tensor_create_on(ctx, SFT_DEVICE_CUDA, SFT_F32, 1, shape, &t) == SFT_ERR_ARG &&
                      strstr(sft_last_error(), "SFT_CUDA_FUSED_MAX_ROWS"),
                  "\"%s\": %s", bad[i], sft_last_error());
        sft_tensor_destroy(t);
        sft_context_destroy(ctx);
    }
    unsetenv("SFT_CUDA_FUSED_MAX_ROWS");
}

/* a memory plan of a bf16 model on the device counts the dequantize path's
   workspace for the products the dispatcher sends there: with every product
   forced fused the plan's workspace is smaller by at least the largest
   product's 16-bit operands (here the output projection over 2 x 300 rows) */
static void a_memory_plan_counts_the_dequantize_workspace(void) {
    size_t ws[2] = {0, 0};
    int i;
    for (i = 0; i < 2; i++) {
        sft_context *ctx;
        sft_model *m = NULL;
        sft_load_desc ld;
        sft_lora_desc d;
        sft_memory_plan plan;
        tc_mode(i ? "dequant" : "fused");
        ctx = cu_context();
        memset(&ld, 0, sizeof ld);
        ld.quant = SFT_QUANT_NF4; ld.device = CU; ld.compute_dtype = SFT_BF16;
        CHECK_OK(sft_model_load(ctx, "tests/fixtures/models/llama", &ld, &m));
        memset(&d, 0, sizeof d);
        d.r = 4; d.alpha = 8;
        if (m) CHECK_OK(sft_model_add_lora(m, "default", &d, "all-linear"));
        if (m) CHECK_OK(sft_model_memory_plan(m, 2, 300, NULL, &plan));
        if (m) ws[i] = plan.workspace;
        sft_model_destroy(m);
        sft_context_destroy(ctx);
        tc_mode_restore();
    }
    /* the output projection: x [600, 64] and W [256, 64] in 16 bits */
    CHECK_MSG(ws[1] >= ws[0] + (size_t)(600 * 64 + 256 * 64) * 2, "plan workspace %zu (dequantize) vs %zu (fused)", ws[1], ws[0]);
}

/* ---------------------------------------------------------------------------
   Flash attention on tensor cores against the f32 CUDA-core kernels: the same
   device inputs through sft_attention_ex with compute_dtype bf16 / f16 and
   f32; out, dq, dk, dv compared relative to each tensor's largest value.
   Rounding q and k to the kind moves a score by up to 2u sum|q k| scale, P
   and dS are rounded too (u = 2^-8 bf16, 2^-11 f16); over T <= 70 keys the
   softmax averages these. Bounds: 2^-6 (bf16) and 2^-9 (f16) of the largest
   value, about 3 times what the emulator shows (printed: 5.8e-3 and 6.2e-4);
   and a difference must show, or the f32 kernels ran instead. Shapes cross the
   64-row blocks and 32-row tiles (T = 70), GQA 4/2 heads, head_dim 16 and 64,
   with and without packed sequence ids. */

static double tc_max_rel(const sft_tensor *got, const sft_tensor *want) {
    double mx = 0.0, worst = 0.0;
    int64_t i, n = sft_tensor_numel(want);
    for (i = 0; i < n; i++) if (fabs(((const float *)want->data)[i]) > mx) mx = fabs(((const float *)want->data)[i]);
    for (i = 0; i < n; i++) {
        double d = fabs((double)((const float *)got->data)[i] - ((const float *)want->data)[i]) / (mx > 0 ? mx : 1.0);
        if (!(d <= worst)) worst = d;
    }
    return worst;
}

/* out and the three gradients of attention on the device in dtype, fetched */
static void tc_attention(sft_context *ctx, sft_dtype dtype, sft_tensor *const *cpu_in, const sft_tensor *ids, const sft_tensor *G,
                         sft_tensor **res) {
    sft_tensor *dev[3] = {NULL, NULL, NULL}, *did = ids ? cu_on(ctx, ids, CU) : NULL, *o = NULL, *loss;
    sft_attention_desc d;
    int i;
    memset(&d, 0, sizeof d);
    d.compute_dtype = dtype;
    for (i = 0; i < 4; i++) res[i] = NULL;
    for (i = 0; i < 3; i++) { dev[i] = cu_on(ctx, cpu_in[i], CU); if (dev[i]) sft_tensor_set_requires_grad(dev[i], 1); }
    sft_step_begin(ctx);
    if (dev[0] && dev[1] && dev[2]) CHECK_OK(sft_attention_ex(ctx, dev[0], dev[1], dev[2], did, &d, &o));
    if (o) {
        res[0] = cu_fetch(ctx, o);
        if ((loss = cu_sum_product(ctx, o, G)) != NULL) CHECK_OK(sft_backward(ctx, loss));
        for (i = 0; i < 3; i++) if (dev[i]->grad) res[1 + i] = cu_fetch(ctx, dev[i]->grad);
    }
    for (i = 0; i < 3; i++) sft_tensor_destroy(dev[i]);
    sft_tensor_destroy(did);
}

static void flash_attention_on_tensor_cores_follows_the_f32_kernels(void) {
    static const struct { int64_t D; int ids; } cases[3] = {{16, 0}, {64, 1}, {32, 0}};
    static const char *const names[4] = {"out", "dq", "dk", "dv"};
    double worst[2] = {0.0, 0.0};
    sft_context *ctx = cu_context();
    int c, t, i;
    for (c = 0; c < 3; c++) {
        int64_t B = 2, T = 70, Hq = 4, Hkv = 2, D = cases[c].D, qs[4] = {B, T, Hq, D}, ks[4] = {B, T, Hkv, D}, is[2] = {B, T};
        sft_tensor *in[3] = {cu_random(ctx, 4, qs, 300 + c, -1, 1), cu_random(ctx, 4, ks, 301 + c, -1, 1), cu_random(ctx, 4, ks, 302 + c, -1, 1)};
        sft_tensor *G = cu_random(ctx, 4, qs, 303 + c, -1, 1), *ids = NULL, *ref[4], *got[4];
        if (cases[c].ids) {   /* three packed sequences a row */
            ids = cu_ids(ctx, 2, is, 1, 1);
            for (i = 0; ids && i < B * T; i++) ((int32_t *)ids->data)[i] = (int32_t)((i % T) / 25);
        }
        tc_attention(ctx, SFT_F32, in, ids, G, ref);
        for (t = 0; t < 2; t++) {
            double bound = t ? 1.0 / 512.0 : 1.0 / 64.0;
            tc_attention(ctx, t ? SFT_F16 : SFT_BF16, in, ids, G, got);
            for (i = 0; i < 4; i++) {
                double r = got[i] && ref[i] ? tc_max_rel(got[i], ref[i]) : INFINITY;
                CHECK_MSG(r <= bound, "attention D %lld%s %s %s: %.3g of the largest value (bound %.3g)", (long long)D, ids ? " packed" : "",
                          t ? "f16" : "bf16", names[i], r, bound);
                if (r > worst[t]) worst[t] = r;
                sft_tensor_destroy(got[i]);
            }
        }
        for (i = 0; i < 4; i++) sft_tensor_destroy(ref[i]);
        for (i = 0; i < 3; i++) sft_tensor_destroy(in[i]);
        sft_tensor_destroy(G); sft_tensor_destroy(ids);
    }
    CHECK_MSG(worst[0] > 0.0 && worst[1] > 0.0, "no rounding showed (bf16 %g, f16 %g): the tensor-core kernels did not run", worst[0], worst[1]);
    printf("\n    largest difference / largest value: bf16 %.3g, f16 %.3g ", worst[0], worst[1]);
    sft_context_destroy(ctx);
}

void cuda_tc_tests(void) {
    printf("cuda: tensor cores\n");
    CU_RUN_LIBM(tensor_core_products_hold_the_bound_against_cuda_cores);
    CU_RUN(reference_mode_keeps_bf16_on_cuda_cores_bit_for_bit);
    CU_RUN_LIBM(the_dequantize_workspace_holds_the_fused_operands_bit_for_bit);
    CU_RUN_LIBM(the_dispatcher_picks_fused_up_to_m_star_rows_and_dequant_beyond);
    CU_RUN(a_malformed_fused_max_rows_is_refused_by_name);
    CU_RUN(a_memory_plan_counts_the_dequantize_workspace);
    CU_RUN_LIBM(flash_attention_on_tensor_cores_follows_the_f32_kernels);
}
