/* test_cuda_ops.cu - every operator on the CUDA device against the CPU backend,
   forward and backward, on odd shapes.

   Each test builds the op on CPU inputs and on device copies of them, takes
   loss = sum(y * G) for a random G (so dL/dy = G exactly on both sides),
   back-propagates, and compares the output and every input gradient. The CPU
   side runs the portable path (cu_context). How close each op must be, and why:

     add, mul, scale, reshape, embedding, dropout (mask included), prompt
     tuning, 4-bit dequantization                       bit for bit
     silu, swiglu, rope            bit for bit under the emulator (its expf,
                                   cosf, sinf are the CPU's); on a GPU its
                                   libdevice functions are within 2 ulp, so
                                   |diff| <= 1e-6 + 1e-6 |want|
     matmul                        bit for bit with the reference GEMM (the
                                   emulator, SFT_CUDA_GEMM=reference); with
                                   cuBLASLt |diff| <= 2 gamma_K sum_k |a b|
                                   (both sides within gamma_K of the exact sum)
     rmsnorm                       the sum of squares is a tree on the device,
                                   sequential on the CPU: both within gamma_D
                                   of it, so y within (D + 8) u relative; the
                                   gradients within (2D + 16) u of their
                                   largest value
     attention                     scores are length-D dots, the softmax sums
                                   run over T keys in other orders (tiles of
                                   32 here, 64 there): 4 (T + D) u of the
                                   largest value
     cross-entropy, fused          the exponentials' sum over V in another
     with the projection           order: the log-sum-exp within gamma_V,
                                   the loss within 4 (V + 16) u relative, the
                                   gradients within 4 (V + 16) u |k| */
#include "../sft.h"
#include "test_cuda.h"

/* ---------------------------------------------------------------------------
   The harness: a graph built by fn on inputs in[0..n), back-propagated from
   sum(y * G). Returns a persistent copy of y on its device; the gradients stay
   on the leaves. */

typedef sft_status (*cu_build_fn)(sft_context *ctx, sft_tensor *const *in, const void *user, sft_tensor **out);

static sft_tensor *cu_graph(sft_context *ctx, cu_build_fn fn, const void *user, sft_tensor *const *in, const sft_tensor *G) {
    sft_tensor *y = NULL, *loss = NULL, *keep = NULL;
    sft_step_begin(ctx);
    CHECK_OK(fn(ctx, in, user, &y));
    if (!y) return NULL;
    keep = cu_on(ctx, y, y->device);
    if (G && (loss = cu_sum_product(ctx, y, G)) != NULL) CHECK_OK(sft_backward(ctx, loss));
    return keep;
}

/* a case: CPU inputs (f32 ones get gradients where grad[i]), their device copies */
typedef struct cu_case { int n; sft_tensor *cpu[4], *dev[4]; } cu_case;

static void cu_case_init(cu_case *c, sft_context *ctx, int n, sft_tensor *const *cpu, const int *grad) {
    int i;
    memset(c, 0, sizeof *c);
    c->n = n;
    for (i = 0; i < n; i++) {
        c->cpu[i] = cpu[i];
        c->dev[i] = cu_on(ctx, cpu[i], CU);
        if (grad && grad[i]) { sft_tensor_set_requires_grad(c->cpu[i], 1); sft_tensor_set_requires_grad(c->dev[i], 1); }
    }
}

static void cu_case_free(cu_case *c) {
    int i;
    for (i = 0; i < c->n; i++) { sft_tensor_destroy(c->cpu[i]); sft_tensor_destroy(c->dev[i]); }
}

/* the gradient of input i on both sides (a missing one fails) */
static int cu_grads(const cu_case *c, int i, sft_tensor **cpu, sft_tensor **dev) {
    *cpu = c->cpu[i] ? c->cpu[i]->grad : NULL;
    *dev = c->dev[i] ? c->dev[i]->grad : NULL;
    CHECK_MSG(*cpu && *dev, "input %d: no gradient (cpu %p, cuda %p)", i, (void *)*cpu, (void *)*dev);
    return *cpu && *dev;
}

/* ---------------------------------------------------------------------------
   Elementwise */

static sft_status b_ew(sft_context *ctx, sft_tensor *const *in, const void *user, sft_tensor **out) {
    sft_tensor *m, *y, *s, *r;
    int64_t rs[2];
    (void)user;
    rs[0] = -1; rs[1] = in[0]->shape[in[0]->ndim - 1];
    CU_TRY(sft_mul(ctx, in[0], in[1], &m));          /* b [33, 129] onto [7, 33, 129] */
    CU_TRY(sft_add(ctx, m, in[2], &y));              /* bias [129] */
    CU_TRY(sft_mul(ctx, y, in[3], &s));              /* a scalar */
    CU_TRY(sft_reshape(ctx, s, 2, rs, &r));
    CU_TRY(sft_add(ctx, r, r, &r));                  /* one tensor as both operands */
    return sft_scale(ctx, r, 0.37f, out);
}

