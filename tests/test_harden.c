/* test_harden.c - what an attacker or a careless user can do to a run, each a
   regression test of issue 19: links planted in output_dir are never written
   through (checkpoint files, metrics.jsonl); an output_dir that is a file or
   cannot take files is refused before anything trains; a refused resume leaves
   no trace; crafted files (an adapter_config.json with r 65536, a safetensors
   shape [0, 2^63-1], counters of 1e300 in sft_state.json / trainer_state.json)
   cost nothing and get a status; rotation takes a checkpoint away in one step;
   metrics.jsonl reads as one run after a kill and a resume; a failed
   allocation while logging stops the run instead of losing an entry; the
   sft command's exit codes and messages for bad input; whitespace runs encode
   in n log n. The crafted files are in tests/fixtures/harden
   (tools/make_harden_fixtures.py). */
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define H_FIX "tests/fixtures/harden"

int sft_cli_main(int argc, char **argv);

static char *h_dir(const char *name) {
    static char buf[8][512];
    static int next;
    char *b = buf[next++ % 8];
    snprintf(b, 512, "%s/harden-%s", t_tmpdir(), name);
    return b;
}

static int h_exists(const char *path) { struct stat st; return lstat(path, &st) == 0; }

static void h_put(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    CHECK_MSG(f != NULL, "cannot write %s", path);
    if (f) { fputs(text, f); fclose(f); }
}

/* h_read: a small file's text (static buffer; "" if absent) */
static const char *h_read(const char *path) {
    static char buf[1 << 16];
    FILE *f = fopen(path, "rb");
    size_t n = 0;
    buf[0] = 0;
    if (f) { n = fread(buf, 1, sizeof buf - 1, f); fclose(f); }
    buf[n] = 0;
    return buf;
}

/* the run the fuzz harness of resume also makes: the tiny Llama, LoRA r 2 on
   q_proj and v_proj, four pre-tokenized rows */
typedef struct h_run { sft_context *ctx; sft_tokenizer *tok; sft_model *model; sft_dataset *ds; } h_run;

static int h_open(h_run *r, sft_context_desc *cd) {
    static const char *const recs[] = {"{\"input_ids\": [5, 6, 7, 8, 9]}", "{\"input_ids\": [10, 11, 12]}",
                                       "{\"input_ids\": [13, 14, 15, 16]}", "{\"input_ids\": [17, 18, 19, 20, 21, 22]}"};
    sft_lora_desc ld;
    sft_data_desc dd;
    memset(r, 0, sizeof *r);
    memset(&ld, 0, sizeof ld); ld.r = 2; ld.alpha = 4;
    memset(&dd, 0, sizeof dd); dd.max_length = 16; dd.pad_token = "!";
    if (cd) CHECK_OK(sft_context_create(cd, &r->ctx));
    else r->ctx = t_context(1);
    if (!r->ctx) return 0;
    CHECK_OK(sft_tokenizer_load(r->ctx, "tests/fixtures/tokenizers/qwen2", &r->tok));
    CHECK_OK(sft_model_load(r->ctx, "tests/fixtures/models/llama", NULL, &r->model));
    if (r->model) CHECK_OK(sft_model_add_lora(r->model, "default", &ld, "q_proj,v_proj"));
    if (r->tok) CHECK_OK(sft_dataset_from_records(r->ctx, r->tok, recs, 4, &dd, &r->ds));
    return r->tok && r->model && r->ds;
}

static void h_close(h_run *r) {
    sft_dataset_destroy(r->ds); sft_model_destroy(r->model); sft_tokenizer_destroy(r->tok); sft_context_destroy(r->ctx);
}

static void h_config(sft_train_config *c, const char *out_dir) {
    memset(c, 0, sizeof *c);
    c->per_device_train_batch_size = 2; c->max_steps = 4; c->learning_rate = 1e-3; c->logging_steps = 1;
    c->output_dir = out_dir;
}

/* ---- writes ------------------------------------------------------------------ */

/* A link planted at a file's path or at its temporary is replaced, never
   written through: the file it points to (outside the folder) is unchanged. */
