import warnings
from functools import reduce

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from skbutterfly import (
    ApproximateQuantizationWarning,
    ButterflyMatrix,
    FloatFormat,
    quantize_butterfly,
    quantize_factors,
    quantize_rank_one,
    round_to_format,
)
from skbutterfly._exhaustive import (
    adversarial_cases,
    exhaustive_rank_one,
    format_values,
    rank_one_error,
)
from skbutterfly._formats import check_format, output_dtype
from skbutterfly._ks import fuse_values, ks_to_dense
from skbutterfly._quantize import _SparseOps, quantize_sparse_factors
from skbutterfly._quantize_rank_one import (
    ComplexQuantizationError,
    quantize_left_terms,
)
from skbutterfly.datasets import hadamard, random_butterfly


def _err2(x, y, xh, yh):
    return float(np.sum((np.outer(x, y) - np.outer(xh, yh)) ** 2))


def _batch_err2(X, Y, Xh, Yh):
    diff = np.einsum("ki,kj->kij", X, Y) - np.einsum("ki,kj->kij", Xh, Yh)
    return np.sum(diff**2, axis=(1, 2))


def _grid(t, lo, hi):
    """All t-bit numbers with exponents in [lo, hi], their negatives, zero."""
    M = np.arange(2 ** (t - 1), 2**t)
    pos = np.concatenate([M * 2.0 ** (e - t + 1) for e in range(lo, hi + 1)])
    return np.concatenate([-pos[::-1], [0.0], pos])


def _brute_force(x, y, t):
    """min over every x_hat on a wide grid, y_hat optimal given x_hat."""
    e = np.floor(np.log2(np.abs(x[x != 0])))
    values = _grid(t, int(e.min()) - 2, int(e.max()) + 2)
    X = np.stack(np.meshgrid(*[values] * len(x), indexing="ij"), -1).reshape(-1, len(x))
    X = X[np.any(X != 0, axis=1)]
    a, b = X @ x, np.sum(X * X, axis=1)
    # each y_hat_j alone: the nearest t-bit number to mu * y_j
    Yh = round_to_format((a / b)[:, None] * y[None, :], t)
    c = x @ x * (y @ y) - 2 * a * (Yh @ y) + b * np.sum(Yh * Yh, axis=1)
    return float(c.min())


CASES = [(t, m, n) for t in (2, 3, 4, 5) for m in (1, 2) for n in (1, 3)]
CASES += [(2, 3, 2), (3, 3, 1), (2, 4, 2), (3, 2, 4)]


@pytest.mark.parametrize("t", [2, 3, 4, 5])
@pytest.mark.parametrize("m", [1, 2, 3])
def test_left_only_scale_equals_brute_force(t, m):
    # Left-to-right quantizes x alone and carries mu * y exactly: the best
    # x_hat minimizes min_mu ||x y^T - mu x_hat y^T||^2, i.e. maximizes
    # (x^T x_hat)^2 / ||x_hat||^2, over every x_hat on a wide grid.
    rng = np.random.default_rng(7 * t + m)
    for _ in range(3):
        x, y = rng.standard_normal((1, m)), rng.standard_normal((1, 5))
        e = np.floor(np.log2(np.abs(x)))
        values = _grid(t, int(e.min()) - 2, int(e.max()) + 2)
        grid = np.stack(np.meshgrid(*[values] * m, indexing="ij"), -1).reshape(-1, m)
        grid = grid[np.any(grid != 0, axis=1)]
        best = np.max((grid @ x[0]) ** 2 / np.sum(grid * grid, axis=1))
        Xh, mu = quantize_left_terms(x, y, FloatFormat(t), "exact")
        got = (Xh[0] @ x[0]) ** 2 / (Xh[0] @ Xh[0])
        assert got == pytest.approx(best, rel=1e-12)
        assert mu[0] == pytest.approx((Xh[0] @ x[0]) / (Xh[0] @ Xh[0]))


