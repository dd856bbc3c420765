"""The FixedSupportFactorizer estimator (scikit-learn contract and behaviour)."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

from skbutterfly import (
    FixedSupportFactorizer,
    bit_reversal_permutation,
    block_diagonal_support,
    butterfly_support,
    fixed_support_factorize,
    lower_triangular_support,
    upper_triangular_support,
)
from skbutterfly.datasets import dft, hadamard, lu_supports

# The scikit-learn estimator checks (and the extra ones) run in
# tests/test_common.py.


def test_estimator_matches_function():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((8, 8))
    S_W, S_H = butterfly_support(8, 1), butterfly_support(8, 2)
    est = FixedSupportFactorizer(S_W, S_H)
    W = est.fit_transform(X)
    W_ref, H_ref, info = fixed_support_factorize(X, S_W, S_H)
    np.testing.assert_array_equal(W, W_ref)
    np.testing.assert_array_equal(est.W_, W_ref)
    np.testing.assert_array_equal(est.components_, H_ref)
    assert est.reconstruction_err_ == info.error
    assert est.relative_error_ == info.relative_error
    assert est.certified_optimal_ and est.method_ == "exact"
    assert est.analysis_.condition == "disjoint"
    assert est.n_iter_ == 1
    np.testing.assert_array_equal(est.supports_[0], S_W)


@pytest.mark.parametrize(
    ("name", "builder"),
    [
        ("full", lambda shape: np.ones(shape, bool)),
        ("lower", lower_triangular_support),
        ("upper", upper_triangular_support),
        ("block_diagonal", lambda shape: block_diagonal_support(shape, 2)),
    ],
)
def test_named_supports(name, builder):
    X = np.random.default_rng(0).standard_normal((6, 5))
    est = FixedSupportFactorizer(name, name, n_components=4, max_iter=3).fit(X)
    S_W, S_H = est.supports_
    np.testing.assert_array_equal(S_W, builder((6, 4)))
    np.testing.assert_array_equal(S_H, builder((4, 5)))
    assert np.all(est.W_[~S_W] == 0) and np.all(est.components_[~S_H] == 0)


def test_default_supports_are_full_with_min_rank():
    X = np.random.default_rng(0).standard_normal((7, 4))
    est = FixedSupportFactorizer().fit(X)
    assert est.components_.shape == (4, 4)
    assert est.reconstruction_err_ < 1e-12 * np.linalg.norm(X)


def test_callable_supports_receive_the_factor_shapes():
    seen = []

    def support(shape):
        seen.append(shape)
        return np.ones(shape, dtype=bool)

    X = np.random.default_rng(0).standard_normal((5, 6))
    FixedSupportFactorizer(support, support, n_components=3).fit(X)
    assert seen == [(5, 3), (3, 6)]


@pytest.mark.parametrize("n", [16, 32])
def test_butterfly_names_factor_hadamard_exactly(n):
    est = FixedSupportFactorizer("butterfly", "butterfly")
    W = est.fit_transform(hadamard(n))
    assert est.certified_optimal_
    assert est.relative_error_ < 1e-13
    np.testing.assert_array_equal(est.supports_[0], butterfly_support(n, 1))
    np.testing.assert_allclose(W @ est.components_, hadamard(n), atol=1e-12)


def test_complex_dft_with_bit_reversal_is_exact():
    n = 16
    A = dft(n)[:, bit_reversal_permutation(n)]
    est = FixedSupportFactorizer("butterfly", "butterfly").fit(A)
    assert est.W_.dtype == np.complex128
    assert est.relative_error_ < 1e-13
    codes = est.transform(A)
    np.testing.assert_allclose(codes @ est.components_, A, atol=1e-12)


def test_float32_is_kept():
    X = np.random.default_rng(0).standard_normal((8, 8)).astype(np.float32)
    est = FixedSupportFactorizer("butterfly", "butterfly").fit(X)
    assert est.W_.dtype == np.float32 and est.components_.dtype == np.float32
    assert est.transform(X).dtype == np.float32


def test_transform_solves_least_squares_for_fixed_H():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((10, 8))
    est = FixedSupportFactorizer("full", "block_diagonal", n_components=4).fit(X)
    X_new = rng.standard_normal((5, 8))
    codes = est.transform(X_new)
    H = est.components_
    reference = np.linalg.lstsq(H.T, X_new.T, rcond=None)[0].T
    np.testing.assert_allclose(codes, reference, atol=1e-12)
    # Normal equations: the residual is orthogonal to the rows of H.
    np.testing.assert_allclose((X_new - codes @ H) @ H.T, 0, atol=1e-10)
    expected = -np.linalg.norm(X_new - codes @ H) / np.linalg.norm(X_new)
    assert est.score(X_new) == pytest.approx(expected)


def test_inverse_transform_and_score_on_training_data():
    X = np.random.default_rng(0).standard_normal((6, 6))
    est = FixedSupportFactorizer("full", "full", n_components=2).fit(X)
    np.testing.assert_allclose(est.inverse_transform(est.W_), est.W_ @ est.components_)
    # With full supports the codes of the training rows are W itself.
    assert est.score(X) == pytest.approx(-est.relative_error_)
    with pytest.raises(ValueError, match="r=2 columns"):
        est.inverse_transform(np.ones((3, 3)))


def test_lu_is_solved_by_als_and_not_certified():
    X = np.array([[0.0, 1.0], [1.0, 0.0]])
    # No LU exists (the infimum 0 is not attained): ALS runs out of max_iter.
    with pytest.warns(ConvergenceWarning, match="max_iter=200"):
        est = FixedSupportFactorizer("lower", "upper", random_state=0).fit(X)
    assert est.method_ == "als" and not est.certified_optimal_
    assert np.isfinite(est.W_).all() and est.reconstruction_err_ > 0
    with pytest.raises(ValueError, match="not tractable"):
        FixedSupportFactorizer("lower", "upper", method="exact").fit(X)


def test_array_supports_and_inconsistent_components():
    S_W, S_H = lu_supports(4)
    X = np.random.default_rng(0).standard_normal((4, 4))
    est = FixedSupportFactorizer(S_W, S_H, max_iter=5, random_state=0).fit(X)
    assert est.components_.shape == (4, 4)
    with pytest.raises(ValueError, match="inconsistent"):
        FixedSupportFactorizer(S_W, S_H, n_components=3).fit(X)
    with pytest.raises(ValueError, match=r"support_W must have shape \(5, 4\)"):
        FixedSupportFactorizer(S_W, "full").fit(np.ones((5, 4)))
    with pytest.raises(ValueError, match="support_H must have shape"):
        FixedSupportFactorizer("full", lambda shape: np.ones((2, 2))).fit(X)


def test_fit_does_not_change_parameters_and_is_reproducible():
    X = np.random.default_rng(0).standard_normal((5, 5))
    est = FixedSupportFactorizer("lower", "upper", random_state=3, max_iter=10)
    params = est.get_params()
    W1 = est.fit_transform(X)
    W2 = clone(est).fit_transform(X)
    np.testing.assert_array_equal(W1, W2)
    assert est.get_params() == params


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_transform_is_the_minimum_norm_least_squares_solution(dtype):
    from skbutterfly import QuantizedButterfly

    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 9)).astype(dtype)
    if np.dtype(dtype).kind == "c":
        X = X + 1j * rng.standard_normal((12, 9))
    # 3 components for 9 features: an overdetermined least-squares problem.
    est = FixedSupportFactorizer("full", "full", n_components=3).fit(X)
    X_new = rng.standard_normal((40, 9)).astype(dtype)
    reference = np.linalg.lstsq(est.components_.T, X_new.T, rcond=None)[0].T
    np.testing.assert_allclose(est.transform(X_new), reference, atol=1e-12)
    if np.dtype(dtype).kind == "c":
        return
    # The quantized copy codes with its own (quantized) components.
    q = QuantizedButterfly(FixedSupportFactorizer("full", "full", n_components=3))
    q.fit(X)
    reference = np.linalg.lstsq(q.components_.T, X_new.T, rcond=None)[0].T
    np.testing.assert_allclose(q.transform(X_new), reference, atol=1e-12)
