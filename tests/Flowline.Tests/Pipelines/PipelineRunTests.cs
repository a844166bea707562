using System.Runtime.InteropServices;
using Flowline.Documents;
using Flowline.Pipelines;
using Flowline.Tests.Runtime;

namespace Flowline.Tests.Pipelines;

/// <summary>Running pipelines of tasks in worker processes and on threads: exact values, order, end of stream, the bindings' operations, and stopping.</summary>
public sealed class PipelineRunTests : RuntimeTest
{
    private static readonly TimeSpan RunTimeout = TimeSpan.FromSeconds(20);

    /// <summary>Frame n of the doubled stream: (n*8 + i) * 2.</summary>
    private static float[] Doubled(int n) => [.. Enumerable.Range(0, PipelineTasks.FrameLength).Select(i => (float)(((n * PipelineTasks.FrameLength) + i) * 2))];

    [Fact]
    public void Run_ProcessTasks_ComputeExactValuesInOrderWithoutLoss()
    {
        using var pipe = new Pipeline(Namespace);
        pipe.AddStream<float>("samples", [PipelineTasks.FrameLength], frames: 4)
            .AddStream<float>("doubled", [PipelineTasks.FrameLength], frames: 4);
        pipe.AddTask("source", PipelineTasks.Source, writes: new() { ["samples"] = "samples" });
        pipe.AddTask("scale", PipelineTasks.Scale, reads: new() { ["samples"] = "samples" }, writes: new() { ["doubled"] = "doubled" });
        pipe.AddTask("sink", PipelineTasks.SinkToFile, reads: new() { ["doubled"] = "doubled" });
        var path = PipelineTasks.ResultPath(Namespace, "sink");
        try
        {
            pipe.Compile();
            Assert.All(pipe.Manager.Plan.Workers, w => Assert.Equal(WorkerPlacement.Process, w.Placement));
            pipe.Run(RunTimeout);
            var lines = File.ReadAllLines(path);
            Assert.Equal(PipelineTasks.Frames + 1, lines.Length);
            for (var n = 0; n < PipelineTasks.Frames; n++)
            {
                Assert.Equal(string.Join(' ', Doubled(n)), lines[n]);
            }

            Assert.Equal("end True", lines[^1]);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Run_ThreadClosures_ComputeExactValuesInOrderWithoutLoss()
    {
        using var pipe = new Pipeline(Namespace);
        pipe.AddStream<float>("samples", [PipelineTasks.FrameLength], frames: 4)
            .AddStream<float>("doubled", [PipelineTasks.FrameLength], frames: 4);
        var frames = PipelineTasks.Frames;
        var received = new List<float[]>();
        var endOfStream = false;
        pipe.AddTask(
            "source",
            (TaskWriter<float> samples) =>
            {
                for (var n = 0; n < frames; n++)
                {
                    samples.Write([.. Enumerable.Range(n * PipelineTasks.FrameLength, PipelineTasks.FrameLength).Select(v => (float)v)]);
                }

                samples.Close();
            },
            writes: new() { ["samples"] = "samples" });
        pipe.AddTask("scale", PipelineTasks.Scale, reads: new() { ["samples"] = "samples" }, writes: new() { ["doubled"] = "doubled" }, placement: WorkerPlacement.Thread);
        pipe.AddTask(
            "sink",
            (TaskReader<float> doubled) =>
            {
                while (doubled.Read(Timeout.InfiniteTimeSpan) is { } frame)
                {
                    received.Add(frame);
                }

                endOfStream = doubled.EndOfStream;
            },
            reads: new() { ["doubled"] = "doubled" });
        pipe.Compile();
        Assert.All(pipe.Manager.Plan.Workers, w => Assert.Equal(WorkerPlacement.Thread, w.Placement));
        pipe.Run(RunTimeout);
        Assert.Equal(frames, received.Count);
        for (var n = 0; n < frames; n++)
        {
            Assert.Equal(Doubled(n), received[n]);
        }

        Assert.True(endOfStream);
    }

    [Fact]
    public void Read_AfterTheWriterCloses_ReturnsNullWithEndOfStream()
    {
        using var pipe = new Pipeline(Namespace);
        pipe.AddStream<int>("values", [2], frames: 4);
        var received = new List<int[]>();
        var endBefore = true;
        var endAfter = false;
        int[]? again = [];
        pipe.AddTask(
            "writer",
            (TaskWriter<int> values) =>
            {
                values.Write([1, 2]);
                values.Write([3, 4]);
                values.Close();
            },
            writes: new() { ["values"] = "values" });
        pipe.AddTask(
            "reader",
            (TaskReader<int> values) =>
            {
                endBefore = values.EndOfStream;

                // Reads without a timeout: only the end of the stream can end them (Run's timeout fails the test otherwise).
                while (values.Read(Timeout.InfiniteTimeSpan) is { } frame)
                {
                    received.Add(frame);
                }

                endAfter = values.EndOfStream;
                again = values.Read(Timeout.InfiniteTimeSpan);
            },
            reads: new() { ["values"] = "values" });
        pipe.Run(RunTimeout);
        Assert.Equal(new[] { new[] { 1, 2 }, new[] { 3, 4 } }, received);
        Assert.False(endBefore);
        Assert.True(endAfter);
        Assert.Null(again);
    }

    [Fact]
    public void LookAndIncrement_OnBothSides_DeliverEveryFrameInPlace()
    {
        using var pipe = new Pipeline(Namespace);
        pipe.AddStream<int>("values", [4], frames: 2);
        const int Frames = 50;
        var received = new List<int[]>();
        var writerIncrementWithoutLook = true;
        var writerLooks = 0;
        pipe.AddTask(
            "writer",
            (TaskWriter<int> values) =>
            {
                writerIncrementWithoutLook = values.Increment();
                for (var n = 0; n < Frames; n++)
                {
                    if (values.Look(out var slot, TimeSpan.FromSeconds(10)))
                    {
                        writerLooks++;
                        slot.Fill(n);
                        slot[0] = -n;
                        values.Increment();
                    }
                }

                values.Close();
            },
            writes: new() { ["values"] = "values" });
        pipe.AddTask(
            "reader",
            (TaskReader<int> values) =>
            {
                while (values.Look(out var frame, TimeSpan.FromSeconds(10)))
                {
                    received.Add(frame.ToArray());
                    values.Increment();
                }

            },
            reads: new() { ["values"] = "values" });
        pipe.Run(RunTimeout);
        Assert.Equal(Frames, writerLooks);
        Assert.Equal(Enumerable.Range(0, Frames).Select(n => new[] { -n, n, n, n }), received);
        Assert.False(writerIncrementWithoutLook);
        Assert.Equal(Frames, pipe.Metrics("reader")!.FramesProcessed);
    }

    [Fact]
    public void ReaderIncrement_WithoutLook_ReturnsFalse()
    {
        using var pipe = new Pipeline(Namespace);
        pipe.AddStream<int>("values", [1], frames: 2);
        bool? released = null;
        pipe.AddTask("writer", (TaskWriter<int> values) => values.Close(), writes: new() { ["values"] = "values" });
        pipe.AddTask("reader", (TaskReader<int> values) => { released = values.Increment(); }, reads: new() { ["values"] = "values" });
        pipe.Run(RunTimeout);
        Assert.False(released);
    }

    [Fact]
    public void ReadIntoAndWrite_WrongLength_ThrowArgumentException()
    {
        using var pipe = new Pipeline(Namespace);
        pipe.AddStream<float>("values", [2, 3], frames: 2);
        Exception? write = null;
        Exception? readInto = null;
        var frameLength = 0;
        pipe.AddTask(
            "writer",
            (TaskWriter<float> values) =>
            {
                write = Record.Exception(() => values.Write(new float[5]));
                values.Write(new float[6]);
                values.Close();
            },
            writes: new() { ["values"] = "values" });
        pipe.AddTask(
            "reader",
            (TaskReader<float> values) =>
            {
                frameLength = values.FrameLength;
                readInto = Record.Exception(() => values.ReadInto(new float[3], TimeSpan.FromSeconds(5)));
                while (values.Read(TimeSpan.FromSeconds(5)) is not null)
                {
                }
            },
            reads: new() { ["values"] = "values" });
        pipe.Run(RunTimeout);
        Assert.Equal(6, frameLength);
        Assert.Contains("not 5", Assert.IsType<ArgumentException>(write).Message, StringComparison.Ordinal);
        Assert.Contains("not 3", Assert.IsType<ArgumentException>(readInto).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void SetBlocking_False_StopsHoldingTheWriterBack_AndTrueResumesAtTheNewestFrame()
    {
        using var pipe = new Pipeline(Namespace);
        pipe.AddStream<int>("values", [1], frames: 4).AddEvent("ready").AddEvent("written").AddEvent("resumed");
        var events = new Dictionary<string, string> { ["ready"] = "ready", ["written"] = "written", ["resumed"] = "resumed" };
        const int Backlog = 100;
        var writtenCount = 0;
        var writerWaits = new List<bool>();
        var readerWaits = new List<bool>();
        var blocking = new List<bool>();
        int[]? afterResume = [];
        int[]? next = null;
        var end = false;
        pipe.AddTask(
            "writer",
            (TaskWriter<int> values, TaskEvent ready, TaskEvent written, TaskEvent resumed) =>
            {
                writerWaits.Add(ready.WaitActivation(TimeSpan.FromSeconds(10)));
                for (var i = 0; i < Backlog; i++)
                {
                    writtenCount += values.Write([i], TimeSpan.FromSeconds(2)) ? 1 : 0;
                }

                written.Signal();
                writerWaits.Add(resumed.WaitActivation(TimeSpan.FromSeconds(10)));
                values.Write([999], TimeSpan.FromSeconds(5));
                values.Close();
            },
            writes: new() { ["values"] = "values" },
            events: events);
        pipe.AddTask(
            "reader",
            (TaskReader<int> values, TaskEvent ready, TaskEvent written, TaskEvent resumed) =>
            {
                blocking.Add(values.IsBlocking);
                values.SetBlocking(false);
                blocking.Add(values.IsBlocking);
                ready.Signal();
                readerWaits.Add(written.WaitActivation(TimeSpan.FromSeconds(10)));
                values.SetBlocking(true);
                blocking.Add(values.IsBlocking);
                afterResume = values.Read();
                resumed.Signal();
                next = values.Read(TimeSpan.FromSeconds(10));
                end = values.Read(TimeSpan.FromSeconds(10)) is null && values.EndOfStream;
            },
            reads: new() { ["values"] = "values" },
            events: events);
        pipe.Run(RunTimeout);
        Assert.Equal(new[] { true, true }, writerWaits);
        Assert.Equal(new[] { true }, readerWaits);
        Assert.Equal(Backlog, writtenCount);
        Assert.Equal(new[] { true, false, true }, blocking);
        Assert.Null(afterResume);
        Assert.Equal(new[] { 999 }, next);
        Assert.True(end);
    }

    [Fact]
    public void Stop_FiresTheTokenOfAThreadTask_AndEndsABlockedRead()
    {
        using var pipe = new Pipeline(Namespace);
        pipe.AddStream<float>("values", [4]);
        using var running = new CountdownEvent(2);
        var tokenFired = false;
        var readEnded = false;
        Exception? readError = null;
        TaskContext? context = null;
        pipe.AddTask(
            "idle",
            (TaskWriter<float> values, CancellationToken stop, TaskContext ctx) =>
            {
                context = ctx;
                running.Signal();
                tokenFired = stop.WaitHandle.WaitOne(TimeSpan.FromSeconds(15)) && ctx.Stopping.IsCancellationRequested;
            },
            writes: new() { ["values"] = "values" });
        pipe.AddTask(
            "blocked",
            (TaskReader<float> values) =>
            {
                running.Signal();
                try
                {
                    values.Read(Timeout.InfiniteTimeSpan);
                }
                catch (Exception e)
                {
                    readError = e;
                    throw;
                }
                finally
                {
                    readEnded = true;
                }
            },
            reads: new() { ["values"] = "values" });
        pipe.Start();
        Assert.True(running.Wait(TimeSpan.FromSeconds(10)), "both tasks run");
        Assert.False(pipe.Join(TimeSpan.FromMilliseconds(200)), "the tasks wait until stopped");
        pipe.Stop();
        Assert.True(pipe.Join(TimeSpan.FromSeconds(5)));

        // The tasks ended because they were told (their token, their read), not because the stop timed out on them.
        Assert.DoesNotContain(pipe.Manager.Events(), e => e.Data["error"] is { } error && ((string?)error ?? "").Contains("did not stop", StringComparison.Ordinal));
        Assert.True(tokenFired);
        Assert.True(readEnded);
        Assert.IsAssignableFrom<OperationCanceledException>(readError);
        Assert.Equal("idle", context!.Name);
        Assert.Equal(Namespace, context.Namespace);
        Assert.DoesNotContain(pipe.Manager.Events(), e => e.Data["error"] is not null);
    }

    [Fact]
    public void Stop_EndsABlockedReadInAProcessTask_WhichGetsItsContextAndToken()
    {
        using var pipe = new Pipeline(Namespace);
        pipe.AddStream<float>("values", [4]);
        pipe.AddTask("idle", (TaskWriter<float> values, CancellationToken stop) => stop.WaitHandle.WaitOne(TimeSpan.FromSeconds(15)), writes: new() { ["values"] = "values" });
        pipe.AddTask("blocked", PipelineTasks.BlockedReader, reads: new() { ["input"] = "values" });
        var path = PipelineTasks.ResultPath(Namespace, "blocked");
        try
        {
            pipe.Compile();
            Assert.Equal(WorkerPlacement.Process, pipe.Manager.Plan.Workers.Single(w => w.Name == "blocked").Placement);
            pipe.Start();
            WaitUntil(() => File.Exists(path) && File.ReadAllText(path).EndsWith('\n'), "the process task runs");
            Assert.False(pipe.Join(TimeSpan.FromMilliseconds(200)), "the task waits until stopped");
            var pid = (int)pipe.Manager.Status().Json()["workers"]!["blocked"]!["pid"]!;
            pipe.Stop();
            Assert.True(pipe.Join(TimeSpan.FromSeconds(5)));
            Assert.Equal(new[] { $"blocked {Namespace} False", "cancelled True True" }, File.ReadAllLines(path));
            var stopped = pipe.Manager.Events().Last(e => e.Type == "worker_stopped" && (string?)e.Data["kernel"] == "blocked");
            Assert.Equal(pid, (int?)stopped.Data["pid"]);
            Assert.Null(stopped.Data["error"]);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Start_Twice_ThrowsInvalidOperationException()
    {
        using var pipe = new Pipeline(Namespace);
        pipe.AddStream<int>("values", [1]);
        pipe.AddTask("quick", (TaskWriter<int> values) => values.Close(), writes: new() { ["values"] = "values" });
        pipe.AddTerminator("end", new() { ["values"] = "values" });
        pipe.Start();
        var e = Assert.Throws<InvalidOperationException>(pipe.Start);
        Assert.Contains("already been started", e.Message, StringComparison.Ordinal);
        Assert.True(pipe.Join(TimeSpan.FromSeconds(10)));
        Assert.Throws<InvalidOperationException>(() => pipe.Run(RunTimeout));
    }

    [Fact]
    public void JoinAndStop_BeforeStart_ReturnAtOnce()
    {
        using var pipe = new Pipeline(Namespace);
        pipe.AddTask("quick", () => { });
        Assert.True(pipe.Join(TimeSpan.Zero));
        pipe.Stop();
        pipe.Compile();
        Assert.True(pipe.Join(TimeSpan.Zero));
        pipe.Stop();
        Assert.False(pipe.IsStarted);
    }

    [Fact]
    public void Run_NamespaceOption_PutsTheStreamsThereAndTellsTheTasks()
    {
        using var pipe = new Pipeline("demo pipeline", new PipelineOptions { Namespace = Namespace });
        Assert.Equal("demo pipeline", pipe.Name);
        Assert.Equal(Namespace, pipe.Namespace);
        pipe.AddStream<int>("values", [1]);
        string? seen = null;
        var existed = false;
        pipe.AddTask(
            "writer",
            (TaskWriter<int> values, TaskContext context) =>
            {
                seen = context.Namespace;
                existed = File.Exists(SharedMemory.SharedMemoryNamespace.PathOf(Namespace, "values"));
                values.Close();
            },
            writes: new() { ["values"] = "values" });
        pipe.AddTerminator("end", new() { ["values"] = "values" });
        pipe.Run(RunTimeout);
        Assert.Equal(Namespace, seen);
        Assert.True(existed);
    }

    [Fact]
    public void Run_TasksWithoutStreams_Run()
    {
        using var pipe = new Pipeline(Namespace);
        var ran = 0;
        pipe.AddTask("one", () => Interlocked.Increment(ref ran));
        pipe.AddTask("two", (CancellationToken stop) => Interlocked.Increment(ref ran));
        pipe.Run(RunTimeout);
        Assert.Equal(2, ran);
    }

    [Fact]
    public void Run_StillRunningAfterItsTimeout_ThrowsTimeoutException()
    {
        using var pipe = new Pipeline(Namespace);
        pipe.AddStream<int>("values", [1]);
        pipe.AddTask("waits", (TaskWriter<int> values, CancellationToken stop) => stop.WaitHandle.WaitOne(TimeSpan.FromSeconds(15)), writes: new() { ["values"] = "values" });
        pipe.AddTerminator("end", new() { ["values"] = "values" });
        var e = Assert.Throws<TimeoutException>(() => pipe.Run(TimeSpan.FromMilliseconds(300)));
        Assert.Contains(Namespace, e.Message, StringComparison.Ordinal);
        pipe.Stop();
        Assert.True(pipe.Join(TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public void Run_ByteBindings_CarryTheRawFrames()
    {
        using var pipe = new Pipeline(Namespace);
        pipe.AddStream<float>("values", [3], frames: 2);
        var frameLength = 0;
        var received = new List<float[]>();
        pipe.AddTask(
            "writer",
            (TaskWriter<byte> values) =>
            {
                values.Write(MemoryMarshal.AsBytes(new[] { 1.5f, -2f, 1e6f }.AsSpan()));
                values.Close();
            },
            writes: new() { ["values"] = "values" });
        pipe.AddTask(
            "reader",
            (TaskReader<byte> values) =>
            {
                frameLength = values.FrameLength;
                while (values.Read(TimeSpan.FromSeconds(10)) is { } frame)
                {
                    received.Add(MemoryMarshal.Cast<byte, float>(frame.AsSpan()).ToArray());
                }
            },
            reads: new() { ["values"] = "values" });
        pipe.Run(RunTimeout);
        Assert.Equal(12, frameLength);
        Assert.Equal(new[] { 1.5f, -2f, 1e6f }, Assert.Single(received));
    }
}
