"""Sphinx configuration of the s2nn_xp documentation."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE / "_ext"))

import s2nn_xp  # noqa: E402

project = "s2nn_xp"
author = "the s2nn_xp developers"
copyright = "2026, the s2nn_xp developers"
release = version = s2nn_xp.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",
    "numpydoc",
    "matplotlib.sphinxext.plot_directive",
    "s2nn_docs",
]

# CuPy needs a CUDA driver to import; its module is documented from source.
autodoc_mock_imports = ["cupy", "cupyx"]
autosummary_generate = True
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks = {"GL08"}  # every public object has a docstring
# but the __init__ that typing.Protocol gives a protocol (Pullback): no
# constructor of ours
numpydoc_validation_exclude = {r"\.Pullback\.__init__$"}

# MathJax is served with the site (the sphinx-mathjax-offline package copies
# it into _static/mathjax), so the math renders without network access too.
mathjax_path = "mathjax/tex-chtml.js"

# Figures come first; where a page shows the code that drew one, it follows.
plot_include_source = False
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 110)]

# The doctest builder runs the ``.. doctest::`` blocks of these pages; the
# docstrings' examples run in each backend's test session (tests/test_docs.py),
# where that backend (and, for CuPy, a GPU) is present.
doctest_test_doctest_blocks = ""
doctest_global_setup = """
import numpy as np
np.set_printoptions(legacy=False)
"""

intersphinx_mapping = {}
html_theme = "pydata_sphinx_theme"
html_title = f"s2nn_xp {version}"
html_static_path = ["_static"]
html_css_files = ["s2nn.css"]
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "header_links_before_dropdown": 4,  # the header stays one line at 1280 px
}
# Light or dark as the reader's system is; without a default mode the theme
# logs a console error on a reader's first visit.
html_context = {"default_mode": "auto"}
# No left sidebar: the pages have no sub-pages to list (the API pages are
# listed on the API page), and the content gets its width.
html_sidebars = {"**": []}
exclude_patterns = ["_build"]
nitpicky = False
