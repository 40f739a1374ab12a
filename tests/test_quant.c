/* test_quant.c - bitsandbytes' 4-bit formats: quantization byte for byte against
   the CUDA rule on the fixtures tools/make_quant_fixtures.py wrote (NF4 and FP4,
   blocksizes 32 to 4096, with and without double quantization, f32/bf16/f16
   input), dequantization bit for bit against bitsandbytes, hand-made midpoint
   and zero cases, bad input, and the Linear4bit op: the same bits as a dense
   GEMM on the dequantized weight without ever holding that weight. */
#include "test.h"

#define T_QFIX "tests/fixtures/quant/"

static const void *t_fxf(const sft_st_file *f, const char *cs, const char *what, int64_t *count) {
    char name[160];
    snprintf(name, sizeof name, "%s.%s", cs, what);
    return t_st_data(f, name, count);
}

typedef struct t_qcase { const char *name; sft_quant_type type; int blocksize, dq; int64_t rows, cols; } t_qcase;

static int t_qcase_of(const sft_json *c, t_qcase *q) {
    q->name = sft_json_get(c, "name")->string;
    q->type = strcmp(sft_json_get(c, "quant_type")->string, "fp4") == 0 ? SFT_QUANT_FP4 : SFT_QUANT_NF4;
    q->blocksize = (int)sft_json_get(c, "blocksize")->number;
    q->dq = (int)sft_json_get(c, "double_quant")->number;
    q->rows = (int64_t)sft_json_get(c, "rows")->number;
    q->cols = (int64_t)sft_json_get(c, "cols")->number;
    return 1;
}

static sft_json *t_qcases(sft_context *ctx, sft_st_file **f) {
    CHECK_OK(sft_st_open(ctx, T_QFIX "quant.safetensors", f));
    return t_json_file(ctx, T_QFIX "cases.json");
}

static int32_t t_ulps(float a, float b) {
    int32_t x, y;
    memcpy(&x, &a, 4); memcpy(&y, &b, 4);
    return x > y ? x - y : y - x;
}

/* Our quantizer against the CUDA rule (.cuda_rule.packed: bitsandbytes' CUDA
   kernel re-done in f32 by the fixture writer; bitsandbytes' own CPU path, whose
   bytes are .packed, differs on FP4 and on all-zero blocks, and the fixture lists
   where). Double quantization: the offset is a mean whose last bits depend on the
   summation order (CPU torch vs ours, exact), so it may differ by 2 ulp; the
   8-bit codes with a pinned offset are checked in the internals suite. */
static void quantize_matches_the_cuda_rule_byte_for_byte(void) {
    sft_context *ctx = t_context(2);
    sft_st_file *f = NULL;
    sft_json *cases = t_qcases(ctx, &f);
    const sft_json *list = cases ? sft_json_get(cases, "cases") : NULL;
    size_t c;
    CHECK(list && list->length >= 20);
    for (c = 0; list && f && c < list->length; c++) {
        t_qcase q;
        char name[160];
        sft_tensor *in = NULL;
        sft_qweight *w = NULL;
        sft_quant_desc d;
        int64_t n, nb;
        const uint8_t *want;
        t_qcase_of(&list->items[c], &q);
        snprintf(name, sizeof name, "%s.input", q.name);
        CHECK_OK(sft_st_load(ctx, f, name, &in));
        d.type = q.type; d.blocksize = q.blocksize; d.double_quant = q.dq;
        if (in) CHECK_OK(sft_quantize(ctx, in, &d, &w));
        want = (const uint8_t *)t_fxf(f, q.name, "cuda_rule.packed", &nb);
        if (w && want) {
            int64_t i;
            CHECK_MSG(nb == (q.rows * q.cols + 1) / 2, "%s: %lld packed bytes", q.name, (long long)nb);
            for (i = 0; i < nb && w->data[i] == want[i]; i++) {}
            CHECK_MSG(i == nb, "%s: byte %lld is %02x, the CUDA rule gives %02x", q.name, (long long)i, i < nb ? w->data[i] : 0,
                      i < nb ? want[i] : 0);
        }
        if (w && !q.dq) {
            const float *am = (const float *)t_fxf(f, q.name, "absmax", &n);
            if (am) CHECK_MSG(n == w->n_blocks && memcmp(am, w->absmax, (size_t)n * 4) == 0, "%s: absmax differs", q.name);
        }
        if (w && q.dq) {
            const float *off = (const float *)t_fxf(f, q.name, "nested_offset", NULL);
            if (off) CHECK_MSG(t_ulps(*off, w->nested_offset) <= 2, "%s: offset %.9g vs %.9g", q.name, w->nested_offset, *off);
        }
        sft_qweight_destroy(w);
        sft_tensor_destroy(in);
    }
    sft_json_free(cases);
    sft_st_close(f);
    sft_context_destroy(ctx);
}

