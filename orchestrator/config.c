/*
 * Configuration of orchestratord (config.h). One table of keys drives the
 * YAML file, the ORCHESTRATOR_* environment, the command line and --help.
 * Values from every source go through the same text parsers, so "4MiB" or
 * "30s" mean the same everywhere. The file is read with libtosca's
 * tosca_yaml_to_json (limits, duplicate keys, positioned syntax errors); the
 * line:col of a bad key is then found with a short libyaml event walk.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "config.h"
#include "tosca/tosca.h"

#define CFG_MAX_FILE_BYTES (1024 * 1024)
#define CFG_MAX_URL 512

typedef int (*cfg_set_fn)(orc_config_t *cfg, const char *text, char *why, size_t whylen);

/* Where a value is being read from, for messages. */
struct cfg_origin {
    orc_config_source_t src;
    const char *file; /* file name (ORC_CFG_FILE) */
    const char *text; /* file text, to locate keys */
    size_t len;
    const char *label; /* "ORCHESTRATOR_LISTEN" or "--listen" */
};

struct cfg_key {
    const char *name;    /* "listen", "limits.max_body_bytes" */
    const char *env;     /* environment variable, NULL: none */
    const char *opt;     /* command-line option, NULL: none */
    const char *metavar; /* for --help */
    bool list;           /* the file may give a list of strings */
    cfg_set_fn set;      /* NULL: handled apart (configuration) */
    const char *help;
    const char *def; /* the default, for --help */
};

static int set_listen(orc_config_t *cfg, const char *text, char *why, size_t whylen);
static int set_data_dir(orc_config_t *cfg, const char *text, char *why, size_t whylen);
static int set_sites(orc_config_t *cfg, const char *text, char *why, size_t whylen);
static int set_log_level(orc_config_t *cfg, const char *text, char *why, size_t whylen);
static int set_public_url(orc_config_t *cfg, const char *text, char *why, size_t whylen);
static int set_max_body(orc_config_t *cfg, const char *text, char *why, size_t whylen);
static int set_max_header(orc_config_t *cfg, const char *text, char *why, size_t whylen);
static int set_json_depth(orc_config_t *cfg, const char *text, char *why, size_t whylen);
static int set_request_timeout(orc_config_t *cfg, const char *text, char *why, size_t whylen);
static int set_max_connections(orc_config_t *cfg, const char *text, char *why, size_t whylen);
static int set_max_streams(orc_config_t *cfg, const char *text, char *why, size_t whylen);
static int set_shutdown_timeout(orc_config_t *cfg, const char *text, char *why, size_t whylen);
static int set_max_parallel_ops(orc_config_t *cfg, const char *text, char *why, size_t whylen);
static int set_callback_attempts(orc_config_t *cfg, const char *text, char *why, size_t whylen);
static int set_callback_backoff(orc_config_t *cfg, const char *text, char *why, size_t whylen);
static int set_deadline_minute(orc_config_t *cfg, const char *text, char *why, size_t whylen);
static int set_user_rate(orc_config_t *cfg, const char *text, char *why, size_t whylen);
static int set_user_burst(orc_config_t *cfg, const char *text, char *why, size_t whylen);
static int set_user_deployments(orc_config_t *cfg, const char *text, char *why, size_t whylen);
static int set_tls_cert(orc_config_t *cfg, const char *text, char *why, size_t whylen);
static int set_tls_key(orc_config_t *cfg, const char *text, char *why, size_t whylen);
static int set_tls_ca(orc_config_t *cfg, const char *text, char *why, size_t whylen);
static int set_secrets_file(orc_config_t *cfg, const char *text, char *why, size_t whylen);
static int set_catalog_dir(orc_config_t *cfg, const char *text, char *why, size_t whylen);
static int set_callback_private(orc_config_t *cfg, const char *text, char *why, size_t whylen);
static int set_import_roots(orc_config_t *cfg, const char *text, char *why, size_t whylen);
static int set_import_urls(orc_config_t *cfg, const char *text, char *why, size_t whylen);
static int set_fetch_timeout(orc_config_t *cfg, const char *text, char *why, size_t whylen);
static int set_cache_ttl(orc_config_t *cfg, const char *text, char *why, size_t whylen);
static int set_store(orc_config_t *cfg, const char *text, char *why, size_t whylen);
static int set_store_readers(orc_config_t *cfg, const char *text, char *why, size_t whylen);
static int set_store_commit(orc_config_t *cfg, const char *text, char *why, size_t whylen);
static int set_log_format(orc_config_t *cfg, const char *text, char *why, size_t whylen);
static int set_lease_time(orc_config_t *cfg, const char *text, char *why, size_t whylen);
static int set_instance(orc_config_t *cfg, const char *text, char *why, size_t whylen);

