import pickle
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import FitFailedWarning, NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import GridSearchCV

from skbutterfly import (
    ButterflyFactorizer,
    FixedSupportFactorizer,
    PoorFitWarning,
    QuantizedButterfly,
)
from skbutterfly.datasets import add_noise, random_butterfly
from skbutterfly.model_selection import (
    WholeMatrixSplit,
    all_scorers,
    cheapest_within,
    neg_flops,
    neg_relative_error,
    neg_storage_bits,
    snr_db,
)


class FittedButterfly(ButterflyFactorizer):
    """Test double: a 'fitted' ButterflyFactorizer holding a given operator."""

    def __init__(self, butterfly=None):
        self.butterfly = butterfly

    def fit(self, X=None, y=None):
        self.butterfly_ = self.butterfly
        return self


class FittedTwoFactor(FixedSupportFactorizer):
    """Test double: a 'fitted' FixedSupportFactorizer with given factors."""

    def __init__(self, W=None, H=None):
        self.W = W
        self.H = H

    def fit(self, X=None, y=None):
        self.W_, self.components_ = self.W, self.H
        self.supports_ = (self.W != 0, self.H != 0)
        return self


def _noisy_butterfly(n=16, level=1e-3, seed=0):
    A = random_butterfly(n, random_state=seed).toarray()
    return add_noise(A, level, random_state=seed + 1)


# -- scorers ---------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype, bits", [(np.float64, 64), (np.float32, 32), (np.complex128, 128)]
)
def test_scorers_on_a_butterfly_match_dense_computations(dtype, bits):
    B = random_butterfly(16, dtype=dtype, random_state=0)
    est = FittedButterfly(B).fit()
    X = _noisy_butterfly(16, 0.05).astype(dtype)
    X_hat = B.toarray()
    rel = np.linalg.norm(X - X_hat) / np.linalg.norm(X)
    assert neg_relative_error(est, X) == pytest.approx(-rel, rel=1e-6)
    assert snr_db(est, X) == pytest.approx(-20 * np.log10(rel), rel=1e-6)
    # 4 classic factors of 16 x 16: 4 * 2 * 16 = 128 stored values.
    assert neg_storage_bits(est) == -128 * bits
    assert neg_flops(est, X) == -2 * 128 == -B.flops


def test_scorers_on_two_factors_count_the_supports():
    rng = np.random.default_rng(0)
    W = np.tril(rng.standard_normal((6, 6)))
    H = np.triu(rng.standard_normal((6, 6)))
    est = FittedTwoFactor(W, H).fit()
    X = rng.standard_normal((6, 6))
    rel = np.linalg.norm(X - W @ H) / np.linalg.norm(X)
    assert neg_relative_error(est, X) == pytest.approx(-rel)
    assert neg_storage_bits(est) == -(21 + 21) * 64
    assert neg_flops(est) == -2 * 42


def test_storage_bits_prefers_the_estimators_own_count():
    B = random_butterfly(8, random_state=0)
    inner = FrozenEstimator(FittedButterfly(B).fit())
    est = QuantizedButterfly(inner, precision=4).fit(B.toarray())
    assert neg_storage_bits(est) == -float(est.storage_bits_)
    assert est.storage_bits_ < 48 * 64
    assert neg_flops(est) == -2 * 48  # quantization does not change the flops


def test_exact_fit_gives_zero_error_and_infinite_snr():
    B = random_butterfly(8, random_state=0)
    est = FittedButterfly(B).fit()
    A = B.toarray()
    assert neg_relative_error(est, A) == 0.0
    cap = -20 * np.log10(np.finfo(np.float64).eps)
    assert snr_db(est, A) == pytest.approx(cap) == pytest.approx(313.07, abs=0.01)
    eps32 = np.finfo(np.float32).eps
    assert snr_db(est, A.astype(np.float32)) == pytest.approx(-20 * np.log10(eps32))


def test_zero_matrix_never_gives_nan():
    est = FittedButterfly(random_butterfly(8, random_state=0)).fit()
    zero = np.zeros((8, 8))
    assert neg_relative_error(est, zero) == -np.inf
    assert snr_db(est, zero) == -np.inf
    est_zero = FittedTwoFactor(np.zeros((8, 2)), np.zeros((2, 8))).fit()
    assert neg_relative_error(est_zero, zero) == 0.0
    assert snr_db(est_zero, zero) == pytest.approx(313.07, abs=0.01)


