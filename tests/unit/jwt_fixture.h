/*
 * Keys and tokens for tests of bearer authentication: JWKs (RSA, P-256) of OpenSSL keys,
 * keys as PEM, and tokens signed by libjwt with any algorithm and key (forged ones too).
 * Header-only: each test program includes it once, after testutil.h.
 */
#ifndef JWT_FIXTURE_H
#define JWT_FIXTURE_H

#include <jwt.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

/* ---- keys ---- */

static inline void b64url(const unsigned char *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t i = 0;
    char *p = out;

    for (; i + 2 < n; i += 3) {
        *p++ = tab[in[i] >> 2];
        *p++ = tab[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
        *p++ = tab[((in[i + 1] & 15) << 2) | (in[i + 2] >> 6)];
        *p++ = tab[in[i + 2] & 63];
    }
    if (i < n) {
        *p++ = tab[in[i] >> 2];
        if (i + 1 < n) {
            *p++ = tab[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
            *p++ = tab[(in[i + 1] & 15) << 2];
        } else {
            *p++ = tab[(in[i] & 3) << 4];
        }
    }
    *p = '\0';
}

static inline json_t *rsa_jwk(EVP_PKEY *k, const char *kid)
{
    BIGNUM *n = NULL, *e = NULL;
    unsigned char buf[1024];
    char nb[1400], eb[16];
    int len;

    assert_int_equal(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &n), 1);
    assert_int_equal(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_E, &e), 1);
    len = BN_bn2bin(n, buf);
    b64url(buf, (size_t)len, nb);
    len = BN_bn2bin(e, buf);
    b64url(buf, (size_t)len, eb);
    BN_free(n);
    BN_free(e);
    return json_pack("{ss ss ss ss ss}", "kty", "RSA", "kid", kid, "use", "sig", "n", nb, "e", eb);
}

static inline json_t *ec_jwk(EVP_PKEY *k, const char *kid)
{
    unsigned char pub[65];
    size_t len = 0;
    char xb[64], yb[64];

    assert_int_equal(EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub),
                                                     &len),
                     1);
    assert_int_equal(len, 65);
    b64url(pub + 1, 32, xb);
    b64url(pub + 33, 32, yb);
    return json_pack("{ss ss ss ss ss}", "kty", "EC", "kid", kid, "crv", "P-256", "x", xb, "y", yb);
}

/* k as PEM: its private key, or its public one (pub) */
static inline char *pem_of(EVP_PKEY *k, bool pub)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data, *out;
    long n;

    assert_int_equal(pub ? PEM_write_bio_PUBKEY(bio, k)
                         : PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL),
                     1);
    n = BIO_get_mem_data(bio, &data);
    out = strndup(data, (size_t)n);
    BIO_free(bio);
    return out;
}

/* A token of claims c (stolen) signed by libjwt with alg and key (PEM or secret). */
static inline char *sign(json_t *c, jwt_alg_t alg, const char *key, const char *kid)
{
    jwt_t *jwt = NULL;
    char *text = json_dumps(c, 0), *tok, *copy;

    json_decref(c);
    assert_int_equal(jwt_new(&jwt), 0);
    assert_int_equal(jwt_add_grants_json(jwt, text), 0);
    if (kid)
        assert_int_equal(jwt_add_header(jwt, "kid", kid), 0);
    assert_int_equal(jwt_set_alg(jwt, alg, (const unsigned char *)key, (int)strlen(key)), 0);
    tok = jwt_encode_str(jwt);
    assert_non_null(tok);
    copy = strdup(tok);
    free(tok);
    free(text);
    jwt_free(jwt);
    return copy;
}

#endif
