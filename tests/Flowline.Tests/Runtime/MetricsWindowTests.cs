using Flowline.Runtime;
using Flowline.SharedMemory;

namespace Flowline.Tests.Runtime;

public sealed class MetricsWindowTests
{
    private static WorkerMetrics Filled(MetricsWindow window)
    {
        var metrics = default(WorkerMetrics);
        window.Fill(ref metrics);
        return metrics;
    }

    private static double Mean(IReadOnlyList<long> xs) => xs.Sum(x => (double)x) / xs.Count;

    private static double PopulationStd(IReadOnlyList<long> xs)
    {
        var mean = Mean(xs);
        return Math.Sqrt(xs.Sum(x => (x - mean) * (x - mean)) / xs.Count);
    }

    /// <summary>The nearest-rank percentile: the smallest value with at least <paramref name="q"/> of the values at or below it.</summary>
    private static long NearestRank(IReadOnlyList<long> xs, double q)
    {
        var sorted = xs.Order().ToList();
        var rank = (int)Math.Ceiling(q * sorted.Count);
        return sorted[Math.Max(rank, 1) - 1];
    }

    [Fact]
    public void Fill_BeforeAnyRecord_GivesZeros()
    {
        var metrics = Filled(new MetricsWindow());

        Assert.Equal(0, metrics.FramesProcessed);
        Assert.Equal(0, metrics.Window);
        Assert.Equal(0, metrics.AvgExecNs);
        Assert.Equal(0, metrics.JitterNs);
        Assert.Equal(0, metrics.ThroughputHz);
        Assert.Equal(0, metrics.LatencyMaxNs);
    }

    [Fact]
    public void AvgAndJitter_AreTheMeanAndPopulationStandardDeviationOfTheExecTimes()
    {
        var random = new Random(17);
        var window = new MetricsWindow();
        var exec = new List<long>();
        for (var i = 0; i < 257; i++)
        {
            var e = random.NextInt64(1_000, 2_000_000);
            exec.Add(e);
            window.Record(e, 1_000_000L * (i + 1), 0);
        }

        var metrics = Filled(window);

        Assert.Equal(257, metrics.Window);
        Assert.Equal(Mean(exec), metrics.AvgExecNs, Mean(exec) * 1e-9);
        Assert.Equal(PopulationStd(exec), metrics.JitterNs, PopulationStd(exec) * 1e-6);
        Assert.Equal(exec[^1], metrics.LastExecNs);
    }

    [Fact]
    public void Jitter_OfEqualExecTimes_IsZero()
    {
        var window = new MetricsWindow();
        for (var i = 0; i < 10; i++)
        {
            window.Record(5_000, 1_000 * (i + 1), 0);
        }

        var metrics = Filled(window);

        Assert.Equal(5_000, metrics.AvgExecNs);
        Assert.Equal(0, metrics.JitterNs);
    }

    [Fact]
    public void Window_KeepsOnlyTheLastThousandSamples()
    {
        var window = new MetricsWindow();
        var exec = new List<long>();
        var latency = new List<long>();
        var random = new Random(3);
        for (var i = 0; i < 2_500; i++)
        {
            // The first 1,500 are far larger than the rest: any of them left in the window would show.
            long e = i < 1_500 ? 1_000_000 + i : 10_000 + random.Next(5_000);
            long l = i < 1_500 ? 9_000_000_000 : 50_000 + random.Next(100_000);
            var completed = 10_000_000_000 + (i * 1_000_000L);
            exec.Add(e);
            latency.Add(l);
            window.Record(e, completed, completed - l);
        }

        var metrics = Filled(window);
        var last = exec.Skip(1_500).ToList();
        var lastLatency = latency.Skip(1_500).ToList();

        Assert.Equal(MetricsWindow.Size, metrics.Window);
        Assert.Equal(2_500, metrics.FramesProcessed);
        Assert.Equal(Mean(last), metrics.AvgExecNs, 1e-3);
        Assert.Equal(PopulationStd(last), metrics.JitterNs, PopulationStd(last) * 1e-6);
        Assert.Equal(lastLatency.Max(), metrics.LatencyMaxNs);
        Assert.Equal(NearestRank(lastLatency, 0.5), metrics.LatencyP50Ns);
        Assert.Equal(1_000, metrics.ThroughputHz, 1e-9);
    }

    [Fact]
    public void Throughput_IsSamplesMinusOneOverTheCompletionSpan()
    {
        var window = new MetricsWindow();
        long[] completed = [1_000_000_000, 1_004_000_000, 1_010_000_000, 1_011_000_000, 1_025_000_000];
        foreach (var t in completed)
        {
            window.Record(100, t, 0);
        }

        var metrics = Filled(window);

        // (5 - 1) frames over 25 ms.
        Assert.Equal(4 / 0.025, metrics.ThroughputHz, 1e-9);
        Assert.Equal(1_025_000_000, metrics.LastProgressNs);
    }

