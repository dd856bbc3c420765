"""Command line: ``python -m skbutterfly`` (also installed as ``skbutterfly``).

Commands:

- ``demo``: factorize the DFT and a noisy random butterfly, quantize them to
  bfloat16, and print a table of errors, storage and product speed against
  the dense matrix;
- ``factorize INPUT.npy --out OUT.npz [options]``: fit a butterfly to a matrix
  stored with ``numpy.save`` and write it with :meth:`ButterflyMatrix.save`;
- ``info FILE.npz``: describe a saved butterfly.

Errors (unreadable files, bad options) print one line on stderr and exit with
a non-zero status: 2 for bad options, 1 for everything else.
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import argparse
import os
import sys
import time

import numpy as np
from sklearn.frozen import FrozenEstimator
from threadpoolctl import threadpool_limits

from skbutterfly._butterfly_factorizer import ButterflyFactorizer
from skbutterfly._constants import TREES
from skbutterfly._formats import native_bits
from skbutterfly._io import load
from skbutterfly._permutations import bit_reversal_permutation, standard_permutations
from skbutterfly._quantized_butterfly import QuantizedButterfly
from skbutterfly._validation import check_matrix
from skbutterfly.datasets import add_noise, dft, random_butterfly
from skbutterfly.model_selection import neg_storage_bits

# Inputs with at least this many entries get the factorizer's own progress output.
_LARGE_INPUT = 2**22


class _CommandError(Exception):
    """A user error: reported as one line, exit status 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # One line, with the same prefix as the commands' own errors.
        self.exit(2, f"skbutterfly: error: {message} (see '{self.prog} --help')\n")


def _progress(message):
    print(message, flush=True)


def _best_time(func, repeat=5):
    """Smallest wall-clock time of ``repeat`` calls, in seconds."""
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best


def _timed_fit(estimator, A, label):
    _progress(f"  {label} ...")
    start = time.perf_counter()
    estimator.fit(A)
    elapsed = time.perf_counter() - start
    _progress(f"  {label}: done in {elapsed:.2f} s")
    return estimator


def _precision(value):
    """``--precision``: an int number of significand bits, or a format name."""
    return int(value) if value.lstrip("-").isdigit() else value


def _significand_bits(values):
    """Fewest significand bits (leading bit included) holding every value exactly."""
    values = np.asarray(values)
    if values.dtype.kind == "c":
        values = np.concatenate([values.real.ravel(), values.imag.ravel()])
    values = values.ravel().astype(np.float64)
    values = values[values != 0]
    if values.size == 0:
        return 0
    mantissa, _ = np.frexp(np.abs(values))
    integers = (mantissa * 2.0**53).astype(np.int64)
    trailing_zeros = np.log2(integers & -integers).astype(np.int64)
    return int(53 - trailing_zeros.min())


# -- demo ------------------------------------------------------------------


def _demo_rows(name, A, estimator, precision, X):
    """Fit, quantize and time one matrix; return the table rows."""
    n_samples, n_features = A.shape
    fitted = _timed_fit(estimator, A, f"factorizing {name}")
    # The optimal quantization is for real factors; complex ones are rounded.
    heuristic = "rtn" if A.dtype.kind == "c" else "pairwise"
    quantized = _timed_fit(
        QuantizedButterfly(
            FrozenEstimator(fitted), precision=precision, heuristic=heuristic
        ),
        A,
        f"quantizing {name} to {precision} ({heuristic})",
    )
    _progress(f"  timing products with {X.shape[1]} columns ...")
    X = X.astype(A.dtype)
    label = f"+ {precision}{'*' if heuristic == 'rtn' else ''}"
    models = (("butterfly", fitted), (label, quantized))
    # One BLAS thread for both sides: on a shared machine a multithreaded
    # dense product can be slowed down by orders of magnitude.
    with threadpool_limits(limits=1, user_api="blas"):
        t_dense = _best_time(lambda: A @ X)
        times = [_best_time(lambda B=m.butterfly_: B @ X) for _, m in models]
    dense_bits = native_bits(n_samples * n_features, A.dtype)
    rows = [(name, "dense", "-", 0.0, dense_bits, t_dense, t_dense)]
    for (label, model), seconds in zip(models, times):
        rows.append(
            (
                "",
                label,
                str(model.butterfly_.n_factors),
                float(model.relative_error_),
                -neg_storage_bits(model),
                seconds,
                t_dense,
            )
        )
    return rows, fitted.relative_error_


def _print_table(rows):
    header = (
        f"{'matrix':<22}{'model':<12}{'J':>3}{'rel. error':>12}"
        f"{'storage KiB':>13}{'vs dense':>10}{'product ms':>12}{'speed-up':>10}"
    )
    print(header)
    print("-" * len(header))
    dense_bits = None
    for name, model, J, error, bits, seconds, t_dense in rows:
        if model == "dense":
            dense_bits = bits
        print(
            f"{name:<22}{model:<12}{J:>3}"
            f"{'-' if model == 'dense' else f'{error:.2e}':>12}"
            f"{bits / 8192:>13.1f}{bits / dense_bits:>10.3f}"
            f"{seconds * 1e3:>12.3f}{t_dense / seconds:>9.1f}x"
        )


