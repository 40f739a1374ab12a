/* test_parallel.c - data parallelism through the trainer's seam
   (sft_data_parallel): two ranks as two threads of this process, joined by an
   in-memory transport written here (the kind an embedder would bring), train
   as one process with twice the batch; they refuse to run apart, stop
   together, and only rank 0 writes. tests/test_mpi.c checks the same over MPI
   with two processes (make mpi). */
#include "parallel.h"
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>

#define T_RANKS 2

/* --- the transport: each rank publishes its buffer, waits for the others,
   sums every rank's values in rank order (so all get the same bits), waits
   again (nobody may overwrite a buffer still being read), then writes back.
   A wait gives up after 60 s and breaks the bus for good: a rank left waiting
   fails the test rather than hanging it. --- */

typedef struct t_bus {
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    int             world, arrived, generation, broken;
    const void     *slot[T_RANKS];
    int64_t         n[T_RANKS];
} t_bus;

/* t_meet: a barrier of the bus's ranks; 0 once it timed out (here or in another rank) */
static int t_meet(t_bus *b) {
    struct timespec until;
    int gen, rc = 0, met;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 60;
    pthread_mutex_lock(&b->mu);
    gen = b->generation;
    if (!b->broken && ++b->arrived == b->world) { b->arrived = 0; b->generation++; pthread_cond_broadcast(&b->cv); }
    while (!b->broken && gen == b->generation && rc == 0) rc = pthread_cond_timedwait(&b->cv, &b->mu, &until);
    met = gen != b->generation;
    if (!met && !b->broken) { b->broken = 1; pthread_cond_broadcast(&b->cv); }
    pthread_mutex_unlock(&b->mu);
    return met;
}

typedef struct t_port { t_bus *bus; int rank; } t_port;
static t_port t_ports[T_RANKS];

static sft_status t_sum_f64(double *v, int64_t n, void *user) {
    t_port *p = (t_port *)user;
    double *sum = (double *)calloc((size_t)n + 1, sizeof *sum);
    int64_t i;
    int r, same = 1;
    p->bus->slot[p->rank] = v; p->bus->n[p->rank] = n;
    if (!t_meet(p->bus)) { free(sum); return SFT_ERR_IO; }
    for (r = 0; r < T_RANKS; r++) same &= p->bus->n[r] == n;
    for (r = 0; same && sum && r < T_RANKS; r++)
        for (i = 0; i < n; i++) sum[i] += ((const double *)p->bus->slot[r])[i];
    if (!t_meet(p->bus)) { free(sum); return SFT_ERR_IO; }
    if (same && sum) memcpy(v, sum, (size_t)n * sizeof *v);
    free(sum);
    return same && sum ? SFT_OK : SFT_ERR_ARG;
}

static sft_status t_sum_f32(sft_tensor *const *t, int n, void *user) {
    t_port *p = (t_port *)user;
    int64_t total = 0, off = 0, k;
    float *sum;
    int i, r, same = 1;
    for (i = 0; i < n; i++) total += sft_tensor_numel(t[i]);
    sum = (float *)calloc((size_t)total + 1, sizeof *sum);
    p->bus->slot[p->rank] = t; p->bus->n[p->rank] = total;
    if (!t_meet(p->bus)) { free(sum); return SFT_ERR_IO; }
    for (r = 0; r < T_RANKS; r++) same &= p->bus->n[r] == total;
    for (i = 0; same && sum && i < n; off += sft_tensor_numel(t[i]), i++)
        for (r = 0; r < T_RANKS; r++) {
            const float *x = (const float *)((sft_tensor *const *)p->bus->slot[r])[i]->data;
            for (k = 0; k < sft_tensor_numel(t[i]); k++) sum[off + k] += x[k];
        }
    if (!t_meet(p->bus)) { free(sum); return SFT_ERR_IO; }
    for (i = 0, off = 0; same && sum && i < n; off += sft_tensor_numel(t[i]), i++)
        memcpy(t[i]->data, sum + off, sft_tensor_nbytes(t[i]));
    free(sum);
    return same && sum ? SFT_OK : SFT_ERR_ARG;
}

/* t_ranks: world threads of t_rank_main sharing one bus (world 1: a plain run);
   1 when a rank was left waiting (the bus timed out) */
