using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Flowline.Runtime;
using Flowline.SharedMemory;

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
        File.WriteAllText(Path.Combine(directory, "pysettings.py"), """
            import os
            import time

            import flowline


            def hold(args):
                deadline = time.monotonic() + 60
                while not os.path.exists(args["flag"]) and time.monotonic() < deadline:
                    time.sleep(0.01)
                return {"released": os.path.exists(args["flag"])}


            def boom(args):
                raise RuntimeError("deliberate handler failure")


            @flowline.declare(
                settings=[
                    flowline.Setting("gain", "number", default=1.0, minimum=0, maximum=10, unit="V/V", description="the value written"),
                    flowline.Setting("label", "string", default="a", live=False, description="applies at the next start"),
                ],
                requests={"echo": lambda args: args, "boom": boom, "hold": hold})
            def fill_gain(inputs, outputs, parameters):
                out = outputs[0]
                out[:8] = parameters["gain"]
                time.sleep(0.0005)  # a change applied in the middle of a frame would show as two halves
                out[8:] = parameters["gain"]
            """);
    }

    private string FailFlag => Path.Combine(directory, "fail");

    /// <summary>A source feeding a Python kernel and a healthy C# copy, each to a sink.</summary>
    private string Document() => Document("pykernels", "double_or_fail", $"fail_flag: '{FailFlag}'", "healthy");

    /// <summary>A source feeding a Python kernel (<paramref name="function"/> of <paramref name="module"/>) and a C# copy (<paramref name="copy"/>), each to a sink.</summary>
    private string Document(string module, string function, string moreParameters, string copy) => $$$"""
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
            parameters: {module: {{{module}}}, function: {{{function}}}, path: '{{{directory}}}', interpreter: {{{Python}}}{{{(moreParameters.Length > 0 ? ", " + moreParameters : "")}}}}
          - {name: {{{copy}}}, kind: cpu.copy, input: input, output: b}
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
    public async Task PythonWorker_HistogramsReachTheManagersProfilingSnapshots()
    {
        Assert.SkipUnless(File.Exists(Python), $"needs {Python} with numpy (CI installs python3-numpy)");
        var manager = Manager(Document("pysettings", "fill_gain", "", "healthy"));
        manager.Build();
        manager.Start();
        WaitUntil(() => manager.Profiling().Nodes.Single(n => n.Name == "py").Compute is { Count: > 10 }, "the Python worker's compute time reaches the whole pipeline's snapshot");

        // GET /profiling's snapshot: the Python node's compute time (it sleeps 0.5 ms a frame) and its reader's latency.
        var snapshot = manager.Profiling();
        var compute = snapshot.Nodes.Single(n => n.Name == "py").Compute!;
        Assert.InRange(compute.P50Us, 400, compute.MaxUs);
        var reader = snapshot.Streams.Single(s => s.Name == "input").Readers.Single(r => r.Node == "py");
        Assert.True(reader.Latency is { Count: > 0 }, $"the Python reader's latency: {reader}");
        Assert.True(snapshot.Nodes.Single(n => n.Name == "healthy").Compute is { Count: > 0 }, "the C# node keeps its own histogram");

        // The routed profiling_snapshot of the Python process: the counters read here and the worker's summaries, buckets kept.
        var reply = await manager.RequestNodeAsync("py", "profiling_snapshot", null, TimeSpan.FromSeconds(5), TestContext.Current.CancellationToken);
        var node = reply.Result!["nodes"]!.AsArray().Single(n => (string?)n!["name"] == "py")!;
        var buckets = node["compute"]!["buckets"]!.AsArray();
        Assert.Equal((long)node["compute"]!["count"]!, buckets.Sum(b => (long)b!["count"]!));
        Assert.All(buckets.Zip(buckets.Skip(1)), p => Assert.Equal(2 * (double)p.First!["up_to_us"]!, (double)p.Second!["up_to_us"]!));
        var input = reply.Result!["streams"]!.AsArray().Single(s => (string?)s!["name"] == "input")!;
        var own = Assert.Single(input["readers"]!.AsArray())!;
        Assert.Equal("py", (string?)own["node"]);
        Assert.True((long)own["frames"]! > 0 && (long)own["latency"]!["count"]! > 0, own.ToJsonString());
        Assert.DoesNotContain(reply.Result!["streams"]!.AsArray(), s => (string?)s!["name"] == "b"); // not the C# copy's stream
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

    /// <summary>
    /// A Python worker serves the request mailbox as a C# worker does: ping, process_stats, the function's own
    /// handlers, every typed error, and the settings its function declared (schema learned from the worker,
    /// validated by the manager, applied between two frames, kept across a restart).
    /// </summary>
    [Fact]
    public async Task PythonWorker_AnswersRoutedRequests_AndAppliesItsDeclaredLiveSettings()
    {
        Assert.SkipUnless(File.Exists(Python), $"needs {Python} with numpy (CI installs python3-numpy)");
        var timeout = TimeSpan.FromSeconds(10);
        var manager = Manager($$$"""
            shared_memory:
              - {name: input, shape: [16], dtype: float32}
              - {name: a, shape: [16], dtype: float32}
            sources:
              - {name: camera, kind: synthetic.array, stream: input, parameters: {pattern: sine, rate_hz: 300}}
            kernels:
              - name: py
                kind: python.kernel
                input: input
                output: a
                parameters: {module: pysettings, function: fill_gain, path: '{{{directory}}}', interpreter: {{{Python}}}, gain: 2.0}
            sinks:
              - {name: sink_a, kind: null.sink, stream: a}
            """);
        Assert.DoesNotContain(manager.SettingsSchema().Nodes["py"].Fields, f => f.Name == "gain"); // known once the worker started
        manager.Build();
        manager.Start();
        WaitUntil(() => Output(manager, "a") is 2f, "the Python kernel computes with the document's gain");

        var fields = manager.SettingsSchema().Nodes["py"].Fields;
        var gain = Assert.Single(fields, f => f.Name == "gain");
        Assert.Equal(("number", true, 0.0, 10.0, "V/V"), (gain.Type, gain.Live, gain.Minimum, gain.Maximum, gain.Unit));
        Assert.False(Assert.Single(fields, f => f.Name == "label").Live);
        Assert.Equal("a", (string?)manager.Settings().Nodes["py"]["label"]);

        var workerPid = manager.Status().Workers["py"].Pid!.Value;
        var ping = await manager.RequestNodeAsync("py", "ping", null, timeout);
        Assert.Equal(("py", workerPid), ((string?)ping.Result!["node"], (int)ping.Result!["pid"]!));
        var stats = await manager.RequestNodeAsync("py", "process_stats", null, timeout);
        Assert.Equal(workerPid, (int)stats.Result!["pid"]!);
        Assert.True((long)stats.Result!["rss_bytes"]! > 0);
        Assert.True((int)stats.Result!["threads"]! >= 2); // the loop and the request thread
        Assert.StartsWith("python ", (string?)stats.Result!["runtime"], StringComparison.Ordinal);
        var echo = await manager.RequestNodeAsync("py", "echo", new JsonObject { ["x"] = 42 }, timeout);
        Assert.Equal(42, (int)echo.Result!["x"]!);

        async Task<RequestException> Refused(string op, JsonObject? args) =>
            await Assert.ThrowsAsync<RequestException>(() => manager.RequestNodeAsync("py", op, args, timeout));
        Assert.Equal(RequestErrorCode.NoHandler, (await Refused("no_such_op", null)).Code);
        var boom = await Refused("boom", null);
        Assert.Equal(RequestErrorCode.HandlerError, boom.Code);
        Assert.Contains("deliberate handler failure", boom.Message, StringComparison.Ordinal);
        Assert.Equal(RequestErrorCode.InvalidRequest, (await Refused("update_setting", new JsonObject())).Code);
        var notLive = await Refused("update_setting", new JsonObject { ["values"] = new JsonObject { ["label"] = "b" } });
        Assert.Equal((RequestErrorCode.InvalidRequest, "label"), (notLive.Code, notLive.Field));
        var outOfBounds = await Refused("update_setting", new JsonObject { ["values"] = new JsonObject { ["gain"] = 99.0 } });
        Assert.Equal((RequestErrorCode.InvalidRequest, "gain"), (outOfBounds.Code, outOfBounds.Field));

        // Through the settings service: validated by the manager against the declared schema, applied between frames.
        var tooBig = await Assert.ThrowsAsync<SettingsValidationException>(() => manager.PatchSettingsAsync("py", new JsonObject { ["gain"] = 11.0 }));
        Assert.Equal("gain", tooBig.Field);
        var result = await manager.PatchSettingsAsync("py", new JsonObject { ["gain"] = 3.0 });
        Assert.Equal("live", result.AppliedBy);
        WaitUntil(() => Output(manager, "a") is 3f, "the Python kernel computes with the new gain");
        for (var i = 0; i < 20; i++)
        {
            Assert.Equal(3f, Output(manager, "a")); // after the acknowledgement every frame has the new gain, whole
        }

        // Restarted, the worker gets the current gain, not the document's.
        _ = kill(workerPid, 9);
        WaitUntil(() => manager.State == PipelineState.Failed, "the pipeline notices the kill");
        manager.Restart();
        var restarted = manager.Status().Workers["py"].Pid!.Value;
        Assert.NotEqual(workerPid, restarted);
        WaitUntil(() => Output(manager, "a") is 3f, "the restarted Python kernel computes with gain 3");

        // A stopped worker: a request times out; one in flight when it dies fails at once as process_exited.
        manager.Pause();
        _ = kill(restarted, 19); // SIGSTOP
        WaitUntil(() => File.ReadAllText($"/proc/{restarted}/stat").Split(' ')[2] == "T", "the worker's process is stopped");
        Assert.Equal(RequestErrorCode.Timeout, (await Assert.ThrowsAsync<RequestException>(() => manager.RequestNodeAsync("py", "ping", null, TimeSpan.FromMilliseconds(300)))).Code);
        var pending = manager.RequestNodeAsync("py", "ping", null, TimeSpan.FromSeconds(60));
        _ = kill(restarted, 9);
        Assert.Equal(RequestErrorCode.ProcessExited, (await Assert.ThrowsAsync<RequestException>(() => pending.WaitAsync(TimeSpan.FromSeconds(30)))).Code);
    }

    /// <summary>
    /// No head-of-line blocking between workers: a request held in one worker's handler (until the test
    /// releases it) does not delay requests to the other workers, which are answered meanwhile.
    /// </summary>
    [Fact]
    public async Task ASlowRequestToOneWorker_DoesNotDelayRequestsToOthers()
    {
        Assert.SkipUnless(File.Exists(Python), $"needs {Python} with numpy (CI installs python3-numpy)");
        var flag = Path.Combine(directory, "release");
        var manager = Manager(Document("pysettings", "fill_gain", "", "copy"));
        manager.Build();
        manager.Start();
        var held = manager.RequestNodeAsync("py", "hold", new JsonObject { ["flag"] = flag }, TimeSpan.FromSeconds(90));
        var others = new[] { "camera", "copy", "sink_a", "sink_b" };
        for (var round = 0; round < 5; round++)
        {
            var replies = await Task.WhenAll(others.Select(n => manager.RequestNodeAsync(n, "ping", null, TimeSpan.FromSeconds(30)))).WaitAsync(TimeSpan.FromSeconds(60));
            Assert.Equal(others, replies.Select(r => (string?)r.Result!["node"]));
            Assert.False(held.IsCompleted, "the held request is still in its handler while the others are answered");
        }

        File.WriteAllText(flag, "");
        var released = await held.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True((bool)released.Result!["released"]!);
    }

    /// <summary>The first element of the newest frame of <paramref name="name"/> (NaN if its elements differ), or null before one.</summary>
    private static float? Output(PipelineManager manager, string name)
    {
        using var stream = SharedStream.Attach(manager.Namespace, name);
        using var reader = stream.OpenReader<byte>(new ReaderOptions { Delivery = Delivery.Latest });
        if (!reader.PeekNewest(out var frame, out _))
        {
            return null;
        }

        var values = MemoryMarshal.Cast<byte, float>(frame.Span);
        return values.ToArray().Distinct().Count() == 1 ? values[0] : float.NaN;
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int signal);

    void IDisposable.Dispose()
    {
        Dispose();
        Directory.Delete(directory, recursive: true);
    }
}
