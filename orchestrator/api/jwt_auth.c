/*
 * Bearer tokens of OIDC issuers (jwt_auth.h): the key set (JWKS: RSA and P-256 public
 * keys, turned into PEM once for libjwt), and the check of a token. The header is read
 * here before libjwt sees the token: only RS256 and ES256 pass, with a key of that type,
 * so a forged header can neither switch the check off ("none") nor turn a public key
 * into an HMAC secret. The claims are then checked against the rules.
 */
#define _GNU_SOURCE /* strcasecmp, strnlen */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include "../base.h"
#include "jwt_auth.h"

#define JWKS_MAX_BYTES (1u << 20)
#define JWK_FIELD_MAX 1024 /* bytes of a decoded n, e, x or y (RSA up to 8192 bits) */

enum key_type { KEY_RSA, KEY_EC };

struct jwk {
    char *kid; /* NULL: none */
    enum key_type type;
    char *pem; /* the public key, for libjwt */
    int pem_len;
};

struct orc_jwks {
    struct jwk *keys;
    size_t n;
};

/* ---- base64url ---- */

static int b64url_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Decodes n characters of unpadded base64url into out (cap bytes): the length, or -1. */
static long b64url_decode(const char *in, size_t n, unsigned char *out, size_t cap)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t len = 0;

    while (n > 0 && in[n - 1] == '=') /* tolerated */
        n--;
    for (size_t i = 0; i < n; i++) {
        int v = b64url_value(in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (len >= cap)
                return -1;
            out[len++] = (unsigned char)(acc >> bits);
        }
    }
    if (bits >= 6) /* one leftover character: not base64 */
        return -1;
    return (long)len;
}

/* ---- the key set ---- */

static void jwk_clear(struct jwk *k)
{
    orc_free(k->kid);
    orc_free(k->pem);
    memset(k, 0, sizeof(*k));
}

/* A field of a JWK, base64url-decoded into buf: its length, or -1 (absent or bad). */
static long jwk_field(const json_t *jwk, const char *name, unsigned char *buf, size_t cap)
{
    const char *s = json_string_value(json_object_get(jwk, name));

    return s ? b64url_decode(s, strlen(s), buf, cap) : -1;
}

static EVP_PKEY *rsa_key(const json_t *jwk, char *why, size_t whylen)
{
    unsigned char n[JWK_FIELD_MAX], e[16];
    long nl = jwk_field(jwk, "n", n, sizeof(n)), el = jwk_field(jwk, "e", e, sizeof(e));
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;
    BIGNUM *bn = NULL, *be = NULL;

    if (nl < 128 || el < 1) { /* below 1024 bits: not a key to trust */
        snprintf(why, whylen, "an RSA key needs base64url n (1024 bits at least) and e");
        return NULL;
    }
    bn = BN_bin2bn(n, (int)nl, NULL);
    be = BN_bin2bn(e, (int)el, NULL);
    bld = OSSL_PARAM_BLD_new();
    if (bn && be && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
        params = OSSL_PARAM_BLD_to_param(bld);
    ctx = params ? EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL) : NULL;
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
        snprintf(why, whylen, "OpenSSL refused the RSA key");
        pkey = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    return pkey;
}

static EVP_PKEY *ec_key(const json_t *jwk, char *why, size_t whylen)
{
    unsigned char x[48], y[48], pub[65];
    long xl = jwk_field(jwk, "x", x, sizeof(x)), yl = jwk_field(jwk, "y", y, sizeof(y));
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    OSSL_PARAM params[3];
    EVP_PKEY_CTX *ctx;
    EVP_PKEY *pkey = NULL;

    if (crv == NULL || strcmp(crv, "P-256") != 0) {
        snprintf(why, whylen, "EC keys on P-256 only (crv %s)", crv ? crv : "missing");
        return NULL;
    }
    if (xl != 32 || yl != 32) {
        snprintf(why, whylen, "a P-256 key needs base64url x and y of 32 bytes");
        return NULL;
    }
    pub[0] = 0x04; /* uncompressed point */
    memcpy(pub + 1, x, 32);
    memcpy(pub + 33, y, 32);
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub));
    params[2] = OSSL_PARAM_construct_end();
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
        snprintf(why, whylen, "OpenSSL refused the EC key (not a point of P-256?)");
        pkey = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    return pkey;
}

/* pkey as PEM (SubjectPublicKeyInfo) into k. 0 or ORC_ENOMEM. */
static int key_pem(EVP_PKEY *pkey, struct jwk *k)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data;
    long n;
    int rc = ORC_ENOMEM;

    if (bio && PEM_write_bio_PUBKEY(bio, pkey) == 1 && (n = BIO_get_mem_data(bio, &data)) > 0 &&
        (k->pem = orc_malloc((size_t)n + 1)) != NULL) {
        memcpy(k->pem, data, (size_t)n);
        k->pem[n] = '\0';
        k->pem_len = (int)n;
        rc = 0;
    }
    BIO_free(bio);
    return rc;
}

