"""Hierarchical butterfly factorization: exact recovery, uniqueness, noise bounds."""

import functools
import itertools

import numpy as np
import pytest

from skbutterfly import (
    architecture,
    bit_reversal_permutation,
    butterfly_factorize,
    fuse_patterns,
    standard_permutation,
    standard_permutations,
)
from skbutterfly._block_svd import low_rank_blocks, truncated_svd
from skbutterfly._ks import fuse_values, ks_to_dense, split_blocks
from skbutterfly._permutations import permutation_candidates
from skbutterfly._split import left_normalize, right_normalize
from skbutterfly.datasets import add_noise, dft, hadamard, random_butterfly

TOL = {np.float64: 1e-12, np.complex128: 1e-12, np.float32: 1e-5}


def _relative_error(A, B):
    return np.linalg.norm(A - B.toarray()) / np.linalg.norm(A)


def _random_order(n_factors, seed=0):
    return np.random.default_rng(seed).permutation(n_factors - 1).tolist()


# ----------------------------------------------------------------------------
# Exact recovery
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.complex128, np.float32])
@pytest.mark.parametrize("rank", [1, 2])
@pytest.mark.parametrize("n_factors", [1, 2, 3, None])
@pytest.mark.parametrize("tree", ["balanced", "left", "right", "random"])
@pytest.mark.parametrize("shape", [(32, 32), (16, 64), (64, 16)])
def test_exact_recovery(shape, tree, n_factors, rank, dtype):
    truth = random_butterfly(
        shape, n_factors=n_factors, rank=rank, dtype=dtype, random_state=0
    )
    A = truth.toarray()
    if tree == "random":
        tree = _random_order(truth.n_factors, seed=1)
    B = butterfly_factorize(A, n_factors=n_factors, rank=rank, tree=tree)
    assert B.dtype == A.dtype
    assert B.shape == A.shape
    assert B.n_factors == truth.n_factors
    assert [K.shape for K in B.factors] == [K.shape for K in truth.factors]
    assert _relative_error(A, B) <= TOL[dtype]


@pytest.mark.parametrize("orthonormalize", [True, False])
@pytest.mark.parametrize("tree", ["balanced", "left", ((0, 1), ((2, 3), 4))])
def test_exact_recovery_without_and_with_orthonormalization(tree, orthonormalize):
    A = random_butterfly(32, rank=2, random_state=3, dtype=np.complex128).toarray()
    B = butterfly_factorize(A, rank=2, tree=tree, orthonormalize=orthonormalize)
    assert _relative_error(A, B) <= 1e-12


@pytest.mark.parametrize("n", [8, 64, 256])
def test_hadamard_is_recovered(n):
    H = hadamard(n)
    B = butterfly_factorize(H)
    assert B.nnz == 2 * n * int(np.log2(n))
    assert _relative_error(H, B) <= 1e-12


@pytest.mark.parametrize("n", [16, 64, 256])
def test_dft_with_bit_reversal_is_recovered(n):
    F = dft(n)
    B = butterfly_factorize(F, permutation="bit-reversal")
    np.testing.assert_array_equal(B.perm, bit_reversal_permutation(n))
    assert _relative_error(F, B) <= 1e-12
    # Without the permutation, the DFT is far from a butterfly.
    assert _relative_error(F, butterfly_factorize(F)) > 0.1


def test_large_balanced_root_uses_truncated_solver_exactly():
    # N = 4096 would be the benchmark; 1024 keeps the root blocks 32 x 32 and
    # 2048 gives 32 x 64 blocks, on the subspace-iteration route.
    A = random_butterfly(2048, random_state=0).toarray()
    assert _relative_error(A, butterfly_factorize(A)) <= 1e-12


def test_padding_recovers_a_cropped_butterfly():
    # 48 x 40 does not split into 6 factors: padded to 64 x 64 and cropped.
    truth = random_butterfly((64, 64), n_factors=6, random_state=0)
    A = truth.toarray()[:48, :40]
    B = butterfly_factorize(A, n_factors=6)
    assert B.shape == (48, 40)
    assert B.padded_shape == (64, 64)
    assert _relative_error(A, B) <= 1e-12


def test_integer_input_is_cast_and_input_not_modified():
    A = hadamard(16).astype(np.int64)
    before = A.copy()
    B = butterfly_factorize(A)
    np.testing.assert_array_equal(A, before)
    assert B.dtype == np.float64
    assert _relative_error(A, B) <= 1e-12
    readonly = hadamard(16)
    readonly.flags.writeable = False
    butterfly_factorize(readonly, tree="left")


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_n_jobs_gives_the_same_factorization(n_jobs):
    A = add_noise(random_butterfly(256, random_state=0).toarray(), 0.01, random_state=1)
    reference = butterfly_factorize(A).toarray()
    np.testing.assert_allclose(
        butterfly_factorize(A, n_jobs=n_jobs).toarray(), reference, atol=1e-6
    )


