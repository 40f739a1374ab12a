/* main.c - the CPU test program and the one translation unit that compiles
   sft.h's implementation (the suites and the runner include sft.h plainly, so
   every build of the tests also checks that the header links across
   translation units).

   usage: test_sft [substring]   runs only the tests whose name contains it */
#define SFT_IMPLEMENTATION
#include "../sft.h"
#include "test.h"

void suite_core(void);
void suite_json(void);
void suite_safetensors(void);
void suite_tensor(void);
void suite_ops(void);
void suite_autograd(void);

void suite_paths(void);

int main(int argc, char **argv) {
    int path;
    if (!t_begin(argc, argv)) return 2;
    printf("core\n");        suite_core();
    printf("json\n");        suite_json();
    printf("safetensors\n"); suite_safetensors();
    printf("tensor\n");      suite_tensor();
    /* the kernel and op suites run once on every CPU path this machine has */
    for (path = SFT_CPU_PORTABLE; path < SFT_CPU_PATH_COUNT; path++) {
        if (!t_cpu_path_runnable((sft_cpu_path)path)) {
            printf("ops, autograd [%s]: not on this machine or build, skipped\n", sft_cpu_path_name((sft_cpu_path)path));
            continue;
        }
        t_set_cpu_path((sft_cpu_path)path);
        printf("ops [%s]\n", sft_cpu_path_name((sft_cpu_path)path));      suite_ops();
        printf("autograd [%s]\n", sft_cpu_path_name((sft_cpu_path)path)); suite_autograd();
    }
    t_set_cpu_path(SFT_CPU_AUTO);
    printf("paths\n");       suite_paths();
    return t_end();
}
