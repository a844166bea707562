"""Offsets of Flowline's shared-memory regions, as in ``Regions/RegionHeader.cs``, ``Streams/StreamLayout.cs``
and ``Events/SharedEvent.cs``; the layout hashes are computed from the same signature strings."""

from __future__ import annotations

import numpy as np

ROOT = "/dev/shm/flowline"

# Region header (RegionHeader.cs).
MAGIC = 0x454E494C574F4C46  # "FLOWLINE" in little-endian bytes
LAYOUT_VERSION = 2
HEADER_SIZE = 128
MAGIC_OFFSET = 0
VERSION_OFFSET = 8
KIND_OFFSET = 12
HASH_OFFSET = 16
TOTAL_BYTES_OFFSET = 24
OWNER_OFFSET = 32
REGION_ID_OFFSET = 40
CREATED_OFFSET = 48

KIND_STREAM = 1
KIND_EVENT = 2
KIND_PROBE = 3
KIND_CONTROL_BLOCK = 4
KIND_PROFILE = 5
KIND_NAMES = {KIND_STREAM: "stream", KIND_EVENT: "event", KIND_PROBE: "probe", KIND_CONTROL_BLOCK: "control block", KIND_PROFILE: "profile block"}

HEADER_SIGNATURE = (
    f"header:size={HEADER_SIZE},magic@{MAGIC_OFFSET},version@{VERSION_OFFSET}={LAYOUT_VERSION},kind@{KIND_OFFSET},hash@{HASH_OFFSET},"
    f"total@{TOTAL_BYTES_OFFSET},owner@{OWNER_OFFSET},id@{REGION_ID_OFFSET},created@{CREATED_OFFSET}"
)


