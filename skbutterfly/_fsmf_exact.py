"""The exact FSMF solver of the tractable cases: one batched SVD per block shape.

Layer 3 (algorithms).
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause


import numpy as np

from skbutterfly._block_svd import truncated_svd
from skbutterfly._parallel import map_chunks

# Subspace iterations allowed to the batched truncated SVD of large blocks.
SVD_MAX_ITER = 1000





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
            discarded += float(np.sum(np.square(spectrum, dtype=np.float64)[tail]))
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
