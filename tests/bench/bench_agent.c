/*
 * gpu-agent start-up benchmark (make bench BENCH=agent; docs/performance.md):
 * the time from the exec of `gpu-agent run` to its first report reaching an
 * orchestrator endpoint, and the agent's memory once it supervises a
 * workload. The endpoint is this program: a loopback listener that answers
 * every POST with 200 {"accepted": ...}. The baseline, run in the same go,
 * is curl(1) POSTing one small JSON body to the same listener: the cost of
 * starting a process that links libcurl and makes one request.
 *
 *   bench_agent GPU_AGENT [ROUNDS]
 * Prints one line per round, then "median first_report_ms X baseline_ms Y
 * ratio Z rss_kb R hwm_kb H".
 */
#define _GNU_SOURCE /* strcasestr */
#include <arpa/inet.h>
#include <fcntl.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int listen_loopback(unsigned *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 16) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        perror("listen");
        exit(1);
    }
    *port = ntohs(a.sin_port);
    return fd;
}

/* Waits for one connection that sends a whole request (headers + a body of
 * Content-Length), answers 200; returns the time it was complete, or -1 on
 * timeout. */
static double serve_one(int lfd, int timeout_ms)
{
    static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 "Content-Length: 16\r\nConnection: close\r\n\r\n{\"accepted\": 1}\n";
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    char buf[1 << 16];
    size_t got = 0;
    int fd;

    if (poll(&p, 1, timeout_ms) != 1 || (fd = accept(lfd, NULL, NULL)) < 0)
        return -1;
    for (;;) {
        struct pollfd q = {.fd = fd, .events = POLLIN};
        if (poll(&q, 1, timeout_ms) != 1)
            break;
        ssize_t n = read(fd, buf + got, sizeof(buf) - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        buf[got] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        char *cl = strcasestr(buf, "content-length:");
        if (end && cl && got - (size_t)(end + 4 - buf) >= strtoul(cl + 15, NULL, 10)) {
            double t = now_ms();
            if (write(fd, answer, sizeof(answer) - 1) < 0)
                perror("write");
            close(fd);
            return t;
        }
        if (got == sizeof(buf) - 1)
            break;
    }
    close(fd);
    return -1;
}

static long proc_kb(pid_t pid, const char *key)
{
    char path[64], line[256];
    long v = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, key, strlen(key)) == 0)
            v = strtol(line + strlen(key) + 1, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

static pid_t spawn(char *const argv[], char *const envp[])
{
    pid_t pid = fork();

    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execve(argv[0], argv, envp);
        _exit(127);
    }
    return pid;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    int rounds = argc > 2 ? atoi(argv[2]) : 10;
    double first[100], base[100], rss[100], hwm[100];
    char url[64], logdir[] = "/tmp/bench-agent-XXXXXX";
    unsigned port;
    int lfd;

    if (argc < 2 || rounds < 1 || rounds > 100) {
        fprintf(stderr, "usage: bench_agent GPU_AGENT [ROUNDS (1-100)]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    lfd = listen_loopback(&port);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", port);
    if (mkdtemp(logdir) == NULL)
        return 1;
    for (int i = 0; i < rounds; i++) {
        char env_url[96], *agent_argv[] = {argv[1], "run",   "--kind", "service", "--check",
                                           "quick", "--log-dir", logdir, "--",    "/bin/sleep",
                                           "60",    NULL};
        char *envp[] = {env_url,
                        "ORC_AGENT_TOKEN=bench",
                        "ORC_AGENT_DEPLOYMENT=00000000-0000-7000-8000-000000000000",
                        "ORC_AGENT_RESOURCE=00000000-0000-7000-8000-000000000001",
                        "PATH=/usr/bin:/bin",
                        NULL};
        char body_url[96], *curl_argv[] = {"/usr/bin/curl", "-s", "-o", "/dev/null", "-H",
                                           "Content-Type: application/json", "-d",
                                           "{\"reports\":[]}", body_url, NULL};
        char *curl_env[] = {"PATH=/usr/bin:/bin", NULL};

        snprintf(env_url, sizeof(env_url), "ORC_AGENT_URL=%s", url);
        snprintf(body_url, sizeof(body_url), "%s/agent/v1/deployments/x/reports", url);
        double t0 = now_ms();
        pid_t pid = spawn(agent_argv, envp);
        double t1 = serve_one(lfd, 10000);
        if (t1 < 0) {
            fprintf(stderr, "round %d: no report from the agent within 10 s\n", i + 1);
            kill(pid, SIGKILL);
            return 1;
        }
        first[i] = t1 - t0;
        /* let it settle with its workload running, answering what it sends */
        double until = now_ms() + 300;
        while (now_ms() < until)
            serve_one(lfd, 50);
        rss[i] = (double)proc_kb(pid, "VmRSS");
        hwm[i] = (double)proc_kb(pid, "VmHWM");
        kill(pid, SIGTERM);
        for (double stop = now_ms() + 5000; now_ms() < stop;) {
            serve_one(lfd, 20); /* its last reports */
            if (waitpid(pid, NULL, WNOHANG) == pid)
                break;
        }
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);

        t0 = now_ms();
        pid = spawn(curl_argv, curl_env);
        t1 = serve_one(lfd, 10000);
        waitpid(pid, NULL, 0);
        base[i] = t1 < 0 ? -1 : t1 - t0;
        printf("round %d: first report %.2f ms, curl baseline %.2f ms, agent VmRSS %.0f kB, "
               "VmHWM %.0f kB\n",
               i + 1, first[i], base[i], rss[i], hwm[i]);
    }
    double f = median(first, rounds), b = median(base, rounds);
    printf("median first_report_ms %.2f baseline_ms %.2f ratio %.2f rss_kb %.0f hwm_kb %.0f\n", f,
           b, b > 0 ? f / b : 0, median(rss, rounds), median(hwm, rounds));
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", logdir);
    return system(cmd) == 0 ? 0 : 1;
}
