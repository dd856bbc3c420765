"""Direct (hierarchical / FSMF) algorithms against gradient descent and ALS.

Reproduces the experiments of the founding lecture (the founding lecture's experiments,
§6) on the same inputs, in one process:

1. noiseless DFT (J = log2 N, bit reversal) and Hadamard: our hierarchical
   method (balanced and left-to-right, with and without orthonormalisation)
   against the gradient baseline (random Gaussian init, Adam lr 0.1 then 20
   L-BFGS iterations, several seeds) and ALS (5 sweeps); ratio = time the
   best gradient run needs to reach 1e-3 over the time we need to reach
   1e-12 (a lower bound ``>`` when no gradient run reaches 1e-3);
2. random butterfly + Gaussian noise (relative 1e-2 and 1e-1): errors and
   ratio ours / best gradient run;
3. the noisy DFT of ICASSP 2022 Fig. 3 (complex Gaussian noise, variance
   0.005 per part, J = 3, 6, 9, 10 draws): error against the noise norm;
4. two-factor Hadamard 1024 with two support pairs: ``fixed_support_factorize``
   against gradient descent and ``pyfaust.fact.palm4msa`` (when installed).

Run from the repository root::

    python benchmarks/bench_vs_gradient.py --quick   # smaller sizes, ~1 min
    python benchmarks/bench_vs_gradient.py           # the lecture's sizes

Timings are wall-clock on whatever machine runs it (ours: the best of 3 runs;
iterative methods: one run per seed).
"""

import argparse
import math
import time
import warnings

import numpy as np

from skbutterfly import (
    Pattern,
    bit_reversal_permutation,
    butterfly_factorize,
    fixed_support_factorize,
)
from skbutterfly._baselines import (
    butterfly_als,
    butterfly_gradient,
    gradient_factorize,
)
from skbutterfly._ks import ks_to_dense
from skbutterfly.datasets import dft, hadamard, random_butterfly

VARIANTS = [
    ("balanced", True),
    ("balanced", False),
    ("left", True),
    ("left", False),
]


def _rel(A, B):
    return np.linalg.norm(B.toarray() - A) / np.linalg.norm(A)


def _timed_ours(A, n_factors, perm, tree, ortho, repeats=3):
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        B = butterfly_factorize(
            A, n_factors=n_factors, tree=tree, permutation=perm, orthonormalize=ortho
        )
        best = min(best, time.perf_counter() - start)
    return best, B


def _row(cells, widths):
    return "  ".join(str(c).rjust(w) for c, w in zip(cells, widths))


def _table(title, header, rows):
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    print(_row(header, widths))
    print(_row(["-" * w for w in widths], widths))
    for r in rows:
        print(_row(r, widths))


def _fmt(x, spec=".1e"):
    return "inf" if not np.isfinite(x) else format(x, spec)


def noiseless(name, A, n_factors, perm, seeds, n_adam):
    rows, ours_time_12 = [], np.inf
    for tree, ortho in VARIANTS:
        t, B = _timed_ours(A, n_factors, perm, tree, ortho)
        err = _rel(A, B)
        if err <= 1e-12:
            ours_time_12 = min(ours_time_12, t)
        rows.append([f"ours {tree} ortho={ortho}", _fmt(t, ".3f"), _fmt(err), "-"])
    grad_times = []
    for seed in seeds:
        _, hist = butterfly_gradient(
            A, n_factors, perm, n_adam=n_adam, n_lbfgs=20, random_state=seed
        )
        t3 = hist.time_to(1e-3)
        grad_times.append((t3, hist.total_time))
        rows.append(
            [
                f"gradient seed {seed}",
                _fmt(hist.total_time, ".2f"),
                _fmt(hist.final_error),
                _fmt(t3, ".2f"),
            ]
        )
    _, hist = butterfly_als(A, n_factors, perm, n_epochs=5, random_state=seeds[0])
    rows.append(
        [
            "ALS 5 sweeps",
            _fmt(hist.total_time, ".2f"),
            _fmt(hist.final_error),
            _fmt(hist.time_to(1e-3), ".2f"),
        ]
    )
    _table(
        f"[1] {name}: noiseless (relative Frobenius error)",
        ["method", "time (s)", "rel. error", "time to 1e-3 (s)"],
        rows,
    )
    best_t3 = min(t for t, _ in grad_times)
    if np.isfinite(best_t3):
        ratio = f"{best_t3 / ours_time_12:.0f}"
    else:
        ratio = f"> {max(t for _, t in grad_times) / ours_time_12:.0f} (never reached)"
    print(
        f"target: ours reaches 1e-12 in {_fmt(ours_time_12, '.3f')} s; "
        f"best gradient time to 1e-3 / ours = {ratio}"
    )


