"""Fixed-support factorization: analysis, exact solvers, ALS (arXiv:2112.00386)."""

import warnings

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning

from skbutterfly import (
    architecture,
    butterfly_support,
    fuse_patterns,
    lower_triangular_support,
    upper_triangular_support,
)
from skbutterfly._fsmf import fixed_support_factorize as fsmf
from skbutterfly._fsmf_als import _als, _random_start
from skbutterfly._support_analysis import analyze_supports
from skbutterfly.datasets import (
    hadamard,
    lu_supports,
    rank_one_completion_instance,
    spurious_valley_instance,
)


def _draw(rng, shape, dtype):
    A = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        A = A + 1j * rng.standard_normal(shape)
    return A.astype(dtype)


def _assert_feasible(W, H, S_W, S_H):
    assert np.all(W[~S_W] == 0)
    assert np.all(H[~S_H] == 0)
    assert np.isfinite(W).all() and np.isfinite(H).all()


def _tail(block, p):
    """Squared error of the best rank-p approximation (dense SVD reference)."""
    s = np.linalg.svd(block, compute_uv=False)
    return float(np.sum(s[p:] ** 2))


# ----------------------------------------------------------------------------
# Random tractable instances with a known optimum
# ----------------------------------------------------------------------------


def _disjoint_instance(rng, m, n, n_row_groups, n_col_groups, dtype):
    """Rectangles (row group a) x (col group b): distinct pairs are disjoint.

    Returns A, S_W, S_H and the optimal squared error computed class by class
    with dense SVDs.
    """
    row_group = rng.integers(-1, n_row_groups, size=m)
    col_group = rng.integers(-1, n_col_groups, size=n)
    pairs = [(a, b) for a in range(n_row_groups) for b in range(n_col_groups)]
    chosen = [pairs[i] for i in rng.permutation(len(pairs))[: max(1, len(pairs) // 2)]]
    sizes = rng.integers(1, 4, size=len(chosen))
    columns = np.repeat(np.arange(len(chosen)), sizes)
    columns = columns[rng.permutation(columns.size)]
    S_W = np.stack([row_group == chosen[c][0] for c in columns], axis=1)
    S_H = np.stack([col_group == chosen[c][1] for c in columns], axis=0)
    A = _draw(rng, (m, n), dtype)
    covered = np.zeros((m, n), dtype=bool)
    optimum = 0.0
    for c, (a, b) in enumerate(chosen):
        rows, cols = row_group == a, col_group == b
        covered |= rows[:, None] & cols[None, :]
        if rows.any() and cols.any():
            optimum += _tail(A[np.ix_(rows, cols)], sizes[c])
    optimum += float(np.sum(np.abs(A[~covered]) ** 2))
    return A, S_W, S_H, optimum


@settings(max_examples=25, deadline=None)
@given(
    m=st.integers(1, 9),
    n=st.integers(1, 9),
    groups=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    dtype=st.sampled_from([np.float64, np.complex128]),
    seed=st.integers(0, 2**16),
)
def test_disjoint_instances_reach_closed_form_optimum(m, n, groups, dtype, seed):
    rng = np.random.default_rng(seed)
    A, S_W, S_H, optimum = _disjoint_instance(rng, m, n, *groups, dtype)
    report = analyze_supports(S_W, S_H)
    assert report.condition == "disjoint"
    W, H, info = fsmf(A, S_W, S_H)
    _assert_feasible(W, H, S_W, S_H)
    assert info.method == "exact" and info.certified_optimal
    scale = max(1.0, float(np.linalg.norm(A)) ** 2)
    assert abs(info.error**2 - optimum) <= 1e-9 * scale
    assert abs(info.optimal_error**2 - optimum) <= 1e-9 * scale
    assert abs(float(np.linalg.norm(A - W @ H)) - info.error) <= 1e-12 * scale
    # Alternating least squares from random starts never beats the optimum.
    for start in range(3):
        W0, H0 = _random_start(A, S_W, S_H, np.random.default_rng(start))
        W1, H1, loss, *_ = _als(A, S_W, S_H, W0, H0, 50, 1e-12)
        _assert_feasible(W1, H1, S_W, S_H)
        assert loss >= optimum - 1e-9 * scale


def _complete_class_instance(rng, sizes, dtype):
    """Two incomplete classes cut along full rows/columns by complete classes.

    P1 = R1 x C1 and P2 = R2 x C2 (disjoint, ranks p1 and p2); the complete
    class Q = F x (C1 u C2 u X) takes full rows F of both (|Q| = |F|); the
    complete class G' = (R1 u E) x G takes full columns G of P1 (|G'| = |G|).
    Rows and columns are shuffled. The optimum is known in closed form.
    """
    r1, r2, c1, c2, f1, f2, g, x, e, p1, p2 = sizes
    m, n = r1 + r2 + e + 1, c1 + c2 + x + 1
    R1, R2 = np.arange(r1), r1 + np.arange(r2)
    E = r1 + r2 + np.arange(e)
    C1, C2 = np.arange(c1), c1 + np.arange(c2)
    X = c1 + c2 + np.arange(x)
    F = np.r_[R1[:f1], R2[:f2]]
    G = C1[c1 - g :]
    row_perm, col_perm = rng.permutation(m), rng.permutation(n)

    def rect(rows, cols):
        Rm, Cm = np.zeros(m, bool), np.zeros(n, bool)
        Rm[row_perm[rows]], Cm[col_perm[cols]] = True, True
        return Rm, Cm

    classes = [
        (*rect(R1, C1), p1),
        (*rect(R2, C2), p2),
        (*rect(F, np.r_[C1, C2, X]), max(1, F.size)),
        (*rect(np.r_[R1, E], G), max(1, G.size)),
    ]
    columns = np.repeat(np.arange(4), [c[2] for c in classes])
    columns = columns[rng.permutation(columns.size)]
    S_W = np.stack([classes[c][0] for c in columns], axis=1)
    S_H = np.stack([classes[c][1] for c in columns], axis=0)
    A = _draw(rng, (m, n), dtype)
    covered = np.zeros((m, n), dtype=bool)
    for rows, cols, _ in classes:
        covered |= rows[:, None] & cols[None, :]
    optimum = float(np.sum(np.abs(A[~covered]) ** 2))
    P1 = A[np.ix_(row_perm[np.setdiff1d(R1, F)], col_perm[np.setdiff1d(C1, G)])]
    P2 = A[np.ix_(row_perm[np.setdiff1d(R2, F)], col_perm[C2])]
    for block, p in ((P1, p1), (P2, p2)):
        if block.size:
            optimum += _tail(block, p)
    return A, S_W, S_H, optimum


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.tuples(
        st.integers(2, 4),  # r1
        st.integers(2, 4),  # r2
        st.integers(3, 5),  # c1
        st.integers(2, 4),  # c2
        st.integers(0, 1),  # f1
        st.integers(0, 1),  # f2
        st.integers(0, 2),  # g
        st.integers(0, 2),  # x
        st.integers(0, 2),  # e
        st.integers(1, 2),  # p1
        st.integers(1, 2),  # p2
    ),
    dtype=st.sampled_from([np.float64, np.complex128, np.float32]),
    seed=st.integers(0, 2**16),
)
def test_complete_class_instances_reach_closed_form_optimum(sizes, dtype, seed):
    rng = np.random.default_rng(seed)
    A, S_W, S_H, optimum = _complete_class_instance(rng, sizes, dtype)
    report = analyze_supports(S_W, S_H)
    assert report.tractable
    W, H, info = fsmf(A, S_W, S_H)
    assert W.dtype == A.dtype and H.dtype == A.dtype
    _assert_feasible(W, H, S_W, S_H)
    assert info.certified_optimal
    rtol = 1e-4 if dtype == np.float32 else 1e-9
    scale = float(np.linalg.norm(A)) ** 2
    assert abs(info.error**2 - optimum) <= rtol * scale
    assert abs(info.optimal_error**2 - optimum) <= rtol * scale
    if dtype != np.float32:
        for start in range(3):
            W0, H0 = _random_start(A, S_W, S_H, np.random.default_rng(start))
            loss = _als(A, S_W, S_H, W0, H0, 50, 1e-12)[2]
            assert loss >= optimum - 1e-9 * scale


@settings(max_examples=60, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4)),
    density=st.floats(0.2, 0.9),
    seed=st.integers(0, 2**16),
)
def test_random_masks_accepted_instances_are_solved_optimally(shape, density, seed):
    # Soundness of the checker on arbitrary masks: whenever it accepts, the
    # exact construction attains the claimed optimum and ALS never beats it.
    m, r, n = shape
    rng = np.random.default_rng(seed)
    S_W = rng.random((m, r)) < density
    S_H = rng.random((r, n)) < density
    A = rng.standard_normal((m, n))
    W, H, info = fsmf(A, S_W, S_H, max_iter=30, n_restarts=2, random_state=0)
    _assert_feasible(W, H, S_W, S_H)
    assert info.certified_optimal == analyze_supports(S_W, S_H).tractable
    if not info.certified_optimal:
        return
    scale = max(1.0, float(np.sum(A**2)))
    assert abs(info.error**2 - info.optimal_error**2) <= 1e-10 * scale
    for start in range(4):
        W0, H0 = _random_start(A, S_W, S_H, np.random.default_rng(start))
        loss = _als(A, S_W, S_H, W0, H0, 100, 1e-13)[2]
        assert loss >= info.error**2 - 1e-9 * scale


