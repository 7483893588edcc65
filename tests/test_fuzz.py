"""Fuzzing every file format eventsnn reads (issue 12), with hypothesis.

Each example mutates a valid seed file (see tests/fuzzkit.py for the
mutations) and loads it the way the CLI does: the outcome must be a legitimate
result or eventsnn's own error, in bounded time and under a memory limit,
never another exception. This default run is small (``FUZZ_EXAMPLES`` per
format, 25 unless set) so the suite stays fast; bench/fuzz_formats.py runs
the same mutations at 10,000 cases per format and records the counts.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fuzzkit

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    pytest.importorskip("onnx")
    pytest.importorskip("nir")
    return fuzzkit.make_seeds(tmp_path_factory.mktemp("seeds"))


def test_seeds_load(seeds):
    for fmt in fuzzkit.FORMATS:
        assert fuzzkit.check_case(fmt, seeds[fmt]) == "ok", fmt


@pytest.mark.parametrize("fmt", fuzzkit.FORMATS)
def test_mutated_files_give_our_error_or_a_result(fmt, seeds, tmp_path_factory):
    workdir = tmp_path_factory.mktemp(f"fuzz-{fmt}")

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def case(data):
        fuzzkit.cleanup(workdir)
        fuzzkit.run_one(fmt, seeds, workdir, lambda lo, hi: data.draw(st.integers(lo, hi)))

    case()


# -- findings of bench/fuzz_formats.py, kept as regressions ------------------------------------


def test_npy_header_that_breaks_numpys_tokenizer_is_our_error(tmp_path):
    """bench run, npz case 5187: an unterminated .npy header raised tokenize.TokenError."""
    import struct
    import zipfile

    from eventsnn.datasets import load_dataset
    from eventsnn.errors import DataError

    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (3,\n"
    path = tmp_path / "bad.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x.npy", b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header)
    with pytest.raises(DataError, match="cannot read npz"):
        load_dataset(path)