# ----------------------------------------------------------------------------
# Essential uniqueness (Zheng et al., arXiv:2110.01235)
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("tree", ["balanced", "left", "right"])
@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_factors_are_unique_up_to_diagonal_rescalings(tree, dtype):
    truth = random_butterfly(16, dtype=dtype, random_state=5)
    B = butterfly_factorize(truth.toarray(), tree=tree)
    D = np.ones(16, dtype=dtype)  # D_0 = I
    for ell, (X, Y) in enumerate(zip(truth.factors, B.factors)):
        X, Y = ks_to_dense(X), D[:, None] * ks_to_dense(Y)
        assert np.array_equal(X != 0, Y != 0)
        if ell == len(B.factors) - 1:
            np.testing.assert_allclose(Y, X, rtol=1e-10, atol=1e-12)
            break
        # X = D_{l-1} Y D_l^{-1}: every column is a multiple of Y's.
        j = np.argmax(X != 0, axis=0)
        scale = Y[j, np.arange(16)] / X[j, np.arange(16)]
        np.testing.assert_allclose(X * scale, Y, rtol=1e-10, atol=1e-12)
        D = scale


# ----------------------------------------------------------------------------
# Orthonormalisation
# ----------------------------------------------------------------------------


def _pair(rank, seed=0, dtype=np.float64):
    arch = architecture((64, 64), n_factors=3, rank=rank)
    left = arch.patterns[0]
    right = functools.reduce(fuse_patterns, arch.patterns[1:])
    rng = np.random.default_rng(seed)
    K1 = rng.standard_normal(tuple(left)).astype(dtype)
    K2 = rng.standard_normal(tuple(right)).astype(dtype)
    if np.dtype(dtype).kind == "c":
        K1 = K1 + 1j * rng.standard_normal(tuple(left))
        K2 = K2 + 1j * rng.standard_normal(tuple(right))
    return K1, K2


@pytest.mark.parametrize("rank", [1, 3])
@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_normalizations_keep_the_product_and_orthonormalize(rank, dtype):
    K1, K2 = _pair(rank, dtype=dtype)
    product = ks_to_dense(K1) @ ks_to_dense(K2)
    L1, L2 = left_normalize(K1, K2)
    np.testing.assert_allclose(ks_to_dense(L1) @ ks_to_dense(L2), product, atol=1e-10)
    # Left-normal: columns of the left factor sharing a class are
    # orthonormal, i.e. its Gram matrix restricted to each class is I.
    G = ks_to_dense(L1).conj().T @ ks_to_dense(L1)
    classes = _class_members(K1.shape, K2.shape)
    assert {len(members) for members in classes} == {rank}
    for members in classes:
        np.testing.assert_allclose(
            G[np.ix_(members, members)], np.eye(rank), atol=1e-12
        )
    R1, R2 = right_normalize(K1, K2)
    np.testing.assert_allclose(ks_to_dense(R1) @ ks_to_dense(R2), product, atol=1e-10)
    G = ks_to_dense(R2) @ ks_to_dense(R2).conj().T
    for members in classes:
        np.testing.assert_allclose(
            G[np.ix_(members, members)], np.eye(rank), atol=1e-12
        )


def _class_members(left, right):
    """Inner indices grouped by identical rank-one supports (brute force)."""
    SL = ks_to_dense(np.ones(left)) != 0
    SR = ks_to_dense(np.ones(right)) != 0
    keys = {}
    for k in range(SL.shape[1]):
        key = (SL[:, k].tobytes(), SR[k].tobytes())
        keys.setdefault(key, []).append(k)
    return list(keys.values())


# ----------------------------------------------------------------------------
# Noise: error bounds (Le et al., arXiv:2411.04506)
# ----------------------------------------------------------------------------


def _two_factor_optimal_error(A, patterns, ell):
    """E_ell: optimal error of the split fuse(1..ell) | fuse(ell+1..L), by full SVDs."""
    left = functools.reduce(fuse_patterns, patterns[:ell])
    right = functools.reduce(fuse_patterns, patterns[ell:])
    blocks = split_blocks(A.reshape(1, *A.shape, 1), left, right)
    blocks = blocks.reshape(-1, left.b, right.c)
    assert np.isclose(np.linalg.norm(blocks), np.linalg.norm(A))  # blocks tile A
    s = np.linalg.svd(blocks, compute_uv=False)
    return np.sqrt((s[:, 1:] ** 2).sum())


