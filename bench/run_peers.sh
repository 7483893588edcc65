#!/usr/bin/env bash
# Issue 5 in one command: eventsnn vs snnTorch, sinabs, SpikingJelly and a plain
# PyTorch loop on the same networks, weights and inputs (see bench/peers_README.md).
#
#   bench/run_peers.sh            # full measurement -> bench/results/peers_speed.json
#   bench/run_peers.sh --quick    # smoke run (T=25, 3 reps) -> bench/results/peers_speed_quick.json
#
# Any other option goes to bench/peers_speed.py (--help lists them). The peers
# run in their own venv, bench/.venv-peers (torch CPU; eventsnn never imports
# torch). It is created here if missing, with exactly these commands.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=bench/.venv-peers
PY=${PYTHON:-python}   # the interpreter with eventsnn installed

if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV"
  "$PY" -m venv "$VENV"
  # torch is pinned: here pip's find-links (/opt/wheels) holds the CPU wheel 2.13.0+cpu.
  # Any other torch spec would pull a multi-GB CUDA build from PyPI.
  "$VENV/bin/pip" install torch==2.13.0 spikingjelly sinabs numpy
fi
if ! "$VENV/bin/python" -c "import snntorch" 2>/dev/null; then
  # snntorch 1.0.0 declares no dependencies; torch==2.13.0 is named again so pip keeps it.
  "$VENV/bin/pip" install snntorch torch==2.13.0
fi
"$VENV/bin/python" - <<'PY'
import torch, snntorch, sinabs, spikingjelly  # noqa: F401
assert torch.__version__.startswith("2.13.0"), f"unexpected torch {torch.__version__} in bench/.venv-peers"
PY
exec "$PY" bench/peers_speed.py "$@"
