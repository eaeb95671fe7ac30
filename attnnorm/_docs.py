"""The docstrings of the normalizer functions, by name.

The wrappers in ``attnnorm._normalizers`` are generated from the C
descriptors; each takes its ``__doc__`` from here.
"""

NORMALIZER_DOCS = {
    'softmax': """Softmax with temperature over the last axis.

    ``a_j = exp(s_j / T) / sum_k exp(s_k / T)`` over the visible keys, computed
    in the stable form with the row maximum subtracted.  ``T < 1`` sharpens
    (Focal Attention, papers.md A0); ``T`` may be an array broadcasting
    against the leading axes (one temperature per head).

    Limits: ``+inf`` scores share the row's mass equally; a row whose visible
    scores are all ``-inf`` is treated as empty; NaN in a row gives a NaN row.
    """,
    'softmax_sink': """Softmax with an attention sink in the denominator (softmax_1 at sink=0).

    ``a_j = exp(s_j) / (exp(sink) + sum_k exp(s_k))`` over the visible keys
    (attention sinks, papers.md A / #4), computed with ``max(max s, sink)``
    subtracted.  Rows sum to less than 1; the rest is the sink's mass.
    ``sink`` may be an array broadcasting against the leading axes.

    Limits: ``sink=-inf`` is exactly :func:`softmax`; ``sink=+inf`` gives zeros
    (with ``+inf`` scores, the sink and each ``+inf`` score share the mass);
    ``+inf`` scores share the mass equally; a row of ``-inf`` scores with a
    finite sink gives zeros (the sink takes the mass; it is not an empty row,
    so ``empty`` applies only to rows with no visible key, or to ``-inf`` rows
    when ``sink=-inf``); NaN in a row gives a NaN row.
    """,
    'ssmax': """Scalable-Softmax: ``softmax(c * log(n_i) * s)`` over the visible keys.

    ``n_i`` is the number of keys query ``i`` sees after masking (Nakanishi
    2025; papers.md A0 and #11).  ``c >= 0`` finite (default 0.43, the
    scalable-softmax package's default) may be an array broadcasting against
    the leading axes (one per head).

    With ``n_i = 1`` (or ``c = 0``) the multiplier is ``log 1 = 0``: the result
    is its limit as the multiplier goes to 0 from above, uniform over the finite
    scores (weight 1 for a single key), 0 for ``-inf`` scores.  Otherwise the
    limits are softmax's: ``+inf`` scores share the mass, a row of ``-inf`` is
    empty, NaN gives a NaN row.
    """,
    'sigmoid': """Sigmoid attention: ``a_j = sigma(s_j + b)`` elementwise, no normalisation.

    ``bias=None`` uses ``b = -log(n_i)`` per row, with ``n_i`` the number of
    visible keys (papers.md A4, #9: then ``sigma(s - log n) ~ e^s / n``);
    otherwise ``bias`` is a finite number or an array broadcasting against the
    leading axes.  ``sigma(v)`` is computed as ``exp(-softplus(-v))`` in the
    overflow-free form.  Masked keys get 0; a row of ``-inf`` scores is all 0
    (not an empty row: ``empty`` applies to rows with no visible key).
    """,
    'relu': """ReLU attention: ``a_j = max(s_j, 0)**power / n_i`` (papers.md A12, #4).

    ``power > 0`` (finite; may be an array over the leading axes).  ``n_i`` is
    the row's visible length.  No normalisation: a row of non-positive or
    ``-inf`` scores is all 0 (not an empty row); ``+inf`` gives ``+inf``; NaN
    stays NaN (in its own row).
    """,
    'polynomial': """Polynomial attention: ``a_j = s_j**power / sqrt(n_i)`` (papers.md A3, #3).

    ``power`` must be a positive integer (``3``, the paper's default, or e.g.
    ``1``; a float such as ``3.0`` is accepted): the power is then defined for
    negative scores and odd powers keep the sign.  Non-integer powers raise
    ValueError rather than giving NaN for negative scores.  Weights may be
    negative and do not sum to 1; no max subtraction (papers.md A3), so large
    scores overflow to ``+-inf`` as the formula does.
    """,
    'softpick': """Softpick: ``ReLU(e^s_j - 1) / (sum_k |e^s_k - 1| + eps)`` (papers.md A13).

    Computed in the stable form of the reference code with ``m = max s``:
    ``ReLU(e^(s_j-m) - e^-m) / (sum_{k: s_k finite} |e^(s_k-m) - e^-m| + eps)``
    (so ``eps`` acts on the rescaled denominator).  ``eps > 0``.  Rows sum to
    at most 1 and are exactly 0 where ``s <= 0``; a row with ``max s <= 0``
    (including all ``-inf``) is all 0, not an empty row.  ``+inf`` scores share
    the mass equally; NaN gives a NaN row.
    """,
    'nap': """Normalized Attention Pooling: ``g (s_j - mu) / (sigma + eps) + b``.

    ``mu`` and ``sigma`` are the mean and *population* standard deviation of
    the row's visible scores (papers.md A1, the title paper); masked keys get 0
    (``b`` is added to visible keys only).  ``gain``, ``bias`` (finite) and
    ``eps > 0`` may be arrays broadcasting against the leading axes (one per
    head).  Weights are signed and sum to ``n_i * b``.

    Limits: with infinite scores the result is the standardisation of their
    signs (``+1`` for ``+inf``, ``-1`` for ``-inf``, 0 for finite scores), its
    limit as they grow; a constant row (e.g. all ``-inf``) gives ``b``.  NaN
    gives a NaN row.
    """,
    'affine_softmax': """Affine-scaled softmax: ``a_i * softmax(s)_j + b_i`` (papers.md A2, #2).

    ``a`` and ``b`` are finite scalars or arrays broadcasting against
    ``(..., n)``: one value per query row, leading axes for per-head values
    (for scores ``(B, H, n, m)`` a per-head ``a`` has shape ``(H, 1)``).  With
    ``axes=``, ``(..., n)`` is the layout with the query axis last.  Masked keys
    stay exactly 0 (``b`` is added to visible keys only).  A row of ``-inf``
    scores is empty, as for softmax; ``a=1, b=0`` is exactly :func:`softmax`.
    """,
    'sparsemax': """Sparsemax: the Euclidean projection of each row onto the simplex.

    ``p_j = max(s_j - tau, 0)`` with the threshold ``tau`` chosen so that the
    visible weights sum to 1 (Martins & Astudillo 2016; alpha-entmax with
    alpha = 2, papers.md A6).  Exact: only the candidates ``s_j > max s - 1``
    can be in the support; the threshold is the sort-based closed form on
    them (sorted when few, support found without sorting when many).

    ``return_tau=True`` returns ``(weights, tau, support)``: ``tau (..., n)``
    and ``support (..., n)`` int64, the number of nonzero weights per row.
    Empty rows have tau NaN and support 0; NaN rows tau NaN; rows with ``+inf``
    scores share the mass equally among the ``+inf`` entries (tau = +inf).
    """,
    'entmax': """alpha-entmax over the last axis (Peters et al. 2019; ASEntmax, papers.md A6).

    ``p_j = [(alpha - 1) s_j - tau]_+ ** (1 / (alpha - 1))`` with ``tau`` such
    that the visible weights sum to 1 (the maximiser of ``p.s + H_alpha(p)``,
    Tsallis entropy).  ``alpha`` (>= 1, may be an array broadcasting against the
    leading axes):

    * ``alpha == 2``: sparsemax (same code, exact);
    * ``alpha == 1.5``: exact threshold, the sort-based closed form of
      ``entmax.entmax15`` (on the candidates ``s_j > max s - 2``);
    * other ``alpha > 1``: ``n_iter`` bisection steps on tau starting from the
      bracket given by the row maximum, then renormalised to sum to 1 (as
      ``entmax.entmax_bisect``).  The power is evaluated as
      ``exp(log1p(u) / (alpha - 1))`` so the result tends continuously to
      softmax as ``alpha -> 1``;
    * ``alpha == 1``: softmax; tau is then the row's log-sum-exp
      (``p = exp(s - tau)``), not the limit of the formula above.

    ``return_tau=True`` returns ``(weights, tau, support)`` as in
    :func:`sparsemax`.  ``alpha < 1`` or ``n_iter < 1`` raise ValueError.
    """,
    'stochastic_softmax': """Stochastic softmax (Stochastic Attention #10, papers.md A7).

    ``a~ = c / N`` with ``c ~ Multinomial(N, softmax(s))`` per row and
    ``N = trials``: unbiased (``E[a~] = softmax(s)``), ``Var[a~_j] =
    a_j (1 - a_j) / N``, and every weight a multiple of ``1 / N``.

    Reproducible: the draws come from a counter-based generator keyed by
    ``(seed, matrix index, row)``, so the result depends only on ``seed`` (any
    signed 64-bit integer, negative ones included) and on the position of the
    row in the batch, never on the thread count.  Matrix ``k`` of the
    flattened leading axes uses stream ``k`` (the gufunc takes the streams as
    an int64 operand after trials and seed; see :func:`stochastic_streams`).
    Sampled by inversion: each trial is one uniform placed on the row's CDF
    (a binary search over blocks of 8 keys), cost O(n_i + N log n_i) per row.
    ``trials < 1`` raises ValueError.
    """,
    'sinkhorn': """Sinkhorn attention (Sinkformers #8, papers.md A5) on each whole (n, m) matrix.

    Log domain: ``K = s / eps``, ``pi = exp(K + f 1' + 1 g')`` from ``f = g = 0``,
    ``n_iter`` alternating steps starting with the row step
    ``f_i = log mu_i - LSE_j(K_ij + g_j)``, then the column step
    ``g_j = log nu_j - LSE_i(K_ij + f_i)``; returns ``A = n_r * pi``.  With
    uniform marginals ``mu = 1/n_r`` and ``nu = 1/m_c``, rows of A sum to 1
    after a row step and columns to ``n_r / m_c`` after a column step;
    ``n_iter=1`` is exactly ``softmax(s / eps)``.

    Masks exclude entries exactly.  ``n_r`` and ``m_c`` count the rows and
    columns with at least one visible entry: empty rows (fully masked or all
    ``-inf``) take no part and follow ``empty``.  (With ``causal=True`` this
    is a Sinkhorn iteration on the causal support with those marginals; it is
    well defined but, as the plan is forced towards the diagonal, converges
    slowly.)  A row with NaN among its visible scores is NaN there and is left
    out of the column step and of ``n_r``.  A row containing ``+inf`` keeps
    only its ``+inf`` entries with equal scores (the row step's limit).
    ``n_iter < 1`` or ``eps <= 0`` raise ValueError.  With ``empty="raise"``
    the error does not name the row.
    """,
    'stickbreaking': """Stick-breaking attention [Tan2025]: each query breaks a unit stick
    over the keys it sees, nearest first.

    Taking the visible keys from the last one backwards, ``beta_j =
    sigma(s_j)`` and ``a_j = beta_j prod_{k visible, k > j} (1 - beta_k)``:
    the nearest key takes ``beta`` of the stick, the next one ``beta`` of what
    is left, and so on.  Computed in log space (``log sigma`` and
    ``log(1 - sigma) = -softplus``, summed in float64), so long rows neither
    underflow early nor lose precision.  Weights are not normalised:
    ``1 - sum_j a_j`` is the mass the row leaves unused.

    ``include_current=False`` leaves out the key at the query's own aligned
    position ``i + (m - n)`` (weight 0; it breaks nothing), as the reference
    implementation does by default.  A ``-inf`` score takes nothing, a
    ``+inf`` score takes the whole remaining stick (farther keys get 0), a row
    of ``-inf`` scores is all 0 (not an empty row: ``empty`` applies to rows
    with no visible key); NaN makes its key and every farther key NaN.
    """,
}
