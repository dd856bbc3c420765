"""Split orders of the hierarchical factorization (skbutterfly._trees)."""

import numpy as np
import pytest

from skbutterfly._trees import split_order

# ----------------------------------------------------------------------------
# Split orders
# ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_factors", "expected"),
    # Zheng et al., arXiv:2110.01235: pyfaust / lazylinop balanced orders.
    [
        (2, [0]),
        (4, [1, 0, 2]),
        (5, [1, 0, 2, 3]),
        (6, [2, 0, 1, 3, 4]),
        (8, [3, 1, 0, 2, 5, 4, 6]),
        (10, [4, 1, 0, 2, 3, 6, 5, 7, 8]),
    ],
)
def test_balanced_order_matches_reference(n_factors, expected):
    assert split_order("balanced", n_factors) == expected


def test_split_orders_of_named_and_nested_trees():
    assert split_order("left", 5) == [0, 1, 2, 3]
    assert split_order("right", 5) == [3, 2, 1, 0]
    assert split_order("balanced", 1) == []
    assert split_order(((0, 1), (2, 3)), 4) == [1, 0, 2]
    assert split_order((0, (1, (2, 3))), 4) == [0, 1, 2]
    assert split_order((((0, 1), 2), 3), 4) == [2, 1, 0]
    assert split_order((0, 1), 2) == [0]
    assert split_order([2, 0, 1], 4) == [2, 0, 1]
    assert split_order(np.array([1, 0]), 3) == [1, 0]


@pytest.mark.parametrize(
    "tree",
    ["middle", [0, 0, 1], [0, 1], ((0, 1), (3, 2)), ((0, 1), 2, 3), (0, (1, 2))],
)
def test_split_order_rejects_bad_trees(tree):
    with pytest.raises(ValueError, match=r"tree|order|permutation of range"):
        split_order(tree, 4)
