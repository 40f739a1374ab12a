/* test_callbacks.c - callbacks that steer (sft_callback, sft_trainer_control):
   the events in the order and at the steps transformers' Trainer sends them,
   the control flags honoured as it honours them, EarlyStoppingCallback's
   decisions, a failing callback (fixtures: tools/make_callback_fixtures.py). */
#include "parallel.h"

#define T_CB_MAX 512

typedef struct t_events {
    int     n;
    int     event[T_CB_MAX];
    int64_t step[T_CB_MAX];
    int     steer;                 /* the fixture's "steered" case */
} t_events;

static sft_status t_record(const sft_callback_args *a, sft_trainer_control *c, void *user) {
    t_events *ev = (t_events *)user;
    if (ev->n < T_CB_MAX) { ev->event[ev->n] = (int)a->event; ev->step[ev->n] = a->global_step; ev->n++; }
    if (ev->steer && a->event == SFT_EVENT_STEP_END) {
        if (a->global_step == 1) c->should_epoch_stop = 1;
        if (a->global_step == 2) { c->should_evaluate = 1; c->should_save = 1; }
        if (a->global_step == 4) c->should_log = 0;
    }
    return SFT_OK;
}

/* t_same_events: the recorded events against the fixture's [name, step] list */
static void t_same_events(const char *name, const t_events *ev, const sft_json *want) {
    size_t i;
    int first_diff = -1;
    if (!want || want->type != SFT_JSON_ARRAY) { CHECK_MSG(0, "%s: no fixture", name); return; }
    for (i = 0; i < want->length && first_diff < 0; i++) {
        const sft_json *e = &want->items[i];
        if ((int)i >= ev->n || strcmp(sft_event_name((sft_event)ev->event[i]), e->items[0].string) != 0 ||
            ev->step[i] != (int64_t)e->items[1].number)
            first_diff = (int)i;
    }
    if (first_diff < 0 && (size_t)ev->n != want->length) first_diff = (int)want->length;
    if (first_diff >= 0) {
        const sft_json *e = (size_t)first_diff < want->length ? &want->items[first_diff] : NULL;
        CHECK_MSG(0, "%s: event %d is %s at step %lld, transformers sends %s at step %lld (%d events vs %zu)", name, first_diff,
                  first_diff < ev->n ? sft_event_name((sft_event)ev->event[first_diff]) : "(none)",
                  first_diff < ev->n ? (long long)ev->step[first_diff] : -1LL, e ? e->items[0].string : "(none)",
                  e ? (long long)e->items[1].number : -1LL, ev->n, want->length);
    }
}

/* 10 rows, batch 2 x accumulation 2 (windows of 2, 2, 1), 2 epochs: every event,
   and a callback steering at on_step_end (an epoch cut short, an evaluation and
   a save asked for, a log refused), as transformers 4.57 sends them */
static void events_come_as_transformers_sends_them(void) {
    sft_context *ctx = t_context(1);
    sft_json *fx = t_json_file(ctx, "tests/fixtures/trainer/callbacks.json");
    const sft_json *runs = fx ? sft_json_get(fx, "runs") : NULL;
    int steer;
    for (steer = 0; steer < 2 && runs; steer++) {
        static t_events ev;
        t_rank_run r;
        sft_callback cb;
        char out[600];
        memset(&ev, 0, sizeof ev);
        memset(&r, 0, sizeof r);
        ev.steer = steer;
        cb.fn = t_record; cb.user = &ev;
        snprintf(out, sizeof out, "%s/callbacks-%d", t_tmpdir(), steer);
        r.batch = 2; r.rows = 10; r.epochs = 2; r.logging_steps = 2; r.save_steps = 4; r.output_dir = out; r.whole_run = 1;
        r.callbacks = &cb; r.n_callbacks = 1;
        t_rank_main(&r);
        CHECK_MSG(r.status == SFT_OK, "%s", r.msg);
        CHECK(r.final_step == (steer ? 4 : 6));
        t_same_events(steer ? "steered" : "plain", &ev, sft_json_get(runs, steer ? "steered" : "plain"));
        free(r.adapter);
    }
    sft_json_free(fx);
    sft_context_destroy(ctx);
}

/* sft_early_stopping_callback fed transformers' cases evaluation by evaluation
   (the best metric updated after each, as the trainer does): it stops after the
   same evaluation */
