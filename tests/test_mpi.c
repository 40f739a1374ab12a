/* test_mpi.c - data-parallel training over MPI (SFT_MPI), run by tests/mpi.sh
   under `mpirun -np 2`: each process is one rank of sft_mpi_parallel.

       test_mpi          the tests (every rank runs them; rank 0 prints, and its
                         closing line counts both ranks' failures)
       test_mpi --stall  rank 1 hangs at step 2; rank 0 must give up after its
                         3-second ddp_timeout with a clear error, its
                         checkpoints whole (tests/mpi.sh checks what it prints)

   The checks a rank makes are its own; what the ranks must share (the same
   adapter bits) is compared with MPI_Allreduce of MIN and MAX. */
#define SFT_IMPLEMENTATION
#include "parallel.h"
#include <mpi.h>
#include <sys/stat.h>

static int t_rank, t_world;

/* t_shared_dir: a folder every rank sees (the tests' processes share one
   machine), emptied by rank 0 before the others use it */
static const char *t_shared_dir(const char *name) {
    static char dir[300];
    char cmd[700];
    snprintf(dir, sizeof dir, "build/mpi/tmp/%.200s", name);
    if (t_rank == 0) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
        if (system(cmd) != 0) fprintf(stderr, "could not make %s\n", dir);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    return dir;
}

/* t_same_on_all_ranks: every rank holds these exact bits */
static int t_same_on_all_ranks(const float *a, int64_t n) {
    float *lo = (float *)malloc((size_t)n * sizeof *lo), *hi = (float *)malloc((size_t)n * sizeof *hi);
    int same = lo && hi;
    if (same) {
        MPI_Allreduce(a, lo, (int)n, MPI_FLOAT, MPI_MIN, MPI_COMM_WORLD);
        MPI_Allreduce(a, hi, (int)n, MPI_FLOAT, MPI_MAX, MPI_COMM_WORLD);
        same = memcmp(lo, a, (size_t)n * sizeof *a) == 0 && memcmp(hi, a, (size_t)n * sizeof *a) == 0;
    }
    free(lo); free(hi);
    return same;
}

static void t_mpi_run(t_rank_run *r, sft_context *ctx, double timeout) {
    CHECK_OK(sft_mpi_parallel(ctx, timeout, &r->par));
    t_rank_main(r);
    sft_mpi_parallel_release(&r->par);
}

static double t_reldiff(double a, double b) { return fabs(a - b) / (fabs(b) > 1e-30 ? fabs(b) : 1.0); }

/* QLoRA (NF4 base), 13 rows, batch 2 x accumulation 2 per rank, against one
   process with batch 4 (run by each rank alone first): per-step loss and
   grad_norm, num_tokens and the adapter within 1e-6 relative; the ranks'
   adapters bit-identical */
