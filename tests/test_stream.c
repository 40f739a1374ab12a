/* test_stream.c - streams (datasets without a length, as transformers'
   IterableDataset): the rows of an in-memory dataset from the same records,
   training equal to an in-memory run in order across pass boundaries, the
   logged epoch and epoch events as transformers counts them for a dataset
   without a length (tests/fixtures/trainer/stream.json, written by
   tools/make_stream_fixtures.py), max_steps required, resume mid-pass bit for
   bit, a JSONL file read through a small buffer, packing in bounded blocks, bad
   records named. */
#include "tiny.h"

/* ---- sources ------------------------------------------------------------------------ */

typedef struct t_src { char **recs; int n, pos, rewinds; } t_src;

static sft_status t_src_next(void *user, const char **record, size_t *len) {
    t_src *s = (t_src *)user;
    if (s->pos >= s->n) { *record = NULL; return SFT_OK; }
    *record = s->recs[s->pos++];
    *len = strlen(*record);
    return SFT_OK;
}
static sft_status t_src_rewind(void *user) { t_src *s = (t_src *)user; s->pos = 0; s->rewinds++; return SFT_OK; }

/* pre-tokenized rows of unequal length (5..20) inside the tiny model's vocabulary */
static char **t_id_recs(int n, int salt) {
    char **recs = (char **)calloc((size_t)n, sizeof *recs);
    int i, k;
    for (i = 0; i < n; i++) {
        char buf[400];
        int len = snprintf(buf, sizeof buf, "{\"input_ids\": [");
        int count = 5 + (i * 7 + salt) % 16;
        for (k = 0; k < count; k++) len += snprintf(buf + len, sizeof buf - (size_t)len, "%s%d", k ? ", " : "", 3 + (i * 31 + k * 17 + salt) % 250);
        snprintf(buf + len, sizeof buf - (size_t)len, "]}");
        recs[i] = strdup(buf);
    }
    return recs;
}

static void t_free_recs(char **recs, int n) {
    int i;
    for (i = 0; i < n; i++) free(recs[i]);
    free(recs);
}

static sft_data_desc t_desc(int packing) {
    sft_data_desc d;
    memset(&d, 0, sizeof d);
    d.max_length = packing ? 64 : 48;
    d.packing = packing;
    d.pad_token = "!";        /* id 0: inside the model's vocabulary */
    return d;
}

static sft_dataset *t_stream_of(sft_context *ctx, sft_tokenizer *tok, t_src *src, const sft_data_desc *d, int pack_buffer) {
    sft_stream_desc s;
    sft_dataset *ds = NULL;
    memset(&s, 0, sizeof s);
    s.next = t_src_next; s.rewind = t_src_rewind; s.user = src; s.pack_buffer = pack_buffer;
    CHECK_OK(sft_dataset_stream(ctx, tok, &s, d, &ds));
    return ds;
}

/* ---- rows ------------------------------------------------------------------------- */

/* one row of each as a batch of one: the same tokens, labels, positions, sequences */
static int t_same_row(sft_context *ctx, sft_dataset *a, int64_t ia, sft_dataset *b, int64_t ib) {
    sft_batch x, y;
    int same;
    sft_step_begin(ctx);
    if (sft_dataset_batch(a, 0, 0, 0, ia, 1, &x) != SFT_OK || sft_dataset_batch(b, 0, 0, 0, ib, 1, &y) != SFT_OK) return 0;
    same = sft_tensor_numel(x.input_ids) == sft_tensor_numel(y.input_ids) && x.n_examples == y.n_examples &&
           memcmp(x.input_ids->data, y.input_ids->data, sft_tensor_nbytes(x.input_ids)) == 0 &&
           memcmp(x.labels->data, y.labels->data, sft_tensor_nbytes(x.labels)) == 0 &&
           memcmp(x.positions->data, y.positions->data, sft_tensor_nbytes(x.positions)) == 0 &&
           memcmp(x.seq_ids->data, y.seq_ids->data, sft_tensor_nbytes(x.seq_ids)) == 0;
    return same;
}

/* the stream read `chunk` rows at a time gives mem's rows [first, ...) in order,
   then ends the pass; returns the rows it gave */
