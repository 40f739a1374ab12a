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

int main(int argc, char **argv) {
    if (!t_begin(argc, argv)) return 2;
    printf("core\n");        suite_core();
    printf("json\n");        suite_json();
    printf("safetensors\n"); suite_safetensors();
    printf("tensor\n");      suite_tensor();
    printf("ops\n");         suite_ops();
    printf("autograd\n");    suite_autograd();
    return t_end();
}
