/* test_json.c - the strict JSON parser and the writer.

   Parser: every family of malformed input (truncation at every byte, each kind
   of bad UTF-8, escapes, numbers, nesting, duplicates, trailing garbage) must fail
   with the right status and a message that says where; valid documents must
   round-trip through the writer. Writer: exact bytes for compact and indent=2
   output (Python's json.dumps is the reference) and the shortest number forms. */
#include "test.h"
#include <locale.h>
#include <stdint.h>

/* ---- helpers ------------------------------------------------------------- */

static sft_status parse_with(const char *text, size_t n, const sft_json_desc *desc, sft_json **out) {
    return sft_json_parse(NULL, text, n, "t.json", desc, out);
}

/* parse_fails: text[0..n) must fail with want, leave *out NULL and say where. */
static void parse_fails(const char *file, int line, const char *text, size_t n, sft_status want, const sft_json_desc *desc) {
    sft_json *root = (sft_json *)1;
    sft_status s = parse_with(text, n, desc, &root);
    if (s != want) {
        t_failf(file, line, "parse of \"%.*s\" -> %s, want %s (%s)", (int)(n < 60 ? n : 60), text, sft_status_str(s),
                sft_status_str(want), sft_last_error());
        if (s == SFT_OK) sft_json_free(root);
        return;
    }
    if (root != NULL) t_failf(file, line, "failed parse of \"%.*s\" left *out non-NULL", (int)(n < 60 ? n : 60), text);
    if (want == SFT_ERR_FORMAT && !strstr(sft_last_error(), "t.json: byte "))
        t_failf(file, line, "message \"%s\" does not name the file and byte", sft_last_error());
}
#define PARSE_FAILS(lit, want) parse_fails(__FILE__, __LINE__, lit, sizeof(lit) - 1, want, NULL)
#define PARSE_FAILS_S(str, want) parse_fails(__FILE__, __LINE__, str, strlen(str), want, NULL)

static sft_json *parse_ok(const char *file, int line, const char *text, size_t n, const sft_json_desc *desc) {
    sft_json *root = NULL;
    sft_status s = parse_with(text, n, desc, &root);
    if (s != SFT_OK) {
        t_failf(file, line, "parse of \"%.*s\" -> %s: %s", (int)(n < 60 ? n : 60), text, sft_status_str(s), sft_last_error());
        return NULL;
    }
    return root;
}
#define PARSE_OK(lit) parse_ok(__FILE__, __LINE__, lit, sizeof(lit) - 1, NULL)
#define PARSE_OK_S(str) parse_ok(__FILE__, __LINE__, str, strlen(str), NULL)

static int json_equal(const sft_json *a, const sft_json *b) {
    size_t i;
    if (a->type != b->type) return 0;
    switch (a->type) {
    case SFT_JSON_NUMBER:
        if (isnan(a->number)) return isnan(b->number);
        return a->number == b->number && signbit(a->number) == signbit(b->number);
    case SFT_JSON_STRING: return a->length == b->length && memcmp(a->string, b->string, a->length) == 0 && a->string[a->length] == 0;
    case SFT_JSON_ARRAY:
        if (a->length != b->length) return 0;
        for (i = 0; i < a->length; i++)
            if (!json_equal(&a->items[i], &b->items[i])) return 0;
        return 1;
    case SFT_JSON_OBJECT:
        if (a->length != b->length) return 0;
        for (i = 0; i < a->length; i++)
            if (a->key_lengths[i] != b->key_lengths[i] || memcmp(a->keys[i], b->keys[i], a->key_lengths[i]) != 0 ||
                !json_equal(&a->items[i], &b->items[i]))
                return 0;
        return 1;
    default: return 1;
    }
}

static void write_tree(sft_json_writer *w, const sft_json *v) {
    size_t i;
    switch (v->type) {
    case SFT_JSON_NULL: sft_json_write_null(w); break;
    case SFT_JSON_FALSE: sft_json_write_bool(w, 0); break;
    case SFT_JSON_TRUE: sft_json_write_bool(w, 1); break;
    case SFT_JSON_NUMBER: sft_json_write_number(w, v->number); break;
    case SFT_JSON_STRING: sft_json_write_string_n(w, v->string, v->length); break;
    case SFT_JSON_ARRAY:
        sft_json_write_array_begin(w);
        for (i = 0; i < v->length; i++) write_tree(w, &v->items[i]);
        sft_json_write_array_end(w);
        break;
    case SFT_JSON_OBJECT:
        sft_json_write_object_begin(w);
        for (i = 0; i < v->length; i++) {
            sft_json_write_key(w, v->keys[i]);
            write_tree(w, &v->items[i]);
        }
        sft_json_write_object_end(w);
        break;
    }
}

/* written: the text a writer produced (NULL on failure; free with sft_free). */
static char *written(sft_json_writer *w) {
    char *text = NULL;
    size_t len = 0;
    if (sft_json_writer_finish(w, &text, &len) != SFT_OK) return NULL;
    if (strlen(text) != len) { sft_free(w->ctx, text); return NULL; }
    return text;
}

static void check_number_text(const char *file, int line, double v, const char *want) {
    sft_json_writer w;
    char *text;
    memset(&w, 0, sizeof w);
    sft_json_write_number(&w, v);
    text = written(&w);
    if (!text) { t_failf(file, line, "writing %.17g failed: %s", v, sft_last_error()); return; }
    if (strcmp(text, want) != 0) t_failf(file, line, "%.17g written as \"%s\", want \"%s\"", v, text, want);
    sft_free(NULL, text);
}
#define CHECK_NUMBER_TEXT(v, want) check_number_text(__FILE__, __LINE__, v, want)

static char *nested(int depth, int objects) {
    char *s = (char *)malloc((size_t)depth * 6 + 8);
    size_t n = 0;
    int i;
    for (i = 0; i < depth; i++) {
        if (objects) { memcpy(s + n, "{\"a\":", 5); n += 5; }
        else s[n++] = '[';
    }
    s[n++] = '1';
    for (i = 0; i < depth; i++) s[n++] = objects ? '}' : ']';
    s[n] = 0;
    return s;
}

/* A document that touches every part of the grammar. */
static const char k_doc[] =
    "{\"name\": \"caf\xC3\xA9 \\u00e9\\n\\t\\\"q\\\" \\\\ \\/ \\b\\f\\r\", \"emoji\": \"\\ud83d\\ude00 \xF0\x9F\x98\x80\","
    " \"nums\": [0, -0, 1.5, -2.25e-3, 1E+10, 6.02e23, 123456789012, 0.1, 1e-7, 5e-324],"
    " \"flags\": [true, false, null], \"empty\": {}, \"none\": [],"
    " \"nested\": {\"a\": [1, [2, [3, {\"b\": \"\xE2\x82\xAC\"}]]], \"c\": \"\\u0000x\"}}";

/* ---- parser: valid input -------------------------------------------------- */

static void json_parses_every_value_type(void) {
    sft_json *r = PARSE_OK(" {\"n\": null, \"t\": true, \"f\": false, \"x\": -12.5e1, \"s\": \"hi\", \"a\": [1, 2], \"o\": {}} ");
    if (!r) return;
    CHECK(r->type == SFT_JSON_OBJECT && r->length == 7);
    CHECK(sft_json_get(r, "n")->type == SFT_JSON_NULL);
    CHECK(sft_json_get(r, "t")->type == SFT_JSON_TRUE);
    CHECK(sft_json_get(r, "f")->type == SFT_JSON_FALSE);
    CHECK(sft_json_get(r, "x")->type == SFT_JSON_NUMBER && sft_json_get(r, "x")->number == -125.0);
    CHECK(strcmp(sft_json_get(r, "x")->string, "-12.5e1") == 0);   /* a number keeps its source text */
    CHECK(sft_json_get(r, "s")->type == SFT_JSON_STRING && strcmp(sft_json_get(r, "s")->string, "hi") == 0);
    CHECK(sft_json_get(r, "s")->length == 2);
    CHECK(sft_json_get(r, "a")->type == SFT_JSON_ARRAY && sft_json_get(r, "a")->length == 2);
    CHECK(sft_json_at(sft_json_get(r, "a"), 1)->number == 2.0);
    CHECK(sft_json_get(r, "o")->type == SFT_JSON_OBJECT && sft_json_get(r, "o")->length == 0);
    CHECK(strcmp(r->keys[4], "s") == 0 && r->key_lengths[4] == 1);   /* keys in file order */
    sft_json_free(r);
    r = PARSE_OK("\"top\"");
    if (r) { CHECK(r->type == SFT_JSON_STRING && strcmp(r->string, "top") == 0); sft_json_free(r); }
    r = PARSE_OK("42");
    if (r) { CHECK(r->type == SFT_JSON_NUMBER && r->number == 42.0); sft_json_free(r); }
    r = PARSE_OK("null");
    if (r) { CHECK(r->type == SFT_JSON_NULL); sft_json_free(r); }
}

