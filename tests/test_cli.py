"""The command line: ``python -m skbutterfly demo`` runs and exits cleanly.

The demo's content grows with the package; these tests only check that it
runs end to end on a small size and that bad commands fail with status 2.
"""

import subprocess
import sys

from skbutterfly.__main__ import main


def test_demo_runs_on_a_small_size(capsys):
    assert main(["demo", "--size", "64", "--columns", "3"]) == 0
    out = capsys.readouterr().out
    assert "butterfly" in out.lower()


def _run(*args):
    return subprocess.run(
        [sys.executable, "-m", "skbutterfly", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_module_entry_point_runs():
    result = _run("demo", "--size", "64")
    assert result.returncode == 0, result.stderr
    assert "butterfly" in result.stdout.lower()


def test_unknown_command_fails_with_status_2():
    result = _run("frobnicate")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
