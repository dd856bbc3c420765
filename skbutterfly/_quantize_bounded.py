"""Optimal rank-one quantization in bounded formats: exponent shifts and sweeps.

Layer 3 (algorithms), under :mod:`skbutterfly._quantize_rank_one`: a power-of-
two rescaling of the unbounded optimum when one is representable, else a
sweep over every breakpoint of the format (:mod:`skbutterfly._breakpoints`).
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import warnings

import numpy as np

from skbutterfly._breakpoints import (
    SWEEP_BREAKS,
    Costs,
    along,
    batches,
    bounded_grid,
    grid_size,
    log_windows,
    n_windows,
    state_sums,
    sweep,
)
from skbutterfly._formats import round_real
from skbutterfly._warnings import ApproximateQuantizationWarning, external_stacklevel

# Largest number of values of a bounded format swept exactly (all presets,
# and any format with up to 4 Mi positive values, have far fewer).
MAX_GRID = 1 << 22
# The float64 numbers that hold t-bit values exactly (normal ones) as a
# bounded format: (t, emin, emax, largest, subnormals).
FLOAT64 = (53, -1022, 1023, float(np.finfo(np.float64).max), False)


_NO_LIMIT = 1 << 20


def format_params(fmt):
    return fmt.t, fmt.emin, fmt.emax, fmt.largest, fmt.subnormals


def shift_range(P, params):
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


def top_exponent(P):
    return np.frexp(np.max(P, axis=1))[1]


def pair_shift(p, ex, q, ey, params, prefer):
    """Shifts ``s`` making ``p 2^(ex+s)`` and ``q 2^(ey-s)`` representable.

    Returns ``(s, ok)``: ``s`` is the admissible shift nearest to ``prefer``
    where ``ok``.
    """
    lo_x, hi_x = shift_range(p, params)
    lo_y, hi_y = shift_range(q, params)
    s_lo = np.maximum(lo_x - ex, ey - hi_y)
    s_hi = np.minimum(hi_x - ex, ey - lo_y)
    ok = s_lo <= s_hi
    return np.where(ok, np.clip(prefer, s_lo, np.maximum(s_lo, s_hi)), prefer), ok


def float64_shift(p, ex, q, ey, X, Y):
    """Shifts keeping an unbounded pair in float64, else an OverflowError.

    Normal numbers (``t`` bits held exactly) if possible, else just finite.
    """
    s, ok = pair_shift(p, ex, q, ey, FLOAT64, 0)
    if ok.all():
        return s
    _, hi_x = shift_range(p, FLOAT64)
    _, hi_y = shift_range(q, FLOAT64)
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


class BoundedSide:
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
        self.costs = Costs(
            absy,
            None if carried else self.y_round,
            shift=self.g + self.h - ex - ey,
        )

    def y_round(self, z, rows):
        """:math:`\\hat q` for ``z`` = :math:`\\tilde\\mu y'` of ``rows``."""
        exponent = along(self.ex + self.ey - self.g, rows, z.ndim)
        yh = round_real(np.ldexp(z, exponent), self.fmt)
        return np.ldexp(yh, -along(self.h, rows, z.ndim))

    def scaled(self, Xh, rows):
        """:math:`\\hat p` of the states ``Xh`` of the terms ``rows``."""
        return np.ldexp(Xh, -along(self.g, rows, Xh.ndim))


def bounded_exact(absx, side, fmt, rows):
    """:math:`|\\hat x|` of the optimum over every scale :math:`\\nu > 0`.

    Every entry starts at 0 and crosses every midpoint of the format (the
    last one where it saturates), at :math:`\\nu = c / |x'_i|`.
    """
    grid = bounded_grid(fmt)
    values, mids = grid[:2]
    T, m = absx.shape
    L = len(mids)
    sigma = np.broadcast_to(np.ldexp(1.0, -side.g[rows])[:, None], (T, m))
    lo = np.zeros((T, m), dtype=np.int64)
    hi = np.where(absx > 0, L, 0)
    out = np.zeros_like(absx)
    for b in batches(T, m * L):
        x = absx[b]
        log_first = np.log2(mids[0]) - np.log2(np.max(x))
        log_last = np.log2(mids[-1]) - np.log2(np.min(x, initial=1.0, where=x > 0))
        # at most 2**t breakpoints per entry and binade of the scale
        n = 1
        if len(b) * m * L > SWEEP_BREAKS:
            n = n_windows(m, int((log_last - log_first) * 2**fmt.t) + 2)
        windows = log_windows(log_first, log_last, n)
        idx = sweep(x, x, sigma[b], lo[b], hi[b], grid, windows, side.costs, rows[b])
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
    A, B = state_sums(absx[:, None, :], side.scaled(C, rows))
    c = side.costs.all(A, B, rows)
    return C[np.arange(len(rows)), np.argmin(c, axis=1)]


def bounded_x(absx, p, ex, side, fmt, method, prefer):
    """:math:`|\\hat x|` of terms with no representable rescaling of ``p``.

    ``p`` is the unbounded optimum, ``prefer`` the rescaling wished for.
    """
    if method == "exact" and grid_size(fmt) <= MAX_GRID:
        return bounded_exact(absx, side, fmt, np.arange(len(absx)))
    if method == "exact":
        warnings.warn(
            f"the format {fmt} has more than {MAX_GRID} positive values: "
            f"{len(absx)} rank-one terms whose range fills it were quantized "
            "approximately (best power-of-two rescaling or round-to-nearest).",
            ApproximateQuantizationWarning,
            stacklevel=external_stacklevel(),
        )
    return _best_of_shifts(absx, p, ex, side, fmt, prefer)
