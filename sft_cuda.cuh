/* sft_cuda.cuh - the CUDA backend of sft.h.

   WHAT IT IS
   The device half of sft.h's backend seam. sft.h keeps every operator's checks,
   output allocation, autograd tape and step arenas; for tensors on SFT_CUDA it
   asks this file for memory (sft__cuda_alloc/free/copy/memset0) and for kernels
   (sft__backend_cuda(): a forward and a backward kernel for every op), and for
   the device side of 4-bit weights, the layers, the optimizer and generation.
   A model loaded onto the device (sft_load_desc.device) keeps everything there;
   the host holds the tape's small records and copies batches in and each
   step's loss out.

   Every result is deterministic: each output element has one owner that sums in
   a fixed order (no floating-point atomics; block reductions are fixed trees),
   so a run gives the same bits every time, as on the CPU. Where this file does
   the same arithmetic as sft.h's portable CPU path it gives the same bits: every
   product and sum is rounded on its own (__fmul_rn/__fadd_rn, which nvcc never
   fuses into an FMA), the GEMMs add k in increasing order, and the math both
   sides need (Philox and the dropout masks, 4-bit decoding, the AdamW updates)
   is one SFT__HD helper in sft.h compiled for both. How each op compares with
   the CPU is listed in tests/test_cuda*.cu and README.md.

   BUILD
   Not a header a user includes: sft.h pulls it into its implementation when that
   is compiled with SFT_CUDA by nvcc. One .cu translation unit does

       #define SFT_IMPLEMENTATION
       #define SFT_CUDA
       #include "sft.h"

   (or compiles sft.h itself that way: nvcc -x cu -DSFT_IMPLEMENTATION -DSFT_CUDA
   -c sft.h), and C programs link against its object (-lcublasLt -lcudart
   -lstdc++). `make cuda` builds it for sm_80, sm_89 and sm_90a. The same source also builds with a
   host C++17 compiler on tests/cuda_emu (the CPU emulator behind `make
   cuda-emu`): there the dense GEMMs run the reference kernel instead of
   cuBLASLt. Work goes to the current CUDA device (cudaSetDevice before creating
   the context) on the default stream, in issue order.

   OPTIONS (define before including sft.h)
       SFT_CUDA_SYNC   synchronise after every kernel, so an asynchronous fault is
                       reported by the op that caused it (slow; for debugging)
   ENVIRONMENT
       SFT_CUDA_GEMM=reference   the dense GEMMs run the reference tiled kernel on a
                                 GPU too (the same bits as the emulator and the
                                 portable CPU path; for checks, slower)

   CONTENTS (search for the banner "=== cuda: name")
       errors        one way a CUDA error becomes an sft_status
       state         per-context state: device byte accounting, cuBLASLt
       memory        alloc, free, copy, memset
       launch        the launch macro, grid sizes, the after-launch check
       reductions    block sums and maxima in a fixed order
       elementwise   add, mul, scale, reshape, silu, swiglu
       dropout       masks as bits (sft.h's sft__dropout_word), applying them
       embedding     rows by id; the scatter back, column by column
       rmsnorm
       rope
       gemm          the one dense GEMM function: reference tiled kernel, cuBLASLt
       4-bit         dequantization, the fused 4-bit GEMM (tiles decoded in shared
                     memory), bf16 bases
       tensor cores  bf16/f16 products of the frozen base on mma.sync: the seam
                     (mma, ldmatrix, cp.async), the fused 4-bit kernel, the
                     dequantize path (workspace + cuBLASLt), the dispatcher
       matmul
       linear        a linear layer with its adapters (LoRA, rsLoRA, DoRA, dropout,
                     mixed batches) as one node, the CPU's plan on device GEMMs
       attention     flash-style, one warp per row, online softmax; on tensor
                     cores for bf16/f16 (head_dim <= 64); generation's
                     attention over the KV cache
       cross-entropy and the output projection fused with it
       prompt tuning
       optimizer     AdamW (torch, bitsandbytes 32- and 8-bit), the gradient norm
       backend       the table sft__dispatch reads
       available     sft_cuda_available */

#ifndef SFT_CUDA_CUH
#define SFT_CUDA_CUH

#ifndef SFT__IMPLEMENTED
#  error "sft_cuda.cuh is part of sft.h's implementation: #define SFT_IMPLEMENTATION and SFT_CUDA, then #include \"sft.h\""
#endif

#include <cuda_runtime.h>
#include <cuda_fp16.h>
#ifndef CUDA_EMU
#  include <cublasLt.h>
#endif

/* SFT__LAUNCH(kernel, grid, block, shared_bytes, args...): k<<<grid, block,
   shared_bytes>>>(args) under nvcc; a function call under the CPU emulator
   (tests/cuda_emu: a host compiler cannot parse <<< >>>). Every launch in this
   file goes through it. */
#ifdef CUDA_EMU
#  define SFT__LAUNCH(kernel, grid, block, smem, ...) cuda_emu::launch(kernel, grid, block, smem, 0, __VA_ARGS__)
#else
#  define SFT__LAUNCH(kernel, grid, block, smem, ...) kernel<<<grid, block, smem>>>(__VA_ARGS__)
#endif

/* ============================================================================
   === cuda: errors
   Every failing CUDA call goes through sft__cuda_fail. It also clears the
   runtime's "last error", so a recoverable failure (out of memory) is not
   reported a second time by the next launch check. */

static sft_status sft__cuda_fail(cudaError_t err, const char *what) {
    int no_device = err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver;
    (void)cudaGetLastError();
    return sft__fail(err == cudaErrorMemoryAllocation ? SFT_ERR_NOMEM : SFT_ERR_DEVICE, "%s: %s (%s)%s", what,
                     cudaGetErrorString(err), cudaGetErrorName(err), no_device ? ": no CUDA device" : "");
}

/* ============================================================================
   === cuda: state
   A context's CUDA state is made on its first device allocation: the size of
   every live device block (cudaFree takes none, and the memory statistics count
   device bytes), and the cuBLASLt handle and workspace, made on the first dense
   GEMM. */

/* the live device blocks' sizes: open addressing with linear probing, deletion
   by shifting the run back (no tombstones), every allocation checked */
typedef struct sft__cuda_sizes { void **key; size_t *bytes; size_t cap, count; } sft__cuda_sizes;

static size_t sft__cuda_slot(const void *p, size_t cap) {
    return (size_t)(((uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull) >> 17) & (cap - 1);
}

/* the slot holding p, or the empty slot where it would go */
static size_t sft__cuda_sizes_find(const sft__cuda_sizes *m, const void *p) {
    size_t i = sft__cuda_slot(p, m->cap);
    while (m->key[i] && m->key[i] != p) i = (i + 1) & (m->cap - 1);
    return i;
}

static void sft__cuda_sizes_free(sft_context *ctx, sft__cuda_sizes *m) {
    sft__free(ctx, m->key); sft__free(ctx, m->bytes);
    memset(m, 0, sizeof *m);
}

static sft_status sft__cuda_sizes_put(sft_context *ctx, sft__cuda_sizes *m, void *p, size_t bytes) {
    size_t i;
    if ((m->count + 1) * 2 > m->cap) {
        sft__cuda_sizes big;
        big.cap = m->cap ? 2 * m->cap : 256;
        big.count = m->count;
        big.key = (void **)sft__calloc(ctx, big.cap, sizeof(void *));
        big.bytes = (size_t *)sft__calloc(ctx, big.cap, sizeof(size_t));
        if (!big.key || !big.bytes) {
            sft__cuda_sizes_free(ctx, &big);
            return sft__fail(SFT_ERR_NOMEM, "cuda: cannot grow the table of device blocks to %zu entries", big.cap);
        }
        for (i = 0; i < m->cap; i++)
            if (m->key[i]) {
                size_t j = sft__cuda_sizes_find(&big, m->key[i]);
                big.key[j] = m->key[i]; big.bytes[j] = m->bytes[i];
            }
        sft__cuda_sizes_free(ctx, m);
        *m = big;
    }
    i = sft__cuda_sizes_find(m, p);
    if (!m->key[i]) { m->key[i] = p; m->count++; }
    m->bytes[i] = bytes;
    return SFT_OK;
}

/* sft__cuda_sizes_take: p's size, removed from the table; 0 when p is not there */
static size_t sft__cuda_sizes_take(sft__cuda_sizes *m, const void *p) {
    size_t i, j, bytes;
    if (!m->cap || !m->key[i = sft__cuda_sizes_find(m, p)]) return 0;
    bytes = m->bytes[i];
    /* shift back every later entry of the run that may not sit past the hole */
    for (j = (i + 1) & (m->cap - 1); m->key[j]; j = (j + 1) & (m->cap - 1)) {
        size_t home = sft__cuda_slot(m->key[j], m->cap);
        if (((j - home) & (m->cap - 1)) >= ((j - i) & (m->cap - 1))) {
            m->key[i] = m->key[j]; m->bytes[i] = m->bytes[j]; i = j;
        }
    }
    m->key[i] = NULL;
    m->count--;
    return bytes;
}

/* SFT_CUDA_GEMM: how the GEMMs run (see "tensor cores" for the dispatcher) */
enum { SFT__GEMM_AUTO, SFT__GEMM_REFERENCE, SFT__GEMM_FUSED, SFT__GEMM_DEQUANT, SFT__GEMM_DEQUANT_MMA };

typedef struct sft__cuda_state {
    sft__cuda_sizes sizes;       /* live device block -> bytes                   */
    int             gemm_reference;   /* SFT_CUDA_GEMM=reference                 */
    int             gemm_mode;        /* SFT__GEMM_*                             */
    int             sm;               /* compute capability, 10 major + minor    */
    int64_t         fused_max_rows;   /* SFT_CUDA_FUSED_MAX_ROWS; -1: the table  */
    void           *work16;           /* the dequantize path's 16-bit operands   */
    size_t          work16_bytes;
    size_t          plan_work16;      /* what memory plans found it would need  */
#ifndef CUDA_EMU
    cublasLtHandle_t lt;
    void            *lt_work;
    size_t           lt_work_bytes;
#endif
} sft__cuda_state;

/* the current device's compute capability (80 under the emulator, which models
   an sm_80 part's instructions; 0 when no device answers) */
static int sft__cuda_sm(void) {
#ifdef CUDA_EMU
    return 80;
#else
    int dev = 0, major = 0, minor = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return 10 * major + minor;
#endif
}

static sft_status sft__cuda_state_of(sft_context *ctx, sft__cuda_state **out) {
    sft__cuda_state *st = (sft__cuda_state *)ctx->cuda;
    const char *env;
    if (!st) {
        st = (sft__cuda_state *)sft__calloc(ctx, 1, sizeof *st);
        if (!st) return sft__fail(SFT_ERR_NOMEM, "cuda: cannot allocate the context's CUDA state");
        env = getenv("SFT_CUDA_GEMM");
        st->gemm_reference = env && strcmp(env, "reference") == 0;
        st->gemm_mode = st->gemm_reference ? SFT__GEMM_REFERENCE
                      : env && strcmp(env, "fused") == 0 ? SFT__GEMM_FUSED
                      : env && strcmp(env, "dequant") == 0 ? SFT__GEMM_DEQUANT
                      : env && strcmp(env, "dequant_mma") == 0 ? SFT__GEMM_DEQUANT_MMA : SFT__GEMM_AUTO;
        st->sm = sft__cuda_sm();
        st->fused_max_rows = -1;
        env = getenv("SFT_CUDA_FUSED_MAX_ROWS");
        if (env) {
            char *end;
            long long v = strtoll(env, &end, 10);
            if (end == env || *end || v < 0) {
                sft__free(ctx, st);
                return sft__fail(SFT_ERR_ARG, "cuda: SFT_CUDA_FUSED_MAX_ROWS=\"%s\" is not a row count (0 or more)", env);
            }
            st->fused_max_rows = (int64_t)v;
        }
        ctx->cuda = st;
    }
    *out = st;
    return SFT_OK;
}

static void sft__cuda_context_free(sft_context *ctx) {
    sft__cuda_state *st = (sft__cuda_state *)ctx->cuda;
    if (!st) return;
#ifndef CUDA_EMU
    if (st->lt) cublasLtDestroy(st->lt);
    sft__cuda_free(ctx, st->lt_work);
#endif
    sft__cuda_free(ctx, st->work16);
    sft__cuda_sizes_free(ctx, &st->sizes);
    sft__free(ctx, st);
    ctx->cuda = NULL;
}

/* ============================================================================
   === cuda: memory
   Device memory comes straight from cudaMalloc (256-byte aligned, so the arenas'
   64-byte alignment holds), counted in the context's device statistics. */

static sft_status sft__cuda_alloc(sft_context *ctx, size_t size, void **out) {
    char what[96];
    sft__cuda_state *st;
    cudaError_t err;
    *out = NULL;
    SFT__TRY(sft__cuda_state_of(ctx, &st));
    err = cudaMalloc(out, size ? size : 1);   /* size 0: a valid block, as on the CPU */
    if (err != cudaSuccess) {
        *out = NULL;
        snprintf(what, sizeof what, "cuda: cudaMalloc of %zu bytes", size);
        return sft__cuda_fail(err, what);
    }
    if (sft__cuda_sizes_put(ctx, &st->sizes, *out, size) != SFT_OK) {
        if (cudaFree(*out) != cudaSuccess) (void)cudaGetLastError();
        *out = NULL;
        return SFT_ERR_NOMEM;
    }
    ctx->device_bytes_in_use += size;
    if (ctx->device_bytes_in_use > ctx->device_peak_bytes) ctx->device_peak_bytes = ctx->device_bytes_in_use;
    return SFT_OK;
}

/* sft__cuda_free: cudaFree waits for the work queued before it; a failure here
   (a device that has gone away) is forgotten, there is no one to tell. */
static void sft__cuda_free(sft_context *ctx, void *ptr) {
    sft__cuda_state *st = (sft__cuda_state *)ctx->cuda;
    if (!ptr) return;
    if (st) ctx->device_bytes_in_use -= sft__cuda_sizes_take(&st->sizes, ptr);
    if (cudaFree(ptr) != cudaSuccess) (void)cudaGetLastError();
}

/* sft__cuda_copy: n bytes in any direction. A copy to or from the host returns
   when the host side is done with; device to device is queued on the default
   stream behind the kernels that produce its source, like everything else. */
static sft_status sft__cuda_copy(void *dst, sft_device dst_dev, const void *src, sft_device src_dev, size_t n) {
    char what[96];
    cudaMemcpyKind kind;
    cudaError_t err;
    const char *dir;
    if (n == 0) return SFT_OK;
    if (dst_dev == SFT_DEVICE_CUDA && src_dev == SFT_DEVICE_CUDA) { kind = cudaMemcpyDeviceToDevice; dir = "device to device"; }
    else if (dst_dev == SFT_DEVICE_CUDA) { kind = cudaMemcpyHostToDevice; dir = "host to device"; }
    else if (src_dev == SFT_DEVICE_CUDA) { kind = cudaMemcpyDeviceToHost; dir = "device to host"; }
    else { memmove(dst, src, n); return SFT_OK; }
    err = cudaMemcpy(dst, src, n, kind);
    if (err == cudaSuccess) return SFT_OK;
    snprintf(what, sizeof what, "cuda: cudaMemcpy of %zu bytes %s", n, dir);
    return sft__cuda_fail(err, what);
}

static sft_status sft__cuda_memset0(void *dst, size_t n) {
    char what[96];
    cudaError_t err;
    if (n == 0) return SFT_OK;
    err = cudaMemset(dst, 0, n);
    if (err == cudaSuccess) return SFT_OK;
    snprintf(what, sizeof what, "cuda: cudaMemset of %zu bytes", n);
    return sft__cuda_fail(err, what);
}

/* sft__cuda_scratch: n bytes of device memory for this step (the current step
   arena: gone at the next sft_step_begin, or with a checkpointed segment). */
static sft_status sft__cuda_scratch(sft_context *ctx, size_t n, void **out) {
    return sft__arena_alloc(sft__cur_arena(ctx, SFT_DEVICE_CUDA), n ? n : 1, out);
}

/* ============================================================================
   === cuda: launch
   Elementwise kernels run 256 threads a block on at most 65535 blocks and walk
   their 64-bit range with a grid-stride loop, so any size fits one launch. An
   empty range launches nothing (a zero grid is an error). Kernels that give a
   block one row use grid.x for the rows (up to 2^31 - 1). */

#define SFT__CUDA_BLOCK    256u
#define SFT__CUDA_MAX_GRID 65535u

static unsigned sft__cuda_grid(int64_t n) {
    int64_t blocks = (n + SFT__CUDA_BLOCK - 1) / SFT__CUDA_BLOCK;
    return blocks > (int64_t)SFT__CUDA_MAX_GRID ? SFT__CUDA_MAX_GRID : (unsigned)blocks;
}

#define SFT__CUDA_FOR(i, n) for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

/* sft__cuda_check: the check after every launch, naming the op and kernel. */
static sft_status sft__cuda_check(const char *op, const char *kernel) {
    char what[128];
    cudaError_t err = cudaGetLastError();
#ifdef SFT_CUDA_SYNC
    if (err == cudaSuccess) err = cudaDeviceSynchronize();
#endif
    if (err == cudaSuccess) return SFT_OK;
    snprintf(what, sizeof what, "%s: cuda kernel %s", op, kernel);
    return sft__cuda_fail(err, what);
}

static sft_status sft__cuda_launched(const sft__node *n, const char *kernel) { return sft__cuda_check(sft__op_names[n->op], kernel); }

/* ============================================================================
   === cuda: reductions
   A block's sum (or maximum) of one value per thread, every thread getting the
   result: a tree over shared memory with a fixed pairing, so the order of the
   additions depends only on blockDim.x (a power of two, at most 1024). The
   callers give each thread a strided partial sum first, in increasing index. */

template <typename T> static __device__ T sft__cuda_block_sum(T v, T *sh) {
    unsigned t = threadIdx.x;
    sh[t] = v;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
        if (t < s) sh[t] = sh[t] + sh[t + s];
        __syncthreads();
    }
    v = sh[0];
    __syncthreads();   /* sh is free again when the caller goes on */
    return v;
}

static __device__ float sft__cuda_block_max(float v, float *sh) {
    unsigned t = threadIdx.x;
    sh[t] = v;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
        if (t < s) sh[t] = fmaxf(sh[t], sh[t + s]);
        __syncthreads();
    }
    v = sh[0];
    __syncthreads();
    return v;
}

/* the threads a row kernel uses: a power of two from 32 to 256 covering n */
static unsigned sft__cuda_row_threads(int64_t n) {
    unsigned t = 32;
    while (t < 256 && (int64_t)t < n) t <<= 1;
    return t;
}

/* a warp's sum by the xor butterfly: every lane ends with the same bits */
static __device__ float sft__cuda_warp_sum(float v) {
    for (int off = 16; off > 0; off >>= 1) v = __fadd_rn(v, __shfl_xor_sync(0xffffffffu, v, off));
    return v;
}

static __device__ float sft__cuda_warp_max(float v) {
    for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
    return v;
}

/* sft__cuda_total: out[0] = (float)(sum of x[0..n) in double, in order, times
   factor): the losses' reduction, done as the CPU does it (one thread: n is a
   batch's rows) */
static __global__ void sft__cuda_total_kernel(float *out, const float *x, int64_t n, float factor) {
    double total = 0.0;
    if (threadIdx.x || blockIdx.x) return;
    for (int64_t i = 0; i < n; i++) total += (double)x[i];
    out[0] = (float)(total * (double)factor);
}

/* ============================================================================
   === cuda: elementwise
   The same nodes as the CPU kernels: add/mul in[0] = a, in[1] = b with numel(b)
   dividing numel(a) (suffix broadcast); scale f[0] = s; reshape out is a view of
   in[0]; silu in[0] = x; swiglu in[0] = gate, in[1] = up. Gradient buffers are
   allocated and zeroed by sft.h before a backward kernel runs; kernels add into
   them. Each expression is the CPU's, operation for operation. */

/* out[i] = a[i] + b[i % nb] */
static __global__ void sft__cuda_add_kernel(float *out, const float *a, const float *b, int64_t n, int64_t nb) {
    SFT__CUDA_FOR(i, n) out[i] = __fadd_rn(a[i], b[i % nb]);
}

/* out[i] = a[i] * b[i % nb] */
static __global__ void sft__cuda_mul_kernel(float *out, const float *a, const float *b, int64_t n, int64_t nb) {
    SFT__CUDA_FOR(i, n) out[i] = __fmul_rn(a[i], b[i % nb]);
}

/* out[i] = x[i] * s */
static __global__ void sft__cuda_scale_kernel(float *out, const float *x, float s, int64_t n) {
    SFT__CUDA_FOR(i, n) out[i] = __fmul_rn(x[i], s);
}

/* dst[i] += g[i]: add's full-size gradient, reshape's gradient */
static __global__ void sft__cuda_acc_kernel(float *dst, const float *g, int64_t n) {
    SFT__CUDA_FOR(i, n) dst[i] = __fadd_rn(dst[i], g[i]);
}

/* dst[i] += g[i] * y[i % ny]: mul's full-size gradient */
static __global__ void sft__cuda_acc_mul_kernel(float *dst, const float *g, const float *y, int64_t n, int64_t ny) {
    SFT__CUDA_FOR(i, n) dst[i] = __fadd_rn(dst[i], __fmul_rn(g[i], y[i % ny]));
}

/* dst[i] += g[i] * s: scale's gradient */
static __global__ void sft__cuda_acc_scaled_kernel(float *dst, const float *g, float s, int64_t n) {
    SFT__CUDA_FOR(i, n) dst[i] = __fadd_rn(dst[i], __fmul_rn(g[i], s));
}

/* db[c] += sum over rows r, in order, of g[r*nb + c] (x NULL: add) or
   g[r*nb + c] * x[r*nb + c] (mul): the broadcast operand's gradient. One thread
   owns a column; adjacent threads read adjacent columns, so loads coalesce. */
static __global__ void sft__cuda_colsum_kernel(float *db, const float *g, const float *x, int64_t rows, int64_t nb) {
    SFT__CUDA_FOR(c, nb) {
        float acc = 0.0f;
        for (int64_t r = 0; r < rows; r++)
            acc = __fadd_rn(acc, x ? __fmul_rn(g[r * nb + c], x[r * nb + c]) : g[r * nb + c]);
        db[c] = __fadd_rn(db[c], acc);
    }
}

/* sigmoid as the CPU's 1 / (1 + expf(-x)) */
static __device__ float sft__cuda_sigmoid(float x) { return __fdiv_rn(1.0f, __fadd_rn(1.0f, expf(-x))); }

/* out = silu(x) (* up for swiglu) */
static __global__ void sft__cuda_silu_kernel(float *out, const float *x, const float *up, int64_t n) {
    SFT__CUDA_FOR(i, n) {
        float s = __fmul_rn(x[i], sft__cuda_sigmoid(x[i]));
        out[i] = up ? __fmul_rn(s, up[i]) : s;
    }
}

/* dx += g * up * silu'(x), dup += g * x * sigmoid(x) (either may be NULL) */
static __global__ void sft__cuda_silu_bwd_kernel(float *dx, float *dup, const float *g, const float *x, const float *up, int64_t n) {
    SFT__CUDA_FOR(i, n) {
        float sg = sft__cuda_sigmoid(x[i]);
        float dsilu = __fmul_rn(sg, __fadd_rn(1.0f, __fmul_rn(x[i], __fsub_rn(1.0f, sg))));
        if (dx) dx[i] = __fadd_rn(dx[i], __fmul_rn(__fmul_rn(g[i], up ? up[i] : 1.0f), dsilu));
        if (dup) dup[i] = __fadd_rn(dup[i], __fmul_rn(__fmul_rn(g[i], x[i]), sg));
    }
}

