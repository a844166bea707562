using BenchmarkDotNet.Attributes;
using Flowline.SharedMemory;

namespace Flowline.Benchmarks;

/// <summary>
/// The cost of the write and read paths of a stream on one thread (no second process, so no cache-line
/// transfers): what a frame costs in instructions, and that it allocates nothing.
/// </summary>
[MemoryDiagnoser]
[ShortRunJob]
public class StreamPathBenchmarks
{
    private readonly string ns = $"bdn-{Environment.ProcessId}";
    private SharedStream stream = null!;
    private StreamWriter<float> writer = null!;
    private StreamReader<float> lossless = null!;
    private StreamReader<float> latest = null!;
    private float[] source = null!;
    private float[] destination = null!;

    /// <summary>Frame size in bytes.</summary>
    [Params(64, 4096)]
    public int FrameBytes { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        stream = SharedStream.Open(ns, $"s{FrameBytes}", new FrameFormat(ElementType.Float32, FrameBytes / 4), RegionMode.Replace, new StreamOptions { CapacityFrames = 64 });
        writer = stream.OpenWriter<float>();
        lossless = stream.OpenReader<float>();
        latest = stream.OpenReader<float>(new ReaderOptions { Delivery = Delivery.Latest });
        source = new float[FrameBytes / 4];
        destination = new float[FrameBytes / 4];
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        latest.Dispose();
        lossless.Dispose();
        writer.Dispose();
        stream.Unlink();
        stream.Dispose();
    }

    /// <summary>Write (copy in) then a lossless ReadInto (copy out).</summary>
    [Benchmark(Baseline = true)]
    public ReadStatus WriteThenReadInto()
    {
        writer.Write(source);
        return lossless.ReadInto(destination);
    }

    /// <summary>Look + Publish then Look + Increment: zero-copy on both sides.</summary>
    [Benchmark]
    public bool ZeroCopyRoundTrip()
    {
        writer.Look(out var slot);
        slot[0] = 1;
        writer.Publish();
        lossless.Look(out var frame);
        destination[0] = frame[0];
        return lossless.Increment();
    }

    /// <summary>Write then a latest-delivery ReadInto (copy, then seqlock check).</summary>
    [Benchmark]
    public ReadStatus WriteThenLatestReadInto()
    {
        writer.Write(source);
        lossless.Look(out _);
        lossless.Increment();
        return latest.ReadInto(destination);
    }
}
