"""Long fuzzing run over every file format eventsnn reads (issue 12).

The same seeds and mutations as tests/test_fuzz.py (tests/fuzzkit.py), driven
by a seeded RNG instead of hypothesis, so a run does not stop at the first
finding and every outcome is counted:

    python bench/fuzz_formats.py --cases 10000            # all formats
    python bench/fuzz_formats.py --cases 2000 --formats npz,idx --seed 3

Prints, per format, how many mutated files loaded (a legitimate result), how
many were refused and by which error class, and every *escape* (any other
exception, or a case over the time limit) with the mutation that caused it
and a copy of the file under --keep. Exit status 1 if anything escaped.
Counts of the recorded runs are in docs/SAFETY.md (section Fuzzing).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import fuzzkit  # noqa: E402


def _keeper(args, fmt):
    """Copy the mutated files to --keep/last-FMT before they are loaded."""
    def keep(workdir):
        last = Path(args.keep) / f"last-{fmt}"
        shutil.rmtree(last, ignore_errors=True)
        shutil.copytree(workdir, last)
    return keep


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000, help="mutated files per format")
    parser.add_argument("--formats", default=",".join(fuzzkit.FORMATS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", default="fuzz-findings", help="directory for files that escaped")
    parser.add_argument("--report-every", type=int, default=1000,
                        help="print the running counts every N cases (so a stopped run still has counts)")
    parser.add_argument("--trace", default=None,
                        help="before each case, write its format and number to this file and keep a copy of "
                             "its input under --keep/last-<format>/ (to find a case that kills the process)")
    args = parser.parse_args(argv)
    formats = [f for f in args.formats.split(",") if f]
    escapes = 0
    with tempfile.TemporaryDirectory(prefix="eventsnn-fuzz-") as tmp:
        seeds = fuzzkit.make_seeds(Path(tmp) / "seeds")
        for fmt in formats:
            rng = np.random.default_rng([args.seed, fuzzkit.FORMATS.index(fmt)])
            outcomes, mutations = collections.Counter(), collections.Counter()
            start = time.monotonic()
            workdir = Path(tmp) / fmt
            for i in range(args.cases):
                fuzzkit.cleanup(workdir) if workdir.exists() else None
                if args.trace:
                    Path(args.trace).write_text(f"{fmt} {i}\n")
                try:
                    name, outcome = fuzzkit.run_one(fmt, seeds, workdir, lambda lo, hi: int(rng.integers(lo, hi + 1)),
                                                    before=_keeper(args, fmt) if args.trace else None)
                except Exception as exc:  # noqa: BLE001 - an escape is what we count
                    name, outcome = "?", f"ESCAPE:{type(exc).__name__}"
                    escapes += 1
                    keep = Path(args.keep) / f"{fmt}-{i}"
                    keep.mkdir(parents=True, exist_ok=True)
                    for p in workdir.glob("*"):
                        shutil.copy(p, keep / p.name)
                    (keep / "traceback.txt").write_text(traceback.format_exc())
                    print(f"  {fmt} case {i}: {type(exc).__name__}: {exc}"[:300], flush=True)
                outcomes[outcome] += 1
                mutations[name] += 1
                if args.report_every and (i + 1) % args.report_every == 0 and i + 1 < args.cases:
                    print(f"{fmt:8s} ... {i + 1:6d} cases: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())),
                          flush=True)
            took = time.monotonic() - start
            ok = outcomes.pop("ok", 0)
            refused = sum(v for k, v in outcomes.items() if k.startswith("refused"))
            esc = sum(v for k, v in outcomes.items() if k.startswith("ESCAPE"))
            detail = ", ".join(f"{k.split(':')[1]} {v}" for k, v in sorted(outcomes.items()))
            print(f"{fmt:8s} cases {args.cases:6d}  loaded {ok:6d}  refused {refused:6d}  escaped {esc:3d}  "
                  f"({took:.0f} s)  [{detail}]", flush=True)
            print(f"{'':8s} mutations: " + ", ".join(f"{k} {v}" for k, v in sorted(mutations.items())), flush=True)
    return 1 if escapes else 0


if __name__ == "__main__":
    sys.exit(main())
