/* sft.c - the sft command: fine-tune, try, merge and inspect models from the shell.

       sft train    --model_name_or_path DIR --dataset_name FILE.jsonl [flags]
       sft generate --model_name_or_path DIR [--adapter DIR] --prompt TEXT [flags]
       sft merge    --model_name_or_path DIR --adapter DIR --output_dir OUT [--dtype float32|auto]
       sft stats    --model_name_or_path DIR --dataset_name FILE.jsonl [data flags]
       sft memory   --model_name_or_path DIR [model, LoRA and batch flags]
       sft render   --model_name_or_path DIR --dataset_name FILE.jsonl [data flags]
       sft export   --model_name_or_path DIR --adapter DIR --gguf OUT.gguf [--merged] [--gguf_dtype TYPE]
       sft COMMAND --help     every flag of the command with its default

   Flags are named as TRL's `trl sft` and transformers' TrainingArguments name
   them; `--config FILE.json` gives the same keys (the command line wins).
   DIR may also be a llama.cpp .gguf file (the model, its tokenizer and chat
   template come from it). Bad input (a missing file, a value of the wrong type or out of range,
   conflicting flags) gets one line naming the flag or file and exit status 2,
   before anything is written.

   Build:
       cc -O2 examples/sft.c -o sft -lm -lpthread
   With CUDA (--device cuda), linked against sft.h's CUDA object (make cuda):
       cc -O2 -DSFT_CLI_LINKED -DSFT_CUDA examples/sft.c build/sft_cuda.o -o sft
          -L/usr/local/cuda/lib64 -lcublasLt -lcudart -lstdc++ -lm -lpthread   (one line)

   With MPI (data-parallel training under mpirun; make mpi):
       mpicc -O2 -DSFT_MPI examples/sft.c -o sft -lm -lpthread
       mpirun -np 2 ./sft train ...   (each rank takes its slice of every batch)

   With -DSFT_CLI_NO_MAIN the file is a library of its own parts (the flag
   table, parsing, building the library's configurations): tests/test_cli.c
   checks every flag reaches the trainer's configuration. */
#if !defined(SFT_CLI_NO_MAIN) && !defined(SFT_CLI_LINKED)   /* SFT_CLI_LINKED: the implementation is in another object */
#define SFT_IMPLEMENTATION
#endif
#include "../sft.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <ctype.h>
#include <time.h>
#include <unistd.h>
#ifdef SFT_MPI
#  include <mpi.h>
#endif

/* ============================================================================
   The options, as one struct the flags write into */

typedef struct cli_opts {
    /* model, data, output */
    const char *model_name_or_path, *dataset_name, *eval_dataset_name, *dataset_text_field, *output_dir;
    int         max_length, packing, padding_free, completion_only_loss, assistant_only_loss, skip_bad_records, dataset_streaming;
    const char *chat_template_path, *chat_template_kwargs, *trl_chat_templates;
    double      eval_fraction;
    /* training */
    double      num_train_epochs, learning_rate, warmup_ratio, weight_decay, adam_beta1, adam_beta2, adam_epsilon;
    double      max_grad_norm, label_smoothing_factor, neftune_noise_alpha;
    int         fp16, bf16;
    int         max_steps, per_device_train_batch_size, per_device_eval_batch_size, gradient_accumulation_steps;
    int         warmup_steps, seed, gradient_checkpointing, logging_steps, logging_nan_inf_filter, token_metrics;
    const char *lr_scheduler_type, *lr_scheduler_kwargs, *optim, *optim_args;
    /* evaluation and checkpoints */
    const char *eval_strategy, *save_strategy, *metric_for_best_model, *resume_from_checkpoint;
    int         eval_steps, eval_on_start, save_steps, save_total_limit, load_best_model_at_end, greater_is_better;
    /* PEFT and quantization */
    int         use_peft, lora_r, use_dora, use_rslora, load_in_4bit, bnb_4bit_use_double_quant;
    double      lora_alpha, lora_dropout;
    const char *lora_target_modules, *bnb_4bit_quant_type, *bnb_4bit_compute_dtype;
    /* generate and merge */
    const char *adapter, *prompt, *dtype;
    int         max_new_tokens, top_k, chat;
    double      temperature, top_p;
    /* the run */
    int         threads, profile;
    const char *device;
    double      ddp_timeout;
} cli_opts;

typedef enum cli_type { CLI_STR, CLI_INT, CLI_REAL, CLI_BOOL, CLI_TRISTATE } cli_type;

/* which commands a flag belongs to */
enum { C_TRAIN = 1, C_GENERATE = 2, C_MERGE = 4, C_STATS = 8, C_MEMORY = 16, C_RENDER = 32, C_ALL = 63 };
#define C_DATA (C_TRAIN | C_STATS | C_RENDER)

typedef struct cli_flag {
    const char *name;
    cli_type    type;
    size_t      offset;         /* into cli_opts */
    int         commands;
    const char *dflt;           /* as the user would write it ("" = none)            */
    const char *test_value;     /* a value other than the default (tests/test_cli.c) */
    const char *help;
} cli_flag;

#define O(field) offsetof(cli_opts, field)

/* Every flag, its default and what it does. TRISTATE is true/false/unset
   (TRL's None). */
