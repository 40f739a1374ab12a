/* test_ops.c - every operator: forward against a plain double-precision
   reference on random shapes (odd sizes included), backward against central
   finite differences, results bit-identical for 1, 2 and 3 threads, and bad
   arguments answered with a status and a message naming the op and shapes. */
#include "test.h"

/* ---- making inputs ---- */

enum { T_F32, T_F32_FROZEN, T_IDS, T_LABELS, T_POS, T_SEQ, T_SEQ3 };

/* A case: an op applied to inputs described by kind and shape. */
typedef sft_status (*t_fwd_fn)(sft_context *ctx, sft_tensor **in, const void *p, sft_tensor **out);
typedef struct t_case {
    const char *name;
    t_fwd_fn    fwd;
    const void *p;
    int         n_in;
    int         kind[4];
    int         ndim[4];
    int64_t     shape[4][4];
    int32_t     range[4];      /* ids/labels: values in [0, range) */
} t_case;

static sft_tensor *t_tensor(sft_context *ctx, sft_dtype dt, int ndim, const int64_t *shape) {
    sft_tensor *t = NULL;
    if (sft_tensor_create(ctx, dt, ndim, shape, &t) != SFT_OK) t_failf(__FILE__, __LINE__, "create: %s", sft_last_error());
    return t;
}

static sft_tensor *t_random(sft_context *ctx, int ndim, const int64_t *shape, uint64_t *st, float lo, float hi) {
    sft_tensor *t = t_tensor(ctx, SFT_F32, ndim, shape);
    int64_t i, n = sft_tensor_numel(t);
    for (i = 0; i < n; i++) ((float *)t->data)[i] = t_rand(st, lo, hi);
    return t;
}

static void t_make_inputs(sft_context *ctx, const t_case *c, uint64_t seed, sft_tensor **in) {
    uint64_t st = seed;
    int k;
    for (k = 0; k < c->n_in; k++) {
        int64_t i, n;
        int32_t *v;
        if (c->kind[k] == T_F32 || c->kind[k] == T_F32_FROZEN) {
            in[k] = t_random(ctx, c->ndim[k], c->shape[k], &st, -1.0f, 1.0f);
            sft_tensor_set_requires_grad(in[k], c->kind[k] == T_F32);
            continue;
        }
        in[k] = t_tensor(ctx, SFT_I32, c->ndim[k], c->shape[k]);
        v = (int32_t *)in[k]->data;
        n = sft_tensor_numel(in[k]);
        for (i = 0; i < n; i++) {
            int64_t T = c->ndim[k] >= 2 ? c->shape[k][c->ndim[k] - 1] : n;
            switch (c->kind[k]) {
            case T_IDS: v[i] = (int32_t)t_rand(&st, 0.0f, (float)c->range[k]); break;
            case T_LABELS: v[i] = t_rand(&st, 0.0f, 1.0f) < 0.2f ? -100 : (int32_t)t_rand(&st, 0.0f, (float)c->range[k]); break;
            case T_POS: v[i] = (int32_t)(i % T) * 3 + 1; break;               /* positions, spaced out */
            case T_SEQ3: v[i] = (int32_t)((i % T) % 3); break;                 /* ids that come back: 0,1,2,0,.. */
            default: v[i] = (int32_t)((i % T) / 5); break;                    /* T_SEQ: runs of 5 */
            }
        }
    }
}

static void t_free_inputs(sft_tensor **in, int n) {
    int k;
    for (k = 0; k < n; k++) sft_tensor_destroy(in[k]);
}

/* ---- the scalar used for backward: loss = sum(out * R) ---- */

static sft_status t_dot_loss(sft_context *ctx, sft_tensor *out, sft_tensor *R, sft_tensor **loss) {
    sft_tensor *o, *r;
    int64_t flat[2];
    flat[0] = 1; flat[1] = sft_tensor_numel(out);
    if (sft_reshape(ctx, out, 2, flat, &o) != SFT_OK) return SFT_ERR_SHAPE;
    if (sft_reshape(ctx, R, 2, flat, &r) != SFT_OK) return SFT_ERR_SHAPE;
    return sft_matmul(ctx, o, r, 0, 1, loss);
}

static double t_host_dot(const sft_tensor *out, const sft_tensor *R) {
    double s = 0.0;
    int64_t i, n = sft_tensor_numel(out);
    for (i = 0; i < n; i++) s += (double)((const float *)out->data)[i] * ((const float *)R->data)[i];
    return s;
}

/* t_forward_backward: one step of the case; returns the output (a step tensor)
   and leaves gradients in the inputs. R is created to match the output. */
static sft_tensor *t_forward_backward(sft_context *ctx, const t_case *c, sft_tensor **in, sft_tensor **R, uint64_t seed) {
    sft_tensor *out = NULL, *loss = NULL;
    uint64_t st = seed ^ 0x5555;
    int k;
    sft_step_begin(ctx);
    for (k = 0; k < c->n_in; k++) sft_tensor_zero_grad(in[k]);
    CHECK_OK(c->fwd(ctx, in, c->p, &out));
    if (!out) return NULL;
    if (!*R) *R = t_random(ctx, out->ndim, out->shape, &st, -1.0f, 1.0f);
    CHECK_OK(t_dot_loss(ctx, out, *R, &loss));
    if (loss) CHECK_OK(sft_backward(ctx, loss));
    return out;
}

/* ---- the three generic checks ---- */

/* Analytic gradients against central differences of the f32 forward, with the
   loss summed in double so only the op's own rounding remains. */
static void t_gradcheck(const t_case *c, double atol, double rtol) {
    sft_context *ctx = t_context(2);
    sft_tensor *in[4] = {0}, *R = NULL, *out;
    int k;
    t_make_inputs(ctx, c, 1234, in);
    out = t_forward_backward(ctx, c, in, &R, 99);
    for (k = 0; out && k < c->n_in; k++) {
        int64_t n = sft_tensor_numel(in[k]), step = n > 60 ? n / 60 : 1, i;
        float *x = (float *)in[k]->data, *num, *ana;
        if (c->kind[k] != T_F32) continue;
        if (!in[k]->grad) { t_failf(__FILE__, __LINE__, "%s: input %d got no gradient", c->name, k); continue; }
        num = (float *)calloc((size_t)n, sizeof(float));
        ana = (float *)calloc((size_t)n, sizeof(float));
        sft_grad_enabled_set(ctx, 0);
        for (i = 0; i < n; i += step) {
            float x0 = x[i], h = 1e-2f;
            double lp, lm;
            sft_tensor *o;
            x[i] = x0 + h; sft_step_begin(ctx); CHECK_OK(c->fwd(ctx, in, c->p, &o)); lp = t_host_dot(o, R);
            x[i] = x0 - h; sft_step_begin(ctx); CHECK_OK(c->fwd(ctx, in, c->p, &o)); lm = t_host_dot(o, R);
            x[i] = x0;
            num[i] = (float)((lp - lm) / (2.0 * h));
            ana[i] = ((float *)in[k]->grad->data)[i];
        }
        sft_grad_enabled_set(ctx, 1);
        {
            char what[128];
            snprintf(what, sizeof what, "%s: d loss / d input %d (analytic vs finite differences)", c->name, k);
            CHECK_CLOSE(what, ana, num, n, atol, rtol);
        }
        free(num); free(ana);
    }
    sft_tensor_destroy(R);
    t_free_inputs(in, c->n_in);
    sft_context_destroy(ctx);
}

/* Output and every gradient bit-identical with 1, 2 and 3 threads. */
static void t_thread_identity(const t_case *c) {
    sft_context *ref_ctx = t_context(1);
    sft_tensor *ref_in[4] = {0}, *ref_R = NULL, *ref_out;
    int threads, k;
    t_make_inputs(ref_ctx, c, 777, ref_in);
    ref_out = t_forward_backward(ref_ctx, c, ref_in, &ref_R, 5);
    for (threads = 2; ref_out && threads <= 3; threads++) {
        sft_context *ctx = t_context(threads);
        sft_tensor *in[4] = {0}, *R = NULL, *out;
        t_make_inputs(ctx, c, 777, in);
        out = t_forward_backward(ctx, c, in, &R, 5);
        if (out) CHECK_SAME(c->name, (const float *)out->data, (const float *)ref_out->data, sft_tensor_numel(out));
        for (k = 0; out && k < c->n_in; k++)
            if (c->kind[k] == T_F32)
                CHECK_SAME(c->name, (const float *)in[k]->grad->data, (const float *)ref_in[k]->grad->data,
                           sft_tensor_numel(in[k]));
        sft_tensor_destroy(R);
        t_free_inputs(in, c->n_in);
        sft_context_destroy(ctx);
    }
    sft_tensor_destroy(ref_R);
    t_free_inputs(ref_in, c->n_in);
    sft_context_destroy(ref_ctx);
}

