"""ButterflyDictionaryLearning: recovery, sparse codes, the operator route, errors."""

import warnings

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from sklearn.decomposition import sparse_encode
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import orthogonal_mp_gram

from skbutterfly import (
    ButterflyDictionaryLearning,
    ButterflyMatrix,
    PoorFitWarning,
    architecture,
)
from skbutterfly._batch_omp import batch_omp
from skbutterfly._dictionary_learning import (
    TRANSFORM_ALGORITHMS,
    _uses_operator,
    initial_dictionary,
)
from skbutterfly.datasets import random_butterfly

# The scikit-learn estimator checks run in tests/test_common.py.

# Most fits here code noise or stop early: their PoorFitWarning is expected
# (test_poor_fits_warn checks it is emitted, and when it is not).
pytestmark = pytest.mark.filterwarnings("ignore::skbutterfly.PoorFitWarning")


def _codes(n_samples, n_atoms, n_nonzero, seed):
    """Codes with ``n_nonzero`` standard normal values at random atoms."""
    rng = np.random.default_rng(seed)
    C = np.zeros((n_samples, n_atoms))
    for row in C:
        row[rng.choice(n_atoms, n_nonzero, replace=False)] = rng.standard_normal(
            n_nonzero
        )
    return C


def _sparse_model(n_features, n_samples, n_nonzero, seed):
    """Unit-norm random butterfly atoms (rows) and samples with sparse codes."""
    D = random_butterfly(n_features, random_state=seed).toarray()
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    return D, _codes(n_samples, n_features, n_nonzero, seed) @ D


def _conditioned_butterfly(n_features, seed, smallest):
    """Random butterfly whose blocks have singular values in [smallest, 1].

    Each block is ``U diag(s) V^T`` with random orthogonal ``U, V`` and ``s``
    uniform in ``[smallest, 1]``; ``smallest=1`` gives an orthogonal
    butterfly. Unit-norm rows.
    """
    B = random_butterfly(n_features, random_state=seed)
    rng = np.random.default_rng(seed)
    factors = []
    for K in B.factors:
        K = np.array(K)
        a, b, c, d = K.shape
        for i, j in np.ndindex(a, d):
            U, _, Vt = np.linalg.svd(rng.standard_normal((b, c)), full_matrices=False)
            K[i, :, :, j] = (U * rng.uniform(smallest, 1, min(b, c))) @ Vt
        factors.append(K)
    D = ButterflyMatrix(factors).toarray()
    return D / np.linalg.norm(D, axis=1, keepdims=True)


def _recovery_rate(D_hat, D, threshold=0.99):
    """Share of true atoms matched one-to-one, up to sign, with |cos| > threshold."""
    similarity = np.abs(D_hat @ D.T) / np.outer(
        np.linalg.norm(D_hat, axis=1), np.linalg.norm(D, axis=1)
    )
    rows, cols = linear_sum_assignment(-similarity)
    return float(np.mean(similarity[rows, cols] > threshold))


def _coherence(D):
    G = np.abs(D @ D.T)
    np.fill_diagonal(G, 0)
    return G.max()


@pytest.mark.parametrize(
    "n_features, smallest, seed",
    [(16, 1, s) for s in range(3)]
    + [(32, 1, s) for s in range(3)]
    + [(16, 0.5, s) for s in range(3)],
)
def test_atoms_of_a_butterfly_dictionary_are_recovered(n_features, smallest, seed):
    """From the default start (principal directions), the order of atoms learned.

    The true atoms are the rows of a random classic butterfly with
    well-conditioned blocks (orthogonal for ``smallest=1``; coherence about
    0.5-0.7 for ``0.5``), in a random order unknown to the learner, and each
    sample combines 3 of them. A butterfly with Gaussian blocks is no test
    of identifiability: its atoms are nearly collinear (coherence above 0.99,
    condition numbers 1e3-1e6 at 16 atoms), and even an unconstrained
    dictionary learner cannot tell them apart.
    """
    D = _conditioned_butterfly(n_features, seed, smallest)
    D = D[np.random.default_rng(seed).permutation(n_features)]
    assert _coherence(D) < 0.8
    X = _codes(60 * n_features, n_features, 3, seed) @ D
    est = ButterflyDictionaryLearning(
        transform_n_nonzero_coefs=3,
        row_permutation="learn",
        max_iter=40,
        tol=0,
        random_state=0,
    ).fit(X)
    rate = _recovery_rate(est.components_, D)
    start = _recovery_rate(initial_dictionary(X, n_features, None), D)
    print(
        f"n={n_features}, seed {seed}: atom recovery rate {rate:.0%} "
        f"(start {start:.0%})"
    )
    assert start < 0.5
    assert rate >= 0.9
    assert est.butterfly_.n_factors == int(np.log2(n_features))
    assert est.butterfly_.row_perm is not None
    np.testing.assert_allclose(est.butterfly_.toarray(), est.components_, atol=1e-12)


def test_the_order_of_the_atoms_is_what_is_learned():
    """Without the learned ordering, the constrained learner stays far off."""
    D = _conditioned_butterfly(16, 0, 1)
    D = D[np.random.default_rng(0).permutation(16)]
    X = _codes(960, 16, 3, 0) @ D
    fixed = ButterflyDictionaryLearning(
        transform_n_nonzero_coefs=3, max_iter=20, tol=0, random_state=0
    )
    fixed.fit(X)
    rate = _recovery_rate(fixed.components_, D)
    print(f"identity order of the atoms: recovery rate {rate:.0%}")
    assert rate < 0.5


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