static void add_mul_scale_reshape_match_cpu_bitwise(void) {
    sft_context *ctx = cu_context();
    int64_t sa[3] = {7, 33, 129}, sb[2] = {33, 129}, sbias[1] = {129}, sg[2] = {7 * 33, 129};
    sft_tensor *in[4], *G = cu_random(ctx, 2, sg, 46, -1, 1), *yc, *yd, *gc, *gd;
    const int grad[4] = {1, 1, 1, 1};
    static const char *const names[4] = {"da (mul, full size)", "db (mul, [33,129] over 7 rows)", "dbias (add, [129] over 231 rows)",
                                         "dscalar (mul, [] over all)"};
    cu_case c;
    int i;
    in[0] = cu_random(ctx, 3, sa, 11, -2, 2); in[1] = cu_random(ctx, 2, sb, 12, -2, 2);
    in[2] = cu_random(ctx, 1, sbias, 13, -2, 2); in[3] = cu_random(ctx, 0, NULL, 14, -2, 2);
    cu_case_init(&c, ctx, 4, in, grad);
    yc = cu_graph(ctx, b_ew, NULL, c.cpu, G);
    yd = cu_graph(ctx, b_ew, NULL, c.dev, G);
    cu_same("forward", ctx, yd, yc);
    for (i = 0; i < 4; i++)
        if (cu_grads(&c, i, &gc, &gd)) cu_same(names[i], ctx, gd, gc);
    sft_tensor_destroy(yc); sft_tensor_destroy(yd); sft_tensor_destroy(G);
    cu_case_free(&c);
    sft_context_destroy(ctx);
}

/* 4097 x 4099 elements is more than 65535 blocks of 256 threads cover in one
   pass, so every thread goes round the grid-stride loop at least once. */
static void elementwise_kernels_cover_tensors_larger_than_one_grid(void) {
    sft_context *ctx = cu_context();
    int64_t sa[2] = {4097, 4099}, sb[1] = {4099};
    sft_tensor *a = cu_random(ctx, 2, sa, 21, -2, 2), *b = cu_random(ctx, 1, sb, 22, -2, 2);
    sft_tensor *da = cu_on(ctx, a, CU), *db = cu_on(ctx, b, CU);
    sft_tensor *cpu_add = NULL, *dev_add = NULL, *cpu_sc = NULL, *dev_sc = NULL;
    CHECK_OK(sft_add(ctx, a, b, &cpu_add));
    CHECK_OK(sft_add(ctx, da, db, &dev_add));
    CHECK_OK(sft_scale(ctx, a, -3.5f, &cpu_sc));
    CHECK_OK(sft_scale(ctx, da, -3.5f, &dev_sc));
    cu_same("add [4097,4099] + [4099]", ctx, dev_add, cpu_add);
    cu_same("scale [4097,4099]", ctx, dev_sc, cpu_sc);
    sft_tensor_destroy(a); sft_tensor_destroy(b); sft_tensor_destroy(da); sft_tensor_destroy(db);
    sft_context_destroy(ctx);
}

static sft_status b_silu(sft_context *ctx, sft_tensor *const *in, const void *user, sft_tensor **out) {
    (void)user;
    return sft_silu(ctx, in[0], out);
}

static sft_status b_swiglu(sft_context *ctx, sft_tensor *const *in, const void *user, sft_tensor **out) {
    (void)user;
    return sft_swiglu(ctx, in[0], in[1], out);
}

static void silu_and_swiglu_match_cpu(void) {
    sft_context *ctx = cu_context();
    int64_t s[3] = {5, 7, 67};
    int k;
    for (k = 0; k < 2; k++) {
        sft_tensor *in[2], *G = cu_random(ctx, 3, s, 31, -1, 1), *yc, *yd, *gc, *gd;
        const int grad[2] = {1, 1};
        cu_case c;
        in[0] = cu_random(ctx, 3, s, 32, -6, 6); in[1] = cu_random(ctx, 3, s, 33, -2, 2);
        cu_case_init(&c, ctx, k ? 2 : 1, in, grad);
        if (!k) sft_tensor_destroy(in[1]);
        yc = cu_graph(ctx, k ? b_swiglu : b_silu, NULL, c.cpu, G);
        yd = cu_graph(ctx, k ? b_swiglu : b_silu, NULL, c.dev, G);
        cu_same_libm(k ? "swiglu" : "silu", ctx, yd, yc, 1e-6, 1e-6);
        if (cu_grads(&c, 0, &gc, &gd)) cu_same_libm(k ? "d gate" : "dx", ctx, gd, gc, 1e-6, 1e-6);
        if (k && cu_grads(&c, 1, &gc, &gd)) cu_same_libm("d up", ctx, gd, gc, 1e-6, 1e-6);
        sft_tensor_destroy(yc); sft_tensor_destroy(yd); sft_tensor_destroy(G);
        cu_case_free(&c);
    }
    sft_context_destroy(ctx);
}

