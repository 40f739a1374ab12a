/* test_optim.c - the optimizers besides AdamW (test_trainer.c has AdamW and
   8-bit AdamW): SGD, Adafactor and schedule-free AdamW step by step against
   torch, transformers and schedulefree (fixture: tools/make_optim_fixtures.py),
   their settings refused by name, and each in a training run that resumes bit
   for bit; the host's own schedule (lr_lambda). */
#include "parallel.h"

#define T_OPT_FIX "tests/fixtures/trainer/optimizers.json"

/* the fixture's array of numbers into f32 */
static void t_floats(const sft_json *a, float *out, int64_t n) {
    int64_t i;
    for (i = 0; i < n && a && (size_t)i < a->length; i++) out[i] = (float)a->items[i].number;
}

/* the largest |got - want| / (|want| + 1e-30) over n values */
static double t_max_rel(const float *got, const float *want, int64_t n) {
    double worst = 0.0;
    int64_t i;
    for (i = 0; i < n; i++) {
        double e = fabs((double)got[i] - (double)want[i]) / (fabs((double)want[i]) + 1e-30);
        if (e > worst || e != e) worst = e != e ? INFINITY : e;
    }
    return worst;
}

/* the desc each fixture case was written with */
static void t_case_desc(const char *name, sft_optimizer_desc *d) {
    memset(d, 0, sizeof *d);
    d->lr = 1e-2; d->weight_decay = 0.01;
    if (strncmp(name, "sgd", 3) == 0) {
        d->kind = SFT_OPTIM_SGD;
        if (strcmp(name, "sgd_momentum") == 0) { d->momentum = 0.9; d->dampening = 0.1; }
        if (strcmp(name, "sgd_nesterov") == 0) { d->momentum = 0.9; d->nesterov = 1; }
    } else if (strcmp(name, "adafactor") == 0) d->kind = SFT_OPTIM_ADAFACTOR;
    else {
        d->kind = SFT_OPTIM_SCHEDULE_FREE_ADAMW;
        if (strcmp(name, "schedule_free") == 0) d->warmup_steps = 2;
        else { d->r = 0.5; d->weight_lr_power = 1.0; }
    }
}

/* Each case's parameters after every step (and after each eval() for
   schedule-free) against the reference's, relative to each value. SGD: the
   same bits. Adafactor: its means and RMS are summed in another order than
   torch's; schedule-free AdamW: elementwise, but torch's foreach kernels round
   an odd element differently (6.2e-8 and 2.0e-7 seen): both within 2 ulp. */
static void optimizers_match_torch_step_by_step(void) {
    sft_context *ctx = t_context(1);
    sft_json *fx = t_json_file(ctx, T_OPT_FIX);
    const sft_json *cases = fx ? sft_json_get(fx, "cases") : NULL, *shapes = fx ? sft_json_get(fx, "shapes") : NULL;
    const sft_json *decay = fx ? sft_json_get(fx, "decay") : NULL, *lrs = fx ? sft_json_get(fx, "lrs") : NULL;
    size_t c;
    CHECK(cases && cases->length == 6 && shapes && decay && lrs);
    for (c = 0; cases && c < cases->length; c++) {
        const sft_json *cs = &cases->items[c], *steps = sft_json_get(cs, "steps"), *evals = sft_json_get(cs, "evals");
        const char *name = sft_json_get(cs, "name")->string;
        sft_tensor *p[3] = {NULL, NULL, NULL};
        unsigned char no_decay[3];
        sft_optimizer *o = NULL;
        sft_optimizer_desc d;
        double worst = 0.0, bound = strncmp(name, "sgd", 3) == 0 ? 0.0 : 2.4e-7;
        size_t k, next_eval = 0;
        int i;
        for (i = 0; i < 3; i++) {
            const sft_json *sh = &shapes->items[i];
            int64_t dims[2] = {(int64_t)sh->items[0].number, sh->length > 1 ? (int64_t)sh->items[1].number : 1};
            CHECK_OK(sft_tensor_create(ctx, SFT_F32, (int)sh->length, dims, &p[i]));
            CHECK_OK(sft_tensor_create(ctx, SFT_F32, (int)sh->length, dims, &p[i]->grad));
            t_floats(&sft_json_get(cs, "init")->items[i], (float *)p[i]->data, sft_tensor_numel(p[i]));
            no_decay[i] = decay->items[i].type != SFT_JSON_TRUE;
        }
        t_case_desc(name, &d);
        CHECK_OK(sft_optimizer_create(ctx, p, 3, no_decay, &d, &o));
        for (k = 0; o && k < steps->length; k++) {
            const sft_json *grads = &sft_json_get(cs, "grads")->items[k];
            sft_tensor *held = NULL;
            for (i = 0; i < 3; i++) t_floats(&grads->items[i], (float *)p[i]->grad->data, sft_tensor_numel(p[i]));
            if (k == 2) { held = p[1]->grad; p[1]->grad = NULL; }   /* p1 has no gradient at step 3 */
            CHECK_OK(sft_optimizer_train(o));
            CHECK_OK(sft_optimizer_step(o, lrs->items[k].number));
            if (held) p[1]->grad = held;
            for (i = 0; i < 3; i++) {
                int64_t n = sft_tensor_numel(p[i]);
                float *want = (float *)malloc((size_t)n * sizeof(float));
                t_floats(&steps->items[k].items[i], want, n);
                worst = fmax(worst, t_max_rel((const float *)p[i]->data, want, n));
                free(want);
            }
            if (evals && next_eval < evals->length && (size_t)sft_json_get(&evals->items[next_eval], "after_step")->number == k + 1) {
                const sft_json *ep = sft_json_get(&evals->items[next_eval++], "params");
                CHECK_OK(sft_optimizer_eval(o));
                CHECK(!sft_optimizer_training(o));
                for (i = 0; i < 3; i++) {
                    int64_t n = sft_tensor_numel(p[i]);
                    float *want = (float *)malloc((size_t)n * sizeof(float));
                    t_floats(&ep->items[i], want, n);
                    worst = fmax(worst, t_max_rel((const float *)p[i]->data, want, n));
                    free(want);
                }
            }
        }
        CHECK(!evals || next_eval == evals->length);
        CHECK_MSG(worst <= bound, "%s: largest relative error %.3g (bound %.3g)", name, worst, bound);
        sft_optimizer_destroy(o);
        for (i = 0; i < 3; i++) sft_tensor_destroy(p[i]);
    }
    sft_json_free(fx);
    sft_context_destroy(ctx);
}

