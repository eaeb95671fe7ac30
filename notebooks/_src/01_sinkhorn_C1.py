# %% [markdown]
# # C1 — Sinkformers: one Sinkhorn iteration is softmax; more iterations make it doubly stochastic
#
# **Claims** ([Sander2021], *Sinkformers: Transformers with Doubly Stochastic Attention*; the
# authors' code `sinkhorn.py` and README):
# 1. With ε = 1 and a single (row) iteration, the Sinkhorn attention n·π equals softmax(C) row by
#    row, to machine precision ("1 iteration … corresponds to the original Transformer").
# 2. As the number of iterations grows, the row residual ‖A·1 − 1‖ and the column residual
#    ‖Aᵀ·1 − (n/m)·1‖ go to 0; "5 iterations gives … perfectly doubly stochastic".
#
# We use `attnnorm.sinkhorn` and the diagnostics `row_residual` / `column_residual`, on the toy
# set-up of the Sinkformers script `plot_normalizations.py` (seed 4, n = 10, p = 2) and on Gaussian
# attention scores QKᵀ/√d. The NumPy side is a softmax and the log-domain Sinkhorn iteration written
# below from the formula: with C = scores/ε, alternate u ← log(1/n) − LSE_j(C + v) (row step, first)
# and v ← log(1/m) − LSE_i(C + u) (column step), and return n·exp(C + u + v).

# %%
# Parameters: edit for larger runs
N_TOKENS = 64        # size of the Gaussian-score example
D_HEAD = 16
MAX_ITER = 30
SEED = 0

# %%
import numpy as np
import matplotlib.pyplot as plt
import attnnorm
import _nbutil as nbu

nbu.setup()
sinkhorn = nbu.impl("sinkhorn", nbu.fb_sinkhorn)
row_residual = nbu.impl("row_residual", nbu.fb_row_residual)
column_residual = nbu.impl("column_residual", nbu.fb_column_residual)


def resid(f, a):
    """max-norm residual (ord=inf) of the rows or columns."""
    return float(np.max(np.abs(np.asarray(f(a, ord=np.inf)))))

# %% [markdown]
# ## The toy set-up of `plot_normalizations.py`
# Q = 20·[0.3·randn(5,2); 0.3 + 0.3·rand(5,2)], W = 20·[0.3·rand(5,2) + (−0.2, 0.3);
# 0.5 + 0.3·rand(5,2) + (−0.2, −0.7)], C = QWᵀ and the script's kernel is exp(−C), i.e. scores −C.
# We draw the numbers with NumPy's legacy `RandomState(4)`, so they are not the paper's own
# figure but the same construction.

# %%
rs = np.random.RandomState(4)
Q = 20 * np.vstack([0.3 * rs.randn(5, 2), 0.3 + 0.3 * rs.rand(5, 2)])
W = 20 * np.vstack([0.3 * rs.rand(5, 2) + np.array([-0.2, 0.3]),
                    0.5 + 0.3 * rs.rand(5, 2) + np.array([-0.2, -0.7])])
toy = -(Q @ W.T)
rng = np.random.default_rng(SEED)
q = rng.normal(size=(N_TOKENS, D_HEAD)); k = rng.normal(size=(N_TOKENS, D_HEAD))
gauss = q @ k.T / np.sqrt(D_HEAD)

def np_lse(x, axis):
    mx = x.max(axis=axis, keepdims=True)
    return np.log(np.exp(x - mx).sum(axis=axis, keepdims=True)) + mx


def np_sinkhorn(s, n_iter, eps=1.0):
    c = s / eps
    n, m = c.shape
    u, v = np.zeros((n, 1)), np.zeros((1, m))
    for it in range(n_iter):
        if it % 2 == 0:
            u = np.log(1.0 / n) - np_lse(c + v, 1)
        else:
            v = np.log(1.0 / m) - np_lse(c + u, 0)
    return n * np.exp(c + u + v)


