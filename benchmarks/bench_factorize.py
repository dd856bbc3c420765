"""Butterfly factorization: skbutterfly against pyfaust, time, error and memory.

One process, same inputs for everybody. Inputs of size N x N:

- ``hadamard``: the Sylvester-Hadamard matrix;
- ``dft``: the DFT, factorized with the bit-reversal permutation;
- ``butterfly``: a random exact butterfly (Gaussian twiddles);
- ``noise1e-3`` / ``noise1e-2`` / ``noise1e-1``: the same plus Gaussian noise of
  that relative Frobenius norm;
- ``gaussian``: a dense Gaussian matrix.

Methods: ``ours`` is ``butterfly_factorize(A)`` (classic depth log2 N,
balanced tree, orthonormalisation on); ``faust`` is
``pyfaust.fact.butterfly(A, type="bbtree")`` (its balanced tree, no
orthonormalisation). ``t-ratio`` is faust time / ours (above 1: ours is
faster), ``e-ratio`` ours error / faust error (below 1: ours is more
accurate; exact inputs compare rounding noise). The exponent is the slope of
log(time) against log(N), fitted from N = 1024 up (``--quick``: the last two
sizes). A second table compares
with ``pyfaust.fact.fdb`` (left-to-right, orthonormalised) for J = 2, 3 and
block rank 2 at one size, and a third one measures the peak extra memory of
one factorization in a fresh subprocess (``VmHWM`` minus ``VmRSS`` once the
input exists, after resetting the peak), as a multiple of the input's size.

Timings are wall times of one run (best of three below N = 2048) on a shared
machine: expect noise. Run ``python benchmarks/bench_factorize.py`` (a few
minutes) or ``--quick`` (N <= 1024).
"""

import argparse
import subprocess
import sys
import warnings
from functools import partial

import numpy as np
from _timing import best_time

from skbutterfly import ButterflyFactorizer, butterfly_factorize
from skbutterfly._ks import fuse_values
from skbutterfly.datasets import add_noise, dft, hadamard, random_butterfly

try:
    import pyfaust
    import pyfaust.fact
except ImportError:
    pyfaust = None

INPUTS = (
    "hadamard",
    "dft",
    "butterfly",
    "noise1e-3",
    "noise1e-2",
    "noise1e-1",
    "gaussian",
)


def make_input(name, n):
    if name == "hadamard":
        return hadamard(n)
    if name == "dft":
        return dft(n)
    if name == "gaussian":
        return np.random.default_rng(0).standard_normal((n, n))
    A = random_butterfly(n, random_state=0).toarray()
    if name.startswith("noise"):
        A = add_noise(A, float(name[len("noise") :]), random_state=1)
    return A


def permutation_of(name):
    return "bit-reversal" if name == "dft" else None


def dense_of(B):
    """Dense matrix of a ButterflyMatrix: its factors fused pairwise."""

    def fuse(factors):
        if len(factors) == 1:
            return factors[0]
        half = len(factors) // 2
        return fuse_values(fuse(factors[:half]), fuse(factors[half:]))

    F = fuse(list(B.factors)).reshape(B.padded_shape)
    if B.perm is not None:
        out = np.empty_like(F)
        out[:, B.perm] = F
        F = out
    return F[: B.shape[0], : B.shape[1]]


def relative_error(A, dense):
    squares = sum(
        np.linalg.norm(A[i : i + 512] - dense[i : i + 512]) ** 2
        for i in range(0, A.shape[0], 512)
    )
    return float(np.sqrt(squares) / np.linalg.norm(A))


def run_ours(A, name, **kwargs):
    return butterfly_factorize(A, permutation=permutation_of(name), **kwargs)


def run_faust(A, name):
    perm = "bitrev" if name == "dft" else None
    return pyfaust.fact.butterfly(A, type="bbtree", perm=perm)


def fitted_exponent(sizes, times):
    low = min(1024, sizes[-2])
    keep = [(n, t) for n, t in zip(sizes, times) if n >= low and np.isfinite(t)]
    if len(keep) < 2:
        return np.nan
    n, t = np.log(np.array(keep)).T
    return float(np.polyfit(n, t, 1)[0])


def main_table(sizes, faust_max):
    print("== butterfly_factorize vs pyfaust.fact.butterfly(type='bbtree') ==")
    header = (
        f"{'input':>10} {'N':>5} {'ours s':>8} {'faust s':>8} {'t-ratio':>8} "
        f"{'ours err':>9} {'faust err':>9} {'e-ratio':>8}"
    )
    print(header)
    exponents = {}
    for name in INPUTS:
        ours_t, faust_t = [], []
        for n in sizes:
            A = make_input(name, n)
            repeat = 3 if n < 2048 else 1
            t_ours, B = best_time(partial(run_ours, A, name), repeat)
            e_ours = relative_error(A, dense_of(B))
            t_faust = e_faust = np.nan
            if pyfaust is not None and n <= faust_max:
                t_faust, F = best_time(partial(run_faust, A, name), repeat)
                e_faust = relative_error(A, F.toarray())
            ours_t.append(t_ours)
            faust_t.append(t_faust)
            print(
                f"{name:>10} {n:>5} {t_ours:8.3f} {t_faust:8.3f} "
                f"{t_faust / t_ours:8.1f} {e_ours:9.2e} {e_faust:9.2e} "
                f"{e_ours / e_faust:8.2f}",
                flush=True,
            )
        exponents[name] = (
            fitted_exponent(sizes, ours_t),
            fitted_exponent(sizes, faust_t),
        )
    print("\nfitted exponent of time vs N (from N = 1024, or the last two sizes):")
    for name, (ours, faust) in exponents.items():
        print(f"{name:>10}  ours {ours:5.2f}  faust {faust:5.2f}")


