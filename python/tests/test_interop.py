"""A C# peer and Python on the same streams, both ways."""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest

import flowline
from flowline import _layout as L
from flowline import _native as N
from conftest import ROOT, payload, uniform


def test_layout_hashes_match_the_csharp_regions(peers, ns):
    peers.csharp("create", "s", capacity=4, hang=True).expect("created")
    for name, expected in (("s", L.STREAM_HASH), ("s.evt", L.EVENT_HASH)):
        header = (ROOT / ns / name).read_bytes()[:L.HEADER_SIZE]
        assert int.from_bytes(header[0:8], "little") == L.MAGIC
        assert int.from_bytes(header[8:12], "little") == L.LAYOUT_VERSION
        assert int.from_bytes(header[L.HASH_OFFSET:L.HASH_OFFSET + 8], "little") == expected, name


@pytest.mark.parametrize("policy", ["hybrid", "block"])
def test_csharp_writer_python_lossless_reader(peers, ns, policy):
    peers.csharp("create", "s", capacity=4, elements=16, hang=True).expect("created")
    stream = flowline.attach(ns, "s")
    assert stream.dtype == np.uint64 and stream.shape == (16,) and stream.capacity == 4
    reader = stream.reader("lossless", wait_policy=policy)
    writer = peers.csharp("write", "s", capacity=4, elements=16, count=300, close=True)
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    for sequence in range(300):
        frame, header = reader.read(timeout=30)
        assert header.sequence == sequence
        assert header.frame_id == sequence * 10
        assert before <= header.publish_ns <= time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        assert header.origin_ns == header.publish_ns
        np.testing.assert_array_equal(frame, payload(sequence, 16))
    with pytest.raises(flowline.EndOfStream):
        reader.read(timeout=30)
    assert writer.wait() == 0
    reader.close()
    stream.close()


def test_csharp_writer_python_latest_reader_and_zero_copy_looks(peers, ns):
    peers.csharp("create", "s", capacity=4, elements=64, hang=True).expect("created")
    stream = flowline.attach(ns, "s")
    reader = stream.reader("latest")
    writer = peers.csharp("write", "s", capacity=4, elements=64, count=20000, close=True, pattern="uniform")
    last, intact, looks = -1, 0, 0
    while True:
        try:
            if looks % 2:
                frame, header = reader.read(timeout=30)
                ok = True
            else:
                frame, header = reader.look(timeout=30)
                assert not frame.flags.writeable
                copy = frame.copy()
                ok = reader.increment()
                frame = copy
        except flowline.EndOfStream:
            break
        looks += 1
        assert header.sequence > last
        last = header.sequence
        if ok:
            intact += 1
            np.testing.assert_array_equal(frame, uniform(header.sequence, 64))
    assert last == 19999
    assert intact >= 1
    assert reader.torn_copies == 0  # looks and copies hold their slot (decision 100)
    assert reader.frames_read + reader.frames_skipped >= 20000 - 1
    assert writer.wait() == 0


def test_a_python_latest_look_holds_its_slot_while_a_csharp_writer_laps_the_ring(peers, ns):
    peers.csharp("create", "s", capacity=4, elements=64, hang=True).expect("created")
    stream = flowline.attach(ns, "s")
    reader = stream.reader("latest")
    writer = peers.csharp("write", "s", capacity=4, elements=64, count=20000, close=True, pattern="uniform")
    frame, header = reader.look(timeout=30)
    writer.expect("written 20000")  # the C# writer never waits for the held slot
    assert stream.cursor == 20000 and stream.cursor - header.sequence > 4 * 100
    np.testing.assert_array_equal(frame, uniform(header.sequence, 64))
    assert reader.is_still_intact(header.sequence)
    assert reader.increment() is True
    assert reader.torn_copies == 0
    assert writer.wait() == 0
    reader.close()
    stream.close()


def test_a_python_writer_skips_a_csharp_readers_held_slot_and_reuses_it_once_the_reader_is_killed(peers, ns):
    peers.csharp("create", "s", capacity=4, elements=8, hang=True).expect("created")
    with flowline.attach(ns, "s") as stream, stream.writer() as writer:
        holder = peers.csharp("hold-latest", "s", capacity=4, elements=8)
        holder.expect("ready")
        writer.write(payload(0, 8))
        assert holder.expect("held") == "held 0"
        entries = [stream.reader_entry(i) for i in range(stream.max_readers)]
        held = [N.load_i64(e + L.READER_HOLD_OFFSET) - 1 for e in entries if N.load_i64(e + L.READER_HOLD_OFFSET) > 0]
        assert len(held) == 1
        for sequence in range(1, 41):
            writer.write(payload(sequence, 8), timeout=0)  # never waits
            assert stream.slot_index(sequence) != held[0]
        holder.kill()
        deadline = time.monotonic() + 30
        sequence = 41
        while stream.reclaimed_readers == 0:
            assert time.monotonic() < deadline, "the killed reader's hold was not released"
            writer.write(payload(sequence, 8), timeout=0)
            sequence += 1
            time.sleep(0.001)
        used = set()
        for _ in range(4):
            writer.write(payload(sequence, 8), timeout=0)
            used.add(stream.slot_index(sequence))
            sequence += 1
        assert held[0] in used


