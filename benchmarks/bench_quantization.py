"""Quantization of butterfly factors: round-to-nearest versus the optimal heuristics.

Reproduces the claim of Gribonval, Mary and Riccietti (Gribonval et al., hal-04125381):
quantizing the factors of a random butterfly with the optimal rank-one method
(pairwise or left-to-right) instead of round-to-nearest (RTN) reaches the same
error with about 25-30 % fewer significand bits.

Prints first how often ``method="exact"`` equals an exhaustive search over the
format's numbers (random and adversarial cases, the four presets and t = 2, 4,
8), the pairwise time of each bounded preset against the unbounded format of
the same t, and the time of ``QuantizedButterfly(precision=16)`` on 256 x 256.
Then, for random classic butterflies (N(0, 1) values) of size N = 256 and
1024 and t = 3..12 significand bits: the relative error
||B - B_q||_F / ||B||_F of RTN, pairwise and left-to-right; the significand
bits saved at equal error (t interpolated log-linearly); the time to quantize
a classic butterfly of size 4096 at t = 8; the three heuristics on products
of general sparse factors (``SparseProduct``: random factors and the learned
factors of the Hadamard matrix); and the comparison with lazylinop's
``qbutterfly`` (float16) when lazylinop is installed.

Run::

    python benchmarks/bench_quantization.py            # about 2 minutes
    python benchmarks/bench_quantization.py --quick    # one draw, N = 256
    python benchmarks/bench_quantization.py --exact-only  # the exactness part
    python benchmarks/bench_quantization.py --sparse-only # the sparse products

Timings on a shared machine are noisy: wall and CPU time are both printed.
"""

import argparse
import time

import numpy as np
import scipy.sparse as sp

from skbutterfly import (
    ButterflyFactorizer,
    FloatFormat,
    QuantizedButterfly,
    SparseProduct,
    bit_reversal_permutation,
    quantize_butterfly,
    quantize_rank_one,
    round_to_format,
    sparse_factorize,
)
from skbutterfly._exhaustive import (
    adversarial_cases,
    exhaustive_rank_one,
    rank_one_error,
)
from skbutterfly._hierarchical import butterfly_factorize
from skbutterfly._quantize import quantize_sparse_factors
from skbutterfly.datasets import dft, hadamard, random_butterfly

HEURISTICS = ("rtn", "pairwise", "left-to-right")
PRESET_AND_T = ("float8_e4m3", "float8_e5m2", "float16", "bfloat16", 2, 4, 8)
T_VALUES = tuple(range(3, 13))


def relative_errors(N, t_values, n_draws):
    """Mean relative error per heuristic and t."""
    errors = {h: np.full(len(t_values), np.nan) for h in HEURISTICS}
    for h in HEURISTICS:
        for i, t in enumerate(t_values):
            values = []
            for seed in range(n_draws):
                B = random_butterfly(N, random_state=seed)
                A = B.toarray()
                Q = quantize_butterfly(B, t, heuristic=h)
                values.append(np.linalg.norm(A - Q.toarray()) / np.linalg.norm(A))
            errors[h][i] = np.mean(values)
    return errors


def bits_at_equal_error(t_values, errors, target):
    """t at which a heuristic's error curve reaches ``target`` (log-linear)."""
    t = np.asarray(t_values, dtype=float)
    ok = np.isfinite(errors)
    log_err = np.log(errors[ok])
    # the curves decrease in t; np.interp needs increasing abscissae
    # NaN outside the measured range (no extrapolation)
    return float(np.interp(-np.log(target), -log_err, t[ok], left=np.nan, right=np.nan))


def print_error_table(N, errors):
    print(f"\nRelative error ||B - B_q||_F / ||B||_F, random classic butterfly N={N}")
    print(f"{'t':<14}" + "".join(f"{t:>9d}" for t in T_VALUES))
    for h in HEURISTICS:
        cells = "".join(
            f"{e:>9.2e}" if np.isfinite(e) else f"{'skipped':>9}" for e in errors[h]
        )
        print(f"{h:<14}" + cells)


def print_bits_saved(N, errors):
    print(f"\nSignificand bits at equal error (N={N}); saving against RTN")
    print(
        f"{'RTN t':>6} {'RTN error':>10} {'pairwise t':>11} {'saved':>6} "
        f"{'l2r t':>6} {'saved':>6}"
    )
    savings = []
    for t_ref in (6, 8, 10, 12):
        target = errors["rtn"][T_VALUES.index(t_ref)]
        row = [f"{t_ref:>6d} {target:>10.2e}"]
        for h in ("pairwise", "left-to-right"):
            t_h = bits_at_equal_error(T_VALUES, errors[h], target)
            saved = (t_ref - t_h) / t_ref
            if h == "pairwise" and np.isfinite(saved):
                savings.append(saved)
            width = 11 if h == "pairwise" else 6
            if np.isfinite(saved):
                row.append(f"{t_h:>{width}.2f} {100 * saved:>5.1f}%")
            else:
                row.append(f"{'n/a':>{width}} {'n/a':>6}")
        print(" ".join(row))
    return savings