def noisy_butterfly(n, levels, seeds, n_adam):
    rows = []
    for level in levels:
        truth = random_butterfly(n, random_state=0).toarray()
        rng = np.random.default_rng(1)
        noise = rng.standard_normal(truth.shape)
        noise *= level * np.linalg.norm(truth) / np.linalg.norm(noise)
        Y = truth + noise
        ours = {}
        for tree, ortho in VARIANTS:
            t, B = _timed_ours(Y, None, None, tree, ortho, repeats=1)
            ours[(tree, ortho)] = (t, _rel(Y, B))
        grads = [
            butterfly_gradient(Y, None, None, n_adam=n_adam, random_state=s)[1]
            for s in seeds
        ]
        best_grad = min(h.final_error for h in grads)
        _, als = butterfly_als(Y, None, None, n_epochs=5, random_state=seeds[0])
        for (tree, ortho), (t, err) in ours.items():
            rows.append(
                [
                    f"{level:g}",
                    f"ours {tree} ortho={ortho}",
                    _fmt(t, ".3f"),
                    _fmt(err, ".4e"),
                    f"{err / best_grad:.3f}",
                ]
            )
        for s, h in zip(seeds, grads):
            rows.append(
                [
                    f"{level:g}",
                    f"gradient seed {s}",
                    _fmt(h.total_time, ".2f"),
                    _fmt(h.final_error, ".4e"),
                    f"{h.final_error / best_grad:.3f}",
                ]
            )
        rows.append(
            [
                f"{level:g}",
                "ALS 5 sweeps",
                _fmt(als.total_time, ".2f"),
                _fmt(als.final_error, ".4e"),
                f"{als.final_error / best_grad:.3f}",
            ]
        )
    _table(
        f"[2] random butterfly N={n} + noise: rel. error to the noisy target "
        "(noise-free optimum ~ level/sqrt(1+level^2))",
        ["noise", "method", "time (s)", "rel. error", "/ best gradient"],
        rows,
    )


def noisy_dft(levels_J, n_draws, n_adam):
    rows = []
    for J in levels_J:
        n = 2**J
        F = dft(n)
        perm = bit_reversal_permutation(n)
        res = {"norm": [], "ours": [], "ours_l2r": [], "grad": [], "als": []}
        for draw in range(n_draws):
            rng = np.random.default_rng(100 + draw)
            W = np.sqrt(0.005) * (
                rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))
            )
            Y = F + W
            res["norm"].append(np.linalg.norm(W))
            for key, tree in (("ours", "balanced"), ("ours_l2r", "left")):
                B = butterfly_factorize(Y, n_factors=J, tree=tree, permutation=perm)
                res[key].append(np.linalg.norm(B.toarray() - Y))
            B, _ = butterfly_gradient(Y, J, perm, n_adam=n_adam, random_state=draw)
            res["grad"].append(np.linalg.norm(B.toarray() - Y))
            B, _ = butterfly_als(Y, J, perm, n_epochs=5, random_state=draw)
            res["als"].append(np.linalg.norm(B.toarray() - Y))
        r = {k: np.asarray(v) for k, v in res.items()}
        rows.append(
            [
                J,
                f"{r['norm'].mean():.3f}",
                f"{r['ours'].mean():.3f}",
                f"{r['ours_l2r'].mean():.3f}",
                f"{r['grad'].mean():.3f} / {r['grad'].max():.3f}",
                f"{r['als'].mean():.3f} / {r['als'].max():.3f}",
                f"{(r['ours'] / r['grad']).max():.4f}",
            ]
        )
    _table(
        f"[3] noisy DFT (ICASSP Fig. 3), {n_draws} draws: ||Y - B|| "
        "(means; gradient and ALS: mean / worst)",
        [
            "J",
            "||noise||",
            "ours bal.",
            "ours l2r",
            "gradient",
            "ALS",
            "max ours/grad",
        ],
        rows,
    )


