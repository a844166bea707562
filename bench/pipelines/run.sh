#!/usr/bin/env bash
# The pipeline benchmarks of docs/performance.md: each run is `flowline benchmark` on an example, and its
# JSON goes to bench/pipelines/results/<name>.json (tables on the terminal with --tables).
# Usage: bench/pipelines/run.sh [--tables] [--quick] [--paced [--runs N]]
#   --paced  only the paced cases (copy-64 at 1 kHz with a null sink and without sinks, ao-basic at 1 kHz
#            with its seven workers, 1 MiB frames copied in and out), each with the hybrid and the
#            predictive wait in the same round, and copy-64 without sinks and ao-basic with every node on
#            a thread (--on-threads, predictive), with the limits (spin one way, futex wake-up, memcpy)
#            measured in that round; then a table of every figure beside its target and limit
#            (bench/pipelines/paced_summary.py). The load of the machine is recorded with each round.
# On a shared machine run it under the build lock: flock /tmp/flowline-build.lock bench/pipelines/run.sh --paced
set -euo pipefail
cd "$(dirname "$0")/../.."
out=bench/pipelines/results
mkdir -p "$out"
duration=10
mode=(--json)
paced=0
runs=3
while [ $# -gt 0 ]; do
  case "$1" in
    --tables) mode=() ;;
    --quick) duration=2 ;;
    --paced) paced=1 ;;
    --runs) shift; runs=${1:?--runs needs a number} ;;
    *) echo "unknown option $1" >&2; exit 1 ;;
  esac
  shift
done

dotnet build -c Release src/Flowline.Cli >/dev/null
flowline() { dotnet src/Flowline.Cli/bin/Release/net10.0/Flowline.Cli.dll "$@"; }

run() {
  local name=$1; shift
  local args=("$@")
  if [[ " ${args[*]} " != *" --duration "* ]]; then
    args+=(--duration "$duration")
  fi
  echo "== $name: flowline benchmark ${args[*]}" >&2
  if [ ${#mode[@]} -eq 0 ]; then
    flowline benchmark "${args[@]}"
  else
    flowline benchmark "${args[@]}" --json > "$out/$name.json"
  fi
}

copy=examples/copy-64/pipeline.yaml
basic=examples/ao-basic/pipeline.yaml
unpaced=examples/ao-basic-unpaced/pipeline.yaml
basic_1khz=bench/pipelines/ao-basic-1khz.yaml

if [ "$paced" = 1 ]; then
  mode=(--json)
  for round in $(seq 1 "$runs"); do
    cat /proc/loadavg > "$out/paced-$round-load.txt"
    echo "== round $round, load $(cat /proc/loadavg)" >&2
    flowline bench streams --only limits large --json > "$out/paced-$round-streams.json"
    for wait in hybrid predictive; do
      run "paced-$round-copy-1khz-$wait"        "$copy" --wait "$wait"
      run "paced-$round-copy-1khz-nosink-$wait" "$copy" --without-sinks --wait "$wait"
      run "paced-$round-basic-1khz-$wait"       "$basic_1khz" --wait "$wait"
    done
    # The same chains with every node on a thread of the benchmark's process (no process switch per hop).
    run "paced-$round-copy-1khz-nosink-threads-predictive" "$copy" --without-sinks --wait predictive --on-threads
    run "paced-$round-basic-1khz-threads-predictive"       "$basic_1khz" --wait predictive --on-threads
    cat /proc/loadavg >> "$out/paced-$round-load.txt"
  done
  /usr/bin/python3 bench/pipelines/paced_summary.py "$out" "$runs"
  exit 0
fi

observatory=examples/ao-observatory/pipeline.yaml
run copy-1khz        "$copy"
run copy-1khz-nosink "$copy" --without-sinks
run copy-lockstep    "$copy" --without-sources --lockstep input_vector
run copy-unthrottled "$copy" --without-sources --source input_vector:random --lossless
run copy-idle        "$copy" --without-sources --warmup 15 --duration 30
run basic-1khz       "$basic" --without-sources --source wfs_image:random:1000
run basic-lockstep   "$basic" --without-sources --lockstep wfs_image
run basic-paced       "$basic"
run basic-unpaced     "$unpaced"
run basic-unthrottled "$unpaced" --lossless
run observatory-500hz "$observatory" --without-sources --source wfs_image:random:500
run observatory-lockstep "$observatory" --without-sources --lockstep wfs_image
echo "results in $out" >&2
