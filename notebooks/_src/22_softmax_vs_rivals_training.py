# %% [markdown]
# # Softmax against linear, sigmoid and ReLU attention: test error against sample size
#
# **Claims.** [Duranthon2025] (*Statistical Advantage of Softmax Attention: Insights from
# Single-Location Regression*): on single-location regression, where the output depends on one
# token at an unknown position, softmax attention reaches a lower test error than attention whose
# weights are an elementwise function of the scores (sigmoid, ReLU, ...). [Deng2023] (*Why Softmax
# Attention Outperforms Linear Attention*): softmax attention outperforms kernel-form linear attention.
# Both are qualitative here: "softmax wins".
#
# **Task** (single-location regression). A sequence has L tokens x_l ∈ ℝ^d, x_l ~ N(0, I_d). One
# position ε, uniform on {1…L}, carries the signal: x_ε ← x_ε + μ·k* (k* a fixed unit vector), and the
# target is y = ⟨v*, x_ε⟩ + σ·ξ with v* ⊥ k* a fixed unit vector and ξ ~ N(0, 1).
#
# **Model** (one attention layer with a learned query): ŷ = Σ_l w_l ⟨v, x_l⟩ with scores
# s_l = ⟨k, x_l⟩ and learned k, v ∈ ℝ^d; the weights w = φ(s) are
#
# * softmax: e^{s_l}/Σ e^{s};  sigmoid: σ(s_l − log L);  ReLU: ReLU(s_l)/L
#   (`attnnorm.torch.normalize` on the (n, L) score matrix);
# * linear (elu+1, [Katharopoulos2020]): φ(k)·φ(x_l)/Σ_l φ(k)·φ(x_l) with φ = elu + 1, written in
#   PyTorch; its forward is checked against `attnnorm.linear_attention`.
#
# Training: full-batch Adam on the MSE plus λ(‖k‖² + ‖v‖²), the same steps, learning rate and λ for
# every normaliser and sample size; test MSE on fresh samples, divided by Var(y) = 1 + σ².
#
# **Departures.** [Duranthon2025] analyses the high-dimensional limit (n, d → ∞ with n/d fixed)
# with the optimal regularisation and compares against Bayes-optimal errors; here d is small, λ is
# fixed, the optimiser is Adam, and the elementwise rivals are sigmoid and ReLU (the paper's exact
# list of elementwise activations is not in our sources). [Deng2023]'s own experimental set-up is not
# in our sources: its softmax-vs-linear claim is tested on the same single-location task.

# %%
# Parameters. Default: ~20 s of CPU for the training (~1.5 min wall on the shared, loaded 2-core
# machine; measured). A larger run -- D = 128, NS = [64, 128, …, 8192], SEEDS = range(10),
# STEPS = 1000 -- takes ~2 h of CPU here (extrapolated linearly in steps × seeds × Σn × d).
D = 32                      # token dimension
L = 8                       # tokens per sequence
MU = 3.0                    # signal strength along k*
SIGMA = 0.1                 # label noise
NS = [64, 128, 256, 512, 1024]
SEEDS = [0, 1, 2, 3, 4]
STEPS = 200
LR = 0.03
LAM = 1e-2                  # ridge penalty on k and v
N_TEST = 4000
NORMS = ["softmax", "linear", "sigmoid", "relu"]

# %%
import numpy as np
import matplotlib.pyplot as plt
import torch
import attnnorm
import attnnorm.torch as at
import _nbutil as nbu
import _train as tr

tr.setup()
clock = tr.Clock()
linear_attention = nbu.impl("linear_attention")

# %% [markdown]
# ## Checks: attnnorm's normalisers and linear attention against their formulas

# %%
for name in ["softmax", "sigmoid", "relu"]:
    tr.check_normalize(name)


def elu1(t):
    return torch.nn.functional.elu(t) + 1.0


g = torch.Generator().manual_seed(3)
kq, xs, vs = torch.randn(5, 1, D, generator=g), torch.randn(5, L, D, generator=g), torch.randn(5, L, 2, generator=g)
a = elu1(xs) @ elu1(kq)[..., 0, :, None]                       # (5, L, 1)
mine = ((a / a.sum(1, keepdim=True)) * vs).sum(1, keepdim=True)
lib = linear_attention(kq.double().numpy(), xs.double().numpy(), vs.double().numpy(), "elu1", eps=0.0)
nbu.check("linear_attention(elu1) vs φ(q)·φ(x_l)/Σ φ(q)·φ(x_l) in PyTorch",
          np.abs(lib - mine.double().numpy()).max(), 1e-5)

# %% [markdown]
# ## Data, model, training

# %%
def make(n, gen):
    X = torch.randn(n, L, D, generator=gen)
    eps = torch.randint(0, L, (n,), generator=gen)
    X[torch.arange(n), eps, 0] += MU                           # k* = e_0
    y = X[torch.arange(n), eps, 1] + SIGMA * torch.randn(n, generator=gen)   # v* = e_1
    return X, y, eps


