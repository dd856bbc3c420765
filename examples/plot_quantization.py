"""
======================================================
Quantizing butterfly factors to low-precision floats
======================================================

A butterfly stores few values, and each can be stored in few bits. Rounding
every value to the nearest ``t``-bit float (RTN) is the obvious way; but the
factors are only defined up to scalings, and choosing the scaling of each
rank-one piece well makes the product much more accurate at the same ``t``
(Gribonval, Mary and Riccietti; hal-04125381).

For a random classic butterfly of size 256 we compare, for ``t = 3 .. 10``
significand bits, round-to-nearest with the two heuristics of
:func:`skbutterfly.quantize_butterfly` built on the exact rank-one method
:func:`skbutterfly.quantize_rank_one`: ``"pairwise"`` (pairs of consecutive
factors quantized optimally) and ``"left-to-right"``.
"""

# %%
# Quantize at several precisions
# -------------------------------
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from skbutterfly import quantize_butterfly, round_to_format
from skbutterfly.datasets import random_butterfly

B = random_butterfly(256, random_state=0)
A = B.toarray()
t_values = np.arange(3, 11)
heuristics = ("rtn", "pairwise", "left-to-right")
errors = {h: [] for h in heuristics}
for h in heuristics:
    for t in t_values:
        Q = quantize_butterfly(B, int(t), heuristic=h)
        # every stored value is a t-bit float: rounding again changes nothing
        assert all(np.array_equal(round_to_format(K, int(t)), K) for K in Q.factors)
        errors[h].append(np.linalg.norm(A - Q.toarray()) / np.linalg.norm(A))

# %%
# Bits saved at equal error
# -------------------------
# The error curves are close to straight lines in ``log(error)`` versus ``t``:
# interpolate the ``t`` at which the pairwise heuristic reaches RTN's error.
for t_ref in (6, 8, 10):
    target = errors["rtn"][t_ref - 3]
    t_pair = np.interp(-np.log(target), -np.log(errors["pairwise"]), t_values)
    print(
        f"RTN with t={t_ref}: error {target:.1e}; pairwise reaches it with "
        f"t={t_pair:.1f} ({100 * (t_ref - t_pair) / t_ref:.0f} % fewer bits)"
    )

# %%
# Plot
# ----
fig, ax = plt.subplots(figsize=(6, 4))
for h, marker in zip(heuristics, "osd"):
    ax.semilogy(t_values, errors[h], marker=marker, label=h)
ax.semilogy(t_values, 2.0**-t_values, "k:", label=r"$2^{-t}$")
ax.set_xlabel("significand bits t")
ax.set_ylabel(r"$\|B - B_q\|_F / \|B\|_F$")
ax.set_title("Quantized random butterfly, N = 256")
ax.legend()
fig.tight_layout()
plt.show()