def test_complete_classes_overlapping_condition_is_reported():
    rng = np.random.default_rng(0)
    sizes = (3, 3, 4, 3, 1, 1, 2, 1, 1, 1, 1)
    A, S_W, S_H, _ = _complete_class_instance(rng, sizes, np.float64)
    report = analyze_supports(S_W, S_H)
    assert report.condition == "complete-classes"
    assert report.identifiable is False  # the complete class F has 2 columns
    assert "condition (C) holds" in report.reason


# ----------------------------------------------------------------------------
# Analysis
# ----------------------------------------------------------------------------


def test_classes_group_identical_rank_one_supports():
    S_W = np.array([[1, 1, 0, 1], [1, 1, 0, 0], [0, 0, 1, 0]], dtype=bool)
    S_H = np.array([[1, 0], [1, 0], [0, 1], [0, 0]], dtype=bool)
    report = analyze_supports(S_W, S_H)
    assert [list(P) for P in report.classes] == [[0, 1], [2]]
    assert report.labels.tolist() == [0, 0, 1, -1]  # column 3 has no columns
    np.testing.assert_array_equal(report.class_rows, [[1, 1, 0], [0, 0, 1]])
    np.testing.assert_array_equal(report.class_cols, [[1, 0], [0, 1]])
    # |P| = 2 >= min(2, 1): complete; |P| = 1 >= min(1, 1): complete.
    np.testing.assert_array_equal(report.complete, [True, True])
    assert report.class_sizes.tolist() == [2, 1]
    assert report.condition == "disjoint"
    assert report.identifiable is False


