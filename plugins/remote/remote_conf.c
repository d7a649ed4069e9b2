/*
 * Config values the ssh and slurm drivers read alike (remote.h): sizes with
 * units and bounded integers, from the site config's JSON.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <strings.h>

#include "remote.h"

static int size_text(const char *text, uint64_t *out)
{
    static const struct {
        const char *unit;
        double mult;
    } units[] = {{"b", 1.0},
                 {"kb", 1e3},
                 {"kib", 1024.0},
                 {"mb", 1e6},
                 {"mib", 1048576.0},
                 {"gb", 1e9},
                 {"gib", 1073741824.0},
                 {"tb", 1e12},
                 {"tib", 1099511627776.0}};
    char *end;
    double v;

    errno = 0;
    v = strtod(text, &end);
    if (end == text || errno != 0 || !(v >= 0) || !isfinite(v))
        return ORC_EINVAL;
    while (*end == ' ')
        end++;
    if (*end == '\0') {
        *out = (uint64_t)v;
        return v == floor(v) && v < 1.8e19 ? 0 : ORC_EINVAL;
    }
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strcasecmp(end, units[i].unit) == 0) {
            v *= units[i].mult;
            if (v >= 1.8e19)
                return ORC_EINVAL;
            *out = (uint64_t)v;
            return 0;
        }
    return ORC_EINVAL;
}

int rmt_parse_size(json_t *v, uint64_t *out)
{
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = (uint64_t)json_integer_value(v);
        return 0;
    }
    return json_is_string(v) ? size_text(json_string_value(v), out) : ORC_EINVAL;
}

int rmt_parse_u32(json_t *v, uint32_t min, uint32_t max, uint32_t *out)
{
    json_int_t n;

    if (!json_is_integer(v))
        return ORC_EINVAL;
    n = json_integer_value(v);
    if (n < (json_int_t)min || n > (json_int_t)max)
        return ORC_EINVAL;
    *out = (uint32_t)n;
    return 0;
}
