/* test_cuda_layers.cu - QLoRA's layers on the CUDA device against the CPU:
   Linear4bit (the fused 4-bit GEMM) and LoRA / rsLoRA / DoRA layers over 4-bit,
   f32 and bf16 bases, with dropout, mixed-batch routing and replayed masks.

     Linear4bit forward and backward     bit for bit everywhere: the 4-bit GEMM
                                         is the reference tiled kernel on a GPU
                                         too (tiles decoded in shared memory,
                                         k in order)
     LoRA, rsLoRA, mixed batches,        bit for bit with the reference GEMM
     replayed masks, 440 rows (dA and    (emulator, SFT_CUDA_GEMM=reference):
     dB summed in the CPU's blocks),     the same products in the same order;
     the base in bf16                    with cuBLASLt within 8 (K + r) u of
                                         the largest value (two chained GEMMs)
     DoRA, alone or active after         the row norms add their squares in
     other adapters                      double in another order: within
                                         8 (K + r) u of the largest value
     AdamW (torch, bitsandbytes 32-bit   bit for bit: weights, moments, 8-bit
     and 8-bit), gradient norm,          codes and scales, the norm (the same
     clipping                            chunks of 4096 added in order) */
#include "../sft.h"
#include "test_cuda.h"
#include <cuda_runtime.h>   /* to read optimizer state on the device */

/* a layer of [N, K] on device dev from the CPU weight w (f32, or quantized per q;
   bf16 when bf16): the same base on both devices */
typedef struct cu_base { sft_quant_type quant; int double_quant, bf16, compute_bf16; } cu_base;

static sft_linear *cu_layer(sft_context *ctx, const sft_tensor *w, const sft_tensor *bias, const cu_base *b, sft_device dev) {
    sft_linear_desc d;
    sft_linear *l = NULL;
    memset(&d, 0, sizeof d);
    d.compute_dtype = b->compute_bf16 ? SFT_BF16 : SFT_F32;
    if (b->quant != SFT_QUANT_NONE) {
        sft_quant_desc qd;
        sft_qweight *q = NULL;
        memset(&qd, 0, sizeof qd);
        qd.type = b->quant; qd.double_quant = b->double_quant;
        CHECK_OK(sft_quantize(ctx, w, &qd, &q));
        if (q && dev != SFT_DEVICE_CPU) {
            CHECK_OK(sft_qweight_to_device(ctx, q, dev, &d.qweight));
            sft_qweight_destroy(q);
        } else d.qweight = q;
        if (!d.qweight) return NULL;
    } else {
        sft_tensor *wc = NULL;
        CHECK_OK(sft_tensor_convert(ctx, w, b->bf16 ? SFT_BF16 : SFT_F32, &wc));
        if (!wc) return NULL;
        d.weight = dev == SFT_DEVICE_CPU ? wc : cu_on(ctx, wc, dev);
        if (dev != SFT_DEVICE_CPU) sft_tensor_destroy(wc);
    }
    if (bias) d.bias = cu_on(ctx, bias, dev);
    CHECK_OK(sft_linear_create(ctx, &d, &l));
    return l;
}

/* random B (and magnitude) values, the same on both layers */
static void cu_fill_adapter(sft_context *ctx, sft_linear *lc, sft_linear *ld, const char *name, uint64_t seed) {
    sft_lora_weights wc, wd;
    sft_tensor *r;
    CHECK_OK(sft_linear_adapter_weights(lc, name, &wc));
    CHECK_OK(sft_linear_adapter_weights(ld, name, &wd));
    r = cu_random(ctx, wc.B->ndim, wc.B->shape, seed, -0.2f, 0.2f);
    if (r) { CHECK_OK(sft_tensor_copy_from(wc.B, r)); CHECK_OK(sft_tensor_copy_from(wd.B, r)); }
    sft_tensor_destroy(r);
}

typedef struct cu_lin_run {
    sft_linear *layer;
    sft_linear_call call;
    const sft_tensor *mask_cpu;     /* a replayed mask (copied to the layer's device) */
} cu_lin_run;