/* One JWK into k: 1 taken, 0 skipped (why says why), < 0 out of memory. */
static int jwk_take(const json_t *jwk, struct jwk *k, char *why, size_t whylen)
{
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    const char *use = json_string_value(json_object_get(jwk, "use"));
    const char *kid = json_string_value(json_object_get(jwk, "kid"));
    EVP_PKEY *pkey;
    int rc;

    if (use && strcmp(use, "sig") != 0) {
        snprintf(why, whylen, "use is %s, not sig", use);
        return 0;
    }
    if (kty && strcmp(kty, "RSA") == 0) {
        k->type = KEY_RSA;
        pkey = rsa_key(jwk, why, whylen);
    } else if (kty && strcmp(kty, "EC") == 0) {
        k->type = KEY_EC;
        pkey = ec_key(jwk, why, whylen);
    } else {
        snprintf(why, whylen, "kty %s is not RSA or EC", kty ? kty : "missing");
        return 0;
    }
    if (pkey == NULL)
        return 0;
    rc = key_pem(pkey, k);
    EVP_PKEY_free(pkey);
    if (rc == 0 && kid && (k->kid = orc_strdup(kid)) == NULL)
        rc = ORC_ENOMEM;
    if (rc < 0) {
        jwk_clear(k);
        return rc;
    }
    return 1;
}

orc_jwks_t *orc_jwks_parse(const char *json, size_t len, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *doc = json_loadb(json, len, 0, &jerr), *keys = json_object_get(doc, "keys"), *jwk;
    orc_jwks_t *set = NULL;
    char why[160] = "";
    size_t i;

    if (!json_is_array(keys)) {
        snprintf(err, errlen, "not a JSON Web Key Set (%s)",
                 doc ? "no \"keys\" array" : jerr.text);
        goto out;
    }
    set = orc_calloc(1, sizeof(*set));
    if (set == NULL || (set->keys = orc_calloc(json_array_size(keys) + 1, sizeof(*set->keys))) == NULL)
        goto oom;
    json_array_foreach(keys, i, jwk) {
        int rc = jwk_take(jwk, &set->keys[set->n], why, sizeof(why));
        if (rc < 0)
            goto oom;
        if (rc == 0)
            orc_log(ORC_LOG_WARN, "auth", "key %zu of the key set skipped: %s", i, why);
        set->n += rc == 1;
    }
    if (set->n == 0) {
        snprintf(err, errlen, "no usable key in the key set%s%s", why[0] ? " (last: " : "",
                 why[0] ? why : "");
        if (why[0])
            strncat(err, ")", errlen - strlen(err) - 1);
        orc_jwks_free(set);
        set = NULL;
    }
    goto out;
oom:
    snprintf(err, errlen, "out of memory");
    orc_jwks_free(set);
    set = NULL;
out:
    json_decref(doc);
    return set;
}

orc_jwks_t *orc_jwks_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;
    orc_jwks_t *set = NULL;

    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    buf = orc_malloc(JWKS_MAX_BYTES + 1);
    n = buf ? fread(buf, 1, JWKS_MAX_BYTES + 1, f) : 0;
    if (buf == NULL)
        snprintf(err, errlen, "out of memory");
    else if (n > JWKS_MAX_BYTES)
        snprintf(err, errlen, "%s: larger than %u bytes", path, JWKS_MAX_BYTES);
    else
        set = orc_jwks_parse(buf, n, err, errlen); /* err says why; the caller names the file */
    fclose(f);
    orc_free(buf);
    return set;
}

size_t orc_jwks_count(const orc_jwks_t *set)
{
    return set ? set->n : 0;
}

void orc_jwks_free(orc_jwks_t *set)
{
    if (set == NULL)
        return;
    for (size_t i = 0; i < set->n; i++)
        jwk_clear(&set->keys[i]);
    orc_free(set->keys);
    orc_free(set);
}

/* ---- a token ---- */

/* A refusal: why says what was wrong; ORC_EDENIED. */
#define deny(why, whylen, ...) orc_failf(why, whylen, ORC_EDENIED, __VA_ARGS__)

/* The token's header (its first part), parsed; NULL when it is not base64url JSON. */
static json_t *token_header(const char *token, size_t n)
{
    unsigned char buf[2048];
    long len = b64url_decode(token, n, buf, sizeof(buf));

    return len > 0 ? json_loadb((const char *)buf, (size_t)len, 0, NULL) : NULL;
}

/* The key for alg and kid: by kid when the token names one, else the only key of
 * that type; NULL when none (why says so). */