static int64_t t_same_rows(sft_context *ctx, sft_dataset *mem, int64_t first, sft_dataset *st, int64_t chunk, const char *what) {
    int64_t i = first, got = chunk, k;
    while (got == chunk) {
        if (sft_dataset_stream_fill(st, chunk, &got) != SFT_OK) { CHECK_MSG(0, "%s: %s", what, sft_last_error()); return -1; }
        CHECK_MSG(sft_dataset_rows(st, 0) == got, "%s: the stream holds %lld rows, gave %lld", what, (long long)sft_dataset_rows(st, 0),
                  (long long)got);
        for (k = 0; k < got; k++, i++) {
            if (i >= sft_dataset_rows(mem, 0)) { CHECK_MSG(0, "%s: the stream gives more than %lld rows", what, (long long)i); return -1; }
            if (!t_same_row(ctx, mem, i, st, k)) { CHECK_MSG(0, "%s: row %lld differs", what, (long long)i); return -1; }
        }
    }
    CHECK_MSG(i == sft_dataset_rows(mem, 0), "%s: the stream gave %lld rows, the dataset has %lld", what, (long long)i,
              (long long)sft_dataset_rows(mem, 0));
    return i - first;
}

/* text, prompt-completion, conversations and pre-tokenized records: the stream
   prepares them as the in-memory dataset does, pass after pass */
static void a_stream_gives_the_rows_of_the_in_memory_dataset(void) {
    static const char *const text[] = {"{\"text\": \"Hello world\"}", "{\"text\": \"\"}", "{\"text\": \"A second, longer line of text.\"}",
                                       "{\"text\": \"third\"}"};
    static const char *const pc[] = {"{\"prompt\": \"2+2=\", \"completion\": \"4\"}", "{\"prompt\": \"Say hi:\", \"completion\": \" hi there\"}",
                                     "{\"prompt\": \"x\", \"completion\": \"y\"}"};
    static const char *const conv[] = {
        "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello!\"}]}",
        "{\"messages\": [{\"role\": \"user\", \"content\": \"2+2?\"}, {\"role\": \"assistant\", \"content\": \"4\"}]}"};
    const char *const *sets[4];
    int ns[4] = {4, 3, 2, 0}, set;
    char **ids = t_id_recs(9, 0);
    sft_context *ctx = t_context(1);
    sft_tokenizer *tok = NULL;
    sets[0] = text; sets[1] = pc; sets[2] = conv; sets[3] = (const char *const *)ids; ns[3] = 9;
    CHECK_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", &tok));
    for (set = 0; tok && set < 4; set++) {
        sft_data_desc d = t_desc(0);
        sft_dataset *mem = NULL, *st;
        t_src src;
        int pass;
        char what[64];
        memset(&src, 0, sizeof src);
        src.recs = (char **)sets[set]; src.n = ns[set];
        CHECK_OK(sft_dataset_from_records(ctx, tok, sets[set], ns[set], &d, &mem));
        st = t_stream_of(ctx, tok, &src, &d, 0);
        CHECK(sft_dataset_is_stream(st) && !sft_dataset_is_stream(mem));
        for (pass = 0; mem && st && pass < 2; pass++) {
            snprintf(what, sizeof what, "format %d, pass %d", set, pass);
            t_same_rows(ctx, mem, 0, st, 2, what);
            CHECK_OK(sft_dataset_stream_rewind(st));
        }
        if (mem && st) CHECK_MSG(sft_dataset_stats(st).rows_read == 2 * ns[set] && sft_dataset_stats(st).dropped_empty == 2 * sft_dataset_stats(mem).dropped_empty,
                                 "format %d: the stream's counts (read %lld, empty %lld)", set, (long long)sft_dataset_stats(st).rows_read,
                                 (long long)sft_dataset_stats(st).dropped_empty);
        sft_dataset_destroy(mem);
        sft_dataset_destroy(st);
    }
    {   /* a stream has no eval split */
        sft_data_desc d = t_desc(0);
        sft_dataset *st = NULL;
        sft_stream_desc s;
        memset(&s, 0, sizeof s);
        s.next = t_src_next; s.rewind = t_src_rewind;
        d.eval_fraction = 0.25f;
        CHECK(sft_dataset_stream(ctx, tok, &s, &d, &st) == SFT_ERR_ARG && !st && strstr(sft_last_error(), "eval split"));
    }
    t_free_recs(ids, 9);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
}