/* ---------------------------------------------------------------------------
   Dropout: the same mask (bits) on both devices, so the same values. */

typedef struct cu_drop { float p; uint64_t seed; } cu_drop;

static sft_status b_dropout(sft_context *ctx, sft_tensor *const *in, const void *user, sft_tensor **out) {
    const cu_drop *d = (const cu_drop *)user;
    sft_tensor *y;
    CU_TRY(sft_dropout(ctx, in[0], d->p, d->seed, &y));
    return sft_scale(ctx, y, 1.0f, out);   /* a step tensor even when p = 0 returns x */
}

static void dropout_masks_and_values_match_cpu_bitwise(void) {
    static const cu_drop cases[4] = {{0.37f, 12345}, {0.1f, 7}, {1.0f, 3}, {0.999f, 99}};
    sft_context *ctx = cu_context();
    int64_t s[3] = {3, 7, 61};                  /* 1281 elements: the last mask word is partial */
    int k;
    for (k = 0; k < 4; k++) {
        sft_tensor *in[1], *G = cu_random(ctx, 3, s, 41, -1, 1), *yc, *yd, *gc, *gd;
        const int grad[1] = {1};
        char what[64];
        cu_case c;
        in[0] = cu_random(ctx, 3, s, 42, -2, 2);
        cu_case_init(&c, ctx, 1, in, grad);
        yc = cu_graph(ctx, b_dropout, &cases[k], c.cpu, G);
        yd = cu_graph(ctx, b_dropout, &cases[k], c.dev, G);
        snprintf(what, sizeof what, "dropout p=%g forward", (double)cases[k].p);
        cu_same(what, ctx, yd, yc);
        snprintf(what, sizeof what, "dropout p=%g backward", (double)cases[k].p);
        if (cu_grads(&c, 0, &gc, &gd)) cu_same(what, ctx, gd, gc);
        sft_tensor_destroy(yc); sft_tensor_destroy(yd); sft_tensor_destroy(G);
        cu_case_free(&c);
    }
    sft_context_destroy(ctx);
}

/* ---------------------------------------------------------------------------
   Embedding */

static sft_status b_embedding(sft_context *ctx, sft_tensor *const *in, const void *user, sft_tensor **out) {
    (void)user;
    return sft_embedding(ctx, in[0], in[1], out);
}

static void embedding_and_its_scatter_match_cpu_bitwise(void) {
    sft_context *ctx = cu_context();
    int64_t ws[2] = {53, 37}, is[2] = {3, 17}, gs[3] = {3, 17, 37};
    sft_tensor *in[2], *G = cu_random(ctx, 3, gs, 51, -1, 1), *yc, *yd, *gc, *gd;
    const int grad[2] = {1, 0};
    cu_case c;
    in[0] = cu_random(ctx, 2, ws, 52, -1, 1);
    in[1] = cu_ids(ctx, 2, is, 53, 20);          /* 51 ids over 20 rows: many repeats */
    cu_case_init(&c, ctx, 2, in, grad);
    yc = cu_graph(ctx, b_embedding, NULL, c.cpu, G);
    yd = cu_graph(ctx, b_embedding, NULL, c.dev, G);
    cu_same("embedding", ctx, yd, yc);
    if (cu_grads(&c, 0, &gc, &gd)) cu_same("d weight (rows summed in order)", ctx, gd, gc);
    sft_tensor_destroy(yc); sft_tensor_destroy(yd); sft_tensor_destroy(G);
    cu_case_free(&c);
    sft_context_destroy(ctx);
}

static void embedding_id_out_of_range_on_the_device_fails(void) {
    sft_context *ctx = cu_context();
    int64_t ws[2] = {10, 4}, is[1] = {5};
    sft_tensor *w = cu_random(ctx, 2, ws, 1, -1, 1), *ids = cu_ids(ctx, 1, is, 2, 10), *dw, *dids, *out = NULL;
    if (ids) ((int32_t *)ids->data)[3] = 10;
    dw = cu_on(ctx, w, CU); dids = cu_on(ctx, ids, CU);
    CHECK_STATUS(sft_embedding(ctx, dw, dids, &out), SFT_ERR_ARG);
    CHECK_ERROR_MENTIONS("ids[3] = 10");
    CHECK(out == NULL);
    sft_tensor_destroy(w); sft_tensor_destroy(ids); sft_tensor_destroy(dw); sft_tensor_destroy(dids);
    sft_context_destroy(ctx);
}

/* ---------------------------------------------------------------------------
   RMSNorm */

static sft_status b_rmsnorm(sft_context *ctx, sft_tensor *const *in, const void *user, sft_tensor **out) {
    (void)user;
    return sft_rmsnorm(ctx, in[0], in[1], 1e-5f, out);
}

