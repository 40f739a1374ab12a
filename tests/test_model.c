/* test_model.c - Llama, Qwen2 (bias, GQA 4:1, tied embeddings, bf16 on disk) and
   Mistral (sharded) decoders from directories transformers saved, against
   transformers' logits and loss on a right-padded batch with -100 labels, and
   every LoRA gradient after one backward; the same on an NF4 base; a bnb-4bit
   checkpoint transformers saved; packing and gradient checkpointing against the
   plain computation; bad directories. Fixtures: tools/make_model_fixtures.py. */
#include "test.h"
#include <unistd.h>
#include <sys/stat.h>

#define T_MFIX "tests/fixtures/models/"
#ifndef T_LOGIT_TOL               /* the targets; -D smaller ones to see the errors */
#define T_LOGIT_TOL 1e-4
#define T_LOSS_TOL 1e-5
#define T_GRAD_TOL 1e-4
#endif

typedef struct t_expect { sft_context *ctx; sft_st_file *f; sft_tensor *ids, *mask, *labels; } t_expect;

static int t_expect_open(sft_context *ctx, const char *model, t_expect *e) {
    char path[256];
    memset(e, 0, sizeof *e);
    e->ctx = ctx;
    snprintf(path, sizeof path, T_MFIX "%s/expected.safetensors", model);
    CHECK_OK(sft_st_open(ctx, path, &e->f));
    if (!e->f) return 0;
    CHECK_OK(sft_st_load(ctx, e->f, "input_ids", &e->ids));
    CHECK_OK(sft_st_load(ctx, e->f, "attention_mask", &e->mask));
    CHECK_OK(sft_st_load(ctx, e->f, "labels", &e->labels));
    return e->ids && e->mask && e->labels;
}

static void t_expect_close(t_expect *e) {
    sft_tensor_destroy(e->ids); sft_tensor_destroy(e->mask); sft_tensor_destroy(e->labels);
    sft_st_close(e->f);
}

static sft_model *t_load(sft_context *ctx, const char *model, sft_quant_type quant) {
    char dir[256];
    sft_load_desc d;
    sft_model *m = NULL;
    memset(&d, 0, sizeof d);
    d.quant = quant; d.double_quant = 1;
    snprintf(dir, sizeof dir, T_MFIX "%s", model);
    CHECK_OK(sft_model_load(ctx, dir, &d, &m));
    return m;
}

/* logits at the positions the attention mask keeps (padding's logits are not
   defined the same way: transformers lets a padding query see the tokens) */
static void t_check_logits_tol(const t_expect *e, const char *name, const sft_tensor *got, double tol) {
    int64_t n = 0, V, i, k, kept = 0;
    const float *want = (const float *)t_st_data(e->f, name, &n);
    float *a, *b;
    if (!want || !got) { t_failf(__FILE__, __LINE__, "%s: no logits", name); return; }
    V = got->shape[got->ndim - 1];
    CHECK_MSG(n == sft_tensor_numel(got), "%s: %lld logits, fixture %lld", name, (long long)sft_tensor_numel(got), (long long)n);
    if (n != sft_tensor_numel(got)) return;
    a = (float *)malloc((size_t)n * 4); b = (float *)malloc((size_t)n * 4);
    for (i = 0; i < n / V; i++)
        if (((const int32_t *)e->mask->data)[i]) {
            for (k = 0; k < V; k++) { a[kept * V + k] = ((const float *)got->data)[i * V + k]; b[kept * V + k] = want[i * V + k]; }
            kept++;
        }
    CHECK_REL(name, a, b, kept * V, tol);
    free(a); free(b);
}

static void t_check_loss_tol(const t_expect *e, const char *name, const sft_tensor *got, double tol) {
    const float *want = (const float *)t_st_data(e->f, name, NULL);
    if (!want || !got) { t_failf(__FILE__, __LINE__, "%s: no loss", name); return; }
    CHECK_MSG(fabsf(*(const float *)got->data - *want) <= tol * fabsf(*want), "%s: %.9g vs transformers %.9g", name,
              *(const float *)got->data, *want);
}

static void t_check_logits(const t_expect *e, const char *name, const sft_tensor *got) { t_check_logits_tol(e, name, got, T_LOGIT_TOL); }
static void t_check_loss(const t_expect *e, const char *name, const sft_tensor *got) { t_check_loss_tol(e, name, got, T_LOSS_TOL); }

static sft_status t_forward(sft_model *m, const t_expect *e, int training, int checkpointing, sft_model_output *out) {
    sft_model_batch b;
    sft_model_run run;
    memset(&b, 0, sizeof b);
    memset(&run, 0, sizeof run);
    b.input_ids = e->ids; b.attention_mask = e->mask; b.labels = e->labels;
    run.want_logits = 1; run.training = training; run.gradient_checkpointing = checkpointing;
    return sft_model_forward(m, &b, &run, out);
}

static void t_plain_case(const char *model) {
    sft_context *ctx = t_context(2);
    t_expect e;
    sft_model *m = t_load(ctx, model, SFT_QUANT_NONE);
    sft_model_output out;
    if (m && t_expect_open(ctx, model, &e)) {
        sft_step_begin(ctx);
        CHECK_OK(t_forward(m, &e, 0, 0, &out));
        t_check_logits(&e, "logits", out.logits);
        t_check_loss(&e, "loss", out.loss);
    }
    t_expect_close(&e);
    sft_model_destroy(m);
    sft_context_destroy(ctx);
}

