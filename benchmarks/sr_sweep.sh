#!/usr/bin/env bash
# The SR headroom sweep of docs/RESULTS.md (#18) as one timed script: Raw_LR, Raw_HR (bicubic), Raw_HR
# (swinir-trained) and Oracle_HR, at x4 and x8, on GZ1 and on the simulated sky, preset cpu-frozen, 3 seeds.
#
#   benchmarks/sr_sweep.sh OUT [GZ1_FOLDER]      # GZ1_FOLDER default: ../shared/datasets/gz1
#
# Everything is written under OUT (one folder per data set and factor; a swinir-trained copy of each holds the
# same data through a symlink). Each piece is timed into OUT/times.tsv (wall and CPU seconds) and the whole run
# into OUT/elapsed.txt. Re-running skips pieces whose output exists. One torch thread per process, and two
# lanes of pieces side by side (SR_LANES=1 runs them one after another): the GZ1 x4 chain with the sky x8 one,
# the GZ1 x8 chain with the sky x4 one, which balances the 2-core CPU (measured: ~50 vs ~45 min a lane).
set -euo pipefail
out=${1:?usage: sr_sweep.sh OUT [GZ1_FOLDER]}
gz1=${2:-../shared/datasets/gz1}
steps=${SR_STEPS:-600}  # GZ1's loss is flat from ~300 steps (docs/RESULTS.md); the sky x4 still falls at 600
lanes=${SR_LANES:-2}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 FLARE_PROGRESS=0
mkdir -p "$out/times"
times="$out/times.tsv"
[ -f "$times" ] || printf 'piece\twall_s\tcpu_s\n' > "$times"
started=$(date +%s)

piece() {  # piece NAME DONE_PATH COMMAND...: run unless DONE_PATH exists, append its times
  local name=$1 done_path=$2; shift 2
  if [ -e "$done_path" ]; then echo "== $name: done"; return; fi
  echo "== $name"
  # one raw file per piece: two lanes append to times.tsv, never to a shared raw file
  /usr/bin/time -f "$name\t%e\t%U+%S" -o "$out/times/$name.raw" "$@"
  awk -F'\t' '{split($3, c, "+"); printf "%s\t%s\t%.1f\n", $1, $2, c[1] + c[2]}' "$out/times/$name.raw" >> "$times"
}

data_gz1() {  # data_gz1 FACTOR
  piece "gz1-x$1-make-lr" "$out/gz1-x$1/data/manifest.parquet" \
    flare data make-lr "$out/gz1/ingested" "$out/gz1-x$1/data" --factor "$1"
}

data_sky() {  # data_sky FACTOR
  piece "sky-x$1-simulate" "$out/sky-x$1/data/manifest.parquet" \
    flare data simulate "$out/sky-x$1/data" --per-class 100 --seed 11 --set simulate.factor="$1"
}

methods() {  # methods SET: bicubic rows (Raw_LR, Raw_HR, Oracle_HR), then a trained SwinIR's Raw_HR
  local set=$1 w="$out/$1" s="$out/$1-swinir"
  piece "$set-upscale-bicubic" "$w/upscale/manifest.parquet" flare upscale run "$w/data" "$w/upscale" --backend bicubic
  piece "$set-bench-bicubic" "$w/benchmark/results.json" \
    flare benchmark "$w" --preset cpu-frozen --seeds 3 --method Raw_LR --method Raw_HR --method Oracle_HR --out "$w/benchmark"
  mkdir -p "$s"; [ -e "$s/data" ] || ln -s "$(cd "$w/data" && pwd)" "$s/data"
  piece "$set-train-swinir" "$s/sr-model/model.safetensors" flare upscale train "$w/data" "$s/sr-model" --steps "$steps"
  piece "$set-upscale-swinir" "$s/upscale/manifest.parquet" \
    flare upscale run "$w/data" "$s/upscale" --backend swinir-trained --weights "$s/sr-model"
  piece "$set-bench-swinir" "$s/benchmark/results.json" \
    flare benchmark "$s" --preset cpu-frozen --seeds 3 --method Raw_HR --out "$s/benchmark"
}

lane_a() { data_gz1 4; methods gz1-x4; data_sky 8; methods sky-x8; }
lane_b() { data_gz1 8; methods gz1-x8; data_sky 4; methods sky-x4; }

piece gz1-ingest "$out/gz1/ingested/manifest.parquet" \
  flare data ingest "$gz1" "$out/gz1/ingested" --taxonomy gz1 --origin-from stem --storage reference
if [ "$lanes" -ge 2 ]; then
  lane_a > "$out/lane-a.log" 2>&1 & a=$!
  lane_b > "$out/lane-b.log" 2>&1 & b=$!
  status=0; wait "$a" || status=$?; wait "$b" || status=$?
  [ "$status" -eq 0 ] || { echo "a lane failed (rc $status): see $out/lane-a.log, $out/lane-b.log" >&2; exit "$status"; }
else
  lane_a; lane_b
fi
elapsed=$(( $(date +%s) - started ))
awk -F'\t' -v e="$elapsed" 'NR > 1 {w += $2; c += $3} END {
  printf "elapsed: %.1f min wall (this call); pieces: %.1f min wall, %.1f min CPU summed\n", e / 60, w / 60, c / 60}' \
  "$times" | tee "$out/elapsed.txt"