def test_scorers_refuse_unfitted_unsupported_and_partial_input():
    with pytest.raises(NotFittedError):
        neg_relative_error(FittedButterfly(), np.ones((4, 4)))

    class Other(BaseEstimator):
        def fit(self, X, y=None):
            self.coef_ = 1.0
            return self

    with pytest.raises(TypeError, match="ButterflyFactorizer"):
        neg_storage_bits(Other().fit(None))
    est = FittedButterfly(random_butterfly(8, random_state=0)).fit()
    with pytest.raises(ValueError, match="WholeMatrixSplit"):
        neg_relative_error(est, np.ones((4, 8)))


def test_all_scorers_names_and_fresh_dicts():
    scorers = all_scorers()
    assert scorers == {
        "relative_error": neg_relative_error,
        "snr_db": snr_db,
        "storage_bits": neg_storage_bits,
        "flops": neg_flops,
    }
    scorers.clear()
    assert len(all_scorers()) == 4


# -- splitter --------------------------------------------------------------


@pytest.mark.parametrize("X", [np.ones((5, 3)), [[1.0, 2.0]] * 5])
def test_whole_matrix_split_yields_everything_once(X):
    cv = WholeMatrixSplit()
    splits = list(cv.split(X))
    assert len(splits) == cv.get_n_splits(X) == 1
    train, test = splits[0]
    np.testing.assert_array_equal(train, np.arange(5))
    np.testing.assert_array_equal(test, np.arange(5))
    assert repr(cv) == "WholeMatrixSplit()"


def test_whole_matrix_split_with_dataframes():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(np.ones((4, 2)), index=[10, 11, 12, 13])
    (train, test) = next(WholeMatrixSplit().split(frame))
    np.testing.assert_array_equal(train, np.arange(4))


# -- cheapest_within on hand-made tables -----------------------------------


def _table(errors, bits, flops=None):
    table = {
        "mean_test_relative_error": -np.asarray(errors, dtype=float),
        "mean_test_storage_bits": -np.asarray(bits, dtype=float),
    }
    if flops is not None:
        table["mean_test_flops"] = -np.asarray(flops, dtype=float)
    return table


def test_cheapest_within_picks_fewest_bits_below_tolerance():
    table = _table(
        errors=[1e-1, 2e-3, 5e-3, 1e-4, 5e-3],
        bits=[100, 300, 200, 900, 200],
        flops=[50, 10, 40, 40, 30],
    )
    assert cheapest_within(1e-2)(table) == 2  # 200 bits, first of the tie
    assert cheapest_within(4e-3)(table) == 1
    assert cheapest_within(1.0)(table) == 0
    assert cheapest_within(1e-2, cost="flops")(table) == 1
    # Equal cost: the smaller error wins over the earlier index.
    tie = _table(errors=[5e-3, 1e-3], bits=[200, 200])
    assert cheapest_within(1e-2)(tie) == 1


def test_cheapest_within_boundary_is_inclusive():
    table = _table(errors=[0.25, 0.5], bits=[2, 1])
    assert cheapest_within(0.5)(table) == 1
    assert cheapest_within(0.4999)(table) == 0


def test_cheapest_within_falls_back_to_most_accurate_and_says_so():
    table = _table(errors=[0.3, 0.2, 0.2, 0.9], bits=[1, 5, 4, 0])
    with pytest.warns(PoorFitWarning, match=r"tol=0.1.*relative error 0.2 "):
        assert cheapest_within(0.1)(table) == 1
    # A candidate within the tolerance: silent.
    with warnings.catch_warnings():
        warnings.simplefilter("error", PoorFitWarning)
        assert cheapest_within(0.3)(table) == 0


def test_cheapest_within_skips_failed_candidates():
    table = _table(errors=[np.nan, 0.2, 0.1], bits=[1, 5, np.nan])
    assert cheapest_within(0.5)(table) == 1
    with pytest.raises(ValueError, match="every candidate failed"):
        cheapest_within(0.5)(_table([np.nan], [1]))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0, 1, allow_nan=False),
            st.integers(0, 20),
        ),
        min_size=1,
        max_size=12,
    ),
    st.floats(0, 1),
)
def test_cheapest_within_matches_brute_force(rows, tol):
    errors = [e for e, _ in rows]
    bits = [b for _, b in rows]
    within = [i for i, e in enumerate(errors) if e <= tol]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        chosen = cheapest_within(tol)(_table(errors, bits))
    if within:
        expected = min(within, key=lambda i: (bits[i], errors[i], i))
    else:
        expected = min(range(len(rows)), key=lambda i: (errors[i], i))
    assert chosen == expected
    assert len(caught) == (0 if within else 1)