static void json_get_and_at_return_null_when_absent_or_wrong_type(void) {
    sft_json *r = PARSE_OK("{\"a\": [10, 20], \"ab\": 1}");
    if (!r) return;
    CHECK(sft_json_get(r, "b") == NULL);
    CHECK(sft_json_get(r, "") == NULL);
    CHECK(sft_json_get(r, "a")->length == 2);
    CHECK(sft_json_get(r, "ab")->number == 1.0);
    CHECK(sft_json_at(sft_json_get(r, "a"), 2) == NULL);
    CHECK(sft_json_at(r, 0) == NULL);                       /* object is not an array */
    CHECK(sft_json_get(sft_json_get(r, "a"), "a") == NULL); /* array is not an object */
    CHECK(sft_json_get(NULL, "a") == NULL && sft_json_at(NULL, 0) == NULL);
    CHECK(sft_json_get(r, NULL) == NULL);
    sft_json_free(r);
    sft_json_free(NULL);
}

static void json_decodes_every_escape(void) {
    sft_json *r = PARSE_OK("[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\", \"\\u0041\\u00e9\\u20AC\\uD83D\\uDE00\", \"a\\u0000b\"]");
    if (!r) return;
    CHECK(strcmp(r->items[0].string, "\"\\/\b\f\n\r\t") == 0 && r->items[0].length == 8);
    CHECK(strcmp(r->items[1].string, "A\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80") == 0);
    CHECK(r->items[1].length == 1 + 2 + 3 + 4);
    CHECK(r->items[2].length == 3 && memcmp(r->items[2].string, "a\0b", 4) == 0);   /* NUL kept, length counts it */
    sft_json_free(r);
}

static void json_accepts_utf8_at_every_boundary(void) {
    static const char *ok[] = {
        "\"\xC2\x80\"", "\"\xDF\xBF\"", "\"\xE0\xA0\x80\"", "\"\xED\x9F\xBF\"", "\"\xEE\x80\x80\"", "\"\xEF\xBF\xBF\"",
        "\"\xF0\x90\x80\x80\"", "\"\xF4\x8F\xBF\xBF\"", "\"\\uD7FF\\uE000\\uFFFF\\uDBFF\\uDFFF\"", "\"\x7F\""};
    size_t i;
    for (i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        sft_json *r = PARSE_OK_S(ok[i]);
        sft_json_free(r);
    }
}

static void json_accepts_whitespace_of_all_four_kinds(void) {
    sft_json *r = PARSE_OK(" \t\r\n[ \t\r\n1 \t\r\n, \t\r\n{ \"a\" \n: \r2 } ] \n\t\r ");
    if (r) { CHECK(r->length == 2); sft_json_free(r); }
    PARSE_FAILS("[1,\f2]", SFT_ERR_FORMAT);    /* form feed is not JSON whitespace */
    PARSE_FAILS("[1,\v2]", SFT_ERR_FORMAT);
    PARSE_FAILS("\xC2\xA0[]", SFT_ERR_FORMAT); /* nor is U+00A0 */
}

/* ---- parser: malformed input ----------------------------------------------- */

static void json_rejects_every_truncated_prefix_of_a_valid_document(void) {
    size_t n = sizeof k_doc - 1, k;
    int failures = 0;
    sft_json *full = parse_ok(__FILE__, __LINE__, k_doc, n, NULL);
    CHECK(full != NULL);
    sft_json_free(full);
    for (k = 0; k < n; k++) {
        sft_json *r = (sft_json *)1;
        char *copy = (char *)malloc(k + 1);   /* exactly k bytes, so ASan sees any overread */
        sft_status s;
        memcpy(copy, k_doc, k);
        s = sft_json_parse(NULL, copy, k, "t.json", NULL, &r);
        if (s != SFT_ERR_FORMAT || r != NULL) {
            if (failures++ < 5) t_failf(__FILE__, __LINE__, "prefix of %zu bytes -> %s (%s)", k, sft_status_str(s), sft_last_error());
            if (s == SFT_OK) sft_json_free(r);
        }
        free(copy);
    }
}

static void json_rejects_lone_surrogate_escapes(void) {
    PARSE_FAILS("\"\\uD800\"", SFT_ERR_FORMAT);
    CHECK_ERROR_MENTIONS("lone high surrogate");
    PARSE_FAILS("\"\\uDBFFx\"", SFT_ERR_FORMAT);
    PARSE_FAILS("\"\\uDC00\"", SFT_ERR_FORMAT);
    CHECK_ERROR_MENTIONS("lone low surrogate");
    PARSE_FAILS("\"\\uDFFF\\uD800\"", SFT_ERR_FORMAT);
    PARSE_FAILS("\"\\uD800\\uD800\"", SFT_ERR_FORMAT);     /* high followed by high */
    PARSE_FAILS("\"\\uD800\\u0041\"", SFT_ERR_FORMAT);     /* high followed by a non-surrogate */
    PARSE_FAILS("\"\\uD800\\n\"", SFT_ERR_FORMAT);
    PARSE_FAILS("\"\\uD800\\uDC0\"", SFT_ERR_FORMAT);      /* low half cut short */
    PARSE_FAILS("\"\\uD800", SFT_ERR_FORMAT);
}

static void json_rejects_invalid_escapes(void) {
    PARSE_FAILS("\"\\x41\"", SFT_ERR_FORMAT);
    CHECK_ERROR_MENTIONS("invalid escape");
    PARSE_FAILS("\"\\U0041\"", SFT_ERR_FORMAT);
    PARSE_FAILS("\"\\u00G1\"", SFT_ERR_FORMAT);
    CHECK_ERROR_MENTIONS("4 hex digits");
    PARSE_FAILS("\"\\u004\"", SFT_ERR_FORMAT);
    PARSE_FAILS("\"\\'\"", SFT_ERR_FORMAT);
    PARSE_FAILS("\"\\0\"", SFT_ERR_FORMAT);
    PARSE_FAILS("\"\\\"", SFT_ERR_FORMAT);
    PARSE_FAILS("\"\\", SFT_ERR_FORMAT);
}

static void json_rejects_raw_control_characters_in_strings(void) {
    int c;
    for (c = 0; c < 0x20; c++) {
        char doc[8] = {'[', '"', 'a', (char)c, '"', ']', 0};
        parse_fails(__FILE__, __LINE__, doc, 6, SFT_ERR_FORMAT, NULL);
        if (c == 0x0A) CHECK_ERROR_MENTIONS("control character 0x0A");
    }
    {   /* control characters are fine when escaped */
        sft_json *r = PARSE_OK("\"\\u0001\\u001f\\u0000\"");
        if (r) { CHECK(r->length == 3 && r->string[0] == 1 && r->string[1] == 0x1f && r->string[2] == 0); sft_json_free(r); }
    }
}

