/*
 * TLS on the API against the real daemon (docs/security.md): with tls.cert_file and
 * tls.key_file it serves HTTPS only (a self-signed certificate made here by openssl);
 * TLS 1.2 and 1.3 pass, TLS 1.1 and plain HTTP do not; links are https; gpu-agents
 * report over HTTPS and verify the server with tls.ca_file. A key readable by others,
 * a certificate without its key and a certificate that is not one stop the start with
 * a message naming the file. SIGHUP serves a renewed certificate without a restart and
 * keeps the one in use when the new files are refused.
 */
#include "testutil.h"

#include <sys/stat.h>

#include "daemon_fixture.h"

#include "config.h"

static char dir[64], cert[128], key[128], other_key[128], cert2[128], key2[128];

static void run_ok(const char *cmd)
{
    if (system(cmd) != 0)
        fail_msg("failed: %s", cmd);
}

static int group_setup(void **state)
{
    char cmd[1024];

    fx_examples_load(state);
    snprintf(dir, sizeof(dir), "/tmp/orc-tls-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    snprintf(other_key, sizeof(other_key), "%s/other.pem", dir);
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
             "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout '%s' -out '%s' "
             "2>/dev/null && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 "
             "-out '%s' 2>/dev/null && chmod 600 '%s' '%s'",
             key, cert, other_key, key, other_key);
    run_ok(cmd);
    snprintf(cert2, sizeof(cert2), "%s/cert2.pem", dir); /* the renewed one */
    snprintf(key2, sizeof(key2), "%s/key2.pem", dir);
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
             "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout '%s' -out '%s' "
             "2>/dev/null && chmod 600 '%s'",
             key2, cert2, key2);
    run_ok(cmd);
    fx_ca_file = cert;
    return 0;
}

static int group_teardown(void **state)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    run_ok(cmd);
    fx_ca_file = NULL;
    return fx_examples_free(state);
}

/* One GET of url, verifying the server with the certificate ca, with TLS at most max_tls
 * (CURL_SSLVERSION_MAX_*; 0: any) and at least min_tls; the CURLcode. */
static CURLcode probe_ca(const char *url, const char *ca, long min_tls, long max_tls, long *status)
{
    CURL *c = curl_easy_init();
    struct body b = {NULL, 0};
    CURLcode rc;

    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CAINFO, ca);
    curl_easy_setopt(c, CURLOPT_SSLVERSION, min_tls | max_tls);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    rc = curl_easy_perform(c);
    *status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(c);
    free(b.data);
    return rc;
}

static CURLcode probe(const char *url, long min_tls, long max_tls, long *status)
{
    return probe_ca(url, cert, min_tls, max_tls, status);
}

/* The attributes of node (instance 0) from extrainfo (a new reference, maybe {}). */
static json_t *node_attrs(struct fx_daemon *d, const char *uuid, const char *node)
{
    char path[160];
    json_t *all = NULL, *e, *found = NULL;
    size_t i;

    snprintf(path, sizeof(path), "/deployments/%s/extrainfo", uuid);
    all = fx_get_json(d, path);
    json_array_foreach(
        all, i, e) if (strcmp(json_string_value(json_object_get(e, "node")), node) == 0 && !found)
        found = json_incref(json_object_get(e, "attributes"));
    json_decref(all);
    return found ? found : json_object();
}

static void test_https(void **state)
{
    struct fx_daemon d;
    char env1[160], env2[160], env3[160], plain[300], uuid[64], *tmpl;
    const char *env[] = {env1, env2, env3, NULL};
    const char *self;
    json_t *dep, *web = NULL;
    long status;

    (void)state;
    snprintf(env1, sizeof(env1), "ORCHESTRATOR_TLS_CERT_FILE=%s", cert);
    snprintf(env2, sizeof(env2), "ORCHESTRATOR_TLS_KEY_FILE=%s", key);
    snprintf(env3, sizeof(env3), "ORCHESTRATOR_TLS_CA_FILE=%s", cert);
    fx_start(&d, "orc-tls", NULL, env);
    assert_int_equal(strncmp(d.url, "https://127.0.0.1:", 18), 0);
    /* TLS 1.2 and 1.3 */
    assert_int_equal(probe(d.url, CURL_SSLVERSION_TLSv1_2, CURL_SSLVERSION_MAX_TLSv1_2, &status),
                     CURLE_OK);
    assert_int_equal(status, 200);
    assert_int_equal(probe(d.url, CURL_SSLVERSION_TLSv1_3, 0, &status), CURLE_OK);
    assert_int_equal(status, 200);
    /* TLS 1.1 is refused, and so is plain HTTP */
    assert_int_not_equal(
        probe(d.url, CURL_SSLVERSION_TLSv1_0, CURL_SSLVERSION_MAX_TLSv1_1, &status), CURLE_OK);
    snprintf(plain, sizeof(plain), "http://%s", d.url + 8);
    probe(plain, 0, 0, &status);
    assert_true(status == 0 || status == 400);
    /* links are https; a deployment's agent reports over HTTPS, verifying with tls.ca_file */
    tmpl = fx_service_template((unsigned)test_free_port());
    dep = fx_create(&d, tmpl, NULL, uuid);
    free(tmpl);
    self = json_string_value(
        json_object_get(json_array_get(json_object_get(dep, "links"), 0), "href"));
    assert_int_equal(strncmp(self, "https://", 8), 0);
    json_decref(dep);
    json_decref(fx_wait_status(&d, uuid, "CREATE_COMPLETE", 30000));
    for (int i = 0; i < 600; i++) { /* 30 s: the agent starts, checks, reports */
        json_decref(web);
        web = node_attrs(&d, uuid, "web");
        if (json_object_get(json_object_get(web, "agent"), "identity"))
            break;
        fx_sleep_ms(50);
    }
    if (json_object_get(json_object_get(web, "agent"), "identity") == NULL) {
        fx_dump_log(&d);
        fail_msg("no agent report over HTTPS: %s", json_dumps(web, 0));
    }
    json_decref(web);
    fx_undeploy(&d, uuid, 20000);
    fx_stop(&d);
}

