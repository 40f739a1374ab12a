/* test_autograd.c - the tape, gradients only where required, no-grad mode,
   arenas that stop growing, and checkpointed segments (bit-identical gradients,
   lower memory) on a small Llama-style decoder built from the operators. */
#include "test.h"

/* ---- a tiny decoder: embedding, L x (attention + SwiGLU MLP), norm, head ---- */

enum { TM_B = 2, TM_T = 24, TM_D = 32, TM_HQ = 4, TM_HKV = 2, TM_HD = 8, TM_FF = 48, TM_V = 29, TM_MAXL = 4 };

typedef struct t_layer { sft_tensor *n1, *wq, *wk, *wv, *wo, *n2, *wg, *wu, *wd; } t_layer;
typedef struct t_model t_model;
typedef struct t_layer_call { t_model *m; int layer; } t_layer_call;
struct t_model {
    int          n_layers;
    int64_t      T;             /* sequence length (TM_T unless a test needs more) */
    sft_tensor  *emb, *normf, *head, *ids, *labels, *pos, *seq;
    t_layer      layer[TM_MAXL];
    float        dropout;
    sft_rope_desc rope;
    t_layer_call call[TM_MAXL];   /* segment arguments: must live until backward */
};

static sft_tensor *t_param(sft_context *ctx, int ndim, int64_t d0, int64_t d1, uint64_t *st, float lo, float hi) {
    int64_t shape[2], i;
    sft_tensor *t = NULL;
    shape[0] = d0; shape[1] = d1;
    if (sft_tensor_create(ctx, SFT_F32, ndim, shape, &t) != SFT_OK) return NULL;
    for (i = 0; i < sft_tensor_numel(t); i++) ((float *)t->data)[i] = t_rand(st, lo, hi);
    sft_tensor_set_requires_grad(t, 1);
    return t;
}

static sft_tensor *t_ints(sft_context *ctx, int64_t T, uint64_t *st, int kind) {
    int64_t shape[2], i;
    sft_tensor *t = NULL;
    shape[0] = TM_B; shape[1] = T;
    if (sft_tensor_create(ctx, SFT_I32, 2, shape, &t) != SFT_OK) return NULL;
    for (i = 0; i < TM_B * T; i++) {
        int32_t *v = (int32_t *)t->data;
        if (kind == 0) v[i] = (int32_t)t_rand(st, 0, TM_V);                    /* token ids */
        else if (kind == 1) v[i] = i % 7 == 0 ? -100 : (int32_t)t_rand(st, 0, TM_V); /* labels */
        else if (kind == 2) v[i] = (int32_t)((i % T) % 10);                /* positions restart per sequence */
        else v[i] = (int32_t)((i % T) / 10);                               /* two-and-a-bit packed sequences */
    }
    return t;
}

static void t_model_init_t(sft_context *ctx, t_model *m, int n_layers, float dropout, int64_t T) {
    uint64_t st = 2024;
    int l;
    float s = 0.3f;
    memset(m, 0, sizeof *m);
    m->n_layers = n_layers;
    m->T = T;
    m->dropout = dropout;
    m->rope.theta = 10000.0f;
    m->emb = t_param(ctx, 2, TM_V, TM_D, &st, -1, 1);
    m->normf = t_param(ctx, 1, TM_D, 0, &st, 0.8f, 1.2f);
    m->head = t_param(ctx, 2, TM_V, TM_D, &st, -s, s);
    for (l = 0; l < n_layers; l++) {
        t_layer *L = &m->layer[l];
        L->n1 = t_param(ctx, 1, TM_D, 0, &st, 0.8f, 1.2f);
        L->wq = t_param(ctx, 2, TM_HQ * TM_HD, TM_D, &st, -s, s);
        L->wk = t_param(ctx, 2, TM_HKV * TM_HD, TM_D, &st, -s, s);
        L->wv = t_param(ctx, 2, TM_HKV * TM_HD, TM_D, &st, -s, s);
        L->wo = t_param(ctx, 2, TM_D, TM_HQ * TM_HD, &st, -s, s);
        L->n2 = t_param(ctx, 1, TM_D, 0, &st, 0.8f, 1.2f);
        L->wg = t_param(ctx, 2, TM_FF, TM_D, &st, -s, s);
        L->wu = t_param(ctx, 2, TM_FF, TM_D, &st, -s, s);
        L->wd = t_param(ctx, 2, TM_D, TM_FF, &st, -s, s);
    }
    m->ids = t_ints(ctx, T, &st, 0);
    m->labels = t_ints(ctx, T, &st, 1);
    m->pos = t_ints(ctx, T, &st, 2);
    m->seq = t_ints(ctx, T, &st, 3);
}

