/*
 * The SSH client on the daemon's loop (host services, orc_ssh_api in
 * plugins/include/orc/driver.h): libssh2 sessions in non-blocking mode,
 * driven by uv_poll and uv_timer, one session per distinct target, reused
 * by every request and every site, with keepalive, a liveness check, bounded
 * reconnection with backoff, and host keys checked against known_hosts.
 * Requests are exec (a command with stdin, stdout, stderr and exit status)
 * and put (a file over SFTP). ssh_client.c: sessions; ssh_req.c: requests.
 */
#ifndef ORC_ENGINE_SSH_CLIENT_H
#define ORC_ENGINE_SSH_CLIENT_H

#include <uv.h>

#include "orc/driver.h"

struct orc_sshc;

/* Creates the client on loop. 0, or ORC_ENOMEM (or a libssh2 init failure:
 * ORC_ESSH). */
int orc_sshc_new(uv_loop_t *loop, struct orc_sshc **out);

/* Ends every request (their callbacks run with ORC_ECANCELED), closes every
 * session and handle; closed(ud) runs once everything is closed, then c is
 * freed. NULL-safe. */
void orc_sshc_close(struct orc_sshc *c, void (*closed)(void *ud), void *ud);

/* The requests of orc_ssh_api. owner tags them (a site) for
 * orc_sshc_abandon; stats (may be NULL) gets the counters. */
int orc_sshc_exec(struct orc_sshc *c, const void *owner, struct orc_ssh_stats *stats,
                  const struct orc_ssh_target *t, orc_ssh_req_t *req, const struct orc_ssh_exec *x);
int orc_sshc_put(struct orc_sshc *c, const void *owner, struct orc_ssh_stats *stats,
                 const struct orc_ssh_target *t, orc_ssh_req_t *req, const struct orc_ssh_put *p);
int orc_sshc_cancel(struct orc_sshc *c, orc_ssh_req_t *req);
void orc_sshc_release(orc_ssh_req_t *req);

/* Requests of owner still in flight are dropped: their callbacks never run
 * (the owner is gone). Returns how many. */
unsigned orc_sshc_abandon(struct orc_sshc *c, const void *owner);

/* Sessions open now (all owners). */
unsigned orc_sshc_open_sessions(const struct orc_sshc *c);

#endif
