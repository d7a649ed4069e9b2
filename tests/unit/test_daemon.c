/*
 * orchestratord as a whole. First unit tests of the configuration (defaults,
 * parsers, file, environment and command line, precedence, errors), which
 * need nothing else; then integration tests that start the real binary
 * ($ORCHESTRATORD) on 127.0.0.1:0 in a temporary directory, read the bound
 * port from its log and drive it over real HTTP (libcurl) and raw sockets:
 * every built-in endpoint, trailing slashes, 404/405/413/431, malformed
 * requests, many keep-alive connections, the connection limit, slow
 * clients, SIGTERM with a request in flight, the shutdown deadline, bad
 * configurations and the exit statuses. The integration tests skip when
 * $ORCHESTRATORD is unset. ORCHESTRATORD_VALGRIND=1 runs every daemon under
 * valgrind (leaks and errors make its exit status 99) with longer timeouts.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "testutil.h"

#include "config.h"

/* ==== configuration (unit) ================================================================ */

static char cfg_err[1024];

/* Loads argv (NULL-terminated, without argv[0]) and envp over defaults. */
static int load(orc_config_t *cfg, const char *const *args, const char *const *envp)
{
    char *argv[32] = {"orchestratord"};
    int argc = 1;

    for (; args != NULL && args[argc - 1] != NULL; argc++)
        argv[argc] = (char *)args[argc - 1];
    assert_int_equal(orc_config_init(cfg), 0);
    return orc_config_load(cfg, argc, argv, (char *const *)envp, cfg_err, sizeof(cfg_err));
}

