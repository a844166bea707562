using System.Diagnostics;
using System.Text.Json.Nodes;
using Flowline.Runtime;
using Flowline.SharedMemory;
using Flowline.SharedMemory.Liveness;

namespace Flowline.Tests.Runtime;

/// <summary>The manager's life cycle with real worker processes: every transition, every illegal one, status and events.</summary>
public sealed class PipelineManagerTests : RuntimeTest
{
    /// <summary>A source at 500 Hz, a copy stage, a sink.</summary>
    internal const string CopyPipeline = """
        shared_memory:
          - {name: input, shape: [64], dtype: float32}
          - {name: output, shape: [64], dtype: float32}
        sources:
          - name: camera
            kind: synthetic.array
            stream: input
            parameters: {pattern: ramp, rate_hz: 500, seed: 1}
        kernels:
          - {name: copy, kind: cpu.copy, input: input, output: output}
        sinks:
          - {name: sink, kind: null.sink, stream: output}
        """;

    [Fact]
    public void Lifecycle_EveryTransition_WithRealWorkerProcesses()
    {
        var manager = Manager(CopyPipeline);
        var events = new List<PipelineEvent>();
        manager.EventRaised += (_, e) =>
        {
            lock (events)
            {
                events.Add(e);
            }
        };
        Assert.Equal(PipelineState.Initialized, manager.State);

        manager.Build();
        Assert.Equal(PipelineState.Built, manager.State);
        Assert.True(SharedMemoryNamespace.Exists(Namespace, "input"));
        Assert.True(SharedMemoryNamespace.Exists(Namespace, "output"));

        manager.Start();
        Assert.Equal(PipelineState.Running, manager.State);
        WaitUntil(() => Frames(manager, "sink") > 20, "frames reach the sink");
        var status = manager.Status().Json();
        var pids = new[] { "workers", "sources", "sinks" }.SelectMany(g => status[g]!.AsObject().Select(p => (int)p.Value!["pid"]!)).ToList();
        Assert.Equal(3, pids.Distinct().Count());
        Assert.DoesNotContain(Environment.ProcessId, pids);
        Assert.All(pids, pid => Assert.Contains(pid, WorkerChildren()));

        manager.Pause();
        Assert.Equal(PipelineState.Paused, manager.State);
        Assert.Equal("paused", (string?)manager.Status().Json()["workers"]!["copy"]!["health"]);
        var pausedAt = Frames(manager, "copy");
        Thread.Sleep(300);
        Assert.InRange(Frames(manager, "copy"), pausedAt, pausedAt + 1);

        manager.Resume();
        Assert.Equal(PipelineState.Running, manager.State);
        WaitUntil(() => Frames(manager, "copy") > pausedAt + 20, "frames flow again after resume");

        manager.Stop();
        Assert.Equal(PipelineState.Built, manager.State);
        WaitUntil(() => pids.All(p => !WorkerChildren().Contains(p)), "the workers have exited");
        Assert.True(SharedMemoryNamespace.Exists(Namespace, "input"), "stop keeps the streams");

        manager.Start();
        WaitUntil(() => Frames(manager, "sink") > 5, "frames flow after a second start");
        manager.Shutdown();
        Assert.Equal(PipelineState.Stopped, manager.State);
        Assert.False(SharedMemoryNamespace.Exists(Namespace, "input"));

        manager.Build();
        Assert.Equal(PipelineState.Built, manager.State);
        manager.Shutdown();

        List<string> types;
        lock (events)
        {
            types = [.. events.Select(e => e.Type)];
            Assert.Equal(events.Select(e => e.Id).Order(), events.Select(e => e.Id));
        }

        Assert.Equal(6, types.Count(t => t == "worker_started"));
        Assert.Equal(6, types.Count(t => t == "worker_stopped"));
        Assert.Contains("worker_metrics", types);
        var states = events.Where(e => e.Type == "state_changed").Select(e => (string)e.Data["state"]!).ToList();
        Assert.Equal(["built", "running", "paused", "running", "built", "running", "stopped", "built", "stopped"], states);
    }

