/* test_lora.c - LoRA, rsLoRA, DoRA, two adapters, mixed batches and merging on
   4-bit and dense bases against PEFT (fixtures by tools/make_peft_fixtures.py:
   outputs and the gradients of x, A, B and the DoRA magnitude for the loss
   sum(y * g), dropout masks replayed), plus the layer's own rules: init, adapter
   management, disable/merge state, bad input; and the prompt-tuning op. */
#include "test.h"

#define T_PFIX "tests/fixtures/peft/"
#define T_TOL 1e-5

static sft_json *t_peft_cases(sft_context *ctx, sft_st_file **f) {
    CHECK_OK(sft_st_open(ctx, T_PFIX "peft.safetensors", f));
    return t_json_file(ctx, T_PFIX "cases.json");
}

static const float *t_pf(const sft_st_file *f, const char *a, const char *b, int64_t *n) {
    char name[400];
    snprintf(name, sizeof name, "%s%s%s", a, b ? "." : "", b ? b : "");
    return (const float *)t_st_data(f, name, n);
}

/* the 4-bit bases as PEFT's fixture stored them */
static sft_qweight *t_base_q(sft_context *ctx, const sft_st_file *f, int fp4) {
    sft_qweight_data d;
    sft_qweight *w = NULL;
    int64_t n;
    const char *p = fp4 ? "base_fp4" : "base_nf4";
    memset(&d, 0, sizeof d);
    d.type = fp4 ? SFT_QUANT_FP4 : SFT_QUANT_NF4; d.rows = 80; d.cols = 96; d.blocksize = fp4 ? 128 : 64;
    d.data = (const uint8_t *)t_pf(f, p, "packed", &n); d.data_bytes = (size_t)n;
    d.code = t_pf(f, p, "code", &n); d.code_len = (int)n;
    if (fp4) d.absmax = t_pf(f, p, "absmax", &d.n_absmax);
    else {
        d.absmax_q = (const uint8_t *)t_pf(f, p, "absmax_q", &d.n_absmax_q);
        d.nested_absmax = t_pf(f, p, "nested_absmax", &d.n_nested_absmax);
        d.nested_offset = *t_pf(f, p, "nested_offset", NULL);
        d.nested_code = t_pf(f, p, "nested_code", &n); d.nested_code_len = (int)n;
    }
    CHECK_OK(sft_qweight_from_data(ctx, &d, &w));
    return w;
}

static sft_tensor *t_tensor_from(sft_context *ctx, const float *data, int ndim, int64_t d0, int64_t d1, int64_t d2) {
    int64_t shape[3];
    sft_tensor *t = NULL;
    shape[0] = d0; shape[1] = d1; shape[2] = d2;
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, ndim, shape, &t));
    if (t && data) memcpy(t->data, data, sft_tensor_nbytes(t));
    return t;
}

/* the layer of a case: its base and bias (owned by the layer) */
static sft_linear *t_layer(sft_context *ctx, const sft_st_file *f, const char *base) {
    sft_linear_desc d;
    sft_linear *lin = NULL;
    memset(&d, 0, sizeof d);
    if (strcmp(base, "dense") == 0) d.weight = t_tensor_from(ctx, t_pf(f, "base_dense.weight", NULL, NULL), 2, 80, 96, 0);
    else d.qweight = t_base_q(ctx, f, strcmp(base, "fp4") == 0);
    d.bias = t_tensor_from(ctx, t_pf(f, "base.bias", NULL, NULL), 1, 80, 0, 0);
    CHECK_OK(sft_linear_create(ctx, &d, &lin));
    return lin;
}

static void t_check(const sft_st_file *f, const char *cs, const char *what, const sft_tensor *got) {
    char name[400];
    int64_t n = 0;
    const float *want;
    snprintf(name, sizeof name, "%s.%s", cs, what);
    want = (const float *)t_st_data(f, name, &n);
    if (!got) { t_failf(__FILE__, __LINE__, "%s: no result", name); return; }
    if (want) {
        CHECK_MSG(n == sft_tensor_numel(got), "%s: %lld values, fixture %lld", name, (long long)sft_tensor_numel(got), (long long)n);
        if (n == sft_tensor_numel(got)) CHECK_REL(name, (const float *)got->data, want, n, T_TOL);
    }
}

/* One fixture case: build the layer, load the adapters' weights, forward with
   the case's mode, mask and routing, backward, compare everything stored. */
