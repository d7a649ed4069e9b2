/*
 * gpu-agent's discovery (gpu-runtime/agent/discover.c) and the CUDA/NVML
 * loader under it (gpu-runtime/common/cuda.c), on machines without a GPU:
 * libraries that are missing, that are not CUDA (libm.so.6), or that are the
 * toolkit's stub; the shape of the `info` JSON either way (on a GPU machine
 * the same test checks every GPU entry's keys); the loader's error text,
 * UUID format, fatbin guard and the embedded health kernels.
 */
#include "testutil.h"

#include "agent.h"
#include "cuda.h"
#include "orc/errno.h"

GR_FATBIN_DECLARE(health_kernels);

static void no_libraries(void)
{
    setenv("GR_LIBCUDA", "/nonexistent/libcuda.so.1", 1);
    setenv("GR_LIBNVML", "/nonexistent/libnvidia-ml.so.1", 1);
}

static void default_libraries(void)
{
    unsetenv("GR_LIBCUDA");
    unsetenv("GR_LIBNVML");
}

/* The keys agent.h promises, whatever the machine. */
static void check_shape(json_t *info)
{
    json_t *host, *disk, *driver, *gpus;

    assert_non_null(info);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(info, "agent"), "version")),
        GPU_AGENT_VERSION);
    host = json_object_get(info, "host");
    assert_true(json_is_string(json_object_get(host, "hostname")));
    assert_true(json_integer_value(json_object_get(host, "cpus")) >= 1);
    assert_true(json_integer_value(json_object_get(host, "memory_bytes")) > 0);
    disk = json_object_get(host, "disk");
    assert_true(json_is_string(json_object_get(disk, "path")));
    driver = json_object_get(info, "driver");
    assert_true(json_is_boolean(json_object_get(driver, "cuda")));
    assert_true(json_is_boolean(json_object_get(driver, "nvml")));
    assert_true(json_is_null(json_object_get(driver, "version")) ||
                json_is_string(json_object_get(driver, "version")));
    assert_true(json_is_null(json_object_get(driver, "cuda_version")) ||
                json_is_string(json_object_get(driver, "cuda_version")));
    gpus = json_object_get(info, "gpus");
    assert_true(json_is_array(gpus));
    if (json_array_size(gpus) == 0)
        assert_true(json_is_string(json_object_get(driver, "error")));
    else
        assert_null(json_object_get(driver, "error"));
    for (size_t i = 0; i < json_array_size(gpus); i++) {
        static const char *keys[] = {"index",      "name",         "uuid",
                                     "pci_bus_id", "memory_bytes", "compute_capability",
                                     "sm_count",   "clocks",       "memory_bus_width_bits",
                                     "pcie",       "mig_mode",     "ecc_mode"};
        json_t *g = json_array_get(gpus, i);

        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
            assert_non_null(json_object_get(g, keys[k]));
        assert_true(json_is_object(json_object_get(g, "clocks")));
        assert_non_null(json_object_get(json_object_get(g, "clocks"), "sm_max_mhz"));
        assert_non_null(json_object_get(json_object_get(g, "pcie"), "max_width"));
    }
}

static void test_missing_libraries(void **state)
{
    json_t *info, *driver;
    const char *err;

    (void)state;
    no_libraries();
    info = agent_discover(NULL);
    check_shape(info);
    driver = json_object_get(info, "driver");
    assert_true(json_is_false(json_object_get(driver, "cuda")));
    assert_true(json_is_false(json_object_get(driver, "nvml")));
    assert_true(json_is_null(json_object_get(driver, "cuda_version")));
    assert_int_equal(json_array_size(json_object_get(info, "gpus")), 0);
    err = json_string_value(json_object_get(driver, "error"));
    assert_non_null(strstr(err, "/nonexistent/libcuda.so.1 not found: no NVIDIA driver"));
    assert_non_null(strstr(err, "/nonexistent/libnvidia-ml.so.1 not found"));
    json_decref(info);
    default_libraries();
}

static void test_not_cuda(void **state)
{
    char why[256] = "";
    json_t *info;
    const char *err;

    (void)state;
    setenv("GR_LIBCUDA", "libm.so.6", 1);
    setenv("GR_LIBNVML", "libm.so.6", 1);
    assert_null(gr_cuda_load(why, sizeof(why)));
    assert_string_equal(why, "libm.so.6 is not the CUDA driver: no symbol cuInit");
    assert_null(gr_nvml_load(why, sizeof(why)));
    assert_non_null(strstr(why, "no symbol nvmlInit_v2"));
    info = agent_discover(NULL);
    check_shape(info);
    err = json_string_value(json_object_get(json_object_get(info, "driver"), "error"));
    assert_non_null(strstr(err, "is not the CUDA driver"));
    assert_int_equal(json_array_size(json_object_get(info, "gpus")), 0);
    json_decref(info);
    default_libraries();
}

/* The toolkit's stub libcuda.so has every symbol; its cuInit fails. It
 * stays mapped (and answers to the name libcuda.so.1 from then on): last. */
static void test_stub_driver(void **state)
{
    const char *stub = "/usr/local/cuda/lib64/stubs/libcuda.so";
    char why[256] = "";

    (void)state;
    if (access(stub, R_OK) != 0 || gr_cuda_loaded() != NULL)
        skip();
    setenv("GR_LIBCUDA", stub, 1);
    assert_null(gr_cuda_load(why, sizeof(why)));
    assert_non_null(strstr(why, "libcuda.so: cuInit: "));
    assert_int_equal(gr_cuda_device_count(why, sizeof(why)), 0);
    default_libraries();
}

