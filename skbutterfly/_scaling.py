"""Exact power-of-two scaling: norms and algorithms safe at any magnitude.

Layer 1 (kernels): pure functions on arrays. Squares of entries under- or
overflow long before the entries do (``|x| < 1e-154`` or ``> 1e154`` in
float64, ``1e-19`` / ``1e19`` in float32); bringing the largest magnitude
near one by a power of two is exact (no rounding), so every algorithm scales
its input once at entry and every error is computed through
:func:`frobenius_norm`.
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import math

import numpy as np


def _real_view(X):
    """``X`` as real numbers (real and imaginary parts side by side)."""
    X = np.ascontiguousarray(X)
    if X.dtype.kind != "c":
        return X
    return X.view(X.real.dtype)


def peak_exponent(X) -> int:
    """The exponent ``e`` with ``max |X| * 2**-e`` in ``[0.5, 1)``; 0 if ``X = 0``.

    Real and imaginary parts are measured separately (the largest of their
    magnitudes), which is what matters for exact scaling.

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly._scaling import peak_exponent
    >>> peak_exponent(np.array([3.0, -0.25])), peak_exponent(np.zeros(2))
    (2, 0)
    """
    X = np.asarray(X)
    if X.size == 0:
        return 0
    parts = (X.real, X.imag) if X.dtype.kind == "c" else (X,)
    peak = max(max(float(P.max()), -float(P.min())) for P in parts)
    if not 0 < peak < np.inf:
        return 0
    return int(np.frexp(peak)[1])


def scaling_exponent(X) -> int:
    """The power of two an algorithm divides ``X`` by: 0 unless it is needed.

    :func:`peak_exponent` when the largest magnitude of ``X`` lies outside
    the fourth root of its dtype's range (where products of a few squares
    could under- or overflow), 0 otherwise: ordinary data is used as it is,
    bit for bit.

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly._scaling import scaling_exponent
    >>> scaling_exponent(np.array([3.0])), scaling_exponent(np.array([2.0**300]))
    (0, 301)
    """
    X = np.asarray(X)
    return exponent_if_extreme(peak_exponent(X), X.dtype)


def exponent_if_extreme(exponent, dtype) -> int:
    """``exponent`` if a peak of ``2**exponent`` needs scaling in ``dtype``, else 0.

    The rule of :func:`scaling_exponent`, given the :func:`peak_exponent`
    (e.g. the largest over the slabs of a matrix read piece by piece).

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly._scaling import exponent_if_extreme
    >>> exponent_if_extreme(2, np.float64), exponent_if_extreme(-996, np.float64)
    (0, -996)
    """
    dtype = np.dtype(dtype)
    info = np.finfo(dtype if dtype.kind in "fc" else np.float64)
    if info.minexp // 4 <= exponent <= info.maxexp // 4:
        return 0
    return int(exponent)


def scale_pow2(X, exponent):
    """``X * 2**exponent``, exactly unless the result leaves the dtype's range.

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly._scaling import scale_pow2
    >>> scale_pow2(np.array([1.5, -3.0]), -1).tolist()
    [0.75, -1.5]
    """
    X = np.asarray(X)
    if exponent == 0:
        return X
    return np.ldexp(_real_view(X), int(exponent)).view(X.dtype).reshape(X.shape)


def split_exponent(exponent, n_parts):
    """``n_parts`` integers summing to ``exponent``, as equal as possible.

    The share of each factor of a product scaled by ``2**exponent``: keeps
    every factor far from under- and overflow.

    Examples
    --------
    >>> from skbutterfly._scaling import split_exponent
    >>> split_exponent(-7, 3)
    [-2, -2, -3]
    """
    base, extra = divmod(int(exponent), n_parts)
    return [base + (i < extra) for i in range(n_parts)]


def frobenius_norm(X) -> float:
    """:math:`\\|X\\|_F` without under- or overflow of the squares.

    Entries whose largest magnitude lies outside the fourth root of the
    dtype's range are first scaled by the power of two that brings it near
    one (:func:`scaling_exponent`); they are squared and summed in the dtype
    of ``X``, and the square root is scaled back in Python floats: the
    result is ``inf`` only when the norm itself exceeds the largest float64.

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly._scaling import frobenius_norm
    >>> frobenius_norm(np.full((2, 2), 1e-200)) / 1e-200
    2.0
    >>> frobenius_norm(np.full((2, 2), 1e300)) / 1e300
    2.0
    """
    X = np.asarray(X)
    # Ordinary magnitudes are summed as they are (no copy): only a peak
    # outside the fourth root of the range could make the squares misbehave.
    exponent = scaling_exponent(X)
    scaled = _real_view(scale_pow2(X, -exponent)).ravel()
    return ldexp_or_inf(math.sqrt(float(np.dot(scaled, scaled))), exponent)


def frobenius_errors(X, X_hat):
    """``(||X - X_hat||_F, ||X||_F, relative)``, through :func:`frobenius_norm`.

    The difference is taken after scaling both by the power of two that
    brings the larger near one, and ``relative`` is the ratio of the scaled
    norms: it is right even where the norms themselves overflow float64.
    For ``X = 0``, ``relative`` is 0 when ``X_hat = 0`` and ``inf``
    otherwise.

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly._scaling import frobenius_errors
    >>> X = np.array([[3e200, 4e200]])
    >>> error, norm, relative = frobenius_errors(X, np.zeros_like(X))
    >>> error / 1e200, norm / 1e200, relative
    (5.0, 5.0, 1.0)
    """
    X, X_hat = np.asarray(X), np.asarray(X_hat)
    exponent = max(peak_exponent(X), peak_exponent(X_hat))
    X, X_hat = scale_pow2(X, -exponent), scale_pow2(X_hat, -exponent)
    error, norm = frobenius_norm(X - X_hat), frobenius_norm(X)
    if norm > 0:
        relative = error / norm
    else:
        relative = 0.0 if error == 0 else math.inf
    return ldexp_or_inf(error, exponent), ldexp_or_inf(norm, exponent), relative


def ldexp_or_inf(value, exponent) -> float:
    """``value * 2**exponent`` as a Python float, ``inf`` past its range."""
    try:
        return math.ldexp(value, exponent)
    except OverflowError:
        return math.inf
