/* cuda_emu.h - run the CUDA kernels of sft_cuda.cuh on the CPU, to test what
   they compute (not how fast).

   sft.h has no GPU on its development and CI machines. This header lets a host
   C++17 compiler (g++, clang++) build the very source nvcc builds: put
   tests/cuda_emu/include first on the include path and define CUDA_EMU; then
   <cuda_runtime.h> is this file. It supplies what nvcc and the CUDA runtime
   would:
     qualifiers      __global__ __device__ __host__ __shared__ __constant__ ...
     indices         threadIdx blockIdx blockDim gridDim warpSize
     block barrier   __syncthreads, __syncthreads_count/and/or
     warp            __shfl_sync/_up/_down/_xor (width 1..32), __syncwarp,
                     __ballot_sync __any_sync __all_sync __reduce_add/min/max_sync
     atomics         integer atomicAdd/Sub/Max/Min/Exch/CAS (floating-point
                     atomics do not compile: sft.h's kernels must not use them,
                     their order, and so their rounding, changes run to run)
     intrinsics      __fadd_rn __fmul_rn __fmaf_rn __dadd_rn __dmul_rn __expf rsqrtf
                     __float_as_uint ...
     bf16, fp16      __nv_bfloat16 and __half with round-to-nearest-even conversions
     tensor cores    mma.sync.m16n8k16 bf16 and f16 (a functional model, see
                     mma_tile), ldmatrix.x1/x2/x4 (.trans), cp.async with
                     commit/wait groups (see "ldmatrix and cp.async" below)
     runtime         cudaMalloc/Free/Memcpy/Memset(+Async), cudaMemGetInfo,
                     cudaGetLastError, ... on an emulated device of
                     CUDA_EMU_MEMORY_MB (default 16384) MiB
   Device memory is host memory, so AddressSanitizer checks every access a
   kernel makes.

   HOW A BLOCK RUNS
   Every CUDA thread of a block is a fiber with its own stack (mmap'd, with a
   guard page). One OS thread runs the fibers one at a time; each runs until it
   reaches a sync point (__syncthreads or a warp collective) or returns. When
   none can run, the scheduler releases
     a warp collective  when every lane named in the mask waits at one with the
                        same mask and kind; the results are computed from all
                        lanes' inputs at once, then the lanes run on;
     __syncthreads      when every thread of the block waits there.
   Anything else would hang or be undefined on a GPU: the emulator prints who
   waits where (file:line) and aborts. Blocks run one after another.

   CHECKS (beyond what a GPU reports)
     barrier divergence: a __syncthreads not reached by every thread, or reached
       at different source lines; a collective whose mask names an exited lane,
       a lane absent from the block, or a lane waiting elsewhere; mixed masks
     races inside a block: CUDA_EMU_SCHEDULE=forward|reverse|random[:seed]
       changes the order threads run between sync points (and the order of the
       blocks); a missing __syncthreads or __syncwarp makes results differ
       between schedules, which `make cuda-emu` compares
     dynamic shared memory is filled with 0xFF bytes (NaN) before each block
     a kernel pointer argument that is not device memory (a host pointer)
     cudaMemcpy/cudaMemset whose kind contradicts the pointers, or whose range
       runs past the end of a device allocation
   FAULT INJECTION AND ACCOUNTING (for tests)
     cuda_emu::fail_malloc_after(n): the cudaMalloc n calls from now (0: the
       next one) fails with cudaErrorMemoryAllocation
     cuda_emu::bytes_in_use(), cuda_emu::allocations(): what is allocated now

   LIMITS
     Blocks run one at a time, so races between blocks (two blocks writing one
     address, a block reading what another writes) are not seen; kernels here
     give every output element one owner block instead.
     Transcendentals (expf, __expf, logf, sinf, rsqrtf, ...) are the host libm's:
     bit-identical to sft.h's CPU code, but a GPU's differ by a few ulp. +, *,
     fmaf, sqrtf, division and conversions are the IEEE operations a GPU does
     (build with -ffp-contract=off so the host compiler fuses nothing).
     Static __shared__ arrays are function statics: not poisoned between blocks.
     Not emulated: inline PTX other than mma.sync m16n8k16, ldmatrix and
     cp.async (wgmma, TMA, ...), nvcuda::wmma, cuBLAS/cuBLASLt (sft_cuda.cuh runs its reference
     GEMM kernel instead), concurrent streams, textures, grid-wide sync,
     device-side malloc, printf formatting differences. */
#ifndef CUDA_EMU_H
#define CUDA_EMU_H

#if defined(__CUDACC__)
#error "cuda_emu.h replaces the CUDA toolchain for host compilers; nvcc uses <cuda_runtime.h>"
#endif

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <ucontext.h>
#include <sys/mman.h>
#include <unistd.h>
#include <functional>
#include <iterator>
#include <map>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#  define CUDA_EMU_ASAN 1
#elif defined(__has_feature)
#  if __has_feature(address_sanitizer)
#    define CUDA_EMU_ASAN 1
#  endif
#endif
#ifdef CUDA_EMU_ASAN
#  include <sanitizer/common_interface_defs.h>
#  include <sanitizer/asan_interface.h>
#endif

/* ---- qualifiers -------------------------------------------------------------
   __shared__ variables become function statics: one object per kernel, shared by
   the block's fibers, reused by the next block (blocks never run concurrently). */
#define __global__
#define __device__
#define __host__
#define __constant__
#define __managed__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static
#define __grid_constant__

/* ---- vector types (the subset kernels use) --------------------------------- */
struct uint3 { unsigned x, y, z; };
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};
struct alignas(8) float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) int2 { int x, y; };
struct alignas(16) int4 { int x, y, z, w; };
struct alignas(16) uint4 { unsigned x, y, z, w; };
static inline float2 make_float2(float x, float y) { float2 v = {x, y}; return v; }
static inline float4 make_float4(float x, float y, float z, float w) { float4 v = {x, y, z, w}; return v; }

/* ---- runtime types ------------------------------------------------------------ */
typedef enum cudaError {
    cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorMemoryAllocation = 2, cudaErrorInitializationError = 3,
    cudaErrorInvalidConfiguration = 9, cudaErrorInvalidDevicePointer = 17, cudaErrorInvalidMemcpyDirection = 21,
    cudaErrorInsufficientDriver = 35, cudaErrorNoDevice = 100, cudaErrorInvalidDevice = 101,
    cudaErrorLaunchFailure = 719
} cudaError_t;
typedef enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0, cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2, cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4
} cudaMemcpyKind;
typedef struct CUstream_st *cudaStream_t;
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };

inline constexpr int warpSize = 32;

