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
    measurements on a shared machine.

    The order within a pair alternates (ref f, f ref, ref f, ...), so that
    each side follows the other as often as itself: a call can slow down the
    one after it, and not symmetrically.  On the development machine
    attnnorm's softmax rows of (8, 1024, 1024) float32 took 1.23-1.26 ms
    after themselves and 1.44-1.47 ms after torch.softmax(out=), whose own
    time was 2.0 ms after either."""
    if warmup:
        f()
        ref()
    tf, ratios = [], []
    for i in range(repeat):
        swap = i % 2 == 1
        first, second = (f, ref) if swap else (ref, f)
        t0 = clock()
        first()
        t1 = clock()
        second()
        t2 = clock()
        t_f, t_ref = (t1 - t0, t2 - t1) if swap else (t2 - t1, t1 - t0)
        tf.append(t_f)
        ratios.append(t_f / t_ref)
    return statistics.median(tf), statistics.median(ratios)
