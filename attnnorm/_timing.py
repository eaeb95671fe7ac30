"""Median wall-time helper shared by `python -m attnnorm` and benchmarks/."""
import statistics
import time


def median_time(f, repeat, warmup=True):
    """Median wall time in seconds of `repeat` calls of f() (after one untimed
    warm-up call unless warmup=False)."""
    if warmup:
        f()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def paired_times(f, ref, repeat, warmup=True):
    """Time f and ref back to back `repeat` times (after one warm-up of each
    unless warmup=False).  Returns (median time of f, median of the ratios
    t_f / t_ref of each pair): a ratio measured pair by pair is not moved by
    load that drifts between the two measurements on a shared machine."""
    if warmup:
        f()
        ref()
    tf, ratios = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        ref()
        t1 = time.perf_counter()
        f()
        t2 = time.perf_counter()
        tf.append(t2 - t1)
        ratios.append((t2 - t1) / (t1 - t0))
    return statistics.median(tf), statistics.median(ratios)