namespace cuda_emu {

/* ---- fibers -------------------------------------------------------------------
   x86-64: a 10-instruction switch (callee-saved registers, mxcsr, x87 control
   word); ~10 ns. Elsewhere: ucontext (a system call per switch, ~0.3 us). */
#if defined(__x86_64__) && !defined(CUDA_EMU_UCONTEXT)
#define CUDA_EMU_ASM_SWITCH 1
extern "C" void cuda_emu_switch(void **save_sp, void *next_sp);
__asm__(".text\n"
        ".weak cuda_emu_switch\n"
        ".type cuda_emu_switch,@function\n"
        "cuda_emu_switch:\n"
        "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
        "  subq $8, %rsp\n  stmxcsr (%rsp)\n  fnstcw 4(%rsp)\n"
        "  movq %rsp, (%rdi)\n  movq %rsi, %rsp\n"
        "  ldmxcsr (%rsp)\n  fldcw 4(%rsp)\n  addq $8, %rsp\n"
        "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
        "  ret\n"
        ".size cuda_emu_switch,.-cuda_emu_switch\n");
#endif

enum { T_RUN, T_BAR, T_WARP, T_DONE };
enum { W_SYNC, W_IDX, W_UP, W_DOWN, W_XOR, W_BALLOT, W_ANY, W_ALL, W_RADD, W_RMIN, W_RMAX, W_MMA, W_LDM };

/* one lane's operands of an emulated mma.sync (see mma_m16n8k16_bf16 below);
   f16: the halves are IEEE binary16, else bf16 */
struct mma_args { const uint32_t *a, *b; const float *c; float *d; int f16; };
/* one lane's ldmatrix: the row address it supplies, where its registers go */
struct ldm_args { const void *row; uint32_t *out; int num, trans; };
/* one cp.async copy, done when its group is waited for */
struct cp_copy { void *dst; const void *src; int bytes, src_bytes; };
enum { SCHED_FORWARD, SCHED_REVERSE, SCHED_RANDOM };

struct thread_t {
#ifdef CUDA_EMU_ASM_SWITCH
    void *sp;
#else
    ucontext_t ctx;
#endif
    char *stack_lo;
    uint3 tid;
    int linear, state;
    const char *file; int line;            /* where it waits                      */
    int op; unsigned mask; uint64_t val; int arg, width; uint64_t res;
    std::vector<cp_copy> cp_open;                  /* cp.async copies not yet committed */
    std::vector<std::vector<cp_copy>> cp_groups;   /* committed groups, oldest first   */
};

struct state_t {
    dim3 grid, block;
    uint3 bidx;
    std::vector<thread_t> threads;
    char *stacks = nullptr; size_t stack_size = 0, stack_stride = 0; int stack_count = 0;
#ifdef CUDA_EMU_ASM_SWITCH
    void *sched_sp = nullptr;
#else
    ucontext_t sched;
#endif
    const void *main_stack_lo = nullptr; size_t main_stack_size = 0;   /* for ASan */
    thread_t *cur = nullptr;
    std::function<void()> body;
    std::vector<unsigned char> dyn;
    size_t dyn_limit = 48 * 1024;
    cudaError_t last_error = cudaSuccess;
    int schedule = -1; uint64_t seed = 1;
    std::vector<int> order;
    std::map<uintptr_t, size_t> allocs;   /* device allocations: start -> size */
    size_t bytes = 0, capacity = 0;        /* in use; the emulated device's memory */
    long long fail_malloc_in = -1;         /* cudaMalloc calls until one fails (-1: none) */
    long long launches = 0, blocks = 0, switches = 0;
};
inline state_t g;
inline void host_access(bool on);   /* device memory: see "device memory" below */
inline bool device_range(const void *p, size_t n);

[[noreturn]] __attribute__((format(printf, 1, 2))) inline void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "cuda_emu: block (%u,%u,%u): ", g.bidx.x, g.bidx.y, g.bidx.z);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    fflush(stderr);
    abort();
}

inline uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

inline void read_env(void) {
    const char *s;
    if (g.schedule >= 0) return;
    g.schedule = SCHED_FORWARD;
    s = getenv("CUDA_EMU_SCHEDULE");
    if (s && strncmp(s, "reverse", 7) == 0) g.schedule = SCHED_REVERSE;
    if (s && strncmp(s, "random", 6) == 0) {
        g.schedule = SCHED_RANDOM;
        if (s[6] == ':') g.seed = strtoull(s + 7, NULL, 10);
    }
}

/* ---- switching --------------------------------------------------------------- */
inline void asan_start(void **fake, const void *lo, size_t size) {
#ifdef CUDA_EMU_ASAN
    __sanitizer_start_switch_fiber(fake, lo, size);
#else
    (void)fake; (void)lo; (void)size;
#endif
}
inline void asan_finish(void *fake, const void **lo, size_t *size) {
#ifdef CUDA_EMU_ASAN
    __sanitizer_finish_switch_fiber(fake, lo, size);
#else
    (void)fake; (void)lo; (void)size;
#endif
}

/* yield: the running fiber goes back to the scheduler (its state already set). */
inline void yield(void) {
    thread_t *t = g.cur;
    void *fake = nullptr;
    g.switches++;
    asan_start(&fake, g.main_stack_lo, g.main_stack_size);
#ifdef CUDA_EMU_ASM_SWITCH
    cuda_emu_switch(&t->sp, g.sched_sp);
#else
    swapcontext(&t->ctx, &g.sched);
#endif
    asan_finish(fake, &g.main_stack_lo, &g.main_stack_size);
}

inline void fiber_main(void) {
    thread_t *t = g.cur;
    asan_finish(nullptr, &g.main_stack_lo, &g.main_stack_size);
    g.body();
    if (!t->cp_open.empty() || !t->cp_groups.empty())
        die("thread %d returned with cp.async copies it never waited for (cp.async.wait_group / wait_all)", t->linear);
    t->state = T_DONE;
    asan_start(nullptr, g.main_stack_lo, g.main_stack_size);   /* this fiber is over */
#ifdef CUDA_EMU_ASM_SWITCH
    cuda_emu_switch(&t->sp, g.sched_sp);
    __builtin_unreachable();
#endif
    /* ucontext: returning continues at uc_link (the scheduler) */
}

inline void resume(thread_t *t) {
    void *fake = nullptr;
    g.cur = t;
    g.switches++;
    asan_start(&fake, t->stack_lo, g.stack_size);
#ifdef CUDA_EMU_ASM_SWITCH
    cuda_emu_switch(&g.sched_sp, t->sp);
#else
    swapcontext(&g.sched, &t->ctx);
#endif
    asan_finish(fake, nullptr, nullptr);
    g.cur = nullptr;
}

inline void stacks_reserve(int n) {
    if (n <= g.stack_count) return;
    if (g.stacks) munmap(g.stacks, g.stack_stride * (size_t)g.stack_count);
    const char *kb = getenv("CUDA_EMU_STACK_KB");
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    g.stack_size = (size_t)(kb ? atoi(kb) : 256) * 1024;
    g.stack_size = (g.stack_size + page - 1) / page * page;
    g.stack_stride = g.stack_size + page;                        /* + a guard page below */
    void *m = mmap(NULL, g.stack_stride * (size_t)n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) die("cannot map %d fiber stacks", n);
    g.stacks = (char *)m;
    g.stack_count = n;
    for (int i = 0; i < n; i++) mprotect(g.stacks + (size_t)i * g.stack_stride, page, PROT_NONE);
}

