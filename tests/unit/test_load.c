/*
 * The API load test of issue 8 (docs/performance.md, "API under load"): LOAD_CLIENTS
 * concurrent clients (default 100) for LOAD_SECONDS (20) against one daemon on a sim
 * cloud whose provisions take 0.2 to 0.5 s, each client creating, watching (SSE),
 * reading, listing, deleting and watching again (tests/unit/apiload.h). Every answer must
 * be the expected one (no 5xx, no transport error), every client must get through whole
 * cycles, and at the end nothing may be left: no deployment listed, no node at the cloud,
 * one node provisioned and one deprovisioned per cycle. Figures (p50/p99 per step,
 * requests/s, the daemon's VmRSS after the warm-up, at the end and at most) are printed;
 * with LOAD_RSS_GROWTH_PCT set, the resident memory at the end may exceed that after the
 * warm-up (the first fifth) by at most that much; LOAD_STORE_READERS sets the daemon's
 * store_readers (to compare reads on and off the loop). make test runs the short version (on
 * SQLite, then PostgreSQL); tests/soak/load.sh the long one (500 clients, 5 minutes).
 */
#include <sys/resource.h>

#include "testutil.h"
#include "daemon_fixture.h"
#include "apiload.h"

static const char sites_yaml[] =
    "sites:\n"
    "  - name: cloud\n"
    "    driver: sim\n"
    "    config: {inventory: \"@DIR@/cloud.json\", capacity: {cpus: 1000000, mem: 1000 TiB, gpus: "
    "{}},\n"
    "             latency: {default: {fixed_ms: 5, jitter_ms: 20},\n"
    "                       provision: {fixed_ms: 200, jitter_ms: 300}}}\n";

static const char template_text[] = "tosca_definitions_version: tosca_simple_yaml_1_3\n"
                                    "topology_template:\n"
                                    "  node_templates:\n"
                                    "    node:\n"
                                    "      type: orc.nodes.GPUCompute\n"
                                    "      capabilities:\n"
                                    "        host:\n"
                                    "          properties: {num_cpus: 1, mem_size: 1 GB}\n";

static int env_int(const char *name, int dflt)
{
    const char *v = getenv(name);
    return v && *v ? atoi(v) : dflt;
}

static char *request_body(void)
{
    json_t *body = json_pack("{s:s}", "template", template_text);
    char *text = json_dumps(body, JSON_COMPACT);

    json_decref(body);
    assert_non_null(text);
    return text;
}

/* The file-descriptor limit raised to its hard limit: one socket per client. */
static void raise_open_files(int clients)
{
    struct rlimit rl;

    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rl.rlim_cur = rl.rlim_max;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < (rlim_t)clients + 64)
        skip(); /* the machine does not allow that many sockets */
}

/* Nothing left: no deployment listed, no node at the sim cloud, and one node provisioned
 * and deprovisioned per cycle (none twice). */
static void assert_nothing_left(struct fx_daemon *d, long cycles)
{
    json_t *list = fx_get_json(d, "/deployments?size=1");

    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(list, "page"), "totalElements")), 0);
    json_decref(list);
    assert_int_equal(fx_sim_count(d, "cloud", NULL), 0);
    assert_int_equal(fx_sim_counter(d, "cloud", "provisioned"), cycles);
    assert_int_equal(fx_sim_counter(d, "cloud", "deprovisioned"), cycles);
}

static void clients_mixing_every_call_get_only_expected_answers(void **state)
{
    struct fx_daemon d;
    struct al_opts o = {0};
    struct al_report rep;
    char streams[64], readers[64];
    char *body = request_body();
    int growth = env_int("LOAD_RSS_GROWTH_PCT", -1);
    const char *env[] = {streams, getenv("LOAD_STORE_READERS") ? readers : NULL, NULL};

    (void)state;
    o.clients = env_int("LOAD_CLIENTS", 100);
    o.seconds = env_int("LOAD_SECONDS", 20);
    o.warmup_s = o.seconds / 5;
    o.body = body;
    raise_open_files(o.clients);
    snprintf(streams, sizeof(streams), "ORCHESTRATOR_MAX_STREAMS=%d", o.clients + 16);
    snprintf(readers, sizeof(readers), "ORCHESTRATOR_STORE_READERS=%d",
             env_int("LOAD_STORE_READERS", 0));
    fx_start(&d, "test-load", sites_yaml, env);
    o.urls[o.nurls++] = d.url;
    o.pids[o.npids++] = d.pid;
    assert_int_equal(al_run(&o, &rep), 0);
    al_print(&rep, &o);
    fflush(stdout);
    for (int s = 0; s < AL_NSTEPS; s++) {
        assert_true(rep.step[s].count > 0);
        assert_int_equal(rep.step[s].status_5xx, 0);
    }
    if (rep.errors != 0)
        fx_dump_log(&d);
    assert_int_equal(rep.errors, 0);
    assert_true(rep.cycles >= o.clients); /* every client got through at least one */
    assert_nothing_left(&d, rep.cycles);
    if (growth >= 0)
        assert_true(rep.rss_end_kb <= rep.rss_warm_kb + rep.rss_warm_kb * growth / 100);
    al_report_free(&rep);
    free(body);
    fx_stop(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(clients_mixing_every_call_get_only_expected_answers, fx_teardown),
    };

    curl_global_init(CURL_GLOBAL_DEFAULT);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
