"""Optimal quantization of rank-one matrices (and batches of rank-one terms).

Layer 3 (algorithms). For fixed :math:`\\hat x`, the best :math:`\\hat y` of
:math:`\\|x y^T - \\hat x \\hat y^T\\|_F` is :math:`\\mathrm{fl}(\\mu y)`,
:math:`\\mu = x^T\\hat x / \\|\\hat x\\|^2`, and symmetrically; so some optimal
pair has :math:`\\hat x = \\mathrm{fl}(\\nu x)` for a scale :math:`\\nu > 0`,
and :math:`\\nu \\mapsto \\mathrm{fl}(\\nu x)` only changes at breakpoints
(where some :math:`\\nu |x_i|` crosses a midpoint between consecutive numbers
of the format). The breakpoint sweep (:func:`sweep`) visits every state in
between. In an unbounded format :math:`\\mathrm{fl}(2\\nu x) = 2
\\mathrm{fl}(\\nu x)`, so :math:`\\nu \\in [1, 2]` suffices; in a bounded one
the optimum is a power-of-two rescaling of the unbounded one when one is
representable (it cannot do better, the format being a subset), and otherwise
the sweep runs over every breakpoint of the format.
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause


import numpy as np

from skbutterfly._breakpoints import (
    Costs,
    batches,
    n_windows,
    ratio,
    state_sums,
    sweep,
    unbounded_grid,
)
from skbutterfly._formats import (
    check_format,
    output_dtype,
    round_significand,
    round_to_format,
)
from skbutterfly._quantize_bounded import (
    FLOAT64,
    BoundedSide,
    bounded_x,
    float64_shift,
    format_params,
    pair_shift,
    shift_range,
    top_exponent,
)
from skbutterfly._validation import check_matrix

QUANTIZE_METHODS = ("exact", "dfo", "rtn")
# Largest t of the exact method (2**(t-1) breakpoints per entry and binade).
_MAX_EXACT_T = 20
# Derivative-free search: grid points per round and rounds of refinement.
_DFO_GRID = 16
_DFO_ROUNDS = 3


class ComplexQuantizationError(NotImplementedError, ValueError):
    """Optimal quantization of complex factors is not implemented.

    Both a ``NotImplementedError`` (what is missing) and a ``ValueError``
    (what scikit-learn's meta-estimator tooling expects of unsupported input).
    """


_COMPLEX_MESSAGE = (
    "complex input is not supported by the optimal quantization (it needs a "
    "complex scaling factor, see CROQuant and the user guide's quantization "
    "page); quantize the real and imaginary parts with round_to_format or "
    "heuristic='rtn'."
)


# ----------------------------------------------------------------------------
# The scale in the unbounded format F_t (rows normalized to max-norm [1/2, 1))
# ----------------------------------------------------------------------------


def _exact_scale(absx, costs, t):
    """:math:`|\\hat x|` of the optimum over :math:`\\lambda \\in [1, 2]`.

    Each nonzero :math:`x_i = u_i 2^{e_i}` (:math:`u_i \\in [1, 2)`) starts
    at the ``t``-bit number nearest to :math:`u_i` (ties up: the state just
    above :math:`\\lambda = 1`) and crosses the :math:`2^{t-1}` midpoints
    ``c`` in :math:`(u_i, 2u_i]`, at :math:`\\lambda = c / u_i`.
    """
    grid = unbounded_grid(t)
    values, mids = grid[:2]
    T, m = absx.shape
    h = 1 << (t - 1)
    frac, E = np.frexp(absx)
    nonzero = absx > 0
    W = np.where(nonzero, 2 * frac, 0.0)
    sigma = np.where(nonzero, np.ldexp(1.0, E - 1), 0.0)
    lo = np.where(nonzero, np.searchsorted(mids, W, side="right"), 0)
    hi = np.where(nonzero, lo + h, 0)
    # a window of lambda-width 1/n holds at most 2h/n + 1 breakpoints per entry
    n = n_windows(m, 2 * h)
    windows = np.linspace(1.0, 2.0, n + 1)
    out = np.empty_like(absx)
    for b in batches(T, m * h):
        idx = sweep(absx[b], W[b], sigma[b], lo[b], hi[b], grid, windows, costs, b)
        out[b] = values[idx] * sigma[b]
    return out


def _dfo_scale(absx, costs, t):
    """:math:`|\\hat x|` by a refined grid search of :math:`\\lambda`."""
    out = np.empty_like(absx)
    steps = np.arange(_DFO_GRID) / _DFO_GRID
    width = _DFO_GRID * max(absx.shape[1], costs.absy.shape[1])
    for b in batches(absx.shape[0], width):
        x = absx[b]
        lo, hi = np.ones(len(b)), np.full(len(b), 2.0)
        for _ in range(_DFO_ROUNDS):
            lam = lo[:, None] + (hi - lo)[:, None] * steps
            P = round_significand(lam[..., None] * x[:, None, :], t)
            c = costs.all(*state_sums(x[:, None, :], P), b)
            best = lam[np.arange(len(b)), np.argmin(c, axis=1)]
            step = (hi - lo) / _DFO_GRID
            lo, hi = np.maximum(1.0, best - step), np.minimum(2.0, best + step)
        out[b] = round_significand(best[:, None] * x, t)
    return out


# Name -> function(normalized |x|, costs, t) returning |x_hat| in F_t.
SCALE_SEARCH = {"exact": _exact_scale, "dfo": _dfo_scale}


def _normalized(X):
    """``|X|`` with rows rescaled by powers of two to max-norm in [1/2, 1)."""
    e = np.frexp(np.max(np.abs(X), axis=1, initial=0.0))[1]
    return np.ldexp(np.abs(X), -e[:, None]), e


def quantize_terms(X, Y, fmt, method):
    """Quantize the rank-one terms ``X[k] Y[k]^T`` (float64 rows).

    Returns ``(Xh, Yh)`` with entries in ``fmt``, always finite. The scale is
    searched on the shorter side. The unbounded optimum is computed on rows
    rescaled to max-norm in [1/2, 1) and scaled back by powers of two chosen
    to keep both sides finite in float64 (the natural scale when it fits) or,
    in a bounded format, to make both sides representable (the most balanced
    such rescaling): that is optimal, the format being a subset of
    :math:`F_t`. The terms with no such rescaling are swept over every scale
    (:func:`bounded_exact`).
    """
    if method == "rtn" or X.shape[1] == 0 or Y.shape[1] == 0:
        return round_to_format(X, fmt), round_to_format(Y, fmt)
    if X.shape[1] > Y.shape[1]:
        Yh, Xh = quantize_terms(Y, X, fmt, method)
        return Xh, Yh
    with np.errstate(all="ignore"):
        absx, ex = _normalized(X)
        absy, ey = _normalized(Y)
        t = fmt.t
        costs = Costs(absy, lambda z, rows: round_significand(z, t))
        p = SCALE_SEARCH[method](absx, costs, t)
        q = round_significand(ratio(*state_sums(absx, p))[:, None] * absy, t)
        if fmt.bounded:
            prefer = (ey + top_exponent(q) - ex - top_exponent(p)) // 2
            s, ok = pair_shift(p, ex, q, ey, format_params(fmt), prefer)
        else:
            s = float64_shift(p, ex, q, ey, X, Y)
            ok = np.ones(len(s), dtype=bool)
        Xh, Yh = np.ldexp(p, (ex + s)[:, None]), np.ldexp(q, (ey - s)[:, None])
        rest = np.flatnonzero(~ok)
        if fmt.bounded and rest.size:
            side = BoundedSide(absy[rest], ex[rest], ey[rest], fmt, False)
            local = np.arange(rest.size)
            xr = bounded_x(
                absx[rest], p[rest], ex[rest], side, fmt, method, prefer[rest]
            )
            mu = ratio(*state_sums(absx[rest], side.scaled(xr, local)))
            qr = side.y_round(mu[:, None] * absy[rest], local)
            Xh[rest], Yh[rest] = xr, np.ldexp(qr, side.h[:, None])
    return Xh * np.sign(X), Yh * np.sign(Y)


def quantize_left_terms(X, Y, fmt, method):
    """Quantize ``X`` alone, ``Y`` being carried exactly as :math:`\\mu Y`.

    Returns ``(Xh, mu)``: the quantized rows and the optimal scaling of each
    row of ``Y`` for them (the left-to-right heuristic passes it to the next
    factor). Each term's :math:`\\hat x` maximizes :math:`(x^T\\hat x)^2 /
    \\|\\hat x\\|^2`, which no rescaling of :math:`\\hat x` changes: the
    unbounded optimum is kept at its natural scale, or the nearest
    representable one; the terms with none are swept in the format.
    """
    if method == "rtn" or X.shape[1] == 0:
        return round_to_format(X, fmt), np.ones(X.shape[0])
    with np.errstate(all="ignore"):
        absx, ex = _normalized(X)
        absy, ey = _normalized(Y)
        costs = Costs(absy)
        p = SCALE_SEARCH[method](absx, costs, fmt.t)
        params = format_params(fmt) if fmt.bounded else FLOAT64
        lo, hi = shift_range(p, params)
        ok = lo <= hi
        if not fmt.bounded:  # lose low bits rather than overflow
            lo, ok = np.minimum(lo, hi), np.ones_like(ok)
        s = np.where(ok, np.clip(0, lo - ex, np.maximum(lo, hi) - ex), 0)
        Xh = np.ldexp(p, (ex + s)[:, None])
        mu = np.ldexp(ratio(*state_sums(absx, p)), -s)
        rest = np.flatnonzero(~ok)
        if fmt.bounded and rest.size:
            side = BoundedSide(absy[rest], ex[rest], ey[rest], fmt, True)
            local = np.arange(rest.size)
            xr = bounded_x(absx[rest], p[rest], ex[rest], side, fmt, method, s[rest])
            A, B = state_sums(absx[rest], side.scaled(xr, local))
            Xh[rest], mu[rest] = xr, np.ldexp(ratio(A, B), ex[rest] - side.g)
    return Xh * np.sign(X), mu


def check_method(method, fmt):
    if method not in QUANTIZE_METHODS:
        raise ValueError(f"method must be one of {QUANTIZE_METHODS}, got {method!r}.")
    if method == "exact" and fmt.t > _MAX_EXACT_T:
        raise ValueError(
            f"method='exact' enumerates 2**(t-1) breakpoints per entry: t must be "
            f"<= {_MAX_EXACT_T}, got t={fmt.t}; use method='dfo'."
        )


def real_float64(arr):
    if arr.dtype.kind == "c":
        raise ComplexQuantizationError(_COMPLEX_MESSAGE)
    return arr.astype(np.float64)


def quantize_rank_one(x, y, fmt, method: str = "exact"):
    """Quantize a rank-one matrix :math:`x y^T` (or many) to a float format.

    Finds :math:`\\hat x, \\hat y` with entries in the format minimising

    .. math:: \\|x y^T - \\hat x \\hat y^T\\|_F^2
              = \\|x\\|^2\\|y\\|^2 - 2 (x^T\\hat x)(y^T\\hat y)
                + \\|\\hat x\\|^2 \\|\\hat y\\|^2.

    With ``method="exact"`` the result is the optimum over every pair of
    vectors of the format (bounded or not), up to the float64 evaluation of
    the costs (about :math:`10^{-16} \\|x\\|^2\\|y\\|^2`); it is never worse
    than round-to-nearest. Some optimal pair is :math:`\\hat x =
    \\mathrm{fl}(\\nu x)`, :math:`\\hat y = \\mathrm{fl}(\\mu y)`, :math:`\\mu
    = x^T\\hat x / \\|\\hat x\\|^2`, for a scale :math:`\\nu > 0` [1]_, and
    :math:`\\nu \\mapsto \\mathrm{fl}(\\nu x)` only changes at breakpoints
    (where some :math:`\\nu |x_i|` crosses a midpoint between consecutive
    numbers). The breakpoints are swept on the shorter of ``x`` and ``y``,
    in sorted order, with O(1) updates of :math:`x^T\\hat x` and
    :math:`\\|\\hat x\\|^2` and one O(``len(y)``) evaluation per state:

    * unbounded exponent: :math:`\\mathrm{fl}(2\\nu x) = 2\\mathrm{fl}(\\nu
      x)`, so :math:`\\nu \\in [1, 2]` suffices: :math:`2^{t-1}` breakpoints
      per nonzero entry. The pair is scaled back by powers of two that keep
      both sides finite (and normal) in float64; when none can (the product
      of the largest entries near the square of the largest float64), an
      ``OverflowError``.
    * bounded exponent (subnormals, saturation, flush to zero change the
      breakpoints and break the invariance): if a power-of-two rescaling
      :math:`(\\hat x 2^k, \\hat y 2^{-k})` of the unbounded optimum is
      representable, it is optimal (the format is a subset of
      :math:`F_t`), and the most balanced one is returned; otherwise the
      sweep runs over every scale :math:`\\nu > 0`, i.e. over every midpoint
      of the format for every entry (all of them: about 32 000 per entry for
      float16 and bfloat16, 126 for float8). Values are always finite
      (overflow saturates). For a custom format with more than
      :math:`2^{22}` positive values that sweep is not attempted: the best of
      a few rescalings and round-to-nearest is returned with an
      :class:`ApproximateQuantizationWarning`.

    The only states the sweep can miss are those realized on an interval of
    relative width below float64's resolution (breakpoints float64 cannot
    separate). Working memory: the sweep runs in windows of a bounded number
    of breakpoints and candidates, so beyond arrays proportional to the
    input it needs at most 64 MiB per job (a few MiB measured), whatever
    ``t`` and the lengths.

    Parameters
    ----------
    x : array-like of shape (m,) or (n_terms, m)
        Left vector, or one left vector per row for a batch of terms.
    y : array-like of shape (n,) or (n_terms, n)
        Right vector(s).
    fmt : FloatFormat, int or str
        Target format, ``t`` alone (unbounded exponent) or a preset name.
    method : {"exact", "dfo", "rtn"}, default="exact"
        ``"exact"``: the breakpoint sweep, time
        :math:`O(\\min(m,n)\\,2^{t-1} \\max(m, n))` per term (``t <= 20``;
        times the number of binades of the format for the terms of a bounded
        format that need the full sweep). ``"dfo"``: a derivative-free search
        of :math:`\\nu \\in [1, 2)` (a grid refined three times, 48
        evaluations; in a bounded format, then the best of the representable
        rescaling or, if none, of a few rescalings and round-to-nearest;
        cheap, no optimality guarantee). ``"rtn"``: round both vectors to
        nearest (the baseline).

    Returns
    -------
    x_hat : ndarray of the shape of ``x``
    y_hat : ndarray of the shape of ``y``
        Exactly representable in ``fmt``.

    Raises
    ------
    ComplexQuantizationError
        For complex input (a ``NotImplementedError`` and a ``ValueError``).
    OverflowError
        Unbounded format only, when the optimal pair cannot be held in
        float64 (see above).

    Warns
    -----
    ApproximateQuantizationWarning
        When a custom bounded format is too large to sweep (see above).

    See Also
    --------
    quantize_factors : Two factors with disjoint rank-one supports.
    quantize_butterfly : All factors of a butterfly.

    References
    ----------
    .. [1] R. Gribonval, T. Mary, E. Riccietti, "Optimal quantization of
       rank-one matrices in floating-point arithmetic, with applications to
       butterfly factorizations", preprint hal-04125381, 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly import quantize_rank_one
    >>> x, y = np.array([1.0, 1.3]), np.array([0.7, 1.1])
    >>> xh, yh = quantize_rank_one(x, y, 3)
    >>> xr, yr = quantize_rank_one(x, y, 3, method="rtn")
    >>> err = lambda a, b: np.linalg.norm(np.outer(x, y) - np.outer(a, b))
    >>> bool(err(xh, yh) < err(xr, yr))
    True

    In a bounded format the exponent range matters: here round-to-nearest
    flushes :math:`2^{-10}` to zero, the optimum rescales it into range.

    >>> x, y = np.array([1.0]), np.array([1.0, 2.0**-10])
    >>> xh, yh = quantize_rank_one(x, y, "float8_e4m3")
    >>> print(xh, yh, err(xh, yh))
    [0.5] [2.        0.0019531] 0.0
    """
    fmt = check_format(fmt)
    check_method(method, fmt)
    x_arr, y_arr = np.asarray(x), np.asarray(y)
    ndim = x_arr.ndim
    if ndim not in (1, 2) or y_arr.ndim != ndim:
        raise ValueError(
            "x and y must both be 1-D vectors or both 2-D batches of terms, got "
            f"x.shape={x_arr.shape} and y.shape={y_arr.shape}."
        )
    X = check_matrix(np.atleast_2d(x_arr), name="x")
    Y = check_matrix(np.atleast_2d(y_arr), name="y")
    if X.shape[0] != Y.shape[0]:
        raise ValueError(
            "x and y must hold the same number of terms (rows), got "
            f"x.shape={X.shape} and y.shape={Y.shape}."
        )
    dtype = output_dtype(np.result_type(X, Y), fmt)
    Xh, Yh = quantize_terms(real_float64(X), real_float64(Y), fmt, method)
    if ndim == 1:
        Xh, Yh = Xh[0], Yh[0]
    return Xh.astype(dtype), Yh.astype(dtype)
