/*
 * Token buckets per caller (ratelimit.h): a chained hash table keyed by "issuer subject",
 * each bucket refilled lazily from the time it was last used.
 */
#include <math.h>
#include <string.h>

#include "../base.h"
#include "ratelimit.h"

#define RL_SLOTS 1024
#define RL_SWEEP_AT 65536 /* buckets kept before the full ones are dropped */

struct bucket {
    struct bucket *next;
    double tokens;
    uint64_t at_ms;
    char key[];
};

struct orc_ratelimit {
    double rate, burst;
    size_t count;
    struct bucket *slots[RL_SLOTS];
};

struct orc_ratelimit *orc_ratelimit_new(unsigned rate, unsigned burst)
{
    struct orc_ratelimit *rl = orc_calloc(1, sizeof(*rl));

    if (rl) {
        rl->rate = rate;
        rl->burst = burst ? burst : 1;
    }
    return rl;
}

void orc_ratelimit_free(struct orc_ratelimit *rl)
{
    if (rl == NULL)
        return;
    for (size_t i = 0; i < RL_SLOTS; i++)
        while (rl->slots[i]) {
            struct bucket *b = rl->slots[i];
            rl->slots[i] = b->next;
            orc_free(b);
        }
    orc_free(rl);
}

static size_t slot_of(const char *key)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */

    for (; *key; key++)
        h = (h ^ (unsigned char)*key) * 1099511628211ull;
    return (size_t)(h % RL_SLOTS);
}

static void refill(const struct orc_ratelimit *rl, struct bucket *b, uint64_t now_ms)
{
    if (now_ms > b->at_ms)
        b->tokens = fmin(rl->burst, b->tokens + rl->rate * (double)(now_ms - b->at_ms) / 1000.0);
    b->at_ms = now_ms;
}

/* Drops the buckets that are full again (their callers went quiet). */
static void sweep(struct orc_ratelimit *rl, uint64_t now_ms)
{
    for (size_t i = 0; i < RL_SLOTS; i++)
        for (struct bucket **p = &rl->slots[i]; *p;) {
            refill(rl, *p, now_ms);
            if ((*p)->tokens >= rl->burst) {
                struct bucket *gone = *p;
                *p = gone->next;
                orc_free(gone);
                rl->count--;
            } else {
                p = &(*p)->next;
            }
        }
}

static struct bucket *bucket_of(struct orc_ratelimit *rl, const char *key, uint64_t now_ms)
{
    size_t slot = slot_of(key), len = strlen(key);
    struct bucket *b;

    for (b = rl->slots[slot]; b; b = b->next)
        if (strcmp(b->key, key) == 0)
            return b;
    if (rl->count >= RL_SWEEP_AT)
        sweep(rl, now_ms);
    b = orc_malloc(sizeof(*b) + len + 1);
    if (b == NULL)
        return NULL;
    memcpy(b->key, key, len + 1);
    b->tokens = rl->burst;
    b->at_ms = now_ms;
    b->next = rl->slots[slot];
    rl->slots[slot] = b;
    rl->count++;
    return b;
}

bool orc_ratelimit_take(struct orc_ratelimit *rl, const char *key, uint64_t now_ms,
                        unsigned *retry_s)
{
    struct bucket *b;

    if (rl == NULL || rl->rate <= 0)
        return true;
    b = bucket_of(rl, key, now_ms);
    if (b == NULL) /* out of memory: not the caller's fault */
        return true;
    refill(rl, b, now_ms);
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        return true;
    }
    *retry_s = (unsigned)ceil((1.0 - b->tokens) / rl->rate);
    if (*retry_s == 0)
        *retry_s = 1;
    return false;
}
