# %% [markdown]
# # C12 — Memorisation capacity of one multi-head attention layer
#
# **Claim** ([Mahdavi2023], *Memorization Capacity of Multi-Head Attention in Transformers*): the
# largest dataset of random (input, label) pairs that a single multi-head attention layer memorises
# *perfectly* (100 % training accuracy) grows linearly with the number of heads H (the theorem:
# Ω(H·n) examples for context length n < d_h), and, against the context length n, grows until n
# reaches the head dimension d_h and then saturates.
#
# **Set-up** (the authors' `task_datasets.py`, `attn_models.py`, `tasks.py`, `trainers.py` and
# `main.py`, random-label classification): an example is a token e ~ U[0, 1]^d followed by a context
# E ~ U[0, 1]^{n×d}, with a label uniform over N_CLASSES classes. The model embeds the n + 1 tokens
# linearly to d_model, adds sinusoidal positions and runs one multi-head attention layer in which
# attention to token 0 is masked, with H heads of key dimension d_h = d_model (Xavier-initialised
# W_Q, W_K per head), value dimension 1, an output map H → d_model and a linear decoder to the
# classes; the scores are scaled by 1/√d_model; the loss is the cross-entropy of token 0's logits.
# Only token 0's output enters the loss, so only its query row is computed here: scores
# (batch, H, n) normalised by `attnnorm.torch.normalize` (softmax); a check below shows that this
# equals the full masked attention through `attnnorm.torch.scaled_dot_product_attention`. Adam with
# the authors' schedule (linear warm-up from lr/100 over the first 5 % of the steps, then cosine
# decay), early stop as soon as the training accuracy is exactly 1.
#
# **Capacity N\*** for one (H, n, seed): the largest N such that training on the first N examples
# of the seed's dataset reaches 100 % training accuracy within the training budget. Search: train at
# N = N_START and double N until a run fails (halve instead if N_START already fails), then bisect
# between the last success and the first failure until the bracket is narrower than RESOLUTION·N
# (coarse by default). Bisection assumes success is monotone in N; every trained N is kept, and the
# notebook counts the pairs that contradict it.
#
# **Departures from the paper**, all in the default run (the first cell's `PAPER_GRID = True`
# restores the paper's sizes, optimiser and grids):
# 1. d = d_model = d_h = 8 instead of 64, 10 classes instead of 100; heads 1–4 at n = 4 (the paper:
#    1–60 at n = 32; both have n = d_h/2), contexts 1–32 at H = 2 (the paper: 1–60 at H = 20).
# 2. Training: full-batch Adam, lr 1e-2, 600 steps, accuracy checked every 25 steps (the paper:
#    batch 256, lr 1e-3, max(500 epochs, 50 000 steps), accuracy checked every 500 steps). N* is
#    defined by this budget; a larger budget can only find equal or larger N*.
# 3. The search: the paper trains each configuration on a few fixed dataset sizes (`reproduce.sh`,
#    e.g. 30k–130k examples for the head sweep) and reads off the largest one memorised; we search by
#    doubling and bisection, to a coarse resolution.
# 4. Datasets are nested (the first N examples of one seeded stream, drawn in chunks), so the N of a
#    search differ only in their size; the paper draws each size afresh from seed 42.
# 5. Seeds: 2 here, each seeding the data and the initialisation; `reproduce.sh` runs one seed (the
#    authors' README: 6 seeds in the paper, ~10 V100-days).
# 6. Masking: key 0 gets weight exactly 0 (as `attn_models.py`, which fills −∞). The `gnn_models.py`
#    model that the stored `main.py` imports multiplies the score of key 0 by 0 instead, which leaves
#    it a weight e⁰/Σ; we follow the version whose comment and the paper say "masked".
# 7. The paper also runs a regression task and a "fixed context" variant; only random-context
#    classification is reproduced here.

