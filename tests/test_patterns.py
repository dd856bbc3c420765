"""Patterns, chainability, fusing, architectures and supports.

References: supports built entry by entry from the index map of
Zheng et al., arXiv:2110.01235, boolean products of supports, brute-force sizes.
"""

import math
from functools import reduce

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import architectures, chainable_pairs

from skbutterfly import (
    Pattern,
    architecture,
    block_diagonal_support,
    butterfly_support,
    chain_rank,
    full_support,
    fuse_patterns,
    lower_triangular_support,
    upper_triangular_support,
)
from skbutterfly._patterns import (
    check_chain,
    fitting_size,
    max_n_factors,
    split_dimension,
)

patterns = st.tuples(*[st.integers(1, 4)] * 4).map(lambda t: Pattern(*t))


def support_by_entries(p):
    """Support of I_a (x) 1_{b x c} (x) I_d, one stored value at a time."""
    a, b, c, d = p
    mask = np.zeros(p.shape, dtype=bool)
    for ia in range(a):
        for ib in range(b):
            for ic in range(c):
                for id_ in range(d):
                    mask[ia * b * d + ib * d + id_, ia * c * d + ic * d + id_] = True
    return mask


def product_support(masks):
    return reduce(lambda L, R: (L.astype(int) @ R.astype(int)) > 0, masks)


@given(p=patterns)
def test_pattern_support_shape_and_nnz(p):
    mask = p.support()
    assert mask.dtype == bool
    assert mask.shape == p.shape == (p.a * p.b * p.d, p.a * p.c * p.d)
    np.testing.assert_array_equal(mask, support_by_entries(p))
    assert mask.sum() == p.nnz == p.a * p.b * p.c * p.d
    np.testing.assert_array_equal(p.transpose().support(), mask.T)


@given(left=patterns, right=patterns)
def test_chain_rank_refuses_what_does_not_chain(left, right):
    a1, b1, c1, d1 = left
    a2, b2, c2, d2 = right
    chainable = (
        left.shape[1] == right.shape[0]
        and a2 % a1 == 0
        and d1 % d2 == 0
        and (a1 * c1) % a2 == 0
    )
    if chainable:
        assert chain_rank(left, right) == a1 * c1 // a2
    else:
        with pytest.raises(ValueError, match="not chainable"):
            chain_rank(left, right)
        with pytest.raises(ValueError, match="not chainable"):
            fuse_patterns(left, right)


@given(pair=chainable_pairs())
def test_fused_pattern_is_the_support_of_the_product(pair):
    """The product has the fused support and rank-r sub-blocks (b1 x c2)."""
    left, right, r = pair
    assert chain_rank(left, right) == r
    fused = fuse_patterns(left, right)
    rng = np.random.default_rng(0)
    L = left.support() * rng.standard_normal(left.shape)
    R = right.support() * rng.standard_normal(right.shape)
    P = L @ R
    assert fused.shape == P.shape
    np.testing.assert_array_equal(P != 0, fused.support())
    np.testing.assert_array_equal(
        product_support([left.support(), right.support()]), fused.support()
    )
    a1, b1, c1, d1 = left
    c2, d2 = right.c, right.d
    alpha, delta = right.a // a1, d1 // d2
    P8 = P.reshape(a1, b1, delta, d2, a1, alpha, c2, d2)
    u, v = np.arange(a1)[:, None], np.arange(d2)[None, :]
    blocks = P8[u, :, :, v, u, :, :, v]  # (a1, d2, b1, delta, alpha, c2)
    blocks = blocks.transpose(0, 1, 3, 4, 2, 5)
    assert (np.linalg.matrix_rank(blocks) == min(r, b1, c2)).all()


@pytest.mark.parametrize(
    "left, right, r",
    [
        ((1, 2, 2, 4), (2, 2, 2, 2), 1),
        ((1, 2, 4, 4), (2, 4, 2, 2), 2),
        ((1, 4, 4, 4), (4, 4, 4, 1), 1),
        ((1, 3, 2, 5), (2, 5, 7, 1), 1),
        ((1, 2, 2, 2), (1, 2, 2, 2), 2),
    ],
)
def test_chain_rank_on_known_chainable_pairs(left, right, r):
    assert chain_rank(Pattern(*left), Pattern(*right)) == r


