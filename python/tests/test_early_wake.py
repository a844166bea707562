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

RATE_HZ = 20
FRAMES = 40
LEAD_US = 4000
"""How long before each frame the test's writers wake their readers: a woken process gets its CPU within
milliseconds even with both CPUs busy, where the 30 µs lead of a real source would often be too short."""
SPIN = 0.02
"""The readers' spin time (s): a reader woken early spins this long (more than the lead) for its frame."""


def _delta(before: dict[str, int]) -> dict[str, int]:
    after = flowline.wait_counters()
    return {k: after[k] - before[k] for k in after}


@pytest.mark.parametrize("policy", ["predictive", "hybrid"])
def test_a_csharp_paced_writers_early_wake_up_reaches_a_python_predictive_reader(peers, ns, policy):
    with flowline.create(ns, "s", np.uint64, 8, capacity=8) as stream, stream.reader("lossless", policy, SPIN) as reader:
        before = flowline.wait_counters()
        writer = peers.csharp("write", "s", elements=8, capacity=8, count=FRAMES, rate=RATE_HZ, close=True,
                                **{"wake-early": True, "wake-lead-us": LEAD_US})
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
        downstream = peers.csharp("read", "b", elements=8, capacity=8, count=FRAMES, wait="predictive", **{"spin-us": int(SPIN * 1e6)})
        downstream.expect("ready")
        before = flowline.wait_counters()
        flowline.on_woken_early(stage_out.wake_readers_early)
        try:
            source = peers.csharp("write", "a", elements=8, capacity=8, count=FRAMES, rate=RATE_HZ, close=True,
                                **{"wake-early": True, "wake-lead-us": LEAD_US})
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
                while N.now_ns() < deadline - LEAD_US * 1000:
                    time.sleep(max(0.0, (deadline - LEAD_US * 1000 - N.now_ns()) / 1e9))
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


STAGES = """
count = 0


def copy(inputs, outputs, parameters):
    outputs[0][:] = inputs[0]


def produce(outputs, parameters):
    from conftest import payload  # run in the test's process only
    global count
    outputs[0][:] = payload(count, 8)
    count += 1
"""


def test_a_python_kernel_worker_passes_early_wake_ups_on_and_reports_them(ns, tmp_path):
    """This test's paced writer -> Python kernel (python.kernel under `flowline run`) -> C# kernel: the Python
    kernel answers its input's early wake-ups and passes them on, and the status's `waits` counts them."""
    import json
    import signal
    import sys

    from test_pipeline import _drain, flowline_run, readers_attached, wait_until

    (tmp_path / "stages.py").write_text(STAGES)
    run = flowline_run(tmp_path, f"""
namespace: {ns}
shared_memory:
  - {{name: cam, shape: [8], dtype: uint64}}
  - {{name: copied, shape: [8], dtype: uint64}}
  - {{name: scaled, shape: [8], dtype: uint64}}
kernels:
  - {{name: pycopy, kind: python.kernel, input: cam, output: copied, parameters: {{module: stages, function: copy, interpreter: {sys.executable}}}}}
  - {{name: after_py, kind: cpu.copy, input: copied, output: scaled}}
""")
    try:
        for stream in ("cam", "copied"):
            wait_until(lambda: readers_attached(ns, stream) >= 1, f"a kernel reads '{stream}'")
        with flowline.attach(ns, "cam") as cam, cam.writer() as writer, \
                flowline.attach(ns, "scaled") as scaled, scaled.reader("lossless") as out:
            due = N.now_ns()
            for sequence in range(FRAMES):
                due += 1_000_000_000 // RATE_HZ
                while N.now_ns() < due - LEAD_US * 1000:
                    time.sleep(max(0.0, (due - LEAD_US * 1000 - N.now_ns()) / 1e9))
                writer.wake_readers_early()
                while N.now_ns() < due:
                    os.sched_yield()
                writer.write(payload(sequence, 8), timeout=30)
                frame, _ = out.read(timeout=30)
                np.testing.assert_array_equal(frame, payload(sequence, 8))
            # The figures are published at most every 250 ms: wait for the last frames' to be in the status.
            time.sleep(0.3)
        run.process.send_signal(signal.SIGINT)
        assert run.wait(60) == 0
        snapshot = json.loads("\n".join(_drain(run)))
    finally:
        run.kill()
    assert snapshot["failures"] == []
    workers = snapshot["workers"]
    # The Python kernel, asleep between frames, is woken early by this writer with no frame yet ...
    assert workers["pycopy"]["waits"]["early_wakes"] >= 1, workers["pycopy"]
    # ... and passes the wake-up on: nothing else wakes the C# kernel that reads its output before a frame
    # (whether that kernel's 100 µs spin finds the frame depends on the 4 ms lead; that it is woken does not).
    assert workers["after_py"]["waits"]["early_wakes"] >= 1, workers["after_py"]


