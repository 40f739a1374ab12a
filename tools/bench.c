/* bench.c - `make bench`: the speed of sft.h's CPU kernels against references
   measured in the same run.

   cc -std=c99 -O2 -Wall -Wextra -Wpedantic tools/bench.c -o build/bench \
      -I/usr/include/x86_64-linux-gnu/openblas-pthread -lopenblas -lm -lpthread
   env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ./build/bench [threads] [cpu_path] [--quick] [--full]

     threads   worker threads for sft.h, OpenBLAS and the peak test (default 2)
     cpu_path  force sft.h's kernels: portable, avx2 or avx512 (default: the best)
     --quick   tokens = 512 (and attention T = 512) only
     --full    never skip a GEMM case (see lm_head below)
     --only F  run one family: gemm, linear4bit, attention or tokenizer

   Prints one JSON object per line on stdout (progress goes to stderr):
     {"bench":"peak",...}       f32 FMA peak of this machine, 1 thread and all threads
     {"bench":"gemm",...}       sft_matmul vs cblas_sgemm, same orientation and layout,
                                for the linear layers of SmolLM2-135M at 512 and 2048
                                tokens: fwd (x W^T), bwd_input (dy W), bwd_weight (dy^T x)
     {"bench":"linear4bit",...} the NF4 layer's GEMMs (weight decoded into the packed
                                panels) vs the same GEMMs on the dense f32 weight:
                                fwd (x W^T) and bwd_input (dy W), SmolLM2-135M shapes
     {"bench":"attention",...}  sft_attention forward and forward + backward
     {"bench":"tokenizer",...}  sft_tokenizer_encode MB/s on ~4 MB of English-like text
                                (one thread; fixtures' tokenizers), the text left in
                                build/bench_text.txt for tools/bench_tokenizer.py
   Every time is the best of at least 3 repetitions after one warm-up (more, up to
   50, for short ones); sft_matmul and cblas_sgemm repetitions alternate, so both
   see the same machine.

   The lm_head bwd_input / bwd_weight cases at 2048 tokens are skipped (with a note
   on stderr) when measuring them would take more than about 20 s, judged from the
   lm_head fwd case of the same size; --full runs them anyway.

   Each sft_matmul result is checked against OpenBLAS's; a mismatch is reported on
   stderr and the program exits with status 2 after finishing. */
#define SFT_IMPLEMENTATION
#include "../sft.h"

/* C++ has no _Complex: let OpenBLAS's header use its struct types (unused here). */
#if defined(__cplusplus) && !defined(FORCE_OPENBLAS_COMPLEX_STRUCT)
#  define FORCE_OPENBLAS_COMPLEX_STRUCT
#endif
#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_peak.h"

#ifdef __cplusplus
extern "C"
#endif
void openblas_set_num_threads(int num_threads);

/* ============================================================================
   helpers */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void check(sft_status s, const char *what) {
    if (s != SFT_OK) {
        fprintf(stderr, "bench: %s failed: %s: %s\n", what, sft_status_str(s), sft_last_error());
        exit(1);
    }
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) { fprintf(stderr, "bench: out of memory (%zu bytes)\n", n); exit(1); }
    return p;
}

/* Deterministic values in [-1, 1) (xorshift64*). */
static void fill_uniform(float *p, int64_t n, uint64_t seed) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
    int64_t i;
    if (!s) s = 1;
    for (i = 0; i < n; i++) {
        uint64_t r;
        s ^= s >> 12; s ^= s << 25; s ^= s >> 27;
        r = s * 0x2545F4914F6CDD1Dull;
        p[i] = (float)(r >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f;
    }
}

static sft_tensor *random_tensor(sft_context *ctx, int ndim, const int64_t *shape, uint64_t seed) {
    sft_tensor *t = NULL;
    check(sft_tensor_create(ctx, SFT_F32, ndim, shape, &t), "sft_tensor_create");
    fill_uniform((float *)t->data, sft_tensor_numel(t), seed);
    return t;
}

/* time_best: one warm-up, then at least min_reps timed runs (more, up to 50, while
   the timed runs total under 0.5 s); the best time in seconds. prep (may be NULL)
   runs before each repetition, outside the timing. */
