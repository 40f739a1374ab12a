/* main.c - the CPU test program and the one translation unit that compiles
   sft.h's implementation (the suites and the runner include sft.h plainly, so
   every build of the tests also checks that the header links across
   translation units).

   usage: test_sft [substring]   runs only the tests whose name contains it */
#define SFT_IMPLEMENTATION
#include "../sft.h"
#include "test.h"

void suite_core(void);
void suite_json(void);
void suite_safetensors(void);
void suite_tensor(void);
void suite_ops(void);
void suite_autograd(void);

void suite_paths(void);
void suite_tokenizer(void);
void suite_quant(void);
void suite_lora(void);
void suite_model(void);
void suite_archs(void);
void suite_data(void);
void suite_templates(void);
void suite_trainer(void);
void suite_checkpoint(void);
void suite_cli(void);
void suite_harden(void);
void suite_gguf(void);
void suite_parallel(void);
void suite_callbacks(void);
void suite_optim(void);
void suite_prompt(void);
void suite_ptuning(void);
void suite_stream(void);

/* Internal kernels the public API cannot reach on their own; this file is the one
   that compiles the implementation, so it can call them. */
static void exp_shift_is_within_2_ulp_of_expf_on_every_path(void) {
    static float x[4001], want[4001];
    int path, i;
    for (i = 0; i <= 4000; i++) x[i] = -100.0f + 188.0f * (float)i / 4000.0f;
    for (path = SFT_CPU_PORTABLE; path < SFT_CPU_PATH_COUNT; path++) {
        int worst = 0, worst_i = 0;
        if (!t_cpu_path_runnable((sft_cpu_path)path)) continue;
        for (i = 0; i <= 4000; i++) want[i] = x[i];
        sft__cpu_kernel_table[path].exp_shift(want, 4001, 1.5f);
        for (i = 0; i <= 4000; i++) {
            float ref = expf(x[i] - 1.5f);
            int32_t a, b, ulp;
            if (x[i] - 1.5f < -87.33654f) { CHECK_MSG(want[i] == 0.0f || want[i] == ref, "exp(%g) = %g", x[i] - 1.5f, want[i]); continue; }
            memcpy(&a, &want[i], 4); memcpy(&b, &ref, 4);
            ulp = a > b ? a - b : b - a;
            if (ulp > worst) { worst = ulp; worst_i = i; }
        }
        CHECK_MSG(worst <= 2, "%s: exp(%g) is %d ulp from expf", sft_cpu_path_name((sft_cpu_path)path), x[worst_i] - 1.5f, worst);
    }
    {   /* a masked score gives exactly 0 */
        float m[3];
        for (path = SFT_CPU_PORTABLE; path < SFT_CPU_PATH_COUNT; path++) {
            if (!t_cpu_path_runnable((sft_cpu_path)path)) continue;
            m[0] = -INFINITY; m[1] = 0.0f; m[2] = -INFINITY;
            sft__cpu_kernel_table[path].exp_shift(m, 3, 0.0f);
            CHECK(m[0] == 0.0f && m[1] == 1.0f && m[2] == 0.0f);
        }
    }
}

/* Dropout masks: each element's bit is its Philox uniform tested against p (the
   definition), every path's word generator gives the reference's words, the
   mask does not depend on the thread count or on where a range starts, and the
   paths' mask multiplications equal the portable one bit for bit. */
