/* bench_cuda.cu - `make bench-cuda`: sft.h's CUDA backend on a GPU, in one
   bounded run (under 2 minutes on an H200). JSON lines on stdout.

   1. The NF4 linear, y = x W^T in bf16 compute (sft_cuda.cuh, "tensor cores"),
      on Llama-3-8B's layer shapes (in x out: 4096x4096 q/o_proj, 4096x1024
      k/v_proj, 4096x14336 gate/up_proj, 14336x4096 down_proj) at M = 16, 512,
      4096 and 16384 rows, each path timed on the same inputs:
        fused      the fused 4-bit kernel (SFT_CUDA_GEMM=fused)
        dequant    x and W to bf16 in the workspace, then cuBLASLt
        dispatch   the dispatcher's own choice (named in "chose")
        dense      cuBLASLt on bf16 x and bf16 W already in memory: the bound
                   the dispatcher is measured against (target: dispatch >= 0.95
                   of dense at M >= 4096)
        {"bench":"nf4_linear","in":4096,"out":14336,"M":512,"path":"fused","ms":..,
         "tflops":..,"vs_dense":..,"chose":"fused"}
      then per shape the measured crossing of fused and dequant, and the row of
      sft__tc_table it suggests:
        {"bench":"nf4_crossover","sm":90,"in":..,"out":..,"m_fused_wins_up_to":..}
   2. End to end: QLoRA training steps of a Llama-3.2-1B-shaped model with
      random weights (16 layers, hidden 2048, 32/8 heads, intermediate 8192,
      vocabulary 128256, tied embeddings; written once to
      build/bench-cuda/model in bf16), NF4 with double quantization, compute
      bf16, LoRA r 16 / alpha 32 / dropout 0.05 on every linear, gradient
      checkpointing, AdamW lr 2e-4, batch 1 x 2048 tokens; the first step is
      a warm-up, the next --steps are timed:
        {"bench":"e2e","impl":"sft","tokens_per_s":..,"s_per_step":..,"peak_device_mb":..}
      and, where the Python (--python, default tools/.venv/bin/python) has torch
      with CUDA, PEFT and bitsandbytes, the same job there
      (tools/bench_cuda_peft.py, bf16 autocast as transformers' --bf16):
        {"bench":"e2e","impl":"peft_bnb",...}  {"bench":"e2e_ratio","speed":..,"memory":..}
      (targets: speed >= 1.5, memory <= 0.7)

   usage: build/bench_cuda [--only gemm|e2e] [--steps N] [--python PATH] [--smoke]
   --smoke: tiny shapes and a 2-layer model, every path once (the emulator build,
   build/bench_cuda_emu, runs it in CI to keep this program working; its times
   mean nothing there).

   Built by `make cuda` (nvcc, as the library's own translation unit: it calls
   the tensor-core section's functions directly). Nothing here is used by the
   library or its tests. */
#define SFT_IMPLEMENTATION
#define SFT_CUDA
#include "../sft.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>

static int smoke;

static void die(const char *what) {
    fprintf(stderr, "bench_cuda: %s: %s\n", what, sft_last_error());
    exit(1);
}
static void check(sft_status s, const char *what) { if (s != SFT_OK) die(what); }

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* a host f32 tensor of uniform values in [-a, a) (an LCG: fast for 10^9 values) */
static sft_tensor *random_tensor(sft_context *ctx, int64_t rows, int64_t cols, uint64_t seed, float a) {
    int64_t shape[2] = {rows, cols}, i, n = rows * cols;
    sft_tensor *t = NULL;
    uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
    check(sft_tensor_create(ctx, SFT_F32, 2, shape, &t), "tensor");
    for (i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        ((float *)t->data)[i] = a * ((float)(s >> 40) * (1.0f / 8388608.0f) - 1.0f);
    }
    return t;
}

/* ============================================================================
   1. the NF4 linear */

enum { P_FUSED, P_DEQUANT, P_DISPATCH, P_DENSE, P_COUNT };
static const char *const path_names[P_COUNT] = {"fused", "dequant", "dispatch", "dense"};

/* dense bf16: cuBLASLt on x16 and w16 (the emulator build: the tensor-core kernel
   on the same 16-bit operands, cuBLASLt's stand-in there) */
