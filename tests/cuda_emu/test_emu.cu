/* test_emu.cu - the emulator's own tests: what tests/cuda_emu/cuda_emu.h
   promises, checked against plain C models.

     make cuda-emu      builds it with g++ (-DCUDA_EMU) and runs it first
     build/test_emu [substring]

   Collectives, barriers, the tensor-core model (mma bf16 and f16, ldmatrix,
   cp.async) and the f16 conversions are compared with C code
   that computes what the CUDA documentation says they return; the checks the
   emulator makes (a barrier in divergent code, a shuffle with an exited lane,
   a host pointer given to a kernel, a host read of device memory, a cp.async
   never waited for, a copy past an allocation, an injected cudaMalloc failure) each run in a child process
   that must stop (or fail) with the expected message. */
#include <cuda_runtime.h>
#include <signal.h>
#include <sys/wait.h>
#include <vector>

static int passed, failed, cur_failed;
static const char *filter;

#define EXPECT(cond, ...) do { if (!(cond)) { if (!cur_failed) printf("FAIL\n"); cur_failed = 1; \
    printf("    %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

static void run(const char *name, void (*fn)(void)) {
    if (filter && !strstr(name, filter)) return;
    printf("  %-70s ", name);
    fflush(stdout);
    cur_failed = 0;
    fn();
    if (cur_failed) failed++;
    else { passed++; printf("ok\n"); }
}
#define RUN(fn) run(#fn, fn)

template <class T> static T *to_dev(const std::vector<T> &h) {
    T *d = nullptr;
    if (cudaMalloc((void **)&d, h.size() * sizeof(T) + 1) != cudaSuccess) abort();
    cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice);
    return d;
}
template <class T> static std::vector<T> to_host(const T *d, size_t n) {
    std::vector<T> h(n);
    cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost);
    return h;
}

/* ---------------------------------------------------------------------------
   Warp collectives: every lane's result against the documented rule. */

static __global__ void shuffles_kernel(int *out, int width, int delta) {
    int lane = threadIdx.x, v = 100 + lane * 7;
    out[0 * 32 + lane] = __shfl_sync(0xffffffffu, v, delta, width);
    out[1 * 32 + lane] = __shfl_up_sync(0xffffffffu, v, delta, width);
    out[2 * 32 + lane] = __shfl_down_sync(0xffffffffu, v, delta, width);
    out[3 * 32 + lane] = __shfl_xor_sync(0xffffffffu, v, delta, width);
    out[4 * 32 + lane] = (int)__ballot_sync(0xffffffffu, lane % 3 == 0);
    out[5 * 32 + lane] = __any_sync(0xffffffffu, lane == delta);
    out[6 * 32 + lane] = __all_sync(0xffffffffu, lane < 31);
    out[7 * 32 + lane] = (int)__reduce_add_sync(0xffffffffu, (unsigned)v);
    out[8 * 32 + lane] = __reduce_min_sync(0xffffffffu, v - 200);
    out[9 * 32 + lane] = __reduce_max_sync(0xffffffffu, v - 200);
}

