/* test_data.c - SFT data as TRL prepares it: tokens and labels against the
   fixtures tools/make_data_fixtures.py wrote with TRL (formats, masks, chat
   templates, packing), a packed batch against the same sequences one at a
   time, statistics, and malformed input. */
#include "test.h"
#include <sys/stat.h>

#define T_DFIX "tests/fixtures/data/"
#define T_TOK "tests/fixtures/tokenizers/"

static sft_tokenizer *t_tok(sft_context *ctx, const char *family) {
    char dir[256];
    sft_tokenizer *t = NULL;
    snprintf(dir, sizeof dir, T_TOK "%s", family);
    CHECK_OK(sft_tokenizer_load(ctx, dir, &t));
    return t;
}

static const char *const t_texts[] = {
    "{\"text\": \"The quick brown fox jumps over the lazy dog.\"}",
    "{\"text\": \"Hello world\"}",
    "{\"text\": \"A somewhat longer line of text that takes more tokens than the others do, to make bins uneven.\"}",
    "{\"text\": \"Short.\"}",
    "{\"text\": \"caf\\u00e9 na\\u00efve r\\u00e9sum\\u00e9\"}",
    "{\"text\": \"Numbers 12345 and symbols !?\"}"};

/* the loss (sum over tokens) and every LoRA gradient of a batch */
typedef struct t_grads { float loss; float *g; int64_t n; } t_grads;

static void t_collect(sft_model *m, t_grads *acc) {
    int layer, p, ab;
    static const char *const names[7] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
    int64_t k = 0;
    for (layer = 0; layer < 2; layer++)
        for (p = 0; p < 7; p++) {
            sft_lora_weights w;
            if (sft_linear_adapter_weights(sft_model_linear(m, layer, names[p]), "default", &w) != SFT_OK) continue;
            for (ab = 0; ab < 2; ab++) {
                sft_tensor *t = ab ? w.B : w.A;
                int64_t n = sft_tensor_numel(t), i;
                if (!acc->g) continue;
                for (i = 0; i < n && t->grad; i++) acc->g[k + i] = ((float *)t->grad->data)[i];
                k += n;
            }
        }
    acc->n = k;
}

static void t_zero_grads(sft_model *m) {
    int layer, p;
    static const char *const names[7] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
    for (layer = 0; layer < 2; layer++)
        for (p = 0; p < 7; p++) {
            sft_lora_weights w;
            if (sft_linear_adapter_weights(sft_model_linear(m, layer, names[p]), "default", &w) != SFT_OK) continue;
            sft_tensor_zero_grad(w.A); sft_tensor_zero_grad(w.B);
        }
}

static float t_run_sum(sft_context *ctx, sft_model *m, sft_tensor *ids, sft_tensor *labels, sft_tensor *seq, sft_tensor *pos) {
    sft_model_batch b;
    sft_model_run run;
    sft_model_output out;
    float loss = NAN;
    memset(&b, 0, sizeof b); memset(&run, 0, sizeof run);
    b.input_ids = ids; b.labels = labels; b.seq_ids = seq; b.positions = pos;
    run.training = 1; run.loss.reduction = SFT_CE_SUM;
    CHECK_OK(sft_model_forward(m, &b, &run, &out));
    if (out.loss) { loss = *(float *)out.loss->data; CHECK_OK(sft_backward(ctx, out.loss)); }
    return loss;
}

/* A packed, padding-free batch (sequence ids, restarting positions, first
   labels -100) gives the summed loss and the gradients of its sequences run
   one at a time. Token ids are folded into the tiny model's vocabulary. */
