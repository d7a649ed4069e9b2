/*
 * Bearer tokens (orchestrator/api/jwt_auth.c) with keys made here by OpenSSL and
 * tokens signed by libjwt: RS256 and ES256 pass with the right key, issuer, audience
 * and times; forged ones are refused with a reason: alg none, HMAC signed with the
 * issuer's public key (key confusion), a key of the other type, an unknown kid, a
 * changed payload, expired, not yet valid, issued in the future, another issuer,
 * another audience, no exp; key sets that are not key sets; the Bearer scheme in any
 * letter case.
 */
#include "testutil.h"

#include "api/jwt_auth.h"
#include "jwt_fixture.h"

#define ISSUER "https://login.example.org/realms/research"
#define NOW 1800000000

static EVP_PKEY *rsa1, *rsa2, *ec1;
static orc_jwks_t *keys;
static char *jwks_text;

static int group_setup(void **state)
{
    json_t *set;
    char err[200];

    (void)state;
    rsa1 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    rsa2 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    ec1 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_true(rsa1 && rsa2 && ec1);
    set = json_pack("{s[oooo]}", "keys", rsa_jwk(rsa1, "rsa-1"), rsa_jwk(rsa2, "rsa-2"),
                    ec_jwk(ec1, "ec-1"), json_pack("{ss ss ss}", "kty", "oct", "kid", "hmac", "k", "c2VjcmV0"));
    jwks_text = json_dumps(set, 0);
    json_decref(set);
    keys = orc_jwks_parse(jwks_text, strlen(jwks_text), err, sizeof(err));
    if (keys == NULL)
        fail_msg("%s", err);
    assert_int_equal(orc_jwks_count(keys), 3); /* the oct key is skipped */
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    orc_jwks_free(keys);
    free(jwks_text);
    EVP_PKEY_free(rsa1);
    EVP_PKEY_free(rsa2);
    EVP_PKEY_free(ec1);
    return 0;
}

/* ---- tokens ---- */

static json_t *claims(void)
{
    return json_pack("{ss ss ss sI sI sI s[ss]}", "iss", ISSUER, "sub", "alice-1234", "aud",
                     "orchestrator", "exp", (json_int_t)NOW + 600, "iat", (json_int_t)NOW - 10,
                     "nbf", (json_int_t)NOW - 10, "groups", "ml-team", "admins");
}

static char *rs256(json_t *c, EVP_PKEY *k, const char *kid)
{
    char *pem = pem_of(k, false), *t = sign(c, JWT_ALG_RS256, pem, kid);

    free(pem);
    return t;
}

static const struct orc_jwt_rules *rules(void)
{
    static const char *const issuers[] = {"https://other.example.org", ISSUER, NULL};
    static struct orc_jwt_rules r = {.issuers = issuers, .audience = "orchestrator",
                                     .groups_claim = "groups", .skew_s = 60, .now_s = NOW};
    return &r;
}

/* token (freed) must be refused with code, the reason containing want */
static void refused_with(char *token, int code, const char *want)
{
    struct orc_jwt_identity id;
    char why[256] = "";
    int rc = orc_jwt_verify(keys, rules(), token, &id, why, sizeof(why));

    free(token);
    if (rc != code)
        fail_msg("accepted (rc %d), expected a refusal saying '%s'", rc, want);
    if (strstr(why, want) == NULL)
        fail_msg("refused with '%s', expected '%s'", why, want);
    assert_null(id.groups);
}

static void refused(char *token, const char *want)
{
    refused_with(token, ORC_EDENIED, want);
}

