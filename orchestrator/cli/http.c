/*
 * orchctl's HTTP client: one request at a time with libcurl, the server URL
 * and bearer token from flags or the environment, JSON bodies, and the
 * server's error JSON turned into a message and an exit code. Event streams
 * are sse.c's.
 */
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "cli.h"

struct sink {
    char *data;
    size_t len;
};

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct sink *s = ud;
    size_t bytes = size * n;
    char *nd = realloc(s->data, s->len + bytes + 1);

    if (nd == NULL)
        return 0;
    memcpy(nd + s->len, p, bytes);
    s->len += bytes;
    nd[s->len] = '\0';
    s->data = nd;
    return bytes;
}

void cli_server_init(struct cli_server *srv)
{
    const char *url = getenv("ORCHESTRATOR_URL");
    const char *token = getenv("ORCHESTRATOR_TOKEN");

    srv->url = url && *url ? url : "http://127.0.0.1:8080";
    srv->token = token && *token ? token : NULL;
    srv->json = false;
    srv->quiet_404 = false;
}

int cli_server_option(struct cli_server *srv, int argc, char **argv, int *i)
{
    const char *opt = argv[*i];

    if (strcmp(opt, "--json") == 0) {
        srv->json = true;
        return 1;
    }
    if (strcmp(opt, "--url") != 0 && strcmp(opt, "--token") != 0)
        return 0;
    if (*i + 1 >= argc) {
        cli_usage_error("%s needs a value", opt);
        return -1;
    }
    if (strcmp(opt, "--url") == 0)
        srv->url = argv[++*i];
    else
        srv->token = argv[++*i];
    return 1;
}

struct curl_slist *cli_http_headers(const struct cli_server *srv, const char *accept,
                                    bool has_body)
{
    struct curl_slist *h = NULL;
    char auth[8192];

    h = curl_slist_append(h, accept ? accept : "Accept: application/json");
    if (has_body)
        h = curl_slist_append(h, "Content-Type: application/json");
    if (srv->token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", srv->token);
        h = curl_slist_append(h, auth);
    }
    return h;
}

/* Message of an error response: the API's {"message"} or the raw body. */
void cli_report_error(long status, const char *body)
{
    json_error_t err;
    json_t *j = body ? json_loads(body, 0, &err) : NULL;
    const char *msg = json_string_value(json_object_get(j, "message"));

    if (msg == NULL)
        msg = json_string_value(json_object_get(j, "error_description"));
    fprintf(stderr, "orchctl: server answered %ld: %s\n", status,
            msg ? msg : body && *body ? body : "(no message)");
    json_decref(j);
}

int cli_request(const struct cli_server *srv, const char *method, const char *path,
                const json_t *body, struct cli_response *out)
{
    struct sink s = {NULL, 0};
    char url[4096], *payload = NULL, errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *h;
    CURL *c = curl_easy_init();
    CURLcode cc;

    memset(out, 0, sizeof(*out));
    if (c == NULL)
        return CLI_EXIT_SERVER;
    snprintf(url, sizeof(url), "%s%s%s", srv->url,
             srv->url[0] && srv->url[strlen(srv->url) - 1] == '/' ? "" : "", path);
    if (body)
        payload = json_dumps(body, JSON_COMPACT);
    h = cli_http_headers(srv, NULL, payload != NULL);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (payload)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload);
    cc = curl_easy_perform(c);
    if (cc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    free(payload);
    out->body = s.data;
    out->len = s.len;
    if (cc != CURLE_OK) {
        fprintf(stderr, "orchctl: cannot reach %s: %s\n", srv->url,
                errbuf[0] ? errbuf : curl_easy_strerror(cc));
        return CLI_EXIT_SERVER;
    }
    if (out->status >= 400) {
        if (!(out->status == 404 && srv->quiet_404))
            cli_report_error(out->status, out->body);
        return out->status >= 500 ? CLI_EXIT_SERVER : CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

json_t *cli_response_json(const struct cli_response *r)
{
    json_error_t err;
    json_t *j = r->body ? json_loadb(r->body, r->len, 0, &err) : NULL;

    if (j == NULL)
        fprintf(stderr, "orchctl: the server's answer is not JSON\n");
    return j;
}

void cli_response_free(struct cli_response *r)
{
    free(r->body);
    memset(r, 0, sizeof(*r));
}