static void rmsnorm_matches_cpu_within_the_sum_bound(void) {
    sft_context *ctx = cu_context();
    int64_t xs[3] = {6, 11, 131}, ws[1] = {131}, D = 131;
    sft_tensor *in[2], *G = cu_random(ctx, 3, xs, 61, -1, 1), *yc, *yd, *gc, *gd;
    const int grad[2] = {1, 1};
    cu_case c;
    in[0] = cu_random(ctx, 3, xs, 62, -2, 2); in[1] = cu_random(ctx, 1, ws, 63, 0.5f, 1.5f);
    cu_case_init(&c, ctx, 2, in, grad);
    yc = cu_graph(ctx, b_rmsnorm, NULL, c.cpu, G);
    yd = cu_graph(ctx, b_rmsnorm, NULL, c.dev, G);
    cu_close("rmsnorm", ctx, yd, yc, 0.0, (double)(D + 8) * CU_U);
    if (cu_grads(&c, 0, &gc, &gd)) cu_rel("rmsnorm dx", ctx, gd, gc, (double)(2 * D + 16) * CU_U);
    if (cu_grads(&c, 1, &gc, &gd)) cu_rel("rmsnorm dweight", ctx, gd, gc, (double)(2 * D + 16) * CU_U);
    sft_tensor_destroy(yc); sft_tensor_destroy(yd); sft_tensor_destroy(G);
    cu_case_free(&c);
    sft_context_destroy(ctx);
}

/* ---------------------------------------------------------------------------
   RoPE with llama3 scaling */

static sft_status b_rope(sft_context *ctx, sft_tensor *const *in, const void *user, sft_tensor **out) {
    return sft_rope(ctx, in[0], in[1], (const sft_rope_desc *)user, out);
}

static void rope_with_llama3_scaling_matches_cpu(void) {
    sft_context *ctx = cu_context();
    int64_t xs[4] = {2, 9, 3, 26}, ps[2] = {2, 9};
    sft_rope_desc rd;
    sft_tensor *in[2], *G = cu_random(ctx, 4, xs, 71, -1, 1), *yc, *yd, *gc, *gd;
    const int grad[2] = {1, 0};
    cu_case c;
    memset(&rd, 0, sizeof rd);
    rd.theta = 500000.0f; rd.scaling = SFT_ROPE_LLAMA3; rd.factor = 8.0f; rd.low_freq_factor = 1.0f; rd.high_freq_factor = 4.0f;
    rd.original_max_position_embeddings = 16;
    in[0] = cu_random(ctx, 4, xs, 72, -2, 2); in[1] = cu_ids(ctx, 2, ps, 73, 300);
    cu_case_init(&c, ctx, 2, in, grad);
    yc = cu_graph(ctx, b_rope, &rd, c.cpu, G);
    yd = cu_graph(ctx, b_rope, &rd, c.dev, G);
    cu_same_libm("rope", ctx, yd, yc, 1e-6, 1e-6);
    if (cu_grads(&c, 0, &gc, &gd)) cu_same_libm("rope dx", ctx, gd, gc, 1e-6, 1e-6);
    sft_tensor_destroy(yc); sft_tensor_destroy(yd); sft_tensor_destroy(G);
    cu_case_free(&c);
    sft_context_destroy(ctx);
}

/* ---------------------------------------------------------------------------
   Matmul in every orientation */

typedef struct cu_mm { int ta, tb; } cu_mm;

static sft_status b_matmul(sft_context *ctx, sft_tensor *const *in, const void *user, sft_tensor **out) {
    const cu_mm *m = (const cu_mm *)user;
    return sft_matmul(ctx, in[0], in[1], m->ta, m->tb, out);
}

/* |A| |B| on the CPU: the sum of |a b| each element of a product adds up */
static sft_tensor *cu_abs_product(sft_context *ctx, const sft_tensor *a, const sft_tensor *b, int ta, int tb) {
    sft_tensor *aa = cu_on(ctx, a, SFT_DEVICE_CPU), *bb = cu_on(ctx, b, SFT_DEVICE_CPU), *p = NULL, *keep = NULL;
    int64_t i;
    if (!aa || !bb) { sft_tensor_destroy(aa); sft_tensor_destroy(bb); return NULL; }
    for (i = 0; i < sft_tensor_numel(aa); i++) ((float *)aa->data)[i] = fabsf(((float *)aa->data)[i]);
    for (i = 0; i < sft_tensor_numel(bb); i++) ((float *)bb->data)[i] = fabsf(((float *)bb->data)[i]);
    CHECK_OK(sft_matmul(ctx, aa, bb, ta, tb, &p));
    if (p) keep = cu_on(ctx, p, SFT_DEVICE_CPU);
    sft_tensor_destroy(aa); sft_tensor_destroy(bb);
    return keep;
}

