"""verbose: one progress line per phase, with the elapsed time; silent at 0."""

import re

import numpy as np

from skbutterfly import (
    ButterflyFactorizer,
    QuantizedButterfly,
    butterfly_factorize,
    quantize_butterfly,
)
from skbutterfly._progress import Progress
from skbutterfly.datasets import hadamard, random_butterfly

LINE = re.compile(r"^\[(\w+)\] .* \(\d+\.\d\d s\)$")


def test_progress_lines_have_a_prefix_and_a_time(capsys):
    progress = Progress("name", verbose=2)
    progress("one")
    progress("two", level=2)
    progress("three", level=3)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" (")[0] for line in lines] == ["[name] one", "[name] two"]
    assert all(LINE.match(line) for line in lines)
    assert progress and not Progress("name", verbose=0)


def test_butterfly_factorize_prints_one_line_per_split(capsys):
    butterfly_factorize(hadamard(64), verbose=1)
    lines = capsys.readouterr().out.splitlines()
    splits = [line for line in lines if "] split " in line]
    assert [line.split()[2] for line in splits] == [f"{k}/5:" for k in range(1, 6)]
    assert all(LINE.match(line) for line in lines)
    butterfly_factorize(hadamard(64))
    assert capsys.readouterr().out == ""


def test_candidate_permutations_are_reported(capsys):
    butterfly_factorize(hadamard(16), permutation="default-8", verbose=1)
    out = capsys.readouterr().out
    assert (
        sum("candidate" in line and "error" in line for line in out.splitlines()) == 8
    )


def test_estimators_report_their_phases(capsys):
    A = random_butterfly(16, random_state=0).toarray()
    ButterflyFactorizer(verbose=1).fit(A)
    out = capsys.readouterr().out
    assert "[ButterflyFactorizer] 4 factors, nnz=128, relative error" in out
    QuantizedButterfly(precision=8, verbose=1).fit(A)
    out = capsys.readouterr().out.splitlines()
    # Inner fit (silent inner estimator), two pairs, quantization, errors.
    assert [line.rsplit(" (", 1)[0].split("] ")[1] for line in out[:4]] == [
        "inner ButterflyFactorizer fitted",
        "pair (F_1, F_2) of 4 factors quantized",
        "pair (F_3, F_4) of 4 factors quantized",
        "quantized to 8, errors evaluated",
    ]
    assert out[-1].startswith("[QuantizedButterfly] relative error")


def test_left_to_right_and_odd_factor_counts_report_every_factor(capsys):
    B = random_butterfly(8, random_state=0)
    quantize_butterfly(B, 8, heuristic="left-to-right", verbose=1)
    quantize_butterfly(B, 8, verbose=1)
    out = capsys.readouterr().out
    assert "F_1 of 3 factors quantized" in out
    assert "pair (F_2, F_3) of 3 factors quantized" in out
    assert "F_3 rounded to nearest" in out
    np.testing.assert_array_equal(
        quantize_butterfly(B, 8).toarray(),
        quantize_butterfly(B, 8, verbose=1).toarray(),
    )


def test_fixed_support_factorizer_reports_als_starts(capsys):
    from skbutterfly import FixedSupportFactorizer

    A = np.random.default_rng(0).standard_normal((8, 8))
    FixedSupportFactorizer("lower", "upper", verbose=1).fit(A)
    out = capsys.readouterr().out
    # Gaussian elimination is exact here: one start, no iteration.
    assert "start 1/5 (Gaussian elimination): 0 iterations" in out
    assert "start 2/5" not in out
