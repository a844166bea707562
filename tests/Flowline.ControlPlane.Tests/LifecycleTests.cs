using System.Net;
using System.Text.Json.Nodes;

namespace Flowline.ControlPlane.Tests;

/// <summary>The pipeline's life over HTTP, with real worker processes.</summary>
public sealed class LifecycleTests : ServerTest
{
    /// <summary>POSTs a command and asserts that it answers the snapshot in <paramref name="state"/>.</summary>
    private async Task<JsonObject> CommandAsync(string command, string state, JsonNode? body = null)
    {
        var snapshot = await PostOkAsync("/commands/" + command, body);
        Assert.Equal(state, (string?)snapshot["state"]);
        foreach (var key in new[] { "workers", "sources", "sinks", "failures", "summary", "timestamp", "graph", "document_revision", "config_path" })
        {
            Assert.True(snapshot.ContainsKey(key), $"the snapshot of {command} has no '{key}'");
        }

        Assert.Equal(state, await StateAsync());
        return snapshot;
    }

    [Fact]
    public async Task Commands_BuildStartPauseResumeStopShutdown_EachReturnsTheSnapshotInItsState()
    {
        var built = await CommandAsync("build", "built");
        Assert.Empty(Pids(built));
        Assert.True(Directory.Exists(Flowline.SharedMemory.SharedMemoryNamespace.DirectoryOf(Namespace)), "build creates the streams");

        var running = await CommandAsync("start", "running");
        var pids = Pids(running);
        Assert.Equal(["camera", "copy", "sink"], pids.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(pids.Values.Order(), WorkerProcesses(Namespace).Order());
        await WaitUntilAsync(async () => await FramesAsync("sink") > 10, "frames reach the sink");

        var paused = await CommandAsync("pause", "paused");
        Assert.Equal("paused", (string?)paused["workers"]!["copy"]!["health"]);
        await CommandAsync("resume", "running");
        var before = await FramesAsync("sink");
        await WaitUntilAsync(async () => await FramesAsync("sink") > before + 10, "frames flow again after resume");

        var stopped = await CommandAsync("stop", "built", new JsonObject { ["timeout"] = 5.0 });
        Assert.All(stopped["workers"]!.AsObject(), w => Assert.False((bool)w.Value!["alive"]!));
        Assert.Empty(WorkerProcesses(Namespace));
        Assert.True(Directory.Exists(Flowline.SharedMemory.SharedMemoryNamespace.DirectoryOf(Namespace)), "stop keeps the streams");

        await CommandAsync("shutdown", "stopped");
        Assert.False(
            Directory.Exists(Flowline.SharedMemory.SharedMemoryNamespace.DirectoryOf(Namespace))
            && Directory.EnumerateFileSystemEntries(Flowline.SharedMemory.SharedMemoryNamespace.DirectoryOf(Namespace)).Any(),
            "shutdown removes the streams");
    }

    [Fact]
    public async Task Pause_WhenBuilt_Is409NamingTheState()
    {
        await CommandAsync("build", "built");
        var detail = AssertError(await PostAsync("/commands/pause"), HttpStatusCode.Conflict);
        Assert.Contains("built", detail, StringComparison.Ordinal);
        Assert.Contains("pause", detail, StringComparison.Ordinal);
        Assert.Equal("built", await StateAsync());
    }

    [Fact]
    public Task IllegalTransitions_WhenInitialized_Are409() => AssertIllegalAsync("initialized", "pause", "resume", "restart");

    [Fact]
    public async Task IllegalTransitions_WhenRunning_Are409NamingRunning()
    {
        await CommandAsync("start", "running");
        await AssertIllegalAsync("running", "build", "start", "resume");
    }

    /// <summary>Each command is a 409 whose detail names <paramref name="state"/>, and the state stays.</summary>
    private async Task AssertIllegalAsync(string state, params string[] commands)
    {
        foreach (var command in commands)
        {
            var detail = AssertError(await PostAsync("/commands/" + command), HttpStatusCode.Conflict);
            Assert.Contains(state, detail, StringComparison.Ordinal);
        }

        Assert.Equal(state, await StateAsync());
    }

    [Fact]
    public async Task Build_WhenBuilt_Is409()
    {
        await CommandAsync("build", "built");
        await AssertIllegalAsync("built", "build");
    }

    [Fact]
    public async Task Start_FromInitialized_BuildsFirst()
    {
        var snapshot = await CommandAsync("start", "running");
        Assert.Equal(3, Pids(snapshot).Count);
        Assert.NotNull(snapshot["streams"]?["input_vector"]);
    }

    [Fact]
    public async Task Start_AfterShutdown_BuildsAgainWithANewManager()
    {
        await CommandAsync("start", "running");
        await CommandAsync("shutdown", "stopped");
        Assert.Empty(WorkerProcesses(Namespace));
        var snapshot = await CommandAsync("start", "running");
        Assert.Equal(3, Pids(snapshot).Count);
        await WaitUntilAsync(async () => await FramesAsync("sink") > 10, "frames reach the sink after the second start");
    }

    [Fact]
    public async Task Build_AfterShutdown_IsBuilt()
    {
        await CommandAsync("build", "built");
        await CommandAsync("shutdown", "stopped");
        await CommandAsync("build", "built");
    }

    [Fact]
    public async Task Stop_WhenBuilt_IsANoOp()
    {
        await CommandAsync("build", "built");
        await CommandAsync("stop", "built");
    }

    [Fact]
    public async Task Restart_RunningWithNoFailedWorker_KeepsEveryWorker()
    {
        // PipelineManager.Restart restarts only failed, dead or hung workers; with none, nothing changes.
        var running = await CommandAsync("start", "running");
        var pids = Pids(running);
        var restarted = await CommandAsync("restart", "running");
        Assert.Equal(pids, Pids(restarted));
        Assert.Empty(restarted["failures"]!.AsArray());
        Assert.Equal(pids.Values.Order(), WorkerProcesses(Namespace).Order());
    }

    [Fact]
    public async Task Restart_WhenBuilt_Is409()
    {
        await CommandAsync("build", "built");
        await AssertIllegalAsync("built", "restart");
    }

    [Fact]
    public async Task Restart_KilledWorker_StartsItAgain_AndThePipelineRunsAgain()
    {
        var running = await CommandAsync("start", "running");
        var victim = Pids(running)["copy"];
        Assert.True(Flowline.SharedMemory.Liveness.ThisProcess.SendSignal(victim, 9));
        await WaitUntilAsync(async () => await StateAsync() == "failed", "the pipeline fails");
        var status = await GetOkAsync("/status");
        Assert.Equal("copy", (string?)Assert.Single(status["failures"]!.AsArray())!["kernel"]);

        var restarted = await CommandAsync("restart", "running", new JsonObject { ["timeout"] = 10 });
        Assert.NotEqual(victim, Pids(restarted)["copy"]);
        Assert.Equal(Pids(running)["camera"], Pids(restarted)["camera"]);
        Assert.Empty(restarted["failures"]!.AsArray());
    }

    [Fact]
    public async Task Stop_WhenFailed_IsBuiltAndClearsTheFailures()
    {
        var running = await CommandAsync("start", "running");
        Assert.True(Flowline.SharedMemory.Liveness.ThisProcess.SendSignal(Pids(running)["sink"], 9));
        await WaitUntilAsync(async () => await StateAsync() == "failed", "the pipeline fails");
        var stopped = await CommandAsync("stop", "built", new JsonObject { ["force"] = true });
        Assert.Empty(stopped["failures"]!.AsArray());
    }

    /// <summary>Serves the example with its kernel replaced by <paramref name="kernel"/> (test plugin kinds available).</summary>
    private async Task ServeWithKernelAsync(JsonObject kernel)
    {
        var document = (await GetOkAsync("/document"))["document"]!.AsObject();
        document["plugins"] = new JsonArray(Path.Combine(AppContext.BaseDirectory, "plugins", "Flowline.Tests.Plugin.dll"));
        document["kernels"] = new JsonArray(kernel);
        var reply = await PutAsync("/document", document);
        Assert.True(reply.Status == HttpStatusCode.OK, reply.Text);
    }

    [Fact]
    public async Task Start_WorkerFailsToStart_IsAnErrorNamingTheWorker_AndThePipelineStaysBuilt()
    {
        await ServeWithKernelAsync(new JsonObject { ["name"] = "broken", ["kind"] = "test.fail_create", ["input"] = "input_vector", ["output"] = "output_vector" });
        var reply = await PostAsync("/commands/start");
        Assert.True((int)reply.Status >= 400, reply.Text);
        Assert.Contains("broken", reply.Detail, StringComparison.Ordinal);
        Assert.Contains("this kernel cannot be created", reply.Detail, StringComparison.Ordinal);
        Assert.Equal("built", await StateAsync());
        Assert.Empty(WorkerProcesses(Namespace));
    }

    [Fact]
    public async Task Start_WorkerFailsToStart_Is500WithTheFailureRecords()
    {
        await ServeWithKernelAsync(new JsonObject { ["name"] = "broken", ["kind"] = "test.fail_create", ["input"] = "input_vector", ["output"] = "output_vector" });
        var reply = await PostAsync("/commands/start");
        AssertError(reply, HttpStatusCode.InternalServerError);
        Assert.Equal("broken", (string?)reply.Json["failures"]![0]!["kernel"]);
    }

    [Fact]
    public async Task Health_DuringASlowStart_AnswersAtOnce()
    {
        await ServeWithKernelAsync(new JsonObject { ["name"] = "slow", ["kind"] = "test.slow_create", ["input"] = "input_vector", ["output"] = "output_vector", ["parameters"] = new JsonObject { ["delay_s"] = 3 } });
        await PostOkAsync("/commands/build");
        var start = PostAsync("/commands/start");
        await Task.Delay(500);
        Assert.False(start.IsCompleted, "the start takes 3 s");
        var watch = System.Diagnostics.Stopwatch.StartNew();
        Assert.Equal("built", await StateAsync());
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(1), $"/health took {watch.Elapsed.TotalMilliseconds:0} ms during a start");
        Assert.Equal(HttpStatusCode.OK, (await start).Status);
    }