static void matmul_matches_cpu_in_every_orientation(void) {
    static const struct { int nda, ndb; int64_t a[4], b[4]; cu_mm m; } cases[5] = {
        {2, 2, {37, 45}, {70, 45}, {0, 1}},          /* a linear layer: x W^T */
        {2, 2, {45, 37}, {45, 70}, {1, 0}},          /* A^T B */
        {2, 2, {37, 45}, {45, 70}, {0, 0}},
        {4, 4, {2, 3, 17, 29}, {2, 3, 29, 33}, {0, 0}},   /* batched */
        {3, 2, {3, 5, 19}, {23, 19}, {0, 1}}};      /* B shared by the batch */
    sft_context *ctx = cu_context();
    int k;
    for (k = 0; k < 5; k++) {
        sft_tensor *in[2], *G, *yc, *yd, *gc, *gd, *bound;
        const int grad[2] = {1, 1};
        int64_t K = cases[k].m.ta ? cases[k].a[cases[k].nda - 2] : cases[k].a[cases[k].nda - 1];
        char what[64];
        cu_case c;
        in[0] = cu_random(ctx, cases[k].nda, cases[k].a, 80 + k, -1, 1);
        in[1] = cu_random(ctx, cases[k].ndb, cases[k].b, 90 + k, -1, 1);
        cu_case_init(&c, ctx, 2, in, grad);
        yc = cu_graph(ctx, b_matmul, &cases[k].m, c.cpu, NULL);
        if (!yc) { cu_case_free(&c); continue; }
        G = cu_random(ctx, yc->ndim, yc->shape, 100 + k, -1, 1);
        sft_tensor_destroy(yc);
        yc = cu_graph(ctx, b_matmul, &cases[k].m, c.cpu, G);
        yd = cu_graph(ctx, b_matmul, &cases[k].m, c.dev, G);
        snprintf(what, sizeof what, "matmul case %d", k);
        if (cu_gemm_exact()) cu_same(what, ctx, yd, yc);
        else {
            bound = cu_abs_product(ctx, c.cpu[0], c.cpu[1], cases[k].m.ta, cases[k].m.tb);
            cu_bounded(what, ctx, yd, yc, bound, 2.0 * (double)K * CU_U / (1.0 - (double)K * CU_U));
            sft_tensor_destroy(bound);
        }
        if (cu_grads(&c, 0, &gc, &gd)) {
            snprintf(what, sizeof what, "matmul case %d dA", k);
            if (cu_gemm_exact()) cu_same(what, ctx, gd, gc);
            else cu_rel(what, ctx, gd, gc, 4.0 * 80 * CU_U);   /* sums of at most 70 products of values in [-1, 1] */
        }
        if (cu_grads(&c, 1, &gc, &gd)) {
            snprintf(what, sizeof what, "matmul case %d dB", k);
            if (cu_gemm_exact()) cu_same(what, ctx, gd, gc);
            else cu_rel(what, ctx, gd, gc, 4.0 * 120 * CU_U);   /* at most 111 (batch * rows) products */
        }
        sft_tensor_destroy(yc); sft_tensor_destroy(yd); sft_tensor_destroy(G);
        cu_case_free(&c);
    }
    sft_context_destroy(ctx);
}

/* ---------------------------------------------------------------------------
   Attention: grouped query heads, packed sequences, tiles that do not divide T */

typedef struct cu_attn { int packed; } cu_attn;

static sft_status b_attention(sft_context *ctx, sft_tensor *const *in, const void *user, sft_tensor **out) {
    const cu_attn *a = (const cu_attn *)user;
    return sft_attention(ctx, in[0], in[1], in[2], a->packed ? in[3] : NULL, 0.0f, out);
}

static void attention_matches_cpu_within_the_softmax_bound(void) {
    static const struct { int64_t B, T, Hq, Hkv, D; int packed; } cases[3] = {
        {2, 37, 4, 2, 24, 1}, {1, 70, 2, 1, 40, 0}, {1, 9, 3, 3, 33, 1}};
    sft_context *ctx = cu_context();
    int k, i;
    for (k = 0; k < 3; k++) {
        int64_t qs[4] = {cases[k].B, cases[k].T, cases[k].Hq, cases[k].D}, ks[4] = {cases[k].B, cases[k].T, cases[k].Hkv, cases[k].D};
        int64_t is[2] = {cases[k].B, cases[k].T}, t;
        double tol = 4.0 * (double)(cases[k].T + cases[k].D) * CU_U;
        sft_tensor *in[4], *G = cu_random(ctx, 4, qs, 110 + k, -1, 1), *yc, *yd, *gc, *gd;
        const int grad[4] = {1, 1, 1, 0};
        cu_attn a;
        char what[64];
        cu_case c;
        in[0] = cu_random(ctx, 4, qs, 111 + k, -1, 1); in[1] = cu_random(ctx, 4, ks, 112 + k, -1, 1);
        in[2] = cu_random(ctx, 4, ks, 113 + k, -1, 1); in[3] = cu_ids(ctx, 2, is, 1, 1);
        for (t = 0; in[3] && t < cases[k].B * cases[k].T; t++)      /* three packed sequences a row */
            ((int32_t *)in[3]->data)[t] = (int32_t)((t % cases[k].T) * 3 / cases[k].T);
        a.packed = cases[k].packed;
        cu_case_init(&c, ctx, 4, in, grad);
        yc = cu_graph(ctx, b_attention, &a, c.cpu, G);
        yd = cu_graph(ctx, b_attention, &a, c.dev, G);
        snprintf(what, sizeof what, "attention case %d", k);
        cu_rel(what, ctx, yd, yc, tol);
        for (i = 0; i < 3; i++)
            if (cu_grads(&c, i, &gc, &gd)) {
                snprintf(what, sizeof what, "attention case %d d%c", k, "qkv"[i]);
                cu_rel(what, ctx, gd, gc, tol);
            }
        sft_tensor_destroy(yc); sft_tensor_destroy(yd); sft_tensor_destroy(G);
        cu_case_free(&c);
    }
    sft_context_destroy(ctx);
}

