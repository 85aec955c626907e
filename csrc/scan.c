/* scan.c -- bounded field scanners used by every table decoder. */
#include "pn_internal.h"

/* -1 for anything that is not a hex digit (NUL included). */
static const signed char hexval[256] = {
    ['0'] = 0 + 1, ['1'] = 1 + 1, ['2'] = 2 + 1, ['3'] = 3 + 1, ['4'] = 4 + 1,
    ['5'] = 5 + 1, ['6'] = 6 + 1, ['7'] = 7 + 1, ['8'] = 8 + 1, ['9'] = 9 + 1,
    ['a'] = 10 + 1, ['b'] = 11 + 1, ['c'] = 12 + 1, ['d'] = 13 + 1, ['e'] = 14 + 1, ['f'] = 15 + 1,
    ['A'] = 10 + 1, ['B'] = 11 + 1, ['C'] = 12 + 1, ['D'] = 13 + 1, ['E'] = 14 + 1, ['F'] = 15 + 1,
};
/* (stored +1 so that the zero-initialised rest of the table means "not hex") */

void pn_skip_blanks(const char **p, const char *end)
{
    const char *s = *p;
    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    *p = s;
}

int pn_at_end(const char **p, const char *end)
{
    pn_skip_blanks(p, end);
    return *p == end;
}

int pn_scan_hex(const char **p, const char *end, unsigned min_digits,
                unsigned max_digits, uint64_t *val)
{
    pn_skip_blanks(p, end);
    const char *s = *p;
    uint64_t v = 0;
    unsigned n = 0;
    while (s < end && n < max_digits) {
        int d = hexval[(unsigned char)*s];
        if (!d)
            break;
        v = (v << 4) | (uint64_t)(d - 1);
        s++;
        n++;
    }
    /* A field that runs on past max_digits is malformed, not truncated. */
    if (n < min_digits || (s < end && hexval[(unsigned char)*s]))
        return 0;
    *val = v;
    *p = s;
    return 1;
}

int pn_scan_dec(const char **p, const char *end, uint64_t max, uint64_t *val)
{
    pn_skip_blanks(p, end);
    const char *s = *p;
    uint64_t v = 0;
    if (s == end || *s < '0' || *s > '9')
        return 0;
    while (s < end && *s >= '0' && *s <= '9') {
        unsigned d = (unsigned)(*s - '0');
        if (d > max || v > (max - d) / 10)
            return 0;          /* overflow: reject rather than wrap */
        v = v * 10 + d;
        s++;
    }
    *val = v;
    *p = s;
    return 1;
}

int pn_scan_char(const char **p, const char *end, char c)
{
    if (*p < end && **p == c) {
        (*p)++;
        return 1;
    }
    return 0;
}
