/* test_ptuning.c - P-tuning (PEFT's P_TUNING): the operators its prompt encoder
   is made of (relu, sigmoid, tanh, concat: values and finite-difference
   gradients), the MLP and LSTM encoders against PEFT 0.21.2 on the tiny Llama
   (prompts, logits, loss, every weight's gradient; tests/fixtures/peft/ptuning,
   written by tools/make_ptuning_fixtures.py), the adapter the trainer saves in
   PEFT's layout, and a resumed run bit-identical to one that never stopped. */
#include "test.h"
#include <sys/stat.h>

#define T_PT_FIX "tests/fixtures/peft/ptuning/"
#define T_PT_LLAMA "tests/fixtures/models/llama"

/* measured against PEFT (max |diff| / max |want|), with headroom */
#define T_PT_PROMPT_TOL 1e-6     /* mlp 0 (equal), lstm 7.0e-8 */
#define T_PT_LOGIT_TOL 5e-6      /* mlp 4.4e-7, lstm 3.6e-7 */
#define T_PT_LOSS_TOL 1e-6       /* mlp 0 (equal), lstm 8.3e-8 */
#define T_PT_GRAD_TOL 1e-5       /* worst weight: mlp 5.1e-7 (embedding), lstm 8.5e-7 (weight_hh_l0) */

static sft_tensor *t_pt_random(sft_context *ctx, int ndim, const int64_t *shape, uint64_t *st, float gap) {
    sft_tensor *t = NULL;
    int64_t i;
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, ndim, shape, &t));
    for (i = 0; t && i < sft_tensor_numel(t); i++) {
        float v = t_rand(st, -1.5f, 1.5f);
        if (fabsf(v) < gap) v = v < 0 ? -gap : gap;       /* relu: keep h away from the kink */
        ((float *)t->data)[i] = v;
    }
    if (t) sft_tensor_set_requires_grad(t, 1);
    return t;
}

/* ---- the operators ---------------------------------------------------------- */

typedef sft_status (*t_pt_op)(sft_context *ctx, sft_tensor *a, sft_tensor *b, sft_tensor **out);
static sft_status t_pt_relu(sft_context *ctx, sft_tensor *a, sft_tensor *b, sft_tensor **out) { (void)b; return sft_relu(ctx, a, out); }
static sft_status t_pt_sigmoid(sft_context *ctx, sft_tensor *a, sft_tensor *b, sft_tensor **out) { (void)b; return sft_sigmoid(ctx, a, out); }
static sft_status t_pt_tanh(sft_context *ctx, sft_tensor *a, sft_tensor *b, sft_tensor **out) { (void)b; return sft_tanh(ctx, a, out); }
static sft_status t_pt_concat(sft_context *ctx, sft_tensor *a, sft_tensor *b, sft_tensor **out) { return sft_concat(ctx, a, b, out); }

/* loss = sum(out * R) in double, R fixed */
static double t_pt_dot(const sft_tensor *out, const float *R) {
    double s = 0.0;
    int64_t i;
    for (i = 0; i < sft_tensor_numel(out); i++) s += (double)((const float *)out->data)[i] * R[i];
    return s;
}

/* t_pt_gradcheck: backward of sum(op(in) * R) against central differences
   (ctx: the inputs' own, which owns their gradients) */