class SingleLocation(torch.nn.Module):
    def __init__(self, norm):
        super().__init__()
        self.norm = norm
        self.k = torch.nn.Parameter(0.1 * torch.randn(D))
        self.v = torch.nn.Parameter(0.1 * torch.randn(D))

    def weights(self, X):
        if self.norm == "linear":
            a = elu1(X) @ elu1(self.k)
            return a / a.sum(-1, keepdim=True)
        return at.normalize((X @ self.k)[None], self.norm)[0]   # (n, L): one row per sequence

    def forward(self, X):
        return (self.weights(X) * (X @ self.v)).sum(-1)


X_test, y_test, eps_test = make(N_TEST, torch.Generator().manual_seed(999))
var_y = 1.0 + SIGMA ** 2
err = {name: np.zeros((len(SEEDS), len(NS))) for name in NORMS}
loc = {name: np.zeros((len(SEEDS), len(NS))) for name in NORMS}   # mean weight on ε (test)
for name in NORMS:
    with clock(f"train {name}"):
        for si, seed in enumerate(SEEDS):
            for ni, n in enumerate(NS):
                tr.seed_all(seed)
                X, y, _ = make(n, torch.Generator().manual_seed(100 * seed + ni))
                model = SingleLocation(name)
                opt = torch.optim.Adam(model.parameters(), lr=LR)
                for step in range(STEPS):
                    loss = ((model(X) - y) ** 2).mean() + LAM * (model.k.square().sum() + model.v.square().sum())
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                with torch.no_grad():
                    err[name][si, ni] = float(((model(X_test) - y_test) ** 2).mean()) / var_y
                    loc[name][si, ni] = float(model.weights(X_test)[torch.arange(N_TEST), eps_test].mean())
    m, s = tr.mean_spread(err[name])
    print(f"{name:8s} test MSE / Var(y) at n = {NS}: " + ", ".join(tr.fmt(a, b, 2) for a, b in zip(m, s)))

# %% [markdown]
# ## Test error and localisation against sample size
#
# Left: test MSE / Var(y) (1 = predicting 0). Right: the mean weight the trained layer puts on the
# signal token ε of each test sequence (1/L for uniform weights; for sigmoid and ReLU the rows do not
# sum to 1, so this is the weight itself).

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
for name in NORMS:
    tr.plot_band(ax1, NS, err[name], name, marker="o")
    tr.plot_band(ax2, NS, loc[name], name, marker="o")
ax1.set_xscale("log", base=2); ax1.set_yscale("log"); ax1.set_xlabel("training samples n")
ax1.set_ylabel("test MSE / Var(y)"); ax1.set_title(f"single-location regression (d = {D}, L = {L})")
ax2.axhline(1 / L, color="gray", ls=":", label="uniform 1/L")
ax2.set_xscale("log", base=2); ax2.set_xlabel("training samples n"); ax2.set_ylabel("weight on ε")
ax2.set_title("mass on the signal token (test)"); ax1.legend(); ax2.legend()
plt.tight_layout(); plt.show()

# %% [markdown]
# ## Conclusion

# %%
clock.report()
m = {name: tr.mean_spread(err[name]) for name in NORMS}
n_big = NS[-1]
print(f"\nmeasured test MSE / Var(y) at n = {n_big} (mean ± std over {len(SEEDS)} seeds):")
for name in NORMS:
    print(f"  {name:8s} {tr.fmt(m[name][0][-1], m[name][1][-1])}   weight on ε "
          f"{tr.fmt(*[x[-1] for x in tr.mean_spread(loc[name])])}")
rivals = [nm for nm in NORMS if nm != "softmax"]
wins = [nm for nm in rivals if m["softmax"][0][-1] < m[nm][0][-1]]
best_at = [min(NORMS, key=lambda nm: m[nm][0][i]) for i in range(len(NS))]
print(f"softmax has the lowest mean error at n = {n_big} against: {wins or 'none'}")
print("lowest mean test error at each n: " + ", ".join(f"n={n}: {b}" for n, b in zip(NS, best_at))
      + "  (errors above 1 are worse than predicting 0: too few samples for d = %d)" % D)
print("papers: [Duranthon2025] softmax beats elementwise normalisations on single-location "
      "regression; [Deng2023] softmax beats linear attention (qualitative claims; no number for "
      "this set-up in our sources).")
print("verdict: " + ("agrees (softmax lowest at the largest n against all three rivals)"
                     if len(wins) == len(rivals) else
                     f"DOES NOT fully agree: softmax is not below {sorted(set(rivals) - set(wins))}"))
print("departures: small d with fixed λ and Adam instead of the high-dimensional limit with the "
      "optimal regularisation; sigmoid (bias −log L) and ReLU (÷L) as the elementwise rivals; "
      "[Deng2023]'s own tasks not reproduced.")
nbu.provenance()