static void warp_collectives_follow_the_documented_rules(void) {
    static const int widths[3] = {32, 8, 4};
    for (int wi = 0; wi < 3; wi++) {
        int w = widths[wi], delta = 3 % w;
        int *d = to_dev(std::vector<int>(10 * 32, 0));
        cuda_emu::launch(shuffles_kernel, dim3(1), dim3(32), 0, 0, d, w, delta);
        std::vector<int> got = to_host(d, 10 * 32);
        unsigned ballot = 0;
        int sum = 0;
        for (int l = 0; l < 32; l++) { ballot |= (l % 3 == 0) ? 1u << l : 0; sum += 100 + l * 7; }
        for (int l = 0; l < 32; l++) {
            int base = l / w * w, v = 100 + l * 7;
            int idx = base + delta % w, up = l % w >= delta ? l - delta : l, down = l % w + delta < w ? l + delta : l;
            int x = l ^ delta;
            if (x / w != l / w) x = l;
            EXPECT(got[0 * 32 + l] == 100 + idx * 7, "width %d lane %d: __shfl_sync got %d", w, l, got[l]);
            EXPECT(got[1 * 32 + l] == 100 + up * 7, "width %d lane %d: __shfl_up_sync got %d", w, l, got[32 + l]);
            EXPECT(got[2 * 32 + l] == 100 + down * 7, "width %d lane %d: __shfl_down_sync got %d", w, l, got[64 + l]);
            EXPECT(got[3 * 32 + l] == 100 + x * 7, "width %d lane %d: __shfl_xor_sync got %d", w, l, got[96 + l]);
            EXPECT((unsigned)got[4 * 32 + l] == ballot, "lane %d: ballot %08x", l, (unsigned)got[128 + l]);
            EXPECT(got[5 * 32 + l] == 1 && got[6 * 32 + l] == 0, "lane %d: any %d all %d", l, got[160 + l], got[192 + l]);
            EXPECT(got[7 * 32 + l] == sum, "lane %d: reduce_add %d want %d", l, got[224 + l], sum);
            EXPECT(got[8 * 32 + l] == -100 && got[9 * 32 + l] == 100 + 31 * 7 - 200, "lane %d: reduce min %d max %d", l,
                   got[256 + l], got[288 + l]);
            (void)v;
        }
        cudaFree(d);
    }
}

/* ---------------------------------------------------------------------------
   Block barriers: __syncthreads_count/and/or, and shared memory across them. */

static __global__ void barrier_kernel(int *out) {
    __shared__ int s[96];
    int t = threadIdx.x;
    s[t] = t * t;
    int c = __syncthreads_count(t % 5 == 0), a = __syncthreads_and(t < 96), o = __syncthreads_or(t == 95);
    out[t] = s[95 - t] + 1000 * c + 100000 * a + 1000000 * o;
}

static void block_barriers_count_and_or_and_share_memory(void) {
    int *d = to_dev(std::vector<int>(96, 0));
    cuda_emu::launch(barrier_kernel, dim3(1), dim3(96), 0, 0, d);
    std::vector<int> got = to_host(d, 96);
    for (int t = 0; t < 96; t++)
        EXPECT(got[t] == (95 - t) * (95 - t) + 1000 * 20 + 100000 + 1000000, "thread %d got %d", t, got[t]);
    cudaFree(d);
}

/* ---------------------------------------------------------------------------
   The tensor-core model: D = A B + C on one 16x8x16 tile, fragments placed as
   the PTX ISA lays them out for mma.m16n8k16 (groupID = lane / 4, tig = lane % 4). */

static __device__ unsigned pack2(float lo, float hi) {
    return (unsigned)__bfloat16_as_ushort(__float2bfloat16_rn(lo)) | ((unsigned)__bfloat16_as_ushort(__float2bfloat16_rn(hi)) << 16);
}

static __global__ void mma_kernel(float *D, const float *A, const float *B, const float *C) {
    int lane = threadIdx.x, gid = lane >> 2, tig = lane & 3;
    uint32_t a[4], b[2];
    float c[4], d[4];
    for (int r = 0; r < 4; r++) {   /* a register holds (row, 2 tig + 8 (r >> 1)) and the next column */
        int row = gid + 8 * (r & 1), col = 2 * tig + 8 * (r >> 1);
        a[r] = pack2(A[row * 16 + col], A[row * 16 + col + 1]);
    }
    for (int r = 0; r < 2; r++) {   /* b: rows (k) 2 tig + 8 r and the next, column (n) gid */
        int k = 2 * tig + 8 * r;
        b[r] = pack2(B[k * 8 + gid], B[(k + 1) * 8 + gid]);
    }
    for (int i = 0; i < 4; i++) c[i] = C[(gid + 8 * (i >> 1)) * 8 + 2 * tig + (i & 1)];
    cuda_emu::mma_m16n8k16_bf16(d, a, b, c, __FILE__, __LINE__);
    for (int i = 0; i < 4; i++) D[(gid + 8 * (i >> 1)) * 8 + 2 * tig + (i & 1)] = d[i];
}

