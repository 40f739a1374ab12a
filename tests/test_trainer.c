/* test_trainer.c - the training loop: gradient accumulation equals one big
   batch, the optimizer and schedules against torch/transformers (fixtures by
   tools/make_trainer_fixtures.py), the NaN filter, bad settings. */
#include "tiny.h"

#define T_TFIX "tests/fixtures/trainer/"

/* pre-tokenized rows of unequal length (5..20), ids inside the tiny model's
   vocabulary */
static sft_dataset *t_rows(sft_context *ctx, sft_tokenizer *tok, int n) {
    char **recs = (char **)calloc((size_t)n, sizeof *recs);
    sft_dataset *ds = NULL;
    sft_data_desc d;
    int i, k;
    for (i = 0; i < n; i++) {
        char buf[400];
        int len = snprintf(buf, sizeof buf, "{\"input_ids\": [");
        int count = 5 + (i * 7) % 16;
        for (k = 0; k < count; k++) len += snprintf(buf + len, sizeof buf - (size_t)len, "%s%d", k ? ", " : "", 3 + (i * 31 + k * 17) % 250);
        snprintf(buf + len, sizeof buf - (size_t)len, "]}");
        recs[i] = strdup(buf);
    }
    memset(&d, 0, sizeof d);
    d.max_length = 64;
    d.pad_token = "!";        /* id 0: inside the model's vocabulary */
    CHECK_OK(sft_dataset_from_records(ctx, tok, (const char *const *)recs, n, &d, &ds));
    for (i = 0; i < n; i++) free(recs[i]);
    free(recs);
    return ds;
}

static sft_model *t_lora_model(sft_context *ctx) {
    sft_model *m = NULL;
    CHECK_OK(t_tiny_model(ctx, 0, &m));
    return m;
}

/* One optimizer step on 8 rows of unequal length: batch 8 x GA 1 and batch 2 x
   GA 4 give the same loss and the same updated adapter (num_items_in_batch
   normalises the window). */
static void gradient_accumulation_equals_one_big_batch(void) {
    float *a[2] = {NULL, NULL};
    double loss[2] = {0, 0};
    int64_t n[2] = {0, 0};
    int cfg;
    for (cfg = 0; cfg < 2; cfg++) {
        sft_context *ctx = t_context(2);
        sft_tokenizer *tok = NULL;
        sft_model *m = t_lora_model(ctx);
        sft_dataset *ds;
        sft_trainer *tr = NULL;
        sft_train_config c;
        sft_step_info info;
        CHECK_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", &tok));
        ds = tok ? t_rows(ctx, tok, 8) : NULL;
        if (m && ds) {
            memset(&c, 0, sizeof c);
            c.per_device_train_batch_size = cfg ? 2 : 8; c.gradient_accumulation_steps = cfg ? 4 : 1;
            c.max_steps = 1; c.learning_rate = 1e-3; c.sequential = 1; c.lr_scheduler_type = SFT_SCHEDULE_CONSTANT;
            CHECK_OK(sft_trainer_create(m, ds, &c, &tr));
            if (tr) CHECK_OK(sft_trainer_step(tr, &info));
            loss[cfg] = info.loss;
            CHECK(info.micro_batches == (cfg ? 4 : 1) && info.global_step == 1 && info.done);
            a[cfg] = t_tiny_adapter(m, &n[cfg]);
        }
        sft_trainer_destroy(tr);
        sft_dataset_destroy(ds);
        sft_model_destroy(m);
        sft_tokenizer_destroy(tok);
        sft_context_destroy(ctx);
    }
    CHECK_MSG(fabs(loss[0] - loss[1]) <= 1e-5 * fabs(loss[0]) && loss[0] > 0, "loss %.9g (batch 8) vs %.9g (batch 2 x 4)", loss[0], loss[1]);
    if (a[0] && a[1] && n[0] == n[1]) CHECK_REL("adapter after one step", a[1], a[0], n[0], 1e-5);
    free(a[0]); free(a[1]);
}

static void bad_training_settings_are_refused(void) {
    sft_context *ctx = t_context(1);
    sft_tokenizer *tok = NULL;
    sft_model *m = t_lora_model(ctx), *bare = NULL;
    sft_dataset *ds = NULL;
    sft_trainer *tr = NULL;
    sft_train_config c;
    CHECK_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", &tok));
    if (tok) ds = t_rows(ctx, tok, 4);
    if (!m || !ds) goto done;
    memset(&c, 0, sizeof c);
    c.gradient_accumulation_steps = -1;
    CHECK_STATUS(sft_trainer_create(m, ds, &c, &tr), SFT_ERR_ARG); CHECK_ERROR_MENTIONS("gradient_accumulation_steps");
    memset(&c, 0, sizeof c); c.learning_rate = -1;
    CHECK_STATUS(sft_trainer_create(m, ds, &c, &tr), SFT_ERR_ARG); CHECK_ERROR_MENTIONS("learning_rate");
    memset(&c, 0, sizeof c); c.lr_scheduler_type = (sft_schedule)99;
    CHECK_STATUS(sft_trainer_create(m, ds, &c, &tr), SFT_ERR_ARG); CHECK_ERROR_MENTIONS("lr_scheduler_type");
    memset(&c, 0, sizeof c); c.warmup_ratio = 2;
    CHECK_STATUS(sft_trainer_create(m, ds, &c, &tr), SFT_ERR_ARG); CHECK_ERROR_MENTIONS("warmup_ratio");
    memset(&c, 0, sizeof c); c.lr_scheduler_type = SFT_SCHEDULE_REDUCE_ON_PLATEAU;
    CHECK_STATUS(sft_trainer_create(m, ds, &c, &tr), SFT_ERR_ARG); CHECK_ERROR_MENTIONS("evaluation strategy");
    memset(&c, 0, sizeof c); c.optim = (sft_optim)7;
    CHECK_STATUS(sft_trainer_create(m, ds, &c, &tr), SFT_ERR_ARG); CHECK_ERROR_MENTIONS("optim");
    /* the integer meanings of earlier versions are refused: max_grad_norm < 0
       for no clipping (now clip_grad_norm = SFT_OFF), -1 for off */
    memset(&c, 0, sizeof c); c.max_grad_norm = -1;
    CHECK_STATUS(sft_trainer_create(m, ds, &c, &tr), SFT_ERR_ARG); CHECK_ERROR_MENTIONS("clip_grad_norm = SFT_OFF");
    memset(&c, 0, sizeof c); c.logging_nan_inf_filter = (sft_toggle)-1;
    CHECK_STATUS(sft_trainer_create(m, ds, &c, &tr), SFT_ERR_ARG); CHECK_ERROR_MENTIONS("logging_nan_inf_filter -1");
    memset(&c, 0, sizeof c); c.greater_is_better = (sft_toggle)-1;
    CHECK_STATUS(sft_trainer_create(m, ds, &c, &tr), SFT_ERR_ARG); CHECK_ERROR_MENTIONS("greater_is_better -1");
    memset(&c, 0, sizeof c); c.full_finetuning = 1;      /* m has adapters */
    CHECK_STATUS(sft_trainer_create(m, ds, &c, &tr), SFT_ERR_STATE); CHECK_ERROR_MENTIONS("full_finetuning");
    {
        sft_schedule sch;
        sft_optim opt;
        sft_curve cu;
        CHECK_STATUS(sft_schedule_from_name("cosine_decay", &sch), SFT_ERR_ARG); CHECK_ERROR_MENTIONS("lr_scheduler_type \"cosine_decay\"");
        CHECK_OK(sft_schedule_from_name("warmup_stable_decay", &sch)); CHECK(sch == SFT_SCHEDULE_WARMUP_STABLE_DECAY);
        CHECK_STATUS(sft_optim_from_name("adagrad", &opt), SFT_ERR_ARG); CHECK_ERROR_MENTIONS("optim \"adagrad\"");
        CHECK_OK(sft_optim_from_name("paged_adamw_8bit", &opt)); CHECK(opt == SFT_OPTIM_ADAMW_8BIT);
        CHECK_STATUS(sft_curve_from_name("sqrt", &cu), SFT_ERR_ARG); CHECK_ERROR_MENTIONS("decay_type");
    }
    CHECK(tr == NULL);
    CHECK_OK(sft_model_load(ctx, "tests/fixtures/models/qwen2", NULL, &bare));
    memset(&c, 0, sizeof c);
    if (bare) { CHECK_STATUS(sft_trainer_create(bare, ds, &c, &tr), SFT_ERR_STATE); CHECK_ERROR_MENTIONS("nothing to train"); }
done:
    sft_model_destroy(bare);
    sft_dataset_destroy(ds);
    sft_model_destroy(m);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
}

static double t_num(const sft_json *o, const char *k, double dflt) {
    const sft_json *v = sft_json_get(o, k);
    return v && v->type == SFT_JSON_NUMBER ? v->number : dflt;
}

/* Every schedule (non-default kwargs too) gives transformers' learning rate at
   each of 30 steps; reduce-on-plateau follows torch's on a metric sequence;
   warmup_ratio rounds up as transformers does. */
