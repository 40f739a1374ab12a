/* test_tokenizer.c - tokenizer.json: ids, decoded text and special-token
   handling identical to Hugging Face tokenizers on the fixtures that
   tools/make_tokenizer_fixtures.py wrote (six families: GPT-2, Llama-3, Qwen2,
   SmolLM2 byte-level BPE; Llama-2/TinyLlama and Mistral SentencePiece-style),
   and bad input answered with a status. */
#include "test.h"

#define T_FIX "tests/fixtures/tokenizers/"

static int t_ids_equal(const int32_t *got, size_t n, const sft_json *want, const char *what, const char *family,
                       const char *name) {
    size_t i;
    if (!want || want->type != SFT_JSON_ARRAY) { t_failf(__FILE__, __LINE__, "%s %s: no %s in the fixture", family, name, what); return 0; }
    for (i = 0; i < n && i < want->length; i++)
        if (got[i] != (int32_t)want->items[i].number) break;
    if (i == n && n == want->length) return 1;
    t_failf(__FILE__, __LINE__, "%s case '%s': %s differ at [%zu] (got %zu ids, want %zu): got %d want %d", family, name, what, i, n,
            want->length, i < n ? got[i] : -1, i < want->length ? (int)want->items[i].number : -1);
    return 0;
}

static void t_check_text(const char *got, size_t len, const sft_json *want, const char *what, const char *family, const char *name) {
    if (!want || want->type != SFT_JSON_STRING) { t_failf(__FILE__, __LINE__, "%s %s: no %s", family, name, what); return; }
    if (len != want->length || memcmp(got, want->string, len) != 0)
        t_failf(__FILE__, __LINE__, "%s case '%s': %s \"%.*s\" want \"%s\"", family, name, what, (int)len, got, want->string);
}

/* every case of one family: encode without and with special tokens, decode with
   and without skipping special tokens */
static void t_family(const char *family) {
    sft_context *ctx = t_context(1);
    sft_tokenizer *tok = NULL;
    char dir[256], path[300];
    sft_json *exp;
    const sft_json *cases;
    size_t c;
    snprintf(dir, sizeof dir, T_FIX "%s", family);
    snprintf(path, sizeof path, "%s/expected.json", dir);
    CHECK_OK(sft_tokenizer_load(ctx, dir, &tok));
    exp = t_json_file(ctx, path);
    cases = exp ? sft_json_get(exp, "cases") : NULL;
    CHECK_MSG(cases && cases->length >= 14, "%s: the fixture has too few cases", family);
    for (c = 0; tok && cases && c < cases->length; c++) {
        const sft_json *k = &cases->items[c], *text = sft_json_get(k, "text");
        const char *name = sft_json_get(k, "name") ? sft_json_get(k, "name")->string : "?";
        int32_t *ids = NULL;
        size_t n = 0, len = 0;
        char *out = NULL;
        CHECK_OK(sft_tokenizer_encode(tok, text->string, text->length, 0, &ids, &n));
        if (ids && t_ids_equal(ids, n, sft_json_get(k, "ids"), "ids", family, name)) {
            CHECK_OK(sft_tokenizer_decode(tok, ids, n, 0, &out, &len));
            if (out) t_check_text(out, len, sft_json_get(k, "decoded"), "decoded", family, name);
            sft_free(ctx, out); out = NULL;
            CHECK_OK(sft_tokenizer_decode(tok, ids, n, 1, &out, &len));
            if (out) t_check_text(out, len, sft_json_get(k, "decoded_skip_special"), "decoded (skip special)", family, name);
            sft_free(ctx, out);
        }
        sft_free(ctx, ids); ids = NULL;
        CHECK_OK(sft_tokenizer_encode(tok, text->string, text->length, 1, &ids, &n));
        if (ids) t_ids_equal(ids, n, sft_json_get(k, "ids_with_special"), "ids with special tokens", family, name);
        sft_free(ctx, ids);
    }
    sft_json_free(exp);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
}

static void gpt2_byte_level_bpe_matches_hugging_face(void) { t_family("gpt2"); }
static void llama3_split_and_byte_level_match_hugging_face(void) { t_family("llama3"); }
static void qwen2_split_and_byte_level_match_hugging_face(void) { t_family("qwen2"); }
static void smollm2_digits_and_byte_level_match_hugging_face(void) { t_family("smollm2"); }
static void llama2_sentencepiece_bpe_matches_hugging_face(void) { t_family("llama2"); }
static void mistral_metaspace_bpe_matches_hugging_face(void) { t_family("mistral"); }