static void t_peft_case(sft_context *ctx, const sft_st_file *f, const sft_json *c) {
    const char *cs = sft_json_get(c, "name")->string, *base = sft_json_get(c, "base")->string;
    const sft_json *ads = sft_json_get(c, "adapters"), *names = sft_json_get(c, "adapter_names"), *tr = sft_json_get(c, "training");
    int mixed = names && names->type == SFT_JSON_ARRAY, multi = ads && ads->length > 1;
    sft_linear *lin = t_layer(ctx, f, base);
    sft_tensor *x = t_tensor_from(ctx, t_pf(f, mixed ? "x3" : "x", NULL, NULL), 3, mixed ? 3 : 2, 5, 96);
    sft_tensor *g = t_tensor_from(ctx, t_pf(f, mixed ? "g3" : "g", NULL, NULL), 3, mixed ? 3 : 2, 5, 80);
    sft_tensor *mask = NULL, *y = NULL, *loss = NULL;
    const char *active[8], *routes[8];
    sft_linear_call call;
    char key[160];
    size_t i;
    if (!lin || !x || !g) goto done;
    for (i = 0; ads && i < ads->length; i++) {
        const sft_json *a = &ads->items[i];
        const char *an = sft_json_get(a, "name")->string;
        sft_lora_desc d;
        sft_lora_weights w;
        memset(&d, 0, sizeof d);
        d.r = (int)sft_json_get(a, "r")->number; d.alpha = (float)sft_json_get(a, "lora_alpha")->number;
        d.dropout = (float)sft_json_get(a, "lora_dropout")->number;
        d.use_rslora = sft_json_get(a, "use_rslora")->type == SFT_JSON_TRUE;
        d.use_dora = sft_json_get(a, "use_dora")->type == SFT_JSON_TRUE;
        CHECK_OK(sft_linear_add_adapter(lin, an, &d));
        if (sft_linear_adapter_weights(lin, an, &w) != SFT_OK) continue;
        CHECK_MSG(fabs(w.scaling - sft_json_get(a, "scaling")->number) <= 1e-6 * fabs(w.scaling), "%s: scaling %g", cs, w.scaling);
        snprintf(key, sizeof key, "%s%s%s", cs, multi ? "." : "", multi ? an : "");
        memcpy(w.A->data, t_pf(f, key, "A", NULL), sft_tensor_nbytes(w.A));
        memcpy(w.B->data, t_pf(f, key, "B", NULL), sft_tensor_nbytes(w.B));
        if (w.magnitude) t_check(f, key, "magnitude", w.magnitude);    /* PEFT's init: the row norms of W */
        if (w.magnitude) memcpy(w.magnitude->data, t_pf(f, key, "magnitude", NULL), sft_tensor_nbytes(w.magnitude));
        active[i] = an;
    }
    if (ads && ads->length) CHECK_OK(sft_linear_set_active(lin, active, (int)ads->length));
    memset(&call, 0, sizeof call);
    call.training = tr && tr->type == SFT_JSON_TRUE;
    snprintf(key, sizeof key, "%s.dropout_mask", cs);
    if (sft_st_find(f, key)) {
        mask = t_tensor_from(ctx, t_pf(f, key, NULL, NULL), 3, 2, 5, 96);
        call.dropout_mask = mask;
    }
    for (i = 0; mixed && i < names->length; i++) routes[i] = names->items[i].string;
    if (mixed) { call.adapter_names = routes; call.n_adapter_names = (int)names->length; }
    sft_tensor_set_requires_grad(x, 1);
    sft_step_begin(ctx);
    if (strncmp(cs, "linear4bit", 10) == 0) CHECK_OK(sft_linear4bit(ctx, x, sft_linear_base_qweight(lin), NULL, &y));
    else CHECK_OK(sft_linear_forward(ctx, lin, x, &call, &y));
    if (y && strncmp(cs, "linear4bit", 10) == 0) {       /* the fixture's Linear4bit has the bias: add it */
        sft_tensor *yb = NULL, *bias = t_tensor_from(ctx, t_pf(f, "base.bias", NULL, NULL), 1, 80, 0, 0);
        CHECK_OK(sft_add(ctx, y, bias, &yb));
        y = yb;
        loss = y ? t_sum_product(ctx, y, g) : NULL;
        if (loss) CHECK_OK(sft_backward(ctx, loss));
        sft_tensor_destroy(bias);
    } else if (y) {
        loss = t_sum_product(ctx, y, g);
        if (loss) CHECK_OK(sft_backward(ctx, loss));
    }
    t_check(f, cs, "y", y);
    t_check(f, cs, "dx", x->grad);
    for (i = 0; ads && i < ads->length; i++) {
        const char *an = sft_json_get(&ads->items[i], "name")->string;
        sft_lora_weights w;
        if (sft_linear_adapter_weights(lin, an, &w) != SFT_OK) continue;
        snprintf(key, sizeof key, "%s%s%s", cs, multi ? "." : "", multi ? an : "");
        t_check(f, key, "dA", w.A->grad);
        t_check(f, key, "dB", w.B->grad);
        if (w.magnitude) t_check(f, key, "dmagnitude", w.magnitude->grad);
    }
done:
    sft_tensor_destroy(mask); sft_tensor_destroy(x); sft_tensor_destroy(g);
    sft_linear_destroy(lin);
}

static void outputs_and_gradients_match_peft(void) {
    sft_context *ctx = t_context(2);
    sft_st_file *f = NULL;
    sft_json *j = t_peft_cases(ctx, &f);
    const sft_json *cases = j ? sft_json_get(j, "cases") : NULL;
    size_t c;
    CHECK(cases && cases->length >= 16);
    for (c = 0; f && cases && c < cases->length; c++) t_peft_case(ctx, f, &cases->items[c]);
    sft_json_free(j);
    sft_st_close(f);
    sft_context_destroy(ctx);
}

/* a layer of the case's base with its one adapter's fixture weights */
static sft_linear *t_case_layer(sft_context *ctx, const sft_st_file *f, const char *cs, const char *base, int r, float alpha,
                                int dora) {
    sft_linear *lin = t_layer(ctx, f, base);
    sft_lora_desc d;
    sft_lora_weights w;
    memset(&d, 0, sizeof d);
    d.r = r; d.alpha = alpha; d.use_dora = dora;
    if (!lin) return NULL;
    CHECK_OK(sft_linear_add_adapter(lin, "default", &d));
    if (sft_linear_adapter_weights(lin, "default", &w) == SFT_OK) {
        memcpy(w.A->data, t_pf(f, cs, "A", NULL), sft_tensor_nbytes(w.A));
        memcpy(w.B->data, t_pf(f, cs, "B", NULL), sft_tensor_nbytes(w.B));
        if (w.magnitude) memcpy(w.magnitude->data, t_pf(f, cs, "magnitude", NULL), sft_tensor_nbytes(w.magnitude));
    }
    return lin;
}

/* the base weight as f32 values now (dequantized when 4-bit) */
static sft_tensor *t_base_now(sft_context *ctx, const sft_linear *lin) {
    sft_tensor *w = NULL;
    if (sft_linear_base_qweight(lin)) CHECK_OK(sft_dequantize(ctx, sft_linear_base_qweight(lin), &w));
    else CHECK_OK(sft_tensor_convert(ctx, sft_linear_base_weight(lin), SFT_F32, &w));
    return w;
}

/* Merging into a 4-bit base quantizes W + s B A again. Codes: a value can land
   on the other side of a decision threshold when our f32 sum and PEFT's differ in
   the last bit, so up to 0.1% of the nibbles may differ; the rest are equal.
   Values: the double-quantization offset is a mean whose last bits depend on
   the order of summation, so the dequantized values are compared to 1e-5 of
   the largest, away from those flipped codes. */
static void t_check_requantized(const sft_st_file *f, const char *cs, const char *stage, const sft_qweight *q, const sft_tensor *got) {
    char name[200];
    int64_t n = 0, i, flips = 0, nb = 0;
    const float *want;
    const uint8_t *packed;
    double maxw = 0.0, maxd = 0.0;
    snprintf(name, sizeof name, "%s.%s.packed", cs, stage);
    packed = (const uint8_t *)t_st_data(f, name, &nb);
    snprintf(name, sizeof name, "%s.%s.dequant", cs, stage);
    want = (const float *)t_st_data(f, name, &n);
    if (!want || !packed || !q || !got || n != sft_tensor_numel(got) || nb != (n + 1) / 2) {
        t_failf(__FILE__, __LINE__, "%s: missing or wrong size", name);
        return;
    }
    for (i = 0; i < n; i++) {
        unsigned a = (q->data[i >> 1] >> ((i & 1) ? 0 : 4)) & 15u, b = (packed[i >> 1] >> ((i & 1) ? 0 : 4)) & 15u;
        double d = fabs((double)((const float *)got->data)[i] - want[i]);
        if (fabs(want[i]) > maxw) maxw = fabs(want[i]);
        if (a != b) { flips++; continue; }
        if (d > maxd) maxd = d;
    }
    CHECK_MSG(flips * 1000 <= n, "%s: %lld of %lld codes differ from PEFT's", name, (long long)flips, (long long)n);
    CHECK_MSG(maxd <= T_TOL * maxw, "%s: values differ by %.3g of the largest", name, maxd / maxw);
}