/* ---- training --------------------------------------------------------------------- */

static sft_model *t_lora_model(sft_context *ctx) {
    sft_model *m = NULL;
    CHECK_OK(t_tiny_model(ctx, 0, &m));
    return m;
}

/* what a run logged and the epoch events it sent */
typedef struct t_record {
    int64_t step[32];
    double  epoch[32], loss[32];
    int     n_logs;
    int     ev[32][2];          /* [0 begin / 1 end, global_step] */
    int     n_ev;
    float  *adapter;
    int64_t n_adapter;
} t_record;

static void t_on_log(const sft_log_entry *e, void *user) {
    t_record *r = (t_record *)user;
    if (!e->is_eval && r->n_logs < 32) { r->step[r->n_logs] = e->global_step; r->epoch[r->n_logs] = e->epoch; r->loss[r->n_logs++] = e->loss; }
}

static sft_status t_on_event(const sft_callback_args *a, sft_trainer_control *c, void *user) {
    t_record *r = (t_record *)user;
    (void)c;
    if ((a->event == SFT_EVENT_EPOCH_BEGIN || a->event == SFT_EVENT_EPOCH_END) && r->n_ev < 32) {
        r->ev[r->n_ev][0] = a->event == SFT_EVENT_EPOCH_END;
        r->ev[r->n_ev++][1] = (int)a->global_step;
    }
    return SFT_OK;
}

typedef struct t_case { int rows, batch, accumulation, max_steps; } t_case;

static void t_config(sft_train_config *c, const t_case *k, t_record *r, sft_callback *cb) {
    memset(c, 0, sizeof *c);
    c->per_device_train_batch_size = k->batch; c->gradient_accumulation_steps = k->accumulation; c->max_steps = k->max_steps;
    c->learning_rate = 1e-3; c->logging_steps = 1; c->sequential = 1; c->lr_scheduler_type = SFT_SCHEDULE_LINEAR; c->warmup_steps = 2;
    c->on_log = t_on_log; c->user = r;
    cb->fn = t_on_event; cb->user = r;
    c->callbacks = cb; c->n_callbacks = 1;
}

/* a run of case k on the in-memory dataset (stream 0) or a stream; stop_at > 0:
   stopped after that step and saved, then resumed in a new model, trainer and
   stream (a new process) */
static void t_train(const t_case *k, int stream, int stop_at, const char *dir, t_record *r) {
    sft_context *ctx = t_context(2);
    sft_tokenizer *tok = NULL;
    sft_model *m = t_lora_model(ctx);
    sft_dataset *ds = NULL;
    char **recs = t_id_recs(k->rows, 0);
    sft_data_desc d = t_desc(0);
    sft_train_config c;
    sft_callback cb;
    sft_train_output out;
    t_src src;
    memset(r, 0, sizeof *r);
    memset(&src, 0, sizeof src);
    src.recs = recs; src.n = k->rows;
    CHECK_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", &tok));
    if (tok && stream) ds = t_stream_of(ctx, tok, &src, &d, 0);
    else if (tok) CHECK_OK(sft_dataset_from_records(ctx, tok, (const char *const *)recs, k->rows, &d, &ds));
    t_config(&c, k, r, &cb);
    if (m && ds && !stop_at) CHECK_OK(sft_train(m, ds, &c, &out));
    else if (m && ds) {
        sft_trainer *tr = NULL;
        sft_step_info info;
        int s;
        c.output_dir = dir;
        CHECK_OK(sft_trainer_create(m, ds, &c, &tr));
        for (s = 0; tr && s < stop_at; s++) CHECK_OK(sft_trainer_step(tr, &info));
        if (tr) CHECK_OK(sft_trainer_save(tr));
        sft_trainer_destroy(tr);
        sft_model_destroy(m);
        sft_dataset_destroy(ds);
        ds = t_stream_of(ctx, tok, &src, &d, 0);
        m = t_lora_model(ctx);
        c.resume_from_checkpoint = "last";
        if (m && ds) CHECK_OK(sft_train(m, ds, &c, &out));
    }
    if (m) r->adapter = t_tiny_adapter(m, &r->n_adapter);
    sft_dataset_destroy(ds);
    sft_model_destroy(m);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
    t_free_recs(recs, k->rows);
}

