/*
 * Authentication and isolation against the real daemon (docs/security.md): a daemon
 * with two OIDC issuers (one with its keys in a file, one found by OIDC discovery on a
 * loopback HTTP server whose key set rotates), and hostile and honest callers. Forged,
 * expired, wrong-issuer, wrong-audience, alg-none and key-confusion tokens get 401 with
 * WWW-Authenticate; callers outside the user groups 403; every deployment endpoint is
 * tried by another user (404 for reads and writes, 403 for a group member's writes and
 * for createdBy/userGroup that are not the caller's); the deployments feed sends a caller
 * only what they may see; admins see everything. The daemon answers a health check after
 * each attack.
 */
#include "testutil.h"

#include <pthread.h>
#include <time.h>

#include "daemon_fixture.h"
#include "jwt_fixture.h"

#include "config.h"

#define ISS_FILE "https://login.example.org/realms/research"

static const char one_site[] =
    "sites:\n"
    "  - name: sim-a\n"
    "    driver: sim\n"
    "    config: {inventory: \"@DIR@/sim-a.json\", capacity: {cpus: 512, mem: 2048 GiB,\n"
    "             gpus: {A100: 64, T4: 16}}}\n";

static EVP_PKEY *rsa1, *ec1, *rsa_rot, *stranger;
static char *rsa1_pem, *ec1_pem, *rot_pem, *stranger_pem, *rsa1_pub;

/* The loopback issuer: python's http.server over a directory. */
static pid_t issuer_pid;
static char issuer_url[64], issuer_dir[64];

static void write_at(const char *dir, const char *name, const char *text)
{
    char path[256];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void write_jwks(const char *dir, const char *name, json_t *keys /* stolen */)
{
    json_t *set = json_pack("{so}", "keys", keys);
    char *text = json_dumps(set, 0);

    write_at(dir, name, text);
    free(text);
    json_decref(set);
}

/* Serves issuer_dir on a free loopback port; issuer_url is then its address. */
static void issuer_start(void)
{
    char log[128], line[256];
    int port = 0;

    snprintf(issuer_dir, sizeof(issuer_dir), "/tmp/orc-issuer-XXXXXX");
    assert_non_null(mkdtemp(issuer_dir));
    snprintf(log, sizeof(log), "%s.log", issuer_dir);
    issuer_pid = fork();
    assert_true(issuer_pid >= 0);
    if (issuer_pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 1);
        dup2(fd, 2);
        execlp("python3", "python3", "-u", "-m", "http.server", "--bind", "127.0.0.1",
               "--directory", issuer_dir, "0", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 400 && port == 0; i++) {
        FILE *f = fopen(log, "r");
        fx_sleep_ms(25);
        while (f && fgets(line, sizeof(line), f))
            if (strstr(line, "port "))
                sscanf(strstr(line, "port ") + 5, "%d", &port);
        if (f)
            fclose(f);
    }
    assert_true(port > 0);
    snprintf(issuer_url, sizeof(issuer_url), "http://127.0.0.1:%d", port);
    unlink(log);
}

static int group_setup(void **state)
{
    char wk[128], doc[256];

    fx_examples_load(state);
    rsa1 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    ec1 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    rsa_rot = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    stranger = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    assert_true(rsa1 && ec1 && rsa_rot && stranger);
    rsa1_pem = pem_of(rsa1, false);
    rsa1_pub = pem_of(rsa1, true);
    ec1_pem = pem_of(ec1, false);
    rot_pem = pem_of(rsa_rot, false);
    stranger_pem = pem_of(stranger, false);
    issuer_start();
    snprintf(wk, sizeof(wk), "%s/.well-known", issuer_dir);
    assert_int_equal(mkdir(wk, 0700), 0);
    snprintf(doc, sizeof(doc), "{\"issuer\":\"%s\",\"jwks_uri\":\"%s/keys.json\"}", issuer_url,
             issuer_url);
    write_at(wk, "openid-configuration", doc);
    write_jwks(issuer_dir, "keys.json", json_pack("[o]", ec_jwk(ec1, "disc-ec")));
    return 0;
}

static int group_teardown(void **state)
{
    char cmd[128];

    if (issuer_pid > 0) {
        kill(issuer_pid, SIGTERM);
        waitpid(issuer_pid, NULL, 0);
    }
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", issuer_dir);
    assert_int_equal(system(cmd), 0);
    free(rsa1_pem);
    free(rsa1_pub);
    free(ec1_pem);
    free(rot_pem);
    free(stranger_pem);
    EVP_PKEY_free(rsa1);
    EVP_PKEY_free(ec1);
    EVP_PKEY_free(rsa_rot);
    EVP_PKEY_free(stranger);
    return fx_examples_free(state);
}

/* ---- the daemon ---- */

/* The daemon with both issuers; more is YAML added to the configuration. */
static void start_daemon_with(struct fx_daemon *d, const char *more)
{
    char cfg[2048], env[256], path[192], keys[192];
    const char *extra[] = {env, NULL};

    memset(d, 0, sizeof(*d));
    snprintf(keys, sizeof(keys), "%s/file-keys.json", issuer_dir);
    write_jwks(issuer_dir, "file-keys.json", json_pack("[o]", rsa_jwk(rsa1, "file-rsa")));
    snprintf(cfg, sizeof(cfg),
             "auth:\n"
             "  issuers:\n"
             "    - {issuer: \"%s\", jwks_file: \"%s\"}\n"
             "    - \"%s\"\n"
             "  audience: orchestrator\n"
             "  user_groups: [ml-team, team-a, admins, ops]\n"
             "  operator_groups: [ops]\n"
             "  admin_groups: admins\n"
             "  clock_skew: 30s\n%s",
             ISS_FILE, keys, issuer_url, more);
    write_at(issuer_dir, "orchestrator.yaml", cfg);
    snprintf(path, sizeof(path), "%s/orchestrator.yaml", issuer_dir);
    snprintf(env, sizeof(env), "ORCHESTRATOR_CONFIG=%s", path);
    fx_start(d, "orc-auth", one_site, extra);
}

static void start_daemon(struct fx_daemon *d)
{
    start_daemon_with(d, "");
}

/* A token of iss for sub in groups ("a,b"; "" none), signed with alg/key/kid; exp_in
 * seconds from now; aud (NULL: none). */
static char *token(const char *iss, const char *sub, const char *groups, const char *aud,
                   long exp_in, jwt_alg_t alg, const char *key, const char *kid)
{
    json_t *c = json_pack("{ss ss sI sI}", "iss", iss, "sub", sub, "exp",
                          (json_int_t)time(NULL) + exp_in, "iat", (json_int_t)time(NULL) - 5);
    json_t *g = json_array();
    char buf[256], *save = NULL;

    snprintf(buf, sizeof(buf), "%s", groups);
    for (char *p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save))
        json_array_append_new(g, json_string(p));
    json_object_set_new(c, "groups", g);
    if (aud)
        json_object_set_new(c, "aud", json_string(aud));
    return sign(c, alg, key, kid);
}