static void merge_and_unmerge_match_peft(void) {
    static const struct { const char *cs, *base; int r; float alpha; int dora; } cases[] = {
        {"lora_dense", "dense", 8, 16.0f, 0}, {"dora_dense", "dense", 4, 8.0f, 1},
        {"lora_nf4", "nf4", 8, 16.0f, 0}, {"dora_nf4", "nf4", 4, 8.0f, 1}};
    sft_context *ctx = t_context(2);
    sft_st_file *f = NULL;
    int c;
    char name[200];
    CHECK_OK(sft_st_open(ctx, T_PFIX "peft.safetensors", &f));
    for (c = 0; f && c < 4; c++) {
        sft_linear *lin = t_case_layer(ctx, f, cases[c].cs, cases[c].base, cases[c].r, cases[c].alpha, cases[c].dora);
        sft_tensor *w;
        int dense = strcmp(cases[c].base, "dense") == 0;
        if (!lin) continue;
        CHECK_OK(sft_linear_merge(lin, NULL, 0));
        w = t_base_now(ctx, lin);
        if (dense) t_check(f, cases[c].cs, "merged_weight", w);
        else t_check_requantized(f, cases[c].cs, "merged", sft_linear_base_qweight(lin), w);
        sft_tensor_destroy(w);
        CHECK_OK(sft_linear_unmerge(lin));
        w = t_base_now(ctx, lin);
        snprintf(name, sizeof name, "%s.unmerged.dequant", cases[c].cs);
        if (dense) t_check(f, cases[c].cs, "unmerged_weight", w);
        else if (sft_st_find(f, name)) t_check_requantized(f, cases[c].cs, "unmerged", sft_linear_base_qweight(lin), w);
        sft_tensor_destroy(w);
        sft_linear_destroy(lin);
    }
    sft_st_close(f);
    sft_context_destroy(ctx);
}

static sft_linear *t_random_layer(sft_context *ctx, int64_t out, int64_t in, int quant, int bf16) {
    int64_t shape[2], i;
    uint64_t seed = 11;
    sft_tensor *w = NULL, *w2 = NULL;
    sft_linear_desc d;
    sft_linear *lin = NULL;
    shape[0] = out; shape[1] = in;
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, 2, shape, &w));
    if (!w) return NULL;
    for (i = 0; i < out * in; i++) ((float *)w->data)[i] = t_rand(&seed, -0.2f, 0.2f);
    memset(&d, 0, sizeof d);
    if (quant) { CHECK_OK(sft_quantize(ctx, w, NULL, &d.qweight)); sft_tensor_destroy(w); }
    else if (bf16) { CHECK_OK(sft_tensor_convert(ctx, w, SFT_BF16, &w2)); sft_tensor_destroy(w); d.weight = w2; }
    else d.weight = w;
    CHECK_OK(sft_linear_create(ctx, &d, &lin));
    return lin;
}

/* kaiming-uniform(a = sqrt 5) keeps A inside +-1/sqrt(in) with a uniform spread
   (variance bound^2 / 3); "gaussian" has std 1/r; B starts at zero, so a new
   adapter leaves the output unchanged. */
static void a_new_adapter_is_initialised_as_peft_does(void) {
    sft_context *ctx = t_context(1);
    sft_linear *lin = t_random_layer(ctx, 64, 400, 1, 0);
    sft_lora_desc d;
    sft_lora_weights w;
    int64_t i, n;
    double bound = 1.0 / sqrt(400.0), mean = 0, var = 0, maxabs = 0;
    memset(&d, 0, sizeof d);
    d.r = 16; d.seed = 5;
    CHECK_OK(sft_linear_add_adapter(lin, "k", &d));
    if (sft_linear_adapter_weights(lin, "k", &w) == SFT_OK) {
        n = sft_tensor_numel(w.A);
        for (i = 0; i < n; i++) { double v = ((float *)w.A->data)[i]; mean += v; var += v * v; if (fabs(v) > maxabs) maxabs = fabs(v); }
        mean /= (double)n; var = var / (double)n - mean * mean;
        CHECK_MSG(maxabs <= bound && maxabs > 0.98 * bound, "kaiming: max |A| %g, bound %g", maxabs, bound);
        CHECK_MSG(fabs(var - bound * bound / 3.0) < 0.05 * bound * bound / 3.0, "kaiming: variance %g, want %g", var, bound * bound / 3);
        for (i = 0; i < sft_tensor_numel(w.B); i++) CHECK(((float *)w.B->data)[i] == 0.0f);
        CHECK(w.r == 16 && w.scaling == 0.5f && w.magnitude == NULL && w.A->requires_grad && w.B->requires_grad);
    }
    d.init = SFT_LORA_INIT_GAUSSIAN; d.r = 8; d.seed = 6;
    CHECK_OK(sft_linear_add_adapter(lin, "g", &d));
    if (sft_linear_adapter_weights(lin, "g", &w) == SFT_OK) {
        n = sft_tensor_numel(w.A); mean = var = 0;
        for (i = 0; i < n; i++) { double v = ((float *)w.A->data)[i]; mean += v; var += v * v; }
        mean /= (double)n; var = var / (double)n - mean * mean;
        CHECK_MSG(fabs(sqrt(var) - 1.0 / 8) < 0.03 / 8 && fabs(mean) < 0.03 / 8, "gaussian: std %g mean %g, want std 1/8", sqrt(var), mean);
    }
    d.init = SFT_LORA_INIT_KAIMING; d.r = 8; d.alpha = 16; d.use_rslora = 1; d.seed = 5;
    CHECK_OK(sft_linear_add_adapter(lin, "rs", &d));
    if (sft_linear_adapter_weights(lin, "rs", &w) == SFT_OK) CHECK(w.scaling == (float)(16.0 / sqrt(8.0)));
    sft_linear_destroy(lin);
    sft_context_destroy(ctx);
}