def test_cheapest_within_validation_and_repr():
    with pytest.raises(ValueError, match="tol"):
        cheapest_within(-1)
    with pytest.raises(ValueError, match="tol"):
        cheapest_within(float("nan"))
    with pytest.raises(TypeError, match="cost"):
        cheapest_within(0.1, cost=3)
    rule = cheapest_within(0.1, cost="flops")
    assert repr(rule) == (
        "cheapest_within(tol=0.1, cost='flops', error='relative_error')"
    )
    with pytest.raises(ValueError, match="scorers found: \\['relative_error', "):
        rule(_table([0.1], [1]))
    restored = pickle.loads(pickle.dumps(rule))
    assert restored(_table([0.1], [1], [2])) == 0


# -- grid-search recipes with the real estimators --------------------------


def _expected_choice(results, tol, cost):
    """Independent reading of a cv_results_ table: loop, no numpy tricks."""
    errors = [-s for s in results["mean_test_relative_error"]]
    costs = [-s for s in results[f"mean_test_{cost}"]]
    within = [i for i in range(len(errors)) if errors[i] <= tol]
    if not within:
        return min(range(len(errors)), key=lambda i: (errors[i], i))
    return min(within, key=lambda i: (costs[i], errors[i], i))


@pytest.mark.parametrize("cost", ["storage_bits", "flops"])
def test_grid_search_over_depth_and_precision(cost):
    A = _noisy_butterfly(16, 1e-3)
    grid = {"estimator__n_factors": [1, 2, 4], "precision": [3, 6, 10]}
    search = GridSearchCV(
        QuantizedButterfly(ButterflyFactorizer()),
        grid,
        cv=WholeMatrixSplit(),
        scoring=all_scorers(),
        refit=cheapest_within(1.0, cost=cost),  # replaced below
        error_score="raise",
    )
    search.fit(A)
    results = search.cv_results_
    assert search.n_splits_ == 1
    # Each row of the table against a model fitted on its own, measured densely.
    errors, bits = [], []
    for params, score_err, score_bits, score_flops in zip(
        results["params"],
        results["mean_test_relative_error"],
        results["mean_test_storage_bits"],
        results["mean_test_flops"],
    ):
        model = QuantizedButterfly(
            ButterflyFactorizer(n_factors=params["estimator__n_factors"]),
            precision=params["precision"],
        ).fit(A)
        X_hat = model.butterfly_.toarray()
        err = np.linalg.norm(A - X_hat) / np.linalg.norm(A)
        assert -score_err == pytest.approx(err, rel=1e-9, abs=1e-15)
        assert -score_bits == model.storage_bits_
        assert -score_flops == 2 * model.butterfly_.nnz
        errors.append(err)
        bits.append(model.storage_bits_)
    # More significand bits: never less storage for the same depth.
    for J in grid["estimator__n_factors"]:
        rows = [
            i for i, p in enumerate(results["params"]) if p["estimator__n_factors"] == J
        ]
        assert np.all(np.diff([bits[i] for i in rows]) > 0)
    # A tolerance that excludes the cheapest model but not every model.
    tol = float(np.median(errors))
    search.set_params(refit=cheapest_within(tol, cost=cost)).fit(A)
    expected = _expected_choice(search.cv_results_, tol, cost)
    assert search.best_index_ == expected
    assert errors[expected] <= tol
    assert search.best_params_ == results["params"][expected]
    best = search.best_estimator_
    assert best.estimator_.n_factors == search.best_params_["estimator__n_factors"]
    np.testing.assert_allclose(
        np.linalg.norm(A - best.butterfly_.toarray()) / np.linalg.norm(A),
        errors[expected],
        rtol=1e-9,
    )
    # No candidate reaches a zero tolerance: the most accurate one is refit.
    with pytest.warns(PoorFitWarning, match="no candidate reaches"):
        search.set_params(refit=cheapest_within(0.0, cost=cost)).fit(A)
    assert search.best_index_ == int(np.argmin(errors))


