# %% [markdown]
# # C17 — Oversmoothing: rolling out a rotation with causal attention
#
# **Claim** ([Duthe2025], *A Mechanistic Analysis of Transformers for Dynamical Systems*): for the
# rotation x_{t+1} = R(θ)x_t, a one-step predictor built from causal
# softmax attention outputs a convex combination of (projected) past states, so its prediction lies
# inside the convex hull of the history and the autoregressive rollout's amplitude decays
# ("oversmoothing"); normalisers that leave the simplex do not have this constraint. The paper's
# exact regime is not reproduced (we have not verified it); this is a minimal attention-only
# stand-in.
#
# **Predictor.** At step t the query is the current state x_t, the keys are the past states
# x_0 … x_{t−1} and the values their successors x_1 … x_t (an in-context lookup of "what came
# next"), with scores β·⟨x_t, x_j⟩: x̂_{t+1} = Σ_j w_j x_{j+1}, w = normaliser(scores). Equivalently,
# the rows of a causal attention matrix. The first `PREFIX` states are exact; then the model feeds on
# its own predictions. We measure the amplitude ‖x_t‖ along the rollout (exact: 1) and the spectral
# radius of the least-squares one-step map fitted to the rollout (exact: 1).
#
# attnnorm functions: every normaliser of `attnnorm.NORMALIZERS`, called on the 1 × t score row;
# `softmax(…, causal=True)` for the teacher-forced check. The softmax side is also computed with a
# NumPy softmax, both teacher-forced and along the whole rollout.

# %%
# Parameters: edit for larger runs
import numpy as np
THETA = 2 * np.pi / 24
PREFIX = 48          # exact states given as context (two periods)
STEPS = 150          # autoregressive steps
BETA = 4.0           # score scale
VARIANTS = ["softmax", "ssmax", "sparsemax", "entmax", "softpick", "sigmoid", "relu", "polynomial", "nap"]
BETAS_SOFTMAX = [1.0, 4.0, 16.0, 64.0]

# %%
import numpy as np
import matplotlib.pyplot as plt
import attnnorm
import _nbutil as nbu

nbu.setup()

R = np.array([[np.cos(THETA), -np.sin(THETA)], [np.sin(THETA), np.cos(THETA)]])
truth = np.empty((PREFIX + STEPS + 1, 2)); truth[0] = [1.0, 0.0]
for t in range(1, len(truth)):
    truth[t] = R @ truth[t - 1]


def rollout(norm, beta, **params):
    x = truth[:PREFIX].copy().tolist()
    for t in range(PREFIX - 1, PREFIX - 1 + STEPS):
        X = np.asarray(x)
        with np.errstate(over="ignore", invalid="ignore"):
            w = np.asarray(norm(beta * (X[:t] @ X[t]), **params))    # keys x_0..x_{t-1}
        nxt = w @ X[1:t + 1]                                      # values x_1..x_t
        if not np.all(np.isfinite(nxt)) or np.linalg.norm(nxt) > 1e6:
            nxt = np.full(2, np.nan)
        x.append(nxt)
        if np.isnan(nxt).any():
            break
    X = np.asarray(x)
    return np.vstack([X, np.full((PREFIX + STEPS - len(X), 2), np.nan)]) if len(X) < PREFIX + STEPS else X


def fitted_radius(X):
    """Spectral radius of the least-squares M with x_{t+1} ≈ M x_t over the rollout part."""
    Y = X[PREFIX - 1:]
    Y = Y[np.all(np.isfinite(Y), axis=1)]
    if len(Y) < 4:
        return np.nan
    M = np.linalg.lstsq(Y[:-1], Y[1:], rcond=None)[0].T
    return float(np.max(np.abs(np.linalg.eigvals(M))))

# %% [markdown]
# ## Teacher-forced check: every softmax prediction lies inside the unit disc
# With the exact history, the causal softmax prediction is a convex combination of points on the
# unit circle, so ‖x̂‖ ≤ 1 with equality only for a one-hot row.

# %%
X = truth[:PREFIX + 1]
S = BETA * X[1:] @ X[:-1].T        # row i: query x_{i+1}; column j: key x_j; value x_{j+1}
A = attnnorm.softmax(S, causal=True)  # query x_{i+1} sees keys j <= i: the causal lower triangle
pred = A @ X[1:]                      # x̂_{i+2} = Σ_j a_ij x_{j+1}
teacher_amp = np.linalg.norm(pred[1:], axis=1)  # row 0 sees a single key: one-hot, norm exactly 1
print(f"teacher-forced softmax predictions: max ‖x̂‖ = {teacher_amp.max():.4f} (convex hull: <= 1)")


