/* test_prompt.c - multitask prompt tuning and prompt tuning on padding-free
   (packed) batches, against what PEFT 0.21.2 + TRL computed
   (tools/make_prompt_fixtures.py -> tests/fixtures/peft/prompt.*), the
   MULTITASK_PROMPT_TUNING adapter layout PEFT saves, and training with task ids. */
#include "test.h"

#include <string.h>
#include <stdio.h>
#include <stdlib.h>

#define P_MODEL   "tests/fixtures/models/llama"
#define P_FIX     "tests/fixtures/peft/prompt.safetensors"
#define P_ADAPTER "tests/fixtures/peft/mpt_adapter"
/* tolerances for f32 on both sides with different summation orders */
#define P_LOGIT_TOL 1e-5
#define P_GRAD_TOL  1e-4

static const char *const p_names[3] = {"prompt_embeddings", "prefix_task_cols", "prefix_task_rows"};

/* a fixture tensor, loaded (persistent) */
static sft_tensor *p_load(sft_context *ctx, const sft_st_file *f, const char *name) {
    sft_tensor *t = NULL;
    CHECK_OK(sft_st_load(ctx, f, name, &t));
    return t;
}

/* the forward PEFT ran (train mode), then backward; compares logits (where
   want_mask is 1, or all when NULL), loss and the gradients of t[0..n) */
static void p_check_pass(sft_context *ctx, sft_model *m, const sft_st_file *f, const char *pre, sft_tensor *prompts, sft_tensor *ids,
                         sft_tensor *mask, sft_tensor *labels, sft_tensor *const *t, int n) {
    sft_tensor *emb = NULL;
    sft_prompt_batch pb;
    sft_model_batch b;
    sft_model_run run;
    sft_model_output out;
    char name[96];
    int64_t count = 0, i, k;
    const float *want;
    memset(&out, 0, sizeof out);
    CHECK_OK(sft_model_embed(m, ids, &emb));
    if (!emb) return;
    CHECK_OK(sft_prompt_prepend(ctx, prompts, emb, mask, labels, &pb));
    if (!pb.embeds) return;
    memset(&b, 0, sizeof b); memset(&run, 0, sizeof run);
    b.inputs_embeds = pb.embeds; b.attention_mask = pb.attention_mask; b.labels = pb.labels; b.positions = pb.positions;
    run.want_logits = 1; run.training = 1;
    CHECK_OK(sft_model_forward(m, &b, &run, &out));
    snprintf(name, sizeof name, "%s.logits", pre);
    want = (const float *)t_st_data(f, name, &count);
    if (out.logits && want && count == sft_tensor_numel(out.logits)) {
        int64_t V = out.logits->shape[2], rows = count / V;
        for (i = 0; i < rows; i++) {
            if (((const int32_t *)pb.attention_mask->data)[i] == 0) continue;   /* padding: no one reads it */
            for (k = 0; k < V; k++) {
                float g = ((const float *)out.logits->data)[i * V + k], w = want[i * V + k];
                if (!(fabsf(g - w) <= P_LOGIT_TOL + P_LOGIT_TOL * fabsf(w))) {
                    CHECK_MSG(0, "%s: position %lld vocab %lld: %g, PEFT %g", name, (long long)i, (long long)k, g, w);
                    i = rows; break;
                }
            }
        }
    } else CHECK_MSG(0, "%s: no logits or a shape mismatch", name);
    snprintf(name, sizeof name, "%s.loss", pre);
    want = (const float *)t_st_data(f, name, &count);
    if (out.loss && want) CHECK_CLOSE(name, (const float *)out.loss->data, want, 1, 1e-5, 1e-5);
    if (out.loss) CHECK_OK(sft_backward(ctx, out.loss));
    for (i = 0; i < n; i++) {
        snprintf(name, sizeof name, "%s.grad.%s", pre, p_names[i]);
        want = (const float *)t_st_data(f, name, &count);
        if (t[i]->grad && want && count == sft_tensor_numel(t[i])) CHECK_REL(name, (const float *)t[i]->grad->data, want, count, P_GRAD_TOL);
        else CHECK_MSG(0, "%s: no gradient or a shape mismatch", name);
    }
}

