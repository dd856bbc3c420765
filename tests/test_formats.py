from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from skbutterfly import FloatFormat, round_to_format, storage_bits
from skbutterfly._formats import check_format
from skbutterfly.datasets import random_butterfly

PRESET_DTYPES = {
    "float16": lambda: np.float16,
    "bfloat16": lambda: pytest.importorskip("ml_dtypes").bfloat16,
    "float8_e4m3": lambda: pytest.importorskip("ml_dtypes").float8_e4m3fn,
    "float8_e5m2": lambda: pytest.importorskip("ml_dtypes").float8_e5m2,
}


def _all_values(dtype):
    """Every finite value of a 8- or 16-bit dtype, sorted."""
    itemsize = np.dtype(dtype).itemsize
    codes = np.arange(2 ** (8 * itemsize), dtype=np.uint64)
    codes = codes.astype(np.uint16 if itemsize == 2 else np.uint8)
    with np.errstate(invalid="ignore"):
        values = codes.view(dtype).astype(np.float64)
    return np.unique(values[np.isfinite(values)])


@pytest.mark.parametrize("name", sorted(PRESET_DTYPES))
def test_presets_equal_real_casts(name):
    dtype = PRESET_DTYPES[name]()
    fmt = FloatFormat.from_name(name)
    values = _all_values(dtype)
    assert fmt.largest == values.max()
    rng = np.random.default_rng(0)
    # float32 inputs: a single rounding in every library's cast.
    magnitudes = np.exp2(rng.uniform(fmt.emin - fmt.t - 2, fmt.emax + 1, 20000))
    x = rng.choice([-1.0, 1.0], magnitudes.size) * magnitudes
    mids = (values[1:] + values[:-1]) / 2
    x = np.concatenate([x, values, mids]).astype(np.float32)
    x = x[np.abs(x) <= fmt.largest]
    np.testing.assert_array_equal(
        round_to_format(x, fmt), x.astype(dtype).astype(np.float32)
    )


def _reference_values(fmt):
    """The format's numbers by enumeration: subnormals, normals, zero."""
    M = np.arange(2 ** (fmt.t - 1), 2**fmt.t)
    normals = np.concatenate(
        [M * 2.0 ** (e - fmt.t + 1) for e in range(fmt.emin, fmt.emax + 1)]
    )
    subnormals = np.arange(1, 2 ** (fmt.t - 1)) * 2.0 ** (fmt.emin - fmt.t + 1)
    positive = np.concatenate([subnormals, normals]) if fmt.subnormals else normals
    positive = positive[positive <= fmt.largest]
    return np.concatenate([-positive[::-1], [0.0], positive])


def _nearest_even(x, values, fmt):
    """Nearest value, ties to the one with an even significand (zero is even)."""
    dist = np.abs(x[:, None] - values[None, :])
    nearest = dist == dist.min(axis=1, keepdims=True)
    _, E = np.frexp(values)
    quantum = np.ldexp(1.0, np.maximum(E, fmt.emin + 1) - fmt.t)
    odd = (np.abs(values) / quantum).astype(np.int64) % 2 == 1
    return values[np.argmax(2 * nearest + (nearest & ~odd[None, :]), axis=1)]


@pytest.mark.parametrize("subnormals", [True, False])
def test_small_bounded_format_equals_enumeration(subnormals):
    fmt = FloatFormat(3, -2, 2, subnormals=subnormals)
    values = _reference_values(fmt)
    mids = (values[1:] + values[:-1]) / 2
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(-fmt.largest, fmt.largest, 2000), mids, values])
    expected = _nearest_even(x, values, fmt)
    if not subnormals:
        # the halfway point between 0 and 2**emin goes to zero
        half = np.abs(x) == 2.0 ** (fmt.emin - 1)
        expected[half] = 0.0
    np.testing.assert_array_equal(round_to_format(x, fmt), expected)


@pytest.mark.parametrize("name", ["float16", "float8_e4m3", "float8_e5m2"])
def test_overflow_saturates_never_inf_or_nan(name):
    fmt = FloatFormat.from_name(name)
    x = np.array([fmt.largest * 1.01, -fmt.largest * 10, 1e300, -1e300])
    out = round_to_format(x, fmt)
    np.testing.assert_array_equal(out, np.array([1, -1, 1, -1]) * fmt.largest)


def _exact_round(z, t):
    """fl_t(z) by rational arithmetic (Gribonval et al., hal-04125381), ties to even."""
    if z == 0:
        return 0.0
    q = Fraction(abs(z))
    e = 0
    while q >= 2:
        q /= 2
        e += 1
    while q < 1:
        q *= 2
        e -= 1
    scaled = q * 2 ** (t - 1)
    return float(np.sign(z) * round(scaled) * Fraction(2) ** (e - t + 1))


