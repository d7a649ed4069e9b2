/*
 * The model the reference workloads share (libgpumodel.a): gpu-train fits it,
 * gpu-serve answers predictions with it.
 *   model.c       the MLP classifier: D inputs -> n_hidden layers of H (ReLU) ->
 *                 K classes (softmax), its parameters in one flat float array,
 *                 initialisation and the forward pass on the CPU
 *   checkpoint.c  the checkpoint file (binary, little-endian, CRC-32; below)
 *   dataset.c     the data: K interleaved spirals in D dimensions, generated
 *                 from a seed, with label noise and a held-out split
 *   util.c        errors with detail, CRC-32, the deterministic random source
 * Errors are the project's ORC_E* codes (orc/errno.h) with a message in a
 * struct gm_error; memory goes through orc_malloc/orc_free (base.h).
 * Nothing here is thread-safe on a shared object; distinct objects are.
 */
#ifndef GR_GM_MODEL_H
#define GR_GM_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "orc/errno.h"

/* ---- errors (util.c) ---- */

struct gm_error {
    int code;      /* an ORC_E* code or a negated errno; 0 when none */
    char msg[256]; /* what is wrong, for a person */
};

/* Fills err (NULL-safe) with code and the printf message; returns code. */
int gm_failf(struct gm_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* CRC-32 (IEEE 802.3, the zlib one) of n bytes, continuing from crc (0 to start). */
uint32_t gm_crc32(uint32_t crc, const void *data, size_t n);

/* ---- the random source (util.c): xoshiro256**, seeded by splitmix64 ---- */

struct gm_rng {
    uint64_t s[4];
};

/* Seeds rng from seed and a stream number (distinct streams never overlap in practice). */
void gm_rng_seed(struct gm_rng *rng, uint64_t seed, uint64_t stream);
uint64_t gm_rng_next(struct gm_rng *rng);
/* Uniform in [0, 1). */
double gm_rng_uniform(struct gm_rng *rng);
/* Uniform integer in [0, n), n > 0. */
uint32_t gm_rng_below(struct gm_rng *rng, uint32_t n);
/* Standard normal (Box-Muller). */
double gm_rng_normal(struct gm_rng *rng);

/* ---- the model (model.c) ---- */

#define GM_NAME_MAX 64         /* bytes of the name, NUL included */
#define GM_MAX_INPUTS 4096     /* D */
#define GM_MAX_HIDDEN 8192     /* H */
#define GM_MAX_CLASSES 1024    /* K */
#define GM_MAX_HIDDEN_LAYERS 8 /* n_hidden */
#define GM_MAX_PARAMS (1u << 28)
#define GM_DEFAULT_NAME "mlp-classifier"

/* How the model was trained: saved in the checkpoint, shown by gpu-serve. */
struct gm_train_info {
    uint64_t seed; /* the data and initialisation seed */
    uint32_t epochs;
    uint32_t samples;    /* training samples (all ranks together) */
    uint32_t world_size; /* ranks that trained it */
    uint32_t batch;
    float lr;
    float final_loss;     /* mean training loss of the last epoch */
    float final_accuracy; /* held-out accuracy at the end */
    float label_noise;    /* of the dataset */
    char optimizer[16];   /* "adam" or "sgd" */
    char device[16];      /* "cpu" or "gpu" */
};

/* The layer l (0 .. n_hidden) maps dims[l] inputs to dims[l+1] outputs:
 * out = in * W + b, with W row-major [dims[l]][dims[l+1]] (input-major, so the
 * loops over outputs are contiguous) at params + w_off[l] and b (dims[l+1]) at
 * params + b_off[l]. Every layer but the last is followed by ReLU; the last
 * gives the logits of the K classes. Inputs are normalised first:
 * x' = (x - mean) / std, per input. */
struct gm_model {
    char name[GM_NAME_MAX];
    uint32_t inputs;   /* D */
    uint32_t hidden;   /* H */
    uint32_t classes;  /* K */
    uint32_t n_hidden; /* hidden layers, 2 by default */
    uint32_t n_layers; /* n_hidden + 1 */
    uint32_t dims[GM_MAX_HIDDEN_LAYERS + 2];
    size_t w_off[GM_MAX_HIDDEN_LAYERS + 1];
    size_t b_off[GM_MAX_HIDDEN_LAYERS + 1];
    size_t n_params;
    float *params; /* owned: n_params floats */
    float *mean;   /* owned: D floats */
    float *std;    /* owned: D floats, all > 0 */
    struct gm_train_info info;
};

/* Sets m up for D inputs, n_hidden layers of H and K classes, with zero
 * parameters, mean 0 and std 1, named name (NULL: GM_DEFAULT_NAME). m is
 * caller memory; release with gm_model_free(). ORC_EINVAL (with why) on
 * dimensions out of range, ORC_ENOMEM. */
int gm_model_init(struct gm_model *m, uint32_t inputs, uint32_t hidden, uint32_t classes,
                  uint32_t n_hidden, const char *name, struct gm_error *err);

/* Frees what m owns (NULL-safe, idempotent); m stays reusable for init. */
void gm_model_free(struct gm_model *m);

/* He-uniform weights (ReLU), zero biases, from the seed: the same seed gives
 * the same model on every rank. */
void gm_model_init_params(struct gm_model *m, uint64_t seed);

/* Forward pass of n rows of raw (not normalised) inputs x [n][D] into
 * probs [n][K] (softmax) and, when labels is not NULL, the argmax of each row.
 * work must hold gm_forward_work_size(m) floats. Deterministic: the same
 * model and inputs give the same bits. */
size_t gm_forward_work_size(const struct gm_model *m);
void gm_forward(const struct gm_model *m, const float *x, size_t n, float *probs, uint32_t *labels,
                float *work);

/* The same for one row, allocating its own work space: 0 or ORC_ENOMEM. */
int gm_predict(const struct gm_model *m, const float *x, float *probs, uint32_t *label);

/* The CPU building blocks of the forward pass, shared with gpu-train's CPU
 * backend so that training and serving compute the same numbers:
 * out[n][dout] = in[n][din] * W[din][dout] + b, then ReLU when relu. */
void gm_cpu_linear(const float *in, size_t n, uint32_t din, const float *w, const float *b,
                   uint32_t dout, bool relu, float *out);
/* Rows of logits [n][k] into probabilities, in place. */
void gm_cpu_softmax(float *z, size_t n, uint32_t k);

/* ---- the checkpoint (checkpoint.c) ----
 *
 * All integers and floats little-endian; offsets in bytes.
 *     0   8  magic "GRMLP\r\n\x1a" (a text-mode transfer or a truncation shows)
 *     8   4  u32 format version (1)
 *    12   4  u32 header size (200: everything before the mean)
 *    16   4  u32 inputs D            20  4  u32 hidden width H
 *    24   4  u32 classes K           28  4  u32 hidden layers (1..8)
 *    32   8  u64 parameter count (must match the dimensions)
 *    40  64  model name, NUL-padded (printable ASCII, 1..63 bytes)
 *   104   8  u64 seed                112  4  u32 epochs
 *   116   4  u32 samples             120  4  u32 world size
 *   124   4  u32 batch               128  4  f32 learning rate
 *   132   4  f32 final loss          136  4  f32 final accuracy
 *   140   4  f32 label noise         144 16  optimizer, NUL-padded
 *   160  16  device, NUL-padded      176 24  reserved, zero
 *   200  4D  f32 mean[D]             then 4D  f32 std[D] (> 0)
 *   then 4P  f32 parameters, layer by layer: W (input-major) then b
 *   last  4  u32 CRC-32 of every byte before it
 * Everything is checked on load: size, magic, version, dimensions, the count,
 * the name, the checksum, finite values. */
#define GM_CKPT_VERSION 1
#define GM_CKPT_HEADER_SIZE 200

/* Writes m to path atomically (path.tmp.PID, fsync, rename). 0, or a negated
 * errno / ORC_ENOMEM with err saying which file and why. */
int gm_checkpoint_save(const struct gm_model *m, const char *path, struct gm_error *err);

/* Reads and checks path into m (caller memory, initialised here; release with
 * gm_model_free()). On failure m holds nothing and err says what is wrong
 * (ORC_EFORMAT for a file that is not a valid checkpoint, a negated errno when
 * it cannot be read, ORC_ENOMEM). */
int gm_checkpoint_load(struct gm_model *m, const char *path, struct gm_error *err);

/* The same from bytes in memory (the checks, without the file). */
int gm_checkpoint_decode(struct gm_model *m, const unsigned char *buf, size_t len,
                         struct gm_error *err);

/* Encodes m into a new buffer *out (orc_free it) of *len bytes. 0 or ORC_ENOMEM. */
int gm_checkpoint_encode(const struct gm_model *m, unsigned char **out, size_t *len);

/* ---- the dataset (dataset.c) ---- */

struct gm_data_spec {
    uint64_t seed;
    uint32_t samples;  /* training samples; the held-out split has samples/5 (at least 100) */
    uint32_t inputs;   /* D >= 2 */
    uint32_t classes;  /* K >= 2 */
    float label_noise; /* probability that a label is replaced by a random class */
    float noise;       /* Gaussian noise on the inputs (std, in units of the spiral radius) */
    float turns;       /* how far each spiral arm winds */
};

/* The defaults: seed 1, 80000 samples, D 2, K 3, label noise 0.02, noise 0.05, turns 1.5. */
void gm_data_spec_default(struct gm_data_spec *spec);

struct gm_dataset {
    uint32_t n;      /* rows */
    uint32_t inputs; /* D */
    float *x;        /* owned: [n][D] */
    uint32_t *y;     /* owned: [n], labels 0..K-1 */
};

/* Generates the training split (held_out false) or the held-out split (true)
 * into ds (caller memory). Deterministic: the same spec gives the same bytes.
 * Class k's arm: angle a = 2 pi (k / K + turns * t), radius t for t uniform in
 * (0.05, 1]; x0 = t cos a, x1 = t sin a; for d >= 2, x_d = t sin(a * (d / 2 + 1) +
 * d) / 2 (extra views of the same point); every input gets the Gaussian noise.
 * 0, ORC_EINVAL (with why) or ORC_ENOMEM. */
int gm_dataset_generate(const struct gm_data_spec *spec, bool held_out, struct gm_dataset *ds,
                        struct gm_error *err);

/* The noise-free point of class k at radius t (0..1] into x[D]: a point whose
 * class the generator knows, for tests and examples. */
void gm_dataset_point(const struct gm_data_spec *spec, uint32_t k, double t, float *x);

/* Per-input mean and std of ds (std floored at 1e-6). */
void gm_dataset_stats(const struct gm_dataset *ds, float *mean, float *std);

void gm_dataset_free(struct gm_dataset *ds);

#endif