class _Control:
    """What a worker's Runner needs of its control block, in this process: always RUN, sleeps for waits."""

    command = 1  # RUN

    def __init__(self) -> None:
        self.metrics: dict[str, float] = {}

    def wait_for_command_change(self, observed: int, timeout: float) -> int:
        time.sleep(timeout)
        return self.command

    def beat(self) -> None:
        pass

    def write_metrics(self, values: dict[str, float]) -> None:
        self.metrics = dict(values)


def test_a_paced_python_source_worker_wakes_its_readers_early(peers, ns, tmp_path, monkeypatch):
    """A python.source Runner with rate_hz (in this process, its control block stubbed) wakes a C# predictive
    reader before each frame, and publishes this process's wait counters with its figures."""
    from flowline import worker as W

    monkeypatch.setenv("FLOWLINE_PROFILING", "0")
    monkeypatch.setattr(W, "WAKE_LEAD_NS", LEAD_US * 1000)
    (tmp_path / "stages.py").write_text(STAGES)
    with flowline.create(ns, "gen", np.uint64, 8, capacity=8):
        manifest = {"node": "counter", "role": "source", "module": "stages", "function": "produce", "path": [str(tmp_path)],
                    "outputs": [{"namespace": ns, "name": "gen", "wait": "hybrid"}], "rate_hz": RATE_HZ}
        control = _Control()
        runner = W.Runner(manifest, control)  # type: ignore[arg-type]
        try:
            reader = peers.csharp("read", "gen", elements=8, capacity=8, count=FRAMES, wait="predictive", **{"spin-us": int(SPIN * 1e6)})
            reader.expect("ready")
            while runner.output_frames < FRAMES:
                runner._produce()
            runner.reporter.tick(force=True)
            assert reader.expect("read ") == f"read {FRAMES} errors 0"
            waits = reader.expect("waits ").split()
            assert reader.wait() == 0
        finally:
            runner.close()
    assert int(waits[4]) >= 1 and int(waits[2]) >= int(waits[4]), waits
    # The worker's figures carry the process's wait counters, as a C# worker's do.
    assert set(flowline.wait_counters()) <= set(control.metrics)
    # ... and its pacer's figures (decision 161): at 20 Hz the 4 ms lead and the learnt lateness (at most
    # 200 µs) stay within a tenth of the 50 ms interval, so every interval waited for had its early wake-up.
    m = control.metrics
    assert m["pacer_interval_ns"] == 1_000_000_000 // RATE_HZ and m["pacer_wake_lead_ns"] == LEAD_US * 1000, m
    assert m["pacer_intervals"] == m["pacer_early_wakes"] + m["pacer_bound_skips"] + m["pacer_overdue"], m
    assert m["pacer_bound_skips"] == 0 and m["pacer_early_wakes"] >= 1, m
    assert 0 <= m["pacer_late_wakes"] <= m["pacer_early_wakes"], m
    assert 0 <= m["pacer_timer_lateness_ns"] <= 200_000, m


def test_a_python_source_faster_than_the_early_wake_share_counts_its_intervals_as_skipped_by_the_bound(ns, tmp_path, monkeypatch):
    """At 5 kHz a tenth of the 200 µs interval is less than the 30 µs lead: no early wake-up, every interval
    waited for is counted as skipped by the bound (decision 161), as C#'s Pacer counts it."""
    from flowline import worker as W

    monkeypatch.setenv("FLOWLINE_PROFILING", "0")
    (tmp_path / "stages.py").write_text(STAGES)
    woken = []
    with flowline.create(ns, "gen", np.uint64, 8, capacity=8):
        manifest = {"node": "counter", "role": "source", "module": "stages", "function": "produce", "path": [str(tmp_path)],
                    "outputs": [{"namespace": ns, "name": "gen", "wait": "hybrid"}], "rate_hz": 5_000}
        control = _Control()
        runner = W.Runner(manifest, control)  # type: ignore[arg-type]
        monkeypatch.setattr(runner, "wake_readers_early", lambda: woken.append(1))
        try:
            while runner.output_frames < 200:
                runner._produce()
            runner.reporter.tick(force=True)
        finally:
            runner.close()
    m = control.metrics
    assert woken == [] and m["pacer_early_wakes"] == 0 and m["pacer_late_wakes"] == 0, m
    assert m["pacer_interval_ns"] == 200_000 and m["pacer_intervals"] >= 199, m
    assert m["pacer_bound_skips"] >= 1, m
    assert m["pacer_intervals"] == m["pacer_bound_skips"] + m["pacer_overdue"], m
