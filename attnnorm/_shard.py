"""Exact key-sharded attention and diagnostics on dask arrays.

``attention``, ``attention_weights`` and ``diagnose`` on dask inputs whose
query axis (n) or key axis (m) is split into chunks build one task per
(leading block, query block, key shard) and merge the key shards exactly.
Query blocks are independent; a key shard that a query block cannot see
through ``causal``/``window`` gets no task at all.  Every shard computation
is a call of the public functions on NumPy blocks, with the global masking
expressed as a boolean mask of the block (built only where the block is
partly visible) and ``causal=False``.

Merges (``L_s``, ``o_s``: the log-normaliser and output of shard ``s``; ``n_i``
the visible length of query ``i`` over all keys, ``n_s`` over the shard's):

* softmax family (softmax, softmax_sink, ssmax, affine_softmax): one pass,
  the shard's ``attention_forward`` (output and log-normaliser);
  ``L = log(sum_s exp(L_s) [+ e^sink])``, ``o = sum_s exp(L_s - L) o_s``
  (flash-decoding).  SSMax multiplies each query by ``c log n_i`` first, so
  every shard uses the global ``n_i``; affine_softmax adds ``b`` times the sum
  of the visible values.
* elementwise maps: ``o = sum_s o_s`` with the shard's length rescaled to the
  global one: ``n_s / n_i`` (ReLU), ``sqrt(n_s / n_i)`` (polynomial); the
  sigmoid's default bias ``-log n_i`` is added to the scores through one extra
  feature (query column ``-log n_i / scale``, key column 1).
* sparsemax / entmax: each query block is split into sub-blocks
  (``_sub_blocks``) so that the merges below run per sub-block on every
  worker while the candidates of the other sub-blocks are computed; the
  result is rechunked to the caller's query chunks.  Pass 1 lists each
  row's ``_TOPK`` best keys of each shard (``topk_scores``: scores and key
  indices from the score GEMM, no n x m array).  The normalizer on all candidates gives ``tau_c <= tau``
  (fewer keys need a lower threshold); a shard whose last candidate has
  weight 0 under ``tau_c`` holds no other key of the global support.  The
  rows where that fails are listed again by their shard down to the score
  ``tau_c / (alpha - 1)`` and renormalised.  Each shard adds ``sum w_j v_j``
  over its candidates with a weight (a gather of O(support x e)).
* NAP: pass 1 sums the visible scores (mean ``mu``); pass 2 runs on scores
  shifted by ``-mu`` (an extra feature) and returns ``sum (s - mu) v``,
  ``sum (s - mu)^2`` and ``sum v``; ``o = g sum(s-mu) v / (sigma + eps) + b sum v``.
* stochastic_softmax: ``L_s`` as for softmax; each row's trials are split
  over the shards by sequential binomials with the masses ``exp(L_s - L)``
  (a multinomial over shards), then each shard draws its count from its own
  softmax; seeds mixed from ``(seed, block position, shard)``.
* stickbreaking: the shard's own stick-breaking and the log of the stick it
  leaves, ``R_s = -sum_j softplus(s_ij)``; shard ``s`` is scaled by
  ``exp(sum_(t > s) R_t)`` (right to left).
* Sinkhorn (the query axis in one block): the row maximum, then per
  iteration either each shard's row logsumexp ``LSE_(j in s)(K_ij + g_j)``
  merged by logaddexp into ``f``, or each shard's own column potentials
  ``g_j`` given ``f``.
* softpick: query blocks are independent, the key axis is rechunked to one
  chunk.

``diagnose`` and ``return_stats=True`` materialise the global weights of one
(query block, key shard) at a time, in query sub-blocks, and reduce them
(entropy, max weight and key, sink weight, top-2 scores, support, weight sum,
column sums); nothing of size n x m is ever held.
"""
import math

import numpy as np
import dask
import dask.array as da

from ._common import causal_code

SOFTMAX_FAMILY = ("softmax", "softmax_sink", "ssmax", "affine_softmax")
ELEMENTWISE = ("sigmoid", "relu", "polynomial")
SPARSE = ("sparsemax", "entmax")
ROWWISE = ("softpick",)    # exact per query block, one key shard
MERGED = SOFTMAX_FAMILY + ELEMENTWISE + SPARSE + ("nap", "stickbreaking", "sinkhorn",
                                                  "stochastic_softmax")

_SUB = 256          # query rows per materialised sub-block
_BIG = np.iinfo(np.int64).max // 4


def _nchunks(x, axis):
    return len(x.chunks[axis]) if isinstance(x, da.Array) and x.ndim >= -axis else 1


def needs_sharding(call):
    """True when the query or key axis of q, k (or v) is split into chunks."""
    q, k, v = call.get("q"), call.get("k"), call.get("v")
    return (_nchunks(q, -2) > 1 or _nchunks(k, -2) > 1
            or (v is not None and _nchunks(v, -2) > 1))


def _family(normalizer, params):
    if normalizer == "entmax" and np.ndim(params.get("alpha", 1.5)) == 0 \
            and float(params.get("alpha", 1.5)) == 1.0 and not isinstance(params.get("alpha"), da.Array):
        return "softmax_alpha1"
    if normalizer in SOFTMAX_FAMILY:
        return "softmax"
    if normalizer in ELEMENTWISE:
        return "elementwise"
    if normalizer in SPARSE:
        return "sparse"
    if normalizer == "nap":
        return "nap"
    if normalizer in ROWWISE:
        return "rowwise"
    if normalizer in ("stickbreaking", "sinkhorn", "stochastic_softmax"):
        return normalizer
    return None


# --------------------------------------------------------------------------
# graph construction
# --------------------------------------------------------------------------

