/* glue_attention.h -- loop functions and table data of the attention gufuncs
 * (defined in glue_attention.c; listed in the table in module.c). */
#ifndef AN_GLUE_ATTENTION_H
#define AN_GLUE_ATTENTION_H
#include "glue.h"
#include "normalize.h"

/* What the loops need: the normalizer, which outputs, a name for errors. */
typedef struct {
    const char *name;
    const an_normdesc *desc;
    int mode;          /* AN_ATT_MODE_* */
} an_attdata;
enum { AN_ATT_MODE_OUT = 0, AN_ATT_MODE_STATS = 1, AN_ATT_MODE_WEIGHTS = 2,
       AN_ATT_MODE_LSE = 3 /* out and the log normaliser alone */ };

void an_att_loop_f(char **args, npy_intp const *dims, npy_intp const *steps, void *data);
void an_att_loop_d(char **args, npy_intp const *dims, npy_intp const *steps, void *data);

/* one data record per (normalizer, mode), generated from AN_ALL_NORMALIZERS */
#define AN_ATT_DECLARE(nm)                                                     \
    extern const an_attdata an_att_data_##nm, an_att_stats_data_##nm,         \
        an_att_weights_data_##nm;
AN_ALL_NORMALIZERS(AN_ATT_DECLARE)

/* Operands (same for every normalizer; r, i, w may be 0):
 *   q (n,d), k (m,d), [v (m,e)], mask (n,m) bool, causal, wleft, wright,
 *   empty (int64 ()), scale (T ()), reals (r) T, ints (i) int64,
 *   per-row reals (n,w) T
 *   -> out (n,e) [+ lognorm, entropy, maxw, argmax (q), w0, margin, support (q), wsum: (n)]
 *   or -> weights (n,m) */
#define AN_ATT_IN "(n,d),(m,d),(m,e),(n,m),(),(),(),(),(),(r),(i),(n,w)"
#define AN_ATT_WIN "(n,d),(m,d),(n,m),(),(),(),(),(),(r),(i),(n,w)"
#define AN_ATT_ENTRIES(nm)                                                    \
    { "attention_" #nm, AN_ATT_IN "->(n,e)", "TTTbqqqqTTqT-T",               \
      "attention_" #nm "(q, k, v, mask, causal, wleft, wright, empty, scale, reals, ints, rowparams) -> out", \
      an_att_loop_f, an_att_loop_d, (void *)&an_att_data_##nm },             \
    { "attention_stats_" #nm,                                                 \
      AN_ATT_IN "->(n,e),(n),(n),(n),(n),(n),(n),(n),(n)",                    \
      "TTTbqqqqTTqT-TTTTqTTqT",                                               \
      "attention_stats_" #nm "(q, k, v, mask, causal, wleft, wright, empty, scale, reals, ints, rowparams)" \
      " -> out, lognorm, entropy, max_weight, argmax, weight0, margin, support, weight_sum", \
      an_att_loop_f, an_att_loop_d, (void *)&an_att_stats_data_##nm },       \
    { "attention_weights_" #nm, AN_ATT_WIN "->(n,m)", "TTbqqqqTTqT-T",       \
      "attention_weights_" #nm "(q, k, mask, causal, wleft, wright, empty, scale, reals, ints, rowparams) -> weights", \
      an_att_loop_f, an_att_loop_d, (void *)&an_att_weights_data_##nm },

#endif
