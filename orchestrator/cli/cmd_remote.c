/*
 * orchctl commands that talk to orchestratord over its REST API (API.md):
 * deploy, list, show, watch, logs, outputs, template, resources, update,
 * delete, reset. Tables for people, the server's JSON with --json.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define MAX_ARGS 8

/* Options shared by the remote commands. */
struct remote_args {
    struct cli_server srv;
    const char *pos[MAX_ARGS]; /* positional arguments after the command */
    int npos;
    json_t *inputs;
    json_t *body_extra; /* callback, timeoutMins, ... */
    bool force;
    bool wait;
    bool all;
    bool deleting; /* watch after delete: 404 means done */
    int page, size;
};

static int set_int_field(struct remote_args *a, const char *field, const char *v)
{
    char *end;
    long n = strtol(v, &end, 10);

    if (*v == '\0' || *end || n < 1 || n > 1000000000)
        return cli_usage_error("%s wants a positive number, got '%s'", field, v);
    json_object_set_new(a->body_extra, field, json_integer(n));
    return 0;
}

static int parse_valued(struct remote_args *a, const char *opt, const char *v)
{
    if (strcmp(opt, "--inputs") == 0)
        return cli_input_kv(a->inputs, v);
    if (strcmp(opt, "--inputs-file") == 0)
        return cli_inputs_file(a->inputs, v);
    if (strcmp(opt, "--callback") == 0 || strcmp(opt, "--user-group") == 0) {
        json_object_set_new(a->body_extra, opt[2] == 'c' ? "callback" : "userGroup",
                            json_string(v));
        return 0;
    }
    if (strcmp(opt, "--timeout-mins") == 0)
        return set_int_field(a, "timeoutMins", v);
    if (strcmp(opt, "--provider-timeout-mins") == 0)
        return set_int_field(a, "providerTimeoutMins", v);
    if (strcmp(opt, "--max-providers-retry") == 0)
        return set_int_field(a, "maxProvidersRetry", v);
    if (strcmp(opt, "--page") == 0)
        return (a->page = atoi(v)) < 0 ? cli_usage_error("--page wants 0 or more") : 0;
    if (strcmp(opt, "--size") == 0)
        return (a->size = atoi(v)) < 1 ? cli_usage_error("--size wants 1 or more") : 0;
    return cli_usage_error("unknown option '%s'", opt);
}

static int parse_flag(struct remote_args *a, const char *opt)
{
    if (strcmp(opt, "--force") == 0)
        a->force = true;
    else if (strcmp(opt, "--wait") == 0)
        a->wait = true;
    else if (strcmp(opt, "--all") == 0)
        a->all = true;
    else if (strcmp(opt, "--keep-last-attempt") == 0)
        json_object_set_new(a->body_extra, "keepLastAttempt", json_true());
    else
        return -1;
    return 0;
}

