"""Docstrings of the normalizers, in numpydoc form.

``NORMALIZER_DOCS[name]`` is attached to the public function of that name at
the bottom of ``attnnorm._normalizers``.  The parameters every normalizer
shares (mask, causal, window, empty, out, axes), the return value and the
errors are written once here and spliced into each docstring.  Papers are
cited by the keys of ``docs/references.md``.
"""

SCORES = """\
scores : array_like, shape ``(..., n, m)``
    Scores of ``n`` queries against ``m`` keys; the map acts along the last
    axis (keys).  Leading axes broadcast against the parameters and the mask.
    A 1-D vector is one row.  float32 (and float16) scores run the float32
    kernel, anything else float64."""

SHARED_PARAMETERS = """\
mask : array_like of bool, optional
    Broadcastable to ``(..., n, m)``; True = keep (as PyTorch's boolean
    ``attn_mask``).  An integer mask of 0 and 1 is accepted (1 = keep).
    Masked scores are excluded exactly, never replaced by a finite sentinel.
causal : bool or {"bottom_right", "top_left"}, default False
    ``True`` (= ``"bottom_right"``, as FlashAttention): query ``i`` of ``n``
    sees key ``j`` of ``m`` iff ``j <= i + (m - n)``.  ``"top_left"`` (as
    PyTorch's ``is_causal``): iff ``j <= i``.  The two agree when ``n == m``.
window : (left, right) or None, default None
    Local attention: additionally ``c_i - left <= j <= c_i + right`` with
    ``c_i`` the query's aligned position (``i + (m - n)``, or ``i`` with
    ``causal="top_left"``); ``None`` on a side means unbounded.
empty : {"zero", "nan", "raise"}, default "zero"
    What a row that sees no key gets: weights 0, NaN, or a ValueError.
out : ndarray, optional
    Array of the result's shape and dtype to write the weights into.
axes : [(q_axis, k_axis), (q_axis, k_axis)], optional
    The (query, key) axes of the scores and of the output when they are not
    the last two (NumPy's gufunc ``axes=``; attnnorm has no ``dim=``)."""

WEIGHTS_RETURN = """\
weights : ndarray, shape ``(..., n, m)``
    The weights, of the scores' shape (broadcast against the mask), float32
    or float64.  Masked entries are exactly 0."""

RAISES = """\
ValueError
    A parameter outside its domain, a mask that does not broadcast, a bad
    ``window``, ``empty`` or ``axes`` (before any work starts, naming the
    parameter and the value); with ``empty="raise"``, a row that sees no key.
TypeError
    An unknown keyword (keywords from PyTorch such as ``dim=``,
    ``is_causal=`` or ``attn_mask=`` get a message naming attnnorm's
    equivalent) or complex, object or string scores."""

LENGTH_NOTE = ("``n_i`` is the number of keys query ``i`` sees after masking "
               "(causal, window and mask).")

TAU_PARAMETER = """\
return_tau : bool, default False
    Also return the per-row threshold ``tau`` and the support size."""

TAU_RETURN = """\
tau : ndarray, shape ``(..., n)``
    Only with ``return_tau=True``: the threshold of each row (NaN for empty
    and NaN rows).
support : ndarray of int64, shape ``(..., n)``
    Only with ``return_tau=True``: the number of nonzero weights per row."""


def _indent(text, pad="    "):
    return "\n".join(pad + line if line else line for line in text.splitlines())


def numpydoc(summary, extended, parameters, returns, notes, references, examples,
             raises=RAISES, see_also=None):
    """Assemble a numpydoc docstring from its sections (each already in
    numpydoc layout, unindented)."""
    parts = [summary, "", extended.strip(), "",
             "Parameters", "----------", parameters.strip(), "",
             "Returns", "-------", returns.strip(), "",
             "Raises", "------", raises.strip(), ""]
    if see_also:
        parts += ["See Also", "--------", see_also.strip(), ""]
    parts += ["Notes", "-----", notes.strip(), "",
              "References", "----------", references.strip(), "",
              "Examples", "--------", examples.strip(), ""]
    return "\n".join(parts)


