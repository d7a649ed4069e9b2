/*
 * gpu-agent's health checks (agent.h: agent_level_parse, agent_health_check).
 *   quick     NVML only: ECC counts, retired pages or remapped rows, clock
 *             event reasons, persistence mode, temperature and power.
 *   standard  quick, plus the bundled kernels (health_kernels.cu, embedded as
 *             gr_fatbin_health_kernels) on each GPU: device-memory bandwidth
 *             with a read-back check, FP32 FMA throughput at the clock NVML
 *             saw while it ran, a tensor-core GEMM checked against the host,
 *             bit-exact repeatability (two runs and the host), and PCIe
 *             bandwidth both ways with pinned memory.
 * Figures are judged in thresholds.c. Everything here blocks (a few seconds
 * per GPU at the standard level); agent_gpu_measure() makes its own context
 * current, so a thread may run it. GPUs are checked one after the other, so
 * that their PCIe figures do not share the host's bandwidth.
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent.h"
#include "base.h"
#include "cuda.h"
#include "health.h"

GR_FATBIN_DECLARE(health_kernels);

#define MIB ((size_t)1 << 20)
#define MEM_BUFFER_MAX ((size_t)1 << 30) /* each of the copy's two buffers */
#define MEM_BUFFER_MIN (64 * MIB)
#define MEM_RUNS 10
#define FMA_RUNS 4
#define FMA_RUN_S 0.25
#define FMA_CHAINS 16 /* as gr_hk_fma: chains x unroll FMAs per loop trip */
#define FMA_UNROLL 8
#define GEMM_DIM 4096u
#define GEMM_RUNS 5
#define GEMM_ROWS 8 /* rows of C the host recomputes, every column */
#define REPEAT_N (1u << 18)
#define REPEAT_ROUNDS 64
#define PCIE_BYTES (256 * MIB)
#define PCIE_COPIES 4
#define PCIE_RUNS 3
#define BLOCK 256

bool agent_level_parse(const char *s, enum agent_level *out)
{
    if (s == NULL)
        return false;
    if (strcmp(s, "quick") == 0) {
        *out = AGENT_CHECK_QUICK;
        return true;
    }
    if (strcmp(s, "standard") == 0) {
        *out = AGENT_CHECK_STANDARD;
        return true;
    }
    return false;
}

/* ---- the host's mirror of the kernels' functions (health_kernels.cu) ---- */

static uint32_t hk_mix32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

unsigned agent_repeat_value(unsigned i, unsigned rounds, unsigned seed)
{
    uint32_t x = hk_mix32(i ^ seed);
    float f = (float)(x >> 8); /* below 2^24: exact */
    float g;

    f = f * 5.9604644775390625e-8f; /* 2^-24: exact */
    for (unsigned r = 0; r < rounds; r++) {
        x = hk_mix32(x + r);
        g = (float)(x >> 8);
        g = g * 5.9604644775390625e-8f;
        f = fmaf(f, 1.0009765625f, g); /* one rounding, as __fmaf_rn */
        f = f * 0.5f;
    }
    uint32_t bits;
    memcpy(&bits, &f, sizeof(bits));
    return x ^ bits;
}

int agent_gemm_value2(unsigned idx, unsigned seed)
{
    return (int)(hk_mix32(idx ^ seed) % 5u) - 2;
}

/* ---- NVML readings ---- */

static void nvml_gather(const struct gr_nvml_api *nv, nvmlDevice_t d, struct agent_nvml_facts *n)
{
    unsigned long long ull, addrs[64];
    unsigned a, b, c, e;
    nvmlEnableState_t st;

    n->present = true;
    if (nv->nvmlDeviceGetTotalEccErrors) {
        long long *slot[2][2] = {{&n->ecc_volatile_corrected, &n->ecc_volatile_uncorrected},
                                 {&n->ecc_aggregate_corrected, &n->ecc_aggregate_uncorrected}};

        for (int counter = 0; counter < 2; counter++)
            for (int type = 0; type < 2; type++)
                if (nv->nvmlDeviceGetTotalEccErrors(d, type, counter, &ull) == NVML_SUCCESS)
                    *slot[counter][type] = (long long)ull;
    }
    for (int cause = 0; nv->nvmlDeviceGetRetiredPages && cause < 2; cause++) {
        nvmlReturn_t rc;

        a = 64;
        rc = nv->nvmlDeviceGetRetiredPages(d, cause, &a, addrs);
        if (rc == NVML_SUCCESS || rc == NVML_ERROR_INSUFFICIENT_SIZE)
            *(cause == 0 ? &n->retired_sbe : &n->retired_dbe) = a;
    }
    if (nv->nvmlDeviceGetRetiredPagesPendingStatus &&
        nv->nvmlDeviceGetRetiredPagesPendingStatus(d, &st) == NVML_SUCCESS)
        n->retired_pending = st == NVML_FEATURE_ENABLED;
    if (nv->nvmlDeviceGetRemappedRows &&
        nv->nvmlDeviceGetRemappedRows(d, &a, &b, &c, &e) == NVML_SUCCESS) {
        n->rows_corrected = a;
        n->rows_uncorrected = b;
        n->rows_pending = c != 0;
        n->rows_failure = e != 0;
    }
    if (nv->nvmlDeviceGetCurrentClocksEventReasons &&
        nv->nvmlDeviceGetCurrentClocksEventReasons(d, &ull) == NVML_SUCCESS)
        n->clock_reasons = (long long)ull;
    if (nv->nvmlDeviceGetPersistenceMode &&
        nv->nvmlDeviceGetPersistenceMode(d, &st) == NVML_SUCCESS)
        n->persistence = st == NVML_FEATURE_ENABLED;
    if (nv->nvmlDeviceGetTemperature &&
        nv->nvmlDeviceGetTemperature(d, NVML_TEMPERATURE_GPU, &a) == NVML_SUCCESS)
        n->temp_c = (int)a;
    if (nv->nvmlDeviceGetTemperatureThreshold &&
        nv->nvmlDeviceGetTemperatureThreshold(d, NVML_TEMPERATURE_THRESHOLD_SLOWDOWN, &a) ==
            NVML_SUCCESS)
        n->temp_slowdown_c = (int)a;
    if (nv->nvmlDeviceGetTemperatureThreshold &&
        nv->nvmlDeviceGetTemperatureThreshold(d, NVML_TEMPERATURE_THRESHOLD_SHUTDOWN, &a) ==
            NVML_SUCCESS)
        n->temp_shutdown_c = (int)a;
    if (nv->nvmlDeviceGetPowerUsage && nv->nvmlDeviceGetPowerUsage(d, &a) == NVML_SUCCESS)
        n->power_w = a / 1000.0;
    if (nv->nvmlDeviceGetEnforcedPowerLimit &&
        nv->nvmlDeviceGetEnforcedPowerLimit(d, &a) == NVML_SUCCESS)
        n->power_limit_w = a / 1000.0;
}

