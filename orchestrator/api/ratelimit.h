/*
 * Requests per second per user (docs/security.md): a token bucket per caller (issuer and
 * subject) that fills at limits.user_rate up to limits.user_burst; a request that finds
 * it empty is a 429 with Retry-After. Buckets of callers gone quiet are dropped once the
 * table is large. Loop thread only.
 */
#ifndef ORC_API_RATELIMIT_H
#define ORC_API_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct orc_ratelimit;

/* rate per second (0: never limits), burst at once. NULL on OOM. */
struct orc_ratelimit *orc_ratelimit_new(unsigned rate, unsigned burst);
void orc_ratelimit_free(struct orc_ratelimit *rl);
/* Takes one request of key at now_ms: true when it may go on; false with *retry_s (the
 * seconds until one is allowed again, at least 1). */
bool orc_ratelimit_take(struct orc_ratelimit *rl, const char *key, uint64_t now_ms,
                        unsigned *retry_s);

#endif