def _normalizer_doc(summary, extended, params, notes, refs, example, *, tau=False,
                    see_also=None):
    parameters = "\n".join(p for p in (SCORES, params.strip(), TAU_PARAMETER if tau else "",
                                       SHARED_PARAMETERS) if p)
    returns = WEIGHTS_RETURN + ("\n" + TAU_RETURN if tau else "")
    examples = (">>> import numpy as np\n>>> import attnnorm as an\n"
                ">>> s = np.random.default_rng(0).standard_normal((2, 4, 6, 6))\n"
                + example.strip())
    return numpydoc(summary, extended, parameters, returns, notes, refs, examples,
                    see_also=see_also)


NORMALIZER_DOCS = {}

NORMALIZER_DOCS["softmax"] = _normalizer_doc(
    "Softmax with temperature over the keys.",
    """
Row by row over the visible keys, computed in the stable form with a shift
M subtracted: the maximum of the row's first 16 scores while no score
exceeds it by more than 60 T (every term then at most e^60), else the row
maximum.  A temperature below 1 sharpens the weights, as in Focal
Attention [Ram2025].
""",
    """
temperature : float or array_like, default 1.0
    ``T > 0``.  An array broadcasts against the leading axes (one
    temperature per head: shape ``(H,)`` for scores ``(B, H, n, m)``).
""",
    """
.. math:: a_{ij} = \\frac{\\exp(s_{ij} / T)}{\\sum_{k \\text{ visible}} \\exp(s_{ik} / T)}

Limits: ``+inf`` scores share the row's mass equally; a row whose visible
scores are all ``-inf`` is empty (``empty`` applies); NaN in a row gives a
NaN row (that row only).
""",
    "[Vaswani2017]; [Ram2025] (temperature).",
    """
>>> w = an.softmax(s, temperature=0.5, causal=True)
>>> w.shape
(2, 4, 6, 6)
>>> bool(np.allclose(w.sum(-1), 1.0)) and bool(np.all(np.triu(w[0, 0], 1) == 0))
True
""")

NORMALIZER_DOCS["softmax_sink"] = _normalizer_doc(
    "Softmax with an attention sink in the denominator (softmax-one at ``sink=0``).",
    """
The sink is a virtual key with score ``sink`` that takes part of the mass, so
rows sum to less than 1 and a query can attend to nothing [RanMilo2026].
Computed with ``max(max s, sink)`` subtracted.
""",
    """
sink : float or array_like, default 0.0
    The sink's score; an array broadcasts against the leading axes (one per
    head).  ``-inf`` gives exactly :func:`softmax`.
""",
    """
.. math:: a_{ij} = \\frac{\\exp(s_{ij})}{\\exp(\\mathrm{sink}) + \\sum_{k \\text{ visible}} \\exp(s_{ik})}

Limits: ``sink=+inf`` gives zeros (with ``+inf`` scores, the sink and each
``+inf`` score share the mass); ``+inf`` scores share the mass equally; a row
of ``-inf`` scores with a finite sink gives zeros (the sink takes the mass:
it is not an empty row, so ``empty`` applies only to rows with no visible key,
or to ``-inf`` rows when ``sink=-inf``); NaN gives a NaN row.
""",
    "[RanMilo2026] (attention sinks).",
    """
>>> w = an.softmax_sink(s, sink=0.0)
>>> bool(np.all(w.sum(-1) < 1.0))
True
""")

