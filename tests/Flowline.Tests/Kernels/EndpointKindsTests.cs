using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Flowline.Documents;
using Flowline.Kernels;
using Flowline.SharedMemory;

namespace Flowline.Tests.Kernels;

/// <summary>The built-in sources and sinks, created from validated documents and run on arrays, and the endpoint I/O types.</summary>
public sealed class EndpointKindsTests
{
    private const string Streams = """
        shared_memory:
          - {name: a, shape: [4], dtype: float32}
          - {name: b, shape: [2, 2], dtype: float64}
          - {name: c, shape: [3], dtype: int16}
        """;

    private static readonly string[] FrameSetKeys =
        ["drop_probability", "generations", "jitter_us", "last_skew_us", "max_skew_us", "per_stream_drops", "per_stream_writes", "requested_rate_hz"];

    private static ISource Source(string item) => PipelineDocument.Parse($"{Streams}\nsources:\n  - {item}\n", "endpoints.yaml").CreateSource("src");

    private static ISink Sink(string item) => PipelineDocument.Parse($"{Streams}\nsinks:\n  - {item}\n", "endpoints.yaml").CreateSink("out");

    private static long[] Longs(JsonNode? array) => [.. array!.AsArray().Select(n => (long)n!)];

    // ---------------------------------------------------------------- synthetic.array

    [Fact]
    public void SyntheticArray_WritesThePattern_AndExposesItsRate()
    {
        var source = Source("{name: src, kind: synthetic.array, stream: a, parameters: {pattern: constant, constant: 1.5, rate_hz: 250}}");
        var frame = new byte[16];
        var io = new SourceIo(frame);

        Assert.True(source.Produce(io));

        Assert.True(io.WasWritten(0));
        Assert.Equal([1.5f, 1.5f, 1.5f, 1.5f], MemoryMarshal.Cast<byte, float>(frame).ToArray());
        Assert.Equal(250.0, source.RateHz);
        Assert.Null(source.Metrics());
    }

    [Fact]
    public void SyntheticArray_WithoutARate_RunsAsFastAsPossible()
    {
        Assert.Null(Source("{name: src, kind: synthetic.array, stream: a}").RateHz);
        Assert.Null(Source("{name: src, kind: synthetic.array, stream: a, parameters: {rate_hz: null}}").RateHz);
    }

    [Fact]
    public void SyntheticArray_AdvancesThePatternEveryGeneration()
    {
        var source = Source("{name: src, kind: synthetic.array, stream: b, parameters: {pattern: ramp, amplitude: 8, period: 4}}");
        var frames = new List<double[]>();
        for (var k = 0; k < 3; k++)
        {
            var frame = new byte[32];
            Assert.True(source.Produce(new SourceIo(frame)));
            frames.Add(MemoryMarshal.Cast<byte, double>(frame).ToArray());
        }

        // 8 * ((i + k) mod 4) / 4.
        Assert.Equal([0.0, 2, 4, 6], frames[0]);
        Assert.Equal([2.0, 4, 6, 0], frames[1]);
        Assert.Equal([4.0, 6, 0, 2], frames[2]);
    }

    [Fact]
    public void SyntheticArray_IntoAnIntegerStream_Saturates()
    {
        var source = Source("{name: src, kind: synthetic.array, stream: c, parameters: {pattern: constant, constant: 100000}}");
        var frame = new byte[6];

        source.Produce(new SourceIo(frame));

        Assert.Equal([short.MaxValue, short.MaxValue, short.MaxValue], MemoryMarshal.Cast<byte, short>(frame).ToArray());
    }

    [Fact]
    public void SyntheticArray_WithTheSameSeed_WritesTheSameNoise()
    {
        const string Item = "{name: src, kind: synthetic.array, stream: a, parameters: {pattern: random, seed: 12}}";
        var first = new byte[16];
        var second = new byte[16];

        Source(Item).Produce(new SourceIo(first));
        Source(Item).Produce(new SourceIo(second));

        Assert.Equal(first, second);
        Assert.NotEqual(new byte[16], first);
    }

    // ---------------------------------------------------------------- synthetic.frame_set

    [Fact]
    public void FrameSet_WithoutDrops_WritesEveryStreamEveryGeneration()
    {
        var source = Source("{name: src, kind: synthetic.frame_set, streams: [a, b], parameters: {pattern: constant, constant: 2, rate_hz: 120}}");
        for (var k = 0; k < 5; k++)
        {
            var a = new byte[16];
            var b = new byte[32];
            var io = new SourceIo(a, b);

            Assert.True(source.Produce(io));

            Assert.True(io.WasWritten(0));
            Assert.True(io.WasWritten(1));
            Assert.False(io.PerStreamFrameIds);
            Assert.All(MemoryMarshal.Cast<byte, float>(a).ToArray(), v => Assert.Equal(2f, v));
            Assert.All(MemoryMarshal.Cast<byte, double>(b).ToArray(), v => Assert.Equal(2.0, v));
        }

        var metrics = source.Metrics()!;
        Assert.Equal(5, (long)metrics["generations"]!);
        Assert.Equal([5L, 5L], Longs(metrics["per_stream_writes"]));
        Assert.Equal([0L, 0L], Longs(metrics["per_stream_drops"]));
        Assert.Equal(120, (double)metrics["requested_rate_hz"]!);
        Assert.Equal(0, (double)metrics["drop_probability"]!);
        Assert.Equal(120.0, source.RateHz);
    }