static void early_stopping_decides_as_transformers(void) {
    sft_context *ctx = t_context(1);
    sft_json *fx = t_json_file(ctx, "tests/fixtures/trainer/callbacks.json");
    const sft_json *cases = fx ? sft_json_get(fx, "early_stopping") : NULL;
    size_t k, i;
    CHECK(cases && cases->length >= 5);
    for (k = 0; cases && k < cases->length; k++) {
        const sft_json *cs = &cases->items[k], *metrics = sft_json_get(cs, "metrics");
        sft_early_stopping es;
        sft_train_config c;
        sft_callback_args a;
        sft_trainer_control ctl;
        sft_log_entry e;
        int stop = -1, greater = sft_json_get(cs, "greater_is_better")->type == SFT_JSON_TRUE;
        memset(&es, 0, sizeof es); memset(&c, 0, sizeof c); memset(&a, 0, sizeof a); memset(&ctl, 0, sizeof ctl);
        es.patience = (int)sft_json_get(cs, "patience")->number;
        es.threshold = sft_json_get(cs, "threshold")->number;
        c.metric_for_best_model = "loss"; c.greater_is_better = greater ? SFT_ON : SFT_OFF;
        c.load_best_model_at_end = 1; c.eval_steps = 1; c.save_steps = 1;
        a.config = &c;
        a.event = SFT_EVENT_TRAIN_BEGIN;
        CHECK_OK(sft_early_stopping_callback(&a, &ctl, &es));
        for (i = 0; i < metrics->length; i++) {
            double m = metrics->items[i].number;
            memset(&e, 0, sizeof e);
            e.is_eval = 1; e.loss = m;
            a.event = SFT_EVENT_EVALUATE; a.log = &e; a.global_step = (int64_t)i + 1;
            CHECK_OK(sft_early_stopping_callback(&a, &ctl, &es));
            if (ctl.should_training_stop && stop < 0) stop = (int)i;
            if (!a.best_global_step || (greater ? m > a.best_metric : m < a.best_metric)) { a.best_metric = m; a.best_global_step = (int64_t)i + 1; }
        }
        CHECK_MSG(stop == (int)sft_json_get(cs, "stop")->number, "case %zu: stops after evaluation %d, transformers after %d", k, stop,
                  (int)sft_json_get(cs, "stop")->number);
    }
    sft_json_free(fx);
    sft_context_destroy(ctx);
}

/* a real run: patience 1 with a threshold no evaluation can beat stops at the
   second evaluation (step 6 of 12), then loads the best (step 3's) weights; the
   same callback without load_best_model_at_end is refused as transformers
   refuses it */
static void early_stopping_ends_a_run(void) {
    sft_early_stopping es;
    sft_callback cb;
    t_rank_run r;
    char out[600];
    memset(&es, 0, sizeof es);
    es.patience = 1; es.threshold = 1e9;
    cb.fn = sft_early_stopping_callback; cb.user = &es;
    memset(&r, 0, sizeof r);
    snprintf(out, sizeof out, "%s/early", t_tmpdir());
    r.batch = 2; r.rows = 10; r.epochs = 4; r.output_dir = out; r.load_best = 1; r.whole_run = 1;
    r.callbacks = &cb; r.n_callbacks = 1;
    t_rank_main(&r);
    CHECK_MSG(r.status == SFT_OK, "%s", r.msg);
    CHECK_MSG(r.final_step == 6 && es.counter == 1, "stopped at step %lld, counter %d", (long long)r.final_step, es.counter);
    free(r.adapter);
    memset(&r, 0, sizeof r);
    memset(&es, 0, sizeof es);
    es.patience = 1;
    r.batch = 2; r.rows = 10; r.max_steps = 4; r.whole_run = 1;
    r.callbacks = &cb; r.n_callbacks = 1;
    t_rank_main(&r);
    CHECK_MSG(r.status == SFT_ERR_ARG && strstr(r.msg, "load_best_model_at_end") && strstr(r.msg, "on_train_begin"), "%s", r.msg);
    free(r.adapter);
}

static double t_reldiff_eval(double a, double b) { return fabs(a - b) / (fabs(b) > 1e-30 ? fabs(b) : 1.0); }

/* EarlyStoppingCallback's counter goes into trainer_state.json as transformers
   stores it (stateful_callbacks) and comes back on resume: patience 2, a run
   stopped at step 7 (one evaluation without improvement) and resumed stops at
   step 9, as the uninterrupted run does */
