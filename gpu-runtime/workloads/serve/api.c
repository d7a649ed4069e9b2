/*
 * The DEEPaaS v2 model API of gpu-serve (routes in serve.h): version and
 * model metadata in the shape DEEPaaS answers (id, name, description,
 * license, author, version, links), and predict, which checks its input to
 * the last value and says exactly what is wrong with a bad one.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "../../../orchestrator/base.h"
#include "serve.h"

#define JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(9))

void gs_config_default(struct gs_config *c)
{
    memset(c, 0, sizeof(*c));
    c->host = "127.0.0.1";
    c->port = 5000;
    c->max_rows = 1024;
    c->max_body = 1u << 20;
    c->max_header = 16u << 10;
    c->max_conns = 256;
    c->idle_ms = 30000;
    c->request_ms = 10000;
}

static int app_finish(struct gs_app *app, const char *name, struct gm_error *err)
{
    const char *n = name && *name ? name : app->model.name;

    if (strlen(n) >= sizeof(app->name) || strchr(n, '/') || strchr(n, '?') || strchr(n, '%') ||
        strchr(n, ' ')) {
        gm_model_free(&app->model);
        return gm_failf(err, ORC_EINVAL,
                        "--name '%.80s': at most 63 characters, no '/', '?', '%%' or space", n);
    }
    snprintf(app->name, sizeof(app->name), "%s", n);
    if (app->license[0] == '\0')
        snprintf(app->license, sizeof(app->license), "not specified");
    app->max_rows = app->max_rows ? app->max_rows : 1024;
    app->work = orc_malloc(gm_forward_work_size(&app->model) * sizeof(float));
    if (app->work == NULL) {
        gm_model_free(&app->model);
        return gm_failf(err, ORC_ENOMEM, "out of memory");
    }
    return 0;
}

int gs_app_load(struct gs_app *app, const char *path, const char *name, struct gm_error *err)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    int rc;

    rc = gm_checkpoint_load(&app->model, path, err);
    if (rc < 0)
        return rc;
    /* the file's CRC is the model's version: encoding is deterministic */
    if (gm_checkpoint_encode(&app->model, &buf, &len) == 0)
        app->file_crc = gm_crc32(0, buf, len);
    orc_free(buf);
    return app_finish(app, name, err);
}

int gs_app_from_model(struct gs_app *app, const struct gm_model *m, const char *name,
                      struct gm_error *err)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    int rc = gm_checkpoint_encode(m, &buf, &len);

    if (rc < 0)
        return gm_failf(err, rc, "out of memory");
    rc = gm_checkpoint_decode(&app->model, buf, len, err);
    app->file_crc = gm_crc32(0, buf, len);
    orc_free(buf);
    return rc < 0 ? rc : app_finish(app, name, err);
}

void gs_app_free(struct gs_app *app)
{
    if (app == NULL)
        return;
    gm_model_free(&app->model);
    orc_free(app->work);
    app->work = NULL;
}

/* ---- responses ---- */

static char *dump(json_t *j)
{
    char *text = j ? json_dumps(j, JSON_FLAGS) : NULL;

    json_decref(j);
    return text;
}

char *gs_error_body(const char *msg)
{
    return dump(json_pack("{s:s, s:s}", "status", "error", "message", msg));
}

static void respond(struct gs_response *resp, int status, json_t *j)
{
    resp->status = status;
    resp->body = dump(j);
    if (resp->body == NULL) {
        resp->status = 500;
        resp->body = NULL; /* the server answers 500 with a fixed body */
    }
}