static char *user(const char *sub, const char *groups)
{
    return token(ISS_FILE, sub, groups, "orchestrator", 600, JWT_ALG_RS256, rsa1_pem, "file-rsa");
}

/* A request with "Authorization: <scheme> <tok>" (tok NULL: no header). */
static long call(struct fx_daemon *d, const char *method, const char *path, const char *scheme,
                 const char *tok, const char *body, struct fx_resp *r)
{
    char auth[20000];
    const char *headers[] = {auth, NULL};

    snprintf(auth, sizeof(auth), "Authorization: %s %s", scheme, tok ? tok : "");
    return fx_http(d, method, path, tok ? headers : NULL, body, r);
}

/* The WWW-Authenticate header of GET path (fx_http keeps no response headers). */
static void www_authenticate(struct fx_daemon *d, const char *path, const char *tok, char *out,
                             size_t len)
{
    char cmd[20400], auth[20000] = "";
    FILE *p;

    if (tok)
        snprintf(auth, sizeof(auth), "-H 'Authorization: Bearer %s'", tok);
    snprintf(cmd, sizeof(cmd), "curl -s -o /dev/null -D - %s '%s%s' | tr -d '\\r' | "
             "sed -n 's/^[Ww][Ww][Ww]-[Aa]uthenticate: //p'", auth, d->url, path);
    p = popen(cmd, "r");
    assert_non_null(p);
    out[0] = '\0';
    if (fgets(out, (int)len, p))
        out[strcspn(out, "\n")] = '\0';
    pclose(p);
}

/* An "alg": "none" token of the file issuer with a signature part. */
static char *unsigned_token(void)
{
    static const char hdr[] = "{\"alg\":\"none\",\"kid\":\"file-rsa\"}";
    char claims[512], h[128], c[800], *out = malloc(1000);

    snprintf(claims, sizeof(claims),
             "{\"iss\":\"%s\",\"sub\":\"alice\",\"aud\":\"orchestrator\",\"exp\":%lld,"
             "\"groups\":[\"admins\"]}",
             ISS_FILE, (long long)time(NULL) + 600);
    b64url((const unsigned char *)hdr, strlen(hdr), h);
    b64url((const unsigned char *)claims, strlen(claims), c);
    snprintf(out, 1000, "%s.%s.c2ln", h, c);
    return out;
}

static void daemon_alive(struct fx_daemon *d)
{
    struct fx_resp r;

    assert_int_equal(fx_get(d, "/healthz", &r), 200);
    fx_resp_free(&r);
}

/* tok (freed) gets status with error (RFC 6750 code) and a description containing want. */
static void refused(struct fx_daemon *d, char *tok, long status, const char *error,
                    const char *want)
{
    struct fx_resp r;

    if (call(d, "GET", "/deployments", "Bearer", tok, NULL, &r) != status || r.json == NULL)
        fail_msg("expected %ld, got %ld %s", status, r.status, r.body);
    assert_string_equal(json_string_value(json_object_get(r.json, "error")), error);
    if (strstr(json_string_value(json_object_get(r.json, "error_description")), want) == NULL)
        fail_msg("expected '%s' in %s", want, r.body);
    fx_resp_free(&r);
    free(tok);
    daemon_alive(d);
}