/* ---------------------------------------------------------------------------
   Cross-entropy, alone and fused with the output projection */

static sft_status b_ce(sft_context *ctx, sft_tensor *const *in, const void *user, sft_tensor **out) {
    return sft_cross_entropy(ctx, in[0], in[1], (const sft_ce_desc *)user, out);
}

static sft_status b_lce(sft_context *ctx, sft_tensor *const *in, const void *user, sft_tensor **out) {
    return sft_linear_cross_entropy(ctx, in[0], in[1], in[2], (const sft_ce_desc *)user, out);
}

/* labels in [0, V) with every fifth one ignored */
static sft_tensor *cu_labels(sft_context *ctx, int64_t N, int64_t V, uint64_t seed) {
    sft_tensor *y = cu_ids(ctx, 1, &N, seed, (int32_t)V);
    int64_t i;
    for (i = 0; y && i < N; i += 5) ((int32_t *)y->data)[i] = -100;
    return y;
}

static void cross_entropy_matches_cpu_within_the_sum_bound(void) {
    sft_context *ctx = cu_context();
    int64_t ls[2] = {13, 301}, V = 301, one = 1;
    sft_ce_desc descs[3];
    int k;
    memset(descs, 0, sizeof descs);
    descs[1].label_smoothing = 0.1f; descs[1].reduction = SFT_CE_SUM_DIV; descs[1].divisor = 7.0f;
    descs[2].reduction = SFT_CE_SUM;
    for (k = 0; k < 3; k++) {
        sft_tensor *in[2], *G = cu_random(ctx, 1, &one, 120 + k, 0.5f, 1.5f), *yc, *yd, *gc, *gd;
        const int grad[2] = {1, 0};
        double tol = 4.0 * (double)(V + 16) * CU_U;
        char what[64];
        cu_case c;
        in[0] = cu_random(ctx, 2, ls, 121 + k, -4, 4); in[1] = cu_labels(ctx, 13, V, 122 + k);
        cu_case_init(&c, ctx, 2, in, grad);
        yc = cu_graph(ctx, b_ce, &descs[k], c.cpu, G);
        yd = cu_graph(ctx, b_ce, &descs[k], c.dev, G);
        snprintf(what, sizeof what, "cross_entropy case %d", k);
        cu_close(what, ctx, yd, yc, 0.0, tol);
        snprintf(what, sizeof what, "cross_entropy case %d dlogits", k);
        if (cu_grads(&c, 0, &gc, &gd)) cu_close(what, ctx, gd, gc, tol * 1.5, tol);   /* |k| <= 1.5 */
        sft_tensor_destroy(yc); sft_tensor_destroy(yd); sft_tensor_destroy(G);
        cu_case_free(&c);
    }
    sft_context_destroy(ctx);
}

/* Two vocabulary chunks need more rows than 16 MiB of logits hold for 448
   columns: 8200 rows of a narrow hidden state. (Under AddressSanitizer, which
   makes the emulator several times slower, only the first case runs: make
   cuda-emu runs both.) */
