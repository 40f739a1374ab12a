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

static void suite_internals(void) {
    RUN(double_quantization_codes_match_the_cuda_rule);
    RUN(bpe_heap_merge_equals_scan_merge);
    RUN(exp_shift_is_within_2_ulp_of_expf_on_every_path);
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
