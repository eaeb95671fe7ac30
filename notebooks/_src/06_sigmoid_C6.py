# %% [markdown]
# # C6 — Sigmoid attention with bias −log n matches softmax at initialisation
#
# **Claim** ([Ramapuram2024], *Theory, Analysis, and Best Practices for Sigmoid Self-Attention*):
# with the bias b = −log n, σ(z − log n) = e^z/(n + e^z) ≈ e^z/n when e^z ≪ n, so at initialisation
# (small logits) the rows of sigmoid attention sum to ≈ 1 and σ(z − log n) ≈ softmax(z) whenever
# Σe^z ≈ n. The error should shrink as the logit variance → 0.
#
# **How fast.** Write w_i = e^{z_i} and W̄ = (1/n)Σ_j w_j, so softmax(z)_i = w_i/(nW̄). Then
# n·(σ(z_i − log n) − softmax(z)_i) = w_i·(n/(n + w_i) − 1/W̄) ≈ (W̄ − 1) − w_i/n for small z. For
# z ~ N(0, σ²), W̄ − 1 = (e^{σ²/2} − 1) + (sampling fluctuation of a mean of n terms with standard
# deviation ≈ σ), so the error in units of the uniform weight 1/n is
# **O(σ/√n) + O(σ²) + O(1/n)**, not first order in σ: the σ²/2 comes from E[e^z] = e^{σ²/2}, the σ/√n
# from the row's own mean of e^z, and 1/(n+1) is the σ = 0 floor (every sigmoid weight is 1/(n+1),
# every softmax weight 1/n). The reference line per n is σ/√n + σ²/2 + 1/(n+1); the row sums follow
# E[row sum] ≈ E[e^z] = e^{σ²/2}.
#
# attnnorm functions: `sigmoid` (default bias −log n_i), `softmax`; both are compared with NumPy
# evaluations of the two formulas.

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
err_impl = 0.0
for n in NS:
    for s in sig:
        z = rng.normal(scale=s, size=(ROWS, n))
        a_sig, a_soft = np.asarray(sigmoid(z)), np.asarray(softmax(z))
        np_sig = 1.0 / (1.0 + np.exp(-(z - np.log(n))))              # σ(z − log n)
        np_soft = np.exp(z - z.max(-1, keepdims=True)); np_soft /= np_soft.sum(-1, keepdims=True)
        err_impl = max(err_impl, float(n * np.abs(a_sig - np_sig).max()), float(n * np.abs(a_soft - np_soft).max()))
        err[n].append(n * np.max(np.abs(a_sig - a_soft)))
        rowsum[n].append(np.mean(a_sig.sum(-1)))
err = {n: np.array(e) for n, e in err.items()}
rowsum = {n: np.array(r) for n, r in rowsum.items()}
ref = {n: sig / np.sqrt(n) + sig ** 2 / 2 + 1 / (n + 1) for n in NS}

fig, axes = plt.subplots(1, 2, figsize=(12, 4.0), constrained_layout=True)
for n, mk, col in zip(NS, "osD", plt.rcParams["axes.prop_cycle"].by_key()["color"]):
    axes[0].loglog(sig, err[n], marker=mk, color=col, label=f"n = {n}")
    axes[0].loglog(sig, ref[n], ls="--", color=col, lw=1, label=f"σ/√n + σ²/2 + 1/(n+1), n = {n}")
    axes[1].semilogx(sig, rowsum[n], marker=mk, color=col, label=f"n = {n}")
axes[0].loglog(sig, sig, "k:", lw=1, label="σ (first order: not what happens)")
axes[0].set_xlabel("logit standard deviation σ"); axes[0].set_ylabel("n · max |σ(z − log n) − softmax(z)|")
axes[0].set_title("sigmoid vs softmax, in units of the uniform weight 1/n"); axes[0].legend(fontsize=7)
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
# At initialisation-sized logits, sigmoid attention with b = −log n approaches softmax, with an
# error (relative to the uniform weight) that follows σ/√n + σ²/2 down to the 1/(n+1) floor — much
# smaller than σ for long rows — and row sums that follow e^(σ²/2). With one dominant key the
# approximation breaks, and so does the expansion at σ = 1, where the largest e^{z_i} of a long row
# multiplies the error. Numbers below: for σ ≤ 0.3 the ratio of the measured error (the maximum
# over 64 rows and all keys) to the reference stays within a small constant band for every n, while
# its ratio to σ spans more than two orders of magnitude.

# %%
small = sig <= 0.3                       # the small-logit regime of the expansion
ratio = np.array([err[n][small] / ref[n][small] for n in NS])
ratio_first = np.array([err[n][small] / sig[small] for n in NS])
nbu.check("max n·|attnnorm − NumPy| for sigmoid and softmax", err_impl, 1e-10)
nbu.check("max over n, σ ≤ 0.3 of error / (σ/√n + σ²/2 + 1/(n+1))", ratio.max(), 5.0)
nbu.check("min over n, σ ≤ 0.3 of error / (σ/√n + σ²/2 + 1/(n+1))", ratio.min(), 0.5, at_least=True)
nbu.check(f"relative |mean row sum − e^(1/2)| at σ = 1, n = {NS[-1]}",
          abs(rowsum[NS[-1]][sig == 1.0][0] / np.exp(0.5) - 1), 0.02)
print(f"measured error / (σ/√n + σ²/2 + 1/(n+1)) for σ <= 0.3: within [{ratio.min():.2f}, {ratio.max():.2f}] "
      f"(closed form: order 1); error / σ: within [{ratio_first.min():.3f}, {ratio_first.max():.2f}] (first order would be order 1)")
print(f"measured n·max|sigmoid - softmax| at σ = {sig[0]:g}, n = {NS[-1]}: {err[NS[-1]][0]:.2e} "
      f"(closed-form floor 1/(n+1) = {1 / (NS[-1] + 1):.2e}); at σ = 1: {err[NS[-1]][sig == 1.0][0]:.3f}")
print(f"measured mean row sum at σ = 1, n = {NS[-1]}: {rowsum[NS[-1]][sig == 1.0][0]:.4f} "
      f"(closed form ≈ e^(1/2) = {np.exp(0.5):.4f}); at σ = {sig[0]:g}: {rowsum[NS[-1]][0]:.6f} "
      f"(closed form n/(n+1) = {NS[-1] / (NS[-1] + 1):.6f})")
nbu.provenance()