    [Fact]
    public void FrameSet_WithDropProbabilityOne_WritesNothing_AndCountsTheDrops()
    {
        var source = Source("{name: src, kind: synthetic.frame_set, streams: [a, b, c], parameters: {pattern: constant, constant: 2, drop_probability: 1}}");
        for (var k = 0; k < 4; k++)
        {
            var a = new byte[16];
            var b = new byte[32];
            var c = new byte[6];
            var io = new SourceIo(a, b, c);

            Assert.True(source.Produce(io));

            Assert.False(io.WasWritten(0));
            Assert.False(io.WasWritten(1));
            Assert.False(io.WasWritten(2));
            Assert.All(a, v => Assert.Equal(0, v));
            Assert.All(b, v => Assert.Equal(0, v));
            Assert.All(c, v => Assert.Equal(0, v));
        }

        var metrics = source.Metrics()!;
        Assert.Equal(4, (long)metrics["generations"]!);
        Assert.Equal([0L, 0L, 0L], Longs(metrics["per_stream_writes"]));
        Assert.Equal([4L, 4L, 4L], Longs(metrics["per_stream_drops"]));
        Assert.Equal(1, (double)metrics["drop_probability"]!);
        Assert.Equal(0, (double)metrics["last_skew_us"]!);
        Assert.Equal(0, (double)metrics["max_skew_us"]!);
    }

    [Fact]
    public void FrameSet_WithSomeDrops_CountsEveryStreamAsWrittenOrDropped()
    {
        var source = Source("{name: src, kind: synthetic.frame_set, streams: [a, b], parameters: {seed: 3, drop_probability: 0.5}}");
        var written = new long[2];
        for (var k = 0; k < 200; k++)
        {
            var io = new SourceIo(new byte[16], new byte[32]);
            source.Produce(io);
            written[0] += io.WasWritten(0) ? 1 : 0;
            written[1] += io.WasWritten(1) ? 1 : 0;
        }

        var metrics = source.Metrics()!;
        var writes = Longs(metrics["per_stream_writes"]);
        var drops = Longs(metrics["per_stream_drops"]);
        Assert.Equal(written, writes);
        Assert.Equal([200L, 200L], writes.Zip(drops, (w, d) => w + d));
        Assert.All(drops, d => Assert.InRange(d, 50, 150));
    }

    [Fact]
    public void FrameSet_Metrics_HaveShmpipelinesKeys()
    {
        var source = Source("{name: src, kind: synthetic.frame_set, streams: [a, b], parameters: {jitter_us: 20}}");
        source.Produce(new SourceIo(new byte[16], new byte[32]));

        var metrics = source.Metrics()!;

        Assert.Equal(FrameSetKeys, metrics.Select(p => p.Key).Order(StringComparer.Ordinal));
        Assert.Null(metrics["requested_rate_hz"]);
        Assert.Equal(20, (double)metrics["jitter_us"]!);
        var last = (double)metrics["last_skew_us"]!;
        Assert.True(last >= 0, $"last skew {last}");
        Assert.True((double)metrics["max_skew_us"]! >= last);
    }

    [Fact]
    public void FrameSet_WithJitter_SpreadsTheWritesOfAGeneration()
    {
        var source = Source("{name: src, kind: synthetic.frame_set, streams: [a, b], parameters: {jitter_us: 2000}}");
        for (var k = 0; k < 20; k++)
        {
            source.Produce(new SourceIo(new byte[16], new byte[32]));
        }

        // The second write waits up to 2 ms after the first: over 20 generations the largest gap is well above zero.
        var max = (double)source.Metrics()!["max_skew_us"]!;
        Assert.InRange(max, 100, 1_000_000);
    }

    [Fact]
    public void FrameSet_WithoutAssignFrameId_StampsEachStreamWithItsOwnSequence()
    {
        var source = Source("{name: src, kind: synthetic.frame_set, streams: [a, b], parameters: {assign_frame_id: false}}");
        var io = new SourceIo(new byte[16], new byte[32]);

        source.Produce(io);

        Assert.True(io.PerStreamFrameIds);
    }

    // ---------------------------------------------------------------- null.sink

