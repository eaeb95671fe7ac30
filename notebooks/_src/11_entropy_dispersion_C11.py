# %% [markdown]
# # C11 — Entropy dispersion against sequence length: softmax, SSMax and (AS)entmax
#
# **Claims** ([Vasylenko2025], *Long-Context Generalization with Sparse Attention*, with α-entmax of
# [Peters2019], sparsemax of [Martins2016] and Scalable-Softmax of [Nakanishi2025] as baseline):
# 1. α-entmax, p_i = [(α−1)z_i − τ]_+^(1/(α−1)) with τ such that Σp = 1, interpolates: α = 1 is
#    softmax and α = 2 is sparsemax.
# 2. Dispersion: with bounded i.i.d. logits, softmax's normalised entropy H/log n → 1 as n grows
#    (attention disperses to uniform), while entmax on a fixed planted support keeps its mass there.
#    SSMax (logits × c·log n) counteracts the dispersion by sharpening with length.
# 3. Length scaling: ASEntmax multiplies the query, hence the logits, by δ + β·(log ℓ)^γ before
#    α-entmax (the authors' code uses ℓ = position + 2, about the number of keys a causal query
#    sees; here ℓ = n, with δ = 1 as in the code and fixed β = 1/2, γ = 1 where the code learns
#    them); with it, a single planted key keeps its mass as n grows from 2⁶ to 2¹⁶, where softmax
#    loses it.
#
# Set-up of 2: n keys with logits ~ U(−1, 1) (bounded) and K = 4 planted keys with logit +2, for n
# from 2³ to 2¹². Set-up of 3: one planted key with logit +2 against U(−1, 1), n from 2⁶ to 2¹⁶.
#
# attnnorm functions: `softmax`, `ssmax` (c = 0.43 default; also c = 1), `entmax` (α = 1, 1.5, 2),
# `sparsemax`, `entropy`. The identities are checked against NumPy written here from the formulas
# (a NumPy softmax, the sort-based sparsemax of [Martins2016], bisection on τ), the planted mass
# against closed forms.

# %%
# Parameters: edit for larger runs
LOG2_N = (3, 12)
K_PLANTED = 4
PLANTED_LOGIT = 2.0
ROWS = 32
LOG2_N_SCALING = (6, 16)      # length-scaling experiment (one planted key)
ROWS_SCALING = 8
AS_DELTA, AS_BETA, AS_GAMMA = 1.0, 0.5, 1.0   # ASEntmax scale δ + β (log n)^γ
SEED = 0

# %%
import numpy as np
import matplotlib.pyplot as plt
import attnnorm
import _nbutil as nbu

nbu.setup()
softmax = nbu.normalizer_fn("softmax")
ssmax = nbu.normalizer_fn("ssmax")
entmax = nbu.normalizer_fn("entmax")
sparsemax = nbu.normalizer_fn("sparsemax")
entropy = nbu.impl("entropy", nbu.fb_entropy)
rng = np.random.default_rng(SEED)

# %% [markdown]
# ## 1. The interpolation identities

# %%
def np_softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def np_sparsemax(z):
    """Sort-based sparsemax: with z sorted decreasingly, k* = max{k : 1 + k z_(k) > Σ_{j≤k} z_(j)},
    τ = (Σ_{j≤k*} z_(j) − 1)/k*, p = [z − τ]_+."""
    zs = -np.sort(-z, axis=-1)
    cs = np.cumsum(zs, axis=-1)
    kk = np.arange(1, z.shape[-1] + 1)
    kstar = np.sum(1 + kk * zs > cs, axis=-1, keepdims=True)
    tau = (np.take_along_axis(cs, kstar - 1, -1) - 1) / kstar
    return np.maximum(z - tau, 0.0)


def np_entmax_bisect(z, alpha, n_iter=200):
    """α-entmax by bisection on τ: p = [(α−1)z − τ]_+^(1/(α−1)), Σp = 1; τ ∈ [max − 1, max]."""
    x = (alpha - 1.0) * z
    lo, hi = x.max(-1, keepdims=True) - 1.0, x.max(-1, keepdims=True)
    for _ in range(n_iter):
        tau = (lo + hi) / 2
        big = (np.maximum(x - tau, 0.0) ** (1.0 / (alpha - 1.0))).sum(-1, keepdims=True) >= 1.0
        lo, hi = np.where(big, tau, lo), np.where(big, hi, tau)
    return np.maximum(x - (lo + hi) / 2, 0.0) ** (1.0 / (alpha - 1.0))


