/* embed.c - training inside a host program's frame loop.

   A game or tool engine cannot hand its main loop to a trainer. Here the host
   runs frames; each frame does its own work, then gives the trainer a time
   budget: sft_trainer_step() runs one optimizer step at a time until the budget
   is spent. Progress goes to the host's own display (stdout here). The host can
   stop at any step boundary (sft_trainer_cancel, here after --frames N) and
   save a checkpoint; --resume picks the run up again, bit-identical to a run
   that never stopped.

   Build:
       cc -O2 examples/embed.c -o embed -lm -lpthread
   Run (defaults: the tiny test model and tokenizer in tests/fixtures):
       ./embed [--model DIR] [--tokenizer DIR] [--out DIR] [--frames N] [--resume]
               [--budget-ms MS] [--steps N]

   The task is a toy one the tiny model learns in seconds: rows of counting
   token ids (k, k+1, k+2, ...), trained with LoRA on every projection. */
#define SFT_IMPLEMENTATION
#include "../sft.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e3 * (double)ts.tv_sec + 1e-6 * (double)ts.tv_nsec;
}

static int fail(sft_status s, const char *what) {
    fprintf(stderr, "embed: %s: %s: %s\n", what, sft_status_str(s), sft_last_error());
    return 1;
}

/* the host's own work of a frame (a stand-in: some arithmetic) */
static double host_work(int frame) {
    double acc = 0.0;
    int i;
    for (i = 0; i < 200000; i++) acc += (double)((i ^ frame) & 7);
    return acc;
}

/* the training data: 64 rows of counting ids, inside the tiny model's vocabulary */
static sft_status make_dataset(sft_context *ctx, sft_tokenizer *tok, sft_dataset **out) {
    char *recs[64], buf[64][512];
    sft_data_desc d;
    int i, k;
    for (i = 0; i < 64; i++) {
        int len = snprintf(buf[i], sizeof buf[i], "{\"input_ids\": [");
        for (k = 0; k < 12 + i % 9; k++) len += snprintf(buf[i] + len, sizeof buf[i] - (size_t)len, "%s%d", k ? "," : "", 3 + (i * 7 + k) % 240);
        snprintf(buf[i] + len, sizeof buf[i] - (size_t)len, "]}");
        recs[i] = buf[i];
    }
    memset(&d, 0, sizeof d);
    d.max_length = 64;
    d.pad_token = "!";     /* id 0 */
    return sft_dataset_from_records(ctx, tok, (const char *const *)recs, 64, &d, out);
}

int main(int argc, char **argv) {
    const char *model_dir = "tests/fixtures/models/llama", *tok_dir = "tests/fixtures/tokenizers/qwen2", *out_dir = "build/embed-run";
    int frames_limit = 0, resume = 0, steps = 60, i, frame;
    double budget = 30.0;
    sft_context *ctx = NULL;
    sft_context_desc cd;
    sft_tokenizer *tok = NULL;
    sft_model *model = NULL;
    sft_dataset *data = NULL;
    sft_trainer *tr = NULL;
    sft_lora_desc lora;
    sft_train_config cfg;
    sft_step_info info;
    sft_status s;
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--model") == 0 && i + 1 < argc) model_dir = argv[++i];
        else if (strcmp(argv[i], "--tokenizer") == 0 && i + 1 < argc) tok_dir = argv[++i];
        else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) out_dir = argv[++i];
        else if (strcmp(argv[i], "--frames") == 0 && i + 1 < argc) frames_limit = atoi(argv[++i]);
        else if (strcmp(argv[i], "--budget-ms") == 0 && i + 1 < argc) budget = atof(argv[++i]);
        else if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc) steps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--resume") == 0) resume = 1;
        else { fprintf(stderr, "embed: unknown argument %s\n", argv[i]); return 2; }
    }
    memset(&cd, 0, sizeof cd);
    cd.threads = 2;
    if ((s = sft_context_create(&cd, &ctx)) != SFT_OK) return fail(s, "context");
    if ((s = sft_tokenizer_load(ctx, tok_dir, &tok)) != SFT_OK) return fail(s, tok_dir);
    if ((s = sft_model_load(ctx, model_dir, NULL, &model)) != SFT_OK) return fail(s, model_dir);
    memset(&lora, 0, sizeof lora);
    lora.r = 8; lora.alpha = 16;
    if ((s = sft_model_add_lora(model, "default", &lora, "all-linear")) != SFT_OK) return fail(s, "LoRA");
    if ((s = make_dataset(ctx, tok, &data)) != SFT_OK) return fail(s, "dataset");

    memset(&cfg, 0, sizeof cfg);
    cfg.per_device_train_batch_size = 8;
    cfg.max_steps = steps;
    cfg.learning_rate = 3e-3;
    cfg.lr_scheduler_type = SFT_SCHEDULE_COSINE;
    cfg.warmup_steps = 5;
    cfg.logging_steps = 1;
    cfg.output_dir = out_dir;
    cfg.resume_from_checkpoint = resume ? "last" : NULL;
    if ((s = sft_trainer_create(model, data, &cfg, &tr)) != SFT_OK) return fail(s, "trainer");

    /* the host's frame loop */
    sft_trainer_progress(tr, &info);
    for (frame = 0; !info.done; frame++) {
        double start, spent;
        int n = 0;
        (void)host_work(frame);                       /* the frame's own work */
        start = now_ms();
        do {                                          /* training in the rest of the budget */
            if ((s = sft_trainer_step(tr, &info)) != SFT_OK) return fail(s, "step");
            n++;
        } while (!info.done && now_ms() - start < budget);
        spent = now_ms() - start;
        if (frame % 5 == 0 || info.done)
            printf("frame %3d: step %3lld/%lld  loss %.4f  lr %.2e  (%d step%s in %.0f ms)\n", frame, (long long)info.global_step,
                   (long long)info.max_steps, info.loss, info.learning_rate, n, n == 1 ? "" : "s", spent);
        if (frames_limit && frame + 1 >= frames_limit && !info.done) {
            sft_trainer_cancel(tr);                   /* e.g. the player quit */
            if ((s = sft_trainer_save(tr)) != SFT_OK) return fail(s, "save");
            printf("stopped after %d frames at step %lld; saved %s/checkpoint-%lld (continue with --resume)\n", frame + 1,
                   (long long)info.global_step, out_dir, (long long)info.global_step);
            break;
        }
    }
    if (info.done && !info.cancelled) {
        if ((s = sft_trainer_save(tr)) != SFT_OK) return fail(s, "save");
        printf("done: %lld steps; adapter in %s/checkpoint-%lld\n", (long long)info.global_step, out_dir, (long long)info.global_step);
    }
    sft_trainer_destroy(tr);
    sft_dataset_destroy(data);
    sft_model_destroy(model);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
    return 0;
}
