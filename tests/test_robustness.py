"""Edge cases an adversarial user hits: huge window bounds, -inf scores in
streamed diagnostics, NaN confinement in causal scans, large |q| in log space,
degenerate SOFT landmarks, one dtype rule, unbounded trials and iterations,
Ctrl-C, fork, thread counts, memory of many tiny problems, error messages."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from numpy.testing import assert_allclose, assert_array_equal

import attnnorm as an
from attnnorm import _reference as ref

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIG = [2 ** 62, 2 ** 63 - 2, 2 ** 63 - 1, 2 ** 64, 10 ** 30]


def run_py(code, timeout=60, env=None):
    e = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    e.update(env or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env=e)


# ---------------------------------------------------------------- 1. window overflow

def test_huge_window_bounds_mean_unbounded():
    assert_allclose(an.softmax(np.zeros((2, 3)), window=(None, 2 ** 63 - 2)), 1 / 3)
    assert_allclose(an.softmax(np.zeros((5, 2)), window=(2 ** 63 - 1, None)), 0.5)
    s = np.random.default_rng(0).normal(size=(5, 7))
    for causal in (False, True, "top_left"):
        for big in BIG:
            for w in [(big, None), (None, big), (big, big), (big, 0), (0, big)]:
                small = tuple(None if x is None else (20 if x == big else x) for x in w)
                assert_array_equal(an.softmax(s, causal=causal, window=w),
                                   an.softmax(s, causal=causal, window=small), err_msg=str(w))
                assert_array_equal(ref.visible(5, 7, causal=causal, window=w),
                                   ref.visible(5, 7, causal=causal, window=small))


def test_huge_window_in_every_entry_point():
    g = np.random.default_rng(1)
    q, k, v = g.normal(size=(4, 3)), g.normal(size=(6, 3)), g.normal(size=(6, 2))
    w = (2 ** 63 - 1, 2 ** 63 - 1)
    assert_array_equal(an.attention(q, k, v, window=w), an.attention(q, k, v))
    assert_array_equal(an.attention_weights(q, k, window=w), an.attention_weights(q, k))
    assert_array_equal(an.diagnose(q, k, window=w).entropy, an.diagnose(q, k).entropy)
    a = an.attention_weights(q, k)
    assert_array_equal(an.entropy(a, window=w), an.entropy(a))
    lo, hi = an.vanishing_bounds(q, k, window=w)
    lo0, hi0 = an.vanishing_bounds(q, k)
    assert np.isfinite(lo).all() and np.isfinite(hi).all()
    assert_array_equal(lo, lo0)
    assert_array_equal(hi, hi0)
    lo, _ = an.vanishing_bounds(q, k, window=(2 ** 63 - 1, None), causal="top_left")
    assert np.isfinite(lo).all()


# ---------------------------------------------------------------- 2. diagnostics with inf

def test_diagnose_entropy_with_visible_minus_inf_score():
    q = np.array([[1.0, 0], [-1.0, 0]])
    k = np.array([[np.inf, 0], [0, 1], [1, 1]])
    w = an.attention_weights(q, k)
    want = an.entropy(w)
    assert np.isfinite(want).all()
    assert_allclose(an.diagnose(q, k).entropy, want, rtol=1e-12, atol=1e-15)
    assert_allclose(an.attention(q, k, np.ones((3, 1)), return_stats=True)[1].entropy, want,
                    rtol=1e-12, atol=1e-15)
    # float32 overflow of a score to -inf
    q32 = np.array([[1e20, 0], [-1e20, 0]], np.float32)
    k32 = np.array([[1e20, 0], [0, 1], [1, 1]], np.float32)
    w = an.attention_weights(q32, k32, scale=1.0)
    assert_allclose(an.diagnose(q32, k32, scale=1.0).entropy, an.entropy(w), rtol=1e-6)


VALS = [np.inf, -np.inf, 0.0, 1.0, -1.0, 2.0, 1e300, -1e300, np.nan]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 4), st.data())
def test_streamed_and_materialised_entropy_agree(m, data):
    q = np.array(data.draw(st.lists(st.sampled_from(VALS), min_size=4, max_size=4))).reshape(2, 2)
    k = np.array(data.draw(st.lists(st.sampled_from(VALS), min_size=2 * m,
                                    max_size=2 * m))).reshape(m, 2)
    for name in sorted(an.NORMALIZERS):
        if name == "sinkhorn":
            continue
        kw = {"seed": 1} if name == "stochastic_softmax" else {}
        with np.errstate(all="ignore"):
            want = an.entropy(an.attention_weights(q, k, name, scale=1.0, **kw))
            stats = an.attention(q, k, np.ones((m, 1)), name, scale=1.0, return_stats=True,
                                 **kw)[1].entropy
            streamed = an.diagnose(q, k, name, scale=1.0, **kw).entropy
        for got in (stats, streamed):
            assert_array_equal(np.isnan(got), np.isnan(want), err_msg=name)
            assert_array_equal(np.isinf(got), np.isinf(want), err_msg=name)
            assert_allclose(got, want, rtol=1e-9, atol=1e-12, err_msg=name)


# ---------------------------------------------------------------- 3. NaN confinement

@pytest.mark.parametrize("n", [8, 40, 300])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_causal_scans_confine_a_bad_value_to_the_rows_that_see_it(n, bad):
    g = np.random.default_rng(3)
    h, q = g.normal(size=(n, 4)), g.normal(size=(n, 4))
    k, v, s = g.normal(size=(n, 4)), g.normal(size=(n, 3)), g.normal(size=n)
    j = 3
    hb = h.copy()
    hb[j, 1] = bad
    vb = v.copy()
    vb[j, 1] = bad
    kb = k.copy()
    kb[j, 1] = bad
    calls = [(lambda H: an.cheap_linear_attention(H, q, causal=True), h, hb)]
    for fm in ("elu1", "relu", "exp", "identity"):
        calls.append((lambda V, fm=fm: an.linear_attention(q, k, V, fm, causal=True), v, vb))
        calls.append((lambda K, fm=fm: an.linear_attention(q, K, v, fm, causal=True), k, kb))
    calls.append((lambda V: an.log_attention(q, k, V, causal=True), v, vb))
    calls.append((lambda V: an.zeros_attention(q, k, V, s, 0.3, 0.5, causal=True), v, vb))
    for f, clean, dirty in calls:
        got, want = f(dirty), f(clean)
        assert np.isfinite(got[:j]).all()              # rows that do not see key j
        assert_allclose(got[:j], want[:j], rtol=1e-12, atol=1e-12)
        assert not np.isfinite(got[j:]).all()          # and the bad value does arrive


# ---------------------------------------------------------------- 4. log_attention and |q|

@pytest.mark.parametrize("scale", [1e3, 1e5, 1e6, 1e7, 1e12])
@pytest.mark.parametrize("causal", [False, True])
def test_log_attention_accuracy_does_not_depend_on_q_magnitude(scale, causal):
    g = np.random.default_rng(4)
    q = (g.normal(size=(6, 4)) * scale).astype(np.float32)
    k = g.normal(size=(9, 4)).astype(np.float32)
    v = g.normal(size=(9, 3)).astype(np.float32)
    # the reference on q shifted by its row maximum (the result is invariant
    # to that shift, and the float64 reference then loses nothing either)
    qs = q.astype(np.float64) - q.astype(np.float64).max(-1, keepdims=True)
    want = ref.linear_attention(qs, k, v, "exp", causal=causal)
    got = an.log_attention(q, k, v, causal=causal)
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()
    q64 = q.astype(np.float64) * np.pi
    want64 = ref.linear_attention(q64 - q64.max(-1, keepdims=True), k, v, "exp", causal=causal)
    got64 = an.log_attention(q64, k.astype(np.float64), v.astype(np.float64), causal=causal)
    assert np.abs(got64 - want64).max() <= 1e-12 * np.abs(want64).max()


# ---------------------------------------------------------------- 5. SOFT start

def test_soft_attention_single_landmark_and_identical_queries():
    g = np.random.default_rng(5)
    q, v = g.normal(size=(6, 3)), g.normal(size=(6, 2))
    o, res = an.soft_attention(q, v, n_landmarks=1, return_residuals=True)
    lm = q.mean(0, keepdims=True)
    A = np.exp(-((q - lm) ** 2).sum(-1) / (2 * np.sqrt(3)))[:, None]
    assert_allclose(o, A @ (A.T @ v), rtol=1e-12, atol=1e-14)   # B = [1], B^+ = 1
    assert res[-1] < 1e-12
    qi = np.tile(q[:1], (6, 1))       # identical queries: rank-1 B, S = ones
    for L in (1, 3, 6):
        o = an.soft_attention(qi, v, n_landmarks=L, newton_iters=30)
        assert_allclose(o, an.soft_kernel(qi) @ v, rtol=1e-9, atol=1e-12)
    # residuals report that B V does not tend to I for a singular B
    _, res = an.soft_attention(qi, v, n_landmarks=3, newton_iters=30, return_residuals=True)
    assert_allclose(res[-1], np.sqrt(2), rtol=1e-9)
    for dt in (np.float32, np.float64):
        assert_allclose(an.soft_attention(q.astype(dt), v.astype(dt), n_landmarks=1),
                        ref.soft_attention(q, v, n_landmarks=1)[0], rtol=1e-5)


# ---------------------------------------------------------------- 6. one dtype rule

def test_d_zero_gives_zero_for_every_linear_form():
    q, k, v = np.zeros((3, 0)), np.zeros((4, 0)), np.ones((4, 2))
    for fm in ("elu1", "relu", "exp", "identity"):
        for causal in (False, True):
            out = an.linear_attention(q, k, v, fm, causal=causal)
            assert_array_equal(out, ref.linear_attention(q, k, v, fm, causal=causal))
            assert_array_equal(out, 0)
    assert_array_equal(an.log_attention(q, k, v), 0)
    assert_array_equal(an.log_attention(q, k, v, causal=True), 0)


def test_one_dtype_rule_everywhere():
    g = np.random.default_rng(6)
    f32 = g.normal(size=(3, 4)).astype(np.float32)
    i8 = np.ones((3, 4), np.int8)
    b = np.ones((3, 4), bool)
    u8 = np.ones((3, 4), np.uint8)
    # float32 only when every array operand is float32/float16
    assert an.attention(f32, i8, f32).dtype == np.float64
    assert an.linear_attention(f32, i8, f32).dtype == np.float64
    assert an.linear_attention(f32, f32, f32).dtype == np.float32
    assert an.linear_attention(f32.astype(np.float16), f32, f32).dtype == np.float32
    assert an.log_attention(f32, i8, f32).dtype == np.float64
    assert an.cheap_linear_attention(b, b).dtype == np.float64
    assert an.cheap_linear_attention(u8, u8).dtype == np.float64
    assert an.cheap_linear_attention(f32, f32).dtype == np.float32
    assert an.zeros_attention(f32, f32, f32, i8[:, 0], 0.5, 0.5).dtype == np.float64
    assert an.soft_attention(b.astype(np.int16), f32, n_landmarks=2).dtype == np.float64
    assert an.softmax(u8).dtype == np.float64
    assert an.diagnose(f32, i8).entropy.dtype == np.float64
    assert an.diagnose(f32, f32).entropy.dtype == np.float32
    assert_allclose(an.cheap_linear_attention(b, b), ref.cheap_linear_attention(b, b))
    for f in (lambda x: an.linear_attention(x, f32, f32), lambda x: an.attention(x, f32, f32),
              lambda x: an.vanishing_bounds(x, f32), lambda x: an.diagnose(x, f32),
              lambda x: an.cheap_linear_attention(x, f32)):
        with pytest.raises(TypeError, match="real"):
            f(f32 + 1j)


# ---------------------------------------------------------------- 7. unbounded trials

def test_stochastic_softmax_huge_trials_is_fast_exact_and_seeded():
    s = np.random.default_rng(7).normal(size=(4, 6))
    p = an.softmax(s)
    for N in (10 ** 12, 2 ** 62):
        w = an.stochastic_softmax(s, trials=N, seed=3)   # O(n_i) per row, not O(trials)
        assert_allclose(w.sum(-1), 1, rtol=1e-12)
        assert np.abs(w - p).max() < 1e-4
        assert_array_equal(w, an.stochastic_softmax(s, trials=N, seed=3))
        assert not np.array_equal(w, an.stochastic_softmax(s, trials=N, seed=4))
    old = an.get_num_threads()
    try:
        an.set_num_threads(1)
        w1 = an.stochastic_softmax(np.tile(s, (50, 1)), trials=2 ** 21, seed=9)
        an.set_num_threads(2)
        w2 = an.stochastic_softmax(np.tile(s, (50, 1)), trials=2 ** 21, seed=9)
    finally:
        an.set_num_threads(old)
    assert_array_equal(w1, w2)


def test_stochastic_softmax_binomial_counts_are_multinomial():
    # above 2^20 trials: sequential binomials (both BTRS and the small-mean
    # branch, and p > 1/2 through the complement); mean and variance of the
    # counts match Multinomial(N, p)
    N, R = 2 ** 20 + 1, 3000
    s = np.array([3.0, 1.0, 0.0, -1.0, -14.0, 0.5])
    p = ref.softmax(s)
    c = an.stochastic_softmax(np.tile(s, (R, 1)), trials=N, seed=5) * N
    assert_allclose(c, np.round(c), atol=1e-6)
    assert (np.round(c).sum(-1) == N).all()
    z = (c.mean(0) - N * p) / np.sqrt(N * p * (1 - p) / R)
    assert np.abs(z).max() < 5, z
    ratio = c.var(0, ddof=1) / (N * p * (1 - p))
    assert np.abs(ratio[[0, 1, 2, 3, 5]] - 1).max() < 6 * np.sqrt(2 / R), ratio


# ---------------------------------------------------------------- 8. Ctrl-C

INTERRUPTIBLE = {
    "sinkhorn": "an.sinkhorn(s, n_iter=10**9)",
    "attention_sinkhorn": "an.attention(s[:, :8], s[:, :8], s[:, :8], 'sinkhorn', n_iter=10**9)",
    "attention_sinkhorn_batch": "an.attention(np.ones((3, 4, 8)), np.ones((3, 5, 8)), "
                                "np.ones((3, 5, 2)), 'sinkhorn', n_iter=10**9)",
    "soft_attention": "an.soft_attention(s[:, :8], s[:, :8], newton_iters=10**9)",
}


def test_two_threads_never_deadlock_in_long_loops():
    # the loops that poll for Ctrl-C, run by 2 threads (several matrices in
    # parallel, nested regions, team Sinkhorn) while the calling thread holds
    # the GIL (small problems) or not (large ones): polling never enters the
    # interpreter, so this finishes; a regression fails by the timeout
    code = """
        import numpy as np, attnnorm as an
        rng = np.random.default_rng(0)
        for shape in [(3, 5, 7), (2, 64, 600)]:
            s = rng.normal(size=shape)
            for causal in (False, True, "top_left"):
                an.sinkhorn(s, n_iter=40, causal=causal)
                an.entmax(s, alpha=1.3, causal=causal)
                an.attention(s[..., :8], s[..., :8], s[..., :8], "sinkhorn", n_iter=40,
                             causal=causal)
                an.diagnose(s[..., :8], s[..., :8], "entmax", alpha=1.3, causal=causal)
            an.soft_attention(s[..., :8], s[..., :8], newton_iters=50)
        print("ok")
    """
    r = run_py(code, timeout=120, env={"OMP_NUM_THREADS": "2"})
    assert r.stdout.strip() == "ok", r.stderr


def test_causal_is_validated_by_every_entry_point():
    a = an.softmax(np.zeros((3, 4)))
    for call in (lambda c: an.softmax(a, causal=c), lambda c: an.entropy(a, causal=c),
                 lambda c: an.jacobian_norm(a, "softpick", scores=a, causal=c),
                 lambda c: an.linear_attention(a, a, a, causal=c),
                 lambda c: an.attention(a, a, a, causal=c)):
        with pytest.raises(ValueError, match="causal must be"):
            call("top-left")


def test_entmax_bisection_work_is_bounded():
    # the halvings stop once lo and hi are adjacent doubles (same result as
    # n_iter halvings), so n_iter = 10**9 costs what a few thousand cost
    code = """
        import numpy as np, attnnorm as an
        s = np.random.default_rng(0).normal(size=(4, 64))
        a = an.entmax(s, alpha=1.3, n_iter=10**9)
        assert np.array_equal(a, an.entmax(s, alpha=1.3, n_iter=5000))
        d = an.diagnose(s[:, :8], s[:, :8], "entmax", alpha=1.3, n_iter=10**9)
        assert np.array_equal(d.entropy, an.diagnose(s[:, :8], s[:, :8], "entmax", alpha=1.3,
                                                     n_iter=5000).entropy)
        print("ok")
    """
    r = run_py(code, timeout=60)
    assert r.stdout.strip() == "ok", r.stderr


@pytest.mark.parametrize("name", sorted(INTERRUPTIBLE))
def test_ctrl_c_interrupts_long_calls(name):
    code = f"""
        import sys, numpy as np, attnnorm as an
        s = np.random.default_rng(0).normal(size=(4, 64))
        print("start", flush=True)
        try:
            {INTERRUPTIBLE[name]}
            print("finished")
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        w = an.entmax(s, alpha=1.3)
        print("after", bool(np.allclose(w.sum(-1), 1)), flush=True)
    """
    e = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=e)
    try:
        assert p.stdout.readline().strip() == "start"
        time.sleep(0.3)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert "interrupted" in out and "after True" in out, (out, err)
    assert p.returncode == 0


# ---------------------------------------------------------------- 9. fork

def test_forked_children_do_not_hang():
    r = run_py("""
        import multiprocessing as mp, numpy as np, attnnorm as an
        def f(i):
            return float(an.softmax(np.ones((64, 4096)) * i).sum())
        if __name__ == "__main__":
            an.set_num_threads(2)
            an.softmax(np.ones((64, 4096)))          # the parent's pool exists
            with mp.get_context("fork").Pool(2) as pool:
                print(pool.map(f, range(4)))
    """, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[64.0, 64.0, 64.0, 64.0]"


# ---------------------------------------------------------------- 10. set_num_threads

@pytest.mark.parametrize("bad", [0, -1, 1025, 150_000, 2 ** 32 + 3, 2 ** 64])
def test_set_num_threads_rejects_out_of_range(bad):
    old = an.get_num_threads()
    with pytest.raises(ValueError, match=r"\[1, 1024\]"):
        an.set_num_threads(bad)
    assert an.get_num_threads() == old
    with pytest.raises(TypeError):
        an.set_num_threads(2.0)


# ---------------------------------------------------------------- 11. many tiny problems

def test_attention_memory_is_bounded_for_many_tiny_problems():
    r = run_py("""
        import resource, numpy as np, attnnorm as an
        N = 1_000_000
        q = np.ones((N, 1, 1), np.float32)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out = an.attention(q, q, q)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print((after - before) / 1024, float(out.min()), float(out.max()))
    """, timeout=120)
    assert r.returncode == 0, r.stderr
    growth, lo, hi = map(float, r.stdout.split())
    assert lo == hi == 1.0
    assert growth < 100, growth      # was ~550 MiB of problem descriptors


def test_attention_groups_give_the_same_bits():
    g = np.random.default_rng(11)
    q, k, v = g.normal(size=(2500, 3, 4)), g.normal(size=(2500, 5, 4)), g.normal(size=(2500, 5, 2))
    whole = an.attention(q, k, v, causal=True)
    parts = np.concatenate([an.attention(q[i:i + 7], k[i:i + 7], v[i:i + 7], causal=True)
                            for i in range(0, 2500, 7)])
    assert_array_equal(whole, parts)
    mk = np.ones((2500, 3, 5), bool)
    mk[1500, 1] = False      # a problem of a later group: the error still names the row
    with pytest.raises(ValueError, match="row 1 sees no key"):
        an.attention(q, k, v, mask=mk, empty="raise")


# ---------------------------------------------------------------- 12. error messages

def test_clear_errors_naming_the_parameter():
    s = np.zeros((5, 3))
    assert_allclose(an.softmax(s, window=(2 ** 64, 0)), an.softmax(s, window=(100, 0)))
    with pytest.raises(ValueError, match="empty='raise'"):
        an.sinkhorn(np.zeros((5, 0)), empty="raise")
    assert an.sinkhorn(np.zeros((5, 0))).shape == (5, 0)
    q = np.ones((3, 2))
    with pytest.raises(TypeError, match="q has complex dtype"):
        an.vanishing_bounds(q + 1j, q)
    with pytest.raises(ValueError, match="mask"):
        an.vanishing_bounds(q, q, mask=np.ones((2, 2), bool))
    with pytest.raises(ValueError, match="scale"):
        an.diagnose(q, q, scale=0)
    with pytest.raises(ValueError, match="scale"):
        an.attention(q, q, q, scale=0)
    a = an.ssmax(np.random.default_rng(0).normal(size=(3, 4)), c=0)
    assert_array_equal(an.jacobian_norm(a, "ssmax", c=0), 0)
    with pytest.raises(ValueError, match="c must be"):
        an.jacobian_norm(a, "ssmax", c=-1)
    with pytest.raises(ValueError, match="power"):
        an.jacobian_norm(a, "polynomial", power=2.5)     # as polynomial() itself
    assert_allclose(an.jacobian_norm(an.softmax(a), "entmax", alpha=1.0),
                    an.jacobian_norm(an.softmax(a), "softmax"), rtol=1e-12)
