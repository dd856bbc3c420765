"""The API reference lists every public name (the doc build itself is not run)."""

import importlib
import pathlib
import re

import pytest

API = pathlib.Path(__file__).parents[1] / "doc" / "api.rst"


def _documented():
    """Names listed in autosummary blocks, per current module."""
    documented, module, in_block = set(), None, False
    for line in API.read_text().splitlines():
        if match := re.match(r"\.\. currentmodule:: (\S+)", line):
            module = match.group(1)
        elif line.startswith(".. autosummary::"):
            in_block = True
        elif in_block and re.match(r"   [A-Za-z_]\w*$", line):
            documented.add(f"{module}.{line.strip()}")
        elif line and not line.startswith(" "):
            in_block = False
    return documented


@pytest.mark.parametrize(
    "module", ["skbutterfly", "skbutterfly.datasets", "skbutterfly.model_selection"]
)
def test_api_reference_lists_every_public_name(module):
    public = {f"{module}.{name}" for name in importlib.import_module(module).__all__}
    documented = {name for name in _documented() if name.rsplit(".", 1)[0] == module}
    assert public - documented == set(), "add them to doc/api.rst"
    assert documented - public == set(), "not in __all__ any more"
