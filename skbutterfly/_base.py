"""Behaviour shared by the factorization estimators (layer 4, estimators).

Every estimator of the package approximates a fitted matrix by stored
factors. :class:`BaseFactorizer` states what a subclass provides (its
approximation, its stored values, its error on new data, a quantized copy of
itself) and builds on it the behaviour they share: ``score``, the fitted
errors, the storage count read by :mod:`skbutterfly.model_selection`, and
the tags. :func:`relative_error` holds the one convention for a zero matrix.
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
)
from sklearn.utils.validation import check_is_fitted

from skbutterfly._formats import native_bits
from skbutterfly._operator import frobenius_error, map_dask_chunks
from skbutterfly._scaling import frobenius_norm
from skbutterfly._validation import (
    check_matrix,
    is_dask_array,
    validate_estimator_input,
)


def relative_error(error: float, norm: float) -> float:
    """``error / norm``, with one convention for a zero matrix.

    Parameters
    ----------
    error : float
        Frobenius norm of the residual :math:`\\|X - \\hat X\\|_F`.
    norm : float
        Frobenius norm of the matrix :math:`\\|X\\|_F`.

    Returns
    -------
    float
        ``error / norm``; for ``X = 0`` (``norm == 0``), 0 when the
        approximation is exactly zero too and ``inf`` otherwise (any nonzero
        approximation of the zero matrix is infinitely wrong, relatively).

    Examples
    --------
    >>> from skbutterfly._base import relative_error
    >>> relative_error(1.0, 4.0), relative_error(0.0, 0.0), relative_error(1.0, 0.0)
    (0.25, 0.0, inf)
    """
    if norm > 0:
        return error / norm
    return 0.0 if error == 0 else np.inf


class BaseFactorizer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Base class of the estimators that store a factorized approximation.

    Subclasses provide, once fitted:

    * ``_approximation()``: the dense approximation of the fitted matrix;
    * ``_stored_factors()``: what is stored (a :class:`ButterflyMatrix` or a
      tuple of arrays), as :func:`~skbutterfly.storage_bits` counts it;
    * ``_stored_values()``: the number of stored values and their dtype;
    * ``_error(X)``: the Frobenius error of the model on validated ``X``
      (what :meth:`score` compares);
    * ``_quantized_copy(X, fmt, method, heuristic, n_jobs, verbose)``: a
      fitted copy of the estimator whose factors are quantized to ``fmt``, its
      errors on ``X`` set (what :class:`~skbutterfly.QuantizedButterfly`
      delegates to; ``verbose`` is its progress level).

    Fitted estimators set ``reconstruction_err_`` and ``relative_error_``
    through :meth:`_set_errors`.
    """

    # Fitted attributes holding the factors, copied by QuantizedButterfly.
    _factor_attributes: tuple = ()

    def _set_errors(self, X, error, norm=None):
        # norm: ||X||_F when already known (met by the error computation, or
        # an out-of-core X's first pass).
        norm = frobenius_norm(X) if norm is None else norm
        self.reconstruction_err_ = float(error)
        self.relative_error_ = relative_error(float(error), float(norm))

    def _storage_bits(self):
        """Bits of the stored values in their own dtype."""
        return native_bits(*self._stored_values())

    def score(self, X, y=None):
        """Minus the relative error of the model on ``X`` (higher is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data, as the estimator's class documents.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        float
            :math:`-\\|X - \\hat X\\|_F / \\|X\\|_F`; for ``X = 0``, 0 when
            the model reproduces it exactly and ``-inf`` otherwise.
        """
        check_is_fitted(self)
        X = validate_estimator_input(self, X, reset=False)
        return -relative_error(self._error(X), frobenius_norm(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


class OperatorFactorizer(BaseFactorizer):
    """Base class of the estimators whose model is one fitted operator.

    The operator :math:`\\hat X` (a :class:`~scipy.sparse.linalg.LinearOperator`
    of the fitted matrix's shape, such as a :class:`ButterflyMatrix`) is the
    fitted attribute named first in ``_factor_attributes``. Rows of the
    fitted matrix are the operator's outputs, its columns its inputs:
    ``transform`` applies it to samples, ``inverse_transform`` applies its
    transpose, and the model error is that of :math:`\\hat X` against ``X``.
    """

    @property
    def _fitted_operator(self):
        return getattr(self, self._factor_attributes[0])

    def transform(self, X):
        """Apply the fitted operator to each sample: ``X @ X_hat.T``.

        Parameters
        ----------
        X : array-like of shape (n_samples_new, n_features)
            Samples (rows). A Dask array gives a lazy Dask array, computed
            chunk of rows by chunk of rows.

        Returns
        -------
        ndarray of shape (n_samples_new, n_samples)
            ``X_hat @ x`` for every row ``x`` of ``X``, in ``O(nnz)`` each.
        """
        check_is_fitted(self)
        B = self._fitted_operator
        if is_dask_array(X):
            return map_dask_chunks(self.transform, X, B.shape, B.dtype, axis=1)
        X = validate_estimator_input(self, X, reset=False)
        dtype = np.result_type(X.dtype, B.dtype)
        return np.asarray(B.matmat(X.T.astype(dtype))).T

    def inverse_transform(self, X):
        """Synthesise from coefficients: ``X @ X_hat``.

        Parameters
        ----------
        X : array-like of shape (n_samples_new, n_samples)
            Coefficients, one row per sample (columns index the rows of the
            fitted matrix). A Dask array gives a lazy Dask array.

        Returns
        -------
        ndarray of shape (n_samples_new, n_features)
            ``X @ X_hat``, computed with the adjoint operator.
        """
        check_is_fitted(self)
        B = self._fitted_operator
        if is_dask_array(X):
            return map_dask_chunks(
                self.inverse_transform, X, B.shape[::-1], B.dtype, axis=1
            )
        X = check_matrix(X, name="X")
        m = B.shape[0]
        if X.shape[1] != m:
            raise ValueError(
                f"X has {X.shape[1]} features, but inverse_transform expects {m} "
                "(the number of rows of the fitted matrix)."
            )
        dtype = np.result_type(X.dtype, B.dtype)
        # X @ B = (B^T X^T)^T = conj(B^H conj(X)^T)^T.
        return np.conj(np.asarray(B.H.matmat(np.conj(X.T).astype(dtype)))).T

    def _approximation(self):
        return self._fitted_operator.toarray()

    def _stored_values(self):
        return self._fitted_operator.nnz, self._fitted_operator.dtype

    def _error(self, X):
        B = self._fitted_operator
        if X.shape[0] != B.shape[0]:
            raise ValueError(
                f"X must have the fitted shape, got n_samples={X.shape[0]}, "
                f"n_features={X.shape[1]}; expected n_samples={B.shape[0]}."
            )
        return frobenius_error(X, B)

    @property
    def _n_features_out(self):
        return self._fitted_operator.shape[0]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags
