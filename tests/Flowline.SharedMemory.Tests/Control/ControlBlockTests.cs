using System.Diagnostics;
using System.Runtime.InteropServices;
using Flowline.SharedMemory.Tests.Infrastructure;

namespace Flowline.SharedMemory.Tests.Control;

public sealed class ControlBlockTests : ShmTest
{
    /// <summary>The error text's room: 16 KiB less its i32 length (the layout in <see cref="ControlBlock"/>'s remarks).</summary>
    private const int ErrorCapacityBytes = 16_384 - 4;

    private ControlBlock Create(string name = "worker") => Own(ControlBlock.Create(Ns, name));

    private ControlBlock Attach(string name = "worker") => Own(ControlBlock.Attach(Ns, name));

    /// <summary>Metrics whose every field (and every per-input counter) is <paramref name="k"/>.</summary>
    private static WorkerMetrics Uniform(long k)
    {
        var m = new WorkerMetrics
        {
            FramesProcessed = k,
            OutputFrames = k,
            LastExecNs = k,
            AvgExecNs = k,
            JitterNs = k,
            Window = (int)k,
            Reserved = (int)k,
            ThroughputHz = k,
            LastProgressNs = k,
            PublishedNs = k,
            LatencyP50Ns = k,
            LatencyP90Ns = k,
            LatencyP99Ns = k,
            LatencyMaxNs = k,
            SkewEvents = k,
            SkippedGenerations = k,
            SyncTimeouts = k,
            MissedWrites = k,
            TornFrames = k,
            AuxiliaryTornCopies = k,
        };
        for (var i = 0; i < WorkerMetrics.MaxInputs; i++)
        {
            m.SkippedPerInput[i] = k;
        }

        return m;
    }

    /// <summary>Null if every field of <paramref name="m"/> holds the same counter, else the first field that differs.</summary>
    private static string? Disagreement(in WorkerMetrics m)
    {
        var k = m.FramesProcessed;
        (string Name, bool Equal)[] fields =
        [
            (nameof(m.OutputFrames), m.OutputFrames == k),
            (nameof(m.LastExecNs), m.LastExecNs == k),
            (nameof(m.AvgExecNs), m.AvgExecNs == k),
            (nameof(m.JitterNs), m.JitterNs == k),
            (nameof(m.Window), m.Window == (int)k),
            (nameof(m.Reserved), m.Reserved == (int)k),
            (nameof(m.ThroughputHz), m.ThroughputHz == k),
            (nameof(m.LastProgressNs), m.LastProgressNs == k),
            (nameof(m.PublishedNs), m.PublishedNs == k),
            (nameof(m.LatencyP50Ns), m.LatencyP50Ns == k),
            (nameof(m.LatencyP90Ns), m.LatencyP90Ns == k),
            (nameof(m.LatencyP99Ns), m.LatencyP99Ns == k),
            (nameof(m.LatencyMaxNs), m.LatencyMaxNs == k),
            (nameof(m.SkewEvents), m.SkewEvents == k),
            (nameof(m.SkippedGenerations), m.SkippedGenerations == k),
            (nameof(m.SyncTimeouts), m.SyncTimeouts == k),
            (nameof(m.MissedWrites), m.MissedWrites == k),
            (nameof(m.TornFrames), m.TornFrames == k),
            (nameof(m.AuxiliaryTornCopies), m.AuxiliaryTornCopies == k),
        ];
        foreach (var (name, equal) in fields)
        {
            if (!equal)
            {
                return $"{name} differs from FramesProcessed {k}";
            }
        }

        for (var i = 0; i < WorkerMetrics.MaxInputs; i++)
        {
            if (m.SkippedPerInput[i] != k)
            {
                return $"SkippedPerInput[{i}] = {m.SkippedPerInput[i]} differs from FramesProcessed {k}";
            }
        }

        return null;
    }

