"""The exact FSMF solver of the tractable cases: one batched SVD per block shape.

Layer 3 (algorithms).
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import numpy as np

from skbutterfly._block_svd import _block_sq_norms, truncated_svd
from skbutterfly._parallel import map_chunks

# Subspace iterations allowed to the batched truncated SVD of large blocks.
SVD_MAX_ITER = 1000

# A certified error is within CERTIFICATE_RTOL unit roundoffs (of the working
# dtype) times the norm of A of the optimum computed from the spectrum.
CERTIFICATE_RTOL = 16
# Blocks whose iterative SVD misses their optimum by more are redone exactly.
REDO_RTOL = 2


def _class_members(analysis, width):
    """Table ``(n_classes, width)`` of the first columns of each class (-1 pad)."""
    labels = analysis.labels
    order = np.argsort(labels, kind="stable")
    order = order[labels[order] >= 0]
    sizes = analysis.class_sizes
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    j = np.arange(width)
    valid = j[None, :] < sizes[:, None]
    members = np.full((len(sizes), width), -1, dtype=np.int64)
    members[valid] = order[(starts[:, None] + j[None, :])[valid]]
    return members


def _ownership(analysis, shape):
    """For each entry of the complete-class area, the first complete class on it."""
    m, n = shape
    owner = np.full(m * n, np.iinfo(np.int64).max, dtype=np.int64)
    for ids, row_idx, col_idx in _shape_groups(
        analysis, np.flatnonzero(analysis.complete)
    ):
        flat = row_idx[:, :, None] * n + col_idx[:, None, :]
        np.minimum.at(owner, flat.ravel(), np.repeat(ids, flat[0].size))
    return owner.reshape(m, n)


def _shape_groups(analysis, ids):
    """Yield ``(ids, row_idx, col_idx)``: classes of one block shape, their indices."""
    rows, cols = analysis.exact_rows, analysis.exact_cols
    shapes = np.stack([rows[ids].sum(axis=1), cols[ids].sum(axis=1)], axis=1)
    distinct, inverse = np.unique(shapes, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    for g, (br, bc) in enumerate(distinct):
        if br == 0 or bc == 0:
            continue
        sel = ids[inverse == g]
        if sel.size == rows.shape[0]:  # one shape for all: no gathered copy
            row_idx, col_idx = np.nonzero(rows)[1], np.nonzero(cols)[1]
        else:
            row_idx, col_idx = np.nonzero(rows[sel])[1], np.nonzero(cols[sel])[1]
        yield sel, row_idx.reshape(sel.size, br), col_idx.reshape(sel.size, bc)


def _exact_svd_where_unconverged(blocks, lossy, optimal, svd):
    """Replace, in place, the truncated SVDs of ``blocks[lossy]`` that miss the optimum.

    ``optimal`` is each lossy block's optimal error (its discarded
    spectrum). The iterative route of the block SVD stops on a rule that can
    fire early on slowly decaying spectra; a block whose residual exceeds its
    optimum by more than ``REDO_RTOL`` unit roundoffs times its norm is
    recomputed by a full LAPACK SVD, so that the error certificate holds
    (with a margin: its tolerance is ``CERTIFICATE_RTOL``).
    """
    U, s, Vh = svd
    ids = np.flatnonzero(lossy)
    k = s.shape[1]
    residual = blocks[ids] - (U[ids] * s[ids, None, :].astype(U.dtype)) @ Vh[ids]
    error = np.sqrt(_block_sq_norms(residual))
    norm = np.sqrt(_block_sq_norms(blocks[ids]))
    eps = np.finfo(blocks.dtype).eps
    redo = ids[error - optimal > REDO_RTOL * eps * norm]
    if redo.size:
        u, sv, vh = np.linalg.svd(blocks[redo], full_matrices=False)
        # Singular triplets past a class's size are dropped below (keep).
        U[redo], s[redo], Vh[redo] = u[..., :k], sv[..., :k], vh[..., :k, :]


def exact_factorize(A, analysis, n_jobs):
    """Exact algorithm (Le et al., arXiv:2112.00386): W, H and the optimal error."""
    m, n = A.shape
    r = analysis.rows.shape[0]
    W = np.zeros((m, r), dtype=A.dtype)
    H = np.zeros((r, n), dtype=A.dtype)
    n_classes = analysis.n_classes
    sizes = analysis.class_sizes
    owner = _ownership(analysis, A.shape) if analysis.condition != "disjoint" else None
    fitted = np.zeros((m, n), dtype=bool)
    discarded = 0.0
    for ids, row_idx, col_idx in _shape_groups(analysis, np.arange(n_classes)):
        br, bc = row_idx.shape[1], col_idx.shape[1]
        block_rows, block_cols = row_idx[:, :, None], col_idx[:, None, :]
        blocks = A[block_rows, block_cols]
        fitted[block_rows, block_cols] = True
        if owner is not None:
            # Complete classes share their area: each entry goes to one owner.
            mine = (owner[block_rows, block_cols] == ids[:, None, None]) | (
                ~analysis.complete[ids][:, None, None]
            )
            blocks = np.where(mine, blocks, 0)
        keep = np.minimum(sizes[ids], min(br, bc))
        k = int(keep.max())
        # Certification needs converged subspaces, not the kernel's default cap.
        U, s, Vh = map_chunks(
            lambda B, k=k: truncated_svd(B, k, max_iter=SVD_MAX_ITER),
            (blocks,),
            n_jobs,
        )
        if (keep < min(br, bc)).any():
            lossy = keep < min(br, bc)
            lossy_blocks = blocks[lossy]
            if br < bc:  # LAPACK is faster on tall blocks; same spectrum
                lossy_blocks = np.swapaxes(lossy_blocks, 1, 2)
            spectrum = np.linalg.svd(lossy_blocks, compute_uv=False)
            tail = np.arange(spectrum.shape[1])[None, :] >= keep[lossy][:, None]
            tail_energy = np.where(tail, np.square(spectrum, dtype=np.float64), 0)
            discarded += float(tail_energy.sum())
            _exact_svd_where_unconverged(
                blocks, lossy, np.sqrt(tail_energy.sum(axis=1)), (U, s, Vh)
            )
        j = np.arange(k)
        valid = j[None, :] < keep[:, None]
        members = _class_members(analysis, k)[ids]
        c, jj = np.nonzero(valid)
        root = np.sqrt(s[c, jj])
        cols_k = members[c, jj][:, None]
        W.ravel()[row_idx[c] * r + cols_k] = U[c, :, jj] * root[:, None]
        H.ravel()[cols_k * n + col_idx[c]] = Vh[c, jj, :] * root[:, None]
    outside = np.abs(A[~fitted])
    outside = float(np.vdot(outside, outside))
    return W, H, float(np.sqrt(discarded + outside))
