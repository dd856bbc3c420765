"""Projections onto sparsity families, and the constraints that name them.

Layer 2 (structures): pure functions on dense arrays. Each returns the
nearest matrix (in Frobenius norm) of its family, ties between equal
magnitudes broken in favour of the first positions (a stable sort, as in
pyfaust), except :func:`project_row_col_k` and :func:`project_row_and_col_k`,
the union and intersection rules (not projections onto their sets; see their
docstrings). With ``normalized=True`` the result is scaled to unit Frobenius
norm, which is the projection onto the family intersected with the unit
sphere for every family here that is a union of coordinate subspaces
(row-k, column-k, total-k, fixed support).
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

from dataclasses import dataclass, field

import numpy as np

from skbutterfly._validation import check_matrix, check_positive_int, check_support


def _normalize(P, normalized):
    if not normalized:
        return P
    norm = np.linalg.norm(P)
    return P / norm if norm > 0 else P


def _check_k(k, limit, what):
    return check_positive_int(k, f"k (nonzeros per {what})", maximum=limit)


def _top_k(a, k, axis):
    """Boolean mask of the ``k`` largest of ``a >= 0`` along ``axis`` (None: all).

    On the nonzero entries, exactly the first ``k`` of a stable descending
    sort: ties between equal magnitudes (every entry of a Hadamard matrix)
    go to the first positions, as in pyfaust. Zero entries are left out
    (they project to zero either way). Up to ``_FEW`` per line, ``k``
    passes of ``argmax``; beyond, each threshold comes from a SIMD sort of
    the values alone (``np.partition`` is slow on the many equal values of
    structured matrices), and the ties at a threshold are counted in the
    lines that hold more of them than places left.
    """
    if axis is None:
        return _top_k(a.reshape(1, -1), k, 1).reshape(a.shape)
    if axis == 0:
        # Lines are rows from here on: sorts and argmax along contiguous memory.
        return _top_k(np.ascontiguousarray(a.T), k, 1).T
    n = a.shape[1]
    if k >= n:
        return a > 0
    if k <= _FEW:
        return _top_few(a, k)
    threshold = np.sort(a, axis=1)[:, n - k, None]
    # Zeros never enter the mask: lines with fewer than k nonzeros keep them all.
    np.maximum(threshold, np.finfo(a.dtype).smallest_subnormal, out=threshold)
    mask = a >= threshold
    crowded = np.flatnonzero(np.count_nonzero(mask, axis=1) > k)
    if crowded.size:
        values, bound = a[crowded], threshold[crowded]
        above, ties = values > bound, values == bound
        places = k - np.count_nonzero(above, axis=1, keepdims=True)
        mask[crowded] = above | (ties & (np.cumsum(ties, axis=1) <= places))
    return mask


# Up to this many per line, the mask is taken by repeated argmax (k passes).
_FEW = 8


def _top_few(a, k):
    """:func:`_top_k` along rows for small ``k``: the first maximum, ``k`` times.

    ``a`` is modified in place, then restored.

    ``argmax`` returns the first position of the maximum, so removing it
    and repeating gives the order of a stable descending sort.
    """
    mask = np.zeros(a.shape, dtype=bool)
    lines = np.arange(a.shape[0])
    taken = []
    for _ in range(k):
        first = a.argmax(axis=1)
        taken.append((first, a[lines, first]))
        mask[lines, first] = True
        a[lines, first] = -1
    for first, values in taken:  # ``a`` is restored
        a[lines, first] = values
    return mask & (a > 0)


def _row_mask(M, k):
    """Boolean mask of the ``k`` largest magnitudes of every row of ``M``."""
    return _top_k(np.abs(M), k, 1)


def _col_mask(M, k):
    return _top_k(np.abs(M), k, 0)


def _row_col_mask(M, k):
    a = np.abs(M)
    return _top_k(a, k, 1) | _top_k(a, k, 0)


def _row_and_col_mask(M, k):
    a = np.abs(M)
    return _top_k(a, k, 1) & _top_k(a, k, 0)


def _total_mask(M, k):
    return _top_k(np.abs(M), k, None)


def _keep(M, mask, normalized):
    return _normalize(np.where(mask, M, 0), normalized)


def project_row_k(M, k, *, normalized=False):
    """Keep the ``k`` largest magnitudes of every row of ``M``.

    The nearest matrix with at most ``k`` nonzeros per row: each row is
    projected alone, and keeping its largest entries maximises the kept
    energy.

    Parameters
    ----------
    M : array-like of shape (m, n)
        Matrix to project (real or complex).
    k : int
        Nonzeros per row, ``1 <= k <= n``.
    normalized : bool, default=False
        Scale the result to unit Frobenius norm (a zero result stays zero).

    Returns
    -------
    ndarray of shape (m, n)
        ``M`` with all but the ``k`` largest entries of each row set to 0.

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly import project_row_k
    >>> project_row_k(np.array([[3.0, -4.0, 1.0], [0.5, 0.0, -2.0]]), 1)
    array([[ 0., -4.,  0.],
           [ 0.,  0., -2.]])
    """
    M = check_matrix(M, name="M")
    k = _check_k(k, M.shape[1], "row")
    return _keep(M, _row_mask(M, k), normalized)


def project_col_k(M, k, *, normalized=False):
    """Keep the ``k`` largest magnitudes of every column of ``M``.

    The nearest matrix with at most ``k`` nonzeros per column.

    Parameters
    ----------
    M : array-like of shape (m, n)
        Matrix to project.
    k : int
        Nonzeros per column, ``1 <= k <= m``.
    normalized : bool, default=False
        Scale the result to unit Frobenius norm.

    Returns
    -------
    ndarray of shape (m, n)

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly import project_col_k
    >>> project_col_k(np.array([[3.0, -4.0], [0.5, 6.0]]), 1)
    array([[3., 0.],
           [0., 6.]])
    """
    M = check_matrix(M, name="M")
    k = _check_k(k, M.shape[0], "column")
    return _keep(M, _col_mask(M, k), normalized)


def project_row_col_k(M, k, *, normalized=False):
    """Keep the entries among the ``k`` largest of their row *or* column.

    This is pyfaust's ``splincol`` rule, exactly: the support is the union of
    the supports of :func:`project_row_k` and :func:`project_col_k`. It is
    not the projection onto a set (the result may hold more than ``k``
    nonzeros in a row), but it keeps every row and column at least
    ``k``-sparse-representable, which makes it the constraint of choice for
    factors with ``k`` nonzeros per row and per column (the Hadamard
    transform's factors have 2).

    Parameters
    ----------
    M : array-like of shape (m, n)
        Matrix to project.
    k : int
        ``1 <= k <= min(m, n)``.
    normalized : bool, default=False
        Scale the result to unit Frobenius norm.

    Returns
    -------
    ndarray of shape (m, n)

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly import project_row_col_k
    >>> project_row_col_k(np.array([[5.0, 4.0], [3.0, 1.0]]), 1)
    array([[5., 4.],
           [3., 0.]])
    """
    M = check_matrix(M, name="M")
    k = _check_k(k, min(M.shape), "row and column")
    return _keep(M, _row_col_mask(M, k), normalized)


def project_row_and_col_k(M, k, *, normalized=False):
    """Keep the entries among the ``k`` largest of their row *and* column.

    The support is the intersection of the supports of
    :func:`project_row_k` and :func:`project_col_k`, so the result has at
    most ``k`` nonzeros in every row and every column. It lies in that set
    but is not its nearest point (which is a bipartite matching problem).
    :func:`sparse_factorize` uses it for the residuals of the hierarchical
    strategy, where the union rule would admit residuals with dense rows.

    Parameters
    ----------
    M : array-like of shape (m, n)
        Matrix to project.
    k : int
        ``1 <= k <= min(m, n)``.
    normalized : bool, default=False
        Scale the result to unit Frobenius norm.

    Returns
    -------
    ndarray of shape (m, n)

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly import project_row_and_col_k
    >>> project_row_and_col_k(np.array([[5.0, 4.0], [3.0, 1.0]]), 1)
    array([[5., 0.],
           [0., 0.]])
    """
    M = check_matrix(M, name="M")
    k = _check_k(k, min(M.shape), "row and column")
    return _keep(M, _row_and_col_mask(M, k), normalized)


def project_total_k(M, k, *, normalized=False):
    """Keep the ``k`` largest magnitudes of ``M`` (anywhere).

    The nearest matrix with at most ``k`` nonzeros in all.

    Parameters
    ----------
    M : array-like of shape (m, n)
        Matrix to project.
    k : int
        ``1 <= k <= m * n``.
    normalized : bool, default=False
        Scale the result to unit Frobenius norm.

    Returns
    -------
    ndarray of shape (m, n)

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly import project_total_k
    >>> project_total_k(np.array([[1.0, -7.0], [5.0, 2.0]]), 2)
    array([[ 0., -7.],
           [ 5.,  0.]])
    """
    M = check_matrix(M, name="M")
    k = _check_k(k, M.size, "matrix")
    return _keep(M, _total_mask(M, k), normalized)


def project_support(M, support, *, normalized=False):
    """Zero ``M`` outside a fixed support.

    Parameters
    ----------
    M : array-like of shape (m, n)
        Matrix to project.
    support : array-like or sparse matrix of shape (m, n)
        Boolean mask (or 0/1 values) of the allowed entries.
    normalized : bool, default=False
        Scale the result to unit Frobenius norm.

    Returns
    -------
    ndarray of shape (m, n)

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly import project_support
    >>> project_support(np.ones((2, 2)), np.eye(2), normalized=True)
    array([[0.70710678, 0.        ],
           [0.        , 0.70710678]])
    """
    M = check_matrix(M, name="M")
    support = check_support(support, "support")
    if support.shape != M.shape:
        raise ValueError(
            f"support must have the shape of M {M.shape}, got shape={support.shape}."
        )
    return _keep(M, support, normalized)


_MASKS = {
    "row": _row_mask,
    "col": _col_mask,
    "rowcol": _row_col_mask,
    "rowcol_and": _row_and_col_mask,
    "total": _total_mask,
}
# pyfaust's names of the same families.
_ALIASES = {"splin": "row", "spcol": "col", "splincol": "rowcol", "sp": "total"}
CONSTRAINT_NAMES = (*_MASKS, "support")


@dataclass(frozen=True)
class SparsityConstraint:
    """The sparsity family of one factor, and its projection.

    Parameters
    ----------
    name : {"row", "col", "rowcol", "rowcol_and", "total", "support"}
        ``"row"``: at most ``k`` nonzeros per row; ``"col"``: per column;
        ``"rowcol"``: pyfaust's ``splincol``, the union rule
        (:func:`project_row_col_k`); ``"rowcol_and"``: the intersection
        rule (:func:`project_row_and_col_k`); ``"total"``: at most ``k`` in
        all; ``"support"``: a fixed mask.
        pyfaust's names ``"splin"``, ``"spcol"``, ``"splincol"`` and ``"sp"``
        are accepted too.
    k : int, default=None
        The number of nonzeros (not used by ``"support"``).
    support : array-like of shape (rows, cols), default=None
        The mask of ``"support"``; it also fixes the factor's shape.
    normalized : bool, default=True
        Also ask for unit Frobenius norm; the product then carries a scalar
        scale (fitted in closed form), as in pyfaust. Every family here is a
        cone, so this changes the parametrisation, not the set of products;
        it conditions PALM better.

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly import SparsityConstraint
    >>> c = SparsityConstraint("splin", 1)
    >>> c.name, c.project(np.array([[1.0, 2.0]]))
    ('row', array([[0., 2.]]))
    """

    name: str
    k: int | None = None
    support: np.ndarray | None = field(default=None, compare=False, repr=False)
    normalized: bool = True

    def __post_init__(self):
        name = _ALIASES.get(self.name, self.name)
        if name not in CONSTRAINT_NAMES:
            raise ValueError(
                f"constraint name must be one of {sorted(CONSTRAINT_NAMES)} (or "
                f"pyfaust's {sorted(_ALIASES)}), got name={self.name!r}."
            )
        object.__setattr__(self, "name", name)
        if name == "support":
            if self.support is None:
                raise ValueError("a 'support' constraint needs support=<mask>.")
            object.__setattr__(self, "support", check_support(self.support, "support"))
        else:
            if self.k is None:
                raise ValueError(f"the constraint {name!r} needs k, got k=None.")
            check_positive_int(self.k, f"k of the constraint {name!r}")

    @property
    def shape(self):
        """The factor's shape when the constraint fixes it (a support), else None."""
        return None if self.support is None else self.support.shape

    def check_shape(self, shape):
        """Raise ``ValueError`` when the constraint cannot apply to ``shape``."""
        if self.name == "support":
            if self.support.shape != tuple(shape):
                raise ValueError(
                    f"the support constraint has shape {self.support.shape}, but "
                    f"the factor has shape {tuple(shape)}."
                )
            return
        limit = {
            "row": shape[1],
            "col": shape[0],
            "rowcol": min(shape),
            "rowcol_and": min(shape),
            "total": shape[0] * shape[1],
        }[self.name]
        if self.k > limit:
            raise ValueError(
                f"the constraint {self.name!r} asks k={self.k} nonzeros, more than "
                f"the {limit} a factor of shape {tuple(shape)} allows."
            )

    @property
    def is_projection(self):
        """Whether :meth:`project` projects onto a set (not the rowcol rules)."""
        return self.name not in ("rowcol", "rowcol_and")

    def on_support(self, mask):
        """The projection onto the matrices supported in ``mask`` (same norm rule)."""
        return SparsityConstraint("support", support=mask, normalized=self.normalized)

    def project(self, M):
        """Project ``M`` (an ndarray of a checked shape) onto the family.

        The same result as the module's ``project_*`` functions, without
        their input validation (the solvers call it at every step).
        """
        if self.name == "support":
            return _keep(M, self.support, self.normalized)
        return _keep(M, _MASKS[self.name](M, self.k), self.normalized)


def as_constraint(spec, *, position):
    """A :class:`SparsityConstraint` from one entry of a constraints list."""
    if isinstance(spec, SparsityConstraint):
        return spec
    if isinstance(spec, tuple) and len(spec) in (2, 3) and isinstance(spec[0], str):
        normalized = bool(spec[2]) if len(spec) == 3 else True
        return SparsityConstraint(spec[0], spec[1], normalized=normalized)
    if hasattr(spec, "shape") and getattr(spec, "ndim", 2) == 2:
        return SparsityConstraint("support", support=spec)
    raise ValueError(
        f"constraints[{position}] must be a SparsityConstraint, a tuple (name, k) "
        f"or (name, k, normalized), or a 2-D boolean support, got {spec!r}."
    )
