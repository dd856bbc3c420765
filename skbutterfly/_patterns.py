"""Kronecker-sparse patterns and butterfly architectures (layer 2, structures).

A pattern ``(a, b, c, d)`` is the support :math:`I_a \\otimes 1_{b \\times c}
\\otimes I_d` of a matrix of shape ``(a*b*d, a*c*d)``; its nonzero values are
stored as a 4-D array ``K[i_a, i_b, i_c, i_d]`` placed at row
``i_a*b*d + i_b*d + i_d`` and column ``i_a*c*d + i_c*d + i_d``.
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from skbutterfly._constants import PADDINGS
from skbutterfly._validation import check_positive_int, check_shape


class Pattern(NamedTuple):
    """Kronecker-sparse pattern :math:`I_a \\otimes 1_{b \\times c} \\otimes I_d`.

    Parameters
    ----------
    a, b, c, d : int
        Number of diagonal blocks (``a``), block shape ``(b, c)`` and the size
        of the inner identity (``d``).

    Examples
    --------
    >>> from skbutterfly import Pattern
    >>> p = Pattern(1, 2, 2, 2)
    >>> p.shape, p.nnz
    ((4, 4), 8)
    >>> p.support().astype(int)
    array([[1, 0, 1, 0],
           [0, 1, 0, 1],
           [1, 0, 1, 0],
           [0, 1, 0, 1]])
    """

    a: int
    b: int
    c: int
    d: int

    @property
    def shape(self) -> tuple[int, int]:
        """Shape ``(a*b*d, a*c*d)`` of a matrix with this pattern."""
        return (self.a * self.b * self.d, self.a * self.c * self.d)

    @property
    def nnz(self) -> int:
        """Number of entries in the support, ``a*b*c*d``."""
        return self.a * self.b * self.c * self.d

    def support(self) -> np.ndarray:
        """Return the support as a dense boolean mask of shape :attr:`shape`."""
        block = np.ones((self.b, self.c), dtype=bool)
        mask = np.kron(np.eye(self.a, dtype=bool), block)
        return np.kron(mask, np.eye(self.d, dtype=bool))

    def transpose(self) -> "Pattern":
        """Pattern of the transposed matrix, ``(a, c, b, d)``."""
        return Pattern(self.a, self.c, self.b, self.d)


def chain_rank(left: Pattern, right: Pattern) -> int:
    """Return the block rank between two chainable neighbouring patterns.

    Two patterns are chainable when the sizes match (``a1*c1*d1 == a2*b2*d2``),
    ``a1`` divides ``a2``, ``d2`` divides ``d1`` and
    ``r = a1*c1/a2 = b2*d2/d1`` is an integer; ``r`` is then the rank of every
    block of their product.

    Parameters
    ----------
    left, right : Pattern
        The left and the right factor's patterns.

    Returns
    -------
    rank : int
        The block rank ``r``.

    Raises
    ------
    ValueError
        If the patterns are not chainable.

    Examples
    --------
    >>> from skbutterfly import Pattern, chain_rank
    >>> chain_rank(Pattern(1, 2, 2, 4), Pattern(2, 2, 2, 2))
    1
    """
    a1, b1, c1, d1 = left
    a2, b2, c2, d2 = right
    if min(*left, *right) < 1:
        raise ValueError(
            f"pattern entries must be >= 1, got {tuple(left)} and {tuple(right)}."
        )
    ok = (
        a1 * c1 * d1 == a2 * b2 * d2
        and a2 % a1 == 0
        and d1 % d2 == 0
        and (a1 * c1) % a2 == 0
        and (b2 * d2) % d1 == 0
        and (a1 * c1) // a2 == (b2 * d2) // d1
    )
    if not ok:
        raise ValueError(
            f"patterns {tuple(left)} and {tuple(right)} are not chainable: need "
            "a1*c1*d1 == a2*b2*d2, a1 | a2, d2 | d1 and a1*c1/a2 == b2*d2/d1 "
            "integer."
        )
    return (a1 * c1) // a2


def fuse_patterns(left: Pattern, right: Pattern) -> Pattern:
    """Pattern of the product of two chainable patterns.

    .. math:: (a_1, b_1, c_1, d_1) \\cdot (a_2, b_2, c_2, d_2) =
              (a_1, b_1 d_1 / d_2, a_2 c_2 / a_1, d_2)

    Parameters
    ----------
    left, right : Pattern
        Chainable neighbouring patterns.

    Returns
    -------
    Pattern
        The pattern of the product.

    Examples
    --------
    >>> from skbutterfly import Pattern, fuse_patterns
    >>> fuse_patterns(Pattern(1, 2, 2, 2), Pattern(2, 2, 2, 1))
    Pattern(a=1, b=4, c=4, d=1)
    """
    chain_rank(left, right)
    a1, b1, _, d1 = left
    a2, _, c2, d2 = right
    return Pattern(a1, b1 * d1 // d2, a2 * c2 // a1, d2)


def check_chain(patterns) -> tuple[Pattern, ...]:
    """Validate a chain of patterns (listed left to right) and return it."""
    chain = tuple(Pattern(*(int(v) for v in p)) for p in patterns)
    if not chain:
        raise ValueError("a chain needs at least one pattern, got none.")
    for p in chain:
        if min(p) < 1:
            raise ValueError(f"pattern entries must be >= 1, got {tuple(p)}.")
    for left, right in zip(chain[:-1], chain[1:]):
        chain_rank(left, right)
    return chain


# Largest dimension of an architecture: a butterfly with a dimension above it
# holds more than 2**40 values (terabytes), and factoring stays fast below it.
MAX_DIMENSION = 1 << 40


def _prime_factors(n):
    """Prime factors of ``n`` (with multiplicity), increasing.

    Trial division by all candidates up to ``sqrt(n)`` at once (NumPy), so
    that ``n`` up to :data:`MAX_DIMENSION` takes milliseconds.
    """
    factors = []
    for p in (2, 3):
        while n % p == 0:
            factors.append(p)
            n //= p
    if n >= 25:
        candidates = np.arange(5, math.isqrt(n) + 1, 2, dtype=np.int64)
        for p in candidates[n % candidates == 0].tolist():
            while n % p == 0:
                factors.append(p)
                n //= p
    if n > 1:
        factors.append(n)
    return factors


def split_dimension(n: int, n_factors: int):
    """Split ``n`` into ``n_factors`` integers >= 2 whose product is ``n``.

    The prime factors of ``n``, largest first, are each multiplied into the
    part with the smallest product so far, which keeps the parts balanced.
    Returns ``None`` when ``n`` has fewer than ``n_factors`` prime factors.

    Examples
    --------
    >>> from skbutterfly._patterns import split_dimension
    >>> split_dimension(1024, 3)
    [8, 8, 16]
    >>> split_dimension(1000, 3)
    [10, 10, 10]
    >>> split_dimension(7, 2) is None
    True
    """
    if n_factors == 1:
        return [n]
    primes = sorted(_prime_factors(n), reverse=True)
    if len(primes) < n_factors:
        return None
    # Largest primes first, each into the part with the smallest product.
    parts = primes[:n_factors]
    for prime in primes[n_factors:]:
        smallest = min(range(n_factors), key=parts.__getitem__)
        parts[smallest] *= prime
    return sorted(parts)


def fitting_size(n: int, n_factors: int) -> int:
    """Smallest size ``>= n`` that splits into ``n_factors`` parts ``>= 2``.

    Examples
    --------
    >>> from skbutterfly._patterns import fitting_size
    >>> fitting_size(1000, 10), fitting_size(1000, 3), fitting_size(3, 2)
    (1024, 1000, 4)
    """
    if n_factors == 1:
        return n
    # Sizes with at least ``n_factors`` prime factors: 2**(J-1) * k with
    # k >= 2 (the smallest such multiple is the first candidate), or
    # 2**e * o with o odd, e <= J - 2 and o holding J - e prime factors,
    # so o >= 3**(J - e): searched while that bound can still win.
    unit = 1 << (n_factors - 1)
    best = unit * max(2, -(-n // unit))
    for e in range(n_factors - 2, -1, -1):
        needed, scale = n_factors - e, 1 << e
        if scale * 3**needed >= best:
            break
        odd = max(-(-n // scale), 3**needed) | 1
        while scale * odd < best:
            if len(_prime_factors(odd)) >= needed:
                best = scale * odd
                break
            odd += 2
    return best


def default_n_factors(shape) -> int:
    """Default depth: ``ceil(log2(min(shape)))`` (the classic butterfly), >= 1."""
    return max(1, math.ceil(math.log2(max(1, min(shape)))))


def max_n_factors(shape) -> int:
    """Deepest proper chain: ``ceil(log2(max(shape)))`` (at least 1).

    Deeper architectures repeat a diagonal factor (see :func:`architecture`).
    """
    return max(1, math.ceil(math.log2(max(shape))))


# Bound on the depth: a mistyped huge count must fail, not allocate.
MAX_FACTORS = 1024


@dataclass(frozen=True)
class Architecture:
    """A chain of chainable patterns approximating an ``m x n`` matrix.

    Returned by :func:`architecture`; iterate over it to get the patterns,
    listed left to right.

    Attributes
    ----------
    patterns : tuple of Pattern
        The factors' patterns, left to right.
    shape : tuple of int
        Shape ``(m, n)`` of the matrix to approximate.
    padded_shape : tuple of int
        Shape of the product of the patterns (``shape`` after zero padding).
    rank : int
        Block rank between consecutive factors.
    """

    patterns: tuple
    shape: tuple
    padded_shape: tuple
    rank: int

    def __len__(self) -> int:
        return len(self.patterns)

    def __iter__(self):
        return iter(self.patterns)

    def __getitem__(self, index):
        return self.patterns[index]

    @property
    def nnz(self) -> int:
        """Total number of stored values of all factors."""
        return sum(p.nnz for p in self.patterns)


def architecture(
    shape, n_factors: int | None = None, rank: int = 1, padding: str = "zeros"
) -> Architecture:
    """Build the butterfly architecture for a matrix of a given shape.

    Each dimension is split into ``n_factors`` balanced radices (products of
    its prime factors, :func:`split_dimension`): rows into
    :math:`q_1, \\dots, q_J`, columns into
    :math:`p_1, \\dots, p_J`. Factor :math:`\\ell` (left to right) has pattern

    .. math:: \\Big(\\prod_{j<\\ell} p_j,\\; q_\\ell r_{\\ell-1},\\;
              p_\\ell r_\\ell,\\; \\prod_{j>\\ell} q_j\\Big),

    with :math:`r_0 = r_J = 1` and :math:`r_\\ell = r` (the block rank)
    otherwise. For ``N = 2**L``, ``n_factors=L`` and ``rank=1`` this is the
    classic butterfly, factor ``k`` having pattern ``(2**(k-1), 2, 2, N/2**k)``;
    ``n_factors=2`` gives a Monarch-like product of two block-diagonal-like
    factors with blocks of size about ``sqrt(N)``; ``n_factors=1`` is dense.

    Any ``n_factors >= 1`` is accepted, as pyfaust's ``fdb`` does. A chain
    has at most :math:`L = \\lceil \\log_2 \\max(m, n) \\rceil` proper
    factors (each radix is at least 2); beyond ``L``, the architecture of
    depth ``L`` is followed by ``n_factors - L`` **diagonal** factors
    (pattern ``(n_pad, 1, 1, 1)``, ``n_pad`` the padded number of columns):
    they add ``n_pad`` values each and no accuracy, so that a grid over
    ``n_factors`` can run past ``L`` without failing.

    A dimension with fewer than ``n_factors`` prime factors cannot be split:
    with ``padding="zeros"`` it is padded up to the next size that can (the
    fitted operator is cropped back), with ``padding="raise"`` a
    ``ValueError`` names the sizes that would fit.

    Parameters
    ----------
    shape : tuple of int
        Shape ``(m, n)`` of the matrix to approximate.
    n_factors : int, default=None
        Number of factors ``J``, between 1 and 1024; beyond
        ``ceil(log2(max(m, n)))`` the extra factors are diagonal. ``None``
        means ``ceil(log2(min(m, n)))``, the classic butterfly depth.
    rank : int, default=1
        Block rank ``r`` between consecutive factors (the "deformable"
        butterfly); at most ``max(m, n)``.
    padding : {"zeros", "raise"}, default="zeros"
        What to do with a dimension that does not split into ``n_factors``
        parts.

    Raises
    ------
    ValueError
        On a bad shape (each dimension at most ``2**40``), depth, rank or
        padding.

    Returns
    -------
    Architecture
        The chain of patterns with the original and the padded shape.

    Examples
    --------
    >>> from skbutterfly import architecture
    >>> arch = architecture((8, 8))
    >>> [tuple(p) for p in arch]
    [(1, 2, 2, 4), (2, 2, 2, 2), (4, 2, 2, 1)]
    >>> [tuple(p) for p in architecture((16, 16), n_factors=2)]
    [(1, 4, 4, 4), (4, 4, 4, 1)]
    >>> architecture((6, 5), n_factors=2).padded_shape
    (6, 6)
    >>> [tuple(p) for p in architecture((4, 4), n_factors=3)]  # one diagonal
    [(1, 2, 2, 2), (2, 2, 2, 1), (4, 1, 1, 1)]
    """
    m, n = check_shape(shape)
    if max(m, n) > MAX_DIMENSION:
        raise ValueError(
            f"shape is too large: each dimension must be at most 2**40 (a "
            f"butterfly this size could not be stored), got n_samples={m}, "
            f"n_features={n}."
        )
    if n_factors is None:
        n_factors = default_n_factors((m, n))
    n_factors = check_positive_int(n_factors, "n_factors", maximum=MAX_FACTORS)
    rank = check_positive_int(rank, "rank", maximum=max(m, n))
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}.")
    n_diagonal = max(0, n_factors - max_n_factors((m, n)))
    n_factors -= n_diagonal
    rows = split_dimension(m, n_factors)
    cols = split_dimension(n, n_factors)
    if rows is None or cols is None:
        fit = (fitting_size(m, n_factors), fitting_size(n, n_factors))
        if padding == "raise":
            raise ValueError(
                f"shape n_samples={m}, n_features={n} does not split into "
                f"n_factors={n_factors} factors; sizes that fit: {fit} (use "
                "padding='zeros' to pad automatically)."
            )
        rows = split_dimension(fit[0], n_factors)
        cols = split_dimension(fit[1], n_factors)
    padded = (math.prod(rows), math.prod(cols))
    ranks = [1] + [rank] * (n_factors - 1) + [1]
    patterns = tuple(
        Pattern(
            math.prod(cols[:ell]),
            rows[ell] * ranks[ell],
            cols[ell] * ranks[ell + 1],
            math.prod(rows[ell + 1 :]),
        )
        for ell in range(n_factors)
    )
    patterns += (Pattern(padded[1], 1, 1, 1),) * n_diagonal
    return Architecture(patterns, (m, n), padded, rank)
