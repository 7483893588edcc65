"""The docs site (Sphinx: API reference from the docstrings, CLI reference from click, the notebooks) builds
without a single warning (-W), and holds what it promises."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_docs_site_builds_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_nb")
    pytest.importorskip("sphinx_click")
    from sphinx.cmd.build import build_main

    out = tmp_path / "html"
    rc = build_main(["-W", "--keep-going", "-E", "-q", "-b", "html", str(ROOT / "docs"), str(out),
                     "-d", str(tmp_path / "doctrees")])
    assert rc == 0, "sphinx-build -W failed: see the warnings above"
    cli = (out / "cli.html").read_text()
    for command in ("run", "convert", "export", "energy-report"):
        assert f'id="eventsnn-{command}"' in cli and f"cmdoption-eventsnn-{command}-" in cli
    api = (out / "api.html").read_text()
    for name in ("Simulator", "write_nir", "read_nir_network", "load_dataset", "energy_report", "path"):
        assert name in api
    assert (out / "_notebooks" / "01_step_through_debugging.html").is_file()
    assert (out / "_notebooks" / "02_conversion_walkthrough.html").is_file()
    assert "1.479" in (out / "DEBUGGING.html").read_text()
