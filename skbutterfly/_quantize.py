"""Quantization of rank-one matrices, of two factors and of butterflies.

Layer 3 (algorithms). Mathematics: Gribonval et al., hal-04125381. The
rank-one terms of two factors are quantized one by one
(:func:`~skbutterfly._quantize_rank_one.quantize_terms`, exact in every
format); the butterfly heuristics combine factors into such pairs.
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
import scipy.sparse as sp

from skbutterfly._formats import check_format, output_dtype, round_to_format
from skbutterfly._ks import (
    class_blocks,
    ks_indices,
    merge_blocks,
    pair_dims,
)
from skbutterfly._operator import ButterflyMatrix
from skbutterfly._parallel import map_chunks
from skbutterfly._progress import Progress
from skbutterfly._quantize_rank_one import (
    check_method,
    quantize_left_terms,
    quantize_terms,
    real_float64,
)
from skbutterfly._validation import check_matrix

# ----------------------------------------------------------------------------
# Two factors with disjoint rank-one supports
# ----------------------------------------------------------------------------


def quantize_factors(W, H, fmt, method: str = "exact", n_jobs=None):
    """Quantize both factors of ``W @ H`` term by term.

    The rank-one term ``k`` is ``W[:, k] H[k, :]`` restricted to its nonzero
    entries; every term is quantized by :func:`quantize_rank_one` (terms with
    equal numbers of nonzeros in one batch). When the rank-one supports (the
    rectangles of the nonzeros of column ``k`` of ``W`` times row ``k`` of
    ``H``) are pairwise disjoint,

    .. math:: \\|WH - \\hat W\\hat H\\|_F^2 = \\sum_k
              \\|w_k h_k^T - \\hat w_k \\hat h_k^T\\|_F^2,

    so the exact method gives the optimal quantized pair in every format,
    bounded exponent ranges included (Gribonval et al., hal-04125381);
    otherwise the result is a heuristic. Zeros stay zero.

    Parameters
    ----------
    W : array-like of shape (m, r)
    H : array-like of shape (r, n)
    fmt : FloatFormat, int or str
        Target format.
    method : {"exact", "dfo", "rtn"}, default="exact"
        See :func:`quantize_rank_one`.
    n_jobs : int, default=None
        Jobs over chunks of terms (joblib; ``None`` means 1 outside a
        ``joblib.parallel_config`` context).

    Returns
    -------
    W_hat : ndarray of shape (m, r)
    H_hat : ndarray of shape (r, n)

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly import quantize_factors, round_to_format
    >>> rng = np.random.default_rng(0)
    >>> W = np.kron(np.eye(3), rng.normal(size=(2, 1)))  # 3 disjoint terms
    >>> H = np.kron(np.eye(3), rng.normal(size=(1, 2)))
    >>> Wq, Hq = quantize_factors(W, H, 4)
    >>> err = np.linalg.norm(W @ H - Wq @ Hq)
    >>> rtn = np.linalg.norm(W @ H - round_to_format(W, 4) @ round_to_format(H, 4))
    >>> bool(err <= rtn)
    True
    """
    fmt = check_format(fmt)
    check_method(method, fmt)
    W = check_matrix(W, name="W")
    H = check_matrix(H, name="H")
    if W.shape[1] != H.shape[0]:
        raise ValueError(
            "W and H must be chainable, got W with n_features="
            f"{W.shape[1]} and H with n_samples={H.shape[0]}."
        )
    if method == "rtn":
        return round_to_format(W, fmt), round_to_format(H, fmt)
    dtype = output_dtype(np.result_type(W, H), fmt)
    Wq, Hq = _quantize_sparse_pair(
        sp.csc_array(real_float64(W)),
        sp.csr_array(real_float64(H)),
        fmt,
        method,
        n_jobs,
    )
    return Wq.toarray().astype(dtype), Hq.toarray().astype(dtype)


def _term_groups(w_ptr, h_ptr):
    """The rank-one terms of ``W @ H`` grouped by their numbers of nonzeros.

    Term ``k`` is column ``k`` of ``W`` times row ``k`` of ``H``; ``w_ptr``
    is the ``indptr`` of ``W`` in CSC (where term ``k``'s values lie in
    ``data``), ``h_ptr`` that of ``H`` in CSR. Yields ``(terms, iw, ih)``: the
    terms with ``p`` and ``q`` stored values, and the positions, of shapes
    ``(T, p)`` and ``(T, q)``, of their values in the two ``data`` arrays (so
    that ``W.data[iw]`` and ``H.data[ih]`` are one batch of terms).
    """
    p, q = np.diff(w_ptr), np.diff(h_ptr)
    for pk, qk in np.unique(np.stack([p, q], axis=1), axis=0):
        terms = np.flatnonzero((p == pk) & (q == qk))
        yield (
            terms,
            w_ptr[terms, None] + np.arange(pk),
            h_ptr[terms, None] + np.arange(qk),
        )


def _quantize_sparse_pair(Wc, Hr, fmt, method, n_jobs):
    """Both factors of ``Wc @ Hr`` (float64 CSC and CSR) quantized term by term."""
    Wq, Hq = Wc.copy(), Hr.copy()
    for _, iw, ih in _term_groups(Wc.indptr, Hr.indptr):
        Wq.data[iw], Hq.data[ih] = map_chunks(
            lambda X, Y: quantize_terms(X, Y, fmt, method),
            [Wc.data[iw], Hr.data[ih]],
            n_jobs,
        )
    return Wq, Hq


# ----------------------------------------------------------------------------
# Butterflies
# ----------------------------------------------------------------------------


def _pair_terms(K1, K2):
    """Rank-one terms of a chainable pair: ``X`` (T, b1), ``Y`` (T, c2).

    The terms are the class blocks' columns and rows (:func:`class_blocks`),
    class by class: the ``r`` terms of one class are consecutive.
    """
    U, V = class_blocks(K1, K2)
    return U.swapaxes(-1, -2).reshape(-1, U.shape[-2]), V.reshape(-1, V.shape[-1])


def _pair_values(X, Y, K1_shape, K2_shape):
    """Inverse of :func:`_pair_terms`: the pair's values from its terms."""
    a1, b1, alpha, r, delta, c2, d2 = pair_dims(K1_shape, K2_shape)
    U = X.reshape(a1, delta, alpha, d2, r, b1).swapaxes(-1, -2)
    return merge_blocks(U, Y.reshape(a1, delta, alpha, d2, r, c2), K1_shape, K2_shape)


