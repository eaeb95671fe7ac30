"""attnnorm on a dask LocalCluster of 2 single-threaded worker processes
against one single-threaded process.

Targets:
  (a) batch: softmax attention of B heads x (n, m, d) float32 (default
      256 x (1024, 1024, 64)); the cluster maps the heads blockwise
      (2 chunks of B/2 heads);
  (b) key-sharded: softmax and entmax (alpha = 1.5) attention of one head at
      n = m (default 65536), d = 64, float32, the key axis split into 2
      shards (one per worker); results compared with the single process.

Protocol: the inputs are generated once, in the client for the single
process and on the workers (persisted, same seed and values) for the
cluster, so neither side pays for moving the inputs.  The cluster time is
``persist`` + ``wait`` of the result (it stays on the workers: what a
pipeline that continues on the cluster pays), and ``+ gather`` adds bringing
it to the client.  Single and cluster runs alternate (A B A B ...); the
table gives the median times and the median of the per-pair ratios.  The
merge overhead of (b) is the time of the merge tasks (dask's task stream)
relative to the total.

Every worker runs attnnorm with one OpenMP thread; so does the single
process (attnnorm.set_num_threads(1), OMP_NUM_THREADS=1).

A load-independent measure of the work the dask path adds ("work" in the
notes of every case): the CPU time (time.process_time) of the graph (two
blocks of heads for (a), two key shards for (b)) on dask's synchronous
scheduler over that of one single-threaded call, median of paired runs; two
free workers can give at most 2 / work.

Usage: python benchmarks/bench_dask.py [--target a|b|both] [--repeat R]
       [--heads B] [--n N] [--long L] [--normalizers NAME ...] [--full]

The defaults (64 heads, n = m = 16384) finish in a few minutes; --full runs
the sizes of the targets (256 heads, n = m = 65536).
"""
import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"
os.environ["PYTHONPATH"] = os.pathsep.join([ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p])
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import dask.array as da  # noqa: E402
import attnnorm as an  # noqa: E402


def _gen(shape, seed, dtype):
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32).astype(dtype)


def _lazy_inputs(shapes, chunks):
    """Dask arrays whose blocks are generated on the workers (block i of
    input j from seed (j, i)); the NumPy equivalent is np.block of them."""
    out = []
    for j, (shape, ch) in enumerate(zip(shapes, chunks)):
        arr = da.map_blocks(lambda block_info=None, j=j, shape=shape:
                            _gen(block_info[None]["chunk-shape"],
                                 [j] + list(block_info[None]["chunk-location"]), np.float32),
                            chunks=da.core.normalize_chunks(ch, shape), dtype=np.float32,
                            meta=np.empty((0,) * len(shape), np.float32))
        out.append(arr)
    return out


def _pairs(single, cluster, repeat):
    ts, tc, ratios = [], [], []
    single()
    cluster()
    for _ in range(repeat):
        t0 = time.perf_counter()
        single()
        t1 = time.perf_counter()
        cluster()
        t2 = time.perf_counter()
        ts.append(t1 - t0)
        tc.append(t2 - t1)
        ratios.append((t1 - t0) / (t2 - t1))
    return statistics.median(ts), statistics.median(tc), statistics.median(ratios)


