/*
 * libFuzzer target for bearer tokens (orchestrator/api/jwt_auth.c): every input is
 * checked as a token against a fixed key set (one RSA and one P-256 key, made once at
 * start), and parsed as a key set (JWKS JSON) too. Nothing may crash, leak or pass:
 * no input can carry a signature of keys made in this process, so a token accepted
 * is a bug, and the target aborts on it.
 *
 * Build and run with tests/fuzz/fuzz.mk (`make fuzz`).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>

#include "api/jwt_auth.h"
#include "base.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static orc_jwks_t *keys;

static void b64url(const unsigned char *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t i = 0;

    for (; i + 2 < n; i += 3) {
        *out++ = tab[in[i] >> 2];
        *out++ = tab[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
        *out++ = tab[((in[i + 1] & 15) << 2) | (in[i + 2] >> 6)];
        *out++ = tab[in[i + 2] & 63];
    }
    if (i < n) {
        *out++ = tab[in[i] >> 2];
        *out++ = tab[((in[i] & 3) << 4) | (i + 1 < n ? in[i + 1] >> 4 : 0)];
        if (i + 1 < n)
            *out++ = tab[(in[i + 1] & 15) << 2];
    }
    *out = '\0';
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    BIGNUM *n = NULL, *e = NULL;
    unsigned char buf[512], pub[65];
    char nb[400], eb[16], xb[64], yb[64], json[1200], err[200];
    size_t publen = 0;

    (void)argc;
    (void)argv;
    orc_log_set_level(ORC_LOG_ERROR); /* skipped keys are warnings: not for every input */
    if (!rsa || !ec || EVP_PKEY_get_bn_param(rsa, OSSL_PKEY_PARAM_RSA_N, &n) != 1 ||
        EVP_PKEY_get_bn_param(rsa, OSSL_PKEY_PARAM_RSA_E, &e) != 1 ||
        EVP_PKEY_get_octet_string_param(ec, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub), &publen) != 1)
        abort();
    b64url(buf, (size_t)BN_bn2bin(n, buf), nb);
    b64url(buf, (size_t)BN_bn2bin(e, buf), eb);
    b64url(pub + 1, 32, xb);
    b64url(pub + 33, 32, yb);
    snprintf(json, sizeof(json),
             "{\"keys\": [{\"kty\": \"RSA\", \"kid\": \"k1\", \"n\": \"%s\", \"e\": \"%s\"},"
             " {\"kty\": \"EC\", \"kid\": \"k2\", \"crv\": \"P-256\", \"x\": \"%s\", \"y\": \"%s\"}]}",
             nb, eb, xb, yb);
    keys = orc_jwks_parse(json, strlen(json), err, sizeof(err));
    if (keys == NULL)
        abort();
    BN_free(n);
    BN_free(e);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const issuers[] = {"https://issuer.example", NULL};
    const struct orc_jwt_rules rules = {.issuers = issuers, .audience = "orchestrator",
                                        .groups_claim = "groups", .skew_s = 60};
    struct orc_jwt_identity id;
    char *text = malloc(size + 1), why[256], err[256];
    orc_jwks_t *set;

    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (orc_jwt_verify(keys, &rules, text, &id, why, sizeof(why)) == 0)
        abort(); /* a token accepted without a signature of our keys */
    (void)orc_jwt_bearer(text);
    set = orc_jwks_parse(text, size, err, sizeof(err));
    orc_jwks_free(set);
    free(text);
    return 0;
}