def _class_errors(X, Y, Xh, Yh, r):
    """Squared error of every class block (``r`` consecutive terms)."""

    def block(U, V):
        return np.einsum(
            "krb,krc->kbc", U.reshape(-1, r, U.shape[1]), V.reshape(-1, r, V.shape[1])
        )

    return np.sum((block(X, Y) - block(Xh, Yh)) ** 2, axis=(1, 2))


def _quantize_pair(K1, K2, fmt, method, n_jobs):
    """Quantize both factors of a chainable pair, term by term.

    Optimal for block rank 1 (the terms are disjoint). For rank ``r > 1`` the
    ``r`` terms of a class share its block: each is quantized alone and a
    class keeps the result if its block error is below round-to-nearest's,
    else round-to-nearest.
    """
    X, Y = _pair_terms(K1, K2)
    Xh, Yh = map_chunks(lambda X, Y: quantize_terms(X, Y, fmt, method), [X, Y], n_jobs)
    r = pair_dims(K1.shape, K2.shape)[3]
    if r > 1:
        Xr, Yr = round_to_format(X, fmt), round_to_format(Y, fmt)
        worse = _class_errors(X, Y, Xh, Yh, r) > _class_errors(X, Y, Xr, Yr, r)
        worse = np.repeat(worse, r)
        Xh[worse], Yh[worse] = Xr[worse], Yr[worse]
    return _pair_values(Xh, Yh, K1.shape, K2.shape)