    [Fact]
    public void NullSink_Metrics_CountTheFramesAndGiveConsumeTimePercentiles()
    {
        var sink = Sink("{name: out, kind: null.sink, stream: a}");
        var before = sink.Metrics()!;
        Assert.Equal(0, (long)before["consumed"]!);
        Assert.Equal(0, (double)before["consume_us"]!["max"]!);

        for (var i = 0; i < 25; i++)
        {
            sink.Consume(new SinkIo(new byte[16]));
        }

        var metrics = sink.Metrics()!;
        Assert.Equal(["consume_us", "consumed", "device_delay_us"], metrics.Select(p => p.Key).Order(StringComparer.Ordinal));
        Assert.Equal(25, (long)metrics["consumed"]!);
        Assert.Equal(0, (double)metrics["device_delay_us"]!);
        var consume = metrics["consume_us"]!.AsObject();
        Assert.Equal(["max", "p50", "p90", "p99", "p99_9"], consume.Select(p => p.Key).Order(StringComparer.Ordinal));
        double[] percentiles = [.. new[] { "p50", "p90", "p99", "p99_9", "max" }.Select(k => (double)consume[k]!)];
        Assert.True(percentiles[0] >= 0);
        for (var i = 1; i < percentiles.Length; i++)
        {
            Assert.True(percentiles[i] >= percentiles[i - 1], $"percentiles out of order: {string.Join(", ", percentiles)}");
        }
    }

    [Fact]
    public void NullSink_WithADeviceDelay_TakesThatLongPerFrame_AndReportsIt()
    {
        var sink = Sink("{name: out, kind: null.sink, stream: a, parameters: {device_delay_s: 0.005}}");
        for (var i = 0; i < 3; i++)
        {
            sink.Consume(new SinkIo(new byte[16]));
        }

        var metrics = sink.Metrics()!;
        Assert.Equal(5_000, (double)metrics["device_delay_us"]!, 1e-6);
        Assert.Equal(3, (long)metrics["consumed"]!);

        // Every consume waited the delay; an upper bound would only measure the machine's load.
        Assert.True((double)metrics["consume_us"]!["p50"]! >= 4_000, metrics.ToJsonString());
    }

    [Fact]
    public void NullSink_CountsBeyondItsSampleWindow()
    {
        var sink = Sink("{name: out, kind: null.sink, stream: a, parameters: {sample_window: 4}}");
        for (var i = 0; i < 10; i++)
        {
            sink.Consume(new SinkIo(new byte[16]));
        }

        Assert.Equal(10, (long)sink.Metrics()!["consumed"]!);
    }

    // ---------------------------------------------------------------- SourceIo and SinkIo

    [Fact]
    public void SourceIo_Output_MarksOnlyTheOutputsTaken_AndWritesIntoTheirMemory()
    {
        var first = new byte[8];
        var second = new byte[8];
        var io = new SourceIo(first, second);

        Assert.Equal(2, io.OutputCount);
        Assert.Equal(0, io.AuxiliaryCount);
        Assert.False(io.WasWritten(0));
        Assert.False(io.WasWritten(1));

        var slot = io.Output<float>(1);
        slot[0] = 1.25f;
        slot[1] = -2f;

        Assert.False(io.WasWritten(0));
        Assert.True(io.WasWritten(1));
        Assert.Equal(2, slot.Length);
        Assert.Equal([1.25f, -2f], MemoryMarshal.Cast<byte, float>(second).ToArray());
        Assert.Equal(new byte[8], first);
        Assert.Equal(8, io.Output<byte>(1).Length);
    }

    [Fact]
    public void SourceIo_FromTheTestConstructor_StartsAtGenerationZeroWithDefaultStamps()
    {
        var io = new SourceIo(new byte[4]);

        Assert.Equal(0, io.Generation);
        Assert.Null(io.FrameId);
        Assert.Equal(0, io.OriginTimestampNs);
        Assert.False(io.PerStreamFrameIds);
        Assert.False(io.Stopping.IsCancellationRequested);
        Assert.False(io.Wait(TimeSpan.Zero));

        io.FrameId = 77;
        io.OriginTimestampNs = 123;
        Assert.Equal(77UL, io.FrameId);
        Assert.Equal(123, io.OriginTimestampNs);
    }

    [Fact]
    public void SourceIo_WithNullOutputs_Throws() =>
        Assert.Throws<ArgumentNullException>(() => new SourceIo(null!));

    [Fact]
    public void SinkIo_GivesTheInputAndHeader_AndLazilyTakesFeedbackOutputs()
    {
        var input = MemoryMarshal.AsBytes(new[] { 1f, 2f, 3f, 4f }.AsSpan()).ToArray();
        var feedback = new byte[8];
        var header = new FrameHeader(5, 99, 1_000, 900);
        var io = new SinkIo(input, header, feedback);

        Assert.Equal([1f, 2f, 3f, 4f], io.Input<float>().ToArray());
        Assert.Equal(header, io.InputHeader);
        Assert.Equal(1, io.OutputCount);
        Assert.False(io.WasWritten(0));

        io.Output<int>()[1] = 42;

        Assert.True(io.WasWritten(0));
        Assert.Equal([0, 42], MemoryMarshal.Cast<byte, int>(feedback).ToArray());
    }
}
