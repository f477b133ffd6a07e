#!/usr/bin/env bash
# The SR headroom sweep of docs/RESULTS.md (#18) as one timed script: Raw_LR, Raw_HR (bicubic), Raw_HR
# (swinir-trained) and Oracle_HR, at x4 and x8, on GZ1 and on the simulated sky, preset cpu-frozen, 3 seeds.
#
#   benchmarks/sr_sweep.sh OUT [GZ1_FOLDER]      # GZ1_FOLDER default: ../shared/datasets/gz1
#
# Everything is written under OUT (one folder per data set and factor; a swinir-trained copy of each holds the
# same data through a symlink). Each piece is timed into OUT/times.tsv (wall and CPU seconds), so the total is
# one `awk` away. Re-running skips pieces whose output exists. One torch thread per process: on the 2-core CPU
# two pieces could share the machine, but the script runs them one after another so its times are clean.
set -euo pipefail
out=${1:?usage: sr_sweep.sh OUT [GZ1_FOLDER]}
gz1=${2:-../shared/datasets/gz1}
steps=${SR_STEPS:-600}  # GZ1's loss is flat from ~300 steps (docs/RESULTS.md); the sky x4 still falls at 600
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 FLARE_PROGRESS=0
mkdir -p "$out"
times="$out/times.tsv"
[ -f "$times" ] || printf 'piece\twall_s\tcpu_s\n' > "$times"

piece() {  # piece NAME DONE_PATH COMMAND...: run unless DONE_PATH exists, append its times
  local name=$1 done_path=$2; shift 2
  if [ -e "$done_path" ]; then echo "== $name: done"; return; fi
  echo "== $name"
  /usr/bin/time -f "$name\t%e\t%U+%S" -a -o "$times.raw" "$@"
  tail -n 1 "$times.raw" | awk -F'\t' '{split($3, c, "+"); printf "%s\t%s\t%.1f\n", $1, $2, c[1] + c[2]}' >> "$times"
}

piece gz1-ingest "$out/gz1/ingested/manifest.parquet" \
  flare data ingest "$gz1" "$out/gz1/ingested" --taxonomy gz1 --origin-from stem --storage reference
for f in 4 8; do
  piece "gz1-x$f-make-lr" "$out/gz1-x$f/data/manifest.parquet" \
    flare data make-lr "$out/gz1/ingested" "$out/gz1-x$f/data" --factor $f
  piece "sky-x$f-simulate" "$out/sky-x$f/data/manifest.parquet" \
    flare data simulate "$out/sky-x$f/data" --per-class 100 --seed 11 --set simulate.factor=$f
done
for set in gz1-x4 gz1-x8 sky-x4 sky-x8; do
  w="$out/$set"; s="$out/$set-swinir"
  piece "$set-upscale-bicubic" "$w/upscale/manifest.parquet" flare upscale run "$w/data" "$w/upscale" --backend bicubic
  piece "$set-bench-bicubic" "$w/benchmark/results.json" \
    flare benchmark "$w" --preset cpu-frozen --seeds 3 --method Raw_LR --method Raw_HR --method Oracle_HR --out "$w/benchmark"
  mkdir -p "$s"; [ -e "$s/data" ] || ln -s "$(cd "$w/data" && pwd)" "$s/data"
  piece "$set-train-swinir" "$s/sr-model/model.safetensors" flare upscale train "$w/data" "$s/sr-model" --steps "$steps"
  piece "$set-upscale-swinir" "$s/upscale/manifest.parquet" \
    flare upscale run "$w/data" "$s/upscale" --backend swinir-trained --weights "$s/sr-model"
  piece "$set-bench-swinir" "$s/benchmark/results.json" \
    flare benchmark "$s" --preset cpu-frozen --seeds 3 --method Raw_HR --out "$s/benchmark"
done
awk -F'\t' 'NR > 1 {w += $2; c += $3} END {printf "total: %.1f min wall, %.1f min CPU\n", w / 60, c / 60}' "$times"
