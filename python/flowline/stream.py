"""Streams: attach by namespace and name, read and write frames as numpy arrays."""

from __future__ import annotations

import array
import ctypes
import threading
import time
import os
from typing import Callable, Iterator, NamedTuple, Optional, TypeVar

import numpy as np

from . import _layout as L
from . import _native as N
import struct

from ._region import (ANY_INCARNATION, Attached, FlowlineError, LayoutMismatchError, Region, RegionExistsError, RegionNotFoundError,
                      StaleRegionError, create_region)

LIVENESS_INTERVAL_NS = 100_000_000
DEFAULT_SPIN_TIME = 50e-6
EARLY_WAKE_SPIN = 100e-6
"""The longest a wait woken early by a writer spins for its frame (or its spin time, if longer): C#'s ``WaitTuning.EarlyWakeSpin``."""
_FOREVER = 1 << 62


class FrameTimeout(TimeoutError):
    """No frame (or no space) came within the timeout."""


class StreamEnded(Exception):
    """The reader drained every frame and the writer is not there any more."""


class EndOfStream(StreamEnded):
    """The writer closed the stream after its last frame."""


class WriterGone(StreamEnded):
    """The writer detached without closing, or its process died."""


class FrameHeader(NamedTuple):
    """The header every frame carries: its sequence, the writer's frame id, and two CLOCK_MONOTONIC times (ns)."""

    sequence: int
    frame_id: int
    publish_ns: int
    origin_ns: int


def _deadline(timeout: Optional[float]) -> int:
    if timeout is None or timeout == float("inf") or timeout > 36500 * 86400:
        return _FOREVER
    return N.now_ns() + max(0, int(timeout * 1e9))


class _Signal:
    """A futex word and its sleeper count (FutexSignal.cs), with an optional sleeping flag of a reader entry."""

    def __init__(self, word: int, sleepers: int, flag: Optional[int] = None) -> None:
        self.word, self.sleepers, self.flag = word, sleepers, flag

    def begin_sleep(self) -> int:
        N.add_i32(self.sleepers, 1)
        if self.flag is not None:
            N.store_i32(self.flag, 1)
        return N.load_i32(self.word)

    def end_sleep(self) -> None:
        if self.flag is not None:
            N.store_i32(self.flag, 0)
        N.add_i32(self.sleepers, -1)

    def notify_if_sleeping(self) -> None:
        if N.load_i32(self.sleepers) != 0:
            self.wake()

    def wake(self) -> None:
        N.add_i32(self.word, 1)
        N.futex_wake(self.word)

    def sleep(self, observed: int, timeout_ns: int) -> bool:
        return N.futex_wait(self.word, observed, timeout_ns)

    def forget_dead_sleeper(self, dead_flag: int) -> None:
        if N.exchange_i32(dead_flag, 0) == 1:
            N.add_i32(self.sleepers, -1)


class _Signals:
    """The data signals of several readers' streams: registered on all, asleep on all at once (futex_waitv)."""

    def __init__(self, signals: list[_Signal]) -> None:
        self.signals = signals

    def begin_sleep(self) -> list[int]:
        return [s.begin_sleep() for s in self.signals]

    def sleep(self, observed: list[int], timeout_ns: int) -> bool:
        return N.futex_wait_any([s.word for s in self.signals], observed, timeout_ns)

    def end_sleep(self) -> None:
        for s in self.signals:
            s.end_sleep()


_KEEP_WAITING, _SATISFIED, _TIMED_OUT = 0, 1, 2


class _WaitCounters:
    """How this process's waits ended (C#'s ``WaitCounters``, process-wide; a worker reports them in its status)."""

    early_wakes = 0
    """Waits woken early by a writer (:meth:`Writer.wake_readers_early`) with no frame yet, which then spun for it."""
    early_wake_hits = 0
    """Those whose frame came while they spun."""


_thread = threading.local()


def on_woken_early(action: Optional[Callable[[], None]]) -> None:
    """Sets what the calling thread does when one of its ``predictive`` waits is woken early by a writer
    (:meth:`Writer.wake_readers_early`) with no frame yet, before it spins for the frame: a stage wakes the
    readers of its outputs in turn (C#'s ``WaitCounters.OnWokenEarly``). None clears it. Keep it short."""
    _thread.woken_early = action


def wait_counters() -> dict[str, int]:
    """This process's waits so far, as a C# worker reports them in its status (``waits``): ``early_wakes`` and
    ``early_wake_hits``; ``predicted_waits`` and ``predicted_hits`` stay 0 (Python waits learn no arrival plan)."""
    return {"predicted_waits": 0, "predicted_hits": 0,
            "early_wakes": _WaitCounters.early_wakes, "early_wake_hits": _WaitCounters.early_wake_hits}


