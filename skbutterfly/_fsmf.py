"""Two-factor sparse matrix factorization with fixed supports (FSMF).

Minimise :math:`\\|A - W H\\|_F` over ``W`` supported on ``S_W`` and ``H``
supported on ``S_H`` (Le et al., arXiv:2112.00386,
with ``W = X`` and ``H = Y^T``):
support analysis (rank-one supports, equivalence classes, tractability), the
exact algorithms of the tractable cases, and alternating least squares for
the others.
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from skbutterfly._constants import FSMF_METHODS
from skbutterfly._fsmf_als import best_als_run, squared_error
from skbutterfly._fsmf_exact import CERTIFICATE_RTOL, exact_factorize
from skbutterfly._progress import Progress
from skbutterfly._scaling import (
    frobenius_norm,
    ldexp_or_inf,
    scale_pow2,
    scaling_exponent,
    split_exponent,
)
from skbutterfly._slabs import refuse_out_of_core
from skbutterfly._support_analysis import (
    SupportAnalysis,
    analyze_checked,
    check_supports,
)
from skbutterfly._validation import check_matrix, check_positive_int

# Bound on the ALS starts: a mistyped huge count must fail, not allocate.
_MAX_RESTARTS = 10_000
_MAX_ITER = 1_000_000


def _certify(method, error, optimal, norm, dtype):
    """Return ``(certified, reason)``: whether the error attains the optimum."""
    if method != "exact":
        return False, "alternating least squares is never certified."
    gap = abs(error - optimal)
    tolerance = CERTIFICATE_RTOL * np.finfo(dtype).eps * norm
    if gap <= tolerance:
        return True, (
            f"the error is within {CERTIFICATE_RTOL} unit roundoffs (times "
            "the norm of A) of the optimum computed from the spectrum."
        )
    return False, (
        f"the error {error:.6e} differs from the optimum {optimal:.6e} (at the "
        f"scale of A) by {gap:.3e}, more than the tolerance {tolerance:.3e}; "
        "the certificate is withheld."
    )


@dataclass(frozen=True)
class FactorizationInfo:
    """What :func:`fixed_support_factorize` did and how good the result is.

    Attributes
    ----------
    method : {"exact", "als"}
        The algorithm that produced the factors.
    certified_optimal : bool
        ``True`` when the exact algorithm ran and the returned error equals
        the optimum computed from the spectrum (``optimal_error``) within
        16 unit roundoffs of the working dtype times :math:`\\|A\\|_F`: the
        factors are then a global minimiser. Alternating least squares is
        never certified.
    error : float
        :math:`\\|A - W H\\|_F` of the returned factors.
    relative_error : float
        ``error`` divided by :math:`\\|A\\|_F` (0 when ``A`` is zero).
    optimal_error : float or None
        The optimal value, computed from the spectrum alone (discarded
        singular values of every class block plus the energy of ``A``
        outside the fitted area), independently of the returned factors;
        ``None`` when not certified.
    n_iter : int
        ALS iterations of the retained start (1 for the exact algorithm,
        a single pass).
    certificate : str
        Why the result is certified or not (with the gap and the tolerance
        when the certificate is withheld).
    analysis : SupportAnalysis
        The support analysis.

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly import fixed_support_factorize
    >>> A = np.arange(6.0).reshape(2, 3)
    >>> W, H, info = fixed_support_factorize(A, np.ones((2, 1)), np.ones((1, 3)))
    >>> info.method, info.certified_optimal, info.n_iter
    ('exact', True, 1)
    """

    method: str
    certified_optimal: bool
    error: float
    relative_error: float
    optimal_error: float | None
    n_iter: int
    certificate: str = field(repr=False)
    analysis: SupportAnalysis = field(repr=False)


def fixed_support_factorize(
    A,
    S_W,
    S_H,
    method: str = "auto",
    *,
    max_iter: int = 200,
    tol: float = 1e-10,
    n_restarts: int = 5,
    random_state=None,
    n_jobs: int | None = None,
    verbose: int = 0,
):
    """Factorize ``A ≈ W @ H`` with ``W`` and ``H`` on fixed supports.

    Solves

    .. math:: \\min_{W, H} \\|A - W H\\|_F \\quad \\text{s.t.}\\quad
              \\operatorname{supp}(W) \\subseteq S_W,\\;
              \\operatorname{supp}(H) \\subseteq S_H.

    On tractable supports (:func:`analyze_supports`) the exact algorithm
    returns a global minimiser: every class ``P`` is fitted on its rectangle
    by a truncated SVD of rank ``|P|`` (singular values split as
    :math:`\\sqrt{\\sigma}` on both sides), the blocks of equal shape in one
    batched call; complete classes that overlap share their area, each entry
    going to one of them. The optimal error is

    .. math:: \\Big(\\sum_{(i,j) \\notin \\text{fitted area}} |A_{ij}|^2 +
              \\sum_{P} \\sum_{s > |P|} \\sigma_s(A[R'_P, C'_P])^2\\Big)^{1/2}.

    Otherwise (the problem is NP-hard in general) alternating least squares
    runs from several starts, the first from a tractable relaxation (a
    greedy set of pairwise disjoint classes solved exactly), and the best
    result is kept; it is not certified. When ``S_W`` holds the lower and
    ``S_H`` the upper triangle (the LU instance), the first start is
    Gaussian elimination without pivoting instead, so a matrix that has an
    LU factorization is reproduced to rounding; a first start within a
    relative error of 1e-10 ends the search. A
    ``sklearn.exceptions.ConvergenceWarning`` is emitted when the retained
    start stops at ``max_iter`` before meeting ``tol``. Each half-step
    solves one small least-squares problem per row of ``W`` (column of
    ``H``) restricted to its support, batched over rows padded to common
    sizes. On instances whose infimum is not attained (LU of
    ``[[0, 1], [1, 0]]``) the factors stay finite and the iterations stop
    on ``max_iter`` or ``tol``.

    Parameters
    ----------
    A : array-like of shape (m, n)
        Matrix to factorize (real or complex; float32 and complex64 kept), in
        memory: a Dask array or a slice-readable dataset raises
        ``ValueError`` (:func:`~skbutterfly.butterfly_factorize` reads those
        by slabs); a :class:`numpy.memmap` is read whole.
    S_W : array-like or sparse matrix of shape (m, r)
        Support of ``W`` (booleans, or numbers equal to 0 or 1).
    S_H : array-like or sparse matrix of shape (r, n)
        Support of ``H``.
    method : {"auto", "exact", "als"}, default="auto"
        ``"auto"``: exact when tractable, ALS otherwise. ``"exact"``: raise a
        ``ValueError`` carrying the analysis' reason on intractable
        supports. ``"als"``: always alternating least squares.
    max_iter : int, default=200
        Maximal ALS iterations per start, at most 10**6. Each costs one
        least-squares solve per row of ``W`` and column of ``H``; where the
        infimum is not attained the error keeps decreasing slowly, so
        ``tol`` rarely stops the iterations and ``max_iter * n_restarts``
        iterations run.
    tol : float, default=1e-10
        ALS stops when the squared error decreases by less than ``tol``
        times its value.
    n_restarts : int, default=5
        Number of ALS starts (the first from the relaxation, the others
        random Gaussian on the supports), at most 10000.
    random_state : int, RandomState instance or None, default=None
        Seed of the random starts.
    n_jobs : int, default=None
        Jobs for the batched SVDs and the ALS starts (joblib).
    verbose : int, default=0
        ``0`` is silent; ``1`` prints one line per ALS start, ``2`` also one
        per iteration, with the elapsed time.

    Returns
    -------
    W : ndarray of shape (m, r)
        Zero outside ``S_W``.
    H : ndarray of shape (r, n)
        Zero outside ``S_H``.
    info : FactorizationInfo
        Method, certification, errors and the support analysis.

    Raises
    ------
    ValueError
        On mismatched shapes, masks with values other than 0/1, NaN/inf or
        empty ``A``, or ``method="exact"`` on intractable supports.

    See Also
    --------
    analyze_supports : The tractability analysis.
    FixedSupportFactorizer : The same as a scikit-learn estimator.

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly import butterfly_support, fixed_support_factorize
    >>> from skbutterfly.datasets import hadamard
    >>> S_W, S_H = butterfly_support(4, 1), butterfly_support(4, 2)
    >>> W, H, info = fixed_support_factorize(hadamard(4), S_W, S_H)
    >>> info.method, info.certified_optimal, info.error < 1e-12
    ('exact', True, True)
    >>> bool(np.all(W[~S_W] == 0))
    True
    """
    refuse_out_of_core(A, name="A", solver="fixed_support_factorize")
    A = check_matrix(A, name="A")
    S_W, S_H = check_supports(S_W, S_H, A.shape)
    if method not in FSMF_METHODS:
        raise ValueError(
            f"method must be one of {FSMF_METHODS}, got method={method!r}."
        )
    max_iter = check_positive_int(max_iter, "max_iter", maximum=_MAX_ITER)
    n_restarts = check_positive_int(n_restarts, "n_restarts", maximum=_MAX_RESTARTS)
    if not np.isfinite(tol) or tol < 0:
        raise ValueError(f"tol must be a finite number >= 0, got tol={tol!r}.")
    analysis = analyze_checked(S_W, S_H)
    if method == "exact" and not analysis.tractable:
        raise ValueError(
            "method='exact' needs tractable supports, but " + analysis.reason
        )
    # Scale extreme magnitudes once by a power of two (exact): squares and
    # products of the entries then neither under- nor overflow.
    exponent = scaling_exponent(A)
    A = scale_pow2(A, -exponent)
    if method != "als" and analysis.tractable:
        W, H, optimal = exact_factorize(A, analysis, n_jobs)
        method, n_iter = "exact", 1
    else:
        progress = Progress("fixed_support_factorize", verbose)
        W, H, n_iter = best_als_run(
            A,
            S_W,
            S_H,
            analysis,
            max_iter,
            tol,
            n_restarts,
            random_state,
            n_jobs,
            progress,
        )
        method, optimal = "als", None
    error = float(np.sqrt(squared_error(A, W, H)))
    norm = frobenius_norm(A)
    certified, reason = _certify(method, error, optimal, norm, A.dtype)
    if not certified and method == "exact":
        warnings.warn(
            "fixed_support_factorize: " + reason, ConvergenceWarning, stacklevel=2
        )
    exponent_W, exponent_H = split_exponent(exponent, 2)
    W, H = scale_pow2(W, exponent_W), scale_pow2(H, exponent_H)
    info = FactorizationInfo(
        method=method,
        certified_optimal=certified,
        error=ldexp_or_inf(error, exponent),
        relative_error=error / norm if norm > 0 else 0.0,
        optimal_error=None if optimal is None else ldexp_or_inf(optimal, exponent),
        n_iter=n_iter,
        certificate=reason,
        analysis=analysis,
    )
    return W, H, info
