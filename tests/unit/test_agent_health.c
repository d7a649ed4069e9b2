/*
 * gpu-agent's health checks (gpu-runtime/agent/health.c, thresholds.c)
 * without a GPU: the level names; a check on a node without driver ("none",
 * no GPUs, and exit status 0 from the real binary when $GPU_AGENT is built);
 * and the verdict logic as pure functions: the per-model table lookup by the
 * names NVML and CUDA give, the peak formulas, figures against the table and
 * the card's own peak (unknown models by the peak-ratio rules), NVML
 * readings to reasons, and the host's mirror of the repeatability kernel.
 */
#include <math.h>
#include <sys/wait.h>

#include "testutil.h"

#include "agent.h"
#include "cuda.h"
#include "health.h"

static void no_libraries(void)
{
    setenv("GR_LIBCUDA", "/nonexistent/libcuda.so.1", 1);
    setenv("GR_LIBNVML", "/nonexistent/libnvidia-ml.so.1", 1);
}

static bool has_reason(json_t *reasons, const char *needle)
{
    for (size_t i = 0; i < json_array_size(reasons); i++)
        if (strstr(json_string_value(json_array_get(reasons, i)), needle))
            return true;
    return false;
}

static void print_reasons(json_t *reasons)
{
    for (size_t i = 0; i < json_array_size(reasons); i++)
        fprintf(stderr, "  reason: %s\n", json_string_value(json_array_get(reasons, i)));
}

static void test_level_parse(void **state)
{
    enum agent_level l = AGENT_CHECK_STANDARD;

    (void)state;
    assert_true(agent_level_parse("quick", &l));
    assert_int_equal(l, AGENT_CHECK_QUICK);
    assert_true(agent_level_parse("standard", &l));
    assert_int_equal(l, AGENT_CHECK_STANDARD);
    assert_false(agent_level_parse("Quick", &l));
    assert_false(agent_level_parse("", &l));
    assert_false(agent_level_parse("full", &l));
    assert_false(agent_level_parse(NULL, &l));
    assert_int_equal(l, AGENT_CHECK_STANDARD);
}

static void test_check_without_gpu(void **state)
{
    static const int some[] = {0, 1};

    (void)state;
    no_libraries();
    for (int level = 0; level < 2; level++) {
        json_t *r = agent_health_check(level ? AGENT_CHECK_STANDARD : AGENT_CHECK_QUICK,
                                       level ? some : NULL, level ? 2 : 0);

        assert_non_null(r);
        assert_string_equal(json_string_value(json_object_get(r, "verdict")), "none");
        assert_string_equal(json_string_value(json_object_get(r, "level")),
                            level ? "standard" : "quick");
        assert_true(json_is_boolean(json_object_get(r, "kernels")));
        assert_true(json_is_array(json_object_get(r, "gpus")));
        assert_int_equal(json_array_size(json_object_get(r, "gpus")), 0);
        assert_non_null(strstr(json_string_value(json_object_get(r, "error")), "not found"));
        json_decref(r);
    }
    setenv("GR_LIBCUDA", "libm.so.6", 1);
    {
        json_t *r = agent_health_check(AGENT_CHECK_STANDARD, NULL, 0);

        assert_string_equal(json_string_value(json_object_get(r, "verdict")), "none");
        assert_non_null(strstr(json_string_value(json_object_get(r, "error")), "not the CUDA"));
        json_decref(r);
    }
    unsetenv("GR_LIBCUDA");
    unsetenv("GR_LIBNVML");
}

/* The real binary, where the build made it: `check` exits 0 without GPUs. */
static void test_binary_without_gpu(void **state)
{
    const char *bin = getenv("GPU_AGENT");
    char cmd[1024], *out = NULL;
    size_t len = 0;
    json_t *j;
    FILE *p;
    int rc;

    (void)state;
    if (bin == NULL || access(bin, X_OK) != 0)
        skip();
    snprintf(cmd, sizeof(cmd),
             "GR_LIBCUDA=/nonexistent/libcuda.so.1 GR_LIBNVML=/nonexistent/libnvidia-ml.so.1 "
             "'%s' check --level standard",
             bin);
    p = popen(cmd, "r");
    assert_non_null(p);
    FILE *mem = open_memstream(&out, &len);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), p)) > 0)
        fwrite(buf, 1, n, mem);
    fclose(mem);
    rc = pclose(p);
    assert_true(WIFEXITED(rc));
    assert_int_equal(WEXITSTATUS(rc), 0);
    j = json_loads(out, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "verdict")), "none");
    json_decref(j);
    free(out);
}

