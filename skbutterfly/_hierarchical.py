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
from dataclasses import dataclass
from numbers import Real

import numpy as np

from skbutterfly._ks import class_blocks, fuse_values, split_blocks
from skbutterfly._operator import ButterflyMatrix, frobenius_error
from skbutterfly._orderings import AUTO_KEEP, SEARCHES, ordering_pairs, screen_pairs
from skbutterfly._patterns import architecture
from skbutterfly._permutations import permutation_candidates
from skbutterfly._progress import Progress
from skbutterfly._scaling import (
    ldexp_or_inf,
    scale_pow2,
    scaling_exponent,
    split_exponent,
)
from skbutterfly._slabs import SlabSource, root_split_slabs, slab_error, slab_source
from skbutterfly._split import (
    fused_range,
    gather_root_blocks,
    left_normalize,
    right_normalize,
    split_step,
)
from skbutterfly._trees import split_order
from skbutterfly._validation import check_matrix

# Default accuracy of the block SVDs of large blocks (subspace iteration).
_SVD_TOL = 1e-3
# Why the ordering searches need the whole matrix at hand.
_SEARCH_READS = {
    "auto": "it screens blocks drawn at random all over the matrix",
    "learn": "it compares rows and columns across the whole matrix",
}
# Entries of the block products formed at once by _root_error.
_ERROR_ENTRIES = 1 << 20


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