/* ---- the op cases ---- */

typedef struct t_mm_p { int ta, tb; } t_mm_p;
static sft_status t_fwd_matmul(sft_context *ctx, sft_tensor **in, const void *p, sft_tensor **out) {
    const t_mm_p *m = (const t_mm_p *)p;
    return sft_matmul(ctx, in[0], in[1], m->ta, m->tb, out);
}
static sft_status t_fwd_add(sft_context *ctx, sft_tensor **in, const void *p, sft_tensor **out) {
    (void)p; return sft_add(ctx, in[0], in[1], out);
}
static sft_status t_fwd_mul(sft_context *ctx, sft_tensor **in, const void *p, sft_tensor **out) {
    (void)p; return sft_mul(ctx, in[0], in[1], out);
}
static sft_status t_fwd_scale(sft_context *ctx, sft_tensor **in, const void *p, sft_tensor **out) {
    (void)p; return sft_scale(ctx, in[0], -1.75f, out);
}
static sft_status t_fwd_reshape(sft_context *ctx, sft_tensor **in, const void *p, sft_tensor **out) {
    int64_t shape[2] = {-1, 3};
    sft_tensor *r;
    (void)p;
    if (sft_reshape(ctx, in[0], 2, shape, &r) != SFT_OK) return SFT_ERR_SHAPE;
    return sft_mul(ctx, r, r, out);   /* something non-linear so the gradient depends on the view */
}
static sft_status t_fwd_embedding(sft_context *ctx, sft_tensor **in, const void *p, sft_tensor **out) {
    (void)p; return sft_embedding(ctx, in[0], in[1], out);
}
static sft_status t_fwd_rmsnorm(sft_context *ctx, sft_tensor **in, const void *p, sft_tensor **out) {
    (void)p; return sft_rmsnorm(ctx, in[0], in[1], 1e-5f, out);
}
static sft_status t_fwd_silu(sft_context *ctx, sft_tensor **in, const void *p, sft_tensor **out) {
    (void)p; return sft_silu(ctx, in[0], out);
}
static sft_status t_fwd_swiglu(sft_context *ctx, sft_tensor **in, const void *p, sft_tensor **out) {
    (void)p; return sft_swiglu(ctx, in[0], in[1], out);
}
static sft_status t_fwd_geglu(sft_context *ctx, sft_tensor **in, const void *p, sft_tensor **out) {
    (void)p; return sft_geglu(ctx, in[0], in[1], out);
}
static sft_status t_fwd_softcap(sft_context *ctx, sft_tensor **in, const void *p, sft_tensor **out) {
    (void)p; return sft_softcap(ctx, in[0], 0.6f, out);
}
static sft_status t_fwd_narrow(sft_context *ctx, sft_tensor **in, const void *p, sft_tensor **out) {
    sft_tensor *a, *b;
    (void)p;    /* two overlapping ranges, so backward adds into shared columns */
    if (sft_narrow(ctx, in[0], 1, 3, &a) != SFT_OK || sft_narrow(ctx, in[0], 2, 3, &b) != SFT_OK) return SFT_ERR_SHAPE;
    return sft_mul(ctx, a, b, out);
}
static sft_status t_fwd_rope(sft_context *ctx, sft_tensor **in, const void *p, sft_tensor **out) {
    return sft_rope(ctx, in[0], in[1], (const sft_rope_desc *)p, out);
}
static sft_status t_fwd_attention(sft_context *ctx, sft_tensor **in, const void *p, sft_tensor **out) {
    return sft_attention_ex(ctx, in[0], in[1], in[2], in[3], (const sft_attention_desc *)p, out);
}
static sft_status t_fwd_ce(sft_context *ctx, sft_tensor **in, const void *p, sft_tensor **out) {
    return sft_cross_entropy(ctx, in[0], in[1], (const sft_ce_desc *)p, out);
}
static sft_status t_fwd_lce(sft_context *ctx, sft_tensor **in, const void *p, sft_tensor **out) {
    return sft_linear_cross_entropy(ctx, in[0], in[1], in[2], (const sft_ce_desc *)p, out);
}
static sft_status t_fwd_dropout(sft_context *ctx, sft_tensor **in, const void *p, sft_tensor **out) {
    (void)p; return sft_dropout(ctx, in[0], 0.3f, 12345, out);
}

static t_case t_case_matmul(int ta, int tb, int batched_b) {
    static t_mm_p ps[2][2] = {{{0, 0}, {0, 1}}, {{1, 0}, {1, 1}}};
    t_case c;
    int64_t M = 13, K = 7, N = 19, B = 3;
    memset(&c, 0, sizeof c);
    c.name = "matmul"; c.fwd = t_fwd_matmul; c.p = &ps[ta][tb]; c.n_in = 2;
    c.kind[0] = c.kind[1] = T_F32;
    c.ndim[0] = 3; c.shape[0][0] = B; c.shape[0][1] = ta ? K : M; c.shape[0][2] = ta ? M : K;
    if (batched_b) { c.ndim[1] = 3; c.shape[1][0] = B; c.shape[1][1] = tb ? N : K; c.shape[1][2] = tb ? K : N; }
    else { c.ndim[1] = 2; c.shape[1][0] = tb ? N : K; c.shape[1][1] = tb ? K : N; }
    return c;
}

static t_case t_case_2(const char *name, t_fwd_fn f, int nd0, const int64_t *s0, int nd1, const int64_t *s1) {
    t_case c;
    int i;
    memset(&c, 0, sizeof c);
    c.name = name; c.fwd = f; c.n_in = s1 ? 2 : 1;
    c.kind[0] = c.kind[1] = T_F32;
    c.ndim[0] = nd0; c.ndim[1] = nd1;
    for (i = 0; i < nd0; i++) c.shape[0][i] = s0[i];
    for (i = 0; s1 && i < nd1; i++) c.shape[1][i] = s1[i];
    return c;
}

static t_case t_case_attention(int with_seq, int64_t Hq, int64_t Hkv) {
    t_case c;
    int k;
    memset(&c, 0, sizeof c);
    c.name = "attention"; c.fwd = t_fwd_attention; c.n_in = 4;
    for (k = 0; k < 3; k++) {
        c.kind[k] = T_F32; c.ndim[k] = 4;
        c.shape[k][0] = 2; c.shape[k][1] = 11; c.shape[k][2] = k ? Hkv : Hq; c.shape[k][3] = 6;
    }
    c.kind[3] = T_SEQ; c.ndim[3] = 2; c.shape[3][0] = 2; c.shape[3][1] = 11;
    if (!with_seq) c.n_in = 3;
    return c;
}

static sft_status t_fwd_attention3(sft_context *ctx, sft_tensor **in, const void *p, sft_tensor **out) {
    if (p) return sft_attention_ex(ctx, in[0], in[1], in[2], NULL, (const sft_attention_desc *)p, out);
    return sft_attention(ctx, in[0], in[1], in[2], NULL, 0.0f, out);
}

static t_case t_case_ce(const sft_ce_desc *d) {
    t_case c;
    memset(&c, 0, sizeof c);
    c.name = "cross_entropy"; c.fwd = t_fwd_ce; c.p = d; c.n_in = 2;
    c.kind[0] = T_F32; c.ndim[0] = 3; c.shape[0][0] = 2; c.shape[0][1] = 5; c.shape[0][2] = 17;
    c.kind[1] = T_LABELS; c.ndim[1] = 2; c.shape[1][0] = 2; c.shape[1][1] = 5; c.range[1] = 17;
    return c;
}

static t_case t_case_rope(const sft_rope_desc *d) {
    t_case c;
    memset(&c, 0, sizeof c);
    c.name = "rope"; c.fwd = t_fwd_rope; c.p = d; c.n_in = 2;
    c.kind[0] = T_F32; c.ndim[0] = 4; c.shape[0][0] = 2; c.shape[0][1] = 7; c.shape[0][2] = 3; c.shape[0][3] = 10;
    c.kind[1] = T_POS; c.ndim[1] = 2; c.shape[1][0] = 2; c.shape[1][1] = 7;
    return c;
}

static t_case t_case_embedding(void) {
    t_case c;
    memset(&c, 0, sizeof c);
    c.name = "embedding"; c.fwd = t_fwd_embedding; c.n_in = 2;
    c.kind[0] = T_F32; c.ndim[0] = 2; c.shape[0][0] = 11; c.shape[0][1] = 9;
    c.kind[1] = T_IDS; c.ndim[1] = 2; c.shape[1][0] = 3; c.shape[1][1] = 8; c.range[1] = 11;
    return c;
}

