#!/usr/bin/env bash
# Learning check (issue 6 item 10, an experiment, not a test): FG-SSL pretraining then progressive fine-tuning
# with a fraction of the labels, against the same fine-tuning from random initialisation, over several seeds, on
# the synthetic fine-grained data set (`fgssl synth`). Prints one line per run and the mean and spread of each
# arm's test accuracy; results go to docs/RESULTS.md by hand, with this command. A pretrained model already in
# OUT_DIR for a seed is reused, so a second run with another FRACTION fine-tunes the same SSL weights (an
# interrupted pretraining run continues from its last checkpoint). Each run is a run folder (see README).
#
#   bash scripts/learning_check.sh [OUT_DIR]      (env: SEEDS, SSL_EPOCHS, FT_EPOCHS, FRACTION, DEVICE, LR)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/learning-check}
seeds=${SEEDS:-"0 1 2"}
ssl_epochs=${SSL_EPOCHS:-15}
ft_epochs=${FT_EPOCHS:-30}
fraction=${FRACTION:-0.1}
device=${DEVICE:-cpu}
lr=${LR:-0.02}
cargo build --release --quiet
mkdir -p "$out"
# A copy, so that rebuilding while the experiment runs does not change it midway.
cp target/release/fgssl "$out/fgssl"
bin=$out/fgssl
[ -f "$out/synth/synth.json" ] || "$bin" synth --out "$out/synth" --classes 4 --per-class 100 --size 64 --seed 0
common=(--data "$out/synth" --arch resnet18 --embed-dim 128 --device "$device" --cache-dir "$out/cache")
ft=(--size 64 --resize 64 --grids 8,4,2 --label-fraction "$fraction" --epochs "$ft_epochs" --batch-size 8 --lr "$lr")
results=$out/results-$fraction.txt
for seed in $seeds; do
    [ -f "$out/ssl-$seed/export/model.safetensors" ] || "$bin" pretrain "${common[@]}" --size 64 --grids 8,4,2 --epochs "$ssl_epochs" --batch-size 32 --lr "$lr" --seed "$seed" \
        --out "$out/ssl-$seed" --resume auto 2>"$out/ssl-$seed.err"
    for arm in ssl scratch; do
        init=()
        [ "$arm" = ssl ] && init=(--init "$out/ssl-$seed/export/model.safetensors")
        run=$out/ft-$fraction-$arm-$seed
        "$bin" finetune "${common[@]}" "${ft[@]}" "${init[@]}" --seed "$seed" \
            --out "$run" --overwrite >"$run.txt" 2>"$run.err"
        acc=$(awk '/^test \(/ {t=1} t && /^accuracy/ {print $2; exit}' "$run.txt")
        echo "seed $seed $arm test accuracy $acc" | tee -a "$results"
    done
done
for arm in ssl scratch; do
    grep " $arm test accuracy" "$results" | awk -v arm="$arm" '{a[NR]=$6; s+=$6} END {m=s/NR; for (i in a) v+=(a[i]-m)^2; printf "%-8s n=%d mean %.4f std %.4f\n", arm, NR, m, sqrt(v/(NR>1?NR-1:1))}'
done
