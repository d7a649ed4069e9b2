/*
 * The CUDA driver API and NVML, loaded at run time with dlopen, for gpu-agent
 * and the reference workloads. Nothing here needs the CUDA toolkit's headers
 * or libraries to build: the types below are our own ABI-compatible subset of
 * cuda.h and nvml.h (same names, same values), and the functions are reached
 * through two tables of pointers filled from the versioned symbols the driver
 * exports (cuMemAlloc_v2, nvmlInit_v2, ...; see cuda.c for each name).
 *
 * A node without the driver is a normal answer: gr_cuda_load() then returns
 * NULL with why = "libcuda.so.1 not found: no NVIDIA driver", never crashes.
 * GR_LIBCUDA and GR_LIBNVML (environment) replace the library file names, for
 * tests. A successful load is kept for the life of the process (the tables are
 * then read-only and safe to use from any thread); a failed one is tried again
 * on the next call.
 *
 * Usage (the thread that calls CUDA must have the context current):
 *     char why[256];
 *     const struct gr_cuda_api *cu = gr_cuda_load(why, sizeof(why));
 *     struct gr_cuda_ctx ctx;
 *     if (cu == NULL || gr_cuda_ctx_open(0, &ctx, why, sizeof(why)) < 0) ...
 *     CUdeviceptr p;
 *     rc = gr_cu_check(cu->cuMemAlloc(&p, bytes), why, sizeof(why), "cuMemAlloc");
 *     ...
 *     gr_cuda_ctx_close(&ctx);
 *
 * Error convention: functions returning int give 0 or a negative ORC_E* code
 * (orc/errno.h) with a sentence in why (may be NULL). Everything here starts
 * with gr_; the CUDA/NVML type and constant names are the vendor's.
 */
#ifndef GR_CUDA_H
#define GR_CUDA_H

#include <stdbool.h>
#include <stddef.h>

/* ====================================================================== */
/* CUDA driver API: types and constants (values as in cuda.h, CUDA 11-13) */
/* ====================================================================== */

typedef int CUresult; /* enum cudaError_enum */
typedef int CUdevice;
typedef unsigned long long CUdeviceptr; /* CUdeviceptr_v2 on 64-bit hosts */
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUstream_st *CUstream;
typedef struct CUevent_st *CUevent;
typedef struct CUuuid_st {
    char bytes[16];
} CUuuid;
typedef int CUdevice_attribute;
typedef int CUfunction_attribute;

enum {
    CUDA_SUCCESS = 0,
    CUDA_ERROR_INVALID_VALUE = 1,
    CUDA_ERROR_OUT_OF_MEMORY = 2,
    CUDA_ERROR_NOT_INITIALIZED = 3,
    CUDA_ERROR_DEINITIALIZED = 4,
    CUDA_ERROR_STUB_LIBRARY = 34,
    CUDA_ERROR_CALL_REQUIRES_NEWER_DRIVER = 36,
    CUDA_ERROR_DEVICE_UNAVAILABLE = 46,
    CUDA_ERROR_NO_DEVICE = 100,
    CUDA_ERROR_INVALID_DEVICE = 101,
    CUDA_ERROR_INVALID_IMAGE = 200,
    CUDA_ERROR_INVALID_CONTEXT = 201,
    CUDA_ERROR_NO_BINARY_FOR_GPU = 209,
    CUDA_ERROR_ECC_UNCORRECTABLE = 214,
    CUDA_ERROR_INVALID_PTX = 218,
    CUDA_ERROR_JIT_COMPILER_NOT_FOUND = 221,
    CUDA_ERROR_UNSUPPORTED_PTX_VERSION = 222,
    CUDA_ERROR_OPERATING_SYSTEM = 304,
    CUDA_ERROR_INVALID_HANDLE = 400,
    CUDA_ERROR_NOT_FOUND = 500,
    CUDA_ERROR_NOT_READY = 600,
    CUDA_ERROR_ILLEGAL_ADDRESS = 700,
    CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES = 701,
    CUDA_ERROR_LAUNCH_TIMEOUT = 702,
    CUDA_ERROR_LAUNCH_FAILED = 719,
    CUDA_ERROR_NOT_PERMITTED = 800,
    CUDA_ERROR_NOT_SUPPORTED = 801,
    CUDA_ERROR_SYSTEM_NOT_READY = 802,
    CUDA_ERROR_SYSTEM_DRIVER_MISMATCH = 803,
    CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE = 804,
    CUDA_ERROR_UNKNOWN = 999,
};