/* sft_qweight_from_data: a qweight from the fixture's (bitsandbytes') arrays */
static sft_qweight *t_qweight_from_fixture(sft_context *ctx, const sft_st_file *f, const char *prefix, sft_quant_type type,
                                           int blocksize, int dq, int64_t rows, int64_t cols) {
    sft_qweight_data d;
    sft_qweight *w = NULL;
    int64_t n = 0;
    memset(&d, 0, sizeof d);
    d.type = type; d.rows = rows; d.cols = cols; d.blocksize = blocksize;
    d.data = (const uint8_t *)t_fxf(f, prefix, "packed", &n); d.data_bytes = (size_t)n;
    d.code = (const float *)t_fxf(f, prefix, "code", &n); d.code_len = (int)n;
    if (dq) {
        d.absmax_q = (const uint8_t *)t_fxf(f, prefix, "absmax_q", &d.n_absmax_q);
        d.nested_absmax = (const float *)t_fxf(f, prefix, "nested_absmax", &d.n_nested_absmax);
        d.nested_offset = *(const float *)t_fxf(f, prefix, "nested_offset", NULL);
        d.nested_code = (const float *)t_fxf(f, prefix, "nested_code", &n); d.nested_code_len = (int)n;
    } else
        d.absmax = (const float *)t_fxf(f, prefix, "absmax", &d.n_absmax);
    CHECK_OK(sft_qweight_from_data(ctx, &d, &w));
    return w;
}

static void dequantize_matches_bitsandbytes_bit_for_bit(void) {
    sft_context *ctx = t_context(2);
    sft_st_file *f = NULL;
    sft_json *cases = t_qcases(ctx, &f);
    const sft_json *list = cases ? sft_json_get(cases, "cases") : NULL;
    size_t c;
    for (c = 0; list && f && c < list->length; c++) {
        t_qcase q;
        sft_qweight *w;
        sft_tensor *out = NULL;
        int64_t n = 0;
        const float *want;
        t_qcase_of(&list->items[c], &q);
        w = t_qweight_from_fixture(ctx, f, q.name, q.type, q.blocksize, q.dq, q.rows, q.cols);
        want = (const float *)t_fxf(f, q.name, "dequant", &n);
        if (w) CHECK_OK(sft_dequantize(ctx, w, &out));
        if (out && want) {
            CHECK(n == q.rows * q.cols);
            if (!CHECK_SAME(q.name, (const float *)out->data, want, n)) break;
        }
        sft_tensor_destroy(out);
        sft_qweight_destroy(w);
    }
    sft_json_free(cases);
    sft_st_close(f);
    sft_context_destroy(ctx);
}

