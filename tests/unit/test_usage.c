/*
 * The usage summary (orchestrator/api/usage.c, docs/api.md "Usage") from hand-made event
 * lists: an interval from a start to its end; one still held runs until now; a second
 * start of a node already held (a re-drive) is ignored; an end with no start, and events
 * that are not about usage, count nothing; the deployment's DELETE_COMPLETE ends what is
 * still held (a forced delete); a node that moves to another site ends its first
 * interval there; GPU-hours by model, "any" when the plan named none; sums per site.
 */
#include <math.h>

#include "testutil.h"

#include "api/usage.h"

#define H 3600000 /* one hour, in ms */

struct events {
    orc_event_t items[16];
    size_t n;
};

static void add(struct events *e, const char *type, int64_t t, json_t *data)
{
    orc_event_t *ev = &e->items[e->n++];

    memset(ev, 0, sizeof(*ev));
    ev->id = (int64_t)e->n;
    ev->time_ms = t;
    ev->type = (char *)type;
    ev->data = data;
}

static void started(struct events *e, int64_t t, const char *res, const char *site, int gpus,
                    const char *model)
{
    json_t *d = json_pack("{s:s, s:s, s:i, s:s, s:i}", "resource", res, "node", "vm", "index", 0,
                          "site", site, "gpus", gpus);

    if (model)
        json_object_set_new(d, "gpu_model", json_string(model));
    add(e, "usage.started", t, d);
}

static void ended(struct events *e, int64_t t, const char *res, const char *site)
{
    add(e, "usage.ended", t, json_pack("{s:s, s:s}", "resource", res, "site", site));
}

static void clear(struct events *e)
{
    for (size_t i = 0; i < e->n; i++)
        json_decref(e->items[i].data);
    e->n = 0;
}

static double num(const json_t *o, const char *key)
{
    assert_true(json_is_number(json_object_get(o, key)));
    return json_number_value(json_object_get(o, key));
}

static bool near(double a, double b)
{
    return fabs(a - b) < 1e-9;
}

static void intervals_held_ended_and_ignored(void **state)
{
    struct events e = {0};
    json_t *u, *it;

    (void)state;
    started(&e, 0, "r1", "a", 2, "A100");
    started(&e, H / 2, "r1", "a", 2, "A100"); /* a re-drive: ignored */
    ended(&e, 2 * H, "r1", "a");
    ended(&e, 3 * H, "r9", "a"); /* no start: nothing */
    add(&e, "resource.state", H, json_pack("{s:s}", "state", "STARTED"));
    started(&e, 3 * H, "r2", "b", 0, NULL); /* held until now */
    u = orc_usage_summary(e.items, e.n, 4 * H);
    assert_non_null(u);
    assert_int_equal(json_array_size(json_object_get(u, "intervals")), 2);
    assert_true(near(num(u, "nodeHours"), 2 + 1));
    assert_true(near(num(u, "gpuHours"), 4));
    assert_true(near(num(u, "nodeSeconds"), 3 * 3600));
    it = json_array_get(json_object_get(u, "intervals"), 0);
    assert_false(json_is_true(json_object_get(it, "held")));
    assert_int_equal(json_integer_value(json_object_get(it, "endMs")), 2 * H);
    assert_true(near(num(it, "hours"), 2));
    it = json_array_get(json_object_get(u, "intervals"), 1);
    assert_true(json_is_true(json_object_get(it, "held")));
    assert_true(json_is_null(json_object_get(it, "end")));
    assert_true(json_is_null(json_object_get(it, "gpuModel")));
    assert_int_equal(json_array_size(json_object_get(u, "sites")), 2);
    json_decref(u);
    clear(&e);
}

static void deletion_ends_what_is_held_and_sites_sum(void **state)
{
    struct events e = {0};
    json_t *u, *site_a;

    (void)state;
    started(&e, 0, "r1", "a", 1, NULL);
    started(&e, 0, "r2", "a", 2, "T4");
    started(&e, H, "r1", "b", 1, NULL); /* r1 moves: its interval at a ends */
    add(&e, "deployment.status", 3 * H,
        json_pack("{s:s, s:i}", "status", "DELETE_COMPLETE", "version", 9));
    u = orc_usage_summary(e.items, e.n, 10 * H); /* long after: the deletion ended them */
    assert_non_null(u);
    assert_true(near(num(u, "nodeHours"), 1 + 3 + 2));
    assert_true(near(num(u, "gpuHours"), 1 + 6 + 2));
    site_a = json_array_get(json_object_get(u, "sites"), 0);
    assert_string_equal(json_string_value(json_object_get(site_a, "site")), "a");
    assert_true(near(num(site_a, "nodeHours"), 4));
    assert_true(near(num(json_object_get(site_a, "gpuHoursByModel"), "any"), 1));
    assert_true(near(num(json_object_get(site_a, "gpuHoursByModel"), "T4"), 6));
    for (size_t i = 0; i < json_array_size(json_object_get(u, "intervals")); i++)
        assert_false(json_is_true(
            json_object_get(json_array_get(json_object_get(u, "intervals"), i), "held")));
    json_decref(u);
    clear(&e);
}

static void nothing_held(void **state)
{
    json_t *u = orc_usage_summary(NULL, 0, 5 * H);

    (void)state;
    assert_non_null(u);
    assert_true(near(num(u, "nodeHours"), 0));
    assert_int_equal(json_array_size(json_object_get(u, "intervals")), 0);
    assert_int_equal(json_integer_value(json_object_get(u, "asOfMs")), 5 * H);
    json_decref(u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(intervals_held_ended_and_ignored),
        cmocka_unit_test(deletion_ends_what_is_held_and_sites_sum),
        cmocka_unit_test(nothing_held),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
