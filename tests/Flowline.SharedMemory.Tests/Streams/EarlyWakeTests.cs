using Flowline.SharedMemory.Diagnostics;
using Flowline.SharedMemory.Tests.Infrastructure;

namespace Flowline.SharedMemory.Tests.Streams;

/// <summary>
/// Early wake-ups (decision 138): a writer wakes its sleeping readers before it publishes; a woken reader
/// with no frame yet passes the wake-up on (its thread's <see cref="WaitCounters.OnWokenEarly"/>) and
/// spins for the frame, if it waits predictively (hybrid and block waits sleep again).
/// </summary>
public sealed class EarlyWakeTests : ShmTest
{
    private static readonly FrameFormat Words = new(ElementType.UInt64, 8);

    [Fact]
    public void PredictiveReaderWokenEarly_PassesTheWakeUpOnAndGetsTheFrame()
    {
        const WaitPolicy policy = WaitPolicy.Predictive;
        var stream = Own(SharedStream.Open(Ns, "early", Words, RegionMode.Create, new StreamOptions { CapacityFrames = 8 }));
        var reader = Own(stream.OpenReader<ulong>(new ReaderOptions { WaitPolicy = policy, SpinTime = TimeSpan.FromMicroseconds(20) }));
        var writer = Own(stream.OpenWriter<ulong>());
        var earlyWakesBefore = WaitCounters.EarlyWakes;
        var passedOn = 0;
        using var passed = new ManualResetEventSlim();
        var frame = new ulong[8];
        var status = ReadStatus.Timeout;
        var thread = new Thread(() =>
        {
            WaitCounters.OnWokenEarly(() =>
            {
                Interlocked.Increment(ref passedOn);
                passed.Set();
            });
            try
            {
                status = reader.ReadInto(frame, out _, Bound);
            }
            finally
            {
                WaitCounters.OnWokenEarly(null);
            }
        });
        thread.Start();

        // Wake the reader early until it has been woken early once (it may still be awake the first times),
        // then publish: the reader gets the frame, whether it was still spinning or asleep again.
        Assert.True(SpinWait.SpinUntil(() =>
        {
            writer.WakeReadersEarly();
            return passed.Wait(TimeSpan.FromMilliseconds(1));
        }, Bound), "the reader was never woken early");
        frame[0] = 42;
        writer.Write(frame);
        Assert.True(thread.Join(Bound));

        Assert.Equal(ReadStatus.Ok, status);
        Assert.Equal(42UL, frame[0]);
        Assert.True(Volatile.Read(ref passedOn) >= 1);
        Assert.True(WaitCounters.EarlyWakes > earlyWakesBefore, "the early wake-up was not counted");
    }

    [Theory]
    [InlineData(WaitPolicy.Block)]
    [InlineData(WaitPolicy.Hybrid)]
    public void BlockingAndHybridReaders_IgnoreEarlyWakeUps(WaitPolicy policy)
    {
        var stream = Own(SharedStream.Open(Ns, "block", Words, RegionMode.Create, new StreamOptions { CapacityFrames = 8 }));
        var reader = Own(stream.OpenReader<ulong>(new ReaderOptions { WaitPolicy = policy, SpinTime = TimeSpan.FromMicroseconds(20) }));
        var writer = Own(stream.OpenWriter<ulong>());
        var passedOn = 0;
        var frame = new ulong[8];
        var status = ReadStatus.Timeout;
        var thread = new Thread(() =>
        {
            WaitCounters.OnWokenEarly(() => Interlocked.Increment(ref passedOn));
            try
            {
                status = reader.ReadInto(frame, out _, Bound);
            }
            finally
            {
                WaitCounters.OnWokenEarly(null);
            }
        });
        thread.Start();
        Assert.True(SpinWait.SpinUntil(() => reader.SleepCount > 0, Bound), "the reader never slept");

        for (var i = 0; i < 20; i++)
        {
            writer.WakeReadersEarly();
            Thread.Sleep(1);
        }

        Assert.True(thread.IsAlive, "a blocking reader returned without a frame");
        writer.Write(frame);
        Assert.True(thread.Join(Bound));
        Assert.Equal(ReadStatus.Ok, status);
        Assert.Equal(0, Volatile.Read(ref passedOn));
    }

