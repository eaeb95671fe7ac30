# %% [markdown]
# # C6 — Sigmoid attention with bias −log n matches softmax at initialisation
#
# **Claim** (Ramapuram et al. 2024, *Theory, Analysis, and Best Practices for Sigmoid
# Self-Attention*, #9; papers.md A4 and C6): with the bias b = −log n,
# σ(z − log n) = e^z/(n + e^z) ≈ e^z/n when e^z ≪ n, so at initialisation (small logits) the
# rows of sigmoid attention sum to ≈ 1 and σ(z − log n) ≈ softmax(z) whenever Σe^z ≈ n. The
# error should shrink as the logit variance → 0.
#
# Closed forms used for comparison: E[row sum] ≈ E[e^z] = e^(σ²/2) for z ~ N(0, σ²) and n ≫ e^z;
# the difference n·|σ(z − log n) − softmax(z)| is of order σ for small σ, on top of a floor of
# n·(1/n − 1/(n+1)) = 1/(n+1) at σ = 0 (then every sigmoid weight is 1/(n+1), every softmax weight 1/n).
#
# attnnorm functions: `sigmoid` (default bias −log n_i), `softmax`.

# %%
# Parameters: edit for larger runs
NS = [16, 256, 4096]
SIGMAS = [1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 2.0]
ROWS = 64
SEED = 0

# %%
import numpy as np
import matplotlib.pyplot as plt
import attnnorm
import _nbutil as nbu

nbu.setup()
sigmoid = nbu.normalizer_fn("sigmoid")
softmax = nbu.normalizer_fn("softmax")
rng = np.random.default_rng(SEED)

# %%
sig = np.array(SIGMAS)
err = {n: [] for n in NS}
rowsum = {n: [] for n in NS}
for n in NS:
    for s in sig:
        z = rng.normal(scale=s, size=(ROWS, n))
        a_sig, a_soft = sigmoid(z), softmax(z)
        err[n].append(n * np.max(np.abs(a_sig - a_soft)))
        rowsum[n].append(np.mean(a_sig.sum(-1)))
err = {n: np.array(e) for n, e in err.items()}
rowsum = {n: np.array(r) for n, r in rowsum.items()}

fig, axes = plt.subplots(1, 2, figsize=(12, 4.0), constrained_layout=True)
for n, mk in zip(NS, "osD"):
    axes[0].loglog(sig, err[n], marker=mk, label=f"n = {n}")
    axes[1].semilogx(sig, rowsum[n], marker=mk, label=f"n = {n}")
axes[0].loglog(sig, sig, "k--", label="σ (first order)")
axes[0].set_xlabel("logit standard deviation σ"); axes[0].set_ylabel("n · max |σ(z − log n) − softmax(z)|")
axes[0].set_title("sigmoid vs softmax, in units of the uniform weight 1/n"); axes[0].legend()
axes[1].semilogx(sig, np.exp(sig ** 2 / 2), "k--", label="e^(σ²/2)")
axes[1].axhline(1.0, color="gray", ls=":")
axes[1].set_xlabel("logit standard deviation σ"); axes[1].set_ylabel("mean row sum of sigmoid weights")
axes[1].set_title("row sums (softmax: exactly 1)"); axes[1].legend()
plt.show()

# %% [markdown]
# ## A row where e^z is not small
# With one large logit the approximation breaks: sigmoid saturates at 1 for that key while softmax
# takes the mass from the others too.

# %%
n = 64
z = rng.normal(scale=0.1, size=n); z[0] = np.log(n) + 2.0
fig, ax = plt.subplots(figsize=(8, 3.4), constrained_layout=True)
ax.plot(softmax(z), "o", ms=4, label=f"softmax (sum {softmax(z).sum():.2f})")
ax.plot(sigmoid(z), "x", ms=5, label=f"sigmoid, b = −log n (sum {sigmoid(z).sum():.2f})")
ax.set_xlabel("key index"); ax.set_ylabel("weight"); ax.set_yscale("log"); ax.legend()
ax.set_title("one dominant key (z₀ = log n + 2)")
plt.show()

# %% [markdown]
# ## Conclusion
# At initialisation-sized logits, sigmoid attention with b = −log n is softmax to first order in σ:
# the error (relative to the uniform weight) falls linearly with σ and the row sums follow e^(σ²/2).
# Numbers below.

# %%
slope = nbu.loglog_slope(sig[sig <= 0.1], err[NS[-1]][sig <= 0.1])
print(f"measured n·max|sigmoid - softmax| at σ = {sig[0]:g}, n = {NS[-1]}: {err[NS[-1]][0]:.2e} "
      f"(closed-form floor 1/(n+1) = {1 / (NS[-1] + 1):.2e}); at σ = 1: {err[NS[-1]][sig == 1.0][0]:.3f}")
print(f"measured slope of the error vs σ for σ <= 0.1, n = {NS[-1]}: {slope:.3f} "
      f"(first order in σ: 1, flattened at the smallest σ by the 1/(n+1) floor)")
print(f"measured mean row sum at σ = 1, n = {NS[-1]}: {rowsum[NS[-1]][sig == 1.0][0]:.4f} "
      f"(closed form ≈ e^(1/2) = {np.exp(0.5):.4f}); at σ = {sig[0]:g}: {rowsum[NS[-1]][0]:.6f} "
      f"(closed form n/(n+1) = {NS[-1] / (NS[-1] + 1):.6f})")
nbu.provenance()
