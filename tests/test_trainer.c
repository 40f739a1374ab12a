/* test_trainer.c - the training loop: gradient accumulation equals one big
   batch, the optimizer and schedules against torch/transformers (fixtures by
   tools/make_trainer_fixtures.py), the NaN filter, bad settings. */
#include "test.h"

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
    sft_lora_desc d;
    int layer, p;
    static const char *const names[7] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
    CHECK_OK(sft_model_load(ctx, "tests/fixtures/models/qwen2", NULL, &m));
    if (!m) return NULL;
    memset(&d, 0, sizeof d);
    d.r = 4; d.alpha = 8; d.seed = 1;
    CHECK_OK(sft_model_add_lora(m, "default", &d, "all-linear"));
    for (layer = 0; layer < 2; layer++)
        for (p = 0; p < 7; p++) {
            sft_lora_weights w;
            uint64_t seed = (uint64_t)(10 + layer * 7 + p);
            int64_t i;
            if (sft_linear_adapter_weights(sft_model_linear(m, layer, names[p]), "default", &w) != SFT_OK) continue;
            for (i = 0; i < sft_tensor_numel(w.B); i++) ((float *)w.B->data)[i] = t_rand(&seed, -0.05f, 0.05f);
        }
    return m;
}

static float *t_adapter_copy(sft_model *m, int64_t *n) {
    static const char *const names[7] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
    float *out = (float *)malloc(200000 * sizeof(float));
    int layer, p, ab;
    *n = 0;
    for (layer = 0; layer < 2; layer++)
        for (p = 0; p < 7; p++) {
            sft_lora_weights w;
            if (sft_linear_adapter_weights(sft_model_linear(m, layer, names[p]), "default", &w) != SFT_OK) continue;
            for (ab = 0; ab < 2; ab++) {
                sft_tensor *t = ab ? w.B : w.A;
                memcpy(out + *n, t->data, sft_tensor_nbytes(t));
                *n += sft_tensor_numel(t);
            }
        }
    return out;
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
            a[cfg] = t_adapter_copy(m, &n[cfg]);
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

void suite_trainer(void) {
    RUN(gradient_accumulation_equals_one_big_batch);
    RUN(bad_training_settings_are_refused);
}
