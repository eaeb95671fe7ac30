# %% [markdown]
# # C7 — Softmax attention as a nearest-anchor look-up: the error of the interpolation construction
#
# **Claim** ([Hu2025], *Universal Approximation with Softmax Attention*; the construction behind the
# truncated-linear experiment of the authors' code): place p anchors L_i = linspace(a, b, p) with
# values V_i = L_i, and let a query y ∈ [a, b] score them with −β(L_i − y)². Softmax attention
# returns ŷ = Σ_i softmax(−β(L − y)²)_i L_i; as β grows the softmax selects the nearest anchor, so the
# error |ŷ − y| approaches at most half the anchor spacing, (b − a)/(2(p − 1)). (The bound is derived
# from the construction; the paper's trained experiment is not reproduced here, it needs training.)
#
# **As a dot product.** −β(L_i − y)² = 2βL_i·y − βL_i² − βy², and the last term is the same for every
# anchor, so it drops out of the softmax. The scores are therefore q·k_i with q = (y, 1) and
# k_i = (2βL_i, −βL_i²): this is ordinary attention, `attention(q, k, v, "softmax", scale=1)`.
#
# What we measure: the maximum error over many queries y ∈ [a, b] against β and p, next to
# (b − a)/(2(p − 1)); the NumPy side is the softmax of −β(L − y)² written directly, and the β → ∞
# limit is the nearest anchor, min_i |L_i − y|.
#
# attnnorm function: `attention(q, k, v, "softmax", scale=1.0)`.

# %%
# Parameters: edit for larger runs
A, B = -25.0, 25.0                  # the experiment's target range [a, b] = [-25, 25]
PS = [11, 26, 51, 101]              # numbers of anchors p
LOG10_BETA = (-3, 4)                # β from 10^-3 to 10^4
N_QUERIES = 4000
SEED = 0

# %%
import numpy as np
import matplotlib.pyplot as plt
import attnnorm
import _nbutil as nbu

nbu.setup()
attention = nbu.impl("attention", nbu.fb_attention)
rng = np.random.default_rng(SEED)
BETAS = np.logspace(*LOG10_BETA, 29)
y = np.sort(rng.uniform(A, B, size=N_QUERIES))    # random queries: no grid alignment with the anchors


def np_softmax_lookup(y, anchors, beta):
    """ŷ = Σ_i softmax(−β(L − y)²)_i L_i, from the formula."""
    s = -beta * (anchors[None, :] - y[:, None]) ** 2
    w = np.exp(s - s.max(-1, keepdims=True))
    return (w / w.sum(-1, keepdims=True)) @ anchors

# %% [markdown]
# ## Error against β for several numbers of anchors

# %%
err = {p: [] for p in PS}
err_interior = {p: [] for p in PS}
nearest = {}
err_impl = 0.0
q = np.stack([y, np.ones_like(y)], axis=1)                       # (N_QUERIES, 2)
for p in PS:
    anchors = np.linspace(A, B, p)
    h = (B - A) / (p - 1)
    inner = (y > A + 3 * h) & (y < B - 3 * h)
    nearest[p] = np.abs(anchors[None, :] - y[:, None]).min(-1).max()   # β → ∞: nearest anchor
    for beta in BETAS:
        k = np.stack([2 * beta * anchors, -beta * anchors ** 2], axis=1)
        y_hat = np.asarray(attention(q, k, anchors[:, None], "softmax", scale=1.0))[:, 0]
        err_impl = max(err_impl, float(np.abs(y_hat - np_softmax_lookup(y, anchors, beta)).max() / h))
        e = np.abs(y_hat - y)
        err[p].append(e.max()); err_interior[p].append(e[inner].max())
err = {p: np.array(v) for p, v in err.items()}
err_interior = {p: np.array(v) for p, v in err_interior.items()}

fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), constrained_layout=True)
colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
for p, col in zip(PS, colors):
    bound = (B - A) / (2 * (p - 1))
    axes[0].loglog(BETAS, err[p], "o-", ms=3, color=col, label=f"p = {p}: all y")
    axes[0].loglog(BETAS, err_interior[p], ":", color=col, label=f"p = {p}: y ≥ 3 spacings from the ends")
    axes[0].axhline(bound, color=col, ls="--", lw=1)
axes[0].set_xlabel("β"); axes[0].set_ylabel("max |ŷ − y| over the queries")
axes[0].set_title("dashed: (b − a)/(2(p − 1))"); axes[0].legend(fontsize=7, ncol=2, loc="lower left")
pp = np.array(PS)
axes[1].loglog(pp, [err[p][-1] for p in PS], "o", ms=8, label=f"softmax attention, β = {BETAS[-1]:.0e}")
axes[1].loglog(pp, [nearest[p] for p in PS], "x", ms=8, label="nearest anchor (β → ∞), NumPy")
axes[1].loglog(pp, (B - A) / (2 * (pp - 1)), "k--", label="(b − a)/(2(p − 1))")
axes[1].set_xlabel("number of anchors p"); axes[1].set_ylabel("max error")
axes[1].set_title(f"large-β error against p, [a, b] = [{A:g}, {B:g}]"); axes[1].legend()
axes[1].minorticks_off(); axes[1].set_xticks(PS, [str(p) for p in PS])
bounds = [(B - A) / (2 * (p - 1)) for p in PS]
axes[1].set_yticks(bounds, [f"{b_:.3g}" for b_ in bounds])
plt.show()

# %% [markdown]
# ## Conclusion
# With β large the softmax look-up is the nearest-anchor look-up and its worst error over the
# queries approaches (b − a)/(2(p − 1)) from below (the supremum, half a spacing, is reached only at a
# midpoint, where two anchors tie and the softmax averages them, so the error there is 0 at any β).
# At small β the softmax averages many anchors and pulls ŷ towards the centre, so the error is far
# larger, worst at the ends of [a, b]. In between, the softmax interpolates between neighbouring
# anchors and, away from the ends, beats the nearest-anchor error by orders of magnitude: the bound
# is the large-β limit, not the best β. Numbers below.

# %%
nbu.check("max |attnnorm attention − NumPy softmax look-up| / spacing", err_impl, 1e-8)
for p in PS:
    bound = (B - A) / (2 * (p - 1))
    nbu.check(f"p = {p}: max error at β = {BETAS[-1]:.0e} / (b − a)/(2(p − 1))", err[p][-1] / bound, 1.0 + 1e-9)
    # near a midpoint the two nearest anchors share the weight over a width of about 1/(βh) in y,
    # so the softmax error may differ from the nearest-anchor one by O(1/(βh²)) spacings
    nbu.check(f"p = {p}: |max error at β = {BETAS[-1]:.0e} − nearest-anchor error| / spacing",
              abs(err[p][-1] - nearest[p]) / (2 * bound), 20.0 / (BETAS[-1] * (2 * bound) ** 2))
for p in PS:
    bound = (B - A) / (2 * (p - 1))
    best = int(np.argmin(err_interior[p]))
    print(f"measured p = {p:3d}: max error at β = {BETAS[-1]:.0e}: {err[p][-1]:.4f} (closed form (b − a)/(2(p − 1)) = "
          f"{bound:.4f}; nearest anchor on these queries {nearest[p]:.4f}); at β = {BETAS[0]:.0e}: {err[p][0]:.2f}; "
          f"interior minimum {err_interior[p][best]:.1e} at β = {BETAS[best]:.2g}")
nbu.provenance()
