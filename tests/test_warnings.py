"""PoorFitWarning: emitted exactly when a fit is poor or costs more than dense."""

import warnings

import numpy as np
import pytest

from skbutterfly import (
    ButterflyFactorizer,
    FixedSupportFactorizer,
    FloatFormat,
    PoorFitWarning,
    QuantizedButterfly,
)
from skbutterfly.datasets import hadamard, random_butterfly


def _poor_fit_warnings(fit):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit()
    return [w for w in caught if issubclass(w.category, PoorFitWarning)]


def test_noise_is_a_poor_butterfly_and_the_warning_says_what_to_try():
    A = np.random.default_rng(0).standard_normal((64, 64))
    est = ButterflyFactorizer()
    (w,) = _poor_fit_warnings(lambda: est.fit(A))
    # The error it names is the independently computed one, above 0.5.
    error = np.linalg.norm(A - est.butterfly_.toarray()) / np.linalg.norm(A)
    assert error > 0.5
    assert f"{error:.3g}" in str(w.message)
    for remedy in ("rank", "permutation", "n_factors=1", "Choosing a model"):
        assert remedy in str(w.message)
    # It points at the caller's line, not at the library.
    assert w.filename == __file__


def test_exact_and_good_fits_are_silent():
    with warnings.catch_warnings():
        warnings.simplefilter("error", PoorFitWarning)
        ButterflyFactorizer().fit(hadamard(64))
        ButterflyFactorizer(n_factors=1).fit(np.ones((5, 7)))
        FixedSupportFactorizer("butterfly", "butterfly").fit(hadamard(16))
        A = random_butterfly(16, random_state=0).toarray()
        QuantizedButterfly(precision=8).fit(A)


def test_more_values_than_dense_is_reported_with_both_counts():
    A = np.random.default_rng(1).standard_normal((5, 5))
    est = ButterflyFactorizer(rank=4)
    caught = _poor_fit_warnings(lambda: est.fit(A))
    assert est.butterfly_.nnz > A.size
    assert any(
        f"stores {est.butterfly_.nnz} values, more than the 25" in str(w.message)
        for w in caught
    )


def test_fixed_supports_larger_than_the_matrix_warn():
    A = np.random.default_rng(2).standard_normal((4, 4))
    est = FixedSupportFactorizer("full", "full", n_components=6)
    (w,) = _poor_fit_warnings(lambda: est.fit(A))
    # 4 x 6 + 6 x 4 stored values for a 4 x 4 matrix (fitted exactly).
    assert "stores 48 values, more than the 16" in str(w.message)
    assert est.relative_error_ < 1e-12


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_quantization_that_ruins_a_fit_warns_once():
    A = random_butterfly(64, random_state=0).toarray()
    # One exponent, no subnormals: most values flush to zero.
    fmt = FloatFormat(1, emin=0, emax=0, subnormals=False)
    est = QuantizedButterfly(precision=fmt, heuristic="rtn")
    (w,) = _poor_fit_warnings(lambda: est.fit(A))
    assert est.relative_error_ > 0.5 >= est.unquantized_error_
    assert "higher precision" in str(w.message)
    # A poor inner fit is reported by the inner estimator only.
    noise = np.random.default_rng(3).standard_normal((64, 64))
    caught = _poor_fit_warnings(lambda: QuantizedButterfly(precision=1).fit(noise))
    assert len(caught) == 1 and "rank" in str(caught[0].message)


def test_warnings_from_a_grid_search_point_at_the_search():
    from sklearn.model_selection import GridSearchCV

    from skbutterfly.model_selection import WholeMatrixSplit

    A = np.random.default_rng(4).standard_normal((16, 16))
    search = GridSearchCV(ButterflyFactorizer(), {"rank": [1]}, cv=WholeMatrixSplit())
    caught = _poor_fit_warnings(lambda: search.fit(A))
    assert caught and all(w.filename == __file__ for w in caught)
