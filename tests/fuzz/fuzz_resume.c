/* fuzz_resume: a checkpoint whose sft_state.json and trainer_state.json come
   from any bytes (the two parts cut at "\n----\n"); the rest of the checkpoint
   (adapter, optimizer state) is a real one this harness saved on its first
   call from the tiny Llama. A trainer resumes from it or is refused with a
   status; no counter read from the files reaches an integer out of range. */
#include "fuzz.h"

static sft_context *fz_rctx;
static sft_model *fz_model;
static sft_dataset *fz_ds;
static char fz_ckpt[700];

static void fz_setup(void) {
    static const char *const recs[] = {"{\"input_ids\": [5, 6, 7, 8, 9]}", "{\"input_ids\": [10, 11, 12]}",
                                       "{\"input_ids\": [13, 14, 15, 16]}", "{\"input_ids\": [17, 18, 19, 20, 21, 22]}"};
    sft_tokenizer *tok = NULL;
    sft_lora_desc ld;
    sft_data_desc dd;
    sft_train_config c;
    sft_trainer *tr = NULL;
    sft_step_info info;
    fz_rctx = fz_ctx();
    memset(&ld, 0, sizeof ld); ld.r = 2; ld.alpha = 4;
    memset(&dd, 0, sizeof dd); dd.max_length = 16; dd.pad_token = "!";
    if (sft_tokenizer_load(fz_rctx, fz_fixture("tokenizers/qwen2"), &tok) != SFT_OK ||
        sft_model_load(fz_rctx, fz_fixture("models/llama"), NULL, &fz_model) != SFT_OK ||
        sft_model_add_lora(fz_model, "default", &ld, "q_proj,v_proj") != SFT_OK ||
        sft_dataset_from_records(fz_rctx, tok, recs, 4, &dd, &fz_ds) != SFT_OK) goto fail;
    memset(&c, 0, sizeof c);
    c.per_device_train_batch_size = 2; c.max_steps = 4; c.learning_rate = 1e-3; c.logging_steps = 1;
    c.output_dir = fz_path(0, "run");
    if (sft_trainer_create(fz_model, fz_ds, &c, &tr) != SFT_OK || sft_trainer_step(tr, &info) != SFT_OK ||
        sft_trainer_save(tr) != SFT_OK) goto fail;
    sft_trainer_destroy(tr);
    snprintf(fz_ckpt, sizeof fz_ckpt, "%s/checkpoint-1", fz_path(0, "run"));
    return;
fail:
    fprintf(stderr, "fuzz_resume: setup: %s (run from the repository root or set SFT_ROOT)\n", sft_last_error());
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char p1[800], p2[800];
    const uint8_t *b;
    size_t a_len, b_len;
    sft_train_config c;
    sft_trainer *tr = NULL;
    if (!fz_model) fz_setup();
    fz_split(data, size, &a_len, &b, &b_len);
    snprintf(p1, sizeof p1, "%s/sft_state.json", fz_ckpt);
    snprintf(p2, sizeof p2, "%s/trainer_state.json", fz_ckpt);
    fz_write(p1, data, a_len);
    fz_write(p2, b, b_len);
    memset(&c, 0, sizeof c);
    c.per_device_train_batch_size = 2; c.max_steps = 4; c.learning_rate = 1e-3; c.logging_steps = 1;
    c.resume_from_checkpoint = fz_ckpt;
    if (sft_trainer_create(fz_model, fz_ds, &c, &tr) == SFT_OK) {
        sft_step_info info;
        (void)sft_trainer_step(tr, &info);       /* one step from the resumed position */
        sft_trainer_destroy(tr);
    }
    return 0;
}