static int t_same_adapter(const t_record *a, const t_record *b) {
    return a->adapter && b->adapter && a->n_adapter == b->n_adapter && a->n_adapter > 0 &&
           memcmp(a->adapter, b->adapter, (size_t)a->n_adapter * sizeof(float)) == 0;
}

/* The fixture's cases (10 rows, batch 2, 8 steps: the second pass opens at step
   6; 12 rows, batch 2 x 3, 5 steps: passes of two windows): the stream's losses
   and adapter equal the in-memory dataset's in order, bit for bit; the logged
   epoch and the epoch events are transformers'. */
static void training_on_a_stream_equals_the_in_memory_dataset_in_order(void) {
    sft_context *ctx = t_context(1);
    sft_json *fx = t_json_file(ctx, "tests/fixtures/trainer/stream.json");
    const sft_json *runs = fx ? sft_json_get(fx, "runs") : NULL;
    size_t i;
    for (i = 0; runs && i < runs->length; i++) {
        const sft_json *fr = &runs->items[i], *ep = sft_json_get(fr, "epochs"), *ev = sft_json_get(fr, "events");
        t_case k;
        t_record mem, st;
        int j;
        k.rows = (int)sft_json_get(fr, "rows")->number; k.batch = (int)sft_json_get(fr, "batch")->number;
        k.accumulation = (int)sft_json_get(fr, "accumulation")->number; k.max_steps = (int)sft_json_get(fr, "max_steps")->number;
        t_train(&k, 0, 0, NULL, &mem);
        t_train(&k, 1, 0, NULL, &st);
        CHECK_MSG(t_same_adapter(&mem, &st), "case %zu: the stream's adapter differs from the in-memory run's", i);
        CHECK_MSG(st.n_logs == k.max_steps && (size_t)st.n_logs == ep->length, "case %zu: %d log entries, transformers %zu", i, st.n_logs, ep->length);
        for (j = 0; j < st.n_logs && j < mem.n_logs && (size_t)j < ep->length; j++) {
            double want = ep->items[j].items[1].number;
            CHECK_MSG(memcmp(&st.loss[j], &mem.loss[j], sizeof(double)) == 0, "case %zu step %lld: loss %.9g (stream) vs %.9g", i,
                      (long long)st.step[j], st.loss[j], mem.loss[j]);
            CHECK_MSG(st.step[j] == (int64_t)ep->items[j].items[0].number && fabs(st.epoch[j] - want) < 1e-12,
                      "case %zu: step %lld logged epoch %.17g, transformers %.17g", i, (long long)st.step[j], st.epoch[j], want);
        }
        CHECK_MSG((size_t)st.n_ev == ev->length, "case %zu: %d epoch events, transformers %zu", i, st.n_ev, ev->length);
        for (j = 0; j < st.n_ev && (size_t)j < ev->length; j++) {
            int end = strcmp(ev->items[j].items[0].string, "on_epoch_end") == 0, step = (int)ev->items[j].items[1].number;
            CHECK_MSG(st.ev[j][0] == end && st.ev[j][1] == step, "case %zu event %d: %s at step %d, transformers %s at step %d", i, j,
                      st.ev[j][0] ? "EPOCH_END" : "EPOCH_BEGIN", st.ev[j][1], end ? "on_epoch_end" : "on_epoch_begin", step);
        }
        free(mem.adapter); free(st.adapter);
    }
    CHECK(runs && runs->length == 2);
    sft_json_free(fx);
    sft_context_destroy(ctx);
}

/* a pass whose micro-batches do not fill the last window: that window is short
   and steps (as the last window of an epoch with a length), so the stream still
   equals the in-memory run (10 rows, batch 2 x 2: windows 2, 2, 1 per pass) */