static const struct cfg_key cfg_keys[] = {
    {"listen", "ORCHESTRATOR_LISTEN", "--listen", "ADDR:PORT[,...]", true, set_listen,
     "addresses to listen on (port 0: ephemeral); loopback only unless auth is configured",
     "127.0.0.1:8080"},
    {"data_dir", "ORCHESTRATOR_DATA_DIR", "--data-dir", "DIR", false, set_data_dir,
     "directory for the store and work files (created if missing)", "./var"},
    {"sites", "ORCHESTRATOR_SITES", "--sites", "FILE", false, set_sites,
     "sites file; none: one site `local` on this machine", "none"},
    {"log_level", "ORCHESTRATOR_LOG_LEVEL", "--log-level", "LEVEL", false, set_log_level,
     "debug, info, warn or error", "info"},
    {"public_url", "ORCHESTRATOR_PUBLIC_URL", "--public-url", "URL", false, set_public_url,
     "base of absolute links; none: from the request's Host header", "none"},
    {"limits.max_body_bytes", "ORCHESTRATOR_MAX_BODY_BYTES", NULL, "SIZE", false, set_max_body,
     "largest request body", "4MiB"},
    {"limits.max_header_bytes", "ORCHESTRATOR_MAX_HEADER_BYTES", NULL, "SIZE", false,
     set_max_header, "largest request line plus headers", "16KiB"},
    {"limits.json_max_depth", "ORCHESTRATOR_JSON_MAX_DEPTH", NULL, "N", false, set_json_depth,
     "deepest nesting of a JSON request body", "64"},
    {"limits.request_timeout", "ORCHESTRATOR_REQUEST_TIMEOUT", NULL, "DURATION", false,
     set_request_timeout, "time to receive a request; idle keep-alive; stalled writes", "30s"},
    {"limits.max_connections", "ORCHESTRATOR_MAX_CONNECTIONS", NULL, "N", false,
     set_max_connections, "open client connections", "1024"},
    {"limits.max_streams", "ORCHESTRATOR_MAX_STREAMS", NULL, "N", false, set_max_streams,
     "event streams open at once (each holds a connection; 503 above)", "256"},
    {"limits.shutdown_timeout", "ORCHESTRATOR_SHUTDOWN_TIMEOUT", NULL, "DURATION", false,
     set_shutdown_timeout, "graceful shutdown deadline for in-flight requests", "10s"},
    {"engine.max_parallel_ops", "ORCHESTRATOR_MAX_PARALLEL_OPS", NULL, "N", false,
     set_max_parallel_ops, "driver operations in flight per deployment", "8"},
    {"engine.callback_attempts", "ORCHESTRATOR_CALLBACK_ATTEMPTS", NULL, "N", false,
     set_callback_attempts, "tries of a deployment callback before it is given up", "8"},
    {"engine.callback_backoff", "ORCHESTRATOR_CALLBACK_BACKOFF", NULL, "DURATION", false,
     set_callback_backoff, "delay before the first callback retry, doubled each time", "1s"},
    {"engine.deadline_minute", "ORCHESTRATOR_DEADLINE_MINUTE", NULL, "DURATION", false,
     set_deadline_minute, "length of the minute timeoutMins/providerTimeoutMins count in", "60s"},
    {"configuration", NULL, NULL, "MAP", false, NULL, "map of strings served by GET /configuration",
     "{}"},
    {"auth", NULL, NULL, "MAP", false, NULL,
     "OIDC issuers, audience, groups claim and role groups (docs/security.md)", "none: off"},
    {"limits.user_rate", "ORCHESTRATOR_USER_RATE", NULL, "N", false, set_user_rate,
     "requests per second per authenticated user (429 above; 0: no limit)", "20"},
    {"limits.user_burst", "ORCHESTRATOR_USER_BURST", NULL, "N", false, set_user_burst,
     "requests a user may send at once above the rate", "100"},
    {"limits.user_deployments", "ORCHESTRATOR_USER_DEPLOYMENTS", NULL, "N", false,
     set_user_deployments, "deployments per authenticated user, admins aside (0: no quota)", "100"},
    {"tls.cert_file", "ORCHESTRATOR_TLS_CERT_FILE", "--tls-cert", "FILE", false, set_tls_cert,
     "PEM certificate chain of the API (with tls.key_file: HTTPS only)", "none: plain HTTP"},
    {"tls.key_file", "ORCHESTRATOR_TLS_KEY_FILE", "--tls-key", "FILE", false, set_tls_key,
     "its PEM private key (mode 0600 or stricter)", "none"},
    {"tls.ca_file", "ORCHESTRATOR_TLS_CA_FILE", NULL, "FILE", false, set_tls_ca,
     "CA bundle gpu-agents verify the API with (on their nodes)", "none: the system's"},
    {"catalog_dir", "ORCHESTRATOR_CATALOG_DIR", "--catalog-dir", "DIR", false, set_catalog_dir,
     "templates (*.yaml) seeded into the template catalog at start; none: no directory",
     "./examples (when it exists)"},
    {"secrets_file", "ORCHESTRATOR_SECRETS_FILE", "--secrets-file", "FILE", false, set_secrets_file,
     "site credentials by name (YAML map, mode 0600); then ORC_SECRET_<NAME>",
     "none: the environment only"},
    {"engine.callback_private", "ORCHESTRATOR_CALLBACK_PRIVATE", NULL, "POLICY", false,
     set_callback_private,
     "may callbacks reach loopback, private, link-local addresses: allow, deny, or auto "
     "(allow only without auth)",
     "auto"},
    {"imports.roots", "ORCHESTRATOR_IMPORT_ROOTS", NULL, "DIR[,...]", true, set_import_roots,
     "directories whose files templates may import (absolute paths)", "none"},
    {"imports.urls", "ORCHESTRATOR_IMPORT_URLS", NULL, "URL[,...]", true, set_import_urls,
     "http(s) URL prefixes templates may import from (fetched, cached in DATA_DIR)", "none"},
    {"imports.fetch_timeout", "ORCHESTRATOR_IMPORT_FETCH_TIMEOUT", NULL, "DURATION", false,
     set_fetch_timeout, "longest fetch of one URL import", "20s"},
    {"imports.cache_ttl", "ORCHESTRATOR_IMPORT_CACHE_TTL", NULL, "DURATION", false, set_cache_ttl,
     "age at which a cached URL import is fetched again", "1h"},
    {"store", "ORCHESTRATOR_STORE", "--store", "STORE", false, set_store,
     "sqlite (DATA_DIR/orchestrator.db), sqlite:PATH, or a postgresql:// URL (password from "
     "PGPASSWORD or ~/.pgpass, not the URL)",
     "sqlite"},
    {"store_readers", "ORCHESTRATOR_STORE_READERS", NULL, "N", false, set_store_readers,
     "threads that read the store for the API's GETs of deployments, off the loop, each on a "
     "connection of its own (0: on the loop)",
     "auto: 4 on PostgreSQL, 0 on SQLite"},
    {"store_commit", "ORCHESTRATOR_STORE_COMMIT", NULL, "MODE", false, set_store_commit,
     "on PostgreSQL: wait (each group's commit holds the loop until its answer) or overlap "
     "(the loop works on while the COMMIT is at the server)",
     "wait"},
    {"log_format", "ORCHESTRATOR_LOG_FORMAT", "--log-format", "FORMAT", false, set_log_format,
     "text, or json: one object per line with deployment, site and node when known", "text"},
    {"engine.lease_time", "ORCHESTRATOR_LEASE_TIME", NULL, "DURATION", false, set_lease_time,
     "on PostgreSQL: how long a daemon's hold on a deployment lasts without renewal (renewed "
     "every third of it; a dead daemon's deployments are taken over after it)",
     "15s"},
    {"engine.instance", "ORCHESTRATOR_INSTANCE", NULL, "NAME", false, set_instance,
     "this daemon's name among those sharing a PostgreSQL store (unique)", "HOST:DATA_DIR"},
};

#define CFG_NKEYS (sizeof(cfg_keys) / sizeof(cfg_keys[0]))
_Static_assert(CFG_NKEYS <=
                   sizeof(((orc_config_t *)0)->source) / sizeof(((orc_config_t *)0)->source[0]),
               "orc_config_t.source is too small for the key table");

static const char *const cfg_sections[] = {"limits", "engine", "tls", "imports"};

/* ---- small helpers ----------------------------------------------------------- */


static int replace_str(char **slot, const char *value)
{
    char *copy = NULL;

    if (value != NULL) {
        copy = orc_strdup(value);
        if (copy == NULL)
            return ORC_ENOMEM;
    }
    orc_free(*slot);
    *slot = copy;
    return 0;
}

static const struct cfg_key *key_by_name(const char *name, size_t *index)
{
    for (size_t i = 0; i < CFG_NKEYS; i++) {
        if (strcmp(cfg_keys[i].name, name) == 0) {
            if (index != NULL)
                *index = i;
            return &cfg_keys[i];
        }
    }
    return NULL;
}

static bool is_section(const char *name)
{
    for (size_t i = 0; i < sizeof(cfg_sections) / sizeof(cfg_sections[0]); i++)
        if (strcmp(cfg_sections[i], name) == 0)
            return true;
    return false;
}

/* Parses an unsigned decimal with nothing after it. */
static bool parse_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;

    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

/* Splits "123 KiB" into the number and the unit (spaces between allowed). */
static bool split_number_unit(const char *text, uint64_t *num, const char **unit)
{
    size_t n = 0;

    while (text[n] >= '0' && text[n] <= '9')
        n++;
    if (!parse_u64(text, n, num))
        return false;
    while (text[n] == ' ')
        n++;
    *unit = text + n;
    return true;
}

/* ---- value parsers ------------------------------------------------------------- */

int orc_config_parse_size(const char *text, size_t *out, char *why, size_t whylen)
{
    static const struct {
        const char *unit;
        uint64_t mult;
    } units[] = {{"", 1},           {"b", 1},        {"kib", 1u << 10}, {"mib", 1u << 20},
                 {"gib", 1u << 30}, {"k", 1u << 10}, {"m", 1u << 20},   {"g", 1u << 30}};
    uint64_t num;
    const char *unit;

    if (!split_number_unit(text, &num, &unit))
        goto bad;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcasecmp(unit, units[i].unit) != 0)
            continue;
        if (num > SIZE_MAX / units[i].mult)
            return orc_failf(why, whylen, ORC_EINVAL, "'%s' is too large", text);
        *out = (size_t)(num * units[i].mult);
        return 0;
    }
bad:
    return orc_failf(why, whylen, ORC_EINVAL,
                 "'%s' is not a size (bytes, or a number with KiB, MiB or GiB)", text);
}

