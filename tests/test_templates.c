/* test_templates.c - chat templates: the Jinja engine against transformers'
   apply_chat_template on every template TRL 1.16 ships (fixtures written by
   tools/make_template_fixtures.py), TRL's assistant masks and its rule for
   templates without {% generation %}, where templates come from
   (chat_template.jinja, tokenizer_config.json, named templates), and
   malformed templates. */
#include "test.h"
#include <sys/stat.h>

#define T_TFIX "tests/fixtures/templates/"

/* a JSON value written back as text */
static char *t_json_text(sft_context *ctx, const sft_json *v);

static void t_write(sft_json_writer *w, const sft_json *v) {
    size_t i;
    switch (v->type) {
    case SFT_JSON_OBJECT:
        sft_json_write_object_begin(w);
        for (i = 0; i < v->length; i++) { sft_json_write_key(w, v->keys[i]); t_write(w, &v->items[i]); }
        sft_json_write_object_end(w);
        break;
    case SFT_JSON_ARRAY:
        sft_json_write_array_begin(w);
        for (i = 0; i < v->length; i++) t_write(w, &v->items[i]);
        sft_json_write_array_end(w);
        break;
    case SFT_JSON_STRING: sft_json_write_string_n(w, v->string, v->length); break;
    case SFT_JSON_NUMBER:
        if (v->string && !strpbrk(v->string, ".eE")) sft_json_write_int(w, (int64_t)strtoll(v->string, NULL, 10));
        else sft_json_write_number(w, v->number);
        break;
    case SFT_JSON_TRUE: sft_json_write_bool(w, 1); break;
    case SFT_JSON_FALSE: sft_json_write_bool(w, 0); break;
    default: sft_json_write_null(w); break;
    }
}

static char *t_json_text(sft_context *ctx, const sft_json *v) {
    sft_json_writer w;
    char *text = NULL;
    size_t len;
    memset(&w, 0, sizeof w);
    w.ctx = ctx;
    t_write(&w, v);
    if (sft_json_writer_finish(&w, &text, &len) != SFT_OK) return NULL;
    return text;
}

static char *t_read(const char *path) {
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;
    if (!f) return NULL;
    fseek(f, 0, SEEK_END); n = ftell(f); fseek(f, 0, SEEK_SET);
    buf = (char *)malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) { free(buf); buf = NULL; }
    if (buf) buf[n] = 0;
    fclose(f);
    return buf;
}

static uint64_t t_fnv_ids(const int32_t *ids, int64_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    int64_t i;
    int k;
    for (i = 0; i < n; i++)
        for (k = 0; k < 4; k++) { h ^= (uint64_t)(((uint32_t)ids[i] >> (8 * k)) & 0xFF); h *= 0x100000001b3ull; }
    return h;
}

typedef struct t_counts { int rendered, errors, masks, mask_errors, failed; } t_counts;

/* the record a conversation of the fixture becomes: messages, tools, chat_template_kwargs */
static char *t_record(sft_context *ctx, const sft_json *conv) {
    sft_json_writer w;
    char *text = NULL;
    size_t len;
    const sft_json *tools = sft_json_get(conv, "tools"), *kw = sft_json_get(conv, "kwargs");
    memset(&w, 0, sizeof w);
    w.ctx = ctx;
    sft_json_write_object_begin(&w);
    sft_json_write_key(&w, "messages"); t_write(&w, sft_json_get(conv, "messages"));
    if (tools && tools->type != SFT_JSON_NULL) { sft_json_write_key(&w, "tools"); t_write(&w, tools); }
    if (kw && kw->length) { sft_json_write_key(&w, "chat_template_kwargs"); t_write(&w, kw); }
    sft_json_write_object_end(&w);
    if (sft_json_writer_finish(&w, &text, &len) != SFT_OK) return NULL;
    return text;
}