def time_quantization(N, t, heuristic, repeats=3):
    B = random_butterfly(N, random_state=0)
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        quantize_butterfly(B, t, heuristic=heuristic)
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return min(walls), min(cpus)


def exhaustive_agreement(n_cases, formats=PRESET_AND_T):
    """Cases where ``method="exact"`` equals the exhaustive optimum.

    Random and adversarial cases (zeros, huge dynamic range, near overflow,
    subnormal range, exact ties, float64 extremes); the optimum is a brute
    force over every vector of the format's numbers (every finite value for
    the bounded formats). Also counts the cases where round-to-nearest is
    worse, to show the cases are not trivial.
    """
    print(
        f"\nExact rank-one quantization against exhaustive search ({n_cases} "
        "cases per format)"
    )
    print(f"{'format':<14}{'equal':>8}{'cases':>7}{'RTN worse':>11}{'s':>7}")
    total = agree = 0
    for fmt in formats:
        start = time.perf_counter()
        equal = rtn_worse = 0
        for x, y in adversarial_cases(fmt, n_cases, random_state=0):
            xh, yh = quantize_rank_one(x, y, fmt)
            scale = rank_one_error(x, y, 0 * x, y)
            best = exhaustive_rank_one(x, y, fmt)
            err = rank_one_error(x, y, xh, yh)
            representable = all(
                np.array_equal(round_to_format(v, fmt), v) for v in (xh, yh)
            )
            equal += bool(representable and abs(err - best) <= 1e-13 * scale)
            rtn = rank_one_error(x, y, *(round_to_format(v, fmt) for v in (x, y)))
            rtn_worse += bool(rtn > best + 1e-13 * scale)
        total, agree = total + n_cases, agree + equal
        name = fmt if isinstance(fmt, str) else f"t={fmt}"
        seconds = time.perf_counter() - start
        print(f"{name:<14}{equal:>8d}{n_cases:>7d}{rtn_worse:>11d}{seconds:>7.1f}")
    print(f"exact = exhaustive optimum on {agree} of {total} cases")
    return agree, total


def bounded_timings(N=4096, repeats=3):
    """Pairwise quantization in each preset against the unbounded format."""
    print(f"\nPairwise quantization of a random classic butterfly N={N} (best of 3)")
    header = f"{'format':<14}{'t':>3}{'wall s':>9}{'cpu s':>8}"
    print(header + f"{'unbounded s':>13}{'ratio':>7}")
    for name in ("bfloat16", "float16", "float8_e4m3", "float8_e5m2"):
        t = FloatFormat.from_name(name).t
        times = {}
        for fmt in (name, t):
            B = random_butterfly(N, random_state=0)
            walls, cpus = [], []
            for _ in range(repeats):
                w, c = time.perf_counter(), time.process_time()
                quantize_butterfly(B, fmt)
                walls.append(time.perf_counter() - w)
                cpus.append(time.process_time() - c)
            times[fmt] = (min(walls), min(cpus))
        (wall, cpu), cpu_u = times[name], times[t][1]
        print(
            f"{name:<14}{t:>3d}{wall:>9.3f}{cpu:>8.3f}{cpu_u:>13.3f}{cpu / cpu_u:>7.2f}"
        )
    print("(target: bounded presets at most 2x the unbounded format; cpu times)")