/* ---- plain references (double precision, the obvious loops) ---- */

static void t_ref_matmul(const float *A, const float *B, double *C, int64_t M, int64_t N, int64_t K, int ta, int tb) {
    int64_t m, n, k;
    for (m = 0; m < M; m++)
        for (n = 0; n < N; n++) {
            double s = 0.0;
            for (k = 0; k < K; k++) s += (double)(ta ? A[k * M + m] : A[m * K + k]) * (tb ? B[n * K + k] : B[k * N + n]);
            C[m * N + n] = s;
        }
}

static void t_close_d(const char *what, const float *got, const double *want, int64_t n, double atol, double rtol) {
    float *w = (float *)malloc((size_t)(n ? n : 1) * sizeof(float));
    int64_t i;
    for (i = 0; i < n; i++) w[i] = (float)want[i];
    CHECK_CLOSE(what, got, w, n, atol, rtol);
    free(w);
}

static void matmul_matches_reference_in_every_orientation(void) {
    sft_context *ctx = t_context(2);
    uint64_t st = 3;
    int ta, tb, trial;
    for (trial = 0; trial < 4; trial++)
        for (ta = 0; ta < 2; ta++)
            for (tb = 0; tb < 2; tb++) {
                int64_t M = 1 + (int64_t)t_rand(&st, 0, 40), N = 1 + (int64_t)t_rand(&st, 0, 40), K = 1 + (int64_t)t_rand(&st, 0, 70);
                int64_t sa[2], sb[2];
                sft_tensor *a, *b, *c;
                double *ref = (double *)malloc((size_t)(M * N) * sizeof(double));
                sa[0] = ta ? K : M; sa[1] = ta ? M : K;
                sb[0] = tb ? N : K; sb[1] = tb ? K : N;
                a = t_random(ctx, 2, sa, &st, -1, 1);
                b = t_random(ctx, 2, sb, &st, -1, 1);
                sft_step_begin(ctx);
                CHECK_OK(sft_matmul(ctx, a, b, ta, tb, &c));
                t_ref_matmul((float *)a->data, (float *)b->data, ref, M, N, K, ta, tb);
                CHECK(c->ndim == 2 && c->shape[0] == M && c->shape[1] == N);
                t_close_d("matmul", (float *)c->data, ref, M * N, 1e-5, 1e-5);
                free(ref);
                sft_tensor_destroy(a); sft_tensor_destroy(b);
            }
    sft_context_destroy(ctx);
}

static void batched_matmul_matches_per_batch_reference(void) {
    sft_context *ctx = t_context(2);
    uint64_t st = 4;
    int64_t sa[4] = {2, 3, 5, 7}, sb[4] = {2, 3, 7, 4}, bi;
    sft_tensor *a = t_random(ctx, 4, sa, &st, -1, 1), *b = t_random(ctx, 4, sb, &st, -1, 1), *c;
    double ref[20];
    CHECK_OK(sft_matmul(ctx, a, b, 0, 0, &c));
    CHECK(c->ndim == 4 && c->shape[0] == 2 && c->shape[1] == 3 && c->shape[2] == 5 && c->shape[3] == 4);
    for (bi = 0; bi < 6; bi++) {
        t_ref_matmul((float *)a->data + bi * 35, (float *)b->data + bi * 28, ref, 5, 4, 7, 0, 0);
        t_close_d("batched matmul", (float *)c->data + bi * 20, ref, 20, 1e-5, 1e-5);
    }
    sft_tensor_destroy(a); sft_tensor_destroy(b);
    sft_context_destroy(ctx);
}

static void matmul_gradients_match_finite_differences(void) {
    int ta, tb;
    for (ta = 0; ta < 2; ta++)
        for (tb = 0; tb < 2; tb++) {
            t_case c = t_case_matmul(ta, tb, 0);
            t_gradcheck(&c, 2e-3, 1e-2);
            c = t_case_matmul(ta, tb, 1);
            t_gradcheck(&c, 2e-3, 1e-2);
        }
}

static void matmul_is_bit_identical_across_thread_counts(void) {
    int ta, tb;
    for (ta = 0; ta < 2; ta++)
        for (tb = 0; tb < 2; tb++) {
            t_case c = t_case_matmul(ta, tb, 0);
            t_thread_identity(&c);
            c = t_case_matmul(ta, tb, 1);
            t_thread_identity(&c);
        }
}

static void add_and_mul_broadcast_a_suffix(void) {
    sft_context *ctx = t_context(2);
    uint64_t st = 5;
    int64_t sa[3] = {3, 4, 5}, sb[1] = {5}, i;
    sft_tensor *a = t_random(ctx, 3, sa, &st, -1, 1), *b = t_random(ctx, 1, sb, &st, -1, 1), *s, *p;
    CHECK_OK(sft_add(ctx, a, b, &s));
    CHECK_OK(sft_mul(ctx, a, b, &p));
    for (i = 0; i < 60; i++) {
        CHECK(((float *)s->data)[i] == ((float *)a->data)[i] + ((float *)b->data)[i % 5]);
        CHECK(((float *)p->data)[i] == ((float *)a->data)[i] * ((float *)b->data)[i % 5]);
    }
    sft_tensor_destroy(a); sft_tensor_destroy(b);
    sft_context_destroy(ctx);
}

static void elementwise_gradients_match_finite_differences(void) {
    int64_t s3[3] = {3, 4, 5}, s1[1] = {5}, s2[2] = {4, 5}, s6[1] = {12};
    t_case c = t_case_2("add", t_fwd_add, 3, s3, 1, s1);
    t_gradcheck(&c, 1e-3, 1e-2); t_thread_identity(&c);
    c = t_case_2("add same shape", t_fwd_add, 3, s3, 3, s3);
    t_gradcheck(&c, 1e-3, 1e-2);
    c = t_case_2("mul", t_fwd_mul, 3, s3, 2, s2);
    t_gradcheck(&c, 1e-3, 1e-2); t_thread_identity(&c);
    c = t_case_2("scale", t_fwd_scale, 3, s3, 0, NULL);
    t_gradcheck(&c, 1e-3, 1e-2); t_thread_identity(&c);
    c = t_case_2("reshape", t_fwd_reshape, 1, s6, 0, NULL);
    t_gradcheck(&c, 1e-3, 1e-2); t_thread_identity(&c);
    c = t_case_2("silu", t_fwd_silu, 3, s3, 0, NULL);
    t_gradcheck(&c, 1e-3, 1e-2); t_thread_identity(&c);
    c = t_case_2("swiglu", t_fwd_swiglu, 3, s3, 3, s3);
    t_gradcheck(&c, 1e-3, 1e-2); t_thread_identity(&c);
    c = t_case_2("geglu", t_fwd_geglu, 3, s3, 3, s3);
    t_gradcheck(&c, 1e-3, 1e-2); t_thread_identity(&c);
    c = t_case_2("softcap", t_fwd_softcap, 3, s3, 0, NULL);
    t_gradcheck(&c, 1e-3, 1e-2); t_thread_identity(&c);
    c = t_case_2("narrow", t_fwd_narrow, 3, s3, 0, NULL);
    t_gradcheck(&c, 1e-3, 1e-2); t_thread_identity(&c);
}

/* narrow copies a range of the last dim; ranges outside it are refused */
static void narrow_takes_columns_of_the_last_dim(void) {
    sft_context *ctx = t_context(1);
    uint64_t st = 9;
    int64_t s[3] = {2, 3, 10}, i, j;
    sft_tensor *x = t_random(ctx, 3, s, &st, -1, 1), *y = NULL;
    CHECK_OK(sft_narrow(ctx, x, 6, 4, &y));
    CHECK(y && y->ndim == 3 && y->shape[0] == 2 && y->shape[1] == 3 && y->shape[2] == 4);
    for (i = 0; y && i < 6; i++)
        for (j = 0; j < 4; j++) CHECK(((float *)y->data)[i * 4 + j] == ((float *)x->data)[i * 10 + 6 + j]);
    CHECK_STATUS(sft_narrow(ctx, x, 7, 4, &y), SFT_ERR_SHAPE);
    CHECK_ERROR_MENTIONS("columns [7, 11) of x [2, 3, 10]");
    CHECK_STATUS(sft_narrow(ctx, x, 0, 0, &y), SFT_ERR_SHAPE);
    CHECK_STATUS(sft_narrow(ctx, x, -1, 2, &y), SFT_ERR_SHAPE);
    sft_tensor_destroy(x);
    sft_context_destroy(ctx);
}

