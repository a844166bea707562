using System.Diagnostics;
using Flowline.SharedMemory.Tests.Infrastructure;

namespace Flowline.SharedMemory.Tests.Streams;

/// <summary>
/// What lossless frames no longer pay for: a writer with no latest reader attached claims slots without a
/// fence (decision 142). Latest readers that attach while such a writer runs flat out still hold intact
/// frames, and peeks still find overwritten frames torn.
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
            if (writer.Look(out var slot, TimeSpan.FromMilliseconds(100)) != WriteStatus.Ok)
            {
                continue; // No space (a lossless reader stopped reading): look again unless stopped.
            }

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
}