static void linear_cross_entropy_matches_cpu_over_vocabulary_chunks(void) {
    static const struct { int64_t N, D, V; } cases[2] = {{29, 37, 211}, {8200, 4, 600}};
    sft_context *ctx = cu_context();
    int64_t one = 1;
    sft_ce_desc d;
    int k, n_cases = 2;
#if defined(CUDA_EMU) && defined(__SANITIZE_ADDRESS__)
    n_cases = 1;
#endif
    memset(&d, 0, sizeof d);
    d.label_smoothing = 0.05f;
    for (k = 0; k < n_cases; k++) {
        int64_t hs[2] = {cases[k].N, cases[k].D}, ws[2] = {cases[k].V, cases[k].D};
        sft_tensor *in[3], *G = cu_random(ctx, 1, &one, 130 + k, 0.5f, 1.5f), *yc, *yd, *gc, *gd;
        const int grad[3] = {1, 1, 0};
        double tol = 4.0 * (double)(cases[k].V + cases[k].D + 16) * CU_U;
        char what[64];
        cu_case c;
        in[0] = cu_random(ctx, 2, hs, 131 + k, -1, 1); in[1] = cu_random(ctx, 2, ws, 132 + k, -1, 1);
        in[2] = cu_labels(ctx, cases[k].N, cases[k].V, 133 + k);
        cu_case_init(&c, ctx, 3, in, grad);
        yc = cu_graph(ctx, b_lce, &d, c.cpu, G);
        yd = cu_graph(ctx, b_lce, &d, c.dev, G);
        snprintf(what, sizeof what, "linear_cross_entropy %lld rows", (long long)cases[k].N);
        cu_close(what, ctx, yd, yc, 0.0, tol);
        snprintf(what, sizeof what, "linear_cross_entropy %lld rows dhidden", (long long)cases[k].N);
        if (cu_grads(&c, 0, &gc, &gd)) cu_rel(what, ctx, gd, gc, tol);
        snprintf(what, sizeof what, "linear_cross_entropy %lld rows dweight", (long long)cases[k].N);
        if (cu_grads(&c, 1, &gc, &gd)) cu_rel(what, ctx, gd, gc, tol);
        sft_tensor_destroy(yc); sft_tensor_destroy(yd); sft_tensor_destroy(G);
        cu_case_free(&c);
    }
    sft_context_destroy(ctx);
}

/* A tied lm_head: the embedding and the output projection share one weight,
   whose gradient gathers the embedding's scatter and the projection's GEMM. */
static sft_status b_tied(sft_context *ctx, sft_tensor *const *in, const void *user, sft_tensor **out) {
    sft_tensor *x, *h;
    CU_TRY(sft_embedding(ctx, in[0], in[1], &x));
    CU_TRY(sft_rmsnorm(ctx, x, in[3], 1e-6f, &h));
    return sft_linear_cross_entropy(ctx, h, in[0], in[2], (const sft_ce_desc *)user, out);
}

static void tied_embedding_and_output_projection_match_cpu(void) {
    sft_context *ctx = cu_context();
    int64_t ws[2] = {97, 24}, is[2] = {3, 11}, ns[1] = {24}, one = 1, t;
    sft_tensor *in[4], *G = cu_random(ctx, 1, &one, 160, 0.5f, 1.5f), *yc, *yd, *gc, *gd;
    const int grad[4] = {1, 0, 0, 1};
    double tol = 4.0 * (double)(97 + 24 + 16) * CU_U;
    sft_ce_desc d;
    cu_case c;
    memset(&d, 0, sizeof d);
    d.reduction = SFT_CE_SUM_DIV; d.divisor = 29.0f;   /* num_items_in_batch */
    in[0] = cu_random(ctx, 2, ws, 161, -1, 1); in[1] = cu_ids(ctx, 2, is, 162, 97);
    in[2] = cu_ids(ctx, 2, is, 163, 97); in[3] = cu_random(ctx, 1, ns, 164, 0.5f, 1.5f);
    for (t = 0; in[2] && t < 33; t += 4) ((int32_t *)in[2]->data)[t] = -100;
    cu_case_init(&c, ctx, 4, in, grad);
    yc = cu_graph(ctx, b_tied, &d, c.cpu, G);
    yd = cu_graph(ctx, b_tied, &d, c.dev, G);
    cu_close("tied loss", ctx, yd, yc, 0.0, tol);
    if (cu_grads(&c, 0, &gc, &gd)) cu_rel("tied weight: embedding scatter + projection", ctx, gd, gc, tol);
    if (cu_grads(&c, 3, &gc, &gd)) cu_rel("norm weight", ctx, gd, gc, tol);
    sft_tensor_destroy(yc); sft_tensor_destroy(yd); sft_tensor_destroy(G);
    cu_case_free(&c);
    sft_context_destroy(ctx);
}

static void cross_entropy_label_out_of_range_on_the_device_fails(void) {
    sft_context *ctx = cu_context();
    int64_t ls[2] = {4, 9}, n = 4;
    sft_tensor *x = cu_random(ctx, 2, ls, 1, -1, 1), *y = cu_ids(ctx, 1, &n, 2, 9), *dx, *dy, *out = NULL;
    if (y) ((int32_t *)y->data)[2] = 9;
    dx = cu_on(ctx, x, CU); dy = cu_on(ctx, y, CU);
    CHECK_STATUS(sft_cross_entropy(ctx, dx, dy, NULL, &out), SFT_ERR_ARG);
    CHECK_ERROR_MENTIONS("labels[2] = 9");
    sft_tensor_destroy(x); sft_tensor_destroy(y); sft_tensor_destroy(dx); sft_tensor_destroy(dy);
    sft_context_destroy(ctx);
}

/* ---------------------------------------------------------------------------
   Prompt tuning */

static sft_status b_prompt(sft_context *ctx, sft_tensor *const *in, const void *user, sft_tensor **out) {
    sft_prompt_batch pb;
    (void)user;
    CU_TRY(sft_prompt_prepend(ctx, in[1], in[0], NULL, NULL, &pb));
    *out = pb.embeds;
    return SFT_OK;
}