static char *write_temp(const char *text)
{
    char *path = strdup("/tmp/orc-config-XXXXXX.yaml");
    int fd = mkstemps(path, 5);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void config_defaults(void **state)
{
    orc_config_t cfg;

    (void)state;
    assert_int_equal(load(&cfg, NULL, NULL), 0);
    assert_int_equal(cfg.action, ORC_CONFIG_RUN);
    assert_int_equal(cfg.listen_count, 1);
    assert_string_equal(cfg.listen[0].text, "127.0.0.1:8080");
    assert_true(cfg.listen[0].loopback);
    assert_string_equal(cfg.data_dir, "./var");
    assert_null(cfg.sites_file);
    assert_null(cfg.public_url);
    assert_null(cfg.store);
    assert_null(cfg.config_file);
    assert_int_equal(cfg.log_level, ORC_LOG_INFO);
    assert_int_equal(cfg.limits.max_body_bytes, 4 << 20);
    assert_int_equal(cfg.limits.max_header_bytes, 16 << 10);
    assert_int_equal(cfg.limits.json_max_depth, 64);
    assert_int_equal(cfg.limits.request_timeout_ms, 30000);
    assert_int_equal(cfg.limits.max_connections, 1024);
    assert_int_equal(cfg.limits.max_streams, 256);
    assert_int_equal(cfg.limits.shutdown_timeout_ms, 10000);
    assert_int_equal(json_object_size(cfg.configuration), 0);
    assert_int_equal(orc_config_source(&cfg, "listen"), ORC_CFG_DEFAULT);
    orc_config_fini(&cfg);
    orc_config_fini(&cfg); /* idempotent */
}

static void config_value_parsers(void **state)
{
    char why[256];
    size_t size;
    uint64_t ms;
    orc_log_level_t level;
    orc_listen_addr_t a;

    (void)state;
    assert_int_equal(orc_config_parse_size("4194304", &size, why, sizeof(why)), 0);
    assert_int_equal(size, 4194304);
    assert_int_equal(orc_config_parse_size("4MiB", &size, why, sizeof(why)), 0);
    assert_int_equal(size, 4 << 20);
    assert_int_equal(orc_config_parse_size("16 kib", &size, why, sizeof(why)), 0);
    assert_int_equal(size, 16 << 10);
    assert_int_equal(orc_config_parse_size("1G", &size, why, sizeof(why)), 0);
    assert_int_equal(size, 1 << 30);
    assert_int_equal(orc_config_parse_size("", &size, why, sizeof(why)), ORC_EINVAL);
    assert_int_equal(orc_config_parse_size("4MB", &size, why, sizeof(why)), ORC_EINVAL);
    assert_int_equal(orc_config_parse_size("-1", &size, why, sizeof(why)), ORC_EINVAL);
    assert_int_equal(orc_config_parse_size("1.5MiB", &size, why, sizeof(why)), ORC_EINVAL);
    assert_int_equal(orc_config_parse_size("99999999999999999999", &size, why, sizeof(why)),
                     ORC_EINVAL);
    assert_int_equal(orc_config_parse_size("99999999999GiB", &size, why, sizeof(why)), ORC_EINVAL);

    assert_int_equal(orc_config_parse_duration("30", &ms, why, sizeof(why)), 0);
    assert_int_equal(ms, 30000);
    assert_int_equal(orc_config_parse_duration("500ms", &ms, why, sizeof(why)), 0);
    assert_int_equal(ms, 500);
    assert_int_equal(orc_config_parse_duration("2m", &ms, why, sizeof(why)), 0);
    assert_int_equal(ms, 120000);
    assert_int_equal(orc_config_parse_duration("1h", &ms, why, sizeof(why)), 0);
    assert_int_equal(ms, 3600000);
    assert_int_equal(orc_config_parse_duration("forever", &ms, why, sizeof(why)), ORC_EINVAL);
    assert_non_null(strstr(why, "'forever' is not a duration"));
    assert_int_equal(orc_config_parse_duration("5S", &ms, why, sizeof(why)), ORC_EINVAL);

    assert_int_equal(orc_config_parse_log_level("WARNING", &level, why, sizeof(why)), 0);
    assert_int_equal(level, ORC_LOG_WARN);
    assert_int_equal(orc_config_parse_log_level("loud", &level, why, sizeof(why)), ORC_EINVAL);

    assert_int_equal(orc_config_parse_listen("127.0.0.1:0", &a, why, sizeof(why)), 0);
    assert_int_equal(a.port, 0);
    assert_int_equal(a.family, AF_INET);
    assert_true(a.loopback);
    assert_int_equal(orc_config_parse_listen("[::1]:8080", &a, why, sizeof(why)), 0);
    assert_string_equal(a.text, "[::1]:8080");
    assert_int_equal(a.family, AF_INET6);
    assert_true(a.loopback);
    assert_int_equal(orc_config_parse_listen("localhost:9", &a, why, sizeof(why)), 0);
    assert_string_equal(a.text, "127.0.0.1:9");
    assert_int_equal(orc_config_parse_listen("127.1.2.3:80", &a, why, sizeof(why)), 0);
    assert_true(a.loopback);
    assert_int_equal(orc_config_parse_listen("[::ffff:127.0.0.1]:80", &a, why, sizeof(why)), 0);
    assert_true(a.loopback);
    assert_int_equal(orc_config_parse_listen("0.0.0.0:80", &a, why, sizeof(why)), 0);
    assert_false(a.loopback);
    assert_int_equal(orc_config_parse_listen("[::]:80", &a, why, sizeof(why)), 0);
    assert_false(a.loopback);
    assert_int_equal(orc_config_parse_listen("8080", &a, why, sizeof(why)), ORC_EINVAL);
    assert_int_equal(orc_config_parse_listen(":8080", &a, why, sizeof(why)), ORC_EINVAL);
    assert_int_equal(orc_config_parse_listen("127.0.0.1:65536", &a, why, sizeof(why)), ORC_EINVAL);
    assert_int_equal(orc_config_parse_listen("127.0.0.1:", &a, why, sizeof(why)), ORC_EINVAL);
    assert_int_equal(orc_config_parse_listen("::1:80", &a, why, sizeof(why)), ORC_EINVAL);
    assert_int_equal(orc_config_parse_listen("example.org:80", &a, why, sizeof(why)), ORC_EINVAL);
    assert_int_equal(orc_config_parse_listen("[127.0.0.1]:80", &a, why, sizeof(why)), ORC_EINVAL);
}

static void config_precedence(void **state)
{
    char *file = write_temp("listen: 127.0.0.1:1111\n"
                            "data_dir: /tmp/from-file\n"
                            "log_level: debug\n"
                            "public_url: https://orchestrator.example.org/\n"
                            "limits:\n"
                            "  max_body_bytes: 2KiB\n"
                            "  request_timeout: 5s\n"
                            "configuration:\n"
                            "  cprUrl: http://cpr.example.org\n"
                            "  imUrl: \"\"\n");
    const char *args[] = {"--config",   file,       "--listen=127.0.0.1:3333",
                          "--data-dir", "/tmp/cli", NULL};
    const char *env[] = {"ORCHESTRATOR_LISTEN=127.0.0.1:2222",
                         "ORCHESTRATOR_DATA_DIR=/tmp/env",
                         "ORCHESTRATOR_MAX_BODY_BYTES=3KiB",
                         "ORCHESTRATOR_LOG_LEVEL=",
                         "PATH=/bin",
                         NULL};
    orc_config_t cfg;

    (void)state;
    assert_int_equal(load(&cfg, args, env), 0);
    assert_string_equal(cfg.config_file, file);
    assert_string_equal(cfg.listen[0].text, "127.0.0.1:3333");               /* cli > env > file */
    assert_string_equal(cfg.data_dir, "/tmp/cli");                           /* cli > env > file */
    assert_int_equal(cfg.limits.max_body_bytes, 3 << 10);                    /* env > file */
    assert_int_equal(cfg.log_level, ORC_LOG_DEBUG);                          /* empty env: unset */
    assert_int_equal(cfg.limits.request_timeout_ms, 5000);                   /* file > default */
    assert_int_equal(cfg.limits.max_connections, 1024);                      /* default */
    assert_string_equal(cfg.public_url, "https://orchestrator.example.org"); /* slash dropped */
    assert_string_equal(json_string_value(json_object_get(cfg.configuration, "cprUrl")),
                        "http://cpr.example.org");
    assert_string_equal(json_string_value(json_object_get(cfg.configuration, "imUrl")), "");
    assert_int_equal(orc_config_source(&cfg, "listen"), ORC_CFG_CLI);
    assert_int_equal(orc_config_source(&cfg, "limits.max_body_bytes"), ORC_CFG_ENV);
    assert_int_equal(orc_config_source(&cfg, "limits.request_timeout"), ORC_CFG_FILE);
    assert_int_equal(orc_config_source(&cfg, "limits.max_connections"), ORC_CFG_DEFAULT);
    orc_config_fini(&cfg);

    /* the file can also come from the environment */
    char envfile[PATH_MAX + 32];
    snprintf(envfile, sizeof(envfile), "ORCHESTRATOR_CONFIG=%s", file);
    const char *env2[] = {envfile, NULL};
    assert_int_equal(load(&cfg, NULL, env2), 0);
    assert_string_equal(cfg.listen[0].text, "127.0.0.1:1111");
    orc_config_fini(&cfg);
    unlink(file);
    free(file);
}

/* Expects the load to fail with rc and err to contain want. */
static void expect_error(const char *const *args, const char *const *env, int rc, const char *want)
{
    orc_config_t cfg;
    int got = load(&cfg, args, env);

    if (got != rc || strstr(cfg_err, want) == NULL)
        fail_msg("expected %d with \"%s\", got %d: \"%s\"", rc, want, got, cfg_err);
    orc_config_fini(&cfg);
}

static void expect_file_error(const char *text, int rc, const char *want)
{
    char *file = write_temp(text);
    const char *args[] = {"--config", file, NULL};
    char full[PATH_MAX + 256];

    snprintf(full, sizeof(full), want[0] == ':' ? "%s%s" : "%.0s%s", file, want);
    expect_error(args, NULL, rc, full);
    unlink(file);
    free(file);
}

static void config_file_errors_name_the_place(void **state)
{
    (void)state;
    expect_file_error("listen: 127.0.0.1:0\nbogus: 1\n", ORC_EINVAL,
                      ":2:1: unknown key 'bogus' (known keys: listen, data_dir, sites");
    expect_file_error("limits:\n  max_body: 1\n", ORC_EINVAL,
                      ":2:3: unknown key 'limits.max_body' (known keys in limits: max_body_bytes");
    expect_file_error("limits:\n  request_timeout: forever\n", ORC_EINVAL,
                      ":2:3: limits.request_timeout: 'forever' is not a duration");
    expect_file_error("limits:\n  max_connections: 0\n", ORC_EINVAL,
                      ":2:3: limits.max_connections: '0' is out of range (1 to 1000000)");
    expect_file_error("limits:\n  max_streams: 0\n", ORC_EINVAL,
                      ":2:3: limits.max_streams: '0' is out of range (1 to 1000000)");
    expect_file_error("limits: 5\n", ORC_EINVAL, ":1:1: limits: a map is expected");
    expect_file_error("limits.max_body_bytes: 5\n", ORC_EINVAL,
                      ":1:1: unknown key 'limits.max_body_bytes'");
    expect_file_error("listen: [127.0.0.1:1, 127.0.0.1:1]\n", ORC_EINVAL, "is listed twice");
    expect_file_error("listen: {a: b}\n", ORC_EINVAL,
                      ":1:1: listen: expected a string or a list of strings, not a map");
    expect_file_error("log_level: true\n", ORC_EINVAL, "not a boolean");
    expect_file_error("configuration:\n  cprUrl: 5\n", ORC_EINVAL,
                      ":1:1: configuration: 'cprUrl' must be a string");
    expect_file_error("listen: [\n", ORC_EINVAL, ":2:1: error:");
    expect_file_error("a: 1\na: 2\n", ORC_EINVAL, ":2:1: error:");
    expect_file_error("- 1\n", ORC_EINVAL, "the configuration must be a map of keys");
    expect_file_error("listen: 0.0.0.0:8080\n", ORC_EINVAL,
                      "listen address 0.0.0.0:8080 (from configuration file) is not a loopback");
    expect_file_error("sites: /nonexistent/sites.yaml\n", ORC_EINVAL,
                      ":1:1: sites: cannot read sites file '/nonexistent/sites.yaml'");
    expect_file_error("public_url: ftp://x\n", ORC_EINVAL, "must start with http:// or https://");
    expect_file_error("log_format: xml\n", ORC_EINVAL,
                      ":1:1: log_format: 'xml' is not a log format (text, json)");
    expect_file_error("store: mysql://db/orch\n", ORC_EINVAL,
                      ":1:1: store: sqlite, sqlite:PATH or a postgresql:// URL is expected");
    expect_file_error("store: postgresql://orch:hunter2@db/orch\n", ORC_EINVAL,
                      "the URL carries a password: give it in PGPASSWORD or ~/.pgpass");
    expect_file_error("store: postgresql://db/orch?password=hunter2\n", ORC_EINVAL,
                      "the URL carries a password");
    expect_file_error("store_readers: 65\n", ORC_EINVAL,
                      ":1:1: store_readers: '65' is out of range (0 to 64)");
    expect_file_error("store_readers: some\n", ORC_EINVAL, ":1:1: store_readers: 'some'");
    expect_file_error("store_commit: later\n", ORC_EINVAL,
                      ":1:1: store_commit: 'later' is not a commit mode (overlap, wait)");
}

static void config_env_and_cli_errors(void **state)
{
    const char *bad_env[] = {"ORCHESTRATOR_LOG_LEVEL=loud", NULL};
    const char *bad_listen[] = {"--listen", "nonsense", NULL};
    const char *public_listen[] = {"--listen", "127.0.0.1:1,[::]:8080", NULL};
    const char *no_value[] = {"--data-dir", NULL};
    const char *unknown[] = {"--frobnicate", NULL};
    const char *positional[] = {"serve", NULL};
    const char *missing[] = {"--config", "/nonexistent/orchestrator.yaml", NULL};
    const char *env_public[] = {"ORCHESTRATOR_LISTEN=0.0.0.0:80", NULL};

    (void)state;
    expect_error(NULL, bad_env, ORC_EINVAL, "ORCHESTRATOR_LOG_LEVEL: 'loud' is not a log level");
    expect_error(bad_listen, NULL, ORC_EINVAL, "--listen: 'nonsense' is not ADDRESS:PORT");
    expect_error(public_listen, NULL, ORC_EINVAL,
                 "listen address [::]:8080 (from command line) is not a loopback address: "
                 "without authentication");
    expect_error(NULL, env_public, ORC_EINVAL, "(from environment) is not a loopback");
    expect_error(no_value, NULL, ORC_EUSAGE, "option '--data-dir' needs a value");
    expect_error(unknown, NULL, ORC_EUSAGE, "unknown option '--frobnicate'");
    expect_error(positional, NULL, ORC_EUSAGE, "unexpected argument 'serve'");
    expect_error(missing, NULL, ORC_EIO,
                 "cannot read configuration file '/nonexistent/orchestrator.yaml': No such file");
}

static void config_help_and_version(void **state)
{
    const char *help[] = {"--frobnicate", "--help", NULL};
    const char *version[] = {"-V", NULL};
    orc_config_t cfg;
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);

    (void)state;
    assert_int_equal(load(&cfg, help, NULL), 0);
    assert_int_equal(cfg.action, ORC_CONFIG_HELP);
    orc_config_fini(&cfg);
    assert_int_equal(load(&cfg, version, NULL), 0);
    assert_int_equal(cfg.action, ORC_CONFIG_VERSION);
    orc_config_fini(&cfg);
    orc_config_usage(out, "orchestratord");
    fclose(out);
    assert_non_null(strstr(text, "--listen ADDR:PORT"));
    assert_non_null(strstr(text, "ORCHESTRATOR_MAX_BODY_BYTES"));
    assert_non_null(strstr(text, "default 127.0.0.1:8080"));
    free(text);
}

