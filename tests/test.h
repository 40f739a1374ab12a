/* test.h - the tiny test runner every test file uses.

   A test is a function `static void name(void)` holding CHECKs; a suite function
   runs its tests with RUN(name). A test passes when none of its checks failed.
   tests/main.c calls every suite; tests/runner.c implements what is declared here
   and prints the closing line "N passed, M failed". */
#ifndef SFT_TEST_H
#define SFT_TEST_H

#include "../sft.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

void t_run(const char *name, void (*fn)(void));
void t_failf(const char *file, int line, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* t_close: compare n floats; on failure report the worst element, its index, both
   values and the tolerance (|got-want| <= atol + rtol*|want|). NaN equals NaN. */
int t_close(const char *file, int line, const char *what, const float *got, const float *want, int64_t n, double atol,
            double rtol);
/* t_same: bitwise equality of n floats, reporting the first difference. */
int t_same(const char *file, int line, const char *what, const float *got, const float *want, int64_t n);
/* t_tmpdir: a fresh directory for this process's files (removed at exit). */
const char *t_tmpdir(void);
/* t_context: a context with the given thread count (a failure fails the test),
   on the CPU path t_set_cpu_path chose (AUTO: the best this machine has). */
sft_context *t_context(int threads);
void t_set_cpu_path(sft_cpu_path path);
/* t_cpu_path_runnable: this machine and build can run the path's kernels. */
int t_cpu_path_runnable(sft_cpu_path path);
/* t_begin: set up (scratch directory, name filter from argv[1]); 0 on failure.
   t_end: print "N passed, M failed" and return the exit status. */
int t_begin(int argc, char **argv);
int t_end(void);
/* t_st_data: the data of tensor name in a fixture file (a failure if absent) and
   its element count. */
const void *t_st_data(const sft_st_file *f, const char *name, int64_t *count);
/* t_sum_product: loss = sum(y * g) for a g of y's size (a [1, 1] matmul of the
   flattened tensors): its gradient with respect to y is g. */
sft_tensor *t_sum_product(sft_context *ctx, sft_tensor *y, sft_tensor *g);
/* t_json_file: a fixture's JSON file parsed (a failure, and NULL, if it cannot be). */
sft_json *t_json_file(sft_context *ctx, const char *path);
/* t_rel_close: max |got - want| <= tol * max |want| (the parity measure: the
   largest difference relative to the tensor's largest magnitude). */
int t_rel_close(const char *file, int line, const char *what, const float *got, const float *want, int64_t n, double tol);
#define CHECK_REL(what, got, want, n, tol) t_rel_close(__FILE__, __LINE__, what, got, want, n, tol)
/* t_rand: a deterministic uniform float in [lo, hi) from a test-local state. */
float t_rand(uint64_t *state, float lo, float hi);

#define RUN(fn) t_run(#fn, fn)
#define CHECK(cond) do { if (!(cond)) t_failf(__FILE__, __LINE__, "CHECK(%s)", #cond); } while (0)
#define CHECK_MSG(cond, ...) do { if (!(cond)) t_failf(__FILE__, __LINE__, __VA_ARGS__); } while (0)
#define CHECK_OK(expr) do { sft_status t_s_ = (expr); \
        if (t_s_ != SFT_OK) t_failf(__FILE__, __LINE__, "%s -> %s: %s", #expr, sft_status_str(t_s_), sft_last_error()); \
    } while (0)
#define CHECK_STATUS(expr, want) do { sft_status t_s_ = (expr); \
        if (t_s_ != (want)) t_failf(__FILE__, __LINE__, "%s -> %s, want %s (%s)", #expr, sft_status_str(t_s_), \
                                    sft_status_str(want), sft_last_error()); \
    } while (0)
/* CHECK_ERROR_MENTIONS: the last error message contains text. */
#define CHECK_ERROR_MENTIONS(text) do { if (!strstr(sft_last_error(), (text))) \
        t_failf(__FILE__, __LINE__, "error message \"%s\" does not mention \"%s\"", sft_last_error(), (text)); } while (0)
#define CHECK_CLOSE(what, got, want, n, atol, rtol) t_close(__FILE__, __LINE__, what, got, want, n, atol, rtol)
#define CHECK_SAME(what, got, want, n) t_same(__FILE__, __LINE__, what, got, want, n)

#endif
