"""Landscape statements of Le et al., arXiv:2112.00386-1.9 and the gradient baseline.

* LU non-closedness (§1.9 item 4): the sequence ``L_eps U_eps`` has error
  ``eps`` and entries ``1/eps``; along any descent trajectory the entries obey
  the closed-form blow-up bound ``max(|l21|, |u12|) >= (1 - e)/sqrt(e)``.
* Spurious valley (§1.9 item 5): descent started with ``x11*y11 < 0`` and loss
  below 2 keeps loss ``>= (1 - x11*y11)**2 > 1``, while LU (the direct method)
  reaches 0.
* Tractable contrast (§1.2): on a two-factor butterfly split every random
  start of the gradient baseline reaches the closed-form optimum.
* The gradient baseline's gradient (finite differences, real and complex) and
  its ALS update (dense least squares) are checked against references.
"""

import numpy as np
import pytest
import scipy.linalg

import skbutterfly._baselines as gb
from skbutterfly import (
    architecture,
    bit_reversal_permutation,
    lower_triangular_support,
)
from skbutterfly._ks import ks_to_dense
from skbutterfly.datasets import dft


def _dense(factors):
    out = ks_to_dense(factors[0])
    for K in factors[1:]:
        out = out @ ks_to_dense(K)
    return out


# ----------------------------------------------------------------------------
# The baseline itself
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_chain_gradient_matches_finite_differences(dtype):
    rng = np.random.default_rng(0)
    patterns = architecture((8, 8), n_factors=3, rank=2).patterns
    T = rng.standard_normal((8, 8))
    if dtype == np.complex128:
        T = T + 1j * rng.standard_normal((8, 8))
    factors = gb.random_factors(patterns, 64.0, 8, dtype, 1)
    loss, grads = gb.chain_loss_grad(factors, T)
    assert np.isclose(loss, np.linalg.norm(_dense(factors) - T) ** 2)
    x, g = gb._pack(factors, dtype), gb._pack(grads, dtype)
    shapes = [tuple(p) for p in patterns]

    def f(x):
        return np.linalg.norm(_dense(gb._unpack(x, shapes, dtype)) - T) ** 2

    eps = 1e-6
    eye = np.eye(x.size)
    numeric = np.array([(f(x + eps * e) - f(x - eps * e)) / (2 * eps) for e in eye])
    np.testing.assert_allclose(numeric, g, atol=1e-6 * np.abs(g).max())


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_als_update_is_the_least_squares_solution(dtype):
    rng = np.random.default_rng(1)
    patterns = architecture((16, 16), n_factors=3, rank=2).patterns
    T = rng.standard_normal((16, 16))
    if dtype == np.complex128:
        T = T + 1j * rng.standard_normal((16, 16))
    factors, history = gb.als_factorize(T, patterns, n_epochs=2, random_state=3)
    assert np.all(np.diff(history.errors) <= 1e-12)
    # The last update of a sweep is optimal given the other factors: dense lstsq.
    left = ks_to_dense(factors[0]) @ ks_to_dense(factors[1])
    rows, cols = np.nonzero(ks_to_dense(np.ones(tuple(patterns[2]))))
    design = np.stack(
        [np.outer(left[:, i], np.eye(16)[k]).ravel() for i, k in zip(rows, cols)],
        axis=1,
    )
    best = np.linalg.lstsq(design, T.ravel(), rcond=None)[0]
    expected = np.linalg.norm(design @ best - T.ravel()) / np.linalg.norm(T)
    assert np.isclose(history.final_error, expected, rtol=1e-10)


def test_als_and_gradient_recover_a_small_exact_butterfly():
    rng = np.random.default_rng(2)
    patterns = architecture((16, 16)).patterns
    truth = [rng.standard_normal(tuple(p)) for p in patterns]
    T = _dense(truth)
    _, als = gb.als_factorize(T, patterns, n_epochs=3)
    assert als.final_error < 1e-10
    _, grad = gb.gradient_factorize(T, patterns, n_adam=50, n_lbfgs=20)
    assert grad.final_error < grad.errors[0]


def test_butterfly_als_uses_the_operator_permutation_convention():
    A = dft(16)
    B, history = gb.butterfly_als(A, 4, bit_reversal_permutation(16), n_epochs=2)
    assert history.final_error < 1e-10
    np.testing.assert_allclose(B.toarray(), A, atol=1e-10)
    with pytest.raises(ValueError, match="padding"):
        gb.butterfly_gradient(np.ones((5, 5)), 2)


