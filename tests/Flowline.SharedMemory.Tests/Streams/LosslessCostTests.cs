using System.Diagnostics;
using Flowline.SharedMemory.Tests.Infrastructure;

namespace Flowline.SharedMemory.Tests.Streams;

/// <summary>
/// What lossless frames no longer pay for: a writer with no latest reader attached claims slots without a
/// fence (decision 142), and a reader behind its writer stores its position once per batch (decision 143).
/// Latest readers that attach while such a writer runs flat out still hold intact frames, peeks still
/// find overwritten frames torn, and a release not stored yet never holds a writer back while its reader
/// waits on another stream.
/// </summary>
public sealed class LosslessCostTests : ShmTest
{
    private const int Elements = 16;
    private static readonly FrameFormat Words = new(ElementType.Int64, Elements);

    private static void Fill(long n, Span<long> frame)
    {
        for (var i = 0; i < frame.Length; i++)
        {
            frame[i] = (n * 1000) + i;
        }
    }

    private static bool Holds(long n, ReadOnlySpan<long> frame)
    {
        for (var i = 0; i < frame.Length; i++)
        {
            if (frame[i] != (n * 1000) + i)
            {
                return false;
            }
        }

        return true;
    }

    private SharedStream Create(string name, int capacity) =>
        Own(SharedStream.Open(Ns, name, Words, RegionMode.Create, new StreamOptions { CapacityFrames = capacity }));

    /// <summary>A writer thread that fills every frame with its sequence in place, as fast as it can, until stopped.</summary>
    private static Task Flood(StreamWriter<long> writer, CancellationToken stop) => Task.Run(() =>
    {
        while (!stop.IsCancellationRequested)
        {
            Assert.Equal(WriteStatus.Ok, writer.Look(out var slot, Bound));
            Fill(writer.Position, slot);
            writer.Publish();
        }
    });

    [Fact]
    public async Task LatestReadersAttachingWhileTheWriterRunsUnheld_HoldIntactFrames_AsTheWriterLapsTheRing()
    {
        // Four slots: latest readers + 2 with one reader; the writer laps the ring every four frames.
        var stream = Create("attach", 4);
        var writer = Own(stream.OpenWriter<long>());
        using var stop = new CancellationTokenSource();
        var flood = Flood(writer, stop.Token);
        try
        {
            var clock = Stopwatch.StartNew();
            var held = 0;
            var lapsWhileHeld = 0L;
            while (held < 300 && clock.Elapsed < TimeSpan.FromSeconds(10))
            {
                // Every attach races the unfenced claims of a writer that saw no latest reader.
                using var reader = stream.OpenReader<long>(new ReaderOptions { Delivery = Delivery.Latest });
                Assert.Equal(ReadStatus.Ok, reader.Look(out var frame, out var header, Bound));
                var sequence = header.Sequence;
                Assert.True(Holds(sequence, frame), $"frame {sequence} was torn when looked at");

                // Hold it while the writer laps the ring twice (it may be descheduled: bounded by time).
                var until = clock.Elapsed + TimeSpan.FromMilliseconds(20);
                while (writer.Position < sequence + 9 && clock.Elapsed < until)
                {
                    Thread.SpinWait(50);
                }

                lapsWhileHeld += writer.Position >= sequence + 9 ? 1 : 0;
                Assert.True(Holds(sequence, frame), $"held frame {sequence} was overwritten (writer at {writer.Position})");
                Assert.True(reader.Increment());
                Assert.Equal(0, reader.TornCopies);
                held++;
            }

            Assert.True(held >= 20, $"only {held} latest readers attached in the time");
            Assert.True(lapsWhileHeld > 0, "the writer never lapped the ring while a frame was held");
        }
        finally
        {
            await stop.CancelAsync();
            await flood.WaitAsync(Bound);
        }
    }

    [Fact]
    public async Task PeeksOfAWriterRunningUnheld_AreEitherIntactOrReportedTorn()
    {
        // A peek holds nothing: the seqlock on the slot's sequence word must catch every overwrite,
        // also when the writer claims without a fence. A latest reader attaches and leaves first: its
        // bit is cleared and the writer goes back to unheld claims.
        var stream = Create("peek", 4);
        var writer = Own(stream.OpenWriter<long>());
        stream.OpenReader<long>(new ReaderOptions { Delivery = Delivery.Latest }).Dispose();
        var reader = Own(stream.OpenReader<long>());
        var copy = new long[Elements];
        using var stop = new CancellationTokenSource();
        var flood = Flood(writer, stop.Token);
        try
        {
            var intact = 0;
            var torn = 0;
            var clock = Stopwatch.StartNew();
            while (intact + torn < 200_000 && clock.Elapsed < TimeSpan.FromSeconds(5))
            {
                // Read every frame first (lossless), so that the writer may overwrite the one peeked at.
                while (reader.FramesAvailable > 0)
                {
                    Assert.Equal(ReadStatus.Ok, reader.ReadInto(copy, TimeSpan.Zero));
                }

                if (!reader.PeekNewest(out var newest, out var header))
                {
                    continue;
                }

                System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(newest.Span).CopyTo(copy);
                if (reader.IsStillIntact(header.Sequence))
                {
                    Assert.True(Holds(header.Sequence, copy), $"a peek of frame {header.Sequence} passed as intact but was torn");
                    intact++;
                }
                else
                {
                    torn++;
                }
            }

            Assert.True(intact > 0, "no peek was intact");
        }
        finally
        {
            await stop.CancelAsync();
            await flood.WaitAsync(Bound);
        }
    }

