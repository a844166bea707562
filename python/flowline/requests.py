"""Routed requests and live settings of a Python worker (docs/python.md, "Requests and live settings").

The manager routes requests to a node's worker through the request mailbox in its control block
(``RequestMailbox.cs``). A Python worker serves it as a C# worker does: a thread sleeps on the mailbox's
doorbell and answers ``ping``, ``process_stats`` and ``settings_schema`` at once, while ``update_setting``
(and any operation the function declares with ``between_frames=True``) waits for the loop, which runs it
between two frames, so a frame computes with the old settings or the new ones, never half of them. Errors
are the same typed ones: ``no_handler``, ``invalid_request`` (with the field at fault), ``handler_error``,
``timeout``.

A function declares its live settings (the schema the server validates a change against) and request
handlers of its own with :func:`declare`::

    import flowline

    @flowline.declare(settings=[flowline.Setting("gain", "number", default=0.5, minimum=0, maximum=10, unit="V/V",
                                                 live=True, description="output gain")])
    def mix(inputs, outputs, parameters):
        np.multiply(inputs[0], parameters["gain"], out=outputs[0])
"""

from __future__ import annotations

import datetime
import gc
import json
import math
import os
import platform
import queue
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from . import _native as N
from .profiling import WorkerProfile
from .control import (STATUS_HANDLER_ERROR, STATUS_INVALID_REQUEST, STATUS_NO_HANDLER, STATUS_OK, STATUS_TIMEOUT,
                      MAILBOX_PAYLOAD_CAPACITY, ControlBlock)

TYPES = ("number", "integer", "boolean", "string", "choice", "array")
RESERVED = ("module", "function", "path", "interpreter", "rate_hz")
"""Parameters of a ``python.*`` node that configure its worker: not the function's settings."""

_ATTRIBUTE = "__flowline_declaration__"
_PROCESS_START_NS = N.now_ns()


class RequestError(Exception):
    """Raised by a handler to refuse a request with a typed code (``invalid_request`` by default)."""

    def __init__(self, message: str, field: Optional[str] = None, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.field = field
        self.code = code


@dataclass(frozen=True)
class Setting:
    """One setting of a function, as a kind's ``ParameterInfo`` declares it (the same schema fields)."""

    name: str
    type: str = "number"
    default: Any = None
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    choices: Optional[Sequence[str]] = None
    unit: Optional[str] = None
    description: str = ""
    live: bool = True

    def __post_init__(self) -> None:
        where = f"setting '{self.name}'"
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"a setting's name must be an identifier, not {self.name!r}")
        if self.name in RESERVED:
            raise ValueError(f"{where}: '{self.name}' configures the Python worker; choose another name")
        if self.type not in TYPES:
            raise ValueError(f"{where}: type must be one of {', '.join(TYPES)}, not {self.type!r}")
        if self.type == "choice" and not self.choices:
            raise ValueError(f"{where}: a choice needs choices")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(f"{where}: minimum {self.minimum} is above maximum {self.maximum}")
        if self.default is not None:
            problem = self.check(self.default)
            if problem:
                raise ValueError(f"{where}: its default {self.default!r} is invalid: {problem}")

    def check(self, value: Any) -> Optional[str]:
        """Why ``value`` is not a valid value of this setting, or None."""
        t = self.type
        ok = {
            "number": isinstance(value, (int, float)) and not isinstance(value, bool),
            "integer": isinstance(value, int) and not isinstance(value, bool) or isinstance(value, float) and value.is_integer(),
            "boolean": isinstance(value, bool),
            "string": isinstance(value, str),
            "choice": isinstance(value, str) and value in (self.choices or ()),
            "array": isinstance(value, list),
        }[t]
        if not ok:
            return f"must be one of {', '.join(self.choices or ())}" if t == "choice" else f"must be a{'n' if t in ('integer', 'array') else ''} {t}"
        if t in ("number", "integer"):
            if not math.isfinite(value):
                return "must be a finite number"
            if self.minimum is not None and value < self.minimum:
                return f"must be at least {self.minimum:g}"
            if self.maximum is not None and value > self.maximum:
                return f"must be at most {self.maximum:g}"
        return None

    def schema(self) -> dict[str, Any]:
        """The field as ``GET /settings/schema`` shows it."""
        return {"name": self.name, "type": self.type, "default": self.default, "minimum": self.minimum, "maximum": self.maximum,
                "choices": list(self.choices) if self.choices else None, "unit": self.unit, "description": self.description,
                "live": self.live}


