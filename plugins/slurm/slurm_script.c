/*
 * What a workload submission sends to the cluster: the batch script, the
 * env file and the sbatch command line. The script has two parts: run by
 * sbatch (the batch step, on the allocation's first node) it finds the
 * first node's name and starts its own node part on every node with srun;
 * the node part sources the env file (mode 0600, so the agent token never
 * shows on a command line nor in Slurm's copy of the script) and runs
 * gpu-agent with the distributed-training options of that node. Every value
 * in them is one single-quoted shell word (rmt_cmd_word, orc_ssh_quote):
 * names, paths, variables and the command itself.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "slurm.h"

static int take(const struct orc_host_api *host, struct rmt_cmd *c, char **out)
{
    const char *text = NULL;
    int rc = rmt_cmd_done(c, &text);

    *out = rc == 0 ? sl_strdup(host, text) : NULL;
    if (rc == 0 && *out == NULL)
        rc = ORC_ENOMEM;
    rmt_cmd_free(c);
    return rc;
}

/* NAME='value'; on a line of its own: the script uses it as "$NAME" */
static void var_line(struct rmt_cmd *c, const char *name, const char *value)
{
    rmt_cmd_var(c, name, value);
    rmt_cmd_raw(c, "\n");
}

/* dir, rt, wl (and sub): the script's own variables */
static void script_vars(struct rmt_cmd *c, const struct sl_script_in *in)
{
    var_line(c, "dir", in->dir);
    var_line(c, "rt", in->runtime);
    var_line(c, "wl", in->wl);
    if (in->workdir != NULL)
        var_line(c, "sub", in->workdir);
}

static const char script_head[] =
    "#!/bin/sh\n"
    "# orchestratord, slurm driver (docs/slurm-site.md). Run by sbatch (the batch step,\n"
    "# on the allocation's first node) it starts its node part on every node with\n"
    "# srun; with the argument \"node\" it is that part: gpu-agent runs the workload.\n";

static const char script_batch[] =
    "if [ \"${1-}\" != node ]; then\n"
    "    ORC_SLURM_MASTER=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" 2>/dev/null"
    " | head -n 1)\n"
    "    [ -n \"$ORC_SLURM_MASTER\" ] || ORC_SLURM_MASTER=$(hostname)\n"
    "    export ORC_SLURM_MASTER\n"
    "    exec srun --kill-on-bad-exit=1 --ntasks-per-node=1 /bin/sh \"$dir/$wl.sbatch\" node\n"
    "fi\n";

/* What Slurm says of this node, read before the env file; the template's
 * variables cannot change it (ORC_SLURM_* are refused in the env file). */
static const char script_node_pre[] = "ORC_SLURM_RANK=\"${SLURM_NODEID:-0}\"\n"
                                      "ORC_SLURM_NNODES=\"${SLURM_NNODES:-1}\"\n"
                                      ". \"$dir/$wl.env\"\n";

/* After the env file (the script's own variables are set again first). */
static const char script_node[] =
    "ORC_NODE_DIR=\"$dir\"\n" /* every process of the workload carries it */
    "export ORC_NODE_DIR\n"
    "PATH=\"$rt:$PATH\"\n"
    "export PATH\n"
    "status=\"$dir/$wl.status.json\"\n"
    "logdir=\"$dir\"\n"
    "if [ \"$ORC_SLURM_RANK\" != 0 ]; then\n"
    "    status=\"$dir/$wl.status.node$ORC_SLURM_RANK.json\"\n"
    "    logdir=\"$dir/node$ORC_SLURM_RANK\"\n"
    "    mkdir -p \"$logdir\"\n"
    "fi\n"
    "exec \"$rt/gpu-agent\" run --name \"$wl\" --nnodes \"$ORC_SLURM_NNODES\""
    " --node-rank \"$ORC_SLURM_RANK\" \\\n"
    "    --master-addr \"$ORC_SLURM_MASTER\" --log-dir \"$logdir\" --status-file \"$status\"";

/* The options of gpu-agent run that depend on the request. */
static void agent_opts(struct rmt_cmd *c, const struct sl_script_in *in)
{
    char buf[SL_PATH_LEN + 64];

    rmt_cmd_raw(c, " \\\n    --kind");
    rmt_cmd_word(c, in->service ? "service" : "job");
    rmt_cmd_raw(c, " --check");
    rmt_cmd_word(c, in->check ? in->check : "quick");
    if (in->gpus == 0) /* else the allocation: Slurm's CUDA_VISIBLE_DEVICES */
        rmt_cmd_raw(c, " --gpus none");
    rmt_cmd_raw(c, in->workdir ? " --workdir \"$dir/$sub\"" : " --workdir \"$dir\"");
    if (in->service && in->port != 0 && in->ready_path != NULL) {
        snprintf(buf, sizeof(buf), "--ready-http=%u:%s", in->port, in->ready_path);
        rmt_cmd_word(c, buf);
    } else if (in->service && in->port != 0) {
        snprintf(buf, sizeof(buf), "--ready-tcp=%u", in->port);
        rmt_cmd_word(c, buf);
    }
    rmt_cmd_raw(c, " \\\n    --");
    for (size_t i = 0; in->argv[i] != NULL; i++)
        rmt_cmd_word(c, in->argv[i]);
    rmt_cmd_raw(c, "\n");
}

