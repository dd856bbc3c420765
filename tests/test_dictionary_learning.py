"""ButterflyDictionaryLearning: recovery, sparse codes, the operator route, errors."""

import warnings

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from sklearn.decomposition import sparse_encode
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import orthogonal_mp_gram

from skbutterfly import ButterflyDictionaryLearning, architecture
from skbutterfly._batch_omp import batch_omp
from skbutterfly._dictionary_learning import (
    TRANSFORM_ALGORITHMS,
    _uses_operator,
)
from skbutterfly.datasets import random_butterfly

# The scikit-learn estimator checks run in tests/test_common.py.


def _sparse_model(n_features, n_samples, n_nonzero, seed):
    """Unit-norm random butterfly atoms (rows) and samples with sparse codes."""
    D = random_butterfly(n_features, random_state=seed).toarray()
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    C = np.zeros((n_samples, n_features))
    for row in C:
        row[rng.choice(n_features, n_nonzero, replace=False)] = rng.standard_normal(
            n_nonzero
        )
    return D, C @ D


def _recovery_rate(D_hat, D, threshold=0.99):
    """Share of true atoms matched one-to-one, up to sign, with |cos| > threshold."""
    similarity = np.abs(D_hat @ D.T) / np.outer(
        np.linalg.norm(D_hat, axis=1), np.linalg.norm(D, axis=1)
    )
    rows, cols = linear_sum_assignment(-similarity)
    return float(np.mean(similarity[rows, cols] > threshold))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_atoms_of_a_butterfly_dictionary_are_recovered(seed):
    """Local recovery: from a perturbed truth that itself matches no atom."""
    D, X = _sparse_model(16, 1000, 3, seed)
    rng = np.random.default_rng(100 + seed)
    init = D + 0.5 * rng.standard_normal(D.shape) / 4
    assert _recovery_rate(init, D) == 0
    est = ButterflyDictionaryLearning(
        transform_n_nonzero_coefs=3,
        max_iter=20,
        tol=1e-4,
        dict_init=init,
        random_state=0,
    ).fit(X)
    rate = _recovery_rate(est.components_, D)
    print(f"seed {seed}: atom recovery rate {rate:.0%}")
    assert rate >= 0.9
    assert est.butterfly_.n_factors == 4
    assert est.error_[-1] < est.error_[0]


def test_dictionary_is_a_butterfly_of_unit_atoms():
    D, X = _sparse_model(16, 300, 3, 0)
    est = ButterflyDictionaryLearning(n_factors=2, rank=2, max_iter=3, tol=0).fit(X)
    B = est.butterfly_
    np.testing.assert_allclose(B.toarray(), est.components_, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(est.components_, axis=1), 1)
    assert B.n_factors == 2
    assert B.nnz == architecture((16, 16), n_factors=2, rank=2).nnz
    assert est.n_iter_ == len(est.error_) == 3
    assert est.n_steps_ == 3 * 2  # two mini-batches of at most 256 per epoch


@pytest.mark.parametrize("algorithm", ["omp", "lars"])
@pytest.mark.parametrize("n_nonzero", [1, 4])
def test_codes_respect_the_sparsity(algorithm, n_nonzero):
    _, X = _sparse_model(16, 200, 3, 1)
    est = ButterflyDictionaryLearning(
        transform_algorithm=algorithm,
        transform_n_nonzero_coefs=n_nonzero,
        max_iter=2,
        tol=0,
        random_state=0,
    ).fit(X)
    counts = np.count_nonzero(est.transform(X), axis=1)
    assert counts.max() == n_nonzero


@pytest.fixture(scope="module", params=[16, 256], ids=lambda n: f"{n}_features")
def fitted(request):
    """A dictionary fitted once; 256 features use the operator for correlations."""
    X = np.random.default_rng(0).standard_normal((300, request.param))
    est = ButterflyDictionaryLearning(max_iter=1, tol=0, random_state=0).fit(X)
    assert _uses_operator(est.butterfly_) == (request.param == 256)
    return est