static void planted_links_are_never_written_through(void) {
    const char *dir = h_dir("links"), *victim = h_dir("victim");
    char path[600], tmp[600];
    sft_buf part;
    struct stat st;
    mkdir(dir, 0700);
    h_put(victim, "precious\n");
    snprintf(path, sizeof path, "%s/a.json", dir);
    snprintf(tmp, sizeof tmp, "%s/b.json.tmp", dir);
    CHECK(symlink(victim, path) == 0);
    CHECK(symlink(victim, tmp) == 0);
    part.data = "{}\n"; part.len = 3;
    CHECK_OK(sft_file_write_atomic(NULL, path, &part, 1));
    snprintf(path, sizeof path, "%s/b.json", dir);
    CHECK_OK(sft_file_write_atomic(NULL, path, &part, 1));
    CHECK(strcmp(h_read(victim), "precious\n") == 0);
    snprintf(path, sizeof path, "%s/a.json", dir);
    CHECK(lstat(path, &st) == 0 && S_ISREG(st.st_mode) && strcmp(h_read(path), "{}\n") == 0);
    CHECK(!h_exists(tmp));
}

/* metrics.jsonl planted as a link (or a hard link) to a file elsewhere: the run
   stops at its first log line with SFT_ERR_IO naming the file; the target is
   unchanged */
static void a_planted_metrics_link_stops_the_run(void) {
    h_run r;
    sft_train_config c;
    sft_train_output out;
    const char *dir = h_dir("metrics-link"), *victim = h_dir("metrics-victim");
    char metrics[600];
    int hard;
    if (!h_open(&r, NULL)) goto done;
    for (hard = 0; hard < 2; hard++) {
        mkdir(dir, 0700);
        h_put(victim, "precious\n");
        snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", dir);
        unlink(metrics);
        CHECK((hard ? link(victim, metrics) : symlink(victim, metrics)) == 0);
        h_config(&c, dir);
        c.metrics_path = metrics;
        CHECK_STATUS(sft_train(r.model, r.ds, &c, &out), SFT_ERR_IO);
        CHECK_ERROR_MENTIONS("metrics.jsonl");
        CHECK(strcmp(h_read(victim), "precious\n") == 0);
    }
done:
    h_close(&r);
}

/* ---- output_dir -------------------------------------------------------------- */

static int h_steps_seen;
static int h_count_steps(const sft_step_info *info, void *user) { (void)info; (void)user; h_steps_seen++; return 0; }

static size_t h_fail_writes(int fd, const void *data, size_t len, void *user) { (void)fd; (void)data; (void)len; (void)user; errno = EROFS; return 0; }

/* An output_dir that is a regular file, or a folder that takes no files, is
   refused by sft_trainer_create (SFT_ERR_IO, naming it) before a step runs,
   with save_steps unset too (a run that would only save at the end) */
static void an_unusable_output_dir_is_refused_before_training(void) {
    h_run r;
    sft_train_config c;
    sft_trainer *tr = NULL;
    sft_context_desc cd;
    const char *file = h_dir("out-file"), *ro = h_dir("out-ro");
    if (!h_open(&r, NULL)) goto done;
    h_put(file, "not a folder\n");
    h_config(&c, file);
    c.on_step_end = h_count_steps;
    h_steps_seen = 0;
    CHECK_STATUS(sft_trainer_create(r.model, r.ds, &c, &tr), SFT_ERR_IO);
    CHECK_ERROR_MENTIONS("not a folder");
    CHECK(tr == NULL && h_steps_seen == 0);
    h_close(&r);
    /* a folder whose writes fail (the write hook stands for a read-only disk) */
    memset(&cd, 0, sizeof cd);
    cd.write = h_fail_writes;
    if (!h_open(&r, &cd)) goto done;
    h_config(&c, ro);
    CHECK_STATUS(sft_trainer_create(r.model, r.ds, &c, &tr), SFT_ERR_IO);
    CHECK_ERROR_MENTIONS("not writable");
    CHECK(tr == NULL && !h_exists(ro));          /* the folder it created for the probe is gone again */
    if (geteuid() != 0) {                        /* a real read-only folder (root writes anyway) */
        h_close(&r);
        if (!h_open(&r, NULL)) goto done;
        mkdir(ro, 0500);
        CHECK_STATUS(sft_trainer_create(r.model, r.ds, &c, &tr), SFT_ERR_IO);
        CHECK_ERROR_MENTIONS("not writable");
        chmod(ro, 0700);
    }
done:
    h_close(&r);
}

