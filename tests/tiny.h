/* tiny.h - the model the trainer tests train: the tiny Qwen2 of
   tests/fixtures/models/qwen2 with a LoRA adapter (r 4, alpha 8) on every
   linear, and its adapter read back as one array to compare runs
   (test_trainer.c, test_stream.c, and each rank of parallel.h). */
#ifndef SFT_TESTS_TINY_H
#define SFT_TESTS_TINY_H

#include "test.h"

/* t_tiny_model: the tiny Qwen2 (NF4 base when nf4) with LoRA on every linear,
   B drawn so every A learns */
static sft_status t_tiny_model(sft_context *ctx, int nf4, sft_model **out) {
    static const char *const names[7] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
    sft_lora_desc d;
    sft_load_desc ld;
    int layer, p;
    sft_status s;
    memset(&ld, 0, sizeof ld);
    ld.quant = nf4 ? SFT_QUANT_NF4 : SFT_QUANT_NONE;
    s = sft_model_load(ctx, "tests/fixtures/models/qwen2", &ld, out);
    if (s != SFT_OK) return s;
    memset(&d, 0, sizeof d);
    d.r = 4; d.alpha = 8; d.seed = 1;
    if (sft_model_add_lora(*out, "default", &d, "all-linear") != SFT_OK) return SFT_ERR_ARG;
    for (layer = 0; layer < 2; layer++)
        for (p = 0; p < 7; p++) {
            sft_lora_weights w;
            uint64_t seed = (uint64_t)(10 + layer * 7 + p);
            int64_t i;
            if (sft_linear_adapter_weights(sft_model_linear(*out, layer, names[p]), "default", &w) != SFT_OK) continue;
            for (i = 0; i < sft_tensor_numel(w.B); i++) ((float *)w.B->data)[i] = t_rand(&seed, -0.05f, 0.05f);
        }
    return SFT_OK;
}

/* t_tiny_adapter: its adapter's A and B of every linear, in model order, as
   one array (malloc'd; NULL when it does not fit) */
static float *t_tiny_adapter(sft_model *m, int64_t *n) {
    static const char *const names[7] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
    float *out = (float *)malloc(200000 * sizeof(float));
    int layer, p, ab;
    *n = 0;
    for (layer = 0; out && layer < 2; layer++)
        for (p = 0; p < 7; p++) {
            sft_lora_weights w;
            if (sft_linear_adapter_weights(sft_model_linear(m, layer, names[p]), "default", &w) != SFT_OK) continue;
            for (ab = 0; ab < 2; ab++) {
                sft_tensor *t = ab ? w.B : w.A;
                if (*n + sft_tensor_numel(t) > 200000) { free(out); return NULL; }
                memcpy(out + *n, t->data, sft_tensor_nbytes(t));
                *n += sft_tensor_numel(t);
            }
        }
    return out;
}

#endif