static void t_pt_gradcheck(sft_context *ctx, const char *name, t_pt_op op, sft_tensor *a, sft_tensor *b) {
    sft_tensor *in[2], *out = NULL, *Rt = NULL, *o, *r, *loss = NULL;
    int64_t flat[2], k, i;
    uint64_t st = 77;
    float *R;
    in[0] = a; in[1] = b;
    sft_step_begin(ctx);
    CHECK_OK(op(ctx, a, b, &out));
    if (!out) return;
    flat[0] = 1; flat[1] = sft_tensor_numel(out);
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, 2, flat, &Rt));
    R = (float *)Rt->data;
    for (i = 0; i < flat[1]; i++) R[i] = t_rand(&st, -1.0f, 1.0f);
    CHECK_OK(sft_reshape(ctx, out, 2, flat, &o));
    r = Rt;
    CHECK_OK(sft_matmul(ctx, o, r, 0, 1, &loss));
    if (loss) CHECK_OK(sft_backward(ctx, loss));
    for (k = 0; k < 2 && in[k]; k++) {
        if (!in[k]->requires_grad) continue;
        {
        int64_t n = sft_tensor_numel(in[k]);
        float *x = (float *)in[k]->data, *num = (float *)calloc((size_t)n, 4), *ana = (float *)calloc((size_t)n, 4);
        char what[96];
        if (!in[k]->grad) { t_failf(__FILE__, __LINE__, "%s: input %d got no gradient", name, (int)k); free(num); free(ana); continue; }
        sft_grad_enabled_set(ctx, 0);
        for (i = 0; i < n; i++) {
            float x0 = x[i], h = 1e-2f;
            double lp, lm;
            sft_tensor *y = NULL;
            x[i] = x0 + h; sft_step_begin(ctx); CHECK_OK(op(ctx, a, b, &y)); lp = y ? t_pt_dot(y, R) : 0.0;
            x[i] = x0 - h; sft_step_begin(ctx); CHECK_OK(op(ctx, a, b, &y)); lm = y ? t_pt_dot(y, R) : 0.0;
            x[i] = x0;
            num[i] = (float)((lp - lm) / (2.0 * h));
            ana[i] = ((float *)in[k]->grad->data)[i];
        }
        sft_grad_enabled_set(ctx, 1);
        snprintf(what, sizeof what, "%s: d loss / d input %d", name, (int)k);
        CHECK_CLOSE(what, ana, num, n, 1e-3, 1e-2);
        free(num); free(ana);
        sft_tensor_zero_grad(in[k]);
        }
    }
    sft_tensor_destroy(Rt);
}

static void ptuning_ops_gradients_match_finite_differences(void) {
    sft_context *ctx = t_context(2);
    uint64_t st = 5;
    int64_t s3[3] = {3, 4, 5}, sa[3] = {3, 4, 2}, sb[3] = {3, 4, 7};
    sft_tensor *x = t_pt_random(ctx, 3, s3, &st, 0.05f), *a = t_pt_random(ctx, 3, sa, &st, 0.0f), *b = t_pt_random(ctx, 3, sb, &st, 0.0f);
    sft_tensor *frozen = t_pt_random(ctx, 3, sa, &st, 0.0f);
    if (x && a && b && frozen) {
        t_pt_gradcheck(ctx, "relu", t_pt_relu, x, NULL);
        t_pt_gradcheck(ctx, "sigmoid", t_pt_sigmoid, x, NULL);
        t_pt_gradcheck(ctx, "tanh", t_pt_tanh, x, NULL);
        t_pt_gradcheck(ctx, "concat", t_pt_concat, a, b);
        sft_tensor_set_requires_grad(frozen, 0);         /* a gradient only where one is wanted */
        t_pt_gradcheck(ctx, "concat, b only", t_pt_concat, frozen, b);
        CHECK(frozen->grad == NULL);
    }
    sft_tensor_destroy(frozen);
    sft_tensor_destroy(x); sft_tensor_destroy(a); sft_tensor_destroy(b);
    sft_context_destroy(ctx);
}

