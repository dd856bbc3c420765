"""Optimal quantization of rank-one matrices (and batches of rank-one terms).

Layer 3 (algorithms). For fixed :math:`\\hat x`, the best :math:`\\hat y` of
:math:`\\|x y^T - \\hat x \\hat y^T\\|_F` is :math:`\\mathrm{fl}(\\mu y)`,
:math:`\\mu = x^T\\hat x / \\|\\hat x\\|^2`, and symmetrically; so some optimal
pair has :math:`\\hat x = \\mathrm{fl}(\\nu x)` for a scale :math:`\\nu > 0`,
and :math:`\\nu \\mapsto \\mathrm{fl}(\\nu x)` only changes at breakpoints
(where some :math:`\\nu |x_i|` crosses a midpoint between consecutive numbers
of the format). The breakpoint sweep (:func:`_sweep`) visits every state in
between. In an unbounded format :math:`\\mathrm{fl}(2\\nu x) = 2
\\mathrm{fl}(\\nu x)`, so :math:`\\nu \\in [1, 2]` suffices; in a bounded one
the optimum is a power-of-two rescaling of the unbounded one when one is
representable (it cannot do better, the format being a subset), and otherwise
the sweep runs over every breakpoint of the format.
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import warnings
from functools import lru_cache

import numpy as np

from skbutterfly._formats import (
    check_format,
    output_dtype,
    round_real,
    round_significand,
    round_to_format,
)
from skbutterfly._validation import check_matrix
from skbutterfly._warnings import external_stacklevel

QUANTIZE_METHODS = ("exact", "dfo", "rtn")
# Breakpoints of one sweep window (all terms of a batch together). About
# twenty arrays of this many 8-byte entries are alive at once, plus a few of
# the candidates' y sides (below): the working memory stays within the
# documented 64 MiB whatever ``t`` and the lengths (see quantize_rank_one);
# small windows stay in cache.
_SWEEP_BREAKS = 1 << 15
# Entries of the candidates' y sides rounded at once.
_SWEEP_ENTRIES = 1 << 16
# Largest t of the exact method (2**(t-1) breakpoints per entry and binade).
_MAX_EXACT_T = 20
# Largest number of values of a bounded format swept exactly (all presets,
# and any format with up to 4 Mi positive values, have far fewer).
_MAX_GRID = 1 << 22
# Derivative-free search: grid points per round and rounds of refinement.
_DFO_GRID = 16
_DFO_ROUNDS = 3
# The float64 numbers that hold t-bit values exactly (normal ones) as a
# bounded format: (t, emin, emax, largest, subnormals).
_FLOAT64 = (53, -1022, 1023, float(np.finfo(np.float64).max), False)


class ComplexQuantizationError(NotImplementedError, ValueError):
    """Optimal quantization of complex factors is not implemented.

    Both a ``NotImplementedError`` (what is missing) and a ``ValueError``
    (what scikit-learn's meta-estimator tooling expects of unsupported input).
    """


class ApproximateQuantizationWarning(UserWarning):
    """``method="exact"`` could not sweep a bounded format exactly.

    Only for custom formats with more than ``2**22`` positive values (never
    for the presets) and terms whose range fills the format: the result is
    then the best of a few power-of-two rescalings and round-to-nearest
    (still representable, never worse than round-to-nearest).

    Examples
    --------
    >>> import warnings
    >>> import numpy as np
    >>> from skbutterfly import (
    ...     ApproximateQuantizationWarning, FloatFormat, quantize_rank_one)
    >>> fmt = FloatFormat(16, -200, 200)  # 13 M positive values
    >>> x, y = np.array([1e60, 3e-61]), np.array([2e59, 1e-62])
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     xh, yh = quantize_rank_one(x, y, fmt)
    >>> [w.category is ApproximateQuantizationWarning for w in caught]
    [True]
    """


_COMPLEX_MESSAGE = (
    "complex input is not supported by the optimal quantization (it needs a "
    "complex scaling factor, see CROQuant and the user guide's quantization "
    "page); quantize the real and imaginary parts with round_to_format or "
    "heuristic='rtn'."
)


# ----------------------------------------------------------------------------
# Grids: the numbers an entry moves through as the scale grows
# ----------------------------------------------------------------------------


@lru_cache(maxsize=32)
def _unbounded_grid(t):
    """The ``t``-bit numbers in [1, 4] and the midpoints between neighbours."""
    low = np.arange(1 << (t - 1), 1 << t) * 2.0 ** (1 - t)
    return _with_steps(np.concatenate([low, 2 * low, [4.0]]))


@lru_cache(maxsize=32)
def _bounded_grid(fmt):
    """Zero and every positive finite number of ``fmt``, and the midpoints."""
    h = 1 << (fmt.t - 1)
    parts = [np.zeros(1)]
    if fmt.subnormals:
        parts.append(np.ldexp(np.arange(1.0, h), fmt.emin - fmt.t + 1))
    M = np.arange(h, 2 * h, dtype=np.float64)
    parts += [np.ldexp(M, e - fmt.t + 1) for e in range(fmt.emin, fmt.emax + 1)]
    values = np.concatenate(parts)
    return _with_steps(values[values <= fmt.largest])


def _with_steps(values):
    """The grid: values, midpoints, and the steps of a value and its square.

    The steps are exact: the values have at most 26 significant bits.
    """
    mids = (values[:-1] + values[1:]) / 2
    return values, mids, np.diff(values), np.diff(values * values)


def _grid_size(fmt):
    h = 1 << (fmt.t - 1)
    return (fmt.emax - fmt.emin + 2) * h


# ----------------------------------------------------------------------------
# Costs of the candidate states
# ----------------------------------------------------------------------------


def _ratio(num, den):
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def _along(values, rows, ndim):
    """``values[rows]`` shaped to broadcast against arrays of ``ndim`` axes."""
    picked = values[rows]
    return picked.reshape(picked.shape + (1,) * (ndim - picked.ndim))


class _Costs:
    """Costs of candidate states, up to the constant :math:`\\|x\\|^2\\|y\\|^2`.

    A state of a term is described by :math:`A = x'^T\\hat p` and :math:`B =
    \\|\\hat p\\|^2`, with :math:`x'` and :math:`\\hat p` the row and its
    quantized version, both rescaled by powers of two (see the callers). With
    the y side carried exactly (``y_round=None``, the left-to-right
    heuristic) the cost is :math:`-\\|y'\\|^2 A^2 / B`. Otherwise the y side
    is :math:`\\hat q` = ``y_round(mu * y', rows)``, :math:`\\mu = A / B`, and
    the cost is :math:`-2\\cdot 2^D A (y'^T\\hat q) + 4^D B \\|\\hat q\\|^2`,
    ``D`` = ``shift`` the exponent (per term) of the rescalings.
    """

    def __init__(self, absy, y_round=None, shift=None):
        self.absy, self.y_round = absy, y_round
        self.ny = np.sum(absy * absy, axis=1)
        self.shift = shift
        self.carried = y_round is None

    def _y_side(self, a, b, absy, r):
        mu = _ratio(a, b)
        if absy.shape[1] <= 16:  # by columns: no einsum over a short axis
            qq, qy = np.zeros_like(a), np.zeros_like(a)
            for col in absy.T:
                q = self.y_round(mu * col[:, None], r)
                qq += q * q
                qy += q * col[:, None]
        else:
            q = self.y_round(mu[..., None] * absy[:, None, :], r)
            qq = np.einsum("tkn,tkn->tk", q, q)
            qy = np.einsum("tkn,tn->tk", q, absy)
        if self.shift is None:
            return b * qq - 2 * a * qy
        D = self.shift[r, None]
        c = np.ldexp(b * qq, 2 * D) - np.ldexp(2 * a * qy, D)
        return np.where(np.isnan(c), np.inf, c)

    def all(self, A, B, rows):
        """Costs of the candidates ``A, B`` (T, K) of the terms ``rows`` (T,)."""
        if self.carried:
            return -self.ny[rows, None] * _ratio(A * A, B)
        T, K = A.shape
        out = np.empty((T, K))
        n = max(1, self.absy.shape[1])
        # chunks of terms, and of candidates when one term has too many
        step_t = max(1, _SWEEP_ENTRIES // (K * n))
        step_k = K if K * n <= _SWEEP_ENTRIES else max(1, _SWEEP_ENTRIES // n)
        for s in range(0, T, step_t):
            r = rows[s : s + step_t]
            absy = self.absy[r]
            for k in range(0, K, step_k):
                part = np.s_[s : s + step_t, k : k + step_k]
                out[part] = self._y_side(A[part], B[part], absy, r)
        return out


def _state_sums(absx, P):
    """:math:`x^T \\hat p` and :math:`\\|\\hat p\\|^2` of states ``P`` (..., m)."""
    return np.sum(P * absx, axis=-1), np.sum(P * P, axis=-1)


# ----------------------------------------------------------------------------
# The breakpoint sweep
# ----------------------------------------------------------------------------


def _sweep(absx, W, sigma, lo, hi, grid, windows, costs, rows):
    """Grid indices of the best state of every term (one batch of terms).

    Entry ``i`` of term ``k`` holds ``values[j] * sigma[k, i]`` with ``j``
    going from ``lo[k, i]`` to ``hi[k, i]``: it moves from ``j`` to ``j + 1``
    at the coordinate ``mids[j] / W[k, i]`` of the scale. The coordinate axis
    is cut at ``windows`` (ascending; the first and last windows are open
    ended) so that a window holds a bounded number of breakpoints; in a window
    the breakpoints are sorted and :math:`x^T\\hat p`, :math:`\\|\\hat p\\|^2`
    of the states between them follow by cumulative sums of exact
    increments. Every state is a representable vector, so the result is
    always a valid pair; the best state is reconstructed from its
    coordinate by the same float64 comparisons as the sort, so breakpoints
    are only merged where float64 cannot separate them (a state realized on
    an interval of relative width below :math:`10^{-16}` may be missed).
    """
    values, mids, steps, square_steps = grid
    T, m = absx.shape
    best = np.full(T, np.inf)
    state = lo.copy()
    terms = np.arange(T)
    last = len(windows) - 2
    kb = lo
    for w in range(last + 1):
        ka = kb
        if w == last:
            kb = hi
        else:
            kb = np.clip(np.searchsorted(mids, windows[w + 1] * W), lo, hi)
        counts = kb - ka
        K = int(counts.max())
        if K == 0 and w > 0:
            continue
        k = ka[..., None] + np.arange(K)
        valid = k < kb[..., None]
        k = np.minimum(k, len(mids) - 1)
        brk = (mids[k] / W[..., None]).reshape(T, m * K)
        brk[~valid.reshape(T, m * K)] = np.inf
        order = np.argsort(brk, axis=1, kind="stable")
        ordered = np.take_along_axis(brk, order, 1)
        sig = sigma[..., None]
        A = np.empty((T, m * K + 1))
        B = np.empty((T, m * K + 1))
        A[:, 0], B[:, 0] = _state_sums(absx, values[ka] * sigma)
        inc = ((absx[..., None] * sig) * steps[k]).reshape(T, -1)
        np.cumsum(np.take_along_axis(inc, order, 1), 1, out=A[:, 1:])
        inc = ((sig * sig) * square_steps[k]).reshape(T, -1)
        np.cumsum(np.take_along_axis(inc, order, 1), 1, out=B[:, 1:])
        del inc, k, valid, order
        A[:, 1:] += A[:, :1]
        B[:, 1:] += B[:, :1]
        c = costs.all(A, B, rows)
        # Candidate j has crossed the first j breakpoints. Skip it when the
        # next one is at the same coordinate (the state would not be
        # fl(nu x) for any nu; with exact ties the state past all of them is
        # at least as good) or when it has crossed an unused one (inf).
        if K:
            c[:, 1:-1][ordered[:, 1:] == ordered[:, :-1]] = np.inf
            c[ordered[:, -1] == np.inf, -1] = np.inf
        j = np.argmin(c, axis=1)
        cj = c[terms, j]
        better = np.flatnonzero(cj < best)
        best[better] = cj[better]
        if better.size and K:
            jb = j[better]
            last_crossed = np.where(
                jb > 0, ordered[better, np.maximum(jb - 1, 0)], -1.0
            )
            crossed = brk[better].reshape(-1, m, K) <= last_crossed[:, None, None]
            state[better] = ka[better] + np.sum(crossed, axis=2)
    return state


def _windows(log_first, log_last, n):
    """``n`` log-spaced windows of the scale, open ended.

    The inner bounds run from ``2**log_first`` to ``2**log_last``.
    """
    inner = np.exp2(np.linspace(log_first, log_last, n + 1)[1:-1])
    return np.concatenate([[0.0], inner, [np.inf]])


def _batches(n_terms, per_term):
    step = max(1, _SWEEP_BREAKS // max(1, per_term))
    return [np.arange(i, min(i + step, n_terms)) for i in range(0, n_terms, step)]


def _n_windows(m, density):
    """Windows needed for ``m`` entries of ``density`` breakpoints each."""
    room = max(_SWEEP_BREAKS - m, _SWEEP_BREAKS // 2)
    return max(1, -(-m * density // room))


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
    grid = _unbounded_grid(t)
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
    n = _n_windows(m, 2 * h)
    windows = np.linspace(1.0, 2.0, n + 1)
    out = np.empty_like(absx)
    for b in _batches(T, m * h):
        idx = _sweep(absx[b], W[b], sigma[b], lo[b], hi[b], grid, windows, costs, b)
        out[b] = values[idx] * sigma[b]
    return out


def _dfo_scale(absx, costs, t):
    """:math:`|\\hat x|` by a refined grid search of :math:`\\lambda`."""
    out = np.empty_like(absx)
    steps = np.arange(_DFO_GRID) / _DFO_GRID
    width = _DFO_GRID * max(absx.shape[1], costs.absy.shape[1])
    for b in _batches(absx.shape[0], width):
        x = absx[b]
        lo, hi = np.ones(len(b)), np.full(len(b), 2.0)
        for _ in range(_DFO_ROUNDS):
            lam = lo[:, None] + (hi - lo)[:, None] * steps
            P = round_significand(lam[..., None] * x[:, None, :], t)
            c = costs.all(*_state_sums(x[:, None, :], P), b)
            best = lam[np.arange(len(b)), np.argmin(c, axis=1)]
            step = (hi - lo) / _DFO_GRID
            lo, hi = np.maximum(1.0, best - step), np.minimum(2.0, best + step)
        out[b] = round_significand(best[:, None] * x, t)
    return out


# Name -> function(normalized |x|, costs, t) returning |x_hat| in F_t.
SCALE_SEARCH = {"exact": _exact_scale, "dfo": _dfo_scale}


# ----------------------------------------------------------------------------
# Bounded formats
# ----------------------------------------------------------------------------

_NO_LIMIT = 1 << 20


def _format_params(fmt):
    return fmt.t, fmt.emin, fmt.emax, fmt.largest, fmt.subnormals


def _shift_range(P, params):
    """Integers ``s`` for which every entry of ``P * 2**s`` is representable.

    ``P`` (nonnegative, ``t``-bit numbers) by rows; ``params`` is ``(t, emin,
    emax, largest, subnormals)``. Returns ``(lo, hi)`` per row, ``lo > hi``
    when no ``s`` works: the lowest set bit must stay on the subnormal grid
    (or the leading bit at or above :math:`2^{e_{\\min}}` without subnormals)
    and the value at most ``largest``.
    """
    t, emin, emax, largest, subnormals = params
    nonzero = P > 0
    frac, E = np.frexp(np.where(nonzero, P, 1.0))  # leading bit 2^(E-1)
    M = np.ldexp(frac, 53).astype(np.int64)
    low_bit = E - 53 + np.log2(M & -M).astype(np.int64)
    if subnormals:
        lo = emin - t + 1 - low_bit
    else:
        lo = emin - (E - 1)
    top = largest / 2.0**emax  # the largest significand, in [1, 2)
    hi = emax - (E - 1) - (2 * frac > top)
    lo = np.max(np.where(nonzero, lo, -_NO_LIMIT), axis=1)
    hi = np.min(np.where(nonzero, hi, _NO_LIMIT), axis=1)
    return lo, hi


def _top_exponent(P):
    return np.frexp(np.max(P, axis=1))[1]


def _pair_shift(p, ex, q, ey, params, prefer):
    """Shifts ``s`` making ``p 2^(ex+s)`` and ``q 2^(ey-s)`` representable.

    Returns ``(s, ok)``: ``s`` is the admissible shift nearest to ``prefer``
    where ``ok``.
    """
    lo_x, hi_x = _shift_range(p, params)
    lo_y, hi_y = _shift_range(q, params)
    s_lo = np.maximum(lo_x - ex, ey - hi_y)
    s_hi = np.minimum(hi_x - ex, ey - lo_y)
    ok = s_lo <= s_hi
    return np.where(ok, np.clip(prefer, s_lo, np.maximum(s_lo, s_hi)), prefer), ok


def _float64_shift(p, ex, q, ey, X, Y):
    """Shifts keeping an unbounded pair in float64, else an OverflowError.

    Normal numbers (``t`` bits held exactly) if possible, else just finite.
    """
    s, ok = _pair_shift(p, ex, q, ey, _FLOAT64, 0)
    if ok.all():
        return s
    _, hi_x = _shift_range(p, _FLOAT64)
    _, hi_y = _shift_range(q, _FLOAT64)
    s_lo, s_hi = ey - hi_y, hi_x - ex
    finite = s_lo <= s_hi
    if not finite[~ok].all():
        k = np.flatnonzero(~ok & ~finite)[0]
        raise OverflowError(
            f"the optimal quantized pair of term {k} does not fit float64 (max "
            f"|x| = {np.max(np.abs(X[k])):.6g}, max |y| = "
            f"{np.max(np.abs(Y[k])):.6g}: their product is too close to the "
            "largest float64 squared); rescale the data or use a bounded format."
        )
    return np.where(ok, s, np.clip(0, s_lo, np.maximum(s_lo, s_hi)))


class _BoundedSide:
    """The y side of the terms ``rows`` of a bounded format, and its costs.

    The x side is held as :math:`\\hat p = \\hat x\\, 2^{-g}`, the y side as
    :math:`\\hat q = \\hat y\\, 2^{-h}`, with the exponents ``g``, ``h`` (per
    term) of the data clipped to the format's range, so that the states that
    matter have moderate :math:`\\hat p, \\hat q`.
    """

    def __init__(self, absy, ex, ey, fmt, carried):
        lo, hi = fmt.emin - fmt.t + 1, fmt.emax + 1
        self.fmt, self.ex, self.ey = fmt, ex, ey
        self.g, self.h = np.clip(ex, lo, hi), np.clip(ey, lo, hi)
        self.costs = _Costs(
            absy,
            None if carried else self.y_round,
            shift=self.g + self.h - ex - ey,
        )

    def y_round(self, z, rows):
        """:math:`\\hat q` for ``z`` = :math:`\\tilde\\mu y'` of ``rows``."""
        exponent = _along(self.ex + self.ey - self.g, rows, z.ndim)
        yh = round_real(np.ldexp(z, exponent), self.fmt)
        return np.ldexp(yh, -_along(self.h, rows, z.ndim))

    def scaled(self, Xh, rows):
        """:math:`\\hat p` of the states ``Xh`` of the terms ``rows``."""
        return np.ldexp(Xh, -_along(self.g, rows, Xh.ndim))


def _bounded_exact(absx, side, fmt, rows):
    """:math:`|\\hat x|` of the optimum over every scale :math:`\\nu > 0`.

    Every entry starts at 0 and crosses every midpoint of the format (the
    last one where it saturates), at :math:`\\nu = c / |x'_i|`.
    """
    grid = _bounded_grid(fmt)
    values, mids = grid[:2]
    T, m = absx.shape
    L = len(mids)
    sigma = np.broadcast_to(np.ldexp(1.0, -side.g[rows])[:, None], (T, m))
    lo = np.zeros((T, m), dtype=np.int64)
    hi = np.where(absx > 0, L, 0)
    out = np.zeros_like(absx)
    for b in _batches(T, m * L):
        x = absx[b]
        log_first = np.log2(mids[0]) - np.log2(np.max(x))
        log_last = np.log2(mids[-1]) - np.log2(np.min(x, initial=1.0, where=x > 0))
        # at most 2**t breakpoints per entry and binade of the scale
        n = 1
        if len(b) * m * L > _SWEEP_BREAKS:
            n = _n_windows(m, int((log_last - log_first) * 2**fmt.t) + 2)
        windows = _windows(log_first, log_last, n)
        idx = _sweep(x, x, sigma[b], lo[b], hi[b], grid, windows, side.costs, rows[b])
        out[b] = values[idx]
    return out


def _best_of_shifts(absx, p, ex, side, fmt, prefer):
    """Approximation: the best of rescaled roundings and round-to-nearest."""
    t = fmt.t
    rows = np.arange(len(absx))
    candidates = [round_real(np.ldexp(absx, ex[:, None]), fmt)]
    for s in range(-t - 2, t + 3):
        shifted = np.ldexp(p, (ex + prefer + s)[:, None])
        candidates.append(round_real(shifted, fmt))
    C = np.stack(candidates, axis=1)  # (T, K, m)
    A, B = _state_sums(absx[:, None, :], side.scaled(C, rows))
    c = side.costs.all(A, B, rows)
    return C[np.arange(len(rows)), np.argmin(c, axis=1)]


def _bounded_x(absx, p, ex, side, fmt, method, prefer):
    """:math:`|\\hat x|` of terms with no representable rescaling of ``p``.

    ``p`` is the unbounded optimum, ``prefer`` the rescaling wished for.
    """
    if method == "exact" and _grid_size(fmt) <= _MAX_GRID:
        return _bounded_exact(absx, side, fmt, np.arange(len(absx)))
    if method == "exact":
        warnings.warn(
            f"the format {fmt} has more than {_MAX_GRID} positive values: "
            f"{len(absx)} rank-one terms whose range fills it were quantized "
            "approximately (best power-of-two rescaling or round-to-nearest).",
            ApproximateQuantizationWarning,
            stacklevel=external_stacklevel(),
        )
    return _best_of_shifts(absx, p, ex, side, fmt, prefer)


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
    (:func:`_bounded_exact`).
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
        costs = _Costs(absy, lambda z, rows: round_significand(z, t))
        p = SCALE_SEARCH[method](absx, costs, t)
        q = round_significand(_ratio(*_state_sums(absx, p))[:, None] * absy, t)
        if fmt.bounded:
            prefer = (ey + _top_exponent(q) - ex - _top_exponent(p)) // 2
            s, ok = _pair_shift(p, ex, q, ey, _format_params(fmt), prefer)
        else:
            s = _float64_shift(p, ex, q, ey, X, Y)
            ok = np.ones(len(s), dtype=bool)
        Xh, Yh = np.ldexp(p, (ex + s)[:, None]), np.ldexp(q, (ey - s)[:, None])
        rest = np.flatnonzero(~ok)
        if fmt.bounded and rest.size:
            side = _BoundedSide(absy[rest], ex[rest], ey[rest], fmt, False)
            local = np.arange(rest.size)
            xr = _bounded_x(
                absx[rest], p[rest], ex[rest], side, fmt, method, prefer[rest]
            )
            mu = _ratio(*_state_sums(absx[rest], side.scaled(xr, local)))
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
        costs = _Costs(absy)
        p = SCALE_SEARCH[method](absx, costs, fmt.t)
        params = _format_params(fmt) if fmt.bounded else _FLOAT64
        lo, hi = _shift_range(p, params)
        ok = lo <= hi
        if not fmt.bounded:  # lose low bits rather than overflow
            lo, ok = np.minimum(lo, hi), np.ones_like(ok)
        s = np.where(ok, np.clip(0, lo - ex, np.maximum(lo, hi) - ex), 0)
        Xh = np.ldexp(p, (ex + s)[:, None])
        mu = np.ldexp(_ratio(*_state_sums(absx, p)), -s)
        rest = np.flatnonzero(~ok)
        if fmt.bounded and rest.size:
            side = _BoundedSide(absy[rest], ex[rest], ey[rest], fmt, True)
            local = np.arange(rest.size)
            xr = _bounded_x(absx[rest], p[rest], ex[rest], side, fmt, method, s[rest])
            A, B = _state_sums(absx[rest], side.scaled(xr, local))
            Xh[rest], mu[rest] = xr, np.ldexp(_ratio(A, B), ex[rest] - side.g)
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