inline void fiber_init(thread_t *t, int i) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    t->stack_lo = g.stacks + (size_t)i * g.stack_stride + page;
#ifdef CUDA_EMU_ASAN
    /* a fiber that ended left its frames' redzones poisoned on this reused
       stack (it never returns through them); start clean */
    __asan_unpoison_memory_region(t->stack_lo, g.stack_size);
#endif
#ifdef CUDA_EMU_ASM_SWITCH
    /* the frame cuda_emu_switch pops: control words, r15..rbp, then the return
       address (fiber_main), above it a zero return address for fiber_main (which
       never returns); fiber_main starts with rsp = 8 mod 16, as after a call */
    uintptr_t top = ((uintptr_t)(t->stack_lo + g.stack_size)) & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)top;
    *--sp = 0;
    *--sp = (uint64_t)(uintptr_t)&fiber_main;
    for (int r = 0; r < 6; r++) *--sp = 0;
    uint32_t cw[2];
    __asm__ volatile("stmxcsr %0" : "=m"(cw[0]));
    __asm__ volatile("fnstcw %0" : "=m"(cw[1]));
    *--sp = (uint64_t)cw[0] | ((uint64_t)(cw[1] & 0xffff) << 32);
    t->sp = sp;
#else
    getcontext(&t->ctx);
    t->ctx.uc_stack.ss_sp = t->stack_lo;
    t->ctx.uc_stack.ss_size = g.stack_size;
    t->ctx.uc_link = &g.sched;
    makecontext(&t->ctx, (void (*)(void))fiber_main, 0);
#endif
}

/* ---- sync points ------------------------------------------------------------- */
inline const char *state_name(int s) {
    return s == T_RUN ? "running" : s == T_BAR ? "at __syncthreads" : s == T_WARP ? "at a warp collective" : "exited";
}

inline void require_kernel(const char *what) {
    if (!g.cur) {
        fprintf(stderr, "cuda_emu: %s called outside a kernel\n", what);
        abort();
    }
}

inline void check_warp_group(thread_t *t, int w0, int lanes) {
    int l = t->linear - w0;
    if (!(t->mask >> l & 1u))
        die("thread %d (%s:%d): mask 0x%08x does not name the calling lane %d", t->linear, t->file, t->line, t->mask, l);
    for (int j = 0; j < 32; j++) {
        if (!(t->mask >> j & 1u)) continue;
        if (j >= lanes)
            die("thread %d (%s:%d): mask 0x%08x names lane %d, absent (the block has %d threads)", t->linear, t->file,
                t->line, t->mask, j, (int)g.threads.size());
        thread_t *u = &g.threads[(size_t)(w0 + j)];
        if (u->state != T_WARP)
            die("thread %d waits at a warp collective (%s:%d, mask 0x%08x) that lane %d can never join: it is %s%s%s%s",
                t->linear, t->file, t->line, t->mask, j, state_name(u->state), u->state == T_BAR ? " (" : "",
                u->state == T_BAR ? u->file : "", u->state == T_BAR ? ")" : "");
        if (u->mask != t->mask || u->op != t->op)
            die("lanes %d (%s:%d) and %d (%s:%d) of one warp meet at different collectives or masks (0x%08x vs 0x%08x)",
                t->linear - w0, t->file, t->line, j, u->file, u->line, t->mask, u->mask);
    }
}

