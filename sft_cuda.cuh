/* sft_cuda.cuh - the CUDA backend of sft.h.

   WHAT IT IS
   The device half of sft.h's backend seam. sft.h keeps every operator's checks,
   output allocation, autograd tape and step arenas; for tensors on SFT_CUDA it
   asks this file for memory (sft__cuda_alloc/free/copy/memset0) and for kernels
   (sft__backend_cuda(): one forward and one backward kernel per op, NULL where
   there is none yet, which sft__dispatch reports as SFT_ERR_UNSUPPORTED naming the
   op and "cuda").

   WHAT IS HERE NOW
   The seam itself, end to end: device memory for persistent tensors, gradients
   and the device step arenas; copies host<->device and device<->device; and the
   elementwise kernels, forward and backward:
       add, mul    out[i] = a[i] op b[i % numel(b)]   (b a suffix of a's shape)
       scale       out = x * s
       reshape     forward: nothing (a view); backward: dx += g
   They reproduce sft.h's CPU kernels bit for bit: every product and sum is
   rounded as the CPU rounds it (__fmul_rn/__fadd_rn, which nvcc never contracts
   into an FMA), and the broadcast operand's gradient sums the rows of each column
   in order, one thread per column, so results are deterministic.

   BUILD
   Not a header a user includes: sft.h pulls it into its implementation when that
   is compiled with SFT_CUDA by nvcc. One .cu translation unit does

       #define SFT_IMPLEMENTATION
       #define SFT_CUDA
       #include "sft.h"

   and C programs link against its object (-lcublasLt -lpthread; cudart is linked
   statically by nvcc). `make cuda` builds build/test_cuda from tests/test_cuda.cu
   that way, for sm_80, sm_89 and sm_90a; without a device it reports a skip. Work
   goes to the current CUDA device (cudaSetDevice before creating the context) on
   the default stream, in issue order.

   OPTIONS (define before including sft.h)
       SFT_CUDA_SYNC   synchronise after every kernel, so an asynchronous fault is
                       reported by the op that caused it (slow; for debugging)

   CONTENTS (search for the banner "=== cuda: name")
       errors      one way a CUDA error becomes an sft_status
       memory      alloc, free, copy, memset
       launch      grid sizes and the after-launch check
       elementwise add, mul, scale, reshape: kernels, then the node wrappers
       backend     the table sft__dispatch reads
       available   sft_cuda_available

   LATER
   The model's kernels (matmul through cuBLASLt, fused NF4 dequant + GEMM,
   embedding, RMSNorm, SiLU/SwiGLU, RoPE, attention, cross-entropy, dropout) in
   bf16 with f32 accumulation, each beside a naive reference kernel; device bytes
   in the memory statistics; streams. */

#ifndef SFT_CUDA_CUH
#define SFT_CUDA_CUH

#ifndef SFT__IMPLEMENTED
#  error "sft_cuda.cuh is part of sft.h's implementation: #define SFT_IMPLEMENTATION and SFT_CUDA, then #include \"sft.h\""
#endif

#include <cuda_runtime.h>

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
   === cuda: memory
   Device memory comes straight from cudaMalloc (256-byte aligned, so the arenas'
   64-byte alignment holds). It is not added to the context's sft_mem_stats,
   which count host bytes: the free side has no size to subtract. */

static sft_status sft__cuda_alloc(sft_context *ctx, size_t size, void **out) {
    char what[96];
    cudaError_t err;
    (void)ctx;
    *out = NULL;
    err = cudaMalloc(out, size ? size : 1);   /* size 0: a valid block, as on the CPU */
    if (err == cudaSuccess) return SFT_OK;
    *out = NULL;
    snprintf(what, sizeof what, "cuda: cudaMalloc of %zu bytes", size);
    return sft__cuda_fail(err, what);
}

/* sft__cuda_free: cudaFree waits for the work queued before it; a failure here
   (a device that has gone away) is forgotten, there is no one to tell. */