static void tokenizer_config_gives_special_ids_and_template(void) {
    sft_context *ctx = t_context(1);
    sft_tokenizer *tok = NULL;
    sft_tokenizer_info info;
    CHECK_OK(sft_tokenizer_load(ctx, T_FIX "llama2", &tok));
    if (!tok) { sft_context_destroy(ctx); return; }
    info = sft_tokenizer_get_info(tok);
    CHECK(info.bos_id >= 0 && info.bos_id == sft_tokenizer_token_to_id(tok, "<s>"));
    CHECK(info.eos_id >= 0 && info.eos_id == sft_tokenizer_token_to_id(tok, "</s>"));
    CHECK(info.add_bos_token == 1);
    CHECK(info.chat_template != NULL);
    CHECK(strcmp(sft_tokenizer_id_to_token(tok, info.bos_id), "<s>") == 0);
    CHECK(sft_tokenizer_id_to_token(tok, -1) == NULL && sft_tokenizer_id_to_token(tok, sft_tokenizer_vocab_size(tok)) == NULL);
    CHECK(sft_tokenizer_token_to_id(tok, "no such token, surely") == -1);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
}

static void t_write(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (f) { fputs(text, f); fclose(f); }
}

static void t_load_expect(const char *json, sft_status want, const char *mention) {
    sft_context *ctx = t_context(1);
    sft_tokenizer *tok = (sft_tokenizer *)1;
    char path[512];
    snprintf(path, sizeof path, "%s/tokenizer_bad.json", t_tmpdir());
    t_write(path, json);
    CHECK_STATUS(sft_tokenizer_load(ctx, path, &tok), want);
    CHECK(tok == NULL);
    CHECK_ERROR_MENTIONS(mention);
    sft_context_destroy(ctx);
}