static void mma_model_computes_the_tile_from_ptx_fragments(void) {
    std::vector<float> A(256), B(128), C(128);
    uint64_t s = 7;
    for (auto *v : {&A, &B, &C})
        for (auto &x : *v) { s = s * 6364136223846793005ull + 1442695040888963407ull; x = (float)((int)(s >> 40) % 255 - 127) / 16.0f; }
    float *dA = to_dev(A), *dB = to_dev(B), *dC = to_dev(C), *dD = to_dev(std::vector<float>(128, 0.0f));
    cuda_emu::launch(mma_kernel, dim3(1), dim3(32), 0, 0, dD, (const float *)dA, (const float *)dB, (const float *)dC);
    std::vector<float> got = to_host(dD, 128);
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 8; c++) {
            float acc = C[r * 8 + c];   /* k/16 with |k| < 128 is exact in bf16, and these sums in f32 */
            for (int k = 0; k < 16; k++) acc += A[r * 16 + k] * B[k * 8 + c];
            EXPECT(got[r * 8 + c] == acc, "D[%d][%d] = %g, want %g", r, c, got[r * 8 + c], acc);
        }
    cudaFree(dA); cudaFree(dB); cudaFree(dC); cudaFree(dD);
}

/* the same tile with f16 operands (k/16 with |k| < 128 is exact in f16 too) */
static __device__ unsigned pack2h(float lo, float hi) {
    return (unsigned)__half_as_ushort(__float2half_rn(lo)) | ((unsigned)__half_as_ushort(__float2half_rn(hi)) << 16);
}

static __global__ void mma_f16_kernel(float *D, const float *A, const float *B, const float *C) {
    int lane = threadIdx.x, gid = lane >> 2, tig = lane & 3;
    uint32_t a[4], b[2];
    float c[4], d[4];
    for (int r = 0; r < 4; r++) {
        int row = gid + 8 * (r & 1), col = 2 * tig + 8 * (r >> 1);
        a[r] = pack2h(A[row * 16 + col], A[row * 16 + col + 1]);
    }
    for (int r = 0; r < 2; r++) {
        int k = 2 * tig + 8 * r;
        b[r] = pack2h(B[k * 8 + gid], B[(k + 1) * 8 + gid]);
    }
    for (int i = 0; i < 4; i++) c[i] = C[(gid + 8 * (i >> 1)) * 8 + 2 * tig + (i & 1)];
    cuda_emu::mma_m16n8k16_f16(d, a, b, c, __FILE__, __LINE__);
    for (int i = 0; i < 4; i++) D[(gid + 8 * (i >> 1)) * 8 + 2 * tig + (i & 1)] = d[i];
}

static void mma_f16_model_computes_the_tile_from_ptx_fragments(void) {
    std::vector<float> A(256), B(128), C(128);
    uint64_t s = 11;
    for (auto *v : {&A, &B, &C})
        for (auto &x : *v) { s = s * 6364136223846793005ull + 1442695040888963407ull; x = (float)((int)(s >> 40) % 255 - 127) / 16.0f; }
    float *dA = to_dev(A), *dB = to_dev(B), *dC = to_dev(C), *dD = to_dev(std::vector<float>(128, 0.0f));
    cuda_emu::launch(mma_f16_kernel, dim3(1), dim3(32), 0, 0, dD, (const float *)dA, (const float *)dB, (const float *)dC);
    std::vector<float> got = to_host(dD, 128);
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 8; c++) {
            float acc = C[r * 8 + c];
            for (int k = 0; k < 16; k++) acc += A[r * 16 + k] * B[k * 8 + c];
            EXPECT(got[r * 8 + c] == acc, "D[%d][%d] = %g, want %g", r, c, got[r * 8 + c], acc);
        }
    cudaFree(dA); cudaFree(dB); cudaFree(dC); cudaFree(dD);
}

/* f16 conversions: every finite half survives float and back; the midpoint of
   two neighbours goes to the even one; 65520 and beyond become inf. */
