using System.Diagnostics;
using Flowline.Runtime;
using Flowline.SharedMemory.Liveness;

namespace Flowline.Tests.Runtime;

/// <summary>Failures are detected, reported with their cause, leave the other workers running, and Restart recovers.</summary>
public sealed class PipelineFailureTests : RuntimeTest
{
    /// <summary>A source feeding two branches: a copy (the one that fails) and a healthy copy, each to a sink.</summary>
    private static string TwoBranches(string failing) => $$$"""
        plugins: [plugins/Flowline.Tests.Plugin.dll]
        shared_memory:
          - {name: input, shape: [16], dtype: float32}
          - {name: a, shape: [16], dtype: float32}
          - {name: b, shape: [16], dtype: float32}
        sources:
          - {name: camera, kind: synthetic.array, stream: input, parameters: {pattern: sine, rate_hz: 300}}
        kernels:
          - {{{failing}}}
          - {name: healthy, kind: cpu.copy, input: input, output: b}
        sinks:
          - {name: sink_a, kind: null.sink, stream: a}
          - {name: sink_b, kind: null.sink, stream: b}
        """;

    [Fact]
    public void KernelException_IsReportedWithTypeMessageAndStack_AndTheOthersKeepRunning()
    {
        var manager = Manager(TwoBranches("{name: boom, kind: cpu.raise_error, input: input, output: a, parameters: {message: deliberate failure}}"));
        manager.Build();
        manager.Start();
        WaitUntil(() => manager.State == PipelineState.Failed, "the pipeline fails");
        var failure = Assert.Single(manager.Status().Json()["failures"]!.AsArray())!;
        Assert.Equal("worker_failed", (string?)failure["type"]);
        Assert.Equal("boom", (string?)failure["kernel"]);
        Assert.Equal("deliberate failure", (string?)failure["error"]);
        Assert.Equal("Flowline.Kernels.KernelFailureException", (string?)failure["exception_type"]);
        Assert.Contains("KernelRunner", (string?)failure["traceback"], StringComparison.Ordinal);
        Assert.Equal(WorkerHost.FailedExitCode, (int?)failure["exitcode"]);

        var healthyBefore = Frames(manager, "healthy");
        WaitUntil(() => Frames(manager, "healthy") > healthyBefore + 20, "the healthy branch keeps running");
        var status = manager.Status().Json();
        Assert.Equal("failed", (string?)status["workers"]!["boom"]!["health"]);
        Assert.Equal("active", (string?)status["workers"]!["healthy"]!["health"]);
        Assert.Equal(1, (int)status["summary"]!["failed_workers"]!);
        var e = Assert.Throws<WorkerFailedException>(manager.RaiseIfFailed);
        Assert.Equal("kernel 'boom' failed: deliberate failure", e.Message);
        Assert.Contains(manager.Events(), ev => ev.Type == "worker_failed" && (string?)ev.Data["kernel"] == "boom");
    }

    [Fact]
    public void KilledWorker_MovesThePipelineToFailedWithinMilliseconds_AndRestartRecovers()
    {
        var manager = Manager(TwoBranches("{name: victim, kind: cpu.copy, input: input, output: a}"));
        manager.Build();
        manager.Start();
        WaitUntil(() => Frames(manager, "sink_a") > 10, "frames flow through the victim");
        var pid = (int)manager.Status().Json()["workers"]!["victim"]!["pid"]!;
        var failed = new ManualResetEventSlim();
        manager.EventRaised += (_, e) =>
        {
            if (e.Type == "worker_failed")
            {
                failed.Set();
            }
        };

        var watch = Stopwatch.StartNew();
        Assert.True(ThisProcess.SendSignal(pid, 9));
        Assert.True(failed.Wait(TimeSpan.FromSeconds(10)), "the death is reported");
        watch.Stop();
        Assert.Equal(PipelineState.Failed, manager.State);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(1), $"the death took {watch.Elapsed.TotalMilliseconds:0} ms to notice");
        var failure = Assert.Single(manager.Status().Json()["failures"]!.AsArray())!;
        Assert.Equal("worker was killed by signal 9 (SIGKILL)", (string?)failure["error"]);
        Assert.Equal("victim", (string?)failure["kernel"]);
        Assert.Equal("active", (string?)manager.Status().Json()["workers"]!["healthy"]!["health"]);
        var healthyPid = (int)manager.Status().Json()["workers"]!["healthy"]!["pid"]!;

