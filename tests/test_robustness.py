"""Bad input at every public entry point: a clear error or a correct result.

Every case ends in a ``ValueError``/``TypeError`` whose message names the
parameter, or in a correct result (checked against the same call on a clean
float64 copy, or against a closed form); never in another exception, a hang,
NaN output or a modified input. Sizes are tiny so that nothing can hang.
"""

import os
import pickle
import re
import subprocess
import sys
import textwrap
import warnings
import zipfile

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import shapes

from skbutterfly import (
    ButterflyFactorizer,
    ButterflyMatrix,
    FixedSupportFactorizer,
    FloatFormat,
    Pattern,
    QuantizedButterfly,
    analyze_supports,
    architecture,
    bit_reversal_permutation,
    block_diagonal_support,
    butterfly_factorize,
    butterfly_support,
    chain_rank,
    fixed_support_factorize,
    full_support,
    fuse_patterns,
    load,
    lower_triangular_support,
    quantize_butterfly,
    quantize_factors,
    quantize_rank_one,
    round_to_format,
    standard_permutation,
    standard_permutations,
    storage_bits,
    upper_triangular_support,
)
from skbutterfly.datasets import add_noise, dft, hadamard, random_butterfly
from skbutterfly.model_selection import neg_relative_error, snr_db

# Hypothesis: deterministic, quick, no database (CI runs from a clean tree).
FAST = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def _raises_clear(func, names, exc=(ValueError, TypeError)):
    """``func()`` raises ``exc`` with a message naming one of ``names``."""
    with pytest.raises(exc) as info:
        func()
    message = str(info.value)
    pattern = "|".join(rf"(?<![A-Za-z_]){re.escape(n)}(?![A-Za-z_])" for n in names)
    assert re.search(pattern, message), f"message does not name {names}: {message!r}"
    return message


def _frozen(arr):
    arr = np.array(arr)
    arr.flags.writeable = False
    return arr


# ----------------------------------------------------------------------------
# Entry points that take a matrix
# ----------------------------------------------------------------------------

_S4 = (full_support((4, 2)), full_support((2, 4)))


def _fitted(est):
    """``est.fit`` as a call on a matrix; the result is the fitted estimator."""
    return lambda X: est.fit(X)


def _fitted_dense(est):
    if hasattr(est, "butterfly_"):
        return est.butterfly_.toarray()
    return est.W_ @ est.components_


# name -> (call on a matrix, parameter name in messages, dense result)
MATRIX_ENTRY_POINTS = {
    "ButterflyFactorizer.fit": (
        _fitted(ButterflyFactorizer()),
        "X",
        _fitted_dense,
    ),
    "FixedSupportFactorizer.fit": (
        _fitted(FixedSupportFactorizer(support_W="full", support_H="full")),
        "X",
        _fitted_dense,
    ),
    "QuantizedButterfly.fit": (
        _fitted(QuantizedButterfly(precision=6)),
        "X",
        _fitted_dense,
    ),
    "add_noise": (lambda A: add_noise(A, 0.1, random_state=0), "A", np.asarray),
    "butterfly_factorize": (
        lambda A: butterfly_factorize(A),
        "A",
        lambda B: B.toarray(),
    ),
    "fixed_support_factorize": (
        lambda A: fixed_support_factorize(A, *_S4),
        "A",
        lambda r: r[0] @ r[1],
    ),
}

# Object arrays of numbers are converted (the input policy); of other objects, refused.
_NOT_NUMBERS = np.full(2, object(), dtype=object)

BAD_MATRICES = {
    "nan": (np.array([[1.0, np.nan], [0.0, 1.0]]), ValueError),
    "inf": (np.array([[1.0, np.inf], [0.0, 1.0]]), ValueError),
    "-inf": (np.array([[1.0, 2.0], [-np.inf, 1.0]]), ValueError),
    "complex-nan": (np.array([[1.0, complex(0, np.nan)], [0, 1]]), ValueError),
    "empty-rows": (np.ones((0, 4)), ValueError),
    "empty-columns": (np.ones((4, 0)), ValueError),
    "1-D": (np.ones(4), ValueError),
    "3-D": (np.ones((2, 2, 2)), ValueError),
    "0-D": (np.float64(3.0), ValueError),
    "object": (np.full((4, 4), "a", dtype=object), TypeError),
    "string": (np.full((4, 4), "a"), TypeError),
    "bytes": (np.full((4, 4), b"a"), TypeError),
    "datetime": (np.zeros((4, 4), dtype="datetime64[s]"), TypeError),
    "None": (None, TypeError),
}


@pytest.mark.parametrize("bad", BAD_MATRICES)
@pytest.mark.parametrize("entry", MATRIX_ENTRY_POINTS)
def test_bad_matrix_is_refused_naming_it(entry, bad):
    call, name, _ = MATRIX_ENTRY_POINTS[entry]
    value, exc = BAD_MATRICES[bad]
    names = [name]
    if entry.endswith(".fit"):
        # scikit-learn's validation: ValueError for every kind, and messages
        # such as "Expected 2D array, got 1D array instead".
        if bad == "datetime":
            pytest.skip("scikit-learn casts datetime64 to float")
        exc, names = (ValueError, TypeError), [name, "array", "sample", "convert"]
    _raises_clear(lambda: call(value), names, exc)


@pytest.fixture(scope="module")
def fitted_estimators():
    H = hadamard(8)
    return {
        "ButterflyFactorizer": ButterflyFactorizer().fit(H),
        "FixedSupportFactorizer": FixedSupportFactorizer(
            support_W="full", support_H="full", n_components=4
        ).fit(H),
        "QuantizedButterfly": QuantizedButterfly(precision=6).fit(H),
    }


@pytest.mark.parametrize(
    "bad",
    ["nan", "inf", "1-D", "3-D", "string", "object", "None", "features", "rows"],
)
@pytest.mark.parametrize("method", ["transform", "inverse_transform", "score"])
@pytest.mark.parametrize(
    "name", ["ButterflyFactorizer", "FixedSupportFactorizer", "QuantizedButterfly"]
)
def test_fitted_estimator_refuses_bad_input(fitted_estimators, name, method, bad):
    est = fitted_estimators[name]
    n_in = est.n_features_in_
    if method == "inverse_transform":
        n_in = est.components_.shape[0] if hasattr(est, "components_") else 8
    X = {
        "nan": np.full((2, n_in), np.nan),
        "inf": np.full((2, n_in), np.inf),
        "1-D": np.ones(n_in),
        "3-D": np.ones((2, n_in, 1)),
        "string": np.full((2, n_in), "a"),
        "object": np.full((2, n_in), "a", dtype=object),
        "None": None,
        "features": np.ones((2, n_in + 1)),
        "rows": np.ones((3, n_in)),
    }[bad]
    if bad == "rows" and not (method == "score" and name != "FixedSupportFactorizer"):
        pytest.skip("any number of rows is valid here")
    before = None if X is None else X.copy()
    _raises_clear(
        lambda: getattr(est, method)(X),
        ["X", "array", "features", "n_features", "n_samples", "convert"],
    )
    if before is not None:
        np.testing.assert_array_equal(X, before)


@pytest.mark.parametrize("method", ["transform", "inverse_transform"])
@pytest.mark.parametrize(
    "name", ["ButterflyFactorizer", "FixedSupportFactorizer", "QuantizedButterfly"]
)
def test_fitted_estimator_castable_input(fitted_estimators, name, method):
    est = fitted_estimators[name]
    n_in = est.n_features_in_
    if method == "inverse_transform":
        n_in = est.components_.shape[0] if hasattr(est, "components_") else 8
    base = np.arange(3 * n_in).reshape(3, n_in) % 3 - 1
    expected = getattr(est, method)(base.astype(np.float64))
    for X in (
        base,
        base != 0,
        _frozen(np.asfortranarray(base)),
        np.repeat(base, 2, axis=1)[:, ::2],
    ):
        before = X.copy()
        got = getattr(est, method)(X)
        np.testing.assert_array_equal(X, before)
        assert np.isfinite(got).all()
        if X.dtype != bool:
            np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