static unsigned nvml_clock(const struct gr_nvml_api *nv, nvmlDevice_t d, bool max, int type)
{
    unsigned mhz = 0;
    gr_nvmlDeviceGetClock_fn fn = max ? nv->nvmlDeviceGetMaxClockInfo : nv->nvmlDeviceGetClockInfo;

    if (fn == NULL || fn(d, type, &mhz) != NVML_SUCCESS)
        return 0;
    return mhz;
}

static unsigned nvml_uint(gr_nvmlDeviceGetUint_fn fn, nvmlDevice_t d)
{
    unsigned v = 0;

    if (fn == NULL || fn(d, &v) != NVML_SUCCESS)
        return 0;
    return v;
}

/* ---- one GPU's kernels ---- */

struct hk {
    const struct gr_cuda_api *cu;
    const struct gr_nvml_api *nv; /* NULL without NVML */
    nvmlDevice_t nvd;
    struct gr_cuda_ctx ctx;
    CUmodule mod;
    CUfunction fill, copy, verify, fma, repeat, gemm_fill, gemm;
    CUstream s;
    CUevent e0, e1;
    int sms, cc_major, cc_minor;
    double sm_clock_max_mhz;
    bool fault;    /* a sticky CUDA error: the context is lost */
    char why[256]; /* the last CUDA error */
    struct agent_measure *m;
    json_t *reasons;
    enum agent_verdict verdict;
};

static bool is_fault(CUresult rc)
{
    /* 700 illegal address, 702 timeout ... 719 launch failed: the context is
     * lost; 701 (too many resources asked for) is not a fault */
    return rc == CUDA_ERROR_ECC_UNCORRECTABLE || rc == CUDA_ERROR_ILLEGAL_ADDRESS ||
           (rc >= CUDA_ERROR_LAUNCH_TIMEOUT && rc <= 720);
}

static int hk_check(struct hk *h, CUresult rc, const char *what)
{
    if (rc == CUDA_SUCCESS)
        return 0;
    if (is_fault(rc))
        h->fault = true;
    return gr_cu_check(rc, h->why, sizeof(h->why), what);
}

/* A part of the check that could not run: warning, or failed when the GPU
 * faulted. */
static void hk_part_failed(struct hk *h, const char *part)
{
    char buf[400];

    snprintf(buf, sizeof(buf), "%s: %s%s", part, h->why,
             h->fault ? " (the GPU faulted: later checks skipped)" : "");
    json_array_append_new(h->reasons, json_string(buf));
    if (h->fault)
        h->verdict = AGENT_FAILED;
    else if (h->verdict < AGENT_WARNING)
        h->verdict = AGENT_WARNING;
}

static void hk_skip(struct hk *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void hk_skip(struct hk *h, const char *fmt, ...)
{
    char buf[400];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    json_array_append_new(h->reasons, json_string(buf));
    if (h->verdict < AGENT_WARNING)
        h->verdict = AGENT_WARNING;
}

static int hk_launch(struct hk *h, CUfunction f, unsigned gx, unsigned gy, void **args,
                     const char *name)
{
    return hk_check(h, h->cu->cuLaunchKernel(f, gx, gy, 1, BLOCK, 1, 1, 0, h->s, args, NULL), name);
}

/* Blocks for a grid-stride kernel: every SM full. */
static unsigned hk_grid(struct hk *h, CUfunction f)
{
    int per_sm = 0;

    if (h->cu->cuOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, f, BLOCK, 0) != CUDA_SUCCESS ||
        per_sm <= 0)
        per_sm = 4;
    return (unsigned)(h->sms * per_sm);
}

static int hk_start(struct hk *h)
{
    return hk_check(h, h->cu->cuEventRecord(h->e0, h->s), "cuEventRecord");
}

/* Records the end event, waits for it and returns the time since hk_start
 * in seconds, or < 0. */