def run(name, call):
    """Lazy attention / attention_weights / diagnose with sharded q or k."""
    import attnnorm
    from ._dask import blockwise, _unify_leading
    from ._common import loop_dtype
    call = dict(call)
    normalizer = call.pop("normalizer", "softmax")
    q, k, v = call.pop("q"), call.pop("k"), call.pop("v", None)
    scale = call.pop("scale", None)
    causal = call.pop("causal", False)
    window = call.pop("window", None)
    mask = call.pop("mask", None)
    empty = call.pop("empty", "zero")
    return_stats = bool(call.pop("return_stats", False))
    call.pop("out", None)
    params = call
    fam = _family(normalizer, params)
    numpy_fn = getattr(attnnorm, name).__wrapped_numpy__
    _validate(numpy_fn, name, q, k, v, normalizer, scale, causal, window, mask, empty,
              return_stats, params)
    if fam is None or (name == "diagnose" and fam == "rowwise"):
        # whole rows (and, for Sinkhorn, whole matrices) per block
        q = da.asarray(q).rechunk({q.ndim - 2: -1})
        k = da.asarray(k).rechunk({k.ndim - 2: -1})
        args = dict(q=q, k=k, normalizer=normalizer, scale=scale, causal=causal, window=window,
                    mask=mask, empty=empty, **params)
        if v is not None:
            args["v"] = da.asarray(v).rechunk({np.ndim(v) - 2: -1})
        if name == "attention":
            args["return_stats"] = return_stats
        if name == "diagnose":
            args.pop("empty")
        return blockwise(numpy_fn, name, args)
    has_lognorm = normalizer in SOFTMAX_FAMILY
    if fam == "softmax_alpha1":
        normalizer, params, fam = "softmax", {}, "softmax"
    qs, ks = np.shape(q), np.shape(k)
    n, d, m = qs[-2], qs[-1], ks[-2]
    dt = loop_dtype(q=q, k=k, v=v)
    shapes = [qs[:-2], ks[:-2]] + ([np.shape(v)[:-2]] if v is not None else [])
    if mask is not None:
        mask = da.asarray(mask)
        if mask.dtype != np.bool_:
            mask = mask != 0
        if mask.ndim < 2:
            mask = mask.reshape((1,) * (2 - mask.ndim) + mask.shape)
        shapes.append(mask.shape[:-2])
    lead = np.broadcast_shapes(*shapes)
    nl = len(lead)
    if scale is None:
        scale = 1.0 / math.sqrt(d) if d > 0 else 1.0
    # every array operand broadcast to the leading shape, chunked alike
    arrs = {"q": da.broadcast_to(da.asarray(q), lead + (n, d)),
            "k": da.broadcast_to(da.asarray(k), lead + (m, d))}
    cores = {"q": 2, "k": 2}
    if v is not None:
        arrs["v"] = da.broadcast_to(da.asarray(v), lead + (m, np.shape(v)[-1]))
        cores["v"] = 2
    if mask is not None:
        arrs["mask"] = da.broadcast_to(mask, lead + (n, m))
        cores["mask"] = 2
    pnames = []
    for pname, value in list(params.items()) + [("scale", scale)]:
        if isinstance(value, da.Array) or (np.ndim(value) > 0 and not isinstance(value, str)):
            row = normalizer == "affine_softmax" and pname in ("a", "b")
            x = da.asarray(value)
            if row:
                x = da.broadcast_to(x, lead + (n,))
                cores[pname] = 1
            else:
                x = da.broadcast_to(x, lead)
                cores[pname] = 0
            arrs[pname] = x
            pnames.append(pname)
    names = list(arrs)
    unified = _unify_leading([arrs[a] for a in names], [(0,) * cores[a] for a in names])
    arrs = dict(zip(names, unified))
    # core axes: q's n chunks and k's m chunks drive the blocks
    if fam == "rowwise":
        arrs["k"] = arrs["k"].rechunk({nl: -1})
    if fam == "sinkhorn":
        # the column potentials couple every query: one query block
        arrs["q"] = arrs["q"].rechunk({nl: -1})
    qch, kch = arrs["q"].chunks[nl], arrs["k"].chunks[nl]
    user_qch = qch
    if fam == "sparse":
        # query sub-blocks: one candidates task per (sub-block, shard) and
        # one merge per sub-block, so the merges run on every worker and
        # overlap the candidates of the next sub-blocks
        qch = _sub_blocks(qch)
        arrs["q"] = arrs["q"].rechunk({nl: qch})
    arrs["q"] = arrs["q"].rechunk({nl + 1: -1})
    arrs["k"] = arrs["k"].rechunk({nl + 1: -1})
    if v is not None:
        arrs["v"] = arrs["v"].rechunk({nl: kch, nl + 1: -1})
    if "mask" in arrs:
        arrs["mask"] = arrs["mask"].rechunk({nl: qch, nl + 1: kch})
    for p in pnames:
        if cores[p] == 1:
            arrs[p] = arrs[p].rechunk({nl: qch})
    lead_chunks = arrs["q"].chunks[:nl]
    dl = {a: x.to_delayed() for a, x in arrs.items()}
    ctx = dict(kind=name, normalizer=normalizer, fam=fam, n=n, m=m, dtype=np.dtype(dt).str,
               causal=causal_code(causal), window=_window(window), empty=empty,
               params={p: vv for p, vv in params.items() if p not in pnames},
               scale=None if "scale" in pnames else scale, stats=return_stats,
               e=(np.shape(v)[-1] if v is not None else 0), d=d, has_lognorm=has_lognorm)
    qoff = np.concatenate([[0], np.cumsum(qch)]).astype(int)
    koff = np.concatenate([[0], np.cumsum(kch)]).astype(int)
    task = _delayed_step
    nout = {"attention": 1 + (8 if return_stats else 0), "attention_weights": 1,
            "diagnose": 6}[name]
    out_blocks = {}
    col_parts = {}
    checks = {}             # (leading block, key shard) -> its _kv_check
    for L in np.ndindex(*[len(c) for c in lead_chunks]):
        lshape = tuple(lead_chunks[a][L[a]] for a in range(nl))
        for i in range(len(qch)):
            q0, nb = int(qoff[i]), int(qch[i])
            shards = [j for j in range(len(kch))
                      if _range_visible(ctx, q0, nb, int(koff[j]), int(kch[j]))]

            def blk(j, with_v=True):
                b = dict(q=dl["q"][L + (i, 0)], k=dl["k"][L + (j, 0)],
                         q0=q0, k0=int(koff[j]), nb=nb, ms=int(kch[j]), pos=L + (i,))
                if v is not None and with_v:
                    b["v"] = dl["v"][L + (j, 0)]
                if "mask" in dl:
                    b["mask"] = dl["mask"][L + (i, j)]
                b["params"] = {p: dl[p][L + ((i,) if cores[p] == 1 else ())] for p in pnames}
                if (L, j) not in checks:
                    checks[(L, j)] = task("kv_check", ctx, {key: b[key] for key in ("k", "v")
                                                          if key in b}, None)
                return b

            blocks = [blk(j) for j in shards]
            info = task("counts", ctx, [_light(b) for b in blocks], None)
            prev = None
            for step in _phases(fam, params):
                # the recheck needs only the rows to list again (not the
                # candidates' weights)
                src = task("recheck_info", ctx, info, None) if step == "recheck" else info
                parts = [task(step, ctx, b, src) for b in blocks]
                # the recheck's merge takes the first candidates as well
                info = task("merge_" + step, ctx, [prev, parts] if step == "recheck" else parts,
                            info)
                prev = parts
                if step == "skinit":
                    # the shard's Sinkhorn kernel K, computed once and kept
                    # (on its worker) for every iteration
                    blocks = [dict(b, K=task("skkernel", ctx, b, info)) for b in blocks]
            # non-finite q, k or v: the block's exact in-memory result
            info = task("exact", ctx, [dict(b, chk=checks[(L, j)])
                                       for j, b in zip(shards, blocks)], info)
            res = []
            if name == "attention":
                parts = [task("out", ctx, b, info) for b in blocks]
                res.append(task("finish_out", ctx, parts, info))
            if name == "attention_weights":
                for j, b in zip(shards, blocks):
                    out_blocks[(L, i, j)] = da.from_delayed(
                        task("weights_block", ctx, b, info), lshape + (nb, int(kch[j])),
                        dtype=dt, meta=np.empty((0,) * (nl + 2), dt))
                continue
            if name == "diagnose" or return_stats:
                parts = [task("stats", ctx, b, info) for b in blocks]
                rows = task("merge_stats", ctx, parts, info)
                res.append(rows)
                for j, p in zip(shards, parts):
                    col_parts.setdefault((L, j), []).append(p)
            out_blocks[(L, i)] = (lshape, nb, res)
    res = _assemble(name, ctx, out_blocks, col_parts, lead_chunks, qch, kch, dt, nl,
                    return_stats)
    return _query_chunks(name, res, nl, user_qch) if qch != user_qch else res


_SP_ROWS = 16384    # sparse family: query sub-blocks of at least this many rows,
_SP_PARTS = 4       # at most this many per query block


