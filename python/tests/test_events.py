"""Events created by the C# peer, used from Python and from C# at once."""

from __future__ import annotations

import threading
import time

import flowline
from flowline import _native


def test_event_semantics_on_a_csharp_event(peers, ns):
    peers.csharp("create", "a", hang=True).expect("created")
    with flowline.Event.attach(ns, "a.evt") as event:
        assert not event.is_set and event.pending == 0
        assert not event.wait(timeout=0.05)
        event.signal()
        event.signal()
        assert event.is_set and event.pending == 2
        event.reset()
        assert event.is_set and event.pending == 1
        assert event.wait(timeout=0)
        assert event.wait_activation(timeout=1)
        assert not event.is_set and event.pending == 0
        assert not event.wait_activation(timeout=0.05)
        event.set()
        assert event.is_set and event.pending == 0
        event.signal()
        event.clear()
        assert not event.is_set and event.pending == 0


def test_python_and_csharp_wake_each_other(peers, ns):
    peers.csharp("create", "a", hang=True).expect("created")
    peers.csharp("create", "b", hang=True).expect("created")
    csharp = peers.csharp("events", "x", wait="a.evt", signal="b.evt", rounds=200)
    csharp.expect("ready")
    with flowline.Event.attach(ns, "a.evt") as ping, flowline.Event.attach(ns, "b.evt") as pong:
        for _ in range(150):
            ping.signal()
            assert pong.wait_activation(timeout=30)
        # Each round, Python is asleep on pong's futex before C# is asked to signal it: the C# signal must
        # wake it (without the wake-up, each sleep would end at its 100 ms slice, counted as a timeout).
        timeouts = _native.futex_timeouts
        for _ in range(50):
            woke: list[bool] = []
            waiter = threading.Thread(target=lambda: woke.append(pong.wait_activation(timeout=30)))
            waiter.start()
            deadline = time.monotonic() + 30
            while pong.sleeping_waiters == 0 and time.monotonic() < deadline:
                time.sleep(0.0005)
            assert pong.sleeping_waiters == 1
            ping.signal()
            waiter.join(60)
            assert woke == [True]
        assert _native.futex_timeouts - timeouts < 25
        assert csharp.expect("done") == "done"
        assert csharp.wait() == 0
        assert ping.pending == 0 and pong.pending == 0