/* A resume that is refused (no such checkpoint) creates nothing: output_dir
   and its missing parents do not appear */
static void a_refused_resume_leaves_no_trace(void) {
    h_run r;
    sft_train_config c;
    sft_trainer *tr = NULL;
    char out[600];
    const char *top = h_dir("no-trace");
    snprintf(out, sizeof out, "%s/a/b", top);
    if (!h_open(&r, NULL)) goto done;
    h_config(&c, out);
    c.resume_from_checkpoint = "last";
    CHECK_STATUS(sft_trainer_create(r.model, r.ds, &c, &tr), SFT_ERR_NOT_FOUND);
    c.resume_from_checkpoint = "tests/fixtures/harden/no-such-checkpoint";
    CHECK_STATUS(sft_trainer_create(r.model, r.ds, &c, &tr), SFT_ERR_NOT_FOUND);
    CHECK_MSG(!h_exists(top), "%s was created by a refused resume", top);
done:
    h_close(&r);
}

/* ---- crafted files ------------------------------------------------------------- */

/* adapter_config.json says r 65536 over a 2 KB adapter: refused by shape before
   the adapter is made; the context's peak memory barely moves */
static void a_crafted_adapter_rank_costs_nothing(void) {
    sft_context *ctx = t_context(1);
    sft_model *m = NULL;
    sft_mem_stats before, after;
    CHECK_OK(sft_model_load(ctx, "tests/fixtures/models/llama", NULL, &m));
    if (!m) goto done;
    sft_context_mem_reset_peak(ctx);
    before = sft_context_mem_stats(ctx);
    CHECK_STATUS(sft_model_load_adapter(m, H_FIX "/adapter_r65536", "crafted"), SFT_ERR_SHAPE);
    CHECK_ERROR_MENTIONS("r 65536");
    after = sft_context_mem_stats(ctx);
    CHECK_MSG(after.peak_bytes - before.bytes_in_use < ((size_t)1 << 20), "loading the crafted adapter peaked %zu bytes above the model",
              after.peak_bytes - before.bytes_in_use);
    CHECK(sft_linear_adapter_weights(sft_model_linear(m, 0, "q_proj"), "crafted", NULL) != SFT_OK);
done:
    sft_model_destroy(m);
    sft_context_destroy(ctx);
}

/* shape [0, 2^63-1] (no bytes: the reference reader takes it): the tensor is
   refused with a status when loaded, with no overflow on the way (make sanitize) */
static void a_zero_sized_shape_of_huge_dims_is_refused(void) {
    sft_context *ctx = t_context(1);
    sft_st_file *f = NULL;
    sft_tensor *t = NULL;
    sft_status s = sft_st_open(ctx, H_FIX "/shape_overflow.safetensors", &f);
    if (s == SFT_OK) {
        CHECK(sft_st_load(ctx, f, "x", &t) != SFT_OK);
        CHECK(t == NULL);
        CHECK(sft_st_load(ctx, f, "y", &t) != SFT_OK);
    } else CHECK(s == SFT_ERR_FORMAT || s == SFT_ERR_LIMIT);
    sft_st_close(f);
    sft_context_destroy(ctx);
}

/* copy a checkpoint folder's files (flat) */
static void h_copy_dir(const char *from, const char *to) {
    DIR *d = opendir(from);
    struct dirent *e;
    mkdir(to, 0700);
    while (d && (e = readdir(d)) != NULL) {
        char a[700], b[700];
        sft_buf part;
        char *text = NULL;
        size_t len = 0;
        if (e->d_name[0] == '.') continue;
        snprintf(a, sizeof a, "%s/%s", from, e->d_name);
        snprintf(b, sizeof b, "%s/%s", to, e->d_name);
        if (sft_file_read(NULL, a, 0, &text, &len) != SFT_OK) continue;
        part.data = text; part.len = len;
        CHECK_OK(sft_file_write_atomic(NULL, b, &part, 1));
        sft_free(NULL, text);
    }
    if (d) closedir(d);
}