def test_complete_flag_uses_min_of_rectangle_sides():
    S_W = np.ones((3, 2), dtype=bool)
    S_H = np.ones((2, 4), dtype=bool)
    assert not analyze_supports(S_W, S_H).complete[0]
    assert analyze_supports(np.ones((2, 2), bool), S_H[:, :4]).complete[0]


def test_overlapping_incomplete_classes_name_both_classes():
    S_W = np.ones((3, 2), dtype=bool)
    S_H = np.array([[1, 1, 1, 0], [0, 1, 1, 1]], dtype=bool)
    report = analyze_supports(S_W, S_H)
    assert not report.tractable and report.condition is None
    assert "class {0} and class {1}" in report.reason
    assert "(C1)" in report.reason
    with pytest.raises(ValueError, match=r"not tractable.*class \{0\}"):
        fsmf(np.ones((3, 4)), S_W, S_H, method="exact")


def test_lu_is_not_tractable_and_names_the_cutting_class():
    report = analyze_supports(*lu_supports(3))
    assert not report.tractable
    assert "class {0}" in report.reason and "complete class {2}" in report.reason
    assert "(C2)" in report.reason
    np.testing.assert_array_equal(report.complete, [False, False, True])


@pytest.mark.parametrize("n", [16, 256])
def test_two_factor_butterfly_split_is_disjoint_with_singleton_classes(n):
    arch = architecture((n, n))
    right = arch[1]
    for p in arch[2:]:
        right = fuse_patterns(right, p)
    report = analyze_supports(arch[0].support(), right.support())
    assert report.condition == "disjoint"
    assert report.n_classes == n and report.class_sizes.max() == 1
    assert report.identifiable is True