def _quantize_columns(X, fmt, method, n_jobs):
    """The left step: the rows ``X[j]`` (columns of a factor) quantized alone.

    Column :math:`x` of :math:`F_k` times row :math:`r` of the product of
    the remaining factors, :math:`r` carried exactly: :math:`\\min_\\mu
    \\|x r^T - \\mu\\hat x r^T\\|_F = \\|r\\| \\min_\\mu \\|x - \\mu\\hat
    x\\|`, whose best :math:`\\hat x` does not depend on :math:`r` (when it
    is not zero): the product is not formed, each term carries a unit
    :math:`y` (:func:`quantize_left_terms`). Returns ``(Xh, mu)``.
    """
    return map_chunks(
        lambda X: quantize_left_terms(X, np.ones((len(X), 1)), fmt, method),
        [X],
        n_jobs,
    )


class _ButterflyOps:
    """What the heuristics do to butterfly factors (4-D values of KS factors)."""

    def __init__(self, fmt, method, n_jobs):
        self.fmt, self.method, self.n_jobs = fmt, method, n_jobs

    def round(self, K):
        return round_to_format(K, self.fmt)

    def pair(self, K1, K2):
        return _quantize_pair(K1, K2, self.fmt, self.method, self.n_jobs)

    def left(self, K1):
        """``K1`` quantized column by column (:func:`_quantize_columns`)."""
        a, b, c, d = K1.shape
        # column (i, k, l) of the dense factor: its b values K1[i, :, k, l]
        X = K1.transpose(0, 2, 3, 1).reshape(-1, b)
        Xh, mu = _quantize_columns(X, self.fmt, self.method, self.n_jobs)
        return Xh.reshape(a, c, d, b).transpose(0, 3, 1, 2), mu

    def scale_rows(self, K, mu):
        return K * mu[ks_indices(K.shape)[0]]


class _SparseOps:
    """What the heuristics do to sparse factors (float64 CSR arrays)."""

    def __init__(self, fmt, method, n_jobs):
        self.fmt, self.method, self.n_jobs = fmt, method, n_jobs

    def round(self, S):
        S = S.copy()
        S.data = round_to_format(S.data, self.fmt)
        return S

    def pair(self, S1, S2):
        W, H = _quantize_sparse_pair(S1.tocsc(), S2, self.fmt, self.method, self.n_jobs)
        return W.tocsr(), H

    def left(self, S):
        """``S`` quantized column by column (:func:`_quantize_columns`)."""
        Sc = S.tocsc()
        data, mu = Sc.data.copy(), np.ones(S.shape[1])
        unit = np.arange(S.shape[1] + 1)  # a CSR indptr of one value per row
        for terms, iw, _ in _term_groups(Sc.indptr, unit):
            data[iw], mu[terms] = _quantize_columns(
                Sc.data[iw], self.fmt, self.method, self.n_jobs
            )
        return sp.csc_array((data, Sc.indices, Sc.indptr), shape=S.shape).tocsr(), mu

    def scale_rows(self, S, mu):
        S = S.copy()
        S.data *= np.repeat(mu, np.diff(S.indptr))
        return S


# The heuristics, on the factors through ``ops`` (_ButterflyOps or _SparseOps)


def _pairwise(factors, ops, progress):
    out = []
    for i in range(0, len(factors) - 1, 2):
        out.extend(ops.pair(factors[i], factors[i + 1]))
        progress(f"pair (F_{i + 1}, F_{i + 2}) of {len(factors)} factors quantized")
    if len(factors) % 2:
        out.append(ops.round(factors[-1]))
        progress(f"F_{len(factors)} rounded to nearest")
    return out


def _left_to_right(factors, ops, progress):
    factors = list(factors)
    if len(factors) == 1:
        return [ops.round(factors[0])]
    out = []
    for k in range(len(factors) - 2):
        Kh, mu = ops.left(factors[k])
        out.append(Kh)
        # mu scales column j of F_k, i.e. row j of the next factor
        factors[k + 1] = ops.scale_rows(factors[k + 1], mu)
        progress(f"F_{k + 1} of {len(factors)} factors quantized")
    out.extend(ops.pair(factors[-2], factors[-1]))
    n = len(factors)
    progress(f"pair (F_{n - 1}, F_{n}) of {n} factors quantized")
    return out


def _round_each(factors, ops, progress):
    return [ops.round(K) for K in factors]


# Name -> function(factors, ops, progress) of the heuristics.
HEURISTICS = {
    "pairwise": _pairwise,
    "left-to-right": _left_to_right,
    "rtn": _round_each,
}


