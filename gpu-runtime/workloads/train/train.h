/*
 * gpu-train's library (libgputrain.a): everything but the command line.
 *   trainer.c      the training loop: data, sharding, batches, epochs, the
 *                  metrics, the checkpoint, --compare-devices
 *   backend_cpu.c  forward, backward and the optimiser in plain C
 *   backend_gpu.c  the same with the CUDA kernels of train_kernels.cu, through
 *                  gpu-runtime/common/cuda.h (dlopen of the driver)
 *   dist.c         distributed data-parallel training over TCP (dist.h)
 *   config.c       settings from the command line and the environment
 * Errors: 0 or a negative ORC_E* code (orc/errno.h) with a struct gm_error.
 * Single-threaded: one training run per process at a time.
 */
#ifndef GR_TRAIN_H
#define GR_TRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "gm_model.h"

#define GPU_TRAIN_VERSION "0.1.0"

enum gt_device { GT_DEVICE_AUTO, GT_DEVICE_CPU, GT_DEVICE_GPU };
enum gt_optimizer { GT_OPT_ADAM, GT_OPT_SGD };

/* Everything a run depends on. gt_config_default() sets the defaults noted. */
struct gt_config {
    uint32_t epochs;             /* 3 */
    uint32_t samples;            /* 80000 training samples (all ranks together) */
    uint32_t batch;              /* 64 */
    uint32_t hidden;             /* 64 */
    uint32_t layers;             /* 2 hidden layers */
    uint32_t inputs;             /* D: 2 */
    uint32_t classes;            /* K: 3 */
    uint64_t seed;               /* 1 */
    float lr;                    /* 0.01 (adam), 0.05 is a fair start for sgd */
    float momentum;              /* sgd: 0.9 */
    float beta1, beta2;          /* adam: 0.9, 0.999 */
    float eps;                   /* adam: 1e-8 */
    float label_noise;           /* 0.02 */
    enum gt_optimizer optimizer; /* adam */
    enum gt_device device;       /* auto */
    char name[GM_NAME_MAX];      /* the model's name: "mlp-classifier" */
    const char *out;             /* checkpoint path ("checkpoint.bin"; NULL or "": none) */
    const char *metrics;         /* metrics JSON path (NULL: none) */
    bool quiet;                  /* no per-epoch lines on stdout */
    /* distributed (WORLD_SIZE, RANK, MASTER_ADDR, MASTER_PORT) */
    uint32_t world;              /* 1 */
    uint32_t rank;               /* 0 */
    char master_addr[256];       /* "127.0.0.1" */
    uint16_t master_port;        /* 29500 */
    uint32_t sync_steps;         /* also average every this many steps (0: per epoch only) */
    uint32_t connect_timeout_ms; /* 60000: how long ranks wait for each other at start */
    uint32_t sync_timeout_ms;    /* 600000: how long one average may wait for a rank */
    int gpu_ordinal;             /* -1: LOCAL_RANK modulo the visible GPUs, else 0 */
};

void gt_config_default(struct gt_config *c);

/* Reads WORLD_SIZE, RANK, MASTER_ADDR, MASTER_PORT, LOCAL_RANK and
 * GPU_TRAIN_CONNECT_TIMEOUT / GPU_TRAIN_SYNC_TIMEOUT (seconds) into c.
 * ORC_EUSAGE with err naming the variable when one is malformed. */
int gt_config_from_env(struct gt_config *c, struct gm_error *err);

/* Checks c as a whole (ranges, rank < world). ORC_EUSAGE naming the setting. */
int gt_config_check(const struct gt_config *c, struct gm_error *err);

struct gt_epoch {
    uint32_t epoch;  /* 1-based */
    double loss;     /* mean training loss over the epoch, all ranks */
    double accuracy; /* held-out accuracy after the epoch */
    double seconds;
};

