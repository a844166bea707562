"""Atomics, futexes and process identities: what the shared-memory protocol needs from the machine.

Atomics come from GCC's ``libatomic`` (lock-free for 4- and 8-byte words on x86-64 and arm64, so they are
the same instructions as the C# side's ``Interlocked``); futexes and ``clock_gettime`` from the C library
through :mod:`ctypes`; pidfds from :func:`os.pidfd_open`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import select
import time

_RELEASE = 3
_SEQ_CST = 5

X86 = platform.machine() in ("x86_64", "AMD64", "i686", "i386")
"""True on x86, whose stores become visible to other cores in program order (a release store is a plain store)."""

_SYS_FUTEX = {"x86_64": 202, "aarch64": 98, "arm64": 98}.get(platform.machine())
_FUTEX_WAIT = 0
_FUTEX_WAKE = 1
_EAGAIN = 11
_EINTR = 4
_ETIMEDOUT = 110


def _load_libatomic() -> ctypes.CDLL:
    name = ctypes.util.find_library("atomic") or "libatomic.so.1"
    try:
        return ctypes.CDLL(name)
    except OSError as error:
        raise RuntimeError(
            "flowline needs GCC's libatomic (libatomic.so.1) for atomic operations on shared memory; "
            "install it (Debian: apt-get install libatomic1)"
        ) from error


if _SYS_FUTEX is None:
    raise RuntimeError(f"flowline shared memory needs Linux on x86-64 or arm64; this is {platform.machine()}")

_atomic = _load_libatomic()
_libc = ctypes.CDLL(None, use_errno=True)

_u64, _u32, _p, _int = ctypes.c_uint64, ctypes.c_uint32, ctypes.c_void_p, ctypes.c_int


def _fn(name: str, restype: object, *argtypes: object) -> ctypes._CFuncPtr:  # type: ignore[name-defined]
    f = getattr(_atomic, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


_load8 = _fn("__atomic_load_8", _u64, _p, _int)
_store8 = _fn("__atomic_store_8", None, _p, _u64, _int)
_xchg8 = _fn("__atomic_exchange_8", _u64, _p, _u64, _int)
_cas8 = _fn("__atomic_compare_exchange_8", ctypes.c_bool, _p, _p, _u64, ctypes.c_bool, _int, _int)
_add8 = _fn("__atomic_fetch_add_8", _u64, _p, _u64, _int)
_or8 = _fn("__atomic_fetch_or_8", _u64, _p, _u64, _int)
_and8 = _fn("__atomic_fetch_and_8", _u64, _p, _u64, _int)
_load4 = _fn("__atomic_load_4", _u32, _p, _int)
_store4 = _fn("__atomic_store_4", None, _p, _u32, _int)
_xchg4 = _fn("__atomic_exchange_4", _u32, _p, _u32, _int)
_cas4 = _fn("__atomic_compare_exchange_4", ctypes.c_bool, _p, _p, _u32, ctypes.c_bool, _int, _int)
_add4 = _fn("__atomic_fetch_add_4", _u32, _p, _u32, _int)

_syscall = _libc.syscall
_syscall.restype = ctypes.c_long

_M64 = (1 << 64) - 1
_M32 = (1 << 32) - 1
_fence_word = ctypes.c_uint64(0)
_fence_address = ctypes.addressof(_fence_word)


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _signed32(v: int) -> int:
    return v - (1 << 32) if v >= 1 << 31 else v


def load_u64(address: int) -> int:
    """Atomic load (sequentially consistent) of an unsigned 64-bit word."""
    return int(_load8(address, _SEQ_CST))


def load_i64(address: int) -> int:
    """Atomic load of a signed 64-bit word."""
    return _signed64(int(_load8(address, _SEQ_CST)))


def store_u64(address: int, value: int) -> None:
    """Atomic store (release and more) of a 64-bit word; negative values are stored in two's complement."""
    _store8(address, value & _M64, _SEQ_CST)