static void f16_conversions_round_to_nearest_even(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000u; h++) {
        if ((h & 0x7c00u) == 0x7c00u) continue;   /* inf and NaN */
        float f = __half2float(__ushort_as_half((unsigned short)h));
        if (__half_as_ushort(__float2half_rn(f)) != h && bad++ < 3) EXPECT(0, "half 0x%04x -> %g -> 0x%04x", h, f, __half_as_ushort(__float2half_rn(f)));
        if ((h & 0x7fffu) < 0x7bffu) {   /* the midpoint to the next half up (in magnitude) */
            float g = __half2float(__ushort_as_half((unsigned short)(h + 1))), mid = (float)(((double)f + (double)g) / 2.0);
            uint32_t want = (h & 1u) ? h + 1 : h;
            if (__half_as_ushort(__float2half_rn(mid)) != want && bad++ < 3)
                EXPECT(0, "midpoint %g of 0x%04x and 0x%04x -> 0x%04x, want 0x%04x", mid, h, h + 1, __half_as_ushort(__float2half_rn(mid)), want);
        }
    }
    EXPECT(__half_as_ushort(__float2half_rn(65519.0f)) == 0x7bffu, "65519 -> 0x%04x", __half_as_ushort(__float2half_rn(65519.0f)));
    EXPECT(__half_as_ushort(__float2half_rn(65520.0f)) == 0x7c00u, "65520 -> 0x%04x", __half_as_ushort(__float2half_rn(65520.0f)));
    EXPECT(__half_as_ushort(__float2half_rn(-1e30f)) == 0xfc00u, "-1e30 -> 0x%04x", __half_as_ushort(__float2half_rn(-1e30f)));
    EXPECT(__half2float(__float2half_rn(NAN)) != __half2float(__float2half_rn(NAN)), "NaN stays NaN");
    EXPECT(bad == 0, "%d conversions wrong", bad);
}

/* ---------------------------------------------------------------------------
   ldmatrix: a 32 x 8 table of 16-bit values in shared memory; lane l supplies
   the address of table row perm(l) (any order is allowed); each register of
   each lane is compared with the documented rule. */

static __global__ void ldmatrix_kernel(uint32_t *out, const uint16_t *table, int num, int trans) {
    __shared__ __align__(16) uint16_t sh[32 * 8];
    int lane = threadIdx.x;
    for (int i = 0; i < 8; i++) sh[lane * 8 + i] = table[lane * 8 + i];
    __syncwarp();
    uint32_t r[4] = {0, 0, 0, 0};
    cuda_emu::ldmatrix(r, &sh[((lane * 13 + 5) % 32) * 8], num, trans, __FILE__, __LINE__);
    for (int i = 0; i < 4; i++) out[lane * 4 + i] = r[i];
}

static void ldmatrix_fills_registers_as_documented(void) {
    std::vector<uint16_t> table(256);
    for (int i = 0; i < 256; i++) table[i] = (uint16_t)(1000 + i * 7);
    uint16_t *dt = to_dev(table);
    for (int num = 1; num <= 4; num *= 2)
        for (int trans = 0; trans < 2; trans++) {
            uint32_t *d = to_dev(std::vector<uint32_t>(128, 0));
            cuda_emu::launch(ldmatrix_kernel, dim3(1), dim3(32), 0, 0, d, (const uint16_t *)dt, num, trans);
            std::vector<uint32_t> got = to_host(d, 128);
            for (int l = 0; l < 32; l++)
                for (int i = 0; i < num; i++) {
                    /* matrix i, row j: the table row lane 8 i + j pointed at */
                    auto at = [&](int row, int col) { return (uint32_t)table[(size_t)((((8 * i + row) * 13 + 5) % 32) * 8 + col)]; };
                    int r = l / 4, c = 2 * (l % 4);
                    uint32_t want = trans ? at(c, r) | (at(c + 1, r) << 16) : at(r, c) | (at(r, c + 1) << 16);
                    EXPECT(got[(size_t)(l * 4 + i)] == want, "x%d%s lane %d register %d: 0x%08x, want 0x%08x", num, trans ? ".trans" : "", l, i,
                           got[(size_t)(l * 4 + i)], want);
                }
            cudaFree(d);
        }
    cudaFree(dt);
}

/* ---------------------------------------------------------------------------
   cp.async: copies land at the wait, not before; wait_group(1) leaves the
   newest group pending; a short src-size zero-fills the rest. */