def test_identifiability_recovers_the_terms_of_an_exact_instance():
    rng = np.random.default_rng(1)
    S_W, S_H = butterfly_support(8, 1), butterfly_support(8, 2)
    W_true = rng.standard_normal((8, 8)) * S_W
    H_true = rng.standard_normal((8, 8)) * S_H
    W, H, info = fsmf(W_true @ H_true, S_W, S_H)
    assert info.analysis.identifiable is True
    for k in range(8):
        np.testing.assert_allclose(
            np.outer(W[:, k], H[k]), np.outer(W_true[:, k], H_true[k]), atol=1e-10
        )


def test_identical_classes_are_not_identifiable_and_overlaps_inconclusive():
    S_W = np.ones((3, 2), dtype=bool)
    assert analyze_supports(S_W, np.ones((2, 3), bool)).identifiable is False
    assert analyze_supports(*lu_supports(3)).identifiable is None


def test_supports_may_be_sparse_or_zero_one_numbers():
    S_W, S_H = butterfly_support(8, 1), butterfly_support(8, 2)
    dense = analyze_supports(S_W, S_H)
    for args in [
        (sp.csr_array(S_W), sp.coo_matrix(S_H)),
        (S_W.astype(int), S_H.astype(float)),
        (S_W.tolist(), S_H.tolist()),
    ]:
        report = analyze_supports(*args)
        assert report.condition == dense.condition
        assert [list(P) for P in report.classes] == [list(P) for P in dense.classes]


# ----------------------------------------------------------------------------
# Solver: special cases and hard instances
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
def test_hadamard_butterfly_split_is_exact_and_dtype_kept(dtype):
    arch = architecture((64, 64))
    right = arch[1]
    for p in arch[2:]:
        right = fuse_patterns(right, p)
    A = hadamard(64).astype(dtype)
    S_W, S_H = arch[0].support(), right.support()
    W, H, info = fsmf(A, S_W, S_H)
    assert W.dtype == dtype and H.dtype == dtype
    _assert_feasible(W, H, S_W, S_H)
    tol = 1e-5 if np.finfo(dtype).eps > 1e-10 else 1e-12
    assert info.relative_error < tol
    assert info.optimal_error < tol * np.linalg.norm(A)


def test_full_supports_give_truncated_svd():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((7, 5))
    W, H, info = fsmf(A, np.ones((7, 2)), np.ones((2, 5)))
    s = np.linalg.svd(A, compute_uv=False)
    assert info.error == pytest.approx(np.sqrt(np.sum(s[2:] ** 2)), rel=1e-10)
    # sqrt(sigma) on both sides: the column norms of W equal the row norms of H.
    np.testing.assert_allclose(np.linalg.norm(W, axis=0), np.linalg.norm(H, axis=1))


