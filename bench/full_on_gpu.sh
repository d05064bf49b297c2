#!/usr/bin/env bash
# The --full compression bench on one GPU machine: its cells side by side, one process each (a ResNet-56 step at
# these widths is launch-bound, so one GPU trains several at once); the cells that price widths with the cost model
# start once the first of them has calibrated it. Logs in bench/results/work/full/logs.
# Usage: bench/full_on_gpu.sh [EPOCHS] [METHODS] [BUDGETS]; EDGEPRUNE_BENCH_DATA names the data folder;
# COPY_TO=DIR copies the JSON, PNG, logs and compress summaries there on exit, also when stopped (a lent machine's
# files go with it).
set -u
cd "$(dirname "$0")/.."
copy_out() {
    [ -n "${COPY_TO:-}" ] || return 0
    mkdir -p "$COPY_TO" && cp bench/results/compression_quality-full.{json,png} "$COPY_TO"/ 2>/dev/null
    tar czf "$COPY_TO/full-logs-summaries.tgz" bench/results/work/full/logs bench/results/work/full/*/summary.json \
        2>/dev/null
    return 0
}
trap copy_out EXIT
trap 'kill $(jobs -p) 2>/dev/null; exit 130' INT TERM
export PYTHONPATH="$PWD:$PWD/device_agents${PYTHONPATH:+:$PYTHONPATH}" OMP_NUM_THREADS=2 PYTHONUNBUFFERED=1
epochs=${1:-100} methods=${2:-dense-ft,tp,ecc,halp,uniform} budgets=${3:-0.5}
work=bench/results/work/full logs=bench/results/work/full/logs
mkdir -p "$logs"
cell() { python bench/compression_quality.py --full --epochs "$epochs" --budgets "$budgets" --methods "$1" \
    >"$logs/$1.log" 2>&1; }
priced=() pids=()
for m in ${methods//,/ }; do
    case $m in dense-ft|tp) cell "$m" & pids+=($!) ;; *) priced+=("$m") ;; esac
done
if ((${#priced[@]})); then
    cell "${priced[0]}" & first=$!; pids+=($first)
    until compgen -G "$work/models/*resnet56*.json" >/dev/null || ! kill -0 "$first" 2>/dev/null; do sleep 3; done
    for m in "${priced[@]:1}"; do cell "$m" & pids+=($!); done
fi
wait "${pids[@]}"
tail -n 3 "$logs"/*.log