typedef void (*bench_fn)(void *arg);
static double time_best(bench_fn prep, bench_fn run, void *arg, int min_reps) {
    double best = 1e300, total = 0.0;
    int rep;
    if (prep) prep(arg);
    run(arg);
    for (rep = 0; rep < min_reps || (total < 0.5 && rep < 50); rep++) {
        double t0, dt;
        if (prep) prep(arg);
        t0 = now_s();
        run(arg);
        dt = now_s() - t0;
        total += dt;
        if (dt < best) best = dt;
    }
    return best;
}

/* time_pair: time_best for two programs at once, their repetitions interleaved
   (a, b, a, b, ...) so that both see the same machine (a busy neighbour, a clock
   change). Warm-up of each first; prep_a runs before each run of a, untimed. The
   total budget of 0.5 s counts both. */
static void time_pair(bench_fn prep_a, bench_fn run_a, bench_fn run_b, void *arg, int min_reps, double *best_a,
                      double *best_b) {
    double total = 0.0;
    int rep;
    *best_a = *best_b = 1e300;
    if (prep_a) prep_a(arg);
    run_a(arg);
    run_b(arg);
    for (rep = 0; rep < min_reps || (total < 0.5 && rep < 50); rep++) {
        double t0, dt;
        t0 = now_s();
        run_b(arg);
        dt = now_s() - t0;
        total += dt;
        if (dt < *best_b) *best_b = dt;
        if (prep_a) prep_a(arg);
        t0 = now_s();
        run_a(arg);
        dt = now_s() - t0;
        total += dt;
        if (dt < *best_a) *best_a = dt;
    }
}

/* bench_peak: the FMA peak on `threads` threads, printed as a JSON line */
static double bench_peak(peak_isa isa, int threads) {
    double g = peak_gflops(isa, threads);
    printf("{\"bench\":\"peak\",\"isa\":\"%s\",\"threads\":%d,\"gflops\":%.2f}\n", isa_names[isa], threads, g);
    fflush(stdout);
    return g;
}

/* ============================================================================
   gemm: sft_matmul against cblas_sgemm */

typedef struct { const char *name; int64_t in, out; } layer_desc;
static const layer_desc layers[] = {
    {"q_proj", 576, 576},      /* also o_proj */
    {"k_proj", 576, 192},      /* also v_proj */
    {"gate_proj", 576, 1536},  /* also up_proj */
    {"down_proj", 1536, 576},
    {"lm_head", 576, 49152},
};
#define N_LAYERS ((int)(sizeof layers / sizeof layers[0]))

enum { ORIENT_FWD, ORIENT_BWD_INPUT, ORIENT_BWD_WEIGHT, N_ORIENT };
static const char *const orient_names[] = {"fwd", "bwd_input", "bwd_weight"};

typedef struct {
    sft_context *ctx;
    /* sft_matmul(ctx, a, b, ta, tb, &out) */
    sft_tensor *a, *b, *out;
    int ta, tb;
    /* cblas_sgemm(RowMajor, tA, tB, m, n, k, 1, A, lda, B, ldb, 0, C, ldc) */
    int64_t m, n, k, lda, ldb;
    float *c;
} gemm_case;

static void gemm_sft_prep(void *arg) { sft_step_begin(((gemm_case *)arg)->ctx); }

static void gemm_sft_run(void *arg) {
    gemm_case *g = (gemm_case *)arg;
    check(sft_matmul(g->ctx, g->a, g->b, g->ta, g->tb, &g->out), "sft_matmul");
}

static void gemm_blas_run(void *arg) {
    gemm_case *g = (gemm_case *)arg;
    cblas_sgemm(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans, g->tb ? CblasTrans : CblasNoTrans, (int)g->m,
                (int)g->n, (int)g->k, 1.0f, (const float *)g->a->data, (int)g->lda, (const float *)g->b->data,
                (int)g->ldb, 0.0f, g->c, (int)g->n);
}

/* The largest |sft - blas| relative to the largest |blas|. */
static double gemm_rel_err(const gemm_case *g) {
    const float *y = (const float *)g->out->data;
    int64_t i, n = g->m * g->n;
    double maxd = 0.0, maxr = 0.0;
    for (i = 0; i < n; i++) {
        double d = fabs((double)y[i] - (double)g->c[i]), r = fabs((double)g->c[i]);
        if (!(d <= maxd)) maxd = d; /* NaN counts as a mismatch */
        if (r > maxr) maxr = r;
    }
    return maxr > 0.0 ? maxd / maxr : maxd;
}

