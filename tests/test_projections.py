"""Each sparsity projection against a brute-force search on small arrays."""

from itertools import combinations, product

import numpy as np
import pytest

from skbutterfly import (
    SparsityConstraint,
    project_col_k,
    project_row_and_col_k,
    project_row_col_k,
    project_row_k,
    project_support,
    project_total_k,
)


def _matrix(seed, shape=(4, 5), complex_=False):
    rng = np.random.default_rng(seed)
    M = rng.standard_normal(shape)
    if complex_:
        M = M + 1j * rng.standard_normal(shape)
    return M


def _best_on_supports(M, supports):
    """The masked copy of M closest to M over an explicit list of supports."""
    best = min(supports, key=lambda S: np.linalg.norm(M - np.where(S, M, 0)))
    return np.where(best, M, 0)


def _row_supports(n_cols, k):
    rows = []
    for cols in combinations(range(n_cols), k):
        r = np.zeros(n_cols, dtype=bool)
        r[list(cols)] = True
        rows.append(r)
    return rows


def _brute_row_k(M, k):
    # Every combination of a k-subset per row: the full product, not row by row.
    choices = _row_supports(M.shape[1], k)
    supports = [np.array(rows) for rows in product(choices, repeat=M.shape[0])]
    return _best_on_supports(M, supports)


def _brute_total_k(M, k):
    supports = []
    for cells in combinations(range(M.size), k):
        S = np.zeros(M.size, dtype=bool)
        S[list(cells)] = True
        supports.append(S.reshape(M.shape))
    return _best_on_supports(M, supports)


def _top_k_sets(values, k):
    """Indices of the k largest magnitudes, by a sort written out in Python."""
    order = sorted(range(len(values)), key=lambda i: -abs(values[i]))
    return set(order[:k])


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("complex_", [False, True])
@pytest.mark.parametrize("k", [1, 2])
def test_row_k_is_the_nearest_row_sparse_matrix(seed, complex_, k):
    M = _matrix(seed, (3, 4), complex_)
    np.testing.assert_array_equal(project_row_k(M, k), _brute_row_k(M, k))


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("k", [1, 3])
def test_col_k_is_row_k_of_the_transpose(seed, k):
    M = _matrix(seed, (4, 3))
    np.testing.assert_array_equal(project_col_k(M, k), _brute_row_k(M.T, k).T)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("complex_", [False, True])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_total_k_is_the_nearest_k_sparse_matrix(seed, complex_, k):
    M = _matrix(seed, (3, 3), complex_)
    np.testing.assert_array_equal(project_total_k(M, k), _brute_total_k(M, k))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("k", [1, 2, 3])
def test_row_col_rules_are_the_union_and_intersection(seed, k):
    M = _matrix(seed, (5, 4))
    rows = [_top_k_sets(M[i], k) for i in range(M.shape[0])]
    cols = [_top_k_sets(M[:, j], k) for j in range(M.shape[1])]
    union = np.zeros(M.shape, dtype=bool)
    both = np.zeros(M.shape, dtype=bool)
    for i in range(M.shape[0]):
        for j in range(M.shape[1]):
            union[i, j] = j in rows[i] or i in cols[j]
            both[i, j] = j in rows[i] and i in cols[j]
    np.testing.assert_array_equal(project_row_col_k(M, k), np.where(union, M, 0))
    np.testing.assert_array_equal(project_row_and_col_k(M, k), np.where(both, M, 0))
    kept = project_row_and_col_k(M, k) != 0
    assert kept.sum(0).max() <= k and kept.sum(1).max() <= k


def test_support_projection_and_normalized_variants():
    M = _matrix(0)
    S = _matrix(1) > 0
    np.testing.assert_array_equal(project_support(M, S), M * S)
    for func, arg in [
        (project_row_k, 2),
        (project_col_k, 2),
        (project_row_col_k, 2),
        (project_row_and_col_k, 2),
        (project_total_k, 7),
        (project_support, S),
    ]:
        plain = func(M, arg)
        unit = func(M, arg, normalized=True)
        np.testing.assert_allclose(unit, plain / np.linalg.norm(plain), rtol=1e-14)
        assert np.linalg.norm(unit) == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(3))
