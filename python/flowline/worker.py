"""A Python worker of a Flowline pipeline (``python.kernel``, ``python.source``, ``python.sink``).

The manager starts ``python3 -m flowline.worker <namespace> <node>`` and writes this worker's manifest (JSON:
its node's streams, kind, module, function, parameters and control block; see docs/python.md) on its standard
input. The worker speaks the control block protocol of C# workers (docs/shared-memory.md, "Control blocks"):
it reports starting, ready, running, paused, stopped or failed, beats, publishes its figures, waits at the
start barrier, and answers pause and stop commands. The user's function gets its inputs and output slots as
numpy views of the stream slots (zero-copy) and its parameters as a dict; an exception is recorded as the
worker's failure with its Python traceback, and the worker exits with code 1.
"""

from __future__ import annotations

import importlib
import json
import os
import select
import signal
import sys
import threading
import traceback
from typing import Any, Callable, Optional

import numpy as np

from . import _native as N
from .profiling import WorkerProfile
from .requests import RequestServer, declaration_of
from .control import FAILED, HOLD, PAUSE, PAUSED, READY, RUN, RUNNING, STARTING, STOP, STOPPED, ControlBlock, MAX_INPUTS
from .stream import EndOfStream, FrameHeader, FrameTimeout, Reader, Stream, Writer, WriterGone, on_woken_early, wait_any, wait_counters

STOPPED_EXIT, FAILED_EXIT, UNUSABLE_EXIT, PARENT_DIED_EXIT = 0, 1, 2, 86
WAIT_SLICE = 0.1
"""The longest single wait (s): the heartbeat and the figures stay fresh, commands are seen within it."""
PUBLISH_INTERVAL_NS = 250_000_000
WINDOW = 1000
WAKE_LEAD_NS = 30_000
"""How long before each intended time a paced source wakes its readers (C#'s ``Pacer.DefaultWakeLeadNs``)."""
MAX_EARLY_SHARE = 0.1
"""The largest share of its interval a paced source spends on the early wake-up (C#'s ``Pacer.MaxEarlyShare``)."""
LATENESS_WINDOW = 16


class MetricsWindow:
    """The rolling figures over the last 1,000 executions, as ``Runtime/MetricsWindow.cs`` computes them."""

    def __init__(self) -> None:
        self.exec_ns = np.zeros(WINDOW, np.int64)
        self.completed_ns = np.zeros(WINDOW, np.int64)
        self.latency_ns = np.zeros(WINDOW, np.int64)
        self.count = 0
        self.next = 0
        self.frames = 0
        self.last_exec = 0
        self.last_completed = 0

    def record(self, exec_ns: int, completed_ns: int, origin_ns: int) -> None:
        i = self.next
        self.exec_ns[i] = exec_ns
        self.completed_ns[i] = completed_ns
        self.latency_ns[i] = max(0, completed_ns - origin_ns) if origin_ns > 0 else 0
        self.next = (i + 1) % WINDOW
        if self.count < WINDOW:
            self.count += 1
        self.last_exec = exec_ns
        self.last_completed = completed_ns
        self.frames += 1

    def fill(self, m: dict[str, float]) -> None:
        m["frames_processed"] = self.frames
        m["last_exec_ns"] = self.last_exec
        m["last_progress_ns"] = self.last_completed
        m["window"] = self.count
        n = self.count
        if n == 0:
            return
        execs = self.exec_ns[:n].astype(np.float64)
        mean = float(execs.mean())
        m["avg_exec_ns"] = mean
        m["jitter_ns"] = float(np.sqrt(max(0.0, float((execs * execs).mean()) - mean * mean)))
        first = int(self.completed_ns[self.next if n == WINDOW else 0])
        span = self.last_completed - first
        m["throughput_hz"] = (n - 1) * 1e9 / span if n > 1 and span > 0 else 0.0
        ordered = np.sort(self.latency_ns[:n])

        def rank(q: float) -> int:
            return min(max(int(np.ceil(q * n)) - 1, 0), n - 1)

        m["latency_p50_ns"] = int(ordered[rank(0.50)])
        m["latency_p90_ns"] = int(ordered[rank(0.90)])
        m["latency_p99_ns"] = int(ordered[rank(0.99)])
        m["latency_max_ns"] = int(ordered[n - 1])