def _wait(ready: Callable[[], bool], check_peers: Callable[[], None], signal: "_Signal | _Signals", policy: str, spin_time: float, timeout: Optional[float]) -> bool:
    """The wait loop of Waiter.cs: awake (spin or yield) for the spin time, then sleep on the futex in slices.

    A ``predictive`` wait (without a plan, as every Python wait is) waits as ``hybrid`` does, but a sleep of its
    own ended before its time with no frame is a writer's early wake-up (Waiter.SleepUntilSatisfied): it runs
    the thread's :func:`on_woken_early` action, polls for its frame yielding the processor between polls for
    up to :data:`EARLY_WAKE_SPIN` (or its spin time, if longer), and sleeps again if the frame has not come.
    After a frame found that way, its next wait sleeps at once (the writer will wake it again).
    """
    if ready():
        return True
    start = N.now_ns()
    deadline = _deadline(timeout)
    if deadline <= start:
        check_peers()
        return ready()
    next_check = start + LIVENESS_INTERVAL_NS

    def verdict() -> tuple[int, int]:
        # Ready now? Otherwise the deadline, and the peers: once more before giving up, and every liveness
        # interval while waiting.
        nonlocal next_check
        if ready():
            return _SATISFIED, 0
        now = N.now_ns()
        if now >= deadline:
            check_peers()
            return (_SATISFIED if ready() else _TIMED_OUT), now
        if now >= next_check:
            next_check = now + LIVENESS_INTERVAL_NS
            check_peers()
            if ready():
                return _SATISFIED, now
        return _KEEP_WAITING, now

    predictive = policy == "predictive"
    skip_awake = False
    if predictive and getattr(_thread, "expect_early_wake", False):
        # The writer woke this thread before its last frame: it will again, so the awake phase would only
        # burn the interval; asleep until the early wake-up instead.
        _thread.expect_early_wake = False
        skip_awake = True
    if policy != "block" and not skip_awake:
        awake_until = _FOREVER if policy == "spin" else start + int(spin_time * 1e9)
        spin_until = _FOREVER if policy == "spin" else start + int(spin_time * 1e9) // 5
        while True:
            if N.now_ns() >= spin_until:
                os.sched_yield()
            outcome, now = verdict()
            if outcome != _KEEP_WAITING:
                return outcome == _SATISFIED
            if now >= awake_until:
                break
    early_spin_ns = int(max(spin_time, EARLY_WAKE_SPIN) * 1e9)
    while True:
        # Only a predictive wait answers a writer's early wake-up: hybrid and block waits sleep again.
        slept = False
        sleep_end = 0
        woke = 0
        while True:
            observed = signal.begin_sleep()
            try:
                outcome, now = verdict()
                if outcome != _KEEP_WAITING:
                    return outcome == _SATISFIED
                if predictive and slept and now < sleep_end:
                    woke = now  # woken before the slice ended and still no frame: a writer's early wake-up
                    break
                sleep_end = min(deadline, next_check)
                slept = signal.sleep(observed, sleep_end - now)  # type: ignore[arg-type]
            finally:
                signal.end_sleep()
        _WaitCounters.early_wakes += 1
        action = getattr(_thread, "woken_early", None)
        if action is not None:
            action()
        spin_end = woke + early_spin_ns
        while True:
            if ready():
                _WaitCounters.early_wake_hits += 1
                _thread.expect_early_wake = True
                return True
            os.sched_yield()
            outcome, now = verdict()
            if outcome == _SATISFIED:
                _WaitCounters.early_wake_hits += 1
                _thread.expect_early_wake = True
                return True
            if outcome == _TIMED_OUT:
                return False
            if now >= spin_end:
                break


