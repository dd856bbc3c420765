"""Test matrices and instance generators: Hadamard, DFT, random butterflies, noise."""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
import scipy.linalg
from sklearn.utils import check_random_state

from skbutterfly._operator import ButterflyMatrix
from skbutterfly._patterns import architecture
from skbutterfly._validation import check_matrix, check_permutation, check_positive_int

__all__ = ["add_noise", "dft", "hadamard", "random_butterfly"]


def _power_of_two(n, name="n"):
    n = check_positive_int(n, name)
    if n & (n - 1):
        raise ValueError(f"{name} must be a power of two, got {name}={n}.")
    return n


def hadamard(n: int, dtype=np.float64) -> np.ndarray:
    """Sylvester-Hadamard matrix of size ``n`` (a power of two), entries ±1.

    It is exactly the product of the ``log2(n)`` classic butterfly factors
    :math:`I_{2^{k-1}} \\otimes \\begin{pmatrix}1&1\\\\1&-1\\end{pmatrix}
    \\otimes I_{n/2^k}`.

    Examples
    --------
    >>> from skbutterfly.datasets import hadamard
    >>> hadamard(2)
    array([[ 1.,  1.],
           [ 1., -1.]])
    """
    return scipy.linalg.hadamard(_power_of_two(n)).astype(dtype)


def dft(n: int, norm: str | None = None) -> np.ndarray:
    """Matrix of the discrete Fourier transform, :math:`\\omega^{jk}`.

    Parameters
    ----------
    n : int
        Size.
    norm : {None, "ortho"}, default=None
        ``"ortho"`` divides by :math:`\\sqrt{n}` (unitary matrix).

    Returns
    -------
    ndarray of shape (n, n), dtype complex128
        ``dft(n) @ x == numpy.fft.fft(x)``.

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly.datasets import dft
    >>> x = np.arange(4.0)
    >>> np.allclose(dft(4) @ x, np.fft.fft(x))
    True
    """
    n = check_positive_int(n, "n")
    if norm not in (None, "ortho"):
        raise ValueError(f"norm must be None or 'ortho', got {norm!r}.")
    return scipy.linalg.dft(n, scale=None if norm is None else "sqrtn")


def random_butterfly(
    shape,
    n_factors: int | None = None,
    rank: int = 1,
    *,
    permutation=None,
    dtype=np.float64,
    random_state=None,
) -> ButterflyMatrix:
    """Random butterfly with i.i.d. standard normal values on its supports.

    Parameters
    ----------
    shape : int or tuple of int
        ``n`` for a square ``n x n`` operator, or ``(m, n)``.
    n_factors : int, default=None
        Depth ``J`` (see :func:`~skbutterfly.architecture`).
    rank : int, default=1
        Block rank.
    permutation : array-like of int, default=None
        Input permutation stored in the operator.
    dtype : dtype, default=numpy.float64
        float32, float64, complex64 or complex128 (complex values have
        independent real and imaginary parts of variance 1/2).
    random_state : int, RandomState instance or None, default=None
        Seed.

    Returns
    -------
    ButterflyMatrix
        The true factors, so that tests can compare a fit with the truth.

    Examples
    --------
    >>> from skbutterfly.datasets import random_butterfly
    >>> B = random_butterfly(16, random_state=0)
    >>> B.n_factors, B.nnz
    (4, 128)
    """
    if np.ndim(shape) == 0:
        shape = (shape, shape)
    dtype = np.dtype(dtype)
    if dtype.type not in (np.float32, np.float64, np.complex64, np.complex128):
        raise TypeError(
            f"dtype must be float32, float64, complex64 or complex128, got {dtype}."
        )
    arch = architecture(shape, n_factors=n_factors, rank=rank)
    rng = check_random_state(random_state)
    factors = []
    for p in arch:
        values = rng.standard_normal(tuple(p))
        if dtype.kind == "c":
            values = (values + 1j * rng.standard_normal(tuple(p))) / np.sqrt(2)
        factors.append(values.astype(dtype))
    if permutation is not None:
        permutation = check_permutation(
            permutation, arch.padded_shape[1], name="permutation"
        )
    return ButterflyMatrix(factors, perm=permutation, shape=arch.shape)


def add_noise(A, level: float, *, random_state=None) -> np.ndarray:
    """Add Gaussian noise of a given relative Frobenius norm.

    Returns :math:`A + E` with :math:`\\|E\\|_F = \\text{level}\\,\\|A\\|_F`;
    ``E`` is complex (independent real and imaginary parts) when ``A`` is.

    Parameters
    ----------
    A : array-like of shape (m, n)
        Matrix (not modified).
    level : float
        Relative noise level, >= 0.
    random_state : int, RandomState instance or None, default=None
        Seed.

    Returns
    -------
    ndarray of shape (m, n)

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly.datasets import add_noise
    >>> A = np.ones((4, 4))
    >>> N = add_noise(A, 0.1, random_state=0)
    >>> round(float(np.linalg.norm(N - A) / np.linalg.norm(A)), 12)
    0.1
    """
    A = check_matrix(A, name="A")
    if not np.isfinite(level) or level < 0:
        raise ValueError(f"level must be a finite number >= 0, got {level!r}.")
    rng = check_random_state(random_state)
    E = rng.standard_normal(A.shape)
    if A.dtype.kind == "c":
        E = E + 1j * rng.standard_normal(A.shape)
    scale = level * np.linalg.norm(A) / np.linalg.norm(E)
    return (A + scale * E).astype(A.dtype)