static void test_model_lookup(void **state)
{
    static const struct {
        const char *name, *model;
    } cases[] = {
        {"NVIDIA H100 80GB HBM3", "H100 SXM"},
        {"NVIDIA H100 SXM5 80GB", "H100 SXM"},
        {"NVIDIA H100 PCIe", "H100 PCIe"},
        {"NVIDIA H100 NVL", "H100 NVL"},
        {"NVIDIA H200", "H200"},
        {"NVIDIA H200 NVL", "H200 NVL"},
        {"NVIDIA A100-SXM4-80GB", "A100 SXM4 80GB"},
        {"NVIDIA A100-SXM4-40GB", "A100 SXM4 40GB"},
        {"NVIDIA A100 80GB PCIe", "A100 PCIe 80GB"},
        {"NVIDIA A100-PCIE-40GB", "A100 PCIe 40GB"},
        {"NVIDIA L40S", "L40S"},
        {"NVIDIA A10", "A10"},
        {"NVIDIA A10G", "A10G"},
        {"Tesla T4", "T4"},
        {"Tesla V100-SXM2-16GB", "V100"},
        {"Tesla V100-PCIE-32GB", "V100"},
        {"Tesla V100S-PCIE-32GB", "V100S"},
        {"nvidia h100 80gb hbm3", "H100 SXM"},
    };
    static const char *unknown[] = {"NVIDIA GeForce RTX 4090",
                                    "NVIDIA GH200 480GB",
                                    "NVIDIA A100X",
                                    "NVIDIA L40",
                                    "NVIDIA H800",
                                    ""};
    const struct agent_gpu_model *rows;
    size_t n;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct agent_gpu_model *m = agent_model_lookup(cases[i].name);

        if (m == NULL || strcmp(m->model, cases[i].model) != 0)
            fail_msg("%s: got %s, want %s", cases[i].name, m ? m->model : "none", cases[i].model);
    }
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++)
        if (agent_model_lookup(unknown[i]) != NULL)
            fail_msg("%s should have no row", unknown[i]);
    assert_null(agent_model_lookup(NULL));
    rows = agent_models(&n);
    assert_true(n >= 8);
    for (size_t i = 0; i < n; i++) {
        assert_non_null(rows[i].source);
        assert_true(rows[i].mem_bw_min > 0 && rows[i].mem_bw_min < rows[i].mem_bw_spec);
        assert_true(rows[i].fp32_min > 0 && rows[i].fp32_min < rows[i].fp32_spec);
    }
    /* DCGM's published H100 SXM levels */
    assert_true(fabs(agent_model_lookup("NVIDIA H100 80GB HBM3")->mem_bw_min - 1.9e12) < 1e6);
    assert_true(fabs(agent_model_lookup("NVIDIA H100 80GB HBM3")->fp32_min - 27.8e12) < 1e6);
}

static void assert_near(double got, double want, double rel)
{
    if (!(fabs(got - want) <= fabs(want) * rel))
        fail_msg("got %g, want %g", got, want);
}

static void test_peaks(void **state)
{
    (void)state;
    assert_near(agent_peak_mem_bw(5120, 2619), 3.352e12, 1e-3);    /* H100 SXM */
    assert_near(agent_peak_mem_bw(6144, 3201), 4.917e12, 1e-3);    /* H200 */
    assert_near(agent_peak_mem_bw(5120, 1593), 2.039e12, 1e-3);    /* A100 80GB */
    assert_near(agent_peak_mem_bw(384, 6251), 600.0e9, 1e-2);      /* A10, GDDR6 */
    assert_near(agent_peak_fp32(132, 9, 0, 1980), 66.9e12, 1e-3);  /* H100 SXM */
    assert_near(agent_peak_fp32(108, 8, 0, 1410), 19.49e12, 1e-3); /* A100 */
    assert_near(agent_peak_fp32(72, 8, 6, 1695), 31.24e12, 1e-3);  /* A10 */
    assert_near(agent_peak_fp32(40, 7, 5, 1590), 8.14e12, 1e-3);   /* T4 */
    assert_near(agent_peak_tensor(108, 8, 0, 1410), 311.9e12, 1e-3);
    assert_near(agent_peak_pcie(5, 16), 63.0e9, 1e-3);
    assert_near(agent_peak_pcie(4, 16), 31.5e9, 1e-3);
    assert_near(agent_peak_pcie(3, 16), 15.75e9, 1e-3);
    assert_near(agent_peak_pcie(1, 1), 250e6, 1e-9);
    assert_true(agent_peak_pcie(0, 16) == 0 && agent_peak_pcie(9, 16) == 0);
    assert_true(agent_peak_mem_bw(0, 2619) == 0 && agent_peak_fp32(132, 4, 0, 1000) == 0);
    assert_int_equal(agent_fp32_lanes_per_sm(9, 0), 128);
    assert_int_equal(agent_fp32_lanes_per_sm(8, 0), 64);
    assert_int_equal(agent_fp32_lanes_per_sm(8, 9), 128);
    assert_int_equal(agent_fp32_lanes_per_sm(7, 0), 64);
}