static void schedules_match_transformers(void) {
    sft_context *ctx = t_context(1);
    sft_json *j = t_json_file(ctx, T_TFIX "schedules.json");
    const sft_json *list = j ? sft_json_get(j, "schedules") : NULL, *ratio;
    size_t e, k;
    int checked = 0;
    for (e = 0; list && e < list->length; e++) {
        const sft_json *en = &list->items[e], *kw = sft_json_get(en, "kwargs");
        const char *name = sft_json_get(en, "name")->string;
        sft_schedule_desc d;
        double base = t_num(en, "lr", 0);
        memset(&d, 0, sizeof d);
        CHECK_OK(sft_schedule_from_name(name, &d.type));
        d.warmup_steps = (int64_t)t_num(en, "warmup", 0); d.total_steps = (int64_t)t_num(en, "total", 0);
        d.num_cycles = t_num(kw, "num_cycles", 0); d.power = t_num(kw, "power", 0); d.lr_end = t_num(kw, "lr_end", 0);
        d.min_lr = t_num(kw, "min_lr", 0); d.min_lr_rate = t_num(kw, "min_lr_rate", 0);
        d.num_stable_steps = (int64_t)t_num(kw, "num_stable_steps", 0); d.num_decay_steps = (int64_t)t_num(kw, "num_decay_steps", 0);
        d.min_lr_ratio = t_num(kw, "min_lr_ratio", 0); d.factor = t_num(kw, "factor", 0); d.patience = (int)t_num(kw, "patience", 0);
        if (sft_json_get(kw, "decay_type")) CHECK_OK(sft_curve_from_name(sft_json_get(kw, "decay_type")->string, &d.decay_type));
        if (sft_json_get(kw, "warmup_type")) CHECK_OK(sft_curve_from_name(sft_json_get(kw, "warmup_type")->string, &d.warmup_type));
        d.warmup_lr_rate = t_num(kw, "warmup_lr_rate", 0);
        if (d.type == SFT_SCHEDULE_REDUCE_ON_PLATEAU) {
            const sft_json *metrics = sft_json_get(en, "metrics"), *after = sft_json_get(en, "lrs_after");
            sft_plateau pl;
            memset(&pl, 0, sizeof pl);
            pl.lr = base;
            for (k = 0; metrics && k < metrics->length; k++) {
                double lr = sft_plateau_step(&pl, &d, metrics->items[k].number);
                CHECK_MSG(lr == after->items[k].number, "plateau %s: after metric %zu lr %.17g, torch %.17g", sft_json_get(kw, "patience") ? "patience 2" : "default", k, lr, after->items[k].number);
            }
            checked++;
            continue;
        }
        for (k = 0; k < sft_json_get(en, "lrs")->length; k++) {
            double lr = -1, want = sft_json_get(en, "lrs")->items[k].number;
            CHECK_OK(sft_schedule_lr(&d, base, (int64_t)k, &lr));
            if (!(fabs(lr - want) <= 1e-12 * fabs(want) + 1e-18)) { CHECK_MSG(0, "%s (entry %zu) step %zu: %.17g, transformers %.17g", name, e, k, lr, want); break; }
        }
        checked++;
    }
    CHECK_MSG(checked == 16, "%d schedules checked", checked);
    ratio = j ? sft_json_get(sft_json_get(j, "warmup_steps_from_ratio"), "cases") : NULL;
    for (k = 0; ratio && k < ratio->length; k++) {
        const sft_json *c = &ratio->items[k];
        CHECK((int64_t)ceil(t_num(c, "num_training_steps", 0) * t_num(c, "warmup_ratio", 0)) == (int64_t)t_num(c, "warmup_steps", -1));
    }
    sft_json_free(j);
    sft_context_destroy(ctx);
}

/* AdamW against torch.optim.AdamW, bit for bit, over 5 steps with zero, huge
   and tiny gradients, weight decay on and off, other betas and eps. */
static void adamw_matches_torch_bit_for_bit(void) {
    sft_context *ctx = t_context(1);
    sft_json *j = t_json_file(ctx, T_TFIX "adamw.json");
    sft_st_file *f = NULL;
    const sft_json *cases = j ? sft_json_get(j, "cases") : NULL;
    size_t c;
    CHECK_OK(sft_st_open(ctx, T_TFIX "adamw.safetensors", &f));
    for (c = 0; f && cases && c < cases->length; c++) {
        const sft_json *kw = sft_json_get(&cases->items[c], "kwargs");
        const char *cs = sft_json_get(&cases->items[c], "case")->string;
        char name[128];
        sft_tensor *p = NULL;
        sft_optimizer *o = NULL;
        sft_optimizer_desc d;
        int step;
        snprintf(name, sizeof name, "torch/%s/param0", cs);
        CHECK_OK(sft_st_load(ctx, f, name, &p));
        if (!p) continue;
        memset(&d, 0, sizeof d);
        d.lr = t_num(kw, "lr", 0); d.beta1 = sft_json_get(kw, "betas")->items[0].number; d.beta2 = sft_json_get(kw, "betas")->items[1].number;
        d.eps = t_num(kw, "eps", 0); d.weight_decay = t_num(kw, "weight_decay", 0);
        if (d.weight_decay == 0) d.weight_decay = 0;
        CHECK_OK(sft_optimizer_create(ctx, &p, 1, NULL, &d, &o));
        CHECK_OK(sft_tensor_create(ctx, SFT_F32, p->ndim, p->shape, &p->grad));
        for (step = 0; o && p->grad && step < 5; step++) {
            const float *want;
            snprintf(name, sizeof name, "torch/%s/grad%d", cs, step);
            memcpy(p->grad->data, t_st_data(f, name, NULL), sft_tensor_nbytes(p));
            CHECK_OK(sft_optimizer_step(o, d.lr));
            snprintf(name, sizeof name, "torch/%s/param%d", cs, step + 1);
            want = (const float *)t_st_data(f, name, NULL);
            if (want && !CHECK_SAME(name, (const float *)p->data, want, sft_tensor_numel(p))) break;
        }
        sft_optimizer_destroy(o);
        sft_tensor_destroy(p);
    }
    sft_st_close(f);
    sft_json_free(j);
    sft_context_destroy(ctx);
}

/* bitsandbytes' AdamW8bit on the CPU, 5 steps: a 4,100-value tensor (8-bit
   state: 16 full blocks and one of 4) must give bitsandbytes' codes and block
   scales exactly and its parameters within an ulp, and its dynamic maps ours; a 37-value tensor keeps
   f32 state with bitsandbytes' 32-bit arithmetic. */
static void adamw_8bit_matches_bitsandbytes(void) {
    sft_context *ctx = t_context(1);
    sft_st_file *f = NULL;
    sft_tensor *p = NULL, *ps = NULL;
    sft_optimizer *o = NULL, *os = NULL;
    sft_optimizer_desc d;
    float map[256];
    int step;
    CHECK_OK(sft_st_open(ctx, T_TFIX "adamw.safetensors", &f));
    if (!f) { sft_context_destroy(ctx); return; }
    sft_dynamic_map(1, map);
    CHECK_SAME("qmap1 (signed)", map, (const float *)t_st_data(f, "bnb8/qmap1", NULL), 256);
    sft_dynamic_map(0, map);
    CHECK_SAME("qmap2 (unsigned)", map, (const float *)t_st_data(f, "bnb8/qmap2", NULL), 256);
    CHECK_OK(sft_st_load(ctx, f, "bnb8/param0", &p));
    CHECK_OK(sft_st_load(ctx, f, "bnb8_small/param0", &ps));
    memset(&d, 0, sizeof d);
    d.lr = 1e-3; d.weight_decay = 0.01; d.eight_bit = 1;
    CHECK_OK(sft_optimizer_create(ctx, &p, 1, NULL, &d, &o));
    CHECK_OK(sft_optimizer_create(ctx, &ps, 1, NULL, &d, &os));
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, p->ndim, p->shape, &p->grad));
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, ps->ndim, ps->shape, &ps->grad));
    for (step = 0; o && os && step < 5; step++) {
        sft_optimizer_state st;
        char name[64];
        int ok = 1;
        snprintf(name, sizeof name, "bnb8/grad%d", step);
        memcpy(p->grad->data, t_st_data(f, name, NULL), sft_tensor_nbytes(p));
        snprintf(name, sizeof name, "torch/wd0.01/grad%d", step);
        memcpy(ps->grad->data, t_st_data(f, name, NULL), sft_tensor_nbytes(ps));
        CHECK_OK(sft_optimizer_step(o, d.lr));
        CHECK_OK(sft_optimizer_step(os, d.lr));
        CHECK_OK(sft_optimizer_param_state(o, 0, &st));
        CHECK(st.step == step + 1 && st.numel == 4100 && st.blocks == 17 && st.state1 && !st.exp_avg);
        if (!st.state1) break;
        snprintf(name, sizeof name, "bnb8/param%d", step + 1);
        {   /* torch's CPU sqrt (MKL) is not correctly rounded: about one value in five is
               an ulp off, which moves a few parameters by an ulp; the moments do not
               depend on it and must match exactly */
            const float *want = (const float *)t_st_data(f, name, NULL);
            int64_t k, differ = 0;
            for (k = 0; want && k < 4100; k++) differ += ((const float *)p->data)[k] != want[k];
            ok &= CHECK_REL(name, (const float *)p->data, want, 4100, 1e-6);
            if (differ > 41) { ok = 0; CHECK_MSG(0, "%s: %lld of 4100 values differ from bitsandbytes'", name, (long long)differ); }
        }
        snprintf(name, sizeof name, "bnb8/state1_%d", step + 1);
        if (memcmp(st.state1, t_st_data(f, name, NULL), 4100) != 0) { ok = 0; CHECK_MSG(0, "%s differs", name); }
        snprintf(name, sizeof name, "bnb8/state2_%d", step + 1);
        if (memcmp(st.state2, t_st_data(f, name, NULL), 4100) != 0) { ok = 0; CHECK_MSG(0, "%s differs", name); }
        snprintf(name, sizeof name, "bnb8/absmax1_%d", step + 1);
        ok &= CHECK_SAME(name, st.absmax1, (const float *)t_st_data(f, name, NULL), 17);
        snprintf(name, sizeof name, "bnb8/absmax2_%d", step + 1);
        ok &= CHECK_SAME(name, st.absmax2, (const float *)t_st_data(f, name, NULL), 17);
        CHECK_OK(sft_optimizer_param_state(os, 0, &st));
        CHECK(st.exp_avg && !st.state1);
        if (!st.exp_avg) break;
        snprintf(name, sizeof name, "bnb8_small/param%d", step + 1);
        ok &= CHECK_SAME(name, (const float *)ps->data, (const float *)t_st_data(f, name, NULL), 37);
        snprintf(name, sizeof name, "bnb8_small/exp_avg%d", step + 1);
        ok &= CHECK_SAME(name, st.exp_avg, (const float *)t_st_data(f, name, NULL), 37);
        snprintf(name, sizeof name, "bnb8_small/exp_avg_sq%d", step + 1);
        ok &= CHECK_SAME(name, st.exp_avg_sq, (const float *)t_st_data(f, name, NULL), 37);
        if (!ok) break;
    }
    sft_optimizer_destroy(o); sft_optimizer_destroy(os);
    sft_tensor_destroy(p); sft_tensor_destroy(ps);
    sft_st_close(f);
    sft_context_destroy(ctx);
}

typedef struct t_logs { int n; sft_log_entry e[64]; } t_logs;
static void t_on_log(const sft_log_entry *e, void *user) { t_logs *l = (t_logs *)user; if (l->n < 64) l->e[l->n++] = *e; }

/* One TRL run of tools/make_trainer_fixtures.py: the tiny Llama, 18
   pre-tokenized rows in order, batch 4 x GA 2 (windows of 2, 2 and a short 1
   per epoch), and (but for full fine-tuning) the fixed LoRA adapter of
   trl_loop_init.safetensors. Every step's loss, grad_norm, learning rate and
   epoch (and the token metrics where recorded), total_flos, and the weights
   after the last step, against TRL's. */
typedef struct t_trl_case {
    const char *name;        /* <name>.json and <name>.safetensors (the final weights) */
    int         steps, full, plateau, eight_bit;
    double      lr, max_grad_norm, weight_decay;
    float       label_smoothing;
    sft_toggle  clip_grad_norm;
} t_trl_case;