ESTIMATOR_PARAMETERS = {
    "n_factors": (ButterflyFactorizer, [0, -1, 10**9, 2.5, "2", True]),
    "rank": (ButterflyFactorizer, [0, -1, 10**9, 2.5, "2"]),
    "tree": (ButterflyFactorizer, ["x", None]),
    "permutation": (ButterflyFactorizer, [[0] * 8, list(range(7)), "x", 3.5]),
    "padding": (ButterflyFactorizer, ["x", None]),
    "n_jobs": (ButterflyFactorizer, [0, "x", 2.5]),
    "precision": (QuantizedButterfly, [0, -1, 54, 10**9, 2.5, "x", None, True]),
    "heuristic": (QuantizedButterfly, ["x", None]),
    "estimator": (QuantizedButterfly, ["x", 3]),
    "support_W": (
        FixedSupportFactorizer,
        ["x", 5, np.ones((3, 2)), np.full((8, 8), 2)],
    ),
    "n_components": (FixedSupportFactorizer, [0, -1, 2.5]),
    "n_restarts": (FixedSupportFactorizer, [0, -1, 2.5]),
    "max_iter": (FixedSupportFactorizer, [0, -1, 2.5]),
    "tol": (FixedSupportFactorizer, [-1.0, np.nan, "x"]),
}


@pytest.mark.parametrize(
    "param, index",
    [
        (p, i)
        for p, (_, values) in ESTIMATOR_PARAMETERS.items()
        for i in range(len(values))
    ],
)
def test_bad_estimator_parameter_is_refused_naming_it(param, index):
    cls, values = ESTIMATOR_PARAMETERS[param]
    est = cls(**{param: values[index]})
    names = [param, "format"] if param == "precision" else [param]
    _raises_clear(lambda: est.fit(hadamard(8)), names)


@pytest.mark.parametrize("tree", [(0, 0), [5], 3])
def test_bad_tree_message_names_tree(tree):
    _raises_clear(lambda: butterfly_factorize(hadamard(8), tree=tree), ["tree"])


def _errors_in_small_address_space(calls):
    """Run each call in one child limited to 4 GiB; return what each raised.

    Huge sizes must be refused before anything is allocated: with the limit,
    an attempt to allocate fails at once instead of exhausting the machine.
    """
    lines = "\n".join(
        f"""
        try:
            {call}
        except BaseException as exc:
            print(type(exc).__name__ + ": " + str(exc).replace(chr(10), " "))
        else:
            print("no error")"""
        for call in calls
    )
    script = textwrap.dedent(
        """
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
        import numpy as np
        from skbutterfly.datasets import hadamard
        from skbutterfly._fixed_support_factorizer import FixedSupportFactorizer
        from skbutterfly._fsmf import fixed_support_factorize
        """
        + lines
    )
    # One BLAS thread: OpenBLAS reserves address space per thread.
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()


@pytest.mark.skipif(sys.platform == "win32", reason="needs resource.RLIMIT_AS")
def test_huge_counts_are_refused_before_allocating():
    calls = {
        "n_components": "FixedSupportFactorizer(n_components=10**9).fit(hadamard(8))",
        "n_restarts": "fixed_support_factorize(np.eye(4), np.ones((4, 2)), "
        "np.ones((2, 4)), method='als', n_restarts=10**9, max_iter=1)",
    }
    messages = _errors_in_small_address_space(list(calls.values()))
    for name, message in zip(calls, messages):
        assert re.match(r"(ValueError|TypeError|InvalidParameterError): ", message)
        assert name in message


def _clean_copy(A):
    return np.array(A, dtype=np.float64, order="C")


# Inputs that must be accepted, never modified, and give the result of a clean
# float64 copy.
GOOD_VARIANTS = {
    "int": lambda A: A.astype(np.int64),
    "int8": lambda A: A.astype(np.int8),
    "bool": lambda A: A != 0,
    "read-only": _frozen,
    "fortran": np.asfortranarray,
    "strided-view": lambda A: np.repeat(np.repeat(A, 2, 0), 2, 1)[::2, ::2],
    "read-only-fortran": lambda A: _frozen(np.asfortranarray(A)),
    "list": lambda A: A.tolist(),
}


@pytest.mark.parametrize("variant", GOOD_VARIANTS)
@pytest.mark.parametrize("entry", MATRIX_ENTRY_POINTS)
def test_castable_matrix_gives_the_clean_result_unmodified(entry, variant):
    call, _, dense = MATRIX_ENTRY_POINTS[entry]
    base = hadamard(4)[:, [0, 2, 1, 3]] * np.array([1, 2, 0, 1])
    A = GOOD_VARIANTS[variant](base)
    before = np.array(A, copy=True)
    got = dense(call(A))
    np.testing.assert_array_equal(np.asarray(A), before)
    expected = dense(call(_clean_copy(A)))
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_integer_hadamard_is_factorized_exactly():
    H = hadamard(16).astype(np.int32)
    B = butterfly_factorize(H)
    assert B.dtype == np.float64
    np.testing.assert_allclose(B.toarray(), H, atol=1e-12)


@pytest.mark.parametrize(
    "dtype, exponent", [(np.float64, 700), (np.float32, 80)], ids=["f64", "f32"]
)
def test_butterfly_factorize_is_scale_invariant_for_huge_entries(dtype, exponent):
    H = hadamard(8).astype(dtype)
    scale = 2.0**exponent
    B = butterfly_factorize(H * dtype(scale))
    np.testing.assert_allclose(B.toarray() / scale, H, atol=1e-5)


def test_butterfly_factorize_of_zeros_and_tiny_values_is_finite():
    for A in (np.zeros((8, 8)), np.full((8, 8), 1e-300)):
        dense = butterfly_factorize(A).toarray()
        assert np.isfinite(dense).all()
        np.testing.assert_allclose(dense, A, atol=1e-300)


@given(
    shape=shapes(),
    depth=st.integers(-1, 6),
    rank=st.integers(-1, 30),
    complex_=st.booleans(),
)
@FAST
def test_butterfly_factorize_random_shapes(shape, depth, rank, complex_):
    m, n = shape
    rng = np.random.default_rng(m * 31 + n)
    A = rng.standard_normal((m, n))
    if complex_:
        A = A + 1j * rng.standard_normal((m, n))
    A.flags.writeable = False
    before = A.copy()
    n_factors = None if depth == 0 else depth
    try:
        B = butterfly_factorize(A, n_factors=n_factors, rank=rank)
    except (ValueError, TypeError) as exc:
        assert re.search(r"n_factors|rank", str(exc)), str(exc)
        return
    np.testing.assert_array_equal(A, before)
    dense = B.toarray()
    assert dense.shape == (m, n)
    assert dense.dtype == A.dtype
    assert np.isfinite(dense).all()
    # Never worse than the zero matrix by more than rounding.
    assert np.linalg.norm(A - dense) <= np.linalg.norm(A) * (1 + 1e-10)


def test_add_noise_of_huge_entries_is_finite_with_the_right_level():
    A = np.full((4, 4), 2.0**600)
    noisy = add_noise(A, 0.1, random_state=0)
    assert np.isfinite(noisy).all()
    level = np.linalg.norm((noisy - A) / 2.0**600) / np.linalg.norm(A / 2.0**600)
    assert level == pytest.approx(0.1, rel=1e-6)


