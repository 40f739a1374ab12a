/* test_cuda.cu - the CUDA seam of sft.h, end to end, through the public API.

   The one translation unit of the CUDA test program: it compiles sft.h's
   implementation with SFT_CUDA (so nvcc builds sft_cuda.cuh into it) and checks
   that device tensors are allocated, copied and computed on, and that autograd
   runs the device kernels, with results bit-identical to the CPU backend's.
   Ops with no CUDA kernel yet must say so, naming the op and "cuda".

   build:          make cuda    (nvcc ... -I. tests/test_cuda.cu -o build/test_cuda -lcublasLt -lpthread)
   run:            build/test_cuda
   usage:          build/test_cuda [substring]   runs only the tests whose name contains it

   Without a CUDA device it prints "no CUDA device: skipped", then
   "0 passed, 0 failed", and exits 0. */
#define SFT_IMPLEMENTATION
#define SFT_CUDA
#include "../sft.h"
#include "test.h"

#include "runner.c"   /* the runner behind test.h, shared with tests/main.c */

/* ---------------------------------------------------------------------------
   Helpers. Tensors here are persistent; each test destroys what it made. */

/* cpu_random: a CPU f32 tensor of uniform values in [-2, 2) from seed. */
static sft_tensor *cpu_random(sft_context *ctx, int ndim, const int64_t *shape, uint64_t seed) {
    sft_tensor *t = NULL;
    int64_t i, n;
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, ndim, shape, &t));
    if (!t) return NULL;
    n = sft_tensor_numel(t);
    for (i = 0; i < n; i++) ((float *)t->data)[i] = t_rand(&seed, -2.0f, 2.0f);
    return t;
}

/* on: a new persistent copy of t on device (either direction). */
static sft_tensor *on(sft_context *ctx, const sft_tensor *t, sft_device device) {
    sft_tensor *out = NULL;
    if (t) CHECK_OK(sft_tensor_to_device(ctx, t, device, &out));
    return out;
}

/* check_same_as_cpu: copy the device tensor dev back and compare it bit for bit
   with the CPU tensor want. */
static void check_same_as_cpu(const char *what, sft_context *ctx, const sft_tensor *dev, const sft_tensor *want) {
    sft_tensor *got;
    if (!dev || !want) { CHECK_MSG(0, "%s: missing tensor (device %p, cpu %p)", what, (const void *)dev, (const void *)want); return; }
    CHECK_MSG(dev->device == SFT_DEVICE_CUDA, "%s: result is not on the CUDA device", what);
    got = on(ctx, dev, SFT_DEVICE_CPU);
    if (!got) return;
    CHECK_MSG(sft_tensor_numel(got) == sft_tensor_numel(want), "%s: %lld elements, want %lld", what,
              (long long)sft_tensor_numel(got), (long long)sft_tensor_numel(want));
    if (sft_tensor_numel(got) == sft_tensor_numel(want))
        CHECK_SAME(what, (const float *)got->data, (const float *)want->data, sft_tensor_numel(want));
    sft_tensor_destroy(got);
}

/* ---------------------------------------------------------------------------
   Memory and copies */

static void cuda_tensors_start_zeroed_and_copy_exactly_every_way(void) {
    sft_context *ctx = t_context(2);
    int64_t shape[2] = {37, 129};
    sft_tensor *zero_cpu = NULL, *x = cpu_random(ctx, 2, shape, 1), *dev = NULL, *dev2 = NULL, *back = NULL;
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, 2, shape, &zero_cpu));
    CHECK_OK(sft_tensor_create_on(ctx, SFT_DEVICE_CUDA, SFT_F32, 2, shape, &dev));
    check_same_as_cpu("fresh cuda tensor", ctx, dev, zero_cpu);          /* zero-filled, like the CPU's */
    CHECK_OK(sft_tensor_copy_from(dev, x));                              /* host to device */
    CHECK_OK(sft_tensor_create_on(ctx, SFT_DEVICE_CUDA, SFT_F32, 2, shape, &dev2));
    CHECK_OK(sft_tensor_copy_from(dev2, dev));                           /* device to device */
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, 2, shape, &back));
    CHECK_OK(sft_tensor_copy_from(back, dev2));                          /* device to host */
    CHECK_SAME("host -> device -> device -> host", (const float *)back->data, (const float *)x->data, 37 * 129);
    sft_tensor_zero_grad(dev);                                           /* no grad yet: nothing to do */
    sft_tensor_destroy(zero_cpu); sft_tensor_destroy(x); sft_tensor_destroy(dev); sft_tensor_destroy(dev2);
    sft_tensor_destroy(back);
    sft_context_destroy(ctx);
}