/* y of lin on x with the given call (NULL = eval), copied out */
static float *t_forward(sft_context *ctx, sft_linear *lin, sft_tensor *x, const sft_linear_call *call) {
    sft_tensor *y = NULL;
    float *c = NULL;
    sft_step_begin(ctx);
    CHECK_OK(sft_linear_forward(ctx, lin, x, call, &y));
    if (y) { c = (float *)malloc(sft_tensor_nbytes(y)); memcpy(c, y->data, sft_tensor_nbytes(y)); }
    return c;
}

static float *t_copy_data(const sft_tensor *t, int64_t *n) {
    float *c = (float *)malloc(sft_tensor_nbytes(t));
    memcpy(c, t->data, sft_tensor_nbytes(t));
    *n = sft_tensor_numel(t);
    return c;
}

static sft_tensor *t_random_x(sft_context *ctx, int64_t b, int64_t t, int64_t k, uint64_t seed) {
    int64_t shape[3], i;
    sft_tensor *x = NULL;
    shape[0] = b; shape[1] = t; shape[2] = k;
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, 3, shape, &x));
    for (i = 0; x && i < b * t * k; i++) ((float *)x->data)[i] = t_rand(&seed, -1.0f, 1.0f);
    return x;
}

static void t_randomise_B(sft_linear *lin, const char *name, uint64_t seed) {
    sft_lora_weights w;
    int64_t i;
    if (sft_linear_adapter_weights(lin, name, &w) != SFT_OK) return;
    for (i = 0; i < sft_tensor_numel(w.B); i++) ((float *)w.B->data)[i] = t_rand(&seed, -0.1f, 0.1f);
}

/* Disabled adapters give the base output; enabling gives the adapter's back;
   merging a dense f32 layer gives the same output to rounding; a layer with
   adapters merged runs its base only; disabling unmerges first. */
static void disable_merge_and_unmerge_keep_the_outputs(void) {
    sft_context *ctx = t_context(2);
    sft_linear *lin = t_random_layer(ctx, 48, 40, 0, 0);
    sft_tensor *x = t_random_x(ctx, 2, 3, 40, 9);
    sft_tensor *orig = NULL;
    float *base, *with, *off, *merged, *back;
    int64_t n = 2 * 3 * 48;
    CHECK_OK(sft_tensor_convert(ctx, sft_linear_base_weight(lin), SFT_F32, &orig));
    base = t_forward(ctx, lin, x, NULL);
    CHECK_OK(sft_linear_add_adapter(lin, "a", NULL));
    t_randomise_B(lin, "a", 3);
    with = t_forward(ctx, lin, x, NULL);
    CHECK_OK(sft_linear_set_adapters_enabled(lin, 0));
    off = t_forward(ctx, lin, x, NULL);
    CHECK_OK(sft_linear_set_adapters_enabled(lin, 1));
    CHECK_OK(sft_linear_merge(lin, NULL, 0));
    merged = t_forward(ctx, lin, x, NULL);
    CHECK_OK(sft_linear_merge(lin, NULL, 0));              /* merging twice does nothing more */
    CHECK_OK(sft_linear_set_adapters_enabled(lin, 0));     /* unmerges */
    back = t_forward(ctx, lin, x, NULL);
    CHECK_OK(sft_linear_merge(lin, NULL, 0));              /* merged while disabled: forward unmerges, as PEFT */
    free(off);
    off = t_forward(ctx, lin, x, NULL);
    if (base && with && off && merged && back) {
        int64_t i, differ = 0;
        for (i = 0; i < n; i++) differ += with[i] != base[i];
        CHECK_MSG(differ > n / 2, "the adapter changed only %lld of %lld outputs", (long long)differ, (long long)n);
        CHECK_REL("disabled (merged while disabled)", off, base, n, 1e-6);
        CHECK_REL("merged", merged, with, n, 1e-6);
        CHECK_REL("disabled after merge", back, base, n, 1e-6);
    }
    if (orig) CHECK_REL("weight after unmerge", (const float *)sft_linear_base_weight(lin)->data, (const float *)orig->data, 48 * 40, 1e-6);
    free(base); free(with); free(off); free(merged); free(back);
    sft_tensor_destroy(orig); sft_tensor_destroy(x);
    sft_linear_destroy(lin);
    sft_context_destroy(ctx);
}

/* A bf16 base is widened in the panels: the same bits as an f32 base holding
   the bf16 values (on the same CPU path). Merging rounds the sum back to bf16. */
static void a_bf16_base_computes_as_its_f32_widening(void) {
    sft_context *ctx = t_context(2);
    CHECK_OK(sft_cpu_path_set(ctx, sft_cpu_path_get(ctx)));   /* our GEMMs for both, also under SFT_USE_CBLAS */
    sft_linear *l16 = t_random_layer(ctx, 30, 70, 0, 1), *l32 = NULL;
    sft_tensor *x = t_random_x(ctx, 3, 4, 70, 4), *w32 = NULL;
    sft_linear_desc d;
    float *a = NULL, *b = NULL;
    if (l16) CHECK_OK(sft_tensor_convert(ctx, sft_linear_base_weight(l16), SFT_F32, &w32));
    memset(&d, 0, sizeof d);
    d.weight = w32;
    if (w32) CHECK_OK(sft_linear_create(ctx, &d, &l32));
    if (l16 && l32) {
        sft_lora_desc ld;
        memset(&ld, 0, sizeof ld);
        ld.seed = 3;
        CHECK_OK(sft_linear_add_adapter(l16, "a", &ld)); CHECK_OK(sft_linear_add_adapter(l32, "a", &ld));
        t_randomise_B(l16, "a", 8); t_randomise_B(l32, "a", 8);
        a = t_forward(ctx, l16, x, NULL); b = t_forward(ctx, l32, x, NULL);
        if (a && b) CHECK_SAME("bf16 vs f32 base", a, b, 3 * 4 * 30);
        CHECK_OK(sft_linear_merge(l16, NULL, 0));
        CHECK(sft_linear_base_weight(l16)->dtype == SFT_BF16);
    }
    free(a); free(b);
    sft_tensor_destroy(x);
    sft_linear_destroy(l16); sft_linear_destroy(l32);
    sft_context_destroy(ctx);
}

/* Dropout touches only the adapter's input: with B = 0 training mode changes
   nothing; with the same seed the mask repeats, with another it changes; eval
   mode ignores it. */
