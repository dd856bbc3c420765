"""Products with a classic butterfly: skbutterfly against dense, FFT and pyfaust.

For each size N and each input shape ((N,) and (N, 64)), one process times on
the same inputs:

- ``ours``: ``B @ x`` with ``B = random_butterfly(N)`` (classic, log2 N factors);
- ``dense``: ``B.toarray() @ x`` (only for N <= 2**14);
- ``fft``: ``scipy.fft.fft(x, axis=0)`` (the O(N log N) reference; a different
  operator, so no difference is reported);
- ``faust-csr``: ``pyfaust.Faust`` of the same factors as CSR matrices;
- ``faust-opt``: ``pyfaust.opt_butterfly_faust`` of that Faust.

Times are the best of repetitions taken in turns (round robin, so that the
load of a shared machine hits all methods alike); ``ratio`` is time / ours (above 1
means slower than ours); ``rel.diff`` is ``||y - y_ours|| / ||y_ours||``.
A last line per input gives the figures of the targets of issue 2: best
pyfaust / ours (target >= 2) and ours / fft (target <= 2 on (N, 64) inputs
for N >= 2**12).

Run with ``python benchmarks/bench_matvec.py`` (``--quick`` stops at 2**12).
Every method runs with one BLAS/OpenMP thread by default (ours is
single-threaded; on a shared machine, thread pools of the others can be slowed
down by orders of magnitude); ``--threads 0`` keeps the libraries' defaults.
"""

import argparse
import time

import numpy as np
import scipy.fft
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from skbutterfly.datasets import random_butterfly

try:
    import pyfaust
except ImportError:
    pyfaust = None


def best_times(methods, x, budget=1.0, rounds=5, burst=0.02):
    """Best wall time of one call ``func(x)`` of each method.

    The methods take turns (``rounds`` rounds, so that the load of a shared
    machine hits them alike); in each turn a method runs a burst of
    back-to-back calls lasting about ``burst`` seconds (thread pools stay
    awake), at most ``budget / rounds`` seconds and at least one call.
    """
    best = dict.fromkeys(methods, np.inf)
    calls = {}
    for name, func in methods.items():
        func(x)  # warm up: plans, caches
        start = time.perf_counter()
        func(x)
        first = time.perf_counter() - start
        calls[name] = int(max(1, min(burst, budget / rounds) // max(first, 1e-7)))
    for _ in range(rounds):
        for name, func in methods.items():
            for _ in range(calls[name]):
                start = time.perf_counter()
                func(x)
                best[name] = min(best[name], time.perf_counter() - start)
    return best


def run(sizes, n_columns):
    if pyfaust is None:
        print("pyfaust not installed: its rows are skipped")
    print(
        f"{'N':>6} {'input':>10} {'method':>10} {'time ms':>10} {'ratio':>7} "
        f"{'rel.diff':>9}"
    )
    rng = np.random.default_rng(0)
    for N in sizes:
        B = random_butterfly(N, random_state=0)
        methods = {"ours": lambda x, B=B: B @ x}
        if N <= 2**14:
            dense = B.toarray()
            methods["dense"] = lambda x, dense=dense: dense @ x
        methods["fft"] = lambda x: scipy.fft.fft(x, axis=0)
        if pyfaust is not None:
            csr = [sp.csr_matrix(M) for M in B.factors_sparse()]
            plain = pyfaust.Faust(csr)
            opt = pyfaust.opt_butterfly_faust(plain)
            methods["faust-csr"] = lambda x, F=plain: F @ x
            methods["faust-opt"] = lambda x, F=opt: F @ x
        for shape in [(N,), (N, n_columns)]:
            # pyfaust wants Fortran-ordered arrays; the others do not care.
            x = np.asfortranarray(rng.standard_normal(shape))
            y_ours = methods["ours"](x)
            times = best_times(methods, x)
            label = "x".join(str(s) for s in shape)
            for name, func in methods.items():
                if name == "fft":
                    diff = "-"
                else:
                    y = np.asarray(func(x)).reshape(y_ours.shape)
                    err = np.linalg.norm(y - y_ours) / np.linalg.norm(y_ours)
                    diff = f"{err:.1e}"
                t = times[name]
                print(
                    f"{N:>6} {label:>10} {name:>10} {t * 1e3:>10.3f} "
                    f"{t / times['ours']:>7.2f} {diff:>9}"
                )
            targets = [f"ours / fft = {times['ours'] / times['fft']:.2f}"]
            if pyfaust is not None:
                faust = min(times["faust-csr"], times["faust-opt"])
                targets.insert(0, f"best pyfaust / ours = {faust / times['ours']:.2f}")
            print(f"{'':>17} targets: {', '.join(targets)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N up to 2**12 only")
    parser.add_argument("--columns", type=int, default=64)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="BLAS/OpenMP threads of every method (0: the libraries' defaults)",
    )
    args = parser.parse_args()
    sizes = [2**10, 2**12] if args.quick else [2**10, 2**12, 2**14, 2**16]
    if args.threads:
        print(f"BLAS/OpenMP threads limited to {args.threads} (--threads)")
        with threadpool_limits(limits=args.threads):
            run(sizes, args.columns)
    else:
        run(sizes, args.columns)


if __name__ == "__main__":
    main()