static void cuda_allocation_failure_is_nomem_naming_the_size(void) {
    sft_context *ctx = t_context(2);
    int64_t huge = (int64_t)1 << 40, small = 5;   /* 4 TiB of f32: more than any device holds */
    sft_tensor *t = NULL, *a = NULL, *s = NULL, *back = NULL;
    CHECK_STATUS(sft_tensor_create_on(ctx, SFT_DEVICE_CUDA, SFT_F32, 1, &huge, &t), SFT_ERR_NOMEM);
    CHECK(t == NULL);
    CHECK_ERROR_MENTIONS("cudaMalloc");
    CHECK_ERROR_MENTIONS("4398046511104");
    /* the failure is not sticky: the next kernel launch runs and reports success */
    CHECK_OK(sft_tensor_create_on(ctx, SFT_DEVICE_CUDA, SFT_F32, 1, &small, &a));
    if (a) CHECK_OK(sft_scale(ctx, a, 2.0f, &s));
    if (s) back = on(ctx, s, SFT_DEVICE_CPU);
    if (back) CHECK(((const float *)back->data)[4] == 0.0f);
    sft_tensor_destroy(a); sft_tensor_destroy(back);
    sft_context_destroy(ctx);
}

/* ---------------------------------------------------------------------------
   Forward kernels: the same graph on both devices, compared bit for bit. */

typedef struct ew_graph { sft_tensor *m, *y, *s, *r, *sc; } ew_graph;

/* build_ew_graph: m = a * b, y = m + bias, s = y * scalar, r = reshape(s, [-1, last]), sc = r * 0.37 */
static void build_ew_graph(sft_context *ctx, sft_tensor *a, sft_tensor *b, sft_tensor *bias, sft_tensor *scalar, ew_graph *g) {
    int64_t rshape[2];
    memset(g, 0, sizeof *g);
    rshape[0] = -1; rshape[1] = a->shape[a->ndim - 1];
    CHECK_OK(sft_mul(ctx, a, b, &g->m));
    if (g->m) CHECK_OK(sft_add(ctx, g->m, bias, &g->y));
    if (g->y) CHECK_OK(sft_mul(ctx, g->y, scalar, &g->s));
    if (g->s) CHECK_OK(sft_reshape(ctx, g->s, 2, rshape, &g->r));
    if (g->r) CHECK_OK(sft_scale(ctx, g->r, 0.37f, &g->sc));
}

static void add_mul_scale_reshape_forward_match_cpu_bitwise(void) {
    sft_context *ctx = t_context(2);
    int64_t sa[3] = {7, 33, 129}, sb[2] = {33, 129}, sbias[1] = {129};
    sft_tensor *a = cpu_random(ctx, 3, sa, 11), *b = cpu_random(ctx, 2, sb, 12), *bias = cpu_random(ctx, 1, sbias, 13);
    sft_tensor *scalar = cpu_random(ctx, 0, NULL, 14), *same = cpu_random(ctx, 3, sa, 15);
    sft_tensor *da = on(ctx, a, SFT_DEVICE_CUDA), *db = on(ctx, b, SFT_DEVICE_CUDA), *dbias = on(ctx, bias, SFT_DEVICE_CUDA);
    sft_tensor *dscalar = on(ctx, scalar, SFT_DEVICE_CUDA), *dsame = on(ctx, same, SFT_DEVICE_CUDA);
    ew_graph cpu, dev;
    sft_tensor *cpu_full = NULL, *dev_full = NULL;
    build_ew_graph(ctx, a, b, bias, scalar, &cpu);
    build_ew_graph(ctx, da, db, dbias, dscalar, &dev);
    check_same_as_cpu("mul (b [33,129] onto [7,33,129])", ctx, dev.m, cpu.m);
    check_same_as_cpu("add (bias [129])", ctx, dev.y, cpu.y);
    check_same_as_cpu("mul (scalar b)", ctx, dev.s, cpu.s);
    check_same_as_cpu("reshape (a view)", ctx, dev.r, cpu.r);
    check_same_as_cpu("scale", ctx, dev.sc, cpu.sc);
    if (dev.r && dev.s) CHECK_MSG(dev.r->data == dev.s->data, "reshape on cuda copied its input instead of viewing it");
    CHECK_OK(sft_add(ctx, a, same, &cpu_full));                          /* b of a's full shape */
    CHECK_OK(sft_add(ctx, da, dsame, &dev_full));
    check_same_as_cpu("add (same shapes)", ctx, dev_full, cpu_full);
    sft_tensor_destroy(a); sft_tensor_destroy(b); sft_tensor_destroy(bias); sft_tensor_destroy(scalar);
    sft_tensor_destroy(same); sft_tensor_destroy(da); sft_tensor_destroy(db); sft_tensor_destroy(dbias);
    sft_tensor_destroy(dscalar); sft_tensor_destroy(dsame);
    sft_context_destroy(ctx);
}

