/* test_archs.c - the newer architectures (Qwen3: per-head q/k RMSNorm; SmolLM3:
   layers without RoPE; Gemma 2: (1 + w) sandwich norms, GeGLU, soft caps,
   alternating windows; Gemma 3: q/k norms, local and global RoPE, 5:1
   windows; Phi-3: fused projections, partial rotary, longrope) from
   directories transformers saved: logits and loss against transformers (also
   on a row past every window), every LoRA gradient against PEFT, the same on
   an NF4 base bitsandbytes quantized, PEFT's saved adapter both ways, a TRL
   run step by step, the KV cache against the full forward, gradient
   checkpointing, the memory plan against the allocator, and the config fields
   each class reads. Fixtures: tools/make_arch_fixtures.py. */
#include "test.h"
#include <sys/stat.h>

#define T_COUNT(a) (sizeof(a) / sizeof((a)[0]))

#define T_AFIX "tests/fixtures/archs/"
#ifndef T_ARCH_TOL                /* of the largest value: logits, gradients (-D a smaller one to see the errors) */
#define T_ARCH_TOL 1e-5
#endif

static const char *const t_archs[] = {"qwen3", "smollm3", "gemma2", "gemma3", "phi3"};
/* every projection name a model may have (Phi-3 fuses q, k, v and gate, up) */
enum { T_NPROJ = 9 };
static const char *const t_proj[T_NPROJ] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
                                            "qkv_proj", "gate_up_proj"};
static const char *const t_parent[T_NPROJ] = {"self_attn", "self_attn", "self_attn", "self_attn", "mlp", "mlp", "mlp",
                                              "self_attn", "mlp"};

typedef struct t_fix { sft_st_file *f; sft_tensor *ids, *mask, *labels; } t_fix;

static int t_fix_open(sft_context *ctx, const char *arch, t_fix *x) {
    char path[256];
    memset(x, 0, sizeof *x);
    snprintf(path, sizeof path, T_AFIX "%s/expected.safetensors", arch);
    CHECK_OK(sft_st_open(ctx, path, &x->f));
    if (!x->f) return 0;
    CHECK_OK(sft_st_load(ctx, x->f, "input_ids", &x->ids));
    CHECK_OK(sft_st_load(ctx, x->f, "attention_mask", &x->mask));
    CHECK_OK(sft_st_load(ctx, x->f, "labels", &x->labels));
    return x->ids && x->mask && x->labels;
}

/* a fixture not opened yet (closing it does nothing) */
static t_fix t_fix_zero(void) {
    t_fix x;
    memset(&x, 0, sizeof x);
    return x;
}

static void t_fix_close(t_fix *x) {
    sft_tensor_destroy(x->ids); sft_tensor_destroy(x->mask); sft_tensor_destroy(x->labels);
    sft_st_close(x->f);
}

static sft_model *t_arch_load(sft_context *ctx, const char *arch, sft_quant_type quant) {
    char dir[256];
    sft_load_desc d;
    sft_model *m = NULL;
    memset(&d, 0, sizeof d);
    d.quant = quant;      /* no double quantization, as the fixture (see tools/make_arch_fixtures.py) */
    snprintf(dir, sizeof dir, T_AFIX "%s", arch);
    CHECK_OK(sft_model_load(ctx, dir, &d, &m));
    return m;
}

static sft_status t_arch_forward(sft_model *m, const t_fix *x, int training, int checkpointing, sft_model_output *out) {
    sft_model_batch b;
    sft_model_run run;
    memset(&b, 0, sizeof b);
    memset(&run, 0, sizeof run);
    b.input_ids = x->ids; b.attention_mask = x->mask; b.labels = x->labels;
    run.want_logits = 1; run.training = training; run.gradient_checkpointing = checkpointing;
    return sft_model_forward(m, &b, &run, out);
}

/* logits where the mask keeps them, relative to the largest; the loss relative */
static void t_arch_check(const char *arch, const t_fix *x, const char *logits_name, const sft_tensor *logits, const char *loss_name,
                         const sft_tensor *loss) {
    int64_t n = 0, V, i, k, kept = 0;
    const float *want = (const float *)t_st_data(x->f, logits_name, &n), *wl = (const float *)t_st_data(x->f, loss_name, NULL);
    float *a, *b;
    char what[128];
    if (!want || !logits || !wl || !loss || n != sft_tensor_numel(logits)) {
        t_failf(__FILE__, __LINE__, "%s %s: missing or misshapen", arch, logits_name);
        return;
    }
    V = logits->shape[logits->ndim - 1];
    a = (float *)malloc((size_t)n * 4); b = (float *)malloc((size_t)n * 4);
    for (i = 0; i < n / V; i++)
        if (((const int32_t *)x->mask->data)[i]) {
            for (k = 0; k < V; k++) { a[kept * V + k] = ((const float *)logits->data)[i * V + k]; b[kept * V + k] = want[i * V + k]; }
            kept++;
        }
    snprintf(what, sizeof what, "%s %s", arch, logits_name);
    CHECK_REL(what, a, b, kept * V, T_ARCH_TOL);
    CHECK_MSG(fabsf(*(const float *)loss->data - *wl) <= T_ARCH_TOL * fabsf(*wl), "%s %s: %.9g vs %.9g", arch, loss_name,
              *(const float *)loss->data, *wl);
    free(a); free(b);
}

/* what a run logs, step by step */
typedef struct t_steps { int n, step[32]; double loss[32], grad_norm[32]; } t_steps;

