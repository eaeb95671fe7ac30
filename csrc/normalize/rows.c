/* rows.c -- one row of a problem: its visible keys, gathering their scores,
 * the row kernel with the empty-row policy, scattering the weights
 * (normalize.h).  Type-generic parts in rows_impl.inc. */
#include <string.h>
#include "normalize.h"
#include "an_simd.h"

an_int an_keys(an_int i, an_int n, an_int m, int causal, an_int wleft, an_int wright,
               const char *mask, an_int mk_n, an_int mk_m, an_int *idx, an_int *lo,
               const an_int **keys)
{
    an_int hi, nv = 0;
    an_visible_range(i, n, m, causal, wleft, wright, lo, &hi);
    if (!mask) {
        *keys = NULL;
        return hi - *lo;
    }
    const char *mk = mask + mk_n * i;
    for (an_int j = *lo; j < hi; j++)
        if (AN_AT(uint8_t, mk, mk_m, j)) idx[nv++] = j;
    *keys = idx;
    return nv;
}

#define AN_TEMPLATE "rows_impl.inc"
#include "an_template.h"