NORMALIZER_DOCS["ssmax"] = _normalizer_doc(
    "Scalable-Softmax: softmax of the scores times ``c log n_i``.",
    """
Scaling the scores by the log of the visible length keeps the largest weight
from fading as the context grows [Nakanishi2025]; it is the length-scaled
baseline of [Vasylenko2025].  """ + LENGTH_NOTE,
    """
c : float or array_like, default 0.43
    ``c >= 0``, finite (0.43 is the scalable-softmax package's default); an
    array broadcasts against the leading axes (one per head).
""",
    """
.. math:: a_{ij} = \\operatorname{softmax}_j\\bigl(c \\log(n_i)\\, s_{ij}\\bigr)

With ``n_i = 1`` (or ``c = 0``) the multiplier is ``log 1 = 0``: the result
is its limit as the multiplier goes to 0 from above, uniform over the finite
scores (weight 1 for a single key), 0 for ``-inf`` scores.  Otherwise the
limits are softmax's: ``+inf`` scores share the mass, a row of ``-inf`` is
empty, NaN gives a NaN row.
""",
    "[Nakanishi2025]; [Vasylenko2025].",
    """
>>> w = an.ssmax(s, c=0.43, causal=True)
>>> bool(np.allclose(w.sum(-1), 1.0))
True
""")

NORMALIZER_DOCS["sigmoid"] = _normalizer_doc(
    "Sigmoid attention: an elementwise sigmoid of the scores plus a bias, no normalisation.",
    """
With the default bias ``-log n_i`` the weights start close to softmax's,
since ``sigmoid(s - log n) ~ e^s / n`` [Ramapuram2024]; sigmoid gating has
lower sample complexity than softmax gating [Yan2025].  """ + LENGTH_NOTE,
    """
bias : float, array_like or None, default None
    ``None`` uses ``b = -log(n_i)`` per row; otherwise a finite number or an
    array broadcasting against the leading axes (one per head).
""",
    """
.. math:: a_{ij} = \\sigma(s_{ij} + b_i), \\qquad \\sigma(v) = \\exp(-\\operatorname{softplus}(-v))

computed in that overflow-free form.  Masked keys get 0; a row of ``-inf``
scores is all 0 (not an empty row: ``empty`` applies to rows with no visible
key); NaN stays NaN.
""",
    "[Ramapuram2024]; [Yan2025].",
    """
>>> w = an.sigmoid(s)
>>> bool(np.all((w > 0) & (w < 1)))
True
""")

NORMALIZER_DOCS["relu"] = _normalizer_doc(
    "ReLU attention: a power of the positive part of the scores over the visible length.",
    """
No normalisation: a query can put no mass anywhere, which is how ReLU
attention avoids attention sinks [RanMilo2026].  """ + LENGTH_NOTE,
    """
power : float or array_like, default 1
    ``p > 0``, finite; an array broadcasts against the leading axes.
""",
    """
.. math:: a_{ij} = \\max(s_{ij}, 0)^p / n_i

A row of non-positive or ``-inf`` scores is all 0 (not an empty row);
``+inf`` gives ``+inf``; NaN stays NaN (in its own row).  Dividing by
``n_i`` is attnnorm's documented choice for the length scaling.
""",
    "[RanMilo2026].",
    """
>>> w = an.relu(s, power=1)
>>> bool(np.all(w >= 0)) and bool(np.all(w[s <= 0] == 0))
True
""")

NORMALIZER_DOCS["polynomial"] = _normalizer_doc(
    "Polynomial attention: an integer power of the scores over the square root of the visible length.",
    """
Replacing softmax by ``x^p / sqrt(n)`` keeps the Frobenius norm of the
attention matrix of the same order as softmax's [Saratchandran2024].  Weights
may be negative and do not sum to 1; no maximum is subtracted, so large
scores overflow to ``+-inf`` as the formula does.  """ + LENGTH_NOTE,
    """
power : int or array_like, default 3
    A positive integer (``3``, the paper's default, or ``1``; a float such
    as ``3.0`` is accepted), at most ``2**24``: the power is then defined for
    negative scores and odd powers keep the sign.
""",
    """
.. math:: a_{ij} = s_{ij}^p / \\sqrt{n_i}

Non-integer powers raise ValueError rather than giving NaN for negative
scores.
""",
    "[Saratchandran2024].",
    """
>>> w = an.polynomial(s, power=3)
>>> bool(np.allclose(w, s ** 3 / np.sqrt(6)))
True
""")

