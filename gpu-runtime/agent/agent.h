/*
 * gpu-agent's subsystems and the contracts between them. The agent runs on
 * every node the orchestrator allocates:
 *   discover.c   what the node has (GPUs through the CUDA driver API and NVML,
 *                both loaded at run time by gpu-runtime/common/cuda.c; CPUs,
 *                memory, disk)
 *   health.c     GPU health checks at two levels, figures against the card's
 *                own peak and the per-model table (thresholds.c), a verdict
 *   launch*.c    the launcher: one workload (or one process per local rank),
 *                GPU pinning, distributed-training variables, logs with
 *                rotation, supervision, readiness, clean stop
 *   report.c     reports to the orchestrator's agent endpoint (report.h)
 *   main.c       the command line: info, check, run, version
 * Errors are the project's ORC_E* codes (orc/errno.h); JSON is jansson.
 */
#ifndef GR_AGENT_H
#define GR_AGENT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#define GPU_AGENT_VERSION "0.4.0"

/* ---- discovery (discover.c) ---- */

/* What this node has, the JSON of `gpu-agent info`:
 *   {"agent":  {"version": "0.4.0"},
 *    "host":   {"hostname", "cpus", "memory_bytes", "disk": {"path", "total_bytes",
 *               "free_bytes"}},
 *    "driver": {"cuda": bool (libcuda.so.1 loaded and initialised), "nvml": bool,
 *               "version": "550.54.15" | null, "cuda_version": "12.4" | null,
 *               "error": why there is no GPU answer (absent when there is one)},
 *    "gpus":   [{"index", "name", "uuid", "pci_bus_id", "memory_bytes",
 *               "compute_capability": "9.0", "sm_count", "clocks": {"sm_max_mhz",
 *               "mem_max_mhz", "sm_mhz", "mem_mhz"}, "memory_bus_width_bits",
 *               "pcie": {"gen", "width", "max_gen", "max_width"}, "mig_mode":
 *               "enabled"|"disabled"|"unsupported", "ecc_mode": same, ...}]}
 * A node without driver or GPU is a normal answer ("gpus": []). disk_path:
 * the file system to report (NULL: the working directory). NULL only on OOM. */
json_t *agent_discover(const char *disk_path);

/* ---- health checks (health.c) ---- */

enum agent_level { AGENT_CHECK_QUICK, AGENT_CHECK_STANDARD };

/* Parses "quick" / "standard". */
bool agent_level_parse(const char *s, enum agent_level *out);

/* Checks the GPUs listed (CUDA device ordinals; gpus NULL: all) at level:
 *   {"level": "standard", "kernels": true (health kernels built in),
 *    "verdict": "healthy"|"warning"|"failed"|"none" (no GPU),
 *    "gpus": [{"index", "uuid", "name", "model" (table row used, or null),
 *              "verdict", "reasons": ["..."],
 *              "figures": {"mem_bandwidth": {"value", "unit": "B/s", "peak",
 *                          "of_peak", "threshold", "pass"}, "fp32": {...}, ...},
 *              "nvml": {"ecc_errors", "retired_pages", "remapped_rows",
 *                       "throttle_reasons": [...], "persistence_mode"}}]}
 * NULL only on OOM. */
json_t *agent_health_check(enum agent_level level, const int *gpus, size_t ngpus);

/* ---- the run command (launch*.c) ---- */

/* `gpu-agent run [options] -- program args...`: argv[0] is "run". Returns
 * the process exit status (the job's, or 0 after a clean stop). */
int agent_run_main(int argc, char **argv);

#endif
