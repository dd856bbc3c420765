"""skbutterfly: sparse and butterfly matrix factorizations, scikit-learn style.

Replace a dense matrix ``A`` by a product of sparse factors
``A ≈ F_1 F_2 ... F_J`` (a butterfly), applied in ``O(N log N)``; solve
fixed-support factorizations exactly when they are tractable; quantize the
factors optimally to low-precision floats.
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

from skbutterfly._operator import ButterflyMatrix, load
from skbutterfly._patterns import (
    Architecture,
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
from skbutterfly._permutations import bit_reversal_permutation

__version__ = "0.1.0"

__all__ = [
    "Architecture",
    "ButterflyMatrix",
    "Pattern",
    "architecture",
    "bit_reversal_permutation",
    "block_diagonal_support",
    "butterfly_support",
    "chain_rank",
    "full_support",
    "fuse_patterns",
    "load",
    "lower_triangular_support",
    "upper_triangular_support",
]