static sft_status sft__cuda_add_fwd(sft_context *ctx, sft__node *n) {
    int64_t count = sft_tensor_numel(n->out);
    (void)ctx;
    if (count == 0) return SFT_OK;
    SFT__LAUNCH(sft__cuda_add_kernel, sft__cuda_grid(count), SFT__CUDA_BLOCK, 0, SFT__F(n->out), SFT__CF(n->in[0]),
                SFT__CF(n->in[1]), count, sft_tensor_numel(n->in[1]));
    return sft__cuda_launched(n, "add");
}

static sft_status sft__cuda_mul_fwd(sft_context *ctx, sft__node *n) {
    int64_t count = sft_tensor_numel(n->out);
    (void)ctx;
    if (count == 0) return SFT_OK;
    SFT__LAUNCH(sft__cuda_mul_kernel, sft__cuda_grid(count), SFT__CUDA_BLOCK, 0, SFT__F(n->out), SFT__CF(n->in[0]),
                SFT__CF(n->in[1]), count, sft_tensor_numel(n->in[1]));
    return sft__cuda_launched(n, "mul");
}

/* add and mul backward: da first, then db, as the CPU does (they may be one
   buffer when a is b). */
static sft_status sft__cuda_ew_bwd(sft_context *ctx, sft__node *n) {
    int64_t count = sft_tensor_numel(n->out), nb = sft_tensor_numel(n->in[1]);
    const float *g = SFT__CF(n->out->grad);
    int is_add = n->op == SFT__OP_ADD;
    (void)ctx;
    if (n->in[0]->requires_grad && count > 0) {
        if (is_add) SFT__LAUNCH(sft__cuda_acc_kernel, sft__cuda_grid(count), SFT__CUDA_BLOCK, 0, SFT__F(n->in[0]->grad), g, count);
        else
            SFT__LAUNCH(sft__cuda_acc_mul_kernel, sft__cuda_grid(count), SFT__CUDA_BLOCK, 0, SFT__F(n->in[0]->grad), g,
                        SFT__CF(n->in[1]), count, nb);
        SFT__TRY(sft__cuda_launched(n, is_add ? "acc" : "acc_mul"));
    }
    if (n->in[1]->requires_grad && nb > 0) {
        SFT__LAUNCH(sft__cuda_colsum_kernel, sft__cuda_grid(nb), SFT__CUDA_BLOCK, 0, SFT__F(n->in[1]->grad), g,
                    is_add ? (const float *)NULL : SFT__CF(n->in[0]), count / nb, nb);
        SFT__TRY(sft__cuda_launched(n, "colsum"));
    }
    return SFT_OK;
}

static sft_status sft__cuda_scale_fwd(sft_context *ctx, sft__node *n) {
    int64_t count = sft_tensor_numel(n->out);
    (void)ctx;
    if (count == 0) return SFT_OK;
    SFT__LAUNCH(sft__cuda_scale_kernel, sft__cuda_grid(count), SFT__CUDA_BLOCK, 0, SFT__F(n->out), SFT__CF(n->in[0]), n->f[0],
                count);
    return sft__cuda_launched(n, "scale");
}

static sft_status sft__cuda_scale_bwd(sft_context *ctx, sft__node *n) {
    int64_t count = sft_tensor_numel(n->out);
    (void)ctx;
    if (count == 0) return SFT_OK;
    SFT__LAUNCH(sft__cuda_acc_scaled_kernel, sft__cuda_grid(count), SFT__CUDA_BLOCK, 0, SFT__F(n->in[0]->grad),
                SFT__CF(n->out->grad), n->f[0], count);
    return sft__cuda_launched(n, "acc_scaled");
}

/* reshape: the output is a view of the input; the gradient passes through in
   the same element order. */
static sft_status sft__cuda_reshape_fwd(sft_context *ctx, sft__node *n) { (void)ctx; (void)n; return SFT_OK; }

static sft_status sft__cuda_reshape_bwd(sft_context *ctx, sft__node *n) {
    int64_t count = sft_tensor_numel(n->out);
    (void)ctx;
    if (count == 0) return SFT_OK;
    SFT__LAUNCH(sft__cuda_acc_kernel, sft__cuda_grid(count), SFT__CUDA_BLOCK, 0, SFT__F(n->in[0]->grad), SFT__CF(n->out->grad),
                count);
    return sft__cuda_launched(n, "acc");
}

static sft_status sft__cuda_silu_fwd(sft_context *ctx, sft__node *n) {
    int64_t count = sft_tensor_numel(n->out);
    (void)ctx;
    if (count == 0) return SFT_OK;
    SFT__LAUNCH(sft__cuda_silu_kernel, sft__cuda_grid(count), SFT__CUDA_BLOCK, 0, SFT__F(n->out), SFT__CF(n->in[0]),
                n->op == SFT__OP_SWIGLU ? SFT__CF(n->in[1]) : (const float *)NULL, count);
    return sft__cuda_launched(n, "silu");
}

static sft_status sft__cuda_silu_bwd(sft_context *ctx, sft__node *n) {
    int64_t count = sft_tensor_numel(n->out);
    int swiglu = n->op == SFT__OP_SWIGLU;
    (void)ctx;
    if (count == 0) return SFT_OK;
    SFT__LAUNCH(sft__cuda_silu_bwd_kernel, sft__cuda_grid(count), SFT__CUDA_BLOCK, 0,
                n->in[0]->requires_grad ? SFT__F(n->in[0]->grad) : (float *)NULL,
                swiglu && n->in[1]->requires_grad ? SFT__F(n->in[1]->grad) : (float *)NULL, SFT__CF(n->out->grad),
                SFT__CF(n->in[0]), swiglu ? SFT__CF(n->in[1]) : (const float *)NULL, count);
    return sft__cuda_launched(n, "silu_bwd");
}

/* ============================================================================
   === cuda: dropout
   The CPU's masks, bit for bit: a thread makes mask word w with sft.h's own
   sft__dropout_word (16 Philox blocks, element i kept iff its 24-bit uniform
   is >= p), and applying a mask is x * (kept ? 1/(1-p) : 0). Words [w0, w1)
   cover elements [e0, e1) of a longer mask (a linear layer's runs of rows). */

static __global__ void sft__cuda_mask_kernel(uint64_t *bits, uint64_t key, uint32_t threshold, int64_t w0, int64_t w1) {
    SFT__CUDA_FOR(i, w1 - w0) bits[w0 + i] = sft__dropout_word(key, threshold, (uint64_t)(w0 + i));
}

/* out[i] (+)= x[i] * factor(e0 + i), i in [0, n) */
static __global__ void sft__cuda_mask_mul_kernel(float *out, const float *x, const uint64_t *bits, int64_t e0, int64_t n,
                                                 float scale, int accumulate) {
    SFT__CUDA_FOR(i, n) {
        int64_t e = e0 + i;
        float f = (bits[e >> 6] >> (e & 63)) & 1 ? scale : 0.0f, v = __fmul_rn(x[i], f);
        out[i] = accumulate ? __fadd_rn(out[i], v) : v;
    }
}

static sft_status sft__cuda_dropout_mask(sft_context *ctx, uint64_t key, float p, int64_t e0, int64_t e1, uint64_t *bits) {
    int64_t w0 = e0 / 64, w1 = (e1 + 63) / 64;
    if (ctx->plan_only || e1 <= e0) return SFT_OK;
    SFT__LAUNCH(sft__cuda_mask_kernel, sft__cuda_grid(w1 - w0), SFT__CUDA_BLOCK, 0, bits, key, sft__dropout_threshold(p), w0, w1);
    return sft__cuda_check("dropout", "mask");
}

static sft_status sft__cuda_mask_mul(sft_context *ctx, const float *x, const uint64_t *bits, int64_t e0, int64_t n, float scale,
                                     float *out, int accumulate) {
    if (ctx->plan_only || n <= 0) return SFT_OK;
    SFT__LAUNCH(sft__cuda_mask_mul_kernel, sft__cuda_grid(n), SFT__CUDA_BLOCK, 0, out, x, bits, e0, n, scale, accumulate);
    return sft__cuda_check("dropout", "mask_mul");
}

/* dropout node: in[0] = x; f[0] = p; i[0] = the mask's key; saved = its bits */
static sft_status sft__cuda_dropout_fwd(sft_context *ctx, sft__node *n) {
    int64_t numel = sft_tensor_numel(n->out);
    uint64_t *bits = (uint64_t *)n->saved->data;
    SFT__TRY(sft__cuda_dropout_mask(ctx, (uint64_t)n->i[0], n->f[0], 0, numel, bits));
    return sft__cuda_mask_mul(ctx, SFT__CF(n->in[0]), bits, 0, numel, sft__dropout_scale(n->f[0]), SFT__F(n->out), 0);
}

static sft_status sft__cuda_dropout_bwd(sft_context *ctx, sft__node *n) {
    return sft__cuda_mask_mul(ctx, SFT__CF(n->out->grad), (const uint64_t *)n->saved->data, 0, sft_tensor_numel(n->out),
                              sft__dropout_scale(n->f[0]), SFT__F(n->in[0]->grad), 1);
}

/* ============================================================================
   === cuda: embedding
   node: in[0] = weight [V, D], in[1] = ids (i32). Forward copies rows; backward
   gives each thread a column and walks the ids in order, adding into the
   weight's gradient as the CPU does (the same bits, no atomics). */

static __global__ void sft__cuda_embedding_kernel(float *out, const float *w, const int32_t *ids, int64_t T, int64_t D) {
    SFT__CUDA_FOR(i, T * D) out[i] = w[(int64_t)ids[i / D] * D + i % D];
}

static __global__ void sft__cuda_embedding_bwd_kernel(float *dw, const float *g, const int32_t *ids, int64_t T, int64_t D) {
    SFT__CUDA_FOR(c, D)
        for (int64_t t = 0; t < T; t++) dw[(int64_t)ids[t] * D + c] = __fadd_rn(dw[(int64_t)ids[t] * D + c], g[t * D + c]);
}

static sft_status sft__cuda_embedding_fwd(sft_context *ctx, sft__node *n) {
    int64_t T = sft_tensor_numel(n->in[1]), D = n->in[0]->shape[1];
    (void)ctx;
    if (T * D == 0) return SFT_OK;
    SFT__LAUNCH(sft__cuda_embedding_kernel, sft__cuda_grid(T * D), SFT__CUDA_BLOCK, 0, SFT__F(n->out), SFT__CF(n->in[0]),
                (const int32_t *)n->in[1]->data, T, D);
    return sft__cuda_launched(n, "embedding");
}

static sft_status sft__cuda_embedding_bwd(sft_context *ctx, sft__node *n) {
    int64_t T = sft_tensor_numel(n->in[1]), D = n->in[0]->shape[1];
    (void)ctx;
    if (T * D == 0 || !n->in[0]->requires_grad) return SFT_OK;
    SFT__LAUNCH(sft__cuda_embedding_bwd_kernel, sft__cuda_grid(D), SFT__CUDA_BLOCK, 0, SFT__F(n->in[0]->grad),
                SFT__CF(n->out->grad), (const int32_t *)n->in[1]->data, T, D);
    return sft__cuda_launched(n, "embedding_bwd");
}

/* ============================================================================
   === cuda: rmsnorm
   node: in[0] = x [.., D], in[1] = weight [D]; f[0] = eps; saved = 1/rms per row.
   A block per row sums x^2 (strided partial sums, then the fixed tree); the
   rest is the CPU's expression. The weight's gradient gives a thread a column
   and adds the rows in order, as the CPU does. */

static __global__ void sft__cuda_rmsnorm_kernel(float *y, float *inv_out, const float *x, const float *w, int64_t D, float eps) {
    __shared__ float sh[256];
    const float *xr = x + (int64_t)blockIdx.x * D;
    float *yr = y + (int64_t)blockIdx.x * D, ss = 0.0f, inv;
    for (int64_t c = threadIdx.x; c < D; c += blockDim.x) ss = __fadd_rn(ss, __fmul_rn(xr[c], xr[c]));
    ss = sft__cuda_block_sum(ss, sh);
    inv = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(__fdiv_rn(ss, (float)D), eps)));
    if (threadIdx.x == 0) inv_out[blockIdx.x] = inv;
    for (int64_t c = threadIdx.x; c < D; c += blockDim.x) yr[c] = __fmul_rn(w[c], __fmul_rn(xr[c], inv));
}

/* dx = r * (g w - xh * mean(g w xh)), xh = x r */
static __global__ void sft__cuda_rmsnorm_bwd_x_kernel(float *dx, const float *g, const float *x, const float *w, const float *inv_in,
                                                      int64_t D) {
    __shared__ float sh[256];
    int64_t off = (int64_t)blockIdx.x * D;
    float inv = inv_in[blockIdx.x], dot = 0.0f, m;
    for (int64_t c = threadIdx.x; c < D; c += blockDim.x)
        dot = __fadd_rn(dot, __fmul_rn(__fmul_rn(g[off + c], w[c]), __fmul_rn(x[off + c], inv)));
    dot = sft__cuda_block_sum(dot, sh);
    m = __fdiv_rn(dot, (float)D);
    for (int64_t c = threadIdx.x; c < D; c += blockDim.x)
        dx[off + c] = __fadd_rn(dx[off + c], __fmul_rn(inv, __fsub_rn(__fmul_rn(g[off + c], w[c]),
                                                                      __fmul_rn(__fmul_rn(x[off + c], inv), m))));
}

static __global__ void sft__cuda_rmsnorm_bwd_w_kernel(float *dw, const float *g, const float *x, const float *inv, int64_t rows,
                                                      int64_t D) {
    SFT__CUDA_FOR(c, D) {
        float acc = 0.0f;
        for (int64_t r = 0; r < rows; r++) acc = __fadd_rn(acc, __fmul_rn(g[r * D + c], __fmul_rn(x[r * D + c], inv[r])));
        dw[c] = __fadd_rn(dw[c], acc);
    }
}

static sft_status sft__cuda_rmsnorm_fwd(sft_context *ctx, sft__node *n) {
    int64_t rows = sft_tensor_numel(n->saved), D = sft__last_dim(n->in[0]);
    (void)ctx;
    if (rows == 0) return SFT_OK;
    SFT__LAUNCH(sft__cuda_rmsnorm_kernel, (unsigned)rows, sft__cuda_row_threads(D), 0, SFT__F(n->out), SFT__F(n->saved),
                SFT__CF(n->in[0]), SFT__CF(n->in[1]), D, n->f[0]);
    return sft__cuda_launched(n, "rmsnorm");
}

static sft_status sft__cuda_rmsnorm_bwd(sft_context *ctx, sft__node *n) {
    int64_t rows = sft_tensor_numel(n->saved), D = sft__last_dim(n->in[0]);
    (void)ctx;
    if (rows == 0 || D == 0) return SFT_OK;
    if (n->in[0]->requires_grad) {
        SFT__LAUNCH(sft__cuda_rmsnorm_bwd_x_kernel, (unsigned)rows, sft__cuda_row_threads(D), 0, SFT__F(n->in[0]->grad),
                    SFT__CF(n->out->grad), SFT__CF(n->in[0]), SFT__CF(n->in[1]), SFT__CF(n->saved), D);
        SFT__TRY(sft__cuda_launched(n, "rmsnorm_bwd_x"));
    }
    if (n->in[1]->requires_grad) {
        SFT__LAUNCH(sft__cuda_rmsnorm_bwd_w_kernel, sft__cuda_grid(D), SFT__CUDA_BLOCK, 0, SFT__F(n->in[1]->grad),
                    SFT__CF(n->out->grad), SFT__CF(n->in[0]), SFT__CF(n->saved), rows, D);
        SFT__TRY(sft__cuda_launched(n, "rmsnorm_bwd_w"));
    }
    return SFT_OK;
}

/* ============================================================================
   === cuda: rope
   node: in[0] = x [B, T, H, D], in[1] = positions [B, T]; saved = inv_freq [D/2]
   (made on the host by sft_rope_inv_freq, llama3 scaling included). A thread
   owns one (position, pair) and turns it in every head; backward turns the
   gradient back by the same angle. */

static __global__ void sft__cuda_rope_kernel(float *dst, const float *src, const int32_t *pos, const float *inv, int64_t BT,
                                             int64_t H, int64_t D, int backward) {
    int64_t half = D / 2;
    SFT__CUDA_FOR(k, BT * half) {
        int64_t bt = k / half, i = k % half;
        float ang = __fmul_rn((float)pos[bt], inv[i]), cs = cosf(ang), sn = sinf(ang);
        if (backward) sn = -sn;
        for (int64_t h = 0; h < H; h++) {
            const float *s = src + (bt * H + h) * D;
            float *d = dst + (bt * H + h) * D, x1 = s[i], x2 = s[i + half];
            float a = __fsub_rn(__fmul_rn(x1, cs), __fmul_rn(x2, sn)), b = __fadd_rn(__fmul_rn(x2, cs), __fmul_rn(x1, sn));
            if (backward) { d[i] = __fadd_rn(d[i], a); d[i + half] = __fadd_rn(d[i + half], b); }
            else { d[i] = a; d[i + half] = b; }
        }
    }
}

static sft_status sft__cuda_rope_run(sft__node *n, int backward) {
    const sft_tensor *x = n->in[0];
    int64_t BT = x->shape[0] * x->shape[1], H = x->shape[2], D = x->shape[3];
    if (n->i[0] != D / 2 || n->f[0] != 1.0f)   /* the kernel turns every pair, unscaled */
        return sft__fail(SFT_ERR_UNSUPPORTED, "rope: partial rotary or an attention factor (longrope) has no CUDA kernel yet");
    if (BT * (D / 2) == 0) return SFT_OK;
    SFT__LAUNCH(sft__cuda_rope_kernel, sft__cuda_grid(BT * (D / 2)), SFT__CUDA_BLOCK, 0,
                backward ? SFT__F(n->in[0]->grad) : SFT__F(n->out), backward ? SFT__CF(n->out->grad) : SFT__CF(x),
                (const int32_t *)n->in[1]->data, SFT__CF(n->saved), BT, H, D, backward);
    return sft__cuda_launched(n, backward ? "rope_bwd" : "rope");
}

static sft_status sft__cuda_rope_fwd(sft_context *ctx, sft__node *n) { (void)ctx; return sft__cuda_rope_run(n, 0); }
static sft_status sft__cuda_rope_bwd(sft_context *ctx, sft__node *n) { (void)ctx; return sft__cuda_rope_run(n, 1); }

/* ============================================================================
   === cuda: gemm
   C (+)= op(A) . op(B) for the strided views sft.h's CPU GEMM takes (element
   (r, c) of a view is p[r*rs + c*cs]; a transposed view swaps the strides).
   One function, sft__cuda_gemm, does every dense product: under nvcc it calls
   cuBLASLt (f32 in, f32 compute, f32 out), under the emulator (or with
   SFT_CUDA_GEMM=reference) it runs the reference kernel below.

   The reference kernel: a block of 16 x 16 threads owns a 32 x 32 tile of C (2 x
   2 elements a thread) and walks k in steps of 32, loading op(A)'s and op(B)'s
   tiles into shared memory; each element adds its products in increasing k,
   each rounded (acc = acc + a*b), then C = acc or C + acc. That is the portable
   CPU GEMM's arithmetic exactly, so it gives the same bits. op(B) comes from a
   source type with at(k, n): a dense view here, a 4-bit or bf16 weight decoded
   on the fly in "4-bit" below (the tile in shared memory is the only decoded
   copy there is). With a compute kind (1 bf16, 2 f16) both operands are
   rounded to it as they are loaded and the sums stay f32: a frozen weight's
   bnb_4bit_compute_dtype, as the CPU's portable path computes bf16. These
   low-precision products normally go to the tensor cores ("tensor cores"
   below); SFT_CUDA_GEMM=reference keeps them here, on CUDA cores. */

#define SFT__GEMM_T 32

/* op(B) of a dense view */
typedef struct sft__cuda_bview {
    const float *p;
    int64_t rs, cs;
    __device__ float at(int64_t k, int64_t n) const { return p[k * rs + n * cs]; }
} sft__cuda_bview;

/* v rounded to bf16 and widened again (sft.h's sft__bf16_bits) */
static __device__ float sft__cuda_round_bf16(float v) { return __uint_as_float((uint32_t)sft__bf16_bits(v) << 16); }
/* v rounded to the compute kind (1 bf16, 2 f16: IEEE binary16, overflow to inf) */
static __device__ float sft__cuda_round_kind(float v, int kind) {
    return kind == 2 ? __half2float(__float2half_rn(v)) : kind ? sft__cuda_round_bf16(v) : v;
}

template <typename BSrc>
static __global__ void __launch_bounds__(256) sft__cuda_gemm_kernel(float *C, int64_t ldc, sft__mat a, BSrc b, int64_t M, int64_t N,
                                                                    int64_t K, int accumulate, int kind) {
    __shared__ float As[SFT__GEMM_T][SFT__GEMM_T + 1];
    __shared__ float Bs[SFT__GEMM_T][SFT__GEMM_T + 1];   /* Bs[n][k] */
    const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * 16 + tx;
    const int64_t m0 = (int64_t)blockIdx.y * SFT__GEMM_T, n0 = (int64_t)blockIdx.x * SFT__GEMM_T;
    float acc[2][2] = {{0.0f, 0.0f}, {0.0f, 0.0f}};
    for (int64_t k0 = 0; k0 < K; k0 += SFT__GEMM_T) {
        for (int r = 0; r < (SFT__GEMM_T * SFT__GEMM_T) / 256; r++) {
            int idx = tid + r * 256, row = idx / SFT__GEMM_T, col = idx % SFT__GEMM_T;
            int64_t m = m0 + row, n = n0 + row, k = k0 + col;
            float av = m < M && k < K ? a.p[m * a.rs + k * a.cs] : 0.0f, bv = n < N && k < K ? b.at(k, n) : 0.0f;
            As[row][col] = sft__cuda_round_kind(av, kind);
            Bs[row][col] = sft__cuda_round_kind(bv, kind);
        }
        __syncthreads();
        int kend = K - k0 < SFT__GEMM_T ? (int)(K - k0) : SFT__GEMM_T;
        for (int kk = 0; kk < kend; kk++) {
            float a0 = As[ty][kk], a1 = As[ty + 16][kk], b0 = Bs[tx][kk], b1 = Bs[tx + 16][kk];
            acc[0][0] = __fadd_rn(acc[0][0], __fmul_rn(a0, b0));
            acc[0][1] = __fadd_rn(acc[0][1], __fmul_rn(a0, b1));
            acc[1][0] = __fadd_rn(acc[1][0], __fmul_rn(a1, b0));
            acc[1][1] = __fadd_rn(acc[1][1], __fmul_rn(a1, b1));
        }
        __syncthreads();   /* the next tiles overwrite these */
    }
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) {
            int64_t m = m0 + ty + 16 * i, n = n0 + tx + 16 * j;
            if (m < M && n < N) C[m * ldc + n] = accumulate ? __fadd_rn(C[m * ldc + n], acc[i][j]) : acc[i][j];
        }
}

/* sft__cuda_gemm_tiled: the reference kernel on any op(B) source (kind: 0 f32,
   1 bf16, 2 f16 operands) */
template <typename BSrc>
static sft_status sft__cuda_gemm_tiled(int64_t M, int64_t N, int64_t K, sft__mat a, BSrc b, float *c, int64_t ldc, int accumulate,
                                       int kind, const char *op) {
    int64_t gx = (N + SFT__GEMM_T - 1) / SFT__GEMM_T, gy = (M + SFT__GEMM_T - 1) / SFT__GEMM_T;
    if (M <= 0 || N <= 0) return SFT_OK;
    if (gy > 65535 || gx > 0x7fffffff)
        return sft__fail(SFT_ERR_LIMIT, "%s: a GEMM of %lld x %lld is beyond one launch of the tiled kernel", op, (long long)M,
                         (long long)N);
    SFT__LAUNCH(sft__cuda_gemm_kernel<BSrc>, dim3((unsigned)gx, (unsigned)gy), dim3(16, 16), 0, c, ldc, a, b, M, N, K, accumulate, kind);
    return sft__cuda_check(op, "gemm");
}