static int t_ranks(t_rank_run *runs, int world) {
    pthread_t th[T_RANKS];
    t_bus bus;
    int r;
    memset(&bus, 0, sizeof bus);
    pthread_mutex_init(&bus.mu, NULL);
    pthread_cond_init(&bus.cv, NULL);
    bus.world = world;
    for (r = 0; r < world && world > 1; r++) {
        t_ports[r].bus = &bus; t_ports[r].rank = r;
        runs[r].par.rank = r; runs[r].par.world_size = world;
        runs[r].par.allreduce_f64 = t_sum_f64; runs[r].par.allreduce_f32 = t_sum_f32; runs[r].par.user = &t_ports[r];
    }
    for (r = 0; r < world; r++) pthread_create(&th[r], NULL, t_rank_main, &runs[r]);
    for (r = 0; r < world; r++) pthread_join(th[r], NULL);
    pthread_cond_destroy(&bus.cv);
    pthread_mutex_destroy(&bus.mu);
    return bus.broken;
}

static double t_reldiff(double a, double b) { return fabs(a - b) / (fabs(b) > 1e-30 ? fabs(b) : 1.0); }

/* 13 rows, batch 2 x accumulation 2 on each of 2 ranks (a global micro-batch of 4
   rows; the epoch's last holds 1 row, so rank 1 has none), against one process
   with batch 4: the same per-step loss, grad_norm, tokens, accuracy and adapter,
   within 1e-6 relative; both ranks' adapters bit-identical. Evaluation as
   transformers: eval_loss weighs each batch's mean by its rows (so it equals one
   process with the ranks' eval batch, 2), the token accuracy is per eval step
   over the ranks' batches (one process with eval batch 4). */
static void two_ranks_train_as_one_process_with_twice_the_batch(void) {
    t_rank_run one[1], one_eval[1], two[T_RANKS];
    double worst_loss = 0, worst_norm = 0;
    int i, r;
    memset(one, 0, sizeof one); memset(one_eval, 0, sizeof one_eval); memset(two, 0, sizeof two);
    one[0].batch = 4; one[0].rows = 13;
    one_eval[0].batch = 4; one_eval[0].eval_batch = 2; one_eval[0].rows = 13;
    for (r = 0; r < T_RANKS; r++) { two[r].batch = 2; two[r].rows = 13; }
    t_ranks(one, 1);
    t_ranks(one_eval, 1);
    CHECK(!t_ranks(two, T_RANKS));
    CHECK_MSG(one[0].status == SFT_OK, "one process: %s", one[0].msg);
    for (r = 0; r < T_RANKS; r++) CHECK_MSG(two[r].status == SFT_OK, "rank %d: %s", r, two[r].msg);
    if (one[0].status != SFT_OK || two[0].status != SFT_OK || two[1].status != SFT_OK) goto done;
    CHECK(one[0].steps == 6 && two[0].steps == 6 && two[1].steps == 6);
    for (i = 0; i < 6 && i < one[0].steps && i < two[0].steps; i++) {
        double dl = t_reldiff(two[0].loss[i], one[0].loss[i]), dn = t_reldiff(two[0].grad_norm[i], one[0].grad_norm[i]);
        if (dl > worst_loss) worst_loss = dl;
        if (dn > worst_norm) worst_norm = dn;
        CHECK(two[1].loss[i] == two[0].loss[i] && two[1].grad_norm[i] == two[0].grad_norm[i]);
    }
    CHECK_MSG(worst_loss <= 1e-6 && worst_norm <= 1e-6, "per-step loss differs by %.3g, grad_norm by %.3g (relative)", worst_loss, worst_norm);
    CHECK_MSG(two[0].num_tokens == one[0].num_tokens, "num_tokens %lld vs %lld", (long long)two[0].num_tokens, (long long)one[0].num_tokens);
    CHECK_MSG(t_reldiff(two[0].eval_loss, one_eval[0].eval_loss) <= 1e-6, "eval_loss %.9g vs %.9g", two[0].eval_loss, one_eval[0].eval_loss);
    CHECK_MSG(t_reldiff(two[0].train_accuracy, one[0].train_accuracy) <= 1e-6 && t_reldiff(two[0].eval_accuracy, one[0].eval_accuracy) <= 1e-6,
              "mean_token_accuracy %.9g vs %.9g, eval %.9g vs %.9g", two[0].train_accuracy, one[0].train_accuracy, two[0].eval_accuracy,
              one[0].eval_accuracy);
    CHECK(two[0].n_adapter == one[0].n_adapter && two[1].n_adapter == one[0].n_adapter);
    if (two[0].n_adapter == one[0].n_adapter && two[1].n_adapter == one[0].n_adapter) {
        CHECK_REL("the adapter after 6 steps, 2 ranks vs 1", two[0].adapter, one[0].adapter, one[0].n_adapter, 1e-6);
        CHECK_MSG(memcmp(two[0].adapter, two[1].adapter, (size_t)one[0].n_adapter * sizeof(float)) == 0, "the ranks' adapters differ");
    }
    printf("    2 ranks vs 1 process: loss %.2g, grad_norm %.2g relative at most\n", worst_loss, worst_norm);
done:
    free(one[0].adapter); free(one_eval[0].adapter);
    for (r = 0; r < T_RANKS; r++) free(two[r].adapter);
}