@pytest.mark.parametrize("level", [0.01, 0.1, 0.3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_noisy_errors_obey_the_bounds(level, seed):
    n = 64
    clean = random_butterfly(n, random_state=seed).toarray()
    A = add_noise(clean, level, random_state=seed + 10)
    noise = np.linalg.norm(A - clean)
    balanced = np.linalg.norm(A - butterfly_factorize(A).toarray())
    assert balanced <= 1.05 * noise
    patterns = architecture(A.shape).patterns
    L = len(patterns)
    bound = sum(
        2 ** (L - 1 - ell) * _two_factor_optimal_error(A, patterns, ell)
        for ell in range(1, L)
    )
    left = np.linalg.norm(A - butterfly_factorize(A, tree="left").toarray())
    assert left <= bound
    # Every 2-factor problem is a relaxation: its optimum is below ours.
    assert max(_two_factor_optimal_error(A, patterns, ell) for ell in range(1, L)) <= (
        left + 1e-12
    )


def test_orthonormalization_helps_on_noisy_data():
    # Le et al., arXiv:2411.04506: left-to-right on a random product plus noise.
    errors = {True: [], False: []}
    for seed, ortho in itertools.product(range(4), [True, False]):
        clean = random_butterfly(32, random_state=seed).toarray()
        A = add_noise(clean, 0.3, random_state=seed)
        B = butterfly_factorize(A, tree="left", orthonormalize=ortho)
        errors[ortho].append(np.linalg.norm(A - B.toarray()))
    assert np.mean(errors[True]) < np.mean(errors[False])


# ----------------------------------------------------------------------------
# Permutations
# ----------------------------------------------------------------------------


def _dense_standard_permutation(n, code):
    """pyfaust's construction with dense permutation matrices (reference)."""
    levels = int(np.log2(n))

    def elementary(size, kind):
        half = size // 2
        P = np.zeros((size, size))
        ar = np.arange(half)
        if kind == 0:
            rows, cols = np.r_[ar, half + ar], np.r_[ar, size - 1 - ar]
        elif kind == 1:
            rows, cols = np.r_[half - 1 - ar, half + ar], np.r_[ar, half + ar]
        else:
            rows, cols = np.r_[ar, half + ar], np.r_[2 * ar, 2 * ar + 1]
        P[rows, cols] = 1
        return P

    P = np.eye(n)
    for i in range(2, levels + 1):
        block = np.eye(2**i)
        for kind, digit in enumerate(code):
            if digit == "1":
                block = block @ elementary(2**i, kind)
        P = P @ np.kron(np.eye(2 ** (levels - i)), block)
    return P


@pytest.mark.parametrize("n", [4, 8, 32])
def test_standard_permutations_match_dense_reference(n):
    perms = standard_permutations(n)
    assert list(perms) == ["000", "001", "010", "011", "100", "101", "110", "111"]
    x = np.arange(n, dtype=float)
    for code, perm in perms.items():
        np.testing.assert_array_equal(x[perm], _dense_standard_permutation(n, code) @ x)
    np.testing.assert_array_equal(perms["000"], np.arange(n))
    np.testing.assert_array_equal(perms["001"], bit_reversal_permutation(n))


def test_default_8_finds_an_exact_dft_factorization():
    F = dft(16)
    B = butterfly_factorize(F, permutation="default-8")
    assert _relative_error(F, B) <= 1e-12
    exact = [standard_permutation(16, c) for c in ("001", "011", "101", "111")]
    # The kept permutation is one of the four with the even/odd step (a).
    assert any(np.array_equal(B.perm, perm) for perm in exact)
    for perm in exact:
        assert _relative_error(F, butterfly_factorize(F, permutation=perm)) < 1e-12


def test_best_of_candidate_permutations_is_kept():
    perm = np.random.default_rng(0).permutation(32)
    truth = random_butterfly(32, permutation=perm, random_state=0)
    A = truth.toarray()
    B = butterfly_factorize(A, permutation=[None, "bit-reversal", perm, "110"])
    np.testing.assert_array_equal(B.perm, perm)
    assert _relative_error(A, B) <= 1e-12


def test_permutation_candidates_parse():
    assert permutation_candidates(None, 8) == [None]
    (p,) = permutation_candidates([3, 2, 1, 0, 4, 5, 6, 7], 8)
    np.testing.assert_array_equal(p, [3, 2, 1, 0, 4, 5, 6, 7])
    assert len(permutation_candidates(["default-8", None], 8)) == 9


@pytest.mark.parametrize(
    ("permutation", "error", "match"),
    [
        ("reverse", ValueError, "permutation must be None"),
        ([0, 1, 2], ValueError, r"shape \(16,\)"),
        (np.zeros(16, dtype=int), ValueError, "not a permutation"),
        (np.arange(16) + 0.5, TypeError, "integers"),
        ([], ValueError, "empty"),
    ],
)
def test_invalid_permutations_raise(permutation, error, match):
    with pytest.raises(error, match=match):
        butterfly_factorize(hadamard(16), permutation=permutation)


def test_bit_reversal_needs_a_power_of_two():
    with pytest.raises(ValueError, match="power of two"):
        butterfly_factorize(np.ones((12, 12)), n_factors=2, permutation="bit-reversal")


# ----------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_raises(bad):
    A = hadamard(8)
    A[2, 3] = bad
    with pytest.raises(ValueError, match="NaN or infinity"):
        butterfly_factorize(A)


@pytest.mark.parametrize("shape", [(0, 4), (4, 0)])
def test_empty_input_raises(shape):
    with pytest.raises(ValueError, match="empty"):
        butterfly_factorize(np.zeros(shape))


def test_padding_raise_names_the_shape_and_fitting_sizes():
    with pytest.raises(ValueError, match=r"n_samples=6, n_features=5.*\(8, 8\)"):
        butterfly_factorize(np.ones((6, 5)), n_factors=3, padding="raise")


@pytest.mark.parametrize("n_factors", [0, 1025, -1])
def test_n_factors_out_of_range_raises(n_factors):
    with pytest.raises(ValueError, match=r"n_factors must be in \[1, 1024\]"):
        butterfly_factorize(hadamard(16), n_factors=n_factors)


def test_other_bad_arguments_raise():
    with pytest.raises(TypeError, match="orthonormalize"):
        butterfly_factorize(hadamard(8), orthonormalize="yes")
    with pytest.raises(ValueError, match="rank"):
        butterfly_factorize(hadamard(8), rank=0)
    with pytest.raises(ValueError, match="padding"):
        butterfly_factorize(hadamard(8), padding="edge")
    with pytest.raises(ValueError, match="2-D"):
        butterfly_factorize(np.ones(8))
    with pytest.raises(TypeError, match="dtype"):
        butterfly_factorize(np.array([["a", "b"], ["c", "d"]]))


def test_fuse_values_of_the_fit_is_the_matrix():
    # The dense product of the factors (fused pairwise) is the fitted matrix.
    A = random_butterfly(16, rank=2, random_state=4).toarray()
    B = butterfly_factorize(A, rank=2)
    fused = functools.reduce(fuse_values, B.factors)
    np.testing.assert_allclose(fused.reshape(16, 16), A, atol=1e-12)


@pytest.mark.parametrize("svd_tol", [0.0, 1e-3])
def test_two_factor_fit_is_the_optimal_split(svd_tol):
    # J = 2: one split of 32 x 32 blocks (subspace iteration), whose optimum is
    # known from full SVDs; svd_tol bounds the excess error.
    A = np.random.default_rng(0).standard_normal((1024, 1024))
    patterns = architecture(A.shape, n_factors=2).patterns
    optimum = _two_factor_optimal_error(A, patterns, 1)
    error = np.linalg.norm(A - butterfly_factorize(A, 2, svd_tol=svd_tol).toarray())
    assert optimum <= error * (1 + 1e-12)
    assert error <= optimum * (1 + (1e-7 if svd_tol == 0 else 5e-3))


def test_svd_tol_is_validated():
    with pytest.raises(ValueError, match="svd_tol"):
        butterfly_factorize(hadamard(8), svd_tol=-1)


# ----------------------------------------------------------------------------
# The batched block SVD kernel (low_rank_blocks, truncated_svd)
# ----------------------------------------------------------------------------


def _stack(shape, rank=None, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    *batch, m, n = shape

    def draw(*s):
        x = rng.standard_normal(s)
        if np.dtype(dtype).kind == "c":
            x = x + 1j * rng.standard_normal(s)
        return x.astype(dtype)

    if rank is None:
        return draw(*batch, m, n)
    return draw(*batch, m, rank) @ draw(*batch, rank, n)


# 8 x 12 blocks take the Gram route, the others (short side above 16)
# subspace iteration.
BLOCK_SHAPES = [(5, 8, 12), (3, 40, 24), (6, 64, 48), (2, 3, 48, 80)]


@pytest.mark.parametrize("dtype", [np.float64, np.complex128, np.float32])
@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("shape", BLOCK_SHAPES)
def test_low_rank_blocks_recovers_exact_low_rank(shape, rank, dtype):
    B = _stack(shape, rank=rank, dtype=dtype)
    for tol in (None, 1e-3):
        U, R = low_rank_blocks(B, rank, tol=tol)
        assert U.dtype == R.dtype == B.dtype
        assert U.shape == (*shape[:-1], rank)
        assert R.shape == (*shape[:-2], rank, shape[-1])
        err = np.linalg.norm(U @ R - B) / np.linalg.norm(B)
        assert err <= (1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
@pytest.mark.parametrize("rank", [1, 3])
@pytest.mark.parametrize("shape", BLOCK_SHAPES)
def test_low_rank_blocks_is_the_truncated_svd(shape, rank, dtype):
    # A geometric spectrum (gaps between the kept and the dropped values):
    # the default tolerance converges to the optimum of full LAPACK SVDs.
    *batch, m, n = shape
    left = np.linalg.qr(_stack((*batch, m, min(m, n)), dtype=dtype, seed=1))[0]
    right = np.linalg.qr(_stack((*batch, n, min(m, n)), dtype=dtype, seed=2))[0]
    sigma = 0.7 ** np.arange(min(m, n))
    B = (left * sigma) @ right.conj().swapaxes(-1, -2)
    U, R = low_rank_blocks(B, rank)
    s = np.linalg.svd(B, compute_uv=False)
    optimum = np.sqrt((s[..., rank:] ** 2).sum())
    eye = np.eye(rank)
    np.testing.assert_allclose(
        U.conj().swapaxes(-1, -2) @ U,
        np.broadcast_to(eye, (*shape[:-2], rank, rank)),
        atol=1e-12,
    )
    np.testing.assert_allclose(R, U.conj().swapaxes(-1, -2) @ B, atol=1e-12)
    assert np.linalg.norm(B - U @ R) <= optimum * (1 + 1e-8)
    U, s_k, Vh = truncated_svd(B, rank)
    np.testing.assert_allclose(s_k, s[..., :rank], rtol=1e-8)
    np.testing.assert_allclose(
        (U * s_k[..., None, :]) @ Vh, U @ (U.conj().swapaxes(-1, -2) @ B), atol=1e-10
    )


@pytest.mark.parametrize("tol", [1e-2, 1e-3, 0.0])
def test_low_rank_blocks_tolerance_bounds_the_excess_error(tol):
    # Flat spectra (Gaussian blocks): the slowest case of subspace iteration.
    B = _stack((200, 48, 48), seed=2)
    s = np.linalg.svd(B, compute_uv=False)
    optimum_sq = (s[..., 1:] ** 2).sum()
    U, R = low_rank_blocks(B, 1, tol=tol)
    excess = np.linalg.norm(B - U @ R) ** 2 / optimum_sq - 1
    assert -1e-12 <= excess <= max(20 * tol, 1e-12)


def test_low_rank_blocks_edge_cases():
    U, R = low_rank_blocks(np.zeros((3, 40, 30)), 2)
    assert np.isfinite(U).all() and np.isfinite(R).all()
    assert not R.any()
    U, R = low_rank_blocks(np.zeros((0, 4, 5)), 2)
    assert U.shape == (0, 4, 2) and R.shape == (0, 2, 5)
    B = _stack((4, 3, 50), seed=3)
    U, R = low_rank_blocks(B, 5)  # rank above min(m, n): exact, k = 3
    assert U.shape == (4, 3, 3)
    np.testing.assert_allclose(U @ R, B, atol=1e-12)


def test_more_factors_than_log2_is_exact_on_a_butterfly():
    # As pyfaust's own test suite: an 8 x 8 DFT into 7 factors, exactly.
    F = dft(8)
    B = butterfly_factorize(F, n_factors=7, permutation="bit-reversal")
    assert B.n_factors == 7
    assert _relative_error(F, B) < 1e-12
    # The four extra factors are diagonal: the first three hold the butterfly.
    for K in B.factors[3:]:
        assert K.shape == (8, 1, 1, 1)


def test_more_factors_than_log2_is_no_worse_than_log2():
    A = np.random.default_rng(3).standard_normal((16, 16))
    errors = [
        _relative_error(A, butterfly_factorize(A, n_factors=J, svd_tol=0))
        for J in (4, 6)
    ]
    # Diagonal factors change the tree only: the error stays comparable.
    assert errors[1] < 1.5 * errors[0]