static void a_packed_batch_equals_its_sequences_one_at_a_time(void) {
    sft_context *ctx = t_context(2);
    sft_tokenizer *tok = t_tok(ctx, "qwen2");
    sft_model *m = NULL;
    sft_dataset *ds = NULL;
    sft_data_desc d;
    sft_batch b;
    sft_lora_desc ld;
    t_grads packed = {0, NULL, 0}, single = {0, NULL, 0};
    int64_t i, start;
    float sum = 0.0f;
    memset(&d, 0, sizeof d);
    d.max_length = 32; d.packing = 1;
    CHECK_OK(sft_model_load(ctx, "tests/fixtures/models/llama", NULL, &m));
    if (tok) CHECK_OK(sft_dataset_from_records(ctx, tok, t_texts, 6, &d, &ds));
    if (!m || !ds) goto done;
    CHECK(sft_dataset_stats(ds).bins >= 2 && sft_dataset_stats(ds).bins < 6);
    memset(&ld, 0, sizeof ld);
    ld.r = 4; ld.alpha = 8;
    CHECK_OK(sft_model_add_lora(m, "default", &ld, "all-linear"));
    { /* B non-zero so that every gradient is */
        int layer, p;
        for (layer = 0; layer < 2; layer++)
            for (p = 0; p < 7; p++) {
                static const char *const names[7] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
                sft_lora_weights w;
                uint64_t seed = (uint64_t)(layer * 7 + p + 1);
                if (sft_linear_adapter_weights(sft_model_linear(m, layer, names[p]), "default", &w) != SFT_OK) continue;
                for (i = 0; i < sft_tensor_numel(w.B); i++) ((float *)w.B->data)[i] = t_rand(&seed, -0.05f, 0.05f);
            }
    }
    packed.g = (float *)calloc(100000, 4); single.g = (float *)calloc(100000, 4);
    sft_step_begin(ctx);
    CHECK_OK(sft_dataset_batch(ds, 0, 0, 0, 0, sft_dataset_rows(ds, 0), &b));
    if (!b.input_ids) goto done;
    CHECK(b.input_ids->shape[0] == 1 && b.n_examples == 6);
    for (i = 0; i < b.tokens; i++) {
        int32_t *id = (int32_t *)b.input_ids->data + i, *lab = (int32_t *)b.labels->data + i;
        *id %= 256;
        if (*lab != -100) *lab %= 256;
        if (((int32_t *)b.positions->data)[i] == 0) CHECK(*lab == -100);
    }
    packed.loss = t_run_sum(ctx, m, b.input_ids, b.labels, b.seq_ids, b.positions);
    t_collect(m, &packed);
    t_zero_grads(m);
    /* each sequence alone, gradients accumulating */
    for (start = 0; start < b.tokens;) {
        int64_t len = 1, shape[2];
        sft_tensor *ids = NULL, *lab = NULL;
        while (start + len < b.tokens && ((int32_t *)b.positions->data)[start + len] != 0) len++;
        shape[0] = 1; shape[1] = len;
        CHECK_OK(sft_tensor_create(ctx, SFT_I32, 2, shape, &ids)); CHECK_OK(sft_tensor_create(ctx, SFT_I32, 2, shape, &lab));
        if (ids && lab) {
            memcpy(ids->data, (int32_t *)b.input_ids->data + start, (size_t)len * 4);
            memcpy(lab->data, (int32_t *)b.labels->data + start, (size_t)len * 4);
            sum += t_run_sum(ctx, m, ids, lab, NULL, NULL);
        }
        sft_tensor_destroy(ids); sft_tensor_destroy(lab);
        start += len;
    }
    t_collect(m, &single);
    CHECK_MSG(fabsf(packed.loss - sum) <= 1e-5f * fabsf(sum), "packed loss %.9g, one at a time %.9g", packed.loss, sum);
    CHECK(packed.n == single.n && packed.n > 0);
    if (packed.n == single.n) CHECK_REL("gradients", packed.g, single.g, packed.n, 1e-4);
done:
    free(packed.g); free(single.g);
    sft_dataset_destroy(ds);
    sft_model_destroy(m);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
}

static void t_bad_records(sft_context *ctx, sft_tokenizer *tok, const char *const *recs, int n, const sft_data_desc *d, sft_status want,
                          const char *mention) {
    sft_dataset *ds = (sft_dataset *)1;
    CHECK_STATUS(sft_dataset_from_records(ctx, tok, recs, n, d, &ds), want);
    CHECK_ERROR_MENTIONS(mention);
    CHECK(ds == NULL);
}

