"""Kronecker-sparse kernels: products, dense and sparse forms, fusing, block views.

``low_rank_blocks`` and ``truncated_svd`` are tested by their owner elsewhere.
References: matrices filled value by value from the index map of
Zheng et al., arXiv:2110.01235, dense matrix products.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import DTYPES, chainable_pairs, tolerance

from skbutterfly import Pattern, fuse_patterns
from skbutterfly._ks import (
    fuse_values,
    ks_apply,
    ks_indices,
    ks_to_dense,
    merge_blocks,
    split_blocks,
)

patterns = st.tuples(*[st.integers(1, 4)] * 4).map(lambda t: Pattern(*t))


def random_values(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    K = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        K = K + 1j * rng.standard_normal(shape)
    return K.astype(dtype)


def dense_by_entries(K):
    """Place every stored value at row a*b*d + b*d + d, column a*c*d + c*d + d."""
    a, b, c, d = K.shape
    dense = np.zeros((a * b * d, a * c * d), dtype=K.dtype)
    for (ia, ib, ic, id_), value in np.ndenumerate(K):
        dense[ia * b * d + ib * d + id_, ia * c * d + ic * d + id_] = value
    return dense


@given(p=patterns, dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**16))
def test_ks_to_dense_places_every_value(p, dtype, seed):
    K = random_values(p, dtype, seed)
    D = ks_to_dense(K)
    assert D.dtype == K.dtype and D.shape == p.shape
    np.testing.assert_array_equal(D, dense_by_entries(K))
    np.testing.assert_array_equal(D != 0, p.support())


@given(p=patterns)
def test_ks_indices_follow_the_index_map(p):
    rows, cols = ks_indices(p)
    assert rows.shape == cols.shape == tuple(p)
    assert rows.dtype == cols.dtype == np.int64
    K = random_values(p, np.float64, 0)
    D = np.zeros(p.shape)
    D[rows, cols] = K
    np.testing.assert_array_equal(D, dense_by_entries(K))
    # Every stored value has its own position.
    assert len(set(zip(rows.ravel(), cols.ravel()))) == p.nnz


@given(
    p=patterns,
    dtype=st.sampled_from(DTYPES),
    n=st.sampled_from([1, 3, 10]),
    cached=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_ks_apply_equals_dense_product(p, dtype, n, cached, seed):
    K = random_values(p, dtype, seed)
    X = random_values((p.shape[1], n), dtype, seed + 1)
    Kt = np.ascontiguousarray(K.transpose(0, 3, 1, 2)) if cached else None
    Y = ks_apply(K, X, Kt)
    assert Y.shape == (p.shape[0], n) and Y.dtype == K.dtype
    D = dense_by_entries(K)
    bound = np.abs(D) @ np.abs(X)
    np.testing.assert_allclose(Y, D @ X, atol=tolerance(dtype) * bound.max())


def test_ks_apply_does_not_modify_inputs():
    K = random_values((2, 3, 2, 2), np.float64, 0)
    X = random_values((8, 4), np.float64, 1)
    K.flags.writeable = X.flags.writeable = False
    K0, X0 = K.copy(), X.copy()
    ks_apply(K, X)
    ks_apply(K, X[:, :1])
    np.testing.assert_array_equal(K, K0)
    np.testing.assert_array_equal(X, X0)


@given(pair=chainable_pairs(), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 99))
def test_fuse_values_equals_dense_product(pair, dtype, seed):
    left, right, _ = pair
    K1 = random_values(left, dtype, seed)
    K2 = random_values(right, dtype, seed + 1)
    F = fuse_values(K1, K2)
    assert F.shape == tuple(fuse_patterns(left, right))
    D1, D2 = dense_by_entries(K1), dense_by_entries(K2)
    bound = np.abs(D1) @ np.abs(D2)
    np.testing.assert_allclose(
        ks_to_dense(F), D1 @ D2, atol=tolerance(dtype) * bound.max()
    )


def reference_blocks(T, left, right):
    """The b1 x c2 blocks of the dense target, indexed (u, x, gamma, v)."""
    a1, b1, _, d1 = left
    alpha, c2, d2 = right.a // a1, right.c, right.d
    delta = d1 // d2
    D = ks_to_dense(T).reshape(a1, b1, delta, d2, a1, alpha, c2, d2)
    u, v = np.arange(a1)[:, None], np.arange(d2)[None, :]
    blocks = D[u, :, :, v, u, :, :, v]  # (a1, d2, b1, delta, alpha, c2)
    return blocks.transpose(0, 3, 4, 1, 2, 5)


@given(pair=chainable_pairs(), seed=st.integers(0, 99))
def test_split_blocks_views_the_blocks_of_the_target(pair, seed):
    left, right, _ = pair
    T = random_values(fuse_patterns(left, right), np.float64, seed)
    blocks = split_blocks(T, tuple(left), tuple(right))
    np.testing.assert_array_equal(blocks, reference_blocks(T, left, right))
    assert np.shares_memory(blocks, T)


@given(pair=chainable_pairs(), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 99))
def test_merge_blocks_inverts_split_blocks(pair, dtype, seed):
    """K1 K2 from merge_blocks(U, V) has the blocks U @ V, and conversely."""
    left, right, r = pair
    a1, b1, _, d1 = left
    alpha, c2, d2 = right.a // a1, right.c, right.d
    delta = d1 // d2
    U = random_values((a1, delta, alpha, d2, b1, r), dtype, seed)
    V = random_values((a1, delta, alpha, d2, r, c2), dtype, seed + 1)
    K1, K2 = merge_blocks(U, V, tuple(left), tuple(right))
    assert K1.shape == tuple(left) and K2.shape == tuple(right)
    assert K1.flags.c_contiguous and K2.flags.c_contiguous
    product = dense_by_entries(K1) @ dense_by_entries(K2)
    fused = fuse_patterns(left, right)
    # Read the product's values on the fused pattern, then its blocks.
    rows, cols = ks_indices(fused)
    T = product[rows, cols]
    np.testing.assert_allclose(
        split_blocks(T, tuple(left), tuple(right)),
        U @ V,
        atol=tolerance(dtype) * (np.abs(U) @ np.abs(V)).max(),
    )
    # Every value of U and V lands in a factor, once.
    assert np.isin(U, K1).all() and np.isin(V, K2).all()


@pytest.mark.parametrize("dtype", [np.float32, np.complex64])
def test_fuse_values_keeps_single_precision(dtype):
    K1 = random_values((1, 2, 2, 2), dtype, 0)
    K2 = random_values((2, 2, 2, 1), dtype, 1)
    assert fuse_values(K1, K2).dtype == dtype