one_iter_err, err_impl = {}, 0.0
for label, s in [("toy (n=10)", toy), (f"Gaussian (n={N_TOKENS})", gauss)]:
    e = np.exp(s - s.max(-1, keepdims=True))
    one_iter_err[label] = float(np.max(np.abs(np.asarray(sinkhorn(s, n_iter=1, eps=1.0)) - e / e.sum(-1, keepdims=True))))
    print(f"{label:18s} max |sinkhorn(n_iter=1) - NumPy softmax| = {one_iter_err[label]:.2e}")

# %% [markdown]
# ## Residuals against the number of iterations
# Odd iteration counts end with a row step (rows then sum to 1 exactly, so the column residual is
# what is left), even counts with a column step (columns exact, the row residual is left).

# %%
iters = np.arange(1, MAX_ITER + 1)
res = {}
for label, s in [("toy (n=10)", toy), (f"Gaussian (n={N_TOKENS})", gauss)]:
    rr, cr = [], []
    for it in iters:
        a = np.asarray(sinkhorn(s, n_iter=int(it), eps=1.0))
        rr.append(resid(row_residual, a)); cr.append(resid(column_residual, a))
        a_np = np_sinkhorn(s, int(it))
        n_, m_ = s.shape
        err_impl = max(err_impl, float(np.abs(a - a_np).max()),
                       abs(rr[-1] - float(np.abs(a.sum(1) - 1).max())),
                       abs(cr[-1] - float(np.abs(a.sum(0) - n_ / m_).max())))
    res[label] = (np.array(rr), np.array(cr))

fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), constrained_layout=True)
floor = 1e-17
odd, even = iters % 2 == 1, iters % 2 == 0
for ax, (label, (rr, cr)) in zip(axes, res.items()):
    ax.semilogy(iters[odd], np.maximum(cr[odd], floor), "s-", ms=4,
                label="column residual after a row step (odd n_iter)")
    ax.semilogy(iters[even], np.maximum(rr[even], floor), "o-", ms=4,
                label="row residual after a column step (even n_iter)")
    ax.axvline(5, color="gray", ls=":", label="n_iter = 5 (README)")
    ax.set_xlabel("Sinkhorn iterations n_iter"); ax.set_ylabel("max residual (floored at 1e-17)")
    ax.set_title(label); ax.legend()
plt.show()

# %% [markdown]
# ## What the iterations do to the weights (Gaussian example)

# %%
fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), constrained_layout=True)
for ax, it in zip(axes, [1, 5, MAX_ITER]):
    a = sinkhorn(gauss[:24, :24], n_iter=it)
    im = ax.imshow(a, cmap="viridis"); ax.grid(False)
    ax.set_title(f"n_iter = {it}: column sums in [{a.sum(0).min():.2f}, {a.sum(0).max():.2f}]")
    ax.set_xlabel("key"); ax.set_ylabel("query"); fig.colorbar(im, ax=ax, shrink=0.8)
plt.show()

# %% [markdown]
# ## Conclusion
# One Sinkhorn iteration reproduces softmax to rounding error, and the column residual decays
# geometrically with the iterations. Whether five iterations are "perfectly" doubly stochastic
# depends on how peaked the scores are: the Gaussian scores get there quickly, the toy set-up's
# large scores (|C| of order 100) need many more iterations. The cell below prints the numbers.

# %%
last_odd = MAX_ITER if MAX_ITER % 2 else MAX_ITER - 1
nbu.check("max |sinkhorn(n_iter=1) − NumPy softmax|", max(one_iter_err.values()), 1e-12)
nbu.check("max |sinkhorn − NumPy log-domain Sinkhorn| and |residuals − NumPy sums|, every n_iter", err_impl, 1e-10)
nbu.check(f"Gaussian example: column residual after {last_odd} iterations", res[f"Gaussian (n={N_TOKENS})"][1][last_odd - 1], 1e-8)
for label, (rr, cr) in res.items():
    print(f"{label}: measured max|sinkhorn(1) - softmax| = {one_iter_err[label]:.1e} "
          f"(paper: equal, i.e. ~1e-16); measured column residual after 5 iterations = {cr[4]:.1e}, "
          f"after {last_odd} = {cr[last_odd - 1]:.1e} (README: ~0 by 5 iterations)")
nbu.provenance()