/* sft_state.json with global_step 1e300, plateau_bad 1e10 or epoch -1e19, and
   trainer_state.json with a log entry of step 1e300: the resume is refused
   with SFT_ERR_FORMAT naming the field (no float-to-int overflow) */
static void crafted_trainer_counters_are_refused(void) {
    static const char *const cases[][3] = {
        {"sft_state_global_step.json", NULL, "global_step"},
        {"sft_state_plateau_bad.json", NULL, "plateau_bad"},
        {"sft_state_epoch.json", NULL, "epoch"},
        {NULL, "trainer_state_step.json", "step"},
    };
    h_run r;
    sft_train_config c;
    sft_trainer *tr = NULL;
    sft_step_info info;
    const char *out = h_dir("crafted-state"), *ck = h_dir("crafted-ck");
    char saved[600], path[700];
    size_t k;
    if (!h_open(&r, NULL)) goto done;
    h_config(&c, out);
    CHECK_OK(sft_trainer_create(r.model, r.ds, &c, &tr));
    if (tr) { CHECK_OK(sft_trainer_step(tr, &info)); CHECK_OK(sft_trainer_save(tr)); }
    sft_trainer_destroy(tr); tr = NULL;
    snprintf(saved, sizeof saved, "%s/checkpoint-1", out);
    /* the committed fixtures carry this run's fingerprint: the real file must agree */
    snprintf(path, sizeof path, "%s/sft_state.json", saved);
    CHECK_MSG(strstr(h_read(path), "\"run\": \"model hidden 64 layers 2 heads 4/2 intermediate 128 vocab 256; adapter default r 2") != NULL,
              "the run's fingerprint changed: regenerate tests/fixtures/harden (tools/make_harden_fixtures.py)");
    c.output_dir = NULL;
    c.resume_from_checkpoint = ck;
    CHECK_OK(sft_trainer_create(r.model, r.ds, &c, &tr) == SFT_ERR_NOT_FOUND ? SFT_OK : SFT_ERR_STATE);
    h_copy_dir(saved, ck);
    CHECK_OK(sft_trainer_create(r.model, r.ds, &c, &tr));          /* the untouched copy resumes */
    sft_trainer_destroy(tr); tr = NULL;
    for (k = 0; k < sizeof cases / sizeof *cases; k++) {
        char *text = NULL;
        size_t len = 0;
        sft_buf part;
        h_copy_dir(saved, ck);
        snprintf(path, sizeof path, H_FIX "/%s", cases[k][0] ? cases[k][0] : cases[k][1]);
        CHECK_OK(sft_file_read(NULL, path, 0, &text, &len));
        snprintf(path, sizeof path, "%s/%s", ck, cases[k][0] ? "sft_state.json" : "trainer_state.json");
        part.data = text; part.len = len;
        CHECK_OK(sft_file_write_atomic(NULL, path, &part, 1));
        sft_free(NULL, text);
        CHECK_STATUS(sft_trainer_create(r.model, r.ds, &c, &tr), SFT_ERR_FORMAT);
        CHECK_ERROR_MENTIONS(cases[k][2]);
        CHECK(tr == NULL);
    }
done:
    h_close(&r);
}

/* ---- rotation and metrics over a kill --------------------------------------------- */

static int h_count_prefix(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)) != NULL) n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    if (d) closedir(d);
    return n;
}

/* save_total_limit 2 with a save every step: checkpoints 3 and 4 remain, no
   hidden .deleting- folder is left, and one a killed rotation left behind
   (planted) is swept at the next start */
static void rotation_takes_a_checkpoint_away_whole(void) {
    h_run r;
    sft_train_config c;
    sft_train_output out;
    const char *dir = h_dir("rotate");
    char left[600], inner[700];
    if (!h_open(&r, NULL)) goto done;
    h_config(&c, dir);
    c.save_steps = 1; c.save_total_limit = 2;
    CHECK_OK(sft_train(r.model, r.ds, &c, &out));
    CHECK(h_count_prefix(dir, "checkpoint-") == 2 && h_count_prefix(dir, ".deleting-") == 0);
    snprintf(left, sizeof left, "%s/.deleting-checkpoint-1", dir);
    mkdir(left, 0700);
    snprintf(inner, sizeof inner, "%s/adapter_model.safetensors", left);
    h_put(inner, "half");
    c.max_steps = 6;
    c.resume_from_checkpoint = "last";
    CHECK_OK(sft_train(r.model, r.ds, &c, &out));
    CHECK_MSG(!h_exists(left), "a rotation's leftover was not swept");
    CHECK(h_count_prefix(dir, "checkpoint-") == 2);
done:
    h_close(&r);
}