static void malformed_records_are_refused_or_counted(void) {
    sft_context *ctx = t_context(1);
    sft_tokenizer *tok = t_tok(ctx, "qwen2");
    sft_data_desc d;
    sft_dataset *ds = NULL;
    static const char *const not_json[] = {"{\"text\": \"fine\"}", "{\"text\": oops}"};
    static const char *const no_field[] = {"{\"body\": \"x\"}"};
    static const char *const mixed[] = {"{\"text\": \"a\"}", "{\"prompt\": \"a\", \"completion\": \"b\"}"};
    static const char *const role[] = {"{\"messages\": [{\"speaker\": \"robot\", \"content\": \"hi\"}]}"};
    static const char *const no_asst[] = {"{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}"};
    static const char *const bad_utf8[] = {"{\"text\": \"ok\"}", "{\"text\": \"\\ud800\"}"};
    static const char *const long_prompt[] = {"{\"prompt\": \"one two three four five six seven eight nine ten eleven twelve\", \"completion\": \" end\"}",
                                              "{\"prompt\": \"a\", \"completion\": \" b\"}"};
    static const char *const empty[] = {"{\"text\": \"\"}", "{\"text\": \"x\"}"};
    if (!tok) goto done;
    memset(&d, 0, sizeof d);
    t_bad_records(ctx, tok, not_json, 2, &d, SFT_ERR_FORMAT, "record 1");
    t_bad_records(ctx, tok, no_field, 1, &d, SFT_ERR_FORMAT, "\"text\"");
    t_bad_records(ctx, tok, mixed, 2, &d, SFT_ERR_FORMAT, "mixed formats");
    t_bad_records(ctx, tok, role, 1, &d, SFT_ERR_FORMAT, "lacks a string \"role\"");
    d.assistant_only_loss = 1;       /* ChatML with {% generation %}: nothing to train without an assistant turn */
    d.chat_template_text = "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' }}{% if m.role == 'assistant' %}{% generation %}"
                           "{{ m.content + '<|im_end|>\\n' }}{% endgeneration %}{% else %}{{ m.content + '<|im_end|>\\n' }}{% endif %}{% endfor %}";
    t_bad_records(ctx, tok, no_asst, 1, &d, SFT_ERR_FORMAT, "no assistant tokens");
    d.chat_template_text = NULL;     /* the qwen2 fixture's ChatML has no markers and is not TRL's: TRL's error */
    t_bad_records(ctx, tok, no_asst, 1, &d, SFT_ERR_UNSUPPORTED, "not training-compatible");
    d.assistant_only_loss = 0;
    t_bad_records(ctx, tok, bad_utf8, 2, &d, SFT_ERR_FORMAT, "record 1");
    d.skip_bad_records = 1;
    CHECK_OK(sft_dataset_from_records(ctx, tok, not_json, 2, &d, &ds));
    if (ds) { CHECK(sft_dataset_stats(ds).dropped_malformed == 1 && sft_dataset_stats(ds).rows_kept == 1); sft_dataset_destroy(ds); ds = NULL; }
    CHECK_OK(sft_dataset_from_records(ctx, tok, empty, 2, &d, &ds));
    if (ds) { CHECK(sft_dataset_stats(ds).dropped_empty == 1); sft_dataset_destroy(ds); ds = NULL; }
    d.max_length = 4;     /* the first prompt alone is longer: nothing left to train */
    CHECK_OK(sft_dataset_from_records(ctx, tok, long_prompt, 2, &d, &ds));
    if (ds) {
        sft_data_stats st = sft_dataset_stats(ds);
        CHECK(st.dropped_untrained == 1 && st.truncated == 1 && st.rows_kept == 1 && st.rows_read == 2);
        sft_dataset_destroy(ds); ds = NULL;
    }
    d.max_length = -2;
    t_bad_records(ctx, tok, empty, 2, &d, SFT_ERR_ARG, "max_length");
    d.max_length = 0;
    d.completion_only_loss = (sft_toggle)-1;     /* the integer "off" of earlier versions: now SFT_OFF */
    t_bad_records(ctx, tok, empty, 2, &d, SFT_ERR_ARG, "completion_only_loss -1");
    {   /* a file: the line number is reported */
        char path[600];
        FILE *f;
        snprintf(path, sizeof path, "%s/bad.jsonl", t_tmpdir());
        f = fopen(path, "w");
        if (f) { fputs("{\"text\": \"a\"}\n\n{\"text\": 5}\n", f); fclose(f); }
        memset(&d, 0, sizeof d);
        CHECK_STATUS(sft_dataset_load(ctx, tok, path, &d, &ds), SFT_ERR_FORMAT);
        CHECK_ERROR_MENTIONS("bad.jsonl:3");
        CHECK(ds == NULL);
        CHECK_STATUS(sft_dataset_load(ctx, tok, "tests/fixtures/nowhere.jsonl", &d, &ds), SFT_ERR_IO);
    }
done:
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
}