# %%
# Parameters. Default: 70–90 s of CPU here (measured: 72 s, and 88 s under heavy load; 3–9 min of
# wall time on the shared, loaded machine; the table at the end gives each run's). PAPER_GRID = True
# sets the paper's sizes, optimiser and grids (d = 64, 100 classes, H ∈ {1, 5, …, 60} at n = 32,
# n ∈ {1, 5, …, 60} at H = 20, batch 256, lr 1e-3, max(500 epochs, 50 000 steps), 6 seeds): the last
# cell estimates its CPU time here from a timed step of the paper-sized model -- about a CPU-year
# (0.8–0.9 measured). The paper's context grid stops at n = 60 < d_h = 64, so it has no point with
# n ≥ d_h; add some to CTXS to see the saturation.
PAPER_GRID = False
D = 8                       # input dimension = d_model = d_h
N_CLASSES = 10
HEADS = [1, 2, 3, 4]        # head sweep, at context N_CTX_H
N_CTX_H = 4
CTXS = [1, 2, 4, 8, 16, 32] # context sweep, at H_CTX heads
H_CTX = 2
SEEDS = [0, 1]
LR = 1e-2
BATCH = None                # None: full batch
EPOCHS = 600                # training budget: max(MIN_STEPS, EPOCHS · batches per epoch) steps
MIN_STEPS = 0
EVAL_EVERY = 25             # steps between checks of the training accuracy (early stop at 100 %)
N_START = 8                 # first dataset size of the search
RESOLUTION = 0.125          # bisect until (first failure − last success) ≤ RESOLUTION · last success
N_MAX = 4096                # the search never trains on more examples than this
if PAPER_GRID:
    D, N_CLASSES = 64, 100
    HEADS, N_CTX_H = [1, 5, 10, 20, 30, 40, 50, 60], 32
    CTXS, H_CTX = [1, 5, 10, 20, 30, 40, 50, 60], 20
    SEEDS = list(range(6))
    LR, BATCH, EPOCHS, MIN_STEPS, EVAL_EVERY = 1e-3, 256, 500, 50_000, 500
    N_START, RESOLUTION, N_MAX = 8192, 0.05, 2 ** 19

# %%
import math
import time
import numpy as np
import matplotlib.pyplot as plt
import torch
import attnnorm.torch as at
import _nbutil as nbu
import _train as tr

tr.setup()
clock = tr.Clock()
tr.check_normalize("softmax", shape=(2, 5, 4))

# %%
CHUNK = 1024