/* What a run gives back. Owned by the caller, released with gt_result_free(). */
struct gt_result {
    struct gm_model model;   /* the trained model (parameters averaged across ranks) */
    struct gt_epoch *epochs; /* n_epochs */
    uint32_t n_epochs;
    char device[8];     /* "cpu" or "gpu": what trained it */
    char gpu_name[128]; /* "" when not on a GPU */
    char fallback[256]; /* why auto did not use a GPU ("" when it did or was not asked) */
    uint32_t world;
    uint32_t rank;
    uint32_t params_crc;   /* CRC-32 of the final parameters (the same on every rank) */
    uint64_t samples_seen; /* by all ranks, all epochs */
    double seconds_total;
    double samples_per_second;
};

void gt_result_free(struct gt_result *r);

/* Trains as c says and fills r. Rank 0 (or a world of 1) also writes c->out
 * and c->metrics. Blocking; prints the epoch lines on stdout unless quiet.
 * 0, or < 0 with err saying what failed (ORC_ENOTSUP: --device gpu without a
 * usable GPU; ORC_EIO: a rank failed or timed out; a negated errno for files). */
int gt_train(const struct gt_config *c, struct gt_result *r, struct gm_error *err);

/* The metrics document (see gpu-train --help). NULL only on OOM. */
json_t *gt_metrics_json(const struct gt_config *c, const struct gt_result *r);

/* Writes j to path atomically (tmp + rename). 0 or < 0 with err. */
int gt_write_json(const char *path, const json_t *j, struct gm_error *err);

/* --compare-devices: runs steps training steps from the same model and the
 * same batches on the CPU and on the GPU, prints both losses and the largest
 * parameter difference on stdout, and returns 0 when they agree (relative
 * loss difference below 1e-3), ORC_EIO when they do not, ORC_ENOTSUP without
 * a usable GPU (err says why). */
int gt_compare_devices(const struct gt_config *c, uint32_t steps, struct gm_error *err);

/* ---- backends (backend_cpu.c, backend_gpu.c) ---- */

/* The optimiser's settings as the backends see them. */
struct gt_opt {
    enum gt_optimizer kind;
    float lr, momentum, beta1, beta2, eps;
    int gpu_ordinal; /* the GPU backend's device: -1 picks LOCAL_RANK modulo the count */
};

/* The training data a backend works on: already normalised inputs. */
struct gt_data {
    const float *x;    /* [n][D] */
    const uint32_t *y; /* [n] */
    uint32_t n;
};

struct gt_backend;

/* A backend's operations (a const vtable; slots may not be NULL unless noted).
 * The model's parameters live in the backend between open and close: they are
 * read back with get_params and replaced with set_params (after an average). */
struct gt_backend_ops {
    const char *name; /* "cpu", "gpu" */
    /* Prepares to train m (its current parameters) on train with batches of
     * at most max_batch rows; eval (may be NULL) is the held-out set. */
    int (*open)(struct gt_backend *b, const struct gm_model *m, const struct gt_opt *opt,
                const struct gt_data *train, const struct gt_data *eval, uint32_t max_batch,
                struct gm_error *err);
    /* One optimiser step on the rows idx[0..n) of train (1 <= n <= max_batch). */
    int (*step)(struct gt_backend *b, const uint32_t *idx, uint32_t n, struct gm_error *err);
    /* The sum of the per-sample losses and the sample count since the last
     * call (resets them). */
    int (*take_loss)(struct gt_backend *b, double *sum, uint64_t *count, struct gm_error *err);
    int (*get_params)(struct gt_backend *b, float *out, struct gm_error *err);
    int (*set_params)(struct gt_backend *b, const float *in, struct gm_error *err);
    /* Correct predictions on eval; NULL: the trainer uses the CPU forward pass. */
    int (*evaluate)(struct gt_backend *b, uint32_t *correct, struct gm_error *err);
    void (*close)(struct gt_backend *b);
};

struct gt_backend {
    const struct gt_backend_ops *ops;
    void *state;           /* the backend's own */
    char device_name[128]; /* "cpu" or the GPU's name */
};

extern const struct gt_backend_ops gt_backend_cpu;
extern const struct gt_backend_ops gt_backend_gpu;

/* True when the GPU kernels were built into this program (nvcc was there). */
bool gt_gpu_kernels_built_in(void);

#endif
