/*
 * What "healthy" means for gpu-agent's checks (health.h): the one table of
 * per-model minima, the peak formulas that judge every figure against the
 * card's own clocks and bus, the ratios that apply when a model is not in the
 * table, and the verdict logic as pure functions from figures and NVML
 * readings to a verdict and plain-sentence reasons.
 *
 * Where the numbers come from (docs/gpu.md repeats this):
 *  - DCGM: NVIDIA DCGM's diagnostic SKU file (nvvs/diag-skus.yaml.in, the
 *    stored public copy we read), memory_bandwidth.minimum_bandwidth in MB/s
 *    and sm_stress.target_stress in GFLOP/s (SGEMM where use_dgemm is false),
 *    each "75 % of what dcgmproftester measured" by its own comments. That
 *    copy has no Hopper rows; the H100 SXM levels (memory >= 1.9 TB/s, FP32 >=
 *    27.8 TFLOP/s) are DCGM's published H100 SXM pass levels as the project
 *    was given them, not re-read here.
 *  - scaled: models without DCGM figures get the H100 SXM levels scaled by
 *    their datasheet: memory 1.9 / 3.35 = 0.567 of the datasheet bandwidth,
 *    FP32 27.8 / 67 = 0.415 of the datasheet FP32 rate.
 *  - datasheet: NVIDIA's product datasheets (bandwidth, FP32 at boost).
 *  - retired pages: DCGM's dcgm_gpu_hardware_limits.h
 *    (DCGM_LIMIT_MAX_RETIRED_PAGES 63, _SOFT_LIMIT 15).
 */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cuda.h"
#include "health.h"

#define T 1e12
#define G 1e9
#define MEM_SCALE (1.9 / 3.35)
#define FP32_SCALE (27.8 / 67.0)

