"""Test matrices and instance generators: Hadamard, DFT, random butterflies, noise."""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

from numbers import Real

import numpy as np
import scipy.linalg
from sklearn.utils import check_random_state

from skbutterfly._operator import ButterflyMatrix
from skbutterfly._patterns import architecture
from skbutterfly._scaling import frobenius_norm, peak_exponent, scale_pow2
from skbutterfly._supports import lower_triangular_support, upper_triangular_support
from skbutterfly._validation import (
    check_matrix,
    check_permutation,
    check_positive_int,
    check_power_of_two,
    check_support,
)

__all__ = [
    "add_noise",
    "dft",
    "fourier_integral_operator",
    "hadamard",
    "legendre_transform",
    "lu_supports",
    "nonuniform_dft",
    "random_butterfly",
    "rank_one_completion_instance",
    "spurious_valley_instance",
]


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
    n = check_power_of_two(n)
    kind = np.dtype(dtype).kind
    if kind not in "ifc":
        raise TypeError(
            "dtype must be a signed integer, floating or complex dtype (entries "
            f"are -1 and 1), got dtype={np.dtype(dtype)}."
        )
    # Allocate first: an impossible size fails here with MemoryError at once.
    out = np.empty((n, n), dtype=dtype)
    out[0, 0] = 1
    size = 1
    while size < n:
        top = out[:size, :size]
        out[:size, size : 2 * size] = top
        out[size : 2 * size, :size] = top
        out[size : 2 * size, size : 2 * size] = -top
        size *= 2
    return out


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


def nonuniform_dft(n: int, *, random_state=None) -> np.ndarray:
    """Non-uniform DFT ``exp(-2 pi i x_j k)`` at sorted random nodes.

    Nodes ``x_j`` uniform in ``[0, 1)``, sorted (the natural, geometric
    ordering of the rows), frequencies ``k = 0, ..., n - 1``. It has fast
    butterfly algorithms, but only once its rows are reordered (bit reversal):
    see :func:`~skbutterfly.butterfly_factorize`'s ``row_permutation``.

    Parameters
    ----------
    n : int
        Size.
    random_state : int, RandomState instance or None, default=None
        Seed of the nodes.

    Returns
    -------
    ndarray of shape (n, n), complex128

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly.datasets import nonuniform_dft
    >>> A = nonuniform_dft(8, random_state=0)
    >>> A.shape, bool(np.allclose(np.abs(A), 1))
    ((8, 8), True)
    """
    n = check_positive_int(n, "n")
    x = np.sort(check_random_state(random_state).uniform(0, 1, n))
    return np.exp(-2j * np.pi * np.outer(x, np.arange(n)))


def fourier_integral_operator(n: int) -> np.ndarray:
    """A Fourier integral operator ``exp(2 pi i (x xi + c(x) |xi|))``.

    On the grid ``x_j = j / n`` with frequencies ``xi = -n/2, ..., n/2 - 1``
    and the smooth velocity ``c(x) = (2 + sin(2 pi x)) / 16``, as in the
    butterfly literature (Candès, Demanet and Ying, 2009).

    Parameters
    ----------
    n : int
        Size (even).

    Returns
    -------
    ndarray of shape (n, n), complex128

    Examples
    --------
    >>> from skbutterfly.datasets import fourier_integral_operator
    >>> fourier_integral_operator(4).shape
    (4, 4)
    """
    n = check_positive_int(n, "n")
    x = np.arange(n) / n
    xi = np.arange(n) - n // 2
    c = (2 + np.sin(2 * np.pi * x)) / 16
    return np.exp(2j * np.pi * (np.outer(x, xi) + np.outer(c, np.abs(xi))))


def legendre_transform(n: int) -> np.ndarray:
    """Orthonormal Legendre polynomials at the Gauss-Legendre nodes.

    ``A[j, k] = sqrt(w_j) sqrt(k + 1/2) P_k(x_j)`` for the ``n`` Gauss nodes
    ``x_j`` (increasing) and weights ``w_j``: an orthogonal matrix.

    Parameters
    ----------
    n : int
        Size.

    Returns
    -------
    ndarray of shape (n, n), float64

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly.datasets import legendre_transform
    >>> A = legendre_transform(16)
    >>> bool(np.allclose(A.T @ A, np.eye(16)))
    True
    """
    n = check_positive_int(n, "n")
    nodes, weights = np.polynomial.legendre.leggauss(n)
    V = np.polynomial.legendre.legvander(nodes, n - 1)
    return np.sqrt(weights)[:, None] * V * np.sqrt(np.arange(n) + 0.5)


