"""Kronecker-sparse value algebra: products, fusing, pair <-> class blocks, plans.

Layer 2 (structures): pure functions on the values of patterns; nothing here
knows about estimators.
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause


import numpy as np

from skbutterfly._patterns import Pattern, fuse_patterns

# ----------------------------------------------------------------------------
# Products with Kronecker-sparse factors
# ----------------------------------------------------------------------------


def ks_apply(K, X, Kt=None):
    """Multiply the Kronecker-sparse factor with values ``K`` by ``X``.

    Parameters
    ----------
    K : ndarray of shape (a, b, c, d)
        Values of a factor with pattern ``(a, b, c, d)``.
    X : ndarray of shape (a*c*d, n)
        Right-hand side.
    Kt : ndarray of shape (a, d, b, c), optional
        ``K.transpose(0, 3, 1, 2)`` stored contiguously (a cache kept by
        callers that apply the same factor often).

    Returns
    -------
    ndarray of shape (a*b*d, n)

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly._ks import ks_apply, ks_to_dense
    >>> K = np.arange(16.0).reshape(1, 2, 2, 4)
    >>> X = np.ones((8, 3))
    >>> np.allclose(ks_apply(K, X), ks_to_dense(K) @ X)
    True
    """
    a, b, c, d = K.shape
    n = X.shape[1]
    if d == 1:
        return np.matmul(K.reshape(a, b, c), X.reshape(a, c, n)).reshape(a * b, n)
    if n == 1:
        out = np.einsum("abcd,acd->abd", K, X.reshape(a, c, d))
        return out.reshape(a * b * d, 1)
    if Kt is None:
        Kt = K.transpose(0, 3, 1, 2)
    out = np.matmul(Kt, X.reshape(a, c, d, n).transpose(0, 2, 1, 3))
    return out.transpose(0, 2, 1, 3).reshape(a * b * d, n)


def ks_to_dense(K):
    """Dense matrix of the Kronecker-sparse factor with values ``K``.

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly._ks import ks_to_dense
    >>> ks_to_dense(np.ones((2, 1, 1, 1))).astype(int)
    array([[1, 0],
           [0, 1]])
    """
    a, b, c, d = K.shape
    dense = np.zeros((a, b, d, a, c, d), dtype=K.dtype)
    ia, id_ = np.arange(a), np.arange(d)
    dense[ia[:, None], :, id_[None, :], ia[:, None], :, id_[None, :]] = K.transpose(
        0, 3, 1, 2
    )
    return dense.reshape(a * b * d, a * c * d)


def ks_indices(shape):
    """Row and column indices of the stored values of a pattern, in ``K`` order.

    Returns two int64 arrays of shape ``(a, b, c, d)``.
    """
    a, b, c, d = shape
    ia, ib, ic, id_ = np.ix_(np.arange(a), np.arange(b), np.arange(c), np.arange(d))
    rows = np.broadcast_to(ia * (b * d) + ib * d + id_, shape)
    cols = np.broadcast_to(ia * (c * d) + ic * d + id_, shape)
    return rows.astype(np.int64), cols.astype(np.int64)


def pair_dims(K1_shape, K2_shape):
    """Dimensions ``(a1, b1, alpha, r, delta, c2, d2)`` of a chainable pair."""
    a1, b1, c1, d1 = K1_shape
    a2, b2, c2, d2 = K2_shape
    alpha, delta = a2 // a1, d1 // d2
    r = c1 // alpha
    return a1, b1, alpha, r, delta, c2, d2


def fuse_values(K1, K2):
    """Values of the product of two chainable Kronecker-sparse factors.

    With :math:`\\alpha = a_2/a_1`, :math:`\\delta = d_1/d_2` and block rank
    :math:`r`, the product has pattern
    :math:`(a_1, b_1\\delta, \\alpha c_2, d_2)` and

    .. math:: F[u, (\\beta, x), (\\gamma, \\kappa), v] = \\sum_{\\rho < r}
              K_1[u, \\beta, (\\gamma, \\rho), (x, v)]\\,
              K_2[(u, \\gamma), (\\rho, x), \\kappa, v].

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly._ks import fuse_values, ks_to_dense
    >>> rng = np.random.default_rng(0)
    >>> K1, K2 = rng.normal(size=(1, 2, 2, 2)), rng.normal(size=(2, 2, 2, 1))
    >>> F = fuse_values(K1, K2)
    >>> F.shape
    (1, 4, 4, 1)
    >>> np.allclose(ks_to_dense(F), ks_to_dense(K1) @ ks_to_dense(K2))
    True
    """
    a1, b1, alpha, r, delta, c2, d2 = pair_dims(K1.shape, K2.shape)
    L = K1.reshape(a1, b1, alpha, r, delta, d2)
    R = K2.reshape(a1, alpha, r, delta, c2, d2)
    F = np.einsum("ubgrxv,ugrxkv->ubxgkv", L, R, optimize=True)
    return F.reshape(a1, b1 * delta, alpha * c2, d2)


def class_blocks(K1, K2):
    """The class blocks of a chainable pair: the one pair <-> blocks bijection.

    The product of two chainable Kronecker-sparse factors is a sum of
    disjoint rectangles, one per equivalence class of the pair (the
    ``(a1, delta, alpha, d2)`` grid); class ``g`` contributes the block
    ``U[g] @ V[g]``, with ``U[g]`` the ``r`` columns of the left factor and
    ``V[g]`` the ``r`` rows of the right factor that meet on it. This
    function returns those views; :func:`merge_blocks` is its inverse and
    :func:`split_blocks` arranges a target matrix in the same class order.

    Parameters
    ----------
    K1, K2 : ndarray
        Values of the left and the right factor (4-D, chainable).

    Returns
    -------
    U : ndarray of shape (a1, delta, alpha, d2, b1, r)
        The left factor's columns of each class (a view when possible).
    V : ndarray of shape (a1, delta, alpha, d2, r, c2)
        The right factor's rows of each class.

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly._ks import class_blocks, fuse_values, merge_blocks
    >>> rng = np.random.default_rng(0)
    >>> K1, K2 = rng.normal(size=(1, 2, 2, 2)), rng.normal(size=(2, 2, 2, 1))
    >>> U, V = class_blocks(K1, K2)
    >>> U.shape, V.shape
    ((1, 2, 2, 1, 2, 1), (1, 2, 2, 1, 1, 2))
    >>> L, R = merge_blocks(U, V, K1.shape, K2.shape)
    >>> np.array_equal(L, K1) and np.array_equal(R, K2)
    True
    """
    a1, b1, alpha, r, delta, c2, d2 = pair_dims(K1.shape, K2.shape)
    U = K1.reshape(a1, b1, alpha, r, delta, d2).transpose(0, 4, 2, 5, 1, 3)
    V = K2.reshape(a1, alpha, r, delta, c2, d2).transpose(0, 3, 1, 5, 2, 4)
    return U, V


def split_blocks(T, left_shape, right_shape):
    """View the target of a two-factor split as a stack of blocks.

    ``T`` holds the values of the fused pattern of a chainable pair with
    shapes ``left_shape`` and ``right_shape``; the result has shape
    ``(a1, delta, alpha, d2, b1, c2)``: one ``b1 x c2`` block per equivalence
    class of the pair (Zheng et al., arXiv:2110.01235), each to be approximated
    with rank ``r``.
    """
    a1, b1, alpha, _, delta, c2, d2 = pair_dims(left_shape, right_shape)
    return T.reshape(a1, b1, delta, alpha, c2, d2).transpose(0, 2, 3, 5, 1, 4)


def merge_blocks(U, V, left_shape, right_shape):
    """Inverse of :func:`class_blocks`: the pair's values from its class blocks.

    ``U`` of shape ``(a1, delta, alpha, d2, b1, r)`` and ``V`` of shape
    ``(a1, delta, alpha, d2, r, c2)`` become the values of the left and the
    right factor (shapes ``left_shape`` and ``right_shape``).
    """
    a1, b1, alpha, r, delta, c2, d2 = pair_dims(left_shape, right_shape)
    K1 = U.transpose(0, 4, 2, 5, 1, 3).reshape(left_shape)
    K2 = V.transpose(0, 2, 4, 1, 5, 3).reshape(right_shape)
    return np.ascontiguousarray(K1), np.ascontiguousarray(K2)


# ----------------------------------------------------------------------------
# Batched truncated SVD of many equal-shape blocks


# Products with several columns fuse runs of factors into blocks of at most
# FUSE_BLOCK_MATRIX entries (fewer passes over memory, batched matrix
# products); single columns fuse pairs only (their cost is reading the values).
FUSE_BLOCK_MATRIX = 256
FUSE_BLOCK_VECTOR = 16


def fused_groups(factors, block_limit):
    """Greedily fuse consecutive factors while blocks stay small."""
    groups = [factors[0]]
    for K in factors[1:]:
        last = groups[-1]
        fused = fuse_patterns(Pattern(*last.shape), Pattern(*K.shape))
        cheap = fused.nnz <= 4 * (last.size + K.size)
        if fused.b * fused.c <= block_limit and cheap:
            groups[-1] = fuse_values(last, K)
        else:
            groups.append(K)
    return groups


def vector_plan(groups):
    """Steps of a single-column product; ``groups`` in the order they apply.

    ``einsum`` runs fast when its innermost axis, a factor's ``d``, is long.
    Each run of groups with ``d < a`` is applied to the vector reshaped to
    ``(P, n / P)`` and transposed, ``P`` the smallest ``a`` of the run (it
    divides the others), where pattern ``(a, b, c, d)`` reads
    ``(a / P, b, c, d * P)``; a transpose back follows the run.

    Returns a list whose items are 4-D arrays (one ``einsum`` each) or pairs
    ``(P, back)`` (a change of layout).
    """
    steps = []
    start = 0
    while start < len(groups):
        stop = start
        while stop < len(groups) and groups[stop].shape[3] < groups[stop].shape[0]:
            stop += 1
        if stop == start:
            steps.append(groups[start])
            start += 1
            continue
        P = min(K.shape[0] for K in groups[start:stop])
        steps.append((P, False))
        for K in groups[start:stop]:
            a, b, c, d = K.shape
            K = K.reshape(P, a // P, b, c, d).transpose(1, 2, 3, 4, 0)
            steps.append(np.ascontiguousarray(K).reshape(a // P, b, c, d * P))
        steps.append((P, True))
        start = stop
    return steps


def apply_vector(steps, x):
    for step in steps:
        if isinstance(step, tuple):
            P, back = step
            x = np.ascontiguousarray(x.reshape(-1, P).T if back else x.reshape(P, -1).T)
        else:
            a, _, c, d = step.shape
            x = np.einsum("abcd,acd->abd", step, x.reshape(a, c, d))
    return x.reshape(-1, 1)
