/*
 * The training loop of gpu-train (train.h): it generates the data, shards it
 * (rank r takes the samples i with i % world == r), normalises it with the
 * statistics of the whole training set (the same on every rank), picks the
 * backend (auto: the GPU when one is usable), runs the epochs in shuffled
 * mini-batches, averages with the other ranks (dist.h), evaluates on the
 * held-out split and writes the checkpoint and the metrics (rank 0 only).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../../orchestrator/base.h"
#include "dist.h"
#include "gm_bytes.h"
#include "train.h"

struct run {
    const struct gt_config *c;
    struct gm_model *m;     /* the result's model */
    struct gm_dataset all;  /* the training split, all ranks' samples */
    struct gm_dataset held; /* the held-out split (raw) */
    float *shard_x;         /* this rank's samples, normalised */
    uint32_t *shard_y;
    uint32_t shard_n, max_shard;
    float *eval_x;   /* the held-out split, normalised */
    uint32_t *order; /* the shuffled order of the shard */
    struct gt_backend be;
    bool be_open;
    struct gt_dist dist;
    bool dist_open;
};

static double mono_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void gt_result_free(struct gt_result *r)
{
    if (r == NULL)
        return;
    gm_model_free(&r->model);
    orc_free(r->epochs);
    r->epochs = NULL;
    r->n_epochs = 0;
}

static void data_spec(const struct gt_config *c, struct gm_data_spec *spec)
{
    gm_data_spec_default(spec);
    spec->seed = c->seed;
    spec->samples = c->samples;
    spec->inputs = c->inputs;
    spec->classes = c->classes;
    spec->label_noise = c->label_noise;
}

static void normalise(const struct gm_model *m, const float *x, uint32_t n, float *out)
{
    const uint32_t d = m->inputs;

    for (size_t r = 0; r < n; r++)
        for (uint32_t i = 0; i < d; i++)
            out[r * d + i] = (x[r * d + i] - m->mean[i]) / m->std[i];
}

/* The data, the model (initialised from the seed) and this rank's shard. */
static int run_prepare(struct run *run, struct gm_error *err)
{
    const struct gt_config *c = run->c;
    struct gm_data_spec spec;
    const uint32_t d = c->inputs;
    int rc;

    data_spec(c, &spec);
    rc = gm_dataset_generate(&spec, false, &run->all, err);
    if (rc == 0)
        rc = gm_dataset_generate(&spec, true, &run->held, err);
    if (rc == 0)
        rc = gm_model_init(run->m, c->inputs, c->hidden, c->classes, c->layers, c->name, err);
    if (rc < 0)
        return rc;
    gm_dataset_stats(&run->all, run->m->mean, run->m->std);
    gm_model_init_params(run->m, c->seed);
    run->max_shard = (c->samples + c->world - 1) / c->world;
    run->shard_n = c->samples / c->world + (c->rank < c->samples % c->world ? 1 : 0);
    run->shard_x = orc_malloc((size_t)run->shard_n * d * sizeof(float));
    run->shard_y = orc_malloc((size_t)run->shard_n * sizeof(uint32_t));
    run->order = orc_malloc((size_t)run->shard_n * sizeof(uint32_t));
    run->eval_x = orc_malloc((size_t)run->held.n * d * sizeof(float));
    if (!run->shard_x || !run->shard_y || !run->order || !run->eval_x)
        return gm_failf(err, ORC_ENOMEM, "out of memory for the data");
    for (uint32_t i = c->rank, j = 0; i < c->samples; i += c->world, j++) {
        normalise(run->m, run->all.x + (size_t)i * d, 1, run->shard_x + (size_t)j * d);
        run->shard_y[j] = run->all.y[i];
        run->order[j] = j;
    }
    normalise(run->m, run->held.x, run->held.n, run->eval_x);
    return 0;
}

static void opt_from(const struct gt_config *c, struct gt_opt *o)
{
    o->kind = c->optimizer;
    o->lr = c->lr;
    o->momentum = c->momentum;
    o->beta1 = c->beta1;
    o->beta2 = c->beta2;
    o->eps = c->eps;
    o->gpu_ordinal = c->gpu_ordinal;
}