int orc_config_parse_duration(const char *text, uint64_t *ms, char *why, size_t whylen)
{
    static const struct {
        const char *unit;
        uint64_t mult;
    } units[] = {{"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    uint64_t num;
    const char *unit;

    if (!split_number_unit(text, &num, &unit))
        goto bad;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(unit, units[i].unit) != 0)
            continue;
        if (num > UINT64_MAX / units[i].mult)
            return orc_failf(why, whylen, ORC_EINVAL, "'%s' is too long", text);
        *ms = num * units[i].mult;
        return 0;
    }
bad:
    return orc_failf(why, whylen, ORC_EINVAL,
                 "'%s' is not a duration (seconds, or a number with ms, s, m or h)", text);
}

int orc_config_parse_log_level(const char *text, orc_log_level_t *out, char *why, size_t whylen)
{
    static const struct {
        const char *name;
        orc_log_level_t level;
    } levels[] = {{"debug", ORC_LOG_DEBUG},
                  {"info", ORC_LOG_INFO},
                  {"warn", ORC_LOG_WARN},
                  {"warning", ORC_LOG_WARN},
                  {"error", ORC_LOG_ERROR}};

    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        if (strcasecmp(text, levels[i].name) == 0) {
            *out = levels[i].level;
            return 0;
        }
    }
    return orc_failf(why, whylen, ORC_EINVAL, "'%s' is not a log level (debug, info, warn, error)",
                 text);
}

static bool ipv6_is_loopback(const struct in6_addr *a)
{
    static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    if (IN6_IS_ADDR_LOOPBACK(a))
        return true;
    return memcmp(a->s6_addr, v4mapped, 12) == 0 && a->s6_addr[12] == 127;
}

/* Splits "host:port" or "[v6]:port" into host text and port text. */
static int split_host_port(const char *text, char *host, size_t hostlen, const char **port)
{
    const char *colon;
    size_t n;

    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':')
            return ORC_EINVAL;
        n = (size_t)(close - text - 1);
        text++;
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL || memchr(text, ':', (size_t)(colon - text)) != NULL)
            return ORC_EINVAL;
        n = (size_t)(colon - text);
    }
    if (n == 0 || n >= hostlen)
        return ORC_EINVAL;
    memcpy(host, text, n);
    host[n] = '\0';
    *port = colon + 1;
    return 0;
}

static int listen_fill_addr(orc_listen_addr_t *out, const char *text, char *why, size_t whylen)
{
    struct sockaddr_in *in4 = (struct sockaddr_in *)&out->addr;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->addr;

    memset(&out->addr, 0, sizeof(out->addr));
    if (strcmp(out->host, "localhost") == 0)
        snprintf(out->host, sizeof(out->host), "127.0.0.1");
    if (text[0] != '[' && inet_pton(AF_INET, out->host, &in4->sin_addr) == 1) {
        out->family = AF_INET;
        in4->sin_family = AF_INET;
        in4->sin_port = htons(out->port);
        out->loopback = (ntohl(in4->sin_addr.s_addr) >> 24) == 127;
        snprintf(out->text, sizeof(out->text), "%s:%u", out->host, (unsigned)out->port);
        return 0;
    }
    if (text[0] == '[' && inet_pton(AF_INET6, out->host, &in6->sin6_addr) == 1) {
        out->family = AF_INET6;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(out->port);
        out->loopback = ipv6_is_loopback(&in6->sin6_addr);
        inet_ntop(AF_INET6, &in6->sin6_addr, out->host, sizeof(out->host));
        snprintf(out->text, sizeof(out->text), "[%s]:%u", out->host, (unsigned)out->port);
        return 0;
    }
    return orc_failf(why, whylen, ORC_EINVAL,
                 "'%s': the host must be an IPv4 address, [IPv6] address or localhost", text);
}

int orc_config_parse_listen(const char *text, orc_listen_addr_t *out, char *why, size_t whylen)
{
    const char *port_text;
    uint64_t port;

    memset(out, 0, sizeof(*out));
    if (split_host_port(text, out->host, sizeof(out->host), &port_text) < 0)
        return orc_failf(why, whylen, ORC_EINVAL,
                     "'%s' is not ADDRESS:PORT (e.g. 127.0.0.1:8080 or [::1]:8080)", text);
    if (!parse_u64(port_text, strlen(port_text), &port) || port > 65535)
        return orc_failf(why, whylen, ORC_EINVAL, "'%s': the port must be 0 to 65535", text);
    out->port = (uint16_t)port;
    return listen_fill_addr(out, text, why, whylen);
}

/* ---- setters (one per key) --------------------------------------------------------- */

static int set_listen(orc_config_t *cfg, const char *text, char *why, size_t whylen)
{
    orc_listen_addr_t addrs[ORC_CONFIG_MAX_LISTEN];
    size_t count = 0;
    const char *p = text;

    for (;;) {
        char item[128];
        size_t n = strcspn(p, ",");
        while (n > 0 && *p == ' ')
            p++, n--;
        while (n > 0 && p[n - 1] == ' ')
            n--;
        if (n == 0 || n >= sizeof(item))
            return orc_failf(why, whylen, ORC_EINVAL, "'%s' is not a list of ADDRESS:PORT", text);
        if (count == ORC_CONFIG_MAX_LISTEN)
            return orc_failf(why, whylen, ORC_EINVAL, "at most %d addresses", ORC_CONFIG_MAX_LISTEN);
        memcpy(item, p, n);
        item[n] = '\0';
        if (orc_config_parse_listen(item, &addrs[count], why, whylen) < 0)
            return ORC_EINVAL;
        for (size_t i = 0; i < count; i++)
            if (addrs[i].port != 0 && strcmp(addrs[i].text, addrs[count].text) == 0)
                return orc_failf(why, whylen, ORC_EINVAL, "'%s' is listed twice", item);
        count++;
        p += strcspn(p, ",");
        if (*p == '\0')
            break;
        p++;
    }
    memcpy(cfg->listen, addrs, count * sizeof(addrs[0]));
    cfg->listen_count = count;
    return 0;
}

static int set_data_dir(orc_config_t *cfg, const char *text, char *why, size_t whylen)
{
    if (text[0] == '\0' || strlen(text) >= PATH_MAX)
        return orc_failf(why, whylen, ORC_EINVAL, "a directory path is expected");
    return replace_str(&cfg->data_dir, text);
}

static int set_sites(orc_config_t *cfg, const char *text, char *why, size_t whylen)
{
    struct stat st;

    if (strcasecmp(text, "none") == 0)
        return replace_str(&cfg->sites_file, NULL);
    if (stat(text, &st) != 0 || access(text, R_OK) != 0)
        return orc_failf(why, whylen, ORC_EINVAL, "cannot read sites file '%s': %s", text,
                     strerror(errno));
    if (!S_ISREG(st.st_mode))
        return orc_failf(why, whylen, ORC_EINVAL, "sites file '%s' is not a regular file", text);
    return replace_str(&cfg->sites_file, text);
}

static int set_log_level(orc_config_t *cfg, const char *text, char *why, size_t whylen)
{
    return orc_config_parse_log_level(text, &cfg->log_level, why, whylen);
}

static int set_public_url(orc_config_t *cfg, const char *text, char *why, size_t whylen)
{
    size_t len = strlen(text);
    const char *host;

    if (strcasecmp(text, "none") == 0)
        return replace_str(&cfg->public_url, NULL);
    if (strncasecmp(text, "http://", 7) == 0)
        host = text + 7;
    else if (strncasecmp(text, "https://", 8) == 0)
        host = text + 8;
    else
        return orc_failf(why, whylen, ORC_EINVAL, "'%s' must start with http:// or https://", text);
    if (*host == '\0' || *host == '/' || len > CFG_MAX_URL || strpbrk(text, "?# \t\r\n\"") != NULL)
        return orc_failf(why, whylen, ORC_EINVAL,
                     "'%s' is not a base URL (scheme, host, optional path; no query)", text);
    while (len > 0 && text[len - 1] == '/')
        len--;
    char *copy = orc_strndup(text, len);
    if (copy == NULL)
        return ORC_ENOMEM;
    orc_free(cfg->public_url);
    cfg->public_url = copy;
    return 0;
}