static void t_model_init(sft_context *ctx, t_model *m, int n_layers, float dropout) {
    t_model_init_t(ctx, m, n_layers, dropout, TM_T);
}

static void t_model_free(t_model *m) {
    int l;
    sft_tensor_destroy(m->emb); sft_tensor_destroy(m->normf); sft_tensor_destroy(m->head);
    sft_tensor_destroy(m->ids); sft_tensor_destroy(m->labels); sft_tensor_destroy(m->pos); sft_tensor_destroy(m->seq);
    for (l = 0; l < m->n_layers; l++) {
        t_layer *L = &m->layer[l];
        sft_tensor_destroy(L->n1); sft_tensor_destroy(L->wq); sft_tensor_destroy(L->wk); sft_tensor_destroy(L->wv);
        sft_tensor_destroy(L->wo); sft_tensor_destroy(L->n2); sft_tensor_destroy(L->wg); sft_tensor_destroy(L->wu);
        sft_tensor_destroy(L->wd);
    }
}

/* the tensors a test compares: every parameter */
static int t_model_params(t_model *m, sft_tensor **out) {
    int n = 0, l;
    out[n++] = m->emb; out[n++] = m->normf; out[n++] = m->head;
    for (l = 0; l < m->n_layers; l++) {
        t_layer *L = &m->layer[l];
        out[n++] = L->n1; out[n++] = L->wq; out[n++] = L->wk; out[n++] = L->wv; out[n++] = L->wo;
        out[n++] = L->n2; out[n++] = L->wg; out[n++] = L->wu; out[n++] = L->wd;
    }
    return n;
}

#define T_TRY(x) do { sft_status s_ = (x); if (s_ != SFT_OK) return s_; } while (0)

static sft_status t_linear_heads(sft_context *ctx, sft_tensor *h, sft_tensor *w, int64_t T, int64_t heads, sft_tensor **out) {
    sft_tensor *y;
    int64_t shape[4] = {TM_B, 0, 0, TM_HD};
    shape[1] = T; shape[2] = heads;
    T_TRY(sft_matmul(ctx, h, w, 0, 1, &y));
    return sft_reshape(ctx, y, 4, shape, out);
}

/* one decoder layer as a segment: in[0] = x [B*T, D] -> out[0] */
static sft_status t_layer_fn(sft_context *ctx, void *user, sft_tensor *const *in, sft_tensor **out) {
    const t_layer_call *c = (const t_layer_call *)user;
    const t_model *m = c->m;
    const t_layer *L = &m->layer[c->layer];
    sft_tensor *h, *q, *k, *v, *a, *o, *x, *g, *u, *s, *d;
    int64_t flat[2] = {TM_B * m->T, TM_HQ * TM_HD};
    T_TRY(sft_rmsnorm(ctx, in[0], L->n1, 1e-5f, &h));
    T_TRY(t_linear_heads(ctx, h, L->wq, m->T, TM_HQ, &q));
    T_TRY(t_linear_heads(ctx, h, L->wk, m->T, TM_HKV, &k));
    T_TRY(t_linear_heads(ctx, h, L->wv, m->T, TM_HKV, &v));
    T_TRY(sft_rope(ctx, q, m->pos, &m->rope, &q));
    T_TRY(sft_rope(ctx, k, m->pos, &m->rope, &k));
    T_TRY(sft_attention(ctx, q, k, v, m->seq, 0.0f, &a));
    T_TRY(sft_reshape(ctx, a, 2, flat, &a));
    T_TRY(sft_matmul(ctx, a, L->wo, 0, 1, &o));
    T_TRY(sft_add(ctx, in[0], o, &x));
    T_TRY(sft_rmsnorm(ctx, x, L->n2, 1e-5f, &h));
    T_TRY(sft_matmul(ctx, h, L->wg, 0, 1, &g));
    T_TRY(sft_matmul(ctx, h, L->wu, 0, 1, &u));
    T_TRY(sft_swiglu(ctx, g, u, &s));
    T_TRY(sft_matmul(ctx, s, L->wd, 0, 1, &d));
    T_TRY(sft_dropout(ctx, d, m->dropout, sft_rng_key(7, 1, (uint64_t)c->layer, 0), &d));
    return sft_add(ctx, x, d, &out[0]);
}