static void expect_config(const char *c, const char *k, int want, const char *msg)
{
    char err[600] = "", a[160], b[160];
    const char *argv[] = {"orchestratord", c ? a : NULL, k ? b : NULL, NULL};
    orc_config_t cfg;
    int rc, argc = 1;

    snprintf(a, sizeof(a), "--tls-cert=%s", c ? c : "");
    snprintf(b, sizeof(b), "--tls-key=%s", k ? k : "");
    if (c == NULL) {
        argv[1] = k ? b : NULL;
        argv[2] = NULL;
    }
    while (argv[argc])
        argc++;
    assert_int_equal(orc_config_init(&cfg), 0);
    rc = orc_config_load(&cfg, argc, (char *const *)argv, NULL, err, sizeof(err));
    if (rc != want || (msg && strstr(err, msg) == NULL))
        fail_msg("expected %d '%s', got %d '%s'", want, msg ? msg : "", rc, err);
    orc_config_fini(&cfg);
}

/* The daemon with cert and k must not start, and say want. */
static void expect_no_start(const char *c, const char *k, const char *want)
{
    char args[400];

    snprintf(args, sizeof(args), "--tls-cert '%s' --tls-key '%s'", c, k);
    free(fx_expect_no_start(dir, args, want));
}

static void test_bad_settings(void **state)
{
    char open_key[160], cmd[600];

    (void)state;
    expect_config(cert, NULL, ORC_EINVAL,
                  "tls: give both cert_file and key_file (key_file is "
                  "missing)");
    expect_config(NULL, key, ORC_EINVAL, "cert_file is missing");
    expect_config(cert, key, 0, NULL);
    snprintf(open_key, sizeof(open_key), "%s/open.pem", dir);
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && chmod 644 '%s'", key, open_key, open_key);
    run_ok(cmd);
    expect_config(cert, open_key, ORC_EINVAL, "is mode 0644: a private key must not be readable");
    expect_config(cert, "/nonexistent/key.pem", ORC_EINVAL, "tls.key_file /nonexistent/key.pem");
    /* files that are not what they should be */
    expect_no_start(cert, other_key, "is not the key of tls.cert_file");
    expect_no_start(other_key, key, "tls.cert_file");
}

/* Waits (10 s at most) until the daemon's log holds want. */
static void wait_log(struct fx_daemon *d, const char *want)
{
    for (int i = 0; i < 200; i++) {
        char *log = fx_read_file(d->log);
        bool found = log && strstr(log, want);
        free(log);
        if (found)
            return;
        fx_sleep_ms(50);
    }
    fx_dump_log(d);
    fail_msg("the log never said: %s", want);
}

/* SIGHUP reads the certificate and key again: a renewed certificate is served from the
 * next connection on; files refused on reload leave the one in use. */
static void test_certificate_reload(void **state)
{
    struct fx_daemon d;
    char live_cert[160], live_key[160], env1[200], env2[200], cmd[800];
    const char *env[] = {env1, env2, NULL};
    long status;

    (void)state;
    snprintf(live_cert, sizeof(live_cert), "%s/live-cert.pem", dir);
    snprintf(live_key, sizeof(live_key), "%s/live-key.pem", dir);
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && cp -p '%s' '%s'", cert, live_cert, key, live_key);
    run_ok(cmd);
    snprintf(env1, sizeof(env1), "ORCHESTRATOR_TLS_CERT_FILE=%s", live_cert);
    snprintf(env2, sizeof(env2), "ORCHESTRATOR_TLS_KEY_FILE=%s", live_key);
    fx_start(&d, "orc-tls-reload", NULL, env);
    assert_int_equal(probe_ca(d.url, cert, 0, 0, &status), CURLE_OK);
    assert_int_not_equal(probe_ca(d.url, cert2, 0, 0, &status), CURLE_OK);
    /* renewed: the new pair in place, then SIGHUP */
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && cp '%s' '%s'", cert2, live_cert, key2, live_key);
    run_ok(cmd);
    assert_int_equal(kill(d.pid, SIGHUP), 0);
    wait_log(&d, "SIGHUP: TLS certificate");
    assert_int_equal(probe_ca(d.url, cert2, 0, 0, &status), CURLE_OK);
    assert_int_equal(status, 200);
    assert_int_not_equal(probe_ca(d.url, cert, 0, 0, &status), CURLE_OK);
    /* a key others may read, then a key that is not the certificate's: refused, the
     * renewed certificate stays in use */
    snprintf(cmd, sizeof(cmd), "chmod 644 '%s'", live_key);
    run_ok(cmd);
    assert_int_equal(kill(d.pid, SIGHUP), 0);
    wait_log(&d, "is mode 0644: a private key must not be readable by group or others (chmod "
                 "600 it); the certificate in use stays");
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && chmod 600 '%s'", other_key, live_key, live_key);
    run_ok(cmd);
    assert_int_equal(kill(d.pid, SIGHUP), 0);
    wait_log(&d, "is not the key of tls.cert_file");
    assert_int_equal(probe_ca(d.url, cert2, 0, 0, &status), CURLE_OK);
    assert_int_equal(status, 200);
    fx_stop(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_settings),
        cmocka_unit_test_teardown(test_https, fx_teardown),
        cmocka_unit_test_teardown(test_certificate_reload, fx_teardown),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
