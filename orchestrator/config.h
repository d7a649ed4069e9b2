/*
 * The daemon's configuration: embedded defaults, then a YAML file (--config
 * or ORCHESTRATOR_CONFIG), then ORCHESTRATOR_* environment variables, then
 * the command line; each later source overrides the earlier ones key by key.
 * One key table in config.c drives all four, the help text and the errors,
 * which name where the bad value came from ("file:line:col: key: reason",
 * "ORCHESTRATOR_LISTEN: reason", "--listen: reason").
 */
#ifndef ORC_CONFIG_H
#define ORC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include <jansson.h>

#include "base.h"

#define ORC_CONFIG_MAX_LISTEN 8

/* Where a setting's value came from (later ones win). */
typedef enum {
    ORC_CFG_DEFAULT = 0,
    ORC_CFG_FILE,
    ORC_CFG_ENV,
    ORC_CFG_CLI,
} orc_config_source_t;

/* What main() should do after loading. */
typedef enum {
    ORC_CONFIG_RUN = 0,
    ORC_CONFIG_HELP,
    ORC_CONFIG_VERSION,
} orc_config_action_t;

/* One address to listen on. */
typedef struct orc_listen_addr_s {
    char text[64]; /* normalised "127.0.0.1:8080" or "[::1]:8080" */
    char host[48]; /* "127.0.0.1" or "::1" */
    uint16_t port; /* 0: an ephemeral port chosen at bind time */
    int family;    /* AF_INET or AF_INET6 */
    bool loopback;
    struct sockaddr_storage addr; /* ready for bind */
} orc_listen_addr_t;

typedef struct orc_limits_s {
    size_t max_body_bytes;        /* request body (413 above) */
    size_t max_header_bytes;      /* request line + headers (431 above) */
    unsigned json_max_depth;      /* nesting of JSON request bodies */
    uint64_t request_timeout_ms;  /* to receive a whole request; idle keep-alive;
                                   * a response write that makes no progress */
    unsigned max_connections;     /* open client connections; more get 503 */
    unsigned max_streams;         /* open event streams (SSE); more get 503 */
    uint64_t shutdown_timeout_ms; /* graceful shutdown deadline */
    /* per authenticated user (authentication off: none) */
    unsigned user_rate;        /* requests per second (429 above); 0: no limit */
    unsigned user_burst;       /* requests at once above the rate */
    unsigned user_deployments; /* deployments at once (admins aside); 0: no quota */
} orc_limits_t;

/* One OIDC issuer whose tokens are accepted (docs/security.md). */
typedef struct orc_auth_issuer_conf_s {
    char *issuer;    /* the iss claim, matched exactly */
    char *jwks_file; /* its keys from this file; NULL: fetched */
    char *jwks_uri;  /* its keys fetched from here; NULL without a file: OIDC discovery
                      * (issuer + /.well-known/openid-configuration) */
} orc_auth_issuer_conf_t;

/* Authentication and roles: the `auth` map of the configuration file. */
typedef struct orc_auth_conf_s {
    orc_auth_issuer_conf_t *issuers; /* none: authentication is off (loopback only) */
    size_t nissuers;
    char *audience;            /* NULL: aud is not checked */
    char *groups_claim;        /* the claim with the caller's groups ("groups") */
    uint32_t clock_skew_s;     /* on exp, nbf and iat (60) */
    uint64_t jwks_refresh_ms;  /* fetched key sets are fetched again this often (1 h) */
    char *ca_file;             /* verifies the issuers' https servers; NULL: the system's */
    json_t *user_groups;       /* arrays of group names; user_groups empty: any valid token */
    json_t *operator_groups;
    json_t *admin_groups;
} orc_auth_conf_t;

/* What the deployment engine takes from the configuration (engine.h). */
typedef struct orc_engine_conf_s {
    unsigned max_parallel_ops;    /* driver operations in flight per deployment */
    unsigned callback_attempts;   /* tries of a callback POST */
    uint64_t callback_backoff_ms; /* first retry delay, doubled each time */
    uint64_t deadline_minute_ms;  /* a minute of timeoutMins/providerTimeoutMins (tests: less) */
    uint64_t lease_ms;            /* several daemons on PostgreSQL: a lease without renewal */
    char *instance;               /* this daemon's name in leases; NULL: HOST:DATA_DIR */
    int callback_private;         /* 0 auto (allowed without auth), 1 allow, 2 deny */
} orc_engine_conf_t;