/* the workspaces a context keeps once used: cuBLASLt's (after a dense GEMM; the
   emulator's reference kernel needs none) and the 16-bit operands of the
   tensor cores' dequantize path, as large as the largest product a memory
   plan has routed there (see "tensor cores") */
#define SFT__CUDA_LT_WORKSPACE ((size_t)32 << 20)
static size_t sft__cuda_workspace_bytes(const sft_context *ctx) {
    const sft__cuda_state *st = (const sft__cuda_state *)ctx->cuda;
    size_t work16 = st ? (st->plan_work16 > st->work16_bytes ? st->plan_work16 : st->work16_bytes) : 0;
#ifdef CUDA_EMU
    return work16;
#else
    return SFT__CUDA_LT_WORKSPACE + work16;
#endif
}

#ifndef CUDA_EMU
/* cuBLASLt works in column-major order. A [rows, cols] view with cs == 1 (row-
   major) is the transpose of a stored column-major [cols, rows] matrix with
   leading dimension rs; one with rs == 1 is a column-major [rows, cols] matrix
   as it is (ld = cs). C [M, N] row-major is C^T column-major, so C^T =
   op(B)^T op(A)^T is computed with B's view as the first operand. */
static int sft__cuda_lt_operand(sft__mat v, int64_t rows, int64_t cols, cublasOperation_t *op, uint64_t *r, uint64_t *c, int64_t *ld) {
    if (v.cs == 1) {
        *op = CUBLAS_OP_T; *r = (uint64_t)cols; *c = (uint64_t)rows; *ld = v.rs > cols ? v.rs : cols;
        return 1;
    }
    if (v.rs == 1) {
        *op = CUBLAS_OP_N; *r = (uint64_t)rows; *c = (uint64_t)cols; *ld = v.cs > rows ? v.cs : rows;
        return 1;
    }
    return 0;
}

/* the alignment a pointer has, as cuBLASLt's heuristic wants it told (views
   start anywhere in a tensor: 4 bytes at least, 256 at most) */
static uint32_t sft__cuda_align_of(const void *p) {
    uint32_t a = 4;
    while (a < 256 && (uintptr_t)p % (2 * a) == 0) a *= 2;
    return a;
}

/* the cuBLASLt handle and workspace, made on the first dense GEMM (no workspace
   if it cannot be had: cuBLASLt then picks algorithms that need none) */
static sft_status sft__cuda_lt_init(sft_context *ctx, sft__cuda_state *st, const char *op) {
    if (st->lt) return SFT_OK;
    if (cublasLtCreate(&st->lt) != CUBLAS_STATUS_SUCCESS) return sft__fail(SFT_ERR_DEVICE, "%s: cublasLtCreate failed", op);
    st->lt_work_bytes = SFT__CUDA_LT_WORKSPACE;
    if (sft__cuda_alloc(ctx, st->lt_work_bytes, &st->lt_work) != SFT_OK) { sft_clear_error(); st->lt_work = NULL; st->lt_work_bytes = 0; }
    return SFT_OK;
}

static sft_status sft__cuda_gemm_lt(sft_context *ctx, sft__cuda_state *st, int64_t M, int64_t N, int64_t K, sft__mat a, sft__mat b, float *c,
                                    int64_t ldc, int accumulate, const char *op, int *done) {
    cublasLtMatmulDesc_t desc = NULL;
    cublasLtMatrixLayout_t la = NULL, lb = NULL, lc = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    cublasLtMatmulHeuristicResult_t heur;
    cublasOperation_t opa, opb;
    uint64_t ar, ac, br, bc;
    int64_t lda, ldb;
    int found = 0;
    float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    uint32_t align_a = sft__cuda_align_of(a.p), align_b = sft__cuda_align_of(b.p), align_c = sft__cuda_align_of(c);
    cublasStatus_t e = CUBLAS_STATUS_SUCCESS;
    *done = 0;
    /* the first operand is op(B)^T (N x K), the second op(A)^T (K x M) */
    if (!sft__cuda_lt_operand(sft__mat_t(b), N, K, &opb, &br, &bc, &ldb) || !sft__cuda_lt_operand(sft__mat_t(a), K, M, &opa, &ar, &ac, &lda))
        return SFT_OK;   /* not a plain matrix: the reference kernel takes it */
    SFT__TRY(sft__cuda_lt_init(ctx, st, op));
    e = cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    if (e == CUBLAS_STATUS_SUCCESS) e = cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &opb, sizeof opb);
    if (e == CUBLAS_STATUS_SUCCESS) e = cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &opa, sizeof opa);
    if (e == CUBLAS_STATUS_SUCCESS) e = cublasLtMatrixLayoutCreate(&lb, CUDA_R_32F, br, bc, ldb);
    if (e == CUBLAS_STATUS_SUCCESS) e = cublasLtMatrixLayoutCreate(&la, CUDA_R_32F, ar, ac, lda);
    if (e == CUBLAS_STATUS_SUCCESS) e = cublasLtMatrixLayoutCreate(&lc, CUDA_R_32F, (uint64_t)N, (uint64_t)M, ldc);
    if (e == CUBLAS_STATUS_SUCCESS) e = cublasLtMatmulPreferenceCreate(&pref);
    if (e == CUBLAS_STATUS_SUCCESS)
        e = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &st->lt_work_bytes, sizeof st->lt_work_bytes);
    if (e == CUBLAS_STATUS_SUCCESS)   /* the first operand is B's view, the second A's */
        e = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_b, sizeof align_b);
    if (e == CUBLAS_STATUS_SUCCESS)
        e = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_a, sizeof align_a);
    if (e == CUBLAS_STATUS_SUCCESS)
        e = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_c, sizeof align_c);
    if (e == CUBLAS_STATUS_SUCCESS)
        e = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_c, sizeof align_c);
    if (e == CUBLAS_STATUS_SUCCESS) e = cublasLtMatmulAlgoGetHeuristic(st->lt, desc, lb, la, lc, lc, pref, 1, &heur, &found);
    if (e == CUBLAS_STATUS_SUCCESS && found > 0)
        e = cublasLtMatmul(st->lt, desc, &alpha, b.p, lb, a.p, la, &beta, c, lc, c, lc, &heur.algo, st->lt_work, st->lt_work_bytes, 0);
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (lc) cublasLtMatrixLayoutDestroy(lc);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (desc) cublasLtMatmulDescDestroy(desc);
    if (e != CUBLAS_STATUS_SUCCESS)
        return sft__fail(SFT_ERR_DEVICE, "%s: cublasLtMatmul (%lld x %lld x %lld) failed with status %d", op, (long long)M, (long long)N,
                         (long long)K, (int)e);
    *done = found > 0;
    return SFT_OK;
}
#endif

/* sft__cuda_gemm: C (+)= op(A) . op(B), every operand on the device */
static sft_status sft__cuda_gemm(sft_context *ctx, int64_t M, int64_t N, int64_t K, sft__mat a, sft__mat b, float *c, int64_t ldc,
                                 int accumulate, const char *op) {
    sft__cuda_bview bv;
    if (ctx->plan_only || M <= 0 || N <= 0) return SFT_OK;
#ifndef CUDA_EMU
    {
        sft__cuda_state *st = NULL;
        int done = 0;
        SFT__TRY(sft__cuda_state_of(ctx, &st));
        if (!st->gemm_reference && K > 0) SFT__TRY(sft__cuda_gemm_lt(ctx, st, M, N, K, a, b, c, ldc, accumulate, op, &done));
        if (done) return sft__cuda_check(op, "cublasLtMatmul");
    }
#endif
    bv.p = b.p; bv.rs = b.rs; bv.cs = b.cs;
    return sft__cuda_gemm_tiled(M, N, K, a, bv, c, ldc, accumulate, 0, op);
}

/* from "tensor cores" below: a frozen weight's product in a low compute kind */
template <typename BSrc>
static sft_status sft__cuda_gemm_lowp(sft_context *ctx, int64_t M, int64_t N, int64_t K, sft__mat a, BSrc b, int kind, float *c, int64_t ldc,
                                      int accumulate, const char *op);

/* sft__cuda_gemm_f32w: C (+)= A . W^T (trans) or A . W for an f32 weight at w
   [N, K]; kind 1 (bf16) or 2 (f16): a frozen weight multiplied in that type
   (sft.h's sft__gemm_f32w does bf16) */
static sft_status sft__cuda_gemm_f32w(sft_context *ctx, int64_t M, sft__mat a, const float *w, int64_t N, int64_t K, int trans, int kind,
                                      float *c, int64_t ldc, int accumulate, const char *op) {
    sft__mat b = sft__mat_of(w, K, 1);
    sft__cuda_bview bv;
    if (ctx->plan_only && !kind) return SFT_OK;   /* a low kind's plan counts its workspace (sft__cuda_gemm_lowp) */
    if (trans) b = sft__mat_t(b);
    if (!kind) return trans ? sft__cuda_gemm(ctx, M, N, K, a, b, c, ldc, accumulate, op) : sft__cuda_gemm(ctx, M, K, N, a, b, c, ldc, accumulate, op);
    bv.p = b.p; bv.rs = b.rs; bv.cs = b.cs;
    return trans ? sft__cuda_gemm_lowp(ctx, M, N, K, a, bv, kind, c, ldc, accumulate, op)
                 : sft__cuda_gemm_lowp(ctx, M, K, N, a, bv, kind, c, ldc, accumulate, op);
}

/* ============================================================================
   === cuda: 4-bit
   A 4-bit weight on the device (sft_qweight_to_device): packed codes, block
   scales (or their 8-bit codes with the nested scales) and a device copy of
   the code tables. Decoding is sft.h's own (sft__q4_nibble, sft__q4_scale):
   code[q] * scale, one f32 multiply, so a dequantized element and a product
   with it have the CPU's bits. The fused GEMM decodes W one 32 x 32 tile at a
   time into the shared-memory tile of the reference kernel: for y = x W^T
   (trans, op(B)(k, n) = W[n][k]) and for dx = dy W (op(B)(k, n) = W[k][n]). */

typedef struct sft__cuda_q4 {
    const uint8_t *data, *absmax_q;
    const float   *absmax, *nested_absmax, *code, *nested_code;
    float          offset;
    int64_t        cols;
    int            block_shift, trans;   /* the blocksize is 1 << block_shift */
    __device__ float elem(int64_t e) const {
        return __fmul_rn(code[sft__q4_nibble(data, e)], sft__q4_scale(absmax, absmax_q, nested_absmax, nested_code, offset, e >> block_shift));
    }
    __device__ float at(int64_t k, int64_t n) const { return elem(trans ? n * cols + k : k * cols + n); }
} sft__cuda_q4;

/* a bf16 weight [rows, cols], widened */
typedef struct sft__cuda_bf16w {
    const uint16_t *p;
    int64_t cols;
    int trans;
    __device__ float elem(int64_t e) const { return __uint_as_float((uint32_t)p[e] << 16); }
    __device__ float at(int64_t k, int64_t n) const { return elem(trans ? n * cols + k : k * cols + n); }
} sft__cuda_bf16w;

static sft__cuda_q4 sft__cuda_q4_of(const sft_qweight *q, int trans) {
    sft__cuda_q4 s;
    s.data = q->data; s.absmax_q = q->double_quant ? q->absmax_q : NULL;
    s.absmax = q->double_quant ? NULL : q->absmax; s.nested_absmax = q->nested_absmax;
    s.code = q->device_code; s.nested_code = q->device_code + 16;
    s.offset = q->nested_offset; s.cols = q->cols; s.trans = trans;
    for (s.block_shift = 0; (1 << s.block_shift) < q->blocksize; s.block_shift++) {}   /* a power of two (sft_quantize) */
    return s;
}

static __global__ void sft__cuda_dequant_kernel(float *out, sft__cuda_q4 w, int64_t n) {
    SFT__CUDA_FOR(e, n) out[e] = w.elem(e);
}

static sft_status sft__cuda_dequantize(sft_context *ctx, const sft_qweight *q, float *out) {
    int64_t n = q->rows * q->cols;
    (void)ctx;
    if (q->device != SFT_DEVICE_CUDA) return sft__fail(SFT_ERR_DEVICE, "dequantize: the 4-bit weight is not on the CUDA device");
    SFT__LAUNCH(sft__cuda_dequant_kernel, sft__cuda_grid(n), SFT__CUDA_BLOCK, 0, out, sft__cuda_q4_of(q, 0), n);
    return sft__cuda_check("dequantize", "dequant");
}

/* ============================================================================
   === cuda: tensor cores
   The frozen base's products in a low compute kind (bnb_4bit_compute_dtype
   bfloat16, or float16 with --fp16): y = x W^T forward and dx = dy W backward
   for a 4-bit, bf16 or f32 base, and the output projection. Both operands are
   rounded to the kind (round to nearest even; f16 overflows to inf, which is
   what loss scaling watches for), products summed in f32.

   THE SEAM. Every tensor-core instruction goes through four device wrappers:
       sft__tc_mma<F16>      mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}
       sft__tc_ldmatrix_x4   ldmatrix.sync.aligned.m8n8.x4.shared.b16
       sft__tc_cp_async16    cp.async.cg.shared.global, 16 bytes
       sft__tc_cp_wait_all   cp.async.commit_group + wait_group 0
   inline PTX under nvcc (sm_80 and later), tests/cuda_emu's functional models
   under the emulator. An sm_90a wgmma/TMA kernel would go behind these same
   functions, only once a GPU can check it; there is none yet.

   TWO PATHS, one dispatcher (sft__cuda_lowp_fused):
     fused     sft__cuda_tc_gemm_kernel: a block of 4 warps owns a 64 x 64 tile
               of C; for every 32 columns of k it rounds x's tile and decodes
               W's tile (4-bit codes -> code * absmax -> bf16/f16) into shared
               memory, then each warp multiplies its 32 x 32 quarter with 2 x 2
               ldmatrix.x4 and 8 mma per 16 k. W is never whole in memory.
     dequant   x and W are written once as 16-bit matrices into a workspace the
               context keeps (grown, never shrunk: every kernel runs in stream
               order, so one buffer serves every GEMM), then cuBLASLt multiplies
               them (bf16/f16 in, f32 compute and out). Under the emulator, or
               with SFT_CUDA_GEMM=dequant_mma on a GPU, the same kernel as the
               fused path reads the workspace instead, its tiles loaded by
               cp.async (then both paths give the same bits: a test of the
               workspace's writers).
   The fused path reads 0.5 byte a weight but decodes W again for every 64
   rows of x, on CUDA cores; the dequant path moves 4.5 bytes a weight (read
   0.5, write 2, read 2) once and then runs at cuBLASLt's speed. With P the
   dense bf16 rate, B the memory bandwidth and f the fused kernel's fraction of
   P, dequant wins for M > 4.5 f P / (2 B (1 - f)). The first H200 run of
   `make bench-cuda` (2026-12-04) measured f at about 0.03, not the 1/3 this
   design assumed: the fused kernel ran at 1.3-29 TFLOP/s (one 64-row tile of
   blocks walks all of k alone, no split over k, no pipelining) and lost to
   dequant at every M measured, 16 included, by 2.8x there. With f = 0.03,
   M* = 0.07 P / B. The table below holds the measured M* for sm_90 and that
   estimate from the published P and B for the parts no one has measured;
   `make bench-cuda` prints the measured crossing as the row to put here.
   SFT_CUDA_GEMM=fused, dequant or dequant_mma forces one path (tests, benchmarks);
   SFT_CUDA_GEMM=reference sends these products to the CUDA-core kernel above.

   ACCURACY. Both paths round the same inputs as the CUDA-core kernel does and
   sum in f32; only the order of the additions differs (the emulator's mma
   adds its 16 products in k order with fmaf, a GPU in its own order). Against
   the exact product of the f32 inputs the error is at most
   (2 u_kind + gamma_K) sum |x w| with u_bf16 = 2^-8, u_f16 = 2^-11: the tests
   hold every element to (2^-7 + 2 gamma_K) sum |x w| for bf16 and
   (2^-10 + 2 gamma_K) sum |x w| for f16 against the f32 CUDA-core kernel. */

#define SFT__TC_THREADS 128          /* 4 warps, 2 x 2 over the tile              */
#define SFT__TC_BR      64           /* rows of x and of W^T a block owns         */
#define SFT__TC_BK      32           /* k per shared tile                         */
#define SFT__TC_LD      40           /* 16-bit values per shared row: 32 + 8 of padding
                                        (80 bytes: rows stay 16-byte aligned and the
                                        8 rows an ldmatrix reads hit distinct banks) */

/* --- the seam ----------------------------------------------------------------- */

template <int F16> static __device__ __forceinline__ void sft__tc_mma(float d[4], const uint32_t a[4], const uint32_t b[2]) {
#ifdef CUDA_EMU
    if (F16) cuda_emu::mma_m16n8k16_f16(d, a, b, d, __FILE__, __LINE__);
    else cuda_emu::mma_m16n8k16_bf16(d, a, b, d, __FILE__, __LINE__);
#else
    if (F16)
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    else
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

static __device__ __forceinline__ void sft__tc_ldmatrix_x4(uint32_t r[4], const uint16_t *row) {
#ifdef CUDA_EMU
    cuda_emu::ldmatrix(r, row, 4, 0, __FILE__, __LINE__);
#else
    unsigned addr = (unsigned)__cvta_generic_to_shared(row);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
#endif
}

static __device__ __forceinline__ void sft__tc_cp_async16(uint16_t *dst, const uint16_t *src) {
#ifdef CUDA_EMU
    cuda_emu::cp_async(dst, src, 16, 16, __FILE__, __LINE__);
#else
    unsigned addr = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(addr), "l"(src));
#endif
}

static __device__ __forceinline__ void sft__tc_cp_wait_all(void) {
#ifdef CUDA_EMU
    cuda_emu::cp_async_wait_all();
#else
    asm volatile("cp.async.commit_group;\ncp.async.wait_group 0;\n" ::: "memory");
#endif
}

/* v as the kind's 16 bits (bf16 as sft.h rounds it on the CPU) */
template <int F16> static __device__ __forceinline__ uint16_t sft__tc_bits(float v) {
    return F16 ? (uint16_t)__half_as_ushort(__float2half_rn(v)) : sft__bf16_bits(v);
}

/* --- operands: [rows, K] views a tile is filled from --------------------------- */

/* x (an f32 view, element (r, k)) */
typedef struct sft__tc_rows { sft__mat a; __device__ float rk(int64_t r, int64_t k) const { return a.p[r * a.rs + k * a.cs]; } } sft__tc_rows;
/* op(B)^T of a weight source (element (n, k) = at(k, n)) */
template <typename BSrc> struct sft__tc_cols { BSrc b; __device__ float rk(int64_t n, int64_t k) const { return b.at(k, n); } };
/* a 16-bit [rows, ld] matrix in the workspace, already in the kind */
typedef struct sft__tc_h16 { const uint16_t *p; int64_t ld; int vec; } sft__tc_h16;

/* fill the 64 x 32 tile at (r0, k0) of a [rows, K] operand, zeros outside */
template <int F16, typename Src>
static __device__ void sft__tc_fill(uint16_t *tile, const Src &s, int64_t r0, int64_t rows, int64_t k0, int64_t K) {
    for (int i = (int)threadIdx.x; i < SFT__TC_BR * SFT__TC_BK; i += SFT__TC_THREADS) {
        int r = i / SFT__TC_BK, k = i % SFT__TC_BK;
        tile[r * SFT__TC_LD + k] = r0 + r < rows && k0 + k < K ? sft__tc_bits<F16>(s.rk(r0 + r, k0 + k)) : (uint16_t)0;
    }
}
/* the workspace's rows: 16 bytes at a time by cp.async where whole and aligned */
template <int F16>
static __device__ void sft__tc_fill(uint16_t *tile, const sft__tc_h16 &s, int64_t r0, int64_t rows, int64_t k0, int64_t K) {
    for (int i = (int)threadIdx.x; i < SFT__TC_BR * SFT__TC_BK / 8; i += SFT__TC_THREADS) {
        int r = i / (SFT__TC_BK / 8), c = i % (SFT__TC_BK / 8) * 8, j;
        int64_t row = r0 + r, k = k0 + c;
        uint16_t *dst = tile + r * SFT__TC_LD + c;
        if (s.vec && row < rows && k + 8 <= K) sft__tc_cp_async16(dst, s.p + row * s.ld + k);
        else
            for (j = 0; j < 8; j++) dst[j] = row < rows && k + j < K ? s.p[row * s.ld + k + j] : (uint16_t)0;
    }
}

/* a 4-bit W^T for y = x W^T: 8 consecutive k of a row share one block scale
   (blocksizes are powers of two from 32, and the 8 start on a multiple of 8 when
   W's rows are), so the scale (with double quantization, two table lookups
   and a multiply) is decoded once for 8 values; the same products as elem() */
template <int F16>
static __device__ void sft__tc_fill(uint16_t *tile, const sft__tc_cols<sft__cuda_q4> &s, int64_t r0, int64_t rows, int64_t k0, int64_t K) {
    const sft__cuda_q4 &q = s.b;
    const int fast = q.trans && q.cols % 8 == 0;
    for (int i = (int)threadIdx.x; i < SFT__TC_BR * SFT__TC_BK / 8; i += SFT__TC_THREADS) {
        int r = i / (SFT__TC_BK / 8), c = i % (SFT__TC_BK / 8) * 8, j;
        int64_t n = r0 + r, k = k0 + c;
        uint16_t *dst = tile + r * SFT__TC_LD + c;
        if (fast && n < rows && k + 8 <= K) {
            int64_t e0 = n * q.cols + k;
            float sc = sft__q4_scale(q.absmax, q.absmax_q, q.nested_absmax, q.nested_code, q.offset, e0 >> q.block_shift);
            for (j = 0; j < 8; j++) dst[j] = sft__tc_bits<F16>(__fmul_rn(q.code[sft__q4_nibble(q.data, e0 + j)], sc));
        } else
            for (j = 0; j < 8; j++) dst[j] = n < rows && k + j < K ? sft__tc_bits<F16>(s.rk(n, k + j)) : (uint16_t)0;
    }
}

