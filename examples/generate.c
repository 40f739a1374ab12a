/* generate.c - complete a prompt with a Hugging Face model directory and, if
   given, a PEFT adapter directory.

   Build:
       cc -O2 examples/generate.c -o generate -lm -lpthread
   Run:
       ./generate MODEL_DIR [options] "prompt text"
       ./generate MODEL_DIR [options] --ids 1,15043,3186

   options:
       --adapter DIR          a PEFT LoRA adapter to apply
       --nf4                  quantize the decoder's linears to NF4 on load
       --max-new-tokens N     default 32
       --temperature T        0 (default) = greedy
       --top-k K, --top-p P   sampling filters
       --seed S               sampling seed (default 0)
       --stop TEXT            stop once the new text contains TEXT
       --threads N            default 2

   The prompt is tokenized with MODEL_DIR/tokenizer.json (with the model's
   special tokens, as transformers' tokenizer call adds them); --ids gives the
   token ids directly. Prints the continuation (its text with a tokenizer, and
   always its ids on the last line). */
#define SFT_IMPLEMENTATION
#include "../sft.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(sft_status s, const char *what) {
    fprintf(stderr, "generate: %s: %s: %s\n", what, sft_status_str(s), sft_last_error());
    return 1;
}

static int parse_ids(const char *s, int32_t **ids, int *n) {
    int cap = 1;
    const char *p;
    for (p = s; *p; p++) cap += *p == ',';
    *ids = (int32_t *)malloc((size_t)cap * sizeof(int32_t));
    *n = 0;
    while (*ids && *s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 0 || v > 0x7fffffff) return 0;
        (*ids)[(*n)++] = (int32_t)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return 0;
    }
    return *ids && *n > 0;
}

int main(int argc, char **argv) {
    const char *model_dir = NULL, *adapter = NULL, *prompt = NULL, *ids_arg = NULL;
    sft_context_desc cd;
    sft_context *ctx = NULL;
    sft_model *model = NULL;
    sft_tokenizer *tok = NULL;
    sft_load_desc ld;
    sft_generate_desc gd;
    int32_t *ids = NULL, *out = NULL;
    int i, n_ids = 0, n_out = 0, threads = 2, rc = 1;
    sft_status s;
    memset(&ld, 0, sizeof ld);
    memset(&gd, 0, sizeof gd);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--adapter") == 0 && v) { adapter = v; i++; }
        else if (strcmp(a, "--nf4") == 0) { ld.quant = SFT_QUANT_NF4; ld.double_quant = 1; }
        else if (strcmp(a, "--max-new-tokens") == 0 && v) { gd.max_new_tokens = atoi(v); i++; }
        else if (strcmp(a, "--temperature") == 0 && v) { gd.temperature = (float)atof(v); i++; }
        else if (strcmp(a, "--top-k") == 0 && v) { gd.top_k = atoi(v); i++; }
        else if (strcmp(a, "--top-p") == 0 && v) { gd.top_p = (float)atof(v); i++; }
        else if (strcmp(a, "--seed") == 0 && v) { gd.seed = strtoull(v, NULL, 10); i++; }
        else if (strcmp(a, "--stop") == 0 && v) { gd.stop_string = v; i++; }
        else if (strcmp(a, "--threads") == 0 && v) { threads = atoi(v); i++; }
        else if (strcmp(a, "--ids") == 0 && v) { ids_arg = v; i++; }
        else if (!model_dir) model_dir = a;
        else if (!prompt) prompt = a;
        else { fprintf(stderr, "generate: unexpected argument '%s'\n", a); return 2; }
    }
    if (!model_dir || (!prompt && !ids_arg)) {
        fprintf(stderr, "usage: generate MODEL_DIR [--adapter DIR] [--nf4] [--max-new-tokens N] [--temperature T]\n"
                        "                [--top-k K] [--top-p P] [--seed S] [--stop TEXT] [--threads N] (\"prompt\" | --ids 1,2,3)\n");
        return 2;
    }
    memset(&cd, 0, sizeof cd);
    cd.threads = threads;
    if ((s = sft_context_create(&cd, &ctx)) != SFT_OK) return fail(s, "context");
    if ((s = sft_model_load(ctx, model_dir, &ld, &model)) != SFT_OK) { rc = fail(s, "model"); goto done; }
    if (adapter && (s = sft_model_load_adapter(model, adapter, "default")) != SFT_OK) { rc = fail(s, "adapter"); goto done; }
    if (sft_tokenizer_load(ctx, model_dir, &tok) != SFT_OK) {
        tok = NULL;
        if (!ids_arg) { rc = fail(SFT_ERR_NOT_FOUND, "the model has no usable tokenizer.json: give --ids"); goto done; }
    }
    if (ids_arg) {
        if (!parse_ids(ids_arg, &ids, &n_ids)) { fprintf(stderr, "generate: --ids wants numbers like 1,15043,3186\n"); goto done; }
    } else {
        size_t n = 0;
        int32_t *t = NULL;
        if ((s = sft_tokenizer_encode(tok, prompt, strlen(prompt), 1, &t, &n)) != SFT_OK) { rc = fail(s, "tokenize"); goto done; }
        ids = (int32_t *)malloc(n * sizeof(int32_t));
        if (ids) memcpy(ids, t, n * sizeof(int32_t));
        n_ids = (int)n;
        sft_free(ctx, t);
    }
    gd.tokenizer = tok;
    if ((s = sft_model_generate(model, ids, n_ids, &gd, &out, &n_out)) != SFT_OK) { rc = fail(s, "generate"); goto done; }
    if (tok) {
        char *text = NULL;
        size_t len = 0;
        if (sft_tokenizer_decode(tok, out, (size_t)n_out, 1, &text, &len) == SFT_OK) printf("%s%s\n", prompt ? prompt : "", text);
        sft_free(ctx, text);
    }
    for (i = 0; i < n_out; i++) printf("%s%d", i ? "," : "ids: ", out[i]);
    printf("\n");
    rc = 0;
done:
    sft_free(ctx, out);
    free(ids);
    sft_tokenizer_destroy(tok);
    sft_model_destroy(model);
    sft_context_destroy(ctx);
    return rc;
}