/* values against double precision; concat copies; shapes refused with the op named */
static void ptuning_ops_compute_their_definitions(void) {
    sft_context *ctx = t_context(2);
    uint64_t st = 6;
    int64_t s2[2] = {3, 50}, sa[2] = {3, 2}, sb[2] = {3, 7}, sc[2] = {4, 7}, i, j;
    sft_tensor *x = t_pt_random(ctx, 2, s2, &st, 0.0f), *a = t_pt_random(ctx, 2, sa, &st, 0.0f), *b = t_pt_random(ctx, 2, sb, &st, 0.0f);
    sft_tensor *c = t_pt_random(ctx, 2, sc, &st, 0.0f), *r = NULL, *sg = NULL, *th = NULL, *cat = NULL;
    if (!x || !a || !b || !c) goto done;
    ((float *)x->data)[0] = 0.0f; ((float *)x->data)[1] = -0.0f; ((float *)x->data)[2] = 30.0f; ((float *)x->data)[3] = -30.0f;
    ((float *)x->data)[4] = NAN;
    CHECK_OK(sft_relu(ctx, x, &r)); CHECK_OK(sft_sigmoid(ctx, x, &sg)); CHECK_OK(sft_tanh(ctx, x, &th));
    for (i = 0; r && sg && th && i < 150; i++) {
        float v = ((float *)x->data)[i];
        double want_s = 1.0 / (1.0 + exp(-(double)v)), want_t = tanh((double)v);
        if (i == 4) { CHECK(isnan(((float *)r->data)[i]) && isnan(((float *)sg->data)[i]) && isnan(((float *)th->data)[i])); continue; }
        CHECK(((float *)r->data)[i] == (v > 0 ? v : 0.0f));
        CHECK_MSG(fabs(((float *)sg->data)[i] - want_s) <= 2e-7, "sigmoid(%g) = %.9g, want %.9g", v, ((float *)sg->data)[i], want_s);
        CHECK_MSG(fabs(((float *)th->data)[i] - want_t) <= 2e-7, "tanh(%g) = %.9g, want %.9g", v, ((float *)th->data)[i], want_t);
    }
    CHECK_OK(sft_concat(ctx, a, b, &cat));
    CHECK(cat && cat->ndim == 2 && cat->shape[0] == 3 && cat->shape[1] == 9);
    for (i = 0; cat && i < 3; i++)
        for (j = 0; j < 9; j++)
            CHECK(((float *)cat->data)[i * 9 + j] == (j < 2 ? ((float *)a->data)[i * 2 + j] : ((float *)b->data)[i * 7 + j - 2]));
    CHECK_STATUS(sft_concat(ctx, a, c, &cat), SFT_ERR_SHAPE);
    CHECK_ERROR_MENTIONS("concat: the leading dims differ");
    CHECK_STATUS(sft_concat(ctx, x, NULL, &cat), SFT_ERR_ARG);
done:
    sft_tensor_destroy(x); sft_tensor_destroy(a); sft_tensor_destroy(b); sft_tensor_destroy(c);
    sft_context_destroy(ctx);
}

/* ---- the encoders against PEFT ------------------------------------------------- */

typedef struct t_pt_fix { sft_st_file *f; sft_tensor *ids, *mask, *labels; } t_pt_fix;

static int t_pt_open(sft_context *ctx, t_pt_fix *x) {
    memset(x, 0, sizeof *x);
    CHECK_OK(sft_st_open(ctx, T_PT_FIX "ptuning.safetensors", &x->f));
    if (!x->f) return 0;
    CHECK_OK(sft_st_load(ctx, x->f, "input_ids", &x->ids));
    CHECK_OK(sft_st_load(ctx, x->f, "attention_mask", &x->mask));
    CHECK_OK(sft_st_load(ctx, x->f, "labels", &x->labels));
    return x->ids && x->mask && x->labels;
}

static void t_pt_close(t_pt_fix *x) {
    sft_tensor_destroy(x->ids); sft_tensor_destroy(x->mask); sft_tensor_destroy(x->labels);
    sft_st_close(x->f);
}