static void a_stream_steps_the_short_window_at_a_pass_end(void) {
    t_case k;
    t_record mem, st;
    k.rows = 10; k.batch = 2; k.accumulation = 2; k.max_steps = 5;
    t_train(&k, 0, 0, NULL, &mem);
    t_train(&k, 1, 0, NULL, &st);
    CHECK_MSG(t_same_adapter(&mem, &st), "the stream's adapter differs from the in-memory run's");
    CHECK(st.n_logs == 5 && fabs(st.epoch[2] - 5.0 / 10.0) < 1e-12 && fabs(st.epoch[3] - (1.0 + 2.0 / 10.0)) < 1e-12);
    free(mem.adapter); free(st.adapter);
}

/* stopped mid-pass, at the step a pass ends with a full window, and in the
   second pass: the resumed run (a new stream that skips the records already
   trained) ends with the uninterrupted run's adapter and log, bit for bit */
static void a_resumed_stream_run_is_bit_identical(void) {
    static const int stops[4][2] = {{0, 3}, {0, 5}, {0, 7}, {1, 2}};   /* case, stop after step */
    t_case cases[2];
    t_record whole[2];
    int c, s;
    cases[0].rows = 10; cases[0].batch = 2; cases[0].accumulation = 1; cases[0].max_steps = 8;
    cases[1].rows = 12; cases[1].batch = 2; cases[1].accumulation = 3; cases[1].max_steps = 5;
    for (c = 0; c < 2; c++) t_train(&cases[c], 1, 0, NULL, &whole[c]);
    for (s = 0; s < 4; s++) {
        t_record r;
        char dir[600];
        int j;
        c = stops[s][0];
        snprintf(dir, sizeof dir, "%s/stream-resume-%d", t_tmpdir(), s);
        t_train(&cases[c], 1, stops[s][1], dir, &r);
        CHECK_MSG(t_same_adapter(&whole[c], &r), "case %d stopped after step %d: the resumed adapter differs", c, stops[s][1]);
        CHECK_MSG(r.n_logs == cases[c].max_steps, "case %d stopped after step %d: %d log entries", c, stops[s][1], r.n_logs);
        for (j = 0; j < r.n_logs && j < whole[c].n_logs; j++)
            CHECK_MSG(r.epoch[j] == whole[c].epoch[j] && memcmp(&r.loss[j], &whole[c].loss[j], sizeof(double)) == 0,
                      "case %d stopped after step %d: log %d (epoch %.17g loss %.9g) vs (%.17g, %.9g)", c, stops[s][1], j, r.epoch[j], r.loss[j],
                      whole[c].epoch[j], whole[c].loss[j]);
        free(r.adapter);
    }
    for (c = 0; c < 2; c++) free(whole[c].adapter);
}

/* max_steps is required (transformers' rule, named); evaluation and prediction
   are on in-memory datasets */
static void a_stream_needs_max_steps(void) {
    sft_context *ctx = t_context(1);
    sft_tokenizer *tok = NULL;
    sft_model *m = t_lora_model(ctx);
    char **recs = t_id_recs(4, 0);
    sft_data_desc d = t_desc(0);
    sft_dataset *st = NULL, *mem = NULL;
    sft_trainer *tr = NULL;
    sft_train_config c;
    sft_log_entry e;
    t_src src;
    memset(&src, 0, sizeof src);
    src.recs = recs; src.n = 4;
    CHECK_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", &tok));
    if (tok) { st = t_stream_of(ctx, tok, &src, &d, 0); CHECK_OK(sft_dataset_from_records(ctx, tok, (const char *const *)recs, 4, &d, &mem)); }
    if (m && st && mem) {
        memset(&c, 0, sizeof c);
        c.num_train_epochs = 2;
        CHECK(sft_trainer_create(m, st, &c, &tr) == SFT_ERR_ARG && !tr);
        CHECK_MSG(strstr(sft_last_error(), "max_steps must be set to a positive value") && strstr(sft_last_error(), "does not have a length"),
                  "%s", sft_last_error());
        c.max_steps = 2; c.eval_dataset = st; c.eval_steps = 1;
        CHECK(sft_trainer_create(m, mem, &c, &tr) == SFT_ERR_ARG && !tr && strstr(sft_last_error(), "in-memory"));
        c.eval_dataset = NULL; c.eval_steps = 0;
        CHECK_OK(sft_trainer_create(m, st, &c, &tr));
        if (tr) CHECK(sft_trainer_predict(tr, st, &e) == SFT_ERR_ARG && strstr(sft_last_error(), "stream"));
        sft_trainer_destroy(tr);
    }
    sft_dataset_destroy(st); sft_dataset_destroy(mem);
    sft_model_destroy(m);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
    t_free_recs(recs, 4);
}

