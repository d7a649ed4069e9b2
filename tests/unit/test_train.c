/*
 * gpu-train and its model library (gpu-runtime/workloads/train, model):
 * the data are deterministic; the checkpoint round-trips and every kind of
 * damage is caught with a message; one CPU step does what the math says (the
 * gradient against finite differences, the SGD and Adam updates); the loss
 * falls, in-process and through the binary ($GPU_TRAIN) with its metrics and
 * its usage errors; --device gpu without a GPU fails clearly (and on a GPU
 * machine --compare-devices agrees); two ranks on loopback end with the same
 * averaged model; a rank that never connects, dies or differs fails the run
 * quickly with a message naming it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include "testutil.h"

#include "../../gpu-runtime/workloads/train/train.h"
#include "../../orchestrator/base.h"
#include "gm_bytes.h"
#include "gm_model.h"

/* ---- helpers: processes, files, ports ---- */

struct proc {
    pid_t pid;
    int out, err;
    char obuf[1 << 16], ebuf[1 << 16];
    size_t olen, elen;
};

static const char *train_bin(void)
{
    const char *b = getenv("GPU_TRAIN");

    return b && *b ? b : NULL;
}

/* Starts argv with the extra environment env ("K=V", NULL-terminated); the
 * distributed variables are cleared unless env sets them. */
