"""Linear-time attention family: time vs sequence length, and the ratio to a
NumPy implementation of the same formula (d = e = 64, float32, 2 threads).

    python benchmarks/bench_linear.py [--sizes 1024 2048 ...] [--threads 2]
                                      [--only linear_attention,log_attention]

For each function and n the table prints attnnorm's time (median of up to 5
runs after a warm-up call; runs over 2 s are not repeated), NumPy's time for
the same formula (likewise, over 0.5 s not repeated), their ratio (NumPy / attnnorm,
> 1 means attnnorm is faster) and, per function, time(65536) / time(8192)
(linear growth gives 8; the acceptance bound is 10).

NumPy peers (what a user would write; BLAS matmuls, no n x n matrix):
  linear_attention  elu1+1 features; non-causal: two matmuls; causal: chunks
                    of 128 (masked intra-chunk matmul + running state)
  log_attention     causal, Heinsen's log-space form on chunks of 128, only
                    up to n = 8192 by default (it takes ~1 s per 1024 tokens)
                    (logaddexp-accumulate of k and k + log|v|, signed values
                    as two streams, state carried with logaddexp)
  cheap_linear      causal, chunks of 128 (running C = sum h h^T)
  zeros_attention   causal prefix-sum form on chunks of 128 (F, G, H states)
  soft_attention    Nystrom with 64 segment-mean landmarks, 20 Newton steps
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import attnnorm as an  # noqa: E402

CH = 128


def elu1(x):
    return np.where(x > 0, x + 1, np.exp(np.minimum(x, 0)))


def np_linear(q, k, v, causal):
    fq, fk = elu1(q), elu1(k)
    if not causal:
        return (fq @ (fk.T @ v)) / (fq @ fk.sum(0) + 1e-6)[:, None]
    n, d = q.shape
    S = np.zeros((d, v.shape[1]), q.dtype)
    z = np.zeros(d, q.dtype)
    out = np.empty((n, v.shape[1]), q.dtype)
    tri = np.tri(CH, dtype=q.dtype)
    for s in range(0, n, CH):
        a, b, c = fq[s:s + CH], fk[s:s + CH], v[s:s + CH]
        w = (a @ b.T) * tri[:len(a), :len(a)]
        num = a @ S + w @ c
        den = a @ z + w.sum(1) + 1e-6
        out[s:s + CH] = num / den[:, None]
        S += b.T @ c
        z += b.sum(0)
    return out


def np_log(q, k, v):
    n, d = q.shape
    e = v.shape[1]
    with np.errstate(divide="ignore"):
        lvp = np.where(v > 0, np.log(np.abs(v)), -np.inf)
        lvn = np.where(v < 0, np.log(np.abs(v)), -np.inf)
    hz = np.full(d, -np.inf, q.dtype)
    hp = np.full((d, e), -np.inf, q.dtype)
    hn = np.full((d, e), -np.inf, q.dtype)
    out = np.empty((n, e), q.dtype)

    def lse(x, axis):
        m = np.max(x, axis=axis, keepdims=True)
        m = np.where(np.isfinite(m), m, 0)
        return np.squeeze(m, axis) + np.log(np.exp(x - m).sum(axis))

    with np.errstate(divide="ignore", invalid="ignore"):
        for s in range(0, n, CH):
            kc = k[s:s + CH]
            cz = np.logaddexp(hz, np.logaddexp.accumulate(kc, axis=0))
            cp = np.logaddexp(hp, np.logaddexp.accumulate(kc[:, :, None] + lvp[s:s + CH, None, :], axis=0))
            cn = np.logaddexp(hn, np.logaddexp.accumulate(kc[:, :, None] + lvn[s:s + CH, None, :], axis=0))
            qc = q[s:s + CH]
            logz = lse(qc + cz, -1)
            out[s:s + CH] = (np.exp(lse(qc[:, :, None] + cp, -2) - logz[:, None])
                             - np.exp(lse(qc[:, :, None] + cn, -2) - logz[:, None]))
            hz, hp, hn = cz[-1], cp[-1], cn[-1]
    return out


def np_cheap(h, q):
    n, k = q.shape
    C = np.zeros((k, k), q.dtype)
    out = np.empty_like(q)
    tri = np.tri(CH, dtype=q.dtype)
    for s in range(0, n, CH):
        hc, qc = h[s:s + CH], q[s:s + CH]
        w = (qc @ hc.T) * tri[:len(qc), :len(qc)]
        out[s:s + CH] = qc @ C + w @ hc
        C += hc.T @ hc
    return out


def np_zeros(q, k, v, s, g1, gh):
    n, d = q.shape
    e = v.shape[1]
    F = np.zeros((d, e), q.dtype); G = np.zeros_like(F); H = np.zeros_like(F)
    E = 0.0; P = 0.0; smax = -np.inf; t0 = 0
    out = np.empty((n, e), q.dtype)
    tri = np.tri(CH, dtype=bool)
    for st in range(0, n, CH):
        qc, kc, vc, sc = q[st:st + CH], k[st:st + CH], v[st:st + CH], s[st:st + CH].astype(np.float64)
        L = len(qc)
        new_max = max(smax, sc.max())
        if np.isfinite(smax):
            F *= np.exp(smax - new_max); E *= np.exp(smax - new_max)
        smax = new_max
        es = np.exp(sc - smax)
        cE = E + np.cumsum(es); cP = P + np.cumsum(sc)
        t = t0 + np.arange(1, L + 1)
        alpha = gh / cE; beta = (g1 - gh) / t; gamma = -(beta * cP + gh) / t
        qk = (qc @ kc.T) * tri[:L, :L]
        r = (alpha[:, None] * es[None, :] + beta[:, None] * sc[None, :] + gamma[:, None]) * qk
        out[st:st + CH] = (alpha[:, None] * (qc @ F) + beta[:, None] * (qc @ G)
                           + gamma[:, None] * (qc @ H) + r.astype(q.dtype) @ vc)
        kv = kc.T
        F += (kv * es.astype(q.dtype)) @ vc; G += (kv * sc.astype(q.dtype)) @ vc; H += kv @ vc
        E, P, t0 = cE[-1], cP[-1], t0 + L
    return out


def np_soft(q, v, L=64, iters=20):
    n, d = q.shape
    lm = np.stack([x.mean(0) for x in np.array_split(q, L)])
    g = 1.0 / (2 * np.sqrt(d))
    sq = lambda a, b: (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    A = np.exp(-g * sq(q, lm))
    B = np.exp(-g * sq(lm, lm))
    V = 2.0 / np.abs(B).sum(0).max() ** 2 * B
    for _ in range(iters):
        V = 2 * V - V @ (B @ V)
    return A @ (V @ (A.T @ v))


def median_time(f, budget=0.5, reps=5):
    """Median of up to `reps` runs after one untimed warm-up call (a first
    call pays page faults and thread start-up); once a run takes over
    `budget` seconds no more are started (the machine may be shared: medians,
    not minima)."""
    f()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
        if ts[-1] > budget:
            break
    return float(np.median(ts))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+",
                    default=[1024, 2048, 4096, 8192, 16384, 32768, 65536])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default="")
    ap.add_argument("--no-numpy", action="store_true")
    ap.add_argument("--blas-threads", type=int, default=None,
                    help="threads for NumPy's BLAS (default: --threads)")
    ap.add_argument("--numpy-log-max", type=int, default=8192,
                    help="largest n for the (slow) NumPy log-space peer")
    args = ap.parse_args()
    an.set_num_threads(args.threads)
    blas = args.threads if args.blas_threads is None else args.blas_threads
    try:
        from threadpoolctl import threadpool_limits
        limit = threadpool_limits(blas)
    except ImportError:
        limit = None
    d = e = 64
    rng = np.random.default_rng(0)
    nmax = max(args.sizes)
    Q, K, V = (rng.normal(size=(nmax, d)).astype(np.float32) for _ in range(3))
    S = rng.normal(size=nmax).astype(np.float32)
    Qn = Q / np.linalg.norm(Q, axis=1, keepdims=True)
    Kn = K / np.linalg.norm(K, axis=1, keepdims=True)
    cases = {
        "linear_attention": (lambda n: an.linear_attention(Q[:n], K[:n], V[:n]),
                             lambda n: np_linear(Q[:n], K[:n], V[:n], False)),
        "linear_attention causal": (lambda n: an.linear_attention(Q[:n], K[:n], V[:n], causal=True),
                                    lambda n: np_linear(Q[:n], K[:n], V[:n], True)),
        "log_attention causal": (lambda n: an.log_attention(Q[:n], K[:n], V[:n], causal=True),
                                 lambda n: np_log(Q[:n], K[:n], V[:n])),
        "cheap_linear causal": (lambda n: an.cheap_linear_attention(K[:n], Q[:n], causal=True),
                                lambda n: np_cheap(K[:n], Q[:n])),
        "zeros_attention causal": (lambda n: an.zeros_attention(Qn[:n], Kn[:n], V[:n], S[:n], 0.3, 0.7),
                                   lambda n: np_zeros(Qn[:n], Kn[:n], V[:n], S[:n], 0.3, 0.7)),
        "soft_attention": (lambda n: an.soft_attention(Q[:n], V[:n], n_landmarks=64),
                           lambda n: np_soft(Q[:n], V[:n])),
    }
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    print(f"attnnorm {an.__version__}, simd {an.simd_path()}, threads {args.threads}, "
          f"BLAS threads {blas}, d = e = {d}, float32")
    print(f"{'function':26s} {'n':>6s} {'attnnorm s':>11s} {'numpy s':>9s} {'numpy/attnnorm':>15s}")
    for name, (fa, fn) in cases.items():
        if only and not any(o in name for o in only):
            continue
        ta = {}
        for n in args.sizes:
            ta[n] = median_time(lambda: fa(n), budget=2.0)
            if args.no_numpy or (name.startswith("log") and n > args.numpy_log_max):
                print(f"{name:26s} {n:6d} {ta[n]:11.4f} {'-':>9s} {'-':>15s}", flush=True)
                continue
            tn = median_time(lambda: fn(n))
            print(f"{name:26s} {n:6d} {ta[n]:11.4f} {tn:9.4f} {tn / ta[n]:15.2f}", flush=True)
        if 8192 in ta and 65536 in ta:
            print(f"{name:26s} time(65536)/time(8192) = {ta[65536] / ta[8192]:.2f}", flush=True)
    if limit is not None:
        limit.unregister() if hasattr(limit, "unregister") else None


if __name__ == "__main__":
    main()