static const cli_flag cli_flags[] = {
    /* model and data */
    {"model_name_or_path", CLI_STR, O(model_name_or_path), C_ALL, "", "tests/fixtures/models/qwen2",
     "a local Hugging Face model folder (config.json, safetensors, tokenizer.json)"},
    {"dataset_name", CLI_STR, O(dataset_name), C_DATA, "", "other.jsonl", "a JSONL file or a folder of them"},
    {"eval_dataset_name", CLI_STR, O(eval_dataset_name), C_TRAIN | C_STATS, "", "eval.jsonl", "a JSONL file or folder to evaluate on"},
    {"eval_fraction", CLI_REAL, O(eval_fraction), C_TRAIN | C_STATS, "0", "0.1", "else this fraction of the dataset, set aside (seeded)"},
    {"dataset_text_field", CLI_STR, O(dataset_text_field), C_DATA, "text", "content", "the field of plain-text records"},
    {"max_length", CLI_INT, O(max_length), C_DATA | C_MEMORY, "1024", "77", "truncate (or pack) to this many tokens; -1 = no limit"},
    {"packing", CLI_BOOL, O(packing), C_TRAIN | C_STATS, "false", "true", "pack rows into max_length bins (padding-free)"},
    {"dataset_streaming", CLI_BOOL, O(dataset_streaming), C_TRAIN, "false", "true",
     "read --dataset_name (one .jsonl file) as a stream, in order: needs --max_steps, no --eval_fraction"},
    {"padding_free", CLI_BOOL, O(padding_free), C_TRAIN | C_STATS, "false", "true", "flatten batches without padding"},
    {"completion_only_loss", CLI_TRISTATE, O(completion_only_loss), C_DATA, "None", "false",
     "prompt-completion data: train on the completion only (None = true)"},
    {"assistant_only_loss", CLI_BOOL, O(assistant_only_loss), C_DATA, "false", "true",
     "conversations: train on what the chat template's {% generation %} blocks write"},
    {"chat_template_path", CLI_STR, O(chat_template_path), C_DATA | C_GENERATE, "", "t.jinja",
     "a Jinja file: the chat template to use instead of the tokenizer's"},
    {"chat_template_kwargs", CLI_STR, O(chat_template_kwargs), C_DATA | C_GENERATE, "", "{\"enable_thinking\": false}",
     "JSON object: more chat template variables for every conversation (sft's own; a record's own chat_template_kwargs add to it)"},
    {"trl_chat_templates", CLI_STR, O(trl_chat_templates), C_DATA, "", "templates",
     "TRL's trl/chat_templates folder (sft's own): with assistant_only_loss, a template without {% generation %} trains with "
     "its TRL training version, as TRL swaps it"},
    {"skip_bad_records", CLI_BOOL, O(skip_bad_records), C_TRAIN | C_STATS, "false", "true", "skip (and count) malformed records instead of stopping"},
    {"output_dir", CLI_STR, O(output_dir), C_TRAIN | C_MERGE, "sft-output", "out2", "where checkpoints, metrics and the chart go"},
    /* training */
    {"num_train_epochs", CLI_REAL, O(num_train_epochs), C_TRAIN, "3", "1.5", "epochs (fractions allowed)"},
    {"max_steps", CLI_INT, O(max_steps), C_TRAIN, "-1", "17", "optimizer steps; overrides num_train_epochs when > 0"},
    {"per_device_train_batch_size", CLI_INT, O(per_device_train_batch_size), C_TRAIN | C_MEMORY, "8", "3", "rows per micro-batch"},
    {"per_device_eval_batch_size", CLI_INT, O(per_device_eval_batch_size), C_TRAIN, "8", "5", "rows per evaluation batch"},
    {"gradient_accumulation_steps", CLI_INT, O(gradient_accumulation_steps), C_TRAIN, "1", "4", "micro-batches per optimizer step"},
    {"learning_rate", CLI_REAL, O(learning_rate), C_TRAIN, "2e-05", "0.001", "the peak learning rate"},
    {"lr_scheduler_type", CLI_STR, O(lr_scheduler_type), C_TRAIN, "linear", "cosine",
     "linear, cosine, cosine_with_restarts, polynomial, constant, constant_with_warmup, inverse_sqrt, cosine_with_min_lr, "
     "cosine_warmup_with_min_lr, warmup_stable_decay, reduce_lr_on_plateau"},
    {"lr_scheduler_kwargs", CLI_STR, O(lr_scheduler_kwargs), C_TRAIN, "{}", "{\"num_cycles\": 2}",
     "JSON: num_cycles, power, lr_end, min_lr, min_lr_rate, num_stable_steps, num_decay_steps, warmup_type, decay_type, "
     "min_lr_ratio, warmup_lr_rate, factor, patience, threshold"},
    {"warmup_ratio", CLI_REAL, O(warmup_ratio), C_TRAIN, "0", "0.1", "warmup as a fraction of the steps"},
    {"warmup_steps", CLI_INT, O(warmup_steps), C_TRAIN, "0", "7", "warmup steps (wins over warmup_ratio)"},
    {"weight_decay", CLI_REAL, O(weight_decay), C_TRAIN, "0", "0.01", "decoupled weight decay (not on biases, norms, DoRA magnitudes)"},
    {"adam_beta1", CLI_REAL, O(adam_beta1), C_TRAIN, "0.9", "0.8", "AdamW beta1"},
    {"adam_beta2", CLI_REAL, O(adam_beta2), C_TRAIN, "0.999", "0.95", "AdamW beta2"},
    {"adam_epsilon", CLI_REAL, O(adam_epsilon), C_TRAIN, "1e-08", "1e-06", "AdamW epsilon"},
    {"max_grad_norm", CLI_REAL, O(max_grad_norm), C_TRAIN, "1", "0.5", "clip the gradient norm to this; 0 = no clipping"},
    {"bf16", CLI_BOOL, O(bf16), C_TRAIN, "false", "true", "bf16 compute (the frozen base's GEMMs; unless --bnb_4bit_compute_dtype says otherwise)"},
    {"fp16", CLI_BOOL, O(fp16), C_TRAIN, "false", "true",
     "f16 compute with dynamic loss scaling as torch's GradScaler (--device cuda only, as transformers needs a GPU)"},
    {"optim", CLI_STR, O(optim), C_TRAIN | C_MEMORY, "adamw_torch_fused", "adamw_bnb_8bit",
     "adamw_torch, adamw_torch_fused, adamw_bnb_8bit, adamw_8bit, paged_adamw_8bit, sgd, adafactor, schedule_free_adamw"},
    {"optim_args", CLI_STR, O(optim_args), C_TRAIN | C_MEMORY, "", "momentum=0.9",
     "k=v,k=v: schedule_free_adamw r, weight_lr_power; sgd momentum, dampening, nesterov"},
    {"seed", CLI_INT, O(seed), C_TRAIN | C_STATS | C_GENERATE, "42", "7", "seeds shuffling, LoRA init, dropout, sampling"},
    {"gradient_checkpointing", CLI_BOOL, O(gradient_checkpointing), C_TRAIN | C_MEMORY, "false", "true", "recompute each block in backward"},
    {"label_smoothing_factor", CLI_REAL, O(label_smoothing_factor), C_TRAIN, "0", "0.1", "label smoothing (transformers' LabelSmoother)"},
    {"neftune_noise_alpha", CLI_REAL, O(neftune_noise_alpha), C_TRAIN, "0", "5", "NEFTune noise on the input embeddings; 0 = off"},
    {"logging_steps", CLI_INT, O(logging_steps), C_TRAIN, "10", "3", "log every N steps"},
    {"logging_nan_inf_filter", CLI_BOOL, O(logging_nan_inf_filter), C_TRAIN, "true", "false", "a NaN/Inf loss counts as the mean in the log"},
    {"token_metrics", CLI_BOOL, O(token_metrics), C_TRAIN, "true", "false", "log mean_token_accuracy and entropy"},
    /* evaluation and checkpoints */
    {"eval_strategy", CLI_STR, O(eval_strategy), C_TRAIN, "no", "epoch", "no, steps, epoch"},
    {"eval_steps", CLI_INT, O(eval_steps), C_TRAIN, "0", "9", "evaluate every N steps (eval_strategy steps; 0 = logging_steps)"},
    {"eval_on_start", CLI_BOOL, O(eval_on_start), C_TRAIN, "false", "true", "evaluate before the first step"},
    {"save_strategy", CLI_STR, O(save_strategy), C_TRAIN, "steps", "epoch", "no, steps, epoch"},
    {"save_steps", CLI_INT, O(save_steps), C_TRAIN, "500", "11", "save a checkpoint every N steps (save_strategy steps)"},
    {"save_total_limit", CLI_INT, O(save_total_limit), C_TRAIN, "0", "2", "keep the newest N checkpoints and the best; 0 = all"},
    {"load_best_model_at_end", CLI_BOOL, O(load_best_model_at_end), C_TRAIN, "false", "true", "end on the best checkpoint's weights"},
    {"metric_for_best_model", CLI_STR, O(metric_for_best_model), C_TRAIN, "loss", "mean_token_accuracy", "loss, mean_token_accuracy, entropy"},
    {"greater_is_better", CLI_TRISTATE, O(greater_is_better), C_TRAIN, "None", "true", "None = false for loss, true otherwise"},
    {"resume_from_checkpoint", CLI_STR, O(resume_from_checkpoint), C_TRAIN, "", "true", "a checkpoint folder, or true: the newest in output_dir"},
    /* PEFT and quantization */
    {"use_peft", CLI_BOOL, O(use_peft), C_TRAIN | C_MEMORY, "false", "true", "train LoRA adapters (else every weight)"},
    {"lora_r", CLI_INT, O(lora_r), C_TRAIN | C_MEMORY, "16", "8", "LoRA rank"},
    {"lora_alpha", CLI_REAL, O(lora_alpha), C_TRAIN | C_MEMORY, "32", "16", "LoRA alpha (scaling alpha / r)"},
    {"lora_dropout", CLI_REAL, O(lora_dropout), C_TRAIN | C_MEMORY, "0.05", "0.1", "dropout on the adapters' input"},
    {"lora_target_modules", CLI_STR, O(lora_target_modules), C_TRAIN | C_MEMORY, "q_proj,v_proj", "all-linear",
     "all-linear or a comma list of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj (Phi-3: qkv_proj, "
     "o_proj, gate_up_proj, down_proj)"},
    {"use_dora", CLI_BOOL, O(use_dora), C_TRAIN | C_MEMORY, "false", "true", "DoRA adapters"},
    {"use_rslora", CLI_BOOL, O(use_rslora), C_TRAIN | C_MEMORY, "false", "true", "rsLoRA scaling alpha / sqrt(r)"},
    {"load_in_4bit", CLI_BOOL, O(load_in_4bit), C_TRAIN | C_MEMORY | C_GENERATE, "false", "true", "quantize the decoder's linears to 4 bits (QLoRA)"},
    {"bnb_4bit_quant_type", CLI_STR, O(bnb_4bit_quant_type), C_TRAIN | C_MEMORY | C_GENERATE, "nf4", "fp4", "nf4 or fp4"},
    {"bnb_4bit_compute_dtype", CLI_STR, O(bnb_4bit_compute_dtype), C_TRAIN | C_GENERATE, "auto", "float32",
     "the frozen base's GEMMs: float32, bfloat16, float16 (--device cuda), or auto (--bf16/--fp16's, else bfloat16 where the CPU has "
     "AVX512-BF16)"},
    {"bnb_4bit_use_double_quant", CLI_BOOL, O(bnb_4bit_use_double_quant), C_TRAIN | C_MEMORY | C_GENERATE, "false", "true",
     "quantize the block scales too"},
    /* generate and merge */
    {"adapter", CLI_STR, O(adapter), C_GENERATE | C_MERGE, "", "adapter2", "a PEFT adapter folder (or a checkpoint-N folder)"},
    {"prompt", CLI_STR, O(prompt), C_GENERATE, "", "Hello", "the prompt"},
    {"chat", CLI_BOOL, O(chat), C_GENERATE, "false", "true", "wrap the prompt in the chat template as a user turn"},
    {"max_new_tokens", CLI_INT, O(max_new_tokens), C_GENERATE, "0", "9", "tokens to generate at most (0 = generation_config.json's, else 64)"},
    {"temperature", CLI_REAL, O(temperature), C_GENERATE, "-1", "0.7",
     "0 = greedy; -1 = as generation_config.json says (do_sample, temperature, top_k, top_p), else greedy"},
    {"top_k", CLI_INT, O(top_k), C_GENERATE, "-1", "40", "sample from the k likeliest (0 = off; -1 = generation_config.json's)"},
    {"top_p", CLI_REAL, O(top_p), C_GENERATE, "-1", "0.9", "nucleus sampling (1 = off; -1 = generation_config.json's)"},
    {"dtype", CLI_STR, O(dtype), C_MERGE, "float32", "auto", "merged weights: float32, or auto (the base's dtype)"},
    /* the run */
    {"threads", CLI_INT, O(threads), C_ALL, "2", "1", "CPU threads"},
    {"profile", CLI_BOOL, O(profile), C_TRAIN, "false", "true", "at the end, print where the steps' time went, per operator"},
    {"ddp_timeout", CLI_REAL, O(ddp_timeout), C_TRAIN, "1800", "60",
     "under mpirun (an SFT_MPI build): seconds a rank waits for the others at each sum before giving up"},
    {"device", CLI_STR, O(device), C_TRAIN | C_GENERATE | C_MEMORY, "cpu", "cuda",
     "cpu, or cuda (a CUDA build of sft and a GPU): where the model, adapters, optimizer and activations live"},
};
#define CLI_N_FLAGS ((int)(sizeof cli_flags / sizeof *cli_flags))

static const char *const cli_commands[] = {"train", "generate", "merge", "stats", "memory", "render"};
#define CLI_N_COMMANDS 6

/* ============================================================================
   Parsing */

typedef struct cli_error { char msg[512]; } cli_error;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int cli_fail(cli_error *e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return 0;
}

static int cli_edit_distance(const char *a, const char *b) {
    int la = (int)strlen(a), lb = (int)strlen(b), i, j, row[128];
    if (la > 120 || lb > 120) return 1000;
    for (j = 0; j <= lb; j++) row[j] = j;
    for (i = 1; i <= la; i++) {
        int prev = row[0], cur;
        row[0] = i;
        for (j = 1; j <= lb; j++) {
            cur = row[j];
            row[j] = prev + (a[i - 1] != b[j - 1]);
            if (row[j - 1] + 1 < row[j]) row[j] = row[j - 1] + 1;
            if (cur + 1 < row[j]) row[j] = cur + 1;
            prev = cur;
        }
    }
    return row[lb];
}

/* the valid flag nearest to name (for "did you mean") */
static const char *cli_nearest(const char *name) {
    int i, best = 1000;
    const char *out = NULL;
    for (i = 0; i < CLI_N_FLAGS; i++) {
        int d = cli_edit_distance(name, cli_flags[i].name);
        if (d < best) { best = d; out = cli_flags[i].name; }
    }
    return out;
}

static const cli_flag *cli_find(const char *name) {
    int i;
    for (i = 0; i < CLI_N_FLAGS; i++) if (strcmp(cli_flags[i].name, name) == 0) return &cli_flags[i];
    return NULL;
}

static int cli_parse_bool(const char *v, int *out) {
    if (!strcmp(v, "true") || !strcmp(v, "True") || !strcmp(v, "1")) *out = 1;
    else if (!strcmp(v, "false") || !strcmp(v, "False") || !strcmp(v, "0")) *out = 0;
    else return 0;
    return 1;
}

/* cli_set: flag f = text (as typed); strings point into text, which must live on */
static int cli_set(cli_opts *o, const cli_flag *f, const char *text, cli_error *e) {
    char *end;
    void *at = (char *)o + f->offset;
    switch (f->type) {
    case CLI_STR: *(const char **)at = text; return 1;
    case CLI_INT: {
        long v;
        errno = 0;
        v = strtol(text, &end, 10);
        if (!*text || *end || errno || v < -2147483647L || v > 2147483647L) return cli_fail(e, "--%s: expected an integer, got '%s'", f->name, text);
        *(int *)at = (int)v;
        return 1;
    }
    case CLI_REAL: {
        double v = strtod(text, &end);
        if (!*text || *end || !isfinite(v)) return cli_fail(e, "--%s: expected a number, got '%s'", f->name, text);
        *(double *)at = v;
        return 1;
    }
    case CLI_BOOL:
        if (!cli_parse_bool(text, (int *)at)) return cli_fail(e, "--%s: expected true or false, got '%s'", f->name, text);
        return 1;
    case CLI_TRISTATE:
        if (!strcmp(text, "None") || !strcmp(text, "none")) { *(int *)at = -1; return 1; }
        if (!cli_parse_bool(text, (int *)at)) return cli_fail(e, "--%s: expected true, false or None, got '%s'", f->name, text);
        return 1;
    }
    return 0;
}

