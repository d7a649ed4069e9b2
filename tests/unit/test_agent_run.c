/*
 * `gpu-agent run` (gpu-runtime/agent/run*.c), through the real binary
 * ($GPU_AGENT) on this machine (no GPU, no driver): GPU pinning and the
 * distributed variables the workload sees, the reporting variables kept
 * from it, a job's exit status (and 128+N for a signal), a service's
 * restarts with a doubling backoff and its give-up (exit 70), the stop of a
 * whole process group (SIGTERM, SIGKILL after the grace), log rotation with
 * nothing lost in the files kept, readiness over HTTP in the status file,
 * and usage errors that name the option.
 */
#define _GNU_SOURCE /* asprintf */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

static char dir[256];

/* The agent's absolute path (the tests cd into their directory). */
static const char *agent(void)
{
    static char path[4096];
    const char *a = getenv("GPU_AGENT");

    if (path[0] == '\0')
        assert_non_null(realpath(a && *a ? a : "build/release/bin/gpu-agent", path));
    return path;
}

static int setup(void **state)
{
    (void)state;
    assert_int_equal(test_mkdtemp(dir, sizeof(dir), "agent-run"), 0);
    return 0;
}

static int teardown(void **state)
{
    char cmd[300];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Runs `gpu-agent run ARGS` in dir (a shell line) with a token in its
 * environment; its exit status. */
static int run(const char *args)
{
    char *cmd = NULL;
    int st;

    assert_true(asprintf(&cmd, "cd '%s' && ORC_AGENT_TOKEN=secret '%s' run %s >agent.out 2>&1",
                         dir, agent(), args) > 0);
    st = system(cmd);
    free(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *file(const char *name)
{
    char path[512];

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return test_read_file(path, NULL);
}

static void assert_in(const char *name, const char *want)
{
    char *t = file(name);

    if (t == NULL || strstr(t, want) == NULL)
        fail_msg("%s does not hold '%s': %s", name, want, t ? t : "(no file)");
    free(t);
}

static void test_pinning_env(void **state)
{
    (void)state;
    /* no driver here: the check cannot judge, the allocation is kept */
    assert_int_equal(run("--gpus 1,3 -- sh -c 'echo \"cvd=[$CUDA_VISIBLE_DEVICES] "
                         "order=$CUDA_DEVICE_ORDER tok=[$ORC_AGENT_TOKEN] wl=$GPU_AGENT_WORKLOAD\"'"),
                     0);
    assert_in("main.log", "cvd=[1,3] order=PCI_BUS_ID tok=[] wl=main");
    assert_in("main.log", "the allocation is kept");
    assert_int_equal(run("--name n2 --gpus none -- sh -c 'echo \"cvd=[$CUDA_VISIBLE_DEVICES] "
                         "rank=[$RANK]\"'"),
                     0);
    assert_in("n2.log", "cvd=[] rank=[]");
    /* two processes, the allocation split, the ranks of node 1 of 2 */
    assert_int_equal(run("--name d --check none --gpus 0,1,2,3 --nproc-per-node 2 --nnodes 2 "
                         "--node-rank 1 --master-addr 10.0.0.1 --master-port 7777 -- sh -c "
                         "'echo \"cvd=$CUDA_VISIBLE_DEVICES rank=$RANK local=$LOCAL_RANK "
                         "world=$WORLD_SIZE node=$NODE_RANK master=$MASTER_ADDR:$MASTER_PORT\"'"),
                     0);
    assert_in("d.log", "cvd=0,1 rank=2 local=0 world=4 node=1 master=10.0.0.1:7777");
    assert_in("d.rank1.log", "cvd=2,3 rank=3 local=1 world=4 node=1 master=10.0.0.1:7777");
    /* --env adds, the agent's variables win */
    assert_int_equal(run("--name e --check none --gpus 5 --env GREETING=hi "
                         "--env CUDA_VISIBLE_DEVICES=9 -- sh -c 'echo \"g=$GREETING "
                         "c=$CUDA_VISIBLE_DEVICES\"'"),
                     0);
    assert_in("e.log", "g=hi c=5");
}

static void test_job_status(void **state)
{
    (void)state;
    assert_int_equal(run("--check none -- sh -c 'exit 3'"), 3);
    assert_int_equal(run("--name k --check none -- sh -c 'kill -KILL $$'"), 128 + 9);
    assert_in("k.log", "killed by signal 9");
    /* a program that does not exist */
    assert_int_equal(run("--name nx --check none -- /nonexistent/program"), 127);
    assert_in("nx.log", "cannot start nx: '/nonexistent/program'");
    /* fewer usable GPUs than asked */
    assert_int_equal(run("--name few --gpus none --min-gpus 1 -- true"), 3);
    assert_in("agent.out", "fewer than --min-gpus 1");
}

static void test_service_restarts_and_gives_up(void **state)
{
    (void)state;
    assert_int_equal(run("--kind service --check none --restart-backoff-ms 20 "
                         "--restart-backoff-max-ms 40 --restart-max 4 --status-file st.json "
                         "-- sh -c 'echo alive; exit 1'"),
                     70);
    assert_in("main.log", "restarting main in 20 ms (exited with status 1)");
    assert_in("main.log", "restarting main in 40 ms");
    assert_in("main.log", "it stopped 4 times within 60 s: giving up");
    char *log = file("main.log");
    int ups = 0;
    for (char *p = log; (p = strstr(p, "alive\n")) != NULL; p++)
        ups++;
    free(log);
    assert_int_equal(ups, 4);
    assert_in("st.json", "\"state\":\"failed\"");
    assert_in("st.json", "\"restarts\":3");
}

/* A process that runs: it exists and is no zombie. */
static bool running(pid_t pid)
{
    char path[64], stat[512] = "";
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    f = fopen(path, "r"); /* procfs: no size, read what comes */
    if (f == NULL)
        return false;
    if (fgets(stat, sizeof(stat), f) == NULL)
        stat[0] = '\0';
    fclose(f);
    return strrchr(stat, ')') && strrchr(stat, ')')[2] != 'Z';
}

static void test_stop_kills_the_group(void **state)
{
    char *cmd = NULL, pidfile[300];
    pid_t pid;
    int st;

    (void)state;
    snprintf(pidfile, sizeof(pidfile), "%s/child.pid", dir);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        assert_true(asprintf(&cmd,
                             "trap '' TERM; sleep 300 & echo $! > '%s'; echo started; wait",
                             pidfile) > 0);
        char *argv[] = {(char *)agent(), "run", "--kind", "service", "--check", "none",
                        "--stop-grace-ms", "300", "--log-dir", dir, "--", "sh", "-c", cmd, NULL};
        execv(agent(), argv);
        _exit(127);
    }
    char *pidtext = NULL;
    for (int i = 0; i < 100 && pidtext == NULL; i++) {
        usleep(20000);
        pidtext = test_read_file(pidfile, NULL);
    }
    assert_non_null(pidtext);
    pid_t grandchild = (pid_t)atoi(pidtext);
    free(pidtext);
    assert_true(running(grandchild));
    usleep(100000);
    kill(pid, SIGTERM);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0); /* a service stopped cleanly */
    usleep(50000);
    assert_false(running(grandchild)); /* the whole group went */
    assert_in("main.log", "did not stop within 300 ms: SIGKILL");
    free(cmd);
}

static void test_log_rotation(void **state)
{
    (void)state;
    /* 2000 numbered lines of 32 bytes (64000 bytes) into 8 KiB files, 3 kept */
    assert_int_equal(run("--name big --check none --log-max-bytes 8192 --log-keep 3 -- sh -c "
                         "'i=10000; while [ $i -lt 12000 ]; do echo \"line $i .................\"; "
                         "i=$((i+1)); done'"),
                     0);
    char *f4 = file("big.log.4");
    assert_null(f4);
    /* oldest to newest: .3 .2 .1 and the current file hold consecutive lines */
    const char *names[] = {"big.log.3", "big.log.2", "big.log.1", "big.log"};
    int next = -1, lines = 0;
    for (int k = 0; k < 4; k++) {
        char *t = file(names[k]);
        assert_non_null(t);
        assert_true(strlen(t) <= 8192);
        for (char *p = t; (p = strstr(p, "line ")) != NULL; p += 5) {
            int n = atoi(p + 5);
            if (next >= 0)
                assert_int_equal(n, next);
            next = n + 1;
            lines++;
        }
        free(t);
    }
    assert_int_equal(next, 12000);   /* the newest line is there */
    assert_true(lines >= 3 * 8192 / 32 - 3); /* three full files' worth kept */
}

static void test_readiness(void **state)
{
    char args[512], status[300];
    pid_t pid;
    int st;

    (void)state;
    int port = 20000 + (int)(getpid() % 12000); /* below the ephemeral ports (32768-) */
    snprintf(args, sizeof(args), "--ready-http=%d:/", port);
    snprintf(status, sizeof(status), "%s/st.json", dir);
    pid = fork();
    if (pid == 0) {
        char sport[16];
        snprintf(sport, sizeof(sport), "%d", port);
        char *argv[] = {(char *)agent(), "run", "--kind", "service", "--check", "none",
                        args, "--status-file", status, "--log-dir", dir, "--workdir", dir,
                        "--", "sh", "-c", "sleep 0.3; exec python3 -m http.server \"$0\" "
                        "--bind 127.0.0.1", sport, NULL};
        execv(agent(), argv);
        _exit(127);
    }
    char *t = NULL;
    for (int i = 0; i < 150 && (t == NULL || strstr(t, "\"ready\"") == NULL); i++) {
        free(t);
        usleep(50000);
        t = file("st.json");
    }
    assert_non_null(t);
    assert_non_null(strstr(t, "\"state\":\"ready\""));
    free(t);
    kill(pid, SIGTERM);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void test_usage_errors(void **state)
{
    (void)state;
    assert_int_equal(run("--kind daemon -- true"), 2);
    assert_in("agent.out", "--kind: 'daemon' is not job or service");
    assert_int_equal(run("--gpus 0,x -- true"), 2);
    assert_in("agent.out", "--gpus");
    assert_int_equal(run("--restart-max 0 -- true"), 2);
    assert_in("agent.out", "--restart-max");
    assert_int_equal(run("--nproc-per-node 3 --gpus 0,1 -- true"), 2);
    assert_in("agent.out", "does not divide");
    assert_int_equal(run("--whatever -- true"), 2);
    assert_in("agent.out", "unknown option '--whatever'");
    assert_int_equal(run("--name ../x -- true"), 2);
    assert_int_equal(run("--check none"), 2);
    assert_in("agent.out", "no program");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pinning_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_job_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_service_restarts_and_gives_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_kills_the_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readiness, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