static void config_listen_lists(void **state)
{
    const char *args[] = {"--listen", " 127.0.0.1:0 , [::1]:0,localhost:8081", NULL};
    char *file = write_temp("listen:\n  - 127.0.0.1:7000\n  - '[::1]:7000'\n");
    const char *fargs[] = {"-c", file, NULL};
    orc_config_t cfg;

    (void)state;
    assert_int_equal(load(&cfg, args, NULL), 0);
    assert_int_equal(cfg.listen_count, 3);
    assert_string_equal(cfg.listen[1].text, "[::1]:0");
    assert_string_equal(cfg.listen[2].text, "127.0.0.1:8081");
    orc_config_fini(&cfg);
    assert_int_equal(load(&cfg, fargs, NULL), 0);
    assert_int_equal(cfg.listen_count, 2);
    assert_string_equal(cfg.listen[1].text, "[::1]:7000");
    orc_config_fini(&cfg);
    unlink(file);
    free(file);
}

/* The example in deploy/ loads and says what the defaults are. */
static void config_example_file_is_the_defaults(void **state)
{
    const char *path = "deploy/orchestratord.example.yaml";
    const char *args[] = {"--config", path, NULL};
    orc_config_t cfg, def;

    (void)state;
    if (access(path, R_OK) != 0)
        skip(); /* not run from the source tree */
    assert_int_equal(load(&cfg, args, NULL), 0);
    assert_int_equal(orc_config_init(&def), 0);
    assert_string_equal(cfg.listen[0].text, def.listen[0].text);
    assert_int_equal(cfg.listen_count, def.listen_count);
    assert_string_equal(cfg.data_dir, def.data_dir);
    assert_null(cfg.sites_file);
    assert_null(cfg.public_url);
    assert_null(cfg.store);
    assert_int_equal(cfg.store_readers, def.store_readers);
    assert_int_equal(orc_config_source(&cfg, "store_readers"), ORC_CFG_FILE);
    assert_true(cfg.store_commit_wait);
    assert_int_equal(cfg.store_commit_wait, def.store_commit_wait);
    assert_int_equal(orc_config_source(&cfg, "store_commit"), ORC_CFG_FILE);
    assert_int_equal(cfg.log_level, def.log_level);
    assert_memory_equal(&cfg.limits, &def.limits, sizeof(cfg.limits));
    assert_true(json_equal(cfg.configuration, def.configuration));
    assert_int_equal(orc_config_source(&cfg, "limits.max_body_bytes"), ORC_CFG_FILE);
    orc_config_fini(&cfg);
    orc_config_fini(&def);
}

/* ==== the daemon (integration) ============================================================== */

#define MAX_DAEMONS 8

struct daemon {
    pid_t pid;
    int status; /* exit status once reaped; -1 before */
    char dir[64];
    char log[96];
    int port;
    int port6;
};

static struct daemon *live[MAX_DAEMONS];
static char daemon_path[PATH_MAX];

static bool under_valgrind(void)
{
    const char *v = getenv("ORCHESTRATORD_VALGRIND");
    return v != NULL && strcmp(v, "1") == 0;
}