typedef struct {
    sft_context *ctx;
    int threads, quick, full, mismatches;
    const char *only;     /* run only this bench family (NULL = all) */
    double peak;
} bench_state;

/* One layer at one token count: x [t, in], W [out, in], dy [t, out]. */
static void bench_gemm_layer(bench_state *st, int64_t tokens, const layer_desc *L) {
    int64_t xs[2], ws[2], ds[2], cmax;
    sft_tensor *x, *w, *dy;
    float *c;
    double fwd_estimate = 0.0;
    int o;
    xs[0] = tokens; xs[1] = L->in;
    ws[0] = L->out; ws[1] = L->in;
    ds[0] = tokens; ds[1] = L->out;
    x = random_tensor(st->ctx, 2, xs, 1000u + (uint64_t)tokens + (uint64_t)L->in);
    w = random_tensor(st->ctx, 2, ws, 2000u + (uint64_t)L->out * 7u + (uint64_t)L->in);
    dy = random_tensor(st->ctx, 2, ds, 3000u + (uint64_t)tokens + (uint64_t)L->out);
    cmax = tokens * L->out;
    if (tokens * L->in > cmax) cmax = tokens * L->in;
    if (L->out * L->in > cmax) cmax = L->out * L->in;
    c = (float *)xmalloc((size_t)cmax * sizeof(float));

    for (o = 0; o < N_ORIENT; o++) {
        gemm_case g;
        double t_sft, t_blas, flops, gf, ref_gf, err;
        memset(&g, 0, sizeof g);
        g.ctx = st->ctx; g.c = c;
        if (o == ORIENT_FWD) {          /* y[t,out] = x[t,in] . W[out,in]^T */
            g.a = x; g.b = w; g.ta = 0; g.tb = 1;
            g.m = tokens; g.n = L->out; g.k = L->in; g.lda = L->in; g.ldb = L->in;
        } else if (o == ORIENT_BWD_INPUT) { /* dx[t,in] = dy[t,out] . W[out,in] */
            g.a = dy; g.b = w; g.ta = 0; g.tb = 0;
            g.m = tokens; g.n = L->in; g.k = L->out; g.lda = L->out; g.ldb = L->in;
        } else {                        /* dW[out,in] = dy[t,out]^T . x[t,in] */
            g.a = dy; g.b = x; g.ta = 1; g.tb = 0;
            g.m = L->out; g.n = L->in; g.k = tokens; g.lda = L->out; g.ldb = L->in;
        }
        if (o != ORIENT_FWD && fwd_estimate > 20.0 && !st->full) {
            fprintf(stderr, "bench: skipping gemm %s %s at %lld tokens: about %.0f s for both backward cases "
                    "(--full runs it)\n", L->name, orient_names[o], (long long)tokens, fwd_estimate);
            continue;
        }
        fprintf(stderr, "bench: gemm %s %s tokens=%lld (m=%lld n=%lld k=%lld)\n", L->name, orient_names[o],
                (long long)tokens, (long long)g.m, (long long)g.n, (long long)g.k);
        /* sft runs last, so g.out holds its result (until the next sft_step_begin) */
        time_pair(gemm_sft_prep, gemm_sft_run, gemm_blas_run, &g, 3, &t_sft, &t_blas);
        if (g.out->ndim != 2 || g.out->shape[0] != g.m || g.out->shape[1] != g.n) {
            fprintf(stderr, "bench: sft_matmul %s %s gave shape [%lld, %lld], expected [%lld, %lld]\n", L->name,
                    orient_names[o], (long long)g.out->shape[0], (long long)g.out->shape[1], (long long)g.m,
                    (long long)g.n);
            exit(1);
        }
        err = gemm_rel_err(&g);
        if (!(err < 1e-4)) {
            fprintf(stderr, "bench: MISMATCH gemm %s %s tokens=%lld: max |sft - openblas| / max |openblas| = %g\n",
                    L->name, orient_names[o], (long long)tokens, err);
            st->mismatches++;
        }
        if (o == ORIENT_FWD && L->out > 10000 && tokens > 512)
            fwd_estimate = 2.0 * 4.0 * (t_sft + t_blas); /* warm-up + 3 runs of each, two cases */
        flops = 2.0 * (double)g.m * (double)g.n * (double)g.k;
        gf = flops / t_sft / 1e9;
        ref_gf = flops / t_blas / 1e9;
        printf("{\"bench\":\"gemm\",\"path\":\"%s\",\"threads\":%d,\"tokens\":%lld,\"layer\":\"%s\",\"orient\":\"%s\","
               "\"m\":%lld,\"n\":%lld,\"k\":%lld,\"gflops\":%.2f,\"ref\":\"openblas\",\"ref_gflops\":%.2f,"
               "\"ratio\":%.4f,\"peak_gflops\":%.2f}\n",
               sft_cpu_path_name(sft_cpu_path_get(st->ctx)), st->threads, (long long)tokens, L->name, orient_names[o],
               (long long)g.m, (long long)g.n, (long long)g.k, gf, ref_gf, gf / ref_gf, st->peak);
        fflush(stdout);
    }
    sft_step_begin(st->ctx);
    free(c);
    sft_tensor_destroy(x);
    sft_tensor_destroy(w);
    sft_tensor_destroy(dy);
}