def examples(n_ctx, seed, N, d=None):
    """The first N examples of the stream for (n_ctx, seed): token e, context E (both U[0, 1]^D),
    label uniform over the classes. Drawn in chunks of CHUNK from generators seeded by
    (seed, n_ctx, chunk), so a dataset of size N is a prefix of every larger one."""
    d = D if d is None else d
    parts = []
    for c in range(-(-N // CHUNK)):
        rng = np.random.default_rng([seed, n_ctx, c])
        E = rng.uniform(size=(CHUNK, n_ctx, d))
        e = rng.uniform(size=(CHUNK, d))
        y = rng.integers(0, N_CLASSES, size=CHUNK)
        parts.append((np.concatenate([e[:, None, :], E], axis=1), y))
    X = np.concatenate([p[0] for p in parts])[:N]
    y = np.concatenate([p[1] for p in parts])[:N]
    return torch.tensor(X, dtype=torch.float32), torch.tensor(y)


def sinusoid(n, d):
    pos = torch.arange(n)[:, None]
    div = torch.exp(torch.arange(0, d, 2) * (-math.log(10000.0) / d))
    pe = torch.zeros(n, d)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
    return pe


class MemoryMHA(torch.nn.Module):
    """One MHA layer, H heads of key dimension d = d_model and value dimension 1, attention to
    token 0 masked; returns token 0's class logits."""

    def __init__(self, heads, d=None, classes=None):
        super().__init__()
        d = self.d = D if d is None else d
        xavier = lambda *shape: torch.nn.init.xavier_uniform_(torch.empty(*shape))
        self.emb = torch.nn.Linear(d, d)
        self.Wq = torch.nn.Parameter(torch.stack([xavier(d, d) for _ in range(heads)]))
        self.Wk = torch.nn.Parameter(torch.stack([xavier(d, d) for _ in range(heads)]))
        self.Wv = torch.nn.Parameter(torch.stack([xavier(d, 1) for _ in range(heads)]))
        self.Wo = torch.nn.Parameter(xavier(heads, d))
        self.dec = torch.nn.Linear(d, N_CLASSES if classes is None else classes)

    def project(self, X):
        """Queries, keys and values of all n + 1 tokens: (batch, H, n + 1, ·)."""
        h = self.emb(X) + sinusoid(X.shape[1], self.d)
        return tuple(torch.einsum("bnd,hde->bhne", h, W) for W in (self.Wq, self.Wk, self.Wv))

    def forward(self, X):
        q, k, v = self.project(X)
        s = torch.einsum("bhe,bhne->bhn", q[:, :, 0], k[:, :, 1:]) / math.sqrt(self.d)  # token 0's row, key 0 masked
        w = at.normalize(s.reshape(1, -1, s.shape[-1]), "softmax").reshape(s.shape)
        o = (w * v[:, :, 1:, 0]).sum(-1) @ self.Wo                                 # (batch, d_model)
        return self.dec(o)


# token 0's row computed alone equals row 0 of the full attention over all n + 1 tokens with key 0
# masked (attnnorm.torch.scaled_dot_product_attention with a boolean attn_mask), as in the authors'
# model; the row's softmax here is torch.softmax, so the check also covers the adapter's softmax
torch.manual_seed(0)
m = MemoryMHA(3)
Xc, _ = examples(5, 0, 8)
with torch.no_grad():
    q, k, v = m.project(Xc)
    keep = torch.ones(6, 6, dtype=torch.bool)
    keep[:, 0] = False
    full = at.scaled_dot_product_attention(q, k, v, attn_mask=keep)[:, :, 0, 0]   # (8, H)
    s0 = torch.einsum("bhe,bhne->bhn", q[:, :, 0], k[:, :, 1:]) / math.sqrt(D)
    row = (torch.softmax(s0, -1) * v[:, :, 1:, 0]).sum(-1)
nbu.check("token-0 row alone vs masked full attention through the adapter", float((full - row).abs().max()), 1e-5)
Xa, _ = examples(3, 7, 3000)
Xb, _ = examples(3, 7, 1500)
nbu.check("a smaller dataset is a prefix of a larger one (nested datasets)", float((Xa[:1500] - Xb).abs().max()), 0.0)

# %% [markdown]
# ## The search for the largest perfectly memorised dataset

# %%
def budget(N):
    """Training steps for a dataset of N examples: max(MIN_STEPS, EPOCHS · batches per epoch)."""
    batches = 1 if BATCH is None else -(-N // BATCH)
    return max(MIN_STEPS, EPOCHS * batches)


def lr_factor(step, steps):
    """The authors' schedule: linear warm-up from 1/100 over the first 5 % of the steps, then cosine."""
    warm = steps // 20
    if step < warm:
        return 0.01 + (1 - 0.01) * step / warm
    return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))


def all_correct(model, X, y):
    with torch.no_grad():
        return bool(torch.cat([model(X[i:i + 4096]).argmax(-1) for i in range(0, len(X), 4096)]).eq(y).all())


STEPS_RUN = [0]   # training steps taken by all runs (for the cost estimate)


def memorises(heads, X, y, seed):
    """Train a fresh model (initialisation seeded by seed) on (X, y) within the budget; True as soon
    as the training accuracy is 100 %."""
    tr.seed_all(seed)
    model = MemoryMHA(heads)
    steps = budget(len(X))
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, steps))
    gen = torch.Generator().manual_seed(seed)
    perm, pos = None, 0
    for step in range(steps):
        if step % EVAL_EVERY == 0 and all_correct(model, X, y):
            STEPS_RUN[0] += step
            return True
        if BATCH is None or BATCH >= len(X):
            xb, yb = X, y
        else:
            if perm is None or pos + BATCH > len(X):
                perm, pos = torch.randperm(len(X), generator=gen), 0
            idx = perm[pos:pos + BATCH]
            pos += BATCH
            xb, yb = X[idx], y[idx]
        loss = torch.nn.functional.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    STEPS_RUN[0] += steps
    return all_correct(model, X, y)


SEARCHES = {}     # (heads, n_ctx, seed) -> search result; the two sweeps share (H_CTX, N_CTX_H)


def capacity(heads, n_ctx, seed):
    """Largest N (≤ N_MAX) memorised perfectly: doubling (or halving) from N_START, then bisection.
    Returns (N*, first failed N or None if censored at N_MAX, {N: memorised})."""
    if (heads, n_ctx, seed) not in SEARCHES:
        SEARCHES[heads, n_ctx, seed] = _search(heads, n_ctx, seed)
    return SEARCHES[heads, n_ctx, seed]


def _search(heads, n_ctx, seed):
    X, y = examples(n_ctx, seed, N_MAX)
    tried = {}

    def ok(N):
        if N not in tried:
            tried[N] = memorises(heads, X[:N], y[:N], seed)
        return tried[N]

    if ok(N_START):
        lo, hi = N_START, None
        while 2 * lo <= N_MAX and ok(2 * lo):
            lo *= 2
        if 2 * lo <= N_MAX:
            hi = 2 * lo
    else:
        lo, hi = N_START // 2, N_START
        while lo > 1 and not ok(lo):
            lo, hi = lo // 2, lo
    if hi is None:
        return lo, None, tried
    while hi - lo > max(1, RESOLUTION * lo):
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo, hi, tried