static void llama_logits_and_loss_match_transformers(void) { t_plain_case("llama"); }
static void qwen2_logits_and_loss_match_transformers(void) { t_plain_case("qwen2"); }
static void mistral_logits_and_loss_match_transformers(void) { t_plain_case("mistral"); }

/* the PEFT name of a projection's adapter tensor */
static void t_peft_key(char *buf, size_t cap, int layer, int p, const char *what) {
    static const char *const names[7] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
    snprintf(buf, cap, "base_model.model.model.layers.%d.%s.%s.%s.weight", layer, p < 4 ? "self_attn" : "mlp", names[p], what);
}

/* LoRA (r 4, alpha 8, all-linear) with PEFT's A and B: logits, loss and every
   gradient of A and B. prefix selects the fixture's tensors ("" or "nf4."). */
static void t_lora_case_tol(const char *model, sft_quant_type quant, const char *prefix, int checkpointing, int bf16,
                            double logit_tol, double loss_tol, double grad_tol);

static void t_lora_case(const char *model, sft_quant_type quant, const char *prefix, int checkpointing) {
    t_lora_case_tol(model, quant, prefix, checkpointing, 0, T_LOGIT_TOL, T_LOSS_TOL, T_GRAD_TOL);
}

static void t_lora_case_tol(const char *model, sft_quant_type quant, const char *prefix, int checkpointing, int bf16,
                            double logit_tol, double loss_tol, double grad_tol) {
    sft_context *ctx = t_context(2);
    t_expect e;
    sft_model *m = t_load(ctx, model, quant);
    sft_model_output out;
    sft_lora_desc d;
    char key[256], name[300];
    int layer, p;
    memset(&d, 0, sizeof d);
    d.r = 4; d.alpha = 8;
    if (!m || !t_expect_open(ctx, model, &e)) goto done;
    if (bf16) CHECK_OK(sft_model_set_compute_dtype(m, SFT_BF16));
    CHECK_OK(sft_model_add_lora(m, "default", &d, "all-linear"));
    for (layer = 0; layer < sft_model_get_config(m)->num_hidden_layers; layer++)
        for (p = 0; p < 7; p++) {
            sft_lora_weights w;
            static const char *const names[7] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
            if (sft_linear_adapter_weights(sft_model_linear(m, layer, names[p]), "default", &w) != SFT_OK) continue;
            t_peft_key(key, sizeof key, layer, p, "lora_A");
            if (t_st_data(e.f, key, NULL)) memcpy(w.A->data, t_st_data(e.f, key, NULL), sft_tensor_nbytes(w.A));
            t_peft_key(key, sizeof key, layer, p, "lora_B");
            if (t_st_data(e.f, key, NULL)) memcpy(w.B->data, t_st_data(e.f, key, NULL), sft_tensor_nbytes(w.B));
        }
    sft_step_begin(ctx);
    CHECK_OK(t_forward(m, &e, 1, checkpointing, &out));
    snprintf(name, sizeof name, "%slora.logits", prefix);
    t_check_logits_tol(&e, name, out.logits, logit_tol);
    snprintf(name, sizeof name, "%slora.loss", prefix);
    if (sft_st_find(e.f, name)) t_check_loss_tol(&e, name, out.loss, loss_tol);
    if (out.loss) CHECK_OK(sft_backward(ctx, out.loss));
    for (layer = 0; layer < sft_model_get_config(m)->num_hidden_layers; layer++)
        for (p = 0; p < 7; p++) {
            sft_lora_weights w;
            static const char *const names[7] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
            int ab;
            if (sft_linear_adapter_weights(sft_model_linear(m, layer, names[p]), "default", &w) != SFT_OK) continue;
            for (ab = 0; ab < 2; ab++) {
                const sft_tensor *g = ab ? w.B->grad : w.A->grad;
                const float *want;
                int64_t n = 0;
                t_peft_key(key, sizeof key, layer, p, ab ? "lora_B" : "lora_A");
                snprintf(name, sizeof name, "%sgrad.%s", prefix, key);
                want = (const float *)t_st_data(e.f, name, &n);
                if (!g || !want) { CHECK_MSG(0, "%s: no gradient", name); continue; }
                if (n == sft_tensor_numel(g)) CHECK_REL(name, (const float *)g->data, want, n, grad_tol);
                else CHECK_MSG(0, "%s: %lld values, fixture %lld", name, (long long)sft_tensor_numel(g), (long long)n);
            }
        }
done:
    t_expect_close(&e);
    sft_model_destroy(m);
    sft_context_destroy(ctx);
}

static void llama_lora_gradients_match_peft(void) { t_lora_case("llama", SFT_QUANT_NONE, "", 0); }
static void qwen2_lora_gradients_match_peft(void) { t_lora_case("qwen2", SFT_QUANT_NONE, "", 0); }
static void mistral_lora_gradients_match_peft(void) { t_lora_case("mistral", SFT_QUANT_NONE, "", 0); }
static void checkpointed_blocks_give_the_same_gradients(void) { t_lora_case("llama", SFT_QUANT_NONE, "", 1); }
/* compute_dtype bf16 (bnb_4bit_compute_dtype bfloat16) against transformers'
   f32 NF4 run: every GEMM of the frozen base rounds its operands to bf16 (8
   significant bits: relative error up to 2^-8 = 0.4% a product), summed in
   f32. Bounds stated with room for the two layers and the output projection
   compounding: logits 2% of the largest, loss 0.1%, LoRA gradients 5% of the
   tensor's largest (measured: 0.54%, 0.004%, 1.7%). */