static void t_pt_desc(sft_prompt_encoder_desc *d, int lstm) {
    memset(d, 0, sizeof *d);
    d->num_virtual_tokens = 4; d->token_dim = 64;
    d->type = lstm ? SFT_PROMPT_ENCODER_LSTM : SFT_PROMPT_ENCODER_MLP;
    d->encoder_hidden_size = lstm ? 16 : 32;
    d->seed = 3;
}

/* copy the fixture's k.w.<name> into every weight of enc */
static int t_pt_load_weights(const t_pt_fix *x, const char *k, sft_prompt_encoder *enc) {
    int i, ok = 1;
    for (i = 0; i < sft_prompt_encoder_weight_count(enc); i++) {
        const char *name;
        sft_tensor *w = sft_prompt_encoder_weight(enc, i, &name);
        char key[128];
        int64_t n = 0;
        const float *v;
        snprintf(key, sizeof key, "%s.w.%s", k, name);
        v = (const float *)t_st_data(x->f, key, &n);
        CHECK_MSG(v && n == sft_tensor_numel(w), "%s: missing or %lld values (want %lld)", key, (long long)n, (long long)sft_tensor_numel(w));
        if (v && n == sft_tensor_numel(w)) memcpy(w->data, v, (size_t)n * 4);
        else ok = 0;
    }
    return ok;
}

static void t_pt_check(const t_pt_fix *x, const char *what, const char *key, const float *got, int64_t n, double tol) {
    int64_t m = 0;
    const float *want = (const float *)t_st_data(x->f, key, &m);
    CHECK_MSG(want && m == n, "%s: the fixture has %lld values, we %lld", key, (long long)m, (long long)n);
    if (want && m == n) CHECK_REL(what, got, want, n, tol);
}

/* the encoder's prompts, then PeftModelForCausalLM's forward and backward */
static void t_pt_matches_peft(const char *k, int lstm) {
    sft_context *ctx = t_context(2);
    t_pt_fix x;
    sft_model *m = NULL;
    sft_prompt_encoder *enc = NULL;
    sft_prompt_encoder_desc d;
    sft_tensor *prompts = NULL, *emb = NULL;
    sft_prompt_batch pb;
    sft_model_batch b;
    sft_model_run run;
    sft_model_output out;
    char key[128];
    int i;
    CHECK_OK(sft_model_load(ctx, T_PT_LLAMA, NULL, &m));
    t_pt_desc(&d, lstm);
    CHECK_OK(sft_prompt_encoder_create(ctx, &d, &enc));
    if (!m || !enc || !t_pt_open(ctx, &x) || !t_pt_load_weights(&x, k, enc)) goto done;
    sft_step_begin(ctx);
    CHECK_OK(sft_prompt_encoder_forward(ctx, enc, 1, 7, &prompts));
    if (!prompts) goto done;
    CHECK(prompts->ndim == 2 && prompts->shape[0] == 4 && prompts->shape[1] == 64);
    snprintf(key, sizeof key, "%s.prompts", k);
    t_pt_check(&x, key, key, (const float *)prompts->data, 4 * 64, T_PT_PROMPT_TOL);
    CHECK_OK(sft_model_embed(m, x.ids, &emb));
    if (emb) CHECK_OK(sft_prompt_prepend(ctx, prompts, emb, x.mask, x.labels, &pb));
    if (!emb || !pb.embeds) goto done;
    memset(&b, 0, sizeof b); memset(&run, 0, sizeof run);
    b.inputs_embeds = pb.embeds; b.attention_mask = pb.attention_mask; b.labels = pb.labels; b.positions = pb.positions;
    run.want_logits = 1; run.training = 1;
    CHECK_OK(sft_model_forward(m, &b, &run, &out));
    if (!out.loss || !out.logits) goto done;
    {   /* logits where the extended mask is 1 (PEFT's padded queries differ) */
        int64_t V = 256, rows = 2 * 11, kept = 0, r, n = 0;
        const float *want;
        float *ga = (float *)malloc((size_t)(rows * V) * 4), *wa = (float *)malloc((size_t)(rows * V) * 4);
        snprintf(key, sizeof key, "%s.logits", k);
        want = (const float *)t_st_data(x.f, key, &n);
        CHECK(want && n == rows * V && sft_tensor_numel(out.logits) == rows * V);
        for (r = 0; want && n == rows * V && r < rows; r++)
            if (((const int32_t *)pb.attention_mask->data)[r]) {
                memcpy(ga + kept * V, (const float *)out.logits->data + r * V, (size_t)V * 4);
                memcpy(wa + kept * V, want + r * V, (size_t)V * 4);
                kept++;
            }
        CHECK(kept == 2 * 4 + 7 + 5);
        CHECK_REL(key, ga, wa, kept * V, T_PT_LOGIT_TOL);
        free(ga); free(wa);
    }
    snprintf(key, sizeof key, "%s.loss", k);
    t_pt_check(&x, key, key, (const float *)out.loss->data, 1, T_PT_LOSS_TOL);
    CHECK_OK(sft_backward(ctx, out.loss));
    for (i = 0; i < sft_prompt_encoder_weight_count(enc); i++) {
        const char *name;
        sft_tensor *w = sft_prompt_encoder_weight(enc, i, &name);
        snprintf(key, sizeof key, "%s.grad.%s", k, name);
        if (!w->grad) { t_failf(__FILE__, __LINE__, "%s: no gradient", key); continue; }
        t_pt_check(&x, key, key, (const float *)w->grad->data, sft_tensor_numel(w), T_PT_GRAD_TOL);
    }
done:
    t_pt_close(&x);
    sft_prompt_encoder_destroy(enc);
    sft_model_destroy(m);
    sft_context_destroy(ctx);
}

