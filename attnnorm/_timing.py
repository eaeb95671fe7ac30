"""Median wall-time helper shared by `python -m attnnorm` and benchmarks/."""
import statistics
import time


def median_time(f, repeat, warmup=True, clock=time.perf_counter):
    """Median time in seconds of `repeat` calls of f() (after one untimed
    warm-up call unless warmup=False), by `clock`: wall time by default;
    time.process_time gives the CPU time of all the process's threads, which
    other processes on a shared machine do not inflate."""
    if warmup:
        f()
    times = []
    for _ in range(repeat):
        t0 = clock()
        f()
        times.append(clock() - t0)
    return statistics.median(times)


def paired_times(f, ref, repeat, warmup=True, clock=time.perf_counter):
    """Time f and ref back to back `repeat` times (after one warm-up of each
    unless warmup=False), by `clock` (as median_time).  Returns (median time
    of f, median of the ratios t_f / t_ref of each pair): a ratio measured
    pair by pair is not moved by load that drifts between the two
    measurements on a shared machine."""
    if warmup:
        f()
        ref()
    tf, ratios = [], []
    for _ in range(repeat):
        t0 = clock()
        ref()
        t1 = clock()
        f()
        t2 = clock()
        tf.append(t2 - t1)
        ratios.append((t2 - t1) / (t1 - t0))
    return statistics.median(tf), statistics.median(ratios)