    [Fact]
    public void PacerWithAnEarlyWakeUp_CallsItOncePerIntervalAndKeepsTheSchedule()
    {
        var pacer = new Pacer(200);
        var calls = 0;
        var first = pacer.WaitNext(() => calls++);
        for (var i = 1; i < 10; i++)
        {
            var intended = pacer.WaitNext(() => calls++);
            Assert.Equal(first + (i * pacer.IntervalNs), intended);
            Assert.True(MonotonicClock.NowNs() >= intended, "WaitNext returned before the intended time");
        }

        Assert.Equal(10, calls);
        Assert.True(pacer.TimerLatenessNs >= 0);

        // Its counts (decision 161): every interval had its early wake-up (at 200 Hz the lead and the
        // lateness, at most 200 µs, stay under a tenth of 5 ms), none was skipped by the bound.
        Assert.Equal(10, pacer.Intervals);
        Assert.Equal(10, pacer.EarlyWakes);
        Assert.Equal(0, pacer.BoundSkips);
        Assert.Equal(0, pacer.Overdue);
        Assert.InRange(pacer.LateWakes, 0, pacer.EarlyWakes);
    }

    [Fact]
    public void PacerWithAnEarlyWakeUp_CallsItBeforeTheIntendedTimeItReturns_OrCountsItLate()
    {
        // 200 Hz: 5 ms intervals, so a call after the intended time (a thread that lost its core for
        // longer than the lead) is rare but possible on a loaded machine, and counted in LateWakes.
        var pacer = new Pacer(200);
        const int Waits = 20;
        var calledAt = new List<long>();
        var late = 0;
        for (var i = 0; i < Waits; i++)
        {
            var before = calledAt.Count;
            var intended = pacer.WaitNext(() => calledAt.Add(MonotonicClock.NowNs()));
            Assert.Equal(before + 1, calledAt.Count);
            if (calledAt[^1] > intended)
            {
                late++;
            }
        }

        // The pacer checks the clock before it calls the wake-up: every call it counted late was late.
        Assert.InRange(pacer.LateWakes, 0, late);
        // Calling the wake-up at or after the intended time every time would be a pacer that spins first.
        Assert.True(late < Waits, $"all {Waits} early wake-ups came after their intended time");
        Assert.Equal(Pacer.DefaultWakeLeadNs, pacer.WakeLeadNs);
    }

    [Fact]
    public void PacerFasterThanItsEarlyWakeShareAllows_SleepsToTheIntendedTime_WithoutCallingIt()
    {
        // 5 kHz: a 200 µs interval, a tenth of which (20 µs) is less than the 30 µs lead alone.
        var pacer = new Pacer(5_000);
        Assert.True(Pacer.DefaultWakeLeadNs > pacer.IntervalNs * Pacer.MaxEarlyShare);
        var calls = 0;
        for (var i = 0; i < 50; i++)
        {
            var intended = pacer.WaitNext(() => calls++);
            Assert.True(MonotonicClock.NowNs() >= intended, "WaitNext returned before the intended time");
        }

        Assert.Equal(0, calls);
        Assert.Equal(50, pacer.Intervals);
        Assert.Equal(50, pacer.BoundSkips);
        Assert.Equal(0, pacer.EarlyWakes);
        Assert.Equal(0, pacer.LateWakes);
    }

    [Fact]
    public void PacerWithoutCatchUp_CountsAnIntervalItCameBackToLateAsOverdue_WithoutAnEarlyWakeUp()
    {
        var pacer = new Pacer(200, catchUp: false);
        var calls = 0;
        pacer.WaitNext(() => calls++);
        Thread.Sleep(30); // six intervals late
        pacer.WaitNext(() => calls++);
        Assert.Equal(2, pacer.Intervals);
        Assert.Equal(calls, pacer.EarlyWakes);
        Assert.InRange(pacer.Overdue, 1, 2);
        Assert.True(pacer.Missed >= 1, $"missed {pacer.Missed}");
        Assert.Equal(pacer.Intervals, pacer.EarlyWakes + pacer.BoundSkips + pacer.Overdue);
    }

    [Fact]
    public void PacerWithoutAnEarlyWakeUp_CountsIntervalsOnly()
    {
        var pacer = new Pacer(2_000);
        for (var i = 0; i < 5; i++)
        {
            pacer.WaitNext();
        }

        Assert.Equal(5, pacer.Intervals);
        Assert.Equal(0, pacer.EarlyWakes + pacer.BoundSkips + pacer.LateWakes + pacer.Overdue);
    }
}