/* PeftModelForCausalLM with MULTITASK_PROMPT_TUNING: rows of tasks 2, 0, 2 */
static void multitask_prompt_tuning_matches_peft(void) {
    sft_context *ctx = t_context(2);
    sft_model *m = NULL;
    sft_st_file *f = NULL;
    sft_tensor *t[3] = {NULL, NULL, NULL}, *prompts = NULL;
    int i;
    CHECK_OK(sft_model_load(ctx, P_MODEL, NULL, &m));
    CHECK_OK(sft_st_open(ctx, P_FIX, &f));
    if (!m || !f) goto done;
    t[0] = p_load(ctx, f, "mpt.prompt_embeddings"); t[1] = p_load(ctx, f, "mpt.prefix_task_cols"); t[2] = p_load(ctx, f, "mpt.prefix_task_rows");
    if (!t[0] || !t[1] || !t[2]) goto done;
    for (i = 0; i < 3; i++) sft_tensor_set_requires_grad(t[i], 1);
    sft_step_begin(ctx);
    {
        sft_tensor *ids = p_load(ctx, f, "mpt.input_ids"), *mask = p_load(ctx, f, "mpt.attention_mask");
        sft_tensor *labels = p_load(ctx, f, "mpt.labels"), *task = p_load(ctx, f, "mpt.task_ids");
        if (ids && mask && labels && task) {
            CHECK_OK(sft_prompt_multitask(ctx, t[0], t[1], t[2], task, &prompts));
            if (prompts) {
                CHECK(prompts->ndim == 3 && prompts->shape[0] == 3 && prompts->shape[1] == 3 && prompts->shape[2] == 64);
                p_check_pass(ctx, m, f, "mpt", prompts, ids, mask, labels, t, 3);
            }
            ((int32_t *)task->data)[1] = 3;     /* num_tasks is 3 */
            CHECK_STATUS(sft_prompt_multitask(ctx, t[0], t[1], t[2], task, &prompts), SFT_ERR_ARG);
            CHECK_ERROR_MENTIONS("task_ids[1] = 3");
        }
        sft_tensor_destroy(ids); sft_tensor_destroy(mask); sft_tensor_destroy(labels); sft_tensor_destroy(task);
    }
done:
    for (i = 0; i < 3; i++) sft_tensor_destroy(t[i]);
    sft_st_close(f);
    sft_model_destroy(m);
    sft_context_destroy(ctx);
}

/* TRL's padding-free batch (two sequences in one row) through PEFT: the
   prompts in front of the whole row, no mask, positions 0..P+n-1 (PEFT drops
   position_ids): plain prompt tuning and multitask with task 1 */
static void packed_prompt_tuning_matches_peft(void) {
    sft_context *ctx = t_context(2);
    sft_model *m = NULL;
    sft_st_file *f = NULL;
    sft_tensor *t[3] = {NULL, NULL, NULL}, *pe = NULL, *ids = NULL, *labels = NULL, *task = NULL, *prompts = NULL;
    int64_t one = 1;
    int i;
    CHECK_OK(sft_model_load(ctx, P_MODEL, NULL, &m));
    CHECK_OK(sft_st_open(ctx, P_FIX, &f));
    if (!m || !f) goto done;
    ids = p_load(ctx, f, "pf.input_ids"); labels = p_load(ctx, f, "pf.labels"); pe = p_load(ctx, f, "pf.prompt_embeddings");
    if (!ids || !labels || !pe) goto done;
    sft_tensor_set_requires_grad(pe, 1);
    sft_step_begin(ctx);
    p_check_pass(ctx, m, f, "pf", pe, ids, NULL, labels, &pe, 1);
    t[0] = p_load(ctx, f, "mpt.prompt_embeddings"); t[1] = p_load(ctx, f, "mpt.prefix_task_cols"); t[2] = p_load(ctx, f, "mpt.prefix_task_rows");
    CHECK_OK(sft_tensor_create(ctx, SFT_I32, 1, &one, &task));
    if (!t[0] || !t[1] || !t[2] || !task) goto done;
    ((int32_t *)task->data)[0] = 1;
    for (i = 0; i < 3; i++) sft_tensor_set_requires_grad(t[i], 1);
    sft_step_begin(ctx);
    CHECK_OK(sft_prompt_multitask(ctx, t[0], t[1], t[2], task, &prompts));
    if (prompts) p_check_pass(ctx, m, f, "pfm", prompts, ids, NULL, labels, t, 3);
done:
    for (i = 0; i < 3; i++) sft_tensor_destroy(t[i]);
    sft_tensor_destroy(pe); sft_tensor_destroy(ids); sft_tensor_destroy(labels); sft_tensor_destroy(task);
    sft_st_close(f);
    sft_model_destroy(m);
    sft_context_destroy(ctx);
}