@pytest.mark.parametrize(("t", "m", "n"), CASES)
def test_exact_equals_brute_force(t, m, n):
    rng = np.random.default_rng(100 * t + 10 * m + n)
    for _ in range(3):
        x, y = rng.standard_normal(m), rng.standard_normal(n)
        if m == 4:  # a narrower exponent range keeps the enumeration small
            x = np.sign(x) * rng.uniform(0.5, 2, m)
        xh, yh = quantize_rank_one(x, y, t)
        best = _brute_force(x, y, t)
        # costs are compared in float64: up to eps * ||x y^T||^2
        tol = 1e-13 * (x @ x) * (y @ y)
        assert _err2(x, y, xh, yh) == pytest.approx(best, rel=1e-9, abs=tol)
        # the roles of x and y are symmetric (enumeration on the shorter side)
        yh2, xh2 = quantize_rank_one(y, x, t)
        assert _err2(x, y, xh2, yh2) == pytest.approx(best, rel=1e-9, abs=tol)


@pytest.mark.parametrize("t", [2, 3, 4])
def test_exact_equals_brute_force_on_dyadic_inputs(t):
    # few-bit inputs: exact ties and coinciding breakpoints happen
    rng = np.random.default_rng(t)
    for m, n in [(1, 2), (2, 2), (2, 3)] + [(3, 2)] * (t < 4):
        for _ in range(4):
            x = rng.integers(1, 16, m) * rng.choice([-1.0, 1.0], m) / 4
            y = rng.integers(1, 16, n) * rng.choice([-1.0, 1.0], n) / 8
            best = _brute_force(x, y, t)
            err = _err2(x, y, *quantize_rank_one(x, y, t))
            assert err == pytest.approx(best, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(("t", "m", "n"), [(3, 2, 2), (6, 4, 3), (8, 3, 7)])
def test_dense_lambda_grid_never_better(t, m, n):
    rng = np.random.default_rng(t)
    lam = np.linspace(1, 2, 20001)[:-1]
    for _ in range(3):
        x, y = rng.standard_normal(m), rng.standard_normal(n)
        xh, yh = quantize_rank_one(x, y, t)
        Xh = round_to_format(lam[:, None] * x, t)
        mu = (Xh @ x) / np.sum(Xh * Xh, axis=1)
        Yh = round_to_format(mu[:, None] * y, t)
        grid = _batch_err2(np.tile(x, (lam.size, 1)), np.tile(y, (lam.size, 1)), Xh, Yh)
        tol = 1e-13 * (x @ x) * (y @ y)
        assert _err2(x, y, xh, yh) <= min(grid) * (1 + 1e-9) + tol


@pytest.mark.parametrize("fmt", [3, 6, 10, "float16", "bfloat16", "float8_e4m3"])
@pytest.mark.parametrize("method", ["exact", "dfo"])
def test_never_worse_than_rtn_and_representable(fmt, method):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 3)) * np.exp(rng.uniform(-2, 2, (200, 1)))
    Y = rng.standard_normal((200, 5))
    Xh, Yh = quantize_rank_one(X, Y, fmt, method=method)
    for V in (Xh, Yh):
        np.testing.assert_array_equal(round_to_format(V, fmt), V)
    err = _batch_err2(X, Y, Xh, Yh)
    rtn = _batch_err2(X, Y, round_to_format(X, fmt), round_to_format(Y, fmt))
    if method == "exact":
        assert np.all(err <= rtn * (1 + 1e-9))
        assert np.mean(err) < 0.9 * np.mean(rtn)
    else:
        Xe, Ye = quantize_rank_one(X, Y, fmt)
        exact = _batch_err2(X, Y, Xe, Ye)
        assert np.all(exact <= err * (1 + 1e-9))


_finite = st.floats(-1e3, 1e3).filter(lambda v: v == 0 or abs(v) > 1e-6)


@given(
    arrays(np.float64, st.integers(1, 4), elements=_finite),
    arrays(np.float64, st.integers(1, 4), elements=_finite),
    st.integers(2, 6),
)
def test_exact_beats_every_other_method(x, y, t):
    xh, yh = quantize_rank_one(x, y, t)
    np.testing.assert_array_equal(round_to_format(xh, t), xh)
    np.testing.assert_array_equal(round_to_format(yh, t), yh)
    err = _err2(x, y, xh, yh)
    tol = 1e-13 * (x @ x) * (y @ y)
    for method in ("rtn", "dfo"):
        assert err <= _err2(x, y, *quantize_rank_one(x, y, t, method)) + tol


