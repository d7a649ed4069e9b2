/*
 * TLS for the API (docs/security.md): the server's OpenSSL context from the configured
 * certificate chain and key, with the settings of Mozilla's "intermediate" profile:
 * TLS 1.2 and 1.3 only, forward-secret AEAD ciphers for 1.2, no compression, no
 * renegotiation. h2o does the handshakes with it (accept_ctx.ssl_ctx).
 */
#include <stdio.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "internal.h"

#define TLS12_CIPHERS                                                                          \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                               \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                               \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* OpenSSL's last error as text, for a message. */
static const char *ssl_error(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();

    if (e == 0)
        snprintf(buf, len, "unknown error");
    else
        ERR_error_string_n(e, buf, len);
    ERR_clear_error();
    return buf;
}

SSL_CTX *orc_tls_server_ctx(const char *cert_file, const char *key_file, char *err,
                            size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    char why[256];

    if (ctx == NULL) {
        snprintf(err, errlen, "tls: %s", ssl_error(why, sizeof(why)));
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1) {
        snprintf(err, errlen, "tls: cipher list: %s", ssl_error(why, sizeof(why)));
    } else if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        snprintf(err, errlen, "tls.cert_file %s: %s", cert_file, ssl_error(why, sizeof(why)));
    } else if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        bool mismatch = ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH;
        snprintf(err, errlen, "tls.key_file %s%s: %s", key_file,
                 mismatch ? " is not the key of tls.cert_file" : "", ssl_error(why, sizeof(why)));
    } else if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "tls.key_file %s is not the key of tls.cert_file %s", key_file,
                 cert_file);
        ERR_clear_error();
    } else {
        return ctx;
    }
    SSL_CTX_free(ctx);
    return NULL;
}