static void bf16_compute_stays_within_its_bounds_of_f32(void) {
    t_lora_case_tol("llama", SFT_QUANT_NF4, "nf4.", 0, 1, 2e-2, 1e-3, 5e-2);
}
static void nf4_llama_lora_gradients_match_peft_on_bitsandbytes(void) { t_lora_case("llama", SFT_QUANT_NF4, "nf4.", 0); }

static void nf4_llama_logits_match_bitsandbytes(void) {
    sft_context *ctx = t_context(2);
    t_expect e;
    sft_model *m = t_load(ctx, "llama", SFT_QUANT_NF4);
    sft_model_output out;
    if (m && t_expect_open(ctx, "llama", &e)) {
        sft_step_begin(ctx);
        CHECK_OK(t_forward(m, &e, 0, 0, &out));
        t_check_logits(&e, "nf4.logits", out.logits);
        t_check_loss(&e, "nf4.loss", out.loss);
    }
    t_expect_close(&e);
    sft_model_destroy(m);
    sft_context_destroy(ctx);
}

/* A bnb-4bit checkpoint transformers saved: its weights dequantize to exactly
   bitsandbytes' values, and the model gives the NF4 logits. */
static void a_bnb_4bit_checkpoint_loads_as_stored(void) {
    sft_context *ctx = t_context(2);
    t_expect e;
    sft_model *m = t_load(ctx, "llama_bnb4", SFT_QUANT_NONE);
    static const struct { int layer; const char *module, *name; } mods[] = {
        {0, "q_proj", "bnb4.dequant.model.layers.0.self_attn.q_proj"}, {1, "down_proj", "bnb4.dequant.model.layers.1.mlp.down_proj"}};
    int i;
    if (m && t_expect_open(ctx, "llama", &e)) {
        sft_model_output out;
        CHECK(sft_model_get_config(m)->prequantized == SFT_QUANT_NF4);
        for (i = 0; i < 2; i++) {
            const sft_qweight *q = sft_linear_base_qweight(sft_model_linear(m, mods[i].layer, mods[i].module));
            sft_tensor *w = NULL;
            int64_t n = 0;
            const float *want = (const float *)t_st_data(e.f, mods[i].name, &n);
            CHECK_MSG(q != NULL, "%s is not 4-bit", mods[i].name);
            if (q) CHECK_OK(sft_dequantize(ctx, q, &w));
            if (w && want) { CHECK(n == sft_tensor_numel(w)); CHECK_SAME(mods[i].name, (const float *)w->data, want, n); }
            sft_tensor_destroy(w);
        }
        sft_step_begin(ctx);
        CHECK_OK(t_forward(m, &e, 0, 0, &out));
        t_check_logits(&e, "nf4.logits", out.logits);
    }
    t_expect_close(&e);
    sft_model_destroy(m);
    sft_context_destroy(ctx);
}

/* PEFT's saved adapter gives PEFT's logits; saved again by sft.h and loaded
   into a fresh model it gives the same bits. */
static void a_peft_adapter_reproduces_peft_logits_and_saves_back(void) {
    sft_context *ctx = t_context(2);
    t_expect e;
    sft_model *m = t_load(ctx, "llama", SFT_QUANT_NONE), *m2 = t_load(ctx, "llama", SFT_QUANT_NONE);
    sft_model_output out, out2;
    char dir[512];
    float *first = NULL;
    if (!m || !m2 || !t_expect_open(ctx, "llama", &e)) goto done;
    CHECK_OK(sft_model_load_adapter(m, T_MFIX "llama/adapter", "default"));
    sft_step_begin(ctx);
    CHECK_OK(t_forward(m, &e, 0, 0, &out));
    t_check_logits(&e, "lora.logits", out.logits);
    if (out.logits) {
        first = (float *)malloc(sft_tensor_nbytes(out.logits));
        memcpy(first, out.logits->data, sft_tensor_nbytes(out.logits));
    }
    snprintf(dir, sizeof dir, "%s/saved_adapter", t_tmpdir());
    CHECK_OK(sft_model_save_adapter(m, "default", dir));
    CHECK_OK(sft_model_load_adapter(m2, dir, "mine"));
    sft_step_begin(ctx);
    CHECK_OK(t_forward(m2, &e, 0, 0, &out2));
    if (first && out2.logits) CHECK_SAME("reloaded adapter", (const float *)out2.logits->data, first, sft_tensor_numel(out2.logits));
    CHECK_STATUS(sft_model_load_adapter(m2, dir, "mine"), SFT_ERR_ARG);    /* the name is taken */
    {   /* the config PEFT reads */
        char path[600], *text = NULL;
        size_t len = 0;
        sft_json *j = NULL;
        snprintf(path, sizeof path, "%s/adapter_config.json", dir);
        CHECK_OK(sft_file_read(ctx, path, 0, &text, &len));
        if (text) CHECK_OK(sft_json_parse(ctx, text, len, path, NULL, &j));
        if (j) {
            CHECK(strcmp(sft_json_get(j, "peft_type")->string, "LORA") == 0 && sft_json_get(j, "r")->number == 4 &&
                  sft_json_get(j, "lora_alpha")->number == 8 && sft_json_get(j, "target_modules")->length == 7 &&
                  strcmp(sft_json_get(j, "task_type")->string, "CAUSAL_LM") == 0);
        }
        sft_json_free(j); sft_free(ctx, text);
    }
done:
    free(first);
    t_expect_close(&e);
    sft_model_destroy(m); sft_model_destroy(m2);
    sft_context_destroy(ctx);
}