int sl_script_build(const struct orc_host_api *host, const struct sl_script_in *in, char **out)
{
    struct rmt_cmd c;

    *out = NULL;
    rmt_cmd_init(&c, host);
    rmt_cmd_raw(&c, script_head);
    script_vars(&c, in);
    rmt_cmd_raw(&c, script_batch);
    rmt_cmd_raw(&c, script_node_pre);
    script_vars(&c, in);
    rmt_cmd_raw(&c, script_node);
    agent_opts(&c, in);
    return take(host, &c, out);
}

int sl_envfile_build(const struct orc_host_api *host, const struct orc_kv *env, size_t n,
                     char **out, char *err, size_t errlen)
{
    struct rmt_cmd c;

    *out = NULL;
    for (size_t i = 0; i < n; i++)
        if (env[i].key != NULL && strncmp(env[i].key, "ORC_SLURM_", 10) == 0) {
            snprintf(err, errlen, "environment variable '%s': ORC_SLURM_* are the driver's",
                     env[i].key);
            return ORC_EINVAL;
        } else if (env[i].key == NULL || !rmt_env_name_ok(env[i].key) || env[i].value == NULL) {
            snprintf(err, errlen,
                     "environment variable '%s' is not NAME=VALUE with NAME "
                     "[A-Za-z_][A-Za-z0-9_]*",
                     env[i].key ? env[i].key : "(null)");
            return ORC_EINVAL;
        }
    rmt_cmd_init(&c, host);
    rmt_cmd_raw(&c, "# the workload's variables (orchestratord); mode 0600\n");
    for (size_t i = 0; i < n; i++) {
        rmt_cmd_raw(&c, "export");
        rmt_cmd_assign(&c, env[i].key, env[i].value);
        rmt_cmd_raw(&c, "\n");
    }
    return take(host, &c, out);
}

/* "--opt=value" as one quoted word. */
static void opt(struct rmt_cmd *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void opt(struct rmt_cmd *c, const char *fmt, ...)
{
    char buf[SL_PATH_LEN + 128];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(buf)) {
        c->rc = c->rc ? c->rc : ORC_ELIMIT;
        return;
    }
    rmt_cmd_word(c, buf);
}

static void gres_opt(struct rmt_cmd *c, const struct sl_node *n)
{
    if (n->gpus == 0)
        return;
    if (n->gres[0] != '\0')
        opt(c, "--gres=gpu:%s:%u", n->gres, n->gpus);
    else
        opt(c, "--gres=gpu:%u", n->gpus);
}

void sl_sbatch_args(struct slurm *s, struct rmt_cmd *c, const struct sl_node *n, const char *wl,
                    uint32_t time_min)
{
    const char *dir = s->work;

    rmt_cmd_raw(c, " sbatch --parsable");
    opt(c, "--job-name=%s", n->name);
    opt(c, "--nodes=%u", n->nodes ? n->nodes : 1);
    rmt_cmd_word(c, "--ntasks-per-node=1");
    opt(c, "--cpus-per-task=%u", n->cpus ? n->cpus : 1);
    if (n->mem > 0)
        opt(c, "--mem=%" PRIu64 "M", (n->mem + (UINT64_C(1) << 20) - 1) >> 20);
    if (time_min > 0)
        opt(c, "--time=%u", time_min);
    gres_opt(c, n);
    if (n->partition[0] != '\0')
        opt(c, "--partition=%s", n->partition);
    if (s->c.account != NULL)
        opt(c, "--account=%s", s->c.account);
    if (s->c.qos != NULL)
        opt(c, "--qos=%s", s->c.qos);
    opt(c, "--output=%s/%s/%s.slurm.out", dir, n->name, wl);
    opt(c, "--error=%s/%s/%s.slurm.err", dir, n->name, wl);
    opt(c, "--chdir=%s/%s", dir, n->name);
    rmt_cmd_word(c, "--no-requeue");
    opt(c, "%s/%s/%s.sbatch", dir, n->name, wl);
}

bool sl_relpath_ok(const char *path)
{
    const char *p = path;

    if (path == NULL || *path == '\0' || *path == '/')
        return false;
    while (*p) {
        size_t n = strcspn(p, "/");
        if ((n == 2 && strncmp(p, "..", 2) == 0) || n == 0)
            return false;
        p += n;
        if (*p == '/')
            p++;
    }
    return true;
}