static void test_rs256_and_es256_accepted(void **state)
{
    struct orc_jwt_identity id;
    char why[256] = "", *tok;
    char *ec_pem = pem_of(ec1, false);

    (void)state;
    tok = rs256(claims(), rsa2, "rsa-2");
    assert_int_equal(orc_jwt_verify(keys, rules(), tok, &id, why, sizeof(why)), 0);
    assert_string_equal(id.issuer, ISSUER);
    assert_string_equal(id.subject, "alice-1234");
    assert_int_equal(id.expires_s, NOW + 600);
    assert_int_equal(json_array_size(id.groups), 2);
    assert_string_equal(json_string_value(json_array_get(id.groups, 1)), "admins");
    orc_jwt_identity_clear(&id);
    free(tok);
    tok = sign(claims(), JWT_ALG_ES256, ec_pem, "ec-1");
    assert_int_equal(orc_jwt_verify(keys, rules(), tok, &id, why, sizeof(why)), 0);
    orc_jwt_identity_clear(&id);
    free(tok);
    /* no kid: the only EC key; groups as one string; aud as a list */
    {
        json_t *c = claims();
        json_object_set_new(c, "groups", json_string("ml-team"));
        json_object_set_new(c, "aud", json_pack("[ss]", "account", "orchestrator"));
        tok = sign(c, JWT_ALG_ES256, ec_pem, NULL);
    }
    assert_int_equal(orc_jwt_verify(keys, rules(), tok, &id, why, sizeof(why)), 0);
    assert_int_equal(json_array_size(id.groups), 1);
    orc_jwt_identity_clear(&id);
    free(tok);
    free(ec_pem);
}

static void test_forged_algorithms_refused(void **state)
{
    char *pub = pem_of(rsa1, true), hdr[64], body[512], forged[700];
    json_t *c = claims();
    char *ctext = json_dumps(c, JSON_COMPACT);

    (void)state;
    /* alg none, with and without a signature part */
    {
        static const char none[] = "{\"alg\":\"none\",\"typ\":\"JWT\"}";
        b64url((const unsigned char *)none, strlen(none), hdr);
    }
    b64url((const unsigned char *)ctext, strlen(ctext), body);
    snprintf(forged, sizeof(forged), "%s.%s.", hdr, body);
    refused(strdup(forged), "not a signed JWT");
    snprintf(forged, sizeof(forged), "%s.%s.c2ln", hdr, body);
    refused(strdup(forged), "algorithm none is not accepted");
    /* key confusion: HMAC with the issuer's public key as the secret */
    refused(sign(claims(), JWT_ALG_HS256, pub, "rsa-1"), "algorithm HS256 is not accepted");
    refused(sign(claims(), JWT_ALG_HS256, pub, NULL), "algorithm HS256 is not accepted");
    /* RS512 is not on the list either */
    {
        char *pem = pem_of(rsa1, false);
        refused(sign(claims(), JWT_ALG_RS512, pem, "rsa-1"), "RS512 is not accepted");
        free(pem);
    }
    /* an RS256 token naming the EC key; an unknown key; no kid with two RSA keys */
    refused(rs256(claims(), rsa1, "ec-1"), "is not of the token's algorithm");
    refused_with(rs256(claims(), rsa1, "rsa-9"), ORC_ENOTFOUND, "no key rsa-9"); /* fetch again */
    refused(rs256(claims(), rsa1, NULL), "has 2 of its type");
    /* signed by another key than the one it names */
    refused(rs256(claims(), rsa1, "rsa-2"), "signature does not verify");
    json_decref(c);
    free(ctext);
    free(pub);
}

static void test_tampered_and_malformed(void **state)
{
    char *tok = rs256(claims(), rsa1, "rsa-1"), *dot1 = strchr(tok, '.'), *dot2 = strchr(dot1 + 1, '.');
    char body[512], forged[2048];
    json_t *c = claims();
    char *ctext;

    (void)state;
    json_object_set_new(c, "sub", json_string("mallory"));
    ctext = json_dumps(c, JSON_COMPACT);
    b64url((const unsigned char *)ctext, strlen(ctext), body);
    snprintf(forged, sizeof(forged), "%.*s.%s%s", (int)(dot1 - tok), tok, body, dot2);
    refused(strdup(forged), "signature does not verify");
    refused(strdup("not-a-token"), "three base64url parts");
    refused(strdup("a.b.c.d"), "three base64url parts");
    refused(strdup("!!!.e30.c2ln"), "header is not base64url JSON");
    refused(strdup(""), "empty");
    {
        char *big = malloc(ORC_JWT_MAX_TOKEN + 2);
        memset(big, 'a', ORC_JWT_MAX_TOKEN + 1);
        big[ORC_JWT_MAX_TOKEN + 1] = '\0';
        refused(big, "longer than");
    }
    json_decref(c);
    free(ctext);
    free(tok);
}

