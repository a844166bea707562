"""Early wake-ups across the two languages (decisions 138 and 150), and the writer's unfenced claim without a
latest reader (decisions 142 and 151).

The counts asserted are how waits ended (``flowline.wait_counters()``, a C# peer's ``WaitCounters``): a wait
that was never woken early, or that did not spin for its frame, leaves them at 0, so each assertion fails if
its mechanism is missing. No assertion is about elapsed time."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

import flowline
from flowline import _layout as L
from flowline import _native as N
from conftest import payload

RATE_HZ = 200
FRAMES = 100
SPIN = 0.002
"""The Python readers' spin time (s): a reader woken early spins this long for its frame, so that a frame published
a few hundred microseconds late on a loaded machine is still found while spinning."""


def _delta(before: dict[str, int]) -> dict[str, int]:
    after = flowline.wait_counters()
    return {k: after[k] - before[k] for k in after}


@pytest.mark.parametrize("policy", ["predictive", "hybrid"])
def test_a_csharp_paced_writers_early_wake_up_reaches_a_python_predictive_reader(peers, ns, policy):
    with flowline.create(ns, "s", np.uint64, 8, capacity=8) as stream, stream.reader("lossless", policy, SPIN) as reader:
        before = flowline.wait_counters()
        writer = peers.csharp("write", "s", elements=8, capacity=8, count=FRAMES, rate=RATE_HZ, close=True, **{"wake-early": True})
        for sequence in range(FRAMES):
            frame, header = reader.read(timeout=30)
            assert header.sequence == sequence
            np.testing.assert_array_equal(frame, payload(sequence, 8))
        with pytest.raises(flowline.EndOfStream):
            reader.read(timeout=30)
        assert writer.wait() == 0
        counts = _delta(before)
    if policy == "predictive":
        # Asleep between frames, the reader is woken before each frame, spins, and finds it.
        assert counts["early_wake_hits"] >= 1, counts
        assert counts["early_wakes"] >= counts["early_wake_hits"], counts
    else:
        # A hybrid reader woken early sleeps again, as it always did: nothing counted.
        assert counts["early_wakes"] == 0 and counts["early_wake_hits"] == 0, counts


def test_a_python_stage_passes_an_early_wake_up_on_to_a_csharp_reader(peers, ns):
    """C# paced writer -> Python stage (predictive, passing wake-ups on) -> C# predictive reader."""
    with flowline.create(ns, "a", np.uint64, 8, capacity=8) as a, flowline.create(ns, "b", np.uint64, 8, capacity=8) as b, \
            a.reader("lossless", "predictive", SPIN) as stage_in, b.writer() as stage_out:
        # The stage's writer is attached before the C# reader: its attach wakes nobody that could count it.
        downstream = peers.csharp("read", "b", elements=8, capacity=8, count=FRAMES, wait="predictive")
        downstream.expect("ready")
        before = flowline.wait_counters()
        flowline.on_woken_early(stage_out.wake_readers_early)
        try:
            source = peers.csharp("write", "a", elements=8, capacity=8, count=FRAMES, rate=RATE_HZ, close=True, **{"wake-early": True})
            for sequence in range(FRAMES):
                frame, header = stage_in.read(timeout=30)
                assert header.sequence == sequence
                stage_out.write(frame, timeout=30)
        finally:
            flowline.on_woken_early(None)
        counts = _delta(before)
        assert downstream.expect("read ") == f"read {FRAMES} errors 0"
        waits = downstream.expect("waits ").split()
        assert downstream.wait() == 0 and source.wait() == 0
    assert counts["early_wake_hits"] >= 1, counts
    # The C# reader of the stage's output was woken early only by the stage (nothing else writes or wakes
    # that stream), and found frames while spinning.
    early_wakes, early_wake_hits = int(waits[2]), int(waits[4])
    assert early_wake_hits >= 1, waits
    assert early_wakes >= early_wake_hits