/* A run killed after step 3 (checkpoint-2 saved, step 3's line appended, a
   line cut short by the kill) and resumed: metrics.jsonl equals the
   uninterrupted run's, byte for byte */
static void metrics_read_as_one_run_after_a_kill(void) {
    h_run r;
    sft_train_config c;
    sft_train_output out;
    sft_trainer *tr = NULL;
    sft_step_info info;
    const char *whole = h_dir("metrics-whole"), *cut = h_dir("metrics-cut");
    char mw[600], mc[600], want[1 << 14];
    int k;
    if (!h_open(&r, NULL)) goto done;
    snprintf(mw, sizeof mw, "%s/metrics.jsonl", whole);
    snprintf(mc, sizeof mc, "%s/metrics.jsonl", cut);
    h_config(&c, whole);
    c.save_steps = 2; c.metrics_path = mw;
    CHECK_OK(sft_train(r.model, r.ds, &c, &out));
    snprintf(want, sizeof want, "%s", h_read(mw));
    h_close(&r);
    if (!h_open(&r, NULL)) goto done;
    h_config(&c, cut);
    c.save_steps = 2; c.metrics_path = mc;
    CHECK_OK(sft_trainer_create(r.model, r.ds, &c, &tr));
    for (k = 0; tr && k < 3; k++) CHECK_OK(sft_trainer_step(tr, &info));
    sft_trainer_destroy(tr);                        /* "killed": no save after step 3 */
    {
        FILE *f = fopen(mc, "ab");
        if (f) { fputs("{\"loss\": 1.5, \"gra", f); fclose(f); }
    }
    h_close(&r);
    if (!h_open(&r, NULL)) goto done;               /* a new process */
    c.resume_from_checkpoint = "last";
    CHECK_OK(sft_train(r.model, r.ds, &c, &out));
    CHECK_MSG(strcmp(h_read(mc), want) == 0, "metrics.jsonl after a kill and a resume:\n%s\nthe uninterrupted run's:\n%s", h_read(mc), want);
done:
    h_close(&r);
}

/* ---- allocation failures while logging ----------------------------------------------- */

typedef struct h_budget { long left; } h_budget;
static void *h_alloc(size_t size, void *user) {
    h_budget *b = (h_budget *)user;
    if (b->left >= 0 && b->left-- == 0) return NULL;
    return malloc(size);
}
static void h_free(void *p, void *user) { (void)user; free(p); }

static int h_count(const char *hay, const char *needle) {
    int n = 0;
    for (hay = strstr(hay, needle); hay; hay = strstr(hay + 1, needle)) n++;
    return n;
}

static int h_logs;
static void h_on_log(const sft_log_entry *e, void *user) { (void)e; (void)user; h_logs++; }

/* The allocations of a 4-step run (logging every step, a save at the end)
   failed one at a time, every one of them: the run either
   fails with SFT_ERR_NOMEM or ends with all 4 entries in the callback,
   metrics.jsonl and trainer_state.json (an entry is never dropped in silence) */