static const struct agent_gpu_facts h100 = {
    .name = "NVIDIA H100 80GB HBM3",
    .cc_major = 9,
    .cc_minor = 0,
    .sm_count = 132,
    .mem_bus_bits = 5120,
    .mem_clock_max_mhz = 2619,
    .sm_clock_max_mhz = 1980,
};

/* Figures of a healthy H100 SXM. */
static void good_h100(struct agent_measure *m)
{
    agent_measure_init(m);
    m->has_mem = true;
    m->mem_bw = 3.0e12;
    m->mem_bytes = (size_t)1 << 30;
    m->has_fp32 = true;
    m->fp32 = 62.0e12;
    m->fp32_clock_mhz = 1980;
    m->has_tensor = true;
    m->tensor = 400e12;
    m->tensor_checked = 32768;
    m->has_repeat = true;
    m->repeat_n = 1u << 18;
    m->has_pcie = true;
    m->pcie_h2d = 53e9;
    m->pcie_d2h = 54e9;
    m->pcie_gen = m->pcie_max_gen = 5;
    m->pcie_width = m->pcie_max_width = 16;
}

static enum agent_verdict judge(const struct agent_gpu_facts *g, const struct agent_measure *m,
                                json_t **figures, json_t **reasons)
{
    *figures = json_object();
    *reasons = json_array();
    return agent_judge_figures(g, m, agent_model_lookup(g->name), *figures, *reasons);
}

static void test_judge_healthy_h100(void **state)
{
    struct agent_measure m;
    json_t *f, *r, *mem;

    (void)state;
    good_h100(&m);
    if (judge(&h100, &m, &f, &r) != AGENT_HEALTHY) {
        print_reasons(r);
        fail();
    }
    assert_int_equal(json_array_size(r), 0);
    mem = json_object_get(f, "mem_bandwidth");
    assert_true(json_is_true(json_object_get(mem, "pass")));
    assert_string_equal(json_string_value(json_object_get(mem, "unit")), "B/s");
    assert_near(json_real_value(json_object_get(mem, "threshold")), 1.9e12, 1e-9);
    assert_near(json_real_value(json_object_get(mem, "peak")), 3.352e12, 1e-3);
    assert_near(json_real_value(json_object_get(mem, "of_peak")), 0.895, 2e-3);
    assert_string_equal(json_string_value(json_object_get(mem, "threshold_from")), "table");
    assert_near(json_real_value(json_object_get(json_object_get(f, "fp32"), "of_peak")), 0.927,
                2e-3);
    assert_true(json_is_true(json_object_get(json_object_get(f, "tensor_fp16"), "pass")));
    assert_true(json_is_true(json_object_get(json_object_get(f, "repeatability"), "pass")));
    assert_true(json_is_true(json_object_get(json_object_get(f, "pcie_h2d"), "pass")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(f, "pcie_d2h"), "gen")), 5);
    json_decref(f);
    json_decref(r);
}

