/*
 * The slurm driver (plugins/slurm, docs/slurm-site.md) without a cluster:
 * its .c files are included here, so their parsers and builders are tested
 * directly, and the driver is registered as a built-in of the core's
 * registry (strict mode: a broken callback contract aborts) with a scripted
 * SSH client in place of host->ssh, which answers each remote command as
 * the login node would (Slurm 22.05 output as recorded on the testbed).
 *   - parsers: scontrol show job/node, sacct, sbatch, squeue, sinfo, gres,
 *     the agent's status file, the node marker, output sections, job states;
 *   - what reaches a shell: the batch script, the env file and the sbatch
 *     command line are run by /bin/sh here with hostile names, paths,
 *     variables and commands (', ", $(), backticks, ;, newlines): every one
 *     arrives as the same single word, and nothing in them runs;
 *   - config errors: unknown keys named, types, required keys;
 *   - operations: open, provision (capacity checks, the marker), exec
 *     (COMPLETED, FAILED with an exit code, NODE_FAIL, PENDING past the
 *     queue timeout: scancel and ORC_DRV_ENOCAPACITY), start_workload
 *     (readiness from the status file, endpoint), stop_workload, status,
 *     deprovision, logs, inventory, cancel and site close with operations in
 *     flight.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "testutil.h"

#include "engine/drivers.h"

#include "../../plugins/remote/remote_cmd.c"
#include "../../plugins/remote/remote_conf.c"
#include "../../plugins/remote/remote_runtime.c"
#include "../../plugins/slurm/slurm.c"
#include "../../plugins/slurm/slurm_cmd.c"
#include "../../plugins/slurm/slurm_conf.c"
#include "../../plugins/slurm/slurm_job.c"
#include "../../plugins/slurm/slurm_node.c"
#include "../../plugins/slurm/slurm_parse.c"
#include "../../plugins/slurm/slurm_script.c"

/* What the hostile values hold: every shell metacharacter that matters. */
#define HOSTILE "it's \"q\" $(touch PWNED1) `touch PWNED2`; touch PWNED3 \\ $HOME\nnext line"

static void *t_malloc(size_t n)
{
    return malloc(n);
}
static void *t_calloc(size_t n, size_t m)
{
    return calloc(n, m);
}
static void *t_realloc(void *p, size_t n)
{
    return realloc(p, n);
}
static void t_free(void *p)
{
    free(p);
}

/* A host table for the pure functions (allocator only). */
static const struct orc_host_api plain_host = {
    .version = ORC_HOST_API_VERSION,
    .size = sizeof(struct orc_host_api),
    .site = "t",
    .malloc = t_malloc,
    .calloc = t_calloc,
    .realloc = t_realloc,
    .free = t_free,
};

/* ---- job states and parsers ---------------------------------------------------------- */

static const char job_running[] =
    "JobId=7 JobName=orc-x UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901759 "
    "Nice=0 Account=(null) QOS=(null) JobState=RUNNING Reason=None Dependency=(null) Requeue=0 "
    "Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0 RunTime=00:00:00 TimeLimit=00:05:00 "
    "Partition=gpu AllocNode:Sid=localhost:29032 ReqNodeList=(null) ExcNodeList=(null) "
    "NodeList=vm BatchHost=vm NumNodes=1 NumCPUs=1 Command=/w/main.sbatch WorkDir=/w "
    "StdErr=/w/e.txt StdIn=/dev/null StdOut=/w/o.txt Power= TresPerNode=gres:gpu:a100:1 \n";

static void test_job_states(void **state)
{
    (void)state;
    assert_int_equal(SJ_PENDING, sl_jstate_parse("PENDING"));
    assert_int_equal(SJ_RUNNING, sl_jstate_parse("RUNNING"));
    assert_int_equal(SJ_ENDING, sl_jstate_parse("COMPLETING"));
    assert_int_equal(SJ_COMPLETED, sl_jstate_parse("COMPLETED"));
    assert_int_equal(SJ_FAILED, sl_jstate_parse("FAILED"));
    assert_int_equal(SJ_NODE_FAIL, sl_jstate_parse("NODE_FAIL"));
    assert_int_equal(SJ_CANCELLED, sl_jstate_parse("CANCELLED by 0"));
    assert_int_equal(SJ_PREEMPTED, sl_jstate_parse("PREEMPTED"));
    assert_int_equal(SJ_TIMEOUT, sl_jstate_parse("TIMEOUT"));
    assert_int_equal(SJ_OTHER_END, sl_jstate_parse("OUT_OF_MEMORY"));
    assert_int_equal(SJ_UNKNOWN, sl_jstate_parse("RUNNINGX"));
    assert_false(sl_jstate_ended(SJ_RUNNING));
    assert_false(sl_jstate_ended(SJ_PENDING));
    assert_true(sl_jstate_ended(SJ_COMPLETED));
    assert_true(sl_jstate_ended(SJ_NODE_FAIL));
    /* an exit status, not an operation failure */
    assert_false(sl_jstate_broken(SJ_COMPLETED));
    assert_false(sl_jstate_broken(SJ_FAILED));
    assert_true(sl_jstate_broken(SJ_TIMEOUT));
    assert_true(sl_jstate_broken(SJ_PREEMPTED));
    assert_true(sl_jstate_broken(SJ_NODE_FAIL));
    assert_true(sl_jstate_broken(SJ_CANCELLED));
}

static void test_scontrol_job(void **state)
{
    struct sl_jobinfo ji;
    const char *failed = "JobId=1 JobName=orc-test JobState=FAILED Reason=NonZeroExitCode "
                         "Dependency=(null) ExitCode=3:0 NodeList=vm BatchHost=vm\n";
    const char *pending = "JobId=2 JobName=orc-t2 JobState=PENDING Reason=Nodes_required_for_"
                          "job_are_DOWN,_DRAINED_or_reserved ExitCode=0:0 NodeList=(null)\n";
    const char *sig = "JobId=3 JobState=CANCELLED Reason=None ExitCode=0:15 NodeList=vm\n";
    char v[32];

    (void)state;
    assert_true(sl_parse_scontrol_job(job_running, strlen(job_running), &ji));
    assert_int_equal(SJ_RUNNING, ji.st);
    assert_string_equal("RUNNING", ji.state);
    assert_string_equal("", ji.reason);
    assert_string_equal("vm", ji.nodelist);
    assert_string_equal("vm", ji.batch_host);
    assert_true(ji.has_exit);
    assert_true(sl_parse_scontrol_job(failed, strlen(failed), &ji));
    assert_int_equal(SJ_FAILED, ji.st);
    assert_int_equal(3, ji.exit_code);
    assert_int_equal(0, ji.exit_signal);
    assert_true(sl_parse_scontrol_job(pending, strlen(pending), &ji));
    assert_int_equal(SJ_PENDING, ji.st);
    assert_string_equal("Nodes required for job are DOWN, DRAINED or reserved", ji.reason);
    assert_string_equal("", ji.nodelist);
    assert_true(sl_parse_scontrol_job(sig, strlen(sig), &ji));
    assert_int_equal(15, ji.exit_signal);
    /* what scontrol says of a job it forgot */
    assert_false(
        sl_parse_scontrol_job("slurm_load_jobs error: Invalid job id specified\n", 48, &ji));
    assert_false(ji.found);
    /* a key inside another key's name is not that key */
    assert_false(sl_kv_get("XJobState=RUNNING", 17, "JobState", v, sizeof(v)));
    assert_true(sl_kv_get("A=1 JobState=RUNNING B=2", 24, "JobState", v, sizeof(v)));
    assert_string_equal("RUNNING", v);
    /* values are cut to the buffer */
    assert_true(sl_kv_get("K=0123456789", 12, "K", v, 5));
    assert_string_equal("0123", v);
}

static void test_sacct_sbatch_squeue(void **state)
{
    struct sl_jobinfo ji;
    char id[SL_JOBID_LEN];
    const char *sq = "5|RUNNING\n6|COMPLETED\n7|PENDING\n8|CANCELLED\n9|COMPLETING\n";

    (void)state;
    assert_true(sl_parse_sacct("12|FAILED|3:0\n12.batch|FAILED|3:0\n", 35, &ji));
    assert_int_equal(SJ_FAILED, ji.st);
    assert_int_equal(3, ji.exit_code);
    assert_true(sl_parse_sacct("12.batch|COMPLETED|0:0\n12|CANCELLED by 0|0:15\n", 46, &ji));
    assert_int_equal(SJ_CANCELLED, ji.st);
    assert_false(sl_parse_sacct("", 0, &ji));
    assert_int_equal(0, sl_parse_sbatch("42\n", 3, id));
    assert_string_equal("42", id);
    assert_int_equal(0, sl_parse_sbatch("\n43;cluster\n", 12, id));
    assert_string_equal("43", id);
    assert_int_equal(ORC_EFORMAT, sl_parse_sbatch("sbatch: error\n", 14, id));
    assert_int_equal(ORC_EFORMAT, sl_parse_sbatch("12x\n", 4, id));
    assert_int_equal(ORC_EFORMAT, sl_parse_sbatch("", 0, id));
    assert_int_equal(3, sl_parse_squeue_active(sq, strlen(sq)));
    assert_int_equal(0, sl_parse_squeue_active("", 0));
    assert_true(sl_squeue_job_active(sq, strlen(sq), "5"));
    assert_false(sl_squeue_job_active(sq, strlen(sq), "6"));
    assert_false(sl_squeue_job_active(sq, strlen(sq), "55"));
}

