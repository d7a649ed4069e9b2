/*
 * What the ssh and slurm drivers share (linked into both shared objects,
 * not a driver of its own): a remote shell command builder that quotes every
 * value, the runtime (gpu-agent and the reference workloads) installed once
 * per host and verified by SHA-256, and a chain of remote commands run one
 * after the other over the host's SSH client (orc_host_api.ssh).
 * Everything runs on the daemon's loop thread.
 */
#ifndef ORC_REMOTE_H
#define ORC_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "orc/driver.h"
#include "orc/size.h"

/* ---- command lines (remote_cmd.c) ---------------------------------------- */

/* A growing command line. Errors stick: after one, appends do nothing and
 * rmt_cmd_done returns it. */
struct rmt_cmd {
    const struct orc_host_api *host;
    char *buf; /* NUL-terminated, host->malloc'd */
    size_t len, cap;
    int rc; /* 0, ORC_ENOMEM, ORC_ELIMIT */
};

void rmt_cmd_init(struct rmt_cmd *c, const struct orc_host_api *host);
/* text as is: program names, operators, redirections; never a user value */
void rmt_cmd_raw(struct rmt_cmd *c, const char *text);
void rmt_cmd_rawf(struct rmt_cmd *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* a space, then value as one single-quoted word (orc_ssh_quote) */
void rmt_cmd_word(struct rmt_cmd *c, const char *value);
/* value as one single-quoted word, right where the text is (no space) */
void rmt_cmd_quoted(struct rmt_cmd *c, const char *value);
/* a space, then "KEY=VALUE" quoted as one word; KEY must be [A-Za-z_][A-Za-z0-9_]*
 * (else ORC_EINVAL sticks) */
void rmt_cmd_assign(struct rmt_cmd *c, const char *key, const char *value);
/* "NAME='value'; ": a shell variable the fixed text after it uses as "$NAME"
 * (NAME as in rmt_env_name_ok, else ORC_EINVAL sticks) */
void rmt_cmd_var(struct rmt_cmd *c, const char *name, const char *value);
/* 0 and the text (still owned by c), or the sticky error */
int rmt_cmd_done(struct rmt_cmd *c, const char **text);
void rmt_cmd_free(struct rmt_cmd *c);
/* true when s is a valid environment variable name */
bool rmt_env_name_ok(const char *s);

/* ---- config values (remote_conf.c) ---------------------------------------- */

/* An integer in [min, max] into *out. 0, or ORC_EINVAL. */
int rmt_parse_u32(json_t *v, uint32_t min, uint32_t max, uint32_t *out);

/* ---- the runtime (remote_runtime.c) ---------------------------------------- */

#define RMT_RUNTIME_MAX 4

struct rmt_file {
    char name[32];    /* "gpu-agent", "gpu-train", "gpu-serve" */
    char *local_path; /* host->malloc'd */
    char sha256[65];  /* hex */
    uint64_t size;
};

struct rmt_runtime {
    struct rmt_file files[RMT_RUNTIME_MAX];
    size_t n;    /* files[0] is gpu-agent */
    char id[17]; /* 16 hex digits of the SHA-256 over the files' hashes */
};

/* Finds gpu-agent (required) and gpu-train, gpu-serve (when present) in dir,
 * or when dir is NULL beside the daemon's executable, then on PATH; hashes
 * them (small local files, read at site open). 0, or < 0 with err. */
int rmt_runtime_find(const struct orc_host_api *host, const char *dir, struct rmt_runtime *rt,
                     char *err, size_t errlen);
void rmt_runtime_free(const struct orc_host_api *host, struct rmt_runtime *rt);

/* The remote folder the runtime is installed in: BASE/.orc-runtime/ID
 * (host->malloc'd), or NULL on OOM. */
char *rmt_runtime_dir(const struct orc_host_api *host, const struct rmt_runtime *rt,
                      const char *base);

typedef void (*rmt_done_cb)(void *arg, int status, const char *error);
struct rmt_install;

/* Makes sure the runtime is on the host under rmt_runtime_dir(base): one
 * `sha256sum` of what is there; each file missing or different is uploaded
 * over SFTP to a .part name, verified by sha256sum, made executable and
 * renamed into place. cb runs once, later (0, or < 0 with error: ORC_ESSH,
 * ORC_EDENIED, ORC_EIO, ORC_EDRIVER "checksum mismatch ...", ORC_ECANCELED).
 * Returns 0 or < 0 (cb will not run). *out (may be NULL) until cb. */
int rmt_runtime_install(const struct orc_host_api *host, const struct orc_ssh_target *t,
                        const struct rmt_runtime *rt, const char *base, uint32_t timeout_ms,
                        rmt_done_cb cb, void *arg, struct rmt_install **out);
/* cb runs with ORC_ECANCELED (later). */
void rmt_install_cancel(struct rmt_install *in);

#endif
