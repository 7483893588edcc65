"""Sphinx configuration of the eventsnn docs site (``pip install ".[docs]"``, then
``sphinx-build -W -b html docs docs/_build/html``; tests/test_docs_site.py builds it with -W).

The API reference comes from the docstrings (autodoc), the CLI reference from the click
commands themselves (sphinx-click), and the notebooks are rendered by myst-nb from copies
made here at build time (Sphinx reads only files under docs/). They are rendered without
executing them (they are committed without outputs; tests/test_notebooks.py runs them).
"""

import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

project = "eventsnn"
author = "eventsnn developers"
from importlib.metadata import version as _version  # noqa: E402

release = _version("eventsnn")
extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx_click"]
exclude_patterns = ["_build", "images/make_images.py"]
nb_execution_mode = "off"
myst_heading_anchors = 3
autodoc_member_order = "bysource"
autodoc_typehints = "none"
html_theme = "alabaster"
suppress_warnings = ["myst.header"]  # the docs' pages start at ## under their own # title

# the notebooks live in notebooks/, outside Sphinx's source folder: copy them in
_nb = os.path.join(HERE, "_notebooks")
os.makedirs(_nb, exist_ok=True)
for name in sorted(os.listdir(os.path.join(ROOT, "notebooks"))):
    if name.endswith(".ipynb"):
        shutil.copy2(os.path.join(ROOT, "notebooks", name), os.path.join(_nb, name))


def _notebook_links(app, docname, source):
    """The docs link to ../notebooks/*.ipynb (right on GitHub); in the site the copies are in _notebooks/."""
    source[0] = source[0].replace("../notebooks/", "_notebooks/")


def setup(app):
    app.connect("source-read", _notebook_links)