static void t_on_step_log(const sft_log_entry *e, void *user) {
    t_steps *s = (t_steps *)user;
    if (e->is_eval || s->n == 32) return;
    s->step[s->n] = (int)e->global_step; s->loss[s->n] = e->loss; s->grad_norm[s->n] = e->grad_norm;
    s->n++;
}

static void t_key(char *buf, size_t cap, int layer, int p, const char *what) {
    snprintf(buf, cap, "base_model.model.model.layers.%d.%s.%s.%s.weight", layer, t_parent[p], t_proj[p], what);
}

static void t_plain(const char *arch) {
    sft_context *ctx = t_context(2);
    t_fix x = t_fix_zero();
    sft_model *m = t_arch_load(ctx, arch, SFT_QUANT_NONE);
    sft_model_output out;
    if (m && t_fix_open(ctx, arch, &x)) {
        sft_step_begin(ctx);
        CHECK_OK(t_arch_forward(m, &x, 0, 0, &out));
        t_arch_check(arch, &x, "logits", out.logits, "loss", out.loss);
    }
    t_fix_close(&x);
    sft_model_destroy(m);
    sft_context_destroy(ctx);
}

/* LoRA with the fixture's A and B: logits, loss, every gradient of A and B */
static void t_lora(const char *arch, sft_quant_type quant, const char *prefix, int checkpointing) {
    sft_context *ctx = t_context(2);
    t_fix x = t_fix_zero();
    sft_model *m = t_arch_load(ctx, arch, quant);
    sft_model_output out;
    sft_lora_desc d;
    char key[256], name[320], name2[400];
    int layer, p, ab, n_grads = 0;
    memset(&d, 0, sizeof d);
    d.r = 4; d.alpha = 8;
    if (!m || !t_fix_open(ctx, arch, &x)) goto done;
    CHECK_OK(sft_model_add_lora(m, "default", &d, "all-linear"));
    for (layer = 0; layer < sft_model_get_config(m)->num_hidden_layers; layer++)
        for (p = 0; p < T_NPROJ; p++) {
            sft_lora_weights w;
            if (sft_linear_adapter_weights(sft_model_linear(m, layer, t_proj[p]), "default", &w) != SFT_OK) continue;
            t_key(key, sizeof key, layer, p, "lora_A");
            if (t_st_data(x.f, key, NULL)) memcpy(w.A->data, t_st_data(x.f, key, NULL), sft_tensor_nbytes(w.A));
            t_key(key, sizeof key, layer, p, "lora_B");
            if (t_st_data(x.f, key, NULL)) memcpy(w.B->data, t_st_data(x.f, key, NULL), sft_tensor_nbytes(w.B));
        }
    sft_step_begin(ctx);
    CHECK_OK(t_arch_forward(m, &x, 1, checkpointing, &out));
    snprintf(name, sizeof name, "%slora.logits", prefix);
    snprintf(name2, sizeof name2, "%slora.loss", prefix);
    t_arch_check(arch, &x, name, out.logits, name2, out.loss);
    if (out.loss) CHECK_OK(sft_backward(ctx, out.loss));
    for (layer = 0; layer < sft_model_get_config(m)->num_hidden_layers; layer++)
        for (p = 0; p < T_NPROJ; p++) {
            sft_lora_weights w;
            if (sft_linear_adapter_weights(sft_model_linear(m, layer, t_proj[p]), "default", &w) != SFT_OK) continue;
            for (ab = 0; ab < 2; ab++) {
                const sft_tensor *g = ab ? w.B->grad : w.A->grad;
                const float *want;
                int64_t n = 0;
                t_key(key, sizeof key, layer, p, ab ? "lora_B" : "lora_A");
                snprintf(name, sizeof name, "%sgrad.%s", prefix, key);
                want = (const float *)t_st_data(x.f, name, &n);
                if (!g || !want || n != sft_tensor_numel(g)) { CHECK_MSG(0, "%s %s: no gradient", arch, name); continue; }
                snprintf(name2, sizeof name2, "%s %s", arch, name);
                CHECK_REL(name2, (const float *)g->data, want, n, T_ARCH_TOL);
                n_grads++;
            }
        }
    for (p = 0, ab = 0; p < T_NPROJ; p++) ab += sft_model_linear(m, 0, t_proj[p]) != NULL;
    CHECK_MSG(n_grads == 2 * ab * sft_model_get_config(m)->num_hidden_layers && ab > 0, "%s: %d gradients compared", arch, n_grads);
done:
    t_fix_close(&x);
    sft_model_destroy(m);
    sft_context_destroy(ctx);
}

static void logits_and_loss_match_transformers(void) {
    size_t a;
    for (a = 0; a < T_COUNT(t_archs); a++) t_plain(t_archs[a]);
}

/* one unpadded row of 24 tokens: past every sliding window (the far keys
   masked) and past phi3's original_max_position_embeddings (longrope's long
   factors and attention factor) */