@pytest.mark.parametrize(
    "left, right",
    [
        ((2, 2, 2, 1), (1, 2, 2, 2)),  # a1 does not divide a2
        ((1, 2, 2, 2), (1, 2, 2, 1)),  # sizes differ
        ((2, 2, 2, 2), (1, 2, 2, 4)),  # classic factors in the wrong order
        ((2, 1, 3, 2), (4, 3, 1, 1)),  # r = a1*c1/a2 = 3/2 not integer
    ],
)
def test_chain_rank_on_known_non_chainable_pairs(left, right):
    with pytest.raises(ValueError, match="not chainable"):
        chain_rank(Pattern(*left), Pattern(*right))
    with pytest.raises(ValueError, match="not chainable"):
        check_chain([left, right])


def test_check_chain_rejects_empty_and_non_positive():
    with pytest.raises(ValueError, match="at least one"):
        check_chain([])
    with pytest.raises(ValueError, match=">= 1"):
        check_chain([(1, 0, 2, 2)])


@given(kwargs=architectures(max_side=40))
def test_architecture_properties(kwargs):
    arch = architecture(**kwargs)
    m, n = kwargs["shape"]
    J = kwargs["n_factors"]
    assert len(arch) == J == len(arch.patterns)
    assert arch.shape == (m, n) and arch.rank == kwargs["rank"]
    pm, pn = arch.padded_shape
    assert pm >= m and pn >= n
    assert (pm, pn) == (arch[0].shape[0], arch[-1].shape[1])
    assert (pm, pn) == (fitting_size(m, J), fitting_size(n, J))
    assert arch.nnz == sum(p.nnz for p in arch)
    chain = check_chain(arch)
    for left, right in zip(chain[:-1], chain[1:]):
        assert chain_rank(left, right) == kwargs["rank"]
    # The product of the supports is full: a butterfly can reach any matrix.
    if pm * pn <= 4096:
        assert product_support([p.support() for p in arch]).all()


@pytest.mark.parametrize("L", [1, 2, 3, 5, 8])
def test_classic_architecture_for_powers_of_two(L):
    N = 2**L
    arch = architecture((N, N))
    assert [tuple(p) for p in arch] == [
        (2 ** (k - 1), 2, 2, N // 2**k) for k in range(1, L + 1)
    ]
    assert arch.padded_shape == (N, N)
    for k, p in enumerate(arch, start=1):
        np.testing.assert_array_equal(p.support(), butterfly_support(N, k))


@pytest.mark.parametrize("L, J", [(4, 2), (6, 2), (6, 3), (8, 4), (7, 2)])
def test_fewer_factors_fuse_consecutive_classic_factors(L, J):
    """J < log2 N: each factor's support is a product of classic supports."""
    N = 2**L
    arch = architecture((N, N), n_factors=J)
    sizes = [int(math.log2(p.b)) for p in arch]
    assert sum(sizes) == L and max(sizes) - min(sizes) <= 1
    start = 1
    for p, size in zip(arch, sizes):
        classic = [butterfly_support(N, k) for k in range(start, start + size)]
        np.testing.assert_array_equal(p.support(), product_support(classic))
        start += size


def test_rectangular_architecture_splits_both_dimensions():
    arch = architecture((12, 30), n_factors=2)
    assert arch.padded_shape == (12, 30)
    assert [tuple(p) for p in arch] == [(1, 3, 5, 4), (5, 4, 6, 1)]


def test_padding_raise_lists_the_fitting_sizes():
    with pytest.raises(ValueError, match=r"sizes that fit: \(8, 9\)"):
        architecture((7, 9), n_factors=2, padding="raise")
    arch = architecture((7, 9), n_factors=2)
    assert arch.padded_shape == (8, 9)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (
            {"shape": (8, 8), "n_factors": 1025},
            ValueError,
            r"n_factors must be in \[1, 1024\]",
        ),
        ({"shape": (8, 8), "n_factors": 0}, ValueError, "n_factors"),
        ({"shape": (8, 8), "n_factors": 2.0}, TypeError, "n_factors"),
        ({"shape": (8, 8), "rank": 0}, ValueError, "rank"),
        ({"shape": (8, 8), "padding": "edge"}, ValueError, "padding"),
        ({"shape": (0, 8)}, ValueError, "n_samples=0"),
        ({"shape": 8}, ValueError, "pair of integers"),
    ],
)
def test_architecture_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        architecture(**kwargs)