def _move_centre(nodes, centre):
    """Orthonormalise every node left and right of ``nodes[centre]`` (§2.7)."""
    for j in range(centre):
        if nodes[j].normal != "left":
            nodes[j].values, nodes[j + 1].values = left_normalize(
                nodes[j].values, nodes[j + 1].values
            )
            nodes[j].normal, nodes[j + 1].normal = "left", None
    for j in range(len(nodes) - 1, centre, -1):
        if nodes[j].normal != "right":
            nodes[j - 1].values, nodes[j].values = right_normalize(
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
        target = gather_root_blocks(A, perm, row_perm, pattern, pattern)
        return [target.reshape(pattern)], None
    nodes = [_Node(0, n_factors - 1, None)]
    root_blocks = None
    for step, i in enumerate(order, start=1):
        k = next(j for j, node in enumerate(nodes) if node.start <= i < node.stop)
        if orthonormalize:
            _move_centre(nodes, k)
        node = nodes[k]
        left = fused_range(patterns, node.start, i)
        right = fused_range(patterns, i + 1, node.stop)
        if node.values is None and isinstance(A, SlabSource):
            K1, K2 = root_split_slabs(
                A,
                perm,
                row_perm,
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
                blocks = gather_root_blocks(A, perm, row_perm, left, right)
                root_blocks = blocks
            else:
                b1, c2 = left.b, right.c
                blocks = split_blocks(node.values, left, right).reshape(-1, b1, c2)
            # Free the node's target before its children are built.
            node.values = None
            n_blocks = blocks.shape[0]
            K1, K2 = split_step(blocks, left, right, orthonormalize, svd_tol, n_jobs)
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
    """``||T - F_1 ... F_J||_F`` and ``||T||_F`` from the root target's blocks ``T``.

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
        return 0.0, None
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
        return float(np.sqrt(expanded)), float(np.sqrt(norm2))
    step = max(1, _ERROR_ENTRIES // root_blocks[0].size)
    buffer = np.empty((min(step, len(root_blocks)), *root_blocks.shape[1:]), U.dtype)
    total = 0.0
    for lo in range(0, len(root_blocks), step):
        hi = min(lo + step, len(root_blocks))
        out = buffer[: hi - lo]
        np.matmul(U[lo:hi], V[lo:hi], out=out)
        np.subtract(root_blocks[lo:hi], out, out=out)
        total += float(np.vdot(out, out).real)
    return float(np.sqrt(total)), float(np.sqrt(norm2))


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
        array (see :ref:`out_of_core`); permutations are applied to its
        indices, and ``"auto"`` / ``"learn"`` raise ``ValueError`` (they
        need the matrix in memory).
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
          largest error of the ``J - 1`` splits of the chain into two
          products (each a two-factor lower bound of the butterfly's error,
          estimated on 32 of its blocks drawn at random, the same for all
          pairs), and the best 3 pairs are factorized and the most accurate
          is kept. Cost: 3 factorizations plus ``64 (J - 1)`` small batched
          block SVDs (6 to 7 times one factorization with known orderings at
          rank 8, depths 2 to 6 at ``N = 1024``; peak memory 4 to 6 copies of ``A``;
          measured in ``benchmarks/bench_orderings.py``).
        - ``"learn"`` recovers unknown orderings from the matrix alone: the
          row and column cluster trees of the classic rank-one butterfly
          are identified level by level, by least-squares rank-one fits of
          the blocks of each level (groups of rows paired, groups of
          columns halved), then turned into permutations. An exact rank-one
          butterfly (e.g. a DFT or a Hadamard matrix) with shuffled rows and
          columns is recovered to rounding, a noisy one to the noise level;
          with ``rank >= 2`` an exact shuffled butterfly of block rank two
          is identified first, by exact incidence tests on triples of rows
          and columns (``O(N**2)``); noisy ones and block rank three or more
          are not (the rank-one criterion is a heuristic there); any matrix
          gets valid permutations and the usual factorization, never an
          error. Cost ``O(N**2)`` on an exact butterfly,
          ``O(N**2 min(N, 1024))`` otherwise;
          needs a square architecture of power-of-two size. The other side
          may be ``"learn"`` too or one fixed permutation.
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
    B, _, _ = factorize_with_error(
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
        if isinstance(spec, str) and spec in SEARCHES
        else permutation_candidates(spec, n, name)
        for spec, n, name in (
            (row_permutation, arch.padded_shape[0], "row_permutation"),
            (permutation, arch.padded_shape[1], "permutation"),
        )
    )
    return arch, order, orderings


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
    """The algorithm on validated input: ``(B, error, norm)``.

    ``B`` is the best operator, ``error`` is ``||A - B||_F`` and ``norm`` is
    ``||A||_F`` when the error computation met it on the way (else
    ``None``). Shared by :func:`butterfly_factorize` and the estimator, which validate
    ``A`` once (an ndarray, or a :class:`~skbutterfly._slabs.SlabSource`
    for an out-of-core matrix) and plan with :func:`plan_factorization`.
    The error is ``None`` when not needed for a single candidate; without
    padding it comes from the root blocks
    (:func:`_root_error`), else from the operator by column chunks; for an
    out-of-core ``A``, from one more pass over its slabs. ``verbose`` prints
    one line per split, per candidate and per slab.
    """
    if not isinstance(orthonormalize, (bool, np.bool_)):
        raise TypeError(f"orthonormalize must be a bool, got {orthonormalize!r}.")
    if not (isinstance(svd_tol, Real) and 0 <= svd_tol < np.inf):
        raise ValueError(f"svd_tol must be a finite number >= 0, got {svd_tol!r}.")
    orthonormalize = bool(orthonormalize)
    if isinstance(A, SlabSource):
        for spec, name in zip(orderings, ("row_permutation", "permutation")):
            if isinstance(spec, str):
                raise ValueError(
                    f"{name}={spec!r} needs the matrix in memory ({_SEARCH_READS[spec]}"
                    f"), and {A.name} is out of core (read by column slabs, once "
                    "per candidate). Pass None, a named permutation, an index "
                    f"array or a list of candidates, or load {A.name} into memory."
                )
    # Factorize extreme magnitudes brought near one by a power of two (exact):
    # orderings, factors and errors at that scale; the power is shared out
    # between the factors at the end. An out-of-core A is scaled slab by slab
    # (the power is found by its first pass, see root_split_slabs).
    exponent = 0
    if not isinstance(A, SlabSource):
        exponent = scaling_exponent(A)
        A = scale_pow2(A, -exponent)
    pairs = ordering_pairs(A, arch, orderings, random_state)
    if "auto" in orderings and len(pairs) > AUTO_KEEP:
        pairs = screen_pairs(A, arch.patterns, pairs, svd_tol, n_jobs, random_state)
    padded = tuple(arch.padded_shape) != A.shape
    progress = Progress("butterfly_factorize", verbose)
    progress(
        f"{A.shape[0]} x {A.shape[1]} matrix, {len(arch)} factors, rank "
        f"{arch.rank}, {len(pairs)} permutation candidate(s)"
    )
    best, best_error, norm = None, np.inf, None
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
        if isinstance(A, SlabSource):
            exponent = A.exponent
        if not need_error and len(pairs) == 1:
            best = factors, perm, row_perm
            break
        if isinstance(A, SlabSource) and len(factors) > 1:
            error = slab_error(
                A,
                factors,
                arch.patterns,
                perm,
                row_perm,
                order[0],
                working_memory,
                progress,
            )
        elif isinstance(A, SlabSource) or padded:
            dense = A.toarray() if isinstance(A, SlabSource) else A
            error = frobenius_error(
                dense,
                ButterflyMatrix(factors, perm=perm, shape=A.shape, row_perm=row_perm),
            )
        else:
            error, norm = _root_error(factors, root_blocks, order[0] if order else 0)
        del root_blocks
        if len(pairs) > 1:
            shown = ldexp_or_inf(error, exponent)
            progress(f"candidate {k}/{len(pairs)}: error {shown:.3e}")
        if best is None or error < best_error:
            best, best_error = (factors, perm, row_perm), error
    factors, perm, row_perm = best
    if isinstance(A, SlabSource):
        norm = np.sqrt(A.sq_norm)
    shares = split_exponent(exponent, len(factors))
    factors = [scale_pow2(K, e) for K, e in zip(factors, shares)]
    B = ButterflyMatrix(factors, perm=perm, shape=A.shape, row_perm=row_perm)
    if best_error == np.inf:
        return B, None, None
    norm = None if norm is None else ldexp_or_inf(norm, exponent)
    return B, ldexp_or_inf(best_error, exponent), norm
