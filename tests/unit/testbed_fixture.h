/*
 * The real test sites of deploy/testbed/ from C tests: start an sshd
 * testbed (or a Slurm one) in a fresh directory, read the values its env
 * file gives (SSH_HOSTS, SSH_KEY, ...), and stop it, always, at tear-down.
 * Header-only: each test program includes it once, after testutil.h.
 */
#ifndef TESTBED_FIXTURE_H
#define TESTBED_FIXTURE_H

#include <dirent.h>
#include <glob.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* Runs sh deploy/testbed/SCRIPT ARGS (a shell fragment of ours), its
 * output to DIR.log. Returns the exit status. */
static inline int tb_run(const char *script, const char *args, const char *log)
{
    char cmd[2048];
    int rc;

    snprintf(cmd, sizeof(cmd), "sh deploy/testbed/%s %s >>%s 2>&1 </dev/null", script, args, log);
    rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

/* A value of an env file the testbed wrote (KEY="value" lines): a new
 * string (free it), or NULL. */
static inline char *tb_env(const char *file, const char *key)
{
    char *text = test_read_file(file, NULL), *p, *v = NULL;
    size_t kl = strlen(key);

    if (text == NULL)
        return NULL;
    for (p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
            char *s = p + kl + 1, *e;
            if (*s == '"')
                s++;
            e = s + strcspn(s, "\"\n");
            v = strndup(s, (size_t)(e - s));
            break;
        }
    }
    free(text);
    return v;
}

/* The Nth (0-based) space-separated word of s into out. */
static inline bool tb_word(const char *s, int n, char *out, size_t len)
{
    while (s && *s) {
        size_t w;
        s += strspn(s, " ");
        w = strcspn(s, " ");
        if (w == 0)
            break;
        if (n-- == 0) {
            snprintf(out, len, "%.*s", (int)w, s);
            return true;
        }
        s += w;
    }
    return false;
}

struct tb_sshd {
    char dir[256];
    char log[300];
    char env[300];
    char *hosts; /* "addr:port addr:port" */
    char *key, *known_hosts, *user;
    int nhosts;
};

/* Starts N sshd servers (netns: each in a network namespace). false when
 * the testbed could not start (the log says why). */
static inline bool tb_sshd_start(struct tb_sshd *tb, int n, bool netns)
{
    char args[600], *nh;

    memset(tb, 0, sizeof(*tb));
    snprintf(tb->dir, sizeof(tb->dir), "/tmp/orc-tb-ssh-XXXXXX");
    if (mkdtemp(tb->dir) == NULL)
        return false;
    snprintf(tb->log, sizeof(tb->log), "%s.log", tb->dir);
    snprintf(tb->env, sizeof(tb->env), "%s/testbed.env", tb->dir);
    snprintf(args, sizeof(args), "start %s --hosts %d%s", tb->dir, n, netns ? " --netns" : "");
    if (tb_run("sshd.sh", args, tb->log) != 0)
        return false;
    tb->hosts = tb_env(tb->env, "SSH_HOSTS");
    tb->key = tb_env(tb->env, "SSH_KEY");
    tb->known_hosts = tb_env(tb->env, "SSH_KNOWN_HOSTS");
    tb->user = tb_env(tb->env, "SSH_USER");
    nh = tb_env(tb->env, "SSH_NHOSTS");
    tb->nhosts = nh ? atoi(nh) : 0;
    free(nh);
    return tb->hosts && tb->key && tb->known_hosts && tb->user && tb->nhosts == n;
}

/* Host i's address and port. */
static inline void tb_sshd_host(const struct tb_sshd *tb, int i, char *addr, size_t len,
                                unsigned *port)
{
    char w[128], *colon;
    int n;

    assert_true(tb_word(tb->hosts, i, w, sizeof(w)));
    colon = strrchr(w, ':');
    assert_non_null(colon);
    *colon = '\0';
    n = snprintf(addr, len, "%s", w);
    assert_true(n > 0 && (size_t)n < len);
    *port = (unsigned)atoi(colon + 1);
}

