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