static int set_size_in(size_t *slot, const char *text, size_t min, size_t max, char *why,
                       size_t whylen)
{
    size_t v;

    if (orc_config_parse_size(text, &v, why, whylen) < 0)
        return ORC_EINVAL;
    if (v < min || v > max)
        return orc_failf(why, whylen, ORC_EINVAL, "'%s' is out of range (%zu to %zu bytes)", text, min,
                     max);
    *slot = v;
    return 0;
}

static int set_uint_in(unsigned *slot, const char *text, unsigned min, unsigned max, char *why,
                       size_t whylen)
{
    uint64_t v;

    if (!parse_u64(text, strlen(text), &v))
        return orc_failf(why, whylen, ORC_EINVAL, "'%s' is not a whole number", text);
    if (v < min || v > max)
        return orc_failf(why, whylen, ORC_EINVAL, "'%s' is out of range (%u to %u)", text, min, max);
    *slot = (unsigned)v;
    return 0;
}

static int set_duration_in(uint64_t *slot, const char *text, uint64_t min, uint64_t max, char *why,
                           size_t whylen)
{
    uint64_t v;

    if (orc_config_parse_duration(text, &v, why, whylen) < 0)
        return ORC_EINVAL;
    if (v < min || v > max)
        return orc_failf(why, whylen, ORC_EINVAL,
                     "'%s' is out of range (%" PRIu64 "ms to %" PRIu64 "s)", text, min, max / 1000);
    *slot = v;
    return 0;
}

static int set_max_body(orc_config_t *cfg, const char *text, char *why, size_t whylen)
{
    return set_size_in(&cfg->limits.max_body_bytes, text, 1024, (size_t)1 << 30, why, whylen);
}

/* libh2o 2.2 itself accepts request heads up to 8 KiB + 100 * 4 KiB; the
 * daemon enforces this limit under that. */
static int set_max_header(orc_config_t *cfg, const char *text, char *why, size_t whylen)
{
    return set_size_in(&cfg->limits.max_header_bytes, text, 1024, 256 * 1024, why, whylen);
}

static int set_json_depth(orc_config_t *cfg, const char *text, char *why, size_t whylen)
{
    /* jansson refuses nesting beyond 2048 on its own */
    return set_uint_in(&cfg->limits.json_max_depth, text, 1, 2048, why, whylen);
}

static int set_request_timeout(orc_config_t *cfg, const char *text, char *why, size_t whylen)
{
    return set_duration_in(&cfg->limits.request_timeout_ms, text, 100, 3600 * 1000, why, whylen);
}

static int set_max_connections(orc_config_t *cfg, const char *text, char *why, size_t whylen)
{
    return set_uint_in(&cfg->limits.max_connections, text, 1, 1000000, why, whylen);
}

static int set_max_streams(orc_config_t *cfg, const char *text, char *why, size_t whylen)
{
    return set_uint_in(&cfg->limits.max_streams, text, 1, 1000000, why, whylen);
}

static int set_shutdown_timeout(orc_config_t *cfg, const char *text, char *why, size_t whylen)
{
    return set_duration_in(&cfg->limits.shutdown_timeout_ms, text, 0, 3600 * 1000, why, whylen);
}

static int set_max_parallel_ops(orc_config_t *cfg, const char *text, char *why, size_t whylen)
{
    return set_uint_in(&cfg->engine.max_parallel_ops, text, 1, 4096, why, whylen);
}

static int set_callback_attempts(orc_config_t *cfg, const char *text, char *why, size_t whylen)
{
    return set_uint_in(&cfg->engine.callback_attempts, text, 1, 100, why, whylen);
}

static int set_callback_backoff(orc_config_t *cfg, const char *text, char *why, size_t whylen)
{
    return set_duration_in(&cfg->engine.callback_backoff_ms, text, 1, 3600 * 1000, why, whylen);
}

/* Only tests shorten it: the API's deadlines are in minutes. */
static int set_deadline_minute(orc_config_t *cfg, const char *text, char *why, size_t whylen)
{
    return set_duration_in(&cfg->engine.deadline_minute_ms, text, 10, 3600 * 1000, why, whylen);
}

static int set_user_rate(orc_config_t *cfg, const char *text, char *why, size_t whylen)
{
    return set_uint_in(&cfg->limits.user_rate, text, 0, 1000000, why, whylen);
}

static int set_user_burst(orc_config_t *cfg, const char *text, char *why, size_t whylen)
{
    return set_uint_in(&cfg->limits.user_burst, text, 1, 1000000, why, whylen);
}

static int set_user_deployments(orc_config_t *cfg, const char *text, char *why, size_t whylen)
{
    return set_uint_in(&cfg->limits.user_deployments, text, 0, 10000000, why, whylen);
}

static void free_list(char **list)
{
    for (size_t i = 0; list && list[i]; i++)
        orc_free(list[i]);
    orc_free(list);
}

/* Checks one item of a list key: 0, or ORC_EINVAL with the reason in why. */
typedef int (*item_check_fn)(const char *item, char *why, size_t whylen);

/* "A,B,C" into *slot (NULL-terminated; NULL when empty), each item checked. */
static int set_list(char ***slot, const char *text, item_check_fn check, char *why,
                    size_t whylen)
{
    size_t n = 1, k = 0;
    char **list;

    for (const char *p = text; *p; p++)
        n += *p == ',';
    list = orc_calloc(n + 1, sizeof(*list));
    if (list == NULL)
        return ORC_ENOMEM;
    for (const char *p = text; *p;) {
        size_t len = strcspn(p, ",");
        char *item = orc_strndup(p, len);
        if (item == NULL) {
            free_list(list);
            return ORC_ENOMEM;
        }
        list[k++] = item;
        if (check(item, why, whylen) < 0) {
            free_list(list);
            return ORC_EINVAL;
        }
        p += len + (p[len] == ',');
    }
    free_list(*slot);
    *slot = k ? list : NULL;
    if (!k)
        free_list(list);
    return 0;
}