static void json_rejects_overlong_utf8(void) {
    PARSE_FAILS("\"\xC0\x80\"", SFT_ERR_FORMAT);
    CHECK_ERROR_MENTIONS("overlong");
    PARSE_FAILS("\"\xC1\xBF\"", SFT_ERR_FORMAT);
    PARSE_FAILS("\"\xE0\x80\x80\"", SFT_ERR_FORMAT);
    PARSE_FAILS("\"\xE0\x9F\xBF\"", SFT_ERR_FORMAT);
    CHECK_ERROR_MENTIONS("overlong");
    PARSE_FAILS("\"\xF0\x80\x80\x80\"", SFT_ERR_FORMAT);
    PARSE_FAILS("\"\xF0\x8F\xBF\xBF\"", SFT_ERR_FORMAT);
    CHECK_ERROR_MENTIONS("overlong");
}

static void json_rejects_surrogates_encoded_in_utf8(void) {
    PARSE_FAILS("\"\xED\xA0\x80\"", SFT_ERR_FORMAT);
    CHECK_ERROR_MENTIONS("surrogate");
    PARSE_FAILS("\"\xED\xBF\xBF\"", SFT_ERR_FORMAT);
    PARSE_FAILS("\"\xED\xA0\xBD\xED\xB8\x80\"", SFT_ERR_FORMAT);   /* CESU-8 pair */
}

static void json_rejects_utf8_beyond_u10ffff(void) {
    PARSE_FAILS("\"\xF4\x90\x80\x80\"", SFT_ERR_FORMAT);
    CHECK_ERROR_MENTIONS("U+10FFFF");
    PARSE_FAILS("\"\xF5\x80\x80\x80\"", SFT_ERR_FORMAT);
    PARSE_FAILS("\"\xF7\xBF\xBF\xBF\"", SFT_ERR_FORMAT);
    PARSE_FAILS("\"\xF8\x88\x80\x80\x80\"", SFT_ERR_FORMAT);
    PARSE_FAILS("\"\xFE\"", SFT_ERR_FORMAT);
    PARSE_FAILS("\"\xFF\"", SFT_ERR_FORMAT);
}

static void json_rejects_truncated_and_stray_utf8_sequences(void) {
    PARSE_FAILS("\"\xC3\"", SFT_ERR_FORMAT);
    CHECK_ERROR_MENTIONS("truncated");
    PARSE_FAILS("\"\xE2\x82\"", SFT_ERR_FORMAT);
    PARSE_FAILS("\"\xF0\x9F\x98\"", SFT_ERR_FORMAT);
    PARSE_FAILS("\"\xE2\x82x\"", SFT_ERR_FORMAT);
    PARSE_FAILS("\"\xC3", SFT_ERR_FORMAT);                 /* at the very end of the input */
    PARSE_FAILS("\"\x80\"", SFT_ERR_FORMAT);
    CHECK_ERROR_MENTIONS("continuation");
    PARSE_FAILS("\"a\xBF\"", SFT_ERR_FORMAT);
    PARSE_FAILS("[\xC3\xA9]", SFT_ERR_FORMAT);             /* UTF-8 outside a string is not a value */
}

static void json_rejects_byte_order_mark(void) {
    PARSE_FAILS("\xEF\xBB\xBF{}", SFT_ERR_FORMAT);
    CHECK_ERROR_MENTIONS("byte order mark");
}

static void json_depth_limit_allows_exactly_max_depth(void) {
    sft_json_desc d;
    sft_json *r;
    char *s;
    int objects;
    for (objects = 0; objects < 2; objects++) {
        s = nested(128, objects);
        r = parse_ok(__FILE__, __LINE__, s, strlen(s), NULL);
        sft_json_free(r);
        free(s);
        s = nested(129, objects);
        parse_fails(__FILE__, __LINE__, s, strlen(s), SFT_ERR_LIMIT, NULL);
        CHECK_ERROR_MENTIONS("nesting deeper than 128");
        free(s);
    }
    memset(&d, 0, sizeof d);
    d.max_depth = 5;
    s = nested(5, 0);
    r = parse_ok(__FILE__, __LINE__, s, strlen(s), &d);
    sft_json_free(r);
    free(s);
    s = nested(6, 1);
    parse_fails(__FILE__, __LINE__, s, strlen(s), SFT_ERR_LIMIT, &d);
    free(s);
}

static void json_deep_nesting_does_not_use_the_c_stack(void) {
    /* 200000 levels: refused under the default limit, parsed under a raised one
       (an iterative parser; a recursive one would overflow the stack). */
    int depth = 200000;
    char *s = nested(depth, 0);
    sft_json_desc d;
    sft_json *r;
    const sft_json *v;
    int i;
    parse_fails(__FILE__, __LINE__, s, strlen(s), SFT_ERR_LIMIT, NULL);
    memset(&d, 0, sizeof d);
    d.max_depth = depth;
    r = parse_ok(__FILE__, __LINE__, s, strlen(s), &d);
    free(s);
    if (!r) return;
    for (v = r, i = 0; v && v->type == SFT_JSON_ARRAY; i++) v = sft_json_at(v, 0);
    CHECK(i == depth && v && v->number == 1.0);
    sft_json_free(r);
}

static void json_rejects_numbers_that_overflow_a_double(void) {
    sft_json *r;
    PARSE_FAILS("1e400", SFT_ERR_LIMIT);
    CHECK_ERROR_MENTIONS("1e400");
    PARSE_FAILS("-1e400", SFT_ERR_LIMIT);
    PARSE_FAILS("[1.8e308]", SFT_ERR_LIMIT);
    PARSE_FAILS("{\"a\": 123456789e301}", SFT_ERR_LIMIT);
    r = PARSE_OK("[1e-400, -1e-400, 1.7976931348623157e308, 4.9e-324]");   /* underflow is fine */
    if (!r) return;
    CHECK(r->items[0].number == 0.0 && r->items[1].number == 0.0 && signbit(r->items[1].number));
    CHECK(r->items[2].number == 1.7976931348623157e308);
    CHECK(r->items[3].number > 0);
    sft_json_free(r);
}

static void json_number_grammar_accepts_the_rfc_forms(void) {
    static const struct { const char *text; double v; } ok[] = {
        {"0", 0}, {"-0", -0.0}, {"1", 1}, {"-1", -1}, {"10", 10}, {"1.5", 1.5}, {"-0.5", -0.5}, {"0.0", 0},
        {"1e5", 1e5}, {"1E5", 1e5}, {"1e+5", 1e5}, {"1e-5", 1e-5}, {"1.25E-2", 0.0125}, {"0e0", 0}, {"-0.0e-0", 0},
        {"123456789012", 123456789012.0}, {"0.1", 0.1}, {"9007199254740993", 9007199254740992.0}, {"1e0001", 10}};
    size_t i;
    for (i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        sft_json *r = PARSE_OK_S(ok[i].text);
        if (!r) continue;
        CHECK_MSG(r->type == SFT_JSON_NUMBER && r->number == ok[i].v, "%s -> %.17g", ok[i].text, r->number);
        CHECK(strcmp(r->string, ok[i].text) == 0 && r->length == strlen(ok[i].text));
        sft_json_free(r);
    }
}

static void json_number_grammar_rejects_everything_else(void) {
    static const char *bad[] = {"01", "-01", "00", "+1", ".5", "-.5", "1.", "1.e5", "1e", "1e+", "1E-", "-", "--1",
                                "0x10", "1.5.5", "1e5e5", "1_000", "- 1", "1 .5", "Infinity", "-Infinity", "NaN",
                                "inf", "nan", "[01]", "[1.]", "{\"a\": .1}", "[-]", "1,", "0.e1", "1ee5", "\xD9\xA3"};
    size_t i;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) PARSE_FAILS_S(bad[i], SFT_ERR_FORMAT);
    PARSE_FAILS("012", SFT_ERR_FORMAT);
    CHECK_ERROR_MENTIONS("leading zeros");
    PARSE_FAILS("1.", SFT_ERR_FORMAT);
    CHECK_ERROR_MENTIONS("decimal point");
    PARSE_FAILS("1e", SFT_ERR_FORMAT);
    CHECK_ERROR_MENTIONS("exponent");
}

