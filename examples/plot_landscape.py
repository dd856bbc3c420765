"""
The optimisation landscape of fixed-support factorization
=========================================================

Three small facts explain why skbutterfly prefers direct algorithms to
gradient descent (Le et al., arXiv:2112.00386):

1. **No minimiser.** With LU supports (``W`` lower, ``H`` upper triangular)
   the matrix ``[[0, 1], [1, 0]]`` has no factorization, yet
   ``L_ε U_ε = [[ε, 1], [1, 0]]`` is ε-close: the error goes to 0 while the
   factors blow up like ``1/ε``. Descent follows the same road.
2. **Spurious valley.** For ``A = [[1, 1], [1, 0]]`` (padded with zeros) and
   LU supports, the loss is at least ``(1 - w₁₁h₁₁)² > 1`` wherever
   ``w₁₁h₁₁ < 0`` and at least 2 where ``w₁₁h₁₁ = 0``: descent started in
   that region never gets below 1, although the global minimum is 0 and a
   direct method (Gaussian elimination) reaches it.
3. **Tractable supports.** On a two-factor butterfly split (pairwise disjoint
   rank-one supports) there is no spurious valley: every random start reaches
   the optimum certified by :func:`~skbutterfly.fixed_support_factorize`.

The descent code is the gradient baseline of ``skbutterfly/_baselines.py`` (private)
(backtracking gradient descent; Adam then L-BFGS for the butterfly split).
The same statements run as fast tests in ``tests/test_landscape.py``.
"""

# %%

import matplotlib.pyplot as plt
import numpy as np
import scipy.linalg

from skbutterfly import architecture, fixed_support_factorize
from skbutterfly._baselines import (
    gradient_descent,
    gradient_factorize,
    masked_pair_loss_grad,
    spurious_valley_start,
)
from skbutterfly._ks import ks_to_dense
from skbutterfly.datasets import lu_supports

rng = np.random.default_rng(0)

# %%
# 1. LU non-closedness: error ε, entries 1/ε; descent follows.
fig, ax = plt.subplots(figsize=(6, 4))
A = np.array([[0.0, 1.0], [1.0, 0.0]])
S_W, S_H = lu_supports(2)
eps = np.logspace(-6, 0, 13)
errors = [
    np.linalg.norm(A - np.array([[1, 0], [1 / e, 1]]) @ np.array([[e, 1], [0, -1 / e]]))
    for e in eps
]
ax.loglog(errors, 1 / eps, "k--", label="L_ε U_ε (closed form)")
for seed in range(3):
    init = [rng.standard_normal((2, 2)) * S_W, rng.standard_normal((2, 2)) * S_H]
    _, trajectory, losses = gradient_descent(
        masked_pair_loss_grad(S_W, S_H), init, A, n_iter=3000
    )
    size = [max(np.abs(W).max(), np.abs(H).max()) for W, H in trajectory]
    ax.loglog(np.sqrt(losses), size, label=f"gradient descent, start {seed}")
ax.set_xlabel("error ||A - WH||")
ax.set_ylabel("largest entry of W, H")
ax.invert_xaxis()
ax.set_title("LU of [[0,1],[1,0]]: inf = 0 is not attained")
ax.legend(fontsize=8)
plt.show()

# %%
# 2. The spurious valley: starts with w₁₁h₁₁ < 0 and loss < 2.
fig, ax = plt.subplots(figsize=(6, 4))
for seed in range(4):
    A, S_W, S_H, init = spurious_valley_start(3, random_state=seed)
    _, trajectory, losses = gradient_descent(
        masked_pair_loss_grad(S_W, S_H), init, A, n_iter=2000
    )
    ax.semilogx(np.arange(1, len(losses) + 1), losses, label=f"start {seed}")
P, L, U = scipy.linalg.lu(A)  # Gaussian elimination, no pivoting needed here
W, H, info = fixed_support_factorize(A, S_W, S_H, random_state=0)
print(f"Gaussian elimination: loss {np.linalg.norm(L @ U - A) ** 2:.1e}")
print(f"fixed_support_factorize ({info.method}): loss {info.error**2:.1e}")
ax.axhline(1, color="k", ls="--", label="valley floor (loss 1)")
ax.axhline(0, color="C3", lw=3, label="direct methods (loss 0)")
ax.set_xlabel("iteration")
ax.set_ylabel("loss ||A - WH||²")
ax.set_title("Spurious valley: descent stays above 1")
ax.legend(fontsize=8)
plt.show()

# %%
# 3. A tractable instance: every random start reaches the certified optimum.
fig, ax = plt.subplots(figsize=(6, 4))
patterns = architecture((16, 16), n_factors=2).patterns
A = rng.standard_normal((16, 16))
S_W, S_H = (ks_to_dense(np.ones(tuple(p))) != 0 for p in patterns)
W, H, info = fixed_support_factorize(A, S_W, S_H)
print(f"certified optimum: {info.certified_optimal}, loss {info.error**2:.6f}")
for seed in range(8):
    _, hist = gradient_factorize(
        A, patterns, n_adam=100, n_lbfgs=200, random_state=seed
    )
    gap = (np.asarray(hist.errors) * np.linalg.norm(A)) ** 2 - info.error**2
    ax.semilogy(np.maximum(gap, 1e-14))
ax.set_xlabel("iteration (100 Adam, then L-BFGS)")
ax.set_ylabel("loss - certified optimum")
ax.set_title("Butterfly split (16 x 16): 8 random starts")
fig.tight_layout()
plt.show()
