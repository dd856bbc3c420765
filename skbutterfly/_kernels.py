"""Numerical kernels: pattern products, fusing, batched truncated SVD, chunking.

Pure functions on arrays; nothing here knows about estimators.
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
from joblib import effective_n_jobs
from sklearn.utils.parallel import Parallel, delayed
from threadpoolctl import threadpool_limits

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
    >>> from skbutterfly._kernels import ks_apply, ks_to_dense
    >>> K = np.arange(16.0).reshape(1, 2, 2, 4)
    >>> X = np.ones((8, 3))
    >>> np.allclose(ks_apply(K, X), ks_to_dense(K) @ X)
    True
    """
    a, b, c, d = K.shape
    n = X.shape[1]
    if d == 1:
        return np.matmul(K[..., 0], X.reshape(a, c, n)).reshape(a * b, n)
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
    >>> from skbutterfly._kernels import ks_to_dense
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


def _pair_dims(K1_shape, K2_shape):
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
    >>> from skbutterfly._kernels import fuse_values, ks_to_dense
    >>> rng = np.random.default_rng(0)
    >>> K1, K2 = rng.normal(size=(1, 2, 2, 2)), rng.normal(size=(2, 2, 2, 1))
    >>> F = fuse_values(K1, K2)
    >>> F.shape
    (1, 4, 4, 1)
    >>> np.allclose(ks_to_dense(F), ks_to_dense(K1) @ ks_to_dense(K2))
    True
    """
    a1, b1, alpha, r, delta, c2, d2 = _pair_dims(K1.shape, K2.shape)
    L = K1.reshape(a1, b1, alpha, r, delta, d2)
    R = K2.reshape(a1, alpha, r, delta, c2, d2)
    F = np.einsum("ubgrxv,ugrxkv->ubxgkv", L, R, optimize=True)
    return F.reshape(a1, b1 * delta, alpha * c2, d2)


def split_blocks(T, left_shape, right_shape):
    """View the target of a two-factor split as a stack of blocks.

    ``T`` holds the values of the fused pattern of a chainable pair with
    shapes ``left_shape`` and ``right_shape``; the result has shape
    ``(a1, delta, alpha, d2, b1, c2)``: one ``b1 x c2`` block per equivalence
    class of the pair (ALGORITHMS.md §2.5), each to be approximated with rank
    ``r``.
    """
    a1, b1, alpha, _, delta, c2, d2 = _pair_dims(left_shape, right_shape)
    return T.reshape(a1, b1, delta, alpha, c2, d2).transpose(0, 2, 3, 5, 1, 4)


def merge_blocks(U, V, left_shape, right_shape):
    """Inverse of :func:`split_blocks` for the two factors of every block.

    ``U`` of shape ``(a1, delta, alpha, d2, b1, r)`` and ``V`` of shape
    ``(a1, delta, alpha, d2, r, c2)`` become the values of the left and the
    right factor (shapes ``left_shape`` and ``right_shape``).
    """
    a1, b1, alpha, r, delta, c2, d2 = _pair_dims(left_shape, right_shape)
    K1 = U.transpose(0, 4, 2, 5, 1, 3).reshape(left_shape)
    K2 = V.transpose(0, 2, 4, 1, 5, 3).reshape(right_shape)
    return np.ascontiguousarray(K1), np.ascontiguousarray(K2)


# ----------------------------------------------------------------------------
# Batched truncated SVD of many equal-shape blocks
# ----------------------------------------------------------------------------

_SKETCH_SEED = 0x5B7F


def _herm(X):
    return np.conj(np.swapaxes(X, -1, -2))


def _top_eigh(G, k):
    """Top-``k`` eigenpairs (descending) of a stack of Hermitian matrices."""
    w, Q = np.linalg.eigh(G)
    w = w[..., ::-1][..., :k]
    Q = Q[..., ::-1][..., :k]
    return np.maximum(w, 0), Q


def _rayleigh_ritz(B, Q, k):
    """Best rank-``k`` factors of ``B`` inside the column span of ``Q``.

    Returns ``(U, R)`` with orthonormal ``U`` (in span Q) and ``R = U^H B``.
    """
    W = _herm(Q) @ B
    _, E = _top_eigh(W @ _herm(W), k)
    return Q @ E, _herm(E) @ W


def _gram_route(B, k):
    m, n = B.shape[-2:]
    if m <= n:
        _, Q = _top_eigh(B @ _herm(B), k)
        return _rayleigh_ritz(B, Q, k)
    _, Q = _top_eigh(_herm(B) @ B, k)
    V, Rh = _rayleigh_ritz(_herm(B), Q, k)
    # The columns of B @ V = Rh^H are orthogonal: normalise them into U.
    s = np.linalg.norm(Rh, axis=-1)
    safe = np.where(s > 0, s, 1)
    return _herm(Rh) / safe[..., None, :], s[..., :, None] * _herm(V)


def _subspace_route(B, k, max_iter, tol):
    m, n = B.shape[-2:]
    width = min(k + max(2, k), m, n)
    rng = np.random.default_rng(_SKETCH_SEED)
    omega = rng.standard_normal((n, width)).astype(B.real.dtype)
    Q, _ = np.linalg.qr(B @ omega)
    previous = None
    for _ in range(max_iter):
        Z = _herm(B) @ Q
        Q, _ = np.linalg.qr(B @ Z)
        energy = _top_eigh(_herm(Z) @ Z, k)[0]
        if previous is not None:
            change = np.abs(energy - previous) <= tol * np.maximum(energy, 1e-300)
            if change.all():
                break
        previous = energy
    return _rayleigh_ritz(B, Q, k)


def low_rank_blocks(blocks, rank, *, max_iter=30, tol=None):
    """Best rank-``rank`` approximation of every block of a stack.

    Picks the exact route by block size: the Gram matrix of the short side
    with an eigen-decomposition and a Rayleigh-Ritz refinement when a side is
    short (or the rank is a large part of it), randomized subspace iteration
    run to convergence otherwise. Exact low-rank blocks are recovered to
    machine precision.

    Parameters
    ----------
    blocks : ndarray of shape (..., m, n)
        Stack of blocks (real or complex).
    rank : int
        Target rank; ``k = min(rank, m, n)`` factors are returned.
    max_iter : int, default=30
        Maximal number of subspace iterations (large blocks only).
    tol : float, default=None
        Relative change of the captured energy that stops subspace iteration;
        ``None`` means ``100 * eps`` of the dtype.

    Returns
    -------
    U : ndarray of shape (..., m, k)
        Orthonormal columns.
    R : ndarray of shape (..., k, n)
        ``U^H @ blocks``, so that ``U @ R`` is the truncated approximation; the
        rows of ``R`` are orthogonal with norms the singular values.

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly._kernels import low_rank_blocks
    >>> rng = np.random.default_rng(0)
    >>> B = rng.normal(size=(5, 40, 1)) @ rng.normal(size=(5, 1, 30))
    >>> U, R = low_rank_blocks(B, 1)
    >>> float(np.abs(U @ R - B).max()) < 1e-12
    True
    """
    m, n = blocks.shape[-2:]
    k = min(rank, m, n)
    if blocks.size == 0:
        return (
            np.zeros((*blocks.shape[:-1], k), blocks.dtype),
            np.zeros((*blocks.shape[:-2], k, n), blocks.dtype),
        )
    if tol is None:
        tol = 100 * np.finfo(blocks.dtype).eps
    if min(m, n) <= max(16, 4 * k):
        return _gram_route(blocks, k)
    return _subspace_route(blocks, k, max_iter, tol)


def truncated_svd(blocks, rank, **kwargs):
    """Truncated SVD ``U, s, Vh`` of every block of a stack.

    Parameters
    ----------
    blocks : ndarray of shape (..., m, n)
        Stack of blocks.
    rank : int
        Number of singular triplets kept (at most ``min(m, n)``).
    **kwargs
        Passed to :func:`low_rank_blocks`.

    Returns
    -------
    U : ndarray of shape (..., m, k)
    s : ndarray of shape (..., k)
        Singular values, in decreasing order, real.
    Vh : ndarray of shape (..., k, n)

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly._kernels import truncated_svd
    >>> A = np.random.default_rng(0).normal(size=(3, 6, 5))
    >>> U, s, Vh = truncated_svd(A, 2)
    >>> np.allclose(s, np.linalg.svd(A, compute_uv=False)[:, :2])
    True
    """
    U, R = low_rank_blocks(blocks, rank, **kwargs)
    s = np.linalg.norm(R, axis=-1)
    safe = np.where(s > 0, s, 1)
    Vh = R / safe[..., None]
    return U, s.astype(blocks.real.dtype), Vh


# ----------------------------------------------------------------------------
# Independent work in chunks (joblib)
# ----------------------------------------------------------------------------


def map_chunks(func, arrays, n_jobs=None, *, min_chunk=1):
    """Apply ``func`` to chunks of ``arrays`` along axis 0, concatenating results.

    With ``n_jobs`` resolving to one job (``None`` outside a
    ``joblib.parallel_config`` context), ``func`` runs once on the whole
    arrays. Otherwise the leading axis is cut into one chunk per job and the
    chunks run through scikit-learn's ``Parallel`` (so the joblib backend and
    configuration propagate, Dask included), with BLAS limited to one thread
    per worker. ``func`` returns an array or a tuple of arrays, each with the
    chunk's leading axis.
    """
    total = arrays[0].shape[0]
    jobs = effective_n_jobs(n_jobs)
    n_chunks = max(1, min(jobs, total // max(1, min_chunk)))
    if n_chunks == 1:
        return func(*arrays)
    bounds = np.linspace(0, total, n_chunks + 1).astype(int)
    with threadpool_limits(limits=1, user_api="blas"):
        parts = Parallel(n_jobs=n_jobs, prefer="threads")(
            delayed(func)(*(arr[lo:hi] for arr in arrays))
            for lo, hi in zip(bounds[:-1], bounds[1:])
        )
    if isinstance(parts[0], tuple):
        return tuple(np.concatenate(p, axis=0) for p in zip(*parts))
    return np.concatenate(parts, axis=0)
