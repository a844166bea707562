using Flowline.SharedMemory.Diagnostics;
using Flowline.SharedMemory.TestPeer;
using Flowline.SharedMemory.Tests.Infrastructure;

namespace Flowline.SharedMemory.Tests.Streams;

/// <summary>Readers that wait predictively, against real writers (a paced child process, or a thread).</summary>
public sealed class PredictiveWaitTests : ShmTest
{
    private static readonly FrameFormat Words = new(ElementType.UInt64, 8);

    [Theory]
    [InlineData(0.03)]
    [InlineData(1.0)]
    public void PredictiveLosslessReader_GetsEveryFrameOfAPacedWriterInOrder(double budget)
    {
        const int Frames = 400;
        var stream = Own(SharedStream.Open(Ns, "paced", Words, RegionMode.Create, new StreamOptions { CapacityFrames = 8 }));
        var reader = Own(stream.OpenReader<ulong>(new ReaderOptions { WaitPolicy = WaitPolicy.Predictive, SpinBudget = budget }));
        var writer = StartPeer("write", "--name", "paced", "--capacity", "8", "--count", $"{Frames}", "--rate", "1000", "--close", "true");

        var frame = new ulong[8];
        long expected = 0;
        ReadStatus status;
        while ((status = reader.ReadInto(frame, out var header, Bound)) == ReadStatus.Ok)
        {
            Assert.Equal(expected, header.Sequence);
            Assert.True(TestPayload.Verify(expected, frame), $"frame {expected} is not what the writer wrote");
            expected++;
        }

        Assert.Equal(ReadStatus.EndOfStream, status);
        Assert.Equal(Frames, expected);
        Assert.True(writer.WaitForExit(Bound));
        Assert.Equal(0, writer.ExitCode);

        // The reader waited predictively: it learnt from the frames it waited for.
        Assert.NotNull(reader.Arrivals);
        Assert.True(reader.Arrivals!.LastSequence > 0);
    }

    [Fact]
    public void PredictiveLatestReader_SeesTheNewestFramesOfAPacedWriterWithoutTornCopies()
    {
        const int Frames = 300;
        var stream = Own(SharedStream.Open(Ns, "latest", Words, RegionMode.Create, new StreamOptions { CapacityFrames = 4 }));
        var reader = Own(stream.OpenReader<ulong>(new ReaderOptions { Delivery = Delivery.Latest, WaitPolicy = WaitPolicy.Predictive }));
        var writer = StartPeer("write", "--name", "latest", "--capacity", "4", "--count", $"{Frames}", "--rate", "1000", "--close", "true");

        var frame = new ulong[8];
        long last = -1;
        ReadStatus status;
        while ((status = reader.ReadInto(frame, out var header, Bound)) == ReadStatus.Ok)
        {
            Assert.True(header.Sequence > last, $"frame {header.Sequence} after {last}");
            Assert.True(TestPayload.Verify(header.Sequence, frame), $"frame {header.Sequence} is not what the writer wrote");
            last = header.Sequence;
        }

        Assert.Equal(ReadStatus.EndOfStream, status);
        Assert.Equal(Frames - 1, last);
        Assert.True(writer.WaitForExit(Bound));
    }

    [Fact]
    public void PredictiveWait_WhileAsleepBeforeTheNextFrame_EndsOnCancellationAndOnTimeout()
    {
        var stream = Own(SharedStream.Open(Ns, "stop", Words, RegionMode.Create, new StreamOptions { CapacityFrames = 16 }));
        var reader = Own(stream.OpenReader<ulong>(new ReaderOptions { WaitPolicy = WaitPolicy.Predictive, SpinBudget = 1.0 }));
        var writer = Own(stream.OpenWriter<ulong>());

        // A regular stream at 200 Hz, then the writer goes quiet: the reader plans to sleep until the next frame is due.
        var frame = new ulong[8];
        var pacer = new Pacer(200);
        for (var i = 0; i < 12; i++)
        {
            pacer.WaitNext();
            writer.Write(frame);
            Assert.Equal(ReadStatus.Ok, reader.ReadInto(frame, Bound));
        }

        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(50));
        Assert.ThrowsAny<OperationCanceledException>(() => reader.ReadInto(frame, Bound, cancel.Token));
        Assert.Equal(ReadStatus.Timeout, reader.ReadInto(frame, TimeSpan.FromMilliseconds(30)));

        // And a frame written now still arrives.
        writer.Write(frame);
        Assert.Equal(ReadStatus.Ok, reader.ReadInto(frame, Bound));
    }

    [Fact]
    public async Task PredictiveReader_OfAnIrregularStream_GetsEveryFrame()
    {
        var stream = Own(SharedStream.Open(Ns, "irregular", Words, RegionMode.Create, new StreamOptions { CapacityFrames = 8 }));
        var reader = Own(stream.OpenReader<ulong>(new ReaderOptions { WaitPolicy = WaitPolicy.Predictive }));
        var writer = Own(stream.OpenWriter<ulong>());
        var random = new Random(7);
        const int Frames = 60;
        var task = Task.Run(() =>
        {
            var frame = new ulong[8];
            for (var i = 0; i < Frames; i++)
            {
                Thread.Sleep(random.Next(0, 4));
                TestPayload.Fill(i, frame);
                writer.Write(frame, Bound);
            }
        });

        var received = new ulong[8];
        for (var i = 0; i < Frames; i++)
        {
            Assert.Equal(ReadStatus.Ok, reader.ReadInto(received, out var header, Bound));
            Assert.Equal(i, header.Sequence);
            Assert.True(TestPayload.Verify(i, received));
        }

        await task.WaitAsync(Bound);
    }

    [Fact]
    public void SpinBudgetOfAReader_IsCheckedWhenSet()
    {
        var stream = Own(SharedStream.Open(Ns, "budget", Words, RegionMode.Create));
        Assert.Throws<ArgumentException>(() => stream.OpenReader<ulong>(new ReaderOptions { SpinBudget = 0 }));
        var reader = Own(stream.OpenReader<ulong>());
        var e = Assert.Throws<ArgumentException>(() => reader.SpinBudget = 2);
        Assert.Contains("fraction of a core", e.Message);
        reader.SpinBudget = 0.5;
        Assert.Equal(0.5, reader.SpinBudget);
    }
}
