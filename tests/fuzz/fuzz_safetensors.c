/* fuzz_safetensors: any bytes as a .safetensors file: open (every entry checked
   against the file), then every tensor loaded, converted to f32 where it can be */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fz_path(0, "x.safetensors");
    sft_st_file *f = NULL;
    int i;
    fz_write(path, data, size);
    if (sft_st_open(fz_ctx(), path, &f) != SFT_OK) return 0;
    (void)sft_st_metadata(f, "format");
    for (i = 0; i < sft_st_count(f); i++) {
        const sft_st_tensor *t = sft_st_tensor_at(f, i);
        sft_tensor *x = NULL, *y = NULL;
        if (sft_st_find(f, t->name) == NULL) abort();
        if (sft_st_load(fz_ctx(), f, t->name, &x) != SFT_OK) continue;
        if (sft_tensor_convert(fz_ctx(), x, SFT_F32, &y) == SFT_OK) sft_tensor_destroy(y);
        sft_tensor_destroy(x);
    }
    sft_st_close(f);
    return 0;
}
