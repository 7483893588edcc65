#!/bin/sh
# Issue 16: the trained VGG16 end to end (run from the repository root; BENCHMARKS.md §3 records these runs).
#   EVENTSNN_PY: python of eventsnn's venv; PEERS_PY: python of the peers' venv (torch, spikingjelly, sinabs).
#   N_EV: test images for eventsnn with binary spikes (K = 1); N_K: for K = 2 and K = 4; N_PEERS: for the peers
#   (10000 = the full test set; always the first N test images, the same for all).
# The recorded run (2026-12-01, 2 cores) used the defaults below: 10000 / 2000 / 2000; the peers at T = 500 cost
# about 9 (sinabs) and 7 (SpikingJelly) core-minutes per 1000 images; bench/run_vgg16_full.sh then runs the
# peers and K = 4 on the other 8000 test images in chunks and joins them with these first 2000.
set -eu
EVENTSNN_PY=${EVENTSNN_PY:-python}
PEERS_PY=${PEERS_PY:-bench/.venv-peers/bin/python}
N_EV=${N_EV:-10000}
N_K=${N_K:-2000}
N_PEERS=${N_PEERS:-2000}
PEERS=${PEERS:-sinabs:default,spikingjelly:99.9%}
EVENTSNN="$EVENTSNN_PY -m eventsnn.cli.main"
R=bench/results
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
mkdir -p $R
CONV="$EVENTSNN_PY bench/conversion.py --model data/vgg16_fashion.onnx --methods percentile --decodings spikes --v-init 0.5"
# the README's convert command (shipped files only), energy against the ANN (first 100 shipped images, T = 100)
$EVENTSNN convert data/vgg16_fashion.onnx -o $W/converted_vgg16.h5 --calibration data/fashion-mnist-train-calib.npz \
    --v-init 0.5 --no-progress > /dev/null
$EVENTSNN energy-report --net $W/converted_vgg16.h5 --samples 100 --no-progress > $R/vgg16_energy.txt
# eventsnn on the test set, T = 25..500 read off one simulation per image (K = 1, 2, 4), beside the peers
$CONV --samples $N_EV --subsets 1000,2000 --workers 1 --out $R/vgg16w4_conversion_10k.json > $R/vgg16w4_conversion_10k_log.txt 2>&1 &
EV=$!
$PEERS_PY bench/vgg16_peers.py --samples $N_PEERS --batch 100 --threads 1 --peers "$PEERS" \
    --out $R/vgg16w4_peers_2k.json > $R/vgg16w4_peers_2k_log.txt 2>&1
wait $EV
$CONV --max-spikes 2 --samples $N_K --subsets 1000,2000 --workers 1 --out $R/vgg16w4_conversion_k2_2k.json \
    > $R/vgg16w4_conversion_k2_2k_log.txt 2>&1 &
EV=$!
$CONV --decodings membrane --samples $N_K --subsets 1000,2000 --workers 1 --out $R/vgg16w4_conversion_mem_2k.json \
    > $R/vgg16w4_conversion_mem_2k_log.txt 2>&1
$CONV --max-spikes 4 --samples $N_K --subsets 1000,2000 --workers 1 --out $R/vgg16w4_conversion_k4_2k.json \
    > $R/vgg16w4_conversion_k4_2k_log.txt 2>&1
wait $EV
# paired tests on the images every run covered; which layers lose the ANN (docs/VGG16.md)
P=$R/vgg16w4_conversion
$EVENTSNN_PY bench/conversion_paired.py --eventsnn ${P}_k4_2k_predictions.npz,${P}_k2_2k_predictions.npz,${P}_10k_predictions.npz,${P}_mem_2k_predictions.npz \
    --peers $R/vgg16w4_peers_2k_predictions.npz --out $R/vgg16w4_paired_2k.json > $R/vgg16w4_paired_2k.txt
$EVENTSNN_PY bench/conversion_paired.py --eventsnn ${P}_10k_predictions.npz \
    --peers $R/vgg16w4_peers_2k_predictions.npz --out $R/vgg16w4_paired_k1_2k.json > $R/vgg16w4_paired_k1_2k.txt
$EVENTSNN_PY bench/vgg16_layer_correlation.py --net $W/converted_vgg16.h5 --samples 20 \
    > $R/vgg16_layer_correlation_log.txt 2>&1
# speed side by side (run it on an idle machine), then the tables for BENCHMARKS.md §3
$EVENTSNN_PY bench/vgg16_speed.py --net $W/converted_vgg16.h5 --out $R/vgg16w4_speed.json > $R/vgg16w4_speed_log.txt 2>&1
$EVENTSNN_PY bench/vgg16_tables.py > $R/vgg16w4_tables.md   # defaults: the files above