/* PeftModelForCausalLM with prompt tuning: virtual tokens in front, their mask
   and -100 labels; logits, loss and the prompt embeddings' gradient. */
static void prompt_tuning_matches_peft(void) {
    sft_context *ctx = t_context(2);
    t_expect e;
    sft_model *m = t_load(ctx, "llama", SFT_QUANT_NONE);
    sft_tensor *prompts = NULL, *emb = NULL;
    sft_prompt_batch pb;
    sft_model_batch b;
    sft_model_run run;
    sft_model_output out;
    int64_t n = 0;
    if (!m || !t_expect_open(ctx, "llama", &e)) goto done;
    CHECK_OK(sft_st_load(ctx, e.f, "prompt.embeddings", &prompts));
    if (!prompts) goto done;
    sft_tensor_set_requires_grad(prompts, 1);
    sft_step_begin(ctx);
    CHECK_OK(sft_model_embed(m, e.ids, &emb));
    if (emb) CHECK_OK(sft_prompt_prepend(ctx, prompts, emb, e.mask, e.labels, &pb));
    if (!emb || !pb.embeds) goto done;
    memset(&b, 0, sizeof b); memset(&run, 0, sizeof run);
    b.inputs_embeds = pb.embeds; b.attention_mask = pb.attention_mask; b.labels = pb.labels; b.positions = pb.positions;
    run.want_logits = 1; run.training = 1;
    CHECK_OK(sft_model_forward(m, &b, &run, &out));
    if (out.logits) {      /* logits where the extended mask is 1 */
        t_expect e3 = e;
        e3.mask = pb.attention_mask;
        t_check_logits(&e3, "prompt.logits", out.logits);
    }
    t_check_loss(&e, "prompt.loss", out.loss);
    if (out.loss) CHECK_OK(sft_backward(ctx, out.loss));
    if (prompts->grad) {
        const float *want = (const float *)t_st_data(e.f, "prompt.grad", &n);
        if (want && n == sft_tensor_numel(prompts)) CHECK_REL("prompt.grad", (const float *)prompts->grad->data, want, n, T_GRAD_TOL);
    } else CHECK_MSG(0, "the prompt embeddings got no gradient");
    {   /* TEXT init: the embeddings of the init ids, repeated */
        sft_tensor *t = NULL;
        int32_t ids[2] = {5, 9};
        CHECK_OK(sft_model_prompt_init_text(m, ids, 2, 3, &t));
        if (t) {
            CHECK(t->requires_grad && t->shape[0] == 3);
            CHECK(memcmp((float *)t->data, (float *)t->data + 2 * 64, 64 * 4) == 0);      /* row 2 repeats id 5 */
            CHECK(memcmp((float *)t->data, (float *)t->data + 64, 64 * 4) != 0);
        }
        sft_tensor_destroy(t);
    }
done:
    sft_tensor_destroy(prompts);
    t_expect_close(&e);
    sft_model_destroy(m);
    sft_context_destroy(ctx);
}

/* Two sequences packed in one row (sequence ids, restarting positions) give the
   logits each gives alone. */
static void packed_rows_equal_separate_rows(void) {
    sft_context *ctx = t_context(2);
    sft_model *m = t_load(ctx, "llama", SFT_QUANT_NONE);
    static const int32_t a[4] = {17, 200, 3, 99}, b[3] = {45, 45, 128};
    int64_t s1[2] = {1, 4}, s2[2] = {1, 3}, s7[2] = {1, 7};
    sft_tensor *ta = NULL, *tb = NULL, *tp = NULL, *seq = NULL, *pos = NULL;
    float *la = NULL, *lb = NULL;
    int i;
    if (!m) goto done;
    CHECK_OK(sft_tensor_create(ctx, SFT_I32, 2, s1, &ta)); CHECK_OK(sft_tensor_create(ctx, SFT_I32, 2, s2, &tb));
    CHECK_OK(sft_tensor_create(ctx, SFT_I32, 2, s7, &tp)); CHECK_OK(sft_tensor_create(ctx, SFT_I32, 2, s7, &seq));
    CHECK_OK(sft_tensor_create(ctx, SFT_I32, 2, s7, &pos));
    if (!ta || !tb || !tp || !seq || !pos) goto done;
    memcpy(ta->data, a, 16); memcpy(tb->data, b, 12);
    for (i = 0; i < 7; i++) {
        ((int32_t *)tp->data)[i] = i < 4 ? a[i] : b[i - 4];
        ((int32_t *)seq->data)[i] = i >= 4;
        ((int32_t *)pos->data)[i] = i < 4 ? i : i - 4;
    }
    for (i = 0; i < 3; i++) {
        sft_model_batch bt;
        sft_model_output out;
        memset(&bt, 0, sizeof bt);
        bt.input_ids = i == 0 ? ta : i == 1 ? tb : tp;
        if (i == 2) { bt.seq_ids = seq; bt.positions = pos; }
        sft_step_begin(ctx);
        CHECK_OK(sft_model_forward(m, &bt, NULL, &out));
        if (!out.logits) continue;
        if (i == 0) { la = (float *)malloc(4 * 256 * 4); memcpy(la, out.logits->data, 4 * 256 * 4); }
        else if (i == 1) { lb = (float *)malloc(3 * 256 * 4); memcpy(lb, out.logits->data, 3 * 256 * 4); }
        else if (la && lb) {
            CHECK_REL("first sequence", (const float *)out.logits->data, la, 4 * 256, 1e-6);
            CHECK_REL("second sequence", (const float *)out.logits->data + 4 * 256, lb, 3 * 256, 1e-6);
        }
    }
done:
    free(la); free(lb);
    sft_tensor_destroy(ta); sft_tensor_destroy(tb); sft_tensor_destroy(tp); sft_tensor_destroy(seq); sft_tensor_destroy(pos);
    sft_model_destroy(m);
    sft_context_destroy(ctx);
}