static double hk_stop(struct hk *h)
{
    float ms = 0;

    if (hk_check(h, h->cu->cuEventRecord(h->e1, h->s), "cuEventRecord") < 0 ||
        hk_check(h, h->cu->cuEventSynchronize(h->e1), "cuEventSynchronize") < 0 ||
        hk_check(h, h->cu->cuEventElapsedTime(&ms, h->e0, h->e1), "cuEventElapsedTime") < 0)
        return -1;
    return ms / 1e3;
}

static void sleep_s(double s)
{
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};

    nanosleep(&ts, NULL);
}

static void hk_free(struct hk *h, CUdeviceptr p)
{
    if (p != 0)
        h->cu->cuMemFree(p);
}

static size_t hk_free_memory(struct hk *h)
{
    size_t free_b = 0, total_b = 0;

    if (h->cu->cuMemGetInfo(&free_b, &total_b) != CUDA_SUCCESS)
        return 0;
    return free_b;
}

/* ---- device-memory bandwidth ---- */

static int mem_timed_copies(struct hk *h, CUdeviceptr src, CUdeviceptr dst, unsigned long long n,
                            double *best)
{
    void *args[] = {&src, &dst, &n};
    unsigned grid = hk_grid(h, h->copy);

    *best = 0;
    for (int run = 0; run < 2 + MEM_RUNS; run++) {
        double t;

        if (hk_start(h) < 0 || hk_launch(h, h->copy, grid, 1, args, "gr_hk_copy") < 0)
            return -1;
        t = hk_stop(h);
        if (t < 0)
            return -1;
        if (run >= 2 && t > 0 && (*best == 0 || t < *best)) /* two warm-up runs */
            *best = t;
    }
    return 0;
}

static void run_mem(struct hk *h)
{
    CUdeviceptr src = 0, dst = 0, errs = 0;
    size_t avail = hk_free_memory(h), bytes = MEM_BUFFER_MAX;
    unsigned long long n, bad = 0;
    unsigned seed = 0x5eed1234u;
    double best = 0;

    if (avail < 3 * MEM_BUFFER_MAX)
        bytes = avail > 256 * MIB ? ((avail - 256 * MIB) / 4) & ~(2 * MIB - 1) : 0;
    if (bytes < MEM_BUFFER_MIN) {
        hk_skip(h, "memory bandwidth not measured: only %zu MiB of device memory free",
                avail / MIB);
        return;
    }
    n = bytes / 16;
    void *fill_args[] = {&src, &n, &seed};
    void *verify_args[] = {&dst, &n, &seed, &errs};
    if (hk_check(h, h->cu->cuMemAlloc(&src, bytes), "cuMemAlloc") < 0 ||
        hk_check(h, h->cu->cuMemAlloc(&dst, bytes), "cuMemAlloc") < 0 ||
        hk_check(h, h->cu->cuMemAlloc(&errs, sizeof(bad)), "cuMemAlloc") < 0 ||
        hk_check(h, h->cu->cuMemsetD8Async(errs, 0, sizeof(bad), h->s), "cuMemsetD8Async") < 0 ||
        hk_check(h, h->cu->cuMemsetD8Async(dst, 0, bytes, h->s), "cuMemsetD8Async") < 0 ||
        hk_launch(h, h->fill, hk_grid(h, h->fill), 1, fill_args, "gr_hk_fill") < 0 ||
        mem_timed_copies(h, src, dst, n, &best) < 0 ||
        hk_launch(h, h->verify, hk_grid(h, h->verify), 1, verify_args, "gr_hk_verify") < 0 ||
        hk_check(h, h->cu->cuStreamSynchronize(h->s), "cuStreamSynchronize") < 0 ||
        hk_check(h, h->cu->cuMemcpyDtoH(&bad, errs, sizeof(bad)), "cuMemcpyDtoH") < 0) {
        hk_part_failed(h, "memory bandwidth");
        goto out_free;
    }
    h->m->has_mem = best > 0;
    h->m->mem_bw = best > 0 ? 2.0 * (double)bytes / best : 0;
    h->m->mem_bytes = bytes;
    h->m->mem_errors = bad;
out_free:
    hk_free(h, errs);
    hk_free(h, dst);
    hk_free(h, src);
}

/* ---- FP32 FMA throughput ---- */

/* One timed gr_hk_fma launch; *mhz: the SM clock NVML saw halfway. */
static int fma_run(struct hk *h, unsigned grid, CUdeviceptr out, unsigned iters, double expect_s,
                   double *secs, unsigned *mhz)
{
    float b = 0.9990234375f, c = 0.0009765625f; /* a -> c / (1 - b) = 1 */
    void *args[] = {&out, &iters, &b, &c};

    *mhz = 0;
    if (hk_start(h) < 0 || hk_launch(h, h->fma, grid, 1, args, "gr_hk_fma") < 0)
        return -1;
    if (h->nv && expect_s > 0.02) {
        sleep_s(expect_s / 2);
        *mhz = nvml_clock(h->nv, h->nvd, false, NVML_CLOCK_SM);
    }
    *secs = hk_stop(h);
    return *secs < 0 ? -1 : 0;
}

/* Every thread's sum of 16 chains converged to 16: the FMAs computed right. */
static int fma_check(struct hk *h, CUdeviceptr out, size_t threads)
{
    float *host = orc_malloc(threads * sizeof(float));
    size_t wrong = 0;
    int rc;

    if (host == NULL) {
        snprintf(h->why, sizeof(h->why), "out of memory");
        return -1;
    }
    rc = hk_check(h, h->cu->cuMemcpyDtoH(host, out, threads * sizeof(float)), "cuMemcpyDtoH");
    for (size_t i = 0; rc == 0 && i < threads; i++)
        if (!(fabsf(host[i] - 16.0f) <= 1e-3f))
            wrong++;
    orc_free(host);
    if (rc == 0 && wrong > 0) {
        char buf[200];

        snprintf(buf, sizeof(buf),
                 "FP32 FMA results are wrong on %zu of %zu threads (each should sum to 16)", wrong,
                 threads);
        json_array_append_new(h->reasons, json_string(buf));
        h->verdict = AGENT_FAILED;
    }
    return rc;
}

