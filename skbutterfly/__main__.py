"""Command line: ``python -m skbutterfly demo`` (also installed as ``skbutterfly``)."""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import argparse
import sys
import time

import numpy as np


def _demo(args):
    from skbutterfly.datasets import random_butterfly

    n = args.size
    print(
        f"Random butterfly of size {n} (classic architecture), applied to "
        f"{args.columns} columns"
    )
    B = random_butterfly(n, random_state=0)
    X = np.random.default_rng(0).standard_normal((n, args.columns))
    dense = B.toarray()
    start = time.perf_counter()
    fast = B @ X
    t_fast = time.perf_counter() - start
    start = time.perf_counter()
    ref = dense @ X
    t_dense = time.perf_counter() - start
    err = np.linalg.norm(fast - ref) / np.linalg.norm(ref)
    print(f"  factors: {B.n_factors}, stored values: {B.nnz} (dense: {n * n})")
    print(f"  relative difference to the dense product: {err:.2e}")
    print(f"  time: butterfly {t_fast * 1e3:.2f} ms, dense {t_dense * 1e3:.2f} ms")
    return 0 if err < 1e-10 else 1


def main(argv=None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="skbutterfly", description="Sparse and butterfly factorizations."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="build, apply and check a butterfly")
    demo.add_argument("--size", type=int, default=1024)
    demo.add_argument("--columns", type=int, default=64)
    args = parser.parse_args(argv)
    return _demo(args)


if __name__ == "__main__":
    sys.exit(main())
