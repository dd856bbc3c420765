"""
Fast analysis and synthesis with a learned dictionary
=====================================================

A dictionary learned on image patches is a dense matrix :math:`D` (one atom
per row): analysing a patch (its correlations with the atoms) costs
:math:`X D^\\top`, synthesising a patch from codes costs :math:`C D`. This
example learns such a dictionary with scikit-learn's
``MiniBatchDictionaryLearning``, approximates it by a butterfly
:math:`\\hat D`, and uses the factorizer's ``transform``
(:math:`X \\hat D^\\top`) and ``inverse_transform`` (:math:`C \\hat D`) as
the fast analysis and synthesis operators. We report how much accuracy the
approximation costs for sparse coding and how fast the products are compared
with the dense dictionary.
"""

# %%
# Learn a dictionary on image patches
# -----------------------------------
# 16 x 16 patches of a grey-level photograph (bundled with scikit-learn),
# centred; 128 atoms of 256 pixels, learned in one pass over 1500 patches to
# keep the example fast; 1000 other patches for testing.
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_sample_image
from sklearn.decomposition import MiniBatchDictionaryLearning, SparseCoder
from sklearn.feature_extraction.image import extract_patches_2d
from threadpoolctl import threadpool_limits

from skbutterfly import ButterflyFactorizer

image = load_sample_image("china.jpg").mean(axis=2)[::2, ::2] / 255.0
patches = extract_patches_2d(image, (16, 16), max_patches=2500, random_state=0)
patches = patches.reshape(len(patches), -1)
patches -= patches.mean(axis=1, keepdims=True)
train, test = patches[:1500], patches[1500:]

learner = MiniBatchDictionaryLearning(
    n_components=128,
    batch_size=256,
    max_iter=1,
    fit_algorithm="cd",
    transform_algorithm="omp",
    transform_n_nonzero_coefs=8,
    random_state=0,
).fit(train)
D = learner.components_
print(f"dictionary: {D.shape[0]} atoms x {D.shape[1]} pixels")

# %%
# Approximate the dictionary by butterflies
# -----------------------------------------
# ``ButterflyFactorizer`` approximates the 128 x 256 matrix ``D`` (its rows
# are the operator's outputs). A learned dictionary is not an exact
# butterfly, and the relative error of the matrix is large. What matters is
# the task: sparse-code the test patches with the approximate dictionary
# (orthogonal matching pursuit, 8 atoms per patch, atoms normalized) and
# synthesise them back with ``inverse_transform(C) = C @ D_hat``.
codes = learner.transform(test)
norm = np.linalg.norm(test)
dense_error = np.linalg.norm(test - codes @ D) / norm
print(f"dense dictionary: reconstruction error {dense_error:.3f}")
models = {}
for n_factors, rank in ((2, 1), (2, 2), (7, 1)):
    est = ButterflyFactorizer(n_factors=n_factors, rank=rank).fit(D)
    atom_norms = np.linalg.norm(est.butterfly_.toarray(), axis=1)
    coder = SparseCoder(
        dictionary=est.butterfly_.toarray() / atom_norms[:, None],
        transform_algorithm="omp",
        transform_n_nonzero_coefs=8,
    )
    codes_hat = coder.transform(test) / atom_norms
    error = np.linalg.norm(test - est.inverse_transform(codes_hat)) / norm
    models[n_factors, rank] = est
    print(
        f"J={n_factors} rank={rank}: {est.butterfly_.nnz / D.size:4.0%} of the "
        f"values, matrix error {est.relative_error_:.3f}, reconstruction "
        f"error {error:.3f}"
    )

# %%
# The reconstruction error grows by a few hundredths while the dictionary
# keeps a fifth of its values or fewer, although the matrix itself is poorly
# approximated: sparse coding only needs atoms that still span the patches
# well. We keep the Monarch-like :math:`J = 2`, rank 1.
butterfly = models[2, 1]

# %%
# Analysis: correlations with the atoms
# -------------------------------------
# ``transform(X) = X @ D_hat.T`` gives every patch's correlations with the
# approximate atoms, the product that matching pursuit repeats at every
# step. It equals the dense product with the approximate dictionary:
D_hat = butterfly.butterfly_.toarray()
fast_corr = butterfly.transform(test)
print(
    "analysis matches the dense product with D_hat:",
    np.allclose(fast_corr, test @ D_hat.T),
)

# %%
# Speed
# -----
# The analysis and synthesis products with all 1000 test patches, best of 5
# runs, dense dictionary against butterfly. The butterfly does
# fewer operations (``2 * nnz`` per patch instead of ``2 * D.size``); whether
# that is faster in wall-clock time depends on the sizes and on the BLAS: at
# this small size, a dense product is one highly optimized matrix
# multiplication while the butterfly makes one pass per factor. Both run with
# one BLAS thread (on a busy machine, threads can slow the dense product down
# a lot). Timings are those of the machine that built this page.


def best_time(func, repeat=5):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


with threadpool_limits(limits=1, user_api="blas"):
    timings = {
        "analysis, dense": best_time(lambda: test @ D.T),
        "analysis, butterfly": best_time(lambda: butterfly.transform(test)),
        "synthesis, dense": best_time(lambda: codes @ D),
        "synthesis, butterfly": best_time(lambda: butterfly.inverse_transform(codes)),
    }
for name, seconds in timings.items():
    print(f"{name:>22}: {seconds * 1e3:7.2f} ms")
print(f"flops per patch: dense {2 * D.size}, butterfly {butterfly.butterfly_.flops}")

# %%
# Atoms and their approximations
# ------------------------------
# The first atoms of the dense dictionary (top) and of the butterfly (bottom).
fig, axes = plt.subplots(2, 8, figsize=(10, 3))
for k in range(8):
    for row, atoms in enumerate((D, D_hat)):
        axes[row, k].imshow(atoms[k].reshape(16, 16), cmap="gray")
        axes[row, k].set_axis_off()
axes[0, 0].set_title("dense", loc="left", fontsize=9)
axes[1, 0].set_title("butterfly", loc="left", fontsize=9)
fig.tight_layout()

fig, ax = plt.subplots(figsize=(6, 3))
ax.barh(list(timings), [1e3 * s for s in timings.values()])
ax.set(xlabel="time (ms)", title="Products with 1000 patches")
fig.tight_layout()
plt.show()