def test_grid_search_over_precision_alone_through_frozen_estimator():
    A = _noisy_butterfly(16, 1e-3)
    fitted = ButterflyFactorizer(n_factors=2).fit(A)
    factors_before = [K.copy() for K in fitted.butterfly_.factors]
    butterfly_before = fitted.butterfly_

    def refit_forbidden(*args, **kwargs):
        raise AssertionError("the frozen inner model was refit")

    fitted.fit = refit_forbidden  # any call through the search would fail
    precisions = [3, 4, 6, 8, 12]
    search = GridSearchCV(
        QuantizedButterfly(FrozenEstimator(fitted)),
        {"precision": precisions},
        cv=WholeMatrixSplit(),
        scoring=all_scorers(),
        refit=cheapest_within(5e-3),
        error_score="raise",
    ).fit(A)
    assert fitted.butterfly_ is butterfly_before
    for K, K0 in zip(fitted.butterfly_.factors, factors_before):
        np.testing.assert_array_equal(K, K0)
    assert search.best_estimator_.estimator_.estimator is fitted
    errors = -search.cv_results_["mean_test_relative_error"]
    # Every candidate quantizes the same factors: same nnz, errors that shrink
    # towards the unquantized error as t grows.
    assert np.all(np.diff(errors) < 0)
    assert errors[-1] >= fitted.relative_error_ * (1 - 1e-9)
    expected = _expected_choice(search.cv_results_, 5e-3, "storage_bits")
    assert search.best_index_ == expected
    assert search.best_params_ == {"precision": precisions[expected]}


def test_search_objects_clone_and_pickle():
    search = GridSearchCV(
        QuantizedButterfly(ButterflyFactorizer()),
        {"precision": [4, 8]},
        cv=WholeMatrixSplit(),
        scoring=all_scorers(),
        refit=cheapest_within(1e-2),
    )
    cloned = clone(search)
    assert repr(cloned.refit) == repr(search.refit)
    A = _noisy_butterfly(8, 1e-3)
    restored = pickle.loads(pickle.dumps(search.fit(A)))
    assert restored.best_index_ == search.best_index_


def test_grid_search_over_two_factor_models():
    """The W_ / components_ path: a quantized fixed-support factorization
    (tractable supports, so every fit is the same certified optimum)."""
    A = _noisy_butterfly(16, 1e-3)
    search = GridSearchCV(
        QuantizedButterfly(FixedSupportFactorizer("butterfly", "butterfly")),
        {"precision": [3, 6, 12]},
        cv=WholeMatrixSplit(),
        scoring=all_scorers(),
        refit=cheapest_within(1e-2),
        error_score="raise",
    ).fit(A)
    results = search.cv_results_
    for params, score_err, score_bits, score_flops in zip(
        results["params"],
        results["mean_test_relative_error"],
        results["mean_test_storage_bits"],
        results["mean_test_flops"],
    ):
        model = QuantizedButterfly(
            FixedSupportFactorizer("butterfly", "butterfly"),
            precision=params["precision"],
        ).fit(A)
        err = np.linalg.norm(A - model.W_ @ model.components_) / np.linalg.norm(A)
        assert -score_err == pytest.approx(err, rel=1e-9)
        assert -score_bits == model.storage_bits_
        # F_1's support (32 values) and the product of the other three (128).
        assert -score_flops == 2 * (32 + 128)
    assert search.best_index_ == _expected_choice(results, 1e-2, "storage_bits")


def test_search_score_with_cheapest_within_is_the_error_scorer():
    A = add_noise(random_butterfly(32, random_state=0).toarray(), 0.01, random_state=0)
    search = GridSearchCV(
        ButterflyFactorizer(),
        {"n_factors": [1, 2, 5]},
        cv=WholeMatrixSplit(),
        scoring=all_scorers(),
        refit=cheapest_within(0.05),
    ).fit(A)
    best = search.best_estimator_
    expected = -np.linalg.norm(A - best.butterfly_.toarray()) / np.linalg.norm(A)
    assert search.score(A) == pytest.approx(expected, rel=1e-12)
    # The rule stays a rule: pickled, cloned and compared by its parameters.
    rule = pickle.loads(pickle.dumps(search.refit))
    assert rule == cheapest_within(0.05) and rule != cheapest_within(0.1)
    assert clone(search).refit == search.refit
    # With another error scorer name, score reports that scorer.
    scoring = {"err": neg_relative_error, "bits": neg_storage_bits}
    search.set_params(scoring=scoring, refit=cheapest_within(0.05, "bits", "err"))
    assert search.fit(A).score(A) == pytest.approx(expected, rel=1e-12)


def test_grid_over_depths_past_log2_runs_without_failures():
    # J = 8 > log2(64): two extra diagonal factors, no failed fit.
    A = add_noise(random_butterfly(64, random_state=0).toarray(), 0.01, random_state=0)
    search = GridSearchCV(
        ButterflyFactorizer(),
        {"n_factors": [1, 2, 4, 8]},
        cv=WholeMatrixSplit(),
        scoring=all_scorers(),
        refit=cheapest_within(0.05),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", FitFailedWarning)
        search.fit(A)
    errors = -search.cv_results_["mean_test_relative_error"]
    assert np.all(np.isfinite(errors))
    assert errors[0] < 1e-12 and errors[3] < 0.05
