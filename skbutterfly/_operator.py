"""The fitted operator: a product of Kronecker-sparse factors and a permutation."""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import os
import tempfile
import zipfile

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator

from skbutterfly._kernels import fuse_values, ks_apply, ks_indices
from skbutterfly._patterns import Pattern, check_chain, fuse_patterns
from skbutterfly._validation import check_matrix, check_permutation

FILE_FORMAT = "skbutterfly.ButterflyMatrix"
FILE_VERSION = 1

# Products with more than this many columns fuse runs of factors into blocks of
# at most _FUSE_BLOCK_MATRIX entries (fewer passes over memory, batched matrix
# products); vectors stay with smaller blocks, where the cost is reading the
# factors' values.
_MANY_COLUMNS = 8
_FUSE_BLOCK_MATRIX = 256
_FUSE_BLOCK_VECTOR = 16


def _fused_groups(factors, block_limit):
    """Greedily fuse consecutive factors while blocks stay small."""
    groups = [factors[0]]
    for K in factors[1:]:
        last = groups[-1]
        fused = fuse_patterns(Pattern(*last.shape), Pattern(*K.shape))
        cheap = fused.nnz <= 4 * (last.size + K.size)
        if fused.b * fused.c <= block_limit and cheap:
            groups[-1] = fuse_values(last, K)
        else:
            groups.append(K)
    return groups


class ButterflyMatrix(LinearOperator):
    """Product of Kronecker-sparse factors, as a SciPy ``LinearOperator``.

    The operator is

    .. math:: B x = F_1 F_2 \\cdots F_J \\, (x[\\mathrm{perm}]),

    cropped to :attr:`shape`: the input is zero-padded to the factors' input
    size, gathered by ``perm``, then multiplied by the factors, the last one
    first; the first ``shape[0]`` rows are returned. The factors therefore
    approximate ``A[:, perm]`` (of the padded matrix).

    Each factor is stored compactly as the 4-D array ``K`` of its pattern
    ``(a, b, c, d)`` (see :class:`Pattern`), so a product costs ``O(nnz)`` per
    column; runs of factors are fused into denser blocks when that makes
    products with many columns faster.

    Parameters
    ----------
    factors : sequence of ndarray of shape (a, b, c, d)
        Values of the factors, listed left to right; neighbours must be
        chainable (:func:`chain_rank`). Copied; the stored copies are
        read-only.
    perm : array-like of int, default=None
        Permutation of ``range(n_in)`` (``n_in`` the last factor's number of
        columns) gathered from the (padded) input; ``None`` means identity.
    shape : tuple of int, default=None
        Shape ``(m, n)`` of the operator, at most the factors' product shape
        (the rest is padding). ``None`` means the product shape.

    Attributes
    ----------
    factors : tuple of ndarray
        The stored factor values.
    patterns : tuple of Pattern
        The factors' patterns.
    perm : ndarray of int or None
        The input permutation.
    padded_shape : tuple of int
        Shape of the product of the factors.

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

    def __init__(self, factors, perm=None, shape=None):
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
        try:
            m, n = (int(s) for s in shape)
        except (TypeError, ValueError):
            raise ValueError(f"shape must be a pair of ints, got {shape!r}.") from None
        if not (1 <= m <= padded[0] and 1 <= n <= padded[1]):
            raise ValueError(
                f"shape must be at most the factors' product shape {padded}, got "
                f"n_samples={m}, n_features={n}."
            )
        if perm is not None:
            perm = check_permutation(perm, padded[1], name="perm").copy()
            perm.flags.writeable = False
        self.factors = tuple(stored)
        self.patterns = patterns
        self.perm = perm
        self.padded_shape = padded
        self._plans = {}
        super().__init__(dtype=dtype, shape=(m, n))

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
        operations counted as one each); the permutation and padding are free.
        """
        return 2 * self.nnz

    def __repr__(self):
        return (
            f"<{self.shape[0]}x{self.shape[1]} ButterflyMatrix with dtype="
            f"{self.dtype}, {self.n_factors} factors, nnz={self.nnz}"
            f"{', permuted' if self.perm is not None else ''}>"
        )

    # -- products ----------------------------------------------------------

    def _plan(self, adjoint, many_columns):
        key = (adjoint, many_columns)
        if key not in self._plans:
            limit = _FUSE_BLOCK_MATRIX if many_columns else _FUSE_BLOCK_VECTOR
            # Listed in the order they are applied: the last group first, or,
            # for the adjoint, the conjugate transpose of the first group first.
            groups = _fused_groups(list(self.factors), limit)[::-1]
            if adjoint:
                groups = [np.conj(K.transpose(0, 2, 1, 3)) for K in groups[::-1]]
            self._plans[key] = [
                (K, np.ascontiguousarray(K.transpose(0, 3, 1, 2))) for K in groups
            ]
        return self._plans[key]

    def _run(self, plan, X):
        for K, Kt in plan:
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
        plan = self._plan(False, X.shape[1] > _MANY_COLUMNS)
        return self._run(plan, X)[:m]

    def _rmatmat(self, Y):
        Y = np.asarray(Y)
        m, n = self.shape
        m_out = self.padded_shape[0]
        if m < m_out:
            Y = np.concatenate([Y, np.zeros((m_out - m, Y.shape[1]), Y.dtype)])
        Z = self._run(self._plan(True, Y.shape[1] > _MANY_COLUMNS), Y)
        if self.perm is not None:
            out = np.empty_like(Z)
            out[self.perm] = Z
            Z = out
        return Z[:n]

    def _matvec(self, x):
        return self._matmat(np.reshape(x, (-1, 1)))

    def _rmatvec(self, x):
        return self._rmatmat(np.reshape(x, (-1, 1)))

    # -- exports -----------------------------------------------------------

    def toarray(self) -> np.ndarray:
        """Dense matrix of the operator, shape :attr:`shape`.

        Returns
        -------
        ndarray of shape (m, n)
        """
        return self._matmat(np.eye(self.shape[1], dtype=self.dtype))

    def factors_sparse(self) -> list:
        """The factors as ``scipy.sparse.csr_array``, left to right.

        The first factor's rows are cropped to ``shape[0]``; when the operator
        has a permutation or pads its input, a last ``(n_in, n)`` 0/1 matrix
        (gathering and padding) is appended, so that the product of the list
        always equals :meth:`toarray`.

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
        mats[0] = mats[0][:m]
        n_in = self.padded_shape[1]
        if self.perm is not None or n < n_in:
            source = np.arange(n_in) if self.perm is None else self.perm
            keep = source < n
            gather = sp.csr_array(
                (
                    np.ones(keep.sum(), dtype=self.dtype),
                    (np.flatnonzero(keep), source[keep]),
                ),
                shape=(n_in, n),
            )
            mats.append(gather)
        return mats

    # -- persistence -------------------------------------------------------

    def save(self, path) -> None:
        """Write the operator to a ``.npz`` file (no pickle).

        The file is written to a temporary name beside ``path`` and renamed,
        so an interrupted save never leaves a half-written file.

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
        arrays = {
            "format": np.array(FILE_FORMAT),
            "version": np.array(FILE_VERSION),
            "shape": np.array(self.shape, dtype=np.int64),
            "n_factors": np.array(self.n_factors),
        }
        for i, K in enumerate(self.factors):
            arrays[f"factor_{i}"] = K
        if self.perm is not None:
            arrays["perm"] = self.perm
        path = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **arrays)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise


def load(path) -> ButterflyMatrix:
    """Read a :class:`ButterflyMatrix` written by :meth:`ButterflyMatrix.save`.

    The file is opened with ``allow_pickle=False``: nothing in it is executed.

    Parameters
    ----------
    path : str or path-like
        File to read.

    Returns
    -------
    ButterflyMatrix

    Raises
    ------
    ValueError
        If the file is missing, not an ``.npz`` archive, not written by
        skbutterfly, of an unsupported version, truncated or inconsistent.

    Examples
    --------
    >>> import os, tempfile
    >>> from skbutterfly import load
    >>> from skbutterfly.datasets import random_butterfly
    >>> path = os.path.join(tempfile.mkdtemp(), "b.npz")
    >>> random_butterfly(8, random_state=1).save(path)
    >>> load(path)
    <8x8 ButterflyMatrix with dtype=float64, 3 factors, nnz=48>
    """
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ValueError("not an .npz archive")
            contents = {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise ValueError(f"cannot load {path!r}: no such file.") from None
    except AttributeError:
        raise ValueError(f"cannot load {path!r}: not an .npz archive.") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise ValueError(
            f"cannot load {path!r}: not a readable skbutterfly .npz file ({exc})."
        ) from exc
    if str(contents.get("format", "")) != FILE_FORMAT:
        raise ValueError(
            f"cannot load {path!r}: not a skbutterfly ButterflyMatrix file "
            "(format field missing or different)."
        )
    try:
        version = int(contents["version"])
        n_factors = int(contents["n_factors"])
        shape = tuple(int(s) for s in contents["shape"])
        factors = [contents[f"factor_{i}"] for i in range(n_factors)]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"cannot load {path!r}: incomplete file ({exc}).") from exc
    if version > FILE_VERSION:
        raise ValueError(
            f"cannot load {path!r}: file version {version} is newer than the "
            f"supported version {FILE_VERSION}; upgrade skbutterfly."
        )
    try:
        return ButterflyMatrix(factors, perm=contents.get("perm"), shape=shape)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"cannot load {path!r}: inconsistent content ({exc})."
        ) from None