static void early_stopping_resumes_with_its_counter(void) {
    sft_early_stopping es[3];
    sft_callback cb[3];
    t_rank_run r[3];
    char out[3][600], state[700];
    sft_context *ctx = t_context(1);
    sft_json *j = NULL;
    int k;
    for (k = 0; k < 3; k++) {
        memset(&es[k], 0, sizeof es[k]); memset(&r[k], 0, sizeof r[k]);
        es[k].patience = 2; es[k].threshold = 1e9;
        cb[k].fn = sft_early_stopping_callback; cb[k].user = &es[k];
        snprintf(out[k], sizeof out[k], "%s/es-resume-%d", t_tmpdir(), k ? 1 : 0);
        r[k].batch = 2; r[k].rows = 10; r[k].epochs = 4; r[k].output_dir = out[k]; r[k].load_best = 1; r[k].whole_run = 1;
        r[k].callbacks = &cb[k]; r[k].n_callbacks = 1;
    }
    r[1].stop_at = 7;
    r[2].resume = "last";
    for (k = 0; k < 3; k++) {
        t_rank_main(&r[k]);
        CHECK_MSG(r[k].status == SFT_OK, "run %d: %s", k, r[k].msg);
        free(r[k].adapter);
    }
    CHECK_MSG(r[0].final_step == 9 && r[1].final_step == 7 && r[2].final_step == 9, "stopped at %lld, %lld, %lld",
              (long long)r[0].final_step, (long long)r[1].final_step, (long long)r[2].final_step);
    snprintf(state, sizeof state, "%s/checkpoint-7/trainer_state.json", out[1]);
    j = t_json_file(ctx, state);
    {
        const sft_json *a = sft_json_get(sft_json_get(sft_json_get(j, "stateful_callbacks"), "EarlyStoppingCallback"), "attributes");
        const sft_json *n = sft_json_get(a, "early_stopping_patience_counter");
        CHECK_MSG(n && n->number == 1, "%s: early_stopping_patience_counter %g", state, n ? n->number : -1.0);
    }
    sft_json_free(j);
    sft_context_destroy(ctx);
}

static sft_status t_failing(const sft_callback_args *a, sft_trainer_control *c, void *user) {
    (void)c; (void)user;
    return a->event == SFT_EVENT_OPTIMIZER_STEP && a->global_step == 1 ? SFT_ERR_STATE : SFT_OK;   /* the second step's */
}

/* a callback's failure ends the step with its status, naming the callback and
   the event; a callback without a function is refused at create */
static void a_failing_callback_stops_the_run(void) {
    sft_callback cb[2];
    t_rank_run r;
    memset(cb, 0, sizeof cb);
    cb[0].fn = t_failing;
    memset(&r, 0, sizeof r);
    r.batch = 2; r.rows = 10; r.max_steps = 4;
    r.callbacks = cb; r.n_callbacks = 1;
    t_rank_main(&r);
    CHECK_MSG(r.status == SFT_ERR_STATE && strstr(r.msg, "callback 0 at on_optimizer_step (step 1)"), "%s", r.msg);
    CHECK(r.steps == 1);       /* the first step ended; the second stopped before counting itself */
    free(r.adapter);
    memset(&r, 0, sizeof r);
    r.batch = 2; r.rows = 10; r.max_steps = 4;
    r.callbacks = cb; r.n_callbacks = 2;
    t_rank_main(&r);
    CHECK_MSG(r.status == SFT_ERR_ARG && strstr(r.msg, "callbacks[1].fn"), "%s", r.msg);
    free(r.adapter);
}

static int t_logs_heard;
static void t_count_log(const sft_log_entry *e, void *user) { (void)e; (void)user; t_logs_heard++; }

/* predict measures a dataset as evaluate does (the same figures on the same
   rows), tells the callbacks (on_predict) and logs nothing */
static void predict_measures_without_logging(void) {
    sft_context *ctx = t_context(1);
    sft_tokenizer *tok = NULL;
    sft_model *m = NULL;
    sft_dataset *ds = NULL, *ev = NULL;
    sft_trainer *tr = NULL;
    sft_train_config c;
    sft_log_entry pe, ee;
    static t_events heard;
    sft_callback cb;
    memset(&heard, 0, sizeof heard);
    cb.fn = t_record; cb.user = &heard;
    CHECK_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", &tok));
    CHECK_OK(tok ? t_par_rows(ctx, tok, 8, 0, &ds) : SFT_ERR_ARG);
    CHECK_OK(tok ? t_par_rows(ctx, tok, 5, 2, &ev) : SFT_ERR_ARG);
    CHECK_OK(t_tiny_model(ctx, 0, &m));
    memset(&c, 0, sizeof c);
    c.max_steps = 2; c.token_metrics = 1; c.eval_dataset = ev; c.per_device_eval_batch_size = 2;
    c.on_log = t_count_log; c.callbacks = &cb; c.n_callbacks = 1;
    if (m && ds && ev) CHECK_OK(sft_trainer_create(m, ds, &c, &tr));
    if (tr) {
        t_logs_heard = 0;
        CHECK_OK(sft_trainer_predict(tr, ev, &pe));
        CHECK_MSG(t_logs_heard == 0 && heard.n == 2 && heard.event[1] == SFT_EVENT_PREDICT, "%d logs, %d events", t_logs_heard, heard.n);
        CHECK_OK(sft_trainer_evaluate(tr, &ee));
        CHECK_MSG(pe.loss == ee.loss && pe.mean_token_accuracy == ee.mean_token_accuracy && pe.loss > 0,
                  "predict %.9g / %.9g, evaluate %.9g / %.9g", pe.loss, pe.mean_token_accuracy, ee.loss, ee.mean_token_accuracy);
        CHECK(t_logs_heard == 1);
        CHECK(sft_trainer_predict(tr, NULL, &pe) == SFT_ERR_ARG);
    }
    sft_trainer_destroy(tr);
    sft_dataset_destroy(ds); sft_dataset_destroy(ev);
    sft_model_destroy(m);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
}