/* GELU's tanh form (PyTorch's gelu(approximate="tanh")) times up, and the soft
   cap c tanh(x / c), against the formulas in double; bad caps are refused */
static void geglu_and_softcap_match_reference(void) {
    sft_context *ctx = t_context(1);
    uint64_t st = 8;
    int64_t s[1] = {101}, i;
    sft_tensor *g = t_random(ctx, 1, s, &st, -6, 6), *u = t_random(ctx, 1, s, &st, -2, 2), *y, *z;
    double ry[101], rz[101];
    CHECK_OK(sft_geglu(ctx, g, u, &y));
    CHECK_OK(sft_softcap(ctx, g, 2.5f, &z));
    for (i = 0; i < 101; i++) {
        double x = ((float *)g->data)[i];
        ry[i] = 0.5 * x * (1.0 + tanh(sqrt(2.0 / 3.141592653589793) * (x + 0.044715 * x * x * x))) * ((float *)u->data)[i];
        rz[i] = 2.5 * tanh(x / 2.5);
    }
    t_close_d("geglu", (float *)y->data, ry, 101, 1e-6, 1e-5);
    t_close_d("softcap", (float *)z->data, rz, 101, 1e-6, 1e-5);
    CHECK_STATUS(sft_softcap(ctx, g, 0.0f, &z), SFT_ERR_ARG);
    CHECK_ERROR_MENTIONS("softcap: cap = 0");
    CHECK_STATUS(sft_geglu(ctx, g, g, NULL), SFT_ERR_ARG);
    sft_tensor_destroy(g); sft_tensor_destroy(u);
    sft_context_destroy(ctx);
}

static void silu_and_swiglu_match_reference(void) {
    sft_context *ctx = t_context(1);
    uint64_t st = 6;
    int64_t s[1] = {101}, i;
    sft_tensor *g = t_random(ctx, 1, s, &st, -6, 6), *u = t_random(ctx, 1, s, &st, -2, 2), *y, *z;
    double ry[101], rz[101];
    CHECK_OK(sft_silu(ctx, g, &y));
    CHECK_OK(sft_swiglu(ctx, g, u, &z));
    for (i = 0; i < 101; i++) {
        double x = ((float *)g->data)[i];
        ry[i] = x / (1.0 + exp(-x));
        rz[i] = ry[i] * ((float *)u->data)[i];
    }
    t_close_d("silu", (float *)y->data, ry, 101, 1e-6, 1e-5);
    t_close_d("swiglu", (float *)z->data, rz, 101, 1e-6, 1e-5);
    sft_tensor_destroy(g); sft_tensor_destroy(u);
    sft_context_destroy(ctx);
}

static void reshape_is_a_view_and_infers_one_dim(void) {
    sft_context *ctx = t_context(1);
    int64_t s[3] = {2, 3, 4}, to[2] = {6, -1}, bad[2] = {5, -1}, two_infer[2] = {-1, -1};
    uint64_t st = 1;
    sft_tensor *x = t_random(ctx, 3, s, &st, -1, 1), *r;
    CHECK_OK(sft_reshape(ctx, x, 2, to, &r));
    CHECK(r->data == x->data && r->shape[0] == 6 && r->shape[1] == 4);
    CHECK_STATUS(sft_reshape(ctx, x, 2, bad, &r), SFT_ERR_SHAPE);
    CHECK_ERROR_MENTIONS("24 elements");
    CHECK_STATUS(sft_reshape(ctx, x, 2, two_infer, &r), SFT_ERR_SHAPE);
    sft_tensor_destroy(x);
    sft_context_destroy(ctx);
}

static void embedding_picks_rows_and_scatters_gradients(void) {
    t_case c = t_case_embedding();
    sft_context *ctx = t_context(2);
    sft_tensor *in[4] = {0}, *out;
    int64_t t, d;
    t_make_inputs(ctx, &c, 8, in);
    CHECK_OK(sft_embedding(ctx, in[0], in[1], &out));
    CHECK(out->ndim == 3 && out->shape[2] == 9);
    for (t = 0; t < 24; t++)
        for (d = 0; d < 9; d++)
            CHECK(((float *)out->data)[t * 9 + d] == ((float *)in[0]->data)[((int32_t *)in[1]->data)[t] * 9 + d]);
    t_free_inputs(in, 2);
    sft_context_destroy(ctx);
    t_gradcheck(&c, 1e-3, 1e-2);
    t_thread_identity(&c);
}

static void embedding_refuses_ids_outside_the_vocabulary(void) {
    sft_context *ctx = t_context(1);
    int64_t sw[2] = {4, 3}, si[1] = {3};
    sft_tensor *w = t_tensor(ctx, SFT_F32, 2, sw), *ids = t_tensor(ctx, SFT_I32, 1, si), *out;
    ((int32_t *)ids->data)[2] = 4;
    CHECK_STATUS(sft_embedding(ctx, w, ids, &out), SFT_ERR_ARG);
    CHECK_ERROR_MENTIONS("ids[2] = 4");
    ((int32_t *)ids->data)[2] = -1;
    CHECK_STATUS(sft_embedding(ctx, w, ids, &out), SFT_ERR_ARG);
    CHECK_STATUS(sft_embedding(ctx, w, w, &out), SFT_ERR_DTYPE);
    sft_tensor_destroy(w); sft_tensor_destroy(ids);
    sft_context_destroy(ctx);
}

static void rmsnorm_matches_reference(void) {
    sft_context *ctx = t_context(2);
    uint64_t st = 9;
    int64_t s[3] = {2, 7, 33}, ws[1] = {33}, r, c;
    sft_tensor *x = t_random(ctx, 3, s, &st, -3, 3), *w = t_random(ctx, 1, ws, &st, 0.5f, 1.5f), *y;
    double ref[2 * 7 * 33];
    CHECK_OK(sft_rmsnorm(ctx, x, w, 1e-6f, &y));
    for (r = 0; r < 14; r++) {
        double ss = 0.0;
        for (c = 0; c < 33; c++) ss += (double)((float *)x->data)[r * 33 + c] * ((float *)x->data)[r * 33 + c];
        for (c = 0; c < 33; c++)
            ref[r * 33 + c] = ((float *)x->data)[r * 33 + c] / sqrt(ss / 33 + 1e-6) * ((float *)w->data)[c];
    }
    t_close_d("rmsnorm", (float *)y->data, ref, 14 * 33, 1e-5, 1e-5);
    sft_tensor_destroy(x); sft_tensor_destroy(w);
    sft_context_destroy(ctx);
}

static void rmsnorm_gradients_match_finite_differences(void) {
    int64_t s[3] = {2, 5, 13}, ws[1] = {13};
    t_case c = t_case_2("rmsnorm", t_fwd_rmsnorm, 3, s, 1, ws);
    t_gradcheck(&c, 2e-3, 1e-2);
    t_thread_identity(&c);
}

static void rope_matches_the_rotate_half_formula(void) {
    sft_rope_desc d;
    memset(&d, 0, sizeof d);
    t_case c;
    sft_context *ctx = t_context(2);
    sft_tensor *in[4] = {0}, *out;
    float inv[5];
    int64_t bt, h, i;
    d.theta = 500.0f;
    c = t_case_rope(&d);
    t_make_inputs(ctx, &c, 10, in);
    CHECK_OK(sft_rope(ctx, in[0], in[1], &d, &out));
    CHECK_OK(sft_rope_inv_freq(&d, 10, inv));
    for (i = 0; i < 5; i++) CHECK(fabs(inv[i] - 1.0 / pow(500.0, 2.0 * i / 10.0)) < 1e-6 * inv[i]);
    for (bt = 0; bt < 14; bt++)
        for (h = 0; h < 3; h++) {
            const float *x = (float *)in[0]->data + (bt * 3 + h) * 10;
            double ref[10];
            for (i = 0; i < 5; i++) {
                double a = ((int32_t *)in[1]->data)[bt] * (double)inv[i];
                ref[i] = x[i] * cos(a) - x[i + 5] * sin(a);
                ref[i + 5] = x[i + 5] * cos(a) + x[i] * sin(a);
            }
            t_close_d("rope", (float *)out->data + (bt * 3 + h) * 10, ref, 10, 2e-5, 1e-5);
        }
    t_free_inputs(in, 2);
    sft_context_destroy(ctx);
}