static char **t_id_records(const sft_json *rows) {
    char **recs = (char **)calloc(rows->length, sizeof *recs);
    size_t i, k;
    for (i = 0; i < rows->length; i++) {
        char buf[600];
        int len = snprintf(buf, sizeof buf, "{\"input_ids\": [");
        for (k = 0; k < rows->items[i].length; k++) len += snprintf(buf + len, sizeof buf - (size_t)len, "%s%d", k ? "," : "", (int)rows->items[i].items[k].number);
        snprintf(buf + len, sizeof buf - (size_t)len, "]}");
        recs[i] = strdup(buf);
    }
    return recs;
}

static void t_free_records(char **recs, size_t n) {
    size_t i;
    for (i = 0; recs && i < n; i++) free(recs[i]);
    free(recs);
}

static sft_dataset *t_id_dataset(sft_context *ctx, sft_tokenizer *tok, const sft_json *rows) {
    char **recs = t_id_records(rows);
    sft_dataset *ds = NULL;
    sft_data_desc dd;
    memset(&dd, 0, sizeof dd);
    dd.max_length = 64; dd.pad_token = "!";
    CHECK_OK(sft_dataset_from_records(ctx, tok, (const char *const *)recs, (int)rows->length, &dd, &ds));
    t_free_records(recs, rows->length);
    return ds;
}

/* t_lora_key: PEFT's save key of layer/projection p's A (ab 0) or B (ab 1) */
static const char *t_lora_key(int layer, int p, int ab) {
    static const char *const names[7] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
    static char key[200];
    snprintf(key, sizeof key, "base_model.model.model.layers.%d.%s.%s.lora_%c.weight", layer, p < 4 ? "self_attn" : "mlp", names[p], ab ? 'B' : 'A');
    return key;
}

static sft_tensor *t_lora_tensor(sft_model *m, int layer, int p, int ab) {
    static const char *const names[7] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
    sft_lora_weights w;
    if (sft_linear_adapter_weights(sft_model_linear(m, layer, names[p]), "default", &w) != SFT_OK) return NULL;
    return ab ? w.B : w.A;
}

/* t_trl_job: tools/make_trainer_fixtures.py's TRL job: the llama fixture (with
   lora, trl_loop_init's adapter), the trl_loop rows and the eval rows if any */
static int t_trl_job(sft_context *ctx, int lora, const sft_json *eval_rows, sft_tokenizer **tok, sft_model **m, sft_dataset **ds,
                     sft_dataset **eval) {
    sft_json *loop = t_json_file(ctx, T_TFIX "trl_loop.json");
    const sft_json *rows = loop ? sft_json_get(sft_json_get(loop, "dataset"), "rows") : NULL;
    sft_st_file *init = NULL;
    sft_lora_desc ld;
    int layer, p, ab;
    *tok = NULL; *m = NULL; *ds = *eval = NULL;
    CHECK_OK(sft_st_open(ctx, T_TFIX "trl_loop_init.safetensors", &init));
    CHECK_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", tok));
    CHECK_OK(sft_model_load(ctx, "tests/fixtures/models/llama", NULL, m));
    CHECK_MSG(rows != NULL, "trl_loop.json has no dataset.rows");
    if (rows && init && *tok && *m && lora) {
        memset(&ld, 0, sizeof ld);
        ld.r = 4; ld.alpha = 8;
        CHECK_OK(sft_model_add_lora(*m, "default", &ld, "all-linear"));
        for (layer = 0; layer < 2; layer++)
            for (p = 0; p < 7; p++)
                for (ab = 0; ab < 2; ab++) {
                    sft_tensor *t = t_lora_tensor(*m, layer, p, ab);
                    const void *v = t_st_data(init, t_lora_key(layer, p, ab), NULL);
                    if (t && v) memcpy(t->data, v, sft_tensor_nbytes(t));
                }
    }
    if (rows && init && *tok && *m) {
        *ds = t_id_dataset(ctx, *tok, rows);
        if (eval_rows) *eval = t_id_dataset(ctx, *tok, eval_rows);
    }
    sft_st_close(init);
    sft_json_free(loop);
    return *ds && (*eval || !eval_rows);
}

static void t_trl_run(const t_trl_case *tc) {
    sft_context *ctx = t_context(2);
    char path[256];
    sft_json *j;
    sft_st_file *fin = NULL;
    sft_tokenizer *tok = NULL;
    sft_model *m = NULL;
    sft_dataset *ds = NULL, *eval = NULL;
    sft_train_config c;
    sft_train_output out;
    t_logs logs;
    const sft_json *steps, *evals;
    size_t i;
    int layer, p, ab, ev = 0;
    snprintf(path, sizeof path, T_TFIX "%s.json", tc->name);
    j = t_json_file(ctx, path);
    steps = j ? sft_json_get(j, "steps") : NULL;
    evals = j ? sft_json_get(j, "evals") : NULL;
    memset(&logs, 0, sizeof logs);
    CHECK_MSG(steps && steps->length == (size_t)tc->steps, "%s: the fixture has not %d steps", tc->name, tc->steps);
    if (!steps) goto done;
    snprintf(path, sizeof path, T_TFIX "%s.safetensors", tc->name);
    CHECK_OK(sft_st_open(ctx, path, &fin));
    /* every run trains on trl_loop's rows */
    if (!fin || !t_trl_job(ctx, !tc->full, evals ? sft_json_get(j, "eval_rows") : NULL, &tok, &m, &ds, &eval)) goto done;
    memset(&c, 0, sizeof c);
    c.per_device_train_batch_size = 4; c.gradient_accumulation_steps = 2; c.learning_rate = tc->lr;
    c.lr_scheduler_type = SFT_SCHEDULE_LINEAR; c.warmup_steps = 2; c.max_steps = tc->steps; c.logging_steps = 1; c.sequential = 1;
    c.max_grad_norm = tc->max_grad_norm; c.clip_grad_norm = tc->clip_grad_norm; c.weight_decay = tc->weight_decay; c.label_smoothing_factor = tc->label_smoothing;
    c.full_finetuning = tc->full; c.optim = tc->eight_bit ? SFT_OPTIM_ADAMW_8BIT : SFT_OPTIM_ADAMW_TORCH;
    c.token_metrics = 1; c.on_log = t_on_log; c.user = &logs;
    if (tc->plateau) {
        c.lr_scheduler_type = SFT_SCHEDULE_REDUCE_ON_PLATEAU; c.warmup_steps = 0;
        c.lr_scheduler_kwargs.factor = 0.5; c.lr_scheduler_kwargs.patience = -1;
        c.eval_dataset = eval; c.eval_steps = 2; c.per_device_eval_batch_size = 4;
    }
    CHECK_OK(sft_train(m, ds, &c, &out));
    if (sft_json_get(j, "flos"))
        CHECK_MSG(out.total_flos == t_num(sft_json_get(j, "flos"), "total_flos", -1), "%s: total_flos %.17g, transformers %.17g", tc->name,
                  out.total_flos, t_num(sft_json_get(j, "flos"), "total_flos", -1));
    CHECK_MSG(logs.n == tc->steps + (evals ? (int)evals->length : 0), "%s: %d log entries", tc->name, logs.n);
    for (i = 0; i < (size_t)logs.n; i++) {
        const sft_log_entry *e = &logs.e[i];
        const sft_json *st;
        double wl, wg;
        if (e->is_eval) {        /* eval_loss, then the plateau schedule steps on it */
            const sft_json *want = evals && (size_t)ev < evals->length ? &evals->items[ev++] : NULL;
            CHECK_MSG(want && e->global_step == (int64_t)t_num(want, "global_step", -1), "%s: an evaluation at step %lld", tc->name, (long long)e->global_step);
            if (want) CHECK_MSG(fabs(e->loss - t_num(want, "eval_loss", 0)) <= 1e-5 * t_num(want, "eval_loss", 0), "%s: eval_loss %.9g, TRL %.9g",
                                tc->name, e->loss, t_num(want, "eval_loss", 0));
            continue;
        }
        if (e->global_step < 1 || (size_t)e->global_step > steps->length) { CHECK_MSG(0, "%s: step %lld", tc->name, (long long)e->global_step); continue; }
        st = &steps->items[e->global_step - 1];
        wl = t_num(st, "loss_unrounded", 0); wg = t_num(st, "grad_norm", 0);
        CHECK_MSG(fabs(e->loss - wl) <= 1e-4 * fabs(wl), "%s step %lld: loss %.9g, TRL %.9g (%.2g relative)", tc->name, (long long)e->global_step, e->loss, wl,
                  fabs(e->loss - wl) / fabs(wl));
        CHECK_MSG(fabs(e->grad_norm - wg) <= 1e-4 * fabs(wg), "%s step %lld: grad_norm %.9g, TRL %.9g", tc->name, (long long)e->global_step, e->grad_norm, wg);
        CHECK_MSG(fabs(e->learning_rate - t_num(st, "learning_rate", -1)) <= 1e-12, "%s step %lld: learning_rate %.17g, TRL %.17g", tc->name,
                  (long long)e->global_step, e->learning_rate, t_num(st, "learning_rate", -1));
        CHECK_MSG(fabs(e->epoch - t_num(st, "epoch", -1)) <= 1e-12, "%s step %lld: epoch %.17g, TRL %.17g", tc->name, (long long)e->global_step, e->epoch,
                  t_num(st, "epoch", -1));
        if (sft_json_get(st, "mean_token_accuracy")) {
            CHECK_MSG(fabs(e->mean_token_accuracy - t_num(st, "mean_token_accuracy", -1)) <= 1e-6, "step %lld: mean_token_accuracy %.9g, TRL %.9g",
                      (long long)e->global_step, e->mean_token_accuracy, t_num(st, "mean_token_accuracy", -1));
            CHECK_MSG(fabs(e->entropy - t_num(st, "entropy", -1)) <= 1e-5 * t_num(st, "entropy", 1), "step %lld: entropy %.9g, TRL %.9g",
                      (long long)e->global_step, e->entropy, t_num(st, "entropy", -1));
            CHECK_MSG(e->num_tokens == (int64_t)t_num(st, "num_tokens", -1), "step %lld: num_tokens %lld, TRL %g", (long long)e->global_step,
                      (long long)e->num_tokens, t_num(st, "num_tokens", -1));
        }
        if (getenv("SFT_TEST_VERBOSE"))
            printf("    %s step %2d loss %.9f (TRL %.9f, %.1e) grad_norm %.9f (TRL %.9f, %.1e)\n", tc->name, (int)e->global_step, e->loss, wl,
                   fabs(e->loss - wl) / wl, e->grad_norm, wg, fabs(e->grad_norm - wg) / wg);
    }
    if (tc->full) {              /* every weight, by its transformers name */
        char name[SFT_WEIGHT_NAME_MAX];
        sft_tensor *w;
        int n = 0;
        for (i = 0; sft_model_weight_at(m, (int)i, name, &w); i++) {
            const float *want = w ? (const float *)t_st_data(fin, name, NULL) : NULL;    /* no biases in a Llama */
            if (want) { CHECK_REL(name, (const float *)w->data, want, sft_tensor_numel(w), 1e-4); n++; }
        }
        CHECK_MSG(n == 21, "%d weights compared", n);
    } else
        for (layer = 0; layer < 2; layer++)
            for (p = 0; p < 7; p++)
                for (ab = 0; ab < 2; ab++) {
                    sft_tensor *t = t_lora_tensor(m, layer, p, ab);
                    const float *want = (const float *)t_st_data(fin, t_lora_key(layer, p, ab), NULL);
                    if (t && want) CHECK_REL(t_lora_key(layer, p, ab), (const float *)t->data, want, sft_tensor_numel(t), 1e-4);
                }
done:
    sft_dataset_destroy(ds);
    sft_dataset_destroy(eval);
    sft_model_destroy(m);
    sft_tokenizer_destroy(tok);
    sft_st_close(fin);
    sft_json_free(j);
    sft_context_destroy(ctx);
}