@given(
    # float64 subnormals (below 1e-307) keep a fixed quantum, as documented
    st.floats(-1e30, 1e30).filter(lambda z: z == 0 or abs(z) > 1e-300),
    st.integers(1, 30),
)
def test_unbounded_rounding_matches_rational_reference(z, t):
    assert round_to_format(np.array([z]), t)[0] == _exact_round(z, t)


@pytest.mark.parametrize("t", [1, 2, 3, 7, 11])
def test_unbounded_ties_to_even_and_scale_invariance(t):
    # midpoints between consecutive t-bit numbers in [1, 2]
    M = np.arange(2 ** (t - 1), 2**t)
    mids = (M + 0.5) * 2.0 ** (1 - t)
    up = (M + 1) * 2.0 ** (1 - t)
    down = M * 2.0 ** (1 - t)
    expected = np.where(M % 2 == 0, down, up)
    np.testing.assert_array_equal(round_to_format(mids, t), expected)
    x = np.random.default_rng(t).standard_normal(500)
    for k in (-40, -3, 5, 60):
        np.testing.assert_array_equal(
            round_to_format(np.ldexp(x, k), t), np.ldexp(round_to_format(x, t), k)
        )


@pytest.mark.parametrize("fmt", [3, 11, "bfloat16", "float8_e4m3"])
def test_rounding_is_idempotent(fmt):
    x = np.random.default_rng(0).standard_normal(1000) * 10
    once = round_to_format(x, fmt)
    np.testing.assert_array_equal(round_to_format(once, fmt), once)


def test_dtypes_and_complex_parts():
    x32 = np.float32([1.1, -2.7])
    assert round_to_format(x32, "float16").dtype == np.float32
    assert round_to_format(x32, 8).dtype == np.float32
    assert round_to_format(x32, 30).dtype == np.float64
    assert round_to_format([1, 3], 2).dtype == np.float64
    z = np.array([1.3 - 2.6j])
    out = round_to_format(z, 3)
    assert out.dtype == np.complex128
    assert out[0] == round_to_format([1.3], 3)[0] + 1j * round_to_format([-2.6], 3)[0]


def test_storage_bits():
    for name, bits in [
        ("float16", 16),
        ("bfloat16", 16),
        ("float8_e4m3", 8),
        ("float8_e5m2", 8),
    ]:
        assert storage_bits(np.ones(3), name) == 3 * bits
    B = random_butterfly(16, random_state=0)
    assert storage_bits(B, "float16") == 16 * B.nnz
    # zeros of plain arrays are not stored
    assert storage_bits((np.eye(3), np.zeros((2, 2))), "float8_e5m2") == 24
    # unbounded: exponents 0..3 need 3 bits (4 exponents + zero), one offset
    values = np.array([1.0, 2.0, 4.0, 8.0, 0.0])
    assert storage_bits(values, 5) == 4 * (5 + 3) + 32
    assert storage_bits(np.array([1 + 1j]), "float16") == 32


def test_format_properties_and_names():
    assert check_format("float16") is FloatFormat.from_name("float16")
    assert check_format(FloatFormat(5)) == FloatFormat(5)
    assert FloatFormat.from_name("float16").exponent_bits == 5
    assert FloatFormat.from_name("float8_e4m3").exponent_bits == 4
    assert FloatFormat(7).exponent_bits is None
    assert FloatFormat(7).largest == np.inf
    assert FloatFormat(4, -6, 8).largest == 480.0
    assert not FloatFormat(7).bounded


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"t": 0}, ValueError, "t must be"),
        ({"t": 54}, ValueError, "t must be"),
        ({"t": True}, TypeError, "t must be an integer"),
        ({"t": 4, "emin": -3}, ValueError, "emin and emax"),
        ({"t": 4, "emin": 3, "emax": 1}, ValueError, "emin <= emax"),
        ({"t": 4, "emin": -3, "emax": 3.5}, TypeError, "emax must be"),
        ({"t": 4, "max_value": 3.0}, ValueError, "bounded"),
        ({"t": 4, "emin": -3, "emax": 3, "max_value": 15.5}, ValueError, "max_val"),
    ],
)
def test_bad_formats(kwargs, error, match):
    with pytest.raises(error, match=match):
        FloatFormat(**kwargs)


def test_bad_inputs():
    with pytest.raises(ValueError, match="unknown format name 'float7'"):
        round_to_format([1.0], "float7")
    with pytest.raises(TypeError, match="the format must be"):
        round_to_format([1.0], 2.5)
    with pytest.raises(ValueError, match="NaN"):
        round_to_format([np.nan], 4)
    with pytest.raises(TypeError, match="numbers"):
        round_to_format(["a"], 4)