static int p_same_tensor(const sft_tensor *a, const sft_tensor *b) {
    return a && b && a->ndim == b->ndim && sft_tensor_numel(a) == sft_tensor_numel(b) &&
           memcmp(a->shape, b->shape, (size_t)a->ndim * sizeof a->shape[0]) == 0 && memcmp(a->data, b->data, sft_tensor_nbytes(a)) == 0;
}

/* the adapter PEFT saved loads bit for bit; ours has PEFT's keys, shapes and
   config and loads back bit for bit */
static void multitask_prompt_adapter_round_trips_with_peft(void) {
    sft_context *ctx = t_context(1);
    sft_model *m = NULL;
    sft_st_file *f = NULL, *g = NULL;
    sft_tensor *a[3] = {NULL, NULL, NULL}, *b[3] = {NULL, NULL, NULL}, *plain = NULL;
    char dir[600], path[700];
    sft_json *cfg = NULL;
    int i;
    CHECK_OK(sft_model_load(ctx, P_MODEL, NULL, &m));
    CHECK_OK(sft_st_open(ctx, P_FIX, &f));
    if (!m || !f) goto done;
    CHECK_OK(sft_model_prompt_load(m, P_ADAPTER, &a[0], &a[1], &a[2]));
    for (i = 0; i < 3; i++) {
        char name[64];
        sft_tensor *want;
        snprintf(name, sizeof name, "mpt.%s", p_names[i]);
        want = p_load(ctx, f, name);
        CHECK_MSG(p_same_tensor(a[i], want), "%s differs from PEFT's", p_names[i]);
        CHECK(a[i] && a[i]->requires_grad);
        sft_tensor_destroy(want);
    }
    CHECK_STATUS(sft_model_prompt_load(m, P_ADAPTER, &plain, NULL, NULL), SFT_ERR_ARG);   /* multitask, nowhere to put it */
    CHECK_ERROR_MENTIONS("MULTITASK_PROMPT_TUNING");
    if (!a[0] || !a[1] || !a[2]) goto done;
    snprintf(dir, sizeof dir, "%s/mpt", t_tmpdir());
    CHECK_OK(sft_model_prompt_save(m, dir, a[0], a[1], a[2]));
    CHECK_OK(sft_model_prompt_load(m, dir, &b[0], &b[1], &b[2]));
    for (i = 0; i < 3; i++) CHECK_MSG(p_same_tensor(a[i], b[i]), "%s changed on the way back", p_names[i]);
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    CHECK_OK(sft_st_open(ctx, path, &g));
    if (g) {
        const sft_st_tensor *e = sft_st_find(g, "prefix_task_cols");
        CHECK(sft_st_count(g) == 3 && sft_st_find(g, "prompt_embeddings") && sft_st_find(g, "prefix_task_rows"));
        CHECK(e && e->ndim == 3 && e->shape[0] == 3 && e->shape[1] == 3 && e->shape[2] == 2);
    }
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    cfg = t_json_file(ctx, path);
    if (cfg) {   /* the fields MultitaskPromptTuningConfig needs, as PEFT wrote them */
        CHECK(strcmp(sft_json_get(cfg, "peft_type")->string, "MULTITASK_PROMPT_TUNING") == 0);
        CHECK(strcmp(sft_json_get(cfg, "task_type")->string, "CAUSAL_LM") == 0);
        CHECK(sft_json_get(cfg, "num_tasks")->number == 3 && sft_json_get(cfg, "num_ranks")->number == 2);
        CHECK(sft_json_get(cfg, "num_virtual_tokens")->number == 3 && sft_json_get(cfg, "token_dim")->number == 64);
        CHECK(sft_json_get(cfg, "num_transformer_submodules")->number == 1);
        CHECK(strcmp(sft_json_get(cfg, "prompt_tuning_init")->string, "RANDOM") == 0);
    }
done:
    sft_json_free(cfg);
    for (i = 0; i < 3; i++) { sft_tensor_destroy(a[i]); sft_tensor_destroy(b[i]); }
    sft_tensor_destroy(plain);
    sft_st_close(f); sft_st_close(g);
    sft_model_destroy(m);
    sft_context_destroy(ctx);
}

