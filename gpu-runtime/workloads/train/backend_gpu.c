/*
 * The GPU backend of gpu-train (train.h): the kernels of train_kernels.cu,
 * embedded as a fatbin and loaded through the CUDA driver API that
 * gpu-runtime/common/cuda.h reaches with dlopen, so the program needs only
 * the NVIDIA driver at run time, and none at all to train on the CPU.
 *
 * The training shard and the held-out split are copied to the GPU once; a
 * step sends only the batch's row indices (from a ring of pinned buffers, so
 * the host runs ahead of the GPU) and launches gather, the forward products,
 * softmax cross-entropy, the backward products and the optimiser on one
 * stream. The losses are summed on the GPU and read back once per epoch.
 * Everything runs on the thread that opened the backend.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../../orchestrator/base.h"
#include "cuda.h"
#include "train.h"

GR_FATBIN_DECLARE(train_kernels);

#define TILE 32
#define BLOCK_ROWS 8 /* TILE / ROWS_PER of the kernels */
#define THREADS 256
#define RING 4 /* index buffers in flight */
#define EVAL_ROWS 4096

enum {
    K_GATHER,
    K_GEMM_NN,
    K_GEMM_TN,
    K_GEMM_NT_MASK,
    K_BIAS_GRAD,
    K_SOFTMAX_XENT,
    K_ADAM,
    K_SGD,
    K_COUNT_CORRECT,
    K_N
};

static const char *const kernel_names[K_N] = {
    "gt_gather",       "gt_gemm_nn", "gt_gemm_tn", "gt_gemm_nt_mask",  "gt_bias_grad",
    "gt_softmax_xent", "gt_adam",    "gt_sgd",     "gt_count_correct",
};

struct gpu_state {
    const struct gr_cuda_api *cu;
    struct gr_cuda_ctx ctx;
    CUmodule mod;
    CUfunction fn[K_N];
    CUstream stream;
    struct gm_model shape; /* dims and offsets only */
    struct gt_opt opt;
    uint32_t max_batch, rows; /* rows: of the activation buffers */
    uint32_t n_train, n_eval;
    CUdeviceptr params, grad, m1, m2;
    CUdeviceptr train_x, train_y, eval_x, eval_y;
    CUdeviceptr act[GM_MAX_HIDDEN_LAYERS + 2], dz, da, labels;
    CUdeviceptr loss, correct;
    CUdeviceptr idx[RING];
    uint32_t *host_idx[RING]; /* pinned */
    CUevent idx_free[RING];
    unsigned ring;
    uint64_t t, loss_count;
};

bool gt_gpu_kernels_built_in(void)
{
    return gr_fatbin_train_kernels_end - gr_fatbin_train_kernels > 0;
}

/* 0 if rc is CUDA_SUCCESS, else the error with what failed. */
static int ck(struct gpu_state *s, CUresult rc, const char *what, struct gm_error *err)
{
    char why[200];
    int code;

    (void)s;
    if (rc == CUDA_SUCCESS)
        return 0;
    code = gr_cu_check(rc, why, sizeof(why), what);
    return gm_failf(err, code, "%s", why);
}

static int dalloc(struct gpu_state *s, CUdeviceptr *p, size_t bytes, struct gm_error *err)
{
    return ck(s, s->cu->cuMemAlloc(p, bytes ? bytes : 4), "cuMemAlloc", err);
}

static int launch(struct gpu_state *s, int k, unsigned gx, unsigned gy, unsigned bx, unsigned by,
                  void **args, struct gm_error *err)
{
    return ck(s, s->cu->cuLaunchKernel(s->fn[k], gx, gy, 1, bx, by, 1, 0, s->stream, args, NULL),
              kernel_names[k], err);
}

static unsigned blocks(size_t n, unsigned per)
{
    return (unsigned)((n + per - 1) / per);
}