static sft_status b_linear(sft_context *ctx, sft_tensor *const *in, const void *user, sft_tensor **out) {
    const cu_lin_run *r = (const cu_lin_run *)user;
    sft_linear_call call = r->call;
    sft_tensor *mask = NULL;
    if (r->mask_cpu) {
        if (in[0]->device == SFT_DEVICE_CPU) mask = (sft_tensor *)r->mask_cpu;
        else {
            sft_tensor *tmp = cu_on(ctx, r->mask_cpu, in[0]->device);
            if (tmp) CHECK_OK(sft_scale(ctx, tmp, 1.0f, &mask));   /* a step copy: freed with the step */
            sft_tensor_destroy(tmp);
        }
        call.dropout_mask = mask;
    }
    return sft_linear_forward(ctx, r->layer, in[0], &call, out);
}

static sft_tensor *cu_lin_graph(sft_context *ctx, sft_linear *l, const sft_linear_call *call, const sft_tensor *mask, sft_tensor *x,
                                const sft_tensor *G) {
    cu_lin_run r;
    sft_tensor *y = NULL, *loss = NULL, *keep = NULL;
    r.layer = l; r.call = *call; r.mask_cpu = mask;
    sft_step_begin(ctx);
    CHECK_OK(b_linear(ctx, &x, &r, &y));
    if (!y) return NULL;
    keep = cu_on(ctx, y, y->device);
    if ((loss = cu_sum_product(ctx, y, G)) != NULL) CHECK_OK(sft_backward(ctx, loss));
    return keep;
}

/* compare y, dx and every adapter's A, B (and m) gradients; exact: bit for bit */
static void cu_compare_layers(const char *what, sft_context *ctx, sft_linear *lc, sft_linear *ld, const char *const *names, int n_names,
                              const sft_tensor *yc, const sft_tensor *yd, const sft_tensor *xc, const sft_tensor *xd, int exact, double tol) {
    char msg[160];
    int i, part;
    snprintf(msg, sizeof msg, "%s: y", what);
    if (exact) cu_same(msg, ctx, yd, yc); else cu_rel(msg, ctx, yd, yc, tol);
    snprintf(msg, sizeof msg, "%s: dx", what);
    if (!xc->grad || !xd->grad) CHECK_MSG(0, "%s: no gradient", msg);
    else if (exact) cu_same(msg, ctx, xd->grad, xc->grad);
    else cu_rel(msg, ctx, xd->grad, xc->grad, tol);
    for (i = 0; i < n_names; i++) {
        sft_lora_weights wc, wd;
        CHECK_OK(sft_linear_adapter_weights(lc, names[i], &wc));
        CHECK_OK(sft_linear_adapter_weights(ld, names[i], &wd));
        for (part = 0; part < 3; part++) {
            sft_tensor *tc = part == 0 ? wc.A : part == 1 ? wc.B : wc.magnitude, *td = part == 0 ? wd.A : part == 1 ? wd.B : wd.magnitude;
            if (!tc) continue;
            snprintf(msg, sizeof msg, "%s: adapter %s d%s", what, names[i], part == 0 ? "A" : part == 1 ? "B" : "magnitude");
            if (!tc->grad || !td->grad) { CHECK_MSG(tc->grad == NULL && td->grad == NULL, "%s: on one device only", msg); continue; }
            if (exact) cu_same(msg, ctx, td->grad, tc->grad); else cu_rel(msg, ctx, td->grad, tc->grad, tol);
        }
    }
}

/* ---------------------------------------------------------------------------
   Linear4bit */

static sft_status b_linear4bit(sft_context *ctx, sft_tensor *const *in, const void *user, sft_tensor **out) {
    return sft_linear4bit(ctx, in[0], (const sft_qweight *)user, in[1], out);
}