static const struct jwk *pick_key(const orc_jwks_t *keys, enum key_type type, const char *kid,
                                  bool *unknown, char *why, size_t whylen)
{
    const struct jwk *only = NULL;
    size_t of_type = 0;

    for (size_t i = 0; i < keys->n; i++) {
        const struct jwk *k = &keys->keys[i];
        if (kid && k->kid && strcmp(k->kid, kid) == 0) {
            if (k->type != type) {
                deny(why, whylen, "key %.64s is not of the token's algorithm", kid);
                return NULL;
            }
            return k;
        }
        if (k->type == type) {
            of_type++;
            only = k;
        }
    }
    if (kid) {
        *unknown = true; /* maybe a key the issuer rotated in since its set was read */
        deny(why, whylen, "no key %.64s in the issuer's key set", kid);
        return NULL;
    }
    if (of_type != 1) {
        deny(why, whylen, "the token names no key (kid) and the key set has %zu of its type",
             of_type);
        return NULL;
    }
    return only;
}

static bool aud_has(const json_t *aud, const char *want)
{
    const json_t *v;
    size_t i;

    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    json_array_foreach(aud, i, v)
        if (json_is_string(v) && strcmp(json_string_value(v), want) == 0)
            return true;
    return false;
}

static bool issuer_ok(const struct orc_jwt_rules *rules, const char *iss)
{
    for (size_t i = 0; rules->issuers && rules->issuers[i]; i++)
        if (strcmp(rules->issuers[i], iss) == 0)
            return true;
    return false;
}

/* A time claim: 1 present (in *t), 0 absent, -1 not a number. */
static int time_claim(const json_t *claims, const char *name, int64_t *t)
{
    const json_t *v = json_object_get(claims, name);

    if (v == NULL)
        return 0;
    if (!json_is_number(v))
        return -1;
    *t = (int64_t)json_number_value(v);
    return 1;
}

static int check_times(const json_t *claims, const struct orc_jwt_rules *rules,
                       struct orc_jwt_identity *id, char *why, size_t whylen)
{
    int64_t now = rules->now_s ? rules->now_s : (int64_t)time(NULL), skew = rules->skew_s;
    int64_t exp = 0, nbf = 0, iat = 0;
    int has_exp = time_claim(claims, "exp", &exp), has_nbf = time_claim(claims, "nbf", &nbf);
    int has_iat = time_claim(claims, "iat", &iat);

    if (has_exp != 1)
        return deny(why, whylen, "the token has no exp (expiry) claim");
    if (has_nbf < 0 || has_iat < 0)
        return deny(why, whylen, "nbf and iat must be numbers");
    if (now > exp + skew)
        return deny(why, whylen, "the token expired %lld s ago", (long long)(now - exp));
    if (has_nbf && now + skew < nbf)
        return deny(why, whylen, "the token is not valid for %lld s yet (nbf)",
                    (long long)(nbf - now));
    if (has_iat && iat > now + skew)
        return deny(why, whylen, "the token was issued %lld s in the future (iat)",
                    (long long)(iat - now));
    id->expires_s = exp;
    return 0;
}

static int take_groups(const json_t *claims, const char *claim, struct orc_jwt_identity *id)
{
    const json_t *g = claim ? json_object_get(claims, claim) : NULL, *v;
    size_t i;

    id->groups = json_array();
    if (id->groups == NULL)
        return ORC_ENOMEM;
    if (json_is_string(g))
        return json_array_append_new(id->groups, json_string(json_string_value(g))) ? ORC_ENOMEM : 0;
    json_array_foreach(g, i, v)
        if (json_is_string(v) && json_array_append(id->groups, (json_t *)v) < 0)
            return ORC_ENOMEM;
    return 0;
}

static int check_claims(const json_t *claims, const struct orc_jwt_rules *rules,
                        struct orc_jwt_identity *id, char *why, size_t whylen)
{
    const char *iss = json_string_value(json_object_get(claims, "iss"));
    const char *sub = json_string_value(json_object_get(claims, "sub"));
    int rc;

    if (iss == NULL || !issuer_ok(rules, iss))
        return deny(why, whylen, "issuer %.200s is not accepted", iss ? iss : "(none)");
    if (sub == NULL || sub[0] == '\0' || strlen(sub) >= sizeof(id->subject))
        return deny(why, whylen, "the token has no usable sub (subject) claim");
    if (rules->audience && !aud_has(json_object_get(claims, "aud"), rules->audience))
        return deny(why, whylen, "the token is not for audience %.200s", rules->audience);
    rc = check_times(claims, rules, id, why, whylen);
    if (rc < 0)
        return rc;
    snprintf(id->issuer, sizeof(id->issuer), "%s", iss);
    snprintf(id->subject, sizeof(id->subject), "%s", sub);
    return take_groups(claims, rules->groups_claim, id);
}