static void lora_dropout_applies_to_adapter_input_only(void) {
    sft_context *ctx = t_context(2);
    sft_linear *lin = t_random_layer(ctx, 24, 32, 1, 0);
    sft_tensor *x = t_random_x(ctx, 2, 5, 32, 2);
    sft_lora_desc d;
    sft_linear_call tr;
    float *eval0, *train0, *eval1, *t1, *t1b, *t2;
    int64_t n = 2 * 5 * 24;
    memset(&d, 0, sizeof d);
    d.dropout = 0.5f;
    CHECK_OK(sft_linear_add_adapter(lin, "a", &d));
    memset(&tr, 0, sizeof tr);
    tr.training = 1; tr.dropout_seed = 1;
    eval0 = t_forward(ctx, lin, x, NULL); train0 = t_forward(ctx, lin, x, &tr);
    t_randomise_B(lin, "a", 5);
    eval1 = t_forward(ctx, lin, x, NULL); t1 = t_forward(ctx, lin, x, &tr); t1b = t_forward(ctx, lin, x, &tr);
    tr.dropout_seed = 2;
    t2 = t_forward(ctx, lin, x, &tr);
    if (eval0 && train0 && eval1 && t1 && t1b && t2) {
        CHECK_SAME("B = 0: training = eval", train0, eval0, n);
        CHECK_SAME("same seed, same mask", t1, t1b, n);
        CHECK_MSG(memcmp(t1, t2, (size_t)n * 4) != 0, "another seed gave the same output");
        CHECK_MSG(memcmp(t1, eval1, (size_t)n * 4) != 0, "dropout changed nothing");
    }
    free(eval0); free(train0); free(eval1); free(t1); free(t1b); free(t2);
    sft_tensor_destroy(x);
    sft_linear_destroy(lin);
    sft_context_destroy(ctx);
}

static void bad_adapter_input_is_refused(void) {
    sft_context *ctx = t_context(1);
    sft_linear *lin = t_random_layer(ctx, 8, 16, 1, 0);
    sft_tensor *x = t_random_x(ctx, 2, 3, 16, 1), *bad_x = t_random_x(ctx, 2, 3, 15, 1), *y = NULL;
    sft_lora_desc d;
    sft_linear_call call;
    const char *names[3] = {"a", "nope", "__base__"}, *one = "zzz";
    sft_linear_desc ld;
    memset(&d, 0, sizeof d);
    d.r = -1;
    CHECK_STATUS(sft_linear_add_adapter(lin, "a", &d), SFT_ERR_ARG); CHECK_ERROR_MENTIONS("r = -1");
    d.r = 4; d.alpha = -2.0f;
    CHECK_STATUS(sft_linear_add_adapter(lin, "a", &d), SFT_ERR_ARG); CHECK_ERROR_MENTIONS("lora_alpha");
    d.alpha = NAN;
    CHECK_STATUS(sft_linear_add_adapter(lin, "a", &d), SFT_ERR_ARG);
    d.alpha = 8; d.dropout = 1.0f;
    CHECK_STATUS(sft_linear_add_adapter(lin, "a", &d), SFT_ERR_ARG); CHECK_ERROR_MENTIONS("lora_dropout");
    d.dropout = 0;
    CHECK_STATUS(sft_linear_add_adapter(lin, "__base__", &d), SFT_ERR_ARG);
    CHECK_OK(sft_linear_add_adapter(lin, "a", &d));
    CHECK_STATUS(sft_linear_add_adapter(lin, "a", &d), SFT_ERR_ARG); CHECK_ERROR_MENTIONS("exists");
    CHECK_STATUS(sft_linear_set_active(lin, &one, 1), SFT_ERR_NOT_FOUND); CHECK_ERROR_MENTIONS("zzz");
    CHECK_STATUS(sft_linear_merge(lin, &one, 1), SFT_ERR_NOT_FOUND);
    CHECK_STATUS(sft_linear_forward(ctx, lin, bad_x, NULL, &y), SFT_ERR_SHAPE); CHECK_ERROR_MENTIONS("in_features");
    memset(&call, 0, sizeof call);
    call.adapter_names = names; call.n_adapter_names = 1;
    CHECK_STATUS(sft_linear_forward(ctx, lin, x, &call, &y), SFT_ERR_SHAPE); CHECK_ERROR_MENTIONS("1 adapter_names for 2 samples");
    call.n_adapter_names = 2;
    CHECK_STATUS(sft_linear_forward(ctx, lin, x, &call, &y), SFT_ERR_NOT_FOUND); CHECK_ERROR_MENTIONS("nope");
    d.use_dora = 1;
    CHECK_OK(sft_linear_add_adapter(lin, "d", &d));
    names[1] = "d";
    CHECK_STATUS(sft_linear_forward(ctx, lin, x, &call, &y), SFT_ERR_UNSUPPORTED); CHECK_ERROR_MENTIONS("DoRA");
    CHECK(y == NULL);
    memset(&ld, 0, sizeof ld);
    {
        sft_linear *none = NULL;
        sft_tensor *empty = NULL, *y2 = NULL;
        int64_t shape[2] = {4, 0};
        sft_prompt_batch pb;
        CHECK_STATUS(sft_linear_create(ctx, &ld, &none), SFT_ERR_ARG);
        CHECK_OK(sft_tensor_create(ctx, SFT_F32, 2, shape, &empty));
        ld.weight = empty;
        CHECK_STATUS(sft_linear_create(ctx, &ld, &none), SFT_ERR_SHAPE); CHECK_ERROR_MENTIONS("[out, in]");
        CHECK(none == NULL);
        sft_tensor_destroy(empty);
        CHECK_STATUS(sft_prompt_prepend(ctx, x, NULL, NULL, NULL, &pb), SFT_ERR_ARG);
        CHECK_STATUS(sft_matmul(ctx, NULL, x, 0, 0, &y2), SFT_ERR_ARG);
    }
    sft_tensor_destroy(x); sft_tensor_destroy(bad_x);
    sft_linear_destroy(lin);
    sft_context_destroy(ctx);
}

/* Prompt tuning: [prompts; embeds] per sample, mask with a prefix of ones, labels
   with a prefix of -100, positions 0.. P+T-1; the prompts' gradient sums over
   the batch and the input's is its own slice. */
