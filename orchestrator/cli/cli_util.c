/* Helpers orchctl's commands share: files, inputs, diagnostics. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define CLI_MAX_FILE (64u << 20)

int cli_read_file(const char *path, char **data, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    size_t cap = 65536, n;
    char *buf = NULL;

    *data = NULL;
    *len = 0;
    if (fp == NULL)
        return -1;
    for (;;) {
        char *nb = realloc(buf, cap + 1);
        if (nb == NULL)
            goto out_fail;
        buf = nb;
        n = fread(buf + *len, 1, cap - *len, fp);
        *len += n;
        if (*len < cap)
            break; /* end of file (or a read error, checked below) */
        if (cap >= CLI_MAX_FILE) {
            errno = EFBIG;
            goto out_fail;
        }
        cap *= 2;
    }
    if (ferror(fp))
        goto out_fail;
    fclose(fp);
    buf[*len] = '\0';
    *data = buf;
    return 0;
out_fail:
    n = (size_t)errno;
    free(buf);
    fclose(fp);
    errno = (int)n;
    *len = 0;
    return -1;
}

void cli_print_diags(const tosca_diags_t *d, FILE *out)
{
    char buf[4096];

    for (size_t i = 0; i < d->count; i++)
        fprintf(out, "%s\n", tosca_diag_format(&d->items[i], buf, sizeof(buf)));
    if (d->dropped)
        fprintf(out, "(%zu more not shown)\n", d->dropped);
}

int cli_inputs_file(json_t *inputs, const char *path)
{
    char *data = NULL;
    size_t len = 0;
    json_t *j = NULL;
    tosca_diags_t d;
    int rc;

    if (cli_read_file(path, &data, &len) < 0)
        return cli_usage_error("cannot read inputs file '%s': %s", path, strerror(errno));
    tosca_diags_init(&d, false);
    rc = tosca_yaml_to_json(path, data, len, &j, &d);
    free(data);
    if (rc == 0 && !json_is_object(j) && !json_is_null(j)) {
        fprintf(stderr, "orchctl: %s: inputs must be a mapping of input names to values\n",
                path);
        rc = -1;
    }
    cli_print_diags(&d, stderr);
    tosca_diags_fini(&d);
    if (rc == 0 && j)
        json_object_update(inputs, j);
    json_decref(j);
    return rc == 0 ? 0 : CLI_EXIT_USAGE;
}

int cli_input_kv(json_t *inputs, const char *kv)
{
    const char *eq = strchr(kv, '=');
    char key[256];
    json_t *v = NULL;
    tosca_diags_t d;
    int rc;

    if (eq == NULL || eq == kv || (size_t)(eq - kv) >= sizeof(key))
        return cli_usage_error("--inputs wants KEY=VALUE, got '%s'", kv);
    snprintf(key, sizeof(key), "%.*s", (int)(eq - kv), kv);
    tosca_diags_init(&d, false);
    rc = tosca_yaml_to_json("--inputs", eq + 1, strlen(eq + 1), &v, &d);
    tosca_diags_fini(&d);
    if (rc < 0 || v == NULL || json_is_null(v)) {
        json_decref(v);
        v = json_string(eq + 1); /* not YAML: take the text as it is */
    }
    json_object_set_new(inputs, key, v);
    return 0;
}
