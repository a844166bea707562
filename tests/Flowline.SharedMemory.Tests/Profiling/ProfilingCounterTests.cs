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
