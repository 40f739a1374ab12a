/* test_checkpoint.c - checkpoints: the folder's files (PEFT's adapter, HF's
   trainer_state.json), a resumed run bit-identical to one that never stopped
   (1 and 2 threads, 32- and 8-bit optimizer state), a refused checkpoint of
   another run, a failure at every write position of a save leaving the earlier
   checkpoints byte-identical, save_total_limit with the best kept,
   load_best_model_at_end, cancellation, full fine-tuning and prompt tuning
   checkpoints, and training on from an adapter PEFT saved. */
#include "test.h"

#include <dirent.h>
#include <sys/stat.h>
#include <pthread.h>
#include <unistd.h>

#define T_LLAMA "tests/fixtures/models/llama"

/* ---- helpers ------------------------------------------------------------------ */

static const char *const t_projs[7] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};

/* the tiny Llama with a LoRA adapter (r, alpha 8, dropout) whose B is not zero */
static sft_model *t_ck_model(sft_context *ctx, int r, float dropout) {
    sft_model *m = NULL;
    sft_lora_desc d;
    int layer, p;
    CHECK_OK(sft_model_load(ctx, T_LLAMA, NULL, &m));
    if (!m) return NULL;
    memset(&d, 0, sizeof d);
    d.r = r; d.alpha = 8; d.dropout = dropout; d.seed = 5;
    CHECK_OK(sft_model_add_lora(m, "default", &d, "all-linear"));
    for (layer = 0; layer < 2; layer++)
        for (p = 0; p < 7; p++) {
            sft_lora_weights w;
            uint64_t seed = (uint64_t)(100 + layer * 7 + p);
            int64_t i;
            if (sft_linear_adapter_weights(sft_model_linear(m, layer, t_projs[p]), "default", &w) != SFT_OK) continue;
            for (i = 0; i < sft_tensor_numel(w.B); i++) ((float *)w.B->data)[i] = t_rand(&seed, -0.05f, 0.05f);
        }
    return m;
}

/* n pre-tokenized rows of unequal length */
static sft_dataset *t_ck_rows(sft_context *ctx, sft_tokenizer *tok, int n) {
    char **recs = (char **)calloc((size_t)n, sizeof *recs);
    sft_dataset *ds = NULL;
    sft_data_desc d;
    int i, k;
    for (i = 0; i < n; i++) {
        char buf[400];
        int len = snprintf(buf, sizeof buf, "{\"input_ids\": [");
        int count = 4 + (i * 5) % 13;
        for (k = 0; k < count; k++) len += snprintf(buf + len, sizeof buf - (size_t)len, "%s%d", k ? ", " : "", 3 + (i * 37 + k * 11) % 250);
        snprintf(buf + len, sizeof buf - (size_t)len, "]}");
        recs[i] = strdup(buf);
    }
    memset(&d, 0, sizeof d);
    d.max_length = 64; d.pad_token = "!";
    d.eval_fraction = 0.2; d.seed = 3;
    CHECK_OK(sft_dataset_from_records(ctx, tok, (const char *const *)recs, n, &d, &ds));
    for (i = 0; i < n; i++) free(recs[i]);
    free(recs);
    return ds;
}

/* the adapter's A and B values, concatenated (malloc'd) */
static float *t_ck_adapter(sft_model *m, int64_t *n) {
    float *out = (float *)malloc(200000 * sizeof(float));
    int layer, p;
    *n = 0;
    for (layer = 0; layer < 2; layer++)
        for (p = 0; p < 7; p++) {
            sft_lora_weights w;
            if (sft_linear_adapter_weights(sft_model_linear(m, layer, t_projs[p]), "default", &w) != SFT_OK) continue;
            memcpy(out + *n, w.A->data, sft_tensor_nbytes(w.A)); *n += sft_tensor_numel(w.A);
            memcpy(out + *n, w.B->data, sft_tensor_nbytes(w.B)); *n += sft_tensor_numel(w.B);
        }
    return out;
}

static void t_ck_config(sft_train_config *c, const char *out_dir, int eight_bit) {
    memset(c, 0, sizeof *c);
    c->per_device_train_batch_size = 2; c->gradient_accumulation_steps = 2; c->num_train_epochs = 2;
    c->learning_rate = 1e-3; c->lr_scheduler_type = SFT_SCHEDULE_COSINE; c->warmup_steps = 1; c->logging_steps = 1;
    c->optim = eight_bit ? SFT_OPTIM_ADAMW_8BIT : SFT_OPTIM_ADAMW_TORCH;
    c->optim_min_8bit_size = 200;     /* 8-bit codes for the A/B tensors of 256+ values */
    c->output_dir = out_dir;
}

static char *t_ck_dir(const char *name) {
    static char buf[8][512];
    static int next;
    char *b = buf[next++ % 8];
    snprintf(b, 512, "%s/%s", t_tmpdir(), name);
    return b;
}

static int t_exists(const char *dir, const char *name) {
    char path[1024];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) == 0;
}