static void code_tables_are_bitsandbytes(void) {
    sft_context *ctx = t_context(1);
    sft_st_file *f = NULL;
    int64_t n = 0;
    const float *map;
    CHECK_OK(sft_st_open(ctx, T_QFIX "quant.safetensors", &f));
    if (f) {
        map = (const float *)t_st_data(f, "dynamic_map", &n);
        if (map) { CHECK(n == 256); CHECK_SAME("dynamic map", sft_quant_dynamic_map(), map, 256); }
        map = (const float *)t_st_data(f, "nf4_bs64_dq0_f32_37x129.code", &n);
        if (map) CHECK_SAME("nf4 code", sft_quant_code(SFT_QUANT_NF4), map, 16);
        map = (const float *)t_st_data(f, "fp4_bs64_dq0_f32_37x129.code", &n);
        if (map) CHECK_SAME("fp4 code", sft_quant_code(SFT_QUANT_FP4), map, 16);
        sft_st_close(f);
    }
    CHECK(sft_quant_code(SFT_QUANT_NONE) == NULL);
    sft_context_destroy(ctx);
}

static sft_qweight *t_quantize_values(sft_context *ctx, const float *v, int64_t n, sft_quant_type type, int blocksize) {
    sft_tensor *t = NULL;
    sft_qweight *w = NULL;
    sft_quant_desc d;
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, 1, &n, &t));
    if (!t) return NULL;
    memcpy(t->data, v, (size_t)n * sizeof(float));
    d.type = type; d.blocksize = blocksize; d.double_quant = 0;
    CHECK_OK(sft_quantize(ctx, t, &d, &w));
    sft_tensor_destroy(t);
    return w;
}

static unsigned t_nib(const sft_qweight *w, int64_t e) { return (w->data[e >> 1] >> ((e & 1) ? 0 : 4)) & 15u; }

/* A block whose absmax is 1 scales by exactly 1: a value on a decision
   threshold takes the lower code, the next float up the higher one. */
static void a_value_on_a_midpoint_takes_the_lower_code(void) {
    static const float nf4_mid[15] = {
        -0.8480964004993439f, -0.6106329262256622f, -0.4599952697753906f, -0.33967943489551544f, -0.23460740596055984f,
        -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f, 0.1202552504837513f, 0.2035212516784668f,
        0.2920137718319893f, 0.3893125355243683f, 0.5016634166240692f, 0.6427869200706482f, 0.8614784181118011f};
    static const float fp4_mid[7] = {0.00260417f, 0.0859375f, 0.20833333f, 0.29166667f, 0.4166667f, 0.583333f, 0.8333333f};
    static const unsigned fp4_order[8] = {0, 1, 6, 7, 4, 5, 2, 3};
    sft_context *ctx = t_context(1);
    float v[64];
    int i;
    sft_qweight *w;
    for (i = 0; i < 64; i++) v[i] = 0.0f;
    v[0] = 1.0f;
    for (i = 0; i < 15; i++) { v[1 + 2 * i] = nf4_mid[i]; v[2 + 2 * i] = nextafterf(nf4_mid[i], 1.0f); }
    w = t_quantize_values(ctx, v, 64, SFT_QUANT_NF4, 64);
    for (i = 0; w && i < 15; i++) {
        CHECK_MSG(t_nib(w, 1 + 2 * i) == (unsigned)i, "NF4 threshold %d: code %u", i, t_nib(w, 1 + 2 * i));
        CHECK_MSG(t_nib(w, 2 + 2 * i) == (unsigned)i + 1, "NF4 just above threshold %d: code %u", i, t_nib(w, 2 + 2 * i));
    }
    sft_qweight_destroy(w);
    for (i = 0; i < 64; i++) v[i] = 0.0f;
    v[0] = 1.0f;
    for (i = 0; i < 7; i++) {
        v[1 + 4 * i] = fp4_mid[i]; v[2 + 4 * i] = nextafterf(fp4_mid[i], 1.0f);
        v[3 + 4 * i] = -fp4_mid[i]; v[4 + 4 * i] = -nextafterf(fp4_mid[i], 1.0f);
    }
    w = t_quantize_values(ctx, v, 64, SFT_QUANT_FP4, 64);
    for (i = 0; w && i < 7; i++) {
        CHECK_MSG(t_nib(w, 1 + 4 * i) == fp4_order[i], "FP4 pivot %d: code %u", i, t_nib(w, 1 + 4 * i));
        CHECK_MSG(t_nib(w, 2 + 4 * i) == fp4_order[i + 1], "FP4 above pivot %d: code %u", i, t_nib(w, 2 + 4 * i));
        CHECK_MSG(t_nib(w, 3 + 4 * i) == (fp4_order[i] | 8u), "FP4 -pivot %d: code %u", i, t_nib(w, 3 + 4 * i));
        CHECK_MSG(t_nib(w, 4 + 4 * i) == (fp4_order[i + 1] | 8u), "FP4 below -pivot %d: code %u", i, t_nib(w, 4 + 4 * i));
    }
    if (w) CHECK(t_nib(w, 0) == 3 && t_nib(w, 63) == 0);   /* 1.0 is code 3, zero is code 0 */
    sft_qweight_destroy(w);
    sft_context_destroy(ctx);
}