/* Seconds scaled for valgrind. */
static double secs(double s)
{
    return under_valgrind() ? s * 15 : s;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static void need_daemon(void)
{
    const char *bin = getenv("ORCHESTRATORD");

    if (bin == NULL || bin[0] == '\0')
        skip();
    if (daemon_path[0] == '\0' && realpath(bin, daemon_path) == NULL)
        fail_msg("ORCHESTRATORD=%s: %s", bin, strerror(errno));
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (f == NULL)
        return strdup("");
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    n = (long)fread(buf, 1, (size_t)n, f);
    buf[n] = '\0';
    fclose(f);
    if (len != NULL)
        *len = (size_t)n;
    return buf;
}

static void child_exec(struct daemon *d, const char *const *args, const char *const *env)
{
    const char *argv[64];
    int n = 0, fd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    extern char **environ;

    if (fd < 0 || chdir(d->dir) != 0)
        _exit(127);
    dup2(fd, 1);
    dup2(fd, 2);
    for (char **e = environ; *e != NULL;) { /* no ORCHESTRATOR_* from the outside */
        if (strncmp(*e, "ORCHESTRATOR_", 13) == 0) {
            char name[128];
            snprintf(name, sizeof(name), "%.*s", (int)strcspn(*e, "="), *e);
            unsetenv(name);
        } else {
            e++;
        }
    }
    for (size_t i = 0; env != NULL && env[i] != NULL; i++)
        putenv((char *)env[i]);
    if (under_valgrind()) {
        argv[n++] = "valgrind";
        argv[n++] = "--quiet";
        argv[n++] = "--error-exitcode=99";
        argv[n++] = "--leak-check=full";
        argv[n++] = "--errors-for-leak-kinds=definite,indirect";
    }
    argv[n++] = daemon_path;
    for (size_t i = 0; args != NULL && args[i] != NULL && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    execvp(argv[0], (char *const *)argv);
    _exit(127);
}

/* Starts the daemon with args and extra environment ("K=V"), in a fresh
 * temporary directory (its working directory). Does not wait. */
static void daemon_spawn(struct daemon *d, const char *const *args, const char *const *env)
{
    memset(d, 0, sizeof(*d));
    d->status = -1;
    snprintf(d->dir, sizeof(d->dir), "/tmp/orc-daemon-XXXXXX");
    assert_non_null(mkdtemp(d->dir));
    snprintf(d->log, sizeof(d->log), "%s/daemon.log", d->dir);
    d->pid = fork();
    assert_true(d->pid >= 0);
    if (d->pid == 0)
        child_exec(d, args, env);
    for (size_t i = 0; i < MAX_DAEMONS; i++) {
        if (live[i] == NULL) {
            live[i] = d;
            break;
        }
    }
}

/* Waits up to timeout seconds for the daemon to exit; returns its exit
 * status (128 + signal if killed), or -1 if it is still running. */
static int daemon_wait(struct daemon *d, double timeout)
{
    double end = now_s() + timeout;
    int st;

    if (d->status >= 0)
        return d->status;
    do {
        pid_t r = waitpid(d->pid, &st, WNOHANG);
        if (r == d->pid) {
            d->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            return d->status;
        }
        sleep_s(0.01);
    } while (now_s() < end);
    return -1;
}

static int port_after(const char *log, const char *prefix)
{
    const char *p = strstr(log, prefix);
    return p ? atoi(p + strlen(prefix)) : 0;
}

/* Waits until the log says where the daemon listens. */
static void daemon_wait_ready(struct daemon *d)
{
    double end = now_s() + secs(10);

    while (now_s() < end) {
        char *log = slurp(d->log, NULL);
        d->port = port_after(log, "listening on http://127.0.0.1:");
        d->port6 = port_after(log, "listening on http://[::1]:");
        bool ready = strstr(log, "daemon: ready") != NULL;
        free(log);
        if (ready && (d->port > 0 || d->port6 > 0))
            return;
        if (daemon_wait(d, 0) >= 0) {
            log = slurp(d->log, NULL);
            fail_msg("the daemon exited with %d before listening:\n%s", d->status, log);
        }
        sleep_s(0.01);
    }
    fail_msg("the daemon did not report its port within %.0f s", secs(10));
}

static const char *default_args[] = {"--listen", "127.0.0.1:0", "--data-dir", "./data", NULL};

static void daemon_start(struct daemon *d, const char *const *args, const char *const *env)
{
    daemon_spawn(d, args ? args : default_args, env);
    daemon_wait_ready(d);
}

/* Sends SIGTERM and returns the exit status (fails the test on a hang). */
static int daemon_stop(struct daemon *d)
{
    int status;

    if (d->status < 0)
        kill(d->pid, SIGTERM);
    status = daemon_wait(d, secs(15));
    if (status < 0) {
        kill(d->pid, SIGKILL);
        daemon_wait(d, 5);
        fail_msg("the daemon did not stop within %.0f s of SIGTERM", secs(15));
    }
    return status;
}

static void daemon_forget(struct daemon *d)
{
    for (size_t i = 0; i < MAX_DAEMONS; i++)
        if (live[i] == d)
            live[i] = NULL;
    if (d->dir[0] != '\0')
        test_rm_tree(d->dir);
    d->dir[0] = '\0';
}

/* Teardown for every integration test: nothing outlives a test. */
static int kill_all(void **state)
{
    (void)state;
    for (size_t i = 0; i < MAX_DAEMONS; i++) {
        struct daemon *d = live[i];
        if (d == NULL)
            continue;
        if (d->status < 0) {
            kill(d->pid, SIGKILL);
            daemon_wait(d, 5);
        }
        daemon_forget(d);
    }
    return 0;
}

/* ---- HTTP with libcurl ------------------------------------------------------------------- */

struct resp {
    long status;
    char *body;
    size_t len;
    char ctype[128];
    char allow[128];
    char connection[32];
    char request_id[96];
    long content_length;
};

static size_t on_body(char *data, size_t size, size_t n, void *userp)
{
    struct resp *r = userp;

    r->body = realloc(r->body, r->len + size * n + 1);
    memcpy(r->body + r->len, data, size * n);
    r->len += size * n;
    r->body[r->len] = '\0';
    return size * n;
}

static void header_value(const char *line, size_t len, const char *name, char *out, size_t outlen)
{
    size_t n = strlen(name);

    if (len <= n || strncasecmp(line, name, n) != 0)
        return;
    line += n;
    len -= n;
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n'))
        len--;
    snprintf(out, outlen, "%.*s", (int)len, line);
}

static size_t on_header(char *data, size_t size, size_t n, void *userp)
{
    struct resp *r = userp;
    char cl[32] = "";

    header_value(data, size * n, "content-type: ", r->ctype, sizeof(r->ctype));
    header_value(data, size * n, "allow: ", r->allow, sizeof(r->allow));
    header_value(data, size * n, "connection: ", r->connection, sizeof(r->connection));
    header_value(data, size * n, "x-request-id: ", r->request_id, sizeof(r->request_id));
    header_value(data, size * n, "content-length: ", cl, sizeof(cl));
    if (cl[0])
        r->content_length = atol(cl);
    return size * n;
}

/* One request; headers is NULL or NULL-terminated "Name: value" lines. */
static long http(int port, const char *method, const char *path, const char *body, size_t blen,
                 const char *const *headers, struct resp *r)
{
    CURL *c = curl_easy_init();
    struct curl_slist *hl = NULL;
    char url[512];
    CURLcode rc;

    memset(r, 0, sizeof(*r));
    r->content_length = -1;
    r->body = calloc(1, 1);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_NOBODY, strcmp(method, "HEAD") == 0 ? 1L : 0L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(secs(10) * 1000));
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
    }
    hl = curl_slist_append(hl, "Expect:"); /* no 100-continue round trip */
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
        hl = curl_slist_append(hl, headers[i]);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    else
        r->status = -(long)rc;
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    return r->status;
}

static long get(int port, const char *path, struct resp *r)
{
    return http(port, "GET", path, NULL, 0, NULL, r);
}

static void resp_free(struct resp *r)
{
    free(r->body);
    r->body = NULL;
}

static json_t *resp_json(const struct resp *r)
{
    json_error_t e;
    json_t *v = json_loadb(r->body, r->len, 0, &e);

    if (v == NULL)
        fail_msg("not JSON (%s): %s", e.text, r->body);
    return v;
}

/* Checks the API.md error shape: {"code":status,"title":...,"message":...}. */
static void assert_error_json(const struct resp *r, long status, const char *title,
                              const char *msg_part)
{
    json_t *v = resp_json(r);

    assert_string_equal(r->ctype, "application/json");
    assert_int_equal(json_integer_value(json_object_get(v, "code")), status);
    assert_string_equal(json_string_value(json_object_get(v, "title")), title);
    if (strstr(json_string_value(json_object_get(v, "message")), msg_part) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", json_string_value(json_object_get(v, "message")),
                 msg_part);
    assert_int_equal(json_object_size(v), 3);
    json_decref(v);
}

/* ---- raw sockets ---------------------------------------------------------------------------- */

static int raw_connect(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void raw_send(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        assert_true(n > 0);
        data += n;
        len -= (size_t)n;
    }
}

static void raw_sends(int fd, const char *text)
{
    raw_send(fd, text, strlen(text));
}

/* Reads until the peer closes or timeout seconds pass; *closed says which.
 * A connection reset counts as closed. */
static char *raw_read_until_close(int fd, double timeout, bool *closed, size_t *len)
{
    double end = now_s() + timeout;
    size_t used = 0;
    char *buf = malloc(65536);

    *closed = false;
    while (now_s() < end && used < 65535) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 20) <= 0)
            continue;
        ssize_t n = recv(fd, buf + used, 65535 - used, 0);
        if (n <= 0) {
            *closed = true;
            break;
        }
        used += (size_t)n;
    }
    buf[used] = '\0';
    if (len != NULL)
        *len = used;
    return buf;
}

/* Reads until needle has arrived (or a close, or the timeout). */
static char *raw_read_until(int fd, const char *needle, double timeout)
{
    double end = now_s() + timeout;
    size_t used = 0;
    char *buf = malloc(65536);

    buf[0] = '\0';
    while (now_s() < end && used < 65535 && strstr(buf, needle) == NULL) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 20) <= 0)
            continue;
        ssize_t n = recv(fd, buf + used, 65535 - used, 0);
        if (n <= 0)
            break;
        used += (size_t)n;
        buf[used] = '\0';
    }
    return buf;
}

/* Reads one response with a Content-Length body (or up to a close). The
 * peer must not send more than one response at a time. */