static void rope_gradients_match_finite_differences(void) {
    static sft_rope_desc plain, llama3;
    t_case c;
    plain.theta = 10000.0f;
    llama3.theta = 500000.0f; llama3.scaling = SFT_ROPE_LLAMA3; llama3.factor = 8.0f;
    llama3.low_freq_factor = 1.0f; llama3.high_freq_factor = 4.0f; llama3.original_max_position_embeddings = 16;
    c = t_case_rope(&plain);
    t_gradcheck(&c, 1e-3, 1e-2); t_thread_identity(&c);
    c = t_case_rope(&llama3);
    t_gradcheck(&c, 1e-3, 1e-2); t_thread_identity(&c);
}

static void rope_llama3_scaling_follows_transformers(void) {
    /* Llama 3.1: theta 500000, factor 8, low 1, high 4, original context 8192.
       Wavelengths above 8192 are divided by 8, below 2048 untouched, between blended. */
    sft_rope_desc d;
    memset(&d, 0, sizeof d);
    float plain[64], scaled[64];
    int i, n_long = 0, n_short = 0, n_mid = 0;
    d.theta = 500000.0f;
    CHECK_OK(sft_rope_inv_freq(&d, 128, plain));
    d.scaling = SFT_ROPE_LLAMA3; d.factor = 8.0f; d.low_freq_factor = 1.0f; d.high_freq_factor = 4.0f;
    d.original_max_position_embeddings = 8192;
    CHECK_OK(sft_rope_inv_freq(&d, 128, scaled));
    for (i = 0; i < 64; i++) {
        double wavelen = 2 * 3.14159265358979 / plain[i];
        if (wavelen > 8192) { n_long++; CHECK(fabsf(scaled[i] - plain[i] / 8.0f) <= 1e-6f * plain[i]); }
        else if (wavelen < 2048) { n_short++; CHECK(scaled[i] == plain[i]); }
        else {
            double s = (8192 / wavelen - 1.0) / 3.0, want = (1 - s) * plain[i] / 8 + s * plain[i];
            n_mid++;
            CHECK(fabs(scaled[i] - want) <= 1e-5 * want);
        }
    }
    CHECK(n_long > 0 && n_short > 0 && n_mid > 0);
    d.high_freq_factor = 0.5f;
    CHECK_STATUS(sft_rope_inv_freq(&d, 128, scaled), SFT_ERR_ARG);
    CHECK_ERROR_MENTIONS("llama3");
}

/* Partial rotary (Phi-4-mini: the leading R of head_dim turn, the rest pass)
   and longrope (Phi-3: per-frequency factors, short below the original
   length and long from it, cos and sin times attention_factor): against the
   definition in double, gradients by finite differences. */
static void rope_partial_and_longrope_follow_the_definition(void) {
    static sft_rope_desc ds[3];
    int k;
    memset(ds, 0, sizeof ds);
    ds[0].theta = 700.0f; ds[0].partial_rotary_factor = 0.6f;              /* head 10: 6 dims turn, 4 pass */
    for (k = 1; k < 3; k++) {
        int i;
        ds[k].theta = 10000.0f; ds[k].scaling = SFT_ROPE_LONGROPE; ds[k].partial_rotary_factor = 0.8f; ds[k].attention_factor = 1.2f;
        for (i = 0; i < 4; i++) { ds[k].short_factor[i] = 1.0f + 0.5f * (float)i; ds[k].long_factor[i] = 2.0f + 3.0f * (float)i; }
    }
    ds[1].original_max_position_embeddings = 20;    /* positions reach 19: short factors */
    ds[2].original_max_position_embeddings = 19;    /* 19 + 1 > 19: long factors */
    for (k = 0; k < 3; k++) {
        t_case c = t_case_rope(&ds[k]);
        sft_context *ctx = t_context(2);
        sft_tensor *in[4] = {0}, *out = NULL;
        int64_t bt, h, i, R = k ? 8 : 6;
        double af = k ? 1.2 : 1.0;
        t_make_inputs(ctx, &c, 12 + (uint64_t)k, in);
        CHECK_OK(sft_rope(ctx, in[0], in[1], &ds[k], &out));
        for (bt = 0; out && bt < 14; bt++)
            for (h = 0; h < 3; h++) {
                const float *x = (float *)in[0]->data + (bt * 3 + h) * 10;
                double ref[10];
                for (i = 0; i < R / 2; i++) {
                    double ext = k == 0 ? 1.0 : k == 1 ? ds[k].short_factor[i] : ds[k].long_factor[i];
                    double inv = 1.0 / (ext * pow(k ? 10000.0 : 700.0, 2.0 * (double)i / (double)R));
                    double a = ((int32_t *)in[1]->data)[bt] * inv;
                    ref[i] = af * (x[i] * cos(a) - x[i + R / 2] * sin(a));
                    ref[i + R / 2] = af * (x[i + R / 2] * cos(a) + x[i] * sin(a));
                }
                for (i = R; i < 10; i++) ref[i] = x[i];
                t_close_d("rope (partial, longrope)", (float *)out->data + (bt * 3 + h) * 10, ref, 10, 2e-5, 1e-5);
            }
        t_free_inputs(in, 2);
        sft_context_destroy(ctx);
        t_gradcheck(&c, 1e-3, 1e-2);
        t_thread_identity(&c);
    }
    {   /* settings that make no rotation are refused by name */
        sft_rope_desc d = ds[0];
        float inv[8];
        d.partial_rotary_factor = 0.5f;                  /* head 10: 5 dims, odd */
        CHECK_STATUS(sft_rope_inv_freq(&d, 10, inv), SFT_ERR_ARG);
        CHECK_ERROR_MENTIONS("5 rotated dims");
        d = ds[1]; d.short_factor[2] = 0.0f;
        CHECK_STATUS(sft_rope_inv_freq(&d, 10, inv), SFT_ERR_ARG);
        CHECK_ERROR_MENTIONS("longrope factor 2");
    }
}

/* the plain definition; c->p may hold an sft_attention_desc (window, soft cap) */
static void t_ref_attention(const t_case *c, sft_tensor **in, double *ref) {
    int64_t B = c->shape[0][0], T = c->shape[0][1], Hq = c->shape[0][2], D = c->shape[0][3], Hkv = c->shape[1][2];
    int64_t b, h, t, j, d;
    const float *q = (float *)in[0]->data, *k = (float *)in[1]->data, *v = (float *)in[2]->data;
    const int32_t *ids = c->n_in > 3 ? (int32_t *)in[3]->data : NULL;
    const sft_attention_desc *desc = (const sft_attention_desc *)c->p;
    int64_t window = desc ? desc->sliding_window : 0;
    double cap = desc ? desc->softcap : 0.0, scale = desc && desc->scale > 0.0f ? desc->scale : 1.0 / sqrt((double)D);
    double *p = (double *)malloc((size_t)T * sizeof(double));   /* one score row: the reference may */
    for (b = 0; b < B; b++)
        for (h = 0; h < Hq; h++)
            for (t = 0; t < T; t++) {
                int64_t hk = h / (Hq / Hkv);
                double m = -1e300, sum = 0.0;
                for (j = 0; j <= t; j++) {
                    double s = 0.0;
                    if ((ids && ids[b * T + j] != ids[b * T + t]) || (window > 0 && j <= t - window)) { p[j] = -1e300; continue; }
                    for (d = 0; d < D; d++) s += (double)q[((b * T + t) * Hq + h) * D + d] * k[((b * T + j) * Hkv + hk) * D + d];
                    p[j] = s * scale;
                    if (cap > 0.0) p[j] = cap * tanh(p[j] / cap);
                    if (p[j] > m) m = p[j];
                }
                for (j = 0; j <= t; j++) { p[j] = p[j] <= -1e299 ? 0.0 : exp(p[j] - m); sum += p[j]; }
                for (d = 0; d < D; d++) {
                    double o = 0.0;
                    for (j = 0; j <= t; j++) o += p[j] / sum * v[((b * T + j) * Hkv + hk) * D + d];
                    ref[((b * T + t) * Hq + h) * D + d] = o;
                }
            }
    free(p);
}

static void attention_matches_reference_with_gqa_and_sequence_ids(void) {
    int variant;
    for (variant = 0; variant < 4; variant++) {
        t_case c = t_case_attention(variant & 1, variant & 2 ? 6 : 2, 2);
        sft_context *ctx = t_context(2);
        sft_tensor *in[4] = {0}, *out;
        int64_t n;
        double *ref;
        if (!(variant & 1)) c.fwd = t_fwd_attention3;
        t_make_inputs(ctx, &c, 11 + (uint64_t)variant, in);
        CHECK_OK(c.fwd(ctx, in, NULL, &out));
        n = sft_tensor_numel(out);
        ref = (double *)malloc((size_t)n * sizeof(double));
        t_ref_attention(&c, in, ref);
        t_close_d("attention", (float *)out->data, ref, n, 1e-5, 1e-5);
        free(ref);
        t_free_inputs(in, c.n_in);
        sft_context_destroy(ctx);
    }
}

