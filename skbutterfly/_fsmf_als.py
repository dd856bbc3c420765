"""Alternating least squares for intractable FSMF instances: starts and restarts.

Layer 3 (algorithms).
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause


import numpy as np
import scipy.sparse as sp
from sklearn.utils import check_random_state

from skbutterfly._fsmf_exact import exact_factorize
from skbutterfly._parallel import map_chunks
from skbutterfly._support_analysis import (
    GATHER_LIMIT,
    analyze_checked,
    overlapping_pairs,
)

# ----------------------------------------------------------------------------
# Alternating least squares
# ----------------------------------------------------------------------------


def _product(W, H):
    """``W @ H``, through a sparse product when ``W`` is sparse enough."""
    if np.count_nonzero(W) < 0.1 * W.size:
        return np.asarray(sp.csr_array(W) @ H)
    return W @ H


def squared_error(A, W, H):
    residual = (A - _product(W, H)).ravel()
    return float(np.vdot(residual, residual).real)


def _padded_sizes(sizes):
    """Common sizes the row problems are padded to, one batched solve per size.

    All rows share the largest size when that costs little (a solve is cubic
    in its size); otherwise sizes are rounded up a geometric grid of ratio
    ``2**(1/3)``, which bounds the number of batches by ``3 * log2(max size)``
    and the wasted work by a factor 2.
    """
    largest = int(sizes.max(initial=0))
    cubes = sizes.astype(np.float64) ** 3
    if sizes.size * float(largest) ** 3 <= max(2 * cubes.sum(), GATHER_LIMIT):
        return np.full_like(sizes, largest)
    grid = np.ceil(2.0 ** (np.ceil(3 * np.log2(np.maximum(sizes, 1))) / 3))
    return np.minimum(grid.astype(sizes.dtype), largest)


def _solve_rows(A, F, mask):
    """Rows ``X[i]`` minimising ``||A[i] - X[i] F||`` on their supports ``mask[i]``.

    Each row is an independent least-squares problem on the coordinates
    :math:`S_i`; its normal equations use the Gram matrix
    :math:`G_{S_i S_i}` of ``F``, with a Tikhonov term of relative size
    ``10 * eps`` that keeps every solve finite when ``F`` is rank-deficient
    (LU-type instances drift towards such points). Rows are solved in
    batches of equal padded size; padding coordinates get an identity
    block and a zero right-hand side, so their solution is zero.
    """
    G = F @ F.conj().T
    B = A @ F.conj().T
    eps = np.finfo(A.dtype).eps
    lam = 10 * eps * float(np.abs(np.diagonal(G)).max()) + np.finfo(A.dtype).tiny
    X = np.zeros((A.shape[0], F.shape[0]), dtype=A.dtype)
    sizes = mask.sum(axis=1)
    padded = _padded_sizes(sizes)
    for s in np.unique(padded[sizes > 0]):
        rows = np.flatnonzero((padded == s) & (sizes > 0))
        valid = np.arange(s)[None, :] < sizes[rows][:, None]
        idx = np.zeros((rows.size, s), dtype=np.int64)
        idx[valid] = np.nonzero(mask[rows])[1]
        step = max(1, GATHER_LIMIT // (s * s))
        for lo in range(0, rows.size, step):
            part, cols, ok = (
                rows[lo : lo + step],
                idx[lo : lo + step],
                valid[lo : lo + step],
            )
            both = ok[:, :, None] & ok[:, None, :]
            gram = np.where(both, G[cols[:, :, None], cols[:, None, :]], 0)
            diagonal = np.where(ok, lam, 1).astype(gram.dtype)
            gram[:, np.arange(s), np.arange(s)] += diagonal
            rhs = np.where(ok, B[part[:, None], cols], 0)
            # x G = b for a row vector x is G^T x^T = b^T.
            x = np.linalg.solve(np.swapaxes(gram, 1, 2), rhs[..., None])[..., 0]
            X[np.broadcast_to(part[:, None], cols.shape)[ok], cols[ok]] = x[ok]
    return X


def _balance(W, H):
    """Rescale each column of W against the row of H to equal norms."""
    wn = np.linalg.norm(W, axis=0)
    hn = np.linalg.norm(H, axis=1)
    both = (wn > 0) & (hn > 0)
    scale = np.ones_like(wn)
    scale[both] = np.sqrt(hn[both] / wn[both])
    return W * scale.astype(W.real.dtype), H / scale.astype(H.real.dtype)[:, None]


def _als(A, S_W, S_H, W, H, max_iter, tol):
    """Alternating exact least squares from ``(W, H)``; monotone, always finite.

    Stops when the relative decrease of the squared error falls below
    ``tol``, when the error reaches rounding level, or after ``max_iter``
    iterations. Returns ``W, H, squared error, iterations``.
    """
    floor = (np.finfo(A.dtype).eps * np.linalg.norm(A)) ** 2
    loss = squared_error(A, W, H)
    n_iter = 0
    while n_iter < max_iter:
        n_iter += 1
        W_new = _solve_rows(A, H, S_W)
        H_new = _solve_rows(A.T, W_new.T, S_H.T).T
        W_new, H_new = _balance(W_new, H_new)
        new = squared_error(A, W_new, H_new)
        if not np.isfinite(new) or new > loss:
            break
        decrease = loss - new
        W, H, loss = W_new, H_new, new
        if decrease <= tol * loss or loss <= floor:
            break
    return W, H, loss, n_iter


def _random_start(A, S_W, S_H, rng):
    def draw(mask):
        values = rng.standard_normal(mask.shape)
        if A.dtype.kind == "c":
            values = values + 1j * rng.standard_normal(mask.shape)
        return (values * mask).astype(A.dtype)

    W, H = draw(S_W), draw(S_H)
    norm = np.linalg.norm(_product(W, H))
    if norm > 0:
        scale = np.sqrt(np.linalg.norm(A) / norm).astype(A.real.dtype)
        W, H = W * scale, H * scale
    return W, H


def _relaxation_start(A, analysis, rng):
    """Exact solution on a greedy set of pairwise disjoint classes.

    Classes are taken by decreasing energy of ``A`` on their rectangle,
    skipping those that meet a class already taken; the columns of the
    skipped classes get small random values so that ALS can move them.
    """
    rows, cols = analysis.class_rows, analysis.class_cols
    power = np.square(np.abs(A)).astype(np.float64)
    energy = ((rows.astype(np.float64) @ power) * cols).sum(axis=1)
    p, q = overlapping_pairs(rows, cols)
    n_classes = analysis.n_classes
    conflicts = sp.csr_array(
        (np.ones(2 * p.size), (np.r_[p, q], np.r_[q, p])), shape=(n_classes,) * 2
    )
    blocked = np.zeros(n_classes, dtype=bool)
    chosen = np.zeros(n_classes, dtype=bool)
    # Greedy maximal independent set: inherently sequential over classes.
    for c in np.argsort(-energy, kind="stable"):
        if not blocked[c]:
            chosen[c] = True
            blocked[
                conflicts.indices[conflicts.indptr[c] : conflicts.indptr[c + 1]]
            ] = True
    keep = np.isin(analysis.labels, np.flatnonzero(chosen))
    S_W, S_H = analysis.rows.T, analysis.cols
    sub = analyze_checked(S_W & keep[None, :], S_H & keep[:, None])
    W, H, _ = exact_factorize(A, sub, None)
    noise_W, noise_H = _random_start(A, S_W, S_H, rng)
    small = 1e-3
    W = np.where(keep[None, :], W, small * noise_W)
    H = np.where(keep[:, None], H, small * noise_H)
    return W, H



def best_als_run(
    A, S_W, S_H, analysis, max_iter, tol, n_restarts, random_state, n_jobs
):
    """ALS from the relaxation and random starts; the best ``(W, H, n_iter)``."""
    rng = check_random_state(random_state)
    seeds = rng.randint(np.iinfo(np.int32).max, size=n_restarts)

    def run_starts(chunk):
        results = []
        for start in chunk:
            start_rng = np.random.default_rng(seeds[start])
            if start == 0:
                W0, H0 = _relaxation_start(A, analysis, start_rng)
            else:
                W0, H0 = _random_start(A, S_W, S_H, start_rng)
            results.append(_als(A, S_W, S_H, W0, H0, max_iter, tol))
        Ws, Hs, losses, iters = zip(*results)
        return np.stack(Ws), np.stack(Hs), np.array(losses), np.array(iters)

    Ws, Hs, losses, iters = map_chunks(run_starts, (np.arange(n_restarts),), n_jobs)
    best = int(np.argmin(losses))
    return Ws[best], Hs[best], int(iters[best])
