using System.Diagnostics;
using System.Runtime.InteropServices;
using Flowline.Runtime;
using Flowline.SharedMemory;

namespace Flowline.Tests.Runtime;

/// <summary>An auxiliary input gives a computation only intact frames, even when its writer laps every copy.</summary>
public sealed class AuxiliaryInputTests(ITestOutputHelper output) : RuntimeTest
{
    /// <summary>1 MiB frames: a copy takes long enough for a writer that only stamps both ends to lap a ring of 2 many times.</summary>
    private const int FrameLongs = 1 << 17;

    /// <summary>Publishes a frame whose first and last elements hold <paramref name="value"/> (cheap: the rest is left as it is).</summary>
    private static void Publish(StreamWriter<long> writer, long value)
    {
        Assert.Equal(WriteStatus.Ok, writer.Look(out var slot, TimeSpan.Zero));
        slot[0] = value;
        slot[^1] = value;
        writer.Publish();
    }

    /// <summary>The first and last elements of a frame.</summary>
    private static (long First, long Last) Ends(ReadOnlyMemory<byte> frame)
    {
        var values = MemoryMarshal.Cast<byte, long>(frame.Span);
        Assert.Equal(FrameLongs, values.Length);
        return (values[0], values[^1]);
    }

    [Fact]
    public void Refresh_WhileTheWriterLapsTheCopies_GivesOnlyIntactFrames_AndKeepsTheLastIntactOne()
    {
        var stream = SharedStream.Open(Namespace, "matrix", new FrameFormat(ElementType.Int64, FrameLongs), RegionMode.Create, new StreamOptions { CapacityFrames = 2 });
        var control = ControlBlock.Create(Namespace, "worker");
        try
        {
            var reporter = new WorkerReporter(control);
            using var writer = stream.OpenWriter<long>();
            using var auxiliary = new AuxiliaryInput(Namespace, "matrix", reporter);
            Assert.Equal((0L, 0L), Ends(auxiliary.Refresh()));
            Publish(writer, 1);
            Assert.Equal((1L, 1L), Ends(auxiliary.Refresh()));

            var stop = 0;
            var lapping = new Thread(() =>
            {
                for (long value = 2; Volatile.Read(ref stop) == 0; value++)
                {
                    Publish(writer, value);
                }
            });
            lapping.Start();
            long previous = 1;
            var refreshes = 0;
            var keptAfterFailedCopies = 0;
            try
            {
                // Until copies were torn, every copy of some refresh among them, within a bound.
                var watch = Stopwatch.StartNew();
                while (watch.Elapsed < TimeSpan.FromSeconds(10) && (auxiliary.TornCopies < 100 || refreshes < 200 || keptAfterFailedCopies == 0))
                {
                    var tornBefore = auxiliary.TornCopies;
                    var (first, last) = Ends(auxiliary.Refresh());
                    refreshes++;
                    Assert.True(first == last, $"refresh {refreshes} gave a torn frame: it starts as frame {first} and ends as frame {last}");
                    Assert.True(first >= previous, $"refresh {refreshes} went back from frame {previous} to frame {first}");
                    if (auxiliary.TornCopies - tornBefore == AuxiliaryInput.MaxAttempts)
                    {
                        // Every copy of this refresh was torn: the last intact frame is what the computation gets.
                        Assert.Equal(previous, first);
                        keptAfterFailedCopies++;
                    }

                    previous = first;
                }
            }
            finally
            {
                Volatile.Write(ref stop, 1);
                lapping.Join();
            }

            output.WriteLine($"{refreshes} refreshes, {auxiliary.TornCopies} torn copies, {keptAfterFailedCopies} refreshes kept the last intact frame");
            Assert.True(keptAfterFailedCopies > 0, $"the writer never lapped every copy of one of {refreshes} refreshes ({auxiliary.TornCopies} torn copies): nothing was tested");
            Assert.Equal(auxiliary.TornCopies, reporter.Counters.AuxiliaryTornCopies);
        }
        finally
        {
            stream.Dispose();
            control.Dispose();
            SharedMemoryNamespace.UnlinkAll(Namespace);
        }
    }
}