/* the assistant mask of the dataset row for a record, compared with TRL's runs */
static int t_check_mask(sft_context *ctx, sft_tokenizer *tok, const char *tmpl, const char *trl_dir, const char *record,
                        const sft_json *want, const char *what) {
    sft_data_desc d;
    sft_dataset *ds = NULL;
    const sft_json *mask = sft_json_get(want, "mask");
    const int32_t *ids, *labels;
    int64_t n, i;
    int ok = 1;
    sft_status s;
    memset(&d, 0, sizeof d);
    d.max_length = -1;
    d.assistant_only_loss = 1;
    d.chat_template_text = tmpl;
    d.trl_chat_templates = trl_dir;
    d.template_now = 1768478400;
    s = sft_dataset_from_records(ctx, tok, &record, 1, &d, &ds);
    if (!mask) {       /* TRL fails: the mask is computed (or refused) as an error */
        if (s == SFT_OK) { t_failf(__FILE__, __LINE__, "%s: TRL's mask fails (%s), sft.h's does not", what, sft_json_get(sft_json_get(want, "mask_error"), "message")->string); ok = 0; }
        sft_dataset_destroy(ds);
        return ok;
    }
    if (mask->length == 0) {      /* an all-zero mask: TRL refuses the row, and so do we */
        if (s == SFT_OK) { t_failf(__FILE__, __LINE__, "%s: TRL's mask is empty, sft.h's row was kept", what); ok = 0; }
        sft_dataset_destroy(ds);
        return ok;
    }
    if (s != SFT_OK) { t_failf(__FILE__, __LINE__, "%s: %s", what, sft_last_error()); return 0; }
    if (sft_dataset_row(ds, 0, 0, &ids, &labels, &n, NULL, NULL) != SFT_OK) { sft_dataset_destroy(ds); return 0; }
    if (n != (int64_t)sft_json_get(want, "n_tokens")->number) {
        t_failf(__FILE__, __LINE__, "%s: %lld tokens, transformers %g", what, (long long)n, sft_json_get(want, "n_tokens")->number);
        ok = 0;
    } else {
        char hex[24];
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)t_fnv_ids(ids, n));
        if (strcmp(hex, sft_json_get(want, "ids_fnv")->string) != 0) { t_failf(__FILE__, __LINE__, "%s: token ids differ", what); ok = 0; }
    }
    for (i = 0; ok && i < n; i++) {     /* labels != -100 exactly inside TRL's runs */
        int in = 0;
        size_t r;
        for (r = 0; r < mask->length; r++)
            if (i >= (int64_t)mask->items[r].items[0].number && i < (int64_t)mask->items[r].items[1].number) in = 1;
        if (in != (labels[i] != -100)) {
            t_failf(__FILE__, __LINE__, "%s: token %lld is %s by TRL, %s by sft.h", what, (long long)i, in ? "trained" : "masked",
                    labels[i] != -100 ? "trained" : "masked");
            ok = 0;
        }
    }
    sft_dataset_destroy(ds);
    return ok;
}

static void t_template_case(sft_context *ctx, sft_tokenizer *tok, const char *name, const char *tmpl, const sft_json *conv,
                            const sft_json *want, t_counts *c) {
    sft_chat_desc d;
    char *messages = t_json_text(ctx, sft_json_get(conv, "messages")), *tools = NULL, *kwargs = NULL, *text = NULL, *record;
    const sft_json *jt = sft_json_get(conv, "tools"), *kw = sft_json_get(conv, "kwargs"), *err = sft_json_get(want, "error");
    const char *cname = sft_json_get(conv, "name")->string;
    char what[160];
    size_t len = 0;
    sft_status s;
    snprintf(what, sizeof what, "%s / %s", name, cname);
    memset(&d, 0, sizeof d);
    if (jt && jt->type != SFT_JSON_NULL) tools = t_json_text(ctx, jt);
    if (kw && kw->length) kwargs = t_json_text(ctx, kw);
    d.chat_template = tmpl; d.tools = tools; d.kwargs = kwargs; d.now = 1768478400;
    d.add_generation_prompt = sft_json_get(conv, "add_generation_prompt")->type == SFT_JSON_TRUE;
    s = sft_tokenizer_apply_chat_template(tok, messages, &d, &text, &len, NULL, NULL);
    if (err) {
        const char *type = sft_json_get(err, "type")->string, *msg = sft_json_get(err, "message")->string;
        if (s == SFT_OK) { t_failf(__FILE__, __LINE__, "%s: transformers raises %s (%s); sft.h renders", what, type, msg); c->failed++; }
        else if (strcmp(type, "TemplateError") == 0 && !strstr(sft_last_error(), msg)) {
            t_failf(__FILE__, __LINE__, "%s: raise_exception(\"%s\"), sft.h: %s", what, msg, sft_last_error());
            c->failed++;
        } else
            c->errors++;
    } else if (s != SFT_OK) {
        t_failf(__FILE__, __LINE__, "%s: %s", what, sft_last_error());
        c->failed++;
    } else {
        const sft_json *w = sft_json_get(want, "text");
        if (len != w->length || memcmp(text, w->string, len) != 0) {
            size_t i = 0;
            while (i < len && i < w->length && text[i] == w->string[i]) i++;
            t_failf(__FILE__, __LINE__, "%s: differs at byte %zu:\n  sft.h: %.60s\n  transformers: %.60s", what, i, text + i, w->string + i);
            c->failed++;
        } else
            c->rendered++;
    }
    if (sft_json_get(want, "mask") || sft_json_get(want, "mask_error")) {
        record = t_record(ctx, conv);
        if (t_check_mask(ctx, tok, tmpl, NULL, record, want, what)) { if (sft_json_get(want, "mask")) c->masks++; else c->mask_errors++; }
        else c->failed++;
        sft_free(ctx, record);
    }
    sft_free(ctx, text); sft_free(ctx, messages); sft_free(ctx, tools); sft_free(ctx, kwargs);
}

