"""Save or compare the outputs of every public attnnorm function on a fixed set
of inputs, to show that a change to the C code leaves results bit-identical.

    OMP_NUM_THREADS=1 python benchmarks/check_bitidentical.py --save /tmp/before_1.npz
    ... change and rebuild ...
    OMP_NUM_THREADS=1 python benchmarks/check_bitidentical.py --compare /tmp/before_1.npz

Inputs cover float32 and float64, boolean masks, causal and windowed rows,
per-head parameters, ``out=``, non-contiguous views, rows of ``-inf`` and NaN
scores, ``m = 1``, and both the online and the generic attention paths.
Comparison is bitwise (NaN payloads included, via the raw bytes).  Results
whose name starts with a normalizer that the saved file does not know (a new
normalizer) are reported as new, not as differences.  Exit status 1 when any
saved result differs or is missing.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
import attnnorm as an  # noqa: E402

# keyword parameters per normalizer: defaults, then a per-head variant (H = 3)
PARAMS = {
    "softmax": [{}, {"temperature": np.array([0.5, 1.0, 2.0])[:, None, None]}],
    "softmax_sink": [{}, {"sink": np.array([-1.0, 0.0, 2.0])[:, None, None]}],
    "ssmax": [{}, {"c": np.array([0.2, 0.43, 1.0])[:, None, None]}],
    "sigmoid": [{}, {"bias": np.array([-1.0, 0.0, 0.5])[:, None, None]}],
    "relu": [{}, {"power": np.array([1.0, 2.0, 0.5])[:, None, None]}],
    "polynomial": [{}, {"power": 1}],
    "softpick": [{}, {"eps": 1e-3}],
    "nap": [{}, {"gain": np.array([1.0, 2.0, 0.5])[:, None, None], "bias": 0.1}],
    "affine_softmax": [{}, {"a": np.array([0.5, 1.0, 2.0])[:, None], "b": 0.25}],
    "sparsemax": [{}],
    "entmax": [{}, {"alpha": np.array([1.0, 1.5, 1.7])[:, None, None], "n_iter": 30}],
    "stochastic_softmax": [{"trials": 64, "seed": 3}, {"trials": 17, "seed": -5}],
    "sinkhorn": [{}, {"n_iter": 3, "eps": 0.5}],
}
# attention and diagnose take per-head parameters shaped against the leading
# axes (B, H): drop the trailing core axes of the normalizer-shaped values
ROWP = {"affine_softmax"}


def _lead_params(name, kw):
    out = {}
    for key, val in kw.items():
        if isinstance(val, np.ndarray) and name not in ROWP:
            val = val.reshape(val.shape[:1])
        out[key] = val
    return out


def scores_cases(rng, dt):
    s = rng.standard_normal((2, 3, 5, 37)).astype(dt) * 2
    s[0, 1, 2, :] = -np.inf                  # an all -inf row
    s[1, 0, 3, 5] = np.inf                   # a +inf score
    s[1, 2, 1, 7] = np.nan                   # a NaN score
    mask = rng.random((3, 5, 37)) > 0.3
    mask[1, 4, :] = False                    # a fully masked row
    sT = np.ascontiguousarray(np.swapaxes(s, -1, -2))
    return {
        "plain": (s, {}),
        "mask": (s, {"mask": mask}),
        "causal": (s, {"causal": True}),
        "window": (s, {"window": (3, 1), "causal": False}),
        "causal_window_mask": (s, {"causal": True, "window": (6, None), "mask": mask}),
        "strided": (sT.swapaxes(-1, -2), {"causal": True}),
        "every_other": (s[..., ::2], {}),
        "m1": (s[..., :1], {}),
        "row": (s[0, 0, 0], {}),
        "empty_nan": (s, {"mask": mask, "empty": "nan"}),
    }


def normalizer_results(rng, dt, res):
    cases = scores_cases(rng, dt)
    for name, fn in an.NORMALIZERS.items():
        for pi, kw in enumerate(PARAMS.get(name, [{}])):
            for cname, (s, opts) in cases.items():
                if pi and cname in ("row", "m1", "every_other"):
                    continue
                if name == "affine_softmax" and np.ndim(s) < 3 and kw:
                    continue
                key = f"{name}|p{pi}|{cname}|{dt.__name__}"
                res[key] = fn(s, **kw, **opts)
            if name in ("sparsemax", "entmax"):
                s, opts = cases["mask"]
                w, tau, sup = fn(s, return_tau=True, **kw, **opts)
                res[f"{name}|p{pi}|tau|{dt.__name__}"] = (w, tau, sup)
        # out= and axes=
        s, opts = cases["causal"]
        out = np.empty(s.shape, dtype=dt)
        fn(s, out=out, **PARAMS.get(name, [{}])[0], **opts)
        res[f"{name}|out|{dt.__name__}"] = out
        res[f"{name}|axes|{dt.__name__}"] = fn(np.swapaxes(s, 0, -1), axes=[(-2, 0), (-2, 0)],
                                               **PARAMS.get(name, [{}])[0])


def attention_results(rng, dt, res):
    shapes = [((2, 3, 7, 16), (2, 1, 40, 16), (2, 1, 40, 8)),
              ((1, 2, 64, 32), (1, 2, 300, 32), (1, 2, 300, 24))]
    for si, (qs, ks, vs) in enumerate(shapes):
        q = rng.standard_normal(qs).astype(dt)
        k = rng.standard_normal(ks).astype(dt)
        v = rng.standard_normal(vs).astype(dt)
        n, m = qs[-2], ks[-2]
        mask = rng.random((n, m)) > 0.25
        mask[1, :] = False
        optsets = {
            "plain": {},
            "causal": {"causal": True},
            "window": {"window": (5, 2)},
            "mask_causal": {"mask": mask, "causal": True},
        }
        for name in an.NORMALIZERS:
            for pi, kw in enumerate(PARAMS.get(name, [{}])):
                kw = _lead_params(name, kw)
                if si == 1 and pi:
                    continue
                if name == "affine_softmax" and qs[1] != 3 and kw:
                    continue
                if qs[1] != 3 and any(isinstance(v_, np.ndarray) for v_ in kw.values()):
                    continue
                for oname, opts in optsets.items():
                    key = f"att{si}|{name}|p{pi}|{oname}|{dt.__name__}"
                    res[key + "|out"] = an.attention(q, k, v, name, **kw, **opts)
                    o, st = an.attention(q, k, v, name, return_stats=True, **kw, **opts)
                    res[key + "|stats"] = (o,) + tuple(st)
                    res[key + "|weights"] = an.attention_weights(q, k, name, **kw, **opts)
                    if name != "sinkhorn":
                        res[key + "|diagnose"] = tuple(an.diagnose(q, k, name, **kw, **opts))
        # non-contiguous q/k/v
        qn = np.swapaxes(np.ascontiguousarray(np.swapaxes(q, -1, -2)), -1, -2)
        res[f"att{si}|noncontig|{dt.__name__}"] = an.attention(qn, k[..., ::1, :], v[..., ::-1, :],
                                                               causal=True)
        res[f"att{si}|scale|{dt.__name__}"] = an.attention(q, k, v, scale=0.3, window=(4, 4))


def diagnostics_results(rng, dt, res):
    a = an.softmax(rng.standard_normal((2, 6, 9)).astype(dt), causal=True)
    s = rng.standard_normal((2, 6, 9)).astype(dt)
    mask = rng.random((6, 9)) > 0.3
    x = rng.standard_normal((2, 9, 4)).astype(dt)
    t = dt.__name__
    for opts_name, opts in {"plain": {}, "causal": {"causal": True},
                            "mask": {"mask": mask, "window": (3, 2)}}.items():
        res[f"diag|entropy|{opts_name}|{t}"] = an.entropy(a, **opts)
        res[f"diag|entropy_n|{opts_name}|{t}"] = an.entropy(a, normalized=True, **opts)
        res[f"diag|entropy_b|{opts_name}|{t}"] = an.entropy(a, base=2, **opts)
        res[f"diag|effsup|{opts_name}|{t}"] = an.effective_support(a, **opts)
        res[f"diag|pr|{opts_name}|{t}"] = an.participation_ratio(a, **opts)
        res[f"diag|sup|{opts_name}|{t}"] = an.support_size(a, threshold=0.05, **opts)
        res[f"diag|colmass|{opts_name}|{t}"] = an.column_mass(a, **opts)
        res[f"diag|sinkmass|{opts_name}|{t}"] = an.sink_mass(a, sink=2, **opts)
        res[f"diag|margin|{opts_name}|{t}"] = an.separation_margin(s, **opts)
        res[f"diag|negmass|{opts_name}|{t}"] = an.negative_mass(s, **opts)
        for nm, p in [("softmax", {}), ("softmax", {"temperature": 0.7}), ("sparsemax", {}),
                      ("entmax", {"alpha": 1.3}), ("sigmoid", {}), ("relu", {"power": 2}),
                      ("polynomial", {}), ("ssmax", {}), ("softmax_sink", {})]:
            fn = getattr(an, nm)
            w = fn(s, **p, **opts)
            for o in (2, "fro"):
                res[f"diag|jac|{nm}|{sorted(p)}|{o}|{opts_name}|{t}"] = \
                    an.jacobian_norm(w, nm, o, **p, **opts)
        w = an.softpick(s, **opts)
        res[f"diag|jac|softpick|{opts_name}|{t}"] = an.jacobian_norm(w, "softpick", "fro",
                                                                     scores=s, **opts)
    for o in (1, 2, np.inf):
        res[f"diag|rowres|{o}|{t}"] = an.row_residual(a, ord=o)
        res[f"diag|colres|{o}|{t}"] = an.column_residual(a, ord=o)
    res[f"diag|fro|{t}"] = an.frobenius_norm(a)
    res[f"diag|rank|{t}"] = an.rank_collapse(x)
    out = np.empty(a.shape[:-1], dtype=dt)
    an.entropy(a, out=out)
    res[f"diag|entropy_out|{t}"] = out
    q = rng.standard_normal((2, 6, 4)).astype(dt)
    k = rng.standard_normal((2, 9, 4)).astype(dt)
    res[f"diag|vanish|{t}"] = an.vanishing_bounds(q, k, causal=True)
    res[f"diag|seldist|{t}"] = an.selectivity_distance(a, x, 3)
    res[f"diag|geosep|{t}"] = an.geometric_separability(a, x, 3)
    res[f"diag|norms|{t}"] = an.attention_norms(a, x)
    aa = an.softmax(rng.standard_normal((2, 3, 5, 5)).astype(dt))
    fx = rng.standard_normal((2, 3, 5, 4)).astype(dt)
    xx = rng.standard_normal((2, 5, 4)).astype(dt)
    mr = an.mixing_ratios(aa, fx, xx)
    res[f"diag|mixing|{t}"] = mr[:3]


def linear_results(rng, dt, res):
    q = rng.standard_normal((2, 7, 5)).astype(dt)
    k = rng.standard_normal((2, 9, 5)).astype(dt)
    v = rng.standard_normal((2, 9, 3)).astype(dt)
    t = dt.__name__
    for fm in ("elu1", "relu", "exp", "identity"):
        for c in (False, True):
            res[f"lin|{fm}|{c}|{t}"] = an.linear_attention(q, k, v, fm, causal=c)
    res[f"lin|noncontig|{t}"] = an.linear_attention(q[:, ::-1], k, v[..., ::2], causal=True)
    for c in (False, True):
        res[f"log|{c}|{t}"] = an.log_attention(q, k, v, causal=c, return_state=True)
        res[f"cheap|{c}|{t}"] = an.cheap_linear_attention(k, q, causal=c)
    s = rng.standard_normal((2, 9)).astype(dt)
    res[f"zeros|{t}"] = an.zeros_attention(q[:, :9] if q.shape[1] >= 9 else
                                           np.concatenate([q, q], 1)[:, :9], k, v, s, 0.3, 0.7)
    res[f"zerosw|{t}"] = an.zeros_weights(s, 0.3, 0.7)
    qq = rng.standard_normal((2, 12, 5)).astype(dt)
    vv = rng.standard_normal((2, 12, 3)).astype(dt)
    res[f"soft|{t}"] = an.soft_attention(qq, vv, n_landmarks=4, return_residuals=True)
    res[f"softk|{t}"] = an.soft_kernel(qq)


def collect():
    res = {}
    for dt in (np.float32, np.float64):
        rng = np.random.default_rng(20261129)
        normalizer_results(rng, dt, res)
        attention_results(rng, dt, res)
        diagnostics_results(rng, dt, res)
        linear_results(rng, dt, res)
    flat = {}
    for key, val in res.items():
        vals = val if isinstance(val, tuple) else (val,)
        for i, arr in enumerate(vals):
            flat[f"{key}#{i}"] = np.asarray(arr)
    return flat


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--save", metavar="NPZ")
    g.add_argument("--compare", metavar="NPZ")
    args = ap.parse_args()
    flat = collect()
    if args.save:
        np.savez(args.save, **flat)
        print(f"saved {len(flat)} arrays to {args.save} (threads {an.get_num_threads()})")
        return 0
    old = np.load(args.compare)
    known = {k.split("|")[1] for k in old.files if k.startswith("att")} | \
        {k.split("|")[0] for k in old.files}
    bad, new = [], []
    for key in old.files:
        if key not in flat:
            bad.append(f"missing: {key}")
            continue
        a, b = old[key], flat[key]
        if a.dtype != b.dtype or a.shape != b.shape or a.tobytes() != b.tobytes():
            bad.append(f"differs: {key} ({a.dtype}{a.shape} vs {b.dtype}{b.shape})")
    for key in flat:
        if key not in old.files:
            parts = key.split("|")
            nm = parts[1] if key.startswith("att") else parts[0]
            (new if nm not in known else bad).append(f"new: {key}")
    print(f"{len(old.files)} saved arrays, {len(bad)} problems, {len(new)} new results "
          f"(threads {an.get_num_threads()})")
    for line in bad[:50]:
        print("  " + line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