static void the_loss_curve_matches_trl(void) {
    t_trl_case c = {"trl_loop", 12, 0, 0, 0, 1e-3, 1.0, 0.0, 0.0f, SFT_DEFAULT};
    t_trl_run(&c);
}
static void the_loss_curve_matches_trl_with_clipping(void) {
    t_trl_case c = {"trl_loop_clip", 12, 0, 0, 0, 1e-3, 0.6, 0.0, 0.0f, SFT_ON};
    t_trl_run(&c);
}
/* clip_grad_norm SFT_OFF: max_grad_norm 0.6 is ignored, the run is TRL's
   unclipped one (transformers' max_grad_norm 0) */
static void clipping_off_ignores_max_grad_norm(void) {
    t_trl_case c = {"trl_loop", 12, 0, 0, 0, 1e-3, 0.6, 0.0, 0.0f, SFT_OFF};
    t_trl_run(&c);
}
/* label smoothing: LabelSmoother's per-micro-batch mean, not divided by GA */
static void label_smoothing_matches_trl(void) {
    t_trl_case c = {"trl_smooth", 6, 0, 0, 0, 1e-3, 1.0, 0.0, 0.1f, SFT_DEFAULT};
    t_trl_run(&c);
}
/* full fine-tuning: every weight trained, weight decay but on norms */
static void full_finetuning_matches_trl(void) {
    t_trl_case c = {"trl_full", 4, 1, 0, 0, 1e-4, 1.0, 0.01, 0.0f, SFT_DEFAULT};
    t_trl_run(&c);
}
/* reduce_lr_on_plateau stepped by each evaluation's eval_loss */
static void plateau_schedule_follows_evaluations_as_trl(void) {
    t_trl_case c = {"trl_plateau", 8, 0, 1, 0, 1e-3, 1.0, 0.0, 0.0f, SFT_DEFAULT};
    t_trl_run(&c);
}
/* optim adamw_bnb_8bit (LoRA tensors this small keep f32 state) */
static void adamw_8bit_run_matches_trl(void) {
    t_trl_case c = {"trl_8bit", 6, 0, 0, 1, 1e-3, 1.0, 0.0, 0.0f, SFT_DEFAULT};
    t_trl_run(&c);
}

/* sft_tensor_from_i64: an i32 copy of a fixture's int64 tensor */
static sft_tensor *t_i32_of(sft_context *ctx, sft_st_file *f, const char *name) {
    int64_t n = 0, i;
    const int64_t *v = (const int64_t *)t_st_data(f, name, &n);
    sft_tensor *t = NULL, *ref = NULL;
    if (!v || sft_st_load(ctx, f, name, &ref) != SFT_OK) return NULL;
    CHECK_OK(sft_tensor_create(ctx, SFT_I32, ref->ndim, ref->shape, &t));
    for (i = 0; t && i < n; i++) ((int32_t *)t->data)[i] = (int32_t)v[i];
    sft_tensor_destroy(ref);
    return t;
}

/* NEFTune against transformers' hook with its noise replayed: the same
   magnitude (alpha / sqrt(T * D), padding included), logits, loss and LoRA
   gradients in training; in evaluation no noise. */
static void neftune_matches_transformers_with_its_noise(void) {
    sft_context *ctx = t_context(2);
    sft_st_file *f = NULL;
    sft_model *m = NULL;
    sft_tensor *ids = NULL, *mask = NULL, *labels = NULL;
    sft_lora_desc ld;
    int layer, p, ab, train;
    CHECK_OK(sft_st_open(ctx, T_TFIX "neftune.safetensors", &f));
    CHECK_OK(sft_model_load(ctx, "tests/fixtures/models/llama", NULL, &m));
    if (!f || !m) goto done;
    memset(&ld, 0, sizeof ld);
    ld.r = 4; ld.alpha = 8;
    CHECK_OK(sft_model_add_lora(m, "default", &ld, "all-linear"));
    for (layer = 0; layer < 2; layer++)
        for (p = 0; p < 7; p++)
            for (ab = 0; ab < 2; ab++) {
                char key[240];
                sft_tensor *t = t_lora_tensor(m, layer, p, ab);
                snprintf(key, sizeof key, "init/%s", t_lora_key(layer, p, ab));
                if (t && t_st_data(f, key, NULL)) memcpy(t->data, t_st_data(f, key, NULL), sft_tensor_nbytes(t));
            }
    ids = t_i32_of(ctx, f, "input_ids"); mask = t_i32_of(ctx, f, "attention_mask"); labels = t_i32_of(ctx, f, "labels");
    for (train = 1; ids && mask && labels && train >= 0; train--) {
        sft_model_batch b;
        sft_model_run run;
        sft_model_output out;
        double want = train ? 5.760344505310059 : 5.545002460479736;
        memset(&b, 0, sizeof b); memset(&run, 0, sizeof run);
        b.input_ids = ids; b.attention_mask = mask; b.labels = labels;
        run.training = train; run.want_logits = 1;
        run.neftune_noise_alpha = 5.0f; run.neftune_uniform = (const float *)t_st_data(f, "u", NULL);
        sft_step_begin(ctx);
        CHECK_OK(sft_model_forward(m, &b, &run, &out));
        if (!out.loss) break;
        CHECK_MSG(fabs(*(const float *)out.loss->data - want) <= 2e-6 * want, "%s loss %.9g, transformers %.9g", train ? "train" : "eval",
                  *(const float *)out.loss->data, want);
        {   /* the real tokens' logits (row 0 has 9, row 1 has 6 then padding) */
            const float *want = (const float *)t_st_data(f, train ? "logits_train" : "logits_eval", NULL);
            if (want) {
                CHECK_REL(train ? "logits_train row 0" : "logits_eval row 0", (const float *)out.logits->data, want, 9 * 256, 1e-5);
                CHECK_REL(train ? "logits_train row 1" : "logits_eval row 1", (const float *)out.logits->data + 9 * 256, want + 9 * 256, 6 * 256, 1e-5);
            }
        }
        if (!train) break;
        CHECK_OK(sft_backward(ctx, out.loss));
        for (layer = 0; layer < 2; layer++)
            for (p = 0; p < 7; p++)
                for (ab = 0; ab < 2; ab++) {
                    char key[240];
                    sft_tensor *t = t_lora_tensor(m, layer, p, ab);
                    snprintf(key, sizeof key, "grad/%s", t_lora_key(layer, p, ab));
                    if (t && t->grad && t_st_data(f, key, NULL)) CHECK_REL(key, (const float *)t->grad->data, (const float *)t_st_data(f, key, NULL), sft_tensor_numel(t), 1e-4);
                    else CHECK_MSG(0, "%s: no gradient", key);
                }
    }
    sft_step_begin(ctx);
done:
    sft_tensor_destroy(ids); sft_tensor_destroy(mask); sft_tensor_destroy(labels);
    sft_model_destroy(m);
    sft_st_close(f);
    sft_context_destroy(ctx);
}

/* a compute_loss equal to the built-in one: shifted cross-entropy summed over
   the window's num_items_in_batch */
static sft_status t_my_loss(sft_context *ctx, sft_tensor *logits, sft_tensor *labels, int64_t items, void *user, sft_tensor **loss) {
    sft_tensor *shifted;
    sft_ce_desc d;
    sft_status s = sft_shift_labels(ctx, labels, &shifted);
    (*(int *)user)++;
    if (s != SFT_OK) return s;
    memset(&d, 0, sizeof d);
    d.reduction = SFT_CE_SUM_DIV; d.divisor = (float)items;
    return sft_cross_entropy(ctx, logits, shifted, &d, loss);
}

static sft_status t_detached_loss(sft_context *ctx, sft_tensor *logits, sft_tensor *labels, int64_t items, void *user, sft_tensor **loss) {
    (void)logits; (void)labels; (void)items; (void)user;
    *loss = NULL;
    (void)ctx;
    return SFT_OK;
}

/* A host compute_loss is called per micro-batch with the logits, the labels
   and num_items_in_batch; one equal to the built-in loss trains the same
   adapter; one that returns nothing is an error naming compute_loss. */
static void compute_loss_callback_replaces_the_loss(void) {
    sft_context *ctx = t_context(1);
    sft_tokenizer *tok = NULL;
    sft_dataset *ds = NULL;
    sft_model *a = t_lora_model(ctx), *b = t_lora_model(ctx);
    sft_train_config c;
    sft_train_output out;
    int calls = 0;
    int64_t na = 0, nb = 0;
    float *wa = NULL, *wb = NULL;
    CHECK_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", &tok));
    if (tok) ds = t_rows(ctx, tok, 10);
    if (!a || !b || !ds) goto done;
    memset(&c, 0, sizeof c);
    c.per_device_train_batch_size = 2; c.gradient_accumulation_steps = 2; c.max_steps = 3; c.learning_rate = 1e-3; c.sequential = 1;
    CHECK_OK(sft_train(a, ds, &c, &out));
    c.compute_loss = t_my_loss; c.user = &calls;
    CHECK_OK(sft_train(b, ds, &c, &out));
    CHECK_MSG(calls == 5, "compute_loss called %d times for 3 windows (2, 2, 1 micro-batches)", calls);
    wa = t_tiny_adapter(a, &na); wb = t_tiny_adapter(b, &nb);
    CHECK(na == nb && na > 0);
    if (na == nb) CHECK_REL("adapter trained through compute_loss", wb, wa, na, 1e-5);
    c.compute_loss = t_detached_loss;
    CHECK_STATUS(sft_train(b, ds, &c, &out), SFT_ERR_ARG);
    CHECK_ERROR_MENTIONS("compute_loss");
done:
    free(wa); free(wb);
    sft_dataset_destroy(ds);
    sft_model_destroy(a); sft_model_destroy(b);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
}