static __global__ void cp_async_kernel(float *out, const float *src) {
    float *sh = cuda_emu::dyn_shared<float>();   /* 3 x 32 x 4 floats of dynamic shared memory, 0xFF bytes (NaN) at the start */
    int t = threadIdx.x;
    cuda_emu::cp_async(&sh[t * 4], &src[t * 4], 16, 16, __FILE__, __LINE__);           /* group 0 */
    cuda_emu::cp_async_commit();
    cuda_emu::cp_async(&sh[128 + t * 4], &src[128 + t * 4], 16, 16, __FILE__, __LINE__); /* group 1 */
    cuda_emu::cp_async_commit();
    cuda_emu::cp_async(&sh[256 + t * 4], &src[256 + t * 4], 16, 8, __FILE__, __LINE__);  /* 8 bytes, then zeros */
    out[t] = sh[t * 4];                  /* before any wait: still the fill */
    cuda_emu::cp_async_wait(1);          /* group 0 done; group 1 and the open copy pending */
    out[32 + t] = sh[t * 4];
    out[64 + t] = sh[128 + t * 4];
    cuda_emu::cp_async_wait_all();
    out[96 + t] = sh[128 + t * 4];
    out[128 + t] = sh[256 + t * 4 + 1];
    out[160 + t] = sh[256 + t * 4 + 2];
}

static void cp_async_copies_land_at_the_wait(void) {
    std::vector<float> src(384);
    for (int i = 0; i < 384; i++) src[i] = (float)(i + 1);
    float *ds = to_dev(src), *d = to_dev(std::vector<float>(192, 0.0f));
    cuda_emu::launch(cp_async_kernel, dim3(1), dim3(32), 384 * sizeof(float), 0, d, (const float *)ds);
    std::vector<float> got = to_host(d, 192);
    for (int t = 0; t < 32; t++) {
        EXPECT(got[(size_t)t] != got[(size_t)t], "lane %d: read before the wait saw %g (want the NaN fill)", t, got[(size_t)t]);
        EXPECT(got[(size_t)(32 + t)] == src[(size_t)(t * 4)], "lane %d: group 0 after wait_group 1: %g", t, got[(size_t)(32 + t)]);
        EXPECT(got[(size_t)(64 + t)] != got[(size_t)(64 + t)], "lane %d: group 1 landed before its wait (%g)", t, got[(size_t)(64 + t)]);
        EXPECT(got[(size_t)(96 + t)] == src[(size_t)(128 + t * 4)], "lane %d: group 1 after wait_all: %g", t, got[(size_t)(96 + t)]);
        EXPECT(got[(size_t)(128 + t)] == src[(size_t)(256 + t * 4 + 1)], "lane %d: src-size 8, second float %g", t, got[(size_t)(128 + t)]);
        EXPECT(got[(size_t)(160 + t)] == 0.0f, "lane %d: src-size 8, third float %g (want 0)", t, got[(size_t)(160 + t)]);
    }
    cudaFree(ds); cudaFree(d);
}

/* ---------------------------------------------------------------------------
   Schedules: a kernel that reads another warp's shared value without a
   barrier gives different results under the forward and reverse schedules;
   with the barrier, the same. */

static __global__ void neighbour_kernel(int *out, int barrier) {
    __shared__ int s[64];
    s[threadIdx.x] = (int)threadIdx.x + 1;
    if (barrier) __syncthreads();
    out[threadIdx.x] = s[(threadIdx.x + 32) % 64];
    __syncthreads();
    s[threadIdx.x] = 0;         /* the next launch starts from zeros again */
}

static std::vector<int> neighbours_under(int schedule, int barrier) {
    int *d = to_dev(std::vector<int>(64, 0));
    int saved = cuda_emu::g.schedule;
    cuda_emu::g.schedule = schedule;
    cuda_emu::launch(neighbour_kernel, dim3(1), dim3(64), 0, 0, d, barrier);
    cuda_emu::g.schedule = saved;
    std::vector<int> got = to_host(d, 64);
    cudaFree(d);
    return got;
}

