"""skbutterfly: sparse and butterfly matrix factorizations, scikit-learn style.

Replace a dense matrix ``A`` by a product of sparse factors
``A ≈ F_1 F_2 ... F_J`` (a butterfly), applied in ``O(N log N)``; solve
fixed-support factorizations exactly when they are tractable; quantize the
factors optimally to low-precision floats.
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

from skbutterfly._butterfly_dictionary_learning import ButterflyDictionaryLearning
from skbutterfly._butterfly_factorizer import ButterflyFactorizer
from skbutterfly._fixed_support_factorizer import FixedSupportFactorizer
from skbutterfly._formats import FloatFormat, round_to_format, storage_bits
from skbutterfly._fsmf import FactorizationInfo, fixed_support_factorize
from skbutterfly._hierarchical import butterfly_factorize
from skbutterfly._io import load
from skbutterfly._operator import ButterflyMatrix
from skbutterfly._patterns import (
    Architecture,
    Pattern,
    architecture,
    chain_rank,
    fuse_patterns,
)
from skbutterfly._permutations import (
    bit_reversal_permutation,
    standard_permutation,
    standard_permutations,
)
from skbutterfly._projections import (
    SparsityConstraint,
    project_col_k,
    project_row_and_col_k,
    project_row_col_k,
    project_row_k,
    project_support,
    project_total_k,
)
from skbutterfly._quantize import quantize_butterfly, quantize_factors
from skbutterfly._quantize_rank_one import quantize_rank_one
from skbutterfly._quantized_butterfly import QuantizedButterfly
from skbutterfly._sparse_factorize import SparseFactorizationInfo, sparse_factorize
from skbutterfly._sparse_factorizer import SparseFactorizer
from skbutterfly._sparse_product import SparseProduct
from skbutterfly._support_analysis import SupportAnalysis, analyze_supports
from skbutterfly._supports import (
    block_diagonal_support,
    butterfly_support,
    full_support,
    lower_triangular_support,
    upper_triangular_support,
)
from skbutterfly._warnings import ApproximateQuantizationWarning, PoorFitWarning

__version__ = "0.1.0"

__all__ = [
    "ApproximateQuantizationWarning",
    "Architecture",
    "ButterflyDictionaryLearning",
    "ButterflyFactorizer",
    "ButterflyMatrix",
    "FactorizationInfo",
    "FixedSupportFactorizer",
    "FloatFormat",
    "Pattern",
    "PoorFitWarning",
    "QuantizedButterfly",
    "SparseFactorizationInfo",
    "SparseFactorizer",
    "SparseProduct",
    "SparsityConstraint",
    "SupportAnalysis",
    "analyze_supports",
    "architecture",
    "bit_reversal_permutation",
    "block_diagonal_support",
    "butterfly_factorize",
    "butterfly_support",
    "chain_rank",
    "fixed_support_factorize",
    "full_support",
    "fuse_patterns",
    "load",
    "lower_triangular_support",
    "project_col_k",
    "project_row_and_col_k",
    "project_row_col_k",
    "project_row_k",
    "project_support",
    "project_total_k",
    "quantize_butterfly",
    "quantize_factors",
    "quantize_rank_one",
    "round_to_format",
    "sparse_factorize",
    "standard_permutation",
    "standard_permutations",
    "storage_bits",
    "upper_triangular_support",
]