static void linear4bit_matches_cpu_bitwise_in_both_directions(void) {
    static const struct { sft_quant_type type; int dq; int64_t M, N, K; } cases[3] = {
        {SFT_QUANT_NF4, 1, 15, 37, 70}, {SFT_QUANT_FP4, 0, 33, 45, 31}, {SFT_QUANT_NF4, 0, 7, 65, 129}};
    sft_context *ctx = cu_context();
    int k;
    for (k = 0; k < 3; k++) {
        int64_t xs[2] = {cases[k].M, cases[k].K}, ws[2] = {cases[k].N, cases[k].K}, bs[1] = {cases[k].N}, ys[2] = {cases[k].M, cases[k].N};
        sft_tensor *w = cu_random(ctx, 2, ws, 200 + k, -0.3f, 0.3f), *G = cu_random(ctx, 2, ys, 201 + k, -1, 1);
        sft_tensor *x = cu_random(ctx, 2, xs, 202 + k, -1, 1), *bias = cu_random(ctx, 1, bs, 203 + k, -1, 1);
        sft_tensor *dx = cu_on(ctx, x, CU), *dbias = cu_on(ctx, bias, CU), *yc = NULL, *yd = NULL, *in[2];
        sft_qweight *q = NULL, *qd = NULL;
        sft_quant_desc desc;
        char what[96];
        memset(&desc, 0, sizeof desc);
        desc.type = cases[k].type; desc.double_quant = cases[k].dq;
        CHECK_OK(sft_quantize(ctx, w, &desc, &q));
        if (q) CHECK_OK(sft_qweight_to_device(ctx, q, CU, &qd));
        if (!qd || !dx || !dbias) { sft_qweight_destroy(q); break; }
        sft_tensor_set_requires_grad(x, 1); sft_tensor_set_requires_grad(dx, 1);
        sft_tensor_set_requires_grad(bias, 1); sft_tensor_set_requires_grad(dbias, 1);
        sft_step_begin(ctx);
        in[0] = x; in[1] = bias;
        CHECK_OK(b_linear4bit(ctx, in, q, &yc));
        if (yc) CHECK_OK(sft_backward(ctx, cu_sum_product(ctx, yc, G)));
        if (yc) yc = cu_on(ctx, yc, SFT_DEVICE_CPU);
        sft_step_begin(ctx);
        in[0] = dx; in[1] = dbias;
        CHECK_OK(b_linear4bit(ctx, in, qd, &yd));
        if (yd) CHECK_OK(sft_backward(ctx, cu_sum_product(ctx, yd, G)));
        snprintf(what, sizeof what, "linear4bit %s %lld x %lld x %lld", cases[k].type == SFT_QUANT_NF4 ? "nf4" : "fp4", (long long)cases[k].M,
                 (long long)cases[k].N, (long long)cases[k].K);
        cu_same(what, ctx, yd, yc);
        if (x->grad && dx->grad) cu_same("linear4bit dx (dy W, decoded tile by tile)", ctx, dx->grad, x->grad);
        if (bias->grad && dbias->grad) cu_same("linear4bit dbias", ctx, dbias->grad, bias->grad);
        sft_step_begin(ctx);
        sft_tensor_destroy(yc);
        sft_tensor_destroy(w); sft_tensor_destroy(G); sft_tensor_destroy(x); sft_tensor_destroy(bias);
        sft_tensor_destroy(dx); sft_tensor_destroy(dbias);
        sft_qweight_destroy(q); sft_qweight_destroy(qd);
    }
    sft_context_destroy(ctx);
}

/* ---------------------------------------------------------------------------
   LoRA layers */

typedef struct cu_lora_case {
    const char *name;
    cu_base base;
    int use_rslora, use_dora;
    float dropout;
    int mixed;          /* 1: two adapters routed per sample; 2: three active together,
                           a LoRA, a DoRA without dropout, a DoRA with the case's */
    int replay;         /* a replayed dropout mask */
    int64_t T;          /* rows per sample (4 samples); 0 = 5 */
} cu_lora_case;

