/*
 * What this node has (agent.h: agent_discover): GPUs through the CUDA driver
 * API and NVML (both loaded at run time by gpu-runtime/common/cuda.c), and
 * the host's name, CPUs, memory and disk. Either GPU library may be absent:
 * with CUDA alone the GPUs come from CUDA's attributes (no current clocks,
 * PCIe link or MIG mode); with NVML alone from NVML (indices are then NVML's,
 * and there is no SM count); with neither, "gpus" is empty and
 * "driver.error" says why. Blocking (cuInit and nvmlInit can take a second).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "agent.h"
#include "cuda.h"

/* ---- the host ---- */

static long long meminfo_total(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    long long kb = -1;

    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "MemTotal: %lld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    if (kb > 0)
        return kb * 1024;
    {
        struct sysinfo si;

        if (sysinfo(&si) == 0)
            return (long long)si.totalram * si.mem_unit;
    }
    return -1;
}

static json_t *disk_json(const char *disk_path)
{
    char path[PATH_MAX];
    struct statvfs st;
    json_t *d;

    if (disk_path == NULL || *disk_path == '\0') {
        if (getcwd(path, sizeof(path)) == NULL)
            snprintf(path, sizeof(path), ".");
    } else if (realpath(disk_path, path) == NULL) {
        snprintf(path, sizeof(path), "%s", disk_path);
    }
    d = json_pack("{s:s}", "path", path);
    if (d == NULL)
        return NULL;
    if (statvfs(path, &st) == 0) {
        json_object_set_new(
            d, "total_bytes",
            json_integer((json_int_t)((unsigned long long)st.f_blocks * st.f_frsize)));
        json_object_set_new(
            d, "free_bytes",
            json_integer((json_int_t)((unsigned long long)st.f_bavail * st.f_frsize)));
    } else {
        json_object_set_new(d, "total_bytes", json_null());
        json_object_set_new(d, "free_bytes", json_null());
    }
    return d;
}

static json_t *host_json(const char *disk_path)
{
    char name[256] = "";
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    long long mem = meminfo_total();

    if (gethostname(name, sizeof(name) - 1) != 0)
        name[0] = '\0';
    return json_pack("{s:s,s:o,s:o,s:o}", "hostname", name, "cpus",
                     cpus > 0 ? json_integer(cpus) : json_null(), "memory_bytes",
                     mem > 0 ? json_integer(mem) : json_null(), "disk", disk_json(disk_path));
}

/* ---- the driver ---- */

/* "550.54.15" from NVML, else from the kernel module's /proc file. */
static json_t *driver_version(const struct gr_nvml_api *nv)
{
    char v[NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE] = "", line[256];
    FILE *f;

    if (nv && nv->nvmlSystemGetDriverVersion &&
        nv->nvmlSystemGetDriverVersion(v, sizeof(v)) == NVML_SUCCESS && v[0])
        return json_string(v);
    /* "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 ..." */
    f = fopen("/proc/driver/nvidia/version", "r");
    if (f && fgets(line, sizeof(line), f)) {
        char *p = strstr(line, "Kernel Module");

        if (p && sscanf(p + strlen("Kernel Module"), " %79s", v) == 1) {
            fclose(f);
            return json_string(v);
        }
    }
    if (f)
        fclose(f);
    return json_null();
}

/* "12.4" from cuDriverGetVersion (12040), else NVML. */
static json_t *cuda_version(const struct gr_cuda_api *cu, const struct gr_nvml_api *nv)
{
    char s[16];
    int v = 0;

    if (!(cu && cu->cuDriverGetVersion(&v) == CUDA_SUCCESS && v > 0) &&
        !(nv && nv->nvmlSystemGetCudaDriverVersion &&
          nv->nvmlSystemGetCudaDriverVersion(&v) == NVML_SUCCESS && v > 0))
        return json_null();
    snprintf(s, sizeof(s), "%d.%d", v / 1000, (v % 1000) / 10);
    return json_string(s);
}

