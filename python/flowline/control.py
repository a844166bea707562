"""A worker's control block (``Control/ControlBlock.cs``, docs/shared-memory.md "Control blocks"): the
command the manager gives, the state and heartbeat the worker reports, its metrics under a seqlock and the
text of its last error. A Python worker of a pipeline speaks it like a C# worker does."""

from __future__ import annotations

import struct
import threading
from typing import Optional

from . import _layout as L
from . import _native as N
from ._region import Attached, Region

# Commands (WorkerCommand) and states (WorkerState).
HOLD, RUN, PAUSE, STOP = 0, 1, 2, 3
STARTING, READY, RUNNING, PAUSED, STOPPED, FAILED = 0, 1, 2, 3, 4, 5
STATE_NAMES = {STARTING: "starting", READY: "ready", RUNNING: "running", PAUSED: "paused", STOPPED: "stopped", FAILED: "failed"}

COMMAND_OFFSET = L.HEADER_SIZE
STATUS_OFFSET = COMMAND_OFFSET + 128
STATE_OFFSET = STATUS_OFFSET
PID_OFFSET = STATUS_OFFSET + 4
TID_OFFSET = STATUS_OFFSET + 8
HEARTBEAT_OFFSET = STATUS_OFFSET + 16
STARTED_OFFSET = STATUS_OFFSET + 24
METRICS_OFFSET = STATUS_OFFSET + 128
METRICS_DATA_OFFSET = METRICS_OFFSET + 8
METRICS_BYTES = 512
ERROR_OFFSET = METRICS_OFFSET + METRICS_BYTES
ERROR_CAPACITY = 16_384 - 4
REPORT_OFFSET = ERROR_OFFSET + 4 + ERROR_CAPACITY
REPORT_CAPACITY = 16_384 - 16
# The request mailbox (RequestMailbox.cs) the manager routes requests through (served by flowline.requests).
MAILBOX_OFFSET = REPORT_OFFSET + 16 + REPORT_CAPACITY
MAILBOX_SLOT_COUNT = 8
MAILBOX_SLOT_BYTES = 8192
MAILBOX_SLOT_HEADER = 64
MAILBOX_PAYLOAD_CAPACITY = MAILBOX_SLOT_BYTES - MAILBOX_SLOT_HEADER
# Slot states (MailboxSlotState) and answer statuses (MailboxStatus).
SLOT_FREE, SLOT_WRITING, SLOT_POSTED, SLOT_TAKEN, SLOT_ANSWERED, SLOT_ABANDONED = 0, 1, 2, 3, 4, 5
STATUS_OK, STATUS_NO_HANDLER, STATUS_INVALID_REQUEST, STATUS_HANDLER_ERROR, STATUS_TIMEOUT = 0, 1, 2, 3, 4
TOTAL_BYTES = MAILBOX_OFFSET + 64 + MAILBOX_SLOT_COUNT * MAILBOX_SLOT_BYTES
MAX_INPUTS = 8

# WorkerMetrics (WorkerMetrics.cs), a sequential little-endian struct of 312 bytes.
METRICS_FORMAT = "<qqqddiidqqqqqqqqqqq8qqqqqqqqqqqqqq"
METRICS_FIELDS = (
    "frames_processed", "output_frames", "last_exec_ns", "avg_exec_ns", "jitter_ns", "window", "reserved", "throughput_hz",
    "last_progress_ns", "published_ns", "latency_p50_ns", "latency_p90_ns", "latency_p99_ns", "latency_max_ns", "skew_events",
    "skipped_generations", "sync_timeouts", "missed_writes", "torn_frames",
) + tuple(f"skipped_input_{i}" for i in range(MAX_INPUTS)) + (
    "auxiliary_torn_copies", "predicted_waits", "predicted_hits", "early_wakes", "early_wake_hits",
    # A paced source's pacer (decision 161): the status's `pacer` object; pacer_interval_ns 0 for any other worker.
    "pacer_interval_ns", "pacer_wake_lead_ns", "pacer_intervals", "pacer_early_wakes", "pacer_bound_skips",
    "pacer_late_wakes", "pacer_overdue", "pacer_timer_lateness_ns",
)
METRICS_SIZE = struct.calcsize(METRICS_FORMAT)
assert METRICS_SIZE == 312 and len(METRICS_FIELDS) == 40