static char *raw_read_response(int fd, double timeout)
{
    double end = now_s() + timeout;
    size_t used = 0;
    char *buf = malloc(65536);

    buf[0] = '\0';
    while (now_s() < end && used < 65535) {
        char *head_end = strstr(buf, "\r\n\r\n");
        if (head_end != NULL) {
            const char *cl = strstr(buf, "Content-Length: "); /* h2o's spelling */
            size_t want =
                (size_t)(head_end + 4 - buf) + (cl && cl < head_end ? (size_t)atol(cl + 16) : 0);
            if (used >= want)
                break;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 20) <= 0)
            continue;
        ssize_t n = recv(fd, buf + used, 65535 - used, 0);
        if (n <= 0)
            break;
        used += (size_t)n;
        buf[used] = '\0';
    }
    return buf;
}

/* ---- a shared daemon for the plain endpoint tests ------------------------------------------ */

static struct daemon shared;

/* Starts the shared daemon on first use. */
static int shared_port(void)
{
    need_daemon();
    if (shared.pid == 0 || shared.status >= 0)
        daemon_start(&shared, NULL, NULL);
    return shared.port;
}

static void endpoints_answer_with_types(void **state)
{
    int port = shared_port();
    struct resp r;
    json_t *v;

    (void)state;
    assert_int_equal(get(port, "/", &r), 200);
    assert_string_equal(r.ctype, "text/plain; charset=utf-8");
    assert_string_equal(r.body, "orchestratord");
    char first_id[96];
    snprintf(first_id, sizeof(first_id), "%s", r.request_id);
    resp_free(&r);
    assert_int_equal(get(port, "/", &r), 200);
    assert_int_equal(strlen(r.request_id), 36); /* UUIDv7s, each its own */
    assert_int_equal(r.request_id[14], '7');
    assert_non_null(strchr("89ab", r.request_id[19]));
    assert_string_not_equal(r.request_id, first_id);
    assert_true(strcmp(r.request_id, first_id) > 0); /* time-ordered */
    resp_free(&r);

    assert_int_equal(get(port, "/info", &r), 200);
    assert_string_equal(r.ctype, "application/json");
    v = resp_json(&r);
    assert_string_equal(json_string_value(json_object_get(json_object_get(v, "build"), "name")),
                        "orchestratord");
    assert_non_null(json_string_value(json_object_get(json_object_get(v, "build"), "version")));
    assert_int_equal(
        strlen(json_string_value(json_object_get(json_object_get(v, "build"), "time"))),
        strlen("2026-11-26T15:24+0000"));
    assert_true(json_is_object(json_object_get(v, "git")));
    json_decref(v);
    resp_free(&r);

    assert_int_equal(get(port, "/configuration", &r), 200);
    assert_string_equal(r.ctype, "application/json");
    assert_string_equal(r.body, "{}");
    resp_free(&r);

    assert_int_equal(get(port, "/healthz", &r), 200);
    assert_string_equal(r.ctype, "application/json");
    resp_free(&r);

    assert_int_equal(get(port, "/readyz", &r), 200);
    v = resp_json(&r);
    assert_string_equal(json_string_value(json_object_get(v, "status")), "ready");
    json_decref(v);
    resp_free(&r);
}

static void metrics_are_prometheus_text(void **state)
{
    int port = shared_port();
    struct resp r;

    (void)state;
    get(port, "/healthz", &r);
    resp_free(&r);
    get(port, "/no/such/thing", &r);
    resp_free(&r);
    assert_int_equal(get(port, "/metrics", &r), 200);
    assert_string_equal(r.ctype, "text/plain; version=0.0.4; charset=utf-8");
    assert_non_null(strstr(r.body, "# TYPE orchestrator_http_requests_total counter\n"));
    assert_non_null(strstr(r.body, "orchestrator_http_requests_total{method=\"GET\","
                                   "route=\"/healthz\",status=\"200\"} "));
    assert_non_null(strstr(r.body, "{method=\"GET\",route=\"unmatched\",status=\"404\"}"));
    assert_non_null(strstr(r.body,
                           "orchestrator_http_request_duration_seconds_bucket{method=\"GET\","
                           "route=\"/healthz\",le=\"+Inf\"} "));
    assert_non_null(strstr(r.body, "\norchestrator_http_connections_open 1\n"));
    assert_non_null(strstr(r.body, "\nprocess_start_time_seconds "));
    assert_non_null(strstr(r.body, "\norchestrator_build_info{"));
    /* every sample line is "name{labels} value" or "name value" */
    for (char *line = r.body; *line; line = strchr(line, '\n') + 1) {
        if (*line != '#')
            assert_non_null(memchr(line, ' ', (size_t)(strchr(line, '\n') - line)));
        if (strchr(line, '\n') == NULL)
            break;
    }
    resp_free(&r);
}

static void openapi_describes_the_routes(void **state)
{
    static const char *const routes[] = {"/",       "/info",    "/configuration", "/healthz",
                                         "/readyz", "/metrics", "/openapi.json"};
    int port = shared_port();
    char base[64];
    struct resp r;
    json_t *v, *paths;

    (void)state;
    assert_int_equal(get(port, "/openapi.json", &r), 200);
    assert_string_equal(r.ctype, "application/json");
    v = resp_json(&r);
    assert_string_equal(json_string_value(json_object_get(v, "openapi")), "3.0.3");
    paths = json_object_get(v, "paths"); /* the built-in routes, and the subsystems' */
    assert_true(json_object_size(paths) >= sizeof(routes) / sizeof(routes[0]));
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        assert_non_null(json_object_get(json_object_get(paths, routes[i]), "get"));
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(v, "servers"), 0), "url")),
        base);
    json_decref(v);
    resp_free(&r);

    /* links follow the Host header, when it is sane */
    const char *host[] = {"Host: orchestrator.example.org:8443", NULL};
    http(port, "GET", "/openapi.json", NULL, 0, host, &r);
    v = resp_json(&r);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(v, "servers"), 0), "url")),
        "http://orchestrator.example.org:8443");
    json_decref(v);
    resp_free(&r);
    const char *evil[] = {"Host: evil.org/\"><x", NULL};
    http(port, "GET", "/openapi.json", NULL, 0, evil, &r);
    v = resp_json(&r);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(v, "servers"), 0), "url")),
        base);
    json_decref(v);
    resp_free(&r);
}

static void trailing_slashes_and_unknown_paths(void **state)
{
    int port = shared_port();
    struct resp r;

    (void)state;
    assert_int_equal(get(port, "/info/", &r), 200);
    resp_free(&r);
    assert_int_equal(get(port, "/healthz/", &r), 200);
    resp_free(&r);
    assert_int_equal(get(port, "/metrics/?x=1", &r), 200);
    resp_free(&r);
    assert_int_equal(get(port, "/info//", &r), 404);
    resp_free(&r);
    assert_int_equal(get(port, "/deployments-nope", &r), 404);
    assert_error_json(&r, 404, "Not Found", "no resource at /deployments-nope");
    resp_free(&r);
    assert_int_equal(get(port, "/info?a=%zz", &r), 400);
    assert_error_json(&r, 400, "Bad Request", "malformed query string");
    resp_free(&r);
    assert_int_equal(get(port, "/x%zz", &r), 400);
    assert_error_json(&r, 400, "Bad Request", "bad percent-encoding");
    resp_free(&r);
}

static void methods_405_options_head(void **state)
{
    int port = shared_port();
    const char *rid[] = {"X-Request-Id: my-trace.42", NULL};
    struct resp r;

    (void)state;
    assert_int_equal(http(port, "POST", "/info", "{}", 2, NULL, &r), 405);
    assert_string_equal(r.allow, "GET, HEAD, OPTIONS");
    assert_error_json(&r, 405, "Method Not Allowed", "method POST is not allowed on /info");
    resp_free(&r);
    assert_int_equal(http(port, "DELETE", "/healthz/", NULL, 0, NULL, &r), 405);
    resp_free(&r);
    assert_int_equal(http(port, "BREW", "/info", NULL, 0, NULL, &r), 405);
    resp_free(&r);
    assert_int_equal(http(port, "OPTIONS", "/metrics", NULL, 0, NULL, &r), 204);
    assert_string_equal(r.allow, "GET, HEAD, OPTIONS");
    assert_int_equal(r.len, 0);
    resp_free(&r);
    assert_int_equal(http(port, "HEAD", "/info", NULL, 0, NULL, &r), 200);
    assert_string_equal(r.ctype, "application/json");
    assert_true(r.content_length > 10);
    assert_int_equal(r.len, 0);
    resp_free(&r);
    assert_int_equal(http(port, "GET", "/healthz", NULL, 0, rid, &r), 200);
    assert_string_equal(r.request_id, "my-trace.42");
    resp_free(&r);
}