/* n token records; record i carries "task_ids": task(i) (none when < 0) */
static sft_dataset *p_rows(sft_context *ctx, sft_tokenizer *tok, int n, int packing, int (*task)(int)) {
    char **recs = (char **)calloc((size_t)n, sizeof *recs);
    sft_dataset *ds = NULL;
    sft_data_desc d;
    int i, k;
    for (i = 0; i < n; i++) {
        char buf[400];
        int len = snprintf(buf, sizeof buf, "{\"input_ids\": [");
        for (k = 0; k < 4 + (i * 5) % 9; k++) len += snprintf(buf + len, sizeof buf - (size_t)len, "%s%d", k ? ", " : "", 3 + (i * 37 + k * 11) % 250);
        len += snprintf(buf + len, sizeof buf - (size_t)len, "]");
        if (task(i) >= 0) len += snprintf(buf + len, sizeof buf - (size_t)len, ", \"task_ids\": %d", task(i));
        snprintf(buf + len, sizeof buf - (size_t)len, "}");
        recs[i] = strdup(buf);
    }
    memset(&d, 0, sizeof d);
    d.max_length = 32; d.pad_token = "!"; d.seed = 3; d.packing = packing;
    CHECK_OK(sft_dataset_from_records(ctx, tok, (const char *const *)recs, n, &d, &ds));
    for (i = 0; i < n; i++) free(recs[i]);
    free(recs);
    return ds;
}

static int p_task_mod3(int i) { return i % 3; }
static int p_task_one(int i) { (void)i; return 1; }
static int p_task_bad(int i) { return i == 5 ? 7 : i % 3; }
static int p_task_missing(int i) { return i == 2 ? -1 : 0; }

typedef struct { sft_tensor *t[3]; } p_prompts;

static int p_prompts_make(sft_context *ctx, p_prompts *p) {
    memset(p, 0, sizeof *p);
    CHECK_OK(sft_prompt_embeddings_create(ctx, 3, 64, 11, &p->t[0]));
    CHECK_OK(sft_prompt_tasks_create(ctx, 3, 2, 3, 64, 11, &p->t[1], &p->t[2]));
    return p->t[0] && p->t[1] && p->t[2];
}

static void p_prompts_free(p_prompts *p) { int i; for (i = 0; i < 3; i++) sft_tensor_destroy(p->t[i]); }

static void p_config(sft_train_config *c, const char *dir, const p_prompts *p) {
    memset(c, 0, sizeof *c);
    c->per_device_train_batch_size = 2; c->gradient_accumulation_steps = 2; c->max_steps = 4;
    c->learning_rate = 1e-2; c->logging_steps = 1; c->save_steps = 2; c->output_dir = dir;
    c->lr_scheduler_type = SFT_SCHEDULE_CONSTANT;   /* the same rates whatever max_steps says */
    c->prompt_embeddings = p->t[0]; c->prefix_task_cols = p->t[1]; c->prefix_task_rows = p->t[2];
}

/* four steps straight, or two, a checkpoint, and two more from it: the same bits;
   the checkpoint is PEFT's MULTITASK_PROMPT_TUNING adapter */
static void multitask_prompt_training_resumes_bit_for_bit(void) {
    sft_context *ctx = t_context(1);
    sft_tokenizer *tok = NULL;
    sft_dataset *ds = NULL;
    sft_model *m = NULL;
    p_prompts a, b;
    sft_train_config c;
    sft_train_output out;
    char dir_a[600], dir_b[600], ck[700];
    int i, init_ok;
    CHECK_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", &tok));
    CHECK_OK(sft_model_load(ctx, P_MODEL, NULL, &m));
    init_ok = p_prompts_make(ctx, &a) & p_prompts_make(ctx, &b);
    if (tok) ds = p_rows(ctx, tok, 16, 0, p_task_mod3);
    if (!m || !ds || !init_ok) goto done;
    CHECK(fabsf(((float *)a.t[1]->data)[0]) < 0.1f);     /* cols and rows: N(0, 0.02^2) */
    snprintf(dir_a, sizeof dir_a, "%s/mpt_a", t_tmpdir()); snprintf(dir_b, sizeof dir_b, "%s/mpt_b", t_tmpdir());
    p_config(&c, dir_a, &a);
    CHECK_OK(sft_train(m, ds, &c, &out));
    p_config(&c, dir_b, &b);
    c.max_steps = 2;
    CHECK_OK(sft_train(m, ds, &c, &out));
    snprintf(ck, sizeof ck, "%s/checkpoint-2", dir_b);
    for (i = 0; i < 3; i++) sft_tensor_destroy(b.t[i]);
    CHECK(p_prompts_make(ctx, &b));                      /* fresh tensors: the checkpoint fills them */
    p_config(&c, dir_b, &b);
    c.resume_from_checkpoint = ck;
    CHECK_OK(sft_train(m, ds, &c, &out));
    CHECK(out.global_step == 4);
    for (i = 0; i < 3; i++) CHECK_MSG(p_same_tensor(a.t[i], b.t[i]), "%s: the resumed run differs", p_names[i]);
    {   /* the final checkpoint loads as a multitask adapter */
        sft_tensor *t[3] = {NULL, NULL, NULL};
        snprintf(ck, sizeof ck, "%s/checkpoint-4", dir_a);
        CHECK_OK(sft_model_prompt_load(m, ck, &t[0], &t[1], &t[2]));
        for (i = 0; i < 3; i++) { CHECK_MSG(p_same_tensor(a.t[i], t[i]), "checkpoint-4 %s", p_names[i]); sft_tensor_destroy(t[i]); }
    }
done:
    p_prompts_free(&a); p_prompts_free(&b);
    sft_dataset_destroy(ds);
    sft_model_destroy(m);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
}

