#!/bin/bash
# Byte-compare what the inference commands print and write under two source trees (a refactor
# must move no prediction): `vidlang predict` on a video file / a feature store / a .npy,
# `vidlang index build` (every file of the index folder) and `vidlang search --json
# --grounding-ckpt`, on a tiny SynthVL-video collection with a 1-epoch MMN and dual-encoder run
# (trained once, with OLD_SRC). One thread; prints `same X` / `DIFF X` per output.
#
#   scripts/compare_inference_outputs.sh /path/old/src /path/new/src [WORKDIR]
set -euo pipefail
OLD=$(realpath "$1"); NEW=$(realpath "$2"); WORK=${3:-/tmp/vidlang_inference_compare}
PY=${PYTHON:-python}; V=$(dirname "$(command -v "$PY")")/vidlang
mkdir -p "$WORK"; cd "$WORK"
export OMP_NUM_THREADS=1
if [ ! -d runs/r/best ]; then
  PYTHONPATH=$OLD $V synth --video --preset tiny --out svv
  PYTHONPATH=$OLD $V extract svv/videos --extractor basic --out svv/features.h5
  PYTHONPATH=$OLD $V train mmn/cpu --set data.root=svv --set model.input_dim=170 --set model.conv_hidden=16 \
    --set model.featpool_hidden=16 --set model.conv_layers=2 --set model.joint_dim=16 --set data.batch_size=4 \
    --set trainer.max_epochs=1 --set trainer.progress_bar=false --out runs/g
  PYTHONPATH=$OLD $V train retrieval/synthvl_cpu --set data.root=svv --set model.video_dim=170 \
    --set model.text.name=word --set model.text.dim=32 --set model.embed_dim=32 --set trainer.max_epochs=1 \
    --set trainer.progress_bar=false --out runs/r
fi
VID=svv/videos/$(ls svv/videos | head -1)
VIDID=$(basename "$VID" .mp4)
Q="the red square moves to the left"
for side in old new; do
  P=$OLD; [ $side = new ] && P=$NEW
  out=out_$side; rm -rf "$out" index; mkdir -p "$out"
  PYTHONPATH=$P $V predict --ckpt runs/g --video "$VID" --query "$Q" --query "a thing" --top-k 0 > $out/predict_video.jsonl
  PYTHONPATH=$P $V predict --ckpt runs/g --features svv/features.h5 --video-id "$VIDID" --query "$Q" --top-k 3 > $out/predict_store.jsonl
  PYTHONPATH=$P $PY -c "
import numpy as np
from vidlang.data.features import open_feature_store
with open_feature_store('svv/features.h5') as s: np.save('x.npy', np.asarray(s['$VIDID']))"
  PYTHONPATH=$P $V predict --ckpt runs/g --features x.npy --duration 8 --query "$Q" > $out/predict_npy.jsonl
  PYTHONPATH=$P $V index build --ckpt runs/r --features svv/features.h5 --out index > $out/build.txt 2>&1
  PYTHONPATH=$P $V search index "$Q" -k 5 --json --grounding-ckpt runs/g > $out/search.json
  rm -rf "index_$side"; mv index "index_$side"
done
for f in out_old/*; do b=$(basename "$f"); cmp -s "$f" "out_new/$b" && echo "same $b" || echo "DIFF $b"; done
for f in index_old/*; do b=$(basename "$f"); cmp -s "$f" "index_new/$b" && echo "same index/$b" || echo "DIFF index/$b"; done
