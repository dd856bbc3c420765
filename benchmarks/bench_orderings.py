"""Orderings: the identity, ``"auto"`` and ``"learn"`` side by side, and the SVD.

Four tables, one run:

1. **Shuffled exact butterflies** (rows and columns shuffled by random
   permutations), real and complex, block rank 1 and 2, and with 1 % Gaussian
   noise, plus shuffled DFT and Hadamard: the fraction of draws where
   ``"learn"`` reaches a relative error <= 1e-10 (noisy: <= 1.1 x the noise).
2. **Matrices in their natural ordering** (non-uniform DFT at sorted random
   nodes, a Fourier integral operator, Legendre at Gauss nodes) at block rank
   8 for several depths J: relative error with the identity, ``"auto"`` and
   ``"learn"`` orderings, stored values (% of dense) and the truncated SVD
   with the same number of stored values (``k (m + n) <= nnz``), then the
   error-storage curve over rank 1..8 at the J that stores least, with the
   orderings ``"auto"`` chose.
3. **Cost** at N = 1024: ``"learn"`` split into the partition search
   (``learn_orderings``) and the factorization, against one factorization
   with known permutations; ``"auto"`` against one factorization.
4. **DCT-II / DST-II**: the cheapest exact representation found (real
   factors with ``"auto"``; complex factors with the column order of
   Makhoul's DCT-via-FFT algorithm composed with the bit reversal).

Times are best of 3 wall times on a shared machine: expect noise. Run
``python benchmarks/bench_orderings.py`` (several minutes, N up to 1024;
``--sizes 1024 4096`` for table 2 at 4096) or ``--quick`` (small draws and
sizes, about a minute).
"""

import argparse

import numpy as np
import scipy.fft
from _timing import best_time

from skbutterfly import bit_reversal_permutation, butterfly_factorize
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


def svd_error_at_storage(singular_values, nnz, shape):
    """Relative error of the truncated SVD storing at most ``nnz`` values."""
    k = nnz // (shape[0] + shape[1])
    tail = singular_values[k:]
    return float(np.sqrt(np.sum(tail**2) / np.sum(singular_values**2)))


def table_shuffled(sizes, draws):
    print("1. Shuffled exact butterflies, 'learn' on both sides")
    print(f"{'input':<24}{'N':>6}{'draws':>7}{'met':>6}{'median err':>12}")
    kinds = [
        ("real, rank 1", np.float64, 1, 0.0),
        ("complex, rank 1", np.complex128, 1, 0.0),
        ("real, rank 2", np.float64, 2, 0.0),
        ("complex, rank 2", np.complex128, 2, 0.0),
        ("real, rank 1, 1% noise", np.float64, 1, 0.01),
    ]
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
            print(f"{name:<24}{N:>6}{draws:>7}{met:>6.0%}{np.median(errors):>12.1e}")
        if N >= 256:
            for name, make in (("DFT", dft), ("Hadamard", hadamard)):
                S = shuffled(make(N), np.random.default_rng(N))
                error = relative_error(S, butterfly_factorize(S, **LEARN))
                print(f"{'shuffled ' + name:<24}{N:>6}{1:>7}{'':>6}{error:>12.1e}")
    print()


MATRICES = {
    "non-uniform DFT": lambda n: nonuniform_dft(n, random_state=0),
    "Fourier integral op.": fourier_integral_operator,
    "Legendre (Gauss)": legendre_transform,
}


