"""Python-to-C# stream benchmarks: a Python writer (the `flowline` package) and a C# reader (`flowline
bench-peer`, the reading side of `flowline bench streams`), then the C#-to-C# figures of `flowline bench
streams` in the same run. Prints one JSON object; bench/python/run.sh runs it several times and
summarises. See docs/performance.md."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python"))

import flowline  # noqa: E402
from flowline import _native as N  # noqa: E402

CLI = Path(os.environ.get("FLOWLINE_CLI", REPO / "src/Flowline.Cli/bin/Release/net10.0/Flowline.Cli.dll"))


def peer(role: str, ns: str, name: str, *extra: str) -> subprocess.Popen[str]:
    args = ["dotnet", str(CLI), "bench-peer", role, "--ns", ns, "--name", name, "--parent", str(os.getpid()), *extra]
    child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None
    line = child.stdout.readline().strip()
    if line != "ready":
        child.kill()
        raise RuntimeError(f"bench-peer {role} printed {line!r}: {child.stderr.read() if child.stderr else ''}")
    return child


def result(child: subprocess.Popen[str]) -> dict:
    out, err = child.communicate(timeout=120)
    for line in out.splitlines():
        if line.startswith("result "):
            return json.loads(line[len("result "):])
    raise RuntimeError(f"bench-peer gave no result (exit {child.returncode}): {err}")


WAKE_LEAD_NS = 45_000
"""How long before each frame the early-wake case wakes the reader (C#'s Pacer.DefaultWakeLeadNs)."""


def latency(ns: str, policy: str, rate_hz: float, frames: int, warmup: int, wake_early: bool = False) -> dict:
    """One way, 64 B frames, the Python writer paced by absolute sleeps; the C# reader takes publish-to-hold.
    With ``wake_early``, the writer sleeps until 45 µs plus its sleeps' lateness (the median of the last 16)
    before each frame, wakes the readers (``wake_readers_early``), and yields until the frame is due, as a
    paced ``python.source`` does."""
    name = f"lat-{policy}{'-early' if wake_early else ''}"
    stream = flowline.create(ns, name, np.uint8, 64, capacity=32)
    try:
        reader = peer("latency", ns, name, "--policy", policy, "--count", str(frames - warmup), "--warmup", str(warmup))
        with stream.writer() as writer:
            payload = np.zeros(64, np.uint8)
            period = 1e9 / rate_hz
            lateness = [20_000]
            if wake_early:
                N.fine_timer_slack()
            start = time.clock_gettime_ns(time.CLOCK_MONOTONIC) + 10_000_000
            for i in range(frames):
                due = start + int(i * period)
                wake_at = due - WAKE_LEAD_NS - sorted(lateness)[len(lateness) // 2] if wake_early else due
                left = wake_at - time.clock_gettime_ns(time.CLOCK_MONOTONIC)
                if left > 0:
                    time.sleep(left / 1e9)  # clock_nanosleep(TIMER_ABSTIME) since Python 3.11
                    if wake_early:
                        lateness = (lateness + [min(max(0, time.clock_gettime_ns(time.CLOCK_MONOTONIC) - wake_at), 200_000)])[-16:]
                if wake_early:
                    writer.wake_readers_early()
                    while time.clock_gettime_ns(time.CLOCK_MONOTONIC) < due:
                        os.sched_yield()
                writer.write(payload, timeout=10)
            writer.close_stream()
        return result(reader)["latency"]
    finally:
        stream.unlink()
        stream.close()


def throughput(ns: str, case: str, frame_bytes: int, frames: int, capacity: int) -> dict:
    """Lossless, the Python writer as fast as it can; the C# reader times the frames after a quarter."""
    name = f"tp-{case}"
    stream = flowline.create(ns, name, np.uint8, frame_bytes, capacity=capacity)
    try:
        zero_copy_read = case in ("zero-copy", "copy-in-zero-copy-read")
        reader = peer("throughput", ns, name, "--policy", "hybrid", "--count", str(frames), "--warmup", str(frames // 4),
                      *(["--look"] if zero_copy_read else []))
        payload = np.full(frame_bytes, 7, np.uint8)
        started = time.perf_counter()
        with stream.writer() as writer:
            if case == "zero-copy":
                for _ in range(frames):
                    writer.look(timeout=30)
                    writer.increment()
            else:
                for _ in range(frames):
                    writer.write(payload, timeout=30)
            writer.close_stream()
        writer_seconds = time.perf_counter() - started
        r = result(reader)
        return {"frames_per_s": r["frames"] / r["seconds"], "bytes_per_s": r["frames"] * frame_bytes / r["seconds"],
                "reader_sleeps_per_1m": r["sleeps"] * 1e6 / max(1, r["frames"]), "writer_frames_per_s": frames / writer_seconds}
    finally:
        stream.unlink()
        stream.close()


def csharp(quick: bool) -> dict:
    """The C#-to-C# rows of `flowline bench streams` (latency and throughput), run now on the same machine."""
    args = ["dotnet", str(CLI), "bench", "streams", "--only", "latency", "--only", "throughput", "--json"] + (["--quick"] if quick else [])
    done = subprocess.run(args, capture_output=True, text=True, timeout=900, check=True)
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="ten times fewer frames: a smoke test, not a measurement")
    options = parser.parse_args()
    scale = 10 if options.quick else 1
    if not CLI.exists():
        sys.exit(f"build the CLI first: dotnet build src/Flowline.Cli -c Release ({CLI} is missing)")
    ns = f"bench-py-{os.getpid()}"
    report = {
        "machine": {"python": platform.python_version(), "numpy": np.__version__, "kernel": platform.release(),
                    "cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
        "python_to_csharp": {
            "latency_64b_1khz_hybrid": latency(ns, "hybrid", 1000, 10_000 // scale, 1_000 // scale),
            "latency_64b_1khz_block": latency(ns, "block", 1000, 10_000 // scale, 1_000 // scale),
            # A paced Python writer that wakes its reader early, and a predictive C# reader (decisions 138, 150).
            "latency_64b_1khz_predictive_early_wake": latency(ns, "predictive", 1000, 10_000 // scale, 1_000 // scale, wake_early=True),
            # The ring sizes of the C# rows they are compared with (flowline bench streams).
            "throughput_64b_copy": throughput(ns, "copy", 64, 400_000 // scale, 1024),
            "throughput_64b_zero_copy": throughput(ns, "zero-copy", 64, 400_000 // scale, 1024),
            "throughput_1mib_copy_in_zero_copy_read": throughput(ns, "copy-in-zero-copy-read", 1 << 20, 8_000 // scale, 8),
        },
        "csharp_to_csharp": csharp(options.quick),
    }
    json.dump(report, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