static json_t *claims_with(const char *key, json_t *v)
{
    json_t *c = claims();

    if (v)
        json_object_set_new(c, key, v);
    else
        json_object_del(c, key);
    return c;
}

static void test_claims_checked(void **state)
{
    (void)state;
    refused(rs256(claims_with("exp", json_integer(NOW - 61)), rsa1, "rsa-1"), "expired 61 s ago");
    refused(rs256(claims_with("exp", NULL), rsa1, "rsa-1"), "no exp");
    refused(rs256(claims_with("nbf", json_integer(NOW + 120)), rsa1, "rsa-1"), "not valid for 120 s");
    refused(rs256(claims_with("iat", json_integer(NOW + 120)), rsa1, "rsa-1"), "in the future");
    refused(rs256(claims_with("iss", json_string("https://evil.example.org")), rsa1, "rsa-1"),
            "issuer https://evil.example.org is not accepted");
    refused(rs256(claims_with("iss", NULL), rsa1, "rsa-1"), "issuer (none)");
    refused(rs256(claims_with("aud", json_string("another-service")), rsa1, "rsa-1"),
            "not for audience orchestrator");
    refused(rs256(claims_with("sub", json_string("")), rsa1, "rsa-1"), "no usable sub");
    /* within the skew: accepted */
    {
        struct orc_jwt_identity id;
        char why[256], *tok = rs256(claims_with("exp", json_integer(NOW - 30)), rsa1, "rsa-1");
        assert_int_equal(orc_jwt_verify(keys, rules(), tok, &id, why, sizeof(why)), 0);
        orc_jwt_identity_clear(&id);
        free(tok);
    }
}

static void test_key_sets(void **state)
{
    char err[256];
    static const char *const bad[][2] = {
        {"{", "not a JSON Web Key Set"},
        {"{\"keys\": 3}", "no \"keys\" array"},
        {"{\"keys\": []}", "no usable key"},
        {"{\"keys\": [{\"kty\": \"oct\", \"k\": \"c2VjcmV0\"}]}", "kty oct is not RSA or EC"},
        {"{\"keys\": [{\"kty\": \"EC\", \"crv\": \"P-384\", \"x\": \"AA\", \"y\": \"AA\"}]}",
         "P-256 only"},
        {"{\"keys\": [{\"kty\": \"RSA\", \"n\": \"AQAB\", \"e\": \"AQAB\"}]}", "1024 bits"},
        {"{\"keys\": [{\"kty\": \"RSA\", \"use\": \"enc\"}]}", "use is enc"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        orc_jwks_t *s = orc_jwks_parse(bad[i][0], strlen(bad[i][0]), err, sizeof(err));
        if (s != NULL || strstr(err, bad[i][1]) == NULL)
            fail_msg("%s: '%s', expected '%s'", bad[i][0], s ? "accepted" : err, bad[i][1]);
    }
    assert_null(orc_jwks_load("/nonexistent/jwks.json", err, sizeof(err)));
    assert_non_null(strstr(err, "No such file"));
}

static void test_bearer_scheme(void **state)
{
    (void)state;
    assert_string_equal(orc_jwt_bearer("Bearer abc.def.ghi"), "abc.def.ghi");
    assert_string_equal(orc_jwt_bearer("bearer abc"), "abc");
    assert_string_equal(orc_jwt_bearer("BEARER  \tabc"), "abc");
    assert_null(orc_jwt_bearer("Basic YWxhZGRpbjpvcGVuc2VzYW1l"));
    assert_null(orc_jwt_bearer("Bearer"));
    assert_null(orc_jwt_bearer("Bearer   "));
    assert_null(orc_jwt_bearer("Bearerabc"));
    assert_null(orc_jwt_bearer(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rs256_and_es256_accepted),
        cmocka_unit_test(test_forged_algorithms_refused),
        cmocka_unit_test(test_tampered_and_malformed),
        cmocka_unit_test(test_claims_checked),
        cmocka_unit_test(test_key_sets),
        cmocka_unit_test(test_bearer_scheme),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