def storage_accounting(N=256, n_draws=2):
    """Storage saved at equal error, counted three ways.

    For each bounded preset: the error of the pairwise heuristic in that
    format, and the ``t`` at which round-to-nearest (same exponent range)
    reaches it. Then the saving in significand bits, in bits per stored value
    (sign, exponent field and stored significand, :func:`storage_bits`), and
    in file bytes (``ButterflyMatrix.save``, whatever encoding it uses).
    """
    import os
    import tempfile

    from skbutterfly import storage_bits

    print(f"\nStorage at equal error, random classic butterflies N={N}")
    print(
        f"{'format':<12}{'pairwise err':>13}{'RTN t':>7}{'signif. saved':>15}"
        f"{'bits/value':>11}{'RTN bits':>9}{'saved':>7}{'file B':>8}{'f64 B':>7}"
    )
    for name in ("bfloat16", "float16", "float8_e4m3", "float8_e5m2"):
        fmt = FloatFormat.from_name(name)
        t_values = np.arange(max(2, fmt.t - 2), fmt.t + 7)
        rtn, pair = np.zeros(len(t_values)), 0.0
        for seed in range(n_draws):
            B = random_butterfly(N, random_state=seed)
            A = B.toarray()
            norm = np.linalg.norm(A)
            pair += np.linalg.norm(A - quantize_butterfly(B, fmt).toarray()) / norm
            for i, t in enumerate(t_values):
                same_range = FloatFormat(int(t), fmt.emin, fmt.emax)
                Q = quantize_butterfly(B, same_range, heuristic="rtn")
                rtn[i] += np.linalg.norm(A - Q.toarray()) / norm
        pair, rtn = pair / n_draws, rtn / n_draws
        t_eq = bits_at_equal_error(tuple(t_values), rtn, pair)
        Q = quantize_butterfly(B, fmt)
        bits = storage_bits(Q, fmt) / Q.nnz
        rtn_bits = bits + t_eq - fmt.t
        with tempfile.TemporaryDirectory() as tmp:
            Q.save(os.path.join(tmp, "q.npz"))
            B.save(os.path.join(tmp, "b.npz"))
            sizes = [os.path.getsize(os.path.join(tmp, f)) for f in ("q.npz", "b.npz")]
        print(
            f"{name:<12}{pair:>13.2e}{t_eq:>7.2f}{(t_eq - fmt.t) / t_eq:>15.0%}"
            f"{bits:>11.0f}{rtn_bits:>9.1f}{1 - bits / rtn_bits:>7.0%}"
            f"{sizes[0]:>8d}{sizes[1]:>7d}"
        )
    print(
        "(RTN t: the significand bits round-to-nearest needs for the same error,"
        " interpolated; file bytes of the quantized and of the float64 butterfly)"
    )


def quantized_butterfly_time(N=256, precision=16):
    A = random_butterfly(N, random_state=0).toarray()
    start = time.perf_counter()
    QuantizedButterfly(ButterflyFactorizer(), precision=precision).fit(A)
    print(
        f"\nQuantizedButterfly(precision={precision}) fit on {N} x {N}: "
        f"{time.perf_counter() - start:.1f} s"
    )


def lazylinop_comparison(sizes=(256, 1024)):
    """Side by side with lazylinop's ``qbutterfly`` on the same butterflies.

    Target float16 for both. lazylinop enumerates breakpoints with
    ``t = finfo(float16).nmant = 10`` bits while rounding to the 11-bit
    float16 grid (Gribonval et al., hal-04125381); ours uses t = 11 for both.
    """
    try:
        from lazylinop.quantization.qbutterfly import qbutterfly
    except ImportError:
        print("\nlazylinop not installed: no comparison with its quantization.")
        return
    from skbutterfly import ButterflyMatrix

    print("\nlazylinop qbutterfly against ours, float16, same random butterflies")
    print(
        f"{'N':>6} {'heuristic':>14} {'ours err':>10} {'lazylinop err':>14} "
        f"{'ours s':>8} {'lazylinop s':>12}"
    )
    names = {"pairwise": "pairwise", "left-to-right": "l2r"}
    for N in sizes:
        B = random_butterfly(N, random_state=0)
        dense = B.toarray()
        norm = np.linalg.norm(dense)
        for ours, theirs in names.items():
            start = time.perf_counter()
            Q = quantize_butterfly(B, "float16", heuristic=ours)
            t_ours = time.perf_counter() - start
            start = time.perf_counter()
            values, _ = qbutterfly(
                [np.array(K) for K in B.factors], np.float16, order=theirs
            )
            t_theirs = time.perf_counter() - start
            L = ButterflyMatrix([np.asarray(K, dtype=np.float64) for K in values])
            e_ours = np.linalg.norm(dense - Q.toarray()) / norm
            e_theirs = np.linalg.norm(dense - L.toarray()) / norm
            print(
                f"{N:>6} {ours:>14} {e_ours:>10.3e} {e_theirs:>14.3e} "
                f"{t_ours:>8.3f} {t_theirs:>12.3f}"
            )


def random_sparse_factors(N, k, n_factors, seed):
    """N x N factors, each k random permutation patterns with N(0, 1) values."""
    rng = np.random.default_rng(seed)
    factors = []
    for _ in range(n_factors):
        M = np.zeros((N, N))
        for _ in range(k):
            M[np.arange(N), rng.permutation(N)] = rng.standard_normal(N)
        factors.append(sp.csr_array(M))
    return factors