static void dropout_masks_follow_the_definition_on_every_path(void) {
    static const float ps[5] = {0.0f, 0.05f, 0.5f, 0.999f, 1.0f};
    enum { WORDS = 37 };
    uint64_t ref[WORDS], got[WORDS], key = sft_rng_key(7, 1, 2, 3);
    int pi, path, w, lane, q;
    for (pi = 0; pi < 5; pi++) {
        uint32_t thr = sft__dropout_threshold(ps[pi]);
        int64_t kept = 0;
        for (w = 0; w < WORDS; w++) ref[w] = sft__dropout_word(key, thr, (uint64_t)w);
        for (w = 0; w < WORDS; w++)              /* element 64w + 16q + lane: word q of counter 16w + lane */
            for (lane = 0; lane < 16; lane++) {
                uint32_t r[4];
                sft_philox(key, 0, (uint64_t)w * 16 + (uint64_t)lane, r);
                for (q = 0; q < 4; q++) {
                    int want = (float)(r[q] >> 8) * (1.0f / 16777216.0f) >= ps[pi];
                    int bit = (int)((ref[w] >> (16 * q + lane)) & 1);
                    kept += bit;
                    CHECK_MSG(bit == want, "p %g: element %d: bit %d, uniform test %d", ps[pi], 64 * w + 16 * q + lane, bit, want);
                }
            }
        if (ps[pi] == 0.5f) CHECK_MSG(kept > 64 * WORDS * 45 / 100 && kept < 64 * WORDS * 55 / 100, "p 0.5 kept %lld", (long long)kept);
        for (path = SFT_CPU_PORTABLE; path < SFT_CPU_PATH_COUNT; path++) {
            if (!t_cpu_path_runnable((sft_cpu_path)path)) continue;
            memset(got, 0xAB, sizeof got);
            sft__cpu_kernel_table[path].dropout_words(key, thr, 0, 20, got);
            sft__cpu_kernel_table[path].dropout_words(key, thr, 20, WORDS, got);
            CHECK_MSG(memcmp(got, ref, sizeof ref) == 0, "%s: p %g: words differ from the reference",
                      sft_cpu_path_name((sft_cpu_path)path), ps[pi]);
        }
    }
    {   /* through the pool: 1 and 3 threads, and a range starting inside a word */
        static uint64_t a[3000], b[3000];
        sft_context *c1 = t_context(1), *c3 = t_context(3);
        int64_t n = 64 * 3000 - 5;
        sft__dropout_mask(c1, key, 0.05f, 0, n, a);
        sft__dropout_mask(c3, key, 0.05f, 0, 1000, b);
        sft__dropout_mask(c3, key, 0.05f, 1000, n, b);
        CHECK(memcmp(a, b, sizeof a) == 0);
        for (w = 0; w < 3000; w += 997) CHECK(a[w] == sft__dropout_word(key, sft__dropout_threshold(0.05f), (uint64_t)w));
        sft_context_destroy(c1); sft_context_destroy(c3);
    }
    {   /* mask_mul: every path equals the portable kernel, at any start and length */
        static float x[300], want[300], have[300];
        static const int64_t starts[4] = {0, 1, 17, 63}, lens[4] = {0, 7, 64, 250};
        int s, l, acc;
        for (w = 0; w < 300; w++) x[w] = (float)w * 0.37f - 40.0f;
        for (path = SFT_CPU_AVX2; path < SFT_CPU_PATH_COUNT; path++) {
            if (!t_cpu_path_runnable((sft_cpu_path)path)) continue;
            for (s = 0; s < 4; s++)
                for (l = 0; l < 4; l++)
                    for (acc = 0; acc < 2; acc++) {
                        for (w = 0; w < 300; w++) want[w] = have[w] = (float)w;
                        sft__mask_mul_portable(x, ref, starts[s], lens[l], 2.5f, want, acc);
                        sft__cpu_kernel_table[path].mask_mul(x, ref, starts[s], lens[l], 2.5f, have, acc);
                        CHECK_SAME(sft_cpu_path_name((sft_cpu_path)path), have, want, 300);
                    }
        }
    }
}

/* bf16 GEMMs (compute_dtype bf16): each product is of the operands rounded to
   bf16, summed in f32. Against a double sum of the rounded products the error
   is the f32 summation's, at most K * 2^-24 of sum |a b| (bound used: K * 2^-23);
   against the f32 GEMM it is the rounding of each operand (relative 2^-9 each,
   so 2^-8 a product: bound used 2^-7 of sum |a b|). The vdpbf16ps kernel and the
   rounded-f32 one (every other path, or forced) agree to the summation bound;
   every result is the same on 1 and 3 threads; a 4-bit weight decoded to bf16
   gives the bits of its dequantized dense weight. */
static double t_bf16(float x) { return (double)sft_bf16_to_f32(sft_f32_to_bf16(x)); }