@pytest.mark.parametrize("algorithm", TRANSFORM_ALGORITHMS)
def test_transform_equals_sparse_encode_with_the_atoms(fitted, algorithm):
    est = fitted.set_params(
        transform_algorithm=algorithm, transform_n_nonzero_coefs=5, transform_alpha=0.5
    )
    X_new = np.random.default_rng(1).standard_normal((20, est.n_features_in_))
    expected = sparse_encode(
        X_new, est.components_, algorithm=algorithm, n_nonzero_coefs=5, alpha=0.5
    )
    np.testing.assert_allclose(est.transform(X_new), expected, atol=1e-8)


def test_inverse_transform_synthesises():
    _, X = _sparse_model(16, 100, 3, 2)
    est = ButterflyDictionaryLearning(max_iter=1, tol=0, random_state=0).fit(X)
    codes = est.transform(X)
    np.testing.assert_allclose(
        est.inverse_transform(codes), codes @ est.components_, atol=1e-12
    )
    with pytest.raises(ValueError, match="n_components=16"):
        est.inverse_transform(codes[:, :5])


@pytest.mark.parametrize("n_components", [8, 32])
def test_other_numbers_of_atoms_give_rectangular_butterflies(n_components):
    X = np.random.default_rng(3).standard_normal((100, 16))
    est = ButterflyDictionaryLearning(
        n_components, transform_n_nonzero_coefs=2, max_iter=2, tol=0, random_state=0
    ).fit(X)
    assert est.components_.shape == est.butterfly_.shape == (n_components, 16)
    np.testing.assert_allclose(np.linalg.norm(est.components_, axis=1), 1)
    assert est.transform(X).shape == (100, n_components)


def test_float32_is_kept():
    X = np.random.default_rng(4).standard_normal((64, 16)).astype(np.float32)
    est = ButterflyDictionaryLearning(max_iter=1, tol=0, random_state=0).fit(X)
    assert est.components_.dtype == est.butterfly_.dtype == np.float32
    assert est.transform(X).dtype == np.float32


def test_convergence_warning_and_verbose(capsys):
    X = np.random.default_rng(5).standard_normal((64, 16))
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        ButterflyDictionaryLearning(max_iter=2, tol=1e-12, verbose=1).fit(X)
    out = capsys.readouterr().out
    assert "epoch 1/2" in out and "epoch 2/2" in out
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        ButterflyDictionaryLearning(max_iter=2, tol=0).fit(X)
        est = ButterflyDictionaryLearning(max_iter=50, tol=0.5).fit(X)
    assert est.n_iter_ < 50


@pytest.mark.parametrize(
    "params, X, match",
    [
        ({"n_components": 0}, np.ones((4, 4)), "n_components"),
        ({"transform_algorithm": "lasso"}, np.ones((4, 4)), "transform_algorithm"),
        ({"n_factors": 0}, np.ones((4, 4)), "n_factors"),
        ({}, np.array([[1.0, np.nan], [0.0, 1.0]]), "X contains NaN"),
        ({}, np.ones(4), "2D array"),
        ({"dict_init": np.eye(3)}, np.ones((4, 4)), "dict_init"),
        ({"transform_n_nonzero_coefs": 5}, np.eye(4), "transform_n_nonzero_coefs"),
    ],
)
def test_bad_parameters_raise(params, X, match):
    with pytest.raises(ValueError, match=match):
        ButterflyDictionaryLearning(**params).fit(X)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("n_atoms, n_nonzero", [(8, 8), (32, 5), (300, 7)])
def test_batch_omp_matches_orthogonal_mp_gram(seed, n_atoms, n_nonzero):
    rng = np.random.default_rng(seed)
    D = rng.standard_normal((n_atoms, 24))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    X = rng.standard_normal((600, 24))  # more than one chunk of samples
    gram, cov = D @ D.T, D @ X.T
    expected = orthogonal_mp_gram(gram, cov, n_nonzero_coefs=n_nonzero).T
    np.testing.assert_allclose(batch_omp(gram, cov, n_nonzero), expected, atol=1e-10)


def test_batch_omp_stops_when_the_sample_is_coded():
    codes = np.zeros((10, 16))
    codes[:, [3, 7]] = [2.0, -1.0]
    X = codes @ np.eye(16)
    np.testing.assert_array_equal(batch_omp(np.eye(16), X.T, 5), codes)
    np.testing.assert_array_equal(batch_omp(np.eye(16), np.zeros((16, 3)), 2), 0)