static void ptuning_mlp_encoder_matches_peft(void) { t_pt_matches_peft("mlp", 0); }
static void ptuning_lstm_encoder_matches_peft(void) { t_pt_matches_peft("lstm", 1); }

/* the weights PEFT's PromptEncoder has, in its order and shapes; defaults
   (hidden = token_dim, 2 LSTM layers); bad settings refused */
static void ptuning_encoder_has_peft_weights_and_defaults(void) {
    sft_context *ctx = t_context(1);
    sft_prompt_encoder *enc = NULL;
    sft_prompt_encoder_desc d;
    const char *name;
    sft_tensor *w;
    t_pt_desc(&d, 1);
    d.encoder_hidden_size = 0; d.token_dim = 12;
    CHECK_OK(sft_prompt_encoder_create(ctx, &d, &enc));
    if (enc) {
        sft_prompt_encoder_desc g = sft_prompt_encoder_desc_get(enc);
        CHECK(g.encoder_hidden_size == 12 && g.encoder_num_layers == 2);
        CHECK(sft_prompt_encoder_weight_count(enc) == 1 + 16 + 4);
        w = sft_prompt_encoder_weight(enc, 6, &name);
        CHECK(w && strcmp(name, "lstm_head.weight_hh_l0_reverse") == 0 && w->shape[0] == 48 && w->shape[1] == 12);
        w = sft_prompt_encoder_weight(enc, 9, &name);
        CHECK(w && strcmp(name, "lstm_head.weight_ih_l1") == 0 && w->shape[0] == 48 && w->shape[1] == 24);
        w = sft_prompt_encoder_weight(enc, 20, &name);
        CHECK(w && strcmp(name, "mlp_head.2.bias") == 0 && w->ndim == 1 && w->shape[0] == 12 && w->requires_grad);
        CHECK(sft_prompt_encoder_weight(enc, 21, &name) == NULL && name == NULL);
        {   /* U(+-1/sqrt(H)) for the LSTM */
            int64_t i;
            float bound = 1.0f / sqrtf(12.0f), mx = 0.0f;
            w = sft_prompt_encoder_weight(enc, 1, NULL);
            for (i = 0; i < sft_tensor_numel(w); i++) mx = fmaxf(mx, fabsf(((float *)w->data)[i]));
            CHECK(mx <= bound && mx > 0.9f * bound);
        }
    }
    sft_prompt_encoder_destroy(enc); enc = NULL;
    t_pt_desc(&d, 0);
    CHECK_OK(sft_prompt_encoder_create(ctx, &d, &enc));
    CHECK(sft_prompt_encoder_weight_count(enc) == 7);
    w = sft_prompt_encoder_weight(enc, 5, &name);
    CHECK(w && strcmp(name, "mlp_head.4.weight") == 0 && w->shape[0] == 64 && w->shape[1] == 32);
    sft_prompt_encoder_destroy(enc); enc = NULL;
    d.encoder_num_layers = 9; d.type = SFT_PROMPT_ENCODER_LSTM;
    CHECK_STATUS(sft_prompt_encoder_create(ctx, &d, &enc), SFT_ERR_ARG);
    CHECK_ERROR_MENTIONS("encoder_num_layers 9");
    t_pt_desc(&d, 0); d.num_virtual_tokens = 0;
    CHECK_STATUS(sft_prompt_encoder_create(ctx, &d, &enc), SFT_ERR_ARG);
    t_pt_desc(&d, 1); d.encoder_dropout = 1.0f;
    CHECK_STATUS(sft_prompt_encoder_create(ctx, &d, &enc), SFT_ERR_ARG);
    CHECK(enc == NULL);
    sft_context_destroy(ctx);
}

