"""Peak memory of butterfly factorizations at N = 4096, float64 against float32.

Every row runs in a fresh subprocess: it builds the input (one ``N x N``
Gaussian array, no temporaries), runs the call once on a small matrix (so
that imports and code paths are warm), records the peak resident size
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``), runs the call on the input
and prints the growth of the peak: the memory the call needed on top of its
input. ``x input`` is that growth as a multiple of the input's bytes.

Calls: ``butterfly_factorize`` with the defaults (classic depth, balanced
tree), with ``n_factors=2``, with block rank 2, with ``n_jobs=2``, and
``ButterflyFactorizer().fit`` (which also measures the reconstruction error).

Run ``python benchmarks/bench_memory.py`` (about a minute) or with
``--size 1024``. Timings in the last column come from a shared machine.
"""

import argparse
import json
import subprocess
import sys
import textwrap

CALLS = {
    "butterfly_factorize": "butterfly_factorize(A)",
    "n_factors=2": "butterfly_factorize(A, n_factors=2)",
    "rank=2": "butterfly_factorize(A, rank=2)",
    "n_jobs=2": "butterfly_factorize(A, n_jobs=2)",
    "ButterflyFactorizer.fit": "ButterflyFactorizer().fit(A)",
}

CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    import numpy as np
    from skbutterfly import ButterflyFactorizer, butterfly_factorize

    n, dtype, call = int(sys.argv[1]), np.dtype(sys.argv[2]), sys.argv[3]
    A = np.ones((64, 64), dtype)
    eval(call)
    A = np.random.default_rng(0).standard_normal((n, n), dtype=dtype)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    eval(call)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    unit = 1 if sys.platform == "darwin" else 1024
    print(json.dumps({"input": A.nbytes, "extra": (after - before) * unit,
                      "time": elapsed}))
    """
)


def measure(n, dtype, call):
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(n), dtype, call],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    args = parser.parse_args()
    n = args.size
    header = (
        f"{'call':<24} {'dtype':<8} {'input MiB':>9} {'peak growth MiB':>15} "
        f"{'x input':>8} {'f32/f64':>8} {'time s':>7}"
    )
    print(f"N = {n}; peak growth of ru_maxrss in a fresh subprocess per row")
    print(header)
    print("-" * len(header))
    for name, call in CALLS.items():
        extra64 = None
        for dtype in ("float64", "float32"):
            r = measure(n, dtype, call)
            ratio = "" if extra64 is None else f"{r['extra'] / extra64:.2f}"
            extra64 = r["extra"] if extra64 is None else extra64
            print(
                f"{name:<24} {dtype:<8} {r['input'] / 2**20:>9.0f} "
                f"{r['extra'] / 2**20:>15.0f} {r['extra'] / r['input']:>8.2f} "
                f"{ratio:>8} {r['time']:>7.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