static void a_failed_allocation_never_drops_a_log_entry(void) {
    h_budget b;
    sft_context_desc cd;
    long k, positions = 0, failed = 0;
    for (k = 0; k < 1000000; k++) {
        h_run r;
        sft_train_config c;
        sft_trainer *tr = NULL;
        sft_step_info info;
        sft_status s = SFT_OK;
        char dir[600], path[700];
        int steps = 0;
        memset(&cd, 0, sizeof cd);
        b.left = -1;
        cd.allocator.alloc = h_alloc; cd.allocator.free = h_free; cd.allocator.user = &b;
        if (!h_open(&r, &cd)) { h_close(&r); return; }
        snprintf(dir, sizeof dir, "%s-%ld", h_dir("alloc"), k);
        snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
        h_config(&c, dir);
        c.save_steps = 4; c.metrics_path = path; c.on_log = h_on_log;
        h_logs = 0;
        b.left = k;                                  /* fail the k-th allocation from here on */
        s = sft_trainer_create(r.model, r.ds, &c, &tr);
        while (s == SFT_OK && tr && !(steps && info.done)) { s = sft_trainer_step(tr, &info); steps++; }
        sft_trainer_destroy(tr);
        h_close(&r);
        if (b.left >= 0) break;                      /* the whole run needed fewer allocations: done */
        positions++;
        if (s != SFT_OK) { failed++; CHECK_MSG(s == SFT_ERR_NOMEM, "allocation %ld: %s", k, sft_status_str(s)); continue; }
        CHECK_MSG(h_logs == 4 && h_count(h_read(path), "\n") == 4, "allocation %ld failed in silence: %d log calls, metrics:\n%s", k,
                  h_logs, h_read(path));
        snprintf(path, sizeof path, "%s/checkpoint-4/trainer_state.json", dir);
        CHECK_MSG(h_count(h_read(path), "\"loss\"") == 4, "allocation %ld failed in silence: trainer_state.json\n%s", k, h_read(path));
    }
    CHECK(positions > 10);
    printf("    %ld allocation positions failed in turn (up to %ld), %ld stopped the run with SFT_ERR_NOMEM\n", positions, k, failed);
}

/* ---- the sft command ------------------------------------------------------------------ */

/* h_cli: run the sft command with stderr captured (the text, static) and
   stdout dropped */
static int h_cli(char **argv, int argc, const char **err) {
    char path[600];
    int saved = dup(2), saved_out = dup(1), fd, rc;
    snprintf(path, sizeof path, "%s/harden-stderr", t_tmpdir());
    fflush(stderr); fflush(stdout);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2); close(fd);
    fd = open("/dev/null", O_WRONLY);
    dup2(fd, 1); close(fd);
    rc = sft_cli_main(argc, argv);
    fflush(stderr); fflush(stdout);
    dup2(saved, 2); close(saved);
    dup2(saved_out, 1); close(saved_out);
    *err = h_read(path);
    return rc;
}

/* bad input gets exit status 2 and one line naming it: a dataset whose content
   is bad (mixed formats, a JSON error: file:line:column, the path once), an
   output_dir that is a file, --max_steps -5; --skip_bad_records says what it
   skipped */
