"""The warning a fitted model emits when it is a poor deal, and its one check."""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import os
import sys
import warnings

import joblib
import sklearn

# Frames in these directories are skipped: the warning points at user code
# (through GridSearchCV, which calls fit through joblib, too).
_INTERNAL = tuple(
    os.path.dirname(os.path.abspath(path)) + os.sep
    for path in (__file__, sklearn.__file__, joblib.__file__)
)

# Above this relative error a model misses most of the matrix's energy: with
# an error of 0.9 it keeps about 19 % of it (1 - 0.9**2).
POOR_FIT_ERROR = 0.5


class PoorFitWarning(UserWarning):
    """A fitted model is a poor approximation, or costs more than the dense matrix.

    Emitted by ``fit`` when the relative error exceeds 0.5 (the model misses
    most of the matrix) or when the model stores more values than the dense
    matrix it replaces. The message carries a hint at the usual remedies
    (``rank``, a permutation, fewer factors, a higher precision); see the
    user guide section :ref:`choosing_a_model`. Silence it as any warning::

        warnings.simplefilter("ignore", skbutterfly.PoorFitWarning)

    Examples
    --------
    >>> import warnings
    >>> import numpy as np
    >>> from skbutterfly import ButterflyFactorizer, PoorFitWarning
    >>> A = np.random.default_rng(0).standard_normal((64, 64))
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     est = ButterflyFactorizer().fit(A)       # noise is no butterfly
    >>> [issubclass(w.category, PoorFitWarning) for w in caught]
    [True]
    """


def warn_if_poor_fit(
    relative_error: float,
    stored_values: int | None,
    dense_values: int,
    hint: str,
) -> None:
    """Emit a :class:`PoorFitWarning` for a poor or an expensive fitted model.

    ``stored_values=None`` skips the storage check (a model whose storage was
    already judged, such as a quantized copy of a checked model). The
    warning points at the first caller outside skbutterfly, scikit-learn and
    joblib (the line that called ``fit``, also through ``GridSearchCV``).
    """
    stacklevel = external_stacklevel()
    if stored_values is not None and stored_values > dense_values:
        warnings.warn(
            f"the fitted model stores {stored_values} values, more than the "
            f"{dense_values} of the dense matrix, which is cheaper to store and "
            "exact; see 'Choosing a model' in the user guide.",
            PoorFitWarning,
            stacklevel=stacklevel,
        )
    if relative_error > POOR_FIT_ERROR:
        warnings.warn(
            f"the fitted model has a relative error of {relative_error:.3g} "
            f"(above {POOR_FIT_ERROR}): it misses most of the matrix; {hint}",
            PoorFitWarning,
            stacklevel=stacklevel,
        )


def external_stacklevel() -> int:
    """``stacklevel`` for ``warnings.warn`` called here, naming user code."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(_INTERNAL):
        frame, level = frame.f_back, level + 1
    return level


class ApproximateQuantizationWarning(UserWarning):
    """``method="exact"`` could not sweep a bounded format exactly.

    Only for custom formats with more than ``2**22`` positive values (never
    for the presets) and terms whose range fills the format: the result is
    then the best of a few power-of-two rescalings and round-to-nearest
    (still representable, never worse than round-to-nearest).

    Examples
    --------
    >>> import warnings
    >>> import numpy as np
    >>> from skbutterfly import (
    ...     ApproximateQuantizationWarning, FloatFormat, quantize_rank_one)
    >>> fmt = FloatFormat(16, -200, 200)  # 13 M positive values
    >>> x, y = np.array([1e60, 3e-61]), np.array([2e59, 1e-62])
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     xh, yh = quantize_rank_one(x, y, fmt)
    >>> [w.category is ApproximateQuantizationWarning for w in caught]
    [True]
    """
