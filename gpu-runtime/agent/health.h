/*
 * The inside of gpu-agent's health checks (health.c, thresholds.c), exposed
 * for the unit tests: the per-model table, the peak formulas, and the verdict
 * logic as pure functions from measured figures and NVML readings to a
 * verdict, reasons and the report's JSON. Nothing here touches a GPU.
 */
#ifndef GR_AGENT_HEALTH_H
#define GR_AGENT_HEALTH_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

enum agent_verdict { AGENT_HEALTHY = 0, AGENT_WARNING = 1, AGENT_FAILED = 2 };

/* "healthy", "warning", "failed". */
const char *agent_verdict_name(enum agent_verdict v);

/* ---- the per-model table (thresholds.c) ---- */

/* One row. A GPU matches when every word of match[] is a word of its name
 * (words split at ' ', '-' and '_', case-insensitive; "SXM*" matches any
 * word that starts with SXM). Rows are tried in order; the first match wins. */
struct agent_gpu_model {
    const char *model;    /* the row's name, reported as "model": "H100 SXM" */
    const char *match[4]; /* NULL-terminated when shorter */
    double mem_bw_spec;   /* datasheet memory bandwidth, B/s */
    double fp32_spec;     /* datasheet FP32 rate at boost clock, FLOP/s */
    double mem_bw_min;    /* measured below this: failed (B/s, read + written) */
    double fp32_min;      /* measured below this: failed (FLOP/s) */
    const char *source;   /* where the minima come from */
};

/* The row for a GPU's name (NVML's or CUDA's), or NULL. */
const struct agent_gpu_model *agent_model_lookup(const char *gpu_name);

/* The whole table, *n rows. */
const struct agent_gpu_model *agent_models(size_t *n);

/* Ratios and limits that apply to every GPU (thresholds.c). */
struct agent_rules {
    double mem_fail_ratio; /* unknown model: failed below this share of peak */
    double mem_warn_ratio; /* any model: warning below this share of peak */
    double fp32_fail_ratio;
    double fp32_warn_ratio;
    double pcie_warn_ratio;                /* warning below this share of the trained link's peak */
    unsigned long long ecc_corrected_warn; /* volatile corrected ECC errors: warning at or above */
    unsigned retired_pages_fail; /* single + double bit retired pages: failed at or above */
    unsigned retired_dbe_warn;   /* double bit retired pages: warning at or above */
    int temp_margin_c;           /* warning this close to the slowdown temperature */
    int temp_warn_c; /* warning at or above, when the GPU gives no slowdown temperature */
};
extern const struct agent_rules agent_rules;

/* ---- peaks from the card's own clocks (thresholds.c) ---- */

/* FP32 lanes per SM for a compute capability; 0 when unknown. */
int agent_fp32_lanes_per_sm(int major, int minor);
/* Dense FP16-in/FP32-accumulate tensor FLOPs per SM per clock; 0 unknown. */
int agent_tensor_flops_per_sm_clock(int major, int minor);
/* bus_bits / 8 * mem_clock * 2 (DDR: GDDR and HBM clocks as NVML reports
 * them); 0 when either is unknown (<= 0). B/s. */
double agent_peak_mem_bw(int bus_bits, double mem_clock_mhz);
/* sm_count * lanes * 2 * clock; 0 when unknown. FLOP/s. */
double agent_peak_fp32(int sm_count, int major, int minor, double sm_clock_mhz);
double agent_peak_tensor(int sm_count, int major, int minor, double sm_clock_mhz);
/* One direction of a PCIe link after line coding (gen 1-2 8b/10b, gen 3-5
 * 128b/130b, gen 6 FLIT 242/256); 0 when unknown. B/s. */
double agent_peak_pcie(int gen, int width);

/* ---- what the checks saw ---- */

/* The GPU as discovered (its own facts, for the peaks). Unknown: <= 0. */
struct agent_gpu_facts {
    const char *name;
    int cc_major, cc_minor;
    int sm_count;
    int mem_bus_bits;
    double mem_clock_max_mhz;
    double sm_clock_max_mhz;
};