def test_batch_equals_one_by_one():
    rng = np.random.default_rng(3)
    X, Y = rng.standard_normal((6, 3)), rng.standard_normal((6, 2))
    Xh, Yh = quantize_rank_one(X, Y, 5)
    for k in range(6):
        xh, yh = quantize_rank_one(X[k], Y[k], 5)
        np.testing.assert_array_equal(xh, Xh[k])
        np.testing.assert_array_equal(yh, Yh[k])


@pytest.mark.parametrize(("m", "n"), [(3, 5), (5, 3)])
def test_invariance_under_powers_of_two_and_signs(m, n):
    rng = np.random.default_rng(m)
    x, y = rng.standard_normal(m), rng.standard_normal(n)
    xh, yh = quantize_rank_one(x, y, 6)
    xh2, yh2 = quantize_rank_one(4 * x, y / 8, 6)
    np.testing.assert_array_equal(np.outer(xh2, yh2), np.outer(xh, yh) / 2)
    sx, sy = rng.choice([-1.0, 1.0], m), rng.choice([-1.0, 1.0], n)
    xh3, yh3 = quantize_rank_one(sx * x, sy * y, 6)
    np.testing.assert_array_equal(np.outer(xh3, yh3), np.outer(sx * xh, sy * yh))


def test_zeros():
    x, y = np.array([0.0, 1.3, 0.0]), np.array([0.7, -2.1])
    xh, yh = quantize_rank_one(x, y, 3)
    assert xh[0] == xh[2] == 0
    assert _err2(x, y, xh, yh) <= _err2(x, y, *quantize_rank_one(x, y, 3, "rtn"))
    xh, yh = quantize_rank_one(np.zeros(3), y, 3)
    np.testing.assert_array_equal(np.outer(xh, yh), 0)
    xh, yh = quantize_rank_one(x, np.zeros(2), 3)
    np.testing.assert_array_equal(np.outer(xh, yh), 0)


def test_bounded_format_near_its_limits():
    # entries that overflow/underflow float8 e4m3 when rounded directly
    x = np.array([1000.0, 3.0, 1e-3])
    y = np.array([1e-3, 2e-3])
    xh, yh = quantize_rank_one(x, y, "float8_e4m3")
    xr, yr = round_to_format(x, "float8_e4m3"), round_to_format(y, "float8_e4m3")
    assert np.all(np.isfinite(xh)) and np.all(np.isfinite(yh))
    np.testing.assert_array_equal(round_to_format(xh, "float8_e4m3"), xh)
    assert _err2(x, y, xh, yh) < 0.01 * _err2(x, y, xr, yr)


def _disjoint_pair(rng):
    """W (12 x 6), H (6 x 8): disjoint rank-one supports of unequal sizes."""
    W, H = np.zeros((12, 6)), np.zeros((6, 8))
    rows = [[0, 1], [2, 3, 4], [5], [6, 7], [8, 9, 10], [11]]
    cols = [[0, 1, 2], [0, 1], [3, 4, 5, 6], [7], [2, 3], [0, 1, 2, 3, 4, 5, 6, 7]]
    for k in range(6):
        W[rows[k], k] = rng.standard_normal(len(rows[k]))
        H[k, cols[k]] = rng.standard_normal(len(cols[k]))
    return W, H, rows, cols


def test_two_factor_error_is_sum_of_optimal_term_errors():
    W, H, rows, cols = _disjoint_pair(np.random.default_rng(0))
    Wq, Hq = quantize_factors(W, H, 4)
    total = float(np.sum((W @ H - Wq @ Hq) ** 2))
    terms = 0.0
    for k in range(6):
        x, y = W[rows[k], k], H[k, cols[k]]
        terms += _err2(x, y, *quantize_rank_one(x, y, 4))
        np.testing.assert_array_equal(np.flatnonzero(Wq[:, k]), rows[k])
    assert total == pytest.approx(terms, rel=1e-10)
    rtn = np.sum((W @ H - round_to_format(W, 4) @ round_to_format(H, 4)) ** 2)
    assert total < rtn
    Wp, Hp = quantize_factors(W, H, 4, n_jobs=2)
    np.testing.assert_array_equal(Wp, Wq)
    np.testing.assert_array_equal(Hp, Hq)


