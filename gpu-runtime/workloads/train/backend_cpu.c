/*
 * The CPU backend of gpu-train (train.h): one optimiser step is the forward
 * pass (gm_cpu_linear of the model library, so that training and serving
 * compute the same numbers), softmax cross-entropy and its gradient, the
 * backward pass and the Adam or SGD-with-momentum update, in plain C.
 * Matrices are row-major with the output index innermost: every inner loop
 * runs over contiguous memory and the compiler vectorises it.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../../../orchestrator/base.h"
#include "train.h"

struct cpu_state {
    struct gm_model shape; /* dims and offsets; params is our own copy */
    struct gt_opt opt;
    struct gt_data train;
    uint32_t max_batch;
    float *act[GM_MAX_HIDDEN_LAYERS + 2]; /* act[l]: [max_batch][dims[l]] */
    float *dz, *da;                       /* [max_batch][max width] */
    uint32_t *labels;                     /* [max_batch] */
    float *grad, *m1, *m2;                /* [n_params]; m2 only for adam */
    uint64_t t;                           /* steps taken */
    double loss_sum;
    uint64_t loss_count;
};

static void cpu_close(struct gt_backend *b)
{
    struct cpu_state *s = b->state;

    if (s == NULL)
        return;
    for (uint32_t l = 0; l <= s->shape.n_layers; l++)
        orc_free(s->act[l]);
    orc_free(s->dz);
    orc_free(s->da);
    orc_free(s->labels);
    orc_free(s->grad);
    orc_free(s->m1);
    orc_free(s->m2);
    orc_free(s->shape.params);
    orc_free(s);
    b->state = NULL;
}

static int cpu_open(struct gt_backend *b, const struct gm_model *m, const struct gt_opt *opt,
                    const struct gt_data *train, const struct gt_data *eval, uint32_t max_batch,
                    struct gm_error *err)
{
    struct cpu_state *s = orc_calloc(1, sizeof(*s));
    uint32_t wmax = 0;
    bool ok;

    (void)eval;
    if (s == NULL)
        return gm_failf(err, ORC_ENOMEM, "out of memory");
    b->state = s;
    s->shape = *m;
    s->shape.mean = s->shape.std = NULL;
    s->shape.params = orc_malloc(m->n_params * sizeof(float));
    s->opt = *opt;
    s->train = *train;
    s->max_batch = max_batch;
    ok = s->shape.params != NULL;
    for (uint32_t l = 0; l <= m->n_layers; l++) {
        s->act[l] = orc_malloc((size_t)max_batch * m->dims[l] * sizeof(float));
        ok = ok && s->act[l] != NULL;
        wmax = m->dims[l] > wmax ? m->dims[l] : wmax;
    }
    s->dz = orc_malloc((size_t)max_batch * wmax * sizeof(float));
    s->da = orc_malloc((size_t)max_batch * wmax * sizeof(float));
    s->labels = orc_malloc((size_t)max_batch * sizeof(uint32_t));
    s->grad = orc_malloc(m->n_params * sizeof(float));
    s->m1 = orc_calloc(m->n_params, sizeof(float));
    if (opt->kind == GT_OPT_ADAM)
        s->m2 = orc_calloc(m->n_params, sizeof(float));
    ok = ok && s->dz && s->da && s->labels && s->grad && s->m1 &&
         (opt->kind != GT_OPT_ADAM || s->m2);
    if (!ok) {
        cpu_close(b);
        return gm_failf(err, ORC_ENOMEM, "out of memory for the CPU backend's buffers");
    }
    memcpy(s->shape.params, m->params, m->n_params * sizeof(float));
    snprintf(b->device_name, sizeof(b->device_name), "cpu");
    return 0;
}

/* Softmax cross-entropy of the logits z [n][k] against labels: adds the
 * losses to *loss and writes dL/dz of the batch mean into dz. */
static void softmax_xent(const float *z, const uint32_t *labels, uint32_t n, uint32_t k, float *dz,
                         double *loss)
{
    const float inv_n = 1.0f / (float)n;

    for (uint32_t r = 0; r < n; r++) {
        const float *zr = z + (size_t)r * k;
        float *d = dz + (size_t)r * k;
        float mx = zr[0], sum = 0.0f;

        for (uint32_t j = 1; j < k; j++)
            mx = zr[j] > mx ? zr[j] : mx;
        for (uint32_t j = 0; j < k; j++) {
            d[j] = expf(zr[j] - mx);
            sum += d[j];
        }
        *loss += (double)(logf(sum) + mx - zr[labels[r]]);
        for (uint32_t j = 0; j < k; j++)
            d[j] = (d[j] / sum - (j == labels[r] ? 1.0f : 0.0f)) * inv_n;
    }
}

/* Gradients of layer l from dz [n][dout]: gW = a^T dz, gb = sum of rows. */
static void layer_grads(const float *a, const float *dz, uint32_t n, uint32_t din, uint32_t dout,
                        float *gw, float *gb)
{
    memset(gw, 0, (size_t)din * dout * sizeof(float));
    memset(gb, 0, dout * sizeof(float));
    for (uint32_t r = 0; r < n; r++) {
        const float *ar = a + (size_t)r * din;
        const float *d = dz + (size_t)r * dout;

        for (uint32_t j = 0; j < dout; j++)
            gb[j] += d[j];
        for (uint32_t i = 0; i < din; i++) {
            const float ai = ar[i];
            float *g = gw + (size_t)i * dout;

            if (ai == 0.0f)
                continue;
            for (uint32_t j = 0; j < dout; j++)
                g[j] += ai * d[j];
        }
    }
}