static void test_judge_failures(void **state)
{
    struct agent_measure m;
    json_t *f, *r;

    (void)state;
    /* below DCGM's 1.9 TB/s: failed, the sentence names the figure and the limit */
    good_h100(&m);
    m.mem_bw = 1.5e12;
    assert_int_equal(judge(&h100, &m, &f, &r), AGENT_FAILED);
    assert_true(
        has_reason(r, "memory bandwidth 1.5 TB/s is below the H100 SXM minimum of 1.9 TB/s"));
    assert_true(json_is_false(json_object_get(json_object_get(f, "mem_bandwidth"), "pass")));
    json_decref(f);
    json_decref(r);
    /* above the table, but 66 % of this card's peak: warning */
    good_h100(&m);
    m.mem_bw = 2.2e12;
    assert_int_equal(judge(&h100, &m, &f, &r), AGENT_WARNING);
    assert_true(has_reason(r, "66 % of the card's peak"));
    json_decref(f);
    json_decref(r);
    /* a low FP32 figure at a low clock is judged at that clock: healthy */
    good_h100(&m);
    m.fp32 = 46e12;
    m.fp32_clock_mhz = 1400;
    assert_int_equal(judge(&h100, &m, &f, &r), AGENT_HEALTHY);
    assert_near(json_real_value(json_object_get(json_object_get(f, "fp32"), "of_peak")), 0.973,
                2e-3);
    json_decref(f);
    json_decref(r);
    /* the same figure at full clock is 69 %: warning */
    m.fp32_clock_mhz = 1980;
    assert_int_equal(judge(&h100, &m, &f, &r), AGENT_WARNING);
    assert_true(has_reason(r, "FP32 FMA throughput"));
    json_decref(f);
    json_decref(r);
    /* below 27.8 TFLOP/s: failed */
    m.fp32 = 20e12;
    assert_int_equal(judge(&h100, &m, &f, &r), AGENT_FAILED);
    json_decref(f);
    json_decref(r);
    /* words read back wrong; wrong GEMM; not repeatable */
    good_h100(&m);
    m.mem_errors = 3;
    assert_int_equal(judge(&h100, &m, &f, &r), AGENT_FAILED);
    assert_true(has_reason(r, "3 32-bit words read back wrong"));
    json_decref(f);
    json_decref(r);
    good_h100(&m);
    m.tensor_wrong = 5;
    assert_int_equal(judge(&h100, &m, &f, &r), AGENT_FAILED);
    assert_true(has_reason(r, "5 of 32768 elements"));
    json_decref(f);
    json_decref(r);
    good_h100(&m);
    m.repeat_run_diff = 1;
    assert_int_equal(judge(&h100, &m, &f, &r), AGENT_FAILED);
    assert_true(has_reason(r, "two runs"));
    json_decref(f);
    json_decref(r);
    good_h100(&m);
    m.repeat_host_diff = 7;
    assert_int_equal(judge(&h100, &m, &f, &r), AGENT_FAILED);
    assert_true(has_reason(r, "differ from the host's in 7 of"));
    json_decref(f);
    json_decref(r);
}

static void test_judge_pcie(void **state)
{
    struct agent_measure m;
    json_t *f, *r;

    (void)state;
    good_h100(&m);
    m.pcie_gen = 3;
    m.pcie_h2d = m.pcie_d2h = 12e9; /* fine for gen 3 x16, but the link is down-trained */
    assert_int_equal(judge(&h100, &m, &f, &r), AGENT_WARNING);
    assert_true(has_reason(r, "gen 3 x16 under load, below the gen 5 x16"));
    json_decref(f);
    json_decref(r);
    good_h100(&m);
    m.pcie_h2d = 10e9;
    assert_int_equal(judge(&h100, &m, &f, &r), AGENT_WARNING);
    assert_true(has_reason(r, "PCIe host-to-device"));
    assert_true(json_is_false(json_object_get(json_object_get(f, "pcie_h2d"), "pass")));
    json_decref(f);
    json_decref(r);
    /* no NVML: link unknown, no peak, nothing to judge */
    good_h100(&m);
    m.pcie_gen = m.pcie_width = m.pcie_max_gen = m.pcie_max_width = 0;
    m.pcie_h2d = 1e9;
    assert_int_equal(judge(&h100, &m, &f, &r), AGENT_HEALTHY);
    assert_true(json_is_null(json_object_get(json_object_get(f, "pcie_h2d"), "peak")));
    json_decref(f);
    json_decref(r);
}

