"""Opening a region file under /dev/shm/flowline/<namespace>/<name> and checking its header."""

from __future__ import annotations

import ctypes
import fcntl
import mmap
import os
import secrets
import threading
import time
import re
import stat as statmod
import struct
from typing import Callable, Optional, TypeVar

from . import _layout as L
from ._native import current_identity, is_alive, load_u64, pack_owner, store_u64, unpack_owner


class FlowlineError(Exception):
    """A shared-memory region cannot be used: missing, of another layout, stale or untrusted."""


class RegionNotFoundError(FlowlineError, FileNotFoundError):
    """The region does not exist."""


class LayoutMismatchError(FlowlineError):
    """The region has another layout version, kind, layout hash or format than expected."""


class StaleRegionError(FlowlineError):
    """The region's creator has exited and nobody keeps it up to date."""

    region_id: Optional[int] = None
    """The id of the stale incarnation (what ``create_or_attach`` replaces, and only it)."""

    @classmethod
    def of(cls, region: "Region", message: str) -> "StaleRegionError":
        error = cls(message)
        error.region_id = load_u64(region.base + L.REGION_ID_OFFSET)
        return error


class RegionExistsError(FlowlineError, FileExistsError):
    """A region of that name exists already."""


_NAME = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,127}$")


def check_name(value: str, what: str) -> None:
    """Names are 1 to 128 letters, digits, '_', '-' and '.', not starting with '.'."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError(
            f"{what} {value!r} is not valid: use 1 to 128 letters, digits, '_', '-' and '.', not starting with '.'"
        )


def _ensure_directories(namespace: str) -> str:
    """Makes /dev/shm/flowline (mode 1777, made private first) and the namespace directory (0700), as C# does."""
    if not os.path.isdir(L.ROOT):
        try:
            os.mkdir(L.ROOT, 0o700)
            os.chmod(L.ROOT, 0o1777)
        except FileExistsError:
            pass
    try:
        os.mkdir(os.path.join(L.ROOT, namespace), 0o700)
    except FileExistsError:
        pass
    return _check_directories(namespace)


ANY_INCARNATION = -1
"""``replace_id`` of :func:`create_region` that replaces whatever region has the name."""