/* ---- one GPU ---- */

static json_t *uint_or_null(unsigned v)
{
    return v > 0 ? json_integer(v) : json_null();
}

static unsigned nv_uint(gr_nvmlDeviceGetUint_fn fn, nvmlDevice_t d)
{
    unsigned v = 0;

    return fn && fn(d, &v) == NVML_SUCCESS ? v : 0;
}

static unsigned nv_clock(gr_nvmlDeviceGetClock_fn fn, nvmlDevice_t d, int type)
{
    unsigned v = 0;

    return fn && fn(d, type, &v) == NVML_SUCCESS ? v : 0;
}

static json_t *mode_json(nvmlReturn_t rc, unsigned current)
{
    if (rc == NVML_ERROR_NOT_SUPPORTED)
        return json_string("unsupported");
    if (rc != NVML_SUCCESS)
        return json_null();
    return json_string(current ? "enabled" : "disabled");
}

/* What NVML adds to (or fills in) a GPU's entry. */
static void gpu_nvml(json_t *g, const struct gr_nvml_api *nv, nvmlDevice_t d)
{
    unsigned cur = 0, pend = 0, idx = 0;
    nvmlEnableState_t ec = 0, ep = 0;
    json_t *clocks = json_object_get(g, "clocks");
    nvmlMemory_t mem;
    nvmlReturn_t rc;

    if (nv->nvmlDeviceGetIndex && nv->nvmlDeviceGetIndex(d, &idx) == NVML_SUCCESS)
        json_object_set_new(g, "nvml_index", json_integer(idx));
    json_object_set_new(clocks, "sm_max_mhz",
                        uint_or_null(nv_clock(nv->nvmlDeviceGetMaxClockInfo, d, NVML_CLOCK_SM)));
    json_object_set_new(clocks, "mem_max_mhz",
                        uint_or_null(nv_clock(nv->nvmlDeviceGetMaxClockInfo, d, NVML_CLOCK_MEM)));
    json_object_set_new(clocks, "sm_mhz",
                        uint_or_null(nv_clock(nv->nvmlDeviceGetClockInfo, d, NVML_CLOCK_SM)));
    json_object_set_new(clocks, "mem_mhz",
                        uint_or_null(nv_clock(nv->nvmlDeviceGetClockInfo, d, NVML_CLOCK_MEM)));
    if (json_is_null(json_object_get(g, "memory_bus_width_bits")))
        json_object_set_new(g, "memory_bus_width_bits",
                            uint_or_null(nv_uint(nv->nvmlDeviceGetMemoryBusWidth, d)));
    json_object_set_new(
        g, "pcie",
        json_pack("{s:o,s:o,s:o,s:o}", "gen",
                  uint_or_null(nv_uint(nv->nvmlDeviceGetCurrPcieLinkGeneration, d)), "width",
                  uint_or_null(nv_uint(nv->nvmlDeviceGetCurrPcieLinkWidth, d)), "max_gen",
                  uint_or_null(nv_uint(nv->nvmlDeviceGetMaxPcieLinkGeneration, d)), "max_width",
                  uint_or_null(nv_uint(nv->nvmlDeviceGetMaxPcieLinkWidth, d))));
    rc = nv->nvmlDeviceGetMigMode ? nv->nvmlDeviceGetMigMode(d, &cur, &pend)
                                  : NVML_ERROR_FUNCTION_NOT_FOUND;
    json_object_set_new(g, "mig_mode", mode_json(rc, cur == NVML_DEVICE_MIG_ENABLE));
    rc = nv->nvmlDeviceGetEccMode ? nv->nvmlDeviceGetEccMode(d, &ec, &ep)
                                  : NVML_ERROR_FUNCTION_NOT_FOUND;
    if (rc == NVML_SUCCESS || rc == NVML_ERROR_NOT_SUPPORTED ||
        json_is_null(json_object_get(g, "ecc_mode")))
        json_object_set_new(g, "ecc_mode", mode_json(rc, ec == NVML_FEATURE_ENABLED));
    if (nv->nvmlDeviceGetMemoryInfo && nv->nvmlDeviceGetMemoryInfo(d, &mem) == NVML_SUCCESS) {
        if (json_is_null(json_object_get(g, "memory_bytes")))
            json_object_set_new(g, "memory_bytes", json_integer((json_int_t)mem.total));
        json_object_set_new(g, "memory_free_bytes", json_integer((json_int_t)mem.free));
    }
}

