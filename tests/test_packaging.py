"""Packaging: the type marker ships inside the package (PEP 561)."""

import pathlib

import tomllib

import skbutterfly

ROOT = pathlib.Path(__file__).parents[1]


def test_py_typed_marker_is_in_the_package_the_wheel_ships():
    package = pathlib.Path(skbutterfly.__file__).parent
    assert (package / "py.typed").is_file()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    # The wheel ships the whole package directory, the marker included.
    assert config["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == [
        "skbutterfly"
    ]
