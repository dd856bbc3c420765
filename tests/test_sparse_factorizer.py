"""SparseFactorizer: the estimator against the function and dense products."""

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV

from skbutterfly import (
    QuantizedButterfly,
    SparseFactorizer,
    SparseProduct,
    round_to_format,
    sparse_factorize,
)
from skbutterfly._quantize import quantize_sparse_factors
from skbutterfly.datasets import hadamard
from skbutterfly.model_selection import WholeMatrixSplit, all_scorers, cheapest_within


def test_estimator_equals_the_function_and_recovers_hadamard():
    A = hadamard(16)
    est = SparseFactorizer(n_factors=4, constraint="rowcol_and").fit(A)
    P, info = sparse_factorize(A, [("rowcol_and", 2)] * 4, tol=1e-6)
    np.testing.assert_array_equal(est.product_.toarray(), P.toarray())
    assert est.relative_error_ == info.relative_error <= 1e-10
    assert est.n_factors_ == 4 and est.n_iter_ == info.n_iter
    assert est.reconstruction_err_ == pytest.approx(
        np.linalg.norm(A - est.product_.toarray())
    )


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_transform_inverse_transform_and_score_match_dense_products():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 9))
    est = SparseFactorizer(n_factors=2, k=3, max_iter=30).fit(X)
    X_hat = est.product_.toarray()
    Z = rng.standard_normal((5, 9))
    np.testing.assert_allclose(est.transform(Z), Z @ X_hat.T, atol=1e-12)
    C = rng.standard_normal((4, 12))
    np.testing.assert_allclose(est.inverse_transform(C), C @ X_hat, atol=1e-12)
    expected = -np.linalg.norm(X - X_hat) / np.linalg.norm(X)
    assert est.score(X) == pytest.approx(expected)
    assert est.score(X) == pytest.approx(-est.relative_error_)
    with pytest.raises(ValueError, match="features"):
        est.inverse_transform(np.ones((2, 3)))
    with pytest.raises(ValueError, match="n_samples=3"):
        est.score(X[:3])


def test_default_k_and_explicit_constraints():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((16, 16))
    est = SparseFactorizer(n_factors=2, max_iter=5)
    assert est._constraints(X.shape) == [("rowcol", 4)] * 2
    assert (
        SparseFactorizer(n_factors=4, constraint="total")._constraints(X.shape)
        == [("total", 32)] * 4
    )
    est = SparseFactorizer(constraints=[("row", 2), ("col", 2)], max_iter=5)
    with pytest.warns(Warning):
        est.fit(X)
    F1, F2 = (F.toarray() != 0 for F in est.product_.factors)
    assert F1.sum(1).max() <= 2 and F2.sum(0).max() <= 2


def test_grid_search_over_depth_and_sparsity():
    A = hadamard(16)
    search = GridSearchCV(
        SparseFactorizer(constraint="rowcol_and"),
        {"n_factors": [2, 4], "k": [1, 2]},
        cv=WholeMatrixSplit(),
    ).fit(A)
    # k=1 cannot represent H_16; two per row and column over 4 factors can.
    assert search.best_params_["k"] == 2
    assert search.best_score_ > -1e-8


def test_verbose_prints(capsys):
    SparseFactorizer(n_factors=3, constraint="rowcol_and", verbose=1).fit(hadamard(8))
    assert "[SparseFactorizer] 3 factors" in capsys.readouterr().out


def test_scorers_and_the_cheapest_refit_rule_read_the_sparse_product():
    A = hadamard(16)
    search = GridSearchCV(
        SparseFactorizer(constraint="rowcol_and"),
        {"n_factors": [2, 4], "k": [2, 4]},
        cv=WholeMatrixSplit(),
        scoring=all_scorers(),
        refit=cheapest_within(1e-8),
    ).fit(A)
    # H_16 = (H_4 ⊗ I_4)(I_4 ⊗ H_4) = four factors of H_2 blocks: (J=2, k=4)
    # and (J=4, k=2) are both exact with 128 values, (J=4, k=4) stores more
    # and (J=2, k=2) cannot be exact.
    best = search.best_estimator_
    assert best.relative_error_ <= 1e-8
    assert best.product_.nnz == 128
    results = search.cv_results_
    i = search.best_index_
    assert -results["mean_test_storage_bits"][i] == best.product_.nnz * 64
    assert -results["mean_test_flops"][i] == best.product_.flops


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("heuristic", ["pairwise", "rtn"])
def test_quantized_sparse_factors_against_round_to_nearest(heuristic):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((16, 16))
    inner = SparseFactorizer(n_factors=2, k=4, max_iter=30)
    est = QuantizedButterfly(inner, precision=4, heuristic=heuristic).fit(X)
    fitted = est.estimator_.product_
    quantized = est.quantized_.product_
    # Supports kept, every value representable with 4 significand bits.
    for F, Q in zip(fitted.factors, quantized.factors):
        assert not (Q.toarray()[F.toarray() == 0]).any()
        np.testing.assert_array_equal(Q.data, round_to_format(Q.data, 4))
    rtn = SparseProduct([round_to_format(F.toarray(), 4) for F in fitted.factors])
    rtn_error = np.linalg.norm(X - rtn.toarray()) / np.linalg.norm(X)
    if heuristic == "rtn":
        assert est.relative_error_ == pytest.approx(rtn_error)
    else:
        assert est.relative_error_ <= rtn_error + 1e-12
    assert est.storage_bits_ < quantized.nnz * 64
    assert est.score(X) == pytest.approx(-est.relative_error_)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("fmt", [4, "float8_e4m3"])
def test_left_to_right_quantization_of_the_fitted_product(fmt):
    X = np.random.default_rng(4).standard_normal((16, 16))
    inner = SparseFactorizer(n_factors=3, k=3, max_iter=20)
    errors, products = {}, {}
    for heuristic in ("rtn", "pairwise", "left-to-right"):
        est = QuantizedButterfly(inner, precision=fmt, heuristic=heuristic).fit(X)
        errors[heuristic] = est.relative_error_
        products[heuristic] = est.quantized_.product_
    fitted = est.estimator_.product_
    # the estimator quantizes its product as the function does
    direct = quantize_sparse_factors(fitted.factors, fmt, "left-to-right")
    for F, G, Q in zip(fitted.factors, direct, products["left-to-right"].factors):
        np.testing.assert_array_equal(G.toarray(), Q.toarray())
        assert Q.shape == F.shape and not Q.toarray()[F.toarray() == 0].any()
        np.testing.assert_array_equal(round_to_format(Q.data, fmt), Q.data)
    quantized = products["left-to-right"].toarray()
    assert errors["left-to-right"] == pytest.approx(
        np.linalg.norm(X - quantized) / np.linalg.norm(X)
    )
    assert errors["left-to-right"] < errors["rtn"]
    with pytest.raises(ValueError, match="heuristic"):
        QuantizedButterfly(inner, heuristic="greedy").fit(X)
