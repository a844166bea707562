using Flowline.Pipelines;
using Flowline.Documents;
using Flowline.Tests.Runtime;

namespace Flowline.Tests.Pipelines;

/// <summary>Metrics of tasks (PYTHUSA's <c>metrics</c> and <c>start_monitor</c>), and the manager's status and events for a pipeline of tasks.</summary>
public sealed class PipelineMetricsTests : RuntimeTest
{
    /// <summary>source -> scale -> sink on threads, running until stopped: the source writes a frame every few milliseconds.</summary>
    private Pipeline Running()
    {
        var pipe = new Pipeline(Namespace);
        pipe.AddStream<float>("samples", [PipelineTasks.FrameLength], frames: 8)
            .AddStream<float>("doubled", [PipelineTasks.FrameLength], frames: 8);
        pipe.AddTask(
            "source",
            (TaskWriter<float> samples, CancellationToken stop) =>
            {
                var frame = new float[samples.FrameLength];
                while (!stop.WaitHandle.WaitOne(2))
                {
                    samples.Write(frame);
                }
            },
            writes: new() { ["samples"] = "samples" });
        pipe.AddTask("scale", PipelineTasks.Scale, reads: new() { ["samples"] = "samples" }, writes: new() { ["doubled"] = "doubled" }, placement: WorkerPlacement.Thread);
        pipe.AddTask("sink", PipelineTasks.Drain, reads: new() { ["doubled"] = "doubled" }, placement: WorkerPlacement.Thread);
        return pipe;
    }

    [Fact]
    public void Metrics_UnknownTask_ThrowsKeyNotFoundException()
    {
        using var pipe = new Pipeline(Namespace);
        pipe.AddTask("known", () => { });
        var e = Assert.Throws<KeyNotFoundException>(() => pipe.Metrics("nope"));
        Assert.Contains("'nope'", e.Message, StringComparison.Ordinal);
        Assert.Contains("known", e.Message, StringComparison.Ordinal);
        Assert.Null(pipe.Metrics("known"));
        var all = pipe.Metrics();
        Assert.Equal(new[] { "known" }, all.Keys);
        Assert.Null(all["known"]);
    }

    [Fact]
    public void Metrics_AfterARun_CountTheSinksFramesAndGiveItsProcess()
    {
        using var pipe = new Pipeline(Namespace);
        pipe.AddStream<float>("doubled", [PipelineTasks.FrameLength], frames: 16);
        pipe.AddTask("source", PipelineTasks.Source, writes: new() { ["samples"] = "doubled" });
        pipe.AddTask("sink", PipelineTasks.Drain, reads: new() { ["doubled"] = "doubled" });
        pipe.Run(TimeSpan.FromSeconds(20));
        var sink = pipe.Metrics("sink");
        Assert.NotNull(sink);
        Assert.Equal("sink", sink.Name);
        Assert.Equal(PipelineTasks.Frames, sink.FramesProcessed);
        Assert.NotNull(sink.Pid);
        Assert.NotEqual(Environment.ProcessId, sink.Pid);
        Assert.Equal(PipelineTasks.Frames, pipe.Metrics("source")!.FramesProcessed);
        Assert.NotEqual(sink.Pid, pipe.Metrics("source")!.Pid);
        Assert.Equal(new[] { "doubled" }, sink.RingPressure.Keys);
    }