static void prompt_tuning_prepends_virtual_tokens(void) {
    sft_context *ctx = t_context(1);
    sft_tensor *prompts = NULL, *e = t_random_x(ctx, 2, 3, 4, 3), *mask = NULL, *labels = NULL, *g = t_random_x(ctx, 2, 5, 4, 4);
    sft_prompt_batch out;
    int64_t shape[2] = {2, 3}, b, t, k;
    CHECK_OK(sft_prompt_embeddings_create(ctx, 2, 4, 7, &prompts));
    CHECK_OK(sft_tensor_create(ctx, SFT_I32, 2, shape, &mask));
    CHECK_OK(sft_tensor_create(ctx, SFT_I32, 2, shape, &labels));
    if (!prompts || !mask || !labels || !e || !g) goto done;
    for (k = 0; k < 6; k++) { ((int32_t *)mask->data)[k] = k % 3 != 2; ((int32_t *)labels->data)[k] = 10 + (int32_t)k; }
    sft_tensor_set_requires_grad(e, 1);
    sft_step_begin(ctx);
    CHECK_OK(sft_prompt_prepend(ctx, prompts, e, mask, labels, &out));
    if (!out.embeds) goto done;
    CHECK(out.embeds->shape[0] == 2 && out.embeds->shape[1] == 5 && out.embeds->shape[2] == 4);
    for (b = 0; b < 2; b++)
        for (t = 0; t < 5; t++) {
            const float *row = (const float *)out.embeds->data + (b * 5 + t) * 4;
            const float *want = t < 2 ? (const float *)prompts->data + t * 4 : (const float *)e->data + (b * 3 + t - 2) * 4;
            CHECK(memcmp(row, want, 16) == 0);
            CHECK(((int32_t *)out.attention_mask->data)[b * 5 + t] == (t < 2 ? 1 : ((int32_t *)mask->data)[b * 3 + t - 2]));
            CHECK(((int32_t *)out.labels->data)[b * 5 + t] == (t < 2 ? -100 : ((int32_t *)labels->data)[b * 3 + t - 2]));
            CHECK(((int32_t *)out.positions->data)[b * 5 + t] == (int32_t)t);
        }
    {
        sft_tensor *loss = t_sum_product(ctx, out.embeds, g);
        if (loss) CHECK_OK(sft_backward(ctx, loss));
        if (prompts->grad && e->grad)
            for (k = 0; k < 8; k++) {
                float want = ((float *)g->data)[k] + ((float *)g->data)[20 + k];
                CHECK(((float *)prompts->grad->data)[k] == want);
                CHECK(((float *)e->grad->data)[k] == ((float *)g->data)[8 + k]);
            }
        else CHECK_MSG(0, "no gradients");
    }
    {
        sft_tensor *bad = t_random_x(ctx, 2, 3, 5, 1), *none = NULL;
        if (bad) { CHECK_STATUS(sft_prompt_prepend(ctx, prompts, bad, NULL, NULL, &out), SFT_ERR_SHAPE); CHECK_ERROR_MENTIONS("[P, D]"); }
        CHECK_STATUS(sft_prompt_embeddings_create(ctx, 0, 4, 1, &none), SFT_ERR_ARG);
        sft_tensor_destroy(bad);
    }
done:
    sft_tensor_destroy(prompts); sft_tensor_destroy(e); sft_tensor_destroy(mask); sft_tensor_destroy(labels);
    sft_tensor_destroy(g);
    sft_context_destroy(ctx);
}

/* y, dx and every adapter gradient of one training call, copied out. kind 0:
   two LoRA adapters; 1: one DoRA; 2: a LoRA, a DoRA and a DoRA with dropout,
   active together. out: y, dx, then A, B, magnitude grads of a, b, c. */
static void t_train_call(int threads, int kind, float **out, int64_t *sizes) {
    sft_context *ctx = t_context(threads);
    sft_linear *lin = t_random_layer(ctx, 72, 100, 1, 0);
    sft_tensor *x = t_random_x(ctx, 3, 7, 100, 5), *g = t_random_x(ctx, 3, 7, 72, 6), *y = NULL, *loss = NULL;
    sft_lora_desc d;
    sft_lora_weights w;
    sft_linear_call call;
    const char *names[3] = {"a", "b", "c"};
    int i;
    memset(&d, 0, sizeof d);
    d.dropout = 0.2f; d.use_dora = kind == 1; d.seed = 1;
    CHECK_OK(sft_linear_add_adapter(lin, "a", &d));
    d.use_dora = kind == 2; d.dropout = kind == 2 ? 0.0f : 0.2f; d.r = 4; d.seed = 2;
    if (kind != 1) CHECK_OK(sft_linear_add_adapter(lin, "b", &d));
    d.use_dora = 1; d.dropout = 0.1f; d.r = 6; d.seed = 3;
    if (kind == 2) CHECK_OK(sft_linear_add_adapter(lin, "c", &d));
    if (kind != 1) CHECK_OK(sft_linear_set_active(lin, names, kind == 2 ? 3 : 2));
    t_randomise_B(lin, "a", 3); t_randomise_B(lin, "b", 4); t_randomise_B(lin, "c", 5);
    memset(&call, 0, sizeof call);
    call.training = 1; call.dropout_seed = 99;
    sft_tensor_set_requires_grad(x, 1);
    sft_step_begin(ctx);
    CHECK_OK(sft_linear_forward(ctx, lin, x, &call, &y));
    if (y) loss = t_sum_product(ctx, y, g);
    if (loss) CHECK_OK(sft_backward(ctx, loss));
    out[0] = y ? t_copy_data(y, &sizes[0]) : NULL;
    out[1] = x->grad ? t_copy_data(x->grad, &sizes[1]) : NULL;
    for (i = 0; i < 3; i++) {
        out[2 + 3 * i] = out[3 + 3 * i] = out[4 + 3 * i] = NULL;
        if (sft_linear_adapter_weights(lin, names[i], &w) != SFT_OK) { sft_clear_error(); continue; }
        out[2 + 3 * i] = w.A->grad ? t_copy_data(w.A->grad, &sizes[2 + 3 * i]) : NULL;
        out[3 + 3 * i] = w.B->grad ? t_copy_data(w.B->grad, &sizes[3 + 3 * i]) : NULL;
        out[4 + 3 * i] = w.magnitude && w.magnitude->grad ? t_copy_data(w.magnitude->grad, &sizes[4 + 3 * i]) : NULL;
    }
    sft_tensor_destroy(x); sft_tensor_destroy(g);
    sft_linear_destroy(lin);
    sft_context_destroy(ctx);
}

/* A LoRA layer over many rows (several row blocks and tasks of the fused
   adapter kernel, a partial last block), wider and narrower than it is deep,
   with a replayed dropout mask: y, dx, dA and dB against a plain double
   reference, on every CPU path. */