# ----------------------------------------------------------------------------
# Extreme magnitudes: X * 2**k gives the errors of X, exactly reported
# ----------------------------------------------------------------------------

_BASE = np.random.default_rng(7).standard_normal((8, 8))


def _true_relative_error(X, X_hat, k):
    """Relative error of ``X_hat`` in float64, after exact rescaling by 2**-k."""
    X = np.ldexp(np.asarray(X, dtype=np.float64), -k)
    X_hat = np.ldexp(np.asarray(X_hat, dtype=np.float64), -k)
    return np.linalg.norm(X - X_hat) / np.linalg.norm(X)


def _reported(entry, X, rel=1e-9):
    """``(reported relative error, dense approximation)`` of one entry point."""
    if entry == "fixed_support_factorize":
        W, H, info = fixed_support_factorize(X, np.ones((8, 2)), np.ones((2, 8)))
        return info.relative_error, W @ H
    if entry == "fixed_support_factorize-als":
        W, H, info = fixed_support_factorize(
            X,
            lower_triangular_support((8, 3)),
            upper_triangular_support((3, 8)),
            method="als",
            n_restarts=1,
            max_iter=5,
            random_state=0,
        )
        return info.relative_error, W @ H
    est = {
        "ButterflyFactorizer": ButterflyFactorizer(),
        "FixedSupportFactorizer": FixedSupportFactorizer(
            support_W="full", support_H="full", n_components=2
        ),
        "QuantizedButterfly": QuantizedButterfly(precision=4),
    }[entry].fit(X)
    X_hat = _fitted_dense(est)
    reported = [est.relative_error_, -neg_relative_error(est, X)]
    reported.append(10 ** (-snr_db(est, X) / 20))
    if not isinstance(est, FixedSupportFactorizer):
        reported.append(-est.score(X))
    assert max(reported) == pytest.approx(min(reported), rel=rel), reported
    return reported[0], X_hat


MAGNITUDE_ENTRY_POINTS = [
    "fixed_support_factorize",
    "fixed_support_factorize-als",
    "ButterflyFactorizer",
    "FixedSupportFactorizer",
    "QuantizedButterfly",
]


@pytest.mark.parametrize("entry", MAGNITUDE_ENTRY_POINTS)
@pytest.mark.parametrize(
    "dtype, exponents",
    [(np.float64, range(-1000, 1001, 125)), (np.float32, range(-140, 121, 20))],
    ids=["f64", "f32"],
)
def test_errors_are_right_at_every_magnitude(entry, dtype, exponents):
    base = _BASE.astype(dtype)
    # The fit's error comes from the root blocks, in the working dtype.
    close = 1e-9 if dtype == np.float64 else 1e-5
    clean, _ = _reported(entry, base, close)
    assert 0.01 < clean < 1
    for k in exponents:
        X = np.ldexp(base, k).astype(dtype)
        # Reported = true error of what was returned, and the error of the
        # unscaled fit; float32 values below 2**-126 are subnormal (fewer
        # significant bits, in X and in the dense products of the factors).
        rel = 1e-2 if dtype == np.float32 and k < -100 else 1e-5
        reported, X_hat = _reported(entry, X, close if rel < 1e-2 else rel)
        assert np.isfinite(X_hat).all(), k
        true = _true_relative_error(X, X_hat, k)
        assert reported == pytest.approx(true, rel=rel), k
        assert reported == pytest.approx(clean, rel=rel), k


@pytest.mark.parametrize(
    "dtype, exponents",
    [(np.float64, range(-1000, 1001, 250)), (np.float32, range(-140, 121, 40))],
    ids=["f64", "f32"],
)
def test_certificates_hold_at_every_magnitude(dtype, exponents):
    base = _BASE.astype(dtype)
    for k in exponents:
        X = np.ldexp(base, k).astype(dtype)
        W, H, info = fixed_support_factorize(X, np.ones((8, 2)), np.ones((2, 8)))
        assert info.certified_optimal, (k, info.certificate)
        # Independent optimum: the spectrum of X (at the scale of 1).
        spectrum = np.linalg.svd(np.ldexp(X.astype(np.float64), -k), compute_uv=False)
        optimum = np.sqrt(np.sum(spectrum[2:] ** 2))
        # The product of the factors (normal numbers) in float64: exact here.
        product = W.astype(np.float64) @ H.astype(np.float64)
        true = np.linalg.norm(np.ldexp(X.astype(np.float64) - product, -k))
        tol = 64 * np.finfo(dtype).eps * np.linalg.norm(spectrum)
        assert abs(true - optimum) <= tol, k
        assert abs(np.ldexp(info.optimal_error, -k) - optimum) <= tol, k
        assert abs(np.ldexp(info.error, -k) - true) <= tol, k


# ----------------------------------------------------------------------------
# Integer parameters: J, rank, precision, sizes
# ----------------------------------------------------------------------------

BAD_INTEGERS = [0, -1, -(2**70), 10**9, 2**70, 2.5, 2.0, True, "2", None, [2]]

INT_PARAMETERS = {
    "n_factors": (lambda v: butterfly_factorize(hadamard(16), n_factors=v), None),
    "rank": (lambda v: butterfly_factorize(hadamard(16), rank=v), None),
    "architecture-n_factors": (
        lambda v: architecture((16, 16), n_factors=v),
        "n_factors",
    ),
    "architecture-rank": (lambda v: architecture((16, 16), rank=v), "rank"),
    "random_butterfly-n_factors": (
        lambda v: random_butterfly(16, n_factors=v, random_state=0),
        "n_factors",
    ),
    "random_butterfly-rank": (
        lambda v: random_butterfly(16, rank=v, random_state=0),
        "rank",
    ),
    "max_iter": (
        lambda v: fixed_support_factorize(
            np.eye(4), *_S4, method="als", max_iter=v, n_restarts=1
        ),
        None,
    ),
    "n_restarts": (
        lambda v: fixed_support_factorize(
            np.eye(4), *_S4, method="als", n_restarts=v, max_iter=1
        ),
        None,
    ),
    "n_blocks": (lambda v: block_diagonal_support((4, 4), v), None),
    "hadamard-n": (lambda v: hadamard(v), "n"),
    "dft-n": (lambda v: dft(v), "n"),
    "bit_reversal-n": (lambda v: bit_reversal_permutation(v), "n"),
    "butterfly_support-k": (lambda v: butterfly_support(8, v), "k"),
}

# None is a valid n_factors (the default depth), 2.0 is no integer, huge values
# must be refused up front (not allocated).
_ALLOWED = {("n_factors", None), ("architecture-n_factors", None)}
_ALLOWED |= {("random_butterfly-n_factors", None)}


@pytest.mark.parametrize("value", BAD_INTEGERS, ids=repr)
@pytest.mark.parametrize("param", INT_PARAMETERS)
def test_bad_integer_parameter_is_refused_naming_it(param, value):
    call, name = INT_PARAMETERS[param]
    name = name or param
    if value is None and (param, value) in _ALLOWED:
        call(value)
        return
    if param == "n_restarts" and value in (10**9, 2**70):
        pytest.skip("see test_huge_counts_are_refused_before_allocating")
    if param in ("hadamard-n", "dft-n", "bit_reversal-n") and value in (
        10**9,
        2**70,
    ):
        pytest.skip("a valid size too large for memory: MemoryError is expected")
    _raises_clear(lambda: call(value), [name])


BAD_PRECISIONS = [0, -1, 54, 10**9, 2**70, 2.5, True, "float7", None, [8]]


