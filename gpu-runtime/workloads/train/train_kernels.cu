/*
 * gpu-train's CUDA kernels, compiled by nvcc into a fatbin that the Makefile
 * embeds as gr_fatbin_train_kernels (gpu-runtime/common/embed.S) and that
 * backend_gpu.c loads with cuModuleLoadData: no CUDA runtime, only the
 * driver API, so the names are extern "C" and every argument is a plain
 * pointer or number. They compute what backend_cpu.c computes (the same
 * formulas, float32, losses summed in double); only the order of the sums
 * inside the matrix products differs.
 *
 * Matrices are row-major. The model's W of a layer is [in][out].
 *   gt_gather            rows of the training set by index, and their labels
 *   gt_gemm_nn           C[M][N] = A[M][K] B[K][N] + bias (optional), ReLU (optional)
 *   gt_gemm_tn           C[M][N] = A^T B with A stored [K][M], B [K][N] (weight grads)
 *   gt_gemm_nt_mask      C[M][N] = (A B^T) where mask > 0, else 0; A [M][K], B
 *                        stored [N][K] (gradient through W and the ReLU)
 *   gt_bias_grad         db[j] = sum_i dz[i][j]
 *   gt_softmax_xent      loss and dL/dz of the batch mean, losses added to *loss
 *   gt_adam, gt_sgd      the optimisers, the same update as the CPU's
 *   gt_count_correct     argmax of each row of logits against the labels
 */
#include <stdint.h>

#define TILE 32    /* output tile: TILE x TILE */
#define ROWS_PER 4 /* outputs per thread: the block is TILE x (TILE / ROWS_PER) */

/* Shared-memory tiled product: each block computes one TILE x TILE tile of
 * C with 256 threads, ROWS_PER outputs each, staging TILE x TILE tiles of
 * op(A) and op(B) in shared memory (padded against bank conflicts). A
 * transposed operand is read with the thread index along its rows in memory,
 * so that every load of a warp is coalesced either way. Out-of-range
 * elements read as 0. */
template <bool TA, bool TB>
__device__ __forceinline__ void gemm_tile(const float *__restrict__ a, const float *__restrict__ b,
                                          int M, int N, int K, float acc[ROWS_PER])
{
    __shared__ float as[TILE][TILE + 1]; /* as[m][k] of the tile */
    __shared__ float bs[TILE][TILE + 1]; /* bs[k][n] of the tile */
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int row0 = blockIdx.y * TILE, col0 = blockIdx.x * TILE;

    for (int i = 0; i < ROWS_PER; i++)
        acc[i] = 0.0f;
    for (int k0 = 0; k0 < K; k0 += TILE) {
        for (int i = 0; i < ROWS_PER; i++) {
            const int r = ty + i * (TILE / ROWS_PER);

            if (TA) { /* A stored [K][M]: element (m, k) at k * M + m */
                const int m = row0 + tx, k = k0 + r;
                as[tx][r] = (m < M && k < K) ? a[(size_t)k * M + m] : 0.0f;
            } else {
                const int m = row0 + r, k = k0 + tx;
                as[r][tx] = (m < M && k < K) ? a[(size_t)m * K + k] : 0.0f;
            }
            if (TB) { /* B stored [N][K]: element (k, n) at n * K + k */
                const int k = k0 + tx, n = col0 + r;
                bs[tx][r] = (k < K && n < N) ? b[(size_t)n * K + k] : 0.0f;
            } else {
                const int k = k0 + r, n = col0 + tx;
                bs[r][tx] = (k < K && n < N) ? b[(size_t)k * N + n] : 0.0f;
            }
        }
        __syncthreads();
        for (int kk = 0; kk < TILE; kk++) {
            const float bv = bs[kk][tx];

            for (int i = 0; i < ROWS_PER; i++)
                acc[i] += as[ty + i * (TILE / ROWS_PER)][kk] * bv;
        }
        __syncthreads();
    }
}

extern "C" __global__ void gt_gemm_nn(const float *__restrict__ a, const float *__restrict__ b,
                                      const float *__restrict__ bias, float *__restrict__ c, int M,
                                      int N, int K, int relu)
{
    float acc[ROWS_PER];
    const int col = blockIdx.x * TILE + threadIdx.x;

    gemm_tile<false, false>(a, b, M, N, K, acc);
    if (col >= N)
        return;
    for (int i = 0; i < ROWS_PER; i++) {
        int row = blockIdx.y * TILE + threadIdx.y + i * (TILE / ROWS_PER);
        float v = acc[i] + (bias ? bias[col] : 0.0f);

        if (row < M)
            c[(size_t)row * N + col] = relu && v < 0.0f ? 0.0f : v;
    }
}

