/* fuzz_adapter: an adapter folder from any bytes - adapter_config.json, then
   "\n----\n", then adapter_model.safetensors - loaded onto the tiny Llama
   fixture: it loads (and is then saved and dropped with the model) or is
   refused with the model left as it was */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static sft_model *m;
    const uint8_t *b;
    size_t a_len, b_len;
    if (!m && sft_model_load(fz_ctx(), fz_fixture("models/llama"), NULL, &m) != SFT_OK) {
        fprintf(stderr, "fuzz_adapter: %s (run from the repository root or set SFT_ROOT)\n", sft_last_error());
        abort();
    }
    fz_split(data, size, &a_len, &b, &b_len);
    fz_write(fz_path(0, "adapter_config.json"), data, a_len);
    fz_write(fz_path(1, "adapter_model.safetensors"), b, b_len);
    if (sft_model_load_adapter(m, fz_dir(), "fz") == SFT_OK) {
        (void)sft_model_save_adapter(m, "fz", fz_path(2, "saved"));
        sft_model_destroy(m);          /* the next input starts from a model without it */
        m = NULL;
    }
    return 0;
}