static void fail(struct gs_response *resp, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(struct gs_response *resp, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    resp->status = status;
    resp->body = gs_error_body(msg);
}

/* ---- metadata ---- */

static json_t *version_doc(void)
{
    return json_pack("{s:s, s:s, s:[{s:s, s:s, s:s}]}", "version", "stable", "id", "v2", "links",
                     "rel", "self", "type", "application/json", "href", "/v2/");
}

static json_t *model_meta(const struct gs_app *app)
{
    const struct gm_model *m = &app->model;
    const struct gm_train_info *in = &m->info;
    char desc[512], self[128], predict[160], version[16];
    json_t *hidden = json_array(), *j;

    for (uint32_t l = 1; l <= m->n_hidden; l++)
        json_array_append_new(hidden, json_integer(m->dims[l]));
    snprintf(desc, sizeof(desc),
             "MLP classifier trained by gpu-train: %u inputs, %u hidden layers of %u (ReLU), %u "
             "classes (softmax); %u epochs on %u samples of %u interleaved spirals, held-out "
             "accuracy %.3f",
             m->inputs, m->n_hidden, m->hidden, m->classes, in->epochs, in->samples, m->classes,
             (double)in->final_accuracy);
    snprintf(self, sizeof(self), "/v2/models/%s/", app->name);
    snprintf(predict, sizeof(predict), "/v2/models/%s/predict/", app->name);
    snprintf(version, sizeof(version), "%08x", app->file_crc);
    j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:[{s:s, s:s, s:s}, {s:s, s:s, s:s}], "
                  "s:i, s:i, s:o, s:I, s:i}",
                  "id", app->name, "name", app->name, "description", desc, "license", app->license,
                  "author", "gpu-train", "version", version, "links", "rel", "self", "type",
                  "application/json", "href", self, "rel", "predict", "type", "application/json",
                  "href", predict, "inputs", (int)m->inputs, "classes", (int)m->classes,
                  "hidden_layers", hidden, "params", (json_int_t)m->n_params, "max_rows",
                  (int)app->max_rows);
    if (j == NULL)
        return NULL;
    json_object_set_new(j, "training",
                        json_pack("{s:i, s:i, s:i, s:i, s:f, s:s, s:s, s:f, s:f, s:I}", "epochs",
                                  (int)in->epochs, "samples", (int)in->samples, "world_size",
                                  (int)in->world_size, "batch", (int)in->batch, "lr",
                                  (double)in->lr, "optimizer", in->optimizer, "device", in->device,
                                  "final_loss", (double)in->final_loss, "final_accuracy",
                                  (double)in->final_accuracy, "seed", (json_int_t)in->seed));
    json_object_set_new(
        j, "input_format",
        json_pack("{s:s, s:s}", "inputs", "[[x1, ..., xD], ...]", "input", "[x1, ..., xD]"));
    return j;
}

/* ---- predict ---- */

/* The rows of inputs into a new array x [n][D]; false with resp filled. */
static bool read_rows(struct gs_app *app, json_t *inputs, const char *key, float **x, size_t *n,
                      struct gs_response *resp)
{
    const uint32_t d = app->model.inputs;
    bool single = json_is_array(inputs) && json_array_size(inputs) > 0 &&
                  !json_is_array(json_array_get(inputs, 0));
    size_t rows = single ? 1 : json_array_size(inputs);

    if (!json_is_array(inputs)) {
        fail(resp, 400, "\"%s\" must be a list of rows of %u numbers", key, d);
        return false;
    }
    if (rows == 0) {
        fail(resp, 400, "\"%s\" is empty: give at least one row of %u numbers", key, d);
        return false;
    }
    if (rows > app->max_rows) {
        fail(resp, 400, "too many rows: %zu; at most %u per request", rows, app->max_rows);
        return false;
    }
    *x = orc_malloc(rows * d * sizeof(float));
    if (*x == NULL) {
        fail(resp, 503, "out of memory");
        return false;
    }
    for (size_t r = 0; r < rows; r++) {
        json_t *row = single ? inputs : json_array_get(inputs, r);
        char where[48];

        if (single)
            snprintf(where, sizeof(where), "%s", key);
        else
            snprintf(where, sizeof(where), "%s[%zu]", key, r);
        if (!json_is_array(row)) {
            fail(resp, 400, "%s is not a list of %u numbers", where, d);
            goto out_free;
        }
        if (json_array_size(row) != d) {
            fail(resp, 400, "%s has %zu values; the model takes %u", where, json_array_size(row),
                 d);
            goto out_free;
        }
        for (uint32_t i = 0; i < d; i++) {
            json_t *v = json_array_get(row, i);
            double f = json_number_value(v);

            if (!json_is_number(v)) {
                fail(resp, 400, "%s[%u] is not a number", where, i);
                goto out_free;
            }
            if (!isfinite(f) || fabs(f) > 3.0e38) {
                fail(resp, 400, "%s[%u] = %g is outside the float range", where, i, f);
                goto out_free;
            }
            (*x)[r * d + i] = (float)f;
        }
    }
    *n = rows;
    return true;
out_free:
    orc_free(*x);
    *x = NULL;
    return false;
}

