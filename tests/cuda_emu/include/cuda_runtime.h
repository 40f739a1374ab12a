/* include/cuda_runtime.h - first on the include path of an emulator build
   (g++ -DCUDA_EMU -Itests/cuda_emu/include ...): the CUDA runtime and the
   device built-ins come from cuda_emu.h. */
#include "../cuda_emu.h"
