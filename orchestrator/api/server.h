/*
 * The HTTP API's lifecycle, as the daemon drives it: create (routes may be
 * registered from then on), start listening, shut down gracefully, free.
 * The server is libh2o 2.2 on the daemon's libuv loop: HTTP/1.1 with
 * keep-alive, limits from the configuration, JSON errors for everything it
 * refuses.
 *
 * Shutdown: orc_api_shutdown() closes the listeners, makes every response
 * from then on close its connection, closes idle keep-alive connections, and
 * lets requests in flight finish until limits.shutdown_timeout; then it
 * answers deferred requests with 503 and closes what is left. closed_cb runs
 * once everything is closed (a later loop iteration). The loop must then be
 * run until it has no more handles (close callbacks), and only after that
 * may orc_api_free() be called.
 */
#ifndef ORC_API_SERVER_H
#define ORC_API_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "../config.h"
#include "api.h"

/* Creates the api with the built-in endpoints (/, /info, /configuration,
 * /healthz, /readyz, /metrics, /openapi.json). cfg must outlive the api.
 * Returns 0 and *out, or ORC_ENOMEM. Nothing is bound yet. */
int orc_api_new(uv_loop_t *loop, const orc_config_t *cfg, orc_api_t **out);

/* Registers /ui (the web dashboard, ui.c). 0 or an ORC_E* code. */
int orc_api_ui_register(orc_api_t *api);

/* Binds and listens on every configured address, then logs
 * "listening on http://ADDR:PORT" for each (the bound port when 0 was
 * asked). Returns 0 or a libuv error code (UV_EADDRINUSE, ...) after logging
 * which address failed; on failure listeners opened so far are closing and
 * the loop must run before orc_api_free(). */
int orc_api_start(orc_api_t *api);

/* Number of listeners and the port the i-th one is bound to. */
size_t orc_api_listener_count(const orc_api_t *api);
uint16_t orc_api_listener_port(const orc_api_t *api, size_t i);

typedef void (*orc_api_closed_fn)(orc_api_t *api, void *data);

/* Starts the graceful shutdown (see above) of an api that orc_api_start()
 * started; otherwise it only marks the api as draining and closed_cb never
 * runs. A second call does nothing; orc_api_shutdown_now() cuts the grace
 * period short. */
void orc_api_shutdown(orc_api_t *api, orc_api_closed_fn closed_cb, void *data);
/* Ends the grace period now: deferred requests get 503, connections close. */
void orc_api_shutdown_now(orc_api_t *api);

/* Frees the api (NULL-safe). Only when it never started, or after closed_cb
 * ran and the loop has run its close callbacks. */
void orc_api_free(orc_api_t *api);

/* Reads tls.cert_file and tls.key_file again (a renewed certificate) and serves them to
 * the connections accepted from now on; those open keep theirs. 0, or ORC_ENOTSUP (the
 * API is not on TLS) or ORC_EINVAL (the key's mode, a file that is not PEM, a key that is
 * not the certificate's) with err saying why; then the certificate in use stays. */
int orc_api_reload_tls(orc_api_t *api, char *err, size_t errlen);

/* A readiness flag of the daemon itself, reported by /readyz as "daemon". */
void orc_api_set_ready(orc_api_t *api, bool ready);

#endif