def _sub_blocks(qch):
    """Each query chunk split into at most ``_SP_PARTS`` near-equal
    sub-blocks of at least ``_SP_ROWS`` rows."""
    out = []
    for c in qch:
        parts = max(1, min(_SP_PARTS, int(c) // _SP_ROWS))
        base, extra = divmod(int(c), parts)
        out.extend(base + (t < extra) for t in range(parts))
    return tuple(out)


def _query_chunks(name, res, nl, qch):
    """The query axis of the results rechunked to the caller's query chunks."""
    def rows(x):
        return x.rechunk({nl: qch})
    if name == "attention_weights":
        return rows(res)
    if name == "attention":
        if isinstance(res, tuple):
            return rows(res[0]), type(res[1])(*[rows(x) for x in res[1]])
        return rows(res)
    return type(res)(*[rows(x) for x in res[:-1]], res[-1])     # diagnose: columns last


_PHASES = {"softmax": ("lognorm",), "elementwise": (), "sparse": ("candidates", "recheck"),
           "nap": ("mean", "m2"), "rowwise": (), "stickbreaking": ("sbmass",),
           "stochastic_softmax": ("lognorm",)}


def _phases(fam, params):
    """The reduction steps of a family, in order; Sinkhorn: the row maximum,
    then ``n_iter`` alternating row and column potentials."""
    if fam == "sinkhorn":
        n_iter = int(params.get("n_iter", 5))
        return ("skinit",) + tuple("skrow" if it % 2 == 0 else "skcol" for it in range(n_iter))
    return _PHASES[fam]


def _light(b):
    """The parts of a block the visible counts need (no q, k or v)."""
    return {key: val for key, val in b.items() if key in ("q0", "k0", "nb", "ms", "mask", "params", "pos")}


def _assemble(name, ctx, out_blocks, col_parts, lead_chunks, qch, kch, dt, nl, return_stats):
    lead_n = [len(c) for c in lead_chunks]
    get = dask.delayed(_getitem, pure=True)
    if name == "attention_weights":
        def wblock(L, i, j):
            if (L, i, j) in out_blocks:
                return out_blocks[(L, i, j)]
            return da.zeros(tuple(lead_chunks[a][L[a]] for a in range(nl)) + (qch[i], kch[j]),
                            dtype=dt, chunks=-1)
        return da.block(_nest(lead_n, lambda L: [[wblock(L, i, j) for j in range(len(kch))]
                                                 for i in range(len(qch))]))
    e = ctx["e"]
    fields_out = []
    if name == "attention":
        def oblock(L, i):
            lshape, nb, res = out_blocks[(L, i)]
            return da.from_delayed(res[0], lshape + (nb, e), dtype=dt,
                                   meta=np.empty((0,) * (nl + 2), dt))
        out = da.block(_nest(lead_n, lambda L: [[oblock(L, i)] for i in range(len(qch))]))
        if not return_stats:
            return out
        fields_out.append(out)
    # per-query statistics: (..., n) each
    kinds = _STAT_FIELDS[name]
    stats = []
    for f, fdt in kinds:
        def sblock(L, i, f=f, fdt=fdt):
            lshape, nb, res = out_blocks[(L, i)]
            return da.from_delayed(get(res[-1], f), lshape + (nb,), dtype=fdt,
                                   meta=np.empty((0,) * (nl + 1), fdt))
        stats.append(da.block(_nest(lead_n, lambda L: [sblock(L, i) for i in range(len(qch))])))
    if name == "attention":
        from ._attention import AttentionStats
        return fields_out[0], AttentionStats(*stats)
    task = _delayed_step

    def cblock(L, j):
        lshape = tuple(lead_chunks[a][L[a]] for a in range(nl))
        parts = col_parts.get((L, j), [])
        return da.from_delayed(task("merge_columns", ctx, parts, (lshape, int(kch[j]))),
                               lshape + (kch[j],), dtype=dt, meta=np.empty((0,) * (nl + 1), dt))
    col = da.block(_nest(lead_n, lambda L: [cblock(L, j) for j in range(len(kch))]))
    from ._diagnostics import Diagnosis
    return Diagnosis(*stats, col)


def _delayed_step(step, *args):
    """A delayed call of ``_task(step, ...)`` whose key names the step
    (``attnnorm-merge_lognorm-<token>``), so a task stream shows which
    phase ran."""
    token = dask.base.tokenize(step, *args)
    return dask.delayed(_task, pure=True)(step, *args, dask_key_name=f"attnnorm-{step}-{token}")


def _getitem(d, key):
    return d[key]


def _nest(counts, leaf, prefix=()):
    """Nested lists over the leading block indices for da.block."""
    if len(prefix) == len(counts):
        return leaf(prefix)
    return [_nest(counts, leaf, prefix + (b,)) for b in range(counts[len(prefix)])]


_STAT_FIELDS = {
    "attention": [("lognorm", None), ("entropy", None), ("max_weight", None),
                  ("argmax", np.int64), ("weight0", None), ("margin", None),
                  ("support", np.int64), ("weight_sum", None)],
    "diagnose": [("entropy", None), ("max_weight", None), ("weight0", None), ("margin", None),
                 ("support", np.int64)],
}


def _validate(numpy_fn, name, q, k, v, normalizer, scale, causal, window, mask, empty,
              return_stats, params):
    """Run the NumPy function on tiny inputs: the same validation, before any
    work (parameters, shapes of the core axes, leading-axis broadcasting)."""
    def tiny(x, rows):
        shp = np.shape(x)
        lead = tuple(1 for _ in shp[:-2])
        dt = getattr(x, "dtype", np.float64)
        return np.full(lead + (rows, shp[-1]), 0.5, dtype=dt)
    qs, ks = np.shape(q), np.shape(k)
    if len(qs) < 2 or len(ks) < 2:
        from ._common import core_shape
        core_shape("q", q, 2)
        core_shape("k", k, 2)
    if qs[-1] != ks[-1]:
        raise ValueError(f"q and k must have the same last dimension d; got q {qs} and k {ks}")
    if v is not None and np.shape(v)[-2] != ks[-2]:
        raise ValueError(f"k and v must have the same number of keys m; got k {ks} and v "
                         f"{np.shape(v)}")
    nrow = qs[-2] if normalizer == "affine_softmax" else 2
    kw = dict(normalizer=normalizer, scale=_first(scale), causal=causal, window=window,
              **{p: (val if normalizer == "affine_softmax" and p in ("a", "b") and
                     not isinstance(val, da.Array) else _first(val))
                 for p, val in params.items()})
    if empty is not None:
        kw["empty"] = empty if name != "diagnose" else None
        if name == "diagnose":
            kw.pop("empty")
    if name == "attention":
        kw["return_stats"] = return_stats
    args = [tiny(q, nrow), tiny(k, 2)] + ([tiny(v, 2)] if v is not None else [])
    if mask is not None:
        ms = np.shape(mask)
        try:
            core = np.broadcast_shapes(tuple(ms[-2:]) if len(ms) >= 2 else tuple(ms),
                                       (qs[-2], ks[-2]))
            if core != (qs[-2], ks[-2]):
                raise ValueError
        except ValueError:
            raise ValueError(f"mask of shape {ms} does not broadcast to the scores' shape "
                             f"(..., {qs[-2]}, {ks[-2]})") from None
    numpy_fn(*args, **kw)


def _first(x):
    """A parameter for the tiny validation call: dask arrays by an element of
    their dtype, NumPy arrays as they are (their values are validated)."""
    if isinstance(x, da.Array):
        return np.ones((), dtype=x.dtype)
    return x


def _window(window):
    from ._common import window_bounds
    return tuple(window_bounds(window))


def _bounds(ctx, q0, nb):
    """Global key range [lo_i, hi_i] of queries q0..q0+nb from causal/window."""
    n, m = ctx["n"], ctx["m"]
    off = 0 if ctx["causal"] == 2 else m - n
    i = np.arange(q0, q0 + nb, dtype=np.int64)
    lo = np.full(nb, -_BIG, dtype=np.int64)
    hi = np.full(nb, _BIG, dtype=np.int64)
    # bounds beyond n + m exclude nothing: saturate so i + off +- bound
    # cannot overflow int64
    wl, wr = (min(b, n + m) for b in ctx["window"])
    if ctx["causal"]:
        hi = i + off
    if wr >= 0:
        hi = np.minimum(hi, i + off + wr)
    if wl >= 0:
        lo = i + off - wl
    return lo, hi


def _range_visible(ctx, q0, nb, k0, ms):
    """Can any query of the block see any key of the shard (masks aside)?"""
    lo, hi = _bounds(ctx, q0, nb)
    return bool(np.any(np.minimum(hi, k0 + ms - 1) >= np.maximum(lo, k0)))


# --------------------------------------------------------------------------
# tasks (run on the workers, on NumPy blocks)
# --------------------------------------------------------------------------

class _Block:
    """One (query block, key shard): global visibility as a local mask."""

    def __init__(self, ctx, b):
        self.ctx = ctx
        self.q0, self.k0, self.nb, self.ms = b["q0"], b["k0"], b["nb"], b["ms"]
        self.pos = tuple(b.get("pos", ()))
        self.K = b.get("K")
        self.q, self.k, self.v = b.get("q"), b.get("k"), b.get("v")
        self.params = dict(ctx["params"])
        self.params.update(b.get("params", {}))
        self.scale = self.params.pop("scale", ctx["scale"])
        lo, hi = _bounds(ctx, self.q0, self.nb)
        k1 = self.k0 + self.ms - 1
        full = bool(np.all((lo <= self.k0) & (hi >= k1)))
        user = b.get("mask")
        if full:
            self.mask = None if user is None else np.asarray(user)
        else:
            j = np.arange(self.k0, self.k0 + self.ms, dtype=np.int64)
            rng = (j >= lo[:, None]) & (j <= hi[:, None])
            self.mask = rng if user is None else (np.asarray(user) & rng)
        if self.mask is None:
            self.ns = np.full(self.nb, self.ms, dtype=np.int64)
        else:
            self.ns = self.mask.sum(-1)

    def visible(self):
        shape = (self.nb, self.ms)
        return np.ones(shape, bool) if self.mask is None else self.mask

    def lead_param(self, x):
        """A per-matrix parameter as (..., 1) against (..., n) row arrays."""
        return np.asarray(x, dtype=np.float64)[..., None]

    def scale_col(self):
        return np.asarray(self.scale, dtype=np.float64)[..., None]

    def call(self, fn, normalizer, q=None, k=None, v=None, mask="same", **params):
        import attnnorm
        q = self.q if q is None else q
        k = self.k if k is None else k
        mk = self.mask if isinstance(mask, str) else mask
        if fn == "attention":
            v = self.v if v is None else v
            return attnnorm.attention.__wrapped_numpy__(
                q, k, v, normalizer, scale=self.scale, mask=mk, **params)
        return attnnorm.attention_weights.__wrapped_numpy__(
            q, k, normalizer, scale=self.scale, mask=mk, **params)

    def augmented(self, col):
        """(q', k') whose scores are s + col_i: an extra feature col/scale on
        the queries and 1 on the keys."""
        dt = self.q.dtype if self.q.dtype in (np.float32, np.float64) else np.float64
        extra = (np.asarray(col, np.float64) / self.scale_col())[..., None].astype(dt)
        lead = np.broadcast_shapes(self.q.shape[:-2], extra.shape[:-2])
        qa = np.concatenate([np.broadcast_to(self.q, lead + self.q.shape[-2:]).astype(dt),
                             np.broadcast_to(extra, lead + (self.nb, 1))], axis=-1)
        ka = np.concatenate([self.k.astype(dt), np.ones(self.k.shape[:-1] + (1,), dt)], axis=-1)
        return qa, ka

    def scores(self, rows):
        """Scaled scores of query rows ``rows`` (a slice), masked -inf, float64."""
        s = np.matmul(self.q[..., rows, :], np.swapaxes(self.k, -1, -2)).astype(np.float64)
        s = s * np.asarray(self.scale, np.float64)[..., None, None]
        if self.mask is not None:
            s = np.where(self.mask[..., rows, :], s, -np.inf)
        return s


def _task(step, ctx, b, info):
    return _STEPS[step](ctx, b, info)


def _counts(ctx, blocks, _):
    """Global visible length n_i of each query of the block."""
    ni = 0
    for b in blocks:
        ni = ni + _Block(ctx, b).ns
    if isinstance(ni, int):
        ni = np.zeros(blocks[0]["nb"] if blocks else 0, np.int64)
    return {"ni": ni}


def _ones(b, dt):
    return np.ones(b.k.shape[:-1] + (1,), dt)


# ---- softmax family ------------------------------------------------------

def _sm_query(ctx, b, info):
    """Queries and parameters of the plain softmax each shard runs."""
    nm = ctx["normalizer"]
    if nm == "ssmax":
        mul = b.lead_param(b.params.get("c", 0.43)) * np.log(np.maximum(info["ni"], 1))
        return (b.q * mul[..., None]).astype(b.q.dtype), {}
    if nm == "softmax":
        return b.q, {"temperature": b.params.get("temperature", 1.0)}
    return b.q, {}


def _sm_lognorm(ctx, b, info):
    """Output and log-normaliser of the shard's softmax from the pass of
    ``attention`` itself (``attention_forward``: the online kernel writing
    ``L_s = log sum_j exp(s_ij / T)`` as well); ``L_s = -inf`` for rows that
    see no key of the shard."""
    from ._attention_grad import attention_forward
    b = _Block(ctx, b)
    q, prm = _sm_query(ctx, b, info)
    dt = q.dtype if q.dtype in (np.float32, np.float64) else np.float64
    want_o = ctx["kind"] == "attention" and ctx["fam"] == "softmax"
    v = b.v if (b.v is not None and want_o) else np.zeros(b.k.shape[:-1] + (1,), dt)
    o, ls = attention_forward(q, b.k, v, "softmax", scale=b.scale, mask=b.mask, **prm)
    ls = np.asarray(ls, np.float64)
    part = {"L": np.where(np.isnan(ls), -np.inf, ls)}
    if want_o:
        part["o"] = np.asarray(o, np.float64)
        if ctx["normalizer"] == "affine_softmax":
            part["V"] = b.call("attention", "affine_softmax", a=0.0, b=1.0).astype(np.float64)
    return part


def _sm_merge(ctx, parts, info):
    info = dict(info)
    if not parts:
        info["L"] = np.full(info["ni"].shape, -np.inf)
        info["Ls"] = []
        return info
    ls = [p["L"] for p in parts]
    lead = np.broadcast_shapes(*[x.shape for x in ls])
    L = np.full(lead, -np.inf)
    for x in ls:
        L = np.logaddexp(L, x)
    if ctx["normalizer"] == "softmax_sink":
        sink = np.asarray(info["p"].get("sink", 0.0), np.float64)
        L = np.logaddexp(L, sink[..., None] if sink.ndim else sink)
    info["L"] = L
    info["Ls"] = ls
    info["parts"] = parts if ctx["kind"] == "attention" else None
    if ctx["fam"] == "stochastic_softmax":
        return _st_draws(info)
    return info


# ---- stick-breaking ------------------------------------------------------

def _sb_use(ctx, b):
    """Keys that break the stick: visible, and not the query's own position
    i + (m - n) when include_current=False."""
    use = b.visible()
    if not b.params.get("include_current", True):
        i = np.arange(b.q0, b.q0 + b.nb)[:, None] + (ctx["m"] - ctx["n"])
        use = use & (np.arange(b.k0, b.k0 + b.ms)[None, :] != i)
    return use


def _sb_mass(ctx, b, info):
    """Log of the stick the shard leaves: R_s = -sum_(j in shard) softplus(s_ij)
    over the keys that break it, from the scores in query sub-blocks."""
    b = _Block(ctx, b)
    use = _sb_use(ctx, b)
    parts = []
    for r0 in range(0, b.nb, _SUB):
        rows = slice(r0, min(r0 + _SUB, b.nb))
        z = np.where(use[rows], b.scores(rows), -np.inf)
        with np.errstate(over="ignore", invalid="ignore"):
            parts.append(-np.logaddexp(0.0, z).sum(-1))
    lead = np.broadcast_shapes(b.q.shape[:-2], b.k.shape[:-2])
    return {"R": np.concatenate(parts, -1) if parts else np.zeros(lead + (0,))}


def _sb_merge(ctx, parts, info):
    """Right to left: shard s keeps exp(T_s) of the stick, T_s = sum_(t > s) R_t
    (shards in key order)."""
    info = dict(info)
    tail = 0.0
    logs = [None] * len(parts)
    for idx in range(len(parts) - 1, -1, -1):
        logs[idx] = tail
        tail = tail + parts[idx]["R"]
    info["T"] = logs
    return info


def _sb_call(ctx, b, info, fn, index):
    """The shard's own stick-breaking (on the keys that break the stick)
    scaled by the stick the shards to its right leave."""
    with np.errstate(invalid="ignore"):
        f = np.exp(np.asarray(info["T"][index], np.float64))[..., None]
    r = b.call(fn, "stickbreaking", mask=_sb_use(ctx, b), include_current=True)
    return r.astype(np.float64) * f


# ---- Sinkhorn ------------------------------------------------------------
#
# log-domain Sinkhorn over key shards: K = (s - max_j s) / eps,
# f_i = -log n_r - LSE_j (K_ij + g_j)  (a logsumexp merged across shards),
# g_j = -log m_c - LSE_i (K_ij + f_i)  (each shard's own columns),
# A = n_r exp(K + f + g); n_r / m_c: rows / columns with a visible entry.

def _sk_init(ctx, b, info):
    """Per row of the shard: NaN among the visible scores, a +inf, and the
    largest other visible score."""
    b = _Block(ctx, b)
    z = b.scores(slice(0, b.nb))
    nan = np.isnan(z).any(-1)
    pinf = np.isposinf(z).any(-1)
    mx = np.where(np.isnan(z), -np.inf, z).max(-1) if b.ms else np.full(z.shape[:-1], -np.inf)
    return {"nan": nan, "pinf": pinf, "mx": mx}


def _sk_init_merge(ctx, parts, info):
    info = dict(info)
    nan = np.logical_or.reduce([p["nan"] for p in parts]) if parts else np.zeros(0, bool)
    pinf = ~nan & np.logical_or.reduce([p["pinf"] for p in parts]) if parts else nan
    mx = np.maximum.reduce([p["mx"] for p in parts]) if parts else np.zeros(0)
    used = ~nan & (pinf | (mx > -np.inf))
    info.update(nan=nan, pinf=pinf, used=used,
                mx=np.where(used & ~pinf, mx, 0.0), n_r=used.sum(-1),
                g=[0.0] * len(parts), f=0.0)
    return info


def _sk_kernel(ctx, b, info):
    """K of the shard (-inf outside the visible entries of used rows)."""
    if b.K is not None:
        return b.K
    z = b.scores(slice(0, b.nb))
    eps = np.asarray(b.params.get("eps", 1.0), np.float64)
    eps = eps[..., None, None] if eps.ndim else eps
    with np.errstate(invalid="ignore"):
        K = np.where(np.isfinite(z), (z - info["mx"][..., None]) / eps, -np.inf)
    K = np.where(info["pinf"][..., None], np.where(np.isposinf(z), 0.0, -np.inf), K)
    return np.where(info["used"][..., None], K, -np.inf)


def _lse(x, axis):
    """log sum exp along axis; -inf for an empty or all -inf slice."""
    mx = np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    mx = np.where(np.isfinite(mx), mx, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.exp(x - mx).sum(axis=axis)) + np.squeeze(mx, axis)


def _sk_row(ctx, b, info):
    """The shard's part of the row logsumexp, LSE_(j in shard) (K_ij + g_j),
    and its number of columns with a visible entry."""
    blk = _Block(ctx, b)
    K = _sk_kernel(ctx, blk, info)
    g = np.asarray(info["g"][_block_index(info, b)], np.float64)
    g = g[..., None, :] if g.ndim else g
    return {"lse": _lse(K + g, -1), "cols": np.isfinite(K).any(-2).sum(-1)}


def _sk_row_merge(ctx, parts, info):
    info = dict(info)
    lse = np.logaddexp.reduce([p["lse"] for p in parts]) if parts else -np.inf
    with np.errstate(divide="ignore", invalid="ignore"):
        info["f"] = np.where(info["used"], -np.log(info["n_r"])[..., None] - lse, 0.0)
    info["m_c"] = sum(p["cols"] for p in parts) if parts else 0
    return info


def _sk_col(ctx, b, info):
    """The shard's column potentials g_j = -log m_c - LSE_i (K_ij + f_i)."""
    blk = _Block(ctx, b)
    K = _sk_kernel(ctx, blk, info)
    colok = np.isfinite(K).any(-2)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = -np.log(np.asarray(info["m_c"], np.float64))[..., None] - \
            _lse(K + np.asarray(info["f"])[..., :, None], -2)
    return {"g": np.where(colok, g, 0.0)}


def _sk_col_merge(ctx, parts, info):
    info = dict(info)
    info["g"] = [p["g"] for p in parts]
    return info


def _sk_call(ctx, b, info, fn, index):
    K = _sk_kernel(ctx, b, info)
    g = np.asarray(info["g"][index], np.float64)
    g = g[..., None, :] if g.ndim else g
    n_r = np.asarray(info["n_r"], np.float64)[..., None, None]
    with np.errstate(invalid="ignore", over="ignore"):
        A = n_r * np.exp(K + np.asarray(info["f"], np.float64)[..., :, None] + g)
    A = np.where(info["used"][..., None], A, 0.0)
    A = np.where(info["nan"][..., None] & b.visible(), np.nan, A)
    if fn == "attention":
        return np.matmul(A, b.v.astype(np.float64))
    return A


# ---- stochastic_softmax --------------------------------------------------

def _st_draws(info):
    """Each row's trials split over the shards, Multinomial(N, p_s) with the
    shard masses p_s = exp(L_s - L), by sequential binomials; seeded from
    (seed, block position)."""
    from ._dask import _block_seed
    info = dict(info)
    trials = int(info["p"].get("trials", 100))
    L = info["L"]
    rng = np.random.default_rng(_block_seed(info["p"].get("seed", 0), (1,) + info["pos"]))
    left = np.full(L.shape, trials, np.int64)
    rest = np.ones(L.shape)
    counts = []
    for x in info["Ls"]:
        with np.errstate(invalid="ignore", divide="ignore"):
            ps = _sm_weight_factor(x, L)
            pr = np.clip(np.where(rest > 0, ps / np.where(rest > 0, rest, 1.0), 1.0), 0.0, 1.0)
        c = rng.binomial(left, pr)
        counts.append(c)
        left = left - c
        rest = rest - ps
    if counts:
        counts[-1] = counts[-1] + left
    info["N"] = counts
    return info


def _st_call(ctx, b, info, fn, index):
    """Within the shard: N_s draws from the shard's own softmax, seeded from
    (seed, block position, shard); weights c / trials."""
    from ._dask import _block_seed
    trials = int(b.params.get("trials", 100))
    w = b.call("attention_weights", "softmax").astype(np.float64)
    N = np.asarray(info["N"][index])
    lead = np.broadcast_shapes(w.shape[:-1], N.shape)
    w = np.broadcast_to(w, lead + w.shape[-1:])
    N = np.broadcast_to(N, lead)
    tot = w.sum(-1, keepdims=True)
    ok = (tot > 0) & np.isfinite(tot)
    pv = np.where(ok, w / np.where(ok, tot, 1.0), 1.0 / max(b.ms, 1))
    N = np.where(ok[..., 0], N, 0)
    rng = np.random.default_rng(_block_seed(b.params.get("seed", 0), (2,) + b.pos + (b.k0,)))
    c = rng.multinomial(N, pv) if b.ms else np.zeros(lead + (0,))
    r = c / float(trials)
    if fn == "attention":
        return np.matmul(r, b.v.astype(np.float64))
    return r


def _sm_weight_factor(L_s, L):
    with np.errstate(invalid="ignore"):
        f = np.exp(L_s - L)
    return np.where(np.isfinite(L), np.nan_to_num(f), 0.0)


def _sm_finish(ctx, info, b_shape):
    parts = info.get("parts") or []
    L = info["L"]
    out = 0.0
    for p in parts:
        out = out + _sm_weight_factor(p["L"], L)[..., None] * p["o"]
    if ctx["normalizer"] == "affine_softmax" and parts:
        a = np.asarray(ctx["_a"], np.float64)
        bb = np.asarray(ctx["_b"], np.float64)
        a = a[..., None] if a.ndim else a
        bb = bb[..., None] if bb.ndim else bb
        vsum = sum(p["V"] for p in parts)
        out = np.where(np.isfinite(L)[..., None], a * out + bb * vsum, 0.0)
    return out


# ---- elementwise maps ----------------------------------------------------

def _ew_call(ctx, b, info, fn):
    nm = ctx["normalizer"]
    ni = np.maximum(info["ni"], 1).astype(np.float64)
    if nm == "sigmoid" and b.params.get("bias") is None:
        qa, ka = b.augmented(-np.log(ni))
        r = b.call(fn, "sigmoid", q=qa, k=ka, bias=0.0)
        return r.astype(np.float64)
    prm = {p: b.params[p] for p in ("bias", "power") if p in b.params}
    r = b.call(fn, nm, **prm).astype(np.float64)
    if nm == "relu":
        f = b.ns / ni
    elif nm == "polynomial":
        f = np.sqrt(b.ns / ni)
    else:
        return r
    return r * f[..., None]


# ---- sparsemax / entmax --------------------------------------------------

def _sp_params(ctx, b):
    if ctx["normalizer"] == "entmax":
        return {p: b.params[p] for p in ("alpha", "n_iter") if p in b.params}
    return {}


_TOPK = 32          # candidates per query and key shard in the first pass


def _topk(b, K, rows=None):
    """The ``K`` largest visible scores of each query of the block against
    its keys (``attnnorm._core.topk_scores``: the score GEMM of attention,
    nothing of size nb x ms written), in decreasing order: scores (the loop
    dtype, padding -inf) and key indices (int32 where they fit, padding
    ``ms``), shape ``lead + (nb, K)``.  With ``rows`` (a boolean
    ``lead + (nb,)``): only those queries, as ``(flat row indices, scores,
    keys)`` over the flattened ``lead + (nb,)``, float64 and int64."""
    from . import _core
    dt = np.dtype(b.ctx["dtype"])
    q, k = np.asarray(b.q, dt), np.asarray(b.k, dt)
    mk = b.mask if b.mask is not None else np.broadcast_to(np.True_, (b.nb, b.ms))
    sc = np.asarray(b.scale, dt)
    K = int(min(K, b.ms))
    lead = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], mk.shape[:-2], sc.shape)
    slots = np.empty(K, dt)
    if rows is None:
        if K == 0 or b.nb == 0:
            return (np.full(lead + (b.nb, K), -np.inf), np.full(lead + (b.nb, K), b.ms, np.int64))
        val, idx = _core.topk_scores(q, k, mk, sc, slots)
        val = np.broadcast_to(val, lead + val.shape[-2:])
        # compact for the move to the merge: scores in the loop dtype, keys int32
        idt = np.int32 if b.ms < np.iinfo(np.int32).max else np.int64
        return val, np.where(np.broadcast_to(idx, val.shape) < 0, b.ms, idx).astype(idt)
    flat = np.flatnonzero(np.broadcast_to(rows, lead + (b.nb,)))
    val = np.full((flat.size, K), -np.inf)
    idx = np.full((flat.size, K), b.ms, np.int64)
    if K == 0 or flat.size == 0:
        return flat, val, idx
    # views (no copies of the broadcast operands), one call per matrix
    qb = np.broadcast_to(q, lead + q.shape[-2:])
    kb = np.broadcast_to(k, lead + k.shape[-2:])
    mb = np.broadcast_to(mk, lead + (b.nb, b.ms))
    sb = np.broadcast_to(sc, lead)
    li, ri = np.divmod(flat, b.nb)
    for l in np.unique(li):
        sel = li == l
        at = np.unravel_index(l, lead) if lead else ()
        v_, i_ = _core.topk_scores(qb[at][ri[sel]], kb[at], mb[at][ri[sel]], sb[at], slots)
        val[sel] = v_
        idx[sel] = np.where(i_ < 0, b.ms, i_)
    return flat, val, idx