/* head_dim above one k slice (256), T across several 64-row tiles, GQA and ids */
static void attention_matches_reference_for_wide_heads_and_many_tiles(void) {
    t_case c;
    sft_context *ctx = t_context(2);
    sft_tensor *in[4] = {0}, *out;
    int64_t n;
    double *ref;
    int k;
    memset(&c, 0, sizeof c);
    c.name = "attention"; c.fwd = t_fwd_attention; c.n_in = 4;
    for (k = 0; k < 3; k++) {
        c.kind[k] = T_F32; c.ndim[k] = 4;
        c.shape[k][0] = 1; c.shape[k][1] = 150; c.shape[k][2] = k ? 1 : 2; c.shape[k][3] = 300;
    }
    c.kind[3] = T_SEQ; c.ndim[3] = 2; c.shape[3][0] = 1; c.shape[3][1] = 150;
    t_make_inputs(ctx, &c, 21, in);
    CHECK_OK(c.fwd(ctx, in, NULL, &out));
    if (out) {
        n = sft_tensor_numel(out);
        ref = (double *)malloc((size_t)n * sizeof(double));
        t_ref_attention(&c, in, ref);
        t_close_d("attention, head_dim 300, T 150", (float *)out->data, ref, n, 1e-5, 1e-5);
        free(ref);
    }
    t_free_inputs(in, c.n_in);
    sft_context_destroy(ctx);
    c.shape[0][1] = c.shape[1][1] = c.shape[2][1] = c.shape[3][1] = 70;   /* gradients: two tiles */
    c.shape[0][3] = c.shape[1][3] = c.shape[2][3] = 260;
    t_gradcheck(&c, 2e-3, 1e-2);
    t_thread_identity(&c);
}

static void attention_gradients_match_finite_differences(void) {
    t_case c = t_case_attention(1, 6, 2);
    t_gradcheck(&c, 2e-3, 1e-2);
    t_thread_identity(&c);
    c = t_case_attention(0, 4, 4);
    c.fwd = t_fwd_attention3;
    t_gradcheck(&c, 2e-3, 1e-2);
    t_thread_identity(&c);
}

/* sliding windows and soft caps: against the definition for windows that cut
   within a tile, across tiles (skipped tiles) and over sequence ids that come
   back (tested key by key); gradients by finite differences, any thread count */
static void attention_windows_and_soft_caps_match_reference(void) {
    static sft_attention_desc ds[4] = {{0.0f, 3, 0.0f, SFT_F32}, {0.0f, 0, 0.8f, SFT_F32}, {0.7f, 4, 0.9f, SFT_F32}, {0.0f, 70, 1.5f, SFT_F32}};
    int variant;
    for (variant = 0; variant < 6; variant++) {
        t_case c = t_case_attention(variant != 1, variant & 2 ? 6 : 2, 2);
        sft_context *ctx = t_context(2);
        sft_tensor *in[4] = {0}, *out;
        int64_t n;
        double *ref;
        int k;
        c.p = &ds[variant < 4 ? variant : variant - 2];
        if (variant == 1) c.fwd = t_fwd_attention3;
        if (variant >= 4)          /* T 150 over three key tiles, a window of 70; variant 5: ids 0,1,2,0,1,2... */
            for (k = 0; k < 4; k++) { c.shape[k][0] = 1; c.shape[k][1] = 150; }
        if (variant == 5) c.kind[3] = T_SEQ3;
        t_make_inputs(ctx, &c, 31 + (uint64_t)variant, in);
        CHECK_OK(c.fwd(ctx, in, c.p, &out));
        if (out) {
            n = sft_tensor_numel(out);
            ref = (double *)malloc((size_t)n * sizeof(double));
            t_ref_attention(&c, in, ref);
            t_close_d("attention with a window / soft cap", (float *)out->data, ref, n, 1e-5, 1e-5);
            free(ref);
        }
        t_free_inputs(in, c.n_in);
        sft_context_destroy(ctx);
        t_gradcheck(&c, 2e-3, 1e-2);
        t_thread_identity(&c);
    }
}

static void attention_holds_no_score_matrix(void) {
    /* T = 2048, two query heads on one key/value head: one T x T f32 score matrix
       would be 16 MiB. Forward and backward together may use only the output,
       the gradients and the per-row statistics beyond the inputs. */
    sft_context *ctx = t_context(2);
    int64_t sq[4] = {1, 2048, 2, 16}, skv[4] = {1, 2048, 1, 16}, flat[2] = {1, 2048 * 2 * 16};
    size_t scores = (size_t)2048 * 2048 * sizeof(float);
    uint64_t st = 12;
    sft_tensor *q = t_random(ctx, 4, sq, &st, -1, 1), *k = t_random(ctx, 4, skv, &st, -1, 1), *v = t_random(ctx, 4, skv, &st, -1, 1);
    sft_tensor *r = t_random(ctx, 2, flat, &st, -1, 1), *o, *of, *loss;
    sft_mem_stats before, after;
    sft_tensor_set_requires_grad(q, 1); sft_tensor_set_requires_grad(k, 1); sft_tensor_set_requires_grad(v, 1);
    sft_step_begin(ctx);
    before = sft_context_mem_stats(ctx);
    sft_context_mem_reset_peak(ctx);
    CHECK_OK(sft_attention(ctx, q, k, v, NULL, 0.0f, &o));
    CHECK_OK(sft_reshape(ctx, o, 2, flat, &of));
    CHECK_OK(sft_matmul(ctx, of, r, 0, 1, &loss));
    CHECK_OK(sft_backward(ctx, loss));
    after = sft_context_mem_stats(ctx);
    CHECK_MSG(after.peak_bytes - before.bytes_in_use < scores / 2, "attention forward+backward grew memory by %zu bytes",
              after.peak_bytes - before.bytes_in_use);
    sft_tensor_destroy(q); sft_tensor_destroy(k); sft_tensor_destroy(v); sft_tensor_destroy(r);
    sft_context_destroy(ctx);
}

static void t_ref_ce(const t_case *c, sft_tensor **in, const sft_ce_desc *d, double *loss) {
    int64_t N = c->shape[0][0] * c->shape[0][1], V = c->shape[0][2], r, v, counted = 0;
    double total = 0.0;
    for (r = 0; r < N; r++) {
        const float *x = (float *)in[0]->data + r * V;
        int32_t y = ((int32_t *)in[1]->data)[r];
        double m = -1e300, s = 0.0, lse, mean = 0.0;
        if (y == -100) continue;
        counted++;
        for (v = 0; v < V; v++) if (x[v] > m) m = x[v];
        for (v = 0; v < V; v++) { s += exp(x[v] - m); mean += x[v]; }
        lse = m + log(s);
        mean /= (double)V;
        total += (1.0 - d->label_smoothing) * (lse - x[y]) + d->label_smoothing * (lse - mean);
    }
    *loss = d->reduction == SFT_CE_SUM ? total : d->reduction == SFT_CE_SUM_DIV ? total / d->divisor : total / (double)counted;
}

static void cross_entropy_matches_reference_for_each_reduction(void) {
    static sft_ce_desc ds[4];
    int i;
    ds[0].reduction = SFT_CE_MEAN;
    ds[1].reduction = SFT_CE_SUM;
    ds[2].reduction = SFT_CE_SUM_DIV; ds[2].divisor = 37.0f;
    ds[3].reduction = SFT_CE_MEAN; ds[3].label_smoothing = 0.1f;
    for (i = 0; i < 4; i++) {
        t_case c = t_case_ce(&ds[i]);
        sft_context *ctx = t_context(2);
        sft_tensor *in[4] = {0}, *out;
        double ref;
        t_make_inputs(ctx, &c, 13, in);
        CHECK_OK(sft_cross_entropy(ctx, in[0], in[1], &ds[i], &out));
        CHECK(out->ndim == 0);
        t_ref_ce(&c, in, &ds[i], &ref);
        t_close_d("cross_entropy", (float *)out->data, &ref, 1, 1e-5, 1e-5);
        t_free_inputs(in, 2);
        sft_context_destroy(ctx);
        t_gradcheck(&c, 1e-3, 1e-2);
        t_thread_identity(&c);
    }
}