/* ---- tokens ---- */

static void test_tokens(void **state)
{
    struct fx_daemon d;
    struct fx_resp r;
    char hdr[512], *tok, *hs;

    (void)state;
    start_daemon(&d);
    /* no token: 401 and a challenge without an error code (RFC 6750 3.1) */
    assert_int_equal(fx_get(&d, "/deployments", &r), 401);
    assert_string_equal(json_string_value(json_object_get(r.json, "error")), "invalid_token");
    fx_resp_free(&r);
    www_authenticate(&d, "/deployments", NULL, hdr, sizeof(hdr));
    assert_string_equal(hdr, "Bearer realm=\"orchestrator\"");
    /* public endpoints need none */
    assert_int_equal(fx_get(&d, "/info", &r), 200);
    fx_resp_free(&r);
    assert_int_equal(fx_get(&d, "/openapi.json", &r), 200);
    assert_non_null(json_object_get(json_object_get(json_object_get(r.json, "components"),
                                                    "securitySchemes"),
                                    "bearerAuth"));
    fx_resp_free(&r);
    /* another scheme */
    assert_int_equal(call(&d, "GET", "/deployments", "Basic", "YWxpY2U6cHc=", NULL, &r), 401);
    assert_string_equal(json_string_value(json_object_get(r.json, "error")), "invalid_request");
    fx_resp_free(&r);
    /* the scheme word in any case */
    tok = user("alice", "ml-team");
    assert_int_equal(call(&d, "GET", "/deployments", "bearer", tok, NULL, &r), 200);
    fx_resp_free(&r);
    assert_int_equal(call(&d, "GET", "/deployments", "BEARER", tok, NULL, &r), 200);
    fx_resp_free(&r);
    www_authenticate(&d, "/deployments", tok, hdr, sizeof(hdr));
    assert_string_equal(hdr, "");
    free(tok);
    /* forged: the file issuer's kid, signed by another key */
    refused(&d, token(ISS_FILE, "mallory", "admins", "orchestrator", 600, JWT_ALG_RS256,
                      stranger_pem, "file-rsa"),
            401, "invalid_token", "signature does not verify");
    /* expired beyond the skew */
    refused(&d, token(ISS_FILE, "alice", "ml-team", "orchestrator", -120, JWT_ALG_RS256, rsa1_pem,
                      "file-rsa"),
            401, "invalid_token", "expired");
    /* an issuer not configured; one configured, but the token signed with the other's key */
    refused(&d, token("https://evil.example.org", "alice", "ml-team", "orchestrator", 600,
                      JWT_ALG_RS256, rsa1_pem, "file-rsa"),
            401, "invalid_token", "issuer https://evil.example.org is not accepted");
    refused(&d, token(issuer_url, "alice", "ml-team", "orchestrator", 600, JWT_ALG_RS256,
                      rsa1_pem, "file-rsa"),
            401, "invalid_token", "no key file-rsa");
    /* another audience */
    refused(&d, token(ISS_FILE, "alice", "ml-team", "other-service", 600, JWT_ALG_RS256, rsa1_pem,
                      "file-rsa"),
            401, "invalid_token", "audience orchestrator");
    /* alg none */
    refused(&d, unsigned_token(), 401, "invalid_token", "algorithm none is not accepted");
    /* key confusion: HS256 with the issuer's public key as the secret */
    hs = token(ISS_FILE, "alice", "admins", "orchestrator", 600, JWT_ALG_HS256, rsa1_pub,
               "file-rsa");
    refused(&d, hs, 401, "invalid_token", "algorithm HS256 is not accepted");
    /* garbage */
    refused(&d, strdup("not.a.jwt"), 401, "invalid_token", "not a JWT with an issuer");
    /* a valid token of someone outside the user groups */
    refused(&d, user("eve", "visitors"), 403, "insufficient_scope", "none of the groups");
    /* the operator role for /metrics */
    tok = user("alice", "ml-team");
    assert_int_equal(call(&d, "GET", "/metrics", "Bearer", tok, NULL, &r), 403);
    assert_string_equal(json_string_value(json_object_get(r.json, "error")), "insufficient_scope");
    fx_resp_free(&r);
    free(tok);
    tok = user("olga", "ops");
    assert_int_equal(call(&d, "GET", "/metrics", "Bearer", tok, NULL, &r), 200);
    fx_resp_free(&r);
    free(tok);
    /* the sites: users see states and capacity, operators the pools and credentials too */
    tok = user("alice", "ml-team");
    assert_int_equal(call(&d, "GET", "/sites", "Bearer", tok, NULL, &r), 200);
    {
        json_t *site = json_array_get(json_object_get(r.json, "content"), 0);
        assert_non_null(json_object_get(site, "gpus"));
        assert_null(json_object_get(site, "pools"));
        assert_null(json_object_get(site, "credentials"));
    }
    fx_resp_free(&r);
    assert_int_equal(
        call(&d, "PATCH", "/sites/sim-a", "Bearer", tok, "{\"state\":\"draining\"}", &r), 403);
    fx_resp_free(&r);
    free(tok);
    tok = user("olga", "ops");
    assert_int_equal(call(&d, "GET", "/sites", "Bearer", tok, NULL, &r), 200);
    assert_non_null(
        json_object_get(json_array_get(json_object_get(r.json, "content"), 0), "pools"));
    fx_resp_free(&r);
    free(tok);
    /* sites registered through the API: operators only, and only their own (or an admin) */
    tok = user("alice", "ml-team");
    assert_int_equal(call(&d, "POST", "/sites", "Bearer", tok,
                          "{\"name\": \"olga-site\", \"driver\": \"sim\"}", &r),
                     403);
    fx_resp_free(&r);
    free(tok);
    tok = user("olga", "ops");
    assert_int_equal(call(&d, "POST", "/sites", "Bearer", tok,
                          "{\"name\": \"olga-site\", \"driver\": \"sim\"}", &r),
                     201);
    fx_resp_free(&r);
    free(tok);
    tok = user("oscar", "ops");
    assert_int_equal(call(&d, "PUT", "/sites/olga-site", "Bearer", tok,
                          "{\"driver\": \"sim\", \"enabled\": false}", &r),
                     403);
    assert_non_null(strstr(json_string_value(json_object_get(r.json, "message")),
                           "registered by another operator"));
    fx_resp_free(&r);
    assert_int_equal(call(&d, "DELETE", "/sites/olga-site", "Bearer", tok, NULL, &r), 403);
    fx_resp_free(&r);
    free(tok);
    tok = user("ada", "admins");
    assert_int_equal(call(&d, "DELETE", "/sites/olga-site", "Bearer", tok, NULL, &r), 204);
    fx_resp_free(&r);
    free(tok);
    /* quotas: admins only */
    tok = user("olga", "ops");
    assert_int_equal(call(&d, "GET", "/quotas", "Bearer", tok, NULL, &r), 403);
    fx_resp_free(&r);
    assert_int_equal(call(&d, "PUT", "/quotas/ml-team", "Bearer", tok, "{}", &r), 403);
    fx_resp_free(&r);
    free(tok);
    tok = user("ada", "admins");
    assert_int_equal(
        call(&d, "PUT", "/quotas/ml-team", "Bearer", tok, "{\"max_deployments\": 0}", &r), 200);
    fx_resp_free(&r);
    free(tok);
    tok = user("alice", "ml-team");
    assert_int_equal(call(&d, "POST", "/deployments", "Bearer", tok,
                          "{\"template\":\"tosca_definitions_version: tosca_simple_yaml_1_3\\n"
                          "topology_template:\\n  node_templates:\\n    n: {type: "
                          "tosca.nodes.Compute}\\n\",\"userGroup\":\"ml-team\"}",
                          &r),
                     403);
    assert_non_null(strstr(json_string_value(json_object_get(r.json, "message")),
                           "quota of group ml-team: deployments"));
    fx_resp_free(&r);
    free(tok);
    /* the catalog: users read it, operators publish and retire */
    tok = user("alice", "ml-team");
    assert_int_equal(call(&d, "GET", "/templates", "Bearer", tok, NULL, &r), 200);
    fx_resp_free(&r);
    assert_int_equal(
        call(&d, "POST", "/templates", "Bearer", tok, "{\"name\":\"mine\",\"template\":\"x\"}", &r),
        403);
    assert_string_equal(json_string_value(json_object_get(r.json, "error")), "insufficient_scope");
    fx_resp_free(&r);
    assert_int_equal(call(&d, "DELETE", "/templates/gpu-training", "Bearer", tok, NULL, &r), 403);
    fx_resp_free(&r);
    free(tok);
    tok = user("olga", "ops");
    assert_int_equal(call(&d, "POST", "/templates", "Bearer", tok,
                          "{\"name\":\"ops-template\",\"template\":\"tosca_definitions_version: "
                          "tosca_simple_yaml_1_3\\ntopology_template:\\n  node_templates:\\n    n: "
                          "{type: tosca.nodes.Compute}\\n\"}",
                          &r),
                     201);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r.json, "published"), "subject")),
        "olga");
    fx_resp_free(&r);
    assert_int_equal(call(&d, "DELETE", "/templates/ops-template", "Bearer", tok, NULL, &r), 200);
    fx_resp_free(&r);
    free(tok);
    /* the agent endpoint keeps its own per-deployment token: a user's does not open it */
    tok = user("alice", "ml-team");
    assert_int_equal(call(&d, "POST",
                          "/agent/v1/deployments/01a23af1-0000-7000-8000-000000000000/reports",
                          "Bearer", tok, "{\"resource\":\"x\",\"reports\":[]}", &r),
                     401);
    fx_resp_free(&r);
    free(tok);
    daemon_alive(&d);
    fx_stop(&d);
}

