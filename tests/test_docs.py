"""Docs that cannot go stale: the code blocks of README.md and docs/*.md that show output are run and compared.

Conventions (the test fails on a block that follows none of them):

* a ```text block whose first line is ``$ eventsnn ...`` is a command and its
  output: the command is run (click's CliRunner, from an empty folder) and its
  stdout is compared line by line, token by token, numbers included, exactly.
  Stated tolerances: a ``time/sample`` line's value is a timing and is not
  compared (only the key and the unit); a path is compared by its file name
  (the shipped files print as absolute paths that depend on the install);
* a ```python block with ``>>>`` lines is a doctest: run from an empty folder,
  every printed value compared (NORMALIZE_WHITESPACE);
* any other ```python block is run from an empty folder and must not raise;
* a ```sh/```python block preceded by ``<!-- not run: REASON -->`` is skipped
  (installs, other machines' data).
"""

from __future__ import annotations

import doctest
import os
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"(?P<marker><!-- not run: [^>]*-->\s*\n)?^```(?P<lang>[^\n`]*)\n(?P<body>.*?)^```\s*$",
                   re.S | re.M)


def blocks():
    out = []
    for path in DOCS:
        text = path.read_text()
        for m in FENCE.finditer(text):
            line = text.count("\n", 0, m.start("body"))
            out.append(pytest.param(path, m.group("lang"), m.group("body"), bool(m.group("marker")),
                                    id=f"{path.name}:{line}"))
    return out


def _is_command(lang, body):
    return lang == "text" and body.startswith("$ eventsnn ")


def _is_checked(lang, body):
    return _is_command(lang, body) or lang == "python"


def _tokens(line):
    toks = line.split()
    return [os.path.basename(t) if "/" in t and t.endswith((".h5", ".npz", ".nir", ".onnx")) else t for t in toks]


def compare_output(expected: str, actual: str):
    exp = [ln for ln in expected.splitlines()]
    act = [ln for ln in actual.splitlines()]
    assert len(exp) == len(act), f"{len(act)} lines printed, the docs show {len(exp)}:\n{actual}"
    for e, a in zip(exp, act):
        te, ta = _tokens(e), _tokens(a)
        if te[:1] == ["time/sample"]:  # a timing: key and unit only
            assert ta[:1] == te[:1] and ta[-1:] == te[-1:], (e, a)
            continue
        assert te == ta, f"\ndocs:   {e}\nactual: {a}"


@pytest.mark.parametrize("path, lang, body, not_run", blocks())
def test_doc_block(path, lang, body, not_run, tmp_path, monkeypatch):
    if not_run:
        pytest.skip("marked <!-- not run -->")
    if lang == "sh" or (lang == "python" and "import keras" in body):
        pytest.fail(f"{path.name}: a ```{lang} block that is not run needs a <!-- not run: REASON --> marker")
    if not _is_checked(lang, body):
        pytest.skip("not code with output (a format sample or a table)")
    monkeypatch.chdir(tmp_path)  # the docs must work from any folder
    if _is_command(lang, body):
        first, _, expected = body.partition("\n")
        from eventsnn.cli.main import main

        res = CliRunner().invoke(main, shlex.split(first[len("$ eventsnn "):]))
        assert res.exit_code == 0, res.output
        compare_output(expected.rstrip("\n"), res.stdout.rstrip("\n"))
    elif ">>> " in body:
        pytest.importorskip("nir") if "nir" in body else None
        test = doctest.DocTestParser().get_doctest(body, {}, path.name, str(path), 0)
        runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
        out = []
        runner.run(test, out=out.append)
        assert runner.failures == 0, "".join(out)
    else:
        if "to_nir_event_data" in body:
            pytest.importorskip("nir")
        exec(compile(body, f"{path.name}:block", "exec"), {"__name__": "__docs__"})


def test_the_compare_catches_a_changed_number():
    with pytest.raises(AssertionError):
        compare_output("accuracy     92.00 %", "accuracy     91.00 %")
    compare_output("time/sample  13.271 ms", "time/sample  99.000 ms")
    compare_output("network      data/default_net.h5", "network      /x/y/data/default_net.h5")


def test_debugging_prose_numbers_come_from_its_doctest():
    """The sentence after the doctest repeats its numbers; each must appear in the doctest's expected output."""
    text = (ROOT / "docs" / "DEBUGGING.md").read_text()
    block = text[text.index(">>> import numpy"):text.index("The first output spike is neuron")]
    prose = text[text.index("The first output spike is neuron"):text.index("## Pictures")]
    shown = set(re.findall(r"-?\d+\.\d+|\d+", block.split("\n", 1)[1]))
    for number in re.findall(r"-?\d+\.\d+", prose):
        assert number in shown or number.rstrip("0") in shown, number