static void run_fp32(struct hk *h)
{
    unsigned grid = hk_grid(h, h->fma), mhz = 0, best_mhz = 0;
    size_t threads = (size_t)grid * BLOCK;
    double per_iter = (double)threads * FMA_CHAINS * FMA_UNROLL * 2.0; /* FLOPs */
    double peak = agent_peak_fp32(h->sms, h->cc_major, h->cc_minor,
                                  h->sm_clock_max_mhz > 0 ? h->sm_clock_max_mhz : 1500);
    double iters_d, secs = 0, best = 0;
    CUdeviceptr out = 0;
    unsigned iters;

    if (peak <= 0)
        peak = (double)h->sms * 128 * 2 * 1.5e9;
    iters_d = FMA_RUN_S * peak / per_iter;
    iters = iters_d < 4096 ? 4096 : iters_d > 1e8 ? 100000000u : (unsigned)iters_d;
    if (hk_check(h, h->cu->cuMemAlloc(&out, threads * sizeof(float)), "cuMemAlloc") < 0 ||
        fma_run(h, grid, out, iters / 4, 0, &secs, &mhz) < 0) /* warm-up, clocks up */
        goto out_failed;
    for (int run = 0; run < FMA_RUNS; run++) {
        if (fma_run(h, grid, out, iters, FMA_RUN_S, &secs, &mhz) < 0)
            goto out_failed;
        if (secs > 0 && (best == 0 || secs < best)) {
            best = secs;
            best_mhz = mhz;
        }
    }
    if (fma_check(h, out, threads) < 0)
        goto out_failed;
    h->m->has_fp32 = best > 0;
    h->m->fp32 = best > 0 ? per_iter * iters / best : 0;
    h->m->fp32_clock_mhz = best_mhz;
    hk_free(h, out);
    return;
out_failed:
    hk_part_failed(h, "FP32 throughput");
    hk_free(h, out);
}

/* ---- tensor-core GEMM ---- */

/* Recomputes GEMM_ROWS rows of C (every column) on the host; exact. */
static unsigned gemm_verify(const float *c, unsigned seed_a, unsigned seed_b, unsigned *checked)
{
    static const unsigned offsets[GEMM_ROWS] = {0, 17, 35, 50, 66, 83, 101, 127};
    const unsigned n = GEMM_DIM, k = GEMM_DIM;
    signed char arow[GEMM_ROWS][GEMM_DIM], bcol[GEMM_DIM];
    unsigned rows[GEMM_ROWS], wrong = 0;

    for (unsigned r = 0; r < GEMM_ROWS; r++) {
        rows[r] = (r * (GEMM_DIM / GEMM_ROWS) + offsets[r]) % GEMM_DIM;
        for (unsigned x = 0; x < k; x++)
            arow[r][x] = (signed char)agent_gemm_value2(rows[r] * k + x, seed_a);
    }
    for (unsigned j = 0; j < n; j++) {
        for (unsigned x = 0; x < k; x++)
            bcol[x] = (signed char)agent_gemm_value2(j * k + x, seed_b);
        for (unsigned r = 0; r < GEMM_ROWS; r++) {
            int sum = 0; /* (2a)(2b) = 4ab */

            for (unsigned x = 0; x < k; x++)
                sum += arow[r][x] * bcol[x];
            if (c[(size_t)rows[r] * n + j] != (float)sum * 0.25f)
                wrong++;
        }
    }
    *checked = GEMM_ROWS * n;
    return wrong;
}

static int gemm_timed(struct hk *h, CUdeviceptr a, CUdeviceptr bt, CUdeviceptr c, double *best)
{
    unsigned dim = GEMM_DIM;
    void *args[] = {&a, &bt, &c, &dim, &dim, &dim};

    *best = 0;
    for (int run = 0; run < 1 + GEMM_RUNS; run++) {
        double t;

        if (hk_start(h) < 0 ||
            hk_launch(h, h->gemm, GEMM_DIM / 128, GEMM_DIM / 128, args, "gr_hk_gemm") < 0)
            return -1;
        t = hk_stop(h);
        if (t < 0)
            return -1;
        if (run >= 1 && t > 0 && (*best == 0 || t < *best))
            *best = t;
    }
    return 0;
}