NORMALIZER_DOCS["softpick"] = _normalizer_doc(
    "Softpick: rectified softmax whose rows sum to at most 1.",
    """
The numerator is ``ReLU(e^s - 1)`` and the denominator sums ``|e^s - 1|``,
so non-positive scores get exactly 0 and a row can put no mass anywhere
[Zuhri2025].  Computed in the stable form of the reference code with
``M = max s``: ``ReLU(e^(s_j - M) - e^(-M)) / (sum_k |e^(s_k - M) - e^(-M)| +
eps)`` over the finite visible scores (so ``eps`` acts on the rescaled
denominator).
""",
    """
eps : float or array_like, default 1e-8
    ``eps > 0``, finite; an array broadcasts against the leading axes.
""",
    """
.. math:: a_{ij} = \\frac{\\max(e^{s_{ij}} - 1, 0)}{\\sum_{k \\text{ visible}} |e^{s_{ik}} - 1| + \\varepsilon}

A row with ``max s <= 0`` (including all ``-inf``) is all 0, not an empty
row.  ``+inf`` scores share the mass equally; NaN gives a NaN row.
""",
    "[Zuhri2025].",
    """
>>> w = an.softpick(s)
>>> bool(np.all(w.sum(-1) <= 1.0)) and bool(np.all(w[s <= 0] == 0))
True
""")

NORMALIZER_DOCS["nap"] = _normalizer_doc(
    "Normalized Attention Pooling: the visible scores standardised per row, with a gain and a bias.",
    """
No probability simplex: the weights are signed and sum to ``n_i * bias``
[Richter2020].  ``mu_i`` and ``sigma_i`` are the mean and *population*
standard deviation of the row's visible scores; masked keys get 0 (the bias
is added to visible keys only).  """ + LENGTH_NOTE,
    """
gain : float or array_like, default 1.0
    Finite; an array broadcasts against the leading axes (one per head).
bias : float or array_like, default 0.0
    Finite; as ``gain``.
eps : float or array_like, default 1e-3
    ``eps > 0``, finite, added to the standard deviation.
""",
    """
.. math:: a_{ij} = g \\frac{s_{ij} - \\mu_i}{\\sigma_i + \\varepsilon} + b

Limits: with infinite scores the result is the standardisation of their
signs (``+1`` for ``+inf``, ``-1`` for ``-inf``, 0 for finite scores), its
limit as they grow; a constant row (e.g. all ``-inf``) gives ``b``.  NaN
gives a NaN row.
""",
    "[Richter2020].",
    """
>>> w = an.nap(s, gain=1.0, bias=0.0)
>>> bool(np.allclose(w.sum(-1), 0.0))
True
""")

NORMALIZER_DOCS["affine_softmax"] = _normalizer_doc(
    "Affine-scaled softmax: a per-row scale times softmax plus a per-row bias.",
    """
Relaxes softmax's unit-sum constraint while the values are still aggregated
[Bae2026].  ``a=1, b=0`` is exactly :func:`softmax`.  Masked keys stay
exactly 0 (``b`` is added to visible keys only); a row of ``-inf`` scores is
empty, as for softmax.
""",
    """
a : float or array_like, default 1.0
    Finite; a scalar or an array broadcasting against ``(..., n)``: one value
    per query row, leading axes for per-head values (for scores
    ``(B, H, n, m)`` a per-head ``a`` has shape ``(H, 1)``).  With ``axes=``,
    ``(..., n)`` is the layout with the query axis last.
b : float or array_like, default 0.0
    Finite; as ``a``.
""",
    """
.. math:: w_{ij} = a_i \\operatorname{softmax}_j(s_i) + b_i

How ``a`` and ``b`` are computed from the input (gated or not) is the
model's business; this function takes them as given.
""",
    "[Bae2026].",
    """
>>> w = an.affine_softmax(s, a=0.9, b=0.01)
>>> bool(np.allclose(w.sum(-1), 0.9 + 6 * 0.01))
True
""")

