/*
 * gpu-train, the reference training workload: fits the MLP classifier of the
 * model library on a generated spiral dataset, on the GPU when one is usable
 * (CUDA driver API, kernels built in) and on the CPU otherwise, alone or as
 * one rank of a distributed run (WORLD_SIZE, RANK, MASTER_ADDR, MASTER_PORT,
 * as gpu-agent sets them), and writes the checkpoint gpu-serve loads.
 * Exit status: 0 done; 1 failed (a message says why); 2 bad usage.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../../orchestrator/base.h"
#include "train.h"

static const char usage_text[] =
    "usage: gpu-train [options]\n"
    "  --epochs N            passes over the data (3)\n"
    "  --out PATH            checkpoint to write, atomically (checkpoint.bin; '' for none)\n"
    "  --metrics PATH        metrics JSON to write (none)\n"
    "  --device D            auto (the GPU when one is usable), cpu or gpu (auto)\n"
    "  --samples N           training samples, all ranks together (80000)\n"
    "  --batch N             mini-batch rows (64)\n"
    "  --lr X                learning rate (0.01)\n"
    "  --hidden N            width of the hidden layers (64)\n"
    "  --layers N            hidden layers (2)\n"
    "  --seed S              data and initialisation seed (1)\n"
    "  --data-dim D          input dimensions (2)\n"
    "  --classes K           classes (spiral arms) (3)\n"
    "  --optimizer O         adam or sgd (momentum) (adam)\n"
    "  --momentum X          sgd momentum (0.9)\n"
    "  --label-noise X       fraction of labels replaced at random (0.02)\n"
    "  --name NAME           the model's name (mlp-classifier)\n"
    "  --sync-steps M        distributed: also average every M steps (0: per epoch)\n"
    "  --connect-timeout S   distributed: wait for the other ranks this long (60)\n"
    "  --sync-timeout S      distributed: wait for one average this long (600)\n"
    "  --gpu N               CUDA device (LOCAL_RANK modulo the visible ones)\n"
    "  --compare-devices     train --compare-steps steps on the CPU and on the GPU from the\n"
    "                        same start, print both losses; exit 1 when they differ\n"
    "  --compare-steps N     (50)\n"
    "  --quiet               no per-epoch lines\n"
    "  --version, --help\n"
    "Environment: WORLD_SIZE, RANK, MASTER_ADDR (127.0.0.1), MASTER_PORT (29500),\n"
    "LOCAL_RANK, GPU_TRAIN_CONNECT_TIMEOUT and GPU_TRAIN_SYNC_TIMEOUT (seconds).\n"
    "Prints one line per epoch: epoch 1/3 loss 0.9123 acc 0.712 time 0.12s device cpu\n"
    "Metrics: {\"device\", \"gpu_name\", \"epochs\": [{\"epoch\", \"loss\", \"accuracy\",\n"
    "\"seconds\"}], \"final_loss\", \"final_accuracy\", \"samples\", \"params\", \"world_size\",\n"
    "\"seconds_total\", \"samples_per_second\", ...}\n"
    "Exit status: 0 done, 1 failed, 2 bad usage.\n";

struct cli {
    struct gt_config c;
    bool compare;
    uint32_t compare_steps;
};

static int usage_error(const char *fmt, const char *opt, const char *val)
{
    fprintf(stderr, "gpu-train: ");
    fprintf(stderr, fmt, opt, val);
    fprintf(stderr, "\n(gpu-train --help lists the options)\n");
    return 2;
}

static bool parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (*s == '\0' || *s == '-' || *s == '+')
        return false;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static bool parse_float(const char *s, double min, double max, float *out)
{
    char *end;
    double v;

    if (*s == '\0')
        return false;
    errno = 0;
    v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < min || v > max)
        return false;
    *out = (float)v;
    return true;
}

enum kind { K_U32, K_U64, K_FLOAT, K_SECONDS, K_STR, K_DEVICE, K_OPT, K_NAME, K_INT, K_FLAG };

/* The options: table-driven, each with its kind, range and target. */
struct option {
    const char *name;
    enum kind kind;
    double min, max;
    size_t off; /* in struct cli */
};

