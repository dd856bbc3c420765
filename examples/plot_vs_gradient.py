"""
Direct factorization against gradient descent
=============================================

The hierarchical algorithm of :func:`~skbutterfly.butterfly_factorize` needs no
initialisation, no step size and no stopping rule: a handful of batched
SVDs. The literature's alternative fits the butterfly factors by gradient
descent (Adam with learning rate 0.1, then L-BFGS, from a random Gaussian
start), or by alternating least squares (ALS). This example plots the
relative error against the running time of each method, on the same inputs:
the DFT (with the bit-reversal permutation) and the Hadamard matrix, at small
sizes so that it runs in well under a minute. The full-size comparison
(DFT 512, Hadamard 1024, noisy targets) is
``python benchmarks/bench_vs_gradient.py``.

The gradient and ALS baselines are our own NumPy code in
``skbutterfly/_baselines.py`` (private) (exact gradients by back-propagation
through the sparse factors).
"""

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

from skbutterfly import bit_reversal_permutation, butterfly_factorize
from skbutterfly._baselines import butterfly_als, butterfly_gradient
from skbutterfly.datasets import dft, hadamard

FLOOR = 1e-16  # errors are plotted at least at this level (log scale)

problems = {
    "DFT 64 (J = 6, bit reversal)": (dft(64), 6, bit_reversal_permutation(64)),
    "Hadamard 128 (J = 7)": (hadamard(128), 7, None),
}

fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
for ax, (title, (A, J, perm)) in zip(axes, problems.items()):
    for seed in range(2):
        _, hist = butterfly_gradient(A, J, perm, n_adam=100, random_state=seed)
        ax.plot(
            hist.times,
            np.maximum(hist.errors, FLOOR),
            color="C0",
            alpha=0.8,
            label="Adam + L-BFGS" if seed == 0 else None,
        )
    _, hist = butterfly_als(A, J, perm, n_epochs=5)
    ax.plot(
        hist.times,
        np.maximum(hist.errors, FLOOR),
        "o-",
        color="C1",
        label="ALS (5 sweeps)",
    )
    for marker, (tree, ortho) in zip(
        "s^DP",
        [("balanced", True), ("balanced", False), ("left", True), ("left", False)],
    ):
        start = time.perf_counter()
        B = butterfly_factorize(
            A, n_factors=J, tree=tree, permutation=perm, orthonormalize=ortho
        )
        elapsed = time.perf_counter() - start
        err = np.linalg.norm(B.toarray() - A) / np.linalg.norm(A)
        ax.plot(
            elapsed,
            max(err, FLOOR),
            marker,
            color="C2",
            markersize=8,
            label=f"hierarchical, {tree}, ortho={ortho}",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("time (s)")
    ax.set_title(title)
axes[0].set_ylabel("relative error")
axes[1].legend(fontsize=8, loc="center right")
fig.tight_layout()
plt.show()

# %%
# The hierarchical method reaches machine precision in milliseconds, before
# the gradient runs have taken a few steps; after their whole budget (100 Adam
# and 20 L-BFGS iterations) the gradient runs end between 1e-2 and 1e-5. ALS
# on the same supports is exact after one sweep on these noiseless inputs
# (each factor's update splits into tiny independent least-squares problems),
# at a cost comparable to or above the whole direct method. The noisy targets,
# where the orthonormalised hierarchical method carries an error guarantee,
# are in ``benchmarks/bench_vs_gradient.py``.