static void test_node_and_gres(void **state)
{
    char addr[64];
    const char *node = "NodeName=vm Arch=x86_64 CoresPerSocket=1 Gres=gpu:a100:2 "
                       "NodeAddr=127.0.0.1 NodeHostName=vm OS=Linux 6.1 #1 SMP State=IDLE\n";
    struct sl_part_max m;
    const char *parts = "gpu:a100:2(S:0-1)|8|64000\ngpu:a100:4,gpu:t4:1|16|128000\n";

    (void)state;
    assert_true(sl_parse_node_addr(node, strlen(node), addr, sizeof(addr)));
    assert_string_equal("127.0.0.1", addr);
    assert_false(sl_parse_node_addr("Node x not found\n", 17, addr, sizeof(addr)));
    assert_int_equal(2, sl_gres_count("gpu:a100:2", "a100"));
    assert_int_equal(2, sl_gres_count("gpu:a100:2", "A100"));
    assert_int_equal(0, sl_gres_count("gpu:a100:2", "t4"));
    assert_int_equal(3, sl_gres_count("gpu:a100:2(S:0,1),gpu:t4:1", NULL));
    assert_int_equal(1, sl_gres_count("gpu:a100:2(S:0,1),gpu:t4:1(IDX:0)", "t4"));
    assert_int_equal(4, sl_gres_count("gpu:4", NULL));
    assert_int_equal(0, sl_gres_count("gpu:4", "a100"));
    assert_int_equal(0, sl_gres_count("(null)", NULL));
    assert_int_equal(0, sl_gres_count("", NULL));
    assert_int_equal(1, sl_gres_count("gpu:a100:1(IDX:0)", "a100")); /* GresUsed */
    sl_parse_part_max(parts, strlen(parts), "a100", &m);
    assert_int_equal(2, m.rows);
    assert_int_equal(4, m.gpus);
    assert_int_equal(16, m.cpus);
    assert_int_equal(128000, m.mem_mb);
    sl_parse_part_max(parts, strlen(parts), "h100", &m);
    assert_int_equal(0, m.gpus);
}

struct rows {
    struct sl_sinfo_row r[8];
    size_t n;
};

static void collect(void *arg, const struct sl_sinfo_row *row)
{
    struct rows *rs = arg;

    if (rs->n < 8)
        rs->r[rs->n++] = *row;
}

static void test_sinfo(void **state)
{
    const char *text = "vm|gpu*|gpu:a100:2|gpu:a100:1(IDX:0)|1/1/0/2|4000|100|mix|\n"
                       "vm2|gpu*|gpu:a100:2|gpu:a100:0(IDX:N/A)|0/2/0/2|4000|0|drain|\n"
                       "vm3|cpu|(null)|gpu:0|0/8/0/8|16000|0|idle*|\n"
                       "garbage\n";
    struct rows rs = {0};

    (void)state;
    assert_int_equal(3, sl_parse_sinfo(text, strlen(text), collect, &rs));
    assert_string_equal("vm", rs.r[0].node);
    assert_string_equal("gpu", rs.r[0].partition);
    assert_true(rs.r[0].default_part);
    assert_int_equal(1, rs.r[0].cpus_alloc);
    assert_int_equal(2, rs.r[0].cpus_total);
    assert_int_equal(4000, rs.r[0].mem_mb);
    assert_int_equal(100, rs.r[0].mem_alloc_mb);
    assert_true(rs.r[0].usable);
    assert_false(rs.r[1].usable); /* drained */
    assert_false(rs.r[2].usable); /* not responding */
    assert_false(rs.r[2].default_part);
}

static void test_agent_status_and_marker(void **state)
{
    struct sl_agent_status a;
    struct sl_node n = {.nodes = 1, .gpus = 2, .cpus = 4, .mem = 3ull << 30}, back;
    const char *st = "{\"workloads\":[{\"name\":\"main\",\"state\":\"exited\",\"pid\":4,"
                     "\"restarts\":0,\"gpus\":[0],\"rank\":0,\"exit_status\":3,\"signal\":0}],"
                     "\"agent_pid\":3}";
    char *json;

    (void)state;
    sl_parse_agent_status(st, strlen(st), "main", &a);
    assert_true(a.found);
    assert_string_equal("exited", a.state);
    assert_int_equal(3, a.exit_status);
    st = "{\"workloads\":[{\"name\":\"w\",\"state\":\"ready\"}]}";
    sl_parse_agent_status(st, strlen(st), "w", &a);
    assert_true(a.found);
    assert_string_equal("ready", a.state);
    assert_int_equal(-1, a.exit_status);
    sl_parse_agent_status("not json", 8, "w", &a);
    assert_false(a.found);
    sl_parse_agent_status("", 0, "w", &a);
    assert_false(a.found);

    snprintf(n.name, sizeof(n.name), "orc-abc-node-1234567890-0");
    snprintf(n.model, sizeof(n.model), "A100");
    snprintf(n.partition, sizeof(n.partition), "gpu");
    snprintf(n.gres, sizeof(n.gres), "a100");
    snprintf(n.runtime, sizeof(n.runtime), "/w/.orc-runtime/0123456789abcdef");
    n.created_ms = 1764770000000;
    json = sl_node_json(&plain_host, &n);
    assert_non_null(json);
    assert_int_equal(0, sl_node_parse(json, strlen(json), &back));
    assert_int_equal(0, memcmp(&n, &back, sizeof(n)));
    free(json);
    assert_int_equal(ORC_EFORMAT, sl_node_parse("{}", 2, &back));
    assert_int_equal(ORC_EFORMAT, sl_node_parse("\n", 1, &back));
}

static void test_sections(void **state)
{
    const char *out = "noise\n@@marker\n{\"a\":1}\n\n@@job\n42 service\n@@queue\n";
    const char *at;
    size_t n;

    (void)state;
    assert_true(sl_section(out, strlen(out), "@@marker", &at, &n));
    assert_int_equal(0, strncmp(at, "{\"a\":1}\n\n", n));
    assert_int_equal(9, n);
    assert_true(sl_section(out, strlen(out), "@@job", &at, &n));
    assert_int_equal(11, n);
    assert_true(sl_section(out, strlen(out), "@@queue", &at, &n));
    assert_int_equal(0, n);
    assert_false(sl_section(out, strlen(out), "@@mark", &at, &n)); /* whole tags only */
    assert_false(sl_section(out, strlen(out), "@@ids", &at, &n));
    assert_int_equal(0, n);
}

/* ---- what reaches a shell ------------------------------------------------------------------ */

static char tmp_root[256];

static int teardown_tmp(void **state)
{
    (void)state;
    if (tmp_root[0] != '\0')
        test_rm_tree(tmp_root);
    tmp_root[0] = '\0';
    return 0;
}

static void write_exec(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(0, fclose(f));
    assert_int_equal(0, chmod(path, 0700));
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(0, fclose(f));
}

/* A fresh tmp_root (teardown_tmp removes it) with an empty folder for fake
 * programs in it, whose path goes to bin. */
static void tmp_with_bin(char *bin, size_t len)
{
    assert_int_equal(0, test_mkdtemp(tmp_root, sizeof(tmp_root), "test_slurm"));
    snprintf(bin, len, "%s/bin", tmp_root);
    assert_int_equal(0, mkdir(bin, 0700));
}

/* The NUL-separated words a fake program wrote, as an array (static). */
static size_t read_words(const char *path, char words[][512], size_t max)
{
    size_t len = 0, n = 0;
    char *text = test_read_file(path, &len);

    assert_non_null(text);
    for (size_t i = 0; i < len && n < max; n++) {
        size_t k = strlen(text + i);
        assert_true(k < 512);
        memcpy(words[n], text + i, k + 1);
        i += k + 1;
    }
    free(text);
    return n;
}

static void assert_no_pwned(const char *dir)
{
    char p[PATH_MAX + 16];

    for (int i = 1; i <= 3; i++) {
        snprintf(p, sizeof(p), "%s/PWNED%d", dir, i);
        assert_int_equal(-1, access(p, F_OK));
    }
    for (int i = 1; i <= 3; i++) {
        snprintf(p, sizeof(p), "PWNED%d", i);
        assert_int_equal(-1, access(p, F_OK));
    }
}

/* The script of a service whose directory, runtime folder, subdirectory
 * and command all hold every metacharacter; run by /bin/sh with a fake srun
 * and a fake gpu-agent that records its argv and two variables. */
