/*
 * The health kernels gpu-agent runs at the standard check level (health.c).
 * nvcc compiles this file into one fatbin (sm_80, sm_90 and compute_90 PTX)
 * embedded in the agent as gr_fatbin_health_kernels; health.c loads it with
 * cuModuleLoadData and finds each kernel by its extern "C" name.
 *
 *   gr_hk_fill       a buffer of 16-byte words from a seeded hash of the index
 *   gr_hk_copy       streaming copy, 16-byte loads and stores, four in flight
 *                    per thread: device-memory bandwidth (bytes read + written)
 *   gr_hk_verify     counts the 32-bit words that differ from gr_hk_fill's
 *                    pattern: the copy moved every bit right
 *   gr_hk_fma        FP32 FMA throughput: 16 independent chains per thread,
 *                    128 FMAs per loop trip, the sums written out
 *   gr_hk_repeat     a deterministic integer + IEEE float (round-to-nearest,
 *                    fused multiply-add, no contraction) function per element,
 *                    which the host recomputes bit for bit (health.c)
 *   gr_hk_gemm_fill  FP16 matrices of values in {-1, -0.5, 0, 0.5, 1}: every
 *                    product and partial sum of the GEMM is exact in FP32
 *   gr_hk_gemm       tensor-core GEMM (WMMA 16x16x16, FP16 in, FP32 out),
 *                    128x128 block tiles, 32-deep K slices double-buffered in
 *                    shared memory; C = A * B with A row-major M x K and B
 *                    given as Bt, row-major N x K (B column-major)
 *
 * The hash functions below are mirrored in health.c (hk_mix32 and friends);
 * change both or neither.
 */
#include <cuda_fp16.h>
#include <mma.h>
#include <stdint.h>