static void proc_start(struct proc *p, char *const argv[], const char *const env[])
{
    int o[2], e[2];

    memset(p, 0, sizeof(*p));
    assert_int_equal(pipe(o), 0);
    assert_int_equal(pipe(e), 0);
    p->pid = fork();
    assert_true(p->pid >= 0);
    if (p->pid == 0) {
        dup2(o[1], 1);
        dup2(e[1], 2);
        close(o[0]);
        close(e[0]);
        unsetenv("WORLD_SIZE");
        unsetenv("RANK");
        unsetenv("MASTER_PORT");
        unsetenv("MASTER_ADDR");
        for (size_t i = 0; env && env[i]; i++)
            putenv((char *)env[i]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(o[1]);
    close(e[1]);
    p->out = o[0];
    p->err = e[0];
    fcntl(p->out, F_SETFL, O_NONBLOCK);
    fcntl(p->err, F_SETFL, O_NONBLOCK);
}

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads what is there (waiting at most ms); false at EOF on both. */
static bool proc_pump(struct proc *p, int ms)
{
    struct pollfd f[2] = {{.fd = p->out, .events = POLLIN}, {.fd = p->err, .events = POLLIN}};
    bool open = false;

    if (poll(f, 2, ms) < 0)
        return true;
    for (int i = 0; i < 2; i++) {
        int *fd = i ? &p->err : &p->out;
        char *buf = i ? p->ebuf : p->obuf;
        size_t *len = i ? &p->elen : &p->olen;

        if (*fd < 0)
            continue;
        ssize_t n = read(*fd, buf + *len, sizeof(p->obuf) - 1 - *len);
        if (n > 0) {
            *len += (size_t)n;
            buf[*len] = '\0';
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            close(*fd);
            *fd = -1;
        }
        open = open || *fd >= 0;
    }
    return open;
}

/* Waits until stdout or stderr holds needle: true, or false after ms. */
static bool proc_wait_for(struct proc *p, const char *needle, int ms)
{
    int64_t end = mono_ms() + ms;

    while (!strstr(p->obuf, needle) && !strstr(p->ebuf, needle)) {
        if (mono_ms() >= end || !proc_pump(p, 50))
            return strstr(p->obuf, needle) || strstr(p->ebuf, needle);
    }
    return true;
}

/* Reads everything and reaps: the exit status, 128 + signal, or -1 after ms
 * (the process is then killed). */
static int proc_finish(struct proc *p, int ms)
{
    int64_t end = mono_ms() + ms;
    int st;

    while (proc_pump(p, 50))
        if (mono_ms() >= end)
            break;
    for (;;) {
        pid_t r = waitpid(p->pid, &st, WNOHANG);

        if (r == p->pid)
            break;
        if (mono_ms() >= end) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &st, 0);
            print_error("process %d timed out; stdout:\n%s\nstderr:\n%s\n", (int)p->pid, p->obuf,
                        p->ebuf);
            return -1;
        }
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (p->out >= 0)
        close(p->out);
    if (p->err >= 0)
        close(p->err);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static bool file_exists(const char *path)
{
    return access(path, F_OK) == 0;
}

/* A small, quick configuration for in-process runs. */
static void small_config(struct gt_config *c)
{
    gt_config_default(c);
    c->samples = 10000;
    c->epochs = 3;
    c->hidden = 32;
    c->device = GT_DEVICE_CPU;
    c->quiet = true;
    c->out = NULL;
}

/* ---- the data ---- */

static void test_data_deterministic(void **state)
{
    struct gm_data_spec spec;
    struct gm_dataset a, b, h, other;
    uint32_t counts[3] = {0};

    (void)state;
    gm_data_spec_default(&spec);
    spec.samples = 3000;
    spec.inputs = 5;
    assert_int_equal(gm_dataset_generate(&spec, false, &a, NULL), 0);
    assert_int_equal(gm_dataset_generate(&spec, false, &b, NULL), 0);
    assert_int_equal(gm_dataset_generate(&spec, true, &h, NULL), 0);
    assert_int_equal(a.n, 3000);
    assert_int_equal(h.n, 600);
    assert_memory_equal(a.x, b.x, (size_t)a.n * 5 * sizeof(float));
    assert_memory_equal(a.y, b.y, (size_t)a.n * sizeof(uint32_t));
    assert_memory_not_equal(a.x, h.x, (size_t)h.n * 5 * sizeof(float));
    for (uint32_t i = 0; i < a.n; i++) {
        assert_true(a.y[i] < 3);
        counts[a.y[i]]++;
    }
    for (int k = 0; k < 3; k++) /* about a third each */
        assert_in_range(counts[k], 850, 1150);
    spec.seed = 2;
    assert_int_equal(gm_dataset_generate(&spec, false, &other, NULL), 0);
    assert_memory_not_equal(a.x, other.x, (size_t)a.n * 5 * sizeof(float));
    gm_dataset_free(&a);
    gm_dataset_free(&b);
    gm_dataset_free(&h);
    gm_dataset_free(&other);

    /* the noise-free points lie on their arms: radius t */
    float x[5];
    gm_dataset_point(&spec, 1, 0.5, x);
    assert_float_equal(sqrtf(x[0] * x[0] + x[1] * x[1]), 0.5f, 1e-5f);
    struct gm_error err = {0};
    spec.classes = 1;
    assert_int_equal(gm_dataset_generate(&spec, false, &a, &err), ORC_EINVAL);
    assert_non_null(strstr(err.msg, "classes"));
}

/* ---- the checkpoint ---- */

static void make_model(struct gm_model *m)
{
    assert_int_equal(gm_model_init(m, 3, 8, 4, 2, "test-model", NULL), 0);
    gm_model_init_params(m, 7);
    for (uint32_t i = 0; i < 3; i++) {
        m->mean[i] = 0.25f * (float)i;
        m->std[i] = 1.0f + (float)i;
    }
    for (uint32_t j = 0; j < 4; j++)
        m->params[m->b_off[2] + j] = 0.01f * (float)j;
    m->info.epochs = 5;
    m->info.samples = 1234;
    m->info.final_accuracy = 0.875f;
    snprintf(m->info.optimizer, sizeof(m->info.optimizer), "adam");
    snprintf(m->info.device, sizeof(m->info.device), "cpu");
}

static void test_checkpoint_roundtrip(void **state)
{
    char dir[256], path[512];
    struct gm_model m, back;
    struct gm_error err = {0};
    size_t len;

    (void)state;
    make_model(&m);
    assert_int_equal(test_mkdtemp(dir, sizeof(dir), "ckpt"), 0);
    snprintf(path, sizeof(path), "%s/model.bin", dir);
    assert_int_equal(gm_checkpoint_save(&m, path, &err), 0);
    unsigned char *bytes = (unsigned char *)test_read_file(path, &len);
    assert_non_null(bytes);
    /* header, mean + std, parameters, CRC */
    assert_int_equal(len, GM_CKPT_HEADER_SIZE + 8 * 3 + 4 * m.n_params + 4);
    assert_memory_equal(bytes, "GRMLP\r\n\x1a", 8);
    assert_int_equal(gm_get_u32(bytes + 8), GM_CKPT_VERSION);
    assert_int_equal(gm_get_u32(bytes + 16), 3);
    assert_int_equal(gm_get_u64(bytes + 32), m.n_params);
    assert_int_equal(gm_get_u32(bytes + len - 4), gm_crc32(0, bytes, len - 4));
    free(bytes);
    assert_int_equal(gm_checkpoint_load(&back, path, &err), 0);
    assert_string_equal(back.name, "test-model");
    assert_int_equal(back.inputs, 3);
    assert_int_equal(back.hidden, 8);
    assert_int_equal(back.classes, 4);
    assert_int_equal(back.n_hidden, 2);
    assert_int_equal(back.n_params, m.n_params);
    assert_memory_equal(back.params, m.params, m.n_params * sizeof(float));
    assert_memory_equal(back.mean, m.mean, 3 * sizeof(float));
    assert_memory_equal(back.std, m.std, 3 * sizeof(float));
    assert_int_equal(back.info.epochs, 5);
    assert_float_equal(back.info.final_accuracy, 0.875f, 0.0f);
    assert_string_equal(back.info.optimizer, "adam");
    /* the same model forward on both */
    float x[3] = {0.3f, -1.0f, 2.0f}, p1[4], p2[4];
    uint32_t l1, l2;
    assert_int_equal(gm_predict(&m, x, p1, &l1), 0);
    assert_int_equal(gm_predict(&back, x, p2, &l2), 0);
    assert_memory_equal(p1, p2, sizeof(p1));
    assert_int_equal(l1, l2);
    /* no temporary file left behind */
    snprintf(path, sizeof(path), "%s/model.bin.tmp.%ld", dir, (long)getpid());
    assert_false(file_exists(path));
    gm_model_free(&back);
    gm_model_free(&m);
    test_rm_tree(dir);
}

/* Decodes buf and expects ORC_EFORMAT with needle in the message. */
static void expect_bad(const unsigned char *buf, size_t len, const char *needle)
{
    struct gm_model m;
    struct gm_error err = {0};

    assert_int_equal(gm_checkpoint_decode(&m, buf, len, &err), ORC_EFORMAT);
    if (strstr(err.msg, needle) == NULL)
        fail_msg("expected '%s' in '%s'", needle, err.msg);
    assert_null(m.params);
}

static void recrc(unsigned char *buf, size_t len)
{
    gm_put_u32(buf + len - 4, gm_crc32(0, buf, len - 4));
}

static void test_checkpoint_corruption(void **state)
{
    struct gm_model m, ok;
    unsigned char *buf, *b;
    size_t len;
    struct gm_error err = {0};

    (void)state;
    make_model(&m);
    assert_int_equal(gm_checkpoint_encode(&m, &buf, &len), 0);
    b = malloc(len + 8);
    assert_non_null(b);
    assert_int_equal(gm_checkpoint_decode(&ok, buf, len, NULL), 0);
    gm_model_free(&ok);

    memcpy(b, buf, len); /* one flipped bit in a weight */
    b[len - 40] ^= 0x10;
    expect_bad(b, len, "checksum mismatch");
    expect_bad(buf, len - 1, "truncated");
    expect_bad(buf, 100, "truncated");
    expect_bad(buf, 6, "bad magic");
    memcpy(b, buf, len);
    memcpy(b + len, "junk", 4);
    expect_bad(b, len + 4, "trailing bytes");
    memcpy(b, buf, len);
    memcpy(b, "PK\x03\x04", 4);
    expect_bad(b, len, "not a gpu-train checkpoint");
    memcpy(b, buf, len); /* a text-mode transfer turned \r\n into \n */
    b[5] = '\n';
    memmove(b + 6, b + 7, len - 7);
    expect_bad(b, len - 1, "text-mode");
    memcpy(b, buf, len);
    gm_put_u32(b + 8, 2);
    expect_bad(b, len, "version 2");
    memcpy(b, buf, len); /* a consistent CRC, inconsistent dimensions */
    gm_put_u32(b + 20, 9);
    recrc(b, len);
    expect_bad(b, len, "parameters stored");
    memcpy(b, buf, len);
    gm_put_u32(b + 24, 1);
    recrc(b, len);
    expect_bad(b, len, "classes 1");
    memcpy(b, buf, len);
    gm_put_f32(b + GM_CKPT_HEADER_SIZE + 24, NAN); /* the first weight */
    recrc(b, len);
    expect_bad(b, len, "finite");
    memcpy(b, buf, len);
    gm_put_f32(b + GM_CKPT_HEADER_SIZE + 12, 0.0f); /* std[0] */
    recrc(b, len);
    expect_bad(b, len, "std of input 0");
    memcpy(b, buf, len);
    memset(b + 40, 0, GM_NAME_MAX);
    recrc(b, len);
    expect_bad(b, len, "name");
    /* a missing file says so, with its path */
    assert_int_equal(gm_checkpoint_load(&ok, "/nonexistent/ck.bin", &err), -ENOENT);
    assert_non_null(strstr(err.msg, "/nonexistent/ck.bin"));
    free(b);
    orc_free(buf);
    gm_model_free(&m);
}

/* ---- one step against the math ---- */

/* The mean cross-entropy of m on rows x (already normalised: mean 0, std 1). */
static double mean_loss(const struct gm_model *m, const float *x, const uint32_t *y, uint32_t n)
{
    float probs[64 * 3], work[4096];
    double l = 0.0;

    assert_true(gm_forward_work_size(m) <= 4096 && n * m->classes <= 64 * 3);
    gm_forward(m, x, n, probs, NULL, work);
    for (uint32_t r = 0; r < n; r++)
        l -= log((double)probs[r * m->classes + y[r]]);
    return l / n;
}

struct tiny {
    struct gm_model m;
    float x[8 * 2];
    uint32_t y[8], idx[8];
    struct gt_data data;
};

static void tiny_init(struct tiny *t)
{
    struct gm_rng rng;

    assert_int_equal(gm_model_init(&t->m, 2, 5, 3, 2, NULL, NULL), 0);
    gm_model_init_params(&t->m, 11);
    for (uint32_t j = 0; j < t->m.n_params; j++) /* biases off zero, too */
        t->m.params[j] += 0.05f * (float)((j * 7) % 5) - 0.1f;
    gm_rng_seed(&rng, 5, 0);
    for (int i = 0; i < 8; i++) {
        t->x[2 * i] = (float)gm_rng_normal(&rng);
        t->x[2 * i + 1] = (float)gm_rng_normal(&rng);
        t->y[i] = (uint32_t)i % 3;
        t->idx[i] = (uint32_t)i;
    }
    t->data = (struct gt_data){t->x, t->y, 8};
}

static void test_step_matches_math(void **state)
{
    struct tiny t;
    struct gt_backend be = {.ops = &gt_backend_cpu};
    struct gt_opt sgd = {.kind = GT_OPT_SGD, .lr = 1.0f, .momentum = 0.0f};
    float *p0, *p1;
    double loss_sum;
    uint64_t count;
    const float h = 1e-3f;
    double worst = 0.0;

    (void)state;
    tiny_init(&t);
    p0 = malloc(t.m.n_params * sizeof(float));
    p1 = malloc(t.m.n_params * sizeof(float));
    memcpy(p0, t.m.params, t.m.n_params * sizeof(float));
    /* one plain SGD step with lr 1: the parameters move by minus the gradient */
    assert_int_equal(be.ops->open(&be, &t.m, &sgd, &t.data, NULL, 8, NULL), 0);
    assert_int_equal(be.ops->step(&be, t.idx, 8, NULL), 0);
    assert_int_equal(be.ops->take_loss(&be, &loss_sum, &count, NULL), 0);
    assert_int_equal(count, 8);
    assert_float_equal(loss_sum / 8, mean_loss(&t.m, t.x, t.y, 8), 1e-5);
    assert_int_equal(be.ops->get_params(&be, p1, NULL), 0);
    be.ops->close(&be);
    /* against central differences of the loss */
    for (size_t j = 0; j < t.m.n_params; j++) {
        double g = (double)p0[j] - p1[j], num, lp, lm;

        t.m.params[j] = p0[j] + h;
        lp = mean_loss(&t.m, t.x, t.y, 8);
        t.m.params[j] = p0[j] - h;
        lm = mean_loss(&t.m, t.x, t.y, 8);
        t.m.params[j] = p0[j];
        num = (lp - lm) / (2.0 * h);
        double e = fabs(num - g) / (1e-3 + fabs(num));
        worst = e > worst ? e : worst;
        if (fabs(num - g) > 2e-3 + 2e-2 * fabs(num))
            fail_msg("parameter %zu: gradient %.6g, finite differences %.6g", j, g, num);
    }
    print_message("largest relative gradient error %.2e over %zu parameters\n", worst,
                  t.m.n_params);

    /* the first Adam step moves every parameter with a real gradient by about lr,
     * against the gradient's sign */
    struct gt_opt adam = {
        .kind = GT_OPT_ADAM, .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    float *p2 = malloc(t.m.n_params * sizeof(float));
    assert_int_equal(be.ops->open(&be, &t.m, &adam, &t.data, NULL, 8, NULL), 0);
    assert_int_equal(be.ops->step(&be, t.idx, 8, NULL), 0);
    assert_int_equal(be.ops->get_params(&be, p2, NULL), 0);
    be.ops->close(&be);
    for (size_t j = 0; j < t.m.n_params; j++) {
        double g = (double)p0[j] - p1[j], moved = (double)p2[j] - p0[j];

        if (fabs(g) < 1e-5)
            continue;
        assert_float_equal(fabs(moved), 0.01, 1e-4);
        assert_true(moved * g < 0);
    }

    /* SGD with momentum, two steps on the same batch: v2 = mu g1 + g2 */
    struct gt_opt mom = {.kind = GT_OPT_SGD, .lr = 0.1f, .momentum = 0.5f};
    float *p3 = malloc(t.m.n_params * sizeof(float));
    assert_int_equal(be.ops->open(&be, &t.m, &mom, &t.data, NULL, 8, NULL), 0);
    assert_int_equal(be.ops->step(&be, t.idx, 8, NULL), 0);
    assert_int_equal(be.ops->get_params(&be, p3, NULL), 0);
    for (size_t j = 0; j < t.m.n_params; j++) /* step 1: p0 - 0.1 g1 */
        assert_float_equal(p3[j], p0[j] - 0.1 * ((double)p0[j] - p1[j]), 1e-6);
    be.ops->close(&be);
    free(p0);
    free(p1);
    free(p2);
    free(p3);
    gm_model_free(&t.m);
}

/* ---- training ---- */

static void test_loss_falls_in_process(void **state)
{
    struct gt_config c;
    struct gt_result r;
    struct gm_error err = {0};
    struct gm_model again;

    (void)state;
    small_config(&c);
    if (gt_train(&c, &r, &err) < 0)
        fail_msg("gt_train: %s", err.msg);
    assert_int_equal(r.n_epochs, 3);
    assert_string_equal(r.device, "cpu");
    assert_true(r.epochs[2].loss < 0.8 * r.epochs[0].loss);
    assert_true(r.epochs[2].accuracy > 0.85);
    assert_int_equal(r.samples_seen, 3 * 10000);
    assert_int_equal(r.model.info.epochs, 3);
    print_message("loss %.4f %.4f %.4f, accuracy %.3f\n", r.epochs[0].loss, r.epochs[1].loss,
                  r.epochs[2].loss, r.epochs[2].accuracy);
    /* deterministic: the same settings give the same model */
    uint32_t crc = r.params_crc;
    memcpy(&again, &r.model, sizeof(again));
    r.model.params = r.model.mean = r.model.std = NULL; /* again owns them now */
    gt_result_free(&r);
    assert_int_equal(gt_train(&c, &r, &err), 0);
    assert_int_equal(r.params_crc, crc);
    assert_memory_equal(r.model.params, again.params, again.n_params * sizeof(float));
    gm_model_free(&again);
    gt_result_free(&r);
    /* SGD learns too */
    c.optimizer = GT_OPT_SGD;
    c.lr = 0.05f;
    assert_int_equal(gt_train(&c, &r, &err), 0);
    assert_true(r.epochs[2].loss < 0.9 * r.epochs[0].loss);
    gt_result_free(&r);
    /* a bad configuration names the option */
    c.batch = 0;
    assert_int_equal(gt_train(&c, &r, &err), ORC_EUSAGE);
    assert_non_null(strstr(err.msg, "--batch"));
}

static void test_binary_trains(void **state)
{
    char dir[256], ck[512], metrics[512], tmp[600];
    struct proc p;
    json_error_t je;
    struct gm_model m;

    (void)state;
    if (train_bin() == NULL)
        skip();
    assert_int_equal(test_mkdtemp(dir, sizeof(dir), "train"), 0);
    snprintf(ck, sizeof(ck), "%s/checkpoint.bin", dir);
    snprintf(metrics, sizeof(metrics), "%s/metrics.json", dir);
    snprintf(tmp, sizeof(tmp), "--metrics=%s", metrics); /* the --opt=value form */
    char *argv[] = {
        (char *)train_bin(), "--epochs", "3",     "--samples", "10000", "--hidden", "32",
        "--device",          "cpu",      "--out", ck,          tmp,     NULL};
    proc_start(&p, argv, NULL);
    assert_int_equal(proc_finish(&p, 20000), 0);
    for (int e = 1; e <= 3; e++) {
        char line[64];

        snprintf(line, sizeof(line), "epoch %d/3 loss ", e);
        assert_non_null(strstr(p.obuf, line));
    }
    assert_non_null(strstr(p.obuf, "device cpu"));
    json_t *j = json_load_file(metrics, 0, &je);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "device")), "cpu");
    assert_true(json_is_null(json_object_get(j, "gpu_name")));
    json_t *epochs = json_object_get(j, "epochs");
    assert_int_equal(json_array_size(epochs), 3);
    double first = json_number_value(json_object_get(json_array_get(epochs, 0), "loss"));
    double final = json_number_value(json_object_get(j, "final_loss"));
    assert_true(final < 0.8 * first);
    assert_true(json_number_value(json_object_get(j, "final_accuracy")) > 0.85);
    assert_int_equal(json_integer_value(json_object_get(j, "samples")), 10000);
    assert_int_equal(json_integer_value(json_object_get(j, "world_size")), 1);
    assert_true(json_integer_value(json_object_get(j, "params")) > 1000);
    assert_true(json_number_value(json_object_get(j, "seconds_total")) > 0);
    assert_true(json_number_value(json_object_get(j, "samples_per_second")) > 0);
    for (int e = 0; e < 3; e++) {
        json_t *o = json_array_get(epochs, (size_t)e);

        assert_int_equal(json_integer_value(json_object_get(o, "epoch")), e + 1);
        assert_true(json_is_number(json_object_get(o, "accuracy")));
        assert_true(json_is_number(json_object_get(o, "seconds")));
    }
    assert_int_equal(gm_checkpoint_load(&m, ck, NULL), 0);
    assert_int_equal((json_int_t)m.n_params, json_integer_value(json_object_get(j, "params")));
    assert_int_equal(m.info.epochs, 3);
    assert_string_equal(m.name, "mlp-classifier");
    gm_model_free(&m);
    json_decref(j);
    test_rm_tree(dir);
}

