/*
 * /ui/ (docs/ui.md): the web dashboard's files (ui/ in the source tree), built into the
 * daemon so that nothing is read at run time, served with a content security policy that
 * lets the page load only its own script and style and talk only to this server. Anyone
 * may fetch them: the page asks for a bearer token before the API answers it.
 */
#include <string.h>

#include "api.h"
#include "server.h"

#ifndef ORC_UI_DIR
#error "ORC_UI_DIR must name the directory of the dashboard's files"
#endif

#define ORC_UI_EMBED(sym, file)                                                                    \
    __asm__(".section .rodata\n"                                                                   \
            ".global " #sym "\n"                                                                   \
            ".balign 16\n" #sym ":\n"                                                              \
            ".incbin \"" ORC_UI_DIR "/" file "\"\n"                                                \
            ".global " #sym "_end\n" #sym "_end:\n"                                                \
            ".byte 0\n"                                                                            \
            ".previous\n")

ORC_UI_EMBED(orc__ui_index, "index.html");
ORC_UI_EMBED(orc__ui_app, "app.js");
ORC_UI_EMBED(orc__ui_style, "style.css");

extern const char orc__ui_index[], orc__ui_index_end[];
extern const char orc__ui_app[], orc__ui_app_end[];
extern const char orc__ui_style[], orc__ui_style_end[];

struct ui_file {
    const char *name;
    const char *type;
    const char *data, *end;
};

static const struct ui_file ui_files[] = {
    {"index.html", "text/html; charset=utf-8", orc__ui_index, orc__ui_index_end},
    {"app.js", "text/javascript; charset=utf-8", orc__ui_app, orc__ui_app_end},
    {"style.css", "text/css; charset=utf-8", orc__ui_style, orc__ui_style_end},
};

static const char csp[] = "default-src 'none'; script-src 'self'; style-src 'self'; "
                          "img-src 'self' https: data:; connect-src 'self'; "
                          "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

static int send_file(orc_api_req_t *req, const struct ui_file *f)
{
    int rc = orc_api_set_header(req, "content-security-policy", csp);

    if (rc == 0)
        rc = orc_api_set_header(req, "x-content-type-options", "nosniff");
    if (rc == 0)
        rc = orc_api_set_header(req, "referrer-policy", "no-referrer");
    if (rc == 0)
        rc = orc_api_set_header(req, "cache-control", "no-cache");
    if (rc < 0)
        return orc_api_req_fail(req, 500, "out of memory");
    return orc_api_send_body(req, 200, f->type, f->data, (size_t)(f->end - f->data));
}

static int get_file(orc_api_req_t *req, void *data)
{
    return send_file(req, data);
}

int orc_api_ui_register(orc_api_t *api)
{
    static const orc_api_response_doc_t page_docs[] = {
        {200, "The dashboard's page", "text/html", NULL}, {0, NULL, NULL, NULL}};
    static const orc_api_response_doc_t script_docs[] = {
        {200, "The dashboard's script", "text/javascript", NULL}, {0, NULL, NULL, NULL}};
    static const orc_api_response_doc_t style_docs[] = {
        {200, "The dashboard's style sheet", "text/css", NULL}, {0, NULL, NULL, NULL}};
    void *index = (void *)&ui_files[0], *app = (void *)&ui_files[1], *style = (void *)&ui_files[2];
    const orc_api_route_t routes[] = {
        {"GET", "/ui", get_file, index, "The web dashboard",
         "A single page over this API (docs/ui.md); it asks for a bearer token when the server "
         "wants one.",
         "Dashboard", NULL, NULL, page_docs, ORC_API_ACCESS_PUBLIC},
        {"GET", "/ui/index.html", get_file, index, "The web dashboard", NULL, "Dashboard", NULL,
         NULL, page_docs, ORC_API_ACCESS_PUBLIC},
        {"GET", "/ui/app.js", get_file, app, "The dashboard's script", NULL, "Dashboard", NULL,
         NULL, script_docs, ORC_API_ACCESS_PUBLIC},
        {"GET", "/ui/style.css", get_file, style, "The dashboard's style sheet", NULL, "Dashboard",
         NULL, NULL, style_docs, ORC_API_ACCESS_PUBLIC},
    };

    return orc_api_register_all(api, routes, sizeof(routes) / sizeof(routes[0]));
}
