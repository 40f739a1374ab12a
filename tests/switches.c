/* switches.c - sft.h with parts compiled out: `make warnings` builds this program
   with -DSFT_NO_TOKENIZER, -DSFT_NO_DATA and -DSFT_NO_TRAINER (gcc, clang, g++,
   -Werror) and runs the gcc builds from the repository root. It also builds and
   runs with none of them.

   Every build: the tiny Llama of tests/fixtures/models/llama gives
   transformers' greedy tokens from ids (as CI's examples/generate check), and
   loaded as NF4 with LoRA on every projection, six AdamW steps on a batch lower
   its loss (forward, backward, the optimizer: the layers a host builds its own
   loop from). With the tokenizer: encode and decode round-trip; with data: a
   dataset and a chat template; with the trainer: two trainer steps.

   A switched-off part must be gone, not just unused: for each one this file
   defines an object with the name of one of the part's functions, which does not
   compile while the header still declares that function. */
#define SFT_IMPLEMENTATION
#include "../sft.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#if defined(SFT_NO_TOKENIZER) && !(defined(SFT_NO_DATA) && defined(SFT_NO_TRAINER))
#  error "SFT_NO_TOKENIZER must imply SFT_NO_DATA and SFT_NO_TRAINER"
#endif
#if defined(SFT_NO_DATA) && !defined(SFT_NO_TRAINER)
#  error "SFT_NO_DATA must imply SFT_NO_TRAINER"
#endif

/* the names of removed functions are free */
#ifdef SFT_NO_TOKENIZER
static const char *sft_tokenizer_load = "no tokenizer";
#endif
#ifdef SFT_NO_DATA
static const char *sft_dataset_from_records = "no data";
#endif
#ifdef SFT_NO_TRAINER
static const char *sft_trainer_create = "no trainer";
#endif

