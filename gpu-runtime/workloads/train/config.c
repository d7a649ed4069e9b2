/*
 * gpu-train's settings (train.h): the defaults, the distributed-training
 * variables gpu-agent sets (WORLD_SIZE, RANK, MASTER_ADDR, MASTER_PORT) and
 * the checks of a whole configuration. Messages name the option or variable.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train.h"

void gt_config_default(struct gt_config *c)
{
    memset(c, 0, sizeof(*c));
    c->epochs = 3;
    c->samples = 80000;
    c->batch = 64;
    c->hidden = 64;
    c->layers = 2;
    c->inputs = 2;
    c->classes = 3;
    c->seed = 1;
    c->lr = 0.01f;
    c->momentum = 0.9f;
    c->beta1 = 0.9f;
    c->beta2 = 0.999f;
    c->eps = 1e-8f;
    c->label_noise = 0.02f;
    c->optimizer = GT_OPT_ADAM;
    c->device = GT_DEVICE_AUTO;
    snprintf(c->name, sizeof(c->name), "%s", GM_DEFAULT_NAME);
    c->out = "checkpoint.bin";
    c->metrics = NULL;
    c->world = 1;
    c->rank = 0;
    snprintf(c->master_addr, sizeof(c->master_addr), "127.0.0.1");
    c->master_port = 29500;
    c->sync_steps = 0;
    c->connect_timeout_ms = 60000;
    c->sync_timeout_ms = 600000;
    c->gpu_ordinal = -1;
}

/* An unsigned decimal in [min, max] from variable name; unset leaves *out. */
static int env_uint(const char *name, unsigned long min, unsigned long max, unsigned long *out,
                    struct gm_error *err)
{
    const char *s = getenv(name);
    char *end;
    unsigned long v;

    if (s == NULL || *s == '\0')
        return 0;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || *end || end == s || *s == '-' || v < min || v > max)
        return gm_failf(err, ORC_EUSAGE, "%s='%.64s': expected a whole number in %lu..%lu", name, s,
                        min, max);
    *out = v;
    return 0;
}

/* Seconds (fractions allowed) in (0, 1 day] into milliseconds. */
static int env_seconds(const char *name, uint32_t *ms, struct gm_error *err)
{
    const char *s = getenv(name);
    char *end;
    double v;

    if (s == NULL || *s == '\0')
        return 0;
    v = strtod(s, &end);
    if (*end || end == s || !(v > 0.0) || v > 86400.0)
        return gm_failf(err, ORC_EUSAGE, "%s='%.64s': expected seconds in (0, 86400]", name, s);
    *ms = (uint32_t)ceil(v * 1000.0);
    return 0;
}

int gt_config_from_env(struct gt_config *c, struct gm_error *err)
{
    unsigned long world = c->world, rank = c->rank, port = c->master_port;
    const char *addr = getenv("MASTER_ADDR");
    int rc;

    rc = env_uint("WORLD_SIZE", 1, 1024, &world, err);
    if (rc == 0)
        rc = env_uint("RANK", 0, 1023, &rank, err);
    if (rc == 0)
        rc = env_uint("MASTER_PORT", 1, 65535, &port, err);
    if (rc == 0)
        rc = env_seconds("GPU_TRAIN_CONNECT_TIMEOUT", &c->connect_timeout_ms, err);
    if (rc == 0)
        rc = env_seconds("GPU_TRAIN_SYNC_TIMEOUT", &c->sync_timeout_ms, err);
    if (rc < 0)
        return rc;
    if (addr && *addr) {
        if (strlen(addr) >= sizeof(c->master_addr))
            return gm_failf(err, ORC_EUSAGE, "MASTER_ADDR: longer than %zu characters",
                            sizeof(c->master_addr) - 1);
        snprintf(c->master_addr, sizeof(c->master_addr), "%s", addr);
    }
    c->world = (uint32_t)world;
    c->rank = (uint32_t)rank;
    c->master_port = (uint16_t)port;
    if (c->rank >= c->world)
        return gm_failf(err, ORC_EUSAGE, "RANK=%u: must be below WORLD_SIZE=%u", c->rank, c->world);
    return 0;
}

int gt_config_check(const struct gt_config *c, struct gm_error *err)
{
    if (c->epochs < 1 || c->epochs > 100000)
        return gm_failf(err, ORC_EUSAGE, "--epochs %u: must be 1..100000", c->epochs);
    if (c->samples < 10 || c->samples > 50000000)
        return gm_failf(err, ORC_EUSAGE, "--samples %u: must be 10..50000000", c->samples);
    if (c->batch < 1 || c->batch > 65536)
        return gm_failf(err, ORC_EUSAGE, "--batch %u: must be 1..65536", c->batch);
    if (c->hidden < 1 || c->hidden > GM_MAX_HIDDEN)
        return gm_failf(err, ORC_EUSAGE, "--hidden %u: must be 1..%u", c->hidden, GM_MAX_HIDDEN);
    if (c->layers < 1 || c->layers > GM_MAX_HIDDEN_LAYERS)
        return gm_failf(err, ORC_EUSAGE, "--layers %u: must be 1..%u", c->layers,
                        GM_MAX_HIDDEN_LAYERS);
    if (c->inputs < 2 || c->inputs > GM_MAX_INPUTS)
        return gm_failf(err, ORC_EUSAGE, "--data-dim %u: must be 2..%u", c->inputs, GM_MAX_INPUTS);
    if (c->classes < 2 || c->classes > GM_MAX_CLASSES)
        return gm_failf(err, ORC_EUSAGE, "--classes %u: must be 2..%u", c->classes, GM_MAX_CLASSES);
    if (!(c->lr > 0.0f) || c->lr > 10.0f)
        return gm_failf(err, ORC_EUSAGE, "--lr %g: must be in (0, 10]", (double)c->lr);
    if (!(c->momentum >= 0.0f && c->momentum < 1.0f))
        return gm_failf(err, ORC_EUSAGE, "--momentum %g: must be in [0, 1)", (double)c->momentum);
    if (!(c->label_noise >= 0.0f && c->label_noise <= 1.0f))
        return gm_failf(err, ORC_EUSAGE, "--label-noise %g: must be in [0, 1]",
                        (double)c->label_noise);
    if (!(c->beta1 >= 0.0f && c->beta1 < 1.0f) || !(c->beta2 >= 0.0f && c->beta2 < 1.0f) ||
        !(c->eps > 0.0f))
        return gm_failf(err, ORC_EUSAGE, "adam: beta1 and beta2 in [0, 1), eps > 0");
    if (c->world < 1 || c->world > 1024 || c->rank >= c->world)
        return gm_failf(err, ORC_EUSAGE,
                        "RANK %u / WORLD_SIZE %u: need 0 <= RANK < WORLD_SIZE <= 1024", c->rank,
                        c->world);
    if (c->world > c->samples)
        return gm_failf(err, ORC_EUSAGE, "--samples %u: fewer than the %u ranks", c->samples,
                        c->world);
    if ((uint64_t)c->hidden * c->hidden * c->layers > GM_MAX_PARAMS)
        return gm_failf(err, ORC_EUSAGE, "--hidden %u with --layers %u: too many parameters",
                        c->hidden, c->layers);
    return 0;
}
