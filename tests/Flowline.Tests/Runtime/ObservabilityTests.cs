using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Flowline.Runtime;
using Flowline.SharedMemory;

namespace Flowline.Tests.Runtime;

/// <summary>Issue 12: the process registry, routed requests through the control block's mailbox, and live settings.</summary>
public sealed class ObservabilityTests : RuntimeTest
{
    private const string AddPipeline = """
        shared_memory:
          - {name: input, shape: [16], dtype: float32}
          - {name: output, shape: [16], dtype: float32}
        sources:
          - name: camera
            kind: synthetic.array
            stream: input
            parameters: {pattern: constant, constant: 1.0, rate_hz: 200, seed: 1}
        kernels:
          - {name: add, kind: cpu.add_constant, input: input, output: output, parameters: {constant: 2.0}}
        sinks:
          - {name: sink, kind: null.sink, stream: output}
        """;

    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    [Fact]
    public void Processes_ListTheManagerAndEachWorker_WithUuidsPidsAndOwnership()
    {
        var manager = Manager(AddPipeline);
        manager.Build();
        manager.Start();
        var processes = manager.Processes();
        Assert.Equal("manager", processes[0].Role);
        Assert.Equal(Environment.ProcessId, processes[0].Pid);
        var add = Assert.Single(processes, p => p.Nodes.Contains("add"));
        Assert.Equal("worker", add.Role);
        Assert.True(Guid.TryParse(add.Id, out _));
        Assert.NotEqual(Environment.ProcessId, add.Pid);
        Assert.Equal(["output"], add.StreamsWritten);
        Assert.Equal(["input"], add.StreamsRead);
        Assert.Equal(4, processes.Select(p => p.Id).Distinct().Count());
        Assert.NotNull(manager.RuntimeSnapshot().Processes);
    }

