"""Sparse factorization with unknown supports: PALM and the hierarchical strategy.

Layer 3 (algorithms): minimise :math:`\\|A - \\lambda S_1 \\cdots S_J\\|_F`
with every factor in a sparsity family (:class:`SparsityConstraint`), by
proximal alternating linearised minimisation (PALM) over all factors, or by
splitting one factor off at a time (each split a two-factor PALM, then a
global PALM pass). For two factors the coefficients on the found supports are
then solved exactly when the supports are tractable.
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import warnings
from dataclasses import dataclass, field
from math import prod

import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

from skbutterfly._fsmf import fixed_support_factorize
from skbutterfly._palm import best_scale, chain_product, palm, to_dense
from skbutterfly._progress import Progress
from skbutterfly._projections import SparsityConstraint, as_constraint
from skbutterfly._sparse_product import SparseProduct
from skbutterfly._support_analysis import SupportAnalysis, analyze_supports
from skbutterfly._validation import check_matrix, check_positive_int

STRATEGIES = ("palm", "hierarchical")


@dataclass
class SparseFactorizationInfo:
    """What :func:`sparse_factorize` did and which step gave which error.

    Attributes
    ----------
    strategy : {"palm", "hierarchical"}
        The strategy that found the supports.
    n_iter : int
        PALM sweeps in all (every split and global pass of the hierarchical
        strategy counted).
    converged : bool
        Whether the last PALM run met ``tol`` before ``max_iter``.
    error : float
        :math:`\\|A - S_1 \\cdots S_J\\|_F` of the returned product.
    relative_error : float
        ``error`` divided by :math:`\\|A\\|_F` (0 when ``A`` is zero).
    palm_relative_error : float
        Relative error at the end of the PALM step (support identification
        and first coefficients).
    exact_relative_error : float or None
        Relative error after the exact step, when it ran, else ``None``.
    certified_optimal : bool
        ``True`` when all the returned coefficients are a certified global
        minimiser on the found supports (two factors with tractable
        supports; the supports themselves are not certified: that problem
        is NP-hard).
    exact_factors : tuple of int or None
        The two factors (0-based positions) whose coefficients the exact
        step solved: ``(0, 1)`` for two factors; for ``J > 2`` the last two
        (or else the first two) when the product of the other factors has
        orthogonal columns (rows), which makes their problem a two-factor
        fixed-support problem, and their supports are tractable.
        Those two are then a certified minimiser given the others. ``None``
        when the step did not run.
    analysis : SupportAnalysis or None
        The support analysis of the pair of found supports that was
        examined (``None`` when none was).
    scale : float
        The fitted scalar :math:`\\lambda` (1 unless a constraint is
        normalised), already multiplied into the first factor.
    objective : ndarray
        Relative error after each sweep of the last PALM run (index 0: at
        its start); never increasing.
    steps : tuple of (str, float)
        Each step and the relative error it left: ``("palm", e)``, or
        ``("split 1", e), ("global 1", e), ...`` for the hierarchical
        strategy, then ``("exact", e)`` when the exact step ran.

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly import sparse_factorize
    >>> A = np.diag([3.0, 2.0]) @ np.array([[0.0, 1.0], [1.0, 0.0]])
    >>> P, info = sparse_factorize(A, [("row", 1), ("row", 1)])
    >>> [name for name, error in info.steps]
    ['split 1', 'global 1', 'exact']
    >>> info.certified_optimal, info.relative_error < 1e-12
    (True, True)
    """

    strategy: str
    n_iter: int
    converged: bool
    error: float
    relative_error: float
    palm_relative_error: float
    exact_relative_error: float | None
    certified_optimal: bool
    exact_factors: tuple | None
    analysis: SupportAnalysis | None = field(repr=False)
    scale: float
    objective: np.ndarray = field(repr=False)
    steps: tuple


# ----------------------------------------------------------------------------
# Set-up: constraints, shapes, starts
# ----------------------------------------------------------------------------


def _check_constraints(constraints, shape, inner_dims):
    """Constraint objects and the factor shapes, or ValueError naming them."""
    if isinstance(constraints, (str, SparsityConstraint)) or not hasattr(
        constraints, "__len__"
    ):
        raise ValueError(
            "constraints must be a list with one constraint per factor, got "
            f"{constraints!r}."
        )
    cons = [as_constraint(c, position=j) for j, c in enumerate(constraints)]
    J = len(cons)
    if J == 0:
        raise ValueError("constraints must hold at least one constraint, got none.")
    m, n = shape
    if inner_dims is None:
        dims = []
        for j in range(J - 1):
            left, right = cons[j].shape, cons[j + 1].shape
            dims.append(
                left[1] if left is not None else right[0] if right else min(m, n)
            )
    else:
        dims = [
            check_positive_int(d, f"inner_dims[{j}]") for j, d in enumerate(inner_dims)
        ]
        if len(dims) != J - 1:
            raise ValueError(
                f"inner_dims must hold len(constraints) - 1 = {J - 1} sizes, got "
                f"{len(dims)}."
            )
    sizes = [m, *dims, n]
    shapes = [(sizes[j], sizes[j + 1]) for j in range(J)]
    for j, (c, s) in enumerate(zip(cons, shapes)):
        try:
            c.check_shape(s)
        except ValueError as exc:
            raise ValueError(f"constraints[{j}]: {exc}") from None
    return cons, shapes


def _rect_eye(shape, dtype):
    return np.eye(*shape, dtype=dtype)


def _identity_start(constraint, shape, dtype):
    """The identity projected on the family (the support's indicator if zero)."""
    S = constraint.project(_rect_eye(shape, dtype))
    if not S.any() and constraint.support is not None:
        S = constraint.project(constraint.support.astype(dtype))
    return S


def _start(A, init, constraints, shapes, random_state):
    """Initial factors and scale for ``init``."""
    dtype = A.dtype
    if isinstance(init, str):
        if init == "identity":
            factors = [
                _identity_start(c, s, dtype)
                for c, s in zip(constraints[:-1], shapes[:-1])
            ]
            return [*factors, np.zeros(shapes[-1], dtype=dtype)], 1.0
        if init == "random":
            rng = check_random_state(random_state)
            factors = [
                c.project(rng.standard_normal(s).astype(dtype) / np.sqrt(s[0]))
                for c, s in zip(constraints, shapes)
            ]
            P = chain_product(factors, A.shape[1], dtype)
            return factors, best_scale(A, P, 1.0)
        raise ValueError(
            "init must be 'identity', 'random', a SparseProduct, a "
            f"ButterflyMatrix or a list of factors, got init={init!r}."
        )
    factors = _warm_factors(init)
    got = [tuple(F.shape) for F in factors]
    if got != [tuple(s) for s in shapes]:
        raise ValueError(
            f"init must have factors of shapes {shapes} (from the constraints), "
            f"got shapes {got}."
        )
    return [
        check_matrix(to_dense(F), name="init factor").astype(dtype) for F in factors
    ], 1.0


def _warm_factors(init):
    """Factors of a warm start: a list, a SparseProduct or a ButterflyMatrix."""
    if isinstance(init, SparseProduct):
        return list(init.factors)
    if hasattr(init, "factors_sparse"):
        # A ButterflyMatrix: its product list ends with the gather matrix of
        # its permutation and padding, when it has one; fold it in.
        factors = init.factors_sparse()
        while len(factors) > init.n_factors:
            factors[-2:] = [factors[-2] @ factors[-1]]
        return factors
    return list(init)


def _default_residual(rest, shape):
    """The family of the product of the factors ``rest`` (hierarchical default).

    Fixed supports give the support of their product; ``k``-per-row (column,
    row-or-column) families give the same family with the product of the
    ``k``; anything else leaves the residual unconstrained.
    """
    normalized = any(c.normalized for c in rest)
    names = {c.name for c in rest}
    if names == {"support"}:
        mask = sp.csr_array(rest[0].support.astype(np.int64))
        for c in rest[1:]:
            mask = mask @ sp.csr_array(c.support.astype(np.int64))
        return SparsityConstraint(
            "support", support=mask.toarray() > 0, normalized=normalized
        )
    if len(names) == 1 and names <= {"row", "col", "rowcol", "rowcol_and"}:
        name = names.pop()
        limit = {"row": shape[1], "col": shape[0]}.get(name, min(shape))
        k = min(limit, prod(c.k for c in rest))
        # The union rule admits residuals with dense rows, and with them exact
        # splits that no further factors of the family can continue.
        return _intersection_rule(SparsityConstraint(name, k, normalized=normalized))
    return SparsityConstraint("total", shape[0] * shape[1], normalized=normalized)


# ----------------------------------------------------------------------------
# Strategies
# ----------------------------------------------------------------------------


def _run_palm(A, constraints, shapes, init, random_state, options):
    factors, scale = _start(A, init, constraints, shapes, random_state)
    fit_scale = "block" if any(c.normalized for c in constraints) else None
    factors, scale, objective, n_iter, converged = palm(
        A, factors, constraints, scale, fit_scale=fit_scale, label="palm", **options
    )
    return factors, scale, objective, n_iter, converged, (("palm", objective[-1]),)


def _sweep_scale(constraints):
    """The scale rule of the hierarchical strategy's runs: refit once per sweep.

    Refitting it with every block step, as ``strategy="palm"`` does, makes
    each run converge faster, but the hierarchical strategy then ends worse
    on the benchmarks (its splits settle on supports that the global passes
    cannot leave).
    """
    return "sweep" if any(c.normalized for c in constraints) else None


def _intersection_rule(constraint):
    """``constraint`` with the union rule ``"rowcol"`` replaced by ``"rowcol_and"``."""
    if constraint.name != "rowcol":
        return constraint
    return SparsityConstraint(
        "rowcol_and", constraint.k, normalized=constraint.normalized
    )


def _split(target, pair, shape, options, label):
    """Split ``target ≈ lambda S T``: exact on tractable fixed supports, else PALM.

    Returns ``S, T, lambda, relative error, sweeps, label``.
    """
    if all(c.name == "support" for c in pair):
        S_W, S_H = pair[0].support, pair[1].support
        if analyze_supports(S_W, S_H).tractable:
            W, H, info = fixed_support_factorize(target, S_W, S_H, method="exact")
            scale = 1.0
            for c, F in ((pair[0], W), (pair[1], H)):
                norm = np.linalg.norm(F)
                if c.normalized and norm > 0:
                    F /= norm
                    scale *= norm
            return W, H, scale, info.relative_error, 0, f"{label} (exact)"
    dtype = target.dtype
    start = [
        _identity_start(pair[0], shape, dtype),
        np.zeros((shape[1], target.shape[1]), dtype=dtype),
    ]
    (S, T), scale, objective, n_iter, _ = palm(
        target,
        start,
        pair,
        1.0,
        fit_scale=_sweep_scale(pair),
        label=label,
        **options,
    )
    return S, T, scale, objective[-1], n_iter, label


def _run_hierarchical(A, constraints, shapes, residuals, options):
    """Le Magoarou & Gribonval's hierarchical strategy, splitting off the left."""
    J = len(constraints)
    left, scale, steps, total = [], 1.0, [], 0
    target = A
    for ell in range(J - 1):
        res = residuals[ell] if ell < J - 2 else constraints[-1]
        # The last split, too, keeps the union rule out of its residual (the
        # last factor); the global pass then applies the factor's own rule.
        split_res = _intersection_rule(res)
        S, R, split_scale, error, n_iter, label = _split(
            target,
            [constraints[ell], split_res],
            shapes[ell],
            options,
            f"split {ell + 1}",
        )
        total += n_iter
        steps.append((label, error))
        group = [*constraints[: ell + 1], res]
        factors, scale, objective, n_iter, converged = palm(
            A,
            [*left, S, R],
            group,
            scale * split_scale,
            fit_scale=_sweep_scale(group),
            label=f"global {ell + 1}",
            **options,
        )
        total += n_iter
        steps.append((f"global {ell + 1}", objective[-1]))
        left, target = factors[:-1], to_dense(factors[-1])
    return [*left, factors[-1]], scale, objective, total, converged, tuple(steps)


def _exact_step(A, factors):
    """Exact coefficients on the two found supports, when tractable."""
    S_W, S_H = to_dense(factors[0]) != 0, to_dense(factors[1]) != 0
    analysis = analyze_supports(S_W, S_H)
    if not analysis.tractable:
        return None, analysis
    W, H, _ = fixed_support_factorize(A, S_W, S_H, method="exact")
    return [W, H], analysis


# Relative size of the off-diagonal part accepted for a Gram matrix to count
# as diagonal.
_ORTHOGONAL_TOL = 1e-10


def _orthogonal_weights(G):
    """The diagonal of the Gram matrix ``G`` when ``G`` is diagonal and > 0."""
    d = np.diag(G).real.copy()
    if d.min() <= 0:
        return None
    off = G - np.diag(d)
    return d if np.linalg.norm(off) <= _ORTHOGONAL_TOL * np.linalg.norm(d) else None


def _exact_pair_step(A, factors):
    """Exact coefficients of two adjacent factors, the others fixed (J > 2).

    When the product ``L`` of the factors left of the last two has
    orthogonal columns (``L^H L = D`` diagonal), ``||A - L W H||_F^2 =
    ||D^{1/2} W H - D^{-1/2} L^H A||_F^2 + const``: the fixed-support
    problem of ``(D^{1/2} W, H)`` (the same supports) on ``D^{-1/2} L^H A``
    is the exact one. Likewise for the first two factors when the product
    on their right has orthogonal rows. Returns ``(new factors, positions,
    analysis)`` for the first such pair with tractable supports, else
    ``(None, None, last analysis or None)``.
    """
    J = len(factors)
    analysis = None
    for first in (J - 2, 0):
        if first:
            rest = SparseProduct(factors[:first]).toarray()
            d = _orthogonal_weights(rest.conj().T @ rest)
            if d is None:
                continue
            w = np.sqrt(d)[:, None]
            target = rest.conj().T @ A / w
        else:
            rest = SparseProduct(factors[2:]).toarray()
            d = _orthogonal_weights(rest @ rest.conj().T)
            if d is None:
                continue
            w = np.sqrt(d)[None, :]
            target = A @ rest.conj().T / w
        S_W, S_H = (to_dense(F) != 0 for F in factors[first : first + 2])
        analysis = analyze_supports(S_W, S_H)
        if analysis.tractable:
            W, H, _ = fixed_support_factorize(target, S_W, S_H, method="exact")
            if first:
                W = W / w
            else:
                H = H / w
            new = list(factors)
            new[first : first + 2] = [W, H]
            return new, (first, first + 1), analysis
    return None, None, analysis


def sparse_factorize(
    A,
    constraints,
    *,
    strategy: str = "hierarchical",
    inner_dims=None,
    residual_constraints=None,
    max_iter: int = 100,
    tol: float = 1e-10,
    init="identity",
    exact_coefficients: bool = True,
    random_state=None,
    verbose: int = 0,
):
    """Approximate ``A`` by a product of sparse factors with unknown supports.

    Solves (approximately: the problem is NP-hard in general)

    .. math:: \\min_{\\lambda, S_1, \\ldots, S_J}
              \\|A - \\lambda S_1 S_2 \\cdots S_J\\|_F \\quad\\text{s.t.}\\quad
              S_j \\in \\mathcal{E}_j,

    each :math:`\\mathcal{E}_j` a sparsity family (``k`` nonzeros per row,
    per column, per row or column, in total, or a fixed support; optionally
    of unit norm, which is when :math:`\\lambda` is fitted, in closed form).

    ``strategy="palm"`` runs PALM (Bolte, Sabach & Teboulle) over all factors
    from ``init``: each factor in turn takes a projected gradient step of
    size :math:`1 / (\\gamma L_j)`, :math:`L_j = \\lambda^2 \\|S_1 \\cdots
    S_{j-1}\\|_2^2 \\|S_{j+1} \\cdots S_J\\|_2^2` (power iterations, a step
    halved if it would increase the objective, so the objective never
    increases). ``strategy="hierarchical"`` (Le Magoarou & Gribonval) splits
    off one factor at a time: the current residual :math:`T_{\\ell-1}` is
    factorized as :math:`S_\\ell T_\\ell` by a two-factor PALM, then a
    global PALM refines :math:`S_1, \\ldots, S_\\ell, T_\\ell` against
    ``A``. Products are computed factor by factor, never forming more than
    a few dense matrices of the size of ``A``.

    For two factors (``J = 2``), the found supports are then analysed with
    :func:`analyze_supports`; when they are tractable, the coefficients are
    re-solved by :func:`fixed_support_factorize` (a certified global optimum
    on those supports), and ``info`` reports both errors. For ``J > 2`` the
    same is done for the last two factors (else the first two) when the
    product of the others has orthogonal columns (rows) of one norm, as for
    the Hadamard transform's factors: their problem is then exactly a
    two-factor fixed-support problem (``info.exact_factors``).

    Parameters
    ----------
    A : array-like of shape (m, n)
        Matrix to factorize (real or complex; float32 and complex64 kept).
    constraints : list of SparsityConstraint, tuple or array
        One per factor, left to right: a :class:`SparsityConstraint`, a tuple
        ``(name, k)`` or ``(name, k, normalized)`` with ``name`` in
        ``{"row", "col", "rowcol", "total"}`` (or pyfaust's ``"splin"``,
        ``"spcol"``, ``"splincol"``, ``"sp"``), or a boolean support.
    strategy : {"hierarchical", "palm"}, default="hierarchical"
        How the supports are searched.
    inner_dims : sequence of int, default=None
        The ``J - 1`` inner sizes of the chain; by default the sizes of the
        fixed supports where given, else ``min(m, n)``.
    residual_constraints : list, default=None
        Families of the residuals :math:`T_1, \\ldots, T_{J-2}` of the
        hierarchical strategy (the last residual is the last factor). By
        default the family of the product of the remaining factors (see
        Notes).
    max_iter : int, default=100
        PALM sweeps per run (each split and global pass of the
        hierarchical strategy is a run).
    tol : float, default=1e-10
        A run stops when a sweep lowers the squared error by less than
        ``tol`` times its value.
    init : {"identity", "random"}, SparseProduct, ButterflyMatrix or list, \
default="identity"
        Start of ``strategy="palm"`` (the hierarchical strategy starts every
        split from the identity and warns when given another start):
        ``"identity"`` (pyfaust's: the factor updated first, the last, zero;
        the others the identity projected on their family),
        ``"random"`` (Gaussian factors projected on their families), or
        factors to warm start from (a :class:`ButterflyMatrix`'s
        permutation is absorbed into its last factor).
    exact_coefficients : bool, default=True
        Run the exact second step: for ``J = 2`` on tractable supports, for
        ``J > 2`` on a tractable pair whose problem reduces to two factors
        (see ``info.exact_factors``).
    random_state : int, RandomState instance or None, default=None
        Seed of ``init="random"``.
    verbose : int, default=0
        1: one line per PALM run (each split and global pass) and for the
        exact step; 2: also one line per sweep.

    Returns
    -------
    product : SparseProduct
        The factors (CSR, the scale multiplied into the first one).
    info : SparseFactorizationInfo
        Errors of every step, iterations, convergence, the scale, the
        support analysis (``J = 2``).

    Raises
    ------
    ValueError
        On an unknown constraint name or strategy, ``k < 1`` or ``k`` larger
        than the factor allows, mismatched shapes (of supports, inner sizes
        or ``init``), NaN/inf or empty ``A``.

    Warns
    -----
    ConvergenceWarning
        When the last PALM run stops at ``max_iter``.

    See Also
    --------
    SparseFactorizer : The same as a scikit-learn estimator.
    butterfly_factorize : When the supports are known to be a butterfly's.
    fixed_support_factorize : Two factors on given supports.

    Notes
    -----
    The default residual family after splitting off :math:`S_\\ell` is that
    of :math:`S_{\\ell+1} \\cdots S_J`: the product of fixed supports for
    fixed supports; ``("row", k_{\\ell+1} \\cdots k_J)`` (clipped to the
    size) when all remaining constraints are ``"row"`` (likewise ``"col"``);
    the intersection rule ``"rowcol_and"`` with the product of the ``k`` when
    they are ``"rowcol"`` or ``"rowcol_and"`` (the union rule would admit
    residuals with dense rows, and with them exact splits that no further
    factors of the family can continue); unconstrained otherwise. With it the
    Hadamard matrix of size :math:`2^L` and :math:`L` factors
    ``("rowcol", 2)`` is recovered to rounding error (pyfaust's
    ``ParamsHierarchicalWHT`` uses ``splincol`` residuals).

    References
    ----------
    .. [1] L. Le Magoarou and R. Gribonval, "Flexible multilayer sparse
       approximations of matrices and applications", IEEE Journal of
       Selected Topics in Signal Processing 10(4), 2016.
       doi:10.1109/JSTSP.2016.2543461
    .. [2] J. Bolte, S. Sabach and M. Teboulle, "Proximal alternating
       linearized minimization for nonconvex and nonsmooth problems",
       Mathematical Programming 146, 2014. doi:10.1007/s10107-013-0701-9

    Examples
    --------
    >>> from skbutterfly import sparse_factorize
    >>> from skbutterfly.datasets import hadamard
    >>> P, info = sparse_factorize(hadamard(16), [("rowcol_and", 2)] * 4)
    >>> P.n_factors, P.nnz, info.relative_error < 1e-10
    (4, 128, True)
    >>> P, info = sparse_factorize(hadamard(16), [("splincol", 2)] * 4)
    >>> info.relative_error < 1e-10
    True
    """
    A = check_matrix(A, name="A")
    if strategy not in STRATEGIES:
        raise ValueError(
            f"strategy must be one of {STRATEGIES}, got strategy={strategy!r}."
        )
    max_iter = check_positive_int(max_iter, "max_iter")
    if not np.isfinite(tol) or tol < 0:
        raise ValueError(f"tol must be a finite number >= 0, got tol={tol!r}.")
    constraints, shapes = _check_constraints(constraints, A.shape, inner_dims)
    J = len(constraints)
    progress = Progress("sparse_factorize", verbose)
    options = {"max_iter": max_iter, "tol": tol, "progress": progress}
    if strategy == "hierarchical" and J > 1:
        residuals = _residual_constraints(residual_constraints, constraints, shapes, A)
        _start(A, init, constraints, shapes, random_state)  # validates init
        if not (isinstance(init, str) and init == "identity"):
            warnings.warn(
                f"init={init!r} is used by strategy='palm' only; the hierarchical "
                "strategy starts each split from the identity.",
                UserWarning,
                stacklevel=2,
            )
        factors, scale, objective, n_iter, converged, steps = _run_hierarchical(
            A, constraints, shapes, residuals, options
        )
    else:
        factors, scale, objective, n_iter, converged, steps = _run_palm(
            A, constraints, shapes, init, random_state, options
        )
    if not converged:
        warnings.warn(
            f"sparse_factorize ({strategy}) stopped at max_iter={max_iter} before "
            f"reaching tol={tol}; increase max_iter or loosen tol.",
            ConvergenceWarning,
            stacklevel=2,
        )
    factors = [to_dense(F) for F in factors]
    factors[0] = factors[0] * scale
    palm_relative_error = float(objective[-1])
    norm_a = float(np.linalg.norm(A))
    exact_relative_error, analysis, certified, exact_factors = None, None, False, None
    if J == 2 and exact_coefficients:
        exact, analysis = _exact_step(A, factors)
        exact_factors = None if exact is None else (0, 1)
        certified = exact is not None
    elif J > 2 and exact_coefficients:
        exact, exact_factors, analysis = _exact_pair_step(A, factors)
    if exact_factors is not None:
        exact_error = float(np.linalg.norm(A - SparseProduct(exact).toarray()))
        if not certified:
            # Optimal given the other factors up to the orthogonality check's
            # tolerance: kept only when it is no worse.
            before = float(np.linalg.norm(A - SparseProduct(factors).toarray()))
            if exact_error > before:
                exact, exact_error = factors, before
        exact_relative_error = exact_error / norm_a if norm_a > 0 else exact_error
        steps = (*steps, ("exact", exact_relative_error))
        progress(
            f"exact coefficients of factors {exact_factors}: relative error "
            f"{exact_relative_error:.3e}"
        )
        factors = exact
    product = SparseProduct(factors)
    error = float(np.linalg.norm(A - product.toarray()))
    relative_error = error / norm_a if norm_a > 0 else 0.0
    info = SparseFactorizationInfo(
        strategy=strategy,
        n_iter=n_iter,
        converged=converged,
        error=error,
        relative_error=relative_error,
        palm_relative_error=palm_relative_error,
        exact_relative_error=exact_relative_error,
        certified_optimal=certified,
        exact_factors=exact_factors,
        analysis=analysis,
        scale=float(scale),
        objective=objective,
        steps=tuple((name, float(value)) for name, value in steps),
    )
    return product, info


def _residual_constraints(residual_constraints, constraints, shapes, A):
    """The families of the residuals ``T_1 ... T_{J-2}`` (hierarchical)."""
    J = len(constraints)
    res_shapes = [(shapes[ell][1], A.shape[1]) for ell in range(J - 2)]
    if residual_constraints is None:
        return [
            _default_residual(constraints[ell + 1 :], s)
            for ell, s in enumerate(res_shapes)
        ]
    if len(residual_constraints) != J - 2:
        raise ValueError(
            f"residual_constraints must hold len(constraints) - 2 = {J - 2} "
            f"constraints, got {len(residual_constraints)}."
        )
    res = [as_constraint(c, position=j) for j, c in enumerate(residual_constraints)]
    for j, (c, s) in enumerate(zip(res, res_shapes)):
        try:
            c.check_shape(s)
        except ValueError as exc:
            raise ValueError(f"residual_constraints[{j}]: {exc}") from None
    return res