static void unsupported_or_malformed_tokenizers_are_refused(void) {
    t_load_expect("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", SFT_ERR_UNSUPPORTED, "WordPiece");
    t_load_expect("{\"model\": {\"type\": \"BPE\"}}", SFT_ERR_FORMAT, "model.vocab");
    t_load_expect("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a c\"]}}", SFT_ERR_FORMAT,
                  "merges[0]");
    t_load_expect("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": "
                  "{\"type\": \"Whitespace\"}}", SFT_ERR_UNSUPPORTED, "Whitespace");
    t_load_expect("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": {\"type\": "
                  "\"Split\", \"pattern\": {\"Regex\": \"\\\\w+\"}, \"behavior\": \"Isolated\"}}", SFT_ERR_UNSUPPORTED, "\\w+");
    t_load_expect("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -3}}}", SFT_ERR_FORMAT, "not an id");
    t_load_expect("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}}}", SFT_ERR_FORMAT, "two tokens");
    t_load_expect("{\"model\": ", SFT_ERR_FORMAT, "tokenizer_bad.json");
}

static void bad_text_and_bad_ids_are_refused(void) {
    sft_context *ctx = t_context(1);
    sft_tokenizer *tok = NULL;
    int32_t *ids = NULL, bad[2] = {5, 1 << 30};
    size_t n = 0, len = 0;
    char *text = NULL;
    CHECK_OK(sft_tokenizer_load(ctx, T_FIX "gpt2", &tok));
    if (!tok) { sft_context_destroy(ctx); return; }
    CHECK_STATUS(sft_tokenizer_encode(tok, "ok \xC3\x28 no", 8, 0, &ids, &n), SFT_ERR_ARG);
    CHECK_ERROR_MENTIONS("byte 3");
    CHECK(ids == NULL && n == 0);
    CHECK_STATUS(sft_tokenizer_decode(tok, bad, 2, 0, &text, &len), SFT_ERR_ARG);
    CHECK_ERROR_MENTIONS("ids[1]");
    CHECK_OK(sft_tokenizer_encode(tok, "", 0, 0, &ids, &n));
    CHECK(n == 0);
    sft_free(ctx, ids);
    CHECK_OK(sft_tokenizer_decode(tok, bad, 0, 0, &text, &len));
    CHECK(len == 0 && text && text[0] == 0);
    sft_free(ctx, text);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
}

static void decode_turns_broken_bytes_into_replacement_characters(void) {
    sft_context *ctx = t_context(1);
    sft_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    size_t n = 0, len = 0;
    char *text = NULL;
    CHECK_OK(sft_tokenizer_load(ctx, T_FIX "gpt2", &tok));
    if (!tok) { sft_context_destroy(ctx); return; }
    /* the first byte of a three-byte character alone: one U+FFFD, as Python's tokenizers gives */
    CHECK_OK(sft_tokenizer_encode(tok, "\xE6\x97\xA5", 3, 0, &ids, &n));
    if (ids && n >= 1) {
        int32_t first = sft_tokenizer_token_to_id(tok, "\xC3\xA6");   /* the byte-level character of 0xE6 */
        CHECK(first >= 0);
        CHECK_OK(sft_tokenizer_decode(tok, &first, 1, 0, &text, &len));
        CHECK(text && len == 3 && memcmp(text, "\xEF\xBF\xBD", 3) == 0);
        sft_free(ctx, text);
    }
    sft_free(ctx, ids);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
}

/* merges written as "a b" (older files) and as ["a", "b"] (tokenizers >= 0.20)
   load to the same model */
static void both_merge_encodings_give_the_same_ids(void) {
    static const char *const files[2] = {
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"c\": 2, \"ab\": 3, \"abc\": 4, \"bc\": 5},"
        " \"merges\": [\"a b\", \"ab c\", \"b c\"]}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"c\": 2, \"ab\": 3, \"abc\": 4, \"bc\": 5},"
        " \"merges\": [[\"a\", \"b\"], [\"ab\", \"c\"], [\"b\", \"c\"]]}}"};
    int f;
    for (f = 0; f < 2; f++) {
        sft_context *ctx = t_context(1);
        sft_tokenizer *tok = NULL;
        char path[512];
        int32_t *ids = NULL;
        size_t n = 0;
        snprintf(path, sizeof path, "%s/merges%d.json", t_tmpdir(), f);
        t_write(path, files[f]);
        CHECK_OK(sft_tokenizer_load(ctx, path, &tok));
        if (tok) {
            CHECK_OK(sft_tokenizer_encode(tok, "abcabbc", 7, 0, &ids, &n));   /* abc | ab | bc */
            CHECK_MSG(ids && n == 3 && ids[0] == 4 && ids[1] == 3 && ids[2] == 5, "encoding %d: %zu ids", f, n);
            sft_free(ctx, ids);
            sft_tokenizer_destroy(tok);
        }
        sft_context_destroy(ctx);
    }
}

static void qwen2_normalizes_decomposed_text_to_the_same_ids(void) {
    sft_context *ctx = t_context(1);
    sft_tokenizer *tok = NULL;
    int32_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    const char *composed = "caf\xC3\xA9 na\xC3\xAFve \xEA\xB0\x81", *decomposed = "cafe\xCC\x81 nai\xCC\x88ve \xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8";
    CHECK_OK(sft_tokenizer_load(ctx, T_FIX "qwen2", &tok));
    if (!tok) { sft_context_destroy(ctx); return; }
    CHECK_OK(sft_tokenizer_encode(tok, composed, strlen(composed), 0, &a, &na));
    CHECK_OK(sft_tokenizer_encode(tok, decomposed, strlen(decomposed), 0, &b, &nb));
    CHECK(a && b && na == nb && memcmp(a, b, na * sizeof(int32_t)) == 0);
    sft_free(ctx, a); sft_free(ctx, b);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
}

void suite_tokenizer(void) {
    RUN(gpt2_byte_level_bpe_matches_hugging_face);
    RUN(llama3_split_and_byte_level_match_hugging_face);
    RUN(qwen2_split_and_byte_level_match_hugging_face);
    RUN(smollm2_digits_and_byte_level_match_hugging_face);
    RUN(llama2_sentencepiece_bpe_matches_hugging_face);
    RUN(mistral_metaspace_bpe_matches_hugging_face);
    RUN(tokenizer_config_gives_special_ids_and_template);
    RUN(unsupported_or_malformed_tokenizers_are_refused);
    RUN(bad_text_and_bad_ids_are_refused);
    RUN(decode_turns_broken_bytes_into_replacement_characters);
    RUN(qwen2_normalizes_decomposed_text_to_the_same_ids);
    RUN(both_merge_encodings_give_the_same_ids);
}