typedef struct orc_config_s {
    orc_config_action_t action;
    char *config_file; /* NULL: none read */
    orc_listen_addr_t listen[ORC_CONFIG_MAX_LISTEN];
    size_t listen_count;
    char *data_dir;
    char *sites_file; /* NULL: the embedded default, one site `local` (local driver) */
    orc_log_level_t log_level;
    orc_log_format_t log_format;
    char *public_url; /* NULL: absolute links from the request's Host header */
    orc_limits_t limits;
    orc_engine_conf_t engine;
    json_t *configuration;          /* object of strings served by GET /configuration */
    orc_auth_conf_t auth;
    char *secrets_file; /* NULL: secrets from the environment only */
    char *catalog_dir;  /* templates seeded into the catalog; NULL: none */
    char *store;        /* "sqlite:PATH" or a postgresql:// URL; NULL: DATA_DIR/orchestrator.db */
    int store_readers;  /* reader threads of the API's GETs; -1: 4 on PostgreSQL, 0 on SQLite */
    bool store_commit_wait; /* commits hold the loop until their answer (the default) */
    char **import_roots; /* NULL-terminated directories templates may import from; NULL: none */
    char **import_urls;  /* NULL-terminated http(s) URL prefixes they may import; NULL: none */
    uint64_t import_fetch_timeout_ms;
    uint64_t import_cache_ttl_ms; /* a cached URL import older than this is fetched again */
    struct {
        char *cert_file; /* with key_file: the API speaks HTTPS only; NULL: plain HTTP */
        char *key_file;
        char *ca_file; /* handed to gpu-agents (ORC_AGENT_CA_FILE); NULL: their system's */
    } tls;
    bool auth_enabled;              /* auth.issuers is not empty */
    orc_config_source_t source[40]; /* per key of the table in config.c */
} orc_config_t;

/* True when callbacks may reach public addresses only (engine.callback_private). */
static inline bool orc_config_callbacks_public_only(const orc_config_t *cfg)
{
    return cfg->engine.callback_private == 2 ||
           (cfg->engine.callback_private == 0 && cfg->auth_enabled);
}

/* Fills cfg with the embedded defaults. Returns 0 or ORC_ENOMEM. */
int orc_config_init(orc_config_t *cfg);
/* Frees what cfg owns (NULL-safe, idempotent). */
void orc_config_fini(orc_config_t *cfg);

/* Applies the file, the environment (envp: "NAME=value" strings,
 * NULL-terminated, may be NULL) and the command line (argv[0] is the program)
 * over cfg, which orc_config_init() filled, then checks the result. Stops
 * early with cfg->action set for --help / --version. Returns 0, or
 * ORC_EUSAGE (command line), ORC_EINVAL (a bad value, unknown key, or a
 * refused setting), ORC_EIO (unreadable file), ORC_ENOMEM; err then holds a
 * one-line message naming the problem and where it was. */
int orc_config_load(orc_config_t *cfg, int argc, char *const argv[], char *const envp[], char *err,
                    size_t errlen);

/* Writes the --help text. */
void orc_config_usage(FILE *out, const char *prog);
/* Logs the effective configuration: a summary at info, each key with its
 * source at debug. */
void orc_config_log(const orc_config_t *cfg);
/* Source of a key ("listen", "limits.max_body_bytes"); ORC_CFG_DEFAULT if
 * the key is unknown. */
orc_config_source_t orc_config_source(const orc_config_t *cfg, const char *key);
const char *orc_config_source_name(orc_config_source_t src);

/* Parsers shared by the three sources, exposed for tests. Each returns 0 or
 * ORC_EINVAL with a reason in why. */
int orc_config_parse_size(const char *text, size_t *out, char *why, size_t whylen);
int orc_config_parse_duration(const char *text, uint64_t *ms, char *why, size_t whylen);
int orc_config_parse_listen(const char *text, orc_listen_addr_t *out, char *why, size_t whylen);
/* Reads the `auth` map (v) into cfg->auth; where prefixes messages ("file:3:1: auth").
 * 0, or ORC_EINVAL / ORC_ENOMEM with err. config_auth.c. */
int orc_config_apply_auth(orc_config_t *cfg, const json_t *v, const char *where, char *err,
                          size_t errlen);
void orc_config_auth_fini(orc_auth_conf_t *a);
int orc_config_parse_log_level(const char *text, orc_log_level_t *out, char *why, size_t whylen);
/* tls.cert_file and tls.key_file go together, and the key file is no one else's to read
 * (mode 0600 or stricter): 0, or ORC_EINVAL with err naming the file. At start, and again
 * when the daemon reloads its certificate. */
int orc_config_check_tls(const orc_config_t *cfg, char *err, size_t errlen);

#endif