class Reporter:
    """Beats, and publishes the figures on the first frame, then at most every 250 ms (or when forced)."""

    def __init__(self, control: ControlBlock, collect: Callable[[dict[str, float]], None]) -> None:
        self.control = control
        self.collect = collect
        self.window = MetricsWindow()
        self.last_publish = 0
        self.published_frames = 0

    def tick(self, force: bool = False) -> None:
        self.control.beat()
        now = N.now_ns()
        first = self.published_frames == 0 and self.window.frames > 0
        if not force and not first and now - self.last_publish < PUBLISH_INTERVAL_NS:
            return
        self.last_publish = now
        m: dict[str, float] = {}
        self.collect(m)
        self.window.fill(m)
        m["published_ns"] = now
        self.published_frames = self.window.frames
        self.control.write_metrics(m)


def _load_function(manifest: dict[str, Any]) -> Callable[..., Any]:
    for directory in reversed(manifest.get("path") or []):
        if directory not in sys.path:
            sys.path.insert(0, directory)
    module_name, function_name = manifest["module"], manifest["function"]
    module = importlib.import_module(module_name)
    function = module
    for part in function_name.split("."):
        try:
            function = getattr(function, part)
        except AttributeError:
            raise AttributeError(f"module '{module_name}' ({getattr(module, '__file__', '?')}) has no '{function_name}'") from None
    if not callable(function):
        raise TypeError(f"'{module_name}.{function_name}' is a {type(function).__name__}, not a function")
    return function