def test_python_writer_csharp_lossless_reader(peers, ns):
    peers.csharp("create", "s", capacity=4, elements=16, hang=True).expect("created")
    reader = peers.csharp("read", "s", capacity=4, elements=16, count=500)
    reader.expect("ready")
    with flowline.attach(ns, "s") as stream, stream.writer() as writer:
        for sequence in range(500):
            if sequence % 2:
                writer.write(payload(sequence, 16), timeout=30)
            else:
                writer.look(timeout=30)[:] = payload(sequence, 16)
                writer.increment()
        assert reader.expect("read ") == "read 500 errors 0"
        assert reader.wait() == 0


def test_python_writer_csharp_latest_reader(peers, ns):
    peers.csharp("create", "s", capacity=4, elements=32, hang=True).expect("created")
    reader = peers.csharp("read-latest", "s", capacity=4, elements=32)
    reader.expect("ready")
    with flowline.attach(ns, "s") as stream:
        writer = stream.writer()
        for sequence in range(3000):
            writer.write(uniform(sequence, 32))
        writer.close_stream()
        line = reader.expect("read ")
        assert line.endswith("errors 0 last 2999"), line
        assert reader.wait() == 0
        writer.close()


def _held_python_reader(peers, ns, then: str, policy: str):
    """A C#-created 4-slot stream 's' and a Python process with a lossless reader 'r' on it that runs ``then``."""
    peers.csharp("create", "s", capacity=4, elements=8, hang=True).expect("created")
    held = peers.python(
        "import flowline\n"
        f"r = flowline.attach('{ns}', 's').reader('lossless', wait_policy='{policy}')\n"
        "print('ready', flush=True)\n"
        f"{then}\n")
    held.expect("ready")
    return held


def test_a_killed_python_reader_releases_a_csharp_writer(peers, ns):
    held = _held_python_reader(peers, ns, "import time; time.sleep(600)", "hybrid")
    stream = flowline.attach(ns, "s")
    writer = peers.csharp("write", "s", capacity=4, elements=8, count=50)
    writer.expect("ready")
    # The live Python reader holds the writer back once the ring is full (its owner word names a live process).
    deadline = time.monotonic() + 30
    while stream.cursor < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.5)
    assert stream.cursor == 4
    assert writer.process.poll() is None
    held.process.send_signal(signal.SIGKILL)
    held.wait(10)
    assert writer.expect("written") == "written 50"
    assert writer.wait() == 0
    assert stream.reclaimed_readers == 1
    stream.close()


def test_layout_mismatch_is_refused(peers, ns):
    peers.csharp("create", "s", capacity=4, hang=True).expect("created")
    data = bytearray((ROOT / ns / "s").read_bytes())
    data[L.HASH_OFFSET] ^= 0xFF
    (ROOT / ns / "other").write_bytes(data)
    with pytest.raises(flowline.LayoutMismatchError, match=r"layout hash 0x[0-9A-F]{16}.*expected layout version 2, kind stream, layout hash"):
        flowline.attach(ns, "other")
    with pytest.raises(flowline.LayoutMismatchError, match="kind event"):
        flowline.attach(ns, "s.evt")
    with pytest.raises(flowline.LayoutMismatchError, match=r"it holds uint64\[8\] frames; expected float32\[8\] frames"):
        flowline.attach(ns, "s", dtype="float32")
    with pytest.raises(flowline.LayoutMismatchError, match=r"expected uint64\[2, 4\] frames"):
        flowline.attach(ns, "s", shape=(2, 4))
    flowline.attach(ns, "s", dtype=np.uint64, shape=(8,)).close()
    with pytest.raises(flowline.RegionNotFoundError, match="does not exist"):
        flowline.attach(ns, "missing")


def test_one_writer_at_a_time_and_a_gone_writer(peers, ns):
    peers.csharp("create", "s", capacity=4, elements=8, hang=True).expect("created")
    csharp = peers.csharp("write", "s", capacity=4, elements=8, count=2, hang=True)
    with flowline.attach(ns, "s") as stream:
        reader = stream.reader("lossless")
        csharp.expect("written")
        with pytest.raises(flowline.FlowlineError, match=f"already has a writer \\(pid {csharp.process.pid}\\)"):
            stream.writer()
        csharp.kill()
        # Frames published before the writer died are drained, then the dead writer is noticed.
        assert [reader.read(timeout=30)[1].sequence for _ in range(2)] == [0, 1]
        with pytest.raises(flowline.WriterGone):
            reader.read(timeout=30)
        assert stream.writer_state == "dead"
        reader.close()