/* Runs gpu-train with args and env; expects status and needle on stderr. */
static void expect_fails(int status, const char *needle, const char *const env[], ...)
{
    char *argv[32] = {(char *)train_bin()};
    int n = 1;
    va_list ap;
    struct proc p;

    va_start(ap, env);
    for (char *a = va_arg(ap, char *); a && n < 30; a = va_arg(ap, char *))
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    proc_start(&p, argv, env);
    assert_int_equal(proc_finish(&p, 20000), status);
    if (strstr(p.ebuf, needle) == NULL)
        fail_msg("expected '%s' in stderr:\n%s", needle, p.ebuf);
}

static void test_binary_usage(void **state)
{
    static const char *const bad_world[] = {"WORLD_SIZE=two", NULL};
    static const char *const bad_rank[] = {"WORLD_SIZE=2", "RANK=2", NULL};

    (void)state;
    if (train_bin() == NULL)
        skip();
    expect_fails(2, "--epochs", NULL, "--epochs", "abc", NULL);
    expect_fails(2, "--epochs", NULL, "--epochs", "0", NULL);
    expect_fails(2, "--bogus", NULL, "--bogus", NULL);
    expect_fails(2, "--device", NULL, "--device", "tpu", NULL);
    expect_fails(2, "--lr", NULL, "--lr", "-1", NULL);
    expect_fails(2, "--batch", NULL, "--batch", NULL);
    expect_fails(2, "WORLD_SIZE", bad_world, NULL);
    expect_fails(2, "RANK", bad_rank, NULL);
    expect_fails(1, "cannot create", NULL, "--samples", "100", "--epochs", "1", "--out",
                 "/nonexistent/dir/ck.bin", NULL);
}

