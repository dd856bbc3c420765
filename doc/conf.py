"""Sphinx configuration for skbutterfly (builds offline).

Build with ``python -m sphinx -W -b html doc doc/_build/html`` (or
``make -C doc html``). Set ``SKBUTTERFLY_DOC_INTERSPHINX=1`` to link to the
NumPy, SciPy and scikit-learn documentation (needs network access).
"""

import importlib.metadata
import os
import re

project = "skbutterfly"
author = "The skbutterfly developers"
copyright = "The skbutterfly developers"
release = importlib.metadata.version("skbutterfly")
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
default_role = "literal"

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

# Inventories are fetched from the network: only on request, so that the
# default build works offline (a failed fetch is a warning, fatal under -W).
intersphinx_mapping = {}
if os.environ.get("SKBUTTERFLY_DOC_INTERSPHINX"):
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable", None),
        "scipy": ("https://docs.scipy.org/doc/scipy", None),
        "sklearn": ("https://scikit-learn.org/stable", None),
        "joblib": ("https://joblib.readthedocs.io/en/stable", None),
    }

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "doc_module": ("skbutterfly",),
    "backreferences_dir": "generated/backreferences",
    "reference_url": {"skbutterfly": None},
    "download_all_examples": False,
}

html_theme = "pydata_sphinx_theme"
html_title = f"skbutterfly {release}"
html_theme_options = {"navigation_with_keys": False}


# scikit-learn style shapes such as "(n_samples, n_features_in_)" read as
# reference targets in reStructuredText (a trailing underscore): render such
# bare names literally, outside code examples.
_BARE_NAME = re.compile(r"(?<![`\w])([A-Za-z]\w*_)(?=[,)])")


def _quote_bare_names(app, what, name, obj, options, lines):
    lines[:] = [
        line
        if line.lstrip().startswith((">>>", "..."))
        else _BARE_NAME.sub(r"``\1``", line)
        for line in lines
    ]


def setup(app):
    app.connect("autodoc-process-docstring", _quote_bare_names)
