"""Sphinx configuration of the convexnn documentation (``make docs``)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import convexnn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

project = "convexnn"
author = "convexnn developers"
copyright = "convexnn developers"
release = convexnn.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.intersphinx",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "_api_names.rst", "auto_examples/*.ipynb", "auto_examples/*.py", "auto_examples/*.zip"]
html_theme = "pydata_sphinx_theme"
html_title = f"convexnn {release}"
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2}

# -- API reference ----------------------------------------------------------------------
# The list of documented names is convexnn.__all__ at build time, so names that other
# modules add appear without editing the docs.
# the autosummary list is written below into _api_names.rst (included by api.rst, not a
# page of its own), so it is named here for stub generation
autosummary_generate = ["api.rst", "_api_names.rst"]
autodoc_typehints = "none"  # numpydoc shows the documented types
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

_public = sorted(n for n in convexnn.__all__ if not n.startswith("_"))
_extra = ["convexnn.plotting.ConvergenceDisplay", "convexnn.plotting.NetworkFunctionDisplay"]
try:  # written concurrently; documented once it exists
    from convexnn.plotting import RegularizationPathDisplay  # noqa: F401

    _extra.append("convexnn.plotting.RegularizationPathDisplay")
except ImportError:
    pass


def _write_api_list() -> None:
    lines = [
        ".. autosummary::",
        "   :toctree: generated/",
        "   :template: autosummary/entry.rst",
        "",
    ]
    lines += [f"   convexnn.{n}" for n in _public]
    lines += ["", "Plots (``convexnn.plotting``, needs matplotlib)", "-" * 47, "",
              ".. autosummary::", "   :toctree: generated/", "   :template: autosummary/entry.rst", ""]
    lines += [f"   {n}" for n in _extra]
    text = "\n".join(lines) + "\n"
    target = HERE / "_api_names.rst"
    if not target.exists() or target.read_text() != text:
        target.write_text(text)


_write_api_list()

# -- gallery ----------------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": str(HERE.parent / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "within_subsection_order": "FileNameSortKey",
    "show_memory": False,
    "abort_on_example_error": False,
    "only_warn_on_example_error": False,
}
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

intersphinx_mapping = {}  # no network during builds
nitpicky = False
suppress_warnings = ["config.cache"]


# -- docstring hygiene ------------------------------------------------------------------
_LITERAL = re.compile(r"(``.+?``|:[\w:]+:`[^`]*`|(?<!`)`[^`]+`(?!`)_?)")
_TRAILING_UNDERSCORE = re.compile(r"\b([A-Za-z]\w*?)_(?=[\s,;:.)\]]|$)")
_PARAM_LINE = re.compile(r"^(\s*\*{0,2}\w+\s:\s|\s*\*{0,2}\w+\s*$)")


def _escape_fitted_names(app, what, name, obj, options, lines):
    """Escape ``name_`` outside literals: plain text ``n_neurons_`` is an RST reference.

    Fitted-attribute names (``coefs_``) are common in scikit-learn-style docstrings; in a
    type or a sentence outside double backticks docutils reads them as link targets and
    fails the build. The parameter name itself is left to numpydoc.
    """
    in_literal = False  # a ``literal`` may run over a line break
    for i, line in enumerate(lines):
        head = ""
        if in_literal:
            end = line.find("``")
            if end < 0:
                continue
            head, line = line[: end + 2], line[end + 2 :]
            in_literal = False
        else:
            m = _PARAM_LINE.match(line)
            if m:
                head, line = line[: m.end()], line[m.end() :]
        parts = _LITERAL.split(line)
        for k in range(0, len(parts), 2):  # even parts are outside literals and roles
            text = parts[k]
            if "``" in text:  # an unclosed literal starts here
                cut = text.index("``")
                text = _TRAILING_UNDERSCORE.sub(r"\1\\_", text[:cut]) + text[cut:]
                in_literal = True
            else:
                text = _TRAILING_UNDERSCORE.sub(r"\1\\_", text)
            parts[k] = text
        lines[i] = head + "".join(parts)


def _skip_member(app, what, name, obj, skip, options):
    # scikit-learn's generated metadata-routing setters (documented by scikit-learn)
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def setup(app):
    app.connect("autodoc-process-docstring", _escape_fitted_names, priority=400)
    app.connect("autodoc-skip-member", _skip_member)
