/* bench_e2e.c - `make bench-e2e`: whole QLoRA training steps, sft.h against the
   Python stack (TRL's SFTTrainer, and a plain torch loop, with PEFT and
   bitsandbytes), measured in the same run on the same machine.

   cc -std=c99 -O2 tools/bench_e2e.c -o build/bench_e2e -lm -lpthread
   ./build/bench_e2e [--model DIR] [--steps N] [--threads T] [--only sft|trl|torch]
                     [--cases LIST] [--repeats R] [--memory] [--profile] [--python PATH]

     --model DIR   a Llama-family model folder to train (default: a SmolLM2-135M-
                   shaped model with random weights, written once to
                   build/bench-e2e/model: 30 layers, hidden 576, 9/3 heads,
                   intermediate 1536, vocabulary 49152, tied embeddings; a
                   byte-level tokenizer of 259 tokens with a ChatML template)
     --steps N     optimizer steps per run (default 4); the first is a warm-up and
                   is not counted
     --threads T   threads for both stacks (default 2)
     --cases LIST  comma-separated among 512, 512-gc, 2048, 2048-gc, each with
                   :f32 or :bf16 (default: 512:f32,512-gc:f32,2048:f32,2048-gc:f32,
                   and the bf16 ones where the CPU has AVX512-BF16)
     --repeats R   runs of each case per stack (default 1); the stacks alternate
     --only S      measure one stack
     --memory      instead: the longest max_length that trains at batch 1 with
                   gradient checkpointing within 20 GB, for sft.h and the torch
                   loop (see "memory" below)
     --profile     print sft.h's per-operator profile of each run (stderr)
     --python P    the Python with the reference stack (default tools/.venv/bin/python;
                   without it only sft.h is measured)

   The job, on both sides: the model's decoder linears quantized to NF4 on load
   (blocksize 64, no double quantization), LoRA r 16, alpha 32, dropout 0.05 on
   every linear of the decoder, AdamW lr 2e-4 (linear schedule, clipping at
   1.0), packed rows (best-fit decreasing, padding-free) of max_length tokens,
   batch 4 at max_length 512 and batch 1 at 2048 (the same tokens per step),
   gradient checkpointing off or on, token metrics on (TRL always computes
   mean_token_accuracy and entropy). The data: synthetic chat conversations
   (build/bench-e2e/chat-<max_length>.jsonl), each longer than max_length in
   tokens, so every packed row is one conversation cut to max_length.

   Each run is a child process: sft.h's is this program forked (it trains
   through the library as `build/sft train` does and reports each step's wall
   time), TRL's and torch's are tools/bench_e2e_trl.py. Peak memory is the
   child's peak resident set size from wait4(), measured from outside.

   One JSON object per line on stdout:
     {"bench":"peak",...}       the f32 FMA peak (and bf16 dot-product peak) now
     {"bench":"e2e","impl":"sft"|"trl"|"torch","case":...,"tokens_per_s":..,
      "s_per_step":..,"peak_rss_mb":..,"gflops":..,"peak_gflops":..}
     {"bench":"e2e_ratio","case":...,"speed_vs_trl":..,"rss_vs_trl":..,...}
   gflops counts the work a step must do, whatever the implementation: the
   forward and input-gradient GEMMs of the frozen base (2 + 2 flops per weight
   and token), the LoRA GEMMs (forward, and the gradients of B, A and the
   input: 6 r (in + out) per token and layer), the output projection forward
   and input gradient, and causal attention per row (forward QK^T and PV, and
   the four backward products); not the recomputation of checkpointing.

   memory (--memory): one step at batch 1 with gradient checkpointing at
   max_length 1024, 2048, 4096 and 8192 for each stack; peak RSS is linear in
   the length for both (attention keeps no T x T matrix: sft.h's flash-style
   kernel, torch's SDPA), so the length that fits in 20 GB is extrapolated
   from the two longest measured points, and printed with them. */
#define _DEFAULT_SOURCE              /* wait4() */
#define SFT_IMPLEMENTATION
#include "../sft.h"

#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_peak.h"

/* ============================================================================
   Settings */

#define HIDDEN        576
#define LAYERS        30
#define HEADS         9
#define KV_HEADS      3
#define INTERMEDIATE  1536
#define VOCAB_MODEL   49152          /* the model's vocabulary (SmolLM2's)                   */
#define VOCAB_TOK     259            /* the tokenizer's: 256 bytes + 3 special tokens         */
#define MAX_POSITIONS 16384
#define ID_EOT        256
#define ID_IM_START   257
#define ID_IM_END     258
#define LORA_R        16
#define LORA_ALPHA    32
#define LORA_DROPOUT  0.05f
#define LR            2e-4
#define WORK_DIR      "build/bench-e2e"
#define MEMORY_LIMIT  20e9           /* bytes, for --memory                                  */