def test_normalized_total_k_is_the_nearest_unit_sparse_matrix(seed):
    # Over unit-norm k-sparse X, ||M - X||^2 = ||M||^2 + 1 - 2 <M, X>:
    # brute force over supports of the best unit vector on each support.
    M = _matrix(seed, (2, 3))
    k = 2
    best, best_dist = None, np.inf
    for cells in combinations(range(M.size), k):
        X = np.zeros(M.size)
        X[list(cells)] = M.ravel()[list(cells)]
        X /= np.linalg.norm(X)
        dist = np.linalg.norm(M.ravel() - X)
        if dist < best_dist:
            best, best_dist = X.reshape(M.shape), dist
    np.testing.assert_allclose(project_total_k(M, k, normalized=True), best)


def test_zero_stays_zero_when_normalized():
    np.testing.assert_array_equal(
        project_row_k(np.zeros((2, 3)), 1, normalized=True), np.zeros((2, 3))
    )


@pytest.mark.parametrize(
    ("func", "k", "match"),
    [
        (project_row_k, 0, "k"),
        (project_row_k, 6, "k"),
        (project_col_k, 5, "k"),
        (project_row_col_k, 5, "k"),
        (project_total_k, 21, "k"),
    ],
)
def test_bad_k_raises_naming_k(func, k, match):
    with pytest.raises(ValueError, match=match):
        func(np.ones((4, 5)), k)


def test_constraint_validation():
    with pytest.raises(ValueError, match="name"):
        SparsityConstraint("diagonal", 2)
    with pytest.raises(ValueError, match="needs k"):
        SparsityConstraint("row")
    with pytest.raises(ValueError, match="k"):
        SparsityConstraint("row", 0)
    with pytest.raises(ValueError, match="support"):
        SparsityConstraint("support")
    with pytest.raises(ValueError, match="shape"):
        project_support(np.ones((2, 2)), np.ones((2, 3)))
    c = SparsityConstraint("splincol", 2)
    assert c.name == "rowcol" and c.normalized
    with pytest.raises(ValueError, match="k=3"):
        SparsityConstraint("row", 3).check_shape((4, 2))


def test_constraint_project_matches_the_functions():
    M = _matrix(5)
    for name, func in [
        ("row", project_row_k),
        ("col", project_col_k),
        ("rowcol", project_row_col_k),
        ("rowcol_and", project_row_and_col_k),
        ("total", project_total_k),
    ]:
        c = SparsityConstraint(name, 2, normalized=False)
        np.testing.assert_array_equal(c.project(M), func(M, 2))


@pytest.mark.parametrize("seed", range(4))
def test_ties_go_to_the_first_positions_in_every_family(seed):
    # Magnitudes drawn from {0, 1, 2}: many ties at every threshold. The kept
    # entries must be the first k of a stable descending sort (Python's
    # sorted is stable), per row, per column and over the flattened matrix.
    rng = np.random.default_rng(seed)
    M = rng.integers(-2, 3, size=(7, 9)).astype(float)
    for k in range(1, 8):
        rows = [_top_k_sets(r, k) for r in M]
        cols = [_top_k_sets(c, k) for c in M.T]
        want_row = np.array([[j in rows[i] for j in range(9)] for i in range(7)])
        want_col = np.array([[i in cols[j] for j in range(9)] for i in range(7)])
        np.testing.assert_array_equal(project_row_k(M, k) != 0, want_row & (M != 0))
        np.testing.assert_array_equal(project_col_k(M, k) != 0, want_col & (M != 0))
        np.testing.assert_array_equal(
            project_row_col_k(M, k) != 0, (want_row | want_col) & (M != 0)
        )
        flat = _top_k_sets(M.ravel(), 3 * k)
        want = np.isin(np.arange(M.size), list(flat)).reshape(M.shape)
        np.testing.assert_array_equal(project_total_k(M, 3 * k) != 0, want & (M != 0))