/* 0 * (1/0) is NaN on CUDA: an all-zero block is code 0 everywhere (the PyTorch
   path writes code 7); both dequantize to 0. An odd count pads the last byte's
   low nibble with the code of 0 (7 for NF4 when the block is not zero). */
static void an_all_zero_block_is_code_0_and_an_odd_count_pads_with_zero(void) {
    sft_context *ctx = t_context(1);
    float v[97];
    int i;
    sft_qweight *w;
    sft_tensor *dq = NULL;
    for (i = 0; i < 97; i++) v[i] = i >= 64 ? 0.25f * (float)(i - 63) / 33.0f : 0.0f;
    w = t_quantize_values(ctx, v, 97, SFT_QUANT_NF4, 64);
    if (w) {
        for (i = 0; i < 32; i++) CHECK_MSG(w->data[i] == 0, "zero block byte %d = %02x", i, w->data[i]);
        CHECK(w->absmax[0] == 0.0f && w->absmax[1] == 0.25f);
        CHECK(w->data[48] == ((15u << 4) | 7u));            /* element 96 = absmax, then the pad */
        CHECK_OK(sft_dequantize(ctx, w, &dq));
        if (dq) for (i = 0; i < 64; i++) CHECK(((float *)dq->data)[i] == 0.0f);
        if (dq) CHECK(((float *)dq->data)[96] == 0.25f);
    }
    sft_tensor_destroy(dq);
    sft_qweight_destroy(w);
    sft_context_destroy(ctx);
}