def _sp_candidates(ctx, b, info):
    """Each row's ``_TOPK`` best keys in this shard (key index and score;
    padding ``ms`` and -inf), and whether the shard may hold more visible
    keys than it listed."""
    b = _Block(ctx, b)
    val, idx = _topk(b, _TOPK)
    more = (idx[..., -1] < b.ms) & (idx.shape[-1] < b.ms) if idx.shape[-1] else \
        np.zeros(idx.shape[:-1], bool)
    return {"idx": idx, "c": val, "more": more, "ms": b.ms}


def _sp_normalize(ctx, info, cs):
    """The normalizer on the candidates of all shards side by side: their
    weights (one array per shard) and the threshold tau of each row."""
    import attnnorm
    lead = np.broadcast_shapes(*[c.shape[:-1] for c in cs])
    cat = np.concatenate([np.broadcast_to(c, lead + c.shape[-1:]) for c in cs], axis=-1,
                         dtype=np.float64)
    prm = {}
    if ctx["normalizer"] == "entmax":
        prm = {p: info["p"][p] for p in ("alpha", "n_iter") if p in info["p"]}
    fn = getattr(attnnorm, ctx["normalizer"]).__wrapped_numpy__
    if cat.shape[-1]:
        w, tau, _ = fn(cat, return_tau=True, **prm)
    else:
        w, tau = np.zeros(cat.shape), np.full(lead, -np.inf)
    out, start = [], 0
    for c in cs:
        out.append(w[..., start:start + c.shape[-1]])
        start += c.shape[-1]
    return out, np.asarray(tau, np.float64)


