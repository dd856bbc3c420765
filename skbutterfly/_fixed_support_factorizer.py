"""The :class:`FixedSupportFactorizer` estimator (a thin layer over ``_fsmf``)."""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import copy
from numbers import Integral, Real

import numpy as np
import scipy.linalg
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from skbutterfly._base import BaseFactorizer
from skbutterfly._constants import FSMF_METHODS
from skbutterfly._fsmf import fixed_support_factorize
from skbutterfly._quantize import quantize_factors
from skbutterfly._scaling import frobenius_errors
from skbutterfly._slabs import refuse_out_of_core
from skbutterfly._supports import SUPPORT_NAMES, resolve_supports
from skbutterfly._validation import check_matrix, validate_estimator_input
from skbutterfly._warnings import warn_if_poor_fit

# What usually helps a poor fixed-support fit (user guide, "Choosing a model").
POOR_FIT_HINT = (
    "try larger supports or more components (n_components), or a "
    "ButterflyFactorizer with a permutation; see 'Choosing a model' in the user "
    "guide."
)


class FixedSupportFactorizer(BaseFactorizer):
    """Factorize a matrix as ``X ≈ W @ H`` with fixed sparsity supports.

    NMF-like: ``fit_transform(X)`` returns ``W`` (of shape
    ``(n_samples, r)``) and ``components_`` is ``H`` (of shape
    ``(r, n_features)``), with ``W`` zero outside ``support_W`` and ``H``
    zero outside ``support_H``:

    .. math:: \\min_{W, H} \\|X - W H\\|_F \\quad \\text{s.t.}\\quad
              \\operatorname{supp}(W) \\subseteq S_W,\\;
              \\operatorname{supp}(H) \\subseteq S_H.

    Tractable supports (see :func:`~skbutterfly.analyze_supports`) are solved
    exactly and the result is certified optimal; the others by alternating
    least squares from several starts (see
    :func:`~skbutterfly.fixed_support_factorize`).

    Parameters
    ----------
    support_W : array-like, sparse matrix, str, callable or None, default=None
        Support of ``W``: a boolean mask of shape ``(n_samples, r)``; a name
        among ``"full"``, ``"lower"``, ``"upper"`` (triangular),
        ``"block_diagonal"`` (``isqrt(min(shape))`` diagonal blocks, as in
        Monarch) and ``"butterfly"`` (the first factor of the classic
        butterfly of ``X``'s shape, which fixes ``r``); or a callable
        mapping the factor's shape ``(n_samples, r)`` to a mask. ``None``
        means ``"full"``.
    support_H : array-like, sparse matrix, str, callable or None, default=None
        Support of ``H``, as ``support_W`` (``"butterfly"`` is then the
        product of the other butterfly factors' supports).
    n_components : int, default=None
        Number of rank-one terms ``r``. ``None``: taken from mask arrays or
        ``"butterfly"`` supports, else ``min(n_samples, n_features)``.
    method : {"auto", "exact", "als"}, default="auto"
        ``"auto"``: exact when tractable, ALS otherwise; ``"exact"`` raises
        on intractable supports; ``"als"`` always runs ALS.
    max_iter : int, default=200
        Maximal ALS iterations per start.
    tol : float, default=1e-10
        Relative decrease of the squared error that stops ALS.
    n_restarts : int, default=5
        Number of ALS starts (the first from a tractable relaxation).
    random_state : int, RandomState instance or None, default=None
        Seed of the random ALS starts.
    n_jobs : int, default=None
        Jobs for the batched SVDs and the ALS starts (joblib).
    verbose : int, default=0
        ``0`` is silent; ``1`` prints one line per ALS start, ``2`` also one
        per ALS iteration, with the elapsed time.

    Attributes
    ----------
    W_ : ndarray of shape (n_samples, r)
        The fitted left factor (what ``fit_transform`` returns).
    components_ : ndarray of shape (r, n_features)
        The fitted right factor ``H``.
    supports_ : tuple of ndarray
        The masks ``(S_W, S_H)`` used.
    analysis_ : SupportAnalysis
        The support analysis.
    method_ : str
        The algorithm that ran, ``"exact"`` or ``"als"``.
    certified_optimal_ : bool
        Whether the factors are a certified global minimiser.
    reconstruction_err_ : float
        :math:`\\|X - W H\\|_F`.
    relative_error_ : float
        ``reconstruction_err_`` divided by :math:`\\|X\\|_F`.
    n_iter_ : int
        ALS iterations of the retained start (1 for the exact algorithm).
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit (string column names only).

    See Also
    --------
    fixed_support_factorize : The functional form.
    analyze_supports : Tractability of a pair of supports.

    Notes
    -----
    :meth:`transform` returns the least-squares codes of new rows for the
    fixed ``H``, **unconstrained** (not restricted to ``support_W``, whose
    rows refer to the training samples): ``transform(X) = argmin_C
    ||X - C H||_F`` (minimum-norm solution), i.e. ``X @ pinv(H)``, with the
    pseudo-inverse computed once at fit: a transform is one matrix product.
    Complex matrices are accepted. ALS emits a
    ``sklearn.exceptions.ConvergenceWarning`` when it stops at ``max_iter``,
    and ``fit`` a :class:`~skbutterfly.PoorFitWarning` when the relative
    error exceeds 0.5 or the supports hold more values than ``X``.

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly import FixedSupportFactorizer
    >>> from skbutterfly.datasets import hadamard
    >>> est = FixedSupportFactorizer("butterfly", "butterfly")
    >>> W = est.fit_transform(hadamard(16))
    >>> est.certified_optimal_, est.reconstruction_err_ < 1e-12
    (True, True)
    >>> est.analysis_.condition
    'disjoint'
    """

    _factor_attributes = ("W_", "components_")

    _parameter_constraints: dict = {
        "support_W": [
            "array-like",
            "sparse matrix",
            StrOptions(SUPPORT_NAMES),
            callable,
            None,
        ],
        "support_H": [
            "array-like",
            "sparse matrix",
            StrOptions(SUPPORT_NAMES),
            callable,
            None,
        ],
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "method": [StrOptions(set(FSMF_METHODS))],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_restarts": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "n_jobs": [Integral, None],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        support_W=None,
        support_H=None,
        n_components=None,
        method="auto",
        *,
        max_iter=200,
        tol=1e-10,
        n_restarts=5,
        random_state=None,
        n_jobs=None,
        verbose=0,
    ):
        self.support_W = support_W
        self.support_H = support_H
        self.n_components = n_components
        self.method = method
        self.max_iter = max_iter
        self.tol = tol
        self.n_restarts = n_restarts
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the factors to ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Matrix to factorize (real or complex), in memory: a Dask array or
            a slice-readable dataset raises ``ValueError`` (see
            :func:`fixed_support_factorize`).
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : FixedSupportFactorizer
            The fitted estimator.
        """
        self.fit_transform(X)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X, y=None):
        """Fit the factors to ``X`` and return ``W``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Matrix to factorize (real or complex), in memory: a Dask array or
            a slice-readable dataset raises ``ValueError`` (see
            :func:`fixed_support_factorize`).
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        W : ndarray of shape (n_samples, r)
            The left factor, zero outside its support.
        """
        refuse_out_of_core(X, name="X", solver="FixedSupportFactorizer")
        X = validate_estimator_input(self, X, reset=True)
        S_W, S_H = resolve_supports(
            self.support_W, self.support_H, self.n_components, X.shape
        )
        W, H, info = fixed_support_factorize(
            X,
            S_W,
            S_H,
            method=self.method,
            max_iter=self.max_iter,
            tol=self.tol,
            n_restarts=self.n_restarts,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
            verbose=self.verbose,
        )
        self.W_ = W
        self.components_ = H
        self.supports_ = (S_W, S_H)
        self.analysis_ = info.analysis
        self.method_ = info.method
        self.certified_optimal_ = info.certified_optimal
        self.reconstruction_err_ = info.error
        self.relative_error_ = info.relative_error
        self.n_iter_ = info.n_iter
        self._coder = _least_squares_coder(H)
        stored = int(np.count_nonzero(S_W)) + int(np.count_nonzero(S_H))
        warn_if_poor_fit(self.relative_error_, stored, X.size, POOR_FIT_HINT)
        return W

    def transform(self, X):
        """Least-squares codes of ``X`` for the fitted ``H`` (unconstrained).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            New rows.

        Returns
        -------
        codes : ndarray of shape (n_samples, r)
            Minimum-norm minimiser of :math:`\\|X - C H\\|_F`.
        """
        check_is_fitted(self)
        return self._codes(validate_estimator_input(self, X, reset=False))

    def _codes(self, X):
        # argmin_C ||X - C H||_F (minimum norm) = X pinv(H).
        return X @ self._coder.astype(np.result_type(X, self._coder), copy=False)

    def inverse_transform(self, X):
        """Map codes back to the data space: ``X @ H``.

        Parameters
        ----------
        X : array-like of shape (n_samples, r)
            Codes (for instance ``W_``).

        Returns
        -------
        ndarray of shape (n_samples, n_features)
        """
        check_is_fitted(self)
        X = check_matrix(X, name="X")
        r = self.components_.shape[0]
        if X.shape[1] != r:
            raise ValueError(
                f"X must have r={r} columns (one per component), got "
                f"n_samples={X.shape[0]}, n_features={X.shape[1]}."
            )
        return X @ self.components_

    def _approximation(self):
        return self.W_ @ self.components_

    def _stored_factors(self):
        return self.W_, self.components_

    def _stored_values(self):
        count = sum(int(np.count_nonzero(S)) for S in self.supports_)
        return count, self.W_.dtype

    def _error(self, X):
        # Rows reconstructed through their least-squares codes.
        return frobenius_errors(X, self._codes(X) @ self.components_)[0]

    def _quantized_copy(self, X, fmt, method, heuristic, n_jobs, verbose=0):
        quantized = copy.copy(self)
        # Two factors have no heuristic to choose: "rtn" there is the method.
        method = "rtn" if heuristic == "rtn" else method
        quantized.W_, quantized.components_ = quantize_factors(
            self.W_, self.components_, fmt, method, n_jobs=n_jobs
        )
        quantized._coder = _least_squares_coder(quantized.components_)
        product = quantized.W_ @ quantized.components_
        quantized._set_errors(X, frobenius_errors(X, product)[0])
        return quantized

    @property
    def _n_features_out(self):
        return self.components_.shape[0]


def _least_squares_coder(H):
    """``pinv(H)``: the codes of rows ``X`` for ``H`` are ``X @ pinv(H)``.

    The cutoff is ``lstsq``'s (``rcond=None``: ``max(r, n) * eps`` relative
    to the largest singular value), computed once instead of at every call.
    """
    return scipy.linalg.pinv(H)
