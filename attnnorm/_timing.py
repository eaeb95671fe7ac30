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