static void t_bf16_case(sft_cpu_path path, int emulated, int64_t M, int64_t N, int64_t K, int trans) {
    float *a = (float *)malloc((size_t)(M * K) * 4), *w = (float *)malloc((size_t)(N * K) * 4);
    float *c1 = (float *)malloc((size_t)(M * N) * 4), *c3 = (float *)malloc((size_t)(M * N) * 4), *cf = (float *)malloc((size_t)(M * N) * 4);
    sft_context *t1, *t3;
    uint64_t seed = (uint64_t)(M * 7 + N * 3 + K + trans);
    int64_t i, n, k, worst_sum = 0, worst_f32 = 0;
    double e_sum = 0, e_f32 = 0;
    for (i = 0; i < M * K; i++) a[i] = t_rand(&seed, -2.0f, 2.0f);
    for (i = 0; i < N * K; i++) w[i] = t_rand(&seed, -1.0f, 1.0f);
    t_set_cpu_path(path);
    t1 = t_context(1); t3 = t_context(3);
    t1->bf16_emulated = t3->bf16_emulated = emulated;
    /* trans: C = A W^T with W [N, K]; else C = A W with W [K, N] (same numbers, read as [K, N]) */
    CHECK_OK(sft__gemm_f32w(t1, M, sft__mat_of(a, K, 1), w, trans ? N : K, trans ? K : N, trans, 1, c1, N, 0));
    CHECK_OK(sft__gemm_f32w(t3, M, sft__mat_of(a, K, 1), w, trans ? N : K, trans ? K : N, trans, 1, c3, N, 0));
    CHECK_OK(sft__gemm_f32w(t1, M, sft__mat_of(a, K, 1), w, trans ? N : K, trans ? K : N, trans, 0, cf, N, 0));
    CHECK_SAME("bf16 GEMM, 1 vs 3 threads", c1, c3, M * N);
    for (i = 0; i < M; i++)
        for (n = 0; n < N; n++) {
            double ref = 0, mag = 0, d;
            for (k = 0; k < K; k++) {
                double p = t_bf16(a[i * K + k]) * t_bf16(trans ? w[n * K + k] : w[k * N + n]);
                ref += p; mag += fabs(p);
            }
            d = fabs((double)c1[i * N + n] - ref) / (mag * (double)K * ldexp(1.0, -23));
            if (d > e_sum) { e_sum = d; worst_sum = i * N + n; }
            d = fabs((double)c1[i * N + n] - (double)cf[i * N + n]) / (mag * ldexp(1.0, -7));
            if (d > e_f32) { e_f32 = d; worst_f32 = i * N + n; }
        }
    CHECK_MSG(e_sum <= 1.0, "%s%s %lldx%lldx%lld trans %d: element %lld is %.2f x the summation bound from the rounded products",
              sft_cpu_path_name(path), emulated ? " (rounded f32)" : "", (long long)M, (long long)N, (long long)K, trans,
              (long long)worst_sum, e_sum);
    CHECK_MSG(e_f32 <= 1.0, "%s: element %lld is %.2f x the bf16 bound from the f32 GEMM", sft_cpu_path_name(path),
              (long long)worst_f32, e_f32);
    sft_context_destroy(t1); sft_context_destroy(t3);
    t_set_cpu_path(SFT_CPU_AUTO);
    free(a); free(w); free(c1); free(c3); free(cf);
}

static void bf16_gemms_multiply_operands_rounded_to_bf16(void) {
    int path, emulated;
    for (path = SFT_CPU_PORTABLE; path < SFT_CPU_PATH_COUNT; path++) {
        if (!t_cpu_path_runnable((sft_cpu_path)path)) continue;
        for (emulated = 0; emulated < 2; emulated++) {
            if (emulated && !(path == SFT_CPU_AVX512 && sft__cpu.avx512_bf16)) continue;   /* only there it differs */
            t_bf16_case((sft_cpu_path)path, emulated, 37, 70, 301, 1);
            t_bf16_case((sft_cpu_path)path, emulated, 130, 45, 64, 0);
            t_bf16_case((sft_cpu_path)path, emulated, 13, 33, 7, 1);
        }
    }
    {   /* a 4-bit weight in bf16 = its dequantized dense weight in bf16, bit for bit */
        sft_context *ctx = t_context(2);
        int64_t shape[2] = {50, 96}, i;
        uint64_t seed = 5;
        sft_tensor *w = NULL, *deq = NULL;
        sft_qweight *q = NULL;
        float x[7 * 96], c4[7 * 50], cd[7 * 50];
        sft__wref ref;
        CHECK_OK(sft_tensor_create(ctx, SFT_F32, 2, shape, &w));
        for (i = 0; w && i < 50 * 96; i++) ((float *)w->data)[i] = t_rand(&seed, -1.0f, 1.0f);
        for (i = 0; i < 7 * 96; i++) x[i] = t_rand(&seed, -1.0f, 1.0f);
        if (w && sft_quantize(ctx, w, NULL, &q) == SFT_OK && sft_dequantize(ctx, q, &deq) == SFT_OK) {
            memset(&ref, 0, sizeof ref);
            ref.q = q; ref.N = 50; ref.K = 96; ref.bf16 = 1;
            CHECK_OK(sft__gemm_w(ctx, 7, sft__mat_of(x, 96, 1), &ref, 1, c4, 50, 0));
            CHECK_OK(sft__gemm_f32w(ctx, 7, sft__mat_of(x, 96, 1), (const float *)deq->data, 50, 96, 1, 1, cd, 50, 0));
            CHECK_SAME("nf4 in bf16 vs its dequantized weight in bf16", c4, cd, 7 * 50);
        } else CHECK_MSG(0, "quantize: %s", sft_last_error());
        sft_qweight_destroy(q);
        sft_tensor_destroy(w); sft_tensor_destroy(deq);
        sft_context_destroy(ctx);
    }
}