inline float bf16_bits_to_float(uint32_t h) {
    uint32_t u = (h & 0xffffu) << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* IEEE binary16 bits -> float (exact) */
inline float f16_bits_to_float(uint32_t h) {
    uint32_t sign = (h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, u;
    float f;
    if (e == 0x1f) u = sign | 0x7f800000u | (m << 13);                     /* inf, NaN */
    else if (e) u = sign | ((e + 112u) << 23) | (m << 13);                 /* normal */
    else {                                                                  /* zero, subnormal: m 2^-24 */
        f = (float)m * 5.9604644775390625e-8f;
        return sign ? -f : f;
    }
    memcpy(&f, &u, 4);
    return f;
}

/* mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}.{bf16,f16}.f32 for a whole warp, with the
   fragment layout of the PTX ISA (groupID = lane >> 2, tig = lane % 4):
     A 16x16, 4 regs of 2 bf16 (low half first): a_i at row gid + 8*((i>>1)&1),
              col 2*tig + (i&1) + 8*(i>>2)
     B 16x8,  2 regs: b_i at row (k) 2*tig + (i&1) + 8*(i>>1), col (n) gid
     C, D 16x8 f32: c_i at row gid + 8*(i>>1), col 2*tig + (i&1)
   D = C + A B summed in k order with fmaf (tensor cores add in another order:
   compare with a tolerance across GPU and emulator). */
inline void mma_tile(thread_t *th, unsigned mask) {
    float A[16][16], B[16][8], Cm[16][8];
    if (mask != 0xffffffffu) die("mma.sync needs all 32 lanes (mask 0x%08x)", mask);
    for (int l = 0; l < 32; l++) {
        const mma_args *m = (const mma_args *)(uintptr_t)th[l].val;
        int gid = l >> 2, tig = l & 3;
        float (*half)(uint32_t) = m->f16 ? f16_bits_to_float : bf16_bits_to_float;
        if (m->f16 != ((const mma_args *)(uintptr_t)th[0].val)->f16)
            die("lanes 0 and %d of one mma.sync name different types (bf16 and f16)", l);
        for (int i = 0; i < 8; i++) A[gid + 8 * ((i >> 1) & 1)][2 * tig + (i & 1) + 8 * (i >> 2)] = half((m->a[i >> 1] >> (16 * (i & 1))) & 0xffffu);
        for (int i = 0; i < 4; i++) B[2 * tig + (i & 1) + 8 * (i >> 1)][gid] = half((m->b[i >> 1] >> (16 * (i & 1))) & 0xffffu);
        for (int i = 0; i < 4; i++) Cm[gid + 8 * (i >> 1)][2 * tig + (i & 1)] = m->c[i];
    }
    for (int l = 0; l < 32; l++) {
        const mma_args *m = (const mma_args *)(uintptr_t)th[l].val;
        int gid = l >> 2, tig = l & 3;
        for (int i = 0; i < 4; i++) {
            int r = gid + 8 * (i >> 1), c = 2 * tig + (i & 1);
            float acc = Cm[r][c];
            for (int k = 0; k < 16; k++) acc = fmaf(A[r][k], B[k][c], acc);
            m->d[i] = acc;
        }
    }
}

/* ldmatrix.sync.aligned.m8n8.x{1,2,4}[.trans].shared.b16 for a whole warp:
   matrix i (of num) has its 8 rows at the addresses lanes 8i .. 8i+7 supply
   (16 bytes each, 16-byte aligned). Register i of lane l receives matrix i's
   row l/4, columns 2 (l%4) and 2 (l%4) + 1 (the first in the low half); with
   .trans the transposed matrix's, i.e. column l/4, rows 2 (l%4) and 2 (l%4) + 1. */
inline void ldmatrix_tile(thread_t *th, unsigned mask) {
    uint16_t Mx[4][8][8];
    const ldm_args *m0 = (const ldm_args *)(uintptr_t)th[0].val;
    int num = m0->num, trans = m0->trans;
    if (mask != 0xffffffffu) die("ldmatrix needs all 32 lanes (mask 0x%08x)", mask);
    for (int l = 0; l < 32; l++) {
        const ldm_args *m = (const ldm_args *)(uintptr_t)th[l].val;
        if (m->num != num || m->trans != trans) die("lanes 0 and %d of one ldmatrix name different shapes", l);
        if (l >= 8 * num) continue;   /* lanes past the matrices supply no address */
        if (!m->row || (uintptr_t)m->row % 16)
            die("thread %d (%s:%d): ldmatrix row address %p is not 16-byte aligned", th[l].linear, th[l].file, th[l].line, m->row);
        memcpy(Mx[l / 8][l % 8], m->row, 16);
    }
    for (int l = 0; l < 32; l++) {
        const ldm_args *m = (const ldm_args *)(uintptr_t)th[l].val;
        int r = l / 4, c = 2 * (l % 4);
        for (int i = 0; i < num; i++)
            m->out[i] = trans ? (uint32_t)Mx[i][c][r] | ((uint32_t)Mx[i][c + 1][r] << 16)
                              : (uint32_t)Mx[i][r][c] | ((uint32_t)Mx[i][r][c + 1] << 16);
    }
}

inline void complete_warp(int w0, unsigned mask) {
    thread_t *th = &g.threads[(size_t)w0];
    int op = -1;
    uint64_t ballot = 0, sum = 0;
    for (int j = 0; j < 32; j++)
        if (mask >> j & 1u) {
            op = th[j].op;
            if (th[j].val) ballot |= 1ull << j;
            sum += (uint32_t)th[j].val;
        }
    if (op == W_MMA || op == W_LDM) {
        if (op == W_MMA) mma_tile(th, mask);
        else ldmatrix_tile(th, mask);
        for (int j = 0; j < 32; j++) th[j].state = T_RUN;
        return;
    }
    for (int j = 0; j < 32; j++) {
        if (!(mask >> j & 1u)) continue;
        thread_t *t = &th[j];
        int w = t->width, src = j;
        if (op >= W_IDX && op <= W_XOR && (w < 1 || w > 32 || (w & (w - 1))))
            die("thread %d (%s:%d): shuffle width %d is not a power of two in 1..32", t->linear, t->file, t->line, w);
        switch (op) {
        case W_IDX: src = (j / w) * w + ((t->arg % w) + w) % w; break;
        case W_UP: src = (j % w) >= t->arg ? j - t->arg : j; break;
        case W_DOWN: src = (j % w) + t->arg < w ? j + t->arg : j; break;
        case W_XOR: src = j ^ t->arg; if (src < 0 || src / w > j / w) src = j; break;
        default: break;
        }
        if (op >= W_IDX && op <= W_XOR) {
            if (!(mask >> src & 1u))
                die("thread %d (%s:%d): shuffle reads lane %d, which the mask 0x%08x leaves out (undefined)", t->linear,
                    t->file, t->line, src, mask);
            t->res = th[src].val;
        } else if (op == W_BALLOT) t->res = ballot;
        else if (op == W_ANY) t->res = ballot != 0;
        else if (op == W_ALL) t->res = ballot == (uint64_t)mask;
        else if (op == W_RADD) t->res = (uint32_t)sum;
        else if (op == W_RMIN || op == W_RMAX) {
            uint32_t r = 0;
            bool first = true;
            for (int k = 0; k < 32; k++) {
                if (!(mask >> k & 1u)) continue;
                uint32_t v = (uint32_t)th[k].val;
                bool less = t->arg ? (int32_t)v < (int32_t)r : v < r;   /* arg: signed */
                if (first || (op == W_RMIN ? less : (!less && v != r))) r = v;
                first = false;
            }
            t->res = r;
        } else t->res = 0;
    }
    for (int j = 0; j < 32; j++)
        if (mask >> j & 1u) th[j].state = T_RUN;
}

inline bool release_warps(void) {
    int n = (int)g.threads.size();
    bool any = false;
    for (int w0 = 0; w0 < n; w0 += 32) {
        int lanes = n - w0 < 32 ? n - w0 : 32;
        for (int l = 0; l < lanes; l++) {
            thread_t *t = &g.threads[(size_t)(w0 + l)];
            if (t->state != T_WARP) continue;
            check_warp_group(t, w0, lanes);
            complete_warp(w0, t->mask);
            any = true;
        }
    }
    return any;
}

inline bool release_barrier(void) {
    int at = 0, done = 0;
    thread_t *first = nullptr;
    for (auto &t : g.threads) {
        if (t.state == T_BAR) { at++; if (!first) first = &t; }
        else if (t.state == T_DONE) done++;
        else return false;
    }
    if (!at) return false;
    if (done)
        die("__syncthreads (%s:%d) reached by %d threads while %d had exited (hangs or is undefined on a GPU)",
            first->file, first->line, at, done);
    uint64_t count = 0, all = 1, any = 0;
    for (auto &t : g.threads) {
        if (t.line != first->line || strcmp(t.file, first->file) != 0)
            die("threads %d and %d wait at different __syncthreads (%s:%d and %s:%d)", first->linear, t.linear,
                first->file, first->line, t.file, t.line);
        count += t.val != 0; all &= t.val != 0; any |= t.val != 0;
    }
    for (auto &t : g.threads) {
        t.res = t.op == 1 ? count : t.op == 2 ? all : t.op == 3 ? any : 0;
        t.state = T_RUN;
    }
    return true;
}

inline void deadlock(void) {
    fprintf(stderr, "cuda_emu: block (%u,%u,%u): deadlock; threads:\n", g.bidx.x, g.bidx.y, g.bidx.z);
    for (auto &t : g.threads)
        fprintf(stderr, "  %4d (%u,%u,%u) %s %s:%d\n", t.linear, t.tid.x, t.tid.y, t.tid.z, state_name(t.state),
                t.file ? t.file : "-", t.line);
    abort();
}

inline void run_block(void) {
    int n = (int)g.threads.size();
    for (int i = 0; i < n; i++) {
        thread_t *t = &g.threads[(size_t)i];
        t->linear = i;
        t->tid.x = (unsigned)i % g.block.x;
        t->tid.y = ((unsigned)i / g.block.x) % g.block.y;
        t->tid.z = (unsigned)i / (g.block.x * g.block.y);
        t->state = T_RUN;
        t->file = nullptr; t->line = 0;
        fiber_init(t, i);
    }
    if (!g.dyn.empty()) memset(g.dyn.data(), 0xff, g.dyn.size());
    for (;;) {
        if (g.schedule == SCHED_RANDOM)
            for (int i = n - 1; i > 0; i--) std::swap(g.order[(size_t)i], g.order[(size_t)(splitmix(&g.seed) % (uint64_t)(i + 1))]);
        for (int k = 0; k < n; k++) {
            thread_t *t = &g.threads[(size_t)g.order[(size_t)k]];
            if (t->state == T_RUN) resume(t);
        }
        bool done = true;
        for (auto &t : g.threads) done &= t.state == T_DONE;
        if (done) return;
        if (release_warps()) continue;
        if (release_barrier()) continue;
        deadlock();
    }
}

/* p points into a device allocation (or, with end_ok, just past its end: a
   kernel may be given such a pointer as long as it reads nothing there) */
inline bool is_device_ptr(const void *p, bool end_ok = false) {
    auto it = g.allocs.upper_bound((uintptr_t)p);
    if (it == g.allocs.begin()) return false;
    --it;
    size_t size = it->second ? it->second : 1;
    return end_ok ? (uintptr_t)p <= it->first + size : (uintptr_t)p < it->first + size;
}

template <typename T> inline void check_arg(int i, const T &v) {
    if constexpr (std::is_pointer<T>::value) {
        if (v && !is_device_ptr((const void *)v, true) && !getenv("CUDA_EMU_HOST_POINTERS"))
            die("kernel argument %d (%p) is not device memory (a host pointer passed to a kernel?)", i, (const void *)v);
    }
    (void)i; (void)v;
}

template <typename Tuple, size_t... I> inline void check_args(const Tuple &t, std::index_sequence<I...>) {
    (check_arg((int)I, std::get<I>(t)), ...);
}

inline cudaError_t run_grid(dim3 grid, dim3 block, size_t shared) {
    read_env();
    unsigned long long nth = (unsigned long long)block.x * block.y * block.z;
    if (!grid.x || !grid.y || !grid.z || !nth || nth > 1024 || block.z > 64 || grid.y > 65535 || grid.z > 65535 ||
        grid.x > 0x7fffffffu)
        return g.last_error = cudaErrorInvalidConfiguration;
    if (shared > g.dyn_limit) return g.last_error = cudaErrorInvalidValue;
    g.launches++;
    g.grid = grid; g.block = block;
    g.threads.assign((size_t)nth, thread_t());
    g.order.resize((size_t)nth);
    for (size_t i = 0; i < nth; i++) g.order[i] = g.schedule == SCHED_REVERSE ? (int)(nth - 1 - i) : (int)i;
    g.dyn.assign(shared, 0xff);
    stacks_reserve((int)nth);
    unsigned long long nb = (unsigned long long)grid.x * grid.y * grid.z, s0 = g.seed % nb;
    for (unsigned long long b = 0; b < nb; b++) {
        unsigned long long k = b;
        if (g.schedule == SCHED_REVERSE) k = nb - 1 - b;
        if (g.schedule == SCHED_RANDOM && nb % 2654435761ull) k = (b * 2654435761ull + s0) % nb;   /* a prime: a permutation */
        g.bidx.x = (unsigned)(k % grid.x);
        g.bidx.y = (unsigned)((k / grid.x) % grid.y);
        g.bidx.z = (unsigned)(k / ((unsigned long long)grid.x * grid.y));
        run_block();
        g.blocks++;
    }
    return cudaSuccess;
}

template <typename... P, typename... A>
inline void launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t shared, cudaStream_t stream, A &&...args) {
    static_assert(sizeof...(P) == sizeof...(A), "kernel launched with the wrong number of arguments");
    (void)stream;
    if (g.cur) die("kernel launched from a kernel (dynamic parallelism is not emulated)");
    std::tuple<typename std::decay<P>::type...> params(std::forward<A>(args)...);
    check_args(params, std::index_sequence_for<P...>{});
    g.body = [&] { std::apply(kernel, params); };   /* each thread gets its own copy of the arguments */
    host_access(true);
    run_grid(grid, block, shared);
    host_access(false);
    g.body = nullptr;
}

template <typename T> inline T *dyn_shared(void) { return reinterpret_cast<T *>(g.dyn.data()); }

/* a sync point: the caller's state and inputs are set; wait for release */
inline uint64_t wait(int state, int op, unsigned mask, uint64_t val, int arg, int width, const char *file, int line) {
    require_kernel(state == T_BAR ? "__syncthreads" : "a warp collective");
    thread_t *t = g.cur;
    t->state = state; t->op = op; t->mask = mask; t->val = val; t->arg = arg; t->width = width;
    t->file = file; t->line = line;
    yield();
    return t->res;
}

template <typename T> inline uint64_t bits_of(T v) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffles move at most 8 bytes");
    uint64_t b = 0;
    memcpy(&b, &v, sizeof v);
    return b;
}
template <typename T> inline T of_bits(uint64_t b) {
    T v;
    memcpy(&v, &b, sizeof v);
    return v;
}