def fdb_table(n):
    print(f"\n== fixed depth J and rank: ours vs pyfaust.fact.fdb, N = {n} ==")
    print(
        f"{'input':>10} {'J':>2} {'r':>2} {'ours s':>8} {'fdb s':>8} "
        f"{'t-ratio':>8} {'ours err':>9} {'fdb err':>9} {'ours nnz':>9} "
        f"{'fdb nnz':>9}"
    )
    for name in ("butterfly", "noise1e-2", "gaussian"):
        A = make_input(name, n)
        for n_factors, rank in ((2, 1), (3, 1), (3, 2)):
            kwargs = {"n_factors": n_factors, "rank": rank, "tree": "left"}
            t_ours, B = best_time(partial(run_ours, A, name, **kwargs), 3)
            e_ours = relative_error(A, dense_of(B))
            t_fdb = e_fdb = np.nan
            nnz_fdb = 0
            if pyfaust is not None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    fdb = partial(pyfaust.fact.fdb, A, n_factors=n_factors, rank=rank)
                    t_fdb, F = best_time(fdb, 3)
                e_fdb = relative_error(A, F.toarray())
                nnz_fdb = F.nnz_sum()
            print(
                f"{name:>10} {n_factors:>2} {rank:>2} {t_ours:8.3f} {t_fdb:8.3f} "
                f"{t_fdb / t_ours:8.1f} {e_ours:9.2e} {e_fdb:9.2e} {B.nnz:>9} "
                f"{nnz_fdb:>9}",
                flush=True,
            )


def _status(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_child(method, name, n, tree):
    """Run in a subprocess: print the peak extra memory of one factorization."""
    A = make_input(name, n)
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # reset VmHWM to the current RSS
    base = _status("VmRSS")
    if method == "ours":
        run_ours(A, name, tree=tree)
    else:
        perm = "bitrev" if name == "dft" else None
        pyfaust.fact.butterfly(A, type=tree, perm=perm)
    print((_status("VmHWM") - base) / A.nbytes)


def memory_table(n):
    print(f"\n== peak extra memory / input size, N = {n} (fresh subprocess) ==")
    print(f"{'input':>10} {'tree':>8} {'ours':>6} {'faust':>6}")
    trees = {"ours": ("balanced", "left"), "faust": ("bbtree", "right")}
    for name in ("gaussian", "dft"):
        for k in range(2):
            row = []
            for method in ("ours", "faust"):
                if method == "faust" and pyfaust is None:
                    row.append(np.nan)
                    continue
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--memory-child",
                        method,
                        name,
                        str(n),
                        trees[method][k],
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                row.append(float(out.stdout.split()[-1]))
            tree = "balanced" if k == 0 else "comb"
            print(f"{name:>10} {tree:>8} {row[0]:6.2f} {row[1]:6.2f}", flush=True)


def estimator_table(sizes):
    """``ButterflyFactorizer().fit(A)`` against ``butterfly_factorize(A)``."""
    print("\nestimator overhead (noise1e-1 inputs): fit / function, best of 5")
    print(f"{'N':>6} {'function':>9} {'fit':>9} {'ratio':>6}")
    for n in sizes:
        A = add_noise(random_butterfly(n, random_state=0).toarray(), 0.1)
        t_fun, _ = best_time(partial(butterfly_factorize, A), 5)
        t_fit, _ = best_time(partial(ButterflyFactorizer().fit, A), 5)
        print(f"{n:>6} {t_fun:9.4f} {t_fit:9.4f} {t_fit / t_fun:6.2f}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="N <= 1024 only")
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        help="only the main table, for these N (pyfaust up to 4096)",
    )
    parser.add_argument(
        "--estimator",
        action="store_true",
        help="only the estimator-overhead table (N = 1024, 2048)",
    )
    parser.add_argument("--memory-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        method, name, n, tree = args.memory_child
        memory_child(method, name, int(n), tree)
        return
    if args.estimator:
        estimator_table([1024, 2048])
        return
    if pyfaust is None:
        print("pyfaust not installed: its columns are NaN")
    if args.sizes:
        main_table(sorted(args.sizes), faust_max=4096)
    elif args.quick:
        main_table([256, 512, 1024], faust_max=1024)
        fdb_table(256)
        memory_table(1024)
    else:
        main_table([256, 512, 1024, 2048, 4096, 8192], faust_max=4096)
        fdb_table(1024)
        memory_table(4096)
        estimator_table([1024, 2048])


if __name__ == "__main__":
    main()
