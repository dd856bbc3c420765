"""Two-factor sparse matrix factorization with fixed supports (FSMF).

Minimise :math:`\\|A - W H\\|_F` over ``W`` supported on ``S_W`` and ``H``
supported on ``S_H`` (ALGORITHMS.md §1, with ``W = X`` and ``H = Y^T``):
support analysis (rank-one supports, equivalence classes, tractability), the
exact algorithms of the tractable cases, and alternating least squares for
the others.
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from sklearn.utils import check_random_state

from skbutterfly._kernels import map_chunks, truncated_svd
from skbutterfly._validation import check_matrix, check_positive_int

# Largest number of Gram-matrix entries gathered at once by the ALS row solves.
_GATHER_LIMIT = 1 << 22
# Subspace iterations allowed to the batched truncated SVD of large blocks.
_SVD_MAX_ITER = 1000

# Bound on the ALS starts: a mistyped huge count must fail, not allocate.
_MAX_RESTARTS = 10_000


# ----------------------------------------------------------------------------
# Supports and their analysis
# ----------------------------------------------------------------------------


def _check_support(S, name):
    """Return a support as a 2-D boolean ndarray (a copy, never a view)."""
    if sp.issparse(S):
        S = S.toarray()
    arr = np.asarray(S)
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must be a boolean mask (or an array of 0 and 1), got "
            f"dtype={arr.dtype}."
        )
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D mask, got an array with ndim={arr.ndim} and "
            f"shape={arr.shape}."
        )
    if arr.dtype.kind != "b":
        bad = (arr != 0) & (arr != 1)
        if bad.any():
            value = arr[bad].flat[0]
            raise ValueError(
                f"{name} must hold only 0/1 or True/False, got the value {value!r}."
            )
    return arr.astype(bool)


def _check_supports(S_W, S_H, shape=None):
    S_W = _check_support(S_W, "S_W")
    S_H = _check_support(S_H, "S_H")
    if S_W.shape[1] != S_H.shape[0]:
        raise ValueError(
            "S_W and S_H do not chain: S_W has shape "
            f"{S_W.shape} (r={S_W.shape[1]} columns) and S_H has shape "
            f"{S_H.shape} (r={S_H.shape[0]} rows)."
        )
    if S_W.shape[1] == 0:
        raise ValueError("S_W and S_H need at least one column/row, got r=0.")
    if shape is not None and (S_W.shape[0], S_H.shape[1]) != tuple(shape):
        raise ValueError(
            f"the supports describe a product of shape ({S_W.shape[0]}, "
            f"{S_H.shape[1]}), but A has n_samples={shape[0]}, "
            f"n_features={shape[1]}."
        )
    return S_W, S_H


def _csr(mask):
    """CSR pattern (int32 ones) of a dense boolean mask, built without a cast."""
    indptr = np.concatenate([[0], np.cumsum(mask.sum(axis=1, dtype=np.int64))])
    indices = np.nonzero(mask)[1]
    data = np.ones(indices.size, dtype=np.int32)
    return sp.csr_array((data, indices, indptr), shape=mask.shape)


def _overlapping_pairs(rows, cols):
    """Pairs ``(p, q)``, ``p < q``, of rectangles ``rows[p] x cols[p]`` that meet.

    Two rectangles meet when they share a row and a column. The sparse Gram
    matrix is formed on the side where it is cheaper (sum of squared
    multiplicities), the other side is checked on the candidate pairs only.
    Pairs come sorted by ``p``, then ``q``.
    """
    empty = np.zeros(0, dtype=np.int64)
    if rows.shape[0] < 2:
        return empty, empty
    cost_rows = np.square(rows.sum(axis=0, dtype=np.int64)).sum()
    cost_cols = np.square(cols.sum(axis=0, dtype=np.int64)).sum()
    first, second = (rows, cols) if cost_rows <= cost_cols else (cols, rows)
    F = _csr(first)
    gram = sp.triu(F @ F.T, k=1).tocoo()
    p, q = gram.row.astype(np.int64), gram.col.astype(np.int64)
    step = max(1, _GATHER_LIMIT // max(1, second.shape[1]))
    meet = np.concatenate(
        [empty.astype(bool)]
        + [
            (second[p[lo : lo + step]] & second[q[lo : lo + step]]).any(axis=1)
            for lo in range(0, p.size, step)
        ]
    )
    order = np.lexsort((q[meet], p[meet]))
    return p[meet][order], q[meet][order]


def _describe(labels, c):
    members = np.flatnonzero(labels == c)
    shown = ", ".join(str(k) for k in members[:6])
    if len(members) > 6:
        shown += ", ..."
    return f"class {{{shown}}}"


@dataclass(frozen=True)
class SupportAnalysis:
    """Structure of a fixed-support factorization problem ``A ≈ W H``.

    Returned by :func:`analyze_supports`. Column ``k`` of ``W`` and row ``k``
    of ``H`` form the rank-one term :math:`W_{:,k} H_{k,:}`, supported on the
    rectangle :math:`R_k \\times C_k` (its *rank-one support*). Columns with
    identical rectangles form an equivalence class ``P``; the class is
    *complete* when :math:`|P| \\ge \\min(|R_P|, |C_P|)`: its terms can then
    produce any matrix supported on the rectangle. Classes are numbered in
    the order of their smallest column; columns with an empty rectangle
    belong to no class (label -1) and are zero in every solution.

    Attributes
    ----------
    rows : ndarray of shape (r, m), dtype bool
        ``rows[k]`` is the row support :math:`R_k` (column ``k`` of ``S_W``).
    cols : ndarray of shape (r, n), dtype bool
        ``cols[k]`` is the column support :math:`C_k` (row ``k`` of ``S_H``).
    labels : ndarray of shape (r,), dtype int64
        Class of each column ``k``, -1 for an empty rectangle.
    class_sizes : ndarray of shape (n_classes,), dtype int64
        Number of columns ``|P|`` of each class.
    class_rows : ndarray of shape (n_classes, m), dtype bool
        :math:`R_P` for each class.
    class_cols : ndarray of shape (n_classes, n), dtype bool
        :math:`C_P` for each class.
    complete : ndarray of shape (n_classes,), dtype bool
        Whether each class is complete.
    tractable : bool
        Whether the exact algorithm applies.
    condition : {"disjoint", "complete-classes"} or None
        ``"disjoint"``: the rectangles of distinct classes are pairwise
        disjoint (ALGORITHMS.md §1.2). ``"complete-classes"``: condition (C)
        of ALGORITHMS.md §1.3 (rectangles of incomplete classes, minus the
        area ``T`` covered by complete classes, are pairwise disjoint
        rectangles). ``None``: neither holds.
    reason : str
        Why the instance is (not) tractable; names the first classes that
        violate condition (C) when it fails.
    identifiable : bool or None
        ``True`` when the rank-one supports are pairwise disjoint and every
        class is a single column: an exact factorization with nonzero terms
        is then essentially unique (unique up to scaling each column of
        ``W`` against the row of ``H``). ``False`` when a class has two or
        more columns (any invertible mixing of them keeps the supports and
        the product). ``None`` when the supports alone do not decide.
    exact_rows, exact_cols : ndarray of shape (n_classes, m) and (n_classes, n)
        The rectangle each class is fitted on by the exact algorithm:
        :math:`R'_P \\times C'_P` (the rectangle minus ``T``) for incomplete
        classes under condition (C), :math:`R_P \\times C_P` otherwise.
        ``None`` when the instance is not tractable.

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly import analyze_supports
    >>> report = analyze_supports(np.eye(3, dtype=bool), np.ones((3, 4), bool))
    >>> report.condition, report.n_classes, bool(report.complete.all())
    ('disjoint', 3, True)
    """

    rows: np.ndarray = field(repr=False)
    cols: np.ndarray = field(repr=False)
    labels: np.ndarray = field(repr=False)
    class_sizes: np.ndarray = field(repr=False)
    class_rows: np.ndarray = field(repr=False)
    class_cols: np.ndarray = field(repr=False)
    complete: np.ndarray = field(repr=False)
    tractable: bool
    condition: str | None
    reason: str
    identifiable: bool | None
    exact_rows: np.ndarray | None = field(repr=False)
    exact_cols: np.ndarray | None = field(repr=False)

    @property
    def n_classes(self) -> int:
        """Number of equivalence classes (columns with empty rectangles excluded)."""
        return self.class_sizes.size

    @property
    def classes(self) -> tuple:
        """The columns of each class, increasing (a tuple of int arrays)."""
        order = np.argsort(self.labels, kind="stable")[
            self.labels.size - self.class_sizes.sum() :
        ]
        return tuple(np.split(order, np.cumsum(self.class_sizes)[:-1]))


def _group_columns(rows, cols):
    """Class labels of the columns, numbered by first column; -1 if empty."""
    r = rows.shape[0]
    nonempty = rows.any(axis=1) & cols.any(axis=1)
    labels = np.full(r, -1, dtype=np.int64)
    keep = np.flatnonzero(nonempty)
    if keep.size == 0:
        return labels, keep
    packed = np.concatenate(
        [np.packbits(rows[keep], axis=1), np.packbits(cols[keep], axis=1)], axis=1
    )
    _, first, inverse = np.unique(
        packed, axis=0, return_index=True, return_inverse=True
    )
    # Renumber the classes by their smallest column.
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first)] = np.arange(first.size)
    labels[keep] = rank[inverse.ravel()]
    return labels, keep[np.sort(first)]


def _condition_c(class_rows, class_cols, complete, labels):
    """Check condition (C); return ``(reason or None, exact_rows, exact_cols)``."""
    incomplete = np.flatnonzero(~complete)
    Rc = _csr(class_rows[complete])
    Cc = _csr(class_cols[complete])
    T = (Rc.T @ Cc).tocsr()
    T.data[:] = 1
    Rb, Cb = class_rows[incomplete], class_cols[incomplete]
    sizes_c = Cb.sum(axis=1)
    sizes_r = Rb.sum(axis=1)
    # Rows of R_P entirely inside T within C_P (and columns likewise) leave.
    covered_rows = (T @ _csr(Cb.T)).toarray().T
    covered_cols = (_csr(Rb) @ T).toarray()
    R_red = Rb & (covered_rows < sizes_c[:, None])
    C_red = Cb & (covered_cols < sizes_r[:, None])
    cut = (_csr(R_red) @ T).toarray() * C_red
    cut = cut.sum(axis=1) > 0
    if cut.any():
        p = incomplete[np.flatnonzero(cut)[0]]
        rows_p, cols_p = R_red[cut][0], C_red[cut][0]
        hits = class_rows[:, rows_p].any(axis=1) & class_cols[:, cols_p].any(axis=1)
        q = np.flatnonzero(hits & complete)[0]
        reason = (
            f"{_describe(labels, p)} is not complete and its rank-one support "
            "minus the area of the complete classes is not a rectangle: the "
            f"complete {_describe(labels, q)} cuts it (condition (C2) of "
            "ALGORITHMS.md §1.3)."
        )
        return reason, None, None
    p, q = _overlapping_pairs(R_red, C_red)
    if p.size:
        first, second = incomplete[p[0]], incomplete[q[0]]
        reason = (
            f"{_describe(labels, first)} and {_describe(labels, second)} are not "
            "complete and their rank-one supports overlap outside the area of "
            "the complete classes (condition (C1) of ALGORITHMS.md §1.3)."
        )
        return reason, None, None
    exact_rows, exact_cols = class_rows.copy(), class_cols.copy()
    exact_rows[incomplete], exact_cols[incomplete] = R_red, C_red
    return None, exact_rows, exact_cols


def _analyze(S_W, S_H):
    rows, cols = np.ascontiguousarray(S_W.T), S_H
    labels, firsts = _group_columns(rows, cols)
    sizes = np.bincount(labels[labels >= 0], minlength=firsts.size)
    class_rows, class_cols = rows[firsts], cols[firsts]
    complete = sizes >= np.minimum(class_rows.sum(axis=1), class_cols.sum(axis=1))
    n_classes = firsts.size
    p, q = _overlapping_pairs(class_rows, class_cols)
    identifiable = False if (sizes > 1).any() else (True if not p.size else None)
    common = dict(
        rows=rows,
        cols=cols,
        labels=labels,
        class_sizes=sizes,
        class_rows=class_rows,
        class_cols=class_cols,
        complete=complete,
        identifiable=identifiable,
    )
    if not p.size:
        reason = (
            f"the rank-one supports of the {n_classes} classes are pairwise "
            "disjoint: one truncated SVD per class is optimal."
        )
        return SupportAnalysis(
            **common,
            tractable=True,
            condition="disjoint",
            reason=reason,
            exact_rows=class_rows,
            exact_cols=class_cols,
        )
    failure, exact_rows, exact_cols = _condition_c(
        class_rows, class_cols, complete, labels
    )
    if failure is None:
        reason = (
            f"{_describe(labels, p[0])} and {_describe(labels, q[0])} overlap, "
            "but condition (C) holds: incomplete classes are pairwise disjoint "
            "rectangles outside the area of the complete classes."
        )
        return SupportAnalysis(
            **common,
            tractable=True,
            condition="complete-classes",
            reason=reason,
            exact_rows=exact_rows,
            exact_cols=exact_cols,
        )
    return SupportAnalysis(
        **common,
        tractable=False,
        condition=None,
        reason="not tractable: " + failure,
        exact_rows=None,
        exact_cols=None,
    )


def analyze_supports(S_W, S_H) -> SupportAnalysis:
    """Analyse the supports of a two-factor fixed-support factorization.

    Column ``k`` of ``W`` and row ``k`` of ``H`` can only produce the
    rectangle :math:`R_k \\times C_k` with
    :math:`R_k = \\{i : S_W[i, k]\\}` and :math:`C_k = \\{j : S_H[k, j]\\}`.
    Columns with the same rectangle form a class ``P``; ``P`` is complete when
    :math:`|P| \\ge \\min(|R_P|, |C_P|)`. The problem

    .. math:: \\min_{W, H} \\|A - W H\\|_F \\quad \\text{s.t.}\\quad
              \\operatorname{supp}(W) \\subseteq S_W,\\;
              \\operatorname{supp}(H) \\subseteq S_H

    is solved exactly when the rectangles of distinct classes are pairwise
    disjoint (``"disjoint"``) or, more generally, when condition (C) holds
    (``"complete-classes"``): with ``T`` the union of the rectangles of the
    complete classes, the sets :math:`(R_P \\times C_P) \\setminus T` of the
    incomplete classes are rectangles and pairwise disjoint. The problem is
    NP-hard in general.

    Grouping is vectorised (bit-packed supports and one ``numpy.unique``),
    overlaps are found with sparse products.

    Parameters
    ----------
    S_W : array-like or sparse matrix of shape (m, r)
        Support of ``W`` (booleans, or numbers equal to 0 or 1).
    S_H : array-like or sparse matrix of shape (r, n)
        Support of ``H``.

    Returns
    -------
    SupportAnalysis
        Rank-one supports, classes, completeness, verdict, reason and the
        identifiability verdict.

    See Also
    --------
    fixed_support_factorize : Solve the problem.

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly import analyze_supports, butterfly_support
    >>> report = analyze_supports(butterfly_support(8, 1), butterfly_support(8, 2))
    >>> report.tractable, report.condition, report.identifiable
    (True, 'disjoint', True)
    >>> lower = np.tri(3, dtype=bool)
    >>> report = analyze_supports(lower, lower.T)  # LU
    >>> report.condition is None
    True
    >>> print(report.reason)  # doctest: +NORMALIZE_WHITESPACE
    not tractable: class {0} is not complete and its rank-one support minus the
    area of the complete classes is not a rectangle: the complete class {2}
    cuts it (condition (C2) of ALGORITHMS.md §1.3).
    """
    S_W, S_H = _check_supports(S_W, S_H)
    return _analyze(S_W, S_H)


# ----------------------------------------------------------------------------
# Exact algorithm
# ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FactorizationInfo:
    """What :func:`fixed_support_factorize` did and how good the result is.

    Attributes
    ----------
    method : {"exact", "als"}
        The algorithm that produced the factors.
    certified_optimal : bool
        ``True`` when the exact algorithm ran: the factors are a global
        minimiser. Alternating least squares is never certified.
    error : float
        :math:`\\|A - W H\\|_F` of the returned factors.
    relative_error : float
        ``error`` divided by :math:`\\|A\\|_F` (0 when ``A`` is zero).
    optimal_error : float or None
        The optimal value, computed from the spectrum alone (discarded
        singular values of every class block plus the energy of ``A``
        outside the fitted area), independently of the returned factors;
        ``None`` when not certified.
    n_iter : int
        ALS iterations of the retained start (1 for the exact algorithm,
        a single pass).
    analysis : SupportAnalysis
        The support analysis.

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly import fixed_support_factorize
    >>> A = np.arange(6.0).reshape(2, 3)
    >>> W, H, info = fixed_support_factorize(A, np.ones((2, 1)), np.ones((1, 3)))
    >>> info.method, info.certified_optimal, info.n_iter
    ('exact', True, 1)
    """

    method: str
    certified_optimal: bool
    error: float
    relative_error: float
    optimal_error: float | None
    n_iter: int
    analysis: SupportAnalysis = field(repr=False)


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


def _exact(A, analysis, n_jobs):
    """Exact algorithm (ALGORITHMS.md §1.2 and §1.3); returns W, H, optimal error."""
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
            lambda B, k=k: truncated_svd(B, k, max_iter=_SVD_MAX_ITER),
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


# ----------------------------------------------------------------------------
# Alternating least squares
# ----------------------------------------------------------------------------


def _product(W, H):
    """``W @ H``, through a sparse product when ``W`` is sparse enough."""
    if np.count_nonzero(W) < 0.1 * W.size:
        return np.asarray(sp.csr_array(W) @ H)
    return W @ H


def _sq_error(A, W, H):
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
    if sizes.size * float(largest) ** 3 <= max(2 * cubes.sum(), _GATHER_LIMIT):
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
        step = max(1, _GATHER_LIMIT // (s * s))
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
    loss = _sq_error(A, W, H)
    n_iter = 0
    while n_iter < max_iter:
        n_iter += 1
        W_new = _solve_rows(A, H, S_W)
        H_new = _solve_rows(A.T, W_new.T, S_H.T).T
        W_new, H_new = _balance(W_new, H_new)
        new = _sq_error(A, W_new, H_new)
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
    p, q = _overlapping_pairs(rows, cols)
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
    sub = _analyze(S_W & keep[None, :], S_H & keep[:, None])
    W, H, _ = _exact(A, sub, None)
    noise_W, noise_H = _random_start(A, S_W, S_H, rng)
    small = 1e-3
    W = np.where(keep[None, :], W, small * noise_W)
    H = np.where(keep[:, None], H, small * noise_H)
    return W, H


def fixed_support_factorize(
    A,
    S_W,
    S_H,
    method: str = "auto",
    *,
    max_iter: int = 200,
    tol: float = 1e-10,
    n_restarts: int = 5,
    random_state=None,
    n_jobs: int | None = None,
):
    """Factorize ``A ≈ W @ H`` with ``W`` and ``H`` on fixed supports.

    Solves

    .. math:: \\min_{W, H} \\|A - W H\\|_F \\quad \\text{s.t.}\\quad
              \\operatorname{supp}(W) \\subseteq S_W,\\;
              \\operatorname{supp}(H) \\subseteq S_H.

    On tractable supports (:func:`analyze_supports`) the exact algorithm
    returns a global minimiser: every class ``P`` is fitted on its rectangle
    by a truncated SVD of rank ``|P|`` (singular values split as
    :math:`\\sqrt{\\sigma}` on both sides), the blocks of equal shape in one
    batched call; complete classes that overlap share their area, each entry
    going to one of them. The optimal error is

    .. math:: \\Big(\\sum_{(i,j) \\notin \\text{fitted area}} |A_{ij}|^2 +
              \\sum_{P} \\sum_{s > |P|} \\sigma_s(A[R'_P, C'_P])^2\\Big)^{1/2}.

    Otherwise (the problem is NP-hard in general) alternating least squares
    runs from several starts, the first from a tractable relaxation (a
    greedy set of pairwise disjoint classes solved exactly), and the best
    result is kept; it is not certified. Each half-step solves one small
    least-squares problem per row of ``W`` (column of ``H``) restricted to
    its support, batched over rows padded to common sizes. On instances
    whose infimum is not attained (LU of ``[[0, 1], [1, 0]]``) the factors
    stay finite and the iterations stop on ``max_iter`` or ``tol``.

    Parameters
    ----------
    A : array-like of shape (m, n)
        Matrix to factorize (real or complex; float32 and complex64 kept).
    S_W : array-like or sparse matrix of shape (m, r)
        Support of ``W`` (booleans, or numbers equal to 0 or 1).
    S_H : array-like or sparse matrix of shape (r, n)
        Support of ``H``.
    method : {"auto", "exact", "als"}, default="auto"
        ``"auto"``: exact when tractable, ALS otherwise. ``"exact"``: raise a
        ``ValueError`` carrying the analysis' reason on intractable
        supports. ``"als"``: always alternating least squares.
    max_iter : int, default=200
        Maximal ALS iterations per start.
    tol : float, default=1e-10
        ALS stops when the squared error decreases by less than ``tol``
        times its value.
    n_restarts : int, default=5
        Number of ALS starts (the first from the relaxation, the others
        random Gaussian on the supports), at most 10000.
    random_state : int, RandomState instance or None, default=None
        Seed of the random starts.
    n_jobs : int, default=None
        Jobs for the batched SVDs and the ALS starts (joblib).

    Returns
    -------
    W : ndarray of shape (m, r)
        Zero outside ``S_W``.
    H : ndarray of shape (r, n)
        Zero outside ``S_H``.
    info : FactorizationInfo
        Method, certification, errors and the support analysis.

    Raises
    ------
    ValueError
        On mismatched shapes, masks with values other than 0/1, NaN/inf or
        empty ``A``, or ``method="exact"`` on intractable supports.

    See Also
    --------
    analyze_supports : The tractability analysis.
    FixedSupportFactorizer : The same as a scikit-learn estimator.

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly import butterfly_support, fixed_support_factorize
    >>> from skbutterfly.datasets import hadamard
    >>> S_W, S_H = butterfly_support(4, 1), butterfly_support(4, 2)
    >>> W, H, info = fixed_support_factorize(hadamard(4), S_W, S_H)
    >>> info.method, info.certified_optimal, info.error < 1e-12
    ('exact', True, True)
    >>> bool(np.all(W[~S_W] == 0))
    True
    """
    A = check_matrix(A, name="A")
    S_W, S_H = _check_supports(S_W, S_H, A.shape)
    if method not in ("auto", "exact", "als"):
        raise ValueError(
            f"method must be 'auto', 'exact' or 'als', got method={method!r}."
        )
    max_iter = check_positive_int(max_iter, "max_iter")
    n_restarts = check_positive_int(n_restarts, "n_restarts", maximum=_MAX_RESTARTS)
    if not np.isfinite(tol) or tol < 0:
        raise ValueError(f"tol must be a finite number >= 0, got tol={tol!r}.")
    analysis = _analyze(S_W, S_H)
    if method == "exact" and not analysis.tractable:
        raise ValueError(
            "method='exact' needs tractable supports, but " + analysis.reason
        )
    if method != "als" and analysis.tractable:
        W, H, optimal = _exact(A, analysis, n_jobs)
        method, n_iter = "exact", 1
    else:
        W, H, n_iter = _best_als_run(
            A, S_W, S_H, analysis, max_iter, tol, n_restarts, random_state, n_jobs
        )
        method, optimal = "als", None
    error = float(np.sqrt(_sq_error(A, W, H)))
    norm = float(np.linalg.norm(A))
    info = FactorizationInfo(
        method=method,
        certified_optimal=method == "exact",
        error=error,
        relative_error=error / norm if norm > 0 else 0.0,
        optimal_error=optimal,
        n_iter=n_iter,
        analysis=analysis,
    )
    return W, H, info


def _best_als_run(
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