class Runner:
    """One node's loop: its readers and writers, the user's function, its counters."""

    def __init__(self, manifest: dict[str, Any], control: ControlBlock) -> None:
        self.manifest = manifest
        self.control = control
        self.role: str = manifest["role"]
        self.parameters: dict[str, Any] = dict(manifest.get("parameters") or {})
        self.function = _load_function(manifest)
        self.declaration = declaration_of(self.function)
        for name, setting in self.declaration.settings.items():
            if name in self.parameters:
                problem = setting.check(self.parameters[name])
                if problem:
                    raise ValueError(f"parameter '{name}' of node '{manifest.get('node', '?')}' {problem}, not {self.parameters[name]!r}")
            elif setting.default is not None:
                self.parameters[name] = setting.default
        self.requests: Optional[RequestServer] = None
        spin = float(manifest.get("spin_time_s", 20e-6))
        self.streams: list[Stream] = []
        self.readers: list[Reader] = []
        self.writers: list[Writer] = []
        try:
            for spec in manifest.get("inputs") or []:
                stream = self._attach(spec)
                self.readers.append(stream.reader(spec.get("delivery", "latest"), spec.get("wait", "hybrid"), spin))
            for spec in manifest.get("outputs") or []:
                stream = self._attach(spec)
                self.writers.append(stream.writer(spec.get("wait", "hybrid"), spin))
        except BaseException:
            self.close()
            raise
        n = len(self.readers)
        self.views: list[Optional[np.ndarray]] = [None] * n
        self.headers: list[Optional[FrameHeader]] = [None] * n
        self.looked = [False] * n
        self.any_new = manifest.get("trigger_policy") == "any_new" and n > 1
        # any_new: an input without a new frame is computed with its last frame (zeros before its first).
        self.last = [np.zeros(r.stream.shape, r.stream.dtype) for r in self.readers] if self.any_new else []
        self.propagate = bool(manifest.get("propagate_frame_id"))
        rate = manifest.get("rate_hz")
        self.period_ns = int(1e9 / rate) if rate else 0
        self.due_ns = 0
        # A paced source's timer lateness (the median of its last 16 sleeps before an early wake-up), as C#'s Pacer learns it.
        self.lateness: list[int] = []
        self.lateness_ns = 20_000
        if self.period_ns:
            N.fine_timer_slack()
        self.generation = 0
        self.ended = False
        self.torn = 0
        self.missed = 0
        # A paced source's pacer figures (decision 161), as C#'s Pacer counts them: the status's `pacer`.
        self.pacer_intervals = self.pacer_early_wakes = self.pacer_bound_skips = 0
        self.pacer_late_wakes = self.pacer_overdue = 0
        self.output_frames = 0
        self.reporter = Reporter(control, self._collect)
        # Profiling (issue 12): each input's latency from the origin and the compute time, unless FLOWLINE_PROFILING=0.
        self.profile: Optional[WorkerProfile] = None
        if os.environ.get("FLOWLINE_PROFILING", "1").strip().lower() not in ("0", "false", "off", "no"):
            self.profile = WorkerProfile(manifest.get("node", "?"), [r.stream.name for r in self.readers])

    def _attach(self, spec: dict[str, Any]) -> Stream:
        stream = Stream.attach(spec["namespace"], spec["name"])
        self.streams.append(stream)
        return stream

    def _collect(self, m: dict[str, float]) -> None:
        m["output_frames"] = self.output_frames
        m["torn_frames"] = self.torn
        m["missed_writes"] = self.missed
        for i, reader in enumerate(self.readers[:MAX_INPUTS]):
            m[f"skipped_input_{i}"] = reader.frames_skipped
        m.update(wait_counters())  # how the waits ended: the status's `waits`, as a C# worker reports it
        if self.role == "source" and self.period_ns:
            m.update(pacer_interval_ns=self.period_ns, pacer_wake_lead_ns=WAKE_LEAD_NS, pacer_intervals=self.pacer_intervals,
                     pacer_early_wakes=self.pacer_early_wakes, pacer_bound_skips=self.pacer_bound_skips,
                     pacer_late_wakes=self.pacer_late_wakes, pacer_overdue=self.pacer_overdue,
                     pacer_timer_lateness_ns=self.lateness_ns)

    # --- running ---------------------------------------------------------------------------------

    def run(self) -> None:
        """Computes until the command is no longer RUN (the frame in progress is finished first)."""
        if self.role != "source" and self.writers:
            # Woken before its input's frame by a writer's early wake-up (a predictive input), a kernel (or a
            # sink with outputs) wakes its outputs' readers in turn, as a C# one does (decision 150).
            on_woken_early(self.wake_readers_early)
        try:
            while self.control.command == RUN:
                if self.ended:
                    self.control.wait_for_command_change(RUN, WAIT_SLICE)
                elif self.role == "source":
                    self._produce()
                else:
                    self._consume()
                self.reporter.tick()
                self.drain()
        finally:
            self._release()
            self.reporter.tick(force=True)

    def wake_readers_early(self) -> None:
        """Wakes the readers of every output before the frame this worker is about to publish."""
        for writer in self.writers:
            writer.wake_readers_early()

    def serve_requests(self) -> None:
        """Starts answering the request mailbox (before the worker reports ready: the manager then sends it
        the settings changed since the document and asks for its settings' schema)."""
        self.requests = RequestServer(self.control, self.manifest.get("node", "?"), self.parameters, self.declaration, self.profile)

    def drain(self) -> None:
        """Runs the requests waiting for a frame boundary (settings changes): called between two frames only."""
        if self.requests is not None:
            self.requests.drain()

    def _take(self, i: int, timeout: float) -> bool:
        try:
            self.views[i], self.headers[i] = self.readers[i].look(timeout)
        except FrameTimeout:
            return False
        except WriterGone:
            # Its writer detached or died (a restart upstream): wait for the next one, as C# workers do.
            self.control.wait_for_command_change(RUN, 0.01)
            return False
        except EndOfStream:
            self._end()
            return False
        self.looked[i] = True
        profile = self.profile
        if profile is not None:
            origin = self.headers[i].origin_ns
            if origin > 0:
                profile.latency[i].record(N.now_ns() - origin)
        return True

    def _gather(self) -> bool:
        n = len(self.readers)
        if n == 1:
            return self._take(0, WAIT_SLICE)
        if self.any_new:
            if wait_any(self.readers, WAIT_SLICE) is None:
                return False
            any_taken = False
            for i in range(n):
                if self._take(i, 0.0):
                    any_taken = True
                elif not self.ended:
                    self.views[i], self.headers[i] = self.last[i], None
            return any_taken and not self.ended
        for i in range(n):  # all_new: hold the frames taken so far and wait for the others
            if not self.looked[i] and not self._take(i, WAIT_SLICE):
                return False
        return True

    def _slots(self) -> Optional[list[np.ndarray]]:
        slots = []
        for writer in self.writers:
            while True:
                try:
                    slots.append(writer.look(WAIT_SLICE))
                    break
                except FrameTimeout:
                    self.reporter.tick()
                    if self.control.command != RUN:
                        return None
        return slots

    def _store(self, result: Any, slots: list[np.ndarray]) -> None:
        """A function may also return its result(s): they are copied into the output slots."""
        if result is None or result is True or result is False:
            return
        results = list(result) if isinstance(result, (tuple, list)) and len(slots) > 1 else [result]
        if len(results) != len(slots):
            raise ValueError(f"the function returned {len(results)} arrays for {len(slots)} outputs")
        for slot, value in zip(slots, results):
            if value is not slot:
                value = np.asarray(value)
                if value.size != slot.size:
                    raise ValueError(f"the function returned {value.dtype}{list(value.shape)}; the output is {slot.dtype}{list(slot.shape)}")
                np.copyto(slot, value.reshape(slot.shape), casting="same_kind")

    def _consume(self) -> None:
        if not self._gather():
            return
        inputs = [v for v in self.views]
        if self.role == "sink":
            start = N.now_ns()
            self.function(inputs, self.parameters)
            origin = self._origin()
            self._release()
            end = N.now_ns()
            self.reporter.window.record(end - start, end, origin)
            if self.profile is not None:
                self.profile.compute.record(end - start)
            return
        slots = self._slots()
        if slots is None:
            self._release()
            return
        start = N.now_ns()  # the execution time counts the computation and the publication, not the waits
        result = self.function(inputs, slots, self.parameters)
        self._store(result, slots)
        intact = all(r.is_still_intact(h.sequence) for r, h, seen in zip(self.readers, self.headers, self.looked) if seen and h is not None)
        origin = self._origin()
        if intact:
            first = self.headers[0]
            for writer in self.writers:
                frame_id = first.frame_id if self.propagate and first is not None else None
                writer.increment(frame_id, origin)
            self.output_frames += len(self.writers)
        else:
            self.torn += 1
        if self.any_new:
            for i, seen in enumerate(self.looked):
                if seen:
                    np.copyto(self.last[i], self.views[i])
        self._release()
        end = N.now_ns()
        if intact:
            self.reporter.window.record(end - start, end, origin)
            if self.profile is not None:
                self.profile.compute.record(end - start)

    def _origin(self) -> int:
        origins = [h.origin_ns for h, seen in zip(self.headers, self.looked) if seen and h is not None and h.origin_ns > 0]
        return min(origins) if origins else 0

    def _produce(self) -> None:
        if self.period_ns:
            now = N.now_ns()
            first = self.due_ns == 0  # the first frame is produced at once: no interval to count
            if first:
                self.due_ns = now
            if now < self.due_ns:
                # The early wake-up (C#'s Pacer, decisions 138 and 149): asleep until the lead and the timer's
                # lateness before the intended time, wake the readers, then yield to the intended time. Only
                # while that is at most a tenth of the interval; a faster source sleeps to the intended time.
                early = WAKE_LEAD_NS + self.lateness_ns <= self.period_ns * MAX_EARLY_SHARE
                wake_at = self.due_ns - WAKE_LEAD_NS - self.lateness_ns if early else self.due_ns
                if now < wake_at:
                    self.control.wait_for_command_change(RUN, min(WAIT_SLICE, (wake_at - now) / 1e9))
                    now = N.now_ns()
                    if now < wake_at:
                        return  # a command, or the end of a slice: back to the loop
                    self._record_lateness(now - wake_at)
                elif early and self.lateness:
                    # No sleep at all (the estimate left no time for one): let the estimate decay.
                    self._record_lateness(self.lateness_ns // 2)
                if early:
                    if N.now_ns() > self.due_ns:
                        self.pacer_late_wakes += 1
                    self.wake_readers_early()
                    self.pacer_early_wakes += 1
                    while N.now_ns() < self.due_ns:
                        os.sched_yield()
                else:
                    self.pacer_bound_skips += 1
            elif now - self.due_ns > self.period_ns:
                self.missed += (now - self.due_ns) // self.period_ns
                self.pacer_overdue += 1
                self.due_ns = now
            elif not first:
                self.pacer_overdue += 1
            if not first:
                self.pacer_intervals += 1
            self.due_ns += self.period_ns
        slots = self._slots()
        if slots is None:
            return
        start = N.now_ns()
        result = self.function(slots, self.parameters)
        if result is False:
            return  # nothing this time (a source waiting for its device)
        self._store(result, slots)
        for writer in self.writers:
            writer.increment(self.generation, start)
        self.generation += 1
        self.output_frames += len(self.writers)
        end = N.now_ns()
        self.reporter.window.record(end - start, end, start)
        if self.profile is not None:
            self.profile.compute.record(end - start)

    def _record_lateness(self, ns: int) -> None:
        # A sleep that lost its core is no measure of the timer: at most a quarter of the interval, and 200 µs.
        self.lateness.append(min(max(ns, 0), self.period_ns // 4, 200_000))
        del self.lateness[:-LATENESS_WINDOW]
        self.lateness_ns = sorted(self.lateness)[len(self.lateness) // 2]

    def _release(self) -> None:
        for i, seen in enumerate(self.looked):
            if seen:
                self.readers[i].increment()
                self.looked[i] = False
            self.views[i] = None
            self.headers[i] = None

    def _end(self) -> None:
        """A trigger input ended (its writer closed it): close the outputs, and wait to be stopped."""
        self.ended = True
        self._release()
        for writer in self.writers:
            if not writer.closed:
                writer.close_stream()

    def close(self) -> None:
        if self.requests is not None:
            self.requests.close()
            self.requests = None
        for endpoint in [*self.readers, *self.writers]:
            endpoint.close()
        for stream in self.streams:
            stream.close()


def _fail(control: ControlBlock, error: BaseException) -> int:
    kind = type(error)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    text = "".join(traceback.format_exception(kind, error, error.__traceback__))
    control.write_error(json.dumps({"type": name, "error": str(error) or name, "traceback": text}))
    control.state = FAILED
    control.beat()
    sys.stderr.write(text)
    sys.stderr.flush()
    return FAILED_EXIT


def _serve(runner: Runner, control: ControlBlock) -> int:
    runner.serve_requests()
    control.state = READY
    runner.reporter.tick(force=True)
    command = control.command
    while True:
        if command == STOP:
            control.state = STOPPED
            return STOPPED_EXIT
        if command == RUN:
            control.state = RUNNING
            runner.run()
        else:
            control.state = PAUSED if command == PAUSE else READY
            control.wait_for_command_change(command, WAIT_SLICE)
            runner.reporter.tick()
            runner.drain()
        command = control.command


def _watch_parent(pid: int) -> None:
    """Exits (code 86, as C# workers do) when the manager dies: a pidfd becomes readable then."""
    try:
        fd = os.pidfd_open(pid)
    except (OSError, AttributeError):
        if pid > 0 and not os.path.exists(f"/proc/{pid}"):
            os._exit(PARENT_DIED_EXIT)
        return

    def watch() -> None:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while not poller.poll():
            pass
        os._exit(PARENT_DIED_EXIT)

    threading.Thread(target=watch, name="flowline-parent", daemon=True).start()


def main() -> int:
    # Only the manager decides when its workers stop (Ctrl-C signals the whole process group).
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
        signal.signal(s, signal.SIG_IGN)
    try:
        manifest = json.load(sys.stdin)
        _watch_parent(int(manifest.get("parent_pid", 0)))
        control = ControlBlock.attach(manifest["control"]["namespace"], manifest["control"]["name"])
    except Exception as error:  # noqa: BLE001 - anything here means the worker cannot even report
        print(f"flowline python worker: cannot start: {type(error).__name__}: {error}", file=sys.stderr)
        return UNUSABLE_EXIT
    try:
        control.pid = os.getpid()
        control.thread_id = threading.get_native_id()
        control.started_ns = N.now_ns()
        control.state = STARTING
        control.beat()
        runner: Optional[Runner] = None
        try:
            if manifest.get("cpu") is not None:
                os.sched_setaffinity(0, {int(manifest["cpu"])})
            runner = Runner(manifest, control)
            return _serve(runner, control)
        except BaseException as error:  # noqa: BLE001 - the user's code may raise anything; it is reported
            return _fail(control, error)
        finally:
            if runner is not None:
                runner.close()
    finally:
        control.close()


if __name__ == "__main__":
    sys.exit(main())