@dataclass
class Declaration:
    """What a function declared with :func:`declare`."""

    settings: dict[str, Setting] = field(default_factory=dict)
    requests: dict[str, tuple[Callable[[dict[str, Any]], Any], bool]] = field(default_factory=dict)
    on_change: Optional[Callable[[dict[str, Any]], None]] = None


def declare(settings: Sequence[Setting] = (), requests: Optional[dict[str, Callable[[dict[str, Any]], Any]]] = None,
            between_frames: Sequence[str] = (), on_change: Optional[Callable[[dict[str, Any]], None]] = None) -> Callable[[Any], Any]:
    """Declares a function's settings (its live ones change while it runs) and request handlers of its own.

    ``requests`` maps an operation to ``handler(args) -> result`` (JSON); those named in ``between_frames`` run
    on the loop between two frames, the others at once on the request thread. ``on_change(values)`` is called
    between two frames with the settings that changed, after they were put in the parameters dict (raise to
    refuse: the old values are put back)."""
    names = [s.name for s in settings]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"settings declared twice: {', '.join(duplicates)}")
    handlers = dict(requests or {})
    unknown = [op for op in between_frames if op not in handlers]
    if unknown:
        raise ValueError(f"between_frames names operations that have no handler: {', '.join(unknown)}")
    builtin = [op for op in handlers if op in BUILT_IN]
    if builtin:
        raise ValueError(f"{', '.join(builtin)} are built-in operations; a function cannot replace them")
    declaration = Declaration({s.name: s for s in settings}, {op: (h, op in between_frames) for op, h in handlers.items()}, on_change)

    def mark(function: Any) -> Any:
        setattr(function, _ATTRIBUTE, declaration)
        return function

    return mark


def declaration_of(function: Any) -> Declaration:
    """What ``function`` declared (nothing if it was not decorated)."""
    found = getattr(function, _ATTRIBUTE, None)
    return found if isinstance(found, Declaration) else Declaration()


BUILT_IN = ("ping", "process_stats", "settings_schema", "update_setting", "profiling_snapshot")


def _profiling_snapshot(node: str, profile: "Optional[WorkerProfile]", args: dict[str, Any]) -> dict[str, Any]:
    """``profiling_snapshot``: this worker's histograms in the shape of the manager's ``ProfilingSnapshot``
    (null summaries when profiling is off: ``FLOWLINE_PROFILING=0``)."""
    if args:
        raise RequestError(f"profiling_snapshot takes no arguments (got: {', '.join(args)})", next(iter(args)))
    now = datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")
    if profile is None:
        return {"time": now, "streams": [], "nodes": [{"name": node, "compute": None}]}
    return profile.snapshot(now)

_gc_pause_ns = 0
_gc_started_ns = 0


def _gc_timer(phase: str, _info: dict[str, Any]) -> None:
    global _gc_pause_ns, _gc_started_ns
    if phase == "start":
        _gc_started_ns = time.perf_counter_ns()
    elif _gc_started_ns:
        _gc_pause_ns += time.perf_counter_ns() - _gc_started_ns
        _gc_started_ns = 0


