/* fuzz.h - what every libFuzzer harness in tests/fuzz shares: a scratch folder
   of the process, writing the input to a file there, one context, and the
   repository root (the fixtures). Each harness defines LLVMFuzzerTestOneInput
   and links against build/fuzz/sft.o (sft.h's implementation, compiled once
   with the same sanitizers). A harness never fails on bad input: the library
   must return a status; a crash, a sanitizer report, a leak or a hang is the
   finding. Built and run by `make fuzz` (FUZZ_SECONDS per target). */
#ifndef SFT_FUZZ_H
#define SFT_FUZZ_H

#include "../../sft.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* fz_dir: a folder of this process (under TMPDIR), made on first use */
static const char *fz_dir(void) {
    static char dir[512];
    if (!dir[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/sft-fuzz-%ld", tmp && *tmp ? tmp : "/tmp", (long)getpid());
        mkdir(dir, 0700);
    }
    return dir;
}

/* fz_path: name inside fz_dir() (a static buffer per slot 0..3) */
static const char *fz_path(int slot, const char *name) {
    static char buf[4][600];
    snprintf(buf[slot & 3], sizeof buf[0], "%s/%s", fz_dir(), name);
    return buf[slot & 3];
}

static void fz_write(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); abort(); }
    if (size) fwrite(data, 1, size, f);
    fclose(f);
}

/* fz_root: the repository root, where tests/fixtures is (SFT_ROOT, else .) */
static const char *fz_fixture(const char *rel) {
    static char buf[4][600];
    static int next;
    const char *root = getenv("SFT_ROOT");
    char *b = buf[next++ & 3];
    snprintf(b, sizeof buf[0], "%s/tests/fixtures/%s", root && *root ? root : ".", rel);
    return b;
}

static sft_context *fz_ctx(void) {
    static sft_context *ctx;
    if (!ctx && sft_context_create(NULL, &ctx) != SFT_OK) { fprintf(stderr, "fuzz: no context: %s\n", sft_last_error()); abort(); }
    return ctx;
}

/* fz_split: the input cut at the first "\n----\n" into two parts (b empty when absent) */
static void fz_split(const uint8_t *data, size_t size, size_t *a_len, const uint8_t **b, size_t *b_len) {
    size_t i;
    for (i = 0; i + 6 <= size; i++)
        if (memcmp(data + i, "\n----\n", 6) == 0) { *a_len = i; *b = data + i + 6; *b_len = size - i - 6; return; }
    *a_len = size; *b = data + size; *b_len = 0;
}

#endif
