using Flowline.Runtime;
using Flowline.SharedMemory;

namespace Flowline.Tests.Runtime;

/// <summary>The trace stream's adaptive read interval (decision 146), on simulated time: no clock, no scheduler.</summary>
public sealed class TraceFollowerTests
{
    private const int Capacity = ProfileBlock.TraceCapacity;

    /// <summary>
    /// One worker writing <paramref name="perMs"/> records a millisecond into a ring of <see cref="Capacity"/>,
    /// read for <paramref name="totalMs"/> ms at the interval <paramref name="next"/> gives after each read:
    /// the records read and lost, as a ring of that size would give them.
    /// </summary>
    private static (long Read, long Lost, int Reads, TimeSpan Last) Simulate(double perMs, double totalMs, Func<TimeSpan, TimeSpan, long, TimeSpan> next)
    {
        var interval = TraceFollower.Ceiling;
        var (read, lost, reads) = (0L, 0L, 0);
        for (var t = 0.0; t < totalMs;)
        {
            t += interval.TotalMilliseconds;
            var written = (long)Math.Round(perMs * interval.TotalMilliseconds);
            read += Math.Min(written, Capacity);
            lost += Math.Max(0, written - Capacity);
            reads++;
            interval = next(interval, interval, written);
        }

        return (read, lost, reads, interval);
    }

    [Fact]
    public void AtFullRate_TheAdaptiveIntervalLosesOnlyTheFirstRead_WhereTheFixedOneLosesMostRecords()
    {
        // 150 k records a second per worker: what copy-64 unpaced writes (docs/performance.md).
        var fixedPoll = Simulate(150, 10_000, (current, _, _) => current);
        var adaptive = Simulate(150, 10_000, (current, elapsed, written) => TraceFollower.Next(current, elapsed, written, Capacity));

        Assert.True(fixedPoll.Lost > 2 * fixedPoll.Read, $"fixed 100 ms: read {fixedPoll.Read}, lost {fixedPoll.Lost}");

        // The first read (after 100 ms) overflows; the interval then drops to a quarter ring's worth, and nothing more is lost.
        Assert.Equal((150 * 100) - Capacity, adaptive.Lost);
        Assert.True(adaptive.Read > 10 * adaptive.Lost, $"adaptive: read {adaptive.Read}, lost {adaptive.Lost}");
        Assert.InRange(adaptive.Last, TraceFollower.Floor, TimeSpan.FromMilliseconds(Capacity / 4.0 / 150) + TimeSpan.FromTicks(1));
    }

    [Fact]
    public void Next_StaysWithinFloorAndCeiling_DropsAtOnce_AndBacksOffStepByStep()
    {
        var ceiling = TraceFollower.Ceiling;

        // Light traffic: stays at the ceiling.
        Assert.Equal(ceiling, TraceFollower.Next(ceiling, ceiling, 10, Capacity));
        Assert.Equal(ceiling, TraceFollower.Next(ceiling, ceiling, 0, Capacity));

        // A ring more than full in 100 ms: straight to the time a quarter of it takes (here 100 ms / 8), not halving.
        Assert.Equal(TimeSpan.FromMilliseconds(12.5), TraceFollower.Next(ceiling, ceiling, Capacity * 2, Capacity));

        // A rate no interval can keep up with: the floor, never below.
        Assert.Equal(TraceFollower.Floor, TraceFollower.Next(ceiling, ceiling, Capacity * 1000, Capacity));

        // Traffic stops: back off by doubling, up to the ceiling.
        var interval = TraceFollower.Floor;
        var steps = new List<TimeSpan>();
        while (interval < ceiling)
        {
            interval = TraceFollower.Next(interval, interval, 0, Capacity);
            steps.Add(interval);
        }

        Assert.Equal([10, 20, 40, 80, 100], steps.Select(s => s.TotalMilliseconds));

        // Lower traffic: no more than twice as late per read, even when the rate would allow the ceiling.
        Assert.Equal(TimeSpan.FromMilliseconds(20), TraceFollower.Next(TimeSpan.FromMilliseconds(10), TimeSpan.FromMilliseconds(10), 1, Capacity));

        // The interval follows the time that actually passed (a late read under load), not the one asked for.
        Assert.Equal(TimeSpan.FromMilliseconds(10), TraceFollower.Next(TimeSpan.FromMilliseconds(20), TimeSpan.FromMilliseconds(80), Capacity * 2, Capacity));
    }
}