/* settings an optimizer does not take, and torch's own refusals, are refused
   by name before anything is allocated */
static void optimizer_settings_are_refused_by_name(void) {
    sft_context *ctx = t_context(1);
    int64_t shape3[3] = {2, 2, 2}, shape2[2] = {2, 3};
    sft_tensor *cube = NULL, *w = NULL;
    sft_optimizer *o = NULL;
    sft_optimizer_desc d;
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, 3, shape3, &cube));
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, 2, shape2, &w));
    memset(&d, 0, sizeof d);
    d.kind = SFT_OPTIM_SGD; d.momentum = 0.9; d.dampening = 0.1; d.nesterov = 1;
    CHECK_STATUS(sft_optimizer_create(ctx, &w, 1, NULL, &d, &o), SFT_ERR_ARG);
    CHECK_ERROR_MENTIONS("Nesterov");
    d.nesterov = 0; d.momentum = -1.0;
    CHECK_STATUS(sft_optimizer_create(ctx, &w, 1, NULL, &d, &o), SFT_ERR_ARG);
    CHECK_ERROR_MENTIONS("momentum -1");
    memset(&d, 0, sizeof d);
    d.kind = SFT_OPTIM_ADAFACTOR;
    CHECK_STATUS(sft_optimizer_create(ctx, &cube, 1, NULL, &d, &o), SFT_ERR_UNSUPPORTED);
    CHECK_ERROR_MENTIONS("3 dimensions");
    d.kind = SFT_OPTIM_SCHEDULE_FREE_ADAMW; d.warmup_steps = -1;
    CHECK_STATUS(sft_optimizer_create(ctx, &w, 1, NULL, &d, &o), SFT_ERR_ARG);
    CHECK_ERROR_MENTIONS("warmup_steps -1");
    d.warmup_steps = 0; d.kind = SFT_OPTIM_COUNT;
    CHECK_STATUS(sft_optimizer_create(ctx, &w, 1, NULL, &d, &o), SFT_ERR_ARG);
    CHECK(o == NULL);
    sft_tensor_destroy(cube); sft_tensor_destroy(w);
    sft_context_destroy(ctx);
}

/* schedule-free AdamW starts in eval mode (as torch): a step before
   sft_optimizer_train is refused and changes nothing; the modes of a parameter
   not yet stepped change nothing either; the others have no modes */