static int cu_attr(const struct gr_cuda_api *cu, CUdevice dev, int attr)
{
    int v = 0;

    return cu->cuDeviceGetAttribute(&v, attr, dev) == CUDA_SUCCESS ? v : 0;
}

/* An entry with every key of agent.h, null where unknown. */
static json_t *gpu_skeleton(int index)
{
    return json_pack("{s:i,s:n,s:n,s:n,s:n,s:n,s:n,s:{s:n,s:n,s:n,s:n},s:n,"
                     "s:{s:n,s:n,s:n,s:n},s:n,s:n}",
                     "index", index, "name", "uuid", "pci_bus_id", "memory_bytes",
                     "compute_capability", "sm_count", "clocks", "sm_max_mhz", "mem_max_mhz",
                     "sm_mhz", "mem_mhz", "memory_bus_width_bits", "pcie", "gen", "width",
                     "max_gen", "max_width", "mig_mode", "ecc_mode");
}

static json_t *gpu_from_cuda(const struct gr_cuda_api *cu, const struct gr_nvml_api *nv, int i)
{
    char name[256], bus[NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE], uuid[GR_UUID_LEN], cc[16];
    json_t *g = gpu_skeleton(i), *clocks;
    nvmlDevice_t nvd;
    size_t total = 0;
    CUdevice dev;
    CUuuid u;
    int ecc;

    if (g == NULL || cu->cuDeviceGet(&dev, i) != CUDA_SUCCESS)
        return g;
    clocks = json_object_get(g, "clocks");
    if (cu->cuDeviceGetName(name, sizeof(name), dev) == CUDA_SUCCESS)
        json_object_set_new(g, "name", json_string(name));
    if (cu->cuDeviceGetUuid(&u, dev) == CUDA_SUCCESS) {
        gr_cuda_uuid_format(&u, uuid);
        json_object_set_new(g, "uuid", json_string(uuid));
    }
    if (cu->cuDeviceGetPCIBusId(bus, sizeof(bus), dev) == CUDA_SUCCESS)
        json_object_set_new(g, "pci_bus_id", json_string(bus));
    if (cu->cuDeviceTotalMem(&total, dev) == CUDA_SUCCESS)
        json_object_set_new(g, "memory_bytes", json_integer((json_int_t)total));
    snprintf(cc, sizeof(cc), "%d.%d",
             cu_attr(cu, dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR),
             cu_attr(cu, dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR));
    json_object_set_new(g, "compute_capability", json_string(cc));
    json_object_set_new(
        g, "sm_count",
        uint_or_null((unsigned)cu_attr(cu, dev, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)));
    json_object_set_new(
        clocks, "sm_max_mhz",
        uint_or_null((unsigned)cu_attr(cu, dev, CU_DEVICE_ATTRIBUTE_CLOCK_RATE) / 1000));
    json_object_set_new(
        clocks, "mem_max_mhz",
        uint_or_null((unsigned)cu_attr(cu, dev, CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE) / 1000));
    json_object_set_new(
        g, "memory_bus_width_bits",
        uint_or_null((unsigned)cu_attr(cu, dev, CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH)));
    json_object_set_new(
        g, "l2_cache_bytes",
        uint_or_null((unsigned)cu_attr(cu, dev, CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE)));
    if (cu->cuDeviceGetAttribute(&ecc, CU_DEVICE_ATTRIBUTE_ECC_ENABLED, dev) == CUDA_SUCCESS)
        json_object_set_new(g, "ecc_mode", json_string(ecc ? "enabled" : "disabled"));
    if (nv && gr_nvml_device_for_cuda(dev, &nvd)) {
        nvmlPciInfo_t pci;

        /* NVML's form, as nvidia-smi prints it: "00000000:3B:00.0" */
        if (nv->nvmlDeviceGetPciInfo && nv->nvmlDeviceGetPciInfo(nvd, &pci) == NVML_SUCCESS)
            json_object_set_new(g, "pci_bus_id", json_string(pci.busId));
        gpu_nvml(g, nv, nvd);
    }
    return g;
}