    [Fact]
    public async Task Status_DuringASlowStart_AnswersAtOnce()
    {
        // docs/http-api.md: "Reads (/status, /snapshot, /health) do not wait behind a running command."
        await ServeWithKernelAsync(new JsonObject { ["name"] = "slow", ["kind"] = "test.slow_create", ["input"] = "input_vector", ["output"] = "output_vector", ["parameters"] = new JsonObject { ["delay_s"] = 3 } });
        await PostOkAsync("/commands/build");
        var start = PostAsync("/commands/start");
        await Task.Delay(500);
        Assert.False(start.IsCompleted, "the start takes 3 s");
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var status = await GetAsync("/status");
        var elapsed = watch.Elapsed;
        Assert.Equal(HttpStatusCode.OK, status.Status);
        Assert.True(elapsed < TimeSpan.FromSeconds(1), $"/status took {elapsed.TotalMilliseconds:0} ms during a start");
        Assert.Equal(HttpStatusCode.OK, (await start).Status);
    }

    /// <summary>The value of the sample of <paramref name="metric"/> whose labels include every one of <paramref name="labels"/>; null when there is none.</summary>
    private static double? Sample(string[] lines, string metric, params string[] labels)
    {
        foreach (var line in lines)
        {
            if (line.StartsWith(metric + "{", StringComparison.Ordinal) && labels.All(l => line.Contains(l, StringComparison.Ordinal)))
            {
                return double.Parse(line[(line.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
            }
        }

        return null;
    }

    [Fact]
    public async Task Metrics_Running_IsPrometheusTextWithStateAndWorkerSeries()
    {
        await CommandAsync("start", "running");
        await WaitUntilAsync(async () => await FramesAsync("copy") > 0, "the copy worker reports frames");
        var reply = await GetAsync("/metrics");
        Assert.Equal(HttpStatusCode.OK, reply.Status);
        Assert.StartsWith("text/plain", reply.Response.Content.Headers.ContentType?.MediaType, StringComparison.Ordinal);
        Assert.Contains("version=0.0.4", reply.Response.Content.Headers.ContentType?.ToString(), StringComparison.Ordinal);
        var lines = reply.Text.Split('\n');
        var ns = $"namespace=\"{Namespace}\"";
        Assert.Equal(1, Sample(lines, "flowline_pipeline_state", ns, "state=\"running\""));
        Assert.Equal(0, Sample(lines, "flowline_pipeline_state", ns, "state=\"built\""));
        Assert.Contains("# TYPE flowline_worker_frames_total counter", lines);
        Assert.Contains("# TYPE flowline_worker_auxiliary_torn_copies_total counter", lines);
        Assert.Contains("# TYPE flowline_worker_exec_duration_mean_seconds gauge", lines);
        Assert.Contains("# TYPE flowline_pipeline_operation_duration_seconds histogram", lines);
        Assert.Equal(0, Sample(lines, "flowline_worker_auxiliary_torn_copies_total", ns, "role=\"kernel\"", "worker=\"copy\""));
        foreach (var (role, worker) in new[] { ("kernel", "copy"), ("source", "camera"), ("sink", "sink") })
        {
            Assert.True(Sample(lines, "flowline_worker_frames_total", ns, $"role=\"{role}\"", $"worker=\"{worker}\"") > 0, $"{worker} has no frames: {reply.Text}");
        }

        // Seconds, bytes and ratios, not microseconds and percent.
        Assert.InRange(Sample(lines, "flowline_worker_exec_duration_mean_seconds", ns, "worker=\"copy\"")!.Value, 1e-9, 1.0);
        Assert.True(Sample(lines, "flowline_worker_memory_resident_bytes", ns, "worker=\"copy\"") > 1_000_000);
        Assert.InRange(Sample(lines, "flowline_stream_fill_ratio", ns, "stream=\"input_vector\"")!.Value, 0, 1);
        Assert.Equal(1, Sample(lines, "flowline_pipeline_operation_duration_seconds_count", ns, "operation=\"start\"", "outcome=\"ok\""));
        Assert.Equal(1, Sample(lines, "flowline_document_revision", ns));

        // The counters move: a later scrape has more frames.
        var first = Sample(lines, "flowline_worker_frames_total", ns, "worker=\"copy\"")!.Value;
        await WaitUntilAsync(async () => Sample((await GetAsync("/metrics")).Text.Split('\n'), "flowline_worker_frames_total", ns, "worker=\"copy\"") > first, "the frames counter increases");

        // Every sample line is "name{labels} number".
        foreach (var line in lines.Where(l => l.Length > 0 && !l.StartsWith('#')))
        {
            var value = line[(line.LastIndexOf(' ') + 1)..];
            Assert.True(double.TryParse(value, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out _), $"not a sample: {line}");
        }
    }

    [Fact]
    public async Task Metrics_Initialized_HasTheStateSeries()
    {
        var text = (await GetAsync("/metrics")).Text;
        Assert.Equal(1, Sample(text.Split('\n'), "flowline_pipeline_state", $"namespace=\"{Namespace}\"", "state=\"initialized\""));
        Assert.DoesNotContain("flowline_worker_frames_total{", text, StringComparison.Ordinal);
    }
}

/// <summary>An unexpected failure of a command: a 500 with the exception, and a <c>service_error</c> event.</summary>
public sealed class ServiceErrorTests : ServerTest
{
    protected override ControlServerOptions Options => new()
    {
        Service = new ControlServiceOptions { Manager = new Flowline.Runtime.PipelineManagerOptions { StartTimeout = TimeSpan.FromSeconds(1) } },
    };

    [Fact]
    public async Task Start_TimesOut_Is500WithTheException_AndPublishesServiceError()
    {
        var document = (await GetOkAsync("/document"))["document"]!.AsObject();
        document["plugins"] = new JsonArray(Path.Combine(AppContext.BaseDirectory, "plugins", "Flowline.Tests.Plugin.dll"));
        document["kernels"] = new JsonArray(new JsonObject { ["name"] = "slow", ["kind"] = "test.slow_create", ["input"] = "input_vector", ["output"] = "output_vector", ["parameters"] = new JsonObject { ["delay_s"] = 5 } });
        Assert.Equal(HttpStatusCode.OK, (await PutAsync("/document", document)).Status);

        using var events = await EventStreamReader.OpenAsync(Http);
        await events.NextAsync();
        var reply = await PostAsync("/commands/start");
        var detail = AssertError(reply, HttpStatusCode.InternalServerError);
        Assert.StartsWith("TimeoutException: ", detail, StringComparison.Ordinal);
        Assert.Contains("slow", detail, StringComparison.Ordinal);
        var error = await events.WaitForEventAsync("service_error");
        Assert.Equal(detail, (string?)error.Json["error"]);
        Assert.Equal("built", await StateAsync());
        Assert.Empty(WorkerProcesses(Namespace));
    }
}