static void prompt_prepend_matches_cpu_bitwise(void) {
    sft_context *ctx = cu_context();
    int64_t es[3] = {3, 5, 19}, ps[2] = {4, 19}, gs[3] = {3, 9, 19};
    sft_tensor *in[2], *G = cu_random(ctx, 3, gs, 141, -1, 1), *yc, *yd, *gc, *gd;
    const int grad[2] = {1, 1};
    cu_case c;
    in[0] = cu_random(ctx, 3, es, 142, -1, 1); in[1] = cu_random(ctx, 2, ps, 143, -1, 1);
    cu_case_init(&c, ctx, 2, in, grad);
    yc = cu_graph(ctx, b_prompt, NULL, c.cpu, G);
    yd = cu_graph(ctx, b_prompt, NULL, c.dev, G);
    cu_same("prompt tuning", ctx, yd, yc);
    if (cu_grads(&c, 0, &gc, &gd)) cu_same("d embeds", ctx, gd, gc);
    if (cu_grads(&c, 1, &gc, &gd)) cu_same("d prompts (batch summed in order)", ctx, gd, gc);
    sft_tensor_destroy(yc); sft_tensor_destroy(yd); sft_tensor_destroy(G);
    cu_case_free(&c);
    sft_context_destroy(ctx);
}

/* ---------------------------------------------------------------------------
   4-bit dequantization, every format */

static void dequantization_matches_cpu_bitwise_in_every_format(void) {
    static const struct { sft_quant_type type; int bs, dq; int64_t rows, cols; } cases[5] = {
        {SFT_QUANT_NF4, 64, 0, 37, 70}, {SFT_QUANT_NF4, 64, 1, 37, 70}, {SFT_QUANT_FP4, 32, 1, 5, 33},
        {SFT_QUANT_FP4, 128, 0, 3, 45}, {SFT_QUANT_NF4, 64, 1, 300, 263}};   /* the last: more than 256 blocks */
    sft_context *ctx = cu_context();
    int k;
    for (k = 0; k < 5; k++) {
        int64_t ws[2] = {cases[k].rows, cases[k].cols};
        sft_tensor *w = cu_random(ctx, 2, ws, 150 + k, -0.2f, 0.2f), *wc = NULL, *wd = NULL;
        sft_qweight *q = NULL, *qd = NULL;
        sft_quant_desc desc;
        char what[96];
        memset(&desc, 0, sizeof desc);
        desc.type = cases[k].type; desc.blocksize = cases[k].bs; desc.double_quant = cases[k].dq;
        CHECK_OK(sft_quantize(ctx, w, &desc, &q));
        if (q) CHECK_OK(sft_qweight_to_device(ctx, q, CU, &qd));
        if (qd) {
            CHECK(qd->device == CU);
            CHECK_OK(sft_dequantize(ctx, q, &wc));
            CHECK_OK(sft_dequantize(ctx, qd, &wd));
            snprintf(what, sizeof what, "dequantize %s blocksize %d double_quant %d [%lld, %lld]", cases[k].type == SFT_QUANT_NF4 ? "nf4" : "fp4",
                     cases[k].bs, cases[k].dq, (long long)cases[k].rows, (long long)cases[k].cols);
            cu_same(what, ctx, wd, wc);
        }
        sft_tensor_destroy(w); sft_tensor_destroy(wc); sft_tensor_destroy(wd);
        sft_qweight_destroy(q); sft_qweight_destroy(qd);
    }
    sft_context_destroy(ctx);
}

void cuda_ops_tests(void) {
    printf("cuda: operators against the CPU\n");
    CU_RUN(add_mul_scale_reshape_match_cpu_bitwise);
    CU_RUN(elementwise_kernels_cover_tensors_larger_than_one_grid);
    CU_RUN_LIBM(silu_and_swiglu_match_cpu);
    CU_RUN(dropout_masks_and_values_match_cpu_bitwise);
    CU_RUN(embedding_and_its_scatter_match_cpu_bitwise);
    CU_RUN(embedding_id_out_of_range_on_the_device_fails);
    CU_RUN(rmsnorm_matches_cpu_within_the_sum_bound);
    CU_RUN_LIBM(rope_with_llama3_scaling_matches_cpu);
    CU_RUN(matmul_matches_cpu_in_every_orientation);
    CU_RUN_LIBM(attention_matches_cpu_within_the_softmax_bound);
    CU_RUN_LIBM(cross_entropy_matches_cpu_within_the_sum_bound);
    CU_RUN_LIBM(linear_cross_entropy_matches_cpu_over_vocabulary_chunks);
    CU_RUN_LIBM(tied_embedding_and_output_projection_match_cpu);
    CU_RUN(cross_entropy_label_out_of_range_on_the_device_fails);
    CU_RUN(prompt_prepend_matches_cpu_bitwise);
    CU_RUN(dequantization_matches_cpu_bitwise_in_every_format);
}