    [Fact]
    public void IllegalTransitions_NameTheStateAndTheAllowedCalls()
    {
        var manager = Manager(CopyPipeline);
        var e = Assert.Throws<StateTransitionException>(manager.Start);
        Assert.Equal("cannot start a pipeline that is initialized; allowed now: build, shutdown", e.Message);
        Assert.Throws<StateTransitionException>(manager.Pause);
        Assert.Throws<StateTransitionException>(manager.Resume);
        Assert.Throws<StateTransitionException>(() => manager.Stop());
        Assert.Throws<StateTransitionException>(() => manager.Restart());

        manager.Build();
        e = Assert.Throws<StateTransitionException>(manager.Build);
        Assert.Contains("is built; allowed now: start, stop, shutdown", e.Message, StringComparison.Ordinal);
        Assert.Throws<StateTransitionException>(manager.Pause);
        Assert.Throws<StateTransitionException>(manager.Resume);
        Assert.Throws<StateTransitionException>(() => manager.Restart());
        manager.Stop(); // a no-op when built
        Assert.Equal(PipelineState.Built, manager.State);

        manager.Start();
        Assert.Throws<StateTransitionException>(manager.Start);
        Assert.Throws<StateTransitionException>(manager.Build);
        e = Assert.Throws<StateTransitionException>(manager.Resume);
        Assert.Contains("is running; allowed now: pause, stop, restart, shutdown", e.Message, StringComparison.Ordinal);

        manager.Pause();
        Assert.Throws<StateTransitionException>(manager.Pause);
        Assert.Throws<StateTransitionException>(manager.Start);
        manager.Shutdown();
        Assert.Throws<StateTransitionException>(manager.Start);
        Assert.Throws<StateTransitionException>(manager.Pause);
        manager.Shutdown(); // allowed from any state
        Assert.Equal(PipelineState.Stopped, manager.State);
    }