/* a model directory under the test's scratch directory: the llama fixture's
   config.json with one piece of text replaced, its weights linked (or, with
   truncate > 0, copied and cut to that many bytes) */
static const char *t_bad_dir(sft_context *ctx, const char *name, const char *from, const char *to, long truncate) {
    static char dir[512];
    char path[700], target[700], cwd[400], *text = NULL, *hit;
    size_t len = 0;
    FILE *f;
    snprintf(dir, sizeof dir, "%s/%s", t_tmpdir(), name);
    mkdir(dir, 0777);
    CHECK_OK(sft_file_read(ctx, T_MFIX "llama/config.json", 0, &text, &len));
    if (!text) return dir;
    snprintf(path, sizeof path, "%s/config.json", dir);
    f = fopen(path, "wb");
    hit = from ? strstr(text, from) : NULL;
    CHECK_MSG(!from || hit, "'%s' is not in the config", from);
    if (f && hit) { fwrite(text, 1, (size_t)(hit - text), f); fputs(to, f); fputs(hit + strlen(from), f); }
    else if (f) fputs(text, f);
    if (f) fclose(f);
    sft_free(ctx, text);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (truncate > 0) {
        CHECK_OK(sft_file_read(ctx, T_MFIX "llama/model.safetensors", 0, &text, &len));
        f = fopen(path, "wb");
        if (f && text) fwrite(text, 1, (size_t)truncate, f);
        if (f) fclose(f);
        sft_free(ctx, text);
    } else if (getcwd(cwd, sizeof cwd)) {
        snprintf(target, sizeof target, "%s/" T_MFIX "llama/model.safetensors", cwd);
        CHECK(symlink(target, path) == 0);
    }
    return dir;
}

static void t_load_fails(sft_context *ctx, const char *dir, sft_status want, const char *mention) {
    sft_model *m = (sft_model *)1;
    CHECK_STATUS(sft_model_load(ctx, dir, NULL, &m), want);
    CHECK_ERROR_MENTIONS(mention);
    CHECK(m == NULL);
}

static void bad_model_directories_are_refused(void) {
    sft_context *ctx = t_context(1);
    t_load_fails(ctx, t_bad_dir(ctx, "arch", "LlamaForCausalLM", "GPT2LMHeadModel", 0), SFT_ERR_UNSUPPORTED, "GPT2LMHeadModel");
    t_load_fails(ctx, t_bad_dir(ctx, "act", "\"silu\"", "\"gelu\"", 0), SFT_ERR_UNSUPPORTED, "hidden_act 'gelu'");
    t_load_fails(ctx, t_bad_dir(ctx, "rope", "\"llama3\"", "\"yarn\"", 0), SFT_ERR_UNSUPPORTED, "'yarn'");
    t_load_fails(ctx, t_bad_dir(ctx, "dtype", "\"float32\"", "\"int8\"", 0), SFT_ERR_UNSUPPORTED, "'int8'");
    t_load_fails(ctx, t_bad_dir(ctx, "heads", "\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3", 0), SFT_ERR_FORMAT, "kv heads 3");
    t_load_fails(ctx, t_bad_dir(ctx, "neg", "\"vocab_size\": 256", "\"vocab_size\": -256", 0), SFT_ERR_FORMAT, "vocab_size");
    t_load_fails(ctx, t_bad_dir(ctx, "shape", "\"hidden_size\": 64", "\"hidden_size\": 32", 0), SFT_ERR_SHAPE,
                 "model.embed_tokens.weight");
    t_load_fails(ctx, t_bad_dir(ctx, "layers", "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3", 0), SFT_ERR_NOT_FOUND,
                 "model.layers.2.input_layernorm.weight");
    t_load_fails(ctx, t_bad_dir(ctx, "bias", "\"attention_bias\": false", "\"attention_bias\": true", 0),
                 SFT_ERR_NOT_FOUND, "q_proj.bias");
    t_load_fails(ctx, t_bad_dir(ctx, "truncated", NULL, NULL, 300000), SFT_ERR_FORMAT, "model.safetensors");
    t_load_fails(ctx, t_bad_dir(ctx, "quant", "\"vocab_size\": 256", "\"vocab_size\": 256, \"quantization_config\": {\"quant_method\": \"gptq\"}", 0),
                 SFT_ERR_UNSUPPORTED, "gptq");
    t_load_fails(ctx, T_MFIX "nowhere", SFT_ERR_IO, "config.json");
    sft_context_destroy(ctx);
}

