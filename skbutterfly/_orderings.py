"""Learning the row and column orderings under which a matrix is a butterfly.

Layer 3 (algorithms), pure functions on arrays.

With ``N = 2**L`` and positions ``q`` (rows) and ``p`` (columns) of the
ordered matrix, the split of the classic butterfly after its ``i``-th factor
(``i = 1 .. L-1``) groups the rows by ``q mod 2**(L-i)`` and the columns by
``p // 2**(L-i)``; the matrix is an exact butterfly of block rank ``r`` when
every (row group, column group) block of every split has rank at most ``r``
(Le, Zheng, Riccietti and Gribonval). The row groups coarsen and the column
groups refine as ``i`` grows: both are binary trees, and any ordering that
respects the two trees is as good as any other.

:func:`learn_orderings` recovers the two trees from the matrix alone and
turns them into permutations:

* at block rank two or more, an exact butterfly of block rank two is first
  identified by :mod:`skbutterfly._orderings_rank`;
* otherwise the trees are searched level by level by least squares
  (:mod:`skbutterfly._orderings_levels`), then polished
  (:mod:`skbutterfly._orderings_polish`). At block rank two the search runs
  once from the rows and once from the columns (on the transpose in
  bit-reversed order, where level 2 holds the columns' smallest groups), and
  the best of the two orderings and of the rows of the first with the
  columns of the second (by the energy beyond rank two of the blocks of
  every split) is kept. At rank three or more (at the first levels every
  grouping fits a block rank ``r`` when groups have at most ``r`` members),
  the rank-one criterion is used as a heuristic.

An exact butterfly costs ``O(N**2)`` in all; a noisy one
``O(N**2 min(N, 1024))`` per level, plus the polishing
(``O(N**2 log N + (N / 8)**3)``); a constant number of ``N x N``
temporaries. :func:`ordering_pairs` and :func:`screen_pairs` plan the
candidate orderings of ``"auto"`` and ``"learn"`` for the hierarchical
factorization.
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import itertools
from functools import partial

import numpy as np
from sklearn.utils import check_random_state
from threadpoolctl import threadpool_limits

from skbutterfly._block_svd import low_rank_blocks
from skbutterfly._ks import pair_dims
from skbutterfly._orderings_levels import gram, learn_trees
from skbutterfly._orderings_rank import learn_rank_two
from skbutterfly._parallel import map_chunks
from skbutterfly._permutations import auto_candidates, bit_reversal_permutation
from skbutterfly._split import MIN_CHUNK, fused_range, gather_root_blocks


def learn_orderings(A, *, learn_rows=True, learn_cols=True, rank=1, random_state=None):
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
    rank : int, default=1
        Block rank of the butterfly sought. From 2 on, the orderings of an
        exact butterfly of block rank 2 are identified first
        (:func:`~skbutterfly._orderings_rank.learn_rank_two`); when there is
        none, rank 2 is searched by least squares (see the module's
        docstring), and rank 3 or more uses the rank-one criterion as a
        heuristic.
    random_state : int, RandomState instance or None, default=None
        Seeds the random draws of the splits and sketches (the result is a
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
    if rank >= 2:
        found = learn_rank_two(
            A, learn_rows=learn_rows, learn_cols=learn_cols, random_state=rng
        )
        if found is not None:
            return found
    N = A.shape[0]
    if N < 2:
        return np.arange(N, dtype=np.int64), np.arange(N, dtype=np.int64)
    A = np.asarray(A, dtype=np.result_type(A.dtype, np.float64))
    if rank == 2 and learn_rows and learn_cols and N >= 16:
        # Level 2 is found robustly on each side: once from the rows, once
        # from the columns (the transpose, in bit-reversed order on both
        # sides, is a butterfly whose rows are the columns); the rows of
        # the first and the columns of the second are tried too.
        rev = bit_reversal_permutation(N)
        first = learn_trees(A, True, True, 2, rng)
        cols, rows = learn_trees(A.T, True, True, 2, rng)
        second = rows[rev], cols[rev]
        tries = [first, second, (first[0], second[1])]
        return min(tries, key=lambda t: _split_residual(A[t[0]][:, t[1]], 2))
    return learn_trees(A, learn_rows, learn_cols, 1, rng)


def _split_residual(M, rank):
    """Energy of the ordered ``M`` beyond rank ``rank`` in the blocks of every split."""
    N = M.shape[0]
    L = N.bit_length() - 1
    total = 0.0
    for i in range(1, L):
        s = L - i
        if min(2**i, 2**s) <= rank:  # every grouping fits
            continue
        blocks = M.reshape(2**i, 2**s, 2**i, 2**s).transpose(1, 2, 0, 3)
        if i > s:
            blocks = np.swapaxes(blocks, -1, -2)
        w = np.linalg.eigvalsh(gram(blocks))
        total += np.maximum(w[..., :-rank], 0).sum()
    return total


# The orderings found from the matrix: a search over candidates, a learning.
SEARCHES = ("auto", "learn")

# Candidate pairs of "auto" factorized in full after the screening, and the
# number of blocks of each split on which the screening measures them.
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
        # Many small batched eigensolvers: BLAS threads only slow them down.
        with threadpool_limits(limits=1, user_api="blas"):
            rows, cols = learn_orderings(
                padded[bases[0]][:, bases[1]],
                learn_rows=orderings[0] == "learn",
                learn_cols=orderings[1] == "learn",
                rank=arch.rank,
                random_state=random_state,
            )
        return [(bases[0][rows], bases[1][cols])]
    sides = [
        auto_candidates(n) if spec == "auto" else spec
        for spec, n in zip(orderings, (M, N))
    ]
    return list(itertools.product(*sides))


def screen_pairs(A, patterns, pairs, svd_tol, n_jobs, random_state):
    """The ``AUTO_KEEP`` pairs with the smallest lower bound of their error.

    Each split of the chain alone (the product of the factors on its left
    times the product on its right) is a two-factor problem whose optimal
    error is a lower bound of the error of any butterfly in that ordering.
    Each is estimated on ``SCREEN_BLOCKS`` of its blocks drawn at random (the
    same for every pair; the residual scaled to all its blocks), and a pair
    is scored by the largest: one small batched SVD per pair and split.
    """
    rng = check_random_state(random_state)
    scores = np.zeros(len(pairs))
    # Small batched SVDs: BLAS threads only slow them down.
    with threadpool_limits(limits=1, user_api="blas"):
        for i in range(len(patterns) - 1):
            left = fused_range(patterns, 0, i)
            right = fused_range(patterns, i + 1, len(patterns) - 1)
            _, _, alpha, rank, delta, _, _ = pair_dims(left, right)
            select = np.sort(rng.permutation(delta * alpha)[:SCREEN_BLOCKS])
            solve = partial(low_rank_blocks, rank=rank, tol=svd_tol, oversampling=0)
            for k, (row_perm, perm) in enumerate(pairs):
                blocks = gather_root_blocks(A, perm, row_perm, left, right, select)
                _, R = map_chunks(solve, (blocks,), n_jobs, min_chunk=MIN_CHUNK)
                residual = np.linalg.norm(blocks) ** 2 - np.linalg.norm(R) ** 2
                scores[k] = max(scores[k], residual * (delta * alpha) / select.size)
    keep = np.argsort(scores, kind="stable")[:AUTO_KEEP]
    return [pairs[k] for k in sorted(keep)]
