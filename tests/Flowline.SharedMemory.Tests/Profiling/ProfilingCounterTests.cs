using Flowline.SharedMemory.Tests.Infrastructure;

namespace Flowline.SharedMemory.Tests.Profiling;

/// <summary>The always-on profiling counters of streams (decision 90) and the profile block.</summary>
public sealed class ProfilingCounterTests : ShmTest
{
    private static readonly FrameFormat Format = new(ElementType.Float32, 16);

    private SharedStream Stream(int capacity = 8) =>
        Own(SharedStream.Open(Ns, "s", Format, options: new StreamOptions { CapacityFrames = capacity, MaxReaders = 4 }));

    [Fact]
    public void WriterAndLosslessReader_CountExactFramesAndBytes()
    {
        var stream = Stream();
        var writer = Own(stream.OpenWriter<float>());
        var reader = Own(stream.OpenReader<float>());
        var frame = new float[16];
        for (var i = 0; i < 37; i++)
        {
            Assert.Equal(WriteStatus.Ok, writer.Write(frame, TimeSpan.FromSeconds(5)));
            Assert.Equal(ReadStatus.Ok, reader.ReadInto(frame, TimeSpan.FromSeconds(5)));
        }

        var statistics = stream.GetStatistics();
        Assert.Equal(37, statistics.Cursor);
        Assert.Equal(37L * 64, statistics.BytesPublished);
        var r = Assert.Single(statistics.Readers);
        Assert.Equal(37, r.FramesRead);
        Assert.Equal(37L * 64, r.BytesRead);
        Assert.Equal(0, r.FramesSkipped);
        Assert.Equal(0, statistics.WriterBlockedNs);
    }

    [Fact]
    public void LatestReader_CountsTheFramesItSkipped()
    {
        var stream = Stream();
        var writer = Own(stream.OpenWriter<float>());
        var reader = Own(stream.OpenReader<float>(new ReaderOptions { Delivery = Delivery.Latest }));
        var frame = new float[16];
        for (var i = 0; i < 5; i++)
        {
            writer.Write(frame);
        }

        Assert.Equal(ReadStatus.Ok, reader.ReadInto(frame, TimeSpan.FromSeconds(5)));
        for (var i = 0; i < 3; i++)
        {
            writer.Write(frame);
        }

        Assert.Equal(ReadStatus.Ok, reader.ReadInto(frame, TimeSpan.FromSeconds(5)));
        var r = Assert.Single(stream.GetStatistics().Readers);
        Assert.Equal(2, r.FramesRead);
        Assert.Equal(4 + 2, r.FramesSkipped);
        Assert.Equal(6, reader.FramesSkipped);
    }

    [Fact]
    public void AReaderThatWaits_CountsItsWaitingTime_InItsTableEntry()
    {
        var stream = Stream();
        Own(stream.OpenWriter<float>());
        var reader = Own(stream.OpenReader<float>(new ReaderOptions { WaitPolicy = WaitPolicy.Block }));
        var frame = new float[16];
        Assert.Equal(ReadStatus.Timeout, reader.ReadInto(frame, TimeSpan.FromMilliseconds(20)));
        var r = Assert.Single(stream.GetStatistics().Readers);
        Assert.True(r.WaitNs > 0, "the timed-out wait was not counted");
        Assert.Equal(reader.WaitNs, r.WaitNs);
    }

    [Fact]
    public void AWriterHeldBackByALosslessReader_CountsItsBlockedTime()
    {
        var stream = Stream(capacity: 2);
        var writer = Own(stream.OpenWriter<float>(new WriterOptions { WaitPolicy = WaitPolicy.Block }));
        Own(stream.OpenReader<float>());
        var frame = new float[16];
        writer.Write(frame);
        writer.Write(frame);
        Assert.Equal(WriteStatus.Timeout, writer.Write(frame, TimeSpan.FromMilliseconds(20)));
        var statistics = stream.GetStatistics();
        Assert.Equal(1, statistics.SpaceWaits);
        Assert.True(statistics.WriterBlockedNs > 0, "the blocked wait was not counted");
        Assert.Equal(2, statistics.Cursor);
    }