@pytest.mark.parametrize("value", BAD_PRECISIONS, ids=repr)
@pytest.mark.parametrize(
    "call",
    [
        lambda v: quantize_rank_one([1.0, 2.0], [3.0, 0.5], v),
        lambda v: quantize_butterfly(random_butterfly(8, random_state=0), v),
        lambda v: FloatFormat(v),
    ],
    ids=["quantize_rank_one", "quantize_butterfly", "FloatFormat"],
)
def test_bad_precision_is_refused_naming_it(call, value):
    _raises_clear(lambda: call(value), ["t", "format", "fmt", "precision"])


@pytest.mark.parametrize("t", [53, 40, 24])
def test_quantize_huge_precision_is_refused_or_exact(t):
    # Exact enumeration costs 2**(t-1) breakpoints per entry: a large t must
    # be refused up front (or handled exactly), never allocate or run for ages.
    B = random_butterfly(8, random_state=0)
    for call in (
        lambda: quantize_butterfly(B, t),
        lambda: QuantizedButterfly(precision=t).fit(B.toarray()),
    ):
        try:
            call()
        except ValueError as exc:
            assert re.search(r"\bt\b|precision|format", str(exc))
    x, y = np.array([1.0, 1.3, 0.2]), np.array([0.7, 1.1])
    try:
        xh, yh = quantize_rank_one(x, y, t)
    except ValueError as exc:
        assert re.search(r"\bt\b|precision|format", str(exc))
        return
    np.testing.assert_allclose(np.outer(xh, yh), np.outer(x, y), rtol=2.0**-t)


@pytest.mark.parametrize("exponent", [600, -600])
def test_quantize_rank_one_is_power_of_two_covariant(exponent):
    x, y = np.array([1.0, 1.3, 0.2]), np.array([0.7, 1.1])
    xh, yh = quantize_rank_one(x, y, 4)
    scale = 2.0**exponent
    sxh, syh = quantize_rank_one(x * scale, y, 4)
    np.testing.assert_array_equal(np.outer(sxh, syh), np.outer(xh, yh) * scale)


@pytest.mark.parametrize(
    "bad",
    ["nan", "inf", "empty", "string", "object", "3-D", "mismatch", "None"],
)
def test_quantize_rank_one_bad_vectors(bad):
    x, y = np.array([1.0, 2.0]), np.array([3.0, 0.5])
    cases = {
        "nan": (np.array([np.nan, 1.0]), y),
        "inf": (x, np.array([np.inf, 1.0])),
        "empty": (np.array([]), y),
        "string": (np.array(["a", "b"]), y),
        "object": (np.full(2, object(), dtype=object), y),
        "3-D": (x[None, None], y[None, None]),
        "mismatch": (np.ones((2, 2)), np.ones((3, 2))),
        "None": (None, y),
    }
    xb, yb = cases[bad]
    _raises_clear(lambda: quantize_rank_one(xb, yb, 4), ["x", "y"])


@pytest.mark.parametrize("variant", ["int", "bool", "read-only", "strided"])
def test_quantize_rank_one_castable_vectors(variant):
    x, y = np.array([1.0, 3.0, 0.0, 2.0]), np.array([3.0, 0.5, 1.0])
    make = {
        "int": lambda v: v.astype(np.int64),
        "bool": lambda v: v != 0,
        "read-only": _frozen,
        "strided": lambda v: np.repeat(v, 2)[::2],
    }[variant]
    xv, yv = make(x), make(y)
    before = (xv.copy(), yv.copy())
    got = quantize_rank_one(xv, yv, 3)
    expected = quantize_rank_one(_clean_copy(xv), _clean_copy(yv), 3)
    np.testing.assert_array_equal(xv, before[0])
    np.testing.assert_array_equal(yv, before[1])
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize(
    "bad", ["nan", "1-D", "chain", "string", "object", "empty", "None"]
)
def test_quantize_factors_bad_factors(bad):
    W, H = np.eye(4, 2), np.eye(2, 4)
    cases = {
        "nan": (W * np.nan, H),
        "1-D": (np.ones(4), H),
        "chain": (W, np.eye(3, 4)),
        "string": (np.full((4, 2), "a"), H),
        "object": (np.full(W.shape, object(), dtype=object), H),
        "empty": (np.ones((0, 2)), H),
        "None": (None, H),
    }
    Wb, Hb = cases[bad]
    _raises_clear(lambda: quantize_factors(Wb, Hb, 4), ["W", "H"])


def test_quantize_factors_integer_input_is_cast():
    W, H = np.array([[1, 0], [3, 0], [0, 5]]), np.array([[1, 2, 0], [0, 0, 7]])
    got = quantize_factors(W, H, 3)
    expected = quantize_factors(W.astype(float), H.astype(float), 3)
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("bad", ["nan", "string", "object", "None"])
def test_round_to_format_bad_values(bad):
    x = {"nan": [np.nan], "string": ["a"], "object": _NOT_NUMBERS, "None": None}
    _raises_clear(lambda: round_to_format(x[bad], 3), ["x"])


@pytest.mark.parametrize("bad", ["nan", "string", "object", "None"])
def test_storage_bits_bad_values(bad):
    x = {"nan": [np.nan], "string": ["a"], "object": _NOT_NUMBERS, "None": None}
    _raises_clear(lambda: storage_bits(x[bad], 3), ["values"])


@pytest.mark.parametrize("code", ["bogus", None, 3, "999", "00"])
def test_standard_permutation_bad_code(code):
    _raises_clear(lambda: standard_permutation(8, code), ["code"])


@pytest.mark.parametrize("n", [0, -1, 3, 2.5, None])
def test_standard_permutations_bad_size(n):
    _raises_clear(lambda: standard_permutations(n), ["n"])


def test_quantize_butterfly_refuses_non_operators():
    for value in (np.eye(8), None, "B", [np.ones((1, 2, 2, 1))]):
        _raises_clear(lambda v=value: quantize_butterfly(v, 4), ["B"], TypeError)


def test_quantize_butterfly_does_not_modify_its_input():
    B = random_butterfly(16, random_state=0)
    before = B.toarray()
    for heuristic in ("pairwise", "left-to-right", "rtn"):
        Q = quantize_butterfly(B, 4, heuristic=heuristic)
        assert np.isfinite(Q.toarray()).all()
    np.testing.assert_array_equal(B.toarray(), before)


# ----------------------------------------------------------------------------
# Supports
# ----------------------------------------------------------------------------

BAD_SUPPORTS = {
    "1-D": (np.ones(4, bool), ValueError),
    "3-D": (np.ones((4, 2, 1), bool), ValueError),
    "0-D": (True, ValueError),
    "values 2": (np.full((4, 2), 2), ValueError),
    "values 0.5": (np.full((4, 2), 0.5), ValueError),
    "negative": (-np.ones((4, 2)), ValueError),
    "nan": (np.full((4, 2), np.nan), ValueError),
    "string": (np.full((4, 2), "a"), TypeError),
    "object": (np.ones((4, 2), dtype=object), TypeError),
    "complex": (np.ones((4, 2), complex), TypeError),
    "None": (None, TypeError),
    "no columns": (np.ones((4, 0), bool), ValueError),
    "wrong rank": (np.ones((4, 3), bool), ValueError),
}


@pytest.mark.parametrize("bad", BAD_SUPPORTS)
@pytest.mark.parametrize("entry", ["fixed_support_factorize", "analyze_supports"])
def test_bad_support_is_refused_naming_it(entry, bad):
    S_W, exc = BAD_SUPPORTS[bad]
    S_H = np.ones((2, 4), bool)
    if bad == "no columns":
        S_H = np.ones((0, 4), bool)
    call = {
        "fixed_support_factorize": lambda: fixed_support_factorize(np.eye(4), S_W, S_H),
        "analyze_supports": lambda: analyze_supports(S_W, S_H),
    }[entry]
    _raises_clear(call, ["S_W", "S_H"], exc)


