"""PALM over a chain of sparse factors (Bolte, Sabach and Teboulle, 2014).

Layer 3 (algorithms), under :func:`~skbutterfly.sparse_factorize`: products
with chains of ndarray or CSR factors, Lipschitz step sizes from warm-started
power iterations, projected steps with backtracking (the objective never
increases) and the optimal global scale.
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause


import numpy as np
import scipy.sparse as sp

# Step sizes are 1 / (_GAMMA * L) with L the Lipschitz constant of the block.
_GAMMA = 1.001
# Power iterations per Lipschitz estimate (warm started across sweeps).
_POWER_ITER = 3
# Halvings of a step that increased the objective before the block is kept.
_MAX_BACKTRACK = 8
# Factors denser than this are kept as ndarrays (BLAS products), others as CSR.
_DENSE_FILL = 0.1
# ... and so are small factors, where sparse overheads dominate.
_DENSE_SIZE = 128 * 128
# A run stops once the error is this many rounding units of ||A||_F.
_FLOOR = 100
# Changes of the squared error below _ROUNDING * eps * ||A||_F * ||E||_F are
# rounding (E = lambda S_1 ... S_J - A, from products of the size of A): no
# backtracking on them, and a sweep that gains no more ends the run.
_ROUNDING = 64


def _store(S):
    """A factor as CSR when it is large and sparse enough, else as an ndarray."""
    S = np.asarray(S)
    if S.size <= _DENSE_SIZE:
        return S
    flat = np.flatnonzero(S)
    if flat.size > _DENSE_FILL * S.size:
        return S
    # CSR straight from the row-major positions (scipy goes through COO).
    rows, cols = np.divmod(flat, S.shape[1])
    indptr = np.searchsorted(rows, np.arange(S.shape[0] + 1))
    return sp.csr_array((S.ravel()[flat], cols, indptr), shape=S.shape)


def to_dense(S):
    return S.toarray() if sp.issparse(S) else np.asarray(S)


def _h(X):
    """The conjugate transpose (a view for ndarrays, CSR for sparse factors)."""
    if sp.issparse(X):
        return (X.conj() if X.dtype.kind == "c" else X).T.tocsr()
    return X.conj().T if X.dtype.kind == "c" else X.T


def _apply(factors, X):
    """``F_1 ... F_k X`` (``X`` dense), right to left."""
    for F in reversed(factors):
        X = F @ X
    return X


def _apply_adjoint(adjoints, X):
    """``(F_1 ... F_k)^H X`` from the adjoints ``F_1^H, ..., F_k^H``."""
    for F in adjoints:
        X = F @ X
    return X


def _times_adjoint(M, right, R):
    """``M R^H`` with ``R = F_1 ... F_k`` the product of ``right`` (``None``: I).

    Sparse chains multiply from the left only (``R M^H``, one transposed
    copy in and out): CSR times a dense matrix is fast, a dense matrix times
    CSR is not. With a dense factor in the chain, one GEMM with ``R``.
    """
    if R is None:
        return M
    if all(sp.issparse(F) for F in right):
        return np.ascontiguousarray(_h(_apply(right, np.ascontiguousarray(_h(M)))))
    return M @ _h(R)


def _sq_norm_estimate(factors, adjoints, v):
    """Power-iteration estimate of ``||F_1 ... F_k||_2^2``, warm started at ``v``."""
    if not factors:
        return 1.0, v
    value = 0.0
    for _ in range(_POWER_ITER):
        w = _apply_adjoint(adjoints, _apply(factors, v))
        value = float(np.linalg.norm(w))
        if value == 0:
            return 0.0, v
        v = w / value
    return value, v


def chain_product(factors, n, dtype):
    return _apply(factors, np.eye(n, dtype=dtype))


def _scaled_error(A, P, scale):
    return scale * P - A


def best_scale(A, P, scale):
    """The real ``lambda`` minimising ``||A - lambda P||_F`` (``scale`` if P = 0)."""
    p2 = float(np.vdot(P, P).real)
    return float(np.vdot(P, A).real) / p2 if p2 > 0 else scale


# ----------------------------------------------------------------------------
# PALM
# ----------------------------------------------------------------------------


def palm(A, factors, constraints, scale, *, max_iter, tol, fit_scale, progress, label):
    """PALM sweeps over all factors; see :func:`sparse_factorize`.

    Each block step is ``S <- proj(S - grad / (gamma L))`` with
    ``L = lambda^2 ||left||_2^2 ||right||_2^2``, the Lipschitz constant of
    the block's gradient; a step that would increase the objective is
    retried with half the step (a power iteration underestimated ``L``), or
    first, for the ``rowcol`` rules, which are not projections, projected on
    the block's current support instead (a projection: it cannot increase
    the objective with a step of ``1 / L``), or dropped when the increase is
    rounding, so the objective never increases. The scale ``lambda`` is
    fixed (``fit_scale=None``), or refit in closed form once per sweep
    (``"sweep"``, as in pyfaust) or with every block step (``"block"``: the
    step is then judged at the best scale for it, an exact minimisation
    over ``lambda`` after each block). A run stops at ``max_iter``, at the
    rounding floor, or when a sweep lowers the squared error by less than
    ``tol`` times its value or by less than rounding.
    Returns ``factors, scale, objective, n_iter, converged``.
    """
    m, n = A.shape
    dtype = A.dtype
    norm_a = float(np.linalg.norm(A))
    factors = [_store(to_dense(F).astype(dtype, copy=False)) for F in factors]
    adjoints = [_h(F) for F in factors]
    J = len(factors)
    rng = np.random.default_rng(0)
    vec_left = [rng.standard_normal(F.shape[0]).astype(dtype) for F in factors]
    vec_right = [rng.standard_normal(n).astype(dtype) for F in factors]
    P = chain_product(factors, n, dtype)
    if fit_scale:
        scale = best_scale(A, P, scale)
    E = _scaled_error(A, P, scale)
    f = float(np.vdot(E, E).real)
    eps = np.finfo(dtype).eps
    floor = (_FLOOR * eps * norm_a) ** 2

    def rounding(f):
        return _ROUNDING * eps * norm_a * np.sqrt(f)

    objective = [np.sqrt(f) / norm_a if norm_a > 0 else np.sqrt(f)]
    converged = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        f_start = f
        # R: the product of the factors right of j (None: the identity),
        # extended by one product after each block; the full product at the end.
        R = None
        for j in range(J - 1, -1, -1):
            left, right = factors[:j], factors[j + 1 :]
            S_old, Q = factors[j], None  # Q: this block times R, once accepted
            sq_left, vec_left[j] = _sq_norm_estimate(left, adjoints[:j], vec_left[j])
            sq_right, vec_right[j] = _sq_norm_estimate(
                right, adjoints[j + 1 :], vec_right[j]
            )
            lipschitz = scale**2 * sq_left * sq_right
            if lipschitz > 0:
                G = scale * _times_adjoint(
                    _apply_adjoint(adjoints[:j], E), right, R
                )
                S_dense = to_dense(S_old)
                step = 1.0 / (_GAMMA * lipschitz)
                rule = constraints[j]
                for _ in range(_MAX_BACKTRACK):
                    S_new = _store(rule.project(S_dense - step * G))
                    Q_new = to_dense(S_new) if R is None else S_new @ R
                    P_new = _apply(left, Q_new)
                    new_scale = (
                        best_scale(A, P_new, scale) if fit_scale == "block" else scale
                    )
                    E_new = _scaled_error(A, P_new, new_scale)
                    f_new = float(np.vdot(E_new, E_new).real)
                    if f_new <= f:
                        factors[j], adjoints[j] = S_new, _h(S_new)
                        E, f, Q, scale = E_new, f_new, Q_new, new_scale
                        break
                    if f_new - f <= rounding(f):
                        break
                    if rule.is_projection:
                        step /= 2
                    else:
                        # A rule that is no projection may increase the error
                        # at any step; the projection onto the current support
                        # cannot, with a step of 1 / L.
                        rule = rule.on_support(S_dense != 0)
            if Q is None:
                Q = to_dense(S_old) if R is None else S_old @ R
            R = Q
        if fit_scale == "sweep":
            new_scale = best_scale(A, R, scale)
            E_new = _scaled_error(A, R, new_scale)
            f_new = float(np.vdot(E_new, E_new).real)
            if f_new <= f:
                scale, E, f = new_scale, E_new, f_new
        objective.append(np.sqrt(f) / norm_a if norm_a > 0 else np.sqrt(f))
        progress(f"{label}: sweep {n_iter}, relative error {objective[-1]:.3e}", 2)
        if f <= floor or f_start - f <= max(tol * f_start, rounding(f_start)):
            converged = True
            break
    progress(f"{label}: relative error {objective[-1]:.3e} after {n_iter} sweeps")
    return factors, scale, np.array(objective), n_iter, converged
