"""Generators of test matrices: Hadamard, DFT, random butterflies, noise.

References: the explicit Hadamard recursion, the DFT formula and numpy.fft,
architecture() for the random butterflies' supports.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import DTYPES, architectures

from skbutterfly import architecture
from skbutterfly.datasets import add_noise, dft, hadamard, random_butterfly


@pytest.mark.parametrize("n", [1, 2, 4, 16, 64])
def test_hadamard_recursion_and_orthogonality(n):
    H = hadamard(n)
    expected = np.ones((1, 1))
    while expected.shape[0] < n:
        expected = np.block([[expected, expected], [expected, -expected]])
    np.testing.assert_array_equal(H, expected)
    np.testing.assert_array_equal(H @ H.T, n * np.eye(n))
    assert hadamard(n, dtype=np.float32).dtype == np.float32


@pytest.mark.parametrize("n", [1, 2, 5, 8, 12])
def test_dft_formula_and_norm(n):
    j, k = np.indices((n, n))
    expected = np.exp(-2j * np.pi * j * k / n)
    np.testing.assert_allclose(dft(n), expected, atol=1e-12)
    x = np.random.default_rng(n).standard_normal(n)
    np.testing.assert_allclose(dft(n) @ x, np.fft.fft(x), atol=1e-12)
    F = dft(n, norm="ortho")
    np.testing.assert_allclose(F @ F.conj().T, np.eye(n), atol=1e-12)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: hadamard(12), ValueError, "power of two"),
        (lambda: hadamard(0), ValueError, "n must be"),
        (lambda: hadamard(4.0), TypeError, "integer"),
        (lambda: dft(4, norm="forward"), ValueError, "norm"),
        (lambda: dft(0), ValueError, "n must be"),
        (lambda: random_butterfly(8, dtype=np.int64), TypeError, "dtype"),
        (lambda: random_butterfly(8, permutation=[0, 1]), ValueError, "permutation"),
        (lambda: add_noise(np.ones((2, 2)), -1), ValueError, "level"),
        (lambda: add_noise(np.ones((2, 2)), np.nan), ValueError, "level"),
        (lambda: add_noise(np.array([["a"]]), 0.1), TypeError, "A must hold"),
    ],
)
def test_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()


@given(
    kwargs=architectures(),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**16),
)
def test_random_butterfly_lives_on_the_architecture(kwargs, dtype, seed):
    B = random_butterfly(**kwargs, dtype=dtype, random_state=seed)
    arch = architecture(**kwargs)
    assert B.shape == arch.shape and B.padded_shape == arch.padded_shape
    assert B.patterns == arch.patterns and B.dtype == dtype
    assert B.perm is None
    for K in B.factors:
        assert K.dtype == dtype and np.all(K != 0)
    again = random_butterfly(**kwargs, dtype=dtype, random_state=seed)
    for K, L in zip(B.factors, again.factors):
        np.testing.assert_array_equal(K, L)


def test_random_butterfly_values_are_standard_normal():
    B = random_butterfly(1024, dtype=np.complex128, random_state=0)
    values = np.concatenate([K.ravel() for K in B.factors])
    assert abs(values.mean()) < 0.02
    assert abs(np.mean(np.abs(values) ** 2) - 1) < 0.02
    assert abs(np.mean(values.real**2) - 0.5) < 0.02


def test_random_butterfly_permutation_and_rectangular_shape():
    perm = np.random.default_rng(0).permutation(12)
    B = random_butterfly((10, 12), n_factors=2, permutation=perm, random_state=0)
    np.testing.assert_array_equal(B.perm, perm)
    assert B.shape == (10, 12)
    plain = random_butterfly((10, 12), n_factors=2, random_state=0)
    # Same factors, input gathered by perm (DESIGN.md §1).
    x = np.arange(12.0)
    np.testing.assert_allclose(B @ x, plain @ x[perm], atol=1e-12)


@given(
    shape=st.tuples(st.integers(1, 8), st.integers(1, 8)),
    complex_=st.booleans(),
    level=st.floats(0, 2),
    seed=st.integers(0, 2**16),
)
def test_add_noise_has_the_requested_relative_level(shape, complex_, level, seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal(shape) + (
        1j * rng.standard_normal(shape) if complex_ else 0
    )
    A0 = A.copy()
    noisy = add_noise(A, level, random_state=seed)
    np.testing.assert_array_equal(A, A0)
    assert noisy.dtype == A.dtype and noisy.shape == A.shape
    ratio = np.linalg.norm(noisy - A) / np.linalg.norm(A)
    assert ratio == pytest.approx(level, rel=1e-9, abs=1e-12)
    if complex_ and level > 1e-6:
        assert np.abs((noisy - A).imag).max() > 0
    np.testing.assert_array_equal(noisy, add_noise(A, level, random_state=seed))


def test_add_noise_keeps_single_precision():
    A = np.ones((4, 4), dtype=np.float32)
    assert add_noise(A, 0.1, random_state=0).dtype == np.float32


def test_transforms_with_a_geometric_ordering():
    from scipy.special import eval_legendre

    from skbutterfly.datasets import (
        fourier_integral_operator,
        legendre_transform,
        nonuniform_dft,
    )

    A = legendre_transform(32)
    np.testing.assert_allclose(A.T @ A, np.eye(32), atol=1e-12)
    nodes, weights = np.polynomial.legendre.leggauss(32)
    expected = np.sqrt(weights[3] * (5 + 0.5)) * eval_legendre(5, nodes[3])
    assert np.isclose(A[3, 5], expected)
    F = nonuniform_dft(16, random_state=0)
    angles = -np.angle(F[:, 1]) / (2 * np.pi) % 1
    assert np.all(np.diff(angles) > 0)  # sorted nodes in [0, 1)
    np.testing.assert_allclose(F[:, 3], F[:, 1] ** 3)
    np.testing.assert_array_equal(F, nonuniform_dft(16, random_state=0))
    K = fourier_integral_operator(8)
    x, xi = 3 / 8, 2 - 4
    c = (2 + np.sin(2 * np.pi * x)) / 16
    assert np.isclose(K[3, 2], np.exp(2j * np.pi * (x * xi + c * abs(xi))))
