/*
 * The run-time loader of the CUDA driver API and NVML (cuda.h): dlopen of
 * libcuda.so.1 / libnvidia-ml.so.1 (or $GR_LIBCUDA / $GR_LIBNVML), one table
 * of symbols each, with the versioned names the driver exports: where cuda.h
 * maps an API to a _v2 symbol (cuMemAlloc -> cuMemAlloc_v2, size_t sizes) we
 * take that one; where a newer version exists only in recent drivers
 * (cuDeviceGetUuid_v2 11.4, cuDevicePrimaryCtxRelease_v2 11.0) we take it if
 * present and fall back to the older symbol of the same signature; where the
 * newer version has another signature (cuCtxSynchronize_v2 takes a context,
 * CUDA 12.x) or only exists in the newest drivers (cuEventElapsedTime_v2,
 * 12.8) we take the original, which every driver exports. Also error text,
 * primary contexts, CUDA-to-NVML device matching and fatbin modules.
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda.h"
#include "orc/errno.h"

#define CUDA_LIB_DEFAULT "libcuda.so.1"
#define NVML_LIB_DEFAULT "libnvidia-ml.so.1"

/* One slot of a table: where it goes and the symbols to try, in order. */
struct sym {
    size_t off;
    const char *names[3];
    bool required;
};

#define CU(member, ...)                                                                            \
    {                                                                                              \
        offsetof(struct gr_cuda_api, member), {__VA_ARGS__}, true                                  \
    }
