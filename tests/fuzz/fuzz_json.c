/* fuzz_json: the strict JSON parser on any bytes, with and without NaN/Infinity
   and with a shallow depth limit; what parses is written back and must parse
   again to the same text (the writer's output is valid JSON). */
#include "fuzz.h"

static int fz_nul_key;   /* a key holding \0: the writer takes C-string keys, so no round trip */

static void fz_write_value(sft_json_writer *w, const sft_json *v) {
    size_t i;
    switch (v->type) {
    case SFT_JSON_NULL: sft_json_write_null(w); break;
    case SFT_JSON_FALSE: sft_json_write_bool(w, 0); break;
    case SFT_JSON_TRUE: sft_json_write_bool(w, 1); break;
    case SFT_JSON_NUMBER: sft_json_write_number(w, v->number); break;
    case SFT_JSON_STRING: sft_json_write_string_n(w, v->string, v->length); break;
    case SFT_JSON_ARRAY:
        sft_json_write_array_begin(w);
        for (i = 0; i < v->length; i++) fz_write_value(w, &v->items[i]);
        sft_json_write_array_end(w);
        break;
    case SFT_JSON_OBJECT:
        sft_json_write_object_begin(w);
        for (i = 0; i < v->length; i++) {
            if (strlen(v->keys[i]) != v->key_lengths[i]) fz_nul_key = 1;
            sft_json_write_key(w, v->keys[i]);
            fz_write_value(w, &v->items[i]);
        }
        sft_json_write_object_end(w);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sft_json *j = NULL, *back = NULL;
    sft_json_desc d;
    int mode;
    memset(&d, 0, sizeof d);
    for (mode = 0; mode < 3; mode++) {
        d.allow_nonfinite = mode == 1;
        d.max_depth = mode == 2 ? 4 : 0;
        if (sft_json_parse(fz_ctx(), (const char *)data, size, "fuzz", &d, &j) == SFT_OK) {
            sft_json_writer w;
            char *text = NULL;
            size_t len = 0;
            memset(&w, 0, sizeof w);
            w.allow_nonfinite = d.allow_nonfinite;
            fz_nul_key = 0;
            fz_write_value(&w, j);
            if (sft_json_writer_finish(&w, &text, &len) == SFT_OK && !fz_nul_key) {
                d.max_depth = 0;
                if (sft_json_parse(fz_ctx(), text, len, "fuzz-back", &d, &back) != SFT_OK) {
                    fprintf(stderr, "written JSON does not parse: %s\n", sft_last_error());
                    abort();
                }
                sft_json_free(back);
            }
            sft_free(NULL, text);
            sft_json_free(j);
        }
    }
    return 0;
}