CONTROL_SIGNATURE = (
    L.HEADER_SIGNATURE + f";control:command@{COMMAND_OFFSET},status@{STATUS_OFFSET},metrics@{METRICS_OFFSET}+{METRICS_SIZE},"
    f"error@{ERROR_OFFSET}x{ERROR_CAPACITY},report@{REPORT_OFFSET}x{REPORT_CAPACITY},"
    f"mailbox@{MAILBOX_OFFSET}:{MAILBOX_SLOT_COUNT}x{MAILBOX_SLOT_BYTES}"
)
CONTROL_HASH = L.fnv1a(CONTROL_SIGNATURE)


class ControlBlock(Attached):
    """The control block ``namespace/name`` a manager created for one worker (attach only: the manager owns it)."""

    _what = "control block"

    def __init__(self, namespace: str, name: str) -> None:
        self._region = Region(namespace, name, L.KIND_CONTROL_BLOCK, CONTROL_HASH)
        self.base = self._region.base
        self._metrics_lock = threading.Lock()

    @classmethod
    def attach(cls, namespace: str, name: str) -> "ControlBlock":
        return cls(namespace, name)

    @property
    def command(self) -> int:
        """The manager's command: HOLD, RUN, PAUSE or STOP."""
        return N.load_i32(self.base + COMMAND_OFFSET)

    @property
    def state(self) -> int:
        return N.load_i32(self.base + STATE_OFFSET)

    @state.setter
    def state(self, value: int) -> None:
        N.exchange_i32(self.base + STATE_OFFSET, value)

    @property
    def pid(self) -> int:
        return N.load_i32(self.base + PID_OFFSET)

    @pid.setter
    def pid(self, value: int) -> None:
        N.store_i32(self.base + PID_OFFSET, value)

    @property
    def thread_id(self) -> int:
        return N.load_i32(self.base + TID_OFFSET)

    @thread_id.setter
    def thread_id(self, value: int) -> None:
        N.store_i32(self.base + TID_OFFSET, value)

    @property
    def heartbeat_ns(self) -> int:
        return N.load_i64(self.base + HEARTBEAT_OFFSET)

    @property
    def started_ns(self) -> int:
        return N.load_i64(self.base + STARTED_OFFSET)

    @started_ns.setter
    def started_ns(self, value: int) -> None:
        N.store_u64(self.base + STARTED_OFFSET, value)

    def beat(self) -> None:
        """Records that the worker is alive now (CLOCK_MONOTONIC ns)."""
        N.store_u64(self.base + HEARTBEAT_OFFSET, N.now_ns())

    def wait_for_command_change(self, observed: int, timeout: float) -> int:
        """Sleeps on the command word (a shared futex the manager wakes) while it holds ``observed``, for at
        most ``timeout`` seconds; returns the command then."""
        current = self.command
        if current != observed:
            return current
        N.futex_wait(self.base + COMMAND_OFFSET, observed, int(timeout * 1e9))
        return self.command

    def wake_command_waiters(self) -> None:
        """Wakes whoever sleeps on the command word (this worker's loop, to run a request between frames now)."""
        N.futex_wake(self.base + COMMAND_OFFSET)

    # --- the request mailbox (the worker's side of RequestMailbox.cs) ---------------------------------

    @property
    def request_doorbell(self) -> int:
        """Changes whenever a client posts a request."""
        return N.load_i32(self.base + MAILBOX_OFFSET)

    def wait_for_requests(self, observed: int, timeout: float) -> None:
        """Sleeps while the request doorbell holds ``observed``, for at most ``timeout`` seconds."""
        if self.request_doorbell == observed:
            N.futex_wait(self.base + MAILBOX_OFFSET, observed, int(timeout * 1e9))

    def wake_request_waiters(self) -> None:
        N.futex_wake(self.base + MAILBOX_OFFSET)

    def _slot(self, slot: int) -> int:
        if not 0 <= slot < MAILBOX_SLOT_COUNT:
            raise IndexError(f"mailbox slot {slot} is not in 0..{MAILBOX_SLOT_COUNT - 1}")
        return MAILBOX_OFFSET + 64 + slot * MAILBOX_SLOT_BYTES

    def take_request(self) -> Optional[tuple[int, int, int, bytes]]:
        """Takes the next posted request: (slot, correlation id, deadline ns, payload), or None."""
        for i in range(MAILBOX_SLOT_COUNT):
            offset = self._slot(i)
            if N.cas_u32(self.base + offset, SLOT_POSTED, SLOT_TAKEN) != SLOT_POSTED:
                continue
            length = min(max(N.load_i32(self.base + offset + 4), 0), MAILBOX_PAYLOAD_CAPACITY)
            correlation = N.load_i64(self.base + offset + 16)
            deadline = N.load_i64(self.base + offset + 24)
            start = offset + MAILBOX_SLOT_HEADER
            return i, correlation, deadline, bytes(self._region.mm[start:start + length])
        return None

    def answer_request(self, slot: int, correlation: int, status: int, answer: bytes) -> None:
        """Answers the request in ``slot`` (a slot its client abandoned is freed instead), and rings the answer doorbell."""
        if len(answer) > MAILBOX_PAYLOAD_CAPACITY:
            raise ValueError(f"an answer is at most {MAILBOX_PAYLOAD_CAPACITY} bytes, not {len(answer)}")
        offset = self._slot(slot)
        p = self.base + offset
        if N.load_i64(p + 16) != correlation:
            return
        start = offset + MAILBOX_SLOT_HEADER
        self._region.mm[start:start + len(answer)] = answer
        N.store_i32(p + 8, len(answer))
        N.store_i32(p + 12, status)
        if N.cas_u32(p, SLOT_TAKEN, SLOT_ANSWERED) != SLOT_TAKEN:
            N.cas_u32(p, SLOT_ABANDONED, SLOT_FREE)  # its client gave up: nobody takes the answer
        N.add_i32(self.base + MAILBOX_OFFSET + 4, 1)
        N.futex_wake(self.base + MAILBOX_OFFSET + 4)

    def write_metrics(self, values: dict[str, float]) -> None:
        """Publishes metrics (fields of :data:`METRICS_FIELDS`, 0 where absent) under the seqlock."""
        packed = struct.pack(METRICS_FORMAT, *(values.get(f, 0) for f in METRICS_FIELDS))
        with self._metrics_lock:
            sequence = self.base + METRICS_OFFSET
            s = N.load_i64(sequence)
            N.exchange_u64(sequence, s + 1)  # odd: writing
            self._region.mm[METRICS_DATA_OFFSET:METRICS_DATA_OFFSET + METRICS_SIZE] = packed
            N.exchange_u64(sequence, s + 2)  # even: stable

    def read_metrics(self) -> Optional[dict[str, float]]:
        """The last metrics published, or None if the worker kept writing through every retry."""
        sequence = self.base + METRICS_OFFSET
        for _ in range(100):
            before = N.load_i64(sequence)
            if before & 1:
                continue
            data = bytes(self._region.mm[METRICS_DATA_OFFSET:METRICS_DATA_OFFSET + METRICS_SIZE])
            N.full_fence()
            if N.load_i64(sequence) == before:
                return dict(zip(METRICS_FIELDS, struct.unpack(METRICS_FORMAT, data)))
        return None

    def write_error(self, text: str) -> None:
        """Records the worker's error (JSON: type, error, traceback), cut to 16,380 bytes between characters."""
        data = text.encode("utf-8")[:ERROR_CAPACITY]
        data = data.decode("utf-8", errors="ignore").encode("utf-8")
        self._region.mm[ERROR_OFFSET + 4:ERROR_OFFSET + 4 + len(data)] = data
        N.exchange_i32(self.base + ERROR_OFFSET, len(data))

    def read_error(self) -> Optional[str]:
        length = N.load_i32(self.base + ERROR_OFFSET)
        if length <= 0:
            return None
        return bytes(self._region.mm[ERROR_OFFSET + 4:ERROR_OFFSET + 4 + min(length, ERROR_CAPACITY)]).decode("utf-8", errors="replace")
