using System.Diagnostics;
using Flowline.SharedMemory.Tests.Infrastructure;

namespace Flowline.SharedMemory.Tests.Streams;

/// <summary>What distinguishes lossless from latest delivery, for every wait policy.</summary>
public sealed class DeliveryTests : ShmTest
{
    public static TheoryData<WaitPolicy> Policies => [WaitPolicy.Hybrid, WaitPolicy.Spin, WaitPolicy.Block];

    private SharedStream NewStream(int capacity) =>
        Own(SharedStream.Open(Ns, "d", new FrameFormat(ElementType.Int64, 2), RegionMode.Create, new StreamOptions { CapacityFrames = capacity }));

    [Theory]
    [MemberData(nameof(Policies))]
    public void Lossless_WriterWaitsWhenTheRingIsFull_AndResumesWhenTheReaderReads(WaitPolicy policy)
    {
        var stream = NewStream(4);
        var reader = Own(stream.OpenReader<long>(new ReaderOptions { WaitPolicy = policy }));
        var writer = Own(stream.OpenWriter<long>(new WriterOptions { WaitPolicy = policy }));
        for (var i = 0; i < 4; i++)
        {
            Assert.Equal(WriteStatus.Ok, writer.Write([i, i], TimeSpan.Zero));
        }

        Assert.Equal(WriteStatus.Timeout, writer.Write([4, 4], TimeSpan.Zero));
        var watch = Stopwatch.StartNew();
        Assert.Equal(WriteStatus.Timeout, writer.Write([4, 4], TimeSpan.FromMilliseconds(100)));
        Assert.True(watch.Elapsed >= TimeSpan.FromMilliseconds(90));
        Assert.Equal(4, stream.GetStatistics().FillFrames);

        var reading = new Thread(() =>
        {
            Thread.Sleep(100);
            reader.ReadInto(new long[2], Bound);
        });
        reading.Start();
        Assert.Equal(WriteStatus.Ok, writer.Write([4, 4], Bound));
        Assert.True(reading.Join(Bound));
        Assert.True(stream.GetStatistics().SpaceWaits >= 1);
    }

    [Theory]
    [MemberData(nameof(Policies))]
    public void Latest_NeverHoldsTheWriterBack_AndReadsTheNewestFrame(WaitPolicy policy)
    {
        var stream = NewStream(4);
        var reader = Own(stream.OpenReader<long>(new ReaderOptions { Delivery = Delivery.Latest, WaitPolicy = policy }));
        var writer = Own(stream.OpenWriter<long>(new WriterOptions { WaitPolicy = policy }));
        for (var i = 0; i < 40; i++)
        {
            Assert.Equal(WriteStatus.Ok, writer.Write([i, -i], TimeSpan.Zero));
        }

        var frame = new long[2];
        Assert.Equal(ReadStatus.Ok, reader.ReadInto(frame, out var header, Bound));
        Assert.Equal(39, header.Sequence);
        Assert.Equal([39L, -39L], frame);
        Assert.Equal(39, reader.FramesSkipped);
        Assert.Equal(ReadStatus.Timeout, reader.ReadInto(frame, TimeSpan.Zero));

        writer.Write([40, -40]);
        Assert.Equal(ReadStatus.Ok, reader.ReadInto(frame, out header, Bound));
        Assert.Equal(40, header.Sequence);
        Assert.Equal(39, reader.FramesSkipped);
        Assert.Equal(0, stream.GetStatistics().FillFrames);
    }

    [Fact]
    public void LatestLook_ThatTheWriterLaps_StaysIntact_TheWriterRewritingTheOtherSlot()
    {
        var stream = NewStream(2);
        var reader = Own(stream.OpenReader<long>(new ReaderOptions { Delivery = Delivery.Latest }));
        var writer = Own(stream.OpenWriter<long>());
        writer.Write([1, 1]);

        Assert.Equal(ReadStatus.Ok, reader.Look(out var held, out var header, Bound));
        Assert.Equal(0, header.Sequence);
        writer.Write([2, 2]);
        writer.Write([3, 3]); // would have overwritten the slot under the look; it is held (decision 100)
        Assert.Equal([1, 1], held.ToArray());
        Assert.True(reader.Increment());
        Assert.Equal(0, reader.TornCopies);

        Assert.Equal(ReadStatus.Ok, reader.Look(out var frame, out header, Bound));
        Assert.Equal(2, header.Sequence);
        Assert.Equal(3, frame[0]);
        Assert.True(reader.Increment());
    }