static void cross_entropy_of_only_ignored_labels_is_nan_for_mean(void) {
    sft_context *ctx = t_context(1);
    int64_t sl[2] = {2, 3}, sy[1] = {2};
    sft_tensor *x = t_tensor(ctx, SFT_F32, 2, sl), *y = t_tensor(ctx, SFT_I32, 1, sy), *loss;
    sft_ce_desc sum = {SFT_CE_SUM, 0, 0, 0};
    ((int32_t *)y->data)[0] = ((int32_t *)y->data)[1] = -100;
    CHECK_OK(sft_cross_entropy(ctx, x, y, NULL, &loss));
    CHECK(isnan(((float *)loss->data)[0]));
    CHECK_OK(sft_cross_entropy(ctx, x, y, &sum, &loss));
    CHECK(((float *)loss->data)[0] == 0.0f);
    sft_tensor_destroy(x); sft_tensor_destroy(y);
    sft_context_destroy(ctx);
}

static void cross_entropy_refuses_bad_labels_and_settings(void) {
    sft_context *ctx = t_context(1);
    int64_t sl[2] = {2, 3}, sy[1] = {2}, sy3[1] = {3};
    sft_tensor *x = t_tensor(ctx, SFT_F32, 2, sl), *y = t_tensor(ctx, SFT_I32, 1, sy), *y3 = t_tensor(ctx, SFT_I32, 1, sy3), *loss;
    sft_ce_desc d = {SFT_CE_SUM_DIV, 0.0f, 0, 0};
    ((int32_t *)y->data)[1] = 3;
    CHECK_STATUS(sft_cross_entropy(ctx, x, y, NULL, &loss), SFT_ERR_ARG);
    CHECK_ERROR_MENTIONS("labels[1] = 3");
    ((int32_t *)y->data)[1] = 0;
    CHECK_STATUS(sft_cross_entropy(ctx, x, y, &d, &loss), SFT_ERR_ARG);
    CHECK_ERROR_MENTIONS("divisor");
    d.reduction = SFT_CE_MEAN; d.label_smoothing = 1.0f;
    CHECK_STATUS(sft_cross_entropy(ctx, x, y, &d, &loss), SFT_ERR_ARG);
    CHECK_STATUS(sft_cross_entropy(ctx, x, y3, NULL, &loss), SFT_ERR_SHAPE);
    CHECK_ERROR_MENTIONS("[2, 3] vs [3]");
    sft_tensor_destroy(x); sft_tensor_destroy(y); sft_tensor_destroy(y3);
    sft_context_destroy(ctx);
}

static t_case t_case_lce(const sft_ce_desc *d) {
    t_case c;
    memset(&c, 0, sizeof c);
    c.name = "linear_cross_entropy"; c.fwd = t_fwd_lce; c.p = d; c.n_in = 3;
    c.kind[0] = T_F32; c.ndim[0] = 3; c.shape[0][0] = 2; c.shape[0][1] = 5; c.shape[0][2] = 7;
    c.kind[1] = T_F32; c.ndim[1] = 2; c.shape[1][0] = 19; c.shape[1][1] = 7;
    c.kind[2] = T_LABELS; c.ndim[2] = 2; c.shape[2][0] = 2; c.shape[2][1] = 5; c.range[2] = 19;
    return c;
}

static void linear_cross_entropy_gradients_match_finite_differences(void) {
    static sft_ce_desc plain, smooth;
    t_case c;
    smooth.label_smoothing = 0.1f; smooth.reduction = SFT_CE_SUM_DIV; smooth.divisor = 3.0f;
    c = t_case_lce(&plain);
    t_gradcheck(&c, 1e-3, 1e-2); t_thread_identity(&c);
    c = t_case_lce(&smooth);
    t_gradcheck(&c, 1e-3, 1e-2); t_thread_identity(&c);
}

/* loss, d hidden and d weight of N tokens over V words, fused or through full logits */
static void t_lce_run(int fused, int64_t N, int64_t V, int64_t D, float *loss, float *dh, float *dw, size_t *grown) {
    sft_context *ctx = t_context(2);
    int64_t hs[2], ws[2], ls[1], i;
    uint64_t st = 77;
    sft_tensor *h, *w, *y, *logits, *out = NULL;
    sft_mem_stats before;
    hs[0] = N; hs[1] = D; ws[0] = V; ws[1] = D; ls[0] = N;
    h = t_random(ctx, 2, hs, &st, -1, 1); w = t_random(ctx, 2, ws, &st, -0.5f, 0.5f);
    y = t_tensor(ctx, SFT_I32, 1, ls);
    for (i = 0; i < N; i++) ((int32_t *)y->data)[i] = i % 11 == 0 ? -100 : (int32_t)((i * 7919) % V);
    sft_tensor_set_requires_grad(h, 1); sft_tensor_set_requires_grad(w, 1);
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, 2, hs, &h->grad));   /* gradients made up front: not part of the op's memory */
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, 2, ws, &w->grad));
    sft_step_begin(ctx);
    before = sft_context_mem_stats(ctx);
    sft_context_mem_reset_peak(ctx);
    if (fused) CHECK_OK(sft_linear_cross_entropy(ctx, h, w, y, NULL, &out));
    else {
        CHECK_OK(sft_matmul(ctx, h, w, 0, 1, &logits));
        CHECK_OK(sft_cross_entropy(ctx, logits, y, NULL, &out));
    }
    if (out) CHECK_OK(sft_backward(ctx, out));
    *grown = sft_context_mem_stats(ctx).peak_bytes - before.bytes_in_use;
    if (out) *loss = ((float *)out->data)[0];
    memcpy(dh, h->grad->data, (size_t)(N * D) * sizeof(float));
    memcpy(dw, w->grad->data, (size_t)(V * D) * sizeof(float));
    sft_tensor_destroy(h); sft_tensor_destroy(w); sft_tensor_destroy(y);
    sft_context_destroy(ctx);
}

static void linear_cross_entropy_keeps_no_logits_at_2048_tokens(void) {
    enum { N = 2048, V = 8000, D = 32 };
    size_t logits_bytes = (size_t)N * V * sizeof(float), grown_fused = 0, grown_full = 0;
    float loss[2] = {0, 0}, *dh = (float *)malloc(2 * (size_t)N * D * sizeof(float)), *dw = (float *)malloc(2 * (size_t)V * D * sizeof(float));
    t_lce_run(1, N, V, D, &loss[0], dh, dw, &grown_fused);
    t_lce_run(0, N, V, D, &loss[1], dh + N * D, dw + V * D, &grown_full);
    CHECK_MSG(grown_fused < logits_bytes / 2, "fused op grew memory by %zu bytes; the logits alone are %zu", grown_fused,
              logits_bytes);
    CHECK_MSG(grown_full > logits_bytes, "the unfused reference grew memory by only %zu bytes", grown_full);
    CHECK_CLOSE("fused vs unfused loss", &loss[0], &loss[1], 1, 1e-5, 1e-5);
    CHECK_CLOSE("fused vs unfused d hidden", dh, dh + N * D, (int64_t)N * D, 1e-8, 1e-3);
    CHECK_CLOSE("fused vs unfused d weight", dw, dw + V * D, (int64_t)V * D, 1e-8, 1e-3);
    free(dh); free(dw);
}

static void linear_cross_entropy_refuses_mismatched_shapes(void) {
    sft_context *ctx = t_context(1);
    int64_t hs[2] = {4, 6}, ws[2] = {10, 5}, ls[1] = {3};
    sft_tensor *h = t_tensor(ctx, SFT_F32, 2, hs), *w = t_tensor(ctx, SFT_F32, 2, ws), *y = t_tensor(ctx, SFT_I32, 1, ls), *o;
    CHECK_STATUS(sft_linear_cross_entropy(ctx, h, w, y, NULL, &o), SFT_ERR_SHAPE);
    CHECK_ERROR_MENTIONS("linear_cross_entropy: weight must be [V, D]");
    sft_tensor_destroy(w);
    ws[1] = 6;
    w = t_tensor(ctx, SFT_F32, 2, ws);
    CHECK_STATUS(sft_linear_cross_entropy(ctx, h, w, y, NULL, &o), SFT_ERR_SHAPE);
    CHECK_ERROR_MENTIONS("labels");
    sft_tensor_destroy(h); sft_tensor_destroy(w); sft_tensor_destroy(y);
    sft_context_destroy(ctx);
}