static int check_dir(const char *dir, char *why, size_t whylen)
{
    struct stat st;

    if (dir[0] != '/' || stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return orc_failf(why, whylen, ORC_EINVAL, "'%s' is not an absolute path of a directory",
                         dir);
    return 0;
}

static int check_url_prefix(const char *url, char *why, size_t whylen)
{
    char reason[128];

    if (tosca_url_prefix_check(url, reason, sizeof(reason)) < 0)
        return orc_failf(why, whylen, ORC_EINVAL, "'%s' is not a URL prefix: %s", url, reason);
    return 0;
}

/* "DIR,DIR": absolute directories that exist. */
static int set_import_roots(orc_config_t *cfg, const char *text, char *why, size_t whylen)
{
    return set_list(&cfg->import_roots, text, check_dir, why, whylen);
}

/* "URL,URL": http(s) prefixes (tosca_url_prefix_check). */
static int set_import_urls(orc_config_t *cfg, const char *text, char *why, size_t whylen)
{
    return set_list(&cfg->import_urls, text, check_url_prefix, why, whylen);
}

static int set_fetch_timeout(orc_config_t *cfg, const char *text, char *why, size_t whylen)
{
    return set_duration_in(&cfg->import_fetch_timeout_ms, text, 1000, 600 * 1000, why, whylen);
}

static int set_lease_time(orc_config_t *cfg, const char *text, char *why, size_t whylen)
{
    return set_duration_in(&cfg->engine.lease_ms, text, 300, 600 * 1000, why, whylen);
}

static int set_instance(orc_config_t *cfg, const char *text, char *why, size_t whylen)
{
    if (text[0] == '\0' || strlen(text) > 100)
        return orc_failf(why, whylen, ORC_EINVAL, "a name of 1 to 100 characters is expected");
    return replace_str(&cfg->engine.instance, text);
}

static int set_cache_ttl(orc_config_t *cfg, const char *text, char *why, size_t whylen)
{
    return set_duration_in(&cfg->import_cache_ttl_ms, text, 1000, 30ull * 24 * 3600 * 1000, why,
                           whylen);
}

/* A file path; "" clears it. */
static int set_path(char **slot, const char *text)
{
    return replace_str(slot, text[0] ? text : NULL);
}

static int set_tls_cert(orc_config_t *cfg, const char *text, char *why, size_t whylen)
{
    return set_path(&cfg->tls.cert_file, text);
}

static int set_tls_key(orc_config_t *cfg, const char *text, char *why, size_t whylen)
{
    return set_path(&cfg->tls.key_file, text);
}

static int set_tls_ca(orc_config_t *cfg, const char *text, char *why, size_t whylen)
{
    return set_path(&cfg->tls.ca_file, text);
}

static int set_catalog_dir(orc_config_t *cfg, const char *text, char *why, size_t whylen)
{
    if (strcasecmp(text, "none") == 0 || text[0] == '\0')
        return replace_str(&cfg->catalog_dir, NULL);
    if (strlen(text) >= PATH_MAX)
        return orc_failf(why, whylen, ORC_EINVAL, "a directory path is expected");
    return replace_str(&cfg->catalog_dir, text);
}

static int set_secrets_file(orc_config_t *cfg, const char *text, char *why, size_t whylen)
{
    return set_path(&cfg->secrets_file, text);
}

static int set_log_format(orc_config_t *cfg, const char *text, char *why, size_t whylen)
{
    if (strcmp(text, "text") == 0 || strcmp(text, "json") == 0) {
        cfg->log_format = text[0] == 'j' ? ORC_LOG_JSON : ORC_LOG_TEXT;
        return 0;
    }
    return orc_failf(why, whylen, ORC_EINVAL, "'%s' is not a log format (text, json)", text);
}

static int set_store_readers(orc_config_t *cfg, const char *text, char *why, size_t whylen)
{
    unsigned n;
    int rc;

    if (strcmp(text, "auto") == 0) {
        cfg->store_readers = -1;
        return 0;
    }
    rc = set_uint_in(&n, text, 0, 64, why, whylen);
    if (rc == 0)
        cfg->store_readers = (int)n;
    return rc;
}

static int set_store_commit(orc_config_t *cfg, const char *text, char *why, size_t whylen)
{
    if (strcmp(text, "overlap") == 0 || strcmp(text, "wait") == 0) {
        cfg->store_commit_wait = text[0] == 'w';
        return 0;
    }
    return orc_failf(why, whylen, ORC_EINVAL, "'%s' is not a commit mode (overlap, wait)", text);
}

static int set_store(orc_config_t *cfg, const char *text, char *why, size_t whylen)
{
    const char *at, *colon;

    if (strcmp(text, "sqlite") == 0)
        return replace_str(&cfg->store, NULL);
    if (strncmp(text, "sqlite:", 7) == 0 && text[7] != '\0')
        return replace_str(&cfg->store, text);
    if (strncmp(text, "postgresql://", 13) != 0 && strncmp(text, "postgres://", 11) != 0)
        return orc_failf(why, whylen, ORC_EINVAL,
                         "sqlite, sqlite:PATH or a postgresql:// URL is expected");
    /* a password in the URL would show in process lists and configuration files */
    at = strchr(text, '@');
    colon = strchr(strstr(text, "://") + 3, ':');
    if ((at != NULL && colon != NULL && colon < at) || strstr(text, "password=") != NULL)
        return orc_failf(why, whylen, ORC_EINVAL,
                         "the URL carries a password: give it in PGPASSWORD or ~/.pgpass");
    return replace_str(&cfg->store, text);
}

static int set_callback_private(orc_config_t *cfg, const char *text, char *why, size_t whylen)
{
    static const char *const names[] = {"auto", "allow", "deny"};

    for (int i = 0; i < 3; i++)
        if (strcmp(text, names[i]) == 0) {
            cfg->engine.callback_private = i;
            return 0;
        }
    snprintf(why, whylen, "'%s' is not a policy (auto, allow, deny)", text);
    return ORC_EINVAL;
}

/* ---- defaults -------------------------------------------------------------------- */

int orc_config_init(orc_config_t *cfg)
{
    char why[128];

    memset(cfg, 0, sizeof(*cfg));
    cfg->log_level = ORC_LOG_INFO;
    cfg->limits.max_body_bytes = 4u << 20;
    cfg->limits.max_header_bytes = 16u << 10;
    cfg->limits.json_max_depth = 64;
    cfg->limits.request_timeout_ms = 30 * 1000;
    cfg->limits.max_connections = 1024;
    cfg->limits.max_streams = 256;
    cfg->limits.shutdown_timeout_ms = 10 * 1000;
    cfg->limits.user_rate = 20;
    cfg->limits.user_burst = 100;
    cfg->limits.user_deployments = 100;
    cfg->store_readers = -1;
    cfg->store_commit_wait = true; /* measured faster than overlap (docs/store.md) */
    cfg->import_fetch_timeout_ms = 20 * 1000;
    cfg->import_cache_ttl_ms = 3600 * 1000;
    cfg->engine.max_parallel_ops = 8;
    cfg->engine.callback_attempts = 8;
    cfg->engine.callback_backoff_ms = 1000;
    cfg->engine.deadline_minute_ms = 60 * 1000;
    cfg->engine.lease_ms = 15 * 1000;
    cfg->data_dir = orc_strdup("./var");
    cfg->catalog_dir = orc_strdup("./examples");
    cfg->configuration = json_object();
    cfg->auth.clock_skew_s = 60;
    cfg->auth.jwks_refresh_ms = 3600 * 1000;
    if (cfg->data_dir == NULL || cfg->catalog_dir == NULL || cfg->configuration == NULL ||
        set_listen(cfg, "127.0.0.1:8080", why, sizeof(why)) < 0) {
        orc_config_fini(cfg);
        return ORC_ENOMEM;
    }
    return 0;
}

void orc_config_fini(orc_config_t *cfg)
{
    orc_free(cfg->config_file);
    orc_free(cfg->data_dir);
    orc_free(cfg->sites_file);
    orc_free(cfg->public_url);
    json_decref(cfg->configuration);
    orc_config_auth_fini(&cfg->auth);
    cfg->auth_enabled = false;
    orc_free(cfg->tls.cert_file);
    orc_free(cfg->tls.key_file);
    orc_free(cfg->tls.ca_file);
    orc_free(cfg->secrets_file);
    cfg->secrets_file = NULL;
    orc_free(cfg->catalog_dir);
    cfg->catalog_dir = NULL;
    orc_free(cfg->store);
    cfg->store = NULL;
    orc_free(cfg->engine.instance);
    cfg->engine.instance = NULL;
    free_list(cfg->import_roots);
    free_list(cfg->import_urls);
    cfg->import_roots = cfg->import_urls = NULL;
    cfg->tls.cert_file = cfg->tls.key_file = cfg->tls.ca_file = NULL;
    cfg->config_file = cfg->data_dir = cfg->sites_file = cfg->public_url = NULL;
    cfg->configuration = NULL;
}

/* ---- locating keys in the YAML text (for file:line:col) ----------------------------- */

struct yframe {
    bool is_map;
    bool expect_key;
    char key[64];
};

/* Handles one scalar (or alias) event; returns true when it is the key wanted. */
static bool locate_scalar(struct yframe *st, int depth, const yaml_event_t *ev, const char *k1,
                          const char *k2)
{
    struct yframe *top = &st[depth];
    const char *v = ev->type == YAML_SCALAR_EVENT ? (const char *)ev->data.scalar.value : "";

    if (!top->is_map)
        return false;
    if (!top->expect_key) {
        top->expect_key = true;
        return false;
    }
    top->expect_key = false;
    snprintf(top->key, sizeof(top->key), "%s", v);
    if (depth == 1 && k2 == NULL)
        return strcmp(v, k1) == 0;
    return depth == 2 && k2 != NULL && strcmp(st[1].key, k1) == 0 && strcmp(v, k2) == 0;
}

/* Finds the line and column (1-based) of key k1 (or k1.k2) in YAML text.
 * Returns false when it cannot (flow styles, a parse error, ...). */
static bool yaml_locate(const char *text, size_t len, const char *k1, const char *k2,
                        unsigned *line, unsigned *col)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    struct yframe st[8];
    int depth = 0;
    bool found = false, done = false;

    if (text == NULL || !yaml_parser_initialize(&parser))
        return false;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    memset(st, 0, sizeof(st));
    while (!done && !found && yaml_parser_parse(&parser, &ev)) {
        switch (ev.type) {
        case YAML_MAPPING_START_EVENT:
        case YAML_SEQUENCE_START_EVENT:
            if (st[depth].is_map)
                st[depth].expect_key = true; /* the collection is a value */
            if (++depth >= (int)(sizeof(st) / sizeof(st[0])))
                done = true;
            else
                st[depth] = (struct yframe){ev.type == YAML_MAPPING_START_EVENT, true, ""};
            break;
        case YAML_MAPPING_END_EVENT:
        case YAML_SEQUENCE_END_EVENT:
            depth--;
            break;
        case YAML_SCALAR_EVENT:
        case YAML_ALIAS_EVENT:
            found = locate_scalar(st, depth, &ev, k1, k2);
            if (found) {
                *line = (unsigned)ev.start_mark.line + 1;
                *col = (unsigned)ev.start_mark.column + 1;
            }
            break;
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    return found;
}

/* Writes "where: " for a key read from origin into buf. */
static void origin_prefix(const struct cfg_origin *o, const char *k1, const char *k2, char *buf,
                          size_t len)
{
    unsigned line = 0, col = 0;

    if (o->src != ORC_CFG_FILE) {
        snprintf(buf, len, "%s", o->label);
        return;
    }
    if (yaml_locate(o->text, o->len, k1, k2, &line, &col))
        snprintf(buf, len, "%s:%u:%u: %s%s%s", o->file, line, col, k1, k2 ? "." : "", k2 ? k2 : "");
    else
        snprintf(buf, len, "%s: %s%s%s", o->file, k1, k2 ? "." : "", k2 ? k2 : "");
}

/* ---- applying values ---------------------------------------------------------------- */

static int apply_text(orc_config_t *cfg, size_t index, const char *text, const struct cfg_origin *o,
                      const char *k1, const char *k2, char *err, size_t errlen)
{
    char why[256], where[512];
    int rc = cfg_keys[index].set(cfg, text, why, sizeof(why));

    if (rc == ORC_ENOMEM)
        return orc_failf(err, errlen, rc, "out of memory");
    if (rc < 0) {
        origin_prefix(o, k1, k2, where, sizeof(where));
        return orc_failf(err, errlen, rc, "%s: %s", where, why);
    }
    cfg->source[index] = o->src;
    return 0;
}

/* Turns a file value into the text the setters read. */
static int json_to_text(const json_t *v, bool list, char *buf, size_t len)
{
    size_t used = 0, i;
    json_t *item;

    if (json_is_string(v))
        return (size_t)snprintf(buf, len, "%s", json_string_value(v)) < len ? 0 : ORC_EINVAL;
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return 0;
    }
    if (!list || !json_is_array(v) || json_array_size(v) == 0)
        return ORC_EINVAL;
    json_array_foreach(v, i, item)
    {
        if (!json_is_string(item) || used + strlen(json_string_value(item)) + 2 > len)
            return ORC_EINVAL;
        used +=
            (size_t)snprintf(buf + used, len - used, "%s%s", i ? "," : "", json_string_value(item));
    }
    return 0;
}

/* The `configuration` map (the key table's entry index) into cfg->configuration. */
static int apply_configuration(orc_config_t *cfg, size_t index, const json_t *v,
                               const struct cfg_origin *o, char *err, size_t errlen)
{
    const char *name;
    json_t *item, *copy;
    char where[512];

    origin_prefix(o, "configuration", NULL, where, sizeof(where));
    if (!json_is_object(v))
        return orc_failf(err, errlen, ORC_EINVAL, "%s: a map of names to strings is expected", where);
    json_object_foreach((json_t *)v, name, item)
    {
        if (!json_is_string(item))
            return orc_failf(err, errlen, ORC_EINVAL, "%s: '%s' must be a string (quote it)", where,
                         name);
    }
    copy = json_deep_copy(v);
    if (copy == NULL)
        return orc_failf(err, errlen, ORC_ENOMEM, "out of memory");
    json_decref(cfg->configuration);
    cfg->configuration = copy;
    cfg->source[index] = o->src;
    return 0;
}

static void known_keys(const char *section, char *buf, size_t len)
{
    size_t used = 0, plen = section ? strlen(section) : 0;

    buf[0] = '\0';
    for (size_t i = 0; i < CFG_NKEYS && used < len; i++) {
        const char *name = cfg_keys[i].name;
        const char *dot = strchr(name, '.');
        if (section != NULL && (strncmp(name, section, plen) != 0 || name[plen] != '.'))
            continue;
        if (section == NULL && dot != NULL) { /* a section: named once */
            char sect[32];
            snprintf(sect, sizeof(sect), "%.*s", (int)(dot - name), name);
            if (strstr(buf, sect) == NULL)
                used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? ", " : "", sect);
            continue;
        }
        used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? ", " : "",
                                 section ? name + plen + 1 : name);
    }
}

