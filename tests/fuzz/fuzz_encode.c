/* fuzz_encode: arbitrary bytes (invalid UTF-8 included) encoded by the real
   tokenizers committed under tests/fixtures/tokenizers, then decoded; the first
   byte picks the tokenizer and whether special tokens are added. A text the
   tokenizer accepts must decode without error. */
#include "fuzz.h"

static const char *const fz_names[] = {"gpt2", "llama2", "llama3", "mistral", "qwen2", "smollm2"};
#define FZ_N 6

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static sft_tokenizer *toks[FZ_N];
    sft_tokenizer *tok;
    int32_t *ids = NULL;
    size_t n = 0, tl = 0;
    char *text = NULL;
    int which, special;
    if (size < 1) return 0;
    which = data[0] % FZ_N;
    special = (data[0] / FZ_N) & 1;
    if (!toks[which]) {
        char dir[600];
        snprintf(dir, sizeof dir, "%s", fz_fixture("tokenizers"));
        snprintf(dir + strlen(dir), sizeof dir - strlen(dir), "/%s", fz_names[which]);
        if (sft_tokenizer_load(fz_ctx(), dir, &toks[which]) != SFT_OK) {
            fprintf(stderr, "fuzz_encode: %s (run from the repository root or set SFT_ROOT)\n", sft_last_error());
            abort();
        }
    }
    tok = toks[which];
    if (sft_tokenizer_encode(tok, (const char *)data + 1, size - 1, special, &ids, &n) != SFT_OK) return 0;
    if (sft_tokenizer_decode(tok, ids, n, 0, &text, &tl) != SFT_OK) {
        fprintf(stderr, "fuzz_encode: ids from encode do not decode: %s\n", sft_last_error());
        abort();
    }
    sft_free(fz_ctx(), text);
    if (sft_tokenizer_decode(tok, ids, n, 1, &text, &tl) == SFT_OK) sft_free(fz_ctx(), text);
    sft_free(fz_ctx(), ids);
    return 0;
}
