"""Orderings: the identity, ``"auto"`` and ``"learn"`` side by side, and the SVD.

Four tables, one run:

1. **Shuffled exact butterflies** (rows and columns shuffled by random
   permutations), real and complex, block rank 1 and 2, with and without 1 %
   Gaussian noise, plus shuffled DFT and Hadamard: the fraction of draws where
   ``"learn"`` reaches a relative error <= 1e-10 (noisy: <= 1.1 x the noise),
   the median and the largest error.
2. **Matrices in their natural ordering** (non-uniform DFT at sorted random
   nodes, a Fourier integral operator, Legendre at Gauss nodes) at block rank
   8 for the depths J that store less than the dense matrix: relative error
   with the identity, ``"auto"`` and ``"learn"`` orderings (both sides),
   stored values (% of dense), the truncated SVD with the same number of
   stored values (``k (m + n) <= nnz``) and its ratio to the butterfly's
   error, the time of ``"auto"`` against one factorization with the
   orderings it found given as known; then, at the J that stores least among
   those meeting the issue's target (1e-6, Legendre 1e-4), the error-storage
   curve over rank 1..8 with those orderings.
3. **Cost** at N = 1024: ``"learn"`` split into the partition search
   (``learn_orderings``) and the factorization, against one factorization
   with known permutations; ``"auto"`` against one factorization; the peak
   memory of each call (allocations traced by ``tracemalloc``) in copies of
   the input.
4. **DCT-II / DST-II**: stored values at block rank 2 for every depth, the
   exact real representations with the columns in Makhoul's order (even
   entries, then the odd ones reversed) then bit-reversed, what ``"auto"``
   finds at rank 2 and 4, the complex rank-2 form, and (N <= 1024) the best
   block-rank-1 error of every search the package offers.

Times are wall times (best of 3 with ``--full``): on a shared machine, set
``OPENBLAS_NUM_THREADS=1``, since BLAS threads competing for busy cores make
the small batched eigensolvers many times slower.
``python benchmarks/bench_orderings.py`` is the quick run (about a minute on
2 busy cores: table 1 at N = 64 and 256 with 5 draws, table 2 at
N = 1024 and J = 2, tables 3 and 4 at N = 1024 and 256); ``--full`` runs the
issue's sizes (table 1 up to N = 1024 with 20 draws, table 2 at N = 1024 and
4096 and J = 2..6, table 4 at N = 256 and 4096); ``--tables``, ``--sizes``,
``--ranks``, ``--shuffled-sizes`` and ``--draws`` (of table 1), ``--depths``,
``--dct-sizes`` and ``--no-learn`` select parts.
"""

import argparse
import tracemalloc

import numpy as np
import scipy.fft
import scipy.linalg
from _timing import best_time

from skbutterfly import architecture, bit_reversal_permutation, butterfly_factorize
from skbutterfly.__main__ import _permutation_name
from skbutterfly._orderings import learn_orderings
from skbutterfly.datasets import (
    dft,
    fourier_integral_operator,
    hadamard,
    legendre_transform,
    nonuniform_dft,
    random_butterfly,
)

LEARN = {"permutation": "learn", "row_permutation": "learn", "random_state": 0}
AUTO = {"permutation": "auto", "row_permutation": "auto", "random_state": 0}


def relative_error(A, B):
    return float(np.linalg.norm(B.toarray() - A) / np.linalg.norm(A))


def shuffled(A, rng):
    return A[rng.permutation(A.shape[0])][:, rng.permutation(A.shape[1])]


def table_shuffled(sizes, draws, ranks=(1, 2)):
    print("1. Shuffled exact butterflies, 'learn' on both sides")
    print(f"{'input':<26}{'N':>6}{'draws':>7}{'met':>6}{'median err':>12}{'max':>10}")
    kinds = [
        ("real, rank 1", np.float64, 1, 0.0),
        ("complex, rank 1", np.complex128, 1, 0.0),
        ("real, rank 2", np.float64, 2, 0.0),
        ("complex, rank 2", np.complex128, 2, 0.0),
        ("real, rank 1, 1% noise", np.float64, 1, 0.01),
        ("complex, rank 1, 1% noise", np.complex128, 1, 0.01),
        ("real, rank 2, 1% noise", np.float64, 2, 0.01),
        ("complex, rank 2, 1% noise", np.complex128, 2, 0.01),
    ]
    kinds = [kind for kind in kinds if kind[2] in ranks]
    for N in sizes:
        for name, dtype, rank, noise in kinds:
            errors = []
            for seed in range(draws):
                rng = np.random.default_rng(seed)
                A = random_butterfly(N, rank=rank, dtype=dtype, random_state=seed)
                S = shuffled(A.toarray(), rng)
                if noise:
                    E = rng.standard_normal(S.shape)
                    S = S + noise * np.linalg.norm(S) / np.linalg.norm(E) * E
                B = butterfly_factorize(S, rank=rank, **LEARN)
                errors.append(relative_error(S, B))
            target = 1.1 * noise if noise else 1e-10
            met = np.mean(np.asarray(errors) <= target)
            print(
                f"{name:<26}{N:>6}{draws:>7}{met:>6.0%}{np.median(errors):>12.1e}"
                f"{np.max(errors):>10.1e}",
                flush=True,
            )
        if N >= 256:
            for name, make in (("DFT", dft), ("Hadamard", hadamard)):
                S = shuffled(make(N), np.random.default_rng(N))
                error = relative_error(S, butterfly_factorize(S, **LEARN))
                print(f"{'shuffled ' + name:<26}{N:>6}{1:>7}{'':>6}{error:>12.1e}")
    print()