def _dense_terms_error(K1, K2, Q1, Q2, t):
    """Per-term optimal errors of the dense pair, and the quantized error."""
    A, B = ks_to_dense(K1), ks_to_dense(K2)
    best = sum(
        _err2(
            A[:, k][A[:, k] != 0],
            B[k][B[k] != 0],
            *quantize_rank_one(A[:, k][A[:, k] != 0], B[k][B[k] != 0], t),
        )
        for k in range(A.shape[1])
    )
    got = float(np.sum((A @ B - ks_to_dense(Q1) @ ks_to_dense(Q2)) ** 2))
    return best, got


@pytest.mark.parametrize(("shape", "n_factors"), [(16, 2), ((8, 32), 2), (64, 2)])
def test_pairwise_on_two_factors_is_optimal(shape, n_factors):
    B = random_butterfly(shape, n_factors=n_factors, random_state=1)
    Q = quantize_butterfly(B, 5)
    best, got = _dense_terms_error(*B.factors, *Q.factors, 5)
    assert got == pytest.approx(best, rel=1e-10)
    assert Q.shape == B.shape


@pytest.mark.parametrize("heuristic", ["rtn", "pairwise", "left-to-right"])
@pytest.mark.parametrize("fmt", [4, 9, "float8_e5m2", "bfloat16"])
def test_butterfly_values_are_representable(heuristic, fmt):
    rows = np.random.default_rng(0).permutation(32)
    B = random_butterfly(
        32, random_state=0, permutation=np.arange(32)[::-1], row_permutation=rows
    )
    Q = quantize_butterfly(B, fmt, heuristic=heuristic)
    assert [K.shape for K in Q.factors] == [K.shape for K in B.factors]
    np.testing.assert_array_equal(Q.perm, B.perm)
    np.testing.assert_array_equal(Q.row_perm, B.row_perm)
    # The permutations are applied around the quantized factors as around B's.
    plain = ButterflyMatrix(Q.factors).toarray()
    np.testing.assert_array_equal(Q.toarray()[rows][:, B.perm], plain)
    for K in Q.factors:
        np.testing.assert_array_equal(round_to_format(K, fmt), K)


@pytest.mark.parametrize("N", [16, 64])
def test_heuristics_beat_rtn_on_random_butterflies(N):
    t, errors = 5, {"rtn": [], "pairwise": [], "left-to-right": []}
    for seed in range(3):
        B = random_butterfly(N, random_state=seed)
        A = B.toarray()
        for h in errors:
            Q = quantize_butterfly(B, t, heuristic=h)
            errors[h].append(np.linalg.norm(A - Q.toarray()) / np.linalg.norm(A))
    # Gribonval et al., hal-04125381 (N = 64, t = 5): 3.3e-2 / 9.2e-3 / 6.7e-3
    assert np.mean(errors["pairwise"]) < 0.6 * np.mean(errors["rtn"])
    assert np.mean(errors["left-to-right"]) < 0.6 * np.mean(errors["rtn"])


def test_left_to_right_carries_the_scalings():
    # with many bits the result must reproduce B: a wrong row of the next
    # factor scaled by mu would show as an O(1) error
    B = random_butterfly((16, 32), random_state=0)
    A = B.toarray()
    Q = quantize_butterfly(B, 30, heuristic="left-to-right", method="dfo")
    assert np.linalg.norm(A - Q.toarray()) < 1e-7 * np.linalg.norm(A)
    Q = quantize_butterfly(B, 12, heuristic="left-to-right")
    assert np.linalg.norm(A - Q.toarray()) < 2e-4 * np.linalg.norm(A)


def test_block_rank_two_never_worse_than_rtn():
    B = random_butterfly(32, n_factors=3, rank=2, random_state=0)
    A = B.toarray()
    for fmt in (3, 6):
        Q = quantize_butterfly(B, fmt)
        R = quantize_butterfly(B, fmt, heuristic="rtn")
        for K in Q.factors:
            np.testing.assert_array_equal(round_to_format(K, fmt), K)
        # only the pair (F1, F2) is quantized jointly; F3 is rounded in both
        pair = fuse_values(*B.factors[:2])
        pq, pr = fuse_values(*Q.factors[:2]), fuse_values(*R.factors[:2])
        assert np.sum((pair - pq) ** 2) <= np.sum((pair - pr) ** 2)
        assert np.linalg.norm(A - Q.toarray()) < np.linalg.norm(A - R.toarray())