/* Whether this machine has a GPU the GPU backend can open. */
static bool gpu_usable(char *why, size_t len)
{
    struct tiny t;
    struct gt_backend be = {.ops = &gt_backend_gpu};
    struct gt_opt o = {.kind = GT_OPT_ADAM,
                       .lr = 0.01f,
                       .beta1 = 0.9f,
                       .beta2 = 0.999f,
                       .eps = 1e-8f,
                       .gpu_ordinal = -1};
    struct gm_error err = {0};
    bool ok;

    tiny_init(&t);
    ok = be.ops->open(&be, &t.m, &o, &t.data, &t.data, 8, &err) == 0;
    if (ok)
        be.ops->close(&be);
    snprintf(why, len, "%s", ok ? "" : err.msg);
    gm_model_free(&t.m);
    return ok;
}

static void test_devices(void **state)
{
    char why[256];
    struct proc p;

    (void)state;
    if (train_bin() == NULL)
        skip();
    if (gpu_usable(why, sizeof(why))) {
        /* a GPU machine: the two devices compute the same model */
        char *argv[] = {(char *)train_bin(), "--compare-devices", "--compare-steps", "50", NULL};
        proc_start(&p, argv, NULL);
        int st = proc_finish(&p, 60000);
        print_message("%s", p.obuf);
        assert_int_equal(st, 0);
        assert_non_null(strstr(p.obuf, "MATCH"));
        char *gpu[] = {
            (char *)train_bin(), "--device", "gpu", "--samples", "6000", "--out", "", NULL};
        proc_start(&p, gpu, NULL);
        assert_int_equal(proc_finish(&p, 60000), 0);
        assert_non_null(strstr(p.obuf, "device gpu"));
        return;
    }
    print_message("no usable GPU here (%s): checking the fallbacks\n", why);
    if (!gt_gpu_kernels_built_in())
        assert_non_null(strstr(why, "kernels not built in"));
    expect_fails(1, "--device gpu", NULL, "--device", "gpu", "--samples", "100", "--out", "", NULL);
    expect_fails(1, "--compare-devices", NULL, "--compare-devices", NULL);
    char *argv[] = {(char *)train_bin(), "--samples", "600", "--epochs", "1", "--out", "", NULL};
    proc_start(&p, argv, NULL);
    assert_int_equal(proc_finish(&p, 20000), 0);
    assert_non_null(strstr(p.obuf, "device cpu"));
    assert_non_null(strstr(p.ebuf, "training on the CPU"));
}