#define OPT(n, k, lo, hi, field)                                                                   \
    {                                                                                              \
        n, k, lo, hi, offsetof(struct cli, field)                                                  \
    }
static const struct option options[] = {
    OPT("--epochs", K_U32, 1, 100000, c.epochs),
    OPT("--samples", K_U32, 10, 50000000, c.samples),
    OPT("--batch", K_U32, 1, 65536, c.batch),
    OPT("--hidden", K_U32, 1, GM_MAX_HIDDEN, c.hidden),
    OPT("--layers", K_U32, 1, GM_MAX_HIDDEN_LAYERS, c.layers),
    OPT("--data-dim", K_U32, 2, GM_MAX_INPUTS, c.inputs),
    OPT("--classes", K_U32, 2, GM_MAX_CLASSES, c.classes),
    OPT("--sync-steps", K_U32, 0, 1e9, c.sync_steps),
    OPT("--compare-steps", K_U32, 1, 1e6, compare_steps),
    OPT("--seed", K_U64, 0, 1.8e19, c.seed),
    OPT("--lr", K_FLOAT, 1e-9, 10, c.lr),
    OPT("--momentum", K_FLOAT, 0, 0.999999, c.momentum),
    OPT("--label-noise", K_FLOAT, 0, 1, c.label_noise),
    OPT("--connect-timeout", K_SECONDS, 0.001, 86400, c.connect_timeout_ms),
    OPT("--sync-timeout", K_SECONDS, 0.001, 86400, c.sync_timeout_ms),
    OPT("--out", K_STR, 0, 0, c.out),
    OPT("--metrics", K_STR, 0, 0, c.metrics),
    OPT("--device", K_DEVICE, 0, 0, c.device),
    OPT("--optimizer", K_OPT, 0, 0, c.optimizer),
    OPT("--name", K_NAME, 0, 0, c.name),
    OPT("--gpu", K_INT, 0, 1023, c.gpu_ordinal),
    OPT("--compare-devices", K_FLAG, 0, 0, compare),
    OPT("--quiet", K_FLAG, 0, 0, c.quiet),
};

static int set_option(struct cli *cli, const struct option *o, const char *v)
{
    char *base = (char *)cli + o->off;
    uint64_t u;
    float f;

    switch (o->kind) {
    case K_U32:
    case K_INT:
        if (!parse_u64(v, (uint64_t)o->min, (uint64_t)o->max, &u))
            break;
        if (o->kind == K_INT)
            *(int *)base = (int)u;
        else
            *(uint32_t *)base = (uint32_t)u;
        return 0;
    case K_U64:
        if (!parse_u64(v, 0, UINT64_MAX, &u))
            break;
        *(uint64_t *)base = u;
        return 0;
    case K_FLOAT:
        if (!parse_float(v, o->min, o->max, &f))
            break;
        *(float *)base = f;
        return 0;
    case K_SECONDS:
        if (!parse_float(v, o->min, o->max, &f))
            break;
        *(uint32_t *)base = (uint32_t)ceil((double)f * 1000.0);
        return 0;
    case K_STR:
        *(const char **)base = v;
        return 0;
    case K_DEVICE:
        if (strcmp(v, "auto") && strcmp(v, "cpu") && strcmp(v, "gpu"))
            return usage_error("%s: '%s' is not auto, cpu or gpu", o->name, v);
        *(enum gt_device *)base = v[0] == 'a'   ? GT_DEVICE_AUTO
                                  : v[0] == 'c' ? GT_DEVICE_CPU
                                                : GT_DEVICE_GPU;
        return 0;
    case K_OPT:
        if (strcmp(v, "adam") && strcmp(v, "sgd"))
            return usage_error("%s: '%s' is not adam or sgd", o->name, v);
        *(enum gt_optimizer *)base = v[0] == 'a' ? GT_OPT_ADAM : GT_OPT_SGD;
        return 0;
    case K_NAME:
        if (strlen(v) >= GM_NAME_MAX)
            return usage_error("%s: '%.80s' is longer than 63 characters", o->name, v);
        snprintf(base, GM_NAME_MAX, "%s", v);
        return 0;
    case K_FLAG:
        *(bool *)base = true;
        return 0;
    }
    if (o->kind == K_FLOAT || o->kind == K_SECONDS) {
        char range[64];

        snprintf(range, sizeof(range), "%g..%g", o->min, o->max);
        fprintf(stderr, "gpu-train: %s: '%.80s' is not a number in %s\n", o->name, v, range);
    } else {
        fprintf(stderr, "gpu-train: %s: '%.80s' is not a whole number in %.0f..%.0f\n", o->name, v,
                o->min, o->max);
    }
    fprintf(stderr, "(gpu-train --help lists the options)\n");
    return 2;
}