static int unknown_key(const struct cfg_origin *o, const char *k1, const char *k2, char *err,
                       size_t errlen)
{
    char where[512], known[512];
    unsigned line = 0, col = 0;

    known_keys(k2 ? k1 : NULL, known, sizeof(known));
    if (yaml_locate(o->text, o->len, k1, k2, &line, &col))
        snprintf(where, sizeof(where), "%s:%u:%u", o->file, line, col);
    else
        snprintf(where, sizeof(where), "%s", o->file);
    return orc_failf(err, errlen, ORC_EINVAL, "%s: unknown key '%s%s%s' (known keys%s%s: %s)", where,
                 k2 ? k1 : "", k2 ? "." : "", k2 ? k2 : k1, k2 ? " in " : "", k2 ? k1 : "", known);
}

/* Applies one file entry k1 (or k1.k2) with value v. */
static int apply_file_value(orc_config_t *cfg, const struct cfg_origin *o, const char *k1,
                            const char *k2, const json_t *v, char *err, size_t errlen)
{
    char name[160], text[1024], where[512];
    size_t index;

    snprintf(name, sizeof(name), "%s%s%s", k1, k2 ? "." : "", k2 ? k2 : "");
    if (key_by_name(name, &index) == NULL || strchr(k2 ? k2 : k1, '.') != NULL)
        return unknown_key(o, k1, k2, err, errlen);
    if (json_is_null(v))
        return 0; /* "key: ~" keeps the default */
    if (strcmp(name, "configuration") == 0)
        return apply_configuration(cfg, index, v, o, err, errlen);
    if (strcmp(name, "auth") == 0) {
        origin_prefix(o, "auth", NULL, where, sizeof(where));
        cfg->source[index] = o->src;
        return orc_config_apply_auth(cfg, v, where, err, errlen);
    }
    if (json_to_text(v, cfg_keys[index].list, text, sizeof(text)) < 0) {
        origin_prefix(o, k1, k2, where, sizeof(where));
        return orc_failf(err, errlen, ORC_EINVAL, "%s: expected %s, not %s", where,
                     cfg_keys[index].list ? "a string or a list of strings" : "a string or number",
                     json_is_object(v)    ? "a map"
                     : json_is_array(v)   ? "a list (of strings only)"
                     : json_is_boolean(v) ? "a boolean"
                     : json_is_real(v)    ? "a fraction"
                     : json_is_string(v)  ? "a string that long"
                                          : "a negative number");
    }
    return apply_text(cfg, index, text, o, k1, k2, err, errlen);
}

