"""Sparse factorization with unknown supports: ours against pyfaust, side by side.

Problems (the same matrix, constraints and iteration budget for both):

* ``hadamard``: the Hadamard matrix of size N with log2(N) factors of 2
  nonzeros per row and column (``splincol``), hierarchical strategy. pyfaust:
  ``hierarchical(H, "hadamard")`` (its ``ParamsHierarchicalWHT``, 30
  iterations per run, residuals ``splincol``). Ours:
  ``sparse_factorize(H, [("rowcol", 2)] * L, max_iter=30)`` with its
  default residuals (the intersection rule ``rowcol_and``).
* ``sparse-product``: a product of 3 random N x N factors with 4 nonzeros per
  row and column (each a sum of 4 random permutation matrices with Gaussian
  values), 3 factors ``splincol`` 4, residual ``splincol`` 16, hierarchical.
* ``gaussian``: an m x n Gaussian matrix, 3 factors ``splincol`` k with
  ``k = ceil(min(m, n) ** (1/3))``, PALM (``palm4msa``) and hierarchical.
* ``real``: real data bundled with scikit-learn, the same way:
  ``digits`` (the 1797 x 64 images, k = 4) and ``digits-cov`` (their 64 x 64
  covariance, k = 4). One matrix is one draw of a non-convex problem whose
  result depends on the path: ``--resamples B`` also runs both on ``B``
  bootstrap draws of the images (and their covariances) and prints in how
  many ours is at most pyfaust's error, the mean errors and nonzeros, and
  the median ratio of the process CPU times.

Both run in this process with BLAS limited to one thread (``threadpoolctl``;
pyfaust's own C++ threads are limited by ``OMP_NUM_THREADS=1`` only, so set
it for one-thread ratios). Times are wall seconds of one run;
on a shared machine wall times are noisy, and process CPU times (all
threads) are printed beside them. "wall x" and "cpu x" are pyfaust's times
over ours.
pyfaust (a benchmark extra, ``pip install pyfaust``) is skipped when missing.

With ``--faust-timeout T``, pyfaust's Hadamard runs in a subprocess killed
after ``max(T, 12 x ours)`` wall seconds, beyond the 10x target either way; a
killed run prints "did not finish in T s" with the lower bounds of the ratios
and the CPU time the subprocess used.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_sparse.py [--hadamard 64 256
1024] [--sparse 128] [--gaussian 256x256 1024x512] [--real digits digits-cov]
[--iters 30] [--resamples 10] [--faust-max-hadamard 256] [--faust-timeout 400]``.
"""

import argparse
import multiprocessing
import resource
import time
import warnings
from math import ceil

import numpy as np
from threadpoolctl import threadpool_limits

from skbutterfly import sparse_factorize
from skbutterfly.datasets import hadamard


def _random_sparse(rng, n, k):
    S = np.zeros((n, n))
    for _ in range(k):
        S[np.arange(n), rng.permutation(n)] += rng.standard_normal(n)
    return S


def _relative(A, B):
    return np.linalg.norm(A - B) / np.linalg.norm(A)


