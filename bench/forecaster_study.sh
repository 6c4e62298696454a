#!/usr/bin/env bash
# Issue-16 study of the workload forecaster: every (series, target) of the targets, v2 protocol, 3 seeds.
# Usage: bash bench/forecaster_study.sh <validation|test> <variant> [parallel jobs]
#   variant base: mLSTM (history 25) + last value + EWMA;  variant lstm: the plain LSTM (history 25)
#   variant mem:  the multi-day mLSTM (history 288 = 2 days of 600 s windows, >= 25 real, 2 day lags)
# Every network: 3 members, <= 40 epochs (the 2-core machine is shared; 5 members x 80 epochs did not fit).
# Writes out/study/<split>_<variant>_<series>_<target>.json. CPU, one torch thread per job, nice 10.
set -euo pipefail
split=${1:?split}; variant=${2:?variant}; par=${3:-2}
data=${PRESERVE_DATA:-../shared/data}/traces/servegen
mkdir -p out/study
jobs=()
for s in m-mid m-small; do
  for t in requests generated_tokens; do
    case $variant in
      base) args="--models mlstm,last_value,ewma --members 3 --epochs 40" ;;
      lstm) args="--models lstm --members 3 --epochs 40" ;;
      mem) args="--models mlstm --history 288 --min-history 25 --day-lags 2 --members 3 --epochs 40" ;;
      *) echo "unknown variant $variant" >&2; exit 2 ;;
    esac
    jobs+=("--series $data/servegen_${s}_window600s_aggregate.csv --target $t --split $split --seeds 0,1,2 $args --json out/study/${split}_${variant}_${s}_${t}.json")
  done
done
printf '%s\n' "${jobs[@]}" | xargs -P "$par" -I{} sh -c "nice -n 10 .venv/bin/python -m preserve_cli.main forecaster eval {} > /dev/null 2>&1 && echo done: {}"