enum { /* CUdevice_attribute */
       CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK = 1,
       CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X = 5,
       CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK = 8,
       CU_DEVICE_ATTRIBUTE_TOTAL_CONSTANT_MEMORY = 9,
       CU_DEVICE_ATTRIBUTE_WARP_SIZE = 10,
       CU_DEVICE_ATTRIBUTE_CLOCK_RATE = 13, /* kHz, the SM's peak ("boost") clock */
       CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16,
       CU_DEVICE_ATTRIBUTE_INTEGRATED = 18,
       CU_DEVICE_ATTRIBUTE_COMPUTE_MODE = 20,
       CU_DEVICE_ATTRIBUTE_ECC_ENABLED = 32,
       CU_DEVICE_ATTRIBUTE_PCI_BUS_ID = 33,
       CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID = 34,
       CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE = 36,       /* kHz, peak */
       CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH = 37, /* bits */
       CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE = 38,
       CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR = 39,
       CU_DEVICE_ATTRIBUTE_ASYNC_ENGINE_COUNT = 40,
       CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING = 41,
       CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID = 50,
       CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75,
       CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76,
       CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR = 81,
       CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_MULTIPROCESSOR = 82,
       CU_DEVICE_ATTRIBUTE_MULTI_GPU_BOARD = 84,
       CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97,
       CU_DEVICE_ATTRIBUTE_MAX_BLOCKS_PER_MULTIPROCESSOR = 106,
};

enum { /* CUfunction_attribute */
       CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK = 0,
       CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES = 1,
       CU_FUNC_ATTRIBUTE_CONST_SIZE_BYTES = 2,
       CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES = 3,
       CU_FUNC_ATTRIBUTE_NUM_REGS = 4,
       CU_FUNC_ATTRIBUTE_PTX_VERSION = 5,
       CU_FUNC_ATTRIBUTE_BINARY_VERSION = 6,
       CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8,
};

enum { CU_STREAM_DEFAULT = 0x0, CU_STREAM_NON_BLOCKING = 0x1 };
enum { CU_EVENT_DEFAULT = 0x0, CU_EVENT_BLOCKING_SYNC = 0x1, CU_EVENT_DISABLE_TIMING = 0x2 };
enum { CU_MEMHOSTALLOC_PORTABLE = 0x01, CU_MEMHOSTALLOC_DEVICEMAP = 0x02 };

/* ---- the driver API's function types (the _v2 signatures: size_t sizes) ---- */
typedef CUresult (*gr_cuInit_fn)(unsigned int flags);
typedef CUresult (*gr_cuDriverGetVersion_fn)(int *version);
typedef CUresult (*gr_cuGetErrorName_fn)(CUresult rc, const char **name);
typedef CUresult (*gr_cuGetErrorString_fn)(CUresult rc, const char **text);
typedef CUresult (*gr_cuDeviceGetCount_fn)(int *count);
typedef CUresult (*gr_cuDeviceGet_fn)(CUdevice *dev, int ordinal);
typedef CUresult (*gr_cuDeviceGetName_fn)(char *name, int len, CUdevice dev);
typedef CUresult (*gr_cuDeviceGetUuid_fn)(CUuuid *uuid, CUdevice dev);
typedef CUresult (*gr_cuDeviceTotalMem_fn)(size_t *bytes, CUdevice dev);
typedef CUresult (*gr_cuDeviceGetAttribute_fn)(int *value, CUdevice_attribute attr, CUdevice dev);
typedef CUresult (*gr_cuDeviceGetPCIBusId_fn)(char *bus_id, int len, CUdevice dev);
typedef CUresult (*gr_cuDevicePrimaryCtxRetain_fn)(CUcontext *ctx, CUdevice dev);
typedef CUresult (*gr_cuDevicePrimaryCtxRelease_fn)(CUdevice dev);
typedef CUresult (*gr_cuCtxSetCurrent_fn)(CUcontext ctx);
typedef CUresult (*gr_cuCtxGetCurrent_fn)(CUcontext *ctx);
typedef CUresult (*gr_cuCtxGetDevice_fn)(CUdevice *dev);
typedef CUresult (*gr_cuCtxSynchronize_fn)(void);
typedef CUresult (*gr_cuMemGetInfo_fn)(size_t *free_bytes, size_t *total_bytes);
typedef CUresult (*gr_cuMemAlloc_fn)(CUdeviceptr *dptr, size_t bytes);
typedef CUresult (*gr_cuMemFree_fn)(CUdeviceptr dptr);
typedef CUresult (*gr_cuMemAllocHost_fn)(void **p, size_t bytes);
typedef CUresult (*gr_cuMemFreeHost_fn)(void *p);
typedef CUresult (*gr_cuMemcpyHtoD_fn)(CUdeviceptr dst, const void *src, size_t bytes);
typedef CUresult (*gr_cuMemcpyDtoH_fn)(void *dst, CUdeviceptr src, size_t bytes);
typedef CUresult (*gr_cuMemcpyDtoD_fn)(CUdeviceptr dst, CUdeviceptr src, size_t bytes);
typedef CUresult (*gr_cuMemcpyHtoDAsync_fn)(CUdeviceptr dst, const void *src, size_t bytes,
                                            CUstream s);
