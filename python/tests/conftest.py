"""Fixtures: a namespace of its own per test (removed afterwards), and C# peers that are always killed."""

from __future__ import annotations

import itertools
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

PYTHON_DIR = Path(__file__).resolve().parents[1]
REPO = PYTHON_DIR.parent
sys.path.insert(0, str(PYTHON_DIR))

PEER = Path(os.environ.get(
    "FLOWLINE_TEST_PEER",
    REPO / "tests/Flowline.SharedMemory.TestPeer/bin/Release/net10.0/Flowline.SharedMemory.TestPeer.dll"))
ROOT = Path("/dev/shm/flowline")
_counter = itertools.count()


class Child:
    """A child process whose stdout lines are read by a thread, so that waits for a line are bounded."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.args = args
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                        start_new_session=True)
        self.lines: "queue.Queue[str | None]" = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, prefix: str, timeout: float = 30.0) -> str:
        """Waits for a line starting with ``prefix``; fails with what the child printed otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(0.01, left))
            except queue.Empty:
                line = None if left <= 0 else ""
                if left > 0:
                    continue
            if line is None:
                self.kill()
                err = self.process.stderr.read() if self.process.stderr else ""
                pytest.fail(f"{self.args[2:4]} printed {self.seen}, not '{prefix}' (exit {self.process.poll()}); stderr: {err[-2000:]}")
            self.seen.append(line)
            if line.startswith(prefix):
                return line

    def wait(self, timeout: float = 60.0) -> int:
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


class Peers:
    """Starts C# test peers (tests/Flowline.SharedMemory.TestPeer) and Python children in one namespace."""

    def __init__(self, ns: str) -> None:
        self.ns = ns
        self.children: list[Child] = []

    def csharp(self, role: str, name: str, **options: object) -> Child:
        if not PEER.exists():
            pytest.fail(f"the C# test peer is not built ({PEER}); run: dotnet build tests/Flowline.SharedMemory.TestPeer -c Release")
        args = ["dotnet", str(PEER), role, "--ns", self.ns, "--name", name, "--parent", str(os.getpid())]
        for key, value in options.items():
            args += [f"--{key}", str(value).lower() if isinstance(value, bool) else str(value)]
        child = Child(args)
        self.children.append(child)
        return child

    def python(self, code: str) -> Child:
        # The child dies with the test process even if that is killed (PR_SET_PDEATHSIG, then a check that
        # the parent did not die before it was set).
        guard = (
            "import ctypes, os, sys\n"
            "ctypes.CDLL(None).prctl(1, 9)\n"
            f"os.getppid() == {os.getpid()} or sys.exit(1)\n"
        )
        env = dict(os.environ, PYTHONPATH=str(PYTHON_DIR))
        child = Child([sys.executable, "-c", guard + code], env=env)
        self.children.append(child)
        return child

    def kill_all(self) -> None:
        for child in self.children:
            child.kill()


@pytest.fixture(autouse=True)
def time_limit() -> Iterator[None]:
    """Bounds every test's run time: a hung wait fails the test instead of hanging CI."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError("the test ran for more than 120 s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, 120)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def ns() -> Iterator[str]:
    name = f"pytest-{os.getpid()}-{next(_counter)}"
    yield name
    shutil.rmtree(ROOT / name, ignore_errors=True)
    shutil.rmtree(ROOT / f"{name}.control", ignore_errors=True)  # a server killed when a test failed leaves its control blocks


@pytest.fixture
def peers(ns: str) -> Iterator[Peers]:
    p = Peers(ns)
    try:
        yield p
    finally:
        p.kill_all()


def _mix(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    a64, b64 = np.uint64(0) + np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = (a64 * np.uint64(0x9E3779B97F4A7C15)) ^ (b64 + np.uint64(0x632BE59BD9B4E019))
        x ^= x >> np.uint64(31)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(29)
    return x


def payload(sequence: int, elements: int) -> np.ndarray:
    """What the C# peer's TestPayload.Fill writes for ``sequence``."""
    frame = _mix(sequence, np.arange(elements, dtype=np.uint64))
    frame[0] = sequence
    return frame


def uniform(sequence: int, elements: int) -> np.ndarray:
    """What TestPayload.FillUniform writes for ``sequence``."""
    return np.full(elements, _mix(sequence, 0), dtype=np.uint64)