static sft_status dense_bf16(sft_context *ctx, sft__cuda_state *st, int64_t M, int64_t N, int64_t K, const uint16_t *x16,
                             const uint16_t *w16, float *y) {
#ifdef CUDA_EMU
    sft__tc_h16 hx, hw;
    (void)ctx; (void)st;
    hx.p = x16; hx.ld = K; hx.vec = K % 8 == 0;
    hw.p = w16; hw.ld = K; hw.vec = K % 8 == 0;
    return sft__cuda_tc_launch<0>(M, N, K, hx, hw, y, N, 0, "bench dense");
#else
    int done = 0;
    SFT__TRY(sft__cuda_gemm_lt16(ctx, st, M, N, K, x16, w16, 0, y, N, 0, "bench dense", &done));
    return done ? sft__cuda_check("bench dense", "cublasLtMatmul") : sft__fail(SFT_ERR_DEVICE, "bench: cuBLASLt has no bf16 algorithm");
#endif
}

static sft_status run_path(sft_context *ctx, sft__cuda_state *st, int path, int64_t M, int64_t N, int64_t K, const float *x,
                           const sft_qweight *q, const uint16_t *x16, const uint16_t *w16, float *y) {
    if (path == P_DENSE) return dense_bf16(ctx, st, M, N, K, x16, w16, y);
    st->gemm_mode = path == P_FUSED ? SFT__GEMM_FUSED : path == P_DEQUANT ? SFT__GEMM_DEQUANT : SFT__GEMM_AUTO;
    return sft__cuda_gemm_lowp(ctx, M, N, K, sft__mat_of(x, K, 1), sft__cuda_q4_of(q, 1), 1, y, N, 0, "bench nf4");
}

/* milliseconds per call: one warm-up, then repeats until 0.2 s (at least 3) */
static double time_path(sft_context *ctx, sft__cuda_state *st, int path, int64_t M, int64_t N, int64_t K, const float *x,
                        const sft_qweight *q, const uint16_t *x16, const uint16_t *w16, float *y) {
    double t0, t;
    int reps = 0;
    check(run_path(ctx, st, path, M, N, K, x, q, x16, w16, y), path_names[path]);
    if (cudaDeviceSynchronize() != cudaSuccess) die("synchronize");
    t0 = now_s();
    do {
        check(run_path(ctx, st, path, M, N, K, x, q, x16, w16, y), path_names[path]);
        reps++;
        if (cudaDeviceSynchronize() != cudaSuccess) die("synchronize");
        t = now_s() - t0;
    } while (!smoke && (t < 0.2 || reps < 3));
    return 1e3 * t / reps;
}

/* the dequantize path's 4-bit writers alone: W [N, K] to the 16-bit workspace
   in its own order (y = x W^T) and transposed (dx = dy W); GB/s counts the
   codes read and the 16-bit values written */
static void bench_writers(const sft_qweight *qd, uint16_t *w16, int64_t N, int64_t K) {
    static const char *const layouts[2] = {"rows (y = x W^T)", "transposed (dx = dy W)"};
    int t;
    for (t = 0; t < 2; t++) {
        sft__tc_cols<sft__cuda_q4> src;
        double t0 = 0.0, sec;
        int reps = 0;
        src.b = sft__cuda_q4_of(qd, t == 0);
        do {
            if (reps == 1) {              /* the first call warms up */
                if (cudaDeviceSynchronize() != cudaSuccess) die("synchronize");
                t0 = now_s();
            }
            if (t == 0) sft__cuda_w16<0>(w16, src, N, K);
            else sft__cuda_w16<0>(w16, src, K, N);
            check(sft__cuda_check("bench", "writer"), "writer");
            reps++;
            if (cudaDeviceSynchronize() != cudaSuccess) die("synchronize");
            sec = reps > 1 ? now_s() - t0 : 0.0;
        } while (reps < 2 || (!smoke && (sec < 0.2 || reps < 4)));
        sec /= reps - 1;
        printf("{\"bench\":\"nf4_writer\",\"in\":%lld,\"out\":%lld,\"layout\":\"%s\",\"ms\":%.4f,\"gbps\":%.1f}\n", (long long)K,
               (long long)N, layouts[t], 1e3 * sec, (double)(N * K) * 2.5 / (sec * 1e9));
        fflush(stdout);
    }
}

