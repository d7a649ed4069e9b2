/*
 * Distributed data-parallel training for gpu-train: WORLD_SIZE processes
 * (ranks) train on their shards, and rank 0 averages their parameters over
 * TCP after every epoch (and every --sync-steps steps).
 *
 * Rank 0 listens on MASTER_PORT (on MASTER_ADDR when that is one of its own
 * addresses, else on all); the others connect to MASTER_ADDR:MASTER_PORT,
 * retrying until the connect timeout (GPU_TRAIN_CONNECT_TIMEOUT, 60 s).
 *
 * Every message is a frame: a 24-byte header then a payload, little-endian:
 *     0  u32 magic 0x4E525447 ("GTRN")     4  u16 protocol version (1)
 *     6  u16 type                          8  u32 sender's rank
 *    12  u32 round (0 for the handshake)  16  u64 payload length
 * Types and payloads:
 *   1 HELLO    rank -> 0: the run's fingerprint (64 bytes): u32 world, u32 rank,
 *              u64 parameter count, u32 inputs, hidden, classes, layers, u64 seed,
 *              u32 samples, batch, epochs, sync_steps, f32 lr, u32 optimizer.
 *              Rank 0 refuses a rank out of range, a duplicate or another run.
 *   2 WELCOME  0 -> rank, once every rank said HELLO (empty)
 *   3 PARAMS   rank -> 0, each round: f64 loss sum, u64 loss count, f32 params[P]
 *   4 AVERAGE  0 -> rank: the same layout, with the loss summed over the ranks
 *              and the parameters averaged (every rank then holds the same bits)
 *   5 ERROR    either way: UTF-8 text (at most 1024 bytes); the run stops
 * A rank that closes its connection, sends something else or stays silent
 * beyond the sync timeout (GPU_TRAIN_SYNC_TIMEOUT, 600 s) fails the run: rank 0
 * then sends ERROR to the others, which exit with that message. TCP keepalive
 * catches a peer host that vanished.
 */
#ifndef GR_TRAIN_DIST_H
#define GR_TRAIN_DIST_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#include "train.h"

#define GT_DIST_MAGIC 0x4E525447u
#define GT_DIST_PROTO 1
#define GT_DIST_HEADER 24
#define GT_DIST_HELLO_SIZE 64
#define GT_DIST_ERROR_MAX 1024

enum gt_dist_msg {
    GT_MSG_HELLO = 1,
    GT_MSG_WELCOME = 2,
    GT_MSG_PARAMS = 3,
    GT_MSG_AVERAGE = 4,
    GT_MSG_ERROR = 5,
};

struct gt_dist {
    uint32_t world, rank;
    int listen_fd; /* rank 0 while connecting; -1 otherwise */
    int *fds;      /* rank 0: fds[r] for rank r (fds[0] = -1); others: fds[0] */
    size_t n_params;
    uint32_t round; /* averages done */
    uint32_t sync_timeout_ms;
    unsigned char *buf; /* one frame */
    size_t buf_cap;
    double *acc;         /* rank 0: the sums */
    struct pollfd *pfd;  /* rank 0: one per rank */
    unsigned char *done; /* rank 0: which ranks sent this round */
    char peer[300];      /* "MASTER_ADDR:MASTER_PORT" for messages */
};

/* Joins the run c describes (c->world > 1): rank 0 waits for every other rank
 * to connect and say HELLO; the others connect and wait for WELCOME. d is
 * caller memory; release with gt_dist_close(). 0 or ORC_EIO / ORC_EINVAL /
 * ORC_ENOMEM with err. */
int gt_dist_open(struct gt_dist *d, const struct gt_config *c, size_t n_params,
                 struct gm_error *err);

/* One round: every rank passes its parameters (n_params floats) and its loss
 * sum and count; on return all of them hold the average and the totals. */
int gt_dist_average(struct gt_dist *d, float *params, double *loss_sum, uint64_t *loss_count,
                    struct gm_error *err);

/* Tells the other side(s) why this rank stops (best effort, never blocks
 * long), before gt_dist_close(). */
void gt_dist_abort(struct gt_dist *d, const char *why);

/* Closes the connections and frees d's buffers (NULL-safe, idempotent). */
void gt_dist_close(struct gt_dist *d);

/* The HELLO payload of the run c describes, into out[GT_DIST_HELLO_SIZE]. */
void gt_dist_hello_encode(const struct gt_config *c, size_t n_params, unsigned char *out);

/* A frame header into out[GT_DIST_HEADER]. */
void gt_dist_header_encode(unsigned char *out, uint16_t type, uint32_t rank, uint32_t round,
                           uint64_t len);

#endif