def test_parallel_exact_equals_serial():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((32, 32))
    S_W, S_H = butterfly_support(32, 1), butterfly_support(32, 2)
    W1, H1, _ = fsmf(A, S_W, S_H)
    W2, H2, _ = fsmf(A, S_W, S_H, n_jobs=2)
    np.testing.assert_allclose(W1 @ H1, W2 @ H2, atol=1e-12)


def test_als_on_tractable_instance_is_not_certified_and_never_better():
    rng = np.random.default_rng(3)
    A = rng.standard_normal((8, 8))
    S_W, S_H = butterfly_support(8, 1), butterfly_support(8, 2)
    _, _, exact = fsmf(A, S_W, S_H)
    W, H, info = fsmf(A, S_W, S_H, method="als", random_state=0, n_restarts=3)
    _assert_feasible(W, H, S_W, S_H)
    assert info.method == "als" and not info.certified_optimal
    assert info.optimal_error is None and info.n_iter >= 1
    assert info.error >= exact.error - 1e-9


def test_als_is_reproducible_with_a_seed_and_any_n_jobs():
    A = np.random.default_rng(0).standard_normal((4, 4))
    S_W, S_H = lu_supports(4)
    first = fsmf(A, S_W, S_H, random_state=7, max_iter=20)
    second = fsmf(A, S_W, S_H, random_state=7, max_iter=20, n_jobs=2)
    np.testing.assert_allclose(first[0], second[0], atol=1e-12)
    np.testing.assert_allclose(first[1], second[1], atol=1e-12)
    assert first[2].error == pytest.approx(second[2].error, abs=1e-12)


def _masked_rank_one(A, mask, n_starts, rng):
    """Best-of-many weighted alternating rank-one fit on the observed entries."""
    best = np.inf
    Wt = mask.astype(float)
    for _ in range(n_starts):
        y = rng.standard_normal(A.shape[1])
        for _ in range(300):
            x = (Wt * A) @ y / np.maximum(Wt @ y**2, 1e-300)
            y = (Wt * A).T @ x / np.maximum(Wt.T @ x**2, 1e-300)
        best = min(best, float(np.sum(Wt * (A - np.outer(x, y)) ** 2)))
    return best


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reduction_instance_matches_masked_rank_one_completion(seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((4, 5))
    mask = np.ones((4, 5), dtype=bool)
    mask[rng.integers(0, 4, 4), rng.integers(0, 5, 4)] = False
    target, S_W, S_H = rank_one_completion_instance(A, mask)
    assert S_W.shape[1] == 1 + np.count_nonzero(~mask)
    report = analyze_supports(S_W, S_H)
    assert not report.tractable
    W, H, info = fsmf(target, S_W, S_H, n_restarts=8, random_state=seed)
    _assert_feasible(W, H, S_W, S_H)
    assert info.method == "als" and not info.certified_optimal
    reference = _masked_rank_one(A, mask, 20, rng)
    # Any FSMF point is no better than its rank-one term on the observed set,
    # and filling the holes with singletons attains the masked value.
    first_term = float(np.sum(mask * (A - np.outer(W[:, 0], H[0])) ** 2))
    assert info.error**2 >= first_term - 1e-12
    assert info.error**2 == pytest.approx(reference, rel=1e-6, abs=1e-10)


def test_reduction_attains_the_masked_value_of_any_rank_one_pair():
    rng = np.random.default_rng(5)
    A = rng.standard_normal((3, 4))
    mask = rng.random((3, 4)) > 0.3
    target, S_W, S_H = rank_one_completion_instance(A, mask)
    x, y = rng.standard_normal(3), rng.standard_normal(4)
    W = np.zeros(S_W.shape)
    H = np.zeros(S_H.shape)
    W[:, 0], H[0] = x, y
    holes = np.argwhere(~mask)
    k = np.arange(1, len(holes) + 1)
    W[holes[:, 0], k] = (target - np.outer(x, y))[holes[:, 0], holes[:, 1]]
    H[k, holes[:, 1]] = 1.0
    _assert_feasible(W, H, S_W, S_H)
    masked = float(np.sum(mask * (A - np.outer(x, y)) ** 2))
    assert float(np.sum((target - W @ H) ** 2)) == pytest.approx(masked)


# No LU exists: ALS may run out of max_iter (tested below).
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lu_of_antidiagonal_is_finite_and_not_certified(dtype):
    A = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=dtype)
    S_W, S_H = lu_supports(2)
    W, H, info = fsmf(A, S_W, S_H, max_iter=500, random_state=0)
    _assert_feasible(W, H, S_W, S_H)
    assert W.dtype == dtype
    assert info.method == "als" and not info.certified_optimal
    assert 1 <= info.n_iter <= 500
    # The infimum 0 is not attained: the error is positive, yet small.
    assert 0 < info.error < 0.5
    assert info.error == pytest.approx(np.linalg.norm(A - W @ H), rel=1e-4)


