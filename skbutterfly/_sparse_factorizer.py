"""The ``SparseFactorizer`` estimator, a thin wrapper of ``sparse_factorize``.

Layer 4 (estimators).
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import copy
from math import ceil
from numbers import Integral, Real

from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions

from skbutterfly._base import OperatorFactorizer
from skbutterfly._progress import Progress
from skbutterfly._projections import CONSTRAINT_NAMES
from skbutterfly._quantize import quantize_sparse_factors
from skbutterfly._sparse_factorize import STRATEGIES, sparse_factorize
from skbutterfly._sparse_product import SparseProduct
from skbutterfly._validation import validate_estimator_input
from skbutterfly._warnings import warn_if_poor_fit

POOR_FIT_HINT = (
    "try more nonzeros (k), more or fewer factors (n_factors), or the truncated "
    "SVD for a nearly low-rank matrix; see 'Choosing a model' in the user guide."
)


class SparseFactorizer(OperatorFactorizer):
    """Approximate a matrix by a product of sparse factors with learned supports.

    ``fit(X)`` finds :math:`X \\approx \\hat X = S_1 S_2 \\cdots S_J`, every
    factor in a sparsity family, by :func:`sparse_factorize` (hierarchical
    PALM by default, then exact coefficients for two factors on tractable
    supports). As in :class:`ButterflyFactorizer`, the rows of ``X`` are the
    operator's outputs and its columns its inputs: ``transform`` applies the
    fitted operator to each sample (``Z @ X_hat.T``) and
    ``inverse_transform`` synthesises (``C @ X_hat``).

    Parameters
    ----------
    n_factors : int, default=2
        Number of factors ``J``.
    constraint : {"rowcol", "rowcol_and", "row", "col", "total"}, \
default="rowcol"
        Family of every factor (see :class:`SparsityConstraint`); ignored
        when ``constraints`` is given.
    k : int, default=None
        Nonzeros per row / column (per factor for ``"total"``); ``None``
        means ``ceil(min(m, n) ** (1 / n_factors))`` (``n_factors``-th root
        of the size: 2 for a Hadamard matrix of size ``2**J``), times
        ``min(m, n)`` for ``"total"``. Clipped to what each factor allows.
    constraints : list, default=None
        Explicit per-factor constraints, as in :func:`sparse_factorize`
        (overrides ``n_factors``, ``constraint`` and ``k``).
    strategy : {"hierarchical", "palm"}, default="hierarchical"
        See :func:`sparse_factorize`.
    max_iter : int, default=100
        PALM sweeps per run.
    tol : float, default=1e-6
        Stopping rule on the relative decrease of the squared error.
    init : {"identity", "random"}, default="identity"
        Start of ``strategy="palm"``.
    exact_coefficients : bool, default=True
        Exact coefficients on tractable two-factor supports.
    random_state : int, RandomState instance or None, default=None
        Seed of ``init="random"``.
    verbose : int, default=0
        Print the errors of every step (and of every sweep when > 1).

    Attributes
    ----------
    product_ : SparseProduct of shape (n_samples, n_features)
        The fitted operator :math:`\\hat X`.
    n_factors_ : int
        Number of factors.
    reconstruction_err_ : float
        :math:`\\|X - \\hat X\\|_F`.
    relative_error_ : float
        :math:`\\|X - \\hat X\\|_F / \\|X\\|_F` (0 for a zero ``X``).
    info_ : SparseFactorizationInfo
        Errors of every step, iterations, the support analysis.
    n_iter_ : int
        PALM sweeps in all.
    n_features_in_ : int
        Number of columns of ``X``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the columns of ``X``, when it has string column names.

    See Also
    --------
    sparse_factorize : The functional API.
    ButterflyFactorizer : When the supports are a butterfly's.

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly import SparseFactorizer
    >>> from skbutterfly.datasets import hadamard
    >>> est = SparseFactorizer(n_factors=4, constraint="rowcol_and").fit(hadamard(16))
    >>> est.product_.nnz, est.relative_error_ < 1e-10
    (128, True)
    >>> est.transform(np.eye(16)).shape
    (16, 16)
    """

    _factor_attributes = ("product_",)

    _parameter_constraints: dict = {
        "n_factors": [Interval(Integral, 1, None, closed="left")],
        "constraint": [StrOptions(set(CONSTRAINT_NAMES) - {"support"})],
        "k": [Interval(Integral, 1, None, closed="left"), None],
        "constraints": [list, tuple, None],
        "strategy": [StrOptions(set(STRATEGIES))],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "init": [StrOptions({"identity", "random"})],
        "exact_coefficients": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        n_factors=2,
        constraint="rowcol",
        k=None,
        constraints=None,
        strategy="hierarchical",
        max_iter=100,
        tol=1e-6,
        init="identity",
        exact_coefficients=True,
        random_state=None,
        verbose=0,
    ):
        self.n_factors = n_factors
        self.constraint = constraint
        self.k = k
        self.constraints = constraints
        self.strategy = strategy
        self.max_iter = max_iter
        self.tol = tol
        self.init = init
        self.exact_coefficients = exact_coefficients
        self.random_state = random_state
        self.verbose = verbose

    def _constraints(self, shape):
        if self.constraints is not None:
            return list(self.constraints)
        size = min(shape)
        total = self.constraint == "total"
        k = self.k
        if k is None:
            k = ceil(round(size ** (1 / self.n_factors), 9)) * (size if total else 1)
        limit = size * size if total else size
        if total and self.n_factors == 1:
            limit = shape[0] * shape[1]
        return [(self.constraint, min(k, limit))] * self.n_factors

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the sparse product to the matrix ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Matrix to approximate (real or complex).
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        X = validate_estimator_input(self, X, reset=True)
        self.product_, self.info_ = sparse_factorize(
            X,
            self._constraints(X.shape),
            strategy=self.strategy,
            max_iter=self.max_iter,
            tol=self.tol,
            init=self.init,
            exact_coefficients=self.exact_coefficients,
            random_state=self.random_state,
            verbose=self.verbose,
        )
        self.n_factors_ = self.product_.n_factors
        self._set_errors(X, self.info_.error)
        self.n_iter_ = self.info_.n_iter
        Progress("SparseFactorizer", self.verbose)(
            f"{self.n_factors_} factors, nnz={self.product_.nnz}, relative error "
            f"{self.relative_error_:.3e}"
        )
        warn_if_poor_fit(
            self.relative_error_,
            self.product_.nnz,
            X.shape[0] * X.shape[1],
            POOR_FIT_HINT,
        )
        return self

    def _stored_factors(self):
        return tuple(F.data for F in self.product_.factors)

    def _quantized_copy(self, X, fmt, method, heuristic, n_jobs, verbose=0):
        quantized = copy.copy(self)
        quantized.product_ = SparseProduct(
            quantize_sparse_factors(
                self.product_.factors, fmt, heuristic, method, n_jobs, verbose
            )
        )
        quantized._set_errors(X, quantized._error(X))
        return quantized