def _demo(args):
    n = args.size
    if n < 2 or n & (n - 1):
        raise _CommandError(f"--size must be a power of two >= 2, got {n}.")
    if args.columns < 1:
        raise _CommandError(f"--columns must be >= 1, got {args.columns}.")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, args.columns))
    print(
        f"skbutterfly demo: N = {n}, quantized to {args.precision}, products "
        f"with {args.columns} columns (best of 5, one BLAS thread; timings "
        "depend on the machine and its load)."
    )
    _progress(f"[1/2] DFT of size {n} (complex), bit-reversal permutation")
    dft_rows, dft_error = _demo_rows(
        f"DFT {n}",
        dft(n),
        ButterflyFactorizer(permutation="bit-reversal"),
        args.precision,
        X,
    )
    _progress(f"[2/2] random butterfly of size {n} plus {args.noise:g} relative noise")
    A = add_noise(
        random_butterfly(n, random_state=0).toarray(), args.noise, random_state=1
    )
    noisy_rows, _ = _demo_rows(
        f"noisy butterfly {n}", A, ButterflyFactorizer(), args.precision, X
    )
    print()
    _print_table(dft_rows + noisy_rows)
    print(
        "\nrel. error: ||A - B||_F / ||A||_F.  storage: stored values x bits per"
        " value\n(in the target format once quantized).  speed-up: dense product"
        " time / butterfly product time.\n* complex factors: rounded to nearest"
        " (the optimal quantization is implemented for real factors)."
    )
    if dft_error > 1e-8:
        print(f"error: the DFT was not recovered (error {dft_error:.2e})")
        return 1
    return 0


# -- factorize -------------------------------------------------------------


def _read_matrix(path):
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise _CommandError(f"cannot read {path!r}: no such file.") from None
    except IsADirectoryError:
        raise _CommandError(f"cannot read {path!r}: it is a directory.") from None
    except (OSError, ValueError, EOFError) as exc:
        raise _CommandError(
            f"cannot read {path!r}: not a .npy file holding a numeric array ({exc})."
        ) from None
    if not isinstance(data, np.ndarray):
        data.close()
        raise _CommandError(
            f"cannot read {path!r}: expected a .npy file holding one 2-D array "
            "(numpy.save), got an .npz archive."
        )
    try:
        return check_matrix(data, name=f"the array in {path!r}")
    except (TypeError, ValueError) as exc:
        raise _CommandError(str(exc)) from None


def _read_permutation(path):
    try:
        perm = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise _CommandError(f"cannot read permutation {path!r}: {exc}") from None
    if not isinstance(perm, np.ndarray):
        perm.close()
        raise _CommandError(f"cannot read permutation {path!r}: not a .npy array.")
    return perm


def _factorize(args):
    A = _read_matrix(args.input)
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir):
        raise _CommandError(f"cannot write {args.out!r}: no directory {out_dir!r}.")
    permutation = args.permutation
    if permutation == "none":
        permutation = None
    elif permutation.endswith(".npy"):
        permutation = _read_permutation(permutation)
    m, n = A.shape
    print(f"input: {args.input}, n_samples={m}, n_features={n}, dtype={A.dtype}")
    estimator = ButterflyFactorizer(
        n_factors=args.n_factors,
        rank=args.rank,
        tree=args.tree,
        permutation=permutation,
        n_jobs=args.n_jobs,
        verbose=int(A.size >= _LARGE_INPUT),
    )
    try:
        _timed_fit(estimator, A, "factorizing")
        model = estimator
        if args.precision is not None:
            # The optimal quantization is for real factors; complex ones are
            # rounded to nearest.
            heuristic = "rtn" if A.dtype.kind == "c" else "pairwise"
            model = _timed_fit(
                QuantizedButterfly(
                    FrozenEstimator(estimator),
                    precision=args.precision,
                    heuristic=heuristic,
                ),
                A,
                f"quantizing to {args.precision} ({heuristic})",
            )
    except (TypeError, ValueError) as exc:
        raise _CommandError(str(exc).splitlines()[0]) from None
    B = model.butterfly_
    dense_bits = native_bits(m * n, A.dtype)
    bits = -neg_storage_bits(model)
    print(f"factors: {B.n_factors}, patterns: {[tuple(p) for p in B.patterns]}")
    if args.precision is not None:
        print(f"relative error before quantization: {estimator.relative_error_:.3e}")
    print(f"relative error: {model.relative_error_:.3e}")
    print(
        f"stored values: {B.nnz} ({B.nnz / (m * n):.3%} of dense); storage "
        f"{bits / 8192:.1f} KiB ({bits / dense_bits:.3%} of dense); "
        f"flops per product: {B.flops} (dense {2 * m * n})"
    )
    B.save(args.out)
    print(f"saved to {args.out}")
    return 0


