/* demo.c - the engine of `make demo`: a whole QLoRA fine-tune, from nothing, in
   a couple of minutes on two CPU cores, measured before and after.

   Nothing is downloaded. The program makes a tiny Llama model of its own, gives
   it a short general training, then shows that a QLoRA fine-tune teaches it a
   task it could not do before:

       demo build DIR             a tiny Llama base model + tokenizer as Hugging Face
                                  files in DIR/base (random weights), and the task's
                                  data, DIR/train.jsonl and DIR/eval.jsonl
       demo pretrain DIR          train every weight of DIR/base (f32) on other chat
                                  tasks and write them back to DIR/base (it starts
                                  from the weights there: run it once after build)
       demo eval DIR [ADAPTER]    greedy answers to every DIR/eval.jsonl prompt from
                                  the NF4-quantized base (+ a PEFT adapter folder);
                                  the last line is exact_match=X (n=N)
       demo report DIR            the last line of `make demo`: exact_match before
                                  and after (from the two evals' result files)

   Between the evals, `make demo` fine-tunes with `build/sft train` and the
   flags listed below (NF4 base + LoRA on all linear layers).

   Build (needs stb_ds.h for its lists: apt-get install libstb-dev):
       cc -O2 examples/demo.c -o build/demo -lm -lpthread
   Threads: every online CPU; DEMO_THREADS=N says otherwise (1 is faster when
   another program keeps a core busy). The results do not depend on it.

   THE FILES (DIR/base is a model folder transformers opens as it is)
       config.json            LlamaForCausalLM, float32: hidden 128, 2 layers, 4
                              heads, intermediate 384, 256 positions, vocab 259
       model.safetensors      initialised as transformers does: normal(0, 0.02),
                              norms 1, the padding row of the embedding 0
       tokenizer.json         byte-level BPE without merges: 256 byte tokens in
                              GPT-2's byte alphabet (id = byte), then
                              <|endoftext|> 256, <|im_start|> 257, <|im_end|> 258
       tokenizer_config.json  the ChatML chat_template (no default system turn;
                              the assistant turn marked with {% generation %} as
                              TRL's assistant-only loss needs), eos <|im_end|>,
                              pad <|endoftext|>
       generation_config.json
       train.jsonl, eval.jsonl  TRL's conversational format: {"messages":
                              [{"role": "user", ...}, {"role": "assistant", ...}]}

   THE TASK: sort five digits, "Sort: 7 2 9 2 4" -> "2 2 4 7 9": the answer is
   computed, not copied. 2,000 training conversations and 200 held-out eval
   prompts; no eval prompt is a training prompt (build checks the files).
   Pretraining uses other tasks in the same chat format (repeat, reverse,
   count, min, max, next number), so the base knows the format and the digits
   but has never seen "Sort": alone it scores 0.

   THE FINE-TUNE in TRL's flag names (the Makefile's demo target passes them to
   build/sft train):
       --model_name_or_path DIR/base --dataset_name DIR/train.jsonl
       --load_in_4bit --bnb_4bit_quant_type nf4      (blocksize 64; no
                                                      --use_bnb_nested_quant)
       --use_peft --lora_r 16 --lora_alpha 32 --lora_dropout 0.0
       --lora_target_modules all-linear
       --assistant_only_loss True                    (max_length 1024, no packing)
       --per_device_train_batch_size 16 --gradient_accumulation_steps 1
       --num_train_epochs 3 --learning_rate 2e-3
       --lr_scheduler_type cosine --warmup_ratio 0.05
       --optim adamw_torch --weight_decay 0.0 --max_grad_norm 1.0
       --gradient_checkpointing False --seed 42 --logging_steps 75
   375 optimizer steps. */
#define SFT_IMPLEMENTATION
#include "../sft.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

/* stb_ds's growing arrays hold the lists read from files; a failed allocation
   may end a demo (the library itself checks every one) */
#define STB_DS_IMPLEMENTATION
#include <stb/stb_ds.h>

/* ============================================================================
   Settings */

/* the base model (2 layers learn more than 3 or 4 in the same time) */
#define HIDDEN        128
#define LAYERS        2
#define HEADS         4
#define INTERMEDIATE  384
#define MAX_POSITIONS 256
#define ID_EOT        256                   /* <|endoftext|>: padding                  */
#define ID_IM_START   257                   /* <|im_start|>                            */
#define ID_IM_END     258                   /* <|im_end|>: end of a turn, the eos     */
#define VOCAB         259                   /* 256 bytes + 3 special tokens            */
#define INIT_STD      0.02                  /* transformers' initializer_range         */
#define INIT_SEED     1234u

/* pretraining: every weight, f32, on generated chat examples of other tasks,
   one epoch of 500 steps. The learning rate matters most: 5e-4 to 1e-3 give a
   base LoRA adapts easily, 2e-3 is borderline and 3e-3 or more gives a base
   the fine-tune cannot fix in 375 steps. */
#define PT_EXAMPLES   16000
#define PT_BATCH      32
#define PT_LR         1e-3
#define PT_WARMUP     0.05
#define PT_LOG        100
#define PT_SEED       7u
#define PT_MAX_DIGITS 8                     /* lists of 2..PT_MAX_DIGITS digits          */

/* the task's data */
#define TASK_DIGITS   5
#define N_TRAIN       2000
#define N_EVAL        200
#define DATA_SEED     2024u

/* evaluation */
#define EVAL_MAX_NEW  16

/* ============================================================================
   Small helpers */

static int fail(sft_status s, const char *what) {
    fprintf(stderr, "demo: %s: %s: %s\n", what, sft_status_str(s), sft_last_error());
    return 1;
}

