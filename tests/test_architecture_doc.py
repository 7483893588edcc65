"""docs/ARCHITECTURE.md cannot go stale: every file it names exists."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "ARCHITECTURE.md"


def test_named_files_exist():
    if not DOC.exists():  # an installed package without its docs: nothing to check against
        import pytest
        pytest.skip("docs/ARCHITECTURE.md is not beside the tests")
    names = set(re.findall(r"`((?:eventsnn|bench|tests|docs|cli|\.ci)/[\w./-]*)`", DOC.read_text()))
    assert len(names) >= 15
    missing = sorted(n for n in names if not (ROOT / n.rstrip("/")).exists())
    assert not missing, f"ARCHITECTURE.md names files that do not exist: {missing}"


def test_engine_modules_are_all_described():
    text = DOC.read_text() if DOC.exists() else ""
    if not text:
        import pytest
        pytest.skip("docs/ARCHITECTURE.md is not beside the tests")
    for path in sorted((ROOT / "eventsnn" / "engine").glob("*.py")):
        if path.name != "__init__.py":
            assert f"eventsnn/engine/{path.name}" in text, f"{path.name} is not in ARCHITECTURE.md"