def store_u64_release(address: int, value: int) -> None:
    """Release store of a 64-bit word, without a full fence (C#'s ``Ordered.PutLongOrdered``): a plain store on x86."""
    _store8(address, value & _M64, _RELEASE)


def store_i32_release(address: int, value: int) -> None:
    """Release store of a 32-bit word, without a full fence (C#'s ``Ordered.PutIntOrdered``)."""
    _store4(address, value & _M32, _RELEASE)


def exchange_u64(address: int, value: int) -> int:
    """Atomic exchange: a release store and a full fence at once, like ``Interlocked.Exchange``."""
    return int(_xchg8(address, value & _M64, _SEQ_CST))


def cas_u64(address: int, expected: int, desired: int) -> int:
    """Compare-and-swap; returns the value found (equal to ``expected`` when the swap happened)."""
    box = ctypes.c_uint64(expected & _M64)
    _cas8(address, ctypes.addressof(box), desired & _M64, False, _SEQ_CST, _SEQ_CST)
    return int(box.value)


def add_i64(address: int, delta: int) -> int:
    """Atomic add; returns the previous value."""
    return _signed64(int(_add8(address, delta & _M64, _SEQ_CST)))


def or_u64(address: int, bits: int) -> int:
    """Atomic OR (a full fence, like ``Interlocked.Or``); returns the previous value."""
    return int(_or8(address, bits & _M64, _SEQ_CST))


def and_u64(address: int, bits: int) -> int:
    """Atomic AND (a full fence, like ``Interlocked.And``); returns the previous value."""
    return int(_and8(address, bits & _M64, _SEQ_CST))


def load_i32(address: int) -> int:
    """Atomic load of a signed 32-bit word."""
    return _signed32(int(_load4(address, _SEQ_CST)))


def load_u32(address: int) -> int:
    """Atomic load of an unsigned 32-bit word."""
    return int(_load4(address, _SEQ_CST))


def store_i32(address: int, value: int) -> None:
    """Atomic store of a 32-bit word."""
    _store4(address, value & _M32, _SEQ_CST)


def exchange_i32(address: int, value: int) -> int:
    """Atomic exchange of a 32-bit word; returns the previous value."""
    return _signed32(int(_xchg4(address, value & _M32, _SEQ_CST)))


def cas_u32(address: int, expected: int, desired: int) -> int:
    """Compare-and-swap of a 32-bit word; returns the value found."""
    box = ctypes.c_uint32(expected & _M32)
    _cas4(address, ctypes.addressof(box), desired & _M32, False, _SEQ_CST, _SEQ_CST)
    return int(box.value)


def add_i32(address: int, delta: int) -> int:
    """Atomic add of a 32-bit word; returns the previous value."""
    return _signed32(int(_add4(address, delta & _M32, _SEQ_CST)))


def full_fence() -> None:
    """A full memory barrier (a locked read-modify-write, like ``Interlocked.MemoryBarrier``)."""
    _add8(_fence_address, 0, _SEQ_CST)


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_PR_SET_TIMERSLACK = 29


def fine_timer_slack() -> None:
    """Cuts the calling thread's timer slack to 1 ns (the default 50 µs makes every timed sleep that late), as C#'s ``Pacer`` does."""
    _libc.prctl(_PR_SET_TIMERSLACK, ctypes.c_ulong(1), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))


def now_ns() -> int:
    """``CLOCK_MONOTONIC`` in nanoseconds: the clock of frame timestamps, the same in every process."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


futex_timeouts = 0
"""Futex waits in this process that ended because their time was up (not woken): a test's view of wake-ups."""