    [Fact]
    public void AReclaimedEntry_StartsItsCountersAtZero()
    {
        var stream = Stream();
        Own(stream.OpenWriter<float>());
        using (var first = stream.OpenReader<float>(new ReaderOptions { WaitPolicy = WaitPolicy.Block }))
        {
            first.ReadInto(new float[16], TimeSpan.FromMilliseconds(5));
        }

        var second = Own(stream.OpenReader<float>());
        Assert.Equal(0, second.WaitNs);
        Assert.Equal(0, Assert.Single(stream.GetStatistics().Readers).WaitNs);
    }

    [Fact]
    public void ProfileBlock_PublishesEntriesTheManagerReads()
    {
        var block = Own(ProfileBlock.Create(Ns, ProfileBlock.NameFor("w")));
        var reader = Own(ProfileBlock.Attach(Ns, "w.profile"));
        block.Describe(0, ProfileEntryKind.InputLatency, "iq", readerIndex: 3);
        block.Describe(1, ProfileEntryKind.Compute, "fft");
        Assert.Empty(reader.Read()); // described, nothing published yet
        Assert.True(block.Publish(0, [1, 2, 3]));
        Assert.True(block.Publish(1, [9]));
        Assert.False(block.Publish(1, new byte[ProfileBlock.EncodedCapacity + 1]));
        var entries = reader.Read();
        Assert.Equal(2, entries.Count);
        Assert.Equal(ProfileEntryKind.InputLatency, entries[0].Kind);
        Assert.Equal("iq", entries[0].Name);
        Assert.Equal(3, entries[0].ReaderIndex);
        Assert.Equal([1, 2, 3], entries[0].Encoded);
        Assert.Equal(ProfileEntryKind.Compute, entries[1].Kind);
        Assert.Equal(-1, entries[1].ReaderIndex);
        Assert.Equal([9], entries[1].Encoded); // the oversized publish changed nothing
    }
}

/// <summary>The trace ring of a profile block (decision 94).</summary>
public sealed class TraceRingTests : ShmTest
{
    [Fact]
    public void TraceRing_EveryReaderReadsEveryRecord_AndALaggingOneIsToldWhatItLost()
    {
        var worker = Own(ProfileBlock.Create(Ns, "w.profile"));
        var manager = Own(ProfileBlock.Attach(Ns, "w.profile"));
        Assert.False(worker.TraceEnabled);
        manager.SetTrace(true, every: 3, untilNs: MonotonicClock.NowNs() + 60_000_000_000, inputMask: 0b10);
        Assert.True(worker.TraceActive(MonotonicClock.NowNs(), out var every, out var mask));
        Assert.Equal(3, every);
        Assert.Equal(0b10u, mask);
        Assert.False(worker.TraceActive(long.MaxValue, out _, out _)); // past its time limit

        for (var i = 0; i < 10; i++)
        {
            worker.WriteTrace(new TraceRecord(1, i, (ulong)(100 + i), i * 10, (i * 10) + 5, 7));
        }

        var first = new List<TraceRecord>();
        var second = new List<TraceRecord>();
        Assert.Equal(10, manager.ReadTraces(0, first, out var lost));
        Assert.Equal(0, lost);
        Assert.Equal(10, manager.ReadTraces(4, second, out _)); // another reader, its own position
        Assert.Equal(Enumerable.Range(0, 10).Select(i => (long)i), first.Select(r => r.Sequence));
        Assert.Equal(Enumerable.Range(4, 6).Select(i => (long)i), second.Select(r => r.Sequence));
        Assert.Equal(new TraceRecord(1, 9, 109, 90, 95, 7), first[^1]);

        for (var i = 10; i < 10 + ProfileBlock.TraceCapacity + 5; i++)
        {
            worker.WriteTrace(new TraceRecord(1, i, 0, 0, 0, 0));
        }

        var lagging = new List<TraceRecord>();
        var next = manager.ReadTraces(10, lagging, out lost);
        Assert.Equal(5, lost);
        Assert.Equal(ProfileBlock.TraceCapacity, lagging.Count);
        Assert.Equal(15, lagging[0].Sequence);
        Assert.Equal(next, worker.TraceCursor);

        manager.SetTrace(false);
        Assert.False(worker.TraceEnabled);
    }
}