def process_stats() -> dict[str, Any]:
    """``process_stats`` of this process, with the fields a C# worker gives (``allocated_bytes`` is null:
    CPython does not count the bytes it allocated; ``allocated_blocks`` is its count of live blocks)."""
    times = os.times()
    cpu = times.user + times.system
    uptime = (N.now_ns() - _PROCESS_START_NS) / 1e9
    rss = 0
    threads = threading.active_count()
    try:
        with open("/proc/self/statm") as f:
            rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Threads:"):
                    threads = int(line.split()[1])
    except OSError:
        pass
    collections = [g["collections"] for g in gc.get_stats()]
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "cpu_seconds": cpu,
        "cpu_percent": 100.0 * cpu / uptime / (os.cpu_count() or 1) if uptime > 0 else 0.0,
        "rss_bytes": rss,
        "threads": threads,
        "gc_gen0": collections[0] if len(collections) > 0 else 0,
        "gc_gen1": collections[1] if len(collections) > 1 else 0,
        "gc_gen2": collections[2] if len(collections) > 2 else 0,
        "gc_pause_seconds": _gc_pause_ns / 1e9,
        "allocated_bytes": None,
        "allocated_blocks": __import__("sys").getallocatedblocks(),
        "uptime_seconds": uptime,
        "runtime": f"python {platform.python_version()}",
    }


def _error(message: str, field: Optional[str] = None) -> bytes:
    body: dict[str, Any] = {"error": message}
    if field is not None:
        body["field"] = field
    return json.dumps(body).encode("utf-8")


_STATUS = {"invalid_request": STATUS_INVALID_REQUEST, "no_handler": STATUS_NO_HANDLER}