static void gpu_close(struct gt_backend *b)
{
    struct gpu_state *s = b->state;
    const struct gr_cuda_api *cu;

    if (s == NULL)
        return;
    cu = s->cu;
    if (cu && s->ctx.ctx) {
        if (s->stream)
            cu->cuStreamSynchronize(s->stream);
        CUdeviceptr all[] = {s->params,  s->grad,   s->m1,     s->m2, s->train_x,
                             s->train_y, s->eval_x, s->eval_y, s->dz, s->da,
                             s->labels,  s->loss,   s->correct};
        for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
            if (all[i])
                cu->cuMemFree(all[i]);
        for (uint32_t l = 0; l <= s->shape.n_layers; l++)
            if (s->act[l])
                cu->cuMemFree(s->act[l]);
        for (int i = 0; i < RING; i++) {
            if (s->idx[i])
                cu->cuMemFree(s->idx[i]);
            if (s->host_idx[i])
                cu->cuMemFreeHost(s->host_idx[i]);
            if (s->idx_free[i])
                cu->cuEventDestroy(s->idx_free[i]);
        }
        if (s->stream)
            cu->cuStreamDestroy(s->stream);
        gr_cuda_module_unload(s->mod);
    }
    gr_cuda_ctx_close(&s->ctx);
    orc_free(s);
    b->state = NULL;
}

/* The device: the option's, else LOCAL_RANK modulo the visible ones. */
static int pick_device(int want, struct gm_error *err)
{
    char why[200];
    int n = gr_cuda_device_count(why, sizeof(why));
    const char *lr = getenv("LOCAL_RANK");

    if (n <= 0)
        return gm_failf(err, ORC_ENOTSUP, "%s", n < 0 || why[0] ? why : "no CUDA device");
    if (want >= 0) {
        if (want >= n)
            return gm_failf(err, ORC_ENOTSUP, "GPU %d asked, %d visible", want, n);
        return want;
    }
    return lr && *lr ? (int)(strtoul(lr, NULL, 10) % (unsigned)n) : 0;
}

static int load_module(struct gpu_state *s, struct gm_error *err)
{
    char why[200];
    int rc = gr_cuda_module_load(GR_FATBIN(train_kernels), &s->mod, why, sizeof(why));

    if (rc < 0)
        return gm_failf(err, rc, "%s", why);
    for (int k = 0; k < K_N; k++) {
        rc = gr_cuda_module_function(s->mod, kernel_names[k], &s->fn[k], why, sizeof(why));
        if (rc < 0)
            return gm_failf(err, rc, "%s", why);
    }
    /* a blocking stream: it orders after the synchronous copies and memsets
     * (the legacy stream) that set the buffers up and replace the parameters */
    return ck(s, s->cu->cuStreamCreate(&s->stream, CU_STREAM_DEFAULT), "cuStreamCreate", err);
}

