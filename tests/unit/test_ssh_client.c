/*
 * The SSH client on the loop (orchestrator/engine/ssh_client.c) against
 * real OpenSSH servers (deploy/testbed/sshd.sh): exec with stdin, stdout,
 * stderr, exit status and signals; one session reused by parallel requests;
 * SFTP upload verified by sha256sum; host keys unknown, changed and trusted
 * on first use; auth by key file and by ssh-agent; refused connections with retries; cancel, timeouts, a
 * server killed mid-command; hostile values quoted for the remote shell.
 */
#include "testutil.h"
#include "testbed_fixture.h"

#include <uv.h>

#include "../../orchestrator/engine/ssh_client.h"

static struct tb_sshd tb;
static bool tb_ok;
static uv_loop_t loop;
static struct orc_sshc *cl;
static struct orc_ssh_stats stats;
static char addr[160];
static unsigned port;

struct call {
    orc_ssh_req_t req;
    bool done;
    int status;
};

static void on_done(orc_ssh_req_t *req, int status)
{
    struct call *c = req->data;
    c->done = true;
    c->status = status;
}

static void run_until(bool *flag, int ms)
{
    uint64_t end = uv_now(&loop) + (uint64_t)ms;

    while (!*flag && uv_now(&loop) < end) {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(1000);
        uv_update_time(&loop);
    }
}

static struct orc_ssh_target target(void)
{
    struct orc_ssh_target t = {.address = addr,
                               .port = (uint16_t)port,
                               .user = tb.user,
                               .identity = tb.key,
                               .known_hosts = tb.known_hosts,
                               .connect_timeout_ms = 5000,
                               .keepalive_s = 1};
    return t;
}

static void exec_on(const struct orc_ssh_target *t, struct call *c, const char *cmd,
                    const char *input, uint32_t timeout_ms)
{
    struct orc_ssh_exec x = {.command = cmd,
                             .input = input,
                             .input_len = input ? strlen(input) : 0,
                             .timeout_ms = timeout_ms};

    memset(c, 0, sizeof(*c));
    c->req.data = c;
    c->req.cb = on_done;
    assert_int_equal(0, orc_sshc_exec(cl, &tb, &stats, t, &c->req, &x));
    assert_false(c->done); /* never inside the call */
}

static void exec_wait(struct call *c, const char *cmd, const char *input)
{
    struct orc_ssh_target t = target();

    exec_on(&t, c, cmd, input, 20000);
    run_until(&c->done, 25000);
    assert_true(c->done);
}

/* A `sleep 30` on the testbed's host, running (not done after 1.5 s). */
static void sleep_running(struct call *c)
{
    struct orc_ssh_target t = target();

    exec_on(&t, c, "sleep 30", NULL, 0);
    run_until(&c->done, 1500);
    assert_false(c->done);
}

static int setup(void **state)
{
    (void)state;
    tb_ok = tb_sshd_start(&tb, 1, false);
    if (tb_ok)
        tb_sshd_host(&tb, 0, addr, sizeof(addr), &port);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tb_sshd_stop(&tb);
    return 0;
}

static int each_setup(void **state)
{
    (void)state;
    if (!tb_ok)
        return 0;
    memset(&stats, 0, sizeof(stats));
    assert_int_equal(0, uv_loop_init(&loop));
    assert_int_equal(0, orc_sshc_new(&loop, &cl));
    return 0;
}

static void closed(void *ud)
{
    *(bool *)ud = true;
}

static int each_teardown(void **state)
{
    bool done = false;

    (void)state;
    if (!tb_ok)
        return 0;
    orc_sshc_close(cl, closed, &done);
    run_until(&done, 5000);
    assert_true(done);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(0, uv_loop_close(&loop));
    return 0;
}