static void test_judge_unknown_model(void **state)
{
    const struct agent_gpu_facts rtx = {
        .name = "NVIDIA GeForce RTX 4090",
        .cc_major = 8,
        .cc_minor = 9,
        .sm_count = 128,
        .mem_bus_bits = 384,
        .mem_clock_max_mhz = 10501,
        .sm_clock_max_mhz = 2520,
    };
    const struct agent_gpu_facts blank = {.name = "Some GPU"};
    struct agent_measure m;
    json_t *f, *r;

    (void)state;
    agent_measure_init(&m);
    m.has_mem = true;
    m.mem_bw = 0.85e12; /* peak 1.008 TB/s */
    m.has_fp32 = true;
    m.fp32 = 75e12; /* peak 82.6 TFLOP/s at 2520 MHz */
    m.fp32_clock_mhz = 2520;
    assert_int_equal(judge(&rtx, &m, &f, &r), AGENT_HEALTHY);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(f, "mem_bandwidth"), "threshold_from")),
        "peak");
    assert_near(json_real_value(json_object_get(json_object_get(f, "mem_bandwidth"), "threshold")),
                0.504e12, 1e-2);
    json_decref(f);
    json_decref(r);
    m.mem_bw = 0.45e12;
    assert_int_equal(judge(&rtx, &m, &f, &r), AGENT_FAILED);
    assert_true(has_reason(r, "below 50 % of the card's peak"));
    json_decref(f);
    json_decref(r);
    m.mem_bw = 0.6e12;
    assert_int_equal(judge(&rtx, &m, &f, &r), AGENT_WARNING);
    json_decref(f);
    json_decref(r);
    /* nothing known about the card: figures are reported, not judged */
    assert_int_equal(judge(&blank, &m, &f, &r), AGENT_HEALTHY);
    assert_true(json_is_null(json_object_get(json_object_get(f, "fp32"), "peak")));
    assert_true(json_is_null(json_object_get(json_object_get(f, "fp32"), "of_peak")));
    json_decref(f);
    json_decref(r);
}

static void clean_nvml(struct agent_nvml_facts *n)
{
    agent_nvml_facts_init(n);
    n->present = true;
    n->ecc_volatile_corrected = n->ecc_volatile_uncorrected = 0;
    n->ecc_aggregate_corrected = n->ecc_aggregate_uncorrected = 0;
    n->rows_corrected = n->rows_uncorrected = 0;
    n->rows_pending = n->rows_failure = 0;
    n->clock_reasons = 0x1; /* idle */
    n->persistence = 1;
    n->temp_c = 35;
    n->temp_slowdown_c = 90;
    n->power_w = 70;
    n->power_limit_w = 700;
}

static enum agent_verdict judge_n(const struct agent_nvml_facts *n, json_t **r)
{
    *r = json_array();
    return agent_judge_nvml(n, *r);
}