def random_butterfly(
    shape,
    n_factors: int | None = None,
    rank: int = 1,
    *,
    permutation=None,
    row_permutation=None,
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
        Input (column) permutation stored in the operator.
    row_permutation : array-like of int, default=None
        Output (row) permutation stored in the operator.
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
    if row_permutation is not None:
        row_permutation = check_permutation(
            row_permutation, arch.padded_shape[0], name="row_permutation"
        )
    return ButterflyMatrix(
        factors, perm=permutation, shape=arch.shape, row_perm=row_permutation
    )


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
    if not isinstance(level, Real) or not np.isfinite(level) or level < 0:
        raise ValueError(f"level must be a finite number >= 0, got {level!r}.")
    rng = check_random_state(random_state)
    E = rng.standard_normal(A.shape)
    if A.dtype.kind == "c":
        E = E + 1j * rng.standard_normal(A.shape)
    # Norms of huge entries overflow: at the scale of A brought near one.
    exponent = peak_exponent(A)
    E *= level * frobenius_norm(scale_pow2(A, -exponent)) / frobenius_norm(E)
    with np.errstate(over="ignore", invalid="ignore"):
        noisy = (A + scale_pow2(E, exponent)).astype(A.dtype)
    if not np.isfinite(noisy).all():
        raise ValueError(
            f"level={level!r} makes the noisy matrix overflow {A.dtype}: the "
            "noise is level * ||A||_F in Frobenius norm."
        )
    return noisy


def rank_one_completion_instance(A, mask):
    """Fixed-support instance equivalent to rank-one matrix completion.

    Rank-one completion, :math:`\\min_{x, y} \\sum_{(i,j) \\in \\Omega}
    |A_{ij} - x_i y_j|^2` over the observed set :math:`\\Omega` (``mask``),
    is NP-hard; it reduces to a fixed-support factorization with
    ``r = 1 + |unobserved|`` (Le et al., arXiv:2112.00386): column 0 of ``W`` and
    row 0 of ``H`` are full (the rank-one term), and the ``k``-th unobserved
    entry ``(i_k, j_k)`` (row-major order) gets column ``k`` of ``W``
    supported on row ``i_k`` and row ``k`` of ``H`` on column ``j_k`` (a
    1 x 1 complete class that absorbs that entry). Both problems have the same
    optimal value, whatever the target holds at the unobserved entries.

    Parameters
    ----------
    A : array-like of shape (m, n)
        Matrix (not modified).
    mask : array-like of shape (m, n)
        Observed entries (booleans, or numbers equal to 0 or 1).

    Returns
    -------
    target : ndarray of shape (m, n)
        ``A`` with its unobserved entries set to zero.
    S_W : ndarray of shape (m, r), dtype bool
    S_H : ndarray of shape (r, n), dtype bool

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly import analyze_supports
    >>> from skbutterfly.datasets import rank_one_completion_instance
    >>> mask = np.array([[1, 1, 0], [1, 0, 1]])
    >>> target, S_W, S_H = rank_one_completion_instance(np.ones((2, 3)), mask)
    >>> S_W.astype(int)
    array([[1, 1, 0],
           [1, 0, 1]])
    >>> analyze_supports(S_W, S_H).tractable
    False
    """
    A = check_matrix(A, name="A")
    mask = check_support(mask, "mask")
    if mask.shape != A.shape:
        raise ValueError(
            f"mask must have the shape of A, n_samples={A.shape[0]}, "
            f"n_features={A.shape[1]}, got shape={mask.shape}."
        )
    m, n = A.shape
    holes_i, holes_j = np.nonzero(~mask)
    k = np.arange(1, holes_i.size + 1)
    S_W = np.zeros((m, 1 + holes_i.size), dtype=bool)
    S_H = np.zeros((1 + holes_i.size, n), dtype=bool)
    S_W[:, 0] = True
    S_H[0] = True
    S_W[holes_i, k] = True
    S_H[k, holes_j] = True
    return np.where(mask, A, 0).astype(A.dtype), S_W, S_H


def lu_supports(n: int):
    """Supports of the LU factorization ``A = L U`` of an ``n x n`` matrix.

    ``S_W`` is lower and ``S_H`` upper triangular. The set of matrices with
    an LU factorization is not closed (``[[0, 1], [1, 0]]`` has none, yet is
    a limit of ``L_ε U_ε``), so the fixed-support problem may have no
    minimiser (Le et al., arXiv:2112.00386).

    Examples
    --------
    >>> from skbutterfly.datasets import lu_supports
    >>> S_W, S_H = lu_supports(2)
    >>> S_W.astype(int), S_H.astype(int)
    (array([[1, 0],
           [1, 1]]), array([[1, 1],
           [0, 1]]))
    """
    n = check_positive_int(n, "n")
    return lower_triangular_support((n, n)), upper_triangular_support((n, n))


def spurious_valley_instance(n: int = 2):
    """LU instance with a spurious valley (Le et al., arXiv:2112.00386).

    The target is :math:`A = [[1, 1], [1, 0]]` padded with zeros to
    ``n x n``, with LU supports (:func:`lu_supports`). The global minimum is
    0, but :math:`L = \\|A - W H\\|_F^2 \\ge 2` wherever
    :math:`W_{00} H_{00} = 0` and :math:`L > 1` wherever
    :math:`W_{00} H_{00} < 0`: the part of :math:`\\{L < 2\\}` with
    :math:`W_{00} H_{00} < 0` is a valley with no minimiser, from which
    descent methods never reach :math:`L < 1`.

    Parameters
    ----------
    n : int, default=2
        Size, at least 2.

    Returns
    -------
    A : ndarray of shape (n, n)
    S_W : ndarray of shape (n, n), dtype bool
        Lower triangular.
    S_H : ndarray of shape (n, n), dtype bool
        Upper triangular.

    Examples
    --------
    >>> from skbutterfly.datasets import spurious_valley_instance
    >>> A, S_W, S_H = spurious_valley_instance(3)
    >>> A
    array([[1., 1., 0.],
           [1., 0., 0.],
           [0., 0., 0.]])
    """
    n = check_positive_int(n, "n", minimum=2)
    A = np.zeros((n, n))
    A[:2, :2] = [[1.0, 1.0], [1.0, 0.0]]
    return (A, *lu_supports(n))
