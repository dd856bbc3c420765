"""Command line: ``python -m skbutterfly`` (also installed as ``skbutterfly``).

Commands:

- ``demo``: factorize the DFT and a noisy random butterfly, quantize them to
  bfloat16, and print a table of errors, storage and product speed against
  the dense matrix;
- ``factorize INPUT.npy --out OUT.npz [options]``: fit a butterfly to a matrix
  stored with ``numpy.save`` and write it with :meth:`ButterflyMatrix.save`;
- ``info FILE.npz``: describe a saved butterfly.

Every option is checked before any work starts. Errors (unreadable files,
bad options) print one line on stderr and exit with a non-zero status: 2 for
bad options, 1 for everything else. ``--version`` prints the version.
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import argparse
import os
import sys
import time
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

from skbutterfly import __version__
from skbutterfly._butterfly_factorizer import POOR_FIT_HINT, ButterflyFactorizer
from skbutterfly._constants import TREES
from skbutterfly._formats import PRESETS, check_format, native_bits, storage_bits
from skbutterfly._io import load
from skbutterfly._operator import frobenius_error
from skbutterfly._patterns import architecture
from skbutterfly._permutations import (
    STANDARD_CODES,
    bit_reversal_permutation,
    permutation_candidates,
    standard_permutations,
)
from skbutterfly._quantize import quantize_butterfly
from skbutterfly._sparse_product import SparseProduct
from skbutterfly._validation import check_matrix
from skbutterfly._warnings import POOR_FIT_ERROR, PoorFitWarning
from skbutterfly.datasets import add_noise, dft, random_butterfly

# Work (entries times permutation candidates) from which a factorization
# takes about a second or more: the factorizer then prints its progress.
_LARGE_WORK = 2**20

_PERMUTATION_NAMES = (
    "none",
    "bit-reversal",
    "default-8",
    "auto",
    "learn",
    *STANDARD_CODES,
)


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


# -- option types: each checks its value at parse time -------------------


def _precision(value):
    """``--precision``: significand bits t in 1..53, or a format name."""
    if value.isdigit() and 1 <= int(value) <= 53:
        return int(value)
    if value in PRESETS:
        return value
    raise argparse.ArgumentTypeError(
        f"expected significand bits t in 1..53 or one of {', '.join(PRESETS)}; "
        f"got {value!r}"
    )


def _integer(minimum, name="an integer"):
    def parse(value):
        try:
            number = int(value)
        except ValueError:
            number = None
        if number is None or number < minimum:
            raise argparse.ArgumentTypeError(
                f"expected {name} >= {minimum}, got {value!r}"
            )
        return number

    return parse


def _n_jobs(value):
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number == 0:
        raise argparse.ArgumentTypeError(
            f"expected a nonzero integer (-1: all cores), got {value!r}"
        )
    return number


def _power_of_two(value):
    number = int(value) if value.isdigit() else 0
    if number < 2 or number & (number - 1):
        raise argparse.ArgumentTypeError(f"expected a power of two >= 2, got {value!r}")
    return number


def _noise(value):
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0 <= number < np.inf:
        raise argparse.ArgumentTypeError(
            f"expected a finite number >= 0, got {value!r}"
        )
    return number


def _permutation(value):
    if value in _PERMUTATION_NAMES or value.endswith(".npy"):
        return value
    raise argparse.ArgumentTypeError(
        f"expected one of {', '.join(_PERMUTATION_NAMES)} or an index file "
        f"ending in .npy, got {value!r}"
    )


def _npz_path(value):
    if not value.endswith(".npz"):
        raise argparse.ArgumentTypeError(
            f"expected a file name ending in .npz (the format written), got {value!r}"
        )
    return value


def _quantize(A, B, precision, label):
    """Quantize ``B`` (fitted to ``A``); time quantization and error apart.

    Returns the quantized operator, the heuristic used, its relative error
    and its storage bits.
    """
    fmt = check_format(precision)
    # The optimal quantization is for real factors; complex ones are rounded.
    heuristic = "rtn" if A.dtype.kind == "c" else "pairwise"
    start = time.perf_counter()
    quantized = quantize_butterfly(B, fmt, heuristic)
    quantizing = time.perf_counter() - start
    start = time.perf_counter()
    norm = float(np.linalg.norm(A))
    # Many small batched products: extra BLAS threads only slow them down
    # (by seconds for the complex DFT on a loaded machine).
    with threadpool_limits(limits=1, user_api="blas"):
        error = frobenius_error(A, quantized) / norm if norm > 0 else 0.0
    evaluating = time.perf_counter() - start
    _progress(
        f"  quantizing {label}to {precision} ({heuristic}): done in "
        f"{quantizing:.2f} s (error evaluated in {evaluating:.2f} s)"
    )
    if error > POOR_FIT_ERROR:
        _progress(
            f"  warning: relative error {error:.3g} once quantized; try a "
            "higher --precision"
        )
    return quantized, heuristic, error, storage_bits(quantized, fmt)


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
    B = fitted.butterfly_
    quantized, heuristic, error, bits = _quantize(A, B, precision, f"{name} ")
    _progress(f"  timing products with {X.shape[1]} columns ...")
    X = X.astype(A.dtype)
    label = f"+ {precision}{'*' if heuristic == 'rtn' else ''}"
    # One BLAS thread for both sides: on a shared machine a multithreaded
    # dense product can be slowed down by orders of magnitude.
    with threadpool_limits(limits=1, user_api="blas"):
        t_dense = _best_time(lambda: A @ X)
        times = [_best_time(lambda op=op: op @ X) for op in (B, quantized)]
    dense_bits = native_bits(n_samples * n_features, A.dtype)
    unquantized_bits = native_bits(B.nnz, B.dtype)
    rows = [
        (name, "dense", "-", 0.0, dense_bits, t_dense, t_dense),
        (
            "",
            "butterfly",
            str(B.n_factors),
            fitted.relative_error_,
            unquantized_bits,
            times[0],
            t_dense,
        ),
        ("", label, str(B.n_factors), error, bits, times[1], t_dense),
    ]
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


def _permutation_option(value):
    """``None`` for ``"none"``, the array of a ``.npy`` file, else the name."""
    if value == "none":
        return None
    if value.endswith(".npy"):
        return _read_permutation(value)
    return value


def _factorize(args):
    A = _read_matrix(args.input)
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir):
        raise _CommandError(f"cannot write {args.out!r}: no directory {out_dir!r}.")
    if os.path.exists(args.out) and os.path.samefile(args.input, args.out):
        raise _CommandError(
            f"--out {args.out!r} is the input file; choose another output file."
        )
    permutation = _permutation_option(args.permutation)
    row_permutation = _permutation_option(args.row_permutation)
    try:
        # Everything that depends on the matrix, checked before the work.
        arch = architecture(A.shape, n_factors=args.n_factors, rank=args.rank)
        n_candidates = 1
        for spec, size, name in (
            (row_permutation, arch.padded_shape[0], "row_permutation"),
            (permutation, arch.padded_shape[1], "permutation"),
        ):
            if isinstance(spec, str) and spec in ("auto", "learn"):
                # "auto" factorizes its best three pairs, "learn" one.
                n_candidates *= 3 if spec == "auto" else 1
            else:
                n_candidates *= len(permutation_candidates(spec, size, name))
    except (TypeError, ValueError) as exc:
        raise _CommandError(str(exc).splitlines()[0]) from None
    m, n = A.shape
    print(f"input: {args.input}, n_samples={m}, n_features={n}, dtype={A.dtype}")
    estimator = ButterflyFactorizer(
        n_factors=args.n_factors,
        rank=args.rank,
        tree=args.tree,
        permutation=permutation,
        row_permutation=row_permutation,
        n_jobs=args.n_jobs,
        random_state=0,
        verbose=int(A.size * n_candidates >= _LARGE_WORK),
    )
    with warnings.catch_warnings():
        # The command prints the hint on one line below instead.
        warnings.simplefilter("ignore", PoorFitWarning)
        _timed_fit(estimator, A, "factorizing")
    B, error = estimator.butterfly_, estimator.relative_error_
    bits = native_bits(B.nnz, B.dtype)
    if args.precision is not None:
        B, _, error, bits = _quantize(A, B, args.precision, "")
    dense_bits = native_bits(m * n, A.dtype)
    print(f"factors: {B.n_factors}, patterns: {[tuple(p) for p in B.patterns]}")
    if args.precision is not None:
        print(f"relative error before quantization: {estimator.relative_error_:.3e}")
    print(f"relative error: {error:.3e}")
    if estimator.relative_error_ > POOR_FIT_ERROR:
        print(f"hint: a poor fit; {POOR_FIT_HINT}")
    elif B.nnz > m * n:
        print("hint: more stored values than the dense matrix; try --n-factors 1")
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


def _sparse_info(path, P):
    m, n = P.shape
    print(f"file: {path}")
    print(f"operator: {m} x {n} SparseProduct, dtype {P.dtype}, {P.n_factors} factors")
    for i, F in enumerate(P.factors, start=1):
        print(f"  S_{i}: {F.shape[0]} x {F.shape[1]}, nnz {F.nnz}")
    print(
        f"stored values: {P.nnz} ({P.nnz / (m * n):.3%} of dense); flops per "
        f"product: {P.flops} (dense {2 * m * n})"
    )
    return 0


def _info(args):
    try:
        B = load(args.file)
    except ValueError as exc:
        raise _CommandError(str(exc)) from None
    if isinstance(B, SparseProduct):
        return _sparse_info(args.file, B)
    m, n = B.shape
    print(f"file: {args.file}")
    print(f"operator: {m} x {n}, dtype {B.dtype}, {B.n_factors} factors")
    for i, (K, p) in enumerate(zip(B.factors, B.patterns), start=1):
        rows, cols = p.shape
        print(f"  F_{i}: pattern {tuple(p)}, {rows} x {cols}, nnz {K.size}")
    print(f"permutation: {_permutation_name(B.perm)}")
    print(f"row permutation: {_permutation_name(B.row_perm)}")
    if B.padded_shape != B.shape:
        print(f"padded shape: {B.padded_shape[0]} x {B.padded_shape[1]}")
    bits = native_bits(B.nnz, B.dtype)
    print(
        f"stored values: {B.nnz} ({B.nnz / (m * n):.3%} of dense), "
        f"{bits / 8192:.1f} KiB as {B.dtype}; flops per product: {B.flops} "
        f"(dense {2 * m * n})"
    )
    size = os.path.getsize(args.file)
    fmt = "not recorded" if B.format is None else str(B.format)
    print(
        f"value format: {fmt}; file: {size} bytes, "
        f"{size / B.nnz:.2f} bytes per stored value"
    )
    t = _significand_bits(np.concatenate([K.ravel() for K in B.factors]))
    holding = [f"{name} (t={f.t})" for name, f in PRESETS.items() if f.t >= t]
    where = (
        f"the presets {', '.join(holding)} hold them when their exponent range does"
        if holding
        else "no low-precision preset holds them exactly"
    )
    print(
        f"significand bits used by the values: {t} (exact in formats with "
        f"t >= {t}; {where})"
    )
    return 0


# -- entry point -----------------------------------------------------------


def _parser():
    parser = _Parser(
        prog="skbutterfly",
        description="Sparse and butterfly matrix factorizations.",
    )
    parser.add_argument(
        "--version", action="version", version=f"skbutterfly {__version__}"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    formats = ", ".join(PRESETS)
    demo = commands.add_parser(
        "demo",
        help="factorize the DFT and a noisy butterfly, quantize, compare with dense",
    )
    demo.add_argument(
        "--size",
        type=_power_of_two,
        default=1024,
        metavar="N",
        help="matrix size, a power of two (default 1024)",
    )
    demo.add_argument(
        "--columns",
        type=_integer(1),
        default=64,
        help="columns of the timed products (default 64)",
    )
    demo.add_argument(
        "--noise",
        type=_noise,
        default=0.01,
        help="relative noise added to the random butterfly (default 0.01)",
    )
    demo.add_argument(
        "--precision",
        type=_precision,
        default="bfloat16",
        metavar="t",
        help=f"significand bits t (1..53) or a format: {formats} (default bfloat16)",
    )
    fact = commands.add_parser(
        "factorize", help="fit a butterfly to a matrix saved with numpy.save"
    )
    fact.add_argument(
        "input", metavar="INPUT.npy", help="the matrix: a 2-D array (numpy.save)"
    )
    fact.add_argument(
        "--out",
        required=True,
        type=_npz_path,
        metavar="OUT.npz",
        help="file the butterfly is written to (must end in .npz)",
    )
    fact.add_argument(
        "--n-factors",
        type=_integer(1),
        default=None,
        metavar="J",
        help="number of factors (default: ceil(log2 N), the classic butterfly; "
        "1 is the dense matrix)",
    )
    fact.add_argument(
        "--rank",
        type=_integer(1),
        default=1,
        metavar="r",
        help="block rank between factors (default 1)",
    )
    fact.add_argument(
        "--tree",
        choices=TREES,
        default="balanced",
        help="order of the splits: balanced (default), left or right",
    )
    fact.add_argument(
        "--permutation",
        type=_permutation,
        default="none",
        metavar="P",
        help="column permutation: none (default), bit-reversal (the DFT), "
        f"one of the standard codes {', '.join(STANDARD_CODES)}, default-8 "
        "(tries the eight codes, keeps the best), auto (searches rows and "
        "columns), learn (recovers shuffled orderings) or an index file ending "
        "in .npy",
    )
    fact.add_argument(
        "--row-permutation",
        type=_permutation,
        default="none",
        metavar="P",
        help="row permutation, the same choices (the factors approximate "
        "A[row_perm][:, perm])",
    )
    fact.add_argument(
        "--precision",
        type=_precision,
        default=None,
        metavar="t",
        help=f"quantize to significand bits t (1..53) or a format: {formats}",
    )
    fact.add_argument(
        "--n-jobs",
        type=_n_jobs,
        default=None,
        metavar="N",
        help="parallel jobs for the large splits (-1: all cores; default 1)",
    )
    info = commands.add_parser("info", help="describe a saved butterfly (.npz)")
    info.add_argument(
        "file", metavar="FILE.npz", help="a file written by factorize or save()"
    )
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
    except MemoryError as exc:
        detail = f" ({str(exc).splitlines()[0]})" if str(exc) else ""
        print(
            f"skbutterfly: error: out of memory{detail}; try a smaller size.",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