/* ---- distributed ---- */

struct ranks {
    struct proc p[2];
    char env[2][4][64];
    const char *envp[2][5];
};

static void start_rank(struct ranks *r, int rank, int port, char *const argv[])
{
    snprintf(r->env[rank][0], 64, "WORLD_SIZE=2");
    snprintf(r->env[rank][1], 64, "RANK=%d", rank);
    snprintf(r->env[rank][2], 64, "MASTER_PORT=%d", port);
    snprintf(r->env[rank][3], 64, "MASTER_ADDR=127.0.0.1");
    for (int i = 0; i < 4; i++)
        r->envp[rank][i] = r->env[rank][i];
    r->envp[rank][4] = NULL;
    proc_start(&r->p[rank], argv, r->envp[rank]);
}

static const char *crc_of(const char *out)
{
    const char *c = strstr(out, "params crc32 ");

    return c ? c + 13 : "";
}

static void test_dist_two_ranks(void **state)
{
    char dir[256], ck0[512], ck1[512], metrics[512];
    struct ranks r;
    int port = test_free_port();
    json_error_t je;

    (void)state;
    if (train_bin() == NULL)
        skip();
    assert_int_equal(test_mkdtemp(dir, sizeof(dir), "dist"), 0);
    snprintf(ck0, sizeof(ck0), "%s/rank0.bin", dir);
    snprintf(ck1, sizeof(ck1), "%s/rank1.bin", dir);
    snprintf(metrics, sizeof(metrics), "%s/metrics.json", dir);
    char *a1[] = {
        (char *)train_bin(), "--samples", "16000", "--epochs", "3",         "--device", "cpu",
        "--sync-steps",      "10",        "--out", ck1,        "--metrics", metrics,    NULL};
    char *a0[] = {
        (char *)train_bin(), "--samples", "16000", "--epochs", "3",         "--device", "cpu",
        "--sync-steps",      "10",        "--out", ck0,        "--metrics", metrics,    NULL};
    start_rank(&r, 1, port, a1); /* the worker first: it retries until rank 0 listens */
    start_rank(&r, 0, port, a0);
    assert_int_equal(proc_finish(&r.p[0], 20000), 0);
    assert_int_equal(proc_finish(&r.p[1], 20000), 0);
    assert_non_null(strstr(r.p[0].obuf, "rank 0/2"));
    assert_non_null(strstr(r.p[1].obuf, "rank 1/2"));
    /* the averaged model is the same bits on both ranks */
    assert_true(strlen(crc_of(r.p[0].obuf)) >= 8);
    assert_memory_equal(crc_of(r.p[0].obuf), crc_of(r.p[1].obuf), 8);
    /* only rank 0 writes */
    assert_true(file_exists(ck0));
    assert_false(file_exists(ck1));
    json_t *j = json_load_file(metrics, 0, &je);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "world_size")), 2);
    double acc = json_number_value(json_object_get(j, "final_accuracy"));
    print_message("two ranks: accuracy %.3f\n", acc);
    assert_true(acc > 0.85);
    char crc[16];
    snprintf(crc, sizeof(crc), "%.8s", crc_of(r.p[0].obuf));
    assert_string_equal(json_string_value(json_object_get(j, "params_crc32")), crc);
    json_decref(j);
    test_rm_tree(dir);
}