static int open_one(struct run *run, const struct gt_backend_ops *ops, struct gm_error *err)
{
    const struct gt_data train = {run->shard_x, run->shard_y, run->shard_n};
    const struct gt_data eval = {run->eval_x, run->held.y, run->held.n};
    struct gt_opt opt;
    uint32_t max_batch = run->c->batch < run->shard_n ? run->c->batch : run->shard_n;
    int rc;

    opt_from(run->c, &opt);
    memset(&run->be, 0, sizeof(run->be));
    run->be.ops = ops;
    rc = ops->open(&run->be, run->m, &opt, &train, &eval, max_batch, err);
    run->be_open = rc == 0;
    return rc;
}

/* --device: gpu must work; auto falls back to the CPU and says why. */
static int run_backend(struct run *run, struct gt_result *r, struct gm_error *err)
{
    struct gm_error why = {0};
    int rc;

    if (run->c->device != GT_DEVICE_CPU) {
        rc = open_one(run, &gt_backend_gpu, &why);
        if (rc == 0) {
            snprintf(r->device, sizeof(r->device), "gpu");
            snprintf(r->gpu_name, sizeof(r->gpu_name), "%s", run->be.device_name);
            return 0;
        }
        if (run->c->device == GT_DEVICE_GPU)
            return gm_failf(err, rc == ORC_ENOMEM ? rc : ORC_ENOTSUP, "--device gpu: %s", why.msg);
        snprintf(r->fallback, sizeof(r->fallback), "%s", why.msg);
        orc_log(ORC_LOG_INFO, "gpu-train", "no usable GPU (%s): training on the CPU", why.msg);
    }
    snprintf(r->device, sizeof(r->device), "cpu");
    return open_one(run, &gt_backend_cpu, err);
}

/* Averages the parameters (and the loss totals) with the other ranks. */
static int run_sync(struct run *run, double *loss, uint64_t *count, struct gm_error *err)
{
    int rc = run->be.ops->get_params(&run->be, run->m->params, err);

    if (rc == 0)
        rc = gt_dist_average(&run->dist, run->m->params, loss, count, err);
    if (rc == 0)
        rc = run->be.ops->set_params(&run->be, run->m->params, err);
    return rc;
}

static int run_evaluate(struct run *run, double *accuracy, struct gm_error *err)
{
    uint32_t correct = 0, labels[256];
    float *work, *probs;
    int rc;

    if (run->be.ops->evaluate) {
        rc = run->be.ops->evaluate(&run->be, &correct, err);
        *accuracy = (double)correct / run->held.n;
        return rc;
    }
    rc = run->be.ops->get_params(&run->be, run->m->params, err);
    if (rc < 0)
        return rc;
    work = orc_malloc(gm_forward_work_size(run->m) * sizeof(float));
    probs = orc_malloc(256 * (size_t)run->m->classes * sizeof(float));
    if (work == NULL || probs == NULL) {
        orc_free(work);
        orc_free(probs);
        return gm_failf(err, ORC_ENOMEM, "out of memory");
    }
    for (uint32_t r0 = 0; r0 < run->held.n; r0 += 256) {
        uint32_t n = run->held.n - r0 < 256 ? run->held.n - r0 : 256;

        gm_forward(run->m, run->held.x + (size_t)r0 * run->m->inputs, n, probs, labels, work);
        for (uint32_t i = 0; i < n; i++)
            correct += labels[i] == run->held.y[r0 + i];
    }
    orc_free(work);
    orc_free(probs);
    *accuracy = (double)correct / run->held.n;
    return 0;
}

static void shuffle(uint32_t *a, uint32_t n, struct gm_rng *rng)
{
    for (uint32_t i = n; i > 1; i--) {
        uint32_t j = gm_rng_below(rng, i), t = a[i - 1];

        a[i - 1] = a[j];
        a[j] = t;
    }
}

/* One epoch: every rank takes the same number of steps (that of the largest
 * shard), so that the averages line up. */
static int run_epoch(struct run *run, uint32_t e, struct gt_epoch *out, uint64_t *seen,
                     struct gm_error *err)
{
    const struct gt_config *c = run->c;
    const uint32_t b = c->batch, steps = (run->max_shard + b - 1) / b;
    double t0 = mono_s(), loss = 0.0, ignored = 0.0;
    uint64_t count = 0, none = 0;
    struct gm_rng rng;
    int rc = 0;