/* t_tree: every file under dir as "path size hash" lines, sorted (a snapshot) */
static void t_tree_walk(const char *dir, const char *rel, char *out, size_t cap) {   /* paths stay short here */
    DIR *d = opendir(dir);
    struct dirent *e;
    char names[64][256];
    int n = 0, i, j;
    if (!d) return;
    while ((e = readdir(d)) != NULL && n < 64)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) snprintf(names[n++], 256, "%s", e->d_name);
    closedir(d);
    for (i = 1; i < n; i++)
        for (j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char t[256];
            memcpy(t, names[j], 256); memcpy(names[j], names[j - 1], 256); memcpy(names[j - 1], t, 256);
        }
    for (i = 0; i < n; i++) {
        char path[2048], r[2048];
        struct stat st;
        if (strlen(dir) + strlen(names[i]) > 1500 || strlen(rel) + strlen(names[i]) > 1500) continue;
        snprintf(path, sizeof path, "%.1500s/%.255s", dir, names[i]);
        snprintf(r, sizeof r, "%.1500s/%.255s", rel, names[i]);
        if (stat(path, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) t_tree_walk(path, r, out, cap);
        else {
            char *data = NULL;
            size_t len = 0, k, used = strlen(out);
            uint64_t h = 1469598103934665603ull;
            if (sft_file_read(NULL, path, 0, &data, &len) != SFT_OK) { sft_clear_error(); continue; }
            for (k = 0; k < len; k++) h = (h ^ (unsigned char)data[k]) * 1099511628211ull;
            sft_free(NULL, data);
            snprintf(out + used, cap - used, "%s %zu %016llx\n", r, len, (unsigned long long)h);
        }
    }
}

static char *t_tree(const char *dir) {
    char *out = (char *)calloc(1, 65536);
    t_tree_walk(dir, "", out, 65536);
    return out;
}

/* ---- the files of a checkpoint -------------------------------------------------- */

/* save_steps 2 over 6 steps: checkpoint-2, -4, -6 with PEFT's adapter files
   (reloading gives the same adapter), HF's trainer_state.json, no temporary
   folder; save_total_limit 2 keeps the newest two. */
static void a_checkpoint_holds_the_adapter_and_trainer_state(void) {
    sft_context *ctx = t_context(1);
    sft_tokenizer *tok = NULL;
    sft_dataset *ds = NULL;
    sft_model *m = t_ck_model(ctx, 4, 0.0f), *back = NULL;
    sft_train_config c;
    sft_train_output out;
    const char *dir = t_ck_dir("layout");
    char ck[600];
    sft_json *state = NULL;
    char *text = NULL;
    size_t len = 0;
    CHECK_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", &tok));
    if (tok) ds = t_ck_rows(ctx, tok, 12);
    if (!m || !ds) goto done;
    t_ck_config(&c, dir, 0);
    c.save_steps = 2; c.save_total_limit = 2; c.eval_steps = 3;
    CHECK_OK(sft_train(m, ds, &c, &out));
    CHECK(out.global_step == 6);
    CHECK(!t_exists(dir, "checkpoint-2") && t_exists(dir, "checkpoint-4") && t_exists(dir, "checkpoint-6"));
    CHECK(!t_exists(dir, "tmp-checkpoint-6") && !t_exists(dir, "checkpoint-6.old"));
    snprintf(ck, sizeof ck, "%s/checkpoint-6", dir);
    CHECK(t_exists(ck, "adapter_model.safetensors") && t_exists(ck, "adapter_config.json") && t_exists(ck, "optimizer.safetensors") &&
          t_exists(ck, "trainer_state.json") && t_exists(ck, "sft_state.json"));
    CHECK_OK(sft_model_load(ctx, T_LLAMA, NULL, &back));
    if (back) {
        int64_t na = 0, nb = 0;
        float *a, *b;
        CHECK_OK(sft_model_load_adapter(back, ck, "default"));
        a = t_ck_adapter(m, &na); b = t_ck_adapter(back, &nb);
        CHECK(na == nb && na > 0 && memcmp(a, b, (size_t)na * sizeof(float)) == 0);
        free(a); free(b);
    }
    snprintf(ck, sizeof ck, "%s/checkpoint-6/trainer_state.json", dir);
    CHECK_OK(sft_file_read(NULL, ck, 0, &text, &len));
    if (text) {
        sft_json_desc jd;
        memset(&jd, 0, sizeof jd);
        CHECK_OK(sft_json_parse(ctx, text, len, ck, &jd, &state));
    }
    if (state) {
        const sft_json *h = sft_json_get(state, "log_history");
        static const char *const keys[] = {"best_global_step", "best_metric", "best_model_checkpoint", "epoch", "eval_steps", "global_step",
                                           "is_hyper_param_search", "is_local_process_zero", "is_world_process_zero", "log_history",
                                           "logging_steps", "max_steps", "num_input_tokens_seen", "num_train_epochs", "save_steps",
                                           "stateful_callbacks", "total_flos", "train_batch_size", "trial_name", "trial_params"};
        size_t k;
        CHECK(state->length == sizeof keys / sizeof *keys);
        for (k = 0; k < state->length && k < sizeof keys / sizeof *keys; k++)
            CHECK_MSG(strcmp(state->keys[k], keys[k]) == 0, "trainer_state.json key %zu is %s, want %s", k, state->keys[k], keys[k]);
        CHECK(sft_json_get(state, "global_step")->number == 6 && sft_json_get(state, "max_steps")->number == 6);
        CHECK(sft_json_get(state, "total_flos")->number == out.total_flos);
        CHECK_MSG(h && h->length == 6 + 2, "log_history of %zu entries (6 steps, 2 evaluations)", h ? h->length : 0);
        CHECK(h && h->length > 2 && sft_json_get(&h->items[3], "eval_loss") && sft_json_get(&h->items[0], "loss"));
    }
done:
    sft_json_free(state);
    sft_free(NULL, text);
    sft_model_destroy(back);
    sft_dataset_destroy(ds);
    sft_model_destroy(m);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
}

/* ---- resume ------------------------------------------------------------------------ */

/* the adapter after a whole run, or after stop_at steps, a save, and a resumed
   second half in a new model and trainer */