    [Fact]
    public void ReaderBehind_StoresItsPosition_OncePerBatch_AndAtOnceWhenItCatchesUp()
    {
        var stream = Create("defer", 64);
        var reader = Own(stream.OpenReader<long>());
        var writer = Own(stream.OpenWriter<long>());
        var frame = new long[Elements];
        for (long n = 0; n < 40; n++)
        {
            Fill(n, frame);
            Assert.Equal(WriteStatus.Ok, writer.Write(frame, TimeSpan.Zero));
        }

        long Stored() => stream.GetStatistics().Readers.Single().Position;

        Assert.Equal(16, reader.BatchFrames);
        var stores = new List<long> { Stored() };
        for (long n = 0; n < 40; n++)
        {
            Assert.Equal(ReadStatus.Ok, reader.ReadInto(frame, TimeSpan.Zero));
            Assert.True(Holds(n, frame));
            if (Stored() != stores[^1])
            {
                stores.Add(Stored());
            }
        }

        // Behind: one store per 16 frames; the last frame known is released at once.
        Assert.Equal([0, 16, 32, 40], stores);
        Assert.Equal(40, stream.GetStatistics().Readers.Single().FramesRead);

        // Keeping up: every frame is released at once.
        Fill(40, frame);
        Assert.Equal(WriteStatus.Ok, writer.Write(frame, TimeSpan.Zero));
        Assert.Equal(ReadStatus.Ok, reader.Look(out var looked, TimeSpan.Zero));
        Assert.True(Holds(40, looked));
        Assert.True(reader.Increment());
        Assert.Equal(41, Stored());
    }

    [Fact]
    public async Task AReleaseNotStoredYet_IsStoredBeforeItsReaderWaitsOnAnotherStream()
    {
        // A's writer needs the slot of the frame read from A; B is written only once A's writer got it.
        var a = Create("a", 8);
        var b = Create("b", 8);
        var fromA = Own(a.OpenReader<long>(new ReaderOptions { WaitPolicy = WaitPolicy.Block }));
        var fromB = Own(b.OpenReader<long>(new ReaderOptions { WaitPolicy = WaitPolicy.Block }));
        var toA = Own(a.OpenWriter<long>(new WriterOptions { WaitPolicy = WaitPolicy.Block }));
        var toB = Own(b.OpenWriter<long>());
        var frame = new long[Elements];
        for (long n = 0; n < 8; n++)
        {
            Fill(n, frame);
            Assert.Equal(WriteStatus.Ok, toA.Write(frame, TimeSpan.Zero));
        }

        Assert.Equal(ReadStatus.Ok, fromA.ReadInto(frame, TimeSpan.Zero));
        Assert.Equal(0, a.GetStatistics().Readers.Single().Position); // deferred: 7 more frames are known

        var relay = Task.Run(() =>
        {
            Fill(8, frame);
            Assert.Equal(WriteStatus.Ok, toA.Write(frame, Bound));
            Fill(0, frame);
            Assert.Equal(WriteStatus.Ok, toB.Write(frame, Bound));
        });

        // Without the store before this wait, A's writer waits for that slot and B never gets its frame.
        var got = new long[Elements];
        Assert.Equal(ReadStatus.Ok, fromB.ReadInto(got, Bound));
        Assert.True(Holds(0, got));
        await relay.WaitAsync(Bound);
        Assert.Equal(1, a.GetStatistics().Readers.Single().Position);
    }

    [Fact]
    public async Task AReleaseNotStoredYet_IsStoredBeforeItsReaderWaitsForSpaceInAnotherStream()
    {
        // The thread that read from A writes to C, whose ring is full; C's reader reads only once A's writer got its slot.
        var a = Create("a2", 8);
        var c = Create("c2", 8);
        var fromA = Own(a.OpenReader<long>());
        var fromC = Own(c.OpenReader<long>());
        var toA = Own(a.OpenWriter<long>(new WriterOptions { WaitPolicy = WaitPolicy.Block }));
        var toC = Own(c.OpenWriter<long>(new WriterOptions { WaitPolicy = WaitPolicy.Block }));
        var frame = new long[Elements];
        for (long n = 0; n < 8; n++)
        {
            Fill(n, frame);
            Assert.Equal(WriteStatus.Ok, toA.Write(frame, TimeSpan.Zero));
            Assert.Equal(WriteStatus.Ok, toC.Write(frame, TimeSpan.Zero));
        }

        Assert.Equal(ReadStatus.Ok, fromA.ReadInto(frame, TimeSpan.Zero));
        Assert.Equal(0, a.GetStatistics().Readers.Single().Position);

        var drain = Task.Run(() =>
        {
            var other = new long[Elements];
            Fill(8, other);
            Assert.Equal(WriteStatus.Ok, toA.Write(other, Bound));
            Assert.Equal(ReadStatus.Ok, fromC.ReadInto(other, Bound));
        });

        Fill(8, frame);
        Assert.Equal(WriteStatus.Ok, toC.Write(frame, Bound));
        await drain.WaitAsync(Bound);
    }
}