/* 4097 x 4099 elements is more than 65535 blocks of 256 threads cover in one
   pass, so every thread goes round the grid-stride loop at least once. */
static void forward_kernels_cover_tensors_larger_than_one_grid(void) {
    sft_context *ctx = t_context(2);
    int64_t sa[2] = {4097, 4099}, sb[1] = {4099};
    sft_tensor *a = cpu_random(ctx, 2, sa, 21), *b = cpu_random(ctx, 1, sb, 22);
    sft_tensor *da = on(ctx, a, SFT_DEVICE_CUDA), *db = on(ctx, b, SFT_DEVICE_CUDA);
    sft_tensor *cpu_add = NULL, *dev_add = NULL, *cpu_mul = NULL, *dev_mul = NULL, *cpu_sc = NULL, *dev_sc = NULL;
    CHECK_OK(sft_add(ctx, a, b, &cpu_add));
    CHECK_OK(sft_add(ctx, da, db, &dev_add));
    CHECK_OK(sft_mul(ctx, a, b, &cpu_mul));
    CHECK_OK(sft_mul(ctx, da, db, &dev_mul));
    CHECK_OK(sft_scale(ctx, a, -3.5f, &cpu_sc));
    CHECK_OK(sft_scale(ctx, da, -3.5f, &dev_sc));
    check_same_as_cpu("add [4097,4099] + [4099]", ctx, dev_add, cpu_add);
    check_same_as_cpu("mul [4097,4099] * [4099]", ctx, dev_mul, cpu_mul);
    check_same_as_cpu("scale [4097,4099]", ctx, dev_sc, cpu_sc);
    sft_tensor_destroy(a); sft_tensor_destroy(b); sft_tensor_destroy(da); sft_tensor_destroy(db);
    sft_context_destroy(ctx);
}

/* ---------------------------------------------------------------------------
   Backward kernels through sft_backward. */

/* A loss on the device made only of operators: every tensor in it has one
   element (there is no device reduction yet), so a broadcast operand has exactly
   one row. r reaches the loss three ways (mul, add's full-size operand, reshape),
   so its gradient checks that every kernel adds into what is already there.
   loss = 0.5 * (reshape((r + r * p) + q, [1]) + reshape(r, [1])). */
enum { TINY_R, TINY_P, TINY_Q, TINY_COUNT };

static void tiny_loss_backward(sft_context *ctx, sft_tensor *const *leaf, float *loss_value) {
    sft_tensor *m = NULL, *y = NULL, *z = NULL, *flat = NULL, *rflat = NULL, *w = NULL, *loss = NULL, *host = NULL;
    int64_t one = 1;
    sft_step_begin(ctx);
    CHECK_OK(sft_mul(ctx, leaf[TINY_R], leaf[TINY_P], &m));              /* [1,1] * [1]  */
    if (m) CHECK_OK(sft_add(ctx, leaf[TINY_R], m, &y));                  /* [1,1] + [1,1] */
    if (y) CHECK_OK(sft_add(ctx, y, leaf[TINY_Q], &z));                  /* [1,1] + []   */
    if (z) CHECK_OK(sft_reshape(ctx, z, 1, &one, &flat));                /* -> [1]       */
    CHECK_OK(sft_reshape(ctx, leaf[TINY_R], 1, &one, &rflat));
    if (flat && rflat) CHECK_OK(sft_add(ctx, flat, rflat, &w));
    if (w) CHECK_OK(sft_scale(ctx, w, 0.5f, &loss));
    if (!loss) return;
    host = on(ctx, loss, SFT_DEVICE_CPU);
    if (host) *loss_value = ((const float *)host->data)[0];
    sft_tensor_destroy(host);
    CHECK_OK(sft_backward(ctx, loss));
}