@pytest.mark.parametrize("scale", [2.0**-1000, 2.0**1000, 1e-300, 1e300])
def test_extreme_magnitudes_give_the_scaled_dictionary_and_codes(scale):
    """Squares of 1e300 overflow, of 1e-300 underflow: the scale must not matter.

    Powers of two are exact, so the fit is the same to the bit; other scales
    round each sample once.
    """
    _, X = _sparse_model(16, 200, 3, 6)
    params = {
        "transform_n_nonzero_coefs": 3,
        "max_iter": 3,
        "tol": 0,
        "random_state": 0,
    }
    reference = ButterflyDictionaryLearning(**params).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no overflow anywhere
        est = ButterflyDictionaryLearning(**params).fit(X * scale)
        codes = est.transform(X * scale)
    exact = np.log2(scale).is_integer()
    compare = np.testing.assert_array_equal if exact else np.testing.assert_allclose
    compare(est.components_, reference.components_)
    compare(est.error_, reference.error_)
    compare(codes / scale, reference.transform(X))
    assert np.all(np.isfinite(est.inverse_transform(codes)))
    # The lasso scales with its penalty.
    lasso = est.set_params(
        transform_algorithm="lasso_lars", transform_alpha=0.1 * scale
    )
    expected = reference.set_params(
        transform_algorithm="lasso_lars", transform_alpha=0.1
    ).transform(X)
    np.testing.assert_allclose(lasso.transform(X * scale) / scale, expected, atol=1e-9)


def test_poor_fits_warn():
    X = np.random.default_rng(7).standard_normal((200, 16))
    with pytest.warns(PoorFitWarning, match="transform_n_nonzero_coefs"):
        ButterflyDictionaryLearning(transform_n_nonzero_coefs=1, max_iter=2, tol=0).fit(
            X
        )
    X = _codes(400, 16, 3, 7) @ _conditioned_butterfly(16, 7, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PoorFitWarning)
        ButterflyDictionaryLearning(
            transform_n_nonzero_coefs=3, row_permutation="learn", max_iter=10, tol=0
        ).fit(X)


def test_fixed_orderings_are_those_of_the_operator():
    X = _codes(300, 16, 3, 8) @ _conditioned_butterfly(16, 8, 1)
    rows = np.random.default_rng(8).permutation(16)
    est = ButterflyDictionaryLearning(
        transform_n_nonzero_coefs=3,
        permutation="bit-reversal",
        row_permutation=rows,
        max_iter=2,
        tol=0,
    ).fit(X)
    B = est.butterfly_
    np.testing.assert_array_equal(B.row_perm, rows)
    np.testing.assert_array_equal(
        B.perm, [0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15]
    )
    np.testing.assert_allclose(B.toarray(), est.components_, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(est.components_, axis=1), 1)
    # A searched ordering is chosen once, then kept (the last epochs).
    est = ButterflyDictionaryLearning(
        transform_n_nonzero_coefs=3, row_permutation="auto", max_iter=2, tol=0
    ).fit(X)
    assert est.butterfly_.row_perm is None or len(est.butterfly_.row_perm) == 16


@pytest.mark.parametrize(
    "params, match",
    [
        ({"row_permutation": "sorted"}, "row_permutation"),
        ({"permutation": [0, 0, 1]}, "permutation"),
        ({"row_permutation": np.arange(8)}, "row_permutation"),
    ],
)
def test_bad_orderings_raise(params, match):
    X = np.random.default_rng(9).standard_normal((40, 16))
    with pytest.raises(ValueError, match=match):
        ButterflyDictionaryLearning(**params).fit(X)
    with pytest.raises(ValueError, match=match):
        ButterflyDictionaryLearning(**params).partial_fit(X)


def test_partial_fit_is_fit_by_mini_batches():
    """One epoch of ``fit`` is the same steps as ``partial_fit`` on its batches."""
    D = _conditioned_butterfly(16, 10, 0.5)
    X = _codes(300, 16, 3, 10) @ D
    params = {
        "transform_n_nonzero_coefs": 3,
        "batch_size": 64,
        "dict_init": initial_dictionary(X, 16, None),
        "random_state": 0,
    }
    fitted = ButterflyDictionaryLearning(max_iter=1, tol=0, shuffle=False, **params)
    fitted.fit(X)
    online = ButterflyDictionaryLearning(**params)
    for batch in range(0, 300, 64):
        online.partial_fit(X[batch : batch + 64])
    assert online.n_steps_ == fitted.n_steps_ == 5
    np.testing.assert_allclose(online.components_, fitted.components_, atol=1e-10)
    assert len(online.error_) == 5 and online.error_[-1] < online.error_[0]
    online.partial_fit(X[:64])  # continues
    assert online.n_steps_ == 6
    fitted.partial_fit(X[:64])  # after fit, too
    assert fitted.n_steps_ == 6
    with pytest.raises(ValueError, match="fixed orderings"):
        ButterflyDictionaryLearning(row_permutation="learn").partial_fit(X)
    with pytest.raises(ValueError, match="features"):
        online.partial_fit(X[:, :8])


def test_learned_orderings_need_a_square_dictionary():
    X = np.random.default_rng(11).standard_normal((40, 16))
    with pytest.raises(ValueError, match=r"row_permutation='learn'.*n_components=32"):
        ButterflyDictionaryLearning(32, row_permutation="learn").fit(X)
