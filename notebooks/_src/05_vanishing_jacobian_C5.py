# %% [markdown]
# # C5 — Vanishing attention and the softmax Jacobian against temperature
#
# **Claims** (Mudarisov et al. 2025, *Limitations of Normalization in Attention Mechanism*, #1;
# papers.md B4, B6, C5):
# 1. Corollary 1: with logits l_i = q·k_i and Δ = ‖q‖·max‖k‖, every softmax weight satisfies
#    (1/L)·e^(−2Δ/T) ≤ α_i ≤ (1/L)·e^(2Δ/T): with bounded logits, attention vanishes like 1/L.
# 2. The softmax Jacobian J = (diag(a) − aaᵀ)/T grows like 1/T. Its exact supremum is
#    ‖J‖₂ = 1/(2T) (attained by two tied keys); the paper is reported [2nd-hand] to state
#    1/(4T), which is the supremum of the *diagonal entries* a_i(1−a_i)/T.
#
# attnnorm functions: `vanishing_bounds(q, k, temperature)`, `softmax(·, temperature=T)`,
# `jacobian_norm(a, "softmax", ord=2)` (the exact spectral norm of diag(a) − aaᵀ, to which we apply
# the 1/T factor of the chain rule ourselves).

# %%
# Parameters: edit for larger runs
import numpy as np
D = 16
LOG2_L = (3, 12)
Q_NORM, K_NORM = 0.6, 0.5     # small norms make the bounds informative
TEMPS = np.logspace(-2, 1, 13)
N_ROWS = 400                  # random rows per temperature for the supremum search
SEED = 0

# %%
import numpy as np
import matplotlib.pyplot as plt
import attnnorm
import _nbutil as nbu

nbu.setup()
softmax = nbu.normalizer_fn("softmax")
vanishing_bounds = nbu.impl("vanishing_bounds", nbu.fb_vanishing_bounds)
jacobian_norm = nbu.impl("jacobian_norm", nbu.fb_jacobian_norm)
rng = np.random.default_rng(SEED)


def unit_rows(x, r):
    return r * x / np.linalg.norm(x, axis=-1, keepdims=True)

# %% [markdown]
# ## 1. Corollary 1: L·α stays within [e^(−2Δ/T), e^(2Δ/T)] as L grows

# %%
Ls = 2 ** np.arange(LOG2_L[0], LOG2_L[1] + 1)
T = 1.0
amax, amin, lo_b, hi_b, viol = [], [], [], [], 0
for L in Ls:
    q = unit_rows(rng.normal(size=(1, D)), Q_NORM)
    k = unit_rows(rng.normal(size=(L, D)), K_NORM) * rng.uniform(0.2, 1.0, size=(L, 1))
    a = softmax(q @ k.T, temperature=T)
    lo, hi = (np.asarray(b, float) for b in vanishing_bounds(q, k, temperature=T))
    amax.append(L * a.max()); amin.append(L * a.min())
    lo_b.append(L * lo.ravel()[0]); hi_b.append(L * hi.ravel()[0])
    viol += int(np.sum(a < lo[..., None] * (1 - 1e-12)) + np.sum(a > hi[..., None] * (1 + 1e-12)))

fig, ax = plt.subplots(figsize=(8, 3.8), constrained_layout=True)
ax.semilogx(Ls, amax, "o-", label="L · max α_i")
ax.semilogx(Ls, amin, "s-", label="L · min α_i")
ax.semilogx(Ls, hi_b, "k--", label="L · upper bound = e^(2Δ/T)")
ax.semilogx(Ls, lo_b, "k:", label="L · lower bound = e^(−2Δ/T)")
ax.set_xlabel("number of keys L"); ax.set_ylabel("L × weight (1 = uniform)")
ax.set_title(f"Corollary 1, T = {T}, ‖q‖ = {Q_NORM}, ‖k‖ ≤ {K_NORM}"); ax.legend()
plt.show()