static void test_dist_missing_rank(void **state)
{
    static const char *const env0[] = {"WORLD_SIZE=2", "RANK=0", "GPU_TRAIN_CONNECT_TIMEOUT=1",
                                       NULL};
    static const char *const env1[] = {"WORLD_SIZE=2", "RANK=1", NULL};
    char port0[32], port1[32];
    const char *e0[5], *e1[4];
    int64_t t0 = mono_ms();
    struct proc p;

    (void)state;
    if (train_bin() == NULL)
        skip();
    snprintf(port0, sizeof(port0), "MASTER_PORT=%d", test_free_port());
    memcpy(e0, env0, sizeof(env0));
    e0[3] = port0;
    e0[4] = NULL;
    /* rank 0 waits one second for rank 1, which never comes */
    char *argv[] = {(char *)train_bin(), "--samples", "600", "--out", "", NULL};
    proc_start(&p, argv, e0);
    assert_int_equal(proc_finish(&p, 10000), 1);
    assert_non_null(strstr(p.ebuf, "missing: rank 1"));
    assert_non_null(strstr(p.ebuf, "within 1 s"));
    /* rank 1 finds nobody listening */
    snprintf(port1, sizeof(port1), "MASTER_PORT=%d", test_free_port());
    memcpy(e1, env1, 2 * sizeof(char *));
    e1[2] = port1;
    e1[3] = NULL;
    char *argv1[] = {(char *)train_bin(), "--samples", "600", "--connect-timeout", "0.5", NULL};
    proc_start(&p, argv1, e1);
    assert_int_equal(proc_finish(&p, 10000), 1);
    assert_non_null(strstr(p.ebuf, "cannot reach rank 0"));
    assert_true(mono_ms() - t0 < 8000);
}

