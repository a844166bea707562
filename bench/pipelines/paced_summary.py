#!/usr/bin/env python3
"""The paced cases of bench/pipelines/run.sh --paced: every figure beside its target and the limit
measured in the same round, per round, then the range over the rounds (what docs/performance.md gives).

Usage: paced_summary.py RESULTS_DIR ROUNDS
"""
import json
import sys
from pathlib import Path

TARGETS = {
    # case: (p50 target µs, p99 target µs)
    "copy-1khz": (10.0, 50.0),
    "copy-1khz-nosink": (10.0, 50.0),
    "basic-1khz": (60.0, 200.0),
    "copy-1khz-nosink-threads": (10.0, 50.0),
    "basic-1khz-threads": (60.0, 200.0),
}
WAITS = {"copy-1khz-nosink-threads": ("predictive",), "basic-1khz-threads": ("predictive",)}
WORKER_CPU_TARGET = 5.0  # % of a core, each worker at 1 kHz


def load(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        print(f"missing or unreadable {path}: {e}", file=sys.stderr)
        return None


def pacers(report):
    """(name, pacer) of each paced source of a benchmark report (the status's `pacer`, decision 161)."""
    for name, source in sorted((report.get("sources") or {}).items()):
        p = source.get("pacer")
        if p and p.get("intervals"):
            yield name, p


def verdict(ok):
    return "met" if ok else "MISSED"


def main():
    out = Path(sys.argv[1])
    rounds = int(sys.argv[2])
    rows = {}  # (case, wait) -> list of dicts
    shares = {}  # (case, wait, source) -> % of a paced source's intervals with an early wake-up, per round
    limits = []
    large = {}  # reader policy -> list of (GB/s, sleeps per frame, 0.5 x memcpy)
    for r in range(1, rounds + 1):
        load_text = (out / f"paced-{r}-load.txt").read_text().split("\n") if (out / f"paced-{r}-load.txt").exists() else ["?", "?"]
        loads = " -> ".join(" ".join(line.split()[:3]) for line in load_text if line.strip())
        streams = load(out / f"paced-{r}-streams.json")
        spin = wake = memcpy = None
        if streams and streams.get("limits"):
            lim = streams["limits"]
            spin = lim["spin_ping_pong_one_way"]["p50_ns"] / 1e3
            wake = lim["futex_wake_one_way"]["p50_ns"] / 1e3
            memcpy = lim["memcpy_memory_bytes_per_second"] / 1e9
            limits.append((spin, wake, memcpy))
            for t in streams.get("throughput", []):
                policy = "predictive" if "predictive" in t["name"] else "hybrid"
                large.setdefault(policy, []).append(
                    (t["bytes_per_second"] / 1e9, t["reader_sleeps_per_million_frames"] / 1e6, 0.5 * memcpy))
        print(f"\nround {r}  load (1, 5, 15 min) {loads}")
        if spin is not None:
            print(f"  limits: spin one way p50 {spin:.2f} µs, futex wake-up p50 {wake:.1f} µs, memcpy 64 MiB {memcpy:.1f} GB/s")
        print(f"  {'case':<24} {'wait':<11} {'p50 µs':>8} {'p99 µs':>8} {'target p50/p99':>15} {'max worker CPU %':>17} {'total CPU %':>12}  verdict")
        for case, (t50, t99) in TARGETS.items():
            for wait in WAITS.get(case, ("hybrid", "predictive")):
                report = load(out / f"paced-{r}-{case}-{wait}.json")
                if report is None:
                    continue
                p50 = report["latency_us"]["p50"]
                p99 = report["latency_us"]["p99"]
                cpu = report.get("worker_cpu_percent") or {}
                top = max(cpu.values()) if cpu else 0.0
                total = report.get("worker_cpu_percent_total", 0.0)
                ok = p50 <= t50 and p99 <= t99 and top <= WORKER_CPU_TARGET
                rows.setdefault((case, wait), []).append((p50, p99, top, total))
                print(f"  {case:<24} {wait:<11} {p50:8.1f} {p99:8.1f} {f'{t50:g}/{t99:g}':>15} {top:17.1f} {total:12.1f}  {verdict(ok)}")
                for name, p in pacers(report):
                    share = 100.0 * p["early_wakes"] / p["intervals"]
                    shares.setdefault((case, wait, name), []).append(share)
                    print(f"    source {name}: early wake-ups in {share:.1f} % of {p['intervals']} intervals "
                          f"(skipped by the share bound {p['bound_skips']}, late {p['late_wakes']}, overdue {p['overdue']}, "
                          f"missed {p['missed']}), timer lateness {p['timer_lateness_us']:.1f} µs")
        for policy in ("hybrid", "predictive"):
            for gbs, sleeps, half in large.get(policy, [])[-1:]:
                print(f"  1 MiB copy in+out, {policy:<10} reader: {gbs:.2f} GB/s (target >= 0.5 x memcpy = {half:.2f} GB/s: {verdict(gbs >= half)}), reader sleeps per frame {sleeps:.2f}")

    def span(values, fmt="{:.1f}"):
        return f"{fmt.format(min(values))} to {fmt.format(max(values))}"

    print(f"\nranges over {rounds} rounds")
    if limits:
        print(f"  limits: spin one way p50 {span([l[0] for l in limits], '{:.2f}')} µs; futex wake-up p50 {span([l[1] for l in limits])} µs; memcpy 64 MiB {span([l[2] for l in limits])} GB/s")
    for (case, wait), values in rows.items():
        t50, t99 = TARGETS[case]
        print(f"  {case:<24} {wait:<11} p50 {span([v[0] for v in values])} µs (<= {t50:g}), p99 {span([v[1] for v in values])} µs (<= {t99:g}), "
              f"max worker CPU {span([v[2] for v in values])} % (<= {WORKER_CPU_TARGET:g}), total {span([v[3] for v in values])} %")
    for (case, wait, name), values in shares.items():
        print(f"  {case:<24} {wait:<11} source {name}: early wake-ups in {span(values)} % of its intervals")
    for policy, values in large.items():
        print(f"  1 MiB copy in+out, {policy} reader: {span([v[0] for v in values], '{:.2f}')} GB/s against 0.5 x memcpy {span([v[2] for v in values], '{:.2f}')} GB/s; "
              f"reader sleeps per frame {span([v[1] for v in values], '{:.2f}')}")


if __name__ == "__main__":
    main()