static void bad_quantization_input_is_refused(void) {
    sft_context *ctx = t_context(1);
    float v[256] = {0}, absmax[4] = {1, 1, 1, 1};
    uint8_t packed[128] = {0}, codes[4] = {0};
    int bs[] = {16, 48, 8192, -64};
    int i;
    sft_qweight *w = NULL;
    sft_qweight_data d;
    for (i = 0; i < 4; i++) {
        sft_tensor *t = NULL;
        sft_quant_desc qd;
        int64_t n = 256;
        CHECK_OK(sft_tensor_create(ctx, SFT_F32, 1, &n, &t));
        qd.type = SFT_QUANT_NF4; qd.blocksize = bs[i]; qd.double_quant = 0;
        if (t) { CHECK_STATUS(sft_quantize(ctx, t, &qd, &w), SFT_ERR_ARG); CHECK_ERROR_MENTIONS("blocksize"); }
        CHECK(w == NULL);
        sft_tensor_destroy(t);
    }
    (void)v;
#define T_DATA_RESET() do { memset(&d, 0, sizeof d); d.type = SFT_QUANT_NF4; d.rows = 4; d.cols = 64; d.blocksize = 64; \
        d.data = packed; d.data_bytes = 128; d.absmax = absmax; d.n_absmax = 4; } while (0)
    T_DATA_RESET();
    CHECK_OK(sft_qweight_from_data(ctx, &d, &w));
    sft_qweight_destroy(w); w = NULL;
    T_DATA_RESET(); d.data_bytes = 127;
    CHECK_STATUS(sft_qweight_from_data(ctx, &d, &w), SFT_ERR_FORMAT); CHECK_ERROR_MENTIONS("127 bytes");
    T_DATA_RESET(); d.blocksize = 96;
    CHECK_STATUS(sft_qweight_from_data(ctx, &d, &w), SFT_ERR_FORMAT); CHECK_ERROR_MENTIONS("blocksize 96");
    T_DATA_RESET(); d.n_absmax = 3;
    CHECK_STATUS(sft_qweight_from_data(ctx, &d, &w), SFT_ERR_FORMAT); CHECK_ERROR_MENTIONS("absmax has 3");
    T_DATA_RESET(); absmax[2] = NAN;
    CHECK_STATUS(sft_qweight_from_data(ctx, &d, &w), SFT_ERR_FORMAT); CHECK_ERROR_MENTIONS("absmax[2]");
    T_DATA_RESET(); absmax[2] = INFINITY;
    CHECK_STATUS(sft_qweight_from_data(ctx, &d, &w), SFT_ERR_FORMAT); CHECK_ERROR_MENTIONS("absmax[2]");
    T_DATA_RESET(); absmax[2] = -1.0f;
    CHECK_STATUS(sft_qweight_from_data(ctx, &d, &w), SFT_ERR_FORMAT); CHECK_ERROR_MENTIONS("absmax[2]");
    absmax[2] = 1.0f;
    T_DATA_RESET(); d.type = SFT_QUANT_NONE;
    CHECK_STATUS(sft_qweight_from_data(ctx, &d, &w), SFT_ERR_ARG);
    T_DATA_RESET(); d.rows = -4;
    CHECK_STATUS(sft_qweight_from_data(ctx, &d, &w), SFT_ERR_SHAPE);
    T_DATA_RESET(); d.code = absmax; d.code_len = 4;
    CHECK_STATUS(sft_qweight_from_data(ctx, &d, &w), SFT_ERR_FORMAT); CHECK_ERROR_MENTIONS("quant_map");
    {   /* double quantization: the codes and their scales are checked too */
        float nested[1] = {0.5f};
        T_DATA_RESET(); d.absmax = NULL; d.n_absmax = 0; d.absmax_q = codes; d.n_absmax_q = 4; d.nested_absmax = nested;
        d.n_nested_absmax = 1; d.nested_offset = 0.1f;
        CHECK_OK(sft_qweight_from_data(ctx, &d, &w));
        if (w) CHECK(w->double_quant && fabsf(sft_qweight_block_scale(w, 0) - (sft_quant_dynamic_map()[0] * 0.5f + 0.1f)) == 0.0f);
        sft_qweight_destroy(w); w = NULL;
        d.n_absmax_q = 5;
        CHECK_STATUS(sft_qweight_from_data(ctx, &d, &w), SFT_ERR_FORMAT); CHECK_ERROR_MENTIONS("codes");
        d.n_absmax_q = 4; d.n_nested_absmax = 2;
        CHECK_STATUS(sft_qweight_from_data(ctx, &d, &w), SFT_ERR_FORMAT); CHECK_ERROR_MENTIONS("nested_absmax");
        d.n_nested_absmax = 1; nested[0] = -0.5f;
        CHECK_STATUS(sft_qweight_from_data(ctx, &d, &w), SFT_ERR_FORMAT); CHECK_ERROR_MENTIONS("nested_absmax[0]");
        nested[0] = 0.5f; d.nested_offset = NAN;
        CHECK_STATUS(sft_qweight_from_data(ctx, &d, &w), SFT_ERR_FORMAT); CHECK_ERROR_MENTIONS("nested_offset");
        d.nested_offset = 0.1f; d.nested_blocksize = 128;
        CHECK_STATUS(sft_qweight_from_data(ctx, &d, &w), SFT_ERR_FORMAT); CHECK_ERROR_MENTIONS("nested_blocksize");
    }
    CHECK(w == NULL);