@given(n=st.integers(1, 5000), J=st.integers(1, 6))
def test_split_dimension_is_a_balanced_factorisation(n, J):
    parts = split_dimension(n, J)
    if parts is None:
        assert J > 1 and fitting_size(n, J) > n
        return
    assert len(parts) == J and math.prod(parts) == n
    if J > 1:
        assert min(parts) >= 2
    assert fitting_size(n, J) == n


@given(n=st.integers(1, 300), J=st.integers(2, 5))
def test_fitting_size_is_the_smallest_splittable_size(n, J):
    size = fitting_size(n, J)
    assert size >= n and split_dimension(size, J) is not None
    assert all(split_dimension(s, J) is None for s in range(n, size))


def test_max_n_factors():
    assert max_n_factors((8, 8)) == 3 and max_n_factors((5, 100)) == 7


# -- supports -------------------------------------------------------------------


def test_butterfly_support_bad_arguments():
    with pytest.raises(ValueError, match="power of two"):
        butterfly_support(12, 1)
    with pytest.raises(ValueError, match=r"k must be in \[1, 3\]"):
        butterfly_support(8, 4)


@given(m=st.integers(1, 12), n=st.integers(1, 12))
def test_common_supports_by_entries(m, n):
    i, j = np.indices((m, n))
    np.testing.assert_array_equal(lower_triangular_support((m, n)), i >= j)
    np.testing.assert_array_equal(upper_triangular_support((m, n)), i <= j)
    np.testing.assert_array_equal(full_support((m, n)), np.ones((m, n), bool))
    for s in (lower_triangular_support, upper_triangular_support, full_support):
        assert s((m, n)).dtype == bool


@given(m=st.integers(1, 20), n=st.integers(1, 20), data=st.data())
def test_block_diagonal_support(m, n, data):
    k = data.draw(st.integers(1, min(m, n)))
    mask = block_diagonal_support((m, n), k)
    assert mask.shape == (m, n) and mask.dtype == bool
    rows = [np.flatnonzero(r) for r in mask]
    # k contiguous blocks of near-equal sizes on the diagonal, covering all.
    row_sizes = np.unique([len(r) for r in rows])
    assert all(len(r) > 0 for r in rows) and mask.any(axis=0).all()
    assert row_sizes.max() - row_sizes.min() <= 1
    distinct = {tuple(r) for r in rows}
    assert len(distinct) == k
    assert mask.sum() == sum(len(r) for r in rows)
    # Block-diagonal: the column groups increase with the row groups.
    starts = [r[0] for r in rows]
    assert starts == sorted(starts)
    if m == n:
        np.testing.assert_array_equal(mask, mask.T)


def test_block_diagonal_support_example_and_errors():
    expected = np.kron(np.eye(3, dtype=bool), np.ones((2, 1), bool))
    np.testing.assert_array_equal(block_diagonal_support((6, 3), 3), expected)
    with pytest.raises(ValueError, match="n_blocks"):
        block_diagonal_support((4, 4), 5)
    with pytest.raises(ValueError, match="shape"):
        full_support((0, 3))


@pytest.mark.parametrize("shape", [(8, 8), (6, 5), (3, 12)])
def test_architecture_beyond_log2_appends_diagonal_factors(shape):
    upper = max_n_factors(shape)
    base = architecture(shape, n_factors=upper)
    deep = architecture(shape, n_factors=upper + 3)
    n_pad = base.padded_shape[1]
    assert deep.patterns[:upper] == base.patterns
    assert deep.patterns[upper:] == (Pattern(n_pad, 1, 1, 1),) * 3
    assert deep.padded_shape == base.padded_shape
    # Each extra factor is a diagonal matrix of size n_pad.
    assert np.array_equal(deep[-1].support(), np.eye(n_pad, dtype=bool))
    assert deep.nnz == base.nnz + 3 * n_pad
    check_chain(deep.patterns)