static void test_script_hostile(void **state)
{
    char dir[PATH_MAX], rt[PATH_MAX + 64], bin[PATH_MAX + 8], path[PATH_MAX * 2], f[PATH_MAX * 2];
    char words[64][512], cmd[PATH_MAX * 3], *script = NULL, *env = NULL, err[160], *old_path;
    const char *argv[] = {"/bin/sh", "-c", "echo " HOSTILE, NULL};
    /* the template's variables may be named like the script's own */
    const struct orc_kv kv[] = {{"V1", HOSTILE},
                                {"ORC_AGENT_TOKEN", "orc-agent-v1.'$(x)'"},
                                {"dir", "/elsewhere"},
                                {"rt", "/elsewhere"},
                                {"wl", "other"},
                                {"sub", "x"},
                                {"status", "/elsewhere/s"},
                                {"SLURM_NODEID", "7"},
                                {"SLURM_NNODES", "9"}};
    struct sl_script_in in = {.wl = "train-0",
                              .service = true,
                              .check = "none",
                              .gpus = 0,
                              .port = 8081,
                              .ready_path = "/v2/models/",
                              .workdir = "sub 'x' $(y)",
                              .argv = argv};
    size_t n;

    (void)state;
    tmp_with_bin(bin, sizeof(bin));
    snprintf(dir, sizeof(dir), "%s/wdir it's \"d\" $(touch PWNED1) `touch PWNED2`; x", tmp_root);
    assert_int_equal(0, mkdir(dir, 0700));
    snprintf(rt, sizeof(rt), "%s/rt $(touch PWNED3)", dir);
    assert_int_equal(0, mkdir(rt, 0700));
    in.dir = dir;
    in.runtime = rt;
    /* fake srun: drop its options, run the rest; fake scontrol: one node */
    snprintf(f, sizeof(f), "%s/srun", bin);
    write_exec(f, "#!/bin/sh\nwhile [ \"${1#-}\" != \"$1\" ]; do shift; done\nexec \"$@\"\n");
    snprintf(f, sizeof(f), "%s/scontrol", bin);
    write_exec(f, "#!/bin/sh\necho node-a\n");
    snprintf(f, sizeof(f), "%s/gpu-agent", rt);
    write_exec(f,
               "#!/bin/sh\nd=$(dirname \"$0\")\nprintf '%s\\0' \"$@\" > \"$d/argv\"\n"
               "printf '%s\\0' \"$V1\" \"$ORC_AGENT_TOKEN\" \"$ORC_SLURM_MASTER\" > \"$d/env\"\n");
    assert_int_equal(0, sl_script_build(&plain_host, &in, &script));
    assert_int_equal(
        0, sl_envfile_build(&plain_host, kv, sizeof(kv) / sizeof(kv[0]), &env, err, sizeof(err)));
    /* the hostile words are there only as single-quoted words */
    assert_non_null(strstr(script, "'echo it'\\''s \"q\" $(touch PWNED1) `touch PWNED2`; "));
    assert_non_null(strstr(env, "export 'V1=it'\\''s \"q\" $(touch"));
    assert_null(strstr(script, "orc-agent-v1")); /* the token is in the env file only */
    snprintf(f, sizeof(f), "%s/train-0.sbatch", dir);
    write_text(f, script);
    snprintf(f, sizeof(f), "%s/train-0.env", dir);
    write_text(f, env);
    old_path = strdup(getenv("PATH"));
    snprintf(path, sizeof(path), "%s:%s", bin, old_path);
    setenv("PATH", path, 1);
    setenv("SLURM_JOB_NODELIST", "node-a", 1);
    unsetenv("SLURM_NODEID");
    snprintf(f, sizeof(f), "%s/train-0.sbatch", dir);
    {
        pid_t pid = fork();
        int st = 0;
        assert_true(pid >= 0);
        if (pid == 0) {
            if (chdir(tmp_root) != 0)
                _exit(126);
            execl("/bin/sh", "sh", f, (char *)NULL);
            _exit(127);
        }
        assert_int_equal(pid, waitpid(pid, &st, 0));
        assert_true(WIFEXITED(st));
        assert_int_equal(0, WEXITSTATUS(st));
    }
    snprintf(f, sizeof(f), "%s/argv", rt);
    n = read_words(f, words, 64);
    assert_true(n > 10);
    assert_string_equal("run", words[0]);
    assert_string_equal("--", words[n - 4]);
    assert_string_equal("/bin/sh", words[n - 3]);
    assert_string_equal("-c", words[n - 2]);
    assert_string_equal("echo " HOSTILE, words[n - 1]);
    snprintf(cmd, sizeof(cmd), "%s/train-0.status.json", dir);
    snprintf(path, sizeof(path), "%s/sub 'x' $(y)", dir);
    for (size_t i = 0; i + 1 < n; i++) {
        if (strcmp(words[i], "--status-file") == 0)
            assert_string_equal(cmd, words[i + 1]);
        if (strcmp(words[i], "--log-dir") == 0)
            assert_string_equal(dir, words[i + 1]);
        if (strcmp(words[i], "--workdir") == 0)
            assert_string_equal(path, words[i + 1]);
        if (strcmp(words[i], "--name") == 0)
            assert_string_equal("train-0", words[i + 1]);
        if (strcmp(words[i], "--kind") == 0)
            assert_string_equal("service", words[i + 1]);
        if (strcmp(words[i], "--master-addr") == 0)
            assert_string_equal("node-a", words[i + 1]);
        if (strcmp(words[i], "--node-rank") == 0)
            assert_string_equal("0", words[i + 1]);
        if (strcmp(words[i], "--nnodes") == 0)
            assert_string_equal("1", words[i + 1]);
        if (strcmp(words[i], "--gpus") == 0)
            assert_string_equal("none", words[i + 1]);
        if (strncmp(words[i], "--ready-", 8) == 0)
            assert_string_equal("--ready-http=8081:/v2/models/", words[i]);
    }
    snprintf(f, sizeof(f), "%s/env", rt);
    assert_int_equal(3, read_words(f, words, 64));
    assert_string_equal(HOSTILE, words[0]);
    assert_string_equal("orc-agent-v1.'$(x)'", words[1]);
    assert_string_equal("node-a", words[2]);
    assert_no_pwned(dir);
    assert_no_pwned(tmp_root);
    setenv("PATH", old_path, 1);
    unsetenv("SLURM_JOB_NODELIST");
    free(old_path);
    free(script);
    free(env);
}

static void test_envfile_names(void **state)
{
    const struct orc_kv bad[] = {{"OK", "1"}, {"NOT-OK", "2"}};
    const struct orc_kv bad2[] = {{"A;B", "2"}};
    const struct orc_kv bad3[] = {{"ORC_SLURM_RANK", "2"}};
    const struct orc_kv good[] = {{"_A1", ""}, {"EMPTY", ""}};
    char *out = NULL, err[160];

    (void)state;
    assert_int_equal(ORC_EINVAL, sl_envfile_build(&plain_host, bad, 2, &out, err, sizeof(err)));
    assert_null(out);
    assert_non_null(strstr(err, "NOT-OK"));
    assert_int_equal(ORC_EINVAL, sl_envfile_build(&plain_host, bad2, 1, &out, err, sizeof(err)));
    assert_int_equal(ORC_EINVAL, sl_envfile_build(&plain_host, bad3, 1, &out, err, sizeof(err)));
    assert_non_null(strstr(err, "ORC_SLURM_* are the driver's"));
    assert_int_equal(0, sl_envfile_build(&plain_host, good, 2, &out, err, sizeof(err)));
    assert_non_null(strstr(out, "export '_A1='\n"));
    free(out);
    assert_true(sl_relpath_ok("a/b"));
    assert_false(sl_relpath_ok("/a"));
    assert_false(sl_relpath_ok("a/../b"));
    assert_false(sl_relpath_ok(".."));
    assert_false(sl_relpath_ok(""));
    assert_true(sl_relpath_ok("..a"));
}

/* The sbatch command line of a site whose work_dir holds every
 * metacharacter, run by /bin/sh with a fake sbatch that records argv. */
static void test_sbatch_hostile(void **state)
{
    struct slurm s = {.host = &plain_host};
    struct sl_node n = {.nodes = 1, .gpus = 2, .cpus = 3, .mem = (1ull << 30) + 1};
    char bin[PATH_MAX + 8], f[PATH_MAX * 2], path[PATH_MAX * 2], want[PATH_MAX * 2];
    char words[40][512], line[PATH_MAX * 3];
    struct rmt_cmd c;
    const char *text = NULL;
    size_t k;

    (void)state;
    tmp_with_bin(bin, sizeof(bin));
    snprintf(f, sizeof(f), "%s/sbatch", bin);
    snprintf(line, sizeof(line), "#!/bin/sh\nprintf '%%s\\0' \"$@\" > '%s/args'\necho 99\n",
             tmp_root);
    write_exec(f, line);
    s.work = (char *)"/w/it's $(touch PWNED1) `touch PWNED2`; \"x\"";
    s.c.account = (char *)"acct";
    s.c.qos = (char *)"high";
    snprintf(n.name, sizeof(n.name), "orc-n-0");
    snprintf(n.gres, sizeof(n.gres), "a100");
    snprintf(n.partition, sizeof(n.partition), "gpu");
    rmt_cmd_init(&c, &plain_host);
    rmt_cmd_raw(&c, "cd");
    rmt_cmd_word(&c, tmp_root);
    rmt_cmd_raw(&c, " && id=$(");
    sl_sbatch_args(&s, &c, &n, "train-0", 30);
    rmt_cmd_raw(&c, ") && echo \"id=$id\"");
    assert_int_equal(0, rmt_cmd_done(&c, &text));
    snprintf(path, sizeof(path), "%s:%s", bin, getenv("PATH"));
    {
        char *cmd = NULL;
        assert_true(asprintf(&cmd, "PATH='%s' /bin/sh -c %s", path, "\"$ORC_T_CMD\"") > 0);
        setenv("ORC_T_CMD", text, 1);
        assert_int_equal(0, system(cmd));
        free(cmd);
    }
    rmt_cmd_free(&c);
    snprintf(f, sizeof(f), "%s/args", tmp_root);
    k = read_words(f, words, 40);
    assert_int_equal(16, k);
    assert_string_equal("--parsable", words[0]);
    assert_string_equal("--job-name=orc-n-0", words[1]);
    assert_string_equal("--nodes=1", words[2]);
    assert_string_equal("--ntasks-per-node=1", words[3]);
    assert_string_equal("--cpus-per-task=3", words[4]);
    assert_string_equal("--mem=1025M", words[5]);
    assert_string_equal("--time=30", words[6]);
    assert_string_equal("--gres=gpu:a100:2", words[7]);
    assert_string_equal("--partition=gpu", words[8]);
    assert_string_equal("--account=acct", words[9]);
    assert_string_equal("--qos=high", words[10]);
    snprintf(want, sizeof(want), "--output=%s/orc-n-0/train-0.slurm.out", s.work);
    assert_string_equal(want, words[11]);
    snprintf(want, sizeof(want), "--error=%s/orc-n-0/train-0.slurm.err", s.work);
    assert_string_equal(want, words[12]);
    snprintf(want, sizeof(want), "--chdir=%s/orc-n-0", s.work);
    assert_string_equal(want, words[13]);
    assert_string_equal("--no-requeue", words[14]);
    snprintf(want, sizeof(want), "%s/orc-n-0/train-0.sbatch", s.work);
    assert_string_equal(want, words[15]);
    assert_no_pwned(tmp_root);
    /* no GPUs: no --gres; a gres without a type: gpu:N */
    n.gpus = 0;
    rmt_cmd_init(&c, &plain_host);
    sl_sbatch_args(&s, &c, &n, "w", 0);
    assert_int_equal(0, rmt_cmd_done(&c, &text));
    assert_null(strstr(text, "--gres"));
    assert_null(strstr(text, "--time"));
    rmt_cmd_free(&c);
    n.gpus = 4;
    n.gres[0] = '\0';
    rmt_cmd_init(&c, &plain_host);
    sl_sbatch_args(&s, &c, &n, "w", 0);
    assert_int_equal(0, rmt_cmd_done(&c, &text));
    assert_non_null(strstr(text, " '--gres=gpu:4' "));
    rmt_cmd_free(&c);
}

/* ---- config ------------------------------------------------------------------------------- */

#define LOGIN                                                                                      \
    "\"login\": {\"address\": \"127.0.0.1\", \"port\": 2222, \"user\": \"u\", \"identity\": "      \
    "\"/k\", \"known_hosts\": \"/kh\"}"