static void body_over_the_limit_is_413(void **state)
{
    int port = shared_port();
    size_t big = (4u << 20) + 1;
    char *body = malloc(big);
    const char *chunked[] = {"Transfer-Encoding: chunked", NULL};
    struct resp r;

    (void)state;
    memset(body, 'a', big);
    assert_int_equal(http(port, "POST", "/info", body, big, NULL, &r), 413);
    assert_error_json(&r, 413, "Payload Too Large", "exceeds the limit of 4194304 bytes");
    assert_string_equal(r.connection, "close");
    resp_free(&r);
    assert_int_equal(http(port, "POST", "/info", body, big, chunked, &r), 413);
    assert_error_json(&r, 413, "Payload Too Large", "limits.max_body_bytes");
    resp_free(&r);
    /* at the limit it is read, and the route answers */
    assert_int_equal(http(port, "POST", "/info", body, big - 1, NULL, &r), 405);
    resp_free(&r);
    assert_int_equal(http(port, "POST", "/info", body, big - 1, chunked, &r), 405);
    resp_free(&r);
    free(body);
}

static void malformed_requests(void **state)
{
    int port = shared_port();
    struct {
        const char *request;
        const char *want;
        bool closes; /* errors in framing end the connection */
    } cases[] = {
        {"GARBAGE\r\n\r\n", "HTTP/1.1 400 ", true},
        {"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", "HTTP/1.1 400 ", true},
        {"GET / HTTP/9.9\r\n\r\n", "HTTP/1.1 400 ", true},
        {"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
         "{\"code\":400,\"title\":\"Bad Request\",\"message\":\"malformed request: broken "
         "content-length header\"}",
         true},
        {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
         "\"message\":\"malformed request: unknown transfer-encoding\"}", true},
        {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
         "\"message\":\"malformed request: broken chunked-encoding\"}", true},
        {"GET * HTTP/1.1\r\nHost: x\r\n\r\n", "{\"code\":404,", false},
        /* bytes that are not UTF-8 still give a JSON error */
        {"GET /caf\xc3 HTTP/1.1\r\nHost: x\r\n\r\n",
         "{\"code\":404,\"title\":\"Not Found\",\"message\":\"no resource at /caf?\"}", false},
    };
    bool closed;
    struct resp r;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int fd = raw_connect(port);
        char *out;
        raw_sends(fd, cases[i].request);
        if (cases[i].closes) {
            out = raw_read_until_close(fd, secs(5), &closed, NULL);
            assert_true(closed);
        } else {
            out = raw_read_response(fd, secs(5));
        }
        if (strstr(out, cases[i].want) == NULL)
            fail_msg("case %zu: wanted \"%s\" in:\n%s", i, cases[i].want, out);
        free(out);
        close(fd);
    }
    assert_int_equal(get(port, "/healthz", &r), 200); /* the server is still fine */
    resp_free(&r);
}

static void oversized_headers_are_431(void **state)
{
    int port = shared_port();
    size_t n = 20000;
    char *hdr = malloc(n + 32);
    const char *headers[] = {hdr, NULL};
    struct resp r;

    (void)state;
    memcpy(hdr, "X-Big: ", 7);
    memset(hdr + 7, 'b', n);
    hdr[7 + n] = '\0';
    assert_int_equal(http(port, "GET", "/healthz", NULL, 0, headers, &r), 431);
    assert_error_json(&r, 431, "Request Header Fields Too Large", "limits.max_header_bytes");
    assert_string_equal(r.connection, "close");
    resp_free(&r);
    hdr[7 + 15000] = '\0'; /* under 16 KiB */
    assert_int_equal(http(port, "GET", "/healthz", NULL, 0, headers, &r), 200);
    resp_free(&r);
    free(hdr);
}

static void many_keepalive_connections(void **state)
{
    enum { CONNS = 200, ROUNDS = 3 };
    static int fds[CONNS];
    int port = shared_port();
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
    struct resp r;

    (void)state;
    for (int i = 0; i < CONNS; i++) {
        fds[i] = raw_connect(port);
        assert_true(fds[i] >= 0);
    }
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < CONNS; i++) /* all requests in flight at once */
            raw_sends(fds[i], req);
        for (int i = 0; i < CONNS; i++) {
            char *out = raw_read_response(fds[i], secs(10));
            if (strncmp(out, "HTTP/1.1 200 OK\r\n", 17) != 0 ||
                strstr(out, "Connection: keep-alive") == NULL)
                fail_msg("round %d connection %d:\n%s", round, i, out);
            free(out);
        }
    }
    assert_int_equal(get(port, "/metrics", &r), 200);
    static const char gauge[] = "\norchestrator_http_connections_open ";
    const char *open = strstr(r.body, gauge);
    assert_non_null(open);
    assert_true(atoi(open + strlen(gauge)) >= CONNS);
    resp_free(&r);
    /* pipelining: two requests in one write, two answers in order */
    raw_sends(fds[0], "GET /info HTTP/1.1\r\nHost: t\r\n\r\nGET /nope HTTP/1.1\r\nHost: t\r\n\r\n");
    char *both = raw_read_until(fds[0], "no resource at /nope\"}", secs(5));
    char *a = strstr(both, "HTTP/1.1 200 OK"), *b = strstr(both, "HTTP/1.1 404 Not Found");
    assert_true(a != NULL && b != NULL && a < b);
    free(both);
    for (int i = 0; i < CONNS; i++)
        close(fds[i]);
}

static void shared_daemon_stops_cleanly(void **state)
{
    char *log;

    (void)state;
    need_daemon();
    if (shared.pid == 0)
        skip();
    assert_int_equal(daemon_stop(&shared), 0);
    log = slurp(shared.log, NULL);
    assert_non_null(strstr(log, "SIGTERM: shutting down"));
    assert_non_null(strstr(log, "daemon: stopped (exit status 0)"));
    assert_null(strstr(log, "handle left open"));
    free(log);
}

/* ---- limits and timeouts (own daemons) --------------------------------------------------------
 */