static int apply_section(orc_config_t *cfg, const struct cfg_origin *o, const char *section,
                         const json_t *v, char *err, size_t errlen)
{
    const char *name;
    json_t *item;
    char where[512];
    int rc;

    if (json_is_null(v))
        return 0;
    if (!json_is_object(v)) {
        origin_prefix(o, section, NULL, where, sizeof(where));
        return orc_failf(err, errlen, ORC_EINVAL, "%s: a map is expected", where);
    }
    json_object_foreach((json_t *)v, name, item)
    {
        rc = apply_file_value(cfg, o, section, name, item, err, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int read_file(const char *path, char **out, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n;

    if (f == NULL)
        return orc_failf(err, errlen, ORC_EIO, "cannot read configuration file '%s': %s", path,
                     strerror(errno));
    buf = orc_malloc(CFG_MAX_FILE_BYTES + 1);
    if (buf == NULL) {
        fclose(f);
        return orc_failf(err, errlen, ORC_ENOMEM, "out of memory");
    }
    n = fread(buf, 1, CFG_MAX_FILE_BYTES + 1, f);
    if (ferror(f) || n > CFG_MAX_FILE_BYTES) {
        int rc = orc_failf(err, errlen, ferror(f) ? ORC_EIO : ORC_ELIMIT, "configuration file '%s': %s",
                       path, ferror(f) ? strerror(errno) : "larger than 1 MiB");
        fclose(f);
        orc_free(buf);
        return rc;
    }
    fclose(f);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

static int parse_file_json(const char *path, const char *text, size_t len, json_t **doc, char *err,
                           size_t errlen)
{
    tosca_diags_t diags;
    char msg[512];
    int rc;

    tosca_diags_init(&diags, false);
    rc = tosca_yaml_to_json(path, text, len, doc, &diags);
    if (rc < 0) {
        tosca_diags_sort(&diags);
        if (diags.count > 0)
            orc_failf(err, errlen, ORC_EINVAL, "%s",
                  tosca_diag_format(&diags.items[0], msg, sizeof(msg)));
        else
            orc_failf(err, errlen, rc, "%s: %s", path, orc_strerror(rc));
        rc = rc == ORC_ENOMEM ? rc : ORC_EINVAL;
    }
    tosca_diags_fini(&diags);
    return rc;
}

static int apply_file(orc_config_t *cfg, const char *path, char *err, size_t errlen)
{
    struct cfg_origin o = {.src = ORC_CFG_FILE, .file = path};
    char *text = NULL;
    json_t *doc = NULL, *v;
    const char *name;
    int rc;

    rc = read_file(path, &text, &o.len, err, errlen);
    if (rc < 0)
        return rc;
    o.text = text;
    rc = parse_file_json(path, text, o.len, &doc, err, errlen);
    if (rc < 0)
        goto out_free_text;
    if (!json_is_object(doc) && !json_is_null(doc)) {
        rc =
            orc_failf(err, errlen, ORC_EINVAL, "%s:1:1: the configuration must be a map of keys", path);
        goto out_free_doc;
    }
    json_object_foreach(doc, name, v)
    {
        rc = is_section(name) ? apply_section(cfg, &o, name, v, err, errlen)
                              : apply_file_value(cfg, &o, name, NULL, v, err, errlen);
        if (rc < 0)
            break;
    }
out_free_doc:
    json_decref(doc);
out_free_text:
    orc_free(text);
    return rc;
}

/* ---- environment and command line -------------------------------------------------- */

static const char *env_get(char *const envp[], const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; envp != NULL && envp[i] != NULL; i++)
        if (strncmp(envp[i], name, n) == 0 && envp[i][n] == '=')
            return envp[i] + n + 1;
    return NULL;
}

static int apply_env(orc_config_t *cfg, char *const envp[], char *err, size_t errlen)
{
    for (size_t i = 0; i < CFG_NKEYS; i++) {
        const char *v = cfg_keys[i].env ? env_get(envp, cfg_keys[i].env) : NULL;
        struct cfg_origin o = {.src = ORC_CFG_ENV, .label = cfg_keys[i].env};
        int rc;

        if (v == NULL || v[0] == '\0')
            continue; /* unset or empty: not given */
        rc = apply_text(cfg, i, v, &o, cfg_keys[i].name, NULL, err, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

struct cli_value {
    size_t index; /* into cfg_keys */
    const char *value;
    const char *opt;
};

struct cli_args {
    const char *config;
    struct cli_value values[32];
    size_t count;
};

/* Finds the key of a long option given as "--name" or "--name=value". */
static const struct cfg_key *cli_key(const char *arg, size_t *index)
{
    size_t n = strcspn(arg, "=");

    for (size_t i = 0; i < CFG_NKEYS; i++) {
        const char *opt = cfg_keys[i].opt;
        if (opt != NULL && strlen(opt) == n && strncmp(opt, arg, n) == 0) {
            *index = i;
            return &cfg_keys[i];
        }
    }
    return NULL;
}

/* The value of the option at argv[*i]: after '=' or the next argument. */
static int cli_value(int argc, char *const argv[], int *i, const char **value, char *err,
                     size_t errlen)
{
    const char *eq = strchr(argv[*i], '=');

    if (eq != NULL && argv[*i][1] == '-') {
        *value = eq + 1;
        return 0;
    }
    if (*i + 1 >= argc)
        return orc_failf(err, errlen, ORC_EUSAGE, "option '%s' needs a value", argv[*i]);
    *value = argv[++*i];
    return 0;
}

static bool is_opt(const char *arg, const char *name)
{
    size_t n = strlen(name);
    return strncmp(arg, name, n) == 0 && (arg[n] == '\0' || arg[n] == '=');
}

static int parse_cli(int argc, char *const argv[], struct cli_args *cli, char *err, size_t errlen)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *value;
        size_t index;
        int rc;

        if (is_opt(arg, "--config") || strcmp(arg, "-c") == 0) {
            rc = cli_value(argc, argv, &i, &cli->config, err, errlen);
        } else if (strncmp(arg, "--", 2) == 0 && arg[2] != '\0' && cli_key(arg, &index)) {
            rc = cli_value(argc, argv, &i, &value, err, errlen);
            if (rc == 0 && cli->count == sizeof(cli->values) / sizeof(cli->values[0]))
                rc = orc_failf(err, errlen, ORC_EUSAGE, "too many options");
            if (rc == 0)
                cli->values[cli->count++] = (struct cli_value){index, value, cfg_keys[index].opt};
        } else if (arg[0] == '-') {
            rc = orc_failf(err, errlen, ORC_EUSAGE, "unknown option '%s' (see --help)", arg);
        } else {
            rc = orc_failf(err, errlen, ORC_EUSAGE, "unexpected argument '%s' (see --help)", arg);
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

static orc_config_action_t cli_action(int argc, char *const argv[])
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return ORC_CONFIG_HELP;
        if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0)
            return ORC_CONFIG_VERSION;
    }
    return ORC_CONFIG_RUN;
}

/* ---- checks across keys --------------------------------------------------------------- */

/* A certificate needs its key and the other way round; the key is no one else's to read. */
int orc_config_check_tls(const orc_config_t *cfg, char *err, size_t errlen)
{
    struct stat st;

    if (!cfg->tls.cert_file != !cfg->tls.key_file)
        return orc_failf(err, errlen, ORC_EINVAL, "tls: give both cert_file and key_file (%s is "
                     "missing)", cfg->tls.cert_file ? "key_file" : "cert_file");
    if (cfg->tls.key_file == NULL)
        return 0;
    if (stat(cfg->tls.key_file, &st) != 0)
        return orc_failf(err, errlen, ORC_EINVAL, "tls.key_file %s: %s", cfg->tls.key_file,
                     strerror(errno));
    if (st.st_mode & 077)
        return orc_failf(err, errlen, ORC_EINVAL,
                     "tls.key_file %s is mode %04o: a private key must not be readable by "
                     "group or others (chmod 600 it)",
                     cfg->tls.key_file, (unsigned)(st.st_mode & 07777));
    return 0;
}

static int check_loopback(const orc_config_t *cfg, char *err, size_t errlen)
{
    if (cfg->auth_enabled)
        return 0;
    for (size_t i = 0; i < cfg->listen_count; i++) {
        if (cfg->listen[i].loopback)
            continue;
        return orc_failf(err, errlen, ORC_EINVAL,
                     "listen address %s (from %s) is not a loopback address: without "
                     "authentication (auth.issuers in the configuration file) orchestratord "
                     "listens on loopback only (127.0.0.1, [::1])",
                     cfg->listen[i].text, orc_config_source_name(cfg->source[0]));
    }
    return 0;
}

int orc_config_load(orc_config_t *cfg, int argc, char *const argv[], char *const envp[], char *err,
                    size_t errlen)
{
    struct cli_args cli = {0};
    const char *file;
    int rc;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    cfg->action = cli_action(argc, argv);
    if (cfg->action != ORC_CONFIG_RUN)
        return 0;
    rc = parse_cli(argc, argv, &cli, err, errlen);
    if (rc < 0)
        return rc;
    file = cli.config ? cli.config : env_get(envp, "ORCHESTRATOR_CONFIG");
    if (file != NULL && file[0] != '\0') {
        if (replace_str(&cfg->config_file, file) < 0)
            return orc_failf(err, errlen, ORC_ENOMEM, "out of memory");
        rc = apply_file(cfg, file, err, errlen);
        if (rc < 0)
            return rc;
    }
    rc = apply_env(cfg, envp, err, errlen);
    for (size_t i = 0; rc == 0 && i < cli.count; i++) {
        struct cfg_origin o = {.src = ORC_CFG_CLI, .label = cli.values[i].opt};
        rc = apply_text(cfg, cli.values[i].index, cli.values[i].value, &o,
                        cfg_keys[cli.values[i].index].name, NULL, err, errlen);
    }
    if (rc < 0)
        return rc;
    rc = orc_config_check_tls(cfg, err, errlen);
    return rc < 0 ? rc : check_loopback(cfg, err, errlen);
}

/* ---- help and logging ------------------------------------------------------------------ */

void orc_config_usage(FILE *out, const char *prog)
{
    fprintf(out,
            "Usage: %s [OPTIONS]\n"
            "The orchestrator daemon: TOSCA deployments of GPU training and serving over a\n"
            "federation of sites, behind the REST API of the INDIGO PaaS Orchestrator.\n\n"
            "Each setting is taken from the command line, else the environment, else the\n"
            "configuration file, else its default.\n\n"
            "Options:\n"
            "  -c, --config FILE\n"
            "        YAML configuration file (environment ORCHESTRATOR_CONFIG)\n",
            prog);
    for (size_t i = 0; i < CFG_NKEYS; i++)
        if (cfg_keys[i].opt != NULL)
            fprintf(out, "  %s %s\n        %s\n        file key %s, environment %s, default %s\n",
                    cfg_keys[i].opt, cfg_keys[i].metavar, cfg_keys[i].help, cfg_keys[i].name,
                    cfg_keys[i].env, cfg_keys[i].def);
    fprintf(out, "  -h, --help\n        this text\n  -V, --version\n        version and build\n\n"
                 "Settings without an option:\n");
    for (size_t i = 0; i < CFG_NKEYS; i++)
        if (cfg_keys[i].opt == NULL)
            fprintf(out, "  %s %s\n        %s\n        %s%s%sdefault %s\n", cfg_keys[i].name,
                    cfg_keys[i].metavar, cfg_keys[i].help, cfg_keys[i].env ? "environment " : "",
                    cfg_keys[i].env ? cfg_keys[i].env : "file only", ", ", cfg_keys[i].def);
    fprintf(out, "\nSizes: 4194304, 512KiB, 4MiB. Durations: 30 (seconds), 500ms, 30s, 2m, 1h.\n"
                 "Exit status: 0 after a clean shutdown, 1 on a runtime failure, 2 on a bad\n"
                 "configuration or usage.\n");
}

const char *orc_config_source_name(orc_config_source_t src)
{
    switch (src) {
    case ORC_CFG_FILE:
        return "configuration file";
    case ORC_CFG_ENV:
        return "environment";
    case ORC_CFG_CLI:
        return "command line";
    default:
        return "default";
    }
}

orc_config_source_t orc_config_source(const orc_config_t *cfg, const char *key)
{
    size_t index;

    return key_by_name(key, &index) ? cfg->source[index] : ORC_CFG_DEFAULT;
}

static void listen_text(const orc_config_t *cfg, char *buf, size_t len)
{
    size_t used = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < cfg->listen_count && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? "," : "", cfg->listen[i].text);
}

void orc_config_log(const orc_config_t *cfg)
{
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    char listen[600];

    listen_text(cfg, listen, sizeof(listen));
    orc_log(ORC_LOG_INFO, "config",
            "%s%s; data_dir %s; store %s; sites %s; log_level %s; public_url %s",
            cfg->config_file ? "file " : "no configuration file",
            cfg->config_file ? cfg->config_file : "", cfg->data_dir,
            cfg->store ? cfg->store : "sqlite",
            cfg->sites_file ? cfg->sites_file : "none (one site `local`)", levels[cfg->log_level],
            cfg->public_url ? cfg->public_url : "none (from Host)");
    orc_log(ORC_LOG_DEBUG, "config", "listen %s (%s)", listen,
            orc_config_source_name(cfg->source[0]));
    orc_log(ORC_LOG_DEBUG, "config",
            "limits: max_body_bytes %zu, max_header_bytes %zu, json_max_depth %u, "
            "request_timeout %" PRIu64 "ms, max_connections %u, shutdown_timeout %" PRIu64 "ms",
            cfg->limits.max_body_bytes, cfg->limits.max_header_bytes, cfg->limits.json_max_depth,
            cfg->limits.request_timeout_ms, cfg->limits.max_connections,
            cfg->limits.shutdown_timeout_ms);
    orc_log(ORC_LOG_DEBUG, "config",
            "engine: max_parallel_ops %u, callback_attempts %u, callback_backoff %" PRIu64
            "ms, deadline_minute %" PRIu64 "ms",
            cfg->engine.max_parallel_ops, cfg->engine.callback_attempts,
            cfg->engine.callback_backoff_ms, cfg->engine.deadline_minute_ms);
    for (size_t i = 0; i < CFG_NKEYS; i++)
        if (cfg->source[i] != ORC_CFG_DEFAULT)
            orc_log(ORC_LOG_DEBUG, "config", "%s from the %s", cfg_keys[i].name,
                    orc_config_source_name(cfg->source[i]));
}