/* cli_defaults: every flag's default */
static void cli_defaults(cli_opts *o) {
    int i;
    cli_error e;
    memset(o, 0, sizeof *o);
    for (i = 0; i < CLI_N_FLAGS; i++) {
        const cli_flag *f = &cli_flags[i];
        if (f->type == CLI_STR) *(const char **)((char *)o + f->offset) = f->dflt[0] ? f->dflt : NULL;
        else cli_set(o, f, f->dflt, &e);
    }
}

/* cli_apply_config: the keys of a --config JSON file; its tree (*keep) holds
   the strings the options point to, so the caller frees it after use */
static int cli_apply_config(cli_opts *o, const char *path, int command, sft_json **keep, cli_error *e) {
    char *text = NULL;
    size_t len = 0, i;
    sft_json *j = NULL;
    sft_json_desc d;
    sft_status s;
    memset(&d, 0, sizeof d);
    if (sft_file_read(NULL, path, 0, &text, &len) != SFT_OK) return cli_fail(e, "--config: %s", sft_last_error());
    s = sft_json_parse(NULL, text, len, path, &d, &j);
    sft_free(NULL, text);
    if (s != SFT_OK) return cli_fail(e, "--config: %s", sft_last_error());
    *keep = j;
    if (j->type != SFT_JSON_OBJECT) return cli_fail(e, "--config: %s is not a JSON object", path);
    for (i = 0; i < j->length; i++) {
        const sft_json *v = &j->items[i];
        const cli_flag *f = cli_find(j->keys[i]);
        const char *value;
        char num[64];
        if (!f || !(f->commands & command)) {
            const char *near = cli_nearest(j->keys[i]);
            snprintf(e->msg, sizeof e->msg, "--config %s: unknown key \"%s\"%s%s%s", path, j->keys[i], near ? " (did you mean \"" : "",
                     near ? near : "", near ? "\"?)" : "");
            return 0;
        }
        if (v->type == SFT_JSON_STRING) value = v->string;
        else if (v->type == SFT_JSON_NUMBER) value = v->string;      /* the number as written */
        else if (v->type == SFT_JSON_TRUE || v->type == SFT_JSON_FALSE) value = v->type == SFT_JSON_TRUE ? "true" : "false";
        else if (v->type == SFT_JSON_NULL && f->type == CLI_TRISTATE) value = "None";
        else {
            snprintf(num, sizeof num, "%s", j->keys[i]);
            return cli_fail(e, "--config: \"%s\" must be a string, number or boolean", num);
        }
        if (!cli_set(o, f, value, e)) return 0;
    }
    return 1;
}

/* cli_parse: argv (after the command) into o. Returns 1, 0 on an error (e), or
   2 when --help was asked for. */
static int cli_parse(int argc, char **argv, int command, cli_opts *o, sft_json **config, cli_error *e) {
    int i;
    cli_defaults(o);
    *config = NULL;
    for (i = 0; i < argc; i++)            /* --config first: the command line wins */
        if (!strcmp(argv[i], "--config") || !strncmp(argv[i], "--config=", 9)) {
            const char *path = argv[i][8] == '=' ? argv[i] + 9 : i + 1 < argc ? argv[i + 1] : NULL;
            if (!path) return cli_fail(e, "--config: expected a JSON file");
            if (*config) return cli_fail(e, "--config: given twice");
            if (!cli_apply_config(o, path, command, config, e)) return 0;
        }
    for (i = 0; i < argc; i++) {
        const char *arg = argv[i], *eq, *value = NULL;
        char name[128];
        const cli_flag *f;
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) return 2;
        if (strncmp(arg, "--", 2) != 0) return cli_fail(e, "unexpected argument '%s' (flags start with --)", arg);
        arg += 2;
        eq = strchr(arg, '=');
        snprintf(name, sizeof name, "%.*s", eq ? (int)(eq - arg) : (int)strlen(arg), arg);
        if (!strcmp(name, "config")) { if (!eq) i++; continue; }
        f = cli_find(name);
        if (f && !(f->commands & command)) return cli_fail(e, "--%s is not a flag of this command (see its --help)", name);
        if (!f) {
            const char *near = cli_nearest(name);
            snprintf(e->msg, sizeof e->msg, "unknown flag --%s%s%s%s", name, near ? " (did you mean --" : "", near ? near : "", near ? "?)" : "");
            return 0;
        }
        if (eq) value = eq + 1;
        else if (f->type == CLI_BOOL || f->type == CLI_TRISTATE) {
            int b;
            if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) value = argv[++i];   /* --packing false */
            else value = "true";            /* a bare --packing */
            (void)b;
        } else if (i + 1 < argc) value = argv[++i];
        else return cli_fail(e, "--%s: expected a value", f->name);
        if (!cli_set(o, f, value, e)) return 0;
    }
    return 1;
}

/* ============================================================================
   From options to the library's configurations */

typedef struct cli_built {
    sft_train_config train;
    sft_data_desc    data;
    sft_lora_desc    lora;
    sft_load_desc    load;
    const char      *target_modules;
    int              use_peft, threads, streaming;
    const char      *model, *dataset, *eval_dataset;
    sft_generate_desc gen;
    const char      *adapter, *prompt;        /* generate and merge */
    double           ddp_timeout;             /* mpirun: seconds per collective sum */
    int              chat, keep_dtype;
    int              profile;
    const char      *chat_template_path;      /* read when the command runs */
    int              compute_dtype_flag;      /* --bnb_4bit_compute_dtype: 0 auto, 1 float32, 2 bfloat16, 3 float16 */
} cli_built;

static int cli_kwargs(const char *text, sft_schedule_desc *k, cli_error *e) {
    sft_json *j = NULL;
    sft_json_desc d;
    size_t i;
    memset(&d, 0, sizeof d);
    memset(k, 0, sizeof *k);
    if (!text) return 1;
    if (sft_json_parse(NULL, text, strlen(text), "--lr_scheduler_kwargs", &d, &j) != SFT_OK || j->type != SFT_JSON_OBJECT) {
        sft_json_free(j);
        return cli_fail(e, "--lr_scheduler_kwargs: expected a JSON object such as {\"num_cycles\": 2}, got '%s'", text);
    }
    for (i = 0; i < j->length; i++) {
        const char *key = j->keys[i];
        const sft_json *v = &j->items[i];
        double x = v->number;
        int num = v->type == SFT_JSON_NUMBER, ok = 1;
        if (!strcmp(key, "num_cycles") && num) k->num_cycles = x;
        else if (!strcmp(key, "power") && num) k->power = x;
        else if (!strcmp(key, "lr_end") && num) k->lr_end = x;
        else if (!strcmp(key, "min_lr") && num) k->min_lr = x;
        else if (!strcmp(key, "min_lr_rate") && num) k->min_lr_rate = x;
        else if (!strcmp(key, "num_stable_steps") && num) k->num_stable_steps = (int64_t)x;
        else if (!strcmp(key, "num_decay_steps") && num) k->num_decay_steps = (int64_t)x;
        else if (!strcmp(key, "min_lr_ratio") && num) k->min_lr_ratio = x;
        else if (!strcmp(key, "warmup_lr_rate") && num) k->warmup_lr_rate = x;
        else if (!strcmp(key, "factor") && num) k->factor = x;
        else if (!strcmp(key, "patience") && num) k->patience = x == 0 ? -1 : (int)x;
        else if (!strcmp(key, "threshold") && num) k->threshold = x;
        else if (!strcmp(key, "timescale") && num) {}     /* transformers' get_scheduler ignores it too */
        else if ((!strcmp(key, "warmup_type") || !strcmp(key, "decay_type")) && v->type == SFT_JSON_STRING)
            ok = sft_curve_from_name(v->string, key[0] == 'w' ? &k->warmup_type : &k->decay_type) == SFT_OK;
        else ok = 0;
        if (!ok) {
            char what[96];
            snprintf(what, sizeof what, "%s", key);
            sft_json_free(j);
            return cli_fail(e, "--lr_scheduler_kwargs: \"%s\" is not a setting of this form (see --help)", what);
        }
    }
    sft_json_free(j);
    return 1;
}

/* cli_build: the options as the library's settings, with every range check a
   user can get wrong named by its flag */
