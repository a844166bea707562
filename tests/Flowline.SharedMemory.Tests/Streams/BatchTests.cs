using Flowline.SharedMemory.TestPeer;
using Flowline.SharedMemory.Tests.Infrastructure;

namespace Flowline.SharedMemory.Tests.Streams;

/// <summary>Lossless batches (<see cref="StreamWriter{T}.WriteBatch"/>, <see cref="StreamReader{T}.ReadBatch"/>): every frame, in order, and no lost wake-up.</summary>
public sealed class BatchTests : ShmTest
{
    private const int Elements = 8;
    private static readonly FrameFormat Words = new(ElementType.UInt64, Elements);

    private static ulong[] Frames(long first, int count)
    {
        var frames = new ulong[count * Elements];
        for (var i = 0; i < count; i++)
        {
            TestPayload.Fill(first + i, frames.AsSpan(i * Elements, Elements));
        }

        return frames;
    }

    /// <summary>Reads with <see cref="StreamReader{T}.ReadBatch"/> until <paramref name="count"/> frames came, checking each; the frames per call.</summary>
    private static List<int> ReadAll(StreamReader<ulong> reader, long count, int room)
    {
        var buffer = new ulong[room * Elements];
        var calls = new List<int>();
        long expected = 0;
        while (expected < count)
        {
            Assert.Equal(ReadStatus.Ok, reader.ReadBatch(buffer, out var got, TimeSpan.FromSeconds(30)));
            Assert.InRange(got, 1, room);
            for (var i = 0; i < got; i++)
            {
                Assert.True(TestPayload.Verify(expected, buffer.AsSpan(i * Elements, Elements)), $"frame {expected} is not what was written");
                expected++;
            }

            calls.Add(got);
        }

        Assert.Equal(count, reader.Position);
        Assert.Equal(count, reader.FramesRead);
        return calls;
    }

    [Fact]
    public void ReaderBehind_ReadsEveryWaitingFrameInOneCall()
    {
        var stream = Own(SharedStream.Open(Ns, "behind", Words, RegionMode.Create, new StreamOptions { CapacityFrames = 16 }));
        var reader = Own(stream.OpenReader<ulong>());
        var writer = Own(stream.OpenWriter<ulong>());

        Assert.Equal(WriteStatus.Ok, writer.WriteBatch(Frames(0, 12), out var written, Bound));
        Assert.Equal(12, written);
        Assert.Equal(12, writer.Position);

        var calls = ReadAll(reader, 12, room: 32);
        Assert.Equal([12], calls);
        Assert.Equal(0, reader.FramesAvailable);
    }

    [Fact]
    public async Task BatchesLargerThanTheRing_WithASmallReader_ArriveCompleteAndInOrder()
    {
        // The writer waits for space in the middle of its batches, the reader for frames: both sleep (block policy).
        const int Total = 20_000;
        var stream = Own(SharedStream.Open(Ns, "ring", Words, RegionMode.Create, new StreamOptions { CapacityFrames = 8 }));
        var reader = Own(stream.OpenReader<ulong>(new ReaderOptions { WaitPolicy = WaitPolicy.Block }));
        var writer = Own(stream.OpenWriter<ulong>(new WriterOptions { WaitPolicy = WaitPolicy.Block }));
        var random = new Random(42);
        var task = Task.Run(() =>
        {
            long sent = 0;
            while (sent < Total)
            {
                var n = (int)Math.Min(random.Next(1, 40), Total - sent);
                Assert.Equal(WriteStatus.Ok, writer.WriteBatch(Frames(sent, n), out var written, Bound));
                Assert.Equal(n, written);
                sent += n;
            }
        });

        ReadAll(reader, Total, room: 3);
        await task.WaitAsync(Bound); // a TimeoutException here is a lost wake-up
    }

    [Fact]
    public async Task ReaderAhead_AsleepInReadBatch_IsWokenByABatch()
    {
        var stream = Own(SharedStream.Open(Ns, "ahead", Words, RegionMode.Create, new StreamOptions { CapacityFrames = 16 }));
        var reader = Own(stream.OpenReader<ulong>(new ReaderOptions { WaitPolicy = WaitPolicy.Block }));
        var writer = Own(stream.OpenWriter<ulong>());
        var read = Task.Run(() => ReadAll(reader, 5, room: 8));

        // Write only once the reader sleeps on the stream's futex.
        var until = DateTime.UtcNow + Bound;
        while (reader.SleepCount == 0 && DateTime.UtcNow < until)
        {
            Thread.Sleep(1);
        }

        Assert.True(reader.SleepCount > 0, "the reader never went to sleep");
        Assert.Equal(WriteStatus.Ok, writer.WriteBatch(Frames(0, 5), out _, Bound));
        var calls = await read.WaitAsync(Bound); // a TimeoutException here: the sleeping reader was not woken
        Assert.Equal(5, calls.Sum());
    }

    [Fact]
    public void BatchesFromAChildProcess_ArriveCompleteAndInOrder()
    {
        const int Total = 100_000;
        var stream = Own(SharedStream.Open(Ns, "child", Words, RegionMode.Create, new StreamOptions { CapacityFrames = 64 }));
        var reader = Own(stream.OpenReader<ulong>());
        var writer = StartPeer("write", "--name", "child", "--capacity", "64", "--count", $"{Total}", "--batch", "16", "--close", "true");

        ReadAll(reader, Total, room: 24);
        var buffer = new ulong[Elements];
        Assert.Equal(ReadStatus.EndOfStream, reader.ReadBatch(buffer, out var none, Bound));
        Assert.Equal(0, none);
        Assert.True(writer.WaitForExit(Bound));
        Assert.Equal(0, writer.ExitCode);
    }

    [Fact]
    public void ReadBatchOfALatestReader_AndPartialFrames_AreRefused()
    {
        var stream = Own(SharedStream.Open(Ns, "wrong", Words, RegionMode.Create));
        var latest = Own(stream.OpenReader<ulong>(new ReaderOptions { Delivery = Delivery.Latest }));
        var writer = Own(stream.OpenWriter<ulong>());

        Assert.Throws<InvalidOperationException>(() => latest.ReadBatch(new ulong[Elements], out _, TimeSpan.Zero));
        Assert.Throws<ArgumentException>(() => writer.WriteBatch(new ulong[Elements + 1], out _));
        var lossless = Own(stream.OpenReader<ulong>());
        Assert.Throws<ArgumentException>(() => lossless.ReadBatch(new ulong[Elements - 1], out _, TimeSpan.Zero));
        Assert.Equal(ReadStatus.Timeout, lossless.ReadBatch(new ulong[Elements], out var got, TimeSpan.Zero));
        Assert.Equal(0, got);
    }
}