static void cu_lora_case_run(sft_context *ctx, const cu_lora_case *c, uint64_t seed) {
    int64_t B = 4, T = c->T ? c->T : 5, K = 70, N = 37, xs[3] = {B, T, K}, ws[2] = {N, K}, ys[3] = {B, T, N}, bs[1] = {N};
    static const char *const names[3] = {"a", "b", "c"}, *const route[4] = {"a", "__base__", "b", "a"};
    sft_tensor *w = cu_random(ctx, 2, ws, seed, -0.3f, 0.3f), *bias = cu_random(ctx, 1, bs, seed + 1, -0.5f, 0.5f);
    sft_tensor *x = cu_random(ctx, 3, xs, seed + 2, -1, 1), *G = cu_random(ctx, 3, ys, seed + 3, -1, 1), *mask = NULL;
    sft_tensor *dx = cu_on(ctx, x, CU), *yc = NULL, *yd = NULL;
    sft_linear *lc = cu_layer(ctx, w, bias, &c->base, SFT_DEVICE_CPU), *ld = cu_layer(ctx, w, bias, &c->base, CU);
    sft_lora_desc ad;
    sft_linear_call call;
    int i, n_ad = c->mixed == 2 ? 3 : c->mixed ? 2 : 1, exact = cu_gemm_exact() && !c->use_dora;
    memset(&ad, 0, sizeof ad);
    ad.r = 6; ad.alpha = 12.0f; ad.dropout = c->dropout; ad.use_rslora = c->use_rslora; ad.use_dora = c->use_dora;
    for (i = 0; lc && ld && i < n_ad; i++) {
        sft_lora_weights wc, wd;
        ad.seed = seed + 10 + (uint64_t)i;
        if (c->mixed == 2) { ad.use_dora = i > 0; ad.dropout = i == 1 ? 0.0f : c->dropout; }
        CHECK_OK(sft_linear_add_adapter(lc, names[i], &ad));
        CHECK_OK(sft_linear_add_adapter(ld, names[i], &ad));
        cu_fill_adapter(ctx, lc, ld, names[i], seed + 20 + (uint64_t)i);
        if (!ad.use_dora) continue;
        CHECK_OK(sft_linear_adapter_weights(lc, names[i], &wc));   /* the magnitudes start as |W| on each device */
        CHECK_OK(sft_linear_adapter_weights(ld, names[i], &wd));
        cu_close("DoRA initial magnitude |W| per row", ctx, wd.magnitude, wc.magnitude, 0.0, 4 * CU_U);
        CHECK_OK(sft_tensor_copy_from(wd.magnitude, wc.magnitude));   /* from here, the same values */
    }
    if (c->mixed == 2 && lc && ld) {
        CHECK_OK(sft_linear_set_active(lc, names, 3));
        CHECK_OK(sft_linear_set_active(ld, names, 3));
    }
    memset(&call, 0, sizeof call);
    call.training = 1; call.dropout_seed = seed + 30;
    if (c->mixed == 1) { call.adapter_names = route; call.n_adapter_names = 4; }
    if (c->replay) {   /* factors 0 or 1/(1-p), as a mask from another run */
        int64_t e;
        mask = cu_random(ctx, 3, xs, seed + 40, 0, 1);
        for (e = 0; mask && e < sft_tensor_numel(mask); e++)
            ((float *)mask->data)[e] = ((float *)mask->data)[e] < c->dropout ? 0.0f : 1.0f / (1.0f - c->dropout);
    }
    sft_tensor_set_requires_grad(x, 1);
    sft_tensor_set_requires_grad(dx, 1);
    if (lc && ld && dx) {
        yc = cu_lin_graph(ctx, lc, &call, mask, x, G);
        yd = cu_lin_graph(ctx, ld, &call, mask, dx, G);
        cu_compare_layers(c->name, ctx, lc, ld, names, n_ad, yc, yd, x, dx, exact, 8.0 * (double)(K + ad.r) * CU_U);
    }
    sft_tensor_destroy(yc); sft_tensor_destroy(yd);
    sft_linear_destroy(lc); sft_linear_destroy(ld);
    sft_tensor_destroy(w); sft_tensor_destroy(bias); sft_tensor_destroy(x); sft_tensor_destroy(dx); sft_tensor_destroy(G);
    sft_tensor_destroy(mask);
}

static void lora_layers_match_cpu_on_every_base(void) {
    static const cu_lora_case cases[] = {
        {"lora on nf4 with dropout", {SFT_QUANT_NF4, 1, 0, 0}, 0, 0, 0.1f, 0, 0, 0},
        {"rslora on fp4", {SFT_QUANT_FP4, 0, 0, 0}, 1, 0, 0.0f, 0, 0, 0},
        {"lora on f32 with dropout", {SFT_QUANT_NONE, 0, 0, 0}, 0, 0, 0.25f, 0, 0, 0},
        {"lora on bf16", {SFT_QUANT_NONE, 0, 1, 0}, 0, 0, 0.0f, 0, 0, 0},
        {"two adapters routed per sample, dropout", {SFT_QUANT_NF4, 0, 0, 0}, 0, 0, 0.2f, 1, 0, 0},
        {"a replayed dropout mask", {SFT_QUANT_NF4, 1, 0, 0}, 0, 0, 0.3f, 0, 1, 0},
        /* 440 rows: dA and dB in the CPU's row blocks (SFT__LORA_RB) and more than one task (SFT__LORA_TASK_ROWS) */
        {"lora on nf4 over 440 rows with dropout", {SFT_QUANT_NF4, 1, 0, 0}, 0, 0, 0.1f, 0, 0, 110},
        {"two adapters routed over 440 rows", {SFT_QUANT_NF4, 0, 0, 0}, 0, 0, 0.0f, 1, 0, 110},
        /* bnb_4bit_compute_dtype bfloat16: the frozen base multiplied in bf16 */
        {"lora on nf4, base in bf16", {SFT_QUANT_NF4, 1, 0, 1}, 0, 0, 0.1f, 0, 0, 0},
        {"lora on f32, base in bf16", {SFT_QUANT_NONE, 0, 0, 1}, 0, 0, 0.0f, 0, 0, 70}};
    sft_context *ctx = cu_context();
    size_t k;
    for (k = 0; k < sizeof cases / sizeof *cases; k++) cu_lora_case_run(ctx, &cases[k], 300 + 50 * k);
    sft_context_destroy(ctx);
}

