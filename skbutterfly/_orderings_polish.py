"""Polishing a learned butterfly ordering: rows reassigned, subtrees exchanged.

Layer 3 (algorithms), pure functions on arrays.

The orderings of :func:`~skbutterfly._orderings.learn_orderings` are built
level by level, each level's pairing chosen on that level's residual alone.
:func:`polish_rows` reassigns the rows that fit their position worst, by an
optimal assignment on their costs at every position summed over all the
levels (any block rank). With noise, a pairing of low-energy groups that is
as good as the right one at its own level can cost much more at the levels
above it, and moving rows one at a time cannot undo it: the whole group (a
subtree of the row tree) sits in the wrong place. :func:`polish_subtrees`
(block rank one) scores a row tree as a whole and improves it by
exchanging two subtrees of one level.

With ``N = 2**L`` and the rows of the ordered matrix ``M`` at positions
``q``, the row groups of level ``l`` are ``{q : q mod 2**(L-l) = g}``; group
``g`` of level ``l`` merges groups ``g`` and ``g + 2**(L-l)`` of level
``l-1``, and its blocks are its rows on the column groups of ``2**(L-l)``
consecutive columns. Each group is kept as its *compressed row*: on every
column group, the leading singular value times the right singular vector
of the merge of its two children's compressed rows. A merge is a ``2 x 2``
eigenproblem per column group, solved in closed form, and its smallest
eigenvalue is the energy the merge loses beyond rank one; the *tree cost*
is that energy summed over all merges of levels ``1 .. L-1`` (at level 1
exactly the residual of the pairs; above, the residual of the compressed
blocks, the measure of the level-by-level search).

Exchanging groups ``a`` and ``b`` of level ``i`` (with their subtrees)
changes only the merges on the paths from ``a`` and ``b`` up to the level
where the paths meet: the gain of every exchange of groups within one
group of level ``i + depth`` is computed from the compressed rows at once
(``O(N)`` per exchange and level). The best exchange in each group of level
``i + depth`` is made (these do not interact below that level), or the
best one alone, whichever leaves the lower tree cost, recomputed; it is
kept when that cost decreases. Each round takes the level whose best
exchange gains most (a bottom-up sweep makes spurious exchanges at low
levels before the real one above them), until no exchange helps.
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
from scipy.optimize import linear_sum_assignment

# Exchanges are tried between groups of one group this many levels up.
_DEPTH = 3
# Rounds of exchanges (one level's each) per level of the tree, at most.
_ROUNDS = 3
# Entries of the temporaries of the gains computed at once.
_CHUNK = 2**22


def _merge(x1, x2, width):
    """Merge compressed rows ``x1, x2`` (``(..., N)``) on column groups of ``width``.

    Returns the compressed row of the merge and its loss (the smaller
    eigenvalue of the ``2 x 2`` Gram matrix of every column group, summed).
    """
    shape = x1.shape
    b1 = x1.reshape(*shape[:-1], -1, width)
    b2 = x2.reshape(*shape[:-1], -1, width)
    p = np.sum(np.abs(b1) ** 2, axis=-1)
    q = np.sum(np.abs(b2) ** 2, axis=-1)
    x = np.sum(b1 * np.conj(b2), axis=-1)  # Gram [[p, x], [x*, q]]
    root = np.hypot((p - q) / 2, np.abs(x))
    top = (p + q) / 2 + root
    loss = np.maximum((p + q) / 2 - root, 0)
    # Leading eigenvector, from the better-conditioned of the two rows.
    first = p >= q
    u1 = np.where(first, top - q, x)
    u2 = np.where(first, np.conj(x), top - p)
    norm = np.hypot(np.abs(u1), np.abs(u2))
    zero = norm == 0
    norm = np.where(zero, 1, norm)
    u1 = np.where(zero, 1, u1 / norm)
    u2 = np.where(zero, 0, u2 / norm)
    y = np.conj(u1)[..., None] * b1 + np.conj(u2)[..., None] * b2
    return y.reshape(shape), loss.sum(axis=-1)


def _tree(M):
    """Compressed rows and merge losses of every group of every level of ``M``.

    Returns ``rows, losses``: ``rows[l]`` of shape ``(2**(L-l), N)``
    (``rows[0]`` is ``M``), ``losses[l]`` of shape ``(2**(L-l),)``
    (``losses[0]`` zero), for ``l = 0 .. L-1``.
    """
    N = M.shape[0]
    L = N.bit_length() - 1
    rows, losses = [M], [np.zeros(N)]
    for level in range(1, L):
        half = 1 << (L - level)
        y, loss = _merge(rows[-1][:half], rows[-1][half:], half)
        rows.append(y)
        losses.append(loss)
    return rows, losses


def _exchanges(L, i, depth):
    """Pairs ``a < b`` of level-``i`` groups, not siblings, in a group ``depth`` up."""
    s = L - i
    a, b = np.triu_indices(1 << s, 1)
    top = 1 << max(s - depth, 0)
    keep = ((b - a) % top == 0) & ((b - a) % (1 << (s - 1)) != 0)
    return a[keep], b[keep]


def _gains(rows, losses, i, a, b):
    """Change of the tree cost from exchanging groups ``a[k], b[k]`` of level ``i``.

    Counted on the two paths up to the level where they meet (the merges
    above it see the same rows; their compressed rows change little).
    """
    L = len(rows)
    # After the exchange, the place of a holds b's subtree and conversely.
    ya, yb = rows[i][b], rows[i][a]
    gain = np.zeros(a.size)
    open_ = np.ones(a.size, dtype=bool)
    for level in range(i + 1, L):
        half = 1 << (L - level)
        ga, gb = a % half, b % half
        met = ga == gb
        below = rows[level - 1]
        na, nb = a % (2 * half), b % (2 * half)  # the path's groups one level down
        # Where the paths meet, the two changed groups are the siblings.
        sibling_a = np.where(met[:, None], yb, below[(na + half) % (2 * half)])
        ya_new, loss_a = _merge(ya, sibling_a, half)
        yb_new, loss_b = _merge(yb, below[(nb + half) % (2 * half)], half)
        change = loss_a - losses[level][ga]
        change += np.where(met, 0, loss_b - losses[level][gb])
        gain += np.where(open_, change, 0)
        open_ &= ~met
        if not open_.any():
            break
        ya, yb = ya_new, yb_new
    return gain


def _independent(gain, a, top):
    """The exchanges of negative gain, best first, at most one per group ``top`` up.

    Exchanges in different groups of that level change different merges
    below it: their gains add up.
    """
    best = np.argsort(gain, kind="stable")
    best = best[gain[best] < 0]
    _, first = np.unique(a[best] % top, return_index=True)
    return best[np.sort(first)]


def _exchange(order, L, i, a, b):
    """``order`` with the groups ``a`` and ``b`` of level ``i`` exchanged."""
    step = 1 << (L - i)
    new = order.copy()
    new[a::step], new[b::step] = order[b::step], order[a::step]
    return new


def polish_subtrees(M, *, depth=_DEPTH, rounds=_ROUNDS):
    """Reorder the rows of the ordered matrix ``M`` by exchanging subtrees.

    See the module's docstring: each round finds the level whose best
    exchange of two groups (within one group ``depth`` levels up) gains
    most, and makes that level's exchanges; rounds continue while the tree
    cost decreases, at most ``rounds`` per level of the tree. The tree cost
    never increases. Each round costs ``O(N**2 depth)`` operations (the
    gains of every candidate exchange of every level, then the new tree),
    so ``O(N**2 log N)`` in all, and a constant number of ``N x N`` arrays.

    Parameters
    ----------
    M : ndarray of shape (N, N)
        ``N`` a power of two, rows and columns in the order of a rank-one
        butterfly's trees.
    depth, rounds : int
        The search's bounds.

    Returns
    -------
    order : ndarray of int64 of shape (N,)
        The new order of the rows of ``M``.

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly import butterfly_factorize
    >>> from skbutterfly._orderings_polish import polish_subtrees
    >>> from skbutterfly.datasets import random_butterfly
    >>> M = random_butterfly(16, random_state=0).toarray()
    >>> def error(X):
    ...     B = butterfly_factorize(X)
    ...     return np.linalg.norm(B.toarray() - X) / np.linalg.norm(X)
    >>> order = np.arange(16)
    >>> order[[1, 3]] = [3, 1]  # two rows of the first level exchanged
    >>> bool(error(M[order]) > 1e-2)
    True
    >>> fixed = order[polish_subtrees(M[order])]
    >>> bool(error(M[fixed]) < 1e-12)
    True
    """
    N = M.shape[0]
    L = N.bit_length() - 1
    order = np.arange(N, dtype=np.int64)
    if L < 2:
        return order
    rows, losses = _tree(M)
    cost = sum(float(loss.sum()) for loss in losses)
    candidates = [_exchanges(L, i, depth) for i in range(L - 1)]
    chunk = max(1, _CHUNK // (4 * N))
    for _ in range(rounds * L):
        # The level whose best exchange gains most, over all the levels.
        best = None
        for i, (a, b) in enumerate(candidates):
            if not a.size:
                continue
            gain = np.concatenate(
                [
                    _gains(rows, losses, i, a[k : k + chunk], b[k : k + chunk])
                    for k in range(0, a.size, chunk)
                ]
            )
            if gain.min() < 0 and (best is None or gain.min() < best[1].min()):
                best = i, gain
        if best is None:
            break
        i, gain = best
        a, b = candidates[i]
        batch = _independent(gain, a, 1 << max(L - i - depth, 0))
        # All the independent exchanges at once or the best alone, whichever
        # leaves the lower tree cost (the gains are local).
        found = None
        for kept in (batch, batch[:1]) if batch.size > 1 else (batch,):
            new = order
            for k in kept:
                new = _exchange(new, L, i, a[k], b[k])
            tree = _tree(M[new])
            new_cost = sum(float(loss.sum()) for loss in tree[1])
            if found is None or new_cost < found[0]:
                found = new_cost, new, tree
        if found[0] >= cost:
            break
        cost, order, (rows, losses) = found
    return order


def _position_costs(X, fits, positions, leverages=None):
    """Residual of the rows ``X`` off the fits of the groups of ``positions``.

    ``fits`` maps levels ``i`` to the orthonormal row directions of every
    (row group, column group) block, ``(2**s, 2**i, rank, 2**s)``; a row at
    position ``t`` belongs to row group ``t mod 2**s``. ``positions`` of
    shape ``(n_rows,)`` gives each row's cost at its own position; of shape
    ``(1, n_pos)``, every row's cost at every position, ``(n_rows, n_pos)``.
    With ``leverages`` (per level, each row's leverage in its blocks,
    ``(2**s, 2**i, 2**i)``), a row's own residual in a block is divided by
    ``(1 - leverage)**2``: about its residual off the fit without it.
    """
    N = X.shape[1]
    L = N.bit_length() - 1
    energy = np.sum(np.abs(X) ** 2, axis=1)
    cost = energy * len(fits)
    if positions.ndim == 2:
        cost = np.repeat(cost[:, None], positions.shape[1], axis=1)
    for i, V in fits.items():
        s = L - i
        x = X.reshape(len(X), 2**i, 1, 2**s)
        if positions.ndim == 1:
            kept = np.sum(
                np.abs(np.sum(x * np.conj(V[positions % 2**s]), axis=-1)) ** 2, axis=-1
            )
            if leverages is None:
                cost -= np.sum(kept, axis=-1)
            else:
                h = leverages[i][positions % 2**s, :, positions // 2**s]
                resid = np.maximum(np.sum(np.abs(x[:, :, 0]) ** 2, axis=-1) - kept, 0)
                resid /= np.maximum(1 - h, np.sqrt(np.finfo(float).eps)) ** 2
                cost += resid.sum(axis=-1) - energy
        else:
            groups, where = np.unique(positions[0] % 2**s, return_inverse=True)
            kept = np.einsum("rcjk,uctk->ruct", x, np.conj(V[groups]))
            cost -= np.sum(np.abs(kept) ** 2, axis=(-2, -1))[:, where]
    return cost


def polish_rows(M, rank=1, rounds=4):
    """Reassign the rows of the ordered matrix ``M`` that fit their position worst.

    The cost of a row at a position is its residual off the rank-``rank``
    fits of the blocks of the row groups that the position belongs to,
    summed over the levels whose blocks have more than ``rank`` rows and
    columns (the groups being those of ``M``'s current order; from rank 2
    on, a row's residual at its own position is corrected for its share in
    the fits, which it would otherwise pull to itself). The
    ``max(16, N / 8)`` rows of largest cost at their own position are then
    placed on their positions by an optimal assignment (a row-by-row
    improvement of the level-by-level search, whose early choices only see
    their own level). Returns the new order of the rows of ``M``.
    """
    N = M.shape[0]
    L = N.bit_length() - 1
    order = np.arange(N)
    k = min(N, max(16, N // 8))
    for _ in range(rounds):
        X = M[order]
        # Row directions of every block of every level: rows grouped by
        # position mod 2**s, columns by position // 2**s.
        fits, leverages = {}, {}
        for i in range(1, L):
            s = L - i
            if min(2**i, 2**s) <= rank:  # every grouping fits
                continue
            blocks = X.reshape(2**i, 2**s, 2**i, 2**s).transpose(1, 2, 0, 3)
            U, _, Vh = np.linalg.svd(blocks, full_matrices=False)
            # (2**s groups, 2**i col groups, rank, 2**s)
            fits[i] = Vh[..., :rank, :]
            leverages[i] = np.sum(np.abs(U[..., :rank]) ** 2, axis=-1)
        if not fits:
            break
        # Each row's cost at its own position: its own group at every level.
        own = _position_costs(X, fits, np.arange(N))
        suspects = np.sort(np.argsort(-own, kind="stable")[:k])
        C = _position_costs(X[suspects], fits, suspects[None, :])
        _, placed = linear_sum_assignment(C)
        if np.array_equal(placed, np.arange(k)):
            break
        new = order.copy()
        new[suspects[placed]] = order[suspects]
        order = new
    return order