    private static byte[] BytesOf(WorkerMetrics m) => MemoryMarshal.AsBytes(MemoryMarshal.CreateReadOnlySpan(ref m, 1)).ToArray();

    [Fact]
    public void Create_MakesTheRegionHoldingHold_AndAttachSeesIt()
    {
        var manager = Create();
        var worker = Attach();

        Assert.Equal("worker", manager.Name);
        Assert.True(SharedMemoryNamespace.Exists(Ns, "worker"));
        Assert.Equal(WorkerCommand.Hold, manager.Command);
        Assert.Equal(WorkerCommand.Hold, worker.Command);
        Assert.Equal(WorkerState.Starting, manager.State);
        Assert.Equal(0, manager.HeartbeatNs);
    }

    [Fact]
    public void Attach_WithoutARegion_ThrowsRegionNotFound() =>
        Assert.Throws<RegionNotFoundException>(() => ControlBlock.Attach(Ns, "missing"));

    [Fact]
    public void TwoHandles_SeeEachOthersWrites()
    {
        var manager = Create();
        var worker = Attach();

        manager.Command = WorkerCommand.Run;
        Assert.Equal(WorkerCommand.Run, worker.Command);

        var before = MonotonicClock.NowNs();
        worker.State = WorkerState.Running;
        worker.Pid = 4242;
        worker.ThreadId = 4343;
        worker.StartedNs = 123_456_789;
        worker.Beat();

        Assert.Equal(WorkerState.Running, manager.State);
        Assert.Equal(4242, manager.Pid);
        Assert.Equal(4343, manager.ThreadId);
        Assert.Equal(123_456_789, manager.StartedNs);
        Assert.InRange(manager.HeartbeatNs, before, MonotonicClock.NowNs());

        worker.WriteError("boom");
        worker.WriteReport("{\"x\":1}");
        worker.WriteMetrics(Uniform(7));
        Assert.Equal("boom", manager.ReadError());
        Assert.Equal("{\"x\":1}", manager.ReadReport());
        Assert.True(manager.TryReadMetrics(out var metrics));
        Assert.Equal(7, metrics.FramesProcessed);
    }

    [Fact]
    public void Create_OverAnExistingBlock_StartsAfresh()
    {
        using (var first = ControlBlock.Create(Ns, "worker"))
        {
            first.Command = WorkerCommand.Stop;
            first.WriteError("old");
        }

        var second = Create();
        Assert.Equal(WorkerCommand.Hold, second.Command);
        Assert.Null(second.ReadError());
    }