z = rng.normal(scale=2.0, size=(16, 40))
d_soft = float(np.max(np.abs(np.asarray(entmax(z, alpha=1.0)) - np_softmax(z))))
d_sparse = float(np.max(np.abs(np.asarray(entmax(z, alpha=2.0)) - np_sparsemax(z))))
d_sparsemax = float(np.max(np.abs(np.asarray(sparsemax(z)) - np_sparsemax(z))))
d_softmax = float(np.max(np.abs(np.asarray(softmax(z)) - np_softmax(z))))
print(f"max |entmax(α=1) − NumPy softmax|   = {d_soft:.1e}")
print(f"max |entmax(α=2) − NumPy sort-based sparsemax| = {d_sparse:.1e}; sparsemax: {d_sparsemax:.1e}")
alphas = [1.0, 1.25, 1.5, 2.0]
fig, ax = plt.subplots(figsize=(8, 3.4), constrained_layout=True)
zz = np.sort(z[0])[::-1]
for al in alphas:
    ax.plot(np.asarray(entmax(zz, alpha=al)), marker=".", label=f"α = {al}")
ax.set_xlabel("key (sorted by logit)"); ax.set_ylabel("weight"); ax.set_title("α-entmax of one row"); ax.legend()
plt.show()

# %% [markdown]
# ### Exact α = 1.5 against bisection, and the Jacobian against finite differences
# The sort-based α = 1.5 solution and bisection on τ (NumPy, above) must agree to 1e-6 (also α = 1.25,
# where attnnorm itself bisects); the Jacobian ∂p/∂z = diag(s) − ssᵀ/Σs with s_i = p_i^(2−α) on the
# support (√p_i for α = 1.5) must match finite differences.

# %%
z15 = rng.normal(scale=2.0, size=(64, 30))
d_bisect = float(np.max(np.abs(np.asarray(entmax(z15, alpha=1.5)) - np_entmax_bisect(z15, 1.5))))
d_bisect125 = float(np.max(np.abs(np.asarray(entmax(z15, alpha=1.25)) - np_entmax_bisect(z15, 1.25))))
row = z15[0]
p = np.asarray(entmax(row, alpha=1.5))
s_ = np.where(p > 0, np.sqrt(p), 0.0)
J_formula = np.diag(s_) - np.outer(s_, s_) / s_.sum()
h = 1e-6
J_fd = np.stack([(np.asarray(entmax(row + h * e, alpha=1.5)) - np.asarray(entmax(row - h * e, alpha=1.5))) / (2 * h)
                 for e in np.eye(len(row))], axis=1)
d_jac = float(np.max(np.abs(J_formula - J_fd)))
print(f"max |entmax15 exact − bisection| = {d_bisect:.1e} (α = 1.25: {d_bisect125:.1e});  "
      f"max |Jacobian formula − finite differences| = {d_jac:.1e}")

# %% [markdown]
# ## 2. Dispersion with length

# %%
Ns = 2 ** np.arange(LOG2_N[0], LOG2_N[1] + 1)
variants = {"softmax": lambda s: softmax(s), "ssmax c=0.43": lambda s: ssmax(s),
            "ssmax c=1": lambda s: ssmax(s, c=1.0), "entmax α=1.5": lambda s: entmax(s, alpha=1.5),
            "sparsemax": lambda s: sparsemax(s)}
H = {v: [] for v in variants}; mass = {v: [] for v in variants}
for n in Ns:
    s = rng.uniform(-1, 1, size=(ROWS, n))
    s[:, :K_PLANTED] = PLANTED_LOGIT
    for v, f in variants.items():
        a = np.asarray(f(s))
        H[v].append(float(np.nanmean(entropy(a, normalized=True))))
        mass[v].append(float(a[:, :K_PLANTED].sum(-1).mean()))

