"""Every gallery example runs to the end (as sphinx-gallery would run it)."""

import os
import pathlib
import subprocess
import sys

import pytest

EXAMPLES = sorted((pathlib.Path(__file__).parents[1] / "examples").glob("plot_*.py"))

# A hang guard, not a timing claim: examples are meant to finish in well
# under a minute, on a loaded 2-core machine too.
TIMEOUT = 300


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(path, tmp_path):
    pytest.importorskip("matplotlib")
    code = f"import runpy; runpy.run_path({str(path)!r}, run_name='__main__')"
    env = {**os.environ, "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_there_are_examples():
    names = {path.name for path in EXAMPLES}
    assert {"plot_depth_and_precision.py", "plot_dictionary_learning.py"} <= names