    [Fact]
    public void Operations_AreThreadSafe_ConcurrentCallersSeeOneLegalSequence()
    {
        var manager = Manager(CopyPipeline);
        manager.Build();
        manager.Start();
        var errors = 0;
        var threads = Enumerable.Range(0, 4).Select(i => new Thread(() =>
        {
            for (var n = 0; n < 10; n++)
            {
                try
                {
                    if ((i + n) % 2 == 0)
                    {
                        manager.Pause();
                    }
                    else
                    {
                        manager.Resume();
                    }
                }
                catch (StateTransitionException)
                {
                    Interlocked.Increment(ref errors);
                }

                _ = manager.Status().Json();
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        Assert.All(threads, t => Assert.True(t.Join(TimeSpan.FromSeconds(60))));
        Assert.InRange(errors, 1, 39);
        Assert.Contains(manager.State, new[] { PipelineState.Running, PipelineState.Paused });
        var states = manager.Events().Where(e => e.Type == "state_changed").Select(e => (string)e.Data["state"]!).ToList();
        for (var i = 1; i < states.Count; i++)
        {
            Assert.NotEqual(states[i - 1], states[i]);
        }
    }

    [Fact]
    public void StatusAndSnapshot_HaveShmpipelinesShape_AndFlowlinesFigures()
    {
        var manager = Manager(CopyPipeline);
        manager.Build();
        manager.Start();
        WaitUntil(() => Frames(manager, "sink") > 200, "the window fills");
        Thread.Sleep(300);
        var snapshot = manager.RuntimeSnapshot().Json();
        foreach (var key in new[] { "state", "workers", "sources", "sinks", "failures", "metrics", "synthetic_sources", "placement_policy", "summary", "timestamp", "graph", "streams" })
        {
            Assert.True(snapshot.ContainsKey(key), $"snapshot lacks '{key}'");
        }

        var copy = snapshot["workers"]!["copy"]!.AsObject();
        foreach (var key in new[]
        {
            "pid", "cpu_slot", "frames_processed", "last_exec_ms", "last_exec_us", "avg_exec_ms", "avg_exec_us", "jitter_us_rms",
            "throughput_hz", "runtime_s", "last_output_count", "metrics_window", "frame_sync_skew_events",
            "frame_sync_skipped_generations", "frame_sync_timeouts", "alive", "exitcode", "health", "idle_s", "last_metric_age_s",
            "latency_us", "skipped_per_input", "torn_frames", "auxiliary_torn_copies", "cpu_percent", "rss_bytes",
        })
        {
            Assert.True(copy.ContainsKey(key), $"worker status lacks '{key}'");
        }

        Assert.Equal("active", (string?)copy["health"]);
        Assert.True((bool)copy["alive"]!);
        Assert.InRange((double)copy["throughput_hz"]!, 250, 750);
        Assert.InRange((double)copy["avg_exec_us"]!, 0.001, 5000);
        Assert.True((double)copy["latency_us"]!["p50"]! > 0);
        Assert.True((double)copy["latency_us"]!["p99"]! >= (double)copy["latency_us"]!["p50"]!);
        Assert.True((long)copy["rss_bytes"]! > 1_000_000);
        Assert.True(JsonNode.DeepEquals(snapshot["metrics"]!["copy"]!["frames_processed"], copy["frames_processed"]));

        var camera = snapshot["sources"]!["camera"]!.AsObject();
        foreach (var key in new[] { "name", "kind", "stream", "streams", "alive", "frames_written", "effective_rate_hz", "throughput_hz", "started_at", "last_write_time", "last_write_duration_ms", "last_error", "plugin_metrics", "missed_writes" })
        {
            Assert.True(camera.ContainsKey(key), $"source status lacks '{key}'");
        }

        Assert.InRange((double)camera["throughput_hz"]!, 250, 750);
        var sink = snapshot["sinks"]!["sink"]!.AsObject();
        foreach (var key in new[] { "name", "kind", "stream", "outputs", "alive", "frames_consumed", "missed_writes", "effective_rate_hz", "throughput_hz", "last_read_time", "plugin_metrics", "latency_us" })
        {
            Assert.True(sink.ContainsKey(key), $"sink status lacks '{key}'");
        }

        Assert.True((long)sink["plugin_metrics"]!["consumed"]! > 0);
        Assert.True((double)sink["latency_us"]!["p50"]! >= (double)copy["latency_us"]!["p50"]! * 0.5, "the sink's latency covers the copy stage");
        var summary = snapshot["summary"]!;
        Assert.Equal(1, (int)summary["workers_total"]!);
        Assert.Equal(1, (int)summary["active_workers"]!);
        Assert.Equal(1, (int)summary["sources_total"]!);
        Assert.Equal(1, (int)summary["active_sinks"]!);
        Assert.Equal(0, (int)summary["failed_workers"]!);
        Assert.Equal(8, (int)snapshot["streams"]!["input"]!["capacity"]!);
        Assert.True((long)snapshot["streams"]!["input"]!["frames_published"]! > 0);
        Assert.Equal(2, snapshot["graph"]!["shared_memory"]!.AsArray().Count);
        Assert.Empty(snapshot["failures"]!.AsArray());
        _ = JsonNode.Parse(snapshot.ToJsonString()); // serialisable
    }

    [Fact]
    public void TwoNamespacedPipelines_RunAtOnce_WithoutTouchingEachOther()
    {
        var first = Manager(CopyPipeline);
        var second = Manager(CopyPipeline, @namespace: Namespace + "-b");
        first.Build();
        second.Build();
        first.Start();
        second.Start();
        WaitUntil(() => Frames(first, "sink") > 10 && Frames(second, "sink") > 10, "both pipelines deliver");
        Assert.True(SharedMemoryNamespace.Exists(Namespace + "-b", "output"));
        first.Shutdown();
        Assert.False(SharedMemoryNamespace.Exists(Namespace, "output"));
        var before = Frames(second, "sink");
        WaitUntil(() => Frames(second, "sink") > before + 10, "the second pipeline keeps running");
        second.Shutdown();
    }

    [Fact]
    public void ASecondManagerOnTheSameNamespace_IsRefusedBeforeItWritesAnything_NamingTheFirst()
    {
        // The second document would overwrite the first's input with its initial values and replace its control blocks.
        var first = Manager(CopyPipeline);
        first.ServerUrl = "http://127.0.0.1:8765";
        first.Build();
        first.Start();
        WaitUntil(() => Frames(first, "sink") > 10, "the first pipeline delivers");
        var controlBlocks = SharedMemoryNamespace.List(first.Plan.ControlNamespace);
        var second = Manager(CopyPipeline.Replace("{name: input, shape: [64], dtype: float32}", "{name: input, shape: [64], dtype: float32, initial: {pattern: constant, value: 7}}", StringComparison.Ordinal));

        var refused = Assert.Throws<NamespaceInUseException>(second.Build);
        Assert.Equal(Environment.ProcessId, refused.Holder.Pid);
        Assert.Contains("served at http://127.0.0.1:8765", refused.Message, StringComparison.Ordinal);
        Assert.Equal(PipelineState.Initialized, second.State);
        Assert.Equal(controlBlocks, SharedMemoryNamespace.List(first.Plan.ControlNamespace));
        var before = Frames(first, "sink");
        WaitUntil(() => Frames(first, "sink") > before + 10, "the first pipeline keeps running");
        Assert.Empty(first.Status().Json()["failures"]!.AsArray());

        first.Shutdown();
        second.Build(); // free once the first has let go
        Assert.Equal(PipelineState.Built, second.State);
        second.Shutdown();
    }

    [Fact]
    public void AFailedBuild_LetsGoOfTheNamespace_AndLeavesNoDirectory()
    {
        var broken = Manager(CopyPipeline.Replace("{name: output, shape: [64], dtype: float32}", "{name: output, shape: [64], dtype: float32, mode: attach}", StringComparison.Ordinal));
        Assert.Throws<InvalidOperationException>(broken.Build);
        Assert.False(Directory.Exists(SharedMemoryNamespace.DirectoryOf(Namespace)));
        Assert.Null(NamespaceLease.HolderOf(Namespace));

        var next = Manager(CopyPipeline);
        next.Build();
        Assert.Equal(PipelineState.Built, next.State);
        next.Shutdown();
    }

    [Fact]
    public void WorkerProcesses_DoNotInheritTheControlPlanesTokens()
    {
        var names = new[] { "FLOWLINE_TOKEN", "FLOWLINE_TOKEN_FILE" };
        foreach (var name in names)
        {
            Environment.SetEnvironmentVariable(name, "secret-" + name);
        }

        try
        {
            var manager = Manager(CopyPipeline);
            manager.Build();
            manager.Start();
            var pid = (int)manager.Status().Json()["workers"]!["copy"]!["pid"]!;
            var environment = File.ReadAllText($"/proc/{pid}/environ").Split('\0');
            Assert.Contains(environment, e => e.StartsWith("PATH=", StringComparison.Ordinal)); // the rest is inherited
            Assert.DoesNotContain(environment, e => e.StartsWith("FLOWLINE_TOKEN", StringComparison.Ordinal));
        }
        finally
        {
            foreach (var name in names)
            {
                Environment.SetEnvironmentVariable(name, null);
            }
        }
    }

    /// <summary>Starts <see cref="CopyPipeline"/> with its copy stage on a thread of this process, once frames cross it.</summary>
    private PipelineManager StartCopyOnAThread()
    {
        var manager = Manager(CopyPipeline.Replace("{name: copy, kind: cpu.copy, input: input, output: output}", "{name: copy, kind: cpu.copy, input: input, output: output, placement: thread}", StringComparison.Ordinal));
        manager.Build();
        manager.Start();
        WaitUntil(() => Frames(manager, "sink") > 20, "frames cross the thread worker");
        return manager;
    }

    [Fact]
    public void ThreadPlacement_RunsTheSameWorkerLoopInTheManagersProcess()
    {
        var manager = StartCopyOnAThread();
        var copy = manager.Status().Json()["workers"]!["copy"]!;
        Assert.Equal(Environment.ProcessId, (int)copy["pid"]!);
        Assert.Equal("thread", (string?)copy["placement"]);
        Assert.Equal(2, WorkerChildren().Count);
        manager.Stop();
        Assert.Equal(PipelineState.Built, manager.State);
    }

    [Fact]
    public void WorkerCpuTimes_AreEachWorkersOwn_AThreadWorkersIsItsThreadsNotTheManagersProcess()
    {
        var manager = StartCopyOnAThread();
        // The test host's process had spent more (JIT, the test framework, this manager) before the copy
        // thread's times are read than that thread alone: /proc/<tid>/stat, which gives the whole process's,
        // would show at least as much.
        Assert.True(ThisProcess.TryReadUsage(Environment.ProcessId, out var processBefore, out _));
        var times = manager.WorkerCpuTimes();
        Assert.Equal(["camera", "copy", "sink"], times.Keys.Order(StringComparer.Ordinal));
        Assert.True(times["copy"] < processBefore, $"copy thread {times["copy"]} against the whole process {processBefore}");
        var camera = (int)manager.Status().Json()["sources"]!["camera"]!["pid"]!;
        Assert.True(ThisProcess.TryReadUsage(camera, out var cameraCpu, out _));
        Assert.True(times["camera"] <= cameraCpu, "a worker process's time is its process's");
        manager.Stop();
        Assert.Empty(manager.WorkerCpuTimes());
    }

    [Fact]
    public void ThreadWorkers_ReportTheirOwnThreadsWaits_NotTheirProcesss()
    {
        // The copy thread reads a paced stream predictively and is woken early before most frames; the sink
        // thread reads the copy's output with hybrid waits, which never count an early wake-up. Counted per
        // process, the sink would show the copy's.
        var manager = Manager("""
            shared_memory:
              - {name: input, shape: [64], dtype: float32, wait: predictive}
              - {name: output, shape: [64], dtype: float32, wait: hybrid}
            sources:
              - name: camera
                kind: synthetic.array
                stream: input
                parameters: {pattern: ramp, rate_hz: 500, seed: 1}
            kernels:
              - {name: copy, kind: cpu.copy, input: input, output: output, placement: thread}
            sinks:
              - {name: sink, kind: null.sink, stream: output, placement: thread}
            """);
        manager.Build();
        manager.Start();
        WaitUntil(() => (long?)manager.Status().Json()["workers"]!["copy"]!["waits"]?["early_wakes"] > 0, "the copy thread is woken early");
        WaitUntil(() => Frames(manager, "sink") > 20, "frames reach the sink thread");
        var status = manager.Status().Json();
        Assert.Equal(0, (long)status["sinks"]!["sink"]!["waits"]!["early_wakes"]!);
        Assert.Equal(0, (long)status["sinks"]!["sink"]!["waits"]!["predicted_waits"]!);
        manager.Stop();
    }

    [Fact]
    public void RoundRobinPlacement_PinsWorkersToCpus()
    {
        var manager = Manager(CopyPipeline, new PipelineManagerOptions { Placement = PlacementPolicy.RoundRobin });
        manager.Build();
        manager.Start();
        WaitUntil(() => Frames(manager, "sink") > 5, "frames flow");
        var status = manager.Status().Json();
        Assert.Equal("round_robin", (string?)status["placement_policy"]);
        var sinkCpu = (int)status["sinks"]!["sink"]!["cpu_slot"]!;
        var copyCpu = (int)status["workers"]!["copy"]!["cpu_slot"]!;
        Assert.Equal(0, sinkCpu);
        Assert.Equal(1 % Environment.ProcessorCount, copyCpu);
        var pid = (int)status["workers"]!["copy"]!["pid"]!;
        var allowed = File.ReadAllLines($"/proc/{pid}/status").Single(l => l.StartsWith("Cpus_allowed_list:", StringComparison.Ordinal));
        Assert.Equal(copyCpu.ToString(System.Globalization.CultureInfo.InvariantCulture), allowed.Split(':')[1].Trim().Split(',')[0]);
    }

    [Fact]
    public void Start_BuildsFiveStagesQuickly_AndStartsEveryWorkerConcurrently()
    {
        var manager = Manager(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "examples", "ao-basic", "pipeline.yaml")));
        var watch = Stopwatch.StartNew();
        manager.Build();
        manager.Start();
        watch.Stop();
        Assert.Equal(PipelineState.Running, manager.State);
        Assert.Equal(7, WorkerChildren().Count);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), $"build and start took {watch.Elapsed}");
    }
}