static float *t_ck_run(int threads, int eight_bit, int stop_at, const char *dir, int64_t *n) {
    sft_context *ctx = t_context(threads);
    sft_tokenizer *tok = NULL;
    sft_dataset *ds = NULL;
    sft_model *m = t_ck_model(ctx, 4, 0.1f);
    sft_trainer *tr = NULL;
    sft_train_config c;
    sft_train_output out;
    sft_step_info info;
    float *w = NULL;
    int k;
    *n = 0;
    CHECK_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", &tok));
    if (tok) ds = t_ck_rows(ctx, tok, 12);
    if (!m || !ds) goto done;
    t_ck_config(&c, dir, eight_bit);
    c.eval_steps = 2;              /* evaluations in between must not disturb anything */
    if (!stop_at) CHECK_OK(sft_train(m, ds, &c, &out));
    else {
        CHECK_OK(sft_trainer_create(m, ds, &c, &tr));
        for (k = 0; tr && k < stop_at; k++) CHECK_OK(sft_trainer_step(tr, &info));
        if (tr) CHECK_OK(sft_trainer_save(tr));
        sft_trainer_destroy(tr);
        sft_model_destroy(m);
        m = t_ck_model(ctx, 4, 0.1f);    /* a new process would start like this */
        c.resume_from_checkpoint = "last";
        if (m) CHECK_OK(sft_train(m, ds, &c, &out));
        CHECK(out.global_step == 6);
    }
    if (m) w = t_ck_adapter(m, n);
done:
    sft_dataset_destroy(ds);
    sft_model_destroy(m);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
    return w;
}

/* 6 steps (shuffled epochs, LoRA dropout, cosine schedule, windows 2/2/1,
   evaluation every 2 steps) stopped after step 1, 2 or 4 and resumed from the
   checkpoint: the final adapter is bit-identical to the uninterrupted run, on
   1 and 2 threads, with f32 and 8-bit optimizer state */
static void a_resumed_run_is_bit_identical(void) {
    int threads, eight, stop;
    for (eight = 0; eight < 2; eight++)
        for (threads = 1; threads <= 2; threads++) {
            int64_t nu = 0;
            float *u = t_ck_run(threads, eight, 0, t_ck_dir("whole"), &nu);
            for (stop = 1; u && stop <= 4; stop *= 2) {
                char name[64];
                int64_t nr = 0;
                float *r;
                snprintf(name, sizeof name, "resume-%d-%d-%d", eight, threads, stop);
                r = t_ck_run(threads, eight, stop, t_ck_dir(name), &nr);
                CHECK_MSG(r && nr == nu && memcmp(r, u, (size_t)nu * sizeof(float)) == 0,
                          "%s optimizer, %d thread(s), stopped after step %d: the resumed adapter differs", eight ? "8-bit" : "f32", threads, stop);
                free(r);
            }
            free(u);
        }
}

/* a checkpoint of another LoRA config, a missing file, a corrupt state file:
   refused with the file and what differs, the model left as it was */
static void a_checkpoint_of_another_run_is_refused(void) {
    sft_context *ctx = t_context(1);
    sft_tokenizer *tok = NULL;
    sft_dataset *ds = NULL;
    sft_model *m = t_ck_model(ctx, 4, 0.0f), *other = t_ck_model(ctx, 8, 0.0f);
    sft_trainer *tr = NULL;
    sft_train_config c;
    sft_step_info info;
    const char *dir = t_ck_dir("refuse");
    char ck[600], path[700];
    int64_t n0 = 0, n1 = 0;
    float *before = NULL, *after = NULL;
    CHECK_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", &tok));
    if (tok) ds = t_ck_rows(ctx, tok, 12);
    if (!m || !other || !ds) goto done;
    t_ck_config(&c, dir, 0);
    CHECK_OK(sft_trainer_create(m, ds, &c, &tr));
    if (tr) { CHECK_OK(sft_trainer_step(tr, &info)); CHECK_OK(sft_trainer_save(tr)); }
    sft_trainer_destroy(tr); tr = NULL;
    snprintf(ck, sizeof ck, "%s/checkpoint-1", dir);
    c.resume_from_checkpoint = ck;
    CHECK_STATUS(sft_trainer_create(other, ds, &c, &tr), SFT_ERR_ARG);
    CHECK_ERROR_MENTIONS("another run"); CHECK_ERROR_MENTIONS("r 4"); CHECK_ERROR_MENTIONS("r 8");
    before = t_ck_adapter(m, &n0);
    snprintf(path, sizeof path, "%s/optimizer.safetensors", ck);
    {   /* a missing optimizer file */
        char moved[720];
        snprintf(moved, sizeof moved, "%s.moved", path);
        CHECK(rename(path, moved) == 0);
        CHECK_STATUS(sft_trainer_create(m, ds, &c, &tr), SFT_ERR_IO); CHECK_ERROR_MENTIONS("optimizer.safetensors");
        CHECK(rename(moved, path) == 0);
    }
    snprintf(path, sizeof path, "%s/sft_state.json", ck);
    {   /* a truncated state file */
        FILE *f = fopen(path, "r+b");
        if (f) { CHECK(ftruncate(fileno(f), 40) == 0); fclose(f); }
        CHECK_STATUS(sft_trainer_create(m, ds, &c, &tr), SFT_ERR_FORMAT); CHECK_ERROR_MENTIONS("sft_state.json");
    }
    after = t_ck_adapter(m, &n1);
    CHECK(n0 == n1 && memcmp(before, after, (size_t)n0 * sizeof(float)) == 0);
    c.resume_from_checkpoint = "last"; c.output_dir = t_ck_dir("refuse-empty");
    CHECK_STATUS(sft_trainer_create(m, ds, &c, &tr), SFT_ERR_NOT_FOUND); CHECK_ERROR_MENTIONS("no checkpoint");
    c.resume_from_checkpoint = NULL; c.output_dir = "/proc/self/no/such/dir";
    CHECK_STATUS(sft_trainer_create(m, ds, &c, &tr), SFT_ERR_IO); CHECK_ERROR_MENTIONS("output_dir");
done:
    free(before); free(after);
    sft_dataset_destroy(ds);
    sft_model_destroy(m); sft_model_destroy(other);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
}

