"""Flowline for Python: read and write Flowline's shared-memory streams as numpy arrays.

A second implementation of ``docs/shared-memory.md`` beside the C# one, over numpy and the standard library.
``flowline.worker`` runs the ``python.kernel``, ``python.source`` and ``python.sink`` nodes of a pipeline.
"""

from ._region import FlowlineError, LayoutMismatchError, RegionExistsError, RegionNotFoundError, StaleRegionError
from .event import Event
from .requests import RequestError, Setting, declare
from .stream import EndOfStream, FrameHeader, FrameTimeout, Reader, Stream, StreamEnded, Writer, WriterGone, on_woken_early, wait_any, wait_counters

__all__ = [
    "EndOfStream", "Event", "FlowlineError", "FrameHeader", "FrameTimeout", "LayoutMismatchError", "Reader", "RequestError", "Setting", "RegionExistsError", "RegionNotFoundError",
    "StaleRegionError", "Stream", "StreamEnded", "Writer", "WriterGone", "attach", "create", "create_or_attach", "declare", "on_woken_early", "replace",
    "wait_any", "wait_counters",
]
__version__ = "0.1.0"


def attach(namespace: str, name: str, dtype: object = None, shape: "tuple[int, ...] | None" = None) -> Stream:
    """Attaches to the stream ``namespace/name`` under /dev/shm/flowline; with ``dtype`` or ``shape``, its
    frames must have them (else :class:`LayoutMismatchError`)."""
    return Stream(namespace, name, dtype, shape)


def create(namespace: str, name: str, dtype: object, shape: "int | tuple[int, ...]", capacity: int = 32, max_readers: int = 8) -> Stream:
    """Creates the stream ``namespace/name`` (see :meth:`Stream.create`)."""
    return Stream.create(namespace, name, dtype, shape, capacity, max_readers)


def create_or_attach(namespace: str, name: str, dtype: object, shape: "int | tuple[int, ...]", capacity: int = 32, max_readers: int = 8) -> Stream:
    """Attaches to the stream if it exists with this format, creates it otherwise (see :meth:`Stream.create_or_attach`)."""
    return Stream.create_or_attach(namespace, name, dtype, shape, capacity, max_readers)


def replace(namespace: str, name: str, dtype: object, shape: "int | tuple[int, ...]", capacity: int = 32, max_readers: int = 8) -> Stream:
    """Creates the stream, replacing any stream of that name (see :meth:`Stream.replace`)."""
    return Stream.replace(namespace, name, dtype, shape, capacity, max_readers)