def _sp_merge(ctx, parts, info):
    """Exactness check of the candidates.  ``tau_c``, the threshold of the
    normalizer on all candidates, is at most the global ``tau`` (fewer keys
    need a lower threshold).  A shard whose lowest listed candidate has
    weight 0 under ``tau_c`` holds no other key above ``tau_c``, so no other
    key of the global support; the rows of a shard where that fails (its
    last candidate has a weight, and it has more visible keys) are listed
    again in the next step down to the score ``tau_c / (alpha - 1)``."""
    info = dict(info)
    info["redo"], info["thr"], info["w"] = [], None, None
    if not parts:
        return info
    ws, tau = _sp_normalize(ctx, info, [p["c"] for p in parts])
    for p, w in zip(parts, ws):
        last = w[..., -1] > 0 if w.shape[-1] else np.zeros(w.shape[:-1], bool)
        info["redo"].append(last & p["more"] if np.any(last & p["more"]) else None)
    if all(r is None for r in info["redo"]):
        # exact already: the weights of the candidates are the global ones
        _sp_keep(info, ws, [(p["idx"], p["ms"]) for p in parts])
    else:
        info["ws0"] = ws
        am1 = 1.0
        if ctx["normalizer"] == "entmax":
            am1 = np.asarray(info["p"].get("alpha", 1.5), np.float64) - 1.0
            am1 = am1[..., None] if am1.ndim else am1
        with np.errstate(divide="ignore", invalid="ignore"):
            thr = (tau - 1e-3 * (1.0 + np.abs(tau))) / am1
        # alpha = 1 (softmax) has no threshold: every key
        info["thr"] = np.where(np.broadcast_to(am1, thr.shape) > 0, thr, -np.inf)
    return info


