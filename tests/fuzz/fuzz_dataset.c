/* fuzz_dataset: any bytes as a JSONL dataset, loaded as SFTTrainer prepares it
   with the options the first two bytes pick (format forced or detected,
   max_length, packing, padding-free, completion-only and assistant-only loss,
   TRL's training templates, ShareGPT role mapping, skipping bad records, an
   eval split, the text field), tokenized by the qwen2 or llama3 fixture; what
   loads is batched end to end */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static sft_tokenizer *toks[2];
    static char trl[600];
    const char *path = fz_path(0, "data.jsonl");
    sft_dataset *ds = NULL;
    sft_data_desc d;
    unsigned a, b;
    int split;
    if (size < 2) return 0;
    if (!toks[0]) {
        if (sft_tokenizer_load(fz_ctx(), fz_fixture("tokenizers/qwen2"), &toks[0]) != SFT_OK ||
            sft_tokenizer_load(fz_ctx(), fz_fixture("tokenizers/llama3"), &toks[1]) != SFT_OK) {
            fprintf(stderr, "fuzz_dataset: %s (run from the repository root or set SFT_ROOT)\n", sft_last_error());
            abort();
        }
        snprintf(trl, sizeof trl, "%s", fz_fixture("templates/trl"));
    }
    a = data[0]; b = data[1];
    memset(&d, 0, sizeof d);
    d.format = (sft_data_format)(a % 7 == 6 ? 0 : a % 7);            /* AUTO or one forced */
    d.max_length = (a >> 3) & 1 ? 16 : (a >> 4) & 1 ? -1 : 0;
    d.packing = (a >> 5) & 1;
    d.padding_free = (a >> 6) & 1;
    d.completion_only_loss = (a >> 7) ? SFT_OFF : SFT_DEFAULT;
    d.assistant_only_loss = b & 1;
    d.trl_chat_templates = (b >> 1) & 1 ? trl : NULL;
    d.sharegpt_map_roles = (b >> 2) & 1;
    d.skip_bad_records = (b >> 3) & 1;
    d.eval_fraction = (b >> 4) & 1 ? 0.25f : 0.0f;
    d.dataset_text_field = (b >> 5) & 1 ? "content" : NULL;
    d.chat_template_kwargs = (b >> 6) & 1 ? "{\"enable_thinking\": false}" : NULL;
    d.template_now = 1700000000;
    d.seed = 7;
    if (d.packing && d.max_length < 1) d.max_length = 32;
    fz_write(path, data + 2, size - 2);
    if (sft_dataset_load(fz_ctx(), toks[b >> 7], path, &d, &ds) != SFT_OK) return 0;
    for (split = 0; split < 2; split++) {
        int64_t rows = sft_dataset_rows(ds, split), first;
        for (first = 0; first < rows && first < 64; first += 4) {
            sft_batch batch;
            sft_step_begin(fz_ctx());
            if (sft_dataset_batch(ds, split, 1, 1, first, 4, &batch) != SFT_OK) break;
        }
    }
    sft_step_begin(fz_ctx());
    sft_dataset_destroy(ds);
    return 0;
}