static int alloc_buffers(struct gpu_state *s, const struct gt_data *train,
                         const struct gt_data *eval, struct gm_error *err)
{
    const struct gm_model *m = &s->shape;
    const size_t np = m->n_params, d = m->inputs;
    uint32_t wmax = 0;
    int rc = 0;

    for (uint32_t l = 0; l <= m->n_layers; l++)
        wmax = m->dims[l] > wmax ? m->dims[l] : wmax;
    rc = dalloc(s, &s->params, np * 4, err);
    rc = rc ? rc : dalloc(s, &s->grad, np * 4, err);
    rc = rc ? rc : dalloc(s, &s->m1, np * 4, err);
    rc = rc ? rc : dalloc(s, &s->m2, np * 4, err);
    rc = rc ? rc : dalloc(s, &s->train_x, (size_t)train->n * d * 4, err);
    rc = rc ? rc : dalloc(s, &s->train_y, (size_t)train->n * 4, err);
    rc = rc ? rc : dalloc(s, &s->eval_x, (size_t)s->n_eval * d * 4, err);
    rc = rc ? rc : dalloc(s, &s->eval_y, (size_t)s->n_eval * 4, err);
    for (uint32_t l = 1; l <= m->n_layers && rc == 0; l++)
        rc = dalloc(s, &s->act[l], (size_t)s->rows * m->dims[l] * 4, err);
    rc = rc ? rc : dalloc(s, &s->act[0], (size_t)s->max_batch * d * 4, err);
    rc = rc ? rc : dalloc(s, &s->dz, (size_t)s->max_batch * wmax * 4, err);
    rc = rc ? rc : dalloc(s, &s->da, (size_t)s->max_batch * wmax * 4, err);
    rc = rc ? rc : dalloc(s, &s->labels, (size_t)s->max_batch * 4, err);
    rc = rc ? rc : dalloc(s, &s->loss, 8, err);
    rc = rc ? rc : dalloc(s, &s->correct, 4, err);
    for (int i = 0; i < RING && rc == 0; i++) {
        rc = dalloc(s, &s->idx[i], (size_t)s->max_batch * 4, err);
        rc = rc ? rc
                : ck(s, s->cu->cuMemAllocHost((void **)&s->host_idx[i], (size_t)s->max_batch * 4),
                     "cuMemAllocHost", err);
        rc = rc ? rc
                : ck(s, s->cu->cuEventCreate(&s->idx_free[i], CU_EVENT_DISABLE_TIMING),
                     "cuEventCreate", err);
    }
    if (rc < 0)
        return rc;
    rc = ck(s, s->cu->cuMemcpyHtoD(s->train_x, train->x, (size_t)train->n * d * 4), "upload", err);
    rc = rc ? rc
            : ck(s, s->cu->cuMemcpyHtoD(s->train_y, train->y, (size_t)train->n * 4), "upload", err);
    if (rc == 0 && s->n_eval) {
        rc = ck(s, s->cu->cuMemcpyHtoD(s->eval_x, eval->x, (size_t)s->n_eval * d * 4), "upload",
                err);
        rc = rc ? rc
                : ck(s, s->cu->cuMemcpyHtoD(s->eval_y, eval->y, (size_t)s->n_eval * 4), "upload",
                     err);
    }
    rc = rc ? rc : ck(s, s->cu->cuMemsetD32(s->m1, 0, np), "cuMemsetD32", err);
    rc = rc ? rc : ck(s, s->cu->cuMemsetD32(s->m2, 0, np), "cuMemsetD32", err);
    rc = rc ? rc : ck(s, s->cu->cuMemsetD8(s->loss, 0, 8), "cuMemsetD8", err);
    return rc ? rc : ck(s, s->cu->cuCtxSynchronize(), "cuCtxSynchronize", err);
}

static int gpu_open(struct gt_backend *b, const struct gm_model *m, const struct gt_opt *opt,
                    const struct gt_data *train, const struct gt_data *eval, uint32_t max_batch,
                    struct gm_error *err)
{
    struct gpu_state *s;
    char why[200], name[128];
    int rc, ordinal;

    if (!gt_gpu_kernels_built_in())
        return gm_failf(err, ORC_ENOTSUP, "GPU kernels not built in (this build had no nvcc)");
    if (gr_cuda_load(why, sizeof(why)) == NULL)
        return gm_failf(err, ORC_ENOTSUP, "%s", why);
    ordinal = pick_device(opt->gpu_ordinal, err);
    if (ordinal < 0)
        return ordinal;
    s = orc_calloc(1, sizeof(*s));
    if (s == NULL)
        return gm_failf(err, ORC_ENOMEM, "out of memory");
    b->state = s;
    s->cu = gr_cuda_loaded();
    s->shape = *m;
    s->shape.params = s->shape.mean = s->shape.std = NULL;
    s->opt = *opt;
    s->max_batch = max_batch;
    s->n_train = train->n;
    s->n_eval = eval ? eval->n : 0;
    s->rows = max_batch > EVAL_ROWS ? max_batch : EVAL_ROWS;
    rc = gr_cuda_ctx_open(ordinal, &s->ctx, why, sizeof(why));
    if (rc < 0) {
        gm_failf(err, rc, "%s", why);
        goto out_close;
    }
    rc = load_module(s, err);
    rc = rc ? rc : alloc_buffers(s, train, eval, err);
    rc = rc ? rc : ck(s, s->cu->cuMemcpyHtoD(s->params, m->params, m->n_params * 4), "upload", err);
    if (rc < 0)
        goto out_close;
    if (s->cu->cuDeviceGetName(name, sizeof(name), s->ctx.dev) != CUDA_SUCCESS)
        snprintf(name, sizeof(name), "GPU %d", ordinal);
    snprintf(b->device_name, sizeof(b->device_name), "%s", name);
    return 0;

out_close:
    gpu_close(b);
    return rc;
}

