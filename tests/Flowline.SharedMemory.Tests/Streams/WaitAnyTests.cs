using System.Diagnostics;
using Flowline.SharedMemory.Tests.Infrastructure;

namespace Flowline.SharedMemory.Tests.Streams;

/// <summary><see cref="StreamReader{T}.WaitAny"/> over three streams, each with a reader and a writer.</summary>
public sealed class WaitAnyTests : ShmTest
{
    private static readonly FrameFormat Format = new(ElementType.Float32, 4);

    private readonly StreamReader<float>[] readers = new StreamReader<float>[3];
    private readonly StreamWriter<float>[] writers = new StreamWriter<float>[3];

    /// <summary>Opens the three streams with readers waiting by <paramref name="policy"/>.</summary>
    private void Open(WaitPolicy policy = WaitPolicy.Hybrid)
    {
        for (var i = 0; i < 3; i++)
        {
            var stream = Own(SharedStream.Open(Ns, $"s{i}", Format, RegionMode.Create, new StreamOptions { CapacityFrames = 4 }));
            readers[i] = Own(stream.OpenReader<float>(new ReaderOptions { WaitPolicy = policy }));
            writers[i] = Own(stream.OpenWriter<float>());
        }
    }

    private static float[] FrameOf(float value) => [value, value, value, value];