/* Keys of the discovered issuer: found through its OpenID configuration, and fetched
 * again when a token names a key the set lacks (rotation), at most every few seconds. */
static void test_discovery_and_rotation(void **state)
{
    struct fx_daemon d;
    struct fx_resp r;
    char *tok;

    (void)state;
    write_jwks(issuer_dir, "keys.json", json_pack("[o]", ec_jwk(ec1, "disc-ec")));
    start_daemon(&d);
    tok = token(issuer_url, "bob", "team-a", "orchestrator", 600, JWT_ALG_ES256, ec1_pem,
                "disc-ec");
    assert_int_equal(call(&d, "GET", "/deployments", "Bearer", tok, NULL, &r), 200);
    fx_resp_free(&r);
    free(tok);
    assert_int_equal(fx_get(&d, "/readyz", &r), 200);
    fx_resp_free(&r);
    /* the issuer rotates in a new key; the daemon's set is older than the refetch pause */
    write_jwks(issuer_dir, "keys.json",
               json_pack("[oo]", ec_jwk(ec1, "disc-ec"), rsa_jwk(rsa_rot, "disc-rsa-2")));
    fx_sleep_ms(5500);
    tok = token(issuer_url, "bob", "team-a", "orchestrator", 600, JWT_ALG_RS256, rot_pem,
                "disc-rsa-2");
    if (call(&d, "GET", "/deployments", "Bearer", tok, NULL, &r) != 200)
        fail_msg("a token of the rotated-in key: %ld %s", r.status, r.body);
    fx_resp_free(&r);
    free(tok);
    /* an unknown kid right after: no new fetch so soon, refused */
    tok = token(issuer_url, "bob", "team-a", "orchestrator", 600, JWT_ALG_RS256, stranger_pem,
                "disc-rsa-9");
    refused(&d, tok, 401, "invalid_token", "no key disc-rsa-9");
    fx_stop(&d);
}

