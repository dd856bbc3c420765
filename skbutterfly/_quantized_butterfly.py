"""The :class:`QuantizedButterfly` meta-estimator (layer 4, estimators)."""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

from numbers import Integral

from sklearn.base import MetaEstimatorMixin, _fit_context, clone
from sklearn.utils import get_tags
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from skbutterfly._base import BaseFactorizer, relative_error
from skbutterfly._butterfly_factorizer import ButterflyFactorizer
from skbutterfly._formats import PRESETS, FloatFormat, check_format, storage_bits
from skbutterfly._progress import Progress
from skbutterfly._quantize import HEURISTICS
from skbutterfly._quantize_rank_one import QUANTIZE_METHODS
from skbutterfly._scaling import frobenius_errors
from skbutterfly._validation import validate_estimator_input
from skbutterfly._warnings import POOR_FIT_ERROR, warn_if_poor_fit

# Quantization made a good model poor: the precision is the remedy.
POOR_FIT_HINT = (
    "quantization made the error large (it was {unquantized:.3g} before): try a "
    "higher precision; see 'Choosing a model' in the user guide."
)


class QuantizedButterfly(MetaEstimatorMixin, BaseFactorizer):
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
      is then only used for ``"rtn"``);
    * a :class:`~skbutterfly.SparseFactorizer` (fitted ``product_``) with the
      same heuristics on its sparse factors, supports kept (a heuristic for
      general supports, whose rank-one terms overlap; see the user guide's
      quantization page).

    ``transform``, ``inverse_transform`` and ``score`` are those of the inner
    estimator computed with the quantized factors.

    Parameters
    ----------
    estimator : estimator object, default=None
        An unfitted factorizer with ``fit`` and ``transform`` exposing
        ``butterfly_``, ``W_`` and ``components_``, or ``product_`` once
        fitted. ``None``
        means ``ButterflyFactorizer()``.
    precision : int, str or FloatFormat, default=8
        The format: ``t`` significand bits (leading bit included) with an
        unbounded exponent, a preset name (``"float16"``, ``"bfloat16"``,
        ``"float8_e4m3"``, ``"float8_e5m2"``) or a :class:`FloatFormat`.
    method : {"exact", "dfo", "rtn"}, default="exact"
        Rank-one method (:func:`~skbutterfly.quantize_rank_one`).
    heuristic : {"pairwise", "left-to-right", "rtn"}, default="pairwise"
        How the factors of a butterfly or of a sparse product are combined
        (:func:`~skbutterfly.quantize_butterfly`).
    n_jobs : int, default=None
        Jobs over chunks of rank-one terms (joblib).
    verbose : int, default=0
        ``0`` is silent; from ``1``, one line per phase (inner fit,
        quantization of each factor pair, error evaluation) with the
        elapsed time. The inner estimator keeps its own ``verbose``.

    Attributes
    ----------
    estimator_ : estimator object
        The fitted inner estimator (unquantized).
    format_ : FloatFormat
        The format used.
    quantized_ : estimator object
        A fitted copy of ``estimator_`` with quantized factors, to which
        ``transform``, ``inverse_transform`` and ``score`` delegate.
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

    ``fit`` emits a :class:`~skbutterfly.PoorFitWarning` when quantization
    raises the relative error above 0.5 (the inner estimator warns about its
    own poor fits).

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
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        estimator=None,
        precision=8,
        method="exact",
        heuristic="pairwise",
        n_jobs=None,
        verbose=0,
    ):
        self.estimator = estimator
        self.precision = precision
        self.method = method
        self.heuristic = heuristic
        self.n_jobs = n_jobs
        self.verbose = verbose

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
        progress = Progress("QuantizedButterfly", self.verbose)
        estimator = ButterflyFactorizer() if self.estimator is None else self.estimator
        inner = self.estimator_ = clone(estimator).fit(X, y)
        progress(f"inner {type(inner).__name__} fitted")
        # The one requirement on the inner estimator (see BaseFactorizer).
        if not callable(getattr(inner, "_quantized_copy", None)):
            raise TypeError(
                "estimator must expose butterfly_ or W_ and components_ once "
                "fitted: a factorizer of skbutterfly such as ButterflyFactorizer "
                f"or FixedSupportFactorizer, got {type(inner).__name__}."
            )
        fmt = self.format_ = check_format(self.precision)
        quantized = self.quantized_ = inner._quantized_copy(
            X_checked, fmt, self.method, self.heuristic, self.n_jobs, self.verbose
        )
        progress(f"quantized to {self.precision}, errors evaluated")
        for name in quantized._factor_attributes:
            setattr(self, name, getattr(quantized, name))
        self.storage_bits_ = storage_bits(quantized._stored_factors(), fmt)
        self.reconstruction_err_ = quantized.reconstruction_err_
        self.relative_error_ = quantized.relative_error_
        residual, norm, _ = frobenius_errors(X_checked, inner._approximation())
        self.unquantized_error_ = relative_error(residual, norm)
        progress(
            f"relative error {self.relative_error_:.3e} quantized, "
            f"{self.unquantized_error_:.3e} before"
        )
        if self.unquantized_error_ <= POOR_FIT_ERROR:
            hint = POOR_FIT_HINT.format(unquantized=self.unquantized_error_)
            warn_if_poor_fit(self.relative_error_, None, X_checked.size, hint)
        return self

    def _approximation(self):
        return self.quantized_._approximation()

    def _stored_factors(self):
        return self.quantized_._stored_factors()

    def _stored_values(self):
        return self.quantized_._stored_values()

    def _storage_bits(self):
        return self.storage_bits_

    def _error(self, X):
        return self.quantized_._error(X)

    def transform(self, X):
        """Transform ``X`` with the quantized factors.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        ndarray of shape (n_samples, n_features_out)
            The inner estimator's ``transform`` with the quantized factors:
            ``X @ B^T`` for a butterfly :math:`B` (the fast operator applied
            to every sample), the least-squares codes for the quantized ``H``
            for two factors.
        """
        check_is_fitted(self)
        return self.quantized_.transform(X)

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
        return self.quantized_.inverse_transform(X)

    @property
    def _n_features_out(self):
        return self.quantized_._n_features_out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        estimator = ButterflyFactorizer() if self.estimator is None else self.estimator
        tags.input_tags = get_tags(estimator).input_tags
        return tags