static void json_rejects_numbers_longer_than_1000_characters(void) {
    char s[1100];
    sft_json *r = NULL;
    memset(s, '0', sizeof s);
    s[0] = '1'; s[1] = '.'; s[999] = '5';                    /* "1.000...05": 1000 characters */
    r = parse_ok(__FILE__, __LINE__, s, 1000, NULL);
    if (r) { CHECK(r->number == 1.0 && r->length == 1000); sft_json_free(r); }
    s[999] = '0'; s[1000] = '5';                             /* 1001 characters */
    CHECK_STATUS(parse_with(s, 1001, NULL, &r), SFT_ERR_LIMIT);
    CHECK_ERROR_MENTIONS("1001 characters");
    CHECK(r == NULL);
    memset(s, '1', 1000);                                    /* 1000 digits: fine as text, too big for a double */
    CHECK_STATUS(parse_with(s, 1000, NULL, &r), SFT_ERR_LIMIT);
    CHECK_ERROR_MENTIONS("beyond the range of a double");
}

static void json_rejects_duplicate_keys(void) {
    PARSE_FAILS("{\"a\": 1, \"b\": 2, \"a\": 3}", SFT_ERR_FORMAT);
    CHECK_ERROR_MENTIONS("duplicate key \"a\"");
    CHECK_ERROR_MENTIONS("byte 17");                   /* the second "a" */
    PARSE_FAILS("{\"a\": 1, \"\\u0061\": 2}", SFT_ERR_FORMAT);   /* same key after decoding */
    PARSE_FAILS("[{\"x\": {\"k\": 1, \"k\": 1}}]", SFT_ERR_FORMAT);
    PARSE_FAILS("{\"\": 1, \"\": 2}", SFT_ERR_FORMAT);
    {   /* keys that differ only after a NUL, or by length, are different keys */
        sft_json *r = PARSE_OK("{\"a\\u0000b\": 1, \"a\\u0000c\": 2, \"a\": 3, \"ab\": 4, \"b\": {\"a\": 5}}");
        if (r) { CHECK(r->length == 5 && r->key_lengths[0] == 3); sft_json_free(r); }
    }
    {   /* many keys: the duplicate is found wherever it is */
        char *s = (char *)malloc(20000);
        size_t n = 0;
        int i;
        s[n++] = '{';
        for (i = 0; i < 1000; i++) n += (size_t)sprintf(s + n, "\"k%d\":%d,", i, i);
        n += (size_t)sprintf(s + n, "\"k500\":0}");
        parse_fails(__FILE__, __LINE__, s, n, SFT_ERR_FORMAT, NULL);
        CHECK_ERROR_MENTIONS("duplicate key \"k500\"");
        s[n - 8] = 'j';                                    /* "j500": unique again */
        {
            sft_json *r = parse_ok(__FILE__, __LINE__, s, n, NULL);
            if (r) { CHECK(r->length == 1001 && sft_json_get(r, "k999")->number == 999 && sft_json_get(r, "j500")); sft_json_free(r); }
        }
        free(s);
    }
}

static void json_rejects_trailing_garbage(void) {
    PARSE_FAILS("1 2", SFT_ERR_FORMAT);
    CHECK_ERROR_MENTIONS("expected end of input");
    PARSE_FAILS("{}x", SFT_ERR_FORMAT);
    PARSE_FAILS("[]]", SFT_ERR_FORMAT);
    PARSE_FAILS("{}}", SFT_ERR_FORMAT);
    PARSE_FAILS("truex", SFT_ERR_FORMAT);
    PARSE_FAILS("nullnull", SFT_ERR_FORMAT);
    PARSE_FAILS("\"a\"\"b\"", SFT_ERR_FORMAT);
    PARSE_FAILS("[] \x00", SFT_ERR_FORMAT);
    PARSE_FAILS("{} ,", SFT_ERR_FORMAT);
}

static void json_rejects_trailing_commas_and_missing_separators(void) {
    PARSE_FAILS("[1,]", SFT_ERR_FORMAT);
    CHECK_ERROR_MENTIONS("trailing comma");
    PARSE_FAILS("{\"a\":1,}", SFT_ERR_FORMAT);
    CHECK_ERROR_MENTIONS("trailing comma");
    PARSE_FAILS("[,1]", SFT_ERR_FORMAT);
    PARSE_FAILS("[1,,2]", SFT_ERR_FORMAT);
    PARSE_FAILS("[1 2]", SFT_ERR_FORMAT);
    CHECK_ERROR_MENTIONS("expected ',' or ']'");
    PARSE_FAILS("{\"a\":1 \"b\":2}", SFT_ERR_FORMAT);
    PARSE_FAILS("{\"a\" 1}", SFT_ERR_FORMAT);
    PARSE_FAILS("{\"a\"::1}", SFT_ERR_FORMAT);
    PARSE_FAILS("{,}", SFT_ERR_FORMAT);
    PARSE_FAILS("[}", SFT_ERR_FORMAT);
    PARSE_FAILS("{]", SFT_ERR_FORMAT);
    PARSE_FAILS("{\"a\":1]", SFT_ERR_FORMAT);
}

static void json_rejects_comments_and_non_json_tokens(void) {
    PARSE_FAILS("// c\n{}", SFT_ERR_FORMAT);
    CHECK_ERROR_MENTIONS("comments");
    PARSE_FAILS("[1 /* c */]", SFT_ERR_FORMAT);
    PARSE_FAILS("{\"a\": 1 // c\n}", SFT_ERR_FORMAT);
    PARSE_FAILS("True", SFT_ERR_FORMAT);
    PARSE_FAILS("nul", SFT_ERR_FORMAT);
    PARSE_FAILS("tru", SFT_ERR_FORMAT);
    PARSE_FAILS("undefined", SFT_ERR_FORMAT);
    PARSE_FAILS("'a'", SFT_ERR_FORMAT);
    PARSE_FAILS("{a: 1}", SFT_ERR_FORMAT);
    CHECK_ERROR_MENTIONS("expected a string key");
    PARSE_FAILS("{1: 1}", SFT_ERR_FORMAT);
    PARSE_FAILS("\"unterminated", SFT_ERR_FORMAT);
    CHECK_ERROR_MENTIONS("unterminated string");
}

static void json_rejects_empty_and_whitespace_only_input(void) {
    sft_json *r = (sft_json *)1;
    CHECK_STATUS(sft_json_parse(NULL, NULL, 0, "e.json", NULL, &r), SFT_ERR_FORMAT);
    CHECK(r == NULL);
    CHECK_ERROR_MENTIONS("e.json: byte 0 (line 1, col 1): unexpected end of input");
    PARSE_FAILS("", SFT_ERR_FORMAT);
    PARSE_FAILS(" \n\t ", SFT_ERR_FORMAT);
    PARSE_FAILS("[", SFT_ERR_FORMAT);
    CHECK_ERROR_MENTIONS("byte 1 (line 1, col 2): unexpected end of input, expected a value");
    PARSE_FAILS("[1", SFT_ERR_FORMAT);
    CHECK_ERROR_MENTIONS("unexpected end of input in the array that opens at byte 0");
    PARSE_FAILS("{\"a\": {\"b\": 1 ", SFT_ERR_FORMAT);
    CHECK_ERROR_MENTIONS("unexpected end of input in the object that opens at byte 6");
}

static void json_error_message_names_file_offset_line_and_column(void) {
    static const char text[] = "{\n  \"a\" 1}";
    sft_json *r;
    CHECK_STATUS(sft_json_parse(NULL, text, sizeof text - 1, "config.json", NULL, &r), SFT_ERR_FORMAT);
    CHECK_MSG(strcmp(sft_last_error(), "config.json: byte 8 (line 2, col 7): expected ':' after object key, found '1'") == 0,
              "message: %s", sft_last_error());
    {
        static const char text2[] = "{\"a\": [1,\n2,\n\"\\q\"]}";
        CHECK_STATUS(sft_json_parse(NULL, text2, sizeof text2 - 1, "x.json", NULL, &r), SFT_ERR_FORMAT);
        CHECK_ERROR_MENTIONS("x.json: byte 14 (line 3, col 2): invalid escape");
    }
}

static void json_enforces_the_input_size_limit(void) {
    sft_json_desc d;
    sft_json *r;
    memset(&d, 0, sizeof d);
    d.max_bytes = 8;
    CHECK_STATUS(parse_with("[1,2,3,4]", 9, &d, &r), SFT_ERR_LIMIT);
    CHECK_ERROR_MENTIONS("9 bytes");
    CHECK(r == NULL);
    CHECK_OK(parse_with("[1,2,34]", 8, &d, &r));
    sft_json_free(r);
}

static void json_rejects_null_arguments(void) {
    sft_json *r = (sft_json *)1;
    CHECK_STATUS(sft_json_parse(NULL, "[]", 2, "a", NULL, NULL), SFT_ERR_ARG);
    CHECK_STATUS(sft_json_parse(NULL, NULL, 2, "a", NULL, &r), SFT_ERR_ARG);
    CHECK(r == NULL);
    CHECK_OK(sft_json_parse(NULL, "[]", 2, NULL, NULL, &r));   /* name may be NULL */
    sft_json_free(r);
}

static void json_allow_nonfinite_accepts_python_tokens(void) {
    sft_json_desc d;
    sft_json *r;
    memset(&d, 0, sizeof d);
    d.allow_nonfinite = 1;
    r = parse_ok(__FILE__, __LINE__, "[NaN, Infinity, -Infinity, 1]", 29, &d);
    if (r) {
        CHECK(isnan(r->items[0].number));
        CHECK(isinf(r->items[1].number) && r->items[1].number > 0);
        CHECK(isinf(r->items[2].number) && r->items[2].number < 0);
        CHECK(strcmp(r->items[2].string, "-Infinity") == 0);
        sft_json_free(r);
    }
    parse_fails(__FILE__, __LINE__, "-NaN", 4, SFT_ERR_FORMAT, &d);
    parse_fails(__FILE__, __LINE__, "nan", 3, SFT_ERR_FORMAT, &d);
    parse_fails(__FILE__, __LINE__, "Inf", 3, SFT_ERR_FORMAT, &d);
    parse_fails(__FILE__, __LINE__, "{NaN: 1}", 8, SFT_ERR_FORMAT, &d);
    PARSE_FAILS("[NaN]", SFT_ERR_FORMAT);
    CHECK_ERROR_MENTIONS("allow_nonfinite");
}

static void json_tree_is_one_allocation_freed_by_json_free(void) {
    sft_context *ctx;
    sft_mem_stats before, during, after;
    sft_json *r;
    CHECK_OK(sft_context_create(NULL, &ctx));
    if (!ctx) return;
    before = sft_context_mem_stats(ctx);
    CHECK_OK(sft_json_parse(ctx, k_doc, sizeof k_doc - 1, "doc", NULL, &r));
    during = sft_context_mem_stats(ctx);
    CHECK_MSG(during.allocs - during.frees == before.allocs - before.frees + 1, "outstanding allocations: %llu",
              (unsigned long long)(during.allocs - during.frees - (before.allocs - before.frees)));
    sft_json_free(r);
    after = sft_context_mem_stats(ctx);
    CHECK(after.bytes_in_use == before.bytes_in_use && after.allocs - after.frees == before.allocs - before.frees);
    sft_context_destroy(ctx);
}

typedef struct { int left; } budget;
static void *budget_alloc(size_t size, void *user) {
    budget *b = (budget *)user;
    if (b->left-- <= 0) return NULL;
    return malloc(size);
}
static void budget_free(void *p, void *user) { (void)user; free(p); }

static void json_reports_out_of_memory_and_leaks_nothing(void) {
    int n, ok = 0;
    for (n = 0; n < 8 && !ok; n++) {
        budget b;
        sft_context_desc cd;
        sft_context *ctx = NULL;
        sft_json *r = NULL;
        sft_status s;
        sft_mem_stats m0, m1;
        memset(&cd, 0, sizeof cd);
        b.left = 1 + n;     /* the context itself takes one */
        cd.allocator.alloc = budget_alloc;
        cd.allocator.free = budget_free;
        cd.allocator.user = &b;
        CHECK_OK(sft_context_create(&cd, &ctx));
        if (!ctx) return;
        m0 = sft_context_mem_stats(ctx);
        s = sft_json_parse(ctx, k_doc, sizeof k_doc - 1, "doc", NULL, &r);
        if (s == SFT_OK) { ok = 1; sft_json_free(r); }
        else {
            CHECK_MSG(s == SFT_ERR_NOMEM, "with %d allocations: %s", n, sft_status_str(s));
            CHECK(r == NULL);
        }
        m1 = sft_context_mem_stats(ctx);
        CHECK(m1.bytes_in_use == m0.bytes_in_use);
        sft_context_destroy(ctx);
    }
    CHECK(ok && n > 1);   /* some budgets failed, a larger one succeeded */
}

static int has_nul_key(const sft_json *v) {
    size_t i;
    if (v->type != SFT_JSON_ARRAY && v->type != SFT_JSON_OBJECT) return 0;
    for (i = 0; i < v->length; i++)
        if ((v->type == SFT_JSON_OBJECT && strlen(v->keys[i]) != v->key_lengths[i]) || has_nul_key(&v->items[i])) return 1;
    return 0;
}

static void json_survives_random_mutations(void) {
    /* Flip, drop or insert bytes of a valid document: every result must either
       fail cleanly or be a document that writes and parses back to itself. */
    uint64_t st = 42;
    size_t n = sizeof k_doc - 1;
    int iter, ok = 0, failed = 0;
    char *buf = (char *)malloc(n + 2);
    for (iter = 0; iter < 3000; iter++) {
        size_t m = n, pos;
        sft_json *r = NULL;
        sft_status s;
        int op = (int)t_rand(&st, 0, 3);
        memcpy(buf, k_doc, n);
        pos = (size_t)t_rand(&st, 0, (float)n);
        if (pos >= n) pos = n - 1;
        if (op == 0) buf[pos] = (char)(int)t_rand(&st, 0, 256);
        else if (op == 1) { memmove(buf + pos, buf + pos + 1, n - pos - 1); m = n - 1; }
        else { memmove(buf + pos + 1, buf + pos, n - pos); buf[pos] = "\"\\{}[],:0e-.u\x80\xC3"[(int)t_rand(&st, 0, 16)]; m = n + 1; }
        s = sft_json_parse(NULL, buf, m, "m", NULL, &r);
        if (s == SFT_OK) {
            sft_json_writer w;
            char *text;
            sft_json *back = NULL;
            ok++;
            if (!has_nul_key(r)) {
                memset(&w, 0, sizeof w);
                write_tree(&w, r);
                text = written(&w);
                CHECK(text != NULL);
                if (text) {
                    CHECK_OK(sft_json_parse(NULL, text, strlen(text), "back", NULL, &back));
                    if (back) { CHECK(json_equal(r, back)); sft_json_free(back); }
                    sft_free(NULL, text);
                }
            }
            sft_json_free(r);
        } else {
            failed++;
            CHECK_MSG((s == SFT_ERR_FORMAT || s == SFT_ERR_LIMIT) && r == NULL, "mutation %d: %s", iter, sft_status_str(s));
        }
    }
    free(buf);
    CHECK(ok > 0 && failed > 0);
}

/* ---- round trips ------------------------------------------------------------ */