static int cli_build(const cli_opts *o, int command, cli_built *b, cli_error *e) {
    sft_train_config *t = &b->train;
    memset(b, 0, sizeof *b);
    b->model = o->model_name_or_path; b->dataset = o->dataset_name; b->eval_dataset = o->eval_dataset_name;
    b->threads = o->threads; b->use_peft = o->use_peft; b->target_modules = o->lora_target_modules;
    b->adapter = o->adapter; b->prompt = o->prompt; b->chat = o->chat; b->keep_dtype = !strcmp(o->dtype, "auto");
    b->profile = o->profile;
    if ((command & C_TRAIN) && !(o->ddp_timeout > 0.0 && o->ddp_timeout < 1e9)) return cli_fail(e, "--ddp_timeout: expected seconds > 0");
    b->ddp_timeout = o->ddp_timeout;
    if (!o->model_name_or_path) return cli_fail(e, "--model_name_or_path: required (a local model folder)");
    if ((command & C_DATA) && !o->dataset_name) return cli_fail(e, "--dataset_name: required (a JSONL file or folder)");
    if (o->threads < 1 || o->threads > 256) return cli_fail(e, "--threads: expected 1..256");
    if (strcmp(o->device, "cpu") && strcmp(o->device, "cuda")) return cli_fail(e, "--device: expected cpu or cuda, got '%s'", o->device);
    b->load.device = o->device[1] == 'u' ? SFT_DEVICE_CUDA : SFT_DEVICE_CPU;
    /* data */
    if (o->max_length < 1 && o->max_length != -1) return cli_fail(e, "--max_length: expected a positive number or -1");
    if (!(o->eval_fraction >= 0.0 && o->eval_fraction < 1.0)) return cli_fail(e, "--eval_fraction: expected [0, 1)");
    b->data.max_length = o->max_length; b->data.packing = o->packing; b->data.padding_free = o->padding_free;
    b->streaming = (command & C_TRAIN) && o->dataset_streaming;
    b->data.dataset_text_field = o->dataset_text_field;
    b->data.completion_only_loss = o->completion_only_loss < 0 ? SFT_DEFAULT : o->completion_only_loss ? SFT_ON : SFT_OFF;
    b->data.assistant_only_loss = o->assistant_only_loss; b->data.skip_bad_records = o->skip_bad_records;
    b->data.eval_fraction = (float)o->eval_fraction; b->data.seed = (uint64_t)o->seed;
    b->chat_template_path = o->chat_template_path;
    b->data.trl_chat_templates = o->trl_chat_templates;
    if (o->chat_template_kwargs) {
        sft_json *j = NULL;
        int ok = sft_json_parse(NULL, o->chat_template_kwargs, strlen(o->chat_template_kwargs), "--chat_template_kwargs", NULL, &j) == SFT_OK &&
                 j->type == SFT_JSON_OBJECT;
        sft_json_free(j);
        if (!ok) return cli_fail(e, "--chat_template_kwargs: expected a JSON object such as {\"enable_thinking\": false}, got '%s'", o->chat_template_kwargs);
        b->data.chat_template_kwargs = o->chat_template_kwargs;
    }
    /* LoRA and quantization */
    if (o->lora_r < 1) return cli_fail(e, "--lora_r: expected a positive rank");
    if (!(o->lora_alpha > 0.0)) return cli_fail(e, "--lora_alpha: expected a positive number");
    if (!(o->lora_dropout >= 0.0 && o->lora_dropout < 1.0)) return cli_fail(e, "--lora_dropout: expected [0, 1)");
    b->lora.r = o->lora_r; b->lora.alpha = (float)o->lora_alpha; b->lora.dropout = (float)o->lora_dropout;
    b->lora.use_dora = o->use_dora; b->lora.use_rslora = o->use_rslora; b->lora.seed = (uint64_t)o->seed;
    if (strcmp(o->bnb_4bit_quant_type, "nf4") && strcmp(o->bnb_4bit_quant_type, "fp4"))
        return cli_fail(e, "--bnb_4bit_quant_type: expected nf4 or fp4, got '%s'", o->bnb_4bit_quant_type);
    b->load.quant = !o->load_in_4bit ? SFT_QUANT_NONE : o->bnb_4bit_quant_type[0] == 'n' ? SFT_QUANT_NF4 : SFT_QUANT_FP4;
    b->load.double_quant = o->bnb_4bit_use_double_quant;
    if (!strcmp(o->bnb_4bit_compute_dtype, "auto")) b->compute_dtype_flag = 0;
    else if (!strcmp(o->bnb_4bit_compute_dtype, "float32")) b->compute_dtype_flag = 1;
    else if (!strcmp(o->bnb_4bit_compute_dtype, "bfloat16")) b->compute_dtype_flag = 2;
    else if (!strcmp(o->bnb_4bit_compute_dtype, "float16")) b->compute_dtype_flag = 3;
    else return cli_fail(e, "--bnb_4bit_compute_dtype: expected float32, bfloat16, float16 or auto, got '%s'", o->bnb_4bit_compute_dtype);
    if (o->fp16 && o->bf16) return cli_fail(e, "--fp16 and --bf16: choose one (transformers refuses both too)");
    if (b->compute_dtype_flag == 0 && (o->fp16 || o->bf16)) b->compute_dtype_flag = o->fp16 ? 3 : 2;   /* mixed precision's type */
    b->load.compute_dtype = b->compute_dtype_flag == 3 ? SFT_F16
                          : b->compute_dtype_flag == 2 || (b->compute_dtype_flag == 0 && sft_cpu_has_bf16()) ? SFT_BF16 : SFT_F32;
    if ((command & (C_TRAIN | C_MEMORY)) && o->load_in_4bit && !o->use_peft)
        return cli_fail(e, "--load_in_4bit: a 4-bit base cannot be fine-tuned whole; add --use_peft");
    /* generation */
    if (o->max_new_tokens < 0) return cli_fail(e, "--max_new_tokens: expected a positive number (0 = generation_config.json's)");
    if (!(o->temperature >= 0.0 || o->temperature == -1.0) || o->top_k < -1 || !((o->top_p > 0.0 && o->top_p <= 1.0) || o->top_p == -1.0))
        return cli_fail(e, "--temperature/--top_k/--top_p: expected temperature >= 0, top_k >= 0, 0 < top_p <= 1 (-1: generation_config.json's)");
    b->gen.max_new_tokens = o->max_new_tokens; b->gen.temperature = (float)o->temperature; b->gen.top_k = o->top_k;
    b->gen.top_p = (float)o->top_p; b->gen.seed = (uint64_t)o->seed;
    if (strcmp(o->dtype, "float32") && strcmp(o->dtype, "auto")) return cli_fail(e, "--dtype: expected float32 or auto, got '%s'", o->dtype);
    /* training */
    if (!(o->learning_rate > 0.0)) return cli_fail(e, "--learning_rate: expected a positive number");
    if (o->per_device_train_batch_size < 1 || o->per_device_eval_batch_size < 1)
        return cli_fail(e, "--per_device_train_batch_size/--per_device_eval_batch_size: expected a positive number");
    if (o->gradient_accumulation_steps < 1) return cli_fail(e, "--gradient_accumulation_steps: expected a positive number");
    if (o->max_steps < -1 || o->max_steps == 0) return cli_fail(e, "--max_steps: expected a positive number of steps, or -1 (use --num_train_epochs), got %d", o->max_steps);
    if (!(o->num_train_epochs > 0.0) && o->max_steps <= 0) return cli_fail(e, "--num_train_epochs: expected a positive number (or --max_steps)");
    if (!(o->warmup_ratio >= 0.0 && o->warmup_ratio <= 1.0)) return cli_fail(e, "--warmup_ratio: expected [0, 1]");
    if (o->warmup_steps < 0 || o->logging_steps < 1 || o->save_steps < 1 || o->eval_steps < 0 || o->save_total_limit < 0)
        return cli_fail(e, "--warmup_steps/--logging_steps/--save_steps/--eval_steps/--save_total_limit: out of range");
    if (!(o->weight_decay >= 0.0) || !(o->max_grad_norm >= 0.0) || !(o->adam_beta1 > 0.0 && o->adam_beta1 < 1.0) ||
        !(o->adam_beta2 > 0.0 && o->adam_beta2 < 1.0) || !(o->adam_epsilon > 0.0))
        return cli_fail(e, "--weight_decay/--max_grad_norm/--adam_beta1/--adam_beta2/--adam_epsilon: out of range");
    if (!(o->label_smoothing_factor >= 0.0 && o->label_smoothing_factor < 1.0) || !(o->neftune_noise_alpha >= 0.0))
        return cli_fail(e, "--label_smoothing_factor/--neftune_noise_alpha: out of range");
    t->num_train_epochs = o->num_train_epochs; t->max_steps = o->max_steps > 0 ? o->max_steps : 0;
    t->per_device_train_batch_size = o->per_device_train_batch_size; t->per_device_eval_batch_size = o->per_device_eval_batch_size;
    t->gradient_accumulation_steps = o->gradient_accumulation_steps; t->learning_rate = o->learning_rate;
    if (sft_schedule_from_name(o->lr_scheduler_type, &t->lr_scheduler_type) != SFT_OK)
        return cli_fail(e, "--%s", sft_last_error());
    if (!cli_kwargs(o->lr_scheduler_kwargs, &t->lr_scheduler_kwargs, e)) return 0;
    t->warmup_steps = o->warmup_steps; t->warmup_ratio = o->warmup_ratio; t->weight_decay = o->weight_decay;
    t->adam_beta1 = o->adam_beta1; t->adam_beta2 = o->adam_beta2; t->adam_epsilon = o->adam_epsilon;
    t->max_grad_norm = o->max_grad_norm > 0.0 ? o->max_grad_norm : 1.0;
    t->clip_grad_norm = o->max_grad_norm > 0.0 ? SFT_ON : SFT_OFF;           /* transformers: 0 = no clipping */
    t->fp16 = o->fp16;                                                        /* GradScaler's loss scaling */
    if (sft_optim_from_name(o->optim, &t->optim) != SFT_OK) return cli_fail(e, "--%s", sft_last_error());
    t->optim_args = o->optim_args && *o->optim_args ? o->optim_args : NULL;
    t->full_finetuning = !o->use_peft;
    t->seed = (uint64_t)o->seed; t->gradient_checkpointing = o->gradient_checkpointing;
    t->label_smoothing_factor = (float)o->label_smoothing_factor; t->neftune_noise_alpha = (float)o->neftune_noise_alpha;
    t->logging_steps = o->logging_steps; t->logging_nan_inf_filter = o->logging_nan_inf_filter ? SFT_ON : SFT_OFF;
    t->token_metrics = o->token_metrics;
    if (!strcmp(o->eval_strategy, "steps")) t->eval_steps = o->eval_steps ? o->eval_steps : o->logging_steps;
    else if (!strcmp(o->eval_strategy, "epoch")) t->eval_each_epoch = 1;
    else if (strcmp(o->eval_strategy, "no")) return cli_fail(e, "--eval_strategy: expected no, steps or epoch, got '%s'", o->eval_strategy);
    t->eval_on_start = o->eval_on_start;
    if ((t->eval_steps || t->eval_each_epoch || t->eval_on_start) && !o->eval_dataset_name && o->eval_fraction == 0.0)
        return cli_fail(e, "--eval_strategy: evaluation needs --eval_dataset_name or --eval_fraction");
    if (!strcmp(o->save_strategy, "steps")) t->save_steps = o->save_steps;
    else if (!strcmp(o->save_strategy, "epoch")) t->save_each_epoch = 1;
    else if (strcmp(o->save_strategy, "no")) return cli_fail(e, "--save_strategy: expected no, steps or epoch, got '%s'", o->save_strategy);
    t->save_total_limit = o->save_total_limit; t->load_best_model_at_end = o->load_best_model_at_end;
    t->metric_for_best_model = o->metric_for_best_model;
    t->greater_is_better = o->greater_is_better < 0 ? SFT_DEFAULT : o->greater_is_better ? SFT_ON : SFT_OFF;
    if (o->resume_from_checkpoint && (!strcmp(o->resume_from_checkpoint, "true") || !strcmp(o->resume_from_checkpoint, "True")))
        t->resume_from_checkpoint = "last";
    else if (o->resume_from_checkpoint && (!strcmp(o->resume_from_checkpoint, "false") || !strcmp(o->resume_from_checkpoint, "False")))
        t->resume_from_checkpoint = NULL;
    else t->resume_from_checkpoint = o->resume_from_checkpoint;
    t->output_dir = o->output_dir;
    return 1;
}

/* ============================================================================
   Help */

static void cli_help(int command, const char *name) {
    int i;
    printf("usage: sft %s [--config FILE.json] [flags]\n\n", name);
    for (i = 0; i < CLI_N_FLAGS; i++) {
        const cli_flag *f = &cli_flags[i];
        const char *type = f->type == CLI_STR ? "TEXT" : f->type == CLI_INT ? "INT" : f->type == CLI_REAL ? "NUM" : f->type == CLI_BOOL ? "BOOL" : "BOOL|None";
        if (!(f->commands & command)) continue;
        printf("  --%-30s %-9s default %-18s %s\n", f->name, type, f->dflt[0] ? f->dflt : "(none)", f->help);
    }
    printf("  --%-30s %-9s default %-18s %s\n", "config", "FILE", "(none)", "a JSON object of these flags (the command line wins)");
}

/* ============================================================================
   Shared pieces of the commands */

static int cli_is_file(const char *path) { struct stat st; return stat(path, &st) == 0 && S_ISREG(st.st_mode); }
static int cli_exists(const char *path) { struct stat st; return stat(path, &st) == 0; }

/* cli_check_output: --output_dir is a folder this user can write in, or can be
   created (its nearest existing parent is one), before anything loads */