static void t_lora_reference_case(int64_t M, int64_t N, int64_t K, int64_t r) {
    sft_context *ctx = t_context(2);
    sft_linear *lin = t_random_layer(ctx, N, K, 0, 0);
    sft_tensor *x = t_random_x(ctx, 1, M, K, 21), *g = t_random_x(ctx, 1, M, N, 22), *mask = NULL, *y = NULL, *loss = NULL;
    sft_lora_desc d;
    sft_lora_weights w;
    sft_linear_call call;
    int64_t shape[2], i, o, k, c;
    uint64_t seed = 23;
    double *ry = (double *)calloc((size_t)(M * N), sizeof(double)), *rdx = (double *)calloc((size_t)(M * K), sizeof(double));
    double *rdA = (double *)calloc((size_t)(r * K), sizeof(double)), *rdB = (double *)calloc((size_t)(N * r), sizeof(double));
    double *t = (double *)calloc((size_t)(M * r), sizeof(double)), *dt = (double *)calloc((size_t)(M * r), sizeof(double));
    float *got = NULL, *want = NULL;
    memset(&d, 0, sizeof d);
    d.r = (int)r; d.alpha = 2.0f * (float)r; d.dropout = 0.25f; d.seed = 3;
    CHECK_OK(sft_linear_add_adapter(lin, "a", &d));
    t_randomise_B(lin, "a", 24);
    shape[0] = M; shape[1] = K;
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, 2, shape, &mask));
    if (!lin || !x || !g || !mask || sft_linear_adapter_weights(lin, "a", &w) != SFT_OK) goto done;
    for (i = 0; i < M * K; i++) ((float *)mask->data)[i] = t_rand(&seed, 0.0f, 1.0f) < 0.25f ? 0.0f : 1.0f / 0.75f;
    {   /* the reference: y = x W^T + s (x m) A^T B^T; loss = sum(y g) */
        const float *X = (const float *)x->data, *G = (const float *)g->data, *A = (const float *)w.A->data;
        const float *B = (const float *)w.B->data, *Mk = (const float *)mask->data;
        const float *W = (const float *)sft_linear_base_weight(lin)->data;
        for (i = 0; i < M; i++) {
            for (c = 0; c < r; c++) {
                double acc = 0;
                for (k = 0; k < K; k++) acc += (double)X[i * K + k] * Mk[i * K + k] * A[c * K + k];
                t[i * r + c] = acc * w.scaling;
            }
            for (o = 0; o < N; o++) {
                double acc = 0;
                for (k = 0; k < K; k++) acc += (double)X[i * K + k] * W[o * K + k];
                for (c = 0; c < r; c++) acc += t[i * r + c] * B[o * r + c];
                ry[i * N + o] = acc;
            }
            for (c = 0; c < r; c++) {
                double acc = 0;
                for (o = 0; o < N; o++) acc += (double)G[i * N + o] * B[o * r + c];
                dt[i * r + c] = acc * w.scaling;
            }
            for (k = 0; k < K; k++) {
                double base = 0, lora = 0;
                for (o = 0; o < N; o++) base += (double)G[i * N + o] * W[o * K + k];
                for (c = 0; c < r; c++) lora += dt[i * r + c] * A[c * K + k];
                rdx[i * K + k] = base + lora * Mk[i * K + k];
            }
            for (o = 0; o < N; o++)
                for (c = 0; c < r; c++) rdB[o * r + c] += (double)G[i * N + o] * t[i * r + c];
            for (c = 0; c < r; c++)
                for (k = 0; k < K; k++) rdA[c * K + k] += dt[i * r + c] * X[i * K + k] * Mk[i * K + k];
        }
    }
    memset(&call, 0, sizeof call);
    call.training = 1; call.dropout_mask = mask;
    sft_tensor_set_requires_grad(x, 1);
    sft_step_begin(ctx);
    CHECK_OK(sft_linear_forward(ctx, lin, x, &call, &y));
    if (y) loss = t_sum_product(ctx, y, g);
    if (loss) CHECK_OK(sft_backward(ctx, loss));
    if (!y || !x->grad || !w.A->grad || !w.B->grad) { CHECK_MSG(0, "no output or gradients"); goto done; }
    {
        struct { const char *what; const float *have; const double *ref; int64_t n; } out[4];
        int q;
        out[0].what = "y"; out[0].have = (const float *)y->data; out[0].ref = ry; out[0].n = M * N;
        out[1].what = "dx"; out[1].have = (const float *)x->grad->data; out[1].ref = rdx; out[1].n = M * K;
        out[2].what = "dA"; out[2].have = (const float *)w.A->grad->data; out[2].ref = rdA; out[2].n = r * K;
        out[3].what = "dB"; out[3].have = (const float *)w.B->grad->data; out[3].ref = rdB; out[3].n = N * r;
        for (q = 0; q < 4; q++) {
            got = (float *)malloc((size_t)out[q].n * sizeof(float)); want = (float *)malloc((size_t)out[q].n * sizeof(float));
            for (i = 0; i < out[q].n; i++) { got[i] = out[q].have[i]; want[i] = (float)out[q].ref[i]; }
            CHECK_REL(out[q].what, got, want, out[q].n, 2e-5);
            free(got); free(want); got = want = NULL;
        }
    }
done:
    free(ry); free(rdx); free(rdA); free(rdB); free(t); free(dt);
    sft_tensor_destroy(x); sft_tensor_destroy(g); sft_tensor_destroy(mask);
    sft_linear_destroy(lin);
    sft_context_destroy(ctx);
}

static void lora_layer_matches_a_plain_reference_over_many_rows(void) {
    int path;
    for (path = SFT_CPU_PORTABLE; path < SFT_CPU_PATH_COUNT; path++) {
        if (!t_cpu_path_runnable((sft_cpu_path)path)) continue;
        t_set_cpu_path((sft_cpu_path)path);
        t_lora_reference_case(300, 130, 70, 8);     /* out > in: two tasks, a partial block */
        t_lora_reference_case(70, 37, 150, 16);     /* in > out */
        t_lora_reference_case(50, 61, 40, 32);      /* a rank past the narrow kernels */
    }
    t_set_cpu_path(SFT_CPU_AUTO);
}