NORMALIZER_DOCS["sparsemax"] = _normalizer_doc(
    "Sparsemax: the Euclidean projection of each row of scores onto the probability simplex.",
    """
Exact: only the candidates ``s_j > max s - 1`` can be in the support; the
threshold is the sort-based closed form on them [Martins2016] (sorted when
few, the support found without sorting when many).  It is alpha-entmax with
``alpha = 2`` [Peters2019].
""",
    "",
    """
.. math:: p_{ij} = \\max(s_{ij} - \\tau_i, 0), \\qquad \\sum_{j \\text{ visible}} p_{ij} = 1

Empty rows have ``tau`` NaN and support 0; NaN rows ``tau`` NaN; rows with
``+inf`` scores share the mass equally among the ``+inf`` entries
(``tau = +inf``).
""",
    "[Martins2016]; [Peters2019].",
    """
>>> w, tau, support = an.sparsemax(s, return_tau=True)
>>> bool(np.allclose(w.sum(-1), 1.0)) and bool(np.all(support == (w > 0).sum(-1)))
True
""", tau=True, see_also="entmax : alpha-entmax; ``alpha=2`` is sparsemax.")

NORMALIZER_DOCS["entmax"] = _normalizer_doc(
    "alpha-entmax over the keys: sparse for alpha > 1, softmax at alpha = 1, sparsemax at alpha = 2.",
    """
The maximiser of ``p . s + H_alpha(p)`` over the simplex, ``H_alpha`` the
Tsallis entropy [Peters2019]; the default ``alpha = 1.5`` is ASEntmax's
[Vasylenko2025].

* ``alpha == 2``: sparsemax (same code, exact);
* ``alpha == 1.5``: exact threshold, the sort-based closed form (as
  ``entmax.entmax15``) on the candidates ``s_j > max s - 2``;
* other ``alpha > 1``: ``n_iter`` bisection steps on ``tau`` from the bracket
  given by the row maximum, then renormalised to sum to 1 (as
  ``entmax.entmax_bisect``).  The power is evaluated as
  ``exp(log1p(u) / (alpha - 1))`` so the result tends continuously to
  softmax as ``alpha -> 1``;
* ``alpha == 1``: softmax; ``tau`` is then the row's log-sum-exp
  (``p = exp(s - tau)``), not the limit of the formula below.
""",
    """
alpha : float or array_like, default 1.5
    ``alpha >= 1``, finite; an array broadcasts against the leading axes.
n_iter : int, default 50
    ``>= 1``: bisection steps for alpha other than 1, 1.5 and 2.
""",
    """
.. math:: p_{ij} = \\bigl[(\\alpha - 1) s_{ij} - \\tau_i\\bigr]_+^{1 / (\\alpha - 1)}, \\qquad \\sum_{j \\text{ visible}} p_{ij} = 1
""",
    "[Peters2019]; [Vasylenko2025].",
    """
>>> w = an.entmax(s, alpha=1.5)
>>> bool(np.allclose(w.sum(-1), 1.0)) and bool((w == 0).any())
True
>>> bool(np.allclose(an.entmax(s, alpha=2.0), an.sparsemax(s)))
True
""", tau=True, see_also="sparsemax : the case ``alpha = 2``.")