class RequestServer:
    """Serves the worker's request mailbox on a thread of its own; :meth:`drain` runs the between-frame ones."""

    def __init__(self, control: ControlBlock, node: str, parameters: dict[str, Any], declaration: Declaration,
                 profile: "Optional[WorkerProfile]" = None) -> None:
        self.control = control
        self.node = node
        self.parameters = parameters
        self.declaration = declaration
        self._between: "queue.SimpleQueue[tuple[int, int, int, str, dict[str, Any], Callable[[dict[str, Any]], Any]]]" = queue.SimpleQueue()
        self._stopped = False
        self.handlers: dict[str, tuple[Callable[[dict[str, Any]], Any], bool]] = {
            "ping": (self._ping, False),
            "process_stats": (lambda _args: process_stats(), False),
            "settings_schema": (lambda _args: {"fields": [s.schema() for s in declaration.settings.values()]}, False),
            "update_setting": (self._update_setting, True),
            "profiling_snapshot": (lambda args: _profiling_snapshot(node, profile, args), False),
            **declaration.requests,
        }
        if _gc_timer not in gc.callbacks:
            gc.callbacks.append(_gc_timer)
        self._thread = threading.Thread(target=self._serve, name=f"flowline-requests-{node}", daemon=True)
        self._thread.start()

    # --- the loop's side ---------------------------------------------------------------------------

    def drain(self) -> None:
        """Runs the requests that wait for a frame boundary: called by the loop between two frames only."""
        while True:
            try:
                item = self._between.get_nowait()
            except queue.Empty:
                return
            self._run(*item)

    def close(self) -> None:
        """Stops the request thread; requests still waiting for a frame boundary are answered with a handler error."""
        self._stopped = True
        self.control.wake_request_waiters()
        self._thread.join(1.0)
        while True:
            try:
                slot, correlation, _deadline, _op, _args, _handler = self._between.get_nowait()
            except queue.Empty:
                return
            self._answer(slot, correlation, STATUS_HANDLER_ERROR, _error("the worker stopped before it reached a frame boundary"))

    # --- the request thread ----------------------------------------------------------------------

    def _serve(self) -> None:
        while not self._stopped:
            observed = self.control.request_doorbell
            while not self._stopped:
                taken = self.control.take_request()
                if taken is None:
                    break
                self._dispatch(*taken)
            self.control.wait_for_requests(observed, 0.25)

    def _dispatch(self, slot: int, correlation: int, deadline: int, payload: bytes) -> None:
        if N.now_ns() > deadline:
            self._answer(slot, correlation, STATUS_TIMEOUT, _error("the request's deadline passed before the worker came to it"))
            return
        try:
            body = json.loads(payload.decode("utf-8"))
            if not isinstance(body, dict):
                raise ValueError("the request is not a JSON object")
            op = body.get("op")
            if not isinstance(op, str) or not op:
                raise ValueError("the request has no 'op'")
            args = body.get("args") or {}
            if not isinstance(args, dict):
                raise ValueError("'args' must be an object")
        except (ValueError, UnicodeDecodeError) as error:
            self._answer(slot, correlation, STATUS_INVALID_REQUEST, _error(f"invalid request: {error}"))
            return
        found = self.handlers.get(op)
        if found is None:
            self._answer(slot, correlation, STATUS_NO_HANDLER,
                         _error(f"node '{self.node}' has no handler for '{op}' (it has: {', '.join(sorted(self.handlers))})"))
            return
        handler, between_frames = found
        if between_frames:
            self._between.put((slot, correlation, deadline, op, args, handler))
            self.control.wake_command_waiters()  # a paused or ready worker sleeps on its command word: let it drain now
            return
        self._run(slot, correlation, deadline, op, args, handler)

    def _run(self, slot: int, correlation: int, deadline: int, op: str, args: dict[str, Any], handler: Callable[[dict[str, Any]], Any]) -> None:
        if N.now_ns() > deadline:
            self._answer(slot, correlation, STATUS_TIMEOUT,
                         _error("the request's deadline passed before the worker reached a frame boundary; it was not applied"))
            return
        try:
            result = handler(args)
            answer = json.dumps({"result": result}).encode("utf-8")
        except RequestError as error:
            self._answer(slot, correlation, _STATUS.get(error.code, STATUS_HANDLER_ERROR), _error(str(error), error.field))
            return
        except Exception as error:  # noqa: BLE001 - a handler's failure is the requester's answer, not the worker's death
            self._answer(slot, correlation, STATUS_HANDLER_ERROR, _error(f"{type(error).__name__}: {error}"))
            return
        if len(answer) > MAILBOX_PAYLOAD_CAPACITY:
            self._answer(slot, correlation, STATUS_HANDLER_ERROR,
                         _error(f"the answer is {len(answer)} bytes, more than a mailbox slot holds ({MAILBOX_PAYLOAD_CAPACITY})"))
            return
        self._answer(slot, correlation, STATUS_OK, answer)

    def _answer(self, slot: int, correlation: int, status: int, answer: bytes) -> None:
        self.control.answer_request(slot, correlation, status, answer)

    # --- built-in handlers ------------------------------------------------------------------------

    def _ping(self, _args: dict[str, Any]) -> dict[str, Any]:
        return {"pid": os.getpid(), "host": socket.gethostname(), "node": self.node, "monotonic_ns": N.now_ns()}

    def _update_setting(self, args: dict[str, Any]) -> dict[str, Any]:
        values = args.get("values")
        if not isinstance(values, dict) or not values:
            raise RequestError("update_setting needs 'values': an object of the fields to change")
        settings = self.declaration.settings
        for name, value in values.items():
            setting = settings.get(name)
            if setting is None:
                declared = ", ".join(settings) or "none"
                raise RequestError(f"node '{self.node}' declares no setting '{name}' (it declares: {declared})", name)
            if not setting.live:
                raise RequestError(f"'{name}' of node '{self.node}' is not a live setting (live: false): it applies when the worker restarts", name)
            problem = setting.check(value)
            if problem:
                raise RequestError(f"'{name}' {problem}, not {json.dumps(value)}", name)
        old = {name: self.parameters.get(name) for name in values}
        missing = [name for name in values if name not in self.parameters]
        self.parameters.update(values)
        if self.declaration.on_change is not None:
            try:
                self.declaration.on_change(dict(values))
            except BaseException:
                self.parameters.update(old)
                for name in missing:
                    self.parameters.pop(name, None)
                raise
        return {"applied": values, "applied_ns": N.now_ns()}
