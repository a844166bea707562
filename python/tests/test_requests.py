"""A Python worker serving routed requests and live settings, through a real `flowline serve` over HTTP: ping
and process_stats answered by the Python process, its function's own operations, the typed errors, and a
declared live setting validated by the server and applied between two frames."""

from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import ROOT, Child
from test_pipeline import CLI, python_workers, wait_until

import flowline

MODULE = '''
import time

import flowline


def boom(args):
    raise RuntimeError("deliberate handler failure")


@flowline.declare(
    settings=[flowline.Setting("gain", "number", default=1.0, minimum=0, maximum=10, unit="V/V", description="the value written"),
              flowline.Setting("label", "string", default="a", live=False)],
    requests={"echo": lambda args: args, "boom": boom})
def fill(inputs, outputs, parameters):
    out = outputs[0]
    out[:8] = parameters["gain"]
    time.sleep(0.0005)  # a change applied in the middle of a frame would show as two halves
    out[8:] = parameters["gain"]
'''


def document(ns: str, python: str) -> str:
    return f"""
namespace: {ns}
shared_memory:
  - {{name: raw, shape: [16], dtype: float32}}
  - {{name: filled, shape: [16], dtype: float32}}
sources:
  - {{name: camera, kind: synthetic.array, stream: raw, parameters: {{pattern: sine, rate_hz: 200}}}}
kernels:
  - name: py
    kind: python.kernel
    input: raw
    output: filled
    parameters: {{module: pyreq, function: fill, interpreter: {python}, gain: 2.0}}
sinks:
  - {{name: sink, kind: null.sink, stream: filled}}
"""


def call(url: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def newest(ns: str) -> "float | None":
    """The value of the newest frame of 'filled' (NaN if its elements differ), or None before one."""
    with flowline.attach(ns, "filled") as stream, stream.reader("latest") as reader:
        try:
            frame, _ = reader.read(timeout=2)
        except flowline.FrameTimeout:
            return None
    values = set(frame.tolist())
    return values.pop() if len(values) == 1 else float("nan")


def serve_started(ns: str, tmp_path: Path) -> tuple[Child, str]:
    """`flowline serve` of the document with the Python kernel, started and computing: the server and its URL."""
    import sys

    if not CLI.exists():
        pytest.fail(f"the CLI is not built ({CLI}); run: dotnet build src/Flowline.Cli -c Release")
    (tmp_path / "pyreq.py").write_text(MODULE)
    (tmp_path / "pipeline.yaml").write_text(document(ns, sys.executable))
    server = Child(["dotnet", str(CLI), "serve", str(tmp_path / "pipeline.yaml"), "--port", "0"])
    try:
        line = server.expect("serving", 60)
        url = re.search(r"at (http://\S+)", line).group(1).rstrip("/")
        status, _ = call(url, "POST", "/commands/start")
        assert status == 200
        wait_until(lambda: newest(ns) == 2.0, "the Python kernel writes the document's gain")
    except BaseException:
        server.kill()
        raise
    return server, url


def test_python_worker_answers_routed_requests_and_live_settings_over_http(ns: str, tmp_path: Path) -> None:
    server, url = serve_started(ns, tmp_path)
    try:
        worker = python_workers(ns)
        assert len(worker) == 1

        status, ping = call(url, "POST", "/nodes/py/requests", {"op": "ping", "timeout_ms": 5000})
        assert status == 200, ping
        assert (ping["result"]["pid"], ping["result"]["node"]) == (worker[0], "py")
        status, stats = call(url, "POST", "/nodes/py/requests", {"op": "process_stats"})
        assert status == 200 and stats["result"]["pid"] == worker[0] and stats["result"]["rss_bytes"] > 0
        assert stats["result"]["runtime"].startswith("python ")
        status, echo = call(url, "POST", "/nodes/py/requests", {"op": "echo", "args": {"x": [1, 2]}})
        assert (status, echo["result"]) == (200, {"x": [1, 2]})

        status, error = call(url, "POST", "/nodes/py/requests", {"op": "frobnicate"})
        assert (status, error["code"]) == (404, "no_handler")
        status, error = call(url, "POST", "/nodes/py/requests", {"op": "boom"})
        assert (status, error["code"]) == (500, "handler_error") and "deliberate handler failure" in error["detail"]
        status, error = call(url, "POST", "/nodes/py/requests", {"op": "update_setting", "args": {"values": {"label": "b"}}})
        assert error["code"] == "invalid_request" and status in (400, 422), error

        status, schema = call(url, "GET", "/settings/schema")
        gain = next(f for f in schema["nodes"]["py"]["fields"] if f["name"] == "gain")
        assert (gain["type"], gain["live"], gain["minimum"], gain["maximum"], gain["unit"]) == ("number", True, 0, 10, "V/V")

        status, refused = call(url, "PATCH", "/settings/py", {"gain": 11})
        assert (status, refused["field"]) == (422, "gain")
        status, applied = call(url, "PATCH", "/settings/py", {"gain": 3.5})
        assert (status, applied["applied_by"], applied["values"]["gain"]) == (200, "live", 3.5), applied
        wait_until(lambda: newest(ns) == 3.5, "the Python kernel writes the new gain")
        for _ in range(20):
            assert newest(ns) == 3.5  # after the acknowledgement, whole frames with the new gain only

        server.process.send_signal(signal.SIGTERM)
        assert server.wait(60) == 0
    finally:
        server.kill()
    wait_until(lambda: python_workers(ns) == [], "the Python worker exits with the server", 10)
    assert not (ROOT / ns).exists()
    assert not (ROOT / f"{ns}.control").exists()
