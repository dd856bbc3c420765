"""The command line, end to end (subprocess) and in process (error paths)."""

import os
import subprocess
import sys

import numpy as np
import pytest

from skbutterfly import (
    SparseProduct,
    bit_reversal_permutation,
    load,
    standard_permutations,
)
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


def test_info_describes_a_sparse_product_file(tmp_path, capsys):
    path = tmp_path / "p.npz"
    SparseProduct([np.eye(4)[:, :3], np.ones((3, 2))]).save(path)
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "4 x 2 SparseProduct" in out and "2 factors" in out
    assert "S_1: 4 x 3, nnz 3" in out and "S_2: 3 x 2, nnz 6" in out
    assert "stored values: 9 (112.500% of dense); flops per product: 18" in out


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
        (["demo", "--size", "1"], 2, "--size: expected a power of two >= 2"),
        (["demo", "--size", "48"], 2, "--size: expected a power of two >= 2"),
        (["demo", "--columns", "0"], 2, "--columns: expected an integer >= 1"),
        (["demo", "--noise", "-1"], 2, "--noise: expected a finite number >= 0"),
        (["demo", "--precision", "float8"], 2, "--precision: expected"),
        (["demo", "--precision", "0"], 2, "--precision: expected"),
        (["factorize", "x.npy", "--out", "o.npy"], 2, "--out: expected a file"),
        (
            ["factorize", "x.npy", "--out", "o.npz", "--n-factors", "0"],
            2,
            "--n-factors",
        ),
        (["factorize", "x.npy", "--out", "o.npz", "--n-jobs", "0"], 2, "nonzero"),
        (
            ["factorize", "x.npy", "--out", "o.npz", "--permutation", "bitrev"],
            2,
            "--permutation: expected one of none, bit-reversal, default-8, auto",
        ),
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
    assert main(["factorize", str(hadamard_file), "--out", out, "--rank", "0"]) == 2
    assert "--rank" in _one_line_error(capsys.readouterr().err)
    code = main(["factorize", str(hadamard_file), "--out", out, "--precision", "x"])
    assert code == 2
    assert "--precision" in _one_line_error(capsys.readouterr().err)
    # Values that depend on the matrix are checked before the factorization.
    code = main(["factorize", str(hadamard_file), "--out", out, "--rank", "99"])
    assert code == 1
    captured = capsys.readouterr()
    assert "rank must be in [1, 16]" in _one_line_error(captured.err)
    assert "factorizing" not in captured.out
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


def test_version_and_help_on_every_option(capsys):
    from skbutterfly import __version__
    from skbutterfly.__main__ import _parser

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"skbutterfly {__version__}"
    parser = _parser()
    commands = parser._subparsers._group_actions[0].choices
    for name, command in commands.items():
        for action in command._actions:
            assert action.help, f"{name} {action.dest} has no help"
    assert main(["factorize", "--help"]) == 0
    out = capsys.readouterr().out
    for code in ("bit-reversal", "default-8", "000", "111", ".npy"):
        assert code in out


def test_factorize_prints_a_hint_for_a_poor_fit(tmp_path, capsys):
    source, out = tmp_path / "noise.npy", tmp_path / "noise.npz"
    np.save(source, np.random.default_rng(0).standard_normal((32, 32)))
    assert main(["factorize", str(source), "--out", str(out)]) == 0
    hints = [
        line
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("hint:")
    ]
    assert len(hints) == 1 and "rank" in hints[0] and "permutation" in hints[0]


