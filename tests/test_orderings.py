"""Row permutations in the factorization, "auto" and "learn" orderings.

References: the dense matrix of each operator, and matrices built with known
hidden permutations (random butterflies, DFT, Hadamard) shuffled here.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skbutterfly import (
    ButterflyFactorizer,
    bit_reversal_permutation,
    butterfly_factorize,
    standard_permutation,
)
from skbutterfly.datasets import (
    dft,
    fourier_integral_operator,
    hadamard,
    nonuniform_dft,
    random_butterfly,
)


def _relative_error(A, B):
    return np.linalg.norm(B.toarray() - A) / np.linalg.norm(A)


def _is_permutation(p, n):
    return p is not None and np.array_equal(np.sort(p), np.arange(n))


def _shuffled(A, seed):
    rng = np.random.default_rng(seed)
    rows, cols = rng.permutation(A.shape[0]), rng.permutation(A.shape[1])
    return A[rows][:, cols]


@settings(max_examples=25, deadline=None)
@given(
    L=st.integers(1, 6),
    complex_=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_learn_recovers_shuffled_rank_one_butterflies(L, complex_, seed):
    N = 2**L
    dtype = np.complex128 if complex_ else np.float64
    A = random_butterfly(N, dtype=dtype, random_state=seed).toarray()
    S = _shuffled(A, seed)
    B = butterfly_factorize(
        S, permutation="learn", row_permutation="learn", random_state=seed
    )
    assert _relative_error(S, B) <= 1e-10
    # The operator's one meaning: its factors are A[row_perm][:, perm].
    plain = butterfly_factorize(S[B.row_perm][:, B.perm])
    np.testing.assert_allclose(plain.toarray(), S[B.row_perm][:, B.perm], atol=1e-9)


@pytest.mark.parametrize("N", [64, 256])
@pytest.mark.parametrize("make", [dft, hadamard])
def test_learn_recovers_shuffled_dft_and_hadamard(make, N):
    S = _shuffled(make(N), N)
    B = butterfly_factorize(
        S, permutation="learn", row_permutation="learn", random_state=0
    )
    assert _relative_error(S, B) <= 1e-10


@pytest.mark.parametrize("N", [32, 64])
@pytest.mark.parametrize("complex_", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_learn_recovers_noisy_shuffled_butterflies_to_the_noise(N, complex_, seed):
    # 1 % Gaussian noise (relative, Frobenius): the true ordering fits to the
    # noise level, a wrong group costs far more. The factorization in the
    # learned ordering is measured against the noisy input.
    dtype = np.complex128 if complex_ else np.float64
    rng = np.random.default_rng(seed)
    S = _shuffled(random_butterfly(N, dtype=dtype, random_state=seed).toarray(), seed)
    E = rng.standard_normal(S.shape)
    noisy = S + 0.01 * np.linalg.norm(S) / np.linalg.norm(E) * E
    B = butterfly_factorize(
        noisy, permutation="learn", row_permutation="learn", random_state=seed
    )
    assert _relative_error(noisy, B) <= 1.1 * 0.01


@pytest.mark.parametrize("n", [1, 2, 3])
def test_learn_on_tiny_matrices(n):
    A = np.arange(1.0, n * n + 1).reshape(n, n)
    B = butterfly_factorize(
        A, permutation="learn", row_permutation="learn", random_state=0
    )
    assert _is_permutation(B.perm, B.padded_shape[1])
    assert _is_permutation(B.row_perm, B.padded_shape[0])
    if n < 3:  # one dense factor: exact
        np.testing.assert_allclose(B.toarray(), A, atol=1e-12 * np.abs(A).max())
    assert B.toarray().shape == A.shape and np.all(np.isfinite(B.toarray()))


def test_pair_matching_finds_planted_pairs_and_no_improving_swap():
    from skbutterfly._orderings_levels import _match_pairs

    rng = np.random.default_rng(0)
    for n in (2, 6, 16, 64):
        D = 1 + rng.random((n, n))
        D = D + D.T
        truth = rng.permutation(n).reshape(-1, 2)
        cheap = rng.random(len(truth)) * 0.5  # every planted pair beats the rest
        D[truth[:, 0], truth[:, 1]] = D[truth[:, 1], truth[:, 0]] = cheap
        np.fill_diagonal(D, np.inf)
        first, second = _match_pairs(D)
        assert sorted(np.r_[first, second]) == list(range(n))
        found = {frozenset(p) for p in zip(first.tolist(), second.tolist())}
        assert found == {frozenset(p) for p in truth.tolist()}
    # On random costs: a perfect matching that no swap of two pairs improves
    # (beyond 64 pairs, the sweeps that try the worst pairs first are used).
    for n in [10] * 20 + [300] * 2:
        D = rng.random((n, n))
        D = D + D.T
        np.fill_diagonal(D, np.inf)
        first, second = _match_pairs(D)
        assert sorted(np.r_[first, second]) == list(range(n))
        now = D[first, second][:, None] + D[first, second][None, :]
        swap0 = D[np.ix_(first, first)] + D[np.ix_(second, second)]
        swap1 = D[np.ix_(first, second)] + D[np.ix_(second, first)]
        off = ~np.eye(n // 2, dtype=bool)
        assert np.all(now[off] <= swap0[off] + 1e-12)
        assert np.all(now[off] <= swap1[off] + 1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_proportional_pairs_finds_planted_multiples(dtype):
    from skbutterfly._orderings_levels import _proportional_pairs

    rng = np.random.default_rng(0)
    g, c, n = 40, 3, 16
    base = rng.standard_normal((g // 2, c, 1, n)).astype(dtype)
    scale = rng.standard_normal((g // 2, c, 1, 1)) + (dtype == np.complex128) * 1j
    Z = np.concatenate([base, scale * base])
    order = rng.permutation(g)
    first, second = _proportional_pairs(Z[order], np.random.default_rng(1))
    found = {frozenset(p) for p in zip(order[first].tolist(), order[second].tolist())}
    assert found == {frozenset((k, k + g // 2)) for k in range(g // 2)}
    # Not proportional, or a zero block: no pairs.
    assert _proportional_pairs(rng.standard_normal(Z.shape), rng) is None
    Z[0, 0] = 0
    assert _proportional_pairs(Z, rng) is None


def test_exhaustive_halves_finds_the_rank_one_split():
    from skbutterfly._orderings_levels import _exhaustive_halves

    rng = np.random.default_rng(1)
    for m in (2, 4, 8):
        upper = rng.permutation(np.r_[np.zeros(m // 2), np.ones(m // 2)]).astype(bool)
        # Two rows, each half of the columns a rank-one 2 x (m/2) block.
        Y = np.empty((2, m))
        for half in (upper, ~upper):
            Y[:, half] = np.outer(rng.standard_normal(2), rng.standard_normal(m // 2))
        found = _exhaustive_halves(Y[None, None], 1)[0]
        assert np.array_equal(found, upper) or np.array_equal(found, ~upper)


def test_learn_one_side_with_the_other_given():
    F = dft(64)
    rows = np.random.default_rng(0).permutation(64)
    S = F[rows]
    # Columns known (bit reversal): only the rows are learned.
    B = butterfly_factorize(S, permutation="bit-reversal", row_permutation="learn")
    np.testing.assert_array_equal(B.perm, bit_reversal_permutation(64))
    assert _relative_error(S, B) <= 1e-10
    # Rows known: only the columns are learned.
    A = random_butterfly(32, random_state=1).toarray()
    cols = np.random.default_rng(1).permutation(32)
    B = butterfly_factorize(A[:, cols], permutation="learn", row_permutation=None)
    assert B.row_perm is None or np.array_equal(B.row_perm, np.arange(32))
    assert _relative_error(A[:, cols], B) <= 1e-10


def test_learn_is_deterministic_for_a_seed():
    S = _shuffled(random_butterfly(64, random_state=0).toarray(), 0)
    noisy = S + 0.3 * np.random.default_rng(0).standard_normal(S.shape)
    runs = [
        butterfly_factorize(
            noisy, permutation="learn", row_permutation="learn", random_state=7
        )
        for _ in range(2)
    ]
    np.testing.assert_array_equal(runs[0].perm, runs[1].perm)
    np.testing.assert_array_equal(runs[0].row_perm, runs[1].row_perm)
    np.testing.assert_array_equal(runs[0].toarray(), runs[1].toarray())


@pytest.mark.parametrize(
    "A",
    [
        np.random.default_rng(0).standard_normal((32, 32)),
        np.zeros((16, 16)),
        np.ones((16, 16)),
        np.eye(16),
        np.diag(np.r_[np.ones(8), np.zeros(8)]),
        np.random.default_rng(1).standard_normal((20, 20)),  # padded to 32
    ],
    ids=["gaussian", "zeros", "ones", "identity", "half-zero", "padded"],
)
def test_learn_on_unstructured_input_returns_a_valid_operator(A):
    B = butterfly_factorize(
        A, permutation="learn", row_permutation="learn", random_state=0
    )
    M, N = B.padded_shape
    assert _is_permutation(B.perm, N) and _is_permutation(B.row_perm, M)
    dense = B.toarray()
    assert dense.shape == A.shape and np.all(np.isfinite(dense))
    est = ButterflyFactorizer(
        permutation="learn", row_permutation="learn", random_state=0
    ).fit(A)
    assert np.isfinite(est.reconstruction_err_)
    assert np.isclose(
        est.reconstruction_err_, np.linalg.norm(A - est.butterfly_.toarray())
    )


def test_auto_recovers_standard_permutations_on_both_sides():
    A = random_butterfly(64, random_state=0).toarray()
    rows, cols = standard_permutation(64, "110"), standard_permutation(64, "011")
    # A[rows][:, cols] is the butterfly: hide it by the inverse permutations.
    S = np.empty_like(A)
    S[np.ix_(rows, cols)] = A
    assert _relative_error(S, butterfly_factorize(S)) > 0.1
    B = butterfly_factorize(S, permutation="auto", row_permutation="auto")
    assert _relative_error(S, B) <= 1e-10


def test_auto_is_never_worse_than_the_identity_and_finds_row_bit_reversal():
    # A non-uniform DFT with sorted nodes needs its rows bit-reversed.
    rng = np.random.default_rng(0)
    N = 64
    x = np.sort(rng.uniform(0, 1, N))
    A = np.exp(-2j * np.pi * np.outer(x, np.arange(N)))
    plain = _relative_error(A, butterfly_factorize(A, rank=3))
    by_hand = _relative_error(
        A, butterfly_factorize(A, rank=3, row_permutation="bit-reversal")
    )
    B = butterfly_factorize(
        A, rank=3, permutation="auto", row_permutation="auto", random_state=0
    )
    assert by_hand < 0.1 * plain
    assert _relative_error(A, B) <= 1.01 * by_hand


@pytest.mark.parametrize("make", [nonuniform_dft, fourier_integral_operator])
def test_auto_screens_every_split(make):
    # At depth 3 the first split alone favours orderings whose deeper splits
    # fail (errors of 0.55 against 2e-3 when only it was screened).
    A = make(256, random_state=0) if make is nonuniform_dft else make(256)
    kwargs = {"n_factors": 3, "rank": 4, "random_state": 0}
    by_hand = _relative_error(
        A, butterfly_factorize(A, row_permutation="bit-reversal", **kwargs)
    )
    B = butterfly_factorize(A, permutation="auto", row_permutation="auto", **kwargs)
    assert by_hand < 1e-2
    assert _relative_error(A, B) <= 1.01 * by_hand


def test_row_candidates_are_combined_with_column_candidates():
    A = random_butterfly(16, random_state=0).toarray()
    rows = standard_permutation(16, "100")
    S = np.empty_like(A)
    S[rows] = A
    B = butterfly_factorize(S, row_permutation=[None, "bit-reversal", "100"])
    np.testing.assert_array_equal(B.row_perm, rows)
    assert _relative_error(S, B) <= 1e-12


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.arange(15), r"row_permutation must have shape \(16,\)"),
        (np.zeros(16, dtype=int), "row_permutation is not a permutation"),
        ("reverse", "row_permutation must be None"),
        ([], "row_permutation is an empty list"),
    ],
)
def test_bad_row_permutation_is_refused_naming_it(bad, match):
    with pytest.raises(ValueError, match=match):
        butterfly_factorize(hadamard(16), row_permutation=bad)
    with pytest.raises(ValueError, match=match):
        ButterflyFactorizer(row_permutation=bad).fit(hadamard(16))


def test_learn_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="square architecture"):
        butterfly_factorize(np.ones((8, 16)), permutation="learn")
    with pytest.raises(ValueError, match="row_permutation must be one permutation"):
        butterfly_factorize(hadamard(8), permutation="learn", row_permutation="auto")


def test_estimator_exposes_the_chosen_permutations():
    S = _shuffled(hadamard(32), 3)
    est = ButterflyFactorizer(
        permutation="learn", row_permutation="learn", random_state=0
    ).fit(S)
    assert est.relative_error_ <= 1e-10
    np.testing.assert_array_equal(est.permutation_, est.butterfly_.perm)
    np.testing.assert_array_equal(est.row_permutation_, est.butterfly_.row_perm)
    plain = ButterflyFactorizer().fit(S[est.row_permutation_][:, est.permutation_])
    assert plain.relative_error_ <= 1e-10
    identity = ButterflyFactorizer().fit(hadamard(8))
    np.testing.assert_array_equal(identity.permutation_, np.arange(8))
    np.testing.assert_array_equal(identity.row_permutation_, np.arange(8))


@pytest.mark.parametrize("k", [-1000, 1000])
def test_orderings_are_found_at_extreme_magnitudes(k):
    # The scaling by a power of two happens before the ordering search.
    rng = np.random.default_rng(0)
    rows, cols = rng.permutation(32), rng.permutation(32)
    A = random_butterfly(32, random_state=1).toarray()
    X = np.ldexp(A[rows][:, cols], k)
    learned = butterfly_factorize(X, row_permutation="learn", permutation="learn")
    err = np.linalg.norm(np.ldexp(learned.toarray() - X, -k)) / np.linalg.norm(A)
    assert err < 1e-10
    auto = ButterflyFactorizer(row_permutation="auto", permutation="auto").fit(
        np.ldexp(A, k)
    )
    assert np.isfinite(auto.relative_error_) and auto.relative_error_ < 1e-10