typedef struct bench_case {
    char name[48];
    int  max_length, batch, gc, bf16;
} bench_case;

typedef struct bench_opts {
    const char *model, *only, *cases, *python;
    int steps, threads, repeats, memory, profile;
} bench_opts;

/* what one child run measured */
typedef struct run_result {
    int    ok, steps;
    double s[64];                  /* wall time of each step                               */
    long   tokens[64];             /* tokens of each step                                  */
    double peak_rss_mb, plan_mb;       /* plan_mb: sft.h's memory plan (sft runs) */
    char   note[160];
} run_result;

/* ============================================================================
   Small helpers */

static void die(const char *what) {
    fprintf(stderr, "bench_e2e: %s: %s\n", what, sft_last_error()[0] ? sft_last_error() : strerror(errno));
    exit(1);
}

static void check(sft_status s, const char *what) {
    if (s != SFT_OK) die(what);
}

static double now_s(void) { return peak_now_s(); }

static void make_dir(const char *path) {
    if (mkdir(path, 0755) != 0 && errno != EEXIST) die(path);
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static FILE *open_or_die(const char *path, const char *mode) {
    FILE *f = fopen(path, mode);
    if (!f) die(path);
    return f;
}

/* ============================================================================
   The default model: SmolLM2-135M's shape, random weights as transformers
   initialises them (normal(0, 0.02) linears and embedding, norms 1), a
   byte-level tokenizer (each byte one token) and the ChatML template */

static const char CHAT_TEMPLATE[] =
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/* the character GPT-2's byte-level alphabet uses for byte b, as UTF-8 */
static void byte_char(int b, char out[3]) {
    int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    int cp = b, k, n = 0;
    if (!printable) {
        for (k = 0; k < b; k++) n += !((k >= '!' && k <= '~') || (k >= 0xA1 && k <= 0xAC) || (k >= 0xAE && k <= 0xFF));
        cp = 256 + n;
    }
    if (cp < 0x80) { out[0] = (char)cp; out[1] = 0; }
    else { out[0] = (char)(0xC0 | (cp >> 6)); out[1] = (char)(0x80 | (cp & 0x3F)); out[2] = 0; }
}

static void write_tokenizer(const char *dir) {
    static const char *const special[3] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
    char path[512], ch[3];
    FILE *f;
    int b, i;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    f = open_or_die(path, "w");
    fprintf(f, "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":[");
    for (i = 0; i < 3; i++)
        fprintf(f, "%s{\"id\":%d,\"content\":\"%s\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,"
                   "\"normalized\":false,\"special\":true}", i ? "," : "", ID_EOT + i, special[i]);
    fprintf(f, "],\"normalizer\":null,");
    for (i = 0; i < 3; i++)
        fprintf(f, "\"%s\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true},",
                i == 0 ? "pre_tokenizer" : i == 1 ? "post_processor" : "decoder");
    fprintf(f, "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"continuing_subword_prefix\":\"\","
               "\"end_of_word_suffix\":\"\",\"fuse_unk\":false,\"byte_fallback\":false,\"ignore_merges\":false,\"vocab\":{");
    for (b = 0; b < 256; b++) {
        byte_char(b, ch);
        fprintf(f, "%s\"%s%s\":%d", b ? "," : "", ch[0] == '"' || ch[0] == '\\' ? "\\" : "", ch, b);
    }
    fprintf(f, "},\"merges\":[]}}\n");
    fclose(f);

    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    f = open_or_die(path, "w");
    fprintf(f, "{\"add_prefix_space\":false,\"added_tokens_decoder\":{");
    for (i = 0; i < 3; i++)
        fprintf(f, "%s\"%d\":{\"content\":\"%s\",\"lstrip\":false,\"normalized\":false,\"rstrip\":false,"
                   "\"single_word\":false,\"special\":true}", i ? "," : "", ID_EOT + i, special[i]);
    fprintf(f, "},\"bos_token\":null,\"chat_template\":\"");
    for (i = 0; CHAT_TEMPLATE[i]; i++) {
        if (CHAT_TEMPLATE[i] == '"' || CHAT_TEMPLATE[i] == '\\') fputc('\\', f);
        fputc(CHAT_TEMPLATE[i], f);
    }
    fprintf(f, "\",\"clean_up_tokenization_spaces\":false,\"eos_token\":\"<|im_end|>\",\"errors\":\"replace\","
               "\"model_max_length\":%d,\"pad_token\":\"<|endoftext|>\",\"tokenizer_class\":\"PreTrainedTokenizerFast\","
               "\"unk_token\":null}\n", MAX_POSITIONS);
    fclose(f);
}

static void write_config(const char *dir) {
    char path[512];
    FILE *f;
    snprintf(path, sizeof path, "%s/config.json", dir);
    f = open_or_die(path, "w");
    fprintf(f, "{\"architectures\":[\"LlamaForCausalLM\"],\"attention_bias\":false,\"attention_dropout\":0.0,"
               "\"bos_token_id\":%d,\"eos_token_id\":%d,\"head_dim\":%d,\"hidden_act\":\"silu\",\"hidden_size\":%d,"
               "\"initializer_range\":0.02,\"intermediate_size\":%d,\"max_position_embeddings\":%d,\"mlp_bias\":false,"
               "\"model_type\":\"llama\",\"num_attention_heads\":%d,\"num_hidden_layers\":%d,\"num_key_value_heads\":%d,"
               "\"pad_token_id\":%d,\"pretraining_tp\":1,\"rms_norm_eps\":1e-05,\"rope_scaling\":null,"
               "\"rope_theta\":100000.0,\"tie_word_embeddings\":true,\"torch_dtype\":\"float32\",\"use_cache\":true,"
               "\"vocab_size\":%d}\n",
            ID_EOT, ID_IM_END, HIDDEN / HEADS, HIDDEN, INTERMEDIATE, MAX_POSITIONS, HEADS, LAYERS, KV_HEADS, ID_EOT,
            VOCAB_MODEL);
    fclose(f);
}

/* N(0, std) by Box-Muller on Philox uniforms */
static void fill_normal(float *x, int64_t n, uint64_t key, double std) {
    int64_t i;
    for (i = 0; i < n; i++) {
        double u1 = 1.0 - (double)sft_rng_uniform(key, 2 * (uint64_t)i), u2 = sft_rng_uniform(key, 2 * (uint64_t)i + 1);
        x[i] = (float)(std * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
    }
}

static void write_weights(sft_context *ctx, const char *dir) {
    static const char *const proj[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                        "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
    static const int64_t kv = HIDDEN / HEADS * KV_HEADS;
    static const int64_t rows[7] = {HIDDEN, kv, kv, HIDDEN, INTERMEDIATE, INTERMEDIATE, HIDDEN};
    static const int64_t cols[7] = {HIDDEN, HIDDEN, HIDDEN, HIDDEN, HIDDEN, HIDDEN, INTERMEDIATE};
    enum { N = 2 + 9 * LAYERS };
    static char names[N][SFT_WEIGHT_NAME_MAX];
    sft_st_entry e[N];
    float *data[N];
    const char *mk = "format", *mv = "pt";
    char path[512];
    int n = 0, l, k;
    int64_t j;
    memset(e, 0, sizeof e);
    for (l = -1; l <= LAYERS; l++)
        for (k = 0; k < (l < 0 || l == LAYERS ? 1 : 9); k++) {
            int64_t r = 1, c = HIDDEN;
            int norm = 1;
            if (l < 0) { snprintf(names[n], SFT_WEIGHT_NAME_MAX, "model.embed_tokens.weight"); r = VOCAB_MODEL; norm = 0; }
            else if (l == LAYERS) snprintf(names[n], SFT_WEIGHT_NAME_MAX, "model.norm.weight");
            else if (k >= 7)
                snprintf(names[n], SFT_WEIGHT_NAME_MAX, "model.layers.%d.%s.weight", l,
                         k == 7 ? "input_layernorm" : "post_attention_layernorm");
            else {
                snprintf(names[n], SFT_WEIGHT_NAME_MAX, "model.layers.%d.%s.weight", l, proj[k]);
                r = rows[k]; c = cols[k]; norm = 0;
            }
            data[n] = (float *)malloc((size_t)(r * c) * sizeof(float));
            if (!data[n]) die("out of memory");
            if (norm) for (j = 0; j < c; j++) data[n][j] = 1.0f;
            else fill_normal(data[n], r * c, sft_rng_key(1234, 0x696e6974ull, (uint64_t)n, 0), 0.02);
            e[n].name = names[n]; e[n].dtype = SFT_F32; e[n].ndim = norm ? 1 : 2;
            e[n].shape[0] = norm ? c : r; e[n].shape[1] = c; e[n].data = data[n];
            n++;
        }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    check(sft_st_save(ctx, path, e, n, &mk, &mv, 1), path);
    for (k = 0; k < n; k++) free(data[k]);
}

static void write_default_model(const char *dir) {
    char path[512];
    sft_context *ctx;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (file_exists(path)) return;
    fprintf(stderr, "bench_e2e: writing the random SmolLM2-135M-shaped model to %s\n", dir);
    make_dir(dir);
    check(sft_context_create(NULL, &ctx), "context");
    write_config(dir);
    write_tokenizer(dir);
    write_weights(ctx, dir);
    sft_context_destroy(ctx);
}

/* ============================================================================
   The data: conversations of random English words, each at least 6 x
   max_length characters (so at least max_length tokens even for a tokenizer of
   5 characters a token): every packed row is one conversation cut to max_length */

static const char *const WORDS[] = {
    "the", "of", "and", "to", "in", "is", "was", "for", "on", "that", "with", "as", "by", "at", "from", "his", "her",
    "it", "an", "were", "are", "which", "this", "be", "or", "has", "had", "not", "but", "have", "one", "their", "its",
    "new", "after", "who", "they", "been", "first", "also", "two", "more", "time", "year", "into", "other", "all",
    "when", "over", "three", "most", "only", "some", "there", "would", "up", "about", "city", "may", "out", "than",
    "these", "can", "school", "between", "world", "so", "national", "what", "state", "during", "under", "later"};

static void put_words(FILE *f, uint64_t *rng, long chars) {
    long n = 0;
    while (n < chars) {
        const char *w;
        *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
        w = WORDS[(*rng >> 33) % (sizeof WORDS / sizeof WORDS[0])];
        fprintf(f, "%s%s", n ? " " : "", w);
        n += (long)strlen(w) + 1;
    }
}

static void write_data(const char *path, int max_length, int records) {
    uint64_t rng = (uint64_t)max_length * 7919u + 1;
    FILE *f;
    int i;
    if (file_exists(path)) return;
    f = open_or_die(path, "w");
    for (i = 0; i < records; i++) {
        fprintf(f, "{\"messages\": [{\"role\": \"user\", \"content\": \"");
        put_words(f, &rng, max_length);
        fprintf(f, "?\"}, {\"role\": \"assistant\", \"content\": \"");
        put_words(f, &rng, 5L * max_length);
        fprintf(f, ".\"}]}\n");
    }
    fclose(f);
}

/* ============================================================================
   The work of a step, in flops (see the top of the file) */

static double step_flops(const sft_model_config *c, int max_length, int rows) {
    double H = (double)c->hidden_size, I = (double)c->intermediate_size, V = (double)c->vocab_size;
    double hd = (double)c->head_dim, kv = hd * c->num_key_value_heads, q = hd * c->num_attention_heads;
    double T = (double)max_length * rows, L = c->num_hidden_layers;
    double base = H * q + 2 * H * kv + q * H + 3 * H * I;                       /* weights per layer */
    double lora = (H + q) + 2 * (H + kv) + (q + H) + 2 * (H + I) + (I + H);     /* in + out per linear */
    double attn = (double)rows * c->num_attention_heads * hd * (double)max_length * (max_length + 1) / 2.0;
    return L * (4.0 * base * T + 6.0 * LORA_R * lora * T + 12.0 * attn) + 4.0 * V * H * T;
}

/* ============================================================================
   sft.h's run: this program forked, training through the library */

static int child_log_fd = -1;
static long child_tokens_seen;

static void child_on_log(const sft_log_entry *e, void *user) {
    (void)user;
    if (!e->is_eval) child_tokens_seen = (long)e->num_tokens;
}

static void child_say(const char *fmt, ...) {
    char buf[512];
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0 && write(child_log_fd, buf, (size_t)(n < (int)sizeof buf ? n : (int)sizeof buf - 1)) < 0) _exit(3);
}

static void child_fail(const char *what) {
    child_say("{\"error\": \"%s: %s\"}\n", what, sft_last_error());
    _exit(2);
}

static void sft_child(const bench_opts *o, const bench_case *c, const char *model_dir, const char *data_path) {
    sft_context_desc cd;
    sft_context *ctx;
    sft_tokenizer *tok;
    sft_dataset *data;
    sft_model *model;
    sft_load_desc ld;
    sft_lora_desc lora;
    sft_data_desc dd;
    sft_train_config tc;
    sft_trainer *tr;
    double measured = 0.0;
    int step;
    memset(&cd, 0, sizeof cd);
    cd.threads = o->threads;
    if (sft_context_create(&cd, &ctx) != SFT_OK) child_fail("context");
    if (sft_tokenizer_load(ctx, model_dir, &tok) != SFT_OK) child_fail("tokenizer");
    memset(&dd, 0, sizeof dd);
    dd.max_length = c->max_length; dd.packing = 1;
    if (sft_dataset_load(ctx, tok, data_path, &dd, &data) != SFT_OK) child_fail("dataset");
    memset(&ld, 0, sizeof ld);
    ld.quant = SFT_QUANT_NF4;
    ld.compute_dtype = c->bf16 ? SFT_BF16 : SFT_F32;
    if (sft_model_load(ctx, model_dir, &ld, &model) != SFT_OK) child_fail("model");
    memset(&lora, 0, sizeof lora);
    lora.r = LORA_R; lora.alpha = LORA_ALPHA; lora.dropout = LORA_DROPOUT;
    if (sft_model_add_lora(model, "default", &lora, "all-linear") != SFT_OK) child_fail("lora");
    {   /* what `sft memory` says for these settings, to set beside the measured peak */
        sft_model_run run;
        sft_memory_plan plan;
        memset(&run, 0, sizeof run);
        run.training = 1; run.gradient_checkpointing = c->gc; run.token_metrics = 1;
        if (sft_model_memory_plan(model, c->batch, c->max_length, &run, &plan) != SFT_OK) child_fail("memory plan");
        child_say("{\"plan_mb\": %.1f}\n", (double)plan.total / 1048576.0);
    }
    memset(&tc, 0, sizeof tc);
    tc.max_steps = o->steps; tc.per_device_train_batch_size = c->batch; tc.learning_rate = LR;
    tc.logging_steps = 1; tc.token_metrics = 1; tc.gradient_checkpointing = c->gc; tc.on_log = child_on_log;
    if (sft_trainer_create(model, data, &tc, &tr) != SFT_OK) child_fail("trainer");
    for (step = 1; step <= o->steps; step++) {
        sft_step_info info;
        long before = child_tokens_seen;
        double t0 = now_s(), dt;
        if (sft_trainer_step(tr, &info) != SFT_OK) child_fail("step");
        dt = now_s() - t0;
        if (step > 1) measured += dt;
        if (step == 1 && o->profile) sft_profile_enable(ctx, 1);     /* the steps after the warm-up */
        child_say("{\"step\": %d, \"s\": %.4f, \"num_tokens\": %ld, \"loss\": %.6g}\n", step, dt, child_tokens_seen - before,
                  info.loss);
    }
    if (o->profile) {
        static char table[8192];
        sft_profile_report(ctx, o->steps - 1, measured, table, sizeof table);
        fprintf(stderr, "sft.h profile, %s, per step:\n%s", c->name, table);
    }
    sft_trainer_destroy(tr);
    sft_model_destroy(model);
    sft_dataset_destroy(data);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
    _exit(0);
}

/* ============================================================================
   Running a child and reading what it reports */

/* parse "key": number from a JSON line (the children's lines are flat) */
static int json_number(const char *line, const char *key, double *out) {
    char pat[64];
    const char *p;
    snprintf(pat, sizeof pat, "\"%s\":", key);
    if (!(p = strstr(line, pat))) return 0;
    *out = strtod(p + strlen(pat), NULL);
    return 1;
}

static void read_child(int fd, run_result *r) {
    FILE *f = fdopen(fd, "r");
    char line[4096];
    if (!f) die("fdopen");
    while (fgets(line, sizeof line, f)) {
        double s, tok;
        if (strstr(line, "\"error\"")) { snprintf(r->note, sizeof r->note, "%.150s", line); continue; }
        if (json_number(line, "plan_mb", &s)) { r->plan_mb = s; continue; }
        if (json_number(line, "s", &s) && json_number(line, "num_tokens", &tok) && r->steps < 64) {
            r->s[r->steps] = s; r->tokens[r->steps] = (long)tok; r->steps++;
        }
    }
    fclose(f);
}

static void finish_child(pid_t pid, run_result *r) {
    int status = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    if (wait4(pid, &status, 0, &ru) < 0) die("wait4");
    r->peak_rss_mb = (double)ru.ru_maxrss / 1024.0;   /* Linux: kilobytes */
    r->ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && r->steps > 0;
    if (!r->ok && !r->note[0]) snprintf(r->note, sizeof r->note, "exit status %d", status);
}

static void run_sft(const bench_opts *o, const bench_case *c, const char *model_dir, const char *data_path, run_result *r) {
    int fds[2];
    pid_t pid;
    memset(r, 0, sizeof *r);
    if (pipe(fds) != 0) die("pipe");
    fflush(stdout); fflush(stderr);
    if ((pid = fork()) < 0) die("fork");
    if (pid == 0) {
        close(fds[0]);
        child_log_fd = fds[1];
        sft_child(o, c, model_dir, data_path);
    }
    close(fds[1]);
    read_child(fds[0], r);
    finish_child(pid, r);
}

static void run_python(const bench_opts *o, const bench_case *c, const char *loop, const char *model_dir, const char *data_path,
                       int steps, run_result *r) {
    char ml[16], bs[16], st[16], th[16], gc[16];
    int fds[2];
    pid_t pid;
    memset(r, 0, sizeof *r);
    snprintf(ml, sizeof ml, "%d", c->max_length); snprintf(bs, sizeof bs, "%d", c->batch);
    snprintf(st, sizeof st, "%d", steps); snprintf(th, sizeof th, "%d", o->threads); snprintf(gc, sizeof gc, "%d", c->gc);
    if (pipe(fds) != 0) die("pipe");
    fflush(stdout); fflush(stderr);
    if ((pid = fork()) < 0) die("fork");
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        close(fds[0]);
        dup2(fds[1], STDOUT_FILENO);
        if (devnull >= 0) dup2(devnull, STDERR_FILENO);   /* the Python stack's progress bars and warnings */
        execl(o->python, o->python, "tools/bench_e2e_trl.py", "--loop", loop, "--model", model_dir, "--data", data_path,
              "--max_length", ml, "--batch", bs, "--steps", st, "--threads", th, "--gradient_checkpointing", gc,
              "--compute_dtype", c->bf16 ? "bfloat16" : "float32", "--output_dir", WORK_DIR "/trl-out", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    read_child(fds[0], r);
    finish_child(pid, r);
}

/* ============================================================================
   Reporting */

typedef struct summary { double s_per_step, tokens_per_s, rss_mb; int ok; } summary;

/* the steps after the first: mean time, tokens per second */
static summary summarise(const run_result *r) {
    summary m;
    double t = 0.0;
    long tok = 0;
    int i;
    memset(&m, 0, sizeof m);
    if (!r->ok || r->steps < 2) return m;
    for (i = 1; i < r->steps; i++) { t += r->s[i]; tok += r->tokens[i]; }
    m.s_per_step = t / (r->steps - 1);
    m.tokens_per_s = (double)tok / t;
    m.rss_mb = r->peak_rss_mb;
    m.ok = 1;
    return m;
}

static void print_run(const char *impl, const bench_case *c, const bench_opts *o, const run_result *r, double flops,
                      double peak, double peak_bf16) {
    summary m = summarise(r);
    if (!m.ok) {
        printf("{\"bench\":\"e2e\",\"impl\":\"%s\",\"case\":\"%s\",\"error\":\"", impl, c->name);
        for (const char *p = r->note; *p; p++) if (*p != '"' && *p != '\n' && *p != '\\') putchar(*p);
        printf("\"}\n");
        fflush(stdout);
        return;
    }
    printf("{\"bench\":\"e2e\",\"impl\":\"%s\",\"case\":\"%s\",\"max_length\":%d,\"batch\":%d,\"gradient_checkpointing\":%d,"
           "\"dtype\":\"%s\",\"threads\":%d,\"steps\":%d,\"s_per_step\":%.3f,\"tokens_per_s\":%.1f,\"peak_rss_mb\":%.0f,"
           "\"gflops\":%.1f,\"peak_gflops\":%.1f",
           impl, c->name, c->max_length, c->batch, c->gc, c->bf16 ? "bf16" : "f32", o->threads, r->steps - 1, m.s_per_step,
           m.tokens_per_s, m.rss_mb, flops / m.s_per_step / 1e9, c->bf16 && peak_bf16 > 0 ? peak_bf16 : peak);
    if (r->plan_mb > 0) printf(",\"plan_mb\":%.0f", r->plan_mb);
    printf("}\n");
    fflush(stdout);
}

/* ============================================================================
   The cases */

static int parse_case(const char *s, bench_case *c) {
    char base[32];
    const char *colon = strchr(s, ':');
    size_t n = colon ? (size_t)(colon - s) : strlen(s);
    if (n >= sizeof base) return 0;
    memcpy(base, s, n); base[n] = 0;
    memset(c, 0, sizeof *c);
    if (strcmp(base, "512") == 0) { c->max_length = 512; c->batch = 4; }
    else if (strcmp(base, "512-gc") == 0) { c->max_length = 512; c->batch = 4; c->gc = 1; }
    else if (strcmp(base, "2048") == 0) { c->max_length = 2048; c->batch = 1; }
    else if (strcmp(base, "2048-gc") == 0) { c->max_length = 2048; c->batch = 1; c->gc = 1; }
    else return 0;
    if (colon && strcmp(colon + 1, "bf16") == 0) c->bf16 = 1;
    else if (colon && strcmp(colon + 1, "f32") != 0) return 0;
    snprintf(c->name, sizeof c->name, "%s:%s", base, c->bf16 ? "bf16" : "f32");
    return 1;
}

static void model_config(const char *dir, sft_model_config *out) {
    sft_context *ctx;
    sft_model *m;
    sft_load_desc ld;
    memset(&ld, 0, sizeof ld);
    ld.quant = SFT_QUANT_NF4;
    check(sft_context_create(NULL, &ctx), "context");
    check(sft_model_load(ctx, dir, &ld, &m), dir);
    *out = *sft_model_get_config(m);
    sft_model_destroy(m);
    sft_context_destroy(ctx);
}

/* run_cases: the cases, each stack in turn; the FMA peaks are measured again
   just before each sft.h run and the highest seen is the one sft.h's speed is
   set against (a shared machine's speed changes from minute to minute; a
   disturbed measurement must not flatter the fraction) */
static void run_cases(const bench_opts *o, const char *model_dir, double peak, double peak_bf16) {
    char list[512], *tok, *save = NULL;
    sft_model_config cfg;
    int have_py = file_exists(o->python);
    model_config(model_dir, &cfg);
    if (o->cases) snprintf(list, sizeof list, "%s", o->cases);
    else snprintf(list, sizeof list, "512:f32,512-gc:f32,2048:f32,2048-gc:f32%s",
                  peak_has_bf16() ? ",512:bf16,512-gc:bf16,2048:bf16,2048-gc:bf16" : "");
    if (!have_py && (!o->only || strcmp(o->only, "sft") != 0))
        fprintf(stderr, "bench_e2e: %s not found: measuring sft.h only (see tools/README.md for the venv)\n", o->python);
    for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        bench_case c;
        char data[256];
        double flops;
        summary best[3];
        double sft_peak = peak;
        int rep, k;
        if (!parse_case(tok, &c)) { fprintf(stderr, "bench_e2e: unknown case '%s'\n", tok); exit(2); }
        snprintf(data, sizeof data, WORK_DIR "/chat-%d.jsonl", c.max_length);
        write_data(data, c.max_length, 8 * o->steps * c.batch);
        flops = step_flops(&cfg, c.max_length, c.batch);
        memset(best, 0, sizeof best);
        for (rep = 0; rep < o->repeats; rep++) {
            for (k = 0; k < 3; k++) {       /* sft, trl, torch (the torch loop at f32 512 only) */
                static const char *const impl[3] = {"sft", "trl", "torch"};
                run_result r;
                summary m;
                if (o->only && strcmp(o->only, impl[k]) != 0) continue;
                if (k > 0 && !have_py) continue;
                if (k == 2 && !o->only && (c.gc || c.bf16 || c.max_length != 512)) continue;
                fprintf(stderr, "bench_e2e: %s %s (run %d of %d)\n", impl[k], c.name, rep + 1, o->repeats);
                if (k == 0) {           /* the machine's peak now, beside sft.h's run (the highest seen counts) */
                    double now = peak_gflops(best_isa(), o->threads);
                    if (now > peak) peak = now;
                    if (peak_bf16 > 0.0 && (now = peak_gflops(ISA_AVX512_BF16, o->threads)) > peak_bf16) peak_bf16 = now;
                    run_sft(o, &c, model_dir, data, &r);
                    sft_peak = c.bf16 && peak_bf16 > 0 ? peak_bf16 : peak;
                }
                else run_python(o, &c, impl[k], model_dir, data, o->steps, &r);
                print_run(impl[k], &c, o, &r, flops, peak, peak_bf16);
                m = summarise(&r);
                if (m.ok && (!best[k].ok || m.s_per_step < best[k].s_per_step)) {
                    double rss = best[k].ok && best[k].rss_mb > m.rss_mb ? best[k].rss_mb : m.rss_mb;
                    best[k] = m; best[k].rss_mb = rss;
                }
            }
        }
        if (best[0].ok && best[1].ok) {
            double sft_gflops = flops / best[0].s_per_step / 1e9;
            printf("{\"bench\":\"e2e_ratio\",\"case\":\"%s\",\"speed_vs_trl\":%.3f,\"rss_vs_trl\":%.3f", c.name,
                   best[0].tokens_per_s / best[1].tokens_per_s, best[0].rss_mb / best[1].rss_mb);
            if (best[2].ok)
                printf(",\"speed_vs_torch\":%.3f,\"rss_vs_torch\":%.3f", best[0].tokens_per_s / best[2].tokens_per_s,
                       best[0].rss_mb / best[2].rss_mb);
            printf(",\"sft_fraction_of_peak\":%.3f}\n", sft_gflops / sft_peak);
            fflush(stdout);
        }
    }
}

/* ============================================================================
   --memory: the longest max_length within 20 GB at batch 1 with checkpointing */

static void run_memory(const bench_opts *o, const char *model_dir) {
    static const int lengths[4] = {1024, 2048, 4096, 8192};
    int have_py = file_exists(o->python), k, i;
    for (k = 0; k < 2; k++) {
        const char *impl = k == 0 ? "sft" : "torch";
        double rss[4] = {0, 0, 0, 0}, slope, t_max;
        if (o->only && strcmp(o->only, impl) != 0) continue;
        if (k == 1 && !have_py) continue;
        for (i = 0; i < 4; i++) {
            bench_case c;
            char data[256];
            run_result r;
            bench_opts one = *o;
            memset(&c, 0, sizeof c);
            c.max_length = lengths[i]; c.batch = 1; c.gc = 1;
            snprintf(c.name, sizeof c.name, "memory-%d", lengths[i]);
            snprintf(data, sizeof data, WORK_DIR "/chat-%d.jsonl", c.max_length);
            write_data(data, c.max_length, 8);
            one.steps = 1;
            fprintf(stderr, "bench_e2e: memory: %s at max_length %d\n", impl, lengths[i]);
            if (k == 0) run_sft(&one, &c, model_dir, data, &r);
            else run_python(&one, &c, "torch", model_dir, data, 1, &r);
            rss[i] = r.ok ? r.peak_rss_mb : 0.0;
            printf("{\"bench\":\"e2e_memory\",\"impl\":\"%s\",\"max_length\":%d,\"batch\":1,\"gradient_checkpointing\":1,"
                   "\"ok\":%d,\"peak_rss_mb\":%.0f,\"s_step\":%.2f}\n", impl, lengths[i], r.ok, r.peak_rss_mb, r.steps ? r.s[0] : 0.0);
            fflush(stdout);
        }
        if (rss[2] > 0 && rss[3] > rss[2]) {
            slope = (rss[3] - rss[2]) / (lengths[3] - lengths[2]);        /* MB per token */
            t_max = lengths[3] + (MEMORY_LIMIT / 1048576.0 - rss[3]) / slope;
            printf("{\"bench\":\"e2e_max_length\",\"impl\":\"%s\",\"limit_gb\":20,\"mb_per_token\":%.4f,"
                   "\"max_length_within_limit\":%.0f}\n", impl, slope, t_max);
            fflush(stdout);
        }
    }
}

/* ============================================================================
   main */

static void usage(void) {
    fprintf(stderr, "usage: bench_e2e [--model DIR] [--steps N] [--threads T] [--cases LIST] [--repeats R] "
                    "[--only sft|trl|torch] [--memory] [--profile] [--python PATH]\n");
    exit(2);
}

int main(int argc, char **argv) {
    bench_opts o;
    const char *model_dir = WORK_DIR "/model";
    double peak, peak_bf16 = 0.0;
    peak_isa isa;
    int i;
    memset(&o, 0, sizeof o);
    o.steps = 4; o.threads = 2; o.repeats = 1; o.python = "tools/.venv/bin/python";
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--memory") == 0) { o.memory = 1; continue; }
        if (strcmp(a, "--profile") == 0) { o.profile = 1; continue; }
        if (!v) usage();
        if (strcmp(a, "--model") == 0) o.model = v;
        else if (strcmp(a, "--steps") == 0) o.steps = atoi(v);
        else if (strcmp(a, "--threads") == 0) o.threads = atoi(v);
        else if (strcmp(a, "--repeats") == 0) o.repeats = atoi(v);
        else if (strcmp(a, "--cases") == 0) o.cases = v;
        else if (strcmp(a, "--only") == 0) o.only = v;
        else if (strcmp(a, "--python") == 0) o.python = v;
        else usage();
        i++;
    }
    if (o.steps < 2 || o.steps > 60 || o.threads < 1 || o.repeats < 1) usage();
    make_dir("build");
    make_dir(WORK_DIR);
    if (o.model) model_dir = o.model;
    else write_default_model(model_dir);
    isa = best_isa();
    peak = peak_gflops(isa, o.threads);
    printf("{\"bench\":\"peak\",\"isa\":\"%s\",\"threads\":%d,\"gflops\":%.2f}\n", isa_names[isa], o.threads, peak);
    if (peak_has_bf16()) {
        peak_bf16 = peak_gflops(ISA_AVX512_BF16, o.threads);
        printf("{\"bench\":\"peak\",\"isa\":\"%s\",\"threads\":%d,\"gflops\":%.2f}\n", isa_names[ISA_AVX512_BF16], o.threads,
               peak_bf16);
    }
    fflush(stdout);
    if (o.memory) run_memory(&o, model_dir);
    else run_cases(&o, model_dir, peak, peak_bf16);
    return 0;
}