/* NFC against Python's unicodedata (Unicode 15.0 and 16.0 agree on these): composition, Hangul,
   reordering of marks, singletons, composition exclusions, leading marks. */
static void nfc_matches_unicodedata(void) {
    static const char *const cases[][2] = {
        {"\x65\xCC\x81", "\xC3\xA9"},
        {"\x41\xCC\x8A", "\xC3\x85"},
        {"\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8", "\xEA\xB0\x81"},
        {"\x61\xCC\x81\xCC\xA8", "\xC4\x85\xCC\x81"},
        {"\xE2\x84\xAB", "\xC3\x85"},
        {"\xE0\xA5\x98", "\xE0\xA4\x95\xE0\xA4\xBC"},
        {"\xE1\xBA\x9B\xCC\xA3", "\xE1\xBA\x9B\xCC\xA3"},
        {"\xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4", "\xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4"},
        {"\xCC\x81\x78", "\xCC\x81\x78"},
        {"\x6F\xCC\x88\xCC\x84", "\xC8\xAB"},
        {"\xC3\xA9\xCC\x81", "\xC3\xA9\xCC\x81"},
        {"\x63\x61\x66\xC3\xA9", "\x63\x61\x66\xC3\xA9"}};
    sft_context *ctx = t_context(1);
    sft_tokenizer *tok = (sft_tokenizer *)sft__calloc(ctx, 1, sizeof(sft_tokenizer));
    size_t i;
    sft__vec out;
    memset(&out, 0, sizeof out);
    out.elem = 1;
    tok->ctx = ctx;
    CHECK_OK(sft__nfc_tables(tok));
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK_OK(sft__nfc(tok, cases[i][0], strlen(cases[i][0]), &out));
        CHECK_MSG(out.len == strlen(cases[i][1]) && memcmp(out.p, cases[i][1], out.len) == 0, "case %zu: NFC differs", i);
    }
    sft__free(ctx, out.p);
    sft__pairmap_free(ctx, &tok->nfc_pairs);
    sft__free(ctx, tok);
    sft_context_destroy(ctx);
}

/* The heap merge (long words) and the rescanning merge (short words) agree. */
static void bpe_heap_merge_equals_scan_merge(void) {
    sft_context *ctx = t_context(1);
    sft_tokenizer *tok = NULL;
    uint64_t st = 5;
    int trial;
    CHECK_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/gpt2", &tok));
    for (trial = 0; tok && trial < 200; trial++) {
        int32_t a[600], b[600];
        size_t n = 2 + (size_t)t_rand(&st, 0, 598), i, na, nb = 0;
        for (i = 0; i < n; i++) {                 /* letters and the byte-level space, so merges fire */
            char c[3];
            int r = (int)t_rand(&st, 0, 30);
            size_t len = 1;
            if (r >= 26) { c[0] = (char)0xC4; c[1] = (char)0xA0; len = 2; }   /* U+0120, the space's stand-in */
            else c[0] = (char)('a' + r);
            a[i] = b[i] = sft__strmap_get(&tok->vocab, c, len);
        }
        na = sft__bpe_merge_scan(tok, a, n);
        nb = n;
        CHECK_OK(sft__bpe_merge_heap(tok, b, &nb));
        CHECK_MSG(na == nb && memcmp(a, b, na * sizeof(int32_t)) == 0, "trial %d (%zu symbols): %zu vs %zu ids", trial, n, na, nb);
    }
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
}

/* The nested 8-bit codes of double quantization, with the offset pinned to the
   fixture's (its last bits depend on the summation order of a mean), against
   bitsandbytes' CUDA rule (binary search with f32 midpoints) as the fixture
   writer re-did it; the nested scales bit for bit against bitsandbytes. */