/* Starts two ranks with many epochs, kills victim once both run, and
 * expects the survivor to fail quickly naming the dead one. */
static void dist_kill(int victim, const char *needle)
{
    struct ranks r;
    int port = test_free_port(), survivor = 1 - victim;
    char *argv[] = {(char *)train_bin(), "--samples", "20000", "--hidden", "32", "--epochs", "200",
                    "--device",          "cpu",       "--out", "",         NULL};

    start_rank(&r, 1, port, argv);
    start_rank(&r, 0, port, argv);
    assert_true(proc_wait_for(&r.p[survivor], "epoch 1/200", 15000));
    kill(r.p[victim].pid, SIGKILL);
    assert_int_equal(proc_finish(&r.p[victim], 5000), 128 + SIGKILL);
    int64_t t0 = mono_ms();
    assert_int_equal(proc_finish(&r.p[survivor], 10000), 1);
    assert_true(mono_ms() - t0 < 5000);
    if (strstr(r.p[survivor].ebuf, needle) == NULL)
        fail_msg("expected '%s' in:\n%s", needle, r.p[survivor].ebuf);
}

static void test_dist_rank_dies(void **state)
{
    (void)state;
    if (train_bin() == NULL)
        skip();
    dist_kill(1, "rank 1 closed the connection");
    dist_kill(0, "rank 0");
}