MATRICES = {
    "non-uniform DFT": lambda n: nonuniform_dft(n, random_state=0),
    "Fourier integral op.": fourier_integral_operator,
    "Legendre (Gauss)": legendre_transform,
}
# Targets of the issue at block rank 8 (relative Frobenius error).
TARGETS = {
    "non-uniform DFT": 1e-6,
    "Fourier integral op.": 1e-6,
    "Legendre (Gauss)": 1e-4,
}


def squared_singular_values(A):
    """Squared singular values of ``A``, decreasing, from its Gram matrix.

    ``eigvalsh(A^H A)`` is several times faster than an SVD at N = 4096 and
    accurate enough for the tail energies compared here (relative errors
    of order 0.1 and more).
    """
    gram = A.conj().T @ A
    return np.clip(scipy.linalg.eigvalsh(gram, overwrite_a=True), 0, None)[::-1]


def svd_error_at_storage(sigma2, nnz, shape):
    """Relative error of the truncated SVD storing at most ``nnz`` values.

    ``sigma2`` holds the squared singular values; ``k`` triplets store
    ``k (m + n)`` values.
    """
    k = nnz // (shape[0] + shape[1])
    return float(np.sqrt(np.sum(sigma2[k:]) / np.sum(sigma2)))


def table_natural(sizes, depths, learn=True):
    print("2. Natural orderings, block rank 8 (errors relative; svd = truncated")
    print("   SVD with as many stored values; times in seconds: 'auto', then one")
    print("   factorization with the orderings 'auto' found, given as known)")
    header = (
        f"{'matrix':<21}{'N':>5}{'J':>3}{'nnz %':>7}{'identity':>9}{'auto':>9}"
        f"{'learn':>9}{'svd':>6}{'svd/auto':>9}{'t auto':>8}{'t known':>8}"
        f"{'ratio':>6}  rows/cols"
    )
    for N in sizes:
        L = N.bit_length() - 1
        storage = [architecture((N, N), n_factors=J, rank=8).nnz for J in range(2, L)]
        print(
            f"   N = {N}, stored values at rank 8 by depth J: "
            + ", ".join(
                f"{J}: {100 * v / N**2:.1f} %" for J, v in enumerate(storage, 2)
            )
        )
        print(header)
        for name, make in MATRICES.items():
            A = make(N)
            sigma2 = squared_singular_values(A)
            results = {}
            for J in depths:
                if architecture((N, N), n_factors=J, rank=8).nnz >= N * N:
                    continue  # no cheaper than the dense matrix
                plain = butterfly_factorize(A, n_factors=J, rank=8)
                t_auto, auto = best_time(
                    lambda A=A, J=J: butterfly_factorize(
                        A, n_factors=J, rank=8, **AUTO
                    ),
                    1,
                )
                t_known, _ = best_time(
                    lambda A=A, J=J, B=auto: butterfly_factorize(
                        A,
                        n_factors=J,
                        rank=8,
                        permutation=B.perm,
                        row_permutation=B.row_perm,
                    ),
                    1,
                )
                learned = f"{'-':>9}"
                if learn:
                    B = butterfly_factorize(A, n_factors=J, rank=8, **LEARN)
                    learned = f"{relative_error(A, B):>9.1e}"
                e_plain, e_auto = relative_error(A, plain), relative_error(A, auto)
                svd = svd_error_at_storage(sigma2, auto.nnz, A.shape)
                results[J] = (auto, e_auto)
                orders = f"{_short(auto.row_perm)}/{_short(auto.perm)}"
                print(
                    f"{name:<21}{N:>5}{J:>3}{100 * auto.nnz / N**2:>7.1f}"
                    f"{e_plain:>9.1e}{e_auto:>9.1e}{learned}{svd:>6.2f}"
                    f"{svd / max(e_auto, 1e-300):>9.1e}{t_auto:>8.2f}{t_known:>8.2f}"
                    f"{t_auto / t_known:>6.1f}  {orders}"
                )
            target = TARGETS[name]
            met = [J for J, (_, e) in results.items() if e <= target]
            J = min(met or results, key=lambda J: (results[J][0].nnz, J))
            auto = results[J][0]
            verdict = "meets" if J in met else "misses"
            print(
                f"   least storage at rank 8 {'meeting' if met else 'of all'} "
                f"the target {target:.0e}: J = {J} ({100 * auto.nnz / N**2:.1f} % "
                f"of dense, {verdict} it); error-storage curve there, auto's "
                "orderings:"
            )
            print(f"   {'rank':>6}{'nnz %':>8}{'butterfly':>11}{'svd':>7}{'svd/bf':>9}")
            for rank in range(1, 9):
                B = butterfly_factorize(
                    A,
                    n_factors=J,
                    rank=rank,
                    permutation=auto.perm,
                    row_permutation=auto.row_perm,
                )
                error = relative_error(A, B)
                svd = svd_error_at_storage(sigma2, B.nnz, A.shape)
                print(
                    f"   {rank:>6}{100 * B.nnz / N**2:>8.1f}{error:>11.1e}"
                    f"{svd:>7.2f}{svd / max(error, 1e-300):>9.1e}"
                )
        print()