/* C (+)= A B^T for A [M, K] and B [N, K] operand views: see the section's top */
template <int F16, typename ASrc, typename BSrc>
static __global__ void __launch_bounds__(SFT__TC_THREADS) sft__cuda_tc_gemm_kernel(float *C, int64_t ldc, ASrc a, BSrc b, int64_t M, int64_t N,
                                                                                   int64_t K, int accumulate) {
    __shared__ __align__(16) uint16_t As[SFT__TC_BR * SFT__TC_LD];
    __shared__ __align__(16) uint16_t Bs[SFT__TC_BR * SFT__TC_LD];
    const int lane = (int)threadIdx.x & 31, warp = (int)threadIdx.x >> 5, wm = warp >> 1, wn = warp & 1;
    const int64_t m0 = (int64_t)blockIdx.y * SFT__TC_BR, n0 = (int64_t)blockIdx.x * SFT__TC_BR;
    float acc[2][4][4];
    int i, j, e;
    for (i = 0; i < 2; i++)
        for (j = 0; j < 4; j++)
            for (e = 0; e < 4; e++) acc[i][j][e] = 0.0f;
    for (int64_t k0 = 0; k0 < K; k0 += SFT__TC_BK) {
        sft__tc_fill<F16>(As, a, m0, M, k0, K);
        sft__tc_fill<F16>(Bs, b, n0, N, k0, K);
        sft__tc_cp_wait_all();
        __syncthreads();
        for (int ks = 0; ks < SFT__TC_BK; ks += 16) {
            uint32_t af[2][4], bq[2][4];
            /* A: matrices (rows 0-7 | 8-15) x (k 0-7 | 8-15), lane l gives row l % 16 of k half l / 16 */
            for (i = 0; i < 2; i++) sft__tc_ldmatrix_x4(af[i], &As[(wm * 32 + i * 16 + (lane & 15)) * SFT__TC_LD + ks + (lane >> 4) * 8]);
            /* B^T rows are n: matrices (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15) */
            for (j = 0; j < 2; j++)
                sft__tc_ldmatrix_x4(bq[j], &Bs[(wn * 32 + j * 16 + (lane >> 4) * 8 + (lane & 7)) * SFT__TC_LD + ks + ((lane >> 3) & 1) * 8]);
            for (i = 0; i < 2; i++)
                for (j = 0; j < 4; j++) sft__tc_mma<F16>(acc[i][j], af[i], &bq[j >> 1][(j & 1) * 2]);
        }
        __syncthreads();   /* the next tiles overwrite these */
    }
    for (i = 0; i < 2; i++)   /* c_e at row gid + 8 (e >> 1), column 2 tig + (e & 1) */
        for (j = 0; j < 4; j++)
            for (e = 0; e < 4; e++) {
                int64_t m = m0 + wm * 32 + i * 16 + (lane >> 2) + 8 * (e >> 1), n = n0 + wn * 32 + j * 8 + 2 * (lane & 3) + (e & 1);
                if (m < M && n < N) C[m * ldc + n] = accumulate ? __fadd_rn(C[m * ldc + n], acc[i][j][e]) : acc[i][j][e];
            }
}

template <int F16, typename ASrc, typename BSrc>
static sft_status sft__cuda_tc_launch(int64_t M, int64_t N, int64_t K, ASrc a, BSrc b, float *c, int64_t ldc, int accumulate, const char *op) {
    int64_t gx = (N + SFT__TC_BR - 1) / SFT__TC_BR, gy = (M + SFT__TC_BR - 1) / SFT__TC_BR;
    if (M <= 0 || N <= 0) return SFT_OK;
    if (gy > 65535 || gx > 0x7fffffff)
        return sft__fail(SFT_ERR_LIMIT, "%s: a GEMM of %lld x %lld is beyond one launch of the tensor-core kernel", op, (long long)M,
                         (long long)N);
    SFT__LAUNCH((sft__cuda_tc_gemm_kernel<F16, ASrc, BSrc>), dim3((unsigned)gx, (unsigned)gy), SFT__TC_THREADS, 0, c, ldc, a, b, M, N, K,
                accumulate);
    return sft__cuda_check(op, "tc_gemm");
}

/* --- the dequantize path --------------------------------------------------------- */

/* The workspace's writers. Each gives every element the same bits as the
   tiles of the fused path (the same products, rounded the same way), so the
   two paths differ only in who sums (SFT_CUDA_GEMM=dequant_mma: nobody). The
   first H200 run found the element-wise writer computing, not moving: two
   64-bit divisions an element (its row and column, its block) held it to a
   tenth of the memory's bandwidth. So rows go to the grid's y, columns to its
   x, a block is a shift, and the 4-bit weights have writers of their own. */

/* out[r, k] = the kind's bits of s's element (r, k), any source */
template <int F16, typename Src>
static __global__ void sft__cuda_to16_kernel(uint16_t *out, Src s, int64_t rows, int64_t K) {
    for (int64_t r = blockIdx.y; r < rows; r += gridDim.y)
        for (int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; k < K; k += (int64_t)gridDim.x * blockDim.x)
            out[r * K + k] = sft__tc_bits<F16>(s.rk(r, k));
}

/* a 4-bit W [N, K] for y = x W^T: the workspace is W's own order, and with K a
   multiple of 8 a thread turns 8 codes (4 bytes, one block: blocks hold 32 or
   more) into one 16-byte store; byte j holds elements 2j (high nibble) and 2j + 1 */
template <int F16>
static __global__ void sft__cuda_q4_rows_kernel(uint16_t *out, sft__cuda_q4 q, int64_t groups) {
    SFT__CUDA_FOR(g, groups) {
        int64_t e0 = g * 8;
        uint32_t codes = *(const uint32_t *)(q.data + (e0 >> 1)), h16[8];
        float sc = sft__q4_scale(q.absmax, q.absmax_q, q.nested_absmax, q.nested_code, q.offset, e0 >> q.block_shift);
        uint4 v;
        for (int j = 0; j < 4; j++) {
            unsigned byte = (codes >> (8 * j)) & 255u;
            h16[2 * j] = sft__tc_bits<F16>(__fmul_rn(q.code[byte >> 4], sc));
            h16[2 * j + 1] = sft__tc_bits<F16>(__fmul_rn(q.code[byte & 15u], sc));
        }
        v.x = h16[0] | h16[1] << 16; v.y = h16[2] | h16[3] << 16;
        v.z = h16[4] | h16[5] << 16; v.w = h16[6] | h16[7] << 16;
        *(uint4 *)(out + e0) = v;
    }
}

/* a 4-bit W [K, N] for dx = dy W: the workspace [N, K] is W transposed, through
   a 32 x 32 tile in shared memory so that both the codes' reads (along W's
   rows) and the 16-bit writes (along the workspace's) are coalesced */
enum { SFT__T16 = 32, SFT__T16_THREADS = 256 };
template <int F16>
static __global__ void __launch_bounds__(SFT__T16_THREADS) sft__cuda_q4_cols_kernel(uint16_t *out, sft__cuda_q4 q, int64_t N, int64_t K) {
    __shared__ uint16_t tile[SFT__T16][SFT__T16 + 1];
    const int tx = (int)threadIdx.x % SFT__T16, ty = (int)threadIdx.x / SFT__T16, step = SFT__T16_THREADS / SFT__T16;
    const int64_t tiles_n = (N + SFT__T16 - 1) / SFT__T16, tiles = tiles_n * ((K + SFT__T16 - 1) / SFT__T16);
    for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) {
        int64_t n0 = t % tiles_n * SFT__T16, k0 = t / tiles_n * SFT__T16;
        for (int r = ty; r < SFT__T16; r += step)
            tile[r][tx] = k0 + r < K && n0 + tx < N ? sft__tc_bits<F16>(q.elem((k0 + r) * N + n0 + tx)) : (uint16_t)0;
        __syncthreads();
        for (int r = ty; r < SFT__T16; r += step)
            if (n0 + r < N && k0 + tx < K) out[(n0 + r) * K + k0 + tx] = tile[tx][r];
        __syncthreads();
    }
}

/* the grid of sft__cuda_to16_kernel: x along K, y over the rows */
static dim3 sft__cuda_grid16(int64_t rows, int64_t K) {
    int64_t gx = (K + SFT__CUDA_BLOCK - 1) / SFT__CUDA_BLOCK, gy = rows < 65535 ? rows : 65535;
    if (gx > 64) gx = 64;
    while (gx * gy > (int64_t)SFT__CUDA_MAX_GRID * 4 && gy > 1) gy /= 2;
    return dim3((unsigned)gx, (unsigned)gy);
}

/* sft__cuda_w16: the [rows, K] source as the kind's 16-bit matrix out */
template <int F16, typename Src>
static void sft__cuda_w16(uint16_t *out, const Src &s, int64_t rows, int64_t K) {
    SFT__LAUNCH((sft__cuda_to16_kernel<F16, Src>), sft__cuda_grid16(rows, K), SFT__CUDA_BLOCK, 0, out, s, rows, K);
}
template <int F16>
static void sft__cuda_w16(uint16_t *out, const sft__tc_cols<sft__cuda_q4> &s, int64_t rows, int64_t K) {
    const sft__cuda_q4 &q = s.b;
    if (q.trans && q.cols == K && K % 8 == 0 && (uintptr_t)q.data % 4 == 0 && (uintptr_t)out % 16 == 0)
        SFT__LAUNCH(sft__cuda_q4_rows_kernel<F16>, sft__cuda_grid(rows * K / 8), SFT__CUDA_BLOCK, 0, out, q, rows * K / 8);
    else if (!q.trans && q.cols == rows) {
        int64_t tiles = (rows + SFT__T16 - 1) / SFT__T16 * ((K + SFT__T16 - 1) / SFT__T16);
        SFT__LAUNCH(sft__cuda_q4_cols_kernel<F16>, (unsigned)(tiles < SFT__CUDA_MAX_GRID ? tiles : SFT__CUDA_MAX_GRID), SFT__T16_THREADS, 0,
                    out, q, rows, K);
    } else
        SFT__LAUNCH((sft__cuda_to16_kernel<F16, sft__tc_cols<sft__cuda_q4> >), sft__cuda_grid16(rows, K), SFT__CUDA_BLOCK, 0, out, s, rows, K);
}

#ifndef CUDA_EMU
/* cuBLASLt on the workspace: C [M, N] (+)= X [M, K] . W^T for X, W row-major
   16-bit; column-major that is C^T = W (as K x N, transposed) . X (K x M) */
static sft_status sft__cuda_gemm_lt16(sft_context *ctx, sft__cuda_state *st, int64_t M, int64_t N, int64_t K, const uint16_t *x16,
                                      const uint16_t *w16, int f16, float *c, int64_t ldc, int accumulate, const char *op, int *done);
#endif

/* x's 16-bit copy, rounded up so that W's starts 256-byte aligned after it */
static size_t sft__cuda_x16_bytes(int64_t M, int64_t K) { return ((size_t)(M * K) * 2 + 255) / 256 * 256; }

/* grow the context's 16-bit workspace to hold n bytes */
static sft_status sft__cuda_work16(sft_context *ctx, sft__cuda_state *st, size_t n) {
    if (st->work16_bytes >= n) return SFT_OK;
    sft__cuda_free(ctx, st->work16);
    st->work16 = NULL; st->work16_bytes = 0;
    SFT__TRY(sft__cuda_alloc(ctx, n, &st->work16));
    st->work16_bytes = n;
    return SFT_OK;
}

template <int F16, typename BSrc>
static sft_status sft__cuda_lowp_dequant(sft_context *ctx, sft__cuda_state *st, int64_t M, int64_t N, int64_t K, sft__mat a, BSrc b, float *c,
                                         int64_t ldc, int accumulate, const char *op) {
    size_t xb = sft__cuda_x16_bytes(M, K), wb = (size_t)(N * K) * 2;
    uint16_t *x16, *w16;
    sft__tc_rows ar;
    sft__tc_cols<BSrc> bc;
    sft__tc_h16 hx, hw;
    SFT__TRY(sft__cuda_work16(ctx, st, xb + wb));
    x16 = (uint16_t *)st->work16; w16 = (uint16_t *)((char *)st->work16 + xb);
    ar.a = a; bc.b = b;
    if (M * K > 0) sft__cuda_w16<F16>(x16, ar, M, K);
    SFT__TRY(sft__cuda_check(op, "to16 (x)"));
    if (N * K > 0) sft__cuda_w16<F16>(w16, bc, N, K);
    SFT__TRY(sft__cuda_check(op, "to16 (W)"));
#ifndef CUDA_EMU
    if (st->gemm_mode != SFT__GEMM_DEQUANT_MMA) {
        int done = 0;
        SFT__TRY(sft__cuda_gemm_lt16(ctx, st, M, N, K, x16, w16, F16, c, ldc, accumulate, op, &done));
        if (done) return sft__cuda_check(op, "cublasLtMatmul (16-bit)");
    }
#endif
    hx.p = x16; hx.ld = K; hx.vec = K % 8 == 0;    /* rows 16-byte aligned: the workspace and w16 start on 256 */
    hw.p = w16; hw.ld = K; hw.vec = K % 8 == 0;
    return sft__cuda_tc_launch<F16>(M, N, K, hx, hw, c, ldc, accumulate, op);
}

/* --- the dispatcher ----------------------------------------------------------------
   M* per architecture: measured where a GPU ran `make bench-cuda`, else the
   estimate M* = 0.07 P / B (see the section's top) from the vendors' dense bf16
   rate P and memory bandwidth B. 0: the fused kernel never runs unforced. */
typedef struct sft__tc_row { int sm; int64_t m_star; const char *part; } sft__tc_row;
static const sft__tc_row sft__tc_table[] = {
    {80, 11, "A100 SXM: P 312 TFLOP/s, B 2.0 TB/s (estimate)"},
    {86, 12, "RTX A6000 / 3090: P ~ 150 TFLOP/s (f32 accumulate), B 0.77-0.94 TB/s (estimate)"},
    {89, 29, "L40S: P 362 TFLOP/s, B 0.86 TB/s (estimate)"},
    {90, 0, "H200, measured 2026-12-04: dequant won at every M and shape, M = 16 included"},
};

/* M* of this device: SFT_CUDA_FUSED_MAX_ROWS where set (a crossing the user
   measured), else the table's row for the newest architecture at or below it */
static int64_t sft__cuda_m_star(const sft__cuda_state *st) {
    int64_t m_star = 0;   /* older than every row: no measurement, dequant */
    size_t i;
    if (st->fused_max_rows >= 0) return st->fused_max_rows;
    for (i = 0; i < sizeof sft__tc_table / sizeof *sft__tc_table; i++)
        if (sft__tc_table[i].sm <= st->sm) m_star = sft__tc_table[i].m_star;
    return m_star;
}

/* sft__cuda_lowp_fused: 1 when the fused kernel is to run an M x N x K product
   (M* depends on the part only: both paths' costs scale with N K) */
static int sft__cuda_lowp_fused(const sft__cuda_state *st, int64_t M, int64_t N, int64_t K) {
    (void)N; (void)K;
    if (st->gemm_mode == SFT__GEMM_FUSED) return 1;
    if (st->gemm_mode == SFT__GEMM_DEQUANT || st->gemm_mode == SFT__GEMM_DEQUANT_MMA) return 0;
    return M <= sft__cuda_m_star(st);
}

/* sft__cuda_gemm_lowp: C (+)= op(A) . op(B) for a frozen weight source in kind
   1 (bf16) or 2 (f16): reference, fused or dequantize (above) */
template <typename BSrc>
static sft_status sft__cuda_gemm_lowp(sft_context *ctx, int64_t M, int64_t N, int64_t K, sft__mat a, BSrc b, int kind, float *c, int64_t ldc,
                                      int accumulate, const char *op) {
    sft__cuda_state *st = NULL;
    sft__tc_rows ar;
    sft__tc_cols<BSrc> bc;
    if (M <= 0 || N <= 0) return SFT_OK;
    SFT__TRY(sft__cuda_state_of(ctx, &st));
    if (ctx->plan_only) {   /* a memory plan: the workspace this product would need */
        size_t need = sft__cuda_x16_bytes(M, K) + (size_t)(N * K) * 2;
        if (st->gemm_mode != SFT__GEMM_REFERENCE && !sft__cuda_lowp_fused(st, M, N, K) && need > st->plan_work16) st->plan_work16 = need;
        return SFT_OK;
    }
    if (st->gemm_mode == SFT__GEMM_REFERENCE) return sft__cuda_gemm_tiled(M, N, K, a, b, c, ldc, accumulate, kind, op);
    if (!sft__cuda_lowp_fused(st, M, N, K))
        return kind == 2 ? sft__cuda_lowp_dequant<1>(ctx, st, M, N, K, a, b, c, ldc, accumulate, op)
                         : sft__cuda_lowp_dequant<0>(ctx, st, M, N, K, a, b, c, ldc, accumulate, op);
    ar.a = a; bc.b = b;
    return kind == 2 ? sft__cuda_tc_launch<1>(M, N, K, ar, bc, c, ldc, accumulate, op)
                     : sft__cuda_tc_launch<0>(M, N, K, ar, bc, c, ldc, accumulate, op);
}

#ifndef CUDA_EMU
static sft_status sft__cuda_gemm_lt16(sft_context *ctx, sft__cuda_state *st, int64_t M, int64_t N, int64_t K, const uint16_t *x16,
                                      const uint16_t *w16, int f16, float *c, int64_t ldc, int accumulate, const char *op, int *done) {
    cublasLtMatmulDesc_t desc = NULL;
    cublasLtMatrixLayout_t lw = NULL, lx = NULL, lc = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    cublasLtMatmulHeuristicResult_t heur;
    cublasOperation_t opw = CUBLAS_OP_T, opx = CUBLAS_OP_N;
    cudaDataType_t t16 = f16 ? CUDA_R_16F : CUDA_R_16BF;
    uint32_t align_c = sft__cuda_align_of(c), align16 = K % 8 == 0 ? 16 : 2;
    float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    int found = 0;
    cublasStatus_t e;
    *done = 0;
    SFT__TRY(sft__cuda_lt_init(ctx, st, op));
    e = cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    if (e == CUBLAS_STATUS_SUCCESS) e = cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &opw, sizeof opw);
    if (e == CUBLAS_STATUS_SUCCESS) e = cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &opx, sizeof opx);
    if (e == CUBLAS_STATUS_SUCCESS) e = cublasLtMatrixLayoutCreate(&lw, t16, (uint64_t)K, (uint64_t)N, K);
    if (e == CUBLAS_STATUS_SUCCESS) e = cublasLtMatrixLayoutCreate(&lx, t16, (uint64_t)K, (uint64_t)M, K);
    if (e == CUBLAS_STATUS_SUCCESS) e = cublasLtMatrixLayoutCreate(&lc, CUDA_R_32F, (uint64_t)N, (uint64_t)M, ldc);
    if (e == CUBLAS_STATUS_SUCCESS) e = cublasLtMatmulPreferenceCreate(&pref);
    if (e == CUBLAS_STATUS_SUCCESS)
        e = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &st->lt_work_bytes, sizeof st->lt_work_bytes);
    if (e == CUBLAS_STATUS_SUCCESS) e = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align16, sizeof align16);
    if (e == CUBLAS_STATUS_SUCCESS) e = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align16, sizeof align16);
    if (e == CUBLAS_STATUS_SUCCESS) e = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_c, sizeof align_c);
    if (e == CUBLAS_STATUS_SUCCESS) e = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_c, sizeof align_c);
    if (e == CUBLAS_STATUS_SUCCESS) e = cublasLtMatmulAlgoGetHeuristic(st->lt, desc, lw, lx, lc, lc, pref, 1, &heur, &found);
    if (e == CUBLAS_STATUS_SUCCESS && found > 0)
        e = cublasLtMatmul(st->lt, desc, &alpha, w16, lw, x16, lx, &beta, c, lc, c, lc, &heur.algo, st->lt_work, st->lt_work_bytes, 0);
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (lc) cublasLtMatrixLayoutDestroy(lc);
    if (lx) cublasLtMatrixLayoutDestroy(lx);
    if (lw) cublasLtMatrixLayoutDestroy(lw);
    if (desc) cublasLtMatmulDescDestroy(desc);
    if (e != CUBLAS_STATUS_SUCCESS)
        return sft__fail(SFT_ERR_DEVICE, "%s: cublasLtMatmul (%s, %lld x %lld x %lld) failed with status %d", op, f16 ? "f16" : "bf16",
                         (long long)M, (long long)N, (long long)K, (int)e);
    *done = found > 0;
    return SFT_OK;
}
#endif

/* sft__cuda_gemm_w: C (+)= A . W^T (trans) or A . W for a layer's base W [N, K]
   (sft__wref: 4-bit, f32 or bf16), every operand on the device */
static sft_status sft__cuda_gemm_w(sft_context *ctx, int64_t M, sft__mat a, const sft__wref *w, int trans, float *c, int64_t ldc,
                                   int accumulate, const char *op) {
    int64_t N = trans ? w->N : w->K, K = trans ? w->K : w->N;
    int kind = w->w && w->w->requires_grad ? 0 : w->bf16;   /* as sft__gemm_w: a frozen base only (1 bf16, 2 f16) */
    if (ctx->plan_only && !kind) return SFT_OK;   /* a low kind's plan counts its workspace (sft__cuda_gemm_lowp) */
    if (w->q)
        return kind ? sft__cuda_gemm_lowp(ctx, M, N, K, a, sft__cuda_q4_of(w->q, trans), kind, c, ldc, accumulate, op)
                    : sft__cuda_gemm_tiled(M, N, K, a, sft__cuda_q4_of(w->q, trans), c, ldc, accumulate, 0, op);
    if (w->w->dtype == SFT_F32) return sft__cuda_gemm_f32w(ctx, M, a, SFT__CF(w->w), w->N, w->K, trans, kind, c, ldc, accumulate, op);
    {
        sft__cuda_bf16w b;
        b.p = (const uint16_t *)w->w->data; b.cols = w->K; b.trans = trans;
        return kind ? sft__cuda_gemm_lowp(ctx, M, N, K, a, b, kind, c, ldc, accumulate, op)
                    : sft__cuda_gemm_tiled(M, N, K, a, b, c, ldc, accumulate, 0, op);
    }
}

/* ============================================================================
   === cuda: matmul
   The CPU's node (in[0] = A, in[1] = B; i[0..3] = trans_a, trans_b, batch, B
   shared) with its loops, the products going to sft__cuda_gemm. */

static sft_status sft__cuda_matmul_fwd(sft_context *ctx, sft__node *n) {
    sft__mm_dims d = sft__mm_dims_of(n);
    const float *A = SFT__CF(n->in[0]), *B = SFT__CF(n->in[1]);
    float *C = SFT__F(n->out);
    int64_t bi;
    int kind = (int)n->f[0];        /* a frozen weight in bf16 (1) or f16 (2): B stored [N, K] (tb) or [K, N] */
    if (kind && !d.ta)
        return d.tb ? sft__cuda_gemm_f32w(ctx, d.batch * d.M, sft__mm_op(A, d.K, 0), B, d.N, d.K, 1, kind, C, d.N, 0, "matmul")
                    : sft__cuda_gemm_f32w(ctx, d.batch * d.M, sft__mm_op(A, d.K, 0), B, d.K, d.N, 0, kind, C, d.N, 0, "matmul");
    if (d.b_shared && !d.ta)
        return sft__cuda_gemm(ctx, d.batch * d.M, d.N, d.K, sft__mm_op(A, d.K, 0), sft__mm_op(B, d.tb ? d.K : d.N, d.tb), C, d.N, 0,
                              "matmul");
    for (bi = 0; bi < d.batch; bi++)
        SFT__TRY(sft__cuda_gemm(ctx, d.M, d.N, d.K, sft__mm_op(A + bi * d.M * d.K, d.ta ? d.M : d.K, d.ta),
                                sft__mm_op(B + (d.b_shared ? 0 : bi * d.K * d.N), d.tb ? d.K : d.N, d.tb), C + bi * d.M * d.N, d.N, 0,
                                "matmul"));
    return SFT_OK;
}