static void dropout_mask_depends_only_on_seed_and_index(void) {
    sft_context *ctx = t_context(2);
    int64_t s[1] = {20000}, i, zeros = 0;
    uint64_t st = 14;
    sft_tensor *x = t_random(ctx, 1, s, &st, 0.5f, 1.0f), *a, *b, *c;
    CHECK_OK(sft_dropout(ctx, x, 0.3f, 99, &a));
    CHECK_OK(sft_dropout(ctx, x, 0.3f, 99, &b));
    CHECK_OK(sft_dropout(ctx, x, 0.3f, 100, &c));
    CHECK(memcmp(a->data, b->data, 20000 * sizeof(float)) == 0);
    CHECK(memcmp(a->data, c->data, 20000 * sizeof(float)) != 0);
    for (i = 0; i < 20000; i++) {
        float v = ((float *)a->data)[i], xi = ((float *)x->data)[i];
        if (v == 0.0f) zeros++;
        else CHECK(v == xi * (1.0f / 0.7f));
    }
    CHECK_MSG(fabs(zeros / 20000.0 - 0.3) < 0.02, "dropped fraction %.4f", zeros / 20000.0);
    CHECK_OK(sft_dropout(ctx, x, 0.0f, 1, &a));
    CHECK(a == x);
    CHECK_OK(sft_dropout(ctx, x, 1.0f, 1, &a));
    CHECK(((float *)a->data)[5] == 0.0f);
    CHECK_STATUS(sft_dropout(ctx, x, 1.5f, 1, &a), SFT_ERR_ARG);
    sft_tensor_destroy(x);
    sft_context_destroy(ctx);
}

static void dropout_gradients_use_the_same_mask(void) {
    int64_t s[2] = {7, 9};
    t_case c = t_case_2("dropout", t_fwd_dropout, 2, s, 0, NULL);
    t_gradcheck(&c, 1e-3, 1e-2);
    t_thread_identity(&c);
}

static void shape_mismatches_name_the_op_and_shapes(void) {
    sft_context *ctx = t_context(1);
    int64_t s23[2] = {2, 3}, s45[2] = {4, 5}, s4[4] = {1, 2, 3, 4}, s4b[4] = {1, 2, 2, 4}, s5[1] = {5}, s3[1] = {3};
    sft_tensor *a = t_tensor(ctx, SFT_F32, 2, s23), *b = t_tensor(ctx, SFT_F32, 2, s45), *o;
    sft_tensor *q = t_tensor(ctx, SFT_F32, 4, s4), *k = t_tensor(ctx, SFT_F32, 4, s4b), *w5 = t_tensor(ctx, SFT_F32, 1, s5);
    sft_tensor *w3 = t_tensor(ctx, SFT_F32, 1, s3), *bf = t_tensor(ctx, SFT_BF16, 2, s23), *pos = t_tensor(ctx, SFT_I32, 2, s23);
    CHECK_STATUS(sft_matmul(ctx, a, b, 0, 0, &o), SFT_ERR_SHAPE);
    CHECK_ERROR_MENTIONS("matmul: inner dims differ: a [2, 3] has K=3, b [4, 5] has K=4");
    CHECK(o == NULL);
    CHECK_STATUS(sft_matmul(ctx, a, w3, 0, 0, &o), SFT_ERR_SHAPE);
    CHECK_STATUS(sft_add(ctx, a, b, &o), SFT_ERR_SHAPE);
    CHECK_ERROR_MENTIONS("add:");
    CHECK_STATUS(sft_mul(ctx, a, w5, &o), SFT_ERR_SHAPE);
    CHECK_STATUS(sft_swiglu(ctx, a, b, &o), SFT_ERR_SHAPE);
    CHECK_STATUS(sft_rmsnorm(ctx, a, w5, 1e-5f, &o), SFT_ERR_SHAPE);
    CHECK_ERROR_MENTIONS("rmsnorm");
    CHECK_STATUS(sft_rmsnorm(ctx, a, w3, -1.0f, &o), SFT_ERR_ARG);
    CHECK_STATUS(sft_attention(ctx, q, k, k, NULL, 0.0f, &o), SFT_ERR_SHAPE);
    CHECK_ERROR_MENTIONS("multiple of key/value heads");
    CHECK_STATUS(sft_attention(ctx, q, a, a, NULL, 0.0f, &o), SFT_ERR_SHAPE);
    CHECK_STATUS(sft_rope(ctx, a, pos, NULL, &o), SFT_ERR_SHAPE);
    CHECK_ERROR_MENTIONS("rope");
    CHECK_STATUS(sft_matmul(ctx, bf, a, 0, 1, &o), SFT_ERR_DTYPE);
    CHECK_ERROR_MENTIONS("matmul: a is BF16 [2, 3], expected F32");
    CHECK_STATUS(sft_scale(ctx, NULL, 1.0f, &o), SFT_ERR_ARG);
    CHECK_STATUS(sft_silu(NULL, a, &o), SFT_ERR_ARG);
    CHECK_STATUS(sft_silu(ctx, a, NULL), SFT_ERR_ARG);
    sft_tensor_destroy(a); sft_tensor_destroy(b); sft_tensor_destroy(q); sft_tensor_destroy(k);
    sft_tensor_destroy(w5); sft_tensor_destroy(w3); sft_tensor_destroy(bf); sft_tensor_destroy(pos);
    sft_context_destroy(ctx);
}

static void ops_on_random_odd_shapes_match_reference(void) {
    /* a sweep over sizes (1, primes, a tile edge + 1) through matmul with a bias */
    static const int64_t sizes[] = {1, 2, 3, 5, 15, 16, 17, 31, 33, 65};
    sft_context *ctx = t_context(2);
    uint64_t st = 15;
    int i;
    for (i = 0; i < 10; i++) {
        int64_t M = sizes[i], N = sizes[(i * 3 + 1) % 10], K = sizes[(i * 7 + 2) % 10];
        int64_t sa[2], sw[2], sb[1], m, n;
        sft_tensor *x, *w, *bias, *y, *z;
        double *ref = (double *)malloc((size_t)(M * N) * sizeof(double));
        sa[0] = M; sa[1] = K; sw[0] = N; sw[1] = K; sb[0] = N;
        x = t_random(ctx, 2, sa, &st, -1, 1); w = t_random(ctx, 2, sw, &st, -1, 1); bias = t_random(ctx, 1, sb, &st, -1, 1);
        sft_step_begin(ctx);
        CHECK_OK(sft_matmul(ctx, x, w, 0, 1, &y));
        CHECK_OK(sft_add(ctx, y, bias, &z));
        t_ref_matmul((float *)x->data, (float *)w->data, ref, M, N, K, 0, 1);
        for (m = 0; m < M; m++) for (n = 0; n < N; n++) ref[m * N + n] += ((float *)bias->data)[n];
        t_close_d("linear with bias", (float *)z->data, ref, M * N, 1e-5, 1e-5);
        free(ref);
        sft_tensor_destroy(x); sft_tensor_destroy(w); sft_tensor_destroy(bias);
    }
    sft_context_destroy(ctx);
}

void suite_ops(void) {
    RUN(matmul_matches_reference_in_every_orientation);
    RUN(batched_matmul_matches_per_batch_reference);
    RUN(matmul_gradients_match_finite_differences);
    RUN(matmul_is_bit_identical_across_thread_counts);
    RUN(ops_on_random_odd_shapes_match_reference);
    RUN(add_and_mul_broadcast_a_suffix);
    RUN(elementwise_gradients_match_finite_differences);
    RUN(silu_and_swiglu_match_reference);
    RUN(geglu_and_softcap_match_reference);
    RUN(narrow_takes_columns_of_the_last_dim);
    RUN(reshape_is_a_view_and_infers_one_dim);
    RUN(embedding_picks_rows_and_scatters_gradients);
    RUN(embedding_refuses_ids_outside_the_vocabulary);
    RUN(rmsnorm_matches_reference);
    RUN(rmsnorm_gradients_match_finite_differences);
    RUN(rope_matches_the_rotate_half_formula);
    RUN(rope_gradients_match_finite_differences);
    RUN(rope_llama3_scaling_follows_transformers);
    RUN(rope_partial_and_longrope_follow_the_definition);
    RUN(attention_matches_reference_with_gqa_and_sequence_ids);
    RUN(attention_gradients_match_finite_differences);
    RUN(attention_matches_reference_for_wide_heads_and_many_tiles);
    RUN(attention_windows_and_soft_caps_match_reference);
    RUN(attention_holds_no_score_matrix);
    RUN(cross_entropy_matches_reference_for_each_reduction);
    RUN(cross_entropy_of_only_ignored_labels_is_nan_for_mean);
    RUN(cross_entropy_refuses_bad_labels_and_settings);
    RUN(linear_cross_entropy_gradients_match_finite_differences);
    RUN(linear_cross_entropy_keeps_no_logits_at_2048_tokens);
    RUN(linear_cross_entropy_refuses_mismatched_shapes);
    RUN(dropout_mask_depends_only_on_seed_and_index);
    RUN(dropout_gradients_use_the_same_mask);
    RUN(shape_mismatches_name_the_op_and_shapes);
}
