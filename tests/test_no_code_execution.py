"""No code execution from data anywhere in the source tree (issue 12).

Network, results, model and data files come from strangers. Nothing that reads
them may unpickle (pickle, marshal, shelve, dill, joblib, ``allow_pickle=True``),
or evaluate text as code (``eval``, ``exec``, ``compile``, ``__import__``).
Checked on the syntax tree, so a method that happens to be called ``eval``
(``model.eval()`` in PyTorch) is not a false alarm and a string is not code.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TREES = ("eventsnn", "cli", "data", "bench", "docs", "notebooks")
UNPICKLERS = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "joblib", "cloudpickle"}
EVAL_NAMES = {"eval", "exec", "compile", "__import__"}


def sources():
    files = [p for tree in TREES for p in sorted((REPO / tree).rglob("*.py"))]
    assert len(files) > 30, "the source tree was not found"
    return files


def offences(tree: ast.AST) -> list:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in UNPICKLERS]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNPICKLERS:
            found.append(f"from {node.module} import ...")
        elif isinstance(node, ast.Call):
            fn = node.func
            if isinstance(fn, ast.Name) and fn.id in EVAL_NAMES:
                found.append(f"{fn.id}(...)")
            if isinstance(fn, ast.Attribute) and fn.attr in EVAL_NAMES and \
                    isinstance(fn.value, ast.Name) and fn.value.id == "builtins":
                found.append(f"builtins.{fn.attr}(...)")
            for kw in node.keywords:
                if kw.arg == "allow_pickle" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                    found.append("allow_pickle not literally False")
                if kw.arg == "weights_only" and not (isinstance(kw.value, ast.Constant) and kw.value.value is True):
                    found.append("torch.load(weights_only=...) not literally True")
            if isinstance(fn, ast.Attribute) and fn.attr == "load" and isinstance(fn.value, ast.Name) \
                    and fn.value.id == "torch" and not any(k.arg == "weights_only" for k in node.keywords):
                found.append("torch.load without weights_only=True")
    return found


def test_no_unpickling_or_eval_in_the_source_tree():
    bad = {}
    for path in sources():
        found = offences(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        if found:
            bad[str(path.relative_to(REPO))] = found
    assert not bad, bad


@pytest.mark.parametrize("code", ["import pickle", "from marshal import loads", "eval('1')",
                                  "exec(text)", "np.load(p, allow_pickle=True)", "np.load(p, allow_pickle=flag)",
                                  "builtins.exec(x)", "torch.load(f)"])
def test_the_check_catches_each_kind(code):
    assert offences(ast.parse(code))


def test_method_named_eval_is_not_an_offence():
    assert not offences(ast.parse("model.eval()\nnp.load(p, allow_pickle=False)\ns = 'eval(x)'"))