/* the loss: mean cross-entropy over the packed batch; checkpoint = run each layer as a segment */
static sft_status t_model_loss(sft_context *ctx, t_model *m, int checkpoint, sft_tensor **loss) {
    sft_tensor *x, *h, *logits;
    int64_t xs[2] = {TM_B * m->T, TM_D}, l3[3] = {TM_B, m->T, TM_V};
    int l;
    T_TRY(sft_embedding(ctx, m->emb, m->ids, &x));
    T_TRY(sft_reshape(ctx, x, 2, xs, &x));
    for (l = 0; l < m->n_layers; l++) {
        m->call[l].m = m; m->call[l].layer = l;
        if (checkpoint) T_TRY(sft_checkpoint(ctx, t_layer_fn, &m->call[l], 1, &x, 1, &x));
        else T_TRY(t_layer_fn(ctx, &m->call[l], &x, &x));
    }
    T_TRY(sft_rmsnorm(ctx, x, m->normf, 1e-5f, &h));
    T_TRY(sft_matmul(ctx, h, m->head, 0, 1, &logits));
    T_TRY(sft_reshape(ctx, logits, 3, l3, &logits));
    return sft_cross_entropy(ctx, logits, m->labels, NULL, loss);
}

/* one training step's gradients; returns the loss value */
static float t_model_step(sft_context *ctx, t_model *m, int checkpoint) {
    sft_tensor *params[3 + 9 * TM_MAXL], *loss = NULL;
    int n = t_model_params(m, params), i;
    for (i = 0; i < n; i++) sft_tensor_zero_grad(params[i]);
    sft_step_begin(ctx);
    CHECK_OK(t_model_loss(ctx, m, checkpoint, &loss));
    if (!loss) return NAN;
    CHECK_OK(sft_backward(ctx, loss));
    return ((float *)loss->data)[0];
}

static void t_compare_models(const char *what, t_model *a, t_model *b) {
    sft_tensor *pa[3 + 9 * TM_MAXL], *pb[3 + 9 * TM_MAXL];
    int n = t_model_params(a, pa), i;
    t_model_params(b, pb);
    for (i = 0; i < n; i++) {
        if (!pa[i]->grad || !pb[i]->grad) { t_failf(__FILE__, __LINE__, "%s: parameter %d has no gradient", what, i); continue; }
        CHECK_SAME(what, (const float *)pa[i]->grad->data, (const float *)pb[i]->grad->data, sft_tensor_numel(pa[i]));
    }
}

/* ---- tests ---- */

static void decoder_step_is_bit_identical_for_one_two_and_three_threads(void) {
    sft_context *c1 = t_context(1), *c2 = t_context(2), *c3 = t_context(3);
    t_model m1, m2, m3;
    float l1, l2, l3;
    t_model_init(c1, &m1, 2, 0.1f);
    t_model_init(c2, &m2, 2, 0.1f);
    t_model_init(c3, &m3, 2, 0.1f);
    l1 = t_model_step(c1, &m1, 0);
    l2 = t_model_step(c2, &m2, 0);
    l3 = t_model_step(c3, &m3, 0);
    CHECK(isfinite(l1) && l1 > 0.0f);
    CHECK(memcmp(&l1, &l2, 4) == 0 && memcmp(&l1, &l3, 4) == 0);
    t_compare_models("1 vs 2 threads", &m1, &m2);
    t_compare_models("1 vs 3 threads", &m1, &m3);
    t_model_free(&m1); t_model_free(&m2); t_model_free(&m3);
    sft_context_destroy(c1); sft_context_destroy(c2); sft_context_destroy(c3);
}

