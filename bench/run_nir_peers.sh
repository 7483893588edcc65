#!/usr/bin/env bash
# Issue 18: eventsnn -> NIR -> sinabs, spike counts compared neuron by neuron (bench/nir_peers.py).
#
#   bench/run_nir_peers.sh             # 16 samples x 50 steps -> bench/results/nir_peers.json
#
# The peers' interpreter is $PEERS_PYTHON, else bench/.venv-peers (the venv of
# bench/run_peers.sh: torch 2.13.0 CPU + sinabs, which brings nir<=1.0.4 and
# nirtorch), created here if missing with the same pinned torch. eventsnn never
# imports torch; the sinabs side runs in its own process and reads only the file.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}   # the interpreter with eventsnn (and nir>=1.0.6) installed
if [ -z "${PEERS_PYTHON:-}" ]; then
  VENV=bench/.venv-peers
  if [ ! -x "$VENV/bin/python" ]; then
    echo "creating $VENV"
    "$PY" -m venv "$VENV"
    # torch is pinned: pip's find-links here holds the CPU wheel 2.13.0+cpu (any other spec pulls CUDA builds)
    "$VENV/bin/pip" install torch==2.13.0 sinabs numpy
  fi
  PEERS_PYTHON="$VENV/bin/python"
fi
"$PEERS_PYTHON" -c "import sinabs, nir, torch" 
exec "$PY" bench/nir_peers.py --peers-python "$PEERS_PYTHON" "$@"
