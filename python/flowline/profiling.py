"""Profiling histograms of a Python worker (issue 12, docs/python.md "Profiling").

A C# worker keeps HdrHistograms in its profile block; a Python worker keeps a fixed array of counts per
octave of microseconds (powers of two from 1 us), each octave cut into :data:`SUB` linear sub-buckets (a
preallocated list, summarized with numpy), so that a percentile is known within 1/``SUB`` of its octave
(about 3 %, as HdrHistogram's two significant digits). Recording a value is a few float operations and one
list increment (about 0.3 us in CPython): no array or object is made per frame. Values above 2**47 us count
as 2**47 us, as the C# histograms clamp theirs. The worker answers ``profiling_snapshot``
with the same JSON shape as the manager gives for a C# worker (``HistogramSummary``: ``count``, ``p50_us``,
``p90_us``, ``p99_us``, ``p999_us``, ``max_us``, ``mean_us``), plus ``buckets``: the counts per power of two,
``[{"up_to_us": 1.0, "count": n}, {"up_to_us": 2.0, ...}, ...]``, each counting the values above the
previous bound and at most ``up_to_us`` (the first: every value of at most 1 us), from the first non-empty
bucket to the last (the empty ones between included).
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

SUB = 32
"""Linear sub-buckets per octave."""
OCTAVES = 48
"""Octaves kept: up to 2**47 us (about four years); larger values count in the last one."""

MAX_NS = 2 ** (OCTAVES - 1) * 1000
"""The largest value kept (larger ones are clamped to it)."""

_frexp = math.frexp


class Histogram:
    """Counts of values in microseconds (recorded in nanoseconds), by octave and sub-bucket."""

    __slots__ = ("counts", "total", "sum_ns", "max_ns")

    def __init__(self) -> None:
        # A flat, preallocated list: incrementing one of its ints costs a third of a numpy element's increment.
        self.counts = [0] * (OCTAVES * SUB)
        self.total = 0
        self.sum_ns = 0
        self.max_ns = 0

    def record(self, ns: int) -> None:
        """Counts one value of ``ns`` nanoseconds (negative values count as 0)."""
        if ns < 0:
            ns = 0
        elif ns > MAX_NS:
            ns = MAX_NS
        us = ns / 1000.0
        if us <= 1.0:
            index = min(int(us * SUB), SUB - 1)
        else:
            # us = m * 2**e with 0.5 <= m < 1: the octave (2**(e-1), 2**e]; exactly 2**(e-1) belongs to the one below.
            m, e = _frexp(us)
            if m == 0.5:
                index = e * SUB - 1
            else:
                index = e * SUB + int((m - 0.5) * 2 * SUB)
        self.counts[index] += 1
        self.total += 1
        self.sum_ns += ns
        if ns > self.max_ns:
            self.max_ns = ns

    def summary(self) -> Optional[dict[str, Any]]:
        """The summary in microseconds (``HistogramSummary``'s fields, and ``buckets``), or None if empty."""
        flat = np.array(self.counts, np.int64)  # the loop may record meanwhile: summarize one copy
        counts = flat.reshape(OCTAVES, SUB)
        total = int(flat.sum())
        if total == 0:
            return None
        max_us = self.max_ns / 1000.0
        cumulative = np.cumsum(flat)

        def at(percentile: float) -> float:
            rank = max(1, math.ceil(percentile / 100.0 * total))
            index = int(np.searchsorted(cumulative, rank))
            octave, sub = divmod(index, SUB)
            low = 0.0 if octave == 0 else 2.0 ** (octave - 1)
            high = 2.0 ** octave
            return round(min(low + (high - low) * (sub + 1) / SUB, max_us), 3)

        per_octave = counts.sum(axis=1)
        nonzero = np.flatnonzero(per_octave)
        first, last = int(nonzero[0]), int(nonzero[-1])
        buckets = [{"up_to_us": float(2.0 ** i), "count": int(per_octave[i])} for i in range(first, last + 1)]
        recorded = self.total
        return {
            "count": total,
            "p50_us": at(50),
            "p90_us": at(90),
            "p99_us": at(99),
            "p999_us": at(99.9),
            "max_us": round(max_us, 3),
            "mean_us": round(self.sum_ns / recorded / 1000.0, 3) if recorded else 0.0,
            "buckets": buckets,
        }


class WorkerProfile:
    """A Python worker's histograms: the latency of each input's frames from their origin, and its compute time."""

    def __init__(self, node: str, inputs: list[str]) -> None:
        self.node = node
        self.inputs = list(inputs)
        self.latency = [Histogram() for _ in inputs]
        self.compute = Histogram()

    def snapshot(self, time_iso: str) -> dict[str, Any]:
        """``profiling_snapshot``'s answer: the shape of the manager's ``ProfilingSnapshot`` for this process's
        histograms (its readers' ``latency`` by stream, its node's ``compute``); the manager adds the counters."""
        return {
            "time": time_iso,
            "streams": [{"name": stream, "readers": [{"node": self.node, "latency": h.summary()}]} for stream, h in zip(self.inputs, self.latency)],
            "nodes": [{"name": self.node, "compute": self.compute.summary()}],
        }