/* ---- isolation ---- */

static char *create_as(struct fx_daemon *d, const char *tok, const char *group, long want)
{
    json_t *body = json_pack("{ss}", "template", fx_serving);
    char *text, *uuid = NULL;
    struct fx_resp r;

    if (group)
        json_object_set_new(body, "userGroup", json_string(group));
    text = json_dumps(body, 0);
    json_decref(body);
    if (call(d, "POST", "/deployments", "Bearer", tok, text, &r) != want)
        fail_msg("POST /deployments (group %s): %ld %s", group ? group : "-", r.status, r.body);
    if (want == 201)
        uuid = strdup(json_string_value(json_object_get(r.json, "uuid")));
    fx_resp_free(&r);
    free(text);
    return uuid;
}

/* Every endpoint of a deployment, as reads and writes. */
static void expect_everywhere(struct fx_daemon *d, const char *tok, const char *uuid,
                              long reads, long writes)
{
    static const char *const reads_of[] = {
        "", "/template", "/log", "/outputs", "/extrainfo", "/resources", "/events", "/usage", NULL};
    char path[256];
    struct fx_resp r;

    for (size_t i = 0; reads_of[i]; i++) {
        snprintf(path, sizeof(path), "/deployments/%s%s", uuid, reads_of[i]);
        if (call(d, "GET", path, "Bearer", tok, NULL, &r) != reads)
            fail_msg("GET %s: %ld, expected %ld (%s)", path, r.status, reads, r.body);
        fx_resp_free(&r);
    }
    snprintf(path, sizeof(path), "/deployments/%s", uuid);
    if (call(d, "PUT", path, "Bearer", tok, "{\"parameters\":{}}", &r) != writes)
        fail_msg("PUT %s: %ld, expected %ld (%s)", path, r.status, writes, r.body);
    fx_resp_free(&r);
    if (call(d, "PATCH", path, "Bearer", tok, "{\"status\":\"DELETE_FAILED\"}", &r) != writes)
        fail_msg("PATCH %s: %ld, expected %ld (%s)", path, r.status, writes, r.body);
    fx_resp_free(&r);
    snprintf(path, sizeof(path), "/deployments/%s/resources/%s/actions", uuid, uuid);
    if (call(d, "POST", path, "Bearer", tok, "{\"type\":\"stop\"}", &r) != writes)
        fail_msg("POST %s: %ld, expected %ld (%s)", path, r.status, writes, r.body);
    fx_resp_free(&r);
    snprintf(path, sizeof(path), "/deployments/%s", uuid);
    if (call(d, "DELETE", path, "Bearer", tok, NULL, &r) != writes)
        fail_msg("DELETE %s: %ld, expected %ld (%s)", path, r.status, writes, r.body);
    fx_resp_free(&r);
}

/* How many deployments GET /deployments (with query) shows to tok. */
static long listed(struct fx_daemon *d, const char *tok, const char *query, long want_status)
{
    char path[256];
    struct fx_resp r;
    long n;

    snprintf(path, sizeof(path), "/deployments?size=100%s", query);
    if (call(d, "GET", path, "Bearer", tok, NULL, &r) != want_status)
        fail_msg("GET %s: %ld %s", path, r.status, r.body);
    n = want_status == 200 ? (long)json_array_size(json_object_get(r.json, "content")) : -1;
    fx_resp_free(&r);
    return n;
}