typedef CUresult (*gr_cuMemcpyDtoHAsync_fn)(void *dst, CUdeviceptr src, size_t bytes, CUstream s);
typedef CUresult (*gr_cuMemcpyDtoDAsync_fn)(CUdeviceptr dst, CUdeviceptr src, size_t bytes,
                                            CUstream s);
typedef CUresult (*gr_cuMemsetD8_fn)(CUdeviceptr dst, unsigned char value, size_t n);
typedef CUresult (*gr_cuMemsetD32_fn)(CUdeviceptr dst, unsigned int value, size_t n);
typedef CUresult (*gr_cuMemsetD8Async_fn)(CUdeviceptr dst, unsigned char value, size_t n,
                                          CUstream s);
typedef CUresult (*gr_cuMemsetD32Async_fn)(CUdeviceptr dst, unsigned int value, size_t n,
                                           CUstream s);
typedef CUresult (*gr_cuStreamCreate_fn)(CUstream *s, unsigned int flags);
typedef CUresult (*gr_cuStreamDestroy_fn)(CUstream s);
typedef CUresult (*gr_cuStreamSynchronize_fn)(CUstream s);
typedef CUresult (*gr_cuStreamWaitEvent_fn)(CUstream s, CUevent e, unsigned int flags);
typedef CUresult (*gr_cuEventCreate_fn)(CUevent *e, unsigned int flags);
typedef CUresult (*gr_cuEventDestroy_fn)(CUevent e);
typedef CUresult (*gr_cuEventRecord_fn)(CUevent e, CUstream s);
typedef CUresult (*gr_cuEventQuery_fn)(CUevent e);
typedef CUresult (*gr_cuEventSynchronize_fn)(CUevent e);
typedef CUresult (*gr_cuEventElapsedTime_fn)(float *ms, CUevent start, CUevent end);
typedef CUresult (*gr_cuModuleLoadData_fn)(CUmodule *mod, const void *image);
typedef CUresult (*gr_cuModuleUnload_fn)(CUmodule mod);
typedef CUresult (*gr_cuModuleGetFunction_fn)(CUfunction *fn, CUmodule mod, const char *name);
typedef CUresult (*gr_cuFuncGetAttribute_fn)(int *value, CUfunction_attribute attr, CUfunction fn);
typedef CUresult (*gr_cuFuncSetAttribute_fn)(CUfunction fn, CUfunction_attribute attr, int value);
typedef CUresult (*gr_cuLaunchKernel_fn)(CUfunction fn, unsigned int grid_x, unsigned int grid_y,
                                         unsigned int grid_z, unsigned int block_x,
                                         unsigned int block_y, unsigned int block_z,
                                         unsigned int shared_bytes, CUstream s, void **params,
                                         void **extra);
typedef CUresult (*gr_cuOccupancyMaxActiveBlocksPerMultiprocessor_fn)(int *blocks, CUfunction fn,
                                                                      int block_size,
                                                                      size_t shared_bytes);

/* The driver API, as loaded. Member names are the API's names without their
 * version suffix; each comment names the symbol it comes from. Every member
 * is set once gr_cuda_load() returned the table. */