static void predict_rows(struct gs_app *app, const float *x, size_t n, struct gs_response *resp)
{
    const uint32_t k = app->model.classes;
    float *probs = orc_malloc(n * k * sizeof(float));
    uint32_t *labels = orc_malloc(n * sizeof(uint32_t));
    json_t *preds = json_array();

    if (probs == NULL || labels == NULL || preds == NULL) {
        fail(resp, 503, "out of memory");
        goto out_free;
    }
    gm_forward(&app->model, x, n, probs, labels, app->work);
    for (size_t r = 0; r < n; r++) {
        json_t *p = json_array();

        for (uint32_t j = 0; j < k; j++)
            json_array_append_new(p, json_real((double)probs[r * k + j]));
        json_array_append_new(preds,
                              json_pack("{s:i, s:o}", "label", (int)labels[r], "probabilities", p));
    }
    respond(resp, 200, json_pack("{s:s, s:o}", "status", "OK", "predictions", preds));
    preds = NULL;
out_free:
    json_decref(preds);
    orc_free(probs);
    orc_free(labels);
}

enum form_kind { FORM_URLENCODED, FORM_MULTIPART };

/* {"inputs" or "input": the JSON in that form field}; NULL with resp filled. */
static json_t *form_doc(enum form_kind kind, const char *text, size_t len, const char *ct,
                        const char *where, struct gs_response *resp)
{
    static const char *const fields[] = {"inputs", "input"};
    char *val = NULL;
    size_t vlen = 0;
    json_error_t je;
    json_t *v;
    int rc = ORC_ENOTFOUND;
    size_t f;

    for (f = 0; f < 2 && rc == ORC_ENOTFOUND; f++)
        rc = kind == FORM_MULTIPART ? gs_multipart_field(text, len, ct, fields[f], &val, &vlen)
                                    : gs_form_field(text, len, fields[f], &val, &vlen);
    if (rc == ORC_ENOTFOUND) {
        fail(resp, 400, "the %s has no field \"inputs\" (JSON text: [[x1, ..., xD], ...])", where);
        return NULL;
    }
    if (rc < 0) {
        fail(resp, rc == ORC_ENOMEM ? 503 : 400, "the %s is not well-formed %s", where,
             kind == FORM_MULTIPART ? "multipart/form-data" : "urlencoded text");
        return NULL;
    }
    v = json_loadb(val, vlen, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
    orc_free(val);
    if (v == NULL) {
        fail(resp, 400, "field \"%s\" is not JSON: %s (column %d)", fields[f - 1], je.text,
             je.column);
        return NULL;
    }
    return json_pack("{s:o}", fields[f - 1], v);
}

/* The JSON document of a predict request, by content type; NULL with resp filled. */
static json_t *predict_doc(const struct gs_request *req, struct gs_response *resp)
{
    const char *ct = req->content_type ? req->content_type : "application/json";
    size_t skip = 0;
    json_error_t je;
    json_t *doc;

    while (skip < req->body_len && strchr(" \t\r\n", req->body[skip]))
        skip++;
    if (skip == req->body_len && req->query && *req->query) /* DEEPaaS puts arguments there */
        return form_doc(FORM_URLENCODED, req->query, strlen(req->query), NULL, "query string",
                        resp);
    if (strncasecmp(ct, "multipart/form-data", 19) == 0)
        return form_doc(FORM_MULTIPART, req->body, req->body_len, ct, "form", resp);
    /* a form, unless it is JSON sent with curl -d's default type */
    if (strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0 &&
        !(skip < req->body_len && req->body[skip] == '{'))
        return form_doc(FORM_URLENCODED, req->body, req->body_len, NULL, "form", resp);
    if (strncasecmp(ct, "application/json", 16) != 0 && strncasecmp(ct, "text/plain", 10) != 0 &&
        strncasecmp(ct, "application/x-www-form-urlencoded", 33) != 0) {
        fail(resp, 415, "Content-Type %.64s: send application/json (or a form field inputs)", ct);
        return NULL;
    }
    if (skip == req->body_len) {
        fail(resp, 400, "empty body: send {\"inputs\": [[x1, ..., xD], ...]}");
        return NULL;
    }
    doc = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &je);
    if (doc == NULL)
        fail(resp, 400, "the body is not JSON: %s (line %d, column %d)", je.text, je.line,
             je.column);
    return doc;
}