    [Fact]
    public void SetDelivery_ToLatest_ReleasesABlockedWriter()
    {
        var stream = NewStream(2);
        var reader = Own(stream.OpenReader<long>());
        var writer = Own(stream.OpenWriter<long>());
        writer.Write([0, 0]);
        writer.Write([1, 1]);
        Assert.Equal(WriteStatus.Timeout, writer.Write([2, 2], TimeSpan.Zero));

        reader.SetBlocking(false);
        Assert.False(reader.IsBlocking);
        Assert.Equal(Delivery.Latest, stream.GetStatistics().Readers.Single().Delivery);
        Assert.Equal(WriteStatus.Ok, writer.Write([2, 2], TimeSpan.Zero));
    }

    [Fact]
    public void SetDelivery_BackToLossless_JumpsToTheWritersPosition_AndCountsTheSkippedFrames()
    {
        var stream = NewStream(4);
        var reader = Own(stream.OpenReader<long>(new ReaderOptions { Delivery = Delivery.Latest }));
        var writer = Own(stream.OpenWriter<long>());
        for (var i = 0; i < 10; i++)
        {
            writer.Write([i, i]);
        }

        reader.SetDelivery(Delivery.Lossless);
        Assert.True(reader.IsBlocking);
        Assert.Equal(10, reader.Position);
        Assert.Equal(10, reader.FramesSkipped);
        Assert.Equal(ReadStatus.Timeout, reader.ReadInto(new long[2], TimeSpan.Zero));

        for (var i = 10; i < 14; i++)
        {
            writer.Write([i, i], TimeSpan.Zero);
        }

        Assert.Equal(WriteStatus.Timeout, writer.Write([14, 14], TimeSpan.Zero));
        for (var i = 10; i < 14; i++)
        {
            Assert.Equal(ReadStatus.Ok, reader.ReadInto(new long[2], out var header, Bound));
            Assert.Equal(i, header.Sequence);
        }
    }

    [Fact]
    public void SetDelivery_ToTheSameDelivery_KeepsTheBacklog()
    {
        var stream = NewStream(4);
        var reader = Own(stream.OpenReader<long>());
        var writer = Own(stream.OpenWriter<long>());
        writer.Write([0, 0]);
        writer.Write([1, 1]);

        reader.SetBlocking(true);
        Assert.Equal(2, reader.FramesAvailable);
        Assert.Equal(ReadStatus.Ok, reader.ReadInto(new long[2], out var header, Bound));
        Assert.Equal(0, header.Sequence);
    }

    [Fact]
    public void Reader_JoinsAtTheWritersPosition()
    {
        var stream = NewStream(4);
        var writer = Own(stream.OpenWriter<long>());
        writer.Write([0, 0]);
        writer.Write([1, 1]);
        var reader = Own(stream.OpenReader<long>());

        Assert.Equal(2, reader.Position);
        writer.Write([2, 2]);
        Assert.Equal(ReadStatus.Ok, reader.ReadInto(new long[2], out var header, Bound));
        Assert.Equal(2, header.Sequence);
    }

    [Fact]
    public void ManyReaders_EachSeeEveryFrame_AndTheSlowestGatesTheWriter()
    {
        var stream = NewStream(4);
        var fast = Own(stream.OpenReader<long>());
        var slow = Own(stream.OpenReader<long>());
        var latest = Own(stream.OpenReader<long>(new ReaderOptions { Delivery = Delivery.Latest }));
        var writer = Own(stream.OpenWriter<long>());
        for (var i = 0; i < 4; i++)
        {
            writer.Write([i, i]);
            Assert.Equal(ReadStatus.Ok, fast.ReadInto(new long[2], Bound));
        }

        Assert.Equal(WriteStatus.Timeout, writer.Write([4, 4], TimeSpan.Zero));
        Assert.Equal(ReadStatus.Ok, slow.ReadInto(new long[2], out var header, Bound));
        Assert.Equal(0, header.Sequence);
        Assert.Equal(WriteStatus.Ok, writer.Write([4, 4], TimeSpan.Zero));
        Assert.Equal(ReadStatus.Ok, latest.ReadInto(new long[2], out header, Bound));
        Assert.Equal(4, header.Sequence);

        var stats = stream.GetStatistics();
        Assert.Equal(3, stats.Readers.Count);
        Assert.Equal(4, stats.FillFrames);
        Assert.Equal(5, stats.Cursor);
    }