static void the_command_refuses_bad_input_with_status_2(void) {
    const char *dir = h_dir("cli"), *err;
    char data[600], outf[600], model[600], out[600];
    char *argv[24];
    int n;
    mkdir(dir, 0700);
    snprintf(model, sizeof model, "%s/model", dir);
    mkdir(model, 0700);
    {   /* the tiny Llama with a tokenizer beside it */
        static const char *const files[][2] = {{"tests/fixtures/models/llama/config.json", "config.json"},
                                               {"tests/fixtures/models/llama/model.safetensors", "model.safetensors"},
                                               {"tests/fixtures/templates/tokenizer/tokenizer.json", "tokenizer.json"},
                                               {"tests/fixtures/templates/tokenizer/tokenizer_config.json", "tokenizer_config.json"}};
        size_t i;
        for (i = 0; i < 4; i++) {
            char to[700], *text = NULL;
            size_t len = 0;
            sft_buf part;
            snprintf(to, sizeof to, "%s/%s", model, files[i][1]);
            CHECK_OK(sft_file_read(NULL, files[i][0], 0, &text, &len));
            part.data = text; part.len = len;
            CHECK_OK(sft_file_write_atomic(NULL, to, &part, 1));
            sft_free(NULL, text);
        }
    }
    snprintf(data, sizeof data, "%s/data.jsonl", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(outf, sizeof outf, "%s/out-file", dir);
    h_put(outf, "x");
    n = 0;
    argv[n++] = (char *)"sft"; argv[n++] = (char *)"train"; argv[n++] = (char *)"--model_name_or_path"; argv[n++] = model;
    argv[n++] = (char *)"--dataset_name"; argv[n++] = data; argv[n++] = (char *)"--output_dir"; argv[n++] = out;
    argv[n++] = (char *)"--max_steps"; argv[n++] = (char *)"1"; argv[n++] = (char *)"--use_peft"; argv[n++] = (char *)"--packing";
    argv[n++] = (char *)"--max_length"; argv[n++] = (char *)"16";
    h_put(data, "{\"input_ids\": [5, 6, 7]}\n\n{\"text\": \"hi\"}\n");
    CHECK(h_cli(argv, n, &err) == 2);
    CHECK_MSG(strstr(err, "data.jsonl:3: a text record, but the first record") && strstr(err, "data.jsonl:1) is pre-tokenized"), "%s", err);
    CHECK_MSG(h_count(err, data) == 2, "the file named other than twice (the place, the first record's place): %s", err);
    h_put(data, "{\"input_ids\": [5, 6, 7]}\n{\"input_ids\": [5,, 6]}\n");
    CHECK(h_cli(argv, n, &err) == 2);
    CHECK_MSG(strstr(err, "data.jsonl:2:18: ") != NULL && h_count(err, data) == 1, "%s", err);
    CHECK_MSG(!h_exists(out), "a refused run created %s", out);
    argv[n++] = (char *)"--skip_bad_records";
    CHECK(h_cli(argv, n, &err) == 0);
    CHECK_MSG(strstr(err, "skipped 1 malformed record of 2") && strstr(err, "data.jsonl:2:"), "--skip_bad_records said: %s", err);
    n--;
    argv[7] = outf;
    CHECK(h_cli(argv, n, &err) == 2);
    CHECK_MSG(strstr(err, "--output_dir") && strstr(err, "not a folder"), "%s", err);
    argv[7] = out;
    argv[9] = (char *)"-5";
    CHECK(h_cli(argv, n, &err) == 2);
    CHECK_MSG(strstr(err, "--max_steps") != NULL, "%s", err);
}

/* ---- the tokenizer ------------------------------------------------------------------------ */

/* h_encode_seconds: the thread's CPU time to encode n bytes of whitespace
   (kind 0: spaces; 1: spaces and newlines), the best of reps runs */
static double h_encode_seconds(sft_tokenizer *tok, size_t n, int kind, int reps) {
    char *text = (char *)malloc(n);
    double best = 1e30;
    size_t i, count = 0;
    int r;
    if (!text) return 0;
    for (i = 0; i < n; i++) text[i] = kind == 0 || i % 3 ? ' ' : '\n';
    for (r = 0; r < reps; r++) {
        int32_t *ids = NULL;
        struct timespec a, b;
        double secs;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
        CHECK_OK(sft_tokenizer_encode(tok, text, n, 0, &ids, &count));
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
        secs = (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
        if (secs < best) best = secs;
        sft_free(NULL, ids);
    }
    free(text);
    return best;
}

/* GPT-2-style whitespace runs (one run of spaces, or of spaces and newlines,
   over the whole text: one pre-token for BPE): 8 times the text costs at most
   24 times the CPU time (n log n measures 9 to 13 here, a quadratic merge 64),
   timed on the encoding thread's own clock so a busy machine does not count */
static void whitespace_runs_encode_in_n_log_n(void) {
    sft_context *ctx = t_context(1);
    sft_tokenizer *tok = NULL;
    int kind;
    CHECK_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/gpt2", &tok));
    for (kind = 0; tok && kind < 2; kind++) {
        double small = h_encode_seconds(tok, (size_t)64 << 10, kind, 3), large = h_encode_seconds(tok, (size_t)512 << 10, kind, 1);
        CHECK_MSG(small > 0 && large < 24.0 * small, "whitespace kind %d: 64 KB in %.4f s, 512 KB in %.4f s (%.1fx for 8x the text)", kind,
                  small, large, large / small);
        printf("    %s: 64 KB %.4f s, 512 KB %.4f s (%.1fx)\n", kind ? "spaces and newlines" : "spaces", small, large, large / small);
    }
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
}

/* ---- fuzzing's findings, replayed --------------------------------------------------------- */

/* fuzz_tokenizer's finding: a tokenizer.json whose vocabulary lacks the
   characters of a word and has no unk token, so the word becomes no symbols at
   all: encoding it handed a NULL buffer of 0 symbols to memcpy (undefined
   behaviour under make sanitize). It encodes to nothing, as Hugging Face drops
   such characters. The texts are the harness's. */
static void fuzz_finding_a_word_of_no_symbols_encodes(void) {
    static const char *const texts[] = {
        "Hello world!  How are you?\n\n", "na\xc3\xafve caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80", "   \t\t\n  x",
        "<s>[INST] hi [/INST]</s><|im_start|>user<|im_end|>", "12345 3.14 don't I'll", "",
    };
    sft_context *ctx = t_context(1);
    sft_tokenizer *tok = NULL;
    size_t k;
    CHECK_OK(sft_tokenizer_load(ctx, H_FIX "/tokenizer_empty_word", &tok));
    for (k = 0; tok && k < sizeof texts / sizeof *texts; k++) {
        int special;
        for (special = 0; special < 2; special++) {
            int32_t *ids = NULL;
            size_t n = 0, tl = 0;
            char *text = NULL;
            CHECK_OK(sft_tokenizer_encode(tok, texts[k], strlen(texts[k]), special, &ids, &n));
            CHECK_OK(sft_tokenizer_decode(tok, ids, n, special, &text, &tl));
            sft_free(ctx, ids); sft_free(ctx, text);
        }
    }
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
}

/* fuzz finding (tokenizer, twice): normalizer steps whose Replace contents hold
   what they replace (a Prepend of 4 KB, then five Replaces) turned a 28-byte
   text into 11 million ids (2 s here, over 20 s under the fuzzer's
   sanitizers); more such steps multiply the text until memory runs out. A
   normalizer may now grow a piece SFT_TOKENIZER_MAX_GROWTH times (plus 64 KiB):
   both files' texts are refused with SFT_ERR_LIMIT naming it, at once; the
   empty text (nothing to normalize) still encodes. */
static void fuzz_finding_a_normalizer_cannot_multiply_the_text(void) {
    static const char *const dirs[] = {H_FIX "/tokenizer_growth_a", H_FIX "/tokenizer_growth_b"};
    static const char *const texts[] = {"Hello world!  How are you?\n\n", "   \t\t\n  x", "12345 3.14 don't I'll", ""};
    sft_context *ctx = t_context(1);
    size_t d, k;
    for (d = 0; d < 2; d++) {
        sft_tokenizer *tok = NULL;
        CHECK_OK(sft_tokenizer_load(ctx, dirs[d], &tok));
        for (k = 0; tok && k < sizeof texts / sizeof *texts; k++) {
            int32_t *ids = NULL;
            size_t n = 0;
            sft_status s = sft_tokenizer_encode(tok, texts[k], strlen(texts[k]), 0, &ids, &n);
            if (!*texts[k]) CHECK_MSG(s == SFT_OK && n == 0, "%s, the empty text: %s", dirs[d], sft_last_error());
            else CHECK_MSG(s == SFT_ERR_LIMIT && strstr(sft_last_error(), "SFT_TOKENIZER_MAX_GROWTH") && !ids, "%s, text %zu: %s %s", dirs[d], k,
                           sft_status_str(s), sft_last_error());
            sft_free(ctx, ids);
        }
        sft_tokenizer_destroy(tok);
    }
    sft_context_destroy(ctx);
}

void suite_harden(void) {
    RUN(planted_links_are_never_written_through);
    RUN(a_planted_metrics_link_stops_the_run);
    RUN(an_unusable_output_dir_is_refused_before_training);
    RUN(a_refused_resume_leaves_no_trace);
    RUN(a_crafted_adapter_rank_costs_nothing);
    RUN(a_zero_sized_shape_of_huge_dims_is_refused);
    RUN(crafted_trainer_counters_are_refused);
    RUN(rotation_takes_a_checkpoint_away_whole);
    RUN(metrics_read_as_one_run_after_a_kill);
    RUN(a_failed_allocation_never_drops_a_log_entry);
    RUN(the_command_refuses_bad_input_with_status_2);
    RUN(whitespace_runs_encode_in_n_log_n);
    RUN(fuzz_finding_a_word_of_no_symbols_encodes);
    RUN(fuzz_finding_a_normalizer_cannot_multiply_the_text);
}
