/* fuzz_tokenizer: any bytes as tokenizer.json (with a fixed tokenizer_config.json
   beside it): load, then encode a few texts (ASCII, accents, CJK, emoji,
   whitespace runs, special-looking tokens) and decode every id back, with and
   without special tokens */
#include "fuzz.h"

static const char *const fz_texts[] = {
    "Hello world!  How are you?\n\n", "na\xc3\xafve caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80", "   \t\t\n  x",
    "<s>[INST] hi [/INST]</s><|im_start|>user<|im_end|>", "12345 3.14 don't I'll", "",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int once;
    sft_tokenizer *tok = NULL;
    size_t k;
    if (!once) {
        static const char cfg[] = "{\"bos_token\": \"<s>\", \"eos_token\": \"</s>\", \"unk_token\": \"<unk>\"}";
        fz_write(fz_path(0, "tokenizer_config.json"), cfg, sizeof cfg - 1);
        once = 1;
    }
    fz_write(fz_path(1, "tokenizer.json"), data, size);
    if (sft_tokenizer_load(fz_ctx(), fz_dir(), &tok) != SFT_OK) return 0;
    for (k = 0; k < sizeof fz_texts / sizeof *fz_texts; k++) {
        int32_t *ids = NULL;
        size_t n = 0, tl = 0;
        char *text = NULL;
        int special;
        for (special = 0; special < 2; special++) {
            if (sft_tokenizer_encode(tok, fz_texts[k], strlen(fz_texts[k]), special, &ids, &n) != SFT_OK) continue;
            if (sft_tokenizer_decode(tok, ids, n, special, &text, &tl) == SFT_OK) sft_free(fz_ctx(), text);
            sft_free(fz_ctx(), ids);
        }
    }
    {
        int32_t odd[4] = {0, -1, 1 << 30, 5};
        char *text = NULL;
        size_t tl = 0;
        if (sft_tokenizer_decode(tok, odd, 4, 0, &text, &tl) == SFT_OK) sft_free(fz_ctx(), text);
        (void)sft_tokenizer_id_to_token(tok, -1);
        (void)sft_tokenizer_id_to_token(tok, sft_tokenizer_vocab_size(tok));
    }
    sft_tokenizer_destroy(tok);
    return 0;
}