        manager.Restart();
        Assert.Equal(PipelineState.Running, manager.State);
        var status = manager.Status().Json();
        Assert.Empty(status["failures"]!.AsArray());
        Assert.NotEqual(pid, (int)status["workers"]!["victim"]!["pid"]!);
        Assert.Equal(healthyPid, (int)status["workers"]!["healthy"]!["pid"]!);
        var before = Frames(manager, "sink_a");
        WaitUntil(() => Frames(manager, "sink_a") > before + 10, "frames flow through the restarted victim");
        manager.RaiseIfFailed();
    }

    [Fact]
    public void HungWorker_IsReportedByItsHeartbeat_AndRestartReplacesIt()
    {
        var manager = Manager(
            TwoBranches("{name: stuck, kind: test.hang, input: input, output: a, parameters: {after: 3}}"),
            new PipelineManagerOptions { HungTimeout = TimeSpan.FromSeconds(1) });
        manager.Build();
        manager.Start();
        WaitUntil(() => manager.State == PipelineState.Failed, "the hung worker is reported");
        var failure = Assert.Single(manager.Status().Json()["failures"]!.AsArray())!;
        Assert.Equal("hung", (string?)failure["exception_type"]);
        Assert.StartsWith("worker is hung: no heartbeat for", (string?)failure["error"], StringComparison.Ordinal);
        Assert.Contains(manager.Events(), e => e.Type == "worker_hung");
        var pid = (int)manager.Status().Json()["workers"]!["stuck"]!["pid"]!;
        Assert.Contains(pid, WorkerChildren());

        manager.Restart();
        Assert.Equal(PipelineState.Running, manager.State);
        Assert.DoesNotContain(pid, WorkerChildren());
        Assert.NotEqual(pid, (int)manager.Status().Json()["workers"]!["stuck"]!["pid"]!);
    }

    [Fact]
    public void WorkerThatCannotStart_FailsStart_TearsDownWhatStarted_AndLeavesThePipelineBuilt()
    {
        var manager = Manager(TwoBranches("{name: broken, kind: test.fail_create, input: input, output: a}"));
        manager.Build();
        var e = Assert.Throws<WorkerFailedException>(manager.Start);
        Assert.Equal("kernel 'broken' failed to start: this kernel cannot be created", e.Message);
        Assert.Equal("broken", (string?)Assert.Single(e.Failures).Json()["kernel"]);
        Assert.Equal(PipelineState.Built, manager.State);
        WaitUntil(() => WorkerChildren().Count == 0, "every started worker is torn down", 10);
        Assert.Empty(manager.Status().Json()["failures"]!.AsArray());
    }

    [Fact]
    public void StartTimeout_NamesTheSlowWorker_AndTearsEverythingDown()
    {
        var manager = Manager(
            TwoBranches("{name: slow, kind: test.slow_create, input: input, output: a, parameters: {delay_s: 30}}"),
            new PipelineManagerOptions { StartTimeout = TimeSpan.FromSeconds(2) });
        manager.Build();
        var e = Assert.Throws<TimeoutException>(manager.Start);
        Assert.Equal("kernel 'slow' did not start within 2 s", e.Message);
        Assert.Equal(PipelineState.Built, manager.State);
        WaitUntil(() => WorkerChildren().Count == 0, "every started worker is torn down", 10);
    }

    [Fact]
    public void FailureWhilePaused_IsRecorded_AndShutdownLeavesNothing()
    {
        var manager = Manager(TwoBranches("{name: victim, kind: cpu.copy, input: input, output: a}"));
        manager.Build();
        manager.Start();
        manager.Pause();
        var pid = (int)manager.Status().Json()["workers"]!["victim"]!["pid"]!;
        ThisProcess.SendSignal(pid, 9);
        WaitUntil(() => manager.State == PipelineState.Failed, "the death is noticed while paused");
        manager.Restart();
        Assert.Equal(PipelineState.Paused, manager.State);
        Assert.Equal("paused", (string?)manager.Status().Json()["workers"]!["victim"]!["health"]);
        manager.Shutdown(force: true);
        Assert.Equal(PipelineState.Stopped, manager.State);
    }

    [Fact]
    public void MissingWorkerProgram_IsAClearError()
    {
        var manager = Manager(TwoBranches("{name: victim, kind: cpu.copy, input: input, output: a}"), new PipelineManagerOptions { WorkerPath = "/nonexistent/Flowline.Worker.dll" });
        manager.Build();
        var e = Assert.Throws<InvalidOperationException>(manager.Start);
        Assert.Contains("cannot find the worker program '/nonexistent/Flowline.Worker.dll'", e.Message, StringComparison.Ordinal);
        Assert.Equal(PipelineState.Built, manager.State);
    }
}
