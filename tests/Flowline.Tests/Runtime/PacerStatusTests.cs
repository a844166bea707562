using Flowline.Runtime;

namespace Flowline.Tests.Runtime;

/// <summary>A paced source reports its pacer's figures in its status (decision 161): written by the worker into its control block, read by the manager.</summary>
public sealed class PacerStatusTests : RuntimeTest
{
    /// <summary><see cref="PipelineManagerTests.CopyPipeline"/> with its source at <paramref name="rateHz"/>.</summary>
    private static string Pipeline(double rateHz) =>
        PipelineManagerTests.CopyPipeline.Replace("rate_hz: 500,", FormattableString.Invariant($"rate_hz: {rateHz},"), StringComparison.Ordinal);

    private static PacerFigures? PacerOf(PipelineManager manager) => manager.Status().Sources["camera"].Pacer;

    [Fact]
    public void PacedSource_ReportsItsEarlyWakeUps_AndTheirCountsAddUpToItsIntervals()
    {
        var manager = Manager(Pipeline(400));
        manager.Build();
        manager.Start();
        WaitUntil(() => PacerOf(manager) is { Intervals: > 100 }, "the source's pacer reports 100 intervals");

        var status = manager.Status();
        var pacer = status.Sources["camera"].Pacer!;
        Assert.Equal(2_500, pacer.IntervalUs);
        Assert.Equal(30, pacer.WakeLeadUs);
        Assert.Equal(0.1, pacer.MaxEarlyShare);
        // One snapshot of the worker's counters: every interval had an early wake-up, was skipped by the
        // bound, or was come back to late.
        Assert.Equal(pacer.Intervals, pacer.EarlyWakes + pacer.BoundSkips + pacer.Overdue);
        // At 400 Hz the lead (30 µs) and the learnt lateness (at most 200 µs) stay within a tenth of 2.5 ms.
        Assert.Equal(0, pacer.BoundSkips);
        Assert.True(pacer.EarlyWakes > 0, $"no early wake-up in {pacer.Intervals} intervals");
        Assert.InRange(pacer.LateWakes, 0, pacer.EarlyWakes);
        Assert.InRange(pacer.TimerLatenessUs, 0, 200);
        Assert.Equal(status.Sources["camera"].MissedWrites, pacer.Missed);

        // On the wire, under the source (absent for kernels and sinks).
        var wire = status.Json();
        var json = wire["sources"]!["camera"]!["pacer"]!;
        Assert.Equal(pacer.Intervals, (long)json["intervals"]!);
        Assert.Equal(pacer.EarlyWakes, (long)json["early_wakes"]!);
        foreach (var key in new[] { "interval_us", "wake_lead_us", "max_early_share", "bound_skips", "late_wakes", "overdue", "missed", "timer_lateness_us" })
        {
            Assert.NotNull(json[key]);
        }

        Assert.Null(wire["workers"]!["copy"]!["pacer"]);
        Assert.Null(wire["sinks"]!["sink"]!["pacer"]);

        // Counted since the worker started: a pause and a resume do not start them again.
        manager.Pause();
        var paused = PacerOf(manager)!;
        manager.Resume();
        WaitUntil(() => PacerOf(manager)!.Intervals > paused.Intervals + 20, "the source paces again after the pause");
        var resumed = PacerOf(manager)!;
        Assert.True(resumed.EarlyWakes >= paused.EarlyWakes);
        Assert.Equal(resumed.Intervals, resumed.EarlyWakes + resumed.BoundSkips + resumed.Overdue);
    }

    [Fact]
    public void SourceFasterThanTheEarlyWakeShare_ReportsItsIntervalsAsSkippedByTheBound_AndGivesNone()
    {
        // 20 kHz: a tenth of the 50 µs interval is less than the 30 µs lead alone.
        var manager = Manager(Pipeline(20_000));
        manager.Build();
        manager.Start();
        WaitUntil(() => PacerOf(manager) is { Intervals: > 1_000 }, "the source's pacer reports 1,000 intervals");

        var pacer = PacerOf(manager)!;
        Assert.Equal(50, pacer.IntervalUs);
        Assert.Equal(0, pacer.EarlyWakes);
        Assert.Equal(0, pacer.LateWakes);
        Assert.True(pacer.BoundSkips > 0, $"no interval skipped by the bound in {pacer.Intervals}");
        Assert.Equal(pacer.Intervals, pacer.BoundSkips + pacer.Overdue);
    }

    [Fact]
    public void SourceWithoutARate_HasNoPacer()
    {
        var manager = Manager(Pipeline(400).Replace("rate_hz: 400, ", "", StringComparison.Ordinal));
        manager.Build();
        manager.Start();
        WaitUntil(() => Frames(manager, "camera") > 100, "the unpaced source writes");
        Assert.Null(PacerOf(manager));
        Assert.Null(manager.Status().Json()["sources"]!["camera"]!["pacer"]);
    }
}
