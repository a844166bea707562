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
    /// How long before each intended time a pacer given an early wake-up (<see cref="WaitNext(Action?, CancellationToken)"/>)
    /// calls it: 30 µs, enough for a futex wake-up of a sleeping reader on this kind of machine (11 to 15 µs
    /// at p50 to p90 on a 2-vCPU virtual machine, 28 µs at p99) and for that reader to pass it on once more.
    /// The pacer spins through it every interval and each reader it wakes spins from its wake-up to its
    /// frame, so a longer lead costs them CPU; 45 µs until decision 155.
    /// </summary>
    public const long DefaultWakeLeadNs = 30_000;

    /// <summary>
    /// The largest share of its interval a pacer spends on an early wake-up (its lead and its timer's learnt
    /// lateness, spun through every interval): 0.1, so that the wake-up costs a paced source at most a tenth
    /// of a core; a pacer whose interval is shorter than ten times that sleeps to the intended time instead.
    /// </summary>
    public const double MaxEarlyShare = 0.1;

    /// <summary>How long before each intended time the early wake-up is called (ns); see <see cref="DefaultWakeLeadNs"/>.</summary>
    public long WakeLeadNs { get; init; } = DefaultWakeLeadNs;

    private const int LatenessWindow = 16;
    private readonly long[] lateness = new long[LatenessWindow];
    private readonly long[] sortedLateness = new long[LatenessWindow];
    private int latenessCount;
    private long latenessMedianNs = 20_000;

    /// <summary>
    /// How late this pacer's timer wakes (ns): the median of its last 16 sleeps before an early wake-up (a
    /// median, so that a sleep that lost its core for a millisecond does not move it), 20 µs before any.
    /// Its sleeps end that much earlier.
    /// </summary>
    public long TimerLatenessNs => latenessMedianNs;

    /// <summary>Times the early wake-up was called after the intended time (the timer woke later than the lead and its learnt lateness).</summary>
    public long LateWakes { get; private set; }

    /// <summary>
    /// Intended times returned (calls of <c>WaitNext</c> that ended). For a pacer given an early wake-up,
    /// <see cref="Intervals"/> = <see cref="EarlyWakes"/> + <see cref="BoundSkips"/> + <see cref="Overdue"/> (decision 161).
    /// </summary>
    public long Intervals { get; private set; }

    /// <summary>Intervals in which the early wake-up was called (late ones included: see <see cref="LateWakes"/>).</summary>
    public long EarlyWakes { get; private set; }

    /// <summary>
    /// Intervals given no early wake-up because the lead and the timer's learnt lateness exceeded
    /// <see cref="MaxEarlyShare"/> of the interval (the pacer slept to the intended time instead).
    /// </summary>
    public long BoundSkips { get; private set; }

    /// <summary>
    /// Intervals the caller came back to after their intended time, without catch-up: returned at once,
    /// with no wait and no early wake-up (whole intervals skipped meanwhile count in <see cref="Missed"/>).
    /// </summary>
    public long Overdue { get; private set; }

    /// <summary>
    /// Waits until the next intended time and returns it (ns, <see cref="MonotonicClock"/>). Throws
    /// <see cref="OperationCanceledException"/> within 50 ms of <paramref name="cancellationToken"/> firing.
    /// </summary>
    public long WaitNext(CancellationToken cancellationToken = default) => WaitNext(null, cancellationToken);

    /// <summary>
    /// Waits until the next intended time and returns it, calling <paramref name="wakeEarly"/> about
    /// <see cref="WakeLeadNs"/> before it: the pacer sleeps until the lead and its timer's learnt lateness
    /// before the intended time, calls <paramref name="wakeEarly"/> (a source wakes its readers), then
    /// spins to the intended time, yielding the processor between clock reads so that the readers it woke
    /// get a core. Without <paramref name="wakeEarly"/>, or when the lead and the lateness exceed
    /// <see cref="MaxEarlyShare"/> of the interval, it sleeps until the intended time and does not call it.
    /// </summary>
    public unsafe long WaitNext(Action? wakeEarly, CancellationToken cancellationToken = default)
    {
        nextNs += intervalNs;
        if (!catchUp)
        {
            var now = MonotonicClock.NowNs();
            if (now > nextNs)
            {
                Missed += (now - nextNs) / intervalNs;
                Overdue++;
                Intervals++;
                nextNs = now;
                return nextNs;
            }
        }

        // The early wake-up costs the pacer a spin of its lead and its timer's lateness per interval: given
        // only while that is at most MaxEarlyShare of the interval (about 1.5 kHz at 38 µs of lateness);
        // faster pacers sleep to the intended time as before, and keep learning the timer's lateness.
        var eligible = wakeEarly is not null && sleep;
        var early = eligible && WakeLeadNs + latenessMedianNs <= intervalNs * MaxEarlyShare;
        var wakeAt = early ? nextNs - WakeLeadNs - latenessMedianNs : nextNs;
        if (sleep && MonotonicClock.NowNs() < wakeAt)
        {
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var until = wakeAt;
                if (cancellationToken.CanBeCanceled)
                {
                    until = Math.Min(wakeAt, MonotonicClock.NowNs() + SliceNs);
                }

                LibC.Timespec ts;
                ts.Seconds = until / 1_000_000_000;
                ts.Nanoseconds = until % 1_000_000_000;
                while (LibC.ClockNanosleep(LibC.ClockMonotonic, LibC.TimerAbsTime, &ts, null) == LibC.EIntr)
                {
                }

                if (until == wakeAt)
                {
                    break;
                }
            }

            if (eligible)
            {
                RecordLateness(MonotonicClock.NowNs() - wakeAt);
            }
        }
        else if (early && latenessCount > 0)
        {
            // No sleep at all (the estimate left no time for one): let the estimate decay, or it would never be measured again.
            RecordLateness(latenessMedianNs / 2);
        }

        if (early)
        {
            if (MonotonicClock.NowNs() > nextNs)
            {
                LateWakes++;
            }

            wakeEarly!();
            EarlyWakes++;
            while (MonotonicClock.NowNs() < nextNs)
            {
                Thread.Yield();
            }

            Intervals++;
            return nextNs;
        }

        while (MonotonicClock.NowNs() < nextNs)
        {
            Waiter.Pause();
        }

        if (eligible)
        {
            BoundSkips++;
        }

        Intervals++;
        return nextNs;
    }

    private void RecordLateness(long ns)
    {
        // A sleep that lost its core is no measure of the timer: at most a quarter of the interval, and 200 µs.
        lateness[latenessCount++ % LatenessWindow] = Math.Clamp(ns, 0, Math.Min(intervalNs / 4, 200_000));
        var n = Math.Min(latenessCount, LatenessWindow);
        var sorted = sortedLateness.AsSpan(0, n);
        lateness.AsSpan(0, n).CopyTo(sorted);
        sorted.Sort();
        latenessMedianNs = sorted[n / 2];
    }
}