/* ---- failures while saving ----------------------------------------------------------- */

typedef struct t_fault { int calls, fail_at; } t_fault;
static size_t t_faulty_write(int fd, const void *data, size_t len, void *user) {
    t_fault *f = (t_fault *)user;
    if (++f->calls == f->fail_at) return len / 2;   /* a disk that fills mid-write */
    return (size_t)write(fd, data, len);
}

/* a save that fails at write 1, 2, ... (every position until one succeeds):
   an error naming what failed, the earlier checkpoint byte-identical, no
   temporary folder, and the run goes on to save the next step */
static void a_failed_save_at_every_write_leaves_earlier_checkpoints(void) {
    sft_context *ctx = NULL;
    sft_context_desc cd;
    t_fault fault = {0, 0};
    sft_tokenizer *tok = NULL;
    sft_dataset *ds = NULL;
    sft_model *m = NULL;
    sft_trainer *tr = NULL;
    sft_train_config c;
    sft_step_info info;
    const char *dir = t_ck_dir("faults");
    char *snap = NULL;
    int k, failures = 0;
    memset(&cd, 0, sizeof cd);
    cd.threads = 1; cd.write = t_faulty_write; cd.write_user = &fault;
    CHECK_OK(sft_context_create(&cd, &ctx));
    if (!ctx) return;
    m = t_ck_model(ctx, 4, 0.0f);
    CHECK_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", &tok));
    if (tok) ds = t_ck_rows(ctx, tok, 12);
    if (!m || !ds) goto done;
    t_ck_config(&c, dir, 0);
    CHECK_OK(sft_trainer_create(m, ds, &c, &tr));
    if (!tr) goto done;
    CHECK_OK(sft_trainer_step(tr, &info));
    CHECK_OK(sft_trainer_save(tr));
    CHECK_OK(sft_trainer_step(tr, &info));
    snap = t_tree(dir);
    for (k = 1; k < 1000; k++) {
        sft_status s;
        char *now;
        fault.calls = 0; fault.fail_at = k;
        s = sft_trainer_save(tr);
        if (s == SFT_OK) break;
        failures++;
        CHECK_MSG(s == SFT_ERR_IO && strstr(sft_last_error(), "checkpoint-2 not written"), "write %d: %s: %s", k, sft_status_str(s), sft_last_error());
        now = t_tree(dir);
        CHECK_MSG(strcmp(now, snap) == 0, "write %d failed and the folder changed:\n%s\nwas\n%s", k, now, snap);
        free(now);
    }
    CHECK_MSG(failures >= 8, "only %d write positions in a save", failures);
    CHECK(t_exists(dir, "checkpoint-1") && t_exists(dir, "checkpoint-2") && !t_exists(dir, "tmp-checkpoint-2"));
    fault.fail_at = 0;
    CHECK_OK(sft_trainer_step(tr, &info));
    CHECK_OK(sft_trainer_save(tr));
    CHECK(t_exists(dir, "checkpoint-3"));
    printf("    %d write positions failed cleanly\n", failures);
done:
    free(snap);
    sft_trainer_destroy(tr);
    sft_dataset_destroy(ds);
    sft_model_destroy(m);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
}

/* ---- the best model -------------------------------------------------------------- */

typedef struct t_evals { int n; int64_t step[16]; double loss[16]; } t_evals;
static void t_on_eval(const sft_log_entry *e, void *user) {
    t_evals *v = (t_evals *)user;
    if (v->n < 16) { v->step[v->n] = e->global_step; v->loss[v->n] = e->loss; v->n++; }
}

/* eval and save every 2 steps with save_total_limit 1 and
   load_best_model_at_end: the best checkpoint (lowest eval_loss) is kept (at
   the end, as transformers, only it), trainer_state.json names it, and the
   model ends with its weights. A learning rate that makes the loss climb puts
   the best early. save_total_limit 2 mid-run is covered by the layout test. */
