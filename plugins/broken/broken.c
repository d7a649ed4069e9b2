/*
 * Test fixtures for the driver loader (tests/unit/test_drivers.c), one
 * shared object with many vtables, built into the test plugin folder
 * ($(BUILD)/test-plugins), never into the daemon's. It deliberately does NOT
 * export the standard entry symbol orc_driver_entry: loading it as a driver
 * is the "missing symbol" case. Each other case has its own entry symbol,
 * loaded with orc_drv_load_file_entry():
 *   orc_broken_bad_abi      ABI number 99
 *   orc_broken_abi1         a driver as an ABI 1 header built it: ABI 1, its
 *                           signature, its vtable size (ends at cancel)
 *   orc_broken_abi2_short   says ABI 2 but its vtable is ABI 1's size
 *   orc_broken_bad_sig      right ABI number, another build signature
 *   orc_broken_null         the entry returns NULL
 *   orc_broken_null_slot    mandatory slot provision is NULL
 *   orc_broken_dup          a valid driver named "sim" (a duplicate)
 *   orc_broken_bad_name     name with characters a driver name cannot have
 *   orc_broken_small        vtable size smaller than ABI 1's
 *   orc_broken_huge_state   state_size over the limit
 *   orc_broken_adopt_cap    caps say ADOPT, adopt slot NULL
 *   orc_broken_minimal      a valid driver "minimal" with mandatory slots only
 *   orc_broken_rogue        a valid driver "rogue" that breaks the callback contract,
 *                           in the ABI 1 slots and in the ABI 2 ones
 */
#include <string.h>

#include "orc/driver.h"

/* ---- a correct minimal driver: mandatory slots, host timers only ---------- */

struct mini {
    const struct orc_host_api *host;
};

static void mini_done(void *arg)
{
    orc_op_done(arg, 0);
}

static int mini_later(struct mini *m, orc_op_t *op)
{
    return m->host->timer_start(m->host, 0, mini_done, op) ? 0 : ORC_ENOMEM;
}

static int mini_open(void *state, const struct orc_host_api *host,
                     const struct orc_site_conf *conf, orc_op_t *op)
{
    struct mini *m = state;

    m->host = host;
    return mini_later(m, op);
}

static int mini_close(void *state, orc_op_t *op)
{
    return mini_later(state, op);
}

static int mini_provision(void *state, orc_op_t *op, const struct orc_node_req *req)
{
    struct mini *m = state;

    op->exists = true;
    op->res_state = ORC_DRV_RES_READY;
    if (m->host->op_attr_set(op, ORC_ATTR_PRIVATE_ADDRESS, "127.0.0.1") < 0)
        return ORC_ENOMEM;
    return mini_later(m, op);
}

static int mini_deprovision(void *state, orc_op_t *op, const char *name)
{
    return mini_later(state, op);
}

static int mini_status(void *state, orc_op_t *op, const char *name)
{
    return mini_later(state, op);
}

#define MINI_SLOTS                                                                         \
    .site_open = mini_open, .site_close = mini_close, .provision = mini_provision,         \
    .deprovision = mini_deprovision, .status = mini_status

static const struct orc_driver vt_minimal = {
    ORC_DRIVER_HEADER,
    .name = "minimal",
    .caps = ORC_DRV_CAP_COMPUTE,
    .state_size = sizeof(struct mini),
    MINI_SLOTS,
};

/* ---- loader failures --------------------------------------------------------- */

static const struct orc_driver vt_bad_abi = {
    .abi = 99,
    .size = sizeof(struct orc_driver),
    .signature = ORC_DRIVER_SIGNATURE,
    .name = "bad_abi",
    .state_size = sizeof(struct mini),
    MINI_SLOTS,
};

/* What an ABI 1 header produced: the signature named ABI 1 and the vtable
 * ended with the cancel slot. */
#define ABI1_SIGNATURE                                                                             \
    "orc-driver/1 ptr/" ORC__DRV_STR(__SIZEOF_POINTER__) " " ORC__DRV_ENDIAN                       \
                                                         " uv/" ORC__DRV_STR(UV_VERSION_MAJOR)
#define ABI1_SIZE ((uint32_t)(offsetof(struct orc_driver, cancel) + sizeof(void (*)(void))))

static const struct orc_driver vt_abi1 = {
    .abi = 1,
    .size = ABI1_SIZE,
    .signature = ABI1_SIGNATURE,
    .name = "abi1",
    .state_size = sizeof(struct mini),
    MINI_SLOTS,
};

static const struct orc_driver vt_abi2_short = {
    .abi = ORC_DRIVER_ABI,
    .size = ABI1_SIZE,
    .signature = ORC_DRIVER_SIGNATURE,
    .name = "abi2_short",
    .state_size = sizeof(struct mini),
    MINI_SLOTS,
};

static const struct orc_driver vt_bad_sig = {
    .abi = ORC_DRIVER_ABI,
    .size = sizeof(struct orc_driver),
    .signature = "orc-driver/1 ptr/4 be uv/0",
    .name = "bad_sig",
    .state_size = sizeof(struct mini),
    MINI_SLOTS,
};

static const struct orc_driver vt_null_slot = {
    ORC_DRIVER_HEADER,
    .name = "null_slot",
    .state_size = sizeof(struct mini),
    .site_open = mini_open,
    .site_close = mini_close,
    .provision = NULL,
    .deprovision = mini_deprovision,
    .status = mini_status,
};

static const struct orc_driver vt_dup = {
    ORC_DRIVER_HEADER,
    .name = "sim",
    .state_size = sizeof(struct mini),
    MINI_SLOTS,
};