/* The alg of a token's header and the key type it needs; -1 for any other alg. */
static int header_alg(const json_t *hdr, jwt_alg_t *alg)
{
    const char *a = json_string_value(json_object_get(hdr, "alg"));

    if (a && strcmp(a, "RS256") == 0) {
        *alg = JWT_ALG_RS256;
        return KEY_RSA;
    }
    if (a && strcmp(a, "ES256") == 0) {
        *alg = JWT_ALG_ES256;
        return KEY_EC;
    }
    return -1;
}

int orc_jwt_verify(const orc_jwks_t *keys, const struct orc_jwt_rules *rules, const char *token,
                   struct orc_jwt_identity *id, char *why, size_t whylen)
{
    size_t len = token ? strnlen(token, ORC_JWT_MAX_TOKEN + 1) : 0;
    const char *dot1 = token ? strchr(token, '.') : NULL, *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    json_t *hdr, *claims;
    const struct jwk *key;
    jwt_alg_t alg;
    jwt_t *jwt = NULL;
    bool unknown = false;
    char *text;
    int type, rc;

    memset(id, 0, sizeof(*id));
    if (len == 0 || len > ORC_JWT_MAX_TOKEN)
        return deny(why, whylen, "the token is empty or longer than %d bytes", ORC_JWT_MAX_TOKEN);
    if (dot1 == NULL || dot2 == NULL || strchr(dot2 + 1, '.') || dot2[1] == '\0')
        return deny(why, whylen, "not a signed JWT (three base64url parts)");
    hdr = token_header(token, (size_t)(dot1 - token));
    if (hdr == NULL)
        return deny(why, whylen, "the token's header is not base64url JSON");
    type = header_alg(hdr, &alg);
    if (type < 0 || json_object_get(hdr, "crit")) {
        rc = deny(why, whylen, "%s %.32s is not accepted (RS256 and ES256 only)",
                  type < 0 ? "algorithm" : "critical header",
                  type < 0 ? (json_string_value(json_object_get(hdr, "alg"))
                                  ? json_string_value(json_object_get(hdr, "alg"))
                                  : "(none)")
                           : "extension");
        json_decref(hdr);
        return rc;
    }
    key = keys ? pick_key(keys, (enum key_type)type, json_string_value(json_object_get(hdr, "kid")),
                          &unknown, why, whylen)
               : NULL;
    json_decref(hdr);
    if (keys == NULL) {
        unknown = true;
        deny(why, whylen, "the issuer's keys are not loaded");
    }
    if (key == NULL)
        return unknown ? ORC_ENOTFOUND : ORC_EDENIED;
    if (jwt_decode(&jwt, token, (const unsigned char *)key->pem, key->pem_len) != 0 ||
        jwt == NULL || jwt_get_alg(jwt) != alg) {
        jwt_free(jwt);
        return deny(why, whylen, "the token's signature does not verify");
    }
    text = jwt_get_grants_json(jwt, NULL);
    jwt_free(jwt);
    claims = text ? json_loads(text, 0, NULL) : NULL;
    free(text); /* libjwt's allocator */
    if (!json_is_object(claims)) {
        json_decref(claims);
        return deny(why, whylen, "the token's claims are not a JSON object");
    }
    rc = check_claims(claims, rules, id, why, whylen);
    json_decref(claims);
    if (rc < 0)
        orc_jwt_identity_clear(id);
    return rc;
}

int orc_jwt_peek_issuer(const char *token, char *iss, size_t isslen)
{
    const char *dot1 = token ? strchr(token, '.') : NULL, *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    unsigned char *buf;
    json_t *claims = NULL;
    const char *v;
    long len;
    int rc = ORC_EFORMAT;

    if (dot2 == NULL || strnlen(token, ORC_JWT_MAX_TOKEN + 1) > ORC_JWT_MAX_TOKEN)
        return ORC_EFORMAT;
    buf = orc_malloc((size_t)(dot2 - dot1));
    if (buf == NULL)
        return ORC_ENOMEM;
    len = b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), buf, (size_t)(dot2 - dot1));
    if (len > 0)
        claims = json_loadb((const char *)buf, (size_t)len, JSON_REJECT_DUPLICATES, NULL);
    v = json_string_value(json_object_get(claims, "iss"));
    if (v && strlen(v) < isslen) {
        memcpy(iss, v, strlen(v) + 1);
        rc = 0;
    }
    json_decref(claims);
    orc_free(buf);
    return rc;
}

void orc_jwt_identity_clear(struct orc_jwt_identity *id)
{
    json_decref(id->groups);
    memset(id, 0, sizeof(*id));
}

const char *orc_jwt_bearer(const char *v)
{
    if (v == NULL || strncasecmp(v, "bearer", 6) != 0 || (v[6] != ' ' && v[6] != '\t'))
        return NULL;
    v += 6;
    while (*v == ' ' || *v == '\t')
        v++;
    return *v ? v : NULL;
}