# %% [markdown]
# ## 2. ‖J‖₂ against the temperature
# For one fixed row of Gaussian logits, and the supremum over random rows plus the two-key tie.

# %%
z = rng.normal(size=16)
fixed, sup_rand, tie = [], [], []
for t in TEMPS:
    a = softmax(z, temperature=t)
    fixed.append(float(np.asarray(jacobian_norm(a, "softmax", ord=2))) / t)
    rows = rng.normal(scale=rng.uniform(0.1, 5.0, size=(N_ROWS, 1)), size=(N_ROWS, 16))
    sup_rand.append(float(np.max(jacobian_norm(softmax(rows, temperature=t), "softmax", ord=2))) / t)
    tied = np.array([1.0, 1.0] + [-1e3] * 14)  # two tied top keys: a = (1/2, 1/2, 0, ...)
    tie.append(float(np.asarray(jacobian_norm(softmax(tied, temperature=t), "softmax", ord=2))) / t)
fixed, sup_rand, tie = map(np.array, (fixed, sup_rand, tie))

fig, axes = plt.subplots(1, 2, figsize=(12, 4.0), constrained_layout=True)
ax = axes[0]
ax.loglog(TEMPS, sup_rand, "s-", label=f"max over {N_ROWS} random rows")
ax.loglog(TEMPS, tie, "^-", label="two tied keys")
ax.loglog(TEMPS, 1 / (2 * TEMPS), "k--", label="exact supremum 1/(2T)")
ax.loglog(TEMPS, 1 / (4 * TEMPS), "r:", label="1/(4T) (reported in #1)")
ax.set_xlabel("temperature T"); ax.set_ylabel("‖J‖₂ = ‖diag(a) − aaᵀ‖₂ / T")
ax.set_title("worst case grows like 1/T"); ax.legend()
ax = axes[1]
ax.semilogx(TEMPS, fixed * TEMPS, "o-", label="one Gaussian row")
ax.semilogx(TEMPS, sup_rand * TEMPS, "s-", label=f"max over {N_ROWS} random rows")
ax.semilogx(TEMPS, tie * TEMPS, "^-", label="two tied keys")
ax.axhline(0.5, color="k", ls="--", label="1/2")
ax.axhline(0.25, color="r", ls=":", label="1/4")
ax.set_ylim(0, 0.55); ax.set_xlabel("temperature T"); ax.set_ylabel("T · ‖J‖₂ (dimensionless)")
ax.set_title("scaled by T"); ax.legend()
plt.show()

# %% [markdown]
# ## Conclusion
# The weights stay within the Corollary 1 band, so with bounded logits the largest weight vanishes
# like 1/L. The worst-case Jacobian norm grows like 1/T (a fixed row's norm first grows, then
# vanishes as the row saturates to one-hot at small T); no row
# exceeds 1/(2T), and the two-key tie attains it, so 1/(4T) is not an upper bound on ‖J‖₂ (random
# rows already exceed it). Numbers below.

# %%
print(f"measured Corollary 1 violations: {viol} over L = {Ls[0]}..{Ls[-1]}; "
      f"L·max α at L = {Ls[-1]}: {amax[-1]:.3f} within [{lo_b[-1]:.3f}, {hi_b[-1]:.3f}]")
print(f"measured max_T T·‖J‖₂ over random rows: {np.max(sup_rand * TEMPS):.4f}; with the tie: "
      f"{np.max(tie * TEMPS):.6f} (exact supremum 1/2; reported 1/4)")
print(f"measured fraction of temperatures where the random-row maximum exceeds 1/(4T): "
      f"{np.mean(sup_rand > 1 / (4 * TEMPS)):.2f}")
print(f"measured slope of the attained supremum ‖J‖₂ vs T: {nbu.loglog_slope(TEMPS, tie):.3f} (1/T growth: -1); "
      f"one fixed row instead peaks at T = {TEMPS[np.argmax(fixed)]:.3g} and vanishes as T -> 0 (it saturates to one-hot)")
nbu.provenance()