/* clang-format off */
static const struct agent_gpu_model models[] = {
    /* model, name words, datasheet memory B/s, datasheet FP32 FLOP/s,
     * minimum memory B/s, minimum FP32 FLOP/s, source */
    {"H200 NVL", {"H200", "NVL"}, 4.8 * T, 60.0 * T, 4.8 * T * MEM_SCALE, 60.0 * T * FP32_SCALE,
     "scaled from DCGM's H100 SXM levels by the H200 NVL datasheet (4.8 TB/s, 60 TFLOP/s)"},
    {"H200", {"H200"}, 4.8 * T, 67.0 * T, 4.8 * T * MEM_SCALE, 27.8 * T,
     "memory scaled from DCGM's H100 SXM level by the H200 datasheet (4.8 TB/s); FP32 as "
     "H100 SXM (same chip and clocks, 67 TFLOP/s)"},
    {"H100 NVL", {"H100", "NVL"}, 3.9 * T, 60.0 * T, 3.9 * T * MEM_SCALE, 60.0 * T * FP32_SCALE,
     "scaled from DCGM's H100 SXM levels by the H100 NVL datasheet (3.9 TB/s, 60 TFLOP/s)"},
    {"H100 PCIe", {"H100", "PCIe"}, 2.0 * T, 51.0 * T, 2.0 * T * MEM_SCALE, 51.0 * T * FP32_SCALE,
     "scaled from DCGM's H100 SXM levels by the H100 PCIe datasheet (2.0 TB/s, 51 TFLOP/s)"},
    {"H100 SXM", {"H100"}, 3.35 * T, 67.0 * T, 1.9 * T, 27.8 * T,
     "DCGM's published H100 SXM pass levels (datasheet 3.35 TB/s, 67 TFLOP/s)"},
    {"A100 SXM4 80GB", {"A100", "SXM*", "80GB"}, 2.039 * T, 19.5 * T, 1173000e6,
     19.5 * T * FP32_SCALE,
     "memory: DCGM A100-SXM4-80GB (20b2) 1173000 MB/s; FP32 scaled (DCGM uses DGEMM there)"},
    {"A100 SXM4 40GB", {"A100", "SXM*"}, 1.555 * T, 19.5 * T, 969750e6, 19.5 * T * FP32_SCALE,
     "memory: DCGM A100 PCIe 40GB (20f1) 969750 MB/s, the same memory (DCGM's own 20b0 entry "
     "reads 137500, a typo by its comment); FP32 scaled"},
    {"A100 PCIe 80GB", {"A100", "80GB"}, 1.935 * T, 19.5 * T, 1121250e6, 19.5 * T * FP32_SCALE,
     "memory: DCGM A100-20b5 1121250 MB/s; FP32 scaled"},
    {"A100 PCIe 40GB", {"A100"}, 1.555 * T, 19.5 * T, 969750e6, 19.5 * T * FP32_SCALE,
     "memory: DCGM A100 PCIe (20f1) 969750 MB/s; FP32 scaled"},
    {"L40S", {"L40S"}, 864.0 * G, 91.6 * T, 864.0 * G * MEM_SCALE, 91.6 * T * FP32_SCALE,
     "scaled from DCGM's H100 SXM levels by the L40S datasheet (864 GB/s, 91.6 TFLOP/s)"},
    {"A10G", {"A10G"}, 600.0 * G, 31.2 * T, 362700e6, 12750e9,
     "DCGM A10g (2237): 362700 MB/s, SGEMM 12750 GFLOP/s"},
    {"A10", {"A10"}, 600.0 * G, 31.2 * T, 480525e6, 6075e9,
     "DCGM A10 (22361482): 480525 MB/s, SGEMM 6075 GFLOP/s"},
    {"T4", {"T4"}, 320.0 * G, 8.1 * T, 183000e6, 4125e9,
     "DCGM Tesla T4 (1eb8): 183000 MB/s, SGEMM 4125 GFLOP/s"},
    {"V100S", {"V100S"}, 1134.0 * G, 16.4 * T, 675000e6, 16.4 * T * FP32_SCALE,
     "memory: DCGM V100S (1df6) 675000 MB/s; FP32 scaled (DCGM uses DGEMM there)"},
    {"V100", {"V100"}, 900.0 * G, 15.7 * T, 607500e6, 14.0 * T * FP32_SCALE,
     "memory: DCGM V100 SXM2/PCIe (1db1, 1db4, 1db5) 607500 MB/s; FP32 scaled from the PCIe "
     "part's 14 TFLOP/s (DCGM uses DGEMM there)"},
};
/* clang-format on */

const struct agent_rules agent_rules = {
    .mem_fail_ratio = 0.50, /* a copy kernel reaches 80-92 % of the bus peak */
    .mem_warn_ratio = 0.70,
    .fp32_fail_ratio = 0.50, /* gr_hk_fma reaches > 90 % at the clock it ran */
    .fp32_warn_ratio = 0.80,
    .pcie_warn_ratio = 0.50, /* pinned async copies reach 70-85 % of the link */
    .ecc_corrected_warn = 1000,
    .retired_pages_fail = 63, /* DCGM_LIMIT_MAX_RETIRED_PAGES */
    .retired_dbe_warn = 15,   /* DCGM_LIMIT_MAX_RETIRED_PAGES_SOFT_LIMIT */
    .temp_margin_c = 5,
    .temp_warn_c = 85,
};

const char *agent_verdict_name(enum agent_verdict v)
{
    switch (v) {
    case AGENT_HEALTHY:
        return "healthy";
    case AGENT_WARNING:
        return "warning";
    default:
        return "failed";
    }
}

const struct agent_gpu_model *agent_models(size_t *n)
{
    *n = sizeof(models) / sizeof(models[0]);
    return models;
}

/* True if word (len bytes) matches pattern: equal ignoring case, or for
 * "XYZ*" starting with XYZ. */
static bool word_matches(const char *word, size_t len, const char *pattern)
{
    size_t plen = strlen(pattern);
    bool prefix = plen > 0 && pattern[plen - 1] == '*';

    if (prefix)
        plen--;
    if (prefix ? len < plen : len != plen)
        return false;
    for (size_t i = 0; i < plen; i++)
        if (tolower((unsigned char)word[i]) != tolower((unsigned char)pattern[i]))
            return false;
    return true;
}

