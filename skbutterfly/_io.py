"""The ``.npz`` file format of :class:`ButterflyMatrix`: ``save`` and ``load``.

Layer 2 (structures).

A file is an uncompressed ``.npz`` archive (no pickle) whose members are
listed in :data:`MEMBERS` with the check of their ``.npy`` header. ``load``
validates every member's name, dtype and declared shape from the headers
(a few hundred bytes each) and the consistency of the declared architecture
before it reads any value, and then reads exactly the declared bytes.

Version 1 (``format``, ``version``, ``shape``, ``n_factors``, ``has_perm``,
``factor_0``... and ``perm``) stores the factors in their dtype; it is
written for an operator with neither a recorded
:attr:`~ButterflyMatrix.format` nor a row permutation, so that earlier
releases read it. Version 2, written otherwise, holds ``format``,
``version``, ``header`` (ASCII JSON: shape, factor shapes, dtype, encoding,
the value format or ``null``, which permutations follow) and ``values``: the
real numbers of all factors (real and imaginary parts side by side), in
order, in the smallest of :data:`ENCODINGS` that holds every one exactly
(float8 codes, float16, bfloat16 bit patterns in ``uint16``, float32,
float64), then ``perm`` and ``row_perm`` when present.
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import json
import os
import re
import stat
import tempfile
import zipfile
from typing import TYPE_CHECKING

import numpy as np

from skbutterfly._formats import FloatFormat
from skbutterfly._operator import ButterflyMatrix
from skbutterfly._patterns import check_chain

if TYPE_CHECKING:
    from skbutterfly._sparse_product import SparseProduct

FILE_FORMAT = "skbutterfly.ButterflyMatrix"
# The format field of SparseProduct files, which load also reads.
SPARSE_PRODUCT_FORMAT = "skbutterfly.SparseProduct"
FILE_VERSION = 2
_PLAIN_VERSION = 1  # no recorded format, no row permutation: the version 1 layout

# Longest text accepted in a member (characters).
_MAX_TEXT = 1 << 16


# ----------------------------------------------------------------------------
# Encodings of real values: name -> (stored dtype, encode, decode)
# ----------------------------------------------------------------------------


def _float8_table(exponent_bits, fraction_bits, bias, finite_top):
    """Values of the 256 codes of a float8 format (NaN where no finite value)."""
    codes = np.arange(256)
    sign = np.where(codes >> 7, -1.0, 1.0)
    exponent = (codes >> fraction_bits) & ((1 << exponent_bits) - 1)
    fraction = codes & ((1 << fraction_bits) - 1)
    normal = exponent > 0
    significand = np.where(normal, 1.0, 0.0) + fraction / 2.0**fraction_bits
    values = sign * np.ldexp(significand, np.where(normal, exponent, 1) - bias)
    magnitude = codes & 0x7F
    values[magnitude > finite_top] = np.nan
    return values


def _table_codec(table):
    positive = np.flatnonzero((np.arange(256) < 128) & ~np.isnan(table))
    order = np.argsort(table[positive])
    values, codes = table[positive][order], positive[order].astype(np.uint8)

    def encode(x):
        magnitude = np.abs(x)
        index = np.minimum(np.searchsorted(values, magnitude), values.size - 1)
        return codes[index] | (np.signbit(x).astype(np.uint8) << 7)

    def decode(c, dtype):
        return table[c].astype(dtype)

    return np.uint8, encode, decode


def _bfloat16_encode(x):
    return (x.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)


def _bfloat16_decode(c, dtype):
    return (c.astype(np.uint32) << 16).view(np.float32).astype(dtype)


def _cast_codec(stored):
    return stored, lambda x: x.astype(stored), lambda c, dtype: c.astype(dtype)


# Smallest first: save keeps the first that holds every value exactly.
ENCODINGS = {
    # OCP float8 e4m3fn (no infinity; 0x7F and 0xFF are NaN) and e5m2.
    "float8_e4m3": _table_codec(_float8_table(4, 3, 7, 0x7E)),
    "float8_e5m2": _table_codec(_float8_table(5, 2, 15, 0x7B)),
    "float16": _cast_codec(np.float16),
    "bfloat16": (np.uint16, _bfloat16_encode, _bfloat16_decode),
    "float32": _cast_codec(np.float32),
    "float64": _cast_codec(np.float64),
}


def _real_values(K):
    """The real numbers of ``K`` (real and imaginary parts side by side)."""
    K = np.ascontiguousarray(K)
    return K.view(K.real.dtype) if K.dtype.kind == "c" else K


def _encode(K):
    """``(name, codes)``: the smallest encoding restoring real ``K`` bit for bit."""
    real = K
    for name, (_, encode, decode) in ENCODINGS.items():
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            codes = encode(real)
            back = decode(codes, real.dtype)
        if np.array_equal(back.view(np.uint8), real.view(np.uint8)):
            return name, codes
    raise AssertionError("float64 holds every value")  # pragma: no cover


def _decode(name, codes, dtype):
    return ENCODINGS[name][2](codes, dtype)


def _format_fields(fmt):
    return {
        "t": fmt.t,
        "emin": fmt.emin,
        "emax": fmt.emax,
        "subnormals": fmt.subnormals,
        "max_value": fmt.max_value,
    }


# ----------------------------------------------------------------------------
# save
# ----------------------------------------------------------------------------


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save(B, path) -> None:
    """Write ``B`` to a ``.npz`` file (no pickle), atomically.

    The implementation of :meth:`ButterflyMatrix.save`, which documents it.
    """
    arrays = {"format": np.array(FILE_FORMAT)}
    if B.format is None and B.row_perm is None:
        arrays |= {
            "version": np.array(_PLAIN_VERSION),
            "shape": np.array(B.shape, dtype=np.int64),
            "n_factors": np.array(B.n_factors),
            "has_perm": np.array(B.perm is not None),
        }
        for i, K in enumerate(B.factors):
            arrays[f"factor_{i}"] = K
    else:
        real = np.concatenate([_real_values(K).ravel() for K in B.factors])
        encoding, arrays["values"] = _encode(real)
        header = {
            "shape": list(B.shape),
            "factor_shapes": [list(K.shape) for K in B.factors],
            "has_perm": B.perm is not None,
            "has_row_perm": B.row_perm is not None,
            "dtype": B.dtype.name,
            "encoding": encoding,
            "value_format": None if B.format is None else _format_fields(B.format),
        }
        arrays["version"] = np.array(FILE_VERSION)
        arrays["header"] = np.array(json.dumps(header).encode("ascii"))
    if B.perm is not None:
        arrays["perm"] = B.perm
    if B.row_perm is not None:
        arrays["row_perm"] = B.row_perm
    write_npz(path, arrays)


def write_npz(path, arrays) -> None:
    """Write ``arrays`` to the ``.npz`` file ``path`` atomically (``np.savez``).

    The file is written to a temporary name beside ``path``
    (``.NAME.XXXX.tmp``) and renamed, so an interrupted save never leaves a
    half-written file.

    Only a regular file (or a new name) is replaced; a symbolic link is
    followed to the file it names. The new file has the permissions of the
    file it replaces, or those of ``np.savez`` (``0o666`` less the umask).
    """
    path = os.fspath(path)
    target = os.path.realpath(path)
    try:
        existing = os.stat(target)
    except FileNotFoundError:
        existing = None
    except OSError as exc:
        raise type(exc)(f"cannot save to {path!r}: {exc}") from exc
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        kind = "a directory" if stat.S_ISDIR(existing.st_mode) else "not a regular file"
        raise ValueError(
            f"cannot save to {path!r}: it is {kind}; save writes regular files only."
        )
    mode = 0o666 & ~_umask() if existing is None else stat.S_IMODE(existing.st_mode)
    directory, name = os.path.split(target)
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    except OSError as exc:
        raise type(exc)(f"cannot save to {path!r}: {exc}") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException as exc:
        os.unlink(tmp)
        if isinstance(exc, OSError):
            raise type(exc)(f"cannot save to {path!r}: {exc}") from exc
        raise


# ----------------------------------------------------------------------------
# load: headers first, then exactly the declared bytes
# ----------------------------------------------------------------------------


def _scalar(kinds):
    def check(dtype, shape):
        if shape != () or dtype.kind not in kinds:
            return f"a scalar of kind {kinds!r}, got dtype={dtype}, shape={shape}"
        return None

    return check


def _text(dtype, shape):
    if shape != () or dtype.kind not in "US" or dtype.itemsize > 4 * _MAX_TEXT:
        return f"a short text, got dtype={dtype}, shape={shape}"
    return None


def _codes(dtype, shape):
    if len(shape) != 1 or dtype not in _FACTOR_DTYPES:
        return f"a 1-D array of encoded values, got dtype={dtype}, shape={shape}"
    return None


def _pair(dtype, shape):
    if shape != (2,) or dtype.kind not in "iu":
        return f"two integers, got dtype={dtype}, shape={shape}"
    return None


def _indices(dtype, shape):
    if len(shape) != 1 or dtype.kind not in "iu":
        return f"a 1-D integer array, got dtype={dtype}, shape={shape}"
    return None


_OPERATOR_DTYPES = {
    np.dtype(t) for t in ("float32", "float64", "complex64", "complex128")
}
_FACTOR_DTYPES = {np.dtype(v[0]) for v in ENCODINGS.values()} | _OPERATOR_DTYPES


def _values(dtype, shape):
    if len(shape) != 4 or dtype not in _FACTOR_DTYPES:
        return f"a 4-D array of factor values, got dtype={dtype}, shape={shape}"
    return None


# Every member a file may hold, with the check of its header; factors are
# ``factor_0``, ``factor_1``, ... (checked by ``_values``).
MEMBERS = {
    "format": _text,
    "version": _scalar("iu"),
    "shape": _pair,
    "n_factors": _scalar("iu"),
    "has_perm": _scalar("b"),
    "perm": _indices,
    "row_perm": _indices,
    "header": _text,
    "values": _codes,
}
_FACTOR = re.compile(r"factor_(0|[1-9][0-9]{0,5})")


def _check_regular_file(path):
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"cannot load {path!r}: no such file.") from None
    except OSError as exc:
        raise ValueError(f"cannot load {path!r}: {exc.strerror}.") from None
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"cannot load {path!r}: not a regular file.")


def _headers(archive, names):
    """``{key: (ZipInfo, dtype, shape)}`` of members ``names``, from their headers."""
    headers = {}
    for info in map(archive.getinfo, names):
        key = info.filename[:-4] if info.filename.endswith(".npy") else None
        if key is None or not (key in MEMBERS or _FACTOR.fullmatch(key)):
            raise ValueError(f"unknown member {info.filename!r}")
        with archive.open(info) as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                raise ValueError(f"member {key!r} has .npy version {version}")
            header_size = fh.tell()
        if dtype.hasobject:
            raise ValueError(f"member {key!r} holds objects, refused (no pickle)")
        problem = MEMBERS.get(key, _values)(dtype, shape)
        if problem is not None:
            raise ValueError(f"member {key!r} must be {problem}")
        declared = header_size + int(np.prod(shape, dtype=object)) * dtype.itemsize
        if info.file_size != declared:
            raise ValueError(
                f"member {key!r} declares {declared} bytes but holds {info.file_size}"
            )
        headers[key] = (info, dtype, tuple(shape))
    return headers


def _read(archive, headers, key):
    with archive.open(headers[key][0]) as fh:
        return np.lib.format.read_array(fh, allow_pickle=False)


def _content(archive):
    """The checked arguments of ``ButterflyMatrix`` stored in ``archive``."""
    try:
        first = _headers(archive, ["format.npy"])
        found = str(_read(archive, first, "format"))
    except (KeyError, ValueError):
        found = None
    if found == SPARSE_PRODUCT_FORMAT:
        raise _SparseProductFile
    if found != FILE_FORMAT:
        raise _NotOurs
    headers = _headers(archive, archive.namelist())
    if "version" not in headers:
        raise ValueError("member 'version' is missing")
    version = int(_read(archive, headers, "version"))
    if version > FILE_VERSION:
        raise _TooNew(version)
    if version == 1:
        return _content_v1(archive, headers)
    if version == 2:
        return _content_v2(archive, headers)
    raise ValueError(f"version must be 1 or {FILE_VERSION}, got {version}")


def _check_members(headers, expected):
    if set(headers) != expected:
        raise ValueError(
            f"members {sorted(headers)} differ from the expected {sorted(expected)}"
        )


def _check_architecture(factor_shapes, shape, perm_shape, row_perm_shape=None):
    """Factors that chain, an operator shape within their product, permutations."""
    try:
        patterns = check_chain(factor_shapes)
        padded = (patterns[0].shape[0], patterns[-1].shape[1])
        if not all(1 <= s <= p for s, p in zip(shape, padded)):
            raise ValueError(
                f"shape {shape} exceeds the factors' product shape {padded}"
            )
        if perm_shape is not None and perm_shape != (padded[1],):
            raise ValueError(f"perm must have shape ({padded[1]},)")
        if row_perm_shape is not None and row_perm_shape != (padded[0],):
            raise ValueError(f"row_perm must have shape ({padded[0]},)")
    except (TypeError, ValueError) as exc:
        raise _Inconsistent(str(exc)) from None


def _content_v1(archive, headers):
    """Version 1: one member per factor, values in the operator's dtype."""
    expected = {"format", "version", "shape", "n_factors", "has_perm"}
    missing = expected - set(headers)
    if missing:
        raise ValueError(f"members {sorted(missing)} are missing")
    n_factors = int(_read(archive, headers, "n_factors"))
    has_perm = bool(_read(archive, headers, "has_perm"))
    shape = tuple(int(s) for s in _read(archive, headers, "shape"))
    if not 1 <= n_factors <= len(headers):
        raise ValueError(
            f"n_factors={n_factors} does not match the file's {len(headers)} members"
        )
    expected |= {f"factor_{i}" for i in range(n_factors)}
    if has_perm:
        expected.add("perm")
    _check_members(headers, expected)
    _check_architecture(
        [headers[f"factor_{i}"][2] for i in range(n_factors)],
        shape,
        headers["perm"][2] if has_perm else None,
    )
    factors = [_read(archive, headers, f"factor_{i}") for i in range(n_factors)]
    perm = _read(archive, headers, "perm") if has_perm else None
    return factors, perm, shape, None, None


