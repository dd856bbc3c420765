"""Out-of-core butterfly factorization: memmap and Dask input, Dask transforms.

Three measurements, each in a fresh subprocess (peak RSS is
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of that process, file pages
of a memory map included):

1. ``memmap``: a float32 ``N x N`` kernel matrix written to a ``.npy`` file
   row block by row block (never whole in memory), factorized from
   ``np.load(..., mmap_mode="r")``; then the same kernel at
   ``--memory-size`` loaded in memory and factorized, for comparison.
   Target (issue 16): ``N = 32768`` (4.3 GB) with peak RSS <= 1.5 GB.
2. ``dask``: a lazy ``N x N`` float64 kernel (``dask.array.map_blocks``)
   factorized on a ``LocalCluster`` (2 worker processes, 1 thread each),
   twice: lazy (each slab task generates its tiles), and after
   ``persist`` (the tiles held by the workers); against the in-memory
   factorization of the same matrix: relative difference of the operators
   (on 16 random vectors), times (lazy against generating and factorizing,
   held against factorizing), and the bytes of the arrays the slab tasks
   return to the client against the root split's two factors (what they
   compute) and the final factors. Targets: ``N = 16384``, difference
   <= 1e-12, time within 2x, volume <= 3x.
3. ``transform``: ``transform`` of a lazy ``rows x 1024`` Dask array by a
   fitted ``N = 1024`` butterfly, reduced chunk by chunk (threaded
   scheduler). Target: 10**7 rows with peak RSS <= 1 GB.

Files go to a temporary directory (``--dir``, default the system's) and are
removed. ``python benchmarks/bench_out_of_core.py`` runs small sizes in a
minute (``--working-memory 64`` scales the slab budget down with the
matrix); ``--full`` runs the issue's sizes (the default budget, 1024 MiB,
a quarter of the 4 GB matrix; about 10 minutes and 5 GB of disk on 2 cores);
single sizes can be set with ``--memmap-size`` and so on. Times come from a
shared machine.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap

COMMON = textwrap.dedent(
    """
    import json, resource, sys, time
    import numpy as np

    def kernel(r0, r1, c0, c1, n, dtype=np.float64):
        i = np.arange(r0, r1)
        x = ((i + 0.25 * np.sin(6 * np.pi * i / n)) / n)[:, None]
        y = (np.arange(c0, c1) / n)[None, :]
        return np.cos(2 * np.pi * n * x * y).astype(dtype)

    def peak_mib():
        unit = 1 if sys.platform == "darwin" else 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit / 2**20
    """
)

WRITE = COMMON + textwrap.dedent(
    """
    path, n = sys.argv[1], int(sys.argv[2])
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, n))
    step = max(1, 2**24 // n)
    for lo in range(0, n, step):
        out[lo : lo + step] = kernel(lo, min(n, lo + step), 0, n, n, np.float32)
        out.flush()
    del out
    print("{}")
    """
)

FACTORIZE = COMMON + textwrap.dedent(
    """
    from skbutterfly import butterfly_factorize
    path, mode = sys.argv[1], sys.argv[2]
    working_memory = None if sys.argv[3] == "None" else float(sys.argv[3])
    butterfly_factorize(np.ones((64, 64), np.float32))
    start = time.perf_counter()
    A = np.load(path, mmap_mode="r" if mode == "memmap" else None)
    B = butterfly_factorize(A, working_memory=working_memory)
    elapsed = time.perf_counter() - start
    print(json.dumps({"time": elapsed, "peak": peak_mib(), "nnz": B.nnz,
                      "input": A.nbytes / 2**20}))
    """
)

DASK = COMMON + textwrap.dedent(
    """
    import dask
    import dask.array as da
    from distributed import Client, LocalCluster, wait
    from skbutterfly import butterfly_factorize

    n = int(sys.argv[1])
    chunk = min(n, 1024)

    def tile(block_info=None):
        (r0, r1), (c0, c1) = block_info[None]["array-location"]
        return kernel(r0, r1, c0, c1, n)

    def nbytes(obj):
        if isinstance(obj, np.ndarray):
            return obj.nbytes
        if isinstance(obj, (tuple, list)):
            return sum(nbytes(o) for o in obj)
        return 8

    # What the slab tasks send back to the client: their results.
    from skbutterfly import _slabs
    received = [0]
    compute_on_workers = _slabs._compute_on_workers

    def counting(*args, **kwargs):
        out = compute_on_workers(*args, **kwargs)
        received[0] += nbytes(out)
        return out

    if __name__ == "__main__":
        K = da.map_blocks(tile, chunks=((chunk,) * (n // chunk),) * 2, dtype=float)
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          host="127.0.0.1", dashboard_address=None) as cluster, \\
                Client(cluster):
            butterfly_factorize(da.ones((64, 64), chunks=32))  # warm the workers
            _slabs._compute_on_workers = counting
            start = time.perf_counter()
            B_dask = butterfly_factorize(K)
            t_dask = time.perf_counter() - start
            received_lazy, received[0] = received[0], 0
            # The same matrix generated on the workers first (persisted).
            start = time.perf_counter()
            K_held = K.persist()
            wait(K_held)
            t_generate = time.perf_counter() - start
            start = time.perf_counter()
            B_held = butterfly_factorize(K_held)
            t_held = time.perf_counter() - start
            _slabs._compute_on_workers = compute_on_workers
            A = K_held.compute()
            del K_held
        start = time.perf_counter()
        B_memory = butterfly_factorize(A)
        t_memory = time.perf_counter() - start
        X = np.random.default_rng(0).standard_normal((n, 16))
        ref = B_memory @ X
        diff = max(np.linalg.norm(B @ X - ref) / np.linalg.norm(ref)
                   for B in (B_dask, B_held))
        factors = sum(K_.nbytes for K_ in B_dask.factors)
        # The two factors of the root split (what its slabs compute).
        from skbutterfly import architecture
        from skbutterfly._split import fused_range
        from skbutterfly._trees import split_order
        patterns = architecture((n, n)).patterns
        i = split_order("balanced", len(patterns))[0]
        last = len(patterns) - 1
        left, right = fused_range(patterns, 0, i), fused_range(patterns, i + 1, last)
        root = (left.nnz + right.nnz) * 8
        print(json.dumps({"dask": t_dask, "memory": t_memory, "held": t_held,
                          "generate": t_generate, "diff": diff,
                          "received": max(received_lazy, received[0]),
                          "factors": factors, "root": root}))
    """
)

TRANSFORM = COMMON + textwrap.dedent(
    """
    import dask
    import dask.array as da
    from skbutterfly import ButterflyFactorizer

    rows, chunk = int(sys.argv[1]), 4096
    est = ButterflyFactorizer().fit(kernel(0, 1024, 0, 1024, 1024))
    X = da.random.default_rng(0).standard_normal((rows, 1024), chunks=(chunk, 1024))
    start_peak = peak_mib()
    start = time.perf_counter()
    with dask.config.set(scheduler="threads", num_workers=2):
        total = float((est.transform(X) ** 2).sum().compute())
    elapsed = time.perf_counter() - start
    print(json.dumps({"time": elapsed, "peak": peak_mib(), "before": start_peak,
                      "total": total, "input": rows * 1024 * 8 / 2**20}))
    """
)


def run(code, *args):
    result = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True,
        text=True,
    )
    if result.returncode:
        sys.exit(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def bench_memmap(n_disk, n_memory, directory, working_memory):
    budget = "the default 1024" if working_memory is None else working_memory
    print(
        f"1. memmap: float32 N x N kernel in a .npy file ({directory}), "
        f"working_memory={budget} MiB"
    )
    print(
        f"   {'input':<8} {'N':>6} {'input MiB':>9} {'peak RSS MiB':>12} {'time s':>7}"
    )
    for mode, n in (("memmap", n_disk), ("memory", n_memory)):
        with tempfile.TemporaryDirectory(dir=directory) as tmp:
            path = os.path.join(tmp, "A.npy")
            run(WRITE, path, n)
            r = run(FACTORIZE, path, mode, working_memory)
        print(
            f"   {mode:<8} {n:>6} {r['input']:>9.0f} {r['peak']:>12.0f} "
            f"{r['time']:>7.1f}"
        )


def bench_dask(n):
    print(f"2. dask: lazy float64 kernel, N = {n}, LocalCluster 2 processes x 1 thread")
    r = run(DASK, n)
    total = r["memory"] + r["generate"]
    print(
        f"   lazy (tiles generated by the slab tasks): dask {r['dask']:.1f} s, "
        f"in memory {total:.1f} s to generate (on the 2 workers: "
        f"{r['generate']:.1f} s) and factorize: ratio {r['dask'] / total:.2f}"
    )
    print(
        f"   generated first (held by the workers): dask {r['held']:.1f} s, in "
        f"memory {r['memory']:.1f} s to factorize: ratio "
        f"{r['held'] / r['memory']:.2f}; operator difference {r['diff']:.1e}"
    )
    print(
        f"   returned to the client {r['received'] / 2**20:.1f} MiB: "
        f"x{r['received'] / r['root']:.2f} the root split's two factors "
        f"({r['root'] / 2**20:.1f} MiB), x{r['received'] / r['factors']:.2f} the "
        f"final factors ({r['factors'] / 2**20:.1f} MiB)"
    )


def bench_transform(rows):
    print(f"3. transform of a lazy {rows} x 1024 Dask array (chunks of 4096 rows)")
    r = run(TRANSFORM, rows)
    print(
        f"   input {r['input']:.0f} MiB, peak RSS {r['peak']:.0f} MiB "
        f"({r['before']:.0f} before), {r['time']:.1f} s"
    )


FULL = {"memmap_size": 32768, "memory_size": 16384, "dask_size": 16384}
FULL["transform_rows"] = 10**7


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--full", action="store_true", help="the issue's sizes (overrides the sizes)"
    )
    parser.add_argument("--memmap-size", type=int, default=8192)
    parser.add_argument("--memory-size", type=int, default=4096)
    parser.add_argument("--dask-size", type=int, default=4096)
    parser.add_argument("--transform-rows", type=int, default=10**5)
    parser.add_argument("--dir", default=None, help="directory for the .npy files")
    parser.add_argument(
        "--working-memory",
        type=float,
        default=None,
        help="MiB per slab (memmap); default: 1024 with --full, else 64",
    )
    parser.add_argument("--only", choices=("memmap", "dask", "transform"), default=None)
    args = parser.parse_args()
    if args.full:
        vars(args).update(FULL)
    if args.working_memory is None and not args.full:
        args.working_memory = 64.0
    directory = args.dir or tempfile.gettempdir()
    if args.only in (None, "memmap"):
        bench_memmap(args.memmap_size, args.memory_size, directory, args.working_memory)
    if args.only in (None, "dask"):
        bench_dask(args.dask_size)
    if args.only in (None, "transform"):
        bench_transform(args.transform_rows)


if __name__ == "__main__":
    main()
