using Flowline.SharedMemory.Waiting;

namespace Flowline.SharedMemory.Tests.Streams;

/// <summary>
/// The estimator behind predictive waits, fed exact publish times (no clock): what it learns from
/// regular, jittered, paused and irregular streams, and the plans it makes from that.
/// </summary>
public sealed class ArrivalEstimatorTests
{
    private const long Ms = 1_000_000;
    private const long Margin = 20_000;
    private const long Cushion = 5_000;

    /// <summary>Feeds frames <paramref name="first"/>.. at the given intervals, from <paramref name="start"/> ns; returns the last publish time.</summary>
    private static long Feed(ArrivalEstimator estimator, long first, long start, IEnumerable<long> intervals)
    {
        var sequence = first;
        var time = start;
        estimator.Observe(sequence, time);
        foreach (var interval in intervals)
        {
            time += interval;
            estimator.Observe(++sequence, time);
        }

        return time;
    }

    [Fact]
    public void RegularStream_LearnsItsPeriodAndPlansAWindowAroundTheNextFrame()
    {
        var estimator = new ArrivalEstimator();
        var last = Feed(estimator, 0, 5 * Ms, Enumerable.Repeat(Ms, 20));

        Assert.Equal(Ms, estimator.PeriodNs);
        Assert.Equal(0, estimator.JitterNs);
        Assert.True(estimator.TryPlan(21, 0.03, Margin, Cushion, out var plan));
        var expected = last + Ms;
        Assert.Equal(expected - ArrivalEstimator.MinJitterNs, plan.SpinFromNs);
        Assert.Equal(expected + ArrivalEstimator.MinJitterNs, plan.CloseAtNs);
        Assert.Equal(plan.SpinFromNs - Margin, plan.WakeAtNs);
        Assert.Equal(30_000, plan.BudgetNs);
        Assert.True(plan.IsValid);
    }

    [Fact]
    public void PlanForAFrameFurtherAhead_CountsTheFramesBetween()
    {
        var estimator = new ArrivalEstimator();
        var last = Feed(estimator, 100, 0, Enumerable.Repeat(Ms, 10));

        Assert.True(estimator.TryPlan(113, 0.03, Margin, Cushion, out var plan));
        Assert.Equal(last + (3 * Ms) + ArrivalEstimator.MinJitterNs, plan.CloseAtNs);
    }

    [Fact]
    public void TooFewIntervals_GiveNoPlan()
    {
        var estimator = new ArrivalEstimator();
        Feed(estimator, 0, 0, Enumerable.Repeat(Ms, ArrivalEstimator.MinSamples - 1));

        Assert.Equal(0, estimator.PeriodNs);
        Assert.False(estimator.TryPlan(ArrivalEstimator.MinSamples, 0.03, Margin, Cushion, out var plan));
        Assert.False(plan.IsValid);
    }

    [Fact]
    public void JitteredStreamWithOneLateFrame_KeepsTheMedianAndDoesNotReset()
    {
        var random = new Random(1234);
        var intervals = Enumerable.Range(0, 40).Select(_ => Ms + random.NextInt64(-3_000, 3_001)).ToList();
        intervals[30] = 5 * Ms / 2; // one frame 1.5 ms late (below the gap factor): an outlier, not a gap
        var estimator = new ArrivalEstimator();
        Feed(estimator, 0, 0, intervals);

        Assert.InRange(estimator.PeriodNs, Ms - 3_000, Ms + 3_000);
        Assert.InRange(estimator.JitterNs, 1, 3_000);
        Assert.Equal(0, estimator.Resets);
        Assert.True(estimator.TryPlan(41, 0.03, Margin, Cushion, out var plan));
        Assert.InRange(plan.CloseAtNs - plan.SpinFromNs, 2 * ArrivalEstimator.MinJitterNs, 6 * 3_000);
    }

    [Fact]
    public void Gap_ResetsTheEstimate_ThenItIsLearntAgain()
    {
        var estimator = new ArrivalEstimator();
        var last = Feed(estimator, 0, 0, Enumerable.Repeat(Ms, 16));
        Assert.True(estimator.TryPlan(17, 0.03, Margin, Cushion, out _));

        // The writer pauses 50 ms: the interval across the pause is no sample, and nothing is predicted.
        estimator.Observe(17, last + (50 * Ms));
        Assert.Equal(1, estimator.Resets);
        Assert.Equal(0, estimator.Count);
        Assert.False(estimator.TryPlan(18, 0.03, Margin, Cushion, out _));

        // It comes back at 500 Hz: learnt from the frames after the pause only.
        Feed(estimator, 17, last + (50 * Ms), Enumerable.Repeat(2 * Ms, ArrivalEstimator.MinSamples));
        Assert.Equal(2 * Ms, estimator.PeriodNs);
        Assert.True(estimator.TryPlan(17 + ArrivalEstimator.MinSamples + 1, 0.03, Margin, Cushion, out _));
    }

    [Fact]
    public void RestartedSequence_ResetsTheEstimate()
    {
        var estimator = new ArrivalEstimator();
        var last = Feed(estimator, 0, 0, Enumerable.Repeat(Ms, 12));

        estimator.Observe(0, last + Ms); // a new writer starts over from 0
        Assert.Equal(0, estimator.Count);
        Assert.Equal(0, estimator.LastSequence);
    }