static void a_missing_barrier_changes_results_between_schedules(void) {
    std::vector<int> f = neighbours_under(cuda_emu::SCHED_FORWARD, 0), r = neighbours_under(cuda_emu::SCHED_REVERSE, 0);
    std::vector<int> fb = neighbours_under(cuda_emu::SCHED_FORWARD, 1), rb = neighbours_under(cuda_emu::SCHED_REVERSE, 1);
    EXPECT(f != r, "the racy kernel gave one result under both schedules");
    EXPECT(fb == rb, "the kernel with its barrier differs between schedules");
    for (int t = 0; t < 64; t++) EXPECT(fb[t] == (t + 32) % 64 + 1, "thread %d read %d", t, fb[t]);
}

/* ---------------------------------------------------------------------------
   Memory: accounting, capacity, injected failures, range checks. */

static void device_memory_is_counted_and_failures_can_be_injected(void) {
    size_t before = cuda_emu::bytes_in_use(), n_before = cuda_emu::allocations(), free_b = 0, total = 0;
    void *a = nullptr, *b = nullptr, *c = (void *)1;
    EXPECT(cudaMalloc(&a, 1000) == cudaSuccess, "cudaMalloc(1000)");
    EXPECT(cuda_emu::bytes_in_use() == before + 1000 && cuda_emu::allocations() == n_before + 1, "accounting");
    EXPECT((uintptr_t)a % 256 == 0, "alignment");
    cudaMemGetInfo(&free_b, &total);
    EXPECT(total == cuda_emu::capacity() && free_b == total - cuda_emu::bytes_in_use(), "cudaMemGetInfo");
    cuda_emu::fail_malloc_after(1);
    EXPECT(cudaMalloc(&b, 10) == cudaSuccess, "the first cudaMalloc after fail_malloc_after(1) succeeds");
    EXPECT(cudaMalloc(&c, 10) == cudaErrorMemoryAllocation && c == nullptr, "the second fails");
    EXPECT(cudaGetLastError() == cudaErrorMemoryAllocation && cudaGetLastError() == cudaSuccess, "reported once");
    EXPECT(cudaMalloc(&c, total) == cudaErrorMemoryAllocation, "more than the device holds");
    (void)cudaGetLastError();
    std::vector<char> host(2000, 1);
    EXPECT(cudaMemcpy(a, host.data(), 1001, cudaMemcpyHostToDevice) == cudaErrorInvalidValue, "a copy past the end");
    EXPECT(cudaMemcpy(host.data(), a, 10, cudaMemcpyHostToDevice) == cudaErrorInvalidValue, "a copy of the wrong kind");
    EXPECT(cudaMemset((char *)a + 1, 0, 1000) == cudaErrorInvalidValue, "a memset past the end");
    (void)cudaGetLastError();
    EXPECT(cudaMemcpy(host.data(), a, 8, cudaMemcpyDeviceToHost) == cudaSuccess && (unsigned char)host[0] == 0xff,
           "fresh device memory reads as 0xFF bytes");
    EXPECT(cudaFree(a) == cudaSuccess && cudaFree(b) == cudaSuccess, "cudaFree");
    EXPECT(cudaFree((char *)a + 8) == cudaErrorInvalidValue, "cudaFree of a pointer it did not return");
    (void)cudaGetLastError();
    EXPECT(cuda_emu::bytes_in_use() == before && cuda_emu::allocations() == n_before, "all freed");
}

/* ---------------------------------------------------------------------------
   What the emulator stops on. Each case runs in a child; its stderr must name
   the problem. */

static __global__ void divergent_barrier_kernel(float *x) {
    __shared__ float s[64];
    s[threadIdx.x] = x[threadIdx.x];
    if (threadIdx.x < 32) __syncthreads();
    else __syncthreads();       /* a different barrier: undefined on a GPU */
    x[threadIdx.x] = s[63 - threadIdx.x];
}

static __global__ void early_exit_kernel(float *x, int n) {
    __shared__ float s[64];
    if ((int)threadIdx.x >= n) return;
    s[threadIdx.x] = x[threadIdx.x];
    __syncthreads();
    x[threadIdx.x] = s[n - 1 - threadIdx.x];
}

static __global__ void shuffle_after_exit_kernel(float *x, int n) {
    if ((int)threadIdx.x >= n) return;
    x[threadIdx.x] += __shfl_xor_sync(0xffffffffu, x[threadIdx.x], 1);
}

static __global__ void copy_kernel(float *dst, const float *src) { dst[threadIdx.x] = src[threadIdx.x]; }