/* A bnb-4bit checkpoint whose quant_state disagrees with its tensors, and an
   adapter saved from one model loaded into another, are refused by name. */
static void inconsistent_quant_states_and_foreign_adapters_are_refused(void) {
    sft_context *ctx = t_context(1);
    sft_st_file *f = NULL;
    sft_model *m = NULL, *q2 = NULL;
    char dir[512], path[600], cwd[400], target[700];
    int i, n;
    snprintf(dir, sizeof dir, "%s/bnb_bad", t_tmpdir());
    mkdir(dir, 0777);
    CHECK_OK(sft_st_open(ctx, T_MFIX "llama_bnb4/model.safetensors", &f));
    if (f && getcwd(cwd, sizeof cwd)) {
        sft_st_entry *e;
        static const char bad_state[] = "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"float32\", \"shape\": [64, 32], "
                                        "\"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": 0.1}";
        n = sft_st_count(f);
        e = (sft_st_entry *)calloc((size_t)n, sizeof *e);
        for (i = 0; i < n; i++) {
            const sft_st_tensor *t = sft_st_tensor_at(f, i);
            e[i].name = t->name; e[i].dtype = t->dtype; e[i].ndim = t->ndim; e[i].data = t->data;
            memcpy(e[i].shape, t->shape, sizeof e[i].shape);
            if (strcmp(t->name, "model.layers.0.self_attn.q_proj.weight.quant_state.bitsandbytes__nf4") == 0) {
                e[i].data = bad_state; e[i].shape[0] = (int64_t)strlen(bad_state);
            }
        }
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        CHECK_OK(sft_st_save(ctx, path, e, n, NULL, NULL, 0));
        free(e);
        snprintf(path, sizeof path, "%s/config.json", dir);
        snprintf(target, sizeof target, "%s/" T_MFIX "llama_bnb4/config.json", cwd);
        CHECK(symlink(target, path) == 0);
        t_load_fails(ctx, dir, SFT_ERR_FORMAT, "quant_state of 'model.layers.0.self_attn.q_proj.weight' has a bad 'shape'");
    }
    sft_st_close(f);
    m = t_load(ctx, "llama", SFT_QUANT_NONE);
    q2 = t_load(ctx, "qwen2", SFT_QUANT_NONE);
    if (m && q2) {
        CHECK_STATUS(sft_model_load_adapter(q2, T_MFIX "llama/adapter", "x"), SFT_ERR_SHAPE);
        CHECK_ERROR_MENTIONS("another model");
        CHECK(sft_linear_adapter_weights(sft_model_linear(q2, 0, "q_proj"), "x", NULL) != SFT_OK);   /* nothing half-loaded */
        CHECK_STATUS(sft_model_add_lora(m, "y", NULL, "q_proj,lm_head"), SFT_ERR_ARG);
        CHECK_ERROR_MENTIONS("lm_head");
        CHECK_STATUS(sft_model_load_adapter(m, T_MFIX "nowhere", "z"), SFT_ERR_IO);
    }
    sft_model_destroy(m); sft_model_destroy(q2);
    sft_context_destroy(ctx);
}

/* transformers' greedy continuation (model.generate, do_sample False) */
static void greedy_generation_matches_transformers(void) {
    sft_context *ctx = t_context(2);
    t_expect e;
    sft_model *m = t_load(ctx, "llama", SFT_QUANT_NONE);
    sft_tensor *in = NULL, *want = NULL;
    int32_t *ids = NULL;
    int n = 0, i;
    sft_generate_desc d;
    if (!m || !t_expect_open(ctx, "llama", &e)) goto done;
    CHECK_OK(sft_st_load(ctx, e.f, "generate.input_ids", &in));
    CHECK_OK(sft_st_load(ctx, e.f, "generate.output_ids", &want));
    if (!in || !want) goto done;
    memset(&d, 0, sizeof d);
    d.max_new_tokens = (int)(want->shape[1] - in->shape[1]);
    CHECK_OK(sft_model_generate(m, (const int32_t *)in->data, (int)in->shape[1], &d, &ids, &n));
    CHECK_MSG(n == d.max_new_tokens, "%d new tokens, want %d", n, d.max_new_tokens);
    for (i = 0; ids && i < n && i < d.max_new_tokens; i++)
        CHECK_MSG(ids[i] == ((const int32_t *)want->data)[in->shape[1] + i], "token %d: %d, transformers %d", i, ids[i],
                  ((const int32_t *)want->data)[in->shape[1] + i]);
    sft_free(ctx, ids);
done:
    sft_tensor_destroy(in); sft_tensor_destroy(want);
    t_expect_close(&e);
    sft_model_destroy(m);
    sft_context_destroy(ctx);
}

/* Decoding with the cache gives the logits a full forward gives at each
   position; sampling repeats with its seed; top_k 1 is greedy; bad settings
   are refused. */