static sft_status sft__cuda_matmul_bwd(sft_context *ctx, sft__node *n) {
    sft__mm_dims d = sft__mm_dims_of(n);
    sft_tensor *a = n->in[0], *b = n->in[1];
    const float *G = SFT__CF(n->out->grad), *A = SFT__CF(a), *B = SFT__CF(b);
    int64_t bi;
    if (d.b_shared && !d.ta) {
        sft__mat g = sft__mat_of(G, d.N, 1), opa = sft__mm_op(A, d.K, 0), opb = sft__mm_op(B, d.tb ? d.K : d.N, d.tb);
        int64_t rows = d.batch * d.M;
        int kind = (int)n->f[0];
        if (a->requires_grad && kind)   /* dA = dC op(B)^T through the bf16 / f16 rounding */
            SFT__TRY(d.tb ? sft__cuda_gemm_f32w(ctx, rows, g, B, d.N, d.K, 0, kind, SFT__F(a->grad), d.K, 1, "matmul")
                          : sft__cuda_gemm_f32w(ctx, rows, g, B, d.K, d.N, 1, kind, SFT__F(a->grad), d.K, 1, "matmul"));
        else if (a->requires_grad) SFT__TRY(sft__cuda_gemm(ctx, rows, d.K, d.N, g, sft__mat_t(opb), SFT__F(a->grad), d.K, 1, "matmul"));
        if (b->requires_grad) {
            if (d.tb) SFT__TRY(sft__cuda_gemm(ctx, d.N, d.K, rows, sft__mat_t(g), opa, SFT__F(b->grad), d.K, 1, "matmul"));
            else SFT__TRY(sft__cuda_gemm(ctx, d.K, d.N, rows, sft__mat_t(opa), g, SFT__F(b->grad), d.N, 1, "matmul"));
        }
        return SFT_OK;
    }
    for (bi = 0; bi < d.batch; bi++) {
        sft__mat g = sft__mat_of(G + bi * d.M * d.N, d.N, 1);
        sft__mat opa = sft__mm_op(A + bi * d.M * d.K, d.ta ? d.M : d.K, d.ta);
        int64_t boff = d.b_shared ? 0 : bi * d.K * d.N;
        sft__mat opb = sft__mm_op(B + boff, d.tb ? d.K : d.N, d.tb);
        if (a->requires_grad) {
            float *ga = SFT__F(a->grad) + bi * d.M * d.K;
            if (d.ta) SFT__TRY(sft__cuda_gemm(ctx, d.K, d.M, d.N, opb, sft__mat_t(g), ga, d.M, 1, "matmul"));
            else SFT__TRY(sft__cuda_gemm(ctx, d.M, d.K, d.N, g, sft__mat_t(opb), ga, d.K, 1, "matmul"));
        }
        if (b->requires_grad) {
            float *gb = SFT__F(b->grad) + boff;
            if (d.tb) SFT__TRY(sft__cuda_gemm(ctx, d.N, d.K, d.M, sft__mat_t(g), opa, gb, d.K, 1, "matmul"));
            else SFT__TRY(sft__cuda_gemm(ctx, d.K, d.N, d.M, sft__mat_t(opa), g, gb, d.N, 1, "matmul"));
        }
    }
    return SFT_OK;
}

/* ============================================================================
   === cuda: linear
   A linear layer with its adapters as one node, sft.h's plan (sft__lin_plan:
   the base weight, the adapter terms with their dropout and DoRA tensors, the
   mixed-batch runs of rows) carried out with the device GEMMs, step by step as
   the CPU kernels do it (sft__cpu_linear_fwd / _bwd), so a LoRA layer on the
   reference GEMMs gives the CPU portable path's bits. */

/* y[i, o] += bias[o] */
static __global__ void sft__cuda_bias_kernel(float *y, const float *bias, int64_t M, int64_t N) {
    SFT__CUDA_FOR(i, M * N) y[i] = __fadd_rn(y[i], bias[i % N]);
}

/* DoRA's output: y += (m/norm - 1) base + (m/norm) lora, rows of [rows, N] */
static __global__ void sft__cuda_dora_out_kernel(float *y, const float *base, const float *lora, const float *m, const float *norm,
                                                 int64_t rows, int64_t N) {
    SFT__CUDA_FOR(i, rows * N) {
        int64_t o = i % N;
        float scale = __fdiv_rn(m[o], norm[o]);
        y[i] = __fadd_rn(y[i], __fadd_rn(__fmul_rn(__fsub_rn(scale, 1.0f), base[i]), __fmul_rn(scale, lora[i])));
    }
}

/* out = g * (m/norm) (minus1 = 0), out = g * (m/norm - 1) (minus1 = 1) or
   out += that (minus1 = 2: the gradient before a DoRA term; out may be g) */
static __global__ void sft__cuda_dora_grad_kernel(float *out, const float *g, const float *m, const float *norm, int64_t rows, int64_t N,
                                                  int minus1) {
    SFT__CUDA_FOR(i, rows * N) {
        int64_t o = i % N;
        float scale = __fdiv_rn(m[o], norm[o]);
        if (minus1 == 0) out[i] = __fmul_rn(g[i], scale);
        else if (minus1 == 1) out[i] = __fmul_rn(g[i], __fsub_rn(scale, 1.0f));
        else out[i] = __fadd_rn(out[i], __fmul_rn(g[i], __fsub_rn(scale, 1.0f)));
    }
}

/* a DoRA term's base term after other terms: the result so far less the bias
   (bias NULL: none) */
static __global__ void sft__cuda_running_base_kernel(float *out, const float *y, const float *bias, int64_t rows, int64_t N) {
    SFT__CUDA_FOR(i, rows * N) out[i] = bias ? __fsub_rn(y[i], bias[i % N]) : y[i];
}

/* dm[o] += (sum over rows, in order, of g (base + lora)) / norm[o] */
static __global__ void sft__cuda_dora_dm_kernel(float *dm, const float *g, const float *base, const float *lora, const float *norm,
                                                int64_t rows, int64_t N) {
    SFT__CUDA_FOR(o, N) {
        float acc = 0.0f;
        for (int64_t i = 0; i < rows; i++) acc = __fadd_rn(acc, __fmul_rn(g[i * N + o], __fadd_rn(base[i * N + o], lora[i * N + o])));
        dm[o] = __fadd_rn(dm[o], __fdiv_rn(acc, norm[o]));
    }
}

/* norm[o] = |W[o] + s (B A)[o]|: a block per row o; (B A)[o, k] adds its r
   products in order as the CPU's GEMM does, the squares add up in double */
template <typename W>
static __global__ void sft__cuda_dora_norm_kernel(float *norm, W w, const float *A, const float *B, float s, int64_t r, int64_t K) {
    __shared__ double sh[256];
    const int64_t o = blockIdx.x;
    double ss = 0.0;
    for (int64_t k = threadIdx.x; k < K; k += blockDim.x) {
        float ba = 0.0f, v;
        for (int64_t j = 0; j < r; j++) ba = __fadd_rn(ba, __fmul_rn(B[o * r + j], A[j * K + k]));
        v = __fadd_rn(w.at(k, o), __fmul_rn(s, ba));
        ss = __dadd_rn(ss, __dmul_rn((double)v, (double)v));
    }
    ss = sft__cuda_block_sum(ss, sh);
    if (threadIdx.x == 0) norm[o] = (float)sqrt(ss);
}

static sft_status sft__cuda_dora_norm(sft_context *ctx, const sft__wref *w, const sft_tensor *A, const sft_tensor *B, float s, float *norm) {
    int64_t r = A->shape[0];
    unsigned threads = sft__cuda_row_threads(w->K);
    if (ctx->plan_only || w->N == 0) return SFT_OK;
    if (w->q) SFT__LAUNCH(sft__cuda_dora_norm_kernel<sft__cuda_q4>, (unsigned)w->N, threads, 0, norm, sft__cuda_q4_of(w->q, 1), SFT__CF(A),
                          SFT__CF(B), s, r, w->K);
    else if (w->w->dtype == SFT_F32) {
        sft__cuda_bview v;
        v.p = SFT__CF(w->w); v.rs = 1; v.cs = w->K;   /* op(B)(k, n) = W[n][k] */
        SFT__LAUNCH(sft__cuda_dora_norm_kernel<sft__cuda_bview>, (unsigned)w->N, threads, 0, norm, v, SFT__CF(A), SFT__CF(B), s, r, w->K);
    } else {
        sft__cuda_bf16w v;
        v.p = (const uint16_t *)w->w->data; v.cols = w->K; v.trans = 1;
        SFT__LAUNCH(sft__cuda_dora_norm_kernel<sft__cuda_bf16w>, (unsigned)w->N, threads, 0, norm, v, SFT__CF(A), SFT__CF(B), s, r, w->K);
    }
    return sft__cuda_check("linear", "dora_norm");
}

/* out[i] (+)= v[i] * the dropout factor of x's element e0 + i (the term's mask,
   or a replayed mask of factors) */
static sft_status sft__cuda_lin_drop(sft_context *ctx, const sft__lin_plan *p, const sft__lin_term *t, const float *v, int64_t e0, int64_t n,
                                     float *out, int accumulate) {
    if (t->bits) return sft__cuda_mask_mul(ctx, v, t->bits, e0, n, sft__dropout_scale(t->p), out, accumulate);
    if (ctx->plan_only || n <= 0) return SFT_OK;
    if (accumulate) SFT__LAUNCH(sft__cuda_acc_mul_kernel, sft__cuda_grid(n), SFT__CUDA_BLOCK, 0, out, v, SFT__CF(p->mask) + e0, n, n);
    else SFT__LAUNCH(sft__cuda_mul_kernel, sft__cuda_grid(n), SFT__CUDA_BLOCK, 0, out, v, SFT__CF(p->mask) + e0, n, n);
    return sft__cuda_check("linear", "replayed dropout");
}

/* the adapter's input rows [r0, r1): x itself, or dropout(x) in step memory */
static sft_status sft__cuda_lin_input(sft_context *ctx, const sft__node *n, const sft__lin_term *t, int64_t r0, int64_t r1,
                                      const float **xr) {
    const sft__lin_plan *p = (const sft__lin_plan *)n->ptr;
    int64_t base = r0 * p->K, count = (r1 - r0) * p->K;
    void *mem;
    *xr = SFT__CF(n->in[0]) + base;
    if (t->p <= 0.0f) return SFT_OK;
    SFT__TRY(sft__cuda_scratch(ctx, (size_t)count * sizeof(float), &mem));
    SFT__TRY(sft__cuda_lin_drop(ctx, p, t, SFT__CF(n->in[0]) + base, base, count, (float *)mem, 0));
    *xr = (const float *)mem;
    return SFT_OK;
}

/* one term's forward over rows [r0, r1) */
static sft_status sft__cuda_lin_term_fwd(sft_context *ctx, sft__node *n, sft__lin_term *t, int64_t r0, int64_t r1) {
    const sft__lin_plan *p = (const sft__lin_plan *)n->ptr;
    const sft__adapter *ad = t->ad;
    int64_t rows = r1 - r0, r = ad->desc.r, N = p->N, K = p->K;
    float *tr = SFT__F(t->t) + r0 * r, *y = SFT__F(n->out) + r0 * N;
    const float *xr;
    if (t->bits) SFT__TRY(sft__cuda_dropout_mask(ctx, t->key, t->p, r0 * K, r1 * K, t->bits));
    SFT__TRY(sft__cuda_lin_input(ctx, n, t, r0, r1, &xr));
    SFT__TRY(sft__cuda_gemm(ctx, rows, r, K, sft__mat_of(xr, K, 1), sft__mat_t(sft__mat_of(SFT__CF(ad->A), K, 1)), tr, r, 0, "linear"));
    if (rows * r > 0) {
        SFT__LAUNCH(sft__cuda_scale_kernel, sft__cuda_grid(rows * r), SFT__CUDA_BLOCK, 0, tr, (const float *)tr, ad->scaling, rows * r);
        SFT__TRY(sft__cuda_check("linear", "scale"));
    }
    if (!ad->m) return sft__cuda_gemm(ctx, rows, N, r, sft__mat_of(tr, r, 1), sft__mat_t(sft__mat_of(SFT__CF(ad->B), r, 1)), y, N, 1, "linear");
    {
        float *lora = SFT__F(t->lora) + r0 * N, *base_nb = SFT__F(t->base_nb) + r0 * N;
        SFT__TRY(sft__cuda_gemm(ctx, rows, N, r, sft__mat_of(tr, r, 1), sft__mat_t(sft__mat_of(SFT__CF(ad->B), r, 1)), lora, N, 0, "linear"));
        /* with dropout PEFT recomputes the base product on the dropped-out input;
           without, a term after others takes the result so far less the bias */
        if (t->p > 0.0f) SFT__TRY(sft__cuda_gemm_w(ctx, rows, sft__mat_of(xr, K, 1), &p->w, 1, base_nb, N, 0, "linear"));
        if (rows * N == 0 || ctx->plan_only) return SFT_OK;
        if (t->p <= 0.0f && t->base_nb != p->base_out) {
            SFT__LAUNCH(sft__cuda_running_base_kernel, sft__cuda_grid(rows * N), SFT__CUDA_BLOCK, 0, base_nb, (const float *)y,
                        n->in[1] ? SFT__CF(n->in[1]) : (const float *)NULL, rows, N);
            SFT__TRY(sft__cuda_check("linear", "running_base"));
        }
        SFT__LAUNCH(sft__cuda_dora_out_kernel, sft__cuda_grid(rows * N), SFT__CUDA_BLOCK, 0, y, (const float *)base_nb, (const float *)lora,
                    SFT__CF(ad->m), SFT__CF(t->norm), rows, N);
        return sft__cuda_check("linear", "dora_out");
    }
}

static sft_status sft__cuda_linear_fwd(sft_context *ctx, sft__node *n) {
    sft__lin_plan *p = (sft__lin_plan *)(uintptr_t)n->ptr;
    int ti;
    SFT__TRY(sft__cuda_gemm_w(ctx, p->M, sft__mat_of(SFT__CF(n->in[0]), p->K, 1), &p->w, 1, SFT__F(n->out), p->N, 0, "linear"));
    if (p->base_out) SFT__TRY(sft__cuda_copy(p->base_out->data, SFT_DEVICE_CUDA, n->out->data, SFT_DEVICE_CUDA, sft_tensor_nbytes(p->base_out)));
    if (n->in[1] && p->M * p->N > 0 && !ctx->plan_only) {
        SFT__LAUNCH(sft__cuda_bias_kernel, sft__cuda_grid(p->M * p->N), SFT__CUDA_BLOCK, 0, SFT__F(n->out), SFT__CF(n->in[1]), p->M, p->N);
        SFT__TRY(sft__cuda_launched(n, "bias"));
    }
    for (ti = 0; ti < p->n_terms; ti++) {
        sft__lin_term *t = &p->term[ti];
        int64_t cursor = 0, r0, r1;
        if (t->ad->m) SFT__TRY(sft__cuda_dora_norm(ctx, &p->w, t->ad->A, t->ad->B, t->ad->scaling, SFT__F(t->norm)));
        while (sft__lin_run(p, ti, &cursor, &r0, &r1)) SFT__TRY(sft__cuda_lin_term_fwd(ctx, n, t, r0, r1));
    }
    return SFT_OK;
}

/* G[a][b] += sum over rows of L[row][a] R[row][b], added up as the CPU's fused
   LoRA backward adds a term's dA and dB (sft.h, "LoRA terms, fused"): rows in
   blocks of SFT__LORA_RB each summed from zero in order, a task's blocks (of
   SFT__LORA_TASK_ROWS rows) into its share in order, the shares onto G in task
   order. A thread owns an element of G. */
static __global__ void sft__cuda_lora_grad_kernel(float *G, const float *L, int64_t ldl, const float *R, int64_t ldr, int64_t rows, int64_t na,
                                                  int64_t nb) {
    SFT__CUDA_FOR(e, na * nb) {
        int64_t a = e / nb, b = e % nb, t0, b0, i;
        float acc = G[e];
        for (t0 = 0; t0 < rows; t0 += SFT__LORA_TASK_ROWS) {
            int64_t t1 = rows - t0 < SFT__LORA_TASK_ROWS ? rows : t0 + SFT__LORA_TASK_ROWS;
            float share = 0.0f;
            for (b0 = t0; b0 < t1; b0 += SFT__LORA_RB) {
                int64_t n = t1 - b0 < SFT__LORA_RB ? t1 - b0 : SFT__LORA_RB;
                float part = 0.0f;
                for (i = 0; i < n; i++) part = __fadd_rn(part, __fmul_rn(L[(b0 + i) * ldl + a], R[(b0 + i) * ldr + b]));
                share = b0 == t0 ? part : __fadd_rn(share, part);
            }
            acc = __fadd_rn(acc, share);
        }
        G[e] = acc;
    }
}

static sft_status sft__cuda_lora_grad(float *G, const float *L, int64_t ldl, const float *R, int64_t ldr, int64_t rows, int64_t na, int64_t nb) {
    if (na * nb == 0) return SFT_OK;
    SFT__LAUNCH(sft__cuda_lora_grad_kernel, sft__cuda_grid(na * nb), SFT__CUDA_BLOCK, 0, G, L, ldl, R, ldr, rows, na, nb);
    return sft__cuda_check("linear", "lora_grad");
}

/* one term's backward over rows [r0, r1) from grad, the gradient at its output
   [M, N]: gradients of B, A, x (and m). A DoRA term's dA and dB are GEMMs over
   all its rows; a LoRA term's are summed in the CPU's blocks
   (sft__cuda_lora_grad). */
static sft_status sft__cuda_lin_term_bwd(sft_context *ctx, sft__node *n, sft__lin_term *t, int64_t r0, int64_t r1, const float *grad) {
    const sft__lin_plan *p = (const sft__lin_plan *)n->ptr;
    const sft__adapter *ad = t->ad;
    int64_t rows = r1 - r0, r = ad->desc.r, N = p->N, K = p->K;
    const float *g = grad + r0 * N, *gl = g, *xr, *tr = SFT__CF(t->t) + r0 * r;
    float *gt = NULL, *dt, *dxd;
    sft_tensor *x = n->in[0];
    void *mem;
    SFT__TRY(sft__cuda_lin_input(ctx, n, t, r0, r1, &xr));
    if (ad->m && rows * N > 0) {     /* the adapter's path is scaled by m / norm */
        SFT__TRY(sft__cuda_scratch(ctx, (size_t)(rows * N) * sizeof(float), &mem));
        gt = (float *)mem;
        SFT__LAUNCH(sft__cuda_dora_grad_kernel, sft__cuda_grid(rows * N), SFT__CUDA_BLOCK, 0, gt, g, SFT__CF(ad->m), SFT__CF(t->norm), rows, N, 0);
        SFT__TRY(sft__cuda_check("linear", "dora_grad"));
        gl = gt;
        if (ad->m->requires_grad) {
            SFT__LAUNCH(sft__cuda_dora_dm_kernel, sft__cuda_grid(N), SFT__CUDA_BLOCK, 0, SFT__F(ad->m->grad), g, SFT__CF(t->base_nb) + r0 * N,
                        SFT__CF(t->lora) + r0 * N, SFT__CF(t->norm), rows, N);
            SFT__TRY(sft__cuda_check("linear", "dora_dm"));
        }
    }
    if (ad->B->requires_grad && ad->m)
        SFT__TRY(sft__cuda_gemm(ctx, N, r, rows, sft__mat_t(sft__mat_of(gl, N, 1)), sft__mat_of(tr, r, 1), SFT__F(ad->B->grad), r, 1, "linear"));
    else if (ad->B->requires_grad && !ctx->plan_only) SFT__TRY(sft__cuda_lora_grad(SFT__F(ad->B->grad), gl, N, tr, r, rows, N, r));
    if (!ad->A->requires_grad && !x->requires_grad) return SFT_OK;
    SFT__TRY(sft__cuda_scratch(ctx, (size_t)(rows * r) * sizeof(float), &mem));
    dt = (float *)mem;
    SFT__TRY(sft__cuda_gemm(ctx, rows, r, N, sft__mat_of(gl, N, 1), sft__mat_of(SFT__CF(ad->B), r, 1), dt, r, 0, "linear"));
    if (rows * r > 0) {
        SFT__LAUNCH(sft__cuda_scale_kernel, sft__cuda_grid(rows * r), SFT__CUDA_BLOCK, 0, dt, (const float *)dt, ad->scaling, rows * r);
        SFT__TRY(sft__cuda_check("linear", "scale"));
    }
    if (ad->A->requires_grad && ad->m)
        SFT__TRY(sft__cuda_gemm(ctx, r, K, rows, sft__mat_t(sft__mat_of(dt, r, 1)), sft__mat_of(xr, K, 1), SFT__F(ad->A->grad), K, 1, "linear"));
    else if (ad->A->requires_grad && !ctx->plan_only) SFT__TRY(sft__cuda_lora_grad(SFT__F(ad->A->grad), dt, r, xr, K, rows, r, K));
    if (!x->requires_grad) return SFT_OK;
    if (t->p <= 0.0f)
        return sft__cuda_gemm(ctx, rows, K, r, sft__mat_of(dt, r, 1), sft__mat_of(SFT__CF(ad->A), K, 1), SFT__F(x->grad) + r0 * K, K, 1, "linear");
    SFT__TRY(sft__cuda_scratch(ctx, (size_t)(rows * K) * sizeof(float), &mem));
    dxd = (float *)mem;
    SFT__TRY(sft__cuda_gemm(ctx, rows, K, r, sft__mat_of(dt, r, 1), sft__mat_of(SFT__CF(ad->A), K, 1), dxd, K, 0, "linear"));
    if (ad->m && gt) {               /* DoRA's base term on the dropped-out input */
        SFT__LAUNCH(sft__cuda_dora_grad_kernel, sft__cuda_grid(rows * N), SFT__CUDA_BLOCK, 0, gt, g, SFT__CF(ad->m), SFT__CF(t->norm), rows, N, 1);
        SFT__TRY(sft__cuda_check("linear", "dora_grad"));
        SFT__TRY(sft__cuda_gemm_w(ctx, rows, sft__mat_of(gt, N, 1), &p->w, 0, dxd, K, 1, "linear"));
    }
    return sft__cuda_lin_drop(ctx, p, t, dxd, r0 * K, rows * K, SFT__F(x->grad) + r0 * K, 1);
}

/* the gradient of the result as it stood after term ti (ti = -1: the base
   product alone), as sft__lin_grad_at: dy taken back through each later term
   that rescales it, last first (g + g (m/norm - 1)); *gt NULL: dy itself */
static sft_status sft__cuda_lin_grad_at(sft_context *ctx, const sft__node *n, int ti, float **gt) {
    const sft__lin_plan *p = (const sft__lin_plan *)n->ptr;
    int tj;
    *gt = NULL;
    for (tj = p->n_terms - 1; tj > ti; tj--) {
        const sft__lin_term *t = &p->term[tj];
        int64_t cursor = 0, r0, r1;
        if (!sft__lin_rescales(t)) continue;
        if (!*gt) {
            void *mem;
            SFT__TRY(sft__cuda_scratch(ctx, (size_t)(p->M * p->N) * sizeof(float), &mem));
            *gt = (float *)mem;
            SFT__TRY(sft__cuda_copy(*gt, SFT_DEVICE_CUDA, n->out->grad->data, SFT_DEVICE_CUDA, (size_t)(p->M * p->N) * sizeof(float)));
        }
        while (sft__lin_run(p, tj, &cursor, &r0, &r1)) {
            if ((r1 - r0) * p->N == 0 || ctx->plan_only) continue;
            SFT__LAUNCH(sft__cuda_dora_grad_kernel, sft__cuda_grid((r1 - r0) * p->N), SFT__CUDA_BLOCK, 0, *gt + r0 * p->N,
                        (const float *)(*gt + r0 * p->N), SFT__CF(t->ad->m), SFT__CF(t->norm), r1 - r0, p->N, 2);
            SFT__TRY(sft__cuda_check("linear", "dora_grad"));
        }
    }
    return SFT_OK;
}

/* the base path's gradient: dx += g W for g the gradient at the base product */
static sft_status sft__cuda_lin_base_bwd(sft_context *ctx, sft__node *n) {
    const sft__lin_plan *p = (const sft__lin_plan *)n->ptr;
    float *gb;
    SFT__TRY(sft__cuda_lin_grad_at(ctx, n, -1, &gb));
    return sft__cuda_gemm_w(ctx, p->M, sft__mat_of(gb ? (const float *)gb : SFT__CF(n->out->grad), p->N, 1), &p->w, 0,
                            SFT__F(n->in[0]->grad), p->K, 1, "linear");
}