/* stop_on_nonfinite_loss: a NaN loss ends the step with SFT_ERR_NUMERIC, the
   step does not count and no gradient is left behind */
static void a_nan_loss_can_stop_training(void) {
    sft_context *ctx = t_context(1);
    sft_tokenizer *tok = NULL;
    sft_model *m = t_lora_model(ctx);
    sft_dataset *ds = NULL;
    sft_trainer *tr = NULL;
    sft_train_config c;
    sft_step_info info;
    sft_lora_weights w;
    float saved;
    CHECK_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", &tok));
    if (tok) ds = t_rows(ctx, tok, 8);
    if (!m || !ds) goto done;
    memset(&c, 0, sizeof c);
    c.per_device_train_batch_size = 4; c.max_steps = 3; c.sequential = 1; c.stop_on_nonfinite_loss = 1;
    CHECK_OK(sft_trainer_create(m, ds, &c, &tr));
    if (!tr) goto done;
    CHECK_OK(sft_trainer_step(tr, &info));
    if (sft_linear_adapter_weights(sft_model_linear(m, 0, "q_proj"), "default", &w) != SFT_OK) goto done;
    saved = ((float *)w.B->data)[0];
    ((float *)w.B->data)[0] = NAN;
    CHECK_STATUS(sft_trainer_step(tr, &info), SFT_ERR_NUMERIC);
    CHECK_ERROR_MENTIONS("nan");
    CHECK_MSG(!w.A->grad || ((float *)w.A->grad->data)[0] == 0.0f, "a gradient was left behind");
    ((float *)w.B->data)[0] = saved;      /* the run goes on from the same step */
    CHECK_OK(sft_trainer_step(tr, &info));
    CHECK_MSG(info.global_step == 2, "global_step %lld after the stopped step was retried", (long long)info.global_step);
done:
    sft_trainer_destroy(tr);
    sft_dataset_destroy(ds);
    sft_model_destroy(m);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
}

/* A loss that turns NaN is filtered from the log as transformers does (it counts
   as the mean since the last log) and training goes on; with the filter off the
   NaN is logged. */
static void a_nan_loss_is_filtered_from_the_log(void) {
    static const sft_toggle filters[3] = {SFT_DEFAULT, SFT_ON, SFT_OFF};
    int k;
    for (k = 0; k < 3; k++) {
        int filter = filters[k] != SFT_OFF;
        sft_context *ctx = t_context(1);
        sft_tokenizer *tok = NULL;
        sft_model *m = t_lora_model(ctx);
        sft_dataset *ds = NULL;
        sft_trainer *tr = NULL;
        sft_train_config c;
        sft_step_info info;
        t_logs logs;
        memset(&logs, 0, sizeof logs);
        CHECK_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", &tok));
        if (tok) ds = t_rows(ctx, tok, 8);
        if (m && ds) {
            sft_lora_weights w;
            memset(&c, 0, sizeof c);
            c.per_device_train_batch_size = 4; c.max_steps = 3; c.logging_steps = 1; c.sequential = 1;
            c.logging_nan_inf_filter = filters[k]; c.on_log = t_on_log; c.user = &logs;
            CHECK_OK(sft_trainer_create(m, ds, &c, &tr));
            if (tr) CHECK_OK(sft_trainer_step(tr, &info));
            if (sft_linear_adapter_weights(sft_model_linear(m, 0, "q_proj"), "default", &w) == SFT_OK) ((float *)w.B->data)[0] = NAN;
            if (tr) CHECK_OK(sft_trainer_step(tr, &info));
            CHECK(logs.n == 2);
            if (logs.n == 2) {
                CHECK(isfinite(logs.e[0].loss));
                if (filter) CHECK_MSG(isfinite(logs.e[1].loss), "filtered loss %g", logs.e[1].loss);
                else CHECK_MSG(isnan(logs.e[1].loss), "unfiltered loss %g", logs.e[1].loss);
            }
        }
        sft_trainer_destroy(tr);
        sft_dataset_destroy(ds);
        sft_model_destroy(m);
        sft_tokenizer_destroy(tok);
        sft_context_destroy(ctx);
    }
}

/* Evaluation on the eval split: at the start, every eval_steps and at each
   epoch's end, reported through the callback and as JSON lines with TRL's
   names; the eval loss does not depend on training state changes it does not
   see (a second evaluation before any step gives the same number). */
static void evaluation_and_metrics_lines(void) {
    sft_context *ctx = t_context(1);
    sft_tokenizer *tok = NULL;
    sft_model *m = t_lora_model(ctx);
    sft_dataset *ds = NULL, *no_eval = NULL;
    sft_train_config c;
    sft_train_output out;
    t_logs logs;
    char path[600], *text = NULL;
    size_t len = 0;
    int i, evals = 0;
    memset(&logs, 0, sizeof logs);
    CHECK_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", &tok));
    if (tok) {
        static const char *const rec[] = {"{\"input_ids\": [5, 6, 7, 8]}", "{\"input_ids\": [9, 10, 11]}", "{\"input_ids\": [12, 13, 14, 15, 16]}",
                                          "{\"input_ids\": [3, 4, 5, 6, 7, 8]}", "{\"input_ids\": [20, 21, 22]}", "{\"input_ids\": [30, 31, 32, 33]}",
                                          "{\"input_ids\": [40, 41, 42]}", "{\"input_ids\": [50, 51, 52, 53, 54, 55]}"};
        sft_data_desc d;
        memset(&d, 0, sizeof d);
        d.max_length = 32; d.pad_token = "!"; d.eval_fraction = 0.25f; d.seed = 3;
        CHECK_OK(sft_dataset_from_records(ctx, tok, rec, 8, &d, &ds));
        d.eval_fraction = 0;
        CHECK_OK(sft_dataset_from_records(ctx, tok, rec, 8, &d, &no_eval));
    }
    if (!m || !ds || !no_eval) goto done;
    snprintf(path, sizeof path, "%s/metrics.jsonl", t_tmpdir());
    memset(&c, 0, sizeof c);
    c.per_device_train_batch_size = 2; c.max_steps = 4; c.logging_steps = 1; c.sequential = 1; c.learning_rate = 1e-3;
    c.eval_steps = 2; c.eval_on_start = 1; c.token_metrics = 1; c.on_log = t_on_log; c.user = &logs; c.metrics_path = path;
    CHECK_OK(sft_train(m, ds, &c, &out));
    for (i = 0; i < logs.n; i++) if (logs.e[i].is_eval) { evals++; CHECK(isfinite(logs.e[i].loss) && logs.e[i].loss > 0); }
    CHECK_MSG(evals == 3 && logs.n == 7, "%d evaluations in %d entries (want 3 in 7: start, steps 2 and 4)", evals, logs.n);
    CHECK(logs.e[0].is_eval && logs.e[0].global_step == 0);
    CHECK(out.global_step == 4 && isfinite(out.train_loss));
    CHECK_OK(sft_file_read(ctx, path, 0, &text, &len));
    if (text) {
        int lines = 0;
        for (i = 0; (size_t)i < len; i++) lines += text[i] == '\n';
        CHECK(lines == 7 && strstr(text, "\"eval_loss\"") && strstr(text, "\"grad_norm\"") && strstr(text, "\"eval_mean_token_accuracy\""));
    }
    sft_free(ctx, text);
    c.metrics_path = NULL; c.on_log = NULL;
    CHECK_STATUS(sft_train(m, no_eval, &c, &out), SFT_ERR_ARG); CHECK_ERROR_MENTIONS("no eval set");
done:
    sft_dataset_destroy(ds); sft_dataset_destroy(no_eval);
    sft_model_destroy(m);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
}

/* NEFTune changes the logits in training only, and its noise follows its seed
   (the magnitude alpha / sqrt(T * D) is not checked against transformers yet). */
static void neftune_adds_noise_in_training_only_keyed_by_its_seed(void) {
    sft_context *ctx = t_context(1);
    sft_model *m = t_lora_model(ctx);
    sft_tensor *ids = NULL;
    int64_t shape[2] = {1, 6}, i;
    float *a = NULL, *b = NULL, *c = NULL, *e = NULL;
    int k;
    if (!m) goto done;
    CHECK_OK(sft_tensor_create(ctx, SFT_I32, 2, shape, &ids));
    for (i = 0; ids && i < 6; i++) ((int32_t *)ids->data)[i] = (int32_t)(10 + 7 * i);
    for (k = 0; ids && k < 4; k++) {
        sft_model_batch bt;
        sft_model_run run;
        sft_model_output out;
        memset(&bt, 0, sizeof bt); memset(&run, 0, sizeof run);
        bt.input_ids = ids;
        run.training = k != 3; run.neftune_noise_alpha = k == 0 ? 0.0f : 5.0f; run.neftune_seed = k == 2 ? 9 : 8;
        sft_step_begin(ctx);
        CHECK_OK(sft_model_forward(m, &bt, &run, &out));
        if (!out.logits) continue;
        {
            float *dst = (float *)malloc(sft_tensor_nbytes(out.logits));
            memcpy(dst, out.logits->data, sft_tensor_nbytes(out.logits));
            if (k == 0) a = dst; else if (k == 1) b = dst; else if (k == 2) c = dst; else e = dst;
        }
    }
    if (a && b && c && e) {
        CHECK(memcmp(a, b, 6 * 256 * 4) != 0);     /* noise in training */
        CHECK(memcmp(b, c, 6 * 256 * 4) != 0);     /* another seed, other noise */
        CHECK(memcmp(a, e, 6 * 256 * 4) == 0);     /* eval: none */
    }
done:
    free(a); free(b); free(c); free(e);
    sft_tensor_destroy(ids);
    sft_model_destroy(m);
    sft_context_destroy(ctx);
}

/* Prompt tuning through the same loop: only the virtual tokens train (no
   adapter), and the loss falls. */
static void prompt_tuning_trains_through_the_loop(void) {
    sft_context *ctx = t_context(1);
    sft_tokenizer *tok = NULL;
    sft_model *m = NULL;
    sft_dataset *ds = NULL;
    sft_tensor *prompts = NULL;
    sft_train_config c;
    sft_train_output out;
    t_logs logs;
    float before = 0;
    memset(&logs, 0, sizeof logs);
    CHECK_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", &tok));
    CHECK_OK(sft_model_load(ctx, "tests/fixtures/models/qwen2", NULL, &m));
    if (tok) ds = t_rows(ctx, tok, 4);
    if (m) CHECK_OK(sft_prompt_embeddings_create(ctx, 3, 64, 5, &prompts));
    if (!ds || !prompts) goto done;
    before = ((float *)prompts->data)[0];
    memset(&c, 0, sizeof c);
    c.per_device_train_batch_size = 4; c.max_steps = 15; c.learning_rate = 3e-2; c.logging_steps = 1; c.sequential = 1;
    c.lr_scheduler_type = SFT_SCHEDULE_CONSTANT; c.prompt_embeddings = prompts; c.on_log = t_on_log; c.user = &logs;
    CHECK_OK(sft_train(m, ds, &c, &out));
    CHECK(logs.n == 15 && ((float *)prompts->data)[0] != before);
    if (logs.n == 15) CHECK_MSG(logs.e[14].loss < logs.e[0].loss, "loss %g -> %g", logs.e[0].loss, logs.e[14].loss);
done:
    sft_tensor_destroy(prompts);
    sft_dataset_destroy(ds);
    sft_model_destroy(m);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
}