def _content_v2(archive, headers):
    """Version 2: a JSON header and the encoded values of all factors."""
    if "header" not in headers:
        raise ValueError("member 'header' is missing")
    header = _read(archive, headers, "header")
    try:
        header = json.loads(
            header.item().decode("ascii") if header.dtype.kind == "S" else str(header)
        )
        shape = tuple(int(s) for s in header["shape"])
        factor_shapes = [tuple(int(s) for s in f) for f in header["factor_shapes"]]
        has_perm = header["has_perm"] is True
        has_row_perm = header.get("has_row_perm", False) is True
        dtype = np.dtype(header["dtype"])
        encoding = header["encoding"]
        fields = header["value_format"]
        fmt = None if fields is None else FloatFormat(**fields)
    except (KeyError, TypeError, ValueError, UnicodeDecodeError, AttributeError) as exc:
        raise ValueError(f"header is not understood ({exc})") from None
    if dtype not in _OPERATOR_DTYPES or encoding not in ENCODINGS or not factor_shapes:
        raise ValueError(
            f"header is not understood (dtype={dtype}, encoding={encoding!r})"
        )
    expected = {"format", "version", "header", "values"}
    if has_perm:
        expected.add("perm")
    if has_row_perm:
        expected.add("row_perm")
    _check_members(headers, expected)
    _check_architecture(
        factor_shapes,
        shape,
        headers["perm"][2] if has_perm else None,
        headers["row_perm"][2] if has_row_perm else None,
    )
    sizes = [
        int(np.prod(f, dtype=object)) * (2 if dtype.kind == "c" else 1)
        for f in factor_shapes
    ]
    stored = np.dtype(ENCODINGS[encoding][0])
    if headers["values"][1:] != (stored, (sum(sizes),)):
        raise _Inconsistent(
            f"values must hold {sum(sizes)} values of dtype {stored} ({encoding})"
        )
    real = _decode(
        encoding, _read(archive, headers, "values"), dtype.type(0).real.dtype
    )
    parts = np.split(real, np.cumsum(sizes)[:-1])
    factors = [
        (P.view(dtype) if dtype.kind == "c" else P).reshape(f)
        for P, f in zip(parts, factor_shapes)
    ]
    perm = _read(archive, headers, "perm") if has_perm else None
    row_perm = _read(archive, headers, "row_perm") if has_row_perm else None
    return factors, perm, shape, fmt, row_perm


