"""Hierarchical butterfly factorization: trees, two-factor steps, orthonormalisation.

The whole hierarchy works on the 4-D values of Kronecker-sparse patterns. A
node of the tree holds a contiguous range ``start..stop`` of factors and, as
its target, the values of their fused pattern (the root: the permuted, padded
matrix as pattern ``(1, M, N, 1)``). Splitting a node after factor ``i`` is the
two-factor problem of Zheng et al., arXiv:2110.01235: one batched rank-``r``
approximation of all its ``b1 x c2`` blocks (:func:`~skbutterfly._ks.split_blocks`),
whose two factors become the targets of the children
(:func:`~skbutterfly._ks.merge_blocks`).
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import functools
import itertools
from dataclasses import dataclass
from functools import partial
from numbers import Real

import numpy as np
from sklearn.utils import check_random_state

from skbutterfly._block_svd import low_rank_blocks
from skbutterfly._ks import (
    class_blocks,
    fuse_values,
    merge_blocks,
    pair_dims,
    split_blocks,
)
from skbutterfly._operator import ButterflyMatrix, frobenius_error
from skbutterfly._orderings import learn_orderings
from skbutterfly._parallel import map_chunks
from skbutterfly._patterns import architecture, fuse_patterns
from skbutterfly._permutations import auto_candidates, permutation_candidates
from skbutterfly._progress import Progress
from skbutterfly._scaling import (
    ldexp_or_inf,
    scale_pow2,
    scaling_exponent,
    split_exponent,
)
from skbutterfly._slabs import (
    SlabSource,
    factor_job,
    is_dask_array,
    map_slabs,
    residual_job,
    slab_source,
)
from skbutterfly._trees import split_order
from skbutterfly._validation import check_matrix

# Below this many blocks a split runs as one call (joblib would cost more).
_MIN_CHUNK = 256

# Default accuracy of the block SVDs of large blocks (subspace iteration).
_SVD_TOL = 1e-3
# Entries of the block products formed at once by _root_error.
_ERROR_ENTRIES = 1 << 20


# ----------------------------------------------------------------------------
# Two-factor step and orthonormalisation on 4-D values
# ----------------------------------------------------------------------------


def _herm(X):
    return np.conj(np.swapaxes(X, -1, -2))


def _thin_qr(M):
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


def _left_normalize(K1, K2):
    """Orthonormalise the class blocks of ``K1``, pushing ``T`` into ``K2``."""
    U, V = class_blocks(K1, K2)
    Q, T = _thin_qr(U)
    return merge_blocks(Q, T @ V, K1.shape, K2.shape)


def _right_normalize(K1, K2):
    """Orthonormalise the class blocks of ``K2`` (rows), pushing into ``K1``."""
    U, V = class_blocks(K1, K2)
    Q, T = _thin_qr(_herm(V))
    return merge_blocks(U @ _herm(T), _herm(Q), K1.shape, K2.shape)


def _split_factors(blocks, rank, orthonormalize, svd_tol, n_jobs):
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
    U, R = map_chunks(solve, (blocks,), n_jobs, min_chunk=_MIN_CHUNK)
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


def _split(blocks, left, right, orthonormalize, svd_tol, n_jobs):
    """Two-factor step (Zheng et al., arXiv:2110.01235) on the stacked blocks of a node.

    ``blocks`` has shape ``(n_classes, b1, c2)`` in the order of
    :func:`split_blocks`. Returns the values of the left and the right
    factor (see :func:`_split_factors`).
    """
    a1, b1, alpha, r, delta, c2, d2 = pair_dims(left, right)
    U, R = _split_factors(blocks, r, orthonormalize, svd_tol, n_jobs)
    U = U.reshape(a1, delta, alpha, d2, b1, r)
    R = R.reshape(a1, delta, alpha, d2, r, c2)
    return merge_blocks(U, R, left, right)


def _root_split_slabs(
    source, perm, left, right, orthonormalize, svd_tol, n_jobs, working_memory, progress
):
    """The root split of an out-of-core matrix, slab by slab.

    Each slab of whole column groups of the root target holds whole blocks
    (:mod:`skbutterfly._slabs`); its classes are solved on their own and
    only their factors are kept, then assembled as :func:`_split` would.
    Records :math:`\\|A\\|_F^2` on ``source``.
    """
    _, b1, alpha, r, delta, c2, _ = pair_dims(left, right)
    solve = partial(
        _split_factors,
        rank=r,
        orthonormalize=orthonormalize,
        svd_tol=svd_tol,
        n_jobs=None if is_dask_array(source.data) else n_jobs,
    )
    parts = map_slabs(
        source,
        perm,
        (left.shape[0], right.shape[1]),
        delta,
        c2,
        factor_job,
        lambda g0, g1: (solve,),
        working_memory=working_memory,
        progress=progress,
    )
    source.sq_norm = sum(sq for _, sq in parts)
    U = np.concatenate([u.reshape(delta, -1, b1, r) for (u, _), _ in parts], axis=1)
    R = np.concatenate([v.reshape(delta, -1, r, c2) for (_, v), _ in parts], axis=1)
    return merge_blocks(
        U.reshape(1, delta, alpha, 1, b1, r),
        R.reshape(1, delta, alpha, 1, r, c2),
        left,
        right,
    )


def _slab_error(source, factors, patterns, perm, split, working_memory, progress):
    """``||A - B||_F`` for an out-of-core ``A``: one more pass over its slabs.

    The model's class blocks at the root split are those of the fused left
    and right parts (as in :func:`_root_error`); each slab's residual is
    formed on its entries only (padding excluded).
    """
    left = functools.reduce(fuse_values, factors[: split + 1])
    right = functools.reduce(fuse_values, factors[split + 1 :])
    U, V = class_blocks(left, right)
    U, V = U[0, :, :, 0], V[0, :, :, 0]
    delta, _, b1, r = U.shape
    c2 = V.shape[-1]
    parts = map_slabs(
        source,
        perm,
        (patterns[0].shape[0], patterns[-1].shape[1]),
        delta,
        c2,
        residual_job,
        lambda g0, g1: (
            U[:, g0:g1].reshape(-1, b1, r),
            V[:, g0:g1].reshape(-1, r, c2),
        ),
        working_memory=working_memory,
        progress=progress,
    )
    return float(np.sqrt(sum(parts)))


def _root_blocks(A, perm, row_perm, left, right, select=None):
    """Blocks of the root split, gathered from ``A`` in one pass.

    The root target is ``A_padded[row_perm][:, perm]`` (pattern
    ``(1, M, N, 1)``); this builds its stacked blocks (as
    ``split_blocks(...).reshape(-1, b1, c2)`` would) without forming the
    padded or the permuted matrix. Rows and columns past ``A``'s shape are
    zeros. ``select`` (indices into that stack) gathers only those blocks.
    """
    _, b1, alpha, _, delta, c2, _ = pair_dims(left, right)
    m, n = A.shape
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


@dataclass
class _Node:
    """A node of the tree: factors ``start..stop`` and their fused values.

    ``normal`` is ``"left"`` when the node's class blocks are orthonormal
    against its right neighbour, ``"right"`` against its left neighbour. The
    classes depend on the neighbour only through its outer dimension (``a`` on
    the right, ``d`` on the left), which its own splits do not change, so the
    state stays valid until the node's values change.
    """

    start: int
    stop: int
    values: np.ndarray | None
    normal: str | None = None


def _fused(patterns, start, stop):
    return functools.reduce(fuse_patterns, patterns[start : stop + 1])


def _move_centre(nodes, centre):
    """Orthonormalise every node left and right of ``nodes[centre]`` (§2.7)."""
    for j in range(centre):
        if nodes[j].normal != "left":
            nodes[j].values, nodes[j + 1].values = _left_normalize(
                nodes[j].values, nodes[j + 1].values
            )
            nodes[j].normal, nodes[j + 1].normal = "left", None
    for j in range(len(nodes) - 1, centre, -1):
        if nodes[j].normal != "right":
            nodes[j - 1].values, nodes[j].values = _right_normalize(
                nodes[j - 1].values, nodes[j].values
            )
            nodes[j].normal, nodes[j - 1].normal = "right", None


def _factorize_chain(
    A,
    patterns,
    perm,
    row_perm,
    order,
    orthonormalize,
    svd_tol,
    n_jobs,
    progress,
    working_memory=None,
):
    """Factors of ``A_padded[row_perm][:, perm]`` and the blocks of its root split.

    Returns the 4-D values of the factors, left to right, and the stacked
    blocks of the root target (``None`` for one factor, which is the target,
    and for an out-of-core ``A``, a :class:`~skbutterfly._slabs.SlabSource`
    whose root split runs slab by slab within ``working_memory`` MiB).
    """
    n_factors = len(patterns)
    if n_factors == 1:
        (pattern,) = patterns
        if isinstance(A, SlabSource):
            A = A.toarray()
        target = _root_blocks(A, perm, row_perm, pattern, pattern)
        return [target.reshape(pattern)], None
    nodes = [_Node(0, n_factors - 1, None)]
    root_blocks = None
    for step, i in enumerate(order, start=1):
        k = next(j for j, node in enumerate(nodes) if node.start <= i < node.stop)
        if orthonormalize:
            _move_centre(nodes, k)
        node = nodes[k]
        left = _fused(patterns, node.start, i)
        right = _fused(patterns, i + 1, node.stop)
        if node.values is None and isinstance(A, SlabSource):
            K1, K2 = _root_split_slabs(
                A,
                perm,
                left,
                right,
                orthonormalize,
                svd_tol,
                n_jobs,
                working_memory,
                progress,
            )
        else:
            if node.values is None:
                blocks = root_blocks = _root_blocks(A, perm, row_perm, left, right)
            else:
                b1, c2 = left.b, right.c
                blocks = split_blocks(node.values, left, right).reshape(-1, b1, c2)
            # Free the node's target before its children are built.
            node.values = None
            n_blocks = blocks.shape[0]
            K1, K2 = _split(blocks, left, right, orthonormalize, svd_tol, n_jobs)
            del blocks
            progress(
                f"split {step}/{n_factors - 1}: F_{node.start + 1}..F_{i + 1} | "
                f"F_{i + 2}..F_{node.stop + 1}, {n_blocks} blocks of "
                f"{left.b} x {right.c}"
            )
        nodes[k : k + 1] = [
            _Node(node.start, i, K1, "left" if orthonormalize else None),
            _Node(i + 1, node.stop, K2),
        ]
    return [node.values for node in nodes], root_blocks


def _root_error(factors, root_blocks, split):
    """``||T - F_1 ... F_J||_F`` from the root target's blocks ``T``.

    The product's class blocks at the root split (after factor ``split``)
    are ``U V``, those of the fused left and right parts
    (:func:`class_blocks`), in the order of the root blocks: no dense
    operator is formed. The squared error is first expanded as
    :math:`\\|T\\|^2 - 2\\,\\mathrm{Re}\\langle T, UV\\rangle + \\|UV\\|^2`
    (one contraction); below :math:`100\\sqrt{\\epsilon}\\,\\|T\\|^2` that
    expansion loses digits to cancellation, and the residual blocks are
    formed and summed instead.
    """
    if root_blocks is None:
        return 0.0
    left = functools.reduce(fuse_values, factors[: split + 1])
    right = functools.reduce(fuse_values, factors[split + 1 :])
    U, V = class_blocks(left, right)
    U = U.reshape(-1, *U.shape[-2:])
    V = V.reshape(-1, *V.shape[-2:])
    norm2 = float(np.vdot(root_blocks, root_blocks).real)
    cross = np.einsum("kbr,kbc,krc->", U.conj(), root_blocks, V.conj(), optimize=True)
    model2 = np.einsum("kbr,kbs,krc,ksc->", U.conj(), U, V, V.conj(), optimize=True)
    expanded = norm2 - 2 * float(cross.real) + float(model2.real)
    if expanded > 100 * np.sqrt(np.finfo(U.dtype).eps) * norm2:
        return float(np.sqrt(expanded))
    step = max(1, _ERROR_ENTRIES // root_blocks[0].size)
    buffer = np.empty((min(step, len(root_blocks)), *root_blocks.shape[1:]), U.dtype)
    total = 0.0
    for lo in range(0, len(root_blocks), step):
        hi = min(lo + step, len(root_blocks))
        out = buffer[: hi - lo]
        np.matmul(U[lo:hi], V[lo:hi], out=out)
        np.subtract(root_blocks[lo:hi], out, out=out)
        total += float(np.vdot(out, out).real)
    return float(np.sqrt(total))


def butterfly_factorize(
    A,
    n_factors: int | None = None,
    rank: int = 1,
    tree="balanced",
    permutation=None,
    row_permutation=None,
    orthonormalize: bool = True,
    padding: str = "zeros",
    n_jobs: int | None = None,
    *,
    svd_tol: float = _SVD_TOL,
    working_memory: float | None = None,
    verbose: int = 0,
    random_state=None,
) -> ButterflyMatrix:
    """Approximate a matrix by a butterfly product (hierarchical algorithm).

    Finds factors :math:`F_1, \\dots, F_J` with the supports of
    :func:`~skbutterfly.architecture` and row and column permutations
    :math:`P_{\\mathrm{row}}`, :math:`P_{\\mathrm{col}}` such that

    .. math:: A \\approx P_{\\mathrm{row}}^T F_1 F_2 \\cdots F_J P_{\\mathrm{col}},

    i.e. the factors approximate ``A[row_perm][:, perm]``,

    by splitting the chain of factors in two recursively, each split being a
    two-factor fixed-support problem solved exactly by one batched truncated
    SVD of all its blocks (Zheng et al., arXiv:2110.01235). An exact butterfly is
    recovered to rounding (its factors are essentially unique: up to diagonal
    rescalings between neighbours). With ``orthonormalize=True`` the factors
    left and right of each split are first made orthonormal per class
    (Le et al., arXiv:2411.04506), which makes each split's SVD minimise the error of
    the whole product; the error is then within a constant (depending on the
    architecture only) of the best butterfly approximation. The cost is
    ``O(m n)`` for the classic butterfly with the balanced tree.

    Parameters
    ----------
    A : array-like of shape (m, n)
        Matrix to approximate (real or complex; float32 and complex64 are
        kept, integers are cast to float64). Not modified. A matrix that
        does not fit in memory can be given as a :class:`numpy.memmap`, any
        array readable by slices (``A[:, lo:hi]``, and ``A[:, cols]`` with
        increasing ``cols`` when permuted: ``h5py`` and ``zarr`` datasets)
        or a lazy ``dask.array.Array``: it is then read by column slabs of
        at most ``working_memory`` MiB, on the Dask workers for a Dask
        array (see :ref:`out_of_core`).
    n_factors : int, default=None
        Number of factors ``J``, at least 1 (at most 1024); beyond
        ``ceil(log2(max(m, n)))`` the extra factors are diagonal (see
        :func:`~skbutterfly.architecture`). ``None`` means
        ``ceil(log2(min(m, n)))`` (the classic butterfly).
    rank : int, default=1
        Block rank between consecutive factors.
    tree : {"balanced", "left", "right"}, sequence of int or nested tuple, \