/* ---- training, the saved adapter, resume ------------------------------------------ */

static sft_dataset *t_pt_rows(sft_context *ctx, sft_tokenizer *tok, int n) {
    char buf[400], *recs[16];
    sft_dataset *ds = NULL;
    sft_data_desc d;
    int i, k;
    for (i = 0; i < n && i < 16; i++) {
        int len = snprintf(buf, sizeof buf, "{\"input_ids\": [");
        for (k = 0; k < 4 + (i * 5) % 9; k++) len += snprintf(buf + len, sizeof buf - (size_t)len, "%s%d", k ? ", " : "", 3 + (i * 37 + k * 11) % 250);
        snprintf(buf + len, sizeof buf - (size_t)len, "]}");
        recs[i] = strdup(buf);
    }
    memset(&d, 0, sizeof d);
    d.max_length = 32; d.pad_token = "!";
    CHECK_OK(sft_dataset_from_records(ctx, tok, (const char *const *)recs, n, &d, &ds));
    for (i = 0; i < n; i++) free(recs[i]);
    return ds;
}

static void t_pt_config(sft_train_config *c, const char *dir, sft_prompt_encoder *enc) {
    memset(c, 0, sizeof *c);
    c->per_device_train_batch_size = 2; c->gradient_accumulation_steps = 2; c->num_train_epochs = 2;
    c->learning_rate = 1e-2; c->weight_decay = 0.1; c->warmup_steps = 1; c->logging_steps = 1;
    c->output_dir = dir; c->prompt_encoder = enc;
}

/* every weight of a and b bit for bit */
static void t_pt_same_weights(const char *what, const sft_prompt_encoder *a, const sft_prompt_encoder *b) {
    int i;
    for (i = 0; i < sft_prompt_encoder_weight_count(a); i++) {
        const char *name;
        sft_tensor *wa = sft_prompt_encoder_weight(a, i, &name), *wb = sft_prompt_encoder_weight(b, i, NULL);
        char w[160];
        snprintf(w, sizeof w, "%s: %s", what, name);
        CHECK_SAME(w, (const float *)wa->data, (const float *)wb->data, sft_tensor_numel(wa));
    }
}

/* adapter_config.json has PEFT's values for every key PEFT writes (less the
   ones that name PEFT's own version and options it leaves null) */
