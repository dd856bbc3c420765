"""Hypothesis strategies for shapes, architectures and butterflies (the one place).

Import them in a test module with ``from strategies import butterflies``.
"""

import numpy as np
from hypothesis import strategies as st

from skbutterfly import Pattern, architecture
from skbutterfly._patterns import max_n_factors
from skbutterfly.datasets import random_butterfly

DTYPES = (np.float32, np.float64, np.complex64, np.complex128)


def tolerance(dtype):
    """Relative tolerance of products computed in ``dtype``."""
    return 1e-4 if np.dtype(dtype) in (np.float32, np.complex64) else 1e-11


@st.composite
def shapes(draw, max_side=24):
    """Matrix shapes ``(m, n)`` with sides in ``[1, max_side]``."""
    side = st.integers(1, max_side)
    return draw(side), draw(side)


@st.composite
def chainable_pairs(draw, max_entry=3):
    """Chainable ``(left, right, r)`` patterns from ``a1, alpha, r, delta, d2, b1, c2``.

    ``left = (a1, b1, alpha*r, delta*d2)``, ``right = (a1*alpha, r*delta, c2, d2)``.
    """
    a1, alpha, r, delta, d2, b1, c2 = (
        draw(st.integers(1, max_entry)) for _ in range(7)
    )
    left = Pattern(a1, b1, alpha * r, delta * d2)
    right = Pattern(a1 * alpha, r * delta, c2, d2)
    return left, right, r


@st.composite
def architectures(draw, max_side=24, max_rank=3):
    """Keyword arguments ``shape, n_factors, rank`` accepted by ``architecture``.

    ``n_factors`` ranges over every accepted depth, so that dimensions are
    often padded.
    """
    shape = draw(shapes(max_side))
    n_factors = draw(st.integers(1, max_n_factors(shape)))
    rank = draw(st.integers(1, min(max_rank, max(shape))))
    return {"shape": shape, "n_factors": n_factors, "rank": rank}


@st.composite
def butterflies(draw, max_side=24, max_rank=3, dtypes=DTYPES):
    """Random ``ButterflyMatrix`` on a drawn architecture, dtype and permutations."""
    kwargs = draw(architectures(max_side, max_rank))
    m_out, n_in = architecture(**kwargs).padded_shape
    perm = draw(st.none() | st.permutations(range(n_in)).map(np.array))
    row_perm = draw(st.none() | st.permutations(range(m_out)).map(np.array))
    return random_butterfly(
        **kwargs,
        permutation=perm,
        row_permutation=row_perm,
        dtype=draw(st.sampled_from(dtypes)),
        random_state=draw(st.integers(0, 2**32 - 1)),
    )


@st.composite
def operands(draw, n, dtype):
    """Inputs with ``n`` rows: a vector, one column or several columns.

    One column runs the vector plan of the product, several the fused plan.
    """
    columns = draw(st.sampled_from([None, 1, 2, 17]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = (n,) if columns is None else (n, columns)
    X = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        X = X + 1j * rng.standard_normal(shape)
    return X.astype(dtype)