static void test_judge_nvml(void **state)
{
    struct agent_nvml_facts n;
    json_t *r, *j;

    (void)state;
    clean_nvml(&n);
    assert_int_equal(judge_n(&n, &r), AGENT_HEALTHY);
    assert_int_equal(json_array_size(r), 0);
    json_decref(r);
    n.ecc_volatile_uncorrected = 2;
    assert_int_equal(judge_n(&n, &r), AGENT_FAILED);
    assert_true(has_reason(r, "2 uncorrectable ECC errors since the driver loaded"));
    json_decref(r);
    clean_nvml(&n);
    n.ecc_aggregate_uncorrected = 1;
    assert_int_equal(judge_n(&n, &r), AGENT_WARNING);
    assert_true(has_reason(r, "over the GPU's lifetime"));
    json_decref(r);
    clean_nvml(&n);
    n.ecc_volatile_corrected = 5000;
    assert_int_equal(judge_n(&n, &r), AGENT_WARNING);
    json_decref(r);
    clean_nvml(&n);
    n.retired_sbe = 50;
    n.retired_dbe = 13;
    assert_int_equal(judge_n(&n, &r), AGENT_FAILED);
    assert_true(has_reason(r, "63 retired memory pages"));
    json_decref(r);
    clean_nvml(&n);
    n.retired_sbe = 0;
    n.retired_dbe = 0;
    n.retired_pending = 1;
    assert_int_equal(judge_n(&n, &r), AGENT_WARNING);
    assert_true(has_reason(r, "pending retirement"));
    json_decref(r);
    clean_nvml(&n);
    n.rows_failure = 1;
    assert_int_equal(judge_n(&n, &r), AGENT_FAILED);
    assert_true(has_reason(r, "row remapping failed"));
    json_decref(r);
    clean_nvml(&n);
    n.rows_pending = 1;
    assert_int_equal(judge_n(&n, &r), AGENT_WARNING);
    json_decref(r);
    clean_nvml(&n);
    n.clock_reasons =
        (long long)(nvmlClocksThrottleReasonHwSlowdown | nvmlClocksEventReasonGpuIdle);
    assert_int_equal(judge_n(&n, &r), AGENT_WARNING);
    assert_true(has_reason(r, "hw_slowdown"));
    json_decref(r);
    clean_nvml(&n);
    n.clock_reasons = (long long)nvmlClocksEventReasonSwPowerCap; /* its own power management */
    assert_int_equal(judge_n(&n, &r), AGENT_HEALTHY);
    json_decref(r);
    clean_nvml(&n);
    n.clock_reasons = (long long)nvmlClocksThrottleReasonHwPowerBrakeSlowdown;
    assert_int_equal(judge_n(&n, &r), AGENT_WARNING);
    json_decref(r);
    clean_nvml(&n);
    n.persistence = 0;
    assert_int_equal(judge_n(&n, &r), AGENT_WARNING);
    assert_true(has_reason(r, "persistence mode is off"));
    json_decref(r);
    clean_nvml(&n);
    n.temp_c = 86;
    assert_int_equal(judge_n(&n, &r), AGENT_WARNING);
    assert_true(has_reason(r, "temperature 86 C"));
    json_decref(r);
    clean_nvml(&n);
    n.temp_slowdown_c = -1;
    n.temp_c = 84;
    assert_int_equal(judge_n(&n, &r), AGENT_HEALTHY);
    json_decref(r);
    agent_nvml_facts_init(&n); /* no NVML answer */
    assert_int_equal(judge_n(&n, &r), AGENT_WARNING);
    assert_true(has_reason(r, "NVML has no answer"));
    json_decref(r);
    /* unknown readings are null in the report */
    j = agent_nvml_json(&n);
    assert_non_null(j);
    assert_true(json_is_null(json_object_get(
        json_object_get(json_object_get(j, "ecc_errors"), "volatile"), "uncorrected")));
    assert_true(json_is_null(json_object_get(j, "throttle_reasons")));
    assert_true(json_is_null(json_object_get(j, "persistence_mode")));
    json_decref(j);
    clean_nvml(&n);
    n.clock_reasons =
        (long long)(nvmlClocksEventReasonGpuIdle | nvmlClocksThrottleReasonHwThermalSlowdown);
    j = agent_nvml_json(&n);
    assert_int_equal(json_array_size(json_object_get(j, "throttle_reasons")), 2);
    assert_string_equal(
        json_string_value(json_array_get(json_object_get(j, "throttle_reasons"), 1)),
        "hw_thermal_slowdown");
    assert_string_equal(json_string_value(json_object_get(j, "persistence_mode")), "enabled");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(j, "remapped_rows"), "corrected")), 0);
    assert_true(json_is_false(json_object_get(json_object_get(j, "remapped_rows"), "failure")));
    assert_true(json_is_null(json_object_get(json_object_get(j, "retired_pages"), "single_bit")));
    json_decref(j);
}

/* The host's mirror of gr_hk_repeat: deterministic, and the float part
 * stays a normal number in [0, 1) (no overflow, no subnormal). */
static void test_repeat_mirror(void **state)
{
    unsigned seen_same = 0;

    (void)state;
    for (unsigned i = 0; i < 4096; i++) {
        unsigned a = agent_repeat_value(i, 64, 0x0badcafeu);

        assert_int_equal(a, agent_repeat_value(i, 64, 0x0badcafeu));
        seen_same += a == agent_repeat_value(i + 1, 64, 0x0badcafeu);
    }
    assert_true(seen_same < 4);
    assert_true(agent_repeat_value(1, 64, 1) != agent_repeat_value(1, 63, 1));
    for (unsigned idx = 0; idx < 10000; idx++) {
        int v = agent_gemm_value2(idx, 0xa11ce5u);

        assert_true(v >= -2 && v <= 2);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_level_parse),
        cmocka_unit_test(test_check_without_gpu),
        cmocka_unit_test(test_binary_without_gpu),
        cmocka_unit_test(test_model_lookup),
        cmocka_unit_test(test_peaks),
        cmocka_unit_test(test_judge_healthy_h100),
        cmocka_unit_test(test_judge_failures),
        cmocka_unit_test(test_judge_pcie),
        cmocka_unit_test(test_judge_unknown_model),
        cmocka_unit_test(test_judge_nvml),
        cmocka_unit_test(test_repeat_mirror),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