static const sft_json *t_find_template(const sft_json *templates, const char *name) {
    size_t i;
    for (i = 0; i < templates->length; i++)
        if (strcmp(sft_json_get(&templates->items[i], "name")->string, name) == 0) return &templates->items[i];
    return NULL;
}

/* Every template TRL ships, every conversation: the same bytes as
   transformers (or an error where it raises one, with raise_exception's
   message), and TRL's assistant mask token for token. */
static void trl_templates_render_as_transformers_does(void) {
    sft_context *ctx = t_context(1);
    sft_json *j = t_json_file(ctx, T_TFIX "cases.json");
    sft_tokenizer *tok = NULL;
    const sft_json *templates, *convs;
    t_counts c;
    size_t i, k;
    memset(&c, 0, sizeof c);
    CHECK_OK(sft_tokenizer_load(ctx, T_TFIX "tokenizer", &tok));
    if (!j || !tok) goto done;
    templates = sft_json_get(j, "templates"); convs = sft_json_get(j, "conversations");
    CHECK(templates && templates->length == 72 && convs && convs->length >= 15);
    for (i = 0; templates && i < templates->length; i++) {
        const sft_json *t = &templates->items[i], *cases = sft_json_get(t, "cases");
        const char *name = sft_json_get(t, "name")->string;
        char path[256], *tmpl;
        snprintf(path, sizeof path, T_TFIX "trl/%s.jinja", name);
        tmpl = t_read(path);
        CHECK_MSG(tmpl != NULL, "%s: cannot read", path);
        for (k = 0; tmpl && k < cases->length; k++) t_template_case(ctx, tok, name, tmpl, &convs->items[k], &cases->items[k], &c);
        free(tmpl);
    }
    printf("    %d renders byte for byte, %d errors as transformers raises them, %d TRL masks token for token (%d refused as TRL "
           "refuses), %d differences\n", c.rendered, c.errors, c.masks, c.mask_errors, c.failed);
    CHECK(c.failed == 0 && c.rendered >= 900 && c.masks >= 250);
done:
    sft_tokenizer_destroy(tok);
    sft_json_free(j);
    sft_context_destroy(ctx);
}

/* assistant_only_loss on a template without {% generation %}: with TRL's
   template folder, TRL's training version of it and TRL's mask; without it,
   an error naming the file TRL would use; an unknown template, TRL's error. */