struct gr_cuda_api {
    gr_cuInit_fn cuInit;                             /* cuInit */
    gr_cuDriverGetVersion_fn cuDriverGetVersion;     /* cuDriverGetVersion */
    gr_cuGetErrorName_fn cuGetErrorName;             /* cuGetErrorName */
    gr_cuGetErrorString_fn cuGetErrorString;         /* cuGetErrorString */
    gr_cuDeviceGetCount_fn cuDeviceGetCount;         /* cuDeviceGetCount */
    gr_cuDeviceGet_fn cuDeviceGet;                   /* cuDeviceGet */
    gr_cuDeviceGetName_fn cuDeviceGetName;           /* cuDeviceGetName */
    gr_cuDeviceGetUuid_fn cuDeviceGetUuid;           /* cuDeviceGetUuid_v2, else cuDeviceGetUuid */
    gr_cuDeviceTotalMem_fn cuDeviceTotalMem;         /* cuDeviceTotalMem_v2 */
    gr_cuDeviceGetAttribute_fn cuDeviceGetAttribute; /* cuDeviceGetAttribute */
    gr_cuDeviceGetPCIBusId_fn cuDeviceGetPCIBusId;   /* cuDeviceGetPCIBusId */
    gr_cuDevicePrimaryCtxRetain_fn cuDevicePrimaryCtxRetain;   /* cuDevicePrimaryCtxRetain */
    gr_cuDevicePrimaryCtxRelease_fn cuDevicePrimaryCtxRelease; /* _v2, else the first one */
    gr_cuCtxSetCurrent_fn cuCtxSetCurrent;                     /* cuCtxSetCurrent */
    gr_cuCtxGetCurrent_fn cuCtxGetCurrent;                     /* cuCtxGetCurrent */
    gr_cuCtxGetDevice_fn cuCtxGetDevice;                       /* cuCtxGetDevice */
    gr_cuCtxSynchronize_fn cuCtxSynchronize;                   /* cuCtxSynchronize (no argument) */
    gr_cuMemGetInfo_fn cuMemGetInfo;                           /* cuMemGetInfo_v2 */
    gr_cuMemAlloc_fn cuMemAlloc;                               /* cuMemAlloc_v2 */
    gr_cuMemFree_fn cuMemFree;                                 /* cuMemFree_v2 */
    gr_cuMemAllocHost_fn cuMemAllocHost;                       /* cuMemAllocHost_v2 (pinned) */
    gr_cuMemFreeHost_fn cuMemFreeHost;                         /* cuMemFreeHost */
    gr_cuMemcpyHtoD_fn cuMemcpyHtoD;                           /* cuMemcpyHtoD_v2 */
    gr_cuMemcpyDtoH_fn cuMemcpyDtoH;                           /* cuMemcpyDtoH_v2 */
    gr_cuMemcpyDtoD_fn cuMemcpyDtoD;                           /* cuMemcpyDtoD_v2 */
    gr_cuMemcpyHtoDAsync_fn cuMemcpyHtoDAsync;                 /* cuMemcpyHtoDAsync_v2 */
    gr_cuMemcpyDtoHAsync_fn cuMemcpyDtoHAsync;                 /* cuMemcpyDtoHAsync_v2 */
    gr_cuMemcpyDtoDAsync_fn cuMemcpyDtoDAsync;                 /* cuMemcpyDtoDAsync_v2 */
    gr_cuMemsetD8_fn cuMemsetD8;                               /* cuMemsetD8_v2 */
    gr_cuMemsetD32_fn cuMemsetD32;                             /* cuMemsetD32_v2 */
    gr_cuMemsetD8Async_fn cuMemsetD8Async;                     /* cuMemsetD8Async */
    gr_cuMemsetD32Async_fn cuMemsetD32Async;                   /* cuMemsetD32Async */
    gr_cuStreamCreate_fn cuStreamCreate;                       /* cuStreamCreate */
    gr_cuStreamDestroy_fn cuStreamDestroy;                     /* cuStreamDestroy_v2 */
    gr_cuStreamSynchronize_fn cuStreamSynchronize;             /* cuStreamSynchronize */
    gr_cuStreamWaitEvent_fn cuStreamWaitEvent;                 /* cuStreamWaitEvent */
    gr_cuEventCreate_fn cuEventCreate;                         /* cuEventCreate */
    gr_cuEventDestroy_fn cuEventDestroy;                       /* cuEventDestroy_v2 */
    gr_cuEventRecord_fn cuEventRecord;                         /* cuEventRecord */
    gr_cuEventQuery_fn cuEventQuery;                           /* cuEventQuery */
    gr_cuEventSynchronize_fn cuEventSynchronize;               /* cuEventSynchronize */
    gr_cuEventElapsedTime_fn cuEventElapsedTime;   /* cuEventElapsedTime (every driver) */
    gr_cuModuleLoadData_fn cuModuleLoadData;       /* cuModuleLoadData */
    gr_cuModuleUnload_fn cuModuleUnload;           /* cuModuleUnload */
    gr_cuModuleGetFunction_fn cuModuleGetFunction; /* cuModuleGetFunction */
    gr_cuFuncGetAttribute_fn cuFuncGetAttribute;   /* cuFuncGetAttribute */
    gr_cuFuncSetAttribute_fn cuFuncSetAttribute;   /* cuFuncSetAttribute */
    gr_cuLaunchKernel_fn cuLaunchKernel;           /* cuLaunchKernel */
    gr_cuOccupancyMaxActiveBlocksPerMultiprocessor_fn cuOccupancyMaxActiveBlocksPerMultiprocessor;
    /* append only */
};