def table_natural(sizes, depths):
    print("2. Natural orderings, block rank 8 (errors relative; svd = truncated")
    print("   SVD with as many stored values)")
    header = (
        f"{'matrix':<22}{'N':>6}{'J':>4}{'nnz %':>8}{'identity':>10}{'auto':>10}"
        f"{'learn':>10}{'svd':>9}{'svd/best':>10}{'auto rows/cols':>22}"
    )
    for N in sizes:
        print(header)
        for name, make in MATRICES.items():
            A = make(N)
            s = np.linalg.svd(A, compute_uv=False)
            rows = []
            for J in depths(N):
                plain = butterfly_factorize(A, n_factors=J, rank=8)
                auto = butterfly_factorize(A, n_factors=J, rank=8, **AUTO)
                learn = butterfly_factorize(A, n_factors=J, rank=8, **LEARN)
                errs = [relative_error(A, B) for B in (plain, auto, learn)]
                svd = svd_error_at_storage(s, auto.nnz, A.shape)
                best = min(errs)
                rows.append((auto.nnz, J, auto))
                orders = f"{_short(auto.row_perm)}/{_short(auto.perm)}"
                print(
                    f"{name:<22}{N:>6}{J:>4}{100 * auto.nnz / N**2:>8.1f}"
                    f"{errs[0]:>10.1e}{errs[1]:>10.1e}{errs[2]:>10.1e}{svd:>9.2f}"
                    f"{svd / max(best, 1e-300):>10.1e}{orders:>22}"
                )
            nnz, J, auto = min(rows, key=lambda row: row[0])
            print(
                f"   error-storage curve at J = {J} (least storage), auto's orderings:"
            )
            print(f"   {'rank':>6}{'nnz %':>8}{'butterfly':>11}{'svd':>9}")
            for rank in range(1, 9):
                B = butterfly_factorize(
                    A,
                    n_factors=J,
                    rank=rank,
                    permutation=auto.perm,
                    row_permutation=auto.row_perm,
                )
                print(
                    f"   {rank:>6}{100 * B.nnz / N**2:>8.1f}"
                    f"{relative_error(A, B):>11.1e}"
                    f"{svd_error_at_storage(s, B.nnz, A.shape):>9.2f}"
                )
        print()


def _short(perm):
    """'none', 'bit-reversal', a standard code or 'custom'."""
    name = _permutation_name(perm)
    return name.replace("standard ", "").replace("custom index array", "custom")


def table_cost(N, repeat):
    print(f"3. Cost at N = {N} (best of {repeat}, seconds)")
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
        print(
            f"   learn, {np.dtype(dtype).name:<11} search {t_search:.3f} + "
            f"factorization {t_fact:.3f}; whole call {t_learn:.3f} = "
            f"{t_learn / t_fact:.1f} x one factorization with known permutations"
        )
    A = nonuniform_dft(N, random_state=0)
    t_one, _ = best_time(lambda: butterfly_factorize(A, n_factors=5, rank=8), repeat)
    t_auto, _ = best_time(
        lambda: butterfly_factorize(A, n_factors=5, rank=8, **AUTO), repeat
    )
    print(
        f"   auto, non-uniform DFT J=5 rank 8: {t_auto:.3f} = "
        f"{t_auto / t_one:.1f} x one factorization ({t_one:.3f})"
    )
    print()


def table_dct(N):
    print(f"4. DCT-II / DST-II at N = {N}: exact representations (error <= 1e-10)")
    makhoul = np.r_[np.arange(0, N, 2), np.arange(N - 1, 0, -2)]
    columns = makhoul[bit_reversal_permutation(N)]
    print(
        f"{'matrix':<8}{'factors':<9}{'J':>3}{'rank':>6}{'error':>10}{'values':>8}"
        f"{'% dense (real storage)':>24}  orderings"
    )
    for name, transform in (("DCT-II", scipy.fft.dct), ("DST-II", scipy.fft.dst)):
        A = transform(np.eye(N), type=2, norm="ortho", axis=0)
        L = N.bit_length() - 1
        for J in sorted({2, L // 2, L}):
            B = butterfly_factorize(A, n_factors=J, rank=4, **AUTO)
            print(
                f"{name:<8}{'real':<9}{J:>3}{4:>6}{relative_error(A, B):>10.1e}"
                f"{B.nnz:>8}{100 * B.nnz / N**2:>24.1f}  auto: rows "
                f"{_short(B.row_perm)}, columns {_short(B.perm)}"
            )
            B = butterfly_factorize(
                A.astype(complex), n_factors=J, rank=2, permutation=columns, svd_tol=0
            )
            print(
                f"{name:<8}{'complex':<9}{J:>3}{2:>6}{relative_error(A, B):>10.1e}"
                f"{B.nnz:>8}{200 * B.nnz / N**2:>24.1f}  columns: even, reversed "
                "odd, then bit reversal"
            )
    print()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and draws")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=None, help="sizes of table 2"
    )
    args = parser.parse_args()
    if args.quick:
        table_shuffled([64, 256], draws=5)
        table_natural(args.sizes or [256], lambda n: [4, 8])
        table_cost(256, repeat=1)
    else:
        table_shuffled([64, 256, 1024], draws=20)
        table_natural(args.sizes or [1024], lambda n: [2, 5, n.bit_length() - 1])
        table_cost(1024, repeat=3)
    table_dct(256)


if __name__ == "__main__":
    main()