static bool name_has_word(const char *name, const char *pattern)
{
    const char *p = name;

    while (*p) {
        size_t len = strcspn(p, " -_");

        if (len > 0 && word_matches(p, len, pattern))
            return true;
        p += len;
        if (*p)
            p++;
    }
    return false;
}

const struct agent_gpu_model *agent_model_lookup(const char *gpu_name)
{
    if (gpu_name == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof(models) / sizeof(models[0]); i++) {
        bool all = true;

        for (size_t k = 0; k < 4 && models[i].match[k] && all; k++)
            all = name_has_word(gpu_name, models[i].match[k]);
        if (all)
            return &models[i];
    }
    return NULL;
}

/* ---- peaks ---- */

int agent_fp32_lanes_per_sm(int major, int minor)
{
    switch (major) {
    case 3:
        return 192;
    case 5:
        return 128;
    case 6:
        return minor == 0 ? 64 : 128;
    case 7: /* V100 7.0, Xavier 7.2, T4 7.5 */
        return 64;
    case 8: /* A100 8.0: 64; GA10x 8.6, Orin 8.7, Ada 8.9: 128 */
        return minor == 0 ? 64 : 128;
    case 9: /* Hopper */
        return 128;
    default:
        return major >= 10 ? 128 : 0;
    }
}

int agent_tensor_flops_per_sm_clock(int major, int minor)
{
    switch (major) {
    case 7: /* 8 tensor cores x 64 FMA x 2 */
        return 1024;
    case 8: /* A100: 312 TFLOP/s = 108 SMs x 1.41 GHz x 2048 */
        return minor == 0 ? 2048 : 1024;
    case 9: /* H100 SXM: 989 TFLOP/s = 132 x 1.83 GHz x 4096 (wgmma; mma.sync reaches less) */
        return 4096;
    case 10:
        return 8192;
    default:
        return 0;
    }
}

double agent_peak_mem_bw(int bus_bits, double mem_clock_mhz)
{
    if (bus_bits <= 0 || mem_clock_mhz <= 0)
        return 0;
    return (double)bus_bits / 8.0 * mem_clock_mhz * 1e6 * 2.0;
}

double agent_peak_fp32(int sm_count, int major, int minor, double sm_clock_mhz)
{
    int lanes = agent_fp32_lanes_per_sm(major, minor);

    if (sm_count <= 0 || lanes <= 0 || sm_clock_mhz <= 0)
        return 0;
    return (double)sm_count * lanes * 2.0 * sm_clock_mhz * 1e6;
}

double agent_peak_tensor(int sm_count, int major, int minor, double sm_clock_mhz)
{
    int per = agent_tensor_flops_per_sm_clock(major, minor);

    if (sm_count <= 0 || per <= 0 || sm_clock_mhz <= 0)
        return 0;
    return (double)sm_count * per * sm_clock_mhz * 1e6;
}

double agent_peak_pcie(int gen, int width)
{
    /* bytes/s per lane and direction after line coding */
    static const double lane[] = {0,
                                  250e6,
                                  500e6,
                                  8e9 / 8 * 128 / 130,
                                  16e9 / 8 * 128 / 130,
                                  32e9 / 8 * 128 / 130,
                                  64e9 / 8 * 242 / 256};

    if (gen <= 0 || gen >= (int)(sizeof(lane) / sizeof(lane[0])) || width <= 0)
        return 0;
    return lane[gen] * width;
}

/* ---- initialisers ---- */

void agent_measure_init(struct agent_measure *m)
{
    memset(m, 0, sizeof(*m));
}

void agent_nvml_facts_init(struct agent_nvml_facts *n)
{
    n->present = false;
    n->ecc_volatile_corrected = n->ecc_volatile_uncorrected = -1;
    n->ecc_aggregate_corrected = n->ecc_aggregate_uncorrected = -1;
    n->retired_sbe = n->retired_dbe = -1;
    n->retired_pending = -1;
    n->rows_corrected = n->rows_uncorrected = -1;
    n->rows_pending = n->rows_failure = -1;
    n->clock_reasons = -1;
    n->persistence = -1;
    n->temp_c = n->temp_slowdown_c = n->temp_shutdown_c = -1;
    n->power_w = n->power_limit_w = -1;
}