static void bench_linear(sft_context *ctx) {
    static const int64_t shapes_full[4][2] = {{4096, 4096}, {4096, 1024}, {4096, 14336}, {14336, 4096}};
    static const int64_t ms_full[4] = {16, 512, 4096, 16384};
    static const int64_t shapes_smoke[2][2] = {{96, 64}, {64, 136}};
    static const int64_t ms_smoke[2] = {16, 300};
    int n_shapes = smoke ? 2 : 4, n_ms = smoke ? 2 : 4, s, mi, p;
    sft__cuda_state *st;
    check(sft__cuda_state_of(ctx, &st), "cuda state");
    for (s = 0; s < n_shapes; s++) {
        int64_t K = smoke ? shapes_smoke[s][0] : shapes_full[s][0], N = smoke ? shapes_smoke[s][1] : shapes_full[s][1];
        int64_t Mmax = smoke ? ms_smoke[n_ms - 1] : ms_full[n_ms - 1], fused_up_to = 0;
        sft_tensor *w = random_tensor(ctx, N, K, 1 + (uint64_t)s, 0.05f), *x = random_tensor(ctx, Mmax, K, 100 + (uint64_t)s, 1.0f);
        sft_qweight *q = NULL, *qd = NULL;
        sft_quant_desc qdesc;
        float *xd = NULL, *yd = NULL;
        uint16_t *x16 = NULL, *w16 = NULL;
        sft__tc_rows ar;
        sft__tc_cols<sft__cuda_q4> bc;
        memset(&qdesc, 0, sizeof qdesc);
        qdesc.type = SFT_QUANT_NF4; qdesc.double_quant = 1;
        check(sft_quantize(ctx, w, &qdesc, &q), "quantize");
        check(sft_qweight_to_device(ctx, q, SFT_DEVICE_CUDA, &qd), "qweight to device");
        check(sft__cuda_alloc(ctx, (size_t)(Mmax * K) * 4, (void **)&xd), "x");
        check(sft__cuda_alloc(ctx, (size_t)(Mmax * N) * 4, (void **)&yd), "y");
        check(sft__cuda_alloc(ctx, (size_t)(Mmax * K) * 2 + 256, (void **)&x16), "x16");
        check(sft__cuda_alloc(ctx, (size_t)(N * K) * 2, (void **)&w16), "w16");
        check(sft__cuda_copy(xd, SFT_DEVICE_CUDA, x->data, SFT_DEVICE_CPU, (size_t)(Mmax * K) * 4), "copy x");
        ar.a = sft__mat_of(xd, K, 1);   /* the dense operands: the same rounding the paths apply */
        bc.b = sft__cuda_q4_of(qd, 1);
        sft__cuda_w16<0>(x16, ar, Mmax, K);
        sft__cuda_w16<0>(w16, bc, N, K);
        check(sft__cuda_check("bench", "to16"), "to16");
        bench_writers(qd, w16, N, K);
        for (mi = 0; mi < n_ms; mi++) {
            int64_t M = smoke ? ms_smoke[mi] : ms_full[mi];
            double ms[P_COUNT], flops = 2.0 * (double)M * (double)N * (double)K;
            for (p = 0; p < P_COUNT; p++) ms[p] = time_path(ctx, st, p, M, N, K, xd, qd, x16, w16, yd);
            st->gemm_mode = SFT__GEMM_AUTO;
            if (ms[P_FUSED] <= ms[P_DEQUANT]) fused_up_to = M;
            for (p = 0; p < P_COUNT; p++)
                printf("{\"bench\":\"nf4_linear\",\"in\":%lld,\"out\":%lld,\"M\":%lld,\"path\":\"%s\",\"ms\":%.4f,\"tflops\":%.2f,"
                       "\"vs_dense\":%.3f,\"chose\":\"%s\"}\n",
                       (long long)K, (long long)N, (long long)M, path_names[p], ms[p], flops / (ms[p] * 1e9), ms[P_DENSE] / ms[p],
                       sft__cuda_lowp_fused(st, M, N, K) ? "fused" : "dequant");
            fflush(stdout);
        }
        printf("{\"bench\":\"nf4_crossover\",\"sm\":%d,\"in\":%lld,\"out\":%lld,\"m_fused_wins_up_to\":%lld,\"table_m_star\":%lld}\n", st->sm,
               (long long)K, (long long)N, (long long)fused_up_to, (long long)sft__cuda_m_star(st));
        sft__cuda_free(ctx, xd); sft__cuda_free(ctx, yd); sft__cuda_free(ctx, x16); sft__cuda_free(ctx, w16);
        sft_qweight_destroy(q); sft_qweight_destroy(qd);
        sft_tensor_destroy(w); sft_tensor_destroy(x);
    }
}

