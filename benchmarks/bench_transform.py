"""``FixedSupportFactorizer.transform`` against a per-call ``lstsq`` and PCA.

A ``FixedSupportFactorizer`` with ``n_components`` full-support components is
fitted to an ``n x n`` matrix of rank ``n_components`` plus 1 % noise, then
``transform`` codes ``--rows`` new rows. Three routes, on the same rows, with
their errors against ``lstsq``:

* ``lstsq per call``: ``np.linalg.lstsq(H.T, X.T)`` at every call (what
  ``transform`` did before it precomputed its solver);
* ``transform``: the estimator (``X @ pinv(H)``, the pseudo-inverse computed at
  fit);
* ``PCA.transform``: scikit-learn's ``PCA(n_components)`` fitted to the same
  matrix (a projection, the natural peer).

Run: ``python benchmarks/bench_transform.py [--rows 90000] [--n 256]
[--components 32] [--repeat 3]``.
"""

import argparse

import numpy as np
from _timing import best_time
from sklearn.decomposition import PCA

from skbutterfly import FixedSupportFactorizer


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=90_000)
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--components", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    k = args.components
    A = rng.standard_normal((args.n, k)) @ rng.standard_normal((k, args.n))
    A += 0.01 * np.linalg.norm(A) / args.n * rng.standard_normal(A.shape)
    X = rng.standard_normal((args.rows, args.n))
    est = FixedSupportFactorizer(n_components=args.components).fit(A)
    pca = PCA(args.components).fit(A)
    H = est.components_
    routes = {
        "lstsq per call": lambda: np.linalg.lstsq(H.T, X.T, rcond=None)[0].T,
        "transform": lambda: est.transform(X),
        "PCA.transform": lambda: pca.transform(X),
    }
    times = {name: best_time(func, args.repeat) for name, func in routes.items()}
    reference = times["lstsq per call"][1]
    print(
        f"{args.rows} rows x {args.n} features, {args.components} components, "
        f"best of {args.repeat}"
    )
    print(f"{'route':<16}{'time ms':>10}{'vs lstsq':>10}{'max |diff|':>12}")
    for name, (seconds, codes) in times.items():
        diff = np.abs(codes - reference).max()
        diff = "-" if name == "PCA.transform" else f"{diff:.1e}"
        ratio = times["lstsq per call"][0] / seconds
        print(f"{name:<16}{seconds * 1e3:>10.1f}{ratio:>9.1f}x{diff:>12}")


if __name__ == "__main__":
    main()