/* a collate function padding every batch to a multiple of 8 with id 0 on the
   right (T grows, the masked tail changes nothing) */
static int t_collate_calls, t_collate_fail;
static sft_status t_pad8(sft_context *ctx, const sft_collate_row *rows, int n, sft_batch *out, void *user) {
    int64_t T = 0, shape[2];
    int i, k;
    (void)user;
    t_collate_calls++;
    if (t_collate_fail) return SFT_ERR_STATE;
    for (i = 0; i < n; i++) if (rows[i].n > T) T = rows[i].n;
    T = (T + 7) / 8 * 8;
    shape[0] = n; shape[1] = T;
    if (sft_tensor_create(ctx, SFT_I32, 2, shape, &out->input_ids) != SFT_OK || sft_tensor_create(ctx, SFT_I32, 2, shape, &out->labels) != SFT_OK ||
        sft_tensor_create(ctx, SFT_I32, 2, shape, &out->attention_mask) != SFT_OK)
        return SFT_ERR_NOMEM;
    for (i = 0; i < n; i++)
        for (k = 0; k < T; k++) {
            int in = k < rows[i].n;
            ((int32_t *)out->input_ids->data)[i * T + k] = in ? rows[i].input_ids[k] : 0;
            ((int32_t *)out->labels->data)[i * T + k] = in ? rows[i].labels[k] : -100;
            ((int32_t *)out->attention_mask->data)[i * T + k] = in;
        }
    return SFT_OK;
}

/* a collate function (transformers' data_collator) that pads to a multiple of 8
   trains as the dataset's own padding does: the same per-step loss and
   grad_norm within 1e-6, the same tokens; its failure stops the step naming it;
   packed rows are refused */
static void a_collate_function_batches_the_rows(void) {
    t_rank_run plain, own;
    double worst = 0;
    int i;
    memset(&plain, 0, sizeof plain); memset(&own, 0, sizeof own);
    plain.batch = own.batch = 2; plain.rows = own.rows = 10; plain.max_steps = own.max_steps = 4;
    own.collate = t_pad8;
    t_rank_main(&plain);
    t_collate_calls = 0;
    t_rank_main(&own);
    CHECK_MSG(plain.status == SFT_OK && own.status == SFT_OK, "%s / %s", plain.msg, own.msg);
    CHECK(t_collate_calls > 8 && own.steps == 4 && own.num_tokens == plain.num_tokens);
    for (i = 0; i < 4 && i < own.steps; i++) {
        double dl = fabs(own.loss[i] - plain.loss[i]) / plain.loss[i], dn = fabs(own.grad_norm[i] - plain.grad_norm[i]) / plain.grad_norm[i];
        if (dl > worst) worst = dl;
        if (dn > worst) worst = dn;
    }
    CHECK_MSG(worst <= 1e-6, "collated vs the dataset's padding: %.3g relative", worst);
    CHECK_MSG(t_reldiff_eval(own.eval_loss, plain.eval_loss) <= 1e-6, "eval_loss %.9g vs %.9g", own.eval_loss, plain.eval_loss);
    free(plain.adapter); free(own.adapter);
    memset(&own, 0, sizeof own);
    own.batch = 2; own.rows = 10; own.max_steps = 4; own.collate = t_pad8;
    t_collate_fail = 1;
    t_rank_main(&own);
    t_collate_fail = 0;
    CHECK_MSG(own.status == SFT_ERR_STATE && strstr(own.msg, "collate function failed"), "%s", own.msg);
    free(own.adapter);
}

void suite_callbacks(void) {
    RUN(a_collate_function_batches_the_rows);
    RUN(predict_measures_without_logging);
    RUN(events_come_as_transformers_sends_them);
    RUN(early_stopping_decides_as_transformers);
    RUN(early_stopping_ends_a_run);
    RUN(early_stopping_resumes_with_its_counter);
    RUN(a_failing_callback_stops_the_run);
}
