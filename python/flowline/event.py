"""Process-shared events (Events/SharedEvent.cs): a set flag, and a count of pending activations."""

from __future__ import annotations

from typing import Callable, Optional

from . import _layout as L
from . import _native as N
import struct

from ._region import (ANY_INCARNATION, Attached, FlowlineError, LayoutMismatchError, Region, RegionExistsError, RegionNotFoundError,
                      StaleRegionError, create_region)
from .stream import _Signal, _wait

_SET_BIT = 1
_MAX_COUNT = ((1 << 32) - 1 >> 1) - 1


def _take_one(s: int) -> int:
    count = s >> 1
    if count == 0:
        return 0
    count -= 1
    return (count << 1) | (_SET_BIT if count > 0 else 0)


class Event(Attached):
    """An existing event, attached by namespace and name (PYTHUSA's ``WorkerEvent`` semantics).

    :meth:`signal` adds an activation and sets the flag; :meth:`reset` takes one activation and clears the
    flag when none are left; :meth:`wait` waits for the flag without consuming; :meth:`wait_activation`
    waits for an activation and takes it; :meth:`set` sets the flag alone; :meth:`clear` drops everything.
    """

    _what = "event"

    def __init__(self, namespace: str, name: str) -> None:
        self._region = Region(namespace, name, L.KIND_EVENT, L.EVENT_HASH)
        try:
            if self._region.length != L.EVENT_TOTAL_BYTES:
                raise LayoutMismatchError(f"region '{self._region.display}' holds {self._region.length} bytes; an event holds {L.EVENT_TOTAL_BYTES}")
            self._region.stale_error(None)
        except BaseException:
            self._region.close()
            raise
        self.namespace, self.name = namespace, name
        base = self._region.base
        self._state = base + L.EVENT_STATE_OFFSET
        self._signal = _Signal(base + L.EVENT_CHANGE_OFFSET, base + L.EVENT_SLEEPERS_OFFSET)

    @classmethod
    def attach(cls, namespace: str, name: str) -> "Event":
        """Attaches to the event ``namespace/name``."""
        return cls(namespace, name)

    @classmethod
    def create(cls, namespace: str, name: str, initial_state: bool = False) -> "Event":
        """Creates the event ``namespace/name``: set with one pending activation when ``initial_state`` is
        true (PYTHUSA's ``initial_state``), clear otherwise. :class:`RegionExistsError` if the name exists."""
        cls._build(namespace, name, initial_state, None)
        return cls(namespace, name)

    @staticmethod
    def _build(namespace: str, name: str, initial_state: bool, replace_id: Optional[int]) -> bool:
        state = (1 << 1) | _SET_BIT if initial_state else 0
        return create_region(namespace, name, L.KIND_EVENT, L.EVENT_HASH, L.EVENT_TOTAL_BYTES,
                             lambda mm: struct.pack_into("<I", mm, L.EVENT_STATE_OFFSET, state), replace_id)

    @classmethod
    def replace(cls, namespace: str, name: str, initial_state: bool = False) -> "Event":
        """Creates the event, replacing any event of that name (processes attached to the old one keep it)."""
        cls._build(namespace, name, initial_state, ANY_INCARNATION)
        return cls(namespace, name)

    @classmethod
    def create_or_attach(cls, namespace: str, name: str, initial_state: bool = False) -> "Event":
        """Attaches to the event if it exists, creates it if it is missing, recreates it if its creator died
        (C#'s ``SharedEvent.Open`` with ``RegionMode.CreateOrAttach``); ``initial_state`` applies to a new one."""
        for _ in range(8):
            try:
                return cls(namespace, name)
            except RegionNotFoundError:
                try:
                    return cls.create(namespace, name, initial_state)
                except RegionExistsError:
                    continue
            except StaleRegionError as stale:
                if cls._build(namespace, name, initial_state, stale.region_id):
                    return cls(namespace, name)
        raise FlowlineError(f"event '{namespace}/{name}': gave up after 8 attempts while other processes kept creating and removing it")

    @property
    def is_set(self) -> bool:
        """True while the flag is set."""
        self._check_open()
        return bool(N.load_u32(self._state) & _SET_BIT)

    @property
    def pending(self) -> int:
        """Activations signalled and not yet taken."""
        self._check_open()
        return N.load_u32(self._state) >> 1

    @property
    def sleeping_waiters(self) -> int:
        """Waiters asleep on the event's futex now, in any process."""
        self._check_open()
        return N.load_i32(self._signal.sleepers)

    def _update(self, change: Callable[[int], int]) -> None:
        self._check_open()
        while True:
            s = N.load_u32(self._state)
            updated = change(s)
            if updated == s:
                return
            if N.cas_u32(self._state, s, updated) == s:
                self._signal.notify_if_sleeping()
                return

    def set(self) -> None:
        """Sets the flag without adding an activation."""
        self._update(lambda s: s | _SET_BIT)

    def signal(self) -> None:
        """Adds one pending activation and sets the flag."""
        self._update(lambda s: (min((s >> 1) + 1, _MAX_COUNT) << 1) | _SET_BIT)

    def reset(self) -> None:
        """Takes one pending activation if there is one; clears the flag when none are left."""
        self._update(_take_one)

    def clear(self) -> None:
        """Clears the flag and every pending activation."""
        self._update(lambda s: 0)

    def try_take_activation(self) -> bool:
        """Takes a pending activation if there is one, without waiting."""
        self._check_open()
        while True:
            s = N.load_u32(self._state)
            if s >> 1 == 0:
                return False
            if N.cas_u32(self._state, s, _take_one(s)) == s:
                self._signal.notify_if_sleeping()
                return True

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Waits until the flag is set, without consuming anything; False on timeout."""
        return _wait(lambda: self.is_set, lambda: None, self._signal, "block", 0.0, timeout)

    def wait_activation(self, timeout: Optional[float] = None) -> bool:
        """Waits for a pending activation and takes it; False on timeout."""
        return _wait(self.try_take_activation, lambda: None, self._signal, "block", 0.0, timeout)

    def __repr__(self) -> str:
        return f"Event('{self.namespace}/{self.name}', {'set' if self.is_set else 'clear'}, {self.pending} pending)"