def _palm(A, patterns, n_its):
    try:
        import pyfaust.factparams as fp
        from pyfaust.fact import palm4msa
    except ImportError:
        return None
    cons = [
        fp.ConstraintMat("supp", (ks_to_dense(np.ones(tuple(p))) != 0).astype(float))
        for p in patterns
    ]
    params = fp.ParamsPalm4MSA(cons, fp.StoppingCriterion(num_its=n_its))
    start = time.perf_counter()
    faust = palm4msa(A, params, backend=2020)
    elapsed = time.perf_counter() - start
    return elapsed, np.linalg.norm(faust.toarray() - A) / np.linalg.norm(A)


def two_factor_hadamard(n, n_adam, palm_its):
    q = math.isqrt(n)
    pairs = {
        f"1_{q}(x)I_{q} | I_{q}(x)1_{q}": (Pattern(1, q, q, q), Pattern(q, q, q, 1)),
        f"I_{q}(x)1_{q} | 1_{q}(x)I_{q}": (Pattern(q, q, q, 1), Pattern(1, q, q, q)),
    }
    A = hadamard(n)
    rows = []
    for label, patterns in pairs.items():
        S_W, S_H = (ks_to_dense(np.ones(tuple(p))) != 0 for p in patterns)
        start = time.perf_counter()
        W, H, info = fixed_support_factorize(A, S_W, S_H)
        t = time.perf_counter() - start
        err = np.linalg.norm(W @ H - A) / np.linalg.norm(A)
        rows.append([label, f"FSMF ({info.method})", _fmt(t, ".3f"), _fmt(err), "-"])
        _, hist = gradient_factorize(A, patterns, n_adam=n_adam, random_state=0)
        rows.append(
            [
                label,
                "gradient (Adam+L-BFGS)",
                _fmt(hist.total_time, ".2f"),
                _fmt(hist.final_error),
                _fmt(hist.time_to(1e-3), ".2f"),
            ]
        )
        start = time.perf_counter()
        W, H, _ = fixed_support_factorize(
            A, S_W, S_H, method="als", n_restarts=1, max_iter=20, random_state=0
        )
        t = time.perf_counter() - start
        err = np.linalg.norm(W @ H - A) / np.linalg.norm(A)
        rows.append([label, "FSMF ALS 20 it., 1 start", _fmt(t, ".2f"), _fmt(err), "-"])
        for its in palm_its:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                palm = _palm(A, patterns, its)
            if palm is None:
                rows.append([label, "palm4msa", "pyfaust not installed", "", ""])
                break
            rows.append(
                [label, f"palm4msa {its} it.", _fmt(palm[0], ".2f"), _fmt(palm[1]), "-"]
            )
    _table(
        f"[4] two-factor Hadamard {n} (q = {q}; palm4msa: default init, backend 2020)",
        ["supports", "method", "time (s)", "rel. error", "time to 1e-3 (s)"],
        rows,
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    args = parser.parse_args(argv)
    if args.quick:
        n_dft, n_had, n_rand, seeds, n_adam = 128, 256, 128, [0, 1], 50
        noisy_J, n_draws, n_two, palm_its = [3, 6], 3, 256, [1]
    else:
        n_dft, n_had, n_rand, seeds, n_adam = 512, 1024, 256, [0, 1, 2], 100
        noisy_J, n_draws, n_two, palm_its = [3, 6, 9], 10, 1024, [1, 3]
    print("bench_vs_gradient", "(quick)" if args.quick else "(full)")
    print(
        f"gradient: Adam {n_adam} it. lr 0.1 + 20 L-BFGS, seeds {seeds}; "
        "ALS: exact least-squares sweeps; ours: best of 3 runs"
    )
    J = int(np.log2(n_dft))
    noiseless(
        f"DFT {n_dft}, J={J}, bit reversal",
        dft(n_dft),
        J,
        bit_reversal_permutation(n_dft),
        seeds,
        n_adam,
    )
    J = int(np.log2(n_had))
    noiseless(f"Hadamard {n_had}, J={J}", hadamard(n_had), J, None, seeds, n_adam)
    noisy_butterfly(n_rand, [1e-2, 1e-1], seeds, n_adam)
    noisy_dft(noisy_J, n_draws, n_adam)
    two_factor_hadamard(n_two, n_adam, palm_its)


if __name__ == "__main__":
    main()
