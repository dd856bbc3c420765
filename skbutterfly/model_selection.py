"""Model selection for matrix approximation: scorers, a splitter and a refit rule.

A factorizer approximates *one* matrix, so cross-validation here does not
hold out samples: :class:`WholeMatrixSplit` fits and scores on the whole
matrix once, the scorers compare the fitted approximation :math:`\\hat X` with
that matrix (or measure its cost), and :func:`cheapest_within` turns a grid
search into "the cheapest model whose error is within a tolerance".

Every scorer follows scikit-learn's convention that *higher is better*: errors
and costs are returned **negated** (``neg_relative_error``,
``neg_storage_bits``, ``neg_flops``); the signal-to-noise ratio
(``snr_db``) is already a gain.

Examples
--------
>>> import numpy as np
>>> from sklearn.model_selection import GridSearchCV
>>> from skbutterfly import ButterflyFactorizer
>>> from skbutterfly.datasets import hadamard
>>> from skbutterfly.model_selection import (
...     WholeMatrixSplit, all_scorers, cheapest_within)
>>> search = GridSearchCV(
...     ButterflyFactorizer(), {"n_factors": [1, 2, 6]}, cv=WholeMatrixSplit(),
...     scoring=all_scorers(), refit=cheapest_within(1e-10))
>>> search.fit(hadamard(64)).best_params_      # exact, with the fewest values
{'n_factors': 6}
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import warnings
from collections.abc import Callable
from numbers import Real

import numpy as np
from sklearn.frozen import FrozenEstimator
from sklearn.utils.validation import check_is_fitted

from skbutterfly._base import BaseFactorizer, relative_error
from skbutterfly._scaling import frobenius_errors
from skbutterfly._validation import check_matrix
from skbutterfly._warnings import PoorFitWarning, external_stacklevel

__all__ = [
    "WholeMatrixSplit",
    "all_scorers",
    "cheapest_within",
    "neg_flops",
    "neg_relative_error",
    "neg_storage_bits",
    "snr_db",
]


def _factorizer(estimator):
    """The fitted factorizer behind ``estimator`` (a ``FrozenEstimator`` unwrapped)."""
    inner = estimator.estimator if isinstance(estimator, FrozenEstimator) else estimator
    if not isinstance(inner, BaseFactorizer):
        raise TypeError(
            "the scorer needs a fitted ButterflyFactorizer, FixedSupportFactorizer, "
            f"SparseFactorizer or QuantizedButterfly, got {type(inner).__name__}."
        )
    check_is_fitted(inner)
    return inner


def _errors(estimator, X):
    """Frobenius norms of ``X - X_hat`` and of ``X``, and the dtype of ``X``."""
    X = check_matrix(X, name="X")
    X_hat = _factorizer(estimator)._approximation()
    if X_hat.shape != X.shape:
        raise ValueError(
            "the scorer compares the fitted approximation with X, which must be "
            f"the whole fitted matrix of shape {X_hat.shape}; got "
            f"n_samples={X.shape[0]}, n_features={X.shape[1]}. Use "
            "cv=WholeMatrixSplit() in the search."
        )
    error, norm, _ = frobenius_errors(X, X_hat)
    return error, norm, X.dtype


def neg_relative_error(estimator, X, y=None) -> float:
    """Minus the relative Frobenius error of the fitted approximation.

    .. math:: -\\frac{\\|X - \\hat X\\|_F}{\\|X\\|_F}

    where :math:`\\hat X` is the estimator's fitted approximation (the
    butterfly ``butterfly_``, or ``W_ @ components_``), quantized for a
    :class:`~skbutterfly.QuantizedButterfly`. Negated so that higher is
    better. For ``X = 0`` the value is 0 when :math:`\\hat X = 0` and
    ``-inf`` otherwise.

    Parameters
    ----------
    estimator : estimator instance
        A fitted ``ButterflyFactorizer``, ``FixedSupportFactorizer`` or
        ``QuantizedButterfly`` (possibly inside a ``FrozenEstimator``).
    X : array-like of shape (n_samples, n_features)
        The matrix that was fitted (the whole of it, see
        :class:`WholeMatrixSplit`).
    y : None
        Ignored.

    Returns
    -------
    float
        Minus the relative error, at most 0.

    Examples
    --------
    >>> from skbutterfly import ButterflyFactorizer
    >>> from skbutterfly.datasets import hadamard
    >>> from skbutterfly.model_selection import neg_relative_error
    >>> A = hadamard(16)
    >>> est = ButterflyFactorizer().fit(A)
    >>> neg_relative_error(est, A) > -1e-12
    True
    """
    residual, norm, _ = _errors(estimator, X)
    return -relative_error(residual, norm)


def snr_db(estimator, X, y=None) -> float:
    """Signal-to-noise ratio of the fitted approximation, in decibels.

    .. math:: 20 \\log_{10} \\frac{\\|X\\|_F}{\\|X - \\hat X\\|_F}

    Higher is better (no negation): an error of 1e-3 is 60 dB. The residual
    is counted as at least the rounding level :math:`\\epsilon \\|X\\|_F`
    (:math:`\\epsilon` the machine epsilon of ``X``'s dtype), so an exact
    approximation scores about 313 dB in float64 (138 dB in float32) instead
    of ``inf``, which would break the averaging of ``GridSearchCV``. A zero
    ``X`` approximated by a nonzero matrix scores ``-inf``.

    Parameters
    ----------
    estimator : estimator instance
        A fitted factorizer, as for :func:`neg_relative_error`.
    X : array-like of shape (n_samples, n_features)
        The whole fitted matrix.
    y : None
        Ignored.

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly import ButterflyFactorizer
    >>> from skbutterfly.model_selection import snr_db
    >>> A = np.random.default_rng(0).standard_normal((16, 16))
    >>> est = ButterflyFactorizer(n_factors=1).fit(A)   # dense: exact
    >>> round(snr_db(est, A))                           # the float64 cap
    313
    >>> est = ButterflyFactorizer().fit(A)              # 4 factors: a poor fit
    >>> bool(0 < snr_db(est, A) < 20)
    True
    """
    residual, norm, dtype = _errors(estimator, X)
    eps = float(np.finfo(dtype).eps)
    if norm == 0.0:
        return -np.inf if residual > 0 else -20.0 * float(np.log10(eps))
    return 20.0 * float(np.log10(norm / max(residual, eps * norm)))


def neg_storage_bits(estimator, X=None, y=None) -> float:
    """Minus the number of bits needed to store the fitted factors.

    A :class:`~skbutterfly.QuantizedButterfly` reports its own
    ``storage_bits_`` (values in the low-precision format); an unquantized
    model stores each of its ``nnz`` values (the butterfly's ``nnz``, or the
    sizes of the two supports) in its dtype, so its storage is
    ``nnz * 8 * dtype.itemsize`` (64 bits per float64 value, 128 per
    complex128 value). The supports' structure (a few integers) and the row
    and column permutations (at most ``n log2(n)`` bits each for ``n``
    indices, less than one value per index) are not counted. Negated so that
    higher is better.

    Parameters
    ----------
    estimator : estimator instance
        A fitted factorizer, as for :func:`neg_relative_error`.
    X : array-like, default=None
        Ignored (present for the scorer signature).
    y : None
        Ignored.

    Returns
    -------
    float
        Minus the storage in bits.

    Examples
    --------
    >>> from skbutterfly import ButterflyFactorizer
    >>> from skbutterfly.datasets import hadamard
    >>> from skbutterfly.model_selection import neg_storage_bits
    >>> est = ButterflyFactorizer().fit(hadamard(16))   # 4 factors, 32 values each
    >>> neg_storage_bits(est)
    -8192.0
    """
    return -float(_factorizer(estimator)._storage_bits())


def neg_flops(estimator, X=None, y=None) -> float:
    """Minus the floating-point operations of one matrix-vector product.

    Two operations (a multiplication and an addition) per stored value:
    ``butterfly_.flops`` for a butterfly, twice the sizes of the two
    supports for a fixed-support model; quantization does not change it. Negated so that
    higher is better.

    Parameters
    ----------
    estimator : estimator instance
        A fitted factorizer, as for :func:`neg_relative_error`.
    X : array-like, default=None
        Ignored (present for the scorer signature).
    y : None
        Ignored.

    Returns
    -------
    float
        Minus the flops per product.

    Examples
    --------
    >>> from skbutterfly import ButterflyFactorizer
    >>> from skbutterfly.datasets import hadamard
    >>> from skbutterfly.model_selection import neg_flops
    >>> neg_flops(ButterflyFactorizer().fit(hadamard(16)))
    -256.0
    """
    nnz, _ = _factorizer(estimator)._stored_values()
    return -2.0 * nnz


def all_scorers() -> dict:
    """The scorers of this module, by the names :func:`cheapest_within` reads.

    Returns
    -------
    dict
        A new dict ``{"relative_error": neg_relative_error, "snr_db": snr_db,
        "storage_bits": neg_storage_bits, "flops": neg_flops}``, for
        ``GridSearchCV(scoring=...)``. In ``cv_results_`` the columns are
        ``mean_test_relative_error`` (minus the error), ``mean_test_snr_db``,
        ``mean_test_storage_bits`` and ``mean_test_flops`` (minus the costs).

    Examples
    --------
    >>> from skbutterfly.model_selection import all_scorers
    >>> sorted(all_scorers())
    ['flops', 'relative_error', 'snr_db', 'storage_bits']
    """
    return {
        "relative_error": neg_relative_error,
        "snr_db": snr_db,
        "storage_bits": neg_storage_bits,
        "flops": neg_flops,
    }


class WholeMatrixSplit:
    """Cross-validation with one split: the whole matrix for fit and for score.

    Approximating a matrix is not a prediction task: there are no samples to
    hold out. With ``cv=WholeMatrixSplit()``, ``GridSearchCV`` fits each
    candidate once on the whole matrix and scores it on the same matrix, so
    the search ranks models by how well (and how cheaply) they approximate
    it. ``return_train_score=True`` would only repeat the test scores.

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly.model_selection import WholeMatrixSplit
    >>> cv = WholeMatrixSplit()
    >>> [(train.tolist(), test.tolist()) for train, test in cv.split(np.ones((3, 2)))]
    [([0, 1, 2], [0, 1, 2])]
    >>> cv.get_n_splits()
    1
    """

    def split(self, X, y=None, groups=None):
        """Yield the only split: every row index, twice.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The matrix.
        y : None
            Ignored.
        groups : None
            Ignored.

        Yields
        ------
        train : ndarray of shape (n_samples,)
            ``arange(n_samples)``.
        test : ndarray of shape (n_samples,)
            ``arange(n_samples)``.
        """
        n_samples = X.shape[0] if hasattr(X, "shape") else len(X)
        indices = np.arange(n_samples)
        yield indices, indices

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        """Number of splits: always 1.

        Parameters
        ----------
        X, y, groups : object
            Ignored.

        Returns
        -------
        int
        """
        return 1

    def __repr__(self):
        return "WholeMatrixSplit()"


class _CheapestWithin:
    """The refit rule built by :func:`cheapest_within` (picklable, readable).

    ``GridSearchCV.score`` looks its scorer up by ``refit`` in the dict of
    scorers; the rule hashes and compares equal to the name of its error
    scorer, so ``search.score(X)`` reports that scorer.
    """

    def __init__(self, tol, cost, error):
        self.tol = tol
        self.cost = cost
        self.error = error

    def _column(self, cv_results, name):
        key = f"mean_test_{name}"
        if key not in cv_results:
            names = sorted(
                k[len("mean_test_") :] for k in cv_results if k.startswith("mean_test_")
            )
            raise ValueError(
                f"cheapest_within needs a scorer named {name!r} in the search's "
                f"scoring (cv_results_ has no {key!r}); scorers found: {names}. "
                "Use scoring=skbutterfly.model_selection.all_scorers()."
            )
        return np.asarray(cv_results[key], dtype=float)

    def __call__(self, cv_results) -> int:
        error = -self._column(cv_results, self.error)
        cost = -self._column(cv_results, self.cost)
        valid = ~(np.isnan(error) | np.isnan(cost))
        if not valid.any():
            raise ValueError(
                "cheapest_within: every candidate failed to fit or score (all "
                "scores are NaN); set error_score='raise' to see why."
            )
        within = valid & (error <= self.tol)
        candidates = np.flatnonzero(within if within.any() else valid)
        if within.any():
            # Fewest bits (or flops), then the smaller error, then the first.
            order = np.lexsort((candidates, error[candidates], cost[candidates]))
        else:
            order = np.lexsort((candidates, error[candidates]))
        best = int(candidates[order[0]])
        if not within.any():
            warnings.warn(
                f"cheapest_within(tol={self.tol:g}): no candidate reaches the "
                f"tolerance; refitting the most accurate one, with relative error "
                f"{error[best]:.3g} (candidate {best}). Widen the grid (rank, "
                "permutation, n_factors=1) or raise tol; see 'Choosing a model' in "
                "the user guide.",
                PoorFitWarning,
                stacklevel=external_stacklevel(),
            )
        return best

    def __hash__(self):
        return hash(self.error)

    def __eq__(self, other):
        if isinstance(other, str):
            return other == self.error
        if isinstance(other, _CheapestWithin):
            return (self.tol, self.cost, self.error) == (
                other.tol,
                other.cost,
                other.error,
            )
        return NotImplemented

    def __repr__(self):
        return (
            f"cheapest_within(tol={self.tol!r}, cost={self.cost!r}, "
            f"error={self.error!r})"
        )


def cheapest_within(
    tol: float, cost: str = "storage_bits", error: str = "relative_error"
) -> Callable[[dict], int]:
    """Refit rule for ``GridSearchCV``: the cheapest model within an error tolerance.

    Returns a callable for ``GridSearchCV(refit=...)``. Given the search's
    ``cv_results_`` it reads, for every candidate :math:`k`, the error
    :math:`e_k = -` ``mean_test_<error>`` (the relative Frobenius error, as
    :func:`neg_relative_error` is negated) and the cost
    :math:`c_k = -` ``mean_test_<cost>`` (storage bits or flops), and returns
    the index of

    .. math:: \\arg\\min \\{\\, c_k : e_k \\le \\text{tol} \\,\\},

    ties broken by the smaller error, then by the first index. If **no**
    candidate reaches the tolerance, it falls back to the most accurate one
    (the smallest :math:`e_k`, first index on ties) and emits a
    :class:`~skbutterfly.PoorFitWarning` naming that error. Candidates whose
    scores are NaN (a failed fit with ``error_score=np.nan``) are never
    chosen. ``search.score(X)`` then returns the ``error`` scorer of the
    refitted model (minus its relative error).

    Parameters
    ----------
    tol : float
        Largest acceptable relative error, >= 0.
    cost : str, default="storage_bits"
        Name, in the search's ``scoring`` dict, of the cost scorer to minimise:
        ``"storage_bits"`` (:func:`neg_storage_bits`) or ``"flops"``
        (:func:`neg_flops`), or the key of any scorer returning a negated cost.
    error : str, default="relative_error"
        Name, in the ``scoring`` dict, of the scorer returning minus the
        relative error (:func:`neg_relative_error`).

    Returns
    -------
    callable
        ``refit(cv_results) -> int``. ``GridSearchCV`` then exposes the choice
        as ``best_index_``, ``best_params_`` and ``best_estimator_``
        (``best_score_`` is not set for a callable ``refit``), and its
        ``score(X)`` is the ``error`` scorer of ``best_estimator_``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.model_selection import GridSearchCV
    >>> from skbutterfly import ButterflyFactorizer
    >>> from skbutterfly.datasets import add_noise, random_butterfly
    >>> from skbutterfly.model_selection import (
    ...     WholeMatrixSplit, all_scorers, cheapest_within)
    >>> A = add_noise(random_butterfly(64, random_state=0).toarray(), 0.01,
    ...               random_state=0)
    >>> search = GridSearchCV(
    ...     ButterflyFactorizer(), {"n_factors": [1, 2, 6]}, cv=WholeMatrixSplit(),
    ...     scoring=all_scorers(), refit=cheapest_within(0.05))
    >>> search.fit(A).best_params_    # errors 0, 0.0088, 0.0095; 4096, 1024, 768 values
    {'n_factors': 6}
    >>> search.set_params(refit=cheapest_within(1e-3)).fit(A).best_params_
    {'n_factors': 1}
    >>> float(search.score(A))          # minus the relative error of the refit
    -0.0
    """
    if isinstance(tol, bool) or not isinstance(tol, Real) or not tol >= 0:
        raise ValueError(f"tol must be a number >= 0, got {tol!r}.")
    for name, value in (("cost", cost), ("error", error)):
        if not isinstance(value, str):
            raise TypeError(
                f"{name} must be the name of a scorer in the search's scoring, "
                f"got {value!r}."
            )
    return _CheapestWithin(float(tol), cost, error)