#define NEED_TESTBED()                                                                             \
    do {                                                                                           \
        if (!tb_ok) {                                                                              \
            print_message("sshd testbed did not start (see %s)\n", tb.log);                        \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

static void test_exec_outputs_and_status(void **state)
{
    struct call c;

    (void)state;
    NEED_TESTBED();
    exec_wait(&c, "echo hello; echo oops >&2; exit 3", NULL);
    assert_int_equal(c.status, 0);
    assert_int_equal(c.req.exit_status, 3);
    assert_string_equal(c.req.out, "hello\n");
    assert_string_equal(c.req.err, "oops\n");
    assert_true(c.req.connected);
    orc_sshc_release(&c.req);

    exec_wait(&c, "tr a-z A-Z", "piped through stdin\n");
    assert_int_equal(c.status, 0);
    assert_int_equal(c.req.exit_status, 0);
    assert_string_equal(c.req.out, "PIPED THROUGH STDIN\n");
    orc_sshc_release(&c.req);

    exec_wait(&c, "kill -TERM $$", NULL);
    assert_int_equal(c.status, 0);
    assert_int_equal(c.req.exit_status, 128 + 15);
    orc_sshc_release(&c.req);
    assert_int_equal(stats.connects, 1); /* one session for the three */
}

static void test_output_is_bounded(void **state)
{
    struct orc_ssh_target t;
    struct orc_ssh_exec x = {.command = "head -c 300000 /dev/zero", .max_out = 1000};
    struct call c = {0};

    (void)state;
    NEED_TESTBED();
    t = target();
    c.req.data = &c;
    c.req.cb = on_done;
    assert_int_equal(0, orc_sshc_exec(cl, &tb, &stats, &t, &c.req, &x));
    run_until(&c.done, 20000);
    assert_int_equal(c.status, 0);
    assert_int_equal(c.req.out_len, 1000);
    assert_true(c.req.truncated);
    assert_int_equal(c.req.exit_status, 0);
    orc_sshc_release(&c.req);
}

static void test_parallel_requests_share_one_session(void **state)
{
    enum { N = 40 };
    static struct call calls[N];
    struct orc_ssh_target t;
    char cmd[64];
    bool all = false;

    (void)state;
    NEED_TESTBED();
    t = target();
    for (int i = 0; i < N; i++) {
        snprintf(cmd, sizeof(cmd), "echo %d", i);
        exec_on(&t, &calls[i], cmd, NULL, 20000);
    }
    for (int round = 0; round < 30000 && !all; round++) {
        all = true;
        for (int i = 0; i < N; i++)
            all = all && calls[i].done;
        if (!all)
            run_until(&calls[0].done, 1), uv_run(&loop, UV_RUN_ONCE);
    }
    assert_true(all);
    for (int i = 0; i < N; i++) {
        char want[16];
        snprintf(want, sizeof(want), "%d\n", i);
        assert_int_equal(calls[i].status, 0);
        assert_string_equal(calls[i].req.out, want);
        orc_sshc_release(&calls[i].req);
    }
    assert_int_equal(stats.connects, 1);
    assert_int_equal(stats.requests, N);
}

static void test_put_uploads_exact_bytes(void **state)
{
    char local[] = "/tmp/orc-ssh-put-XXXXXX", remote[400], cmd[1024], want[80];
    struct orc_ssh_target t;
    struct orc_ssh_put p = {.mode = 0640};
    struct call c = {0};
    int fd;
    FILE *f;

    (void)state;
    NEED_TESTBED();
    fd = mkstemp(local);
    assert_true(fd >= 0);
    close(fd);
    snprintf(cmd, sizeof(cmd), "head -c 3000000 /dev/urandom > %s", local);
    assert_int_equal(0, system(cmd));
    snprintf(cmd, sizeof(cmd), "sha256sum < %s | cut -c1-64", local);
    f = popen(cmd, "r");
    assert_non_null(f);
    assert_non_null(fgets(want, sizeof(want), f));
    pclose(f);
    snprintf(remote, sizeof(remote), "%s/uploaded.bin", tb.dir);
    t = target();
    p.local_path = local;
    p.remote_path = remote;
    c.req.data = &c;
    c.req.cb = on_done;
    assert_int_equal(0, orc_sshc_put(cl, &tb, &stats, &t, &c.req, &p));
    run_until(&c.done, 30000);
    assert_int_equal(c.status, 0);
    assert_int_equal(c.req.bytes, 3000000);
    snprintf(cmd, sizeof(cmd), "sha256sum < %s | cut -c1-64; stat -c %%a %s", remote, remote);
    exec_wait(&c, cmd, NULL);
    assert_int_equal(c.status, 0);
    assert_non_null(strstr(c.req.out, want));
    assert_non_null(strstr(c.req.out, "640"));
    orc_sshc_release(&c.req);
    unlink(local);
    unlink(remote);

    /* a local file that cannot be read: refused at once, no callback */
    p.local_path = "/nonexistent/file";
    memset(&c, 0, sizeof(c));
    c.req.cb = on_done;
    assert_int_equal(ORC_EIO, orc_sshc_put(cl, &tb, &stats, &t, &c.req, &p));
    assert_non_null(strstr(c.req.error, "/nonexistent/file"));
}

static void test_host_keys(void **state)
{
    char empty[300], wrong[300];
    struct orc_ssh_target t;
    struct call c;
    char *text;

    (void)state;
    NEED_TESTBED();
    /* unknown: refused (strict) */
    snprintf(empty, sizeof(empty), "%s/empty_known_hosts", tb.dir);
    fclose(fopen(empty, "w"));
    t = target();
    t.known_hosts = empty;
    exec_on(&t, &c, "true", NULL, 10000);
    run_until(&c.done, 10000);
    assert_int_equal(c.status, ORC_EDENIED);
    assert_non_null(strstr(c.req.error, "unknown host key SHA256:"));
    assert_int_equal(stats.connects, 0);

    /* trust on first use: added to the file, then known */
    t.hostkey = ORC_SSH_HOSTKEY_TOFU;
    exec_on(&t, &c, "echo tofu", NULL, 10000);
    run_until(&c.done, 10000);
    assert_int_equal(c.status, 0);
    assert_string_equal(c.req.out, "tofu\n");
    orc_sshc_release(&c.req);
    text = test_read_file(empty, NULL);
    assert_non_null(text);
    assert_non_null(strstr(text, "ssh-ed25519"));
    free(text);

    /* changed: refused, even with tofu */
    snprintf(wrong, sizeof(wrong), "%s/wrong_known_hosts", tb.dir);
    t.known_hosts = wrong;
    exec_on(&t, &c, "true", NULL, 10000);
    run_until(&c.done, 10000);
    assert_int_equal(c.status, ORC_EDENIED);
    assert_non_null(strstr(c.req.error, "host key changed"));
}

static void test_refused_connection_is_retried_then_fails(void **state)
{
    struct orc_ssh_target t;
    struct call c;

    (void)state;
    NEED_TESTBED();
    t = target();
    t.port = (uint16_t)test_free_port();
    t.retries = 2;
    exec_on(&t, &c, "true", NULL, 0);
    run_until(&c.done, 10000);
    assert_true(c.done);
    assert_int_equal(c.status, ORC_ESSH);
    assert_non_null(strstr(c.req.error, "connect"));
    assert_int_equal(stats.attempts, 3);
    assert_int_equal(stats.connects, 0);
}

static void test_cancel_and_timeout(void **state)
{
    struct orc_ssh_target t;
    struct call c, d;
    uint64_t t0;

    (void)state;
    NEED_TESTBED();
    t = target();
    sleep_running(&c);
    assert_int_equal(0, orc_sshc_cancel(cl, &c.req));
    assert_false(c.done);
    run_until(&c.done, 5000);
    assert_int_equal(c.status, ORC_ECANCELED);
    assert_int_equal(ORC_ENOTFOUND, orc_sshc_cancel(cl, &c.req));

    t0 = uv_now(&loop);
    exec_on(&t, &d, "sleep 30", NULL, 500);
    run_until(&d.done, 10000);
    assert_int_equal(d.status, ORC_ESSH);
    assert_non_null(strstr(d.req.error, "no result within 500 ms"));
    /* ended by the 500 ms timeout, long before the command's 30 s (a wide bound: a
     * loaded machine once took over 3 s) */
    assert_true(uv_now(&loop) - t0 < 10000);

    /* the session is still good */
    exec_wait(&c, "echo still", NULL);
    assert_int_equal(c.status, 0);
    assert_string_equal(c.req.out, "still\n");
    orc_sshc_release(&c.req);
    assert_int_equal(stats.connects, 1);
}

static void test_server_killed_mid_command(void **state)
{
    struct call c;

    (void)state;
    NEED_TESTBED();
    sleep_running(&c);
    assert_int_equal(0, tb_sshd_ctl(&tb, "kill", 0, NULL));
    run_until(&c.done, 10000);
    assert_true(c.done);
    assert_int_equal(c.status, ORC_ESSH);
    assert_int_equal(0, tb_sshd_ctl(&tb, "restart", 0, NULL));
    /* a new request reconnects */
    exec_wait(&c, "echo back", NULL);
    assert_int_equal(c.status, 0);
    assert_string_equal(c.req.out, "back\n");
    orc_sshc_release(&c.req);
    assert_int_equal(stats.connects, 2);
}

static void test_hostile_values_stay_data(void **state)
{
    static const char *const hostile[] = {"it's",
                                          "\"double\"",
                                          "$(touch MARK)",
                                          "`touch MARK`",
                                          "a; touch MARK",
                                          "line\ntouch MARK",
                                          "$HOME ${PATH} \\",
                                          "'; touch MARK; '",
                                          "--option",
                                          "*"};
    char cmd[1024], mark[300];
    size_t len;
    struct call c;

    (void)state;
    NEED_TESTBED();
    snprintf(mark, sizeof(mark), "%s/MARK", tb.dir);
    for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        len = (size_t)snprintf(cmd, sizeof(cmd), "cd '%s' && printf %%s", tb.dir);
        cmd[len++] = ' ';
        cmd[len] = '\0';
        assert_int_equal(0, orc_ssh_quote(cmd, sizeof(cmd), &len, hostile[i]));
        exec_wait(&c, cmd, NULL);
        assert_int_equal(c.status, 0);
        assert_int_equal(c.req.exit_status, 0);
        assert_string_equal(c.req.out ? c.req.out : "", hostile[i]);
        orc_sshc_release(&c.req);
        assert_int_not_equal(0, access(mark, F_OK));
    }
    /* a value that does not fit is refused, not cut */
    len = 0;
    cmd[0] = '\0';
    assert_int_equal(ORC_ELIMIT, orc_ssh_quote(cmd, 4, &len, "toolong"));
    assert_int_equal(len, 0);
}

/* Runs `sh -c CMD` with SSH_AUTH_SOCK=SOCK; its exit status. */
static int with_agent_sock(const char *sock, const char *cmd)
{
    char line[1400];

    snprintf(line, sizeof(line), "SSH_AUTH_SOCK='%s' sh -c '%s' >/dev/null 2>&1", sock, cmd);
    return system(line);
}

/* Auth through ssh-agent (identity "agent"): an agent that cannot be
 * reached and one that holds no accepted key are refused with what is wrong;
 * once it holds the user's key the same target runs commands. */
static void test_agent_auth(void **state)
{
    char sock[300], pidfile[300], cmd[1000];
    struct orc_ssh_target t;
    struct call c;
    const char *old = getenv("SSH_AUTH_SOCK");
    char *saved = old ? strdup(old) : NULL;

    (void)state;
    NEED_TESTBED();
    snprintf(sock, sizeof(sock), "%s/agent.sock", tb.dir);
    snprintf(pidfile, sizeof(pidfile), "%s/agent.pid", tb.dir);
    t = target();
    t.identity = "agent";

    setenv("SSH_AUTH_SOCK", sock, 1); /* nothing listens there yet */
    exec_on(&t, &c, "true", NULL, 10000);
    run_until(&c.done, 10000);
    assert_int_equal(c.status, ORC_EDENIED);
    assert_non_null(strstr(c.req.error, "ssh-agent: cannot reach it"));

    snprintf(cmd, sizeof(cmd), "rm -f %s; eval $(ssh-agent -s -a %s) && echo $SSH_AGENT_PID >%s",
             sock, sock, pidfile);
    assert_int_equal(0, with_agent_sock(sock, cmd));
    exec_on(&t, &c, "true", NULL, 10000);
    run_until(&c.done, 10000);
    assert_int_equal(c.status, ORC_EDENIED);
    assert_non_null(strstr(c.req.error, "no ssh-agent key accepted"));

    snprintf(cmd, sizeof(cmd), "ssh-add %s", tb.key);
    assert_int_equal(0, with_agent_sock(sock, cmd));
    exec_on(&t, &c, "echo by-agent", NULL, 10000);
    run_until(&c.done, 10000);
    assert_int_equal(c.status, 0);
    assert_string_equal(c.req.out, "by-agent\n");
    orc_sshc_release(&c.req);

    snprintf(cmd, sizeof(cmd), "kill $(cat %s)", pidfile);
    assert_int_equal(0, with_agent_sock(sock, cmd));
    if (saved)
        setenv("SSH_AUTH_SOCK", saved, 1);
    else
        unsetenv("SSH_AUTH_SOCK");
    free(saved);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_exec_outputs_and_status, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(test_output_is_bounded, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(test_parallel_requests_share_one_session, each_setup,
                                        each_teardown),
        cmocka_unit_test_setup_teardown(test_put_uploads_exact_bytes, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(test_host_keys, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(test_agent_auth, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(test_refused_connection_is_retried_then_fails, each_setup,
                                        each_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_and_timeout, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(test_server_killed_mid_command, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(test_hostile_values_stay_data, each_setup, each_teardown),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
