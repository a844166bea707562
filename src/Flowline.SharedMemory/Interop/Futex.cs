using System.Diagnostics;

namespace Flowline.SharedMemory.Interop;

/// <summary>The result of <see cref="Futex.Wait"/>.</summary>
internal enum FutexWaitResult
{
    /// <summary>Another thread or process called wake (or the wake-up was spurious): re-check the condition.</summary>
    Woken,

    /// <summary>The word did not hold the expected value when the wait began.</summary>
    ValueChanged,

    /// <summary>The timeout elapsed.</summary>
    TimedOut,
}

/// <summary>
/// Futex wait and wake on a 32-bit word in shared memory.
/// </summary>
/// <remarks>
/// The futexes are shared, never private: a private futex is keyed by (address space, address) and
/// cannot match a waiter in another process, while a shared futex on a <c>MAP_SHARED</c> file page is
/// keyed by (inode, page, offset), so processes that map the region at different addresses meet.
/// Every wait has a finite timeout so that a peer that dies between setting a flag and waking cannot
/// strand a waiter; interrupted waits (<c>EINTR</c>) resume with the time that remains.
/// </remarks>
internal static unsafe class Futex
{
    private const int FutexWaitOp = 0;
    private const int FutexWakeOp = 1;

    private static long interruptedWaits;

    /// <summary>How many waits a signal interrupted (and that resumed) in this process.</summary>
    public static long InterruptedWaits => Volatile.Read(ref interruptedWaits);

    /// <summary>The longest single wait; callers slice longer waits.</summary>
    public static readonly TimeSpan MaxWait = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Sleeps while <paramref name="word"/> holds <paramref name="expected"/>, for at most <paramref name="timeout"/>.
    /// </summary>
    public static FutexWaitResult Wait(int* word, int expected, TimeSpan timeout)
    {
        if (timeout <= TimeSpan.Zero)
        {
            return FutexWaitResult.TimedOut;
        }

        if (timeout > MaxWait)
        {
            timeout = MaxWait;
        }

        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        var remainingNs = (long)(timeout.Ticks * 100);
        while (true)
        {
            LibC.Timespec ts;
            ts.Seconds = remainingNs / 1_000_000_000;
            ts.Nanoseconds = remainingNs % 1_000_000_000;
            var rc = LibC.Syscall(Syscalls.Futex, (nint)word, FutexWaitOp, expected, (nint)(&ts), 0, 0);
            if (rc == 0)
            {
                return FutexWaitResult.Woken;
            }

            var errno = LibC.Errno;
            switch (errno)
            {
                case LibC.EAgain:
                    return FutexWaitResult.ValueChanged;
                case LibC.ETimedOut:
                    return FutexWaitResult.TimedOut;
                case LibC.EIntr:
                    // A signal interrupted the wait: resume with the time that remains.
                    Interlocked.Increment(ref interruptedWaits);
                    var left = deadline - Stopwatch.GetTimestamp();
                    if (left <= 0)
                    {
                        return FutexWaitResult.TimedOut;
                    }

                    remainingNs = (long)(left * (1e9 / Stopwatch.Frequency));
                    continue;
                default:
                    throw new SharedMemoryException($"futex wait failed: {LibC.Describe(errno)} (errno {errno}).");
            }
        }
    }

    private static bool waitvMissing;

    /// <summary>
    /// Sleeps while every word of <paramref name="words"/> holds its value in <paramref name="expected"/>,
    /// for at most <paramref name="timeout"/> (<c>futex_waitv</c>, Linux 5.16+). Where the kernel lacks
    /// it, sleeps on the first word for at most a millisecond instead: callers re-check their conditions,
    /// so the only cost is latency on the other words.
    /// </summary>
    public static void WaitAny(ReadOnlySpan<nint> words, ReadOnlySpan<int> expected, TimeSpan timeout)
    {
        if (timeout <= TimeSpan.Zero)
        {
            return;
        }

        if (timeout > MaxWait)
        {
            timeout = MaxWait;
        }

        if (waitvMissing || words.Length > 128)
        {
            Wait((int*)words[0], expected[0], timeout < TimeSpan.FromMilliseconds(1) ? timeout : TimeSpan.FromMilliseconds(1));
            return;
        }

        // struct futex_waitv { u64 val; u64 uaddr; u32 flags; u32 reserved; }, FUTEX2_SIZE_U32 and shared.
        var waiters = stackalloc ulong[words.Length * 3];
        for (var i = 0; i < words.Length; i++)
        {
            waiters[i * 3] = (uint)expected[i];
            waiters[(i * 3) + 1] = (ulong)words[i];
            waiters[(i * 3) + 2] = 2;
        }

        var deadlineNs = MonotonicClock.NowNs() + (timeout.Ticks * 100);
        LibC.Timespec ts;
        ts.Seconds = deadlineNs / 1_000_000_000;
        ts.Nanoseconds = deadlineNs % 1_000_000_000;
        while (true)
        {
            var rc = LibC.Syscall(Syscalls.FutexWaitv, (nint)waiters, words.Length, 0, (nint)(&ts), LibC.ClockMonotonic, 0);
            if (rc >= 0)
            {
                return;
            }

            var errno = LibC.Errno;
            switch (errno)
            {
                case LibC.EAgain:
                case LibC.ETimedOut:
                    return;
                case LibC.EIntr:
                    Interlocked.Increment(ref interruptedWaits);
                    continue;
                case LibC.ENoSys:
                    waitvMissing = true;
                    Wait((int*)words[0], expected[0], TimeSpan.FromMilliseconds(1));
                    return;
                default:
                    throw new SharedMemoryException($"futex_waitv failed: {LibC.Describe(errno)} (errno {errno}).");
            }
        }
    }

    /// <summary>Wakes up to <paramref name="count"/> waiters on <paramref name="word"/>; returns how many woke.</summary>
    public static int Wake(int* word, int count = int.MaxValue)
    {
        var rc = LibC.Syscall(Syscalls.Futex, (nint)word, FutexWakeOp, count, 0, 0, 0);
        if (rc < 0)
        {
            var errno = LibC.Errno;
            throw new SharedMemoryException($"futex wake failed: {LibC.Describe(errno)} (errno {errno}).");
        }

        return (int)rc;
    }
}