/* a JSON value written back as text (records of the fixture) */
static void t_write_json(sft_json_writer *w, const sft_json *v) {
    size_t i;
    switch (v->type) {
    case SFT_JSON_OBJECT:
        sft_json_write_object_begin(w);
        for (i = 0; i < v->length; i++) { sft_json_write_key(w, v->keys[i]); t_write_json(w, &v->items[i]); }
        sft_json_write_object_end(w);
        break;
    case SFT_JSON_ARRAY:
        sft_json_write_array_begin(w);
        for (i = 0; i < v->length; i++) t_write_json(w, &v->items[i]);
        sft_json_write_array_end(w);
        break;
    case SFT_JSON_STRING: sft_json_write_string_n(w, v->string, v->length); break;
    case SFT_JSON_NUMBER: sft_json_write_number(w, v->number); break;
    case SFT_JSON_TRUE: sft_json_write_bool(w, 1); break;
    case SFT_JSON_FALSE: sft_json_write_bool(w, 0); break;
    default: sft_json_write_null(w); break;
    }
}

/* got[0..n) equals the fixture's list of ints */
static int t_ints_equal(const char *what, const char *cs, const int32_t *got, int64_t n, const sft_json *want) {
    int64_t i;
    if (!want || want->type != SFT_JSON_ARRAY) { t_failf(__FILE__, __LINE__, "%s %s: not in the fixture", cs, what); return 0; }
    for (i = 0; i < n && i < (int64_t)want->length; i++)
        if (got[i] != (int32_t)want->items[i].number) break;
    if (i == n && n == (int64_t)want->length) return 1;
    t_failf(__FILE__, __LINE__, "%s: %s differ at [%lld] (%lld values, TRL %zu): %d vs TRL %d", cs, what, (long long)i, (long long)n,
            want->length, i < n ? got[i] : -1, i < (int64_t)want->length ? (int)want->items[i].number : -1);
    return 0;
}

/* flatten a [B][T] JSON list */
static const sft_json *t_flat_at(const sft_json *rows, int64_t k, int64_t *T) {
    *T = rows->length ? (int64_t)rows->items[0].length : 0;
    return &rows->items[k];
}

/* One TRL case: records through sft.h with the case's options; the collated
   batch (all rows in dataset order) must be TRL's, and so must each rendered
   conversation. */
static void t_trl_case(sft_context *ctx, const sft_json *top, const sft_json *c) {
    const char *cs = sft_json_get(c, "name")->string, *fmt = sft_json_get(c, "format")->string;
    const sft_json *opt = sft_json_get(c, "options"), *recs = sft_json_get(c, "records"), *batch = sft_json_get(c, "batch");
    const sft_json *ml = sft_json_get(opt, "max_length"), *tmpl = sft_json_get(opt, "template_used"), *rendered = sft_json_get(c, "rendered");
    sft_tokenizer *tok = NULL;
    sft_dataset *ds = NULL;
    sft_data_desc d;
    char **texts = NULL;
    sft_batch b;
    size_t i;
    int64_t rows;
    CHECK_OK(sft_tokenizer_load(ctx, sft_json_get(c, "tokenizer")->string, &tok));
    if (!tok) return;
    memset(&d, 0, sizeof d);
    d.max_length = ml && ml->type == SFT_JSON_NUMBER ? (int)ml->number : -1;
    d.packing = sft_json_get(opt, "packing")->type == SFT_JSON_TRUE;
    d.padding_free = sft_json_get(opt, "padding_free")->type == SFT_JSON_TRUE;
    d.dataset_text_field = sft_json_get(opt, "dataset_text_field")->string;
    d.completion_only_loss = sft_json_get(opt, "completion_only_loss_effective")->type == SFT_JSON_TRUE ? SFT_ON : SFT_OFF;
    d.assistant_only_loss = sft_json_get(opt, "assistant_only_loss")->type == SFT_JSON_TRUE;
    if (tmpl && tmpl->type == SFT_JSON_STRING && strcmp(tmpl->string, "fixture") != 0)
        d.chat_template_text = sft_json_get(sft_json_get(top, "templates"), tmpl->string)->string;
    texts = (char **)calloc(recs->length, sizeof *texts);
    for (i = 0; i < recs->length; i++) {
        sft_json_writer w;
        size_t len;
        memset(&w, 0, sizeof w);
        w.ctx = ctx;
        t_write_json(&w, &recs->items[i]);
        CHECK_OK(sft_json_writer_finish(&w, &texts[i], &len));
    }
    CHECK_OK(sft_dataset_from_records(ctx, tok, (const char *const *)texts, (int)recs->length, &d, &ds));
    if (!ds) goto done;
    if (rendered && rendered->type == SFT_JSON_ARRAY && strcmp(fmt, "messages") == 0)
        for (i = 0; i < rendered->length && i < recs->length; i++) {
            char *text = NULL;
            const sft_json *want = sft_json_get(&rendered->items[i], "text");
            CHECK_OK(sft_dataset_render(ds, texts[i], 0, &text));
            if (text && want) CHECK_MSG(strcmp(text, want->string) == 0, "%s row %zu: rendered\n%s\nTRL\n%s", cs, i, text, want->string);
            sft_free(ctx, text);
        }
    rows = sft_dataset_rows(ds, 0);
    sft_step_begin(ctx);
    CHECK_OK(sft_dataset_batch(ds, 0, 0, 0, 0, rows, &b));
    if (b.input_ids) {
        const sft_json *ids = sft_json_get(batch, "input_ids"), *lab = sft_json_get(batch, "labels");
        const sft_json *pos = sft_json_get(batch, "position_ids"), *am = sft_json_get(batch, "attention_mask");
        int64_t B = b.input_ids->shape[0], T = b.input_ids->shape[1], k, TT;
        CHECK_MSG(ids && (int64_t)ids->length == B, "%s: %lld batch rows, TRL %zu", cs, (long long)B, ids ? ids->length : 0);
        for (k = 0; ids && k < B && k < (int64_t)ids->length; k++) {
            int ok = t_ints_equal("input_ids", cs, (const int32_t *)b.input_ids->data + k * T, T, t_flat_at(ids, k, &TT));
            if (ok) ok = t_ints_equal("labels", cs, (const int32_t *)b.labels->data + k * T, T, t_flat_at(lab, k, &TT));
            if (ok && pos) ok = t_ints_equal("position_ids", cs, (const int32_t *)b.positions->data + k * T, T, t_flat_at(pos, k, &TT));
            if (ok && am) ok = t_ints_equal("attention_mask", cs, (const int32_t *)b.attention_mask->data + k * T, T, t_flat_at(am, k, &TT));
            if (!ok) break;
        }
    }
done:
    for (i = 0; texts && i < recs->length; i++) sft_free(ctx, texts[i]);
    free(texts);
    sft_dataset_destroy(ds);
    sft_tokenizer_destroy(tok);
}

