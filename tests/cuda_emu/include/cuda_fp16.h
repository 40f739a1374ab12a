/* include/cuda_fp16.h - __half and its conversions come from cuda_emu.h. */
#include "../cuda_emu.h"
