"""Learning the orderings of an exact butterfly of block rank two.

Layer 3 (algorithms), pure functions on arrays.

With ``N = 2**L``, the split after factor ``l`` of the classic butterfly
groups the ordered rows into ``2**(L-l)`` groups of ``2**l`` (positions
``q mod 2**(L-l)``) and the columns into ``2**l`` groups of ``2**(L-l)``
(positions ``p // 2**(L-l)``); at block rank ``2`` every (row group, column
group) block has rank at most 2. Splits whose groups have at most 2 rows or
2 columns (``l = 1`` and ``l = L-1``) hold for any grouping, so the levels
``l = 2 .. L-2`` carry the structure, and no pair of rows or columns can
be tested: the smallest witness is a vanishing ``3 x 3`` minor. Hence:

* **Planes.** Three rows of one level-``l`` row group, restricted to the
  columns of one level-``l`` column group, span a plane; so the ``N``
  columns of those three rows, as points of ``R**3`` (or ``C**3``), lie on
  ``2**l`` planes through 0, one per column group. A plane is found from
  its largest point ``u``: the normals ``u x v`` of the points ``v`` of its
  plane coincide (the well-conditioned ones are grouped on a grid), and
  the points near the proposed plane (to ``1e-10`` of the largest point)
  are its points, so a partition costs ``O(N)`` per plane.
* **First level.** Random triples of rows are tried until one splits the
  columns into planes of at least 4 points: three random rows lie in one
  row group of level ``L-2`` about once in 16 tries, and the test of a
  triple that does not stops at its first plane.
* **Other side.** The column groups of a level give its row groups: the
  rows restricted to one column group (sketched to 3 random directions)
  lie on one plane per row group; and conversely.
* **Next levels.** From level ``l`` the row groups of ``l+1`` come from a
  triple of columns of one column group of level ``l`` that lies in one
  half of it (random tries; a try fails unless every row plane is the
  union of two known groups), then the column groups of ``l+1``; the
  column groups of ``l-1`` likewise from three rows of one row group of
  level ``l``. Levels ``1`` and ``L-1`` take any nested grouping.

Every group found is checked (equal group sizes, nested trees, points on
their plane): a matrix that is not an exact shuffled butterfly
of block rank two is answered ``None`` after a bounded number of tries, and
the caller falls back to its heuristic. The cost is ``O(N**2)`` operations
after the tries (``O(N log N)`` each) and no ``N x N`` temporary. This is
a variant of the block identification of Zheng, Puy, Riccietti, Pérez and
Gribonval (arXiv:2307.00820), with exact incidence tests in place of their
spectral clustering. It needs exact data: errors of about ``1e-12`` of
the largest entries pass, ``1e-8`` do not (nor do single-precision inputs),
and noisier matrices are answered ``None``.

Noisy input: :func:`level_two_groups` finds the groups of level 2 (rows in
fours, columns in quarters) by least squares instead, robust to noise of
about 1 % (the caller then merges the levels above, as at rank one). The
rows of one group have similar profiles of their entries' sizes (they share
a plane on each quarter), so each row's nearest rows by that profile give
candidate groups; four rows of one group see the columns on four planes
through 0, one per quarter, which random pairs of columns propose; the
proposals of a few anchor rows that fit best, and under which the anchors'
candidate groups fit best, are refined by alternating fits: row groups on
given quarters (each row and a near one span a plane on every quarter; the
two rows closest to those planes complete its group; groups are taken
cheapest first) and quarters on given groups (each column on the quarter
whose planes, fitted without it, leave the least of it, ``N / 4`` per
quarter by an optimal assignment).
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import itertools

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.utils import check_random_state

from skbutterfly._permutations import bit_reversal_permutation

# A unit point whose distance to a plane is below this lies on it: far above
# rounding, far below the distance of a generic point. The tolerance grows
# for small points, to errors of _FLOOR of the largest point; directions
# less certain than _AMBIGUOUS are placed last.
_ON_PLANE = 1e-10
_FLOOR = 1e-12
_AMBIGUOUS = 1e-6

# Planes are proposed by the normals u x v known to far below the grid on
# which they are grouped.
_GRID = 1e5

# Random tries for the first level, and for each further level.
_FIRST_TRIES = 1000
_LEVEL_TRIES = 200


# Odd multipliers mixing the grid coordinates of a normal into one key
# (arithmetic modulo 2**64; distinct normals of one search collide with
# probability about n**2 / 2**64).
_MIX = np.array(
    [
        0x9E3779B97F4A7C15,
        0xC2B2AE3D27D4EB4F,
        0x165667B19E3779F9,
        0xD6E8FEB86659FD93,
        0xFF51AFD7ED558CCD,
        0xC4CEB9FE1A85EC53,
    ],
    dtype=np.uint64,
)


def _normal_keys(n):
    """Integer keys of the directions of normals ``n`` (one per row)."""
    n = n / np.linalg.norm(n, axis=1, keepdims=True)
    # Fix the sign (the phase) by the first entry larger than 0.5 in size;
    # a unit vector of 3 entries has one.
    pivot = n[np.arange(len(n)), np.argmax(np.abs(n) > 0.5, axis=1)]
    n = n * (np.conj(pivot) / np.abs(pivot))[:, None]
    if np.iscomplexobj(n):
        n = np.concatenate([n.real, n.imag], axis=1)
    grid = np.round(n * _GRID).astype(np.int64).view(np.uint64)
    return grid @ _MIX[: grid.shape[1]]


def plane_groups(P, size=None, random_state=None):
    """Labels of points lying on planes through 0, ``size`` points per plane.

    Parameters
    ----------
    P : ndarray of shape (n, d)
        The points, ``d >= 3``; with ``d > 3`` they are first sketched to 3
        random directions (points of one 2-dimensional subspace stay on one
        plane, generic points of more dimensions do not).
    size : int or None, default=None
        The points of each plane; ``None`` takes the size of the plane of the
        largest point, which must hold at least 4.
    random_state : int, RandomState instance or None, default=None
        Seeds the sketch.

    Returns
    -------
    labels : ndarray of int64 of shape (n,) or None
        Plane of each point, numbered in order of first point; ``None`` when
        the points are not on planes of ``size`` points each (to
        ``1e-10`` for unit points, more for points far smaller than the
        largest), or when a point is zero (it lies on every plane).

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly._orderings_rank import plane_groups
    >>> rng = np.random.default_rng(0)
    >>> bases = rng.standard_normal((3, 2, 3))  # three planes of R**3
    >>> P = np.concatenate([rng.standard_normal((4, 2)) @ B for B in bases])
    >>> plane_groups(P[[0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]], 4)
    array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2])
    >>> plane_groups(rng.standard_normal((12, 3)), 4) is None
    True
    """
    n, d = P.shape
    if d > 3:
        P = P @ check_random_state(random_state).standard_normal((d, 3))
    norms = np.linalg.norm(P, axis=1)
    if not np.all(norms > 0):  # on every plane
        return None
    # Distances are measured between unit points (entries of any magnitude
    # keep their relative accuracy), with a floor for errors relative to the
    # largest point; points whose direction is that uncertain are placed
    # last, on their nearest plane.
    tol = np.maximum(_ON_PLANE, _FLOOR * norms.max() / norms)
    U = P / norms[:, None]
    labels = np.full(n, -1, dtype=np.int64)
    free = np.flatnonzero(tol <= _AMBIGUOUS)
    missing = n - free.size  # points placed last: what planes may lack
    bases = []
    while free.size:
        u = free[np.argmax(norms[free])]
        others = free[free != u]
        normals = np.cross(U[u], U[others])
        # Sines of the angles to u: points nearly parallel to u are near
        # every plane through it, and join u's plane.
        lengths = np.linalg.norm(normals, axis=1)
        # The normals known to far below the grid propose the planes; each
        # proposal takes every point near it.
        sure = np.flatnonzero(lengths >= _GRID * (tol[u] + tol[others]))
        _, where, counts = np.unique(
            _normal_keys(normals[sure]), return_inverse=True, return_counts=True
        )
        members, normal = others[:0], None
        for k in np.argsort(-counts, kind="stable"):
            if counts[k] < 2 and normal is not None:
                break
            # The proposer whose plane holds most of its group (a group may
            # mix the points of a plane with others whose normals are near).
            proposers = sure[where == k]
            planes = normals[proposers] / lengths[proposers, None]
            on = np.abs(planes @ U[others[proposers]].T) <= tol[others[proposers]]
            v = proposers[np.argmax(on.sum(axis=1))]
            slack = (tol[u] + tol[others[v]]) / lengths[v]
            dist = np.abs(U[others] @ (normals[v] / lengths[v]))
            on = others[dist <= tol[others] + slack]
            if on.size > members.size:
                members, normal = on, normals[v] / lengths[v]
            if members.size >= (counts[k] if size is None else size - 1):
                break
        if size is None:
            if members.size < 3:
                return None
            size = members.size + 1
        missing -= size - 1 - members.size
        if normal is None or members.size > size - 1 or missing < 0:
            return None
        labels[u] = labels[members] = len(bases)
        bases.append(normal)
        free = free[labels[free] < 0]
    if not bases:
        return None
    rest = np.flatnonzero(labels < 0)
    if rest.size:
        labels[rest] = np.argmin(np.abs(U[rest] @ np.array(bases).T), axis=1)
    if np.any(np.bincount(labels, minlength=len(bases)) != size):
        return None
    # Planes numbered in order of their first point.
    _, first, where = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty_like(first)
    rank[np.argsort(first)] = np.arange(first.size)
    return rank[where]


def _halves(fine, coarse):
    """Whether every group of ``coarse`` is the union of two groups of ``fine``."""
    pairs = np.unique(np.stack([fine, coarse]), axis=1)
    return bool(
        np.all(np.bincount(pairs[1]) == 2) and np.unique(pairs[0]).size == len(pairs[0])
    )


def _from_other_side(A, col_labels, size, rng):
    """Row groups of ``size`` rows of a level, from its column groups.

    The rows restricted to one column group lie on one plane per row group.
    """
    return plane_groups(A[:, col_labels == col_labels[0]], size, rng)


def _coarser(A, col_labels, row_labels, rng):
    """Row groups of the next coarser level, or ``None`` after the tries.

    Three columns of one column group of the current level that lie in one
    half of it split the rows into planes of twice the current row groups:
    random triples are tried until the planes are the unions of two
    current row groups each.
    """
    size = 2 * np.count_nonzero(row_labels == row_labels[0])
    for _ in range(_LEVEL_TRIES):
        group = np.flatnonzero(col_labels == rng.randint(col_labels.max() + 1))
        triple = rng.choice(group, 3, replace=False)
        labels = plane_groups(A[:, triple], size)
        if labels is not None and _halves(row_labels, labels):
            return labels
    return None


def _first_level(A, rng):
    """``(level, row_labels, col_labels)`` of one level, or ``None``."""
    N = A.shape[0]
    for _ in range(_FIRST_TRIES):
        cols = plane_groups(A[rng.choice(N, 3, replace=False)].T)
        if cols is None:
            continue
        size = N // (int(cols.max()) + 1)  # columns per group: 2**(L-level)
        if 4 <= size <= N // 4 and not size & (size - 1):
            level = N.bit_length() - size.bit_length()
            rows = _from_other_side(A, cols, N // size, rng)
            return None if rows is None else (level, rows, cols)
    return None


def _known_levels(A, levels, known_rows, rng):
    """Groups of the learned side at every level, the other side known."""
    N = A.shape[0]
    L = N.bit_length() - 1
    q = np.arange(N)
    found = {}
    for level in levels:
        if known_rows:
            fixed = q % 2 ** (L - level)
            labels = _from_other_side(A.T, fixed, 2 ** (L - level), rng)
        else:
            labels = _from_other_side(A, q // 2 ** (L - level), 2**level, rng)
        if labels is None:
            return None
        found[level] = labels
    return found


def learn_rank_two(A, *, learn_rows=True, learn_cols=True, random_state=None):
    """Row and column permutations under which ``A`` is a butterfly of block rank 2.

    Identifies the row and column groups of every split of an exact
    butterfly of block rank two whose rows and columns were shuffled (see
    the module's docstring) and turns the two trees into permutations.

    Parameters
    ----------
    A : ndarray of shape (N, N)
        ``N`` a power of two. A side that is not learned is taken in its
        given order.
    learn_rows, learn_cols : bool, default=True
        Which sides to learn.
    random_state : int, RandomState instance or None, default=None
        Seeds the random tries and sketches (the result is a deterministic
        function of ``A`` and the seed).

    Returns
    -------
    (row_perm, perm) or None
        ``A[row_perm][:, perm]`` is a butterfly of block rank 2 (the side
        not learned keeps ``arange(N)``); ``None`` when none was found after
        a bounded number of random tries (an exact one is missed with a
        probability below ``1e-12``), e.g. for noisy or unstructured input.

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly import butterfly_factorize
    >>> from skbutterfly._orderings_rank import learn_rank_two
    >>> from skbutterfly.datasets import random_butterfly
    >>> rng = np.random.default_rng(0)
    >>> A = random_butterfly(64, rank=2, random_state=0).toarray()
    >>> A = A[rng.permutation(64)][:, rng.permutation(64)]
    >>> rows, cols = learn_rank_two(A, random_state=0)
    >>> B = butterfly_factorize(A, rank=2, permutation=cols, row_permutation=rows)
    >>> bool(np.linalg.norm(B.toarray() - A) < 1e-10 * np.linalg.norm(A))
    True
    >>> learn_rank_two(rng.standard_normal((64, 64)), random_state=0) is None
    True
    """
    rng = check_random_state(random_state)
    N = A.shape[0]
    L = N.bit_length() - 1
    identity = np.arange(N, dtype=np.int64)
    if L < 4:  # every split has groups of at most 2 rows or 2 columns
        return identity, identity.copy()
    if not (learn_rows or learn_cols):
        return identity, identity.copy()
    A = np.asarray(A, dtype=np.result_type(A.dtype, np.float64))
    levels = range(2, L - 1)
    rows, cols = {}, {}
    if not (learn_rows and learn_cols):
        found = _known_levels(A, levels, known_rows=not learn_rows, rng=rng)
        if found is None:
            return None
        (cols if learn_cols else rows).update(found)
    else:
        first = _first_level(A, rng)
        if first is None:
            return None
        start, rows[start], cols[start] = first
        for level in range(start, L - 2):  # row groups coarsen
            rows[level + 1] = _coarser(A, cols[level], rows[level], rng)
            if rows[level + 1] is None:
                return None
            size = 2 ** (L - level - 1)
            cols[level + 1] = _from_other_side(A.T, rows[level + 1], size, rng)
            if cols[level + 1] is None:
                return None
        for level in range(start, 2, -1):  # column groups coarsen
            cols[level - 1] = _coarser(A.T, rows[level], cols[level], rng)
            if cols[level - 1] is None:
                return None
            size = 2 ** (level - 1)
            rows[level - 1] = _from_other_side(A, cols[level - 1], size, rng)
            if rows[level - 1] is None:
                return None
    # Nested trees: row groups coarsen, column groups refine level by level.
    for level in levels[:-1]:
        if learn_rows and not _halves(rows[level], rows[level + 1]):
            return None
        if learn_cols and not _halves(cols[level + 1], cols[level]):
            return None
    perm, row_perm = identity, identity.copy()
    if learn_cols:
        # Sorted by group, coarsest level first: each group is contiguous.
        perm = np.lexsort([identity, *(cols[level] for level in reversed(levels))])
    if learn_rows:
        # Rows of a group of level l share their position mod 2**(L-l): the
        # sort by group, coarsest first, read in bit-reversed order.
        order = np.lexsort([identity, *(rows[level] for level in levels)])
        row_perm = order[bit_reversal_permutation(N)]
    return row_perm.astype(np.int64), perm.astype(np.int64)


# Noisy input: the groups of level 2 by least squares.

# Nearest rows (by the profiles of their entries) tried as the partner of a
# row, and the random pairs of points proposing each plane of a split.
_PARTNERS = 4
_PROPOSALS = 16

# Anchor rows whose candidate groups propose the column quarters, candidate
# partners of each, sweeps of the subspace fits, and the alternations of
# quarters and row groups.
_ANCHORS = 8
_ANCHOR_PARTNERS = 6
_CHECKED = 8
_REFINED = 3
_FIT_SWEEPS = 6
_FIRST_ROUNDS = 3
_ROUNDS = 8

# Dimensions each quarter is sketched to when row groups are scored.
_QUARTER_SKETCH = 16


def _profiles(X):
    """Unit rows of ``sqrt(|X|)``: rows of nearby groups have similar ones."""
    P = np.sqrt(np.abs(X))
    norms = np.linalg.norm(P, axis=1, keepdims=True)
    return P / np.where(norms > 0, norms, 1)


def _neighbours(P, k):
    """The ``k`` rows of largest profile similarity to each row (``P`` unit rows)."""
    S = P @ P.T
    np.fill_diagonal(S, -np.inf)
    k = min(k, len(P) - 1)
    near = np.argpartition(-S, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(S, near, axis=1), axis=1, kind="stable")
    return np.take_along_axis(near, order, axis=1)


def _residuals(Y, bases):
    """Energy of the columns of ``Y`` (``(..., d, n)``) off the span of ``bases``."""
    kept = np.sum(np.abs(np.conj(np.swapaxes(bases, -1, -2)) @ Y) ** 2, axis=-2)
    return np.maximum(np.sum(np.abs(Y) ** 2, axis=-2) - kept, 0)


def _top_basis(Y, mask):
    """Orthonormal basis ``(..., d, 2)`` of the leading plane of ``Y[..., mask]``."""
    G = (Y * mask[..., None, :]) @ np.conj(np.swapaxes(Y, -1, -2))
    return np.linalg.eigh(G)[1][..., -2:]


def _split_planes(Y, rng):
    """Columns of ``Y`` (``(d, n)``) split into 4 sets, each near a plane through 0.

    Each plane is proposed by random pairs of the remaining columns (drawn
    by energy; the pair whose plane holds a quarter of them closest wins),
    then the planes are refit and the columns reassigned (``_FIT_SWEEPS``).
    Returns the residual of each column off each plane ``(4, n)`` and the
    residual energy (each column on its nearest plane).
    """
    d, n = Y.shape
    labels = np.full(n, 3)
    free = np.arange(n)
    energy = np.sum(np.abs(Y) ** 2, axis=0)
    for part in range(3):
        total = energy[free].sum()
        w = energy[free] / total if total > 0 else None  # (uniform draws)
        pairs = rng.choice(free.size, size=(_PROPOSALS, 2), p=w)
        bases = np.linalg.qr(np.swapaxes(Y[:, free[pairs]], 0, 1).reshape(-1, d, 2))[0]
        res = _residuals(Y[:, free][None], bases)  # (proposals, free)
        near = np.argpartition(res, n // 4 - 1, axis=1)[:, : n // 4]
        best = np.argmin(np.take_along_axis(res, near, axis=1).sum(axis=1))
        labels[free[near[best]]] = part
        free = np.flatnonzero(labels == 3)
    for _ in range(_FIT_SWEEPS):
        masks = labels == np.arange(4)[:, None]
        res = _residuals(Y[None], _top_basis(np.broadcast_to(Y, (4, d, n)), masks))
        labels = np.argmin(res, axis=0)
    return res, res[labels, np.arange(n)].sum()


def _balanced_labels(cost):
    """Labels of ``n`` items, ``n / k`` per label, at least total ``cost`` (n x k)."""
    n, k = cost.shape
    _, where = linear_sum_assignment(np.repeat(cost, n // k, axis=1))
    return where // (n // k)


def _quarters_from_groups(A, groups, labels):
    """Column quarters refit to the row ``groups`` (``(g, 4)``), from ``labels``.

    The plane of each (group, quarter) block is fitted to its columns, each
    column of the quarter being measured against the fit without it (a
    large column placed wrongly would otherwise fit itself); the groups
    that fit best for their energy (half of them) count. Each column then
    goes to the quarter whose planes leave the least of it, ``N / 4`` per
    quarter. Returns the labels and the residual of the blocks beyond rank
    2 under the given labels.
    """
    Y = A[groups]  # (g, 4, N)
    masks = labels == np.arange(4)[:, None]
    fits = _level_two_cost(Y, masks)
    ratio = fits / np.maximum(np.sum(np.abs(Y) ** 2, axis=(1, 2)), np.finfo(float).tiny)
    Y = Y[ratio <= np.median(ratio)]
    Z = Y[:, None] * masks[None, :, None, :]
    grams = Z @ np.conj(np.swapaxes(Y, -1, -2))[:, None]  # (g, 4, 4, 4)
    bases = np.linalg.eigh(grams)[1][..., -2:]
    cost = _residuals(Y[:, None], bases).sum(axis=0)  # (4, N)
    # Each column against the fit of its own quarter without it: one step
    # of subspace iteration from the plane with it, (G - y y^H) U.
    U = bases[:, labels]  # (g, N, 4, 2)
    y = np.moveaxis(Y, -1, 1)  # (g, N, 4)
    c = np.einsum("gnia,gni->gna", np.conj(U), y)
    B = grams[:, labels] @ U - y[..., None] * np.conj(c[..., None, :])
    M = np.conj(np.swapaxes(B, -1, -2)) @ B  # (g, N, 2, 2)
    b = np.einsum("gnia,gni->gna", np.conj(B), y)
    det = (M[..., 0, 0] * M[..., 1, 1]).real - np.abs(M[..., 0, 1]) ** 2
    quad = (
        M[..., 1, 1].real * np.abs(b[..., 0]) ** 2
        + M[..., 0, 0].real * np.abs(b[..., 1]) ** 2
        - 2 * (M[..., 0, 1] * b[..., 1] * np.conj(b[..., 0])).real
    )
    kept = quad / np.where(det > 0, det, np.inf)
    loo = np.maximum(np.sum(np.abs(y) ** 2, axis=-1) - kept, 0).sum(axis=0)
    cost[labels, np.arange(labels.size)] = loo
    return _balanced_labels(cost.T), fits.sum()


def _level_two_cost(Y, masks):
    """Energy beyond rank 2 of the blocks of each group of ``Y`` (``(g, 4, N)``)."""
    Z = Y[:, None] * masks[None, :, None, :]
    w = np.linalg.eigvalsh(Z @ np.conj(np.swapaxes(Z, -1, -2)))
    return np.maximum(w[..., :2], 0).sum(axis=(1, 2))


def _groups_from_quarters(A, labels, near, rng):
    """Rows grouped in fours, each group of rank 2 on every column quarter.

    Each row and each of its nearest rows span a plane on each quarter
    (sketched); the two rows closest to those planes complete the
    candidate group, scored by its energy beyond rank 2; groups are taken
    greedily, cheapest first, among the rows left (recomputed on them while
    that places any), the last ones in order.
    """
    N = A.shape[0]
    s = min(N // 4, _QUARTER_SKETCH)
    X = np.stack(
        [
            A[:, labels == k] @ rng.standard_normal((N // 4, s)).astype(A.dtype)
            for k in range(4)
        ],
        axis=1,
    )  # (N, 4, s)
    energy = np.sum(np.abs(X) ** 2, axis=(1, 2))
    left = np.arange(N)
    groups = []
    while left.size > 4:
        Xl = X[left]
        nl = near if left.size == N else _neighbours(_profiles(A[left]), _PARTNERS)
        nl = nl[:, :_PARTNERS]
        cands = []
        for t in range(nl.shape[1]):
            pair = np.stack([np.arange(left.size), nl[:, t]], axis=1)  # (n, 2)
            Y = np.swapaxes(Xl[pair], 1, 2)  # (n, 4, 2, s)
            Q = np.linalg.qr(np.swapaxes(Y, -1, -2))[0]  # (n, 4, s, 2)
            Qh = np.conj(np.swapaxes(Q, -1, -2)).reshape(left.size, 4, -1)
            res = np.tile(energy[left], (left.size, 1))  # (n, n)
            for k in range(4):
                P = Qh[:, k].reshape(-1, s) @ Xl[:, k].T  # (2 n, n)
                res -= (P.real**2 + P.imag**2).reshape(left.size, 2, -1).sum(axis=1)
            res = np.maximum(res, 0) / np.maximum(energy[left], np.finfo(float).tiny)
            res[np.arange(left.size)[:, None], pair] = np.inf
            two = np.argpartition(res, 1, axis=1)[:, :2]
            cands.append(np.concatenate([pair, two], axis=1))
        cands = np.unique(np.sort(np.concatenate(cands), axis=1), axis=0)
        Z = np.swapaxes(Xl[cands], 1, 2)  # (c, 4, 4, s)
        w = np.linalg.eigvalsh(Z @ np.conj(np.swapaxes(Z, -1, -2)))
        cost = np.maximum(w[..., :2], 0).sum(axis=(1, 2))
        taken = np.zeros(left.size, dtype=bool)
        found = 0
        for c in np.argsort(cost, kind="stable"):
            if not taken[cands[c]].any():
                taken[cands[c]] = True
                groups.append(left[cands[c]])
                found += 1
        left = left[~taken]
        if not found:
            break
    if left.size:
        groups.extend(left.reshape(-1, 4))
    return np.array(groups)


def _alternate(A, labels, near, rng, rounds):
    """Row groups found on the quarters and quarters refit, alternately.

    Returns the residual beyond rank 2, the groups, the quarters' labels
    (those the groups were found on) and whether they are stable.
    """
    groups = _groups_from_quarters(A, labels, near, rng)
    for _ in range(rounds):
        new, cost = _quarters_from_groups(A, groups, labels)
        if np.array_equal(new, labels):
            return cost, groups, labels, True
        labels = new
        groups = _groups_from_quarters(A, labels, near, rng)
    return _quarters_from_groups(A, groups, labels)[1], groups, labels, False


def level_two_groups(A, random_state=None):
    """Row groups and column quarters of level 2 of a noisy butterfly of block rank 2.

    Level 2 groups the rows in fours and the columns in quarters; every
    (row group, quarter) block has rank 2 (level 1 takes any nested
    grouping). Found by least squares, so that noise averages out (see the
    module's docstring): candidate groups of ``_ANCHORS`` anchor rows (the
    largest) among their nearest rows by profile, the quarters that their
    columns' planes propose (:func:`_split_planes`), checked against all
    the candidates, then ``_REFINED`` of them refined by alternating row
    groups (:func:`_groups_from_quarters`) and quarters
    (:func:`_quarters_from_groups`), ``_FIRST_ROUNDS`` rounds each; the one
    that leaves the least beyond rank 2 goes on until it is stable (at most
    ``_ROUNDS``). A round costs ``O(N**2)`` operations (with a constant of a
    few hundred) and an optimal assignment of the columns to the quarters
    (``O(N**3)`` at worst, fast in practice); a few ``N x N`` temporaries.
    Any input gets valid groups.

    Parameters
    ----------
    A : ndarray of shape (N, N)
        ``N`` a power of two, at least 16.
    random_state : int, RandomState instance or None, default=None
        Seeds the proposals and sketches (the result is a deterministic
        function of ``A`` and the seed).

    Returns
    -------
    groups : ndarray of int64 of shape (N // 4, 4)
        The rows of each group.
    quarters : ndarray of int64 of shape (4, N // 4)
        The columns of each quarter, in increasing order.

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly._orderings_rank import level_two_groups
    >>> from skbutterfly.datasets import random_butterfly
    >>> rng = np.random.default_rng(0)
    >>> A = random_butterfly(64, rank=2, random_state=0).toarray()
    >>> rows, cols = rng.permutation(64), rng.permutation(64)
    >>> S = A[rows][:, cols]  # row i of S at position rows[i]
    >>> E = rng.standard_normal(S.shape)
    >>> S += 0.01 * np.linalg.norm(S) / np.linalg.norm(E) * E  # 1 % noise
    >>> groups, quarters = level_two_groups(S, random_state=0)
    >>> all(np.unique(rows[g] % 16).size == 1 for g in groups)
    True
    >>> all(np.unique(cols[q] // 16).size == 1 for q in quarters)
    True
    """
    rng = check_random_state(random_state)
    A = np.asarray(A, dtype=np.result_type(A.dtype, np.float64))
    near = _neighbours(_profiles(A), max(_PARTNERS, _ANCHOR_PARTNERS))
    energy = np.sum(np.abs(A) ** 2, axis=1)
    anchors = np.argsort(-energy, kind="stable")[:_ANCHORS]
    quads = np.array(
        [
            [a, *trio]
            for a in anchors
            for trio in itertools.combinations(near[a, :_ANCHOR_PARTNERS], 3)
        ]
    )
    proposals = []
    for quad in quads:
        cost, res = _split_planes(A[quad], rng)
        proposals.append((res / max(energy[quad].sum(), np.finfo(float).tiny), cost))
    # The best-fitting proposals are checked against all the candidate
    # groups (the quarters under which each anchor's best one fits best
    # first); the best few are refined, alternately, and the one whose
    # groups leave the least beyond rank 2 wins.
    Y = A[quads]
    checks = []
    for k in np.argsort([p[0] for p in proposals], kind="stable")[:_CHECKED]:
        labels = _balanced_labels(proposals[k][1].T)
        masks = labels == np.arange(4)[:, None]
        total = np.maximum(energy[quads].sum(axis=1), np.finfo(float).tiny)
        fit = _level_two_cost(Y, masks) / total
        checks.append((fit.reshape(anchors.size, -1).min(axis=1).sum(), k, labels))
    checks.sort(key=lambda c: c[:2])
    # A few rounds each, then the best one until it is stable.
    best = min(
        (
            _alternate(A, labels, near, rng, _FIRST_ROUNDS)
            for *_, labels in checks[:_REFINED]
        ),
        key=lambda b: b[0],
    )
    if not best[-1]:
        best = _alternate(A, best[2], near, rng, _ROUNDS)
    _, groups, labels, _ = best
    quarters = np.stack([np.flatnonzero(labels == k) for k in range(4)])
    return groups.astype(np.int64), quarters.astype(np.int64)
