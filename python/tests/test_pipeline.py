"""A Python kernel in a pipeline run by `flowline run`, between two C# kernels: its output is checked against
the same computation in numpy, frame by frame, and nothing is left behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, ROOT, Child

import flowline
from flowline import _layout as L
from flowline import _native as N
from flowline.control import RUNNING, ControlBlock

CLI = Path(os.environ.get("FLOWLINE_CLI", REPO / "src/Flowline.Cli/bin/Release/net10.0/Flowline.Cli.dll"))

MODULE = '''
import numpy as np


def mix(inputs, outputs, parameters):
    """out = sqrt(|x|) * gain + x reversed, written in place."""
    x, out = inputs[0], outputs[0]
    np.sqrt(np.abs(x), out=out)
    out *= parameters["gain"]
    out += x[::-1]
'''


def document(ns: str) -> str:
    # Every stream is read lossless, so every frame written comes out; frame ids are carried through.
    return f"""
namespace: {ns}
shared_memory:
  - {{name: raw, shape: [256], dtype: float32, delivery: lossless, depth: 16}}
  - {{name: scaled, shape: [256], dtype: float32, delivery: lossless}}
  - {{name: mixed, shape: [256], dtype: float32, delivery: lossless}}
  - {{name: result, shape: [256], dtype: float32, delivery: lossless}}
kernels:
  - {{name: scale, kind: cpu.scale, input: raw, output: scaled, propagate_frame_id: true, parameters: {{factor: 2.0}}}}
  - name: mix
    kind: python.kernel
    input: scaled
    output: mixed
    propagate_frame_id: true
    parameters: {{module: pymix, function: mix, interpreter: {sys.executable}, gain: 0.5}}
  - {{name: offset, kind: cpu.add_constant, input: mixed, output: result, propagate_frame_id: true, parameters: {{constant: 1.0}}}}
"""


def expected(x: np.ndarray) -> np.ndarray:
    scaled = (x * np.float32(2.0)).astype(np.float32)
    mixed = np.sqrt(np.abs(scaled)) * np.float32(0.5) + scaled[::-1]
    return (mixed + np.float32(1.0)).astype(np.float32)


def readers_attached(ns: str, name: str) -> int:
    """How many live readers the stream's reader table holds (0 if the stream is not there yet)."""
    try:
        stream = flowline.attach(ns, name)
    except flowline.FlowlineError:
        return 0
    with stream:
        return sum(1 for i in range(stream.max_readers)
                   if N.state_of(N.load_u64(stream.reader_entry(i) + L.READER_OWNER_OFFSET)) != L.READER_FREE)


