"""Input validation shared by every public entry point."""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import sys
from numbers import Integral

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import validate_data

_FLOAT_DTYPES = (np.float32, np.float64, np.complex64, np.complex128)


def _numbers(arr, name):
    """An object or string array of numbers as float64, or ``TypeError``."""
    try:
        return arr.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{name} must hold numbers, got dtype={arr.dtype} with an entry that "
            f"is not one ({exc})."
        ) from None


def check_matrix(A, *, name="A", allow_complex=True, ndim=2, allow_empty=False):
    """Return ``A`` as a finite floating-point ndarray, never modifying the input.

    The one input policy of the package, shared by the functions, the
    estimators (through :func:`validate_estimator_input`, which follows
    scikit-learn's ``check_array`` to the same effect) and
    ``inverse_transform``: float32, float64, complex64 and complex128 are
    kept; booleans, integers and float16 are cast (to float64, respectively
    float32); long doubles are cast to float64 or complex128 (as
    scikit-learn does); object arrays and strings holding numbers are
    converted to float64 (anything else in them raises ``TypeError``). Sparse
    matrices raise ``TypeError`` (the algorithms are dense: pass
    ``A.toarray()``). NaN, inf, a wrong number of dimensions or an empty
    array raise ``ValueError`` naming ``name``.
    """
    if A is None:
        raise TypeError(f"{name} must be an array of numbers, got None.")
    if sp.issparse(A):
        raise TypeError(
            f"{name} is a sparse matrix ({type(A).__name__}), but dense data is "
            f"required: pass {name}.toarray()."
        )
    if hasattr(A, "toarray") and not isinstance(A, np.ndarray):
        A = A.toarray()
    arr = np.asarray(A)
    kind = arr.dtype.kind
    if kind in "OUS":
        arr, kind = _numbers(arr, name), "f"
    if kind in "biu":
        arr = arr.astype(np.float64)
    elif arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    elif kind in "fc" and arr.dtype.itemsize > (8 if kind == "f" else 16):
        arr = arr.astype(np.float64 if kind == "f" else np.complex128)
    elif arr.dtype.type not in _FLOAT_DTYPES:
        raise TypeError(
            f"{name} must hold numbers (float32, float64, complex64, complex128, "
            f"integers or booleans), got dtype={arr.dtype}."
        )
    if arr.dtype.kind == "c" and not allow_complex:
        raise TypeError(
            f"{name} must be real, got dtype={arr.dtype}; complex input is not "
            "supported here."
        )
    if arr.ndim != ndim:
        raise ValueError(
            f"{name} must be a {ndim}-D array, got an array with ndim={arr.ndim} "
            f"and shape={arr.shape}."
        )
    if arr.size == 0 and not allow_empty:
        shape = (
            f"n_samples={arr.shape[0]}, n_features={arr.shape[1]}"
            if ndim == 2
            else f"shape={arr.shape}"
        )
        raise ValueError(f"{name} is empty, got {shape}.")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinity.")
    return arr


def check_positive_int(value, name, *, minimum=1, maximum=None):
    """Return ``value`` as an int in ``[minimum, maximum]`` or raise."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}.")
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{name} must be {bounds}, got {value}.")
    return value


def check_power_of_two(value, name="n", *, minimum=1):
    """Return ``value`` as an int that is a power of two ``>= minimum`` or raise."""
    value = check_positive_int(value, name, minimum=minimum)
    if value & (value - 1):
        raise ValueError(f"{name} must be a power of two, got {name}={value}.")
    return value


def check_permutation(perm, n, *, name="permutation"):
    """Return ``perm`` as an int64 array that is a permutation of ``range(n)``."""
    arr = np.asarray(perm)
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and arr.size and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise TypeError(
                f"{name} must be an array of integers, got dtype={arr.dtype}."
            )
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), got shape={arr.shape}.")
    arr = arr.astype(np.int64, copy=False)
    seen = np.zeros(n, dtype=bool)
    valid = (arr >= 0) & (arr < n)
    seen[arr[valid]] = True
    if not valid.all() or not seen.all():
        raise ValueError(
            f"{name} is not a permutation of range({n}): every index in "
            f"0..{n - 1} must appear exactly once."
        )
    return arr


def check_shape(shape, *, name="shape"):
    """Return ``shape`` as a pair ``(m, n)`` of positive ints, or raise.

    Entries must be integers (Python or NumPy); ``4.5`` or ``"4"`` is refused
    rather than truncated.
    """
    try:
        entries = tuple(shape)
    except TypeError:
        entries = ()
    if len(entries) != 2 or not all(
        isinstance(s, Integral) and not isinstance(s, bool) for s in entries
    ):
        raise ValueError(f"{name} must be a pair of integers (m, n), got {shape!r}.")
    m, n = (int(s) for s in entries)
    if m < 1 or n < 1:
        raise ValueError(f"{name} must be positive, got n_samples={m}, n_features={n}.")
    return m, n


def validate_estimator_input(estimator, X, *, reset):
    """``validate_data`` for estimators that also accept complex matrices.

    ``check_array`` rejects complex data, and DFT matrices need it: complex
    input goes around it (``skip_check_array=True``, which still records or
    checks ``n_features_in_`` and the feature names) through
    :func:`check_matrix`; real input takes the usual path (float64 and float32
    kept).
    """
    if X is None:
        raise TypeError("X must be an array of numbers, got None.")
    dtype = getattr(X, "dtype", None)
    if dtype is not None and np.dtype(dtype).kind in "OUS":
        # The package's input policy (check_matrix): numbers are converted,
        # anything else is a TypeError, at every entry point.
        X = _numbers(np.asarray(X), "X")
    elif dtype is not None and np.dtype(dtype).kind == "c":
        X = validate_data(estimator, X, skip_check_array=True, reset=reset)
        return check_matrix(X, name="X")
    return validate_data(estimator, X, dtype=[np.float64, np.float32], reset=reset)


def check_support(S, name):
    """Return a support as a 2-D boolean ndarray (a copy, never a view)."""
    if sp.issparse(S):
        S = S.toarray()
    arr = np.asarray(S)
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must be a boolean mask (or an array of 0 and 1), got "
            f"dtype={arr.dtype}."
        )
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D mask, got an array with ndim={arr.ndim} and "
            f"shape={arr.shape}."
        )
    if arr.dtype.kind != "b":
        bad = (arr != 0) & (arr != 1)
        if bad.any():
            value = arr[bad].flat[0]
            raise ValueError(
                f"{name} must hold only 0/1 or True/False, got the value {value!r}."
            )
    return arr.astype(bool)


def is_dask_array(X) -> bool:
    """Whether ``X`` is a ``dask.array.Array`` (without importing dask)."""
    module = sys.modules.get("dask.array")
    return module is not None and isinstance(X, module.Array)