    gm_rng_seed(&rng, c->seed, 1000 + (uint64_t)e * c->world + c->rank);
    shuffle(run->order, run->shard_n, &rng);
    for (uint32_t s = 0; s < steps && rc == 0; s++) {
        uint32_t lo = s * b, hi = lo + b < run->shard_n ? lo + b : run->shard_n;

        if (lo < hi)
            rc = run->be.ops->step(&run->be, run->order + lo, hi - lo, err);
        if (rc == 0 && c->world > 1 && c->sync_steps && (s + 1) % c->sync_steps == 0 &&
            s + 1 < steps)
            rc = run_sync(run, &ignored, &none, err);
    }
    if (rc == 0)
        rc = run->be.ops->take_loss(&run->be, &loss, &count, err);
    if (rc == 0 && c->world > 1)
        rc = run_sync(run, &loss, &count, err);
    if (rc == 0)
        rc = run_evaluate(run, &out->accuracy, err);
    if (rc < 0)
        return rc;
    out->epoch = e;
    out->loss = count ? loss / (double)count : 0.0;
    out->seconds = mono_s() - t0;
    *seen += count;
    if (!c->quiet) {
        printf("epoch %u/%u loss %.4f acc %.3f time %.2fs device %s", e, c->epochs, out->loss,
               out->accuracy, out->seconds, run->be.ops->name);
        if (c->world > 1)
            printf(" rank %u/%u", c->rank, c->world);
        printf("\n");
        fflush(stdout);
    }
    return 0;
}

static uint32_t params_crc(const struct gm_model *m)
{
    unsigned char chunk[4096];
    uint32_t crc = 0;

    for (size_t i = 0; i < m->n_params; i += sizeof(chunk) / 4) {
        size_t n = m->n_params - i < sizeof(chunk) / 4 ? m->n_params - i : sizeof(chunk) / 4;

        gm_put_f32s(chunk, m->params + i, n);
        crc = gm_crc32(crc, chunk, n * 4);
    }
    return crc;
}

static int run_finish(struct run *run, struct gt_result *r, struct gm_error *err)
{
    const struct gt_config *c = run->c;
    struct gm_train_info *in = &run->m->info;
    int rc = run->be.ops->get_params(&run->be, run->m->params, err);

    if (rc < 0)
        return rc;
    in->seed = c->seed;
    in->epochs = c->epochs;
    in->samples = c->samples;
    in->world_size = c->world;
    in->batch = c->batch;
    in->lr = c->lr;
    in->final_loss = (float)r->epochs[r->n_epochs - 1].loss;
    in->final_accuracy = (float)r->epochs[r->n_epochs - 1].accuracy;
    in->label_noise = c->label_noise;
    snprintf(in->optimizer, sizeof(in->optimizer), "%s",
             c->optimizer == GT_OPT_SGD ? "sgd" : "adam");
    snprintf(in->device, sizeof(in->device), "%s", r->device);
    r->params_crc = params_crc(run->m);
    if (c->rank != 0)
        return 0;
    if (c->out && *c->out) {
        rc = gm_checkpoint_save(run->m, c->out, err);
        if (rc < 0)
            return rc;
    }
    if (c->metrics && *c->metrics) {
        json_t *j = gt_metrics_json(c, r);

        if (j == NULL)
            return gm_failf(err, ORC_ENOMEM, "out of memory");
        rc = gt_write_json(c->metrics, j, err);
        json_decref(j);
    }
    return rc;
}

static void run_free(struct run *run)
{
    if (run->be_open)
        run->be.ops->close(&run->be);
    run->be_open = false;
    if (run->dist_open)
        gt_dist_close(&run->dist);
    run->dist_open = false;
    gm_dataset_free(&run->all);
    gm_dataset_free(&run->held);
    orc_free(run->shard_x);
    orc_free(run->shard_y);
    orc_free(run->eval_x);
    orc_free(run->order);
}

int gt_train(const struct gt_config *c, struct gt_result *r, struct gm_error *err)
{
    struct run run = {.c = c, .m = &r->model};
    double t0 = mono_s();
    uint64_t seen = 0;
    int rc;

    memset(r, 0, sizeof(*r));
    r->world = c->world;
    r->rank = c->rank;
    rc = gt_config_check(c, err);
    if (rc < 0)
        return rc;
    r->epochs = orc_calloc(c->epochs, sizeof(*r->epochs));
    if (r->epochs == NULL)
        return gm_failf(err, ORC_ENOMEM, "out of memory");
    rc = run_prepare(&run, err);
    if (rc == 0)
        rc = run_backend(&run, r, err);
    if (rc == 0 && c->world > 1) {
        rc = gt_dist_open(&run.dist, c, run.m->n_params, err);
        run.dist_open = rc == 0;
    }
    for (uint32_t e = 1; rc == 0 && e <= c->epochs; e++) {
        rc = run_epoch(&run, e, &r->epochs[e - 1], &seen, err);
        r->n_epochs = rc == 0 ? e : r->n_epochs;
    }
    r->seconds_total = mono_s() - t0;
    r->samples_seen = seen;
    r->samples_per_second = r->seconds_total > 0 ? (double)seen / r->seconds_total : 0.0;
    if (rc == 0)
        rc = run_finish(&run, r, err);
    run_free(&run);
    if (rc < 0)
        gt_result_free(r);
    return rc;
}

