using Flowline.SharedMemory.Interop;
using Flowline.SharedMemory.Waiting;

namespace Flowline.SharedMemory.Diagnostics;

/// <summary>
/// Paces work at a fixed rate: sleeps until each intended time (absolute <c>clock_nanosleep</c>, with
/// the thread's timer slack cut to 1 ns), or spins when asked to.
/// </summary>
/// <remarks>
/// <para>A paced sender that sleeps leaves its core to the receiver and to the rest of the machine, as a real source does.</para>
/// <para>With <c>catchUp</c> off (what sources use), a late pacer does not burst to make up lost
/// time: the next intended time becomes max(previous + interval, now), and the deadlines skipped are
/// counted in <see cref="Missed"/>. With it on (what latency probes use), the schedule is kept exactly.</para>
/// </remarks>
public sealed class Pacer
{
    private static readonly long SliceNs = 50_000_000;
    private readonly long intervalNs;
    private readonly bool sleep;
    private readonly bool catchUp;
    private long nextNs = MonotonicClock.NowNs();

    /// <summary>The lowest rate a pacer keeps (one frame every 11.6 days): lower ones would overflow its clock.</summary>
    public const double MinRateHz = 1e-6;

    /// <summary>Creates a pacer for <paramref name="rateHz"/> (at least <see cref="MinRateHz"/>); the first wait ends one interval from now.</summary>
    public Pacer(double rateHz, bool sleep = true, bool catchUp = true)
    {
        if (!(rateHz >= MinRateHz) || double.IsInfinity(rateHz))
        {
            throw new ArgumentOutOfRangeException(nameof(rateHz), rateHz, $"the rate must be a number of hertz from {MinRateHz} (one per {1 / MinRateHz / 86400:0.#} days) up");
        }

        intervalNs = Math.Max(1, (long)(1e9 / rateHz));
        this.sleep = sleep;
        this.catchUp = catchUp;
        if (sleep)
        {
            // The default slack (50 µs) would make every sleep that much late.
            _ = LibC.Prctl(LibC.PrSetTimerSlack, 1, 0, 0, 0);
        }
    }

    /// <summary>The interval between intended times, in nanoseconds.</summary>
    public long IntervalNs => intervalNs;

    /// <summary>Intended times skipped because the caller was late (only without catch-up).</summary>
    public long Missed { get; private set; }

    /// <summary>Restarts the schedule from now (after a pause).</summary>
    public void Reset() => nextNs = MonotonicClock.NowNs();

    /// <summary>
    /// Waits until the next intended time and returns it (ns, <see cref="MonotonicClock"/>). Throws
    /// <see cref="OperationCanceledException"/> within 50 ms of <paramref name="cancellationToken"/> firing.
    /// </summary>
    public unsafe long WaitNext(CancellationToken cancellationToken = default)
    {
        nextNs += intervalNs;
        if (!catchUp)
        {
            var now = MonotonicClock.NowNs();
            if (now > nextNs)
            {
                Missed += (now - nextNs) / intervalNs;
                nextNs = now;
                return nextNs;
            }
        }

        if (sleep)
        {
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var until = nextNs;
                if (cancellationToken.CanBeCanceled)
                {
                    until = Math.Min(nextNs, MonotonicClock.NowNs() + SliceNs);
                }

                LibC.Timespec ts;
                ts.Seconds = until / 1_000_000_000;
                ts.Nanoseconds = until % 1_000_000_000;
                while (LibC.ClockNanosleep(LibC.ClockMonotonic, LibC.TimerAbsTime, &ts, null) == LibC.EIntr)
                {
                }

                if (until == nextNs)
                {
                    break;
                }
            }
        }

        while (MonotonicClock.NowNs() < nextNs)
        {
            Waiter.Pause();
        }

        return nextNs;
    }
}