/* ---- text ---- */

static void add_reason(json_t *reasons, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_reason(json_t *reasons, const char *fmt, ...)
{
    char buf[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    json_array_append_new(reasons, json_string(buf));
}

/* "3.35 TB/s", "864 GB/s", "27.8 TFLOP/s": v in base units. */
static const char *human(double v, const char *unit, char *buf, size_t len)
{
    if (v >= 1e12)
        snprintf(buf, len, "%.3g T%s", v / 1e12, unit);
    else if (v >= 1e9)
        snprintf(buf, len, "%.3g G%s", v / 1e9, unit);
    else
        snprintf(buf, len, "%.3g M%s", v / 1e6, unit);
    return buf;
}

static enum agent_verdict worse(enum agent_verdict a, enum agent_verdict b)
{
    return a > b ? a : b;
}

static json_t *num_or_null(double v)
{
    return v > 0 ? json_real(v) : json_null();
}

/* {"value", "unit", "peak", "of_peak", "threshold", "pass"} */
static json_t *figure(double value, const char *unit, double peak, double threshold, bool pass)
{
    json_t *f = json_object();

    json_object_set_new(f, "value", json_real(value));
    json_object_set_new(f, "unit", json_string(unit));
    json_object_set_new(f, "peak", num_or_null(peak));
    json_object_set_new(f, "of_peak",
                        peak > 0 ? json_real(round(value / peak * 1000.0) / 1000.0) : json_null());
    json_object_set_new(f, "threshold", num_or_null(threshold));
    json_object_set_new(f, "pass", json_boolean(pass));
    return f;
}

/* ---- figures ---- */

/* One throughput figure (memory, FP32): the table's minimum fails, else the
 * fail ratio of the peak; under the warn ratio of the peak warns. */
struct rate_rule {
    const char *what, *unit, *unit_short;
    double value, peak, table_min, fail_ratio, warn_ratio;
    const char *model;
};

static enum agent_verdict judge_rate(const struct rate_rule *r, json_t *figures, const char *key,
                                     json_t *reasons, json_t **fig_out)
{
    char v[32], p[32], t[32];
    double threshold = r->table_min > 0 ? r->table_min : r->peak * r->fail_ratio;
    bool pass = threshold <= 0 || r->value >= threshold;
    enum agent_verdict verdict = AGENT_HEALTHY;
    json_t *f = figure(r->value, r->unit, r->peak, threshold, pass);

    json_object_set_new(f, "threshold_from", json_string(r->table_min > 0 ? "table" : "peak"));
    human(r->value, r->unit_short, v, sizeof(v));
    human(r->peak, r->unit_short, p, sizeof(p));
    human(threshold, r->unit_short, t, sizeof(t));
    if (!pass) {
        verdict = AGENT_FAILED;
        if (r->table_min > 0)
            add_reason(reasons, "%s %s is below the %s minimum of %s%s%s%s", r->what, v, r->model,
                       t, r->peak > 0 ? " (card peak " : "", r->peak > 0 ? p : "",
                       r->peak > 0 ? ")" : "");
        else
            add_reason(reasons, "%s %s is below %.0f %% of the card's peak %s", r->what, v,
                       r->fail_ratio * 100, p);
    } else if (r->peak > 0 && r->value < r->warn_ratio * r->peak) {
        verdict = AGENT_WARNING;
        add_reason(reasons, "%s %s is %.0f %% of the card's peak %s, below the %.0f %% expected",
                   r->what, v, r->value / r->peak * 100, p, r->warn_ratio * 100);
    }
    json_object_set_new(figures, key, f);
    if (fig_out)
        *fig_out = f;
    return verdict;
}

static enum agent_verdict judge_mem(const struct agent_gpu_facts *g, const struct agent_measure *m,
                                    const struct agent_gpu_model *row, json_t *figures,
                                    json_t *reasons)
{
    struct rate_rule r = {
        .what = "memory bandwidth",
        .unit = "B/s",
        .unit_short = "B/s",
        .value = m->mem_bw,
        .peak = agent_peak_mem_bw(g->mem_bus_bits, g->mem_clock_max_mhz),
        .table_min = row ? row->mem_bw_min : 0,
        .fail_ratio = agent_rules.mem_fail_ratio,
        .warn_ratio = agent_rules.mem_warn_ratio,
        .model = row ? row->model : NULL,
    };
    json_t *f = NULL;
    enum agent_verdict v = judge_rate(&r, figures, "mem_bandwidth", reasons, &f);

    json_object_set_new(f, "buffer_bytes", json_integer((json_int_t)m->mem_bytes));
    json_object_set_new(f, "errors", json_integer((json_int_t)m->mem_errors));
    if (m->mem_errors > 0) {
        add_reason(reasons, "memory test: %llu 32-bit words read back wrong after copying %zu MiB",
                   m->mem_errors, m->mem_bytes >> 20);
        json_object_set_new(f, "pass", json_false());
        v = AGENT_FAILED;
    }
    return v;
}

static enum agent_verdict judge_fp32(const struct agent_gpu_facts *g, const struct agent_measure *m,
                                     const struct agent_gpu_model *row, json_t *figures,
                                     json_t *reasons)
{
    double clock = m->fp32_clock_mhz > 0 ? m->fp32_clock_mhz : g->sm_clock_max_mhz;
    struct rate_rule r = {
        .what = "FP32 FMA throughput",
        .unit = "FLOP/s",
        .unit_short = "FLOP/s",
        .value = m->fp32,
        .peak = agent_peak_fp32(g->sm_count, g->cc_major, g->cc_minor, clock),
        .table_min = row ? row->fp32_min : 0,
        .fail_ratio = agent_rules.fp32_fail_ratio,
        .warn_ratio = agent_rules.fp32_warn_ratio,
        .model = row ? row->model : NULL,
    };
    json_t *f = NULL;
    enum agent_verdict v = judge_rate(&r, figures, "fp32", reasons, &f);

    json_object_set_new(f, "clock_mhz", num_or_null(clock));
    json_object_set_new(
        f, "peak_at_max_clock",
        num_or_null(agent_peak_fp32(g->sm_count, g->cc_major, g->cc_minor, g->sm_clock_max_mhz)));
    return v;
}

static enum agent_verdict judge_tensor(const struct agent_gpu_facts *g,
                                       const struct agent_measure *m, json_t *figures,
                                       json_t *reasons)
{
    double clock = m->fp32_clock_mhz > 0 ? m->fp32_clock_mhz : g->sm_clock_max_mhz;
    double peak = agent_peak_tensor(g->sm_count, g->cc_major, g->cc_minor, clock);
    bool exact = m->tensor_checked > 0 && m->tensor_wrong == 0;
    json_t *f = figure(m->tensor, "FLOP/s", peak, 0, exact);

    json_object_set_new(f, "checked", json_integer(m->tensor_checked));
    json_object_set_new(f, "wrong", json_integer(m->tensor_wrong));
    json_object_set_new(figures, "tensor_fp16", f);
    if (!exact) {
        add_reason(reasons,
                   "tensor-core GEMM (FP16 in, FP32 accumulate) gave wrong results: %u of %u "
                   "elements compared with the host differ",
                   m->tensor_wrong, m->tensor_checked);
        return AGENT_FAILED;
    }
    return AGENT_HEALTHY;
}

static enum agent_verdict judge_repeat(const struct agent_measure *m, json_t *figures,
                                       json_t *reasons)
{
    unsigned bad = m->repeat_run_diff + m->repeat_host_diff;
    json_t *f = figure((double)bad, "values", 0, 0, bad == 0);
    enum agent_verdict v = AGENT_HEALTHY;

    json_object_set_new(f, "threshold", json_integer(0));
    json_object_set_new(f, "compared", json_integer(m->repeat_n));
    json_object_set_new(f, "run_to_run", json_integer(m->repeat_run_diff));
    json_object_set_new(f, "vs_host", json_integer(m->repeat_host_diff));
    json_object_set_new(figures, "repeatability", f);
    if (m->repeat_run_diff > 0) {
        add_reason(reasons,
                   "repeatability: two runs of the same deterministic kernel differ in %u of %u "
                   "values",
                   m->repeat_run_diff, m->repeat_n);
        v = AGENT_FAILED;
    }
    if (m->repeat_host_diff > 0) {
        add_reason(reasons,
                   "repeatability: the GPU's integer and IEEE float results differ from the "
                   "host's in %u of %u values",
                   m->repeat_host_diff, m->repeat_n);
        v = AGENT_FAILED;
    }
    return v;
}

static enum agent_verdict judge_pcie_dir(const char *key, const char *what, double value,
                                         double peak, json_t *figures, json_t *reasons)
{
    double threshold = peak * agent_rules.pcie_warn_ratio;
    bool pass = peak <= 0 || value >= threshold;
    char v[32], p[32];

    json_object_set_new(figures, key, figure(value, "B/s", peak, threshold, pass));
    if (pass)
        return AGENT_HEALTHY;
    add_reason(reasons, "PCIe %s %s is below %.0f %% of the link's peak %s", what,
               human(value, "B/s", v, sizeof(v)), agent_rules.pcie_warn_ratio * 100,
               human(peak, "B/s", p, sizeof(p)));
    return AGENT_WARNING;
}

static enum agent_verdict judge_pcie(const struct agent_measure *m, json_t *figures,
                                     json_t *reasons)
{
    double peak = agent_peak_pcie(m->pcie_gen, m->pcie_width);
    enum agent_verdict v;

    v = judge_pcie_dir("pcie_h2d", "host-to-device", m->pcie_h2d, peak, figures, reasons);
    v = worse(v, judge_pcie_dir("pcie_d2h", "device-to-host", m->pcie_d2h, peak, figures, reasons));
    if (m->pcie_gen > 0 && m->pcie_max_gen > 0 && m->pcie_width > 0 && m->pcie_max_width > 0 &&
        (m->pcie_gen < m->pcie_max_gen || m->pcie_width < m->pcie_max_width)) {
        add_reason(reasons,
                   "PCIe link runs at gen %d x%d under load, below the gen %d x%d that GPU and "
                   "slot support",
                   m->pcie_gen, m->pcie_width, m->pcie_max_gen, m->pcie_max_width);
        v = worse(v, AGENT_WARNING);
    }
    for (int i = 0; i < 2; i++) {
        json_t *f = json_object_get(figures, i == 0 ? "pcie_h2d" : "pcie_d2h");

        json_object_set_new(f, "gen", m->pcie_gen > 0 ? json_integer(m->pcie_gen) : json_null());
        json_object_set_new(f, "width",
                            m->pcie_width > 0 ? json_integer(m->pcie_width) : json_null());
    }
    return v;
}

enum agent_verdict agent_judge_figures(const struct agent_gpu_facts *g,
                                       const struct agent_measure *m,
                                       const struct agent_gpu_model *row, json_t *figures,
                                       json_t *reasons)
{
    enum agent_verdict v = AGENT_HEALTHY;

    if (m->has_mem)
        v = worse(v, judge_mem(g, m, row, figures, reasons));
    if (m->has_fp32)
        v = worse(v, judge_fp32(g, m, row, figures, reasons));
    if (m->has_tensor)
        v = worse(v, judge_tensor(g, m, figures, reasons));
    if (m->has_repeat)
        v = worse(v, judge_repeat(m, figures, reasons));
    if (m->has_pcie)
        v = worse(v, judge_pcie(m, figures, reasons));
    return v;
}

/* ---- NVML ---- */

static enum agent_verdict judge_ecc(const struct agent_nvml_facts *n, json_t *reasons)
{
    enum agent_verdict v = AGENT_HEALTHY;

    if (n->ecc_volatile_uncorrected > 0) {
        add_reason(reasons,
                   "%lld uncorrectable ECC errors since the driver loaded: drain the GPU and "
                   "reset it",
                   n->ecc_volatile_uncorrected);
        v = AGENT_FAILED;
    } else if (n->ecc_aggregate_uncorrected > 0) {
        add_reason(reasons, "%lld uncorrectable ECC errors over the GPU's lifetime",
                   n->ecc_aggregate_uncorrected);
        v = AGENT_WARNING;
    }
    if (n->ecc_volatile_corrected >= (long long)agent_rules.ecc_corrected_warn) {
        add_reason(reasons, "%lld corrected ECC errors since the driver loaded (warning from %llu)",
                   n->ecc_volatile_corrected, agent_rules.ecc_corrected_warn);
        v = worse(v, AGENT_WARNING);
    }
    return v;
}

static enum agent_verdict judge_memory_repair(const struct agent_nvml_facts *n, json_t *reasons)
{
    enum agent_verdict v = AGENT_HEALTHY;
    long long retired =
        (n->retired_sbe > 0 ? n->retired_sbe : 0) + (n->retired_dbe > 0 ? n->retired_dbe : 0);

    if (retired >= agent_rules.retired_pages_fail) {
        add_reason(reasons, "%lld retired memory pages, at or above the limit of %u", retired,
                   agent_rules.retired_pages_fail);
        v = AGENT_FAILED;
    } else if (n->retired_dbe >= agent_rules.retired_dbe_warn) {
        add_reason(reasons, "%lld memory pages retired for double-bit errors (warning from %u)",
                   n->retired_dbe, agent_rules.retired_dbe_warn);
        v = AGENT_WARNING;
    }
    if (n->retired_pending > 0) {
        add_reason(reasons, "memory pages are pending retirement: reset the GPU or reload the "
                            "driver to retire them");
        v = worse(v, AGENT_WARNING);
    }
    if (n->rows_failure > 0) {
        add_reason(reasons, "row remapping failed: the GPU has run out of spare memory rows");
        v = AGENT_FAILED;
    }
    if (n->rows_pending > 0) {
        add_reason(reasons, "remapped memory rows are pending: reset the GPU to apply them");
        v = worse(v, AGENT_WARNING);
    }
    return v;
}

static const struct {
    unsigned long long bit;
    const char *name;
    bool warn; /* a sign of trouble, not of the GPU's own power management */
} clock_bits[] = {
    {nvmlClocksEventReasonGpuIdle, "gpu_idle", false},
    {nvmlClocksEventReasonApplicationsClocksSetting, "applications_clocks_setting", false},
    {nvmlClocksEventReasonSwPowerCap, "sw_power_cap", false},
    {nvmlClocksThrottleReasonHwSlowdown, "hw_slowdown", true},
    {nvmlClocksEventReasonSyncBoost, "sync_boost", false},
    {nvmlClocksEventReasonSwThermalSlowdown, "sw_thermal_slowdown", true},
    {nvmlClocksThrottleReasonHwThermalSlowdown, "hw_thermal_slowdown", true},
    {nvmlClocksThrottleReasonHwPowerBrakeSlowdown, "hw_power_brake_slowdown", true},
    {nvmlClocksEventReasonDisplayClockSetting, "display_clock_setting", false},
};

json_t *agent_clock_reasons_json(unsigned long long bits)
{
    json_t *a = json_array();

    for (size_t i = 0; a && i < sizeof(clock_bits) / sizeof(clock_bits[0]); i++)
        if (bits & clock_bits[i].bit)
            json_array_append_new(a, json_string(clock_bits[i].name));
    return a;
}

static enum agent_verdict judge_clocks_and_heat(const struct agent_nvml_facts *n, json_t *reasons)
{
    enum agent_verdict v = AGENT_HEALTHY;

    for (size_t i = 0; n->clock_reasons > 0 && i < sizeof(clock_bits) / sizeof(clock_bits[0]);
         i++) {
        if (clock_bits[i].warn && ((unsigned long long)n->clock_reasons & clock_bits[i].bit)) {
            add_reason(reasons, "clocks are held down: %s", clock_bits[i].name);
            v = AGENT_WARNING;
        }
    }
    if (n->persistence == 0) {
        add_reason(reasons, "persistence mode is off: the driver tears the GPU down whenever no "
                            "process uses it (nvidia-persistenced, or nvidia-smi -pm 1)");
        v = worse(v, AGENT_WARNING);
    }
    if (n->temp_c >= 0) {
        int limit = n->temp_slowdown_c > 0 ? n->temp_slowdown_c - agent_rules.temp_margin_c
                                           : agent_rules.temp_warn_c;

        if (n->temp_c >= limit) {
            add_reason(reasons, "temperature %d C is at or above %d C%s", n->temp_c, limit,
                       n->temp_slowdown_c > 0 ? " (near its slowdown temperature)" : "");
            v = worse(v, AGENT_WARNING);
        }
    }
    if (n->power_w > 0 && n->power_limit_w > 0 && n->power_w > n->power_limit_w * 1.1) {
        add_reason(reasons, "power draw %.0f W is above the enforced limit of %.0f W", n->power_w,
                   n->power_limit_w);
        v = worse(v, AGENT_WARNING);
    }
    return v;
}

enum agent_verdict agent_judge_nvml(const struct agent_nvml_facts *n, json_t *reasons)
{
    enum agent_verdict v;

    if (!n->present) {
        add_reason(reasons, "NVML has no answer for this GPU: ECC errors, retired pages, "
                            "remapped rows and throttling were not checked");
        return AGENT_WARNING;
    }
    v = judge_ecc(n, reasons);
    v = worse(v, judge_memory_repair(n, reasons));
    v = worse(v, judge_clocks_and_heat(n, reasons));
    return v;
}

static json_t *count_or_null(long long v)
{
    return v >= 0 ? json_integer(v) : json_null();
}

static json_t *flag_or_null(int v)
{
    return v >= 0 ? json_boolean(v) : json_null();
}

json_t *agent_nvml_json(const struct agent_nvml_facts *n)
{
    json_t *o = json_pack(
        "{s:{s:{s:o,s:o},s:{s:o,s:o}},s:{s:o,s:o,s:o},s:{s:o,s:o,s:o,s:o}}", "ecc_errors",
        "volatile", "corrected", count_or_null(n->ecc_volatile_corrected), "uncorrected",
        count_or_null(n->ecc_volatile_uncorrected), "aggregate", "corrected",
        count_or_null(n->ecc_aggregate_corrected), "uncorrected",
        count_or_null(n->ecc_aggregate_uncorrected), "retired_pages", "single_bit",
        count_or_null(n->retired_sbe), "double_bit", count_or_null(n->retired_dbe), "pending",
        flag_or_null(n->retired_pending), "remapped_rows", "corrected",
        count_or_null(n->rows_corrected), "uncorrected", count_or_null(n->rows_uncorrected),
        "pending", flag_or_null(n->rows_pending), "failure", flag_or_null(n->rows_failure));

    if (o == NULL)
        return NULL;
    json_object_set_new(o, "throttle_reasons",
                        n->clock_reasons >= 0
                            ? agent_clock_reasons_json((unsigned long long)n->clock_reasons)
                            : json_null());
    json_object_set_new(o, "persistence_mode",
                        n->persistence < 0   ? json_null()
                        : n->persistence > 0 ? json_string("enabled")
                                             : json_string("disabled"));
    json_object_set_new(o, "temperature_c", n->temp_c >= 0 ? json_integer(n->temp_c) : json_null());
    json_object_set_new(o, "slowdown_temperature_c",
                        n->temp_slowdown_c > 0 ? json_integer(n->temp_slowdown_c) : json_null());
    json_object_set_new(o, "power_w", num_or_null(n->power_w));
    json_object_set_new(o, "power_limit_w", num_or_null(n->power_limit_w));
    return o;
}