/* Waits until the deployment at path is no longer in progress. */
static void wait_settled(struct fx_daemon *d, const char *tok, const char *path)
{
    struct fx_resp r;
    bool busy = true;

    for (int i = 0; i < 500 && busy; i++) {
        assert_int_equal(call(d, "GET", path, "Bearer", tok, NULL, &r), 200);
        busy = strstr(json_string_value(json_object_get(r.json, "status")), "IN_PROGRESS") != NULL;
        fx_resp_free(&r);
        if (busy)
            fx_sleep_ms(20);
    }
}

/* What GET /deployments/changes sends a caller during a few seconds (a thread). */
struct feed_read {
    const char *url, *tok;
    char *raw;
    size_t len;
    pthread_t thread;
};

static size_t feed_bytes(char *p, size_t size, size_t n, void *ud)
{
    struct feed_read *f = ud;
    char *grown = realloc(f->raw, f->len + size * n + 1);

    if (grown == NULL)
        return 0;
    f->raw = grown;
    memcpy(f->raw + f->len, p, size * n);
    f->len += size * n;
    f->raw[f->len] = '\0';
    return size * n;
}

static void *feed_main(void *arg)
{
    struct feed_read *f = arg;
    char url[256], auth[20000];
    CURL *c = curl_easy_init();
    struct curl_slist *h;

    snprintf(url, sizeof(url), "%s/deployments/changes", f->url);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", f->tok);
    h = curl_slist_append(NULL, auth);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, feed_bytes);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 4000L);
    curl_easy_perform(c); /* ends at the time-out: the feed never ends itself */
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

static void feed_start(struct feed_read *f, const struct fx_daemon *d, const char *tok)
{
    memset(f, 0, sizeof(*f));
    f->url = d->url;
    f->tok = tok;
    f->raw = calloc(1, 1);
    assert_int_equal(pthread_create(&f->thread, NULL, feed_main, f), 0);
}

static void test_isolation(void **state)
{
    struct fx_daemon d;
    struct fx_resp r;
    char *alice = user("alice", "ml-team,team-a"), *bob = user("bob", "ml-team");
    char *carol = user("carol", "team-a"), *root = user("root", "admins");
    char *own, *shared, path[160], by[160];

    struct feed_read bob_feed, carol_feed;

    (void)state;
    start_daemon(&d);
    feed_start(&bob_feed, &d, bob);
    feed_start(&carol_feed, &d, carol);
    fx_sleep_ms(300); /* both feeds are open */
    own = create_as(&d, alice, NULL, 201);
    shared = create_as(&d, alice, "team-a", 201);
    /* the feeds: nothing of alice's for bob; for carol, the group's one only */
    pthread_join(bob_feed.thread, NULL);
    pthread_join(carol_feed.thread, NULL);
    assert_non_null(strstr(bob_feed.raw, "retry: 2000"));
    assert_null(strstr(bob_feed.raw, own));
    assert_null(strstr(bob_feed.raw, shared));
    assert_non_null(strstr(carol_feed.raw, shared));
    assert_null(strstr(carol_feed.raw, own));
    free(bob_feed.raw);
    free(carol_feed.raw);
    /* a group the caller is not in */
    assert_null(create_as(&d, bob, "team-a", 403));
    /* createdBy is the token's caller */
    snprintf(path, sizeof(path), "/deployments/%s", own);
    assert_int_equal(call(&d, "GET", path, "Bearer", alice, NULL, &r), 200);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r.json, "createdBy"), "subject")),
        "alice");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r.json, "createdBy"), "issuer")),
        ISS_FILE);
    fx_resp_free(&r);
    /* another user: 404 everywhere, as if it did not exist */
    expect_everywhere(&d, bob, own, 404, 404);
    expect_everywhere(&d, bob, shared, 404, 404);
    /* a member of its group reads it but may not change it */
    expect_everywhere(&d, carol, shared, 200, 403);
    expect_everywhere(&d, carol, own, 404, 404);
    /* lists */
    assert_int_equal(listed(&d, alice, "", 200), 2);
    assert_int_equal(listed(&d, alice, "&createdBy=me", 200), 2);
    assert_int_equal(listed(&d, bob, "", 200), 0);
    assert_int_equal(listed(&d, carol, "", 200), 1);
    assert_int_equal(listed(&d, carol, "&userGroup=team-a", 200), 1);
    assert_int_equal(listed(&d, bob, "&userGroup=team-a", 403), -1);
    snprintf(by, sizeof(by), "&createdBy=alice@%s", ISS_FILE);
    assert_int_equal(listed(&d, bob, by, 403), -1);
    assert_int_equal(listed(&d, root, by, 200), 2);
    assert_int_equal(listed(&d, root, "", 200), 2);
    /* an admin sees and may delete anything */
    assert_int_equal(call(&d, "GET", path, "Bearer", root, NULL, &r), 200);
    fx_resp_free(&r);
    snprintf(path, sizeof(path), "/deployments/%s", shared);
    assert_int_equal(call(&d, "DELETE", path, "Bearer", root, NULL, &r), 204);
    fx_resp_free(&r);
    /* the owner deletes their own */
    snprintf(path, sizeof(path), "/deployments/%s", own);
    wait_settled(&d, alice, path);
    assert_int_equal(call(&d, "DELETE", path, "Bearer", alice, NULL, &r), 204);
    fx_resp_free(&r);
    daemon_alive(&d);
    fx_stop(&d);
    free(own);
    free(shared);
    free(alice);
    free(bob);
    free(carol);
    free(root);
}

