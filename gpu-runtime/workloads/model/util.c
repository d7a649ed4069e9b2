/*
 * Small services of the model library (gm_model.h): errors with a message, the
 * CRC-32 of the checkpoint and the wire protocol, and the deterministic random
 * source (xoshiro256** seeded by splitmix64) the data and the weights come from.
 */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#include "gm_model.h"

int gm_failf(struct gm_error *err, int code, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return code;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;

        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t gm_crc32(uint32_t crc, const void *data, size_t n)
{
    const unsigned char *p = data;

    pthread_once(&crc_once, crc_init);
    crc = ~crc;
    for (size_t i = 0; i < n; i++)
        crc = crc_table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void gm_rng_seed(struct gm_rng *rng, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xD1B54A32D192ED03ull);

    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t gm_rng_next(struct gm_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double gm_rng_uniform(struct gm_rng *rng)
{
    return (double)(gm_rng_next(rng) >> 11) * 0x1.0p-53;
}

uint32_t gm_rng_below(struct gm_rng *rng, uint32_t n)
{
    /* multiply-shift: bias below 2^-32, fine for data generation */
    return (uint32_t)(((gm_rng_next(rng) >> 32) * (uint64_t)n) >> 32);
}

double gm_rng_normal(struct gm_rng *rng)
{
    double u1 = gm_rng_uniform(rng), u2 = gm_rng_uniform(rng);

    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}