def _check_heuristic(heuristic):
    if heuristic not in HEURISTICS:
        raise ValueError(
            f"heuristic must be one of {tuple(HEURISTICS)}, got {heuristic!r}."
        )


def _combine(factors, heuristic, method, ops, progress):
    """The factors quantized by ``heuristic`` (validated by the caller)."""
    # "rtn" as the rank-one method means round-to-nearest everywhere.
    if heuristic == "rtn" or method == "rtn":
        return _round_each(factors, ops, progress)
    return HEURISTICS[heuristic]([real_float64(F) for F in factors], ops, progress)


def quantize_butterfly(
    B: ButterflyMatrix,
    fmt,
    heuristic: str = "pairwise",
    method: str = "exact",
    n_jobs=None,
    verbose: int = 0,
) -> ButterflyMatrix:
    """Quantize the factors of a butterfly to a float format.

    Heuristics (Gribonval et al., hal-04125381):

    * ``"pairwise"``: the factors are quantized in pairs :math:`(F_1, F_2),
      (F_3, F_4), \\dots`, every rank-one term of a pair (a column of a block
      of the left factor times the matching row of a block of the right
      factor, all gathered by one reshape and quantized in one batch) by
      :func:`quantize_rank_one`: the terms are disjoint for block rank 1, so
      each pair is quantized optimally with ``method="exact"`` (as by
      :func:`quantize_factors`), in every format; an odd last factor is
      rounded to nearest. The product of all factors is not optimal in
      general (a heuristic). Cost: linear in the number of stored values,
      times :math:`2^t` (more for the terms of a bounded format whose range
      fills it, swept over the whole format).
    * ``"left-to-right"``: :math:`F_1` is quantized against the product
      :math:`F_2 \\cdots F_J` of all remaining factors (only the left side is
      rounded: each term's scale maximizes
      :math:`(x^T\\hat x)^2 / \\|\\hat x\\|^2`, the right side being carried
      exactly), its optimal scalings :math:`\\mu` are absorbed by the rows of
      :math:`F_2`, and so on; the last two factors are quantized as a pair.
      With the right side carried, a term's best :math:`\\hat x` does not
      depend on it (the error is :math:`\\|r\\| \\min_\\mu \\|x - \\mu
      \\hat x\\|` for the column :math:`x` of :math:`F_1` and the row
      :math:`r` of the product), so the product is never formed: time and
      memory are linear in the number of stored values, as for
      ``"pairwise"``.
    * ``"rtn"``: every factor rounded to nearest (the baseline).

    For block rank ``r > 1`` the ``r`` terms of a class overlap: each is
    quantized alone, and a class falls back to round-to-nearest when that is
    better for its block (a heuristic, not an optimum).

    Parameters
    ----------
    B : ButterflyMatrix
        The butterfly (real).
    fmt : FloatFormat, int or str
        Target format: a :class:`FloatFormat`, ``t`` alone (unbounded
        exponent) or a preset name.
    heuristic : {"pairwise", "left-to-right", "rtn"}, default="pairwise"
        How the factors are combined.
    method : {"exact", "dfo", "rtn"}, default="exact"
        Rank-one method (:func:`quantize_rank_one`).
    n_jobs : int, default=None
        Jobs over chunks of rank-one terms (joblib).
    verbose : int, default=0
        ``0`` is silent; from ``1``, one line per factor pair (or factor)
        quantized, with the elapsed time.

    Returns
    -------
    ButterflyMatrix
        Same patterns, permutations and shape; every stored value is exactly
        representable in ``fmt`` (dtype kept when it can hold the format,
        float64 otherwise).

    Raises
    ------
    ComplexQuantizationError
        (a ``NotImplementedError`` and a ``ValueError``) for a complex
        butterfly with a heuristic or method other than ``"rtn"``.

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly import quantize_butterfly
    >>> from skbutterfly.datasets import random_butterfly
    >>> B = random_butterfly(16, random_state=0)
    >>> A = B.toarray()
    >>> err = {
    ...     h: np.linalg.norm(A - quantize_butterfly(B, 4, heuristic=h).toarray())
    ...     for h in ("rtn", "pairwise", "left-to-right")
    ... }
    >>> bool(err["pairwise"] < err["rtn"] and err["left-to-right"] < err["rtn"])
    True
    """
    if not isinstance(B, ButterflyMatrix):
        raise TypeError(f"B must be a ButterflyMatrix, got {type(B).__name__}.")
    fmt = check_format(fmt)
    check_method(method, fmt)
    _check_heuristic(heuristic)
    dtype = output_dtype(B.dtype, fmt)
    progress = Progress("quantize_butterfly", verbose)
    ops = _ButterflyOps(fmt, method, n_jobs)
    factors = _combine(list(B.factors), heuristic, method, ops, progress)
    return ButterflyMatrix(
        [K.astype(dtype) for K in factors],
        perm=B.perm,
        shape=B.shape,
        row_perm=B.row_perm,
        format=fmt,
    )