template <typename T> inline T shfl(int op, const char *f, int l, unsigned mask, T v, int arg, int width = 32) {
    return of_bits<T>(wait(T_WARP, op, mask, bits_of(v), arg, width, f, l));
}

} /* namespace cuda_emu */

/* ---- the kernel-side names ---------------------------------------------------- */
#define threadIdx (static_cast<const uint3 &>(cuda_emu::g.cur->tid))
#define blockIdx  (static_cast<const uint3 &>(cuda_emu::g.bidx))
#define blockDim  (static_cast<const dim3 &>(cuda_emu::g.block))
#define gridDim   (static_cast<const dim3 &>(cuda_emu::g.grid))

#define __syncthreads() ((void)cuda_emu::wait(cuda_emu::T_BAR, 0, 0, 0, 0, 0, __FILE__, __LINE__))
#define __syncthreads_count(p) ((int)cuda_emu::wait(cuda_emu::T_BAR, 1, 0, (p) != 0, 0, 0, __FILE__, __LINE__))
#define __syncthreads_and(p) ((int)cuda_emu::wait(cuda_emu::T_BAR, 2, 0, (p) != 0, 0, 0, __FILE__, __LINE__))
#define __syncthreads_or(p) ((int)cuda_emu::wait(cuda_emu::T_BAR, 3, 0, (p) != 0, 0, 0, __FILE__, __LINE__))
/* __syncwarp() and __syncwarp(mask): the call object takes the optional mask
   (standard C++17 has no portable way to drop the comma of an empty __VA_ARGS__) */
