/* fuzz_config: any bytes as a model's config.json, beside the tiny Llama
   fixture's weights: the model loads (f32 or NF4) or is refused with a status,
   and nothing is allocated from a size in the config before the weights agree */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int once;
    sft_model *m = NULL;
    sft_load_desc d;
    if (!once) {
        char src[700];
        const char *dst = fz_path(0, "model.safetensors");
        if (fz_fixture("models/llama/model.safetensors")[0] != '/') {
            char cwd[512];
            if (!getcwd(cwd, sizeof cwd)) abort();
            snprintf(src, sizeof src, "%s/%s", cwd, fz_fixture("models/llama/model.safetensors"));
        } else snprintf(src, sizeof src, "%s", fz_fixture("models/llama/model.safetensors"));
        unlink(dst);
        if (symlink(src, dst) != 0) { perror(dst); abort(); }
        once = 1;
    }
    fz_write(fz_path(1, "config.json"), data, size);
    memset(&d, 0, sizeof d);
    d.quant = size & 1 ? SFT_QUANT_NF4 : SFT_QUANT_NONE;
    if (sft_model_load(fz_ctx(), fz_dir(), &d, &m) == SFT_OK) sft_model_destroy(m);
    return 0;
}