static void double_quantization_codes_match_the_cuda_rule(void) {
    sft_context *ctx = t_context(1);
    sft_st_file *f = NULL;
    static const char *const cases[] = {"nf4_bs64_dq1_f32_130x257", "nf4_bs64_dq1_f32_37x129", "fp4_bs32_dq1_f32_37x129",
                                        "nf4_bs4096_dq1_f32_37x129", "nf4_bs64_dq1_bf16_37x129"};
    int c;
    CHECK_OK(sft_st_open(ctx, "tests/fixtures/quant/quant.safetensors", &f));
    for (c = 0; f && c < 5; c++) {
        char name[160];
        sft_tensor *in = NULL;
        sft_qweight *plain = NULL, *q = NULL;
        sft_quant_desc d;
        int64_t n_codes = 0, n_nested = 0;
        const uint8_t *want;
        const float *nested, *offset;
        snprintf(name, sizeof name, "%s.input", cases[c]);
        CHECK_OK(sft_st_load(ctx, f, name, &in));
        d.type = cases[c][0] == 'f' ? SFT_QUANT_FP4 : SFT_QUANT_NF4; d.blocksize = atoi(strstr(cases[c], "_bs") + 3); d.double_quant = 0;
        if (in) CHECK_OK(sft_quantize(ctx, in, &d, &plain));
        if (plain) CHECK_OK(sft__qweight_alloc(ctx, d.type, plain->rows, plain->cols, d.blocksize, 1, &q));
        snprintf(name, sizeof name, "%s.cuda_rule.absmax_q", cases[c]);
        want = (const uint8_t *)t_st_data(f, name, &n_codes);
        snprintf(name, sizeof name, "%s.nested_absmax", cases[c]);
        nested = (const float *)t_st_data(f, name, &n_nested);
        snprintf(name, sizeof name, "%s.nested_offset", cases[c]);
        offset = (const float *)t_st_data(f, name, NULL);
        if (q && want && nested && offset) {
            int64_t i;
            sft__double_quantize(q, plain->absmax, *offset);
            CHECK(n_codes == q->n_blocks);
            for (i = 0; i < n_codes && q->absmax_q[i] == want[i]; i++) {}
            CHECK_MSG(i == n_codes, "%s: code %lld is %u, the CUDA rule gives %u", cases[c], (long long)i, i < n_codes ? q->absmax_q[i] : 0,
                      i < n_codes ? want[i] : 0);
            CHECK_SAME(cases[c], q->nested_absmax, nested, n_nested);
        }
        sft_qweight_destroy(q); sft_qweight_destroy(plain); sft_tensor_destroy(in);
    }
    sft_st_close(f);
    sft_context_destroy(ctx);
}

/* The fused loss with Gemma's final soft cap equals logits -> sft_softcap ->
   sft_cross_entropy (whose pieces test_ops.c checks against finite
   differences): loss and both gradients, over two vocabulary chunks and many
   blocks of capped columns, with label smoothing, on every path. */
