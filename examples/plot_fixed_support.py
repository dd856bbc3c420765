"""
Fixed-support factorization: tractable, certified, or heuristic
===============================================================

A two-factor factorization :math:`A \\approx W H` with prescribed supports is
NP-hard in general, yet many useful supports make it easy.
:func:`~skbutterfly.analyze_supports` tells which case an instance is in;
:func:`~skbutterfly.fixed_support_factorize` then solves tractable instances
exactly (with a certificate) and falls back to alternating least squares
otherwise. We compare three supports on the same matrix: the two-factor
butterfly split (tractable, pairwise disjoint rank-one supports), a low-rank
factorization with full supports (tractable, one class) and LU
(intractable in general, yet solved by Gaussian elimination whenever the
matrix has an LU factorization).
"""

# %%
# Three pairs of supports
# -----------------------
import warnings

import matplotlib.pyplot as plt
import numpy as np
import scipy.linalg

from skbutterfly import (
    analyze_supports,
    architecture,
    fixed_support_factorize,
    fuse_patterns,
)
from skbutterfly.datasets import hadamard, lu_supports

n = 32
arch = architecture((n, n))
right = arch[1]
for pattern in arch[2:]:
    right = fuse_patterns(right, pattern)
supports = {
    "butterfly split": (arch[0].support(), right.support()),
    "rank 4 (full)": (np.ones((n, 4), bool), np.ones((4, n), bool)),
    "LU": lu_supports(n),
}
for name, (S_W, S_H) in supports.items():
    report = analyze_supports(S_W, S_H)
    print(f"{name:>16}: {report.n_classes} classes, condition={report.condition}")

# %%
# Factorize a noisy Hadamard matrix with each of them
# ---------------------------------------------------
# The butterfly split recovers the Hadamard part, the error being the noise
# outside the supports; the certificate (``optimal_error``) is computed from
# the spectrum alone.
rng = np.random.default_rng(0)
A = hadamard(n) + 0.1 * rng.standard_normal((n, n))
fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
for ax, (name, (S_W, S_H)) in zip(axes, supports.items()):
    W, H, info = fixed_support_factorize(A, S_W, S_H, max_iter=50, random_state=0)
    certificate = (
        f"optimum {info.optimal_error:.3f}" if info.certified_optimal else "heuristic"
    )
    print(
        f"{name:>16}: {info.method:>5}, relative error {info.relative_error:.3f} "
        f"({certificate})"
    )
    ax.imshow(np.abs(A - W @ H), cmap="viridis", vmin=0, vmax=1)
    ax.set_title(f"{name}\nrel. error {info.relative_error:.2g}")
    ax.axis("off")
fig.suptitle("|A - W H| for three pairs of supports")
plt.tight_layout()
plt.show()

# %%
# LU against Gaussian elimination
# -------------------------------
# The LU supports are not tractable for the analysis (their classes overlap
# and are incomplete), yet this ``A`` has an LU factorization: its leading
# principal minors are nonzero, so Gaussian elimination *without* pivoting
# runs through. ``fixed_support_factorize`` starts its alternating least
# squares from those factors, hence the (near) zero error of the third panel:
# it is not certified, but it is exact to rounding, as the direct method.
# Partial pivoting (``scipy.linalg.lu``) is exact too, but its ``P L`` is not
# lower triangular: it does not fit the supports.
P, L, U = scipy.linalg.lu(A)
W, H, info = fixed_support_factorize(A, *lu_supports(n), random_state=0)
print(f"partial pivoting: P = I? {np.array_equal(P, np.eye(n))}")
print(
    f"fixed_support_factorize on LU supports: relative error "
    f"{info.relative_error:.1e}, W lower: {np.allclose(W, np.tril(W))}, "
    f"H upper: {np.allclose(H, np.triu(H))}"
)

# %%
# A matrix without an LU factorization: the infimum 0 is not attained (see
# the landscape example); alternating least squares says that it stopped at
# ``max_iter`` with a ``ConvergenceWarning``.
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    antidiagonal = np.array([[0.0, 1.0], [1.0, 0.0]])
    _, _, info = fixed_support_factorize(antidiagonal, *lu_supports(2), random_state=0)
print(
    f"[[0, 1], [1, 0]]: relative error {info.relative_error:.1e}, warnings: "
    f"{sorted({w.category.__name__ for w in caught})}"
)
