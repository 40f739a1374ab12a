/* runner.c - the test runner behind test.h: running tests, reporting failures,
   comparing floats, scratch files. Linked into every test program (tests/main.c
   for the CPU suites; tests/test_cuda.cu includes it). */
#include "test.h"
#include <stdarg.h>
#include <unistd.h>

static int t_passed, t_failed, t_current_failed;
static const char *t_filter;
static sft_cpu_path t_path = SFT_CPU_AUTO;
static char t_suffix[32];
static char t_dir[256];

void t_failf(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    if (!t_current_failed) printf("FAIL\n");
    t_current_failed = 1;
    printf("    %s:%d: ", file, line);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

void t_run(const char *name, void (*fn)(void)) {
    char full[128];
    snprintf(full, sizeof full, "%s%s", name, t_suffix);
    if (t_filter && !strstr(full, t_filter)) return;
    printf("  %-70s ", full);
    fflush(stdout);
    t_current_failed = 0;
    sft_clear_error();
    fn();
    if (t_current_failed) t_failed++;
    else { t_passed++; printf("ok\n"); }
    fflush(stdout);
}

int t_close(const char *file, int line, const char *what, const float *got, const float *want, int64_t n, double atol,
            double rtol) {
    int64_t i, worst = -1;
    double worst_excess = 0;
    for (i = 0; i < n; i++) {
        double g = got[i], w = want[i], d = fabs(g - w), tol = atol + rtol * fabs(w);
        if (isnan(g) && isnan(w)) continue;
        if (!(d <= tol) && (worst < 0 || !(d - tol <= worst_excess))) { worst = i; worst_excess = d - tol; }
    }
    if (worst < 0) return 1;
    t_failf(file, line, "%s: worst element [%lld] got %.9g want %.9g (|diff| %.3g > atol %.3g + rtol %.3g*|want|)", what,
            (long long)worst, got[worst], want[worst], fabs((double)got[worst] - want[worst]), atol, rtol);
    return 0;
}

int t_same(const char *file, int line, const char *what, const float *got, const float *want, int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++)
        if (memcmp(&got[i], &want[i], sizeof(float)) != 0) {
            t_failf(file, line, "%s: first bitwise difference at [%lld]: %.9g vs %.9g", what, (long long)i, got[i], want[i]);
            return 0;
        }
    return 1;
}

float t_rand(uint64_t *state, float lo, float hi) {
    uint64_t x = (*state += 0x9E3779B97F4A7C15ull);
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    x ^= x >> 31;
    return lo + (hi - lo) * (float)((double)(x >> 40) / (double)(1ull << 24));
}

sft_context *t_context(int threads) {
    sft_context_desc d;
    sft_context *ctx = NULL;
    memset(&d, 0, sizeof d);
    d.threads = threads;
    if (sft_context_create(&d, &ctx) != SFT_OK) t_failf(__FILE__, __LINE__, "context: %s", sft_last_error());
    else if (t_path != SFT_CPU_AUTO && sft_cpu_path_set(ctx, t_path) != SFT_OK)
        t_failf(__FILE__, __LINE__, "cpu path %s: %s", sft_cpu_path_name(t_path), sft_last_error());
    return ctx;
}

void t_set_cpu_path(sft_cpu_path path) {
    t_path = path;
    if (path == SFT_CPU_AUTO) t_suffix[0] = 0;
    else snprintf(t_suffix, sizeof t_suffix, " [%s]", sft_cpu_path_name(path));
}

int t_cpu_path_runnable(sft_cpu_path path) {
    sft_context *ctx = NULL;
    int ok;
    if (!sft_cpu_path_supported(path) || sft_context_create(NULL, &ctx) != SFT_OK) return 0;
    ok = sft_cpu_path_set(ctx, path) == SFT_OK;
    sft_context_destroy(ctx);
    sft_clear_error();
    return ok;
}

const char *t_tmpdir(void) { return t_dir; }

static void t_remove_tmpdir(void) {
    char cmd[300];
    if (!t_dir[0]) return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", t_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", t_dir);
}

int t_begin(int argc, char **argv) {
    snprintf(t_dir, sizeof t_dir, "/tmp/sft_test_XXXXXX");
    if (!mkdtemp(t_dir)) { perror("mkdtemp"); return 0; }
    atexit(t_remove_tmpdir);
    if (argc > 1) t_filter = argv[1];
    return 1;
}

int t_end(void) {
    printf("%d passed, %d failed\n", t_passed, t_failed);
    return t_failed ? 1 : 0;
}

const void *t_st_data(const sft_st_file *f, const char *name, int64_t *count) {
    const sft_st_tensor *t = f ? sft_st_find(f, name) : NULL;
    if (count) *count = 0;
    if (!t) { t_failf(__FILE__, __LINE__, "fixture tensor '%s' is missing", name); return NULL; }
    if (count) *count = (int64_t)(t->nbytes / sft_dtype_size(t->dtype));
    return t->data;
}

int t_rel_close(const char *file, int line, const char *what, const float *got, const float *want, int64_t n, double tol) {
    int64_t i, worst = 0;
    double maxw = 0.0, maxd = -1.0;
    for (i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        if (fabs((double)want[i]) > maxw) maxw = fabs((double)want[i]);
        if (!(d <= maxd)) { maxd = d; worst = i; }
    }
    if (n == 0 || maxd <= tol * maxw) return 1;
    t_failf(file, line, "%s: max |diff| %.3g at [%lld] (got %.9g want %.9g) is %.3g of max |want| %.3g (tolerance %.1g)", what,
            maxd, (long long)worst, got[worst], want[worst], maxw > 0 ? maxd / maxw : maxd, maxw, tol);
    return 0;
}

sft_json *t_json_file(sft_context *ctx, const char *path) {
    char *text = NULL;
    size_t len = 0;
    sft_json *j = NULL;
    sft_status s = sft_file_read(ctx, path, 0, &text, &len);
    if (s == SFT_OK) s = sft_json_parse(ctx, text, len, path, NULL, &j);
    if (s != SFT_OK) t_failf(__FILE__, __LINE__, "%s: %s", path, sft_last_error());
    sft_free(ctx, text);
    return j;
}

sft_tensor *t_sum_product(sft_context *ctx, sft_tensor *y, sft_tensor *g) {
    int64_t shp[2];
    sft_tensor *yf = NULL, *gf = NULL, *loss = NULL;
    shp[0] = 1; shp[1] = sft_tensor_numel(y);
    if (sft_reshape(ctx, y, 2, shp, &yf) == SFT_OK && sft_reshape(ctx, g, 2, shp, &gf) == SFT_OK &&
        sft_matmul(ctx, yf, gf, 0, 1, &loss) == SFT_OK)
        return loss;
    t_failf(__FILE__, __LINE__, "t_sum_product: %s", sft_last_error());
    return NULL;
}
