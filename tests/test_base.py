"""The protocol shared by the estimators (skbutterfly._base)."""

import numpy as np
import pytest

from skbutterfly import ButterflyFactorizer, FixedSupportFactorizer, QuantizedButterfly
from skbutterfly._base import relative_error
from skbutterfly.datasets import add_noise, hadamard, random_butterfly
from skbutterfly.model_selection import neg_relative_error


def test_relative_error_convention():
    assert relative_error(3.0, 4.0) == 0.75
    assert relative_error(0.0, 0.0) == 0.0
    assert relative_error(1e-300, 0.0) == np.inf


@pytest.mark.parametrize("seed", [0, 1])
def test_butterfly_scores_agree_with_the_scorer_and_a_dense_reference(seed):
    A = random_butterfly(16, random_state=seed).toarray()
    A = add_noise(A, 0.1, random_state=3)
    est = ButterflyFactorizer().fit(A)
    # t = 53 rounds to float64: the quantized model is the same operator.
    quantized = QuantizedButterfly(precision=53, method="rtn").fit(A)
    dense = est.butterfly_.toarray()
    for X in (A, np.random.default_rng(seed).standard_normal(A.shape)):
        expected = -np.linalg.norm(X - dense) / np.linalg.norm(X)
        assert est.score(X) == pytest.approx(expected, rel=1e-12)
        assert quantized.score(X) == pytest.approx(expected, rel=1e-12)
        assert neg_relative_error(est, X) == pytest.approx(expected, rel=1e-12)
    zero = np.zeros_like(A)
    assert est.score(zero) == quantized.score(zero) == neg_relative_error(est, zero)
    assert est.score(zero) == -np.inf
    assert est.relative_error_ == pytest.approx(-est.score(A), rel=1e-12)


def test_fixed_support_scores_agree_for_the_quantized_copy():
    A = hadamard(8)
    est = FixedSupportFactorizer("butterfly", "butterfly").fit(A)
    quantized = QuantizedButterfly(
        FixedSupportFactorizer("butterfly", "butterfly"), precision=53, method="rtn"
    ).fit(A)
    X = np.random.default_rng(0).standard_normal((5, 8))
    codes = np.linalg.lstsq(est.components_.T, X.T, rcond=None)[0].T
    expected = -np.linalg.norm(X - codes @ est.components_) / np.linalg.norm(X)
    assert est.score(X) == pytest.approx(expected, rel=1e-10)
    assert quantized.score(X) == pytest.approx(expected, rel=1e-10)
    # Zero rows are reproduced exactly through their (zero) codes.
    assert est.score(np.zeros((3, 8))) == quantized.score(np.zeros((3, 8))) == 0.0


@pytest.mark.parametrize(
    "dtype, rel", [(np.float64, 1e-10), (np.complex128, 1e-10), (np.float32, 1e-4)]
)
@pytest.mark.parametrize("level", [0.3, 1e-4])
def test_fit_error_comes_from_the_factorization_and_matches_the_operator(
    dtype, rel, level
):
    # No padding: the error is computed from the root blocks (expanded for
    # the large error, from residual blocks for the small one).
    A = random_butterfly(64, rank=2, dtype=dtype, random_state=0).toarray()
    A = add_noise(A, level, random_state=1).astype(dtype)
    for tree in ("balanced", "left", "right", [3, 0, 4, 1, 2]):
        est = ButterflyFactorizer(rank=2, tree=tree).fit(A)
        dense = np.linalg.norm((A - est.butterfly_.toarray()).astype(np.complex128))
        assert est.reconstruction_err_ == pytest.approx(dense, rel=rel)


def test_fit_error_of_padded_and_exact_inputs():
    A = add_noise(random_butterfly(64, random_state=0).toarray(), 0.3)
    # Padding (60 is padded to 64): the error is taken against the cropped operator.
    est = ButterflyFactorizer().fit(A[:60, :60])
    dense = np.linalg.norm(A[:60, :60] - est.butterfly_.toarray())
    assert est.reconstruction_err_ == pytest.approx(dense, rel=1e-10)
    # An exact butterfly: the error is at rounding level, not cancelled to 0 or NaN.
    exact = ButterflyFactorizer().fit(hadamard(64))
    assert 0 <= exact.relative_error_ < 1e-14