def test_support_of_the_wrong_shape_for_the_matrix():
    _raises_clear(
        lambda: fixed_support_factorize(np.eye(5), *_S4), ["A", "n_samples=5"]
    )


@pytest.mark.parametrize("variant", ["int 0/1", "float 0/1", "list", "read-only"])
def test_castable_supports_give_the_boolean_result(variant):
    A = np.random.default_rng(0).standard_normal((6, 6))
    S_W = block_diagonal_support((6, 3), 3)
    S_H = block_diagonal_support((3, 6), 3)
    make = {
        "int 0/1": lambda S: S.astype(np.int8),
        "float 0/1": lambda S: S.astype(float),
        "list": lambda S: S.tolist(),
        "read-only": _frozen,
    }[variant]
    W, H, info = fixed_support_factorize(A, make(S_W), make(S_H))
    W0, H0, _ = fixed_support_factorize(A, S_W, S_H)
    assert info.certified_optimal
    np.testing.assert_array_equal(W, W0)
    np.testing.assert_array_equal(H, H0)


@pytest.mark.parametrize(
    "shape", [(0, 2), (-1, 2), (2,), (2, 2, 2), "ab", None, 3, (None, 2)]
)
@pytest.mark.parametrize(
    "func",
    [
        full_support,
        lower_triangular_support,
        upper_triangular_support,
        lambda s: block_diagonal_support(s, 1),
        architecture,
        random_butterfly,
    ],
    ids=["full", "lower", "upper", "block_diagonal", "architecture", "random"],
)
def test_bad_shape_is_refused_naming_it(func, shape):
    if func is random_butterfly and shape == 3:
        pytest.skip("an int is a valid square shape for random_butterfly")
    _raises_clear(lambda: func(shape), ["shape", "n_samples"])


@pytest.mark.parametrize("func", [full_support, architecture, random_butterfly])
def test_fractional_shape_is_refused(func):
    _raises_clear(lambda: func((4.5, 4)), ["shape"])


@pytest.mark.parametrize("n, k", [(3, 1), (0, 1), (8, 0), (8, 4), (8, -1)])
def test_bad_butterfly_support(n, k):
    _raises_clear(lambda: butterfly_support(n, k), ["n", "k"])


# ----------------------------------------------------------------------------
# Permutations that are not permutations
# ----------------------------------------------------------------------------

BAD_PERMUTATIONS = {
    "duplicate": [0, 0, 1, 2, 3, 4, 5, 6],
    "out of range": [0, 1, 2, 3, 4, 5, 6, 8],
    "negative": [-1, 1, 2, 3, 4, 5, 6, 7],
    "too short": [0, 1, 2],
    "too long": list(range(9)),
    "2-D": [[0, 1, 2, 3], [4, 5, 6, 7]],
    "fractional": [0.5, 1, 2, 3, 4, 5, 6, 7],
    "nan": [np.nan] * 8,
    "string": list("01234567"),
    "boolean": [True, False] * 4,
    "complex": np.arange(8) + 0j,
    "empty": [],
    "scalar": 3,
    "object": [None] * 8,
    "huge": [2**62] * 8,
}

PERMUTATION_ENTRY_POINTS = {
    "ButterflyMatrix": (
        lambda p: ButterflyMatrix(random_butterfly(8, random_state=0).factors, perm=p),
        "perm",
    ),
    "random_butterfly": (
        lambda p: random_butterfly(8, permutation=p, random_state=0),
        "permutation",
    ),
    "butterfly_factorize": (
        lambda p: butterfly_factorize(hadamard(8), permutation=p),
        "permutation",
    ),
}


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast")
@pytest.mark.parametrize("bad", BAD_PERMUTATIONS)
@pytest.mark.parametrize("entry", PERMUTATION_ENTRY_POINTS)
def test_bad_permutation_is_refused_naming_it(entry, bad):
    call, name = PERMUTATION_ENTRY_POINTS[entry]
    if entry == "butterfly_factorize" and bad == "object":
        pytest.skip("a list of None is a list of identity candidates there")
    _raises_clear(lambda: call(BAD_PERMUTATIONS[bad]), [name])


@given(perm=st.permutations(range(8)), as_float=st.booleans())
@FAST
def test_valid_permutations_are_used_as_given(perm, as_float):
    perm = np.array(perm, dtype=float if as_float else np.int64)
    perm.flags.writeable = False
    B = random_butterfly(8, permutation=perm, random_state=0)
    plain = random_butterfly(8, random_state=0).toarray()
    # B x = F (x[perm]): column perm[j] of B is column j of the plain product.
    expected = np.empty_like(plain)
    expected[:, perm.astype(int)] = plain
    np.testing.assert_array_equal(B.toarray(), expected)
    assert not perm.flags.writeable


# ----------------------------------------------------------------------------
# ButterflyMatrix: construction and products
# ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def butterfly():
    return random_butterfly(8, random_state=0)


BAD_FACTORS = {
    "nan": ([np.full((1, 2, 2, 1), np.nan)], ValueError),
    "empty": ([np.ones((1, 0, 2, 4))], ValueError),
    "1-D": ([np.ones(4)], ValueError),
    "2-D": (np.eye(4), ValueError),
    "object": ([np.full((1, 2, 2, 1), object(), dtype=object)], TypeError),
    "string": ("abc", TypeError),
    "None": (None, TypeError),
    "no factors": ([], ValueError),
    "not chainable": ([np.ones((1, 2, 2, 1)), np.ones((1, 4, 4, 1))], ValueError),
}


@pytest.mark.parametrize("bad", BAD_FACTORS)
def test_bad_factors_are_refused_naming_them(bad):
    factors, exc = BAD_FACTORS[bad]
    _raises_clear(lambda: ButterflyMatrix(factors), ["factors", "patterns"], exc)


@pytest.mark.parametrize("shape", [(9, 8), (0, 8), (8,), 8, (None, 8), "ab"])
def test_bad_operator_shape_is_refused(butterfly, shape):
    _raises_clear(lambda: ButterflyMatrix(butterfly.factors, shape=shape), ["shape"])


def test_factors_are_copied_never_modified(butterfly):
    factors = [np.asfortranarray(K) for K in butterfly.factors]
    for K in factors:
        K.flags.writeable = False
    copies = [K.copy() for K in factors]
    B = ButterflyMatrix(factors)
    np.testing.assert_array_equal(B.toarray(), butterfly.toarray())
    for K, C in zip(factors, copies):
        np.testing.assert_array_equal(K, C)
    for K in B.factors:
        assert not K.flags.writeable


@pytest.mark.parametrize("adjoint", [False, True])
@pytest.mark.parametrize(
    "variant", ["float32", "int", "bool", "complex", "read-only", "strided", "list"]
)
def test_product_with_castable_input_is_correct(butterfly, variant, adjoint):
    op = butterfly.H if adjoint else butterfly
    dense = butterfly.toarray().conj().T if adjoint else butterfly.toarray()
    base = np.arange(16.0).reshape(8, 2) - 5
    make = {
        "float32": lambda v: v.astype(np.float32),
        "int": lambda v: v.astype(np.int64),
        "bool": lambda v: v > 0,
        "complex": lambda v: v * (1 + 2j),
        "read-only": _frozen,
        "strided": lambda v: np.repeat(v, 2, axis=1)[:, ::2],
        "list": lambda v: v.tolist(),
    }[variant]
    X = make(base)
    before = np.array(X, copy=True)
    for x in (X, np.asarray(X)[:, 0]):
        got = op @ x
        expected = dense @ np.asarray(x, dtype=np.result_type(np.asarray(x), float))
        assert np.isfinite(got).all()
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(X), before)