def sparse_products():
    """The three heuristics on products of general sparse factors.

    Random factors (2 draws each) and the factors that ``sparse_factorize``
    learns for the Hadamard matrix (exact product, values of arbitrary
    scale). Relative error of the product, and the CPU time of each
    heuristic.
    """
    N = 256
    hadamard_factors = sparse_factorize(hadamard(N), [("rowcol", 2)] * 8)[0].factors
    cases = [
        (f"random {N}, J=4, k=2", [random_sparse_factors(N, 2, 4, s) for s in (0, 1)]),
        (f"random {N}, J=3, k=4", [random_sparse_factors(N, 4, 3, s) for s in (0, 1)]),
        (f"hadamard {N} learned, J=8, k=2", [hadamard_factors]),
    ]
    print("\nProducts of sparse factors (SparseProduct), relative error, CPU s")
    print(
        f"{'product':>28} {'format':>12} "
        + " ".join(f"{h:>13}" for h in HEURISTICS)
        + " "
        + " ".join(f"{'s ' + h:>15}" for h in HEURISTICS)
    )
    for name, draws in cases:
        for fmt in (4, 8, "float8_e4m3", "bfloat16"):
            errors = {h: [] for h in HEURISTICS}
            cpus = {h: 0.0 for h in HEURISTICS}
            for factors in draws:
                dense = SparseProduct(factors).toarray()
                for h in HEURISTICS:
                    start = time.process_time()
                    Q = SparseProduct(quantize_sparse_factors(factors, fmt, h))
                    cpus[h] += time.process_time() - start
                    err = np.linalg.norm(dense - Q.toarray()) / np.linalg.norm(dense)
                    errors[h].append(err)
            print(
                f"{name:>28} {fmt!s:>12} "
                + " ".join(f"{np.mean(errors[h]):>13.3e}" for h in HEURISTICS)
                + " "
                + " ".join(f"{cpus[h] / len(draws):>15.3f}" for h in HEURISTICS)
            )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one draw, N = 256")
    parser.add_argument(
        "--sparse-only", action="store_true", help="only the sparse products"
    )
    parser.add_argument(
        "--exact-only",
        action="store_true",
        help="only the exhaustive agreement and the bounded-format timings",
    )
    parser.add_argument(
        "--cases", type=int, default=150, help="exhaustive cases per format"
    )
    args = parser.parse_args()
    if args.sparse_only:
        sparse_products()
        return
    exhaustive_agreement(args.cases)
    storage_accounting()
    bounded_timings()
    quantized_butterfly_time()
    if args.exact_only:
        return
    n_draws = 1 if args.quick else 2
    sizes = (256,) if args.quick else (256, 1024)
    all_savings = []
    for N in sizes:
        start = time.perf_counter()
        errors = relative_errors(N, T_VALUES, n_draws)
        print_error_table(N, errors)
        print(f"({n_draws} draws, {time.perf_counter() - start:.0f} s)")
        all_savings += print_bits_saved(N, errors)
    print(
        f"\nPairwise saves {100 * min(all_savings):.0f}-{100 * max(all_savings):.0f} % "
        "of the significand bits at equal error (claim: about 25-30 %)."
    )

    print("\nDFT (complex): the optimal quantization of complex factors is not")
    print("implemented (CROQuant); round-to-nearest of the real and imaginary parts:")
    N = 256
    F = dft(N)
    B = butterfly_factorize(F, permutation=bit_reversal_permutation(N))
    for t in (4, 8, 12):
        Q = quantize_butterfly(B, t, heuristic="rtn")
        err = np.linalg.norm(F - Q.toarray()) / np.linalg.norm(F)
        print(f"  N={N} t={t:>2d}: RTN relative error {err:.2e}")

    print("\nTime to quantize a random classic butterfly (best of 3)")
    print(f"{'N':>6} {'t':>3} {'heuristic':>14} {'wall s':>8} {'cpu s':>8}")
    for N, t, h in (
        (4096, 8, "rtn"),
        (4096, 8, "pairwise"),
        (4096, 8, "left-to-right"),
    ):
        wall, cpu = time_quantization(N, t, h)
        print(f"{N:>6d} {t:>3d} {h:>14} {wall:>8.3f} {cpu:>8.3f}")
    print("(target: pairwise at N = 4096, t = 8 under 1 s; the machine is shared)")
    sparse_products()
    lazylinop_comparison()


if __name__ == "__main__":
    main()