static void checkpointed_layers_give_bit_identical_gradients(void) {
    sft_context *c1 = t_context(2), *c2 = t_context(2);
    t_model plain, ckpt;
    float lp, lc;
    t_model_init(c1, &plain, 3, 0.1f);
    t_model_init(c2, &ckpt, 3, 0.1f);
    lp = t_model_step(c1, &plain, 0);
    lc = t_model_step(c2, &ckpt, 1);
    CHECK_MSG(memcmp(&lp, &lc, 4) == 0, "loss %.9g vs %.9g", lp, lc);
    t_compare_models("checkpointed vs plain", &plain, &ckpt);
    t_model_free(&plain); t_model_free(&ckpt);
    sft_context_destroy(c1); sft_context_destroy(c2);
}

static void checkpointing_lowers_the_allocator_high_water_mark(void) {
    size_t peak[2];
    int mode;
    for (mode = 0; mode < 2; mode++) {
        sft_context *ctx = t_context(2);
        t_model m;
        t_model_init_t(ctx, &m, 4, 0.0f, 384);
        t_model_step(ctx, &m, mode);
        peak[mode] = sft_context_mem_stats(ctx).peak_bytes;
        t_model_free(&m);
        sft_context_destroy(ctx);
    }
    CHECK_MSG(peak[1] < peak[0], "peak with checkpointing %zu, without %zu", peak[1], peak[0]);
}

static void steady_steps_allocate_nothing(void) {
    sft_context *ctx = t_context(2);
    t_model m;
    sft_mem_stats s2, s5;
    int step;
    t_model_init(ctx, &m, 2, 0.1f);
    for (step = 0; step < 2; step++) t_model_step(ctx, &m, step & 1);
    t_model_step(ctx, &m, 0);
    t_model_step(ctx, &m, 1);
    s2 = sft_context_mem_stats(ctx);
    for (step = 0; step < 3; step++) { t_model_step(ctx, &m, 0); t_model_step(ctx, &m, 1); }
    s5 = sft_context_mem_stats(ctx);
    CHECK_MSG(s5.allocs == s2.allocs, "%llu allocations in steady steps", (unsigned long long)(s5.allocs - s2.allocs));
    CHECK(s5.arena_capacity == s2.arena_capacity);
    CHECK(s5.bytes_in_use == s2.bytes_in_use);
    t_model_free(&m);
    sft_context_destroy(ctx);
}

static void gradients_flow_only_where_required(void) {
    sft_context *ctx = t_context(1);
    t_model m;
    t_model_init(ctx, &m, 1, 0.0f);
    sft_tensor_set_requires_grad(m.emb, 0);
    sft_tensor_set_requires_grad(m.layer[0].wk, 0);
    t_model_step(ctx, &m, 0);
    CHECK(m.emb->grad == NULL);
    CHECK(m.layer[0].wk->grad == NULL);
    CHECK(m.layer[0].wq->grad != NULL && m.head->grad != NULL);
    t_model_free(&m);
    sft_context_destroy(ctx);
}

static void segment_params_get_gradients_even_when_its_input_needs_none(void) {
    /* the frozen-embedding case that trips PyTorch's reentrant checkpoint */
    sft_context *c1 = t_context(1), *c2 = t_context(1);
    t_model a, b;
    t_model_init(c1, &a, 2, 0.0f);
    t_model_init(c2, &b, 2, 0.0f);
    sft_tensor_set_requires_grad(a.emb, 0);
    sft_tensor_set_requires_grad(b.emb, 0);
    t_model_step(c1, &a, 0);
    t_model_step(c2, &b, 1);
    CHECK(b.layer[0].wq->grad != NULL);
    if (b.layer[0].wq->grad && a.layer[0].wq->grad)
        CHECK_SAME("layer 0 wq", (float *)b.layer[0].wq->grad->data, (float *)a.layer[0].wq->grad->data,
                   sft_tensor_numel(a.layer[0].wq));
    t_model_free(&a); t_model_free(&b);
    sft_context_destroy(c1); sft_context_destroy(c2);
}

