"""A Python worker's profiling histograms (issue 12): the latency of its input's frames from their origin and its
compute time, answered to ``profiling_snapshot`` through a real `flowline serve`, in the JSON shape of a C#
worker's ``HistogramSummary`` with the power-of-two ``buckets``; and the histogram's own arithmetic."""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT
from test_pipeline import python_workers, wait_until
from test_requests import call, serve_started

from flowline.profiling import Histogram

SUMMARY = {"count", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "mean_us", "buckets"}


def check_summary(summary: dict) -> None:
    """The fields of a C# ``HistogramSummary`` plus ``buckets``, consistent with each other."""
    assert set(summary) == SUMMARY, summary
    assert summary["count"] > 0
    assert 0 <= summary["p50_us"] <= summary["p90_us"] <= summary["p99_us"] <= summary["p999_us"] <= summary["max_us"]
    buckets = summary["buckets"]
    assert sum(b["count"] for b in buckets) == summary["count"]
    assert buckets[0]["count"] > 0 and buckets[-1]["count"] > 0  # from the first non-empty bucket to the last
    bounds = [b["up_to_us"] for b in buckets]
    assert all(b == 2.0 ** round(np.log2(b)) for b in bounds) and bounds[0] >= 1.0
    assert all(later == 2 * earlier for earlier, later in zip(bounds, bounds[1:]))
    # The largest value lies in the last bucket: above the previous bound, at most its own.
    assert summary["max_us"] <= bounds[-1] and (len(bounds) == 1 or summary["max_us"] > bounds[-1] / 2)


def test_python_worker_answers_profiling_snapshot_with_histograms(ns: str, tmp_path: Path) -> None:
    server, url = serve_started(ns, tmp_path)
    try:

        def snapshot() -> dict:
            status, reply = call(url, "POST", "/nodes/py/requests", {"op": "profiling_snapshot", "timeout_ms": 5000})
            assert status == 200, reply
            return reply["result"]

        def compute_count() -> int:
            node = next(n for n in snapshot()["nodes"] if n["name"] == "py")
            return node["compute"]["count"] if node["compute"] else 0

        wait_until(lambda: compute_count() >= 20, "the Python worker counts its frames' compute time", 30)
        result = snapshot()
        node = next(n for n in result["nodes"] if n["name"] == "py")
        check_summary(node["compute"])
        # The kernel sleeps 0.5 ms per frame: its compute time says so.
        assert node["compute"]["p50_us"] >= 400, node["compute"]

        # Its reader of 'raw' (the counters read by the manager from the stream) carries the latency from the origin.
        raw = next(s for s in result["streams"] if s["name"] == "raw")
        reader = next(r for r in raw["readers"] if r["node"] == "py")
        check_summary(reader["latency"])
        assert reader["frames"] >= reader["latency"]["count"] - 5  # the counters and the histogram see the same frames
        filled = next(s for s in result["streams"] if s["name"] == "filled")
        assert filled["writer"]["node"] == "py" and filled["writer"]["frames"] > 0

        # The whole pipeline's snapshot (GET /profiling) carries the Python worker's histograms too.
        status, whole = call(url, "GET", "/profiling")
        assert status == 200, whole
        py = next(n for n in whole["nodes"] if n["name"] == "py")
        assert py["compute"]["count"] > 0 and py["compute"]["p50_us"] >= 400, py
        raw_readers = next(s for s in whole["streams"] if s["name"] == "raw")["readers"]
        assert next(r for r in raw_readers if r["node"] == "py")["latency"]["count"] > 0

        later = compute_count()
        wait_until(lambda: compute_count() > later, "the histogram keeps counting", 30)

        status, error = call(url, "POST", "/nodes/py/requests", {"op": "profiling_snapshot", "args": {"x": 1}})
        assert error["code"] == "invalid_request" and status in (400, 422), error

        server.process.send_signal(signal.SIGTERM)
        assert server.wait(60) == 0
    finally:
        server.kill()
    wait_until(lambda: python_workers(ns) == [], "the Python worker exits with the server", 10)
    assert not (ROOT / ns).exists()


def test_histogram_buckets_and_percentiles() -> None:
    h = Histogram()
    assert h.summary() is None
    for ns in (0, 400, 1000, 1001, 2000, 2001, 3000, 9000):
        h.record(ns)
    s = h.summary()
    # (0, 1] us: 0, 0.4, 1.0; (1, 2]: 1.001, 2.0; (2, 4]: 2.001, 3.0; (4, 8]: none; (8, 16]: 9.0.
    assert [(b["up_to_us"], b["count"]) for b in s["buckets"]] == [(1.0, 3), (2.0, 2), (4.0, 2), (8.0, 0), (16.0, 1)]
    assert (s["count"], s["max_us"]) == (8, 9.0)
    assert s["mean_us"] == pytest.approx((400 + 1000 + 1001 + 2000 + 2001 + 3000 + 9000) / 8 / 1000, abs=1e-3)

    only_large = Histogram()
    only_large.record(5_000_000)  # 5 ms: the buckets start at the first non-empty one
    assert [b["up_to_us"] for b in only_large.summary()["buckets"]] == [8192.0]

    rng = np.random.default_rng(7)
    values = rng.exponential(80_000, 50_000).astype(np.int64)
    h = Histogram()
    for v in values.tolist():
        h.record(v)
    s = h.summary()
    for key, q in (("p50_us", 50), ("p90_us", 90), ("p99_us", 99)):
        exact = float(np.percentile(values / 1000.0, q))
        assert exact * 0.97 <= s[key] <= exact * 1.04, (key, s[key], exact)  # within a sub-bucket (1/32 of an octave)
