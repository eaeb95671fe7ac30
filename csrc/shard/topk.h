/*
 * topk.h -- per-row top-K scores of q k^T over a key shard, without writing
 * the n x m scores: the candidates that key-sharded sparse attention
 * (attnnorm/_shard.py) merges into the global threshold.
 */
#ifndef AN_TOPK_H
#define AN_TOPK_H
#include "an_common.h"

/* One matrix: q (n, d), k (m, d), an optional boolean mask (n, m) (NULL: every
 * key visible), scale; outputs sc (n, K) of the real type and ix (n, K)
 * int64.  Byte strides throughout. */
typedef struct {
    an_int n, m, d, K;
    const char *q, *k, *mask;
    an_int q_n, q_d, k_m, k_d, mk_n, mk_m;
    double scale;
    char *sc, *ix;
    an_int sc_n, sc_k, ix_n, ix_k;
} an_topkprob;

int an_topk_scores_f(const an_topkprob *P);
int an_topk_scores_d(const an_topkprob *P);

#endif