static void two_ranks_equal_one_process_with_twice_the_batch(void) {
    t_rank_run one, two;
    sft_context *ctx = t_context(1);
    double worst_loss = 0, worst_norm = 0, worst_adapter = 0;
    int i;
    memset(&one, 0, sizeof one); memset(&two, 0, sizeof two);
    one.batch = 4; one.eval_batch = 2; one.rows = 13; one.nf4 = 1;
    two.batch = 2; two.rows = 13; two.nf4 = 1;
    t_rank_main(&one);
    t_mpi_run(&two, ctx, 60.0);
    CHECK_MSG(one.status == SFT_OK && two.status == SFT_OK, "one process: %s; rank %d: %s", one.msg, t_rank, two.msg);
    if (one.status == SFT_OK && two.status == SFT_OK) {
        CHECK(one.steps == 6 && two.steps == 6);
        for (i = 0; i < one.steps && i < two.steps; i++) {
            double dl = t_reldiff(two.loss[i], one.loss[i]), dn = t_reldiff(two.grad_norm[i], one.grad_norm[i]);
            if (dl > worst_loss) worst_loss = dl;
            if (dn > worst_norm) worst_norm = dn;
        }
        CHECK_MSG(worst_loss <= 1e-6 && worst_norm <= 1e-6, "loss differs by %.3g, grad_norm by %.3g (relative)", worst_loss, worst_norm);
        CHECK(two.num_tokens == one.num_tokens);
        CHECK_MSG(t_reldiff(two.eval_loss, one.eval_loss) <= 1e-6, "eval_loss %.9g vs %.9g", two.eval_loss, one.eval_loss);
        CHECK(two.n_adapter == one.n_adapter);
        if (two.n_adapter == one.n_adapter) {
            double dmax = 0, amax = 0;
            int64_t k;
            CHECK_REL("the adapter, 2 ranks vs 1 process", two.adapter, one.adapter, one.n_adapter, 1e-6);
            for (k = 0; k < one.n_adapter; k++) {
                double d = fabs((double)two.adapter[k] - (double)one.adapter[k]);
                if (d > dmax) dmax = d;
                if (fabs((double)one.adapter[k]) > amax) amax = fabs((double)one.adapter[k]);
            }
            worst_adapter = amax > 0 ? dmax / amax : dmax;
        }
    }
    CHECK_MSG(two.adapter && t_same_on_all_ranks(two.adapter, two.n_adapter), "the ranks' adapters differ");
    if (t_rank == 0)
        printf("    2 ranks vs 1 process: loss %.2g, grad_norm %.2g, adapter %.2g relative at most\n", worst_loss, worst_norm, worst_adapter);
    free(one.adapter); free(two.adapter);
    sft_context_destroy(ctx);
}

/* 2 ranks stopped after step 3 (a checkpoint every 2 steps), then resumed from
   the newest (checkpoint-2) to step 6: the adapter bit for bit that of an
   uninterrupted 2-rank run, and each step's loss and grad_norm too */
static void two_rank_resume_equals_an_uninterrupted_run(void) {
    t_rank_run whole, first, rest;
    sft_context *ctx = t_context(1);
    const char *dir;
    char a[600], b[600];
    int i;
    memset(&whole, 0, sizeof whole); memset(&first, 0, sizeof first); memset(&rest, 0, sizeof rest);
    dir = t_shared_dir("resume");
    snprintf(a, sizeof a, "%s/whole", dir);
    snprintf(b, sizeof b, "%s/split", dir);
    whole.batch = first.batch = rest.batch = 2;
    whole.rows = first.rows = rest.rows = 13;
    whole.output_dir = a; first.output_dir = rest.output_dir = b;
    first.stop_at = 3;
    rest.resume = "last";
    t_mpi_run(&whole, ctx, 60.0);
    t_mpi_run(&first, ctx, 60.0);
    t_mpi_run(&rest, ctx, 60.0);
    CHECK_MSG(whole.status == SFT_OK && first.status == SFT_OK && rest.status == SFT_OK, "rank %d: %s %s %s", t_rank, whole.msg, first.msg,
              rest.msg);
    CHECK_MSG(first.final_step == 3 && rest.final_step == 6 && whole.final_step == 6, "steps %lld, %lld, %lld", (long long)first.final_step,
              (long long)rest.final_step, (long long)whole.final_step);
    if (whole.adapter && rest.adapter && whole.n_adapter == rest.n_adapter) {
        CHECK_MSG(memcmp(whole.adapter, rest.adapter, (size_t)whole.n_adapter * sizeof(float)) == 0, "the resumed adapter differs");
        CHECK(rest.steps == 4);
        for (i = 0; i < 4 && i < rest.steps; i++) CHECK(rest.loss[i] == whole.loss[2 + i] && rest.grad_norm[i] == whole.grad_norm[2 + i]);
    }
    CHECK_MSG(rest.adapter && t_same_on_all_ranks(rest.adapter, rest.n_adapter), "the ranks' adapters differ after the resume");
    free(whole.adapter); free(first.adapter); free(rest.adapter);
    sft_context_destroy(ctx);
}

/* rank 1's callback fails at step 2's end: both ranks stop there at once (well
   inside a 60 s ddp_timeout) with its SFT_ERR_NUMERIC, rank 0 naming rank 1 */