static void scalar_loss_backward_on_cuda_matches_cpu_bitwise(void) {
    static const char *const names[TINY_COUNT] = {"dloss/dr", "dloss/dp", "dloss/dq"};
    sft_context *ctx = t_context(2);
    int64_t s11[2] = {1, 1}, s1[1] = {1};
    sft_tensor *cpu[TINY_COUNT], *dev[TINY_COUNT];
    float cpu_loss = 0.0f, dev_loss = 1.0f;
    int k, step;
    cpu[TINY_R] = cpu_random(ctx, 2, s11, 31);
    cpu[TINY_P] = cpu_random(ctx, 1, s1, 32);
    cpu[TINY_Q] = cpu_random(ctx, 0, NULL, 33);
    for (k = 0; k < TINY_COUNT; k++) {
        dev[k] = on(ctx, cpu[k], SFT_DEVICE_CUDA);
        sft_tensor_set_requires_grad(cpu[k], 1);
        sft_tensor_set_requires_grad(dev[k], 1);
    }
    for (step = 0; step < 2; step++) {                                   /* twice: gradients accumulate */
        tiny_loss_backward(ctx, cpu, &cpu_loss);
        tiny_loss_backward(ctx, dev, &dev_loss);
        CHECK_SAME("loss", &dev_loss, &cpu_loss, 1);
    }
    for (k = 0; k < TINY_COUNT; k++) {
        sft_tensor *dg = dev[k] ? dev[k]->grad : NULL, *cg = cpu[k] ? cpu[k]->grad : NULL;
        CHECK_MSG(dg && cg, "%s: no gradient (device %p, cpu %p)", names[k], (void *)dg, (void *)cg);
        if (dg && cg) check_same_as_cpu(names[k], ctx, dg, cg);
    }
    for (k = 0; k < TINY_COUNT; k++) { sft_tensor_destroy(cpu[k]); sft_tensor_destroy(dev[k]); }
    sft_context_destroy(ctx);
}

/* Broadcast gradients with many rows need an upstream gradient bigger than one
   element. Like PyTorch's y.backward(G), the host gives the graph's output a
   gradient G through the public grad field, then back-propagates a one-element
   loss recorded after it; sft_backward runs the whole tape, so the graph's nodes
   run their backward kernels on G. Done the same way on both devices. */
enum { EW_A, EW_B, EW_BIAS, EW_SCALAR, EW_ANCHOR, EW_G, EW_COUNT };

static void injected_gradient_backward(sft_context *ctx, sft_tensor *const *t) {
    ew_graph g;
    sft_tensor *loss = NULL;
    sft_step_begin(ctx);
    build_ew_graph(ctx, t[EW_A], t[EW_B], t[EW_BIAS], t[EW_SCALAR], &g);
    CHECK_OK(sft_scale(ctx, t[EW_ANCHOR], 1.0f, &loss));                /* the loss: recorded last */
    if (!g.sc || !loss) return;
    g.sc->grad = t[EW_G];                                                /* dloss/dsc := G */
    CHECK_OK(sft_backward(ctx, loss));
    g.sc->grad = NULL;                                                   /* G stays ours to destroy */
}