static void json_round_trip_parse_write_parse_is_equal(void) {
    int indent;
    sft_json *r = PARSE_OK(k_doc);
    if (!r) return;
    for (indent = 0; indent <= 4; indent += 2) {
        sft_json_writer w;
        char *text;
        sft_json *back = NULL;
        memset(&w, 0, sizeof w);
        w.indent = indent;
        /* keys with a NUL cannot go through sft_json_write_key; k_doc has none */
        write_tree(&w, r);
        text = written(&w);
        CHECK(text != NULL);
        if (!text) continue;
        CHECK_OK(sft_json_parse(NULL, text, strlen(text), "rt", NULL, &back));
        if (back) {
            CHECK_MSG(json_equal(r, back), "indent %d: tree differs after a round trip:\n%s", indent, text);
            sft_json_free(back);
        }
        if (indent == 0) CHECK(strchr(text, '\n') == NULL);
        sft_free(NULL, text);
    }
    sft_json_free(r);
}

static void json_writer_compact_output_is_exact(void) {
    sft_json_writer w;
    char *text;
    memset(&w, 0, sizeof w);
    sft_json_write_object_begin(&w);
    sft_json_write_key(&w, "a"); sft_json_write_int(&w, 1);
    sft_json_write_key(&w, "b");
    sft_json_write_array_begin(&w);
    sft_json_write_bool(&w, 1); sft_json_write_bool(&w, 0); sft_json_write_null(&w);
    sft_json_write_array_end(&w);
    sft_json_write_key(&w, "c");
    sft_json_write_object_begin(&w); sft_json_write_key(&w, "d"); sft_json_write_string(&w, "x\ny"); sft_json_write_object_end(&w);
    sft_json_write_key(&w, "e"); sft_json_write_array_begin(&w); sft_json_write_array_end(&w);
    sft_json_write_key(&w, "f"); sft_json_write_object_begin(&w); sft_json_write_object_end(&w);
    sft_json_write_key(&w, "g"); sft_json_write_number(&w, 0.5);
    sft_json_write_object_end(&w);
    text = written(&w);
    CHECK(text && strcmp(text, "{\"a\":1,\"b\":[true,false,null],\"c\":{\"d\":\"x\\ny\"},\"e\":[],\"f\":{},\"g\":0.5}") == 0);
    sft_free(NULL, text);
    CHECK(w.buf == NULL && w.len == 0);   /* finish resets the writer */
}

static void json_writer_indent_2_matches_python(void) {
    /* json.dumps({"a": 1, "b": [True, False, None], "c": {"d": "x\ny"}, "e": [], "f": {}}, indent=2) */
    static const char want[] = "{\n  \"a\": 1,\n  \"b\": [\n    true,\n    false,\n    null\n  ],\n  \"c\": {\n"
                               "    \"d\": \"x\\ny\"\n  },\n  \"e\": [],\n  \"f\": {}\n}";
    sft_json_writer w;
    char *text;
    memset(&w, 0, sizeof w);
    w.indent = 2;
    sft_json_write_object_begin(&w);
    sft_json_write_key(&w, "a"); sft_json_write_int(&w, 1);
    sft_json_write_key(&w, "b");
    sft_json_write_array_begin(&w);
    sft_json_write_bool(&w, 1); sft_json_write_bool(&w, 0); sft_json_write_null(&w);
    sft_json_write_array_end(&w);
    sft_json_write_key(&w, "c");
    sft_json_write_object_begin(&w); sft_json_write_key(&w, "d"); sft_json_write_string(&w, "x\ny"); sft_json_write_object_end(&w);
    sft_json_write_key(&w, "e"); sft_json_write_array_begin(&w); sft_json_write_array_end(&w);
    sft_json_write_key(&w, "f"); sft_json_write_object_begin(&w); sft_json_write_object_end(&w);
    sft_json_write_object_end(&w);
    text = written(&w);
    CHECK_MSG(text && strcmp(text, want) == 0, "got:\n%s", text ? text : "(null)");
    sft_free(NULL, text);
    memset(&w, 0, sizeof w);   /* a scalar document has no line breaks */
    w.indent = 4;
    sft_json_write_string(&w, "s");
    text = written(&w);
    CHECK(text && strcmp(text, "\"s\"") == 0);
    sft_free(NULL, text);
}

static void json_writer_prints_shortest_round_trip_numbers(void) {
    /* want = Python's repr / json.dumps */
    CHECK_NUMBER_TEXT(0.1, "0.1");
    CHECK_NUMBER_TEXT(1e-05, "1e-05");
    CHECK_NUMBER_TEXT(2.0, "2.0");
    CHECK_NUMBER_TEXT(1.5e300, "1.5e+300");
    CHECK_NUMBER_TEXT(-0.0, "-0.0");
    CHECK_NUMBER_TEXT(0.0, "0.0");
    CHECK_NUMBER_TEXT(123456789012.0, "123456789012.0");
    CHECK_NUMBER_TEXT(1e16, "1e+16");
    CHECK_NUMBER_TEXT(1e15, "1000000000000000.0");
    CHECK_NUMBER_TEXT(0.0001, "0.0001");
    CHECK_NUMBER_TEXT(5e-324, "5e-324");
    CHECK_NUMBER_TEXT(1.7976931348623157e308, "1.7976931348623157e+308");
    CHECK_NUMBER_TEXT(1.0 / 3.0, "0.3333333333333333");
    CHECK_NUMBER_TEXT(100.0, "100.0");
    CHECK_NUMBER_TEXT(2.5e-5, "2.5e-05");
    CHECK_NUMBER_TEXT(0.1 + 0.2, "0.30000000000000004");
    CHECK_NUMBER_TEXT(-1.25, "-1.25");
    CHECK_NUMBER_TEXT(1e22, "1e+22");
    CHECK_NUMBER_TEXT(1e-7, "1e-07");
    CHECK_NUMBER_TEXT(123456789.0, "123456789.0");
    CHECK_NUMBER_TEXT(9007199254740992.0, "9007199254740992.0");
    CHECK_NUMBER_TEXT(-2.5e-300, "-2.5e-300");
    CHECK_NUMBER_TEXT(1e100, "1e+100");
    CHECK_NUMBER_TEXT(2.2250738585072014e-308, "2.2250738585072014e-308");
    CHECK_NUMBER_TEXT(2e-4, "0.0002");
    CHECK_NUMBER_TEXT(1234.5, "1234.5");
    /* powers of two, where the gap below is half the gap above: the shortest
       form is sometimes the candidate one unit up, not the correctly rounded one */
    CHECK_NUMBER_TEXT(ldexp(1.0, 378), "6.156563468186638e+113");
    CHECK_NUMBER_TEXT(ldexp(1.0, 132), "5.444517870735016e+39");
    CHECK_NUMBER_TEXT(ldexp(1.0, -921), "5.641232424577593e-278");
    CHECK_NUMBER_TEXT(-ldexp(1.0, -705), "-5.940911144672375e-213");
    CHECK_NUMBER_TEXT(ldexp(1.0, 543), "2.879304828507646e+163");
}

static void json_writer_numbers_round_trip_bit_exactly(void) {
    uint64_t st = 7;
    int i, bad = 0;
    for (i = 0; i < 20000; i++) {
        uint64_t bits = ((uint64_t)(t_rand(&st, 0, 65536.0f)) << 48) ^ ((uint64_t)(t_rand(&st, 0, 16777216.0f)) << 24) ^
                        (uint64_t)t_rand(&st, 0, 16777216.0f);
        double v, back;
        sft_json_writer w;
        char *text;
        sft_json *r = NULL;
        memcpy(&v, &bits, 8);
        if (i % 3 == 0) v = (double)t_rand(&st, -1000.0f, 1000.0f);   /* floats widened: short forms */
        if (isnan(v) || isinf(v)) continue;
        memset(&w, 0, sizeof w);
        sft_json_write_number(&w, v);
        text = written(&w);
        if (!text) { bad++; continue; }
        if (sft_json_parse(NULL, text, strlen(text), "n", NULL, &r) != SFT_OK) { bad++; sft_free(NULL, text); continue; }
        back = r->number;
        if (memcmp(&back, &v, 8) != 0 || strlen(text) > 24) {
            if (bad++ < 5) t_failf(__FILE__, __LINE__, "%.17g written as %s reads back as %.17g", v, text, back);
        }
        sft_json_free(r);
        sft_free(NULL, text);
    }
    CHECK(bad == 0);
}