/* ====================================================================== */
/* NVML: types and constants (values as in nvml.h)                        */
/* ====================================================================== */

typedef int nvmlReturn_t;
typedef struct nvmlDevice_st *nvmlDevice_t;
typedef int nvmlEnableState_t;     /* NVML_FEATURE_DISABLED / _ENABLED */
typedef int nvmlClockType_t;       /* NVML_CLOCK_* */
typedef int nvmlMemoryErrorType_t; /* NVML_MEMORY_ERROR_TYPE_* */
typedef int nvmlEccCounterType_t;  /* NVML_VOLATILE_ECC / NVML_AGGREGATE_ECC */
typedef int nvmlPageRetirementCause_t;
typedef int nvmlTemperatureSensors_t;
typedef int nvmlTemperatureThresholds_t;

typedef struct nvmlMemory_st {
    unsigned long long total, free, used; /* bytes */
} nvmlMemory_t;

#define NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE 32
#define NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE 16
#define NVML_DEVICE_NAME_V2_BUFFER_SIZE 96
#define NVML_DEVICE_UUID_V2_BUFFER_SIZE 96
#define NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE 80

typedef struct nvmlPciInfo_st { /* the _v3 layout */
    char busIdLegacy[NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE];
    unsigned int domain;
    unsigned int bus;
    unsigned int device;
    unsigned int pciDeviceId;
    unsigned int pciSubSystemId;
    char busId[NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE]; /* "00000000:3B:00.0" */
} nvmlPciInfo_t;

enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_UNINITIALIZED = 1,
    NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_NO_PERMISSION = 4,
    NVML_ERROR_NOT_FOUND = 6,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
    NVML_ERROR_DRIVER_NOT_LOADED = 9,
    NVML_ERROR_FUNCTION_NOT_FOUND = 13,
    NVML_ERROR_CORRUPTED_INFOROM = 14,
    NVML_ERROR_GPU_IS_LOST = 15,
    NVML_ERROR_RESET_REQUIRED = 16,
    NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18,
    NVML_ERROR_NO_DATA = 21,
    NVML_ERROR_UNKNOWN = 999,
};
enum { NVML_FEATURE_DISABLED = 0, NVML_FEATURE_ENABLED = 1 };
enum { NVML_DEVICE_MIG_DISABLE = 0, NVML_DEVICE_MIG_ENABLE = 1 };
enum { NVML_CLOCK_GRAPHICS = 0, NVML_CLOCK_SM = 1, NVML_CLOCK_MEM = 2, NVML_CLOCK_VIDEO = 3 };
enum { NVML_MEMORY_ERROR_TYPE_CORRECTED = 0, NVML_MEMORY_ERROR_TYPE_UNCORRECTED = 1 };
enum { NVML_VOLATILE_ECC = 0, NVML_AGGREGATE_ECC = 1 };
enum {
    NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS = 0,
    NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR = 1,
};
enum { NVML_TEMPERATURE_GPU = 0 };
enum {
    NVML_TEMPERATURE_THRESHOLD_SHUTDOWN = 0,
    NVML_TEMPERATURE_THRESHOLD_SLOWDOWN = 1,
    NVML_TEMPERATURE_THRESHOLD_MEM_MAX = 2,
    NVML_TEMPERATURE_THRESHOLD_GPU_MAX = 3,
};

/* Clock event ("throttle") reasons, a bit mask (nvmlClocksEventReason*, same
 * bits as the older nvmlClocksThrottleReason*). */
#define nvmlClocksEventReasonGpuIdle 0x0000000000000001ULL
#define nvmlClocksEventReasonApplicationsClocksSetting 0x0000000000000002ULL
#define nvmlClocksEventReasonSwPowerCap 0x0000000000000004ULL
#define nvmlClocksThrottleReasonHwSlowdown 0x0000000000000008ULL
#define nvmlClocksEventReasonSyncBoost 0x0000000000000010ULL
#define nvmlClocksEventReasonSwThermalSlowdown 0x0000000000000020ULL
#define nvmlClocksThrottleReasonHwThermalSlowdown 0x0000000000000040ULL
#define nvmlClocksThrottleReasonHwPowerBrakeSlowdown 0x0000000000000080ULL
#define nvmlClocksEventReasonDisplayClockSetting 0x0000000000000100ULL

