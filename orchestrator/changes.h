/*
 * Changes made through other daemons that share the store (PostgreSQL, docs/engine.md):
 * the store's notifications, read as its socket becomes readable (and every 250 ms,
 * for what arrived during the store's own queries), go to a function, the live event
 * streams' notify. A store without notifications (SQLite) needs nothing of this.
 */
#ifndef ORC_CHANGES_H
#define ORC_CHANGES_H

#include <uv.h>

#include "store/store.h"

struct orc_changes;
typedef void (*orc_changes_fn)(void *ud, const char *deployment_uuid);

/* Listens on store and watches it on loop. 0 and *out; ORC_ENOTSUP when the store has
 * no notifications (*out NULL, nothing to close); else the store's error. */
int orc_changes_start(uv_loop_t *loop, orc_store_t *store, orc_changes_fn fn, void *ud,
                      struct orc_changes **out);
/* Stops watching (before the store closes); freed once its handles closed. NULL-safe. */
void orc_changes_close(struct orc_changes *c);

#endif