class Stream(Attached):
    """An existing stream, attached by namespace and name; open readers and a writer on it.

    The region's magic, layout version, kind and layout hash are checked, and its descriptor gives the
    frames' dtype and shape. A stream whose creator has exited and that no live process uses is refused.
    """

    _what = "stream"

    def __init__(self, namespace: str, name: str, dtype: object = None, shape: Optional[tuple[int, ...]] = None) -> None:
        self._region = Region(namespace, name, L.KIND_STREAM, L.STREAM_HASH)
        try:
            self._read_descriptor()
            self._check_format(None if dtype is None else np.dtype(dtype), None if shape is None else tuple(shape))
            self._region.stale_error(None if self._region.owner_alive else self._live_user())
        except BaseException:
            self._region.close()
            raise
        self.namespace, self.name = namespace, name

    @classmethod
    def attach(cls, namespace: str, name: str, dtype: object = None, shape: Optional[tuple[int, ...]] = None) -> "Stream":
        """Attaches to the stream ``namespace/name``; with ``dtype`` or ``shape``, its frames must have them."""
        return cls(namespace, name, dtype, shape)

    @staticmethod
    def _plan(dtype: object, shape: "int | tuple[int, ...]", capacity: int, max_readers: int) -> "tuple[np.dtype, tuple[int, ...], int, Callable[[object], None]]":
        """Checks a stream's format and options; its dtype, dims, frame bytes and descriptor writer."""
        dt = np.dtype(dtype).newbyteorder("<") if np.dtype(dtype).itemsize > 1 else np.dtype(dtype)
        codes = [code for code, d in L.DTYPES.items() if d == dt]
        if not codes:
            raise ValueError(f"dtype {np.dtype(dtype)} is not a Flowline element type; valid types are "
                             + ", ".join(d.name for d in L.DTYPES.values()))
        dims = (shape,) if isinstance(shape, int) else tuple(int(d) for d in shape)
        if not 1 <= len(dims) <= L.MAX_RANK or any(d < 1 for d in dims):
            raise ValueError(f"shape {list(dims)} is not valid: 1 to {L.MAX_RANK} dimensions, each at least 1")
        frame_bytes = dt.itemsize * int(np.prod(dims, dtype=np.int64))
        if frame_bytes > L.MAX_FRAME_BYTES:
            raise ValueError(f"shape {list(dims)} of {dt.name} exceeds the largest frame ({L.MAX_FRAME_BYTES:,} bytes)")
        if not 2 <= capacity <= L.MAX_CAPACITY or capacity & (capacity - 1):
            raise ValueError(f"capacity of {capacity} frames is not valid: it must be a power of two from 2 to {L.MAX_CAPACITY:,}")
        if not 1 <= max_readers <= L.MAX_READERS:
            raise ValueError(f"max readers of {max_readers} is not valid: it must be from 1 to {L.MAX_READERS}")

        def initialize(mm: "object") -> None:
            struct.pack_into("<BB2xIIxxxxqq", mm, L.DESCRIPTOR_OFFSET, codes[0], len(dims), capacity, max_readers,
                             frame_bytes, L.slot_bytes(frame_bytes))
            struct.pack_into(f"<{len(dims)}i", mm, L.SHAPE_OFFSET, *dims)

        return dt, dims, frame_bytes, initialize

    @classmethod
    def create(cls, namespace: str, name: str, dtype: object, shape: "int | tuple[int, ...]", capacity: int = 32,
               max_readers: int = 8) -> "Stream":
        """Creates the stream ``namespace/name`` of ``dtype`` frames of ``shape`` in a ring of ``capacity`` slots
        (a power of two from 2 to 2^20) with room for ``max_readers`` readers (1 to 64); fails with
        :class:`RegionExistsError` if the name exists. C# processes attach to it like to one of their own."""
        stream = cls._build(namespace, name, dtype, shape, capacity, max_readers, None)
        assert stream is not None
        return stream

    @classmethod
    def _build(cls, namespace: str, name: str, dtype: object, shape: "int | tuple[int, ...]", capacity: int, max_readers: int,
               replace_id: Optional[int]) -> "Optional[Stream]":
        """Creates the stream (see :meth:`create`), replacing the incarnation ``replace_id``; None if it is gone."""
        _, _, frame_bytes, initialize = cls._plan(dtype, shape, capacity, max_readers)
        if not create_region(namespace, name, L.KIND_STREAM, L.STREAM_HASH, L.total_bytes(frame_bytes, capacity, max_readers),
                             initialize, replace_id):
            return None
        return cls(namespace, name)

    @classmethod
    def replace(cls, namespace: str, name: str, dtype: object, shape: "int | tuple[int, ...]", capacity: int = 32,
                max_readers: int = 8) -> "Stream":
        """Creates the stream, replacing any stream of that name (C#'s ``RegionMode.Replace``): processes still
        attached to the old one keep it, and new ones attach to this one."""
        stream = cls._build(namespace, name, dtype, shape, capacity, max_readers, ANY_INCARNATION)
        assert stream is not None
        return stream

    @classmethod
    def create_or_attach(cls, namespace: str, name: str, dtype: object, shape: "int | tuple[int, ...]", capacity: int = 32,
                         max_readers: int = 8) -> "Stream":
        """Attaches to the stream if it exists with this dtype, shape, capacity and reader count; creates it if it
        is missing; recreates it if its creator died and nobody uses it (C#'s ``RegionMode.CreateOrAttach``).
        A stream of another format is an error (:class:`LayoutMismatchError`), never replaced."""
        dt, dims, _, _ = cls._plan(dtype, shape, capacity, max_readers)
        for _ in range(8):
            try:
                stream = cls(namespace, name)
            except RegionNotFoundError:
                try:
                    return cls.create(namespace, name, dtype, shape, capacity, max_readers)
                except RegionExistsError:
                    continue  # another process created it meanwhile: attach to theirs
            except StaleRegionError as stale:
                rebuilt = cls._build(namespace, name, dtype, shape, capacity, max_readers, stale.region_id)
                if rebuilt is not None:
                    return rebuilt
                continue  # replaced or removed meanwhile
            if (stream.dtype, stream.shape, stream.capacity, stream.max_readers) != (dt, dims, capacity, max_readers):
                found = f"{stream.dtype.name}{list(stream.shape)} frames in {stream.capacity} slots for {stream.max_readers} readers"
                stream.close()
                raise LayoutMismatchError(
                    f"stream '{namespace}/{name}' does not match: it holds {found}; expected {dt.name}{list(dims)} frames in "
                    f"{capacity} slots for {max_readers} readers. Use replace to recreate it")
            return stream
        raise FlowlineError(f"stream '{namespace}/{name}': gave up after 8 attempts while other processes kept creating and removing it")

    def _check_format(self, dtype: Optional[np.dtype], shape: Optional[tuple[int, ...]]) -> None:
        if (dtype is None or dtype == self.dtype) and (shape is None or shape == self.shape):
            return
        want_type = (dtype or self.dtype).name
        want_shape = list(shape if shape is not None else self.shape)
        raise LayoutMismatchError(
            f"region '{self._region.display}' does not match: it holds {self.dtype.name}{list(self.shape)} frames; "
            f"expected {want_type}{want_shape} frames ({self._region.owner_text})")

    def _read_descriptor(self) -> None:
        r = self._region
        mm = r.mm
        type_code, rank = mm[L.ELEMENT_TYPE_OFFSET], mm[L.RANK_OFFSET]
        capacity = int.from_bytes(mm[L.CAPACITY_OFFSET:L.CAPACITY_OFFSET + 4], "little")
        max_readers = int.from_bytes(mm[L.MAX_READERS_OFFSET:L.MAX_READERS_OFFSET + 4], "little")
        frame_bytes = int.from_bytes(mm[L.FRAME_BYTES_OFFSET:L.FRAME_BYTES_OFFSET + 8], "little", signed=True)
        shape = tuple(int.from_bytes(mm[L.SHAPE_OFFSET + 4 * i:L.SHAPE_OFFSET + 4 * i + 4], "little", signed=True) for i in range(min(rank, L.MAX_RANK)))
        dtype = L.DTYPES.get(type_code)
        valid = (
            dtype is not None and rank <= L.MAX_RANK and all(d >= 1 for d in shape)
            and 2 <= capacity <= L.MAX_CAPACITY and capacity & (capacity - 1) == 0 and 1 <= max_readers <= L.MAX_READERS
            and dtype.itemsize * int(np.prod(shape, dtype=np.int64)) == frame_bytes
            and L.total_bytes(frame_bytes, capacity, max_readers) == r.length
        )
        if not valid:
            raise LayoutMismatchError(f"region '{r.display}' does not match: its stream descriptor is not valid ({r.owner_text})")
        self.dtype: np.dtype = dtype  # type: ignore[assignment]
        self.shape: tuple[int, ...] = shape
        self.capacity: int = capacity
        self.max_readers: int = max_readers
        self.frame_bytes: int = frame_bytes
        self.slot_bytes: int = L.slot_bytes(frame_bytes)
        self.base: int = r.base
        self.slots: int = L.slots_offset(max_readers, capacity)
        self.slot_map: int = r.base + L.slot_map_offset(max_readers)

    def _live_user(self) -> Optional[str]:
        word = N.load_u64(self.base + L.WRITER_OWNER_OFFSET)
        if N.state_of(word) == L.WRITER_ATTACHED and N.is_alive(*N.unpack_owner(word)):
            return "writer"
        for i in range(self.max_readers):
            word = N.load_u64(self.reader_entry(i) + L.READER_OWNER_OFFSET)
            if N.state_of(word) != L.READER_FREE and N.is_alive(*N.unpack_owner(word)):
                return "reader"
        return None

    @property
    def path(self) -> str:
        """The file backing the region."""
        return self._region.path

    def _load(self, load: Callable[[int], int], offset: int) -> int:
        self._check_open()
        return load(self.base + offset)

    @property
    def cursor(self) -> int:
        """Frames published since the stream was created."""
        return self._load(N.load_i64, L.CURSOR_OFFSET)

    @property
    def writer_state(self) -> str:
        """none, attached, detached, closed or dead."""
        return L.WRITER_STATE_NAMES.get(N.state_of(self._load(N.load_u64, L.WRITER_OWNER_OFFSET)), "unknown")

    @property
    def sleeping_readers(self) -> int:
        """Readers asleep on the stream's futex now (a writer wakes them with a system call)."""
        return self._load(N.load_i32, L.DATA_SLEEPERS_OFFSET)

    @property
    def reclaimed_readers(self) -> int:
        """Reader entries of dead processes freed or taken over."""
        return self._load(N.load_i64, L.RECLAIMED_READERS_OFFSET)

    def reader_entry(self, index: int) -> int:
        """The address of entry ``index`` of the reader table."""
        return self.base + L.READER_TABLE_OFFSET + index * L.READER_ENTRY_BYTES

    def slot_index(self, sequence: int) -> int:
        """The slot that holds (or held) frame ``sequence``, from the slot map."""
        return N.load_i32(self.slot_map + (sequence & (self.capacity - 1)) * 4)

    def slot_at(self, index: int) -> int:
        """The address of slot ``index`` (its header; the payload follows)."""
        return self.base + self.slots + index * self.slot_bytes

    def slot_address(self, sequence: int) -> int:
        """The address of the slot that holds ``sequence``."""
        return self.slot_at(self.slot_index(sequence))

    def payload_at(self, index: int, writable: bool) -> np.ndarray:
        """The payload of slot ``index``, as a numpy view of the stream's dtype and shape."""
        offset = self.slots + index * self.slot_bytes + L.SLOT_HEADER_BYTES
        view = np.ndarray(self.shape, dtype=self.dtype, buffer=self._region.mm, offset=offset)
        if not writable:
            view.flags.writeable = False
        return view

    def payload(self, sequence: int, writable: bool) -> np.ndarray:
        """The payload of the slot that holds ``sequence``, as a numpy view of the stream's dtype and shape."""
        return self.payload_at(self.slot_index(sequence), writable)

    def header_of(self, index: int) -> FrameHeader:
        """The header of slot ``index`` (plain loads)."""
        a = self.slot_at(index)
        return FrameHeader(ctypes.c_int64.from_address(a).value, ctypes.c_uint64.from_address(a + 8).value,
                           ctypes.c_int64.from_address(a + 16).value, ctypes.c_int64.from_address(a + 24).value)

    def header_at(self, sequence: int) -> FrameHeader:
        """The header of the slot that holds ``sequence`` (plain loads: check intactness after)."""
        return self.header_of(self.slot_index(sequence))

    def reader(self, delivery: str = "lossless", wait_policy: str = "hybrid", spin_time: float = DEFAULT_SPIN_TIME) -> "Reader":
        """Opens a reader: ``lossless`` (every frame, with backpressure) or ``latest`` (the newest frame)."""
        self._check_open()
        return Reader(self, delivery, wait_policy, spin_time)

    def writer(self, wait_policy: str = "hybrid", spin_time: float = DEFAULT_SPIN_TIME) -> "Writer":
        """Opens the writer; a stream has at most one live writer."""
        self._check_open()
        return Writer(self, wait_policy, spin_time)

    def _pin(self) -> object:
        """A reference that keeps the mapping in place while an endpoint uses raw addresses in it."""
        self._check_open()
        return ctypes.c_char.from_buffer(self._region.mm)

    def __repr__(self) -> str:
        return f"Stream('{self.namespace}/{self.name}', {self.dtype.name}{list(self.shape)} x {self.capacity} slots)"