static int cpu_threads(void) {
    const char *env = getenv("DEMO_THREADS");
    long n = env && atoi(env) > 0 ? atoi(env) : sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

static sft_status new_context(sft_context **ctx) {
    sft_context_desc cd;
    memset(&cd, 0, sizeof cd);
    cd.threads = cpu_threads();
    return sft_context_create(&cd, ctx);
}

/* dir/name into out (a path that does not fit ends the program) */
static void join(char *out, size_t cap, const char *dir, const char *name) {
    if (snprintf(out, cap, "%s/%s", dir, name) >= (int)cap) {
        fprintf(stderr, "demo: path too long: %s/%s\n", dir, name);
        exit(1);
    }
}

/* mkdir -p */
static sft_status make_dir(const char *path) {
    char p[1024];
    size_t i, n = strlen(path);
    if (n == 0 || n >= sizeof p) return SFT_ERR_ARG;
    memcpy(p, path, n + 1);
    for (i = 1; i < n; i++)
        if (p[i] == '/') { p[i] = 0; if (mkdir(p, 0777) != 0 && errno != EEXIST) break; p[i] = '/'; }
    if (mkdir(path, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "demo: cannot create %s: %s\n", path, strerror(errno));
        return SFT_ERR_IO;
    }
    return SFT_OK;
}

/* a deterministic generator for the data (splitmix64) */
static uint64_t rng_next(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static int rng_below(uint64_t *state, int n) { return (int)(rng_next(state) % (uint64_t)n); }

/* a growing text buffer */
typedef struct text_buf { char *p; size_t len, cap; } text_buf;

static int text_put(text_buf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        char *p;
        while (cap < b->len + n + 1) cap *= 2;
        if (!(p = (char *)realloc(b->p, cap))) return 0;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
    return 1;
}

/* sft_json_writer_finish's text written to path (atomically), or appended to
   buf as one JSONL line when buf is given */
static sft_status finish_json(sft_context *ctx, sft_json_writer *w, const char *path, text_buf *buf) {
    char *text = NULL;
    size_t len = 0;
    sft_status s = sft_json_writer_finish(w, &text, &len);
    if (s == SFT_OK && buf) {
        if (!text_put(buf, text, len) || !text_put(buf, "\n", 1)) s = SFT_ERR_NOMEM;
    } else if (s == SFT_OK) {
        sft_buf parts[2];
        parts[0].data = text; parts[0].len = len;
        parts[1].data = "\n"; parts[1].len = 1;
        s = sft_file_write_atomic(ctx, path, parts, 2);
    }
    sft_free(ctx, text);
    return s;
}

static void w_key_str(sft_json_writer *w, const char *key, const char *v) {
    sft_json_write_key(w, key);
    if (v) sft_json_write_string(w, v); else sft_json_write_null(w);
}
static void w_key_int(sft_json_writer *w, const char *key, int64_t v) { sft_json_write_key(w, key); sft_json_write_int(w, v); }
static void w_key_num(sft_json_writer *w, const char *key, double v) { sft_json_write_key(w, key); sft_json_write_number(w, v); }
static void w_key_bool(sft_json_writer *w, const char *key, int v) { sft_json_write_key(w, key); sft_json_write_bool(w, v); }

/* ============================================================================
   The tokenizer: byte-level BPE with no merges (one token per byte)

   Byte-level BPE stores bytes as printable characters: GPT-2's bytes_to_unicode
   keeps the printable Latin-1 bytes as they are and moves the other 68 to
   U+0100 and up. Token id b is byte b. */

static const char *const SPECIAL[3] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};

/* the ChatML template of Qwen2/SmolLM2 without a default system turn; the
   assistant turn is wrapped in {% generation %} as TRL's training templates
   do, so --assistant_only_loss works with transformers as well */
static const char CHAT_TEMPLATE[] =
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] }}"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endgeneration %}"
    "{% else %}{{ '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/* the character byte b stands for, as UTF-8 (NUL-terminated) */
static void byte_char(int b, char out[3]) {
    int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    int cp = b, k, n = 0;
    if (!printable) {                       /* the n-th unprintable byte -> U+0100 + n */
        for (k = 0; k < b; k++) n += !((k >= '!' && k <= '~') || (k >= 0xA1 && k <= 0xAC) || (k >= 0xAE && k <= 0xFF));
        cp = 256 + n;
    }
    if (cp < 0x80) { out[0] = (char)cp; out[1] = 0; }
    else { out[0] = (char)(0xC0 | (cp >> 6)); out[1] = (char)(0x80 | (cp & 0x3F)); out[2] = 0; }
}

static void w_byte_level(sft_json_writer *w, int add_prefix_space) {
    sft_json_write_object_begin(w);
    w_key_str(w, "type", "ByteLevel");
    w_key_bool(w, "add_prefix_space", add_prefix_space);
    w_key_bool(w, "trim_offsets", 1);
    w_key_bool(w, "use_regex", 1);
    sft_json_write_object_end(w);
}

static void w_added_token(sft_json_writer *w, int i) {
    sft_json_write_object_begin(w);
    w_key_str(w, "content", SPECIAL[i]);
    w_key_bool(w, "lstrip", 0);
    w_key_bool(w, "normalized", 0);
    w_key_bool(w, "rstrip", 0);
    w_key_bool(w, "single_word", 0);
    w_key_bool(w, "special", 1);
    sft_json_write_object_end(w);
}