/* compute_metrics under data parallelism: each rank sees its own eval batches
   (7 rows, batch 2: rank 0 takes 4 rows, rank 1 takes 3); the logged metrics
   are rank 0's on both ranks, or the whole set's when the final call sums the
   state over the ranks; a rank without a batch (batch 8) is called once with
   none; names that differ between the ranks fail both. */
static void compute_metrics_under_data_parallelism_are_rank_0s(void) {
    t_rank_run two[T_RANKS];
    static const struct { int metrics, eval_batch; double want; } cases[] = {{1, 2, 4.0}, {2, 2, 7.0}, {1, 8, 7.0}, {3, 2, -1.0}};
    size_t k;
    int r;
    for (k = 0; k < sizeof cases / sizeof *cases; k++) {
        memset(two, 0, sizeof two);
        for (r = 0; r < T_RANKS; r++) { two[r].batch = 2; two[r].rows = 13; two[r].max_steps = 3; two[r].eval_batch = cases[k].eval_batch; two[r].metrics = cases[k].metrics; }
        CHECK(!t_ranks(two, T_RANKS));
        for (r = 0; r < T_RANKS; r++) {
            if (cases[k].want < 0) {
                CHECK_MSG(two[r].status == SFT_ERR_ARG && strstr(two[r].msg, "other names on some rank"), "case %zu rank %d: %s", k, r, two[r].msg);
                continue;
            }
            CHECK_MSG(two[r].status == SFT_OK, "case %zu rank %d: %s", k, r, two[r].msg);
            CHECK_MSG(two[r].eval_rows == cases[k].want, "case %zu rank %d: eval_rows %g, want %g", k, r, two[r].eval_rows, cases[k].want);
        }
        for (r = 0; r < T_RANKS; r++) free(two[r].adapter);
    }
}

/* a rank with other data is refused by both, the message naming the field and
   both ranks; impossible settings are refused before any sum */
static void ranks_that_disagree_are_refused(void) {
    t_rank_run two[T_RANKS];
    sft_context *ctx = t_context(1);
    sft_tokenizer *tok = NULL;
    sft_model *m = NULL;
    sft_dataset *ds = NULL;
    sft_trainer *tr = NULL;
    sft_train_config c;
    int r;
    memset(two, 0, sizeof two);
    for (r = 0; r < T_RANKS; r++) { two[r].batch = 2; two[r].rows = 13 - r; }
    CHECK(!t_ranks(two, T_RANKS));
    for (r = 0; r < T_RANKS; r++)
        CHECK_MSG(two[r].status == SFT_ERR_ARG && strstr(two[r].msg, "training rows") && strstr(two[r].msg, "rank"), "rank %d: %s", r, two[r].msg);
    CHECK_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", &tok));
    CHECK_OK(tok ? t_par_rows(ctx, tok, 8, 0, &ds) : SFT_ERR_ARG);
    CHECK_OK(t_tiny_model(ctx, 0, &m));
    memset(&c, 0, sizeof c);
    c.max_steps = 1;
    c.parallel.world_size = 2;
    CHECK(sft_trainer_create(m, ds, &c, &tr) == SFT_ERR_ARG && strstr(sft_last_error(), "allreduce"));
    c.parallel.allreduce_f64 = t_sum_f64; c.parallel.allreduce_f32 = t_sum_f32; c.parallel.rank = 2;
    CHECK(sft_trainer_create(m, ds, &c, &tr) == SFT_ERR_ARG && strstr(sft_last_error(), "rank 2 of world_size 2"));
    c.parallel.rank = -1;
    CHECK(sft_trainer_create(m, ds, &c, &tr) == SFT_ERR_ARG);
    CHECK(tr == NULL);
    sft_dataset_destroy(ds);
    sft_model_destroy(m);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
}

static int t_count_lines(const char *path) {
    FILE *f = fopen(path, "rb");
    int n = 0, ch;
    if (!f) return -1;
    while ((ch = fgetc(f)) != EOF) n += ch == '\n';
    fclose(f);
    return n;
}

