/*
 * Config values the ssh and slurm drivers read alike (remote.h): bounded
 * integers from the site config's JSON (sizes: orc/size.h).
 */

#include "remote.h"

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