def _timed(func):
    """``((wall s, process CPU s of all threads), result)``."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = func()
    return (time.perf_counter() - wall, time.process_time() - cpu), out


def ours(A, constraints, strategy, iters, residuals=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wall, (P, _) = _timed(
            lambda: sparse_factorize(
                A,
                constraints,
                strategy=strategy,
                max_iter=iters,
                residual_constraints=residuals,
            )
        )
    return wall, _relative(A, P.toarray()), P.nnz


def _pyfaust():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pyfaust.fact
            import pyfaust.factparams
    except ImportError:
        return None
    return pyfaust


def theirs(A, spec, strategy, iters, residual_spec=None):
    """pyfaust with ``spec`` = [(name, k)] per factor; ``None`` when missing."""
    pyfaust = _pyfaust()
    if pyfaust is None:
        return None
    fp = pyfaust.factparams
    m, n = A.shape
    d = min(m, n)
    shapes = [(m, d)] + [(d, d)] * (len(spec) - 2) + [(d, n)]
    cons = [fp.ConstraintInt(name, s[0], s[1], k) for (name, k), s in zip(spec, shapes)]
    stop = fp.StoppingCriterion(num_its=iters)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if strategy == "palm":
            params = fp.ParamsPalm4MSA(cons, stop, is_update_way_R2L=True)
            wall, F = _timed(lambda: pyfaust.fact.palm4msa(A, params))
        else:
            res = [
                fp.ConstraintInt(name, d, n, k)
                for name, k in [*residual_spec, spec[-1]]
            ]
            params = fp.ParamsHierarchical(
                cons[:-1], res, stop, stop, is_update_way_R2L=True
            )
            wall, F = _timed(lambda: pyfaust.fact.hierarchical(A, params))
    return wall, _relative(A, F.toarray()), F.nnz_sum()


def theirs_hadamard(A):
    pyfaust = _pyfaust()
    if pyfaust is None:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wall, F = _timed(lambda: pyfaust.fact.hierarchical(A, "hadamard"))
    return wall, _relative(A, F.toarray()), F.nnz_sum()


def _faust_child(conn, N):
    with threadpool_limits(limits=1, user_api="blas"):
        conn.send(theirs_hadamard(hadamard(N)))


def theirs_hadamard_within(N, timeout):
    """``theirs_hadamard`` in a subprocess killed after ``timeout`` s.

    Returns ``(finished, result, cpu)``: ``cpu`` the CPU seconds the
    subprocess used (all threads, its start included).
    """
    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = ctx.Process(target=_faust_child, args=(sender, N))
    proc.start()
    finished = receiver.poll(timeout)
    result = receiver.recv() if finished else None
    if proc.is_alive():
        proc.kill()
    proc.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return finished, result, cpu


def _real(name, resample=None):
    """A real-data matrix; ``resample``: seed of a bootstrap draw of the samples."""
    from sklearn.datasets import load_digits

    X = load_digits().data
    if resample is not None:
        X = X[np.random.default_rng(resample).integers(0, len(X), len(X))]
    if name == "digits":
        return X
    if name == "digits-cov":
        return np.cov(X, rowvar=False)
    raise ValueError(f"unknown real matrix {name!r}: 'digits' or 'digits-cov'.")


def resampled(names, count, iters):
    """Ours against pyfaust on ``count`` bootstrap draws of each real matrix."""
    if _pyfaust() is None:
        return
    print(
        f"\n{'bootstrap draws':<22} {'strategy':<12} {'ours <= pyfaust':>15} "
        f"{'mean error':>10} {'pyfaust':>8} {'nnz':>7} {'pyfaust':>7} {'cpu x':>6}"
    )
    for name in names:
        for strategy in ("palm", "hierarchical"):
            runs = []
            for draw in range(count):
                A = _real(name, resample=draw)
                spec, res = [("splincol", 4)] * 3, [("splincol", 16)]
                (_, c), e, nnz = ours(A, spec, strategy, iters, residuals=res)
                (_, c2), e2, nnz2 = theirs(A, spec, strategy, iters, res)
                runs.append((e, e2, nnz, nnz2, c2 / c))
            e, e2, nnz, nnz2, ratio = np.array(runs).T
            print(
                f"{name:<22} {strategy:<12} {f'{np.sum(e <= e2)} of {count}':>15} "
                f"{e.mean():10.4f} {e2.mean():8.4f} {nnz.mean():7.0f} "
                f"{nnz2.mean():7.0f} {np.median(ratio):6.1f}",
                flush=True,
            )


def row(problem, strategy, mine, other):
    (t, c), e, nnz = mine
    line = f"{problem:<22} {strategy:<12} {t:7.2f} {c:7.2f} {e:9.2e} {nnz:7d}"
    if other is None:
        return line + "   (pyfaust not installed or skipped)"
    (t2, c2), e2, nnz2 = other
    return line + (
        f" {t2:7.2f} {c2:7.2f} {e2:9.2e} {nnz2:7d} {t2 / t:6.1f} {c2 / c:6.1f}"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hadamard", type=int, nargs="*", default=[64, 256])
    parser.add_argument("--sparse", type=int, nargs="*", default=[128])
    parser.add_argument("--gaussian", nargs="*", default=["256x256"])
    parser.add_argument("--real", nargs="*", default=["digits", "digits-cov"])
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument(
        "--resamples",
        type=int,
        default=0,
        help="also compare on this many bootstrap draws of each real matrix",
    )
    parser.add_argument(
        "--faust-max-hadamard",
        type=int,
        default=256,
        help="largest Hadamard size given to pyfaust (its time grows fast)",
    )
    parser.add_argument(
        "--faust-timeout",
        type=float,
        default=None,
        help="run pyfaust's Hadamard in a subprocess killed after max(T, 12 x ours) s",
    )
    args = parser.parse_args()
    print(
        f"{'problem':<22} {'strategy':<12} {'wall':>7} {'cpu':>7} {'error':>9} "
        f"{'nnz':>7} {'faust':>7} {'f cpu':>7} {'f error':>9} {'f nnz':>7} "
        f"{'wall x':>6} {'cpu x':>6}"
    )
    with threadpool_limits(limits=1, user_api="blas"):
        for N in args.hadamard:
            A = hadamard(N)
            L = int(np.log2(N))
            mine = ours(A, [("rowcol", 2)] * L, "hierarchical", args.iters)
            label = f"hadamard {N}"
            if N > args.faust_max_hadamard:
                print(row(label, "hierarchical", mine, None), flush=True)
            elif args.faust_timeout is None:
                print(row(label, "hierarchical", mine, theirs_hadamard(A)), flush=True)
            else:
                (t, c), _, _ = mine
                limit = max(args.faust_timeout, 12 * t)
                done, other, cpu = theirs_hadamard_within(N, limit)
                line = row(label, "hierarchical", mine, other)
                if not done:
                    line = row(label, "hierarchical", mine, None).split("   (")[0] + (
                        f"   pyfaust did not finish in {limit:.0f} s (>= "
                        f"{limit / t:.1f}x wall); its CPU {cpu:.0f} s (>= "
                        f"{cpu / c:.1f}x)"
                    )
                print(line, flush=True)
        rng = np.random.default_rng(0)
        for N in args.sparse:
            A = _random_sparse(rng, N, 4) @ _random_sparse(rng, N, 4)
            A = A @ _random_sparse(rng, N, 4)
            spec, res = [("splincol", 4)] * 3, [("splincol", 16)]
            mine = ours(A, spec, "hierarchical", args.iters, residuals=res)
            other = theirs(A, spec, "hierarchical", args.iters, res)
            print(row(f"sparse-product {N}", "hierarchical", mine, other), flush=True)
        matrices = []
        for shape in args.gaussian:
            m, n = (int(s) for s in shape.split("x"))
            matrices.append((f"gaussian {m}x{n}", rng.standard_normal((m, n))))
        matrices += [(name, _real(name)) for name in args.real]
        for label, A in matrices:
            k = ceil(round(min(A.shape) ** (1 / 3), 9))
            spec = [("splincol", k)] * 3
            for strategy in ("palm", "hierarchical"):
                res = [("splincol", k * k)]
                mine = ours(A, spec, strategy, args.iters, residuals=res)
                other = theirs(A, spec, strategy, args.iters, res)
                print(row(f"{label} k={k}", strategy, mine, other), flush=True)
        if args.resamples:
            resampled(args.real, args.resamples, args.iters)


if __name__ == "__main__":
    main()