/* on_step_end asking to stop on rank 1 alone stops both ranks at that step; rank
   0 alone writes the checkpoints and the metrics lines (one per log entry, not
   one per rank) */
static void a_stop_on_one_rank_stops_all_and_rank_0_writes(void) {
    t_rank_run two[T_RANKS];
    char out[600], metrics[700], ckpt[700];
    int r;
    struct stat st;
    snprintf(out, sizeof out, "%s/parallel-out", t_tmpdir());
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", out);
    memset(two, 0, sizeof two);
    for (r = 0; r < T_RANKS; r++) { two[r].batch = 2; two[r].rows = 13; two[r].output_dir = out; two[r].metrics_path = metrics; }
    two[1].stop_at = 4;
    CHECK(!t_ranks(two, T_RANKS));
    for (r = 0; r < T_RANKS; r++) {
        CHECK_MSG(two[r].status == SFT_OK, "rank %d: %s", r, two[r].msg);
        CHECK_MSG(two[r].final_step == 4, "rank %d stopped at step %lld", r, (long long)two[r].final_step);
    }
    /* 4 train log lines and one evaluation (step 3) */
    CHECK_MSG(t_count_lines(metrics) == 5, "%s has %d lines", metrics, t_count_lines(metrics));
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint-4/sft_state.json", out);
    CHECK(stat(ckpt, &st) == 0);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint-2/adapter_model.safetensors", out);
    CHECK(stat(ckpt, &st) == 0);
    free(two[0].adapter); free(two[1].adapter);
}

/* a rank that fails alone (SFT_ERR_NUMERIC from its callback or compute_metrics,
   or rank 0's checkpoint write) stops the other at its next collective with the
   same status, naming the failed rank, instead of leaving it waiting: inside the
   window, at the step's end, in an evaluation, in sft_trainer_create, at a save,
   in an sft_trainer_evaluate after the run, at sft_train's TRAIN_END. A rank left waiting times the bus
   out, which fails the test. */
static void a_rank_that_fails_alone_stops_every_rank(void) {
    static const struct { int fail; const char *what; } cases[] = {
        {T_FAIL_SUBSTEP, "the window's losses"}, {T_FAIL_STEP_END, "callbacks' flags"}, {T_FAIL_METRICS, "evaluation"},
        {T_FAIL_INIT, "creating the trainer"}, {T_FAIL_WRITE, "the step's end"}, {T_FAIL_EVALUATE, "evaluate:"},
        {T_FAIL_TRAIN_END, "the end of training"}};
    t_rank_run two[T_RANKS];
    char out[600];
    size_t k;
    int r;
    snprintf(out, sizeof out, "%s/parallel-fail", t_tmpdir());
    for (k = 0; k < sizeof cases / sizeof *cases; k++) {
        int bad = cases[k].fail == T_FAIL_WRITE ? 0 : 1, good = 1 - bad;
        sft_status want = cases[k].fail == T_FAIL_WRITE ? SFT_ERR_IO : SFT_ERR_NUMERIC;
        char named[64];
        memset(two, 0, sizeof two);
        for (r = 0; r < T_RANKS; r++) {
            two[r].batch = 2; two[r].rows = 13; two[r].fail = cases[k].fail;
            if (cases[k].fail == T_FAIL_WRITE) two[r].output_dir = out;
            two[r].whole_run = cases[k].fail == T_FAIL_TRAIN_END;
        }
        CHECK_MSG(!t_ranks(two, T_RANKS), "case %zu: a rank was left waiting (the bus timed out)", k);
        snprintf(named, sizeof named, "rank %d failed with %s", bad, sft_status_str(want));
        CHECK_MSG(two[bad].status == want, "case %zu: the failed rank %d: %s: %s", k, bad, sft_status_str(two[bad].status), two[bad].msg);
        CHECK_MSG(two[good].status == want && strstr(two[good].msg, named) && strstr(two[good].msg, cases[k].what),
                  "case %zu: rank %d: %s: %s", k, good, sft_status_str(two[good].status), two[good].msg);
        for (r = 0; r < T_RANKS; r++) free(two[r].adapter);
        remove(out);
    }
}

void suite_parallel(void) {
    RUN(two_ranks_train_as_one_process_with_twice_the_batch);
    RUN(ranks_that_disagree_are_refused);
    RUN(compute_metrics_under_data_parallelism_are_rank_0s);
    RUN(a_stop_on_one_rank_stops_all_and_rank_0_writes);
    RUN(a_rank_that_fails_alone_stops_every_rank);
}
