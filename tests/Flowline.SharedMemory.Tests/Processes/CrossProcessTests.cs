using System.Diagnostics;
using Flowline.SharedMemory.TestPeer;
using Flowline.SharedMemory.Tests.Infrastructure;

namespace Flowline.SharedMemory.Tests.Processes;

/// <summary>Streams and events between real processes, including processes that die.</summary>
public sealed class CrossProcessTests(ITestOutputHelper output) : ShmTest
{
    private static FrameFormat Words(int count) => new(ElementType.UInt64, count);

    [Fact]
    public void Lossless_TwoMillionFramesFromAChildWriter_ArriveCompleteInOrderAndIntact()
    {
        const int Frames = 2_000_000;
        var stream = Own(SharedStream.Open(Ns, "bulk", Words(8), RegionMode.Create, new StreamOptions { CapacityFrames = 256 }));
        var reader = Own(stream.OpenReader<ulong>());
        var writer = StartPeer("write", "--name", "bulk", "--count", $"{Frames}", "--capacity", "256", "--close", "true");

        var frame = new ulong[8];
        long expected = 0;
        long corrupt = 0;
        var watch = Stopwatch.StartNew();
        ReadStatus status;
        while ((status = reader.ReadInto(frame, out var header, Bound)) == ReadStatus.Ok)
        {
            Assert.Equal(expected, header.Sequence);
            Assert.Equal((ulong)expected * 10, header.FrameId);
            if (!TestPayload.Verify(expected, frame))
            {
                corrupt++;
            }

            expected++;
        }

        watch.Stop();
        Assert.Equal(ReadStatus.EndOfStream, status);
        Assert.Equal(Frames, expected);
        Assert.Equal(0, corrupt);
        Assert.True(writer.WaitForExit(Bound));
        Assert.Equal(0, writer.ExitCode);
        output.WriteLine($"{Frames:N0} frames in {watch.Elapsed.TotalMilliseconds:N0} ms ({Frames / watch.Elapsed.TotalSeconds:N0} frames/s)");
    }

    [Fact]
    public void Lossless_ChildReader_ReceivesEveryFrameFromThisProcess()
    {
        const int Frames = 200_000;
        var stream = Own(SharedStream.Open(Ns, "out", Words(16), RegionMode.Create, new StreamOptions { CapacityFrames = 64 }));
        var reader = StartPeer("read", "--name", "out", "--elements", "16", "--capacity", "64", "--count", $"{Frames}");
        reader.Expect("ready");
        var writer = Own(stream.OpenWriter<ulong>());
        var frame = new ulong[16];
        for (long s = 0; s < Frames; s++)
        {
            TestPayload.Fill(s, frame);
            Assert.Equal(WriteStatus.Ok, writer.Write(frame, Bound));
        }

        Assert.Equal($"read {Frames} errors 0", reader.Expect("read "));
        Assert.True(reader.WaitForExit(Bound));
        Assert.Equal(0, reader.ExitCode);
    }

    [Fact]
    public void Latest_ReaderNeverSeesATornFrame_WhileAFastChildWriterOverwrites()
    {
        // 4 KiB frames in a 2-slot ring: the writer laps the reader constantly.
        var stream = Own(SharedStream.Open(Ns, "torn", Words(512), RegionMode.Create, new StreamOptions { CapacityFrames = 2 }));
        var reader = Own(stream.OpenReader<ulong>(new ReaderOptions { Delivery = Delivery.Latest }));
        StartPeer("write", "--name", "torn", "--elements", "512", "--capacity", "2", "--pattern", "uniform").Expect("ready");

        var frame = new ulong[512];
        long copies = 0;
        long looks = 0;
        long intactLooks = 0;
        long lastSequence = -1;
        // A fixed number of rounds, bounded in time only against a reader that stops getting frames (a
        // loaded machine makes the rounds slower, not fewer).
        const int Rounds = 300;
        var watch = Stopwatch.StartNew();
        while (copies < Rounds && watch.Elapsed < Bound)
        {
            Assert.Equal(ReadStatus.Ok, reader.ReadInto(frame, out var header, Bound));
            Assert.True(TestPayload.VerifyUniform(header.Sequence, frame), $"torn copy of frame {header.Sequence}");
            Assert.True(header.Sequence > lastSequence);
            lastSequence = header.Sequence;
            copies++;

            // A look may be overwritten while held, but then Increment must say so.
            Assert.Equal(ReadStatus.Ok, reader.Look(out var view, out header, Bound));
            var consistent = TestPayload.VerifyUniform(header.Sequence, view);
            var intact = reader.Increment();
            looks++;
            if (intact)
            {
                intactLooks++;
                Assert.True(consistent, $"a look of frame {header.Sequence} reported intact was torn");
            }
        }

        output.WriteLine($"{copies:N0} copies, {looks:N0} looks ({intactLooks:N0} intact), {reader.FramesSkipped:N0} frames skipped, {reader.TornCopies:N0} torn copies discarded");
        Assert.True(copies == Rounds, $"only {copies} copies in {Bound.TotalSeconds:0} s: the reader stopped getting frames");
        Assert.True(reader.FramesSkipped > 0, "the writer never overtook the reader: the test proved nothing");
    }

