"""Flowline for Python: read and write Flowline's shared-memory streams as numpy arrays.

A second implementation of ``docs/shared-memory.md`` beside the C# one, over numpy and the standard library.
"""

from ._region import FlowlineError, LayoutMismatchError, RegionNotFoundError, StaleRegionError
from .event import Event
from .stream import EndOfStream, FrameHeader, FrameTimeout, Reader, Stream, StreamEnded, Writer, WriterGone, wait_any

__all__ = [
    "EndOfStream", "Event", "FlowlineError", "FrameHeader", "FrameTimeout", "LayoutMismatchError", "Reader", "RegionNotFoundError",
    "StaleRegionError", "Stream", "StreamEnded", "Writer", "WriterGone", "attach", "wait_any",
]
__version__ = "0.1.0"


def attach(namespace: str, name: str, dtype: object = None, shape: "tuple[int, ...] | None" = None) -> Stream:
    """Attaches to the stream ``namespace/name`` under /dev/shm/flowline; with ``dtype`` or ``shape``, its
    frames must have them (else :class:`LayoutMismatchError`)."""
    return Stream(namespace, name, dtype, shape)