_ORDERED_CLAIM = N.X86
"""Whether a writer with no latest reader claims a slot with a release store rather than a fenced exchange (decision 142)."""

_E = TypeVar("_E", bound="_Endpoint")


class _Endpoint:
    """What readers and writers share: ``with`` closes them, and so does the garbage collector (a forgotten
    lossless reader must not hold a writer back for the life of its process)."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _E) -> _E:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def _check_policy(policy: str) -> str:
    """Checks a wait policy: ``spin``, ``hybrid``, ``block`` or ``predictive`` (a pipeline's default for readers,
    decision 140). A ``predictive`` wait here learns no arrival plan: it waits as ``hybrid`` does and answers a
    writer's early wake-up (see :func:`_wait`)."""
    if policy not in ("spin", "hybrid", "block", "predictive"):
        raise ValueError(f"wait policy {policy!r} is not valid: use spin, hybrid, block or predictive")
    return policy


class Reader(_Endpoint):
    """A reader with its own entry in the stream's reader table (StreamReader.cs)."""

    def __init__(self, stream: Stream, delivery: str, wait_policy: str, spin_time: float) -> None:
        if delivery not in ("lossless", "latest"):
            raise ValueError(f"delivery {delivery!r} is not valid: use lossless or latest")
        wait_policy = _check_policy(wait_policy)
        self.stream = stream
        self._pin = stream._pin()
        self.wait_policy, self.spin_time = wait_policy, spin_time
        self._base = stream.base
        self._cursor = stream.base + L.CURSOR_OFFSET
        self._writer_owner = stream.base + L.WRITER_OWNER_OFFSET
        self._space = _Signal(stream.base + L.SPACE_SIGNAL_OFFSET, stream.base + L.SPACE_SLEEPERS_OFFSET)
        pid, start = N.current_identity()
        self._identity = N.pack_owner(pid, start, 0)
        self._owner_word = 0
        self._entry = 0
        self._next = 0
        self._cached_cursor = 0
        self._look: int = -1
        self._held = -1
        self._last_check = 0
        self._liveness = N.PeerLiveness()
        self._outcome: Optional[type] = None
        self.frames_read = 0
        self.frames_skipped = 0
        self.torn_copies = 0
        self.wait_ns = 0
        self.closed = False
        self.index = self._claim()
        self._data = _Signal(stream.base + L.DATA_SIGNAL_OFFSET, stream.base + L.DATA_SLEEPERS_OFFSET,
                             self._entry + L.READER_SLEEPING_OFFSET)
        self.delivery = ""
        try:
            self._join(delivery)
        except BaseException:
            self.close()
            raise

    # --- the table -------------------------------------------------------------------------------

    def _claim(self) -> int:
        s = self.stream
        joining = self._identity | L.READER_JOINING
        for pass_ in range(2):
            for i in range(s.max_readers):
                entry = s.reader_entry(i)
                owner = entry + L.READER_OWNER_OFFSET
                while True:
                    word = N.load_u64(owner)
                    free = N.state_of(word) == L.READER_FREE
                    if not free and (pass_ == 0 or N.is_alive(*N.unpack_owner(word))):
                        break
                    if N.cas_u64(owner, word, joining) != word:
                        continue
                    if not free:
                        _Signal(s.base + L.DATA_SIGNAL_OFFSET, s.base + L.DATA_SLEEPERS_OFFSET).forget_dead_sleeper(entry + L.READER_SLEEPING_OFFSET)
                        N.add_i64(s.base + L.RECLAIMED_READERS_OFFSET, 1)
                    self._owner_word = joining
                    self._entry = entry
                    # A dead reader's hold goes with it.
                    N.store_u64(entry + L.READER_HOLD_OFFSET, 0)
                    N.and_u64(s.base + L.LATEST_READERS_OFFSET, ~(1 << i))
                    for off in (L.READER_SKIPPED_OFFSET, L.READER_FRAMES_READ_OFFSET, L.READER_TORN_OFFSET, L.READER_WAIT_NS_OFFSET):
                        N.store_u64(entry + off, 0)
                    return i
        raise FlowlineError(f"stream '{s.namespace}/{s.name}' has {s.max_readers} readers attached, its limit; "
                            "close readers that are done, or create the stream with more readers")

    def _join(self, delivery: str) -> None:
        # The latest bit is set (a full fence) before the cursor is read to hold a frame (D100).
        if delivery == "latest":
            N.or_u64(self._base + L.LATEST_READERS_OFFSET, 1 << self.index)
        position = self._entry + L.READER_POSITION_OFFSET
        self._next = N.load_i64(self._cursor)
        N.store_u64(position, self._next)
        word = self._identity | (L.READER_LOSSLESS if delivery == "lossless" else L.READER_LATEST)
        if N.cas_u64(self._entry + L.READER_OWNER_OFFSET, self._owner_word, word) != self._owner_word:
            raise FlowlineError(f"stream '{self.stream.namespace}/{self.stream.name}': reader entry {self.index} was taken "
                                "over by another process, which judged this one dead")
        self._owner_word = word
        self._next = N.load_i64(self._cursor)
        self._cached_cursor = self._next
        N.exchange_u64(position, self._next)
        if delivery == "lossless" and self.delivery == "latest":
            self._release_hold()
            N.and_u64(self._base + L.LATEST_READERS_OFFSET, ~(1 << self.index))
        self.delivery = delivery
        self._space.notify_if_sleeping()

    def set_delivery(self, delivery: str) -> None:
        """Switches delivery (PYTHUSA's ``set_blocking``); switching to lossless jumps to the writer's position."""
        if delivery not in ("lossless", "latest"):
            raise ValueError(f"delivery {delivery!r} is not valid: use lossless or latest")
        self._check_usable()
        if delivery == self.delivery:
            return
        before = self._next
        self._join(delivery)
        self.frames_skipped += self._next - before
        N.store_u64(self._entry + L.READER_SKIPPED_OFFSET, self.frames_skipped)

    @property
    def position(self) -> int:
        """The sequence of the next frame this reader will read."""
        return self._next

    # --- waiting ---------------------------------------------------------------------------------

    def _poll(self) -> bool:
        cursor = N.load_i64(self._cursor)
        if cursor > self._next:
            self._cached_cursor = cursor
            self._outcome = None
            return True
        state = N.state_of(N.load_u64(self._writer_owner))
        if state in (L.WRITER_NONE, L.WRITER_ATTACHED):
            return False
        cursor = N.load_i64(self._cursor)
        if cursor > self._next:
            self._cached_cursor = cursor
            self._outcome = None
            return True
        self._outcome = EndOfStream if state == L.WRITER_CLOSED else WriterGone
        return True

    def _check_writer(self) -> None:
        now = N.now_ns()
        if now - self._last_check < LIVENESS_INTERVAL_NS:
            return
        self._last_check = now
        word = N.load_u64(self._writer_owner)
        if N.state_of(word) == L.WRITER_ATTACHED and not self._liveness.is_alive(*N.unpack_owner(word)):
            N.cas_u64(self._writer_owner, word, (word & ~7) | L.WRITER_DEAD)

    def _ensure_frame(self, timeout: Optional[float]) -> None:
        if self._next < self._cached_cursor:
            return
        self._cached_cursor = N.load_i64(self._cursor)
        if self._next < self._cached_cursor:
            return
        started = N.now_ns()
        ok = _wait(self._poll, self._check_writer, self._data, self.wait_policy, self.spin_time, timeout)
        self._add_wait(N.now_ns() - started)
        if not ok:
            raise FrameTimeout(f"no frame on stream '{self.stream.namespace}/{self.stream.name}' within {timeout} s")
        if self._next < self._cached_cursor:
            return
        assert self._outcome is not None
        raise self._outcome(f"stream '{self.stream.namespace}/{self.stream.name}': "
                            + ("the writer closed it" if self._outcome is EndOfStream else "its writer is gone"))

    def _add_wait(self, ns: int) -> None:
        """Adds to the time this reader waited for input (a profiling counter in its table entry)."""
        self.wait_ns += ns
        N.store_u64(self._entry + L.READER_WAIT_NS_OFFSET, self.wait_ns)

    def wait_for_frame(self, timeout: Optional[float] = None) -> None:
        """Waits until a frame can be read without waiting; consumes nothing."""
        self._check_usable()
        self._ensure_frame(timeout)

    # --- reading ---------------------------------------------------------------------------------

    def _intact(self, sequence: int) -> bool:
        """A seqlock on the slot's sequence word, for a frame not held (the writer sets it to -1 before filling)."""
        N.full_fence()
        index = self.stream.slot_index(sequence)
        return 0 <= index < self.stream.capacity and N.load_i64(self.stream.slot_at(index)) == sequence

    def _held_intact(self, sequence: int) -> bool:
        """StreamReader.IsHeldIntact: a -1 is a writer's claim that saw the hold and puts the sequence back."""
        N.full_fence()
        if self._held < 0:
            return False
        address = self.stream.slot_at(self._held)
        found = N.load_i64(address)
        deadline = N.now_ns() + 50_000_000
        while found == L.SLOT_WRITING and N.now_ns() < deadline:
            time.sleep(0)
            found = N.load_i64(address)
        return found == sequence

    def _hold(self) -> int:
        """Holds the slot of the newest frame and returns its sequence (StreamReader.Hold, D100)."""
        s = self.stream
        hold = self._entry + L.READER_HOLD_OFFSET
        while True:
            sequence = N.load_i64(self._cursor) - 1
            index = s.slot_index(sequence)
            if not 0 <= index < s.capacity:
                raise self._corrupt(sequence, index)
            N.exchange_u64(hold, index + 1)
            if N.load_i64(s.slot_at(index)) == sequence:
                self._held = index
                return sequence

    def _release_hold(self) -> None:
        self._held = -1
        if self._entry:
            N.store_u64(self._entry + L.READER_HOLD_OFFSET, 0)

    def _release(self, sequence: int) -> None:
        self._next = sequence + 1
        self.frames_read += 1
        N.exchange_u64(self._entry + L.READER_POSITION_OFFSET, self._next)
        N.store_u64(self._entry + L.READER_FRAMES_READ_OFFSET, self.frames_read)
        self._space.notify_if_sleeping()

    def _consume(self, sequence: int, intact: bool) -> None:
        self.frames_skipped += sequence - self._next
        self._next = sequence + 1
        self._cached_cursor = max(self._cached_cursor, self._next)
        if intact:
            self.frames_read += 1
        else:
            self.torn_copies += 1
            N.store_u64(self._entry + L.READER_TORN_OFFSET, self.torn_copies)
        N.store_u64(self._entry + L.READER_POSITION_OFFSET, self._next)
        N.store_u64(self._entry + L.READER_FRAMES_READ_OFFSET, self.frames_read)
        N.store_u64(self._entry + L.READER_SKIPPED_OFFSET, self.frames_skipped)

    def _corrupt(self, expected: int, found: int) -> FlowlineError:
        return FlowlineError(f"stream '{self.stream.namespace}/{self.stream.name}': slot for frame {expected} holds frame {found}; "
                             "the region was modified outside Flowline or replaced while in use")

    def read(self, timeout: Optional[float] = None, out: Optional[np.ndarray] = None) -> tuple[np.ndarray, FrameHeader]:
        """Copies the next frame (lossless) or the newest (latest) out and consumes it.

        Raises :class:`FrameTimeout`, :class:`EndOfStream` or :class:`WriterGone`.
        """
        self._check_usable()
        if out is not None and (out.shape != self.stream.shape or out.dtype != self.stream.dtype):
            raise ValueError(f"out is {out.dtype}{list(out.shape)}; a frame is {self.stream.dtype}{list(self.stream.shape)}")
        deadline = _deadline(timeout)
        while True:
            self._ensure_frame(None if deadline == _FOREVER else max(0.0, (deadline - N.now_ns()) / 1e9))
            frame = out if out is not None else np.empty(self.stream.shape, self.stream.dtype)
            if self.delivery == "lossless":
                index = self.stream.slot_index(self._next)
                header = self.stream.header_of(index)
                if header.sequence != self._next:
                    raise self._corrupt(self._next, header.sequence)
                np.copyto(frame, self.stream.payload_at(index, False))
                self._release(self._next)
                return frame, header
            sequence = self._hold()
            # The header's sequence word is the claim word: a writer that claims the held slot, sees the hold
            # and puts the sequence back shows -1 there for a moment, so the held sequence is given instead
            # (as look() does); the rest of the header is written only into a slot the writer keeps.
            header = self.stream.header_of(self._held)._replace(sequence=sequence)
            np.copyto(frame, self.stream.payload_at(self._held, False))
            intact = self._held_intact(sequence)
            self._release_hold()
            if intact:
                self._consume(sequence, True)
                return frame, header
            self.torn_copies += 1
            N.store_u64(self._entry + L.READER_TORN_OFFSET, self.torn_copies)
            if N.now_ns() >= deadline:
                raise FrameTimeout(f"stream '{self.stream.namespace}/{self.stream.name}': every copy within {timeout} s was torn")

    def look(self, timeout: Optional[float] = None) -> tuple[np.ndarray, FrameHeader]:
        """Gives the next frame in place (a read-only numpy view, zero-copy); call :meth:`increment` when done.

        A latest look can be overwritten if the writer laps the ring meanwhile: :meth:`increment` says
        whether it stayed intact, :meth:`is_still_intact` whether it still is.
        """
        self._check_usable()
        if self._look >= 0:
            raise RuntimeError("call increment() before the next look or read: a look is in progress")
        self._ensure_frame(timeout)
        if self.delivery == "lossless":
            sequence = self._next
            index = self.stream.slot_index(sequence)
            header = self.stream.header_of(index)
            if header.sequence != sequence:
                raise self._corrupt(sequence, header.sequence)
        else:
            sequence = self._hold()
            index = self._held
            header = self.stream.header_of(index)._replace(sequence=sequence)
        self._look = sequence
        return self.stream.payload_at(index, False), header

    def increment(self) -> bool:
        """Releases the frame given by :meth:`look`; False if a latest look was overwritten while held."""
        self._check_usable()
        sequence = self._look
        if sequence < 0:
            raise RuntimeError("increment() needs a frame from look() first")
        self._look = -1
        if self.delivery == "lossless":
            self._release(sequence)
            return True
        intact = self._held_intact(sequence)
        self._release_hold()
        self._consume(sequence, intact)
        return intact

    def is_still_intact(self, sequence: int) -> bool:
        """True if the frame of ``sequence`` has not been overwritten since it was looked at (a held look always is)."""
        if sequence == self._look and self._look >= 0:
            return self.delivery == "lossless" or self._held_intact(sequence)
        return self._intact(sequence)

    def __iter__(self) -> Iterator[tuple[np.ndarray, FrameHeader]]:
        """Reads frames until the stream ends (a closed or gone writer)."""
        while True:
            try:
                yield self.read()
            except StreamEnded:
                return

    # --- leaving ---------------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self.closed:
            raise ValueError("this reader is closed")

    def close(self) -> None:
        """Leaves the reader table (the writer may be waiting on this reader's position)."""
        if self.closed:
            return
        self.closed = True
        self._look = -1
        self._liveness.close()
        if self._entry:
            self._release_hold()
            if self.delivery == "latest":
                N.and_u64(self._base + L.LATEST_READERS_OFFSET, ~(1 << self.index))
            N.cas_u64(self._entry + L.READER_OWNER_OFFSET, self._owner_word, L.READER_FREE)
            self._space.notify_if_sleeping()
        self._pin = None