def target_a(client, heads, n, d, repeat):
    from distributed import wait
    shapes = [(heads, n, d)] * 3
    chunks = [(heads // 2, n, d)] * 3
    q, k, v = [x.persist() for x in _lazy_inputs(shapes, chunks)]
    wait([q, k, v])
    qn, kn, vn = [x.compute() for x in (q, k, v)]
    ref = an.attention(qn, kn, vn)

    def single():
        an.attention(qn, kn, vn)

    def cluster():
        r = an.attention(q, k, v).persist()
        wait(r)
        del r

    def cluster_gather():
        return an.attention(q, k, v).compute()

    err = float(np.abs(cluster_gather() - ref).max())
    ts, tc, speed = _pairs(single, cluster, repeat)
    _, tg, speed_g = _pairs(single, cluster_gather, max(1, repeat // 2))
    lazy = an.attention(*[da.from_array(x, chunks=(heads // 2, n, d)) for x in (qn, kn, vn)])
    work = _work_ratio(lambda: an.attention(qn, kn, vn), lazy, repeat)
    return dict(single=ts, cluster=tc, speedup=speed, cluster_gather=tg, speedup_gather=speed_g,
                max_abs_diff=err, work=work)


def target_b(client, n, d, normalizer, repeat):
    from distributed import wait
    shapes = [(n, d)] * 3
    chunks = [(n, d), (n // 2, d), (n // 2, d)]
    q, k, v = [x.persist() for x in _lazy_inputs(shapes, chunks)]
    wait([q, k, v])
    qn, kn, vn = [x.compute() for x in (q, k, v)]

    def single():
        return an.attention(qn, kn, vn, normalizer)

    def cluster():
        r = an.attention(q, k, v, normalizer).persist()
        wait(r)
        del r

    ref = single()
    res = an.attention(q, k, v, normalizer).compute()
    lazy = an.attention(da.from_array(qn, chunks=qn.shape),
                        da.from_array(kn, chunks=(n // 2, -1)),
                        da.from_array(vn, chunks=(n // 2, -1)), normalizer)
    work = _work_ratio(single, lazy, repeat)
    err = float(np.abs(res - ref).max())
    rel = err / float(np.abs(ref).max())
    ts, tc, speed = _pairs(single, cluster, repeat)
    # merge overhead: time spent in the merge tasks, from the task stream
    from distributed import get_task_stream
    with get_task_stream(client) as st:
        cluster()
    tot, merge = 0.0, 0.0
    for rec in st.data:
        for s in rec.get("startstops", ()):
            if s.get("action") != "compute":
                continue
            dt = s["stop"] - s["start"]
            tot += dt
            key = rec["key"][0] if isinstance(rec["key"], tuple) else rec["key"]
            if key.startswith(("attnnorm-merge", "attnnorm-finish", "attnnorm-counts")):
                merge += dt
    return dict(single=ts, cluster=tc, speedup=speed, max_abs_diff=err, rel_diff=rel,
                merge_share=merge / tot if tot else float("nan"), merge_seconds=merge,
                work=work)


def _work_ratio(single, lazy, repeat):
    """Median over paired runs of the CPU time of the dask graph ``lazy``
    (synchronous scheduler, in this process) / the CPU time of ``single()``."""
    ratios = []
    lazy.compute(scheduler="sync")
    for _ in range(repeat):
        t0 = time.process_time()
        single()
        t1 = time.process_time()
        lazy.compute(scheduler="sync")
        t2 = time.process_time()
        ratios.append((t2 - t1) / (t1 - t0))
    return statistics.median(ratios)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", default="both", choices=["a", "b", "both"])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--heads", type=int, default=64)
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--long", type=int, default=16384)
    ap.add_argument("--normalizers", nargs="+", default=["softmax", "entmax"])
    ap.add_argument("--full", action="store_true",
                    help="the target sizes: 256 heads, n = m = 65536")
    args = ap.parse_args()
    if args.full:
        args.heads, args.long = 256, 65536
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; medians of "
          f"{args.repeat} paired runs (single, cluster)", flush=True)
    an.set_num_threads(1)
    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        client.run(lambda: __import__("attnnorm").set_num_threads(1))
        print(f"{'case':58s} {'single s':>9s} {'cluster s':>9s} {'speed-up':>9s}  notes",
              flush=True)
        if args.target in ("a", "both"):
            r = target_a(client, args.heads, args.n, 64, args.repeat)
            _row(f"(a) softmax, {args.heads} x ({args.n}, {args.n}, 64) float32", r)
        if args.target in ("b", "both"):
            for nm in args.normalizers:
                r = target_b(client, args.long, 64, nm, args.repeat)
                _row(f"(b) {nm}, n = m = {args.long}, d = 64 float32, 2 key shards", r)


def _row(name, r):
    notes = f"max |diff| {r['max_abs_diff']:.2e}"
    if "work" in r:
        notes += f", work {r['work']:.2f}x"
    if "merge_share" in r:
        notes += f", merge tasks {100 * r['merge_share']:.2f}% of task time " \
                 f"({r['merge_seconds']:.3f} s)"
    if "cluster_gather" in r:
        notes += f"; with gather {r['cluster_gather']:.3f} s ({r['speedup_gather']:.2f}x)"
    print(f"{name:58s} {r['single']:9.3f} {r['cluster']:9.3f} {r['speedup']:8.2f}x  {notes}",
          flush=True)


if __name__ == "__main__":
    main()