static void a_rank_that_fails_alone_stops_the_other_at_once(void) {
    t_rank_run r;
    sft_context *ctx = t_context(1);
    double start = MPI_Wtime();
    memset(&r, 0, sizeof r);
    r.batch = 2; r.rows = 13; r.fail = T_FAIL_STEP_END;
    t_mpi_run(&r, ctx, 60.0);
    CHECK_MSG(r.status == SFT_ERR_NUMERIC, "rank %d: %s: %s", t_rank, sft_status_str(r.status), r.msg);
    if (t_rank == 0) CHECK_MSG(strstr(r.msg, "rank 1 failed with SFT_ERR_NUMERIC"), "rank 0: %s", r.msg);
    CHECK_MSG(MPI_Wtime() - start < 30.0, "rank %d stopped after %.1f s", t_rank, MPI_Wtime() - start);
    free(r.adapter);
    sft_context_destroy(ctx);
}

/* --stall: rank 1 sleeps 30 s at the end of step 2; rank 0, with a 3 s
   ddp_timeout, stops with SFT_ERR_IO at step 3's first sum; the checkpoints
   (one per step) are whole. Prints what tests/mpi.sh looks for. */
static int t_stall(void) {
    t_rank_run r;
    sft_context *ctx = t_context(1);
    const char *dir = t_shared_dir("stall");
    char out[600], path[700];
    double start = MPI_Wtime();
    struct stat st;
    int step, whole = 1;
    memset(&r, 0, sizeof r);
    snprintf(out, sizeof out, "%s/out", dir);
    r.batch = 2; r.rows = 13; r.output_dir = out; r.save_steps = 1;
    if (t_rank == 1) { r.stall_at = 2; r.stall_seconds = 30; }
    t_mpi_run(&r, ctx, 3.0);
    if (t_rank != 0) return 1;           /* rank 1 never gets here in time: mpirun ends it */
    printf("stall: rank 0 stopped after %.1f s with %s: %s\n", MPI_Wtime() - start, sft_status_str(r.status), r.msg);
    for (step = 1; step <= 2; step++) {
        static const char *const files[] = {"adapter_model.safetensors", "adapter_config.json", "optimizer.safetensors",
                                            "trainer_state.json", "sft_state.json"};
        size_t k;
        for (k = 0; k < sizeof files / sizeof *files; k++) {
            snprintf(path, sizeof path, "%s/checkpoint-%d/%s", out, step, files[k]);
            whole &= stat(path, &st) == 0;
        }
    }
    snprintf(path, sizeof path, "%s/checkpoint-3", out);
    whole &= stat(path, &st) != 0;
    snprintf(path, sizeof path, "%s/tmp-checkpoint-3", out);
    whole &= stat(path, &st) != 0;
    printf("stall: checkpoint-1 and checkpoint-2 %s, no checkpoint-3\n", whole ? "whole" : "NOT WHOLE");
    fflush(stdout);
    sft_context_destroy(ctx);
    return r.status == SFT_ERR_IO && whole ? 0 : 1;
}

int main(int argc, char **argv) {
    int failed, rc;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &t_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &t_world);
    if (argc > 1 && strcmp(argv[1], "--stall") == 0) {
        rc = t_stall();
        MPI_Abort(MPI_COMM_WORLD, rc ? 4 : 3);    /* rank 1 still sleeps: end it */
        return rc;
    }
    if (t_rank != 0 && !freopen("build/mpi/test_mpi.rank1.log", "w", stdout)) return 1;
    if (!t_begin(1, argv)) return 1;
    printf("mpi (%d ranks)\n", t_world);
    RUN(two_ranks_equal_one_process_with_twice_the_batch);
    RUN(two_rank_resume_equals_an_uninterrupted_run);
    RUN(a_rank_that_fails_alone_stops_the_other_at_once);
    failed = t_end();
    MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (t_rank == 0 && failed) printf("mpi: a rank failed (rank 1's lines: build/mpi/test_mpi.rank1.log)\n");
    MPI_Finalize();
    return failed;
}