def test_float32_butterfly_keeps_dtype_and_jobs_agree():
    B = random_butterfly(32, dtype=np.float32, random_state=0)
    Q = quantize_butterfly(B, "bfloat16", n_jobs=2)
    assert Q.dtype == np.float32
    np.testing.assert_array_equal(
        Q.toarray(), quantize_butterfly(B, "bfloat16").toarray()
    )


def test_complex_input():
    x = np.array([1.0 + 1j, 2.0])
    with pytest.raises(NotImplementedError, match="complex"):
        quantize_rank_one(x, np.ones(2), 4)
    B = random_butterfly(8, dtype=np.complex128, random_state=0)
    with pytest.raises(ComplexQuantizationError, match="CROQuant"):
        quantize_butterfly(B, 4)
    with pytest.raises(ValueError, match="complex"):
        quantize_factors(np.eye(2) * 1j, np.eye(2), 4)
    Q = quantize_butterfly(B, 4, heuristic="rtn")
    for K, Kq in zip(B.factors, Q.factors):
        np.testing.assert_array_equal(Kq, round_to_format(K, 4))


def test_bad_input():
    x, y = np.ones(3), np.ones(2)
    with pytest.raises(ValueError, match="t must be"):
        quantize_rank_one(x, y, 0)
    with pytest.raises(ValueError, match="unknown format name"):
        quantize_rank_one(x, y, "float12")
    with pytest.raises(ValueError, match="t must be <= 20"):
        quantize_rank_one(x, y, 21)
    with pytest.raises(ValueError, match="method must be one of"):
        quantize_rank_one(x, y, 4, method="grid")
    with pytest.raises(ValueError, match="NaN"):
        quantize_rank_one(np.array([1.0, np.nan]), y, 4)
    with pytest.raises(ValueError, match="same number of terms"):
        quantize_rank_one(np.ones((3, 2)), np.ones((2, 2)), 4)
    with pytest.raises(ValueError, match="both be 1-D"):
        quantize_rank_one(np.ones((3, 2)), y, 4)
    with pytest.raises(ValueError, match="empty"):
        quantize_rank_one(np.ones(0), y, 4)
    with pytest.raises(ValueError, match="chainable"):
        quantize_factors(np.ones((3, 2)), np.ones((3, 4)), 4)
    B = random_butterfly(8, random_state=0)
    with pytest.raises(ValueError, match="heuristic must be one of"):
        quantize_butterfly(B, 4, heuristic="right-to-left")
    with pytest.raises(TypeError, match="ButterflyMatrix"):
        quantize_butterfly(B.toarray(), 4)


def test_inputs_not_modified():
    B = random_butterfly(16, random_state=0)
    before = [K.copy() for K in B.factors]
    quantize_butterfly(B, 4, heuristic="left-to-right")
    for K, K0 in zip(B.factors, before):
        np.testing.assert_array_equal(K, K0)
    x, y = np.array([1.3, 2.2]), np.array([0.3])
    quantize_rank_one(x, y, 3)
    np.testing.assert_array_equal(x, [1.3, 2.2])
    assert isinstance(quantize_butterfly(B, 4), ButterflyMatrix)


# ----------------------------------------------------------------------------
# Exactness in every format, against exhaustive search over the format's grid
# ----------------------------------------------------------------------------

_FORMATS = [
    "float8_e4m3",
    "float8_e5m2",
    "float16",
    "bfloat16",
    2,
    4,
    8,
    FloatFormat(4, -6, 8, subnormals=False),
    FloatFormat(3, -2, 3),
    FloatFormat(6, -4, 4, max_value=24.0),
]


@pytest.mark.parametrize("fmt", _FORMATS, ids=str)
def test_exact_equals_exhaustive_search(fmt):
    # random and adversarial cases: zeros, huge dynamic range, near overflow,
    # subnormal range, exact ties, float64 extremes (see adversarial_cases)
    for x, y in adversarial_cases(fmt, 24, random_state=3):
        xh, yh = quantize_rank_one(x, y, fmt)
        assert np.all(np.isfinite(xh)) and np.all(np.isfinite(yh))
        np.testing.assert_array_equal(round_to_format(xh, fmt), xh)
        np.testing.assert_array_equal(round_to_format(yh, fmt), yh)
        scale = rank_one_error(x, y, 0 * x, y)  # ||x||^2 ||y||^2
        best = exhaustive_rank_one(x, y, fmt)
        assert rank_one_error(x, y, xh, yh) <= best + 1e-13 * scale, (x, y)