def test_a_python_writer_wakes_a_python_predictive_reader_in_another_process(peers, ns):
    """A Python paced writer (wake_readers_early, then publish) and a Python reader in another process."""
    with flowline.create(ns, "s", np.uint64, 8, capacity=8) as stream:
        reader = peers.python(
            "import flowline\n"
            f"s = flowline.attach('{ns}', 's')\n"
            f"r = s.reader('lossless', 'predictive', {SPIN})\n"
            "print('ready', flush=True)\n"
            f"for i in range({FRAMES}):\n"
            "    f, h = r.read(timeout=30)\n"
            "    assert int(f[0]) == h.sequence == i, (f, h)\n"
            "c = flowline.wait_counters()\n"
            "print('waits', c['early_wakes'], c['early_wake_hits'], flush=True)\n")
        reader.expect("ready")
        with stream.writer() as writer:
            deadline = N.now_ns()
            for sequence in range(FRAMES):
                deadline += 1_000_000_000 // RATE_HZ
                while N.now_ns() < deadline - 100_000:
                    time.sleep(max(0.0, (deadline - 100_000 - N.now_ns()) / 1e9))
                writer.wake_readers_early()
                while N.now_ns() < deadline:
                    os.sched_yield()
                writer.write(np.full(8, sequence, np.uint64), timeout=30)
        _, early_wakes, early_wake_hits = reader.expect("waits ").split()
        assert reader.wait() == 0
    assert int(early_wake_hits) >= 1 and int(early_wakes) >= int(early_wake_hits), (early_wakes, early_wake_hits)


def test_wake_readers_early_wakes_only_sleeping_readers_and_a_closed_writer_refuses(ns):
    with flowline.create(ns, "s", np.uint64, 8, capacity=8) as stream:
        writer = stream.writer()
        word = stream.base + L.DATA_SIGNAL_OFFSET
        before = N.load_i32(word)
        writer.wake_readers_early()  # nobody sleeps: no bump, no system call
        assert N.load_i32(word) == before
        N.add_i32(stream.base + L.DATA_SLEEPERS_OFFSET, 1)  # as a sleeping reader counts itself
        try:
            writer.wake_readers_early()
            assert N.load_i32(word) == before + 1
        finally:
            N.add_i32(stream.base + L.DATA_SLEEPERS_OFFSET, -1)
        writer.close()
        with pytest.raises(ValueError):
            writer.wake_readers_early()