@pytest.mark.parametrize("adjoint", [False, True])
@pytest.mark.parametrize("shape", [(7,), (9,), (7, 2), (8, 2, 1), (0,)])
def test_product_with_wrong_length_is_refused(butterfly, shape, adjoint):
    op = butterfly.H if adjoint else butterfly
    with pytest.raises(ValueError):
        op @ np.ones(shape)


def test_product_wrong_length_message_gives_both_lengths(butterfly):
    with pytest.raises(ValueError, match=r"(?s)(?=.*\b8\b)(?=.*\b7\b)"):
        butterfly @ np.ones(7)


@pytest.mark.parametrize("dtype", ["U1", "S1", "datetime64[s]"])
def test_product_with_non_numeric_input_is_refused(butterfly, dtype):
    with pytest.raises(TypeError):
        butterfly @ np.zeros(8, dtype=dtype)


def test_product_with_object_input_casts_or_refuses(butterfly):
    x = np.arange(8).astype(object)
    try:
        y = butterfly @ x
    except TypeError as exc:
        assert "dtype" in str(exc)
        return
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, butterfly.toarray() @ np.arange(8.0))


# ----------------------------------------------------------------------------
# load(): truncated, corrupted or pickle-bearing files
# ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A saved butterfly with every optional member (permutation, cropping)."""
    B = random_butterfly(
        (8, 6), n_factors=2, rank=2, permutation=np.arange(6)[::-1], random_state=0
    )
    path = tmp_path_factory.mktemp("saved") / "b.npz"
    B.save(path)
    return B, path.read_bytes()