#define __syncwarp cuda_emu::syncwarp_at{__FILE__, __LINE__}
#define __shfl_sync(...) cuda_emu::shfl(cuda_emu::W_IDX, __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_up_sync(...) cuda_emu::shfl(cuda_emu::W_UP, __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_down_sync(...) cuda_emu::shfl(cuda_emu::W_DOWN, __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_xor_sync(...) cuda_emu::shfl(cuda_emu::W_XOR, __FILE__, __LINE__, __VA_ARGS__)
#define __ballot_sync(m, p) ((unsigned)cuda_emu::wait(cuda_emu::T_WARP, cuda_emu::W_BALLOT, (m), (p) != 0, 0, 32, __FILE__, __LINE__))
#define __any_sync(m, p) ((int)cuda_emu::wait(cuda_emu::T_WARP, cuda_emu::W_ANY, (m), (p) != 0, 0, 32, __FILE__, __LINE__))
#define __all_sync(m, p) ((int)cuda_emu::wait(cuda_emu::T_WARP, cuda_emu::W_ALL, (m), (p) != 0, 0, 32, __FILE__, __LINE__))
#define __reduce_add_sync(m, v) ((unsigned)cuda_emu::wait(cuda_emu::T_WARP, cuda_emu::W_RADD, (m), (uint32_t)(v), 0, 32, __FILE__, __LINE__))
#define __reduce_min_sync(m, v) cuda_emu::reduce_minmax(cuda_emu::W_RMIN, (m), (v), __FILE__, __LINE__)
#define __reduce_max_sync(m, v) cuda_emu::reduce_minmax(cuda_emu::W_RMAX, (m), (v), __FILE__, __LINE__)

namespace cuda_emu {
struct syncwarp_at {
    const char *file; int line;
    void operator()(unsigned mask = 0xffffffffu) const { (void)wait(T_WARP, W_SYNC, mask, 0, 0, 32, file, line); }
};
template <typename T> inline T reduce_minmax(int op, unsigned mask, T v, const char *f, int l) {
    static_assert(sizeof(T) == 4 && std::is_integral<T>::value, "__reduce_min/max_sync take int or unsigned");
    return (T)(uint32_t)wait(T_WARP, op, mask, (uint32_t)v, std::is_signed<T>::value, 32, f, l);
}
inline void mma_m16n8k16_bf16(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4], const char *f, int l) {
    mma_args m = {a, b, c, d, 0};
    (void)wait(T_WARP, W_MMA, 0xffffffffu, (uint64_t)(uintptr_t)&m, 0, 32, f, l);
}
inline void mma_m16n8k16_f16(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4], const char *f, int l) {
    mma_args m = {a, b, c, d, 1};
    (void)wait(T_WARP, W_MMA, 0xffffffffu, (uint64_t)(uintptr_t)&m, 0, 32, f, l);
}

/* ---- ldmatrix and cp.async ------------------------------------------------------
   ldmatrix (num = 1, 2 or 4 matrices; see ldmatrix_tile) is a warp collective:
   every lane waits until all 32 arrive, then all registers are filled at once.
   cp.async copies 4, 8 or 16 bytes from global to shared memory (src_bytes <
   bytes: the rest zero-filled, as the src-size operand does). The copy is
   only recorded; commit_group closes the thread's open copies into a group, and
   wait_group(n) performs every group but the n newest (wait_all: every copy,
   committed or not). So shared memory read before the wait still holds what
   was there (0xFF bytes in dynamic shared memory): a missing wait shows as
   wrong results, a missing __syncthreads after it as a race between schedules.
   A thread that returns with copies never waited for stops the run. */
inline void ldmatrix(uint32_t *out, const void *row, int num, int trans, const char *f, int l) {
    ldm_args m = {row, out, num, trans};
    (void)wait(T_WARP, W_LDM, 0xffffffffu, (uint64_t)(uintptr_t)&m, 0, 32, f, l);
}
inline void cp_async(void *dst, const void *src, int bytes, int src_bytes, const char *f, int l) {
    require_kernel("cp.async");
    thread_t *t = g.cur;
    if (bytes != 4 && bytes != 8 && bytes != 16) die("thread %d (%s:%d): cp.async of %d bytes (4, 8 or 16)", t->linear, f, l, bytes);
    if (src_bytes < 0 || src_bytes > bytes) die("thread %d (%s:%d): cp.async src-size %d of %d", t->linear, f, l, src_bytes, bytes);
    if ((uintptr_t)dst % (uintptr_t)bytes || (src_bytes && (uintptr_t)src % (uintptr_t)bytes))
        die("thread %d (%s:%d): cp.async of %d bytes from %p to %p is not aligned to its size", t->linear, f, l, bytes, src, dst);
    if (src_bytes && !device_range(src, (size_t)src_bytes))
        die("thread %d (%s:%d): cp.async reads %p, not %d bytes of one device allocation", t->linear, f, l, src, src_bytes);
    t->cp_open.push_back(cp_copy{dst, src, bytes, src_bytes});
}
inline void cp_perform(const std::vector<cp_copy> &v) {
    for (const cp_copy &c : v) {
        if (c.src_bytes) memcpy(c.dst, c.src, (size_t)c.src_bytes);
        memset((char *)c.dst + c.src_bytes, 0, (size_t)(c.bytes - c.src_bytes));
    }
}
inline void cp_async_commit(void) {
    require_kernel("cp.async.commit_group");
    thread_t *t = g.cur;
    t->cp_groups.push_back(std::move(t->cp_open));   /* an empty group too, as PTX allows */
    t->cp_open.clear();
}
inline void cp_async_wait(int newest_left) {
    require_kernel("cp.async.wait_group");
    thread_t *t = g.cur;
    while ((int)t->cp_groups.size() > newest_left) {
        cp_perform(t->cp_groups.front());
        t->cp_groups.erase(t->cp_groups.begin());
    }
}
inline void cp_async_wait_all(void) {
    require_kernel("cp.async.wait_all");
    cp_async_commit();
    cp_async_wait(0);
}
} /* namespace cuda_emu */

/* __activemask: lanes that have not exited (the emulator does not model convergence) */
inline unsigned __activemask(void) {
    cuda_emu::require_kernel("__activemask");
    int me = cuda_emu::g.cur->linear, w0 = me / 32 * 32, n = (int)cuda_emu::g.threads.size();
    unsigned m = 0;
    for (int j = 0; j < 32 && w0 + j < n; j++)
        if (cuda_emu::g.threads[(size_t)(w0 + j)].state != cuda_emu::T_DONE) m |= 1u << j;
    return m;
}

/* ---- atomics (blocks and fibers never run concurrently: plain read-modify-write) */
template <typename T, typename U> inline T atomicAdd(T *p, U v) {
    static_assert(std::is_integral<T>::value, "floating-point atomics add in a different order on every run: sft.h does not use them");
    T o = *p; *p = (T)(o + (T)v); return o;
}
template <typename T, typename U> inline T atomicSub(T *p, U v) {
    static_assert(std::is_integral<T>::value, "floating-point atomics: see atomicAdd");
    T o = *p; *p = (T)(o - (T)v); return o;
}
template <typename T, typename U> inline T atomicExch(T *p, U v) { T o = *p; *p = (T)v; return o; }
template <typename T, typename U> inline T atomicMax(T *p, U v) { T o = *p; if ((T)v > o) *p = (T)v; return o; }
template <typename T, typename U> inline T atomicMin(T *p, U v) { T o = *p; if ((T)v < o) *p = (T)v; return o; }
template <typename T, typename U, typename V> inline T atomicCAS(T *p, U cmp, V v) { T o = *p; if (o == (T)cmp) *p = (T)v; return o; }
inline void __threadfence(void) {}
inline void __threadfence_block(void) {}
template <typename T> inline T __ldg(const T *p) { return *p; }