static const struct orc_driver vt_bad_name = {
    ORC_DRIVER_HEADER,
    .name = "Bad Name!",
    .state_size = sizeof(struct mini),
    MINI_SLOTS,
};

static const struct orc_driver vt_small = {
    .abi = ORC_DRIVER_ABI,
    .size = 16,
    .signature = ORC_DRIVER_SIGNATURE,
    .name = "small",
    .state_size = sizeof(struct mini),
    MINI_SLOTS,
};

static const struct orc_driver vt_huge_state = {
    ORC_DRIVER_HEADER,
    .name = "huge_state",
    .state_size = (size_t)1 << 30,
    MINI_SLOTS,
};

static const struct orc_driver vt_adopt_cap = {
    ORC_DRIVER_HEADER,
    .name = "adopt_cap",
    .caps = ORC_DRV_CAP_ADOPT,
    .state_size = sizeof(struct mini),
    MINI_SLOTS,
};

/* ---- rogue: every way to break the callback contract ---------------------------- */

static void rogue_done(void *arg)
{
    orc_op_done(arg, 0);
}

/* provision: calls back from inside the call, then returns 0 */
static int rogue_provision(void *state, orc_op_t *op, const struct orc_node_req *req)
{
    orc_op_done(op, 0);
    return 0;
}

/* deprovision: calls back twice, both later */
static int rogue_deprovision(void *state, orc_op_t *op, const char *name)
{
    struct mini *m = state;

    m->host->timer_start(m->host, 0, rogue_done, op);
    m->host->timer_start(m->host, 1, rogue_done, op);
    return 0;
}

/* status: returns < 0, then calls back anyway */
static int rogue_status(void *state, orc_op_t *op, const char *name)
{
    struct mini *m = state;

    m->host->timer_start(m->host, 0, rogue_done, op);
    return orc_op_failf(op, ORC_EDRIVER, "rogue: status refused");
}

/* inventory: calls back from inside the call, then returns < 0 */
static int rogue_inventory(void *state, orc_op_t *op)
{
    orc_op_done(op, 0);
    return ORC_EDRIVER;
}

/* exec: never calls back, not even at site_close */
static int rogue_exec(void *state, orc_op_t *op, const struct orc_exec_req *req)
{
    return 0;
}

static void rogue_nothing(void *arg)
{
}

/* logs: returns a positive number, calls back later, and leaks a host timer */
static int rogue_logs(void *state, orc_op_t *op, const struct orc_logs_req *req)
{
    struct mini *m = state;

    m->host->timer_start(m->host, 3600 * 1000, rogue_nothing, NULL);
    m->host->timer_start(m->host, 0, rogue_done, op);
    return 7;
}

/* adopt: waits for cancel */
static int rogue_adopt(void *state, orc_op_t *op, const char *name)
{
    return 0;
}

/* cancel: completes the target from inside the cancel call */
static int rogue_cancel(void *state, orc_op_t *target)
{
    orc_op_done(target, ORC_ECANCELED);
    return 0;
}

/* stop_workload (ABI 2): calls back from inside the call, then returns 0 */
static int rogue_stop_workload(void *state, orc_op_t *op, const char *name, const char *workload)
{
    orc_op_done(op, 0);
    return 0;
}

/* stop (ABI 2): calls back twice, both later */
static int rogue_stop(void *state, orc_op_t *op, const char *name)
{
    return rogue_deprovision(state, op, name);
}

/* start (ABI 2): returns < 0, then calls back anyway */
static int rogue_start(void *state, orc_op_t *op, const char *name)
{
    struct mini *m = state;

    m->host->timer_start(m->host, 0, rogue_done, op);
    return orc_op_failf(op, ORC_EDRIVER, "rogue: start refused");
}

static const struct orc_driver vt_rogue = {
    ORC_DRIVER_HEADER,
    .name = "rogue",
    .caps = ORC_DRV_CAP_COMPUTE | ORC_DRV_CAP_ADOPT,
    .state_size = sizeof(struct mini),
    .site_open = mini_open,
    .site_close = mini_close,
    .inventory = rogue_inventory,
    .provision = rogue_provision,
    .deprovision = rogue_deprovision,
    .status = rogue_status,
    .adopt = rogue_adopt,
    .exec = rogue_exec,
    .logs = rogue_logs,
    .cancel = rogue_cancel,
    .stop_workload = rogue_stop_workload,
    .stop = rogue_stop,
    .start = rogue_start,
};

/* ---- entry points ------------------------------------------------------------------ */

#define ENTRY(fn, value)                                                                   \
    ORC_DRIVER_EXPORT const struct orc_driver *fn(void);                                   \
    ORC_DRIVER_EXPORT const struct orc_driver *fn(void)                                    \
    {                                                                                      \
        return value;                                                                      \
    }

ENTRY(orc_broken_bad_abi, &vt_bad_abi)
ENTRY(orc_broken_abi1, &vt_abi1)
ENTRY(orc_broken_abi2_short, &vt_abi2_short)
ENTRY(orc_broken_bad_sig, &vt_bad_sig)
ENTRY(orc_broken_null, NULL)
ENTRY(orc_broken_null_slot, &vt_null_slot)
ENTRY(orc_broken_dup, &vt_dup)
ENTRY(orc_broken_bad_name, &vt_bad_name)
ENTRY(orc_broken_small, &vt_small)
ENTRY(orc_broken_huge_state, &vt_huge_state)
ENTRY(orc_broken_adopt_cap, &vt_adopt_cap)
ENTRY(orc_broken_minimal, &vt_minimal)
ENTRY(orc_broken_rogue, &vt_rogue)