    [Fact]
    public void OpenReader_BeyondMaxReaders_ThrowsNamingTheLimit()
    {
        var stream = Own(SharedStream.Open(Ns, "few", new FrameFormat(ElementType.Int64, 2), RegionMode.Create, new StreamOptions { MaxReaders = 2 }));
        Own(stream.OpenReader<long>());
        var second = stream.OpenReader<long>();
        var error = Assert.Throws<InvalidOperationException>(() => stream.OpenReader<long>());
        Assert.Contains("2 readers", error.Message, StringComparison.Ordinal);

        second.Dispose();
        Own(stream.OpenReader<long>());
    }

    [Fact]
    public void Lossless_WithNoReaders_NeverBlocksTheWriter()
    {
        var stream = NewStream(2);
        var writer = Own(stream.OpenWriter<long>());
        for (var i = 0; i < 100; i++)
        {
            Assert.Equal(WriteStatus.Ok, writer.Write([i, i], TimeSpan.Zero));
        }
    }

    [Fact]
    public void WriteTimeout_CancelledWhileTheRingIsFull_Throws()
    {
        var stream = NewStream(2);
        Own(stream.OpenReader<long>(new ReaderOptions { WaitPolicy = WaitPolicy.Block }));
        var writer = Own(stream.OpenWriter<long>(new WriterOptions { WaitPolicy = WaitPolicy.Block }));
        writer.Write([0, 0]);
        writer.Write([1, 1]);
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));

        var watch = Stopwatch.StartNew();
        Assert.ThrowsAny<OperationCanceledException>(() => writer.Write([2, 2], Bound, cts.Token));
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5));
    }
}

public sealed class EndpointLifetimeTests : ShmTest
{
    private SharedStream NewStream() =>
        Own(SharedStream.Open(Ns, "life", new FrameFormat(ElementType.Int32, 4), RegionMode.Create, new StreamOptions { CapacityFrames = 2 }));

    [Fact]
    public void IncrementAndPublish_AfterDispose_ThrowInsteadOfTouchingTheTable()
    {
        var stream = NewStream();
        var writer = stream.OpenWriter<int>();
        var reader = stream.OpenReader<int>();
        writer.Write([1, 2, 3, 4]);
        reader.Look(out _, Bound);
        writer.Look(out _);
        reader.Dispose();
        writer.Dispose();

        Assert.Throws<ObjectDisposedException>(() => reader.Increment());
        Assert.Throws<ObjectDisposedException>(() => writer.Publish());
    }

    [Fact]
    public void ReaderDroppedWithoutDispose_LeavesTheTableWhenFinalized()
    {
        var stream = NewStream();
        var writer = Own(stream.OpenWriter<int>());
        OpenAndDrop(stream);
        Assert.Single(stream.GetStatistics().Readers);

        GC.Collect();
        GC.WaitForPendingFinalizers();

        Assert.Empty(stream.GetStatistics().Readers);
        Assert.Equal(WriteStatus.Ok, writer.Write([1, 2, 3, 4], TimeSpan.Zero));
        Assert.Equal(WriteStatus.Ok, writer.Write([1, 2, 3, 4], TimeSpan.Zero));
        Assert.Equal(WriteStatus.Ok, writer.Write([1, 2, 3, 4], TimeSpan.Zero));
    }

    [Fact]
    public void CreatingARegionTooLargeForSharedMemory_FailsClearly_AndLeavesNothing()
    {
        var huge = new FrameFormat(ElementType.UInt8, 1 << 30);
        var error = Assert.Throws<SharedMemoryException>(() =>
            SharedStream.Open(Ns, "huge", huge, RegionMode.Create, new StreamOptions { CapacityFrames = 4096 }));
        Assert.Contains("df -h /dev/shm", error.Message, StringComparison.Ordinal);
        Assert.False(SharedMemoryNamespace.Exists(Ns, "huge"));
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static void OpenAndDrop(SharedStream stream) => stream.OpenReader<int>();
}