/* Whatever this machine has: no driver here, GPUs on a GPU machine. */
static void test_this_machine(void **state)
{
    json_t *info, *driver;

    (void)state;
    default_libraries();
    info = agent_discover(NULL);
    check_shape(info);
    driver = json_object_get(info, "driver");
    if (json_is_false(json_object_get(driver, "cuda")) &&
        json_is_false(json_object_get(driver, "nvml"))) {
        assert_int_equal(json_array_size(json_object_get(info, "gpus")), 0);
        assert_non_null(
            strstr(json_string_value(json_object_get(driver, "error")), "libcuda.so.1"));
    }
    json_decref(info);
}

static void test_disk_path(void **state)
{
    json_t *info, *disk;

    (void)state;
    no_libraries();
    info = agent_discover("/");
    disk = json_object_get(json_object_get(info, "host"), "disk");
    assert_string_equal(json_string_value(json_object_get(disk, "path")), "/");
    assert_true(json_integer_value(json_object_get(disk, "total_bytes")) > 0);
    assert_true(json_integer_value(json_object_get(disk, "free_bytes")) <=
                json_integer_value(json_object_get(disk, "total_bytes")));
    json_decref(info);
    info = agent_discover("/nonexistent/disk");
    disk = json_object_get(json_object_get(info, "host"), "disk");
    assert_string_equal(json_string_value(json_object_get(disk, "path")), "/nonexistent/disk");
    assert_true(json_is_null(json_object_get(disk, "total_bytes")));
    json_decref(info);
    default_libraries();
}

static void test_loader_helpers(void **state)
{
    CUuuid u;
    char buf[GR_UUID_LEN], text[192], why[128] = "";
    struct gr_cuda_ctx c;
    CUmodule mod = (CUmodule)1;

    (void)state;
    for (int i = 0; i < 16; i++)
        u.bytes[i] = (char)(0xa0 + i);
    gr_cuda_uuid_format(&u, buf);
    assert_string_equal(buf, "GPU-a0a1a2a3-a4a5-a6a7-a8a9-aaabacadaeaf");
    if (gr_cuda_loaded() == NULL) {
        assert_string_equal(gr_cu_error_text(CUDA_ERROR_OUT_OF_MEMORY, text, sizeof(text)),
                            "CUDA_ERROR_OUT_OF_MEMORY: out of memory");
        assert_string_equal(gr_cu_error_text(12345, text, sizeof(text)), "CUDA error 12345");
    }
    if (gr_nvml_loaded() == NULL)
        assert_string_equal(gr_nvml_error_text(3), "NVML error 3");
    assert_int_equal(gr_cu_errno(CUDA_SUCCESS), 0);
    assert_int_equal(gr_cu_errno(CUDA_ERROR_OUT_OF_MEMORY), ORC_ENOMEM);
    assert_int_equal(gr_cu_errno(CUDA_ERROR_NO_BINARY_FOR_GPU), ORC_ENOTSUP);
    assert_int_equal(gr_cu_errno(CUDA_ERROR_ILLEGAL_ADDRESS), ORC_EIO);
    assert_int_equal(gr_cu_check(CUDA_ERROR_INVALID_VALUE, why, sizeof(why), "cuMemAlloc"),
                     ORC_EINVAL);
    assert_non_null(strstr(why, "cuMemAlloc: CUDA_ERROR_INVALID_VALUE"));
    assert_int_equal(gr_cuda_module_load(NULL, 0, &mod, why, sizeof(why)), ORC_ENOTSUP);
    assert_null(mod);
    assert_non_null(strstr(why, "kernels not built in"));
    gr_cuda_module_unload(NULL);
    memset(&c, 0, sizeof(c));
    gr_cuda_ctx_close(&c);
    gr_cuda_ctx_close(NULL);
    no_libraries();
    assert_true(gr_cuda_ctx_open(0, &c, why, sizeof(why)) < 0 || gr_cuda_loaded() != NULL);
    gr_cuda_ctx_close(&c);
    if (gr_cuda_loaded() == NULL)
        assert_int_equal(gr_cuda_device_count(why, sizeof(why)), 0);
    assert_string_equal(gr_cuda_lib_name(), "/nonexistent/libcuda.so.1");
    default_libraries();
    assert_string_equal(gr_cuda_lib_name(), "libcuda.so.1");
    assert_string_equal(gr_nvml_lib_name(), "libnvidia-ml.so.1");
}

/* With nvcc the build embeds a fatbin (magic 0xBA55ED50); without, nothing. */
static void test_embedded_kernels(void **state)
{
    size_t n = GR_FATBIN_SIZE(health_kernels);
    unsigned magic;

    (void)state;
    if (n == 0)
        skip(); /* built with NVCC= */
    assert_true(n > 1024);
    memcpy(&magic, gr_fatbin_health_kernels, sizeof(magic));
    assert_int_equal(magic, 0xBA55ED50u);
    assert_int_equal((uintptr_t)gr_fatbin_health_kernels % 64, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_libraries), cmocka_unit_test(test_not_cuda),
        cmocka_unit_test(test_disk_path),         cmocka_unit_test(test_loader_helpers),
        cmocka_unit_test(test_embedded_kernels),  cmocka_unit_test(test_this_machine),
        cmocka_unit_test(test_stub_driver),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