static int conf_try(const char *json, char *err, size_t errlen)
{
    struct sl_conf c;
    int rc;

    memset(&c, 0, sizeof(c));
    err[0] = '\0';
    rc = sl_conf_parse(&plain_host, json, &c, err, errlen);
    if (rc == 0)
        sl_conf_free(&plain_host, &c);
    return rc;
}

static void test_config_errors(void **state)
{
    static const struct {
        const char *json, *want;
    } cases[] = {
        {"[]", "not a JSON object"},
        {"{", "not a JSON object"},
        {"{\"work_dir\": \"/w\"}", "login is required"},
        {"{" LOGIN "}", "work_dir is required"},
        {"{" LOGIN ", \"work_dir\": \"/w\", \"partition\": {}}", "unknown key 'partition'"},
        {"{\"login\": {\"address\": \"a\", \"password\": \"x\"}}", "login: unknown key 'password'"},
        {"{\"login\": {\"address\": \"a\", \"user\": \"u\", \"identity\": \"/k\"}, \"work_dir\": "
         "\"/w\"}",
         "login.known_hosts is required"},
        {"{\"login\": {\"address\": \"a\", \"port\": 70000}}", "login.port: expected an integer"},
        {"{\"login\": {\"address\": \"a\", \"port\": \"22\"}}", "login.port: expected an integer"},
        {"{\"login\": {\"address\": \"a\", \"host_key\": \"yes\"}}", "is not strict or tofu"},
        {"{\"login\": {\"address\": 5}}", "login.address: expected a non-empty string"},
        {"{" LOGIN ", \"work_dir\": \"\"}", "work_dir: expected a non-empty string"},
        {"{" LOGIN ", \"work_dir\": \"/w\", \"partitions\": {\"A100\": {\"partition\": "
         "\"gpu\", \"type\": \"a100\"}}}",
         "partitions.A100: unknown key 'type'"},
        {"{" LOGIN ", \"work_dir\": \"/w\", \"partitions\": {\"A100\": {\"gres\": \"a100\"}}}",
         "partitions.A100.partition is required"},
        {"{" LOGIN ", \"work_dir\": \"/w\", \"partitions\": {\"A100\": {\"partition\": "
         "\"g p\"}}}",
         "is not a Slurm name"},
        {"{" LOGIN ", \"work_dir\": \"/w\", \"partitions\": {\"A100\": {\"partition\": \"g\"}, "
         "\"a100\": {\"partition\": \"h\"}}}",
         "there twice"},
        {"{" LOGIN ", \"work_dir\": \"/w\", \"partitions\": [1]}",
         "partitions: expected a mapping"},
        {"{" LOGIN ", \"work_dir\": \"/w\", \"env\": {\"A-B\": \"1\"}}", "'A-B' is not a variable"},
        {"{" LOGIN ", \"work_dir\": \"/w\", \"env\": {\"A\": 1}}", "env.A: expected a non-empty"},
        {"{" LOGIN ", \"work_dir\": \"/w\", \"poll_ms\": 1}",
         "poll_ms: expected an integer from 10"},
        {"{" LOGIN ", \"work_dir\": \"/w\", \"queue_timeout_ms\": -1}", "queue_timeout_ms"},
        {"{" LOGIN ", \"work_dir\": \"/w\", \"agent_check\": \"deep\"}", "not none, quick or"},
        {"{" LOGIN ", \"work_dir\": \"/w\", \"account\": \"a;b\"}",
         "account: 'a;b' is not a Slurm"},
        {"{" LOGIN ", \"work_dir\": \"/w\", \"work_dir\": \"/v\"}", "not a JSON object"},
    };
    char err[256];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = conf_try(cases[i].json, err, sizeof(err));
        if (rc != ORC_EINVAL || strstr(err, cases[i].want) == NULL)
            fail_msg("config %s: rc %d, error \"%s\", wanted \"%s\"", cases[i].json, rc, err,
                     cases[i].want);
        assert_int_equal(0, strncmp(err, "slurm: config: ", 15));
    }
}

static void test_config_full(void **state)
{
    const char *json =
        "{\"login\": {\"address\": \"login.hpc\", \"port\": 2200, \"user\": \"ana\", "
        "\"identity\": \"agent\", \"known_hosts\": \"/kh\", \"host_key\": \"tofu\", "
        "\"connect_timeout_ms\": 5000}, \"work_dir\": \"/scratch/orc\", \"partitions\": "
        "{\"A100\": {\"partition\": \"gpu\", \"gres\": \"a100\"}, \"T4\": {\"partition\": "
        "\"t4\"}}, \"default_partition\": \"cpu\", \"queue_timeout_ms\": 600000, \"poll_ms\": "
        "500, \"env\": {\"SLURM_CONF\": \"/etc/x/slurm.conf\", \"PATH\": \"/opt/s/bin:/usr/bin\"}, "
        "\"account\": \"proj1\", \"qos\": \"normal\", \"time_limit_min\": 90, \"runtime_dir\": "
        "\"/opt/orc\", \"agent_check\": \"none\", \"command_timeout_ms\": 20000, "
        "\"cancel_timeout_ms\": 30000, \"install_timeout_ms\": 100000}";
    struct sl_conf c;
    struct orc_ssh_target t;
    char err[256];

    (void)state;
    memset(&c, 0, sizeof(c));
    assert_int_equal(0, sl_conf_parse(&plain_host, json, &c, err, sizeof(err)));
    assert_string_equal("login.hpc", c.address);
    assert_int_equal(2200, c.port);
    assert_int_equal(ORC_SSH_HOSTKEY_TOFU, c.hostkey);
    assert_int_equal(2, c.nparts);
    assert_string_equal("gpu", sl_conf_part(&c, "a100")->partition);
    assert_string_equal("a100", sl_conf_part(&c, "A100")->gres);
    assert_null(sl_conf_part(&c, "t4")->gres);
    assert_null(sl_conf_part(&c, "H100"));
    assert_string_equal("cpu", c.default_partition);
    assert_int_equal(600000, c.queue_timeout_ms);
    assert_int_equal(500, c.poll_ms);
    assert_int_equal(2, c.nenv);
    assert_string_equal("SLURM_CONF", c.env[0].key);
    assert_int_equal(90, c.time_limit_min);
    assert_string_equal("none", c.agent_check);
    sl_conf_target(&c, &t);
    assert_string_equal("agent", t.identity);
    assert_int_equal(2200, t.port);
    assert_int_equal(5000, t.connect_timeout_ms);
    sl_conf_free(&plain_host, &c);
    /* defaults */
    memset(&c, 0, sizeof(c));
    assert_int_equal(
        0, sl_conf_parse(&plain_host, "{" LOGIN ", \"work_dir\": \"w\"}", &c, err, sizeof(err)));
    assert_int_equal(2000, c.poll_ms);
    assert_int_equal(0, c.queue_timeout_ms);
    assert_int_equal(ORC_SSH_HOSTKEY_STRICT, c.hostkey);
    assert_int_equal(0, c.nparts);
    sl_conf_free(&plain_host, &c);
}

/* ---- operations, with a scripted login node ---------------------------------------------- */

struct fcall {
    orc_ssh_req_t *req;
    char *cmd, *input;
    bool put, canceled;
    struct fcall *next;
};

static struct fake {
    uv_loop_t loop;
    uv_timer_t tick;
    struct orc_drv_registry *reg;
    struct orc_drv_site *site;
    char rtdir[64];
    struct fcall *queue;
    char *log[1024];
    size_t nlog;
    /* answers */
    const char *open_extra;   /* appended to the open check's answer */
    const char *part_max;     /* provision: sinfo -p maxima */
    char *marker;             /* node.json as written */
    const char *jobid_line;   /* WORKLOAD.jobid */
    const char *const *jobs;  /* scontrol show job answers, one per poll (last repeats) */
    const char *const *stats; /* status file per poll (last repeats); NULL: none */
    size_t njobs, nstats, poll;
    const char *const *queues; /* deprovision's squeue answers */
    size_t nqueues, qpoll;
    bool exists;        /* deprovision: WORK/NAME is there */
    const char *lookup; /* status: the whole answer */
    const char *logs;
    const char *sinfo;
    const char *hold; /* commands holding this are never answered (until canceled) */
    unsigned scancels, sbatches, puts, looks;
    char *script, *envfile;
    uint16_t port_seen;
} F;

static void reply(struct fcall *fc, int exit_status, const char *out, const char *err)
{
    fc->req->exit_status = exit_status;
    fc->req->out = strdup(out);
    fc->req->out_len = strlen(out);
    fc->req->err = strdup(err);
    fc->req->err_len = strlen(err);
}

static const char *pick(const char *const *v, size_t n, size_t i)
{
    return n == 0 ? "" : v[i < n ? i : n - 1];
}

static void answer_poll(struct fcall *fc)
{
    char *out = NULL;

    assert_true(asprintf(&out, "@@job\n%s\n@@status\n%s\n", pick(F.jobs, F.njobs, F.poll),
                         pick(F.stats, F.nstats, F.poll)) > 0);
    F.poll++;
    reply(fc, 0, out, "");
    free(out);
}

static void answer_hashes(struct fcall *fc)
{
    struct slurm *s = F.site->state;
    char out[1024] = "";

    for (size_t i = 0; i < s->rt.n; i++)
        snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s  %s\n", s->rt.files[i].sha256,
                 s->rt.files[i].name);
    F.looks++;
    reply(fc, 0, out, "");
}

static void answer_marker(struct fcall *fc, const char *head, const char *tail)
{
    char *out = NULL;

    assert_true(asprintf(&out, "%s%s\n%s", head, F.marker ? F.marker : "", tail) > 0);
    reply(fc, 0, out, "");
    free(out);
}

static void keep(char **slot, const char *input)
{
    free(*slot);
    *slot = strdup(input ? input : "");
}