/* ---- quotas and rates ---- */

static void test_quota_and_rate(void **state)
{
    struct fx_daemon d;
    struct fx_resp r;
    char *alice = user("alice", "ml-team"), *bob = user("bob", "ml-team");
    char *root = user("root", "admins"), *a1, *a2, *a3, path[160];
    int limited = 0, ok = 0;

    (void)state;
    start_daemon_with(&d, "limits:\n  user_deployments: 2\n  user_rate: 5\n  user_burst: 20\n");
    a1 = create_as(&d, alice, NULL, 201);
    a2 = create_as(&d, alice, NULL, 201);
    assert_null(create_as(&d, alice, NULL, 403)); /* the third is over the quota */
    {
        json_t *body = json_pack("{ss}", "template", fx_serving);
        char *text = json_dumps(body, 0);
        assert_int_equal(call(&d, "POST", "/deployments", "Bearer", alice, text, &r), 403);
        if (strstr(json_string_value(json_object_get(r.json, "message")),
                   "quota: alice has 2 deployments") == NULL)
            fail_msg("%s", r.body);
        fx_resp_free(&r);
        free(text);
        json_decref(body);
    }
    a3 = create_as(&d, bob, NULL, 201);    /* another user's quota is their own */
    free(create_as(&d, root, NULL, 201));  /* admins have none */
    free(create_as(&d, root, NULL, 201));
    free(create_as(&d, root, NULL, 201));
    /* deleted deployments no longer count */
    snprintf(path, sizeof(path), "/deployments/%s", a1);
    wait_settled(&d, alice, path);
    assert_int_equal(call(&d, "DELETE", path, "Bearer", alice, NULL, &r), 204);
    fx_resp_free(&r);
    for (int i = 0; i < 500; i++) {
        long st = call(&d, "GET", path, "Bearer", alice, NULL, &r);
        fx_resp_free(&r);
        if (st == 404)
            break;
        fx_sleep_ms(20);
    }
    free(create_as(&d, alice, NULL, 201));
    /* the rate: 20 at once, then 5 per second; 429 with Retry-After beyond */
    for (int i = 0; i < 60; i++) {
        long st = call(&d, "GET", "/deployments", "Bearer", bob, NULL, &r);
        if (st == 429) {
            limited++;
            assert_non_null(strstr(json_string_value(json_object_get(r.json, "message")),
                                   "limits.user_rate"));
        } else {
            assert_int_equal(st, 200);
            ok++;
        }
        fx_resp_free(&r);
    }
    if (limited < 20 || ok < 15) /* bob spent one on his deployment */
        fail_msg("60 requests at once: %d passed, %d limited", ok, limited);
    /* another user is not held back by bob, nor are public endpoints */
    assert_int_equal(call(&d, "GET", "/deployments", "Bearer", root, NULL, &r), 200);
    fx_resp_free(&r);
    daemon_alive(&d);
    fx_sleep_ms(1100); /* bob's bucket refills */
    assert_int_equal(call(&d, "GET", "/deployments", "Bearer", bob, NULL, &r), 200);
    fx_resp_free(&r);
    fx_stop(&d);
    free(a1);
    free(a2);
    free(a3);
    free(alice);
    free(bob);
    free(root);
}

/* ---- callbacks ---- */