extern "C" __global__ void gt_gemm_tn(const float *__restrict__ a, const float *__restrict__ b,
                                      float *__restrict__ c, int M, int N, int K)
{
    float acc[ROWS_PER];
    const int col = blockIdx.x * TILE + threadIdx.x;

    gemm_tile<true, false>(a, b, M, N, K, acc);
    if (col >= N)
        return;
    for (int i = 0; i < ROWS_PER; i++) {
        int row = blockIdx.y * TILE + threadIdx.y + i * (TILE / ROWS_PER);

        if (row < M)
            c[(size_t)row * N + col] = acc[i];
    }
}

extern "C" __global__ void gt_gemm_nt_mask(const float *__restrict__ a, const float *__restrict__ b,
                                           const float *__restrict__ mask, float *__restrict__ c,
                                           int M, int N, int K)
{
    float acc[ROWS_PER];
    const int col = blockIdx.x * TILE + threadIdx.x;

    gemm_tile<false, true>(a, b, M, N, K, acc);
    if (col >= N)
        return;
    for (int i = 0; i < ROWS_PER; i++) {
        int row = blockIdx.y * TILE + threadIdx.y + i * (TILE / ROWS_PER);
        size_t o = (size_t)row * N + col;

        if (row < M)
            c[o] = mask[o] > 0.0f ? acc[i] : 0.0f;
    }
}

extern "C" __global__ void gt_gather(const float *__restrict__ x, const uint32_t *__restrict__ y,
                                     const uint32_t *__restrict__ idx, int n, int d,
                                     float *__restrict__ out, uint32_t *__restrict__ labels)
{
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;

    if (i >= (size_t)n * d)
        return;
    const int r = (int)(i / d), j = (int)(i % d);
    const uint32_t src = idx[r];

    out[i] = x[(size_t)src * d + j];
    if (j == 0)
        labels[r] = y[src];
}

extern "C" __global__ void gt_bias_grad(const float *__restrict__ dz, float *__restrict__ db, int M,
                                        int N)
{
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    float s = 0.0f;

    if (j >= N)
        return;
    for (int i = 0; i < M; i++)
        s += dz[(size_t)i * N + j];
    db[j] = s;
}

/* One thread per row; the block's losses are summed with warp shuffles and
 * added to *loss once per block. */
extern "C" __global__ void gt_softmax_xent(const float *__restrict__ z,
                                           const uint32_t *__restrict__ labels, int M, int K,
                                           float *__restrict__ dz, double *__restrict__ loss)
{
    __shared__ double part[32];
    const int r = blockIdx.x * blockDim.x + threadIdx.x;
    double l = 0.0;

    if (r < M) {
        const float *zr = z + (size_t)r * K;
        float *d = dz + (size_t)r * K;
        const float inv_n = 1.0f / (float)M;
        const uint32_t y = labels[r];
        float mx = zr[0], sum = 0.0f;

        for (int j = 1; j < K; j++)
            mx = zr[j] > mx ? zr[j] : mx;
        for (int j = 0; j < K; j++) {
            d[j] = expf(zr[j] - mx);
            sum += d[j];
        }
        l = (double)(logf(sum) + mx - zr[y]);
        for (int j = 0; j < K; j++)
            d[j] = (d[j] / sum - (j == (int)y ? 1.0f : 0.0f)) * inv_n;
    }
    for (int o = 16; o > 0; o >>= 1)
        l += __shfl_down_sync(0xffffffffu, l, o);
    if ((threadIdx.x & 31) == 0)
        part[threadIdx.x >> 5] = l;
    __syncthreads();
    if (threadIdx.x == 0) {
        double s = 0.0;

        for (int w = 0; w < (int)(blockDim.x + 31) / 32; w++)
            s += part[w];
        atomicAdd(loss, s);
    }
}

extern "C" __global__ void gt_adam(float *__restrict__ p, const float *__restrict__ g,
                                   float *__restrict__ m1, float *__restrict__ m2, int n, float lr,
                                   float beta1, float beta2, float eps, float c1, float c2)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;

    if (i >= n)
        return;
    const float gi = g[i];
    const float a = beta1 * m1[i] + (1.0f - beta1) * gi;
    const float b = beta2 * m2[i] + (1.0f - beta2) * gi * gi;

    m1[i] = a;
    m2[i] = b;
    p[i] -= lr * (a * c1) / (sqrtf(b * c2) + eps);
}

extern "C" __global__ void gt_sgd(float *__restrict__ p, const float *__restrict__ g,
                                  float *__restrict__ vel, int n, float lr, float momentum)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;

    if (i >= n)
        return;
    const float v = momentum * vel[i] + g[i];

    vel[i] = v;
    p[i] -= lr * v;
}

extern "C" __global__ void gt_count_correct(const float *__restrict__ z,
                                            const uint32_t *__restrict__ labels, int M, int K,
                                            unsigned int *__restrict__ correct)
{
    const int r = blockIdx.x * blockDim.x + threadIdx.x;

    if (r >= M)
        return;
    const float *zr = z + (size_t)r * K;
    int best = 0;

    for (int j = 1; j < K; j++)
        best = zr[j] > zr[best] ? j : best;
    if ((uint32_t)best == labels[r])
        atomicAdd(correct, 1u);
}