static void json_writer_prints_integers_exactly(void) {
    sft_json_writer w;
    char *text;
    memset(&w, 0, sizeof w);
    sft_json_write_array_begin(&w);
    sft_json_write_int(&w, 0);
    sft_json_write_int(&w, -1);
    sft_json_write_int(&w, 123456789012);
    sft_json_write_int(&w, INT64_MAX);
    sft_json_write_int(&w, INT64_MIN);
    sft_json_write_array_end(&w);
    text = written(&w);
    CHECK(text && strcmp(text, "[0,-1,123456789012,9223372036854775807,-9223372036854775808]") == 0);
    sft_free(NULL, text);
}

static void json_writer_rejects_nonfinite_unless_allowed(void) {
    sft_json_writer w;
    char *text = (char *)1;
    size_t len;
    memset(&w, 0, sizeof w);
    sft_json_write_array_begin(&w);
    sft_json_write_number(&w, NAN);
    sft_json_write_array_end(&w);
    CHECK_STATUS(sft_json_writer_finish(&w, &text, &len), SFT_ERR_ARG);
    CHECK(text == NULL);
    memset(&w, 0, sizeof w);
    sft_json_write_number(&w, -HUGE_VAL);
    CHECK_STATUS(sft_json_writer_finish(&w, &text, &len), SFT_ERR_ARG);
    CHECK_ERROR_MENTIONS("-Infinity");
    memset(&w, 0, sizeof w);
    w.allow_nonfinite = 1;
    sft_json_write_array_begin(&w);
    sft_json_write_number(&w, NAN);
    sft_json_write_number(&w, HUGE_VAL);
    sft_json_write_number(&w, -HUGE_VAL);
    sft_json_write_array_end(&w);
    text = written(&w);
    CHECK(text && strcmp(text, "[NaN,Infinity,-Infinity]") == 0);
    sft_free(NULL, text);
}

static void json_writer_escapes_strings(void) {
    /* json.dumps(['a"b\\c\n\t\x01\x1f/é\x7f'], ensure_ascii=False) + the short escapes \b \f \r */
    sft_json_writer w;
    char *text;
    memset(&w, 0, sizeof w);
    sft_json_write_array_begin(&w);
    sft_json_write_string(&w, "a\"b\\c\n\t\x01\x1f/\xC3\xA9\x7f");
    sft_json_write_string(&w, "\b\f\r");
    sft_json_write_string_n(&w, "a\0b", 3);
    sft_json_write_string_n(&w, NULL, 0);
    sft_json_write_string(&w, "\xF0\x9F\x98\x80");
    sft_json_write_array_end(&w);
    text = written(&w);
    CHECK_MSG(text && strcmp(text, "[\"a\\\"b\\\\c\\n\\t\\u0001\\u001f/\xC3\xA9\x7f\",\"\\b\\f\\r\",\"a\\u0000b\",\"\","
                                   "\"\xF0\x9F\x98\x80\"]") == 0, "got %s", text ? text : "(null)");
    sft_free(NULL, text);
    memset(&w, 0, sizeof w);   /* keys are escaped too */
    sft_json_write_object_begin(&w);
    sft_json_write_key(&w, "k\"\n");
    sft_json_write_int(&w, 1);
    sft_json_write_object_end(&w);
    text = written(&w);
    CHECK(text && strcmp(text, "{\"k\\\"\\n\":1}") == 0);
    sft_free(NULL, text);
}

static void json_writer_rejects_invalid_utf8(void) {
    static const char *bad[] = {"\xC0\x80", "\xED\xA0\x80", "\xF4\x90\x80\x80", "a\xC3", "\x80", "\xFF"};
    size_t i;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sft_json_writer w;
        char *text;
        size_t len;
        memset(&w, 0, sizeof w);
        sft_json_write_string(&w, bad[i]);
        CHECK_STATUS(sft_json_writer_finish(&w, &text, &len), SFT_ERR_ARG);
        memset(&w, 0, sizeof w);
        sft_json_write_object_begin(&w);
        sft_json_write_key(&w, bad[i]);
        sft_json_write_null(&w);
        sft_json_write_object_end(&w);
        CHECK_STATUS(sft_json_writer_finish(&w, &text, &len), SFT_ERR_ARG);
    }
    CHECK_ERROR_MENTIONS("UTF-8");
}

/* finish_status: run the calls in fn on a fresh writer and finish it. */
static sft_status finish_status(void (*fn)(sft_json_writer *)) {
    sft_json_writer w;
    char *text = NULL;
    size_t len;
    sft_status s;
    memset(&w, 0, sizeof w);
    fn(&w);
    s = sft_json_writer_finish(&w, &text, &len);
    if (s == SFT_OK) sft_free(NULL, text);
    return s;
}
static void wr_nothing(sft_json_writer *w) { (void)w; }
static void wr_unclosed_object(sft_json_writer *w) { sft_json_write_object_begin(w); }
static void wr_unclosed_array(sft_json_writer *w) { sft_json_write_array_begin(w); sft_json_write_int(w, 1); }
static void wr_key_without_value(sft_json_writer *w) { sft_json_write_object_begin(w); sft_json_write_key(w, "a"); }
static void wr_mismatched_end(sft_json_writer *w) { sft_json_write_array_begin(w); sft_json_write_object_end(w); }
static void wr_mismatched_end2(sft_json_writer *w) { sft_json_write_object_begin(w); sft_json_write_array_end(w); }
static void wr_end_at_top(sft_json_writer *w) { sft_json_write_int(w, 1); sft_json_write_array_end(w); }
static void wr_value_without_key(sft_json_writer *w) {
    sft_json_write_object_begin(w); sft_json_write_int(w, 1); sft_json_write_object_end(w);
}
static void wr_key_at_top(sft_json_writer *w) { sft_json_write_key(w, "a"); sft_json_write_int(w, 1); }
static void wr_key_in_array(sft_json_writer *w) {
    sft_json_write_array_begin(w); sft_json_write_key(w, "a"); sft_json_write_int(w, 1); sft_json_write_array_end(w);
}
static void wr_two_keys(sft_json_writer *w) {
    sft_json_write_object_begin(w); sft_json_write_key(w, "a"); sft_json_write_key(w, "b");
    sft_json_write_int(w, 1); sft_json_write_object_end(w);
}
static void wr_key_then_end(sft_json_writer *w) { sft_json_write_object_begin(w); sft_json_write_key(w, "a"); sft_json_write_object_end(w); }
static void wr_two_top_values(sft_json_writer *w) { sft_json_write_int(w, 1); sft_json_write_int(w, 2); }
static void wr_two_top_containers(sft_json_writer *w) {
    sft_json_write_array_begin(w); sft_json_write_array_end(w); sft_json_write_object_begin(w); sft_json_write_object_end(w);
}
static void wr_valid(sft_json_writer *w) {
    sft_json_write_object_begin(w); sft_json_write_key(w, "a"); sft_json_write_array_begin(w);
    sft_json_write_array_end(w); sft_json_write_object_end(w);
}

static void json_writer_finish_fails_on_incomplete_or_empty_documents(void) {
    CHECK_STATUS(finish_status(wr_nothing), SFT_ERR_STATE);
    CHECK_STATUS(finish_status(wr_unclosed_object), SFT_ERR_STATE);
    CHECK_ERROR_MENTIONS("open");
    CHECK_STATUS(finish_status(wr_unclosed_array), SFT_ERR_STATE);
    CHECK_STATUS(finish_status(wr_key_without_value), SFT_ERR_STATE);
    CHECK_STATUS(finish_status(wr_valid), SFT_OK);
}