def create_region(namespace: str, name: str, kind: int, layout_hash: int, total: int,
                  initialize: Callable[[mmap.mmap], None], replace_id: Optional[int] = None) -> bool:
    """Builds a region under a hidden temporary name (reserved with posix_fallocate, initialised, magic
    written last) and links it into place; :class:`RegionExistsError` if the name exists.

    With ``replace_id``, renames it over the name instead, under the namespace's flock (as C#'s
    ``SharedRegion.TryCreate``): over any region (:data:`ANY_INCARNATION`), or only over the incarnation of
    that region id (False if the name now names another one, or nothing). Processes that map the old
    region keep it."""
    check_name(namespace, "namespace")
    check_name(name, "region name")
    directory = _ensure_directories(namespace)
    path = os.path.join(directory, name)
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.{threading.get_native_id()}.tmp")
    try:
        os.unlink(tmp)  # left by a killed process that had this pid and thread
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            os.posix_fallocate(fd, 0, total)
        except OSError as error:
            raise FlowlineError(f"cannot create region '{namespace}/{name}' of {total:,} bytes: {error.strerror} "
                                f"(is {L.ROOT} full? `df -h /dev/shm` shows its free space)") from None
        with mmap.mmap(fd, total, flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0),
                       prot=mmap.PROT_READ | mmap.PROT_WRITE) as mm:
            initialize(mm)
            pid, start = current_identity()
            region_id = (int.from_bytes(secrets.token_bytes(8), "little") | 1) % ((1 << 64) - 1)
            struct.pack_into("<IIQqQQq", mm, L.VERSION_OFFSET, L.LAYOUT_VERSION, kind, layout_hash, total,
                             pack_owner(pid, start, 1), region_id, time.time_ns() // 1_000_000)
            anchor = ctypes.c_char.from_buffer(mm)
            store_u64(ctypes.addressof(anchor), L.MAGIC)  # last: a region that opens is complete
            del anchor
        if replace_id is None:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise RegionExistsError(f"region '{namespace}/{name}' already exists ({path})") from None
            return True
        lock = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if replace_id != ANY_INCARNATION and _region_id(path) != replace_id:
                return False
            os.rename(tmp, path)
            return True
        finally:
            os.close(lock)
    finally:
        os.close(fd)
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def _region_id(path: str) -> Optional[int]:
    """The region id in the header of the file at ``path``, or None if there is no such file."""
    try:
        with open(path, "rb") as f:
            f.seek(L.REGION_ID_OFFSET)
            data = f.read(8)
    except FileNotFoundError:
        return None
    return int.from_bytes(data, "little") if len(data) == 8 else None


def _check_directories(namespace: str) -> str:
    root = L.ROOT
    directory = os.path.join(root, namespace)
    uid = os.getuid()
    for path, is_root in ((root, True), (directory, False)):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return directory  # the region is then missing too
        if statmod.S_ISLNK(st.st_mode) or not statmod.S_ISDIR(st.st_mode):
            raise FlowlineError(f"{path} is not a directory (or is a symbolic link); Flowline refuses it")
        mode = statmod.S_IMODE(st.st_mode)
        if is_root:
            if st.st_uid not in (uid, 0) or (mode & 0o002 and not mode & statmod.S_ISVTX):
                raise FlowlineError(f"{path} belongs to uid {st.st_uid} with mode {mode:o}; Flowline refuses it")
        elif st.st_uid != uid or mode & 0o077:
            raise FlowlineError(
                f"namespace directory {path} belongs to uid {st.st_uid} with mode {mode:04o}; Flowline needs this user "
                f"and 0700 (nobody but its owner may read or change the frames in it)"
            )
    return directory


class Region:
    """A mapped region: the mmap, its base address, and the header's facts."""

    def __init__(self, namespace: str, name: str, kind: int, layout_hash: int) -> None:
        check_name(namespace, "namespace")
        check_name(name, "region name")
        self.namespace = namespace
        self.name = name
        self.display = f"{namespace}/{name}"
        directory = _check_directories(namespace)
        self.path = os.path.join(directory, name)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise RegionNotFoundError(
                f"region '{self.display}' does not exist ({self.path}); create it first (start the pipeline that owns it)"
            ) from None
        except OSError as error:
            raise FlowlineError(f"cannot open region '{self.display}' ({self.path}): {error.strerror}") from None
        try:
            length = os.fstat(fd).st_size
            if length < L.HEADER_SIZE:
                raise LayoutMismatchError(
                    f"'{self.path}' is not a Flowline region: it holds {length} bytes, fewer than a region header ({L.HEADER_SIZE})"
                )
            self.mm = mmap.mmap(fd, length, flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0),
                                prot=mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)
        self.length = length
        self._anchor = ctypes.c_char.from_buffer(self.mm)
        self.base = ctypes.addressof(self._anchor)
        try:
            self._check(kind, layout_hash)
        except BaseException:
            self.close()
            raise

    def _check(self, kind: int, layout_hash: int) -> None:
        magic = load_u64(self.base + L.MAGIC_OFFSET)
        if magic != L.MAGIC:
            raise LayoutMismatchError(f"'{self.path}' is not a Flowline region (magic 0x{magic:016X}, expected 0x{L.MAGIC:016X})")
        version, found_kind, found_hash, total, owner = struct.unpack_from("<IIQqQ", self.mm, L.VERSION_OFFSET)
        self.owner = unpack_owner(owner)
        owner_alive = is_alive(*self.owner)
        owner_text = f"created by live pid {self.owner[0]}" if owner_alive else f"created by pid {self.owner[0]}, which has exited"
        self.owner_text = owner_text
        if version != L.LAYOUT_VERSION or found_kind != kind or found_hash != layout_hash:
            raise LayoutMismatchError(
                f"region '{self.display}' has layout version {version}, kind {_kind_name(found_kind)}, layout hash 0x{found_hash:016X} "
                f"({owner_text}); expected layout version {L.LAYOUT_VERSION}, kind {_kind_name(kind)}, layout hash 0x{layout_hash:016X}. "
                "It was made by another Flowline version or for another purpose"
            )
        if total != self.length:
            raise LayoutMismatchError(
                f"region '{self.display}' is damaged: its header records {total} bytes but the file holds {self.length} ({owner_text})"
            )
        self.owner_alive = owner_alive

    def unlink(self) -> bool:
        """Removes the name if it still names this incarnation (under the namespace's flock, as C# does);
        processes that map the region keep it. Removes the namespace directory if it is then empty."""
        directory = os.path.dirname(self.path)
        removed = False
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                with open(self.path, "rb") as f:
                    f.seek(L.REGION_ID_OFFSET)
                    if f.read(8) == bytes(self.mm[L.REGION_ID_OFFSET:L.REGION_ID_OFFSET + 8]):
                        os.unlink(self.path)
                        removed = True
            except FileNotFoundError:
                pass
        finally:
            os.close(fd)
        try:
            os.rmdir(directory)
        except OSError:
            pass
        return removed

    def stale_error(self, user: str | None) -> None:
        """Raises unless the owner or ``user`` (a live user of the region) keeps it up to date."""
        if not self.owner_alive and user is None:
            raise StaleRegionError.of(self, f"region '{self.display}' was {self.owner_text}: nothing keeps it up to date. "
                                   "Start the pipeline that owns it")

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._anchor is None

    def close(self) -> None:
        """Lets go of the mapping (it stays mapped while numpy views of it or endpoints' pins are alive)."""
        self._anchor = None  # type: ignore[assignment]
        try:
            self.mm.close()
        except BufferError:
            pass  # views handed out keep it mapped; the mmap is released with the last of them


def _kind_name(kind: int) -> str:
    return L.KIND_NAMES.get(kind, f"unknown ({kind})")


_A = TypeVar("_A", bound="Attached")


class Attached:
    """What streams and events share: the region they attached to, closed by ``with`` or :meth:`close`."""

    _region: Region
    _what = "region"

    def _check_open(self) -> None:
        if self._region.closed:
            raise ValueError(f"{self._what} '{self._region.display}' is closed")

    def close(self) -> None:
        """Lets go of the region; readers, writers and views opened from it keep it mapped until they go."""
        self._region.close()

    def unlink(self) -> bool:
        """Removes the name if it still names this region (not a replacement made since); processes that map
        it keep it until they let go. True if the name was removed."""
        self._check_open()
        return self._region.unlink()

    def __enter__(self: _A) -> _A:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