def futex_wait(address: int, expected: int, timeout_ns: int) -> bool:
    """Sleeps while the 32-bit word at ``address`` holds ``expected``, for at most ``timeout_ns``; True if the
    sleep ended before its time (woken, or the word had changed already), False if the time was up.

    The futex is shared (no ``FUTEX_PRIVATE_FLAG``), so it meets waiters and wakers of other processes.
    A signal that interrupts the wait resumes it with the time left. The GIL is released meanwhile.
    """
    global futex_timeouts
    if timeout_ns <= 0:
        return False
    deadline = now_ns() + timeout_ns
    while True:
        ts = _Timespec(timeout_ns // 1_000_000_000, timeout_ns % 1_000_000_000)
        rc = _syscall(_SYS_FUTEX, ctypes.c_void_p(address), _FUTEX_WAIT, ctypes.c_int(_signed32(expected & _M32)),
                      ctypes.byref(ts), None, 0)
        if rc == 0:
            return True
        errno = ctypes.get_errno()
        if errno == _ETIMEDOUT:
            futex_timeouts += 1
            return False
        if errno == _EAGAIN:
            return True
        if errno == _EINTR:
            timeout_ns = deadline - now_ns()
            if timeout_ns <= 0:
                return False
            continue
        raise OSError(errno, f"futex wait failed: {os.strerror(errno)}")


_SYS_FUTEX_WAITV = 449
_ENOSYS = 38
_waitv_missing = False


class _FutexWaitv(ctypes.Structure):
    _fields_ = [("val", ctypes.c_uint64), ("uaddr", ctypes.c_uint64), ("flags", ctypes.c_uint32), ("reserved", ctypes.c_uint32)]


def futex_wait_any(addresses: list[int], expected: list[int], timeout_ns: int) -> bool:
    """Sleeps while every word holds its expected value, for at most ``timeout_ns`` (``futex_waitv``, Linux
    5.16+; 32-bit shared futexes); True if the sleep ended before its time. Without it, sleeps on the first
    word for at most a millisecond: callers re-check their conditions, so the only cost is latency on the
    other words (and such a sleep, cut short by this function, is not reported as woken)."""
    global _waitv_missing
    if timeout_ns <= 0:
        return False
    if _waitv_missing or len(addresses) > 128:
        return futex_wait(addresses[0], expected[0], min(timeout_ns, 1_000_000))
    waiters = (_FutexWaitv * len(addresses))()
    for i, (address, value) in enumerate(zip(addresses, expected)):
        waiters[i].val = value & _M32
        waiters[i].uaddr = address
        waiters[i].flags = 2  # FUTEX2_SIZE_U32, shared
    deadline = now_ns() + timeout_ns
    ts = _Timespec(deadline // 1_000_000_000, deadline % 1_000_000_000)
    while True:
        rc = _syscall(ctypes.c_long(_SYS_FUTEX_WAITV), ctypes.byref(waiters), ctypes.c_uint(len(addresses)), ctypes.c_uint(0),
                      ctypes.byref(ts), ctypes.c_int(time.CLOCK_MONOTONIC))
        if rc >= 0:
            return True
        errno = ctypes.get_errno()
        if errno == _EAGAIN:
            return True
        if errno == _ETIMEDOUT:
            return False
        if errno == _EINTR:
            continue
        if errno == _ENOSYS:
            _waitv_missing = True
            return futex_wait(addresses[0], expected[0], min(timeout_ns, 1_000_000))
        raise OSError(errno, f"futex_waitv failed: {os.strerror(errno)}")


def futex_wake(address: int) -> None:
    """Wakes every waiter on the 32-bit word at ``address``."""
    rc = _syscall(_SYS_FUTEX, ctypes.c_void_p(address), _FUTEX_WAKE, ctypes.c_int(0x7FFFFFFF), None, None, 0)
    if rc < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"futex wake failed: {os.strerror(errno)}")


# Owner words: state (3 bits) | pid (22 bits) | start time in clock ticks (39 bits), as ProcessIdentity.Pack.
_STATE_BITS = 3
_PID_BITS = 22
_STATE_MASK = (1 << _STATE_BITS) - 1
_PID_MASK = (1 << _PID_BITS) - 1
_START_MASK = (1 << (64 - _STATE_BITS - _PID_BITS)) - 1


def pack_owner(pid: int, start_ticks: int, state: int) -> int:
    """Packs a state (0 to 7) and a process identity into one owner word."""
    return ((start_ticks & _START_MASK) << (_STATE_BITS + _PID_BITS)) | ((pid & _PID_MASK) << _STATE_BITS) | (state & _STATE_MASK)


def state_of(word: int) -> int:
    """The state of an owner word."""
    return word & _STATE_MASK


def unpack_owner(word: int) -> tuple[int, int]:
    """The (pid, start ticks) of an owner word."""
    return (word >> _STATE_BITS) & _PID_MASK, word >> (_STATE_BITS + _PID_BITS)


_NOT_FOUND = "not-found"
_UNKNOWN = "unknown"


def read_stat(pid: int) -> tuple[str, int] | str:
    """(state letter, start ticks) from ``/proc/<pid>/stat``, or ``_NOT_FOUND`` / ``_UNKNOWN``."""
    if pid <= 0:
        return _NOT_FOUND
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return _NOT_FOUND
    except OSError:
        return _UNKNOWN
    close = text.rfind(b")")
    if close < 0 or not text:
        return _NOT_FOUND if not text else _UNKNOWN
    fields = text[close + 2:].split()
    if len(fields) < 20:
        return _UNKNOWN
    try:
        return fields[0].decode("ascii"), int(fields[19])
    except ValueError:
        return _UNKNOWN


def _current_identity() -> tuple[int, int]:
    pid = os.getpid()
    found = read_stat(pid)
    if not isinstance(found, tuple):
        raise RuntimeError(f"cannot read /proc/{pid}/stat: flowline needs Linux procfs to identify processes")
    return pid, found[1]


_identity: tuple[int, int] | None = None


def current_identity() -> tuple[int, int]:
    """(pid, start ticks) of this process (read again after a fork)."""
    global _identity
    if _identity is None or _identity[0] != os.getpid():
        _identity = _current_identity()
    return _identity


def is_alive(pid: int, start_ticks: int) -> bool:
    """False only when the process has provably exited: no such pid, another start time, or a zombie."""
    if pid <= 0:
        return False
    me = current_identity()
    if pid == me[0]:
        return (start_ticks & _START_MASK) == (me[1] & _START_MASK)
    found = read_stat(pid)
    if found == _NOT_FOUND:
        return False
    if found == _UNKNOWN:
        return True
    state, start = found  # type: ignore[misc]
    return state not in ("Z", "X", "x") and (start & _START_MASK) == (start_ticks & _START_MASK)


class PeerLiveness:
    """Cheap repeated liveness checks: a pidfd per peer (opened once, start time confirmed), then a ``poll``."""

    _DEAD = -1
    _NO_PIDFD = -2

    def __init__(self) -> None:
        self._fds: dict[tuple[int, int], int] = {}

    def is_alive(self, pid: int, start_ticks: int) -> bool:
        key = (pid, start_ticks & _START_MASK)
        if pid == os.getpid():
            return is_alive(pid, start_ticks)
        fd = self._fds.get(key)
        if fd is None:
            fd = self._open(pid, start_ticks)
            if fd == self._NO_PIDFD:
                return is_alive(pid, start_ticks)
            if len(self._fds) >= 64:
                self.close()
            self._fds[key] = fd
        if fd == self._DEAD:
            return False
        try:
            ready, _, _ = select.select([fd], [], [], 0)
        except OSError:
            return True
        return not ready

    @classmethod
    def _open(cls, pid: int, start_ticks: int) -> int:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return cls._DEAD
        except OSError:
            return cls._NO_PIDFD
        if not is_alive(pid, start_ticks):
            os.close(fd)
            return cls._DEAD
        return fd

    def close(self) -> None:
        for fd in self._fds.values():
            if fd >= 0:
                os.close(fd)
        self._fds.clear()