static void kv_cache_decoding_equals_the_full_forward(void) {
    sft_context *ctx = t_context(2);
    sft_model *m = t_load(ctx, "qwen2", SFT_QUANT_NONE);
    static const int32_t prompt[5] = {3, 141, 59, 26, 5};
    int32_t *a = NULL, *b = NULL, *c = NULL, *g = NULL;
    int na = 0, nb = 0, nc = 0, ng = 0, i;
    sft_generate_desc d;
    if (!m) goto done;
    memset(&d, 0, sizeof d);
    d.max_new_tokens = 6; d.no_eos_stop = 1;
    CHECK_OK(sft_model_generate(m, prompt, 5, &d, &g, &ng));
    if (g && ng == 6) {      /* the full sequence's logits pick the same tokens at each step */
        int64_t shape[2] = {1, 10};
        sft_tensor *ids = NULL;
        sft_model_batch bt;
        sft_model_output out;
        CHECK_OK(sft_tensor_create(ctx, SFT_I32, 2, shape, &ids));
        if (ids) {
            for (i = 0; i < 10; i++) ((int32_t *)ids->data)[i] = i < 5 ? prompt[i] : g[i - 5];
            memset(&bt, 0, sizeof bt);
            bt.input_ids = ids;
            sft_step_begin(ctx);
            CHECK_OK(sft_model_forward(m, &bt, NULL, &out));
            for (i = 4; out.logits && i < 10; i++) {
                const float *l = (const float *)out.logits->data + i * 256;
                int k, best = 0;
                for (k = 1; k < 256; k++) if (l[k] > l[best]) best = k;
                CHECK_MSG(best == g[i - 4], "position %d: full forward picks %d, the cache %d", i, best, g[i - 4]);
            }
        }
        sft_tensor_destroy(ids);
    }
    d.temperature = 0.8f; d.top_k = 50; d.top_p = 0.9f; d.seed = 7;
    CHECK_OK(sft_model_generate(m, prompt, 5, &d, &a, &na));
    CHECK_OK(sft_model_generate(m, prompt, 5, &d, &b, &nb));
    CHECK(a && b && na == nb && memcmp(a, b, (size_t)na * 4) == 0);
    d.top_k = 1; d.top_p = 0;
    CHECK_OK(sft_model_generate(m, prompt, 5, &d, &c, &nc));
    CHECK(c && g && nc == ng && memcmp(c, g, (size_t)nc * 4) == 0);
    sft_free(ctx, c);
    d.temperature = -1;
    CHECK_STATUS(sft_model_generate(m, prompt, 5, &d, &c, &nc), SFT_ERR_ARG);
    {
        int32_t bad = 999;
        d.temperature = 0;
        CHECK_STATUS(sft_model_generate(m, &bad, 1, &d, &c, &nc), SFT_ERR_ARG); CHECK_ERROR_MENTIONS("vocabulary");
    }
done:
    sft_free(ctx, a); sft_free(ctx, b); sft_free(ctx, g);
    sft_model_destroy(m);
    sft_context_destroy(ctx);
}

/* The plan, made before any step, against the allocator's high-water mark over a
   steady training step (the second; the first sizes the step arena), with and
   without gradient checkpointing, dense and NF4. */
static void t_plan_case(sft_quant_type quant, int checkpointing, int dropout) {
    sft_context *ctx = t_context(2);
    sft_model *m = t_load(ctx, "llama", quant);
    sft_lora_desc d;
    sft_model_run run;
    sft_memory_plan plan;
    sft_tensor *ids = NULL;
    int64_t shape[2] = {4, 64}, i;
    int step;
    uint64_t seed = 3;
    size_t peak = 0, want;
    if (!m) goto done;
    memset(&d, 0, sizeof d);
    d.r = 8; d.alpha = 16; d.dropout = dropout ? 0.1f : 0.0f;
    CHECK_OK(sft_model_add_lora(m, "default", &d, "all-linear"));
    memset(&run, 0, sizeof run);
    run.training = 1; run.gradient_checkpointing = checkpointing;
    CHECK_OK(sft_model_memory_plan(m, 4, 64, &run, &plan));
    CHECK(plan.total == plan.weights + plan.adapters + plan.gradients + plan.optimizer + plan.activations + plan.workspace);
    CHECK_OK(sft_tensor_create(ctx, SFT_I32, 2, shape, &ids));
    for (i = 0; ids && i < 4 * 64; i++) ((int32_t *)ids->data)[i] = (int32_t)(t_rand(&seed, 0, 255.99f));
    for (step = 0; ids && step < 2; step++) {
        sft_model_batch b;
        sft_model_output out;
        memset(&b, 0, sizeof b);
        b.input_ids = ids; b.labels = ids;
        sft_step_begin(ctx);
        if (step == 1) sft_context_mem_reset_peak(ctx);
        CHECK_OK(sft_model_forward(m, &b, &run, &out));
        if (out.loss) CHECK_OK(sft_backward(ctx, out.loss));
        if (step == 1) peak = sft_context_mem_stats(ctx).peak_bytes - sft_tensor_nbytes(ids) - sizeof(sft_tensor);
    }
    want = plan.total - plan.optimizer;
    CHECK_MSG(peak > 0 && fabs((double)peak - (double)want) <= 0.10 * (double)peak,
              "plan %zu (weights %zu adapters %zu gradients %zu activations %zu workspace %zu) vs measured %zu (%+.1f%%)", want,
              plan.weights, plan.adapters, plan.gradients, plan.activations, plan.workspace, peak,
              100.0 * ((double)want - (double)peak) / (double)peak);
    if (getenv("SFT_TEST_VERBOSE"))
        printf("    plan %zu vs measured %zu (%+.2f%%; activations %zu)\n", want, peak, 100.0 * ((double)want - (double)peak) / (double)peak,
               plan.activations);
done:
    sft_tensor_destroy(ids);
    sft_model_destroy(m);
    sft_context_destroy(ctx);
}

