import numpy as np
import pytest
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import GridSearchCV
from sklearn.utils._param_validation import InvalidParameterError

from skbutterfly import (
    FixedSupportFactorizer,
    FloatFormat,
    QuantizedButterfly,
    quantize_butterfly,
    quantize_factors,
    round_to_format,
    storage_bits,
)
from skbutterfly._butterfly_factorizer import ButterflyFactorizer
from skbutterfly.datasets import hadamard, random_butterfly


def _matrix(n=16, seed=0):
    return random_butterfly(n, random_state=seed).toarray()


@pytest.mark.parametrize("precision", [5, "float16", FloatFormat(6, -8, 8)])
def test_two_factor_inner_is_quantized_optimally(precision):
    X = _matrix()
    est = QuantizedButterfly(
        FixedSupportFactorizer("butterfly", "butterfly"), precision=precision
    ).fit(X)
    inner = est.estimator_
    W, H = quantize_factors(inner.W_, inner.components_, precision)
    np.testing.assert_array_equal(est.W_, W)
    np.testing.assert_array_equal(est.components_, H)
    for V in (est.W_, est.components_):
        np.testing.assert_array_equal(round_to_format(V, precision), V)
    X_hat = est.W_ @ est.components_
    norm = np.linalg.norm(X)
    assert est.relative_error_ == pytest.approx(np.linalg.norm(X - X_hat) / norm)
    assert est.unquantized_error_ == pytest.approx(inner.relative_error_, abs=1e-14)
    assert est.storage_bits_ == storage_bits((est.W_, est.components_), precision)
    rtn = clone(est).set_params(method="rtn").fit(X)
    assert est.relative_error_ < rtn.relative_error_
    np.testing.assert_array_equal(rtn.W_, round_to_format(inner.W_, precision))


def test_two_factor_transform_inverse_transform_score():
    X = _matrix(seed=1)
    est = QuantizedButterfly(FixedSupportFactorizer("butterfly", "butterfly"), 4)
    est.fit(X)
    np.testing.assert_allclose(
        est.inverse_transform(est.W_), est.W_ @ est.components_, rtol=1e-12
    )
    codes = est.transform(X)
    expected = np.linalg.lstsq(est.components_.T, X.T, rcond=None)[0].T
    np.testing.assert_allclose(codes, expected, rtol=1e-10, atol=1e-12)
    error = np.linalg.norm(X - codes @ est.components_) / np.linalg.norm(X)
    assert est.score(X) == pytest.approx(-error)
    assert est.get_feature_names_out()[0] == "quantizedbutterfly0"


def test_frozen_estimator_is_used_as_it_is():
    X = _matrix(seed=2)
    inner = FixedSupportFactorizer("butterfly", "butterfly").fit(X)
    est = QuantizedButterfly(FrozenEstimator(inner), precision=4).fit(X)
    assert est.estimator_.estimator is inner
    W, H = quantize_factors(inner.W_, inner.components_, 4)
    np.testing.assert_array_equal(est.W_, W)
    np.testing.assert_array_equal(est.components_, H)


def test_grid_search_over_precision():
    X = _matrix(seed=3)
    idx = np.arange(X.shape[0])
    grid = GridSearchCV(
        QuantizedButterfly(ButterflyFactorizer()),
        {"precision": [3, 6, 9], "estimator__n_factors": [4]},
        cv=[(idx, idx)],
    ).fit(X)
    assert grid.best_params_ == {"estimator__n_factors": 4, "precision": 9}
    scores = grid.cv_results_["mean_test_score"]
    assert scores[0] < scores[1] < scores[2] < 0


def test_butterfly_inner_is_quantized_by_the_heuristic():
    X = _matrix(32, seed=4)
    for heuristic in ("rtn", "pairwise", "left-to-right"):
        est = QuantizedButterfly(
            ButterflyFactorizer(), precision=5, heuristic=heuristic
        ).fit(X)
        expected = quantize_butterfly(est.estimator_.butterfly_, 5, heuristic)
        np.testing.assert_array_equal(est.butterfly_.toarray(), expected.toarray())
        X_hat = est.butterfly_.toarray()
        norm = np.linalg.norm(X)
        assert est.relative_error_ == pytest.approx(np.linalg.norm(X - X_hat) / norm)
        assert est.score(X) == pytest.approx(-est.relative_error_)
        assert est.unquantized_error_ < 1e-12
        assert est.storage_bits_ == storage_bits(est.butterfly_, 5)
        Z = np.random.default_rng(0).standard_normal((3, 32))
        np.testing.assert_allclose(est.transform(Z), Z @ X_hat.T, atol=1e-12)
        np.testing.assert_allclose(est.inverse_transform(Z), Z @ X_hat, atol=1e-12)


def test_default_estimator_is_a_butterfly_factorizer():
    ButterflyFactorizer()
    est = QuantizedButterfly(precision="bfloat16").fit(_matrix(16, seed=5))
    assert type(est.estimator_).__name__ == "ButterflyFactorizer"
    assert est.format_ == FloatFormat.from_name("bfloat16")
    assert est.butterfly_.dtype == np.float64


def test_complex_input():
    X = hadamard(8) * (1 + 1j)
    inner = FixedSupportFactorizer("butterfly", "butterfly")
    with pytest.raises(NotImplementedError, match="complex"):
        QuantizedButterfly(inner, precision=4).fit(X)
    est = QuantizedButterfly(inner, precision=4, method="rtn").fit(X)
    np.testing.assert_array_equal(est.W_, round_to_format(est.estimator_.W_, 4))
    assert np.iscomplexobj(est.W_)


def test_bad_parameters():
    X = _matrix()
    inner = FixedSupportFactorizer("butterfly", "butterfly")
    for params in (
        {"precision": 0},
        {"precision": "float7"},
        {"precision": 2.5},
        {"method": "grid"},
        {"heuristic": "random"},
        {"estimator": "svd"},
    ):
        est = QuantizedButterfly(inner).set_params(**params)
        with pytest.raises(InvalidParameterError):
            est.fit(X)
    with pytest.raises(ValueError, match="t must be <= 20"):
        QuantizedButterfly(inner, precision=24).fit(X)


def test_inner_estimator_without_factors():
    with pytest.raises(TypeError, match="must expose butterfly_"):
        QuantizedButterfly(PCA(2)).fit(_matrix())