/* The standard level's figures; has_* false: not measured. */
struct agent_measure {
    bool has_mem;
    double mem_bw;                 /* B/s, bytes read + written by the copy */
    size_t mem_bytes;              /* size of each of the two buffers */
    unsigned long long mem_errors; /* 32-bit words read back wrong */
    bool has_fp32;
    double fp32;           /* FLOP/s */
    double fp32_clock_mhz; /* SM clock while it ran (NVML; else the max) */
    bool has_tensor;
    double tensor;                         /* FLOP/s */
    unsigned tensor_checked, tensor_wrong; /* GEMM elements compared with the host */
    bool has_repeat;
    unsigned repeat_n;         /* values compared */
    unsigned repeat_run_diff;  /* values that differ between two GPU runs */
    unsigned repeat_host_diff; /* values that differ from the host's */
    bool has_pcie;
    double pcie_h2d, pcie_d2h;        /* B/s, pinned memory, async copies */
    int pcie_gen, pcie_width;         /* the link while copying (NVML); 0 unknown */
    int pcie_max_gen, pcie_max_width; /* what GPU and slot support; 0 unknown */
};

/* NVML's readings; every field < 0 means unknown (not supported or no NVML). */
struct agent_nvml_facts {
    bool present; /* NVML answered for this GPU */
    long long ecc_volatile_corrected, ecc_volatile_uncorrected;
    long long ecc_aggregate_corrected, ecc_aggregate_uncorrected;
    long long retired_sbe, retired_dbe;
    int retired_pending; /* 0 / 1 */
    long long rows_corrected, rows_uncorrected;
    int rows_pending, rows_failure; /* 0 / 1 */
    long long clock_reasons;        /* nvmlClocksEventReason* bits */
    int persistence;                /* 0 off, 1 on */
    int temp_c, temp_slowdown_c, temp_shutdown_c;
    double power_w, power_limit_w;
};

void agent_measure_init(struct agent_measure *m);
void agent_nvml_facts_init(struct agent_nvml_facts *n); /* all unknown, present false */

/* ---- the verdict (thresholds.c) ---- */

/* Judges NVML's readings: appends a sentence per finding to reasons and
 * returns the worst verdict. n->present false: one warning saying so. */
enum agent_verdict agent_judge_nvml(const struct agent_nvml_facts *n, json_t *reasons);

/* Judges the measured figures against row (NULL: the peak-ratio rules) and
 * the peaks from g; adds one object per figure to figures
 * ({"value", "unit", "peak", "of_peak", "threshold", "pass", ...}) and a
 * sentence per finding to reasons. Returns the worst verdict. */
enum agent_verdict agent_judge_figures(const struct agent_gpu_facts *g,
                                       const struct agent_measure *m,
                                       const struct agent_gpu_model *row, json_t *figures,
                                       json_t *reasons);

/* The report's "nvml" object; unknown fields are null. NULL on OOM. */
json_t *agent_nvml_json(const struct agent_nvml_facts *n);

/* The names of the set clock-event bits: "hw_slowdown", "sw_thermal", ... */
json_t *agent_clock_reasons_json(unsigned long long bits);

/* ---- the host's side of the repeatability check (health.c) ---- */

/* The value gr_hk_repeat computes for element i (bit for bit). */
unsigned agent_repeat_value(unsigned i, unsigned rounds, unsigned seed);
/* The GEMM input gr_hk_gemm_fill writes at flat index idx, times 2:
 * -2..2. */
int agent_gemm_value2(unsigned idx, unsigned seed);

/* ---- one GPU's measurements (health.c) ---- */

/* Runs the standard level's kernels on CUDA device ordinal. Blocking (a few
 * seconds), safe to run on any thread (it makes its own context current).
 * Fills m; a part that cannot run adds a reason (and verdict_out is raised
 * to warning). Returns 0, or < 0 with why when nothing could run
 * (ORC_ENOTSUP: kernels not built in / no code for this GPU). */
int agent_gpu_measure(int ordinal, struct agent_measure *m, json_t *reasons,
                      enum agent_verdict *verdict_out, char *why, size_t len);

#endif