static void connection_limit_gives_503(void **state)
{
    const char *env[] = {"ORCHESTRATOR_MAX_CONNECTIONS=4", NULL};
    struct daemon d;
    int fds[4];
    bool closed;

    (void)state;
    need_daemon();
    daemon_start(&d, NULL, env);
    for (int i = 0; i < 4; i++) { /* four connections, each known to the server */
        fds[i] = raw_connect(d.port);
        raw_sends(fds[i], "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
        free(raw_read_response(fds[i], secs(5)));
    }
    int extra = raw_connect(d.port);
    assert_true(extra >= 0);
    char *out = raw_read_until_close(extra, secs(5), &closed, NULL);
    assert_true(closed);
    if (out[0] != '\0') /* the 503 may be lost to a reset, never anything else */
        assert_non_null(strstr(out, "HTTP/1.1 503 Service Unavailable"));
    free(out);
    close(extra);
    close(fds[0]); /* a slot frees up */
    sleep_s(secs(0.2));
    struct resp r;
    assert_int_equal(get(d.port, "/metrics", &r), 200);
    assert_non_null(strstr(r.body, "\norchestrator_http_connections_rejected_total 1\n"));
    resp_free(&r);
    for (int i = 1; i < 4; i++)
        close(fds[i]);
    assert_int_equal(daemon_stop(&d), 0);
    daemon_forget(&d);
}

static void slow_and_idle_clients_time_out(void **state)
{
    const char *env[] = {"ORCHESTRATOR_REQUEST_TIMEOUT=1s", NULL};
    struct daemon d;
    bool closed;
    double t0;

    (void)state;
    need_daemon();
    daemon_start(&d, NULL, env);
    /* a body that never completes */
    int slow = raw_connect(d.port);
    raw_sends(slow, "POST /info HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789");
    /* headers that never complete */
    int slower = raw_connect(d.port);
    raw_sends(slower, "GET /info HTTP/1.1\r\nHost: t\r\nX-Part");
    /* an idle keep-alive connection */
    int idle = raw_connect(d.port);
    raw_sends(idle, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    free(raw_read_response(idle, secs(5)));
    t0 = now_s();
    char *out = raw_read_until_close(slow, secs(10), &closed, NULL);
    assert_true(closed);
    assert_true(now_s() - t0 >= 0.5);
    assert_true(now_s() - t0 < secs(5));
    free(out);
    out = raw_read_until_close(slower, secs(10), &closed, NULL);
    assert_true(closed);
    free(out);
    out = raw_read_until_close(idle, secs(10), &closed, NULL);
    assert_true(closed);
    assert_string_equal(out, "");
    free(out);
    close(slow);
    close(slower);
    close(idle);
    /* still serving */
    struct resp r;
    assert_int_equal(get(d.port, "/healthz", &r), 200);
    resp_free(&r);
    assert_int_equal(daemon_stop(&d), 0);
    daemon_forget(&d);
}

/* A client that sends requests and never reads the answers: the response
 * stops making progress, and the connection is cut after request_timeout. */
static void stalled_reader_is_cut_off(void **state)
{
    const char *env[] = {"ORCHESTRATOR_REQUEST_TIMEOUT=1s", NULL};
    static const char req[] = "GET /openapi.json HTTP/1.1\r\nHost: t\r\n\r\n";
    struct daemon d;
    int fd, small = 4096;
    double end;
    char *log = NULL;

    (void)state;
    need_daemon();
    daemon_start(&d, NULL, env);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)d.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    /* pipeline requests until the server stops reading them (its answers
     * fill every buffer on the way) */
    for (int i = 0; i < 20000; i++)
        if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) < 0)
            break;
    end = now_s() + secs(10);
    while (now_s() < end) {
        free(log);
        log = slurp(d.log, NULL);
        if (strstr(log, "its response made no progress") != NULL)
            break;
        sleep_s(0.05);
    }
    if (strstr(log, "its response made no progress") == NULL)
        fail_msg("the stalled connection was not cut off:\n%s", log);
    free(log);
    close(fd);
    assert_int_equal(daemon_stop(&d), 0);
    daemon_forget(&d);
}

static void sigterm_lets_the_request_in_flight_finish(void **state)
{
    struct daemon d;
    bool closed;
    double t0;

    (void)state;
    need_daemon();
    daemon_start(&d, NULL, NULL);
    /* a keep-alive connection, idle at the signal */
    int idle = raw_connect(d.port);
    raw_sends(idle, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    free(raw_read_response(idle, secs(5)));
    /* a request whose body is still arriving at the signal */
    int busy = raw_connect(d.port);
    raw_sends(busy, "GET /info HTTP/1.1\r\nHost: t\r\nContent-Length: 20\r\n\r\n0123456789");
    sleep_s(secs(0.2));
    t0 = now_s();
    kill(d.pid, SIGTERM);
    /* the idle connection is closed at once, without a response */
    char *out = raw_read_until_close(idle, secs(5), &closed, NULL);
    assert_true(closed);
    assert_string_equal(out, "");
    assert_true(now_s() - t0 < secs(2));
    free(out);
    /* no new connections */
    sleep_s(secs(0.1));
    int late = raw_connect(d.port);
    assert_int_equal(late, -1);
    assert_int_equal(daemon_wait(&d, 0), -1); /* still running: one request is in flight */
    /* the request completes, is answered, and its connection closes */
    raw_sends(busy, "abcdefghij");
    out = raw_read_until_close(busy, secs(5), &closed, NULL);
    assert_true(closed);
    if (strncmp(out, "HTTP/1.1 200 OK\r\n", 17) != 0 || strstr(out, "Connection: close") == NULL ||
        strstr(out, "\"build\"") == NULL)
        fail_msg("in-flight response:\n%s", out);
    free(out);
    close(idle);
    close(busy);
    assert_int_equal(daemon_wait(&d, secs(5)), 0);
    out = slurp(d.log, NULL);
    assert_null(strstr(out, "shutdown deadline"));
    assert_non_null(strstr(out, "stopped (exit status 0)"));
    free(out);
    daemon_forget(&d);
}

static void shutdown_deadline_ends_stuck_requests(void **state)
{
    const char *env[] = {"ORCHESTRATOR_SHUTDOWN_TIMEOUT=1s", NULL};
    struct daemon d;
    bool closed;
    double t0;

    (void)state;
    need_daemon();
    daemon_start(&d, NULL, env);
    int stuck = raw_connect(d.port);
    raw_sends(stuck, "POST /info HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n01234");
    sleep_s(secs(0.2));
    t0 = now_s();
    kill(d.pid, SIGTERM);
    assert_int_equal(daemon_wait(&d, secs(8)), 0);
    assert_true(now_s() - t0 >= 0.9);
    char *out = raw_read_until_close(stuck, secs(2), &closed, NULL);
    assert_true(closed);
    free(out);
    close(stuck);
    out = slurp(d.log, NULL);
    assert_non_null(strstr(out, "shutdown deadline: closing 1 busy connection(s)"));
    free(out);
    daemon_forget(&d);
}

static void second_signal_cuts_the_grace_period(void **state)
{
    struct daemon d;

    (void)state;
    need_daemon();
    daemon_start(&d, NULL, NULL);
    int stuck = raw_connect(d.port);
    raw_sends(stuck, "POST /info HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n01234");
    sleep_s(secs(0.2));
    kill(d.pid, SIGINT);
    sleep_s(secs(0.3));
    assert_int_equal(daemon_wait(&d, 0), -1); /* waiting for the request (10 s grace) */
    kill(d.pid, SIGTERM);
    assert_int_equal(daemon_wait(&d, secs(5)), 0);
    close(stuck);
    daemon_forget(&d);
}

static void ipv6_loopback(void **state)
{
    const char *args[] = {"--listen", "[::1]:0", "--data-dir", "./data", NULL};
    struct daemon d;
    struct resp r;
    char url[64];

    (void)state;
    need_daemon();
    daemon_spawn(&d, args, NULL);
    sleep_s(secs(0.3));
    if (daemon_wait(&d, secs(0.5)) == 1) { /* no IPv6 on this machine */
        daemon_forget(&d);
        skip();
    }
    daemon_wait_ready(&d);
    assert_true(d.port6 > 0);
    CURL *c = curl_easy_init();
    snprintf(url, sizeof(url), "http://[::1]:%d/healthz", d.port6);
    memset(&r, 0, sizeof(r));
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    assert_int_equal(r.status, 200);
    curl_easy_cleanup(c);
    free(r.body);
    assert_int_equal(daemon_stop(&d), 0);
    daemon_forget(&d);
}

/* ---- configuration through the real binary ------------------------------------------------------
 */

static void precedence_over_http(void **state)
{
    char *file = write_temp("listen: 127.0.0.1:1\n"
                            "data_dir: ./from-file\n"
                            "public_url: https://orc.example.org/api/\n"
                            "limits:\n  max_body_bytes: 2KiB\n"
                            "configuration:\n  cprUrl: http://cpr.example.org\n");
    const char *args[] = {"--config",   file,         "--listen", "127.0.0.1:0",
                          "--data-dir", "./from-cli", NULL};
    const char *env[] = {"ORCHESTRATOR_MAX_BODY_BYTES=3KiB", "ORCHESTRATOR_DATA_DIR=./from-env",
                         NULL};
    struct daemon d;
    struct resp r;
    char path[128], body[3500];
    struct stat st;

    (void)state;
    need_daemon();
    daemon_start(&d, args, env);
    assert_int_equal(get(d.port, "/configuration", &r), 200); /* from the file */
    assert_string_equal(r.body, "{\"cprUrl\":\"http://cpr.example.org\"}");
    resp_free(&r);
    memset(body, 'x', sizeof(body));
    assert_int_equal(http(d.port, "POST", "/info", body, 2500, NULL, &r), 405); /* env 3 KiB */
    resp_free(&r);
    assert_int_equal(http(d.port, "POST", "/info", body, 3500, NULL, &r), 413);
    resp_free(&r);
    assert_int_equal(get(d.port, "/openapi.json", &r), 200); /* public_url from the file */
    assert_non_null(strstr(r.body, "\"servers\":[{\"url\":\"https://orc.example.org/api\"}]"));
    resp_free(&r);
    snprintf(path, sizeof(path), "%s/from-cli", d.dir); /* cli beats env and file */
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);
    snprintf(path, sizeof(path), "%s/from-env", d.dir);
    assert_int_not_equal(stat(path, &st), 0);
    assert_int_equal(daemon_stop(&d), 0);
    daemon_forget(&d);
    unlink(file);
    free(file);
}