/* ============================================================================
   2. end to end */

#define E_LAYERS (smoke ? 2 : 16)
#define E_HIDDEN (smoke ? 128 : 2048)
#define E_HEADS (smoke ? 4 : 32)
#define E_KV (smoke ? 2 : 8)
#define E_INTER (smoke ? 256 : 8192)
#define E_VOCAB (smoke ? 256 : 128256)
#define E_SEQ (smoke ? 64 : 2048)

static void write_model(const char *dir) {
    static const char *const proj[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                        "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
    int64_t kv = E_HIDDEN / E_HEADS * E_KV;
    int64_t rows[7] = {E_HIDDEN, kv, kv, E_HIDDEN, E_INTER, E_INTER, E_HIDDEN}, cols[7] = {E_HIDDEN, E_HIDDEN, E_HIDDEN, E_HIDDEN, E_HIDDEN, E_HIDDEN, E_INTER};
    int n_max = 2 + 9 * E_LAYERS, n = 0, l, k;
    char (*names)[SFT_WEIGHT_NAME_MAX] = (char (*)[SFT_WEIGHT_NAME_MAX])calloc((size_t)n_max, SFT_WEIGHT_NAME_MAX);
    sft_st_entry *e = (sft_st_entry *)calloc((size_t)n_max, sizeof *e);
    uint16_t **data = (uint16_t **)calloc((size_t)n_max, sizeof *data);
    const char *mk = "format", *mv = "pt";
    char path[512];
    sft_context *ctx;
    FILE *f;
    uint64_t s = 12345;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    { struct stat sb; if (stat(path, &sb) == 0) return; }
    fprintf(stderr, "bench_cuda: writing the random Llama-3.2-1B-shaped model to %s\n", dir);
    mkdir("build", 0755); mkdir("build/bench-cuda", 0755); mkdir(dir, 0755);
    check(sft_context_create(NULL, &ctx), "context");
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (!(f = fopen(path, "w"))) die(path);
    fprintf(f, "{\"architectures\":[\"LlamaForCausalLM\"],\"attention_bias\":false,\"attention_dropout\":0.0,\"bos_token_id\":1,"
               "\"eos_token_id\":2,\"head_dim\":%d,\"hidden_act\":\"silu\",\"hidden_size\":%d,\"initializer_range\":0.02,"
               "\"intermediate_size\":%d,\"max_position_embeddings\":131072,\"mlp_bias\":false,\"model_type\":\"llama\","
               "\"num_attention_heads\":%d,\"num_hidden_layers\":%d,\"num_key_value_heads\":%d,\"pretraining_tp\":1,"
               "\"rms_norm_eps\":1e-05,\"rope_scaling\":{\"factor\":32.0,\"high_freq_factor\":4.0,\"low_freq_factor\":1.0,"
               "\"original_max_position_embeddings\":8192,\"rope_type\":\"llama3\"},\"rope_theta\":500000.0,"
               "\"tie_word_embeddings\":true,\"torch_dtype\":\"bfloat16\",\"use_cache\":true,\"vocab_size\":%d}\n",
            E_HIDDEN / E_HEADS, E_HIDDEN, E_INTER, E_HEADS, E_LAYERS, E_KV, E_VOCAB);
    fclose(f);
    for (l = -1; l <= E_LAYERS; l++)
        for (k = 0; k < (l < 0 || l == E_LAYERS ? 1 : 9); k++) {
            int64_t r = 1, c = E_HIDDEN, j;
            int norm = 1;
            if (l < 0) { snprintf(names[n], SFT_WEIGHT_NAME_MAX, "model.embed_tokens.weight"); r = E_VOCAB; norm = 0; }
            else if (l == E_LAYERS) snprintf(names[n], SFT_WEIGHT_NAME_MAX, "model.norm.weight");
            else if (k >= 7) snprintf(names[n], SFT_WEIGHT_NAME_MAX, "model.layers.%d.%s.weight", l, k == 7 ? "input_layernorm" : "post_attention_layernorm");
            else { snprintf(names[n], SFT_WEIGHT_NAME_MAX, "model.layers.%d.%s.weight", l, proj[k]); r = rows[k]; c = cols[k]; norm = 0; }
            data[n] = (uint16_t *)malloc((size_t)(r * c) * 2);
            if (!data[n]) die("out of memory");
            for (j = 0; j < r * c; j++) {   /* uniform, std 0.02; norms 1 */
                s = s * 6364136223846793005ull + 1442695040888963407ull;
                data[n][j] = norm ? 0x3f80 : sft_f32_to_bf16(0.0346f * ((float)(s >> 40) * (1.0f / 8388608.0f) - 1.0f));
            }
            e[n].name = names[n]; e[n].dtype = SFT_BF16; e[n].ndim = norm ? 1 : 2;
            e[n].shape[0] = norm ? c : r; e[n].shape[1] = c; e[n].data = data[n];
            n++;
        }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    check(sft_st_save(ctx, path, e, n, &mk, &mv, 1), path);
    for (k = 0; k < n; k++) free(data[k]);
    free(data); free(e); free(names);
    sft_context_destroy(ctx);
}

typedef struct e2e_result { double tokens_per_s, s_per_step, peak_mb; int ok; } e2e_result;

static e2e_result bench_sft(const char *dir, int steps) {
    e2e_result r;
    sft_context *ctx;
    sft_tokenizer *tok = NULL;
    sft_dataset *ds = NULL;
    sft_model *m = NULL;
    sft_trainer *tr = NULL;
    sft_load_desc ld;
    sft_lora_desc lora;
    sft_data_desc dd;
    sft_train_config tc;
    char **recs = (char **)calloc((size_t)(steps + 1), sizeof *recs);
    double t = 0.0;
    int i, k;
    memset(&r, 0, sizeof r);
    check(sft_context_create(NULL, &ctx), "context");
    check(sft_tokenizer_load(ctx, "tests/fixtures/tokenizers/qwen2", &tok), "tokenizer");
    for (i = 0; i <= steps; i++) {   /* pre-tokenized rows of E_SEQ ids */
        size_t cap = (size_t)E_SEQ * 8 + 64, len;
        recs[i] = (char *)malloc(cap);
        len = (size_t)snprintf(recs[i], cap, "{\"input_ids\": [");
        for (k = 0; k < E_SEQ; k++) len += (size_t)snprintf(recs[i] + len, cap - len, "%s%d", k ? "," : "", 3 + (i * 131 + k * 17) % 240);
        snprintf(recs[i] + len, cap - len, "]}");
    }
    memset(&dd, 0, sizeof dd);
    dd.max_length = E_SEQ;
    check(sft_dataset_from_records(ctx, tok, (const char *const *)recs, steps + 1, &dd, &ds), "dataset");
    memset(&ld, 0, sizeof ld);
    ld.quant = SFT_QUANT_NF4; ld.double_quant = 1; ld.device = SFT_DEVICE_CUDA; ld.compute_dtype = SFT_BF16;
    check(sft_model_load(ctx, dir, &ld, &m), "model");
    memset(&lora, 0, sizeof lora);
    lora.r = 16; lora.alpha = 32; lora.dropout = 0.05f;
    check(sft_model_add_lora(m, "default", &lora, "all-linear"), "lora");
    memset(&tc, 0, sizeof tc);
    tc.max_steps = steps + 1; tc.per_device_train_batch_size = 1; tc.learning_rate = 2e-4; tc.gradient_checkpointing = 1;
    tc.logging_steps = 1000; tc.sequential = 1;
    check(sft_trainer_create(m, ds, &tc, &tr), "trainer");
    sft_context_mem_reset_peak(ctx);
    for (i = 0; i <= steps; i++) {
        sft_step_info info;
        double t0 = now_s();
        check(sft_trainer_step(tr, &info), "step");
        if (i > 0) t += now_s() - t0;
    }
    r.s_per_step = t / steps;
    r.tokens_per_s = (double)E_SEQ * steps / t;
    r.peak_mb = (double)sft_context_mem_stats(ctx).device_peak_bytes / 1048576.0;
    r.ok = 1;
    sft_trainer_destroy(tr);
    sft_model_destroy(m);
    sft_dataset_destroy(ds);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
    for (i = 0; i <= steps; i++) free(recs[i]);
    free(recs);
    return r;
}

/* the PEFT + bitsandbytes run: its last JSON line ("impl":"peft_bnb") */
static e2e_result bench_peft(const char *python, const char *dir, int steps) {
    e2e_result r;
    char cmd[1024], line[1024];
    FILE *p;
    memset(&r, 0, sizeof r);
    snprintf(cmd, sizeof cmd, "%s tools/bench_cuda_peft.py --model %s --seq %d --steps %d 2>&1", python, dir, E_SEQ, steps);
    if (!(p = popen(cmd, "r"))) return r;
    while (fgets(line, sizeof line, p)) {
        const char *v;
        if (!strstr(line, "\"impl\": \"peft_bnb\"")) { fprintf(stderr, "  peft: %s", line); continue; }
        if ((v = strstr(line, "\"tokens_per_s\": "))) r.tokens_per_s = atof(v + 16);
        if ((v = strstr(line, "\"s_per_step\": "))) r.s_per_step = atof(v + 14);
        if ((v = strstr(line, "\"peak_device_mb\": "))) r.peak_mb = atof(v + 18);
        r.ok = r.tokens_per_s > 0;
    }
    pclose(p);
    return r;
}

static void bench_e2e(const char *python, int steps) {
    const char *dir = smoke ? "build/bench-cuda/model-smoke" : "build/bench-cuda/model";
    e2e_result s, t;
    struct stat sb;
    write_model(dir);
    s = bench_sft(dir, steps);
    printf("{\"bench\":\"e2e\",\"impl\":\"sft\",\"model\":\"llama-3.2-1b shape, random\",\"seq\":%d,\"tokens_per_s\":%.1f,\"s_per_step\":%.4f,"
           "\"peak_device_mb\":%.1f}\n", E_SEQ, s.tokens_per_s, s.s_per_step, s.peak_mb);
    fflush(stdout);
    if (smoke || stat(python, &sb) != 0) {
        printf("{\"bench\":\"e2e\",\"impl\":\"peft_bnb\",\"skipped\":\"%s\"}\n", smoke ? "smoke run" : "no Python at --python");
        return;
    }
    t = bench_peft(python, dir, steps);
    if (!t.ok) { printf("{\"bench\":\"e2e\",\"impl\":\"peft_bnb\",\"skipped\":\"the Python run failed (see stderr)\"}\n"); return; }
    printf("{\"bench\":\"e2e\",\"impl\":\"peft_bnb\",\"model\":\"llama-3.2-1b shape, random\",\"seq\":%d,\"tokens_per_s\":%.1f,\"s_per_step\":%.4f,"
           "\"peak_device_mb\":%.1f}\n", E_SEQ, t.tokens_per_s, t.s_per_step, t.peak_mb);
    printf("{\"bench\":\"e2e_ratio\",\"speed\":%.3f,\"memory\":%.3f}\n", s.tokens_per_s / t.tokens_per_s, s.peak_mb / t.peak_mb);
}

int main(int argc, char **argv) {
    const char *only = NULL, *python = "tools/.venv/bin/python";
    int i, steps = 4;
    sft_context *ctx;
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--python") && i + 1 < argc) python = argv[++i];
        else if (!strcmp(argv[i], "--smoke")) smoke = 1;
        else { fprintf(stderr, "usage: bench_cuda [--only gemm|e2e] [--steps N] [--python PATH] [--smoke]\n"); return 2; }
    }
    if (steps < 1) steps = 1;
    if (smoke) steps = 1;
    if (!sft_cuda_available()) { printf("{\"bench\":\"none\",\"skipped\":\"no CUDA device\"}\n"); return 1; }
    if (!only || !strcmp(only, "gemm")) {
        check(sft_context_create(NULL, &ctx), "context");
        bench_linear(ctx);
        sft_context_destroy(ctx);
    }
    if (!only || !strcmp(only, "e2e")) bench_e2e(python, steps);
    return 0;
}
