"""
Hidden butterflies: finding the ordering
========================================

A butterfly factorization only sees the structure of a matrix in the order
its rows and columns are given. Two cases where that order is wrong:

* the rows and columns of a DFT, or of a random butterfly, were shuffled:
  ``permutation="learn", row_permutation="learn"`` recovers orderings under
  which the matrix is again an exact butterfly;
* a non-uniform DFT in its natural (geometric) ordering has the
  complementary low-rank property of the butterfly algorithms, but in the
  wrong order: ``"auto"`` finds the reordering of its rows (a standard
  permutation related to the bit reversal) and the error drops by orders of
  magnitude, far below the truncated SVD with as many stored values.

A third case needs an ordering that no generic search tries: the DCT-II is
exact at block rank 2 once its columns are put in the order of Makhoul's
DCT-via-FFT algorithm, then bit-reversed.
"""

# %%
# Shuffled exact butterflies
# --------------------------
import matplotlib.pyplot as plt
import numpy as np
import scipy.fft

from skbutterfly import bit_reversal_permutation, butterfly_factorize
from skbutterfly.datasets import dft, nonuniform_dft, random_butterfly

N = 256
rng = np.random.default_rng(0)


def relative_error(A, B):
    return np.linalg.norm(B.toarray() - A) / np.linalg.norm(A)


for name, A in [
    ("DFT", dft(N)),
    ("random butterfly", random_butterfly(N, random_state=0).toarray()),
]:
    S = A[rng.permutation(N)][:, rng.permutation(N)]
    given = butterfly_factorize(S)
    learned = butterfly_factorize(
        S, permutation="learn", row_permutation="learn", random_state=0
    )
    print(
        f"shuffled {name}: error {relative_error(S, given):.2f} in the given "
        f"order, {relative_error(S, learned):.1e} with learned orderings"
    )

# %%
# A non-uniform DFT: error against stored values
# ----------------------------------------------
# Depth J = 4, block ranks 1 to 5. The orderings are chosen once by "auto" at
# rank 3 and reused; the truncated SVD keeps ``k`` singular triplets with
# ``k (m + n)`` at most the butterfly's number of stored values.
A = nonuniform_dft(N, random_state=0)
auto = butterfly_factorize(
    A, n_factors=4, rank=3, permutation="auto", row_permutation="auto", random_state=0
)
singular_values = np.linalg.svd(A, compute_uv=False)
stored, natural, ordered, svd = [], [], [], []
for rank in range(1, 6):
    B = butterfly_factorize(
        A, n_factors=4, rank=rank, permutation=auto.perm, row_permutation=auto.row_perm
    )
    stored.append(B.nnz)
    ordered.append(relative_error(A, B))
    natural.append(relative_error(A, butterfly_factorize(A, n_factors=4, rank=rank)))
    k = B.nnz // (2 * N)
    svd.append(np.sqrt(np.sum(singular_values[k:] ** 2) / np.sum(singular_values**2)))
    print(
        f"rank {rank}: {B.nnz / N**2:.0%} of dense, error {ordered[-1]:.1e} "
        f"(natural order {natural[-1]:.2f}, truncated SVD {svd[-1]:.2f})"
    )

fig, ax = plt.subplots(figsize=(6, 4))
ax.semilogy(stored, natural, "o-", label="butterfly, natural ordering")
ax.semilogy(stored, ordered, "s-", label='butterfly, "auto" ordering')
ax.semilogy(stored, svd, "^--", label="truncated SVD, same storage")
ax.set_xlabel("stored values")
ax.set_ylabel("relative error")
ax.set_title(f"non-uniform DFT, N = {N}")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %%
# The DCT-II: a known ordering
# ----------------------------
# Makhoul's algorithm computes the DCT-II as the real part of a DFT, scaled
# by phases, of the input reordered as even entries then odd ones reversed.
# With these columns bit-reversed, every block of the butterfly's splits is
# the real part of a rank-one block: block rank 2 with real factors is exact.
# Depth 4 stores the fewest values at rank 2 (the error-free representation
# takes 19 % of the dense storage; "auto" at rank 2 is not exact).
C = scipy.fft.dct(np.eye(N), type=2, norm="ortho", axis=0)
makhoul = np.r_[np.arange(0, N, 2), np.arange(N - 1, 0, -2)]
B = butterfly_factorize(
    C, n_factors=4, rank=2, permutation=makhoul[bit_reversal_permutation(N)]
)
auto = butterfly_factorize(
    C, n_factors=4, rank=2, permutation="auto", row_permutation="auto", random_state=0
)
print(
    f"DCT-II, N = {N}, depth 4, rank 2: error {relative_error(C, B):.1e} with "
    f"Makhoul's columns bit-reversed ({B.nnz / N**2:.0%} of dense), "
    f"{relative_error(C, auto):.2f} with 'auto'"
)
