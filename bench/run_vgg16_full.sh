#!/bin/sh
# Issue 16 on the full 10k test set: the peers and eventsnn's K = 4 on the test images that
# bench/run_vgg16.sh left out (it ran them on the first 2000), in chunks of CHUNK images, two
# lanes (one per core), then joined with the first 2000 (bench/merge_chunks.py). A chunk whose
# JSON exists is skipped, so a stopped run resumes where it was; a lane stopped mid-chunk redoes
# that chunk. Run from the repository root, after bench/run_vgg16.sh; LANE=a or LANE=b runs one
# lane (e.g. one per machine), JOIN=1 only joins what is there.
#   lane a: the peers on the first half of images 2000..9999, then K = 4 on the second half
#   lane b: K = 4 on the first half, then the peers on the second half
# so that after one half-time (about an hour here) the first 6000 images have every run.
set -eu
EVENTSNN_PY=${EVENTSNN_PY:-python}
PEERS_PY=${PEERS_PY:-bench/.venv-peers/bin/python}
CHUNK=${CHUNK:-2000}
FROM=${FROM:-2000}
TO=${TO:-10000}
R=bench/results
C=$R/vgg16w4_chunks
mkdir -p $C

finish() {  # a chunk's files get their final names only once its run has finished (the JSON last)
  mv $C/part_$1_predictions.npz $C/$1_predictions.npz && mv $C/part_$1.json $C/$1.json
}
peers() {  # images $1 .. $2 - 1
  s=$1
  while [ $s -lt $2 ]; do
    [ -f $C/peers_$s.json ] || { $PEERS_PY bench/vgg16_peers.py --start $s --samples $CHUNK --batch 100 \
        --threads 1 --peers "sinabs:default,spikingjelly:99.9%" --out $C/part_peers_$s.json \
        > $C/peers_${s}_log.txt 2>&1 && finish peers_$s; }
    s=$((s + CHUNK))
  done
}
k4() {  # images $1 .. $2 - 1
  s=$1
  while [ $s -lt $2 ]; do
    [ -f $C/k4_$s.json ] || { $EVENTSNN_PY bench/conversion.py --model data/vgg16_fashion.onnx \
        --methods percentile --decodings spikes --v-init 0.5 --max-spikes 4 --workers 1 --start $s \
        --samples $CHUNK --subsets "" --out $C/part_k4_$s.json > $C/k4_${s}_log.txt 2>&1 && finish k4_$s; }
    s=$((s + CHUNK))
  done
}
HALF=$(( FROM + (TO - FROM) / CHUNK / 2 * CHUNK ))
lane_a() { peers $FROM $HALF; k4 $HALF $TO; }
lane_b() { k4 $FROM $HALF; peers $HALF $TO; }

if [ -z "${JOIN:-}" ]; then
  case "${LANE:-both}" in
    a) lane_a ;;
    b) lane_b ;;
    *) lane_a & A=$!; lane_b; wait $A ;;
  esac
fi

# join what is there (consecutive chunks from the first 2000 on)
join() {  # $1 = first file, $2 = chunk prefix, $3 = output
  files=$1
  s=$FROM
  while [ -f $C/$2_$s.json ]; do files="$files $C/$2_$s.json"; s=$((s + CHUNK)); done
  $EVENTSNN_PY bench/merge_chunks.py --out $3 $files
}
join $R/vgg16w4_peers_2k.json peers $R/vgg16w4_peers_joined.json
join $R/vgg16w4_conversion_k4_2k.json k4 $R/vgg16w4_conversion_k4_joined.json
# paired tests on all the images every joined run covers (eventsnn's best of K = 4 and K = 1 at each T
# against the best peer), then the tables for BENCHMARKS.md §3
P=$R/vgg16w4_conversion
$EVENTSNN_PY bench/conversion_paired.py --eventsnn ${P}_k4_joined_predictions.npz,${P}_10k_predictions.npz \
    --peers $R/vgg16w4_peers_joined_predictions.npz --out $R/vgg16w4_paired_joined.json > $R/vgg16w4_paired_joined.txt
$EVENTSNN_PY bench/conversion_paired.py --eventsnn ${P}_10k_predictions.npz \
    --peers $R/vgg16w4_peers_joined_predictions.npz --out $R/vgg16w4_paired_k1_joined.json > $R/vgg16w4_paired_k1_joined.txt
# one configuration for every T (no choice per T after the fact): K = 4 alone
$EVENTSNN_PY bench/conversion_paired.py --eventsnn ${P}_k4_joined_predictions.npz \
    --peers $R/vgg16w4_peers_joined_predictions.npz --out $R/vgg16w4_paired_k4_joined.json > $R/vgg16w4_paired_k4_joined.txt
$EVENTSNN_PY bench/vgg16_tables.py > $R/vgg16w4_tables.md