def _short(perm):
    """'none', 'bit-reversal', a standard code or 'custom'."""
    name = _permutation_name(perm)
    return name.replace("standard ", "").replace("custom index array", "custom")


def peak_memory(func):
    """Peak of the memory traced during ``func()`` (numpy reports to tracemalloc)."""
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    func()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak


def table_cost(N, repeat):
    print(f"3. Cost at N = {N} (best of {repeat}, seconds; memory: peak traced")
    print("   allocations during the call, in copies of the input matrix)")
    rng = np.random.default_rng(0)
    for dtype in (np.float64, np.complex128):
        S = shuffled(random_butterfly(N, dtype=dtype, random_state=0).toarray(), rng)
        t_search, (rows, cols) = best_time(
            lambda S=S: learn_orderings(S, random_state=0), repeat
        )
        t_fact, _ = best_time(
            lambda S=S, r=rows, c=cols: butterfly_factorize(
                S, permutation=c, row_permutation=r
            ),
            repeat,
        )
        t_learn, _ = best_time(lambda S=S: butterfly_factorize(S, **LEARN), repeat)
        memory = peak_memory(lambda S=S: butterfly_factorize(S, **LEARN)) / S.nbytes
        print(
            f"   learn, {np.dtype(dtype).name:<11} search {t_search:.3f} + "
            f"factorization {t_fact:.3f}; whole call {t_learn:.3f} = "
            f"{t_learn / t_fact:.1f} x one factorization with known permutations; "
            f"memory {memory:.1f} copies"
        )
    A = nonuniform_dft(N, random_state=0)
    for J in (2, 5):
        t_auto, auto = best_time(
            lambda J=J: butterfly_factorize(A, n_factors=J, rank=8, **AUTO), repeat
        )
        known = {"permutation": auto.perm, "row_permutation": auto.row_perm}
        t_one, _ = best_time(
            lambda J=J, k=known: butterfly_factorize(A, n_factors=J, rank=8, **k),
            repeat,
        )
        m_auto = peak_memory(
            lambda J=J: butterfly_factorize(A, n_factors=J, rank=8, **AUTO)
        )
        m_one = peak_memory(
            lambda J=J, k=known: butterfly_factorize(A, n_factors=J, rank=8, **k)
        )
        print(
            f"   auto, non-uniform DFT J={J} rank 8: {t_auto:.3f} = "
            f"{t_auto / t_one:.1f} x one factorization with known permutations "
            f"({t_one:.3f}); memory {m_auto / A.nbytes:.1f} copies "
            f"(known permutations: {m_one / A.nbytes:.1f})"
        )
    print()


def dct_matrices(N):
    """Orthonormal DCT-II and DST-II matrices (``scipy.fft``, axis 0)."""
    return {
        name: transform(np.eye(N), type=2, norm="ortho", axis=0)
        for name, transform in (("DCT-II", scipy.fft.dct), ("DST-II", scipy.fft.dst))
    }


def makhoul_columns(N):
    """Makhoul's input order (even entries, then the odd ones reversed),
    then bit-reversed: the columns under which the DCT-II is the real part
    of a phase-scaled DFT in butterfly order."""
    makhoul = np.r_[np.arange(0, N, 2), np.arange(N - 1, 0, -2)]
    return makhoul[bit_reversal_permutation(N)]