NORMALIZER_DOCS["stochastic_softmax"] = _normalizer_doc(
    "Stochastic softmax: normalised multinomial counts drawn from softmax, reproducibly seeded.",
    """
Each row is replaced by ``c / N`` with ``c ~ Multinomial(N, softmax(s))``
and ``N = trials`` [Yadav2026]: unbiased (``E[a~] = softmax(s)``),
``Var[a~_j] = a_j (1 - a_j) / N``, every weight a multiple of ``1 / N``.

Reproducible: the draws come from a counter-based generator keyed by
``(seed, matrix index, row)``, so the result depends only on ``seed`` and on
the position of the row in the batch, never on the thread count.  Matrix
``k`` of the flattened leading axes uses stream ``k`` (the raw gufunc
``attnnorm._core.stochastic_softmax`` takes the streams as an int64 operand
after ``trials`` and ``seed``).  Up to ``2**20`` trials, sampled by
inversion: each trial is one uniform placed on the row's CDF, cost
``O(n_i + N log n_i)`` per row.  Above, the counts are drawn key by key as
sequential binomials, ``c_j ~ Binomial(N - sum_{l<j} c_l, p_j / sum_{l>=j} p_l)``
(the multinomial factorised exactly), each by Hörmann's BTRS transformed
rejection (1993; geometric waiting times when its mean is below 10): cost
``O(n_i)`` per row whatever ``N`` (up to ``2**63 - 1``), still seeded and
independent of the thread count.
""",
    """
trials : int or array_like of int, default 100
    ``N >= 1``, the number of draws per row.
seed : int, default 0
    Any signed 64-bit integer (negative ones included).
""",
    """
.. math:: \\tilde a_{i\\cdot} = c_i / N, \\qquad c_i \\sim \\operatorname{Multinomial}(N, \\operatorname{softmax}(s_i))
""",
    "[Yadav2026].",
    """
>>> w = an.stochastic_softmax(s, trials=100, seed=0)
>>> bool(np.allclose(w.sum(-1), 1.0)) and bool(np.allclose(w * 100, np.round(w * 100)))
True
""")

NORMALIZER_DOCS["sinkhorn"] = _normalizer_doc(
    "Sinkhorn attention: log-domain Sinkhorn iterations on each whole (n, m) score matrix.",
    """
Alternating row and column normalisation makes the attention matrix (close
to) doubly stochastic [Sander2021].  ``n_iter=1`` (one row step) is exactly
``softmax(s / eps)``.

Masks exclude entries exactly.  ``n_r`` and ``m_c`` count the rows and
columns with at least one visible entry: empty rows (fully masked or all
``-inf``) take no part and follow ``empty``.  With ``causal=True`` this is a
Sinkhorn iteration on the causal support with those marginals; it is well
defined but converges slowly, as the plan is forced towards the diagonal.  A
row with NaN among its visible scores is NaN there and is left out of the
column step and of ``n_r``.  A row containing ``+inf`` keeps only its
``+inf`` entries with equal scores (the row step's limit).  With
``empty="raise"`` the error does not name the row.
""",
    """
n_iter : int, default 5
    ``>= 1``: alternating steps, starting with the row step.
eps : float, default 1.0
    Entropic regularisation, ``> 0`` and finite in the loop's dtype.
""",
    """
With ``K = s / eps``, potentials ``f = g = 0`` and uniform marginals
``mu = 1/n_r``, ``nu = 1/m_c``, the row and column steps are

.. math:: f_i = \\log \\mu_i - \\operatorname{LSE}_j(K_{ij} + g_j), \\qquad g_j = \\log \\nu_j - \\operatorname{LSE}_i(K_{ij} + f_i)

and the result is ``A = n_r * exp(K + f 1' + 1 g')``: rows sum to 1 after a
row step, columns to ``n_r / m_c`` after a column step.
""",
    "[Sander2021].",
    """
>>> a = an.sinkhorn(s, n_iter=1)
>>> bool(np.allclose(a, an.softmax(s)))
True
>>> bool(np.all(an.column_residual(an.sinkhorn(s, n_iter=20)) < 1e-6))
True
""")

