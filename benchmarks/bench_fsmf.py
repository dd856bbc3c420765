"""Fixed-support factorization: our exact solver against pyfaust's palm4msa.

Two problems, the same supports for both solvers:

* ``hadamard``: the Hadamard matrix of size N (default 1024) with
  butterfly-derived supports: left = the first butterfly factor's support,
  right = the product of the remaining factors' supports (Zheng, Riccietti and
  Gribonval, arXiv:2110.01235,
  a "disjoint" instance, exactly factorizable);
* ``complete-classes``: a random Gaussian matrix with incomplete classes
  (rank-``p`` blocks on a grid of rectangles) whose full rows are covered by
  complete classes (condition (C), Le et al., arXiv:2112.00386).

Ours: ``fixed_support_factorize`` (analysis included), best of ``--repeat``
runs. pyfaust: ``pyfaust.fact.palm4msa`` with ``supp`` constraints (2016
backend, default initialisation), ``--palm-iters`` iterations, one run. Wall
and process CPU times (all threads) are printed; on a shared machine wall
times are noisy. The ratio is the palm4msa time over ours.

Run: ``python benchmarks/bench_fsmf.py [--n 1024] [--palm-iters 5 50]``.
"""

import argparse
import time
import warnings

import numpy as np

from skbutterfly import architecture, fixed_support_factorize, fuse_patterns
from skbutterfly.datasets import hadamard


def hadamard_problem(n):
    arch = architecture((n, n))
    right = arch[1]
    for pattern in arch[2:]:
        right = fuse_patterns(right, pattern)
    return hadamard(n), arch[0].support(), right.support()


def complete_class_problem(n_groups, group, rank, n_cover, seed=0):
    """Grid rectangles (a, a) and (a, a+1) of rank ``rank``; complete classes
    cover the first ``n_cover`` rows of each row group across both rectangles."""
    rng = np.random.default_rng(seed)
    m = n = n_groups * group
    row_group = np.arange(m) // group
    col_group = np.arange(n) // group
    left, right = [], []
    for a in range(n_groups):
        rows = row_group == a
        for b in (a, (a + 1) % n_groups):
            left += [rows] * rank
            right += [col_group == b] * rank
        cover = rows & (np.arange(m) % group < n_cover)
        cols = (col_group == a) | (col_group == (a + 1) % n_groups)
        left += [cover] * n_cover
        right += [cols] * n_cover
    return rng.standard_normal((m, n)), np.stack(left, axis=1), np.stack(right)


def timed(func, *args):
    """Return ``(wall seconds, process CPU seconds, result)``."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = func(*args)
    return time.perf_counter() - wall, time.process_time() - cpu, result


def run_ours(A, S_W, S_H, repeat):
    runs = [timed(fixed_support_factorize, A, S_W, S_H) for _ in range(repeat)]
    wall = min(run[0] for run in runs)
    cpu = min(run[1] for run in runs)
    return wall, cpu, runs[-1][2][2]


def run_palm(A, S_W, S_H, n_iter):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pyfaust.fact import palm4msa
            from pyfaust.factparams import (
                ConstraintList,
                ParamsPalm4MSA,
                StoppingCriterion,
            )
    except ImportError:
        return None
    m, r = S_W.shape
    n = S_H.shape[1]
    constraints = ConstraintList(
        "supp", S_W.astype(float), m, r, "supp", S_H.astype(float), r, n
    )
    params = ParamsPalm4MSA(constraints, StoppingCriterion(num_its=n_iter))
    wall, cpu, faust = timed(palm4msa, A, params)
    error = np.linalg.norm(A - faust.toarray()) / np.linalg.norm(A)
    return wall, cpu, error


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1024, help="Hadamard size")
    parser.add_argument(
        "--palm-iters",
        type=int,
        nargs=2,
        default=(5, 50),
        help="palm4msa iterations for the two problems",
    )
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    problems = {
        f"hadamard {args.n}": hadamard_problem(args.n),
        "complete-classes 512": complete_class_problem(8, 64, 4, 2),
    }
    header = (
        f"{'problem':<22} {'r':>5} {'ours wall/cpu (s)':>17} {'ours rel.err':>12} "
        f"{'cert.':>5} {'palm wall/cpu (s)':>17} {'palm rel.err':>12} "
        f"{'ratio wall/cpu':>14}"
    )
    print(header)
    print("-" * len(header))
    for (name, (A, S_W, S_H)), n_iter in zip(problems.items(), args.palm_iters):
        wall, cpu, info = run_ours(A, S_W, S_H, args.repeat)
        palm = run_palm(A, S_W, S_H, n_iter)
        if palm is None:
            palm_cols = "pyfaust not installed"
        else:
            palm_cols = (
                f"{palm[0]:>8.3f}/{palm[1]:<8.3f} {palm[2]:>12.5e} "
                f"{palm[0] / wall:>7.0f}x/{palm[1] / cpu:.0f}x"
            )
        print(
            f"{name:<22} {S_W.shape[1]:>5} {wall:>8.3f}/{cpu:<8.3f} "
            f"{info.relative_error:>12.5e} {info.certified_optimal!s:>5} {palm_cols}"
        )
        if info.optimal_error is not None:
            optimum = info.optimal_error / np.linalg.norm(A)
            print(
                f"{'':<22} certified optimum (relative): {optimum:.2e}; "
                f"palm4msa iterations: {n_iter}"
            )


if __name__ == "__main__":
    main()
