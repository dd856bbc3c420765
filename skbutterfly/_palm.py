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


def _store(S):
    """A factor as CSR when it is large and sparse enough, else as an ndarray."""
    S = np.asarray(S)
    if S.size <= _DENSE_SIZE or np.count_nonzero(S) > _DENSE_FILL * S.size:
        return S
    return sp.csr_array(S)


def to_dense(S):
    return S.toarray() if sp.issparse(S) else np.asarray(S)


def _apply(factors, X):
    """``F_1 ... F_k X`` (``X`` dense), right to left."""
    for F in reversed(factors):
        X = F @ X
    return X


def _apply_adjoint(factors, X):
    """``(F_1 ... F_k)^H X``."""
    for F in factors:
        X = F.conj().T @ X
    return X


def _apply_right_adjoint(X, factors):
    """``X (F_1 ... F_k)^H``."""
    for F in reversed(factors):
        X = X @ F.conj().T
    return np.asarray(X)


def _sq_norm_estimate(factors, v):
    """Power-iteration estimate of ``||F_1 ... F_k||_2^2``, warm started at ``v``."""
    if not factors:
        return 1.0, v
    value = 0.0
    for _ in range(_POWER_ITER):
        w = _apply_adjoint(factors, _apply(factors, v))
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
    the block's gradient; a step that would increase the objective (a power
    iteration that underestimated ``L``, or the ``rowcol`` rule, which is not
    a projection) is retried with half the step, so the objective never
    increases. Returns ``factors, scale, objective, n_iter, converged``.
    """
    m, n = A.shape
    dtype = A.dtype
    norm_a = float(np.linalg.norm(A))
    factors = [_store(to_dense(F).astype(dtype, copy=False)) for F in factors]
    J = len(factors)
    rng = np.random.default_rng(0)
    vec_left = [rng.standard_normal(F.shape[0]).astype(dtype) for F in factors]
    vec_right = [rng.standard_normal(F.shape[1]).astype(dtype) for F in factors]
    P = chain_product(factors, n, dtype)
    if fit_scale:
        scale = best_scale(A, P, scale)
    E = _scaled_error(A, P, scale)
    f = float(np.vdot(E, E).real)
    floor = (_FLOOR * np.finfo(dtype).eps * norm_a) ** 2
    objective = [np.sqrt(f) / norm_a if norm_a > 0 else np.sqrt(f)]
    converged = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        f_start = f
        for j in range(J - 1, -1, -1):
            left, right = factors[:j], factors[j + 1 :]
            G = scale * _apply_right_adjoint(_apply_adjoint(left, E), right)
            sq_left, vec_left[j] = _sq_norm_estimate(left, vec_left[j])
            sq_right, vec_right[j] = _sq_norm_estimate(
                [F.conj().T for F in reversed(right)], vec_right[j]
            )
            lipschitz = scale**2 * sq_left * sq_right
            if lipschitz == 0:
                continue
            S_old = to_dense(factors[j])
            R = chain_product(right, n, dtype)
            step = 1.0 / (_GAMMA * lipschitz)
            for _ in range(_MAX_BACKTRACK):
                S_new = constraints[j].project(S_old - step * G)
                E_new = E + scale * _apply(left, _store(S_new - S_old) @ R)
                f_new = float(np.vdot(E_new, E_new).real)
                if f_new <= f:
                    factors[j], E, f = _store(S_new), E_new, f_new
                    break
                step /= 2
        if fit_scale:
            P = chain_product(factors, n, dtype)
            new_scale = best_scale(A, P, scale)
            E_new = _scaled_error(A, P, new_scale)
            f_new = float(np.vdot(E_new, E_new).real)
            if f_new <= f:
                scale, E, f = new_scale, E_new, f_new
        objective.append(np.sqrt(f) / norm_a if norm_a > 0 else np.sqrt(f))
        progress(f"{label}: sweep {n_iter}, relative error {objective[-1]:.3e}", 2)
        if f <= floor or f_start - f <= tol * f_start:
            converged = True
            break
    progress(f"{label}: relative error {objective[-1]:.3e} after {n_iter} sweeps")
    return factors, scale, np.array(objective), n_iter, converged