def test_a_python_writer_reclaims_a_killed_csharp_reader(peers, ns):
    peers.csharp("create", "s", capacity=4, elements=8, hang=True).expect("created")
    held = peers.csharp("read", "s", capacity=4, elements=8, count=0, hang=True)
    held.expect("read 0")
    with flowline.attach(ns, "s") as stream, stream.writer(wait_policy="block") as writer:
        for sequence in range(4):
            writer.write(payload(sequence, 8))
        # The ring is full and the C# reader is alive: no space.
        with pytest.raises(flowline.FrameTimeout, match="a lossless reader lags"):
            writer.write(payload(4, 8), timeout=0.3)
        held.kill()
        for sequence in range(4, 40):
            writer.write(payload(sequence, 8), timeout=30)
        assert stream.reclaimed_readers == 1


def test_timeouts_and_stale_regions(peers, ns):
    creator = peers.csharp("create", "s", capacity=4, elements=8, hang=True)
    creator.expect("created")
    with flowline.attach(ns, "s") as stream, stream.reader("lossless", wait_policy="block") as reader:
        with pytest.raises(flowline.FrameTimeout):
            reader.read(timeout=0.05)
        with pytest.raises(flowline.FrameTimeout):
            reader.look(timeout=0)
    creator.kill()
    with pytest.raises(flowline.StaleRegionError, match=f"created by pid {creator.process.pid}, which has exited"):
        flowline.attach(ns, "s")


def test_endpoints_keep_the_mapping_of_a_closed_stream(peers, ns):
    peers.csharp("create", "s", capacity=4, elements=8, hang=True).expect("created")
    stream = flowline.attach(ns, "s")
    writer = stream.writer()
    reader = stream.reader("lossless")
    stream.close()
    with pytest.raises(ValueError, match="is closed"):
        stream.reader()
    with pytest.raises(ValueError, match="is closed"):
        _ = stream.cursor
    writer.write(payload(0, 8))
    frame, header = reader.read(timeout=5)
    np.testing.assert_array_equal(frame, payload(0, 8))
    reader.close()
    writer.close()


def test_a_python_reader_killed_in_its_sleep_gives_its_sleeper_count_back(peers, ns):
    held = _held_python_reader(peers, ns, "r.read(timeout=600)", "block")
    with flowline.attach(ns, "s") as stream:
        entry = stream.reader_entry(0)
        deadline = time.monotonic() + 30
        # Asleep as C# expects: counted among the data signal's sleepers, its entry's sleeping flag raised.
        while stream.sleeping_readers != 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stream.sleeping_readers == 1
        assert int.from_bytes((ROOT / ns / "s").read_bytes()[entry - stream.base + L.READER_SLEEPING_OFFSET:][:4], "little") == 1
        held.process.send_signal(signal.SIGKILL)
        held.wait(10)
        writer = peers.csharp("write", "s", capacity=4, elements=8, count=20)
        assert writer.expect("written") == "written 20"
        assert writer.wait() == 0
        # The C# writer reclaimed the dead reader's entry and took its count back.
        assert stream.reclaimed_readers == 1
        assert stream.sleeping_readers == 0


@pytest.mark.parametrize("policy", ["hybrid", "block"])
def test_wait_any_wakes_for_the_stream_that_gets_a_frame(peers, ns, policy):
    for name in ("a", "b"):
        peers.csharp("create", name, capacity=4, elements=8, hang=True).expect("created")
    with flowline.attach(ns, "a") as a, flowline.attach(ns, "b") as b:
        readers = [a.reader("lossless", wait_policy=policy), b.reader("lossless", wait_policy=policy)]
        assert flowline.wait_any(readers, timeout=0.05) is None
        peers.csharp("write", "b", capacity=4, elements=8, count=1, close=True)
        assert flowline.wait_any(readers, timeout=30) == 1
        assert readers[1].read(timeout=0)[1].sequence == 0
        # b's writer closed it: b is "ready" with its end of stream; a gets a frame later.
        assert flowline.wait_any(readers, timeout=30) == 1
        with pytest.raises(flowline.EndOfStream):
            readers[1].read(timeout=0)
        peers.csharp("write", "a", capacity=4, elements=8, count=1, close=True)
        assert flowline.wait_any(readers[:1], timeout=30) == 0
        np.testing.assert_array_equal(readers[0].read(timeout=0)[0], payload(0, 8))
        for reader in readers:
            reader.close()
