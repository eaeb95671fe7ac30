# %% [markdown]
# # C3 — Output scale against the number of keys at initialisation
#
# **Claim** (title paper, Richter & Wattenhofer 2020, *Normalized Attention Without Probability
# Cage*; script `initialization_scaling_with_aggregation_size.py`; papers.md C3 and B14): with
# Q, K, V ~ N(0, 1) and logits K·Qᵀ/√d, the standard deviation of the aggregated output depends on
# the number of aggregated keys n in a way fixed by the aggregation rule:
# mean pooling ∝ n^(−1/2), sum pooling ∝ n^(1/2), normalised sum (sum/√n) = 1, and softmax
# attention ≈ √(Σa²) ≈ √(e/n) for large n (the last is a derivation in papers.md, not the paper's:
# with N(0,1) logits, Σa² ≈ E[e^{2z}]/(n·E[e^z]²) = e/n). Softmax therefore shrinks its output like
# mean pooling ("token isolation" of the paper depends on n), while NAP (standardised logits, no
# softmax) keeps Σ A_j² = n·σ²/(σ+ε)², so its output grows like √n.
#
# attnnorm functions: `attention(q, k, v, normalizer)` for softmax and NAP, `attention_weights`.

# %%
# Parameters: edit for larger runs (the paper uses n up to 2**11 and 16384/n samples)
D = 128
LOG2_N_MAX = 9
TOTAL_KEYS = 8192          # samples per n = TOTAL_KEYS / n (at least 8)
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
ns = 2 ** np.arange(0, LOG2_N_MAX + 1)
rules = ["softmax", "NAP", "mean", "sum", "sum/√n", "max"]
std = {r: [] for r in rules}
sum_a2 = []
for n in ns:
    S = max(TOTAL_KEYS // n, 8)
    q = rng.normal(size=(S, 1, D)); k = rng.normal(size=(S, n, D)); v = rng.normal(size=(S, n, D))
    std["softmax"].append(np.std(attention(q, k, v, "softmax")))
    std["NAP"].append(np.std(attention(q, k, v, "nap")))
    std["mean"].append(np.std(v.mean(1)))
    std["sum"].append(np.std(v.sum(1)))
    std["sum/√n"].append(np.std(v.sum(1) / np.sqrt(n)))
    std["max"].append(np.std(v.max(1)))
    a = attention_weights(q, k, "softmax")
    sum_a2.append(np.sqrt(np.mean((a ** 2).sum(-1))))
std = {r: np.array(s) for r, s in std.items()}

# %%
fig, ax = plt.subplots(figsize=(8.5, 4.2), constrained_layout=True)
for r, mk in zip(rules, "osD^vx"):
    sel = ns >= (2 if r == "NAP" else 1)  # NAP of a single key is exactly 0
    ax.loglog(ns[sel], std[r][sel], marker=mk, label=f"{r} (std of output)")
ax.loglog(ns, np.sqrt(np.e / ns), "k--", label="√(e/n) (large-n softmax prediction)")
ax.loglog(ns, sum_a2, "k:", label="softmax √(mean Σa²) from the weights")
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
for r, expected in [("mean", -0.5), ("sum", 0.5), ("sum/√n", 0.0), ("softmax", -0.5), ("NAP", 0.5)]:
    print(f"measured slope of std vs n for {r:8s}: {nbu.loglog_slope(ns[hi], std[r][hi]):+.3f} "
          f"(expected {expected:+.1f})")
print(f"measured softmax std at n = {ns[-1]}: {std['softmax'][-1]:.4f} vs √(e/n) = {np.sqrt(np.e / ns[-1]):.4f} "
      f"(ratio {std['softmax'][-1] / np.sqrt(np.e / ns[-1]):.3f}; the derivation is a large-n approximation)")
nbu.provenance()