/* fp16's loss scaling: sft_grad_scaler against torch.amp.GradScaler driven by
   real overflowing gradients (tests/fixtures/amp/grad_scaler.json, written by
   tools/make_grad_scaler_fixture.py): the scale after every step, the growth
   tracker and which steps were skipped, exactly. */
static void grad_scaler_follows_torch(void) {
    sft_context *ctx = t_context(1);
    sft_json *j = t_json_file(ctx, "tests/fixtures/amp/grad_scaler.json");
    const sft_json *cases = j ? sft_json_get(j, "cases") : NULL;
    size_t c;
    CHECK(cases && cases->length == 4);
    for (c = 0; cases && c < cases->length; c++) {
        const sft_json *cs = &cases->items[c], *bad[2], *skipped = sft_json_get(cs, "skipped");
        const sft_json *scales = sft_json_get(cs, "scales"), *trackers = sft_json_get(cs, "growth_trackers");
        const sft_json *changes = sft_json_get(cs, "changes");
        const char *name = sft_json_get(cs, "name")->string;
        int64_t steps = (int64_t)t_num(cs, "steps", 0), step, b;
        size_t next_change = 0, next_skip = 0, k;
        float want = (float)t_num(cs, "init_scale", 0);
        sft_grad_scaler sc;
        bad[0] = sft_json_get(cs, "inf_steps"); bad[1] = sft_json_get(cs, "nan_steps");
        sft_grad_scaler_init(&sc, t_num(cs, "init_scale", 0), (int64_t)t_num(cs, "growth_interval", 0));
        for (step = 1; step <= steps; step++) {
            int found_inf = 0;
            for (b = 0; b < 2; b++)
                for (k = 0; k < bad[b]->length; k++) found_inf |= (int64_t)bad[b]->items[k].number == step;
            /* torch skips exactly the steps whose gradients overflowed */
            if (next_skip < skipped->length && (int64_t)skipped->items[next_skip].number == step) { CHECK(found_inf); next_skip++; }
            else CHECK(!found_inf);
            sft_grad_scaler_update(&sc, found_inf);
            if (scales) {
                want = (float)scales->items[step - 1].number;
                if (sc.growth_tracker != (int64_t)trackers->items[step - 1].number) {
                    CHECK_MSG(0, "%s step %lld: growth tracker %lld, torch %lld", name, (long long)step, (long long)sc.growth_tracker,
                              (long long)trackers->items[step - 1].number);
                    break;
                }
            } else if (next_change < changes->length && (int64_t)changes->items[next_change].items[0].number == step)
                want = (float)changes->items[next_change++].items[1].number;
            if (sc.scale != want) { CHECK_MSG(0, "%s step %lld: scale %.9g, torch %.9g", name, (long long)step, sc.scale, want); break; }
        }
        CHECK(next_skip == skipped->length);
        if (changes) {
            CHECK(next_change == changes->length);
            CHECK(sc.scale == (float)t_num(cs, "final_scale", 0));
            CHECK(sc.growth_tracker == (int64_t)t_num(cs, "final_growth_tracker", -1));
        }
    }
    sft_json_free(j);
    sft_context_destroy(ctx);
}

/* fp16 has no CPU path (transformers refuses --fp16 without a GPU too): a CPU
   model with compute_dtype f16, or a CPU trainer with fp16, gets
   SFT_ERR_UNSUPPORTED naming the way out; a CPU layer made with f16 refuses its
   forward. */
static void fp16_is_refused_on_the_cpu(void) {
    sft_context *ctx = t_context(1);
    sft_load_desc ld;
    sft_model *m = NULL, *lm = t_lora_model(ctx);
    sft_tokenizer *tok = NULL;
    sft_dataset *ds = NULL;
    sft_trainer *tr = NULL;
    sft_train_config c;
    sft_linear_desc d;
    sft_linear *l = NULL;
    sft_tensor *w = NULL, *x = NULL, *y = NULL;
    int64_t ws[2] = {4, 3}, xs[2] = {2, 3};
    memset(&ld, 0, sizeof ld);
    ld.compute_dtype = SFT_F16;
    CHECK_STATUS(sft_model_load(ctx, "tests/fixtures/models/qwen2", &ld, &m), SFT_ERR_UNSUPPORTED);
    CHECK_ERROR_MENTIONS("CUDA device");
    if (lm) { CHECK_STATUS(sft_model_set_compute_dtype(lm, SFT_F16), SFT_ERR_UNSUPPORTED); }
    CHECK_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", &tok));
    if (tok) ds = t_rows(ctx, tok, 4);
    if (lm && ds) {
        memset(&c, 0, sizeof c);
        c.fp16 = 1;
        CHECK_STATUS(sft_trainer_create(lm, ds, &c, &tr), SFT_ERR_UNSUPPORTED); CHECK_ERROR_MENTIONS("fp16");
        memset(&c, 0, sizeof c);
        c.loss_scale_growth_interval = -1;
        CHECK_STATUS(sft_trainer_create(lm, ds, &c, &tr), SFT_ERR_ARG); CHECK_ERROR_MENTIONS("loss_scale_growth_interval");
    }
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, 2, ws, &w));
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, 2, xs, &x));
    if (w && x) {
        memset(w->data, 0, 48); memset(x->data, 0, 24);
        memset(&d, 0, sizeof d);
        d.weight = w; d.compute_dtype = SFT_F16;
        CHECK_OK(sft_linear_create(ctx, &d, &l));
        if (l) {
            CHECK_STATUS(sft_linear_forward(ctx, l, x, NULL, &y), SFT_ERR_UNSUPPORTED); CHECK_ERROR_MENTIONS("float16");
            CHECK_STATUS(sft_linear_set_compute_dtype(l, SFT_F16), SFT_ERR_UNSUPPORTED);
            CHECK_OK(sft_linear_set_compute_dtype(l, SFT_BF16));
            CHECK_OK(sft_linear_forward(ctx, l, x, NULL, &y));
        } else sft_tensor_destroy(w);
    }
    sft_linear_destroy(l);
    sft_tensor_destroy(x);
    sft_dataset_destroy(ds);
    sft_tokenizer_destroy(tok);
    sft_model_destroy(lm);
    sft_context_destroy(ctx);
}

/* --- compute_metrics and preprocess_logits_for_metrics ------------------------ */

/* the host's state of tools/make_metrics_fixtures.py's TokenAccuracy: per
   batch the argmax hits, the targets and the next-token NLL sum over the
   shifted labels; at compute_result the metrics, then a reset */
typedef struct t_acc {
    int64_t correct, targets;
    double  nll;
    int     calls, results, bad_shape, test_prefix, too_many, reserved, nul_preds;
    int64_t batch_correct[64], batch_targets[64], batch_T[64];
    double  batch_nll[64];
    int     batch_result[64];
} t_acc;

/* preprocess_logits_for_metrics: [B, T, 2] f32, the argmax (the first largest)
   and the next label's NLL (0 where there is none) */
static sft_status t_argmax_nll(sft_context *ctx, sft_tensor *logits, sft_tensor *labels, void *user, sft_tensor **out) {
    int64_t B = logits->shape[0], T = logits->shape[1], V = logits->shape[2], shape[3], b, t, v;
    const int32_t *lab = (const int32_t *)labels->data;
    float *o;
    if (((t_acc *)user)->nul_preds) { *out = NULL; return SFT_OK; }
    shape[0] = B; shape[1] = T; shape[2] = 2;
    if (sft_tensor_create_on(ctx, SFT_DEVICE_CPU, SFT_F32, 3, shape, out) != SFT_OK) return SFT_ERR_NOMEM;
    o = (float *)(*out)->data;
    for (b = 0; b < B; b++)
        for (t = 0; t < T; t++) {
            const float *l = (const float *)logits->data + (b * T + t) * V;
            int32_t next = t + 1 < T ? lab[b * T + t + 1] : -100;
            int64_t best = 0;
            double mx = l[0], z = 0.0;
            for (v = 1; v < V; v++) if (l[v] > l[best]) best = v;
            mx = l[best];
            for (v = 0; v < V; v++) z += exp((double)l[v] - mx);
            o[(b * T + t) * 2] = (float)best;
            o[(b * T + t) * 2 + 1] = next == -100 ? 0.0f : (float)(mx + log(z) - (double)l[next]);
        }
    return SFT_OK;
}

static sft_status t_token_accuracy(sft_context *ctx, const sft_eval_prediction *p, int compute_result, sft_metrics *out, void *user) {
    t_acc *a = (t_acc *)user;
    int64_t B, T, b, t, c = 0, n = 0;
    double nll = 0.0;
    sft_status s;
    char name[32];
    (void)ctx;
    if (!p->predictions || p->predictions->ndim != 3 || p->predictions->shape[2] != 2 || p->label_ids->ndim != 2 ||
        p->predictions->shape[0] != p->label_ids->shape[0] || p->predictions->shape[1] != p->label_ids->shape[1]) a->bad_shape++;
    else {
        const float *pr = (const float *)p->predictions->data;
        const int32_t *lab = (const int32_t *)p->label_ids->data;
        B = p->label_ids->shape[0]; T = p->label_ids->shape[1];
        for (b = 0; b < B; b++)
            for (t = 0; t + 1 < T; t++) {
                int32_t y = lab[b * T + t + 1];
                if (y == -100) continue;
                c += (int32_t)pr[(b * T + t) * 2] == y;
                nll += pr[(b * T + t) * 2 + 1];
                n++;
            }
        if (a->calls < 64) {
            a->batch_correct[a->calls] = c; a->batch_targets[a->calls] = n; a->batch_nll[a->calls] = nll;
            a->batch_T[a->calls] = T; a->batch_result[a->calls] = compute_result;
        }
    }
    a->test_prefix += strcmp(p->metric_key_prefix, "test") == 0;
    a->calls++;
    a->correct += c; a->targets += n; a->nll += nll;
    if (!compute_result) return SFT_OK;
    a->results++;
    if (a->too_many) {                   /* a host that fills the struct itself, past its end */
        out->n = SFT_METRICS_MAX + 1;
        return SFT_OK;
    }
    s = sft_metrics_set(out, "accuracy", a->targets ? (double)a->correct / (double)a->targets : 0.0);
    if (s == SFT_OK) s = sft_metrics_set(out, "target_nll", a->targets ? a->nll / (double)a->targets : 0.0);
    snprintf(name, sizeof name, "%s_%s", p->metric_key_prefix, a->reserved ? "loss" : "targets");      /* the prefix is optional */
    if (s == SFT_OK) s = sft_metrics_set(out, name, (double)a->targets);
    a->correct = a->targets = 0; a->nll = 0.0;
    return s;
}

