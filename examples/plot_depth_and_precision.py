"""
Choosing the depth and the precision by grid search
===================================================

A butterfly has two knobs that trade accuracy for cost: the number of factors
:math:`J` (fewer factors store more values) and, once quantized, the number of
significand bits :math:`t` per value. This example measures the error against
:math:`J`, then lets ``GridSearchCV`` explore :math:`J` and :math:`t` together
and draws the Pareto front of storage against error, with the model that
:func:`~skbutterfly.model_selection.cheapest_within` picks.

The matrix is the discrete Hartley transform (the real cousin of the DFT,
:math:`\\cos + \\sin` of the Fourier angles) of size 128, measured with a
relative noise of :math:`10^{-3}`. After the bit-reversal permutation it is an
exact butterfly of block rank 2, so the noise sets the error floor.
"""

# %%
# The matrix
# ----------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import GridSearchCV

from skbutterfly import ButterflyFactorizer, QuantizedButterfly
from skbutterfly.datasets import add_noise, dft
from skbutterfly.model_selection import WholeMatrixSplit, all_scorers, cheapest_within

N = 128
F = dft(N)
A = add_noise(F.real - F.imag, 1e-3, random_state=0)

# %%
# Error and storage against the depth
# -----------------------------------
# With block rank 2 and the bit-reversal permutation every depth reaches the
# noise level; rank 1 (the classic butterfly) cannot represent this matrix.
# (:math:`J = 1` is the dense matrix itself: no error, no savings.) The number
# of stored values is *not* monotone in :math:`J` for rank 2: the block rank
# adds values between every pair of factors, so the classic depth
# :math:`J = \log_2 N = 7` is not the cheapest.
depths = range(2, 8)
curves = {}
for rank in (1, 2):
    curves[rank] = [
        ButterflyFactorizer(n_factors=J, rank=rank, permutation="bit-reversal").fit(A)
        for J in depths
    ]

fig, (ax_err, ax_nnz) = plt.subplots(1, 2, figsize=(10, 4))
for rank, models in curves.items():
    errors = [m.relative_error_ for m in models]
    ax_err.semilogy(depths, errors, "o-", label=f"rank {rank}")
    ax_nnz.semilogy(
        depths, [m.butterfly_.nnz for m in models], "o-", label=f"rank {rank}"
    )
ax_err.axhline(1e-3, color="gray", ls=":", label="noise level")
ax_err.set(xlabel="number of factors J", ylabel="relative error", title="Error")
ax_nnz.axhline(N * N, color="gray", ls=":", label="dense")
ax_nnz.set(xlabel="number of factors J", ylabel="stored values", title="Storage")
ax_err.legend()
ax_nnz.legend()
fig.tight_layout()

# %%
# Grid search over depth and precision
# ------------------------------------
# ``QuantizedButterfly`` fits its inner ``ButterflyFactorizer`` and quantizes
# the factors to :math:`t` significand bits. :class:`WholeMatrixSplit` fits
# and scores every candidate on the whole matrix, and the scorers of
# :mod:`skbutterfly.model_selection` record the error, the storage (in bits)
# and the flops of each candidate; errors and costs are negated (higher is
# better). ``cheapest_within(tol)`` refits the candidate with the fewest bits
# whose relative error is at most ``tol``.
tol = 2e-3
search = GridSearchCV(
    QuantizedButterfly(ButterflyFactorizer(rank=2, permutation="bit-reversal")),
    {"estimator__n_factors": [2, 3, 4, 7], "precision": [4, 5, 6, 8, 10]},
    cv=WholeMatrixSplit(),
    scoring=all_scorers(),
    refit=cheapest_within(tol),
)
search.fit(A)
results = search.cv_results_
errors = -results["mean_test_relative_error"]
bits = -results["mean_test_storage_bits"]
depth = np.array([p["estimator__n_factors"] for p in results["params"]])
best = search.best_index_
print(f"chosen: {search.best_params_}")
print(f"relative error {errors[best]:.2e}, {bits[best] / 8192:.1f} KiB")
print(f"dense float64: {N * N * 64 / 8192:.1f} KiB")

# %%
# The Pareto front
# ----------------
# A candidate is on the front when no other candidate is both cheaper and
# more accurate. The chosen model is the cheapest point left of the
# tolerance line.
order = np.lexsort((errors, bits))
front, best_error = [], np.inf
for i in order:
    if errors[i] < best_error:
        front.append(i)
        best_error = errors[i]

fig, ax = plt.subplots(figsize=(6, 4.5))
for J in np.unique(depth):
    mask = depth == J
    ax.scatter(errors[mask], bits[mask] / 8192, label=f"J = {J}")
ax.step(
    errors[front], bits[front] / 8192, "k--", where="post", lw=1, label="Pareto front"
)
ax.axvline(tol, color="gray", ls=":", label=f"tol = {tol:g}")
ax.scatter(
    errors[best],
    bits[best] / 8192,
    s=200,
    facecolors="none",
    edgecolors="red",
    label="cheapest_within(tol)",
)
ax.set(
    xscale="log",
    xlabel="relative error",
    ylabel="storage (KiB)",
    title="Depth J and precision t: storage against error",
)
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %%
# Searching the precision alone
# -----------------------------
# The factorization does not depend on :math:`t`: freeze a fitted factorizer
# and search the precision without refitting it (``FrozenEstimator`` is
# returned unchanged by ``clone``, so every candidate quantizes the same
# factors).
from sklearn.frozen import FrozenEstimator

fitted = ButterflyFactorizer(n_factors=4, rank=2, permutation="bit-reversal").fit(A)
precision_search = GridSearchCV(
    QuantizedButterfly(FrozenEstimator(fitted)),
    {"precision": list(range(4, 11))},
    cv=WholeMatrixSplit(),
    scoring=all_scorers(),
    refit=cheapest_within(tol),
).fit(A)
print(
    f"J = 4 alone: t = {precision_search.best_params_['precision']}, error "
    f"{-precision_search.cv_results_['mean_test_relative_error'][precision_search.best_index_]:.2e}"
)