static sft_status sft__cuda_linear_bwd(sft_context *ctx, sft__node *n) {
    sft__lin_plan *p = (sft__lin_plan *)(uintptr_t)n->ptr;
    int ti;
    if (n->in[0]->requires_grad) SFT__TRY(sft__cuda_lin_base_bwd(ctx, n));
    if (p->w.w && p->w.w->requires_grad) {       /* full fine-tuning: dW += dy^T x */
        sft_tensor *w = (sft_tensor *)(uintptr_t)p->w.w;
        SFT__TRY(sft__ensure_grad(ctx, w));
        SFT__TRY(sft__cuda_gemm(ctx, p->N, p->K, p->M, sft__mat_t(sft__mat_of(SFT__CF(n->out->grad), p->N, 1)),
                                sft__mat_of(SFT__CF(n->in[0]), p->K, 1), SFT__F(w->grad), p->K, 1, "linear"));
    }
    if (n->in[1] && n->in[1]->requires_grad && p->N > 0) {   /* d bias: each column's rows in order */
        SFT__LAUNCH(sft__cuda_colsum_kernel, sft__cuda_grid(p->N), SFT__CUDA_BLOCK, 0, SFT__F(n->in[1]->grad), SFT__CF(n->out->grad),
                    (const float *)NULL, p->M, p->N);
        SFT__TRY(sft__cuda_launched(n, "bias_grad"));
    }
    for (ti = 0; ti < p->n_terms; ti++) {
        sft__lin_term *t = &p->term[ti];
        int64_t cursor = 0, r0, r1;
        float *gt;
        if (t->ad->A->requires_grad) SFT__TRY(sft__ensure_grad(ctx, (sft_tensor *)t->ad->A));
        if (t->ad->B->requires_grad) SFT__TRY(sft__ensure_grad(ctx, (sft_tensor *)t->ad->B));
        if (t->ad->m && t->ad->m->requires_grad) SFT__TRY(sft__ensure_grad(ctx, (sft_tensor *)t->ad->m));
        SFT__TRY(sft__cuda_lin_grad_at(ctx, n, ti, &gt));
        while (sft__lin_run(p, ti, &cursor, &r0, &r1))
            SFT__TRY(sft__cuda_lin_term_bwd(ctx, n, t, r0, r1, gt ? (const float *)gt : SFT__CF(n->out->grad)));
    }
    sft__lin_plan_release(ctx, p);   /* as the CPU kernel: what the call kept is done with */
    return SFT_OK;
}

/* ============================================================================
   === cuda: attention
   node: in[0..2] = q [B,T,Hq,D], k, v [B,T,Hkv,D], in[3] = seq_ids [B,T] or NULL;
   f[0] = scale; saved = [2, B, Hq, T]: each row's log-sum-exp (forward) and
   dO . O (start of backward), as on the CPU.

   One warp owns one row: a query row in forward and for dQ, a key row for dK
   and dV. Lanes split the head dimension (lane l holds elements l, l + 32, ...
   of the row's vectors in registers); the other side is walked in tiles of 32
   rows, lane j taking row j of the tile for the dot products (the warp's own
   vector sits in shared memory for them). Forward keeps the running maximum
   and sum of exponentials per tile (the online softmax) and rescales its
   output before adding P V, so no T x T matrix exists; backward recomputes P
   from the log-sum-exp. A row's sums run in a fixed order, and every gradient
   element has one owning warp: dK and dV are summed by the key's warp over the
   query heads of its group and the query rows after it. */

#define SFT__CUDA_ATTN_WARPS 4
#define SFT__CUDA_ATTN_REGS (SFT__ATTN_MAX_D / 32)

typedef struct sft__cuda_attn {
    const float *q, *k, *v, *o, *dout, *lse, *delta;
    const int32_t *ids;
    float *out, *lse_out, *dq, *dk, *dv;
    int64_t B, T, Hq, Hkv, D, group;
    float scale;
} sft__cuda_attn;

/* row t of head h of a [B, T, H, D] tensor */
static __device__ int64_t sft__cuda_attn_row(const sft__cuda_attn &a, int64_t b, int64_t t, int64_t h, int64_t H) {
    return ((b * a.T + t) * H + h) * a.D;
}

static __device__ int sft__cuda_attn_visible(const sft__cuda_attn &a, int64_t b, int64_t i, int64_t j) {
    return j <= i && (!a.ids || a.ids[b * a.T + i] == a.ids[b * a.T + j]);
}

/* dot of a shared-memory vector with a row in global memory, in order */
static __device__ float sft__cuda_dot(const float *x, const float *y, int64_t D) {
    float s = 0.0f;
    for (int64_t d = 0; d < D; d++) s = __fadd_rn(s, __fmul_rn(x[d], y[d]));
    return s;
}

/* forward: a warp per query row t of (b, h); grid (ceil(T / 4), Hq, B) */
static __global__ void sft__cuda_attn_fwd_kernel(sft__cuda_attn a) {
    __shared__ float qs[SFT__CUDA_ATTN_WARPS][SFT__ATTN_MAX_D];
    const int w = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int64_t b = blockIdx.z, h = blockIdx.y, hk = h / a.group, t = (int64_t)blockIdx.x * SFT__CUDA_ATTN_WARPS + w;
    float acc[SFT__CUDA_ATTN_REGS], m = -INFINITY, l = 0.0f;
    if (t >= a.T) return;   /* uniform across the warp; no block barrier follows */
    for (int64_t d = lane; d < a.D; d += 32) qs[w][d] = a.q[sft__cuda_attn_row(a, b, t, h, a.Hq) + d];
    for (int r = 0; r < SFT__CUDA_ATTN_REGS; r++) acc[r] = 0.0f;
    __syncwarp();
    for (int64_t j0 = 0; j0 <= t; j0 += 32) {
        int64_t j = j0 + lane;
        float s = -INFINITY, mx, corr, p;
        if (j <= t && sft__cuda_attn_visible(a, b, t, j))
            s = __fmul_rn(sft__cuda_dot(qs[w], a.k + sft__cuda_attn_row(a, b, j, hk, a.Hkv), a.D), a.scale);
        mx = fmaxf(m, sft__cuda_warp_max(s));
        if (mx == -INFINITY) continue;          /* nothing visible yet (uniform) */
        corr = expf(__fsub_rn(m, mx));          /* 0 on the first visible tile */
        p = s == -INFINITY ? 0.0f : expf(__fsub_rn(s, mx));
        l = __fadd_rn(__fmul_rn(l, corr), sft__cuda_warp_sum(p));
        for (int r = 0; r < SFT__CUDA_ATTN_REGS; r++) acc[r] = __fmul_rn(acc[r], corr);
        for (int jj = 0; jj < 32 && j0 + jj <= t; jj++) {
            float pj = __shfl_sync(0xffffffffu, p, jj);
            const float *vr = a.v + sft__cuda_attn_row(a, b, j0 + jj, hk, a.Hkv);
            if (pj == 0.0f) continue;           /* invisible (uniform: pj is the warp's) */
            for (int r = 0; r < SFT__CUDA_ATTN_REGS; r++)
                if (lane + 32 * r < a.D) acc[r] = __fadd_rn(acc[r], __fmul_rn(pj, vr[lane + 32 * r]));
        }
        m = mx;
    }
    float inv = __fdiv_rn(1.0f, l);
    for (int r = 0; r < SFT__CUDA_ATTN_REGS; r++)
        if (lane + 32 * r < a.D) a.out[sft__cuda_attn_row(a, b, t, h, a.Hq) + lane + 32 * r] = __fmul_rn(acc[r], inv);
    if (lane == 0) a.lse_out[(b * a.Hq + h) * a.T + t] = __fadd_rn(m, logf(l));
}

/* delta = dO . O per row: a warp per row r = (b * Hq + h) * T + t */
static __global__ void sft__cuda_attn_delta_kernel(sft__cuda_attn a, float *delta) {
    const int lane = threadIdx.x % 32;
    const int64_t r = (int64_t)blockIdx.x * SFT__CUDA_ATTN_WARPS + threadIdx.x / 32;
    if (r >= a.B * a.Hq * a.T) return;
    int64_t b = r / (a.Hq * a.T), h = (r / a.T) % a.Hq, t = r % a.T, row = sft__cuda_attn_row(a, b, t, h, a.Hq);
    float s = 0.0f;
    for (int64_t d = lane; d < a.D; d += 32) s = __fadd_rn(s, __fmul_rn(a.dout[row + d], a.o[row + d]));
    s = sft__cuda_warp_sum(s);
    if (lane == 0) delta[r] = s;
}

/* P and dS of query row i (vectors qi, doi) and a visible key (kj, vj) */
static __device__ void sft__cuda_attn_p_ds(const sft__cuda_attn &a, int64_t b, int64_t h, int64_t i, const float *qi,
                                           const float *doi, const float *kj, const float *vj, float *p, float *ds) {
    int64_t r = (b * a.Hq + h) * a.T + i;
    float s = __fmul_rn(sft__cuda_dot(qi, kj, a.D), a.scale), dp = sft__cuda_dot(doi, vj, a.D);
    *p = expf(__fsub_rn(s, a.lse[r]));
    *ds = __fmul_rn(__fmul_rn(*p, __fsub_rn(dp, a.delta[r])), a.scale);
}

/* dQ: a warp per query row t of (b, h), walking the keys up to it */
static __global__ void sft__cuda_attn_dq_kernel(sft__cuda_attn a) {
    __shared__ float qs[SFT__CUDA_ATTN_WARPS][SFT__ATTN_MAX_D], dos[SFT__CUDA_ATTN_WARPS][SFT__ATTN_MAX_D];
    const int w = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int64_t b = blockIdx.z, h = blockIdx.y, hk = h / a.group, t = (int64_t)blockIdx.x * SFT__CUDA_ATTN_WARPS + w;
    float acc[SFT__CUDA_ATTN_REGS];
    if (t >= a.T) return;
    int64_t row = sft__cuda_attn_row(a, b, t, h, a.Hq);
    for (int64_t d = lane; d < a.D; d += 32) { qs[w][d] = a.q[row + d]; dos[w][d] = a.dout[row + d]; }
    for (int r = 0; r < SFT__CUDA_ATTN_REGS; r++) acc[r] = 0.0f;
    __syncwarp();
    for (int64_t j0 = 0; j0 <= t; j0 += 32) {
        int64_t j = j0 + lane;
        float p = 0.0f, ds = 0.0f;
        if (j <= t && sft__cuda_attn_visible(a, b, t, j))
            sft__cuda_attn_p_ds(a, b, h, t, qs[w], dos[w], a.k + sft__cuda_attn_row(a, b, j, hk, a.Hkv),
                                a.v + sft__cuda_attn_row(a, b, j, hk, a.Hkv), &p, &ds);
        for (int jj = 0; jj < 32 && j0 + jj <= t; jj++) {
            float dsj = __shfl_sync(0xffffffffu, ds, jj);
            const float *kr = a.k + sft__cuda_attn_row(a, b, j0 + jj, hk, a.Hkv);
            if (dsj == 0.0f) continue;
            for (int r = 0; r < SFT__CUDA_ATTN_REGS; r++)
                if (lane + 32 * r < a.D) acc[r] = __fadd_rn(acc[r], __fmul_rn(dsj, kr[lane + 32 * r]));
        }
        (void)p;
    }
    for (int r = 0; r < SFT__CUDA_ATTN_REGS; r++)
        if (lane + 32 * r < a.D) a.dq[row + lane + 32 * r] = __fadd_rn(a.dq[row + lane + 32 * r], acc[r]);
}

/* dK, dV: a warp per key row j of (b, hk), walking the query heads of its
   group and the query rows from j on */
static __global__ void sft__cuda_attn_dkv_kernel(sft__cuda_attn a) {
    __shared__ float ks[SFT__CUDA_ATTN_WARPS][SFT__ATTN_MAX_D], vs[SFT__CUDA_ATTN_WARPS][SFT__ATTN_MAX_D];
    const int w = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int64_t b = blockIdx.z, hk = blockIdx.y, j = (int64_t)blockIdx.x * SFT__CUDA_ATTN_WARPS + w;
    float dk[SFT__CUDA_ATTN_REGS], dv[SFT__CUDA_ATTN_REGS];
    if (j >= a.T) return;
    int64_t row = sft__cuda_attn_row(a, b, j, hk, a.Hkv);
    for (int64_t d = lane; d < a.D; d += 32) { ks[w][d] = a.k[row + d]; vs[w][d] = a.v[row + d]; }
    for (int r = 0; r < SFT__CUDA_ATTN_REGS; r++) dk[r] = dv[r] = 0.0f;
    __syncwarp();
    for (int64_t h = hk * a.group; h < (hk + 1) * a.group; h++)
        for (int64_t i0 = j; i0 < a.T; i0 += 32) {
            int64_t i = i0 + lane;
            float p = 0.0f, ds = 0.0f;
            if (i < a.T && sft__cuda_attn_visible(a, b, i, j))
                sft__cuda_attn_p_ds(a, b, h, i, a.q + sft__cuda_attn_row(a, b, i, h, a.Hq), a.dout + sft__cuda_attn_row(a, b, i, h, a.Hq),
                                    ks[w], vs[w], &p, &ds);
            for (int ii = 0; ii < 32 && i0 + ii < a.T; ii++) {
                float pi = __shfl_sync(0xffffffffu, p, ii), dsi = __shfl_sync(0xffffffffu, ds, ii);
                int64_t qrow = sft__cuda_attn_row(a, b, i0 + ii, h, a.Hq);
                if (pi == 0.0f && dsi == 0.0f) continue;
                for (int r = 0; r < SFT__CUDA_ATTN_REGS; r++)
                    if (lane + 32 * r < a.D) {
                        dv[r] = __fadd_rn(dv[r], __fmul_rn(pi, a.dout[qrow + lane + 32 * r]));
                        dk[r] = __fadd_rn(dk[r], __fmul_rn(dsi, a.q[qrow + lane + 32 * r]));
                    }
            }
        }
    for (int r = 0; r < SFT__CUDA_ATTN_REGS; r++)
        if (lane + 32 * r < a.D) {
            if (a.dk) a.dk[row + lane + 32 * r] = __fadd_rn(a.dk[row + lane + 32 * r], dk[r]);
            if (a.dv) a.dv[row + lane + 32 * r] = __fadd_rn(a.dv[row + lane + 32 * r], dv[r]);
        }
}

static sft__cuda_attn sft__cuda_attn_of(const sft__node *n) {
    sft__cuda_attn a;
    memset(&a, 0, sizeof a);
    a.B = n->in[0]->shape[0]; a.T = n->in[0]->shape[1]; a.Hq = n->in[0]->shape[2]; a.D = n->in[0]->shape[3];
    a.Hkv = n->in[1]->shape[2]; a.group = a.Hq / a.Hkv; a.scale = n->f[0];
    a.q = SFT__CF(n->in[0]); a.k = SFT__CF(n->in[1]); a.v = SFT__CF(n->in[2]);
    a.ids = n->in[3] ? (const int32_t *)n->in[3]->data : NULL;
    a.lse = SFT__CF(n->saved); a.delta = a.lse + a.B * a.Hq * a.T;
    return a;
}

static dim3 sft__cuda_attn_grid(int64_t T, int64_t H, int64_t B) {
    return dim3((unsigned)((T + SFT__CUDA_ATTN_WARPS - 1) / SFT__CUDA_ATTN_WARPS), (unsigned)H, (unsigned)B);
}

/* what the CUDA attention kernels do not do yet: sliding windows, soft caps */
static sft_status sft__cuda_attn_check(const sft__node *n) {
    if (n->i[0] > 0 || n->f[1] > 0.0f)
        return sft__fail(SFT_ERR_UNSUPPORTED, "attention: a sliding window or a logit soft cap has no CUDA kernel yet");
    return SFT_OK;
}

/* --- on tensor cores ---------------------------------------------------------------
   With a compute kind (the node's i[1]: 1 bf16, 2 f16; the model's compute_dtype)
   and a head_dim that is a multiple of 16 up to 64, the products run on mma.sync:
   a block of 4 warps owns 64 rows (16 a warp) and walks the other side in tiles
   of 32 rows held in shared memory as the kind's 16-bit values.
     forward   S = Q K^T (ldmatrix of Q's and K's rows), the online softmax in
               f32 on the accumulators (a row's 4 lanes combine by shuffles),
               P rounded to the kind and fed back as mma's A operand (the
               accumulator layout of two n8 tiles is the A layout of one k16),
               O += P V (V's rows through ldmatrix.trans)
     dQ        per query block: S and P again from the log-sum-exp, dP = dO V^T,
               dS = P (dP - delta) scale, dQ += dS K (K through ldmatrix.trans)
     dK, dV    per key block, over the group's query heads and the query tiles
               from the block on: S^T = K Q^T, P^T, dP^T = V dO^T,
               dV += P^T dO, dK += dS^T Q
   Every output element still has one owning warp and a fixed order of sums:
   the results are deterministic. The rounding is flash attention's usual one
   (Q, K, V, dO, P and dS to the kind; f32 accumulation and softmax statistics);
   test_cuda_tc.cu holds them to the f32 kernels above within a stated bound.
   head_dim 128 (Llama-3-8B) needs more than the 48 KB of static shared memory
   the backward's four tiles would take; it stays on the f32 kernels for now. */

#define SFT__FA_ROWS 64      /* rows a block owns                                 */
#define SFT__FA_TILE 32      /* rows of the other side per shared tile            */
#define SFT__FA_MAXD 64
#define SFT__FA_LD   (SFT__FA_MAXD + 8)   /* 16-bit values per shared row (144 bytes) */

static int sft__cuda_fa_ok(const sft__node *n) {
    int64_t D = n->in[0]->shape[3];
    return n->i[1] != 0 && D % 16 == 0 && D <= SFT__FA_MAXD;
}

static __device__ __forceinline__ void sft__tc_ldmatrix_x4_trans(uint32_t r[4], const uint16_t *row) {
#ifdef CUDA_EMU
    cuda_emu::ldmatrix(r, row, 4, 1, __FILE__, __LINE__);
#else
    unsigned addr = (unsigned)__cvta_generic_to_shared(row);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
#endif
}

/* two f32 values as the kind's 16-bit pair (the first in the low half) */
template <int F16> static __device__ __forceinline__ uint32_t sft__tc_pack(float lo, float hi) {
    return (uint32_t)sft__tc_bits<F16>(lo) | ((uint32_t)sft__tc_bits<F16>(hi) << 16);
}

/* rows r0 .. r0 + n - 1 (t < T) of head h of a [B, T, H, D] tensor into a shared
   tile of n rows, zeros past T and past D up to Dp */
template <int F16>
static __device__ void sft__fa_load(uint16_t *tile, int n, const float *x, const sft__cuda_attn &a, int64_t b, int64_t r0, int64_t h,
                                    int64_t H, int Dp) {
    for (int idx = (int)threadIdx.x; idx < n * Dp; idx += SFT__TC_THREADS) {
        int r = idx / Dp, d = idx % Dp;
        int64_t t = r0 + r;
        tile[r * SFT__FA_LD + d] = t < a.T && d < a.D ? sft__tc_bits<F16>(x[sft__cuda_attn_row(a, b, t, h, H) + d]) : (uint16_t)0;
    }
}

/* acc[16 x (8 n)] += A (16 rows of a tile, k over Dp) . B^T (rows n0.. of a tile, k over Dp): the S = Q K^T shape */
template <int F16, int NT>
static __device__ void sft__fa_rows_dot(float acc[][4], const uint16_t *A, int a0, const uint16_t *Bt, int b0, int Dp) {
    const int lane = (int)threadIdx.x & 31;
    for (int ks = 0; ks < Dp; ks += 16) {
        uint32_t af[4];
        sft__tc_ldmatrix_x4(af, &A[(a0 + (lane & 15)) * SFT__FA_LD + ks + (lane >> 4) * 8]);
        for (int jt = 0; jt < NT / 2; jt++) {
            uint32_t bq[4];
            sft__tc_ldmatrix_x4(bq, &Bt[(b0 + jt * 16 + (lane >> 4) * 8 + (lane & 7)) * SFT__FA_LD + ks + ((lane >> 3) & 1) * 8]);
            sft__tc_mma<F16>(acc[2 * jt], af, &bq[0]);
            sft__tc_mma<F16>(acc[2 * jt + 1], af, &bq[2]);
        }
    }
}

/* out[16 x Dp] += P (16 x 32, accumulator layout, rounded here) . V (32 rows of a tile) */
template <int F16>
static __device__ void sft__fa_p_v(float out[][4], const float p[4][4], const uint16_t *V, int Dp) {
    const int lane = (int)threadIdx.x & 31;
    for (int kc = 0; kc < 2; kc++) {
        uint32_t pa[4] = {sft__tc_pack<F16>(p[2 * kc][0], p[2 * kc][1]), sft__tc_pack<F16>(p[2 * kc][2], p[2 * kc][3]),
                          sft__tc_pack<F16>(p[2 * kc + 1][0], p[2 * kc + 1][1]), sft__tc_pack<F16>(p[2 * kc + 1][2], p[2 * kc + 1][3])};
        for (int dt = 0; dt < Dp / 16; dt++) {
            uint32_t vb[4];
            sft__tc_ldmatrix_x4_trans(vb, &V[(kc * 16 + ((lane >> 3) & 1) * 8 + (lane & 7)) * SFT__FA_LD + dt * 16 + (lane >> 4) * 8]);
            sft__tc_mma<F16>(out[2 * dt], pa, &vb[0]);
            sft__tc_mma<F16>(out[2 * dt + 1], pa, &vb[2]);
        }
    }
}

