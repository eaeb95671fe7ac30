# %% [markdown]
# # C3 — Output scale against the number of keys at initialisation
#
# **Claim** ([Richter2020], *Normalized Attention Without Probability Cage*; its script
# `initialization_scaling_with_aggregation_size.py`): with Q, K, V ~ N(0, 1) and logits K·Qᵀ/√d,
# the standard deviation of the aggregated output depends on the number of aggregated keys n in a
# way fixed by the aggregation rule: mean pooling ∝ n^(−1/2), sum pooling ∝ n^(1/2), normalised sum
# (sum/√n) = 1, and softmax attention ≈ √(Σa²) ≈ √(e/n) for large n (the last is a derivation,
# not the paper's: with N(0,1) logits, Σa² ≈ E[e^{2z}]/(n·E[e^z]²) = e/n). Softmax therefore shrinks
# its output like mean pooling ("token isolation" of the paper depends on n), while NAP (standardised
# logits, no softmax) keeps Σ A_j² = n·σ²/(σ+ε)², so its output grows like √n — on top of the sum
# pooling curve, since σ²/(σ+ε)² ≈ 1. n runs from 1 to 2¹¹ as in the paper.
#
# attnnorm functions: `attention(q, k, v, normalizer)` for softmax and NAP, `attention_weights`;
# both are compared with NumPy evaluations of the formulas (softmax, and NAP
# g·(s − μ)/(σ + ε) + b with the population standard deviation, g = 1, b = 0, ε = 10⁻³).

# %%
# Parameters: edit for larger runs (the paper uses n up to 2**11 and 16384/n samples)
D = 128
LOG2_N_MAX = 11
TOTAL_KEYS = 16384         # samples per n = TOTAL_KEYS / n (at least 8) ...
MAX_SAMPLES = 1024         # ... and at most this many (the paper: no cap; 1024 × d values are plenty)
SEED = 0

# %%
import numpy as np
import matplotlib.pyplot as plt
import attnnorm
import _nbutil as nbu

nbu.setup()
attention = nbu.impl("attention", nbu.fb_attention)
attention_weights = nbu.impl("attention_weights", nbu.fb_attention_weights)
rng = np.random.default_rng(SEED)

# %%
def np_weights(q, k, rule):
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if rule == "softmax":
        e = np.exp(s - s.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)
    return (s - s.mean(-1, keepdims=True)) / (s.std(-1, keepdims=True) + 1e-3)   # NAP


ns = 2 ** np.arange(0, LOG2_N_MAX + 1)
rules = ["softmax", "NAP", "mean", "sum", "sum/√n", "max"]
std = {r: [] for r in rules}
sum_a2 = []
err_impl = 0.0
for n in ns:
    S = max(min(TOTAL_KEYS // n, MAX_SAMPLES), 8)
    q = rng.normal(size=(S, 1, D)); k = rng.normal(size=(S, n, D)); v = rng.normal(size=(S, n, D))
    for rule, name in [("softmax", "softmax"), ("NAP", "nap")]:
        o = np.asarray(attention(q, k, v, name))
        o_np = np_weights(q[:16], k[:16], rule) @ v[:16]          # NumPy on the first 16 samples
        err_impl = max(err_impl, float(np.abs(o[:16] - o_np).max() / max(np.abs(o_np).max(), 1e-300)))
        std[rule].append(np.std(o))
    std["mean"].append(np.std(v.mean(1)))
    std["sum"].append(np.std(v.sum(1)))
    std["sum/√n"].append(np.std(v.sum(1) / np.sqrt(n)))
    std["max"].append(np.std(v.max(1)))
    a = attention_weights(q, k, "softmax")
    sum_a2.append(np.sqrt(np.mean((a ** 2).sum(-1))))
    print(f"n = {n:5d}: {S} samples, softmax std {std['softmax'][-1]:.4f}", flush=True)
std = {r: np.array(s) for r, s in std.items()}

# %%
fig, ax = plt.subplots(figsize=(11, 4.6), constrained_layout=True)
style = {"softmax": dict(marker="o", color="C0"), "mean": dict(marker="s", color="C1"),
         "sum/√n": dict(marker="^", color="C4"), "max": dict(marker="x", color="C7"),
         "sum": dict(marker="D", ms=9, mfc="none", lw=3, alpha=0.5, color="C2"),   # wide and pale, under NAP
         "NAP": dict(marker="v", ms=5, lw=1.2, color="C3", zorder=5)}
for r in rules:
    sel = ns >= (2 if r == "NAP" else 1)  # NAP of a single key is exactly 0
    label = f"{r} (std of output)" + (" — coincides with sum: Σ A² = nσ²/(σ+ε)²" if r == "NAP" else "")
    ax.loglog(ns[sel], std[r][sel], label=label, **style[r])
ax.loglog(ns, np.sqrt(np.e / ns), "k--", label="√(e/n) (large-n softmax prediction)")
ax.loglog(ns, sum_a2, "k:", label="softmax √(mean Σa²) from the weights")
ax.set_xscale("log", base=2)
ax.set_xlabel("number of aggregated keys n"); ax.set_ylabel("std of the output (V ~ N(0,1))")
ax.set_title(f"output scale at initialisation, d = {D}")
ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
plt.show()

# %% [markdown]
# ## Conclusion
# Mean and sum pooling follow n^(∓1/2), the normalised sum stays at 1, softmax attention shrinks
# with n like mean pooling (its output is the convex combination of ≈ n/e effective values), and
# NAP grows like √n. The fitted log–log slopes over the upper half of the n range are printed below.

# %%
hi = ns >= ns[len(ns) // 2]
nbu.check("max relative |attention − NumPy| (softmax and NAP)", err_impl, 1e-10)
slopes = {}
for r, expected in [("mean", -0.5), ("sum", 0.5), ("sum/√n", 0.0), ("softmax", -0.5), ("NAP", 0.5)]:
    slopes[r] = nbu.loglog_slope(ns[hi], std[r][hi])
    print(f"measured slope of std vs n for {r:8s}: {slopes[r]:+.3f} (expected {expected:+.1f})")
nbu.check("|softmax slope + 1/2| over the upper half of n", abs(slopes["softmax"] + 0.5), 0.1)
nbu.check("|NAP slope − 1/2| over the upper half of n", abs(slopes["NAP"] - 0.5), 0.1)
nbu.check(f"|softmax std / √(e/n) − 1| at n = {ns[-1]}", abs(std["softmax"][-1] / np.sqrt(np.e / ns[-1]) - 1), 0.2)
print(f"measured NAP / sum pooling std over n >= 2: [{(std['NAP'][1:] / std['sum'][1:]).min():.3f}, "
      f"{(std['NAP'][1:] / std['sum'][1:]).max():.3f}] (closed form: σ/(σ+ε) ≈ 1)")
print(f"measured softmax std at n = {ns[-1]}: {std['softmax'][-1]:.4f} vs √(e/n) = {np.sqrt(np.e / ns[-1]):.4f} "
      f"(ratio {std['softmax'][-1] / np.sqrt(np.e / ns[-1]):.3f}; the derivation is a large-n approximation)")
nbu.provenance()
