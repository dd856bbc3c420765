"""The fitted operator: a product of Kronecker-sparse factors between permutations."""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import copy

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator

from skbutterfly._formats import check_format, round_to_format
from skbutterfly._ks import (
    FUSE_BLOCK_MATRIX,
    FUSE_BLOCK_VECTOR,
    apply_vector,
    fused_groups,
    ks_apply,
    ks_indices,
    vector_plan,
)
from skbutterfly._patterns import check_chain
from skbutterfly._scaling import frobenius_norm, ldexp_or_inf, peak_exponent, scale_pow2
from skbutterfly._validation import (
    check_matrix,
    check_permutation,
    check_shape,
    is_dask_array,
)


def map_dask_chunks(func, X, shape, dtype, *, axis):
    """Apply a linear map chunk by chunk to a Dask array, lazily.

    ``func`` maps an ndarray whose axis ``axis`` has length ``shape[1]`` to
    one where it has length ``shape[0]`` (a product by an operator of shape
    ``shape`` and dtype ``dtype``, along the rows for ``axis=0``, the columns
    for ``axis=1``). ``X`` is rechunked to hold that axis whole; the other
    axis keeps its chunks, each of them computed on its own (on the Dask
    workers when a ``dask.distributed`` client is active).

    Examples
    --------
    >>> import numpy as np
    >>> import dask.array as da
    >>> from skbutterfly._operator import map_dask_chunks
    >>> M = np.arange(6.0).reshape(2, 3)
    >>> X = da.ones((3, 10), chunks=(2, 4))
    >>> Y = map_dask_chunks(lambda x: M @ x, X, M.shape, M.dtype, axis=0)
    >>> Y.shape, Y.chunks[1]
    ((2, 10), (4, 4, 2))
    >>> bool(np.allclose(Y.compute(), M @ np.ones((3, 10))))
    True
    """
    if X.ndim != 2 or X.shape[axis] != shape[1]:
        side = "rows" if axis == 0 else "columns"
        raise ValueError(
            f"the Dask array must be 2-D with {shape[1]} {side} for an operator "
            f"of shape {tuple(shape)}, got shape={X.shape}."
        )
    X = X.rechunk({axis: -1})
    chunks = list(X.chunks)
    chunks[axis] = (shape[0],)
    dtype = np.result_type(X.dtype, dtype)
    meta = np.empty((0, 0), dtype)
    return X.map_blocks(func, chunks=tuple(chunks), dtype=dtype, meta=meta)


def _scatter(Z, perm):
    """``out`` with ``out[perm] = Z`` (``Z`` itself for ``perm=None``)."""
    if perm is None:
        return Z
    out = np.empty_like(Z)
    out[perm] = Z
    return out


def _selection(source, n, dtype):
    """The ``(len(source), n)`` 0/1 matrix gathering ``x[source]`` (``< n`` only).

    Row ``i`` picks entry ``source[i]`` of a vector of length ``n``; rows whose
    source is ``n`` or more (padding) are zero.
    """
    keep = source < n
    return sp.csr_array(
        (np.ones(keep.sum(), dtype=dtype), (np.flatnonzero(keep), source[keep])),
        shape=(len(source), n),
    )


class _CheckedOperator(LinearOperator):
    """``LinearOperator`` whose products reject bad operands with clear errors.

    SciPy's own checks only say "dimension mismatch"; these name the expected
    and the given shape, and refuse non-numeric dtypes.
    """

    def _check_operand(self, X, n_rows, ndims):
        X = X.toarray() if sp.issparse(X) else np.asarray(X)
        if X.dtype.kind not in "biufc":
            raise TypeError(
                "the operand must hold numbers (floats, complex, integers or "
                f"booleans), got dtype={X.dtype}."
            )
        expected = {1: f"({n_rows},)", 2: f"({n_rows}, n_columns)"}
        if X.ndim not in ndims or X.shape[0] != n_rows:
            raise ValueError(
                "the operand of an operator of shape "
                f"({self.shape[0]}, {self.shape[1]}) must have shape "
                f"{' or '.join(expected[k] for k in ndims)}, got shape={X.shape}."
            )
        return X

    def dot(self, x):
        if is_dask_array(x):
            if x.ndim == 1:
                return self.matmat(x[:, None])[:, 0]
            return self.matmat(x)
        return super().dot(x)

    def matvec(self, x):
        return super().matvec(self._check_operand(x, self.shape[1], (1, 2)))

    def rmatvec(self, x):
        return super().rmatvec(self._check_operand(x, self.shape[0], (1, 2)))

    def matmat(self, X):
        if is_dask_array(X):
            return map_dask_chunks(self.matmat, X, self.shape, self.dtype, axis=0)
        return super().matmat(self._check_operand(X, self.shape[1], (2,)))

    def rmatmat(self, X):
        if is_dask_array(X):
            return map_dask_chunks(
                self.rmatmat, X, self.shape[::-1], self.dtype, axis=0
            )
        return super().rmatmat(self._check_operand(X, self.shape[0], (2,)))

    def _matvec(self, x):
        return self._matmat(np.reshape(x, (-1, 1)))

    def _rmatvec(self, x):
        return self._rmatmat(np.reshape(x, (-1, 1)))