static void the_best_checkpoint_is_kept_and_loaded_at_the_end(void) {
    sft_context *ctx = t_context(1);
    sft_tokenizer *tok = NULL;
    sft_dataset *ds = NULL;
    sft_model *m = t_ck_model(ctx, 4, 0.0f), *best = NULL;
    sft_train_config c;
    sft_train_output out;
    t_evals ev;
    const char *dir = t_ck_dir("best");
    char ck[600], name[64];
    int i, b = 0;
    memset(&ev, 0, sizeof ev);
    CHECK_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", &tok));
    if (tok) ds = t_ck_rows(ctx, tok, 12);
    if (!m || !ds) goto done;
    t_ck_config(&c, dir, 0);
    c.learning_rate = 0.3; c.lr_scheduler_type = SFT_SCHEDULE_CONSTANT; c.num_train_epochs = 3;
    c.eval_steps = 2; c.save_steps = 2; c.save_total_limit = 1; c.load_best_model_at_end = 1;
    c.on_evaluate = t_on_eval; c.user = &ev;
    CHECK_OK(sft_train(m, ds, &c, &out));
    CHECK(ev.n == 4);
    for (i = 1; i < ev.n; i++) if (ev.loss[i] < ev.loss[b]) b = i;
    CHECK_MSG(ev.step[b] < out.global_step, "the best evaluation is the last one (step %lld): the test needs an earlier best", (long long)ev.step[b]);
    snprintf(name, sizeof name, "checkpoint-%lld", (long long)ev.step[b]);
    CHECK_MSG(t_exists(dir, name), "%s (the best) was deleted", name);
    for (i = 0; i < ev.n; i++) {       /* transformers, at the end with a limit of 1: only the best stays */
        snprintf(name, sizeof name, "checkpoint-%lld", (long long)ev.step[i]);
        if (i != b) CHECK_MSG(!t_exists(dir, name), "%s outlived save_total_limit 1 at the end", name);
    }
    snprintf(ck, sizeof ck, "%s/checkpoint-%lld", dir, (long long)ev.step[b]);
    CHECK_OK(sft_model_load(ctx, T_LLAMA, NULL, &best));
    if (best) {
        int64_t na = 0, nb = 0;
        float *x, *y;
        CHECK_OK(sft_model_load_adapter(best, ck, "default"));
        x = t_ck_adapter(m, &na); y = t_ck_adapter(best, &nb);
        CHECK_MSG(na == nb && memcmp(x, y, (size_t)na * sizeof(float)) == 0, "the model does not hold the best checkpoint's adapter");
        free(x); free(y);
    }
    {
        char path[700], *text = NULL;
        size_t len = 0;
        snprintf(path, sizeof path, "%s/trainer_state.json", ck);
        CHECK_OK(sft_file_read(NULL, path, 0, &text, &len));
        CHECK_MSG(text && strstr(text, ck), "trainer_state.json does not name %s as best_model_checkpoint", ck);
        sft_free(NULL, text);
    }
    memset(&c, 0, sizeof c);
    c.load_best_model_at_end = 1; c.output_dir = dir; c.eval_steps = 2; c.save_steps = 3;
    CHECK_STATUS(sft_train(m, ds, &c, &out), SFT_ERR_ARG); CHECK_ERROR_MENTIONS("multiple of eval_steps");
    c.save_steps = 0; c.save_each_epoch = 1;
    CHECK_STATUS(sft_train(m, ds, &c, &out), SFT_ERR_ARG); CHECK_ERROR_MENTIONS("save and eval strategy to match");
done:
    sft_model_destroy(best);
    sft_dataset_destroy(ds);
    sft_model_destroy(m);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
}

/* ---- cancellation --------------------------------------------------------------------- */

static int t_stop_at_3(const sft_step_info *info, void *user) { (void)user; return info->global_step == 3; }

/* go is read and written with atomic builtins: a plain (or volatile) int shared
   by two threads is a data race, which ThreadSanitizer reports (make tsan) */
typedef struct t_canceller { sft_trainer *tr; int go; } t_canceller;
static void *t_cancel_thread(void *arg) {
    t_canceller *c = (t_canceller *)arg;
    while (!__atomic_load_n(&c->go, __ATOMIC_ACQUIRE)) {}
    sft_trainer_cancel(c->tr);
    return NULL;
}

/* on_step_end returning nonzero at step 3: sft_train stops there, saves
   checkpoint-3 and says so; resuming finishes with the uninterrupted adapter.
   sft_trainer_cancel from another thread stops a step loop at a boundary. */
static void a_cancelled_run_stops_at_a_step_and_resumes(void) {
    sft_context *ctx = t_context(1);
    sft_tokenizer *tok = NULL;
    sft_dataset *ds = NULL;
    sft_model *m = t_ck_model(ctx, 4, 0.1f), *whole = t_ck_model(ctx, 4, 0.1f);
    sft_trainer *tr = NULL;
    sft_train_config c;
    sft_train_output out;
    sft_step_info info;
    const char *dir = t_ck_dir("cancel");
    int64_t na = 0, nb = 0;
    float *x = NULL, *y = NULL;
    CHECK_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", &tok));
    if (tok) ds = t_ck_rows(ctx, tok, 12);
    if (!m || !whole || !ds) goto done;
    t_ck_config(&c, t_ck_dir("cancel-whole"), 0);
    CHECK_OK(sft_train(whole, ds, &c, &out));
    t_ck_config(&c, dir, 0);
    c.on_step_end = t_stop_at_3;
    CHECK_OK(sft_train(m, ds, &c, &out));
    CHECK(out.cancelled && out.global_step == 3 && t_exists(dir, "checkpoint-3"));
    c.on_step_end = NULL; c.resume_from_checkpoint = "last";
    CHECK_OK(sft_train(m, ds, &c, &out));
    CHECK(!out.cancelled && out.global_step == 6);
    x = t_ck_adapter(whole, &na); y = t_ck_adapter(m, &nb);
    CHECK_MSG(na == nb && memcmp(x, y, (size_t)na * sizeof(float)) == 0, "cancelled and resumed differs from the whole run");
    c.resume_from_checkpoint = NULL; c.output_dir = NULL; c.num_train_epochs = 50;
    CHECK_OK(sft_trainer_create(m, ds, &c, &tr));
    if (tr) {
        t_canceller cc;
        pthread_t th;
        int steps = 0;
        cc.tr = tr; cc.go = 0;
        CHECK(pthread_create(&th, NULL, t_cancel_thread, &cc) == 0);
        do {
            CHECK_OK(sft_trainer_step(tr, &info));
            if (++steps == 2) __atomic_store_n(&cc.go, 1, __ATOMIC_RELEASE);
        } while (!info.done && steps < 1000);
        pthread_join(th, NULL);
        CHECK_MSG(info.cancelled && info.global_step < info.max_steps, "cancel from a thread: step %lld of %lld", (long long)info.global_step,
                  (long long)info.max_steps);
        CHECK_OK(sft_trainer_step(tr, &info));          /* stays stopped */
        CHECK(info.done && info.cancelled);
    }
done:
    free(x); free(y);
    sft_trainer_destroy(tr);
    sft_dataset_destroy(ds);
    sft_model_destroy(m); sft_model_destroy(whole);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
}