NORMALIZER_DOCS["stickbreaking"] = _normalizer_doc(
    "Stick-breaking attention: each key takes a sigmoid share of the mass the nearer keys left.",
    """
Over the keys query ``i`` sees, nearest first, key ``j`` breaks off a
fraction ``beta_ij = sigmoid(s_ij)`` of the stick that the keys nearer to the
query left over [Tan2025]: a causal model gets a recency bias without
positional encodings.  Computed in double precision and rounded once, with
``sigmoid(s)`` and ``1 - sigmoid(s) = sigmoid(-s)`` each formed directly
(never as 1 minus a rounded value), so a key with a large score still
leaves its small remainder and long rows keep their small weights; once
the stick left is below the smallest weight the dtype holds, the farther
keys get 0 without being computed.  Rows sum to at most 1; the remainder
is the mass no key took.
""",
    """
include_current : bool, default True
    Whether the query's own aligned position (key ``i + (m - n)``, or ``i``
    with ``causal="top_left"``) is among the keys it sees; ``False`` excludes
    it (attention to strictly earlier keys under ``causal``).
""",
    """
.. math:: a_{ij} = \\beta_{ij} \\prod_{k \\text{ visible},\\, k > j} (1 - \\beta_{ik}), \\qquad \\beta_{ij} = \\sigma(s_{ij})

"Nearer" means a larger key index ``k > j`` (closer to the query's aligned
position).
""",
    "[Tan2025].",
    """
>>> w = an.stickbreaking(s, causal=True)
>>> bool(np.all(w.sum(-1) <= 1.0 + 1e-12)) and bool(np.all(np.triu(w[0, 0], 1) == 0))
True
""")


# --------------------------------------------------------------------------
# Shared blocks for the docstrings written in place (attention, diagnostics,
# linear family): a line holding only ``{name}`` is replaced by the block,
# indented as that line.
# --------------------------------------------------------------------------

VISIBILITY_PARAMETERS = SHARED_PARAMETERS.split("\nempty :")[0]

BLOCKS = {
    "visibility": VISIBILITY_PARAMETERS,
    "shared": SHARED_PARAMETERS,
    "raises": RAISES,
    "weights_a": """\
a : array_like, shape ``(..., n, m)``
    Attention weights (rows = queries, columns = keys); a 1-D vector is one
    row.""",
    "raises_diagnostic": """\
ValueError
    A parameter outside its domain or a mask that does not broadcast, naming
    the parameter and the value.
TypeError
    Complex, object or string input, or an unknown keyword (PyTorch's
    ``dim=`` and friends get a message naming attnnorm's equivalent).""",
    "raises_vjp": """\
ValueError
    Core shapes that do not fit (naming the arrays and their shapes), a
    ``grad_out`` that is not of the output's shape, leading axes that do
    not broadcast, a parameter outside its domain.
TypeError
    An unknown keyword, or complex, object or string arrays.""",
    "raises_qkv": """\
ValueError
    Core shapes that do not match (``d`` of q and k, ``m`` of k and v),
    leading axes that do not broadcast (with the grouped-query reshape when
    the head counts divide), or a parameter outside its domain.
TypeError
    Complex, object or string input, or an unknown keyword (PyTorch's
    ``is_causal=``, ``attn_mask=``, ... get a message naming attnnorm's
    equivalent).""",
}


def fill_doc(func):
    """Decorator: expand ``{name}`` lines of ``func.__doc__`` from BLOCKS."""
    lines = []
    for line in (func.__doc__ or "").splitlines():
        key = line.strip()
        if key.startswith("{") and key.endswith("}") and key[1:-1] in BLOCKS:
            pad = line[:len(line) - len(line.lstrip())]
            lines.append(_indent(BLOCKS[key[1:-1]], pad))
        else:
            lines.append(line)
    func.__doc__ = "\n".join(lines)
    return func