/* in [rows][din] -> out [rows][dout] through layer l (ReLU except on the last). */
static int forward(struct gpu_state *s, CUdeviceptr in, uint32_t rows, struct gm_error *err)
{
    const struct gm_model *m = &s->shape;
    int rc = 0;

    for (uint32_t l = 0; l < m->n_layers && rc == 0; l++) {
        CUdeviceptr a = l == 0 ? in : s->act[l], w = s->params + 4 * m->w_off[l],
                    bias = s->params + 4 * m->b_off[l], c = s->act[l + 1];
        int M = (int)rows, N = (int)m->dims[l + 1], K = (int)m->dims[l];
        int relu = l + 1 < m->n_layers;
        void *args[] = {&a, &w, &bias, &c, &M, &N, &K, &relu};

        rc = launch(s, K_GEMM_NN, blocks((size_t)N, TILE), blocks((size_t)M, TILE), TILE,
                    BLOCK_ROWS, args, err);
    }
    return rc;
}

static int backward(struct gpu_state *s, uint32_t n, struct gm_error *err)
{
    const struct gm_model *m = &s->shape;
    CUdeviceptr dz = s->dz, da = s->da, tmp;
    int rc = 0;

    for (uint32_t l = m->n_layers; l-- > 0 && rc == 0;) {
        CUdeviceptr a = s->act[l], gw = s->grad + 4 * m->w_off[l], gb = s->grad + 4 * m->b_off[l],
                    w = s->params + 4 * m->w_off[l];
        int din = (int)m->dims[l], dout = (int)m->dims[l + 1], rows = (int)n;
        void *tn[] = {&a, &dz, &gw, &din, &dout, &rows};
        void *bg[] = {&dz, &gb, &rows, &dout};
        void *nt[] = {&dz, &w, &a, &da, &rows, &din, &dout};

        rc = launch(s, K_GEMM_TN, blocks((size_t)dout, TILE), blocks((size_t)din, TILE), TILE,
                    BLOCK_ROWS, tn, err);
        rc =
            rc ? rc : launch(s, K_BIAS_GRAD, blocks((size_t)dout, THREADS), 1, THREADS, 1, bg, err);
        if (rc || l == 0)
            break;
        rc = launch(s, K_GEMM_NT_MASK, blocks((size_t)din, TILE), blocks((size_t)n, TILE), TILE,
                    BLOCK_ROWS, nt, err);
        tmp = dz;
        dz = da;
        da = tmp;
    }
    return rc;
}

static int optimise(struct gpu_state *s, struct gm_error *err)
{
    const struct gt_opt *o = &s->opt;
    int n = (int)s->shape.n_params;
    float lr = o->lr, mu = o->momentum, b1 = o->beta1, b2 = o->beta2, eps = o->eps;

    s->t++;
    if (o->kind == GT_OPT_SGD) {
        void *args[] = {&s->params, &s->grad, &s->m1, &n, &lr, &mu};

        return launch(s, K_SGD, blocks((size_t)n, THREADS), 1, THREADS, 1, args, err);
    }
    float c1 = (float)(1.0 / (1.0 - pow(o->beta1, (double)s->t)));
    float c2 = (float)(1.0 / (1.0 - pow(o->beta2, (double)s->t)));
    void *args[] = {&s->params, &s->grad, &s->m1, &s->m2, &n, &lr, &b1, &b2, &eps, &c1, &c2};

    return launch(s, K_ADAM, blocks((size_t)n, THREADS), 1, THREADS, 1, args, err);
}