fig, axes = plt.subplots(1, 2, figsize=(12, 4.0), constrained_layout=True)
for v in variants:
    ls = "--" if v == "sparsemax" else "-"   # entmax and sparsemax coincide here: both keep only the planted keys
    axes[0].semilogx(Ns, H[v], marker="o", ms=3, ls=ls, label=v)
    axes[1].semilogx(Ns, mass[v], marker="o", ms=3, ls=ls, label=v)
axes[0].axhline(1.0, color="k", ls=":"); axes[0].set_ylabel("normalised entropy H / log n (1 = uniform)")
axes[1].set_ylabel(f"mass on the {K_PLANTED} planted keys")
for ax in axes:
    ax.set_xlabel("sequence length n"); ax.legend()
axes[0].set_title("dispersion"); axes[1].set_title("retrieval of the planted keys")
plt.show()

# %% [markdown]
# ## 3. Length scaling: one planted key, n from 2⁶ to 2¹⁶
# Closed forms for the planted key's mass (logit 2 against n − 1 logits U ~ U(−1, 1), for large n):
# * softmax: e²/(e² + (n−1)·E[e^U]) with E[e^{sU}] = sinh(s)/s, so it decays like 1/n;
# * SSMax with multiplier λ = c·log n: e^{2λ}/(e^{2λ} + (n−1)·sinh(λ)/λ), which keeps its mass only
#   if c ≥ 1 (the planted key leads the others by 1 logit, and needs n^c ≥ n);
# * ASEntmax (α = 1.5) with scale s = δ + β(log n)^γ: p_i = [s z_i/2 − τ]_+²; the planted key alone
#   gives τ = s − 1, and every other key (s z_i/2 < s/2) is then exactly 0 when s ≥ 2, so its mass is
#   exactly 1 from log n ≥ ((2 − δ)/β)^(1/γ) on. Unscaled entmax (s = 1) keeps only keys with
#   z_i > 0 and τ near 0, so its planted mass decays.

# %%
Ns_sc = 2 ** np.arange(LOG2_N_SCALING[0], LOG2_N_SCALING[1] + 1)
as_scale = lambda n: AS_DELTA + AS_BETA * np.log(n) ** AS_GAMMA   # noqa: E731
scaling = {"softmax": lambda s: softmax(s), "ssmax c=0.43": lambda s: ssmax(s),
           "ssmax c=1": lambda s: ssmax(s, c=1.0), "entmax α=1.5": lambda s: entmax(s, alpha=1.5),
           "ASEntmax α=1.5": lambda s: entmax(as_scale(s.shape[-1]) * s, alpha=1.5)}
mass1 = {v: [] for v in scaling}
d_scaled = 0.0
for n in Ns_sc:
    s = rng.uniform(-1, 1, size=(ROWS_SCALING, n))
    s[:, 0] = PLANTED_LOGIT
    for v, f in scaling.items():
        mass1[v].append(float(np.asarray(f(s))[:, 0].mean()))
    # independent side for the scaled entmax rows: NumPy bisection on τ
    d_scaled = max(d_scaled, float(np.abs(np.asarray(scaling["ASEntmax α=1.5"](s))
                                           - np_entmax_bisect(as_scale(n) * s, 1.5)).max()))
mass1 = {v: np.array(m) for v, m in mass1.items()}
Eexp = lambda lam: np.sinh(lam) / lam                          # noqa: E731  E[e^{λU}], U ~ U(−1, 1)
closed1 = {"softmax": np.exp(2) / (np.exp(2) + (Ns_sc - 1) * Eexp(1.0))}
for c, v in [(0.43, "ssmax c=0.43"), (1.0, "ssmax c=1")]:
    lam = c * np.log(Ns_sc)
    closed1[v] = np.exp(2 * lam) / (np.exp(2 * lam) + (Ns_sc - 1) * Eexp(lam))
closed1["ASEntmax α=1.5"] = np.where(as_scale(Ns_sc) >= 2, 1.0, np.nan)

