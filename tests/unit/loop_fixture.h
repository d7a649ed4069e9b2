/*
 * Helpers for tests that drive drivers through the core's wrappers on a real libuv loop:
 * an operation's callback recorder (struct loop_call) and loop runners bounded by a
 * guard timer. Header-only; include after testutil.h.
 */
#ifndef LOOP_FIXTURE_H
#define LOOP_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <uv.h>

#include "engine/drivers.h"

/* One operation and what its callback said: how many times, with what status, and
 * whether it came inside the wrapper call (in_call set around it: sync). */
struct loop_call {
    orc_op_t op;
    int calls, status;
    bool in_call, sync;
};

static inline void loop_call_cb(orc_op_t *op, int status)
{
    struct loop_call *c = op->data;

    c->calls++;
    c->status = status;
    if (c->in_call)
        c->sync = true;
}

static inline void loop_call_init(struct loop_call *c)
{
    memset(c, 0, sizeof(*c));
    orc_drv_op_init(&c->op);
    c->op.data = c;
}

static inline void loop_guard_fired(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

/* Runs loop until *counter reaches target or timeout_ms pass; true when it did. */
static inline bool loop_run_until(uv_loop_t *loop, const int *counter, int target,
                                  uint64_t timeout_ms)
{
    uv_timer_t guard;
    bool expired = false;

    uv_timer_init(loop, &guard);
    guard.data = &expired;
    uv_timer_start(&guard, loop_guard_fired, timeout_ms, 0);
    while (*counter < target && !expired)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return *counter >= target;
}

/* Runs loop for ms. */
static inline void loop_run_for(uv_loop_t *loop, uint64_t ms)
{
    int never = 0;

    loop_run_until(loop, &never, 1, ms);
}

#endif
