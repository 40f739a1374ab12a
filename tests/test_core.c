/* test_core.c - statuses and errors, contexts and their allocator accounting,
   atomic file writes, the counter-based RNG, half-precision conversions and CPU
   path selection. */
#include "test.h"
#include <unistd.h>

static void status_names_cover_every_status(void) {
    int s;
    CHECK(strcmp(sft_status_str(SFT_OK), "SFT_OK") == 0);
    CHECK(strcmp(sft_status_str(SFT_ERR_SHAPE), "SFT_ERR_SHAPE") == 0);
    for (s = 0; s < SFT_STATUS_COUNT; s++) CHECK(strncmp(sft_status_str((sft_status)s), "SFT_", 4) == 0);
    CHECK(strcmp(sft_status_str((sft_status)999), "SFT_ERR_UNKNOWN") == 0);
}

static void failing_call_sets_a_message_naming_the_op(void) {
    sft_context *ctx = NULL;
    sft_clear_error();
    CHECK(sft_last_error()[0] == 0);
    CHECK_STATUS(sft_context_create(NULL, NULL), SFT_ERR_ARG);
    CHECK_ERROR_MENTIONS("sft_context_create");
    (void)ctx;
}

static void context_rejects_impossible_settings(void) {
    sft_context *ctx = (sft_context *)1;
    sft_context_desc d;
    memset(&d, 0, sizeof d);
    d.threads = -1;
    CHECK_STATUS(sft_context_create(&d, &ctx), SFT_ERR_ARG);
    CHECK(ctx == NULL);
    CHECK_ERROR_MENTIONS("threads = -1");
    d.threads = 5000;
    CHECK_STATUS(sft_context_create(&d, &ctx), SFT_ERR_ARG);
    d.threads = 1;
    d.allocator.alloc = NULL;
    d.allocator.free = (void (*)(void *, void *))1;
    CHECK_STATUS(sft_context_create(&d, &ctx), SFT_ERR_ARG);
    CHECK_ERROR_MENTIONS("allocator");
}

static void context_defaults_to_one_inline_thread(void) {
    sft_context *ctx;
    CHECK_OK(sft_context_create(NULL, &ctx));
    CHECK(sft_context_threads(ctx) == 1);
    sft_context_destroy(ctx);
    sft_context_destroy(NULL);
}

static void context_with_more_threads_than_cores_works(void) {
    sft_context *ctx;
    sft_context_desc d;
    memset(&d, 0, sizeof d);
    sft_tensor *a, *b, *c;
    int64_t sa[2] = {37, 19}, sb[2] = {19, 23};
    d.threads = 8;
    CHECK_OK(sft_context_create(&d, &ctx));
    CHECK(sft_context_threads(ctx) == 8);
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, 2, sa, &a));
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, 2, sb, &b));
    ((float *)a->data)[0] = 2.0f;
    ((float *)b->data)[0] = 3.0f;
    CHECK_OK(sft_matmul(ctx, a, b, 0, 0, &c));
    CHECK(((float *)c->data)[0] == 6.0f);
    sft_tensor_destroy(a);
    sft_tensor_destroy(b);
    sft_context_destroy(ctx);
}

typedef struct t_counting_alloc { long allocs, frees; size_t live; } t_counting_alloc;
static void *t_count_alloc(size_t size, void *user) {
    t_counting_alloc *c = (t_counting_alloc *)user;
    c->allocs++;
    (void)size;
    return malloc(size);
}
static void t_count_free(void *p, void *user) {
    t_counting_alloc *c = (t_counting_alloc *)user;
    c->frees++;
    free(p);
}

static void host_allocator_receives_every_context_allocation(void) {
    t_counting_alloc counts = {0, 0, 0};
    sft_context_desc d;
    memset(&d, 0, sizeof d);
    sft_context *ctx;
    sft_tensor *t;
    int64_t shape[2] = {8, 8};
    d.allocator.alloc = t_count_alloc;
    d.allocator.free = t_count_free;
    d.allocator.user = &counts;
    d.threads = 2;
    CHECK_OK(sft_context_create(&d, &ctx));
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, 2, shape, &t));
    CHECK(counts.allocs >= 3);
    sft_tensor_destroy(t);
    sft_context_destroy(ctx);
    CHECK_MSG(counts.allocs == counts.frees, "allocs %ld frees %ld", counts.allocs, counts.frees);
}