/* With authentication on, callbacks may not target this machine or private networks. */
static void test_callback_ssrf(void **state)
{
    static const char *const refused_urls[][2] = {
        {"http://127.0.0.1:9/hook", "a loopback address"},
        {"http://localhost:8080/x", "a loopback address"},
        {"https://user:pw@127.0.0.2/x", "a loopback address"},
        {"http://[::1]:80/", "a loopback address"},
        {"http://169.254.169.254/latest/meta-data/", "a link-local address"},
        {"http://10.0.0.7/", "a private address"},
        {"http://192.168.1.20:3000/cb", "a private address"},
        {"http://[fd12::1]/", "a private (unique local) address"},
        {"http://[::ffff:10.0.0.1]/", "a private address"},
        {NULL, NULL}};
    struct fx_daemon d;
    struct fx_resp r;
    char *alice = user("alice", "ml-team"), *uuid;

    (void)state;
    start_daemon(&d);
    for (size_t i = 0; refused_urls[i][0]; i++) {
        json_t *body = json_pack("{ssss}", "template", fx_serving, "callback", refused_urls[i][0]);
        char *text = json_dumps(body, 0);
        if (call(&d, "POST", "/deployments", "Bearer", alice, text, &r) != 400 ||
            strstr(json_string_value(json_object_get(r.json, "message")), refused_urls[i][1]) ==
                NULL)
            fail_msg("callback %s: %ld %s", refused_urls[i][0], r.status, r.body);
        fx_resp_free(&r);
        free(text);
        json_decref(body);
    }
    /* a public address is accepted (the callback then fails to connect, later) */
    {
        json_t *body = json_pack("{ssss}", "template", fx_serving, "callback",
                                 "https://hooks.example.org/orchestrator");
        char *text = json_dumps(body, 0);
        assert_int_equal(call(&d, "POST", "/deployments", "Bearer", alice, text, &r), 201);
        uuid = strdup(json_string_value(json_object_get(r.json, "uuid")));
        fx_resp_free(&r);
        free(text);
        json_decref(body);
    }
    free(uuid);
    daemon_alive(&d);
    fx_stop(&d);
    free(alice);
}

/* ---- configuration ---- */

static void expect_config(const char *yaml, const char *listen, int want, const char *msg)
{
    char dir[] = "/tmp/orc-authcfg-XXXXXX", path[128], err[512] = "";
    const char *argv[] = {"orchestratord", "--config", path, "--listen", listen, NULL};
    orc_config_t cfg;
    int rc;

    assert_non_null(mkdtemp(dir));
    write_at(dir, "c.yaml", yaml);
    snprintf(path, sizeof(path), "%s/c.yaml", dir);
    assert_int_equal(orc_config_init(&cfg), 0);
    rc = orc_config_load(&cfg, 5, (char *const *)argv, NULL, err, sizeof(err));
    if (rc != want || (msg && strstr(err, msg) == NULL))
        fail_msg("expected %d '%s', got %d '%s'", want, msg ? msg : "", rc, err);
    orc_config_fini(&cfg);
    unlink(path);
    rmdir(dir);
}

static void test_config(void **state)
{
    (void)state;
    /* beyond loopback only with authentication */
    expect_config("log_level: info\n", "0.0.0.0:8080", ORC_EINVAL, "without authentication");
    expect_config("auth:\n  issuers: [\"https://iam.example.org/\"]\n", "0.0.0.0:8080", 0, NULL);
    expect_config("auth:\n  issuers: []\n", "127.0.0.1:0", ORC_EINVAL,
                  "c.yaml:1:1: auth: issuers must be a list of 1 to 16 issuers");
    expect_config("auth:\n  audience: x\n", "127.0.0.1:0", ORC_EINVAL, "issuers is required");
    expect_config("auth:\n  issuers: [\"http://iam.example.org\"]\n", "127.0.0.1:0", ORC_EINVAL,
                  "must be https (plain http only to a loopback address)");
    expect_config("auth:\n  issuers: [{issuer: a, jwks_uri: \"https://x/k\", jwks_file: f}]\n",
                  "127.0.0.1:0", ORC_EINVAL, "issuers[0]: give jwks_file or jwks_uri, not both");
    expect_config("auth:\n  issuers: [\"https://a\", \"https://a\"]\n", "127.0.0.1:0", ORC_EINVAL,
                  "issuers[1]: issuer https://a is listed twice");
    expect_config("auth:\n  issuers: [\"https://a\"]\n  clock_skew: 2h\n", "127.0.0.1:0",
                  ORC_EINVAL, "clock_skew is longer than 600 s");
    expect_config("auth:\n  issuers: [\"https://a\"]\n  groups: [x]\n", "127.0.0.1:0", ORC_EINVAL,
                  "unknown key 'groups'");
    expect_config("auth:\n  issuers: [\"https://a\"]\n  admin_groups: [1]\n", "127.0.0.1:0",
                  ORC_EINVAL, "admin_groups[0] must be a group name");
}

/* A key file that cannot be read stops the start with a message naming it. */
static void test_bad_key_file(void **state)
{
    char dir[] = "/tmp/orc-authkf-XXXXXX", cfg[256], args[300], cmd[100];

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(cfg, sizeof(cfg), "%s/c.yaml", dir);
    write_at(dir, "c.yaml", "auth:\n  issuers: [{issuer: \"https://a\", jwks_file: nope.json}]\n");
    snprintf(args, sizeof(args), "--config '%s'", cfg);
    free(fx_expect_no_start(dir, args, "auth: issuer https://a: jwks_file nope.json"));
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_bad_key_file),
        cmocka_unit_test_teardown(test_tokens, fx_teardown),
        cmocka_unit_test_teardown(test_discovery_and_rotation, fx_teardown),
        cmocka_unit_test_teardown(test_isolation, fx_teardown),
        cmocka_unit_test_teardown(test_quota_and_rate, fx_teardown),
        cmocka_unit_test_teardown(test_callback_ssrf, fx_teardown),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
