# %% [markdown]
# # A tour of attnnorm: every normaliser on one example
#
# attnnorm maps a matrix of attention scores (queries × keys) to weights with one of its
# normalisers, all with the same mask semantics (`mask`, `causal`,
# `window`; a query row that sees no key gives a row of zeros). This notebook applies every entry
# of `attnnorm.NORMALIZERS` to the same scores and shows
# 1. the weights as heatmaps,
# 2. their row sums, fraction of exact zeros and negative mass (what "probability cage" each variant
#    keeps or drops: softmax, Sinkhorn, sparsemax and entmax rows lie in the simplex; sigmoid, ReLU,
#    polynomial, NAP and affine softmax do not),
# 3. how they behave under a causal mask, a sliding window and an arbitrary boolean mask with one
#    fully masked query row.
#
# Sources of the formulas: softmax with temperature [Ram2025], softmax with a sink [RanMilo2026],
# SSMax [Nakanishi2025], sigmoid [Ramapuram2024], ReLU [RanMilo2026], polynomial
# [Saratchandran2024], sparsemax [Martins2016], entmax [Peters2019], softpick [Zuhri2025], NAP
# [Richter2020], affine softmax [Bae2026], stochastic softmax [Yadav2026], Sinkhorn [Sander2021].
# Each normaliser's docstring gives its formula and defaults (used here unchanged).

# %%
# Parameters: edit for larger runs
N_QUERIES, N_KEYS = 8, 12
SEED = 0
STOCHASTIC = dict(trials=32, seed=0)   # stochastic_softmax needs trials and a seed

# %%
import numpy as np
import matplotlib
import matplotlib.pyplot as plt
import attnnorm
import _nbutil as nbu

nbu.setup()
NAMES = ["softmax", "softmax_sink", "ssmax", "sigmoid", "relu", "polynomial", "sparsemax", "entmax",
         "softpick", "nap", "affine_softmax", "stochastic_softmax", "sinkhorn"]
NAMES += [k for k in attnnorm.NORMALIZERS if k not in NAMES]
norm = {name: nbu.normalizer_fn(name) for name in NAMES}
params = {name: (STOCHASTIC if name == "stochastic_softmax" else {}) for name in NAMES}
print("registry attnnorm.NORMALIZERS:", sorted(attnnorm.NORMALIZERS))

rng = np.random.default_rng(SEED)
scores = rng.normal(size=(N_QUERIES, N_KEYS))
scores[:, 3] += 2.0          # a key that every query likes
scores[2, 7] = 4.0           # one sharp query-key match

# %% [markdown]
# ## 1. The weights

# %%
W = {name: np.asarray(norm[name](scores, **params[name])) for name in NAMES}
cols = 5
rows = int(np.ceil(len(NAMES) / cols))
fig, axes = plt.subplots(rows, cols, figsize=(14, 2.7 * rows), constrained_layout=True, squeeze=False)
for ax, name in zip(axes.ravel(), NAMES):
    w = W[name]
    lim = np.max(np.abs(w))
    ax.imshow(w, cmap="RdBu_r", vmin=-lim, vmax=lim); ax.grid(False)
    ax.set_title(f"{name}\n(colour scale ±{lim:.2g})", fontsize=9); ax.set_xlabel("key"); ax.set_ylabel("query")
for ax in axes.ravel()[len(NAMES):]:
    ax.axis("off")
fig.suptitle("weights on the same scores (red > 0, blue < 0, white 0; each panel its own scale)")
plt.show()

# %% [markdown]
# ## 2. Row sums, sparsity and negative mass

# %%
rowsum = np.array([W[n].sum(-1) for n in NAMES])
zeros = np.array([(W[n] == 0).mean() for n in NAMES])
negmass = np.array([np.minimum(W[n], 0).sum(-1).mean() for n in NAMES])
x = np.arange(len(NAMES))
fig, axes = plt.subplots(1, 3, figsize=(14, 3.8), constrained_layout=True)
axes[0].bar(x, rowsum.mean(1), yerr=[rowsum.mean(1) - rowsum.min(1), rowsum.max(1) - rowsum.mean(1)], capsize=3)
axes[0].axhline(1.0, color="k", ls=":", label="1 (simplex)"); axes[0].set_yscale("symlog", linthresh=1)
lo_, hi_ = float(rowsum.min()), float(rowsum.max())
axes[0].set_yticks([t_ for t_ in [-100, -50, -20, -10, -5, -2, -1, -0.5, 0, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500]
                    if 2 * min(lo_, -1) <= t_ <= 2 * max(hi_, 1)])
axes[0].yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
axes[0].set_ylabel("row sum (mean, min–max)"); axes[0].legend()
axes[1].bar(x, zeros); axes[1].set_ylabel("fraction of exact zeros")
axes[2].bar(x, negmass); axes[2].set_ylabel("mean negative mass Σ min(a, 0) per row")
for ax in axes:
    ax.set_xticks(x); ax.set_xticklabels(NAMES, rotation=60, ha="right")
plt.show()

