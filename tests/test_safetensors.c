/* test_safetensors.c - the safetensors reader and writer.

   Writer: the exact bytes the reference library (huggingface/safetensors) writes
   for the same tensors, the tensor order it uses, and no loss of the previous
   file when a write fails at any point. Reader: everything written reads back
   equal, and every malformed file (truncated anywhere, lying header lengths,
   bad JSON, bad dtypes/shapes/offsets, overlaps and holes) fails cleanly with a
   message that names the file and the tensor. */
#define _POSIX_C_SOURCE 200809L   /* write() for the fault-injecting write hook */
#include "test.h"
#include <unistd.h>
#include <stdint.h>

/* ---- helpers ------------------------------------------------------------- */

static const char *tpath(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", t_tmpdir(), name);
    return buf;
}
#define TPATH(buf, name) tpath(buf, sizeof buf, name)

static int write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    int ok;
    if (!f) return 0;
    ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static unsigned char *read_bytes(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    long size;
    *n = 0;
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = (unsigned char *)malloc((size_t)size + 1);
    if (buf && fread(buf, 1, (size_t)size, f) != (size_t)size) { free(buf); buf = NULL; }
    fclose(f);
    if (buf) *n = (size_t)size;
    return buf;
}

static int file_exists(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

static void put_le64(unsigned char *p, uint64_t v) {
    int i;
    for (i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* make_raw: a file of [hlen as 8 bytes LE][header bytes][data bytes]. */
static void make_raw(const char *path, uint64_t hlen, const char *header, size_t header_n, const void *data, size_t n_data) {
    unsigned char *buf = (unsigned char *)malloc(8 + header_n + n_data + 1);
    put_le64(buf, hlen);
    memcpy(buf + 8, header, header_n);
    if (n_data) memcpy(buf + 8 + header_n, data, n_data);
    if (!write_bytes(path, buf, 8 + header_n + n_data)) t_failf(__FILE__, __LINE__, "cannot write %s", path);
    free(buf);
}

/* make_st: a file with this header (its true length) and n_data bytes of data
   (0, 1, 2, ...). */
static void make_st(const char *path, const char *header, size_t n_data) {
    unsigned char *data = (unsigned char *)malloc(n_data + 1);
    size_t i;
    for (i = 0; i < n_data; i++) data[i] = (unsigned char)i;
    make_raw(path, strlen(header), header, strlen(header), data, n_data);
    free(data);
}

static void open_fails(const char *file, int line, const char *path, sft_status want, const char *mention) {
    sft_st_file *f = (sft_st_file *)1;
    sft_status s = sft_st_open(NULL, path, &f);
    if (s != want) {
        t_failf(file, line, "opening %s -> %s, want %s (%s)", path, sft_status_str(s), sft_status_str(want), sft_last_error());
        if (s == SFT_OK) sft_st_close(f);
        return;
    }
    if (f != NULL) t_failf(file, line, "failed open left *out non-NULL");
    if (mention && !strstr(sft_last_error(), mention))
        t_failf(file, line, "error message \"%s\" does not mention \"%s\"", sft_last_error(), mention);
}
#define OPEN_FAILS(path, want, mention) open_fails(__FILE__, __LINE__, path, want, mention)

/* HEADER_FAILS: a file with this header and n_data bytes must fail with want. */
static void header_fails(const char *file, int line, const char *header, size_t n_data, sft_status want, const char *mention) {
    char path[300];
    TPATH(path, "bad.safetensors");
    make_st(path, header, n_data);
    open_fails(file, line, path, want, mention);
    if (!strstr(sft_last_error(), path)) t_failf(file, line, "message \"%s\" does not name the file", sft_last_error());
}
#define HEADER_FAILS(header, n_data, want, mention) header_fails(__FILE__, __LINE__, header, n_data, want, mention)

static sft_st_file *open_ok(const char *file, int line, sft_context *ctx, const char *path) {
    sft_st_file *f = NULL;
    sft_status s = sft_st_open(ctx, path, &f);
    if (s != SFT_OK) t_failf(file, line, "opening %s -> %s: %s", path, sft_status_str(s), sft_last_error());
    return f;
}
#define OPEN_OK(ctx, path) open_ok(__FILE__, __LINE__, ctx, path)

static sft_st_entry entry(const char *name, sft_dtype dt, int ndim, int64_t d0, int64_t d1, const void *data) {
    sft_st_entry e;
    memset(&e, 0, sizeof e);
    e.name = name; e.dtype = dt; e.ndim = ndim; e.shape[0] = d0; e.shape[1] = d1; e.data = data;
    return e;
}

static void check_file_bytes(const char *file, int line, const char *path, const unsigned char *want, size_t n) {
    size_t got_n, i;
    unsigned char *got = read_bytes(path, &got_n);
    if (!got) { t_failf(file, line, "cannot read %s", path); return; }
    if (got_n != n) t_failf(file, line, "%s: %zu bytes, want %zu", path, got_n, n);
    else
        for (i = 0; i < n; i++)
            if (got[i] != want[i]) {
                t_failf(file, line, "%s: first difference at byte %zu: 0x%02X, want 0x%02X", path, i, got[i], want[i]);
                break;
            }
    free(got);
}
#define CHECK_FILE_BYTES(path, want, n) check_file_bytes(__FILE__, __LINE__, path, want, n)

/* expected_file: [len][header padded with spaces to 8][data] as the reference writes it. */
static unsigned char *expected_file(const char *header, const void *data, size_t n_data, size_t *n) {
    size_t h = strlen(header), padded = (h + 7) / 8 * 8;
    unsigned char *buf = (unsigned char *)malloc(8 + padded + n_data + 1);
    put_le64(buf, padded);
    memcpy(buf + 8, header, h);
    memset(buf + 8 + h, ' ', padded - h);
    if (n_data) memcpy(buf + 8 + padded, data, n_data);
    *n = 8 + padded + n_data;
    return buf;
}

static const float k_six[6] = {0, 1, 2, 3, 4, 5};

/* ---- writer ---------------------------------------------------------------- */

static void st_writes_the_reference_library_bytes(void) {
    /* huggingface/safetensors tests test_serialization and
       test_serialization_forced_alignement: the same tensors, the same bytes. */
    char path[300];
    sft_st_entry e;
    size_t n;
    unsigned char *want;
    int64_t shape4[4] = {1, 1, 2, 3};
    TPATH(path, "ref.safetensors");
    e = entry("attn.0", SFT_F32, 3, 1, 2, k_six);
    e.shape[2] = 3;
    CHECK_OK(sft_st_save(NULL, path, &e, 1, NULL, NULL, 0));
    want = expected_file("{\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[0,24]}}", k_six, 24, &n);
    CHECK(n == 8 + 64 + 24 && want[0] == 64);
    CHECK_FILE_BYTES(path, want, n);
    free(want);
    e = entry("attn0", SFT_F32, 4, 0, 0, k_six);
    memcpy(e.shape, shape4, sizeof shape4);
    CHECK_OK(sft_st_save(NULL, path, &e, 1, NULL, NULL, 0));
    want = expected_file("{\"attn0\":{\"dtype\":\"F32\",\"shape\":[1,1,2,3],\"data_offsets\":[0,24]}}", k_six, 24, &n);
    CHECK(n == 8 + 72 + 24 && want[0] == 72 && want[8 + 71] == ' ' && want[8 + 65] == ' ' && want[8 + 64] == '}');
    CHECK_FILE_BYTES(path, want, n);
    free(want);
}

static void st_writes_empty_files_and_metadata_like_the_reference(void) {
    /* huggingface/safetensors test_empty */
    static const unsigned char empty[] = {8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};
    static const char meta[] = "{\"__metadata__\":{\"framework\":\"pt\"}}     ";
    const char *mk = "framework", *mv = "pt";
    unsigned char want[48];
    char path[300];
    sft_st_file *f;
    TPATH(path, "empty.safetensors");
    CHECK_OK(sft_st_save(NULL, path, NULL, 0, NULL, NULL, 0));
    CHECK_FILE_BYTES(path, empty, sizeof empty);
    f = OPEN_OK(NULL, path);
    if (f) { CHECK(sft_st_count(f) == 0 && sft_st_tensor_at(f, 0) == NULL && sft_st_metadata(f, "framework") == NULL); sft_st_close(f); }
    CHECK_OK(sft_st_save(NULL, path, NULL, 0, &mk, &mv, 1));
    put_le64(want, 40);
    memcpy(want + 8, meta, 40);
    CHECK_FILE_BYTES(path, want, 48);
    f = OPEN_OK(NULL, path);
    if (f) { CHECK(sft_st_metadata(f, "framework") && strcmp(sft_st_metadata(f, "framework"), "pt") == 0); sft_st_close(f); }
}

static void st_orders_tensors_by_dtype_alignment_then_name(void) {
    /* prepare() in huggingface/safetensors sorts by (dtype descending, name);
       its Dtype enum orders BOOL < U8 < I8 < F16 < BF16 < I32 < F32 < I64. */
    static const char header[] =
        "{\"__metadata__\":{\"b\":\"2\",\"a\":\"1\"},"
        "\"c\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]},"
        "\"w.a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},"
        "\"w.b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]},"
        "\"m\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[16,20]},"
        "\"a2\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[20,22]},"
        "\"h\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[22,24]},"
        "\"i8\":{\"dtype\":\"I8\",\"shape\":[1],\"data_offsets\":[24,25]},"
        "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[25,27]},"
        "\"z\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[27,30]}}";
    static const unsigned char c[8] = {1, 1, 1, 1, 1, 1, 1, 1}, wa[4] = {2, 2, 2, 2}, wb[4] = {3, 3, 3, 3},
                               m[4] = {4, 4, 4, 4}, a2[2] = {5, 5}, h[2] = {6, 6}, i8[1] = {7}, b[2] = {8, 8}, z[3] = {1, 0, 1};
    static const unsigned char data[30] = {1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 6, 6, 7, 8, 8, 1, 0, 1};
    const char *mk[2] = {"b", "a"}, *mv[2] = {"2", "1"};
    sft_st_entry e[9];
    char path[300];
    unsigned char *want;
    size_t n;
    e[0] = entry("b", SFT_U8, 1, 2, 0, b);
    e[1] = entry("w.b", SFT_F32, 1, 1, 0, wb);
    e[2] = entry("c", SFT_I64, 1, 1, 0, c);
    e[3] = entry("a2", SFT_BF16, 1, 1, 0, a2);
    e[4] = entry("z", SFT_BOOL, 1, 3, 0, z);
    e[5] = entry("m", SFT_I32, 1, 1, 0, m);
    e[6] = entry("h", SFT_F16, 1, 1, 0, h);
    e[7] = entry("i8", SFT_I8, 1, 1, 0, i8);
    e[8] = entry("w.a", SFT_F32, 1, 1, 0, wa);
    TPATH(path, "order.safetensors");
    CHECK_OK(sft_st_save(NULL, path, e, 9, mk, mv, 2));
    want = expected_file(header, data, 30, &n);
    CHECK_FILE_BYTES(path, want, n);
    free(want);
}

static void st_pads_the_header_to_a_multiple_of_8(void) {
    char name[40], path[300];
    int len;
    float v = 1.0f;
    TPATH(path, "pad.safetensors");
    for (len = 1; len <= 16; len++) {
        sft_st_entry e;
        size_t n;
        unsigned char *bytes;
        uint64_t h = 0;
        int i;
        memset(name, 'n', (size_t)len);
        name[len] = 0;
        e = entry(name, SFT_F32, 0, 0, 0, &v);
        CHECK_OK(sft_st_save(NULL, path, &e, 1, NULL, NULL, 0));
        bytes = read_bytes(path, &n);
        if (!bytes) continue;
        for (i = 7; i >= 0; i--) h = (h << 8) | bytes[i];
        CHECK_MSG(h % 8 == 0 && n == 8 + h + 4, "name of %d: header %llu, file %zu", len, (unsigned long long)h, n);
        CHECK(bytes[8 + h - 1] == '}' || bytes[8 + h - 1] == ' ');
        CHECK(memcmp(bytes + 8 + h, &v, 4) == 0);
        free(bytes);
    }
}

static void st_save_rejects_invalid_entries(void) {
    char path[300];
    float v[4] = {0};
    sft_st_entry e[2];
    const char *mk[2] = {"k", "k"}, *mv[2] = {"1", "2"};
    TPATH(path, "invalid.safetensors");
    remove(path);
    e[0] = entry(NULL, SFT_F32, 1, 1, 0, v);
    CHECK_STATUS(sft_st_save(NULL, path, e, 1, NULL, NULL, 0), SFT_ERR_ARG);
    e[0] = entry("a", SFT_F32, 1, 1, 0, v);
    e[1] = entry("a", SFT_I32, 1, 1, 0, v);
    CHECK_STATUS(sft_st_save(NULL, path, e, 2, NULL, NULL, 0), SFT_ERR_ARG);
    CHECK_ERROR_MENTIONS("duplicate tensor name 'a'");
    e[0] = entry("a", (sft_dtype)99, 1, 1, 0, v);
    CHECK_STATUS(sft_st_save(NULL, path, e, 1, NULL, NULL, 0), SFT_ERR_DTYPE);
    e[0] = entry("a", SFT_F32, 2, 2, -1, v);
    CHECK_STATUS(sft_st_save(NULL, path, e, 1, NULL, NULL, 0), SFT_ERR_SHAPE);
    CHECK_ERROR_MENTIONS("negative");
    e[0] = entry("a", SFT_F32, 9, 1, 1, v);
    CHECK_STATUS(sft_st_save(NULL, path, e, 1, NULL, NULL, 0), SFT_ERR_SHAPE);
    e[0] = entry("a", SFT_F32, 1, 2, 0, NULL);
    CHECK_STATUS(sft_st_save(NULL, path, e, 1, NULL, NULL, 0), SFT_ERR_ARG);
    CHECK_ERROR_MENTIONS("data is NULL");
    e[0] = entry("__metadata__", SFT_F32, 1, 1, 0, v);
    CHECK_STATUS(sft_st_save(NULL, path, e, 1, NULL, NULL, 0), SFT_ERR_ARG);
    e[0] = entry("bad\xC3", SFT_F32, 1, 1, 0, v);
    CHECK_STATUS(sft_st_save(NULL, path, e, 1, NULL, NULL, 0), SFT_ERR_ARG);
    CHECK_ERROR_MENTIONS("UTF-8");
    CHECK_STATUS(sft_st_save(NULL, path, NULL, 1, NULL, NULL, 0), SFT_ERR_ARG);
    CHECK_STATUS(sft_st_save(NULL, path, NULL, 0, mk, mv, 2), SFT_ERR_ARG);
    CHECK_ERROR_MENTIONS("duplicate metadata key 'k'");
    CHECK_STATUS(sft_st_save(NULL, path, NULL, 0, NULL, mv, 1), SFT_ERR_ARG);
    CHECK_STATUS(sft_st_save(NULL, NULL, NULL, 0, NULL, NULL, 0), SFT_ERR_ARG);
    CHECK(!file_exists(path));   /* nothing was written by any of them */
    e[0] = entry("empty", SFT_F32, 1, 0, 0, NULL);   /* no data needed for zero bytes */
    CHECK_OK(sft_st_save(NULL, path, e, 1, NULL, NULL, 0));
}

typedef struct write_plan { int calls, fail_at; } write_plan;

/* plan_write: a write hook that writes normally except on call fail_at, where
   it stops halfway, as a full disk does. */
static size_t plan_write(int fd, const void *data, size_t len, void *user) {
    write_plan *p = (write_plan *)user;
    size_t done = 0;
    p->calls++;
    if (p->calls == p->fail_at) len /= 2;
    while (done < len) {
        ssize_t n = write(fd, (const char *)data + done, len - done);
        if (n <= 0) break;
        done += (size_t)n;
    }
    return done;
}

static void st_failed_write_at_any_point_leaves_the_previous_file(void) {
    char path[300], tmp[310], count_path[300];
    float old_v[2] = {1, 2}, a[3] = {3, 4, 5};
    int64_t b[2] = {6, 7};
    unsigned char u[5] = {8, 9, 10, 11, 12};
    const char *mk = "format", *mv = "pt";
    sft_st_entry old_e, e[3];
    unsigned char *old_bytes, *now;
    size_t old_n, now_n;
    write_plan plan;
    sft_context_desc cd;
    sft_context *ctx = NULL;
    int calls, k;
    sft_st_file *f;
    TPATH(path, "guarded.safetensors");
    TPATH(count_path, "count.safetensors");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    old_e = entry("old", SFT_F32, 1, 2, 0, old_v);
    CHECK_OK(sft_st_save(NULL, path, &old_e, 1, NULL, NULL, 0));
    old_bytes = read_bytes(path, &old_n);
    if (!old_bytes) return;
    e[0] = entry("a", SFT_F32, 1, 3, 0, a);
    e[1] = entry("b", SFT_I64, 1, 2, 0, b);
    e[2] = entry("u", SFT_U8, 1, 5, 0, u);
    memset(&cd, 0, sizeof cd);
    cd.write = plan_write;
    cd.write_user = &plan;
    CHECK_OK(sft_context_create(&cd, &ctx));
    if (!ctx) { free(old_bytes); return; }
    plan.calls = 0; plan.fail_at = 0;   /* count the writes of a good save */
    CHECK_OK(sft_st_save(ctx, count_path, e, 3, &mk, &mv, 1));
    calls = plan.calls;
    CHECK_MSG(calls == 5, "a save of 3 tensors made %d write calls (want length + header + 3)", calls);
    f = OPEN_OK(NULL, count_path);
    if (f) { CHECK(sft_st_count(f) == 3); sft_st_close(f); }
    for (k = 1; k <= calls; k++) {
        plan.calls = 0; plan.fail_at = k;
        CHECK_STATUS(sft_st_save(ctx, path, e, 3, &mk, &mv, 1), SFT_ERR_IO);
        CHECK_MSG(plan.calls == k, "failing at write %d: %d calls were made", k, plan.calls);
        now = read_bytes(path, &now_n);
        CHECK_MSG(now && now_n == old_n && memcmp(now, old_bytes, old_n) == 0, "failing at write %d changed %s", k, path);
        free(now);
        CHECK_MSG(!file_exists(tmp), "failing at write %d left %s", k, tmp);
    }
    plan.calls = 0; plan.fail_at = 0;
    CHECK_OK(sft_st_save(ctx, path, e, 3, &mk, &mv, 1));
    f = OPEN_OK(NULL, path);
    if (f) {
        CHECK(sft_st_count(f) == 3 && sft_st_find(f, "old") == NULL && sft_st_find(f, "u") != NULL);
        sft_st_close(f);
    }
    CHECK(!file_exists(tmp));
    sft_context_destroy(ctx);
    free(old_bytes);
}

static void st_entry_from_tensor_describes_a_cpu_tensor(void) {
    sft_context *ctx = NULL;
    sft_tensor *t = NULL, *back = NULL;
    int64_t shape[3] = {2, 3, 4};
    sft_st_entry e;
    sft_st_file *f;
    char path[300];
    int i;
    CHECK_OK(sft_context_create(NULL, &ctx));
    if (!ctx) return;
    CHECK_OK(sft_tensor_create(ctx, SFT_BF16, 3, shape, &t));
    if (!t) { sft_context_destroy(ctx); return; }
    for (i = 0; i < 24; i++) ((uint16_t *)t->data)[i] = (uint16_t)(i * 977);
    e = sft_st_entry_from_tensor("layer.weight", t);
    CHECK(strcmp(e.name, "layer.weight") == 0 && e.dtype == SFT_BF16 && e.ndim == 3);
    CHECK(e.shape[0] == 2 && e.shape[1] == 3 && e.shape[2] == 4 && e.data == t->data);
    TPATH(path, "from_tensor.safetensors");
    CHECK_OK(sft_st_save(ctx, path, &e, 1, NULL, NULL, 0));
    f = OPEN_OK(ctx, path);
    if (f) {
        CHECK_OK(sft_st_load(ctx, f, "layer.weight", &back));
        if (back) {
            CHECK(back->dtype == SFT_BF16 && back->ndim == 3 && back->shape[2] == 4);
            CHECK(memcmp(back->data, t->data, 48) == 0);
            sft_tensor_destroy(back);
        }
        sft_st_close(f);
    }
    e = sft_st_entry_from_tensor("none", NULL);
    CHECK(strcmp(e.name, "none") == 0 && e.data == NULL);
    sft_tensor_destroy(t);
    sft_context_destroy(ctx);
}

/* ---- reader: round trips ----------------------------------------------------- */

static void st_round_trip_keeps_all_eight_dtypes(void) {
    static const sft_dtype dts[8] = {SFT_F32, SFT_BF16, SFT_F16, SFT_I32, SFT_U8, SFT_I8, SFT_I64, SFT_BOOL};
    static const char *names[8] = {"t.f32", "t.bf16", "t.f16", "t.i32", "t.u8", "t.i8", "t.i64", "t.bool"};
    static const int64_t d0[8] = {2, 4, 2, 3, 5, 1, 2, 3}, d1[8] = {3, 0, 2, 0, 0, 7, 0, 0};
    static const sft_dtype file_order[8] = {SFT_I64, SFT_F32, SFT_I32, SFT_BF16, SFT_F16, SFT_I8, SFT_U8, SFT_BOOL};
    unsigned char data[8][64];
    sft_st_entry e[8];
    sft_context *ctx = NULL;
    sft_st_file *f;
    sft_mem_stats m0, m1;
    char path[300];
    int i, k;
    uint64_t prev_end = 0;
    CHECK_OK(sft_context_create(NULL, &ctx));
    if (!ctx) return;
    for (i = 0; i < 8; i++) {
        for (k = 0; k < 64; k++) data[i][k] = (unsigned char)(dts[i] == SFT_BOOL ? (k + i) & 1 : i * 31 + k * 7);
        e[i] = entry(names[i], dts[i], d1[i] ? 2 : 1, d0[i], d1[i], data[i]);
    }
    TPATH(path, "dtypes.safetensors");
    CHECK_OK(sft_st_save(ctx, path, e, 8, NULL, NULL, 0));
    m0 = sft_context_mem_stats(ctx);
    f = OPEN_OK(ctx, path);
    if (!f) { sft_context_destroy(ctx); return; }
    CHECK(sft_st_count(f) == 8);
    for (i = 0; i < 8; i++) {
        const sft_st_tensor *t = sft_st_find(f, names[i]);
        sft_tensor *x = NULL;
        uint64_t nbytes = (uint64_t)(d0[i] * (d1[i] ? d1[i] : 1)) * sft_dtype_size(dts[i]);
        CHECK_MSG(t != NULL, "%s not found", names[i]);
        if (!t) continue;
        CHECK(strcmp(t->name, names[i]) == 0 && t->dtype == dts[i] && t->ndim == (d1[i] ? 2 : 1) && t->shape[0] == d0[i]);
        CHECK(t->nbytes == nbytes && memcmp(t->data, data[i], (size_t)nbytes) == 0);
        CHECK_OK(sft_st_load(ctx, f, names[i], &x));
        if (x) {
            CHECK(x->dtype == dts[i] && x->ndim == t->ndim && sft_tensor_nbytes(x) == nbytes);
            CHECK(memcmp(x->data, data[i], (size_t)nbytes) == 0);
            sft_tensor_destroy(x);
        }
    }
    for (i = 0; i < 8; i++) {   /* file order = data order = the writer's dtype order */
        const sft_st_tensor *t = sft_st_tensor_at(f, i);
        if (!t) { CHECK(t != NULL); continue; }
        CHECK_MSG(t->dtype == file_order[i], "tensor_at(%d) is %s", i, sft_dtype_name(t->dtype));
        CHECK(i == 0 || t->offset == prev_end);
        prev_end = t->offset + t->nbytes;
    }
    CHECK(sft_st_tensor_at(f, 8) == NULL && sft_st_tensor_at(f, -1) == NULL);
    CHECK(sft_st_find(f, "t.f3") == NULL && sft_st_find(f, "t.f32x") == NULL && sft_st_find(f, NULL) == NULL);
    sft_st_close(f);
    m1 = sft_context_mem_stats(ctx);
    CHECK(m1.bytes_in_use == m0.bytes_in_use && m1.allocs - m1.frees == m0.allocs - m0.frees);
    sft_context_destroy(ctx);
}

static void st_round_trip_keeps_scalars_and_empty_tensors(void) {
    float s = 3.5f, bias[2] = {1, 2};
    sft_st_entry e[4];
    sft_context *ctx = NULL;
    sft_st_file *f;
    sft_tensor *x = NULL;
    char path[300];
    CHECK_OK(sft_context_create(NULL, &ctx));
    if (!ctx) return;
    e[0] = entry("scalar", SFT_F32, 0, 0, 0, &s);
    e[1] = entry("empty", SFT_F32, 1, 0, 0, NULL);
    e[2] = entry("empty2", SFT_I64, 2, 3, 0, NULL);
    e[3] = entry("bias", SFT_F32, 1, 2, 0, bias);
    TPATH(path, "scalars.safetensors");
    CHECK_OK(sft_st_save(ctx, path, e, 4, NULL, NULL, 0));
    f = OPEN_OK(ctx, path);
    if (f) {
        const sft_st_tensor *t = sft_st_find(f, "scalar");
        CHECK(t && t->ndim == 0 && t->nbytes == 4 && memcmp(t->data, &s, 4) == 0);
        t = sft_st_find(f, "empty");
        CHECK(t && t->ndim == 1 && t->shape[0] == 0 && t->nbytes == 0);
        t = sft_st_find(f, "empty2");
        CHECK(t && t->ndim == 2 && t->shape[0] == 3 && t->shape[1] == 0 && t->nbytes == 0);
        CHECK_OK(sft_st_load(ctx, f, "scalar", &x));
        if (x) { CHECK(x->ndim == 0 && sft_tensor_numel(x) == 1 && ((float *)x->data)[0] == 3.5f); sft_tensor_destroy(x); }
        CHECK_OK(sft_st_load(ctx, f, "empty2", &x));
        if (x) { CHECK(x->ndim == 2 && x->shape[1] == 0 && x->dtype == SFT_I64); sft_tensor_destroy(x); }
        sft_st_close(f);
    }
    sft_context_destroy(ctx);
}

static void st_round_trip_keeps_metadata(void) {
    const char *mk[3] = {"format", "note", "empty"}, *mv[3] = {"pt", "caf\xC3\xA9 \"q\"\n", ""};
    float v = 1;
    sft_st_entry e = entry("w", SFT_F32, 1, 1, 0, &v);
    sft_st_file *f;
    char path[300];
    TPATH(path, "meta.safetensors");
    CHECK_OK(sft_st_save(NULL, path, &e, 1, mk, mv, 3));
    f = OPEN_OK(NULL, path);
    if (!f) return;
    CHECK(sft_st_metadata(f, "format") && strcmp(sft_st_metadata(f, "format"), "pt") == 0);
    CHECK(sft_st_metadata(f, "note") && strcmp(sft_st_metadata(f, "note"), mv[1]) == 0);
    CHECK(sft_st_metadata(f, "empty") && sft_st_metadata(f, "empty")[0] == 0);
    CHECK(sft_st_metadata(f, "w") == NULL && sft_st_metadata(f, "missing") == NULL);
    CHECK(sft_st_count(f) == 1 && sft_st_find(f, "__metadata__") == NULL);
    sft_st_close(f);
}

static void st_reads_a_file_the_reference_library_wrote(void) {
    /* The byte string of huggingface/safetensors' test_serialization, spelled out. */
    static const unsigned char file[] = {
        64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100, 116, 121, 112, 101, 34, 58, 34, 70,
        51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58, 91, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111,
        102, 102, 115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0,
        0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64};
    char path[300];
    sft_st_file *f;
    const sft_st_tensor *t;
    TPATH(path, "reference.safetensors");
    CHECK(write_bytes(path, file, sizeof file));
    f = OPEN_OK(NULL, path);
    if (!f) return;
    t = sft_st_find(f, "attn.0");
    CHECK(t != NULL);
    if (t) {
        float v[6];
        CHECK(t->dtype == SFT_F32 && t->ndim == 3 && t->shape[0] == 1 && t->shape[1] == 2 && t->shape[2] == 3);
        CHECK(t->offset == 72 && t->nbytes == 24);
        memcpy(v, t->data, 24);
        CHECK_SAME("attn.0", v, k_six, 6);
    }
    sft_st_close(f);
}

static void st_reads_entries_in_any_header_order(void) {
    /* Older writers listed tensors by name, not by offset; the reader sorts. A
       zero-size tensor sits anywhere on the tiling without breaking it. */
    char path[300];
    sft_st_file *f;
    TPATH(path, "legacy.safetensors");
    make_st(path,
            "  {\"y\":{\"data_offsets\":[4,12],\"shape\":[2],\"dtype\":\"I32\"},"
            "\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
            "\"\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,4]},"
            "\"e\":{\"dtype\":\"I64\",\"shape\":[0,5],\"data_offsets\":[12,12]}}   \n",
            12);
    f = OPEN_OK(NULL, path);
    if (!f) return;
    CHECK(sft_st_count(f) == 4);
    CHECK(strcmp(sft_st_tensor_at(f, 0)->name, "x") == 0);
    CHECK(strcmp(sft_st_tensor_at(f, 1)->name, "") == 0);
    CHECK(strcmp(sft_st_tensor_at(f, 2)->name, "y") == 0);
    CHECK(strcmp(sft_st_tensor_at(f, 3)->name, "e") == 0);
    CHECK(sft_st_find(f, "") == sft_st_tensor_at(f, 1));
    CHECK(((const unsigned char *)sft_st_find(f, "y")->data)[0] == 4);
    sft_st_close(f);
}

static void st_load_checks_name_and_dims(void) {
    sft_context *ctx = NULL;
    sft_st_file *f;
    sft_tensor *x = (sft_tensor *)1;
    char path[300];
    float v[2] = {1, 2};
    sft_st_entry e = entry("five", SFT_F32, 5, 1, 1, v);
    e.shape[2] = 1; e.shape[3] = 1; e.shape[4] = 2;
    CHECK_OK(sft_context_create(NULL, &ctx));
    if (!ctx) return;
    TPATH(path, "five.safetensors");
    CHECK_OK(sft_st_save(ctx, path, &e, 1, NULL, NULL, 0));
    f = OPEN_OK(ctx, path);
    if (f) {
        CHECK(sft_st_find(f, "five")->ndim == 5);   /* the file may hold up to 8 dims */
        CHECK_STATUS(sft_st_load(ctx, f, "five", &x), SFT_ERR_SHAPE);
        CHECK(x == NULL);
        CHECK_ERROR_MENTIONS("'five'");
        CHECK_STATUS(sft_st_load(ctx, f, "six", &x), SFT_ERR_NOT_FOUND);
        CHECK_ERROR_MENTIONS("'six'");
        CHECK_STATUS(sft_st_load(ctx, f, NULL, &x), SFT_ERR_ARG);
        CHECK_STATUS(sft_st_load(ctx, NULL, "five", &x), SFT_ERR_ARG);
        CHECK_STATUS(sft_st_load(ctx, f, "five", NULL), SFT_ERR_ARG);
        sft_st_close(f);
    }
    sft_context_destroy(ctx);
}

/* ---- reader: malformed files ------------------------------------------------ */

static void st_rejects_every_truncated_prefix_of_a_valid_file(void) {
    char path[300], cut[300];
    float a[3] = {1, 2, 3};
    int64_t b = 7;
    unsigned char u[3] = {1, 2, 3};
    const char *mk = "format", *mv = "pt";
    sft_st_entry e[3];
    unsigned char *bytes;
    size_t n, k;
    sft_context *ctx = NULL;
    int bad = 0;
    TPATH(path, "whole.safetensors");
    TPATH(cut, "cut.safetensors");
    e[0] = entry("a", SFT_F32, 1, 3, 0, a);
    e[1] = entry("b", SFT_I64, 0, 0, 0, &b);
    e[2] = entry("u", SFT_U8, 1, 3, 0, u);
    CHECK_OK(sft_st_save(NULL, path, e, 3, &mk, &mv, 1));
    bytes = read_bytes(path, &n);
    CHECK_OK(sft_context_create(NULL, &ctx));
    if (!bytes || !ctx) { free(bytes); sft_context_destroy(ctx); return; }
    for (k = 0; k < n; k++) {
        sft_st_file *f = (sft_st_file *)1;
        sft_mem_stats m0 = sft_context_mem_stats(ctx), m1;
        sft_status s;
        write_bytes(cut, bytes, k);
        s = sft_st_open(ctx, cut, &f);
        m1 = sft_context_mem_stats(ctx);
        if (s != SFT_ERR_FORMAT || f != NULL || m1.bytes_in_use != m0.bytes_in_use) {
            if (bad++ < 5) t_failf(__FILE__, __LINE__, "prefix of %zu bytes -> %s (%s)", k, sft_status_str(s), sft_last_error());
            if (s == SFT_OK) sft_st_close(f);
        }
    }
    {   /* and the whole file is fine */
        sft_st_file *f = OPEN_OK(ctx, path);
        CHECK(f && sft_st_count(f) == 3);
        sft_st_close(f);
    }
    free(bytes);
    sft_context_destroy(ctx);
}

static void st_rejects_a_header_length_beyond_the_file(void) {
    char path[300];
    TPATH(path, "long.safetensors");
    make_raw(path, 1000, "{}      ", 8, NULL, 0);
    OPEN_FAILS(path, SFT_ERR_FORMAT, "header length 1000 runs past the end of the file (16 bytes)");
    make_raw(path, 9, "{}      ", 8, NULL, 0);
    OPEN_FAILS(path, SFT_ERR_FORMAT, NULL);
    make_raw(path, 100000000, "{}      ", 8, NULL, 0);   /* at the limit, still past the end */
    OPEN_FAILS(path, SFT_ERR_FORMAT, "runs past");
}

static void st_rejects_a_huge_header_length(void) {
    char path[300];
    TPATH(path, "huge.safetensors");
    make_raw(path, (uint64_t)1 << 63, "{}      ", 8, NULL, 0);
    OPEN_FAILS(path, SFT_ERR_LIMIT, "header length 9223372036854775808");
    make_raw(path, UINT64_MAX, "{}      ", 8, NULL, 0);
    OPEN_FAILS(path, SFT_ERR_LIMIT, NULL);
    make_raw(path, 100000001, "{}      ", 8, NULL, 0);
    OPEN_FAILS(path, SFT_ERR_LIMIT, "100000000");
}

static void st_rejects_a_header_that_is_not_a_json_object(void) {
    HEADER_FAILS("hello world!", 0, SFT_ERR_FORMAT, "byte 8 (line 1, col 1)");
    HEADER_FAILS("[1, 2]", 0, SFT_ERR_FORMAT, "not a JSON object");
    HEADER_FAILS("\"x\"", 0, SFT_ERR_FORMAT, "not a JSON object");
    HEADER_FAILS("", 0, SFT_ERR_FORMAT, NULL);
    HEADER_FAILS("{} {}", 0, SFT_ERR_FORMAT, NULL);
    {   /* NUL padding is not whitespace */
        static const char h[] = "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}\0\0";
        char path[300];
        TPATH(path, "nulpad.safetensors");
        make_raw(path, sizeof h - 1, h, sizeof h - 1, "abcd", 4);
        OPEN_FAILS(path, SFT_ERR_FORMAT, "expected end of input");
    }
    HEADER_FAILS("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"x\":{\"dtype\":\"F32\",\"shape\":[1],"
                 "\"data_offsets\":[0,4]}}", 4, SFT_ERR_FORMAT, "duplicate key \"x\"");
}

static void st_reports_header_syntax_errors_at_their_file_offset(void) {
    HEADER_FAILS("{\"x\" 1}", 0, SFT_ERR_FORMAT, "byte 13 (line 1, col 6): expected ':'");
    HEADER_FAILS("{\n\"x\":\n[1,]}", 0, SFT_ERR_FORMAT, "byte 18 (line 3, col 4): trailing comma");
}

static void st_rejects_bad_utf8_in_the_header(void) {
    HEADER_FAILS("{\"\xFF\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, SFT_ERR_FORMAT, "byte 10");
    CHECK_ERROR_MENTIONS("UTF-8");
    HEADER_FAILS("{\"a\xC0\xAF\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, SFT_ERR_FORMAT, "overlong");
    HEADER_FAILS("{\"__metadata__\":{\"k\":\"\xED\xA0\x80\"}}", 0, SFT_ERR_FORMAT, "surrogate");
}

static void st_rejects_offsets_beyond_the_data(void) {
    HEADER_FAILS("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, SFT_ERR_FORMAT,
                 "tensor 'x': data_offsets [0, 8] end beyond data size 4");
    HEADER_FAILS("{\"x\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[9,9]}}", 4, SFT_ERR_FORMAT, "end beyond data size 4");
    HEADER_FAILS("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8, SFT_ERR_FORMAT, "begin after their end");
    HEADER_FAILS("{\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[18446744073709551615,0]}}", 1, SFT_ERR_FORMAT, NULL);
    HEADER_FAILS("{\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,18446744073709551616]}}", 1, SFT_ERR_LIMIT,
                 "too large");
}

static void st_rejects_overlapping_tensors(void) {
    HEADER_FAILS("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, SFT_ERR_FORMAT,
                 "tensors 'x' [0, 8] and 'y' [4, 12] overlap");
    HEADER_FAILS("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, SFT_ERR_FORMAT, "overlap");
    HEADER_FAILS("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}", 8, SFT_ERR_FORMAT, "overlap");
}

static void st_rejects_holes_between_and_after_tensors(void) {
    HEADER_FAILS("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                 "\"y\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12, SFT_ERR_FORMAT,
                 "data bytes [4, 8) before tensor 'y' belong to no tensor");
    HEADER_FAILS("{\"y\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, SFT_ERR_FORMAT, "[0, 4)");
    HEADER_FAILS("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, SFT_ERR_FORMAT,
                 "data bytes [4, 8) at the end belong to no tensor");
    HEADER_FAILS("{}", 1, SFT_ERR_FORMAT, "[0, 1)");
}

static void st_rejects_offsets_that_do_not_match_shape_and_dtype(void) {
    HEADER_FAILS("{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, SFT_ERR_FORMAT,
                 "data_offsets [0, 8] hold 8 bytes, but shape [3] of F32 needs 12");
    HEADER_FAILS("{\"x\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 16, SFT_ERR_FORMAT, "needs 8");
    HEADER_FAILS("{\"x\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,4]}}", 4, SFT_ERR_FORMAT, "needs 8");
    HEADER_FAILS("{\"x\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,0]}}", 0,
                 SFT_ERR_FORMAT, "overflows");
}

static void st_rejects_unsupported_and_unknown_dtypes(void) {
    HEADER_FAILS("{\"x\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, SFT_ERR_DTYPE, "tensor 'x': dtype F64");
    HEADER_FAILS("{\"q\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, SFT_ERR_DTYPE, "F8_E4M3");
    HEADER_FAILS("{\"x\":{\"dtype\":\"XYZ\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, SFT_ERR_DTYPE, "unknown dtype \"XYZ\"");
    HEADER_FAILS("{\"x\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, SFT_ERR_DTYPE, NULL);
    HEADER_FAILS("{\"x\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, SFT_ERR_FORMAT, "dtype is not a string");
}

static void st_rejects_negative_non_integer_and_too_long_shapes(void) {
    HEADER_FAILS("{\"x\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, SFT_ERR_FORMAT, "negative number -1");
    HEADER_FAILS("{\"x\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,4]}}", 4, SFT_ERR_FORMAT, "2.5, not an integer");
    HEADER_FAILS("{\"x\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4, SFT_ERR_FORMAT, "not an integer");
    HEADER_FAILS("{\"x\":{\"dtype\":\"F32\",\"shape\":[1e0],\"data_offsets\":[0,4]}}", 4, SFT_ERR_FORMAT, "not an integer");
    HEADER_FAILS("{\"x\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", 4, SFT_ERR_FORMAT, "non-number");
    HEADER_FAILS("{\"x\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,4]}}", 4, SFT_ERR_FORMAT, "shape is not an array");
    HEADER_FAILS("{\"x\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, SFT_ERR_LIMIT, "9 dims");
    HEADER_FAILS("{\"x\":{\"dtype\":\"U8\",\"shape\":[9223372036854775808],\"data_offsets\":[0,4]}}", 4, SFT_ERR_LIMIT, NULL);
    HEADER_FAILS("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, SFT_ERR_FORMAT, "two integers");
    HEADER_FAILS("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,4]}}", 4, SFT_ERR_FORMAT, "two integers");
    HEADER_FAILS("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[\"0\",4]}}", 4, SFT_ERR_FORMAT, NULL);
}

static void st_rejects_unknown_and_missing_fields(void) {
    HEADER_FAILS("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"extra\":1}}", 4, SFT_ERR_FORMAT,
                 "tensor 'x': unknown field \"extra\"");
    HEADER_FAILS("{\"x\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, SFT_ERR_FORMAT, "missing \"data_offsets\"");
    HEADER_FAILS("{\"x\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, SFT_ERR_FORMAT, "missing \"dtype\"");
    HEADER_FAILS("{\"x\":[1]}", 0, SFT_ERR_FORMAT, "entry is not an object");
    HEADER_FAILS("{\"x\\u0000y\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, SFT_ERR_FORMAT, "NUL");
}

static void st_rejects_metadata_that_is_not_strings(void) {
    HEADER_FAILS("{\"__metadata__\":{\"a\":1}}", 0, SFT_ERR_FORMAT, "__metadata__ value of \"a\" is not a string");
    HEADER_FAILS("{\"__metadata__\":{\"a\":\"1\",\"b\":null}}", 0, SFT_ERR_FORMAT, "\"b\"");
    HEADER_FAILS("{\"__metadata__\":[\"a\"]}", 0, SFT_ERR_FORMAT, "__metadata__ is not an object");
    HEADER_FAILS("{\"__metadata__\":\"x\"}", 0, SFT_ERR_FORMAT, NULL);
}

static void st_open_rejects_missing_files_and_null_arguments(void) {
    char path[300];
    sft_st_file *f = (sft_st_file *)1;
    TPATH(path, "does-not-exist.safetensors");
    OPEN_FAILS(path, SFT_ERR_IO, "does-not-exist.safetensors");
    OPEN_FAILS(t_tmpdir(), SFT_ERR_IO, NULL);   /* a directory */
    CHECK_STATUS(sft_st_open(NULL, NULL, &f), SFT_ERR_ARG);
    CHECK(f == NULL);
    CHECK_STATUS(sft_st_open(NULL, path, NULL), SFT_ERR_ARG);
    CHECK(sft_st_count(NULL) == 0 && sft_st_tensor_at(NULL, 0) == NULL && sft_st_find(NULL, "x") == NULL);
    CHECK(sft_st_metadata(NULL, "x") == NULL);
    sft_st_close(NULL);
}

static void st_tensor_data_points_into_the_file(void) {
    char path[300];
    sft_st_file *f;
    unsigned char *bytes;
    size_t n;
    int i;
    TPATH(path, "view.safetensors");
    make_st(path, "{\"b\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[5,8]},"
                  "\"a\":{\"dtype\":\"I8\",\"shape\":[5],\"data_offsets\":[0,5]}}", 8);
    bytes = read_bytes(path, &n);
    f = OPEN_OK(NULL, path);
    if (f && bytes) {
        for (i = 0; i < 2; i++) {
            const sft_st_tensor *t = sft_st_tensor_at(f, i);
            CHECK(t->offset + t->nbytes <= n && memcmp(t->data, bytes + t->offset, (size_t)t->nbytes) == 0);
        }
        CHECK(sft_st_tensor_at(f, 0)->offset == n - 8 && sft_st_tensor_at(f, 1)->offset == n - 3);
    }
    sft_st_close(f);
    free(bytes);
}

void suite_safetensors(void) {
    RUN(st_writes_the_reference_library_bytes);
    RUN(st_writes_empty_files_and_metadata_like_the_reference);
    RUN(st_orders_tensors_by_dtype_alignment_then_name);
    RUN(st_pads_the_header_to_a_multiple_of_8);
    RUN(st_save_rejects_invalid_entries);
    RUN(st_failed_write_at_any_point_leaves_the_previous_file);
    RUN(st_entry_from_tensor_describes_a_cpu_tensor);
    RUN(st_round_trip_keeps_all_eight_dtypes);
    RUN(st_round_trip_keeps_scalars_and_empty_tensors);
    RUN(st_round_trip_keeps_metadata);
    RUN(st_reads_a_file_the_reference_library_wrote);
    RUN(st_reads_entries_in_any_header_order);
    RUN(st_load_checks_name_and_dims);
    RUN(st_tensor_data_points_into_the_file);
    RUN(st_rejects_every_truncated_prefix_of_a_valid_file);
    RUN(st_rejects_a_header_length_beyond_the_file);
    RUN(st_rejects_a_huge_header_length);
    RUN(st_rejects_a_header_that_is_not_a_json_object);
    RUN(st_reports_header_syntax_errors_at_their_file_offset);
    RUN(st_rejects_bad_utf8_in_the_header);
    RUN(st_rejects_offsets_beyond_the_data);
    RUN(st_rejects_overlapping_tensors);
    RUN(st_rejects_holes_between_and_after_tensors);
    RUN(st_rejects_offsets_that_do_not_match_shape_and_dtype);
    RUN(st_rejects_unsupported_and_unknown_dtypes);
    RUN(st_rejects_negative_non_integer_and_too_long_shapes);
    RUN(st_rejects_unknown_and_missing_fields);
    RUN(st_rejects_metadata_that_is_not_strings);
    RUN(st_open_rejects_missing_files_and_null_arguments);
}