static void logits_of_a_long_row_match_transformers(void) {
    size_t a;
    for (a = 0; a < T_COUNT(t_archs); a++) {
        sft_context *ctx = t_context(2);
        t_fix x = t_fix_zero();
        sft_model *m = t_arch_load(ctx, t_archs[a], SFT_QUANT_NONE);
        sft_tensor *ids = NULL;
        sft_model_batch b;
        sft_model_output out;
        int64_t n = 0;
        const float *want;
        char what[96];
        if (m && t_fix_open(ctx, t_archs[a], &x)) {
            CHECK_OK(sft_st_load(ctx, x.f, "long.input_ids", &ids));
            want = (const float *)t_st_data(x.f, "long.logits", &n);
            memset(&b, 0, sizeof b);
            b.input_ids = ids;
            sft_step_begin(ctx);
            if (ids) CHECK_OK(sft_model_forward(m, &b, NULL, &out));
            snprintf(what, sizeof what, "%s long.logits", t_archs[a]);
            if (ids && want && out.logits && n == sft_tensor_numel(out.logits) && ids->shape[1] == 24)
                CHECK_REL(what, (const float *)out.logits->data, want, n, T_ARCH_TOL);
            else CHECK_MSG(0, "%s: long.input_ids / long.logits missing or misshapen", t_archs[a]);
        }
        sft_tensor_destroy(ids);
        t_fix_close(&x);
        sft_model_destroy(m);
        sft_context_destroy(ctx);
    }
}

static void lora_gradients_match_peft(void) {
    size_t a;
    for (a = 0; a < T_COUNT(t_archs); a++) t_lora(t_archs[a], SFT_QUANT_NONE, "", 0);
}

static void nf4_bases_match_bitsandbytes_and_peft(void) {
    size_t a;
    for (a = 0; a < T_COUNT(t_archs); a++) {
        sft_context *ctx = t_context(2);
        t_fix x = t_fix_zero();
        sft_model *m = t_arch_load(ctx, t_archs[a], SFT_QUANT_NF4);
        sft_model_output out;
        if (m && t_fix_open(ctx, t_archs[a], &x)) {
            sft_step_begin(ctx);
            CHECK_OK(t_arch_forward(m, &x, 0, 0, &out));
            t_arch_check(t_archs[a], &x, "nf4.logits", out.logits, "nf4.loss", out.loss);
        }
        t_fix_close(&x);
        sft_model_destroy(m);
        sft_context_destroy(ctx);
        t_lora(t_archs[a], SFT_QUANT_NF4, "nf4.", 0);
    }
}

static void checkpointed_blocks_give_the_same_gradients(void) {
    size_t a;
    for (a = 0; a < T_COUNT(t_archs); a++) t_lora(t_archs[a], SFT_QUANT_NONE, "", 1);
}

/* PEFT's saved adapter gives PEFT's logits; saved back, it reloads to the same */
static void peft_adapters_load_and_save_back(void) {
    size_t a;
    for (a = 0; a < T_COUNT(t_archs); a++) {
        sft_context *ctx = t_context(2);
        t_fix x = t_fix_zero();
        sft_model *m = t_arch_load(ctx, t_archs[a], SFT_QUANT_NONE), *m2 = t_arch_load(ctx, t_archs[a], SFT_QUANT_NONE);
        sft_model_output out;
        char dir[600], src[256];
        if (m && m2 && t_fix_open(ctx, t_archs[a], &x)) {
            float *first = NULL;
            snprintf(src, sizeof src, T_AFIX "%s/adapter", t_archs[a]);
            CHECK_OK(sft_model_load_adapter(m, src, "default"));
            sft_step_begin(ctx);
            CHECK_OK(t_arch_forward(m, &x, 0, 0, &out));
            t_arch_check(t_archs[a], &x, "lora.logits", out.logits, "lora.loss", out.loss);
            if (out.logits) {
                first = (float *)malloc(sft_tensor_nbytes(out.logits));
                memcpy(first, out.logits->data, sft_tensor_nbytes(out.logits));
            }
            snprintf(dir, sizeof dir, "%s/%s_adapter", t_tmpdir(), t_archs[a]);
            CHECK_OK(sft_model_save_adapter(m, "default", dir));
            CHECK_OK(sft_model_load_adapter(m2, dir, "default"));
            sft_step_begin(ctx);
            CHECK_OK(t_arch_forward(m2, &x, 0, 0, &out));
            if (first && out.logits) CHECK_SAME("reloaded adapter", (const float *)out.logits->data, first, sft_tensor_numel(out.logits));
            free(first);
        }
        t_fix_close(&x);
        sft_model_destroy(m); sft_model_destroy(m2);
        sft_context_destroy(ctx);
    }
}

/* greedy decoding with the KV cache picks what the full forward's logits pick */
static void kv_cache_decoding_equals_the_full_forward(void) {
    size_t a;
    for (a = 0; a < T_COUNT(t_archs); a++) {
        sft_context *ctx = t_context(1);
        sft_model *m = t_arch_load(ctx, t_archs[a], SFT_QUANT_NONE);
        static const int32_t prompt[5] = {3, 141, 59, 26, 5};
        int32_t *g = NULL;
        int ng = 0, i;
        sft_generate_desc d;
        memset(&d, 0, sizeof d);
        d.max_new_tokens = 6; d.no_eos_stop = 1;
        if (m) CHECK_OK(sft_model_generate(m, prompt, 5, &d, &g, &ng));
        if (g && ng == 6) {
            int64_t shape[2] = {1, 10};
            sft_tensor *ids = NULL;
            sft_model_batch bt;
            sft_model_output out;
            CHECK_OK(sft_tensor_create(ctx, SFT_I32, 2, shape, &ids));
            for (i = 0; ids && i < 10; i++) ((int32_t *)ids->data)[i] = i < 5 ? prompt[i] : g[i - 5];
            memset(&bt, 0, sizeof bt);
            bt.input_ids = ids;
            sft_step_begin(ctx);
            if (ids) CHECK_OK(sft_model_forward(m, &bt, NULL, &out));
            for (i = 4; ids && out.logits && i < 10; i++) {
                const float *l = (const float *)out.logits->data + i * 256;
                int k, best = 0;
                for (k = 1; k < 256; k++) if (l[k] > l[best]) best = k;
                CHECK_MSG(best == g[i - 4], "%s position %d: full forward %d, the cache %d", t_archs[a], i, best, g[i - 4]);
            }
            sft_tensor_destroy(ids);
        }
        sft_free(ctx, g);
        sft_model_destroy(m);
        sft_context_destroy(ctx);
    }
}

