/* include/cuda_bf16.h - __nv_bfloat16 and its conversions come from cuda_emu.h. */
#include "../cuda_emu.h"
