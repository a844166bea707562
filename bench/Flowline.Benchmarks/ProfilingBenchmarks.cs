using BenchmarkDotNet.Attributes;
using Flowline.Runtime;
using Flowline.SharedMemory;
using HdrHistogram;

namespace Flowline.Benchmarks;

/// <summary>
/// What profiling adds to a frame (decision 90): a zero-copy round trip on one thread without and with what
/// a kernel worker records per frame (one input-latency and one compute-time value into HdrHistograms; the
/// stream counters cost nothing per frame, they are kept in the wait paths), and one record alone.
/// </summary>
[MemoryDiagnoser]
[ShortRunJob]
public class ProfilingBenchmarks
{
    private readonly string ns = $"bdn-prof-{Environment.ProcessId}";
    private SharedStream stream = null!;
    private StreamWriter<float> writer = null!;
    private StreamReader<float> reader = null!;
    private LongHistogram latency = null!;
    private LongHistogram compute = null!;
    private long value;

    [GlobalSetup]
    public void Setup()
    {
        stream = SharedStream.Open(ns, "s", new FrameFormat(ElementType.Float32, 16), RegionMode.Replace, new StreamOptions { CapacityFrames = 64 });
        writer = stream.OpenWriter<float>();
        reader = stream.OpenReader<float>();
        latency = ProfileHistograms.Create();
        compute = ProfileHistograms.Create();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        reader.Dispose();
        writer.Dispose();
        stream.Unlink();
        stream.Dispose();
    }

    /// <summary>Look + Publish, then Look + Increment: no histograms.</summary>
    [Benchmark(Baseline = true)]
    public bool RoundTrip()
    {
        writer.Look(out var slot);
        slot[0] = 1;
        writer.Publish();
        reader.Look(out var frame, out _);
        var ok = frame[0] == 1;
        return reader.Increment() && ok;
    }

    /// <summary>The same, with the two clock reads a kernel worker makes per frame anyway (for its metrics window), recording nothing.</summary>
    [Benchmark]
    public bool RoundTripWithClocks()
    {
        writer.Look(out var slot);
        slot[0] = 1;
        writer.Publish();
        reader.Look(out var frame, out var header);
        var start = MonotonicClock.NowNs();
        value += start - header.OriginTimestampNs;
        var ok = frame[0] == 1;
        var result = reader.Increment() && ok;
        value += MonotonicClock.NowNs() - start;
        return result;
    }

    /// <summary>The same, recording the frame's latency and a compute time as a kernel worker does.</summary>
    [Benchmark]
    public bool RoundTripWithHistograms()
    {
        writer.Look(out var slot);
        slot[0] = 1;
        writer.Publish();
        reader.Look(out var frame, out var header);
        var start = MonotonicClock.NowNs();
        ProfileHistograms.Record(latency, start - header.OriginTimestampNs);
        var ok = frame[0] == 1;
        var result = reader.Increment() && ok;
        ProfileHistograms.Record(compute, MonotonicClock.NowNs() - start);
        return result;
    }

    /// <summary>One value recorded into an HdrHistogram (clamped to its range).</summary>
    [Benchmark]
    public void RecordOne() => ProfileHistograms.Record(latency, 1000 + (value++ & 1023));
}