def np_softmax(s):
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


A_np = np_softmax(np.where(np.tril(np.ones(S.shape, bool)), S, -np.inf))
err_teacher = float(np.abs(np.asarray(A) - A_np).max())

# %% [markdown]
# ## Rollouts

# %%
avail = [v for v in VARIANTS if v in attnnorm.NORMALIZERS or v in nbu._FB_NORM]
runs = {v: rollout(nbu.normalizer_fn(v), BETA) for v in avail}
runs_beta = {b: rollout(nbu.normalizer_fn("softmax"), b) for b in BETAS_SOFTMAX}
err_rollout = float(np.nanmax(np.abs(runs["softmax"] - rollout(np_softmax, BETA))))
steps = np.arange(PREFIX + STEPS)

fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), constrained_layout=True)
for v, Xr in runs.items():
    axes[0].semilogy(steps, np.linalg.norm(Xr, axis=1), label=v)
axes[0].axvline(PREFIX - 1, color="gray", ls=":", label="end of exact prefix")
axes[0].set_xlabel("time step t"); axes[0].set_ylabel("amplitude ‖x_t‖ (exact: 1)")
axes[0].set_title(f"rollout amplitude, β = {BETA}"); axes[0].legend(ncol=2, fontsize=7)
for b, Xr in runs_beta.items():
    axes[1].plot(steps, np.linalg.norm(Xr, axis=1), label=f"softmax, β = {b}")
axes[1].axvline(PREFIX - 1, color="gray", ls=":")
axes[1].set_xlabel("time step t"); axes[1].set_ylabel("amplitude ‖x_t‖")
axes[1].set_title("softmax: sharper scores slow the decay"); axes[1].legend()
plt.show()

show = [v for v in ["softmax", "sparsemax", "nap", "polynomial"] if v in runs]
fig, axes = plt.subplots(1, len(show), figsize=(3.3 * len(show), 3.4), constrained_layout=True, squeeze=False)
for ax, v in zip(axes.ravel(), show):
    Xr = runs[v]
    ax.plot(truth[:, 0], truth[:, 1], color="lightgray", label="exact orbit")
    ax.plot(Xr[PREFIX - 1:, 0], Xr[PREFIX - 1:, 1], ".-", ms=2, lw=0.7, label="rollout")
    ax.set_aspect("equal"); ax.set_title(v); ax.set_xlabel("x₁"); ax.set_ylabel("x₂")
    lim = np.nanmax(np.abs(Xr[PREFIX - 1:])) if np.isfinite(Xr[PREFIX - 1:]).any() else 1.0
    ax.set_xlim(-1.2 * max(lim, 1), 1.2 * max(lim, 1)); ax.set_ylim(-1.2 * max(lim, 1), 1.2 * max(lim, 1))
axes.ravel()[0].legend(fontsize=7)
plt.show()

# %% [markdown]
# ## Conclusion
# The causal softmax rollout loses amplitude as the convex-hull argument predicts (faster for soft
# scores, slower for sharp ones), and the fitted one-step map has spectral radius below 1. Simplex
# normalisers share the constraint; the unnormalised ones (sigmoid, ReLU, polynomial, NAP) are not
# confined to the hull and can keep, grow or lose amplitude. Numbers below.

# %%
nbu.check("max |causal softmax − NumPy| (teacher-forced scores)", err_teacher, 1e-12)
nbu.check("max |softmax rollout − NumPy softmax rollout|", err_rollout, 1e-9)
nbu.check("teacher-forced max ‖x̂‖ under causal softmax (convex hull)", teacher_amp.max(), 1.0 + 1e-12)
nbu.check("softmax rollout: final amplitude (decays below 1)", np.linalg.norm(runs["softmax"][-1]), 1.0)
print(f"measured teacher-forced max ‖x̂‖ under causal softmax: {teacher_amp.max():.4f} (convex-hull bound 1)")
for v, Xr in runs.items():
    amp = np.linalg.norm(Xr[-1])
    bad = np.flatnonzero(~np.isfinite(Xr[:, 0]))
    fate = (f"final amplitude {amp:.3g} after {STEPS} steps (exact 1)" if not len(bad) else
            f"diverged (amplitude > 1e6) at step {bad[0]} (exact amplitude 1)")
    print(f"measured {v:11s}: {fate}, fitted spectral radius {fitted_radius(Xr):.4f} (exact 1)")
for b, Xr in runs_beta.items():
    print(f"measured softmax β = {b:5g}: final amplitude {np.linalg.norm(Xr[-1]):.3g}, "
          f"fitted spectral radius {fitted_radius(Xr):.4f}")
nbu.provenance()