namespace {

/* A 32-bit integer mix (the "lowbias32" finaliser). */
__device__ __forceinline__ uint32_t mix32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

/* The pattern word k (0..3) of 16-byte word i. */
__device__ __forceinline__ uint32_t pattern(unsigned long long i, unsigned int k, uint32_t seed)
{
    uint32_t lo = (uint32_t)i, hi = (uint32_t)(i >> 32);
    return mix32((lo * 4u + k) ^ mix32(hi ^ seed) ^ seed);
}

__device__ __forceinline__ unsigned long long global_index()
{
    return (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
}

__device__ __forceinline__ unsigned long long grid_stride()
{
    return (unsigned long long)gridDim.x * blockDim.x;
}

/* Sums v over the warp; lane 0 adds it to *counter. Called by every lane. */
__device__ __forceinline__ void warp_add(unsigned long long *counter, unsigned int v)
{
    for (int off = 16; off > 0; off >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, off);
    if ((threadIdx.x & 31) == 0 && v != 0)
        atomicAdd(counter, (unsigned long long)v);
}

/* The GEMM's input value at flat index idx: (h % 5 - 2) / 2. */
__device__ __forceinline__ float gemm_value(uint32_t idx, uint32_t seed)
{
    int v = (int)(mix32(idx ^ seed) % 5u) - 2;
    return (float)v * 0.5f;
}

} // namespace

extern "C" {

__global__ void __launch_bounds__(256) gr_hk_fill(uint4 *dst, unsigned long long n, unsigned int seed)
{
    for (unsigned long long i = global_index(); i < n; i += grid_stride())
        dst[i] = make_uint4(pattern(i, 0, seed), pattern(i, 1, seed), pattern(i, 2, seed),
                            pattern(i, 3, seed));
}

__global__ void __launch_bounds__(256)
    gr_hk_copy(const uint4 *__restrict__ src, uint4 *__restrict__ dst, unsigned long long n)
{
    const unsigned long long stride = grid_stride();
    unsigned long long i = global_index();

    for (; i + 3 * stride < n; i += 4 * stride) {
        uint4 a = __ldcs(src + i);
        uint4 b = __ldcs(src + i + stride);
        uint4 c = __ldcs(src + i + 2 * stride);
        uint4 d = __ldcs(src + i + 3 * stride);
        __stcs(dst + i, a);
        __stcs(dst + i + stride, b);
        __stcs(dst + i + 2 * stride, c);
        __stcs(dst + i + 3 * stride, d);
    }
    for (; i < n; i += stride)
        __stcs(dst + i, __ldcs(src + i));
}

__global__ void __launch_bounds__(256)
    gr_hk_verify(const uint4 *buf, unsigned long long n, unsigned int seed, unsigned long long *errors)
{
    unsigned int bad = 0;

    for (unsigned long long i = global_index(); i < n; i += grid_stride()) {
        uint4 v = buf[i];
        bad += (v.x != pattern(i, 0, seed)) + (v.y != pattern(i, 1, seed)) +
               (v.z != pattern(i, 2, seed)) + (v.w != pattern(i, 3, seed));
    }
    warp_add(errors, bad);
}

#define GR_FMA_CHAINS 16
#define GR_FMA_UNROLL 8

/* Each thread does iters * GR_FMA_UNROLL * GR_FMA_CHAINS FMAs (2 FLOPs
 * each). a <- a * b + c converges to c / (1 - b) for 0 < b < 1: no
 * overflow, no subnormals. */
__global__ void __launch_bounds__(256) gr_hk_fma(float *out, unsigned int iters, float b, float c)
{
    float a[GR_FMA_CHAINS];

#pragma unroll
    for (int j = 0; j < GR_FMA_CHAINS; j++)
        a[j] = (float)(threadIdx.x + j) * 0.0009765625f;
    for (unsigned int it = 0; it < iters; it++) {
#pragma unroll
        for (int k = 0; k < GR_FMA_UNROLL; k++) {
#pragma unroll
            for (int j = 0; j < GR_FMA_CHAINS; j++)
                a[j] = __fmaf_rn(a[j], b, c);
        }
    }
    float s = 0.0f;
#pragma unroll
    for (int j = 0; j < GR_FMA_CHAINS; j++)
        s = __fadd_rn(s, a[j]);
    out[global_index()] = s;
}

/* out[i] for i < n: rounds of an integer mix feeding a float recurrence.
 * Every float operation is one IEEE round-to-nearest operation (the _rn
 * intrinsics are never contracted), so the host gets the same bits. */
__global__ void __launch_bounds__(256)
    gr_hk_repeat(unsigned int *out, unsigned int n, unsigned int rounds, unsigned int seed)
{
    for (unsigned long long i = global_index(); i < n; i += grid_stride()) {
        uint32_t x = mix32((uint32_t)i ^ seed);
        float f = __fmul_rn(__uint2float_rn(x >> 8), 5.9604644775390625e-8f); /* 2^-24 */

        for (unsigned int r = 0; r < rounds; r++) {
            x = mix32(x + r);
            float g = __fmul_rn(__uint2float_rn(x >> 8), 5.9604644775390625e-8f);
            f = __fmaf_rn(f, 1.0009765625f, g);
            f = __fmul_rn(f, 0.5f);
        }
        out[i] = x ^ __float_as_uint(f);
    }
}

/* dst[idx] = gemm_value(idx, seed) for idx < n, as FP16 (exact). */
__global__ void __launch_bounds__(256) gr_hk_gemm_fill(__half *dst, unsigned int n, unsigned int seed)
{
    for (unsigned long long i = global_index(); i < n; i += grid_stride())
        dst[i] = __float2half_rn(gemm_value((uint32_t)i, seed));
}

#define GR_BM 128
#define GR_BN 128
#define GR_BK 32
#define GR_PAD 8 /* halves: rows of 80 bytes, conflict-free 16-byte rows for ldmatrix */
#define GR_LDS (GR_BK + GR_PAD)

/* C (M x N, row-major, FP32) = A (M x K, row-major) * B, B passed as Bt
 * (N x K, row-major). M, N multiples of 128, K a multiple of 32. 256
 * threads: 8 warps as 2 (M) x 4 (N), each warp 64 x 32 of C, i.e. 4 x 2
 * WMMA accumulators. Grid: (N / 128, M / 128). */
__global__ void __launch_bounds__(256)
    gr_hk_gemm(const __half *__restrict__ A, const __half *__restrict__ Bt, float *__restrict__ C,
               unsigned int M, unsigned int N, unsigned int K)
{
    using namespace nvcuda;
    __shared__ __align__(128) __half As[2][GR_BM][GR_LDS];
    __shared__ __align__(128) __half Bs[2][GR_BN][GR_LDS];

    const unsigned int tid = threadIdx.x, warp = tid >> 5;
    const unsigned int wm = warp >> 2, wn = warp & 3; /* warp's place: 64-row and 32-col block */
    const unsigned int bm = blockIdx.y * GR_BM, bn = blockIdx.x * GR_BN;
    /* global -> shared: each thread moves two 16-byte pieces of A and of B
     * per K slice: rows r0 and r0 + 64, 8 halves at column c0 */
    const unsigned int r0 = tid >> 2, c0 = (tid & 3) * 8;
    const __half *ga = A + (size_t)(bm + r0) * K + c0;
    const __half *gb = Bt + (size_t)(bn + r0) * K + c0;
    const size_t row64 = (size_t)64 * K;

    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[4][2];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 2; j++)
            wmma::fill_fragment(acc[i][j], 0.0f);

    uint4 pa0 = *(const uint4 *)ga, pa1 = *(const uint4 *)(ga + row64);
    uint4 pb0 = *(const uint4 *)gb, pb1 = *(const uint4 *)(gb + row64);
    *(uint4 *)&As[0][r0][c0] = pa0;
    *(uint4 *)&As[0][r0 + 64][c0] = pa1;
    *(uint4 *)&Bs[0][r0][c0] = pb0;
    *(uint4 *)&Bs[0][r0 + 64][c0] = pb1;
    __syncthreads();

    const unsigned int slices = K / GR_BK;
    for (unsigned int s = 0; s < slices; s++) {
        const unsigned int cur = s & 1;
        const bool more = s + 1 < slices;

        if (more) { /* the next slice, into registers while this one computes */
            const size_t off = (size_t)(s + 1) * GR_BK;
            pa0 = *(const uint4 *)(ga + off);
            pa1 = *(const uint4 *)(ga + row64 + off);
            pb0 = *(const uint4 *)(gb + off);
            pb1 = *(const uint4 *)(gb + row64 + off);
        }
#pragma unroll
        for (int kk = 0; kk < GR_BK; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> fa[4];
            wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> fb[2];
#pragma unroll
            for (int i = 0; i < 4; i++)
                wmma::load_matrix_sync(fa[i], &As[cur][wm * 64 + i * 16][kk], GR_LDS);
#pragma unroll
            for (int j = 0; j < 2; j++)
                wmma::load_matrix_sync(fb[j], &Bs[cur][wn * 32 + j * 16][kk], GR_LDS);
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 2; j++)
                    wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
        }
        if (more) {
            const unsigned int nxt = cur ^ 1;
            /* the other stage was last read in slice s - 1, before the
             * barrier that ended it: free to overwrite */
            *(uint4 *)&As[nxt][r0][c0] = pa0;
            *(uint4 *)&As[nxt][r0 + 64][c0] = pa1;
            *(uint4 *)&Bs[nxt][r0][c0] = pb0;
            *(uint4 *)&Bs[nxt][r0 + 64][c0] = pb1;
        }
        __syncthreads();
    }

#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 2; j++) {
            float *c = C + (size_t)(bm + wm * 64 + i * 16) * N + bn + wn * 32 + j * 16;
            wmma::store_matrix_sync(c, acc[i][j], N, wmma::mem_row_major);
        }
}

} // extern "C"
