using HdrHistogram;
using HdrHistogram.Encoding;
using HdrHistogram.Utilities;
using Flowline.SharedMemory;

namespace Flowline.Runtime;

/// <summary>
/// The histograms a worker keeps (decision 90): the latency of each input's frames from their origin
/// timestamp, and the node's compute time, recorded into HdrHistograms (no allocation per value) and
/// encoded into its profile block whenever the worker publishes its figures.
/// </summary>
internal sealed class WorkerProfiler
{
    private readonly ProfileBlock block;
    private readonly List<(int Entry, LongHistogram Histogram)> entries = [];
    private readonly long[] published = new long[ProfileBlock.EntryCount];
    private readonly ByteBuffer buffer;
    private readonly byte[] bytes;
    private long traceFrames;
    private int traceEvery;
    private uint traceMask;

    private WorkerProfiler(ProfileBlock block)
    {
        this.block = block;
        bytes = new byte[ProfileHistograms.EncodeBufferBytes];
        buffer = ByteBuffer.Allocate(ProfileHistograms.EncodeBufferBytes);
    }

    /// <summary>Entries whose encoded histogram did not fit its place in the block (not published).</summary>
    public long Oversized { get; private set; }

    /// <summary>
    /// The profiler of the worker whose control block is <paramref name="controlName"/>, or null when the
    /// manager made no profile block for it (profiling switched off, or an older manager).
    /// </summary>
    public static WorkerProfiler? Open(string controlNamespace, string controlName, Func<IDisposable, IDisposable> own)
    {
        if (!ProfileHistograms.Enabled)
        {
            return null;
        }

        try
        {
            var block = ProfileBlock.Attach(controlNamespace, ProfileBlock.NameFor(controlName));
            own(block);
            return new WorkerProfiler(block);
        }
        catch (SharedMemoryException)
        {
            return null;
        }
    }

    /// <summary>Adds a histogram of the latency of stream <paramref name="stream"/>'s frames, read through reader entry <paramref name="readerIndex"/>; its handle.</summary>
    public LongHistogram? AddInputLatency(string stream, int readerIndex) => Add(ProfileEntryKind.InputLatency, stream, readerIndex);

    /// <summary>Adds the compute-time histogram of node <paramref name="node"/>; its handle.</summary>
    public LongHistogram? AddCompute(string node) => Add(ProfileEntryKind.Compute, node, -1);

    /// <summary>
    /// Whether this frame is traced (opt-in traces, decision 94): traces are on, not past their time limit,
    /// and this is every n-th frame. One load of a shared word while traces are off.
    /// </summary>
    public bool TraceDue(out long nowNs)
    {
        nowNs = 0;
        if (!block.TraceEnabled)
        {
            return false;
        }

        nowNs = MonotonicClock.NowNs();
        if (!block.TraceActive(nowNs, out traceEvery, out traceMask))
        {
            return false;
        }

        return traceFrames++ % traceEvery == 0;
    }

    /// <summary>Records a trace of input <paramref name="input"/>'s frame (after <see cref="TraceDue"/> said so), if the filter takes that input.</summary>
    public void Trace(int input, in FrameHeader header, long readNs, long computeNs)
    {
        if (input < 32 && (traceMask & (1u << input)) != 0)
        {
            block.WriteTrace(new TraceRecord(input, header.Sequence, header.FrameId, header.PublishTimestampNs, readNs, computeNs));
        }
    }

    /// <summary>Encodes every histogram that changed since the last call into the profile block.</summary>
    public void Publish()
    {
        foreach (var (entry, histogram) in entries)
        {
            var count = histogram.TotalCount;
            if (count == published[entry])
            {
                continue;
            }

            var length = ProfileHistograms.Encode(histogram, buffer, bytes);
            if (length > 0 && block.Publish(entry, bytes.AsSpan(0, length)))
            {
                published[entry] = count;
            }
            else
            {
                Oversized++;
            }
        }
    }

    private LongHistogram? Add(ProfileEntryKind kind, string name, int readerIndex)
    {
        if (entries.Count >= ProfileBlock.EntryCount)
        {
            return null;
        }

        var entry = entries.Count;
        var histogram = ProfileHistograms.Create();
        block.Describe(entry, kind, name, readerIndex);
        entries.Add((entry, histogram));
        return histogram;
    }
}

/// <summary>How workers and the manager agree on histograms (decision 90).</summary>
public static class ProfileHistograms
{
    /// <summary>The largest value recorded, in nanoseconds (one hour); longer values are recorded as this.</summary>
    public const long HighestNs = 3_600_000_000_000;

    /// <summary>Significant decimal digits: 2, a resolution of 1 %, which keeps a histogram at 36 KiB and its encoding small.</summary>
    public const int SignificantDigits = 2;

