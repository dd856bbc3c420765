"""Speed-up of ``n_jobs=2`` over ``n_jobs=1``, and the cost of a dask cluster.

Tasks, all at N = 4096 (the same inputs for every run, in one process):

- ``factorize``: ``butterfly_factorize(A)`` of a noisy random butterfly
  (classic depth 12, balanced tree, orthonormalisation on);
- ``factorize J=2``: the same with ``n_factors=2`` (64 blocks of 64 x 64 at
  the root);
- ``quantize``: ``quantize_butterfly(B, 8)`` of a random classic butterfly
  (pairwise heuristic, exact rank-one method);
- ``quantize dfo``: the same with ``method="dfo"``.

``n_jobs=1`` runs every batch in one call; ``n_jobs=2`` cuts the batches of
the large steps in two chunks run by scikit-learn's ``Parallel`` on threads,
with BLAS limited to one thread inside. The ``same`` column says whether the
two results are bit-identical. With ``--dask``, a third column runs the
``n_jobs=None`` call under ``joblib.parallel_config(backend="dask")`` on a
loopback ``LocalCluster`` (2 workers x 1 thread, in-process).

Times are the best of ``--repeat`` runs (wall clock). The machine these
figures were taken on has 2 cores shared with other developers' test runs:
the load average is printed with the table, and the speed-ups are noisy.
Run ``python benchmarks/bench_parallel.py`` (about a minute) or with
``--quick`` (N = 1024).
"""

import argparse
import os
from functools import partial

import joblib
import numpy as np
from _timing import best_time

from skbutterfly import butterfly_factorize, quantize_butterfly
from skbutterfly.datasets import add_noise, random_butterfly


def same(a, b):
    return len(a.factors) == len(b.factors) and all(
        np.array_equal(x, y) for x, y in zip(a.factors, b.factors)
    )


def tasks(n):
    A = add_noise(random_butterfly(n, random_state=0).toarray(), 0.1, random_state=1)
    B = random_butterfly(n, random_state=2)
    return {
        "factorize": partial(butterfly_factorize, A),
        "factorize J=2": partial(butterfly_factorize, A, n_factors=2),
        "quantize": partial(quantize_butterfly, B, 8),
        "quantize dfo": partial(quantize_butterfly, B, 8, method="dfo"),
    }


def dask_client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=False,
        dashboard_address="127.0.0.1:0",
        worker_dashboard_address="127.0.0.1:0",
    )
    return cluster, Client(cluster)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 1024")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dask", action="store_true", help="add a dask column")
    args = parser.parse_args()
    n = 1024 if args.quick else 4096
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(
        f"N = {n}, best of {args.repeat}; {os.cpu_count()} CPUs, load average "
        f"{load} (shared machine: expect noise)"
    )
    client = None
    if args.dask:
        try:
            cluster, client = dask_client()
        except ImportError:
            print("dask.distributed not installed: no dask column")
    header = f"{'task':<15} {'n_jobs=1 s':>11} {'n_jobs=2 s':>11} {'speed-up':>9}"
    header += f" {'same':>5}" + (f" {'dask s':>8} {'same':>5}" if client else "")
    print(header)
    print("-" * len(header))
    for name, run in tasks(n).items():
        t1, r1 = best_time(partial(run, n_jobs=1), args.repeat)
        t2, r2 = best_time(partial(run, n_jobs=2), args.repeat)
        line = f"{name:<15} {t1:>11.3f} {t2:>11.3f} {t1 / t2:>9.2f} {same(r1, r2)!s:>5}"
        if client:
            with joblib.parallel_config(backend="dask"):
                td, rd = best_time(partial(run, n_jobs=None), args.repeat)
            line += f" {td:>8.3f} {same(r1, rd)!s:>5}"
        print(line, flush=True)
    if client:
        client.close()
        cluster.close()


if __name__ == "__main__":
    main()