#undef T_DATA_RESET
    sft_context_destroy(ctx);
}

/* random f32 [rows, cols] as a persistent tensor */
static sft_tensor *t_random(sft_context *ctx, int64_t rows, int64_t cols, uint64_t seed, float scale) {
    int64_t shape[2], i;
    sft_tensor *t = NULL;
    shape[0] = rows; shape[1] = cols;
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, cols ? 2 : 1, shape, &t));
    for (i = 0; t && i < sft_tensor_numel(t); i++) ((float *)t->data)[i] = t_rand(&seed, -scale, scale);
    return t;
}

/* y of one linear call and the gradients of x and bias it gives, copied out */
typedef struct t_lin_result { float *y, *dx, *db; } t_lin_result;

static void t_lin_result_free(t_lin_result *r) { free(r->y); free(r->dx); free(r->db); }

static float *t_copy(const sft_tensor *t) {
    float *c;
    if (!t) return NULL;
    c = (float *)malloc(sft_tensor_nbytes(t));
    memcpy(c, t->data, sft_tensor_nbytes(t));
    return c;
}

static t_lin_result t_run_linear(sft_context *ctx, sft_tensor *x, const sft_qweight *q, sft_tensor *wdq, sft_tensor *bias,
                                 sft_tensor *g) {
    t_lin_result r = {NULL, NULL, NULL};
    sft_tensor *y = NULL, *yb = NULL, *loss = NULL;
    sft_tensor_zero_grad(x); sft_tensor_zero_grad(bias);
    sft_step_begin(ctx);
    if (q) CHECK_OK(sft_linear4bit(ctx, x, q, bias, &yb));
    else {
        CHECK_OK(sft_matmul(ctx, x, wdq, 0, 1, &y));
        if (y) CHECK_OK(sft_add(ctx, y, bias, &yb));
    }
    if (yb) loss = t_sum_product(ctx, yb, g);
    if (loss) CHECK_OK(sft_backward(ctx, loss));
    r.y = t_copy(yb); r.dx = t_copy(x->grad); r.db = t_copy(bias->grad);
    return r;
}

/* On every CPU path: y, dx and dbias of sft_linear4bit are bitwise those of a
   dense matmul with the dequantized weight (the panels hold the same values). */
static void linear4bit_equals_a_dense_matmul_on_the_dequantized_weight(void) {
    static const int64_t shapes[][3] = {{37, 80, 96}, {5, 200, 129}, {130, 33, 300}};
    int path, cfg;
    for (path = SFT_CPU_PORTABLE; path < SFT_CPU_PATH_COUNT; path++)
        for (cfg = 0; cfg < 3; cfg++) {
            int64_t M = shapes[cfg][0], N = shapes[cfg][1], K = shapes[cfg][2];
            sft_context *ctx;
            sft_tensor *w32, *x, *bias, *g, *wdq = NULL;
            sft_qweight *q = NULL;
            sft_quant_desc d;
            t_lin_result a, b;
            char what[64];
            if (!t_cpu_path_runnable((sft_cpu_path)path)) continue;
            ctx = t_context(2);
            CHECK_OK(sft_cpu_path_set(ctx, (sft_cpu_path)path));
            w32 = t_random(ctx, N, K, 1 + cfg, 0.1f); x = t_random(ctx, M, K, 2 + cfg, 1.0f);
            bias = t_random(ctx, N, 0, 3 + cfg, 0.5f); g = t_random(ctx, M, N, 4 + cfg, 1.0f);
            d.type = cfg == 1 ? SFT_QUANT_FP4 : SFT_QUANT_NF4; d.blocksize = cfg == 2 ? 256 : 64; d.double_quant = cfg != 1;
            CHECK_OK(sft_quantize(ctx, w32, &d, &q));
            if (q) CHECK_OK(sft_dequantize(ctx, q, &wdq));
            sft_tensor_set_requires_grad(x, 1); sft_tensor_set_requires_grad(bias, 1);
            a = t_run_linear(ctx, x, q, NULL, bias, g);
            b = t_run_linear(ctx, x, NULL, wdq, bias, g);
            snprintf(what, sizeof what, "%s [%lld x %lld x %lld]", sft_cpu_path_name((sft_cpu_path)path), (long long)M,
                     (long long)N, (long long)K);
            CHECK_MSG(a.y && a.dx && a.db && b.y && b.dx && b.db, "%s: missing results", what);
            if (a.y && b.y) CHECK_SAME(what, a.y, b.y, M * N);
            if (a.dx && b.dx) CHECK_SAME(what, a.dx, b.dx, M * K);
            if (a.db && b.db) CHECK_SAME(what, a.db, b.db, N);
            t_lin_result_free(&a); t_lin_result_free(&b);
            sft_tensor_destroy(w32); sft_tensor_destroy(x); sft_tensor_destroy(bias); sft_tensor_destroy(g);
            sft_tensor_destroy(wdq); sft_qweight_destroy(q);
            sft_context_destroy(ctx);
        }
}

