"""ButterflyFactorizer: the scikit-learn contract and the estimator's results."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from skbutterfly import ButterflyFactorizer, butterfly_factorize
from skbutterfly.datasets import add_noise, dft, hadamard, random_butterfly

# The scikit-learn estimator checks run in tests/test_common.py.


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128])
@pytest.mark.parametrize("shape", [(16, 16), (8, 32), (32, 8)])
def test_fit_recovers_an_exact_butterfly(shape, dtype):
    A = random_butterfly(shape, dtype=dtype, random_state=0).toarray()
    est = ButterflyFactorizer().fit(A)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert est.butterfly_.shape == shape
    assert est.butterfly_.dtype == A.dtype
    assert est.n_features_in_ == shape[1]
    assert est.relative_error_ <= tol
    assert est.reconstruction_err_ <= tol * np.linalg.norm(A)
    assert est.score(A) >= -tol


def test_fit_matches_the_functional_api():
    A = add_noise(random_butterfly(32, rank=2, random_state=1).toarray(), 0.1)
    params = {"rank": 2, "tree": "left", "permutation": "bit-reversal"}
    est = ButterflyFactorizer(**params).fit(A)
    B = butterfly_factorize(A, **params)
    np.testing.assert_array_equal(est.butterfly_.toarray(), B.toarray())
    dense_error = np.linalg.norm(A - B.toarray())
    assert np.isclose(est.reconstruction_err_, dense_error)
    assert np.isclose(est.relative_error_, dense_error / np.linalg.norm(A))
    assert np.isclose(est.score(A), -est.relative_error_)
    assert est.n_factors_ == 5


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_transform_and_inverse_transform_match_dense_products(dtype):
    rng = np.random.default_rng(0)
    A = add_noise(
        random_butterfly((16, 32), dtype=dtype, random_state=0).toarray(), 0.2
    )
    est = ButterflyFactorizer().fit(A)
    A_hat = est.butterfly_.toarray()
    Z = rng.standard_normal((5, 32))
    C = rng.standard_normal((5, 16)) + (
        1j * rng.standard_normal((5, 16)) if dtype == np.complex128 else 0
    )
    np.testing.assert_allclose(est.transform(Z), Z @ A_hat.T, atol=1e-12)
    np.testing.assert_allclose(est.inverse_transform(C), C @ A_hat, atol=1e-12)
    assert est.get_feature_names_out().tolist() == [
        f"butterflyfactorizer{i}" for i in range(16)
    ]


def test_dft_fit_with_bit_reversal():
    F = dft(64, norm="ortho")
    est = ButterflyFactorizer(permutation="bit-reversal").fit(F)
    assert est.relative_error_ <= 1e-12
    x = np.random.default_rng(0).standard_normal(64)
    np.testing.assert_allclose(est.transform(x[None])[0], np.fft.fft(x, norm="ortho"))


def test_any_shape_is_padded_and_cropped():
    A = np.random.default_rng(0).standard_normal((10, 7))
    est = ButterflyFactorizer().fit(A)
    assert est.butterfly_.shape == (10, 7)
    assert est.transform(A[:3, :]).shape == (3, 10)
    with pytest.raises(ValueError, match=r"n_samples=10, n_features=7"):
        ButterflyFactorizer(n_factors=3, padding="raise").fit(A)


def test_hadamard_noise_is_filtered():
    H = hadamard(64)
    A = add_noise(H, 0.3, random_state=0)
    est = ButterflyFactorizer().fit(A)
    # The fitted operator is closer to H than the noisy data is.
    assert np.linalg.norm(est.butterfly_.toarray() - H) < np.linalg.norm(A - H)


def test_parameters_are_validated_at_fit():
    A = hadamard(8)
    for params in [{"tree": "middle"}, {"rank": 0}, {"padding": "edge"}]:
        with pytest.raises(ValueError):
            ButterflyFactorizer(**params).fit(A)
    with pytest.raises(ValueError, match="n_factors must be in"):
        ButterflyFactorizer(n_factors=1025).fit(A)
    with pytest.raises(ValueError, match="not a permutation"):
        ButterflyFactorizer(permutation=np.zeros(8, dtype=int)).fit(A)


def test_bad_input_raises():
    est = ButterflyFactorizer()
    A = hadamard(8)
    A[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        est.fit(A)
    A = hadamard(8).astype(complex)
    A[0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or infinity"):
        est.fit(A)
    with pytest.raises(ValueError):
        est.fit(np.zeros((0, 8)))
    fitted = ButterflyFactorizer().fit(hadamard(8))
    with pytest.raises(ValueError, match="features"):
        fitted.transform(np.ones((2, 4)))
    with pytest.raises(ValueError, match="expects 8"):
        fitted.inverse_transform(np.ones((2, 4)))
    with pytest.raises(ValueError, match="fitted shape"):
        fitted.score(np.ones((4, 8)))


def test_complex_input_does_not_break_feature_count_checks():
    F = dft(16)
    est = ButterflyFactorizer(permutation="bit-reversal").fit(F)
    with pytest.raises(ValueError, match="expecting 16 features"):
        est.transform(np.ones((2, 8), dtype=complex))
    assert est.transform(np.ones((2, 16), dtype=complex)).dtype == np.complex128


def test_grid_search_over_depth_and_tree():
    A = add_noise(random_butterfly(32, n_factors=3, random_state=0).toarray(), 0.01)
    idx = np.arange(32)
    search = GridSearchCV(
        ButterflyFactorizer(),
        {"n_factors": [2, 3, 5], "tree": ["balanced", "left"]},
        cv=[(idx, idx)],
    )
    search.fit(A)
    assert search.best_params_["n_factors"] in (2, 3)
    assert search.best_score_ > -0.05
    assert (
        clone(search.best_estimator_).get_params()
        == search.best_estimator_.get_params()
    )
