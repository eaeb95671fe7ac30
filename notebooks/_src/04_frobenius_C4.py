# %% [markdown]
# # C4 — Frobenius norms: softmax regularises them implicitly, polynomial attention by its 1/√N
#
# **Claims** (Saratchandran et al. 2024, *Rethinking Attention: Polynomial Alternatives to Softmax*,
# #3; papers.md A3, B7, C4):
# 1. Theorem 4.1: for any N×N matrix A, ‖softmax(A)‖_F ≤ √N and ‖∇softmax(A)‖_F ≤ 2√N; for a
#    row-stochastic N×N matrix, 1 ≤ ‖A‖_F ≤ √N (uniform rows attain 1, one-hot rows √N).
# 2. For Gaussian logits, ‖φ(QKᵀ/√d)‖_F with φ(x) = x³/√N grows like O(√N) (same order as the
#    softmax bound), whereas x³ alone grows like N.
#
# attnnorm functions: `softmax`, `polynomial` (power 3, scale 1/√n_i), `frobenius_norm`,
# `jacobian_norm(a, "softmax", ord="fro")` (per row; the Jacobian of the row-wise map on the whole
# matrix is block-diagonal, so its Frobenius norm is the root of the sum of squares of the rows').

# %%
# Parameters: edit for larger runs
D = 64
LOG2_N = (2, 10)      # N from 2**2 to 2**10
SEED = 0

# %%
import numpy as np
import matplotlib.pyplot as plt
import attnnorm
import _nbutil as nbu

nbu.setup()
softmax = nbu.normalizer_fn("softmax")
polynomial = nbu.normalizer_fn("polynomial")
frobenius_norm = nbu.impl("frobenius_norm", nbu.fb_frobenius_norm)
jacobian_norm = nbu.impl("jacobian_norm", nbu.fb_jacobian_norm)
rng = np.random.default_rng(SEED)

# %%
Ns = 2 ** np.arange(LOG2_N[0], LOG2_N[1] + 1)
rec = {k: [] for k in ["softmax", "uniform", "one-hot", "poly", "cube", "jac"]}
for N in Ns:
    q = rng.normal(size=(N, D)); k = rng.normal(size=(N, D))
    s = q @ k.T / np.sqrt(D)
    rec["softmax"].append(float(frobenius_norm(softmax(s))))
    rec["uniform"].append(float(frobenius_norm(softmax(np.zeros((N, N))))))
    rec["one-hot"].append(float(frobenius_norm(softmax(100.0 * s))))
    rec["poly"].append(float(frobenius_norm(polynomial(s, power=3))))
    rec["cube"].append(float(np.linalg.norm(s ** 3)))
    jr = np.asarray(jacobian_norm(softmax(s), "softmax", ord="fro"))
    rec["jac"].append(float(np.sqrt((jr ** 2).sum())))
rec = {k: np.array(v) for k, v in rec.items()}

fig, axes = plt.subplots(1, 2, figsize=(12, 4.0), constrained_layout=True)
ax = axes[0]
ax.loglog(Ns, rec["softmax"], "o-", label="softmax, Gaussian logits")
ax.loglog(Ns, rec["uniform"], "s-", label="softmax, uniform rows (all-equal logits)")
ax.loglog(Ns, rec["one-hot"], "^-", label="softmax, near one-hot rows (logits ×100)")
ax.loglog(Ns, np.sqrt(Ns), "k--", label="upper bound √N")
ax.loglog(Ns, np.ones_like(Ns, dtype=float), "k:", label="lower bound 1")
ax.set_xlabel("N (queries = keys)"); ax.set_ylabel("‖A‖_F"); ax.set_title("row-stochastic bounds (Thm 4.1)")
ax.legend()
ax = axes[1]
ax.loglog(Ns, rec["poly"], "o-", label="polynomial: ‖x³/√N‖_F")
ax.loglog(Ns, rec["cube"], "s-", label="raw cube: ‖x³‖_F")
ax.loglog(Ns, rec["jac"], "^-", label="‖∇softmax(A)‖_F (Gaussian logits)")
ax.loglog(Ns, 2 * np.sqrt(Ns), "k--", label="2√N (Jacobian bound)")
ax.loglog(Ns, np.sqrt(15 * Ns), "k:", label="√(15N): expected value for x ~ N(0,1)")
ax.set_xlabel("N"); ax.set_ylabel("Frobenius norm"); ax.set_title("growth with N")
ax.legend()
plt.show()

# %% [markdown]
# ## Conclusion
# Every softmax matrix stays inside [1, √N], with the two ends attained by uniform and one-hot rows;
# with Gaussian logits it stays near √e, independent of N. The cubic map grows like N unless it is
# divided by √N, after which it grows like √N (for x ~ N(0,1), E x⁶ = 15 gives ‖x³/√N‖_F ≈ √(15N)).
# The softmax Jacobian is far below its 2√N bound. Numbers below.

# %%
print(f"measured ‖softmax‖_F range over N: [{rec['softmax'].min():.3f}, {rec['softmax'].max():.3f}] "
      f"(bounds 1 and √N = {np.sqrt(Ns[-1]):.1f} at N = {Ns[-1]}; √e = {np.sqrt(np.e):.3f})")
print(f"measured uniform rows: {rec['uniform'][-1]:.6f} (closed form 1); near one-hot rows: "
      f"{rec['one-hot'][-1]:.2f} (closed form √N = {np.sqrt(Ns[-1]):.2f})")
hi = Ns >= Ns[len(Ns) // 2]  # fit over the upper half: x³ is heavy-tailed at small N
print(f"measured slopes for N >= {Ns[hi][0]}: polynomial {nbu.loglog_slope(Ns[hi], rec['poly'][hi]):.3f} "
      f"(paper O(√N): 0.5), raw cube {nbu.loglog_slope(Ns[hi], rec['cube'][hi]):.3f} (1.0)")
print(f"measured ‖x³/√N‖_F / √(15N) at N = {Ns[-1]}: {rec['poly'][-1] / np.sqrt(15 * Ns[-1]):.3f}")
print(f"measured max over N of ‖∇softmax‖_F / (2√N): {np.max(rec['jac'] / (2 * np.sqrt(Ns))):.3f} (Thm 4.1: ≤ 1)")
nbu.provenance()