static void templates_without_markers_follow_trls_rule(void) {
    sft_context *ctx = t_context(1);
    sft_json *j = t_json_file(ctx, T_TFIX "cases.json");
    sft_tokenizer *tok = NULL;
    const sft_json *templates, *convs;
    size_t i, k;
    int swapped = 0, refused = 0;
    CHECK_OK(sft_tokenizer_load(ctx, T_TFIX "tokenizer", &tok));
    if (!j || !tok) goto done;
    templates = sft_json_get(j, "templates"); convs = sft_json_get(j, "conversations");
    for (i = 0; i < templates->length; i++) {
        const sft_json *t = &templates->items[i], *rule = sft_json_get(t, "trl"), *training = sft_json_get(rule, "training");
        const char *name = sft_json_get(t, "name")->string;
        char path[256], *tmpl, what[160];
        if (sft_json_get(rule, "markers")->type == SFT_JSON_TRUE) continue;
        snprintf(path, sizeof path, T_TFIX "trl/%s.jinja", name);
        tmpl = t_read(path);
        if (!tmpl) continue;
        if (training && training->type == SFT_JSON_STRING) {
            const sft_json *tt = t_find_template(templates, training->string);
            for (k = 0; tt && k < convs->length; k++) {
                const sft_json *want = &sft_json_get(tt, "cases")->items[k];
                char *record;
                if (!sft_json_get(want, "mask") || !sft_json_get(want, "mask")->length) continue;
                record = t_record(ctx, &convs->items[k]);
                snprintf(what, sizeof what, "%s swapped for %s / %s", name, training->string, sft_json_get(&convs->items[k], "name")->string);
                if (t_check_mask(ctx, tok, tmpl, T_TFIX "trl", record, want, what)) swapped++;
                sft_free(ctx, record);
            }
            {   /* without the folder: the error names TRL's file */
                sft_data_desc d;
                sft_dataset *ds = NULL;
                char want[128];
                const char *rec = "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", \"content\": \"b\"}]}";
                memset(&d, 0, sizeof d);
                d.assistant_only_loss = 1; d.chat_template_text = tmpl;
                CHECK_STATUS(sft_dataset_from_records(ctx, tok, &rec, 1, &d, &ds), SFT_ERR_UNSUPPORTED);
                snprintf(want, sizeof want, "%s_training.jinja", name);
                CHECK_ERROR_MENTIONS(want);
                sft_dataset_destroy(ds);
            }
        } else {
            sft_data_desc d;
            sft_dataset *ds = NULL;
            const char *rec = "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", \"content\": \"b\"}]}";
            memset(&d, 0, sizeof d);
            d.assistant_only_loss = 1; d.chat_template_text = tmpl; d.trl_chat_templates = T_TFIX "trl";
            CHECK_STATUS(sft_dataset_from_records(ctx, tok, &rec, 1, &d, &ds), SFT_ERR_UNSUPPORTED);
            CHECK_ERROR_MENTIONS("not training-compatible");
            sft_dataset_destroy(ds);
            refused++;
        }
        free(tmpl);
    }
    printf("    %d masks through TRL's swapped training templates, %d templates refused as TRL refuses them\n", swapped, refused);
    CHECK(swapped >= 150 && refused >= 5);
done:
    sft_tokenizer_destroy(tok);
    sft_json_free(j);
    sft_context_destroy(ctx);
}

/* Small templates for the language itself (scoping, loops, macros, filters,
   tests, methods, whitespace control, errors), each against what transformers'
   Jinja environment renders; "unsupported" ones are refused on purpose. */
static void engine_matches_jinja_on_small_templates(void) {
    sft_context *ctx = t_context(1);
    sft_json *j = t_json_file(ctx, T_TFIX "cases.json");
    const sft_json *cases = j ? sft_json_get(j, "engine") : NULL;
    sft_template_desc d;
    size_t i, k;
    int same = 0, errors = 0, refused = 0;
    memset(&d, 0, sizeof d);
    d.now = 1768478400;
    CHECK(cases && cases->length >= 80);
    for (i = 0; cases && i < cases->length; i++) {
        const sft_json *c = &cases->items[i], *src = sft_json_get(c, "template"), *want = sft_json_get(c, "text");
        sft_template *t = NULL;
        char *text = NULL;
        size_t len = 0, *spans = NULL, n_spans = 0;
        sft_status s = sft_template_parse(ctx, src->string, src->length, "t", &t);
        if (s == SFT_OK) s = sft_template_render(t, sft_json_get(c, "variables"), &d, &text, &len, &spans, &n_spans);
        if (sft_json_get(c, "unsupported")->type == SFT_JSON_TRUE) {
            CHECK_MSG(s == SFT_ERR_UNSUPPORTED, "%s: expected SFT_ERR_UNSUPPORTED, got %s", src->string, sft_status_str(s));
            refused += s == SFT_ERR_UNSUPPORTED;
        } else if (!want) {
            CHECK_MSG(s != SFT_OK, "%s: Jinja raises %s, sft.h renders", src->string, sft_json_get(sft_json_get(c, "error"), "message")->string);
            errors += s != SFT_OK;
        } else if (s != SFT_OK)
            t_failf(__FILE__, __LINE__, "%s: %s", src->string, sft_last_error());
        else {
            const sft_json *ws = sft_json_get(c, "spans");
            int ok = len == want->length && memcmp(text, want->string, len) == 0 && n_spans == ws->length;
            for (k = 0; ok && k < n_spans; k++)
                ok = spans[2 * k] == (size_t)ws->items[k].items[0].number && spans[2 * k + 1] == (size_t)ws->items[k].items[1].number;
            CHECK_MSG(ok, "%s:\n  sft.h  %s\n  Jinja  %s", src->string, text, want->string);
            same += ok;
        }
        sft_free(ctx, text); sft_free(ctx, spans);
        sft_template_destroy(t);
    }
    printf("    %d the same text and generation spans, %d errors where Jinja raises, %d refused on purpose\n", same, errors, refused);
    sft_json_free(j);
    sft_context_destroy(ctx);
}