/* ============================================================================
   linear4bit: the NF4 layer's GEMMs (4-bit weight decoded into the packed
   panels) against the same GEMMs on a dense f32 weight, same driver */

typedef struct {
    sft_context *ctx;
    sft__wref q, dense;
    int trans;
    int64_t m;
    const float *a;
    float *c4, *c32;
} q4_case;

static void q4_run(void *arg) {
    q4_case *g = (q4_case *)arg;
    int64_t lda = g->trans ? g->q.K : g->q.N;
    check(sft__gemm_w(g->ctx, g->m, sft__mat_of(g->a, lda, 1), &g->q, g->trans, g->c4, g->trans ? g->q.N : g->q.K, 0), "gemm_w nf4");
}

static void q4_dense_run(void *arg) {
    q4_case *g = (q4_case *)arg;
    int64_t lda = g->trans ? g->q.K : g->q.N;
    check(sft__gemm_w(g->ctx, g->m, sft__mat_of(g->a, lda, 1), &g->dense, g->trans, g->c32, g->trans ? g->q.N : g->q.K, 0),
          "gemm_w f32");
}

static void bench_linear4bit_layer(bench_state *st, int64_t tokens, const layer_desc *L) {
    int64_t ws[2], xs[2], ds[2];
    sft_tensor *w, *wdq = NULL, *x, *dy;
    sft_qweight *q = NULL;
    sft_quant_desc qd;
    int o;
    ws[0] = L->out; ws[1] = L->in; xs[0] = tokens; xs[1] = L->in; ds[0] = tokens; ds[1] = L->out;
    w = random_tensor(st->ctx, 2, ws, 4000u + (uint64_t)L->out);
    x = random_tensor(st->ctx, 2, xs, 5000u + (uint64_t)tokens);
    dy = random_tensor(st->ctx, 2, ds, 6000u + (uint64_t)tokens);
    qd.type = SFT_QUANT_NF4; qd.blocksize = 64; qd.double_quant = 1;
    check(sft_quantize(st->ctx, w, &qd, &q), "sft_quantize");
    check(sft_dequantize(st->ctx, q, &wdq), "sft_dequantize");
    for (o = 0; o < 2; o++) {
        q4_case g;
        double t4, t32, flops;
        int64_t n_out = o == 0 ? tokens * L->out : tokens * L->in;
        memset(&g, 0, sizeof g);
        g.ctx = st->ctx; g.trans = o == 0; g.m = tokens;
        g.q.q = q; g.q.N = L->out; g.q.K = L->in;
        g.dense.w = wdq; g.dense.N = L->out; g.dense.K = L->in;
        g.a = (const float *)(o == 0 ? x->data : dy->data);
        g.c4 = (float *)xmalloc((size_t)n_out * sizeof(float));
        g.c32 = (float *)xmalloc((size_t)n_out * sizeof(float));
        fprintf(stderr, "bench: linear4bit %s %s tokens=%lld\n", L->name, o == 0 ? "fwd" : "bwd_input", (long long)tokens);
        time_pair(NULL, q4_run, q4_dense_run, &g, 3, &t4, &t32);
        if (memcmp(g.c4, g.c32, (size_t)n_out * sizeof(float)) != 0) {
            fprintf(stderr, "bench: MISMATCH linear4bit %s: the NF4 GEMM differs from the dense one\n", L->name);
            st->mismatches++;
        }
        flops = 2.0 * (double)tokens * (double)L->in * (double)L->out;
        printf("{\"bench\":\"linear4bit\",\"path\":\"%s\",\"threads\":%d,\"tokens\":%lld,\"layer\":\"%s\",\"orient\":\"%s\","
               "\"quant\":\"nf4\",\"blocksize\":64,\"gflops\":%.2f,\"ref\":\"dense_f32\",\"ref_gflops\":%.2f,\"ratio\":%.4f}\n",
               sft_cpu_path_name(sft_cpu_path_get(st->ctx)), st->threads, (long long)tokens, L->name,
               o == 0 ? "fwd" : "bwd_input", flops / t4 / 1e9, flops / t32 / 1e9, t32 / t4);
        fflush(stdout);
        free(g.c4); free(g.c32);
    }
    sft_qweight_destroy(q);
    sft_tensor_destroy(w); sft_tensor_destroy(wdq); sft_tensor_destroy(x); sft_tensor_destroy(dy);
}

