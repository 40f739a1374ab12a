/* parallel.h - one rank's training run for the data-parallel tests
   (tests/test_parallel.c: ranks as threads; tests/test_mpi.c: ranks as MPI
   processes): the tiny Qwen2 with LoRA on pre-tokenized rows, the transport
   given in t_rank_run.par, the per-step figures and the final adapter kept for
   the caller to compare. No CHECKs here (a rank may be a thread): the caller
   checks. */
#ifndef SFT_TESTS_PARALLEL_H
#define SFT_TESTS_PARALLEL_H

#include "tiny.h"
#include <unistd.h>

#define T_MAX_STEPS 16

typedef struct t_rank_run {
    sft_data_parallel par;                       /* zero: one process */
    int         batch, eval_batch, rows, max_steps, stop_at;  /* stop_at: on_step_end asks to stop there */
    int         stall_at, stall_seconds;         /* on_step_end sleeps there (a rank that hangs) */
    int         nf4;                             /* the base quantized to NF4 (QLoRA) */
    const char *output_dir, *metrics_path, *resume;
    int         save_steps;
    int         epochs, logging_steps;           /* epochs: train by epochs (no max_steps) */
    int         load_best;                       /* load_best_model_at_end, saving at each evaluation */
    int         whole_run;                       /* sft_train (TRAIN_END, the best model) instead of steps */
    const sft_callback *callbacks;
    int         n_callbacks;
    sft_collate_fn collate;
    sft_optim   optim;                           /* the optimizer, with optim_args */
    const char *optim_args;
    int         metrics;                         /* compute_metrics "rows" (the eval rows it saw): 1 this
                                                    rank's, 2 summed over the ranks in its final call,
                                                    3 as 1 but rank 1 names it "other" */
    int         fail;                            /* one rank fails alone (SFT_ERR_NUMERIC, or rank 0's write):
                                                    T_FAIL_* below */
    /* results */
    sft_status  status;
    char        msg[1100];
    int         steps;
    double      loss[T_MAX_STEPS], grad_norm[T_MAX_STEPS], eval_loss, eval_accuracy, train_accuracy;
    int64_t     num_tokens, final_step;
    double      metric_rows, eval_rows;          /* compute_metrics' state; the last evaluation's "rows" */
    float      *adapter;
    int64_t     n_adapter;
} t_rank_run;

/* the ways one rank fails alone (t_rank_run.fail) */
enum {
    T_FAIL_NONE,
    T_FAIL_SUBSTEP,       /* rank 1's callback at step 2's first micro-batch (inside the window) */
    T_FAIL_STEP_END,      /* rank 1's callback at step 2's end (before the flags are agreed)     */
    T_FAIL_METRICS,       /* rank 1's compute_metrics, in the evaluation at step 3               */
    T_FAIL_INIT,          /* rank 1's callback at INIT_END: its sft_trainer_create fails          */
    T_FAIL_WRITE,         /* rank 0's output_dir turns into a file: checkpoint-2 cannot be written */
    T_FAIL_EVALUATE,      /* rank 1's callback at EVALUATE in an sft_trainer_evaluate after the run */
    T_FAIL_TRAIN_END      /* rank 1's callback at TRAIN_END (sft_train, after the last collective)  */
};

/* pre-tokenized rows of unequal length, ids inside the tiny model's vocabulary */
static sft_status t_par_rows(sft_context *ctx, sft_tokenizer *tok, int n, int salt, sft_dataset **out) {
    char **recs = (char **)calloc((size_t)n, sizeof *recs);
    sft_data_desc d;
    sft_status s;
    int i, k;
    for (i = 0; i < n; i++) {
        char buf[400];
        int len = snprintf(buf, sizeof buf, "{\"input_ids\": [");
        int count = 5 + (i * 7 + salt) % 16;
        for (k = 0; k < count; k++) len += snprintf(buf + len, sizeof buf - (size_t)len, "%s%d", k ? ", " : "", 3 + (i * 31 + k * 17 + salt) % 250);
        snprintf(buf + len, sizeof buf - (size_t)len, "]}");
        recs[i] = strdup(buf);
    }
    memset(&d, 0, sizeof d);
    d.max_length = 64;
    d.pad_token = "!";
    s = sft_dataset_from_records(ctx, tok, (const char *const *)recs, n, &d, out);
    for (i = 0; i < n; i++) free(recs[i]);
    free(recs);
    return s;
}

static int t_par_step_end(const sft_step_info *info, void *user) {
    t_rank_run *r = (t_rank_run *)user;
    if (r->steps < T_MAX_STEPS) { r->loss[r->steps] = info->loss; r->grad_norm[r->steps] = info->grad_norm; r->steps++; }
    if (r->stall_at && info->global_step == r->stall_at) sleep((unsigned)r->stall_seconds);
    return r->stop_at && info->global_step == r->stop_at;
}

/* compute_metrics counting the eval rows (see t_rank_run.metrics) */
static sft_status t_par_metrics(sft_context *ctx, const sft_eval_prediction *p, int compute_result, sft_metrics *out, void *user) {
    t_rank_run *r = (t_rank_run *)user;
    double rows;
    sft_status s = SFT_OK;
    (void)ctx;
    if (p->label_ids) r->metric_rows += (double)p->label_ids->shape[0];
    if (!compute_result) return SFT_OK;
    rows = r->metric_rows;
    r->metric_rows = 0.0;
    if (r->par.rank == 1 && r->fail == T_FAIL_METRICS) return SFT_ERR_NUMERIC;
    if (r->metrics == 2 && r->par.allreduce_f64) s = r->par.allreduce_f64(&rows, 1, r->par.user);
    if (s == SFT_OK) s = sft_metrics_set(out, r->metrics == 3 && r->par.rank == 1 ? "other" : "rows", rows);
    return s;
}

