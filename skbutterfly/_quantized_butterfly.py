"""The :class:`QuantizedButterfly` meta-estimator (a thin layer over ``_quantize``)."""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

from numbers import Integral

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    MetaEstimatorMixin,
    TransformerMixin,
    _fit_context,
    clone,
)
from sklearn.utils import get_tags
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from skbutterfly._butterfly_factorizer import ButterflyFactorizer
from skbutterfly._formats import PRESETS, FloatFormat, check_format, storage_bits
from skbutterfly._quantize import HEURISTICS, quantize_butterfly, quantize_factors
from skbutterfly._quantize_rank_one import QUANTIZE_METHODS
from skbutterfly._validation import check_matrix, validate_estimator_input


class QuantizedButterfly(
    MetaEstimatorMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator
):
    """Fit a sparse factorization, then quantize its factors to a float format.

    ``fit(X)`` fits ``clone(estimator)`` to ``X`` (a
    :class:`sklearn.frozen.FrozenEstimator` is used as it is, without
    refitting) and quantizes the fitted factors so that every stored value is
    exactly representable in the format:

    * a :class:`~skbutterfly.ButterflyFactorizer` (fitted ``butterfly_``) by
      :func:`~skbutterfly.quantize_butterfly` with ``heuristic``;
    * a :class:`~skbutterfly.FixedSupportFactorizer` (fitted ``W_`` and
      ``components_``) by :func:`~skbutterfly.quantize_factors`: optimal for
      the pair when the rank-one supports are pairwise disjoint (``heuristic``
      is then only used for ``"rtn"``).

    ``transform``, ``inverse_transform`` and ``score`` are those of the inner
    estimator computed with the quantized factors.

    Parameters
    ----------
    estimator : estimator object, default=None
        An unfitted factorizer with ``fit`` and ``transform`` exposing
        ``butterfly_`` or ``W_`` and ``components_`` once fitted. ``None``
        means ``ButterflyFactorizer()``.
    precision : int, str or FloatFormat, default=8
        The format: ``t`` significand bits (leading bit included) with an
        unbounded exponent, a preset name (``"float16"``, ``"bfloat16"``,
        ``"float8_e4m3"``, ``"float8_e5m2"``) or a :class:`FloatFormat`.
    method : {"exact", "dfo", "rtn"}, default="exact"
        Rank-one method (:func:`~skbutterfly.quantize_rank_one`).
    heuristic : {"pairwise", "left-to-right", "rtn"}, default="pairwise"
        How the factors of a butterfly are combined
        (:func:`~skbutterfly.quantize_butterfly`).
    n_jobs : int, default=None
        Jobs over chunks of rank-one terms (joblib).

    Attributes
    ----------
    estimator_ : estimator object
        The fitted inner estimator (unquantized).
    format_ : FloatFormat
        The format used.
    butterfly_ : ButterflyMatrix
        The quantized butterfly (butterfly inner estimators only).
    W_ : ndarray of shape (n_samples, r)
        The quantized left factor (two-factor inner estimators only).
    components_ : ndarray of shape (r, n_features)
        The quantized right factor (two-factor inner estimators only).
    storage_bits_ : int
        Bits to store the quantized factors (:func:`~skbutterfly.storage_bits`).
    reconstruction_err_ : float
        :math:`\\|X - \\hat X\\|_F` for the quantized approximation
        :math:`\\hat X`.
    relative_error_ : float
        ``reconstruction_err_`` divided by :math:`\\|X\\|_F`.
    unquantized_error_ : float
        Relative error of the inner estimator's unquantized approximation,
        for comparison.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit (string column names only).

    See Also
    --------
    quantize_butterfly : The quantization of a butterfly.
    quantize_factors : The quantization of two factors.

    Notes
    -----
    Complex matrices are quantized only with ``heuristic="rtn"`` or
    ``method="rtn"`` (real and imaginary parts rounded); the optimal methods
    raise ``NotImplementedError`` (also a ``ValueError``) for them.

    Examples
    --------
    >>> from skbutterfly import FixedSupportFactorizer, QuantizedButterfly
    >>> from skbutterfly.datasets import hadamard
    >>> est = QuantizedButterfly(
    ...     FixedSupportFactorizer("butterfly", "butterfly"), precision="float16"
    ... )
    >>> est = est.fit(hadamard(16))
    >>> est.relative_error_ < 1e-12, est.storage_bits_  # 160 values, 16 bits each
    (True, 2560)
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit", "transform"]), None],
        "precision": [
            Interval(Integral, 1, 53, closed="both"),
            StrOptions(set(PRESETS)),
            FloatFormat,
        ],
        "method": [StrOptions(set(QUANTIZE_METHODS))],
        "heuristic": [StrOptions(set(HEURISTICS))],
        "n_jobs": [Integral, None],
    }

    def __init__(
        self,
        estimator=None,
        precision=8,
        method="exact",
        heuristic="pairwise",
        n_jobs=None,
    ):
        self.estimator = estimator
        self.precision = precision
        self.method = method
        self.heuristic = heuristic
        self.n_jobs = n_jobs

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None):
        """Fit the inner estimator to ``X`` and quantize its factors.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The matrix to approximate.
        y : Ignored
            Forwarded to the inner estimator's ``fit``.

        Returns
        -------
        self : QuantizedButterfly
            The fitted estimator.
        """
        X_checked = validate_estimator_input(self, X, reset=True)
        estimator = ButterflyFactorizer() if self.estimator is None else self.estimator
        self.estimator_ = clone(estimator).fit(X, y)
        fmt = check_format(self.precision)
        inner = self.estimator_
        heuristic = "rtn" if self.method == "rtn" else self.heuristic
        if hasattr(inner, "butterfly_"):
            self.butterfly_ = quantize_butterfly(
                inner.butterfly_, fmt, heuristic, self.method, n_jobs=self.n_jobs
            )
            stored = self.butterfly_
        elif hasattr(inner, "W_") and hasattr(inner, "components_"):
            method = "rtn" if heuristic == "rtn" else self.method
            self.W_, self.components_ = quantize_factors(
                inner.W_, inner.components_, fmt, method, n_jobs=self.n_jobs
            )
            stored = (self.W_, self.components_)
        else:
            raise TypeError(
                "estimator must expose butterfly_ (like ButterflyFactorizer) or W_ "
                "and components_ (like FixedSupportFactorizer) once fitted, got "
                f"{type(inner).__name__}."
            )
        self.format_ = fmt
        self.storage_bits_ = storage_bits(stored, fmt)
        norm = float(np.linalg.norm(X_checked))
        self.reconstruction_err_ = float(
            np.linalg.norm(X_checked - self._approximation())
        )
        self.relative_error_ = _relative(self.reconstruction_err_, norm)
        unquantized = _inner_approximation(inner)
        self.unquantized_error_ = _relative(
            float(np.linalg.norm(X_checked - unquantized)), norm
        )
        return self

    def _approximation(self):
        if hasattr(self, "butterfly_"):
            return self.butterfly_.toarray()
        return self.W_ @ self.components_

    def _check_columns(self, C, expected):
        C = check_matrix(C, name="X")
        if C.shape[1] != expected:
            raise ValueError(
                f"X must have {expected} columns, got n_samples={C.shape[0]}, "
                f"n_features={C.shape[1]}."
            )
        return C

    def transform(self, X):
        """Transform ``X`` with the quantized factors.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        ndarray of shape (n_samples, n_features_out)
            ``X @ B^T`` for a butterfly :math:`B` (the fast operator applied
            to every sample), the least-squares codes for the quantized ``H``
            (minimum-norm solution) for two factors.
        """
        check_is_fitted(self)
        X = validate_estimator_input(self, X, reset=False)
        if hasattr(self, "butterfly_"):
            return np.asarray(self.butterfly_ @ X.T).T
        return np.linalg.lstsq(self.components_.T, X.T, rcond=None)[0].T

    def inverse_transform(self, X):
        """Map codes back to the data space with the quantized factors.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_out)
            Codes.

        Returns
        -------
        ndarray of shape (n_samples, n_features_in_)
            ``X @ B`` for a butterfly :math:`B`, ``X @ H`` for two factors.
        """
        check_is_fitted(self)
        if hasattr(self, "butterfly_"):
            X = self._check_columns(X, self.butterfly_.shape[0])
            return np.asarray(self.butterfly_.T @ X.T).T
        X = self._check_columns(X, self.components_.shape[0])
        return X @ self.components_

    def score(self, X, y=None):
        """Negative relative error of the quantized approximation (higher is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            For a butterfly, the matrix approximated (its shape is the
            operator's); for two factors, rows reconstructed through
            :meth:`transform`, as the inner estimator does.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        score : float
            :math:`-\\|X - \\hat X\\|_F / \\|X\\|_F`.
        """
        check_is_fitted(self)
        X = validate_estimator_input(self, X, reset=False)
        if hasattr(self, "butterfly_"):
            if X.shape != self.butterfly_.shape:
                raise ValueError(
                    f"X must have the operator's shape {self.butterfly_.shape}, got "
                    f"n_samples={X.shape[0]}, n_features={X.shape[1]}."
                )
            X_hat = self.butterfly_.toarray()
        else:
            codes = np.linalg.lstsq(self.components_.T, X.T, rcond=None)[0].T
            X_hat = codes @ self.components_
        return -_relative(float(np.linalg.norm(X - X_hat)), float(np.linalg.norm(X)))

    @property
    def _n_features_out(self):
        if hasattr(self, "butterfly_"):
            return self.butterfly_.shape[0]
        return self.components_.shape[0]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        estimator = ButterflyFactorizer() if self.estimator is None else self.estimator
        tags.input_tags = get_tags(estimator).input_tags
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


def _relative(error, norm):
    return error / norm if norm > 0 else error


def _inner_approximation(inner):
    if hasattr(inner, "butterfly_"):
        return inner.butterfly_.toarray()
    return inner.W_ @ inner.components_