static void t_bad_template(sft_context *ctx, const char *src, const sft_template_desc *d, sft_status want, const char *mention) {
    sft_template *t = NULL;
    char *text = NULL;
    sft_status s = sft_template_parse(ctx, src, strlen(src), "bad.jinja", &t);
    if (s == SFT_OK) s = sft_template_render(t, NULL, d, &text, NULL, NULL, NULL);
    CHECK_MSG(s == want, "%s: %s, want %s (%s)", src, sft_status_str(s), sft_status_str(want), sft_last_error());
    CHECK_ERROR_MENTIONS(mention);
    sft_free(ctx, text);
    sft_template_destroy(t);
}

/* Templates that cannot be rendered say why and where: the file and the line. */
static void malformed_templates_name_the_line(void) {
    sft_context *ctx = t_context(1);
    sft_template_desc d;
    memset(&d, 0, sizeof d);
    /* fuzz finding (tests/fuzz, template): a power past 64 bits multiplied once
       more after the check (signed overflow); now refused before */
    t_bad_template(ctx, "{% set c = 663**22*66 %6.32 %6.66 %}\n", NULL, SFT_ERR_UNSUPPORTED, "bad.jinja:1: an integer beyond 64 bits");
    t_bad_template(ctx, "{{ (-2)**64 }}", NULL, SFT_ERR_UNSUPPORTED, "an integer beyond 64 bits");
    t_bad_template(ctx, "{{ 2**63 }}", NULL, SFT_ERR_UNSUPPORTED, "an integer beyond 64 bits");
    {   /* the powers that fit, at the edges (a huge exponent of 0, 1 or -1 is quick) */
        static const char src[] = "{{ (-2)**63 }}|{{ 1**9223372036854775807 }}|{{ (-1)**9223372036854775807 }}|{{ 0**0 }}|{{ 0**5 }}|{{ 3**4 }}";
        sft_template *t = NULL;
        char *text = NULL;
        size_t len = 0;
        CHECK_OK(sft_template_parse(ctx, src, strlen(src), "pow.jinja", &t));
        if (t) CHECK_OK(sft_template_render(t, NULL, &d, &text, &len, NULL, NULL));
        CHECK_MSG(text && strcmp(text, "-9223372036854775808|1|-1|1|0|81") == 0, "%s", text ? text : "(none)");
        sft_free(ctx, text);
        sft_template_destroy(t);
    }
    t_bad_template(ctx, "a\n{% for m in messages %}\n{{ m }}\n", NULL, SFT_ERR_FORMAT, "bad.jinja:3: the template ends before {% endfor %}");
    t_bad_template(ctx, "a\n{% if x %}\nb{% endfor %}", NULL, SFT_ERR_FORMAT, "bad.jinja:3: unexpected {% endfor %}");
    t_bad_template(ctx, "{{ 1 }}\n\n{{ x | bogus }}", NULL, SFT_ERR_FORMAT, "bad.jinja:3: no filter named 'bogus'");
    t_bad_template(ctx, "\n{% if x is bogus %}{% endif %}", NULL, SFT_ERR_FORMAT, "bad.jinja:2: no test named 'bogus'");
    t_bad_template(ctx, "{{ 'unterminated }}", NULL, SFT_ERR_FORMAT, "bad.jinja:1: unterminated string");
    t_bad_template(ctx, "x\n{# never closed", NULL, SFT_ERR_FORMAT, "bad.jinja:2: missing end of comment tag");
    t_bad_template(ctx, "{{ (1 }}", NULL, SFT_ERR_FORMAT, "bad.jinja:1");
    t_bad_template(ctx, "\n\n{% include 'other.jinja' %}", NULL, SFT_ERR_UNSUPPORTED, "bad.jinja:3: the 'include' statement is not supported");
    t_bad_template(ctx, "{% break %}", NULL, SFT_ERR_FORMAT, "'break' outside a loop");
    t_bad_template(ctx, "{{ lipsum() }}", NULL, SFT_ERR_UNSUPPORTED, "lipsum");
    t_bad_template(ctx, "{{ raise_exception('No system role') }}", NULL, SFT_ERR_FORMAT, "bad.jinja:1: raise_exception: No system role");
    /* runaway loops, unbounded recursion, output beyond the limit */
    d.max_steps = 100000;
    t_bad_template(ctx, "\n{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}", &d, SFT_ERR_LIMIT, "bad.jinja:2: more than 100000 loop iterations");
    t_bad_template(ctx, "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}\n{{ f(0) }}", NULL, SFT_ERR_LIMIT, "nested more than");
    d.max_steps = 0; d.max_output = 1 << 20;
    t_bad_template(ctx, "{% set s = 'x' * 100000 %}{% for i in range(100) %}{{ s }}{% endfor %}", &d, SFT_ERR_LIMIT, "output limit");
    t_bad_template(ctx, "{{ 'x' * 10000000 }}", &d, SFT_ERR_LIMIT, "repeated");
    t_bad_template(ctx, "{{ range(1000000) | length }}", NULL, SFT_ERR_LIMIT, "a range of 1000000 items");
    {   /* nesting beyond the parser's depth */
        char deep[2200];
        int i, n = 0;
        for (i = 0; i < 300; i++) n += snprintf(deep + n, sizeof deep - (size_t)n, "(");
        n += snprintf(deep + n, sizeof deep - (size_t)n, "1");
        for (i = 0; i < 300; i++) n += snprintf(deep + n, sizeof deep - (size_t)n, ")");
        {
            char src[2400];
            snprintf(src, sizeof src, "{{ %s }}", deep);
            t_bad_template(ctx, src, NULL, SFT_ERR_FORMAT, "nested");
        }
    }
    sft_context_destroy(ctx);
}