static sft_status write_tokenizer(sft_context *ctx, const char *dir) {
    sft_json_writer w;
    char path[1024], ch[3], id[8];
    int b, i;
    sft_status s;
    /* tokenizer.json */
    memset(&w, 0, sizeof w);
    w.ctx = ctx;
    w.indent = 2;
    sft_json_write_object_begin(&w);
    w_key_str(&w, "version", "1.0");
    w_key_str(&w, "truncation", NULL);
    w_key_str(&w, "padding", NULL);
    sft_json_write_key(&w, "added_tokens");
    sft_json_write_array_begin(&w);
    for (i = 0; i < 3; i++) {
        sft_json_write_object_begin(&w);
        w_key_int(&w, "id", ID_EOT + i);
        w_key_str(&w, "content", SPECIAL[i]);
        w_key_bool(&w, "single_word", 0);
        w_key_bool(&w, "lstrip", 0);
        w_key_bool(&w, "rstrip", 0);
        w_key_bool(&w, "normalized", 0);
        w_key_bool(&w, "special", 1);
        sft_json_write_object_end(&w);
    }
    sft_json_write_array_end(&w);
    w_key_str(&w, "normalizer", NULL);
    sft_json_write_key(&w, "pre_tokenizer"); w_byte_level(&w, 0);
    sft_json_write_key(&w, "post_processor"); w_byte_level(&w, 0);
    sft_json_write_key(&w, "decoder"); w_byte_level(&w, 0);
    sft_json_write_key(&w, "model");
    sft_json_write_object_begin(&w);
    w_key_str(&w, "type", "BPE");
    w_key_str(&w, "dropout", NULL);
    w_key_str(&w, "unk_token", NULL);
    w_key_str(&w, "continuing_subword_prefix", "");
    w_key_str(&w, "end_of_word_suffix", "");
    w_key_bool(&w, "fuse_unk", 0);
    w_key_bool(&w, "byte_fallback", 0);
    w_key_bool(&w, "ignore_merges", 0);
    sft_json_write_key(&w, "vocab");
    sft_json_write_object_begin(&w);
    for (b = 0; b < 256; b++) { byte_char(b, ch); w_key_int(&w, ch, b); }
    sft_json_write_object_end(&w);
    sft_json_write_key(&w, "merges");
    sft_json_write_array_begin(&w);
    sft_json_write_array_end(&w);
    sft_json_write_object_end(&w);
    sft_json_write_object_end(&w);
    join(path, sizeof path, dir, "tokenizer.json");
    if ((s = finish_json(ctx, &w, path, NULL)) != SFT_OK) return s;

    /* tokenizer_config.json */
    memset(&w, 0, sizeof w);
    w.ctx = ctx;
    w.indent = 2;
    sft_json_write_object_begin(&w);
    w_key_bool(&w, "add_prefix_space", 0);
    sft_json_write_key(&w, "added_tokens_decoder");
    sft_json_write_object_begin(&w);
    for (i = 0; i < 3; i++) { snprintf(id, sizeof id, "%d", ID_EOT + i); sft_json_write_key(&w, id); w_added_token(&w, i); }
    sft_json_write_object_end(&w);
    sft_json_write_key(&w, "additional_special_tokens");
    sft_json_write_array_begin(&w);
    sft_json_write_string(&w, SPECIAL[1]);
    sft_json_write_string(&w, SPECIAL[2]);
    sft_json_write_array_end(&w);
    w_key_str(&w, "bos_token", NULL);
    w_key_str(&w, "chat_template", CHAT_TEMPLATE);
    w_key_bool(&w, "clean_up_tokenization_spaces", 0);
    w_key_str(&w, "eos_token", SPECIAL[2]);
    w_key_str(&w, "errors", "replace");
    w_key_int(&w, "model_max_length", MAX_POSITIONS);
    w_key_str(&w, "pad_token", SPECIAL[0]);
    w_key_str(&w, "tokenizer_class", "PreTrainedTokenizerFast");
    w_key_str(&w, "unk_token", NULL);
    sft_json_write_object_end(&w);
    join(path, sizeof path, dir, "tokenizer_config.json");
    return finish_json(ctx, &w, path, NULL);
}

/* ============================================================================
   The base model: config.json, generation_config.json, model.safetensors */

static sft_status write_config(sft_context *ctx, const char *dir) {
    sft_json_writer w;
    char path[1024];
    sft_status s;
    memset(&w, 0, sizeof w);
    w.ctx = ctx;
    w.indent = 2;
    sft_json_write_object_begin(&w);
    sft_json_write_key(&w, "architectures");
    sft_json_write_array_begin(&w);
    sft_json_write_string(&w, "LlamaForCausalLM");
    sft_json_write_array_end(&w);
    w_key_bool(&w, "attention_bias", 0);
    w_key_num(&w, "attention_dropout", 0.0);
    w_key_int(&w, "bos_token_id", ID_EOT);
    w_key_int(&w, "eos_token_id", ID_IM_END);
    w_key_int(&w, "head_dim", HIDDEN / HEADS);
    w_key_str(&w, "hidden_act", "silu");
    w_key_int(&w, "hidden_size", HIDDEN);
    w_key_num(&w, "initializer_range", INIT_STD);
    w_key_int(&w, "intermediate_size", INTERMEDIATE);
    w_key_int(&w, "max_position_embeddings", MAX_POSITIONS);
    w_key_bool(&w, "mlp_bias", 0);
    w_key_str(&w, "model_type", "llama");
    w_key_int(&w, "num_attention_heads", HEADS);
    w_key_int(&w, "num_hidden_layers", LAYERS);
    w_key_int(&w, "num_key_value_heads", HEADS);
    w_key_int(&w, "pad_token_id", ID_EOT);
    w_key_int(&w, "pretraining_tp", 1);
    w_key_num(&w, "rms_norm_eps", 1e-5);
    w_key_str(&w, "rope_scaling", NULL);
    w_key_num(&w, "rope_theta", 10000.0);
    w_key_bool(&w, "tie_word_embeddings", 0);
    w_key_str(&w, "torch_dtype", "float32");
    w_key_bool(&w, "use_cache", 1);
    w_key_int(&w, "vocab_size", VOCAB);
    sft_json_write_object_end(&w);
    join(path, sizeof path, dir, "config.json");
    if ((s = finish_json(ctx, &w, path, NULL)) != SFT_OK) return s;

    memset(&w, 0, sizeof w);
    w.ctx = ctx;
    w.indent = 2;
    sft_json_write_object_begin(&w);
    w_key_int(&w, "bos_token_id", ID_EOT);
    w_key_int(&w, "eos_token_id", ID_IM_END);
    w_key_int(&w, "pad_token_id", ID_EOT);
    sft_json_write_object_end(&w);
    join(path, sizeof path, dir, "generation_config.json");
    return finish_json(ctx, &w, path, NULL);
}