@pytest.mark.parametrize("fmt", _FORMATS[:4] + _FORMATS[7:], ids=str)
def test_carried_side_equals_exhaustive_search(fmt):
    # left-to-right: x alone quantized, mu * y carried exactly
    for x, y in adversarial_cases(fmt, 16, random_state=4):
        Xh, mu = quantize_left_terms(x[None], y[None], check_format(fmt), "exact")
        np.testing.assert_array_equal(round_to_format(Xh, fmt), Xh)
        assert np.isfinite(mu[0])
        err = rank_one_error(x, y, Xh[0], mu[0] * y)
        best = exhaustive_rank_one(x, y, fmt, carried=True)
        assert err <= best + 1e-13 * rank_one_error(x, y, 0 * x, y), (x, y)


def test_bounded_reproducers():
    # a power-of-two rescaling of the unbounded optimum is exact here
    x, y = np.array([1.0]), np.array([1.0, 2.0**-10])
    xh, yh = quantize_rank_one(x, y, "float8_e4m3")
    assert rank_one_error(x, y, xh, yh) == 0
    xr, yr = round_to_format(x, "float8_e4m3"), round_to_format(y, "float8_e4m3")
    assert rank_one_error(x, y, xr, yr) == pytest.approx(2.0**-20)
    # errors far below 1e-8 ||x|| ||y||: evaluated entrywise, not expanded
    x, y = np.array([1.0]), np.array([1.0, 3e-7])
    xh, yh = quantize_rank_one(x, y, "float16")
    err = np.linalg.norm(np.outer(x, y) - np.outer(xh, yh))
    assert err == pytest.approx(1.1413e-10, rel=1e-4)
    # the exhaustive optimum: every x_hat in float16, y_hat = fl(mu y)
    X = format_values("float16")[:, None]
    X = X[X[:, 0] != 0]
    Yh = round_to_format((X @ x / np.sum(X * X, 1))[:, None] * y, "float16")
    errors = np.linalg.norm(
        X[:, :, None] * Yh[:, None, :] - np.outer(x, y), axis=(1, 2)
    )
    assert err == pytest.approx(errors.min(), rel=1e-9)
    xr, yr = round_to_format(x, "float16"), round_to_format(y, "float16")
    assert np.linalg.norm(np.outer(x, y) - np.outer(xr, yr)) > 10 * err


@pytest.mark.parametrize("fmt", [8, 16, "bfloat16", "float8_e4m3"])
def test_no_overflow_near_the_largest_float64(fmt):
    rng = np.random.default_rng(5)
    top = np.finfo(np.float64).max
    for x, y in [
        (np.array([top, -top / 3]), np.array([0.7, 1.1])),
        (np.array([top]), np.array([1e-300, 3e-301])),
        (rng.uniform(1e307, top, 3), rng.uniform(1e-308, 1e-306, 2)),
        (rng.uniform(1e-308, 1e-306, 2), rng.uniform(1e307, top, 3)),
    ]:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            xh, yh = quantize_rank_one(x, y, fmt)
        assert np.all(np.isfinite(xh)) and np.all(np.isfinite(yh))
        np.testing.assert_array_equal(round_to_format(xh, fmt), xh)
        np.testing.assert_array_equal(round_to_format(yh, fmt), yh)
        f = check_format(fmt)
        small = f.t <= 4 or (not f.bounded and f.t <= 8)
        if len(x) == 1 or (len(x) == 2 and small):  # a short exhaustive search
            scale = rank_one_error(x, y, 0 * x, y)
            best = exhaustive_rank_one(x, y, fmt)
            assert rank_one_error(x, y, xh, yh) <= best + 1e-13 * scale


def test_overflow_error_when_no_float64_pair_exists():
    # x y^T ~ 1e616: in an unbounded format both sides round up to 2**1024
    top = np.finfo(np.float64).max
    x, y = np.array([top]), np.array([top, top / 5])
    with pytest.raises(OverflowError, match=r"does not fit float64 \(max \|x\|"):
        quantize_rank_one(x, y, 8)
    # a bounded format saturates: always finite (here every pair is as bad
    # as zero, to float64 accuracy)
    xh, yh = quantize_rank_one(x, y, "float8_e4m3")
    assert np.all(np.abs(xh) <= 448) and np.all(np.abs(yh) <= 448)