class Writer(_Endpoint):
    """The writer of a stream (StreamWriter.cs): one live writer at a time."""

    def __init__(self, stream: Stream, wait_policy: str, spin_time: float) -> None:
        wait_policy = _check_policy(wait_policy)
        self.stream = stream
        self._pin = stream._pin()
        self.wait_policy, self.spin_time = wait_policy, spin_time
        b = stream.base
        self._base = b
        self._cursor = b + L.CURSOR_OFFSET
        self._owner = b + L.WRITER_OWNER_OFFSET
        self._data = _Signal(b + L.DATA_SIGNAL_OFFSET, b + L.DATA_SLEEPERS_OFFSET)
        self._space = _Signal(b + L.SPACE_SIGNAL_OFFSET, b + L.SPACE_SLEEPERS_OFFSET)
        pid, start = N.current_identity()
        self._owner_word = N.pack_owner(pid, start, L.WRITER_ATTACHED)
        self._installed = False
        self._look = False
        self.closed = False
        self._disposed = False
        self._last_check = 0
        self._liveness = N.PeerLiveness()
        self._attach()

    def _attach(self) -> None:
        observed = N.load_u64(self._owner)
        while True:
            if N.state_of(observed) == L.WRITER_ATTACHED:
                pid, start = N.unpack_owner(observed)
                if N.is_alive(pid, start):
                    raise FlowlineError(f"stream '{self.stream.namespace}/{self.stream.name}' already has a writer (pid {pid}); "
                                        "a stream has one writer at a time")
            seen = N.cas_u64(self._owner, observed, self._owner_word)
            if seen == observed:
                break
            observed = seen
        self._installed = True
        N.exchange_i32(self.stream.base + L.SPACE_SLEEPERS_OFFSET, 0)
        N.add_i64(self.stream.base + L.WRITER_EPOCH_OFFSET, 1)
        self._next = N.load_i64(self._cursor)
        self._cached_min = self._min_lossless()
        self._newest = self.stream.slot_index(self._next - 1) if self._next > 0 else -1
        self._fill_from = self._newest + 1
        self._claimed = -1
        # The slot map as this writer leaves it: only the writer stores in it, so an entry that already names
        # the slot is not stored again (decision 142).
        start = self.stream.slot_map - self.stream.base
        self._map = array.array("i", bytes(self.stream._region.mm[start:start + 4 * self.stream.capacity]))
        self._data.wake()

    @property
    def position(self) -> int:
        """The sequence the next frame will get."""
        return self._next

    def _min_lossless(self) -> int:
        lowest = self._next
        for i in range(self.stream.max_readers):
            entry = self.stream.reader_entry(i)
            if N.state_of(N.load_u64(entry + L.READER_OWNER_OFFSET)) == L.READER_LOSSLESS:
                lowest = min(lowest, N.load_i64(entry + L.READER_POSITION_OFFSET))
        return lowest

    def _has_space(self) -> bool:
        self._cached_min = self._min_lossless()
        return self._next - self._cached_min < self.stream.capacity and (self._claimed >= 0 or self._claim_slot())

    def _is_held(self, index: int, holders: int) -> bool:
        i = 0
        while holders:
            if holders & 1 and N.load_i64(self.stream.reader_entry(i) + L.READER_HOLD_OFFSET) == index + 1:
                return True
            holders >>= 1
            i += 1
        return False

    def _claim_slot(self) -> bool:
        """Claims a slot to fill: not held, not the newest frame's, no frame a lossless reader needs (StreamWriter.ClaimSlot, D100).

        With no latest reader attached (decision 142) nobody can hold a slot this writer may take: the bit of
        a latest reader is set with a full fence before it reads the cursor, and the bits are read here after
        the full fence of the last cursor store (or of the attach), so a reader this read misses holds at
        most the newest frame's slot, which is never claimed. The claim is then a release store of -1 on x86
        (stores reach other cores in program order, which is all the seqlock of peeking readers needs);
        elsewhere, and with a latest reader attached, it is the fenced claim of decision 100.
        """
        if N.load_u64(self._base + L.LATEST_READERS_OFFSET) == 0:
            return self._claim_unheld()
        s = self.stream
        capacity = s.capacity
        saw_hold = False
        saw_needed = False
        held_free = -1
        for k in range(capacity + 1):
            index = (self._fill_from + k) & (capacity - 1) if k < capacity else self._newest
            if index < 0 or (k < capacity and index == self._newest):
                continue
            header = s.slot_at(index)
            held = N.load_i64(header)
            if self._cached_min <= held < self._next and s.slot_index(held) == index:
                saw_needed = True
                continue
            N.exchange_u64(header, L.SLOT_WRITING)
            holders = N.load_u64(self._base + L.LATEST_READERS_OFFSET)
            if holders and self._is_held(index, holders):
                N.store_u64(header, held)
                saw_hold = True
                held_free = index if held_free < 0 else held_free
                continue
            self._claimed = index
            self._fill_from = index + 1
            if saw_hold:
                self._reclaim_dead_readers()
            return True
        if saw_hold:
            self._reclaim_dead_readers()
        if not saw_hold or saw_needed:
            return False  # a lossless reader has yet to read a frame: backpressure

        # Only held slots are left (a ring smaller than latest readers + 2): never wait for a latest reader.
        N.exchange_u64(s.slot_at(held_free), L.SLOT_OVERWRITING)
        self._claimed = held_free
        self._fill_from = held_free + 1
        return True

    def _claim_unheld(self) -> bool:
        """Claims the first slot in ring order that no lossless reader still needs (StreamWriter.ClaimUnheld)."""
        s = self.stream
        mask = s.capacity - 1
        for k in range(s.capacity):
            index = (self._fill_from + k) & mask
            if index == self._newest:
                continue
            header = s.slot_at(index)
            held = N.load_i64(header)
            if self._cached_min <= held < self._next and self._map[held & mask] == index:
                continue  # a lossless reader has yet to read that frame
            if _ORDERED_CLAIM:
                N.store_u64_release(header, L.SLOT_WRITING)
            else:
                N.exchange_u64(header, L.SLOT_WRITING)
            self._claimed = index
            self._fill_from = index + 1
            return True
        return False  # a lossless reader has yet to read a frame: backpressure

    def wake_readers_early(self) -> None:
        """Wakes the readers asleep on this stream before the next frame is published (a paced writer a little
        before its frame is due, or a stage woken early for the frame it will compute; C#'s
        ``StreamWriter.WakeReadersEarly``): a full fence, then a futex wake only if a reader sleeps. A
        ``predictive`` reader woken with no frame yet spins for it and passes the wake-up on to its own readers;
        other readers sleep again."""
        if self._disposed:
            raise ValueError("this writer is closed")
        N.full_fence()
        self._data.notify_if_sleeping()

    def _reclaim_dead_readers(self) -> None:
        now = N.now_ns()
        if now - self._last_check < LIVENESS_INTERVAL_NS:
            return
        self._last_check = now
        holding = (self._owner_word & ~7) | L.READER_JOINING
        for i in range(self.stream.max_readers):
            entry = self.stream.reader_entry(i)
            owner = entry + L.READER_OWNER_OFFSET
            word = N.load_u64(owner)
            if (N.state_of(word) != L.READER_FREE and not self._liveness.is_alive(*N.unpack_owner(word))
                    and N.cas_u64(owner, word, holding) == word):
                self._data.forget_dead_sleeper(entry + L.READER_SLEEPING_OFFSET)
                # Its hold goes with it: a crashed latest reader does not pin a slot.
                N.store_u64(entry + L.READER_HOLD_OFFSET, 0)
                N.and_u64(self._base + L.LATEST_READERS_OFFSET, ~(1 << i))
                N.exchange_u64(owner, L.READER_FREE)
                N.add_i64(self.stream.base + L.RECLAIMED_READERS_OFFSET, 1)

    def look(self, timeout: Optional[float] = None) -> np.ndarray:
        """Gives the next slot as a writable numpy view (zero-copy); fill it, then call :meth:`increment`.

        Waits for space while a lossless reader lags; raises :class:`FrameTimeout` when the timeout elapses.
        """
        self._check_usable()
        if self._look:
            return self.stream.payload_at(self._claimed, True)
        if self._next - self._cached_min >= self.stream.capacity or not self._claim_slot():
            self._cached_min = self._min_lossless()
            if self._next - self._cached_min >= self.stream.capacity or (self._claimed < 0 and not self._claim_slot()):
                waits = self.stream.base + L.SPACE_WAITS_OFFSET
                N.store_u64(waits, N.load_i64(waits) + 1)
                started = N.now_ns()
                ok = _wait(self._has_space, self._reclaim_dead_readers, self._space, self.wait_policy, self.spin_time, timeout)
                blocked = self.stream.base + L.WRITER_BLOCKED_NS_OFFSET
                N.store_u64(blocked, N.load_i64(blocked) + N.now_ns() - started)
                if not ok:
                    raise FrameTimeout(f"no space on stream '{self.stream.namespace}/{self.stream.name}' within {timeout} s: "
                                       "a lossless reader lags")
        self._look = True
        return self.stream.payload_at(self._claimed, True)

    def increment(self, frame_id: Optional[int] = None, origin_ns: int = 0) -> FrameHeader:
        """Publishes the slot given by :meth:`look`; the frame id defaults to the sequence, the origin to now."""
        if not self._look:
            self._check_usable()
            raise RuntimeError("increment() needs a slot from look() first")
        sequence = self._next
        slot = self.stream.slot_at(self._claimed)
        now = N.now_ns()
        fid = sequence if frame_id is None else frame_id
        origin = origin_ns if origin_ns != 0 else now
        ctypes.c_uint64.from_address(slot + L.SLOT_FRAME_ID_OFFSET).value = fid & 0xFFFFFFFFFFFFFFFF
        ctypes.c_int64.from_address(slot + L.SLOT_PUBLISH_OFFSET).value = now
        ctypes.c_int64.from_address(slot + L.SLOT_ORIGIN_OFFSET).value = origin
        N.store_u64_release(slot + L.SLOT_SEQUENCE_OFFSET, sequence)
        # The map entry after the slot (a release store): a reader that finds the slot in the map finds the
        # frame in it. Filled in ring order, a slot holds the frame a lap after its last one, whose entry
        # already names it: the store is skipped (decision 142).
        entry = sequence & (self.stream.capacity - 1)
        if self._map[entry] != self._claimed:
            N.store_i32_release(self.stream.slot_map + entry * 4, self._claimed)
            self._map[entry] = self._claimed
        self._newest = self._claimed
        self._claimed = -1
        self._look = False
        self._next = sequence + 1
        N.exchange_u64(self._cursor, self._next)
        self._data.notify_if_sleeping()
        return FrameHeader(sequence, fid, now, origin)

    publish = increment

    def write(self, frame: np.ndarray, timeout: Optional[float] = None, frame_id: Optional[int] = None, origin_ns: int = 0) -> FrameHeader:
        """Copies ``frame`` (the stream's shape; cast to its dtype) into the next slot and publishes it."""
        frame = np.asarray(frame)
        if frame.shape != self.stream.shape and frame.size != int(np.prod(self.stream.shape)):
            raise ValueError(f"the frame to write is {frame.dtype}{list(frame.shape)}; "
                             f"a frame of stream '{self.stream.namespace}/{self.stream.name}' is {self.stream.dtype}{list(self.stream.shape)}")
        slot = self.look(timeout)
        np.copyto(slot, frame.reshape(self.stream.shape), casting="same_kind")
        return self.increment(frame_id, origin_ns)

    def close_stream(self) -> None:
        """Ends the stream: readers read what is left, then get :class:`EndOfStream`."""
        self._check_usable()
        self.closed = True
        self._look = False
        self._set_state(L.WRITER_CLOSED)

    def _set_state(self, state: int) -> None:
        N.cas_u64(self._owner, self._owner_word, (self._owner_word & ~7) | state)
        self._data.wake()

    def _check_usable(self) -> None:
        if self._disposed:
            raise ValueError("this writer is closed")
        if self.closed:
            raise FlowlineError(f"the writer of stream '{self.stream.namespace}/{self.stream.name}' has closed it")

    def close(self) -> None:
        """Detaches: readers drain what is left, then get :class:`WriterGone` (unless :meth:`close_stream` ran)."""
        if self._disposed:
            return
        self._disposed = True
        self._look = False
        self._liveness.close()
        if not self.closed and self._installed:
            self._set_state(L.WRITER_DETACHED)
        self._pin = None


