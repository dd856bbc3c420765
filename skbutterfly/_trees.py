"""Trees of the hierarchical factorization: the order in which a chain is split.

Layer 3 (algorithms): used by :func:`~skbutterfly.butterfly_factorize`.
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

from numbers import Integral

import numpy as np

from skbutterfly._constants import TREES


def _balanced_order(start, stop):
    """Preorder splits of ``start..stop``, each node cut after its first half."""
    if start == stop:
        return []
    split = start + (stop - start + 1) // 2 - 1
    return [split, *_balanced_order(start, split), *_balanced_order(split + 1, stop)]


def _nested_order(tree, n_factors):
    """Split order of a nested tuple of factor indices, in preorder."""
    leaves = []

    def walk(node):
        if isinstance(node, Integral) and not isinstance(node, bool):
            leaves.append(int(node))
            return []
        if not isinstance(node, tuple) or len(node) != 2:
            raise ValueError(
                "tree must be 'balanced', 'left', 'right', a sequence of split "
                "indices or a nested pair of factor indices such as "
                f"((0, 1), (2, 3)); got the node {node!r}."
            )
        left = walk(node[0])
        split = leaves[-1]
        return [split, *left, *walk(node[1])]

    try:
        order = walk(tree)
    except RecursionError:
        raise ValueError(
            "tree is nested too deeply: a nested pair of factor indices has at "
            "most n_factors leaves."
        ) from None
    if leaves != list(range(n_factors)):
        raise ValueError(
            f"tree must have the factor indices 0..{n_factors - 1} as leaves, in "
            f"order, got leaves {leaves}."
        )
    return order


def split_order(tree, n_factors: int) -> list:
    """Order in which a chain of ``n_factors`` factors is split.

    Split ``i`` cuts the node holding factors ``i`` and ``i + 1`` between
    them (0-based, ``0 <= i < n_factors - 1``).

    Parameters
    ----------
    tree : {"balanced", "left", "right"}, sequence of int or nested tuple
        ``"left"`` peels the first factor off first (splits
        ``0, 1, ..., J-2``, left-to-right); ``"right"`` peels the last one
        first (``J-2, ..., 0``); ``"balanced"`` splits every node in the
        middle (its first ``floor(size/2)`` factors on the left), in
        preorder, as pyfaust's ``bbtree``. A sequence of ints is an explicit
        order, a permutation of ``range(J - 1)``. A nested tuple of pairs
        with the factor indices as leaves, e.g. ``((0, 1), (2, 3))`` for
        ``J = 4``, describes the tree itself.
    n_factors : int
        Number of factors ``J``.

    Returns
    -------
    list of int
        The split indices, in order.

    Examples
    --------
    >>> from skbutterfly._trees import split_order
    >>> split_order("balanced", 8)
    [3, 1, 0, 2, 5, 4, 6]
    >>> split_order("right", 4)
    [2, 1, 0]
    >>> split_order(((0, (1, 2)), 3), 4)
    [2, 0, 1]
    """
    if isinstance(tree, str):
        if tree == "balanced":
            return _balanced_order(0, n_factors - 1)
        if tree == "left":
            return list(range(n_factors - 1))
        if tree == "right":
            return list(range(n_factors - 2, -1, -1))
        raise ValueError(
            f"tree must be one of {TREES}, a sequence of split indices or a "
            f"nested tuple of factor indices, got {tree!r}."
        )
    # A pair is a tree when it nests pairs (or is the only tree, (0, 1), of
    # two factors); otherwise a sequence is an explicit order.
    if isinstance(tree, tuple) and (
        any(isinstance(node, tuple) for node in tree)
        or (n_factors == 2 and len(tree) == 2)
    ):
        return _nested_order(tree, n_factors)
    try:
        order = np.asarray(tree)
    except ValueError:
        order = np.zeros((0, 0))
    if order.size == 0:
        order = order.astype(np.int64)
    if (
        order.ndim != 1
        or order.dtype.kind not in "iu"
        or sorted(order.tolist()) != list(range(n_factors - 1))
    ):
        raise ValueError(
            "tree given as a split order must be a permutation of "
            f"range({n_factors - 1}) (n_factors={n_factors}), got {tree!r}."
        )
    return order.tolist()
