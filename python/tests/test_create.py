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


def _region_id(ns: str, name: str) -> bytes:
    return (ROOT / ns / name).read_bytes()[40:48]


def test_create_or_attach_creates_then_attaches_and_csharp_attaches_too(peers, ns):
    stream = flowline.create_or_attach(ns, "s", np.uint64, 16, capacity=4)
    first = _region_id(ns, "s")
    # C# opens it with create_or_attach too: it attaches to this one (same format and options).
    reader = peers.csharp("read", "s", capacity=4, elements=16, count=50, mode="create_or_attach")
    reader.expect("ready")
    again = flowline.create_or_attach(ns, "s", np.uint64, (16,), capacity=4)
    assert _region_id(ns, "s") == first
    with again.writer() as writer:
        for sequence in range(50):
            writer.write(payload(sequence, 16), timeout=30)
    assert reader.expect("read ") == "read 50 errors 0"
    assert reader.wait() == 0
    with pytest.raises(flowline.LayoutMismatchError, match=r"holds uint64\[16\] frames in 4 slots for 8 readers; expected uint64\[16\] frames in 8 slots"):
        flowline.create_or_attach(ns, "s", np.uint64, 16, capacity=8)
    assert _region_id(ns, "s") == first
    again.close()
    assert stream.unlink()
    stream.close()


def test_create_or_attach_recreates_a_stale_stream_and_replace_recreates_any(peers, ns):
    creator = peers.csharp("create", "s", capacity=4, elements=16)
    creator.expect("created")
    assert creator.wait() == 0  # its creator is gone and nobody uses it: stale
    stale = _region_id(ns, "s")
    with pytest.raises(flowline.StaleRegionError):
        flowline.attach(ns, "s")
    stream = flowline.create_or_attach(ns, "s", np.uint64, 16, capacity=4)
    assert _region_id(ns, "s") != stale
    with stream.writer() as writer:
        writer.write(payload(0, 16))
    # replace recreates even a live stream; the old one keeps working for whoever holds it.
    fresh = flowline.replace(ns, "s", np.float32, (2, 3), capacity=2)
    assert (fresh.dtype, fresh.shape, fresh.capacity) == (np.float32, (2, 3), 2)
    assert stream.cursor == 1 and fresh.cursor == 0
    # C# attaches to the replacement, not to the old one.
    other = peers.csharp("read", "s", capacity=4, elements=16, count=1)
    assert other.wait() != 0  # float32[2, 3] in 2 slots is not what it expects
    stream.close()
    assert fresh.unlink()
    fresh.close()
    flowline.Event.create(ns, "e").close()
    event = flowline.Event.create_or_attach(ns, "e", initial_state=True)
    assert not event.is_set  # attached: initial_state applies to a new event only
    replaced = flowline.Event.replace(ns, "e", initial_state=True)
    assert replaced.is_set and not event.is_set
    assert replaced.unlink()
    # The C# creator's event is stale too: create_or_attach recreates it (a new incarnation).
    old_event = _region_id(ns, "s.evt")
    with pytest.raises(flowline.StaleRegionError):
        flowline.Event.attach(ns, "s.evt")
    recreated = flowline.Event.create_or_attach(ns, "s.evt")
    assert _region_id(ns, "s.evt") != old_event
    assert recreated.unlink()
    for e in (event, replaced, recreated):
        e.close()
    assert not (ROOT / ns).exists()