def fnv1a(signature: str) -> int:
    """FNV-1a, 64-bit, over the UTF-16 code units of ``signature`` (ASCII here: one unit per character)."""
    h = 14695981039346656037
    for c in signature:
        h ^= ord(c)
        h = (h * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


# Stream (StreamLayout.cs).
LINE_BYTES = 128
SLOT_HEADER_BYTES = 64
SLOT_ALIGNMENT = 64
DESCRIPTOR_OFFSET = HEADER_SIZE
ELEMENT_TYPE_OFFSET = DESCRIPTOR_OFFSET + 0
RANK_OFFSET = DESCRIPTOR_OFFSET + 1
CAPACITY_OFFSET = DESCRIPTOR_OFFSET + 4
MAX_READERS_OFFSET = DESCRIPTOR_OFFSET + 8
FRAME_BYTES_OFFSET = DESCRIPTOR_OFFSET + 16
SLOT_BYTES_OFFSET = DESCRIPTOR_OFFSET + 24
SHAPE_OFFSET = DESCRIPTOR_OFFSET + 32
CURSOR_OFFSET = DESCRIPTOR_OFFSET + LINE_BYTES
WRITER_LINE_OFFSET = CURSOR_OFFSET + LINE_BYTES
WRITER_OWNER_OFFSET = WRITER_LINE_OFFSET + 0
WRITER_EPOCH_OFFSET = WRITER_LINE_OFFSET + 8
SPACE_WAITS_OFFSET = WRITER_LINE_OFFSET + 16
RECLAIMED_READERS_OFFSET = WRITER_LINE_OFFSET + 24
WRITER_BLOCKED_NS_OFFSET = WRITER_LINE_OFFSET + 32
LATEST_READERS_OFFSET = WRITER_LINE_OFFSET + 40
DATA_SIGNAL_OFFSET = WRITER_LINE_OFFSET + LINE_BYTES
DATA_SLEEPERS_OFFSET = DATA_SIGNAL_OFFSET + 4
SPACE_SIGNAL_OFFSET = DATA_SIGNAL_OFFSET + LINE_BYTES
SPACE_SLEEPERS_OFFSET = SPACE_SIGNAL_OFFSET + 4
READER_TABLE_OFFSET = SPACE_SIGNAL_OFFSET + LINE_BYTES
READER_ENTRY_BYTES = 128
READER_POSITION_OFFSET = 0
READER_HOLD_OFFSET = 8
READER_OWNER_OFFSET = 64
READER_SKIPPED_OFFSET = 72
READER_FRAMES_READ_OFFSET = 80
READER_TORN_OFFSET = 88
READER_SLEEPING_OFFSET = 96
READER_WAIT_NS_OFFSET = 104
SLOT_SEQUENCE_OFFSET = 0
SLOT_FRAME_ID_OFFSET = 8
SLOT_PUBLISH_OFFSET = 16
SLOT_ORIGIN_OFFSET = 24
SLOT_WRITING = -1  # the sequence word of a slot the writer is claiming or filling
SLOT_OVERWRITING = -2  # ... of a held slot the writer fills anyway (a ring smaller than latest readers + 2)

WRITER_NONE, WRITER_ATTACHED, WRITER_DETACHED, WRITER_CLOSED, WRITER_DEAD = 0, 1, 2, 3, 4
READER_FREE, READER_JOINING, READER_LOSSLESS, READER_LATEST = 0, 1, 2, 3
WRITER_STATE_NAMES = {0: "none", 1: "attached", 2: "detached", 3: "closed", 4: "dead"}

STREAM_SIGNATURE = (
    HEADER_SIGNATURE
    + f";stream:line={LINE_BYTES},desc@{DESCRIPTOR_OFFSET}(type@{ELEMENT_TYPE_OFFSET},rank@{RANK_OFFSET},cap@{CAPACITY_OFFSET},readers@{MAX_READERS_OFFSET},"
    + f"frame@{FRAME_BYTES_OFFSET},slot@{SLOT_BYTES_OFFSET},shape@{SHAPE_OFFSET}),cursor@{CURSOR_OFFSET},writer@{WRITER_LINE_OFFSET}(owner@{WRITER_OWNER_OFFSET},"
    + f"epoch@{WRITER_EPOCH_OFFSET},waits@{SPACE_WAITS_OFFSET},reclaimed@{RECLAIMED_READERS_OFFSET},blocked@{WRITER_BLOCKED_NS_OFFSET},latest@{LATEST_READERS_OFFSET}),data@{DATA_SIGNAL_OFFSET}+{DATA_SLEEPERS_OFFSET},"
    + f"space@{SPACE_SIGNAL_OFFSET}+{SPACE_SLEEPERS_OFFSET},readers@{READER_TABLE_OFFSET}x{READER_ENTRY_BYTES}(pos@{READER_POSITION_OFFSET},hold@{READER_HOLD_OFFSET},owner@{READER_OWNER_OFFSET},"
    + f"skipped@{READER_SKIPPED_OFFSET},read@{READER_FRAMES_READ_OFFSET},torn@{READER_TORN_OFFSET},sleeping@{READER_SLEEPING_OFFSET},wait@{READER_WAIT_NS_OFFSET}),map=i32xcap/{LINE_BYTES},slot(header={SLOT_HEADER_BYTES},seq@{SLOT_SEQUENCE_OFFSET},"
    + f"id@{SLOT_FRAME_ID_OFFSET},pub@{SLOT_PUBLISH_OFFSET},origin@{SLOT_ORIGIN_OFFSET},writing={SLOT_WRITING},overwriting={SLOT_OVERWRITING},align={SLOT_ALIGNMENT});owner-word:state3,pid22,start39"
)
STREAM_HASH = fnv1a(STREAM_SIGNATURE)

# Event (SharedEvent.cs).
EVENT_LINE_OFFSET = HEADER_SIZE
EVENT_STATE_OFFSET = EVENT_LINE_OFFSET + 0
EVENT_CHANGE_OFFSET = EVENT_LINE_OFFSET + 4
EVENT_SLEEPERS_OFFSET = EVENT_LINE_OFFSET + 8
EVENT_TOTAL_BYTES = EVENT_LINE_OFFSET + 128
EVENT_SIGNATURE = HEADER_SIGNATURE + f";event:state@{EVENT_STATE_OFFSET},change@{EVENT_CHANGE_OFFSET},sleepers@{EVENT_SLEEPERS_OFFSET},total={EVENT_TOTAL_BYTES}"
EVENT_HASH = fnv1a(EVENT_SIGNATURE)

MAX_RANK = 8
MAX_CAPACITY = 1 << 20
MAX_READERS = 64
MAX_FRAME_BYTES = (1 << 31) - 1

# ElementType.cs: the code stored in the descriptor, and NumPy's little-endian dtype.
DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"), 2: np.dtype("<f8"), 3: np.dtype("i1"), 4: np.dtype("<i2"), 5: np.dtype("<i4"),
    6: np.dtype("<i8"), 7: np.dtype("u1"), 8: np.dtype("<u2"), 9: np.dtype("<u4"), 10: np.dtype("<u8"),
    11: np.dtype("?"), 12: np.dtype("<c8"), 13: np.dtype("<c16"),
}


def slot_bytes(frame_bytes: int) -> int:
    """The bytes of one slot: the header, then the payload, rounded up to 64."""
    return (SLOT_HEADER_BYTES + frame_bytes + SLOT_ALIGNMENT - 1) // SLOT_ALIGNMENT * SLOT_ALIGNMENT


def slot_map_offset(max_readers: int) -> int:
    """Where the slot map starts (entry ``s mod capacity``: the slot that holds frame ``s``)."""
    return READER_TABLE_OFFSET + max_readers * READER_ENTRY_BYTES


def slots_offset(max_readers: int, capacity: int) -> int:
    """Where the slots start: after the slot map, rounded up to a line pair."""
    return slot_map_offset(max_readers) + (capacity * 4 + LINE_BYTES - 1) // LINE_BYTES * LINE_BYTES


def total_bytes(frame_bytes: int, capacity: int, max_readers: int) -> int:
    """The size of a whole stream region."""
    return slots_offset(max_readers, capacity) + slot_bytes(frame_bytes) * capacity
