"""Parse JSON text from files safely: bounded nesting, one error class, no surprises.

Network files, results files and Keras models carry JSON in HDF5 attributes.
``json.loads`` recurses once per nesting level, so ``[[[[...]]]]`` 100,000
deep raises ``RecursionError`` (and even a parse that succeeds would make
every later consumer that walks the value recurse as deeply). The depth is
therefore counted first, in one linear scan, and refused above
:data:`MAX_DEPTH`; NaN and Infinity literals (not JSON) are refused too.
"""

from __future__ import annotations

import json
import re

MAX_DEPTH = 100  # Keras model configs nest about 10 deep; eventsnn's own files 4
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")


def nesting_depth(text: str) -> int:
    """The deepest nesting of arrays/objects in ``text`` (strings ignored)."""
    depth = deepest = 0
    for m in _BRACKETS.finditer(_STRINGS.sub('""', text)):
        if m.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _no_constants(name):
    raise ValueError(f"{name} is not valid JSON")


def loads(text, where: str, error, max_depth: int = MAX_DEPTH):
    """Parse ``text`` (str or bytes); any problem raises ``error`` naming ``where``."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise error(f"{where}: is not UTF-8 text") from None
    if not isinstance(text, str):
        raise error(f"{where}: must be JSON text, got {type(text).__name__}")
    depth = nesting_depth(text)
    if depth > max_depth:
        raise error(f"{where}: JSON nested {depth} levels deep (at most {max_depth} allowed)")
    try:
        return json.loads(text, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:
        raise error(f"{where}: is not valid JSON ({exc})") from None