def quantize_sparse_factors(
    factors, fmt, heuristic="pairwise", method="exact", n_jobs=None, verbose=0
):
    """Quantize the factors of a product :math:`S_1 \\cdots S_J` of sparse factors.

    The heuristics of :func:`quantize_butterfly`, on general supports
    (Gribonval et al., hal-04125381); supports are kept (a value may become
    zero, none appears):

    * ``"pairwise"``: the pairs :math:`(S_1, S_2), (S_3, S_4), \\dots` by
      :func:`quantize_factors`, an odd last factor rounded to nearest.
    * ``"left-to-right"``: :math:`S_k` is quantized against the product
      :math:`R = S_{k+1} \\cdots S_J` of the remaining factors, column by
      column: column :math:`x` of :math:`S_k` alone, with its scale
      :math:`\\mu_j` and row :math:`r_j` of :math:`R` kept exact, gets the
      best :math:`\\hat x` of :math:`\\min_\\mu \\|x r_j^T - \\mu \\hat x
      r_j^T\\|_F = \\|r_j\\| \\min_\\mu \\|x - \\mu \\hat x\\|`, i.e. the
      maximum of :math:`(x^T\\hat x)^2 / \\|\\hat x\\|^2` (optimal in every
      format with ``method="exact"``); :math:`\\mu_j` is folded into row
      :math:`j` of :math:`S_{k+1}`, and the last pair is quantized as by
      :func:`quantize_factors`. That best :math:`\\hat x` does not depend on
      :math:`r_j` (when it is not zero), so :math:`R` is never formed: time
      and memory are linear in the number of stored values (times
      :math:`2^t` for the exact method). The step's error is
      :math:`\\|\\sum_j (x_j - \\mu_j \\hat x_j) r_j^T\\|_F^2`; it is the sum
      of the terms' when their supports are disjoint (a butterfly) or the
      rows of :math:`R` are orthogonal (Hadamard-like products), and each step
      is then optimal for its factor. For general supports the terms overlap,
      so the result is a heuristic: measured better than round-to-nearest on
      random :math:`32 \\times 32` products with 2 to 8 nonzeros per row and
      column (0.2 to 0.95 times its error, 480 draws), worse on about 7 % of
      random :math:`3 \\times 3` products (70 % nonzeros) at :math:`t = 3`.
    * ``"rtn"``: every value rounded to nearest.

    Parameters
    ----------
    factors : sequence of scipy.sparse.csr_array
        The chainable factors, left to right (real unless ``"rtn"``).
    fmt : FloatFormat, int or str
        Target format, as in :func:`quantize_butterfly`.
    heuristic, method, n_jobs, verbose
        As in :func:`quantize_butterfly`.

    Returns
    -------
    list of scipy.sparse.csr_array
        Every stored value exactly representable in ``fmt``.
    """
    fmt = check_format(fmt)
    check_method(method, fmt)
    _check_heuristic(heuristic)
    dtype = output_dtype(np.result_type(*(F.dtype for F in factors)), fmt)
    mats = []
    for F in factors:
        F = sp.csr_array(F, copy=True)
        F.sum_duplicates()
        mats.append(F)
    ops = _SparseOps(fmt, method, n_jobs)
    progress = Progress("quantize", verbose)
    return [F.astype(dtype) for F in _combine(mats, heuristic, method, ops, progress)]