static void linear_layers_are_bit_identical_across_thread_counts(void) {
    static const char *const kinds[3] = {"lora", "dora", "lora + dora + dora"};
    int kind, i;
    for (kind = 0; kind < 3; kind++) {
        float *a[11], *b[11];
        int64_t na[11] = {0}, nb[11] = {0};
        t_train_call(1, kind, a, na);
        t_train_call(3, kind, b, nb);
        CHECK(a[0] && a[1] && a[2] && a[3] && (kind == 1 ? a[4] != NULL : a[5] != NULL));
        if (kind == 2) CHECK(a[7] && a[8] && a[9] && a[10]);
        for (i = 0; i < 11; i++) {
            CHECK((a[i] == NULL) == (b[i] == NULL) && na[i] == nb[i]);
            if (a[i] && b[i] && na[i] == nb[i]) CHECK_SAME(kinds[kind], a[i], b[i], na[i]);
            free(a[i]); free(b[i]);
        }
    }
}

/* the tiny Llama in NF4 with a LoRA (dropout 0.1) and a DoRA on every
   projection, both active; one training forward and backward with
   gradient_checkpointing on or off: the loss, and every adapter gradient of
   layer 0's q_proj and layer 1's down_proj, copied out (out[0] the loss) */
static void t_stacked_model_step(int checkpointing, float **out, int64_t *sizes) {
    static const char *const names[2] = {"lora", "dora"}, *const mods[2] = {"q_proj", "down_proj"};
    static const int32_t ids[2][8] = {{5, 17, 42, 99, 7, 250, 3, 64}, {12, 8, 200, 33, 1, 9, 77, 150}};
    sft_context *ctx = t_context(2);
    sft_model *m = NULL;
    sft_load_desc ld;
    sft_lora_desc d;
    sft_model_batch b;
    sft_model_run run;
    sft_model_output o;
    sft_tensor *in = NULL;
    int64_t shape[2] = {2, 8};
    int a, k, layer;
    memset(&ld, 0, sizeof ld);
    ld.quant = SFT_QUANT_NF4; ld.double_quant = 1;
    CHECK_OK(sft_model_load(ctx, "tests/fixtures/models/llama", &ld, &m));
    CHECK_OK(sft_tensor_create(ctx, SFT_I32, 2, shape, &in));
    if (!m || !in) goto done;
    memcpy(in->data, ids, sizeof ids);
    memset(&d, 0, sizeof d);
    d.r = 4; d.alpha = 8; d.dropout = 0.1f; d.seed = 7;
    CHECK_OK(sft_model_add_lora(m, "lora", &d, "all-linear"));
    d.dropout = 0.0f; d.use_dora = 1; d.seed = 8;
    CHECK_OK(sft_model_add_lora(m, "dora", &d, "all-linear"));
    CHECK_OK(sft_model_set_active(m, (const char *const *)names, 2));
    for (layer = 0; layer < 2; layer++)
        for (k = 0; k < 7; k++) {
            static const char *const projs[7] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
            t_randomise_B(sft_model_linear(m, layer, projs[k]), "lora", (uint64_t)(40 + 7 * layer + k));
            t_randomise_B(sft_model_linear(m, layer, projs[k]), "dora", (uint64_t)(60 + 7 * layer + k));
        }
    memset(&b, 0, sizeof b);
    b.input_ids = in; b.labels = in;
    memset(&run, 0, sizeof run);
    run.training = 1; run.dropout_seed = 5; run.gradient_checkpointing = checkpointing;
    sft_step_begin(ctx);
    CHECK_OK(sft_model_forward(m, &b, &run, &o));
    if (!o.loss) goto done;
    CHECK_OK(sft_backward(ctx, o.loss));
    out[0] = t_copy_data(o.loss, &sizes[0]);
    for (layer = 0; layer < 2; layer++)
        for (a = 0; a < 2; a++) {
            sft_lora_weights w;
            int at = 1 + 6 * layer + 3 * a;
            if (sft_linear_adapter_weights(sft_model_linear(m, layer, mods[layer]), names[a], &w) != SFT_OK) continue;
            out[at] = w.A->grad ? t_copy_data(w.A->grad, &sizes[at]) : NULL;
            out[at + 1] = w.B->grad ? t_copy_data(w.B->grad, &sizes[at + 1]) : NULL;
            out[at + 2] = w.magnitude && w.magnitude->grad ? t_copy_data(w.magnitude->grad, &sizes[at + 2]) : NULL;
        }
done:
    sft_tensor_destroy(in);
    sft_model_destroy(m);
    sft_context_destroy(ctx);
}

/* A LoRA and a DoRA active together (PEFT runs them in order; sft.h once
   refused a DoRA that was not alone) train a model end to end: the loss is
   finite, every adapter, the DoRA magnitude included, gets a non-zero
   gradient, and gradient checkpointing (each block run again in backward)
   gives the same bits. */
static void lora_and_dora_active_together_train_a_model(void) {
    float *a[13] = {0}, *c[13] = {0};
    int64_t na[13] = {0}, nc[13] = {0}, j;
    int i;
    t_stacked_model_step(0, a, na);
    t_stacked_model_step(1, c, nc);
    CHECK_MSG(a[0] && isfinite(a[0][0]) && a[0][0] > 0.0f, "loss %g", a[0] ? a[0][0] : -1.0f);
    for (i = 1; i < 13; i++) {
        int is_m = (i - 1) % 3 == 2, dora = ((i - 1) / 3) % 2 == 1;
        double sum = 0.0;
        CHECK_MSG((a[i] != NULL) == (!is_m || dora), "gradient %d: %s", i, a[i] ? "present" : "missing");
        for (j = 0; a[i] && j < na[i]; j++) sum += fabs(a[i][j]);
        CHECK_MSG(!a[i] || (sum > 0.0 && isfinite(sum)), "gradient %d: sum |g| = %g", i, sum);
    }
    for (i = 0; i < 13; i++) {
        CHECK((a[i] == NULL) == (c[i] == NULL) && na[i] == nc[i]);
        if (a[i] && c[i] && na[i] == nc[i]) CHECK_SAME("with gradient checkpointing", c[i], a[i], na[i]);
        free(a[i]); free(c[i]);
    }
}

void suite_lora(void) {
    RUN(outputs_and_gradients_match_peft);
    RUN(merge_and_unmerge_match_peft);
    RUN(a_new_adapter_is_initialised_as_peft_does);
    RUN(disable_merge_and_unmerge_keep_the_outputs);
    RUN(a_bf16_base_computes_as_its_f32_widening);
    RUN(lora_dropout_applies_to_adapter_input_only);
    RUN(bad_adapter_input_is_refused);
    RUN(prompt_tuning_prepends_virtual_tokens);
    RUN(linear_layers_are_bit_identical_across_thread_counts);
    RUN(lora_and_dora_active_together_train_a_model);
    RUN(lora_layer_matches_a_plain_reference_over_many_rows);
}