/* ---- other kinds of run ------------------------------------------------------------------ */

/* full fine-tuning saves a transformers model folder that loads as a model
   with the trained weights; prompt tuning saves PEFT's PROMPT_TUNING adapter */
static void full_and_prompt_tuning_checkpoints(void) {
    sft_context *ctx = t_context(1);
    sft_tokenizer *tok = NULL;
    sft_dataset *ds = NULL;
    sft_model *m = NULL, *back = NULL;
    sft_train_config c;
    sft_train_output out;
    const char *dir = t_ck_dir("full");
    char ck[600];
    sft_tensor *prompts = NULL;
    CHECK_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", &tok));
    CHECK_OK(sft_model_load(ctx, T_LLAMA, NULL, &m));
    if (tok) ds = t_ck_rows(ctx, tok, 12);
    if (!m || !ds) goto done;
    t_ck_config(&c, dir, 0);
    c.full_finetuning = 1; c.max_steps = 2; c.save_steps = 2;
    CHECK_OK(sft_train(m, ds, &c, &out));
    snprintf(ck, sizeof ck, "%s/checkpoint-2", dir);
    CHECK(t_exists(ck, "model.safetensors") && t_exists(ck, "config.json") && !t_exists(ck, "adapter_config.json"));
    CHECK_OK(sft_model_load(ctx, ck, NULL, &back));
    if (back) {
        char name[SFT_WEIGHT_NAME_MAX];
        sft_tensor *w;
        int i, same = 0;
        for (i = 0; sft_model_weight_at(m, i, name, &w); i++) {
            sft_tensor *v = sft_model_weight(back, name);
            if (w && v && sft_tensor_nbytes(w) == sft_tensor_nbytes(v) && memcmp(w->data, v->data, sft_tensor_nbytes(w)) == 0) same++;
            else if (w) CHECK_MSG(0, "%s differs after the reload", name);
        }
        CHECK(same == 21);
        c.resume_from_checkpoint = ck; c.max_steps = 3;
        CHECK_OK(sft_train(back, ds, &c, &out));    /* full fine-tuning resumes too */
        CHECK(out.global_step == 3);
    }
    sft_model_destroy(back); back = NULL;
    {   /* prompt tuning */
        int64_t shape[2] = {3, 64}, i;
        uint64_t seed = 9;
        sft_json *cfg = NULL;
        char path[700], *text = NULL;
        size_t len = 0;
        CHECK_OK(sft_tensor_create(ctx, SFT_F32, 2, shape, &prompts));
        for (i = 0; prompts && i < 3 * 64; i++) ((float *)prompts->data)[i] = t_rand(&seed, -0.5f, 0.5f);
        CHECK_OK(sft_model_load(ctx, T_LLAMA, NULL, &back));
        if (!back || !prompts) goto done;
        t_ck_config(&c, t_ck_dir("prompt"), 0);
        c.prompt_embeddings = prompts; c.max_steps = 2; c.save_steps = 2;
        CHECK_OK(sft_train(back, ds, &c, &out));
        snprintf(path, sizeof path, "%s/checkpoint-2/adapter_config.json", t_ck_dir("prompt"));
        CHECK_OK(sft_file_read(NULL, path, 0, &text, &len));
        if (text) {
            sft_json_desc jd;
            memset(&jd, 0, sizeof jd);
            CHECK_OK(sft_json_parse(ctx, text, len, path, &jd, &cfg));
        }
        CHECK(cfg && strcmp(sft_json_get(cfg, "peft_type")->string, "PROMPT_TUNING") == 0 && sft_json_get(cfg, "num_virtual_tokens")->number == 3);
        snprintf(path, sizeof path, "%s/checkpoint-2/adapter_model.safetensors", t_ck_dir("prompt"));
        {
            sft_st_file *f = NULL;
            CHECK_OK(sft_st_open(ctx, path, &f));
            if (f) CHECK_SAME("prompt_embeddings", (const float *)t_st_data(f, "prompt_embeddings", NULL), (const float *)prompts->data, 3 * 64);
            sft_st_close(f);
        }
        sft_json_free(cfg);
        sft_free(NULL, text);
    }
done:
    sft_tensor_destroy(prompts);
    sft_model_destroy(back);
    sft_dataset_destroy(ds);
    sft_model_destroy(m);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
}

/* the adapter PEFT saved for the model fixtures trains on: a few steps
   change it, the loss stays finite, and its checkpoint reloads */