static void t_pt_check_config(sft_context *ctx, const char *ours_path, const char *peft_path) {
    sft_json *ours = t_json_file(ctx, ours_path), *peft = t_json_file(ctx, peft_path);
    static const char *const skip[] = {"auto_mapping", "base_model_name_or_path", "modules_to_save", "peft_version", "revision"};
    size_t i, k;
    if (!ours || !peft) goto done;
    for (i = 0; i < peft->length; i++) {
        const char *key = peft->keys[i];
        const sft_json *want = &peft->items[i], *got = sft_json_get(ours, key);
        int skipped = 0;
        for (k = 0; k < sizeof skip / sizeof *skip; k++) skipped |= strcmp(key, skip[k]) == 0;
        if (skipped) continue;
        CHECK_MSG(got != NULL, "%s: '%s' is missing", ours_path, key);
        if (!got) continue;
        CHECK_MSG(got->type == want->type, "%s: '%s' has another type than PEFT's", ours_path, key);
        if (got->type != want->type) continue;
        if (want->type == SFT_JSON_STRING) CHECK_MSG(strcmp(got->string, want->string) == 0, "%s: %s '%s', PEFT '%s'", ours_path, key, got->string, want->string);
        if (want->type == SFT_JSON_NUMBER) CHECK_MSG(got->number == want->number, "%s: %s %g, PEFT %g", ours_path, key, got->number, want->number);
    }
    for (i = 0; i < ours->length; i++) CHECK_MSG(sft_json_get(peft, ours->keys[i]) != NULL, "we write '%s', PEFT does not", ours->keys[i]);
done:
    sft_json_free(ours); sft_json_free(peft);
}

/* a P-tuning run (MLP or LSTM) saves PEFT's P_TUNING adapter (the encoded
   prompts, PEFT's config) and the encoder's weights; a run resumed from its
   step-2 checkpoint ends with the same weights bit for bit */