static void mem_stats_track_bytes_and_peak(void) {
    sft_context *ctx;
    sft_tensor *t;
    sft_mem_stats before, during, after;
    int64_t shape[1] = {1000};
    CHECK_OK(sft_context_create(NULL, &ctx));
    before = sft_context_mem_stats(ctx);
    CHECK_OK(sft_tensor_create(ctx, SFT_F32, 1, shape, &t));
    during = sft_context_mem_stats(ctx);
    CHECK(during.bytes_in_use >= before.bytes_in_use + 4000);
    sft_tensor_destroy(t);
    after = sft_context_mem_stats(ctx);
    CHECK(after.bytes_in_use == before.bytes_in_use);
    CHECK(after.peak_bytes >= during.bytes_in_use);
    CHECK(after.frees == after.allocs - (before.allocs - before.frees));
    sft_context_mem_reset_peak(ctx);
    CHECK(sft_context_mem_stats(ctx).peak_bytes == after.bytes_in_use);
    sft_context_destroy(ctx);
}

typedef struct t_log { int count; char last[256]; } t_log;
static void t_log_fn(sft_log_level level, const char *msg, void *user) {
    t_log *l = (t_log *)user;
    (void)level;
    l->count++;
    snprintf(l->last, sizeof l->last, "%s", msg);
}

static void log_callback_hears_the_context(void) {
    t_log log = {0, ""};
    sft_context_desc d;
    sft_context *ctx;
    memset(&d, 0, sizeof d);
    d.threads = 2;
    d.log = t_log_fn;
    d.log_user = &log;
    CHECK_OK(sft_context_create(&d, &ctx));
    CHECK(log.count == 1);
    CHECK_MSG(strstr(log.last, "2 threads") != NULL, "log said: %s", log.last);
    CHECK_OK(sft_cpu_path_set(ctx, SFT_CPU_PORTABLE));
    CHECK(log.count == 2 && strstr(log.last, "portable") != NULL);
    sft_context_destroy(ctx);
}

/* ---- files ---- */

static void t_write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static void atomic_write_then_read_round_trips(void) {
    char path[512], *data;
    size_t len;
    sft_buf parts[2];
    snprintf(path, sizeof path, "%s/a.bin", t_tmpdir());
    parts[0].data = "hello, "; parts[0].len = 7;
    parts[1].data = "world"; parts[1].len = 5;
    CHECK_OK(sft_file_write_atomic(NULL, path, parts, 2));
    CHECK_OK(sft_file_read(NULL, path, 0, &data, &len));
    CHECK(len == 12 && memcmp(data, "hello, world", 12) == 0 && data[12] == 0);
    sft_free(NULL, data);
}

typedef struct t_fault { int calls, fail_at; } t_fault;
static size_t t_faulty_write(int fd, const void *data, size_t len, void *user) {
    t_fault *f = (t_fault *)user;
    if (++f->calls == f->fail_at) return len / 2;   /* a disk that fills mid-write */
    return (size_t)write(fd, data, len);
}

static void failed_write_leaves_the_old_file_and_no_temporary(void) {
    char path[512], tmp[520], *data;
    size_t len;
    sft_context *ctx;
    sft_context_desc d;
    memset(&d, 0, sizeof d);
    t_fault fault = {0, 2};
    sft_buf parts[3];
    snprintf(path, sizeof path, "%s/keep.txt", t_tmpdir());
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    t_write_text(path, "old content");
    d.write = t_faulty_write;
    d.write_user = &fault;
    CHECK_OK(sft_context_create(&d, &ctx));
    parts[0].data = "new "; parts[0].len = 4;
    parts[1].data = "content that "; parts[1].len = 13;
    parts[2].data = "never lands"; parts[2].len = 11;
    CHECK_STATUS(sft_file_write_atomic(ctx, path, parts, 3), SFT_ERR_IO);
    CHECK_ERROR_MENTIONS("keep.txt");
    CHECK(fault.calls == 2);
    CHECK_OK(sft_file_read(NULL, path, 0, &data, &len));
    CHECK(len == 11 && memcmp(data, "old content", 11) == 0);
    sft_free(NULL, data);
    CHECK(access(tmp, F_OK) != 0);
    sft_context_destroy(ctx);
}

static void write_into_missing_directory_fails_naming_the_path(void) {
    sft_buf part;
    char path[512];
    part.data = "x"; part.len = 1;
    snprintf(path, sizeof path, "%s/no/such/dir/f.bin", t_tmpdir());
    CHECK_STATUS(sft_file_write_atomic(NULL, path, &part, 1), SFT_ERR_IO);
    CHECK_ERROR_MENTIONS("no/such/dir");
}

static void read_of_missing_or_oversized_file_fails(void) {
    char path[512], *data = (char *)1;
    size_t len = 7;
    snprintf(path, sizeof path, "%s/missing", t_tmpdir());
    CHECK_STATUS(sft_file_read(NULL, path, 0, &data, &len), SFT_ERR_IO);
    CHECK(data == NULL && len == 0);
    CHECK_ERROR_MENTIONS("missing");
    snprintf(path, sizeof path, "%s/big.txt", t_tmpdir());
    t_write_text(path, "0123456789");
    CHECK_STATUS(sft_file_read(NULL, path, 5, &data, &len), SFT_ERR_LIMIT);
    CHECK_STATUS(sft_file_read(NULL, t_tmpdir(), 0, &data, &len), SFT_ERR_IO);  /* a directory */
}