def sweep(configs):
    """N* for each (heads, context) pair and seed: arrays (len(SEEDS), len(configs))."""
    cap = np.zeros((len(SEEDS), len(configs)))
    inversions, censored = 0, 0
    for i, (h, n) in enumerate(configs):
        for si, seed in enumerate(SEEDS):
            lo, hi, tried = capacity(h, n, seed)
            cap[si, i] = lo
            censored += hi is None
            # a failure at a smaller N than a success contradicts monotonicity
            inversions += sum(1 for a, oa in tried.items() for b, ob in tried.items() if a < b and not oa and ob)
        print(f"H = {h:2d}, n = {n:2d}: N* = {tr.fmt(*tr.mean_spread(cap[:, i]))}  "
              f"(per seed {', '.join(str(int(c)) for c in cap[:, i])})")
    return cap, inversions, censored


with clock("head sweep"):
    cap_h, inv_h, cen_h = sweep([(h, N_CTX_H) for h in HEADS])
with clock("context sweep"):
    cap_n, inv_n, cen_n = sweep([(H_CTX, n) for n in CTXS])

# %% [markdown]
# ## N\* against H (expected linear) and against n (expected to saturate once n ≥ d_h)

# %%
mean_h, sd_h = tr.mean_spread(cap_h)
slope, icpt = np.polyfit(HEADS, mean_h, 1)
fit = slope * np.array(HEADS) + icpt
r2 = 1 - ((mean_h - fit) ** 2).sum() / ((mean_h - mean_h.mean()) ** 2).sum()
mean_n, sd_n = tr.mean_spread(cap_n)
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
ax1.errorbar(HEADS, mean_h, yerr=sd_h, fmt="o", capsize=3, label=f"N* (mean ± std, {len(SEEDS)} seeds), n = {N_CTX_H}")
ax1.plot(HEADS, fit, "k--", label=f"linear fit: {slope:.1f}·H {icpt:+.1f} (R² = {r2:.3f})")
ax1.set_xlabel("heads H"); ax1.set_ylabel("largest perfectly memorised N*")
ax1.legend(); ax1.set_title(f"against heads (d = d_h = {D}, {N_CLASSES} classes)")
ax2.errorbar(CTXS, mean_n, yerr=sd_n, fmt="o-", capsize=3, label=f"N*, H = {H_CTX}")
ax2.axvline(D, color="k", ls="--", label=f"n = d_h = {D}")
ax2.set_xscale("log", base=2); ax2.set_xlabel("context length n"); ax2.set_ylabel("N*")
ax2.legend(); ax2.set_title("against context length")
plt.tight_layout(); plt.show()

# %% [markdown]
# ## Conclusion
#
# The checks below hold the notebook to what this page and the README claim for the default run;
# they fail if a rerun (or a change to the adapter, the optimiser or the search) gives a different
# picture. The search itself must be resolved: no configuration may stop at N_MAX or at N = 1.
#
# **How far the default numbers can be trusted** (two larger runs of this notebook, measured here
# with the first cell changed). N* is the capacity *within the budget*, a lower bound of the
# budget-free one, and its spread over seeds (±10–45) is comparable to the differences between
# neighbouring n. With 1200 steps and the same 2 seeds, N* = 12, 56, 92, 132 for H = 1–4 (39.6 per
# head, R² = 0.999), but against n the point at n = d_h = 8 fell below its neighbours (20, 37, 56,
# 42, 64, 70 for n = 1–32), so the log-log slopes were 0.38 up to d_h and 0.37 after: no saturation
# with those two seeds. With 1200 steps and 4 seeds (0–3), N* = 20.5, 38.5, 46.5, 59, 64, 70, 73 for
# n = 1–64 (std 6–23): slopes 0.48 up to d_h and 0.11 after, the saturation the paper reports. The
# default's picture (linear in H, growth slowing after d_h) therefore holds, but its saturation
# verdict rests on two seeds; use 4 or more seeds before quoting it.

# %%
clock.report()
# cost of the paper's grid: one timed step of each paper-sized head/context configuration would be
# too slow here, so time one step at (H = 20, n = 32) and scale by H·(n + 1)
torch.manual_seed(0)
big = MemoryMHA(20, d=64, classes=100)
Xt, _ = examples(32, 0, 256, d=64)
yt = torch.randint(0, 100, (256,))
opt_t = torch.optim.Adam(big.parameters(), lr=1e-3)
t0 = time.process_time()
for _ in range(5):
    loss = torch.nn.functional.cross_entropy(big(Xt), yt)
    opt_t.zero_grad(); loss.backward(); opt_t.step()
