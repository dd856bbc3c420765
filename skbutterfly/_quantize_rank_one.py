"""Optimal quantization of rank-one matrices (and batches of rank-one terms).

Layer 3 (algorithms).
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause


import numpy as np

from skbutterfly._formats import (
    check_format,
    output_dtype,
    round_significand,
    round_to_format,
)
from skbutterfly._validation import check_matrix

QUANTIZE_METHODS = ("exact", "dfo", "rtn")
# Entries of the (terms x candidates x n) work array evaluated at once.
_CHUNK_ENTRIES = 1 << 18
# Breakpoints (in [1, 2]) closer than this are merged.
_SAME_BREAKPOINT = 1e-14
# Largest t of the exact method (2**(t-1) breakpoints per entry).
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
    "complex scaling factor, as in CROQuant; see the user guide, 'Quantization'); "
    "quantize the "
    "real and imaginary parts with round_to_format or heuristic='rtn'."
)


# ----------------------------------------------------------------------------
# The scaling lambda of a batch of rank-one terms (unbounded format F_t)
# ----------------------------------------------------------------------------


def _y_side_costs(a, b, absy, t):
    """Cost, up to the constant :math:`\\|x\\|^2\\|y\\|^2`, of every candidate.

    ``a`` and ``b`` of shape ``(T, K)`` are :math:`x^T\\hat x` and
    :math:`\\|\\hat x\\|^2` of ``K`` candidates per term; :math:`\\hat y =
    \\mathrm{fl}(\\mu y)` is optimal for each, with :math:`\\mu = a / b`.
    """
    mu = np.divide(a, b, out=np.zeros_like(a), where=b > 0)
    yh = round_significand(mu[..., None] * absy[:, None, :], t)
    ay = np.einsum("tkn,tn->tk", yh, absy)
    by = np.einsum("tkn,tkn->tk", yh, yh)
    return b * by - 2 * a * ay


def _chunked_costs(a, b, absy, t):
    """:func:`_y_side_costs` over chunks of terms to bound the memory.

    ``absy=None`` means that ``y`` is not quantized but carried exactly, as
    :math:`\\mu y` (the left-to-right heuristic): the cost
    :math:`\\|y\\|^2 (\\|x\\|^2 - (x^T\\hat x)^2 / \\|\\hat x\\|^2)` is then, up
    to terms that do not depend on :math:`\\hat x`, :math:`-a^2 / b`.
    """
    if absy is None:
        return -np.divide(a * a, b, out=np.zeros_like(a), where=b > 0)
    T, K = a.shape
    step = max(1, _CHUNK_ENTRIES // max(1, K * absy.shape[1]))
    return np.concatenate(
        [
            _y_side_costs(a[i : i + step], b[i : i + step], absy[i : i + step], t)
            for i in range(0, T, step)
        ]
    )


def _exact_scale(absx, absy, t):
    """Optimal :math:`\\lambda \\in [1, 2)` of every term by breakpoints.

    Each nonzero :math:`x_i = u_i 2^{e_i}` (:math:`u_i \\in [1, 2)`) has the
    :math:`2^{t-1}` breakpoints :math:`\\lambda = c / u_i` in :math:`(1, 2)`,
    ``c`` the midpoints between consecutive ``t``-bit numbers in
    :math:`(u_i, 2u_i)`. Crossing one moves :math:`|\\hat x_i|` from
    :math:`2^{e_i}(c - s/2)` to :math:`2^{e_i}(c + s/2)` (``s`` the spacing),
    so :math:`x^T\\hat x` grows by :math:`|x_i| 2^{e_i} s` and
    :math:`\\|\\hat x\\|^2` by :math:`4^{e_i}\\, 2cs`: sorting the breakpoints
    and taking cumulative sums gives both on every interval in O(1) each.
    The state at :math:`\\lambda = 1` exactly (ties to even) is one more
    candidate. Exact up to inputs with simultaneous exact ties inside
    :math:`(1, 2)` or breakpoints within :math:`10^{-14}` of each other (the
    states in between are not realizable in float64), sets of measure zero.
    """
    T, m = absx.shape
    h = 1 << (t - 1)
    mids_low = (np.arange(h, 2 * h) + 0.5) * 2.0 ** (1 - t)
    mids = np.concatenate([mids_low, 2 * mids_low])
    spacing = np.repeat([2.0 ** (1 - t), 2.0 ** (2 - t)], h)
    frac, E = np.frexp(absx)
    nonzero = absx > 0
    u = np.where(nonzero, 2 * frac, 1.0)
    # a zero entry gets breakpoints with zero increments: harmless
    scale = np.where(nonzero, np.ldexp(1.0, E - 1), 0.0)
    # midpoints strictly above u_i: the first h of them lie in (u_i, 2 u_i]
    idx = np.searchsorted(mids, u, side="right")[..., None] + np.arange(h)
    breaks = (mids[idx] / u[..., None]).reshape(T, m * h)
    da = ((absx * scale)[..., None] * spacing[idx]).reshape(T, m * h)
    db = ((scale * scale)[..., None] * (2 * mids * spacing)[idx]).reshape(T, m * h)
    order = np.argsort(breaks, axis=1, kind="stable")
    # candidate 0: lambda = 1 exactly; candidate j + 1: the j-th interval
    # (bounds[j], bounds[j + 1]), whose state is just above lambda = 1 (a tie
    # rounds up) plus the first j increments
    bounds = np.ones((T, m * h + 2))
    bounds[:, 1:-1] = np.take_along_axis(breaks, order, axis=1)
    bounds[:, -1] = 2.0
    x0 = scale * np.floor(u * h + 0.5) / h
    xr = round_significand(absx, t)
    a, b = np.empty((2, T, m * h + 2))
    a[:, 0], b[:, 0] = np.sum(absx * xr, axis=1), np.sum(xr * xr, axis=1)
    a[:, 1], b[:, 1] = np.sum(absx * x0, axis=1), np.sum(x0 * x0, axis=1)
    np.cumsum(np.take_along_axis(da, order, axis=1), axis=1, out=a[:, 2:])
    np.cumsum(np.take_along_axis(db, order, axis=1), axis=1, out=b[:, 2:])
    a[:, 2:] += a[:, 1:2]
    b[:, 2:] += b[:, 1:2]
    costs = _chunked_costs(a, b, absy, t)
    # breakpoints closer than float64 can separate are one: the state in
    # between is not reliably realized by any computed lambda
    costs[:, 1:][np.diff(bounds, axis=1) <= _SAME_BREAKPOINT] = np.inf
    best = np.argmin(costs, axis=1)
    j = np.maximum(best - 1, 0)[:, None]
    middle = (
        np.take_along_axis(bounds, j, axis=1)
        + np.take_along_axis(bounds, j + 1, axis=1)
    ) / 2
    return np.where(best == 0, 1.0, middle[:, 0])


def _dfo_scale(absx, absy, t):
    """:math:`\\lambda` by a refined grid search (cheap, no optimality)."""
    T = absx.shape[0]
    lo, hi = np.ones(T), np.full(T, 2.0)
    steps = np.arange(_DFO_GRID) / _DFO_GRID
    rows = np.arange(T)
    for _ in range(_DFO_ROUNDS):
        lam = lo[:, None] + (hi - lo)[:, None] * steps
        xh = round_significand(lam[..., None] * absx[:, None, :], t)
        a = np.einsum("tkm,tm->tk", xh, absx)
        b = np.einsum("tkm,tkm->tk", xh, xh)
        best = lam[rows, np.argmin(_chunked_costs(a, b, absy, t), axis=1)]
        width = (hi - lo) / _DFO_GRID
        lo, hi = np.maximum(1.0, best - width), np.minimum(2.0, best + width)
    return best


# ----------------------------------------------------------------------------
# Batched rank-one terms in a (possibly bounded) format
# ----------------------------------------------------------------------------


def _costs(X, Y, Xh, Yh):
    """:math:`\\|x y^T - \\hat x \\hat y^T\\|_F^2` of every term (rows)."""
    nx, ny = np.sum(X * X, 1), np.sum(Y * Y, 1)
    cross = np.sum(X * Xh, 1) * np.sum(Y * Yh, 1)
    return np.abs(nx * ny - 2 * cross + np.sum(Xh * Xh, 1) * np.sum(Yh * Yh, 1))


def _mu(X, Xh):
    num, den = np.sum(X * Xh, axis=1), np.sum(Xh * Xh, axis=1)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def _row_exponents(X):
    """Exponents ``e`` with every row of ``X * 2**-e`` of max-norm in [1/2, 1)."""
    return np.frexp(np.max(np.abs(X), axis=1, initial=0.0))[1][:, None]


def quantize_terms(X, Y, fmt, method, left_only=False):
    """:func:`_quantize_normalized_terms` safe from overflow and underflow.

    In an unbounded format :math:`\\mathrm{fl}(2^k z) = 2^k \\mathrm{fl}(z)`
    and the optimum scales with the data, so the terms are quantized with
    rows rescaled by powers of two (exact) to max-norm in [1/2, 1), where
    squared norms can neither overflow nor underflow, and scaled back.
    """
    if fmt.bounded or method == "rtn":
        return _quantize_normalized_terms(X, Y, fmt, method, left_only)
    ex, ey = _row_exponents(X), _row_exponents(Y)
    Xh, other = _quantize_normalized_terms(
        np.ldexp(X, -ex), np.ldexp(Y, -ey), fmt, method, left_only
    )
    if left_only:
        # mu = x^T xh / |xh|^2 does not change when x and xh scale together.
        return np.ldexp(Xh, ex), other
    return np.ldexp(Xh, ex), np.ldexp(other, ey)


def _quantize_normalized_terms(X, Y, fmt, method, left_only=False):
    """Quantize the rank-one terms ``X[k] Y[k]^T`` (float64 rows).

    Returns ``(Xh, Yh)``, or ``(Xh, mu)`` with ``left_only`` (only ``X`` is
    quantized; ``mu`` is the optimal scaling of ``Y`` for ``Xh``, to be carried
    by the next factor). The exact or derivative-free scaling is computed in
    the unbounded format; with a bounded exponent range the pair is then
    rescaled by a power of two that balances the magnitudes of both sides
    (optimal as long as nothing overflows or underflows), and each term keeps
    the better of that and :math:`\\hat x = \\mathrm{fl}(x)` (with its optimal
    :math:`\\hat y`), so it is never worse than round-to-nearest.
    """
    if method == "rtn" or X.shape[1] == 0 or Y.shape[1] == 0:
        Xh = round_to_format(X, fmt)
        if left_only:
            return Xh, np.ones(X.shape[0])
        return Xh, round_to_format(Y, fmt)
    swap = not left_only and X.shape[1] > Y.shape[1]
    if swap:
        X, Y = Y, X
    absX = np.abs(X)
    # Left-only: Y is carried exactly (times mu) to the next step, so the
    # scale is chosen for an unquantized y (Gribonval et al., hal-04125381).
    absY = None if left_only else np.abs(Y)
    if method == "exact":
        # bound the (terms x breakpoints) arrays
        step = max(1, _CHUNK_ENTRIES // (X.shape[1] << (fmt.t - 1)))
        lam = np.concatenate(
            [
                _exact_scale(
                    absX[i : i + step],
                    None if absY is None else absY[i : i + step],
                    fmt.t,
                )
                for i in range(0, X.shape[0], step)
            ]
        )[:, None]
    else:
        lam = _dfo_scale(absX, absY, fmt.t)[:, None]
    Xh = round_significand(lam * X, fmt.t)
    if fmt.bounded:
        top_x = np.max(np.abs(Xh), axis=1)
        top_y = np.abs(_mu(X, Xh)) * np.max(np.abs(Y), axis=1)
        ok = (top_x > 0) & (top_y > 0)
        ratio = np.divide(top_y, top_x, out=np.ones_like(top_x), where=ok)
        k = np.where(ok, np.round(np.log2(np.where(ok, ratio, 1.0)) / 2), 0)
        Xh = round_to_format(np.ldexp(lam * X, k.astype(int)[:, None]), fmt)
    mu = _mu(X, Xh)
    # The y side a term ends with: quantized, or carried exactly (left-only).
    y_side = (lambda Z: Z) if left_only else (lambda Z: round_to_format(Z, fmt))
    Yh = y_side(mu[:, None] * Y)
    if fmt.bounded:
        Xr = round_to_format(X, fmt)
        mu_r = _mu(X, Xr)
        Yr = y_side(mu_r[:, None] * Y)
        worse = _costs(X, Y, Xh, Yh) > _costs(X, Y, Xr, Yr)
        Xh[worse], Yh[worse], mu[worse] = Xr[worse], Yr[worse], mu_r[worse]
    if left_only:
        return Xh, mu
    return (Yh, Xh) if swap else (Xh, Yh)


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

    With ``method="exact"`` the result is :math:`\\hat x = \\mathrm{fl}(\\lambda
    x)`, :math:`\\hat y = \\mathrm{fl}(\\mu y)`, :math:`\\mu = x^T\\hat x /
    \\|\\hat x\\|^2`, with the best :math:`\\lambda \\in [1, 2)` found by
    enumerating the breakpoints of :math:`\\lambda \\mapsto
    \\mathrm{fl}(\\lambda x)` on the shorter of ``x`` and ``y``
    (:math:`2^{t-1}` per nonzero entry) with O(1) updates of
    :math:`x^T\\hat x` and :math:`\\|\\hat x\\|^2` per interval, and one
    O(``len(y)``) evaluation per interval. It is the global optimum over all
    pairs in an unbounded format (Gribonval et al., hal-04125381), up to the float64
    evaluation of the costs (about :math:`10^{-16} \\|x\\|^2\\|y\\|^2`), and
    never worse than round-to-nearest. In a bounded format the pair is scaled by a power
    of two balancing both sides: still optimal when no entry overflows or
    underflows; otherwise each term keeps the better of that and
    round-to-nearest.

    Parameters
    ----------
    x : array-like of shape (m,) or (n_terms, m)
        Left vector, or one left vector per row for a batch of terms.
    y : array-like of shape (n,) or (n_terms, n)
        Right vector(s).
    fmt : FloatFormat, int or str
        Target format, ``t`` alone (unbounded exponent) or a preset name.
    method : {"exact", "dfo", "rtn"}, default="exact"
        ``"exact"``: breakpoint enumeration, cost
        :math:`O(\\min(m,n)\\,2^{t-1} \\max(m, n))` per term (``t <= 20``). ``"dfo"``: a
        derivative-free search of :math:`\\lambda` (a grid refined three
        times, 48 evaluations; cheap, no optimality guarantee). ``"rtn"``:
        round both vectors to nearest (the baseline).

    Returns
    -------
    x_hat : ndarray of the shape of ``x``
    y_hat : ndarray of the shape of ``y``
        Exactly representable in ``fmt``.

    Raises
    ------
    ComplexQuantizationError
        For complex input (a ``NotImplementedError`` and a ``ValueError``).

    See Also
    --------
    quantize_factors : Two factors with disjoint rank-one supports.
    quantize_butterfly : All factors of a butterfly.

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