def python_workers(ns: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"flowline.worker" in args and ns.encode() in args:
            found.append(int(pid))
    return found


def flowline_run(directory: Path, document_text: str) -> Child:
    """Writes the document into ``directory`` and starts ``flowline run`` on it (the final snapshot as JSON)."""
    if not CLI.exists():
        pytest.fail(f"the CLI is not built ({CLI}); run: dotnet build src/Flowline.Cli -c Release")
    (directory / "pipeline.yaml").write_text(document_text)
    return Child(["dotnet", str(CLI), "run", str(directory / "pipeline.yaml"), "--json-status", "--duration", "100"])


def wait_until(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        time.sleep(0.02)


def test_python_kernel_between_csharp_kernels_matches_numpy(ns: str, tmp_path: Path) -> None:
    (tmp_path / "pymix.py").write_text(MODULE)
    run = flowline_run(tmp_path, document(ns))
    try:
        # Every kernel's reader is attached (workers attach before the start barrier).
        for stream in ("raw", "scaled", "mixed"):
            wait_until(lambda: readers_attached(ns, stream) >= 1, f"a kernel reads '{stream}'")
        assert len(python_workers(ns)) == 1
        frames = 300
        rng = np.random.default_rng(7)
        sent = [rng.normal(0, 10, 256).astype(np.float32) for _ in range(frames)]
        with flowline.attach(ns, "result", np.float32, (256,)) as result_stream, result_stream.reader("lossless") as reader, \
                flowline.attach(ns, "raw") as raw_stream, raw_stream.writer() as writer:
            for i, frame in enumerate(sent):
                writer.write(frame, timeout=30, frame_id=1000 + i)
                if i >= 8:  # keep the result ring drained as we go (it holds 8 frames)
                    _check(reader, sent, i - 8)
            for i in range(max(0, frames - 8), frames):
                _check(reader, sent, i)
        # The worker publishes its figures in its control block (workers: kernels in order, w0 to w2).
        with ControlBlock.attach(f"{ns}.control", "w1") as control:
            assert control.pid == python_workers(ns)[0]
            assert control.state == RUNNING
            wait_until(lambda: (control.read_metrics() or {}).get("frames_processed") == frames, "the Python worker publishes its frames")
            assert control.read_metrics()["output_frames"] == frames
        run.process.send_signal(signal.SIGINT)
        assert run.wait(60) == 0, run.process.stderr.read() if run.process.stderr else ""
        snapshot = json.loads("\n".join(_drain(run)))
        mix = snapshot["workers"]["mix"]
        assert mix["frames_processed"] == frames, mix
        assert snapshot["failures"] == []
    finally:
        run.kill()
    assert python_workers(ns) == []
    assert not (ROOT / ns).exists(), os.listdir(ROOT / ns)
    assert not (ROOT / f"{ns}.control").exists()


def _check(reader: flowline.Reader, sent: list[np.ndarray], i: int) -> None:
    frame, header = reader.read(timeout=30)
    assert header.frame_id == 1000 + i
    np.testing.assert_allclose(frame, expected(sent[i]), rtol=1e-6, atol=1e-5)


def _drain(child: Child) -> list[str]:
    lines = list(child.seen)
    while True:
        line = child.lines.get(timeout=10)
        if line is None:
            return lines
        lines.append(line)


EXTERNAL = """
namespace: {ns}
shared_memory:
  - {{name: data, shape: [64], dtype: float32}}
  - {{name: commands, shape: [4], dtype: float64}}
sources:
  - {{name: camera, kind: synthetic.array, stream: data, parameters: {{pattern: sine, rate_hz: 200}}}}
sinks:
  - {{name: sink, kind: null.sink, stream: data}}
"""


def test_external_python_reader_and_writer_are_counted_in_the_status(ns: str, tmp_path: Path) -> None:
    run = flowline_run(tmp_path, EXTERNAL.format(ns=ns))
    try:
        wait_until(lambda: readers_attached(ns, "data") >= 1, "the sink reads 'data'")
        with flowline.attach(ns, "data", np.float32, (64,)) as data, data.reader("latest") as viewer, \
                flowline.attach(ns, "commands") as commands, commands.writer() as driver:
            first = viewer.read(timeout=30)[1].sequence
            assert viewer.read(timeout=30)[1].sequence > first
            driver.write(np.arange(4.0))
            assert readers_attached(ns, "data") == 2
            run.process.send_signal(signal.SIGINT)  # the final snapshot is taken while they are attached
            assert run.wait(60) == 0
        snapshot = json.loads("\n".join(_drain(run)))
        assert snapshot["streams"]["data"]["readers"] == 2, snapshot["streams"]["data"]
        assert snapshot["streams"]["commands"]["writer_pid"] == os.getpid()
        assert snapshot["streams"]["commands"]["writer_state"] == "attached"
        assert snapshot["streams"]["commands"]["frames_published"] == 1
    finally:
        run.kill()
    assert not (ROOT / ns).exists()


def test_python_worker_exits_when_its_manager_is_killed(ns: str, tmp_path: Path) -> None:
    (tmp_path / "pymix.py").write_text(MODULE)
    run = flowline_run(tmp_path, document(ns))
    try:
        wait_until(lambda: readers_attached(ns, "scaled") >= 1, "the Python kernel reads 'scaled'")
        [worker] = python_workers(ns)
        run.kill()  # SIGKILL: the manager cannot stop its workers
        wait_until(lambda: python_workers(ns) == [], "the Python worker notices (a pidfd on its manager) and exits", 10)
    finally:
        run.kill()
        shutil.rmtree(ROOT / f"{ns}.control", ignore_errors=True)  # what a killed manager leaves (gc or the next build removes it)


ENDPOINTS = '''
import numpy as np

count = 0


def produce(outputs, parameters):
    """python.source: frame k holds k everywhere (k from 0)."""
    global count
    outputs[0][:] = count
    count += 1


def record(inputs, parameters):
    """python.sink: appends the first value of every frame to a file."""
    with open(parameters["log"], "a") as log:
        log.write(f"{float(inputs[0][0])}\\n")
'''


def test_python_source_and_sink_run_in_a_pipeline(ns: str, tmp_path: Path) -> None:
    (tmp_path / "endpoints.py").write_text(ENDPOINTS)
    log = tmp_path / "sink.log"
    run = flowline_run(tmp_path, f"""
namespace: {ns}
shared_memory:
  - {{name: gen, shape: [8], dtype: float64, delivery: lossless}}
  - {{name: out, shape: [8], dtype: float64, delivery: lossless}}
sources:
  - {{name: counter, kind: python.source, stream: gen, parameters: {{module: endpoints, function: produce, interpreter: {sys.executable}, rate_hz: 400}}}}
kernels:
  - {{name: triple, kind: cpu.scale, input: gen, output: out, propagate_frame_id: true, parameters: {{factor: 3.0}}}}
sinks:
  - {{name: recorder, kind: python.sink, stream: out, parameters: {{module: endpoints, function: record, interpreter: {sys.executable}, log: '{log}'}}}}
""")
    try:
        wait_until(lambda: readers_attached(ns, "out") >= 1, "the Python sink reads 'out'")
        with flowline.attach(ns, "out") as out, out.reader("lossless") as reader:
            first, header = reader.read(timeout=30)
            for _ in range(50):
                frame, next_header = reader.read(timeout=30)
                # Frame k of the source is 3k everywhere after the C# kernel, with the source's frame id k.
                assert next_header.frame_id == header.frame_id + 1
                np.testing.assert_array_equal(frame, np.full(8, 3.0 * next_header.frame_id))
                header = next_header
        wait_until(lambda: log.exists() and len(log.read_text().split()) >= 50, "the Python sink consumes the frames")
        # Their figures, in their control blocks (w0 the sink, w1 the kernel, w2 the source), reach the status.
        with ControlBlock.attach(f"{ns}.control", "w0") as sink, ControlBlock.attach(f"{ns}.control", "w2") as source:
            wait_until(lambda: (source.read_metrics() or {}).get("frames_processed", 0) >= 51, "the source publishes its figures")
            wait_until(lambda: (sink.read_metrics() or {}).get("frames_processed", 0) >= 50, "the sink publishes its figures")
        run.process.send_signal(signal.SIGINT)
        assert run.wait(60) == 0
        snapshot = json.loads("\n".join(_drain(run)))
        assert snapshot["failures"] == []
        assert snapshot["sources"]["counter"]["frames_written"] >= 51
        # The Python source's pacer reaches the status as a C# source's does (decision 161): at 400 Hz every
        # interval it waited for had its early wake-up (30 µs and at most 200 µs of lateness within 250 µs).
        pacer = snapshot["sources"]["counter"]["pacer"]
        assert pacer["interval_us"] == 2500 and pacer["wake_lead_us"] == 30 and pacer["max_early_share"] == 0.1, pacer
        assert pacer["intervals"] >= 50 and pacer["intervals"] == pacer["early_wakes"] + pacer["bound_skips"] + pacer["overdue"], pacer
        assert pacer["bound_skips"] == 0 and 0 <= pacer["late_wakes"] <= pacer["early_wakes"], pacer
        assert pacer["missed"] == snapshot["sources"]["counter"]["missed_writes"], pacer
        assert snapshot["sinks"]["recorder"]["frames_consumed"] >= 50
    finally:
        run.kill()
    values = [float(v) for v in log.read_text().split()]
    assert values == [3.0 * k for k in range(int(values[0] / 3), int(values[0] / 3) + len(values))]
    assert python_workers(ns) == []
    assert not (ROOT / ns).exists() and not (ROOT / f"{ns}.control").exists()


def test_python_kernel_with_two_inputs_returning_its_result(ns: str, tmp_path: Path) -> None:
    """all_new over two trigger inputs written by this test; the function returns its result (copied in)."""
    (tmp_path / "pyadd.py").write_text("def add(inputs, outputs, parameters):\n    return inputs[0] + inputs[1] * parameters['k']\n")
    run = flowline_run(tmp_path, f"""
namespace: {ns}
shared_memory:
  - {{name: a, shape: [3, 4], dtype: int32, delivery: lossless}}
  - {{name: b, shape: [3, 4], dtype: int32, delivery: lossless}}
  - {{name: sum, shape: [3, 4], dtype: int32, delivery: lossless}}
kernels:
  - {{name: add, kind: python.kernel, inputs: [a, b], output: sum, trigger_policy: all_new, propagate_frame_id: true,
     parameters: {{module: pyadd, function: add, interpreter: {sys.executable}, k: 10}}}}
""")
    try:
        for stream in ("a", "b"):
            wait_until(lambda: readers_attached(ns, stream) >= 1, f"the Python kernel reads '{stream}'")
        with flowline.attach(ns, "sum") as total, total.reader("lossless") as reader, \
                flowline.attach(ns, "a") as a, a.writer() as wa, flowline.attach(ns, "b") as b, b.writer() as wb:
            for i in range(20):
                x = np.arange(12, dtype=np.int32).reshape(3, 4) + i
                wa.write(x, timeout=30, frame_id=i)
                if i % 2:  # the second input arrives later: the kernel waits for both
                    time.sleep(0.01)
                wb.write(-x, timeout=30, frame_id=i)
                frame, header = reader.read(timeout=30)
                assert header.frame_id == i
                np.testing.assert_array_equal(frame, x - 10 * x)
        run.process.send_signal(signal.SIGINT)
        assert run.wait(60) == 0
    finally:
        run.kill()
    assert python_workers(ns) == []
    assert not (ROOT / ns).exists()