fig, ax = plt.subplots(figsize=(8.5, 3.8), constrained_layout=True)
for (v, m), col in zip(mass1.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"]):
    ax.semilogx(Ns_sc, m, marker="o", ms=4, color=col, label=v)
    if v in closed1:
        ax.semilogx(Ns_sc, closed1[v], color=col, ls=":", lw=1.5)
ax.set_xscale("log", base=2)
ax.set_xlabel("sequence length n"); ax.set_ylabel("mass on the planted key")
ax.set_title("one planted key (logit 2) among U(−1, 1) logits; dotted: closed forms")
ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
plt.show()

# %% [markdown]
# ## Conclusion
# Softmax disperses: its normalised entropy climbs towards 1 and the mass on the planted keys
# decays like K·e²/(K·e² + (n−K)·E[e^U]). SSMax slows the decay by sharpening with log n; entmax
# and sparsemax keep the planted keys' mass at 1 for every length here, because logits below the
# threshold τ get exactly zero weight. With a single planted key, unscaled entmax loses mass too,
# SSMax keeps it only with c ≥ 1, and ASEntmax's length scaling keeps exactly all of it from
# n = 2⁶ to 2¹⁶, as the closed forms predict. attnnorm agrees with the NumPy softmax, sort-based
# sparsemax and bisection. Numbers below.

# %%
Eu = np.sinh(1.0)  # E[e^U] for U ~ U(-1, 1)
n = Ns[-1]
pred = K_PLANTED * np.exp(PLANTED_LOGIT) / (K_PLANTED * np.exp(PLANTED_LOGIT) + (n - K_PLANTED) * Eu)
nbu.check("max |softmax − NumPy softmax|", d_softmax, 1e-12)
nbu.check("max |entmax(α=1) − NumPy softmax|", d_soft, 1e-12)
nbu.check("max |entmax(α=2) − NumPy sort-based sparsemax|", d_sparse, 1e-12)
nbu.check("max |sparsemax − NumPy sort-based sparsemax|", d_sparsemax, 1e-12)
nbu.check("max |entmax(α=1.5) − NumPy bisection|", d_bisect, 1e-6)
nbu.check("max |entmax(α=1.25) − NumPy bisection|", d_bisect125, 1e-6)
nbu.check("max |Jacobian formula − finite differences|", d_jac, 1e-6)
nbu.check("max |ASEntmax rows − NumPy bisection| (n up to 2^16)", d_scaled, 1e-6)
nbu.check("relative |softmax planted mass − closed form| at n = 2^16",
          abs(mass1["softmax"][-1] / closed1["softmax"][-1] - 1), 0.05)
nbu.check("relative |SSMax c=1 planted mass − closed form| at n = 2^16",
          abs(mass1["ssmax c=1"][-1] / closed1["ssmax c=1"][-1] - 1), 0.05)
nbu.check("ASEntmax planted mass, min over n", mass1["ASEntmax α=1.5"].min(), 1.0 - 1e-12, at_least=True)
print(f"measured softmax normalised entropy at n = {Ns[0]}: {H['softmax'][0]:.3f}, at n = {n}: {H['softmax'][-1]:.3f} (claim: -> 1)")
print(f"measured softmax planted mass at n = {n}: {mass['softmax'][-1]:.4f} (closed form {pred:.4f})")
for v in ["ssmax c=0.43", "ssmax c=1", "entmax α=1.5", "sparsemax"]:
    print(f"measured {v:13s} at n = {n}: normalised entropy {H[v][-1]:.3f}, planted mass {mass[v][-1]:.3f}")
print(f"measured single planted key, mass at n = 2^{LOG2_N_SCALING[0]} -> 2^{LOG2_N_SCALING[1]}:")
for v, m in mass1.items():
    cf = f" (closed form {closed1[v][0]:.4f} -> {closed1[v][-1]:.4f})" if v in closed1 else ""
    print(f"  measured {v:15s}: {m[0]:.4f} -> {m[-1]:.4f}{cf}")
print(f"measured max |entmax(α=2) - sparsemax| = {d_sparse:.1e}, |entmax(α=1) - softmax| = {d_soft:.1e} (closed form: 0)")
print(f"measured α = 1.5 exact vs bisection: {d_bisect:.1e} (claim: < 1e-6); Jacobian formula vs finite differences: "
      f"{d_jac:.1e} (claim: agree, here to O(h²) with h = 1e-6)")
nbu.provenance()