static void gradients_accumulate_until_zeroed(void) {
    sft_context *ctx = t_context(1);
    int64_t sx[2] = {3, 4}, sw[2] = {5, 4}, sl[1] = {3}, i;
    sft_tensor *x, *w, *lbl, *y, *loss;
    float first[20];
    uint64_t st = 3;
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, 2, sx, &x));
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, 2, sw, &w));
    CHECK_OK(sft_tensor_create(ctx, SFT_I32, 1, sl, &lbl));
    for (i = 0; i < 12; i++) ((float *)x->data)[i] = t_rand(&st, -1, 1);
    for (i = 0; i < 20; i++) ((float *)w->data)[i] = t_rand(&st, -1, 1);
    sft_tensor_set_requires_grad(w, 1);
    for (i = 0; i < 2; i++) {
        sft_step_begin(ctx);
        CHECK_OK(sft_matmul(ctx, x, w, 0, 1, &y));
        CHECK_OK(sft_cross_entropy(ctx, y, lbl, NULL, &loss));
        CHECK_OK(sft_backward(ctx, loss));
        if (i == 0) memcpy(first, w->grad->data, sizeof first);
    }
    for (i = 0; i < 20; i++) CHECK(((float *)w->grad->data)[i] == 2.0f * first[i]);
    CHECK(x->grad == NULL);
    sft_tensor_destroy(x); sft_tensor_destroy(w); sft_tensor_destroy(lbl);
    sft_context_destroy(ctx);
}

static void backward_refuses_what_it_cannot_do(void) {
    sft_context *ctx = t_context(1);
    int64_t sx[2] = {2, 3};
    sft_tensor *x, *y, *s;
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, 2, sx, &x));
    sft_tensor_set_requires_grad(x, 1);
    CHECK_OK(sft_scale(ctx, x, 2.0f, &y));
    CHECK_STATUS(sft_backward(ctx, y), SFT_ERR_SHAPE);
    CHECK_ERROR_MENTIONS("one f32 element");
    {
        int64_t one[2] = {1, 1};
        sft_tensor *z;
        CHECK_OK(sft_tensor_create(ctx, SFT_F32, 2, one, &z));
        sft_tensor_set_requires_grad(z, 1);
        CHECK_OK(sft_scale(ctx, z, 3.0f, &s));
        CHECK_OK(sft_backward(ctx, s));
        CHECK(((float *)z->grad->data)[0] == 3.0f);
        CHECK_STATUS(sft_backward(ctx, s), SFT_ERR_STATE);          /* a graph runs backward once */
        CHECK_ERROR_MENTIONS("backward already ran");
        sft_tensor_destroy(z);
    }
    CHECK_STATUS(sft_backward(ctx, NULL), SFT_ERR_ARG);
    sft_tensor_destroy(x);
    sft_context_destroy(ctx);
}

static void no_grad_mode_records_nothing(void) {
    sft_context *ctx = t_context(1);
    int64_t one[1] = {1};
    sft_tensor *z, *s;
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, 1, one, &z));
    sft_tensor_set_requires_grad(z, 1);
    CHECK(sft_grad_enabled_set(ctx, 0) == 1);
    CHECK_OK(sft_scale(ctx, z, 3.0f, &s));
    CHECK(s->requires_grad == 0);
    CHECK_STATUS(sft_backward(ctx, s), SFT_ERR_STATE);
    CHECK(sft_grad_enabled_set(ctx, 1) == 0);
    CHECK_OK(sft_scale(ctx, z, 3.0f, &s));
    CHECK(s->requires_grad == 1);
    sft_tensor_destroy(z);
    sft_context_destroy(ctx);
}

static sft_status t_identity_fn(sft_context *ctx, void *user, sft_tensor *const *in, sft_tensor **out) {
    (void)ctx; (void)user;
    out[0] = in[0];
    return SFT_OK;
}

