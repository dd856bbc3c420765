"""Analysis of two fixed supports: rank-one supports, equivalence classes, tractability.

Layer 3 (algorithms).
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from skbutterfly._validation import check_support

# Largest number of Gram-matrix entries gathered at once by the ALS row solves.
GATHER_LIMIT = 1 << 22


def check_supports(S_W, S_H, shape=None):
    S_W = check_support(S_W, "S_W")
    S_H = check_support(S_H, "S_H")
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


def overlapping_pairs(rows, cols):
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
    step = max(1, GATHER_LIMIT // max(1, second.shape[1]))
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
        disjoint (Le et al., arXiv:2112.00386). ``"complete-classes"``: condition (C)
        of Le et al., arXiv:2112.00386 (rectangles of incomplete classes, minus the
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
            f"complete {_describe(labels, q)} cuts it (condition (C2), see the "
            "user guide, "
            "'Fixed-support factorization and tractability')."
        )
        return reason, None, None
    p, q = overlapping_pairs(R_red, C_red)
    if p.size:
        first, second = incomplete[p[0]], incomplete[q[0]]
        reason = (
            f"{_describe(labels, first)} and {_describe(labels, second)} are not "
            "complete and their rank-one supports overlap outside the area of "
            "the complete classes (condition (C1), see the user guide, 'Fixed-support "
            "factorization and tractability')."
        )
        return reason, None, None
    exact_rows, exact_cols = class_rows.copy(), class_cols.copy()
    exact_rows[incomplete], exact_cols[incomplete] = R_red, C_red
    return None, exact_rows, exact_cols


def analyze_checked(S_W, S_H):
    rows, cols = np.ascontiguousarray(S_W.T), S_H
    labels, firsts = _group_columns(rows, cols)
    sizes = np.bincount(labels[labels >= 0], minlength=firsts.size)
    class_rows, class_cols = rows[firsts], cols[firsts]
    complete = sizes >= np.minimum(class_rows.sum(axis=1), class_cols.sum(axis=1))
    n_classes = firsts.size
    p, q = overlapping_pairs(class_rows, class_cols)
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
    cuts it (condition (C2), see the user guide, 'Fixed-support factorization
    and tractability').
    """
    S_W, S_H = check_supports(S_W, S_H)
    return analyze_checked(S_W, S_H)
