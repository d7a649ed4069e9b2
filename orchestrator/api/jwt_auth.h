/*
 * Bearer tokens of OIDC issuers (docs/security.md): a JSON Web Key Set (RSA and P-256
 * keys), and the check of one token against it: RS256 or ES256 only (never "none",
 * never an HMAC whatever key it names, and the key's type must be the algorithm's), an
 * issuer on the allowlist, the audience, exp, nbf and iat with a small clock skew.
 * Signatures are verified by libjwt (on OpenSSL); the header is read here first so that
 * libjwt only ever sees a public key with the algorithm that key is for.
 */
#ifndef ORC_JWT_AUTH_H
#define ORC_JWT_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define ORC_JWT_MAX_TOKEN 16384 /* bytes of a token: more is refused unread */
#define ORC_JWT_SUBJECT_LEN 256
#define ORC_JWT_ISSUER_LEN 256

typedef struct orc_jwks orc_jwks_t;

/* A key set from JWKS JSON ({"keys": [...]}): keys of kty RSA (n, e) or EC on P-256
 * (x, y) whose use is absent or "sig"; others are skipped. NULL with err (one line
 * saying which key and why) when nothing usable is in it or it is not a key set. */
orc_jwks_t *orc_jwks_parse(const char *json, size_t len, char *err, size_t errlen);
/* The same from a file (at most 1 MiB). */
orc_jwks_t *orc_jwks_load(const char *path, char *err, size_t errlen);
size_t orc_jwks_count(const orc_jwks_t *set);
void orc_jwks_free(orc_jwks_t *set);

/* What a token must satisfy. */
struct orc_jwt_rules {
    const char *const *issuers; /* the allowlist, NULL-terminated (exact match) */
    const char *audience;       /* NULL: aud is not checked */
    const char *groups_claim;   /* where the groups are ("groups"); NULL: none read */
    uint32_t skew_s;            /* clock skew allowed on exp, nbf and iat */
    int64_t now_s;              /* 0: the clock */
};

/* Who the token says the caller is. */
struct orc_jwt_identity {
    char issuer[ORC_JWT_ISSUER_LEN];
    char subject[ORC_JWT_SUBJECT_LEN];
    json_t *groups; /* array of strings (new reference; an empty array when none) */
    int64_t expires_s;
};

/* Checks token (the compact serialization, without "Bearer ") against keys and rules.
 * 0 with *id filled (orc_jwt_identity_clear it), or ORC_EDENIED with why (one line for
 * the log and the 401's body: what was wrong, never the token itself), ORC_ENOTFOUND
 * (with why) when the token names a key that keys lacks or keys is NULL (the caller
 * may read the issuer's key set again and retry), or ORC_ENOMEM. */
int orc_jwt_verify(const orc_jwks_t *keys, const struct orc_jwt_rules *rules, const char *token,
                   struct orc_jwt_identity *id, char *why, size_t whylen);
void orc_jwt_identity_clear(struct orc_jwt_identity *id);

/* The iss claim of a token, read WITHOUT verifying anything: only to choose whose keys
 * verify it (orc_jwt_verify then checks iss again). 0, ORC_EFORMAT (no usable iss;
 * longer than isslen), ORC_ENOMEM. */
int orc_jwt_peek_issuer(const char *token, char *iss, size_t isslen);

/* The token of an Authorization header value: the scheme "Bearer" in any letter case,
 * then spaces, then the token; NULL when the value is not that. */
const char *orc_jwt_bearer(const char *header_value);

#endif