/* The login node, as far as the driver's commands go. */
static void answer(struct fcall *fc)
{
    const char *c = fc->cmd;
    char *out = NULL;

    if (fc->put) {
        F.puts++;
        reply(fc, 0, "", "");
    } else if (strstr(c, "pwd -P")) {
        assert_true(asprintf(&out, "@@work\n/remote/scratch\n@@cmds\n%s",
                             F.open_extra ? F.open_extra : "") > 0);
        reply(fc, 0, out, "");
    } else if (strstr(c, "sha256sum --")) {
        answer_hashes(fc);
    } else if (strstr(c, "echo @@max")) {
        answer_marker(fc, "@@marker\n", F.part_max ? F.part_max : "@@max\ngpu:a100:2|4|8000\n");
    } else if (strstr(c, "cat > node.json.tmp")) {
        keep(&F.marker, fc->input);
        reply(fc, 0, "", "");
    } else if (strstr(c, ".env.tmp")) {
        keep(&F.envfile, fc->input);
        if (F.marker == NULL) {
            reply(fc, 0, "", ""); /* no such node */
        } else {
            assert_true(asprintf(&out, "@@marker\n%s\n@@job\n%s", F.marker,
                                 F.jobid_line ? F.jobid_line : "") > 0);
            reply(fc, 0, out, "");
        }
    } else if (strstr(c, "sbatch --parsable")) {
        F.sbatches++;
        keep(&F.script, fc->input);
        reply(fc, 0, "@@id\n42\n", "");
    } else if (strstr(c, "echo @@job; scontrol show job")) {
        answer_poll(fc);
    } else if (strstr(c, "echo @@job; cat")) { /* stop_workload */
        assert_true(asprintf(&out, "@@job\n%s", F.jobid_line ? F.jobid_line : "") > 0);
        reply(fc, 0, out, "");
    } else if (strstr(c, "-o '%i|%T' -j")) {
        F.scancels += strstr(c, "scancel") != NULL;
        reply(fc, 0, pick(F.queues, F.nqueues, F.qpoll++), "");
    } else if (strstr(c, "scancel -u")) {
        reply(fc, 0, F.exists ? "@@exists\n" : "", "");
    } else if (strstr(c, " scancel '")) {
        F.scancels++;
        reply(fc, 0, "", "");
    } else if (strstr(c, "tail -c 65536")) {
        reply(fc, 0, "epoch 2 loss 0.1\n", "");
    } else if (strstr(c, "scontrol show node -o")) {
        reply(fc, 0, "NodeName=vm Arch=x86_64 NodeAddr=10.1.2.3 NodeHostName=vm State=MIXED\n", "");
    } else if (strstr(c, "@@ids")) {
        reply(fc, 0, F.lookup ? F.lookup : "", "");
    } else if (strstr(c, "squeue -h -t all -n")) {
        reply(fc, 0, pick(F.queues, F.nqueues, F.qpoll++), "");
    } else if (strstr(c, "rm -rf --")) {
        F.exists = false;
        reply(fc, 0, "@@removed\n", "");
    } else if (strstr(c, "@@log")) {
        reply(fc, 0, F.logs ? F.logs : "@@gone\n", "");
    } else if (strstr(c, "sinfo -h -N -O")) {
        reply(fc, 0, F.sinfo ? F.sinfo : "", "");
    } else {
        fail_msg("unexpected command: %s", c);
    }
    free(out);
}

static void tick_cb(uv_timer_t *h)
{
    struct fcall *list = F.queue, *keep_list = NULL, **tail = &keep_list;

    (void)h;
    F.queue = NULL;
    while (list != NULL) {
        struct fcall *fc = list;
        list = fc->next;
        fc->next = NULL;
        if (!fc->canceled && F.hold && !fc->put && strstr(fc->cmd, F.hold)) {
            *tail = fc;
            tail = &fc->next;
            continue;
        }
        fc->req->core_ = NULL;
        if (!fc->canceled)
            answer(fc);
        orc_ssh_req_t *req = fc->req;
        int st = fc->canceled ? ORC_ECANCELED : 0;
        if (fc->canceled)
            snprintf(req->error, sizeof(req->error), "ssh: canceled");
        free(fc->cmd);
        free(fc->input);
        free(fc);
        req->cb(req, st);
    }
    *tail = F.queue; /* what the callbacks asked comes after what is held */
    F.queue = keep_list;
}

static void enqueue(orc_ssh_req_t *req, struct fcall *fc)
{
    struct fcall **pp = &F.queue;

    fc->req = req;
    req->core_ = fc;
    while (*pp)
        pp = &(*pp)->next;
    *pp = fc;
}

static int fake_exec(const struct orc_host_api *host, const struct orc_ssh_target *t,
                     orc_ssh_req_t *req, const struct orc_ssh_exec *x)
{
    struct fcall *fc = calloc(1, sizeof(*fc));

    (void)host;
    assert_non_null(fc);
    assert_string_equal("127.0.0.1", t->address);
    assert_string_equal("u", t->user);
    F.port_seen = t->port;
    fc->cmd = strdup(x->command);
    fc->input = x->input ? strndup(x->input, x->input_len) : NULL;
    if (F.nlog < sizeof(F.log) / sizeof(F.log[0]))
        F.log[F.nlog++] = strdup(x->command);
    enqueue(req, fc);
    return 0;
}

static int fake_put(const struct orc_host_api *host, const struct orc_ssh_target *t,
                    orc_ssh_req_t *req, const struct orc_ssh_put *p)
{
    struct fcall *fc = calloc(1, sizeof(*fc));

    (void)host;
    (void)t;
    assert_non_null(fc);
    fc->put = true;
    fc->cmd = strdup(p->remote_path);
    enqueue(req, fc);
    return 0;
}

static int fake_cancel(const struct orc_host_api *host, orc_ssh_req_t *req)
{
    struct fcall *fc = req->core_;

    (void)host;
    if (fc == NULL)
        return ORC_ENOTFOUND;
    fc->canceled = true;
    return 0;
}

static void fake_release(const struct orc_host_api *host, orc_ssh_req_t *req)
{
    (void)host;
    free(req->out);
    free(req->err);
    req->out = req->err = NULL;
}

static void fake_stats(const struct orc_host_api *host, struct orc_ssh_stats *out)
{
    (void)host;
    memset(out, 0, sizeof(*out));
}

static const struct orc_ssh_api fake_ssh = {
    .size = sizeof(struct orc_ssh_api),
    .exec = fake_exec,
    .put = fake_put,
    .cancel = fake_cancel,
    .release = fake_release,
    .stats = fake_stats,
};

struct call {
    orc_op_t op;
    bool done;
    int status;
};

static void call_cb(orc_op_t *op, int status)
{
    struct call *c = op->data;

    c->done = true;
    c->status = status;
}

static void call_init(struct call *c)
{
    memset(c, 0, sizeof(*c));
    orc_drv_op_init(&c->op);
    c->op.data = c;
}

