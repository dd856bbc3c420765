"""The ``ButterflyFactorizer`` estimator, a thin wrapper of ``butterfly_factorize``."""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import copy
from numbers import Integral

import numpy as np
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import validate_data

from skbutterfly._base import OperatorFactorizer
from skbutterfly._constants import PADDINGS, TREES
from skbutterfly._hierarchical import factorize_with_error, plan_factorization
from skbutterfly._progress import Progress
from skbutterfly._quantize import quantize_butterfly
from skbutterfly._slabs import slab_source
from skbutterfly._validation import validate_estimator_input
from skbutterfly._warnings import warn_if_poor_fit

# What usually helps a poor butterfly fit (user guide, "Choosing a model").
POOR_FIT_HINT = (
    "try a larger rank, permutations (permutation='auto', "
    "row_permutation='auto'), fewer factors, or n_factors=1 (the dense "
    "matrix); see 'Choosing a model' and 'Orderings' in the user guide."
)


class ButterflyFactorizer(OperatorFactorizer):
    """Approximate a matrix by a fast butterfly operator.

    ``fit(X)`` finds sparse factors and row and column permutations with
    :math:`X \\approx \\hat X = P_{\\mathrm{row}}^T F_1 F_2 \\cdots F_J
    P_{\\mathrm{col}}` by the hierarchical algorithm (see
    :func:`butterfly_factorize`): the factors approximate
    ``X[row_permutation_][:, permutation_]``. The rows of ``X`` are the
    operator's outputs, its columns its inputs: ``transform`` applies the
    fitted operator to each sample (``Z @ X_hat.T``, correlations with the
    rows of ``X``) and ``inverse_transform`` synthesises (``C @ X_hat``), as
    ``NMF`` and ``DictionaryLearning`` do. Any shape is accepted (padded
    with zeros unless ``padding="raise"``), and complex matrices such as the
    DFT are supported.

    Parameters
    ----------
    n_factors : int, default=None
        Number of factors ``J`` (the depth), at least 1; beyond
        ``ceil(log2(max(m, n)))`` the extra factors are diagonal (no gain in
        accuracy, see :func:`~skbutterfly.architecture`). ``None`` means
        ``ceil(log2(min(m, n)))``.
    rank : int, default=1
        Block rank between consecutive factors.
    tree : {"balanced", "left", "right"}, sequence of int or nested tuple, \
default="balanced"
        Order of the splits, see :func:`butterfly_factorize`.
    permutation : None, str, array-like of int or list, default=None
        Column permutation, candidates, ``"auto"`` or ``"learn"``, see
        :func:`butterfly_factorize`.
    row_permutation : None, str, array-like of int or list, default=None
        Row permutation, the same choices, see :func:`butterfly_factorize`.
    orthonormalize : bool, default=True
        Orthonormalise before each split (error guarantee).
    padding : {"zeros", "raise"}, default="zeros"
        Zero-pad a shape that the architecture cannot split, or raise.
    n_jobs : int, default=None
        Number of joblib jobs for the large batched SVDs.
    verbose : int, default=0
        ``0`` is silent; from ``1``, one line per split (and per candidate
        permutation) with the elapsed time, then the fitted error.
    random_state : int, RandomState instance or None, default=None
        Seeds ``"auto"`` and ``"learn"`` (deterministic for a given seed).

    Attributes
    ----------
    butterfly_ : ButterflyMatrix of shape (n_samples, n_features)
        The fitted operator :math:`\\hat X`.
    n_factors_ : int
        Number of factors used.
    permutation_ : ndarray of int of shape (n_in,)
        The column permutation chosen (``n_in`` the padded number of
        columns; the identity when none).
    row_permutation_ : ndarray of int of shape (m_out,)
        The row permutation chosen (``m_out`` the padded number of rows).
    reconstruction_err_ : float
        :math:`\\|X - \\hat X\\|_F`.
    relative_error_ : float
        :math:`\\|X - \\hat X\\|_F / \\|X\\|_F` (for a zero ``X``: 0 when
        reproduced exactly, else ``inf``).
    n_features_in_ : int
        Number of columns of ``X``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the columns of ``X``, when it has string column names.

    See Also
    --------
    butterfly_factorize : The functional API.
    FixedSupportFactorizer : Two factors with arbitrary fixed supports.

    Notes
    -----
    ``fit`` emits a :class:`~skbutterfly.PoorFitWarning` when the relative
    error exceeds 0.5 or the butterfly stores more values than ``X``, with a
    hint (``rank``, a permutation, ``n_factors=1``); see the user guide page
    "Choosing a model".

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly import ButterflyFactorizer
    >>> from skbutterfly.datasets import hadamard
    >>> est = ButterflyFactorizer().fit(hadamard(8))
    >>> est.n_factors_, est.butterfly_.nnz
    (3, 48)
    >>> est.relative_error_ < 1e-12
    True
    >>> est.transform(np.eye(8)).shape
    (8, 8)
    """

    _factor_attributes = ("butterfly_",)

    _parameter_constraints: dict = {
        "n_factors": [Interval(Integral, 1, None, closed="left"), None],
        "rank": [Interval(Integral, 1, None, closed="left")],
        "tree": [StrOptions(set(TREES)), tuple, list, np.ndarray],
        "permutation": [None, str, list, tuple, np.ndarray],
        "row_permutation": [None, str, list, tuple, np.ndarray],
        "orthonormalize": ["boolean"],
        "padding": [StrOptions(set(PADDINGS))],
        "n_jobs": [Integral, None],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_factors=None,
        rank=1,
        tree="balanced",
        permutation=None,
        row_permutation=None,
        orthonormalize=True,
        padding="zeros",
        n_jobs=None,
        verbose=0,
        random_state=None,
    ):
        self.n_factors = n_factors
        self.rank = rank
        self.tree = tree
        self.permutation = permutation
        self.row_permutation = row_permutation
        self.orthonormalize = orthonormalize
        self.padding = padding
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the butterfly operator to the matrix ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Matrix to approximate (real or complex). A ``numpy.memmap``, a
            slice-readable dataset or a Dask array is read by column slabs
            within scikit-learn's ``working_memory`` (see
            :func:`butterfly_factorize`).
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        progress = Progress("ButterflyFactorizer", self.verbose)
        source = slab_source(X, name="X")
        if source is None:
            X = validate_estimator_input(self, X, reset=True)
        else:
            validate_data(self, X, skip_check_array=True, reset=True)
            X = source
        plan = plan_factorization(
            X.shape,
            self.n_factors,
            self.rank,
            self.tree,
            self.permutation,
            self.padding,
            self.row_permutation,
        )
        self.butterfly_, error, norm = factorize_with_error(
            X,
            *plan,
            self.orthonormalize,
            self.n_jobs,
            verbose=self.verbose,
            random_state=self.random_state,
        )
        B = self.butterfly_
        self.n_factors_ = B.n_factors
        self.permutation_ = np.arange(B.padded_shape[1]) if B.perm is None else B.perm
        self.row_permutation_ = (
            np.arange(B.padded_shape[0]) if B.row_perm is None else B.row_perm
        )
        self._set_errors(X, error, norm)
        progress(
            f"{self.n_factors_} factors, nnz={self.butterfly_.nnz}, relative "
            f"error {self.relative_error_:.3e}"
        )
        warn_if_poor_fit(
            self.relative_error_,
            self.butterfly_.nnz,
            X.shape[0] * X.shape[1],
            POOR_FIT_HINT,
        )
        return self

    def _stored_factors(self):
        return self.butterfly_

    def _quantized_copy(self, X, fmt, method, heuristic, n_jobs, verbose=0):
        quantized = copy.copy(self)
        quantized.butterfly_ = quantize_butterfly(
            self.butterfly_, fmt, heuristic, method, n_jobs=n_jobs, verbose=verbose
        )
        quantized._set_errors(X, quantized._error(X))
        return quantized
