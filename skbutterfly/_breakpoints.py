"""The breakpoint sweep of optimal rank-one quantization: grids, costs, windows.

Layer 3 (algorithms), under :mod:`skbutterfly._quantize_rank_one`: as the
scale of a vector grows, each entry moves through the grid of a format and
the rounded vector changes only at breakpoints; the sweep visits them in
windows of bounded memory and keeps the best state.
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

from functools import lru_cache

import numpy as np

# Breakpoints of one sweep window (all terms of a batch together). About
# twenty arrays of this many 8-byte entries are alive at once, plus a few of
# the candidates' y sides (below): the working memory stays within the
# documented 64 MiB whatever ``t`` and the lengths (see quantize_rank_one);
# small windows stay in cache.
SWEEP_BREAKS = 1 << 15
# Entries of the candidates' y sides rounded at once.
SWEEP_ENTRIES = 1 << 16


# ----------------------------------------------------------------------------
# Grids: the numbers an entry moves through as the scale grows
# ----------------------------------------------------------------------------


@lru_cache(maxsize=32)
def unbounded_grid(t):
    """The ``t``-bit numbers in [1, 4] and the midpoints between neighbours."""
    low = np.arange(1 << (t - 1), 1 << t) * 2.0 ** (1 - t)
    return with_steps(np.concatenate([low, 2 * low, [4.0]]))


@lru_cache(maxsize=32)
def bounded_grid(fmt):
    """Zero and every positive finite number of ``fmt``, and the midpoints."""
    h = 1 << (fmt.t - 1)
    parts = [np.zeros(1)]
    if fmt.subnormals:
        parts.append(np.ldexp(np.arange(1.0, h), fmt.emin - fmt.t + 1))
    M = np.arange(h, 2 * h, dtype=np.float64)
    parts += [np.ldexp(M, e - fmt.t + 1) for e in range(fmt.emin, fmt.emax + 1)]
    values = np.concatenate(parts)
    return with_steps(values[values <= fmt.largest])


def with_steps(values):
    """The grid: values, midpoints, and the steps of a value and its square.

    The steps are exact: the values have at most 26 significant bits.
    """
    mids = (values[:-1] + values[1:]) / 2
    return values, mids, np.diff(values), np.diff(values * values)


def grid_size(fmt):
    h = 1 << (fmt.t - 1)
    return (fmt.emax - fmt.emin + 2) * h


# ----------------------------------------------------------------------------
# Costs of the candidate states
# ----------------------------------------------------------------------------


def ratio(num, den):
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def along(values, rows, ndim):
    """``values[rows]`` shaped to broadcast against arrays of ``ndim`` axes."""
    picked = values[rows]
    return picked.reshape(picked.shape + (1,) * (ndim - picked.ndim))


class Costs:
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
        mu = ratio(a, b)
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
            return -self.ny[rows, None] * ratio(A * A, B)
        T, K = A.shape
        out = np.empty((T, K))
        n = max(1, self.absy.shape[1])
        # chunks of terms, and of candidates when one term has too many
        step_t = max(1, SWEEP_ENTRIES // (K * n))
        step_k = K if K * n <= SWEEP_ENTRIES else max(1, SWEEP_ENTRIES // n)
        for s in range(0, T, step_t):
            r = rows[s : s + step_t]
            absy = self.absy[r]
            for k in range(0, K, step_k):
                part = np.s_[s : s + step_t, k : k + step_k]
                out[part] = self._y_side(A[part], B[part], absy, r)
        return out


def state_sums(absx, P):
    """:math:`x^T \\hat p` and :math:`\\|\\hat p\\|^2` of states ``P`` (..., m)."""
    return np.sum(P * absx, axis=-1), np.sum(P * P, axis=-1)


# ----------------------------------------------------------------------------
# The breakpoint sweep
# ----------------------------------------------------------------------------


def sweep(absx, W, sigma, lo, hi, grid, windows, costs, rows):
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
        A[:, 0], B[:, 0] = state_sums(absx, values[ka] * sigma)
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


def log_windows(log_first, log_last, n):
    """``n`` log-spaced windows of the scale, open ended.

    The inner bounds run from ``2**log_first`` to ``2**log_last``.
    """
    inner = np.exp2(np.linspace(log_first, log_last, n + 1)[1:-1])
    return np.concatenate([[0.0], inner, [np.inf]])


def batches(n_terms, per_term):
    step = max(1, SWEEP_BREAKS // max(1, per_term))
    return [np.arange(i, min(i + step, n_terms)) for i in range(0, n_terms, step)]


def n_windows(m, density):
    """Windows needed for ``m`` entries of ``density`` breakpoints each."""
    room = max(SWEEP_BREAKS - m, SWEEP_BREAKS // 2)
    return max(1, -(-m * density // room))