def test_lu_non_closedness_sequence():
    S_W, S_H = lu_supports(2)
    A = np.array([[0.0, 1.0], [1.0, 0.0]])
    for eps in [1e-1, 1e-3, 1e-6]:
        L = np.array([[1.0, 0.0], [1.0 / eps, 1.0]])
        U = np.array([[eps, 1.0], [0.0, -1.0 / eps]])
        _assert_feasible(L, U, S_W, S_H)
        assert np.linalg.norm(A - L @ U) == pytest.approx(eps)
        assert np.abs(L).max() == pytest.approx(1 / eps)


@pytest.mark.parametrize("n", [2, 3])
def test_als_stays_in_the_spurious_valley(n):
    A, S_W, S_H = spurious_valley_instance(n)
    W = np.zeros((n, n))
    H = np.zeros((n, n))
    # W00 H00 = -0.1 < 0 and loss 1.21 < 2: inside the valley.
    W[0, 0], H[0, 0], H[0, 1], W[1, 0] = -0.1, 1.0, -10.0, 1.0
    W[1, 1], H[1, 1] = 10.0, 1.0
    _assert_feasible(W, H, S_W, S_H)
    assert np.sum((A - W @ H) ** 2) < 2
    W1, H1, loss, *_ = _als(A, S_W, S_H, W, H, 300, 0.0)
    assert W1[0, 0] * H1[0, 0] < 0
    assert loss >= 1
    # From a start on the good side, ALS reaches the global minimum 0.
    W[0, 0] = 0.1
    H[0, 1], W[1, 0] = 10.0, 10.0
    loss = _als(A, S_W, S_H, W, H, 300, 0.0)[2]
    assert loss < 1e-12


# ----------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("A", "S_W", "S_H", "error", "match"),
    [
        (np.ones((3, 4)), np.ones((2, 2)), np.ones((2, 4)), ValueError, "n_samples=3"),
        (np.ones((3, 4)), np.ones((3, 2)), np.ones((3, 4)), ValueError, "do not chain"),
        (np.ones((3, 4)), np.full((3, 2), 2), np.ones((2, 4)), ValueError, "0/1"),
        (np.ones((3, 4)), np.ones((3, 2)), np.full((2, 4), 0.5), ValueError, "S_H"),
        (np.ones((3, 4)), np.ones(3), np.ones((1, 4)), ValueError, "2-D"),
        (np.ones((3, 4)), np.full((3, 1), "a"), np.ones((1, 4)), TypeError, "S_W"),
        (np.ones((3, 4)), np.ones((3, 0)), np.ones((0, 4)), ValueError, "r=0"),
        (np.full((2, 2), np.nan), np.ones((2, 1)), np.ones((1, 2)), ValueError, "NaN"),
        (np.full((2, 2), np.inf), np.ones((2, 1)), np.ones((1, 2)), ValueError, "NaN"),
        (np.ones((0, 2)), np.ones((0, 1)), np.ones((1, 2)), ValueError, "empty"),
    ],
)
def test_bad_input_raises(A, S_W, S_H, error, match):
    with pytest.raises(error, match=match):
        fsmf(A, S_W, S_H)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "svd"}, "method"),
        ({"max_iter": 0}, "max_iter"),
        ({"n_restarts": 0}, "n_restarts"),
        ({"tol": -1.0}, "tol"),
    ],
)
def test_bad_parameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fsmf(np.ones((2, 2)), np.ones((2, 1)), np.ones((1, 2)), **kwargs)


