/*
 * The launcher's inside (`gpu-agent run`, docs/agent.md): its options
 * (run_opts.c), the log files with rotation (run_log.c) and the
 * supervisor (run.c): processes, restarts, readiness, stop, reports.
 */
#ifndef GR_AGENT_RUN_H
#define GR_AGENT_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent.h"

#define LAUNCH_MAX_GPUS 64
#define LAUNCH_MAX_PROCS 64
#define LAUNCH_MAX_ENV 256
#define LAUNCH_MAX_FAILS 64
#define LAUNCH_NAME_MAX 63
#define LAUNCH_GAVE_UP 70 /* exit status: a service was given up */

enum launch_kind { LAUNCH_JOB, LAUNCH_SERVICE };

struct launch_opts {
    char name[LAUNCH_NAME_MAX + 1];
    enum launch_kind kind;
    bool gpus_given; /* --gpus (else the environment's or all) */
    int gpus[LAUNCH_MAX_GPUS];
    size_t ngpus;
    bool check; /* false: --check none */
    enum agent_level level;
    unsigned min_gpus;
    const char *env[LAUNCH_MAX_ENV]; /* --env K=V, from argv */
    size_t nenv;
    const char *workdir, *log_dir, *status_file; /* NULL: defaults */
    uint64_t log_max_bytes;
    unsigned log_keep;
    unsigned nproc, nnodes, node_rank;
    const char *master_addr;
    unsigned master_port;
    bool distributed; /* set MASTER_* and the ranks */
    uint64_t backoff_ms, backoff_max_ms, window_ms, ready_timeout_ms, stop_grace_ms;
    unsigned restart_max;
    unsigned ready_port;
    const char *ready_path; /* NULL: TCP only */
    char *const *argv;      /* the program and its arguments (from argv) */
};

/* Parses `run` argv (argv[0] "run"). 0; ORC_EUSAGE with why naming the
 * option. */
int launch_opts_parse(int argc, char **argv, struct launch_opts *o, char *why, size_t whylen);

/* ---- log files (run_log.c) ---- */

struct launch_log {
    char *path; /* DIR/NAME.log ("-": standard output) */
    int fd;     /* -1: not open */
    uint64_t size, max_bytes;
    unsigned keep;
    bool to_stdout; /* DIR "-": a copy of standard output, never rotated */
};

/* Opens (appending) DIR/BASE.log, or standard output when DIR is "-". 0 or -errno. */
int launch_log_open(struct launch_log *l, const char *dir, const char *base, uint64_t max_bytes,
                    unsigned keep);
/* Appends, rotating first when the file would grow past max_bytes:
 * BASE.log -> BASE.log.1 -> ... -> BASE.log.KEEP (the oldest dropped). */
void launch_log_write(struct launch_log *l, const char *data, size_t n);
/* "[gpu-agent 2026-12-03T12:00:00Z] " + the formatted line. */
void launch_log_note(struct launch_log *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void launch_log_close(struct launch_log *l);

/* Copies n bytes into out (room for 3n+1) as valid UTF-8: a byte that does
 * not start a valid sequence becomes U+FFFD. Returns the length. */
size_t launch_utf8_clean(const char *in, size_t n, char *out);

#endif