    [Fact]
    public void SkippedFrames_CountAsTheirAverageInterval()
    {
        // A latest reader sees every third frame: the interval it learns is still the frame interval.
        var estimator = new ArrivalEstimator();
        for (var i = 0; i <= 12; i++)
        {
            estimator.Observe(i * 3, i * 3 * Ms);
        }

        Assert.Equal(Ms, estimator.PeriodNs);
    }

    [Fact]
    public void IrregularStream_GivesNoPlan_SoTheWaitIsAHybridOne()
    {
        var random = new Random(99);
        var estimator = new ArrivalEstimator();
        Feed(estimator, 0, 0, Enumerable.Range(0, 64).Select(_ => random.NextInt64(200_000, 2 * Ms)));

        Assert.True(estimator.Count >= ArrivalEstimator.MinSamples);
        Assert.False(estimator.TryPlan(65, 0.03, Margin, Cushion, out var plan));
        Assert.False(plan.IsValid);
    }

    [Fact]
    public void JitterThatDoesNotFitTheBudget_GivesNoPlan_UnlessTheBudgetGrows()
    {
        // ±10 µs at 1 kHz: a window of about 60 µs, over a 3 % budget (30 µs) but within 20 % (200 µs).
        var estimator = new ArrivalEstimator();
        Feed(estimator, 0, 0, Enumerable.Range(0, 32).Select(i => Ms + (i % 2 == 0 ? 10_000 : -10_000)));

        Assert.False(estimator.TryPlan(33, 0.03, Margin, Cushion, out _));
        Assert.True(estimator.TryPlan(33, 0.2, Margin, Cushion, out var plan));
        Assert.Equal(200_000, plan.BudgetNs);
    }

    [Fact]
    public void EarliestPlan_IsTheValidOneDueFirst()
    {
        var early = new WaitPlan(100, 200, 300, 50);
        var late = new WaitPlan(1_000, 1_100, 1_200, 50);

        Assert.Equal(early, WaitPlan.Earliest(late, early));
        Assert.Equal(late, WaitPlan.Earliest(default, late));
        Assert.Equal(late, WaitPlan.Earliest(late, default));
        Assert.False(WaitPlan.Earliest(default, default).IsValid);
    }

    [Fact]
    public void TimerLateness_MarginFollowsHowLateTheTimerWakes()
    {
        var lateness = new TimerLateness(initialMeanNs: 20_000, initialDeviationNs: 5_000);
        Assert.Equal(40_000, lateness.MarginNs);
        Assert.Equal(20_000, lateness.CushionNs);

        for (var i = 0; i < 400; i++)
        {
            lateness.Record(i % 2 == 0 ? 4_000 : 6_000);
        }

        // Mean about 5 µs, deviation about 1 µs: a margin of about 9 µs, of which about 4 µs is spun.
        Assert.InRange(lateness.MeanNs, 4_500, 5_500);
        Assert.InRange(lateness.MarginNs, 8_000, 10_500);
        Assert.InRange(lateness.CushionNs, 3_000, 5_000);

        for (var i = 0; i < 400; i++)
        {
            lateness.Record(10_000_000);
        }

        Assert.Equal(TimerLateness.MaxMarginNs, lateness.MarginNs);
    }

    [Theory]
    [InlineData(0.03, 2, 2, 0.03)]
    [InlineData(0.03, 1, 2, 0.03)]
    [InlineData(0.07, 7, 2, 0.02)]
    [InlineData(0.04, 8, 1, 0.005)]
    public void SharedSpinBudget_ShrinksWhenWorkersOutnumberCores(double budget, int workers, int cores, double expected) =>
        Assert.Equal(expected, WaitTuning.SharedSpinBudget(budget, workers, cores), 9);

    [Theory]
    [InlineData(0.0)]
    [InlineData(-0.1)]
    [InlineData(1.5)]
    [InlineData(double.NaN)]
    public void SpinBudgetOutOfRange_IsRefusedWithWhatItMustBe(double budget)
    {
        var e = Assert.Throws<ArgumentException>(() => new ReaderOptions { SpinBudget = budget }.Validate());
        Assert.Contains("above 0 and at most 1", e.Message);
    }

    [Theory]
    [InlineData(WaitPolicy.Predictive, WaitPolicy.Hybrid, WaitPolicy.Predictive)]
    [InlineData(WaitPolicy.Hybrid, WaitPolicy.Predictive, WaitPolicy.Predictive)]
    [InlineData(WaitPolicy.Block, WaitPolicy.Predictive, WaitPolicy.Predictive)]
    [InlineData(WaitPolicy.Predictive, WaitPolicy.Block, WaitPolicy.Predictive)]
    [InlineData(WaitPolicy.Predictive, WaitPolicy.Spin, WaitPolicy.Spin)]
    public void WaitForSeveralInputs_IsPredictiveIfAnyInputIsAndNoneSpins(WaitPolicy first, WaitPolicy second, WaitPolicy combined)
    {
        var (policy, _) = Waiter.Combine(WaitPolicy.Block, TimeSpan.Zero, first, TimeSpan.FromMicroseconds(20));
        (policy, _) = Waiter.Combine(policy, TimeSpan.FromMicroseconds(20), second, TimeSpan.FromMicroseconds(20));
        Assert.Equal(combined, policy);
    }
}