/* kill / restart / link I down|up */
static inline int tb_sshd_ctl(const struct tb_sshd *tb, const char *what, int i, const char *arg)
{
    char args[600];

    snprintf(args, sizeof(args), "%s %s %d %s", what, tb->dir, i + 1, arg ? arg : "");
    return tb_run("sshd.sh", args, tb->log);
}

static inline void tb_sshd_stop(struct tb_sshd *tb)
{
    char args[300];

    if (tb->dir[0] == '\0')
        return;
    snprintf(args, sizeof(args), "stop %s", tb->dir);
    tb_run("sshd.sh", args, tb->log);
    free(tb->hosts);
    free(tb->key);
    free(tb->known_hosts);
    free(tb->user);
    unlink(tb->log);
    memset(tb, 0, sizeof(*tb));
}

/* ---- what a site left on its hosts ---------------------------------------- */

/* Node directories under work (names not starting with '.': the runtime's
 * cache .orc-runtime aside). */
static inline int tb_node_dirs(const char *work)
{
    DIR *d = opendir(work);
    struct dirent *e;
    int n = 0;

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* A /proc file whole (procfs files have no size: read what comes); caller
 * frees; NULL when it cannot be opened. */
static inline char *tb_proc_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n;

    *len = 0;
    if (f == NULL)
        return NULL;
    do {
        if (*len + 4096 > cap) {
            cap = cap ? cap * 2 : 65536;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        n = fread(buf + *len, 1, cap - *len - 1, f);
        *len += n;
    } while (n > 0);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

/* Processes whose environment has ORC_NODE_DIR=work/...: what the ssh and
 * slurm drivers started (gpu-agent and what it runs). */
static inline int tb_node_procs(const char *work)
{
    glob_t g;
    int n = 0;
    char want[400];

    snprintf(want, sizeof(want), "ORC_NODE_DIR=%s/", work);
    if (glob("/proc/[0-9]*/environ", 0, NULL, &g) != 0)
        return 0;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        size_t len = 0;
        char *env = tb_proc_file(g.gl_pathv[i], &len);
        for (size_t k = 0; env && k < len; k += strlen(env + k) + 1)
            if (strncmp(env + k, want, strlen(want)) == 0) {
                n++;
                break;
            }
        free(env);
    }
    globfree(&g);
    return n;
}

/* A PostgreSQL server of deploy/testbed/postgres.sh, its database's URL in url. */
struct tb_pg {
    char dir[256];
    char log[300];
    char *url;
};

static inline bool tb_pg_start(struct tb_pg *tb)
{
    char args[300], env[300];

    memset(tb, 0, sizeof(*tb));
    snprintf(tb->dir, sizeof(tb->dir), "/tmp/orc-tb-pg-XXXXXX");
    if (mkdtemp(tb->dir) == NULL)
        return false;
    snprintf(tb->log, sizeof(tb->log), "%s.log", tb->dir);
    snprintf(args, sizeof(args), "start %s", tb->dir);
    if (tb_run("postgres.sh", args, tb->log) != 0)
        return false;
    snprintf(env, sizeof(env), "%s/postgres.env", tb->dir);
    tb->url = tb_env(env, "PG_URL");
    return tb->url != NULL;
}

static inline void tb_pg_stop(struct tb_pg *tb)
{
    char args[300];

    if (tb->dir[0] == '\0')
        return;
    snprintf(args, sizeof(args), "stop %s", tb->dir);
    tb_run("postgres.sh", args, tb->log);
    free(tb->url);
    unlink(tb->log);
    memset(tb, 0, sizeof(*tb));
}

/* tb_pg_start, and when it fails: its log on stderr, the testbed stopped, false. */
static inline bool tb_pg_start_or_say(struct tb_pg *tb)
{
    char *log;

    if (tb_pg_start(tb))
        return true;
    log = test_read_file(tb->log, NULL);
    fprintf(stderr, "the PostgreSQL testbed did not start: %s\n", log ? log : "(no log)");
    free(log);
    tb_pg_stop(tb);
    return false;
}

#endif