static json_t *gpu_from_nvml(const struct gr_nvml_api *nv, unsigned i)
{
    char name[NVML_DEVICE_NAME_V2_BUFFER_SIZE], uuid[NVML_DEVICE_UUID_V2_BUFFER_SIZE], cc[16];
    json_t *g = gpu_skeleton((int)i);
    nvmlPciInfo_t pci;
    nvmlDevice_t d;
    int major, minor;

    if (g == NULL || nv->nvmlDeviceGetHandleByIndex(i, &d) != NVML_SUCCESS)
        return g;
    if (nv->nvmlDeviceGetName && nv->nvmlDeviceGetName(d, name, sizeof(name)) == NVML_SUCCESS)
        json_object_set_new(g, "name", json_string(name));
    if (nv->nvmlDeviceGetUUID && nv->nvmlDeviceGetUUID(d, uuid, sizeof(uuid)) == NVML_SUCCESS)
        json_object_set_new(g, "uuid", json_string(uuid));
    if (nv->nvmlDeviceGetPciInfo && nv->nvmlDeviceGetPciInfo(d, &pci) == NVML_SUCCESS)
        json_object_set_new(g, "pci_bus_id", json_string(pci.busId));
    if (nv->nvmlDeviceGetCudaComputeCapability &&
        nv->nvmlDeviceGetCudaComputeCapability(d, &major, &minor) == NVML_SUCCESS) {
        snprintf(cc, sizeof(cc), "%d.%d", major, minor);
        json_object_set_new(g, "compute_capability", json_string(cc));
    }
    gpu_nvml(g, nv, d);
    return g;
}

/* ---- the whole answer ---- */

json_t *agent_discover(const char *disk_path)
{
    char cwhy[256] = "", nwhy[256] = "", err[600] = "";
    const struct gr_cuda_api *cu = gr_cuda_load(cwhy, sizeof(cwhy));
    const struct gr_nvml_api *nv = gr_nvml_load(nwhy, sizeof(nwhy));
    json_t *root, *driver, *gpus = json_array();
    int count = 0;

    if (cu && cu->cuDeviceGetCount(&count) != CUDA_SUCCESS)
        count = 0;
    for (int i = 0; cu && gpus && i < count; i++)
        json_array_append_new(gpus, gpu_from_cuda(cu, nv, i));
    if (cu == NULL && nv && gpus) {
        unsigned n = 0;

        if (nv->nvmlDeviceGetCount(&n) == NVML_SUCCESS)
            for (unsigned i = 0; i < n; i++)
                json_array_append_new(gpus, gpu_from_nvml(nv, i));
    }
    driver = json_pack("{s:b,s:b,s:o,s:o}", "cuda", cu != NULL, "nvml", nv != NULL, "version",
                       driver_version(nv), "cuda_version", cuda_version(cu, nv));
    if (driver && json_array_size(gpus) == 0) {
        if (cu)
            snprintf(err, sizeof(err), "no CUDA device");
        else if (nv)
            snprintf(err, sizeof(err), "%s; NVML lists no GPU", cwhy);
        else
            snprintf(err, sizeof(err), "%s; %s", cwhy, nwhy);
        json_object_set_new(driver, "error", json_string(err));
    }
    root = json_pack("{s:{s:s},s:o,s:o,s:o}", "agent", "version", GPU_AGENT_VERSION, "host",
                     host_json(disk_path), "driver", driver, "gpus", gpus);
    return root;
}