    /// <summary>The buffer a worker encodes into: larger than any entry of the profile block.</summary>
    internal const int EncodeBufferBytes = 64 * 1024;

    /// <summary>
    /// False when the environment variable <c>FLOWLINE_PROFILING</c> is <c>0</c> or <c>off</c>: workers then
    /// keep no histograms (stream counters stay on). Meant for measuring what profiling costs.
    /// </summary>
    public static bool Enabled { get; } = Environment.GetEnvironmentVariable("FLOWLINE_PROFILING") is not ("0" or "off" or "false");

    /// <summary>A histogram of times in nanoseconds, 1 ns to one hour.</summary>
    public static LongHistogram Create() => new(1, HighestNs, SignificantDigits);

    /// <summary>Records <paramref name="ns"/> into <paramref name="histogram"/>, clamped to the histogram's range (no allocation).</summary>
    public static void Record(LongHistogram? histogram, long ns)
    {
        histogram?.RecordValue(Math.Clamp(ns, 1, HighestNs));
    }

    /// <summary>
    /// Encodes <paramref name="histogram"/> (HdrHistogram's V2 format, uncompressed) through the reusable
    /// <paramref name="buffer"/> into <paramref name="destination"/>, without allocating; its length, or 0
    /// if it does not fit.
    /// </summary>
    public static int Encode(HistogramBase histogram, ByteBuffer buffer, byte[] destination)
    {
        ArgumentNullException.ThrowIfNull(histogram);
        ArgumentNullException.ThrowIfNull(buffer);
        ArgumentNullException.ThrowIfNull(destination);
        if (histogram.GetNeededByteBufferCapacity() > buffer.Capacity())
        {
            return 0;
        }

        buffer.Position = 0;
        var length = histogram.Encode(buffer, HistogramEncoderV2.Instance);
        if (length > destination.Length)
        {
            return 0;
        }

        // ByteBuffer copies an array it is given, and ToArray copies its whole capacity: read the bytes out one by one.
        buffer.Position = 0;
        for (var i = 0; i < length; i++)
        {
            destination[i] = buffer.Get();
        }

        return length;
    }

    /// <summary>Decodes a histogram a worker encoded (HdrHistogram's V2 format); null if the bytes are not one.</summary>
    public static HistogramBase? Decode(byte[] encoded)
    {
        ArgumentNullException.ThrowIfNull(encoded);
        try
        {
            return HistogramEncoding.DecodeFromByteBuffer(ByteBuffer.Allocate(encoded), 0);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or IndexOutOfRangeException or NotSupportedException or OverflowException)
        {
            return null;
        }
    }

    /// <summary>The summary of a histogram of nanoseconds, in microseconds; null if it is empty.</summary>
    public static HistogramSummary? Summarize(HistogramBase? histogram)
    {
        if (histogram is null || histogram.TotalCount == 0)
        {
            return null;
        }

        static double Us(double ns) => Math.Round(ns / 1000, 3);
        return new HistogramSummary(
            histogram.TotalCount,
            Us(histogram.GetValueAtPercentile(50)),
            Us(histogram.GetValueAtPercentile(90)),
            Us(histogram.GetValueAtPercentile(99)),
            Us(histogram.GetValueAtPercentile(99.9)),
            Us(histogram.GetMaxValue()),
            Us(histogram.GetMean()))
        {
            Buckets = Buckets(histogram),
        };
    }

    /// <summary>
    /// The histogram's counts in buckets bounded by powers of two in microseconds (1, 2, 4, ... µs), from the
    /// first bucket to the last non-empty one. Built from HdrHistogram's own iteration over its recorded
    /// values, with the bounds its logarithmic iterators use: a value belongs to the first bucket whose bound
    /// it does not exceed at the histogram's resolution (their lowest equivalent values compared).
    /// </summary>
    internal static IReadOnlyList<HistogramBucket> Buckets(HistogramBase histogram)
    {
        var counts = new List<long>();
        var bucket = 0;
        var boundLowest = histogram.LowestEquivalentValue(NsPerUs);
        foreach (var step in histogram.RecordedValues())
        {
            var lowest = histogram.LowestEquivalentValue(step.ValueIteratedTo);
            while (lowest > boundLowest)
            {
                bucket++;
                boundLowest = histogram.LowestEquivalentValue(NsPerUs << bucket);
            }

            while (counts.Count <= bucket)
            {
                counts.Add(0);
            }

            counts[bucket] += step.CountAddedInThisIterationStep;
        }

        return [.. counts.Select((count, i) => new HistogramBucket(1L << i, count))];
    }

    private const long NsPerUs = 1000;
}