class _Claims:
    """Records how the writer marks slot headers -1 (its claim): a fenced exchange or a release store."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, stream: flowline.Stream) -> None:
        self.fenced = 0
        self.ordered = 0
        self.map_stores = 0
        first, last = stream.slot_at(0), stream.slot_at(stream.capacity - 1)
        map_end = stream.slot_map + 4 * stream.capacity
        exchange, release, release32, store32 = N.exchange_u64, N.store_u64_release, N.store_i32_release, N.store_i32

        def is_claim(address: int, value: int) -> bool:
            return first <= address <= last and (address - first) % stream.slot_bytes == 0 and value in (L.SLOT_WRITING, L.SLOT_WRITING & (1 << 64) - 1)

        def counting_exchange(address: int, value: int) -> int:
            if is_claim(address, value):
                self.fenced += 1
            return exchange(address, value)

        def counting_release(address: int, value: int) -> None:
            if is_claim(address, value):
                self.ordered += 1
            release(address, value)

        def counting_map(store):  # type: ignore[no-untyped-def]
            def counting(address: int, value: int) -> None:
                if stream.slot_map <= address < map_end:
                    self.map_stores += 1
                store(address, value)
            return counting

        monkeypatch.setattr(N, "exchange_u64", counting_exchange)
        monkeypatch.setattr(N, "store_u64_release", counting_release)
        monkeypatch.setattr(N, "store_i32_release", counting_map(release32))
        monkeypatch.setattr(N, "store_i32", counting_map(store32))


@pytest.mark.skipif(not N.X86, reason="the unfenced claim is x86's; elsewhere the claim keeps its fence")
def test_the_unfenced_claim_is_used_only_without_a_latest_reader(monkeypatch, ns):
    with flowline.create(ns, "s", np.uint64, 8, capacity=4) as stream, stream.writer() as writer, \
            stream.reader("lossless") as lossless:
        claims = _Claims(monkeypatch, stream)
        sequence = 0

        def write(n: int) -> None:
            nonlocal sequence
            for _ in range(n):
                writer.write(payload(sequence, 8), timeout=5)
                frame, header = lossless.read(timeout=5)
                assert header.sequence == sequence
                np.testing.assert_array_equal(frame, payload(sequence, 8))
                sequence += 1

        # A lossless reader only: every claim is a release store, and after the first lap the slot map
        # already names each slot (filled in ring order), so it is not stored again.
        write(4)
        map_stores_first_lap = claims.map_stores
        write(8)
        assert (claims.fenced, claims.ordered) == (0, 12)
        assert claims.map_stores == map_stores_first_lap

        # A latest reader attached: claims are fenced again (decision 100), and its held frame stays intact.
        with stream.reader("latest") as latest:
            write(1)
            held, header = latest.look(timeout=5)
            write(8)
            # Every claim fenced (one per frame, and one more each time the held slot was tried and put back).
            assert claims.fenced >= 9 and claims.ordered == 12
            assert int(held[0]) == header.sequence and latest.increment()
        fenced = claims.fenced

        # Gone again: unfenced again.
        write(4)
        assert claims.fenced == fenced and claims.ordered == 16


STAGES = '''
import numpy as np

count = 0


def copy(inputs, outputs, parameters):
    outputs[0][:] = inputs[0]


def produce(outputs, parameters):
    global count
    outputs[0][:] = count
    count += 1
'''


def test_python_workers_in_a_pipeline_pass_early_wake_ups_on_and_report_them(ns, tmp_path):
    """A paced C# source -> Python kernel -> C# kernel, and a paced Python source -> C# kernel, under `flowline
    run`: the Python kernel answers its input's early wake-ups and passes them on, the Python source wakes its
    readers early, and the status's `waits` counts them (the Python worker's as a C# worker's)."""
    import json
    import signal
    import sys

    from test_pipeline import _drain, flowline_run, readers_attached, wait_until

    (tmp_path / "stages.py").write_text(STAGES)
    run = flowline_run(tmp_path, f"""
namespace: {ns}
shared_memory:
  - {{name: cam, shape: [64], dtype: float32}}
  - {{name: copied, shape: [64], dtype: float32}}
  - {{name: scaled, shape: [64], dtype: float32}}
  - {{name: gen, shape: [8], dtype: float64}}
  - {{name: tripled, shape: [8], dtype: float64}}
sources:
  - {{name: camera, kind: synthetic.array, stream: cam, parameters: {{pattern: sine, rate_hz: {RATE_HZ}}}}}
  - {{name: counter, kind: python.source, stream: gen, parameters: {{module: stages, function: produce, interpreter: {sys.executable}, rate_hz: {RATE_HZ}}}}}
kernels:
  - {{name: pycopy, kind: python.kernel, input: cam, output: copied, parameters: {{module: stages, function: copy, interpreter: {sys.executable}}}}}
  - {{name: after_py, kind: cpu.scale, input: copied, output: scaled, parameters: {{factor: 2.0}}}}
  - {{name: after_pysource, kind: cpu.scale, input: gen, output: tripled, parameters: {{factor: 3.0}}}}
""")
    try:
        for stream in ("cam", "copied", "gen"):
            wait_until(lambda: readers_attached(ns, stream) >= 1, f"a kernel reads '{stream}'")
        with flowline.attach(ns, "scaled") as scaled, scaled.reader("lossless") as out1, \
                flowline.attach(ns, "tripled") as tripled, tripled.reader("lossless") as out2:
            for _ in range(FRAMES):  # half a second of frames through both chains
                out1.read(timeout=30)
                out2.read(timeout=30)
        run.process.send_signal(signal.SIGINT)
        assert run.wait(60) == 0
        snapshot = json.loads("\n".join(_drain(run)))
    finally:
        run.kill()
    assert snapshot["failures"] == []
    kernels = snapshot["workers"]
    # The Python kernel is woken early by the C# source and finds its frames while spinning ...
    assert kernels["pycopy"]["waits"]["early_wake_hits"] >= 1, kernels["pycopy"]
    # ... and passes the wake-up on: nothing else wakes the C# kernel that reads its output before a frame.
    assert kernels["after_py"]["waits"]["early_wake_hits"] >= 1, kernels["after_py"]
    # The Python source wakes its reader early.
    assert kernels["after_pysource"]["waits"]["early_wake_hits"] >= 1, kernels["after_pysource"]