static void run_gemm(struct hk *h)
{
    const size_t ab = (size_t)GEMM_DIM * GEMM_DIM * 2, cb = (size_t)GEMM_DIM * GEMM_DIM * 4;
    unsigned n = GEMM_DIM * GEMM_DIM, seed_a = 0xa11ce5u, seed_b = 0xb0b5eedu;
    CUdeviceptr a = 0, bt = 0, c = 0;
    float *host = NULL;
    double best = 0;

    if (hk_free_memory(h) < ab * 2 + cb + 256 * MIB) {
        hk_skip(h, "tensor-core GEMM not run: not enough free device memory");
        return;
    }
    void *fa[] = {&a, &n, &seed_a}, *fb[] = {&bt, &n, &seed_b};
    if (hk_check(h, h->cu->cuMemAlloc(&a, ab), "cuMemAlloc") < 0 ||
        hk_check(h, h->cu->cuMemAlloc(&bt, ab), "cuMemAlloc") < 0 ||
        hk_check(h, h->cu->cuMemAlloc(&c, cb), "cuMemAlloc") < 0 ||
        hk_launch(h, h->gemm_fill, hk_grid(h, h->gemm_fill), 1, fa, "gr_hk_gemm_fill") < 0 ||
        hk_launch(h, h->gemm_fill, hk_grid(h, h->gemm_fill), 1, fb, "gr_hk_gemm_fill") < 0 ||
        gemm_timed(h, a, bt, c, &best) < 0)
        goto out_failed;
    host = orc_malloc(cb);
    if (host == NULL) {
        snprintf(h->why, sizeof(h->why), "out of memory");
        goto out_failed;
    }
    if (hk_check(h, h->cu->cuMemcpyDtoH(host, c, cb), "cuMemcpyDtoH") < 0)
        goto out_failed;
    h->m->tensor_wrong = gemm_verify(host, seed_a, seed_b, &h->m->tensor_checked);
    h->m->has_tensor = best > 0;
    h->m->tensor = best > 0 ? 2.0 * GEMM_DIM * (double)GEMM_DIM * GEMM_DIM / best : 0;
    goto out_free;
out_failed:
    hk_part_failed(h, "tensor-core GEMM");
out_free:
    orc_free(host);
    hk_free(h, c);
    hk_free(h, bt);
    hk_free(h, a);
}

/* ---- repeatability ---- */

static void run_repeat(struct hk *h)
{
    unsigned n = REPEAT_N, rounds = REPEAT_ROUNDS, seed = 0x0badcafeu;
    unsigned *r1 = orc_malloc(2 * sizeof(unsigned) * REPEAT_N), *r2 = r1 ? r1 + REPEAT_N : NULL;
    CUdeviceptr o1 = 0, o2 = 0;

    if (r1 == NULL) {
        snprintf(h->why, sizeof(h->why), "out of memory");
        hk_part_failed(h, "repeatability");
        return;
    }
    void *a1[] = {&o1, &n, &rounds, &seed}, *a2[] = {&o2, &n, &rounds, &seed};
    if (hk_check(h, h->cu->cuMemAlloc(&o1, n * sizeof(unsigned)), "cuMemAlloc") < 0 ||
        hk_check(h, h->cu->cuMemAlloc(&o2, n * sizeof(unsigned)), "cuMemAlloc") < 0 ||
        hk_launch(h, h->repeat, hk_grid(h, h->repeat), 1, a1, "gr_hk_repeat") < 0 ||
        hk_launch(h, h->repeat, hk_grid(h, h->repeat), 1, a2, "gr_hk_repeat") < 0 ||
        hk_check(h, h->cu->cuStreamSynchronize(h->s), "cuStreamSynchronize") < 0 ||
        hk_check(h, h->cu->cuMemcpyDtoH(r1, o1, n * sizeof(unsigned)), "cuMemcpyDtoH") < 0 ||
        hk_check(h, h->cu->cuMemcpyDtoH(r2, o2, n * sizeof(unsigned)), "cuMemcpyDtoH") < 0) {
        hk_part_failed(h, "repeatability");
        goto out_free;
    }
    h->m->has_repeat = true;
    h->m->repeat_n = n;
    for (unsigned i = 0; i < n; i++) {
        h->m->repeat_run_diff += r1[i] != r2[i];
        h->m->repeat_host_diff += r1[i] != agent_repeat_value(i, rounds, seed);
    }
out_free:
    hk_free(h, o2);
    hk_free(h, o1);
    orc_free(r1);
}

/* ---- PCIe ---- */

/* The link's generation and width now (NVML), keeping the highest seen. */
static void pcie_sample(struct hk *h)
{
    unsigned gen, width;

    if (h->nv == NULL)
        return;
    gen = nvml_uint(h->nv->nvmlDeviceGetCurrPcieLinkGeneration, h->nvd);
    width = nvml_uint(h->nv->nvmlDeviceGetCurrPcieLinkWidth, h->nvd);
    if ((int)gen > h->m->pcie_gen)
        h->m->pcie_gen = (int)gen;
    if ((int)width > h->m->pcie_width)
        h->m->pcie_width = (int)width;
}

/* Best rate of PCIE_RUNS bursts of PCIE_COPIES async copies one way. */
static int pcie_direction(struct hk *h, bool to_device, void *host, CUdeviceptr dev, double *rate)
{
    *rate = 0;
    for (int run = 0; run < 1 + PCIE_RUNS; run++) { /* one warm-up burst */
        double t;

        if (hk_start(h) < 0)
            return -1;
        for (int i = 0; i < PCIE_COPIES; i++) {
            CUresult rc = to_device ? h->cu->cuMemcpyHtoDAsync(dev, host, PCIE_BYTES, h->s)
                                    : h->cu->cuMemcpyDtoHAsync(host, dev, PCIE_BYTES, h->s);

            if (hk_check(h, rc, to_device ? "cuMemcpyHtoDAsync" : "cuMemcpyDtoHAsync") < 0)
                return -1;
        }
        sleep_s(0.005); /* the link trains up under load */
        pcie_sample(h);
        t = hk_stop(h);
        if (t < 0)
            return -1;
        if (run >= 1 && t > 0 && PCIE_COPIES * (double)PCIE_BYTES / t > *rate)
            *rate = PCIE_COPIES * (double)PCIE_BYTES / t;
    }
    return 0;
}

