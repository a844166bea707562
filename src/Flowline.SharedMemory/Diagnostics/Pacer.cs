using Flowline.SharedMemory.Interop;
using Flowline.SharedMemory.Waiting;

namespace Flowline.SharedMemory.Diagnostics;

/// <summary>
/// Sends at a fixed rate: sleeps until each intended time (absolute <c>clock_nanosleep</c>, with the
/// thread's timer slack cut to 1 ns), or spins when asked to.
/// </summary>
/// <remarks>A paced sender that sleeps leaves its core to the receiver and to the rest of the machine, as a real source does.</remarks>
internal sealed class Pacer
{
    private readonly long intervalNs;
    private readonly bool sleep;
    private long nextNs = MonotonicClock.NowNs();

    public Pacer(double rateHz, bool sleep = true)
    {
        intervalNs = (long)(1e9 / rateHz);
        this.sleep = sleep;
        if (sleep)
        {
            // The default slack (50 µs) would make every sleep that much late.
            _ = LibC.Prctl(LibC.PrSetTimerSlack, 1, 0, 0, 0);
        }
    }

    /// <summary>Waits until the next intended send time and returns it (ns).</summary>
    public unsafe long WaitNext()
    {
        nextNs += intervalNs;
        if (sleep)
        {
            LibC.Timespec ts;
            ts.Seconds = nextNs / 1_000_000_000;
            ts.Nanoseconds = nextNs % 1_000_000_000;
            while (LibC.ClockNanosleep(LibC.ClockMonotonic, LibC.TimerAbsTime, &ts, null) == LibC.EIntr)
            {
            }
        }

        while (MonotonicClock.NowNs() < nextNs)
        {
            Waiter.Pause();
        }

        return nextNs;
    }
}
