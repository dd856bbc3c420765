"""Alternating least squares for intractable FSMF instances: starts and restarts.

Layer 3 (algorithms).
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause


import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

from skbutterfly._fsmf_exact import exact_factorize
from skbutterfly._parallel import map_chunks
from skbutterfly._support_analysis import (
    GATHER_LIMIT,
    analyze_checked,
    overlapping_pairs,
)
from skbutterfly._warnings import external_stacklevel

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


# A first start this close (relative error) ends the search: the others
# could only gain digits below what a fit is trusted to.
_GOOD_ENOUGH = 1e-10


def _rounding_floor(A):
    """Squared error at rounding level: nothing below it is worth iterating for.

    ``max(m, n) * eps * ||A||_F``, the size of the rounding errors of one
    elimination or one least-squares pass over ``A``.
    """
    return float(max(A.shape) * np.finfo(A.dtype).eps * np.linalg.norm(A)) ** 2


def _als(A, S_W, S_H, W, H, max_iter, tol, floor=None, report=None):
    """Alternating exact least squares from ``(W, H)``; monotone, always finite.

    Stops when the relative decrease of the squared error falls below
    ``tol``, when the squared error reaches ``floor`` (default: rounding
    level), when an iteration no longer decreases it, or after ``max_iter``
    iterations. Returns ``W, H, squared error, iterations, converged``
    (``False`` only when ``max_iter`` ran out first); ``report(n_iter,
    loss)`` is called after every iteration.
    """
    floor = _rounding_floor(A) if floor is None else floor
    loss = squared_error(A, W, H)
    n_iter, converged = 0, loss <= floor
    while n_iter < max_iter and not converged:
        n_iter += 1
        W_new = _solve_rows(A, H, S_W)
        H_new = _solve_rows(A.T, W_new.T, S_H.T).T
        W_new, H_new = _balance(W_new, H_new)
        new = squared_error(A, W_new, H_new)
        if not np.isfinite(new) or new > loss:
            converged = True
            break
        decrease = loss - new
        W, H, loss = W_new, H_new, new
        if report is not None:
            report(n_iter, loss)
        converged = decrease <= tol * loss or loss <= floor
    return W, H, loss, n_iter, converged


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


def _elimination_start(A, S_W, S_H):
    """LU factors without pivoting when the supports hold the triangles, else None.

    With ``k = min(m, n, r)``, Gaussian elimination without pivoting (unit
    lower ``L`` of shape ``(m, k)``, upper ``U`` of shape ``(k, n)``, the
    Doolittle form; ``k < min(m, n)`` stops early, leaving the Schur
    complement as the error) fits supports that contain the lower triangle
    in ``S_W[:, :k]`` and the upper one in ``S_H[:k]``. A matrix with an LU
    factorization is then reproduced exactly, where ALS alone may stall far
    away (the set of products ``L U`` is not closed). ``None`` when the
    supports do not hold the triangles or a pivot is zero (no such LU).
    """
    m, n = A.shape
    k = min(m, n, S_W.shape[1])
    lower = np.tri(m, k, dtype=bool)
    upper = ~np.tri(k, n, k=-1, dtype=bool)
    if not (np.all(S_W[:, :k] | ~lower) and np.all(S_H[:k] | ~upper)):
        return None
    L = np.zeros((m, S_W.shape[1]), dtype=A.dtype)
    U = np.array(A, copy=True)
    scale = float(np.abs(A).max())
    for j in range(k):
        pivot = U[j, j]
        if not abs(pivot) > np.finfo(A.dtype).eps * scale:
            return None
        L[j:, j] = U[j:, j] / pivot
        # One rank-one update per step (a Python loop over the k pivots).
        U[j + 1 :, j:] -= L[j + 1 :, j, None] * U[j, None, j:]
    H = np.zeros((S_W.shape[1], n), dtype=A.dtype)
    H[:k] = np.where(upper, U[:k], 0)
    return L, H


def best_als_run(
    A, S_W, S_H, analysis, max_iter, tol, n_restarts, random_state, n_jobs, progress
):
    """ALS from several starts; the best ``(W, H, n_iter)``.

    The first start is Gaussian elimination (:func:`_elimination_start`)
    when it applies, else the relaxation; the others are random. A first
    start within a relative error of 1e-10 (or rounding level) ends the
    search. Emits a ``ConvergenceWarning`` when the retained start ran out
    of ``max_iter``.
    """
    rng = check_random_state(random_state)
    seeds = rng.randint(np.iinfo(np.int32).max, size=n_restarts)
    norm = float(np.linalg.norm(A)) or 1.0
    elimination = _elimination_start(A, S_W, S_H)
    floor = _rounding_floor(A)
    good_enough = max(floor, (_GOOD_ENOUGH * norm) ** 2)

    def run_starts(chunk):
        results = []
        for start in chunk:
            start_rng = np.random.default_rng(seeds[start])
            start_floor = floor
            if start == 0 and elimination is not None:
                kind, (W0, H0) = "Gaussian elimination", elimination
                # Exact up to the growth of its pivots: refine only a poor one.
                start_floor = good_enough
            elif start == 0:
                kind, (W0, H0) = "relaxation", _relaxation_start(A, analysis, start_rng)
            else:
                kind, (W0, H0) = "random", _random_start(A, S_W, S_H, start_rng)

            def report(n_iter, loss, start=start):
                progress(
                    f"start {start + 1}: iteration {n_iter}, relative error "
                    f"{np.sqrt(loss) / norm:.3e}",
                    level=2,
                )

            result = _als(A, S_W, S_H, W0, H0, max_iter, tol, start_floor, report)
            progress(
                f"start {start + 1}/{n_restarts} ({kind}): {result[3]} iterations, "
                f"relative error {np.sqrt(result[2]) / norm:.3e}"
            )
            results.append(result)
        Ws, Hs, losses, iters, converged = zip(*results)
        return (
            np.stack(Ws),
            np.stack(Hs),
            np.array(losses),
            np.array(iters),
            np.array(converged),
        )

    first = run_starts([0])
    if n_restarts > 1 and first[2][0] > good_enough:
        rest = map_chunks(run_starts, (np.arange(1, n_restarts),), n_jobs)
        first = [np.concatenate(pair) for pair in zip(first, rest)]
    Ws, Hs, losses, iters, converged = first
    best = int(np.argmin(losses))
    if not converged[best]:
        warnings.warn(
            f"alternating least squares stopped at max_iter={max_iter} before "
            f"meeting tol={tol:g} (relative error {np.sqrt(losses[best]) / norm:.3e});"
            " increase max_iter or tol, or see 'Choosing a model' in the user guide.",
            ConvergenceWarning,
            stacklevel=external_stacklevel(),
        )
    return Ws[best], Hs[best], int(iters[best])