static double now_s(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

static int wait_call(struct call *c, int rc)
{
    double end = now_s() + 20;

    if (rc < 0) {
        assert_false(c->done);
        return rc;
    }
    assert_false(c->done); /* never called back from inside the slot */
    while (!c->done && now_s() < end)
        uv_run(&F.loop, UV_RUN_ONCE);
    assert_true(c->done);
    return c->status;
}

static void spin(int ms)
{
    double end = now_s() + ms / 1000.0;

    while (now_s() < end)
        uv_run(&F.loop, UV_RUN_ONCE);
}

#define BASE_CONFIG                                                                                \
    "{" LOGIN ", \"work_dir\": \"w\", \"partitions\": {\"A100\": {\"partition\": \"gpu\", "        \
    "\"gres\": \"a100\"}, \"T4\": {\"partition\": \"t4q\"}}, \"poll_ms\": 10, "                    \
    "\"env\": {\"SLURM_CONF\": \"/etc/x y/slurm.conf\"}"

/* Opens a site on config (BASE_CONFIG's keys, then extra, "}" added). */
static int f_open(const char *extra, bool with_ssh, char *err, size_t errlen)
{
    char config[4096], path[128];
    struct orc_site_conf conf = {.name = "hpc", .config_json = config};
    struct call c;
    int rc;

    memset(&F, 0, sizeof(F));
    snprintf(F.rtdir, sizeof(F.rtdir), "/tmp/test_slurm-rt.XXXXXX");
    assert_non_null(mkdtemp(F.rtdir));
    snprintf(tmp_root, sizeof(tmp_root), "%s", F.rtdir); /* removed by teardown_tmp */
    snprintf(path, sizeof(path), "%s/gpu-agent", F.rtdir);
    write_exec(path, "#!/bin/sh\nexit 0\n");
    snprintf(config, sizeof(config), "%s, \"runtime_dir\": \"%s\"%s%s}", BASE_CONFIG, F.rtdir,
             extra ? ", " : "", extra ? extra : "");
    assert_int_equal(0, uv_loop_init(&F.loop));
    assert_int_equal(0, uv_timer_init(&F.loop, &F.tick));
    assert_int_equal(0, uv_timer_start(&F.tick, tick_cb, 1, 1));
    assert_int_equal(0, orc_drv_registry_new(&F.loop, &F.reg));
    orc_drv_set_strict(F.reg, true);
    assert_int_equal(0, orc_drv_register_builtin(F.reg, &slurm_driver));
    assert_int_equal(0, orc_drv_site_new(F.reg, "slurm", &conf, &F.site));
    F.site->host.ssh = with_ssh ? &fake_ssh : NULL;
    call_init(&c);
    rc = wait_call(&c, orc_drv_site_open(F.site, &c.op, call_cb));
    snprintf(err, errlen, "%s", c.op.error);
    orc_drv_op_reset(&c.op);
    if (rc < 0) {
        assert_int_equal(0, orc_drv_site_free(F.site));
        F.site = NULL;
    }
    return rc;
}

static void f_close(void)
{
    struct call c;

    if (F.site != NULL) {
        call_init(&c);
        assert_int_equal(0, wait_call(&c, orc_drv_site_close(F.site, &c.op, call_cb)));
        orc_drv_op_reset(&c.op);
        assert_int_equal(0, orc_drv_site_free(F.site));
        F.site = NULL;
    }
    assert_int_equal(0, (int)orc_drv_violations(F.reg));
    assert_int_equal(0, orc_drv_registry_close(F.reg));
    uv_close((uv_handle_t *)&F.tick, NULL);
    uv_run(&F.loop, UV_RUN_DEFAULT);
    assert_int_equal(0, uv_loop_close(&F.loop));
    assert_null(F.queue);
    for (size_t i = 0; i < F.nlog; i++)
        free(F.log[i]);
    free(F.marker);
    free(F.script);
    free(F.envfile);
    test_rm_tree(F.rtdir);
    memset(&F, 0, sizeof(F));
}

static void f_open_ok(const char *extra)
{
    char err[ORC_OP_ERROR_LEN];

    if (f_open(extra, true, err, sizeof(err)) != 0)
        fail_msg("open: %s", err);
}

/* Was a command holding needle run? */
static bool ran(const char *needle)
{
    for (size_t i = 0; i < F.nlog; i++)
        if (strstr(F.log[i], needle))
            return true;
    return false;
}

#define NODE "orc-0123456789abcdef0123456789abcdef-train-node-a1b2c3d4e5-0"

static int provision(const char *model, uint32_t gpus, struct call *c)
{
    struct orc_node_req req = {.deployment = "01936a4e-7b2c-7def-8123-456789abcdef",
                               .node = "train_node",
                               .name = NODE,
                               .kind = ORC_KIND_COMPUTE,
                               .num_cpus = 2,
                               .mem_size = 1ull << 30,
                               .num_gpus = gpus,
                               .gpu_model = model};

    call_init(c);
    return wait_call(c, orc_drv_provision(F.site, &c->op, &req, call_cb));
}

static void f_up(void)
{
    struct call c;

    f_open_ok(NULL);
    assert_int_equal(0, provision("a100", 1, &c));
    orc_drv_op_reset(&c.op);
}

static int run_job(bool service, uint16_t port, struct call *c)
{
    const char *argv[] = {"/bin/sh", "-c", "gpu-train --epochs \"$EPOCHS\" --out ckpt.bin", NULL};
    const struct orc_kv env[] = {{"EPOCHS", "2"}, {"ORC_AGENT_TOKEN", "orc-agent-v1.s3cret"}};
    struct orc_exec_req req = {
        .name = NODE, .workload = "training-0", .argv = argv, .env = env, .nenv = 2, .port = port};

    call_init(c);
    return wait_call(c, service ? orc_drv_start_workload(F.site, &c->op, &req, call_cb)
                                : orc_drv_exec(F.site, &c->op, &req, call_cb));
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* scontrol show job -o answers for job 42: on node vm (running or ended),
 * or pending with reason (no node yet). */
#define JOB42(state, reason, exit)                                                                 \
    "JobId=42 JobState=" state " Reason=" reason " ExitCode=" exit " NodeList=vm BatchHost=vm"
#define JOB42_RUNNING JOB42("RUNNING", "None", "0:0")
#define JOB42_PENDING(reason)                                                                      \
    "JobId=42 JobState=PENDING Reason=" reason " ExitCode=0:0 NodeList=(null)"

/* The agent's status file holding workload training-0 with fields (the
 * keys after its name). */
#define AGENT_STATUS(fields) "{\"workloads\":[{\"name\":\"training-0\"," fields "}]}"
#define AGENT_STATE(st) AGENT_STATUS("\"state\":\"" st "\"")

/* Scripts the answers to a workload's polls: scontrol show job (one per
 * poll, the last repeats) and the agent's status file (NULL: none). */
static void script_polls(const char *const *jobs, size_t njobs, const char *const *stats,
                         size_t nstats)
{
    F.jobs = jobs;
    F.njobs = njobs;
    F.stats = stats;
    F.nstats = nstats;
}

/* One workload run (exec, or start_workload on port 8081) and how it ends. */
struct run_case {
    const char *const *jobs; /* the polls' answers, as script_polls takes them */
    size_t njobs;
    const char *const *stats;
    size_t nstats;
    bool service;
    int want;             /* the op's status */
    int exit_status;      /* checked when want is 0 */
    const char *error[3]; /* each in op.error (NULL: no more) */
};

/* Runs k's workload on the open site and asserts how it ended; c keeps the
 * op for more checks, and the caller resets it. */
static void run_expect(const struct run_case *k, struct call *c)
{
    script_polls(k->jobs, k->njobs, k->stats, k->nstats);
    assert_int_equal(k->want, run_job(k->service, k->service ? 8081 : 0, c));
    if (k->want == 0)
        assert_int_equal(k->exit_status, c->op.exit_status);
    for (size_t i = 0; i < COUNT(k->error) && k->error[i] != NULL; i++)
        assert_non_null(strstr(c->op.error, k->error[i]));
}

/* run_expect on a fresh site with the node provisioned (f_up), closed after. */
static void check_run(const struct run_case *k)
{
    struct call c;

    f_up();
    run_expect(k, &c);
    orc_drv_op_reset(&c.op);
    f_close();
}

/* The slots below run on the open site and are waited for: each returns the
 * op's status; c holds the op for the caller to check and reset. */

/* status of node name */
static int status_op(const char *name, struct call *c)
{
    call_init(c);
    return wait_call(c, orc_drv_status(F.site, &c->op, name, call_cb));
}

/* adopt of node name */
static int adopt_op(const char *name, struct call *c)
{
    call_init(c);
    return wait_call(c, orc_drv_adopt(F.site, &c->op, name, call_cb));
}

/* deprovision of node name */
static int deprovision_op(const char *name, struct call *c)
{
    call_init(c);
    return wait_call(c, orc_drv_deprovision(F.site, &c->op, name, call_cb));
}

/* stop_workload of workload wl on node name */
static int stop_op(const char *name, const char *wl, struct call *c)
{
    call_init(c);
    return wait_call(c, orc_drv_stop_workload(F.site, &c->op, name, wl, call_cb));
}

/* logs as req asks */
static int logs_op(const struct orc_logs_req *req, struct call *c)
{
    call_init(c);
    return wait_call(c, orc_drv_logs(F.site, &c->op, req, call_cb));
}

/* inventory of the site */
static int inventory_op(struct call *c)
{
    call_init(c);
    return wait_call(c, orc_drv_inventory(F.site, &c->op, call_cb));
}

/* status's answer for the provisioned node: its marker, service job 42 and
 * the queue's line for that job. */
static void lookup_answer(char *buf, size_t len, const char *queue_line)
{
    snprintf(buf, len, "@@marker\n%s\n@@ids\n42 service\n@@queue\n%s\n", F.marker, queue_line);
}

static void test_open(void **state)
{
    char err[ORC_OP_ERROR_LEN];

    (void)state;
    assert_int_equal(ORC_ENOTSUP, f_open(NULL, false, err, sizeof(err)));
    assert_non_null(strstr(err, "no SSH client"));
    f_close();
    assert_int_equal(ORC_EINVAL, f_open("\"queue\": 1", true, err, sizeof(err)));
    assert_non_null(strstr(err, "unknown key 'queue'"));
    f_close();
}

static void test_open_missing_commands(void **state)
{
    char err[ORC_OP_ERROR_LEN];
    struct call c;

    (void)state;
    f_open_ok(NULL);
    /* re-open a second site on the same fake, whose answer now lacks commands */
    {
        struct orc_drv_site *second = NULL;
        char config[2048];
        struct orc_site_conf conf = {.name = "hpc2", .config_json = config};
        snprintf(config, sizeof(config), "%s, \"runtime_dir\": \"%s\"}", BASE_CONFIG, F.rtdir);
        F.open_extra = "missing sbatch\nmissing srun\n";
        assert_int_equal(0, orc_drv_site_new(F.reg, "slurm", &conf, &second));
        second->host.ssh = &fake_ssh;
        call_init(&c);
        assert_int_equal(ORC_EDRIVER, wait_call(&c, orc_drv_site_open(second, &c.op, call_cb)));
        snprintf(err, sizeof(err), "%s", c.op.error);
        orc_drv_op_reset(&c.op);
        assert_int_equal(0, orc_drv_site_free(second));
    }
    assert_non_null(strstr(err, "sbatch, srun not found on the login node 127.0.0.1"));
    /* every command exports the site's env, quoted */
    assert_non_null(strstr(F.log[0], "export 'SLURM_CONF=/etc/x y/slurm.conf'; umask 077;"));
    assert_int_equal(2222, F.port_seen);
    f_close();
}

static void test_provision(void **state)
{
    struct call c;
    struct sl_node n;

    (void)state;
    f_open_ok(NULL);
    /* a model not in the map: at once, naming it */
    assert_int_equal(ORC_DRV_ENOCAPACITY, provision("H100", 1, &c));
    assert_non_null(strstr(c.op.error, "no GPU model H100 here (models: A100, T4)"));
    orc_drv_op_reset(&c.op);
    /* more GPUs than the largest node has */
    assert_int_equal(ORC_DRV_ENOCAPACITY, provision("A100", 4, &c));
    assert_non_null(
        strstr(c.op.error, "requested 4 x A100 on one node, partition gpu has at most 2"));
    orc_drv_op_reset(&c.op);
    assert_null(F.marker);
    /* fits: directory, runtime checked (nothing to upload), marker */
    assert_int_equal(0, provision("a100", 1, &c));
    assert_true(c.op.exists);
    assert_int_equal(ORC_DRV_RES_READY, c.op.res_state);
    assert_string_equal("A100", orc_drv_op_attr(&c.op, ORC_ATTR_GPU_MODEL));
    assert_string_equal("gpu", orc_drv_op_attr(&c.op, ORC_ATTR_FLAVOR));
    assert_string_equal(NODE, orc_drv_op_attr(&c.op, ORC_ATTR_PROVIDER_ID));
    orc_drv_op_reset(&c.op);
    assert_non_null(F.marker);
    assert_int_equal(0, sl_node_parse(F.marker, strlen(F.marker), &n));
    assert_string_equal("gpu", n.partition);
    assert_string_equal("a100", n.gres);
    assert_int_equal(1, n.gpus);
    assert_int_equal(2, n.cpus);
    assert_int_equal(1ull << 30, n.mem);
    assert_int_equal(0, strncmp(n.runtime, "/remote/scratch/.orc-runtime/", 26));
    assert_int_equal(1, F.looks);
    assert_int_equal(0, F.puts);
    assert_true(ran("sinfo -h '-p' 'gpu' -o '%G|%c|%m'"));
    /* again: the same node, nothing installed or written again */
    assert_int_equal(0, provision("A100", 1, &c));
    assert_true(c.op.exists);
    orc_drv_op_reset(&c.op);
    assert_int_equal(1, F.looks);
    /* not a compute node */
    {
        struct orc_node_req req = {.name = "orc-x-0", .kind = ORC_KIND_SERVICE};
        call_init(&c);
        assert_int_equal(ORC_ENOTSUP,
                         wait_call(&c, orc_drv_provision(F.site, &c.op, &req, call_cb)));
        orc_drv_op_reset(&c.op);
    }
    f_close();
}

static void test_exec_completed(void **state)
{
    static const char *const jobs[] = {JOB42_PENDING("Resources"), JOB42_RUNNING,
                                       JOB42("COMPLETED", "None", "0:0")};
    const struct run_case k = {.jobs = jobs, .njobs = COUNT(jobs), .exit_status = 0};
    struct call c;

    (void)state;
    f_up();
    run_expect(&k, &c);
    assert_string_equal("epoch 2 loss 0.1\n", c.op.output);
    assert_string_equal("42", orc_drv_op_attr(&c.op, "slurm_job_id"));
    assert_string_equal("vm", orc_drv_op_attr(&c.op, "slurm_node"));
    orc_drv_op_reset(&c.op);
    assert_int_equal(1, F.sbatches);
    assert_int_equal(3, F.poll);
    /* the sbatch line, the script and the env file */
    assert_true(ran("'--job-name=" NODE "' '--nodes=1' '--ntasks-per-node=1' '--cpus-per-task=2' "
                    "'--mem=1024M' '--gres=gpu:a100:1' '--partition=gpu'"));
    assert_true(ran("'--no-requeue' '/remote/scratch/" NODE "/training-0.sbatch'"));
    assert_non_null(strstr(F.script, "--kind 'job'"));
    assert_non_null(
        strstr(F.script, "'/bin/sh' '-c' 'gpu-train --epochs \"$EPOCHS\" --out ckpt.bin'"));
    assert_null(strstr(F.script, "--gpus none"));
    assert_non_null(strstr(F.envfile, "export 'EPOCHS=2'\n"));
    assert_non_null(strstr(F.envfile, "export 'ORC_AGENT_TOKEN=orc-agent-v1.s3cret'\n"));
    assert_false(ran("s3cret")); /* never on a command line */
    f_close();
}

/* A re-driven exec (a daemon restart): the job an earlier call submitted is
 * followed while it runs; once it has ended, exec submits a new one. */
static void test_exec_follows_earlier_job(void **state)
{
    static const char *const jobs[] = {JOB42_RUNNING, JOB42("COMPLETED", "None", "0:0")};
    const struct run_case k = {.jobs = jobs, .njobs = COUNT(jobs), .exit_status = 0};
    struct call c;

    (void)state;
    f_up();
    F.jobid_line = "42 job\n";
    run_expect(&k, &c);
    orc_drv_op_reset(&c.op);
    assert_int_equal(0, F.sbatches);
    /* its job ended: a new one */
    F.poll = 1;
    assert_int_equal(0, run_job(false, 0, &c));
    orc_drv_op_reset(&c.op);
    assert_int_equal(1, F.sbatches);
    /* a service's job id is not a job's */
    F.jobid_line = "42 service\n";
    F.poll = 0;
    assert_int_equal(0, run_job(false, 0, &c));
    orc_drv_op_reset(&c.op);
    assert_int_equal(2, F.sbatches);
    f_close();
}

static void test_exec_failed_exit(void **state)
{
    static const char *const jobs[] = {JOB42_RUNNING, JOB42("FAILED", "NonZeroExitCode", "1:0")};
    const struct run_case k = {.jobs = jobs, .njobs = COUNT(jobs), .exit_status = 1};

    (void)state;
    check_run(&k);
}

static void test_exec_node_fail(void **state)
{
    static const char *const jobs[] = {JOB42_RUNNING, JOB42("NODE_FAIL", "None", "0:0")};
    const struct run_case k = {
        .jobs = jobs,
        .njobs = COUNT(jobs),
        .want = ORC_EDRIVER,
        .error = {"job 42 of " NODE "/training-0 NODE_FAIL", "(node vm)"},
    };

    (void)state;
    check_run(&k);
}

static void test_exec_queue_timeout(void **state)
{
    static const char *const jobs[] = {
        JOB42_PENDING("Nodes_required_for_job_are_DOWN,_DRAINED_or_reserved")};
    const struct run_case k = {
        .jobs = jobs,
        .njobs = COUNT(jobs),
        .want = ORC_DRV_ENOCAPACITY,
        .error = {"job 42 of " NODE " pending for",
                  "(Nodes required for job are DOWN, DRAINED or reserved)", "canceled"},
    };
    struct call c;

    (void)state;
    f_open_ok("\"queue_timeout_ms\": 60");
    assert_int_equal(0, provision("a100", 1, &c));
    orc_drv_op_reset(&c.op);
    run_expect(&k, &c);
    orc_drv_op_reset(&c.op);
    assert_int_equal(1, F.scancels);
    assert_true(ran(" scancel '42'"));
    assert_true(F.poll >= 2);
    f_close();
}

static void test_exec_forgotten_job(void **state)
{
    static const char *const jobs[] = {JOB42_RUNNING,
                                       "@@acct"}; /* scontrol forgot it, accounting is off */
    static const char *const stats[] = {AGENT_STATE("running"),
                                        AGENT_STATUS("\"state\":\"exited\",\"exit_status\":3")};
    const struct run_case exited = {.jobs = jobs,
                                    .njobs = COUNT(jobs),
                                    .stats = stats,
                                    .nstats = COUNT(stats),
                                    .exit_status = 3};
    /* and without a status file: an error that says so */
    const struct run_case unknown = {
        .jobs = jobs + 1, .njobs = 1, .want = ORC_EDRIVER, .error = {"no longer known to Slurm"}};
    struct call c;

    (void)state;
    f_up();
    run_expect(&exited, &c);
    orc_drv_op_reset(&c.op);
    F.poll = 1;
    run_expect(&unknown, &c);
    orc_drv_op_reset(&c.op);
    f_close();
}

static void test_exec_no_node(void **state)
{
    struct call c;

    (void)state;
    f_open_ok(NULL);
    assert_int_equal(ORC_ENOTFOUND, run_job(false, 0, &c));
    assert_non_null(strstr(c.op.error, "no node " NODE));
    orc_drv_op_reset(&c.op);
    /* requests refused at once */
    {
        const char *argv[] = {"x", NULL};
        const uint32_t gpus[] = {0};
        struct orc_exec_req bad[] = {
            {.name = "bad name", .argv = argv},
            {.name = NODE, .workload = "../x", .argv = argv},
            {.name = NODE, .argv = (const char *const[]){NULL}},
            {.name = NODE, .argv = argv, .gpus = gpus, .ngpus = 1},
            {.name = NODE, .argv = argv, .workdir = "../up"},
            {.name = NODE, .argv = argv, .ready_path = "no slash"},
            {.name = NODE, .argv = argv, .env = (const struct orc_kv[]){{"A B", "1"}}, .nenv = 1},
        };
        const int want[] = {ORC_EINVAL, ORC_EINVAL, ORC_EINVAL, ORC_ENOTSUP,
                            ORC_EINVAL, ORC_EINVAL, ORC_EINVAL};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            call_init(&c);
            assert_int_equal(want[i], wait_call(&c, orc_drv_exec(F.site, &c.op, &bad[i], call_cb)));
            orc_drv_op_reset(&c.op);
        }
    }
    f_close();
}

static void test_service_ready(void **state)
{
    static const char *const jobs[] = {JOB42_PENDING("Priority"), JOB42_RUNNING};
    static const char *const stats[] = {"", AGENT_STATE("starting"), AGENT_STATE("running"),
                                        AGENT_STATE("ready")};
    const struct run_case k = {.jobs = jobs,
                               .njobs = COUNT(jobs),
                               .stats = stats,
                               .nstats = COUNT(stats),
                               .service = true,
                               .exit_status = -1};
    struct call c;

    (void)state;
    f_up();
    run_expect(&k, &c);
    assert_string_equal("http://10.1.2.3:8081", orc_drv_op_attr(&c.op, ORC_ATTR_ENDPOINT));
    assert_string_equal("10.1.2.3", orc_drv_op_attr(&c.op, ORC_ATTR_PRIVATE_ADDRESS));
    assert_string_equal("[8081]", orc_drv_op_attr(&c.op, ORC_ATTR_PORTS));
    orc_drv_op_reset(&c.op);
    assert_int_equal(4, F.poll);
    assert_non_null(strstr(F.script, "--kind 'service'"));
    assert_non_null(strstr(F.script, "'--ready-tcp=8081'"));
    assert_true(ran("printf '%s %s\\n' \"$id\" 'service' >"));
    /* started already and running: followed, not submitted again */
    F.jobid_line = "42 service\n";
    F.poll = 3;
    assert_int_equal(0, run_job(true, 8081, &c));
    assert_string_equal("http://10.1.2.3:8081", orc_drv_op_attr(&c.op, ORC_ATTR_ENDPOINT));
    orc_drv_op_reset(&c.op);
    assert_int_equal(1, F.sbatches);
    f_close();
}

static void test_service_gives_up(void **state)
{
    static const char *const jobs[] = {JOB42_RUNNING, JOB42_RUNNING,
                                       JOB42("FAILED", "NonZeroExitCode", "70:0")};
    static const char *const stats[] = {AGENT_STATE("backoff")};
    const struct run_case k = {.jobs = jobs,
                               .njobs = COUNT(jobs),
                               .stats = stats,
                               .nstats = COUNT(stats),
                               .service = true,
                               .want = ORC_EDRIVER,
                               .error = {"ended FAILED"}};

    (void)state;
    check_run(&k);
}

static void test_status_and_deprovision(void **state)
{
    static const char *const queues[] = {"42|RUNNING\n", "42|COMPLETING\n", "42|CANCELLED\n"};
    char look[2048];
    struct call c;

    (void)state;
    f_up();
    lookup_answer(look, sizeof(look), "42|RUNNING");
    F.lookup = look;
    assert_int_equal(0, status_op(NODE, &c));
    assert_true(c.op.exists);
    assert_int_equal(ORC_DRV_RES_READY, c.op.res_state);
    assert_string_equal("A100", orc_drv_op_attr(&c.op, ORC_ATTR_GPU_MODEL));
    orc_drv_op_reset(&c.op);
    /* its service is no longer in the queue: FAILED */
    lookup_answer(look, sizeof(look), "42|CANCELLED");
    assert_int_equal(0, adopt_op(NODE, &c));
    assert_int_equal(ORC_DRV_RES_FAILED, c.op.res_state);
    orc_drv_op_reset(&c.op);
    /* a directory without marker: a provision that did not finish */
    F.lookup = "@@marker\n\n@@ids\n@@queue\n";
    assert_int_equal(0, status_op(NODE, &c));
    assert_true(c.op.exists);
    assert_int_equal(ORC_DRV_RES_CREATING, c.op.res_state);
    orc_drv_op_reset(&c.op);
    F.lookup = "";
    assert_int_equal(0, status_op(NODE, &c));
    assert_false(c.op.exists);
    orc_drv_op_reset(&c.op);
    /* deprovision: scancel, wait for the queue to empty, remove, verify */
    F.exists = true;
    F.queues = queues;
    F.nqueues = 3;
    assert_int_equal(0, deprovision_op(NODE, &c));
    assert_true(c.op.exists);
    orc_drv_op_reset(&c.op);
    assert_int_equal(3, F.qpoll);
    assert_true(ran("scancel -u \"$(id -un)\" -n '" NODE "'"));
    assert_true(ran("rm -rf -- '" NODE "'"));
    /* again: nothing there, a success */
    assert_int_equal(0, deprovision_op(NODE, &c));
    assert_false(c.op.exists);
    orc_drv_op_reset(&c.op);
    assert_int_equal(ORC_EINVAL, deprovision_op("a;b", &c));
    orc_drv_op_reset(&c.op);
    f_close();
}

static void test_stop_workload(void **state)
{
    static const char *const queues[] = {"42|RUNNING\n", "42|COMPLETING\n", "42|CANCELLED\n"};
    struct call c;

    (void)state;
    f_up();
    /* never started: nothing to stop */
    assert_int_equal(0, stop_op(NODE, "web-0", &c));
    assert_false(c.op.exists);
    orc_drv_op_reset(&c.op);
    assert_int_equal(0, F.scancels);
    /* running: scancel, until squeue says it ended */
    F.jobid_line = "42 service\n";
    F.queues = queues;
    F.nqueues = 3;
    assert_int_equal(0, stop_op(NODE, "web-0", &c));
    assert_true(c.op.exists);
    orc_drv_op_reset(&c.op);
    assert_int_equal(1, F.scancels);
    assert_int_equal(3, F.qpoll);
    assert_true(ran("cat 'web-0.jobid'"));
    /* ended already: not running */
    F.qpoll = 2;
    assert_int_equal(0, stop_op(NODE, "web-0", &c));
    assert_false(c.op.exists);
    orc_drv_op_reset(&c.op);
    f_close();
}

static void test_deprovision_stuck(void **state)
{
    static const char *const queues[] = {"42|COMPLETING\n"};
    struct call c;

    (void)state;
    f_open_ok("\"cancel_timeout_ms\": 150");
    F.exists = true;
    F.queues = queues;
    F.nqueues = 1;
    assert_int_equal(ORC_EDRIVER, deprovision_op(NODE, &c));
    assert_non_null(strstr(c.op.error, "1 job(s) of " NODE " still in squeue"));
    orc_drv_op_reset(&c.op);
    assert_false(ran("rm -rf"));
    f_close();
}

static void test_logs(void **state)
{
    struct orc_logs_req req = {
        .name = NODE, .workload = "training-0", .offset = 90, .max_bytes = 10};
    struct call c;

    (void)state;
    f_open_ok(NULL);
    F.logs = "@@log 100 90\n0123456789";
    assert_int_equal(0, logs_op(&req, &c));
    assert_int_equal(90, c.op.out_offset);
    assert_int_equal(100, c.op.out_total);
    assert_int_equal(10, c.op.output_len);
    assert_string_equal("0123456789", c.op.output);
    orc_drv_op_reset(&c.op);
    assert_true(ran("f='training-0.log'; s=0;"));
    assert_true(ran("o=90;"));
    assert_true(ran("head -c 10"));
    req.offset = ORC_LOGS_TAIL;
    assert_int_equal(0, logs_op(&req, &c));
    orc_drv_op_reset(&c.op);
    assert_true(ran("o=$((s > 10 ? s - 10 : 0));"));
    F.logs = "@@gone\n";
    assert_int_equal(ORC_ENOTFOUND, logs_op(&req, &c));
    orc_drv_op_reset(&c.op);
    f_close();
}

static void test_inventory(void **state)
{
    struct call c;
    const struct orc_pool *a100 = NULL, *t4 = NULL, *cpu = NULL;

    (void)state;
    f_open_ok(NULL);
    F.sinfo = "vm1|gpu*|gpu:a100:2|gpu:a100:1(IDX:0)|1/1/0/2|4000|1000|mix|\n"
              "vm2|gpu*|gpu:a100:4|gpu:a100:0(IDX:N/A)|0/8/0/8|8000|0|drain|\n"
              "vm3|t4q|gpu:t4:1|gpu:t4:0(IDX:N/A)|0/4/0/4|2000|0|idle|\n";
    assert_int_equal(0, inventory_op(&c));
    for (uint32_t i = 0; i < c.op.npools; i++) {
        const struct orc_pool *p = &c.op.pools[i];
        if (p->gpu_model && strcmp(p->gpu_model, "A100") == 0)
            a100 = p;
        else if (p->gpu_model && strcmp(p->gpu_model, "T4") == 0)
            t4 = p;
        else if (p->gpu_model == NULL)
            cpu = p;
    }
    assert_non_null(a100);
    assert_non_null(t4);
    assert_non_null(cpu);
    assert_int_equal(6, a100->gpus_total);
    assert_int_equal(1, a100->gpus_free); /* the drained node has none free */
    assert_int_equal(4, a100->max_gpus_per_node);
    assert_int_equal(1, t4->gpus_total);
    assert_int_equal(1, t4->gpus_free);
    assert_string_equal("cpu", cpu->name);
    assert_int_equal(10, cpu->cpus_total); /* the default partition: gpu* */
    assert_int_equal(1, cpu->cpus_free);
    orc_drv_op_reset(&c.op);
    f_close();
}

static void test_cancel_and_close(void **state)
{
    static const char *const jobs[] = {JOB42_PENDING("Priority")};
    struct call c, c2;
    const char *argv[] = {"true", NULL};
    struct orc_exec_req req = {.name = NODE, .workload = "w", .argv = argv};

    (void)state;
    f_up();
    script_polls(jobs, COUNT(jobs), NULL, 0);
    /* waiting on its poll timer or a poll: cancel ends it */
    call_init(&c);
    assert_int_equal(0, orc_drv_exec(F.site, &c.op, &req, call_cb));
    spin(60);
    assert_false(c.done);
    assert_int_equal(0, orc_drv_cancel(F.site, &c.op));
    assert_false(c.done);
    assert_int_equal(ORC_ECANCELED, wait_call(&c, 0));
    orc_drv_op_reset(&c.op);
    assert_int_equal(ORC_ENOTFOUND, orc_drv_cancel(F.site, &c.op));
    /* a remote command that never answers, then the site closes */
    F.hold = "echo @@job; scontrol";
    call_init(&c);
    assert_int_equal(0, orc_drv_exec(F.site, &c.op, &req, call_cb));
    call_init(&c2);
    assert_int_equal(0, orc_drv_status(F.site, &c2.op, NODE, call_cb));
    spin(50);
    assert_false(c.done);
    {
        struct call cl;
        call_init(&cl);
        assert_int_equal(0, orc_drv_site_close(F.site, &cl.op, call_cb));
        assert_false(cl.done);
        assert_int_equal(0, wait_call(&cl, 0));
        orc_drv_op_reset(&cl.op);
        assert_true(c.done);
        assert_int_equal(ORC_ECANCELED, c.status);
        assert_true(c2.done);
        assert_true(c2.status == 0 || c2.status == ORC_ECANCELED);
        assert_int_equal(0, orc_drv_site_free(F.site));
        F.site = NULL;
    }
    orc_drv_op_reset(&c.op);
    orc_drv_op_reset(&c2.op);
    f_close();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_job_states),
        cmocka_unit_test(test_scontrol_job),
        cmocka_unit_test(test_sacct_sbatch_squeue),
        cmocka_unit_test(test_node_and_gres),
        cmocka_unit_test(test_sinfo),
        cmocka_unit_test(test_agent_status_and_marker),
        cmocka_unit_test(test_sections),
        cmocka_unit_test_teardown(test_script_hostile, teardown_tmp),
        cmocka_unit_test(test_envfile_names),
        cmocka_unit_test_teardown(test_sbatch_hostile, teardown_tmp),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_config_full),
        cmocka_unit_test_teardown(test_open, teardown_tmp),
        cmocka_unit_test_teardown(test_open_missing_commands, teardown_tmp),
        cmocka_unit_test_teardown(test_provision, teardown_tmp),
        cmocka_unit_test_teardown(test_exec_completed, teardown_tmp),
        cmocka_unit_test_teardown(test_exec_follows_earlier_job, teardown_tmp),
        cmocka_unit_test_teardown(test_exec_failed_exit, teardown_tmp),
        cmocka_unit_test_teardown(test_exec_node_fail, teardown_tmp),
        cmocka_unit_test_teardown(test_exec_queue_timeout, teardown_tmp),
        cmocka_unit_test_teardown(test_exec_forgotten_job, teardown_tmp),
        cmocka_unit_test_teardown(test_exec_no_node, teardown_tmp),
        cmocka_unit_test_teardown(test_service_ready, teardown_tmp),
        cmocka_unit_test_teardown(test_service_gives_up, teardown_tmp),
        cmocka_unit_test_teardown(test_status_and_deprovision, teardown_tmp),
        cmocka_unit_test_teardown(test_stop_workload, teardown_tmp),
        cmocka_unit_test_teardown(test_deprovision_stuck, teardown_tmp),
        cmocka_unit_test_teardown(test_logs, teardown_tmp),
        cmocka_unit_test_teardown(test_inventory, teardown_tmp),
        cmocka_unit_test_teardown(test_cancel_and_close, teardown_tmp),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