static void linear_cross_entropy_soft_caps_the_logits_on_every_path(void) {
    enum { N = 6500, V = 700, D = 16 };
    int path, fused, i;
    for (path = SFT_CPU_PORTABLE; path < SFT_CPU_PATH_COUNT; path++) {
        float loss[2] = {0, 0}, *dh[2], *dw[2];
        if (!t_cpu_path_runnable((sft_cpu_path)path)) continue;
        t_set_cpu_path((sft_cpu_path)path);
        for (fused = 0; fused < 2; fused++) {
            sft_context *ctx = t_context(2);
            int64_t hs[2] = {N, D}, ws[2] = {V, D}, ls[1] = {N};
            sft_tensor *h = NULL, *w = NULL, *y = NULL, *logits, *capped, *out = NULL;
            sft_ce_desc d;
            uint64_t seed = 41;
            memset(&d, 0, sizeof d);
            d.label_smoothing = 0.1f;
            CHECK_OK(sft_tensor_create(ctx, SFT_F32, 2, hs, &h));
            CHECK_OK(sft_tensor_create(ctx, SFT_F32, 2, ws, &w));
            CHECK_OK(sft_tensor_create(ctx, SFT_I32, 1, ls, &y));
            dh[fused] = (float *)calloc(N * D, sizeof(float)); dw[fused] = (float *)calloc(V * D, sizeof(float));
            if (!h || !w || !y) { sft_context_destroy(ctx); continue; }
            for (i = 0; i < N * D; i++) ((float *)h->data)[i] = t_rand(&seed, -1.0f, 1.0f);
            for (i = 0; i < V * D; i++) ((float *)w->data)[i] = t_rand(&seed, -1.0f, 1.0f);
            for (i = 0; i < N; i++) ((int32_t *)y->data)[i] = i % 7 == 0 ? -100 : (int32_t)((i * 7919) % V);
            sft_tensor_set_requires_grad(h, 1); sft_tensor_set_requires_grad(w, 1);
            sft_step_begin(ctx);
            if (fused) CHECK_OK(sft__linear_cross_entropy_ex(ctx, h, w, y, &d, 0, 1.5f, NULL, &out));
            else {
                CHECK_OK(sft_matmul(ctx, h, w, 0, 1, &logits));
                CHECK_OK(sft_softcap(ctx, logits, 1.5f, &capped));
                CHECK_OK(sft_cross_entropy(ctx, capped, y, &d, &out));
            }
            if (out) {
                CHECK_OK(sft_backward(ctx, out));
                loss[fused] = ((float *)out->data)[0];
                memcpy(dh[fused], h->grad->data, N * D * sizeof(float));
                memcpy(dw[fused], w->grad->data, V * D * sizeof(float));
            }
            sft_tensor_destroy(h); sft_tensor_destroy(w); sft_tensor_destroy(y);
            sft_context_destroy(ctx);
        }
        CHECK_MSG(fabsf(loss[1] - loss[0]) <= 1e-5f * fabsf(loss[0]) && loss[0] > 0.0f, "%s: fused %.9g, unfused %.9g",
                  sft_cpu_path_name((sft_cpu_path)path), loss[1], loss[0]);
        CHECK_REL("d hidden, fused vs unfused", dh[1], dh[0], N * D, 1e-4);
        CHECK_REL("d weight, fused vs unfused", dw[1], dw[0], V * D, 1e-4);
        free(dh[0]); free(dh[1]); free(dw[0]); free(dw[1]);
    }
    t_set_cpu_path(SFT_CPU_AUTO);
}

static void suite_internals(void) {
    RUN(double_quantization_codes_match_the_cuda_rule);
    RUN(bpe_heap_merge_equals_scan_merge);
    RUN(exp_shift_is_within_2_ulp_of_expf_on_every_path);
    RUN(dropout_masks_follow_the_definition_on_every_path);
    RUN(bf16_gemms_multiply_operands_rounded_to_bf16);
    RUN(linear_cross_entropy_soft_caps_the_logits_on_every_path);
    RUN(nfc_matches_unicodedata);
}

int main(int argc, char **argv) {
    int path;
    if (!t_begin(argc, argv)) return 2;
    printf("core\n");        suite_core();
    printf("json\n");        suite_json();
    printf("safetensors\n"); suite_safetensors();
    printf("tensor\n");      suite_tensor();
    printf("tokenizer\n");   suite_tokenizer();
    printf("quant\n");       suite_quant();
    printf("lora\n");        suite_lora();
    printf("model\n");       suite_model();
    printf("archs\n");       suite_archs();
    printf("data\n");        suite_data();
    printf("templates\n");   suite_templates();
    printf("trainer\n");     suite_trainer();
    printf("checkpoint\n");  suite_checkpoint();
    printf("cli\n");         suite_cli();
    printf("harden\n");      suite_harden();
    printf("gguf\n");        suite_gguf();
    printf("parallel\n");    suite_parallel();
    printf("callbacks\n");   suite_callbacks();
    printf("optim\n");       suite_optim();
    printf("prompt\n");      suite_prompt();
    printf("ptuning\n");     suite_ptuning();
    printf("stream\n");      suite_stream();
    /* the kernel and op suites run once on every CPU path this machine has */
    for (path = SFT_CPU_PORTABLE; path < SFT_CPU_PATH_COUNT; path++) {
        if (!t_cpu_path_runnable((sft_cpu_path)path)) {
            printf("ops, autograd [%s]: not on this machine or build, skipped\n", sft_cpu_path_name((sft_cpu_path)path));
            continue;
        }
        t_set_cpu_path((sft_cpu_path)path);
        printf("ops [%s]\n", sft_cpu_path_name((sft_cpu_path)path));      suite_ops();
        printf("autograd [%s]\n", sft_cpu_path_name((sft_cpu_path)path)); suite_autograd();
    }
    t_set_cpu_path(SFT_CPU_AUTO);
    printf("paths\n");       suite_paths();
    printf("internals\n");   suite_internals();
    return t_end();
}