def test_inputs_are_not_modified():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((4, 4))
    S_W, S_H = lu_supports(4)
    copies = A.copy(), S_W.copy(), S_H.copy()
    fsmf(A, S_W, S_H, max_iter=5, random_state=0)
    for before, after in zip(copies, (A, S_W, S_H)):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_large_blocks_reach_the_optimum(dtype):
    # Blocks large enough for the iterative route of the batched SVD, with a
    # flat Gaussian spectrum (slow convergence): the error must still be optimal.
    rng = np.random.default_rng(0)
    A = _draw(rng, (120, 120), dtype)
    groups = np.arange(120) // 60
    S_W = np.repeat(groups[:, None] == np.arange(2)[None, :], 3, axis=1)
    S_H = np.repeat(np.arange(2)[:, None] == groups[None, :], 3, axis=0)
    W, H, info = fsmf(A, S_W, S_H)
    optimum = sum(
        _tail(A[60 * a : 60 * a + 60, 60 * a : 60 * a + 60], 3) for a in (0, 1)
    )
    optimum += float(np.sum(np.abs(A) ** 2)) - sum(
        float(np.sum(np.abs(A[60 * a : 60 * a + 60, 60 * a : 60 * a + 60]) ** 2))
        for a in (0, 1)
    )
    assert info.error**2 == pytest.approx(optimum, rel=1e-10)
    assert info.optimal_error**2 == pytest.approx(optimum, rel=1e-10)


@pytest.mark.parametrize("shape", [(8, 8), (32, 32), (9, 5), (5, 9)])
@pytest.mark.parametrize("seed", [0, 1])
def test_lu_supports_are_exact_on_matrices_with_an_lu(shape, seed):
    # Reference: A = L0 U0 with L0 unit lower, U0 upper and nonzero pivots,
    # which Gaussian elimination reproduces; ALS alone stalls far away.
    m, n = shape
    k = min(m, n)
    rng = np.random.default_rng(seed)
    L0 = np.tril(rng.standard_normal((m, k)), -1) + np.eye(m, k)
    U0 = np.triu(rng.standard_normal((k, n)))
    U0[np.arange(k), np.arange(k)] = rng.uniform(1, 2, k) * rng.choice([-1, 1], k)
    A = L0 @ U0
    S_W, S_H = lower_triangular_support((m, k)), upper_triangular_support((k, n))
    W, H, info = fsmf(A, S_W, S_H, random_state=0)
    _assert_feasible(W, H, S_W, S_H)
    assert info.relative_error <= 1e-10
    # The unit-lower LU is unique: the factors are L0 and U0 themselves.
    np.testing.assert_allclose(W, L0, atol=1e-8)
    np.testing.assert_allclose(H, U0, atol=1e-8)


def test_lu_supports_of_a_gaussian_matrix_match_scipy_without_pivoting():
    # A Gaussian matrix has an LU without pivoting (almost surely); scipy's
    # partial pivoting, applied to the matrix with its rows already in
    # pivot order, gives the same factors (P = I).
    rng = np.random.default_rng(5)
    B = rng.standard_normal((24, 24))
    P, _, _ = scipy.linalg.lu(B)
    A = P.T @ B
    P2, L, U = scipy.linalg.lu(A)
    assert np.array_equal(P2, np.eye(24))
    W, H, info = fsmf(A, *lu_supports(24), random_state=0)
    assert info.relative_error <= 1e-10
    np.testing.assert_allclose(W @ H, L @ U, atol=1e-10 * np.linalg.norm(A))
    np.testing.assert_allclose(np.diag(W), 1.0)


