#!/usr/bin/env bash
# The pipeline benchmarks of docs/performance.md: each run is `flowline benchmark` on an example, and its
# JSON goes to bench/pipelines/results/<name>.json (tables on the terminal with --tables).
# Usage: bench/pipelines/run.sh [--tables] [--quick]
set -euo pipefail
cd "$(dirname "$0")/../.."
out=bench/pipelines/results
mkdir -p "$out"
duration=10
mode=(--json)
for arg in "$@"; do
  case "$arg" in
    --tables) mode=() ;;
    --quick) duration=2 ;;
    *) echo "unknown option $arg" >&2; exit 1 ;;
  esac
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