/* ---- --compare-devices ---- */

/* Runs steps steps on the open backend be from the shared order; the loss of
 * the first step into *first, the mean loss of the others into *rest. */
static int compare_run(struct run *run, struct gt_backend *be, uint32_t steps, double *first,
                       double *rest, struct gm_error *err)
{
    const uint32_t b = run->c->batch < run->shard_n ? run->c->batch : run->shard_n;
    double sum = 0.0;
    uint64_t count = 0;
    int rc = 0;

    *first = *rest = 0.0;
    for (uint32_t s = 0; s < steps && rc == 0; s++) {
        uint32_t lo = (uint32_t)(((uint64_t)s * b) % (run->shard_n - b + 1));

        rc = be->ops->step(be, run->order + lo, b, err);
        if (rc == 0 && (s == 0 || s + 1 == steps))
            rc = be->ops->take_loss(be, &sum, &count, err);
        if (rc == 0 && s == 0)
            *first = count ? sum / (double)count : 0.0;
        else if (rc == 0 && s + 1 == steps)
            *rest = count ? sum / (double)count : 0.0;
    }
    return rc;
}

static double rel_diff(double a, double b)
{
    double m = fabs(a) > fabs(b) ? fabs(a) : fabs(b);

    return m > 0 ? fabs(a - b) / m : 0.0;
}

int gt_compare_devices(const struct gt_config *c0, uint32_t steps, struct gm_error *err)
{
    struct gt_config c = *c0;
    struct gt_result r = {0};
    struct run run = {.c = &c, .m = &r.model};
    struct gt_backend gpu = {0};
    float *pg = NULL;
    double f_cpu, r_cpu, f_gpu, r_gpu, dmax = 0.0, pmax = 0.0;
    int rc;

    c.world = 1;
    c.rank = 0;
    rc = gt_config_check(&c, err);
    if (rc == 0)
        rc = run_prepare(&run, err);
    if (rc == 0) {
        struct gm_error why = {0};

        rc = open_one(&run, &gt_backend_gpu, &why);
        gpu = run.be; /* keep the GPU one; the CPU one goes into run.be */
        if (rc < 0)
            rc = gm_failf(err, rc == ORC_ENOMEM ? rc : ORC_ENOTSUP,
                          "--compare-devices needs a usable GPU: %s", why.msg);
        run.be_open = false;
    }
    if (rc == 0)
        rc = open_one(&run, &gt_backend_cpu, err);
    if (rc == 0)
        rc = compare_run(&run, &run.be, steps, &f_cpu, &r_cpu, err);
    if (rc == 0)
        rc = compare_run(&run, &gpu, steps, &f_gpu, &r_gpu, err);
    pg = rc == 0 ? orc_malloc(r.model.n_params * sizeof(float)) : NULL;
    if (rc == 0 && pg == NULL)
        rc = gm_failf(err, ORC_ENOMEM, "out of memory");
    if (rc == 0)
        rc = run.be.ops->get_params(&run.be, r.model.params, err);
    if (rc == 0)
        rc = gpu.ops->get_params(&gpu, pg, err);
    if (rc == 0) {
        for (size_t i = 0; i < r.model.n_params; i++) {
            double dd = fabs((double)r.model.params[i] - pg[i]);

            dmax = dd > dmax ? dd : dmax;
            pmax = fabs(pg[i]) > pmax ? fabs(pg[i]) : pmax;
        }
        printf("compare-devices: %u steps of %u rows, %zu parameters, optimizer %s, gpu %s\n",
               steps, c.batch < run.shard_n ? c.batch : run.shard_n, r.model.n_params,
               c.optimizer == GT_OPT_SGD ? "sgd" : "adam", gpu.device_name);
        printf("step 1 loss cpu %.6f gpu %.6f rel diff %.2e\n", f_cpu, f_gpu,
               rel_diff(f_cpu, f_gpu));
        if (steps > 1)
            printf("steps 2-%u mean loss cpu %.6f gpu %.6f rel diff %.2e\n", steps, r_cpu, r_gpu,
                   rel_diff(r_cpu, r_gpu));
        printf("max |param cpu - gpu| %.3e (largest |param| %.3f)\n", dmax, pmax);
        bool same = rel_diff(f_cpu, f_gpu) < 1e-3 && rel_diff(r_cpu, r_gpu) < 1e-3;
        printf("compare-devices: %s\n", same ? "MATCH" : "MISMATCH");
        fflush(stdout);
        if (!same)
            rc = gm_failf(err, ORC_EIO, "CPU and GPU losses differ by more than 1e-3 (relative)");
    }
    if (gpu.state)
        gpu.ops->close(&gpu);
    orc_free(pg);
    run_free(&run);
    gt_result_free(&r);
    return rc;
}

