"""Permutations of the rows and columns used by butterfly factorizations."""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

from numbers import Integral

import numpy as np

from skbutterfly._validation import check_permutation, check_power_of_two


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
    n = check_power_of_two(n, "n")
    levels = n.bit_length() - 1
    index = np.arange(n, dtype=np.int64)
    result = np.zeros(n, dtype=np.int64)
    for bit in range(levels):
        result |= ((index >> bit) & 1) << (levels - 1 - bit)
    return result


STANDARD_CODES = ("000", "001", "010", "011", "100", "101", "110", "111")


def _elementary_block(size, kind):
    """Gather indices of an elementary permutation of ``range(size)``.

    ``kind`` 0 reverses the second half, 1 reverses the first half, 2 puts
    the even indices before the odd ones (Dao et al.'s (c), (b), (a)).
    """
    half = np.arange(size // 2)
    if kind == 0:
        rows, cols = np.r_[half, size // 2 + half], np.r_[half, size - 1 - half]
    elif kind == 1:
        rows, cols = np.r_[size // 2 - 1 - half, size // 2 + half], np.arange(size)
    else:
        rows, cols = np.arange(size), np.r_[2 * half, 2 * half + 1]
    gather = np.empty(size, dtype=np.int64)
    gather[rows] = cols
    return gather


def standard_permutation(n: int, code: str) -> np.ndarray:
    """One of the eight standard butterfly permutations of ``range(n)``.

    Following Dao et al. (2019), at each level ``i = 2..log2(n)`` a block of
    size ``2**i`` (repeated ``n / 2**i`` times) is the product
    :math:`P_c^{x} P_b^{y} P_a^{z}` of three optional elementary
    permutations: (c) reverse the second half, (b) reverse the first half,
    (a) evens before odds; ``code = "xyz"`` chooses them, shared by all
    levels, and the levels are multiplied as :math:`P_2 P_3 \\cdots P_L`
    (pyfaust's ``perm="default_8"``). ``"000"`` is the identity and
    ``"001"`` the bit reversal.

    Parameters
    ----------
    n : int
        A power of two.
    code : str
        Three binary digits, one of ``"000"``, ..., ``"111"``.

    Returns
    -------
    ndarray of shape (n,), dtype int64
        ``perm`` such that ``x[perm]`` is the permuted vector.

    Examples
    --------
    >>> from skbutterfly import standard_permutation
    >>> standard_permutation(8, "001")
    array([0, 4, 2, 6, 1, 5, 3, 7])
    >>> standard_permutation(8, "110")
    array([2, 3, 0, 1, 6, 7, 4, 5])
    """
    n = check_power_of_two(n, "n")
    if code not in STANDARD_CODES:
        raise ValueError(
            f"code must be one of {STANDARD_CODES} (choices of (c), (b), (a)), "
            f"got {code!r}."
        )
    levels = n.bit_length() - 1
    perm = np.arange(n, dtype=np.int64)
    for i in range(2, levels + 1):
        size = 2**i
        block = np.arange(size)
        for kind, digit in enumerate(code):
            if digit == "1":
                block = _elementary_block(size, kind)[block]
        offsets = np.arange(n // size, dtype=np.int64)[:, None] * size
        perm = (offsets + block[None, :]).ravel()[perm]
    return perm


def standard_permutations(n: int) -> dict:
    """The eight standard butterfly permutations of ``range(n)``, by code.

    See :func:`standard_permutation`; the keys are ``"000"``, ..., ``"111"``
    (pyfaust's and the ICASSP paper's "default 8" candidates).

    Examples
    --------
    >>> from skbutterfly import standard_permutations
    >>> perms = standard_permutations(4)
    >>> list(perms)
    ['000', '001', '010', '011', '100', '101', '110', '111']
    >>> perms["001"]
    array([0, 2, 1, 3])
    """
    return {code: standard_permutation(n, code) for code in STANDARD_CODES}


def permutation_candidates(permutation, n: int, name: str = "permutation") -> list:
    """Candidate permutations of one side of a factorization, validated.

    Parameters
    ----------
    permutation : None, str, array-like of int or list
        ``None`` (the identity), ``"bit-reversal"``, a code ``"000"`` ...
        ``"111"`` (:func:`standard_permutation`), ``"default-8"`` (the eight
        codes), an index array, or a list or tuple of these.
    n : int
        Number of (padded) columns, or rows.
    name : str, default="permutation"
        Parameter named in error messages.

    Returns
    -------
    list of (ndarray of int64 or None)
        The candidates, ``None`` for the identity.

    Examples
    --------
    >>> from skbutterfly._permutations import permutation_candidates
    >>> permutation_candidates([None, "bit-reversal"], 4)
    [None, array([0, 2, 1, 3])]
    >>> len(permutation_candidates("default-8", 8))
    8
    """
    if isinstance(permutation, str) and permutation in ("default-8", "default_8"):
        return [standard_permutation(n, code) for code in STANDARD_CODES]
    if isinstance(permutation, (list, tuple)) and not permutation:
        raise ValueError(f"{name} is an empty list of candidates.")
    if isinstance(permutation, (list, tuple)) and not _is_index_sequence(permutation):
        return [
            p for item in permutation for p in permutation_candidates(item, n, name)
        ]
    if permutation is None:
        return [None]
    if isinstance(permutation, str):
        if permutation == "bit-reversal":
            return [bit_reversal_permutation(n)]
        if permutation in STANDARD_CODES:
            return [standard_permutation(n, permutation)]
        raise ValueError(
            f"{name} must be None, 'bit-reversal', 'default-8', 'auto', "
            f"'learn', a code in {STANDARD_CODES}, an index array or a list of "
            f"these, got {permutation!r}."
        )
    return [check_permutation(permutation, n, name=name)]


def auto_candidates(n: int) -> list:
    """The candidates of ``"auto"`` on a side of ``n`` (padded) entries.

    The identity and, when ``n`` is a power of two (at least 4), the seven
    other standard permutations (:func:`standard_permutations`; ``"001"``
    is the bit reversal), in the order of their codes.

    Examples
    --------
    >>> from skbutterfly._permutations import auto_candidates
    >>> len(auto_candidates(16)), auto_candidates(6)
    (8, [None])
    """
    if n < 4 or n & (n - 1):
        return [None]
    return [None, *(standard_permutation(n, code) for code in STANDARD_CODES[1:])]


def _is_index_sequence(items):
    """Whether a list or tuple is one index array (not a list of candidates)."""
    return all(
        isinstance(item, Integral | np.integer) and not isinstance(item, bool)
        for item in items
    )