    [Fact]
    public void StartMonitor_WhileRunning_SamplesEveryTaskWithItsOwnRings()
    {
        using var pipe = Running();
        pipe.StartMonitor(TimeSpan.FromMilliseconds(20));
        pipe.Start();
        WaitUntil(() => pipe.Metrics().Values.All(m => m is { FramesProcessed: > 10 }), "every task has processed frames");
        var metrics = pipe.Metrics();
        Assert.Equal(new[] { "samples" }, metrics["source"]!.RingPressure.Keys);
        Assert.Equal(new[] { "doubled", "samples" }, metrics["scale"]!.RingPressure.Keys.Order());
        Assert.Equal(new[] { "doubled" }, metrics["sink"]!.RingPressure.Keys);
        Assert.All(metrics.Values, m =>
        {
            Assert.Equal(Environment.ProcessId, m!.Pid);
            Assert.All(m.RingPressure.Values, p => Assert.InRange(p, 0, 100));
            Assert.True(m.MemoryRssMb > 0);
        });
        var first = metrics["sink"]!.SampledAt;
        WaitUntil(() => pipe.Metrics("sink")!.SampledAt > first, "the monitor samples again");
        pipe.Stop();
        Assert.True(pipe.Join(TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public void StartMonitor_RingStayingFull_Warns()
    {
        using var pipe = new Pipeline(Namespace);
        pipe.AddStream<int>("values", [1], frames: 4);
        pipe.AddTask(
            "writer",
            (TaskWriter<int> values, CancellationToken stop) =>
            {
                for (var i = 0; i < 4; i++)
                {
                    values.Write([i]);
                }

                stop.WaitHandle.WaitOne(TimeSpan.FromSeconds(15));
            },
            writes: new() { ["values"] = "values" });
        pipe.AddTask("stalled", (TaskReader<int> values, CancellationToken stop) => stop.WaitHandle.WaitOne(TimeSpan.FromSeconds(15)), reads: new() { ["values"] = "values" });
        pipe.StartMonitor(TimeSpan.FromMilliseconds(20));
        pipe.Start();
        WaitUntil(() => pipe.Warnings.Count > 0, "the monitor warns about the full ring", seconds: 10);
        Assert.Contains("stream 'values' has stayed 100 % full", pipe.Warnings[0], StringComparison.Ordinal);
        Assert.Equal(100, pipe.Metrics("stalled")!.RingPressure["values"]);
        pipe.Stop();
        Assert.True(pipe.Join(TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public void Status_ListsTasksUnderWorkersWithTheirStreams_AndEventsReportEachStart()
    {
        using var pipe = Running();
        pipe.Compile();
        var started = new List<string>();
        pipe.Manager.EventRaised += (_, e) =>
        {
            if (e.Type == "worker_started")
            {
                lock (started)
                {
                    started.Add((string)e.Data["kernel"]!);
                }
            }
        };
        pipe.Start();
        var workers = pipe.Manager.Status().Json()["workers"]!.AsObject();
        Assert.Equal(new[] { "scale", "sink", "source" }, workers.Select(w => w.Key).Order());
        foreach (var (name, reads, writes) in new[] { ("source", "", "samples"), ("scale", "samples", "doubled"), ("sink", "doubled", "") })
        {
            var worker = workers[name]!;
            Assert.True((bool)worker["task"]!);
            Assert.Equal(reads, string.Join(',', worker["reads"]!.AsArray().Select(n => (string)n!)));
            Assert.Equal(writes, string.Join(',', worker["writes"]!.AsArray().Select(n => (string)n!)));
            Assert.Equal("thread", (string?)worker["placement"]);
            Assert.False((bool)worker["finished"]!);
        }

        Assert.Empty(pipe.Manager.Status().Json()["sources"]!.AsObject());
        Assert.Empty(pipe.Manager.Status().Json()["sinks"]!.AsObject());
        WaitUntil(() => { lock (started) { return started.Count >= 3; } }, "every task reported its start");
        lock (started)
        {
            Assert.Equal(new[] { "scale", "sink", "source" }, started.Order());
        }

        Assert.Equal(3, pipe.Manager.Events().Count(e => e.Type == "worker_started"));
        Assert.Contains(pipe.Manager.Events(), e => e.Type == "state_changed" && (string?)e.Data["state"] == "running");
        pipe.Stop();
        Assert.True(pipe.Join(TimeSpan.FromSeconds(5)));
        Assert.Equal(3, pipe.Manager.Events().Count(e => e.Type == "worker_stopped"));
    }
}