static void predict(struct gs_app *app, const struct gs_request *req, struct gs_response *resp)
{
    json_t *doc = predict_doc(req, resp), *inputs;
    const char *key = "inputs";
    float *x = NULL;
    size_t n = 0;

    if (doc == NULL)
        return;
    if (!json_is_object(doc)) {
        fail(resp, 400, "the body must be a JSON object: {\"inputs\": [[x1, ..., x%u], ...]}",
             app->model.inputs);
        goto out;
    }
    inputs = json_object_get(doc, "inputs");
    if (inputs == NULL) {
        key = "input";
        inputs = json_object_get(doc, "input");
        if (inputs && json_is_array(inputs) && json_is_array(json_array_get(inputs, 0))) {
            fail(resp, 400, "\"input\" is one row of %u numbers; use \"inputs\" for several",
                 app->model.inputs);
            goto out;
        }
    }
    if (inputs == NULL) {
        fail(resp, 400, "missing \"inputs\" (a list of rows of %u numbers) or \"input\" (one row)",
             app->model.inputs);
        goto out;
    }
    if (read_rows(app, inputs, key, &x, &n, resp))
        predict_rows(app, x, n, resp);
out:
    orc_free(x);
    json_decref(doc);
}

/* ---- routing ---- */

/* path without its trailing slash into out; false when too long. */
static bool trim(const char *path, char *out, size_t len)
{
    size_t n = strlen(path);

    while (n > 1 && path[n - 1] == '/')
        n--;
    if (n >= len)
        return false;
    memcpy(out, path, n);
    out[n] = '\0';
    return true;
}

static bool method_is(const struct gs_request *req, const char *m)
{
    return strcmp(req->method, m) == 0;
}

static bool get_like(const struct gs_request *req)
{
    return method_is(req, "GET") || method_is(req, "HEAD");
}

static void not_allowed(struct gs_response *resp, const struct gs_request *req, const char *allow)
{
    fail(resp, 405, "%s is not allowed here; use %s", req->method, allow);
    resp->allow = allow;
}

/* /v2/models/NAME[/predict] */
static void model_route(struct gs_app *app, const struct gs_request *req, const char *rest,
                        struct gs_response *resp)
{
    const char *slash = strchr(rest, '/');
    size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
    const char *sub = slash ? slash + 1 : "";

    if (*sub && strcmp(sub, "predict") != 0) {
        fail(resp, 404, "no route %s %s (see GET /v2/models/)", req->method, req->path);
        return;
    }
    if (n != strlen(app->name) || strncmp(rest, app->name, n) != 0) {
        fail(resp, 404, "no model named '%.*s'; this server has '%s'", (int)(n > 64 ? 64 : n), rest,
             app->name);
        return;
    }
    if (*sub == '\0') {
        if (!get_like(req))
            not_allowed(resp, req, "GET, HEAD");
        else
            respond(resp, 200, model_meta(app));
        return;
    }
    if (!method_is(req, "POST"))
        not_allowed(resp, req, "POST");
    else
        predict(app, req, resp);
}

void gs_handle(struct gs_app *app, const struct gs_request *req, struct gs_response *resp)
{
    char path[512];

    memset(resp, 0, sizeof(*resp));
    if (!trim(req->path, path, sizeof(path))) {
        fail(resp, 404, "no such route (path too long)");
        return;
    }
    if (strncmp(path, "/v2/models/", 11) == 0 && path[11] != '\0') {
        model_route(app, req, path + 11, resp);
        return;
    }
    const bool root = strcmp(path, "/") == 0, v2 = strcmp(path, "/v2") == 0,
               models = strcmp(path, "/v2/models") == 0;
    if (!root && !v2 && !models) {
        fail(resp, 404, "no route %s %.200s (the API is under /v2/)", req->method, req->path);
        return;
    }
    if (!get_like(req)) {
        not_allowed(resp, req, "GET, HEAD");
        return;
    }
    if (root)
        respond(resp, 200, json_pack("{s:[o]}", "versions", version_doc()));
    else if (v2)
        respond(resp, 200, version_doc());
    else
        respond(resp, 200, json_pack("{s:[o]}", "models", model_meta(app)));
}
