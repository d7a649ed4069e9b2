/*
 * The MLP classifier (gm_model.h): its shape, the flat parameter array, the
 * initialisation and the forward pass on the CPU. The loops keep the output
 * index innermost over contiguous memory (W is input-major), so the compiler
 * vectorises them and the rows of a chunk stay in cache.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../../../orchestrator/base.h"
#include "gm_model.h"

#define FWD_ROWS 64 /* rows the forward pass handles at once */

static bool name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n >= GM_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

int gm_model_init(struct gm_model *m, uint32_t inputs, uint32_t hidden, uint32_t classes,
                  uint32_t n_hidden, const char *name, struct gm_error *err)
{
    size_t off = 0;

    memset(m, 0, sizeof(*m));
    if (name == NULL)
        name = GM_DEFAULT_NAME;
    if (!name_ok(name))
        return gm_failf(err, ORC_EINVAL, "model name '%.80s': 1-63 characters of A-Z a-z 0-9 - _ .",
                        name);
    if (inputs < 1 || inputs > GM_MAX_INPUTS)
        return gm_failf(err, ORC_EINVAL, "inputs %u: must be 1..%u", inputs, GM_MAX_INPUTS);
    if (hidden < 1 || hidden > GM_MAX_HIDDEN)
        return gm_failf(err, ORC_EINVAL, "hidden width %u: must be 1..%u", hidden, GM_MAX_HIDDEN);
    if (classes < 2 || classes > GM_MAX_CLASSES)
        return gm_failf(err, ORC_EINVAL, "classes %u: must be 2..%u", classes, GM_MAX_CLASSES);
    if (n_hidden < 1 || n_hidden > GM_MAX_HIDDEN_LAYERS)
        return gm_failf(err, ORC_EINVAL, "hidden layers %u: must be 1..%u", n_hidden,
                        GM_MAX_HIDDEN_LAYERS);
    snprintf(m->name, sizeof(m->name), "%s", name);
    m->inputs = inputs;
    m->hidden = hidden;
    m->classes = classes;
    m->n_hidden = n_hidden;
    m->n_layers = n_hidden + 1;
    m->dims[0] = inputs;
    for (uint32_t l = 1; l <= n_hidden; l++)
        m->dims[l] = hidden;
    m->dims[m->n_layers] = classes;
    for (uint32_t l = 0; l < m->n_layers; l++) {
        m->w_off[l] = off;
        off += (size_t)m->dims[l] * m->dims[l + 1];
        m->b_off[l] = off;
        off += m->dims[l + 1];
    }
    if (off > GM_MAX_PARAMS)
        return gm_failf(err, ORC_EINVAL, "%zu parameters: more than the %u this program takes", off,
                        GM_MAX_PARAMS);
    m->n_params = off;
    m->params = orc_calloc(off, sizeof(float));
    m->mean = orc_calloc(inputs, sizeof(float));
    m->std = orc_calloc(inputs, sizeof(float));
    if (m->params == NULL || m->mean == NULL || m->std == NULL) {
        gm_model_free(m);
        return gm_failf(err, ORC_ENOMEM, "out of memory for %zu parameters", off);
    }
    for (uint32_t i = 0; i < inputs; i++)
        m->std[i] = 1.0f;
    m->info.world_size = 1;
    return 0;
}

void gm_model_free(struct gm_model *m)
{
    if (m == NULL)
        return;
    orc_free(m->params);
    orc_free(m->mean);
    orc_free(m->std);
    m->params = m->mean = m->std = NULL;
    m->n_params = 0;
}

void gm_model_init_params(struct gm_model *m, uint64_t seed)
{
    struct gm_rng rng;

    gm_rng_seed(&rng, seed, 0x6D6F64656CULL); /* "model" */
    for (uint32_t l = 0; l < m->n_layers; l++) {
        size_t nw = (size_t)m->dims[l] * m->dims[l + 1];
        double limit = sqrt(6.0 / m->dims[l]); /* He uniform */
        float *w = m->params + m->w_off[l];

        for (size_t i = 0; i < nw; i++)
            w[i] = (float)((2.0 * gm_rng_uniform(&rng) - 1.0) * limit);
        memset(m->params + m->b_off[l], 0, m->dims[l + 1] * sizeof(float));
    }
}

