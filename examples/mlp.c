/* mlp.c - train a small multi-layer perceptron with nothing but sft.h's tensor
   and autograd API: three interleaved spirals in the plane, one class each.

   Build and run:
       cc -O2 examples/mlp.c -o mlp -lm -lpthread && ./mlp

   What it shows: persistent parameters, a per-step arena (sft_step_begin),
   operators that record themselves, sft_backward, and a hand-written Adam
   update. It exits 0 when the loss has fallen to under a third of its start. */
#define SFT_IMPLEMENTATION
#include "../sft.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_POINTS  600
#define N_CLASSES 3
#define HIDDEN    64
#define STEPS     400

typedef struct param { sft_tensor *w, *m, *v; } param;

static sft_status check(sft_status s, const char *what) {
    if (s != SFT_OK) fprintf(stderr, "%s: %s: %s\n", what, sft_status_str(s), sft_last_error());
    return s;
}

/* uniform in [-a, a) from a small xorshift state */
static float uniform(uint32_t *state, float a) {
    *state ^= *state << 13; *state ^= *state >> 17; *state ^= *state << 5;
    return a * (2.0f * (float)(*state >> 8) / 16777216.0f - 1.0f);
}

static sft_status make_param(sft_context *ctx, int ndim, int64_t d0, int64_t d1, float init, uint32_t *rng, param *p) {
    int64_t shape[2], i;
    shape[0] = d0; shape[1] = d1;
    if (sft_tensor_create(ctx, SFT_F32, ndim, shape, &p->w) || sft_tensor_create(ctx, SFT_F32, ndim, shape, &p->m) ||
        sft_tensor_create(ctx, SFT_F32, ndim, shape, &p->v))
        return check(SFT_ERR_NOMEM, "make_param");
    for (i = 0; i < sft_tensor_numel(p->w); i++) ((float *)p->w->data)[i] = uniform(rng, init);
    sft_tensor_set_requires_grad(p->w, 1);
    return SFT_OK;
}

/* Adam with bias correction; then the gradient is cleared for the next step. */
static void adam_update(param *p, int step, float lr) {
    const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    float c1 = 1.0f - powf(b1, (float)step), c2 = 1.0f - powf(b2, (float)step);
    int64_t i, n = sft_tensor_numel(p->w);
    float *w = (float *)p->w->data, *g = (float *)p->w->grad->data, *m = (float *)p->m->data, *v = (float *)p->v->data;
    for (i = 0; i < n; i++) {
        m[i] = b1 * m[i] + (1.0f - b1) * g[i];
        v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
        w[i] -= lr * (m[i] / c1) / (sqrtf(v[i] / c2) + eps);
    }
    sft_tensor_zero_grad(p->w);
}

/* three spirals: point i of class c at radius r, angle r*4 + c*2pi/3, plus noise */
static void make_data(sft_tensor *x, sft_tensor *y, uint32_t *rng) {
    int i;
    for (i = 0; i < N_POINTS; i++) {
        int c = i % N_CLASSES;
        float r = (float)(i / N_CLASSES) / (N_POINTS / N_CLASSES), a = r * 4.0f + (float)c * 2.0943951f;
        ((float *)x->data)[2 * i] = r * cosf(a) + uniform(rng, 0.03f);
        ((float *)x->data)[2 * i + 1] = r * sinf(a) + uniform(rng, 0.03f);
        ((int32_t *)y->data)[i] = c;
    }
}

/* logits = silu(x W1^T + b1) W2^T + b2 */
static sft_status forward(sft_context *ctx, sft_tensor *x, param *p, sft_tensor **logits) {
    sft_tensor *h;
    sft_status s;
    if ((s = sft_matmul(ctx, x, p[0].w, 0, 1, &h)) || (s = sft_add(ctx, h, p[1].w, &h)) || (s = sft_silu(ctx, h, &h)) ||
        (s = sft_matmul(ctx, h, p[2].w, 0, 1, &h)) || (s = sft_add(ctx, h, p[3].w, logits)))
        return check(s, "forward");
    return SFT_OK;
}

int main(void) {
    sft_context *ctx;
    sft_context_desc desc;
    memset(&desc, 0, sizeof desc);
    sft_tensor *x, *y, *logits, *loss;
    int64_t xs[2] = {N_POINTS, 2}, ys[1] = {N_POINTS};
    param p[4];
    uint32_t rng = 12345;
    float first = 0.0f, last = 0.0f;
    int step, i, ok;

    desc.threads = 2;
    if (check(sft_context_create(&desc, &ctx), "context")) return 1;
    if (check(sft_tensor_create(ctx, SFT_F32, 2, xs, &x), "x") || check(sft_tensor_create(ctx, SFT_I32, 1, ys, &y), "y"))
        return 1;
    make_data(x, y, &rng);
    if (make_param(ctx, 2, HIDDEN, 2, 1.0f, &rng, &p[0]) || make_param(ctx, 1, HIDDEN, 0, 0.1f, &rng, &p[1]) ||
        make_param(ctx, 2, N_CLASSES, HIDDEN, 0.2f, &rng, &p[2]) || make_param(ctx, 1, N_CLASSES, 0, 0.0f, &rng, &p[3]))
        return 1;

    for (step = 1; step <= STEPS; step++) {
        sft_step_begin(ctx);                        /* last step's activations are recycled */
        if (forward(ctx, x, p, &logits)) return 1;
        if (check(sft_cross_entropy(ctx, logits, y, NULL, &loss), "loss")) return 1;
        if (check(sft_backward(ctx, loss), "backward")) return 1;
        for (i = 0; i < 4; i++) adam_update(&p[i], step, 0.02f);
        last = ((float *)loss->data)[0];
        if (step == 1) first = last;
        if (step == 1 || step % 50 == 0) printf("step %4d  loss %.4f\n", step, last);
    }

    /* accuracy on the training points, without recording a tape */
    sft_grad_enabled_set(ctx, 0);
    sft_step_begin(ctx);
    if (forward(ctx, x, p, &logits)) return 1;
    {
        int correct = 0, c;
        for (i = 0; i < N_POINTS; i++) {
            const float *l = (const float *)logits->data + i * N_CLASSES;
            int best = 0;
            for (c = 1; c < N_CLASSES; c++) if (l[c] > l[best]) best = c;
            correct += best == ((int32_t *)y->data)[i];
        }
        printf("loss %.4f -> %.4f, training accuracy %.1f%%\n", first, last, 100.0 * correct / N_POINTS);
    }
    ok = last < first / 3.0f;
    for (i = 0; i < 4; i++) { sft_tensor_destroy(p[i].w); sft_tensor_destroy(p[i].m); sft_tensor_destroy(p[i].v); }
    sft_tensor_destroy(x); sft_tensor_destroy(y);
    sft_context_destroy(ctx);
    return ok ? 0 : 1;
}
