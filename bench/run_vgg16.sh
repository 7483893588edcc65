#!/bin/sh
# Issue 16: the trained VGG16 end to end (run from the repository root after data/train_vgg16_ann.py).
#   EVENTSNN_PY: python of eventsnn's venv; PEERS_PY: python of the peers' venv (torch, spikingjelly, sinabs).
#   N_EV / N_EV_MEM / N_PEERS: test images for eventsnn (spike readout / membrane readout) and for the
#   peers (10000 = the full test set; the first N test images, the same for all).
set -eu
EVENTSNN_PY=${EVENTSNN_PY:-python}
PEERS_PY=${PEERS_PY:-bench/.venv-peers/bin/python}
N_EV=${N_EV:-10000}
N_EV_MEM=${N_EV_MEM:-$N_EV}
N_PEERS=${N_PEERS:-10000}
PEERS=${PEERS:-spikingjelly:99.9%,sinabs:default,spikingjelly:Max,spikingjelly:0.5}
EVENTSNN="$EVENTSNN_PY -m eventsnn.cli.main"
R=bench/results
mkdir -p $R
# the README's two commands (shipped files only), then energy against the same ANN (first 100, T = 100)
(
  $EVENTSNN convert data/vgg16_fashion.onnx -o converted_vgg16.h5 --calibration data/fashion-mnist-train-calib.npz \
      --v-init 0.5 --force --no-progress > $R/vgg16_readme_convert.txt
  $EVENTSNN run --net converted_vgg16.h5 --no-progress > $R/vgg16_readme_run.txt
  $EVENTSNN energy-report --net converted_vgg16.h5 --samples 100 --no-progress > $R/vgg16_energy.txt
) > $R/vgg16_readme_log.txt 2>&1 &
README_JOB=$!
# eventsnn on the test set, T = 25..500 read off one simulation per sample, and the peers on the same images
nice -n 10 $EVENTSNN_PY bench/conversion.py --model data/vgg16_fashion.onnx --methods percentile \
    --decodings spikes,membrane --config-samples "percentile:membrane=$N_EV_MEM" --v-init 0.5 \
    --samples $N_EV --subsets $N_PEERS --workers 1 \
    --out $R/vgg16_conversion.json > $R/vgg16_conversion_log.txt 2>&1 &
EV=$!
nice -n 10 $PEERS_PY bench/vgg16_peers.py --samples $N_PEERS --batch 100 --threads 1 --peers "$PEERS" \
    --out $R/vgg16_peers.json > $R/vgg16_peers_log.txt 2>&1 || true
wait $README_JOB
wait $EV
$EVENTSNN_PY bench/conversion_paired.py --eventsnn $R/vgg16_conversion_predictions.npz \
    --peers $R/vgg16_peers_predictions.npz --out $R/vgg16_paired.json > $R/vgg16_paired.txt
$EVENTSNN_PY bench/vgg16_layer_correlation.py --net converted_vgg16.h5 --samples 20 \
    > $R/vgg16_layer_correlation_log.txt 2>&1
$EVENTSNN_PY bench/vgg16_tables.py > $R/vgg16_tables.md