/* ============================================================================
   attention: forward, and forward + backward through a scalar loss */

typedef struct {
    sft_context *ctx;
    sft_tensor *q, *k, *v, *r;   /* r: [1, n], the loss weights */
} attn_case;

static void attn_prep(void *arg) {
    attn_case *a = (attn_case *)arg;
    sft_step_begin(a->ctx);
    sft_tensor_zero_grad(a->q);
    sft_tensor_zero_grad(a->k);
    sft_tensor_zero_grad(a->v);
}

static sft_tensor *attn_forward(attn_case *a) {
    sft_tensor *o = NULL;
    check(sft_attention(a->ctx, a->q, a->k, a->v, NULL, 0.0f, &o), "sft_attention");
    return o;
}

static void attn_fwd_run(void *arg) { (void)attn_forward((attn_case *)arg); }

static void attn_fwd_bwd_run(void *arg) {
    attn_case *a = (attn_case *)arg;
    sft_tensor *o = attn_forward(a), *flat = NULL, *loss = NULL;
    int64_t fs[2];
    fs[0] = 1; fs[1] = sft_tensor_numel(o);
    check(sft_reshape(a->ctx, o, 2, fs, &flat), "sft_reshape");
    check(sft_matmul(a->ctx, flat, a->r, 0, 1, &loss), "sft_matmul (loss)");
    check(sft_backward(a->ctx, loss), "sft_backward");
}

static void bench_attention(bench_state *st, int64_t T) {
    const int64_t H = 9, HKV = 3, D = 64;
    int64_t qs[4], ks[4], rs[2];
    attn_case a;
    double fwd, fwd_bwd;
    qs[0] = 1; qs[1] = T; qs[2] = H; qs[3] = D;
    ks[0] = 1; ks[1] = T; ks[2] = HKV; ks[3] = D;
    rs[0] = 1; rs[1] = T * H * D;
    fprintf(stderr, "bench: attention T=%lld\n", (long long)T);
    a.ctx = st->ctx;
    a.q = random_tensor(st->ctx, 4, qs, 4000u + (uint64_t)T);
    a.k = random_tensor(st->ctx, 4, ks, 5000u + (uint64_t)T);
    a.v = random_tensor(st->ctx, 4, ks, 6000u + (uint64_t)T);
    a.r = random_tensor(st->ctx, 2, rs, 7000u + (uint64_t)T);
    sft_tensor_set_requires_grad(a.q, 1);
    sft_tensor_set_requires_grad(a.k, 1);
    sft_tensor_set_requires_grad(a.v, 1);
    fwd = time_best(attn_prep, attn_fwd_run, &a, 3);
    fwd_bwd = time_best(attn_prep, attn_fwd_bwd_run, &a, 3);
    printf("{\"bench\":\"attention\",\"path\":\"%s\",\"threads\":%d,\"T\":%lld,\"heads\":%lld,\"kv_heads\":%lld,"
           "\"head_dim\":%lld,\"fwd_ms\":%.3f,\"fwd_bwd_ms\":%.3f,\"tokens_per_s\":%.1f}\n",
           sft_cpu_path_name(sft_cpu_path_get(st->ctx)), st->threads, (long long)T, (long long)H, (long long)HKV,
           (long long)D, fwd * 1e3, fwd_bwd * 1e3, (double)T / fwd_bwd);
    fflush(stdout);
    sft_step_begin(st->ctx);
    sft_tensor_destroy(a.q);
    sft_tensor_destroy(a.k);
    sft_tensor_destroy(a.v);
    sft_tensor_destroy(a.r);
}