static void tokens_and_labels_match_trl(void) {
    sft_context *ctx = t_context(1);
    size_t c;
    sft_json *j = t_json_file(ctx, T_DFIX "cases.json");
    const sft_json *cases;
    cases = j ? sft_json_get(j, "cases") : NULL;
    CHECK(cases && cases->length >= 30);
    for (c = 0; cases && c < cases->length; c++) t_trl_case(ctx, j, &cases->items[c]);
    sft_json_free(j);
    sft_context_destroy(ctx);
}

/* A folder of .jsonl files loads in name order; the eval fraction is a seeded
   split; the shuffled order is a function of (seed, epoch) only; statistics add
   up. */
static void folders_splits_shuffles_and_statistics(void) {
    sft_context *ctx = t_context(1);
    sft_tokenizer *tok = t_tok(ctx, "qwen2");
    char dir[600], path[700];
    sft_data_desc d;
    sft_dataset *ds = NULL, *ds2 = NULL;
    int i, f;
    snprintf(dir, sizeof dir, "%s/folder", t_tmpdir());
    mkdir(dir, 0777);
    for (f = 0; f < 2; f++) {
        FILE *fp;
        snprintf(path, sizeof path, "%s/part%d.jsonl", dir, f);
        fp = fopen(path, "w");
        for (i = 0; fp && i < 10; i++) fprintf(fp, "{\"text\": \"row %d of file %d says something\"}\n", i, f);
        if (fp) fclose(fp);
    }
    memset(&d, 0, sizeof d);
    d.eval_fraction = 0.2f; d.seed = 5;
    if (tok) CHECK_OK(sft_dataset_load(ctx, tok, dir, &d, &ds));
    if (tok) CHECK_OK(sft_dataset_load(ctx, tok, dir, &d, &ds2));
    if (ds && ds2) {
        sft_data_stats st = sft_dataset_stats(ds);
        sft_batch a, b, c;
        CHECK(st.rows_read == 20 && st.rows_kept == 20 && st.eval_rows == 4);
        CHECK(sft_dataset_rows(ds, 0) == 16 && sft_dataset_rows(ds, 1) == 4);
        CHECK(st.trained_tokens == st.tokens && st.tokens > 100);
        sft_step_begin(ctx);
        CHECK_OK(sft_dataset_batch(ds, 0, 3, 1, 0, 16, &a));
        CHECK_OK(sft_dataset_batch(ds2, 0, 3, 1, 0, 16, &b));    /* another object, same seed and epoch */
        CHECK_OK(sft_dataset_batch(ds, 0, 4, 1, 0, 16, &c));
        if (a.input_ids && b.input_ids && c.input_ids) {
            CHECK(memcmp(a.input_ids->data, b.input_ids->data, sft_tensor_nbytes(a.input_ids)) == 0);
            CHECK(sft_tensor_nbytes(a.input_ids) != sft_tensor_nbytes(c.input_ids) ||
                  memcmp(a.input_ids->data, c.input_ids->data, sft_tensor_nbytes(a.input_ids)) != 0);
            CHECK(a.n_examples == 16 && a.input_ids->shape[0] == 16);
        }
        CHECK_STATUS(sft_dataset_batch(ds, 0, 0, 0, 16, 4, &a), SFT_ERR_ARG);
    }
    sft_dataset_destroy(ds); sft_dataset_destroy(ds2);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
}