def _sp_recheck(ctx, b, info):
    """The rows of this shard the check sent back: every visible key scoring
    above ``thr`` (top-K with K doubled until the K-th is below it)."""
    redo = info["redo"][_block_index(info, b)] if info["redo"] else None
    if redo is None:
        return None
    b = _Block(ctx, b)
    lead = np.broadcast_shapes(redo.shape[:-1], info["thr"].shape[:-1])
    thr = np.broadcast_to(info["thr"], lead + (b.nb,)).reshape(-1)
    rows = np.broadcast_to(redo, lead + (b.nb,)).copy()
    K = 2 * _TOPK
    flat_all, val_all, idx_all = [], [], []
    while True:
        flat, val, idx = _topk(b, K, rows)
        done = (idx[:, -1] == b.ms) | (val[:, -1] <= thr[flat]) | (K >= b.ms)
        flat_all.append(flat[done])
        val_all.append(val[done])
        idx_all.append(idx[done])
        if done.all():
            break
        rows = np.zeros(rows.shape, bool)
        rows.reshape(-1)[flat[~done]] = True
        K *= 2
    width = max(v.shape[-1] for v in val_all)
    flat = np.concatenate(flat_all)
    val = np.full((flat.size, width), -np.inf)
    idx = np.full((flat.size, width), b.ms, np.int64)
    r0 = 0
    for v_, i_ in zip(val_all, idx_all):
        val[r0:r0 + v_.shape[0], :v_.shape[1]] = v_
        idx[r0:r0 + v_.shape[0], :v_.shape[1]] = i_
        r0 += v_.shape[0]
    return {"lead": lead, "flat": flat, "c": val, "idx": idx}


def _sp_final(ctx, parts, info):
    """The normalizer again on the rows some shard listed again (their new
    lists replacing the first ones; the other rows keep the weights of the
    check): the global weights of the candidates; each shard keeps those
    with a weight (key index, weight; padding ``ms`` and 0)."""
    first, again = parts
    info = dict(info)
    ws0 = info.pop("ws0", None)
    if info.get("w") is not None or not first:
        return info             # no row was listed again: weights from the check
    lead = np.broadcast_shapes(*[p["c"].shape[:-1] for p in first],
                               *[r["lead"] + (p["c"].shape[-2],)
                                 for p, r in zip(first, again) if r is not None])
    nb = lead[-1]
    aff = np.unique(np.concatenate([r["flat"] for r in again if r is not None]))
    cs, ids = [], []
    for p, r in zip(first, again):
        width = max(p["c"].shape[-1], r["c"].shape[-1] if r is not None else 0)
        c = np.broadcast_to(p["c"], lead + p["c"].shape[-1:]).reshape(-1, p["c"].shape[-1])
        i = np.broadcast_to(p["idx"], lead + p["c"].shape[-1:]).reshape(-1, p["c"].shape[-1])
        c2 = np.full((aff.size, width), -np.inf)
        i2 = np.full((aff.size, width), p["ms"], np.int64)
        c2[:, :c.shape[-1]] = c[aff]
        i2[:, :c.shape[-1]] = i[aff]
        if r is not None:
            at = np.searchsorted(aff, r["flat"])
            c2[at] = -np.inf
            i2[at] = p["ms"]
            c2[at, :r["c"].shape[-1]] = r["c"]
            i2[at, :r["idx"].shape[-1]] = r["idx"]
        cs.append(c2[:, None, :])     # each row its own matrix (per-row parameters)
        ids.append(i2)
    sub = dict(info)
    sub["p"] = _rows_of(info["p"], lead, aff) if ctx["normalizer"] == "entmax" else info["p"]
    wa, _ = _sp_normalize(ctx, sub, cs)
    ws, full = [], []
    nl = int(np.prod(lead, dtype=np.int64))
    for p, w0, w, i2 in zip(first, ws0, wa, ids):
        # weights are a prefix of every row: cut to the widest before assembling
        w = w[:, 0]
        k0 = p["c"].shape[-1]
        w0f = np.broadcast_to(w0, lead + (k0,)).reshape(nl, k0)
        i0f = np.broadcast_to(p["idx"], lead + (k0,)).reshape(nl, k0)
        width = max(int((w0f > 0).sum(-1).max(initial=0)), int((w > 0).sum(-1).max(initial=0)))
        wf = np.zeros((nl, width))
        f = np.full((nl, width), p["ms"], np.int64)
        a, b = min(width, k0), min(width, w.shape[-1])
        wf[:, :a] = w0f[:, :a]
        f[:, :a] = i0f[:, :a]
        wf[aff] = 0.0
        f[aff] = p["ms"]
        wf[aff, :b] = w[:, :b]
        f[aff, :b] = i2[:, :b]
        ws.append(wf.reshape(lead + (width,)))
        full.append((f.reshape(lead + (width,)), p["ms"]))
    _sp_keep(info, ws, full)
    return info


def _rows_of(prm, lead, rows):
    """The per-matrix parameters of the rows ``rows`` (flat over ``lead``)
    as arrays of one entry per row, for the normalizer on those rows."""
    out = dict(prm)
    for key in ("alpha",):
        if key in out and np.ndim(out[key]):
            a = np.broadcast_to(np.asarray(out[key])[..., None], lead).reshape(-1)
            out[key] = a[rows]
    return out


def _sp_keep(info, ws, ids):
    """Each shard's candidates with a weight: a prefix of every row (the
    candidates are in decreasing score order), cut to the widest."""
    info["w"], info["idx"] = [], []
    for w, (idx, ms) in zip(ws, ids):
        pos = w > 0
        width = int(pos.sum(-1).max(initial=0))
        pos = pos[..., :width]
        info["w"].append(np.where(pos, w[..., :width], 0.0))
        info["idx"].append(np.where(pos, np.broadcast_to(idx, w.shape)[..., :width], ms))


def _sp_call(ctx, b, info, fn, index):
    w, idx = info["w"][index], info["idx"][index]
    if fn == "attention":
        # sum over the candidates of w * v[idx]: one sparse (rows x keys)
        # product per shard, O(support x e)
        from scipy import sparse
        lead = np.broadcast_shapes(b.v.shape[:-2], idx.shape[:-2])
        nlead = int(np.prod(lead, dtype=np.int64))
        idx = np.broadcast_to(idx, lead + idx.shape[-2:]).reshape(nlead, b.nb, -1)
        w = np.broadcast_to(w, lead + w.shape[-2:]).reshape(nlead, b.nb, -1)
        # CSR straight from the (row-major) candidates: no sorting
        keep = idx < b.ms
        indptr = np.zeros(nlead * b.nb + 1, np.int64)
        np.cumsum(keep.reshape(nlead * b.nb, -1).sum(-1), out=indptr[1:])
        cols = (idx + (np.arange(nlead, dtype=np.int64) * b.ms)[:, None, None])[keep]
        mat = sparse.csr_matrix((w[keep], cols, indptr), shape=(nlead * b.nb, nlead * b.ms))
        vv = np.broadcast_to(b.v, lead + b.v.shape[-2:]).reshape(nlead * b.ms, -1)
        return np.asarray(mat @ vv.astype(np.float64)).reshape(lead + (b.nb, b.v.shape[-1]))
    lead = idx.shape[:-2]
    out = np.zeros(lead + (b.nb, b.ms + 1))
    np.put_along_axis(out, idx, w, axis=-1)
    return out[..., :b.ms]