/* ============================================================================
   main */

/* ---- tokenizer: encode throughput on one thread -------------------------

   The text: about 4 MB of English-like prose made of words drawn from a
   Zipf-like distribution over a fixed word list, with punctuation, digits and
   line breaks, so that the word cache sees realistic repetition. It is written
   to build/bench_text.txt, where tools/bench_tokenizer.py (run by make bench when
   the tools environment exists) measures the Python tokenizers library on the
   very same bytes. */

static const char *const bench_words[] = {
    "the", "of", "and", "to", "a", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on", "not", "he",
    "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had", "they", "you", "were", "their", "one",
    "all", "we", "can", "her", "has", "there", "been", "if", "more", "when", "will", "would", "who", "so", "no", "model",
    "training", "language", "data", "learning", "adapter", "weights", "gradient", "tokenizer", "sequence", "attention",
    "quantization", "fine-tuning", "throughput", "memory", "evaluation", "checkpoint", "optimizer", "schedule", "batch",
    "Hugging", "Face", "Llama", "Mistral", "Qwen", "SmolLM", "don't", "it's", "we'll", "they're", "I'm", "naive", "cafe",
    "mathematics", "experiment", "parameters", "performance", "significantly", "understanding", "representation"};

static size_t bench_make_text(char *buf, size_t cap) {
    uint64_t state = 12345;
    size_t n = 0, nw = sizeof bench_words / sizeof bench_words[0];
    int in_sentence = 0;
    while (n + 64 < cap) {
        uint64_t r;
        size_t w;
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        r = state >> 33;
        w = (size_t)((double)nw * ((double)(r % 10007) / 10007.0) * ((double)(r % 10007) / 10007.0));   /* skewed */
        if (r % 97 == 0) n += (size_t)snprintf(buf + n, cap - n, " %u", (unsigned)(r % 100000));
        n += (size_t)snprintf(buf + n, cap - n, in_sentence ? " %s" : "%s", bench_words[w]);
        in_sentence = 1;
        if (r % 13 == 0) { n += (size_t)snprintf(buf + n, cap - n, r % 5 == 0 ? ".\n" : ". "); in_sentence = 0; }
        else if (r % 11 == 0) n += (size_t)snprintf(buf + n, cap - n, ",");
    }
    return n;
}

static void bench_tokenizer(const char *family) {
    sft_context *ctx;
    sft_tokenizer *tok;
    char dir[256];
    size_t cap = (size_t)4 << 20, n, n_ids = 0;
    char *text = (char *)xmalloc(cap);
    int32_t *ids = NULL;
    double best = 1e30;
    int rep;
    FILE *f;
    n = bench_make_text(text, cap);
    f = fopen("build/bench_text.txt", "wb");
    if (f) { fwrite(text, 1, n, f); fclose(f); }
    check(sft_context_create(NULL, &ctx), "sft_context_create");
    snprintf(dir, sizeof dir, "tests/fixtures/tokenizers/%s", family);
    check(sft_tokenizer_load(ctx, dir, &tok), "sft_tokenizer_load");
    for (rep = 0; rep < 4; rep++) {             /* the first run fills the word cache, as a real data pass does */
        double t0 = now_s();
        check(sft_tokenizer_encode(tok, text, n, 0, &ids, &n_ids), "sft_tokenizer_encode");
        t0 = now_s() - t0;
        if (rep > 0 && t0 < best) best = t0;
        if (rep == 0) printf("{\"bench\":\"tokenizer\",\"family\":\"%s\",\"threads\":1,\"bytes\":%zu,\"ids\":%zu,\"cold_mb_per_s\":%.2f,",
                             family, n, n_ids, (double)n / t0 / 1e6);
        sft_free(ctx, ids);
    }
    printf("\"mb_per_s\":%.2f}\n", (double)n / best / 1e6);
    fflush(stdout);
    sft_tokenizer_destroy(tok);
    sft_context_destroy(ctx);
    free(text);
}