static const struct sym cuda_syms[] = {
    CU(cuInit, "cuInit"),
    CU(cuDriverGetVersion, "cuDriverGetVersion"),
    CU(cuGetErrorName, "cuGetErrorName"),
    CU(cuGetErrorString, "cuGetErrorString"),
    CU(cuDeviceGetCount, "cuDeviceGetCount"),
    CU(cuDeviceGet, "cuDeviceGet"),
    CU(cuDeviceGetName, "cuDeviceGetName"),
    CU(cuDeviceGetUuid, "cuDeviceGetUuid_v2", "cuDeviceGetUuid"),
    CU(cuDeviceTotalMem, "cuDeviceTotalMem_v2"),
    CU(cuDeviceGetAttribute, "cuDeviceGetAttribute"),
    CU(cuDeviceGetPCIBusId, "cuDeviceGetPCIBusId"),
    CU(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain"),
    CU(cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2", "cuDevicePrimaryCtxRelease"),
    CU(cuCtxSetCurrent, "cuCtxSetCurrent"),
    CU(cuCtxGetCurrent, "cuCtxGetCurrent"),
    CU(cuCtxGetDevice, "cuCtxGetDevice"),
    CU(cuCtxSynchronize, "cuCtxSynchronize"),
    CU(cuMemGetInfo, "cuMemGetInfo_v2"),
    CU(cuMemAlloc, "cuMemAlloc_v2"),
    CU(cuMemFree, "cuMemFree_v2"),
    CU(cuMemAllocHost, "cuMemAllocHost_v2"),
    CU(cuMemFreeHost, "cuMemFreeHost"),
    CU(cuMemcpyHtoD, "cuMemcpyHtoD_v2"),
    CU(cuMemcpyDtoH, "cuMemcpyDtoH_v2"),
    CU(cuMemcpyDtoD, "cuMemcpyDtoD_v2"),
    CU(cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2"),
    CU(cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2"),
    CU(cuMemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2"),
    CU(cuMemsetD8, "cuMemsetD8_v2"),
    CU(cuMemsetD32, "cuMemsetD32_v2"),
    CU(cuMemsetD8Async, "cuMemsetD8Async"),
    CU(cuMemsetD32Async, "cuMemsetD32Async"),
    CU(cuStreamCreate, "cuStreamCreate"),
    CU(cuStreamDestroy, "cuStreamDestroy_v2"),
    CU(cuStreamSynchronize, "cuStreamSynchronize"),
    CU(cuStreamWaitEvent, "cuStreamWaitEvent"),
    CU(cuEventCreate, "cuEventCreate"),
    CU(cuEventDestroy, "cuEventDestroy_v2"),
    CU(cuEventRecord, "cuEventRecord"),
    CU(cuEventQuery, "cuEventQuery"),
    CU(cuEventSynchronize, "cuEventSynchronize"),
    CU(cuEventElapsedTime, "cuEventElapsedTime"),
    CU(cuModuleLoadData, "cuModuleLoadData"),
    CU(cuModuleUnload, "cuModuleUnload"),
    CU(cuModuleGetFunction, "cuModuleGetFunction"),
    CU(cuFuncGetAttribute, "cuFuncGetAttribute"),
    CU(cuFuncSetAttribute, "cuFuncSetAttribute"),
    CU(cuLaunchKernel, "cuLaunchKernel"),
    CU(cuOccupancyMaxActiveBlocksPerMultiprocessor, "cuOccupancyMaxActiveBlocksPerMultiprocessor"),
};
#undef CU

#define NV(member, req, ...)                                                                       \
    {                                                                                              \
        offsetof(struct gr_nvml_api, member), {__VA_ARGS__}, req                                   \
    }
static const struct sym nvml_syms[] = {
    NV(nvmlInit, true, "nvmlInit_v2"),
    NV(nvmlShutdown, true, "nvmlShutdown"),
    NV(nvmlErrorString, true, "nvmlErrorString"),
    NV(nvmlDeviceGetCount, true, "nvmlDeviceGetCount_v2"),
    NV(nvmlDeviceGetHandleByIndex, true, "nvmlDeviceGetHandleByIndex_v2"),
    NV(nvmlSystemGetDriverVersion, false, "nvmlSystemGetDriverVersion"),
    NV(nvmlSystemGetCudaDriverVersion, false, "nvmlSystemGetCudaDriverVersion_v2",
       "nvmlSystemGetCudaDriverVersion"),
    NV(nvmlDeviceGetHandleByUUID, false, "nvmlDeviceGetHandleByUUID"),
    NV(nvmlDeviceGetHandleByPciBusId, false, "nvmlDeviceGetHandleByPciBusId_v2"),
    NV(nvmlDeviceGetIndex, false, "nvmlDeviceGetIndex"),
    NV(nvmlDeviceGetName, false, "nvmlDeviceGetName"),
    NV(nvmlDeviceGetUUID, false, "nvmlDeviceGetUUID"),
    NV(nvmlDeviceGetPciInfo, false, "nvmlDeviceGetPciInfo_v3"),
    NV(nvmlDeviceGetMemoryInfo, false, "nvmlDeviceGetMemoryInfo"),
    NV(nvmlDeviceGetClockInfo, false, "nvmlDeviceGetClockInfo"),
    NV(nvmlDeviceGetMaxClockInfo, false, "nvmlDeviceGetMaxClockInfo"),
    NV(nvmlDeviceGetCurrPcieLinkGeneration, false, "nvmlDeviceGetCurrPcieLinkGeneration"),
    NV(nvmlDeviceGetCurrPcieLinkWidth, false, "nvmlDeviceGetCurrPcieLinkWidth"),
    NV(nvmlDeviceGetMaxPcieLinkGeneration, false, "nvmlDeviceGetMaxPcieLinkGeneration"),
    NV(nvmlDeviceGetMaxPcieLinkWidth, false, "nvmlDeviceGetMaxPcieLinkWidth"),
    NV(nvmlDeviceGetGpuMaxPcieLinkGeneration, false, "nvmlDeviceGetGpuMaxPcieLinkGeneration"),
    NV(nvmlDeviceGetMemoryBusWidth, false, "nvmlDeviceGetMemoryBusWidth"),
    NV(nvmlDeviceGetPowerUsage, false, "nvmlDeviceGetPowerUsage"),
    NV(nvmlDeviceGetEnforcedPowerLimit, false, "nvmlDeviceGetEnforcedPowerLimit"),
    NV(nvmlDeviceGetMigMode, false, "nvmlDeviceGetMigMode"),
    NV(nvmlDeviceGetEccMode, false, "nvmlDeviceGetEccMode"),
    NV(nvmlDeviceGetPersistenceMode, false, "nvmlDeviceGetPersistenceMode"),
    NV(nvmlDeviceGetRetiredPagesPendingStatus, false, "nvmlDeviceGetRetiredPagesPendingStatus"),
    NV(nvmlDeviceGetTotalEccErrors, false, "nvmlDeviceGetTotalEccErrors"),
    NV(nvmlDeviceGetRetiredPages, false, "nvmlDeviceGetRetiredPages"),
    NV(nvmlDeviceGetRemappedRows, false, "nvmlDeviceGetRemappedRows"),
    NV(nvmlDeviceGetCurrentClocksEventReasons, false, "nvmlDeviceGetCurrentClocksEventReasons",
       "nvmlDeviceGetCurrentClocksThrottleReasons"),
    NV(nvmlDeviceGetTemperature, false, "nvmlDeviceGetTemperature"),
    NV(nvmlDeviceGetTemperatureThreshold, false, "nvmlDeviceGetTemperatureThreshold"),
    NV(nvmlDeviceGetCudaComputeCapability, false, "nvmlDeviceGetCudaComputeCapability"),
};
#undef NV

static pthread_mutex_t load_mu = PTHREAD_MUTEX_INITIALIZER;
static struct gr_cuda_api cuda_api;
static bool cuda_ok;
static struct gr_nvml_api nvml_api;
static bool nvml_ok;

static void say(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *why, size_t len, const char *fmt, ...)
{
    va_list ap;

    if (why == NULL || len == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
}

static const char *lib_name(const char *env, const char *dflt)
{
    const char *s = getenv(env);

    return s && *s ? s : dflt;
}

const char *gr_cuda_lib_name(void)
{
    return lib_name("GR_LIBCUDA", CUDA_LIB_DEFAULT);
}

const char *gr_nvml_lib_name(void)
{
    return lib_name("GR_LIBNVML", NVML_LIB_DEFAULT);
}

/* dlopen; NULL with a sentence that tells "absent" from "present but broken". */
static void *open_lib(const char *name, const char *what, char *why, size_t len)
{
    void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    const char *err;

    if (h != NULL)
        return h;
    err = dlerror();
    if (err == NULL || strstr(err, "No such file") || strstr(err, "cannot open shared object"))
        say(why, len, "%s not found: %s", name, what);
    else
        say(why, len, "cannot load %s: %s", name, err);
    return NULL;
}

/* Fills table from h; false (why: the first required symbol missing). */
static bool resolve(void *h, const char *name, const struct sym *syms, size_t n, void *table,
                    const char *kind, char *why, size_t len)
{
    for (size_t i = 0; i < n; i++) {
        void *p = NULL;

        for (size_t k = 0; k < 3 && syms[i].names[k] && p == NULL; k++)
            p = dlsym(h, syms[i].names[k]);
        if (p == NULL && syms[i].required) {
            if (i == 0)
                say(why, len, "%s is not the %s: no symbol %s", name, kind, syms[i].names[0]);
            else
                say(why, len, "%s: no symbol %s (driver too old?)", name, syms[i].names[0]);
            return false;
        }
        memcpy((char *)table + syms[i].off, &p, sizeof(p));
    }
    return true;
}

const struct gr_cuda_api *gr_cuda_load(char *why, size_t len)
{
    const struct gr_cuda_api *out = NULL;
    const char *name = gr_cuda_lib_name();
    struct gr_cuda_api api;
    void *h;
    CUresult rc;

    pthread_mutex_lock(&load_mu);
    if (cuda_ok) {
        out = &cuda_api;
        goto out_unlock;
    }
    h = open_lib(name, "no NVIDIA driver", why, len);
    if (h == NULL)
        goto out_unlock;
    memset(&api, 0, sizeof(api));
    if (!resolve(h, name, cuda_syms, sizeof(cuda_syms) / sizeof(cuda_syms[0]), &api, "CUDA driver",
                 why, len)) {
        dlclose(h);
        goto out_unlock;
    }
    rc = api.cuInit(0);
    if (rc != CUDA_SUCCESS) {
        const char *ename = NULL, *etext = NULL;

        if (api.cuGetErrorName(rc, &ename) != CUDA_SUCCESS)
            ename = NULL;
        if (api.cuGetErrorString(rc, &etext) != CUDA_SUCCESS)
            etext = NULL;
        say(why, len, "%s: cuInit: %s: %s", name, ename ? ename : "CUDA error",
            etext ? etext : "unknown error");
        /* the driver stays mapped: a library that ran its initialisation is
         * not unloaded (its threads or handlers may outlive the call) */
        goto out_unlock;
    }
    cuda_api = api;
    cuda_ok = true;
    out = &cuda_api;
out_unlock:
    pthread_mutex_unlock(&load_mu);
    return out;
}

const struct gr_cuda_api *gr_cuda_loaded(void)
{
    const struct gr_cuda_api *out;

    pthread_mutex_lock(&load_mu);
    out = cuda_ok ? &cuda_api : NULL;
    pthread_mutex_unlock(&load_mu);
    return out;
}

const struct gr_nvml_api *gr_nvml_load(char *why, size_t len)
{
    const struct gr_nvml_api *out = NULL;
    const char *name = gr_nvml_lib_name();
    struct gr_nvml_api api;
    nvmlReturn_t rc;
    void *h;

    pthread_mutex_lock(&load_mu);
    if (nvml_ok) {
        out = &nvml_api;
        goto out_unlock;
    }
    h = open_lib(name, "no NVIDIA management library", why, len);
    if (h == NULL)
        goto out_unlock;
    memset(&api, 0, sizeof(api));
    if (!resolve(h, name, nvml_syms, sizeof(nvml_syms) / sizeof(nvml_syms[0]), &api,
                 "NVIDIA management library", why, len)) {
        dlclose(h);
        goto out_unlock;
    }
    rc = api.nvmlInit();
    if (rc != NVML_SUCCESS) {
        const char *text = api.nvmlErrorString(rc);

        say(why, len, "%s: nvmlInit: %s", name, text ? text : "unknown error");
        goto out_unlock; /* stays mapped, as for CUDA */
    }
    nvml_api = api;
    nvml_ok = true;
    out = &nvml_api;
out_unlock:
    pthread_mutex_unlock(&load_mu);
    return out;
}

const struct gr_nvml_api *gr_nvml_loaded(void)
{
    const struct gr_nvml_api *out;

    pthread_mutex_lock(&load_mu);
    out = nvml_ok ? &nvml_api : NULL;
    pthread_mutex_unlock(&load_mu);
    return out;
}

/* ---- errors ---- */

/* Names for the codes most likely seen when the driver cannot answer. */
static const struct {
    CUresult rc;
    const char *name, *text;
} cu_codes[] = {
    {CUDA_SUCCESS, "CUDA_SUCCESS", "no error"},
    {CUDA_ERROR_INVALID_VALUE, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {CUDA_ERROR_OUT_OF_MEMORY, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {CUDA_ERROR_NOT_INITIALIZED, "CUDA_ERROR_NOT_INITIALIZED", "initialization error"},
    {CUDA_ERROR_STUB_LIBRARY, "CUDA_ERROR_STUB_LIBRARY", "CUDA driver is a stub library"},
    {CUDA_ERROR_NO_DEVICE, "CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"},
    {CUDA_ERROR_INVALID_DEVICE, "CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"},
    {CUDA_ERROR_NO_BINARY_FOR_GPU, "CUDA_ERROR_NO_BINARY_FOR_GPU",
     "no kernel image is available for execution on the device"},
    {CUDA_ERROR_ILLEGAL_ADDRESS, "CUDA_ERROR_ILLEGAL_ADDRESS",
     "an illegal memory access was encountered"},
    {CUDA_ERROR_LAUNCH_FAILED, "CUDA_ERROR_LAUNCH_FAILED", "unspecified launch failure"},
    {CUDA_ERROR_NOT_SUPPORTED, "CUDA_ERROR_NOT_SUPPORTED", "operation not supported"},
    {CUDA_ERROR_UNKNOWN, "CUDA_ERROR_UNKNOWN", "unknown error"},
};

const char *gr_cu_error_text(CUresult rc, char *buf, size_t len)
{
    const struct gr_cuda_api *cu = gr_cuda_loaded();
    const char *name = NULL, *text = NULL;

    if (cu != NULL) {
        if (cu->cuGetErrorName(rc, &name) != CUDA_SUCCESS)
            name = NULL;
        if (cu->cuGetErrorString(rc, &text) != CUDA_SUCCESS)
            text = NULL;
    }
    for (size_t i = 0; name == NULL && i < sizeof(cu_codes) / sizeof(cu_codes[0]); i++) {
        if (cu_codes[i].rc == rc) {
            name = cu_codes[i].name;
            text = cu_codes[i].text;
        }
    }
    if (name == NULL)
        snprintf(buf, len, "CUDA error %d", rc);
    else
        snprintf(buf, len, "%s: %s", name, text ? text : "no description");
    return buf;
}

const char *gr_nvml_error_text(nvmlReturn_t rc)
{
    static _Thread_local char buf[32];
    const struct gr_nvml_api *nv = gr_nvml_loaded();
    const char *s = nv ? nv->nvmlErrorString(rc) : NULL;

    if (s != NULL)
        return s;
    snprintf(buf, sizeof(buf), "NVML error %d", rc);
    return buf;
}

int gr_cu_errno(CUresult rc)
{
    switch (rc) {
    case CUDA_SUCCESS:
        return 0;
    case CUDA_ERROR_OUT_OF_MEMORY:
        return ORC_ENOMEM;
    case CUDA_ERROR_NO_BINARY_FOR_GPU:
    case CUDA_ERROR_NOT_SUPPORTED:
    case CUDA_ERROR_NO_DEVICE:
    case CUDA_ERROR_INVALID_PTX:
    case CUDA_ERROR_UNSUPPORTED_PTX_VERSION:
    case CUDA_ERROR_JIT_COMPILER_NOT_FOUND:
    case CUDA_ERROR_STUB_LIBRARY:
        return ORC_ENOTSUP;
    case CUDA_ERROR_INVALID_VALUE:
    case CUDA_ERROR_INVALID_DEVICE:
        return ORC_EINVAL;
    default:
        return ORC_EIO;
    }
}

int gr_cu_check(CUresult rc, char *why, size_t len, const char *what)
{
    char text[192];

    if (rc == CUDA_SUCCESS)
        return 0;
    say(why, len, "%s: %s", what, gr_cu_error_text(rc, text, sizeof(text)));
    return gr_cu_errno(rc);
}

/* ---- devices and contexts ---- */

int gr_cuda_device_count(char *why, size_t len)
{
    const struct gr_cuda_api *cu = gr_cuda_load(why, len);
    int n = 0;

    if (cu == NULL)
        return 0;
    if (gr_cu_check(cu->cuDeviceGetCount(&n), why, len, "cuDeviceGetCount") < 0)
        return 0;
    return n;
}

int gr_cuda_ctx_open(int ordinal, struct gr_cuda_ctx *c, char *why, size_t len)
{
    const struct gr_cuda_api *cu = gr_cuda_load(why, len);
    int rc;

    memset(c, 0, sizeof(*c));
    c->ordinal = ordinal;
    if (cu == NULL)
        return ORC_ENOTSUP;
    rc = gr_cu_check(cu->cuDeviceGet(&c->dev, ordinal), why, len, "cuDeviceGet");
    if (rc < 0)
        return rc;
    rc = gr_cu_check(cu->cuDevicePrimaryCtxRetain(&c->ctx, c->dev), why, len,
                     "cuDevicePrimaryCtxRetain");
    if (rc < 0) {
        c->ctx = NULL;
        return rc;
    }
    rc = gr_cu_check(cu->cuCtxSetCurrent(c->ctx), why, len, "cuCtxSetCurrent");
    if (rc < 0) {
        cu->cuDevicePrimaryCtxRelease(c->dev);
        c->ctx = NULL;
    }
    return rc;
}

int gr_cuda_ctx_bind(const struct gr_cuda_ctx *c, char *why, size_t len)
{
    const struct gr_cuda_api *cu = gr_cuda_loaded();

    if (cu == NULL || c->ctx == NULL) {
        say(why, len, "no CUDA context to make current");
        return ORC_EINVAL;
    }
    return gr_cu_check(cu->cuCtxSetCurrent(c->ctx), why, len, "cuCtxSetCurrent");
}

void gr_cuda_ctx_close(struct gr_cuda_ctx *c)
{
    const struct gr_cuda_api *cu = gr_cuda_loaded();
    CUcontext cur = NULL;

    if (c == NULL || c->ctx == NULL || cu == NULL)
        return;
    if (cu->cuCtxGetCurrent(&cur) == CUDA_SUCCESS && cur == c->ctx)
        cu->cuCtxSetCurrent(NULL);
    cu->cuDevicePrimaryCtxRelease(c->dev);
    c->ctx = NULL;
}

void gr_cuda_uuid_format(const CUuuid *u, char out[GR_UUID_LEN])
{
    const unsigned char *b = (const unsigned char *)u->bytes;

    snprintf(out, GR_UUID_LEN,
             "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
}

bool gr_nvml_device_for_cuda(CUdevice dev, nvmlDevice_t *out)
{
    const struct gr_cuda_api *cu = gr_cuda_loaded();
    const struct gr_nvml_api *nv = gr_nvml_loaded();
    char bus[NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE];
    char uuid[GR_UUID_LEN];
    CUuuid u;

    if (cu == NULL || nv == NULL)
        return false;
    if (nv->nvmlDeviceGetHandleByPciBusId &&
        cu->cuDeviceGetPCIBusId(bus, (int)sizeof(bus), dev) == CUDA_SUCCESS &&
        nv->nvmlDeviceGetHandleByPciBusId(bus, out) == NVML_SUCCESS)
        return true;
    if (nv->nvmlDeviceGetHandleByUUID && cu->cuDeviceGetUuid(&u, dev) == CUDA_SUCCESS) {
        gr_cuda_uuid_format(&u, uuid);
        if (nv->nvmlDeviceGetHandleByUUID(uuid, out) == NVML_SUCCESS)
            return true;
    }
    return false;
}

/* ---- modules ---- */

int gr_cuda_module_load(const void *image, size_t size, CUmodule *mod, char *why, size_t len)
{
    const struct gr_cuda_api *cu = gr_cuda_loaded();
    int rc;

    *mod = NULL;
    if (image == NULL || size == 0) {
        say(why, len, "kernels not built in (this build had no nvcc)");
        return ORC_ENOTSUP;
    }
    if (cu == NULL) {
        say(why, len, "the CUDA driver is not loaded");
        return ORC_ENOTSUP;
    }
    rc = gr_cu_check(cu->cuModuleLoadData(mod, image), why, len, "cuModuleLoadData");
    if (rc < 0)
        *mod = NULL;
    return rc;
}

int gr_cuda_module_function(CUmodule mod, const char *name, CUfunction *fn, char *why, size_t len)
{
    const struct gr_cuda_api *cu = gr_cuda_loaded();
    char what[160];

    *fn = NULL;
    if (cu == NULL || mod == NULL) {
        say(why, len, "kernel %s: no module loaded", name);
        return ORC_EINVAL;
    }
    snprintf(what, sizeof(what), "cuModuleGetFunction(%s)", name);
    return gr_cu_check(cu->cuModuleGetFunction(fn, mod, name), why, len, what);
}

void gr_cuda_module_unload(CUmodule mod)
{
    const struct gr_cuda_api *cu = gr_cuda_loaded();

    if (mod != NULL && cu != NULL)
        cu->cuModuleUnload(mod);
}