/* the quad's combined value for each of a lane's two rows */
static __device__ __forceinline__ float sft__fa_quad_max(float v) {
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
    return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
static __device__ __forceinline__ float sft__fa_quad_sum(float v) {
    v = __fadd_rn(v, __shfl_xor_sync(0xffffffffu, v, 1));
    return __fadd_rn(v, __shfl_xor_sync(0xffffffffu, v, 2));
}

/* forward: a block per 64 query rows of (b, h); grid (ceil(T / 64), Hq, B) */
template <int F16>
static __global__ void __launch_bounds__(SFT__TC_THREADS) sft__cuda_fa_fwd_kernel(sft__cuda_attn a) {
    __shared__ __align__(16) uint16_t Qs[SFT__FA_ROWS * SFT__FA_LD];
    __shared__ __align__(16) uint16_t Ks[SFT__FA_TILE * SFT__FA_LD];
    __shared__ __align__(16) uint16_t Vs[SFT__FA_TILE * SFT__FA_LD];
    const int lane = (int)threadIdx.x & 31, warp = (int)threadIdx.x >> 5, gid = lane >> 2, tig = lane & 3, Dp = (int)a.D;
    const int64_t b = blockIdx.z, h = blockIdx.y, hk = h / a.group, i0 = (int64_t)blockIdx.x * SFT__FA_ROWS, wr = i0 + warp * 16;
    const int64_t last = i0 + SFT__FA_ROWS - 1 < a.T - 1 ? i0 + SFT__FA_ROWS - 1 : a.T - 1;
    float o[SFT__FA_MAXD / 8][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    int dt, nt, e, rr;
    for (dt = 0; dt < SFT__FA_MAXD / 8; dt++)
        for (e = 0; e < 4; e++) o[dt][e] = 0.0f;
    sft__fa_load<F16>(Qs, SFT__FA_ROWS, a.q, a, b, i0, h, a.Hq, Dp);
    for (int64_t j0 = 0; j0 <= last; j0 += SFT__FA_TILE) {
        float s[4][4], mx[2], corr[2], sum[2] = {0.0f, 0.0f};
        __syncthreads();   /* Q's tile is written; the last tile's readers are done */
        sft__fa_load<F16>(Ks, SFT__FA_TILE, a.k, a, b, j0, hk, a.Hkv, Dp);
        sft__fa_load<F16>(Vs, SFT__FA_TILE, a.v, a, b, j0, hk, a.Hkv, Dp);
        __syncthreads();
        for (nt = 0; nt < 4; nt++)
            for (e = 0; e < 4; e++) s[nt][e] = 0.0f;
        sft__fa_rows_dot<F16, 4>(s, Qs, warp * 16, Ks, 0, Dp);
        mx[0] = mx[1] = -INFINITY;
        for (nt = 0; nt < 4; nt++)
            for (e = 0; e < 4; e++) {
                int64_t i = wr + gid + 8 * (e >> 1), j = j0 + nt * 8 + 2 * tig + (e & 1);
                s[nt][e] = i < a.T && j <= i && sft__cuda_attn_visible(a, b, i, j) ? __fmul_rn(s[nt][e], a.scale) : -INFINITY;
                mx[e >> 1] = fmaxf(mx[e >> 1], s[nt][e]);
            }
        for (rr = 0; rr < 2; rr++) {
            float nm = fmaxf(m[rr], sft__fa_quad_max(mx[rr]));
            corr[rr] = nm == -INFINITY ? 1.0f : expf(__fsub_rn(m[rr], nm));   /* 0 on the first visible tile */
            m[rr] = nm;
        }
        for (nt = 0; nt < 4; nt++)
            for (e = 0; e < 4; e++) {
                s[nt][e] = s[nt][e] == -INFINITY ? 0.0f : expf(__fsub_rn(s[nt][e], m[e >> 1]));
                sum[e >> 1] = __fadd_rn(sum[e >> 1], s[nt][e]);
            }
        for (rr = 0; rr < 2; rr++) l[rr] = __fadd_rn(__fmul_rn(l[rr], corr[rr]), sft__fa_quad_sum(sum[rr]));
        for (dt = 0; dt < Dp / 8; dt++)
            for (e = 0; e < 4; e++) o[dt][e] = __fmul_rn(o[dt][e], corr[e >> 1]);
        sft__fa_p_v<F16>(o, s, Vs, Dp);
    }
    for (dt = 0; dt < Dp / 8; dt++)
        for (e = 0; e < 4; e++) {
            int64_t i = wr + gid + 8 * (e >> 1);
            if (i < a.T) a.out[sft__cuda_attn_row(a, b, i, h, a.Hq) + dt * 8 + 2 * tig + (e & 1)] = __fdiv_rn(o[dt][e], l[e >> 1]);
        }
    for (rr = 0; rr < 2; rr++) {
        int64_t i = wr + gid + 8 * rr;
        if (tig == 0 && i < a.T) a.lse_out[(b * a.Hq + h) * a.T + i] = __fadd_rn(m[rr], logf(l[rr]));
    }
}

/* P and dS for the 16 x 32 accumulators s (scores unscaled) and dp of rows
   ri (query rows: by_query) or columns (key rows: transposed) */
static __device__ void sft__fa_p_ds(const sft__cuda_attn &a, int64_t b, int64_t h, int64_t r0, int64_t c0, int by_query, float s[4][4],
                                    float dp[4][4]) {
    const int lane = (int)threadIdx.x & 31, gid = lane >> 2, tig = lane & 3;
    for (int nt = 0; nt < 4; nt++)
        for (int e = 0; e < 4; e++) {
            int64_t r = r0 + gid + 8 * (e >> 1), c = c0 + nt * 8 + 2 * tig + (e & 1), i = by_query ? r : c, j = by_query ? c : r;
            float p = 0.0f, ds = 0.0f;
            if (i < a.T && j < a.T && j <= i && sft__cuda_attn_visible(a, b, i, j)) {
                int64_t q = (b * a.Hq + h) * a.T + i;
                p = expf(__fsub_rn(__fmul_rn(s[nt][e], a.scale), a.lse[q]));
                ds = __fmul_rn(__fmul_rn(p, __fsub_rn(dp[nt][e], a.delta[q])), a.scale);
            }
            s[nt][e] = p; dp[nt][e] = ds;
        }
}

/* dQ: a block per 64 query rows of (b, h) */
template <int F16>
static __global__ void __launch_bounds__(SFT__TC_THREADS) sft__cuda_fa_dq_kernel(sft__cuda_attn a) {
    __shared__ __align__(16) uint16_t Qs[SFT__FA_ROWS * SFT__FA_LD], Os[SFT__FA_ROWS * SFT__FA_LD];
    __shared__ __align__(16) uint16_t Ks[SFT__FA_TILE * SFT__FA_LD], Vs[SFT__FA_TILE * SFT__FA_LD];
    const int lane = (int)threadIdx.x & 31, warp = (int)threadIdx.x >> 5, gid = lane >> 2, tig = lane & 3, Dp = (int)a.D;
    const int64_t b = blockIdx.z, h = blockIdx.y, hk = h / a.group, i0 = (int64_t)blockIdx.x * SFT__FA_ROWS, wr = i0 + warp * 16;
    const int64_t last = i0 + SFT__FA_ROWS - 1 < a.T - 1 ? i0 + SFT__FA_ROWS - 1 : a.T - 1;
    float acc[SFT__FA_MAXD / 8][4];
    int dt, nt, e;
    for (dt = 0; dt < SFT__FA_MAXD / 8; dt++)
        for (e = 0; e < 4; e++) acc[dt][e] = 0.0f;
    sft__fa_load<F16>(Qs, SFT__FA_ROWS, a.q, a, b, i0, h, a.Hq, Dp);
    sft__fa_load<F16>(Os, SFT__FA_ROWS, a.dout, a, b, i0, h, a.Hq, Dp);
    for (int64_t j0 = 0; j0 <= last; j0 += SFT__FA_TILE) {
        float s[4][4], dp[4][4];
        __syncthreads();
        sft__fa_load<F16>(Ks, SFT__FA_TILE, a.k, a, b, j0, hk, a.Hkv, Dp);
        sft__fa_load<F16>(Vs, SFT__FA_TILE, a.v, a, b, j0, hk, a.Hkv, Dp);
        __syncthreads();
        for (nt = 0; nt < 4; nt++)
            for (e = 0; e < 4; e++) s[nt][e] = dp[nt][e] = 0.0f;
        sft__fa_rows_dot<F16, 4>(s, Qs, warp * 16, Ks, 0, Dp);
        sft__fa_rows_dot<F16, 4>(dp, Os, warp * 16, Vs, 0, Dp);
        sft__fa_p_ds(a, b, h, wr, j0, 1, s, dp);
        sft__fa_p_v<F16>(acc, dp, Ks, Dp);   /* dQ += dS K */
    }
    for (dt = 0; dt < Dp / 8; dt++)
        for (e = 0; e < 4; e++) {
            int64_t i = wr + gid + 8 * (e >> 1);
            float *dst = a.dq + (i < a.T ? sft__cuda_attn_row(a, b, i, h, a.Hq) : 0) + dt * 8 + 2 * tig + (e & 1);
            if (i < a.T) *dst = __fadd_rn(*dst, acc[dt][e]);
        }
}

/* dK, dV: a block per 64 key rows of (b, hk), over the group's query heads */
template <int F16>
static __global__ void __launch_bounds__(SFT__TC_THREADS) sft__cuda_fa_dkv_kernel(sft__cuda_attn a) {
    __shared__ __align__(16) uint16_t Ks[SFT__FA_ROWS * SFT__FA_LD], Vs[SFT__FA_ROWS * SFT__FA_LD];
    __shared__ __align__(16) uint16_t Qs[SFT__FA_TILE * SFT__FA_LD], Os[SFT__FA_TILE * SFT__FA_LD];
    const int lane = (int)threadIdx.x & 31, warp = (int)threadIdx.x >> 5, gid = lane >> 2, tig = lane & 3, Dp = (int)a.D;
    const int64_t b = blockIdx.z, hk = blockIdx.y, j0 = (int64_t)blockIdx.x * SFT__FA_ROWS, wr = j0 + warp * 16;
    float dk[SFT__FA_MAXD / 8][4], dv[SFT__FA_MAXD / 8][4];
    int dt, nt, e;
    for (dt = 0; dt < SFT__FA_MAXD / 8; dt++)
        for (e = 0; e < 4; e++) dk[dt][e] = dv[dt][e] = 0.0f;
    sft__fa_load<F16>(Ks, SFT__FA_ROWS, a.k, a, b, j0, hk, a.Hkv, Dp);
    sft__fa_load<F16>(Vs, SFT__FA_ROWS, a.v, a, b, j0, hk, a.Hkv, Dp);
    for (int64_t h = hk * a.group; h < (hk + 1) * a.group; h++)
        for (int64_t q0 = j0 / SFT__FA_TILE * SFT__FA_TILE; q0 < a.T; q0 += SFT__FA_TILE) {
            float s[4][4], dp[4][4];
            __syncthreads();
            sft__fa_load<F16>(Qs, SFT__FA_TILE, a.q, a, b, q0, h, a.Hq, Dp);
            sft__fa_load<F16>(Os, SFT__FA_TILE, a.dout, a, b, q0, h, a.Hq, Dp);
            __syncthreads();
            for (nt = 0; nt < 4; nt++)
                for (e = 0; e < 4; e++) s[nt][e] = dp[nt][e] = 0.0f;
            sft__fa_rows_dot<F16, 4>(s, Ks, warp * 16, Qs, 0, Dp);    /* S^T = K Q^T */
            sft__fa_rows_dot<F16, 4>(dp, Vs, warp * 16, Os, 0, Dp);   /* dP^T = V dO^T */
            sft__fa_p_ds(a, b, h, wr, q0, 0, s, dp);
            sft__fa_p_v<F16>(dv, s, Os, Dp);    /* dV += P^T dO */
            sft__fa_p_v<F16>(dk, dp, Qs, Dp);   /* dK += dS^T Q */
        }
    for (dt = 0; dt < Dp / 8; dt++)
        for (e = 0; e < 4; e++) {
            int64_t j = wr + gid + 8 * (e >> 1), off;
            if (j >= a.T) continue;
            off = sft__cuda_attn_row(a, b, j, hk, a.Hkv) + dt * 8 + 2 * tig + (e & 1);
            if (a.dk) a.dk[off] = __fadd_rn(a.dk[off], dk[dt][e]);
            if (a.dv) a.dv[off] = __fadd_rn(a.dv[off], dv[dt][e]);
        }
}

static dim3 sft__cuda_fa_grid(int64_t T, int64_t H, int64_t B) {
    return dim3((unsigned)((T + SFT__FA_ROWS - 1) / SFT__FA_ROWS), (unsigned)H, (unsigned)B);
}

static sft_status sft__cuda_attention_fwd(sft_context *ctx, sft__node *n) {
    sft__cuda_attn a = sft__cuda_attn_of(n);
    SFT__TRY(sft__cuda_attn_check(n));
    if (ctx->plan_only || a.B * a.T * a.Hq == 0) return SFT_OK;
    if (a.B > 65535 || a.Hq > 65535) return sft__fail(SFT_ERR_LIMIT, "attention: batch %lld or heads %lld above 65535 on cuda", (long long)a.B, (long long)a.Hq);
    a.out = SFT__F(n->out); a.lse_out = SFT__F(n->saved);
    if (sft__cuda_fa_ok(n)) {
        if (n->i[1] == 2) SFT__LAUNCH(sft__cuda_fa_fwd_kernel<1>, sft__cuda_fa_grid(a.T, a.Hq, a.B), SFT__TC_THREADS, 0, a);
        else SFT__LAUNCH(sft__cuda_fa_fwd_kernel<0>, sft__cuda_fa_grid(a.T, a.Hq, a.B), SFT__TC_THREADS, 0, a);
        return sft__cuda_launched(n, "attention (tensor cores)");
    }
    SFT__LAUNCH(sft__cuda_attn_fwd_kernel, sft__cuda_attn_grid(a.T, a.Hq, a.B), 32 * SFT__CUDA_ATTN_WARPS, 0, a);
    return sft__cuda_launched(n, "attention");
}

static sft_status sft__cuda_attention_bwd(sft_context *ctx, sft__node *n) {
    sft__cuda_attn a = sft__cuda_attn_of(n);
    int64_t rows = a.B * a.Hq * a.T;
    SFT__TRY(sft__cuda_attn_check(n));
    if (ctx->plan_only || rows == 0) return SFT_OK;
    a.o = SFT__CF(n->out); a.dout = SFT__CF(n->out->grad);
    SFT__LAUNCH(sft__cuda_attn_delta_kernel, (unsigned)((rows + SFT__CUDA_ATTN_WARPS - 1) / SFT__CUDA_ATTN_WARPS), 32 * SFT__CUDA_ATTN_WARPS,
                0, a, SFT__F(n->saved) + rows);
    SFT__TRY(sft__cuda_launched(n, "attention_delta"));
    if (n->in[1]->requires_grad || n->in[2]->requires_grad) {
        a.dk = n->in[1]->requires_grad ? SFT__F(n->in[1]->grad) : NULL;
        a.dv = n->in[2]->requires_grad ? SFT__F(n->in[2]->grad) : NULL;
        if (sft__cuda_fa_ok(n) && n->i[1] == 2) SFT__LAUNCH(sft__cuda_fa_dkv_kernel<1>, sft__cuda_fa_grid(a.T, a.Hkv, a.B), SFT__TC_THREADS, 0, a);
        else if (sft__cuda_fa_ok(n)) SFT__LAUNCH(sft__cuda_fa_dkv_kernel<0>, sft__cuda_fa_grid(a.T, a.Hkv, a.B), SFT__TC_THREADS, 0, a);
        else SFT__LAUNCH(sft__cuda_attn_dkv_kernel, sft__cuda_attn_grid(a.T, a.Hkv, a.B), 32 * SFT__CUDA_ATTN_WARPS, 0, a);
        SFT__TRY(sft__cuda_launched(n, "attention_dkv"));
    }
    if (n->in[0]->requires_grad) {
        a.dq = SFT__F(n->in[0]->grad);
        if (sft__cuda_fa_ok(n) && n->i[1] == 2) SFT__LAUNCH(sft__cuda_fa_dq_kernel<1>, sft__cuda_fa_grid(a.T, a.Hq, a.B), SFT__TC_THREADS, 0, a);
        else if (sft__cuda_fa_ok(n)) SFT__LAUNCH(sft__cuda_fa_dq_kernel<0>, sft__cuda_fa_grid(a.T, a.Hq, a.B), SFT__TC_THREADS, 0, a);
        else SFT__LAUNCH(sft__cuda_attn_dq_kernel, sft__cuda_attn_grid(a.T, a.Hq, a.B), 32 * SFT__CUDA_ATTN_WARPS, 0, a);
        SFT__TRY(sft__cuda_launched(n, "attention_dq"));
    }
    return SFT_OK;
}

/* --- generation: attention over the KV cache ------------------------------------
   sft.h's sft__attn_cached, one thread per (new query, head): the scores of
   every cached key in order, their maximum, the exponentials and their sum, the
   weighted values. Generation runs one token at a time, so this is latency,
   not throughput; it gives the CPU's bits under the emulator. scores holds
   max_T floats per thread. */
static __global__ void sft__cuda_attn_cached_kernel(float *out, float *scores, const float *q, const float *kc, const float *vc, int64_t pos0,
                                                    int64_t n, int64_t Hq, int64_t Hkv, int64_t D, int64_t max_t, float scale) {
    SFT__CUDA_FOR(r, n * Hq) {
        int64_t i = r / Hq, h = r % Hq, g = h / (Hq / Hkv), last = pos0 + i, j, d;
        const float *qi = q + (i * Hq + h) * D;
        float *sc = scores + r * max_t, *o = out + (i * Hq + h) * D, mx = -INFINITY, sum = 0.0f;
        for (j = 0; j <= last; j++) {
            const float *kj = kc + (j * Hkv + g) * D;
            float dot = 0.0f;
            for (d = 0; d < D; d++) dot = __fadd_rn(dot, __fmul_rn(qi[d], kj[d]));
            sc[j] = __fmul_rn(dot, scale);
            if (sc[j] > mx) mx = sc[j];
        }
        for (j = 0; j <= last; j++) { sc[j] = expf(__fsub_rn(sc[j], mx)); sum = __fadd_rn(sum, sc[j]); }
        for (d = 0; d < D; d++) o[d] = 0.0f;
        for (j = 0; j <= last; j++) {
            const float *vj = vc + (j * Hkv + g) * D;
            float w = __fdiv_rn(sc[j], sum);
            for (d = 0; d < D; d++) o[d] = __fadd_rn(o[d], __fmul_rn(w, vj[d]));
        }
    }
}

static sft_status sft__cuda_attn_cached(sft_context *ctx, const sft_model_config *c, const float *q, const float *kc, const float *vc,
                                        int64_t pos0, int64_t n, float *out) {
    int64_t Hq = c->num_attention_heads, rows = n * Hq, max_t = pos0 + n;
    void *scores;
    if (rows == 0) return SFT_OK;
    SFT__TRY(sft__cuda_scratch(ctx, (size_t)(rows * max_t) * sizeof(float), &scores));
    SFT__LAUNCH(sft__cuda_attn_cached_kernel, sft__cuda_grid(rows), SFT__CUDA_BLOCK, 0, out, (float *)scores, q, kc, vc, pos0, n, Hq,
                (int64_t)c->num_key_value_heads, (int64_t)c->head_dim, max_t, 1.0f / sqrtf((float)c->head_dim));
    return sft__cuda_check("generate", "attention over the cache");
}

/* ============================================================================
   === cuda: cross-entropy
   node: in[0] = logits [N, V], in[1] = labels [N]; f[0] = label smoothing, f[1] =
   the per-row factor; i[0] = ignore_index; saved = [2, N] (log-sum-exp, row
   loss). A block per row: the maximum, the sum of exponentials and (with
   smoothing) the sum of logits over fixed trees; the loss is the rows' sum in
   double, in order, as on the CPU. Backward reads the loss's gradient on the
   device. */

static __global__ void sft__cuda_ce_kernel(float *saved, const float *logits, const int32_t *labels, int64_t N, int64_t V, float eps,
                                           int32_t ignore) {
    __shared__ float sh[256];
    const int64_t r = blockIdx.x;
    const float *x = logits + r * V;
    float m = -INFINITY, sum = 0.0f, tot = 0.0f, lse;
    for (int64_t c = threadIdx.x; c < V; c += blockDim.x) m = fmaxf(m, x[c]);
    m = sft__cuda_block_max(m, sh);
    for (int64_t c = threadIdx.x; c < V; c += blockDim.x) {
        sum = __fadd_rn(sum, expf(__fsub_rn(x[c], m)));
        tot = __fadd_rn(tot, x[c]);
    }
    sum = sft__cuda_block_sum(sum, sh);
    if (eps > 0.0f) tot = sft__cuda_block_sum(tot, sh);
    if (threadIdx.x) return;
    lse = __fadd_rn(m, logf(sum));
    saved[r] = lse;
    if (labels[r] == ignore) { saved[N + r] = 0.0f; return; }
    saved[N + r] = __fadd_rn(__fmul_rn(__fsub_rn(1.0f, eps), __fsub_rn(lse, x[labels[r]])),
                             __fmul_rn(eps, __fsub_rn(lse, eps > 0.0f ? __fdiv_rn(tot, (float)V) : 0.0f)));
}

/* dx += k (softmax - e/V - (1-e)[c == label]) on counted rows, k = dloss * factor */
static __global__ void sft__cuda_ce_bwd_kernel(float *dx, const float *x, const float *lse, const int32_t *labels, const float *dloss,
                                               int64_t N, int64_t V, float eps, float factor, int32_t ignore) {
    float k = __fmul_rn(dloss[0], factor);
    SFT__CUDA_FOR(i, N * V) {
        int64_t r = i / V, c = i % V;
        if (labels[r] == ignore) continue;
        float t = __fsub_rn(__fsub_rn(expf(__fsub_rn(x[i], lse[r])), __fdiv_rn(eps, (float)V)), c == labels[r] ? __fsub_rn(1.0f, eps) : 0.0f);
        dx[i] = __fadd_rn(dx[i], __fmul_rn(k, t));
    }
}

static sft_status sft__cuda_ce_fwd(sft_context *ctx, sft__node *n) {
    int64_t V = sft__last_dim(n->in[0]), N = sft_tensor_numel(n->in[1]);
    if (ctx->plan_only) return SFT_OK;
    if (N > 0) {
        SFT__LAUNCH(sft__cuda_ce_kernel, (unsigned)N, sft__cuda_row_threads(V), 0, SFT__F(n->saved), SFT__CF(n->in[0]),
                    (const int32_t *)n->in[1]->data, N, V, n->f[0], (int32_t)n->i[0]);
        SFT__TRY(sft__cuda_launched(n, "cross_entropy"));
    }
    SFT__LAUNCH(sft__cuda_total_kernel, 1, 1, 0, SFT__F(n->out), SFT__CF(n->saved) + N, N, n->f[1]);
    return sft__cuda_launched(n, "total");
}

static sft_status sft__cuda_ce_bwd(sft_context *ctx, sft__node *n) {
    int64_t V = sft__last_dim(n->in[0]), N = sft_tensor_numel(n->in[1]);
    if (ctx->plan_only || N * V == 0) return SFT_OK;
    SFT__LAUNCH(sft__cuda_ce_bwd_kernel, sft__cuda_grid(N * V), SFT__CUDA_BLOCK, 0, SFT__F(n->in[0]->grad), SFT__CF(n->in[0]),
                SFT__CF(n->saved), (const int32_t *)n->in[1]->data, SFT__CF(n->out->grad), N, V, n->f[0], n->f[1], (int32_t)n->i[0]);
    return sft__cuda_launched(n, "cross_entropy_bwd");
}

/* --- the output projection fused with cross-entropy ----------------------------
   node: in[0] = hidden [N, D], in[1] = weight [V, D], in[2] = labels [N];
   f[0], f[1], i[0] as above, f[2] = 1: a frozen weight multiplied in bf16,
   i[1] = the vocabulary chunk Vc; saved = [4, N] (running max, -, label logit,
   sum of logits; then the log-sum-exp and the row loss in rows 0 and 1) and the
   chunk buffer [N, Vc]; ptr = an sft__lce_metrics to fill, or NULL. The CPU's
   plan: each chunk's logits from one GEMM, an online log-sum-exp across chunks
   with S = sum exp(l - m) and W = sum exp(l - m) (l - m) kept in double (the
   entropy is log S - W / S), the chunks recomputed in backward and turned into
   d logits in place. A block owns a row; its chunk sums are fixed trees. */

/* forward's running state per row (device step memory) */
typedef struct sft__cuda_lce_rows { double *S, *W; float *best_v; int64_t *best_i; } sft__cuda_lce_rows;

static __global__ void sft__cuda_lce_init_kernel(float *st, sft__cuda_lce_rows rs, int64_t N) {
    SFT__CUDA_FOR(r, N) {
        st[r] = -INFINITY; st[N + r] = 0.0f; st[2 * N + r] = 0.0f; st[3 * N + r] = 0.0f;
        rs.S[r] = 0.0; rs.W[r] = 0.0; rs.best_v[r] = -INFINITY; rs.best_i[r] = 0;
    }
}

/* one chunk into row blockIdx.x's running state */
static __global__ void sft__cuda_lce_rows_kernel(float *st, sft__cuda_lce_rows rs, const float *buf, const int32_t *labels, int64_t N,
                                                 int64_t v0, int64_t vc, int smoothing, int metrics) {
    __shared__ double shd[256];
    __shared__ float sh[256];
    __shared__ int64_t first;
    const int64_t r = blockIdx.x;
    const float *x = buf + r * vc;
    float chunk_max = -INFINITY, cm, m = st[r], t = 0.0f;
    double s = 0.0, w = 0.0;
    for (int64_t c = threadIdx.x; c < vc; c += blockDim.x) chunk_max = fmaxf(chunk_max, x[c]);
    chunk_max = sft__cuda_block_max(chunk_max, sh);
    cm = chunk_max > m ? chunk_max : m;
    for (int64_t c = threadIdx.x; c < vc; c += blockDim.x) {
        double e = (double)expf(__fsub_rn(x[c], cm));
        s = __dadd_rn(s, e);
        w = __dadd_rn(w, __dmul_rn(e, (double)x[c] - (double)cm));
        if (smoothing) t = __fadd_rn(t, x[c]);
    }
    s = sft__cuda_block_sum(s, shd);
    w = sft__cuda_block_sum(w, shd);
    if (smoothing) t = sft__cuda_block_sum(t, sh);
    if (metrics) {                  /* the first index holding the chunk's largest logit */
        if (threadIdx.x == 0) first = vc;
        __syncthreads();
        for (int64_t c = threadIdx.x; c < vc; c += blockDim.x)
            if (x[c] == chunk_max) { atomicMin((long long *)&first, (long long)c); break; }   /* integer: order-free */
        __syncthreads();
    }
    if (threadIdx.x) return;
    if (rs.S[r] > 0.0) {            /* what earlier chunks summed, rescaled to the new maximum */
        double d = (double)m - (double)cm, scale = exp(d);
        rs.W[r] = __dmul_rn(scale, __dadd_rn(rs.W[r], __dmul_rn(d, rs.S[r])));
        rs.S[r] = __dmul_rn(rs.S[r], scale);
    }
    rs.S[r] = __dadd_rn(rs.S[r], s);
    rs.W[r] = __dadd_rn(rs.W[r], w);
    st[r] = cm;
    if (smoothing) st[3 * N + r] = __fadd_rn(st[3 * N + r], t);
    if (labels[r] >= v0 && labels[r] < v0 + vc) st[2 * N + r] = x[labels[r] - v0];
    if (metrics && chunk_max > rs.best_v[r] && first < vc) { rs.best_v[r] = chunk_max; rs.best_i[r] = v0 + first; }
}

static __global__ void sft__cuda_lce_finish_kernel(float *st, const double *S, const int32_t *labels, int64_t N, int64_t V, float eps,
                                                   int32_t ignore) {
    SFT__CUDA_FOR(r, N) {
        float l = (float)__dadd_rn((double)st[r], log(S[r])), mean = __fdiv_rn(st[3 * N + r], (float)V);
        st[r] = l;
        st[N + r] = labels[r] == ignore ? 0.0f
                                        : __fadd_rn(__fmul_rn(__fsub_rn(1.0f, eps), __fsub_rn(l, st[2 * N + r])), __fmul_rn(eps, __fsub_rn(l, mean)));
    }
}

/* d logits of a chunk, in place */
static __global__ void sft__cuda_lce_dlogits_kernel(float *buf, const float *lse, const int32_t *labels, const float *dloss, int64_t N,
                                                    int64_t V, int64_t v0, int64_t vc, float eps, float factor, int32_t ignore) {
    float k = __fmul_rn(dloss[0], factor);
    SFT__CUDA_FOR(i, N * vc) {
        int64_t r = i / vc, c = i % vc;
        float v;
        if (labels[r] == ignore) { buf[i] = 0.0f; continue; }
        v = __fmul_rn(k, __fsub_rn(expf(__fsub_rn(buf[i], lse[r])), __fdiv_rn(eps, (float)V)));
        if (labels[r] == v0 + c) v = __fsub_rn(v, __fmul_rn(k, __fsub_rn(1.0f, eps)));
        buf[i] = v;
    }
}

typedef struct sft__cuda_lce { const sft__node *n; int64_t N, V, D, v0, vc; float *st, *buf; int bf16; } sft__cuda_lce;

static sft__cuda_lce sft__cuda_lce_of(const sft__node *n) {
    sft__cuda_lce j;
    j.n = n; j.N = sft_tensor_numel(n->in[2]); j.V = n->in[1]->shape[0]; j.D = n->in[1]->shape[1];
    j.st = SFT__F(n->saved); j.buf = j.st + 4 * j.N; j.v0 = 0; j.vc = 0;
    j.bf16 = sft__lce_bf16(n);
    return j;
}

/* buf[N, vc] = hidden . weight[v0 : v0 + vc]^T */
static sft_status sft__cuda_lce_chunk(sft_context *ctx, const sft__cuda_lce *j) {
    return sft__cuda_gemm_f32w(ctx, j->N, sft__mat_of(SFT__CF(j->n->in[0]), j->D, 1), SFT__CF(j->n->in[1]) + j->v0 * j->D, j->vc, j->D, 1,
                               j->bf16, j->buf, j->vc, 0, "linear_cross_entropy");
}

/* the token metrics from the rows' state, added on the host in row order as
   the CPU adds them */
static sft_status sft__cuda_lce_metrics(sft_context *ctx, const sft__node *n, const sft__cuda_lce_rows *rs, int64_t N, sft__lce_metrics *mt) {
    size_t bytes = (size_t)N * (2 * sizeof(double) + sizeof(int64_t));
    unsigned char *h = (unsigned char *)sft__alloc(ctx, bytes ? bytes : 1);
    const int32_t *labels;
    double *S, *W;
    int64_t *best, r;
    sft_status s = h ? SFT_OK : sft__fail(SFT_ERR_NOMEM, "linear_cross_entropy: the metrics of %lld rows", (long long)N);
    S = (double *)(void *)h; W = S + N; best = (int64_t *)(void *)(W + N);
    if (s == SFT_OK) s = sft__cuda_copy(S, SFT_DEVICE_CPU, rs->S, SFT_DEVICE_CUDA, (size_t)N * sizeof(double));
    if (s == SFT_OK) s = sft__cuda_copy(W, SFT_DEVICE_CPU, rs->W, SFT_DEVICE_CUDA, (size_t)N * sizeof(double));
    if (s == SFT_OK) s = sft__cuda_copy(best, SFT_DEVICE_CPU, rs->best_i, SFT_DEVICE_CUDA, (size_t)N * sizeof(int64_t));
    if (s == SFT_OK) s = sft__i32_host(ctx, n->in[2], &labels);
    for (r = 0; s == SFT_OK && r < N; r++) {
        if (labels[r] == (int32_t)n->i[0]) continue;
        mt->tokens++;
        mt->correct += best[r] == labels[r];
        mt->entropy += log(S[r]) - W[r] / S[r];
    }
    sft__free(ctx, h);
    return s;
}

static sft_status sft__cuda_lce_fwd(sft_context *ctx, sft__node *n) {
    sft__cuda_lce j = sft__cuda_lce_of(n);
    sft__lce_metrics *mt = (sft__lce_metrics *)(uintptr_t)n->ptr;
    const int32_t *labels = (const int32_t *)n->in[2]->data;
    sft__cuda_lce_rows rs;
    void *mem;
    if (n->f[3] > 0.0f) return sft__fail(SFT_ERR_UNSUPPORTED, "linear_cross_entropy: a final logit soft cap has no CUDA kernel yet");
    if (ctx->plan_only) return SFT_OK;
    if (j.N > 0) {
        SFT__TRY(sft__cuda_scratch(ctx, (size_t)j.N * (2 * sizeof(double) + sizeof(int64_t) + sizeof(float)), &mem));
        rs.S = (double *)mem; rs.W = rs.S + j.N; rs.best_i = (int64_t *)(void *)(rs.W + j.N); rs.best_v = (float *)(void *)(rs.best_i + j.N);
        SFT__LAUNCH(sft__cuda_lce_init_kernel, sft__cuda_grid(j.N), SFT__CUDA_BLOCK, 0, j.st, rs, j.N);
        SFT__TRY(sft__cuda_launched(n, "lce_init"));
        for (j.v0 = 0; j.v0 < j.V; j.v0 += n->i[1]) {
            j.vc = j.V - j.v0 < n->i[1] ? j.V - j.v0 : n->i[1];
            SFT__TRY(sft__cuda_lce_chunk(ctx, &j));
            SFT__LAUNCH(sft__cuda_lce_rows_kernel, (unsigned)j.N, sft__cuda_row_threads(j.vc), 0, j.st, rs, (const float *)j.buf, labels, j.N,
                        j.v0, j.vc, n->f[0] > 0.0f, mt != NULL);
            SFT__TRY(sft__cuda_launched(n, "lce_rows"));
        }
        SFT__LAUNCH(sft__cuda_lce_finish_kernel, sft__cuda_grid(j.N), SFT__CUDA_BLOCK, 0, j.st, (const double *)rs.S, labels, j.N, j.V, n->f[0],
                    (int32_t)n->i[0]);
        SFT__TRY(sft__cuda_launched(n, "lce_finish"));
        if (mt) SFT__TRY(sft__cuda_lce_metrics(ctx, n, &rs, j.N, mt));
    }
    SFT__LAUNCH(sft__cuda_total_kernel, 1, 1, 0, SFT__F(n->out), (const float *)j.st + j.N, j.N, n->f[1]);
    return sft__cuda_launched(n, "total");
}

static sft_status sft__cuda_lce_bwd(sft_context *ctx, sft__node *n) {
    sft__cuda_lce j = sft__cuda_lce_of(n);
    sft_tensor *h = n->in[0], *w = n->in[1];
    if (ctx->plan_only || j.N == 0) return SFT_OK;
    for (j.v0 = 0; j.v0 < j.V; j.v0 += n->i[1]) {
        sft__mat g;
        j.vc = j.V - j.v0 < n->i[1] ? j.V - j.v0 : n->i[1];
        SFT__TRY(sft__cuda_lce_chunk(ctx, &j));
        SFT__LAUNCH(sft__cuda_lce_dlogits_kernel, sft__cuda_grid(j.N * j.vc), SFT__CUDA_BLOCK, 0, j.buf, (const float *)j.st,
                    (const int32_t *)n->in[2]->data, SFT__CF(n->out->grad), j.N, j.V, j.v0, j.vc, n->f[0], n->f[1], (int32_t)n->i[0]);
        SFT__TRY(sft__cuda_launched(n, "lce_dlogits"));
        g = sft__mat_of(j.buf, j.vc, 1);
        if (h->requires_grad)   /* d hidden += g . weight[v0 : v0+vc] */
            SFT__TRY(sft__cuda_gemm_f32w(ctx, j.N, g, SFT__CF(w) + j.v0 * j.D, j.vc, j.D, 0, j.bf16, SFT__F(h->grad), j.D, 1,
                                         "linear_cross_entropy"));
        if (w->requires_grad)   /* d weight[v0 : v0+vc] += g^T . hidden */
            SFT__TRY(sft__cuda_gemm(ctx, j.vc, j.D, j.N, sft__mat_t(g), sft__mat_of(SFT__CF(h), j.D, 1), SFT__F(w->grad) + j.v0 * j.D, j.D,
                                    1, "linear_cross_entropy"));
    }
    return SFT_OK;
}

/* ============================================================================
   === cuda: prompt tuning
   node: in[0] = embeds [B, T, D], in[1] = prompts [P, D] (shared) or [B, P, D]
   (a row's own: ps = P * D apart, else 0); out [B, P + T, D]. The shared
   prompts' gradient gives a thread an element and adds the batch rows in order. */

static __global__ void sft__cuda_prompt_kernel(float *out, const float *embeds, const float *prompts, int64_t B, int64_t P, int64_t T,
                                               int64_t D, int64_t ps) {
    SFT__CUDA_FOR(i, B * (P + T) * D) {
        int64_t b = i / ((P + T) * D), rest = i % ((P + T) * D), p = rest / D, c = rest % D;
        out[i] = p < P ? prompts[b * ps + p * D + c] : embeds[(b * T + p - P) * D + c];
    }
}

static __global__ void sft__cuda_prompt_bwd_kernel(float *dprompts, float *dembeds, const float *g, int64_t B, int64_t P, int64_t T,
                                                   int64_t D, int64_t ps) {
    SFT__CUDA_FOR(i, (P + T) * D) {
        if (i < P * D) {
            if (dprompts)
                for (int64_t b = 0; b < B; b++) dprompts[b * ps + i] = __fadd_rn(dprompts[b * ps + i], g[b * (P + T) * D + i]);
        } else if (dembeds)
            for (int64_t b = 0; b < B; b++) {
                float *d = dembeds + b * T * D + (i - P * D);
                *d = __fadd_rn(*d, g[b * (P + T) * D + i]);
            }
    }
}

static sft_status sft__cuda_prompt_fwd(sft_context *ctx, sft__node *n) {
    int64_t B = n->in[0]->shape[0], T = n->in[0]->shape[1], D = n->in[0]->shape[2], P = n->in[1]->shape[n->in[1]->ndim - 2];
    (void)ctx;
    if (B * (P + T) * D == 0) return SFT_OK;
    SFT__LAUNCH(sft__cuda_prompt_kernel, sft__cuda_grid(B * (P + T) * D), SFT__CUDA_BLOCK, 0, SFT__F(n->out), SFT__CF(n->in[0]),
                SFT__CF(n->in[1]), B, P, T, D, sft__prompt_stride(n));
    return sft__cuda_launched(n, "prompt_tuning");
}

static sft_status sft__cuda_prompt_bwd(sft_context *ctx, sft__node *n) {
    int64_t B = n->in[0]->shape[0], T = n->in[0]->shape[1], D = n->in[0]->shape[2], P = n->in[1]->shape[n->in[1]->ndim - 2];
    (void)ctx;
    if ((P + T) * D == 0) return SFT_OK;
    SFT__LAUNCH(sft__cuda_prompt_bwd_kernel, sft__cuda_grid((P + T) * D), SFT__CUDA_BLOCK, 0,
                n->in[1]->requires_grad ? SFT__F(n->in[1]->grad) : (float *)NULL,
                n->in[0]->requires_grad ? SFT__F(n->in[0]->grad) : (float *)NULL, SFT__CF(n->out->grad), B, P, T, D,
                sft__prompt_stride(n));
    return sft__cuda_launched(n, "prompt_tuning_bwd");
}

/* ============================================================================
   === cuda: optimizer
   AdamW (torch's, and bitsandbytes' 32-bit and 8-bit updates) on parameters
   that live on the device, with their state there: each element goes through
   sft.h's own update function (sft__adamw_*_elem, SFT__HD), with the constants
   sft.h computes in double on the host, so a step gives the CPU's bits. The
   8-bit update gives a block of 256 values to a block of 256 threads: decode,
   update, the block's largest magnitude (a maximum: exact in any order), code
   again through the same table. The gradient norm adds each parameter's squares
   in double over chunks of 4096 in order (sft.h's sft__sq_chunk), as the CPU. */

static __global__ void sft__cuda_adamw_kernel(float *w, float *m, float *v, const float *g, int64_t n, sft__adam_k k, int kind) {
    SFT__CUDA_FOR(i, n) {
        if (kind == SFT__ADAM_TORCH) sft__adamw_torch_elem(&w[i], &m[i], &v[i], g[i], &k);
        else sft__adamw_bnb32_elem(&w[i], &m[i], &v[i], g[i], &k);
    }
}

static __global__ void __launch_bounds__(256) sft__cuda_adamw8_kernel(float *w, uint8_t *q1, uint8_t *q2, float *a1, float *a2, const float *g,
                                                                     int64_t n, sft__adam_k k, const float *map1, const float *map2,
                                                                     const uint8_t *lut1, const uint8_t *lut2) {
    __shared__ float sh[SFT__Q8_BLOCK];
    const int64_t b = blockIdx.x, at = b * SFT__Q8_BLOCK + threadIdx.x;
    const int in = at < n;
    float m = 0.0f, v = 0.0f, amax1, amax2;
    if (in) {
        m = __fmul_rn(map1[q1[at]], a1[b]);
        v = __fmul_rn(map2[q2[at]], a2[b]);
        sft__adamw_bnb8_elem(&w[at], &m, &v, g[at], &k);
    }
    amax1 = sft__cuda_block_max(in ? fmaxf(0.0f, fabsf(m)) : 0.0f, sh);   /* a NaN counts as 0, as on the CPU */
    amax2 = sft__cuda_block_max(in ? fmaxf(0.0f, fabsf(v)) : 0.0f, sh);
    if (in) {
        q1[at] = amax1 == 0.0f ? 0 : sft__q8_code(m, __fdiv_rn(1.0f, amax1), lut1);
        q2[at] = amax2 == 0.0f ? 0 : sft__q8_code(v, __fdiv_rn(1.0f, amax2), lut2);
    }
    if (threadIdx.x == 0) { a1[b] = amax1; a2[b] = amax2; }
}

static sft_status sft__cuda_adamw(sft_optimizer *o, int i, sft__adam_k k, int kind) {
    sft_tensor *p = o->params[i];
    int64_t n = sft_tensor_numel(p);
    if (n == 0) return SFT_OK;
    if (kind == SFT__ADAM_BNB8) {
        const char *t = (const char *)o->device_tables;
        size_t maps = 2 * 256 * sizeof(float);
        SFT__LAUNCH(sft__cuda_adamw8_kernel, (unsigned)((n + SFT__Q8_BLOCK - 1) / SFT__Q8_BLOCK), SFT__Q8_BLOCK, 0, SFT__F(p), o->q1[i], o->q2[i],
                    o->a1[i], o->a2[i], SFT__CF(p->grad), n, k, (const float *)t, (const float *)(t + 256 * sizeof(float)),
                    (const uint8_t *)(t + maps), (const uint8_t *)(t + maps + 65536));
        return sft__cuda_check("optimizer_step", "adamw8");
    }
    SFT__LAUNCH(sft__cuda_adamw_kernel, sft__cuda_grid(n), SFT__CUDA_BLOCK, 0, SFT__F(p), o->m[i], o->v[i], SFT__CF(p->grad), n, k, kind);
    return sft__cuda_check("optimizer_step", kind == SFT__ADAM_TORCH ? "adamw" : "adamw32");
}

/* part[c] = chunk c's sum of squares; then one thread adds the chunks in order */
static __global__ void sft__cuda_sq_chunks_kernel(double *part, const float *g, int64_t n) {
    int64_t chunks = (n + SFT__NORM_CHUNK - 1) / SFT__NORM_CHUNK;
    SFT__CUDA_FOR(c, chunks) {
        int64_t b = c * SFT__NORM_CHUNK;
        part[c] = sft__sq_chunk(g + b, n - b < SFT__NORM_CHUNK ? n - b : SFT__NORM_CHUNK);
    }
}

static __global__ void sft__cuda_sq_total_kernel(double *out, const double *part, int64_t chunks) {
    double total = 0.0;
    if (threadIdx.x || blockIdx.x) return;
    for (int64_t c = 0; c < chunks; c++) total = total + part[c];
    *out = total;
}

static sft_status sft__cuda_grad_sq(sft_context *ctx, const float *g, int64_t n, double *out) {
    int64_t chunks = (n + SFT__NORM_CHUNK - 1) / SFT__NORM_CHUNK;
    double *part = NULL;
    sft_status s;
    *out = 0.0;
    if (n == 0) return SFT_OK;
    SFT__TRY(sft__cuda_alloc(ctx, (size_t)(chunks + 1) * sizeof(double), (void **)&part));
    SFT__LAUNCH(sft__cuda_sq_chunks_kernel, sft__cuda_grid(chunks), SFT__CUDA_BLOCK, 0, part, g, n);
    s = sft__cuda_check("clip_grad_norm", "sum of squares");
    if (s == SFT_OK) {
        SFT__LAUNCH(sft__cuda_sq_total_kernel, 1, 1, 0, part + chunks, (const double *)part, chunks);
        s = sft__cuda_check("clip_grad_norm", "sum of squares");
    }
    if (s == SFT_OK) s = sft__cuda_copy(out, SFT_DEVICE_CPU, part + chunks, SFT_DEVICE_CUDA, sizeof(double));
    sft__cuda_free(ctx, part);
    return s;
}

static sft_status sft__cuda_scale_inplace(float *x, int64_t n, float s) {
    if (n == 0) return SFT_OK;
    SFT__LAUNCH(sft__cuda_scale_kernel, sft__cuda_grid(n), SFT__CUDA_BLOCK, 0, x, (const float *)x, s, n);
    return sft__cuda_check("clip_grad_norm", "scale");
}

/* ============================================================================
   === cuda: backend
   Filled by op id, so the table cannot drift from the sft__op order. */

static sft__backend sft__cuda_backend_make(void) {
    sft__backend be;
    memset(&be, 0, sizeof be);
    be.name = "cuda";
    be.forward[SFT__OP_MATMUL] = sft__cuda_matmul_fwd;       be.backward[SFT__OP_MATMUL] = sft__cuda_matmul_bwd;
    be.forward[SFT__OP_ADD] = sft__cuda_add_fwd;             be.backward[SFT__OP_ADD] = sft__cuda_ew_bwd;
    be.forward[SFT__OP_MUL] = sft__cuda_mul_fwd;             be.backward[SFT__OP_MUL] = sft__cuda_ew_bwd;
    be.forward[SFT__OP_SCALE] = sft__cuda_scale_fwd;         be.backward[SFT__OP_SCALE] = sft__cuda_scale_bwd;
    be.forward[SFT__OP_RESHAPE] = sft__cuda_reshape_fwd;     be.backward[SFT__OP_RESHAPE] = sft__cuda_reshape_bwd;
    be.forward[SFT__OP_EMBEDDING] = sft__cuda_embedding_fwd; be.backward[SFT__OP_EMBEDDING] = sft__cuda_embedding_bwd;
    be.forward[SFT__OP_RMSNORM] = sft__cuda_rmsnorm_fwd;     be.backward[SFT__OP_RMSNORM] = sft__cuda_rmsnorm_bwd;
    be.forward[SFT__OP_SILU] = sft__cuda_silu_fwd;           be.backward[SFT__OP_SILU] = sft__cuda_silu_bwd;
    be.forward[SFT__OP_SWIGLU] = sft__cuda_silu_fwd;         be.backward[SFT__OP_SWIGLU] = sft__cuda_silu_bwd;
    be.forward[SFT__OP_ROPE] = sft__cuda_rope_fwd;           be.backward[SFT__OP_ROPE] = sft__cuda_rope_bwd;
    be.forward[SFT__OP_ATTENTION] = sft__cuda_attention_fwd; be.backward[SFT__OP_ATTENTION] = sft__cuda_attention_bwd;
    be.forward[SFT__OP_CROSS_ENTROPY] = sft__cuda_ce_fwd;    be.backward[SFT__OP_CROSS_ENTROPY] = sft__cuda_ce_bwd;
    be.forward[SFT__OP_DROPOUT] = sft__cuda_dropout_fwd;     be.backward[SFT__OP_DROPOUT] = sft__cuda_dropout_bwd;
    be.forward[SFT__OP_LINEAR_CE] = sft__cuda_lce_fwd;       be.backward[SFT__OP_LINEAR_CE] = sft__cuda_lce_bwd;
    be.forward[SFT__OP_LINEAR] = sft__cuda_linear_fwd;       be.backward[SFT__OP_LINEAR] = sft__cuda_linear_bwd;
    be.forward[SFT__OP_PROMPT] = sft__cuda_prompt_fwd;       be.backward[SFT__OP_PROMPT] = sft__cuda_prompt_bwd;
    return be;
}

static const sft__backend *sft__backend_cuda(void) {
    static const sft__backend be = sft__cuda_backend_make();   /* built once; C++ makes this thread-safe */
    return &be;
}

/* ============================================================================
   === cuda: available
   (Declared inside sft.h's extern "C" block, so this definition has C linkage.) */

SFTDEF int sft_cuda_available(void) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {   /* no driver or no device: not an error here */
        (void)cudaGetLastError();
        return 0;
    }
    return count > 0;
}

#endif /* SFT_CUDA_CUH */