/* da = (dz W^T) masked by ReLU (a > 0, a being the layer's input). */
static void layer_back(const float *a, const float *dz, const float *w, uint32_t n, uint32_t din,
                       uint32_t dout, float *da)
{
    for (uint32_t r = 0; r < n; r++) {
        const float *ar = a + (size_t)r * din;
        const float *d = dz + (size_t)r * dout;
        float *o = da + (size_t)r * din;

        for (uint32_t i = 0; i < din; i++) {
            const float *wi = w + (size_t)i * dout;
            float acc = 0.0f;

            if (ar[i] <= 0.0f) {
                o[i] = 0.0f;
                continue;
            }
            for (uint32_t j = 0; j < dout; j++)
                acc += d[j] * wi[j];
            o[i] = acc;
        }
    }
}

static void optimise(struct cpu_state *s)
{
    const struct gt_opt *o = &s->opt;
    float *p = s->shape.params, *g = s->grad, *m1 = s->m1, *m2 = s->m2;
    const size_t np = s->shape.n_params;

    s->t++;
    if (o->kind == GT_OPT_SGD) {
        for (size_t i = 0; i < np; i++) {
            m1[i] = o->momentum * m1[i] + g[i];
            p[i] -= o->lr * m1[i];
        }
        return;
    }
    /* Adam with the bias corrections as factors, computed in double once */
    const float c1 = (float)(1.0 / (1.0 - pow(o->beta1, (double)s->t)));
    const float c2 = (float)(1.0 / (1.0 - pow(o->beta2, (double)s->t)));

    for (size_t i = 0; i < np; i++) {
        m1[i] = o->beta1 * m1[i] + (1.0f - o->beta1) * g[i];
        m2[i] = o->beta2 * m2[i] + (1.0f - o->beta2) * g[i] * g[i];
        p[i] -= o->lr * (m1[i] * c1) / (sqrtf(m2[i] * c2) + o->eps);
    }
}

static int cpu_step(struct gt_backend *b, const uint32_t *idx, uint32_t n, struct gm_error *err)
{
    struct cpu_state *s = b->state;
    const struct gm_model *m = &s->shape;
    const uint32_t d = m->inputs, nl = m->n_layers;
    float *dz = s->dz, *da = s->da, *tmp;

    if (n == 0 || n > s->max_batch)
        return gm_failf(err, ORC_EINVAL, "batch of %u rows (1..%u)", n, s->max_batch);
    for (uint32_t r = 0; r < n; r++) {
        memcpy(s->act[0] + (size_t)r * d, s->train.x + (size_t)idx[r] * d, d * sizeof(float));
        s->labels[r] = s->train.y[idx[r]];
    }
    for (uint32_t l = 0; l < nl; l++)
        gm_cpu_linear(s->act[l], n, m->dims[l], m->params + m->w_off[l], m->params + m->b_off[l],
                      m->dims[l + 1], l + 1 < nl, s->act[l + 1]);
    softmax_xent(s->act[nl], s->labels, n, m->classes, dz, &s->loss_sum);
    s->loss_count += n;
    for (uint32_t l = nl; l-- > 0;) {
        layer_grads(s->act[l], dz, n, m->dims[l], m->dims[l + 1], s->grad + m->w_off[l],
                    s->grad + m->b_off[l]);
        if (l == 0)
            break;
        layer_back(s->act[l], dz, m->params + m->w_off[l], n, m->dims[l], m->dims[l + 1], da);
        tmp = dz;
        dz = da;
        da = tmp;
    }
    optimise(s);
    return 0;
}

static int cpu_take_loss(struct gt_backend *b, double *sum, uint64_t *count, struct gm_error *err)
{
    struct cpu_state *s = b->state;

    (void)err;
    *sum = s->loss_sum;
    *count = s->loss_count;
    s->loss_sum = 0.0;
    s->loss_count = 0;
    return 0;
}

static int cpu_get_params(struct gt_backend *b, float *out, struct gm_error *err)
{
    struct cpu_state *s = b->state;

    (void)err;
    memcpy(out, s->shape.params, s->shape.n_params * sizeof(float));
    return 0;
}

static int cpu_set_params(struct gt_backend *b, const float *in, struct gm_error *err)
{
    struct cpu_state *s = b->state;

    (void)err;
    memcpy(s->shape.params, in, s->shape.n_params * sizeof(float));
    return 0;
}

const struct gt_backend_ops gt_backend_cpu = {
    .name = "cpu",
    .open = cpu_open,
    .step = cpu_step,
    .take_loss = cpu_take_loss,
    .get_params = cpu_get_params,
    .set_params = cpu_set_params,
    .evaluate = NULL, /* the trainer's CPU forward pass */
    .close = cpu_close,
};