/* 0 to run, 2 on bad usage, -1 when --help / --version answered. */
static int parse_args(struct cli *cli, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *eq = strchr(arg, '='), *val = NULL;
        size_t n = eq ? (size_t)(eq - arg) : strlen(arg);
        const struct option *o = NULL;

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            fputs(usage_text, stdout);
            return -1;
        }
        if (strcmp(arg, "--version") == 0) {
            printf("gpu-train %s (GPU kernels %s)\n", GPU_TRAIN_VERSION,
                   gt_gpu_kernels_built_in() ? "built in" : "not built in");
            return -1;
        }
        for (size_t k = 0; k < sizeof(options) / sizeof(options[0]); k++)
            if (strlen(options[k].name) == n && strncmp(options[k].name, arg, n) == 0)
                o = &options[k];
        if (o == NULL)
            return usage_error("%s: unknown option%s", arg, "");
        if (o->kind == K_FLAG) {
            if (eq)
                return usage_error("%s takes no value%s", o->name, "");
        } else if (eq) {
            val = eq + 1;
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            return usage_error("%s: needs a value%s", o->name, "");
        }
        int rc = set_option(cli, o, val);
        if (rc)
            return rc;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct cli cli = {.compare_steps = 50};
    struct gt_result r;
    struct gm_error err = {0};
    int rc;

    json_set_alloc_funcs(orc_malloc, orc_free);
    gt_config_default(&cli.c);
    rc = parse_args(&cli, argc, argv);
    if (rc)
        return rc < 0 ? 0 : rc;
    if (gt_config_from_env(&cli.c, &err) < 0 || gt_config_check(&cli.c, &err) < 0) {
        fprintf(stderr, "gpu-train: %s\n(gpu-train --help lists the options)\n", err.msg);
        return 2;
    }
    if (cli.compare) {
        rc = gt_compare_devices(&cli.c, cli.compare_steps, &err);
        if (rc < 0)
            orc_log(ORC_LOG_ERROR, "gpu-train", "%s", err.msg);
        return rc < 0 ? 1 : 0;
    }
    rc = gt_train(&cli.c, &r, &err);
    if (rc < 0) {
        orc_log(ORC_LOG_ERROR, "gpu-train", "%s", err.msg);
        return 1;
    }
    if (!cli.c.quiet) {
        printf("done: %u epochs in %.2fs, %.0f samples/s, loss %.4f acc %.3f, %zu params, "
               "params crc32 %08x",
               r.n_epochs, r.seconds_total, r.samples_per_second, r.epochs[r.n_epochs - 1].loss,
               r.epochs[r.n_epochs - 1].accuracy, r.model.n_params, r.params_crc);
        if (cli.c.rank == 0 && cli.c.out && *cli.c.out)
            printf(", checkpoint %s", cli.c.out);
        printf("\n");
    }
    gt_result_free(&r);
    return fflush(stdout) == 0 ? 0 : 1;
}