    [Fact]
    public void WaitAny_WhenOneReaderAlreadyHasAFrame_ReturnsItsIndexAtOnce()
    {
        Open();
        writers[2].Write(FrameOf(1f));

        var watch = Stopwatch.StartNew();
        Assert.Equal(2, StreamReader<float>.WaitAny(readers, Bound));
        Assert.Equal(2, StreamReader<float>.WaitAny(readers, TimeSpan.Zero));
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(2), $"took {watch.Elapsed}");
    }

    [Fact]
    public void WaitAny_WhenSeveralHaveFrames_ReturnsTheFirstOfThem()
    {
        Open();
        writers[2].Write(FrameOf(1f));
        writers[1].Write(FrameOf(1f));

        Assert.Equal(1, StreamReader<float>.WaitAny(readers, Bound));
    }

    [Fact]
    public void WaitAny_WithZeroTimeoutAndNoFrame_ReturnsMinusOneAtOnce()
    {
        Open();

        var watch = Stopwatch.StartNew();
        Assert.Equal(-1, StreamReader<float>.WaitAny(readers, TimeSpan.Zero));
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(1), $"a zero-timeout wait took {watch.Elapsed}");
    }

    [Theory]
    [InlineData(WaitPolicy.Block)]
    [InlineData(WaitPolicy.Hybrid)]
    [InlineData(WaitPolicy.Spin)]
    public void WaitAny_WithNoFrame_ReturnsMinusOneAfterTheTimeout(WaitPolicy policy)
    {
        Open(policy);

        var watch = Stopwatch.StartNew();
        Assert.Equal(-1, StreamReader<float>.WaitAny(readers, TimeSpan.FromMilliseconds(200)));
        Assert.InRange(watch.Elapsed, TimeSpan.FromMilliseconds(190), TimeSpan.FromSeconds(10));
    }

    [Theory]
    [InlineData(WaitPolicy.Block)]
    [InlineData(WaitPolicy.Hybrid)]
    [InlineData(WaitPolicy.Spin)]
    public void WaitAny_WakesWhenAnotherThreadPublishesOnTheSecondStream(WaitPolicy policy)
    {
        Open(policy);
        long publishedAt = 0;
        var writer = new Thread(() =>
        {
            // Gives the waiter time to go to sleep; the result does not depend on it.
            Thread.Sleep(150);
            Volatile.Write(ref publishedAt, Stopwatch.GetTimestamp());
            writers[1].Write(FrameOf(5f));
        });
        writer.Start();

        var ready = StreamReader<float>.WaitAny(readers, Bound);
        var returnedAt = Stopwatch.GetTimestamp();

        Assert.True(writer.Join(Bound));
        Assert.Equal(1, ready);
        var latency = Stopwatch.GetElapsedTime(Volatile.Read(ref publishedAt), returnedAt);
        Assert.True(latency < TimeSpan.FromSeconds(2), $"WaitAny returned {latency} after the publish");
    }

    [Theory]
    [InlineData(WaitPolicy.Block)]
    [InlineData(WaitPolicy.Hybrid)]
    [InlineData(WaitPolicy.Spin)]
    public void WaitAny_WhenCancelled_ThrowsOperationCanceledPromptly(WaitPolicy policy)
    {
        Open(policy);
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));

        var watch = Stopwatch.StartNew();
        Assert.ThrowsAny<OperationCanceledException>(() => StreamReader<float>.WaitAny(readers, Bound, cts.Token));
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"cancellation took {watch.Elapsed}");
    }

    [Fact]
    public void WaitAny_WithAnAlreadyCancelledTokenAndNoFrame_Throws()
    {
        Open();
        Assert.ThrowsAny<OperationCanceledException>(() => StreamReader<float>.WaitAny(readers, Bound, new CancellationToken(canceled: true)));
    }

    /// <summary>
    /// <see cref="Timeout.InfiniteTimeSpan"/> (-1 ms) means "no timeout", as in every other wait of the
    /// library (and of .NET), not an elapsed one.
    /// </summary>
    [Fact]
    public void WaitAny_WithAnInfiniteTimeout_WaitsForAFrame()
    {
        Open(WaitPolicy.Block);
        var writer = new Thread(() =>
        {
            Thread.Sleep(150);
            writers[1].Write(FrameOf(5f));
        });
        writer.Start();

        var ready = StreamReader<float>.WaitAny(readers, Timeout.InfiniteTimeSpan);

        Assert.True(writer.Join(Bound));
        Assert.Equal(1, ready);
    }

    [Fact]
    public void WaitAny_WhenAWriterHasClosed_ReturnsThatReadersIndex()
    {
        Open();
        writers[1].Close();

        Assert.Equal(1, StreamReader<float>.WaitAny(readers, Bound));
        Assert.Equal(ReadStatus.EndOfStream, readers[1].WaitForFrame(TimeSpan.Zero));
    }

    [Fact]
    public void WaitAny_WhenAWriterClosesWhileWaiting_WakesWithThatReadersIndex()
    {
        Open(WaitPolicy.Block);
        var closer = new Thread(() =>
        {
            Thread.Sleep(150);
            writers[2].Close();
        });
        closer.Start();

        var watch = Stopwatch.StartNew();
        var ready = StreamReader<float>.WaitAny(readers, Bound);

        Assert.True(closer.Join(Bound));
        Assert.Equal(2, ready);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"took {watch.Elapsed}");
        Assert.Equal(ReadStatus.EndOfStream, readers[2].Look(out _, TimeSpan.Zero));
    }

    [Fact]
    public void WaitAny_ConsumesNothing_ALookAfterwardsGetsTheFrame()
    {
        Open();
        writers[0].Write(FrameOf(7f));

        Assert.Equal(0, StreamReader<float>.WaitAny(readers, Bound));
        Assert.Equal(0, StreamReader<float>.WaitAny(readers, Bound));
        Assert.Equal(0, readers[0].FramesRead);
        Assert.Equal(0, readers[0].Position);

        Assert.Equal(ReadStatus.Ok, readers[0].Look(out var frame, out var header, TimeSpan.Zero));
        Assert.Equal(0, header.Sequence);
        Assert.Equal(FrameOf(7f), frame.ToArray());
        Assert.True(readers[0].Increment());
        Assert.Equal(-1, StreamReader<float>.WaitAny(readers, TimeSpan.Zero));
    }

    [Fact]
    public void WaitAny_WithNoReaders_ThrowsArgumentException()
    {
        Assert.Throws<ArgumentException>(() => StreamReader<float>.WaitAny([], TimeSpan.Zero));
    }

    [Fact]
    public void WaitAny_WhileALookIsPending_ThrowsInvalidOperation()
    {
        Open();
        writers[0].Write(FrameOf(1f));
        Assert.Equal(ReadStatus.Ok, readers[0].Look(out _, TimeSpan.Zero));

        Assert.Throws<InvalidOperationException>(() => StreamReader<float>.WaitAny(readers, TimeSpan.Zero));
    }
}
