"""One split of the hierarchical factorization, on 4-D values.

Layer 3 (algorithms), under :func:`~skbutterfly.butterfly_factorize`: the
root target's blocks gathered from the matrix, the two-factor step (one
batched rank-``r`` approximation of all class blocks) and the
orthonormalisation of a pair's class blocks.
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import functools
from functools import partial

import numpy as np

from skbutterfly._block_svd import low_rank_blocks
from skbutterfly._ks import class_blocks, merge_blocks, pair_dims
from skbutterfly._parallel import map_chunks
from skbutterfly._patterns import fuse_patterns

# Below this many blocks a split runs as one call (joblib would cost more).
MIN_CHUNK = 256


def herm(X):
    return np.conj(np.swapaxes(X, -1, -2))


def thin_qr(M):
    """``M = Q T`` for a stack of ``(m, r)`` blocks, ``Q`` of ``M``'s shape.

    With ``m < r`` the last ``r - m`` columns of ``Q`` (rows of ``T``) are
    zero. Rank one is a normalisation (zero columns stay zero).
    """
    m, r = M.shape[-2:]
    if r == 1:
        norm = np.linalg.norm(M, axis=-2, keepdims=True)
        return M / np.where(norm > 0, norm, 1), norm.astype(M.dtype)
    Q, T = np.linalg.qr(M)
    if m < r:
        Q = np.concatenate([Q, np.zeros((*Q.shape[:-1], r - m), Q.dtype)], axis=-1)
        T = np.concatenate([T, np.zeros((*T.shape[:-2], r - m, r), T.dtype)], -2)
    return Q, T


def left_normalize(K1, K2):
    """Orthonormalise the class blocks of ``K1``, pushing ``T`` into ``K2``."""
    U, V = class_blocks(K1, K2)
    Q, T = thin_qr(U)
    return merge_blocks(Q, T @ V, K1.shape, K2.shape)


def right_normalize(K1, K2):
    """Orthonormalise the class blocks of ``K2`` (rows), pushing into ``K1``."""
    U, V = class_blocks(K1, K2)
    Q, T = thin_qr(herm(V))
    return merge_blocks(U @ herm(T), herm(Q), K1.shape, K2.shape)


def split_factors(blocks, rank, orthonormalize, svd_tol, n_jobs):
    """Class blocks of the two factors of a split, from its stacked blocks.

    ``blocks`` has shape ``(n_classes, b1, c2)``; returns ``U`` of shape
    ``(n_classes, b1, rank)`` and ``V`` of shape ``(n_classes, rank, c2)``:
    ``U`` (orthonormal) and ``U^H B`` with orthonormalisation, ``U sqrt(S)``
    and ``sqrt(S) V^H`` without. Each block's result depends on that block
    alone, so any subset of the classes can be solved apart.
    """
    # Plain power steps: the stopping rule bounds the error whatever the
    # convergence rate, and exact blocks converge at the first step.
    solve = partial(low_rank_blocks, rank=rank, tol=svd_tol, oversampling=0)
    U, R = map_chunks(solve, (blocks,), n_jobs, min_chunk=MIN_CHUNK)
    if not orthonormalize:
        root = np.sqrt(np.linalg.norm(R, axis=-1))
        U = U * root[..., None, :].astype(U.dtype)
        R = R / np.where(root > 0, root, 1)[..., None].astype(R.dtype)
    k = U.shape[-1]
    if k < rank:
        U = np.concatenate([U, np.zeros((*U.shape[:-1], rank - k), U.dtype)], -1)
        R = np.concatenate(
            [R, np.zeros((R.shape[0], rank - k, R.shape[-1]), R.dtype)], -2
        )
    return U, R


def split_step(blocks, left, right, orthonormalize, svd_tol, n_jobs):
    """Two-factor step (Zheng et al., arXiv:2110.01235) on the stacked blocks of a node.

    ``blocks`` has shape ``(n_classes, b1, c2)`` in the order of
    :func:`split_blocks`. Returns the values of the left and the right
    factor (see :func:`split_factors`).
    """
    a1, b1, alpha, r, delta, c2, d2 = pair_dims(left, right)
    U, R = split_factors(blocks, r, orthonormalize, svd_tol, n_jobs)
    U = U.reshape(a1, delta, alpha, d2, b1, r)
    R = R.reshape(a1, delta, alpha, d2, r, c2)
    return merge_blocks(U, R, left, right)


def gather_root_blocks(A, perm, row_perm, left, right, select=None):
    """Blocks of the root split, gathered from ``A`` in one pass.

    The root target is ``A_padded[row_perm][:, perm]`` (pattern
    ``(1, M, N, 1)``); this builds its stacked blocks (as
    ``split_blocks(...).reshape(-1, b1, c2)`` would) without forming the
    padded or the permuted matrix. Rows and columns past ``A``'s shape are
    zeros. ``select`` (indices into that stack) gathers only those blocks.
    """
    _, b1, alpha, _, delta, c2, _ = pair_dims(left, right)
    m, n = A.shape
    in_order = select is None and perm is None and row_perm is None
    if in_order and A.shape == (b1 * delta, alpha * c2):
        # Rows in order, no padding: one strided copy (no gathered indices).
        blocks = A.reshape(b1, delta, alpha, c2).transpose(1, 2, 0, 3)
        return blocks.copy().reshape(-1, b1, c2)
    rows = np.arange(b1)[None, :] * delta + np.arange(delta)[:, None]
    if row_perm is not None:
        rows = row_perm[rows]
    cols = (np.arange(alpha * c2) if perm is None else perm).reshape(alpha, c2)
    if select is None:
        select = np.arange(delta * alpha)
    rows, cols = rows[select // alpha], cols[select % alpha]
    rows_ok, cols_ok = rows < m, cols < n
    blocks = A[np.minimum(rows, m - 1)[:, :, None], np.minimum(cols, n - 1)[:, None, :]]
    if not (rows_ok.all() and cols_ok.all()):
        blocks *= rows_ok[:, :, None] & cols_ok[:, None, :]
    return blocks


def fused_range(patterns, start, stop):
    return functools.reduce(fuse_patterns, patterns[start : stop + 1])
