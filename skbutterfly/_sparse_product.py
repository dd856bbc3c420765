"""``SparseProduct``: a product of CSR factors as a ``LinearOperator``.

Layer 2 (structures): the fitted operator of :func:`sparse_factorize`, its
products, its adjoint and its ``.npz`` file (no pickle).
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import os
import zipfile

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator

from skbutterfly._io import SPARSE_PRODUCT_FORMAT as FILE_FORMAT
from skbutterfly._io import write_npz

FILE_VERSION = 1


class SparseProduct(LinearOperator):
    """The product :math:`S_1 S_2 \\cdots S_J` of sparse factors.

    A :class:`scipy.sparse.linalg.LinearOperator`: ``P @ x`` applies the
    factors right to left, ``O(nnz)`` per column, and ``P.H`` is the product
    of the conjugate-transposed factors in reverse order. Iterative solvers
    (``cg``, ``lsqr``, ``gmres``) and composition work on it.

    Parameters
    ----------
    factors : sequence of sparse matrices or 2-D arrays
        The factors, left to right, chainable (``factors[j].shape[1] ==
        factors[j + 1].shape[0]``). Stored as ``scipy.sparse.csr_array`` with
        explicit zeros removed.

    Attributes
    ----------
    factors : list of scipy.sparse.csr_array
        The factors, left to right.

    See Also
    --------
    sparse_factorize : Finds such a product for a given matrix.
    ButterflyMatrix : The same for butterfly supports, with compact storage.

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly import SparseProduct
    >>> P = SparseProduct([np.array([[1.0, 1.0], [1.0, -1.0]]), np.eye(2)])
    >>> P @ np.array([1.0, 2.0])
    array([ 3., -1.])
    >>> P.nnz, P.flops, P.n_factors
    (6, 12, 2)
    >>> np.allclose(P.H.toarray(), P.toarray().T)
    True
    """

    def __init__(self, factors):
        mats = []
        for j, F in enumerate(factors):
            F = sp.csr_array(F)
            if F.ndim != 2:
                raise ValueError(f"factors[{j}] must be 2-D, got ndim={F.ndim}.")
            F.eliminate_zeros()
            mats.append(F)
        if not mats:
            raise ValueError("factors must hold at least one matrix, got none.")
        for j in range(len(mats) - 1):
            if mats[j].shape[1] != mats[j + 1].shape[0]:
                raise ValueError(
                    f"factors[{j}] has shape {mats[j].shape} and factors[{j + 1}] "
                    f"shape {mats[j + 1].shape}: they are not chainable."
                )
        self.factors = mats
        dtype = np.result_type(*(F.dtype for F in mats))
        super().__init__(dtype=dtype, shape=(mats[0].shape[0], mats[-1].shape[1]))

    @property
    def n_factors(self) -> int:
        """Number of factors ``J``."""
        return len(self.factors)

    @property
    def nnz(self) -> int:
        """Number of stored nonzeros in all factors."""
        return sum(F.nnz for F in self.factors)

    @property
    def flops(self) -> int:
        """Operations of one matrix-vector product, ``2 * nnz``.

        One multiplication and one addition per stored value, as for
        :class:`ButterflyMatrix`.
        """
        return 2 * self.nnz

    def __repr__(self):
        return (
            f"<{self.shape[0]}x{self.shape[1]} SparseProduct with dtype="
            f"{self.dtype}, {self.n_factors} factors, nnz={self.nnz}>"
        )

    def _matmat(self, X):
        X = np.asarray(X)
        for F in reversed(self.factors):
            X = F @ X
        return np.asarray(X, dtype=np.result_type(self.dtype, X.dtype))

    def _matvec(self, x):
        return self._matmat(np.reshape(x, (-1, 1)))

    def _adjoint(self):
        return SparseProduct([F.conj().T for F in reversed(self.factors)])

    def _transpose(self):
        return SparseProduct([F.T for F in reversed(self.factors)])

    def toarray(self):
        """The dense matrix, ``ndarray`` of shape ``shape``."""
        out = self.factors[-1].toarray()
        for F in reversed(self.factors[:-1]):
            out = F @ out
        return np.asarray(out, dtype=self.dtype)

    def save(self, path) -> None:
        """Write the product to a ``.npz`` file (no pickle, atomic rename).

        Parameters
        ----------
        path : str or path-like
            Destination, used as given.

        See Also
        --------
        SparseProduct.load : Read it back.

        Examples
        --------
        >>> import os, tempfile
        >>> import numpy as np
        >>> from skbutterfly import SparseProduct
        >>> P = SparseProduct([np.eye(3), np.triu(np.ones((3, 3)))])
        >>> path = os.path.join(tempfile.mkdtemp(), "p.npz")
        >>> P.save(path)
        >>> np.array_equal(SparseProduct.load(path).toarray(), P.toarray())
        True
        """
        arrays = {
            "format": np.array(FILE_FORMAT),
            "version": np.array(FILE_VERSION),
            "n_factors": np.array(self.n_factors),
        }
        for j, F in enumerate(self.factors):
            arrays[f"data_{j}"] = F.data
            arrays[f"indices_{j}"] = F.indices
            arrays[f"indptr_{j}"] = F.indptr
            arrays[f"shape_{j}"] = np.array(F.shape, dtype=np.int64)
        write_npz(path, arrays)

    @classmethod
    def load(cls, path) -> "SparseProduct":
        """Read a product written by :meth:`save` (``allow_pickle=False``).

        Parameters
        ----------
        path : str or path-like
            A file written by :meth:`save`.

        Returns
        -------
        SparseProduct

        Raises
        ------
        ValueError
            When the file is not a ``SparseProduct`` file or is inconsistent.
        """
        try:
            with np.load(os.fspath(path), allow_pickle=False) as data:
                return cls(_read_factors(data, path))
        except (KeyError, TypeError, zipfile.BadZipFile, EOFError) as exc:
            raise ValueError(
                f"cannot load {path!r}: not a complete {FILE_FORMAT} file ({exc})."
            ) from None


def _read_factors(data, path):
    """The CSR factors stored in ``data`` (an open ``.npz``), checked."""
    if "format" not in data or str(data["format"]) != FILE_FORMAT:
        raise ValueError(f"cannot load {path!r}: not a {FILE_FORMAT} file.")
    version = int(data["version"])
    if version != FILE_VERSION:
        raise ValueError(
            f"cannot load {path!r}: file version {version}; this skbutterfly "
            f"reads version {FILE_VERSION}."
        )
    n_factors = int(data["n_factors"])
    members = {"format", "version", "n_factors"} | {
        f"{name}_{j}"
        for j in range(n_factors)
        for name in ("data", "indices", "indptr", "shape")
    }
    if set(data.files) != members:
        raise ValueError(
            f"cannot load {path!r}: members {sorted(data.files)} differ from the "
            f"expected {sorted(members)}."
        )
    factors = []
    for j in range(n_factors):
        shape = tuple(int(s) for s in data[f"shape_{j}"])
        try:
            F = sp.csr_array(
                (data[f"data_{j}"], data[f"indices_{j}"], data[f"indptr_{j}"]),
                shape=shape,
            )
            F.check_format(full_check=True)
        except (ValueError, TypeError) as exc:
            raise ValueError(
                f"cannot load {path!r}: factor {j} is corrupt ({exc})."
            ) from None
        factors.append(F)
    return factors