step_cpu = (time.process_time() - t0) / 5
# per search ~10 trainings at the paper's sizes (N ~ 50k: max(500·N/256, 50 000) ≈ 98k steps each)
paper_cfgs = [(h, 32) for h in [1, 5, 10, 20, 30, 40, 50, 60]] + [(20, n) for n in [1, 5, 10, 20, 30, 40, 50, 60]]
paper_cpu = sum(10 * 98_000 * step_cpu * h * (n + 1) / (20 * 33) for h, n in paper_cfgs) * 6
print(f"\none paper-sized step (H = 20, n = 32, d = 64, batch 256): {1e3 * step_cpu:.1f} ms of CPU; the paper's grid "
      f"(16 configurations × 6 seeds × ~10 trainings of ~98k steps) ≈ {paper_cpu / 86400 / 365:.1f} CPU-years here")

gain_h = mean_h[-1] / mean_h[0]
# growth against n as the log-log slope of mean N* (N* ∝ n^slope) up to d_h and from d_h on
ns = np.array(CTXS)
slope_below = nbu.loglog_slope(ns[ns <= D], mean_n[ns <= D])
slope_above = nbu.loglog_slope(ns[ns >= D], mean_n[ns >= D]) if (ns >= D).sum() >= 2 else float("nan")
train = (f"{budget(1)} full-batch steps" if BATCH is None else f"batch {BATCH}, max({MIN_STEPS}, {EPOCHS} epochs) steps")
print(f"\nmeasured (d = d_h = {D}, {N_CLASSES} classes, {len(SEEDS)} seed(s), Adam lr {LR:g}, {train}, resolution "
      f"{RESOLUTION:.3g}; mean ± std over seeds):")
print(f"  N* against H at n = {N_CTX_H}: " + ", ".join(f"H={h}: {m:.0f} ± {s:.0f}" for h, m, s in zip(HEADS, mean_h, sd_h))
      + f"; linear fit {slope:.1f} examples per head (intercept {icpt:+.1f}), R² = {r2:.3f}")
print(f"  N* against n at H = {H_CTX}: " + ", ".join(f"n={n}: {m:.0f} ± {s:.0f}" for n, m, s in zip(CTXS, mean_n, sd_n)))
print(f"  log-log slope of N* against n: {slope_below:.2f} for n ≤ d_h = {D}, {slope_above:.2f} for n ≥ d_h")
print(f"  searches: {inv_h + inv_n} monotonicity violations among the trained sizes; {cen_h + cen_n} censored at N_MAX; "
      f"{STEPS_RUN[0]} training steps in all")
print("paper [Mahdavi2023]: N* grows linearly in H (theorem: Ω(H·n) examples for n < d_h) and saturates once n ≥ d_h "
      "(figures, d = 64, 100 classes; no table of numbers in our sources).")
print("departures: " + ("" if PAPER_GRID else f"d = {D} and {N_CLASSES} classes instead of 64 and 100, {train} instead of "
      "batch 256 for max(500 epochs, 50 000) steps, smaller H and n grids, fewer seeds; ")
      + "a doubling-and-bisection search on nested datasets (see the first cell).")
print(f"verdict: {'linear' if r2 >= 0.9 else 'NOT linear'} in H (R² = {r2:.3f}, {slope:.1f} examples per head); "
      "against n: " + ("not measured after d_h" if not np.isfinite(slope_above) else
                       "growth slows after d_h" if slope_above <= 0.5 * slope_below else "NO saturation after d_h")
      + f" (slopes {slope_below:.2f} → {slope_above:.2f}).")
nbu.check("searches resolved: none censored at N_MAX", cen_h + cen_n, 0)
nbu.check("searches resolved: every configuration memorises N ≥ 2", min(cap_h.min(), cap_n.min()), 2, at_least=True)
nbu.check("linear in H: R² of the linear fit of mean N* against H", r2, 0.9, at_least=True)
nbu.check(f"linear in H: N*(H = {HEADS[-1]}) / N*(H = {HEADS[0]}) (H ratio {HEADS[-1] / HEADS[0]:.0f})",
          gain_h, 0.5 * HEADS[-1] / HEADS[0], at_least=True)
nbu.check("N* grows with n up to d_h: log-log slope for n ≤ d_h", slope_below, 0.25, at_least=True)
if np.isfinite(slope_above):
    nbu.check("N* saturates after d_h: slope for n ≥ d_h over slope for n ≤ d_h", slope_above / slope_below, 0.5)
else:
    print(f"no saturation check: CTXS has fewer than two n ≥ d_h = {D}")
nbu.provenance()