static void dora_layers_match_cpu_within_the_norm_bound(void) {
    static const cu_lora_case cases[] = {
        {"dora on nf4", {SFT_QUANT_NF4, 1, 0, 0}, 0, 1, 0.0f, 0, 0, 0},
        {"dora on nf4 with dropout", {SFT_QUANT_NF4, 0, 0, 0}, 0, 1, 0.15f, 0, 0, 0},
        {"dora on f32", {SFT_QUANT_NONE, 0, 0, 0}, 0, 1, 0.0f, 0, 0, 0},
        {"dora on bf16 with dropout", {SFT_QUANT_NONE, 0, 1, 0}, 1, 1, 0.1f, 0, 0, 0},
        {"dora on nf4 over 440 rows, base in bf16", {SFT_QUANT_NF4, 1, 0, 1}, 0, 1, 0.1f, 0, 0, 110},
        /* PEFT's order: the DoRAs' base terms are the result so far, or x W^T with dropout */
        {"lora, dora, dora with dropout, active together on nf4", {SFT_QUANT_NF4, 1, 0, 0}, 0, 1, 0.1f, 2, 0, 0},
        {"the same stack over 440 rows on f32", {SFT_QUANT_NONE, 0, 0, 0}, 0, 1, 0.2f, 2, 0, 110}};
    sft_context *ctx = cu_context();
    size_t k;
    for (k = 0; k < sizeof cases / sizeof *cases; k++) cu_lora_case_run(ctx, &cases[k], 700 + 50 * k);
    sft_context_destroy(ctx);
}

static void layer_refuses_inputs_on_another_device_and_merging_on_cuda(void) {
    sft_context *ctx = cu_context();
    int64_t ws[2] = {8, 16}, xs[2] = {3, 16};
    cu_base b = {SFT_QUANT_NF4, 0, 0, 0};
    sft_tensor *w = cu_random(ctx, 2, ws, 1, -1, 1), *x = cu_random(ctx, 2, xs, 2, -1, 1), *y = NULL;
    sft_linear *ld = cu_layer(ctx, w, NULL, &b, CU);
    CHECK_OK(sft_linear_add_adapter(ld, "a", NULL));
    CHECK_STATUS(sft_linear_forward(ctx, ld, x, NULL, &y), SFT_ERR_DEVICE);
    CHECK_ERROR_MENTIONS("x is on cpu, the weight on cuda");
    CHECK_STATUS(sft_linear_merge(ld, NULL, 0), SFT_ERR_UNSUPPORTED);
    CHECK_ERROR_MENTIONS("merge");
    sft_linear_destroy(ld);
    sft_tensor_destroy(w); sft_tensor_destroy(x);
    sft_context_destroy(ctx);
}

/* ---------------------------------------------------------------------------
   The optimizer */

/* bytes of device memory into a fresh host buffer, hashed */
static void *cu_state_bytes(const void *dev, size_t n) {
    void *h = calloc(1, n ? n : 1);
    if (h && cudaMemcpy(h, dev, n, cudaMemcpyDeviceToHost) != cudaSuccess) { free(h); return NULL; }
    if (h) cu_hash(h, n);
    return h;
}

static void cu_same_state(const char *what, const void *cpu, const void *dev, size_t n) {
    void *h = cu_state_bytes(dev, n);
    CHECK_MSG(h && memcmp(h, cpu, n) == 0, "%s: the device state differs from the CPU's", what);
    free(h);
}

