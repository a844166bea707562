using System.Diagnostics;
using Flowline.SharedMemory.Tests.Infrastructure;

namespace Flowline.SharedMemory.Tests.Streams;

/// <summary>
/// What every reader must do, whatever its delivery and wait policy. Each concrete class below runs
/// the whole suite for one combination.
/// </summary>
public abstract class StreamContractTests(Delivery delivery, WaitPolicy policy) : ShmTest
{
    private static readonly FrameFormat Format = new(ElementType.Float32, 4, 4);

    protected Delivery Delivery { get; } = delivery;

    protected WaitPolicy Policy { get; } = policy;

    protected SharedStream NewStream(int capacity = 8, FrameFormat? format = null) =>
        Own(SharedStream.Open(Ns, "s", format ?? Format, RegionMode.Create, new StreamOptions { CapacityFrames = capacity }));

    protected StreamReader<T> NewReader<T>(SharedStream stream)
        where T : unmanaged =>
        Own(stream.OpenReader<T>(new ReaderOptions { Delivery = Delivery, WaitPolicy = Policy }));

    protected StreamWriter<T> NewWriter<T>(SharedStream stream)
        where T : unmanaged =>
        Own(stream.OpenWriter<T>(new WriterOptions { WaitPolicy = Policy }));

    protected static float[] FrameOf(float value) => Enumerable.Repeat(value, 16).ToArray();

    [Fact]
    public void ReadInto_AfterWrite_ReturnsTheFrameAndItsHeader()
    {
        var stream = NewStream();
        var reader = NewReader<float>(stream);
        var writer = NewWriter<float>(stream);
        var before = MonotonicClock.NowNs();

        Assert.Equal(WriteStatus.Ok, writer.Write(FrameOf(7f)));

        var destination = new float[16];
        Assert.Equal(ReadStatus.Ok, reader.ReadInto(destination, out var header, Bound));
        Assert.All(destination, v => Assert.Equal(7f, v));
        Assert.Equal(0, header.Sequence);
        Assert.Equal(0UL, header.FrameId);
        Assert.InRange(header.PublishTimestampNs, before, MonotonicClock.NowNs());
        Assert.Equal(header.PublishTimestampNs, header.OriginTimestampNs);
        Assert.Equal(1, reader.FramesRead);
        Assert.Equal(1, reader.Position);
    }

    [Fact]
    public void Write_WithStamp_CarriesFrameIdAndOriginToTheReader()
    {
        var stream = NewStream();
        var reader = NewReader<float>(stream);
        var writer = NewWriter<float>(stream);
        var origin = MonotonicClock.NowNs() - 5_000;

        writer.Write(FrameOf(1f), new FrameStamp(42, origin));

        Assert.Equal(ReadStatus.Ok, reader.Read(out var frame, out var header, Bound));
        Assert.Equal(16, frame.Length);
        Assert.Equal(42UL, header.FrameId);
        Assert.Equal(origin, header.OriginTimestampNs);
        Assert.Equal(header, header with { });
        Assert.Equal(new FrameStamp(42, origin), FrameStamp.From(header));
    }

