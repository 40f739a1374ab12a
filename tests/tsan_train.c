/* tsan_train.c - a LoRA training run of the tiny Llama fixture on 1 thread and
   on each thread count given (make tsan: 2 and 4), built with
   -fsanitize=thread: the thread pool's hand-offs must be race-free, and the
   adapters must come out bit-identical whatever the thread count.

   usage: tsan_train THREADS...   (run from the repository root) */
#define SFT_IMPLEMENTATION
#include "../sft.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const recs[] = {
    "{\"input_ids\": [5, 6, 7, 8, 9, 10, 11]}", "{\"input_ids\": [12, 13, 14]}", "{\"input_ids\": [15, 16, 17, 18, 19]}",
    "{\"input_ids\": [20, 21, 22, 23, 24, 25, 26, 27, 28]}", "{\"input_ids\": [29, 30, 31, 32]}", "{\"input_ids\": [33, 34, 35, 36, 37, 38]}",
};

/* the adapter after 4 steps on threads threads (malloc'd A and B values, *n of them) */
static float *train(int threads, size_t *n) {
    sft_context_desc cd;
    sft_context *ctx = NULL;
    sft_tokenizer *tok = NULL;
    sft_model *m = NULL;
    sft_dataset *ds = NULL;
    sft_lora_desc ld;
    sft_data_desc dd;
    sft_train_config c;
    sft_train_output out;
    float *w = NULL;
    int layer;
    memset(&cd, 0, sizeof cd); cd.threads = threads;
    memset(&ld, 0, sizeof ld); ld.r = 4; ld.alpha = 8; ld.dropout = 0.1f; ld.seed = 3;
    memset(&dd, 0, sizeof dd); dd.max_length = 16; dd.pad_token = "!"; dd.packing = 1;
    memset(&c, 0, sizeof c);
    c.per_device_train_batch_size = 2; c.gradient_accumulation_steps = 2; c.max_steps = 4; c.learning_rate = 1e-3;
    c.logging_steps = 1;
    *n = 0;
    if (sft_context_create(&cd, &ctx) != SFT_OK || sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", &tok) != SFT_OK ||
        sft_model_load(ctx, "tests/fixtures/models/llama", NULL, &m) != SFT_OK ||
        sft_model_add_lora(m, "default", &ld, "all-linear") != SFT_OK ||
        sft_dataset_from_records(ctx, tok, recs, 6, &dd, &ds) != SFT_OK || sft_train(m, ds, &c, &out) != SFT_OK) {
        fprintf(stderr, "tsan_train: %d threads: %s\n", threads, sft_last_error());
        exit(1);
    }
    w = (float *)malloc(1 << 22);
    for (layer = 0; layer < sft_model_get_config(m)->num_hidden_layers; layer++) {
        sft_lora_weights lw;
        if (sft_linear_adapter_weights(sft_model_linear(m, layer, "q_proj"), "default", &lw) != SFT_OK) continue;
        memcpy(w + *n, lw.A->data, sft_tensor_nbytes(lw.A)); *n += (size_t)sft_tensor_numel(lw.A);
        memcpy(w + *n, lw.B->data, sft_tensor_nbytes(lw.B)); *n += (size_t)sft_tensor_numel(lw.B);
    }
    sft_dataset_destroy(ds); sft_model_destroy(m); sft_tokenizer_destroy(tok); sft_context_destroy(ctx);
    return w;
}

int main(int argc, char **argv) {
    size_t n1, nk;
    float *one = train(1, &n1);
    int i, bad = 0;
    for (i = 1; i < argc; i++) {
        int threads = atoi(argv[i]);
        float *w = train(threads, &nk);
        int same = nk == n1 && memcmp(w, one, n1 * sizeof(float)) == 0;
        printf("tsan_train: 4 steps on %d threads: adapter %s the 1-thread one\n", threads, same ? "bit-identical to" : "DIFFERS from");
        bad |= !same;
        free(w);
    }
    free(one);
    return bad;
}