static void the_memory_plan_is_within_10_percent(void) {
    t_plan_case(SFT_QUANT_NONE, 0, 0);
    t_plan_case(SFT_QUANT_NONE, 1, 0);
    t_plan_case(SFT_QUANT_NF4, 0, 1);
    t_plan_case(SFT_QUANT_NF4, 1, 1);
}

/* A list-valued eos_token_id stops generation at any of its ids; adapters on
   different projections can be activated together or alone (a layer without
   one runs without it). */
static void eos_lists_and_partial_adapters(void) {
    sft_context *ctx = t_context(1);
    sft_model *m = NULL;
    static const int32_t prompt[4] = {58, 23, 77, 227};
    int32_t *ids = NULL;
    int n = 0;
    sft_generate_desc g;
    sft_lora_desc d;
    const char *b = "b", *none = "zzz";
    CHECK_OK(sft_model_load(ctx, t_bad_dir(ctx, "eos_list", "\"eos_token_id\": 2", "\"eos_token_id\": [2, 115]", 0), NULL, &m));
    if (!m) goto done;
    CHECK(sft_model_get_config(m)->n_eos == 2 && sft_model_get_config(m)->eos_token_id == 2);
    memset(&g, 0, sizeof g);
    g.max_new_tokens = 8;
    CHECK_OK(sft_model_generate(m, prompt, 4, &g, &ids, &n));
    CHECK_MSG(n == 2 && ids && ids[0] == 99 && ids[1] == 115, "%d tokens (want 99, 115 and a stop at eos 115)", n);
    sft_free(ctx, ids);
    memset(&d, 0, sizeof d);
    CHECK_OK(sft_model_add_lora(m, "a", &d, "all-linear"));
    CHECK_OK(sft_model_add_lora(m, "b", &d, "q_proj"));
    CHECK_OK(sft_model_set_active(m, &b, 1));
    CHECK_STATUS(sft_model_set_active(m, &none, 1), SFT_ERR_NOT_FOUND);
done:
    sft_model_destroy(m);
    sft_context_destroy(ctx);
}

/* a mixed batch (one adapter per row) runs in eval mode and is refused in
   training mode, as PEFT refuses adapter_names when the model is training */
static void adapter_names_are_for_inference_only(void) {
    sft_context *ctx = t_context(1);
    sft_model *m = NULL;
    sft_lora_desc d;
    sft_tensor *ids = NULL;
    int64_t shape[2] = {2, 5};
    const char *names[2] = {"a", "__base__"};
    sft_model_batch b;
    sft_model_run run;
    sft_model_output out;
    int k;
    CHECK_OK(sft_model_load(ctx, "tests/fixtures/models/qwen2", NULL, &m));
    memset(&d, 0, sizeof d);
    d.r = 4; d.alpha = 8; d.seed = 3;
    if (m) CHECK_OK(sft_model_add_lora(m, "a", &d, "q_proj,v_proj"));
    CHECK_OK(sft_tensor_create(ctx, SFT_I32, 2, shape, &ids));
    if (!m || !ids) goto done;
    for (k = 0; k < 10; k++) ((int32_t *)ids->data)[k] = 3 + 7 * k;
    memset(&b, 0, sizeof b); memset(&run, 0, sizeof run);
    b.input_ids = ids;
    run.want_logits = 1; run.adapter_names = names; run.n_adapter_names = 2;
    CHECK_OK(sft_model_forward(m, &b, &run, &out));
    run.training = 1;
    CHECK(sft_model_forward(m, &b, &run, &out) == SFT_ERR_ARG && strstr(sft_last_error(), "training mode"));
done:
    sft_tensor_destroy(ids);
    sft_model_destroy(m);
    sft_context_destroy(ctx);
}

void suite_model(void) {
    RUN(adapter_names_are_for_inference_only);
    RUN(llama_logits_and_loss_match_transformers);
    RUN(qwen2_logits_and_loss_match_transformers);
    RUN(mistral_logits_and_loss_match_transformers);
    RUN(llama_lora_gradients_match_peft);
    RUN(qwen2_lora_gradients_match_peft);
    RUN(mistral_lora_gradients_match_peft);
    RUN(checkpointed_blocks_give_the_same_gradients);
    RUN(bf16_compute_stays_within_its_bounds_of_f32);
    RUN(nf4_llama_logits_match_bitsandbytes);
    RUN(nf4_llama_lora_gradients_match_peft_on_bitsandbytes);
    RUN(a_bnb_4bit_checkpoint_loads_as_stored);
    RUN(a_peft_adapter_reproduces_peft_logits_and_saves_back);
    RUN(prompt_tuning_matches_peft);
    RUN(packed_rows_equal_separate_rows);
    RUN(greedy_generation_matches_transformers);
    RUN(kv_cache_decoding_equals_the_full_forward);
    RUN(the_memory_plan_is_within_10_percent);
    RUN(eos_lists_and_partial_adapters);
    RUN(bad_model_directories_are_refused);
    RUN(inconsistent_quant_states_and_foreign_adapters_are_refused);
}
