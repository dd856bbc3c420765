"""The ``.npz`` file format of :class:`ButterflyMatrix`: ``save`` and ``load``.

Layer 2 (structures).
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import os
import tempfile

import numpy as np

from skbutterfly._operator import ButterflyMatrix

FILE_FORMAT = "skbutterfly.ButterflyMatrix"
# Version 2 adds the optional member ``row_perm`` (with ``has_row_perm``);
# version 1 files (no row permutation) still load.
FILE_VERSION = 2


def save(B, path) -> None:
    """Write ``B`` to a ``.npz`` file (no pickle), atomically.

    The implementation of :meth:`ButterflyMatrix.save`, which documents it.
    """
    arrays = {
        "format": np.array(FILE_FORMAT),
        "version": np.array(FILE_VERSION),
        "shape": np.array(B.shape, dtype=np.int64),
        "n_factors": np.array(B.n_factors),
        "has_perm": np.array(B.perm is not None),
        "has_row_perm": np.array(B.row_perm is not None),
    }
    for i, K in enumerate(B.factors):
        arrays[f"factor_{i}"] = K
    if B.perm is not None:
        arrays["perm"] = B.perm
    if B.row_perm is not None:
        arrays["row_perm"] = B.row_perm
    write_npz(path, arrays)


def write_npz(path, arrays) -> None:
    """Write ``arrays`` to the ``.npz`` file ``path`` atomically.

    The file is written to a temporary name beside ``path`` and renamed, so an
    interrupted save never leaves a half-written file.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _scalar_int(value):
    """The integer held by a 0-d integer array, or ValueError."""
    if value.shape != () or value.dtype.kind not in "iu":
        raise ValueError(f"expected an integer scalar, got {value!r}")
    return int(value)


def _scalar_bool(contents, key):
    """The boolean held by the 0-d member ``key``, or ValueError."""
    value = contents[key]
    if value.shape != () or value.dtype != bool:
        raise ValueError(f"{key} must be a boolean scalar")
    return bool(value)


def load(path) -> ButterflyMatrix:
    """Read a :class:`ButterflyMatrix` written by :meth:`ButterflyMatrix.save`.

    The file is opened with ``allow_pickle=False``: nothing in it is executed.

    Parameters
    ----------
    path : str or path-like
        File to read.

    Returns
    -------
    ButterflyMatrix

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file is not an ``.npz`` archive, not written by
        skbutterfly, of an unsupported version, truncated or inconsistent.

    Examples
    --------
    >>> import os, tempfile
    >>> from skbutterfly import load
    >>> from skbutterfly.datasets import random_butterfly
    >>> path = os.path.join(tempfile.mkdtemp(), "b.npz")
    >>> random_butterfly(8, random_state=1).save(path)
    >>> load(path)
    <8x8 ButterflyMatrix with dtype=float64, 3 factors, nnz=48>
    """
    path = os.fspath(path)
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"cannot load {path!r}: no such file.") from None
    except Exception as exc:
        raise ValueError(
            f"cannot load {path!r}: not a readable .npz file ({exc})."
        ) from exc
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"cannot load {path!r}: not an .npz archive.")
    # A damaged archive fails in many ways (zlib, zipfile, numpy header
    # parsing, object arrays refused without pickle): report all as ValueError.
    try:
        with data:
            contents = {key: data[key] for key in data.files}
    except Exception as exc:
        raise ValueError(
            f"cannot load {path!r}: not a readable skbutterfly .npz file ({exc})."
        ) from exc
    if str(contents.get("format", "")) != FILE_FORMAT:
        raise ValueError(
            f"cannot load {path!r}: not a skbutterfly ButterflyMatrix file "
            "(format field missing or different)."
        )
    try:
        version = _scalar_int(contents["version"])
        n_factors = _scalar_int(contents["n_factors"])
        has_perm = _scalar_bool(contents, "has_perm")
        # Absent from version 1 files: no row permutation.
        has_row_perm = "has_row_perm" in contents and _scalar_bool(
            contents, "has_row_perm"
        )
        shape = contents["shape"]
        if shape.shape != (2,) or shape.dtype.kind not in "iu":
            raise ValueError(f"shape must hold two integers, got {shape!r}")
        shape = tuple(int(s) for s in shape)
        if not 1 <= n_factors <= len(contents):
            raise ValueError(
                f"n_factors={n_factors} does not match the file's "
                f"{len(contents)} members"
            )
        expected = {"format", "version", "shape", "n_factors", "has_perm"}
        expected |= {f"factor_{i}" for i in range(n_factors)}
        if "has_row_perm" in contents:
            expected.add("has_row_perm")
        if has_perm:
            expected.add("perm")
        if has_row_perm:
            expected.add("row_perm")
        if set(contents) != expected:
            raise ValueError(
                f"members {sorted(set(contents))} differ from the expected "
                f"{sorted(expected)}"
            )
        factors = [contents[f"factor_{i}"] for i in range(n_factors)]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"cannot load {path!r}: incomplete file ({exc}).") from exc
    if version > FILE_VERSION:
        raise ValueError(
            f"cannot load {path!r}: file version {version} is newer than the "
            f"supported version {FILE_VERSION}; upgrade skbutterfly."
        )
    try:
        return ButterflyMatrix(
            factors,
            perm=contents.get("perm"),
            shape=shape,
            row_perm=contents.get("row_perm"),
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"cannot load {path!r}: inconsistent content ({exc})."
        ) from None
