using Flowline.Runtime;

namespace Flowline.Tests.Runtime;

/// <summary>
/// python.kernel workers under the manager: supervised like C# workers (control block, heartbeat, metrics,
/// pause, stop), a Python exception reported with its traceback, and Restart recovering them. They need
/// /usr/bin/python3 with numpy (CI installs Debian's python3-numpy before the tests).
/// </summary>
public sealed class PythonWorkerTests : RuntimeTest, IDisposable
{
    private const string Python = "/usr/bin/python3";
    private readonly string directory = Directory.CreateTempSubdirectory("flowline-py-").FullName;

    public PythonWorkerTests()
    {
        File.WriteAllText(Path.Combine(directory, "pykernels.py"), """
            import os
            import numpy as np


            def double_or_fail(inputs, outputs, parameters):
                if os.path.exists(parameters["fail_flag"]):
                    raise ValueError("deliberate python failure")
                np.multiply(inputs[0], 2.0, out=outputs[0])
            """);
    }

    private string FailFlag => Path.Combine(directory, "fail");

    /// <summary>A source feeding a Python kernel and a healthy C# copy, each to a sink.</summary>
    private string Document() => $$$"""
        shared_memory:
          - {name: input, shape: [16], dtype: float32}
          - {name: a, shape: [16], dtype: float32}
          - {name: b, shape: [16], dtype: float32}
        sources:
          - {name: camera, kind: synthetic.array, stream: input, parameters: {pattern: sine, rate_hz: 300}}
        kernels:
          - name: py
            kind: python.kernel
            input: input
            output: a
            parameters: {module: pykernels, function: double_or_fail, path: '{{{directory}}}', interpreter: {{{Python}}}, fail_flag: '{{{FailFlag}}}'}
          - {name: healthy, kind: cpu.copy, input: input, output: b}
        sinks:
          - {name: sink_a, kind: null.sink, stream: a}
          - {name: sink_b, kind: null.sink, stream: b}
        """;

    [Fact]
    public void PythonException_IsReportedWithItsTraceback_AndRestartRecovers()
    {
        Assert.SkipUnless(File.Exists(Python), $"needs {Python} with numpy (CI installs python3-numpy)");
        var manager = Manager(Document());
        manager.Build();
        manager.Start();
        WaitUntil(() => Frames(manager, "py") > 10 && Frames(manager, "sink_a") > 10, "frames flow through the Python kernel");
        var pid = manager.Status().Workers["py"].Pid!.Value;
        Assert.Contains(pid, WorkerChildren());

        File.WriteAllText(FailFlag, "");
        WaitUntil(() => manager.State == PipelineState.Failed, "the Python exception fails the pipeline");
        var failure = Assert.Single(manager.Status().Failures);
        Assert.Equal("worker_failed", failure.Type);
        Assert.Equal("py", failure.Kernel);
        Assert.Equal("python.kernel", failure.Kind);
        Assert.Equal("ValueError", failure.ExceptionType);
        Assert.Equal("deliberate python failure", failure.Error);
        var traceback = failure.Traceback ?? "";
        Assert.StartsWith("Traceback (most recent call last):", traceback, StringComparison.Ordinal);
        Assert.Contains("pykernels.py\", line 7, in double_or_fail", traceback, StringComparison.Ordinal);
        Assert.Equal(WorkerHost.FailedExitCode, failure.Exitcode);
        var healthy = Frames(manager, "healthy");
        WaitUntil(() => Frames(manager, "healthy") > healthy + 20, "the C# branch keeps running");

        File.Delete(FailFlag);
        manager.Restart();
        Assert.Equal(PipelineState.Running, manager.State);
        Assert.Empty(manager.Status().Failures);
        var restarted = manager.Status().Workers["py"].Pid!.Value;
        Assert.NotEqual(pid, restarted);
        Assert.DoesNotContain(pid, WorkerChildren());
        var before = Frames(manager, "sink_a");
        WaitUntil(() => Frames(manager, "sink_a") > before + 20, "frames flow through the restarted Python kernel");
        manager.RaiseIfFailed();
    }

    [Fact]
    public void PythonWorker_PausesResumesAndStops_AsItsControlBlockCommands()
    {
        Assert.SkipUnless(File.Exists(Python), $"needs {Python} with numpy (CI installs python3-numpy)");
        var manager = Manager(Document());
        manager.Build();
        manager.Start();
        WaitUntil(() => Frames(manager, "py") > 20 && manager.Status().Workers["py"].Health == "active", "the Python kernel is active");
        var worker = manager.Status().Workers["py"];
        Assert.True(worker.ThroughputHz > 0, $"throughput is published: {worker}");
        Assert.True(worker.AvgExecUs > 0, $"exec time is published: {worker}");
        Assert.Equal("process", worker.Placement);

        manager.Pause();
        WaitUntil(() => manager.Status().Workers["py"].Health == "paused", "the Python kernel is paused");
        var paused = Frames(manager, "py");
        manager.Resume();
        WaitUntil(() => Frames(manager, "py") > paused + 20, "the resumed Python kernel computes again");

        var pid = manager.Status().Workers["py"].Pid!.Value;
        manager.Stop();
        Assert.DoesNotContain(pid, WorkerChildren());
        Assert.Contains(manager.Events(), e => e.Type == "worker_stopped" && (string?)e.Data["kernel"] == "py");
        Assert.DoesNotContain(manager.Events(), e => e.Type == "worker_failed");
    }

    void IDisposable.Dispose()
    {
        Dispose();
        Directory.Delete(directory, recursive: true);
    }
}