/* the memory plan against the allocator's high-water mark over a steady step */
static void the_memory_plan_is_within_10_percent(void) {
    size_t a;
    int q;
    for (a = 0; a < T_COUNT(t_archs); a++)
        for (q = 0; q < 2; q++) {
            sft_context *ctx = t_context(2);
            sft_model *m = t_arch_load(ctx, t_archs[a], q ? SFT_QUANT_NF4 : SFT_QUANT_NONE);
            sft_lora_desc d;
            sft_model_run run;
            sft_memory_plan plan;
            sft_tensor *ids = NULL;
            int64_t shape[2] = {4, 64}, i;
            int step;
            uint64_t seed = 3;
            size_t peak = 0, want;
            memset(&d, 0, sizeof d);
            d.r = 8; d.alpha = 16;
            memset(&run, 0, sizeof run);
            run.training = 1;
            if (m) CHECK_OK(sft_model_add_lora(m, "default", &d, "all-linear"));
            if (m) CHECK_OK(sft_model_memory_plan(m, 4, 64, &run, &plan));
            CHECK_OK(sft_tensor_create(ctx, SFT_I32, 2, shape, &ids));
            for (i = 0; ids && i < 4 * 64; i++) ((int32_t *)ids->data)[i] = (int32_t)(t_rand(&seed, 0, 255.99f));
            for (step = 0; m && ids && step < 2; step++) {
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
            want = m ? plan.total - plan.optimizer : 0;
            CHECK_MSG(peak > 0 && fabs((double)peak - (double)want) <= 0.10 * (double)peak, "%s%s: plan %zu vs measured %zu (%+.1f%%)",
                      t_archs[a], q ? " nf4" : "", want, peak, peak ? 100.0 * ((double)want - (double)peak) / (double)peak : 0.0);
            sft_tensor_destroy(ids);
            sft_model_destroy(m);
            sft_context_destroy(ctx);
        }
}

/* config.json values the architectures read are checked */
static void architecture_settings_are_read_and_checked(void) {
    sft_context *ctx = t_context(1);
    sft_model *m = t_arch_load(ctx, "smollm3", SFT_QUANT_NONE);
    if (m) {
        const sft_model_config *c = sft_model_get_config(m);
        CHECK(c->no_rope_layers[0] == 2u && c->attention_bias && c->mlp_bias && !c->qk_norm);
        CHECK(sft_model_weight(m, "model.layers.2.mlp.down_proj.bias") != NULL);
    }
    sft_model_destroy(m);
    m = t_arch_load(ctx, "qwen3", SFT_QUANT_NONE);
    if (m) {
        const sft_model_config *c = sft_model_get_config(m);
        CHECK(c->qk_norm && c->head_dim == 32 && c->no_rope_layers[0] == 0 && !c->attention_bias);
        CHECK(sft_model_weight(m, "model.layers.1.self_attn.k_norm.weight") != NULL);
    }
    sft_model_destroy(m);
    {   /* a bad no_rope_layers and an unknown architecture name what they are */
        char dir[600], path[700];
        FILE *f;
        snprintf(dir, sizeof dir, "%s/bad_arch", t_tmpdir());
        mkdir(dir, 0777);
        snprintf(path, sizeof path, "%s/config.json", dir);
        f = fopen(path, "w");
        if (f) {
            fputs("{\"architectures\": [\"SmolLM3ForCausalLM\"], \"vocab_size\": 256, \"hidden_size\": 64, \"intermediate_size\": 96, "
                  "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"no_rope_layers\": [1]}", f);
            fclose(f);
        }
        m = NULL;
        CHECK_STATUS(sft_model_load(ctx, dir, NULL, &m), SFT_ERR_FORMAT);
        CHECK_ERROR_MENTIONS("no_rope_layers");
        f = fopen(path, "w");
        if (f) { fputs("{\"architectures\": [\"FalconForCausalLM\"]}", f); fclose(f); }
        CHECK_STATUS(sft_model_load(ctx, dir, NULL, &m), SFT_ERR_UNSUPPORTED);
        CHECK_ERROR_MENTIONS("Qwen3ForCausalLM");
    }
    sft_context_destroy(ctx);
}

/* t_variant: tmp/<name>/, a copy of fixture arch whose config.json has each
   edits[2i] replaced by edits[2i + 1] (n pairs); the directory into dir */
static void t_variant(const char *arch, const char *name, const char *const *edits, int n, char *dir, size_t cap) {
    static const char *const files[2] = {"config.json", "model.safetensors"};
    int f, i;
    snprintf(dir, cap, "%s/%s", t_tmpdir(), name);
    mkdir(dir, 0777);
    for (f = 0; f < 2; f++) {
        char from[600], to[700], *text = NULL, *edited;
        size_t len = 0;
        FILE *out;
        snprintf(from, sizeof from, T_AFIX "%s/%s", arch, files[f]);
        snprintf(to, sizeof to, "%s/%s", dir, files[f]);
        CHECK_OK(sft_file_read(NULL, from, 0, &text, &len));
        if (!text) return;
        edited = (char *)malloc(len + 4096);
        memcpy(edited, text, len + 1);
        for (i = 0; f == 0 && i < n; i++) {
            char *at = strstr(edited, edits[2 * i]);
            size_t a = strlen(edits[2 * i]), b = strlen(edits[2 * i + 1]);
            CHECK_MSG(at != NULL, "%s/config.json has no '%s'", arch, edits[2 * i]);
            if (!at) continue;
            memmove(at + b, at + a, strlen(at + a) + 1);
            memcpy(at, edits[2 * i + 1], b);
            len = len + b - a;
        }
        out = fopen(to, "wb");
        if (out) { fwrite(edited, 1, len, out); fclose(out); }
        free(edited);
        sft_free(NULL, text);
    }
}

/* t_variant_config: the variant's config as loaded (*ok = 0 if it fails to load) */
static sft_model_config t_variant_config(sft_context *ctx, const char *arch, const char *const *edits, int n, int *ok) {
    char dir[600];
    sft_model *m = NULL;
    sft_model_config c;
    memset(&c, 0, sizeof c);
    t_variant(arch, "variant", edits, n, dir, sizeof dir);
    *ok = sft_model_load(ctx, dir, NULL, &m) == SFT_OK;
    if (m) c = *sft_model_get_config(m);
    sft_model_destroy(m);
    return c;
}

/* Which layers attend within sliding_window: layer_types where the class reads
   it, else the class's rule (Qwen: from max_window_layers on, only with
   use_sliding_window; Gemma 2: every other layer; Gemma 3: all but every
   sliding_window_pattern-th, 6 by default); Gemma's settings and their checks */
static void sliding_layers_and_gemma_settings_follow_the_config(void) {
    static const char *const qwen_rule[] = {"\"use_sliding_window\": false", "\"use_sliding_window\": true",
        "\"sliding_window\": null", "\"sliding_window\": 3", "\"max_window_layers\": 28", "\"max_window_layers\": 1",
        "\"layer_types\": [\n    \"full_attention\",\n    \"full_attention\"\n  ],", ""};
    static const char *const qwen_types[] = {"\"use_sliding_window\": false", "\"use_sliding_window\": true",
        "\"sliding_window\": null", "\"sliding_window\": 3", "[\n    \"full_attention\",", "[\n    \"sliding_attention\","};
    static const char *const qwen_off[] = {"\"sliding_window\": null", "\"sliding_window\": 3"};
    static const char gemma_types_json[] = "\"layer_types\": [\n    \"sliding_attention\",\n    \"full_attention\",\n    "
                                           "\"sliding_attention\"\n  ],";
    static const char *const gemma_rule[] = {gemma_types_json, "", "\"sliding_window\": 4", "\"sliding_window\": 5",
        "\"attn_logit_softcapping\": 0.3", "\"attn_logit_softcapping\": null"};
    static const char *const gemma_types[] = {"\"sliding_attention\",\n    \"full_attention\"", "\"full_attention\",\n    \"full_attention\""};
    static const char *const bad_act[] = {"gelu_pytorch_tanh", "gelu"};
    static const char *const bad_type[] = {"\"full_attention\"", "\"chunked_attention\""};
    static const char *const bidirectional[] = {"\"use_cache\"", "\"use_bidirectional_attention\": true, \"use_cache\""};
    static const char *const bad_cap[] = {"\"final_logit_softcapping\": 0.6", "\"final_logit_softcapping\": -1"};
    sft_context *ctx = t_context(1);
    sft_model_config c;
    int ok;
    c = t_variant_config(ctx, "qwen3", qwen_rule, 4, &ok);
    CHECK(ok && c.sliding_window == 3 && c.sliding_layers[0] == 2u);
    c = t_variant_config(ctx, "qwen3", qwen_types, 3, &ok);
    CHECK(ok && c.sliding_window == 3 && c.sliding_layers[0] == 1u);
    c = t_variant_config(ctx, "qwen3", qwen_off, 1, &ok);           /* no use_sliding_window: no window */
    CHECK(ok && c.sliding_window == 0 && c.sliding_layers[0] == 0u);
    c = t_variant_config(ctx, "gemma2", NULL, 0, &ok);
    CHECK(ok && c.sliding_window == 4 && c.sliding_layers[0] == 5u && c.tie_word_embeddings);
    CHECK(c.attn_scale == (float)pow(24.0, -0.5) && c.attn_logit_softcapping == 0.3f && c.final_logit_softcapping == 0.6f);
    c = t_variant_config(ctx, "gemma2", gemma_rule, 3, &ok);        /* the class's defaults */
    CHECK(ok && c.sliding_window == 5 && c.sliding_layers[0] == 5u && c.attn_logit_softcapping == 0.0f);
    c = t_variant_config(ctx, "gemma2", gemma_types, 1, &ok);
    CHECK(ok && c.sliding_layers[0] == 4u);
    t_variant_config(ctx, "gemma2", bad_act, 1, &ok);
    CHECK(!ok);
    CHECK_ERROR_MENTIONS("hidden_activation 'gelu'");
    t_variant_config(ctx, "gemma2", bad_type, 1, &ok);
    CHECK(!ok);
    CHECK_ERROR_MENTIONS("layer_types[1] 'chunked_attention'");
    t_variant_config(ctx, "gemma2", bidirectional, 1, &ok);
    CHECK(!ok);
    CHECK_ERROR_MENTIONS("use_bidirectional_attention");
    t_variant_config(ctx, "gemma2", bad_cap, 1, &ok);
    CHECK(!ok);
    CHECK_ERROR_MENTIONS("final_logit_softcapping");
    {   /* Gemma 3: the 5:1 default, sliding_window_pattern, local and global RoPE, no attention cap */
        static const char *const g3_default[] = {"\"layer_types\"", "\"old_layer_types\"", "\"rope_local_base_freq\": 10000.0,", "",
                                                 "\"rope_theta\": 1000000.0,", ""};
        static const char *const g3_pattern[] = {"\"layer_types\"", "\"old_layer_types\"", "\"_sliding_window_pattern\": 6",
                                                 "\"sliding_window_pattern\": 3", "\"attn_logit_softcapping\": null",
                                                 "\"attn_logit_softcapping\": 20.0"};
        c = t_variant_config(ctx, "gemma3", NULL, 0, &ok);
        CHECK(ok && c.sliding_window == 3 && c.sliding_layers[0] == 31u && c.qk_norm && c.tie_word_embeddings);
        CHECK(c.rope.theta == 1e6f && c.rope.scaling == SFT_ROPE_LINEAR && c.rope.factor == 8.0f);
        CHECK(c.rope_local.theta == 1e4f && c.rope_local.scaling == SFT_ROPE_DEFAULT && c.attn_scale == (float)pow(48.0, -0.5));
        CHECK(c.attn_logit_softcapping == 0.0f && c.final_logit_softcapping == 0.0f);
        c = t_variant_config(ctx, "gemma3", g3_default, 3, &ok);   /* no layer_types: every 6th layer global; the thetas' defaults */
        CHECK(ok && c.sliding_layers[0] == 31u && c.rope.theta == 1e6f && c.rope_local.theta == 1e4f);
        c = t_variant_config(ctx, "gemma3", g3_pattern, 3, &ok);   /* transformers' Gemma 3 ignores attn_logit_softcapping */
        CHECK(ok && c.sliding_layers[0] == 27u && c.attn_logit_softcapping == 0.0f);
    }
    sft_context_destroy(ctx);
}

/* Phi-3: the fused projections under their own names (LoRA targets, weights,
   adapters of another layout refused), partial rotary, longrope's factors and
   attention factor from the config, and what is refused by name */
static void phi3_fused_projections_and_longrope_follow_the_config(void) {
    static const char *const no_orig[] = {"\"original_max_position_embeddings\": 16,", ""};
    static const char *const af[] = {"\"type\": \"longrope\"", "\"type\": \"su\", \"attention_factor\": 1.25"};
    static const char *const short_list[] = {"1.7000000000000002\n    ]", "1.7000000000000002, 1.8\n    ]"};
    static const char *const dropout[] = {"\"resid_pdrop\": 0.0", "\"resid_pdrop\": 0.1"};
    static const char *const odd[] = {"\"partial_rotary_factor\": 0.5", "\"partial_rotary_factor\": 0.25"};
    sft_context *ctx = t_context(1);
    sft_model *m = t_arch_load(ctx, "phi3", SFT_QUANT_NONE), *q = t_arch_load(ctx, "qwen3", SFT_QUANT_NONE);
    sft_model_config c;
    sft_lora_weights w;
    char dir[600];
    int ok;
    if (m) {
        const sft_model_config *mc = sft_model_get_config(m);
        CHECK(sft_model_linear(m, 1, "qkv_proj") && sft_model_linear(m, 1, "gate_up_proj") && !sft_model_linear(m, 1, "q_proj") &&
              !sft_model_linear(m, 1, "up_proj"));
        CHECK(sft_model_weight(m, "model.layers.1.self_attn.qkv_proj.weight") != NULL && !sft_model_weight(m, "model.layers.1.mlp.up_proj.weight"));
        CHECK(mc->rope.scaling == SFT_ROPE_LONGROPE && mc->rope.partial_rotary_factor == 0.5f &&
              mc->rope.original_max_position_embeddings == 16 && mc->rope.short_factor[7] == 1.7f && mc->rope.long_factor[1] == 2.2f);
        CHECK(fabsf(mc->rope.attention_factor - (float)sqrt(1.0 + log(4.0) / log(16.0))) <= 1e-7f);
        CHECK(mc->sliding_window == 5 && mc->sliding_layers[0] == 3u && !mc->tie_word_embeddings);
        CHECK_STATUS(sft_model_add_lora(m, "x", NULL, "q_proj,v_proj"), SFT_ERR_ARG);
        CHECK_ERROR_MENTIONS("qkv_proj, o_proj, gate_up_proj, down_proj");
        CHECK_OK(sft_model_add_lora(m, "y", NULL, "qkv_proj"));
        CHECK(sft_linear_adapter_weights(sft_model_linear(m, 0, "qkv_proj"), "y", &w) == SFT_OK && w.B && w.B->shape[0] == 128 &&
              sft_linear_adapter_weights(sft_model_linear(m, 0, "o_proj"), "y", &w) != SFT_OK);
        sft_clear_error();
    }
    if (q) {   /* an adapter for q_proj ... does not fit a fused model */
        CHECK_STATUS(sft_model_load_adapter(m, T_AFIX "qwen3/adapter", "z"), SFT_ERR_FORMAT);
        CHECK_ERROR_MENTIONS("which this Phi3ForCausalLM model does not have");
    }
    sft_model_destroy(m); sft_model_destroy(q);
    c = t_variant_config(ctx, "phi3", no_orig, 1, &ok);     /* no original length: max_position_embeddings, no factor -> refused */
    CHECK(!ok);
    CHECK_ERROR_MENTIONS("rope_scaling.factor");
    c = t_variant_config(ctx, "phi3", af, 1, &ok);           /* "su", and an attention_factor given */
    CHECK(ok && c.rope.scaling == SFT_ROPE_LONGROPE && c.rope.attention_factor == 1.25f);
    t_variant_config(ctx, "phi3", short_list, 1, &ok);
    CHECK(!ok);
    CHECK_ERROR_MENTIONS("rope_scaling.short_factor must list 8 numbers");
    t_variant_config(ctx, "phi3", dropout, 1, &ok);
    CHECK(!ok);
    CHECK_ERROR_MENTIONS("resid_pdrop 0.1");
    t_variant("phi3", "variant", odd, 1, dir, sizeof dir);   /* head 32 * 0.25 = 8 dims: 4 factors, the file has 8 */
    CHECK_STATUS(sft_model_load(ctx, dir, NULL, &m), SFT_ERR_FORMAT);
    CHECK_ERROR_MENTIONS("must list 4 numbers");
    sft_context_destroy(ctx);
}

/* A short TRL SFTTrainer run (LoRA from the fixture's values, 18 pre-tokenized
   rows, batch 4 x accumulation 2, linear warmup, sequential order): every
   step's loss and grad_norm */
static void short_trl_runs_match_step_by_step(void) {
    size_t a;
    for (a = 0; a < T_COUNT(t_archs); a++) {
        sft_context *ctx = t_context(2);
        char path[256], key[256];
        sft_json *j;
        sft_tokenizer *tok = NULL;
        sft_model *m = t_arch_load(ctx, t_archs[a], SFT_QUANT_NONE);
        t_fix x = t_fix_zero();
        sft_dataset *ds = NULL;
        sft_lora_desc ld;
        sft_train_config c;
        sft_train_output out;
        const sft_json *rows, *steps;
        char **recs = NULL;
        size_t i, k;
        int layer, p, n_logged = 0;
        t_steps got;
        snprintf(path, sizeof path, T_AFIX "%s/trl.json", t_archs[a]);
        j = t_json_file(ctx, path);
        rows = j ? sft_json_get(j, "rows") : NULL;
        steps = j ? sft_json_get(j, "steps") : NULL;
        memset(&got, 0, sizeof got);
        CHECK_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", &tok));
        if (!rows || !steps || !tok || !m || !t_fix_open(ctx, t_archs[a], &x)) goto next;
        memset(&ld, 0, sizeof ld);
        ld.r = 4; ld.alpha = 8;
        CHECK_OK(sft_model_add_lora(m, "default", &ld, "all-linear"));
        for (layer = 0; layer < sft_model_get_config(m)->num_hidden_layers; layer++)
            for (p = 0; p < T_NPROJ; p++) {
                sft_lora_weights w;
                if (sft_linear_adapter_weights(sft_model_linear(m, layer, t_proj[p]), "default", &w) != SFT_OK) continue;
                t_key(key, sizeof key, layer, p, "lora_A");
                if (t_st_data(x.f, key, NULL)) memcpy(w.A->data, t_st_data(x.f, key, NULL), sft_tensor_nbytes(w.A));
                t_key(key, sizeof key, layer, p, "lora_B");
                if (t_st_data(x.f, key, NULL)) memcpy(w.B->data, t_st_data(x.f, key, NULL), sft_tensor_nbytes(w.B));
            }
        recs = (char **)calloc(rows->length, sizeof *recs);
        for (i = 0; recs && i < rows->length; i++) {       /* pre-tokenized rows: TRL leaves them as they are */
            char buf[600];
            int len = snprintf(buf, sizeof buf, "{\"input_ids\": [");
            for (k = 0; k < rows->items[i].length; k++) len += snprintf(buf + len, sizeof buf - (size_t)len, "%s%d", k ? "," : "", (int)rows->items[i].items[k].number);
            snprintf(buf + len, sizeof buf - (size_t)len, "]}");
            recs[i] = strdup(buf);
        }
        {
            sft_data_desc dd;
            memset(&dd, 0, sizeof dd);
            dd.max_length = 64; dd.pad_token = "!";       /* id 0, TRL's pad */
            CHECK_OK(sft_dataset_from_records(ctx, tok, (const char *const *)recs, (int)rows->length, &dd, &ds));
        }
        if (!ds) goto next;
        memset(&c, 0, sizeof c);
        c.per_device_train_batch_size = 4; c.gradient_accumulation_steps = 2; c.learning_rate = 1e-3;
        c.lr_scheduler_type = SFT_SCHEDULE_LINEAR; c.warmup_steps = 2; c.max_steps = (int64_t)steps->length; c.logging_steps = 1;
        c.sequential = 1; c.max_grad_norm = 1.0; c.optim = SFT_OPTIM_ADAMW_TORCH; c.on_log = t_on_step_log; c.user = &got;
        CHECK_OK(sft_train(m, ds, &c, &out));
        for (i = 0; i < (size_t)got.n; i++) {
            const sft_json *st = &steps->items[got.step[i] - 1];
            double wl = sft_json_get(st, "loss_unrounded")->number, wg = sft_json_get(st, "grad_norm")->number;
            CHECK_MSG(fabs(got.loss[i] - wl) <= 1e-5 * fabs(wl), "%s step %d: loss %.9g, TRL %.9g", t_archs[a], got.step[i], got.loss[i], wl);
            CHECK_MSG(fabs(got.grad_norm[i] - wg) <= 1e-4 * fabs(wg), "%s step %d: grad_norm %.9g, TRL %.9g", t_archs[a], got.step[i],
                      got.grad_norm[i], wg);
            n_logged++;
        }
        CHECK_MSG(n_logged == (int)steps->length, "%s: %d steps logged, TRL %zu", t_archs[a], n_logged, steps->length);
        t_fix_close(&x);
    next:
        for (i = 0; recs && i < rows->length; i++) free(recs[i]);
        free(recs);
        sft_dataset_destroy(ds);
        sft_tokenizer_destroy(tok);
        sft_model_destroy(m);
        sft_json_free(j);
        sft_context_destroy(ctx);
    }
}

static uint64_t t_fnv_file(const char *path) {
    char *data = NULL;
    size_t len = 0, k;
    uint64_t h = 1469598103934665603ull;
    if (sft_file_read(NULL, path, 0, &data, &len) != SFT_OK) { sft_clear_error(); return 0; }
    for (k = 0; k < len; k++) h = (h ^ (unsigned char)data[k]) * 1099511628211ull;
    sft_free(NULL, data);
    return h;
}

/* PEFT opens what sft.h saves: PEFT's adapter loaded and saved by sft.h must be
   the files committed under archs/<name>/ours/, which tools/check_arch_interop.py
   loaded with PeftModel.from_pretrained: its peft_opens_ours.json names these
   very files (their hashes) and found PEFT's logits with them within 1e-5 of
   PEFT's with its own adapter. SFT_WRITE_FIXTURES=1 rewrites ours/ (then rerun
   the script). */
static void our_adapters_open_in_peft(void) {
    const char *write = getenv("SFT_WRITE_FIXTURES");
    sft_context *ctx = t_context(1);
    sft_json *result = write ? NULL : t_json_file(ctx, T_AFIX "peft_opens_ours.json");
    size_t a;
    int f;
    static const char *const files[2] = {"adapter_model.safetensors", "adapter_config.json"};
    for (a = 0; a < T_COUNT(t_archs); a++) {
        sft_model *m = t_arch_load(ctx, t_archs[a], SFT_QUANT_NONE);
        char src[256], dir[600], from[700], to[300];
        const sft_json *r = result ? sft_json_get(result, t_archs[a]) : NULL;
        if (!m) continue;
        snprintf(src, sizeof src, T_AFIX "%s/adapter", t_archs[a]);
        CHECK_OK(sft_model_load_adapter(m, src, "default"));
        if (write) snprintf(dir, sizeof dir, T_AFIX "%s/ours", t_archs[a]);
        else snprintf(dir, sizeof dir, "%s/ours_%s", t_tmpdir(), t_archs[a]);
        CHECK_OK(sft_model_save_adapter(m, "default", dir));
        for (f = 0; !write && f < 2; f++) {
            char hex[32];
            const sft_json *h = r ? sft_json_get(sft_json_get(r, "fnv1a64"), files[f]) : NULL;
            snprintf(from, sizeof from, "%s/%s", dir, files[f]);
            snprintf(to, sizeof to, T_AFIX "%s/ours/%s", t_archs[a], files[f]);
            CHECK_MSG(t_fnv_file(from) == t_fnv_file(to), "%s is not what sft.h writes now: run SFT_WRITE_FIXTURES=1 ./build/test_sft "
                      "our_adapters_open_in_peft, then tools/check_arch_interop.py", to);
            snprintf(hex, sizeof hex, "%016llx", (unsigned long long)t_fnv_file(to));
            CHECK_MSG(h && h->type == SFT_JSON_STRING && strcmp(h->string, hex) == 0, "peft_opens_ours.json was made from another %s/%s: rerun "
                      "tools/check_arch_interop.py", t_archs[a], files[f]);
        }
        if (!write) {
            const sft_json *d = r ? sft_json_get(r, "max_diff_relative_to_max") : NULL;
            CHECK_MSG(d && d->type == SFT_JSON_NUMBER && d->number <= 1e-5, "%s: PEFT's logits with our adapter differ by %g of the largest",
                      t_archs[a], d ? d->number : -1.0);
        }
        sft_model_destroy(m);
    }
    sft_json_free(result);
    sft_context_destroy(ctx);
}

void suite_archs(void) {
    RUN(logits_and_loss_match_transformers);
    RUN(logits_of_a_long_row_match_transformers);
    RUN(lora_gradients_match_peft);
    RUN(nf4_bases_match_bitsandbytes_and_peft);
    RUN(checkpointed_blocks_give_the_same_gradients);
    RUN(peft_adapters_load_and_save_back);
    RUN(our_adapters_open_in_peft);
    RUN(kv_cache_decoding_equals_the_full_forward);
    RUN(the_memory_plan_is_within_10_percent);
    RUN(short_trl_runs_match_step_by_step);
    RUN(architecture_settings_are_read_and_checked);
    RUN(sliding_layers_and_gemma_settings_follow_the_config);
    RUN(phi3_fused_projections_and_longrope_follow_the_config);
}