def wait_any(readers: "list[Reader]", timeout: Optional[float] = None) -> Optional[int]:
    """Waits until one of ``readers`` can read without waiting (a frame, or its writer closed or left) and
    returns its index, or None when the timeout elapses. Consumes nothing.

    The wait spins if any reader's policy is ``spin``; otherwise it is ``predictive`` if any reader is (it then
    answers early wake-ups), else ``hybrid`` if any reader is, awake for the longest spin time of those
    readers; otherwise it blocks (C#'s ``Waiter.Combine``). Asleep, it is registered on every stream and
    sleeps on all their futex words at once.
    """
    if not readers:
        raise ValueError("give at least one reader")
    for reader in readers:
        reader._check_usable()
        if reader._look >= 0:
            raise RuntimeError("call increment() before waiting: a look is in progress")
    policies = {r.wait_policy for r in readers}
    policy = "spin" if "spin" in policies else "predictive" if "predictive" in policies else "hybrid" if "hybrid" in policies else "block"
    spin_time = max((r.spin_time for r in readers if r.wait_policy in ("hybrid", "predictive")), default=0.0)
    found: list[int] = []

    def ready() -> bool:
        for i, reader in enumerate(readers):
            if reader._next < reader._cached_cursor or reader._poll():
                found[:] = [i]
                return True
        return False

    def check_peers() -> None:
        for reader in readers:
            reader._check_writer()

    started = N.now_ns()
    ok = _wait(ready, check_peers, _Signals([r._data for r in readers]), policy, spin_time, timeout)
    waited = N.now_ns() - started
    for reader in readers:
        reader._add_wait(waited)
    if ok:
        return found[0]
    return None