# ----------------------------------------------------------------------------
# LU non-closedness (§1.7)
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("eps", [1e-1, 1e-3, 1e-6])
def test_lu_sequence_error_eps_entries_one_over_eps(eps):
    A = np.array([[0.0, 1.0], [1.0, 0.0]])
    L = np.array([[1.0, 0.0], [1.0 / eps, 1.0]])
    U = np.array([[eps, 1.0], [0.0, -1.0 / eps]])
    assert np.array_equal(L, np.tril(L)) and np.array_equal(U, np.triu(U))
    assert np.isclose(np.linalg.norm(A - L @ U), eps, rtol=1e-9)
    assert max(np.abs(L).max(), np.abs(U).max()) == pytest.approx(1 / eps)


@pytest.mark.parametrize("seed", range(3))
def test_lu_descent_error_decreases_while_factors_blow_up(seed):
    A = np.array([[0.0, 1.0], [1.0, 0.0]])
    S = lower_triangular_support((2, 2))
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal((2, 2)) * S, rng.standard_normal((2, 2)) * S.T]
    loss_grad = gb.masked_pair_loss_grad(S, S.T)
    _, trajectory, losses = gb.gradient_descent(loss_grad, init, A, n_iter=3000)
    assert np.all(np.diff(losses) <= 0)
    errors = np.sqrt(losses)
    assert errors[-1] < 0.25
    for (L, U), e in zip(trajectory, errors):
        if e < 1:
            # |l11 u12|, |l21 u11| >= 1 - e and |l11 u11| <= e (closed form).
            assert max(abs(L[1, 0]), abs(U[0, 1])) >= (1 - e) / np.sqrt(e) - 1e-9
    L, U = trajectory[-1]
    assert max(abs(L[1, 0]), abs(U[0, 1])) > 1.5


# ----------------------------------------------------------------------------
# Spurious valley (§1.8)
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3, 4])
@pytest.mark.parametrize("seed", range(2))
def test_descent_inside_the_spurious_valley_stays_above_one(n, seed):
    A, S_W, S_H, init = gb.spurious_valley_start(n, random_state=seed)
    loss_grad = gb.masked_pair_loss_grad(S_W, S_H)
    _, trajectory, losses = gb.gradient_descent(loss_grad, init, A, n_iter=2000)
    assert losses[-1] < losses[0]
    for (W, H), loss in zip(trajectory, losses):
        x11y11 = W[0, 0] * H[0, 0]
        assert x11y11 < 0
        assert loss >= (1 - x11y11) ** 2 - 1e-12 > 1 - 1e-12
    # The direct method (Gaussian elimination, no pivot needed) reaches 0.
    P, L, U = scipy.linalg.lu(A)
    assert np.array_equal(P, np.eye(n))
    assert np.array_equal(L, L * S_W) and np.array_equal(U, U * S_H)
    assert np.linalg.norm(L @ U - A) == 0


# ----------------------------------------------------------------------------
# Tractable contrast (§1.2): every random start reaches the certified optimum
# ----------------------------------------------------------------------------


def _disjoint_supports_optimum(A, mask_W, mask_H):
    """Closed-form FSMF optimum when the rank-one supports are disjoint."""
    covered = np.zeros(A.shape, bool)
    value = 0.0
    for k in range(mask_W.shape[1]):
        rows, cols = np.flatnonzero(mask_W[:, k]), np.flatnonzero(mask_H[k])
        assert not covered[np.ix_(rows, cols)].any()
        covered[np.ix_(rows, cols)] = True
        s = np.linalg.svd(A[np.ix_(rows, cols)], compute_uv=False)
        value += np.sum(s[1:] ** 2)
    return value + np.sum(np.abs(A[~covered]) ** 2)


@pytest.mark.parametrize("seed", range(4))
def test_tractable_instance_every_start_reaches_the_optimum(seed):
    rng = np.random.default_rng(10)
    patterns = architecture((16, 16), n_factors=2).patterns
    A = rng.standard_normal((16, 16))
    optimum = _disjoint_supports_optimum(
        A,
        ks_to_dense(np.ones(tuple(patterns[0]))) != 0,
        ks_to_dense(np.ones(tuple(patterns[1]))) != 0,
    )
    assert optimum > 0.1 * np.linalg.norm(A) ** 2
    _, history = gb.gradient_factorize(
        A, patterns, n_adam=100, n_lbfgs=300, random_state=seed
    )
    reached = (history.final_error * np.linalg.norm(A)) ** 2
    assert reached == pytest.approx(optimum, rel=1e-8)
