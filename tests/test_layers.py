"""The package's layers import only downwards (README, "Layout")."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "skbutterfly"

LAYERS = {
    1: "_block_svd _parallel _formats _scaling _validation _constants _warnings "
    "_progress _batch_omp",
    2: "_patterns _ks _supports _permutations _operator _io _sparse_product",
    3: "_support_analysis _fsmf _fsmf_exact _fsmf_als _trees _split _slabs "
    "_orderings_rank _orderings_polish _orderings_levels _orderings _hierarchical "
    "_breakpoints "
    "_quantize_bounded _quantize_rank_one _quantize _projections _palm "
    "_sparse_factorize "
    "_dictionary_learning _exhaustive",
    4: "_base _butterfly_factorizer _fixed_support_factorizer _quantized_butterfly "
    "_sparse_factorizer _butterfly_dictionary_learning",
    5: "model_selection datasets __main__ __init__",
    # Outside the layers: baselines for tests, examples and benchmarks.
    6: "_baselines",
}
LAYER = {name: level for level, names in LAYERS.items() for name in names.split()}


def _imports(path):
    """Modules of the package imported at module level by ``path``."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module:
            parts = node.module.split(".")
            if parts[0] == "skbutterfly":
                if len(parts) > 1:
                    found.add(parts[1])
                else:  # "from skbutterfly import x": x may be a module
                    found.update(a.name for a in node.names if a.name in LAYER)
    return found


def test_every_module_has_a_layer():
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert modules == set(LAYER), (modules - set(LAYER), set(LAYER) - modules)


@pytest.mark.parametrize("module", sorted(LAYER))
def test_imports_go_downwards(module):
    upward = {
        name: LAYER[name]
        for name in _imports(PACKAGE / f"{module}.py")
        if LAYER[name] > LAYER[module]
    }
    assert not upward, f"{module} (layer {LAYER[module]}) imports {upward}"