/* N(0, std) from Philox: Box-Muller on two uniforms of (key, 2i), (key, 2i + 1) */
static void fill_normal(float *x, int64_t n, uint64_t key, double std) {
    int64_t i;
    for (i = 0; i < n; i++) {
        double u1 = 1.0 - (double)sft_rng_uniform(key, 2 * (uint64_t)i), u2 = sft_rng_uniform(key, 2 * (uint64_t)i + 1);
        x[i] = (float)(std * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
    }
}

#define N_WEIGHTS (3 + 9 * LAYERS)

/* the weights as transformers' LlamaForCausalLM initialises them: every linear
   and the embedding N(0, initializer_range), the embedding's padding row 0,
   every RMSNorm weight 1 */
static sft_status write_weights(sft_context *ctx, const char *dir) {
    static const char *const proj[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                        "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
    char names[N_WEIGHTS][SFT_WEIGHT_NAME_MAX], path[1024];
    sft_st_entry entries[N_WEIGHTS];
    float *data[N_WEIGHTS];
    const char *meta_key = "format", *meta_value = "pt";
    int n = 0, l, p, i;
    sft_status s = SFT_OK;
    for (i = -1; i <= LAYERS; i++) {
        int k, count = i < 0 ? 1 : i == LAYERS ? 2 : 9;
        for (k = 0; k < count; k++) {
            sft_st_entry *e = &entries[n];
            int64_t rows = 1, cols = 1, j;
            int norm = 0;
            memset(e, 0, sizeof *e);
            if (i < 0) { snprintf(names[n], SFT_WEIGHT_NAME_MAX, "model.embed_tokens.weight"); rows = VOCAB; cols = HIDDEN; }
            else if (i == LAYERS && k == 0) { snprintf(names[n], SFT_WEIGHT_NAME_MAX, "model.norm.weight"); cols = HIDDEN; norm = 1; }
            else if (i == LAYERS) { snprintf(names[n], SFT_WEIGHT_NAME_MAX, "lm_head.weight"); rows = VOCAB; cols = HIDDEN; }
            else if (k >= 7) {
                l = i;
                snprintf(names[n], SFT_WEIGHT_NAME_MAX, "model.layers.%d.%s.weight", l,
                         k == 7 ? "input_layernorm" : "post_attention_layernorm");
                cols = HIDDEN;
                norm = 1;
            } else {
                l = i; p = k;
                snprintf(names[n], SFT_WEIGHT_NAME_MAX, "model.layers.%d.%s.weight", l, proj[p]);
                rows = p < 4 ? HIDDEN : p == 6 ? HIDDEN : INTERMEDIATE;
                cols = p < 4 ? HIDDEN : p == 6 ? INTERMEDIATE : HIDDEN;
            }
            data[n] = (float *)malloc((size_t)(rows * cols) * sizeof(float));
            if (!data[n]) { s = SFT_ERR_NOMEM; goto done; }
            if (norm) for (j = 0; j < cols; j++) data[n][j] = 1.0f;
            else fill_normal(data[n], rows * cols, sft_rng_key(INIT_SEED, 0x696e6974ull, (uint64_t)n, 0), INIT_STD);
            if (i < 0) memset(data[n] + (int64_t)ID_EOT * HIDDEN, 0, HIDDEN * sizeof(float));   /* padding_idx */
            e->name = names[n];
            e->dtype = SFT_F32;
            e->ndim = norm ? 1 : 2;
            e->shape[0] = norm ? cols : rows;
            e->shape[1] = cols;
            e->data = data[n];
            n++;
        }
    }
    join(path, sizeof path, dir, "model.safetensors");
    s = sft_st_save(ctx, path, entries, n, &meta_key, &meta_value, 1);
done:
    for (i = 0; i < n; i++) free(data[i]);
    return s;
}

/* ============================================================================
   Tasks: digit lists in chat turns */

/* "7 2 9 2 4" */
static void digits_text(const int *d, int n, char *out) {
    int i;
    for (i = 0; i < n; i++) { out[2 * i] = (char)('0' + d[i]); out[2 * i + 1] = i + 1 < n ? ' ' : 0; }
    if (n == 0) out[0] = 0;
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

/* the demo's task: "Sort: 7 2 9 2 4" -> "2 2 4 7 9" */
static void sort_task(const int *d, char *prompt, char *answer) {
    int s[TASK_DIGITS];
    char t[2 * TASK_DIGITS];
    memcpy(s, d, sizeof s);
    qsort(s, TASK_DIGITS, sizeof(int), cmp_int);
    digits_text(d, TASK_DIGITS, t);
    sprintf(prompt, "Sort: %s", t);
    digits_text(s, TASK_DIGITS, answer);
}

/* a pretraining example: one of the other tasks on 2..8 random digits */
static void pretrain_task(uint64_t *rng, char *prompt, char *answer) {
    int d[16], r[16], n = 2 + rng_below(rng, PT_MAX_DIGITS - 1), i, lo = 9, hi = 0;
    char t[32];
    for (i = 0; i < n; i++) {
        d[i] = rng_below(rng, 10);
        r[n - 1 - i] = d[i];
        if (d[i] < lo) lo = d[i];
        if (d[i] > hi) hi = d[i];
    }
    digits_text(d, n, t);
    switch (rng_below(rng, 6)) {
    case 0: sprintf(prompt, "Repeat: %s", t); strcpy(answer, t); break;
    case 1: sprintf(prompt, "Reverse: %s", t); digits_text(r, n, answer); break;
    case 2: sprintf(prompt, "Count the digits: %s", t); sprintf(answer, "%d", n); break;
    case 3: sprintf(prompt, "Min: %s", t); sprintf(answer, "%d", lo); break;
    case 4: sprintf(prompt, "Max: %s", t); sprintf(answer, "%d", hi); break;
    default: {
        int v = rng_below(rng, 999);
        sprintf(prompt, "Next: %d", v);
        sprintf(answer, "%d", v + 1);
    }
    }
}

/* {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", ...}]}
   as one line (answer NULL: the user turn only) */
static sft_status message_record(sft_context *ctx, const char *prompt, const char *answer, text_buf *out) {
    sft_json_writer w;
    memset(&w, 0, sizeof w);
    w.ctx = ctx;
    sft_json_write_object_begin(&w);
    sft_json_write_key(&w, "messages");
    sft_json_write_array_begin(&w);
    sft_json_write_object_begin(&w);
    w_key_str(&w, "role", "user");
    w_key_str(&w, "content", prompt);
    sft_json_write_object_end(&w);
    if (answer) {
        sft_json_write_object_begin(&w);
        w_key_str(&w, "role", "assistant");
        w_key_str(&w, "content", answer);
        sft_json_write_object_end(&w);
    }
    sft_json_write_array_end(&w);
    sft_json_write_object_end(&w);
    return finish_json(ctx, &w, NULL, out);
}

/* the conversations of a JSONL file: user prompt and assistant answer of each line */
typedef struct examples { char **prompt, **answer; int n; } examples;   /* stb_ds arrays */

static void examples_free(examples *ex) {
    int i;
    for (i = 0; i < ex->n; i++) { free(ex->prompt[i]); free(ex->answer[i]); }
    arrfree(ex->prompt);
    arrfree(ex->answer);
    memset(ex, 0, sizeof *ex);
}

static char *dup_str(const char *s) {
    char *d = (char *)malloc(strlen(s) + 1);
    if (d) strcpy(d, s);
    return d;
}

static sft_status read_examples(sft_context *ctx, const char *path, examples *ex) {
    char *text = NULL, *line, *end;
    size_t len = 0;
    sft_status s;
    memset(ex, 0, sizeof *ex);
    if ((s = sft_file_read(ctx, path, 0, &text, &len)) != SFT_OK) return s;
    for (line = text; s == SFT_OK && line < text + len; line = end + 1) {
        sft_json *rec = NULL;
        const sft_json *msgs, *user, *asst;
        end = strchr(line, '\n');
        if (!end) end = text + len;
        if (end == line) continue;
        if ((s = sft_json_parse(ctx, line, (size_t)(end - line), path, NULL, &rec)) != SFT_OK) break;
        msgs = sft_json_get(rec, "messages");
        user = sft_json_get(sft_json_at(msgs, 0), "content");
        asst = sft_json_get(sft_json_at(msgs, 1), "content");
        if (!user || !asst || user->type != SFT_JSON_STRING || asst->type != SFT_JSON_STRING) {
            fprintf(stderr, "demo: %s: a line is not a user + assistant conversation\n", path);
            s = SFT_ERR_FORMAT;
        } else {
            arrput(ex->prompt, dup_str(user->string));
            arrput(ex->answer, dup_str(asst->string));
            ex->n++;
            if (!ex->prompt[ex->n - 1] || !ex->answer[ex->n - 1]) s = SFT_ERR_NOMEM;
        }
        sft_json_free(rec);
    }
    sft_free(ctx, text);
    if (s != SFT_OK) examples_free(ex);
    return s;
}

/* ============================================================================
   demo build DIR */

/* DIR/eval.jsonl: N_EVAL distinct prompts; DIR/train.jsonl: N_TRAIN distinct
   prompts, none of them an eval prompt (each 5-digit list is a number < 10^5) */
static sft_status write_task_data(sft_context *ctx, const char *dir) {
    unsigned char *used = (unsigned char *)calloc(100000, 1);
    uint64_t rng = DATA_SEED;
    text_buf train, eval;
    char path[1024], prompt[64], answer[64];
    int split, i, k;
    sft_status s = SFT_OK;
    memset(&train, 0, sizeof train);
    memset(&eval, 0, sizeof eval);
    if (!used) return SFT_ERR_NOMEM;
    for (split = 1; split >= 0 && s == SFT_OK; split--)        /* eval first, then train */
        for (i = 0; i < (split ? N_EVAL : N_TRAIN) && s == SFT_OK; i++) {
            int d[TASK_DIGITS], code;
            do {
                for (code = 0, k = 0; k < TASK_DIGITS; k++) { d[k] = rng_below(&rng, 10); code = 10 * code + d[k]; }
            } while (used[code]);
            used[code] = 1;
            sort_task(d, prompt, answer);
            s = message_record(ctx, prompt, answer, split ? &eval : &train);
        }
    if (s == SFT_OK) {
        sft_buf b;
        b.data = train.p; b.len = train.len;
        join(path, sizeof path, dir, "train.jsonl");
        s = sft_file_write_atomic(ctx, path, &b, 1);
        b.data = eval.p; b.len = eval.len;
        join(path, sizeof path, dir, "eval.jsonl");
        if (s == SFT_OK) s = sft_file_write_atomic(ctx, path, &b, 1);
    }
    free(train.p);
    free(eval.p);
    free(used);
    return s;
}

/* read both files back: no eval prompt may be a training prompt */
static sft_status check_disjoint(sft_context *ctx, const char *dir, int *n_train, int *n_eval) {
    examples tr, ev;
    char path[1024];
    int i, j, overlap = 0;
    sft_status s;
    join(path, sizeof path, dir, "train.jsonl");
    if ((s = read_examples(ctx, path, &tr)) != SFT_OK) return s;
    join(path, sizeof path, dir, "eval.jsonl");
    if ((s = read_examples(ctx, path, &ev)) != SFT_OK) { examples_free(&tr); return s; }
    for (i = 0; i < ev.n; i++)
        for (j = 0; j < tr.n; j++) overlap += strcmp(ev.prompt[i], tr.prompt[j]) == 0;
    *n_train = tr.n;
    *n_eval = ev.n;
    examples_free(&tr);
    examples_free(&ev);
    if (overlap) { fprintf(stderr, "demo: %d eval prompts are also training prompts\n", overlap); return SFT_ERR_FORMAT; }
    return SFT_OK;
}

/* the tokenizer as sft.h reads it: bytes and special tokens round-trip, and the
   dataset renders a conversation with the chat template exactly as ChatML */
static sft_status check_tokenizer(sft_context *ctx, const char *dir) {
    static const char text[] = "<|im_start|>user\nSort: 7 2 9 2 4<|im_end|>\n caf\xc3\xa9 \t~\"\\ <|endoftext|>";
    static const char record[] = "{\"messages\": [{\"role\": \"user\", \"content\": \"Sort: 3 1 2 1 0\"}, "
                                 "{\"role\": \"assistant\", \"content\": \"0 1 1 2 3\"}]}";
    static const char rendered[] = "<|im_start|>user\nSort: 3 1 2 1 0<|im_end|>\n<|im_start|>assistant\n0 1 1 2 3<|im_end|>\n";
    static const char prompt_only[] = "{\"messages\": [{\"role\": \"user\", \"content\": \"Sort: 3 1 2 1 0\"}]}";
    static const char gen_prompt[] = "<|im_start|>user\nSort: 3 1 2 1 0<|im_end|>\n<|im_start|>assistant\n";
    const char *records[1];
    sft_tokenizer *tok = NULL;
    sft_dataset *ds = NULL;
    sft_data_desc dd;
    sft_tokenizer_info info;
    int32_t *ids = NULL;
    size_t n = 0, len = 0, i;
    char *back = NULL, *r1 = NULL, *r2 = NULL;
    const int32_t *row_ids, *row_labels;
    int64_t row_n, trained = 0;
    int ok;
    sft_status s;
    if ((s = sft_tokenizer_load(ctx, dir, &tok)) != SFT_OK) return s;
    info = sft_tokenizer_get_info(tok);
    s = sft_tokenizer_encode(tok, text, strlen(text), 1, &ids, &n);
    if (s == SFT_OK) s = sft_tokenizer_decode(tok, ids, n, 0, &back, &len);
    ok = s == SFT_OK && sft_tokenizer_vocab_size(tok) == VOCAB && info.eos_id == ID_IM_END && info.pad_id == ID_EOT &&
         info.chat_template && n == strlen(text) - (12 + 10 + 13) + 3 && ids[0] == ID_IM_START && ids[1] == 'u' &&
         ids[n - 1] == ID_EOT && len == strlen(text) && memcmp(back, text, len) == 0;
    /* the training rendering and its assistant-only labels */
    memset(&dd, 0, sizeof dd);
    dd.assistant_only_loss = 1;
    records[0] = record;
    if (s == SFT_OK) s = sft_dataset_from_records(ctx, tok, records, 1, &dd, &ds);
    if (s == SFT_OK) s = sft_dataset_render(ds, record, 0, &r1);
    if (s == SFT_OK) s = sft_dataset_render(ds, prompt_only, 1, &r2);
    if (s == SFT_OK) s = sft_dataset_row(ds, 0, 0, &row_ids, &row_labels, &row_n, NULL, NULL);
    if (s == SFT_OK) {
        for (i = 0; i < (size_t)row_n; i++) trained += row_labels[i] != -100;
        /* trained: "\n0 1 1 2 3<|im_end|>\n", 12 tokens */
        ok = ok && strcmp(r1, rendered) == 0 && strcmp(r2, gen_prompt) == 0 && trained == 12 &&
             row_labels[row_n - 2] == ID_IM_END;
    }
    if (s == SFT_OK && !ok) {
        fprintf(stderr, "demo: the tokenizer in %s does not round-trip or render as expected\n", dir);
        s = SFT_ERR_FORMAT;
    }
    sft_free(ctx, ids);
    sft_free(ctx, back);
    sft_free(ctx, r1);
    sft_free(ctx, r2);
    sft_dataset_destroy(ds);
    sft_tokenizer_destroy(tok);
    return s;
}

static int cmd_build(const char *dir) {
    sft_context *ctx = NULL;
    sft_model *model = NULL;
    char base[1024];
    int n_train = 0, n_eval = 0, rc = 1;
    sft_status s;
    join(base, sizeof base, dir, "base");
    if (make_dir(dir) != SFT_OK || make_dir(base) != SFT_OK) return 1;
    if ((s = new_context(&ctx)) != SFT_OK) return fail(s, "context");
    if ((s = write_tokenizer(ctx, base)) != SFT_OK) { rc = fail(s, "tokenizer files"); goto done; }
    if ((s = write_config(ctx, base)) != SFT_OK) { rc = fail(s, "config.json"); goto done; }
    if ((s = write_weights(ctx, base)) != SFT_OK) { rc = fail(s, "model.safetensors"); goto done; }
    if ((s = check_tokenizer(ctx, base)) != SFT_OK) { rc = fail(s, "tokenizer check"); goto done; }
    if ((s = sft_model_load(ctx, base, NULL, &model)) != SFT_OK) { rc = fail(s, "model check"); goto done; }
    if ((s = write_task_data(ctx, dir)) != SFT_OK) { rc = fail(s, "task data"); goto done; }
    if ((s = check_disjoint(ctx, dir, &n_train, &n_eval)) != SFT_OK) { rc = fail(s, "task data check"); goto done; }
    printf("build: %s: Llama hidden %d, %d layers, %d heads, intermediate %d, vocab %d (byte-level BPE + ChatML)\n", base, HIDDEN,
           LAYERS, HEADS, INTERMEDIATE, VOCAB);
    printf("build: %s/train.jsonl %d conversations, %s/eval.jsonl %d held-out prompts (disjoint)\n", dir, n_train, dir, n_eval);
    rc = 0;
done:
    sft_model_destroy(model);
    sft_context_destroy(ctx);
    return rc;
}

/* ============================================================================
   demo pretrain DIR */

static void print_log(const sft_log_entry *e, void *user) {
    const char *phase = (const char *)user;
    if (!e->is_eval)
        printf("%s: step %4lld  loss %.4f  lr %.2e\n", phase, (long long)e->global_step, e->loss, e->learning_rate);
}

/* the model's dense weights, named as transformers names them, into path */
static sft_status save_weights(sft_context *ctx, sft_model *m, const char *path) {
    char names[N_WEIGHTS][SFT_WEIGHT_NAME_MAX];
    sft_st_entry entries[N_WEIGHTS];
    const char *meta_key = "format", *meta_value = "pt";
    sft_tensor *w;
    int i, n = 0;
    for (i = 0; n < N_WEIGHTS && sft_model_weight_at(m, i, names[n], &w); i++)
        if (w) { entries[n] = sft_st_entry_from_tensor(names[n], w); n++; }
    if (n != N_WEIGHTS) { fprintf(stderr, "demo: the model has %d weights, expected %d\n", n, N_WEIGHTS); return SFT_ERR_STATE; }
    return sft_st_save(ctx, path, entries, n, &meta_key, &meta_value, 1);
}

static int cmd_pretrain(const char *dir) {
    sft_context *ctx = NULL;
    sft_tokenizer *tok = NULL;
    sft_model *model = NULL;
    sft_dataset *data = NULL;
    sft_data_desc dd;
    sft_train_config cfg;
    sft_train_output out;
    char base[1024], path[1024], prompt[64], answer[64];
    char **records = NULL;
    text_buf rec;
    uint64_t rng = PT_SEED;
    int i, rc = 1;
    sft_status s;
    memset(&rec, 0, sizeof rec);
    join(base, sizeof base, dir, "base");
    if ((s = new_context(&ctx)) != SFT_OK) return fail(s, "context");
    if ((s = sft_tokenizer_load(ctx, base, &tok)) != SFT_OK) { rc = fail(s, base); goto done; }
    if ((s = sft_model_load(ctx, base, NULL, &model)) != SFT_OK) { rc = fail(s, base); goto done; }   /* f32, dense */

    /* the examples, in memory */
    records = (char **)calloc(PT_EXAMPLES, sizeof(char *));
    for (i = 0; records && i < PT_EXAMPLES; i++) {
        rec.len = 0;
        pretrain_task(&rng, prompt, answer);
        if ((s = message_record(ctx, prompt, answer, &rec)) != SFT_OK) { rc = fail(s, "records"); goto done; }
        if (!(records[i] = dup_str(rec.p))) break;
    }
    if (!records || i < PT_EXAMPLES) { rc = fail(SFT_ERR_NOMEM, "records"); goto done; }
    memset(&dd, 0, sizeof dd);
    dd.assistant_only_loss = 1;
    if ((s = sft_dataset_from_records(ctx, tok, (const char *const *)records, PT_EXAMPLES, &dd, &data)) != SFT_OK) {
        rc = fail(s, "pretraining data");
        goto done;
    }

    /* one epoch over them, every weight trained */
    memset(&cfg, 0, sizeof cfg);
    cfg.full_finetuning = 1;
    cfg.num_train_epochs = 1;
    cfg.per_device_train_batch_size = PT_BATCH;
    cfg.learning_rate = PT_LR;
    cfg.lr_scheduler_type = SFT_SCHEDULE_COSINE;
    cfg.warmup_ratio = PT_WARMUP;
    cfg.logging_steps = PT_LOG;
    cfg.seed = PT_SEED;
    cfg.on_log = print_log;
    cfg.user = (void *)"pretrain";
    printf("pretrain: %d examples (repeat, reverse, count, min, max, next), batch %d, lr %g cosine, every weight\n", PT_EXAMPLES,
           PT_BATCH, PT_LR);
    if ((s = sft_train(model, data, &cfg, &out)) != SFT_OK) { rc = fail(s, "pretraining"); goto done; }
    join(path, sizeof path, base, "model.safetensors");
    if ((s = save_weights(ctx, model, path)) != SFT_OK) { rc = fail(s, path); goto done; }
    printf("pretrain: %lld steps, train_loss %.4f, %.1f s; weights written to %s\n", (long long)out.global_step, out.train_loss,
           out.train_runtime, path);
    rc = 0;
done:
    for (i = 0; records && i < PT_EXAMPLES; i++) free(records[i]);
    free(records);
    free(rec.p);
    sft_dataset_destroy(data);
    sft_model_destroy(model);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
    return rc;
}

/* ============================================================================
   demo eval DIR [ADAPTER_DIR] */

/* the base as the fine-tune loads it: decoder linears quantized to NF4 */
static sft_status load_nf4(sft_context *ctx, const char *base, sft_model **model) {
    sft_load_desc ld;
    memset(&ld, 0, sizeof ld);
    ld.quant = SFT_QUANT_NF4;   /* --load_in_4bit --bnb_4bit_quant_type nf4; blocksize 64 */
    ld.blocksize = 64;
    ld.double_quant = 0;        /* TRL's default: no --use_bnb_nested_quant */
    return sft_model_load(ctx, base, &ld, model);
}

static int cmd_eval(const char *dir, const char *adapter) {
    sft_context *ctx = NULL;
    sft_tokenizer *tok = NULL;
    sft_model *model = NULL;
    sft_dataset *ds = NULL;
    sft_data_desc dd;
    sft_generate_desc gd;
    examples ex;
    text_buf rec;
    char base[1024], path[1024];
    int i, correct = 0, rc = 1;
    sft_status s;
    memset(&ex, 0, sizeof ex);
    memset(&rec, 0, sizeof rec);
    join(base, sizeof base, dir, "base");
    join(path, sizeof path, dir, "eval.jsonl");
    if ((s = new_context(&ctx)) != SFT_OK) return fail(s, "context");
    if ((s = sft_tokenizer_load(ctx, base, &tok)) != SFT_OK) { rc = fail(s, base); goto done; }
    if ((s = load_nf4(ctx, base, &model)) != SFT_OK) { rc = fail(s, base); goto done; }
    if (adapter && (s = sft_model_load_adapter(model, adapter, "default")) != SFT_OK) { rc = fail(s, adapter); goto done; }
    if ((s = read_examples(ctx, path, &ex)) != SFT_OK) { rc = fail(s, path); goto done; }
    memset(&dd, 0, sizeof dd);          /* the eval file as a dataset: its chat template renders the prompts */
    if ((s = sft_dataset_load(ctx, tok, path, &dd, &ds)) != SFT_OK) { rc = fail(s, path); goto done; }

    printf("eval: %d held-out prompts, greedy, NF4 base %s%s\n", ex.n, adapter ? "+ adapter " : "alone", adapter ? adapter : "");
    memset(&gd, 0, sizeof gd);
    gd.max_new_tokens = EVAL_MAX_NEW;   /* greedy; stops at eos (<|im_end|>) */
    for (i = 0; i < ex.n; i++) {
        char *text = NULL, *answer = NULL, *cut, *a, *z;
        int32_t *ids = NULL, *gen = NULL;
        size_t n_ids = 0, len = 0;
        int n_gen = 0;
        rec.len = 0;
        /* the user turn + "<|im_start|>assistant\n", as apply_chat_template(add_generation_prompt=True) */
        s = message_record(ctx, ex.prompt[i], NULL, &rec);
        if (s == SFT_OK) s = sft_dataset_render(ds, rec.p, 1, &text);
        if (s == SFT_OK) s = sft_tokenizer_encode(tok, text, strlen(text), 0, &ids, &n_ids);
        if (s == SFT_OK) s = sft_model_generate(model, ids, (int)n_ids, &gd, &gen, &n_gen);
        if (s == SFT_OK) s = sft_tokenizer_decode(tok, gen, (size_t)n_gen, 0, &answer, &len);
        if (s == SFT_OK) {
            /* the answer: up to <|im_end|>, stripped */
            if ((cut = strstr(answer, SPECIAL[2])) != NULL) *cut = 0;
            for (a = answer; *a == ' ' || *a == '\n' || *a == '\t' || *a == '\r'; a++) {}
            for (z = a + strlen(a); z > a && (z[-1] == ' ' || z[-1] == '\n' || z[-1] == '\t' || z[-1] == '\r'); z--) {}
            *z = 0;
            correct += strcmp(a, ex.answer[i]) == 0;
            if (i < 3) printf("eval: %-18s -> %-12s (want %s)\n", ex.prompt[i], a, ex.answer[i]);
        }
        sft_free(ctx, text);
        sft_free(ctx, ids);
        sft_free(ctx, gen);
        sft_free(ctx, answer);
        if (s != SFT_OK) { rc = fail(s, "generation"); goto done; }
    }
    printf("exact_match=%.3f (n=%d)\n", ex.n ? (double)correct / ex.n : 0.0, ex.n);
    {   /* for demo report */
        char line[64];
        sft_buf b;
        join(path, sizeof path, dir, adapter ? "eval-after.txt" : "eval-before.txt");
        snprintf(line, sizeof line, "%.4f %d\n", ex.n ? (double)correct / ex.n : 0.0, ex.n);
        b.data = line; b.len = strlen(line);
        if ((s = sft_file_write_atomic(ctx, path, &b, 1)) != SFT_OK) { rc = fail(s, path); goto done; }
    }
    rc = 0;
done:
    examples_free(&ex);
    free(rec.p);
    sft_dataset_destroy(ds);
    sft_model_destroy(model);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
    return rc;
}

/* ============================================================================
   demo report DIR */

/* the two evaluations' results, as the demo's last line */
static int cmd_report(const char *dir) {
    char path[1024];
    double acc[2];
    int n[2], k;
    for (k = 0; k < 2; k++) {
        FILE *f;
        join(path, sizeof path, dir, k ? "eval-after.txt" : "eval-before.txt");
        f = fopen(path, "r");
        if (!f || fscanf(f, "%lf %d", &acc[k], &n[k]) != 2) {
            if (f) fclose(f);
            fprintf(stderr, "demo report: %s is missing or unreadable (run demo eval first)\n", path);
            return 1;
        }
        fclose(f);
    }
    printf("demo: exact_match before=%.2f after=%.2f (n=%d)\n", acc[0], acc[1], n[1]);
    return 0;
}

/* ============================================================================
   main */

int main(int argc, char **argv) {
    const char *cmd = argc > 1 ? argv[1] : "";
    if (strcmp(cmd, "build") == 0 && argc == 3) return cmd_build(argv[2]);
    if (strcmp(cmd, "pretrain") == 0 && argc == 3) return cmd_pretrain(argv[2]);
    if (strcmp(cmd, "eval") == 0 && (argc == 3 || argc == 4)) return cmd_eval(argv[2], argc == 4 ? argv[3] : NULL);
    if (strcmp(cmd, "report") == 0 && argc == 3) return cmd_report(argv[2]);
    fprintf(stderr, "usage: demo build DIR | pretrain DIR | eval DIR [ADAPTER_DIR] | report DIR\n");
    return 2;
}