/* a tokenizer folder: the template fixture's tokenizer.json and the given config */
static void t_tokenizer_dir(const char *dir, const char *config) {
    char path[1400], *tj = t_read(T_TFIX "tokenizer/tokenizer.json");
    FILE *f;
    mkdir(dir, 0777);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    f = fopen(path, "wb");
    if (f && tj) fputs(tj, f);
    if (f) fclose(f);
    free(tj);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    f = fopen(path, "wb");
    if (f) { fputs(config, f); fclose(f); }
}

static void t_write_file(const char *dir, const char *name, const char *text) {
    char path[1400];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (f) { fputs(text, f); fclose(f); }
}

static void t_expect_render(sft_context *ctx, sft_tokenizer *tok, const char *name, const char *tools, const char *want) {
    sft_chat_desc d;
    char *text = NULL;
    memset(&d, 0, sizeof d);
    d.chat_template = name; d.tools = tools;
    CHECK_OK(sft_tokenizer_apply_chat_template(tok, "[{\"role\": \"user\", \"content\": \"hi\"}]", &d, &text, NULL, NULL, NULL));
    if (text) CHECK_MSG(strcmp(text, want) == 0, "rendered '%s', want '%s'", text, want);
    sft_free(ctx, text);
}

/* Where templates come from, as transformers 4.57 loads them: chat_template.jinja
   (newlines as Python's text mode reads them) over tokenizer_config.json's
   string; additional_chat_templates/NAME.jinja; a list of named templates in
   the config; "tool_use" for conversations with tools; a name the caller gives;
   several templates and no "default": an error naming them. */
