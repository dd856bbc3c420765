"""Every gallery example runs to the end, cell by cell as sphinx-gallery runs it.

sphinx-gallery executes an example block by block (blocks start at ``# %%``),
renders the figures open at the end of each block and closes them, and prints
the repr of a block's last expression. So a figure created in one block and
drawn in the next renders empty, and a block ending with ``ax.legend()`` prints
a ``Legend`` object. The driver below replays that and fails on both.
"""

import os
import pathlib
import subprocess
import sys

import pytest

EXAMPLES = sorted((pathlib.Path(__file__).parents[1] / "examples").glob("plot_*.py"))

# A hang guard, not a timing claim: examples are meant to finish in well
# under a minute, on a loaded 2-core machine too.
TIMEOUT = 300

DRIVER = r'''
import ast, sys
import matplotlib
import matplotlib.pyplot as plt

path = sys.argv[1]
source = open(path, encoding="utf-8").read()
blocks, current = [], []
for line in source.splitlines(keepends=True):
    if line.startswith("# %%"):
        blocks.append("".join(current))
        current = []
    current.append(line)
blocks.append("".join(current))
namespace = {"__name__": "__main__", "__file__": path}
problems = []
for number, block in enumerate(blocks, start=1):
    tree = ast.parse(block)
    last = tree.body[-1] if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    if last is not None:
        tree.body = tree.body[:-1]
    exec(compile(tree, path, "exec"), namespace)
    if last is not None:
        value = eval(compile(ast.Expression(last.value), path, "eval"), namespace)
        items = value if isinstance(value, (list, tuple)) else [value]
        if any(isinstance(v, matplotlib.artist.Artist) for v in items):
            problems.append(f"block {number} prints the repr {value!r}")
    for fignum in plt.get_fignums():
        for i, ax in enumerate(plt.figure(fignum).axes):
            if ax.get_visible() and not (ax.has_data() or ax.texts):
                problems.append(f"block {number}: figure {fignum} axes {i} is empty")
    plt.close("all")
if problems:
    sys.exit("\n".join(problems))
'''


def _replay(path, cwd):
    """Run ``path`` block by block in a fresh interpreter (Agg backend)."""
    pytest.importorskip("matplotlib")
    return subprocess.run(
        [sys.executable, "-c", DRIVER, str(path)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=cwd,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runs_and_renders_no_empty_axes(path, tmp_path):
    result = _replay(path, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]


def test_the_driver_catches_empty_axes_and_artist_reprs(tmp_path):
    bad = tmp_path / "plot_bad.py"
    bad.write_text(
        "import matplotlib.pyplot as plt\n"
        "fig, axes = plt.subplots(1, 2)\n"
        "# %%\n"
        "axes[0].plot([1, 2], label='a')\n"
        "axes[0].legend()\n"
    )
    result = _replay(bad, tmp_path)
    assert result.returncode != 0
    assert "block 1: figure 1 axes 0 is empty" in result.stderr
    assert "block 2 prints the repr" in result.stderr


def test_there_are_examples():
    names = {path.name for path in EXAMPLES}
    assert {"plot_depth_and_precision.py", "plot_dictionary_learning.py"} <= names