def test_pairwise_is_optimal_in_a_bounded_format():
    # float8 e4m3 with values around 0.01: every pair term is the optimum
    B = random_butterfly(16, random_state=0)  # 2 x 2 blocks: terms of length 2
    B = ButterflyMatrix([0.1 * K for K in B.factors[:2]])
    Q = quantize_butterfly(B, "float8_e4m3")
    A1, A2 = (ks_to_dense(K) for K in B.factors)
    best = 0.0
    for k in range(A1.shape[1]):
        x, y = A1[:, k][A1[:, k] != 0], A2[k][A2[k] != 0]
        best += exhaustive_rank_one(x, y, "float8_e4m3")
    got = np.sum((A1 @ A2 - ks_to_dense(Q.factors[0]) @ ks_to_dense(Q.factors[1])) ** 2)
    assert got == pytest.approx(best, rel=1e-9)
    R = quantize_butterfly(B, "float8_e4m3", heuristic="rtn")
    assert got < np.sum((B.toarray() - R.toarray()) ** 2)


def test_format_too_large_to_sweep_warns_and_stays_representable():
    fmt = FloatFormat(16, -200, 200)  # 13 M positive values: not swept
    x, y = np.array([1e60, 3e-61]), np.array([2e59, 1e-62])  # range fills it
    with pytest.warns(ApproximateQuantizationWarning, match="approximately"):
        xh, yh = quantize_rank_one(x, y, fmt)
    np.testing.assert_array_equal(round_to_format(xh, fmt), xh)
    np.testing.assert_array_equal(round_to_format(yh, fmt), yh)
    rtn = rank_one_error(x, y, round_to_format(x, fmt), round_to_format(y, fmt))
    assert rank_one_error(x, y, xh, yh) <= rtn
    # a term with an admissible rescaling is still exact: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quantize_rank_one(np.array([1.0, 0.3]), np.array([0.7, 0.2]), fmt)


# ----------------------------------------------------------------------------
# Products of general sparse factors
# ----------------------------------------------------------------------------


def _sparse_factor(n, k, rng):
    """A random n x n factor: k random permutation patterns, Gaussian values."""
    M = np.zeros((n, n))
    for _ in range(k):
        M[np.arange(n), rng.permutation(n)] = rng.standard_normal(n)
    return sp.csr_array(M)


def _dense_product(factors):
    return reduce(np.matmul, [F.toarray() for F in factors])


def _relative_error(factors, quantized):
    A = _dense_product(factors)
    return np.linalg.norm(A - _dense_product(quantized)) / np.linalg.norm(A)