typedef nvmlReturn_t (*gr_nvmlInit_fn)(void);
typedef nvmlReturn_t (*gr_nvmlShutdown_fn)(void);
typedef const char *(*gr_nvmlErrorString_fn)(nvmlReturn_t rc);
typedef nvmlReturn_t (*gr_nvmlSystemGetDriverVersion_fn)(char *version, unsigned int len);
typedef nvmlReturn_t (*gr_nvmlSystemGetCudaDriverVersion_fn)(int *version);
typedef nvmlReturn_t (*gr_nvmlDeviceGetCount_fn)(unsigned int *count);
typedef nvmlReturn_t (*gr_nvmlDeviceGetHandleByIndex_fn)(unsigned int index, nvmlDevice_t *dev);
typedef nvmlReturn_t (*gr_nvmlDeviceGetHandleByUUID_fn)(const char *uuid, nvmlDevice_t *dev);
typedef nvmlReturn_t (*gr_nvmlDeviceGetHandleByPciBusId_fn)(const char *bus_id, nvmlDevice_t *dev);
typedef nvmlReturn_t (*gr_nvmlDeviceGetIndex_fn)(nvmlDevice_t dev, unsigned int *index);
typedef nvmlReturn_t (*gr_nvmlDeviceGetName_fn)(nvmlDevice_t dev, char *name, unsigned int len);
typedef nvmlReturn_t (*gr_nvmlDeviceGetUUID_fn)(nvmlDevice_t dev, char *uuid, unsigned int len);
typedef nvmlReturn_t (*gr_nvmlDeviceGetPciInfo_fn)(nvmlDevice_t dev, nvmlPciInfo_t *pci);
typedef nvmlReturn_t (*gr_nvmlDeviceGetMemoryInfo_fn)(nvmlDevice_t dev, nvmlMemory_t *mem);
typedef nvmlReturn_t (*gr_nvmlDeviceGetClock_fn)(nvmlDevice_t dev, nvmlClockType_t type,
                                                 unsigned int *mhz);
typedef nvmlReturn_t (*gr_nvmlDeviceGetUint_fn)(nvmlDevice_t dev, unsigned int *value);
typedef nvmlReturn_t (*gr_nvmlDeviceGetUll_fn)(nvmlDevice_t dev, unsigned long long *value);
typedef nvmlReturn_t (*gr_nvmlDeviceGetState_fn)(nvmlDevice_t dev, nvmlEnableState_t *state);
typedef nvmlReturn_t (*gr_nvmlDeviceGetStatePair_fn)(nvmlDevice_t dev, nvmlEnableState_t *current,
                                                     nvmlEnableState_t *pending);
typedef nvmlReturn_t (*gr_nvmlDeviceGetMigMode_fn)(nvmlDevice_t dev, unsigned int *current,
                                                   unsigned int *pending);
typedef nvmlReturn_t (*gr_nvmlDeviceGetTotalEccErrors_fn)(nvmlDevice_t dev,
                                                          nvmlMemoryErrorType_t type,
                                                          nvmlEccCounterType_t counter,
                                                          unsigned long long *count);
typedef nvmlReturn_t (*gr_nvmlDeviceGetRetiredPages_fn)(nvmlDevice_t dev,
                                                        nvmlPageRetirementCause_t cause,
                                                        unsigned int *count,
                                                        unsigned long long *addresses);
typedef nvmlReturn_t (*gr_nvmlDeviceGetRemappedRows_fn)(nvmlDevice_t dev, unsigned int *corrected,
                                                        unsigned int *uncorrected,
                                                        unsigned int *pending,
                                                        unsigned int *failure);
typedef nvmlReturn_t (*gr_nvmlDeviceGetTemperature_fn)(nvmlDevice_t dev,
                                                       nvmlTemperatureSensors_t sensor,
                                                       unsigned int *celsius);
typedef nvmlReturn_t (*gr_nvmlDeviceGetTemperatureThreshold_fn)(nvmlDevice_t dev,
                                                                nvmlTemperatureThresholds_t which,
                                                                unsigned int *celsius);
typedef nvmlReturn_t (*gr_nvmlDeviceGetCudaComputeCapability_fn)(nvmlDevice_t dev, int *major,
                                                                 int *minor);

/* NVML, as loaded. The first five members are always set; the others are
 * NULL when this driver's NVML lacks them (callers check). */