/* ---- random numbers ---- */

static void philox_matches_the_random123_known_answers(void) {
    uint32_t r[4];
    sft_philox(0, 0, 0, r);
    CHECK(r[0] == 0x6627e8d5u && r[1] == 0xe169c58du && r[2] == 0xbc57ac4cu && r[3] == 0x9b00dbd8u);
    sft_philox(~0ull, ~0ull, ~0ull, r);
    CHECK(r[0] == 0x408f276du && r[1] == 0x41c83b0eu && r[2] == 0xa20bc7c6u && r[3] == 0x6d5451fdu);
    sft_philox(0x299f31d0a4093822ull, 0x0370734413198a2eull, 0x85a308d3243f6a88ull, r);
    CHECK(r[0] == 0xd16cfe09u && r[1] == 0x94fdccebu && r[2] == 0x5001e420u && r[3] == 0x24126ea1u);
}

static void rng_uniform_is_in_unit_interval_and_well_spread(void) {
    double sum = 0.0;
    int i, below_half = 0;
    uint64_t key = sft_rng_key(42, 1, 2, 3);
    for (i = 0; i < 100000; i++) {
        float u = sft_rng_uniform(key, (uint64_t)i);
        CHECK(u >= 0.0f && u < 1.0f);
        sum += u;
        below_half += u < 0.5f;
    }
    CHECK(fabs(sum / 100000 - 0.5) < 0.005);
    CHECK(abs(below_half - 50000) < 1000);
    CHECK(sft_rng_uniform(key, 7) == sft_rng_uniform(key, 7));
    CHECK(sft_rng_key(42, 1, 2, 3) != sft_rng_key(42, 1, 2, 4));
    CHECK(sft_rng_key(42, 1, 2, 3) != sft_rng_key(43, 1, 2, 3));
}

/* ---- half precision ---- */

static void f16_round_trips_every_finite_value(void) {
    uint32_t h;
    int bad = 0;
    for (h = 0; h < 65536; h++) {
        float f = sft_f16_to_f32((uint16_t)h);
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) { bad += !isnan(f); continue; }
        bad += sft_f32_to_f16(f) != (uint16_t)h;
    }
    CHECK_MSG(bad == 0, "%d half values did not round-trip", bad);
    CHECK(sft_f16_to_f32(0x3c00) == 1.0f && sft_f16_to_f32(0xc000) == -2.0f);
    CHECK(sft_f16_to_f32(0x0001) == ldexpf(1.0f, -24));     /* smallest subnormal */
    CHECK(sft_f16_to_f32(0x7bff) == 65504.0f);
}

static void f32_to_f16_rounds_to_nearest_even(void) {
    CHECK(sft_f32_to_f16(65520.0f) == 0x7c00);                   /* rounds up to inf */
    CHECK(sft_f32_to_f16(65519.0f) == 0x7bff);
    CHECK(sft_f32_to_f16(1.0f + ldexpf(1.0f, -11)) == 0x3c00);   /* tie -> even */
    CHECK(sft_f32_to_f16(1.0f + 3 * ldexpf(1.0f, -11)) == 0x3c02);
    CHECK(sft_f32_to_f16(ldexpf(1.0f, -25)) == 0x0000);          /* tie -> even (0) */
    CHECK(sft_f32_to_f16(ldexpf(1.5f, -25)) == 0x0001);
    CHECK(sft_f32_to_f16(-0.0f) == 0x8000);
    CHECK((sft_f32_to_f16(NAN) & 0x7c00) == 0x7c00 && (sft_f32_to_f16(NAN) & 0x3ff));
#if defined(__FLT16_MAX__) && !defined(__cplusplus)
    {
        __extension__ typedef _Float16 t_f16;
        uint64_t st = 1;
        int i, bad = 0;
        for (i = 0; i < 200000; i++) {
            float f = t_rand(&st, -1.0f, 1.0f) * ldexpf(1.0f, (int)t_rand(&st, -30.0f, 17.0f));
            t_f16 h = (t_f16)f;
            uint16_t hb;
            memcpy(&hb, &h, 2);
            bad += hb != sft_f32_to_f16(f);
        }
        CHECK_MSG(bad == 0, "%d values differ from the compiler's _Float16 conversion", bad);
    }
#endif
}

