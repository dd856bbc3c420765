"""Iterative baselines for butterfly factorization: gradient (Adam + L-BFGS) and ALS.

Our own NumPy code (no autodiff), used by ``bench_vs_gradient.py`` and the
gallery examples to compare the direct (SVD-based) algorithms of skbutterfly
with the first-order recipe of the literature (Le et al., arXiv:2112.00386):

* :func:`gradient_factorize`: the values of the Kronecker-sparse factors of a
  chain (fixed supports, fixed permutation) are the parameters; the loss is
  :math:`\\|F_1 \\cdots F_J - T\\|_F^2 / \\|T\\|_F^2`; random Gaussian
  initialisation; Adam (lr 0.1) then L-BFGS (``scipy.optimize.minimize``,
  ``method="L-BFGS-B"``, ``jac=True``). Complex targets use complex factors
  whose real and imaginary parts are separate real parameters (Wirtinger
  calculus: the real gradient is :math:`2\\,\\partial f/\\partial\\bar z`).
* :func:`als_factorize`: alternating least squares on the same supports, one
  exact least-squares update per factor and sweep.
* :func:`butterfly_gradient` / :func:`butterfly_als`: the same on
  ``A[:, perm]`` with the square butterfly architecture, returning a
  :class:`~skbutterfly.ButterflyMatrix`.
* :func:`masked_pair_loss_grad` and :func:`gradient_descent`: two dense
  factors on fixed masks and plain descent with backtracking, for the small
  landscape instances (LU non-closedness, spurious valley).

Every solver returns a :class:`History` of ``(seconds, relative error)``.
Import from the repository root with ``sys.path.insert(0, "benchmarks")``.
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import time
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize

from skbutterfly._ks import ks_apply, ks_indices
from skbutterfly._operator import ButterflyMatrix
from skbutterfly._patterns import Pattern, architecture, fuse_patterns
from skbutterfly.datasets import spurious_valley_instance


@dataclass
class History:
    """Relative error of an iterative solver against wall-clock time."""

    times: list = field(default_factory=list)
    errors: list = field(default_factory=list)

    def record(self, start, error):
        self.times.append(time.perf_counter() - start)
        self.errors.append(float(error))

    def time_to(self, level):
        """First time the error is at most ``level`` (``inf`` if never)."""
        hits = [t for t, e in zip(self.times, self.errors) if e <= level]
        return hits[0] if hits else float("inf")

    @property
    def final_error(self):
        return self.errors[-1]

    @property
    def total_time(self):
        return self.times[-1]


# ----------------------------------------------------------------------------
# Loss and exact gradient of a chain of Kronecker-sparse factors
# ----------------------------------------------------------------------------


def _adjoint(K):
    """Values of the adjoint factor (pattern ``(a, c, b, d)``)."""
    return np.conj(K.transpose(0, 2, 1, 3))


def _right_products(factors, n, dtype):
    """Dense ``F_l ... F_J`` for ``l = 1 .. J + 1`` (the last is the identity)."""
    products = [np.eye(n, dtype=dtype)]
    for K in reversed(factors):
        products.append(ks_apply(K, products[-1]))
    return products[::-1]


def _restrict(G, R, shape):
    """Values of ``G @ R^H`` on the pattern ``shape`` (no dense product).

    ``G`` has the pattern's rows, ``R`` one row per pattern column.
    """
    a, b, c, d = shape
    n = G.shape[1]
    Gr = G.reshape(a, b, d, n).transpose(0, 2, 1, 3)
    Rr = np.conj(R.reshape(a, c, d, n).transpose(0, 2, 3, 1))
    return (Gr @ Rr).transpose(0, 2, 3, 1)


def chain_loss_grad(factors, target):
    """Loss :math:`\\|F_1 \\cdots F_J - T\\|_F^2` and its gradient per factor.

    The gradient with respect to factor :math:`\\ell` is the restriction to its
    pattern of :math:`2 (F_1 \\cdots F_{\\ell-1})^H R (F_{\\ell+1} \\cdots F_J)^H`,
    ``R`` the residual; it is computed by back-propagation through pattern
    products. For complex factors, the real and imaginary parts of the
    returned arrays are the derivatives with respect to the real and imaginary
    parts of the values.
    """
    right = _right_products(factors, target.shape[1], target.dtype)
    residual = right[0] - target
    loss = np.vdot(residual, residual).real
    grads = []
    back = residual
    for ell, K in enumerate(factors):
        grads.append(2 * _restrict(back, right[ell + 1], K.shape))
        if ell + 1 < len(factors):
            back = ks_apply(_adjoint(K), back)
    return loss, grads


def _pack(factors, dtype):
    flat = np.concatenate([K.ravel() for K in factors]).astype(dtype)
    return flat.view(np.float64) if np.iscomplexobj(flat) else flat


def _unpack(x, shapes, dtype):
    flat = x.view(np.complex128) if np.dtype(dtype).kind == "c" else x
    out, start = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        out.append(flat[start : start + size].reshape(shape))
        start += size
    return out


def random_factors(patterns, target_norm2, n_cols, dtype, random_state):
    """Gaussian values on the patterns, scaled to a target expected norm.

    The product's expected squared Frobenius norm is ``target_norm2``.

    A factor with pattern ``(a, b, c, d)`` and entry variance :math:`\\sigma^2`
    multiplies the expected squared norm of a vector by :math:`b\\sigma^2`.
    """
    rng = np.random.default_rng(random_state)
    gain = (max(target_norm2, 1e-300) / n_cols) ** (1 / len(patterns))
    factors = []
    for p in patterns:
        sigma = np.sqrt(gain / p.b)
        values = rng.standard_normal(tuple(p))
        if np.dtype(dtype).kind == "c":
            values = (values + 1j * rng.standard_normal(tuple(p))) / np.sqrt(2)
        factors.append((sigma * values).astype(dtype))
    return factors


def gradient_factorize(
    target,
    patterns,
    *,
    n_adam=100,
    n_lbfgs=20,
    lr=0.1,
    init=None,
    random_state=0,
    loss_grad=chain_loss_grad,
):
    """Fit factor values by Adam then L-BFGS (the Dao et al. recipe).

    Parameters
    ----------
    target : ndarray of shape (m, n)
        Matrix to approximate (real or complex).
    patterns : sequence of Pattern
        Patterns of the factors, left to right (with ``init`` given and a
        custom ``loss_grad``, any sequence of array shapes).
    n_adam, n_lbfgs : int
        Iterations of Adam (learning rate ``lr``, betas 0.9/0.999) and of
        L-BFGS.
    init : list of ndarray, default=None
        Initial values; random Gaussian (:func:`random_factors`) otherwise.
    random_state : int
        Seed of the initialisation.
    loss_grad : callable, default=chain_loss_grad
        ``loss_grad(factors, target) -> (loss, grads)``.

    Returns
    -------
    factors : list of ndarray
    history : History
        Relative error after every Adam step and L-BFGS iteration.
    """
    target = np.asarray(target)
    dtype = np.complex128 if np.iscomplexobj(target) else np.float64
    target = target.astype(dtype)
    norm2 = np.vdot(target, target).real
    scale = 1.0 / max(norm2, 1e-300)
    shapes = [tuple(p) for p in patterns]
    start = time.perf_counter()
    if init is None:
        init = random_factors(patterns, norm2, target.shape[1], dtype, random_state)
    x = _pack(init, dtype)

    def fun(x):
        loss, grads = loss_grad(_unpack(x, shapes, dtype), target)
        return loss * scale, _pack(grads, dtype) * scale

    history = History()
    m, v = np.zeros_like(x), np.zeros_like(x)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for it in range(1, n_adam + 1):
        loss, g = fun(x)
        history.record(start, np.sqrt(loss))
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        m_hat = m / (1 - beta1**it)
        v_hat = v / (1 - beta2**it)
        x = x - lr * m_hat / (np.sqrt(v_hat) + eps)
    history.record(start, np.sqrt(fun(x)[0]))
    if n_lbfgs > 0:
        result = minimize(
            fun,
            x,
            jac=True,
            method="L-BFGS-B",
            callback=lambda intermediate_result: history.record(
                start, np.sqrt(intermediate_result.fun)
            ),
            options={"maxiter": n_lbfgs, "ftol": 0.0, "gtol": 0.0},
        )
        x = result.x
    factors = [K.copy() for K in _unpack(x, shapes, dtype)]
    return factors, history


def masked_pair_loss_grad(mask_W, mask_H):
    """``loss_grad`` for two dense factors ``[W, H]`` with fixed supports.

    Loss :math:`\\|WH - A\\|_F^2`; gradients :math:`2 P_{S_W}(R H^H)` and
    :math:`2 P_{S_H}(W^H R)`, ``R = WH - A``. Used for small landscape
    instances (LU supports) where dense storage is the simplest.
    """
    mask_W, mask_H = np.asarray(mask_W, bool), np.asarray(mask_H, bool)

    def loss_grad(factors, target):
        W, H = factors
        residual = W @ H - target
        loss = np.vdot(residual, residual).real
        grad_W = 2 * (residual @ np.conj(H.T)) * mask_W
        grad_H = 2 * (np.conj(W.T) @ residual) * mask_H
        return loss, [grad_W, grad_H]

    return loss_grad


def gradient_descent(loss_grad, init, target, *, n_iter=1000, step=0.1):
    """Plain gradient descent on real factors with backtracking.

    The loss never increases, so a trajectory never leaves a sublevel set.

    Each iteration starts from the previous step length times 2 and halves it
    until the loss decreases (Armijo rule with constant 1e-4).

    Returns
    -------
    factors : list of ndarray
    trajectory : list of list of ndarray
        The iterates, ``trajectory[0]`` being ``init``.
    losses : ndarray of shape (n_iter + 1,)
    """
    factors = [np.array(K, dtype=float) for K in init]
    trajectory, losses = [factors], []
    loss, grads = loss_grad(factors, target)
    losses.append(loss)
    for _ in range(n_iter):
        norm2 = sum(np.vdot(g, g).real for g in grads)
        step *= 2
        while True:
            trial = [K - step * g for K, g in zip(factors, grads)]
            trial_loss, trial_grads = loss_grad(trial, target)
            if trial_loss <= loss - 1e-4 * step * norm2 or step < 1e-16:
                break
            step /= 2
        if trial_loss > loss:
            break
        factors, loss, grads = trial, trial_loss, trial_grads
        trajectory.append(factors)
        losses.append(loss)
    return factors, trajectory, np.asarray(losses)


def spurious_valley_start(n, random_state=0):
    """A start inside the spurious valley of Le et al., arXiv:2112.00386.

    Target and LU supports from
    :func:`skbutterfly.datasets.spurious_valley_instance`; the start has
    :math:`w_{11} h_{11} = -ab < 0` (``a, b`` uniform in [0.2, 0.6]), the
    (1, 2), (2, 1) and (2, 2) entries of ``A`` fitted, small Gaussian noise
    elsewhere on the supports, and loss below 2 (redrawn otherwise).

    Returns
    -------
    A, S_W, S_H : ndarray
    init : list of two ndarray
    """
    A, S_W, S_H = spurious_valley_instance(n)
    rng = np.random.default_rng(random_state)
    while True:
        a, b = rng.uniform(0.2, 0.6, size=2)
        W = 0.05 * rng.standard_normal((n, n)) * S_W
        H = 0.05 * rng.standard_normal((n, n)) * S_H
        W[0, 0], H[0, 0], H[0, 1], W[1, 0] = a, -b, 1 / a, -1 / b
        W[1, 1], H[1, 1] = 1.0, 1 / (a * b)
        if np.linalg.norm(W @ H - A) ** 2 < 2:
            return A, S_W, S_H, [W, H]


# ----------------------------------------------------------------------------
# Alternating least squares on a chain
# ----------------------------------------------------------------------------


def _fused(patterns, n_identity, side):
    """Pattern of a (possibly empty) run of factors; empty runs are identities."""
    if not patterns:
        return (
            Pattern(1, 1, 1, n_identity)
            if side == "left"
            else Pattern(n_identity, 1, 1, 1)
        )
    fused = patterns[0]
    for p in patterns[1:]:
        fused = fuse_patterns(fused, p)
    return fused


def _coupled_groups(patterns, ell):
    """Group the values of factor ``ell`` whose least-squares equations couple.

    With ``L = F_1 ... F_{l-1}`` of pattern ``(1, B, C, D)`` and
    ``R = F_{l+1} ... F_J`` of pattern ``(A', B', C', 1)``, the normal matrix
    :math:`M_{pq} = (L^H L)_{i_p i_q} (R R^H)_{k_q k_p}` vanishes unless the
    rows agree modulo ``D`` and the columns agree after division by ``B'``.
    Returns the flat indices of the values, shape ``(n_groups, group_size)``.
    """
    p = patterns[ell]
    left = _fused(list(patterns[:ell]), p.shape[0], "left")
    right = _fused(list(patterns[ell + 1 :]), p.shape[1], "right")
    if left.a != 1 or right.d != 1:
        raise ValueError("ALS needs a chain whose first a and last d are 1.")
    rows, cols = ks_indices(tuple(p))
    key = (rows.ravel() % left.d) * (p.shape[1] // right.b + 1) + (
        cols.ravel() // right.b
    )
    order = np.argsort(key, kind="stable")
    _, counts = np.unique(key, return_counts=True)
    if counts.min() != counts.max():
        raise ValueError("unequal coupled groups; this chain is not supported.")
    return order.reshape(len(counts), counts[0]), rows.ravel(), cols.ravel()


def _solve_psd(M, rhs):
    """Minimum-norm solutions of a stack of Hermitian PSD systems."""
    w, V = np.linalg.eigh(M)
    tol = w.max(axis=-1, keepdims=True) * M.shape[-1] * np.finfo(float).eps
    inv = np.where(w > tol, 1 / np.where(w > tol, w, 1), 0)
    return V @ (inv[..., None] * (np.conj(np.swapaxes(V, -1, -2)) @ rhs[..., None]))


def als_factorize(target, patterns, *, n_epochs=5, init=None, random_state=0):
    """Alternating least squares: each factor's exact update given the others.

    Sweeps left to right; the update of factor :math:`\\ell` minimises
    :math:`\\|L X R - T\\|_F^2` over the values ``X`` on its pattern
    (``L``/``R`` the products of the factors on its left/right) by solving the
    normal equations :math:`P_S(L^H L X R R^H) = P_S(L^H T R^H)`, which split
    into small independent systems (:func:`_coupled_groups`).

    Returns
    -------
    factors : list of ndarray
    history : History
        Relative error after every sweep.
    """
    target = np.asarray(target)
    dtype = np.complex128 if np.iscomplexobj(target) else np.float64
    target = target.astype(dtype)
    norm = np.sqrt(np.vdot(target, target).real)
    start = time.perf_counter()
    if init is None:
        init = random_factors(patterns, norm**2, target.shape[1], dtype, random_state)
    factors = [np.array(K, dtype=dtype) for K in init]
    groups = [_coupled_groups(patterns, ell) for ell in range(len(patterns))]
    history = History()
    right = _right_products(factors, target.shape[1], dtype)
    history.record(start, np.linalg.norm(right[0] - target) / norm)
    for _ in range(n_epochs):
        left_h = np.eye(target.shape[0], dtype=dtype)  # L^H
        back = target  # L^H T
        for ell, (order, rows, cols) in enumerate(groups):
            shape = factors[ell].shape
            R = right[ell + 1]
            ri, ci = rows[order], cols[order]
            GL = np.einsum("npr,nqr->npq", left_h[ri], np.conj(left_h[ri]))
            GR = np.einsum("npr,nqr->npq", R[ci], np.conj(R[ci]))
            M = GL * np.swapaxes(GR, -1, -2)
            rhs = _restrict(back, R, shape).ravel()[order]
            values = np.zeros(int(np.prod(shape)), dtype=dtype)
            values[order] = _solve_psd(M, rhs)[..., 0]
            factors[ell] = values.reshape(shape)
            K_h = _adjoint(factors[ell])
            left_h = ks_apply(K_h, left_h)
            back = ks_apply(K_h, back)
        product = np.conj(left_h.T)
        history.record(start, np.linalg.norm(product - target) / norm)
        right = _right_products(factors, target.shape[1], dtype)
    return factors, history


# ----------------------------------------------------------------------------
# Butterfly wrappers: A ~ F_1 ... F_J P
# ----------------------------------------------------------------------------


def _butterfly_target(A, n_factors, perm):
    A = np.asarray(A)
    arch = architecture(A.shape, n_factors=n_factors)
    if arch.padded_shape != A.shape:
        raise ValueError(
            f"shape {A.shape} needs padding for n_factors={n_factors}; "
            "the baselines take unpadded shapes only."
        )
    perm = np.arange(A.shape[1]) if perm is None else np.asarray(perm)
    return A[:, perm], arch.patterns, perm


def butterfly_gradient(A, n_factors=None, perm=None, **kwargs):
    """Gradient baseline for :math:`A \\approx F_1 \\cdots F_J P`.

    ``B @ x = F_1 ... F_J x[perm]``, so the factors fit ``A[:, perm]``.
    Keyword arguments go to :func:`gradient_factorize`.

    Returns
    -------
    ButterflyMatrix, History
    """
    target, patterns, perm = _butterfly_target(A, n_factors, perm)
    factors, history = gradient_factorize(target, patterns, **kwargs)
    return ButterflyMatrix(factors, perm=perm), history


def butterfly_als(A, n_factors=None, perm=None, **kwargs):
    """ALS baseline for :math:`A \\approx F_1 \\cdots F_J P`.

    See :func:`butterfly_gradient`; keyword arguments go to :func:`als_factorize`.
    """
    target, patterns, perm = _butterfly_target(A, n_factors, perm)
    factors, history = als_factorize(target, patterns, **kwargs)
    return ButterflyMatrix(factors, perm=perm), history
