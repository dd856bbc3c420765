"""Binary floating-point formats and round-to-nearest-even.

A format :math:`F_t` holds the numbers :math:`\\pm M \\cdot 2^{e - t + 1}` with an
integer significand :math:`2^{t-1} \\le M < 2^t` (``t`` significand bits, the
leading bit included: float16 has ``t = 11``, bfloat16 ``t = 8``), zero, and,
when the exponent range is bounded, subnormals below :math:`2^{e_{\\min}}`.
See Gribonval et al., hal-04125381.
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import math
from dataclasses import dataclass
from numbers import Integral

import numpy as np

from skbutterfly._validation import check_matrix, check_positive_int

# float64 carries the computations: at most its 53 significand bits.
_MAX_T = 53
# Bits of the stored exponent offset of an unbounded format, per factor.
_SCALE_BITS = 32


def _full_max(t, emax):
    return (2.0 - 2.0 ** (1 - t)) * 2.0**emax


def round_significand(x, t, emin=None):
    """Round float64 ``x`` to ``t`` bits, ties to even.

    With ``emin`` the quantum never goes below :math:`2^{e_{\\min}-t+1}`
    (subnormals). Without, the rounding works on the bit patterns (float64
    subnormals, below 1e-307, keep a fixed quantum).
    """
    if emin is None:
        return round_bits(x, t)
    _, E = np.frexp(x)  # |x| = m 2^E, m in [0.5, 1): leading bit 2^(E-1)
    E = np.maximum(E, emin + 1)
    q = E - t
    return np.ldexp(np.rint(np.ldexp(x, -q)), q)


def round_bits(x, t):
    """Round-to-nearest-even to ``t`` bits by integer arithmetic.

    Adding half a unit in the last kept place (minus one, plus the kept last
    bit for ties to even) and clearing the dropped bits rounds the significand;
    a carry moves into the exponent, as it should.
    """
    out = np.array(x, dtype=np.float64)
    if t >= 53:
        return out
    bits = out.view(np.uint64)
    drop = np.uint64(53 - t)
    one = np.uint64(1)
    kept_lsb = bits >> drop
    kept_lsb &= one
    bits += (one << (drop - one)) - one
    bits += kept_lsb
    bits &= ~((one << drop) - one)
    return out


@dataclass(frozen=True)
class FloatFormat:
    """A binary floating-point format with ``t`` significand bits.

    Rounding (:func:`round_to_format`) is to nearest, ties to even. With a
    bounded exponent range the rule at the ends is:

    * **overflow saturates**: a value whose rounding exceeds the largest finite
      number :attr:`max_value` becomes :math:`\\pm` ``max_value`` (the
      nearest finite number; no infinity or NaN is ever produced);
    * **underflow** rounds to the subnormal grid of spacing
      :math:`2^{e_{\\min} - t + 1}` (``subnormals=True``) or, without
      subnormals, to the nearest of :math:`0` and :math:`\\pm 2^{e_{\\min}}`
      (the halfway point :math:`2^{e_{\\min}-1}` goes to zero).

    Parameters
    ----------
    t : int
        Significand bits including the leading bit, ``1 <= t <= 53``.
    emin, emax : int or None, default=None
        Smallest and largest exponent of normal numbers (the normal numbers
        lie in :math:`[2^{e_{\\min}}, 2^{e_{\\max}+1})`). ``None`` for both
        means an unbounded exponent (no overflow or underflow, the format
        :math:`F_t` of Gribonval et al., hal-04125381).
    subnormals : bool, default=True
        Whether the bounded format has subnormal numbers.
    max_value : float or None, default=None
        Largest finite value when it is smaller than the full top binade
        allows (float8 e4m3 stops at 448 because its top code is NaN);
        ``None`` means :math:`(2 - 2^{1-t})\\,2^{e_{\\max}}`.

    Attributes
    ----------
    bounded : bool
        Whether the exponent range is bounded.
    unit_roundoff : float
        :math:`u = 2^{-t}`.

    See Also
    --------
    round_to_format : Round an array to the format.
    storage_bits : Bits needed to store values in the format.

    Examples
    --------
    >>> from skbutterfly import FloatFormat
    >>> FloatFormat.from_name("float16")
    FloatFormat(t=11, emin=-14, emax=15, subnormals=True, max_value=None)
    >>> FloatFormat(8).unit_roundoff
    0.00390625
    >>> FloatFormat.from_name("float8_e4m3").largest
    448.0
    """

    t: int
    emin: int | None = None
    emax: int | None = None
    subnormals: bool = True
    max_value: float | None = None

    def __post_init__(self):
        check_positive_int(self.t, "t", minimum=1, maximum=_MAX_T)
        if not isinstance(self.subnormals, (bool, np.bool_)):
            raise TypeError(f"subnormals must be a bool, got {self.subnormals!r}.")
        if (self.emin is None) != (self.emax is None):
            raise ValueError(
                "emin and emax must both be integers or both be None, got "
                f"emin={self.emin!r}, emax={self.emax!r}."
            )
        if self.emin is None:
            if self.max_value is not None:
                raise ValueError(
                    "max_value needs a bounded exponent range (emin, emax), got "
                    f"max_value={self.max_value!r} with emin=emax=None."
                )
            return
        for name in ("emin", "emax"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Integral):
                raise TypeError(f"{name} must be an integer or None, got {value!r}.")
        if not -1000 <= self.emin <= self.emax <= 1000:
            raise ValueError(
                "expected -1000 <= emin <= emax <= 1000, got "
                f"emin={self.emin}, emax={self.emax}."
            )
        if self.max_value is not None:
            full = _full_max(self.t, self.emax)
            ok = 2.0**self.emax <= self.max_value <= full
            if not ok or round_significand(self.max_value, self.t) != self.max_value:
                raise ValueError(
                    "max_value must be a t-bit number in "
                    f"[2**emax, {full}], got {self.max_value!r}."
                )

    @classmethod
    def from_name(cls, name: str) -> "FloatFormat":
        """Return a named preset format.

        The names are ``"float16"``, ``"bfloat16"``, ``"float8_e4m3"`` and
        ``"float8_e5m2"``; ``"float8_e4m3"`` is the OCP/``ml_dtypes``
        ``float8_e4m3fn`` format (no infinity, largest value 448).

        Examples
        --------
        >>> from skbutterfly import FloatFormat
        >>> FloatFormat.from_name("bfloat16").t
        8
        """
        try:
            return PRESETS[name]
        except (KeyError, TypeError):
            raise ValueError(
                f"unknown format name {name!r}; expected one of {sorted(PRESETS)}."
            ) from None

    @property
    def bounded(self) -> bool:
        """Whether the exponent range is bounded."""
        return self.emin is not None

    @property
    def unit_roundoff(self) -> float:
        """The unit roundoff :math:`2^{-t}`."""
        return 2.0**-self.t

    @property
    def largest(self) -> float:
        """Largest finite value (``inf`` for an unbounded format)."""
        if not self.bounded:
            return math.inf
        if self.max_value is not None:
            return float(self.max_value)
        return _full_max(self.t, self.emax)

    @property
    def exponent_bits(self) -> int | None:
        """Bits of the exponent field (``None`` when unbounded).

        Enough for the normal exponents and one code for zero and subnormals.
        """
        if not self.bounded:
            return None
        return math.ceil(math.log2(self.emax - self.emin + 2))


PRESETS = {
    "float16": FloatFormat(11, -14, 15),
    "bfloat16": FloatFormat(8, -126, 127),
    "float8_e4m3": FloatFormat(4, -6, 8, max_value=448.0),
    "float8_e5m2": FloatFormat(3, -14, 15),
}


def check_format(fmt) -> FloatFormat:
    """Return ``fmt`` as a :class:`FloatFormat`.

    ``fmt`` is a ``FloatFormat``, an int ``t`` (unbounded exponent) or a
    preset name.

    Examples
    --------
    >>> from skbutterfly._formats import check_format
    >>> check_format(6)
    FloatFormat(t=6, emin=None, emax=None, subnormals=True, max_value=None)
    """
    if isinstance(fmt, FloatFormat):
        return fmt
    if isinstance(fmt, str):
        return FloatFormat.from_name(fmt)
    if isinstance(fmt, Integral) and not isinstance(fmt, bool):
        return FloatFormat(int(fmt))
    raise TypeError(
        "the format must be a FloatFormat, an int t (significand bits) or one of "
        f"{sorted(PRESETS)}, got {fmt!r}."
    )


def round_real(x, fmt):
    """Round float64 ``x`` to the :class:`FloatFormat` ``fmt`` (no checks).

    Infinities saturate like any overflow (to ``fmt.largest`` when bounded).
    """
    if not fmt.bounded:
        return round_significand(x, fmt.t)
    r = round_significand(x, fmt.t, fmt.emin)
    if not fmt.subnormals:
        smallest = 2.0**fmt.emin
        tiny = np.abs(x) < smallest
        flushed = np.where(np.abs(x) > smallest / 2, np.copysign(smallest, x), 0.0)
        r = np.where(tiny, flushed, r)
    top = fmt.largest
    return np.where(np.abs(r) > top, np.copysign(top, x), r)


def round_to_format(x, fmt) -> np.ndarray:
    """Round every entry of ``x`` to the nearest number of the format.

    Round to nearest, ties to even; overflow saturates to the largest finite
    value and underflow follows the format's subnormal rule (see
    :class:`FloatFormat`). Complex entries have their real and imaginary
    parts rounded separately.

    Parameters
    ----------
    x : array-like
        Real or complex finite values.
    fmt : FloatFormat, int or str
        The format, ``t`` alone (unbounded exponent) or a preset name.

    Returns
    -------
    ndarray
        The rounded values, in ``x``'s floating dtype (float64 for integers)
        when its significand holds ``t`` bits and, for a bounded format, its
        exponent range holds the format's; in float64 (or complex128)
        otherwise. (With an unbounded format and a 32-bit dtype, values beyond
        that dtype's range are not representable: an unbounded format assumes
        the data's dtype range suffices.)

    Examples
    --------
    >>> from skbutterfly import round_to_format
    >>> round_to_format([1.0, 1.125, 1.375, -3.3], 3)
    array([ 1. ,  1. ,  1.5, -3.5])
    >>> round_to_format([70000.0, 1e-8], "float16")
    array([6.5504e+04, 0.0000e+00])
    """
    fmt = check_format(fmt)
    arr = np.asarray(x)
    if arr.dtype.kind not in "biufc":
        raise TypeError(f"x must hold numbers, got dtype={arr.dtype}.")
    if not np.isfinite(arr).all():
        raise ValueError("x contains NaN or infinity.")
    out_dtype = output_dtype(arr.dtype, fmt)
    if arr.dtype.kind == "c":
        a = arr.astype(np.complex128)
        out = round_real(a.real, fmt) + 1j * round_real(a.imag, fmt)
    else:
        out = round_real(arr.astype(np.float64), fmt)
    return np.asarray(out, dtype=out_dtype)


def output_dtype(dtype, fmt):
    """``dtype`` when it represents the format exactly, else 64-bit."""
    dtype = np.dtype(dtype)
    if dtype.kind in "bui":
        return np.dtype(np.float64)
    if dtype.itemsize < (8 if dtype.kind == "f" else 16):
        finfo = np.finfo(dtype)
        fits = fmt.t <= finfo.nmant + 1 and (
            not fmt.bounded
            or (
                finfo.minexp - finfo.nmant <= fmt.emin - fmt.t + 1
                and fmt.largest <= float(finfo.max)
            )
        )
        if not fits:
            return np.dtype(np.complex128 if dtype.kind == "c" else np.float64)
    return dtype


def native_bits(count, dtype) -> int:
    """Bits of ``count`` values stored in ``dtype`` (8 bits per byte)."""
    return int(count) * 8 * np.dtype(dtype).itemsize


def storage_bits(values, fmt) -> int:
    """Bits needed to store ``values`` in the format.

    Each stored value costs one sign bit, the exponent bits and the ``t - 1``
    stored significand bits (the leading bit is implicit). For a bounded
    format the exponent field has :attr:`FloatFormat.exponent_bits` bits. An
    unbounded format has no fixed exponent field: each factor (each array)
    stores the exponents of its nonzero values relative to its smallest one,
    in just enough bits for their range plus a code for zero, and that offset
    costs 32 bits per factor. Complex values count twice.

    Parameters
    ----------
    values : ButterflyMatrix, ndarray or sequence of ndarray
        A :class:`~skbutterfly.ButterflyMatrix` (every stored value of every
        factor counts, as stored), or arrays (one per factor, e.g. ``(W, H)``)
        of which only the nonzero entries count (a sparse storage).
    fmt : FloatFormat, int or str
        The format.

    Returns
    -------
    int

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly import storage_bits
    >>> storage_bits(np.eye(4), "float16")
    64
    >>> storage_bits(np.diag([1.0, 2.0, 4.0, 0.0]), 8)  # 3 * (8 + 2) + 32
    62
    """
    fmt = check_format(fmt)
    if hasattr(values, "factors") and hasattr(values, "patterns"):
        arrays = [np.asarray(K).ravel() for K in values.factors]
    else:
        # One array (a DataFrame or a sparse matrix too), or a sequence.
        if (
            values is None
            or isinstance(values, (np.ndarray, str))
            or (hasattr(values, "__array__") or hasattr(values, "toarray"))
        ):
            values = [values]
        arrays = []
        for v in values:
            a = np.asarray(v)
            a = check_matrix(a, name="values", ndim=a.ndim, allow_empty=True)
            arrays.append(a[a != 0])
    total = 0
    for a in arrays:
        parts = [a.real, a.imag] if a.dtype.kind == "c" else [a]
        for p in parts:
            total += p.size * (fmt.t + _exponent_bits(p, fmt))
        if not fmt.bounded and a.size:
            total += _SCALE_BITS
    return int(total)


def _exponent_bits(values, fmt):
    if fmt.bounded:
        return fmt.exponent_bits
    nonzero = values[values != 0]
    if nonzero.size == 0:
        return 0
    _, E = np.frexp(nonzero.astype(np.float64))
    return math.ceil(math.log2(int(E.max()) - int(E.min()) + 2))
