"""Streams and events created by Python, used by the C# peer."""

from __future__ import annotations

import numpy as np
import pytest

import flowline
from conftest import ROOT, payload


def test_a_python_stream_is_read_by_csharp_and_unlinked(peers, ns):
    stream = flowline.create(ns, "s", np.uint64, 16, capacity=4)
    assert (stream.dtype, stream.shape, stream.capacity, stream.max_readers) == (np.uint64, (16,), 4, 8)
    with pytest.raises(flowline.RegionExistsError, match="already exists"):
        flowline.create(ns, "s", np.uint64, 16, capacity=4)
    # C# attaches with the same format (its attach checks the layout hash, the descriptor and the size).
    reader = peers.csharp("read", "s", capacity=4, elements=16, count=100)
    reader.expect("ready")
    with stream.writer() as writer:
        for sequence in range(100):
            writer.write(payload(sequence, 16), timeout=30)
    assert reader.expect("read ") == "read 100 errors 0"
    assert reader.wait() == 0
    # A C# peer expecting another capacity is refused.
    other = peers.csharp("read", "s", capacity=8, elements=16, count=1)
    assert other.wait() != 0
    assert stream.unlink()
    assert not (ROOT / ns).exists()
    stream.close()


def test_python_events_are_used_by_csharp(peers, ns):
    ping = flowline.Event.create(ns, "ping")
    pong = flowline.Event.create(ns, "pong", initial_state=True)
    assert pong.is_set and pong.pending == 1 and not ping.is_set
    assert pong.wait_activation(timeout=0)
    csharp = peers.csharp("events", "x", wait="ping", signal="pong", rounds=20)
    csharp.expect("ready")
    for _ in range(20):
        ping.signal()
        assert pong.wait_activation(timeout=30)
    assert csharp.wait() == 0
    for event in (ping, pong):
        assert event.unlink()
        event.close()


@pytest.mark.parametrize("dtype, shape, capacity, readers, message", [
    ("float16", 8, 4, 1, "not a Flowline element type"),
    ("float32", (0, 3), 4, 1, "each at least 1"),
    ("float32", 8, 3, 1, "power of two"),
    ("float32", 8, 4, 65, "max readers of 65"),
])
def test_invalid_streams_are_refused(ns, dtype, shape, capacity, readers, message):
    with pytest.raises(ValueError, match=message):
        flowline.create(ns, "s", dtype, shape, capacity=capacity, max_readers=readers)
    assert not (ROOT / ns / "s").exists()