/* ---- intrinsics ---------------------------------------------------------------- */
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }
inline float __fsqrt_rn(float a) { return sqrtf(a); }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __fdividef(float a, float b) { return a / b; }
inline float __expf(float a) { return expf(a); }
inline float __logf(float a) { return logf(a); }
inline float __sinf(float a) { return sinf(a); }
inline float __cosf(float a) { return cosf(a); }
inline float __powf(float a, float b) { return powf(a, b); }
inline float rsqrtf(float a) { return 1.0f / sqrtf(a); }
inline float __saturatef(float a) { return a < 0.0f ? 0.0f : a > 1.0f ? 1.0f : a; }
inline int __float2int_rn(float a) { return (int)nearbyintf(a); }
inline int __float_as_int(float a) { int i; memcpy(&i, &a, 4); return i; }
inline unsigned __float_as_uint(float a) { unsigned i; memcpy(&i, &a, 4); return i; }
inline float __int_as_float(int i) { float a; memcpy(&a, &i, 4); return a; }
inline float __uint_as_float(unsigned i) { float a; memcpy(&a, &i, 4); return a; }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x ? __builtin_clz((unsigned)x) : 32; }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline unsigned __brev(unsigned x) {
    x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1); x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
    x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4); x = ((x >> 8) & 0x00ff00ffu) | ((x & 0x00ff00ffu) << 8);
    return (x >> 16) | (x << 16);
}
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline long long clock64(void) { return cuda_emu::g.switches; }

/* ---- bf16: storage type with the CUDA conversion semantics ------------------------ */
struct __nv_bfloat16 { unsigned short __x; };
struct __nv_bfloat162 { __nv_bfloat16 x, y; };
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
    uint32_t u = __float_as_uint(f);
    __nv_bfloat16 r;
    if ((u & 0x7fffffffu) > 0x7f800000u) r.__x = 0x7fff;                                 /* NaN: the canonical one, as CUDA */
    else r.__x = (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);              /* round to nearest even */
    return r;
}
inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }
inline float __bfloat162float(__nv_bfloat16 b) { return __uint_as_float((uint32_t)b.__x << 16); }
inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) { __nv_bfloat162 r = {__float2bfloat16_rn(a), __float2bfloat16_rn(b)}; return r; }
inline float __low2float(__nv_bfloat162 v) { return __bfloat162float(v.x); }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 b) { return b.__x; }
inline float __high2float(__nv_bfloat162 v) { return __bfloat162float(v.y); }

/* ---- fp16: storage type with the CUDA conversion semantics ------------------------
   __float2half_rn rounds to nearest even, with subnormals, overflow to inf
   (a value at or past 65520 after rounding) and NaN kept NaN. */
struct __half { unsigned short __x; };
inline __half __float2half_rn(float f) {
    uint32_t u = __float_as_uint(f), sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    __half r;
    if (a > 0x7f800000u) { r.__x = (unsigned short)(sign | 0x7fffu); return r; }       /* NaN (CUDA's canonical one) */
    if (a >= 0x477ff000u) { r.__x = (unsigned short)(sign | 0x7c00u); return r; }      /* >= 65520: inf */
    if (a < 0x38800000u) {                                                              /* below 2^-14: subnormal */
        float q = fabsf(f) * 16777216.0f;                                               /* in units of 2^-24, exact */
        r.__x = (unsigned short)(sign | (uint32_t)nearbyintf(q));                       /* ties to even (default mode) */
        return r;
    }
    uint32_t e = (a >> 23) - 112u, m = a & 0x7fffffu, h = (e << 10) | (m >> 13), rest = m & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++;
    r.__x = (unsigned short)(sign | h);
    return r;
}
inline __half __float2half(float f) { return __float2half_rn(f); }
inline float __half2float(__half h) { return cuda_emu::f16_bits_to_float(h.__x); }
inline unsigned short __half_as_ushort(__half h) { return h.__x; }
inline __half __ushort_as_half(unsigned short x) { __half h; h.__x = x; return h; }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short x) { __nv_bfloat16 b; b.__x = x; return b; }

/* ---- runtime --------------------------------------------------------------------- */
inline cudaError_t cuda_emu_set(cudaError_t e) { if (e != cudaSuccess) cuda_emu::g.last_error = e; return e; }
inline cudaError_t cudaGetDeviceCount(int *n) { *n = getenv("CUDA_EMU_NO_DEVICE") ? 0 : 1; return cudaSuccess; }
inline cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : cuda_emu_set(cudaErrorInvalidDevice); }
inline cudaError_t cudaGetDevice(int *d) { *d = 0; return cudaSuccess; }
inline cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaStreamCreate(cudaStream_t *s) { *s = nullptr; return cudaSuccess; }
inline cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaGetLastError(void) { cudaError_t e = cuda_emu::g.last_error; cuda_emu::g.last_error = cudaSuccess; return e; }
inline cudaError_t cudaPeekAtLastError(void) { return cuda_emu::g.last_error; }
inline const char *cudaGetErrorName(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    default: return "cudaErrorUnknown";
    }
}
inline const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    default: return "unknown error";
    }
}
/* ---- device memory --------------------------------------------------------------
   One region of address space is reserved for the emulated device
   (CUDA_EMU_MEMORY_MB, default 16 GiB, never committed until touched) and
   cudaMalloc carves 256-byte aligned blocks out of it, first fit, each followed
   by a gap of at least 256 bytes. The region is PROT_NONE while host code runs
   and readable only while a kernel, cudaMemcpy or cudaMemset works on it, so a
   host dereference of a device pointer faults here as it would with a real GPU
   (CUDA_EMU_HOST_ACCESS=1 turns this off, e.g. to look at device memory in a
   debugger). Fresh blocks are filled with 0xFF bytes (NaN), so reading device
   memory nobody wrote shows. Under AddressSanitizer the gaps and freed blocks
   are poisoned: an overrun or a use after cudaFree is reported with its stack
   (as "use-after-poison"). */
