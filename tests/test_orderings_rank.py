"""``"learn"`` at block rank 2: exact shuffled butterflies and unstructured input.

References: random butterflies of block rank 2 whose rows and columns are
shuffled here by known permutations (the hidden groups of every split are
compared with the learned ones), and the dense matrices of the operators.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skbutterfly import ButterflyFactorizer, butterfly_factorize
from skbutterfly._orderings import learn_orderings
from skbutterfly._orderings_rank import learn_rank_two, level_two_groups, plane_groups
from skbutterfly.datasets import random_butterfly


def _relative_error(A, B):
    return np.linalg.norm(B.toarray() - A) / np.linalg.norm(A)


def _same_partition(a, b):
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def _shuffled_rank_two(N, complex_, seed, noise=0.0):
    dtype = np.complex128 if complex_ else np.float64
    A = random_butterfly(N, rank=2, dtype=dtype, random_state=seed).toarray()
    rng = np.random.default_rng(seed)
    rows, cols = rng.permutation(N), rng.permutation(N)
    S = A[rows][:, cols]
    if noise:
        E = rng.standard_normal(S.shape)
        S = S + noise * np.linalg.norm(S) / np.linalg.norm(E) * E
    return S, rows, cols


def _positions(perm):
    where = np.empty_like(perm)
    where[perm] = np.arange(perm.size)
    return where


@settings(max_examples=20, deadline=None)
@given(L=st.integers(4, 7), complex_=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_learn_finds_the_hidden_groups_of_shuffled_rank_two_butterflies(
    L, complex_, seed
):
    N = 2**L
    S, rows, cols = _shuffled_rank_two(N, complex_, seed)
    row_perm, perm = learn_rank_two(S, random_state=seed)
    assert np.array_equal(np.sort(row_perm), np.arange(N))
    assert np.array_equal(np.sort(perm), np.arange(N))
    # Row i of S sits at position rows[i] of the butterfly, column j at
    # cols[j]: at every informative level (2 .. L-2) the learned groups are
    # the hidden ones.
    row_at, col_at = _positions(row_perm), _positions(perm)
    for level in range(2, L - 1):
        s = 2 ** (L - level)
        assert _same_partition(rows % s, row_at % s)
        assert _same_partition(cols // s, col_at // s)


@pytest.mark.parametrize("N", [16, 64, 256])
@pytest.mark.parametrize("complex_", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_learn_factorizes_shuffled_rank_two_butterflies_exactly(N, complex_, seed):
    S, _, _ = _shuffled_rank_two(N, complex_, seed)
    B = butterfly_factorize(
        S, rank=2, permutation="learn", row_permutation="learn", random_state=seed
    )
    assert _relative_error(S, B) <= 1e-10
    if N == 64 and seed == 0:  # the estimator too
        est = ButterflyFactorizer(
            rank=2, permutation="learn", row_permutation="learn", random_state=0
        ).fit(S)
        assert est.reconstruction_err_ <= 1e-10 * np.linalg.norm(S)
        np.testing.assert_array_equal(est.permutation_, est.butterfly_.perm)
    if N == 64:  # the rank-one criterion alone misses them
        rows, cols = learn_orderings(S, rank=1, random_state=seed)
        plain = butterfly_factorize(S, rank=2, permutation=cols, row_permutation=rows)
        assert _relative_error(S, plain) > 1e-6


@pytest.mark.parametrize("N", [16, 128])
def test_learn_one_side_of_a_rank_two_butterfly_with_the_other_given(N):
    A = random_butterfly(N, rank=2, random_state=3).toarray()
    rng = np.random.default_rng(3)
    S = A[rng.permutation(N)]
    B = butterfly_factorize(S, rank=2, row_permutation="learn", permutation=None)
    assert B.perm is None or np.array_equal(B.perm, np.arange(N))
    assert _relative_error(S, B) <= 1e-10
    S = A[:, rng.permutation(N)]
    B = butterfly_factorize(S, rank=2, row_permutation=None, permutation="learn")
    assert B.row_perm is None or np.array_equal(B.row_perm, np.arange(N))
    assert _relative_error(S, B) <= 1e-10


def test_learn_at_rank_two_is_deterministic_for_a_seed():
    S, _, _ = _shuffled_rank_two(64, True, 0)
    runs = [learn_rank_two(S, random_state=5) for _ in range(2)]
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


@pytest.mark.parametrize("N", [1, 2, 4, 8])
def test_small_rank_two_matrices_need_no_ordering(N):
    # Every split has groups of at most 2 rows or 2 columns: any order fits.
    A = np.random.default_rng(0).standard_normal((N, N))
    row_perm, perm = learn_rank_two(A, random_state=0)
    assert np.array_equal(row_perm, np.arange(N)) and np.array_equal(perm, np.arange(N))
    if N >= 4:  # (rank 2 needs blocks of 2)
        B = butterfly_factorize(A, rank=2, permutation=perm, row_permutation=row_perm)
        assert _relative_error(A, B) <= 1e-12


@pytest.mark.parametrize(
    "A",
    [
        np.random.default_rng(0).standard_normal((64, 64)),
        np.zeros((16, 16)),
        np.ones((16, 16)),
        np.eye(32),
        np.diag(np.r_[np.ones(8), np.zeros(8)]),
        np.random.default_rng(1).standard_normal((20, 20)),  # padded to 32
        _shuffled_rank_two(64, False, 0)[0]
        + 1e-3 * np.random.default_rng(2).standard_normal((64, 64)),
    ],
    ids=["gaussian", "zeros", "ones", "identity", "half-zero", "padded", "noisy"],
)
def test_learn_at_rank_two_on_unstructured_input_falls_back_validly(A):
    n = 1 << (A.shape[0] - 1).bit_length()
    padded = np.zeros((n, n))
    padded[: A.shape[0], : A.shape[1]] = A
    if not np.allclose(A, np.ones_like(A)):  # all-ones is a butterfly
        assert learn_rank_two(padded, random_state=0) is None
    B = butterfly_factorize(
        A, rank=2, permutation="learn", row_permutation="learn", random_state=0
    )
    M, N = B.padded_shape
    assert np.array_equal(np.sort(B.perm), np.arange(N))
    assert np.array_equal(np.sort(B.row_perm), np.arange(M))
    dense = B.toarray()
    assert dense.shape == A.shape and np.all(np.isfinite(dense))


def test_rank_one_butterflies_are_still_found_when_rank_two_is_asked():
    # Rank-one blocks make degenerate planes: the rank-one path takes over.
    A = random_butterfly(64, random_state=4).toarray()
    rng = np.random.default_rng(4)
    S = A[rng.permutation(64)][:, rng.permutation(64)]
    B = butterfly_factorize(
        S, rank=2, permutation="learn", row_permutation="learn", random_state=0
    )
    assert _relative_error(S, B) <= 1e-10


def test_plane_groups_finds_planted_planes_and_refuses_others():
    rng = np.random.default_rng(0)
    for dims, complex_ in [(3, False), (3, True), (6, False)]:
        bases = rng.standard_normal((8, 2, dims))
        coefs = rng.standard_normal((8, 5, 2))
        if complex_:
            bases = bases + 1j * rng.standard_normal(bases.shape)
        truth = np.repeat(np.arange(8), 5)
        points = np.concatenate([c @ B for c, B in zip(coefs, bases)])
        order = rng.permutation(40)
        labels = plane_groups(points[order], 5, random_state=0)
        assert _same_partition(labels, truth[order])
        assert plane_groups(points[order], None, random_state=0) is not None
        assert plane_groups(points[order], 4, random_state=0) is None
    assert plane_groups(rng.standard_normal((40, 3)), 5) is None
    assert plane_groups(rng.standard_normal((40, 3)), None) is None
    parallel = np.repeat(rng.standard_normal((8, 3)), 2, axis=0)
    assert plane_groups(parallel, 2) is None


@pytest.mark.parametrize("complex_", [False, True])
def test_rounding_sized_errors_do_not_break_the_identification(complex_):
    # Errors of 1e-13 of the matrix's norm (far above rounding): still exact
    # structure to the tests, which measure distances to the largest point.
    S, _, _ = _shuffled_rank_two(128, complex_, 7)
    E = np.random.default_rng(7).standard_normal(S.shape)
    S = S + 1e-13 * np.linalg.norm(S) / np.linalg.norm(E) * E
    row_perm, perm = learn_rank_two(S, random_state=0)
    B = butterfly_factorize(S, rank=2, permutation=perm, row_permutation=row_perm)
    assert _relative_error(S, B) <= 1e-11


@pytest.mark.parametrize("complex_", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_level_two_groups_of_noisy_shuffled_rank_two_butterflies(complex_, seed):
    # 1 % noise: the hidden groups of four rows and quarters of columns.
    N = 64
    S, rows, cols = _shuffled_rank_two(N, complex_, seed, noise=0.01)
    groups, quarters = level_two_groups(S, random_state=seed)
    assert np.array_equal(np.sort(groups.ravel()), np.arange(N))
    assert np.array_equal(np.sort(quarters.ravel()), np.arange(N))
    assert all(np.unique(rows[g] % (N // 4)).size == 1 for g in groups)
    assert all(np.unique(cols[q] // (N // 4)).size == 1 for q in quarters)


@pytest.mark.parametrize(
    "N, complex_, seed",
    [(16, False, 0), (32, True, 1)]
    + [(64, False, s) for s in range(4)]
    + [(64, True, 4), (128, False, 5)],
)
def test_learn_reaches_the_noise_on_noisy_shuffled_rank_two_butterflies(
    N, complex_, seed
):
    noise = 0.01
    S, rows, cols = _shuffled_rank_two(N, complex_, seed, noise=noise)
    B = butterfly_factorize(
        S, rank=2, permutation="learn", row_permutation="learn", random_state=seed
    )
    assert _relative_error(S, B) <= 1.1 * noise
    # The rank-one criterion alone does not.
    rows_, cols_ = learn_orderings(S, rank=1, random_state=seed)
    plain = butterfly_factorize(S, rank=2, permutation=cols_, row_permutation=rows_)
    assert _relative_error(S, plain) > 2 * noise


@pytest.mark.parametrize("complex_", [False, True])
def test_level_two_groups_of_unstructured_input_are_valid(complex_):
    rng = np.random.default_rng(0)
    for A in (rng.standard_normal((32, 32)), np.zeros((16, 16)), np.eye(16)):
        A = A + 1j * A if complex_ else A
        N = A.shape[0]
        groups, quarters = level_two_groups(A, random_state=0)
        assert groups.shape == (N // 4, 4) and quarters.shape == (4, N // 4)
        assert np.array_equal(np.sort(groups.ravel()), np.arange(N))
        assert np.array_equal(np.sort(quarters.ravel()), np.arange(N))


def test_noisy_rank_two_learn_is_deterministic_for_a_seed():
    S, _, _ = _shuffled_rank_two(32, False, 6, noise=0.01)
    runs = [learn_orderings(S, rank=2, random_state=5) for _ in range(2)]
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