void gm_cpu_linear(const float *in, size_t n, uint32_t din, const float *w, const float *b,
                   uint32_t dout, bool relu, float *out)
{
    for (size_t r = 0; r < n; r++) {
        const float *x = in + r * din;
        float *o = out + r * dout;

        memcpy(o, b, dout * sizeof(float));
        for (uint32_t i = 0; i < din; i++) {
            const float a = x[i];
            const float *wi = w + (size_t)i * dout;

            if (a == 0.0f)
                continue; /* ReLU zeros: adding 0 * w changes nothing */
            for (uint32_t j = 0; j < dout; j++)
                o[j] += a * wi[j];
        }
        if (relu)
            for (uint32_t j = 0; j < dout; j++)
                o[j] = o[j] > 0.0f ? o[j] : 0.0f;
    }
}

void gm_cpu_softmax(float *z, size_t n, uint32_t k)
{
    for (size_t r = 0; r < n; r++) {
        float *p = z + r * k;
        float mx = p[0], sum = 0.0f;

        for (uint32_t j = 1; j < k; j++)
            mx = p[j] > mx ? p[j] : mx;
        for (uint32_t j = 0; j < k; j++) {
            p[j] = expf(p[j] - mx);
            sum += p[j];
        }
        for (uint32_t j = 0; j < k; j++)
            p[j] /= sum;
    }
}

static uint32_t max_width(const struct gm_model *m)
{
    uint32_t w = 0;

    for (uint32_t l = 0; l <= m->n_layers; l++)
        w = m->dims[l] > w ? m->dims[l] : w;
    return w;
}

size_t gm_forward_work_size(const struct gm_model *m)
{
    return 2 * (size_t)FWD_ROWS * max_width(m);
}

static void forward_chunk(const struct gm_model *m, const float *x, size_t n, float *probs,
                          float *a, float *b)
{
    const uint32_t d = m->inputs, k = m->classes;

    for (size_t r = 0; r < n; r++)
        for (uint32_t i = 0; i < d; i++)
            a[r * d + i] = (x[r * d + i] - m->mean[i]) / m->std[i];
    for (uint32_t l = 0; l < m->n_layers; l++) {
        bool last = l + 1 == m->n_layers;
        float *out = last ? probs : b;

        gm_cpu_linear(a, n, m->dims[l], m->params + m->w_off[l], m->params + m->b_off[l],
                      m->dims[l + 1], !last, out);
        b = a;
        a = out;
    }
    gm_cpu_softmax(probs, n, k);
}

void gm_forward(const struct gm_model *m, const float *x, size_t n, float *probs, uint32_t *labels,
                float *work)
{
    const size_t half = (size_t)FWD_ROWS * max_width(m);

    for (size_t r0 = 0; r0 < n; r0 += FWD_ROWS) {
        size_t c = n - r0 < FWD_ROWS ? n - r0 : FWD_ROWS;

        forward_chunk(m, x + r0 * m->inputs, c, probs + r0 * m->classes, work, work + half);
    }
    if (labels == NULL)
        return;
    for (size_t r = 0; r < n; r++) {
        const float *p = probs + r * m->classes;
        uint32_t best = 0;

        for (uint32_t j = 1; j < m->classes; j++)
            best = p[j] > p[best] ? j : best;
        labels[r] = best;
    }
}

int gm_predict(const struct gm_model *m, const float *x, float *probs, uint32_t *label)
{
    float *work = orc_malloc(gm_forward_work_size(m) * sizeof(float));

    if (work == NULL)
        return ORC_ENOMEM;
    gm_forward(m, x, 1, probs, label, work);
    orc_free(work);
    return 0;
}
