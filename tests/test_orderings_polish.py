"""Subtree exchanges that repair a learned rank-one butterfly ordering."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skbutterfly import butterfly_factorize
from skbutterfly._orderings_polish import _exchange, _merge, _tree, polish_subtrees
from skbutterfly.datasets import random_butterfly


def _relative_error(M):
    B = butterfly_factorize(M)
    return np.linalg.norm(B.toarray() - M) / np.linalg.norm(M)


def _tree_cost(M):
    return sum(loss.sum() for loss in _tree(M)[1])


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_merge_is_the_leading_singular_pair(dtype):
    rng = np.random.default_rng(0)
    shape = (5, 3, 8)  # (items, column groups, width)
    x1 = rng.standard_normal(shape).astype(dtype)
    x2 = rng.standard_normal(shape).astype(dtype)
    if dtype == np.complex128:
        x1 += 1j * rng.standard_normal(shape)
        x2 += 1j * rng.standard_normal(shape)
    y, loss = _merge(x1.reshape(5, -1), x2.reshape(5, -1), 8)
    y = y.reshape(shape)
    blocks = np.stack([x1, x2], axis=-2)  # (items, groups, 2, width)
    U, s, Vh = np.linalg.svd(blocks, full_matrices=False)
    np.testing.assert_allclose(loss, np.sum(s[..., 1] ** 2, axis=-1), rtol=1e-10)
    # y is sigma_1 v_1^H on every column group, up to a unit factor.
    np.testing.assert_allclose(np.linalg.norm(y, axis=-1), s[..., 0], rtol=1e-10)
    overlap = np.abs(np.sum(y * np.conj(Vh[..., 0, :]), axis=-1))
    np.testing.assert_allclose(overlap, s[..., 0], rtol=1e-10)


def test_merge_of_zero_and_of_proportional_rows():
    x = np.arange(1.0, 9.0)[None, :]
    y, loss = _merge(x, np.zeros_like(x), 4)
    np.testing.assert_allclose(np.abs(y), np.abs(x))
    np.testing.assert_allclose(loss, 0, atol=1e-12)
    y, loss = _merge(x, -2 * x, 8)
    np.testing.assert_allclose(loss, 0, atol=1e-10)
    np.testing.assert_allclose(np.linalg.norm(y), np.sqrt(5) * np.linalg.norm(x))


def test_exact_butterfly_is_left_as_it_is():
    M = random_butterfly(32, random_state=1).toarray()
    order = polish_subtrees(M)
    assert _relative_error(M[order]) <= 1e-10
    assert _tree_cost(M) <= 1e-13 * np.sum(M**2)


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    level=st.integers(0, 4),
    pair=st.integers(0, 2**10),
    complex_=st.booleans(),
)
def test_exchanged_subtrees_are_put_back(seed, level, pair, complex_):
    """Two groups of one level exchanged (not siblings): the polish repairs it."""
    N, L = 64, 6
    dtype = np.complex128 if complex_ else np.float64
    M = random_butterfly(N, dtype=dtype, random_state=seed).toarray()
    count = 1 << (L - level)
    a = pair % count
    # A group within the same group three levels up, but not a sibling.
    top = 1 << max(L - level - 3, 0)
    b = (a + top * (1 + pair // count % 3)) % count
    if (b - a) % (count // 2) == 0:
        b = (b + top) % count
    broken = _exchange(np.arange(N), L, level, a, b)
    assert _relative_error(M[broken]) > 1e-3
    fixed = broken[polish_subtrees(M[broken])]
    assert _relative_error(M[fixed]) <= 1e-10


def test_noisy_exchange_is_repaired_and_the_cost_never_increases():
    N, L = 64, 6
    rng = np.random.default_rng(4)
    M = random_butterfly(N, random_state=4).toarray()
    E = rng.standard_normal(M.shape)
    M = M + 0.01 * np.linalg.norm(M) / np.linalg.norm(E) * E
    truth = _relative_error(M)
    broken = _exchange(np.arange(N), L, 2, 1, 3)
    assert _relative_error(M[broken]) > 3 * truth
    order = polish_subtrees(M[broken])
    fixed = broken[order]
    assert _tree_cost(M[fixed]) <= _tree_cost(M[broken])
    assert _relative_error(M[fixed]) <= 1.001 * truth
    assert np.array_equal(np.sort(order), np.arange(N))


def test_small_sizes():
    for N in (1, 2):
        np.testing.assert_array_equal(polish_subtrees(np.ones((N, N))), np.arange(N))
    M = random_butterfly(4, random_state=0).toarray()
    assert _relative_error(M[polish_subtrees(M)]) <= 1e-12