/* ---- JSONL, packing, bad records ---------------------------------------------------- */

static char *t_write_jsonl(const char *name, char **recs, int n, int blank_every) {
    static char path[600];
    FILE *f;
    int i;
    snprintf(path, sizeof path, "%s/%s", t_tmpdir(), name);
    f = fopen(path, "w");
    if (!f) return NULL;
    for (i = 0; i < n; i++) {
        fprintf(f, "%s\n", recs[i]);
        if (blank_every && i % blank_every == 0) fprintf(f, "  \n");
    }
    fclose(f);
    return path;
}

/* 300 records (about 25 KB, lines up to 90 bytes, blank lines between) through
   a 64-byte buffer: the rows of sft_dataset_load of the same file, twice over */
static void a_jsonl_stream_reads_a_file_larger_than_its_buffer(void) {
    sft_context *ctx = t_context(1);
    sft_tokenizer *tok = NULL;
    char **recs = t_id_recs(300, 3);
    const char *path = t_write_jsonl("stream.jsonl", recs, 300, 7);
    sft_data_desc d = t_desc(0);
    sft_dataset *mem = NULL, *st = NULL;
    sft_stream_desc o;
    int pass;
    memset(&o, 0, sizeof o);
    o.read_size = 64;
    CHECK_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", &tok));
    if (tok && path) {
        CHECK_OK(sft_dataset_load(ctx, tok, path, &d, &mem));
        CHECK_OK(sft_dataset_stream_jsonl(ctx, tok, path, &o, &d, &st));
    }
    for (pass = 0; mem && st && pass < 2; pass++) {
        CHECK(t_same_rows(ctx, mem, 0, st, 7, "jsonl") == 300);
        CHECK_OK(sft_dataset_stream_rewind(st));
    }
    sft_dataset_destroy(st);
    st = mem;
    CHECK(sft_dataset_stream_jsonl(ctx, tok, "/no/such/file.jsonl", NULL, &d, &st) == SFT_ERR_IO && !st);
    sft_dataset_destroy(mem);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
    t_free_recs(recs, 300);
}

/* Packing: by default a stream packs blocks of 1000 examples as the in-memory
   dataset does (TRL's batched map), the same bins; with pack_buffer 37 the bins
   are those of in-memory datasets of each 37 consecutive records on their own
   (no bin mixes two blocks) */