default="balanced"
        Order of the splits (see :func:`split_order`): ``"left"`` peels
        ``F_1`` off first, ``"right"`` peels ``F_J`` off first,
        ``"balanced"`` splits in the middle (cheapest); an explicit order of
        split indices (split ``i`` is between ``F_{i+1}`` and ``F_{i+2}``,
        0-based: a permutation of ``range(J - 1)``) or a nested pair of
        factor indices such as ``((0, 1), (2, 3))``.
    permutation : None, "bit-reversal", "default-8", array-like or list, \
default=None
        Column permutation ``perm``: the factors approximate
        ``A_padded[:, perm]`` and the operator gathers its input by ``perm``.
        ``None`` is the identity; ``"bit-reversal"`` suits the DFT; an index
        array is used as is; a three-digit code such as ``"101"`` names one of
        the eight standard permutations of
        :func:`~skbutterfly.standard_permutations`; ``"default-8"`` tries all
        eight and a list tries each of its items; the candidate with the
        lowest error is kept (the first on ties). ``"auto"`` and ``"learn"``
        are described with ``row_permutation``.
    row_permutation : None, str, array-like or list, default=None
        Row permutation ``row_perm``: the factors approximate
        ``A_padded[row_perm][:, perm]`` and the operator scatters its output
        by it. Accepts what ``permutation`` accepts; with candidates on both
        sides every (row, column) pair is tried. Matrices with a geometric
        ordering (non-uniform DFTs, Fourier integral operators, Legendre
        transforms at Gauss nodes) need ``"bit-reversal"`` here. On either
        side:

        - ``"auto"`` tries the identity and the seven other standard
          permutations (``"001"`` is the bit reversal; identity only when
          the side is not a power of two): all pairs are screened by the
          error of the first split on 32 of its blocks drawn at random (the
          same for all pairs; a two-factor lower bound of the butterfly's
          error), and the best 3 pairs are factorized and the most accurate
          is kept. Cost: 3 factorizations plus 64 small block SVDs (8 times
          one factorization at ``N = 1024``, depth 5, rank 8, measured in
          ``benchmarks/bench_orderings.py``).
        - ``"learn"`` recovers unknown orderings from the matrix alone: the
          row and column cluster trees of the classic rank-one butterfly
          are identified level by level (pairs of rows whose ratio is
          constant on column groups, rows proportional on each group), then
          turned into permutations. An exact rank-one butterfly (e.g. a DFT
          or a Hadamard matrix) with shuffled rows and columns is recovered
          to rounding; any other matrix gets valid permutations and the
          usual factorization, never an error. Cost ``O(N**2 log N)``; needs
          a square architecture of power-of-two size. The other side may
          be ``"learn"`` too or one fixed permutation.
    orthonormalize : bool, default=True
        Orthonormalise before each split (it carries the error guarantee);
        ``False`` is the plain hierarchical algorithm (singular values split
        as square roots on both sides).
    padding : {"zeros", "raise"}, default="zeros"
        A shape that the architecture cannot split is zero-padded (and the
        operator cropped back), or rejected with the sizes that would fit.
    n_jobs : int, default=None
        Number of joblib jobs over the blocks of the large splits; BLAS is
        limited to one thread per job. ``None`` means 1 unless inside a
        :func:`joblib.parallel_config` context.
    svd_tol : float, default=1e-3
        Accuracy of the block SVDs of large blocks (subspace iteration):
        iterations stop once one of them reduces the squared error of a split
        by less than ``svd_tol`` times what remains (see
        :func:`~skbutterfly._block_svd.low_rank_blocks`). Exact blocks are
        recovered to rounding whatever its value; ``0`` computes every block
        SVD exactly (Gram matrix and eigen-decomposition; ``O(N**2.5)`` at the
        balanced root), for optimal splits of matrices far from a butterfly.
    working_memory : float, default=None
        Memory, in MiB, for one slab of an out-of-core ``A`` (with its
        temporaries); ``None`` means scikit-learn's ``working_memory``
        configuration (:func:`sklearn.set_config`, 1024 MiB by default).
        In-memory arrays ignore it.
    verbose : int, default=0
        ``0`` is silent; from ``1``, one line per split, per candidate
        permutation and per slab of an out-of-core ``A``, with the elapsed
        time.

    random_state : int, RandomState instance or None, default=None
        Seeds the random choices of ``"auto"`` (screened blocks) and
        ``"learn"`` (signatures): results are deterministic for a given seed.

    Returns
    -------
    ButterflyMatrix
        The operator, of shape ``(m, n)``, with dtype that of ``A``.

    See Also
    --------
    ButterflyFactorizer : The same as a scikit-learn estimator.
    architecture : The supports of the factors.

    Notes
    -----
    With ``N = 2**L``, the blocks of the balanced root split are
    ``sqrt(N) x sqrt(N)``; their rank-``r`` approximations are computed by
    subspace iteration stopped when it no longer reduces the error by more
    than 0.1 % (``svd_tol``), so a split costs a few passes over its target
    and the whole factorization ``O(N**2)``. Candidate permutations each cost one
    factorization plus one error evaluation.

    References
    ----------
    .. [1] Q.-T. Le, L. Zheng, E. Riccietti, R. Gribonval, "Fast learning of
       fast transforms, with guarantees", ICASSP 2022.
    .. [2] Q.-T. Le, E. Riccietti, R. Gribonval, "Butterfly factorization with
       error guarantees", arXiv:2411.04506, 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly import butterfly_factorize
    >>> from skbutterfly.datasets import dft, hadamard
    >>> H = hadamard(16)
    >>> B = butterfly_factorize(H)
    >>> B.n_factors, B.nnz
    (4, 128)
    >>> bool(np.allclose(B.toarray(), H))
    True
    >>> F = dft(16)
    >>> B = butterfly_factorize(F, permutation="bit-reversal")
    >>> float(np.linalg.norm(B.toarray() - F) / np.linalg.norm(F)) < 1e-12
    True

    A DFT with shuffled rows and columns is found again with ``"learn"``:

    >>> rng = np.random.default_rng(0)
    >>> S = F[rng.permutation(16)][:, rng.permutation(16)]
    >>> B = butterfly_factorize(
    ...     S, permutation="learn", row_permutation="learn", random_state=0
    ... )
    >>> float(np.linalg.norm(B.toarray() - S) / np.linalg.norm(S)) < 1e-12
    True
    """
    source = slab_source(A, name="A")
    A = check_matrix(A, name="A") if source is None else source
    plan = plan_factorization(
        A.shape, n_factors, rank, tree, permutation, padding, row_permutation
    )
    B, _ = factorize_with_error(
        A,
        *plan,
        orthonormalize,
        n_jobs,
        svd_tol=svd_tol,
        need_error=False,
        working_memory=working_memory,
        verbose=verbose,
        random_state=random_state,
    )
    return B


def plan_factorization(
    shape, n_factors, rank, tree, permutation, padding, row_permutation=None
):
    """The architecture, split order and orderings of a call.

    The orderings are ``(rows, columns)``, each ``"auto"``, ``"learn"`` or
    the validated list of candidates (:func:`permutation_candidates`).
    """
    arch = architecture(shape, n_factors=n_factors, rank=rank, padding=padding)
    order = split_order(tree, len(arch))
    orderings = tuple(
        spec
        if isinstance(spec, str) and spec in _SEARCHES
        else permutation_candidates(spec, n, name)
        for spec, n, name in (
            (row_permutation, arch.padded_shape[0], "row_permutation"),
            (permutation, arch.padded_shape[1], "permutation"),
        )
    )
    return arch, order, orderings


# The orderings found from the matrix: a search over candidates, a learning.
_SEARCHES = ("auto", "learn")

# Candidate pairs of "auto" factorized in full after the screening, and the
# number of blocks of the first split on which the screening measures them.
_AUTO_KEEP = 3
_SCREEN_BLOCKS = 32


def factorize_with_error(
    A,
    arch,
    order,
    orderings,
    orthonormalize,
    n_jobs,
    *,
    svd_tol=_SVD_TOL,
    need_error=True,
    working_memory=None,
    verbose=0,
    random_state=None,
):
    """The algorithm on validated input: the best operator and its error.

    Shared by :func:`butterfly_factorize` and the estimator, which validate
    ``A`` once (an ndarray, or a :class:`~skbutterfly._slabs.SlabSource`
    for an out-of-core matrix) and plan with :func:`plan_factorization`.
    The error is ``||A - B||_F`` (``None`` when not needed for a single
    candidate); without padding it comes from the root blocks
    (:func:`_root_error`), else from the operator by column chunks; for an
    out-of-core ``A``, from one more pass over its slabs. ``verbose`` prints
    one line per split, per candidate and per slab.
    """
    if not isinstance(orthonormalize, (bool, np.bool_)):
        raise TypeError(f"orthonormalize must be a bool, got {orthonormalize!r}.")
    if not (isinstance(svd_tol, Real) and 0 <= svd_tol < np.inf):
        raise ValueError(f"svd_tol must be a finite number >= 0, got {svd_tol!r}.")
    orthonormalize = bool(orthonormalize)
    rows = orderings[0]
    rows_fixed = not isinstance(rows, str) and len(rows) == 1 and rows[0] is None
    if isinstance(A, SlabSource) and not (
        rows_fixed and not isinstance(orderings[1], str)
    ):
        raise ValueError(
            "row permutations, 'auto' and 'learn' need an in-memory matrix: "
            "got an out-of-core A (read by column slabs); pass "
            "row_permutation=None and fixed column permutations, or load A."
        )
    # Factorize extreme magnitudes brought near one by a power of two (exact):
    # orderings, factors and errors at that scale; the power is shared out
    # between the factors at the end. An out-of-core A is read as it is.
    exponent = 0
    if not isinstance(A, SlabSource):
        exponent = scaling_exponent(A)
        A = scale_pow2(A, -exponent)
    pairs = _ordering_pairs(A, arch, orderings, random_state)
    if "auto" in orderings and len(pairs) > _AUTO_KEEP:
        pairs = _screen(A, arch.patterns, order, pairs, svd_tol, n_jobs, random_state)
    padded = tuple(arch.padded_shape) != A.shape
    progress = Progress("butterfly_factorize", verbose)
    progress(
        f"{A.shape[0]} x {A.shape[1]} matrix, {len(arch)} factors, rank "
        f"{arch.rank}, {len(pairs)} permutation candidate(s)"
    )
    best, best_error = None, np.inf
    for k, (row_perm, perm) in enumerate(pairs, start=1):
        factors, root_blocks = _factorize_chain(
            A,
            arch.patterns,
            perm,
            row_perm,
            order,
            orthonormalize,
            svd_tol,
            n_jobs,
            progress,
            working_memory,
        )
        if not need_error and len(pairs) == 1:
            best = factors, perm, row_perm
            break
        if isinstance(A, SlabSource) and len(factors) > 1:
            error = _slab_error(
                A, factors, arch.patterns, perm, order[0], working_memory, progress
            )
        elif isinstance(A, SlabSource) or padded:
            dense = A.toarray() if isinstance(A, SlabSource) else A
            error = frobenius_error(
                dense,
                ButterflyMatrix(factors, perm=perm, shape=A.shape, row_perm=row_perm),
            )
        else:
            error = _root_error(factors, root_blocks, order[0] if order else 0)
        del root_blocks
        if len(pairs) > 1:
            shown = ldexp_or_inf(error, exponent)
            progress(f"candidate {k}/{len(pairs)}: error {shown:.3e}")
        if best is None or error < best_error:
            best, best_error = (factors, perm, row_perm), error
    factors, perm, row_perm = best
    shares = split_exponent(exponent, len(factors))
    factors = [scale_pow2(K, e) for K, e in zip(factors, shares)]
    B = ButterflyMatrix(factors, perm=perm, shape=A.shape, row_perm=row_perm)
    return B, (None if best_error == np.inf else ldexp_or_inf(best_error, exponent))


def _ordering_pairs(A, arch, orderings, random_state):
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


def _screen(A, patterns, order, pairs, svd_tol, n_jobs, random_state):
    """The ``_AUTO_KEEP`` pairs with the smallest error at the first split.

    The first split of the tree alone is a two-factor problem whose optimal
    error is a lower bound of the error of any butterfly in that ordering;
    it is estimated on ``_SCREEN_BLOCKS`` of its blocks drawn at random (the
    same for every pair): one small batched SVD per pair.
    """
    i = order[0]
    left = _fused(patterns, 0, i)
    right = _fused(patterns, i + 1, len(patterns) - 1)
    _, _, alpha, rank, delta, _, _ = pair_dims(left, right)
    rng = check_random_state(random_state)
    select = np.sort(rng.permutation(delta * alpha)[:_SCREEN_BLOCKS])
    solve = partial(low_rank_blocks, rank=rank, tol=svd_tol, oversampling=0)
    scores = []
    for row_perm, perm in pairs:
        blocks = _root_blocks(A, perm, row_perm, left, right, select)
        _, R = map_chunks(solve, (blocks,), n_jobs, min_chunk=_MIN_CHUNK)
        scores.append(np.linalg.norm(blocks) ** 2 - np.linalg.norm(R) ** 2)
    keep = np.argsort(scores, kind="stable")[:_AUTO_KEEP]
    return [pairs[k] for k in sorted(keep)]