    [Fact]
    public void KilledReader_StopsHoldingTheWriterBack_WithinTheLivenessBound()
    {
        var stream = Own(SharedStream.Open(Ns, "gate", Words(8), RegionMode.Create, new StreamOptions { CapacityFrames = 4 }));
        var peer = StartPeer("read", "--name", "gate", "--capacity", "4", "--hang", "true");
        peer.Expect("ready");
        var writer = Own(stream.OpenWriter<ulong>(new WriterOptions { WaitPolicy = WaitPolicy.Block }));
        var frame = new ulong[8];
        for (var i = 0; i < 4; i++)
        {
            Assert.Equal(WriteStatus.Ok, writer.Write(frame, TimeSpan.Zero));
        }

        Assert.Equal(WriteStatus.Timeout, writer.Write(frame, TimeSpan.FromMilliseconds(150)));

        peer.Kill();
        var watch = Stopwatch.StartNew();
        Assert.Equal(WriteStatus.Ok, writer.Write(frame, Bound));
        watch.Stop();
        output.WriteLine($"writer released {watch.Elapsed.TotalMilliseconds:0} ms after the reader was killed");
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(2), $"released after {watch.Elapsed}");
        var stats = stream.GetStatistics();
        Assert.Equal(1, stats.ReclaimedReaders);
        Assert.Empty(stats.Readers);
    }

    /// <summary>
    /// Workers wait in slices of the liveness interval (to keep their heartbeat fresh): a writer waiting so
    /// must still find its killed reader, or a pipeline stalls for good after a kernel is killed.
    /// </summary>
    [Fact]
    public void KilledReader_IsReclaimed_WhenTheWriterWaitsInSlicesOfTheLivenessInterval()
    {
        var stream = Own(SharedStream.Open(Ns, "sliced", Words(8), RegionMode.Create, new StreamOptions { CapacityFrames = 4 }));
        var peer = StartPeer("read", "--name", "sliced", "--capacity", "4", "--hang", "true");
        peer.Expect("ready");
        var writer = Own(stream.OpenWriter<ulong>());
        var frame = new ulong[8];
        for (var i = 0; i < 4; i++)
        {
            Assert.Equal(WriteStatus.Ok, writer.Write(frame, TimeSpan.Zero));
        }

        peer.Kill();
        var slices = 0;
        while (writer.Write(frame, WaitTuning.LivenessInterval) == WriteStatus.Timeout && ++slices < 50)
        {
        }

        output.WriteLine($"the writer got space after {slices} slices");
        Assert.True(slices < 50, "the writer waited 50 slices of the liveness interval without reclaiming the killed reader");
        Assert.Equal(1, stream.GetStatistics().ReclaimedReaders);
    }

    /// <summary>The same for a reader waiting in slices for a writer that was killed.</summary>
    [Fact]
    public void KilledWriter_IsReported_WhenTheReaderWaitsInSlicesOfTheLivenessInterval()
    {
        var stream = Own(SharedStream.Open(Ns, "sliced-src", Words(8), RegionMode.Create));
        var reader = Own(stream.OpenReader<ulong>());
        var peer = StartPeer("write", "--name", "sliced-src", "--count", "1", "--hang", "true");
        peer.Expect("written");
        peer.Kill();
        var frame = new ulong[8];
        Assert.Equal(ReadStatus.Ok, reader.ReadInto(frame, Bound));

        var slices = 0;
        ReadStatus status;
        while ((status = reader.ReadInto(frame, WaitTuning.LivenessInterval)) == ReadStatus.Timeout && ++slices < 50)
        {
        }

        output.WriteLine($"writer death reported after {slices} slices");
        Assert.Equal(ReadStatus.WriterGone, status);
    }

    [Fact]
    public void KilledWriter_IsReportedToItsReader_AfterTheDrain()
    {
        var stream = Own(SharedStream.Open(Ns, "src", Words(8), RegionMode.Create));
        var reader = Own(stream.OpenReader<ulong>(new ReaderOptions { WaitPolicy = WaitPolicy.Block }));
        var peer = StartPeer("write", "--name", "src", "--count", "10", "--hang", "true");
        peer.Expect("written");
        Assert.Equal("attached", stream.GetStatistics().WriterState);

        peer.Kill();
        var frame = new ulong[8];
        for (var i = 0; i < 10; i++)
        {
            Assert.Equal(ReadStatus.Ok, reader.ReadInto(frame, Bound));
        }

        var watch = Stopwatch.StartNew();
        Assert.Equal(ReadStatus.WriterGone, reader.ReadInto(frame, Bound));
        output.WriteLine($"writer death reported {watch.Elapsed.TotalMilliseconds:0} ms after the drain");
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(2), $"reported after {watch.Elapsed}");
        Assert.Equal("dead", stream.GetStatistics().WriterState);

        // A new writer takes over where the dead one stopped.
        using var writer = stream.OpenWriter<ulong>();
        Assert.Equal(10, writer.Position);
        writer.Write(frame);
        Assert.Equal(ReadStatus.Ok, reader.ReadInto(frame, out var header, Bound));
        Assert.Equal(10, header.Sequence);
    }

    [Fact]
    public void OpenWriter_WhileAnotherProcessWrites_Throws()
    {
        var stream = Own(SharedStream.Open(Ns, "one", Words(8), RegionMode.Create));
        var peer = StartPeer("write", "--name", "one", "--count", "1", "--hang", "true");
        peer.Expect("written");
        var error = Assert.Throws<InvalidOperationException>(() => stream.OpenWriter<ulong>());
        Assert.Contains($"pid {peer.Pid}", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void StaleRegion_OfADeadOwner_FailsAttach_AndIsRecreatedByCreateOrAttach()
    {
        var peer = StartPeer("create", "--name", "stale");
        peer.Expect("created");
        Assert.True(peer.WaitForExit(Bound));
        Assert.True(SharedMemoryNamespace.Exists(Ns, "stale"));

        var error = Assert.Throws<StaleRegionException>(() => SharedStream.Open(Ns, "stale", Words(8), RegionMode.Attach));
        Assert.Contains($"pid {peer.Pid}, which has exited", error.Message, StringComparison.Ordinal);
        Assert.Contains("create_or_attach", error.Message, StringComparison.Ordinal);
        Assert.Throws<StaleRegionException>(() => SharedEvent.Open(Ns, "stale.evt", RegionMode.Attach));

        using var recreated = SharedStream.Open(Ns, "stale", Words(8), RegionMode.CreateOrAttach);
        Assert.True(recreated.Created);
        Assert.Equal(Environment.ProcessId, recreated.Owner.Pid);
        using var evt = SharedEvent.Open(Ns, "stale.evt");
        Assert.True(evt.Created);

        // The recreated region is not stale: attaching works again.
        using var attached = SharedStream.Open(Ns, "stale", Words(8), RegionMode.Attach);
        Assert.False(attached.Created);
    }

    [Fact]
    public void StaleRegion_OfAnotherFormat_IsRecreatedByCreateOrAttach()
    {
        var peer = StartPeer("create", "--name", "fmt", "--elements", "4");
        peer.Expect("created");
        Assert.True(peer.WaitForExit(Bound));

        using var recreated = SharedStream.Open(Ns, "fmt", Words(16), RegionMode.CreateOrAttach);
        Assert.True(recreated.Created);
        Assert.Equal(Words(16), recreated.Format);
    }

    [Fact]
    public void Events_PingPongBetweenProcesses()
    {
        using var ping = SharedEvent.Open(Ns, "ping", RegionMode.Create);
        using var pong = SharedEvent.Open(Ns, "pong", RegionMode.Create);
        var peer = StartPeer("events", "--wait", "ping", "--signal", "pong", "--rounds", "100");
        peer.Expect("ready");
        for (var i = 0; i < 100; i++)
        {
            ping.Signal();
            Assert.True(pong.WaitActivation(Bound), $"no pong for round {i}");
        }

        peer.Expect("done");
        Assert.Equal(0, pong.PendingActivations);
        Assert.Equal(0, ping.PendingActivations);
    }
}

/// <summary>Cases found in review: counts and entries of killed processes, stale regions still in use, races.</summary>
public sealed class PeerDeathTests(ITestOutputHelper output) : ShmTest
{
    private static readonly FrameFormat Words = new(ElementType.UInt64, 8);

    [Fact]
    public void ReaderKilledInItsSleep_IsForgotten_SoWritesStopWakingNobody()
    {
        var stream = Own(SharedStream.Open(Ns, "nap", Words, RegionMode.Create, new StreamOptions { CapacityFrames = 4 }));
        var peer = StartPeer("read", "--name", "nap", "--capacity", "4", "--count", "1");
        peer.Expect("ready");
        var watch = System.Diagnostics.Stopwatch.StartNew();
        while (stream.GetStatistics().SleepingReaders == 0 && watch.Elapsed < Bound)
        {
            Thread.Sleep(5);
        }

        Assert.Equal(1, stream.GetStatistics().SleepingReaders);
        peer.Kill();
        Assert.Equal(1, stream.GetStatistics().SleepingReaders);

        // Filling the ring makes the writer wait for the dead reader, find it dead, and reclaim it.
        var writer = Own(stream.OpenWriter<ulong>(new WriterOptions { WaitPolicy = WaitPolicy.Block }));
        for (var i = 0; i < 6; i++)
        {
            Assert.Equal(WriteStatus.Ok, writer.Write(new ulong[8], Bound));
        }

        var stats = stream.GetStatistics();
        output.WriteLine($"reclaimed {stats.ReclaimedReaders}, sleeping {stats.SleepingReaders}");
        Assert.Equal(1, stats.ReclaimedReaders);
        Assert.Equal(0, stats.SleepingReaders);
    }

    [Fact]
    public void StreamOfADeadCreator_WithALiveReader_IsNotStale()
    {
        var creator = StartPeer("create", "--name", "kept", "--hang", "true");
        creator.Expect("created");
        var stream = Own(SharedStream.Open(Ns, "kept", Words, RegionMode.Attach));
        var reader = Own(stream.OpenReader<ulong>());
        creator.Kill();

        using var again = SharedStream.Open(Ns, "kept", Words, RegionMode.CreateOrAttach);
        Assert.False(again.Created);
        using var attached = SharedStream.Open(Ns, "kept", Words, RegionMode.Attach);
        using var writer = attached.OpenWriter<ulong>();
        writer.Write(new ulong[8]);
        Assert.Equal(ReadStatus.Ok, reader.ReadInto(new ulong[8], Bound));
    }

    [Fact]
    public void StaleRegion_OpenedFromManyThreadsAtOnce_IsReplacedExactlyOnce()
    {
        var creator = StartPeer("create", "--name", "herd");
        creator.Expect("created");
        Assert.True(creator.WaitForExit(Bound));

        var streams = new SharedStream[6];
        using var start = new Barrier(streams.Length);
        var threads = Enumerable.Range(0, streams.Length).Select(i => new Thread(() =>
        {
            start.SignalAndWait(Bound);
            streams[i] = SharedStream.Open(Ns, "herd", Words);
        })).ToList();
        threads.ForEach(t => t.Start());
        Assert.All(threads, t => Assert.True(t.Join(Bound)));

        try
        {
            Assert.Single(streams, s => s.Created);
            using var writer = streams[0].OpenWriter<ulong>();
            var readers = streams.Select(s => s.OpenReader<ulong>(new ReaderOptions { Delivery = Delivery.Latest })).ToList();
            writer.Write(new ulong[8]);
            Assert.All(readers, r => Assert.Equal(ReadStatus.Ok, r.ReadInto(new ulong[8], TimeSpan.FromSeconds(5))));
            readers.ForEach(r => r.Dispose());
        }
        finally
        {
            foreach (var stream in streams)
            {
                stream.Dispose();
            }
        }
    }
}
