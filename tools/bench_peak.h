/* bench_peak.h - the machine's f32 FMA peak, for the benchmarks (tools/bench.c,
   tools/bench_e2e.c): independent FMA chains on every thread, as many as the
   FMA units need to stay busy, on the widest vectors the CPU has. Include after
   <pthread.h>, <stdio.h>, <stdlib.h> and <time.h>. */
#ifndef BENCH_PEAK_H
#define BENCH_PEAK_H

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#  define BENCH_X86 1
#  include <immintrin.h>
#else
#  define BENCH_X86 0
#endif

#define PEAK_CHAINS 12

static volatile float peak_sink;

#if BENCH_X86
__attribute__((target("avx2,fma"))) static float peak_avx2(long iters) {
    __m256 b = _mm256_set1_ps(0.99990f), c = _mm256_set1_ps(1e-4f);
    __m256 a0 = _mm256_set1_ps(0.00f), a1 = _mm256_set1_ps(0.01f), a2 = _mm256_set1_ps(0.02f);
    __m256 a3 = _mm256_set1_ps(0.03f), a4 = _mm256_set1_ps(0.04f), a5 = _mm256_set1_ps(0.05f);
    __m256 a6 = _mm256_set1_ps(0.06f), a7 = _mm256_set1_ps(0.07f), a8 = _mm256_set1_ps(0.08f);
    __m256 a9 = _mm256_set1_ps(0.09f), a10 = _mm256_set1_ps(0.10f), a11 = _mm256_set1_ps(0.11f);
    float out[8];
    long i;
    for (i = 0; i < iters; i++) {
        a0 = _mm256_fmadd_ps(a0, b, c); a1 = _mm256_fmadd_ps(a1, b, c); a2 = _mm256_fmadd_ps(a2, b, c);
        a3 = _mm256_fmadd_ps(a3, b, c); a4 = _mm256_fmadd_ps(a4, b, c); a5 = _mm256_fmadd_ps(a5, b, c);
        a6 = _mm256_fmadd_ps(a6, b, c); a7 = _mm256_fmadd_ps(a7, b, c); a8 = _mm256_fmadd_ps(a8, b, c);
        a9 = _mm256_fmadd_ps(a9, b, c); a10 = _mm256_fmadd_ps(a10, b, c); a11 = _mm256_fmadd_ps(a11, b, c);
    }
    a0 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                       _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    a0 = _mm256_add_ps(a0, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    _mm256_storeu_ps(out, a0);
    return out[0] + out[7];
}

__attribute__((target("avx512f"))) static float peak_avx512(long iters) {
    __m512 b = _mm512_set1_ps(0.99990f), c = _mm512_set1_ps(1e-4f);
    __m512 a0 = _mm512_set1_ps(0.00f), a1 = _mm512_set1_ps(0.01f), a2 = _mm512_set1_ps(0.02f);
    __m512 a3 = _mm512_set1_ps(0.03f), a4 = _mm512_set1_ps(0.04f), a5 = _mm512_set1_ps(0.05f);
    __m512 a6 = _mm512_set1_ps(0.06f), a7 = _mm512_set1_ps(0.07f), a8 = _mm512_set1_ps(0.08f);
    __m512 a9 = _mm512_set1_ps(0.09f), a10 = _mm512_set1_ps(0.10f), a11 = _mm512_set1_ps(0.11f);
    float out[16];
    long i;
    for (i = 0; i < iters; i++) {
        a0 = _mm512_fmadd_ps(a0, b, c); a1 = _mm512_fmadd_ps(a1, b, c); a2 = _mm512_fmadd_ps(a2, b, c);
        a3 = _mm512_fmadd_ps(a3, b, c); a4 = _mm512_fmadd_ps(a4, b, c); a5 = _mm512_fmadd_ps(a5, b, c);
        a6 = _mm512_fmadd_ps(a6, b, c); a7 = _mm512_fmadd_ps(a7, b, c); a8 = _mm512_fmadd_ps(a8, b, c);
        a9 = _mm512_fmadd_ps(a9, b, c); a10 = _mm512_fmadd_ps(a10, b, c); a11 = _mm512_fmadd_ps(a11, b, c);
    }
    a0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                       _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    a0 = _mm512_add_ps(a0, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    _mm512_storeu_ps(out, a0);
    return out[0] + out[15];
}
#endif

/* Scalar chains (a * b + c: two flops each, whether or not the compiler fuses). */
static float peak_scalar(long iters) {
    float b = 0.99990f, c = 1e-4f;
    float a0 = 0.00f, a1 = 0.01f, a2 = 0.02f, a3 = 0.03f, a4 = 0.04f, a5 = 0.05f;
    float a6 = 0.06f, a7 = 0.07f, a8 = 0.08f, a9 = 0.09f, a10 = 0.10f, a11 = 0.11f;
    long i;
    for (i = 0; i < iters; i++) {
        a0 = a0 * b + c; a1 = a1 * b + c; a2 = a2 * b + c; a3 = a3 * b + c;
        a4 = a4 * b + c; a5 = a5 * b + c; a6 = a6 * b + c; a7 = a7 * b + c;
        a8 = a8 * b + c; a9 = a9 * b + c; a10 = a10 * b + c; a11 = a11 * b + c;
    }
    return a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
}

typedef enum { ISA_SCALAR, ISA_AVX2, ISA_AVX512 } peak_isa;
static const char *const isa_names[] = {"scalar", "avx2", "avx512"};
static const int isa_lanes[] = {1, 8, 16};

typedef struct { peak_isa isa; long iters; float result; } peak_job;

static void *peak_thread(void *arg) {
    peak_job *j = (peak_job *)arg;
    switch (j->isa) {
#if BENCH_X86
    case ISA_AVX512: j->result = peak_avx512(j->iters); break;
    case ISA_AVX2: j->result = peak_avx2(j->iters); break;
#endif
    default: j->result = peak_scalar(j->iters); break;
    }
    return NULL;
}

typedef struct { peak_isa isa; int threads; long iters; } peak_run_arg;

/* All threads at once: threads - 1 pthreads plus the calling thread. */
static void peak_run(void *arg) {
    const peak_run_arg *a = (const peak_run_arg *)arg;
    pthread_t tid[256];
    peak_job jobs[256];
    int i, started = 0;
    float sum = 0.0f;
    for (i = 0; i < a->threads; i++) { jobs[i].isa = a->isa; jobs[i].iters = a->iters; jobs[i].result = 0.0f; }
    for (i = 1; i < a->threads; i++) {
        if (pthread_create(&tid[i], NULL, peak_thread, &jobs[i]) != 0) {
            fprintf(stderr, "bench: pthread_create failed\n");
            exit(1);
        }
        started = i;
    }
    peak_thread(&jobs[0]);
    for (i = 1; i <= started; i++) pthread_join(tid[i], NULL);
    for (i = 0; i < a->threads; i++) sum += jobs[i].result;
    peak_sink = sum;
}

static peak_isa best_isa(void) {
#if BENCH_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return ISA_AVX2;
#endif
    return ISA_SCALAR;
}


static double peak_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* peak_gflops: the best of 5 runs of the chains on `threads` threads, GFLOP/s */
static double peak_gflops(peak_isa isa, int threads) {
    peak_run_arg a;
    double flops, best = 1e300;
    int rep;
    a.isa = isa; a.threads = threads;
    a.iters = isa == ISA_SCALAR ? 4000000L : isa == ISA_AVX2 ? 20000000L : 10000000L;
    flops = 2.0 * PEAK_CHAINS * isa_lanes[isa] * (double)a.iters * threads;
    peak_run(&a);
    for (rep = 0; rep < 5; rep++) {
        double t0 = peak_now_s(), dt;
        peak_run(&a);
        dt = peak_now_s() - t0;
        if (dt < best) best = dt;
    }
    return flops / best / 1e9;
}

#endif