struct gr_nvml_api {
    gr_nvmlInit_fn nvmlInit;                                     /* nvmlInit_v2 */
    gr_nvmlShutdown_fn nvmlShutdown;                             /* nvmlShutdown */
    gr_nvmlErrorString_fn nvmlErrorString;                       /* nvmlErrorString */
    gr_nvmlDeviceGetCount_fn nvmlDeviceGetCount;                 /* nvmlDeviceGetCount_v2 */
    gr_nvmlDeviceGetHandleByIndex_fn nvmlDeviceGetHandleByIndex; /* _v2 */
    gr_nvmlSystemGetDriverVersion_fn nvmlSystemGetDriverVersion;
    gr_nvmlSystemGetCudaDriverVersion_fn nvmlSystemGetCudaDriverVersion; /* _v2, else v1 */
    gr_nvmlDeviceGetHandleByUUID_fn nvmlDeviceGetHandleByUUID;
    gr_nvmlDeviceGetHandleByPciBusId_fn nvmlDeviceGetHandleByPciBusId; /* _v2 */
    gr_nvmlDeviceGetIndex_fn nvmlDeviceGetIndex;
    gr_nvmlDeviceGetName_fn nvmlDeviceGetName;
    gr_nvmlDeviceGetUUID_fn nvmlDeviceGetUUID;
    gr_nvmlDeviceGetPciInfo_fn nvmlDeviceGetPciInfo;       /* nvmlDeviceGetPciInfo_v3 */
    gr_nvmlDeviceGetMemoryInfo_fn nvmlDeviceGetMemoryInfo; /* v1 struct */
    gr_nvmlDeviceGetClock_fn nvmlDeviceGetClockInfo;       /* current, MHz */
    gr_nvmlDeviceGetClock_fn nvmlDeviceGetMaxClockInfo;    /* max, MHz */
    gr_nvmlDeviceGetUint_fn nvmlDeviceGetCurrPcieLinkGeneration;
    gr_nvmlDeviceGetUint_fn nvmlDeviceGetCurrPcieLinkWidth;
    gr_nvmlDeviceGetUint_fn nvmlDeviceGetMaxPcieLinkGeneration; /* of GPU and system together */
    gr_nvmlDeviceGetUint_fn nvmlDeviceGetMaxPcieLinkWidth;
    gr_nvmlDeviceGetUint_fn nvmlDeviceGetGpuMaxPcieLinkGeneration; /* of the GPU alone */
    gr_nvmlDeviceGetUint_fn nvmlDeviceGetMemoryBusWidth;           /* bits */
    gr_nvmlDeviceGetUint_fn nvmlDeviceGetPowerUsage;               /* mW */
    gr_nvmlDeviceGetUint_fn nvmlDeviceGetEnforcedPowerLimit;       /* mW */
    gr_nvmlDeviceGetMigMode_fn nvmlDeviceGetMigMode;
    gr_nvmlDeviceGetStatePair_fn nvmlDeviceGetEccMode;
    gr_nvmlDeviceGetState_fn nvmlDeviceGetPersistenceMode;
    gr_nvmlDeviceGetState_fn nvmlDeviceGetRetiredPagesPendingStatus;
    gr_nvmlDeviceGetTotalEccErrors_fn nvmlDeviceGetTotalEccErrors;
    gr_nvmlDeviceGetRetiredPages_fn nvmlDeviceGetRetiredPages;
    gr_nvmlDeviceGetRemappedRows_fn nvmlDeviceGetRemappedRows;
    /* nvmlDeviceGetCurrentClocksEventReasons, else ...ClocksThrottleReasons */
    gr_nvmlDeviceGetUll_fn nvmlDeviceGetCurrentClocksEventReasons;
    gr_nvmlDeviceGetTemperature_fn nvmlDeviceGetTemperature;
    gr_nvmlDeviceGetTemperatureThreshold_fn nvmlDeviceGetTemperatureThreshold;
    gr_nvmlDeviceGetCudaComputeCapability_fn nvmlDeviceGetCudaComputeCapability;
    /* append only */
};

/* ====================================================================== */
/* Loading                                                                */
/* ====================================================================== */

/* Loads libcuda.so.1 (or $GR_LIBCUDA) and calls cuInit(0), once per process.
 * Returns the table, or NULL with why filled ("libcuda.so.1 not found: no
 * NVIDIA driver", "libm.so.6 is not the CUDA driver: no symbol cuInit",
 * "libcuda.so.1: cuInit: CUDA_ERROR_NO_DEVICE: no CUDA-capable device is
 * detected"). Any
 * thread; blocking (cuInit can take a second or more). */
const struct gr_cuda_api *gr_cuda_load(char *why, size_t len);

/* The table if gr_cuda_load() succeeded before, else NULL; never loads. */
const struct gr_cuda_api *gr_cuda_loaded(void);