static void t_pt_train_case(int lstm) {
    sft_context *ctx = t_context(2);
    sft_tokenizer *tok = NULL;
    sft_dataset *ds = NULL;
    sft_model *m = NULL;
    sft_prompt_encoder *full = NULL, *res = NULL;
    sft_prompt_encoder_desc d;
    sft_train_config c;
    sft_train_output out;
    char dir[512], ck[600], path[700], peft[256];
    float *before = NULL;
    snprintf(dir, sizeof dir, "%s/ptuning_%s", t_tmpdir(), lstm ? "lstm" : "mlp");
    CHECK_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", &tok));
    CHECK_OK(sft_model_load(ctx, T_PT_LLAMA, NULL, &m));
    t_pt_desc(&d, lstm);
    if (lstm) d.encoder_dropout = 0.1f;           /* the resumed run replays the dropout masks too */
    CHECK_OK(sft_prompt_encoder_create(ctx, &d, &full));
    d.seed = 99;                                  /* other first values: the checkpoint overwrites them */
    CHECK_OK(sft_prompt_encoder_create(ctx, &d, &res));
    if (tok) ds = t_pt_rows(ctx, tok, 12);
    if (!m || !ds || !full || !res) goto done;
    before = (float *)malloc(sft_tensor_nbytes(sft_prompt_encoder_weight(full, 1, NULL)));
    memcpy(before, sft_prompt_encoder_weight(full, 1, NULL)->data, sft_tensor_nbytes(sft_prompt_encoder_weight(full, 1, NULL)));
    t_pt_config(&c, dir, full);
    c.max_steps = 4; c.save_steps = 2;
    CHECK_OK(sft_train(m, ds, &c, &out));
    CHECK(out.global_step == 4);
    CHECK(memcmp(before, sft_prompt_encoder_weight(full, 1, NULL)->data, sft_tensor_nbytes(sft_prompt_encoder_weight(full, 1, NULL))) != 0);
    snprintf(ck, sizeof ck, "%s/checkpoint-2", dir);
    {   /* the checkpoint: PEFT's adapter (encoded prompts + config) and the encoder's weights */
        sft_st_file *f = NULL;
        snprintf(path, sizeof path, "%s/adapter_model.safetensors", ck);
        CHECK_OK(sft_st_open(ctx, path, &f));
        if (f) {
            const sft_st_tensor *e = sft_st_find(f, "prompt_embeddings");
            CHECK(sft_st_count(f) == 1 && e && e->ndim == 2 && e->shape[0] == 4 && e->shape[1] == 64 && e->dtype == SFT_F32);
        }
        sft_st_close(f); f = NULL;
        snprintf(path, sizeof path, "%s/prompt_encoder.safetensors", ck);
        CHECK_OK(sft_st_open(ctx, path, &f));
        if (f) CHECK(sft_st_count(f) == sft_prompt_encoder_weight_count(full) && sft_st_find(f, "prompt_encoder.default.embedding.weight"));
        sft_st_close(f);
        snprintf(path, sizeof path, "%s/adapter_config.json", ck);
        snprintf(peft, sizeof peft, T_PT_FIX "%s/adapter_config.json", lstm ? "lstm" : "mlp");
        if (!lstm) t_pt_check_config(ctx, path, peft);
        else {                                    /* PEFT's fixture has dropout 0 */
            sft_json *j = t_json_file(ctx, path);
            CHECK(j && strcmp(sft_json_get(j, "encoder_reparameterization_type")->string, "LSTM") == 0 &&
                  sft_json_get(j, "encoder_num_layers")->number == 2 && sft_json_get(j, "encoder_hidden_size")->number == 16 &&
                  fabs(sft_json_get(j, "encoder_dropout")->number - 0.1) < 1e-7 && strcmp(sft_json_get(j, "peft_type")->string, "P_TUNING") == 0);
            sft_json_free(j);
        }
    }
    {   /* the last checkpoint's prompts are the trained encoder's output */
        sft_st_file *f = NULL;
        sft_tensor *p = NULL;
        snprintf(path, sizeof path, "%s/checkpoint-4/adapter_model.safetensors", dir);
        CHECK_OK(sft_st_open(ctx, path, &f));
        sft_step_begin(ctx);
        sft_grad_enabled_set(ctx, 0);
        CHECK_OK(sft_prompt_encoder_forward(ctx, full, 0, 0, &p));
        sft_grad_enabled_set(ctx, 1);
        if (f && p) CHECK_SAME("saved prompt_embeddings", (const float *)t_st_data(f, "prompt_embeddings", NULL), (const float *)p->data, 4 * 64);
        sft_st_close(f);
    }
    t_pt_config(&c, dir, res);
    c.max_steps = 4; c.save_steps = 2; c.resume_from_checkpoint = ck;
    CHECK_OK(sft_train(m, ds, &c, &out));
    CHECK(out.global_step == 4);
    t_pt_same_weights("4 steps in one run and resumed from step 2", full, res);
done:
    free(before);
    sft_prompt_encoder_destroy(full); sft_prompt_encoder_destroy(res);
    sft_dataset_destroy(ds);
    sft_model_destroy(m);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
}

static void ptuning_mlp_trains_saves_peft_adapter_and_resumes(void) { t_pt_train_case(0); }
static void ptuning_lstm_trains_saves_peft_adapter_and_resumes(void) { t_pt_train_case(1); }

void suite_ptuning(void) {
    RUN(ptuning_ops_gradients_match_finite_differences);
    RUN(ptuning_ops_compute_their_definitions);
    RUN(ptuning_encoder_has_peft_weights_and_defaults);
    RUN(ptuning_mlp_encoder_matches_peft);
    RUN(ptuning_lstm_encoder_matches_peft);
    RUN(ptuning_mlp_trains_saves_peft_adapter_and_resumes);
    RUN(ptuning_lstm_trains_saves_peft_adapter_and_resumes);
}
