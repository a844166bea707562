using System.Diagnostics;
using Flowline.SharedMemory.Diagnostics;

namespace Flowline.SharedMemory.Tests.Diagnostics;

/// <summary>
/// The pacer at 10 Hz (100 ms intervals): wide enough that the timing bounds below hold on a loaded
/// two-core machine, where a thread can be late by tens of milliseconds.
/// </summary>
public sealed class PacerTests
{
    private const double RateHz = 10;
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(100);

    [Theory]
    [InlineData(0.0)]
    [InlineData(-1.0)]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    [InlineData(double.NegativeInfinity)]
    public void Constructor_WithARateThatIsNotPositiveAndFinite_Throws(double rateHz)
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new Pacer(rateHz));
        Assert.Equal("rateHz", error.ParamName);
    }

    [Theory]
    [InlineData(100.0, 10_000_000L)]
    [InlineData(0.5, 2_000_000_000L)]
    [InlineData(1e12, 1L)]
    public void IntervalNs_IsOneOverTheRate_AtLeastOneNanosecond(double rateHz, long expected) =>
        Assert.Equal(expected, new Pacer(rateHz).IntervalNs);

    [Fact]
    public void WaitNext_OnTime_WaitsAboutOneIntervalAndReturnsTheIntendedTime()
    {
        var pacer = new Pacer(RateHz);
        var start = MonotonicClock.NowNs();

        var first = pacer.WaitNext();
        var second = pacer.WaitNext();
        var end = MonotonicClock.NowNs();

        Assert.Equal(pacer.IntervalNs, second - first);
        Assert.True(end >= second, "WaitNext returned before the intended time");
        Assert.InRange(end - start, 2 * pacer.IntervalNs - 5_000_000, 10 * pacer.IntervalNs);
        Assert.Equal(0, pacer.Missed);
    }

    [Fact]
    public void WaitNext_WithoutCatchUp_AfterALateCaller_ReturnsAtOnceCountsMissedAndDoesNotBurst()
    {
        var pacer = new Pacer(RateHz, catchUp: false);
        pacer.WaitNext();
        Thread.Sleep(5 * Interval);

        var late = Stopwatch.StartNew();
        var resumed = pacer.WaitNext();
        var lateWait = late.Elapsed;

        // Five intervals slept: the deadlines after the one served late were passed by.
        Assert.True(lateWait < Interval / 2, $"the late wait took {lateWait}");
        Assert.InRange(pacer.Missed, 4, 12);

        // The schedule restarts from the late time: the next three take three intervals again.
        var missed = pacer.Missed;
        var times = new[] { pacer.WaitNext(), pacer.WaitNext(), pacer.WaitNext() };
        var after = MonotonicClock.NowNs();
        Assert.True(after - resumed >= 3 * pacer.IntervalNs, $"three waits after the late one ended {(after - resumed) / 1e6} ms later");
        Assert.True(times[0] - resumed >= pacer.IntervalNs);
        Assert.True(times[1] - times[0] >= pacer.IntervalNs);
        Assert.True(times[2] - times[1] >= pacer.IntervalNs);
        Assert.True(pacer.Missed - missed <= 2, $"missed {pacer.Missed - missed} more while keeping pace");
    }

    [Fact]
    public void WaitNext_WithCatchUp_KeepsTheScheduleByReturningAtOnceUntilItIsBackOnTime()
    {
        var pacer = new Pacer(RateHz, catchUp: true);
        var first = pacer.WaitNext();
        Thread.Sleep(10 * Interval);

        var watch = Stopwatch.StartNew();
        var times = new long[5];
        for (var i = 0; i < times.Length; i++)
        {
            times[i] = pacer.WaitNext();
        }

        // Five intended times already past: paced, they would have taken 500 ms.
        Assert.True(watch.Elapsed < 3 * Interval, $"five overdue waits took {watch.Elapsed}");
        for (var i = 0; i < times.Length; i++)
        {
            Assert.Equal(first + ((i + 1) * pacer.IntervalNs), times[i]);
        }

        Assert.Equal(0, pacer.Missed);
    }

    [Fact]
    public void Reset_RestartsTheScheduleFromNow()
    {
        var pacer = new Pacer(RateHz, catchUp: true);
        pacer.WaitNext();
        Thread.Sleep(5 * Interval);

        pacer.Reset();
        var before = MonotonicClock.NowNs();
        var next = pacer.WaitNext();

        Assert.InRange(next - before, 0, pacer.IntervalNs);
        Assert.True(MonotonicClock.NowNs() >= next);
    }

    [Fact]
    public void WaitNext_WhenCancelled_ThrowsPromptlyEvenAtHalfAHertz()
    {
        var pacer = new Pacer(0.5);
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(50));

        var watch = Stopwatch.StartNew();
        Assert.ThrowsAny<OperationCanceledException>(() => pacer.WaitNext(cts.Token));

        // The promise is within 50 ms of the cancellation; the interval is 2 s.
        Assert.True(watch.Elapsed < TimeSpan.FromMilliseconds(600), $"cancellation took {watch.Elapsed}");
    }

    [Fact]
    public void WaitNext_WithAnAlreadyCancelledToken_Throws()
    {
        var pacer = new Pacer(0.5);

        var watch = Stopwatch.StartNew();
        Assert.ThrowsAny<OperationCanceledException>(() => pacer.WaitNext(new CancellationToken(canceled: true)));
        Assert.True(watch.Elapsed < TimeSpan.FromMilliseconds(500), $"took {watch.Elapsed}");
    }

    /// <summary>
    /// Below about 1.1e-10 Hz the interval in nanoseconds would overflow the clock, and every wait would
    /// return at once: such rates are refused, from <see cref="Pacer.MinRateHz"/> down.
    /// </summary>
    [Fact]
    public void Constructor_RefusesRatesTooLowForItsClock()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new Pacer(1e-11));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Pacer(Pacer.MinRateHz / 2));
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
        Assert.ThrowsAny<OperationCanceledException>(() => new Pacer(Pacer.MinRateHz).WaitNext(cts.Token));
    }

    [Fact]
    public void WaitNext_Spinning_AlsoWaitsForTheIntendedTime()
    {
        var pacer = new Pacer(50, sleep: false);
        var start = MonotonicClock.NowNs();

        var first = pacer.WaitNext();

        Assert.True(MonotonicClock.NowNs() >= first);
        Assert.InRange(first - start, pacer.IntervalNs - 1_000_000, pacer.IntervalNs + 1_000_000);
    }
}