class _MarkerPayload:
    """Unpickling this creates a marker file: it must never happen on load."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _assert_refused_or_intact(path, B):
    try:
        loaded = load(path)
    except ValueError as exc:
        assert str(path) in str(exc)
        return
    assert loaded.shape == B.shape
    np.testing.assert_array_equal(loaded.toarray(), B.toarray())


def test_pickle_payload_would_run_if_unpickled(tmp_path):
    # The marker mechanism works: this is what load must never do.
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(_MarkerPayload(marker))).close()
    assert marker.exists()


@pytest.mark.parametrize("where", ["raw pickle", "factor", "perm", "format"])
def test_load_refuses_pickles_and_runs_nothing(tmp_path, saved, where):
    B, data = saved
    marker = tmp_path / "ran"
    payload = np.array([_MarkerPayload(marker)], dtype=object)
    path = tmp_path / "evil.npz"
    if where == "raw pickle":
        path.write_bytes(pickle.dumps(_MarkerPayload(marker)))
    else:
        good = tmp_path / "good.npz"
        good.write_bytes(data)
        with np.load(good) as arrays:
            members = dict(arrays)
        members[{"factor": "factor_0", "perm": "perm", "format": "format"}[where]] = (
            payload
        )
        np.savez(path, **members)
    with pytest.raises(ValueError, match="cannot load"):
        load(path)
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"", b"\x00", b"PK\x03\x04", b"not a zip"])
def test_load_refuses_junk(tmp_path, content):
    path = tmp_path / "junk.npz"
    path.write_bytes(content)
    _raises_clear(lambda: load(path), [str(path)], ValueError)


def test_load_refuses_missing_file_and_directory(tmp_path):
    _raises_clear(
        lambda: load(tmp_path / "missing.npz"), ["no such file"], FileNotFoundError
    )
    _raises_clear(lambda: load(tmp_path), [str(tmp_path)], ValueError)


def test_load_refuses_a_plain_npy_file(tmp_path):
    path = tmp_path / "plain.npy"
    np.save(path, np.ones(3))
    _raises_clear(lambda: load(path), [str(path)], ValueError)


@given(cut=st.integers(0, 10_000))
@FAST
def test_load_truncated_file_is_refused(tmp_path, saved, cut):
    B, data = saved
    cut = cut % len(data)
    path = tmp_path / "truncated.npz"
    path.write_bytes(data[:cut])
    _raises_clear(lambda: load(path), [str(path)], ValueError)


@given(garbage=st.binary(max_size=512))
@FAST
def test_load_random_bytes_is_refused(tmp_path, garbage):
    path = tmp_path / "garbage.npz"
    path.write_bytes(garbage)
    _raises_clear(lambda: load(path), [str(path)], ValueError)


@given(
    flips=st.lists(
        st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=3
    )
)
@settings(FAST, max_examples=300)
def test_load_corrupted_file_is_refused_or_intact(tmp_path, saved, flips):
    B, data = saved
    corrupted = bytearray(data)
    for position, value in flips:
        corrupted[position % len(data)] = value
    path = tmp_path / "corrupted.npz"
    path.write_bytes(bytes(corrupted))
    _assert_refused_or_intact(path, B)


def _rewrite(tmp_path, data, change):
    """Copy the archive ``data`` member by member, with ``change`` applied."""
    source = tmp_path / "source.npz"
    source.write_bytes(data)
    path = tmp_path / "changed.npz"
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(path, "w") as zout:
        for info in zin.infolist():
            name, raw = change(info.filename, zin.read(info))
            if name is not None:
                zout.writestr(name, raw)
    return path


def test_load_refuses_file_that_lost_its_permutation(tmp_path, saved):
    B, data = saved
    path = _rewrite(
        tmp_path,
        data,
        lambda name, raw: (None if name == "perm.npy" else name, raw),
    )
    _assert_refused_or_intact(path, B)


@pytest.mark.parametrize("n_factors", [1.5, 1])
def test_load_refuses_inconsistent_factor_count(tmp_path, n_factors):
    # Dropping the last factors of a classic butterfly leaves a valid chain
    # of the same shape, so only the file's consistency can reveal it.
    B = random_butterfly(8, random_state=0)
    B.save(tmp_path / "o.npz")
    with np.load(tmp_path / "o.npz") as arrays:
        members = dict(arrays)
    members["n_factors"] = np.array(n_factors)
    path = tmp_path / "count.npz"
    np.savez(path, **members)
    _assert_refused_or_intact(path, B)


def test_load_refuses_header_claiming_a_huge_array(tmp_path, saved):
    B, data = saved
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (100000000000,), }"
    header = header.ljust(117) + "\n"
    npy = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little")
    npy += header.encode() + bytes(64)
    path = _rewrite(
        tmp_path,
        data,
        lambda name, raw: (name, npy if name == "factor_0.npy" else raw),
    )
    _raises_clear(lambda: load(path), [str(path)], ValueError)


MEMBER_CHANGES = {
    "nan factor": ("factor_0", lambda a: np.full_like(a, np.nan)),
    "string factor": ("factor_0", lambda a: np.full(a.shape, "a")),
    "unchainable factor": ("factor_0", lambda a: np.ones((1, 2, 2, 3))),
    "bad perm": ("perm", lambda a: np.zeros_like(a)),
    "float perm": ("perm", lambda a: a + 0.5),
    "2-D perm": ("perm", lambda a: a.reshape(2, -1)),
    "shape too big": ("shape", lambda a: a * 100),
    "negative shape": ("shape", lambda a: -a),
    "shape of 1": ("shape", lambda a: a[:1]),
    "string shape": ("shape", lambda a: np.array(["a", "b"])),
    "newer version": ("version", lambda a: a + 1),
    "string version": ("version", lambda a: np.array("x")),
    "zero factors": ("n_factors", lambda a: np.array(0)),
    "negative factors": ("n_factors", lambda a: np.array(-1)),
    "huge factors": ("n_factors", lambda a: np.array(10**12)),
    "other format": ("format", lambda a: np.array("something else")),
}


@pytest.mark.parametrize("change", MEMBER_CHANGES)
def test_load_refuses_inconsistent_members(tmp_path, saved, change):
    B, data = saved
    key, modify = MEMBER_CHANGES[change]
    original = tmp_path / "o.npz"
    original.write_bytes(data)
    with np.load(original) as arrays:
        members = dict(arrays)
    members[key] = modify(members[key])
    path = tmp_path / "changed.npz"
    np.savez(path, **members)
    _raises_clear(lambda: load(path), [str(path)], ValueError)
    for name in ("format", "version", "shape", "n_factors", "factor_0"):
        without = {k: v for k, v in members.items() if k != name}
        np.savez(path, **without)
        _raises_clear(lambda: load(path), [str(path)], ValueError)


def test_load_roundtrip_is_exact_and_file_untouched(tmp_path, saved):
    B, data = saved
    path = tmp_path / "b.npz"
    path.write_bytes(data)
    os.chmod(path, 0o444)
    loaded = load(path)
    assert path.read_bytes() == data
    np.testing.assert_array_equal(loaded.toarray(), B.toarray())
    np.testing.assert_array_equal(loaded.perm, B.perm)


# ----------------------------------------------------------------------------
# Small structures
# ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "left, right", [((1, 2, 2, 2), (2, 2, 2, 2)), ((1, 2, 2, 1), (1, 4, 4, 1))]
)
@pytest.mark.parametrize("func", [chain_rank, fuse_patterns])
def test_unchainable_patterns_are_refused(func, left, right):
    _raises_clear(lambda: func(Pattern(*left), Pattern(*right)), ["chainable"])


# ----------------------------------------------------------------------------
# The command line: one line on stderr, status 1 or 2, nothing written or run
# ----------------------------------------------------------------------------


@pytest.fixture
def cli_files(tmp_path):
    marker = tmp_path / "ran"
    files = {
        "good": np.eye(8),
        "nan": np.full((4, 4), np.nan),
        "1-D": np.ones(4),
        "string": np.full((4, 4), "a"),
        "duplicate-perm": np.zeros(8, dtype=int),
    }
    for name, value in files.items():
        np.save(tmp_path / f"{name}.npy", value)
    np.save(
        tmp_path / "pickle.npy",
        np.array([_MarkerPayload(marker)], dtype=object),
        allow_pickle=True,
    )
    (tmp_path / "raw.pkl").write_bytes(pickle.dumps(_MarkerPayload(marker)))
    good = (tmp_path / "good.npy").read_bytes()
    (tmp_path / "truncated.npy").write_bytes(good[:100])
    np.savez(tmp_path / "archive.npz", a=np.eye(2))
    return tmp_path, marker


CLI_CASES = {
    "missing input": "factorize {d}/missing.npy --out {d}/o.npz",
    "nan input": "factorize {d}/nan.npy --out {d}/o.npz",
    "1-D input": "factorize {d}/1-D.npy --out {d}/o.npz",
    "string input": "factorize {d}/string.npy --out {d}/o.npz",
    "truncated input": "factorize {d}/truncated.npy --out {d}/o.npz",
    "pickle input": "factorize {d}/pickle.npy --out {d}/o.npz",
    "raw pickle input": "factorize {d}/raw.pkl --out {d}/o.npz",
    "npz input": "factorize {d}/archive.npz --out {d}/o.npz",
    "no output dir": "factorize {d}/good.npy --out {d}/nowhere/o.npz",
    "negative J": "factorize {d}/good.npy --out {d}/o.npz --n-factors -1",
    "huge J": "factorize {d}/good.npy --out {d}/o.npz --n-factors 1000000000",
    "non-integer J": "factorize {d}/good.npy --out {d}/o.npz --n-factors 2.5",
    "zero rank": "factorize {d}/good.npy --out {d}/o.npz --rank 0",
    "huge rank": "factorize {d}/good.npy --out {d}/o.npz --rank 1000000000",
    "huge precision": "factorize {d}/good.npy --out {d}/o.npz --precision 99",
    "bad precision": "factorize {d}/good.npy --out {d}/o.npz --precision nope",
    "bad permutation": "factorize {d}/good.npy --out {d}/o.npz --permutation x",
    "duplicate permutation": (
        "factorize {d}/good.npy --out {d}/o.npz --permutation {d}/duplicate-perm.npy"
    ),
    "pickle permutation": (
        "factorize {d}/good.npy --out {d}/o.npz --permutation {d}/pickle.npy"
    ),
    "zero jobs": "factorize {d}/good.npy --out {d}/o.npz --n-jobs 0",
    "info pickle": "info {d}/pickle.npy",
    "info raw pickle": "info {d}/raw.pkl",
    "info truncated": "info {d}/truncated.npy",
    "info missing": "info {d}/missing.npz",
    "info directory": "info {d}",
    "demo negative size": "demo --size -4",
    "demo negative columns": "demo --size 16 --columns -3",
    "unknown command": "frobnicate",
}

CLI_DEFECTS = {
    "demo negative noise": "demo --size 16 --noise -1",
    "demo nan noise": "demo --size 16 --noise nan",
    "demo bad precision": "demo --size 16 --precision nope",
    "output is a directory": "factorize {d}/good.npy --out {d}",
}


def _run_cli(argv, capsys):
    from skbutterfly.__main__ import main

    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.err


@pytest.mark.parametrize("case", CLI_CASES)
def test_cli_bad_input_is_one_line_error(cli_files, capsys, case):
    directory, marker = cli_files
    argv = CLI_CASES[case].format(d=directory).split()
    status, err = _run_cli(argv, capsys)
    assert status in (1, 2)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("skbutterfly: error: "), err
    assert not (directory / "o.npz").exists()
    assert not marker.exists()


@pytest.mark.parametrize("case", CLI_DEFECTS)
def test_cli_errors_without_traceback(cli_files, capsys, case):
    directory, _ = cli_files
    argv = CLI_DEFECTS[case].format(d=directory).split()
    status, err = _run_cli(argv, capsys)
    assert status in (1, 2)
    assert err.strip().startswith("skbutterfly: error: ")


# ----------------------------------------------------------------------------
# save(): special files, permissions, temporary names; load(): bombs
# ----------------------------------------------------------------------------


def _special_paths(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link-to-fifo"
    link.symlink_to(fifo)
    directory = tmp_path / "dir"
    directory.mkdir()
    return {"fifo": fifo, "symlink to a fifo": link, "directory": directory}


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.parametrize("kind", ["fifo", "symlink to a fifo", "directory"])
def test_save_and_load_refuse_special_files(tmp_path, kind):
    path = _special_paths(tmp_path)[kind]
    before = os.lstat(path)
    B = random_butterfly(8, random_state=0)
    message = _raises_clear(lambda: B.save(path), [str(path)])
    assert ".tmp" not in message
    after = os.lstat(path)
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)
    # Reading a FIFO would block: refused from its type, at once.
    _raises_clear(lambda: load(path), [str(path)])
    assert sorted(os.listdir(tmp_path)) == ["dir", "fifo", "link-to-fifo"]


def test_save_through_a_symlink_writes_the_target(tmp_path):
    target = tmp_path / "target.npz"
    target.write_bytes(b"old")
    link = tmp_path / "link.npz"
    link.symlink_to(target)
    B = random_butterfly(8, random_state=0)
    B.save(link)
    assert link.is_symlink()
    np.testing.assert_array_equal(load(target).toarray(), B.toarray())


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_save_honours_the_umask_and_keeps_permissions(tmp_path):
    B = random_butterfly(8, random_state=0)
    old = os.umask(0o027)
    try:
        B.save(tmp_path / "new.npz")
        np.savez(tmp_path / "numpy.npz", a=1)
    finally:
        os.umask(old)
    mode = os.stat(tmp_path / "new.npz").st_mode & 0o777
    assert mode == os.stat(tmp_path / "numpy.npz").st_mode & 0o777 == 0o640
    existing = tmp_path / "existing.npz"
    existing.write_bytes(b"x")
    os.chmod(existing, 0o604)
    B.save(existing)
    assert os.stat(existing).st_mode & 0o777 == 0o604


def test_interrupted_save_leaves_a_temporary_named_after_the_file(
    tmp_path, monkeypatch
):
    seen = []

    def interrupted(fh, **arrays):
        seen.extend(os.listdir(tmp_path))
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        random_butterfly(8, random_state=0).save(tmp_path / "model.npz")
    assert seen[0].startswith(".model.npz.") and seen[0].endswith(".tmp")
    assert os.listdir(tmp_path) == []


def _saved_members(tmp_path, saved):
    """The members of the saved file, as a dict of arrays."""
    original = tmp_path / "o.npz"
    original.write_bytes(saved[1])
    with np.load(original) as arrays:
        return dict(arrays)


def _bomb(tmp_path, saved, extra):
    """The saved file plus members ``extra`` (a few MiB of zeros, deflated)."""
    members = _saved_members(tmp_path, saved) | extra
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, **members)
    assert os.path.getsize(path) < 200_000
    return path


@pytest.mark.parametrize(
    "extra",
    [
        {"junk": np.zeros(8 << 20)},
        {"factor_0": np.zeros((1, 2048, 2048, 1))},
        {"perm": np.zeros(8 << 20, dtype=np.int64)},
    ],
    ids=["unknown member", "factor off the architecture", "huge perm"],
)
def test_load_validates_headers_before_reading(tmp_path, saved, extra):
    import tracemalloc

    path = _bomb(tmp_path, saved, extra)
    tracemalloc.start()
    try:
        _raises_clear(lambda: load(path), [str(path)], ValueError)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # the members declare 32-64 MiB


# ----------------------------------------------------------------------------
# Huge declared shapes: refused or computed directly, never searched step by step
# ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda: architecture((2**61 - 1, 4)),
        lambda: random_butterfly((2**61 - 1, 4), random_state=0),
        lambda: architecture((4, 2**41)),
    ],
    ids=["architecture", "random_butterfly", "wide"],
)
def test_huge_dimensions_are_refused_at_once(call):
    _raises_clear(call, ["shape"])


def test_padding_to_many_factors_is_computed_directly():
    arch = architecture((2**24 + 1,) * 2, n_factors=25)
    assert arch.padded_shape == (2**25, 2**25)
    # A large prime near the bound: the next size with two prime factors.
    prime = 2**40 - 87
    assert architecture((prime, 4), n_factors=2).padded_shape[0] == prime + 1


def test_fitting_size_is_the_smallest_size_that_splits():
    from skbutterfly._patterns import fitting_size

    def prime_count(s):
        count, p = 0, 2
        while p * p <= s:
            while s % p == 0:
                s, count = s // p, count + 1
            p += 1
        return count + (s > 1)

    for n in range(1, 300):
        for J in range(1, 10):
            brute = next(
                s for s in range(n, 2**J * n + 1) if J == 1 or prime_count(s) >= J
            )
            assert fitting_size(n, J) == brute, (n, J)


def _deep_tree(depth):
    tree = 0
    for i in range(1, depth):
        tree = (tree, i)
    return tree


# name -> (call, parameter the message must name, exception)
SMALL_ITEMS = {
    "hadamard uint8": (lambda: hadamard(4, dtype=np.uint8), "dtype", TypeError),
    "hadamard bool": (lambda: hadamard(4, dtype=bool), "dtype", TypeError),
    "hadamard str": (lambda: hadamard(4, dtype="U3"), "dtype", TypeError),
    "subnormals 'no'": (
        lambda: FloatFormat(4, -6, 8, subnormals="no"),
        "subnormals",
        TypeError,
    ),
    "subnormals 1": (
        lambda: FloatFormat(4, -6, 8, subnormals=1),
        "subnormals",
        TypeError,
    ),
    "add_noise overflow": (
        lambda: add_noise(np.full((4, 4), 1.7e308), 1.0, random_state=0),
        "level",
        ValueError,
    ),
    "chain_rank zero": (
        lambda: chain_rank(Pattern(0, 1, 1, 1), Pattern(1, 1, 1, 1)),
        "pattern",
        ValueError,
    ),
    "fuse_patterns zero": (
        lambda: fuse_patterns(Pattern(1, 2, 2, 1), Pattern(1, 2, 0, 1)),
        "pattern",
        ValueError,
    ),
    "deep tree": (
        lambda: butterfly_factorize(hadamard(8), tree=_deep_tree(3000)),
        "tree",
        ValueError,
    ),
}


@pytest.mark.parametrize("item", SMALL_ITEMS)
def test_small_items_are_refused_naming_the_parameter(item):
    call, name, exc = SMALL_ITEMS[item]
    _raises_clear(call, [name], exc)


def test_storage_bits_of_a_dataframe_counts_its_values():
    pd = pytest.importorskip("pandas")
    values = np.diag([1.0, 2.0, 4.0, 0.0])
    frame = pd.DataFrame(values, columns=["a", "b", "c", "d"])
    assert storage_bits(frame, 8) == storage_bits(values, 8) == 62
    assert storage_bits(frame, "float16") == 3 * 16


@pytest.mark.parametrize("version", [0, -5])
def test_load_refuses_versions_below_one(tmp_path, saved, version):
    members = _saved_members(tmp_path, saved)
    members["version"] = np.array(version)
    path = tmp_path / "v.npz"
    np.savez(path, **members)
    _raises_clear(lambda: load(path), [str(path)], ValueError)


# -- One input policy (check_matrix's docstring): the same input classes are
# accepted or refused, with the same exception type, at every entry point.
_H8 = hadamard(8)
POLICY_INPUTS = {
    "list": (_H8.tolist(), None),
    "bool": (_H8 > 0, None),
    "int": (_H8.astype(int), None),
    "float16": (_H8.astype(np.float16), None),
    "longdouble": (_H8.astype(np.longdouble), None),
    "object numbers": (_H8.astype(object), None),
    "numeric strings": (_H8.astype(str), None),
    "object non-numbers": (np.full((8, 8), object(), dtype=object), TypeError),
    "strings": (np.full((8, 8), "a"), TypeError),
    "csr_array": (sp.csr_array(_H8), TypeError),
    "csr_matrix": (sp.csr_matrix(_H8), TypeError),
    "None": (None, TypeError),
}


def _policy_entry_points():
    fitted_b = ButterflyFactorizer().fit(_H8)
    fitted_f = FixedSupportFactorizer().fit(_H8)
    full = np.ones((8, 8), bool)
    return {
        "butterfly_factorize": butterfly_factorize,
        "ButterflyFactorizer.fit": lambda X: ButterflyFactorizer().fit(X),
        "ButterflyFactorizer.transform": fitted_b.transform,
        "ButterflyFactorizer.inverse_transform": fitted_b.inverse_transform,
        "fixed_support_factorize": lambda X: fixed_support_factorize(X, full, full),
        "FixedSupportFactorizer.fit": lambda X: FixedSupportFactorizer().fit(X),
        "FixedSupportFactorizer.transform": fitted_f.transform,
        "FixedSupportFactorizer.inverse_transform": fitted_f.inverse_transform,
        "QuantizedButterfly.fit": lambda X: QuantizedButterfly(precision=4).fit(X),
    }


@pytest.mark.parametrize("kind", POLICY_INPUTS)
def test_one_input_policy_at_every_entry_point(kind):
    value, expected = POLICY_INPUTS[kind]
    for entry, call in _policy_entry_points().items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if expected is None:
                out = call(value)
                assert out is not None, entry
            else:
                with pytest.raises(expected):
                    call(value)