static void adamw_steps_match_cpu_bitwise_with_clipping(void) {
    static const int64_t sizes[4] = {5000, 300, 7, 4097};   /* 8-bit from 4096 values, 32-bit below */
    sft_context *ctx = cu_context();
    int eight, i, step;
    for (eight = 0; eight < 2; eight++) {
        sft_tensor *pc[4], *pd[4];
        unsigned char nd[4] = {0, 1, 0, 0};
        sft_optimizer_desc d;
        sft_optimizer *oc = NULL, *od = NULL;
        memset(&d, 0, sizeof d);
        d.lr = 1e-2; d.weight_decay = 0.05; d.eight_bit = eight;
        for (i = 0; i < 4; i++) {
            pc[i] = cu_random(ctx, 1, &sizes[i], 400 + i, -1, 1);
            pd[i] = cu_on(ctx, pc[i], CU);
            if (pc[i]) CHECK_OK(sft_tensor_create(ctx, SFT_F32, 1, &sizes[i], &pc[i]->grad));
            if (pd[i]) CHECK_OK(sft_tensor_create_on(ctx, CU, SFT_F32, 1, &sizes[i], &pd[i]->grad));
        }
        CHECK_OK(sft_optimizer_create(ctx, pc, 4, nd, &d, &oc));
        CHECK_OK(sft_optimizer_create(ctx, pd, 4, nd, &d, &od));
        for (step = 0; oc && od && step < 3; step++) {
            double nc, ndv;
            for (i = 0; i < 4; i++) {   /* new gradients, large enough to clip on the second step */
                sft_tensor *g = cu_random(ctx, 1, &sizes[i], 500 + 10 * step + i, step == 1 ? -3.0f : -0.01f, step == 1 ? 3.0f : 0.01f);
                if (g && pc[i]->grad && pd[i]->grad) { CHECK_OK(sft_tensor_copy_from(pc[i]->grad, g)); CHECK_OK(sft_tensor_copy_from(pd[i]->grad, g)); }
                sft_tensor_destroy(g);
            }
            nc = sft_optimizer_clip_grad_norm(oc, 1.0);
            ndv = sft_optimizer_clip_grad_norm(od, 1.0);
            cu_hash(&ndv, sizeof ndv);
            CHECK_MSG(nc == ndv, "eight_bit %d step %d: grad norm %.17g on cuda, %.17g on the cpu", eight, step, ndv, nc);
            CHECK_OK(sft_optimizer_step(oc, 1e-2));
            CHECK_OK(sft_optimizer_step(od, 1e-2));
            for (i = 0; i < 4; i++) {
                sft_optimizer_state sc, sd;
                char what[96];
                snprintf(what, sizeof what, "eight_bit %d step %d parameter %d", eight, step, i);
                cu_same(what, ctx, pd[i], pc[i]);
                CHECK_OK(sft_optimizer_param_state(oc, i, &sc));
                CHECK_OK(sft_optimizer_param_state(od, i, &sd));
                CHECK(sd.device == CU && sc.device == SFT_DEVICE_CPU && sd.step == sc.step);
                if (sc.state1) {
                    cu_same_state("8-bit exp_avg codes", sc.state1, sd.state1, (size_t)sc.numel);
                    cu_same_state("8-bit exp_avg_sq codes", sc.state2, sd.state2, (size_t)sc.numel);
                    cu_same_state("8-bit exp_avg scales", sc.absmax1, sd.absmax1, (size_t)sc.blocks * sizeof(float));
                    cu_same_state("8-bit exp_avg_sq scales", sc.absmax2, sd.absmax2, (size_t)sc.blocks * sizeof(float));
                } else {
                    cu_same_state("exp_avg", sc.exp_avg, sd.exp_avg, (size_t)sc.numel * sizeof(float));
                    cu_same_state("exp_avg_sq", sc.exp_avg_sq, sd.exp_avg_sq, (size_t)sc.numel * sizeof(float));
                }
            }
        }
        sft_optimizer_destroy(oc); sft_optimizer_destroy(od);
        for (i = 0; i < 4; i++) { sft_tensor_destroy(pc[i]); sft_tensor_destroy(pd[i]); }
    }
    sft_context_destroy(ctx);
}

void cuda_layer_tests(void) {
    printf("cuda: layers against the CPU\n");
    CU_RUN(linear4bit_matches_cpu_bitwise_in_both_directions);
    CU_RUN(lora_layers_match_cpu_on_every_base);
    CU_RUN(dora_layers_match_cpu_within_the_norm_bound);
    CU_RUN(layer_refuses_inputs_on_another_device_and_merging_on_cuda);
    CU_RUN(adamw_steps_match_cpu_bitwise_with_clipping);
}
