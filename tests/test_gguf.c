/* test_gguf.c - llama.cpp's GGUF files: every tensor type dequantized bit for bit
   as gguf-py (ggml's reference) does; metadata of every type; the writer; bad
   files; a tiny Llama transformers saved and its GGUF conversions (f32, Q8_0)
   giving transformers' logits through sft_model_load; tokenizers from GGUF
   metadata giving the ids of transformers' GGUF tokenizer; the adapter exported
   as a GGUF LoRA byte for byte as the file gguf-py read back. Fixtures:
   tools/make_gguf_fixtures.py (tests/fixtures/gguf). */
#include "test.h"

#define T_GFIX "tests/fixtures/gguf/"

/* every tensor of dequant.gguf against gguf.quants.dequantize's f32 values */
static void gguf_dequantizes_every_type_as_gguf_py(void) {
    static const char *const types[] = {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k", "q5_k", "q6_k"};
    sft_context *ctx = t_context(1);
    sft_gguf *g = NULL;
    sft_st_file *want = NULL;
    size_t k;
    CHECK_OK(sft_gguf_open(ctx, T_GFIX "dequant.gguf", &g));
    CHECK_OK(sft_st_open(ctx, T_GFIX "dequant.safetensors", &want));
    if (!g || !want) goto done;
    CHECK(sft_gguf_tensor_count(g) == 11);
    for (k = 0; k < sizeof types / sizeof types[0]; k++) {
        char name[32];
        sft_tensor *t = NULL;
        int64_t n = 0;
        const float *w;
        snprintf(name, sizeof name, "t_%s", types[k]);
        w = (const float *)t_st_data(want, name, &n);
        CHECK_OK(sft_gguf_load(ctx, g, name, &t));
        if (t && w) {
            CHECK(t->ndim == 2 && t->shape[0] == 4 && t->shape[1] == 256 && n == 1024);
            CHECK_SAME(name, (const float *)t->data, w, n);
        }
        sft_tensor_destroy(t);
    }
done:
    sft_st_close(want);
    sft_gguf_close(g);
    sft_context_destroy(ctx);
}

/* metadata of every scalar type and arrays of them, written and read back;
   getters refuse a value of another type, naming the key */
static void gguf_metadata_of_every_type_round_trips(void) {
    sft_context *ctx = t_context(1);
    uint8_t u8 = 200; int8_t i8 = -100; uint16_t u16 = 60000; int16_t i16 = -30000; uint32_t u32 = 4000000000u; int32_t i32 = -2000000000;
    float f32 = 0.25f; uint8_t b = 1; uint64_t u64 = 1ull << 40; int64_t i64 = -(1ll << 40); double f64 = -1.5;
    int32_t arr[3] = {7, -8, 9};
    const char *strs[3] = {"alpha", "", "\xc3\xa9t\xc3\xa9"};
    const float row[32] = {1.0f};
    sft_gguf_kv kv[15];
    sft_gguf_entry e;
    sft_gguf *g = NULL;
    char path[512];
    int64_t v = 0;
    double d = 0;
    const char *s = NULL;
    size_t len = 0;
    sft_gguf_type type, elem;
    uint64_t n = 0;
    int i;
    memset(kv, 0, sizeof kv);
    memset(&e, 0, sizeof e);
#define T_KV(i, k, t, p) (kv[i].key = k, kv[i].type = t, kv[i].data = p)
    T_KV(0, "u8", SFT_GGUF_UINT8, &u8); T_KV(1, "i8", SFT_GGUF_INT8, &i8); T_KV(2, "u16", SFT_GGUF_UINT16, &u16);
    T_KV(3, "i16", SFT_GGUF_INT16, &i16); T_KV(4, "u32", SFT_GGUF_UINT32, &u32); T_KV(5, "i32", SFT_GGUF_INT32, &i32);
    T_KV(6, "f32", SFT_GGUF_FLOAT32, &f32); T_KV(7, "bool", SFT_GGUF_BOOL, &b); T_KV(8, "str", SFT_GGUF_STRING, "hello");
    T_KV(9, "u64", SFT_GGUF_UINT64, &u64); T_KV(10, "i64", SFT_GGUF_INT64, &i64); T_KV(11, "f64", SFT_GGUF_FLOAT64, &f64);
    T_KV(12, "arr", SFT_GGUF_ARRAY, arr); kv[12].elem_type = SFT_GGUF_INT32; kv[12].n = 3;
    T_KV(13, "strs", SFT_GGUF_ARRAY, strs); kv[13].elem_type = SFT_GGUF_STRING; kv[13].n = 3;
    T_KV(14, "empty", SFT_GGUF_ARRAY, NULL); kv[14].elem_type = SFT_GGUF_FLOAT32; kv[14].n = 0;
#undef T_KV
    e.name = "w"; e.type = SFT_GGML_F32; e.ndim = 1; e.ne[0] = 32; e.data = row;
    snprintf(path, sizeof path, "%s/meta.gguf", t_tmpdir());
    CHECK_OK(sft_gguf_save(ctx, path, kv, 15, &e, 1));
    CHECK_OK(sft_gguf_open(ctx, path, &g));
    if (!g) { sft_context_destroy(ctx); return; }
    CHECK(sft_gguf_key_count(g) == 15 && strcmp(sft_gguf_key_at(g, 8), "str") == 0);
    CHECK_OK(sft_gguf_get_int(g, "u8", &v)); CHECK(v == 200);
    CHECK_OK(sft_gguf_get_int(g, "i8", &v)); CHECK(v == -100);
    CHECK_OK(sft_gguf_get_int(g, "u16", &v)); CHECK(v == 60000);
    CHECK_OK(sft_gguf_get_int(g, "i16", &v)); CHECK(v == -30000);
    CHECK_OK(sft_gguf_get_int(g, "u32", &v)); CHECK(v == 4000000000ll);
    CHECK_OK(sft_gguf_get_int(g, "i32", &v)); CHECK(v == -2000000000);
    CHECK_OK(sft_gguf_get_int(g, "bool", &v)); CHECK(v == 1);
    CHECK_OK(sft_gguf_get_int(g, "u64", &v)); CHECK(v == (1ll << 40));
    CHECK_OK(sft_gguf_get_int(g, "i64", &v)); CHECK(v == -(1ll << 40));
    CHECK_OK(sft_gguf_get_float(g, "f32", &d)); CHECK(d == 0.25);
    CHECK_OK(sft_gguf_get_float(g, "f64", &d)); CHECK(d == -1.5);
    CHECK_OK(sft_gguf_get_float(g, "i32", &d)); CHECK(d == -2000000000.0);
    CHECK_OK(sft_gguf_get_str(g, "str", &s, &len)); CHECK(s && strcmp(s, "hello") == 0 && len == 5);
    CHECK_OK(sft_gguf_kv_type(g, "arr", &type, &elem, &n)); CHECK(type == SFT_GGUF_ARRAY && elem == SFT_GGUF_INT32 && n == 3);
    for (i = 0; i < 3; i++) { CHECK_OK(sft_gguf_array_int(g, "arr", (uint64_t)i, &v)); CHECK(v == arr[i]); }
    for (i = 0; i < 3; i++) { CHECK_OK(sft_gguf_array_str(g, "strs", (uint64_t)i, &s, &len)); CHECK(s && strcmp(s, strs[i]) == 0); }
    CHECK_OK(sft_gguf_kv_type(g, "empty", &type, &elem, &n)); CHECK(n == 0 && elem == SFT_GGUF_FLOAT32);
    CHECK_STATUS(sft_gguf_get_int(g, "f32", &v), SFT_ERR_FORMAT); CHECK_ERROR_MENTIONS("'f32'");
    CHECK_STATUS(sft_gguf_get_str(g, "u8", &s, &len), SFT_ERR_FORMAT); CHECK_ERROR_MENTIONS("'u8'");
    CHECK_STATUS(sft_gguf_get_int(g, "arr", &v), SFT_ERR_FORMAT);
    CHECK_STATUS(sft_gguf_array_int(g, "arr", 3, &v), SFT_ERR_ARG);
    CHECK_STATUS(sft_gguf_get_int(g, "nope", &v), SFT_ERR_NOT_FOUND); CHECK_ERROR_MENTIONS("'nope'");
    sft_gguf_close(g);
    sft_context_destroy(ctx);
}

/* the writer's F16, BF16 and Q8_0 read back as the rounding rules say; data
   offsets aligned to 32 */
static void gguf_save_writes_f32_f16_bf16_and_q8_0(void) {
    static const int types[4] = {SFT_GGML_F32, SFT_GGML_F16, SFT_GGML_BF16, SFT_GGML_Q8_0};
    static const char *const names[4] = {"a", "b", "c", "d"};
    sft_context *ctx = t_context(1);
    float x[2 * 64], want[2 * 64], got[2 * 64];
    sft_gguf_entry e[4];
    sft_gguf *g = NULL;
    char path[512];
    uint64_t rng = 3;
    int i, k;
    for (i = 0; i < 128; i++) x[i] = t_rand(&rng, -2.0f, 2.0f);
    for (k = 0; k < 4; k++) {
        memset(&e[k], 0, sizeof e[k]);
        e[k].name = names[k]; e[k].type = types[k]; e[k].ndim = 2; e[k].ne[0] = 64; e[k].ne[1] = 2; e[k].data = x;
    }
    snprintf(path, sizeof path, "%s/save.gguf", t_tmpdir());
    CHECK_OK(sft_gguf_save(ctx, path, NULL, 0, e, 4));
    CHECK_OK(sft_gguf_open(ctx, path, &g));
    for (k = 0; g && k < 4; k++) {
        const sft_gguf_tensor *t = sft_gguf_find_tensor(g, names[k]);
        CHECK(t && t->type == types[k] && t->ne[0] == 64 && t->ne[1] == 2 && t->offset % 32 == 0);
        if (!t) continue;
        CHECK_OK(sft_gguf_dequantize(t, got));
        for (i = 0; i < 128; i++)
            want[i] = k == 0 ? x[i] : k == 1 ? sft_f16_to_f32(sft_f32_to_f16(x[i])) : k == 2 ? sft_bf16_to_f32(sft_f32_to_bf16(x[i])) : x[i];
        if (k < 3) CHECK_SAME(names[k], got, want, 128);
        else {   /* Q8_0: within half a step of each block's scale (max |x| / 127) */
            for (i = 0; i < 128; i++) {
                float amax = 0.0f;
                int j;
                for (j = i / 32 * 32; j < i / 32 * 32 + 32; j++) amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
                CHECK_MSG(fabsf(got[i] - x[i]) <= amax / 127.0f * 0.5f + 1e-3f * amax, "q8_0[%d]: %g vs %g", i, got[i], x[i]);
            }
        }
    }
    e[3].ne[0] = 48; e[3].ne[1] = 1;   /* not whole Q8_0 blocks */
    CHECK_STATUS(sft_gguf_save(ctx, path, NULL, 0, &e[3], 1), SFT_ERR_SHAPE);
    sft_gguf_close(g);
    sft_context_destroy(ctx);
}

/* every truncated prefix of a valid file, a bad magic, a bad version and
   tensors out of the file fail with a status, never a crash */
static void gguf_rejects_truncated_and_malformed_files(void) {
    sft_context *ctx = t_context(1);
    char *data = NULL, path[512];
    size_t len = 0, cut;
    sft_gguf *g = NULL;
    int fails = 0, tried = 0;
    CHECK_OK(sft_file_read(ctx, T_GFIX "dequant.gguf", 0, &data, &len));
    if (!data) { sft_context_destroy(ctx); return; }
    snprintf(path, sizeof path, "%s/bad.gguf", t_tmpdir());
    for (cut = 0; cut + 32 <= len; cut += cut < 1200 ? 1 : 97) {   /* (the last tensor's padding may go) */
        sft_buf b;
        b.data = data; b.len = cut;
        CHECK_OK(sft_file_write_atomic(ctx, path, &b, 1));
        tried++;
        if (sft_gguf_open(ctx, path, &g) != SFT_OK) fails++;
        else { sft_gguf_close(g); g = NULL; }
    }
    CHECK_MSG(fails == tried, "%d of %d truncated files opened", tried - fails, tried);
    {
        sft_buf b;
        char *copy = (char *)malloc(len);
        memcpy(copy, data, len);
        copy[0] = 'X';
        b.data = copy; b.len = len;
        CHECK_OK(sft_file_write_atomic(ctx, path, &b, 1));
        CHECK_STATUS(sft_gguf_open(ctx, path, &g), SFT_ERR_FORMAT); CHECK_ERROR_MENTIONS("magic");
        memcpy(copy, data, len);
        copy[4] = 1;   /* version 1 */
        CHECK_OK(sft_file_write_atomic(ctx, path, &b, 1));
        CHECK_STATUS(sft_gguf_open(ctx, path, &g), SFT_ERR_UNSUPPORTED); CHECK_ERROR_MENTIONS("version 1");
        memcpy(copy, data, len);
        copy[8] = (char)0xff; copy[9] = (char)0xff; copy[10] = (char)0xff;   /* 16 million tensors */
        CHECK_OK(sft_file_write_atomic(ctx, path, &b, 1));
        CHECK(sft_gguf_open(ctx, path, &g) != SFT_OK);
        free(copy);
    }
    {   /* a tensor name listed twice; a tensor's data past the end of the file */
        const float row[32] = {0};
        sft_gguf_entry e[2];
        char *bytes = NULL, *p;
        size_t n = 0;
        sft_buf b;
        memset(e, 0, sizeof e);
        e[0].name = "xa"; e[1].name = "xb";
        e[0].type = e[1].type = SFT_GGML_F32; e[0].ndim = e[1].ndim = 1; e[0].ne[0] = e[1].ne[0] = 32; e[0].data = e[1].data = row;
        CHECK_OK(sft_gguf_save(ctx, path, NULL, 0, e, 2));
        CHECK_OK(sft_file_read(ctx, path, 0, &bytes, &n));
        for (p = bytes; bytes && p + 2 < bytes + n && memcmp(p, "xb", 2) != 0; p++) {}
        if (bytes && p + 2 < bytes + n) {
            p[1] = 'a';
            b.data = bytes; b.len = n;
            CHECK_OK(sft_file_write_atomic(ctx, path, &b, 1));
            CHECK_STATUS(sft_gguf_open(ctx, path, &g), SFT_ERR_FORMAT); CHECK_ERROR_MENTIONS("twice");
            p[1] = 'b';
            b.len = n - 64;   /* the second tensor's data cut off: its range ends past the file */
            CHECK_OK(sft_file_write_atomic(ctx, path, &b, 1));
            CHECK_STATUS(sft_gguf_open(ctx, path, &g), SFT_ERR_FORMAT); CHECK_ERROR_MENTIONS("'xb'");
        } else CHECK_MSG(0, "no tensor name in the file");
        sft_free(ctx, bytes);
    }
    CHECK(!sft_gguf_is_gguf(T_GFIX "dequant.safetensors") && sft_gguf_is_gguf(T_GFIX "dequant.gguf"));
    CHECK_STATUS(sft_gguf_open(ctx, T_GFIX "missing.gguf", &g), SFT_ERR_IO);
    sft_free(ctx, data);
    sft_context_destroy(ctx);
}

/* the tiny Llama from its folder and from its GGUF files: transformers' logits
   (the same check transformers makes of the files: fixtures' logits) */
static void t_logits(sft_context *ctx, sft_model *m, const sft_tensor *ids, sft_tensor **out) {
    sft_model_batch b;
    sft_model_run run;
    sft_model_output o;
    memset(&b, 0, sizeof b);
    memset(&run, 0, sizeof run);
    b.input_ids = (sft_tensor *)(uintptr_t)ids;
    run.want_logits = 1;
    *out = NULL;
    CHECK_OK(sft_model_forward(m, &b, &run, &o));
    if (o.logits) CHECK_OK(sft_tensor_convert(ctx, o.logits, SFT_F32, out));
}

static void gguf_model_gives_transformers_logits(void) {
    static const char *const files[3] = {"tiny", "tiny_f32.gguf", "tiny_q8_0.gguf"};
    static const char *const keys[3] = {"transformers", "transformers_gguf_f32", "transformers_gguf_q8_0"};
    sft_context *ctx = t_context(2);
    sft_st_file *f = NULL;
    sft_tensor *ids = NULL, *logits[3] = {NULL, NULL, NULL};
    int k;
    CHECK_OK(sft_st_open(ctx, T_GFIX "logits.safetensors", &f));
    if (f) CHECK_OK(sft_st_load(ctx, f, "ids", &ids));
    for (k = 0; ids && k < 3; k++) {
        char path[256];
        sft_model *m = NULL;
        int64_t n = 0;
        const float *want = (const float *)t_st_data(f, keys[k], &n);
        snprintf(path, sizeof path, T_GFIX "%s", files[k]);
        CHECK_OK(sft_model_load(ctx, path, NULL, &m));
        if (!m) continue;
        CHECK(sft_model_get_config(m)->tie_word_embeddings && sft_model_get_config(m)->num_key_value_heads == 2);
        sft_step_begin(ctx);
        t_logits(ctx, m, ids, &logits[k]);
        if (logits[k] && want && n == sft_tensor_numel(logits[k])) CHECK_REL(keys[k], (const float *)logits[k]->data, want, n, 1e-4);
        else CHECK_MSG(0, "%s: no logits or %lld of them", files[k], (long long)n);
        sft_model_destroy(m);
    }
    /* the folder and the f32 GGUF hold the same weights: the same logits, bit for bit */
    if (logits[0] && logits[1]) CHECK_SAME("folder vs tiny_f32.gguf", (const float *)logits[1]->data, (const float *)logits[0]->data, sft_tensor_numel(logits[0]));
    for (k = 0; k < 3; k++) sft_tensor_destroy(logits[k]);
    sft_tensor_destroy(ids);
    sft_st_close(f);
    sft_context_destroy(ctx);
}

/* quantized on load from GGUF as from the folder: NF4 of the same values */
static void gguf_model_quantizes_to_nf4_as_the_folder_does(void) {
    sft_context *ctx = t_context(2);
    sft_load_desc d;
    sft_model *a = NULL, *b = NULL;
    sft_tensor *ids = NULL, *la = NULL, *lb = NULL;
    sft_st_file *f = NULL;
    memset(&d, 0, sizeof d);
    d.quant = SFT_QUANT_NF4;
    CHECK_OK(sft_st_open(ctx, T_GFIX "logits.safetensors", &f));
    if (f) CHECK_OK(sft_st_load(ctx, f, "ids", &ids));
    CHECK_OK(sft_model_load(ctx, T_GFIX "tiny", &d, &a));
    CHECK_OK(sft_model_load(ctx, T_GFIX "tiny_f32.gguf", &d, &b));
    if (a && b && ids) {
        CHECK(sft_model_weight(b, "model.layers.0.self_attn.q_proj.weight") == NULL);   /* 4-bit */
        sft_step_begin(ctx);
        t_logits(ctx, a, ids, &la);
        t_logits(ctx, b, ids, &lb);
        if (la && lb) CHECK_SAME("nf4 folder vs gguf", (const float *)lb->data, (const float *)la->data, sft_tensor_numel(la));
    }
    sft_tensor_destroy(la); sft_tensor_destroy(lb); sft_tensor_destroy(ids);
    sft_model_destroy(a); sft_model_destroy(b);
    sft_st_close(f);
    sft_context_destroy(ctx);
}

/* tokenizers from tokenizer.ggml.*: the ids of transformers' GGUF tokenizer on
   the smollm2 and llama2 fixtures' texts (gpt2 vocabulary with the llama and
   qwen2 pipelines, a SentencePiece vocabulary whose merges come from scores) */
static void gguf_tokenizers_give_transformers_ids(void) {
    static const char *const files[3] = {"tok_gpt2", "tok_qwen2", "tok_llama"};
    sft_context *ctx = t_context(1);
    sft_json *j = t_json_file(ctx, T_GFIX "tokenizers.json");
    int k;
    for (k = 0; j && k < 3; k++) {
        const sft_json *cases = sft_json_get(sft_json_get(j, "files"), files[k]);
        char path[256];
        sft_tokenizer *tok = NULL;
        size_t c, bad = 0;
        snprintf(path, sizeof path, T_GFIX "%s.gguf", files[k]);
        CHECK_OK(sft_tokenizer_load(ctx, path, &tok));
        if (!tok || !cases) { sft_tokenizer_destroy(tok); continue; }
        for (c = 0; c < cases->length; c++) {
            const sft_json *text = sft_json_get(&cases->items[c], "text"), *want = sft_json_get(&cases->items[c], "ids");
            int32_t *ids = NULL;
            size_t n = 0, i;
            int same;
            CHECK_OK(sft_tokenizer_encode(tok, text->string, text->length, 0, &ids, &n));
            same = ids && n == want->length;
            for (i = 0; same && i < n; i++) same = ids[i] == (int32_t)want->items[i].number;
            if (!same && bad++ < 3) CHECK_MSG(0, "%s: case %zu (%.40s...): %zu ids, transformers %zu", files[k], c, text->string, n, want->length);
            sft_free(ctx, ids);
        }
        CHECK_MSG(bad == 0, "%s: %zu of %zu texts differ", files[k], bad, cases->length);
        CHECK(cases->length >= 20);
        sft_tokenizer_destroy(tok);
    }
    sft_json_free(j);
    sft_context_destroy(ctx);
}

/* ids, flags and the chat template from the metadata, as llama.cpp reads them */
static void gguf_tokenizer_reads_special_ids_and_the_chat_template(void) {
    sft_context *ctx = t_context(1);
    sft_tokenizer *tok = NULL;
    sft_tokenizer_info info;
    char *text = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_OK(sft_tokenizer_load(ctx, T_GFIX "tiny_f32.gguf", &tok));
    if (!tok) { sft_context_destroy(ctx); return; }
    info = sft_tokenizer_get_info(tok);
    CHECK(info.bos_id == 1 && info.eos_id == 2 && info.pad_id == 2 && !info.add_bos_token);
    CHECK(info.chat_template && strstr(info.chat_template, "<|im_start|>"));
    CHECK_OK(sft_tokenizer_apply_chat_template(tok, "[{\"role\": \"user\", \"content\": \"hi\"}]", NULL, &text, NULL, NULL, NULL));
    CHECK(text && strcmp(text, "<|im_start|>user\nhi<|im_end|>\n") == 0);
    CHECK_OK(sft_tokenizer_encode(tok, text, strlen(text), 1, &ids, &n));
    CHECK(ids && n >= 4 && ids[0] == 1 && ids[n - 2] == 2);   /* the specials are single ids; add_bos_token false adds none */
    sft_free(ctx, text); sft_free(ctx, ids);
    sft_tokenizer_destroy(tok);
    /* add_bos_token's default for a SentencePiece vocabulary is on */
    CHECK_OK(sft_tokenizer_load(ctx, T_GFIX "tok_llama.gguf", &tok));
    if (tok) {
        info = sft_tokenizer_get_info(tok);
        CHECK(info.add_bos_token);
        CHECK_OK(sft_tokenizer_encode(tok, "hello", 5, 1, &ids, &n));
        CHECK(ids && n >= 2 && ids[0] == info.bos_id);
        sft_free(ctx, ids);
    }
    sft_tokenizer_destroy(tok);
    CHECK_STATUS(sft_tokenizer_load(ctx, T_GFIX "dequant.gguf", &tok), SFT_ERR_FORMAT); CHECK_ERROR_MENTIONS("tokenizer.ggml.model");
    sft_context_destroy(ctx);
}

/* the PEFT adapter exported as a GGUF LoRA: byte for byte the file gguf-py read
   back (lora_readback.json: names, shapes, alpha, values equal to PEFT's) */
static void gguf_lora_export_is_the_file_gguf_py_read_back(void) {
    sft_context *ctx = t_context(1);
    sft_model *m = NULL;
    sft_json *rb = t_json_file(ctx, T_GFIX "lora_readback.json");
    char path[512], *mine = NULL, *ref = NULL;
    size_t n_mine = 0, n_ref = 0;
    sft_gguf *g = NULL;
    snprintf(path, sizeof path, "%s/lora.gguf", t_tmpdir());
    CHECK_OK(sft_model_load(ctx, T_GFIX "tiny_f32.gguf", NULL, &m));
    if (m) CHECK_OK(sft_model_load_adapter(m, T_GFIX "adapter", "default"));
    if (m) CHECK_OK(sft_model_save_adapter_gguf(m, "default", path, SFT_GGML_F32));
    CHECK_OK(sft_file_read(ctx, path, 0, &mine, &n_mine));
    CHECK_OK(sft_file_read(ctx, T_GFIX "lora.gguf", 0, &ref, &n_ref));
    CHECK_MSG(mine && ref && n_mine == n_ref && memcmp(mine, ref, n_ref) == 0, "the export (%zu bytes) differs from lora.gguf (%zu)", n_mine, n_ref);
    if (rb) {
        const sft_json *t = sft_json_get(rb, "tensors"), *meta = sft_json_get(rb, "metadata");
        const sft_json *err = sft_json_get(rb, "max_abs_error"), *alpha = sft_json_get(meta, "adapter.lora.alpha");
        CHECK(t && t->length == 28 && err && err->number == 0.0 && alpha && alpha->number == 8.0);
        CHECK(sft_json_get(meta, "general.type") && strcmp(sft_json_get(meta, "general.type")->string, "adapter") == 0);
    }
    CHECK_OK(sft_gguf_open(ctx, path, &g));
    if (g) {
        const sft_gguf_tensor *a = sft_gguf_find_tensor(g, "blk.1.attn_k.weight.lora_a"), *b = sft_gguf_find_tensor(g, "blk.1.attn_k.weight.lora_b");
        const char *s = NULL;
        double alpha = 0;
        CHECK(a && a->ne[0] == 64 && a->ne[1] == 4 && b && b->ne[0] == 4 && b->ne[1] == 32);
        CHECK_OK(sft_gguf_get_str(g, "adapter.type", &s, NULL)); CHECK(s && strcmp(s, "lora") == 0);
        CHECK_OK(sft_gguf_get_float(g, "adapter.lora.alpha", &alpha)); CHECK(alpha == 8.0);
        sft_gguf_close(g);
    }
    /* f16 weights; an unknown adapter name and a type llama.cpp does not take fail */
    if (m) {
        CHECK_OK(sft_model_save_adapter_gguf(m, "default", path, SFT_GGML_F16));
        CHECK_STATUS(sft_model_save_adapter_gguf(m, "other", path, SFT_GGML_F32), SFT_ERR_NOT_FOUND);
        CHECK_STATUS(sft_model_save_adapter_gguf(m, "default", path, SFT_GGML_Q8_0), SFT_ERR_ARG);
    }
    sft_free(ctx, mine); sft_free(ctx, ref);
    sft_json_free(rb);
    sft_model_destroy(m);
    sft_context_destroy(ctx);
}

/* base + adapter merged and written as a GGUF model (F16, BF16, Q8_0): it loads
   back with its tokenizer and gives the logits of the model with the adapter,
   within the rounding of the type */
static void gguf_merged_model_loads_back_with_the_adapter_s_logits(void) {
    static const int types[3] = {SFT_GGML_F16, SFT_GGML_BF16, SFT_GGML_Q8_0};
    static const double tols[3] = {2e-3, 2e-2, 5e-2};   /* the tiny model's weights are large: rounding adds up */
    static const char *const projs[7] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
    sft_context *ctx = t_context(2);
    sft_model *m = NULL, *back = NULL;
    sft_tensor *ids = NULL, *want = NULL, *got = NULL;
    sft_st_file *f = NULL;
    sft_tokenizer *tok = NULL;
    const char *name = "default";
    char path[512];
    int k, layer, p;
    CHECK_OK(sft_st_open(ctx, T_GFIX "logits.safetensors", &f));
    if (f) CHECK_OK(sft_st_load(ctx, f, "ids", &ids));
    CHECK_OK(sft_model_load(ctx, T_GFIX "tiny_f32.gguf", NULL, &m));
    if (m) CHECK_OK(sft_model_load_adapter(m, T_GFIX "adapter", name));
    if (!m || !ids) goto done;
    sft_step_begin(ctx);
    t_logits(ctx, m, ids, &want);
    for (layer = 0; layer < 2; layer++)
        for (p = 0; p < 7; p++) CHECK_OK(sft_linear_merge(sft_model_linear(m, layer, projs[p]), &name, 1));
    for (k = 0; k < 3; k++) {
        snprintf(path, sizeof path, "%s/merged_%d.gguf", t_tmpdir(), k);
        CHECK_OK(sft_model_save_gguf(m, path, types[k]));
        CHECK_OK(sft_model_load(ctx, path, NULL, &back));
        if (!back) continue;
        sft_step_begin(ctx);
        t_logits(ctx, back, ids, &got);
        if (got && want) CHECK_REL(sft_gguf_type_name(types[k]), (const float *)got->data, (const float *)want->data, sft_tensor_numel(want), tols[k]);
        sft_tensor_destroy(got); got = NULL;
        sft_model_destroy(back); back = NULL;
    }
    CHECK_OK(sft_tokenizer_load(ctx, path, &tok));   /* the metadata came along */
    CHECK(tok && sft_tokenizer_get_info(tok).chat_template != NULL && sft_tokenizer_vocab_size(tok) == sft_model_get_config(m)->vocab_size);
    sft_tokenizer_destroy(tok);
    CHECK_STATUS(sft_model_save_gguf(m, path, SFT_GGML_Q4_0), SFT_ERR_ARG);
done:
    sft_tensor_destroy(want); sft_tensor_destroy(ids);
    sft_model_destroy(m);
    sft_st_close(f);
    sft_context_destroy(ctx);
}

/* the GGUF architecture and tokenizer model this build does not read: a clear status */
static void gguf_refuses_what_it_does_not_read(void) {
    sft_context *ctx = t_context(1);
    const char *arch = "mamba", *tm = "bert";
    sft_gguf_kv kv[2];
    const float row[32] = {0};
    sft_gguf_entry e;
    sft_model *m = NULL;
    sft_tokenizer *tok = NULL;
    char path[512];
    memset(kv, 0, sizeof kv);
    memset(&e, 0, sizeof e);
    kv[0].key = "general.architecture"; kv[0].type = SFT_GGUF_STRING; kv[0].data = arch;
    kv[1].key = "tokenizer.ggml.model"; kv[1].type = SFT_GGUF_STRING; kv[1].data = tm;
    e.name = "token_embd.weight"; e.type = SFT_GGML_F32; e.ndim = 2; e.ne[0] = 32; e.ne[1] = 1; e.data = row;
    snprintf(path, sizeof path, "%s/mamba.gguf", t_tmpdir());
    CHECK_OK(sft_gguf_save(ctx, path, kv, 2, &e, 1));
    CHECK_STATUS(sft_model_load(ctx, path, NULL, &m), SFT_ERR_UNSUPPORTED); CHECK_ERROR_MENTIONS("mamba");
    CHECK_STATUS(sft_tokenizer_load(ctx, path, &tok), SFT_ERR_UNSUPPORTED); CHECK_ERROR_MENTIONS("bert");
    CHECK(!m && !tok);
    sft_context_destroy(ctx);
}

void suite_gguf(void);
void suite_gguf(void) {
    RUN(gguf_dequantizes_every_type_as_gguf_py);
    RUN(gguf_metadata_of_every_type_round_trips);
    RUN(gguf_save_writes_f32_f16_bf16_and_q8_0);
    RUN(gguf_rejects_truncated_and_malformed_files);
    RUN(gguf_model_gives_transformers_logits);
    RUN(gguf_model_quantizes_to_nf4_as_the_folder_does);
    RUN(gguf_tokenizers_give_transformers_ids);
    RUN(gguf_tokenizer_reads_special_ids_and_the_chat_template);
    RUN(gguf_lora_export_is_the_file_gguf_py_read_back);
    RUN(gguf_merged_model_loads_back_with_the_adapter_s_logits);
    RUN(gguf_refuses_what_it_does_not_read);
}
