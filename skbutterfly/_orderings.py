"""Learning the row and column orderings under which a matrix is a butterfly.

Layer 3 (algorithms), pure functions on arrays.

With ``N = 2**L`` and positions ``q`` (rows) and ``p`` (columns) of the
ordered matrix, the split of the classic butterfly after its ``i``-th factor
(``i = 1 .. L-1``) groups the rows by ``q mod 2**(L-i)`` and the columns by
``p // 2**(L-i)``; the matrix is an exact butterfly of block rank ``r`` when
every (row group, column group) block of every split has rank at most ``r``
(Le, Zheng, Riccietti and Gribonval). The row groups coarsen and the column
groups refine as ``i`` grows: both are binary trees, and any ordering that
respects the two trees is as good as any other. This module recovers the
trees level by level from the matrix alone, for rank one:

* the column groups of level ``i`` split those of level ``i - 1`` in two: two
  rows whose ratio is constant on each new group (rows of sibling groups)
  are found among one representative per row group, as the pair whose ratio
  takes two values per old group, in two equal halves;
* the row groups of level ``i`` join those of level ``i - 1`` in pairs: rows
  of one new group are proportional on every new column group, so the old
  groups (each by its row of largest norm) are matched by a phase- and
  scale-invariant signature of their restrictions (mutual nearest
  neighbours).

Every step takes the best candidate, never a threshold, so an exact rank-one
butterfly is recovered to rounding and any other matrix still gets valid
permutations (then factorized and measured as usual). The cost is
``O(N**2 log N)`` operations with a constant number of ``N x N`` temporaries.
This is the block-identification idea of Zheng, Puy, Riccietti, Pérez and
Gribonval (arXiv:2307.00820), with pair ratios and matching in place of their
spectral clustering.
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import itertools
from functools import partial

import numpy as np
from sklearn.utils import check_random_state

from skbutterfly._block_svd import low_rank_blocks
from skbutterfly._ks import pair_dims
from skbutterfly._parallel import map_chunks
from skbutterfly._permutations import auto_candidates
from skbutterfly._split import MIN_CHUNK, fused_range, gather_root_blocks

# Candidate rows scored at once (bounds the temporaries to this many x N x 3).
_CANDIDATE_CHUNK = 64

# Rounds of mutual-nearest-neighbour matching before pairing the rest in order.
_MATCH_ROUNDS = 8


def _bloch(a, b):
    """Point of the unit sphere (3 last axis) of the ratio ``a : b``.

    Equal for ``(a, b)`` and ``(c a, c b)`` whatever ``c != 0``, continuous,
    and different for different ratios; ``(0, 0)`` maps to the origin.
    """
    aa, bb = np.abs(a) ** 2, np.abs(b) ** 2
    total = aa + bb
    total = np.where(total > 0, total, 1)
    cross = 2 * a * np.conj(b) / total
    return np.stack([(aa - bb) / total, cross.real, cross.imag], axis=-1)


def _split_columns(A, q, candidates, groups, w):
    """Split every column group in two halves with the best partner of row ``q``.

    ``groups`` (``n_groups x size``) lists the columns of each group. A
    candidate's score is the spread of its ratio points about their means
    on the two sides of the median of a random projection, per group.
    Returns the boolean "upper half" of each column.
    """
    best, best_score = None, np.inf
    for lo in range(0, len(candidates), _CANDIDATE_CHUNK):
        rows = candidates[lo : lo + _CANDIDATE_CHUNK]
        E = _bloch(A[q][None, groups], A[rows][:, groups])  # (k, g, s, 3)
        proj = E @ w
        upper = proj > np.median(proj, axis=-1, keepdims=True)
        n_up = upper.sum(axis=-1)
        sum_up = np.einsum("kgs,kgsc->kgc", upper, E)
        sum_all = E.sum(axis=-2)
        n_lo = groups.shape[1] - n_up
        spread = np.sum(np.abs(E) ** 2, axis=(1, 2, 3)) - np.sum(
            np.sum(sum_up**2, axis=-1) / np.maximum(n_up, 1)
            + np.sum((sum_all - sum_up) ** 2, axis=-1) / np.maximum(n_lo, 1),
            axis=1,
        )
        k = int(np.argmin(spread))
        if spread[k] < best_score:
            best_score = spread[k]
            best = rows[k]
    # Exactly two halves per group, split at the median of the projection.
    order = np.argsort(_bloch(A[q][groups], A[best][groups]) @ w, axis=-1)
    half = groups.shape[1] // 2
    upper = np.zeros(A.shape[1], dtype=bool)
    upper[np.take_along_axis(groups, order, axis=-1)[:, half:].ravel()] = True
    return upper


def _signatures(A, groups, W):
    """Scale- and phase-invariant signature of each row restricted to each group.

    For ``x = A[row, group]``, ``y = x W`` (two random directions) and the
    four real entries of ``y y^H / |x|^2``: equal for proportional
    restrictions. Returns ``(n_rows, 4 * n_groups)``.
    """
    X = A[:, groups]  # (n, g, s)
    Y = X @ W  # (n, g, 2)
    norm = np.sum(np.abs(X) ** 2, axis=-1)
    norm = np.where(norm > 0, norm, 1)
    cross = Y[..., 0] * np.conj(Y[..., 1]) / norm
    sig = np.stack(
        [
            np.abs(Y[..., 0]) ** 2 / norm,
            np.abs(Y[..., 1]) ** 2 / norm,
            cross.real,
            cross.imag,
        ],
        axis=-1,
    )
    return sig.reshape(A.shape[0], -1)


def _match_pairs(S):
    """Pair the rows of ``S`` (an even number) by mutual nearest neighbours.

    Returns ``(first, second)`` index arrays. Left-overs after a few rounds
    are paired in the order of a projection.
    """
    n = S.shape[0]
    sq = np.sum(S**2, axis=1)
    D = sq[:, None] + sq[None, :] - 2 * (S @ S.T)
    np.fill_diagonal(D, np.inf)
    free = np.ones(n, dtype=bool)
    first, second = [], []
    for _ in range(_MATCH_ROUNDS):
        idx = np.flatnonzero(free)
        if idx.size == 0:
            break
        sub = D[np.ix_(idx, idx)]
        nearest = np.argmin(sub, axis=1)
        mutual = nearest[nearest] == np.arange(idx.size)
        keep = mutual & (np.arange(idx.size) < nearest)
        first.extend(idx[keep])
        second.extend(idx[nearest[keep]])
        free[idx[keep]] = free[idx[nearest[keep]]] = False
    rest = np.flatnonzero(free)
    if rest.size:
        rest = rest[np.argsort(S[rest, 0], kind="stable")]
        first.extend(rest[0::2])
        second.extend(rest[1::2])
    return np.asarray(first, dtype=np.int64), np.asarray(second, dtype=np.int64)


def learn_orderings(A, *, learn_rows=True, learn_cols=True, random_state=None):
    """Row and column permutations under which ``A`` is closest to a butterfly.

    Recovers the two cluster trees of the classic rank-one butterfly (see the
    module's docstring) and turns them into permutations: the factors of
    ``A[row_perm][:, perm]`` are then found by the hierarchical algorithm.

    Parameters
    ----------
    A : ndarray of shape (N, N)
        ``N`` a power of two. A side that is not learned is kept in its given
        order.
    learn_rows, learn_cols : bool, default=True
        Which sides to learn.
    random_state : int, RandomState instance or None, default=None
        Seeds the random directions of the signatures (the result is a
        deterministic function of ``A`` and the seed).

    Returns
    -------
    row_perm, perm : ndarray of int64 of shape (N,)
        ``A[row_perm][:, perm]`` is the ordered matrix.

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly._orderings import learn_orderings
    >>> from skbutterfly import butterfly_factorize
    >>> from skbutterfly.datasets import random_butterfly
    >>> rng = np.random.default_rng(0)
    >>> A = random_butterfly(32, random_state=0).toarray()
    >>> A = A[rng.permutation(32)][:, rng.permutation(32)]
    >>> rows, cols = learn_orderings(A, random_state=0)
    >>> B = butterfly_factorize(A, permutation=cols, row_permutation=rows)
    >>> bool(np.linalg.norm(B.toarray() - A) < 1e-10 * np.linalg.norm(A))
    True
    """
    rng = check_random_state(random_state)
    N = A.shape[0]
    L = N.bit_length() - 1
    A = np.asarray(A, dtype=np.result_type(A.dtype, np.float64))
    complex_ = A.dtype.kind == "c"
    positions = np.arange(N, dtype=np.int64)
    # Row and column position bits assigned so far; the labels of the groups
    # of the current level (rows: low bits still free; columns: high bits).
    row_pos = np.zeros(N, dtype=np.int64) if learn_rows else positions.copy()
    col_pos = np.zeros(N, dtype=np.int64) if learn_cols else positions.copy()
    row_label = positions.copy()
    w = rng.standard_normal(3)
    # Anchor: the row of largest norm (its ratios are the best conditioned).
    norms = np.sum(np.abs(A) ** 2, axis=1)
    anchor = int(np.argmax(norms))
    for i in range(1, L):
        shift = L - i
        # Columns of level i: split each group of level i - 1 in two.
        if learn_cols:
            old = col_pos >> (shift + 1)
            groups = np.argsort(old, kind="stable").reshape(2 ** (i - 1), -1)
            if learn_rows:
                mine = row_label == row_label[anchor]
                reps = np.unique(row_label[~mine], return_index=True)[1]
                candidates = np.flatnonzero(~mine)[reps]
            else:
                # The sibling rows are known: same low bits at level i.
                sib = (row_pos % 2**shift == row_pos[anchor] % 2**shift) & (
                    row_pos % 2 ** (shift + 1) != row_pos[anchor] % 2 ** (shift + 1)
                )
                candidates = np.flatnonzero(sib)[:1]
            upper = _split_columns(A, anchor, candidates, groups, w)
            col_pos |= upper.astype(np.int64) << shift
        # Rows of level i: join the groups of level i - 1 in pairs.
        if learn_rows:
            groups = np.argsort(col_pos >> shift, kind="stable").reshape(2**i, -1)
            shape = (groups.shape[1], 2)
            W = rng.standard_normal(shape)
            if complex_:
                W = W + 1j * rng.standard_normal(shape)
            labels, inverse = np.unique(row_label, return_inverse=True)
            # One representative per group: its row of largest norm.
            order = np.lexsort((-norms, inverse))
            starts = np.searchsorted(inverse[order], np.arange(labels.size))
            first, second = _match_pairs(_signatures(A[order[starts]], groups, W))
            # The pair index becomes the new label; the second of each pair
            # gets the position bit of this level.
            new = np.empty(labels.size, dtype=np.int64)
            new[first] = new[second] = np.arange(first.size)
            bit = np.zeros(labels.size, dtype=bool)
            bit[second] = True
            row_pos |= bit[inverse].astype(np.int64) << (L - i)
            row_label = new[inverse]
        else:
            row_label = row_pos % 2**shift
    if learn_cols:
        # The two columns of each last group, in any order.
        order = np.argsort(col_pos, kind="stable")
        col_pos[order[1::2]] |= 1
    if learn_rows:
        # The two last row groups (labels 0 and 1): position bit 0.
        row_pos |= row_label
    return np.argsort(row_pos, kind="stable"), np.argsort(col_pos, kind="stable")


# The orderings found from the matrix: a search over candidates, a learning.
SEARCHES = ("auto", "learn")

# Candidate pairs of "auto" factorized in full after the screening, and the
# number of blocks of the first split on which the screening measures them.
AUTO_KEEP = 3
SCREEN_BLOCKS = 32


def ordering_pairs(A, arch, orderings, random_state):
    """Candidate ``(row_perm, perm)`` pairs of planned ``orderings``.

    ``"learn"`` on a side gives one pair (the other side must be one
    permutation); ``"auto"`` the candidates of :func:`auto_candidates`;
    with candidates on both sides, all combinations.
    """
    M, N = arch.padded_shape
    names = ("row_permutation", "permutation")
    if "learn" in orderings:
        if M != N or N & (N - 1):
            raise ValueError(
                "'learn' needs a square architecture of power-of-two size, got "
                f"the padded shape ({M}, {N}) for n_samples={A.shape[0]}, "
                f"n_features={A.shape[1]}."
            )
        bases = []
        for spec, name in zip(orderings, names):
            if spec == "learn":
                bases.append(np.arange(N))
            elif spec == "auto" or len(spec) != 1:
                raise ValueError(
                    f"with 'learn' on the other side, {name} must be one "
                    f"permutation (None, a name or an index array), got "
                    f"{'auto' if spec == 'auto' else f'{len(spec)} candidates'}."
                )
            else:
                bases.append(np.arange(N) if spec[0] is None else spec[0])
        padded = np.zeros((N, N), dtype=A.dtype)
        padded[: A.shape[0], : A.shape[1]] = A
        rows, cols = learn_orderings(
            padded[bases[0]][:, bases[1]],
            learn_rows=orderings[0] == "learn",
            learn_cols=orderings[1] == "learn",
            random_state=random_state,
        )
        return [(bases[0][rows], bases[1][cols])]
    sides = [
        auto_candidates(n) if spec == "auto" else spec
        for spec, n in zip(orderings, (M, N))
    ]
    return list(itertools.product(*sides))


def screen_pairs(A, patterns, order, pairs, svd_tol, n_jobs, random_state):
    """The ``AUTO_KEEP`` pairs with the smallest error at the first split.

    The first split of the tree alone is a two-factor problem whose optimal
    error is a lower bound of the error of any butterfly in that ordering;
    it is estimated on ``SCREEN_BLOCKS`` of its blocks drawn at random (the
    same for every pair): one small batched SVD per pair.
    """
    i = order[0]
    left = fused_range(patterns, 0, i)
    right = fused_range(patterns, i + 1, len(patterns) - 1)
    _, _, alpha, rank, delta, _, _ = pair_dims(left, right)
    rng = check_random_state(random_state)
    select = np.sort(rng.permutation(delta * alpha)[:SCREEN_BLOCKS])
    solve = partial(low_rank_blocks, rank=rank, tol=svd_tol, oversampling=0)
    scores = []
    for row_perm, perm in pairs:
        blocks = gather_root_blocks(A, perm, row_perm, left, right, select)
        _, R = map_chunks(solve, (blocks,), n_jobs, min_chunk=MIN_CHUNK)
        scores.append(np.linalg.norm(blocks) ** 2 - np.linalg.norm(R) ** 2)
    keep = np.argsort(scores, kind="stable")[:AUTO_KEEP]
    return [pairs[k] for k in sorted(keep)]