/* Template details the fixture templates do not show: a default system prompt
   written with a real newline (SmolLM2's), Llama-2's .strip() of the folded
   system + user text as one string, and its raise_exception on roles that do
   not alternate (expected texts from transformers 4.57.6). */
static void template_variants_render_as_jinja_does(void) {
    sft_context *ctx = t_context(1);
    sft_tokenizer *tok = t_tok(ctx, "qwen2"), *l2tok = t_tok(ctx, "llama2");
    sft_data_desc d;
    sft_dataset *ds = NULL;
    char *text = NULL;
    static const char *const rec[] = {"{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Yo\"}]}"};
    static const char smol[] = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
        "{{ '<|im_start|>system\nYou are SmolLM.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
        "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}";
    static const char llama2[] = "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = "
        "messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in "
        "loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must "
        "alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = "
        "'<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}"
        "{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == "
        "'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";
    static const char *const twice[] = {"{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"user\", \"content\": \"b\"}]}"};
    static const char *const sys[] = {"{\"messages\": [{\"role\": \"system\", \"content\": \"Be terse.\\n\"}, {\"role\": \"user\", "
                                      "\"content\": \"  What?\"}, {\"role\": \"assistant\", \"content\": \"This.\"}]}"};
    if (!tok || !l2tok) goto done;
    memset(&d, 0, sizeof d);
    d.chat_template_text = smol;
    CHECK_OK(sft_dataset_from_records(ctx, tok, rec, 1, &d, &ds));
    if (ds) CHECK_OK(sft_dataset_render(ds, rec[0], 0, &text));
    if (text) CHECK_MSG(strcmp(text, "<|im_start|>system\nYou are SmolLM.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nYo<|im_end|>\n") == 0,
                        "rendered: %s", text);
    sft_free(ctx, text); text = NULL;
    sft_dataset_destroy(ds); ds = NULL;
    d.chat_template_text = llama2;
    CHECK_OK(sft_dataset_from_records(ctx, l2tok, sys, 1, &d, &ds));
    if (ds) CHECK_OK(sft_dataset_render(ds, sys[0], 0, &text));
    if (text) CHECK_MSG(strcmp(text, "<s>[INST] <<SYS>>\nBe terse.\n\n<</SYS>>\n\n  What? [/INST] This. </s>") == 0, "rendered: %s", text);
    sft_free(ctx, text);
    sft_dataset_destroy(ds); ds = NULL;
    CHECK_STATUS(sft_dataset_from_records(ctx, l2tok, twice, 1, &d, &ds), SFT_ERR_FORMAT);
    CHECK_ERROR_MENTIONS("Conversation roles must alternate user/assistant/user/assistant/...");
done:
    sft_dataset_destroy(ds);
    sft_tokenizer_destroy(tok);
    sft_tokenizer_destroy(l2tok);
    sft_context_destroy(ctx);
}

void suite_data(void) {
    RUN(template_variants_render_as_jinja_does);
    RUN(folders_splits_shuffles_and_statistics);
    RUN(tokens_and_labels_match_trl);
    RUN(a_packed_batch_equals_its_sequences_one_at_a_time);
    RUN(malformed_records_are_refused_or_counted);
}