static void broadcast_backward_on_cuda_matches_cpu_bitwise(void) {
    static const char *const names[EW_G] = {"da (mul, full size)", "db (mul, [33,129] summed over 7 rows)",
                                            "dbias (add, [129] summed over 231 rows)",
                                            "dscalar (mul, [] summed over all 29799)", "danchor (scale)"};
    sft_context *ctx = t_context(2);
    int64_t sa[3] = {7, 33, 129}, sb[2] = {33, 129}, sbias[1] = {129}, sg[2] = {7 * 33, 129}, s1[1] = {1};
    sft_tensor *cpu[EW_COUNT], *dev[EW_COUNT];
    int k, step;
    cpu[EW_A] = cpu_random(ctx, 3, sa, 41);
    cpu[EW_B] = cpu_random(ctx, 2, sb, 42);
    cpu[EW_BIAS] = cpu_random(ctx, 1, sbias, 43);
    cpu[EW_SCALAR] = cpu_random(ctx, 0, NULL, 44);
    cpu[EW_ANCHOR] = cpu_random(ctx, 1, s1, 45);
    cpu[EW_G] = cpu_random(ctx, 2, sg, 46);
    for (k = 0; k < EW_COUNT; k++) dev[k] = on(ctx, cpu[k], SFT_DEVICE_CUDA);
    for (k = 0; k < EW_G; k++) {                                         /* every leaf but G */
        sft_tensor_set_requires_grad(cpu[k], 1);
        sft_tensor_set_requires_grad(dev[k], 1);
    }
    for (step = 0; step < 2; step++) {                                   /* twice: gradients accumulate */
        injected_gradient_backward(ctx, cpu);
        injected_gradient_backward(ctx, dev);
    }
    for (k = 0; k < EW_G; k++) {
        sft_tensor *dg = dev[k] ? dev[k]->grad : NULL, *cg = cpu[k] ? cpu[k]->grad : NULL;
        CHECK_MSG(dg && cg, "%s: no gradient (device %p, cpu %p)", names[k], (void *)dg, (void *)cg);
        if (dg && cg) check_same_as_cpu(names[k], ctx, dg, cg);
    }
    for (k = 0; k < EW_COUNT; k++) { sft_tensor_destroy(cpu[k]); sft_tensor_destroy(dev[k]); }
    sft_context_destroy(ctx);
}

/* ---------------------------------------------------------------------------
   What the seam refuses, and how it says so. */

static void op_without_cuda_kernel_reports_op_and_backend(void) {
    sft_context *ctx = t_context(2);
    int64_t shape[4] = {1, 2, 1, 4};
    sft_tensor *q = NULL, *k = NULL, *v = NULL, *out = NULL;
    CHECK_OK(sft_tensor_create_on(ctx, SFT_DEVICE_CUDA, SFT_F32, 4, shape, &q));
    CHECK_OK(sft_tensor_create_on(ctx, SFT_DEVICE_CUDA, SFT_F32, 4, shape, &k));
    CHECK_OK(sft_tensor_create_on(ctx, SFT_DEVICE_CUDA, SFT_F32, 4, shape, &v));
    CHECK_STATUS(sft_attention(ctx, q, k, v, NULL, 0.0f, &out), SFT_ERR_UNSUPPORTED);
    CHECK_ERROR_MENTIONS("attention");
    CHECK_ERROR_MENTIONS("cuda");
    CHECK(out == NULL);
    sft_tensor_destroy(q); sft_tensor_destroy(k); sft_tensor_destroy(v);
    sft_context_destroy(ctx);
}

static void inputs_on_different_devices_are_rejected(void) {
    sft_context *ctx = t_context(2);
    int64_t shape[1] = {8};
    sft_tensor *a = cpu_random(ctx, 1, shape, 51), *b = on(ctx, a, SFT_DEVICE_CUDA), *out = NULL;
    CHECK_STATUS(sft_add(ctx, a, b, &out), SFT_ERR_DEVICE);
    CHECK_ERROR_MENTIONS("add");
    CHECK(out == NULL);
    sft_tensor_destroy(a); sft_tensor_destroy(b);
    sft_context_destroy(ctx);
}

int main(int argc, char **argv) {
    if (!sft_cuda_available()) {
        printf("no CUDA device: skipped\n");
        printf("0 passed, 0 failed\n");
        return 0;
    }
    if (!t_begin(argc, argv)) return 2;
    printf("cuda\n");
    RUN(cuda_tensors_start_zeroed_and_copy_exactly_every_way);
    RUN(cuda_allocation_failure_is_nomem_naming_the_size);
    RUN(add_mul_scale_reshape_forward_match_cpu_bitwise);
    RUN(forward_kernels_cover_tensors_larger_than_one_grid);
    RUN(scalar_loss_backward_on_cuda_matches_cpu_bitwise);
    RUN(broadcast_backward_on_cuda_matches_cpu_bitwise);
    RUN(op_without_cuda_kernel_reports_op_and_backend);
    RUN(inputs_on_different_devices_are_rejected);
    return t_end();
}