static void schedule_free_steps_only_in_train_mode(void) {
    sft_context *ctx = t_context(1);
    int64_t shape[1] = {4};
    sft_tensor *w = NULL;
    sft_optimizer *o = NULL, *sgd = NULL;
    sft_optimizer_desc d;
    float before[4] = {0.5f, -0.25f, 1.0f, 2.0f};
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, 1, shape, &w));
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, 1, shape, &w->grad));
    memcpy(w->data, before, sizeof before);
    memcpy(w->grad->data, before, sizeof before);
    memset(&d, 0, sizeof d);
    d.kind = SFT_OPTIM_SCHEDULE_FREE_ADAMW;
    CHECK_OK(sft_optimizer_create(ctx, &w, 1, NULL, &d, &o));
    CHECK(o && !sft_optimizer_training(o) && sft_optimizer_schedule_free(o));
    CHECK_STATUS(sft_optimizer_step(o, 1e-3), SFT_ERR_STATE);
    CHECK_ERROR_MENTIONS("eval mode");
    CHECK_OK(sft_optimizer_train(o));
    CHECK_OK(sft_optimizer_eval(o));
    CHECK_SAME("untouched", (const float *)w->data, before, 4);
    CHECK_OK(sft_optimizer_train(o));
    CHECK_OK(sft_optimizer_step(o, 1e-3));
    CHECK(sft_optimizer_schedule_free(o)->k == 1);
    d.kind = SFT_OPTIM_SGD;
    CHECK_OK(sft_optimizer_create(ctx, &w, 1, NULL, &d, &sgd));
    CHECK(sgd && sft_optimizer_training(sgd) && !sft_optimizer_schedule_free(sgd));
    CHECK_OK(sft_optimizer_eval(sgd));
    CHECK(sft_optimizer_training(sgd));
    sft_optimizer_destroy(o); sft_optimizer_destroy(sgd);
    sft_tensor_destroy(w);
    sft_context_destroy(ctx);
}

/* each optimizer in a QLoRA run of the tiny Qwen2 (6 steps, an evaluation at
   step 3, checkpoints every 2): finite losses, an adapter of its own (each
   optimizer ends somewhere else), and a run resumed from checkpoint-2 ends with
   the uninterrupted run's adapter bit for bit (the state, schedule-free's
   scalars and its mode come back from the checkpoint) */
static void each_optimizer_trains_and_resumes_bit_for_bit(void) {
    static const sft_optim kinds[4] = {SFT_OPTIM_SGD, SFT_OPTIM_SGD, SFT_OPTIM_ADAFACTOR, SFT_OPTIM_SCHEDULE_FREE_ADAMW};
    static const char *const args[4] = {NULL, "momentum=0.9, nesterov=True", NULL, "r=0.5,weight_lr_power=1.5"};
    float *previous = NULL;
    int64_t n_previous = 0;
    int k;
    for (k = 0; k < 4; k++) {
        t_rank_run whole, resumed;
        char out[600], out2[600], ck[700];
        snprintf(out, sizeof out, "%s/optim-%d", t_tmpdir(), k);
        snprintf(out2, sizeof out2, "%s/optim-%d-resumed", t_tmpdir(), k);
        snprintf(ck, sizeof ck, "%s/checkpoint-2", out);
        memset(&whole, 0, sizeof whole);
        whole.batch = 2; whole.rows = 13; whole.nf4 = 1; whole.output_dir = out; whole.optim = kinds[k]; whole.optim_args = args[k];
        t_rank_main(&whole);
        CHECK_MSG(whole.status == SFT_OK, "%s: %s", sft_optim_name(kinds[k]), whole.msg);
        CHECK_MSG(whole.steps == 6 && isfinite(whole.loss[0]) && isfinite(whole.loss[5]), "%s: %d steps, loss %g -> %g",
                  sft_optim_name(kinds[k]), whole.steps, whole.loss[0], whole.steps ? whole.loss[whole.steps - 1] : 0.0);
        CHECK_MSG(whole.adapter && (!previous || n_previous != whole.n_adapter ||
                                    memcmp(previous, whole.adapter, (size_t)n_previous * sizeof(float)) != 0),
                  "%s: the same adapter as the optimizer before it", sft_optim_name(kinds[k]));
        resumed = whole;
        resumed.adapter = NULL; resumed.steps = 0; resumed.output_dir = out2; resumed.resume = ck;
        t_rank_main(&resumed);
        CHECK_MSG(resumed.status == SFT_OK, "%s resumed: %s", sft_optim_name(kinds[k]), resumed.msg);
        if (whole.adapter && resumed.adapter && whole.n_adapter == resumed.n_adapter)
            CHECK_SAME(sft_optim_name(kinds[k]), resumed.adapter, whole.adapter, whole.n_adapter);
        else CHECK_MSG(0, "%s: no adapter to compare", sft_optim_name(kinds[k]));
        free(previous); free(resumed.adapter);
        previous = whole.adapter; n_previous = whole.n_adapter;
    }
    free(previous);
}