static int gpu_step(struct gt_backend *b, const uint32_t *idx, uint32_t n, struct gm_error *err)
{
    struct gpu_state *s = b->state;
    const unsigned slot = s->ring++ % RING;
    CUdeviceptr dev_idx = s->idx[slot];
    int rows = (int)n, d = (int)s->shape.inputs, k = (int)s->shape.classes, rc;

    if (n == 0 || n > s->max_batch)
        return gm_failf(err, ORC_EINVAL, "batch of %u rows (1..%u)", n, s->max_batch);
    /* the slot's previous indices have been consumed once its event passed */
    rc = ck(s, s->cu->cuEventSynchronize(s->idx_free[slot]), "cuEventSynchronize", err);
    if (rc < 0)
        return rc;
    memcpy(s->host_idx[slot], idx, n * sizeof(uint32_t));
    rc = ck(s, s->cu->cuMemcpyHtoDAsync(dev_idx, s->host_idx[slot], n * 4, s->stream),
            "cuMemcpyHtoDAsync", err);
    void *ga[] = {&s->train_x, &s->train_y, &dev_idx, &rows, &d, &s->act[0], &s->labels};
    rc = rc ? rc : launch(s, K_GATHER, blocks((size_t)n * d, THREADS), 1, THREADS, 1, ga, err);
    rc = rc ? rc : ck(s, s->cu->cuEventRecord(s->idx_free[slot], s->stream), "cuEventRecord", err);
    rc = rc ? rc : forward(s, s->act[0], n, err);
    CUdeviceptr logits = s->act[s->shape.n_layers];
    void *sx[] = {&logits, &s->labels, &rows, &k, &s->dz, &s->loss};
    rc = rc ? rc : launch(s, K_SOFTMAX_XENT, blocks(n, THREADS), 1, THREADS, 1, sx, err);
    rc = rc ? rc : backward(s, n, err);
    rc = rc ? rc : optimise(s, err);
    if (rc == 0)
        s->loss_count += n;
    return rc;
}

static int gpu_take_loss(struct gt_backend *b, double *sum, uint64_t *count, struct gm_error *err)
{
    struct gpu_state *s = b->state;
    int rc = ck(s, s->cu->cuMemcpyDtoHAsync(sum, s->loss, 8, s->stream), "read the loss", err);

    rc = rc ? rc : ck(s, s->cu->cuMemsetD8Async(s->loss, 0, 8, s->stream), "cuMemsetD8Async", err);
    rc = rc ? rc : ck(s, s->cu->cuStreamSynchronize(s->stream), "cuStreamSynchronize", err);
    *count = s->loss_count;
    s->loss_count = 0;
    return rc;
}

static int gpu_get_params(struct gt_backend *b, float *out, struct gm_error *err)
{
    struct gpu_state *s = b->state;
    int rc = ck(s, s->cu->cuStreamSynchronize(s->stream), "cuStreamSynchronize", err);

    return rc ? rc
              : ck(s, s->cu->cuMemcpyDtoH(out, s->params, s->shape.n_params * 4),
                   "download the parameters", err);
}

static int gpu_set_params(struct gt_backend *b, const float *in, struct gm_error *err)
{
    struct gpu_state *s = b->state;
    int rc = ck(s, s->cu->cuStreamSynchronize(s->stream), "cuStreamSynchronize", err);

    return rc ? rc
              : ck(s, s->cu->cuMemcpyHtoD(s->params, in, s->shape.n_params * 4),
                   "upload the parameters", err);
}

static int gpu_evaluate(struct gt_backend *b, uint32_t *correct, struct gm_error *err)
{
    struct gpu_state *s = b->state;
    const struct gm_model *m = &s->shape;
    int k = (int)m->classes, rc;

    rc = ck(s, s->cu->cuMemsetD32Async(s->correct, 0, 1, s->stream), "cuMemsetD32Async", err);
    for (uint32_t r0 = 0; r0 < s->n_eval && rc == 0; r0 += s->rows) {
        int rows = (int)(s->n_eval - r0 < s->rows ? s->n_eval - r0 : s->rows);
        CUdeviceptr in = s->eval_x + (size_t)r0 * m->inputs * 4, y = s->eval_y + (size_t)r0 * 4,
                    logits = s->act[m->n_layers];
        void *args[] = {&logits, &y, &rows, &k, &s->correct};

        rc = forward(s, in, (uint32_t)rows, err);
        rc = rc ? rc
                : launch(s, K_COUNT_CORRECT, blocks((size_t)rows, THREADS), 1, THREADS, 1, args,
                         err);
    }
    rc = rc ? rc : ck(s, s->cu->cuMemcpyDtoHAsync(correct, s->correct, 4, s->stream), "read", err);
    return rc ? rc : ck(s, s->cu->cuStreamSynchronize(s->stream), "cuStreamSynchronize", err);
}

const struct gt_backend_ops gt_backend_gpu = {
    .name = "gpu",
    .open = gpu_open,
    .step = gpu_step,
    .take_loss = gpu_take_loss,
    .get_params = gpu_get_params,
    .set_params = gpu_set_params,
    .evaluate = gpu_evaluate,
    .close = gpu_close,
};