static sft_status t_square_fn(sft_context *ctx, void *user, sft_tensor *const *in, sft_tensor **out) {
    (void)user;
    return sft_mul(ctx, in[0], in[0], out);
}

static sft_status t_nested_fn(sft_context *ctx, void *user, sft_tensor *const *in, sft_tensor **out) {
    return sft_checkpoint(ctx, t_square_fn, user, 1, in, 1, out);
}

static sft_status t_failing_fn(sft_context *ctx, void *user, sft_tensor *const *in, sft_tensor **out) {
    int64_t bad[1] = {7};
    (void)user;
    return sft_reshape(ctx, in[0], 1, bad, out);   /* wrong element count */
}

static void segment_edge_cases(void) {
    sft_context *ctx = t_context(1);
    int64_t one[2] = {1, 1};
    sft_tensor *z, *y, *y2;
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, 2, one, &z));
    ((float *)z->data)[0] = 3.0f;
    sft_tensor_set_requires_grad(z, 1);
    /* identity: the gradient passes straight through */
    CHECK_OK(sft_checkpoint(ctx, t_identity_fn, NULL, 1, &z, 1, &y));
    CHECK_OK(sft_checkpoint(ctx, t_square_fn, NULL, 1, &y, 1, &y2));
    CHECK(((float *)y2->data)[0] == 9.0f);
    CHECK_OK(sft_backward(ctx, y2));
    CHECK(((float *)z->grad->data)[0] == 6.0f);
    /* nesting is refused, failures propagate, and the context stays usable */
    sft_step_begin(ctx);
    CHECK_STATUS(sft_checkpoint(ctx, t_nested_fn, NULL, 1, &z, 1, &y), SFT_ERR_STATE);
    CHECK_ERROR_MENTIONS("do not nest");
    CHECK_STATUS(sft_checkpoint(ctx, t_failing_fn, NULL, 1, &z, 1, &y), SFT_ERR_SHAPE);
    CHECK_STATUS(sft_checkpoint(ctx, t_square_fn, NULL, 1, &z, 0, &y), SFT_ERR_ARG);
    CHECK_OK(sft_checkpoint(ctx, t_square_fn, NULL, 1, &z, 1, &y));
    CHECK(((float *)y->data)[0] == 9.0f);
    sft_tensor_destroy(z);
    sft_context_destroy(ctx);
}

static void sgd_on_the_decoder_lowers_the_loss(void) {
    sft_context *ctx = t_context(2);
    t_model m;
    sft_tensor *params[3 + 9 * TM_MAXL];
    int n, i, step;
    float first = 0.0f, last = 0.0f;
    t_model_init(ctx, &m, 1, 0.0f);
    n = t_model_params(&m, params);
    for (step = 0; step < 30; step++) {
        last = t_model_step(ctx, &m, step % 2);
        if (step == 0) first = last;
        for (i = 0; i < n; i++) {
            int64_t k, cnt = sft_tensor_numel(params[i]);
            for (k = 0; k < cnt; k++) ((float *)params[i]->data)[k] -= 0.2f * ((float *)params[i]->grad->data)[k];
        }
    }
    CHECK_MSG(last < 0.7f * first, "loss %.4f -> %.4f", first, last);
    t_model_free(&m);
    sft_context_destroy(ctx);
}

void suite_autograd(void) {
    RUN(decoder_step_is_bit_identical_for_one_two_and_three_threads);
    RUN(checkpointed_layers_give_bit_identical_gradients);
    RUN(checkpointing_lowers_the_allocator_high_water_mark);
    RUN(steady_steps_allocate_nothing);
    RUN(gradients_flow_only_where_required);
    RUN(segment_params_get_gradients_even_when_its_input_needs_none);
    RUN(gradients_accumulate_until_zeroed);
    RUN(backward_refuses_what_it_cannot_do);
    RUN(no_grad_mode_records_nothing);
    RUN(segment_edge_cases);
    RUN(sgd_on_the_decoder_lowers_the_loss);
}
