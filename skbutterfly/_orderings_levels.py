"""The level-by-level least-squares search of the butterfly's two cluster trees.

Layer 3 (algorithms), pure functions on arrays.

The conventions (positions, groups, splits) are those of
:mod:`skbutterfly._orderings`. The trees are recovered level by level from
the matrix alone, for rank one, by least squares:

* every (row group, column group) block of the current level is kept as its
  rank-one compression (the leading singular value times the right singular
  vector): noise averages out in big groups and small entries weigh little;
* hypotheses for the new column groups: the row group of largest energy is
  paired with each other group and the pair that best splits every column
  group into two equal halves of rank one (balanced two-line fits, refined
  by alternating fits and reassignment) proposes a halving; so do the next
  anchors and their vote;
* for a hypothesis, the row groups whose compressed rows are proportional
  on the new column groups are paired first (sorted by a scale-invariant
  signature, ``O(N**2)`` for the level): if that leaves no residual, the
  level is solved; otherwise the row groups are paired at the least
  residual beyond rank one on the new column groups (mutual nearest
  neighbours, greedy completion, then swaps between pairs while one lowers
  the total, the worst pairs tried first; first on the columns the
  hypothesis decides firmly), the halves are refit with the pairs (the
  best-fitting half of them first; every balanced split of short groups is
  tried), and the rows matched again, until the pairs are stable; the
  hypothesis that leaves the least residual wins, and an exact one ends the
  level;
* unless every level was exact, the orderings are polished
  (:mod:`skbutterfly._orderings_polish`): the rows (then the columns) that
  fit their position worst are reassigned, then (rank one) whole subtrees
  are exchanged.

At block rank two, level 1 holds for any grouping (groups of 2 rows), so
level 2 (rows in fours, columns in quarters) is found first
(:func:`~skbutterfly._orderings_rank.level_two_groups`), then the levels
above as at rank one, with blocks compressed to rank two and pairs scored
by their energy beyond rank two.

Every step takes the best candidate, never a threshold, so an exact rank-one
butterfly is recovered to rounding, a noisy one to the noise, and any other
matrix still gets valid permutations. An exact level costs ``O(N**2)``
operations; a level that is not exact costs ``O(N**2 min(N, 1024))`` (the
pair scores, on up to 1024 columns); a constant number of ``N x N``
temporaries. This is the block-identification idea of Zheng, Puy,
Riccietti, Pérez and Gribonval (arXiv:2307.00820), with least-squares fits
and matching in place of their spectral clustering.
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import itertools
from functools import partial

import numpy as np

from skbutterfly._orderings_polish import polish_rows, polish_subtrees
from skbutterfly._orderings_rank import level_two_groups
from skbutterfly._permutations import bit_reversal_permutation

# Matchings of the rows (each followed by a refit of the column halves) per
# hypothesis, at most.
_ALTERNATIONS = 6

# Partners of an anchor kept after one cheap try each, the entries of the
# candidates' blocks screened at once (bounds the temporaries), and the
# columns of a level the try looks at (spread over its column groups, at
# least _SCREEN_GROUP_COLUMNS per group).
_SCREEN = 8
_SCREEN_ENTRIES = 2**18
_SCREEN_COLUMNS = 256
_SCREEN_GROUP_COLUMNS = 8

# Pairs of row groups needed before the first refit of a level trusts only
# the best-fitting half of them.
_MIN_TRUSTED_PAIRS = 8

# Column groups this short are split by trying every balanced split.
_EXHAUSTIVE = 8

# Random tries of the two-subspace split, and its refinement sweeps.
_SPLIT_TRIES = 2
_REFINE_SWEEPS = 3

# Largest difference of the signatures (of order one) of proportional rows
# paired by the exact fast path (rounding only; its result is then checked).
_PROPORTIONAL = 1e-8

# A level whose residual is below this fraction of the energy is exact (to
# the rounding of the eigenvalues that measure it): the remaining hypotheses
# are not tried.
_EXACT = 100 * np.finfo(np.float64).eps

# Anchor row groups per level: each, with its best partner, proposes one
# halving of the column groups.
_ANCHORS = 3

# Fraction of the columns (those the first split decides least) left out of
# the first matching of a level.
_UNTRUSTED = 0.5

# Column groups longer than this are sketched to this many random directions
# when scoring pairs of row groups (bounds the cost of the pair scores).
_SKETCH = 1024

# Entries of the temporaries of the pair scores computed at once.
_PAIR_CHUNK = 2**19

# Partners of each row group whose pair cost beyond the block rank is
# computed exactly (the others are bounded).
_EXACT_PARTNERS = 8

# Rounds of mutual-nearest-neighbour matching before the greedy rest, and
# the worst-fitting pairs whose swaps a matching sweep tries first.
_MATCH_ROUNDS = 8
_SWAP_ROWS = 64


def gram(Y):
    """``Y Y^H`` over the last axis, batched."""
    return Y @ np.conj(np.swapaxes(Y, -1, -2))


def _column_residuals(Y, mask, rank, energy=None):
    """Residual of each column of ``Y`` off the rank-``rank`` fit of the masked ones.

    ``Y`` is ``(..., d, m)`` and ``mask`` ``(..., m)``: the fit is the span
    of the ``rank`` leading left singular vectors of ``Y[..., mask]``.
    ``energy``, the squared norms of the columns, is computed if not given.
    """
    _, U = np.linalg.eigh(gram(Y * mask[..., None, :]))
    U = U[..., -rank:]
    if energy is None:
        energy = np.sum(np.abs(Y) ** 2, axis=-2)
    kept = np.sum(np.abs(np.conj(np.swapaxes(U, -1, -2)) @ Y) ** 2, axis=-2)
    return np.maximum(energy - kept, 0)


def _balanced(cost0, cost1):
    """Upper halves (``(..., m)`` booleans): the ``m / 2`` columns favouring fit 1."""
    m = cost0.shape[-1]
    order = np.argpartition(cost1 - cost0, m // 2 - 1, axis=-1)
    upper = np.zeros(cost0.shape, dtype=bool)
    np.put_along_axis(upper, order[..., : m // 2], True, axis=-1)
    return upper


def _refine_halves(Y, upper, rank, trusted=None, sweeps=_REFINE_SWEEPS):
    """Alternate rank-``rank`` fits of both halves and balanced reassignment.

    ``Y`` is ``(groups, batch, d, m)``: the columns of each batch item are
    split in two halves shared by all groups (the sum of their residuals is
    minimised); the first fits use the ``trusted`` columns only, if given.
    Returns the halves, the residual energy per batch item and the margin of
    each column (``cost1 - cost0``: negative where it belongs to the upper
    half).
    """
    fit = np.ones(upper.shape, dtype=bool) if trusted is None else trusted
    for _ in range(sweeps):
        cost0 = _column_residuals(Y, ~upper & fit, rank).sum(axis=0)
        cost1 = _column_residuals(Y, upper & fit, rank).sum(axis=0)
        upper = _balanced(cost0, cost1)
        fit = np.ones(upper.shape, dtype=bool)
    cost0 = _column_residuals(Y, ~upper, rank).sum(axis=0)
    cost1 = _column_residuals(Y, upper, rank).sum(axis=0)
    return upper, np.where(upper, cost1, cost0).sum(axis=-1), cost1 - cost0


def _exhaustive_halves(Y, rank):
    """The best balanced split of short column groups, by trying them all.

    ``Y`` is ``(groups, batch, d, m)`` with ``m <= _EXHAUSTIVE``; the split
    minimising the residuals summed over the groups is returned as the upper
    halves ``(batch, m)``.
    """
    m = Y.shape[-1]
    splits = np.zeros((0, m), dtype=bool)
    for lower in itertools.combinations(range(1, m), m // 2 - 1):
        mask = np.ones(m, dtype=bool)
        mask[[0, *lower]] = False
        splits = np.vstack([splits, mask])
    total = 0
    for half in (splits, ~splits):
        G = gram(Y[:, :, None] * half[:, None, :])  # (groups, batch, S, d, d)
        w = np.linalg.eigvalsh(G)
        total = total + np.maximum(w[..., : max(0, w.shape[-1] - rank)], 0).sum(
            axis=(0, -1)
        )
    return splits[np.argmin(total, axis=-1)]


def _split_halves(Y, rank, rng, tries=_SPLIT_TRIES, sweeps=_REFINE_SWEEPS):
    """Best balanced split of the columns of each ``Y[b]`` in two rank-``rank`` halves.

    ``Y`` is ``(batch, d, m)``. Each of ``tries * 2**(rank - 1)`` tries draws
    ``rank`` columns (by energy), fits their span, takes the ``m / 2``
    columns closest to it as one half and refines (``sweeps``); the try with
    the smallest residual is kept. An exact split is found whenever the
    drawn columns lie in one half (always for rank 1). Returns the upper
    halves ``(batch, m)``, the residuals ``(batch,)`` and the column margins
    (as :func:`_refine_halves`).
    """
    batch, d, m = Y.shape
    energy = np.sum(np.abs(Y) ** 2, axis=1)
    total = energy.sum(axis=1, keepdims=True)
    # One sorted array for all rows: row b's cumulative shares, plus b.
    cdf = (np.cumsum(energy, axis=1) / np.where(total > 0, total, 1)).ravel()
    cdf += np.repeat(np.arange(batch), m)
    best_upper, best_score = None, np.full(batch, np.inf)
    for _ in range(tries * 2 ** (rank - 1)):
        draws = rng.random((batch, rank)) + np.arange(batch)[:, None]
        picks = np.searchsorted(cdf, draws.ravel()).reshape(batch, rank)
        picks = np.clip(picks - m * np.arange(batch)[:, None], 0, m - 1)
        mask = np.zeros((batch, m), dtype=bool)
        np.put_along_axis(mask, picks, True, axis=1)
        near = _column_residuals(Y, mask, rank)
        far = np.where(mask, -1.0, near)
        upper, score, margin = _refine_halves(
            Y[None], _balanced(-far, far), rank, sweeps=sweeps
        )
        better = score < best_score
        if best_upper is None:
            best_upper, best_margin = upper, margin
        best_upper[better] = upper[better]
        best_margin[better] = margin[better]
        best_score = np.minimum(best_score, score)
    return best_upper, best_score, best_margin


def _screen_scores(Y, rank, rng):
    """Residual of a cheap two-halves fit of rank ``rank`` to each ``Y[b]``.

    ``Y`` is ``(batch, d, m)``. ``rank`` columns drawn by energy give the
    first subspace; the second is fitted to the columns weighted by their
    residual off the first (columns of the first half weigh nothing when
    they lie on it exactly), and each column pays its residual off the
    nearer subspace. The halves need not be balanced, so that a subset of
    the columns can be scored: the score of a true pair is the noise on it.
    """
    batch, d, m = Y.shape
    energy = np.sum(np.abs(Y) ** 2, axis=1)
    total = energy.sum(axis=1, keepdims=True)
    cdf = (np.cumsum(energy, axis=1) / np.where(total > 0, total, 1)).ravel()
    cdf += np.repeat(np.arange(batch), m)
    draws = rng.random((batch, rank)) + np.arange(batch)[:, None]
    picks = np.searchsorted(cdf, draws.ravel()).reshape(batch, rank)
    picks = np.clip(picks - m * np.arange(batch)[:, None], 0, m - 1)
    mask = np.zeros((batch, m), dtype=bool)
    np.put_along_axis(mask, picks, True, axis=1)
    near = _column_residuals(Y, mask, rank, energy)
    _, U = np.linalg.eigh(gram(Y * np.sqrt(near)[:, None, :]))
    kept = np.sum(np.abs(np.conj(np.swapaxes(U[..., -rank:], -1, -2)) @ Y) ** 2, axis=1)
    return np.minimum(near, np.maximum(energy - kept, 0)).sum(axis=1)


def _pair_costs(Z, rng):
    """Residual beyond rank one of every pair of row groups, over column groups.

    ``Z`` is ``(g, c, 1, n)``: the compressed rows of ``g`` row groups on
    ``c`` column groups. Entry ``(a, b)`` is the energy that the best
    rank-one fits of the ``c`` blocks ``[Z[a, k]; Z[b, k]]`` leave out (zero
    when the two groups merge into a group of the butterfly): the smallest
    eigenvalue ``(p q - |x|^2) / largest`` of each 2 x 2 Gram matrix
    ``[[p, x], [x*, q]]``. Column groups longer than ``_SKETCH`` are sketched
    first. Returns ``(g, g)`` with an infinite diagonal.
    """
    g, c, rho, n = Z.shape
    if n > _SKETCH:
        Z = Z @ (rng.standard_normal((n, _SKETCH)) / np.sqrt(_SKETCH))
    if rho > 1:
        return _pair_costs_rank(Z)
    V = np.moveaxis(Z[:, :, 0], 1, 0)  # (c, g, n)
    p = np.sum(np.abs(V) ** 2, axis=2)
    D = np.empty((g, g))
    step = max(1, _PAIR_CHUNK // (c * g))
    for lo in range(0, g, step):
        # Rows lo:hi against the groups from lo on (D is symmetric).
        hi = min(g, lo + step)
        cross = V[:, lo:hi] @ np.conj(np.swapaxes(V[:, lo:], 1, 2))
        cross = cross.real**2 + cross.imag**2 if np.iscomplexobj(cross) else cross**2
        pa, pb = p[:, lo:hi, None], p[:, None, lo:]
        top = np.subtract(pa, pb)
        top *= 0.5
        top **= 2
        top += cross
        np.sqrt(top, out=top)
        top += (pa + pb) / 2
        np.maximum(top, np.finfo(float).tiny, out=top)
        cross -= pa * pb
        np.minimum(cross, 0, out=cross)
        cross /= top
        D[lo:hi, lo:] = -cross.sum(axis=0)
        D[lo:, lo:hi] = D[lo:hi, lo:].T
    np.fill_diagonal(D, np.inf)
    return D


def _pair_costs_rank(Z):
    """:func:`_pair_costs` for compressed blocks of ``rho > 1`` rows.

    Entry ``(a, b)`` bounds the energy beyond rank ``rho`` of the blocks
    ``[Z[a, k]; Z[b, k]]`` by the energy of one group off the row space of
    the other (the smaller of the two, zero when the groups merge), and is
    that energy exactly (the ``rho`` smallest eigenvalues of the Gram
    matrices, summed) for the ``_EXACT_PARTNERS`` best partners of each group.
    """
    g, c, rho, n = Z.shape
    V = np.moveaxis(Z, 1, 0)  # (c, g, rho, n)
    Q = np.conj(np.swapaxes(np.linalg.qr(np.conj(np.swapaxes(V, -1, -2)))[0], -1, -2))
    energy = np.sum(np.abs(V) ** 2, axis=(-2, -1))  # (c, g)
    D = np.empty((g, g))
    step = max(1, _PAIR_CHUNK // (c * g * rho**2))
    for lo in range(0, g, step):
        hi = min(g, lo + step)
        cross = Q[:, lo:hi].reshape(c, -1, n) @ np.conj(V.reshape(c, -1, n)).swapaxes(
            1, 2
        )
        kept = np.sum(np.abs(cross.reshape(c, hi - lo, rho, g, rho)) ** 2, axis=(2, 4))
        D[lo:hi] = np.maximum(energy[:, None] - kept, 0).sum(axis=0)
    D = np.minimum(D, D.T)
    k = min(_EXACT_PARTNERS, g - 1)
    near = np.argpartition(D + np.diag(np.full(g, np.inf)), k - 1, axis=1)[:, :k]
    a = np.repeat(np.arange(g), near.shape[1])
    b = near.ravel()
    M = np.concatenate([V[:, a], V[:, b]], axis=2)  # (c, pairs, 2 rho, n)
    w = np.linalg.eigvalsh(gram(M))
    D[a, b] = D[b, a] = np.maximum(w[..., :rho], 0).sum(axis=(0, -1))
    np.fill_diagonal(D, np.inf)
    return D


def _match_pairs(D):
    """Pair the rows of the cost matrix ``D`` (an even number) at low total cost.

    Mutual nearest neighbours first (a few rounds), then the cheapest pairs
    left, greedily; then swaps between two pairs (``(a, b), (c, d)`` to
    ``(a, c), (b, d)`` or ``(a, d), (b, c)``) while one lowers the total.
    Returns ``(first, second)`` index arrays.
    """
    n = D.shape[0]
    free = np.ones(n, dtype=bool)
    first, second = [], []
    for _ in range(_MATCH_ROUNDS):
        idx = np.flatnonzero(free)
        if idx.size == 0:
            break
        nearest = np.argmin(D[np.ix_(idx, idx)], axis=1)
        mutual = nearest[nearest] == np.arange(idx.size)
        keep = mutual & (np.arange(idx.size) < nearest)
        first.extend(idx[keep])
        second.extend(idx[nearest[keep]])
        free[idx[keep]] = free[idx[nearest[keep]]] = False
    idx = np.flatnonzero(free)
    if idx.size:
        sub = D[np.ix_(idx, idx)]
        a, b = np.triu_indices(idx.size, 1)
        left = idx.size
        for k in np.argsort(sub[a, b], kind="stable"):
            i, j = idx[a[k]], idx[b[k]]
            if free[i] and free[j]:
                first.append(i)
                second.append(j)
                free[i] = free[j] = False
                left -= 2
                if not left:
                    break
    first = np.asarray(first, dtype=np.int64)
    second = np.asarray(second, dtype=np.int64)
    # Each sweep looks at the swaps of the worst-fitting pairs and of those
    # that gained last time first (they are few once most pairs are right),
    # and at all pairs when those have none left: the result is a local
    # optimum for every swap.
    P = first.size
    everything = False
    active = np.zeros(0, dtype=np.intp)
    for _ in range(n):
        cost = D[first, second]
        if everything:
            rows = np.arange(P)
        else:
            rows = np.union1d(np.argsort(-cost)[:_SWAP_ROWS], active)
        Df, Ds = D[first[rows]], D[second[rows]]
        now = cost[rows, None] + cost[None, :]
        # Gains of (a, b), (c, d) -> (a, c), (b, d) and -> (a, d), (b, c).
        gains = (
            now - Df[:, first] - Ds[:, second],
            now - Df[:, second] - Ds[:, first],
        )
        which = gains[1] > gains[0]
        gain = np.maximum(*gains)
        gain[np.arange(rows.size), rows] = 0
        gain[gain <= 1e-12 * np.maximum(now, np.finfo(float).tiny)] = 0
        # The best swap of each pair, applied greedily between disjoint pairs.
        partner = np.argmax(gain, axis=1)
        best = gain[np.arange(rows.size), partner]
        if not np.any(best > 0):
            if everything or rows.size == P:
                break
            everything = True
            continue
        everything = False
        active = rows[best > 0]
        used = np.zeros(P, dtype=bool)
        for i in np.argsort(-best, kind="stable"):
            p, q = rows[i], partner[i]
            if best[i] <= 0:
                break
            if used[p] or used[q]:
                continue
            used[p] = used[q] = True
            if which[i, q]:
                second[p], second[q] = second[q], second[p]
            else:
                second[p], first[q] = first[q], second[p]
    return first, second


def _unit_energy(X):
    """Scale each row group of ``X`` (first axis) to unit energy (zero ones stay)."""
    energy = np.sqrt(np.sum(np.abs(X) ** 2, axis=tuple(range(1, X.ndim))))
    energy = np.where(energy > 0, energy, 1)
    return X / energy.reshape((-1,) + (1,) * (X.ndim - 1))


def _compress(Y, rank):
    """The ``min(rank, d)`` rows ``U_r^H Y``, ``U_r`` the top left singular vectors."""
    if Y.shape[-2] <= rank:
        return Y
    _, U = np.linalg.eigh(gram(Y))
    return np.conj(np.swapaxes(U[..., -rank:], -1, -2)) @ Y


def _halve(cols, upper):
    """Column groups split in two: lower then upper half of each, in order."""
    lower = cols[~upper].reshape(cols.shape[0], -1)
    high = cols[upper].reshape(cols.shape[0], -1)
    return np.stack([lower, high], axis=1).reshape(2 * cols.shape[0], -1)


def _restrict(X, upper):
    """Compressed rows ``(g, c, rho, 2n)`` restricted to halves: ``(g, 2c, rho, n)``."""
    g, c, rho, m = X.shape
    order = np.argsort(upper, axis=-1, kind="stable")  # lower half, then upper
    order += m * np.arange(c)[:, None]
    Z = np.take(np.moveaxis(X, 2, 1).reshape(g, rho, c * m), order.ravel(), axis=-1)
    Z = Z.reshape(g, rho, c, 2, m // 2).transpose(0, 2, 3, 1, 4)
    return Z.reshape(g, 2 * c, rho, m // 2)


def learn_trees(A, learn_rows, learn_cols, rank, rng):
    """Row and column orderings of ``A`` found level by level (``rank`` 1 or 2).

    See the module's docstring; ``rng`` is a ``RandomState``. Returns
    ``row_perm, perm``.
    """
    N = A.shape[0]
    L = N.bit_length() - 1
    # Row groups of the current level (each listed in position order), column
    # groups (likewise), and the compressed rows of every (row group, column
    # group) block: X[g, h] spans the rows of A[rows[g]][:, cols[h]].
    if rank == 2:
        # Level 2 by least squares, then the levels above at block rank 2.
        rows, cols = level_two_groups(A, random_state=rng)
        X = _compress(np.swapaxes(A[rows][:, :, cols], 1, 2), rank)
        start = 3
    else:
        rows = np.arange(N, dtype=np.int64)[:, None]
        cols = np.arange(N, dtype=np.int64)[None, :]
        X = A[:, None, None, :]
        start = 1
    exact_levels = True
    for i in range(start, L):
        half = N >> i  # rows: known partners are this many groups apart
        if learn_cols:
            hypotheses = _split_hypotheses(X, half, learn_rows, rank, rng)
        else:
            upper = np.zeros(cols.shape, dtype=bool)
            upper[:, cols.shape[1] // 2 :] = True
            hypotheses = [(upper, np.ones(cols.shape, dtype=bool))]
        best = None
        exact = _EXACT * np.sum(np.abs(X) ** 2)
        for upper, trusted in hypotheses:
            first, second, upper, cost = _merge_level(
                X, upper, trusted, half, learn_rows, learn_cols, rank, exact, rng
            )
            if best is None or cost < best[-1]:
                best = first, second, upper, cost
            if cost <= exact:
                break
        first, second, upper, cost = best
        exact_levels &= bool(cost <= exact)
        Z = _restrict(X, upper)
        X = _compress(np.concatenate([Z[first], Z[second]], axis=2), rank)
        rows = np.stack([rows[first], rows[second]], axis=-1).reshape(first.size, -1)
        cols = _halve(cols, upper)
    # Last level: the two row groups interleave, the column pairs stay.
    row_perm = np.stack([rows[0], rows[1]], axis=-1).ravel()
    perm = cols.ravel()
    # Rows (then columns) that the greedy levels placed worst are reassigned,
    # then subtrees placed wrong are exchanged (nothing to do when every
    # level was exact).
    if exact_levels:
        return row_perm, perm
    # The subtree exchanges score rank-one merges: rank 1 only.
    polishes = [partial(polish_rows, rank=rank)]
    if rank == 1:
        polishes.append(polish_subtrees)
    for polish in polishes:
        if learn_rows:
            row_perm = row_perm[polish(A[row_perm][:, perm])]
        if learn_cols:
            rev = bit_reversal_permutation(N)
            # The transpose in bit-reversed order on both sides is a butterfly
            # whose rows are the columns, grouped as rows are.
            perm = perm[rev[polish(A[row_perm[rev]][:, perm[rev]].T)][rev]]
    return row_perm, perm


def _split_hypotheses(X, half, learn_rows, rank, rng):
    """Candidate halvings of the column groups, from a few anchor pairs of row groups.

    Yields ``(upper, trusted)``: the halves and the columns decided firmly
    enough to be trusted in a first matching (all of them first, then the
    trusted ones only). The row group of largest energy is paired with every
    other group (or with its known partner) and the columns split as the
    best pair is fitted (:func:`_split_halves`); then the same for the next
    ``_ANCHORS - 1`` anchors, and last their vote: each pair's column margins
    (how much more the other half costs), signs aligned group by group with
    the first pair's, summed. Generated lazily: an exact level stops early.
    """
    Xn = _unit_energy(X)
    energy = np.sum(np.abs(X) ** 2, axis=(1, 2, 3))
    anchors = np.argsort(-energy, kind="stable")[:_ANCHORS] if learn_rows else [0]
    votes = []
    for anchor in anchors:
        if learn_rows:
            candidates = np.delete(np.arange(X.shape[0]), anchor)
        else:
            candidates = np.array([half])

        def stacked(partners, X=Xn, anchor=anchor):
            Y = np.concatenate(
                [
                    np.broadcast_to(X[anchor], (partners.size, *X.shape[1:])),
                    X[partners],
                ],
                axis=2,
            )
            return Y.reshape((-1, *Y.shape[2:]))

        if candidates.size > _SCREEN:
            # One cheap try each on a subset of the columns (chunks of a
            # bounded size), the best refit.
            c, m = Xn.shape[1], Xn.shape[3]
            some = max(_SCREEN_GROUP_COLUMNS, _SCREEN_COLUMNS // c)
            some = Xn[..., np.sort(rng.choice(m, size=min(m, some), replace=False))]
            step = max(1, _SCREEN_ENTRIES // some[0].size)
            scores = np.concatenate(
                [
                    _screen_scores(stacked(chunk, some), rank, rng)
                    .reshape(chunk.size, -1)
                    .sum(axis=1)
                    for chunk in np.array_split(candidates, -(-candidates.size // step))
                ]
            )
            candidates = candidates[np.argsort(scores, kind="stable")[:_SCREEN]]
        upper, score, margin = _split_halves(stacked(candidates), rank, rng)
        shape = (candidates.size, Xn.shape[1], -1)
        k = np.argmin(score.reshape(candidates.size, -1).sum(axis=1))
        upper = upper.reshape(shape)[k]
        margin = margin.reshape(shape)[k]
        votes.append(margin)
        yield upper, np.ones(upper.shape, dtype=bool)
        yield upper, _trusted(upper, margin)
    if len(votes) > 1:
        signs = np.sign(np.sum(votes[0] * np.asarray(votes), axis=-1, keepdims=True))
        vote = np.sum(np.where(signs == 0, 1, signs) * np.asarray(votes), axis=0)
        upper = _balanced(np.zeros_like(vote), vote)
        yield upper, np.ones(upper.shape, dtype=bool)
        yield upper, _trusted(upper, vote)


def _trusted(upper, margin):
    """The columns whose ``margin`` is not among the smallest ones of their half.

    ``upper`` and ``margin`` are ``(groups, m)``: the fraction is taken in
    each half of each group, so that every half keeps as many columns.
    """
    size = np.abs(margin)
    trusted = np.zeros(upper.shape, dtype=bool)
    for half in (upper, ~upper):
        values = np.where(half, size, np.nan)
        cut = np.nanquantile(values, _UNTRUSTED, axis=-1, keepdims=True)
        trusted |= half & (size >= cut)
    return trusted


def _merge_level(X, upper, trusted, half, learn_rows, learn_cols, rank, exact, rng):
    """Pair the row groups and refine the column halves of one level, alternately.

    The first matching uses the trusted columns only, the first refit of the
    halves the pairs that fit best for their energy (:func:`_refine_halves`,
    or :func:`_exhaustive_halves` for short groups); then rows are matched
    and halves refit with all the pairs until the pairs no longer change (at
    most ``_ALTERNATIONS`` matchings), or until a matching leaves no more
    than ``exact`` (the level is then solved).
    Returns ``first, second, upper`` and the residual of the merged groups
    on the new column groups (what the level costs).
    """
    if learn_rows and rank == 1:
        # Exact levels first, in O(N**2): partners are proportional.
        pairs = _proportional_pairs(_restrict(X, upper), rng)
        if pairs is not None:
            cost = _level_cost(X, upper, *pairs, rank)
            if cost <= exact:
                return *pairs, upper, cost
    pairs = None
    for sweep in range(_ALTERNATIONS if learn_cols else 1):
        if learn_rows:
            # Trusted columns alone while they are enough for a fit.
            few = (1 - _UNTRUSTED) * upper.shape[-1] / 2 <= rank
            Xs = X if sweep or few else X * trusted[None, :, None, :]
            D = _pair_costs(_restrict(Xs, upper), rng)
            first, second = _match_pairs(D)
        else:
            first = np.arange(half)
            second = first + half
        found = {frozenset(p) for p in zip(first.tolist(), second.tolist())}
        if (found == pairs and sweep > 1) or not learn_cols:
            break
        cost = _level_cost(X, upper, first, second, rank)
        if cost <= exact:
            return first, second, upper, cost
        pairs = found
        keep = slice(None)
        if learn_rows and sweep == 0 and first.size >= _MIN_TRUSTED_PAIRS:
            # The first refit trusts the pairs that fit best, for their energy.
            energy = np.sum(np.abs(X) ** 2, axis=(1, 2, 3))
            ratio = D[first, second] / np.maximum(
                energy[first] + energy[second], np.finfo(float).tiny
            )
            keep = ratio <= np.quantile(ratio, 1 - _UNTRUSTED)
        Y = np.concatenate([X[first[keep]], X[second[keep]]], axis=2)
        if Y.shape[-1] <= _EXHAUSTIVE:
            upper = _exhaustive_halves(Y, rank)
        else:
            upper = _refine_halves(Y, upper, rank, None if sweep else trusted)[0]
    return first, second, upper, _level_cost(X, upper, first, second, rank)


def _proportional_pairs(Z, rng):
    """Pairs of row groups whose compressed rows are proportional, or ``None``.

    ``Z`` is ``(g, c, 1, n)``. Each block row ``z`` gets the signature
    ``<z, r2> conj(<z, r1>) / (|<z, r1>| |z|)`` (``r1, r2`` random), the
    same for every nonzero multiple of ``z``: groups are sorted by their
    signatures and paired with their neighbours, ``None`` when the
    neighbours' signatures differ (the input is not an exact butterfly, or a
    block is zero). The caller checks the pairs' residual.
    """
    g, c, _, n = Z.shape
    r = rng.standard_normal((2, n))
    if np.iscomplexobj(Z):
        r = r + 1j * rng.standard_normal((2, n))
    t = Z[:, :, 0] @ r.T  # (g, c, 2)
    norms = np.linalg.norm(Z[:, :, 0], axis=-1) * np.abs(t[..., 0])
    if np.any(norms == 0):
        return None
    sig = (t[..., 1] * np.conj(t[..., 0]) / norms).reshape(g, -1)
    sig = np.concatenate([sig.real, sig.imag], axis=1)
    order = np.lexsort(sig.T[::-1])
    first, second = order[0::2], order[1::2]
    if np.max(np.abs(sig[first] - sig[second])) > _PROPORTIONAL:
        return None
    return first, second


def _level_cost(X, upper, first, second, rank):
    """Residual beyond rank ``rank`` of the row groups merged in pairs."""
    Z = _restrict(X, upper)
    merged = np.concatenate([Z[first], Z[second]], axis=2)
    w = np.linalg.eigvalsh(gram(merged))
    return np.maximum(w[..., : max(0, w.shape[-1] - rank)], 0).sum()