    [Fact]
    public void ExternalClaim_OfAWorkersNodeOrStream_FailsNamingTheCollision()
    {
        var manager = Manager(AddPipeline);
        manager.Build();
        manager.Start();
        var e = Assert.Throws<OwnershipConflictException>(() => manager.RegisterExternalProcess(12345, ["add"], ["input"], []));
        Assert.Contains("node 'add'", e.Message, StringComparison.Ordinal);
        Assert.Contains("stream 'input'", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(manager.Processes(), p => p.Role == "external");
        var id = manager.RegisterExternalProcess(12345, [], [], ["output"]);
        Assert.Contains(manager.Processes(), p => p.Id == id.ToString() && p.Role == "external");
    }

    [Fact]
    public async Task Requests_PingStatsAndEveryErrorCode()
    {
        var manager = Manager(AddPipeline);
        manager.Build();
        manager.Start();
        var ping = await manager.RequestNodeAsync("add", "ping", null, Timeout);
        Assert.Equal("add", (string?)ping.Result!["node"]);
        Assert.True(ping.ElapsedUs > 0);

        var stats = await manager.RequestNodeAsync("camera", "process_stats", null, Timeout);
        Assert.True((long)stats.Result!["rss_bytes"]! > 0);
        Assert.True((int)stats.Result!["threads"]! > 0);
        Assert.NotNull(stats.Result!["gc_pause_seconds"]);

        var byId = await manager.RequestProcessAsync(ping.ProcessId, "ping", null, Timeout);
        Assert.Equal(ping.ProcessId, byId.ProcessId);
        var managerPing = await manager.RequestProcessAsync(manager.ProcessId.ToString(), "process_stats", null, Timeout);
        Assert.Equal(Environment.ProcessId, (int)managerPing.Result!["pid"]!);

        Assert.Equal(RequestErrorCode.UnknownTarget, (await Assert.ThrowsAsync<RequestException>(() => manager.RequestNodeAsync("nope", "ping", null, Timeout))).Code);
        Assert.Equal(RequestErrorCode.UnknownTarget, (await Assert.ThrowsAsync<RequestException>(() => manager.RequestProcessAsync(Guid.NewGuid().ToString(), "ping", null, Timeout))).Code);
        Assert.Equal(RequestErrorCode.NoHandler, (await Assert.ThrowsAsync<RequestException>(() => manager.RequestNodeAsync("add", "no_such_op", null, Timeout))).Code);
        Assert.Equal(RequestErrorCode.InvalidRequest, (await Assert.ThrowsAsync<RequestException>(() => manager.RequestNodeAsync("add", "update_setting", new JsonObject(), Timeout))).Code);
        Assert.Equal(RequestErrorCode.InvalidRequest, (await Assert.ThrowsAsync<RequestException>(() => manager.RequestNodeAsync("sink", "update_setting", new JsonObject { ["values"] = new JsonObject { ["x"] = 1 } }, Timeout))).Code);
        Assert.Equal(RequestErrorCode.HandlerError, (await Assert.ThrowsAsync<RequestException>(() => manager.RequestNodeAsync("add", "update_setting", new JsonObject { ["values"] = new JsonObject { ["constant"] = "not a number" } }, Timeout))).Code);

        // A worker stopped by a signal: the request in flight or sent after fails at once, not at its timeout.
        var kernel = manager.Processes().Single(p => p.Nodes.Contains("add"));
        manager.Pause(); // the kernel sleeps on its command word; a request's between-frame part is not reached before the kill
        _ = kill(kernel.Pid, 19); // SIGSTOP: it takes no request now
        WaitUntil(() => File.ReadAllText($"/proc/{kernel.Pid}/stat").Split(' ')[2] == "T", "the kernel's process is stopped");
        var pending = manager.RequestNodeAsync("add", "update_setting", new JsonObject { ["values"] = new JsonObject { ["constant"] = 9.0 } }, TimeSpan.FromSeconds(60));
        _ = kill(kernel.Pid, 9);
        var exited = await Assert.ThrowsAsync<RequestException>(() => pending.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(RequestErrorCode.ProcessExited, exited.Code);
        Assert.Equal(RequestErrorCode.ProcessExited, (await Assert.ThrowsAsync<RequestException>(() => manager.RequestProcessAsync(kernel.Id, "ping", null, Timeout))).Code);
    }

    [Fact]
    public async Task ConcurrentRequests_ManyClientsAndWorkers_AllAnswered()
    {
        var manager = Manager(AddPipeline);
        manager.Build();
        manager.Start();
        var nodes = new[] { "camera", "add", "sink" };
        var tasks = Enumerable.Range(0, 60).Select(i => Task.Run(() => manager.RequestNodeAsync(nodes[i % 3], "ping", null, TimeSpan.FromSeconds(30)))).ToList();
        var replies = await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(60, replies.Select(r => r.CorrelationId).Distinct().Count());
        Assert.All(replies, r => Assert.Equal(r.Node, (string?)r.Result!["node"]));
    }

    [Fact]
    public async Task Settings_ValidatedAppliedLiveLoggedAndKeptOnRestart()
    {
        var manager = Manager(AddPipeline);
        var schema = manager.SettingsSchema().Nodes["add"];
        var constant = Assert.Single(schema.Fields);
        Assert.True(constant.Live);
        Assert.Equal("number", constant.Type);
        Assert.Equal(2.0, (double)manager.Settings().Nodes["add"]["constant"]!);

        manager.Build();
        manager.Start();
        WaitUntil(() => Output(manager) is 3f, "the kernel computes with constant 2");

        var bad = await Assert.ThrowsAsync<SettingsValidationException>(() => manager.PatchSettingsAsync("add", new JsonObject { ["constant"] = "x" }));
        Assert.Equal("constant", bad.Field);
        var unknown = await Assert.ThrowsAsync<SettingsValidationException>(() => manager.PatchSettingsAsync("add", new JsonObject { ["gain"] = 1 }));
        Assert.Equal("gain", unknown.Field);
        Assert.Equal(0, manager.SettingsLog.Seq);

        var result = await manager.PatchSettingsAsync("add", new JsonObject { ["constant"] = 5.0 }, new ChangeSource("10.0.0.1", "control"));
        Assert.True(result.Applied);
        Assert.Equal("live", result.AppliedBy);
        Assert.Equal(1, result.Seq);
        // Acknowledged only once applied: frames computed after the acknowledgement use the new value.
        WaitUntil(() => Output(manager) is 6f, "the kernel computes with constant 5");

        var (events, lost, _) = manager.SettingsLog.After(0);
        Assert.False(lost);
        var e = Assert.Single(events).Event;
        Assert.Equal(("add", "constant", 2.0, 5.0, "10.0.0.1"), (e.Node, e.Field, (double)e.Old!, (double)e.New!, e.Client));
        Assert.NotNull(e.ProcessId);
        Assert.Empty(manager.SettingsLog.After(1).Events);

        // A worker killed and restarted gets the current value, not the document's.
        var kernel = manager.Processes().Single(p => p.Nodes.Contains("add"));
        _ = kill(kernel.Pid, 9);
        WaitUntil(() => manager.State == PipelineState.Failed, "the pipeline notices the kill");
        manager.Restart();
        WaitUntil(() => manager.Processes().Single(p => p.Nodes.Contains("add")).Id != kernel.Id && Output(manager) is 6f, "the restarted kernel computes with constant 5");
        Assert.Equal(5.0, (double)manager.Settings().Nodes["add"]["constant"]!);
    }

    [Fact]
    public async Task Settings_NodeNotRunning_StoredForItsStart()
    {
        var manager = Manager(AddPipeline);
        var result = await manager.PatchSettingsAsync("add", new JsonObject { ["constant"] = 7.0 });
        Assert.Equal("next_start", result.AppliedBy);
        Assert.Null(manager.SettingsLog.After(0).Events[0].Event.ProcessId);
        manager.Build();
        manager.Start();
        WaitUntil(() => Output(manager) is 8f, "the kernel starts with constant 7");
    }

    [Fact]
    public void BuiltInKinds_DeclareWhichParametersAreLive()
    {
        var kernels = Flowline.Plugins.KindRegistry.BuiltIn.Kernels;
        Assert.All(kernels["cpu.leaky_integrator"].Parameters, p => Assert.True(p.Live, p.Name));
        Assert.True(Assert.Single(kernels["cpu.scale"].Parameters).Live);
        Assert.False(Assert.Single(kernels["cpu.reduce"].Parameters).Live);
        var synthetic = Flowline.Plugins.KindRegistry.BuiltIn.Sources["synthetic.array"].Parameters;
        Assert.DoesNotContain(synthetic, p => p.Live);
    }

    [Fact]
    public void Topology_NodesEdgesOwnersAndEvents()
    {
        var manager = Manager(AddPipeline);
        manager.Build();
        manager.Start();
        var topology = manager.Topology();
        Assert.Equal(["add", "camera", "sink"], topology.Nodes.Select(n => n.Name).Order(StringComparer.Ordinal));
        Assert.Contains(topology.Edges, e => e.From == "camera" && e.To == "add" && e.Stream == "input");
        Assert.Contains(topology.Edges, e => e.From == "add" && e.To == "sink" && e.Stream == "output");
        Assert.All(topology.Nodes, n => Assert.NotNull(n.ProcessId));
        Assert.Contains(manager.TopologyLog.After(0).Events, e => e.Event.Type == "process_registered" && e.Event.Nodes.Contains("add"));
    }

    /// <summary>The first element of the newest frame of stream <c>output</c>, or null before one.</summary>
    private float? Output(PipelineManager manager)
    {
        using var stream = SharedStream.Attach(manager.Namespace, "output");
        using var reader = stream.OpenReader<byte>(new ReaderOptions { Delivery = Delivery.Latest });
        if (!reader.PeekNewest(out var frame, out _))
        {
            return null;
        }

        var values = MemoryMarshal.Cast<byte, float>(frame.Span);
        return values.ToArray().Distinct().Count() == 1 ? values[0] : float.NaN; // a frame never holds half a change
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int signal);
}