def test_quantization_time_is_reported_apart_from_the_error(tmp_path, capsys):
    source, out = tmp_path / "a.npy", tmp_path / "a.npz"
    np.save(source, random_butterfly(16, random_state=0).toarray())
    argv = ["factorize", str(source), "--out", str(out), "--precision", "bfloat16"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "quantizing to bfloat16 (pairwise): done in" in printed
    assert "(error evaluated in" in printed


def test_info_does_not_claim_full_precision_values_fit_a_small_format(tmp_path, capsys):
    path = tmp_path / "b.npz"
    random_butterfly(8, random_state=0).save(path)  # Gaussian float64 values
    assert main(["info", str(path)]) == 0
    line = next(
        line for line in capsys.readouterr().out.splitlines() if "significand" in line
    )
    assert "bits used by the values: 53" in line
    assert "bfloat16" not in line and "no low-precision preset" in line


def test_factorize_with_row_permutations(tmp_path, capsys):
    rng = np.random.default_rng(0)
    rows, cols = rng.permutation(16), rng.permutation(16)
    A = random_butterfly(16, random_state=0).toarray()
    S = np.empty_like(A)
    S[np.ix_(rows, cols)] = A
    source, out = tmp_path / "s.npy", tmp_path / "s.npz"
    row_file, col_file = tmp_path / "rows.npy", tmp_path / "cols.npy"
    np.save(source, S)
    np.save(row_file, rows)
    np.save(col_file, cols)
    argv = ["factorize", str(source), "--out", str(out)]
    assert (
        main(
            [*argv, "--row-permutation", str(row_file), "--permutation", str(col_file)]
        )
        == 0
    )
    B = load(out)
    np.testing.assert_array_equal(B.row_perm, rows)
    np.testing.assert_allclose(B.toarray(), S, atol=1e-10)
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    assert "row permutation: custom index array" in capsys.readouterr().out
    # Learned from the matrix alone, and quantized with the permutations kept.
    learn = ["--row-permutation", "learn", "--permutation", "learn"]
    assert main([*argv, *learn, "--precision", "bfloat16"]) == 0
    Q = load(out)
    assert Q.row_perm is not None and Q.perm is not None
    assert np.linalg.norm(Q.toarray() - S) <= 1e-2 * np.linalg.norm(S)
    capsys.readouterr()
    assert main([*argv, "--row-permutation", "sideways"]) == 2
    assert "--row-permutation" in _one_line_error(capsys.readouterr().err)
    assert main([*argv, "--row-permutation", str(tmp_path / "none.npy")]) == 1
    assert "cannot read permutation" in _one_line_error(capsys.readouterr().err)


def test_factorize_precision_writes_the_compact_file_and_info_shows_it(
    tmp_path, capsys
):
    A = random_butterfly(256, random_state=0).toarray()
    source = tmp_path / "a.npy"
    np.save(source, A)
    plain, compact = tmp_path / "plain.npz", tmp_path / "compact.npz"
    assert main(["factorize", str(source), "--out", str(plain)]) == 0
    argv = ["factorize", str(source), "--out", str(compact), "--precision"]
    assert main([*argv, "float8_e4m3"]) == 0
    assert os.path.getsize(compact) <= 0.17 * os.path.getsize(plain)
    assert load(compact).format is not None
    capsys.readouterr()
    assert main(["info", str(compact)]) == 0
    printed = capsys.readouterr().out
    size = os.path.getsize(compact)
    assert "value format: FloatFormat(t=4, emin=-6, emax=8" in printed
    assert f"file: {size} bytes, {size / load(compact).nnz:.2f} bytes per" in printed
    assert main(["info", str(plain)]) == 0
    assert "value format: not recorded" in capsys.readouterr().out


def test_factorize_refuses_to_overwrite_its_input(tmp_path, capsys):
    path = tmp_path / "h.npz"  # a .npy file under the output's suffix
    with open(path, "wb") as fh:
        np.save(fh, hadamard(16))
    before = path.read_bytes()
    assert main(["factorize", str(path), "--out", str(path)]) == 1
    assert "--out" in _one_line_error(capsys.readouterr().err)
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    "argv",
    [["demo", "--size", str(2**40)], ["factorize", "HUGE"]],
    ids=["demo", "factorize-npy"],
)
def test_memory_error_is_one_line(tmp_path, argv):
    """A size too large for memory ends in one line on stderr, exit code 1."""
    huge = tmp_path / "huge.npy"
    with open(huge, "wb") as fh:  # a 128-byte header declaring 2**17 x 2**17
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "<f8", "fortran_order": False, "shape": (2**17, 2**17)}
        )
        fh.write(b"\0" * 64)
    argv = [str(huge) if a == "HUGE" else a for a in argv]
    if argv[0] == "factorize":
        argv += ["--out", str(tmp_path / "o.npz")]
    code = (
        "import resource, sys; "
        "resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30)); "
        "from skbutterfly.__main__ import main; sys.exit(main(sys.argv[1:]))"
    )
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 1, result.stderr
    _one_line_error(result.stderr)