# ---- NAP -----------------------------------------------------------------

def _nap_mean(ctx, b, info):
    b = _Block(ctx, b)
    one = _ones(b, b.q.dtype)
    s1 = b.call("attention", "polynomial", v=one, power=1)[..., 0].astype(np.float64)
    return {"s1": s1 * np.sqrt(b.ns)}


def _nap_mean_merge(ctx, parts, info):
    info = dict(info)
    tot = sum(p["s1"] for p in parts) if parts else 0.0
    info["mu"] = tot / np.maximum(info["ni"], 1)
    return info


def _nap_m2(ctx, b, info):
    b = _Block(ctx, b)
    qa, ka = b.augmented(-info["mu"])
    one = np.ones(ka.shape[:-1] + (1,), qa.dtype)
    m2 = b.call("attention", "polynomial", q=qa, k=ka, v=one, power=2)[..., 0].astype(np.float64)
    return {"m2": m2 * np.sqrt(b.ns)}


def _nap_m2_merge(ctx, parts, info):
    info = dict(info)
    tot = sum(p["m2"] for p in parts) if parts else 0.0
    info["sd"] = np.sqrt(tot / np.maximum(info["ni"], 1))
    return info


def _nap_factor(ctx, b, info):
    g = b.lead_param(b.params.get("gain", 1.0))
    eps = b.lead_param(b.params.get("eps", 1e-3))
    return g / (info["sd"] + eps), b.lead_param(b.params.get("bias", 0.0))


def _nap_call(ctx, b, info, fn):
    qa, ka = b.augmented(-info["mu"])
    f, bias = _nap_factor(ctx, b, info)
    sq = np.sqrt(b.ns)[..., None]
    if fn == "attention":
        dev = b.call(fn, "polynomial", q=qa, k=ka, power=1).astype(np.float64) * sq
        vsum = b.call(fn, "affine_softmax", a=0.0, b=1.0).astype(np.float64)
        return f[..., None] * dev + bias[..., None] * vsum
    dev = b.call(fn, "polynomial", q=qa, k=ka, power=1).astype(np.float64) * sq
    return np.where(b.visible(), f[..., None] * dev + bias[..., None], 0.0)


# ---- the global weights / outputs of one block ---------------------------

def _global(ctx, b, info, fn, index):
    """Global weights (fn='attention_weights') or output contribution
    (fn='attention') of one (query block, key shard), float64."""
    fam = ctx["fam"]
    if fam == "elementwise":
        return _ew_call(ctx, b, info, fn)
    if fam == "sparse":
        return _sp_call(ctx, b, info, fn, index)
    if fam == "nap":
        return _nap_call(ctx, b, info, fn)
    if fam == "stickbreaking":
        return _sb_call(ctx, b, info, fn, index)
    if fam == "sinkhorn":
        return _sk_call(ctx, b, info, fn, index)
    if fam == "stochastic_softmax":
        return _st_call(ctx, b, info, fn, index)
    if fam == "rowwise":
        prm = dict(b.params)
        if ctx["normalizer"] == "stochastic_softmax":
            from ._dask import _block_seed
            prm["seed"] = _block_seed(prm.get("seed", 0), (b.q0 + 1, b.k0))
        return b.call(fn, ctx["normalizer"], **prm).astype(np.float64)
    # softmax family
    q, prm = _sm_query(ctx, b, info)
    w = b.call("attention_weights", "softmax", q=q, **prm).astype(np.float64)
    w = w * _sm_weight_factor(info["Ls"][index], info["L"])[..., None]
    if ctx["normalizer"] == "affine_softmax":
        a = np.asarray(b.params.get("a", 1.0), np.float64)
        bb = np.asarray(b.params.get("b", 0.0), np.float64)
        a = a[..., None] if a.ndim else a
        bb = bb[..., None] if bb.ndim else bb
        alive = np.isfinite(info["L"])[..., None]
        w = np.where(b.visible() & alive, a * w + bb, 0.0)
    return w


# ---- non-finite inputs ---------------------------------------------------

def _exact(ctx, blocks, info):
    """The merges above assume finite scores (an infinite or NaN score breaks
    the score floor, the log-normaliser merge, the thresholds and the
    moments).  When the query block, a key shard or a value shard holds an
    infinite or NaN entry, or a score or value could overflow, the query
    block is computed in memory over the concatenated visible shards:
    ``info["exact"]`` holds its global weights (``w``, keys of all visible
    shards in order), output ``o`` and row statistics ``rows``.  Other
    inputs only pay the checks (O(size of q, k, v))."""
    info = dict(info)
    info["exact"] = None
    if not blocks:
        return info
    # the key and value shards by their summaries (_kv_check)
    chk = [b["chk"] for b in blocks]
    with np.errstate(over="ignore", invalid="ignore"):
        finite = np.isfinite(np.asarray(blocks[0]["q"])).all() and all(c["kfin"] for c in chk)
        if ctx["normalizer"] != "stochastic_softmax":
            # (the sharded draws already give weights @ v with any values)
            finite = finite and all(c["vfin"] for c in chk)
        big = math.sqrt(np.finfo(np.dtype(ctx["dtype"])).max)
        sc = np.abs(np.asarray(_Block(ctx, blocks[0]).scale, np.float64)).max(initial=0.0)
        bound = sc * _max_norm(blocks[0]["q"]) * max(c["knorm"] for c in chk)
        vmax = max(c["vmax"] for c in chk)
    if finite and bound <= big and vmax <= big:
        return info
    import attnnorm
    bs = [_Block(ctx, b) for b in blocks]
    b0 = bs[0]
    klead = np.broadcast_shapes(*[b.k.shape[:-2] for b in bs])
    k = np.concatenate([np.broadcast_to(b.k, klead + b.k.shape[-2:]) for b in bs], axis=-2)
    mlead = np.broadcast_shapes(*[b.visible().shape[:-2] for b in bs])
    mk = np.concatenate([np.broadcast_to(b.visible(), mlead + (b.nb, b.ms)) for b in bs], axis=-1)
    prm = dict(b0.params)
    nm = ctx["normalizer"]
    if nm == "stochastic_softmax":
        from ._dask import _block_seed
        prm["seed"] = _block_seed(prm.get("seed", 0), (3,) + b0.pos)
    kw = dict(scale=b0.scale, mask=mk, **prm)
    ex = {"w": attnnorm.attention_weights.__wrapped_numpy__(b0.q, k, nm, **kw).astype(np.float64)}
    if ctx["kind"] == "attention" and b0.v is not None:
        vlead = np.broadcast_shapes(*[b.v.shape[:-2] for b in bs])
        v = np.concatenate([np.broadcast_to(b.v, vlead + b.v.shape[-2:]) for b in bs], axis=-2)
        o, st = attnnorm.attention.__wrapped_numpy__(b0.q, k, v, nm, return_stats=True, **kw)
        if nm == "stochastic_softmax":
            # the same draws as the weights: output = weights @ v
            o = np.matmul(ex["w"], v.astype(np.float64))
        ex["o"] = o.astype(np.float64)
        rows = st if ctx["stats"] else None
    elif ctx["kind"] == "diagnose":
        rows = attnnorm.diagnose.__wrapped_numpy__(b0.q, k, nm, **kw)
    else:
        rows = None
    if rows is not None:
        # the row statistics in memory; argmax as a global key index
        ex["rows"] = dict(zip([f for f, _ in _STAT_FIELDS[ctx["kind"]]], rows))
        if "argmax" in ex["rows"]:
            keys = np.concatenate([np.arange(b.k0, b.k0 + b.ms) for b in bs] + [[-1]])
            ex["rows"]["argmax"] = keys[ex["rows"]["argmax"]]
    ex["k0"] = {b.k0: (sum(x.ms for x in bs[:i]), b.ms) for i, b in enumerate(bs)}
    info["exact"] = ex
    return info


def _max_norm(x):
    """Largest row norm of x in float64."""
    x = np.asarray(x, np.float64)
    return float(np.sqrt((x * x).sum(-1)).max(initial=0.0))


def _kv_check(ctx, b, _):
    """Summary of one key shard (and its values) for ``_exact``: all
    finite, the largest key norm and the largest |value|.  A score
    ``|scale| |q_i| |k_j|`` (Cauchy-Schwarz) or a value beyond
    ``sqrt(max)`` of the loop dtype may overflow in the merges."""
    v = b.get("v")
    with np.errstate(over="ignore", invalid="ignore"):
        return {"kfin": bool(np.isfinite(np.asarray(b["k"])).all()),
                "vfin": v is None or bool(np.isfinite(np.asarray(v)).all()),
                "knorm": _max_norm(b["k"]),
                "vmax": 0.0 if v is None else float(np.abs(np.asarray(v, np.float64))
                                                    .max(initial=0.0))}