    [Fact]
    public void WaitForCommandChange_WhenTheCommandAlreadyDiffers_ReturnsAtOnce()
    {
        var block = Create();
        block.Command = WorkerCommand.Pause;

        var watch = Stopwatch.StartNew();
        Assert.Equal(WorkerCommand.Pause, block.WaitForCommandChange(WorkerCommand.Hold, TimeSpan.FromSeconds(20)));
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(2), $"took {watch.Elapsed}");
    }

    [Fact]
    public void WaitForCommandChange_WithNoChange_ReturnsTheSameCommandAfterTheTimeout()
    {
        var block = Create();

        var watch = Stopwatch.StartNew();
        Assert.Equal(WorkerCommand.Hold, block.WaitForCommandChange(WorkerCommand.Hold, TimeSpan.FromMilliseconds(150)));
        Assert.InRange(watch.Elapsed, TimeSpan.FromMilliseconds(140), TimeSpan.FromSeconds(10));
    }

    [Fact]
    public void CommandSet_OnOneHandle_WakesAWaiterOnAnotherThreadAndHandlePromptly()
    {
        var manager = Create();
        var worker = Attach();
        long setAt = 0;
        var setter = new Thread(() =>
        {
            // Gives the waiter time to go to sleep; the result does not depend on it.
            Thread.Sleep(100);
            Volatile.Write(ref setAt, Stopwatch.GetTimestamp());
            manager.Command = WorkerCommand.Run;
        });
        setter.Start();

        // Futex waits are capped at 10 s: a lost wake-up would show as a return near then.
        var seen = worker.WaitForCommandChange(WorkerCommand.Hold, TimeSpan.FromSeconds(30));
        var returnedAt = Stopwatch.GetTimestamp();

        Assert.True(setter.Join(Bound));
        Assert.Equal(WorkerCommand.Run, seen);
        var latency = Stopwatch.GetElapsedTime(Volatile.Read(ref setAt), returnedAt);
        Assert.True(latency < TimeSpan.FromSeconds(2), $"the waiter returned {latency} after the command changed");
    }

    [Fact]
    public void WakeCommandWaiters_WakesAWaiterWithoutChangingTheCommand()
    {
        var manager = Create();
        var worker = Attach();
        var seen = (WorkerCommand)(-1);
        var waiter = new Thread(() => seen = worker.WaitForCommandChange(WorkerCommand.Hold, TimeSpan.FromSeconds(30)));
        var watch = Stopwatch.StartNew();
        waiter.Start();

        // The waiter may not be asleep yet when a wake comes: wake until it has returned.
        while (!waiter.Join(TimeSpan.FromMilliseconds(5)) && watch.Elapsed < Bound)
        {
            manager.WakeCommandWaiters();
        }

        Assert.False(waiter.IsAlive);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"the waiter returned after {watch.Elapsed} (a futex wait lasts up to 10 s)");
        Assert.Equal(WorkerCommand.Hold, seen);
        Assert.Equal(WorkerCommand.Hold, manager.Command);
    }

    [Fact]
    public void TryReadMetrics_BeforeAnyWrite_GivesZeros()
    {
        var block = Create();
        Assert.True(block.TryReadMetrics(out var metrics));
        Assert.All(BytesOf(metrics), b => Assert.Equal(0, b));
    }

    [Fact]
    public void WriteMetrics_ThenTryReadMetrics_RoundTripsEveryField()
    {
        var worker = Create();
        var manager = Attach();
        var written = new WorkerMetrics
        {
            FramesProcessed = 1,
            OutputFrames = 2,
            LastExecNs = 3,
            AvgExecNs = 4.5,
            JitterNs = 5.25,
            Window = 6,
            Reserved = 7,
            ThroughputHz = 8.125,
            LastProgressNs = 9,
            PublishedNs = 10,
            LatencyP50Ns = 11,
            LatencyP90Ns = 12,
            LatencyP99Ns = 13,
            LatencyMaxNs = 14,
            SkewEvents = 15,
            SkippedGenerations = 16,
            SyncTimeouts = 17,
            MissedWrites = 18,
            TornFrames = 19,
            AuxiliaryTornCopies = 20,
        };
        for (var i = 0; i < WorkerMetrics.MaxInputs; i++)
        {
            written.SkippedPerInput[i] = 100 + i;
        }

        worker.WriteMetrics(written);

        Assert.True(manager.TryReadMetrics(out var read));
        Assert.Equal(BytesOf(written), BytesOf(read));
        Assert.Equal(4.5, read.AvgExecNs);
        Assert.Equal(19, read.TornFrames);
        Assert.Equal(20, read.AuxiliaryTornCopies);
        for (var i = 0; i < WorkerMetrics.MaxInputs; i++)
        {
            Assert.Equal(100 + i, read.SkippedPerInput[i]);
        }

        worker.WriteMetrics(Uniform(3));
        Assert.True(manager.TryReadMetrics(out read));
        Assert.Null(Disagreement(read));
        Assert.Equal(3, read.FramesProcessed);
    }

    [Fact]
    public void ConcurrentWriterAndReader_NeverGiveTornMetrics()
    {
        var worker = Create();
        var manager = Attach();
        var stop = 0;
        var writer = new Thread(() =>
        {
            for (long k = 1; Volatile.Read(ref stop) == 0; k++)
            {
                worker.WriteMetrics(Uniform(k));
            }
        });
        writer.Start();

        long reads = 0;
        long last = 0;
        string? torn = null;
        var watch = Stopwatch.StartNew();
        try
        {
            while (watch.Elapsed < TimeSpan.FromSeconds(1) && torn is null)
            {
                if (!manager.TryReadMetrics(out var m))
                {
                    continue;
                }

                reads++;
                torn = Disagreement(m) ?? (m.FramesProcessed < last ? $"went back from {last} to {m.FramesProcessed}" : null);
                last = m.FramesProcessed;
            }
        }
        finally
        {
            Volatile.Write(ref stop, 1);
            Assert.True(writer.Join(Bound));
        }

        Assert.Null(torn);
        Assert.True(reads > 0, "no read succeeded in a second");
        Assert.True(last > 0, "the reader never saw a write");
    }

    [Fact]
    public void ReadError_BeforeAnyError_IsNull_AndGivesTheTextAfter()
    {
        var worker = Create();
        var manager = Attach();
        Assert.Null(manager.ReadError());

        var text = "System.InvalidOperationException: bad frame µ\n   at Kernel.Compute()";
        worker.WriteError(text);
        Assert.Equal(text, manager.ReadError());

        worker.WriteError("short");
        Assert.Equal("short", manager.ReadError());
    }

    [Fact]
    public void WriteError_LongerThanTheSpace_IsCutAtTheCapacity()
    {
        var block = Create();
        var text = string.Concat(Enumerable.Range(0, 2_000).Select(i => $"line {i:D4};"));
        Assert.True(text.Length > ErrorCapacityBytes);

        block.WriteError(text);

        var read = block.ReadError();
        Assert.NotNull(read);
        Assert.Equal(ErrorCapacityBytes, read.Length);
        Assert.Equal(text[..ErrorCapacityBytes], read);
    }

    [Fact]
    public void ReadReport_BeforeAnyReport_IsNull_AndRoundTripsAfter()
    {
        var worker = Create();
        var manager = Attach();
        Assert.Null(manager.ReadReport());

        var report = "{\"generations\":12,\"jitter_us\":3.5,\"unit\":\"µs\"}";
        worker.WriteReport(report);
        Assert.Equal(report, manager.ReadReport());

        var large = "{\"pad\":\"" + new string('x', 16_000) + "\"}";
        worker.WriteReport(large);
        Assert.Equal(large, manager.ReadReport());
    }

    [Fact]
    public void WriteReport_OverSixteenKiB_ReplacesTheReportWithNone()
    {
        var block = Create();
        block.WriteReport("{\"a\":1}");

        block.WriteReport("{\"pad\":\"" + new string('x', 16_400) + "\"}");

        Assert.Null(block.ReadReport());
    }

    [Fact]
    public void Unlink_RemovesTheFile_AndAttachThenFails()
    {
        var block = Create();
        var path = SharedMemoryNamespace.PathOf(Ns, "worker");
        Assert.True(File.Exists(path));

        Assert.True(block.Unlink());

        Assert.False(File.Exists(path));
        Assert.Throws<RegionNotFoundException>(() => ControlBlock.Attach(Ns, "worker"));
        block.Command = WorkerCommand.Stop; // the mapping stays usable until disposed
        Assert.Equal(WorkerCommand.Stop, block.Command);
    }

    [Fact]
    public void Dispose_Twice_IsHarmless_AndLeavesTheFileToUnlink()
    {
        var block = ControlBlock.Create(Ns, "worker");
        block.Dispose();
        block.Dispose();

        Assert.True(SharedMemoryNamespace.Exists(Ns, "worker"));
        Assert.True(SharedMemoryNamespace.Unlink(Ns, "worker"));
        Assert.False(SharedMemoryNamespace.Exists(Ns, "worker"));
    }
}