/* the callback of t_rank_run.fail */
static sft_status t_par_fail(const sft_callback_args *a, sft_trainer_control *control, void *user) {
    t_rank_run *r = (t_rank_run *)user;
    (void)control;
    if (r->fail == T_FAIL_WRITE && r->par.rank == 0 && a->event == SFT_EVENT_STEP_END && a->global_step == 2) {
        FILE *f;
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", r->output_dir);
        if (system(cmd) != 0 || !(f = fopen(r->output_dir, "wb"))) return SFT_ERR_IO;
        fclose(f);
        return SFT_OK;
    }
    if (r->par.rank != 1) return SFT_OK;
    if (r->fail == T_FAIL_INIT && a->event == SFT_EVENT_INIT_END) return SFT_ERR_NUMERIC;
    if (r->fail == T_FAIL_SUBSTEP && a->event == SFT_EVENT_SUBSTEP_END && a->global_step == 1) return SFT_ERR_NUMERIC;
    if (r->fail == T_FAIL_STEP_END && a->event == SFT_EVENT_STEP_END && a->global_step == 2) return SFT_ERR_NUMERIC;
    if (r->fail == T_FAIL_EVALUATE && a->event == SFT_EVENT_EVALUATE && r->final_step) return SFT_ERR_NUMERIC;
    if (r->fail == T_FAIL_TRAIN_END && a->event == SFT_EVENT_TRAIN_END) return SFT_ERR_NUMERIC;
    return SFT_OK;
}

static void t_par_log(const sft_log_entry *e, void *user) {
    t_rank_run *r = (t_rank_run *)user;
    if (e->is_eval) { r->eval_loss = e->loss; r->eval_accuracy = e->mean_token_accuracy; (void)sft_log_entry_metric(e, "rows", &r->eval_rows); }
    else { r->num_tokens = e->num_tokens; r->train_accuracy = e->mean_token_accuracy; }
}

/* t_rank_main: the run (a thread's entry, or called by a process) */
static void *t_rank_main(void *arg) {
    t_rank_run *r = (t_rank_run *)arg;
    sft_context_desc cd;
    sft_context *ctx = NULL;
    sft_tokenizer *tok = NULL;
    sft_model *m = NULL;
    sft_dataset *ds = NULL, *ev = NULL;
    sft_trainer *tr = NULL;
    sft_train_config c;
    sft_step_info info;
    sft_callback fail_cb;
    sft_status s;
    memset(&cd, 0, sizeof cd);
    cd.threads = 1;
    s = sft_context_create(&cd, &ctx);
    if (s == SFT_OK) s = sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", &tok);
    if (s == SFT_OK) s = t_par_rows(ctx, tok, r->rows, 0, &ds);
    if (s == SFT_OK) s = t_par_rows(ctx, tok, 7, 3, &ev);
    if (s == SFT_OK) s = t_tiny_model(ctx, r->nf4, &m);
    memset(&c, 0, sizeof c);
    c.per_device_train_batch_size = r->batch; c.gradient_accumulation_steps = 2;
    c.max_steps = r->epochs ? 0 : r->max_steps ? r->max_steps : 6; c.num_train_epochs = r->epochs;
    c.learning_rate = 2e-3; c.warmup_steps = 2; c.logging_steps = r->logging_steps ? r->logging_steps : 1; c.token_metrics = 1;
    c.eval_dataset = ev; c.eval_steps = 3; c.per_device_eval_batch_size = r->eval_batch ? r->eval_batch : r->batch;
    c.output_dir = r->output_dir; c.save_steps = r->save_steps ? r->save_steps : r->output_dir ? 2 : 0;
    c.metrics_path = r->metrics_path; c.resume_from_checkpoint = r->resume;
    c.on_step_end = t_par_step_end; c.on_log = t_par_log; c.user = r;
    c.callbacks = r->callbacks; c.n_callbacks = r->n_callbacks; c.collate = r->collate;
    if (r->metrics || r->fail == T_FAIL_METRICS) c.compute_metrics = t_par_metrics;
    if (r->fail && !r->callbacks) { fail_cb.fn = t_par_fail; fail_cb.user = r; c.callbacks = &fail_cb; c.n_callbacks = 1; }
    if (r->load_best) { c.load_best_model_at_end = 1; c.save_steps = c.eval_steps; }
    c.parallel = r->par;
    c.optim = r->optim; c.optim_args = r->optim_args;
    if (s == SFT_OK && r->whole_run) {
        sft_train_output out;
        s = sft_train(m, ds, &c, &out);
        info.global_step = out.global_step;
    } else {
        if (s == SFT_OK) s = sft_trainer_create(m, ds, &c, &tr);
        do {
            if (s == SFT_OK) s = sft_trainer_step(tr, &info);
        } while (s == SFT_OK && !info.done);
    }
    if (s == SFT_OK) { r->final_step = info.global_step; r->adapter = t_tiny_adapter(m, &r->n_adapter); }
    if (s == SFT_OK && r->fail == T_FAIL_EVALUATE) s = sft_trainer_evaluate(tr, NULL);
    r->status = s;
    if (s != SFT_OK) snprintf(r->msg, sizeof r->msg, "%s", sft_last_error());
    sft_trainer_destroy(tr);
    sft_dataset_destroy(ds); sft_dataset_destroy(ev);
    sft_model_destroy(m);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
    return NULL;
}

#endif