    [Fact]
    public void Throughput_OfOneSampleOrNoTimeSpan_IsZero()
    {
        var one = new MetricsWindow();
        one.Record(100, 5_000, 0);
        Assert.Equal(0, Filled(one).ThroughputHz);

        var same = new MetricsWindow();
        same.Record(100, 5_000, 0);
        same.Record(100, 5_000, 0);
        Assert.Equal(0, Filled(same).ThroughputHz);
    }

    [Fact]
    public void Throughput_AfterTheWindowWraps_UsesTheOldestCompletionStillInIt()
    {
        var window = new MetricsWindow();
        for (var i = 0; i < 1_234; i++)
        {
            // Completions every 2 ms for the first 234, every 1 ms after: only the last 1,000 count.
            var completed = i < 234 ? i * 2_000_000L : (468_000_000L + ((i - 234) * 1_000_000L));
            window.Record(10, completed, 0);
        }

        Assert.Equal(1_000, Filled(window).ThroughputHz, 1e-9);
    }

    [Fact]
    public void LatencyPercentiles_AreNearestRankOfCompletedMinusOrigin()
    {
        var window = new MetricsWindow();
        var latencies = Enumerable.Range(1, 100).Select(i => i * 1_000L).ToList();
        var shuffled = latencies.OrderBy(_ => Random.Shared.Next()).ToList();
        var completed = 50_000_000_000L;
        foreach (var l in shuffled)
        {
            completed += 1_000_000;
            window.Record(100, completed, completed - l);
        }

        var metrics = Filled(window);

        Assert.Equal(50_000, metrics.LatencyP50Ns);
        Assert.Equal(90_000, metrics.LatencyP90Ns);
        Assert.Equal(99_000, metrics.LatencyP99Ns);
        Assert.Equal(100_000, metrics.LatencyMaxNs);
    }

    [Fact]
    public void LatencyPercentiles_OfUnevenCounts_MatchADirectComputation()
    {
        var random = new Random(11);
        var window = new MetricsWindow();
        var latencies = new List<long>();
        var completed = 1_000_000_000L;
        for (var i = 0; i < 337; i++)
        {
            completed += 1_000;
            var l = random.NextInt64(1, 10_000_000);
            latencies.Add(l);
            window.Record(1, completed, completed - l);
        }

        var metrics = Filled(window);

        Assert.Equal(NearestRank(latencies, 0.50), metrics.LatencyP50Ns);
        Assert.Equal(NearestRank(latencies, 0.90), metrics.LatencyP90Ns);
        Assert.Equal(NearestRank(latencies, 0.99), metrics.LatencyP99Ns);
        Assert.Equal(latencies.Max(), metrics.LatencyMaxNs);
    }

    [Fact]
    public void Latency_WithoutAnOrigin_IsZero_AndAnOriginAfterCompletionCountsAsZero()
    {
        var window = new MetricsWindow();
        window.Record(100, 1_000_000, 0);
        window.Record(100, 2_000_000, 0);
        var metrics = Filled(window);
        Assert.Equal(0, metrics.LatencyP50Ns);
        Assert.Equal(0, metrics.LatencyMaxNs);

        var future = new MetricsWindow();
        future.Record(100, 1_000_000, 1_500_000);
        Assert.Equal(0, Filled(future).LatencyMaxNs);
    }

    [Fact]
    public void Frames_CountsEveryRecord_BeyondTheWindow()
    {
        var window = new MetricsWindow();
        for (var i = 0; i < 3_001; i++)
        {
            window.Record(i, i + 1, 0);
        }

        var metrics = Filled(window);

        Assert.Equal(3_001, window.Frames);
        Assert.Equal(3_001, metrics.FramesProcessed);
        Assert.Equal(MetricsWindow.Size, metrics.Window);
        Assert.Equal(3_000, metrics.LastExecNs);
        Assert.Equal(3_001, metrics.LastProgressNs);
    }

    [Fact]
    public void Fill_LeavesTheOtherFieldsAlone()
    {
        var window = new MetricsWindow();
        window.Record(100, 1_000, 0);
        var metrics = new WorkerMetrics { OutputFrames = 42, SkewEvents = 7, TornFrames = 3 };

        window.Fill(ref metrics);

        Assert.Equal(42, metrics.OutputFrames);
        Assert.Equal(7, metrics.SkewEvents);
        Assert.Equal(3, metrics.TornFrames);
        Assert.Equal(1, metrics.FramesProcessed);
    }
}