namespace cuda_emu {
struct heap_t {
    char *base = nullptr;
    size_t size = 0, top = 0;                /* reserved bytes; never-used space starts at top */
    std::map<size_t, size_t> holes;          /* freed ranges: offset -> bytes */
    bool guarded = false, open = false;
};
inline heap_t heap;

inline size_t capacity(void) {
    if (!g.capacity) {
        const char *mb = getenv("CUDA_EMU_MEMORY_MB");
        g.capacity = (size_t)(mb && atoll(mb) > 0 ? atoll(mb) : 16384) << 20;
    }
    return g.capacity;
}

inline void poison(void *p, size_t n, bool on) {
#ifdef CUDA_EMU_ASAN
    if (on) __asan_poison_memory_region(p, n);
    else __asan_unpoison_memory_region(p, n);
#else
    (void)p; (void)n; (void)on;
#endif
}

/* host_access(true) opens the region for the emulator's own reads and writes;
   false closes it again (when guarding is on) */
inline void host_access(bool on) {
    if (!heap.base || !heap.guarded || heap.open == on) return;
    if (mprotect(heap.base, heap.size, on ? PROT_READ | PROT_WRITE : PROT_NONE) != 0) die("mprotect of the device region failed");
    heap.open = on;
}

inline bool heap_init(void) {
    if (heap.base) return true;
    heap.size = capacity() + ((size_t)1 << 20);
    void *m = mmap(NULL, heap.size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) { heap.size = 0; return false; }
    heap.base = (char *)m;
    heap.guarded = !getenv("CUDA_EMU_HOST_ACCESS");
    if (!heap.guarded) mprotect(heap.base, heap.size, PROT_READ | PROT_WRITE);
    return true;
}

/* bytes a block of n takes: n rounded up to 256, plus a 256-byte gap */
inline size_t span_of(size_t n) { return ((n + 255) & ~(size_t)255) + 256; }

inline void *heap_alloc(size_t n) {
    size_t need = span_of(n), at = (size_t)-1;
    if (!heap_init()) return nullptr;
    for (auto it = heap.holes.begin(); it != heap.holes.end(); ++it)
        if (it->second >= need) {
            at = it->first;
            if (it->second > need) heap.holes[at + need] = it->second - need;
            heap.holes.erase(it);
            break;
        }
    if (at == (size_t)-1) {
        if (heap.size - heap.top < need) return nullptr;
        at = heap.top;
        heap.top += need;
    }
    bool was = heap.open;
    host_access(true);
    poison(heap.base + at, n, false);
    poison(heap.base + at + n, need - n, true);     /* the gap after it */
    memset(heap.base + at, 0xff, n);
    host_access(was);
    return heap.base + at;
}

inline void heap_free(void *p, size_t n) {
    size_t at = (size_t)((char *)p - heap.base), len = span_of(n);
    size_t page = (size_t)sysconf(_SC_PAGESIZE), lo = (at + page - 1) / page * page, hi = (at + len) / page * page;
    poison(p, n, true);
    if (hi > lo) madvise(heap.base + lo, hi - lo, MADV_DONTNEED);   /* give the pages back */
    auto next = heap.holes.lower_bound(at);
    if (next != heap.holes.end() && next->first == at + len) { len += next->second; heap.holes.erase(next); }
    next = heap.holes.lower_bound(at);
    if (next != heap.holes.begin()) {
        auto prev = std::prev(next);
        if (prev->first + prev->second == at) { at = prev->first; len += prev->second; heap.holes.erase(prev); }
    }
    if (at + len == heap.top) heap.top = at;
    else heap.holes[at] = len;
}

inline void fail_malloc_after(long long n) { g.fail_malloc_in = n; }
inline size_t bytes_in_use(void) { return g.bytes; }
inline size_t allocations(void) { return g.allocs.size(); }
/* [p, p + n) lies inside one device allocation */
inline bool device_range(const void *p, size_t n) {
    auto it = g.allocs.upper_bound((uintptr_t)p);
    if (it == g.allocs.begin()) return false;
    --it;
    return (uintptr_t)p >= it->first && (uintptr_t)p + n <= it->first + (it->second ? it->second : 1);
}
} /* namespace cuda_emu */

inline cudaError_t cudaMalloc(void **p, size_t n) {
    void *m;
    *p = nullptr;
    if (cuda_emu::g.fail_malloc_in >= 0 && cuda_emu::g.fail_malloc_in-- == 0) return cuda_emu_set(cudaErrorMemoryAllocation);
    if (n > cuda_emu::capacity() - cuda_emu::g.bytes) return cuda_emu_set(cudaErrorMemoryAllocation);
    if (!(m = cuda_emu::heap_alloc(n ? n : 1))) return cuda_emu_set(cudaErrorMemoryAllocation);
    cuda_emu::g.allocs[(uintptr_t)m] = n;
    cuda_emu::g.bytes += n;
    *p = m;
    return cudaSuccess;
}
template <typename T> inline cudaError_t cudaMalloc(T **p, size_t n) { return cudaMalloc((void **)p, n); }
inline cudaError_t cudaFree(void *p) {
    if (!p) return cudaSuccess;
    auto it = cuda_emu::g.allocs.find((uintptr_t)p);
    if (it == cuda_emu::g.allocs.end()) return cuda_emu_set(cudaErrorInvalidValue);
    cuda_emu::heap_free(p, it->second ? it->second : 1);
    cuda_emu::g.bytes -= it->second;
    cuda_emu::g.allocs.erase(it);
    return cudaSuccess;
}
inline cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total) {
    *total = cuda_emu::capacity();
    *free_bytes = *total - cuda_emu::g.bytes;
    return cudaSuccess;
}
/* a copy whose kind contradicts its pointers, or that runs past the end of a
   device allocation, fails as cudaErrorInvalidValue (CUDA may not notice) */
inline cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind kind) {
    bool dd = cuda_emu::is_device_ptr(dst), sd = cuda_emu::is_device_ptr(src);
    if (n == 0) return cudaSuccess;
    if (kind == cudaMemcpyDefault) kind = dd ? (sd ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                                             : (sd ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
    if ((kind == cudaMemcpyHostToDevice && (!dd || sd)) || (kind == cudaMemcpyDeviceToHost && (dd || !sd)) ||
        (kind == cudaMemcpyDeviceToDevice && (!dd || !sd)) || (kind == cudaMemcpyHostToHost && (dd || sd)))
        return cuda_emu_set(cudaErrorInvalidValue);
    if ((dd && !cuda_emu::device_range(dst, n)) || (sd && !cuda_emu::device_range(src, n)))
        return cuda_emu_set(cudaErrorInvalidValue);
    cuda_emu::host_access(true);
    memmove(dst, src, n);
    cuda_emu::host_access(false);
    return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind k, cudaStream_t = nullptr) { return cudaMemcpy(d, s, n, k); }
inline cudaError_t cudaMemset(void *p, int v, size_t n) {
    if (n && !cuda_emu::device_range(p, n)) return cuda_emu_set(cudaErrorInvalidValue);
    cuda_emu::host_access(true);
    memset(p, v, n);
    cuda_emu::host_access(false);
    return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t = nullptr) { return cudaMemset(p, v, n); }
template <typename K> inline cudaError_t cudaFuncSetAttribute(K, cudaFuncAttribute a, int v) {
    if (a == cudaFuncAttributeMaxDynamicSharedMemorySize) cuda_emu::g.dyn_limit = (size_t)v;   /* per process here */
    return cudaSuccess;
}

#endif /* CUDA_EMU_H */