def _scaled_hadamard(N, rng):
    """Butterfly factors of hadamard(N) with random diagonal scalings between.

    S_k = D_{k-1}^{-1} H_k D_k: the product is hadamard(N) exactly, the values
    are not representable in any small format.
    """
    J = N.bit_length() - 1
    H2 = np.array([[1.0, 1.0], [1.0, -1.0]])
    d = [np.ones(N)] + [rng.uniform(0.5, 2.0, N) for _ in range(J - 1)] + [np.ones(N)]
    factors = []
    for k in range(J):
        H = np.kron(np.kron(np.eye(2**k), H2), np.eye(N // 2 ** (k + 1)))
        factors.append(sp.csr_array(H * d[k + 1] / d[k][:, None]))
    return factors


@pytest.mark.parametrize("fmt", [3, 5, "float8_e4m3", "bfloat16"])
def test_sparse_left_to_right_beats_rtn_on_random_products(fmt):
    fmt = check_format(fmt)
    for seed, (k, J) in enumerate([(2, 3), (2, 4), (3, 3), (4, 4)]):
        rng = np.random.default_rng(seed)
        factors = [_sparse_factor(32, k, rng) for _ in range(J)]
        err = {
            h: _relative_error(factors, quantize_sparse_factors(factors, fmt, h))
            for h in ("rtn", "pairwise", "left-to-right")
        }
        # measured: 0.2-0.9 times round-to-nearest's (20 seeds per case)
        assert err["left-to-right"] < err["rtn"], (seed, err)
        assert err["pairwise"] < err["rtn"], (seed, err)


@pytest.mark.parametrize("fmt", [3, 4, "float8_e5m2", "bfloat16"])
def test_sparse_left_to_right_on_scaled_hadamard(fmt):
    fmt = check_format(fmt)
    for seed in range(3):
        factors = _scaled_hadamard(16, np.random.default_rng(seed))
        np.testing.assert_allclose(_dense_product(factors), hadamard(16), atol=1e-12)
        err = {
            h: _relative_error(factors, quantize_sparse_factors(factors, fmt, h))
            for h in ("rtn", "pairwise", "left-to-right")
        }
        # measured at N = 16 and 64, 5 seeds: 0.06-0.2 times rtn's
        assert err["left-to-right"] < 0.5 * err["rtn"], (seed, err)
        # The first step is exact: its columns are scaled sign patterns and
        # the rows of the remaining product are orthogonal.
        ops = _SparseOps(fmt, "exact", None)
        S1, mu = ops.left(factors[0])
        step = (factors[0].toarray() - S1.toarray() * mu) @ _dense_product(factors[1:])
        assert np.linalg.norm(step) < 1e-13


def _carried_error(x, y, xh):
    mu = (x @ xh) / (xh @ xh) if np.any(xh) else 0.0
    return rank_one_error(x, y, xh, mu * y), mu


@pytest.mark.parametrize("fmt", [3, "float8_e4m3"])
def test_sparse_left_to_right_steps_equal_exhaustive_search(fmt):
    # Step k: every column of S_k (scaled by the previous step's mu) is the
    # best x_hat against its row of S_{k+1} ... S_J carried exactly; the
    # last pair: every rank-one term is the best pair.
    rng = np.random.default_rng(1)
    factors = [_sparse_factor(4, 2, rng) for _ in range(4)]
    Q = quantize_sparse_factors(factors, fmt, "left-to-right")
    current = [F.toarray() for F in factors]
    for k in range(len(factors)):
        S, Sh = current[k], Q[k].toarray()
        assert not Sh[S == 0].any()
        last = k == len(factors) - 1
        if last:
            break
        R = _dense_product(factors[k + 1 :])
        mu = np.ones(S.shape[1])
        for j in range(S.shape[1]):
            x, xh = S[S[:, j] != 0, j], Sh[S[:, j] != 0, j]
            if k == len(factors) - 2:  # the last pair, both sides quantized
                y = current[k + 1][j][current[k + 1][j] != 0]
                yh = Q[k + 1].toarray()[j][current[k + 1][j] != 0]
                err, best = rank_one_error(x, y, xh, yh), exhaustive_rank_one(x, y, fmt)
            else:
                y = R[j][R[j] != 0]
                err, mu[j] = _carried_error(x, y, xh)
                best = exhaustive_rank_one(x, y, fmt, carried=True)
            assert err <= best + 1e-13 * rank_one_error(x, y, 0 * x, y), (k, j)
        if k < len(factors) - 2:
            current[k + 1] = mu[:, None] * current[k + 1]


@pytest.mark.parametrize("heuristic", ["rtn", "pairwise", "left-to-right"])
@pytest.mark.parametrize("fmt", [4, "float8_e5m2", "bfloat16"])
def test_sparse_values_are_representable_and_supports_kept(heuristic, fmt):
    rng = np.random.default_rng(2)
    shapes = [(8, 12), (12, 6), (6, 10)]  # rectangular, chainable
    factors = [
        sp.csr_array(sp.random(*s, density=0.4, random_state=rng)) for s in shapes
    ]
    Q = quantize_sparse_factors([F.astype(np.float32) for F in factors], fmt, heuristic)
    for F, G in zip(factors, Q):
        assert G.shape == F.shape and sp.issparse(G)
        assert not G.toarray()[F.toarray() == 0].any()
        np.testing.assert_array_equal(round_to_format(G.data, fmt), G.data)
    assert Q[0].dtype == output_dtype(np.float32, check_format(fmt))


def test_sparse_heuristic_and_method_names():
    factors = [_sparse_factor(8, 2, np.random.default_rng(3)) for _ in range(3)]
    with pytest.raises(ValueError, match="heuristic must be one of"):
        quantize_sparse_factors(factors, 4, "greedy")
    with pytest.raises(ValueError, match="method must be one of"):
        quantize_sparse_factors(factors, 4, method="best")
