#!/usr/bin/env bash
# Issue 12's profiling benchmarks (docs/performance.md, "Profiling"): copy-64 in lock-step and unthrottled
# (lossless) with the workers' profiling histograms on (default) and off (FLOWLINE_PROFILING=0), then
# unthrottled with every frame of every kernel and sink traced, read every 100 ms (the server's trace stream
# before decision 146), at the interval the server's trace stream now adapts to the traffic, and every 10 ms. Each round records the machine's load; JSON goes to
# bench/pipelines/results/profiling-<round>-<case>.json and the summary (ranges over the rounds) to stdout.
# Usage: flock /tmp/flowline-build.lock bench/pipelines/profiling.sh [--runs N] [--duration S]
set -euo pipefail
cd "$(dirname "$0")/../.."
out=bench/pipelines/results
mkdir -p "$out"
runs=3
duration=5
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) shift; runs=${1:?--runs needs a number} ;;
    --duration) shift; duration=${1:?--duration needs seconds} ;;
    *) echo "unknown option $1" >&2; exit 1 ;;
  esac
  shift
done

dotnet build -c Release src/Flowline.Cli >/dev/null
flowline() { dotnet src/Flowline.Cli/bin/Release/net10.0/Flowline.Cli.dll "$@"; }
copy=examples/copy-64/pipeline.yaml
lockstep=(--without-sources --lockstep input_vector)
unthrottled=(--without-sources --source input_vector:random --lossless)

for round in $(seq 1 "$runs"); do
  cat /proc/loadavg > "$out/profiling-$round-load.txt"
  echo "== round $round, load $(cat /proc/loadavg)" >&2
  for profiling in 1 0; do
    FLOWLINE_PROFILING=$profiling flowline benchmark "$copy" "${lockstep[@]}" --duration "$duration" --json > "$out/profiling-$round-lockstep-p$profiling.json"
    FLOWLINE_PROFILING=$profiling flowline benchmark "$copy" "${unthrottled[@]}" --duration "$duration" --json > "$out/profiling-$round-unthrottled-p$profiling.json"
  done
  for poll in 100 adaptive 10; do
    if [ "$poll" = adaptive ]; then mode=(--trace-adaptive); else mode=(--trace-poll-ms "$poll"); fi
    flowline benchmark "$copy" "${unthrottled[@]}" --duration "$duration" "${mode[@]}" --json > "$out/profiling-$round-traces-$poll.json"
  done
  cat /proc/loadavg >> "$out/profiling-$round-load.txt"
done

python3 - "$out" "$runs" <<'PY'
import json, sys
out, runs = sys.argv[1], int(sys.argv[2])
def load(case):
    return [json.load(open(f"{out}/profiling-{r}-{case}.json")) for r in range(1, runs + 1)]
def rng(values, fmt="{:.1f}"):
    values = [v for v in values if v is not None]
    return f"{fmt.format(min(values))} to {fmt.format(max(values))}" if values else "-"
print("loads:", "; ".join(open(f"{out}/profiling-{r}-load.txt").read().replace("\n", " | ").strip(" |") for r in range(1, runs + 1)))
print("| case | histograms | frames/s (benchmark reader) | latency p50 µs | p99 µs |")
print("|---|---|---:|---:|---:|")
for case in ("lockstep", "unthrottled"):
    for p in ("1", "0"):
        rs = load(f"{case}-p{p}")
        print(f"| copy-64 {case} | {'on' if p == '1' else 'off'} | {rng([r['throughput_hz'] for r in rs], '{:,.0f}')} "
              f"| {rng([r['latency_us']['p50'] for r in rs])} | {rng([r['latency_us']['p99'] for r in rs])} |")
print()
print("| traces, read every | mean interval ms | records read/s | lost % | latency p50 µs | p99 µs |")
print("|---|---:|---:|---:|---:|---:|")
for poll in ("100", "adaptive", "10"):
    rs = load(f"traces-{poll}")
    print(f"| {poll if poll == 'adaptive' else poll + ' ms'} | {rng([r['traces'].get('mean_interval_ms') for r in rs])} "
          f"| {rng([r['traces']['records_per_s'] for r in rs], '{:,.0f}')} | {rng([r['traces']['lost_percent'] for r in rs], '{:.2f}')} "
          f"| {rng([r['latency_us']['p50'] for r in rs])} | {rng([r['latency_us']['p99'] for r in rs])} |")
PY