def test_als_warns_when_it_runs_out_of_iterations():
    A = np.array([[0.0, 1.0], [1.0, 0.0]])
    with pytest.warns(ConvergenceWarning, match=r"max_iter=3 .*tol=1e-10"):
        fsmf(A, *lu_supports(2), max_iter=3, random_state=0)
    # A converged run is silent.
    A = np.random.default_rng(0).standard_normal((6, 6))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        fsmf(A, *lu_supports(6), random_state=0)


def test_als_verbose_prints_starts_and_iterations(capsys):
    A = np.array([[0.0, 1.0], [1.0, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fsmf(A, *lu_supports(2), max_iter=2, n_restarts=2, verbose=1)
        first = capsys.readouterr().out
        fsmf(A, *lu_supports(2), max_iter=2, n_restarts=2, verbose=2)
        second = capsys.readouterr().out
        fsmf(A, *lu_supports(2), max_iter=2, n_restarts=2)
    assert capsys.readouterr().out == ""
    assert "[fixed_support_factorize] start 1/2 (relaxation)" in first
    assert "start 2/2 (random): 2 iterations" in first
    assert "iteration" not in first.replace("iterations", "")
    assert "start 2: iteration 2, relative error" in second


def _slowly_decaying(n, dtype, seed):
    """A matrix with singular values 1/sqrt(i): subspace iteration is slow there."""
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((n, n)))[0]
    V = np.linalg.qr(rng.standard_normal((n, n)))[0]
    s = (1 + 1e-3 * rng.standard_normal(n)) / np.sqrt(np.arange(1, n + 1))
    return ((U * s) @ V.T).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_certificate_holds_on_slowly_decaying_spectra(dtype):
    """certified_optimal: the error equals the SVD optimum to 16 unit roundoffs."""
    eps = np.finfo(dtype).eps
    for seed in range(4):
        A = _slowly_decaying(64, dtype, seed)
        A64 = A.astype(np.float64)
        spectrum = np.linalg.svd(A64, compute_uv=False)
        for r in (1, 2, 4):  # blocks whose short side exceeds 16: iterative SVD
            W, H, info = fsmf(A, np.ones((64, r)), np.ones((r, 64)))
            assert info.certified_optimal, info.certificate
            optimum = np.sqrt(np.sum(spectrum[r:] ** 2))
            error = np.linalg.norm(A64 - W.astype(np.float64) @ H.astype(np.float64))
            assert abs(error - optimum) <= 16 * eps * np.linalg.norm(A64)
            assert abs(info.error - error) <= 16 * eps * np.linalg.norm(A64)


def test_unconverged_blocks_withhold_the_certificate(monkeypatch):
    """With the exact fallback disabled and one iteration, nothing is certified."""
    import skbutterfly._fsmf_exact as exact

    monkeypatch.setattr(exact, "SVD_MAX_ITER", 1)
    monkeypatch.setattr(exact, "REDO_RTOL", np.inf)
    A = _slowly_decaying(64, np.float64, 0)
    with pytest.warns(ConvergenceWarning, match="certificate is withheld"):
        _, _, info = fsmf(A, np.ones((64, 2)), np.ones((2, 64)))
    assert info.method == "exact" and not info.certified_optimal
    assert "withheld" in info.certificate
    assert info.error > info.optimal_error
    # The fallback on (the default) certifies the same problem.
    monkeypatch.setattr(exact, "REDO_RTOL", 2)
    assert fsmf(A, np.ones((64, 2)), np.ones((2, 64)))[2].certified_optimal