static void training_continues_from_an_adapter_peft_saved(void) {
    sft_context *ctx = t_context(1);
    sft_tokenizer *tok = NULL;
    sft_dataset *ds = NULL;
    sft_model *m = NULL;
    sft_train_config c;
    sft_train_output out;
    int64_t n0 = 0, n1 = 0;
    float *before = NULL, *after = NULL;
    CHECK_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", &tok));
    CHECK_OK(sft_model_load(ctx, T_LLAMA, NULL, &m));
    if (m) CHECK_OK(sft_model_load_adapter(m, T_LLAMA "/adapter", "default"));
    if (tok) ds = t_ck_rows(ctx, tok, 12);
    if (!m || !ds) goto done;
    before = t_ck_adapter(m, &n0);
    t_ck_config(&c, t_ck_dir("peft"), 0);
    c.max_steps = 3; c.save_steps = 3;
    CHECK_OK(sft_train(m, ds, &c, &out));
    CHECK(isfinite(out.train_loss) && out.global_step == 3);
    after = t_ck_adapter(m, &n1);
    CHECK(n0 == n1 && n0 > 0 && memcmp(before, after, (size_t)n0 * sizeof(float)) != 0);
    CHECK(t_exists(t_ck_dir("peft"), "checkpoint-3/adapter_model.safetensors"));
done:
    free(before); free(after);
    sft_dataset_destroy(ds);
    sft_model_destroy(m);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
}

/* ---- PEFT opens our checkpoints --------------------------------------------------------- */

#define T_INTEROP "tests/fixtures/interop/"

static uint64_t t_fnv_file(const char *path) {
    char *data = NULL;
    size_t len = 0, k;
    uint64_t h = 1469598103934665603ull;
    if (sft_file_read(NULL, path, 0, &data, &len) != SFT_OK) { sft_clear_error(); return 0; }
    for (k = 0; k < len; k++) h = (h ^ (unsigned char)data[k]) * 1099511628211ull;
    sft_free(NULL, data);
    return h;
}

static int t_copy_file(const char *from, const char *to) {
    char *data = NULL;
    size_t len = 0;
    sft_buf b;
    if (sft_file_read(NULL, from, 0, &data, &len) != SFT_OK) return 0;
    b.data = data; b.len = len;
    if (sft_file_write_atomic(NULL, to, &b, 1) != SFT_OK) { sft_free(NULL, data); return 0; }
    sft_free(NULL, data);
    return 1;
}

/* The checkpoint of a LoRA and a DoRA run (deterministic weights, no arithmetic
   in them) must equal the files committed under tests/fixtures/interop/, which
   tools/check_peft_interop.py loaded with PeftModel.from_pretrained: its
   result.json must name these very files (their hashes) and find PEFT's logits
   within 1e-5 of ours; and our logits now must match PEFT's it recorded.
   SFT_WRITE_FIXTURES=1 rewrites the committed files (then rerun the script). */
static void our_checkpoint_opens_in_peft(void) {
    static const char *const variants[2] = {"lora", "dora"};
    static const int32_t rows[2][8] = {{5, 17, 42, 99, 7, 250, 3, 64}, {12, 8, 200, 33, 1, 9, 77, 150}};
    const char *write = getenv("SFT_WRITE_FIXTURES");
    sft_context *ctx = t_context(1);
    sft_tokenizer *tok = NULL;
    sft_dataset *ds = NULL;
    sft_json *result = NULL;
    sft_st_file *peft = NULL;
    int v;
    CHECK_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", &tok));
    if (tok) ds = t_ck_rows(ctx, tok, 12);
    if (!write) {
        result = t_json_file(ctx, T_INTEROP "result.json");
        CHECK_OK(sft_st_open(ctx, T_INTEROP "peft_logits.safetensors", &peft));
    }
    for (v = 0; ds && v < 2; v++) {
        sft_model *m = NULL;
        sft_lora_desc d;
        sft_trainer *tr = NULL;
        sft_train_config c;
        sft_tensor *ids = NULL;
        int64_t shape[2] = {2, 8};
        char dir[600], ck[700], from[800], to[800], key[64];
        int layer, p, f;
        static const char *const files[2] = {"adapter_model.safetensors", "adapter_config.json"};
        CHECK_OK(sft_model_load(ctx, T_LLAMA, NULL, &m));
        if (!m) break;
        memset(&d, 0, sizeof d);
        d.r = 4; d.alpha = 8; d.use_dora = v == 1; d.seed = 11;
        CHECK_OK(sft_model_add_lora(m, "default", &d, "all-linear"));
        for (layer = 0; layer < 2; layer++)
            for (p = 0; p < 7; p++) {
                sft_lora_weights w;
                uint64_t seed = (uint64_t)(200 + layer * 7 + p);
                int64_t i;
                if (sft_linear_adapter_weights(sft_model_linear(m, layer, t_projs[p]), "default", &w) != SFT_OK) continue;
                for (i = 0; i < sft_tensor_numel(w.B); i++) ((float *)w.B->data)[i] = t_rand(&seed, -0.2f, 0.2f);
                for (i = 0; w.magnitude && i < sft_tensor_numel(w.magnitude); i++) ((float *)w.magnitude->data)[i] *= t_rand(&seed, 0.8f, 1.2f);
            }
        snprintf(dir, sizeof dir, "%s/interop-%s", t_tmpdir(), variants[v]);
        t_ck_config(&c, dir, 0);
        CHECK_OK(sft_trainer_create(m, ds, &c, &tr));
        if (tr) CHECK_OK(sft_trainer_save(tr));
        sft_trainer_destroy(tr);
        snprintf(ck, sizeof ck, "%s/checkpoint-0", dir);
        for (f = 0; f < 2; f++) {
            snprintf(from, sizeof from, "%s/%s", ck, files[f]);
            snprintf(to, sizeof to, T_INTEROP "%s/%s", variants[v], files[f]);
            if (write) { mkdir(T_INTEROP, 0777); snprintf(key, sizeof key, T_INTEROP "%s", variants[v]); mkdir(key, 0777); CHECK(t_copy_file(from, to)); }
            else CHECK_MSG(t_fnv_file(from) == t_fnv_file(to), "%s is not what sft.h writes now: run SFT_WRITE_FIXTURES=1 ./build/test_sft "
                           "our_checkpoint_opens_in_peft, then tools/check_peft_interop.py", to);
            if (result) {   /* the PEFT check ran on these very files */
                const sft_json *h = sft_json_get(sft_json_get(sft_json_get(result, variants[v]), "fnv1a64"), files[f]);
                char hex[32];
                snprintf(hex, sizeof hex, "%016llx", (unsigned long long)t_fnv_file(to));
                CHECK_MSG(h && h->type == SFT_JSON_STRING && strcmp(h->string, hex) == 0, "result.json was made from another %s/%s: rerun "
                          "tools/check_peft_interop.py", variants[v], files[f]);
            }
        }
        CHECK_OK(sft_tensor_create(ctx, SFT_I32, 2, shape, &ids));
        if (ids) {
            sft_model_batch b;
            sft_model_output o;
            memcpy(ids->data, rows, sizeof rows);
            memset(&b, 0, sizeof b);
            b.input_ids = ids;
            sft_step_begin(ctx);
            CHECK_OK(sft_model_forward(m, &b, NULL, &o));
            snprintf(key, sizeof key, "%s/ours", variants[v]);
            if (write && o.logits) {
                sft_st_entry e = sft_st_entry_from_tensor(key, o.logits);
                snprintf(to, sizeof to, T_INTEROP "%s/ours_logits.safetensors", variants[v]);
                CHECK_OK(sft_st_save(ctx, to, &e, 1, NULL, NULL, 0));
            } else if (peft && o.logits) {
                snprintf(key, sizeof key, "%s/peft", variants[v]);
                CHECK_REL(key, (const float *)o.logits->data, (const float *)t_st_data(peft, key, NULL), 2 * 8 * 256, 1e-5);
            }
            if (result) {
                const sft_json *r = sft_json_get(sft_json_get(result, variants[v]), "max_diff_relative_to_max");
                CHECK_MSG(r && r->type == SFT_JSON_NUMBER && r->number <= 1e-5, "PEFT's logits of our %s checkpoint differ by %g of the largest",
                          variants[v], r ? r->number : -1.0);
            }
            sft_step_begin(ctx);
        }
        sft_tensor_destroy(ids);
        sft_model_destroy(m);
    }
    sft_st_close(peft);
    sft_json_free(result);
    sft_dataset_destroy(ds);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
}

