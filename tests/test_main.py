"""The command line, end to end (subprocess) and in process (error paths)."""

import os
import subprocess
import sys

import numpy as np
import pytest

from skbutterfly import bit_reversal_permutation, load, standard_permutations
from skbutterfly.__main__ import _significand_bits, main
from skbutterfly.datasets import dft, hadamard, random_butterfly


def _run(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "skbutterfly", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def _one_line_error(text):
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert lines[0].startswith("skbutterfly: error: ")
    return lines[0]


def _max_significand_bits(values):
    """Independent count: smallest t with every value * 2**(t - e) an integer."""
    values = np.concatenate([np.ravel(v) for v in values]).astype(np.float64)
    best = 0
    for v in values[values != 0]:
        t = 1
        exponent = np.floor(np.log2(abs(v)))
        while (abs(v) * 2.0 ** (t - 1 - exponent)) % 1:
            t += 1
        best = max(best, t)
    return best


@pytest.fixture
def hadamard_file(tmp_path):
    path = tmp_path / "h.npy"
    np.save(path, hadamard(16))
    return path


def test_demo_runs_and_prints_the_table():
    result = _run("demo", "--size", "64", "--columns", "4")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "[1/2] DFT of size 64" in out
    assert "[2/2] random butterfly of size 64" in out
    assert "factorizing DFT 64: done in" in out
    for label in ("matrix", "rel. error", "storage KiB", "speed-up"):
        assert label in out
    rows = [
        line[22:].split() for line in out.splitlines() if line[22:32] == "butterfly "
    ]
    assert len(rows) == 2
    # The DFT row (bit reversal) is an exact recovery: model, J, error, ...
    dft_error = float(rows[0][2])
    assert dft_error < 1e-10


def test_factorize_then_info(tmp_path, hadamard_file):
    out = tmp_path / "h.npz"
    result = _run("factorize", str(hadamard_file), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "relative error:" in result.stdout
    assert "factorizing: done in" in result.stdout
    B = load(out)
    assert B.n_factors == 4
    np.testing.assert_allclose(B.toarray(), hadamard(16), atol=1e-12)
    info = _run("info", str(out))
    assert info.returncode == 0, info.stderr
    assert "operator: 16 x 16, dtype float64, 4 factors" in info.stdout
    assert "F_1: pattern (1, 2, 2, 8), 16 x 16, nnz 32" in info.stdout
    assert "permutation: none" in info.stdout


def test_factorize_options_reach_the_model(tmp_path, capsys):
    A = dft(16)
    source, out = tmp_path / "dft.npy", tmp_path / "dft.npz"
    np.save(source, A)
    code = main(
        [
            "factorize",
            str(source),
            "--out",
            str(out),
            "--n-factors",
            "2",
            "--tree",
            "left",
            "--permutation",
            "bit-reversal",
        ]
    )
    assert code == 0
    B = load(out)
    assert B.n_factors == 2
    np.testing.assert_array_equal(B.perm, bit_reversal_permutation(16))
    np.testing.assert_allclose(B.toarray(), A, atol=1e-10)
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    assert "permutation: bit-reversal" in capsys.readouterr().out


def test_factorize_reads_a_permutation_file(tmp_path, capsys):
    source, out = tmp_path / "dft.npy", tmp_path / "dft.npz"
    perm_file, bad_file = tmp_path / "perm.npy", tmp_path / "bad.npy"
    np.save(source, dft(16))
    np.save(perm_file, bit_reversal_permutation(16))
    np.save(bad_file, np.zeros(16, dtype=int))
    argv = ["factorize", str(source), "--out", str(out), "--permutation"]
    assert main([*argv, str(perm_file)]) == 0
    np.testing.assert_allclose(load(out).toarray(), dft(16), atol=1e-10)
    # Complex factors are quantized by rounding their real and imaginary parts.
    assert main([*argv, str(perm_file), "--precision", "6"]) == 0
    assert "quantizing to 6 (rtn): done" in capsys.readouterr().out
    factors = load(out).factors
    assert _max_significand_bits([K.real for K in factors]) <= 6
    assert _max_significand_bits([K.imag for K in factors]) <= 6
    capsys.readouterr()
    assert main([*argv, str(bad_file)]) == 1
    assert "permutation" in _one_line_error(capsys.readouterr().err)
    assert main([*argv, str(tmp_path / "missing.npy")]) == 1
    assert "cannot read permutation" in _one_line_error(capsys.readouterr().err)


@pytest.mark.parametrize("code", ["000", "110"])
def test_info_names_standard_permutations(tmp_path, code, capsys):
    path = tmp_path / "b.npz"
    perm = standard_permutations(16)[code]
    random_butterfly(16, permutation=perm, random_state=0).save(path)
    assert main(["info", str(path)]) == 0
    # "000" is the identity permutation, stored as an index array.
    assert f"permutation: standard '{code}'" in capsys.readouterr().out


def test_factorize_with_precision_writes_representable_values(tmp_path, capsys):
    A = random_butterfly(16, random_state=0).toarray()
    source, out = tmp_path / "a.npy", tmp_path / "a.npz"
    np.save(source, A)
    assert main(["factorize", str(source), "--out", str(out), "--precision", "5"]) == 0
    printed = capsys.readouterr().out
    assert "relative error before quantization:" in printed
    B = load(out)
    assert _max_significand_bits(B.factors) <= 5
    error = np.linalg.norm(B.toarray() - A) / np.linalg.norm(A)
    assert 0 < error < 0.2
    assert f"relative error: {error:.3e}" in printed
    assert main(["info", str(out)]) == 0
    assert "significand bits used by the values: " in capsys.readouterr().out


def test_significand_bits_matches_a_direct_count():
    rng = np.random.default_rng(0)
    for t in (1, 3, 8, 11, 24):
        # Round to t bits, then count independently.
        values = rng.standard_normal(50) * 10.0 ** rng.integers(-5, 5, 50)
        mantissa, exponent = np.frexp(values)
        rounded = np.ldexp(np.round(mantissa * 2.0**t) / 2.0**t, exponent)
        assert _significand_bits(rounded) == _max_significand_bits([rounded]) <= t
    assert _significand_bits(np.zeros(3)) == 0
    assert _significand_bits(np.array([0.75 + 0.5j])) == 2


@pytest.mark.parametrize(
    "argv, code, message",
    [
        ([], 2, "the following arguments are required: COMMAND"),
        (["frobnicate"], 2, "invalid choice: 'frobnicate'"),
        (["factorize", "x.npy"], 2, "the following arguments are required: --out"),
        (["factorize", "x.npy", "--out", "o.npz", "--tree", "up"], 2, "'up'"),
        (["factorize", "x.npy", "--out", "o.npz", "--rank", "two"], 2, "'two'"),
        (["demo", "--size", "1"], 1, "--size must be a power of two >= 2"),
        (["demo", "--size", "48"], 1, "--size must be a power of two >= 2"),
        (["demo", "--columns", "0"], 1, "--columns must be >= 1"),
    ],
)
def test_bad_options_give_one_line_and_an_exit_code(argv, code, message, capsys):
    assert main(argv) == code
    captured = capsys.readouterr()
    assert message in _one_line_error(captured.err)
    assert captured.out == ""


def _write(path, content):
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, dict):
        with open(path, "wb") as fh:  # a path would get ".npz" appended
            np.savez(fh, **content)
    else:
        np.save(path, content, allow_pickle=True)
    return path


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such file"),
        (b"not numpy at all", "not a .npy file"),
        ({"a": np.ones((2, 2))}, "got an .npz archive"),
        (np.array([{"payload": 1}], dtype=object), "not a .npy file"),
        (np.ones(5), "must be a 2-D array"),
        (np.array([[1.0, np.nan]]), "NaN or infinity"),
        (np.array([["a", "b"]]), "must hold numbers"),
    ],
    ids=["missing", "garbage", "npz", "pickle", "1d", "nan", "strings"],
)
def test_factorize_refuses_bad_input_files(tmp_path, content, message, capsys):
    source = tmp_path / "in.npy"
    if content is not None:
        _write(source, content)
    out = tmp_path / "out.npz"
    assert main(["factorize", str(source), "--out", str(out)]) == 1
    assert message in _one_line_error(capsys.readouterr().err)
    assert not out.exists()