/* a checkpoint of one optimizer does not resume another; optim_args are
   checked against the optimizer */
static void a_checkpoint_resumes_only_its_own_optimizer(void) {
    t_rank_run r;
    char out[600], ck[700];
    snprintf(out, sizeof out, "%s/optim-mismatch", t_tmpdir());
    snprintf(ck, sizeof ck, "%s/checkpoint-2", out);
    memset(&r, 0, sizeof r);
    r.batch = 2; r.rows = 13; r.max_steps = 2; r.output_dir = out; r.optim = SFT_OPTIM_SGD;
    t_rank_main(&r);
    CHECK_MSG(r.status == SFT_OK, "%s", r.msg);
    free(r.adapter); r.adapter = NULL;
    r.output_dir = NULL; r.resume = ck; r.max_steps = 4; r.optim = SFT_OPTIM_ADAFACTOR;
    t_rank_main(&r);
    CHECK(r.status == SFT_ERR_ARG && strstr(r.msg, "optimizer is sgd, this run's adafactor"));
    r.optim = SFT_OPTIM_ADAMW_TORCH;
    t_rank_main(&r);
    CHECK(r.status == SFT_ERR_ARG && strstr(r.msg, "optimizer is sgd"));
    r.resume = NULL; r.optim = SFT_OPTIM_ADAFACTOR; r.optim_args = "momentum=0.9";
    t_rank_main(&r);
    CHECK(r.status == SFT_ERR_ARG && strstr(r.msg, "adafactor does not take \"momentum\""));
    r.optim = SFT_OPTIM_SGD; r.optim_args = "momentum=fast";
    t_rank_main(&r);
    CHECK(r.status == SFT_ERR_ARG && strstr(r.msg, "is not a number"));
    free(r.adapter);
}

/* lr_lambda: the host's schedule replaces the named one; each step's learning
   rate is learning_rate x lr_lambda(step) (logged as the step's learning_rate),
   and a factor that is not finite and non-negative stops the run by name */
static double t_halving(int64_t step, void *user) { (void)user; return step == 4 ? -1.0 : pow(0.5, (double)step); }
typedef struct t_lrs { double lr[8]; int n; } t_lrs;
static void t_lr_log(const sft_log_entry *e, void *user) {
    t_lrs *l = (t_lrs *)user;
    if (!e->is_eval && l->n < 8) l->lr[l->n++] = e->learning_rate;
}
static void lr_lambda_sets_each_steps_rate(void) {
    sft_context *ctx = t_context(1);
    sft_tokenizer *tok = NULL;
    sft_dataset *ds = NULL;
    sft_model *m = NULL;
    sft_trainer *tr = NULL;
    sft_train_config c;
    sft_step_info info;
    t_lrs seen;
    sft_status s = SFT_OK;
    int k;
    memset(&seen, 0, sizeof seen);
    CHECK_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", &tok));
    CHECK_OK(t_par_rows(ctx, tok, 12, 0, &ds));
    CHECK_OK(t_tiny_model(ctx, 0, &m));
    memset(&c, 0, sizeof c);
    c.per_device_train_batch_size = 2; c.max_steps = 6; c.learning_rate = 1e-3; c.logging_steps = 1;
    c.lr_scheduler_type = SFT_SCHEDULE_COSINE; c.warmup_steps = 3;     /* replaced by lr_lambda */
    c.lr_lambda = t_halving; c.on_log = t_lr_log; c.user = &seen;
    if (m && ds) CHECK_OK(sft_trainer_create(m, ds, &c, &tr));
    for (k = 0; tr && k < 5 && s == SFT_OK; k++) s = sft_trainer_step(tr, &info);
    CHECK(s == SFT_ERR_ARG && strstr(sft_last_error(), "lr_lambda(4) returned -1"));
    CHECK(seen.n == 4);
    for (k = 0; k < seen.n; k++) CHECK_MSG(seen.lr[k] == 1e-3 * pow(0.5, k), "step %d: learning rate %g", k + 1, seen.lr[k]);
    sft_trainer_destroy(tr);
    sft_model_destroy(m);
    sft_dataset_destroy(ds);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
}

void suite_optim(void) {
    RUN(optimizers_match_torch_step_by_step);
    RUN(optimizer_settings_are_refused_by_name);
    RUN(schedule_free_steps_only_in_train_mode);
    RUN(each_optimizer_trains_and_resumes_bit_for_bit);
    RUN(a_checkpoint_resumes_only_its_own_optimizer);
    RUN(lr_lambda_sets_each_steps_rate);
}