/* the metrics.json job's settings: trl_plateau's with a linear schedule,
   evaluation and a save every 2 steps, the best model by target_nll */
static void t_metrics_config(sft_train_config *c, sft_dataset *eval, t_acc *acc, const char *out_dir) {
    memset(c, 0, sizeof *c);
    c->per_device_train_batch_size = 4; c->gradient_accumulation_steps = 2; c->learning_rate = 1e-3;
    c->lr_scheduler_type = SFT_SCHEDULE_LINEAR; c->warmup_steps = 2; c->max_steps = 8; c->logging_steps = 1; c->sequential = 1;
    c->eval_dataset = eval; c->eval_steps = 2; c->per_device_eval_batch_size = 4; c->save_steps = 2; c->output_dir = out_dir;
    c->load_best_model_at_end = 1; c->metric_for_best_model = "target_nll";
    c->compute_metrics = t_token_accuracy; c->preprocess_logits_for_metrics = t_argmax_nll; c->user = acc;
}

static double t_entry_metric(const sft_log_entry *e, const char *name) {
    double v = NAN;
    return sft_log_entry_metric(e, name, &v) ? v : NAN;
}

/* compute_metrics with batch_eval_metrics' calls (each batch, compute_result on
   the last), preprocess_logits_for_metrics, and a metric_for_best_model of its
   names that transformers maximises (not ending in "loss"): the metrics, the
   per-batch counts, best_metric and best_model_checkpoint of TRL's run
   (tools/make_metrics_fixtures.py). Measured: eval_target_nll within 1e-8
   relative, eval_loss within 6e-8, the counts exact (tolerance 1e-5). */
static void compute_metrics_and_the_best_model_match_trl(void) {
    sft_context *ctx = t_context(2);
    sft_json *j = t_json_file(ctx, T_TFIX "metrics.json"), *st = NULL;
    const sft_json *evals = j ? sft_json_get(j, "evals") : NULL, *hist;
    sft_tokenizer *tok = NULL;
    sft_model *m = NULL;
    sft_dataset *ds = NULL, *eval = NULL;
    sft_train_config c;
    sft_train_output out;
    t_acc *acc = (t_acc *)calloc(1, sizeof *acc);
    char dir[600], path[700];
    double worst_nll = 0.0, worst_loss = 0.0;
    int i, ev = 0, call = 0;
    if (!evals || !t_trl_job(ctx, 1, sft_json_get(j, "eval_rows"), &tok, &m, &ds, &eval)) goto done;
    snprintf(dir, sizeof dir, "%s/metrics_trl", t_tmpdir());
    t_metrics_config(&c, eval, acc, dir);
    CHECK_OK(sft_train(m, ds, &c, &out));
    CHECK_MSG(acc->bad_shape == 0 && acc->calls == 8 && acc->results == 4 && acc->test_prefix == 0,
              "%d calls (%d results, %d of a wrong shape), want 8 (4 evaluations of 2 batches)", acc->calls, acc->results, acc->bad_shape);
    for (i = 0; i < (int)evals->length; i++) {
        const sft_json *bs = sft_json_get(&evals->items[i], "batches");
        size_t k;
        for (k = 0; bs && k < bs->length && call < 64; k++, call++) {
            const sft_json *b = &bs->items[k], *shape = sft_json_get(b, "batch_shape");
            int64_t T = shape && shape->length == 2 ? (int64_t)shape->items[1].number : -1;
            CHECK_MSG(acc->batch_correct[call] == (int64_t)t_num(b, "correct", -1) && acc->batch_targets[call] == (int64_t)t_num(b, "targets", -1) &&
                      acc->batch_T[call] == T,
                      "evaluation %d batch %zu: %lld of %lld correct, T %lld", i, k, (long long)acc->batch_correct[call],
                      (long long)acc->batch_targets[call], (long long)acc->batch_T[call]);
            CHECK_MSG(acc->batch_result[call] == (k + 1 == bs->length), "evaluation %d batch %zu: compute_result %d", i, k, acc->batch_result[call]);
            CHECK_MSG(fabs(acc->batch_nll[call] - t_num(b, "nll_sum", 0)) <= 1e-5 * t_num(b, "nll_sum", 0), "evaluation %d batch %zu: NLL sum %.9g, TRL %.9g",
                      i, k, acc->batch_nll[call], t_num(b, "nll_sum", 0));
        }
    }
    /* the log history as the last checkpoint's trainer_state.json holds it */
    snprintf(path, sizeof path, "%s/checkpoint-8/trainer_state.json", dir);
    st = t_json_file(ctx, path);
    hist = st ? sft_json_get(st, "log_history") : NULL;
    for (i = 0; hist && i < (int)hist->length; i++) {
        const sft_json *h = &hist->items[i], *want;
        double nll, loss;
        if (!sft_json_get(h, "eval_loss")) continue;
        want = ev < (int)evals->length ? &evals->items[ev++] : NULL;
        if (!want) { CHECK_MSG(0, "more evaluations than TRL's"); break; }
        CHECK_MSG(t_num(h, "step", -1) == t_num(want, "step", -2), "evaluation %d at step %g, TRL %g", ev, t_num(h, "step", -1), t_num(want, "step", -2));
        CHECK_MSG(t_num(h, "eval_accuracy", -1) == t_num(want, "eval_accuracy", -2) && t_num(h, "eval_targets", -1) == t_num(want, "eval_targets", -2),
                  "step %g: eval_accuracy %g, eval_targets %g; TRL %g, %g", t_num(h, "step", -1), t_num(h, "eval_accuracy", -1), t_num(h, "eval_targets", -1),
                  t_num(want, "eval_accuracy", -2), t_num(want, "eval_targets", -2));
        nll = fabs(t_num(h, "eval_target_nll", 0) - t_num(want, "eval_target_nll", 0)) / t_num(want, "eval_target_nll", 1);
        loss = fabs(t_num(h, "eval_loss", 0) - t_num(want, "eval_loss", 0)) / t_num(want, "eval_loss", 1);
        if (nll > worst_nll) worst_nll = nll;
        if (loss > worst_loss) worst_loss = loss;
    }
    CHECK_MSG(ev == (int)evals->length, "%d evaluations in trainer_state.json, TRL %zu", ev, evals->length);
    CHECK_MSG(worst_nll <= 1e-5 && worst_loss <= 1e-5, "eval_target_nll off by %.2g relative, eval_loss by %.2g (tolerance 1e-5)", worst_nll, worst_loss);
    if (st) {
        const sft_json *bmc = sft_json_get(st, "best_model_checkpoint");
        const char *tail = bmc && bmc->type == SFT_JSON_STRING ? strrchr(bmc->string, '/') : NULL;
        double bm = t_num(st, "best_metric", 0), want = t_num(j, "best_metric", 1);
        CHECK_MSG(fabs(bm - want) <= 1e-5 * want, "best_metric %.9g, TRL %.9g", bm, want);
        CHECK_MSG(t_num(st, "best_global_step", -1) == t_num(j, "best_global_step", -2), "best_global_step %g, TRL %g", t_num(st, "best_global_step", -1),
                  t_num(j, "best_global_step", -2));
        CHECK_MSG(tail && strcmp(tail + 1, sft_json_get(j, "best_model_checkpoint")->string) == 0, "best_model_checkpoint %s, TRL %s",
                  bmc && bmc->string ? bmc->string : "(none)", sft_json_get(j, "best_model_checkpoint")->string);
    }
    if (getenv("SFT_TEST_VERBOSE")) printf("    eval_target_nll %.2g, eval_loss %.2g relative to TRL (worst of 4)\n", worst_nll, worst_loss);
done:
    free(acc);
    sft_json_free(st); sft_json_free(j);
    sft_dataset_destroy(ds); sft_dataset_destroy(eval);
    sft_model_destroy(m);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
}

/* a small run's parts for the compute_metrics checks: the tiny Qwen2 with LoRA,
   8 rows of which 2 are the eval split */
static int t_small_job(sft_context *ctx, sft_tokenizer **tok, sft_model **m, sft_dataset **ds) {
    static const char *const rec[] = {"{\"input_ids\": [5, 6, 7, 8]}", "{\"input_ids\": [9, 10, 11]}", "{\"input_ids\": [12, 13, 14, 15, 16]}",
                                      "{\"input_ids\": [3, 4, 5, 6, 7, 8]}", "{\"input_ids\": [20, 21, 22]}", "{\"input_ids\": [30, 31, 32, 33]}",
                                      "{\"input_ids\": [40, 41, 42]}", "{\"input_ids\": [50, 51, 52, 53, 54, 55]}"};
    sft_data_desc d;
    *ds = NULL;
    *m = t_lora_model(ctx);
    CHECK_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", tok));
    if (!*tok || !*m) return 0;
    memset(&d, 0, sizeof d);
    d.max_length = 32; d.pad_token = "!"; d.eval_fraction = 0.25f; d.seed = 3;
    CHECK_OK(sft_dataset_from_records(ctx, *tok, rec, 8, &d, ds));
    return *ds != NULL;
}

static void t_small_config(sft_train_config *c, t_acc *acc) {
    memset(c, 0, sizeof *c);
    c->per_device_train_batch_size = 2; c->max_steps = 4; c->logging_steps = 1; c->sequential = 1; c->learning_rate = 1e-3;
    c->eval_steps = 2; c->per_device_eval_batch_size = 1;
    c->compute_metrics = t_token_accuracy; c->preprocess_logits_for_metrics = t_argmax_nll; c->user = acc;
}

/* metric_for_best_model naming a metric compute_metrics never returns: accepted
   at creation (only an evaluation can tell), the first evaluation fails naming
   it and what there is (transformers' KeyError); without compute_metrics the
   name is refused at once. */