def table_dct(N, search):
    print(f"4. DCT-II / DST-II at N = {N}: exact representations (error <= 1e-10)")
    L = N.bit_length() - 1
    columns = makhoul_columns(N)
    storage = {
        J: architecture((N, N), n_factors=J, rank=2).nnz for J in range(2, L + 1)
    }
    cheapest = min(storage, key=lambda J: (storage[J], J))
    print(
        "   stored values at rank 2 by depth J: "
        + ", ".join(f"{J}: {100 * v / N**2:.2f} %" for J, v in storage.items())
    )
    print(
        f"{'matrix':<8}{'factors':<9}{'J':>3}{'rank':>5}{'error':>10}{'values':>9}"
        f"{'% dense (reals)':>17}{'flops':>10}  orderings"
    )
    makhoul = {"permutation": columns}
    runs = [
        ("real", J, 2, makhoul, "columns: Makhoul, then bit reversal")
        for J in sorted({2, cheapest, L})
    ]
    runs += [
        ("real", 2, 2, AUTO, "auto"),
        ("real", 2, 4, AUTO, "auto"),
        ("complex", cheapest, 2, makhoul, "columns: Makhoul, then bit reversal"),
    ]
    for name, A in dct_matrices(N).items():
        for kind, J, rank, orderings, label in runs:
            M = A.astype(complex) if kind == "complex" else A
            B = butterfly_factorize(M, n_factors=J, rank=rank, **orderings)
            if orderings is AUTO:
                label = f"auto: rows {_short(B.row_perm)}, columns {_short(B.perm)}"
            reals = (2 if kind == "complex" else 1) * B.nnz
            print(
                f"{name:<8}{kind:<9}{J:>3}{rank:>5}{relative_error(A, B):>10.1e}"
                f"{B.nnz:>9}{100 * reals / N**2:>17.2f}{B.flops:>10}  {label}"
            )
        if search:
            table_dct_rank_one(A, name, columns)
    print()


def table_dct_rank_one(A, name, columns):
    """Best rank-one error over every ordering search the package offers."""
    N = A.shape[0]
    variants = [columns, columns[::-1], np.argsort(columns)]
    searches = {
        "auto": AUTO,
        "learn": LEARN,
        "8 x 8 standard": {"permutation": "default-8", "row_permutation": "default-8"},
        "Makhoul variants x 8 standard rows": {
            "permutation": variants,
            "row_permutation": "default-8",
        },
    }
    for J in sorted({2, 4, N.bit_length() - 1}):
        errors = {
            label: relative_error(
                A, butterfly_factorize(A, n_factors=J, rank=1, **orderings)
            )
            for label, orderings in searches.items()
        }
        print(
            f"   {name} rank 1, J = {J}, best error per search: "
            + ", ".join(f"{label} {e:.2f}" for label, e in errors.items())
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--full",
        action="store_true",
        help="the issue's sizes: tables 1 and 3 up to N = 1024 with 20 draws, "
        "table 2 at N = 1024 and 4096, table 4 at N = 256 and 4096 (about an "
        "hour on 2 busy cores)",
    )
    parser.add_argument("--tables", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument(
        "--ranks", type=int, nargs="+", default=[1, 2], help="block ranks of table 1"
    )
    parser.add_argument("--sizes", type=int, nargs="+", help="sizes of table 2")
    parser.add_argument(
        "--shuffled-sizes", type=int, nargs="+", help="sizes of table 1"
    )
    parser.add_argument("--draws", type=int, help="draws of table 1")
    parser.add_argument("--dct-sizes", type=int, nargs="+", help="sizes of table 4")
    parser.add_argument(
        "--depths", type=int, nargs="+", help="depths J of table 2 (rank 8)"
    )
    parser.add_argument(
        "--no-learn", action="store_true", help="no 'learn' column in table 2"
    )
    args = parser.parse_args()
    full = args.full
    if 1 in args.tables:
        table_shuffled(
            args.shuffled_sizes or ([64, 256, 1024] if full else [64, 256]),
            draws=args.draws or (20 if full else 5),
            ranks=args.ranks,
        )
    if 2 in args.tables:
        sizes = args.sizes or ([1024, 4096] if full else [1024])
        depths = args.depths or ([2, 3, 4, 5, 6] if full else [2])
        table_natural(sizes, depths, learn=not args.no_learn)
    if 3 in args.tables:
        table_cost(1024, repeat=3 if full else 1)
    if 4 in args.tables:
        for N in args.dct_sizes or ([256, 4096] if full else [256]):
            table_dct(N, search=N <= 1024)


if __name__ == "__main__":
    main()