    [Fact]
    public void ReadInto_OnAnEmptyStreamWithZeroTimeout_ReturnsTimeoutAtOnce()
    {
        var stream = NewStream();
        var reader = NewReader<float>(stream);
        NewWriter<float>(stream);

        var watch = Stopwatch.StartNew();
        Assert.Equal(ReadStatus.Timeout, reader.ReadInto(new float[16], TimeSpan.Zero));
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(1), $"a zero-timeout read took {watch.Elapsed}");
    }

    [Fact]
    public void ReadInto_OnAnEmptyStream_WaitsForTheTimeoutThenReturnsTimeout()
    {
        var stream = NewStream();
        var reader = NewReader<float>(stream);
        NewWriter<float>(stream);

        var watch = Stopwatch.StartNew();
        Assert.Equal(ReadStatus.Timeout, reader.ReadInto(new float[16], TimeSpan.FromMilliseconds(150)));
        Assert.InRange(watch.Elapsed, TimeSpan.FromMilliseconds(140), TimeSpan.FromSeconds(10));
    }

    [Fact]
    public void ReadInto_WhenCancelled_ThrowsOperationCanceledPromptly()
    {
        var stream = NewStream();
        var reader = NewReader<float>(stream);
        NewWriter<float>(stream);
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));

        var watch = Stopwatch.StartNew();
        Assert.ThrowsAny<OperationCanceledException>(() => reader.ReadInto(new float[16], Bound, cts.Token));
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"cancellation took {watch.Elapsed}");
    }

    [Fact]
    public void ReadInto_WithAnAlreadyCancelledToken_Throws()
    {
        var stream = NewStream();
        var reader = NewReader<float>(stream);
        Assert.ThrowsAny<OperationCanceledException>(() => reader.ReadInto(new float[16], Bound, new CancellationToken(canceled: true)));
    }

    [Fact]
    public void ReadInto_WhileWaiting_WakesWhenAnotherThreadWrites()
    {
        var stream = NewStream();
        var reader = NewReader<float>(stream);
        var writer = NewWriter<float>(stream);
        var writerThread = new Thread(() =>
        {
            Thread.Sleep(200);
            writer.Write(FrameOf(3f));
        });
        writerThread.Start();

        var destination = new float[16];
        Assert.Equal(ReadStatus.Ok, reader.ReadInto(destination, Bound));
        Assert.Equal(3f, destination[0]);
        Assert.True(writerThread.Join(Bound));
    }

    [Fact]
    public void Look_GivesTheFrameInPlace_AndIncrementConsumesIt()
    {
        var stream = NewStream();
        var reader = NewReader<float>(stream);
        var writer = NewWriter<float>(stream);
        writer.Write(FrameOf(5f));

        Assert.Equal(ReadStatus.Ok, reader.Look(out var frame, out var header, Bound));
        Assert.Equal(16, frame.Length);
        Assert.Equal(5f, frame[15]);
        Assert.Equal(0, header.Sequence);
        Assert.True(reader.Increment());
        Assert.Equal(1, reader.Position);
        Assert.Equal(ReadStatus.Timeout, reader.Look(out _, TimeSpan.Zero));
    }

    [Fact]
    public void WriterLook_FillsTheSlotInPlace_AndPublishMakesItVisible()
    {
        var stream = NewStream();
        var reader = NewReader<float>(stream);
        var writer = NewWriter<float>(stream);

        Assert.Equal(WriteStatus.Ok, writer.Look(out var slot));
        slot.Fill(9f);
        Assert.Equal(ReadStatus.Timeout, reader.ReadInto(new float[16], TimeSpan.Zero));
        writer.Publish(new FrameStamp(99, 0));

        var destination = new float[16];
        Assert.Equal(ReadStatus.Ok, reader.ReadInto(destination, out var header, Bound));
        Assert.All(destination, v => Assert.Equal(9f, v));
        Assert.Equal(99UL, header.FrameId);
    }

    [Fact]
    public void Look_NeverFailsAtTheRingsEnd()
    {
        var stream = NewStream(capacity: 4);
        var reader = NewReader<float>(stream);
        var writer = NewWriter<float>(stream);
        for (var i = 0; i < 4 * 5; i++)
        {
            writer.Write(FrameOf(i));
            Assert.Equal(ReadStatus.Ok, reader.Look(out var frame, out var header, Bound));
            Assert.Equal(i, header.Sequence);
            Assert.Equal((float)i, frame[0]);
            Assert.Equal((float)i, frame[^1]);
            Assert.True(reader.Increment());
        }
    }

    [Fact]
    public void Close_LetsReadersDrainThenReportsEndOfStream()
    {
        var stream = NewStream();
        var reader = NewReader<float>(stream);
        var writer = NewWriter<float>(stream);
        writer.Write(FrameOf(1f));
        writer.Close();

        Assert.Equal(ReadStatus.Ok, reader.ReadInto(new float[16], Bound));
        Assert.Equal(ReadStatus.EndOfStream, reader.ReadInto(new float[16], Bound));
        Assert.Equal(ReadStatus.EndOfStream, reader.WaitForFrame(Bound));
        Assert.Throws<InvalidOperationException>(() => writer.Write(FrameOf(2f)));
    }

    [Fact]
    public void Close_WakesASleepingReader()
    {
        var stream = NewStream();
        var reader = NewReader<float>(stream);
        var writer = NewWriter<float>(stream);
        var closer = new Thread(() =>
        {
            Thread.Sleep(200);
            writer.Close();
        });
        closer.Start();

        var watch = Stopwatch.StartNew();
        Assert.Equal(ReadStatus.EndOfStream, reader.ReadInto(new float[16], Bound));
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10));
        Assert.True(closer.Join(Bound));
    }

    [Fact]
    public void WriterDisposedWithoutClose_IsReportedAsWriterGoneAfterTheDrain()
    {
        var stream = NewStream();
        var reader = NewReader<float>(stream);
        var writer = stream.OpenWriter<float>();
        writer.Write(FrameOf(1f));
        writer.Dispose();

        Assert.Equal(ReadStatus.Ok, reader.ReadInto(new float[16], Bound));
        Assert.Equal(ReadStatus.WriterGone, reader.ReadInto(new float[16], Bound));
    }

    [Fact]
    public void NewWriter_AfterClose_ReopensTheStreamWhereItStopped()
    {
        var stream = NewStream();
        var reader = NewReader<float>(stream);
        using (var first = stream.OpenWriter<float>())
        {
            first.Write(FrameOf(1f));
            first.Close();
        }

        Assert.Equal(ReadStatus.Ok, reader.ReadInto(new float[16], Bound));
        Assert.Equal(ReadStatus.EndOfStream, reader.ReadInto(new float[16], TimeSpan.Zero));

        var second = NewWriter<float>(stream);
        Assert.Equal(1, second.Position);
        second.Write(FrameOf(2f));
        Assert.Equal(ReadStatus.Ok, reader.ReadInto(new float[16], out var header, Bound));
        Assert.Equal(1, header.Sequence);
        Assert.Equal(2, stream.GetStatistics().WriterEpoch);
    }

    [Fact]
    public void OpenWriter_WhileALiveWriterIsAttached_Throws()
    {
        var stream = NewStream();
        NewWriter<float>(stream);
        var error = Assert.Throws<InvalidOperationException>(() => stream.OpenWriter<float>());
        Assert.Contains("already has a writer", error.Message, StringComparison.Ordinal);
        Assert.Contains($"pid {Environment.ProcessId}", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void OpenReader_WithTheWrongElementType_ThrowsNamingBothTypes()
    {
        var stream = NewStream();
        var error = Assert.Throws<ArgumentException>(() => stream.OpenReader<double>());
        Assert.Contains("float32", error.Message, StringComparison.Ordinal);
        Assert.Contains("Double", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ReadInto_AsRawBytes_GivesTheFramesBytes()
    {
        var stream = NewStream();
        var reader = NewReader<byte>(stream);
        var writer = NewWriter<float>(stream);
        writer.Write(FrameOf(1f));

        var bytes = new byte[64];
        Assert.Equal(64, reader.FrameLength);
        Assert.Equal(ReadStatus.Ok, reader.ReadInto(bytes, Bound));
        Assert.Equal(1f, BitConverter.ToSingle(bytes, 60));
    }

    [Fact]
    public void ReadAndWrite_WithSpansOfTheWrongLength_ThrowArgumentException()
    {
        var stream = NewStream();
        var reader = NewReader<float>(stream);
        var writer = NewWriter<float>(stream);

        var write = Assert.Throws<ArgumentException>(() => writer.Write(new float[15]));
        Assert.Contains("15", write.Message, StringComparison.Ordinal);
        Assert.Contains("float32[4, 4]", write.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => reader.ReadInto(new float[17], TimeSpan.Zero));
    }

    [Fact]
    public void LookTwiceWithoutIncrement_Throws_AndIncrementWithoutLookThrows()
    {
        var stream = NewStream();
        var reader = NewReader<float>(stream);
        var writer = NewWriter<float>(stream);
        writer.Write(FrameOf(1f));
        writer.Write(FrameOf(2f));

        Assert.Equal(ReadStatus.Ok, reader.Look(out _, Bound));
        Assert.Throws<InvalidOperationException>(() => reader.Look(out _, Bound));
        Assert.Throws<InvalidOperationException>(() => reader.ReadInto(new float[16], Bound));
        reader.Increment();
        Assert.Throws<InvalidOperationException>(() => reader.Increment());
        Assert.Throws<InvalidOperationException>(() => writer.Publish());
    }

    [Fact]
    public void DisposedEndpoints_ThrowObjectDisposed()
    {
        var stream = NewStream();
        var reader = stream.OpenReader<float>();
        var writer = stream.OpenWriter<float>();
        reader.Dispose();
        writer.Dispose();
        reader.Dispose();

        Assert.Throws<ObjectDisposedException>(() => reader.ReadInto(new float[16], TimeSpan.Zero));
        Assert.Throws<ObjectDisposedException>(() => writer.Write(FrameOf(1f)));
        Assert.Empty(stream.GetStatistics().Readers);
    }

    [Fact]
    public void WriteAndRead_InSteadyState_AllocateNothing()
    {
        var stream = NewStream(capacity: 16);
        var reader = NewReader<float>(stream);
        var writer = NewWriter<float>(stream);
        var source = FrameOf(1f);
        var destination = new float[16];
        void Round()
        {
            writer.Write(source, TimeSpan.FromSeconds(1));
            reader.ReadInto(destination, out _, TimeSpan.FromSeconds(1));
            writer.Look(out var slot, TimeSpan.FromSeconds(1));
            slot[0] = 2f;
            writer.Publish(new FrameStamp(1, 1));
            reader.Look(out var frame, out _, TimeSpan.FromSeconds(1));
            destination[0] = frame[0];
            reader.Increment();
        }

        for (var i = 0; i < 1_000; i++)
        {
            Round();
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 10_000; i++)
        {
            Round();
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.Equal(22_000, reader.FramesRead);
    }

    [Fact]
    public void ConcurrentWriterAndReader_DeliverOnlyIntactFramesInIncreasingOrder()
    {
        var stream = NewStream(capacity: 4);
        var reader = NewReader<float>(stream);
        var writer = NewWriter<float>(stream);
        const int Frames = 20_000;
        var writerThread = new Thread(() =>
        {
            var frame = new float[16];
            for (var i = 0; i < Frames; i++)
            {
                frame.AsSpan().Fill(i);
                if (writer.Write(frame, Bound) != WriteStatus.Ok)
                {
                    return;
                }
            }

            writer.Close();
        });
        writerThread.Start();

        var destination = new float[16];
        long last = -1;
        long received = 0;
        while (reader.ReadInto(destination, out var header, Bound) == ReadStatus.Ok)
        {
            Assert.True(header.Sequence > last, $"sequence {header.Sequence} after {last}");
            Assert.All(destination, v => Assert.Equal((float)header.Sequence, v));
            last = header.Sequence;
            received++;
        }

        Assert.True(writerThread.Join(Bound));
        Assert.Equal(Frames - 1, last);
        if (Delivery == Delivery.Lossless)
        {
            Assert.Equal(Frames, received);
        }
        else
        {
            Assert.Equal(Frames, received + reader.FramesSkipped);
        }
    }
}

public sealed class LosslessHybridContract() : StreamContractTests(Delivery.Lossless, WaitPolicy.Hybrid);

public sealed class LosslessSpinContract() : StreamContractTests(Delivery.Lossless, WaitPolicy.Spin);

public sealed class LosslessBlockContract() : StreamContractTests(Delivery.Lossless, WaitPolicy.Block);

public sealed class LatestHybridContract() : StreamContractTests(Delivery.Latest, WaitPolicy.Hybrid);

public sealed class LatestSpinContract() : StreamContractTests(Delivery.Latest, WaitPolicy.Spin);

public sealed class LatestBlockContract() : StreamContractTests(Delivery.Latest, WaitPolicy.Block);