static void json_writer_rejects_misplaced_keys_values_and_ends(void) {
    CHECK_STATUS(finish_status(wr_mismatched_end), SFT_ERR_STATE);
    CHECK_STATUS(finish_status(wr_mismatched_end2), SFT_ERR_STATE);
    CHECK_STATUS(finish_status(wr_end_at_top), SFT_ERR_STATE);
    CHECK_STATUS(finish_status(wr_value_without_key), SFT_ERR_STATE);
    CHECK_STATUS(finish_status(wr_key_at_top), SFT_ERR_STATE);
    CHECK_STATUS(finish_status(wr_key_in_array), SFT_ERR_STATE);
    CHECK_STATUS(finish_status(wr_two_keys), SFT_ERR_STATE);
    CHECK_STATUS(finish_status(wr_key_then_end), SFT_ERR_STATE);
    CHECK_STATUS(finish_status(wr_two_top_values), SFT_ERR_STATE);
    CHECK_STATUS(finish_status(wr_two_top_containers), SFT_ERR_STATE);
}

static void json_writer_limits_depth_to_128(void) {
    sft_json_writer w;
    char *text = NULL;
    size_t len;
    int i;
    memset(&w, 0, sizeof w);
    for (i = 0; i < 128; i++) sft_json_write_array_begin(&w);
    for (i = 0; i < 128; i++) sft_json_write_array_end(&w);
    CHECK_OK(sft_json_writer_finish(&w, &text, &len));
    CHECK(len == 256);
    sft_free(NULL, text);
    memset(&w, 0, sizeof w);
    for (i = 0; i < 129; i++) sft_json_write_object_begin(&w), sft_json_write_key(&w, "a");
    for (i = 0; i < 129; i++) sft_json_write_object_end(&w);
    CHECK_STATUS(sft_json_writer_finish(&w, &text, &len), SFT_ERR_LIMIT);
    CHECK_ERROR_MENTIONS("128");
}

static void json_writer_ignores_calls_after_a_failure_and_reset_clears(void) {
    sft_context *ctx;
    sft_json_writer w;
    char *text = NULL;
    size_t len;
    sft_mem_stats m0, m1;
    CHECK_OK(sft_context_create(NULL, &ctx));
    if (!ctx) return;
    m0 = sft_context_mem_stats(ctx);
    memset(&w, 0, sizeof w);
    w.ctx = ctx;
    sft_json_write_array_begin(&w);
    sft_json_write_int(&w, 1);
    sft_json_write_object_end(&w);        /* first failure: STATE */
    sft_json_write_number(&w, NAN);       /* would be ARG; ignored */
    sft_json_write_array_end(&w);
    CHECK(w.status == SFT_ERR_STATE);
    CHECK_STATUS(sft_json_writer_finish(&w, &text, &len), SFT_ERR_STATE);
    CHECK(text == NULL && w.status == SFT_OK && w.len == 0);
    sft_json_write_int(&w, 7);            /* usable again after finish */
    sft_json_writer_reset(&w);            /* reset drops it */
    sft_json_write_int(&w, 8);
    CHECK_OK(sft_json_writer_finish(&w, &text, &len));
    CHECK(text && strcmp(text, "8") == 0 && len == 1);
    sft_free(ctx, text);
    sft_json_writer_reset(&w);
    m1 = sft_context_mem_stats(ctx);
    CHECK(m1.bytes_in_use == m0.bytes_in_use);   /* nothing leaked through the context */
    sft_context_destroy(ctx);
}

static void json_writer_grows_for_large_documents(void) {
    sft_json_writer w;
    char *text = NULL;
    size_t len;
    sft_json *r = NULL;
    int i;
    memset(&w, 0, sizeof w);
    sft_json_write_array_begin(&w);
    for (i = 0; i < 100000; i++) sft_json_write_int(&w, i);
    sft_json_write_array_end(&w);
    CHECK_OK(sft_json_writer_finish(&w, &text, &len));
    if (!text) return;
    CHECK_OK(sft_json_parse(NULL, text, len, "big", NULL, &r));
    if (r) { CHECK(r->length == 100000 && r->items[99999].number == 99999.0); sft_json_free(r); }
    sft_free(NULL, text);
}

static void json_numbers_do_not_depend_on_the_c_locale(void) {
    /* Under a locale whose decimal point is ',' strtod and printf change; parser
       and writer must not. Runs in every locale this machine has of that kind. */
    static const char *names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8", "C"};
    size_t i;
    for (i = 0; i < sizeof names / sizeof names[0]; i++) {
        sft_json *r = NULL;
        sft_json_writer w;
        char *text;
        if (!setlocale(LC_NUMERIC, names[i])) continue;
        CHECK_OK(sft_json_parse(NULL, "[1.5, 2.5e-1]", 13, "loc", NULL, &r));
        if (r) { CHECK_MSG(r->items[0].number == 1.5 && r->items[1].number == 0.25, "locale %s", names[i]); sft_json_free(r); }
        memset(&w, 0, sizeof w);
        sft_json_write_number(&w, 1.5);
        text = written(&w);
        CHECK_MSG(text && strcmp(text, "1.5") == 0, "locale %s: %s", names[i], text ? text : "(null)");
        sft_free(NULL, text);
    }
    setlocale(LC_NUMERIC, "C");
}

void suite_json(void) {
    RUN(json_parses_every_value_type);
    RUN(json_get_and_at_return_null_when_absent_or_wrong_type);
    RUN(json_decodes_every_escape);
    RUN(json_accepts_utf8_at_every_boundary);
    RUN(json_accepts_whitespace_of_all_four_kinds);
    RUN(json_rejects_every_truncated_prefix_of_a_valid_document);
    RUN(json_rejects_lone_surrogate_escapes);
    RUN(json_rejects_invalid_escapes);
    RUN(json_rejects_raw_control_characters_in_strings);
    RUN(json_rejects_overlong_utf8);
    RUN(json_rejects_surrogates_encoded_in_utf8);
    RUN(json_rejects_utf8_beyond_u10ffff);
    RUN(json_rejects_truncated_and_stray_utf8_sequences);
    RUN(json_rejects_byte_order_mark);
    RUN(json_depth_limit_allows_exactly_max_depth);
    RUN(json_deep_nesting_does_not_use_the_c_stack);
    RUN(json_rejects_numbers_that_overflow_a_double);
    RUN(json_number_grammar_accepts_the_rfc_forms);
    RUN(json_number_grammar_rejects_everything_else);
    RUN(json_rejects_numbers_longer_than_1000_characters);
    RUN(json_rejects_duplicate_keys);
    RUN(json_rejects_trailing_garbage);
    RUN(json_rejects_trailing_commas_and_missing_separators);
    RUN(json_rejects_comments_and_non_json_tokens);
    RUN(json_rejects_empty_and_whitespace_only_input);
    RUN(json_error_message_names_file_offset_line_and_column);
    RUN(json_enforces_the_input_size_limit);
    RUN(json_rejects_null_arguments);
    RUN(json_allow_nonfinite_accepts_python_tokens);
    RUN(json_tree_is_one_allocation_freed_by_json_free);
    RUN(json_reports_out_of_memory_and_leaks_nothing);
    RUN(json_survives_random_mutations);
    RUN(json_round_trip_parse_write_parse_is_equal);
    RUN(json_writer_compact_output_is_exact);
    RUN(json_writer_indent_2_matches_python);
    RUN(json_writer_prints_shortest_round_trip_numbers);
    RUN(json_writer_numbers_round_trip_bit_exactly);
    RUN(json_writer_prints_integers_exactly);
    RUN(json_writer_rejects_nonfinite_unless_allowed);
    RUN(json_writer_escapes_strings);
    RUN(json_writer_rejects_invalid_utf8);
    RUN(json_writer_finish_fails_on_incomplete_or_empty_documents);
    RUN(json_writer_rejects_misplaced_keys_values_and_ends);
    RUN(json_writer_limits_depth_to_128);
    RUN(json_writer_ignores_calls_after_a_failure_and_reset_clears);
    RUN(json_writer_grows_for_large_documents);
    RUN(json_numbers_do_not_depend_on_the_c_locale);
}