static void templates_come_from_files_and_config(void) {
    sft_context *ctx = t_context(1);
    sft_tokenizer *tok = NULL;
    char dir[600], sub[700];
    memset(sub, 0, sizeof sub);
    const char *text = NULL;
    /* a config string, then chat_template.jinja beside it wins */
    snprintf(dir, sizeof dir, "%s/tmpl_a", t_tmpdir());
    t_tokenizer_dir(dir, "{\"eos_token\": \"<|im_end|>\", \"chat_template\": \"config:{{ messages[0].content }}\"}");
    CHECK_OK(sft_tokenizer_load(ctx, dir, &tok));
    if (tok) t_expect_render(ctx, tok, NULL, NULL, "config:hi");
    sft_tokenizer_destroy(tok); tok = NULL;
    t_write_file(dir, "chat_template.jinja", "file:{{ messages[0].content }}\r\n{{ eos_token }}\r\n");
    CHECK_OK(sft_tokenizer_load(ctx, dir, &tok));
    if (tok) {
        CHECK(sft_tokenizer_get_info(tok).chat_template && strcmp(sft_tokenizer_get_info(tok).chat_template, "file:{{ messages[0].content }}\n{{ eos_token }}\n") == 0);
        t_expect_render(ctx, tok, NULL, NULL, "file:hi\n<|im_end|>");
    }
    sft_tokenizer_destroy(tok); tok = NULL;
    /* additional_chat_templates/: named ones beside the default */
    snprintf(sub, sizeof sub, "%s/additional_chat_templates", dir);
    mkdir(sub, 0777);
    t_write_file(sub, "tool_use.jinja", "tools:{{ tools | length }}");
    t_write_file(sub, "rag.jinja", "rag:{{ messages | length }}");
    CHECK_OK(sft_tokenizer_load(ctx, dir, &tok));
    if (tok) {
        t_expect_render(ctx, tok, NULL, NULL, "file:hi\n<|im_end|>");
        t_expect_render(ctx, tok, NULL, "[{\"type\": \"function\", \"function\": {\"name\": \"f\"}}]", "tools:1");
        t_expect_render(ctx, tok, "rag", NULL, "rag:1");
        t_expect_render(ctx, tok, "literal {{ 1 + 1 }}", NULL, "literal 2");
        CHECK(sft_tokenizer_chat_template_name(tok, 0) && !sft_tokenizer_chat_template_name(tok, 3));
    }
    sft_tokenizer_destroy(tok); tok = NULL;
    /* a list of named templates in tokenizer_config.json, without a default */
    snprintf(dir, sizeof dir, "%s/tmpl_b", t_tmpdir());
    t_tokenizer_dir(dir, "{\"chat_template\": [{\"name\": \"rag\", \"template\": \"R\"}, {\"name\": \"tool_use\", \"template\": \"T\"}]}");
    CHECK_OK(sft_tokenizer_load(ctx, dir, &tok));
    if (tok) {
        CHECK(sft_tokenizer_get_info(tok).chat_template == NULL);
        CHECK_STATUS(sft_tokenizer_chat_template(tok, NULL, 0, &text), SFT_ERR_NOT_FOUND);
        CHECK_ERROR_MENTIONS("rag, tool_use");
        CHECK_OK(sft_tokenizer_chat_template(tok, NULL, 1, &text));
        CHECK(text && strcmp(text, "T") == 0);
        t_expect_render(ctx, tok, "rag", NULL, "R");
    }
    sft_tokenizer_destroy(tok); tok = NULL;
    /* a malformed list, and a folder with no template at all */
    snprintf(dir, sizeof dir, "%s/tmpl_c", t_tmpdir());
    t_tokenizer_dir(dir, "{\"chat_template\": [{\"name\": \"rag\"}]}");
    CHECK_STATUS(sft_tokenizer_load(ctx, dir, &tok), SFT_ERR_FORMAT);
    CHECK_ERROR_MENTIONS("chat_template[0]");
    snprintf(dir, sizeof dir, "%s/tmpl_d", t_tmpdir());
    t_tokenizer_dir(dir, "{}");
    CHECK_OK(sft_tokenizer_load(ctx, dir, &tok));
    if (tok) CHECK_STATUS(sft_tokenizer_chat_template(tok, NULL, 0, &text), SFT_ERR_NOT_FOUND);
    CHECK_ERROR_MENTIONS("no chat template");
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
}

void suite_templates(void) {
    RUN(trl_templates_render_as_transformers_does);
    RUN(templates_without_markers_follow_trls_rule);
    RUN(engine_matches_jinja_on_small_templates);
    RUN(malformed_templates_name_the_line);
    RUN(templates_come_from_files_and_config);
}