static int failures;
#define EXPECT(cond, ...) \
    do { if (!(cond)) { failures++; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)
#define EXPECT_OK(expr) \
    do { sft_status s_ = (expr); EXPECT(s_ == SFT_OK, "%s: %s: %s", #expr, sft_status_str(s_), sft_last_error()); } while (0)

#define MODEL "tests/fixtures/models/llama"
static const char *const projections[7] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};

/* greedy generation from ids gives transformers' continuation */
static void generation_from_ids(sft_context *ctx) {
    static const int32_t prompt[4] = {58, 23, 77, 227};
    static const int32_t want[8] = {99, 115, 115, 115, 115, 115, 115, 115};
    sft_model *m = NULL;
    sft_generate_desc gd;
    int32_t *out = NULL;
    int n = 0;
    EXPECT_OK(sft_model_load(ctx, MODEL, NULL, &m));
    if (!m) return;
    memset(&gd, 0, sizeof gd);
    gd.max_new_tokens = 8;
    EXPECT_OK(sft_model_generate(m, prompt, 4, &gd, &out, &n));
    EXPECT(n == 8 && out && memcmp(out, want, sizeof want) == 0, "generated %d tokens, the first %d", n, out && n ? out[0] : -1);
    sft_free(ctx, out);
    sft_model_destroy(m);
}

/* the adapters' A and B of every projection, in model order */
static int adapter_params(sft_model *m, sft_tensor **params, int cap) {
    int layer, p, n = 0;
    for (layer = 0; layer < sft_model_get_config(m)->num_hidden_layers; layer++)
        for (p = 0; p < 7; p++) {
            sft_lora_weights w;
            if (sft_linear_adapter_weights(sft_model_linear(m, layer, projections[p]), "default", &w) != SFT_OK || n + 2 > cap) continue;
            params[n++] = w.A;
            params[n++] = w.B;
        }
    return n;
}

/* QLoRA by hand: NF4 base, LoRA on every projection, AdamW on one batch */
static void qlora_steps_lower_the_loss(sft_context *ctx) {
    sft_model *m = NULL;
    sft_load_desc ld;
    sft_lora_desc lora;
    sft_optimizer_desc ad;
    sft_optimizer *opt = NULL;
    sft_tensor *params[64], *ids = NULL;
    sft_model_batch batch;
    sft_model_run run;
    int64_t shape[2] = {2, 12}, i;
    float first = 0.0f, last = 0.0f;
    int n, step;
    memset(&ld, 0, sizeof ld);
    ld.quant = SFT_QUANT_NF4;
    ld.double_quant = 1;
    EXPECT_OK(sft_model_load(ctx, MODEL, &ld, &m));
    if (!m) return;
    memset(&lora, 0, sizeof lora);
    lora.r = 4; lora.alpha = 8; lora.seed = 7;
    EXPECT_OK(sft_model_add_lora(m, "default", &lora, "all-linear"));
    n = adapter_params(m, params, 64);
    EXPECT(n == 2 * 7 * sft_model_get_config(m)->num_hidden_layers, "%d adapter tensors", n);
    memset(&ad, 0, sizeof ad);
    ad.lr = 1e-2;
    EXPECT_OK(sft_optimizer_create(ctx, params, n, NULL, &ad, &opt));
    EXPECT_OK(sft_tensor_create(ctx, SFT_I32, 2, shape, &ids));
    if (!opt || !ids) goto done;
    for (i = 0; i < 24; i++) ((int32_t *)ids->data)[i] = (int32_t)(3 + (i * 37) % 250);
    memset(&batch, 0, sizeof batch);
    batch.input_ids = ids;
    batch.labels = ids;
    memset(&run, 0, sizeof run);
    run.training = 1;
    for (step = 0; step < 6; step++) {
        sft_model_output out;
        float loss = NAN;
        sft_step_begin(ctx);
        EXPECT_OK(sft_model_forward(m, &batch, &run, &out));
        if (!out.loss) break;
        loss = ((const float *)out.loss->data)[0];
        EXPECT_OK(sft_backward(ctx, out.loss));
        (void)sft_optimizer_clip_grad_norm(opt, 1.0);
        EXPECT_OK(sft_optimizer_step(opt, ad.lr));
        sft_optimizer_zero_grad(opt);
        if (step == 0) first = loss;
        last = loss;
    }
    EXPECT(isfinite(first) && last < first - 0.01f, "loss %g after 6 steps, %g at the first", last, first);
    printf("qlora by hand: loss %.4f, after 6 AdamW steps %.4f\n", first, last);
done:
    sft_tensor_destroy(ids);
    sft_optimizer_destroy(opt);
    sft_model_destroy(m);
}

#ifndef SFT_NO_TOKENIZER
static void text_round_trips(sft_context *ctx) {
    static const char text[] = "Hello, world: 123 tokens";
    sft_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    char *back = NULL;
    size_t n = 0, len = 0;
    EXPECT_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/gpt2", &tok));
    if (!tok) return;
    EXPECT_OK(sft_tokenizer_encode(tok, text, strlen(text), 0, &ids, &n));
    EXPECT_OK(sft_tokenizer_decode(tok, ids, n, 0, &back, &len));
    EXPECT(n > 0 && back && len == strlen(text) && memcmp(back, text, len) == 0, "decoded '%s'", back ? back : "(null)");
    sft_free(ctx, ids);
    sft_free(ctx, back);
    sft_tokenizer_destroy(tok);
}
#endif

#ifndef SFT_NO_DATA
/* pre-tokenized rows inside the llama fixture's vocabulary (the qwen2 fixture
   tokenizer supplies the padding token "!", id 0) */
static sft_dataset *id_rows(sft_context *ctx, sft_tokenizer *tok) {
    static const char *const recs[4] = {"{\"input_ids\": [5, 9, 13, 17, 21, 25, 29]}", "{\"input_ids\": [7, 11, 15, 19, 23]}",
                                        "{\"input_ids\": [40, 41, 42, 43, 44, 45, 46, 47, 48]}", "{\"input_ids\": [60, 70, 80, 90]}"};
    sft_dataset *ds = NULL;
    sft_data_desc d;
    memset(&d, 0, sizeof d);
    d.max_length = 16;
    d.pad_token = "!";
    EXPECT_OK(sft_dataset_from_records(ctx, tok, recs, 4, &d, &ds));
    EXPECT(ds && sft_dataset_rows(ds, 0) == 4, "%lld rows", ds ? (long long)sft_dataset_rows(ds, 0) : -1LL);
    return ds;
}

static void chat_template_renders(sft_context *ctx, sft_tokenizer *tok) {
    static const char msgs[] = "[{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"hello\"}]";
    char *text = NULL;
    size_t len = 0;
    EXPECT_OK(sft_tokenizer_apply_chat_template(tok, msgs, NULL, &text, &len, NULL, NULL));
    EXPECT(text && strstr(text, "<|im_start|>assistant\nhello<|im_end|>"), "rendered '%s'", text ? text : "(null)");
    sft_free(ctx, text);
}
#endif

#ifndef SFT_NO_TRAINER
static void trainer_steps(sft_context *ctx, sft_dataset *ds) {
    sft_model *m = NULL;
    sft_lora_desc lora;
    sft_train_config c;
    sft_trainer *tr = NULL;
    sft_step_info info;
    EXPECT_OK(sft_model_load(ctx, MODEL, NULL, &m));
    if (!m) return;
    memset(&lora, 0, sizeof lora);
    lora.r = 4; lora.alpha = 8; lora.seed = 3;
    EXPECT_OK(sft_model_add_lora(m, "default", &lora, "all-linear"));
    memset(&c, 0, sizeof c);
    c.per_device_train_batch_size = 2; c.max_steps = 2; c.learning_rate = 1e-3; c.logging_steps = 1;
    EXPECT_OK(sft_trainer_create(m, ds, &c, &tr));
    if (tr) {
        EXPECT_OK(sft_trainer_step(tr, &info));
        EXPECT_OK(sft_trainer_step(tr, &info));
        EXPECT(info.global_step == 2 && info.done && isfinite(info.loss), "step %lld, done %d, loss %g", (long long)info.global_step,
               info.done, info.loss);
    }
    sft_trainer_destroy(tr);
    sft_model_destroy(m);
}
#endif

int main(void) {
    sft_context *ctx = NULL;
    sft_context_desc cd;
    memset(&cd, 0, sizeof cd);
    cd.threads = 1;
    if (sft_context_create(&cd, &ctx) != SFT_OK) { printf("FAIL: no context: %s\n", sft_last_error()); return 1; }
    generation_from_ids(ctx);
    qlora_steps_lower_the_loss(ctx);
#ifdef SFT_NO_TOKENIZER
    EXPECT(strcmp(sft_tokenizer_load, "no tokenizer") == 0, "%s", sft_tokenizer_load);
#else
    text_round_trips(ctx);
#endif
#ifdef SFT_NO_DATA
    EXPECT(strcmp(sft_dataset_from_records, "no data") == 0, "%s", sft_dataset_from_records);
#else
    {
        sft_tokenizer *tok = NULL;
        sft_dataset *ds = NULL;
        EXPECT_OK(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", &tok));
        if (tok) {
            chat_template_renders(ctx, tok);
            ds = id_rows(ctx, tok);
        }
#  ifndef SFT_NO_TRAINER
        if (ds) trainer_steps(ctx, ds);
#  endif
        sft_dataset_destroy(ds);
        sft_tokenizer_destroy(tok);
    }
#endif
#ifdef SFT_NO_TRAINER
    EXPECT(strcmp(sft_trainer_create, "no trainer") == 0, "%s", sft_trainer_create);
#endif
    sft_context_destroy(ctx);
    printf("switches (%s): %s\n",
#if defined(SFT_NO_TOKENIZER)
           "SFT_NO_TOKENIZER",
#elif defined(SFT_NO_DATA)
           "SFT_NO_DATA",
#elif defined(SFT_NO_TRAINER)
           "SFT_NO_TRAINER",
#else
           "everything",
#endif
           failures ? "FAILED" : "ok");
    return failures != 0;
}