static void sft__cuda_free(sft_context *ctx, void *ptr) {
    (void)ctx;
    if (ptr && cudaFree(ptr) != cudaSuccess) (void)cudaGetLastError();
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

/* ============================================================================
   === cuda: launch
   Elementwise kernels run 256 threads a block on at most 65535 blocks and walk
   their 64-bit range with a grid-stride loop, so any size fits one launch. An
   empty range launches nothing (a zero grid is an error). */

#define SFT__CUDA_BLOCK    256u
#define SFT__CUDA_MAX_GRID 65535u

static unsigned sft__cuda_grid(int64_t n) {
    int64_t blocks = (n + SFT__CUDA_BLOCK - 1) / SFT__CUDA_BLOCK;
    return blocks > (int64_t)SFT__CUDA_MAX_GRID ? SFT__CUDA_MAX_GRID : (unsigned)blocks;
}

/* sft__cuda_launched: the check after every launch, naming the op and kernel. */
static sft_status sft__cuda_launched(const sft__node *n, const char *kernel) {
    char what[96];
    cudaError_t err = cudaGetLastError();
#ifdef SFT_CUDA_SYNC
    if (err == cudaSuccess) err = cudaDeviceSynchronize();
#endif
    if (err == cudaSuccess) return SFT_OK;
    snprintf(what, sizeof what, "%s: cuda kernel %s", sft__op_names[n->op], kernel);
    return sft__cuda_fail(err, what);
}

/* ============================================================================
   === cuda: elementwise
   The same nodes as the CPU kernels: add/mul in[0] = a, in[1] = b with numel(b)
   dividing numel(a) (suffix broadcast); scale f[0] = s; reshape out is a view of
   in[0]. Gradient buffers are allocated and zeroed by sft.h before a backward
   kernel runs; kernels add into them. */

/* out[i] = a[i] + b[i % nb] */
static __global__ void sft__cuda_add_kernel(float *out, const float *a, const float *b, int64_t n, int64_t nb) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        out[i] = __fadd_rn(a[i], b[i % nb]);
}

/* out[i] = a[i] * b[i % nb] */
static __global__ void sft__cuda_mul_kernel(float *out, const float *a, const float *b, int64_t n, int64_t nb) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        out[i] = __fmul_rn(a[i], b[i % nb]);
}

/* out[i] = x[i] * s */
static __global__ void sft__cuda_scale_kernel(float *out, const float *x, float s, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        out[i] = __fmul_rn(x[i], s);
}

/* dst[i] += g[i]: add's full-size gradient, reshape's gradient */
static __global__ void sft__cuda_acc_kernel(float *dst, const float *g, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = __fadd_rn(dst[i], g[i]);
}

/* dst[i] += g[i] * y[i % ny]: mul's full-size gradient */
static __global__ void sft__cuda_acc_mul_kernel(float *dst, const float *g, const float *y, int64_t n, int64_t ny) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = __fadd_rn(dst[i], __fmul_rn(g[i], y[i % ny]));
}

/* dst[i] += g[i] * s: scale's gradient */
static __global__ void sft__cuda_acc_scaled_kernel(float *dst, const float *g, float s, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = __fadd_rn(dst[i], __fmul_rn(g[i], s));
}

/* db[c] += sum over rows r, in order, of g[r*nb + c] (x NULL: add) or
   g[r*nb + c] * x[r*nb + c] (mul): the broadcast operand's gradient. One thread
   owns a column, so the order of the sum is fixed. Adjacent threads read
   adjacent columns of a row, so the loads coalesce. */
static __global__ void sft__cuda_colsum_kernel(float *db, const float *g, const float *x, int64_t rows, int64_t nb) {
    for (int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; c < nb; c += (int64_t)gridDim.x * blockDim.x) {
        float acc = 0.0f;
        for (int64_t r = 0; r < rows; r++)
            acc = __fadd_rn(acc, x ? __fmul_rn(g[r * nb + c], x[r * nb + c]) : g[r * nb + c]);
        db[c] = __fadd_rn(db[c], acc);
    }
}

static sft_status sft__cuda_add_fwd(sft_context *ctx, sft__node *n) {
    int64_t count = sft_tensor_numel(n->out);
    (void)ctx;
    if (count == 0) return SFT_OK;
    sft__cuda_add_kernel<<<sft__cuda_grid(count), SFT__CUDA_BLOCK>>>(SFT__F(n->out), SFT__CF(n->in[0]), SFT__CF(n->in[1]),
                                                                     count, sft_tensor_numel(n->in[1]));
    return sft__cuda_launched(n, "add");
}

