#!/usr/bin/env bash
# Python-to-C# stream benchmarks beside C#-to-C# in the same run (docs/performance.md, "Python").
# Usage: bench/python/run.sh [runs=3] [out-dir=bench/python/results]; needs the CLI built
# (dotnet build src/Flowline.Cli -c Release) and /usr/bin/python3 with numpy.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-3}
out=${2:-bench/python/results}
mkdir -p "$out"
for i in $(seq 1 "$runs"); do
  echo "run $i of $runs" >&2
  /usr/bin/python3 bench/python/bench.py > "$out/run-$i.json"
done
/usr/bin/python3 - "$out" "$runs" <<'PY'
import json, sys
from pathlib import Path
out, runs = Path(sys.argv[1]), int(sys.argv[2])
reports = [json.loads((out / f"run-{i}.json").read_text()) for i in range(1, runs + 1)]

def span(values, fmt):
    lo, hi = min(values), max(values)
    return fmt(lo) if fmt(lo) == fmt(hi) else f"{fmt(lo)} – {fmt(hi)}"

us = lambda ns: f"{ns / 1000:,.1f} µs"
print(f"{runs} runs; machine: {reports[0]['csharp_to_csharp']['machine']}, Python {reports[0]['machine']['python']}, numpy {reports[0]['machine']['numpy']}")
print("\nOne-way latency, 64 B frames at 1,000 Hz (p50 / p99 / max), ranges over the runs")
for policy in ("hybrid", "block"):
    py = [r["python_to_csharp"][f"latency_64b_1khz_{policy}"] for r in reports]
    cs = [next(x["one_way"] for x in r["csharp_to_csharp"]["latency"] if x["policy"] == policy and x["rate_hz"] == 1000) for r in reports]
    for who, rows in (("Python -> C#", py), ("C# -> C#", cs)):
        print(f"| {who} | {policy} | {span([x['p50_ns'] for x in rows], us)} | {span([x['p99_ns'] for x in rows], us)} | {span([x['max_ns'] for x in rows], us)} |")
early = [r["python_to_csharp"].get("latency_64b_1khz_predictive_early_wake") for r in reports]
if all(early):
    print(f"| Python -> C#, early wake-up | predictive | {span([x['p50_ns'] for x in early], us)} | {span([x['p99_ns'] for x in early], us)} | {span([x['max_ns'] for x in early], us)} |")
print("\nThroughput, lossless (frames/s, bytes/s), ranges over the runs")
pairs = [("throughput_64b_copy", "64 B, copy in, copy out"), ("throughput_64b_zero_copy", "64 B, zero-copy"),
         ("throughput_1mib_copy_in_zero_copy_read", "1 MiB, copy in, zero-copy read")]
fps = lambda v: f"{v:,.0f}"
gbs = lambda v: f"{v / 1e9:,.2f} GB/s"
for key, name in pairs:
    py = [r["python_to_csharp"][key] for r in reports]
    cs = [next(x for x in r["csharp_to_csharp"]["throughput"] if x["name"] == name) for r in reports]
    print(f"| {name} | Python -> C# | {span([x['frames_per_s'] for x in py], fps)} | {span([x['bytes_per_s'] for x in py], gbs)} |")
    print(f"| {name} | C# -> C# | {span([x['frames_per_second'] for x in cs], fps)} | {span([x['bytes_per_second'] for x in cs], gbs)} |")
PY
