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
    private void Open(WaitPolicy policy = WaitPolicy.Hybrid) => Open(new ReaderOptions { WaitPolicy = policy });

    /// <summary>Opens the three streams, reader i with <paramref name="options"/>[i] (the last for the rest).</summary>
    private void Open(params ReaderOptions[] options)
    {
        for (var i = 0; i < 3; i++)
        {
            var stream = Own(SharedStream.Open(Ns, $"s{i}", Format, RegionMode.Create, new StreamOptions { CapacityFrames = 4 }));
            readers[i] = Own(stream.OpenReader<float>(options[Math.Min(i, options.Length - 1)]));
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

    /// <summary>A spinning reader that is not the first still keeps the wait awake: no reader ever goes to sleep.</summary>
    [Fact]
    public void WaitAny_WithABlockingFirstReaderAndASpinningSecond_SpinsUntilTheTimeout()
    {
        Open(new ReaderOptions { WaitPolicy = WaitPolicy.Block }, new ReaderOptions { WaitPolicy = WaitPolicy.Spin }, new ReaderOptions { WaitPolicy = WaitPolicy.Block });

        Assert.Equal(-1, StreamReader<float>.WaitAny(readers, TimeSpan.FromMilliseconds(100)));

        Assert.All(readers, r => Assert.Equal(0, r.SleepCount));
    }

    /// <summary>Hybrid readers keep the wait awake for the longest of their spin times, not the first reader's.</summary>
    [Fact]
    public void WaitAny_WithHybridReaders_StaysAwakeForTheLongestSpinTime()
    {
        Open(
            new ReaderOptions { WaitPolicy = WaitPolicy.Hybrid, SpinTime = TimeSpan.FromMicroseconds(1) },
            new ReaderOptions { WaitPolicy = WaitPolicy.Hybrid, SpinTime = TimeSpan.FromMinutes(10) },
            new ReaderOptions { WaitPolicy = WaitPolicy.Block });

        Assert.Equal(-1, StreamReader<float>.WaitAny(readers, TimeSpan.FromMilliseconds(100)));

        Assert.All(readers, r => Assert.Equal(0, r.SleepCount));
    }

    /// <summary>Blocking readers never make the wait spin: it sleeps on every stream at once.</summary>
    [Fact]
    public void WaitAny_WithOnlyBlockingReaders_SleepsOnEveryStream()
    {
        Open(WaitPolicy.Block);

        Assert.Equal(-1, StreamReader<float>.WaitAny(readers, TimeSpan.FromMilliseconds(100)));

        Assert.All(readers, r => Assert.True(r.SleepCount >= 1, $"reader {r.Index} never slept"));
    }

    /// <summary>A wait on one reader runs the same loop: a spinning reader never sleeps, a blocking one does.</summary>
    [Theory]
    [InlineData(WaitPolicy.Spin, false)]
    [InlineData(WaitPolicy.Block, true)]
    public void WaitForFrame_SleepsOnlyWhenItsPolicyBlocks(WaitPolicy policy, bool sleeps)
    {
        Open(policy);

        Assert.Equal(ReadStatus.Timeout, readers[0].WaitForFrame(TimeSpan.FromMilliseconds(50)));

        Assert.Equal(sleeps, readers[0].SleepCount >= 1);
    }

    /// <summary>The policy of a wait for several readers, from theirs (spin times in µs, 0 for none).</summary>
    [Theory]
    [InlineData(new[] { WaitPolicy.Block, WaitPolicy.Block }, new[] { 5, 7 }, WaitPolicy.Block)]
    [InlineData(new[] { WaitPolicy.Block, WaitPolicy.Hybrid, WaitPolicy.Hybrid }, new[] { 500, 20, 50 }, WaitPolicy.Hybrid, 50)]
    [InlineData(new[] { WaitPolicy.Hybrid, WaitPolicy.Block }, new[] { 20, 500 }, WaitPolicy.Hybrid, 20)]
    [InlineData(new[] { WaitPolicy.Hybrid, WaitPolicy.Spin, WaitPolicy.Block }, new[] { 20, 1, 1 }, WaitPolicy.Spin)]
    [InlineData(new[] { WaitPolicy.Block, WaitPolicy.Spin }, new[] { 1, 1 }, WaitPolicy.Spin)]
    public void Combine_SpinsIfAnySpins_ElseHybridForTheLongestSpinTime_ElseBlocks(WaitPolicy[] policies, int[] spinUs, WaitPolicy expected, int expectedSpinUs = 0)
    {
        var (policy, spinTime) = (WaitPolicy.Block, TimeSpan.Zero);
        for (var i = 0; i < policies.Length; i++)
        {
            (policy, spinTime) = Waiting.Waiter.Combine(policy, spinTime, policies[i], TimeSpan.FromMicroseconds(spinUs[i]));
        }

        Assert.Equal(expected, policy);
        if (expected == WaitPolicy.Hybrid)
        {
            Assert.Equal(TimeSpan.FromMicroseconds(expectedSpinUs), spinTime);
        }
    }

    /// <summary>Neither a wait that finds a frame nor one that spins, yields and sleeps until its timeout allocates.</summary>
    [Fact]
    public void WaitAny_AllocatesNothing_WhetherAFrameIsReadyOrItWaits()
    {
        Open(new ReaderOptions { WaitPolicy = WaitPolicy.Block }, new ReaderOptions { WaitPolicy = WaitPolicy.Hybrid, SpinTime = TimeSpan.FromMicroseconds(20) });
        var frame = FrameOf(1f);
        bool Round() =>
            StreamReader<float>.WaitAny(readers, TimeSpan.FromMilliseconds(1)) == -1
            && writers[1].Write(frame) == WriteStatus.Ok
            && StreamReader<float>.WaitAny(readers, Bound) == 1
            && readers[1].ReadInto(frame, TimeSpan.Zero) == ReadStatus.Ok
            && readers[1].ReadInto(frame, TimeSpan.FromMilliseconds(1)) == ReadStatus.Timeout;

        for (var i = 0; i < 20; i++)
        {
            Assert.True(Round());
        }

        var rounds = 0;
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 100; i++)
        {
            rounds += Round() ? 1 : 0;
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.Equal(100, rounds);
        Assert.True(readers[0].SleepCount > 0, "the waits never went to sleep: the sleeping path was not measured");
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