static sft_status sft__cuda_mul_fwd(sft_context *ctx, sft__node *n) {
    int64_t count = sft_tensor_numel(n->out);
    (void)ctx;
    if (count == 0) return SFT_OK;
    sft__cuda_mul_kernel<<<sft__cuda_grid(count), SFT__CUDA_BLOCK>>>(SFT__F(n->out), SFT__CF(n->in[0]), SFT__CF(n->in[1]),
                                                                     count, sft_tensor_numel(n->in[1]));
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
        if (is_add) sft__cuda_acc_kernel<<<sft__cuda_grid(count), SFT__CUDA_BLOCK>>>(SFT__F(n->in[0]->grad), g, count);
        else
            sft__cuda_acc_mul_kernel<<<sft__cuda_grid(count), SFT__CUDA_BLOCK>>>(SFT__F(n->in[0]->grad), g, SFT__CF(n->in[1]),
                                                                                 count, nb);
        SFT__TRY(sft__cuda_launched(n, is_add ? "acc" : "acc_mul"));
    }
    if (n->in[1]->requires_grad && nb > 0) {
        sft__cuda_colsum_kernel<<<sft__cuda_grid(nb), SFT__CUDA_BLOCK>>>(SFT__F(n->in[1]->grad), g,
                                                                         is_add ? NULL : SFT__CF(n->in[0]), count / nb, nb);
        SFT__TRY(sft__cuda_launched(n, "colsum"));
    }
    return SFT_OK;
}

static sft_status sft__cuda_scale_fwd(sft_context *ctx, sft__node *n) {
    int64_t count = sft_tensor_numel(n->out);
    (void)ctx;
    if (count == 0) return SFT_OK;
    sft__cuda_scale_kernel<<<sft__cuda_grid(count), SFT__CUDA_BLOCK>>>(SFT__F(n->out), SFT__CF(n->in[0]), n->f[0], count);
    return sft__cuda_launched(n, "scale");
}

static sft_status sft__cuda_scale_bwd(sft_context *ctx, sft__node *n) {
    int64_t count = sft_tensor_numel(n->out);
    (void)ctx;
    if (count == 0) return SFT_OK;
    sft__cuda_acc_scaled_kernel<<<sft__cuda_grid(count), SFT__CUDA_BLOCK>>>(SFT__F(n->in[0]->grad), SFT__CF(n->out->grad),
                                                                            n->f[0], count);
    return sft__cuda_launched(n, "acc_scaled");
}

/* reshape: the output is a view of the input; the gradient passes through in
   the same element order. */
static sft_status sft__cuda_reshape_fwd(sft_context *ctx, sft__node *n) { (void)ctx; (void)n; return SFT_OK; }

static sft_status sft__cuda_reshape_bwd(sft_context *ctx, sft__node *n) {
    int64_t count = sft_tensor_numel(n->out);
    (void)ctx;
    if (count == 0) return SFT_OK;
    sft__cuda_acc_kernel<<<sft__cuda_grid(count), SFT__CUDA_BLOCK>>>(SFT__F(n->in[0]->grad), SFT__CF(n->out->grad), count);
    return sft__cuda_launched(n, "acc");
}

/* ============================================================================
   === cuda: backend
   Filled by op id, so the table cannot drift from the sft__op order; every op
   not listed stays NULL ("the cuda backend has no ... kernel yet"). */

static sft__backend sft__cuda_backend_make(void) {
    sft__backend be;
    memset(&be, 0, sizeof be);
    be.name = "cuda";
    be.forward[SFT__OP_ADD] = sft__cuda_add_fwd;         be.backward[SFT__OP_ADD] = sft__cuda_ew_bwd;
    be.forward[SFT__OP_MUL] = sft__cuda_mul_fwd;         be.backward[SFT__OP_MUL] = sft__cuda_ew_bwd;
    be.forward[SFT__OP_SCALE] = sft__cuda_scale_fwd;     be.backward[SFT__OP_SCALE] = sft__cuda_scale_bwd;
    be.forward[SFT__OP_RESHAPE] = sft__cuda_reshape_fwd; be.backward[SFT__OP_RESHAPE] = sft__cuda_reshape_bwd;
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