static void run_pcie(struct hk *h)
{
    void *host = NULL;
    CUdeviceptr dev = 0;
    double h2d = 0, d2h = 0;

    if (hk_check(h, h->cu->cuMemAllocHost(&host, PCIE_BYTES), "cuMemAllocHost") < 0) {
        host = NULL;
        goto out_failed;
    }
    memset(host, 0x5a, PCIE_BYTES);
    if (hk_check(h, h->cu->cuMemAlloc(&dev, PCIE_BYTES), "cuMemAlloc") < 0 ||
        pcie_direction(h, true, host, dev, &h2d) < 0 ||
        pcie_direction(h, false, host, dev, &d2h) < 0)
        goto out_failed;
    h->m->has_pcie = h2d > 0 && d2h > 0;
    h->m->pcie_h2d = h2d;
    h->m->pcie_d2h = d2h;
    if (h->nv) {
        h->m->pcie_max_gen = (int)nvml_uint(h->nv->nvmlDeviceGetMaxPcieLinkGeneration, h->nvd);
        h->m->pcie_max_width = (int)nvml_uint(h->nv->nvmlDeviceGetMaxPcieLinkWidth, h->nvd);
    }
    goto out_free;
out_failed:
    hk_part_failed(h, "PCIe bandwidth");
out_free:
    hk_free(h, dev);
    if (host)
        h->cu->cuMemFreeHost(host);
}

/* ---- one GPU ---- */

static int hk_open(struct hk *h, int ordinal, char *why, size_t len)
{
    static const struct {
        size_t off;
        const char *name;
    } fns[] = {
        {offsetof(struct hk, fill), "gr_hk_fill"},
        {offsetof(struct hk, copy), "gr_hk_copy"},
        {offsetof(struct hk, verify), "gr_hk_verify"},
        {offsetof(struct hk, fma), "gr_hk_fma"},
        {offsetof(struct hk, repeat), "gr_hk_repeat"},
        {offsetof(struct hk, gemm_fill), "gr_hk_gemm_fill"},
        {offsetof(struct hk, gemm), "gr_hk_gemm"},
    };
    int rc = gr_cuda_ctx_open(ordinal, &h->ctx, why, len);
    unsigned mhz;

    if (rc < 0)
        return rc;
    h->cu = gr_cuda_loaded();
    rc = gr_cuda_module_load(GR_FATBIN(health_kernels), &h->mod, why, len);
    for (size_t i = 0; rc == 0 && i < sizeof(fns) / sizeof(fns[0]); i++)
        rc = gr_cuda_module_function(h->mod, fns[i].name, (CUfunction *)((char *)h + fns[i].off),
                                     why, len);
    if (rc == 0)
        rc = gr_cu_check(h->cu->cuStreamCreate(&h->s, CU_STREAM_NON_BLOCKING), why, len,
                         "cuStreamCreate");
    if (rc == 0)
        rc = gr_cu_check(h->cu->cuEventCreate(&h->e0, CU_EVENT_DEFAULT), why, len, "cuEventCreate");
    if (rc == 0)
        rc = gr_cu_check(h->cu->cuEventCreate(&h->e1, CU_EVENT_BLOCKING_SYNC), why, len,
                         "cuEventCreate");
    if (rc == 0)
        rc = gr_cu_check(h->cu->cuDeviceGetAttribute(
                             &h->sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, h->ctx.dev),
                         why, len, "cuDeviceGetAttribute");
    if (rc < 0)
        return rc;
    h->cu->cuDeviceGetAttribute(&h->cc_major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                                h->ctx.dev);
    h->cu->cuDeviceGetAttribute(&h->cc_minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                                h->ctx.dev);
    h->nv = gr_nvml_device_for_cuda(h->ctx.dev, &h->nvd) ? gr_nvml_loaded() : NULL;
    mhz = h->nv ? nvml_clock(h->nv, h->nvd, true, NVML_CLOCK_SM) : 0;
    if (mhz == 0) {
        int khz = 0;

        if (h->cu->cuDeviceGetAttribute(&khz, CU_DEVICE_ATTRIBUTE_CLOCK_RATE, h->ctx.dev) ==
            CUDA_SUCCESS)
            mhz = (unsigned)(khz / 1000);
    }
    h->sm_clock_max_mhz = mhz;
    return 0;
}

static void hk_close(struct hk *h)
{
    if (h->cu == NULL)
        return;
    if (h->e1)
        h->cu->cuEventDestroy(h->e1);
    if (h->e0)
        h->cu->cuEventDestroy(h->e0);
    if (h->s)
        h->cu->cuStreamDestroy(h->s);
    gr_cuda_module_unload(h->mod);
    gr_cuda_ctx_close(&h->ctx);
}

int agent_gpu_measure(int ordinal, struct agent_measure *m, json_t *reasons,
                      enum agent_verdict *verdict_out, char *why, size_t len)
{
    struct hk h;
    void (*const parts[])(struct hk *) = {run_mem, run_fp32, run_gemm, run_repeat, run_pcie};
    int rc;

    memset(&h, 0, sizeof(h));
    agent_measure_init(m);
    h.m = m;
    h.reasons = reasons;
    h.verdict = AGENT_HEALTHY;
    rc = hk_open(&h, ordinal, why, len);
    for (size_t i = 0; rc == 0 && !h.fault && i < sizeof(parts) / sizeof(parts[0]); i++)
        parts[i](&h);
    hk_close(&h);
    if (verdict_out && rc == 0)
        *verdict_out = h.verdict;
    return rc;
}