static void usage(void) {
    fprintf(stderr, "usage: bench [threads] [portable|avx2|avx512] [--quick] [--full] [--only gemm|linear4bit|attention|tokenizer]\n");
    exit(1);
}

int main(int argc, char **argv) {
    static const int64_t token_counts[] = {512, 2048};
    bench_state st;
    sft_context_desc d;
    const char *path_name = NULL;
    int i, li, ti, n_tokens, positional = 0;
    peak_isa isa;

    memset(&st, 0, sizeof st);
    st.threads = 2;
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) st.quick = 1;
        else if (strcmp(argv[i], "--full") == 0) st.full = 1;
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) st.only = argv[++i];
        else if (argv[i][0] == '-') usage();
        else if (positional == 0) {
            char *end;
            long t = strtol(argv[i], &end, 10);
            if (*end || t < 1 || t > 256) { fprintf(stderr, "bench: threads must be 1..256, not %s\n", argv[i]); exit(1); }
            st.threads = (int)t;
            positional++;
        } else if (positional == 1) {
            path_name = argv[i];
            positional++;
        } else usage();
    }
    if (getenv("OPENBLAS_CORETYPE") || getenv("OPENBLAS_L2_SIZE"))
        fprintf(stderr, "bench: warning: OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE are set and slow OpenBLAS; run with "
                        "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE\n");

    memset(&d, 0, sizeof d);
    d.threads = st.threads;
    check(sft_context_create(&d, &st.ctx), "sft_context_create");
    if (path_name) {
        int p;
        for (p = SFT_CPU_PORTABLE; p < SFT_CPU_PATH_COUNT; p++)
            if (strcmp(path_name, sft_cpu_path_name((sft_cpu_path)p)) == 0) break;
        if (p == SFT_CPU_PATH_COUNT) {
            fprintf(stderr, "bench: unknown cpu path '%s' (portable, avx2, avx512)\n", path_name);
            sft_context_destroy(st.ctx);
            return 1;
        }
        check(sft_cpu_path_set(st.ctx, (sft_cpu_path)p), "sft_cpu_path_set");
    }
    openblas_set_num_threads(st.threads);
    fprintf(stderr, "bench: %d thread%s, sft cpu path %s%s\n", st.threads, st.threads == 1 ? "" : "s",
            sft_cpu_path_name(sft_cpu_path_get(st.ctx)), st.quick ? ", quick" : "");

    isa = best_isa();
    if (st.threads > 1) bench_peak(isa, 1);
    st.peak = bench_peak(isa, st.threads);

#define RUNS(family) (!st.only || strcmp(st.only, family) == 0)
    n_tokens = st.quick ? 1 : (int)(sizeof token_counts / sizeof token_counts[0]);
    for (ti = 0; RUNS("gemm") && ti < n_tokens; ti++)
        for (li = 0; li < N_LAYERS; li++) bench_gemm_layer(&st, token_counts[ti], &layers[li]);
    for (ti = 0; RUNS("linear4bit") && ti < n_tokens; ti++)
        for (li = 0; li < N_LAYERS - 1; li++) bench_linear4bit_layer(&st, token_counts[ti], &layers[li]);   /* lm_head stays dense */
    for (ti = 0; RUNS("attention") && ti < n_tokens; ti++) bench_attention(&st, token_counts[ti]);
    if (RUNS("tokenizer")) { bench_tokenizer("llama3"); bench_tokenizer("gpt2"); }
#undef RUNS

    sft_context_destroy(st.ctx);
    if (st.mismatches) {
        fprintf(stderr, "bench: %d GEMM result%s differ from OpenBLAS\n", st.mismatches, st.mismatches == 1 ? "" : "s");
        return 2;
    }
    return 0;
}
