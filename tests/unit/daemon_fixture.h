/*
 * Helpers for tests that run the real orchestratord: start it on an
 * ephemeral loopback port with a data directory (and optionally a sites
 * file), read the address it bound from its log, kill whatever a failed
 * assertion left running, and collect HTTP response bodies with libcurl.
 * Header-only: each test program includes it once, after testutil.h.
 */
#ifndef DAEMON_FIXTURE_H
#define DAEMON_FIXTURE_H

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

/* The daemon a failed assertion may leave running: the teardown kills it. */
static pid_t live_pid;

static inline int kill_leftover(void **state)
{
    (void)state;
    if (live_pid > 0) {
        kill(live_pid, SIGKILL);
        waitpid(live_pid, NULL, 0);
        live_pid = 0;
    }
    return 0;
}

static inline const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v && *v ? v : dflt;
}

/* Starts $ORCHESTRATORD on 127.0.0.1:0 with dir/var as its data directory
 * (and sites, when not NULL), logging to log; waits until the log names the
 * address it listens on and writes it to url ("http://127.0.0.1:PORT").
 * Returns its pid. */
static inline pid_t daemon_spawn(const char *dir, const char *sites, const char *log, char *url,
                                 size_t urlsize)
{
    char line[512], fmt[16];
    pid_t pid = fork();
    FILE *fp;

    assert_true(pid >= 0);
    if (pid == 0) {
        char data[128];
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        snprintf(data, sizeof(data), "%s/var", dir);
        dup2(fd, 2);
        dup2(fd, 1);
        execl(env_or("ORCHESTRATORD", "build/release/bin/orchestratord"), "orchestratord",
              "--listen", "127.0.0.1:0", "--data-dir", data, sites ? "--sites" : (char *)NULL,
              sites, (char *)NULL);
        _exit(127);
    }
    live_pid = pid;
    snprintf(fmt, sizeof(fmt), "%%%zus", urlsize - 1);
    url[0] = '\0';
    for (int i = 0; i < 400 && !url[0]; i++) {
        usleep(25000);
        fp = fopen(log, "r");
        while (fp && fgets(line, sizeof(line), fp)) {
            char *at = strstr(line, "listening on http://");
            if (at)
                sscanf(at + strlen("listening on "), fmt, url);
        }
        if (fp)
            fclose(fp);
    }
    assert_true(url[0] != '\0');
    return pid;
}

/* A response body collected by libcurl (CURLOPT_WRITEFUNCTION on_body). */
struct body {
    char *data;
    size_t len;
};

static inline size_t on_body(char *p, size_t s, size_t n, void *ud)
{
    struct body *b = ud;
    char *nd = realloc(b->data, b->len + s * n + 1);

    if (nd == NULL)
        return 0;
    memcpy(nd + b->len, p, s * n);
    b->len += s * n;
    nd[b->len] = '\0';
    b->data = nd;
    return s * n;
}

#endif