static void test_dist_mismatch(void **state)
{
    struct ranks r;
    int port = test_free_port();
    char *a0[] = {(char *)train_bin(), "--samples", "600", "--out", "", NULL};
    char *a1[] = {(char *)train_bin(), "--samples", "600", "--hidden", "16", "--out", "", NULL};

    (void)state;
    if (train_bin() == NULL)
        skip();
    start_rank(&r, 1, port, a1);
    start_rank(&r, 0, port, a0);
    assert_int_equal(proc_finish(&r.p[0], 10000), 1);
    assert_int_equal(proc_finish(&r.p[1], 10000), 1);
    assert_non_null(strstr(r.p[0].ebuf, "--hidden differs"));
    assert_non_null(strstr(r.p[1].ebuf, "--hidden differs"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_data_deterministic),    cmocka_unit_test(test_checkpoint_roundtrip),
        cmocka_unit_test(test_checkpoint_corruption), cmocka_unit_test(test_step_matches_math),
        cmocka_unit_test(test_loss_falls_in_process), cmocka_unit_test(test_binary_trains),
        cmocka_unit_test(test_binary_usage),          cmocka_unit_test(test_devices),
        cmocka_unit_test(test_dist_two_ranks),        cmocka_unit_test(test_dist_missing_rank),
        cmocka_unit_test(test_dist_rank_dies),        cmocka_unit_test(test_dist_mismatch),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