class _AdjointButterfly(_CheckedOperator):
    """Adjoint (``conjugate=True``) or transpose of a :class:`ButterflyMatrix`."""

    def __init__(self, B, conjugate):
        self._B = B
        self._conjugate = conjugate
        super().__init__(dtype=B.dtype, shape=B.shape[::-1])

    def _through(self, func, X):
        if self._conjugate:
            return func(X)
        return np.conj(func(np.conj(X)))

    def _matmat(self, X):
        return self._through(self._B._rmatmat, X)

    def _rmatmat(self, X):
        return self._through(self._B._matmat, X)

    def _adjoint(self):
        return self._B if self._conjugate else super()._adjoint()

    def _transpose(self):
        return super()._transpose() if self._conjugate else self._B


class ButterflyMatrix(_CheckedOperator):
    """Product of Kronecker-sparse factors, as a SciPy ``LinearOperator``.

    The operator is

    .. math:: B = P_{\\mathrm{row}}^T F_1 F_2 \\cdots F_J P_{\\mathrm{col}},
       \\qquad (B x)[\\mathrm{row\\_perm}] = F_1 F_2 \\cdots F_J \\,
       (x[\\mathrm{perm}]),

    cropped to :attr:`shape`: the input is zero-padded to the factors' input
    size, gathered by ``perm``, multiplied by the factors, the last one
    first, then scattered by ``row_perm`` (output ``row_perm[i]`` receives
    entry ``i``); the first ``shape[0]`` rows are returned. The factors
    therefore approximate ``A[row_perm][:, perm]`` (of the padded matrix).

    Each factor is stored compactly as the 4-D array ``K`` of its pattern
    ``(a, b, c, d)`` (see :class:`Pattern`), so a product costs ``O(nnz)`` per
    column, with temporaries of the size of the operand only. A single column
    runs one ``einsum`` per pair of factors (those with a short inner axis
    ``d`` on a transposed copy of the vector, so that the innermost loop is
    always long); several columns fuse runs of factors into blocks of at most
    256 entries, applied as batched matrix products. These plans are built on
    first use and kept (a few times ``nnz`` values).

    Products with a Dask array (``B @ X``, :meth:`matmat`, :meth:`rmatmat`,
    also through :attr:`H`) return a lazy Dask array, computed one chunk of
    columns at a time: batches larger than memory stream through.

    Parameters
    ----------
    factors : sequence of ndarray of shape (a, b, c, d)
        Values of the factors, listed left to right; neighbours must be
        chainable (:func:`chain_rank`). Copied; the stored copies are
        read-only.
    perm : array-like of int, default=None
        Permutation of ``range(n_in)`` (``n_in`` the last factor's number of
        columns) gathered from the (padded) input; ``None`` means identity.
    row_perm : array-like of int, default=None
        Permutation of ``range(m_out)`` (``m_out`` the first factor's number
        of rows) by which the factors' output is scattered: output
        ``row_perm[i]`` is the factors' entry ``i``; ``None`` means identity.
    shape : tuple of int, default=None
        Shape ``(m, n)`` of the operator, at most the factors' product shape
        (the rest is padding). ``None`` means the product shape.
    format : FloatFormat, int or str, default=None
        A floating-point format (as for :func:`round_to_format`) that every
        value of the factors is exactly representable in, recorded as
        :attr:`format`; values that are not raise ``ValueError``.

    Attributes
    ----------
    factors : tuple of ndarray
        The stored factor values.
    patterns : tuple of Pattern
        The factors' patterns.
    perm : ndarray of int or None
        The input (column) permutation.
    row_perm : ndarray of int or None
        The output (row) permutation.
    padded_shape : tuple of int
        Shape of the product of the factors.
    format : FloatFormat or None
        The format every stored value is exactly representable in (set by
        :func:`quantize_butterfly`); :meth:`save` then writes the values
        compactly. ``None`` when not recorded.

    See Also
    --------
    butterfly_factorize : Fit a ButterflyMatrix to a dense matrix.
    load : Read a ButterflyMatrix written by :meth:`save`.

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly import ButterflyMatrix
    >>> h = np.array([[1.0, 1.0], [1.0, -1.0]])
    >>> F1 = np.stack([h, h], axis=-1)[None]            # pattern (1, 2, 2, 2)
    >>> F2 = np.stack([h, h])[..., None]                # pattern (2, 2, 2, 1)
    >>> B = ButterflyMatrix([F1, F2])
    >>> B.toarray()
    array([[ 1.,  1.,  1.,  1.],
           [ 1., -1.,  1., -1.],
           [ 1.,  1., -1., -1.],
           [ 1., -1., -1.,  1.]])
    >>> B @ np.ones(4)
    array([4., 0., 0., 0.])
    >>> B.nnz, B.n_factors
    (16, 2)
    """

    def __init__(self, factors, perm=None, shape=None, row_perm=None, *, format=None):
        if isinstance(factors, np.ndarray) and factors.ndim == 4:
            factors = [factors]
        try:
            factors = list(factors)
        except TypeError:
            raise TypeError(
                "factors must be a sequence of 4-D arrays, got "
                f"{type(factors).__name__}."
            ) from None
        if not factors:
            raise ValueError("factors must hold at least one factor, got none.")
        checked = [
            check_matrix(K, name=f"factors[{i}]", ndim=4) for i, K in enumerate(factors)
        ]
        dtype = np.result_type(*checked)
        patterns = check_chain(K.shape for K in checked)
        stored = []
        for K in checked:
            K = np.array(K, dtype=dtype, order="C", copy=True)
            K.flags.writeable = False
            stored.append(K)
        padded = (patterns[0].shape[0], patterns[-1].shape[1])
        if shape is None:
            shape = padded
        m, n = check_shape(shape)
        if not (1 <= m <= padded[0] and 1 <= n <= padded[1]):
            raise ValueError(
                f"shape must be at most the factors' product shape {padded}, got "
                f"n_samples={m}, n_features={n}."
            )
        if perm is not None:
            perm = check_permutation(perm, padded[1], name="perm").copy()
            perm.flags.writeable = False
        if row_perm is not None:
            row_perm = check_permutation(row_perm, padded[0], name="row_perm").copy()
            row_perm.flags.writeable = False
        if format is not None:
            format = check_format(format)
            for i, K in enumerate(stored):
                if not np.array_equal(round_to_format(K, format), K):
                    raise ValueError(
                        f"factors[{i}] holds values that are not exactly "
                        f"representable in format={format}; quantize first "
                        "(quantize_butterfly)."
                    )
        self.factors = tuple(stored)
        self.patterns = patterns
        self.perm = perm
        self.row_perm = row_perm
        self.padded_shape = padded
        self.format = format
        self._plans = {}
        super().__init__(dtype=dtype, shape=(m, n))

    def __reduce__(self):
        # Copies and unpickled operators go through __init__: read-only
        # factors, checked values and no product plan carried over.
        return (
            _rebuild,
            (self.factors, self.perm, self.shape, self.format, self.row_perm),
        )

    # -- structure ---------------------------------------------------------

    @property
    def n_factors(self) -> int:
        """Number of factors ``J``."""
        return len(self.factors)

    @property
    def nnz(self) -> int:
        """Number of stored values in all factors."""
        return sum(K.size for K in self.factors)

    @property
    def flops(self) -> int:
        """Floating-point operations of one matrix-vector product, ``2 * nnz``.

        One multiplication and one addition per stored value (complex
        operations counted as one each); the permutations and padding are
        free.
        """
        return 2 * self.nnz

    def __repr__(self):
        return (
            f"<{self.shape[0]}x{self.shape[1]} ButterflyMatrix with dtype="
            f"{self.dtype}, {self.n_factors} factors, nnz={self.nnz}"
            f"{', permuted' if self.perm is not None else ''}"
            f"{', rows permuted' if self.row_perm is not None else ''}>"
        )

    # -- products ----------------------------------------------------------

    def _plan(self, adjoint, vector):
        key = (adjoint, vector)
        if key not in self._plans:
            limit = FUSE_BLOCK_VECTOR if vector else FUSE_BLOCK_MATRIX
            groups = fused_groups(list(self.factors), limit)
            # In the order they apply: the last group first, or, for the
            # adjoint, the conjugate transpose of the first group first.
            if adjoint:
                groups = [np.conj(K.transpose(0, 2, 1, 3)) for K in groups]
            else:
                groups = groups[::-1]
            groups = [np.ascontiguousarray(K) for K in groups]
            if vector:
                plan = vector_plan(groups)
            else:
                plan = [
                    (K, np.ascontiguousarray(K.transpose(0, 3, 1, 2))) for K in groups
                ]
            self._plans[key] = plan
        return self._plans[key]

    def _apply(self, adjoint, X):
        if X.shape[1] == 1:
            return apply_vector(self._plan(adjoint, True), X[:, 0])
        # Row-major columns: a transposed X (as transform passes) would be
        # regathered entry by entry by the first factor's reshape.
        X = np.ascontiguousarray(X)
        for K, Kt in self._plan(adjoint, False):
            X = ks_apply(K, X, Kt)
        return X

    def _matmat(self, X):
        X = np.asarray(X)
        m, n = self.shape
        n_in = self.padded_shape[1]
        if n < n_in:
            X = np.concatenate([X, np.zeros((n_in - n, X.shape[1]), X.dtype)])
        if self.perm is not None:
            X = X[self.perm]
        return _scatter(self._apply(False, X), self.row_perm)[:m]

    def _rmatmat(self, Y):
        Y = np.asarray(Y)
        m, n = self.shape
        m_out = self.padded_shape[0]
        if m < m_out:
            Y = np.concatenate([Y, np.zeros((m_out - m, Y.shape[1]), Y.dtype)])
        if self.row_perm is not None:
            Y = Y[self.row_perm]
        return _scatter(self._apply(True, Y), self.perm)[:n]

    def _adjoint(self):
        return _AdjointButterfly(self, conjugate=True)

    def _transpose(self):
        return _AdjointButterfly(self, conjugate=False)

    # -- exports -----------------------------------------------------------

    def toarray(self) -> np.ndarray:
        """Dense matrix of the operator, shape :attr:`shape`.

        Returns
        -------
        ndarray of shape (m, n)
        """
        return self._matmat(np.eye(self.shape[1], dtype=self.dtype))

    def todense(self) -> np.ndarray:
        """Dense matrix of the operator, as :meth:`toarray`.

        For code written against ``scipy.sparse``; returns an ``ndarray``
        (never the deprecated ``numpy.matrix``).

        Returns
        -------
        ndarray of shape (m, n)

        Examples
        --------
        >>> import numpy as np
        >>> from skbutterfly.datasets import random_butterfly
        >>> B = random_butterfly(8, random_state=0)
        >>> np.array_equal(B.todense(), B.toarray())
        True
        """
        return self.toarray()

    def astype(self, dtype) -> "ButterflyMatrix":
        """Copy of the operator with its factors cast to ``dtype``.

        Parameters
        ----------
        dtype : data-type
            ``float32``, ``float64``, ``complex64`` or ``complex128``
            (anything ``numpy.dtype`` turns into one). A complex operator
            cannot be cast to a real dtype (its imaginary parts would be
            lost): that raises a ``TypeError``.

        Returns
        -------
        ButterflyMatrix
            Same patterns, permutation and shape; ``self`` is unchanged.

        Examples
        --------
        >>> from skbutterfly.datasets import random_butterfly
        >>> B = random_butterfly(8, random_state=0)
        >>> B.astype("float32")
        <8x8 ButterflyMatrix with dtype=float32, 3 factors, nnz=48>
        """
        dtype = np.dtype(dtype)
        if dtype.kind not in "fc" or dtype.itemsize < 4 + 4 * (dtype.kind == "c"):
            raise TypeError(
                "dtype must be float32, float64, complex64 or complex128, got "
                f"dtype={dtype}."
            )
        if self.dtype.kind == "c" and dtype.kind == "f":
            raise TypeError(
                f"cannot cast a complex operator (dtype={self.dtype}) to "
                f"dtype={dtype}: the imaginary parts would be lost; take the "
                "real part of the factors explicitly if that is meant."
            )
        # A shallow copy keeps every other attribute (permutations, shape).
        cast = copy.copy(self)
        factors = []
        for K in self.factors:
            K = K.astype(dtype)
            K.flags.writeable = False
            factors.append(K)
        cast.factors = tuple(factors)
        cast.dtype = dtype
        cast._plans = {}
        return cast

    def factors_sparse(self) -> list:
        """The factors as ``scipy.sparse.csr_array``, left to right.

        The first factor's rows are cropped to ``shape[0]``; when the operator
        has a column permutation or pads its input, a last ``(n_in, n)`` 0/1
        matrix (gathering and padding) is appended; when it has a row
        permutation, a first ``(m, m_out)`` 0/1 matrix (scattering and
        cropping) is prepended instead of cropping, so that the product of
        the list always equals :meth:`toarray`.

        Returns
        -------
        list of scipy.sparse.csr_array

        Examples
        --------
        >>> import numpy as np
        >>> from skbutterfly.datasets import random_butterfly
        >>> B = random_butterfly(8, random_state=0)
        >>> mats = B.factors_sparse()
        >>> P = mats[0] @ mats[1] @ mats[2]
        >>> np.allclose(P.toarray(), B.toarray())
        True
        """
        mats = []
        for K in self.factors:
            rows, cols = ks_indices(K.shape)
            a, b, c, d = K.shape
            mats.append(
                sp.csr_array(
                    (K.ravel(), (rows.ravel(), cols.ravel())),
                    shape=(a * b * d, a * c * d),
                )
            )
        m, n = self.shape
        if self.row_perm is None:
            mats[0] = mats[0][:m]
        else:
            mats.insert(0, _selection(self.row_perm, m, self.dtype).T.tocsr())
        n_in = self.padded_shape[1]
        if self.perm is not None or n < n_in:
            source = np.arange(n_in) if self.perm is None else self.perm
            mats.append(_selection(source, n, self.dtype))
        return mats

    # -- persistence -------------------------------------------------------

    def save(self, path) -> None:
        """Write the operator to a ``.npz`` file (no pickle).

        The file is written to a temporary name beside ``path``
        (``.NAME.XXXX.tmp``) and renamed, so an interrupted save never leaves
        a half-written file. Only a regular file or a new name is written (a
        symbolic link is followed to its file); directories, devices and
        FIFOs are refused with ``ValueError``. A new file gets the
        permissions of ``np.savez`` (``0o666`` less the umask), a replaced
        one keeps its own. With a recorded :attr:`format` the values are
        stored compactly (float8 codes, float16, bfloat16 bit patterns,
        float32: the smallest that holds them exactly).

        Parameters
        ----------
        path : str or path-like
            Destination, used as given.

        See Also
        --------
        load : Read the file back.

        Examples
        --------
        >>> import os, tempfile
        >>> import numpy as np
        >>> from skbutterfly import load
        >>> from skbutterfly.datasets import random_butterfly
        >>> B = random_butterfly(16, random_state=0)
        >>> path = os.path.join(tempfile.mkdtemp(), "b.npz")
        >>> B.save(path)
        >>> np.array_equal(load(path).toarray(), B.toarray())
        True
        """
        from skbutterfly._io import save

        save(self, path)


def _rebuild(factors, perm, shape, format, row_perm=None):
    return ButterflyMatrix(
        factors, perm=perm, shape=shape, row_perm=row_perm, format=format
    )


# Columns of the operator evaluated at once when measuring an error.
ERROR_CHUNK = 256


def frobenius_error(A, B):
    """``||A - B||_F`` for a dense ``A`` and an operator, by column chunks."""
    m, n = A.shape
    # At the scale of A brought near one (exact): no square under- or overflows.
    exponent = peak_exponent(A)
    total = 0.0
    for lo in range(0, n, ERROR_CHUNK):
        hi = min(n, lo + ERROR_CHUNK)
        eye = np.zeros((n, hi - lo), dtype=B.dtype)
        eye[np.arange(lo, hi), np.arange(hi - lo)] = 1
        residual = scale_pow2(A[:, lo:hi], -exponent) - scale_pow2(B @ eye, -exponent)
        total += frobenius_norm(residual) ** 2
    return ldexp_or_inf(float(np.sqrt(total)), exponent)