# -- info ------------------------------------------------------------------


def _permutation_name(perm):
    """Name of a stored permutation: bit reversal, a standard code, or custom."""
    if perm is None:
        return "none"
    n = perm.shape[0]
    if n & (n - 1):
        return "custom index array"
    if np.array_equal(perm, bit_reversal_permutation(n)):
        return "bit-reversal"
    for code, candidate in standard_permutations(n).items():
        if np.array_equal(perm, candidate):
            return f"standard {code!r}"
    return "custom index array"


def _info(args):
    try:
        B = load(args.file)
    except ValueError as exc:
        raise _CommandError(str(exc)) from None
    m, n = B.shape
    print(f"file: {args.file}")
    print(f"operator: {m} x {n}, dtype {B.dtype}, {B.n_factors} factors")
    for i, (K, p) in enumerate(zip(B.factors, B.patterns), start=1):
        rows, cols = p.shape
        print(f"  F_{i}: pattern {tuple(p)}, {rows} x {cols}, nnz {K.size}")
    print(f"permutation: {_permutation_name(B.perm)}")
    if B.padded_shape != B.shape:
        print(f"padded shape: {B.padded_shape[0]} x {B.padded_shape[1]}")
    bits = native_bits(B.nnz, B.dtype)
    print(
        f"stored values: {B.nnz} ({B.nnz / (m * n):.3%} of dense), "
        f"{bits / 8192:.1f} KiB as {B.dtype}; flops per product: {B.flops} "
        f"(dense {2 * m * n})"
    )
    t = _significand_bits(np.concatenate([K.ravel() for K in B.factors]))
    print(
        f"significand bits used by the values: {t} (exact in any format with "
        f"t >= {t}, e.g. bfloat16 t=8, float16 t=11)"
    )
    return 0


# -- entry point -----------------------------------------------------------


def _parser():
    parser = _Parser(
        prog="skbutterfly",
        description="Sparse and butterfly matrix factorizations.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="factorize the DFT and a noisy butterfly, quantize, compare with dense",
    )
    demo.add_argument(
        "--size", type=int, default=1024, help="N, a power of two (default 1024)"
    )
    demo.add_argument(
        "--columns", type=int, default=64, help="columns in the timed products"
    )
    demo.add_argument(
        "--noise", type=float, default=0.01, help="relative noise level (0.01)"
    )
    demo.add_argument(
        "--precision",
        type=_precision,
        default="bfloat16",
        help="format name or significand bits t (default bfloat16)",
    )
    fact = commands.add_parser(
        "factorize", help="fit a butterfly to a matrix saved with numpy.save"
    )
    fact.add_argument("input", metavar="INPUT.npy", help="2-D array (numpy.save)")
    fact.add_argument("--out", required=True, metavar="OUT.npz", help="output file")
    fact.add_argument("--n-factors", type=int, default=None, metavar="J")
    fact.add_argument("--rank", type=int, default=1, metavar="r")
    fact.add_argument(
        "--tree", choices=TREES, default="balanced"
    )
    fact.add_argument(
        "--permutation",
        default="none",
        metavar="P",
        help="'none', 'bit-reversal', a candidate-set name, or an index file .npy",
    )
    fact.add_argument(
        "--precision",
        type=_precision,
        default=None,
        metavar="t",
        help="quantize: significand bits t or a format name (e.g. bfloat16)",
    )
    fact.add_argument("--n-jobs", type=int, default=None)
    info = commands.add_parser("info", help="describe a saved butterfly (.npz)")
    info.add_argument("file", metavar="FILE.npz")
    return parser


def main(argv=None) -> int:
    """Run the command line; returns the exit status.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments without the program name; ``None`` reads ``sys.argv``.

    Returns
    -------
    int
        0 on success, 1 on a failed command (bad file, failed check), 2 on
        bad options.

    Examples
    --------
    >>> import os, tempfile
    >>> from skbutterfly.__main__ import main
    >>> from skbutterfly.datasets import random_butterfly
    >>> path = os.path.join(tempfile.mkdtemp(), "b.npz")
    >>> random_butterfly(8, random_state=0).save(path)
    >>> main(["info", path])  # doctest: +ELLIPSIS
    file: ...
    operator: 8 x 8, dtype float64, 3 factors
    ...
    0
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    command = {"demo": _demo, "factorize": _factorize, "info": _info}[args.command]
    try:
        return command(args)
    except (_CommandError, ValueError, TypeError, OSError) as exc:
        # Bad values reach the library's own checks; report them, as the
        # command's own errors, in one line.
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"skbutterfly: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