def _exact_weights(info, b):
    """This shard's columns of the exact weights, or None."""
    ex = info.get("exact")
    if ex is None:
        return None
    c0, ms = ex["k0"][b.k0]
    return ex["w"][..., c0:c0 + ms]


def _block_index(info, b):
    return info.get("_index", {}).get(b["k0"], 0)


def _out(ctx, b, info):
    if ctx["fam"] == "softmax" or info.get("exact") is not None:
        return None
    blk = _Block(ctx, b)
    return _global(ctx, blk, info, "attention", _block_index(info, b))


def _finish_out(ctx, parts, info):
    dt = np.dtype(ctx["dtype"])
    ni = info["ni"]
    if info.get("exact") is not None:
        out = info["exact"]["o"]
    elif ctx["fam"] == "softmax":
        ctx = dict(ctx)
        ctx["_a"] = info["p"].get("a", 1.0)
        ctx["_b"] = info["p"].get("b", 0.0)
        out = _sm_finish(ctx, info, None)
    else:
        out = 0.0
        for p in parts:
            if p is not None:
                out = out + p
    if np.ndim(out) == 0:
        out = np.zeros(ni.shape + (ctx["e"],))
    out = np.asarray(out)
    empty = ni == 0
    if np.any(empty):
        if ctx["empty"] == "raise":
            raise ValueError("a query sees no key (empty='raise')")
        fill = np.nan if ctx["empty"] == "nan" else 0.0
        out = np.where(empty[..., None], fill, out)
    return out.astype(dt)


def _weights_block(ctx, b, info):
    blk = _Block(ctx, b)
    w = _exact_weights(info, blk)
    if w is None:
        w = _global(ctx, blk, info, "attention_weights", _block_index(info, b))
    w = np.where(blk.visible(), w, 0.0)
    ni = info["ni"]
    if ctx["empty"] == "nan" and np.any(ni == 0):
        w = np.where((ni == 0)[..., None] & blk.visible(), np.nan, w)
    if ctx["empty"] == "raise" and np.any(ni == 0):
        raise ValueError("a query sees no key (empty='raise')")
    return w.astype(np.dtype(ctx["dtype"]))


def _stats(ctx, b, info):
    """Partial row and column reductions of one block's global weights,
    computed on query sub-blocks."""
    blk = _Block(ctx, b)
    idx = _block_index(info, b)
    w = _exact_weights(info, blk)
    if w is None:
        w = _global(ctx, blk, info, "attention_weights", idx)
    vis = blk.visible()
    w = np.where(vis, w, 0.0)
    pos = w > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(pos, w * np.log(np.where(pos, w, 1.0)), 0.0).sum(-1)
    wm = np.where(vis, w, -np.inf)
    am = np.argmax(wm, axis=-1)
    mx = np.take_along_axis(wm, am[..., None], -1)[..., 0]
    nanrow = np.isnan(w).any(-1)
    s = np.concatenate([blk.scores(slice(r0, min(r0 + _SUB, blk.nb)))
                        for r0 in range(0, blk.nb, _SUB)], axis=-2) if blk.nb else \
        np.zeros(w.shape)
    if s.shape[-1] >= 2:
        top = -np.partition(-s, 1, axis=-1)[..., :2]
        top = np.sort(top, axis=-1)[..., ::-1]
    else:
        top = np.concatenate([s, np.full(s.shape[:-1] + (2 - s.shape[-1],), -np.inf)], -1)
    part = dict(ent=ent, mx=mx, am=am + blk.k0, nan=nanrow, top1=top[..., 0], top2=top[..., 1],
                sup=pos.sum(-1), nz=(w != 0).sum(-1), wsum=w.sum(-1), colsum=w.sum(-2), colcnt=vis.sum(-2),
                k0=blk.k0)
    if blk.k0 == 0:
        part["w0"] = w[..., 0]
    return part


def _merge_stats(ctx, parts, info):
    ni = info["ni"]
    if info.get("exact") is not None and "rows" in info["exact"]:
        return {f: np.asarray(x).astype(np.dtype(ctx["dtype"]) if t is None else t)
                for f, (_, t), x in zip(info["exact"]["rows"], _STAT_FIELDS[ctx["kind"]],
                                        info["exact"]["rows"].values())}
    lead = np.broadcast_shapes(ni.shape, *[p["ent"].shape for p in parts])
    ent = np.zeros(lead)
    mx = np.full(lead, -np.inf)
    am = np.full(lead, -1, np.int64)
    t1 = np.full(lead, -np.inf)
    t2 = np.full(lead, -np.inf)
    sup = np.zeros(lead, np.int64)
    nz = np.zeros(lead, np.int64)
    wsum = np.zeros(lead)
    w0 = np.zeros(lead)
    nan = np.zeros(lead, bool)
    for p in parts:
        ent = ent + p["ent"]
        better = p["mx"] > mx
        am = np.where(better, p["am"], am)
        mx = np.where(better, p["mx"], mx)
        t2 = np.maximum(np.minimum(t1, p["top1"]), np.maximum(t2, p["top2"]))
        t1 = np.maximum(t1, p["top1"])
        sup = sup + p["sup"]
        nz = nz + p["nz"]
        wsum = wsum + p["wsum"]
        nan = nan | p["nan"]
        if "w0" in p:
            w0 = w0 + p["w0"]
    empty = np.broadcast_to(ni == 0, lead)
    dt = np.dtype(ctx["dtype"])
    with np.errstate(invalid="ignore"):
        margin = np.where(np.isfinite(t2), t1 - t2, np.nan)
    if ctx["kind"] == "diagnose":
        return dict(entropy=np.where(empty | (nz == 0) | nan, np.nan, ent).astype(dt),
                    max_weight=np.where(empty | ~np.isfinite(mx), 0.0, mx).astype(dt),
                    weight0=w0.astype(dt), margin=margin.astype(dt),
                    support=sup.astype(np.int64))
    lognorm = np.where(empty, np.nan, info["L"]) if ctx["has_lognorm"] else np.full(lead, np.nan)
    bad = empty | nan
    return dict(lognorm=np.broadcast_to(lognorm, lead).astype(dt),
                entropy=np.where(bad | (nz == 0), np.nan, ent).astype(dt),
                max_weight=np.where(bad, np.nan, mx).astype(dt),
                argmax=np.where(bad, -1, am).astype(np.int64),
                weight0=w0.astype(dt), margin=margin.astype(dt),
                support=sup.astype(np.int64), weight_sum=wsum.astype(dt))


def _merge_columns(ctx, parts, shape):
    lshape, ms = shape
    if not parts:
        return np.full(lshape + (ms,), np.nan, np.dtype(ctx["dtype"]))
    cs = sum(p["colsum"] for p in parts)
    cc = sum(p["colcnt"] for p in parts)
    with np.errstate(invalid="ignore", divide="ignore"):
        col = np.where(cc > 0, cs / np.maximum(cc, 1), np.nan)
    return np.broadcast_to(col, lshape + (ms,)).astype(np.dtype(ctx["dtype"]))


def _counts_step(ctx, blocks, _):
    info = _counts(ctx, blocks, None)
    info["_index"] = {b["k0"]: i for i, b in enumerate(blocks)}
    # the parameters of this (leading block, query block), for the merges
    info["p"] = dict(ctx["params"])
    info["pos"] = tuple(blocks[0].get("pos", ())) if blocks else ()
    if blocks:
        info["p"].update(blocks[0].get("params", {}))
    return info


_STEPS = {
    "counts": _counts_step,
    "lognorm": _sm_lognorm, "merge_lognorm": _sm_merge,
    "candidates": _sp_candidates, "merge_candidates": _sp_merge,
    "recheck": _sp_recheck, "merge_recheck": _sp_final,
    "recheck_info": lambda ctx, info, _: {key: info[key] for key in ("redo", "thr", "_index")},
    "mean": _nap_mean, "merge_mean": _nap_mean_merge,
    "sbmass": _sb_mass, "merge_sbmass": _sb_merge,
    "skinit": _sk_init, "merge_skinit": _sk_init_merge,
    "skkernel": lambda ctx, b, info: _sk_kernel(ctx, _Block(ctx, b), info),
    "skrow": _sk_row, "merge_skrow": _sk_row_merge,
    "skcol": _sk_col, "merge_skcol": _sk_col_merge,
    "m2": _nap_m2, "merge_m2": _nap_m2_merge,
    "exact": _exact, "kv_check": _kv_check,
    "out": _out,
    "finish_out": lambda ctx, parts, info: _finish_out(ctx, parts, info),
    "weights_block": _weights_block,
    "stats": _stats,
    "merge_stats": _merge_stats,
    "merge_columns": _merge_columns,
}