/* ---- the metrics ---- */

json_t *gt_metrics_json(const struct gt_config *c, const struct gt_result *r)
{
    json_t *epochs = json_array(), *j;
    char crc[16];

    if (epochs == NULL)
        return NULL;
    for (uint32_t i = 0; i < r->n_epochs; i++)
        json_array_append_new(
            epochs, json_pack("{s:i, s:f, s:f, s:f}", "epoch", (json_int_t)r->epochs[i].epoch,
                              "loss", r->epochs[i].loss, "accuracy", r->epochs[i].accuracy,
                              "seconds", r->epochs[i].seconds));
    snprintf(crc, sizeof(crc), "%08x", r->params_crc);
    j = json_pack("{s:s, s:o, s:o, s:f, s:f, s:i, s:I, s:i, s:f, s:f}", "device", r->device,
                  "gpu_name", r->gpu_name[0] ? json_string(r->gpu_name) : json_null(), "epochs",
                  epochs, "final_loss", r->n_epochs ? r->epochs[r->n_epochs - 1].loss : 0.0,
                  "final_accuracy", r->n_epochs ? r->epochs[r->n_epochs - 1].accuracy : 0.0,
                  "samples", (int)c->samples, "params", (json_int_t)r->model.n_params, "world_size",
                  (int)r->world, "seconds_total", r->seconds_total, "samples_per_second",
                  r->samples_per_second);
    if (j == NULL)
        return NULL;
    json_object_set_new(j, "model", json_string(r->model.name));
    json_object_set_new(j, "params_crc32", json_string(crc));
    json_object_set_new(j, "checkpoint", c->out && *c->out ? json_string(c->out) : json_null());
    json_object_set_new(j, "fallback", r->fallback[0] ? json_string(r->fallback) : json_null());
    json_object_set_new(j, "config",
                        json_pack("{s:i, s:i, s:i, s:i, s:i, s:f, s:s, s:I, s:i}", "epochs",
                                  (int)c->epochs, "batch", (int)c->batch, "hidden", (int)c->hidden,
                                  "layers", (int)c->layers, "data_dim", (int)c->inputs, "lr",
                                  (double)c->lr, "optimizer",
                                  c->optimizer == GT_OPT_SGD ? "sgd" : "adam", "seed",
                                  (json_int_t)c->seed, "classes", (int)c->classes));
    return j;
}

int gt_write_json(const char *path, const json_t *j, struct gm_error *err)
{
    char tmp[4096];
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    FILE *f;
    int rc = 0;

    if (text == NULL)
        return gm_failf(err, ORC_ENOMEM, "out of memory");
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp)) {
        orc_free(text);
        return gm_failf(err, ORC_EINVAL, "%s: path too long", path);
    }
    f = fopen(tmp, "w");
    if (f == NULL) {
        rc = gm_failf(err, ORC_EIO, "%s: cannot create: %s", tmp, strerror(errno));
        goto out_free;
    }
    if (fputs(text, f) < 0 || fputc('\n', f) < 0)
        rc = ORC_EIO;
    if (fclose(f) != 0)
        rc = ORC_EIO;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = ORC_EIO;
    if (rc < 0) {
        gm_failf(err, rc, "%s: cannot write: %s", path, strerror(errno));
        unlink(tmp);
    }
out_free:
    orc_free(text);
    return rc;
}