/* The same for libnvidia-ml.so.1 (or $GR_LIBNVML) and nvmlInit_v2. NVML stays
 * initialised for the life of the process. */
const struct gr_nvml_api *gr_nvml_load(char *why, size_t len);
const struct gr_nvml_api *gr_nvml_loaded(void);

/* The file names the loaders use: the environment's, or the defaults. */
const char *gr_cuda_lib_name(void);
const char *gr_nvml_lib_name(void);

/* ====================================================================== */
/* Errors                                                                 */
/* ====================================================================== */

/* "CUDA_ERROR_OUT_OF_MEMORY: out of memory" into buf (from cuGetErrorName
 * and cuGetErrorString; a small built-in table when the driver is not
 * loaded). Returns buf. */
const char *gr_cu_error_text(CUresult rc, char *buf, size_t len);

/* NVML's nvmlErrorString, or "NVML error N" when NVML is not loaded. */
const char *gr_nvml_error_text(nvmlReturn_t rc);

/* The ORC_E* code for a CUresult: 0 for CUDA_SUCCESS, ORC_ENOMEM for out of
 * memory, ORC_ENOTSUP for no binary / not supported / no device, ORC_EIO
 * otherwise. */
int gr_cu_errno(CUresult rc);

/* 0 if rc is CUDA_SUCCESS; otherwise why = "what: NAME: text" and the code
 * from gr_cu_errno(). */
int gr_cu_check(CUresult rc, char *why, size_t len, const char *what);

/* ====================================================================== */
/* Devices and contexts                                                   */
/* ====================================================================== */

/* One device with its primary context retained. */
struct gr_cuda_ctx {
    int ordinal; /* CUDA ordinal (after CUDA_VISIBLE_DEVICES) */
    CUdevice dev;
    CUcontext ctx; /* NULL when not open */
};

/* Number of CUDA devices: 0 when the driver is absent (why filled) or there
 * is no GPU. */
int gr_cuda_device_count(char *why, size_t len);

/* Loads the driver if needed, retains device ordinal's primary context and
 * makes it current on the calling thread. 0, or < 0 with why. Undo with
 * gr_cuda_ctx_close(). */
int gr_cuda_ctx_open(int ordinal, struct gr_cuda_ctx *c, char *why, size_t len);

/* Makes c current on the calling thread (another thread than the opener's). */
int gr_cuda_ctx_bind(const struct gr_cuda_ctx *c, char *why, size_t len);

/* Unsets the current context if it is c's and releases the primary context
 * (the last release frees everything allocated in it). NULL-safe; safe on a
 * zeroed or already closed struct. */
void gr_cuda_ctx_close(struct gr_cuda_ctx *c);

/* "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (nvidia-smi's form) into out,
 * which holds GR_UUID_LEN bytes. */
#define GR_UUID_LEN 41
void gr_cuda_uuid_format(const CUuuid *u, char out[GR_UUID_LEN]);

/* The NVML handle of the physical GPU behind CUDA device dev (matched by PCI
 * bus id, else by UUID). false when either library is not loaded or there is
 * no match. */
bool gr_nvml_device_for_cuda(CUdevice dev, nvmlDevice_t *out);

/* ====================================================================== */
/* Embedded kernels                                                       */
/* ====================================================================== */

/* The fatbin that gpu-runtime/common/embed.S embedded for NAME.cu:
 *     GR_FATBIN_DECLARE(health_kernels);
 *     gr_cuda_module_load(GR_FATBIN(health_kernels), &mod, why, len);
 */
#define GR_FATBIN_DECLARE(name)                                                                    \
    extern const unsigned char gr_fatbin_##name[];                                                 \
    extern const unsigned char gr_fatbin_##name##_end[]
#define GR_FATBIN_SIZE(name) ((size_t)(gr_fatbin_##name##_end - gr_fatbin_##name))
#define GR_FATBIN(name) gr_fatbin_##name, GR_FATBIN_SIZE(name)

/* Loads a fatbin image into the current context (cuModuleLoadData). size 0
 * means the build had no nvcc: ORC_ENOTSUP, why "kernels not built in".
 * A GPU the image has no code for gives ORC_ENOTSUP too (why names its
 * CUDA error). 0 and *mod set, or < 0. */
int gr_cuda_module_load(const void *image, size_t size, CUmodule *mod, char *why, size_t len);

/* cuModuleGetFunction with a message naming the kernel. */
int gr_cuda_module_function(CUmodule mod, const char *name, CUfunction *fn, char *why, size_t len);

/* cuModuleUnload; NULL-safe. */
void gr_cuda_module_unload(CUmodule mod);

#endif