static int parse_remote(struct remote_args *a, int argc, char **argv)
{
    memset(a, 0, sizeof(*a));
    cli_server_init(&a->srv);
    a->inputs = json_object();
    a->body_extra = json_object();
    a->size = 20;
    for (int i = 1; i < argc; i++) {
        int rc = cli_server_option(&a->srv, argc, argv, &i);
        if (rc < 0)
            return CLI_EXIT_USAGE;
        if (rc > 0)
            continue;
        if (strncmp(argv[i], "--", 2) != 0) {
            if (a->npos == MAX_ARGS)
                return cli_usage_error("too many arguments");
            a->pos[a->npos++] = argv[i];
        } else if (parse_flag(a, argv[i]) < 0) {
            if (i + 1 >= argc)
                return cli_usage_error("unknown option '%s' or missing value", argv[i]);
            rc = parse_valued(a, argv[i], argv[i + 1]);
            i++;
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

static void free_remote(struct remote_args *a)
{
    json_decref(a->inputs);
    json_decref(a->body_extra);
}

static int need_id(const struct remote_args *a, const char *cmd)
{
    if (a->npos < 1)
        return cli_usage_error("%s needs a deployment id", cmd);
    if (strlen(a->pos[0]) > 64 || strspn(a->pos[0], "0123456789abcdefABCDEF-") !=
                                      strlen(a->pos[0]))
        return cli_usage_error("'%s' is not a deployment id", a->pos[0]);
    return 0;
}

static const char *str(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* Prints a JSON value, or the raw body, for --json. */
static void print_raw(const struct cli_response *r)
{
    if (r->body)
        fwrite(r->body, 1, r->len, stdout);
    if (r->len && r->body[r->len - 1] != '\n')
        fputc('\n', stdout);
}

static void print_deployment(const json_t *d)
{
    const json_t *outputs = json_object_get(d, "outputs");
    const char *k;
    json_t *v;

    printf("uuid:           %s\n", str(d, "uuid"));
    printf("status:         %s\n", str(d, "status"));
    if (*str(d, "statusReason"))
        printf("status reason:  %s\n", str(d, "statusReason"));
    printf("created:        %s\n", str(d, "creationTime"));
    printf("updated:        %s\n", str(d, "updateTime"));
    if (*str(d, "cloudProviderName"))
        printf("site:           %s\n", str(d, "cloudProviderName"));
    if (json_object_size(outputs))
        printf("outputs:\n");
    json_object_foreach((json_t *)outputs, k, v)
    {
        char *text = json_is_string(v) ? NULL : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        printf("  %s: %s\n", k, text ? text : json_string_value(v));
        free(text);
    }
}

static double num(const json_t *o, const char *k)
{
    return json_number_value(json_object_get(o, k));
}

/* GET .../usage, for people: the totals, each site, each interval. */
static void print_usage(const json_t *u)
{
    size_t i;
    json_t *v;

    printf("node hours:  %.4f\n", num(u, "nodeHours"));
    printf("GPU hours:   %.4f\n", num(u, "gpuHours"));
    json_array_foreach(json_object_get(u, "sites"), i, v)
        printf("site %s: %.4f node hours, %.4f GPU hours\n", str(v, "site"), num(v, "nodeHours"),
               num(v, "gpuHours"));
    json_array_foreach(json_object_get(u, "intervals"), i, v)
    {
        json_int_t gpus = json_integer_value(json_object_get(v, "gpus"));
        printf("  %s[%lld] at %s, %lld GPU%s%s%s: %s to %s, %.4f h\n", str(v, "node"),
               (long long)json_integer_value(json_object_get(v, "index")), str(v, "site"),
               (long long)gpus, gpus == 1 ? "" : "s", *str(v, "gpuModel") ? " " : "",
               str(v, "gpuModel"), str(v, "start"),
               json_is_true(json_object_get(v, "held")) ? "now (held)" : str(v, "end"),
               num(v, "hours"));
    }
}

static int watch(const struct remote_args *a)
{
    return cli_watch(&a->srv, a->pos[0], a->deleting);
}

/* ---- the commands ---- */

static json_t *request_body(struct remote_args *a, const char *template_path, int *rc)
{
    char *text = NULL;
    size_t len = 0;
    json_t *body;

    *rc = 0;
    if (template_path && cli_read_file(template_path, &text, &len) < 0) {
        *rc = cli_usage_error("cannot read template '%s'", template_path);
        return NULL;
    }
    body = json_deep_copy(a->body_extra);
    if (text)
        json_object_set_new(body, "template", json_stringn(text, len));
    json_object_set(body, "parameters", a->inputs);
    free(text);
    return body;
}

static int do_deploy(struct remote_args *a)
{
    struct cli_response r;
    json_t *body, *d;
    int rc;

    if (a->npos != 1)
        return cli_usage_error("deploy takes one template file");
    body = request_body(a, a->pos[0], &rc);
    if (body == NULL)
        return rc;
    rc = cli_request(&a->srv, "POST", "/deployments", body, &r);
    json_decref(body);
    d = rc == CLI_EXIT_OK ? cli_response_json(&r) : NULL;
    if (d && a->srv.json && !a->wait)
        print_raw(&r);
    else if (d && !a->wait)
        printf("%s\n", str(d, "uuid"));
    if (d && a->wait) {
        a->pos[0] = str(d, "uuid");
        printf("deployment %s\n", a->pos[0]);
        rc = watch(a);
    }
    json_decref(d);
    cli_response_free(&r);
    return d || rc != CLI_EXIT_OK ? rc : CLI_EXIT_SERVER;
}

static void print_list(const json_t *page)
{
    const json_t *content = json_object_get(page, "content"), *d;
    const json_t *info = json_object_get(page, "page");
    size_t i;

    printf("%-36s  %-20s  %-21s  %s\n", "UUID", "STATUS", "CREATED", "SITE");
    json_array_foreach(content, i, d) printf("%-36s  %-20s  %-21s  %s\n", str(d, "uuid"),
                                             str(d, "status"), str(d, "creationTime"),
                                             str(d, "cloudProviderName"));
    printf("page %lld of %lld, %lld deployments\n",
           (long long)json_integer_value(json_object_get(info, "number")) + 1,
           (long long)json_integer_value(json_object_get(info, "totalPages")),
           (long long)json_integer_value(json_object_get(info, "totalElements")));
}

static int do_list(struct remote_args *a)
{
    struct cli_response r;
    char path[256];
    json_t *page;
    int rc;

    snprintf(path, sizeof(path), "/deployments?page=%d&size=%d%s", a->page, a->size,
             a->all ? "" : "&createdBy=me");
    rc = cli_request(&a->srv, "GET", path, NULL, &r);
    if (rc == CLI_EXIT_OK && a->srv.json) {
        print_raw(&r);
    } else if (rc == CLI_EXIT_OK) {
        page = cli_response_json(&r);
        if (page)
            print_list(page);
        rc = page ? rc : CLI_EXIT_SERVER;
        json_decref(page);
    }
    cli_response_free(&r);
    return rc;
}

/* GET of a deployment (or its usage: suffix "/usage") printed for people with
 * pretty, else any sub-resource raw (and every answer raw with --json). */
static int get_and_print(struct remote_args *a, const char *suffix, bool pretty)
{
    struct cli_response r;
    char path[256];
    int rc;

    snprintf(path, sizeof(path), "/deployments/%s%s", a->pos[0], suffix);
    rc = cli_request(&a->srv, "GET", path, NULL, &r);
    if (rc == CLI_EXIT_OK && pretty && !a->srv.json) {
        json_t *d = cli_response_json(&r);
        if (d && strcmp(suffix, "/usage") == 0)
            print_usage(d);
        else if (d)
            print_deployment(d);
        rc = d ? rc : CLI_EXIT_SERVER;
        json_decref(d);
    } else if (rc == CLI_EXIT_OK) {
        print_raw(&r);
    }
    cli_response_free(&r);
    return rc;
}

static int do_change(struct remote_args *a, const char *cmd)
{
    struct cli_response r;
    char path[256];
    json_t *body = NULL;
    const char *method = "DELETE";
    int rc = 0;

    snprintf(path, sizeof(path), "/deployments/%s%s", a->pos[0],
             strcmp(cmd, "delete") == 0 && a->force ? "?force=true" : "");
    if (strcmp(cmd, "update") == 0) {
        method = "PUT";
        body = request_body(a, a->npos > 1 ? a->pos[1] : NULL, &rc);
        if (body == NULL)
            return rc;
    } else if (strcmp(cmd, "reset") == 0) {
        method = "PATCH";
        body = json_pack("{s:s}", "status", "DELETE_FAILED");
    }
    rc = cli_request(&a->srv, method, path, body, &r);
    json_decref(body);
    cli_response_free(&r);
    a->deleting = strcmp(cmd, "delete") == 0;
    a->srv.quiet_404 = a->deleting;
    if (rc == CLI_EXIT_OK && a->wait)
        return watch(a);
    if (rc == CLI_EXIT_OK && !a->srv.json)
        printf("%s: %s accepted\n", a->pos[0], cmd);
    return rc;
}

int cmd_remote(int argc, char **argv)
{
    const char *cmd = argv[0];
    struct remote_args a;
    int rc = parse_remote(&a, argc, argv);

    if (rc == 0 && strcmp(cmd, "deploy") == 0)
        rc = do_deploy(&a);
    else if (rc == 0 && strcmp(cmd, "list") == 0)
        rc = do_list(&a);
    else if (rc == 0 && (rc = need_id(&a, cmd)) == 0) {
        if (strcmp(cmd, "show") == 0)
            rc = get_and_print(&a, "", true);
        else if (strcmp(cmd, "watch") == 0)
            rc = watch(&a);
        else if (strcmp(cmd, "logs") == 0)
            rc = get_and_print(&a, "/log", false);
        else if (strcmp(cmd, "outputs") == 0)
            rc = get_and_print(&a, "/outputs", false);
        else if (strcmp(cmd, "template") == 0)
            rc = get_and_print(&a, "/template", false);
        else if (strcmp(cmd, "resources") == 0)
            rc = get_and_print(&a, "/resources", false);
        else if (strcmp(cmd, "usage") == 0)
            rc = get_and_print(&a, "/usage", true);
        else
            rc = do_change(&a, cmd);
    }
    free_remote(&a);
    return rc;
}
