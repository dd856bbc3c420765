"""Permutations of the columns used by butterfly factorizations."""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import numpy as np

from skbutterfly._validation import check_positive_int


def bit_reversal_permutation(n: int) -> np.ndarray:
    """Bit-reversal permutation of ``range(n)``, ``n`` a power of two.

    Index ``i`` maps to the integer whose ``log2(n)`` bits are those of ``i``
    reversed. It is an involution, and the DFT of size ``n`` equals the
    classic butterfly product applied after it:
    ``dft(n) @ x == F_1 ... F_L @ x[bit_reversal_permutation(n)]``.

    Parameters
    ----------
    n : int
        A power of two.

    Returns
    -------
    ndarray of shape (n,), dtype int64

    Examples
    --------
    >>> from skbutterfly import bit_reversal_permutation
    >>> bit_reversal_permutation(8)
    array([0, 4, 2, 6, 1, 5, 3, 7])
    """
    n = check_positive_int(n, "n")
    if n & (n - 1):
        raise ValueError(f"n must be a power of two, got n={n}.")
    levels = n.bit_length() - 1
    index = np.arange(n, dtype=np.int64)
    result = np.zeros(n, dtype=np.int64)
    for bit in range(levels):
        result |= ((index >> bit) & 1) << (levels - 1 - bit)
    return result
