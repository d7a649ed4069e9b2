/* UTF-8 validation: templates are text; binary or mis-encoded input is refused. */
#include "base.h"

static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned cp;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, cp = c & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

int tosca_utf8_check(const unsigned char *s, size_t n, size_t *bad_at)
{
    size_t i = 0;

    while (i < n) {
        size_t len;
        /* printable ASCII, the bulk of any template: one comparison each */
        while (i < n && s[i] >= 0x20 && s[i] < 0x7F)
            i++;
        if (i == n)
            break;
        if (s[i] == '\n' || s[i] == '\t' || s[i] == '\r') {
            i++;
            continue;
        }
        if (s[i] < 0x20)
            len = 0;
        else if (s[i] == 0x7F)
            len = 0;
        else
            len = utf8_seq_len(s + i, n - i);
        if (len == 0) {
            if (bad_at)
                *bad_at = i + 1;
            return ORC_EFORMAT;
        }
        i += len;
    }
    return 0;
}