/* ---- the report ---- */

struct gpu_ctx {
    const struct gr_cuda_api *cu; /* NULL: NVML only */
    const struct gr_nvml_api *nv;
    enum agent_level level;
    bool kernels;
};

/* The GPU's facts from CUDA, then NVML; names into name/uuid. */
static void gpu_facts(const struct gpu_ctx *g, CUdevice dev, bool has_nvd, nvmlDevice_t nvd,
                      struct agent_gpu_facts *f, char *name, size_t nlen, char *uuid)
{
    unsigned v;

    if (g->cu) {
        int khz = 0, bits = 0;
        CUuuid u;

        if (g->cu->cuDeviceGetName(name, (int)nlen, dev) != CUDA_SUCCESS)
            name[0] = '\0';
        if (g->cu->cuDeviceGetUuid(&u, dev) == CUDA_SUCCESS)
            gr_cuda_uuid_format(&u, uuid);
        g->cu->cuDeviceGetAttribute(&f->cc_major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                                    dev);
        g->cu->cuDeviceGetAttribute(&f->cc_minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                                    dev);
        g->cu->cuDeviceGetAttribute(&f->sm_count, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev);
        if (g->cu->cuDeviceGetAttribute(&bits, CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH, dev) ==
            CUDA_SUCCESS)
            f->mem_bus_bits = bits;
        if (g->cu->cuDeviceGetAttribute(&khz, CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE, dev) ==
            CUDA_SUCCESS)
            f->mem_clock_max_mhz = khz / 1000.0;
        if (g->cu->cuDeviceGetAttribute(&khz, CU_DEVICE_ATTRIBUTE_CLOCK_RATE, dev) == CUDA_SUCCESS)
            f->sm_clock_max_mhz = khz / 1000.0;
    }
    if (!has_nvd)
        return;
    if (name[0] == '\0' && g->nv->nvmlDeviceGetName &&
        g->nv->nvmlDeviceGetName(nvd, name, (unsigned)nlen) != NVML_SUCCESS)
        name[0] = '\0';
    if (uuid[0] == '\0' && g->nv->nvmlDeviceGetUUID &&
        g->nv->nvmlDeviceGetUUID(nvd, uuid, GR_UUID_LEN) != NVML_SUCCESS)
        uuid[0] = '\0';
    if (f->cc_major <= 0 && g->nv->nvmlDeviceGetCudaComputeCapability)
        g->nv->nvmlDeviceGetCudaComputeCapability(nvd, &f->cc_major, &f->cc_minor);
    v = nvml_clock(g->nv, nvd, true, NVML_CLOCK_MEM);
    if (v > 0)
        f->mem_clock_max_mhz = v;
    v = nvml_clock(g->nv, nvd, true, NVML_CLOCK_SM);
    if (v > 0)
        f->sm_clock_max_mhz = v;
    v = nvml_uint(g->nv->nvmlDeviceGetMemoryBusWidth, nvd);
    if (f->mem_bus_bits <= 0 && v > 0)
        f->mem_bus_bits = (int)v;
}

static bool mig_enabled(const struct gr_nvml_api *nv, nvmlDevice_t d)
{
    unsigned cur = 0, pend = 0;

    return nv->nvmlDeviceGetMigMode && nv->nvmlDeviceGetMigMode(d, &cur, &pend) == NVML_SUCCESS &&
           cur == NVML_DEVICE_MIG_ENABLE;
}

/* The standard level's part for one GPU: measures and judges. */
static enum agent_verdict gpu_standard(const struct gpu_ctx *g, int index,
                                       const struct agent_gpu_facts *f,
                                       const struct agent_gpu_model *row, json_t *figures,
                                       json_t *reasons)
{
    enum agent_verdict v = AGENT_HEALTHY, fv;
    struct agent_measure m;
    char why[256], buf[400];
    int rc;

    if (g->cu == NULL) {
        json_array_append_new(reasons, json_string("standard checks need the CUDA driver API, "
                                                   "which is not available: ran the quick "
                                                   "checks only"));
        return AGENT_HEALTHY;
    }
    if (!g->kernels) {
        json_array_append_new(reasons, json_string("standard checks need the bundled kernels, "
                                                   "which this build lacks (kernels not built "
                                                   "in): ran the quick checks only"));
        return AGENT_HEALTHY;
    }
    rc = agent_gpu_measure(index, &m, reasons, &v, why, sizeof(why));
    if (rc < 0) {
        /* ORC_ENOTSUP: no code for this GPU in the fatbin, as without nvcc */
        snprintf(buf, sizeof(buf), "standard checks did not run (%s): ran the quick checks only",
                 why);
        json_array_append_new(reasons, json_string(buf));
        return rc == ORC_ENOTSUP ? AGENT_HEALTHY : AGENT_WARNING;
    }
    fv = agent_judge_figures(f, &m, row, figures, reasons);
    return fv > v ? fv : v;
}