/* greater_is_better SFT_ON overrides transformers' rule for the loss (lower is
   better): with save_total_limit 1 the checkpoint that stays is the one of the
   highest eval_loss, not the lowest */
static void greater_is_better_on_keeps_the_highest_loss(void) {
    sft_context *ctx = t_context(1);
    sft_tokenizer *tok = NULL;
    sft_dataset *ds = NULL;
    sft_model *m = t_ck_model(ctx, 4, 0.0f);
    sft_train_config c;
    sft_train_output out;
    t_evals ev;
    const char *dir = t_ck_dir("best_high");
    char name[64];
    int i, hi = 0, lo = 0;
    memset(&ev, 0, sizeof ev);
    CHECK_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", &tok));
    if (tok) ds = t_ck_rows(ctx, tok, 12);
    if (!m || !ds) goto done;
    t_ck_config(&c, dir, 0);
    c.learning_rate = 0.3; c.lr_scheduler_type = SFT_SCHEDULE_CONSTANT; c.num_train_epochs = 3;
    c.eval_steps = 2; c.save_steps = 2; c.save_total_limit = 1; c.load_best_model_at_end = 1;
    c.greater_is_better = SFT_ON;
    c.on_evaluate = t_on_eval; c.user = &ev;
    CHECK_OK(sft_train(m, ds, &c, &out));
    CHECK(ev.n == 4);
    for (i = 1; i < ev.n; i++) {
        if (ev.loss[i] > ev.loss[hi]) hi = i;
        if (ev.loss[i] < ev.loss[lo]) lo = i;
    }
    CHECK_MSG(hi != lo, "every evaluation gave loss %g: the test needs them to differ", ev.loss[0]);
    for (i = 0; i < ev.n; i++) {
        snprintf(name, sizeof name, "checkpoint-%lld", (long long)ev.step[i]);
        CHECK_MSG(t_exists(dir, name) == (i == hi), "%s (eval_loss %g, the highest %g) %s", name, ev.loss[i], ev.loss[hi],
                  i == hi ? "was deleted" : "outlived save_total_limit 1");
    }
done:
    sft_dataset_destroy(ds);
    sft_model_destroy(m);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
}

void suite_checkpoint(void) {
    RUN(a_checkpoint_holds_the_adapter_and_trainer_state);
    RUN(a_resumed_run_is_bit_identical);
    RUN(a_checkpoint_of_another_run_is_refused);
    RUN(a_failed_save_at_every_write_leaves_earlier_checkpoints);
    RUN(the_best_checkpoint_is_kept_and_loaded_at_the_end);
    RUN(greater_is_better_on_keeps_the_highest_loss);
    RUN(a_cancelled_run_stops_at_a_step_and_resumes);
    RUN(full_and_prompt_tuning_checkpoints);
    RUN(training_continues_from_an_adapter_peft_saved);
    RUN(our_checkpoint_opens_in_peft);
}
