/* normalize_driver.c -- gather / row kernel / scatter over every row. */
#include <stdlib.h>
#include <string.h>
#include "normalize.h"

an_int an_row_visible(const an_normmat *M, an_int i, an_int *idx)
{
    an_int lo, hi, nv = 0;
    an_visible_range(i, M->n, M->m, M->causal, M->wleft, M->wright, &lo, &hi);
    if (M->mask) {
        const char *mk = M->mask + M->mk_n * i;
        for (an_int j = lo; j < hi; j++)
            if (AN_AT(uint8_t, mk, M->mk_m, j)) idx[nv++] = j;
    } else {
        for (an_int j = lo; j < hi; j++) idx[nv++] = j;
    }
    return nv;
}

#define AN_TCAT2(a, b) a##b
#define AN_TCAT(a, b) AN_TCAT2(a, b)
#define AT(name) AN_TCAT(name, TS)
#define T float
#define TS f
#include "normalize_driver_impl.inc"
#undef T
#undef TS
#define T double
#define TS d
#include "normalize_driver_impl.inc"
#undef T
#undef TS
#undef AT
#undef AN_TCAT
#undef AN_TCAT2