static void a_best_metric_compute_metrics_lacks_fails_the_first_evaluation(void) {
    sft_context *ctx = t_context(1);
    sft_tokenizer *tok = NULL;
    sft_model *m = NULL;
    sft_dataset *ds = NULL;
    sft_trainer *tr = NULL;
    sft_train_config c;
    sft_step_info info;
    t_acc *acc = (t_acc *)calloc(1, sizeof *acc);
    if (!t_small_job(ctx, &tok, &m, &ds)) goto done;
    t_small_config(&c, acc);
    c.metric_for_best_model = "bleu";
    CHECK_OK(sft_trainer_create(m, ds, &c, &tr));
    CHECK_OK(sft_trainer_step(tr, &info));
    CHECK_STATUS(sft_trainer_step(tr, &info), SFT_ERR_NOT_FOUND);
    CHECK_ERROR_MENTIONS("\"eval_bleu\"");
    CHECK_ERROR_MENTIONS("eval_loss, eval_accuracy, eval_target_nll, eval_targets");
    sft_trainer_destroy(tr); tr = NULL;
    c.metric_for_best_model = "eval_accuracy";                /* the eval_ prefix is optional */
    CHECK_OK(sft_trainer_create(m, ds, &c, &tr));
    CHECK_OK(sft_trainer_step(tr, &info)); CHECK_OK(sft_trainer_step(tr, &info));
    sft_trainer_destroy(tr); tr = NULL;
    c.compute_metrics = NULL; c.metric_for_best_model = "bleu";
    CHECK_STATUS(sft_trainer_create(m, ds, &c, &tr), SFT_ERR_ARG);
    CHECK_ERROR_MENTIONS("no compute_metrics");
done:
    free(acc);
    sft_trainer_destroy(tr);
    sft_dataset_destroy(ds);
    sft_model_destroy(m);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
}

/* the bounds of sft_metrics: 16 names of 1 to 63 printable ASCII bytes; a
   seventeenth, a longer or empty name, a name of the trainer's own figures, a
   duplicate and a NULL prediction are refused with a message naming them */
static void metric_names_past_their_bounds_are_refused(void) {
    sft_context *ctx = t_context(1);
    sft_tokenizer *tok = NULL;
    sft_model *m = NULL;
    sft_dataset *ds = NULL;
    sft_trainer *tr = NULL;
    sft_train_config c;
    sft_log_entry e;
    sft_metrics mx;
    t_acc *acc = (t_acc *)calloc(1, sizeof *acc);
    char name[80];
    int i;
    memset(&mx, 0, sizeof mx);
    for (i = 0; i < SFT_METRICS_MAX; i++) { snprintf(name, sizeof name, "m%d", i); CHECK_OK(sft_metrics_set(&mx, name, i)); }
    CHECK_OK(sft_metrics_set(&mx, "m3", 30.0));               /* a name again replaces its value */
    CHECK(mx.n == SFT_METRICS_MAX && mx.values[3] == 30.0);
    CHECK_STATUS(sft_metrics_set(&mx, "one_more", 1.0), SFT_ERR_ARG); CHECK_ERROR_MENTIONS("at most 16");
    memset(&mx, 0, sizeof mx);
    memset(name, 'a', 63); name[63] = 0;
    CHECK_OK(sft_metrics_set(&mx, name, 1.0));
    name[63] = 'a'; name[64] = 0;
    CHECK_STATUS(sft_metrics_set(&mx, name, 1.0), SFT_ERR_ARG); CHECK_ERROR_MENTIONS("longer than 63");
    CHECK_STATUS(sft_metrics_set(&mx, "", 1.0), SFT_ERR_ARG);
    CHECK_STATUS(sft_metrics_set(&mx, "caf\xc3\xa9", 1.0), SFT_ERR_ARG);
    if (!t_small_job(ctx, &tok, &m, &ds)) goto done;
    t_small_config(&c, acc);
    c.metric_for_best_model = name;                           /* 64 bytes: no metric can have it */
    CHECK_STATUS(sft_trainer_create(m, ds, &c, &tr), SFT_ERR_ARG); CHECK_ERROR_MENTIONS("cannot name a metric");
    c.metric_for_best_model = NULL;
    CHECK_OK(sft_trainer_create(m, ds, &c, &tr));
    if (!tr) goto done;
    acc->too_many = 1;
    CHECK_STATUS(sft_trainer_evaluate(tr, &e), SFT_ERR_ARG); CHECK_ERROR_MENTIONS("17 metrics");
    acc->too_many = 0; acc->reserved = 1;
    CHECK_STATUS(sft_trainer_evaluate(tr, &e), SFT_ERR_ARG); CHECK_ERROR_MENTIONS("\"loss\", a name of the trainer's own");
    acc->reserved = 0; acc->nul_preds = 1;
    CHECK_STATUS(sft_trainer_evaluate(tr, &e), SFT_ERR_ARG); CHECK_ERROR_MENTIONS("preprocess_logits_for_metrics failed on batch 0");
    acc->nul_preds = 0;
    CHECK_OK(sft_trainer_evaluate(tr, &e));
    CHECK(e.metrics.n == 3 && strcmp(e.metrics.names[2], "targets") == 0);
done:
    free(acc);
    sft_trainer_destroy(tr);
    sft_dataset_destroy(ds);
    sft_model_destroy(m);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
}

/* compute_metrics' figures go into metrics_path and trainer_state.json's
   log_history (eval_ prefixed, keys sorted) and come back on resume: the
   resumed run's trainer_state.json is the uninterrupted run's, byte for byte.
   sft_trainer_predict hands its batches (the 6 train rows) over with the
   "test" prefix. */
static void compute_metrics_survive_in_trainer_state_and_resume(void) {
    sft_context *ctx = t_context(1);
    sft_tokenizer *tok = NULL;
    sft_model *m = NULL;
    sft_dataset *ds = NULL;
    sft_trainer *tr = NULL;
    sft_train_config c;
    sft_train_output out;
    sft_log_entry e;
    float *start = NULL;
    int64_t n = 0;
    t_acc *acc = (t_acc *)calloc(1, sizeof *acc);
    char dir[600], path[700], lines[700], *whole = NULL, *resumed = NULL, *jsonl = NULL;
    size_t len = 0;
    if (!t_small_job(ctx, &tok, &m, &ds)) goto done;
    start = t_tiny_adapter(m, &n);
    snprintf(dir, sizeof dir, "%s/metrics_resume", t_tmpdir());
    snprintf(lines, sizeof lines, "%s/metrics_resume.jsonl", t_tmpdir());
    t_small_config(&c, acc);
    c.output_dir = dir; c.save_steps = 2; c.metrics_path = lines; c.metric_for_best_model = "target_nll";
    CHECK_OK(sft_train(m, ds, &c, &out));
    snprintf(path, sizeof path, "%s/checkpoint-4/trainer_state.json", dir);
    CHECK_OK(sft_file_read(ctx, path, 0, &whole, &len));
    CHECK_OK(sft_file_read(ctx, lines, 0, &jsonl, &len));
    CHECK(whole && strstr(whole, "\"eval_accuracy\": ") && strstr(whole, "\"eval_target_nll\": ") && strstr(whole, "\"eval_targets\": "));
    CHECK_MSG(whole && strstr(whole, "\"epoch\": ") < strstr(whole, "\"eval_accuracy\": ") && strstr(whole, "\"eval_accuracy\": ") < strstr(whole, "\"eval_loss\": ") &&
              strstr(whole, "\"eval_loss\": ") < strstr(whole, "\"eval_num_tokens\": ") &&
              strstr(whole, "\"eval_num_tokens\": ") < strstr(whole, "\"eval_target_nll\": "), "log_history's keys are not sorted");
    CHECK(jsonl && strstr(jsonl, "\"eval_target_nll\":"));
    /* the same run resumed at step 2 (the adapter as it started) */
    {
        int layer, p, ab;
        int64_t k = 0;
        static const char *const names[7] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
        for (layer = 0; layer < 2; layer++)
            for (p = 0; p < 7; p++) {
                sft_lora_weights w;
                if (sft_linear_adapter_weights(sft_model_linear(m, layer, names[p]), "default", &w) != SFT_OK) continue;
                for (ab = 0; ab < 2; ab++) {
                    sft_tensor *t = ab ? w.B : w.A;
                    memcpy(t->data, start + k, sft_tensor_nbytes(t));
                    k += sft_tensor_numel(t);
                }
            }
    }
    snprintf(path, sizeof path, "%s/checkpoint-2", dir);
    c.resume_from_checkpoint = path; c.metrics_path = NULL;
    CHECK_OK(sft_trainer_create(m, ds, &c, &tr));
    if (tr) {
        sft_step_info info;
        do CHECK_OK(sft_trainer_step(tr, &info)); while (!info.done && info.global_step < 8);
        CHECK_OK(sft_trainer_predict(tr, ds, &e));
        CHECK_MSG(acc->test_prefix == 6 && e.metrics.n == 3 && t_entry_metric(&e, "targets") > 0 && t_entry_metric(&e, "eval_accuracy") >= 0,
                  "predict: %d calls with \"test\", %d metrics", acc->test_prefix, e.metrics.n);
    }
    snprintf(path, sizeof path, "%s/checkpoint-4/trainer_state.json", dir);
    CHECK_OK(sft_file_read(ctx, path, 0, &resumed, &len));
    CHECK_MSG(whole && resumed && strcmp(whole, resumed) == 0, "the resumed run's trainer_state.json differs from the uninterrupted run's");
done:
    free(acc); free(start);
    sft_free(ctx, whole); sft_free(ctx, resumed); sft_free(ctx, jsonl);
    sft_trainer_destroy(tr);
    sft_dataset_destroy(ds);
    sft_model_destroy(m);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
}

void suite_trainer(void) {
    RUN(prompt_tuning_trains_through_the_loop);
    RUN(neftune_adds_noise_in_training_only_keyed_by_its_seed);
    RUN(neftune_matches_transformers_with_its_noise);
    RUN(evaluation_and_metrics_lines);
    RUN(compute_metrics_and_the_best_model_match_trl);
    RUN(a_best_metric_compute_metrics_lacks_fails_the_first_evaluation);
    RUN(metric_names_past_their_bounds_are_refused);
    RUN(compute_metrics_survive_in_trainer_state_and_resume);
    RUN(a_nan_loss_is_filtered_from_the_log);
    RUN(a_nan_loss_can_stop_training);
    RUN(compute_loss_callback_replaces_the_loss);
    RUN(schedules_match_transformers);
    RUN(adamw_matches_torch_bit_for_bit);
    RUN(adamw_8bit_matches_bitsandbytes);
    RUN(the_loss_curve_matches_trl);
    RUN(the_loss_curve_matches_trl_with_clipping);
    RUN(clipping_off_ignores_max_grad_norm);
    RUN(label_smoothing_matches_trl);
    RUN(full_finetuning_matches_trl);
    RUN(plateau_schedule_follows_evaluations_as_trl);
    RUN(adamw_8bit_run_matches_trl);
    RUN(gradient_accumulation_equals_one_big_batch);
    RUN(bad_training_settings_are_refused);
    RUN(grad_scaler_follows_torch);
    RUN(fp16_is_refused_on_the_cpu);
}
