/*
 * The deployments feed (feed.c): GET /deployments/changes, a live stream of the caller's
 * deployments as they change. The events module owns it and hands it every notify.
 */
#ifndef ORC_API_FEED_H
#define ORC_API_FEED_H

#include <stdint.h>

#include <uv.h>

#include "../store/store.h"
#include "api.h"

struct orc_feed;
struct orc_commit_s;

/* Over store, each change sent once commit made it durable (NULL: writes are durable on
 * return); a comment line every heartbeat_ms keeps streams open. ORC_ENOMEM. */
int orc_feed_new(uv_loop_t *loop, orc_store_t *store, struct orc_commit_s *commit,
                 uint64_t heartbeat_ms, struct orc_feed **out);
/* The deployment uuid changed (an event was stored about it). NULL-safe. */
void orc_feed_notify(struct orc_feed *f, const char *uuid);
/* Freed once its timers closed (run the loop); the api closed its streams before. */
void orc_feed_close(struct orc_feed *f);
/* Registers GET /deployments/changes. */
int orc_api_feed_register(orc_api_t *api, struct orc_feed *f);

#endif
