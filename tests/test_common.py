"""scikit-learn's estimator checks over every estimator of skbutterfly."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import (
    check_dataframe_column_names_consistency,
    check_get_feature_names_out_error,
    check_global_output_transform_pandas,
    check_inplace_ensure_writeable,
    check_param_validation,
    check_set_output_transform,
    check_set_output_transform_pandas,
    check_transformer_get_feature_names_out,
    check_transformer_get_feature_names_out_pandas,
    parametrize_with_checks,
)

from skbutterfly import (
    ButterflyDictionaryLearning,
    ButterflyFactorizer,
    FixedSupportFactorizer,
    QuantizedButterfly,
    SparseFactorizer,
)

ESTIMATORS = [
    ButterflyFactorizer(),
    FixedSupportFactorizer(),
    SparseFactorizer(),
    QuantizedButterfly(ButterflyFactorizer()),
    QuantizedButterfly(FixedSupportFactorizer()),
    ButterflyDictionaryLearning(max_iter=2, tol=0, random_state=0),
]

# By design, every estimator accepts complex matrices (DFT): sklearn's
# check_array rejects them with "Complex data not supported", which is what
# check_complex_data asks for.
_COMPLEX = {
    "check_complex_data": "complex matrices (DFT) are supported by design",
}
_COMPLEX_QUANTIZED = {
    "check_complex_data": (
        "complex matrices are accepted by design; the default optimal "
        "quantization refuses them with NotImplementedError (use "
        "heuristic='rtn'), not with check_array's message"
    ),
}


def _is_dictionary_learning(estimator):
    return isinstance(estimator, ButterflyDictionaryLearning)


def expected_failed_checks(estimator):
    """The checks each estimator fails by design, with the reason."""
    if isinstance(estimator, QuantizedButterfly):
        return dict(_COMPLEX_QUANTIZED)
    if _is_dictionary_learning(estimator):
        return {}  # real samples only, as MiniBatchDictionaryLearning
    return dict(_COMPLEX)


# Matrix factorizers (fit one matrix, complex accepted, scored by the error);
# the dictionary learner fits real samples and has no score.
FACTORIZERS = [e for e in ESTIMATORS if not _is_dictionary_learning(e)]


def _name(estimator):
    return type(estimator).__name__


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


# The checks scikit-learn runs only on its own estimators (ECOSYSTEM.md §1.7).
EXTRA_CHECKS = [
    check_param_validation,
    check_set_output_transform,
    check_set_output_transform_pandas,
    check_global_output_transform_pandas,
    check_transformer_get_feature_names_out,
    check_transformer_get_feature_names_out_pandas,
    check_get_feature_names_out_error,
    check_dataframe_column_names_consistency,
    check_inplace_ensure_writeable,
]


# The pandas output checks transform frames with and without column names on
# purpose; sklearn's own estimators warn there too.
@pytest.mark.filterwarnings("ignore:X (does not have valid|has) feature names")
@pytest.mark.parametrize("estimator", ESTIMATORS, ids=repr)
@pytest.mark.parametrize("check", EXTRA_CHECKS, ids=lambda c: c.__name__)
def test_extra_checks(estimator, check):
    if "pandas" in check.__name__:
        pytest.importorskip("pandas")
    check(_name(estimator), clone(estimator))


def _matrix(estimator, dtype=np.float64):
    rng = np.random.default_rng(0)
    return rng.standard_normal((8, 8)).astype(dtype)


def _approximation(estimator):
    if hasattr(estimator, "butterfly_"):
        return estimator.butterfly_.toarray()
    if hasattr(estimator, "product_"):
        return estimator.product_.toarray()
    return estimator.W_ @ estimator.components_


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=repr)
def test_feature_names_out_and_pandas_output(estimator):
    pd = pytest.importorskip("pandas")
    X = _matrix(estimator)
    frame = pd.DataFrame(X, columns=[f"pixel{j}" for j in range(X.shape[1])])
    est = clone(estimator).set_output(transform="pandas").fit(frame)
    out = est.transform(frame)
    assert isinstance(out, pd.DataFrame)
    names = est.get_feature_names_out()
    prefix = type(est).__name__.lower()
    assert list(out.columns) == list(names)
    assert list(names) == [f"{prefix}{i}" for i in range(len(names))]
    np.testing.assert_array_equal(est.feature_names_in_, frame.columns)
    # The pandas output holds the same numbers as the array output.
    plain = clone(estimator).fit(X)
    np.testing.assert_allclose(out.to_numpy(), plain.transform(X), rtol=1e-10)


@pytest.mark.parametrize("estimator", FACTORIZERS, ids=repr)
def test_pickle_round_trip_keeps_the_model(estimator):
    X = _matrix(estimator)
    est = clone(estimator).fit(X)
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(_approximation(restored), _approximation(est))
    np.testing.assert_array_equal(restored.transform(X), est.transform(X))
    assert restored.score(X) == est.score(X)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=repr)
def test_clone_is_unfitted_with_equal_params(estimator):
    X = _matrix(estimator)
    est = clone(estimator).fit(X)
    copy = clone(est)
    assert repr(copy.get_params(deep=True)) == repr(est.get_params(deep=True))
    assert [k for k in vars(copy) if k.endswith("_") and not k.startswith("_")] == []
    with pytest.raises(NotFittedError):
        copy.transform(X)
    inner = est.get_params(deep=False).get("estimator")
    if inner is not None:  # a meta-estimator clones its inner estimator too
        assert copy.get_params(deep=False)["estimator"] is not inner


def _max_significand_bits(values):
    mantissa, _ = np.frexp(np.abs(values[values != 0]))
    bits = 0
    while np.any(mantissa * 2.0**bits % 1):
        bits += 1
    return bits


@pytest.mark.parametrize("estimator", FACTORIZERS, ids=repr)
def test_complex_input_is_fitted(estimator):
    """What check_complex_data is declared to fail for: complex X works."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((8, 8)) + 1j * rng.standard_normal((8, 8))
    est = clone(estimator)
    quantized = isinstance(est, QuantizedButterfly)
    if quantized:
        with pytest.raises(NotImplementedError, match="complex"):
            clone(est).fit(X)
        est.set_params(heuristic="rtn", precision=5)
    est.fit(X)
    X_hat = _approximation(est)
    assert np.iscomplexobj(X_hat)
    error = np.linalg.norm(X - X_hat) / np.linalg.norm(X)
    assert error == pytest.approx(est.relative_error_, rel=1e-8, abs=1e-14)
    if quantized:
        stored = (
            np.concatenate([K.ravel() for K in est.butterfly_.factors])
            if hasattr(est, "butterfly_")
            else np.concatenate([est.W_.ravel(), est.components_.ravel()])
        )
        parts = np.concatenate([stored.real, stored.imag])
        assert _max_significand_bits(parts) <= 5
