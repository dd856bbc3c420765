"""Exhaustive references for the rank-one quantization (tests, benchmarks).

Layer 3 (algorithms), used by no algorithm: brute force over the numbers of a
format, to check :func:`~skbutterfly.quantize_rank_one` against, and the
random and adversarial cases to check it on.
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import numpy as np

from skbutterfly._formats import check_format, round_real


def format_values(fmt, lo=None, hi=None):
    """Every finite number of ``fmt``, ascending (both signs and zero).

    For an unbounded format, the ``t``-bit numbers with exponents (of the
    leading bit) from ``lo`` to ``hi`` that float64 holds, their negatives
    and zero.
    """
    fmt = check_format(fmt)
    t = fmt.t
    M = np.arange(1 << (t - 1), 1 << t, dtype=np.float64)
    if fmt.bounded:
        lo, hi = fmt.emin, fmt.emax
    with np.errstate(over="ignore"):  # beyond float64: dropped below
        pos = [np.ldexp(M, e - t + 1) for e in range(lo, hi + 1)]
    if fmt.bounded and fmt.subnormals:
        pos.insert(0, np.ldexp(np.arange(1.0, 1 << (t - 1)), fmt.emin - t + 1))
    pos = np.concatenate(pos)
    pos = pos[pos <= fmt.largest]
    return np.concatenate([-pos[::-1], [0.0], pos])


def _candidates(x, fmt):
    """Vectors of the format's numbers of ``len(x)`` entries.

    Bounded: all of them. Unbounded: those with :math:`|\\hat x_i|` between
    :math:`\\mathrm{fl}(|x_i|)` and :math:`\\mathrm{fl}(2|x_i|)` and the sign of
    :math:`x_i`; enough, since some optimum is :math:`\\mathrm{fl}(\\lambda x)`
    with :math:`1 \\le \\lambda \\le 2`.
    """
    if fmt.bounded:
        values = [format_values(fmt)] * len(x)
    else:
        values = []
        for v in x:
            if v == 0:
                values.append(np.zeros(1))
                continue
            e = int(np.frexp(abs(v))[1]) - 1
            grid = format_values(fmt, e - 1, e + 2)
            with np.errstate(over="ignore"):  # near the largest float64
                low, high = round_real(abs(v), fmt), round_real(2 * abs(v), fmt)
            low = min(low, grid.max())
            values.append(np.sign(v) * grid[(grid >= low) & (grid <= high)])
    grids = np.meshgrid(*values, indexing="ij")
    return np.stack(grids, -1).reshape(-1, len(x))


def _mantissas(V):
    """Rows of ``V`` rescaled by powers of two to max-norm in [1/2, 1)."""
    e = np.frexp(np.max(np.abs(V), axis=-1, initial=0.0))[1]
    return np.ldexp(V, -e[..., None]), e


def rank_one_error(x, y, Xh, Yh):
    """:math:`\\|x y^T - \\hat x \\hat y^T\\|_F^2` of candidate rows, robustly.

    Every vector is rescaled by a power of two before the float64 products,
    so that the cost neither overflows nor underflows where float64 can hold
    it; accurate to about :math:`10^{-16}\\|x\\|^2\\|y\\|^2`.
    """
    (xs, ex), (ys, ey) = _mantissas(np.asarray(x)), _mantissas(np.asarray(y))
    (P, gx), (Q, gy) = _mantissas(np.atleast_2d(Xh)), _mantissas(np.atleast_2d(Yh))
    E = gx + gy - ex - ey
    with np.errstate(all="ignore"):
        cost = (
            (xs @ xs) * (ys @ ys)
            - 2 * np.ldexp((P @ xs) * (Q @ ys), E)
            + np.ldexp(np.sum(P * P, axis=1) * np.sum(Q * Q, axis=1), 2 * E)
        )
        cost = np.ldexp(
            np.maximum(np.where(np.isnan(cost), np.inf, cost), 0), 2 * (ex + ey)
        )
    return cost if np.ndim(Xh) == 2 else float(cost[0])


def exhaustive_rank_one(x, y, fmt, carried=False):
    """Smallest :math:`\\|x y^T - \\hat x \\hat y^T\\|_F^2` by brute force.

    Over every :math:`\\hat x` (see :func:`_candidates`) and the best
    :math:`\\hat y` for it.

    For fixed :math:`\\hat x` the best :math:`\\hat y` is the nearest
    rounding of :math:`\\mu y`, :math:`\\mu = x^T\\hat x / \\|\\hat x\\|^2`
    (the cost is separable in the entries of :math:`\\hat y`); with
    ``carried`` :math:`\\hat y = \\mu y` exactly. Returns the smallest cost
    (:func:`rank_one_error`).
    """
    fmt = check_format(fmt)
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if not np.any(x) or not np.any(y):
        return 0.0
    X = _candidates(x, fmt)
    X = X[np.any(X != 0, axis=1)]
    (xs, ex), (ys, ey) = _mantissas(x), _mantissas(y)
    P, gx = _mantissas(X)
    with np.errstate(all="ignore"):  # far candidates overflow: cost inf
        mu = (P @ xs) / np.sum(P * P, axis=1)  # mu = this * 2^(ex - gx)
        Y = np.ldexp(mu[:, None] * ys, (ex - gx + ey)[:, None])
        if not carried:
            Y = round_real(Y, fmt)
    best = np.min(rank_one_error(x, y, X, Y), initial=rank_one_error(x, y, 0 * x, y))
    return float(best)


def adversarial_cases(fmt, n_cases, random_state, max_len=3):
    """Random and adversarial ``(x, y)`` pairs for the format ``fmt``.

    Gaussian vectors at scales spread over and beyond the format's range,
    with zeros, huge dynamic ranges, values near overflow and in the
    subnormal range, dyadic values (exact ties), and float64 extremes.
    ``x`` has at most 2 entries for 8-bit formats, 1 for larger bounded
    formats (so that :func:`exhaustive_rank_one` stays small).
    """
    fmt = check_format(fmt)
    rng = np.random.default_rng(random_state)
    if fmt.bounded:
        m_max = 2 if fmt.t <= 4 else 1
        lo, hi = fmt.emin - fmt.t, fmt.emax + 1
    else:
        m_max = 3 if fmt.t <= 4 else 2
        lo, hi = -60, 60
    cases = []
    for i in range(n_cases):
        m, n = int(rng.integers(1, m_max + 1)), int(rng.integers(1, max_len + 1))
        kind = i % 6
        x, y = rng.standard_normal(m), rng.standard_normal(n)
        if kind == 1:  # huge dynamic range within each vector
            x *= np.exp2(rng.uniform(-20, 20, m))
            y *= np.exp2(rng.uniform(-20, 20, n))
        elif kind == 2:  # the product near the top of the range or beyond
            x *= np.exp2(rng.uniform(hi - 4, hi + 6) / 2)
            y *= np.exp2(rng.uniform(hi - 4, hi + 6) / 2)
        elif kind == 3:  # the product in the subnormal range or below
            x *= np.exp2(rng.uniform(lo - 6, lo + 4) / 2)
            y *= np.exp2(rng.uniform(lo - 6, lo + 4) / 2)
        elif kind == 4:  # dyadic values: exact ties
            x = rng.integers(-16, 17, m) * 2.0 ** int(rng.integers(-4, 2))
            y = rng.integers(-16, 17, n) * 2.0 ** int(rng.integers(-4, 2))
        elif kind == 5:  # one side at a float64 extreme, the other balancing
            k = int(rng.choice([-1, 1])) * int(rng.integers(900, 1020))
            x, y = np.ldexp(x, k), np.ldexp(y, -k + int(rng.integers(-4, 5)))
        else:  # a random overall scale across the range
            s = rng.uniform(lo, hi)
            x, y = x * np.exp2(s / 2), y * np.exp2(s / 2)
        if rng.random() < 0.2:
            (x if rng.random() < 0.5 else y)[0] = 0.0
        cases.append((x, y))
    return cases