def test_factorize_refuses_bad_values_and_destinations(hadamard_file, capsys):
    code = main(["factorize", str(hadamard_file), "--out", "/no/such/dir/o.npz"])
    assert code == 1
    assert "no directory" in _one_line_error(capsys.readouterr().err)
    out = os.path.join(os.path.dirname(hadamard_file), "o.npz")
    assert main(["factorize", str(hadamard_file), "--out", out, "--rank", "0"]) == 1
    assert "rank" in _one_line_error(capsys.readouterr().err)
    code = main(["factorize", str(hadamard_file), "--out", out, "--precision", "x"])
    assert code == 1
    assert "x" in _one_line_error(capsys.readouterr().err)
    assert not os.path.exists(out)


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such file"),
        (b"garbage", "not a readable"),
        ({"a": np.ones(2)}, "not a skbutterfly ButterflyMatrix file"),
    ],
    ids=["missing", "garbage", "foreign-npz"],
)
def test_info_refuses_bad_files(tmp_path, content, message, capsys):
    path = tmp_path / "b.npz"
    if content is not None:
        _write(path, content)
    assert main(["info", str(path)]) == 1
    assert message in _one_line_error(capsys.readouterr().err)


def test_bad_file_in_a_subprocess_exits_non_zero(tmp_path):
    result = _run("info", str(tmp_path / "missing.npz"))
    assert result.returncode == 1
    assert "no such file" in _one_line_error(result.stderr)


def test_installed_script_matches_the_module():
    script = os.path.join(os.path.dirname(sys.executable), "skbutterfly")
    if not os.path.exists(script):
        pytest.skip("the skbutterfly script is not installed in this environment")
    result = subprocess.run(
        [script, "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert "demo" in result.stdout and "factorize" in result.stdout