static __global__ void unwaited_cp_async_kernel(const float *src) {
    __shared__ __align__(16) float sh[32 * 4];
    cuda_emu::cp_async(&sh[threadIdx.x * 4], &src[threadIdx.x * 4], 16, 16, __FILE__, __LINE__);
}

static void bug(int which) {
    float *d = nullptr, host[64] = {0};
    cudaMalloc((void **)&d, sizeof host);
    switch (which) {
    case 0: cuda_emu::launch(divergent_barrier_kernel, dim3(1), dim3(64), 0, 0, d); break;
    case 1: cuda_emu::launch(early_exit_kernel, dim3(1), dim3(64), 0, 0, d, 40); break;
    case 2: cuda_emu::launch(shuffle_after_exit_kernel, dim3(1), dim3(32), 0, 0, d, 20); break;
    case 3: cuda_emu::launch(copy_kernel, dim3(1), dim3(64), 0, 0, d, (const float *)host); break;
    case 4: fprintf(stderr, "read %g\n", (double)d[3]); break;   /* a host read of device memory */
    case 5: cuda_emu::launch(unwaited_cp_async_kernel, dim3(1), dim3(16), 0, 0, (const float *)d); break;
    case 6: cuda_emu::launch(copy_kernel, dim3(1), dim3(65), 0, 0, d, (const float *)d); break;   /* one past the end */
    }
    _exit(0);
}

static void bugs_stop_with_a_message_naming_them(void) {
    static const char *const want[7] = {"different __syncthreads", "had exited", "can never join", "not device memory", "signal 11",
                                        "never waited for", "use-after-poison"};   /* ASan's word for a poisoned gap */
#ifdef CUDA_EMU_ASAN
    const int cases = 7;   /* an overrun needs AddressSanitizer to be seen */
#else
    const int cases = 6;
#endif
    for (int which = 0; which < cases; which++) {
        int fd[2], status = 0;
        char buf[4096];
        ssize_t n, len = 0;
        if (pipe(fd) != 0) { EXPECT(0, "pipe"); return; }
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            dup2(fd[1], 2);
            close(fd[0]);
            bug(which);
        }
        close(fd[1]);
        for (;;) {   /* all of it: a child left writing into a closed pipe would die of SIGPIPE instead */
            char rest[4096];
            if ((size_t)len < sizeof buf - 1) n = read(fd[0], buf + len, sizeof buf - 1 - (size_t)len);
            else n = read(fd[0], rest, sizeof rest);
            if (n <= 0) break;
            if ((size_t)len < sizeof buf - 1) len += n;
        }
        buf[len] = 0;
        close(fd[0]);
        waitpid(pid, &status, 0);
        if (which == 4) snprintf(buf + len, sizeof buf - (size_t)len, "%s", WIFSIGNALED(status) ? (WTERMSIG(status) == SIGSEGV ? " signal 11" : " other signal") : "");
        if (which == 4 && strstr(buf, "AddressSanitizer: SEGV")) continue;   /* ASan reports the fault itself */
        /* stopped: by a signal, or by AddressSanitizer's exit status 1 after its report */
        EXPECT(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0), "bug %d: the child was not stopped (status %d); "
               "stderr: %s", which, status, buf);
        EXPECT(strstr(buf, want[which]) != nullptr, "bug %d: stderr does not say \"%s\": %s", which, want[which], buf);
    }
}

int main(int argc, char **argv) {
    if (argc > 1) filter = argv[1];
    printf("cuda_emu\n");
    RUN(warp_collectives_follow_the_documented_rules);
    RUN(block_barriers_count_and_or_and_share_memory);
    RUN(mma_model_computes_the_tile_from_ptx_fragments);
    RUN(mma_f16_model_computes_the_tile_from_ptx_fragments);
    RUN(f16_conversions_round_to_nearest_even);
    RUN(ldmatrix_fills_registers_as_documented);
    RUN(cp_async_copies_land_at_the_wait);
    RUN(a_missing_barrier_changes_results_between_schedules);
    RUN(device_memory_is_counted_and_failures_can_be_injected);
    RUN(bugs_stop_with_a_message_naming_them);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
