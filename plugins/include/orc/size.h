/*
 * Sizes in site configs, read alike by the core and every driver: bytes (a
 * JSON integer or a bare number) or "<number> <unit>" with TOSCA's
 * scalar-unit.size units (B, kB, KiB, MB, MiB, GB, GiB, TB, TiB; the case
 * of the unit is not significant), as in "64 GiB" or "1.5 TB".
 */
#ifndef ORC_SIZE_H
#define ORC_SIZE_H

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <strings.h>

#include <jansson.h>

#include "orc/errno.h"

/* Bytes of text into *out: 0, or ORC_EINVAL (not a size, negative, a
 * fraction of a byte without a unit, or 2^63 bytes or more). */
static inline int orc_size_text(const char *text, uint64_t *out)
{
    static const struct {
        const char *unit;
        double mult;
    } units[] = {{"", 1.0},   {"b", 1.0},          {"kb", 1e3},  {"kib", 1024.0},
                 {"mb", 1e6}, {"mib", 1048576.0},  {"gb", 1e9},  {"gib", 1073741824.0},
                 {"tb", 1e12}, {"tib", 1099511627776.0}};
    char *end;
    double v;

    errno = 0;
    v = strtod(text, &end);
    if (end == text || errno != 0 || !(v >= 0) || !isfinite(v))
        return ORC_EINVAL;
    while (*end == ' ')
        end++;
    if (*end == '\0' && v != floor(v))
        return ORC_EINVAL;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strcasecmp(end, units[i].unit) == 0) {
            v *= units[i].mult;
            if (v >= 9.2e18)
                return ORC_EINVAL;
            *out = (uint64_t)llround(v);
            return 0;
        }
    return ORC_EINVAL;
}

/* The same for a config value: a non-negative JSON integer or a string. */
static inline int orc_size_json(const json_t *v, uint64_t *out)
{
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = (uint64_t)json_integer_value(v);
        return 0;
    }
    return json_is_string(v) ? orc_size_text(json_string_value(v), out) : ORC_EINVAL;
}

#endif