class _NotOurs(Exception):
    pass


class _TooNew(Exception):
    pass


class _SparseProductFile(Exception):
    pass


class _Inconsistent(Exception):
    pass


def load(path) -> "ButterflyMatrix | SparseProduct":
    """Read a :class:`ButterflyMatrix` or a :class:`SparseProduct` from its file.

    The one entry point for the files of :meth:`ButterflyMatrix.save` and
    of :meth:`SparseProduct.save`; the latter are read by
    :meth:`SparseProduct.load` (no pickle, the member names and every CSR
    structure checked). What follows is about ButterflyMatrix files.

    Nothing in the file is executed (no pickle), and nothing is read before
    the headers of all members are validated: member names (unknown ones
    are refused), dtypes, declared shapes against the declared architecture
    (factors that chain, the operator's shape, the permutation's length)
    and against the archive's sizes. Only the declared values are then
    read, so the memory used is that of the operator. Quantized operators
    and operators with a row permutation (version 2 files) are restored bit
    for bit, with their :attr:`~ButterflyMatrix.format` and ``row_perm``;
    version 1 files load as before.

    Parameters
    ----------
    path : str or path-like
        File to read (a regular file).

    Returns
    -------
    ButterflyMatrix or SparseProduct
        The operator the file holds.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file is not a regular file, not an ``.npz`` archive,
        not written by skbutterfly, of an unsupported version, truncated or
        inconsistent; the message names ``path``.

    Examples
    --------
    >>> import os, tempfile
    >>> from skbutterfly import load
    >>> from skbutterfly.datasets import random_butterfly
    >>> path = os.path.join(tempfile.mkdtemp(), "b.npz")
    >>> random_butterfly(8, random_state=1).save(path)
    >>> load(path)
    <8x8 ButterflyMatrix with dtype=float64, 3 factors, nnz=48>
    >>> import numpy as np
    >>> from skbutterfly import SparseProduct
    >>> SparseProduct([np.eye(4), np.ones((4, 2))]).save(path)
    >>> load(path)
    <4x2 SparseProduct with dtype=float64, 2 factors, nnz=12>
    """
    path = os.fspath(path)
    _check_regular_file(path)
    # A damaged archive fails in many ways (zipfile, zlib, numpy header
    # parsing): report all as ValueError naming the path.
    try:
        with zipfile.ZipFile(path) as archive:
            factors, perm, shape, fmt, row_perm = _content(archive)
    except _SparseProductFile:
        from skbutterfly._sparse_product import SparseProduct  # imports this module

        return SparseProduct.load(path)
    except _NotOurs:
        raise ValueError(
            f"cannot load {path!r}: not a skbutterfly ButterflyMatrix file "
            "(format field missing or different)."
        ) from None
    except _Inconsistent as exc:
        raise ValueError(
            f"cannot load {path!r}: inconsistent content ({exc})."
        ) from None
    except zipfile.BadZipFile as exc:
        raise ValueError(
            f"cannot load {path!r}: not a readable file, not an .npz archive ({exc})."
        ) from None
    except ValueError as exc:
        raise ValueError(f"cannot load {path!r}: incomplete file ({exc}).") from None
    except _TooNew as exc:
        raise ValueError(
            f"cannot load {path!r}: file version {exc.args[0]} is newer than the "
            f"supported version {FILE_VERSION}; upgrade skbutterfly."
        ) from None
    except MemoryError:
        raise
    except Exception as exc:
        raise ValueError(
            f"cannot load {path!r}: not a readable skbutterfly .npz file ({exc})."
        ) from None
    try:
        return ButterflyMatrix(
            factors, perm=perm, shape=shape, row_perm=row_perm, format=fmt
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"cannot load {path!r}: inconsistent content ({exc})."
        ) from None