/* Runs the binary to completion; returns the exit status, output in *out. */
static int run_to_exit(const char *const *args, const char *const *env, char **out)
{
    struct daemon d;
    int status;

    daemon_spawn(&d, args, env);
    status = daemon_wait(&d, secs(10));
    if (status < 0) {
        kill(d.pid, SIGKILL);
        daemon_wait(&d, 5);
    }
    *out = slurp(d.log, NULL);
    daemon_forget(&d);
    return status;
}

static void expect_exit(const char *const *args, const char *const *env, int status,
                        const char *want)
{
    char *out;
    int got = run_to_exit(args, env, &out);

    if (got != status || strstr(out, want) == NULL)
        fail_msg("expected exit %d with \"%s\", got %d:\n%s", status, want, got, out);
    free(out);
}

static void bad_configurations_exit_2(void **state)
{
    char *unknown = write_temp("listen: 127.0.0.1:0\nlimits:\n  max_bodyy: 1MiB\n");
    char *syntax = write_temp("listen: 127.0.0.1:0\nlimits: [\n");
    const char *a1[] = {"--config", unknown, NULL};
    const char *a2[] = {"--config", syntax, NULL};
    const char *a3[] = {"--listen", "0.0.0.0:0", NULL};
    const char *a4[] = {"--listen", "127.0.0.1:0", "--bogus", NULL};
    const char *a5[] = {"--config", "/nonexistent.yaml", NULL};
    const char *a6[] = {"--help", NULL};
    const char *a7[] = {"--version", NULL};
    const char *e1[] = {"ORCHESTRATOR_REQUEST_TIMEOUT=soon", NULL};
    char want[PATH_MAX + 64];

    (void)state;
    need_daemon();
    snprintf(want, sizeof(want), "%s:3:3: unknown key 'limits.max_bodyy'", unknown);
    expect_exit(a1, NULL, 2, want);
    snprintf(want, sizeof(want), "%s:3:1: error:", syntax);
    expect_exit(a2, NULL, 2, want);
    expect_exit(a3, NULL, 2, "is not a loopback address: without authentication");
    expect_exit(a4, NULL, 2, "unknown option '--bogus'");
    expect_exit(a5, NULL, 2, "cannot read configuration file '/nonexistent.yaml'");
    expect_exit(default_args, e1, 2, "ORCHESTRATOR_REQUEST_TIMEOUT: 'soon' is not a duration");
    expect_exit(a6, NULL, 0, "Usage: orchestratord");
    expect_exit(a7, NULL, 0, "orchestratord 0.1.0");
    unlink(unknown);
    unlink(syntax);
    free(unknown);
    free(syntax);
}

static void runtime_failures_exit_1(void **state)
{
    struct daemon d;
    char listen[64];
    const char *busy[] = {"--listen", listen, NULL};
    const char *nodir[] = {"--listen", "127.0.0.1:0", "--data-dir", "/proc/self/nope/var", NULL};

    (void)state;
    need_daemon();
    daemon_start(&d, NULL, NULL);
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", d.port);
    char want[128];
    snprintf(want, sizeof(want), "cannot listen on 127.0.0.1:%d: address already in use", d.port);
    expect_exit(busy, NULL, 1, want);
    expect_exit(nodir, NULL, 1, "data directory '/proc/self/nope/var'");
    assert_int_equal(daemon_stop(&d), 0);
    daemon_forget(&d);
}

/* The daemon's array growth (base.h): room for one more, doubling from 8, the
 * contents kept; a size that would overflow is refused with the array unchanged. */
static void reserve_one_doubles_from_eight(void **state)
{
    int *items = NULL;
    size_t cap = 0;
    char *bytes = NULL;
    size_t huge = SIZE_MAX / 2 + 1;

    (void)state;
    assert_int_equal(orc_reserve_one((void **)&items, &cap, 0, sizeof(*items)), 0);
    assert_int_equal(cap, 8);
    for (int i = 0; i < 8; i++)
        items[i] = i;
    assert_int_equal(orc_reserve_one((void **)&items, &cap, 7, sizeof(*items)), 0);
    assert_int_equal(cap, 8); /* room left: untouched */
    assert_int_equal(orc_reserve_one((void **)&items, &cap, 8, sizeof(*items)), 0);
    assert_int_equal(cap, 16);
    for (int i = 0; i < 8; i++)
        assert_int_equal(items[i], i);
    orc_free(items);
    assert_int_equal(orc_reserve_one((void **)&bytes, &huge, huge, 1), ORC_ENOMEM);
    assert_null(bytes);
    assert_int_equal(huge, SIZE_MAX / 2 + 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reserve_one_doubles_from_eight),
        cmocka_unit_test(config_defaults),
        cmocka_unit_test(config_value_parsers),
        cmocka_unit_test(config_precedence),
        cmocka_unit_test(config_file_errors_name_the_place),
        cmocka_unit_test(config_env_and_cli_errors),
        cmocka_unit_test(config_help_and_version),
        cmocka_unit_test(config_listen_lists),
        cmocka_unit_test(config_example_file_is_the_defaults),
        cmocka_unit_test(endpoints_answer_with_types),
        cmocka_unit_test(metrics_are_prometheus_text),
        cmocka_unit_test(openapi_describes_the_routes),
        cmocka_unit_test(trailing_slashes_and_unknown_paths),
        cmocka_unit_test(methods_405_options_head),
        cmocka_unit_test(body_over_the_limit_is_413),
        cmocka_unit_test(malformed_requests),
        cmocka_unit_test(oversized_headers_are_431),
        cmocka_unit_test(many_keepalive_connections),
        cmocka_unit_test(shared_daemon_stops_cleanly),
        cmocka_unit_test_teardown(connection_limit_gives_503, kill_all),
        cmocka_unit_test_teardown(slow_and_idle_clients_time_out, kill_all),
        cmocka_unit_test_teardown(stalled_reader_is_cut_off, kill_all),
        cmocka_unit_test_teardown(sigterm_lets_the_request_in_flight_finish, kill_all),
        cmocka_unit_test_teardown(shutdown_deadline_ends_stuck_requests, kill_all),
        cmocka_unit_test_teardown(second_signal_cuts_the_grace_period, kill_all),
        cmocka_unit_test_teardown(ipv6_loopback, kill_all),
        cmocka_unit_test_teardown(precedence_over_http, kill_all),
        cmocka_unit_test_teardown(bad_configurations_exit_2, kill_all),
        cmocka_unit_test_teardown(runtime_failures_exit_1, kill_all),
    };
    int rc;

    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, NULL, kill_all);
    curl_global_cleanup();
    return rc;
}