static json_t *gpu_check(const struct gpu_ctx *g, int index)
{
    char name[128] = "", uuid[NVML_DEVICE_UUID_V2_BUFFER_SIZE] = "";
    struct agent_gpu_facts f;
    struct agent_nvml_facts nf;
    json_t *reasons = json_array(), *figures = json_object(), *out;
    const struct agent_gpu_model *row;
    enum agent_verdict v = AGENT_HEALTHY, sv = AGENT_HEALTHY;
    nvmlDevice_t nvd = NULL;
    bool has_nvd = false;
    CUdevice dev = 0;

    memset(&f, 0, sizeof(f));
    agent_nvml_facts_init(&nf);
    if (g->cu) {
        if (g->cu->cuDeviceGet(&dev, index) != CUDA_SUCCESS) {
            json_array_append_new(reasons, json_string("no CUDA device has this index"));
            return json_pack("{s:i,s:n,s:n,s:n,s:s,s:o,s:o,s:n}", "index", index, "uuid", "name",
                             "model", "verdict", "failed", "reasons", reasons, "figures", figures,
                             "nvml");
        }
        has_nvd = gr_nvml_device_for_cuda(dev, &nvd);
    } else {
        has_nvd = g->nv->nvmlDeviceGetHandleByIndex((unsigned)index, &nvd) == NVML_SUCCESS;
    }
    gpu_facts(g, dev, has_nvd, nvd, &f, name, sizeof(name), uuid);
    f.name = name;
    row = agent_model_lookup(name);
    if (has_nvd && mig_enabled(g->nv, nvd) && g->level == AGENT_CHECK_STANDARD) {
        /* a MIG instance has a share of the SMs (its own count, from CUDA)
         * and of the memory: no whole-card bandwidth peak or table row */
        json_array_append_new(reasons, json_string("MIG is enabled: the figures are one MIG "
                                                   "instance's, judged by the peak-ratio rules "
                                                   "for its SMs only"));
        f.mem_bus_bits = 0;
        row = NULL;
    }
    if (g->level == AGENT_CHECK_STANDARD)
        sv = gpu_standard(g, index, &f, row, figures, reasons);
    if (has_nvd) /* after the kernels: their errors and throttling count */
        nvml_gather(g->nv, nvd, &nf);
    v = agent_judge_nvml(&nf, reasons);
    v = sv > v ? sv : v;
    out = json_pack("{s:i,s:s,s:s,s:o,s:s,s:o,s:o}", "index", index, "uuid", uuid, "name", name,
                    "model", row ? json_string(row->model) : json_null(), "verdict",
                    agent_verdict_name(v), "reasons", reasons, "figures", figures);
    if (out != NULL)
        json_object_set_new(out, "nvml", has_nvd ? agent_nvml_json(&nf) : json_null());
    return out;
}

/* The indices to check: gpus (duplicates dropped), or all count. */
static size_t check_list(const int *gpus, size_t ngpus, int count, int *out, size_t cap)
{
    size_t n = 0;

    if (gpus == NULL) {
        for (int i = 0; i < count && n < cap; i++)
            out[n++] = i;
        return n;
    }
    for (size_t i = 0; i < ngpus && n < cap; i++) {
        bool dup = false;

        for (size_t k = 0; k < n && !dup; k++)
            dup = out[k] == gpus[i];
        if (!dup)
            out[n++] = gpus[i];
    }
    return n;
}

json_t *agent_health_check(enum agent_level level, const int *gpus, size_t ngpus)
{
    char cwhy[256] = "", nwhy[256] = "";
    struct gpu_ctx g = {.level = level};
    enum agent_verdict worst = AGENT_HEALTHY;
    json_t *out, *list;
    int count = 0, idx[1024];
    size_t n;

    g.cu = gr_cuda_load(cwhy, sizeof(cwhy));
    g.nv = gr_nvml_load(nwhy, sizeof(nwhy));
    g.kernels = GR_FATBIN_SIZE(health_kernels) > 0;
    if (g.cu && g.cu->cuDeviceGetCount(&count) != CUDA_SUCCESS)
        count = 0;
    if (g.cu == NULL && g.nv) {
        unsigned c = 0;

        if (g.nv->nvmlDeviceGetCount(&c) == NVML_SUCCESS)
            count = (int)c;
    }
    out = json_pack("{s:s,s:b}", "level", level == AGENT_CHECK_STANDARD ? "standard" : "quick",
                    "kernels", g.kernels);
    list = json_array();
    if (out == NULL || list == NULL) {
        json_decref(out);
        json_decref(list);
        return NULL;
    }
    if (count <= 0) {
        char err[600];

        if (g.cu)
            snprintf(err, sizeof(err), "no CUDA device");
        else
            snprintf(err, sizeof(err), "%s%s%s", cwhy, nwhy[0] && g.nv == NULL ? "; " : "",
                     g.nv == NULL ? nwhy : "");
        json_object_set_new(out, "verdict", json_string("none"));
        json_object_set_new(out, "gpus", list);
        json_object_set_new(out, "error", json_string(err));
        return out;
    }
    n = check_list(gpus, ngpus, count, idx, sizeof(idx) / sizeof(idx[0]));
    for (size_t i = 0; i < n; i++) {
        json_t *one = gpu_check(&g, idx[i]);
        const char *v = json_string_value(json_object_get(one, "verdict"));

        if (one == NULL) {
            json_decref(list);
            json_decref(out);
            return NULL;
        }
        if (v && strcmp(v, "failed") == 0)
            worst = AGENT_FAILED;
        else if (v && strcmp(v, "warning") == 0 && worst < AGENT_WARNING)
            worst = AGENT_WARNING;
        json_array_append_new(list, one);
    }
    json_object_set_new(out, "verdict", json_string(n > 0 ? agent_verdict_name(worst) : "none"));
    json_object_set_new(out, "gpus", list);
    if (level == AGENT_CHECK_STANDARD && !g.kernels)
        json_object_set_new(out, "note",
                            json_string("kernels not built in: the standard level "
                                        "ran the quick checks only"));
    return out;
}
