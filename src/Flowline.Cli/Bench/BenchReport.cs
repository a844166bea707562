using System.Text.Json;
using System.Text.Json.Serialization;

namespace Flowline.Cli.Bench;

/// <summary>How <c>flowline bench streams</c> runs.</summary>
/// <param name="Quick">About ten times fewer samples.</param>
/// <param name="Pin">Pin writer and reader to CPUs 0 and 1.</param>
/// <param name="Only">The sections to run (limits, latency, throughput, idle); empty for all.</param>
internal sealed record StreamBenchOptions(bool Quick, bool Pin, IReadOnlyList<string> Only)
{
    /// <summary>The sections there are.</summary>
    public static readonly string[] Sections = ["limits", "latency", "throughput", "large", "idle"];

    public bool Runs(string section) => Only.Count == 0 || Only.Contains(section, StringComparer.Ordinal);
}

/// <summary>Percentiles of a set of samples, in nanoseconds (nearest rank).</summary>
internal sealed record LatencySummary(int Samples, double MeanNs, long P50Ns, long P90Ns, long P99Ns, long P999Ns, long MaxNs)
{
    public static LatencySummary Of(Span<long> samples)
    {
        if (samples.Length == 0)
        {
            return new LatencySummary(0, 0, 0, 0, 0, 0, 0);
        }

        samples.Sort();
        double sum = 0;
        foreach (var s in samples)
        {
            sum += s;
        }

        return new LatencySummary(
            samples.Length,
            sum / samples.Length,
            samples[Rank(0.50, samples.Length)],
            samples[Rank(0.90, samples.Length)],
            samples[Rank(0.99, samples.Length)],
            samples[Rank(0.999, samples.Length)],
            samples[^1]);
    }

    private static int Rank(double quantile, int count) => Math.Clamp((int)Math.Ceiling(quantile * count) - 1, 0, count - 1);
}

/// <summary>The machine the benchmark ran on.</summary>
/// <param name="Cpu">The CPU model.</param>
/// <param name="LogicalCpus">CPUs the runtime sees.</param>
/// <param name="Kernel">The Linux release.</param>
/// <param name="Runtime">The .NET runtime.</param>
/// <param name="Pinned">True if writer and reader were pinned to CPUs 0 and 1.</param>
/// <param name="StealPercent">CPU time the hypervisor took from this machine's CPUs during the run (from /proc/stat): latency tails follow it.</param>
internal sealed record MachineInfo(string Cpu, int LogicalCpus, string Kernel, string Runtime, bool Pinned, double StealPercent);

/// <summary>The physical limits, measured in the same run.</summary>
/// <param name="SpinPingPongOneWay">Half the round trip of a cache line bounced between two spinning processes.</param>
/// <param name="FutexPingPongSameCpuOneWay">Half the round trip of a futex wake-up bounced between two processes on one CPU.</param>
/// <param name="FutexPingPongCrossCpuOneWay">The same with the processes on two CPUs (a wake-up crosses CPUs).</param>
/// <param name="FutexWakeOneWay">How late a process sleeping on a futex wakes after a wake sent at <paramref name="FutexWakeRateHz"/>, unpinned.</param>
/// <param name="FutexWakeRateHz">The rate of those wakes.</param>
/// <param name="MemcpyCacheBytesPerSecond">Single-thread memcpy of 1 MiB blocks (cache-resident).</param>
/// <param name="MemcpyMemoryBytesPerSecond">Single-thread memcpy of 64 MiB blocks (main memory).</param>
internal sealed record LimitsReport(
    LatencySummary SpinPingPongOneWay,
    LatencySummary FutexPingPongSameCpuOneWay,
    LatencySummary FutexPingPongCrossCpuOneWay,
    LatencySummary FutexWakeOneWay,
    double FutexWakeRateHz,
    double MemcpyCacheBytesPerSecond,
    double MemcpyMemoryBytesPerSecond);

/// <summary>One-way latency of 64-byte frames with one wait policy at one rate.</summary>
internal sealed record LatencyCase(string Policy, double RateHz, LatencySummary OneWay);

/// <summary>Frames per second and bytes per second of one transfer mode.</summary>
internal sealed record ThroughputCase(
    string Name,
    int FrameBytes,
    string Writer,
    string Reader,
    int CapacityFrames,
    long Frames,
    double FramesPerSecond,
    double BytesPerSecond,
    double ReaderSleepsPerMillionFrames);

/// <summary>CPU used by a reader waiting on a stream nobody writes to.</summary>
internal sealed record IdleCase(string Policy, double Seconds, double ProcessCpuPercent, double WaitingThreadCpuPercent, long WaitingThreadSleeps);

/// <summary>Everything <c>flowline bench streams</c> measured.</summary>
internal sealed record StreamBenchReport(
    string Command,
    DateTimeOffset Timestamp,
    MachineInfo Machine,
    LimitsReport? Limits,
    IReadOnlyList<LatencyCase> Latency,
    IReadOnlyList<ThroughputCase> Throughput,
    IReadOnlyList<IdleCase> IdleCpu);

/// <summary>What a benchmark peer prints back on its result line.</summary>
internal sealed record PeerResult(LatencySummary? Latency, long Frames, double Seconds, long Sleeps, double ProcessCpuSeconds, double ThreadCpuSeconds);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = true)]
[JsonSerializable(typeof(StreamBenchReport))]
[JsonSerializable(typeof(PeerResult))]
[JsonSerializable(typeof(ControlBenchReport))]
[JsonSerializable(typeof(SoakReport))]
internal sealed partial class BenchJsonContext : JsonSerializerContext;

/// <summary>JSON of benchmark reports: snake_case, like every Flowline wire format.</summary>
internal static class BenchJson
{
    private static readonly BenchJsonContext Compact = new(new JsonSerializerOptions(BenchJsonContext.Default.Options) { WriteIndented = false });

    public static string Serialize(StreamBenchReport report) => JsonSerializer.Serialize(report, BenchJsonContext.Default.StreamBenchReport);

    public static string Serialize(ControlBenchReport report) => JsonSerializer.Serialize(report, BenchJsonContext.Default.ControlBenchReport);

    public static string Serialize(SoakReport report) => JsonSerializer.Serialize(report, BenchJsonContext.Default.SoakReport);

    public static string SerializeLine(PeerResult result) => JsonSerializer.Serialize(result, Compact.PeerResult);

    public static PeerResult ParsePeer(string json) =>
        JsonSerializer.Deserialize(json, BenchJsonContext.Default.PeerResult) ?? throw new InvalidOperationException("empty peer result");
}