/* packed rows train with plain and multitask prompt tuning (a bin's sequences
   share a task); mixed tasks in a bin, a missing or out-of-range task id and a
   malformed one are refused by name */
static void prompt_tuning_task_ids_and_packing_are_checked(void) {
    sft_context *ctx = t_context(1);
    sft_tokenizer *tok = NULL;
    sft_model *m = NULL;
    p_prompts p;
    sft_train_config c;
    sft_train_output out;
    sft_dataset *ds = NULL;
    char dir[600];
    CHECK_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", &tok));
    CHECK_OK(sft_model_load(ctx, P_MODEL, NULL, &m));
    if (!tok || !m || !p_prompts_make(ctx, &p)) goto done;
    snprintf(dir, sizeof dir, "%s/mpt_bad", t_tmpdir());
    p_config(&c, dir, &p);
    c.save_steps = 0; c.max_steps = 2;
    ds = p_rows(ctx, tok, 16, 1, p_task_one);         /* packed, one task */
    if (ds) CHECK_OK(sft_train(m, ds, &c, &out));
    c.prefix_task_cols = c.prefix_task_rows = NULL;   /* packed, plain prompt tuning */
    if (ds) CHECK_OK(sft_train(m, ds, &c, &out));
    sft_dataset_destroy(ds);
    p_config(&c, dir, &p);
    c.save_steps = 0; c.max_steps = 2;
    ds = p_rows(ctx, tok, 16, 1, p_task_mod3);        /* packed, tasks mixed in a bin */
    if (ds) CHECK_STATUS(sft_train(m, ds, &c, &out), SFT_ERR_ARG);
    CHECK_ERROR_MENTIONS("packed row holds tasks");
    sft_dataset_destroy(ds);
    c.max_steps = 8;
    ds = p_rows(ctx, tok, 8, 0, p_task_bad);
    if (ds) CHECK_STATUS(sft_train(m, ds, &c, &out), SFT_ERR_ARG);
    CHECK_ERROR_MENTIONS("task_ids 7 is outside [0, num_tasks 3)");
    sft_dataset_destroy(ds);
    ds = p_rows(ctx, tok, 8, 0, p_task_missing);
    if (ds) CHECK_STATUS(sft_train(m, ds, &c, &out), SFT_ERR_ARG);
    CHECK_ERROR_MENTIONS("no \"task_ids\"");
    sft_dataset_destroy(ds);
    ds = NULL;
    {
        const char *rec = "{\"input_ids\": [5, 6, 7], \"task_ids\": -2}";
        sft_data_desc d;
        memset(&d, 0, sizeof d);
        CHECK_STATUS(sft_dataset_from_records(ctx, tok, &rec, 1, &d, &ds), SFT_ERR_FORMAT);
        CHECK_ERROR_MENTIONS("\"task_ids\" must be an integer >= 0");
    }
    c.prefix_task_rows = NULL;
    ds = p_rows(ctx, tok, 8, 0, p_task_one);
    if (ds) CHECK_STATUS(sft_train(m, ds, &c, &out), SFT_ERR_SHAPE);
    CHECK_ERROR_MENTIONS("all three");
done:
    p_prompts_free(&p);
    sft_dataset_destroy(ds);
    sft_model_destroy(m);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
}

void suite_prompt(void) {
    RUN(multitask_prompt_tuning_matches_peft);
    RUN(packed_prompt_tuning_matches_peft);
    RUN(multitask_prompt_adapter_round_trips_with_peft);
    RUN(multitask_prompt_training_resumes_bit_for_bit);
    RUN(prompt_tuning_task_ids_and_packing_are_checked);
}