static void bf16_rounds_to_nearest_even_and_keeps_nan(void) {
    CHECK(sft_f32_to_bf16(1.0f) == 0x3f80);
    CHECK(sft_bf16_to_f32(0x3f80) == 1.0f);
    CHECK(sft_f32_to_bf16(1.0f + ldexpf(1.0f, -8)) == 0x3f80);       /* tie -> even */
    CHECK(sft_f32_to_bf16(1.0f + 3 * ldexpf(1.0f, -8)) == 0x3f82);   /* tie -> even (up) */
    CHECK(sft_f32_to_bf16(1.0f + ldexpf(1.0f, -8) + ldexpf(1.0f, -20)) == 0x3f81);
    CHECK(isnan(sft_bf16_to_f32(sft_f32_to_bf16(NAN))));
    CHECK(sft_f32_to_bf16(INFINITY) == 0x7f80);
    CHECK(sft_f32_to_bf16(3.4e38f) == 0x7f80);                        /* overflow -> inf */
}

/* ---- CPU paths ---- */

static void portable_path_is_always_available_and_forcible(void) {
    sft_context *ctx;
    CHECK_OK(sft_context_create(NULL, &ctx));
    CHECK(sft_cpu_path_supported(SFT_CPU_PORTABLE));
    CHECK_OK(sft_cpu_path_set(ctx, SFT_CPU_PORTABLE));
    CHECK(sft_cpu_path_get(ctx) == SFT_CPU_PORTABLE);
    CHECK(strcmp(sft_cpu_path_name(SFT_CPU_AVX2), "avx2") == 0);
    CHECK_STATUS(sft_cpu_path_set(ctx, (sft_cpu_path)77), SFT_ERR_ARG);
    if (!sft_cpu_path_supported(SFT_CPU_AVX512)) {
        CHECK_STATUS(sft_cpu_path_set(ctx, SFT_CPU_AVX512), SFT_ERR_UNSUPPORTED);
        CHECK_ERROR_MENTIONS("avx512");
    }
    sft_context_destroy(ctx);
}

static void unknown_cpu_path_in_environment_is_refused(void) {
    sft_context *ctx;
    const char *old = getenv("SFT_CPU_PATH");
    char saved[64] = "";
    if (old) snprintf(saved, sizeof saved, "%s", old);
    setenv("SFT_CPU_PATH", "sse1", 1);
    CHECK_STATUS(sft_context_create(NULL, &ctx), SFT_ERR_UNSUPPORTED);
    CHECK_ERROR_MENTIONS("SFT_CPU_PATH=sse1");
    setenv("SFT_CPU_PATH", "portable", 1);
    CHECK_OK(sft_context_create(NULL, &ctx));
    CHECK(sft_cpu_path_get(ctx) == SFT_CPU_PORTABLE);
    sft_context_destroy(ctx);
    if (old) setenv("SFT_CPU_PATH", saved, 1);
    else unsetenv("SFT_CPU_PATH");
}

static void cuda_is_reported_absent_in_a_cpu_build(void) {
    sft_context *ctx;
    sft_tensor *t = (sft_tensor *)1;
    int64_t shape[1] = {4};
    CHECK(sft_cuda_available() == 0);
    CHECK_OK(sft_context_create(NULL, &ctx));
    CHECK_STATUS(sft_tensor_create_on(ctx, SFT_DEVICE_CUDA, SFT_F32, 1, shape, &t), SFT_ERR_UNSUPPORTED);
    CHECK(t == NULL);
    CHECK_ERROR_MENTIONS("CUDA");
    sft_context_destroy(ctx);
}

void suite_core(void) {
    RUN(status_names_cover_every_status);
    RUN(failing_call_sets_a_message_naming_the_op);
    RUN(context_rejects_impossible_settings);
    RUN(context_defaults_to_one_inline_thread);
    RUN(context_with_more_threads_than_cores_works);
    RUN(host_allocator_receives_every_context_allocation);
    RUN(mem_stats_track_bytes_and_peak);
    RUN(log_callback_hears_the_context);
    RUN(atomic_write_then_read_round_trips);
    RUN(failed_write_leaves_the_old_file_and_no_temporary);
    RUN(write_into_missing_directory_fails_naming_the_path);
    RUN(read_of_missing_or_oversized_file_fails);
    RUN(philox_matches_the_random123_known_answers);
    RUN(rng_uniform_is_in_unit_interval_and_well_spread);
    RUN(f16_round_trips_every_finite_value);
    RUN(f32_to_f16_rounds_to_nearest_even);
    RUN(bf16_rounds_to_nearest_even_and_keeps_nan);
    RUN(portable_path_is_always_available_and_forcible);
    RUN(unknown_cpu_path_in_environment_is_refused);
    RUN(cuda_is_reported_absent_in_a_cpu_build);
}
