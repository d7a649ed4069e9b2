/*
 * Little-endian encoding of integers and floats, byte by byte, so that the
 * checkpoint and gpu-train's wire protocol read the same on any host.
 * Header-only (static inline); no allocation.
 */
#ifndef GR_GM_BYTES_H
#define GR_GM_BYTES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline void gm_put_u16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static inline void gm_put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline void gm_put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint16_t gm_get_u16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t gm_get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline uint64_t gm_get_u64(const unsigned char *p)
{
    return (uint64_t)gm_get_u32(p) | ((uint64_t)gm_get_u32(p + 4) << 32);
}

static inline void gm_put_f32(unsigned char *p, float f)
{
    uint32_t v;

    memcpy(&v, &f, 4);
    gm_put_u32(p, v);
}

static inline float gm_get_f32(const unsigned char *p)
{
    uint32_t v = gm_get_u32(p);
    float f;

    memcpy(&f, &v, 4);
    return f;
}

static inline void gm_put_f64(unsigned char *p, double d)
{
    uint64_t v;

    memcpy(&v, &d, 8);
    gm_put_u64(p, v);
}

static inline double gm_get_f64(const unsigned char *p)
{
    uint64_t v = gm_get_u64(p);
    double d;

    memcpy(&d, &v, 8);
    return d;
}

/* n floats to/from little-endian bytes (a plain copy on little-endian hosts). */
static inline void gm_put_f32s(unsigned char *p, const float *f, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(p, f, n * 4);
#else
    for (size_t i = 0; i < n; i++)
        gm_put_f32(p + 4 * i, f[i]);
#endif
}

static inline void gm_get_f32s(float *f, const unsigned char *p, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(f, p, n * 4);
#else
    for (size_t i = 0; i < n; i++)
        f[i] = gm_get_f32(p + 4 * i);
#endif
}

#endif