# %% [markdown]
# ## 3. Masks: causal, sliding window, boolean mask with a fully masked row
# `causal=True` lets query i see keys j ≤ i + (m − n) (bottom-right aligned); `window=(2, 0)`
# additionally keeps only the two previous keys and the diagonal; the boolean mask (True = keep)
# drops a random 30% of the pairs and all of query row 5. Masked entries are excluded exactly, and
# length-aware defaults (sigmoid's −log n_i, ReLU's 1/n_i, polynomial's 1/√n_i, SSMax's log n_i)
# use the number of keys each row actually sees.

# %%
sq = scores[:, :N_QUERIES]            # square block, so the causal mask is the lower triangle
bool_mask = rng.random(sq.shape) > 0.3
bool_mask[5] = False
MASKS = {"causal": dict(causal=True), "window (2, 0)": dict(causal=True, window=(2, 0)),
         "boolean mask, row 5 empty": dict(mask=bool_mask)}
SHOW = [n for n in ["softmax", "sparsemax", "sigmoid", "nap", "softpick"] if n in norm]
fig, axes = plt.subplots(len(MASKS), len(SHOW), figsize=(2.7 * len(SHOW), 2.5 * len(MASKS)),
                         constrained_layout=True, squeeze=False)
masked = {}
for r, (mlabel, mkw) in enumerate(MASKS.items()):
    for c, name in enumerate(SHOW):
        w = np.asarray(norm[name](sq, **mkw))
        masked[(mlabel, name)] = w
        lim = np.max(np.abs(w)) or 1.0
        im = axes[r, c].imshow(w, cmap="RdBu_r", vmin=-lim, vmax=lim); axes[r, c].grid(False)
        fig.colorbar(im, ax=axes[r, c], shrink=0.8)
        axes[r, c].set_title(f"{name}\n{mlabel}", fontsize=9)
        axes[r, c].set_xlabel("key"); axes[r, c].set_ylabel("query")
        if not mkw.get("causal"):                       # outline the fully masked query row
            axes[r, c].add_patch(plt.Rectangle((-0.5, 4.5), sq.shape[1], 1, fill=False, ec="k", lw=1.5))
fig.suptitle("masked weights (each panel its own symmetric colour scale; red > 0, blue < 0, white 0; "
             "black box: the fully masked row)")
plt.show()

# %% [markdown]
# ## Conclusion
# The simplex normalisers (softmax, its sink variant, SSMax, sparsemax, entmax, Sinkhorn) keep
# row sums at or below 1 and no negative weights; sparsemax, entmax, softpick and ReLU produce exact
# zeros; NAP and polynomial attention produce negative weights; masked keys get exactly zero weight
# and a fully masked query row is all zeros for every variant. The cell below prints the measured
# numbers.

# %%
simplex = [n for n in ["softmax", "ssmax", "sparsemax", "entmax", "sinkhorn"] if n in W]
dev = max(float(np.max(np.abs(W[n].sum(-1) - 1))) for n in simplex)
print(f"measured max |row sum - 1| over {simplex}: {dev:.1e} (closed form: 0)")
for n in NAMES:
    print(f"measured {n:19s}: row sums [{W[n].sum(-1).min():8.3f}, {W[n].sum(-1).max():8.3f}], "
          f"zeros {np.mean(W[n] == 0):.2f}, negative mass {np.minimum(W[n], 0).sum(-1).mean():8.3f}")
leak = max(float(np.max(np.abs(w[~np.broadcast_to(bool_mask, w.shape)])))
           for (ml, _), w in masked.items() if ml.startswith("boolean"))
print(f"measured largest |weight| on a masked key (incl. the empty row 5): {leak:.1e} (contract: 0)")


# NumPy side: each row's visible keys only, from the formulas (softmax e^s/Σe^s, sigmoid σ(s − log n_i),
# NAP (s − μ)/(σ + 10⁻³) with the population σ); an empty row is all zeros
def np_masked(s, keep, name):
    out = np.zeros_like(s)
    for i in range(s.shape[0]):
        v = s[i, keep[i]]
        if v.size == 0:
            continue
        if name == "softmax":
            e = np.exp(v - v.max()); out[i, keep[i]] = e / e.sum()
        elif name == "sigmoid":
            out[i, keep[i]] = 1 / (1 + np.exp(-(v - np.log(v.size))))
        elif name == "nap":
            out[i, keep[i]] = (v - v.mean()) / (v.std() + 1e-3)
    return out


n_q, n_k = sq.shape
causal_keep = np.arange(n_k)[None, :] <= np.arange(n_q)[:, None] + (n_k - n_q)
window_keep = causal_keep & (np.arange(n_k)[None, :] >= np.arange(n_q)[:, None] + (n_k - n_q) - 2)
KEEP = {"causal": causal_keep, "window (2, 0)": window_keep, "boolean mask, row 5 empty": bool_mask}
err_masks = max(float(np.abs(masked[(ml, name)] - np_masked(sq, KEEP[ml], name)).max())
                for ml in MASKS for name in ["softmax", "sigmoid", "nap"] if (ml, name) in masked)
nbu.check("max |masked softmax, sigmoid, NAP − NumPy on the visible keys| (causal, window, boolean)", err_masks, 1e-12)
nbu.check("largest |weight| on a masked key", leak, 0.0)
nbu.check("max |row sum − 1| over the simplex normalisers", dev, 1e-12)
nbu.provenance()
