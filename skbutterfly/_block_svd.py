"""Batched truncated SVD of many equal-shape blocks.

Layer 1 (kernels): pure functions on arrays.
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import numpy as np

from skbutterfly._scaling import scale_pow2, scaling_exponent

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


def _ritz_from_projection(Q, W, k):
    """Best rank-``k`` factors inside span ``Q``, given ``W = Q^H B``.

    Returns ``(U, R)`` with orthonormal ``U`` (in span Q) and ``R = U^H B``.
    """
    if W.shape[-2] == k == 1:
        return Q, W
    _, E = _top_eigh(W @ _herm(W), k)
    return Q @ E, _herm(E) @ W


def _gram_route(B, k):
    m, n = B.shape[-2:]
    if m <= n:
        _, Q = _top_eigh(B @ _herm(B), k)
        return _ritz_from_projection(Q, _herm(Q) @ B, k)
    _, Q = _top_eigh(_herm(B) @ B, k)
    V, Rh = _ritz_from_projection(Q, _herm(Q) @ _herm(B), k)
    # The columns of B @ V = Rh^H are orthogonal: normalise them into U.
    s = np.linalg.norm(Rh, axis=-1)
    safe = np.where(s > 0, s, 1)
    return _herm(Rh) / safe[..., None, :], s[..., :, None] * _herm(V)


def _orthonormal_basis(Y):
    """Orthonormal basis of the columns of every ``Y`` (normalisation if one)."""
    if Y.shape[-1] == 1:
        norm = np.linalg.norm(Y, axis=-2, keepdims=True)
        return Y / np.where(norm > 0, norm, 1)
    return np.linalg.qr(Y)[0]


def _times(B, X):
    """``B @ X`` for a stack ``B`` and a stack or a single matrix ``X``.

    A shared ``X`` is one large product; a single complex column goes
    through ``einsum``: NumPy's ``matmul`` misses BLAS there (several times
    slower).
    """
    if X.ndim == 2 and B.flags.c_contiguous:
        return (B.reshape(-1, B.shape[-1]) @ X).reshape(*B.shape[:-1], X.shape[-1])
    if X.shape[-1] == 1 and B.dtype.kind == "c":
        return np.einsum("...ij,...j->...i", B, X[..., 0])[..., None]
    return B @ X


def _project(Q, B):
    """``Q^H @ B`` for stacks, without a conjugate copy of ``B``."""
    if Q.shape[-1] == 1 and B.dtype.kind == "c":
        return np.einsum("...i,...ij->...j", np.conj(Q[..., 0]), B)[..., None, :]
    return _herm(Q) @ B


def _block_energy(W, k):
    """Energy of every block: the sum of the top-``k`` eigenvalues of W W^H."""
    if W.shape[-2] == k:
        return _block_sq_norms(W)
    return _top_eigh(W @ _herm(W), k)[0].sum(axis=-1)


def _parts(B):
    """Real views of ``B``: ``(B,)`` if real, ``(B.real, B.imag)`` if complex."""
    return (B.real, B.imag) if B.dtype.kind == "c" else (B,)


def _block_sq_norms(B):
    """Squared Frobenius norm of every block, without a copy of ``B``."""
    return sum(np.einsum("...ij,...ij->...", P, P) for P in _parts(B))


def _subspace_route(B, k, max_iter, tol, oversampling):
    """Randomized subspace (power) iteration on the column space of each block.

    Only small ``(m, w)`` and ``(w, n)`` arrays are formed besides ``B``;
    ``B^H Q`` is computed as ``(Q^H B)^H`` so that no conjugate copy of ``B``
    is made. A block stops iterating when one iteration gains at most ``tol``
    times its remaining squared error, or at rounding level: its error is
    then within a factor about ``1 + tol`` of the optimum, and exact
    rank-``k`` blocks stop after two products. Each block's result depends
    on that block alone, so chunking the stack changes nothing.
    """
    lead, (m, n) = B.shape[:-2], B.shape[-2:]
    B = B.reshape(-1, m, n)
    width = min(k + oversampling, m, n)
    rng = np.random.default_rng(_SKETCH_SEED)
    omega = rng.standard_normal((n, width)).astype(B.dtype)
    total = _block_sq_norms(B)
    floor = 64 * np.finfo(B.dtype).eps * total
    Q = _orthonormal_basis(_times(B, omega))
    W = _project(Q, B)
    captured = _block_energy(W, k)
    # Converged blocks keep their result; the stack is compacted (copied)
    # only once at most a quarter of it is still iterating, which bounds the
    # extra memory by a fraction of B.
    live = np.ones(B.shape[0], dtype=bool)
    index, sub = np.arange(B.shape[0]), B
    for _ in range(max_iter):
        Qa = _orthonormal_basis(_times(sub, _herm(W[index])))
        Wa = _project(Qa, sub)
        gained = _block_energy(Wa, k)
        update = live[index]
        done = gained - captured[index] <= (
            tol * np.maximum(total[index] - gained, 0.0) + floor[index]
        )
        target = index[update]
        Q[target], W[target] = Qa[update], Wa[update]
        captured[target] = gained[update]
        live[index[update & done]] = False
        remaining = int(live[index].sum())
        if remaining == 0:
            break
        if 4 * remaining <= index.size:
            index = index[live[index]]
            sub = B[index]
    U, R = _ritz_from_projection(Q, W, k)
    return U.reshape(*lead, m, -1), R.reshape(*lead, -1, n)


# The Gram route is exact and cheapest when a side is short or the rank a
# large part of it: sides up to _GRAM_SIDE, or up to _GRAM_RANK_RATIO * k.
_GRAM_SIDE = 16
_GRAM_RANK_RATIO = 4

# Name -> function(blocks, k, *, max_iter, tol, oversampling) -> (U, R).
ROUTES = {
    "gram": lambda B, k, **_: _gram_route(B, k),
    "subspace": lambda B, k, *, max_iter, tol, oversampling: _subspace_route(
        B, k, max_iter, tol, oversampling
    ),
}


def _choose_route(m, n, k, tol):
    """The route of ``(m, n)`` blocks at rank ``k``: ``"gram"`` or ``"subspace"``."""
    if tol == 0 or min(m, n) <= max(_GRAM_SIDE, _GRAM_RANK_RATIO * k):
        return "gram"
    return "subspace"


def low_rank_blocks(blocks, rank, *, max_iter=30, tol=None, oversampling=2):
    """Best rank-``rank`` approximation of every block of a stack.

    Picks the exact route by block size: the Gram matrix of the short side
    with an eigen-decomposition and a Rayleigh-Ritz refinement when a side is
    short (or the rank is a large part of it), randomized subspace iteration
    otherwise (see ``tol``). Exact low-rank blocks are recovered to machine
    precision by both routes.

    Parameters
    ----------
    blocks : ndarray of shape (..., m, n)
        Stack of blocks (real or complex).
    rank : int
        Target rank; ``k = min(rank, m, n)`` factors are returned.
    max_iter : int, default=30
        Maximal number of subspace iterations (large blocks only).
    tol : float, default=None
        Subspace iteration stops, block by block, when one iteration
        increases the block's captured energy :math:`\\|U^H B\\|_F^2` by at
        most ``tol`` times its remaining squared error
        :math:`\\|B\\|_F^2 - \\|U^H B\\|_F^2` (each block's result depends
        on that block alone, so chunking the stack changes nothing).
        ``None`` means ``100 * eps`` of the dtype: run to convergence (or
        ``max_iter``); ``0`` takes the Gram route whatever
        the size (exact, but ``O(m n min(m, n))`` per block).
    oversampling : int, default=2
        Extra columns of the subspace iteration: convergence goes like
        :math:`(\\sigma_{k+p+1} / \\sigma_k)^2` per iteration with ``p``
        extra columns, so they pay off on flat spectra; ``0`` with rank one is
        plain power iteration (cheapest per iteration).

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
    >>> from skbutterfly._block_svd import low_rank_blocks
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
    # Gram matrices square the entries: bring extreme magnitudes near one by
    # an exact power of two (U is unchanged, R scales back).
    shift = scaling_exponent(blocks)
    blocks = scale_pow2(blocks, -shift)
    solve = ROUTES[_choose_route(m, n, k, tol)]
    U, R = solve(blocks, k, max_iter=max_iter, tol=tol, oversampling=oversampling)
    if shift:
        R = scale_pow2(R, shift)
    return U, R


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
    >>> from skbutterfly._block_svd import truncated_svd
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