static void packing_on_a_stream_packs_bounded_blocks(void) {
    sft_context *ctx = t_context(1);
    sft_tokenizer *tok = NULL;
    enum { N = 2100, B = 37 };
    char **recs = t_id_recs(N, 1);
    sft_data_desc d = t_desc(1);
    sft_dataset *mem = NULL, *st = NULL;
    t_src src;
    int64_t first = 0;
    int b;
    memset(&src, 0, sizeof src);
    src.recs = recs; src.n = N;
    CHECK_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", &tok));
    if (tok) {
        CHECK_OK(sft_dataset_from_records(ctx, tok, (const char *const *)recs, N, &d, &mem));
        st = t_stream_of(ctx, tok, &src, &d, 0);
    }
    if (mem && st) {
        CHECK(t_same_rows(ctx, mem, 0, st, 5, "packed, blocks of 1000") == sft_dataset_rows(mem, 0));
        CHECK(sft_dataset_stats(st).bins == sft_dataset_stats(mem).bins);
    }
    sft_dataset_destroy(st);
    sft_dataset_destroy(mem);
    st = tok ? t_stream_of(ctx, tok, &src, &d, B) : NULL;
    if (st) CHECK_OK(sft_dataset_stream_rewind(st));
    for (b = 0; st && b * B < N; b++) {       /* the stream's rows, block by block */
        sft_dataset *blk = NULL;
        int n = N - b * B < B ? N - b * B : B;
        int64_t got, k;
        CHECK_OK(sft_dataset_from_records(ctx, tok, (const char *const *)recs + b * B, n, &d, &blk));
        if (!blk) break;
        CHECK_OK(sft_dataset_stream_fill(st, sft_dataset_rows(blk, 0), &got));
        CHECK_MSG(got == sft_dataset_rows(blk, 0), "block %d: %lld rows, alone it packs into %lld", b, (long long)got, (long long)sft_dataset_rows(blk, 0));
        for (k = 0; k < got; k++) CHECK_MSG(t_same_row(ctx, blk, k, st, k), "block %d bin %lld differs", b, (long long)k);
        first += got;
        sft_dataset_destroy(blk);
    }
    if (st) {
        int64_t got = -1;
        CHECK_OK(sft_dataset_stream_fill(st, 4, &got));
        CHECK_MSG(got == 0 && first > N / 8, "after the last block: %lld rows; %lld bins in all", (long long)got, (long long)first);
    }
    sft_dataset_destroy(st);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
    t_free_recs(recs, N);
}

/* a bad record stops the stream with its place (record number, or file:line);
   with skip_bad_records it is counted and skipped */
static void a_bad_record_in_a_stream_is_named(void) {
    sft_context *ctx = t_context(1);
    sft_tokenizer *tok = NULL;
    char **recs = t_id_recs(6, 0);
    sft_data_desc d = t_desc(0);
    sft_dataset *st = NULL;
    t_src src;
    int64_t got = 0;
    const char *path;
    free(recs[4]);
    recs[4] = strdup("{\"input_ids\": [1, 2,");
    memset(&src, 0, sizeof src);
    src.recs = recs; src.n = 6;
    CHECK_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", &tok));
    if (tok) st = t_stream_of(ctx, tok, &src, &d, 0);
    if (st) {
        CHECK_OK(sft_dataset_stream_fill(st, 3, &got));
        CHECK(got == 3);
        CHECK(sft_dataset_stream_fill(st, 3, &got) == SFT_ERR_FORMAT && got == 0);
        CHECK_MSG(strstr(sft_last_error(), "record 4") != NULL, "%s", sft_last_error());
    }
    sft_dataset_destroy(st);
    path = t_write_jsonl("bad.jsonl", recs, 6, 0);
    if (tok && path) {
        char want[700];
        st = NULL;
        CHECK_OK(sft_dataset_stream_jsonl(ctx, tok, path, NULL, &d, &st));
        if (st) CHECK(sft_dataset_stream_fill(st, 10, &got) == SFT_ERR_FORMAT);
        snprintf(want, sizeof want, "%s:5", path);
        CHECK_MSG(strstr(sft_last_error(), want) != NULL, "%s", sft_last_error());
        sft_dataset_destroy(st);
    }
    d.skip_bad_records = 1;
    st = tok ? t_stream_of(ctx, tok, &src, &d, 0) : NULL;
    if (st) {
        CHECK_OK(sft_dataset_stream_fill(st, 10, &got));
        CHECK_MSG(got == 5 && sft_dataset_stats(st).dropped_malformed == 1, "%lld rows, %lld malformed", (long long)got, (long long)sft_dataset_stats(st).dropped_malformed);
    }
    sft_dataset_destroy(st);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
    t_free_recs(recs, 6);
}

void suite_stream(void);
void suite_stream(void) {
    RUN(a_stream_gives_the_rows_of_the_in_memory_dataset);
    RUN(training_on_a_stream_equals_the_in_memory_dataset_in_order);
    RUN(a_stream_steps_the_short_window_at_a_pass_end);
    RUN(a_resumed_stream_run_is_bit_identical);
    RUN(a_stream_needs_max_steps);
    RUN(a_jsonl_stream_reads_a_file_larger_than_its_buffer);
    RUN(packing_on_a_stream_packs_bounded_blocks);
    RUN(a_bad_record_in_a_stream_is_named);
}