static int cli_check_output(const char *dir, cli_error *e) {
    char path[4200];
    struct stat st;
    size_t n;
    if (!*dir) return cli_fail(e, "--output_dir: empty");
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) return cli_fail(e, "--output_dir: %s exists and is not a folder", dir);
        if (access(dir, W_OK | X_OK) != 0) return cli_fail(e, "--output_dir: %s is not writable (%s)", dir, strerror(errno));
        return 1;
    }
    if (errno != ENOENT) return cli_fail(e, "--output_dir: %s: %s", dir, strerror(errno));
    snprintf(path, sizeof path, "%s", dir);
    for (n = strlen(path); n > 0; ) {            /* the nearest parent that exists */
        while (n > 0 && path[n - 1] == '/') n--;
        while (n > 0 && path[n - 1] != '/') n--;
        path[n] = 0;
        if (n == 0) snprintf(path, sizeof path, ".");
        if (stat(path, &st) == 0) {
            if (!S_ISDIR(st.st_mode)) return cli_fail(e, "--output_dir: %s cannot be created: %s is not a folder", dir, path);
            if (access(path, W_OK | X_OK) != 0) return cli_fail(e, "--output_dir: %s cannot be created in %s (%s)", dir, path, strerror(errno));
            return 1;
        }
    }
    return 1;
}

/* cli_check_device: --device cuda needs a CUDA build and a device (checked
   before anything runs, like the paths) */
static int cli_check_device(const cli_built *b, cli_error *e) {
    if (b->load.device != SFT_DEVICE_CUDA || sft_cuda_available()) return 1;
#ifdef SFT_CUDA
    return cli_fail(e, "--device cuda: no CUDA device answers (check the driver and CUDA_VISIBLE_DEVICES)");
#else
    return cli_fail(e, "--device cuda: this sft has no CUDA backend; build it with make cuda (build/sft_cuda)");
#endif
}

/* cli_check_paths: the inputs exist, before anything runs or is written */
static int cli_check_paths(const cli_opts *o, int command, cli_error *e) {
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", o->model_name_or_path);
    if (!cli_is_file(path) && !sft_gguf_is_gguf(o->model_name_or_path))
        return cli_fail(e, "--model_name_or_path: %s has no config.json and is not a .gguf file (a Hugging Face model folder or a GGUF "
                        "file is expected)", o->model_name_or_path);
    if ((command & C_DATA) && !cli_exists(o->dataset_name)) return cli_fail(e, "--dataset_name: %s does not exist", o->dataset_name);
    if (o->chat_template_path && !cli_is_file(o->chat_template_path))
        return cli_fail(e, "--chat_template_path: %s is not a file (a Jinja template is expected)", o->chat_template_path);
    if (o->trl_chat_templates && !cli_exists(o->trl_chat_templates))
        return cli_fail(e, "--trl_chat_templates: %s does not exist", o->trl_chat_templates);
    if (o->eval_dataset_name && !cli_exists(o->eval_dataset_name)) return cli_fail(e, "--eval_dataset_name: %s does not exist", o->eval_dataset_name);
    if (o->adapter) {
        snprintf(path, sizeof path, "%s/adapter_config.json", o->adapter);
        if (!cli_is_file(path)) return cli_fail(e, "--adapter: %s has no adapter_config.json", o->adapter);
    }
    if ((command & C_MERGE) && !o->adapter) return cli_fail(e, "--adapter: required (the PEFT adapter to merge)");
    if ((command & C_GENERATE) && !o->prompt) return cli_fail(e, "--prompt: required");
    if ((command & (C_TRAIN | C_MERGE)) && !cli_check_output(o->output_dir, e)) return 0;
    return 1;
}

/* cli_write_model: the model's dense weights as a transformers folder (f32, or
   the base's dtype with auto), config.json and the tokenizer files copied */
static sft_status cli_write_model(sft_model *m, const char *src, const char *dst, int keep_dtype) {
    static const char *const copies[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"};
    sft_st_entry *e;
    sft_tensor **conv;
    char name[SFT_WEIGHT_NAME_MAX], *names, from[4200], to[4200], *text = NULL;
    const sft_model_config *cfg = sft_model_get_config(m);
    sft_dtype dtype = keep_dtype ? cfg->dtype : SFT_F32;
    const char *mk = "format", *mv = "pt";
    sft_tensor *t;
    size_t len = 0, k;
    int count, i, n = 0;
    sft_status s = SFT_OK;
    for (count = 0; sft_model_weight_at(m, count, NULL, NULL); count++) {}
    e = (sft_st_entry *)calloc((size_t)count + 1, sizeof *e);
    conv = (sft_tensor **)calloc((size_t)count + 1, sizeof *conv);
    names = (char *)calloc((size_t)count + 1, SFT_WEIGHT_NAME_MAX);
    if (!e || !conv || !names) { free(e); free(conv); free(names); return SFT_ERR_NOMEM; }
    if (mkdir(dst, 0777) != 0 && errno != EEXIST) { fprintf(stderr, "sft: cannot create %s: %s\n", dst, strerror(errno)); s = SFT_ERR_IO; }
    for (i = 0; s == SFT_OK && sft_model_weight_at(m, i, name, &t); i++) {
        if (!t) {
            if (!strstr(name, ".bias")) { fprintf(stderr, "sft: %s is 4-bit: merge needs a dense base\n", name); s = SFT_ERR_UNSUPPORTED; }
            continue;
        }
        memcpy(names + (size_t)n * SFT_WEIGHT_NAME_MAX, name, SFT_WEIGHT_NAME_MAX);
        if (t->dtype != dtype) s = sft_tensor_convert(NULL, t, dtype, &conv[n]);
        e[n] = sft_st_entry_from_tensor(names + (size_t)n * SFT_WEIGHT_NAME_MAX, conv[n] ? conv[n] : t);
        n++;
    }
    snprintf(to, sizeof to, "%s/model.safetensors", dst);
    if (s == SFT_OK) s = sft_st_save(NULL, to, e, n, &mk, &mv, 1);
    for (i = 0; i < n; i++) sft_tensor_destroy(conv[i]);
    free(e); free(conv); free(names);
    /* config.json as it was, with the dtype written */
    snprintf(from, sizeof from, "%s/config.json", src);
    if (s == SFT_OK) s = sft_file_read(NULL, from, 0, &text, &len);
    if (s == SFT_OK) {
        const char *want = dtype == SFT_F32 ? "float32" : dtype == SFT_BF16 ? "bfloat16" : "float16";
        char *at = strstr(text, "\"torch_dtype\"");
        sft_buf parts[3];
        int np = 1;
        parts[0].data = text; parts[0].len = len;
        if (at && (at = strchr(at + 13, '"')) != NULL) {     /* the value's opening quote */
            char *close = strchr(at + 1, '"');
            if (close) {
                parts[0].len = (size_t)(at + 1 - text);
                parts[1].data = want; parts[1].len = strlen(want);
                parts[2].data = close; parts[2].len = len - (size_t)(close - text);
                np = 3;
            }
        }
        snprintf(to, sizeof to, "%s/config.json", dst);
        s = sft_file_write_atomic(NULL, to, parts, np);
        sft_free(NULL, text);
    }
    for (k = 0; s == SFT_OK && k < sizeof copies / sizeof *copies; k++) {
        sft_buf b;
        snprintf(from, sizeof from, "%s/%s", src, copies[k]);
        if (!cli_is_file(from)) continue;
        if ((s = sft_file_read(NULL, from, 0, &text, &len)) != SFT_OK) break;
        b.data = text; b.len = len;
        snprintf(to, sizeof to, "%s/%s", dst, copies[k]);
        s = sft_file_write_atomic(NULL, to, &b, 1);
        sft_free(NULL, text);
    }
    return s;
}

/* cli_merge: base + adapter merged into dense weights, written as a model folder */
static sft_status cli_merge(sft_context *ctx, const cli_opts *o) {
    static const char *const projs[9] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
                                         "qkv_proj", "gate_up_proj"};
    sft_model *m = NULL;
    const char *name = "default";
    sft_status s;
    int layer, p;
    if ((s = sft_model_load(ctx, o->model_name_or_path, NULL, &m)) != SFT_OK) return s;
    if (sft_model_get_config(m)->prequantized != SFT_QUANT_NONE) {
        sft_model_destroy(m);
        fprintf(stderr, "sft merge: %s is a pre-quantized 4-bit checkpoint; merge into its dense original\n", o->model_name_or_path);
        return SFT_ERR_UNSUPPORTED;
    }
    s = sft_model_load_adapter(m, o->adapter, name);
    for (layer = 0; s == SFT_OK && layer < sft_model_get_config(m)->num_hidden_layers; layer++)
        for (p = 0; s == SFT_OK && p < 9; p++) {
            sft_linear *l = sft_model_linear(m, layer, projs[p]);
            sft_lora_weights w;
            if (l && sft_linear_adapter_weights(l, name, &w) == SFT_OK) s = sft_linear_merge(l, &name, 1);
            else sft_clear_error();
        }
    if (s == SFT_OK) s = cli_write_model(m, o->model_name_or_path, o->output_dir, !strcmp(o->dtype, "auto"));
    sft_model_destroy(m);
    return s;
}

/* ============================================================================
   Progress: a bar on a terminal, JSON lines otherwise, and the SVG chart */

typedef struct cli_point { double step, value; } cli_point;
typedef struct cli_run {
    int        tty;
    int        quiet;              /* a rank other than 0 of an mpirun: rank 0 reports */
    double     start;
    int64_t    tokens;             /* at the last log */
    cli_point *loss, *eval, *lr;
    int        n_loss, n_eval, n_lr, cap_loss, cap_eval, cap_lr;
    char       chart[4200];
} cli_run;

static volatile sig_atomic_t cli_interrupted;
static void cli_on_sigint(int sig) { (void)sig; cli_interrupted = 1; }

static double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void cli_push(cli_point **a, int *n, int *cap, double step, double value) {
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 256;
        cli_point *p = (cli_point *)realloc(*a, (size_t)nc * sizeof *p);
        if (!p) return;
        *a = p; *cap = nc;
    }
    (*a)[*n].step = step; (*a)[(*n)++].value = value;
}