/* Forward and backward of a [1536, 576] NF4 layer on 8 rows: the context's peak
   grows by far less than the 3.5 MB a dequantized f32 copy would take. */
static void linear4bit_never_holds_a_dequantized_weight(void) {
    sft_context *ctx = t_context(2);
    sft_tensor *w32 = t_random(ctx, 1536, 576, 7, 0.05f), *x = t_random(ctx, 8, 576, 8, 1.0f), *g = t_random(ctx, 8, 1536, 9, 1.0f);
    sft_qweight *q = NULL;
    size_t before, grew, dense = (size_t)1536 * 576 * sizeof(float);
    CHECK_OK(sft_quantize(ctx, w32, NULL, &q));
    sft_tensor_destroy(w32);
    sft_tensor_set_requires_grad(x, 1);
    if (q) {
        sft_tensor *y = NULL, *loss = NULL;
        sft_step_begin(ctx);
        CHECK_OK(sft_linear4bit(ctx, x, q, NULL, &y));     /* warm up: GEMM buffers, arena blocks */
        if (y) loss = t_sum_product(ctx, y, g);
        if (loss) CHECK_OK(sft_backward(ctx, loss));
        sft_step_begin(ctx);
        sft_context_mem_reset_peak(ctx);
        before = sft_context_mem_stats(ctx).bytes_in_use;
        CHECK_OK(sft_linear4bit(ctx, x, q, NULL, &y));
        if (y) loss = t_sum_product(ctx, y, g);
        if (loss) CHECK_OK(sft_backward(ctx, loss));
        grew = sft_context_mem_stats(ctx).peak_bytes - before;
        CHECK_MSG(grew < dense / 8, "peak grew by %zu bytes; a dequantized weight is %zu", grew, dense);
    }
    sft_qweight_destroy(q);
    sft_tensor_destroy(x); sft_tensor_destroy(g);
    sft_context_destroy(ctx);
}

void suite_quant(void) {
    RUN(quantize_matches_the_cuda_rule_byte_for_byte);
    RUN(dequantize_matches_bitsandbytes_bit_for_bit);
    RUN(code_tables_are_bitsandbytes);
    RUN(a_value_on_a_midpoint_takes_the_lower_code);
    RUN(an_all_zero_block_is_code_0_and_an_odd_count_pads_with_zero);
    RUN(bad_quantization_input_is_refused);
    RUN(linear4bit_equals_a_dense_matmul_on_the_dequantized_weight);
    RUN(linear4bit_never_holds_a_dequantized_weight);
}
