"""Common supports (masks) and the named-support registry of the estimators.

Layer 2 (structures).
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import math

import numpy as np

from skbutterfly._patterns import Pattern, architecture, fuse_patterns
from skbutterfly._validation import (
    check_positive_int,
    check_power_of_two,
    check_shape,
    check_support,
)


def butterfly_support(n: int, k: int) -> np.ndarray:
    """Boolean support of the ``k``-th factor of the classic butterfly of size n.

    Factor ``k`` (1-based, left to right) has pattern
    ``(2**(k-1), 2, 2, n/2**k)``: :math:`I_{2^{k-1}} \\otimes 1_{2\\times 2}
    \\otimes I_{n/2^k}`.

    Parameters
    ----------
    n : int
        Size, a power of two >= 2.
    k : int
        Factor index, between 1 and ``log2(n)``.

    Returns
    -------
    ndarray of shape (n, n), dtype bool

    Examples
    --------
    >>> from skbutterfly import butterfly_support
    >>> butterfly_support(4, 2).astype(int)
    array([[1, 1, 0, 0],
           [1, 1, 0, 0],
           [0, 0, 1, 1],
           [0, 0, 1, 1]])
    """
    n = check_power_of_two(n, "n", minimum=2)
    levels = n.bit_length() - 1
    k = check_positive_int(k, "k", maximum=levels)
    return Pattern(2 ** (k - 1), 2, 2, n // 2**k).support()


def full_support(shape) -> np.ndarray:
    """All-true support of the given shape.

    Examples
    --------
    >>> from skbutterfly import full_support
    >>> full_support((2, 3)).all()
    np.True_
    """
    return np.ones(check_shape(shape), dtype=bool)


def lower_triangular_support(shape) -> np.ndarray:
    """Support of lower-triangular matrices: entry ``(i, j)`` with ``i >= j``.

    Examples
    --------
    >>> from skbutterfly import lower_triangular_support
    >>> lower_triangular_support((3, 3)).astype(int)
    array([[1, 0, 0],
           [1, 1, 0],
           [1, 1, 1]])
    """
    m, n = check_shape(shape)
    return np.tri(m, n, dtype=bool)


def upper_triangular_support(shape) -> np.ndarray:
    """Support of upper-triangular matrices: entry ``(i, j)`` with ``i <= j``.

    Examples
    --------
    >>> from skbutterfly import upper_triangular_support
    >>> upper_triangular_support((2, 3)).astype(int)
    array([[1, 1, 1],
           [0, 1, 1]])
    """
    m, n = check_shape(shape)
    return ~np.tri(m, n, k=-1, dtype=bool)


def block_diagonal_support(shape, n_blocks: int) -> np.ndarray:
    """Block-diagonal support with ``n_blocks`` blocks of near-equal sizes.

    Rows and columns are each cut into ``n_blocks`` contiguous groups whose
    sizes differ by at most one; block ``k`` joins row group ``k`` and column
    group ``k``.

    Examples
    --------
    >>> from skbutterfly import block_diagonal_support
    >>> block_diagonal_support((4, 4), 2).astype(int)
    array([[1, 1, 0, 0],
           [1, 1, 0, 0],
           [0, 0, 1, 1],
           [0, 0, 1, 1]])
    """
    m, n = check_shape(shape)
    n_blocks = check_positive_int(n_blocks, "n_blocks", maximum=min(m, n))
    row_group = np.arange(m) * n_blocks // m
    col_group = np.arange(n) * n_blocks // n
    return row_group[:, None] == col_group[None, :]


NAMED_SUPPORTS = {
    "full": full_support,
    "lower": lower_triangular_support,
    "upper": upper_triangular_support,
    "block_diagonal": lambda shape: block_diagonal_support(
        shape, max(1, math.isqrt(min(shape)))
    ),
}
# "butterfly" names the two supports of a split at once (see resolve_supports).
SUPPORT_NAMES = frozenset({*NAMED_SUPPORTS, "butterfly"})


def _butterfly_split(shape):
    """Supports of the two-factor split of the classic butterfly of ``shape``.

    The left support is the first factor's pattern, the right one the product
    of the other factors' patterns (the identity for a single factor); rows
    of the left and columns of the right support are cropped to ``shape``
    when the architecture pads.
    """
    patterns = architecture(shape).patterns
    left = patterns[0].support()
    if len(patterns) == 1:
        right = np.eye(left.shape[1], dtype=bool)
    else:
        fused = patterns[1]
        for p in patterns[2:]:
            fused = fuse_patterns(fused, p)
        right = fused.support()
    return left[: shape[0]], right[:, : shape[1]]


def resolve_supports(support_W, support_H, n_components, shape):
    """Build the two masks for a matrix of ``shape`` (see the class docstring)."""
    m, n = shape
    specs = {"support_W": support_W, "support_H": support_H}
    given = {}
    for name, spec in specs.items():
        if isinstance(spec, str) and spec == "butterfly":
            given[name] = _butterfly_split(shape)[name == "support_H"]
        elif spec is not None and not isinstance(spec, str) and not callable(spec):
            given[name] = check_support(spec, name)
    widths = {}
    if "support_W" in given:
        widths["support_W"] = given["support_W"].shape[1]
    if "support_H" in given:
        widths["support_H"] = given["support_H"].shape[0]
    if n_components is not None:
        # More rank-one terms than entries of X can never help; refusing them
        # also keeps a mistyped huge value from allocating the masks.
        check_positive_int(n_components, "n_components", maximum=m * n + 1)
        widths["n_components"] = n_components
    if len(set(widths.values())) > 1:
        raise ValueError(
            "the number of components is inconsistent: "
            + ", ".join(f"{k} gives r={v}" for k, v in widths.items())
            + "."
        )
    r = next(iter(widths.values())) if widths else min(m, n)
    masks = []
    for name, factor_shape in (("support_W", (m, r)), ("support_H", (r, n))):
        spec = specs[name]
        if name in given:
            mask = given[name]
        elif callable(spec):
            mask = check_support(spec(factor_shape), name)
        else:
            mask = NAMED_SUPPORTS["full" if spec is None else spec](factor_shape)
        if mask.shape != factor_shape:
            raise ValueError(
                f"{name} must have shape {factor_shape} for X with n_samples={m}, "
                f"n_features={n} and r={r} components, got shape={mask.shape}."
            )
        masks.append(mask)
    return tuple(masks)