/* one series as an SVG polyline in the plot box (x0..x1, y0..y1) */
static size_t cli_svg_line(char *out, size_t cap, const cli_point *p, int n, double smax, double vmin, double vmax, const char *color, int dots) {
    size_t len = 0;
    int i;
    if (n == 0 || cap < 64) return 0;
    if (!dots) len += (size_t)snprintf(out + len, cap - len, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", color);
    for (i = 0; i < n && len + 64 < cap; i++) {
        double x = 60.0 + 560.0 * (smax > 0 ? p[i].step / smax : 0.0);
        double y = 330.0 - 300.0 * (vmax > vmin ? (p[i].value - vmin) / (vmax - vmin) : 0.5);
        if (dots) len += (size_t)snprintf(out + len, cap - len, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/>", x, y, color);
        else len += (size_t)snprintf(out + len, cap - len, "%.1f,%.1f ", x, y);
    }
    if (!dots && len + 4 < cap) len += (size_t)snprintf(out + len, cap - len, "\"/>");
    return len;
}

/* cli_chart: train loss, eval loss (left axis) and learning rate (right axis)
   against the step, rewritten whole at each log */
static void cli_chart(cli_run *r) {
    size_t cap = 64 * 1024 + 160 * (size_t)(r->n_loss + r->n_eval + r->n_lr), len = 0;
    char *svg = (char *)malloc(cap);
    double smax = 1, lmin = INFINITY, lmax = -INFINITY, rmax = 0;
    int i;
    sft_buf b;
    if (!svg) return;
    for (i = 0; i < r->n_loss; i++) { if (r->loss[i].step > smax) smax = r->loss[i].step; lmin = fmin(lmin, r->loss[i].value); lmax = fmax(lmax, r->loss[i].value); }
    for (i = 0; i < r->n_eval; i++) { lmin = fmin(lmin, r->eval[i].value); lmax = fmax(lmax, r->eval[i].value); }
    for (i = 0; i < r->n_lr; i++) rmax = fmax(rmax, r->lr[i].value);
    if (!(lmin < lmax)) { lmin = lmin == lmin && lmin < INFINITY ? lmin - 1 : 0; lmax = lmin + 2; }
    len += (size_t)snprintf(svg + len, cap - len,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"700\" height=\"380\" font-family=\"sans-serif\" font-size=\"12\">\n"
        "<rect width=\"700\" height=\"380\" fill=\"white\"/>\n"
        "<rect x=\"60\" y=\"30\" width=\"560\" height=\"300\" fill=\"none\" stroke=\"#999\"/>\n"
        "<text x=\"60\" y=\"20\">train loss (blue), eval loss (orange) and learning rate (green, right axis) by step</text>\n"
        "<text x=\"55\" y=\"34\" text-anchor=\"end\">%.4g</text><text x=\"55\" y=\"334\" text-anchor=\"end\">%.4g</text>\n"
        "<text x=\"625\" y=\"34\">%.3g</text><text x=\"625\" y=\"334\">0</text>\n"
        "<text x=\"60\" y=\"350\">0</text><text x=\"620\" y=\"350\" text-anchor=\"end\">step %.0f</text>\n",
        lmax, lmin, rmax, smax);
    len += cli_svg_line(svg + len, cap - len, r->loss, r->n_loss, smax, lmin, lmax, "#1f77b4", 0);
    len += cli_svg_line(svg + len, cap - len, r->eval, r->n_eval, smax, lmin, lmax, "#ff7f0e", 1);
    len += cli_svg_line(svg + len, cap - len, r->lr, r->n_lr, smax, 0.0, rmax > 0 ? rmax : 1.0, "#2ca02c", 0);
    len += (size_t)snprintf(svg + len, cap - len, "\n</svg>\n");
    b.data = svg; b.len = len;
    if (sft_file_write_atomic(NULL, r->chart, &b, 1) != SFT_OK) sft_clear_error();
    free(svg);
}

static void cli_on_log(const sft_log_entry *e, void *user) {
    cli_run *r = (cli_run *)user;
    if (r->quiet) return;
    if (e->is_eval) cli_push(&r->eval, &r->n_eval, &r->cap_eval, (double)e->global_step, e->loss);
    else {
        cli_push(&r->loss, &r->n_loss, &r->cap_loss, (double)e->global_step, e->loss);
        cli_push(&r->lr, &r->n_lr, &r->cap_lr, (double)e->global_step, e->learning_rate);
        r->tokens = e->num_tokens;
    }
    if (!r->tty) {                       /* JSON lines for logs and pipes */
        if (e->is_eval) printf("{\"eval_loss\": %.6g, \"eval_mean_token_accuracy\": %.6g, \"epoch\": %.4g, \"step\": %lld}\n", e->loss,
                               e->mean_token_accuracy, e->epoch, (long long)e->global_step);
        else printf("{\"loss\": %.6g, \"grad_norm\": %.6g, \"learning_rate\": %.6g, \"num_tokens\": %lld, \"mean_token_accuracy\": %.6g, "
                    "\"epoch\": %.4g, \"step\": %lld}\n", e->loss, e->grad_norm, e->learning_rate, (long long)e->num_tokens,
                    e->mean_token_accuracy, e->epoch, (long long)e->global_step);
        fflush(stdout);
    }
    cli_chart(r);
}

static int cli_on_step_end(const sft_step_info *info, void *user) {
    cli_run *r = (cli_run *)user;
    if (r->tty) {
        double t = cli_now() - r->start, eta = info->global_step ? t / (double)info->global_step * (double)(info->max_steps - info->global_step) : 0;
        int width = 24, fill = info->max_steps ? (int)(width * info->global_step / info->max_steps) : 0, i;
        char bar[32];
        for (i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        printf("\r[%s] %lld/%lld  loss %.4f  lr %.2e  %.0f tok/s  ETA %02d:%02d ", bar, (long long)info->global_step, (long long)info->max_steps,
               info->loss, info->learning_rate, t > 0 ? (double)r->tokens / t : 0.0, (int)eta / 60, (int)eta % 60);
        fflush(stdout);
    }
    return cli_interrupted != 0;          /* Ctrl-C: stop at this step, save, say how to resume */
}

/* cli_print_profile: --profile's table, per step of the run */
static void cli_print_profile(const sft_context *ctx, const sft_train_output *out) {
    size_t need = sft_profile_report(ctx, out->global_step, out->train_runtime, NULL, 0);
    char *text = (char *)malloc(need + 1);
    if (!text) return;
    sft_profile_report(ctx, out->global_step, out->train_runtime, text, need + 1);
    printf("profile: %lld steps, %d threads (per step; evaluation and checkpoints count as other)\n%s",
           (long long)out->global_step, sft_context_threads(ctx), text);
    free(text);
}

/* ============================================================================
   The commands */

typedef struct cli_env {
    sft_context   *ctx;
    sft_tokenizer *tok;
    sft_model     *model;
    sft_dataset   *train, *eval;
    char          *chat_template;   /* --chat_template_path's text */
    sft_data_desc  data;            /* the data settings, with that text */
} cli_env;

static void cli_env_free(cli_env *v) {
    sft_dataset_destroy(v->train); sft_dataset_destroy(v->eval);
    sft_model_destroy(v->model);
    sft_tokenizer_destroy(v->tok);
    sft_free(v->ctx, v->chat_template);
    sft_context_destroy(v->ctx);
}

/* cli_lib_fail: a library call failed on what (a flag or a file). The status
   says whose fault: bad input (a malformed or missing file, an impossible
   setting: exit 2) or the machine (memory, the disk: exit 1). A message that
   already begins with the file's name is not prefixed with it again. */
static int cli_lib_fail_status(const char *command, const char *what, sft_status s) {
    const char *msg = sft_last_error();
    size_t n = strlen(what);
    if (strncmp(msg, what, n) == 0 && (msg[n] == ':' || msg[n] == 0)) fprintf(stderr, "sft %s: %s\n", command, msg);
    else fprintf(stderr, "sft %s: %s: %s\n", command, what, msg);
    return s == SFT_ERR_FORMAT || s == SFT_ERR_ARG || s == SFT_ERR_NOT_FOUND || s == SFT_ERR_LIMIT || s == SFT_ERR_DTYPE ||
           s == SFT_ERR_SHAPE || s == SFT_ERR_UNSUPPORTED ? 2 : 1;
}
static int cli_lib_fail(const char *command, const char *what) { return cli_lib_fail_status(command, what, SFT_ERR_IO); }

/* cli_log: the library's warnings (a skipped record, a resume that will not
   match) on stderr; after 20, only a count at the end */
static int cli_warnings;
static void cli_log(sft_log_level level, const char *msg, void *user) {
    (void)user;
    if (level < SFT_LOG_WARN) return;
    if (++cli_warnings <= 20) fprintf(stderr, "sft: warning: %s\n", msg);
    else if (cli_warnings == 21) fprintf(stderr, "sft: warning: further warnings are counted, not shown\n");
}

/* cli_skipped: --skip_bad_records said how many it skipped (each one was a warning) */
static void cli_skipped(const char *path, const sft_dataset *ds) {
    sft_data_stats st = sft_dataset_stats(ds);
    if (st.dropped_malformed)
        fprintf(stderr, "sft: %s: skipped %lld malformed record%s of %lld (--skip_bad_records)\n", path, (long long)st.dropped_malformed,
                st.dropped_malformed == 1 ? "" : "s", (long long)st.rows_read);
}

/* cli_open: the context, tokenizer, datasets and model a command needs */
static int cli_open(const cli_built *b, int command, int want_model, cli_env *v, const char *cmd) {
    sft_context_desc cd;
    sft_status s;
    memset(v, 0, sizeof *v);
    memset(&cd, 0, sizeof cd);
    cd.threads = b->threads;
    if (!(command & C_RENDER)) cd.log = cli_log;     /* render reports each skipped record in its output */
    if (sft_context_create(&cd, &v->ctx) != SFT_OK) return cli_lib_fail(cmd, "context");
    if (sft_tokenizer_load(v->ctx, b->model, &v->tok) != SFT_OK) return cli_lib_fail(cmd, b->model);
    v->data = b->data;
    if (b->chat_template_path) {     /* TRL's chat_template_path: the file's text is the template */
        size_t len;
        if (sft_file_read(v->ctx, b->chat_template_path, 0, &v->chat_template, &len) != SFT_OK) return cli_lib_fail(cmd, "--chat_template_path");
        v->data.chat_template_text = v->chat_template;
    }
    if (command & C_RENDER) { v->data.packing = 0; v->data.eval_fraction = 0; v->data.skip_bad_records = 1; }
    if (b->streaming) {     /* records read as the trainer asks for them (sft_dataset_stream_jsonl) */
        if ((s = sft_dataset_stream_jsonl(v->ctx, v->tok, b->dataset, NULL, &v->data, &v->train)) != SFT_OK)
            return cli_lib_fail_status(cmd, b->dataset, s);
    } else if ((command & C_DATA) && (s = sft_dataset_load(v->ctx, v->tok, b->dataset, &v->data, &v->train)) != SFT_OK)
        return cli_lib_fail_status(cmd, b->dataset, s);
    if ((command & C_DATA) && !(command & C_RENDER) && !b->streaming) cli_skipped(b->dataset, v->train);
    if ((command & (C_TRAIN | C_STATS)) && b->eval_dataset) {
        sft_data_desc d = v->data;
        d.eval_fraction = 0;
        if ((s = sft_dataset_load(v->ctx, v->tok, b->eval_dataset, &d, &v->eval)) != SFT_OK) return cli_lib_fail_status(cmd, b->eval_dataset, s);
        cli_skipped(b->eval_dataset, v->eval);
    }
    if (want_model) {
        if (sft_model_load(v->ctx, b->model, &b->load, &v->model) != SFT_OK) return cli_lib_fail(cmd, b->model);
        if (b->use_peft && (command & (C_TRAIN | C_MEMORY)) &&
            sft_model_add_lora(v->model, "default", &b->lora, b->target_modules) != SFT_OK)
            return cli_lib_fail(cmd, "--lora_target_modules");
    }
    return 0;
}

static int cli_train(const cli_opts *o, cli_built *b) {
    cli_env v;
    cli_run r;
    sft_train_output out;
    sft_status s;
    char metrics[4200];
    int rc;
    if ((rc = cli_open(b, C_TRAIN, 1, &v, "train")) != 0) { cli_env_free(&v); return rc; }
    memset(&r, 0, sizeof r);
    r.tty = isatty(STDOUT_FILENO);
    r.start = cli_now();
    snprintf(r.chart, sizeof r.chart, "%s/training_curves.svg", o->output_dir);
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", o->output_dir);
    b->train.eval_dataset = v.eval;
    b->train.metrics_path = metrics;
    b->train.on_log = cli_on_log;
    b->train.on_step_end = cli_on_step_end;
    b->train.user = &r;
#ifdef SFT_MPI
    if (sft_mpi_parallel(v.ctx, b->ddp_timeout, &b->train.parallel) != SFT_OK) { cli_env_free(&v); return cli_lib_fail("train", "MPI"); }
    r.quiet = b->train.parallel.rank != 0;
    if (r.quiet) r.tty = 0;
#endif
    signal(SIGINT, cli_on_sigint);
    if (b->profile) sft_profile_enable(v.ctx, 1);
    s = sft_train(v.model, v.train, &b->train, &out);
#ifdef SFT_MPI
    sft_mpi_parallel_release(&b->train.parallel);
#endif
    if (r.tty) printf("\n");
    if (s == SFT_OK && b->profile && !r.quiet) cli_print_profile(v.ctx, &out);
    if (s != SFT_OK) {
        rc = s == SFT_ERR_ARG ? 2 : 1;
        fprintf(stderr, "sft train: %s\n", sft_last_error());
    } else if (r.quiet) {
        rc = 0;                      /* rank 0 saves and reports; every rank holds the same weights */
    } else {
        if (b->use_peft) s = sft_model_save_adapter(v.model, "default", o->output_dir);
        else s = cli_write_model(v.model, o->model_name_or_path, o->output_dir, 0);
        printf("{\"train_runtime\": %.1f, \"train_samples_per_second\": %.3f, \"train_steps_per_second\": %.3f, \"total_flos\": %.6g, "
               "\"train_loss\": %.6g, \"global_step\": %lld%s}\n", out.train_runtime, out.train_samples_per_second, out.train_steps_per_second,
               out.total_flos, out.train_loss, (long long)out.global_step, out.cancelled ? ", \"cancelled\": true" : "");
        if (s != SFT_OK) { fprintf(stderr, "sft train: saving the result: %s\n", sft_last_error()); rc = 1; }
        else if (out.cancelled)
            printf("stopped at step %lld; a checkpoint is in %s (continue with --resume_from_checkpoint true)\n", (long long)out.global_step, o->output_dir);
        else printf("%s saved to %s (chart: %s)\n", b->use_peft ? "adapter" : "model", o->output_dir, r.chart);
    }
    free(r.loss); free(r.eval); free(r.lr);
    cli_env_free(&v);
    return rc;
}

/* cli_chat_prompt: the prompt as a user turn of the model's chat template, with
   the generation prompt, as apply_chat_template(add_generation_prompt=True) */
static int cli_chat_prompt(cli_env *v, const char *prompt, char **text) {
    sft_json_writer w;
    sft_chat_desc d;
    char *msgs = NULL;
    size_t len = 0;
    int ok;
    memset(&w, 0, sizeof w);
    sft_json_write_array_begin(&w);
    sft_json_write_object_begin(&w);
    sft_json_write_key(&w, "role"); sft_json_write_string(&w, "user");
    sft_json_write_key(&w, "content"); sft_json_write_string(&w, prompt);
    sft_json_write_object_end(&w);
    sft_json_write_array_end(&w);
    if (sft_json_writer_finish(&w, &msgs, &len) != SFT_OK) return 0;
    memset(&d, 0, sizeof d);
    d.chat_template = v->data.chat_template_text; d.kwargs = v->data.chat_template_kwargs; d.add_generation_prompt = 1;
    ok = sft_tokenizer_apply_chat_template(v->tok, msgs, &d, text, &len, NULL, NULL) == SFT_OK;
    sft_free(NULL, msgs);
    return ok;
}

/* cli_generation_settings: the flags where given, else what generation_config.json
   asks (do_sample with its temperature, top_k and top_p; its eos_token_id list) */
static int cli_generation_settings(const cli_opts *o, cli_built *b, const sft_generation_config *gc) {
    sft_generate_desc *g = &b->gen;
    g->max_new_tokens = o->max_new_tokens > 0 ? o->max_new_tokens : gc->max_new_tokens > 0 ? gc->max_new_tokens : 64;
    g->temperature = o->temperature >= 0 ? (float)o->temperature : gc->do_sample ? gc->temperature : 0.0f;
    g->top_k = o->top_k >= 0 ? o->top_k : gc->do_sample ? gc->top_k : 0;
    g->top_p = o->top_p > 0 ? (float)o->top_p : gc->do_sample ? gc->top_p : 1.0f;
    if (g->temperature < 0 || g->top_k < 0 || !(g->top_p > 0 && g->top_p <= 1)) return 0;
    g->eos_token_ids = gc->n_eos ? gc->eos_token_ids : NULL;
    g->n_eos_token_ids = gc->n_eos;
    return 1;
}

static int cli_generate(const cli_opts *o, cli_built *b) {
    cli_env v;
    char *text = NULL, *prompt_text = NULL;
    int32_t *ids = NULL, *out = NULL;
    size_t n_ids = 0, n_text = 0;
    int n_out = 0, rc;
    sft_generation_config gc;
    if ((rc = cli_open(b, C_GENERATE, 1, &v, "generate")) != 0) { cli_env_free(&v); return rc; }
    if (sft_generation_config_load(o->model_name_or_path, &gc) != SFT_OK) { cli_env_free(&v); return cli_lib_fail("generate", "generation_config.json"); }
    if (!cli_generation_settings(o, b, &gc)) {
        fprintf(stderr, "sft generate: generation_config.json: temperature %g, top_k %d, top_p %g are out of range\n", gc.temperature, gc.top_k, gc.top_p);
        cli_env_free(&v);
        return 2;
    }
    if (o->adapter && sft_model_load_adapter(v.model, o->adapter, "default") != SFT_OK) { cli_env_free(&v); return cli_lib_fail("generate", o->adapter); }
    if (o->chat && !cli_chat_prompt(&v, o->prompt, &prompt_text)) { cli_env_free(&v); return cli_lib_fail("generate", "--chat"); }
    if (sft_tokenizer_encode(v.tok, prompt_text ? prompt_text : o->prompt, strlen(prompt_text ? prompt_text : o->prompt), !o->chat, &ids, &n_ids) != SFT_OK ||
        sft_model_generate(v.model, ids, (int)n_ids, &b->gen, &out, &n_out) != SFT_OK ||
        sft_tokenizer_decode(v.tok, out, (size_t)n_out, 1, &text, &n_text) != SFT_OK)
        rc = cli_lib_fail("generate", "generation");
    else printf("%s\n", text);
    sft_free(v.ctx, ids); sft_free(v.ctx, out); sft_free(v.ctx, text); sft_free(v.ctx, prompt_text);
    cli_env_free(&v);
    return rc;
}

/* cli_render_record: one record as training sees it, one JSON line: the text
   TRL tokenizes, the ids, and the labels (-100 where not trained) */
static int cli_render_record(cli_env *v, const char *record, const char *where) {
    sft_json_writer w;
    char *text = NULL, *line = NULL;
    int32_t *ids = NULL, *labels = NULL;
    int64_t n = 0, i;
    int dropped = 0, ok = 1;
    size_t len;
    memset(&w, 0, sizeof w);
    sft_json_write_object_begin(&w);
    if (sft_dataset_render(v->train, record, 0, &text) != SFT_OK ||
        sft_dataset_prepare(v->train, record, &ids, &labels, &n, &dropped) != SFT_OK) {
        sft_json_write_key(&w, "record"); sft_json_write_string(&w, where);
        sft_json_write_key(&w, "error"); sft_json_write_string(&w, sft_last_error());
        ok = 0;
    } else {
        sft_json_write_key(&w, "text"); sft_json_write_string(&w, text);
        sft_json_write_key(&w, "input_ids"); sft_json_write_array_begin(&w);
        for (i = 0; i < n; i++) sft_json_write_int(&w, ids[i]);
        sft_json_write_array_end(&w);
        sft_json_write_key(&w, "labels"); sft_json_write_array_begin(&w);
        for (i = 0; i < n; i++) sft_json_write_int(&w, labels[i]);
        sft_json_write_array_end(&w);
        if (dropped) { sft_json_write_key(&w, "dropped"); sft_json_write_string(&w, "nothing left to train (TRL drops the row)"); }
    }
    sft_json_write_object_end(&w);
    if (sft_json_writer_finish(&w, &line, &len) == SFT_OK) printf("%s\n", line);
    sft_free(NULL, line); sft_free(v->ctx, text); sft_free(v->ctx, ids); sft_free(v->ctx, labels);
    return ok;
}

/* cli_render_file: every non-blank line of a JSONL file */
static int cli_render_file(cli_env *v, const char *path, int *bad) {
    char *data = NULL, where[4300];
    size_t len = 0, i = 0, line = 1;
    if (sft_file_read(v->ctx, path, 0, &data, &len) != SFT_OK) return 0;
    while (i < len) {
        size_t e = i, j;
        int blank = 1;
        while (e < len && data[e] != '\n') e++;
        for (j = i; j < e; j++) if (!isspace((unsigned char)data[j])) { blank = 0; break; }
        if (!blank) {
            char save = data[e < len ? e : len];
            data[e < len ? e : len] = 0;
            snprintf(where, sizeof where, "%s:%zu", path, line);
            *bad += !cli_render_record(v, data + i, where);
            data[e < len ? e : len] = save;
        }
        i = e + 1; line++;
    }
    sft_free(v->ctx, data);
    return 1;
}

static int cli_cmp_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* sft render: what training sees, record by record */
static int cli_render(const cli_opts *o, cli_built *b) {
    cli_env v;
    int rc, bad = 0;
    struct stat st;
    if ((rc = cli_open(b, C_RENDER, 0, &v, "render")) != 0) { cli_env_free(&v); return rc; }
    if (stat(o->dataset_name, &st) == 0 && S_ISDIR(st.st_mode)) {      /* a folder: its .jsonl files in name order */
        DIR *d = opendir(o->dataset_name);
        struct dirent *de;
        char *names[4096], path[4200];
        int n = 0, i;
        while (d && (de = readdir(d)) != NULL && n < 4096) {
            size_t l = strlen(de->d_name);
            if (l >= 6 && !strcmp(de->d_name + l - 6, ".jsonl") && (names[n] = (char *)malloc(l + 1)) != NULL) memcpy(names[n++], de->d_name, l + 1);
        }
        if (d) closedir(d);
        qsort(names, (size_t)n, sizeof *names, cli_cmp_name);
        for (i = 0; i < n; i++) {
            snprintf(path, sizeof path, "%s/%s", o->dataset_name, names[i]);
            if (!cli_render_file(&v, path, &bad)) rc = cli_lib_fail("render", path);
            free(names[i]);
        }
    } else if (!cli_render_file(&v, o->dataset_name, &bad))
        rc = cli_lib_fail("render", o->dataset_name);
    cli_env_free(&v);
    return rc ? rc : bad ? 1 : 0;
}

static int cli_stats(const cli_opts *o, cli_built *b) {
    cli_env v;
    sft_data_stats st;
    int rc;
    (void)o;
    if ((rc = cli_open(b, C_STATS, 0, &v, "stats")) != 0) { cli_env_free(&v); return rc; }
    st = sft_dataset_stats(v.train);
    printf("{\"rows_read\": %lld, \"rows_kept\": %lld, \"dropped_malformed\": %lld, \"dropped_empty\": %lld, \"dropped_untrained\": %lld, "
           "\"truncated\": %lld, \"tokens\": %lld, \"trained_tokens\": %lld, \"bins\": %lld, \"packing_efficiency\": %.4f, \"eval_rows\": %lld}\n",
           (long long)st.rows_read, (long long)st.rows_kept, (long long)st.dropped_malformed, (long long)st.dropped_empty,
           (long long)st.dropped_untrained, (long long)st.truncated, (long long)st.tokens, (long long)st.trained_tokens, (long long)st.bins,
           st.packing_efficiency, (long long)st.eval_rows);
    cli_env_free(&v);
    return 0;
}

static int cli_memory(const cli_opts *o, cli_built *b) {
    cli_env v;
    sft_memory_plan plan;
    sft_model_run run;
    int rc;
    double mib = 1024.0 * 1024.0;
    if ((rc = cli_open(b, C_MEMORY, 1, &v, "memory")) != 0) { cli_env_free(&v); return rc; }
    memset(&run, 0, sizeof run);
    run.training = 1; run.gradient_checkpointing = o->gradient_checkpointing;
    if (!b->use_peft) { fprintf(stderr, "sft memory: the plan covers LoRA runs (--use_peft)\n"); cli_env_free(&v); return 2; }
    if (sft_model_memory_plan(v.model, o->per_device_train_batch_size, o->max_length > 0 ? o->max_length : 1024, &run, &plan) != SFT_OK) {
        cli_env_free(&v);
        return cli_lib_fail("memory", "plan");
    }
    {   /* the plan counts AdamW's two f32 values per trained value; the others keep less */
        size_t kept = plan.optimizer;
        sft_optim k = b->train.optim;
        if (k == SFT_OPTIM_ADAMW_8BIT) kept = plan.optimizer / 4;                 /* 2 bytes instead of 8 */
        else if (k == SFT_OPTIM_SGD) kept = o->optim_args && strstr(o->optim_args, "momentum") ? plan.optimizer / 2 : 0;
        else if (k == SFT_OPTIM_ADAFACTOR) kept = plan.optimizer / 2;             /* at most: 2-D tensors keep a row and a column */
        plan.total -= plan.optimizer - kept;
        plan.optimizer = kept;
    }
    printf("{\"device\": \"%s\", \"weights_mib\": %.2f, \"adapters_mib\": %.2f, \"gradients_mib\": %.2f, \"optimizer_mib\": %.2f, "
           "\"activations_mib\": %.2f, \"workspace_mib\": %.2f, \"total_mib\": %.2f}\n", o->device, plan.weights / mib, plan.adapters / mib,
           plan.gradients / mib, plan.optimizer / mib, plan.activations / mib, plan.workspace / mib, plan.total / mib);
    cli_env_free(&v);
    return 0;
}

static int cli_run_merge(const cli_opts *o, cli_built *b) {
    sft_context *ctx = NULL;
    sft_context_desc cd;
    sft_status s;
    memset(&cd, 0, sizeof cd);
    cd.threads = b->threads;
    if (sft_context_create(&cd, &ctx) != SFT_OK) return cli_lib_fail("merge", "context");
    s = cli_merge(ctx, o);
    if (s == SFT_OK) printf("merged %s + %s into %s (%s)\n", o->model_name_or_path, o->adapter, o->output_dir, o->dtype);
    else fprintf(stderr, "sft merge: %s\n", sft_last_error());
    sft_context_destroy(ctx);
    return s == SFT_OK ? 0 : 1;
}

/* sft export: a PEFT adapter as a GGUF LoRA llama.cpp loads with --lora, or
   (--merged) a GGUF base with the adapter merged in as a GGUF model. Its own
   flags (not TRL's), so it sits beside the flag table:
       sft export --model_name_or_path MODEL --adapter DIR --gguf OUT.gguf [--gguf_dtype f32|f16]
       sft export --model_name_or_path BASE.gguf [--adapter DIR] --merged --gguf OUT.gguf [--gguf_dtype f16|bf16|q8_0]
   MODEL is the base (a folder or a .gguf file): its architecture and head
   counts decide the tensor names and the q/k row order. */
static int cli_export(int argc, char **argv) {
    static const char *const projs[7] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
    const char *model = NULL, *adapter = NULL, *out = NULL, *dtype = NULL, *name = "default";
    sft_context *ctx = NULL;
    sft_model *m = NULL;
    sft_status s;
    char path[4200];
    int i, merged = 0, type;
    for (i = 0; i < argc; i++) {
        const char **dst = !strcmp(argv[i], "--model_name_or_path") ? &model : !strcmp(argv[i], "--adapter") ? &adapter
                         : !strcmp(argv[i], "--gguf") ? &out : !strcmp(argv[i], "--gguf_dtype") ? &dtype : NULL;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: sft export --model_name_or_path MODEL --adapter DIR --gguf OUT.gguf [--gguf_dtype f32|f16]\n"
                   "         the PEFT adapter DIR as a GGUF LoRA (llama.cpp: llama-cli -m BASE.gguf --lora OUT.gguf)\n"
                   "       sft export --model_name_or_path BASE.gguf [--adapter DIR] --merged --gguf OUT.gguf [--gguf_dtype f16|bf16|q8_0]\n"
                   "         the base with the adapter merged in, as a GGUF model (default f16)\n");
            return 0;
        }
        if (!strcmp(argv[i], "--merged")) { merged = 1; continue; }
        if (!dst || i + 1 == argc) { fprintf(stderr, "sft export: unknown flag or missing value: %s\n", argv[i]); return 2; }
        *dst = argv[++i];
    }
    if (!dtype) dtype = merged ? "f16" : "f32";
    if (!model || !out || (!adapter && !merged)) { fprintf(stderr, "sft export: --model_name_or_path, --gguf and --adapter (or --merged) are required\n"); return 2; }
    type = !strcmp(dtype, "f32") ? SFT_GGML_F32 : !strcmp(dtype, "f16") ? SFT_GGML_F16 : !strcmp(dtype, "bf16") ? SFT_GGML_BF16
         : !strcmp(dtype, "q8_0") ? SFT_GGML_Q8_0 : -1;
    if (merged ? type == SFT_GGML_F32 || type < 0 : type != SFT_GGML_F32 && type != SFT_GGML_F16) {
        fprintf(stderr, "sft export: --gguf_dtype: %s (%s)\n", dtype, merged ? "f16, bf16 or q8_0" : "f32 or f16");
        return 2;
    }
    if (adapter) {
        snprintf(path, sizeof path, "%s/adapter_config.json", adapter);
        if (!cli_is_file(path)) { fprintf(stderr, "sft export: --adapter: %s has no adapter_config.json\n", adapter); return 2; }
    }
    snprintf(path, sizeof path, "%s/config.json", model);
    if (merged ? !sft_gguf_is_gguf(model) : !cli_is_file(path) && !sft_gguf_is_gguf(model)) {
        fprintf(stderr, "sft export: --model_name_or_path: %s is not a %s\n", model, merged ? ".gguf file" : "model folder or a .gguf file");
        return 2;
    }
    if (sft_context_create(NULL, &ctx) != SFT_OK) return cli_lib_fail("export", "context");
    s = sft_model_load(ctx, model, NULL, &m);
    if (s == SFT_OK && adapter) s = sft_model_load_adapter(m, adapter, name);
    if (s == SFT_OK && merged && adapter) {
        int layer, p;
        for (layer = 0; s == SFT_OK && layer < sft_model_get_config(m)->num_hidden_layers; layer++)
            for (p = 0; s == SFT_OK && p < 7; p++) {
                sft_linear *l = sft_model_linear(m, layer, projs[p]);
                sft_lora_weights w;
                if (l && sft_linear_adapter_weights(l, name, &w) == SFT_OK) s = sft_linear_merge(l, &name, 1);
                else sft_clear_error();
            }
    }
    if (s == SFT_OK) s = merged ? sft_model_save_gguf(m, out, type) : sft_model_save_adapter_gguf(m, name, out, type);
    if (s == SFT_OK) printf("exported %s as a GGUF %s: %s (%s)\n", adapter ? adapter : model, merged ? "model" : "LoRA", out, dtype);
    else fprintf(stderr, "sft export: %s\n", sft_last_error());
    sft_model_destroy(m);
    sft_context_destroy(ctx);
    return s == SFT_OK ? 0 : 1;
}

/* sft_cli_main: the whole command (main's argv); returns the exit status */
int sft_cli_main(int argc, char **argv);
int sft_cli_main(int argc, char **argv) {
    static const int masks[] = {C_TRAIN, C_GENERATE, C_MERGE, C_STATS, C_MEMORY, C_RENDER};
    cli_opts o;
    cli_built b;
    cli_error e;
    sft_json *config = NULL;
    int c, command = -1, rc;
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        printf("usage: sft COMMAND [flags]   (sft COMMAND --help lists the flags)\n"
               "  train     fine-tune a model on a JSONL dataset (TRL's flags)\n"
               "  generate  complete a prompt, with or without an adapter\n"
               "  merge     write base + adapter merged as a model folder\n"
               "  stats     what a dataset turns into (rows, tokens, truncation, packing)\n"
               "  memory    the memory a training step will need, before anything runs\n"
               "  render    what training sees: each record's text, ids and labels, as JSON lines\n"
               "  export    a PEFT adapter as a GGUF LoRA for llama.cpp (sft export --help)\n");
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "export")) return cli_export(argc - 2, argv + 2);
    for (c = 0; c < CLI_N_COMMANDS; c++) if (!strcmp(argv[1], cli_commands[c])) command = c;
    if (command < 0) { fprintf(stderr, "sft: unknown command '%s' (train, generate, merge, stats, memory, render)\n", argv[1]); return 2; }
    rc = cli_parse(argc - 2, argv + 2, masks[command], &o, &config, &e);
    if (rc == 2) { cli_help(masks[command], cli_commands[command]); sft_json_free(config); return 0; }
    if (!rc || !cli_build(&o, masks[command], &b, &e) || !cli_check_paths(&o, masks[command], &e) || !cli_check_device(&b, &e)) {
        fprintf(stderr, "sft %s: %s\n", cli_commands[command], e.msg);
        sft_json_free(config);
        return 2;
    }
    switch (command) {
    case 0: rc = cli_train(&o, &b); break;
    case 1: rc = cli_generate(&o, &b); break;
    case 2: rc = cli_run_merge(&o, &b); break;
    case 3: rc = cli_stats(&o, &b); break;
    case 4: rc = cli_memory(&o, &b); break;
    default: rc = cli_render(&o, &b); break;
    }
    sft_json_free(config);
    return rc;
}

#ifndef SFT_CLI_NO_MAIN
#ifdef SFT_MPI
/* under mpirun: each rank runs the command; a rank that fails ends the whole
   run at once (MPI_Abort) rather than leave the others waiting on a sum */
int main(int argc, char **argv) {
    int rc, size = 1;
    MPI_Init(&argc, &argv);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    rc = sft_cli_main(argc, argv);
    fflush(stdout); fflush(stderr);
    if (rc != 0 && size > 1) MPI_Abort(MPI_COMM_WORLD, rc);
    MPI_Finalize();
    return rc;
}
#else
int main(int argc, char **argv) { return sft_cli_main(argc, argv); }
#endif
#endif
