using System.Text.Json.Nodes;
using Flowline.Client;
using Flowline.Status;

namespace Flowline.ControlPlane.Tests;

/// <summary>
/// A served example driven through <see cref="RemoteManagerClient"/> while the event stream is followed,
/// and shmpipeline's documented client session replayed against our responses' shapes.
/// </summary>
[Collection(nameof(ServerTestCollection))]
public sealed class EndToEndTests : ServerTest
{
    [Fact]
    public async Task Client_DrivesTheWholeLifecycle_WhileFollowingEvents_AndNothingIsLeft()
    {
        using var client = new RemoteManagerClient(Server.Address);
        using var follow = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var events = new List<RemoteEvent>();
        var subscribed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var following = Task.Run(async () =>
        {
            await foreach (var e in client.EventsAsync(cancellationToken: follow.Token))
            {
                lock (events)
                {
                    events.Add(e);
                }

                subscribed.TrySetResult();
            }
        });

        // Commands start once the stream is open (its initial snapshot came), so that every event is seen.
        await subscribed.Task.WaitAsync(TimeSpan.FromSeconds(15), TestContext.Current.CancellationToken);

        // A document without its source, so that a synthetic input can drive the stream.
        var document = (await client.DocumentAsync()).Document;
        var updated = await client.UpdateDocumentAsync(SourcelessDocument(document));
        Assert.Equal(2, updated.Revision);
        Assert.True(updated.Valid);
        Assert.Empty(updated.Errors);
        Assert.NotNull(updated.Graph);

        Assert.Equal("built", (await client.BuildAsync()).State);
        var synthetic = await client.StartSyntheticInputAsync(new SyntheticInputRequest { StreamName = "input_vector", Pattern = "sine", RateHz = 500 });
        Assert.Equal("input_vector", synthetic.SyntheticSource.StreamName);
        Assert.Equal("running", (await client.StartAsync()).State);
        await WaitUntilAsync(async () => (await client.StatusAsync()).Sinks["sink"].FramesConsumed > 50, "frames reach the sink");

        var latest = await client.LatestFrameAsync("output_vector");
        Assert.True((bool?)latest["available"]);
        Assert.Equal(64, latest["data"]!.AsArray().Count);

        Assert.Equal("paused", (await client.PauseAsync()).State);
        Assert.Equal("running", (await client.ResumeAsync()).State);
        var stopped = await client.StopSyntheticInputAsync("input_vector");
        Assert.Equal("input_vector", stopped.StreamName);
        Assert.Equal("built", (await client.StopAsync(force: true)).State);
        Assert.Equal("stopped", (await client.ShutdownAsync(force: true)).State);
        AssertNothingLeft(Namespace);

        await WaitUntilAsync(() => Task.FromResult(Reasons(events).Contains("shutdown")), "the shutdown snapshot arrives");
        await follow.CancelAsync();
        await following;

        List<RemoteEvent> seen;
        lock (events)
        {
            seen = [.. events];
        }

        Assert.Equal("snapshot", seen[0].Type);
        Assert.Null(seen[0].Id);
        Assert.Equal("initialized", seen[0].AsSnapshot()!.Snapshot.State);
        Assert.Equal("built", seen.Select(e => e.AsSnapshot()).Single(s => s?.Reason == "stop")!.Snapshot.State);
        Assert.Null(seen.First(e => e.Type == "document_updated").AsSnapshot());
        Assert.Equal(["initial", "build", "synthetic_start", "start", "pause", "resume", "synthetic_stop", "stop", "shutdown"], Reasons(seen));
        Assert.Contains(seen, e => e.Type == "document_updated");
        Assert.Contains(seen, e => e.Type == "worker_started" && (string?)e.Data!["kernel"] == "copy");
        Assert.Contains(seen, e => e.Type == "worker_metrics");
        Assert.Contains(seen, e => e.Type == "worker_stopped");
        Assert.Contains(seen, e => e.Type == "state_changed" && (string?)e.Data!["state"] == "paused");
        var ids = seen.Where(e => e.Id is not null).Select(e => e.Id!.Value).ToList();
        Assert.Equal(ids.Order(), ids);
        Assert.Equal(ids.Count, ids.Distinct().Count());
    }

    /// <summary>
    /// shmpipeline's README session (its Python RemoteManagerClient): document, update_document,
    /// build, start, snapshot, pause, resume, stop(force=True), shutdown(force=True), and
    /// start_synthetic_input with its documented body. Every response has the fields that client reads.
    /// </summary>
    [Fact]
    public async Task ShmpipelinesDocumentedSession_GetsResponsesOfItsShapes()
    {
        var document = await GetOkAsync("/document");
        AssertFields(document, "config_path", "config_base_path", "revision", "document");

        var put = await PutAsync("/document", document["document"]!.DeepClone());
        AssertFields(put.Json, "config_path", "config_base_path", "revision", "document", "valid", "errors", "graph");

        foreach (var command in new[] { "build", "start" })
        {
            AssertSnapshot(await PostOkAsync($"/commands/{command}"));
        }

        var snapshot = await GetOkAsync("/snapshot");
        AssertSnapshot(snapshot);
        AssertFields(snapshot["summary"]!.AsObject(), "workers_total", "active_workers", "failed_workers", "sources_total", "sinks_total");
        AssertSnapshot(await PostOkAsync("/commands/pause"));
        AssertSnapshot(await PostOkAsync("/commands/resume"));
        AssertSnapshot(await PostOkAsync("/commands/stop", new JsonObject { ["force"] = true }));

        // The synthetic-input example of its README, on a stream nothing writes: the source is removed first.
        await PostOkAsync("/commands/shutdown", new JsonObject { ["force"] = true });
        await PutAsync("/document", SourcelessDocument(document["document"]!.AsObject()));
        await PostOkAsync("/commands/build");
        var started = await PostOkAsync("/synthetic/start", new JsonObject { ["stream_name"] = "input_vector", ["pattern"] = "random", ["rate_hz"] = 500.0, ["seed"] = 0 });
        AssertFields(started, "synthetic_source", "snapshot");
        AssertFields(started["synthetic_source"]!.AsObject(), "stream_name", "pattern", "rate_hz", "frames_written", "effective_rate_hz", "last_error");
        AssertSnapshot(started["snapshot"]!.AsObject());

        var shutdown = await PostOkAsync("/commands/shutdown", new JsonObject { ["force"] = true });
        AssertSnapshot(shutdown);
        Assert.Equal("stopped", (string?)shutdown["state"]);

        var info = await GetOkAsync("/info");
        AssertFields(info, "config_path", "config_base_path", "state", "commands", "kernel_kinds", "source_kinds", "sink_kinds", "synthetic_patterns", "document_revision");
        AssertFields(await GetOkAsync("/health"), "ok", "state", "document_revision");
    }

    /// <summary>
    /// The client's typed replies hold every field the server writes: each reply read from a real server and
    /// written again is the server's JSON, so nothing a caller could want is dropped on the way.
    /// </summary>
    [Fact]
    public async Task Client_TypedReplies_RoundTripTheServersJson()
    {
        using var client = new RemoteManagerClient(Server.Address);

        AssertRoundTrip(await GetOkAsync("/health"), await client.HealthAsync());
        var info = await client.InfoAsync();
        AssertRoundTrip(await GetOkAsync("/info"), info);
        Assert.Contains("build", info.Commands);
        Assert.Equal(["build", "start", "shutdown"], info.AllowedCommands); // initialized
        Assert.Contains("cpu.copy", info.KernelKinds);
        Assert.Equal(Namespace, info.Namespace);

        var document = await client.DocumentAsync();
        AssertRoundTrip(await GetOkAsync("/document"), document);
        Assert.Equal(1, document.Revision);

        var valid = await client.ValidateDocumentAsync();
        Assert.True(valid.Valid);
        Assert.NotNull(valid.Graph);

        var broken = document.Document.DeepClone().AsObject();
        broken["kernels"]![0]!["kind"] = "cpu.no_such_kind";
        var invalid = await client.ValidateDocumentAsync(broken);
        Assert.False(invalid.Valid);
        Assert.Equal(invalid.Errors.Count, invalid.ErrorCount);
        Assert.Contains(invalid.Errors, e => e.Contains("cpu.no_such_kind", StringComparison.Ordinal));
        AssertRoundTrip((await PostAsync("/document/validate", broken)).Json, invalid);
    }

    private static void AssertRoundTrip<T>(JsonObject server, T reply)
    {
        var again = JsonNode.Parse(StatusJson.Serialize(reply));
        Assert.True(JsonNode.DeepEquals(server, again), $"{typeof(T).Name}: the server wrote {server.ToJsonString()}, the reply writes {again!.ToJsonString()}");
    }

    private static List<string> Reasons(List<RemoteEvent> events)
    {
        lock (events)
        {
            return [.. events.Select(e => e.AsSnapshot()).OfType<SnapshotEvent>().Select(s => s.Reason)];
        }
    }

    private static void AssertSnapshot(JsonObject snapshot) =>
        AssertFields(snapshot, "state", "workers", "sources", "sinks", "failures", "metrics", "synthetic_sources", "summary", "timestamp", "graph", "document_revision", "config_path");

    private static void AssertFields(JsonObject o, params string[] fields)
    {
        foreach (var field in fields)
        {
            Assert.True(o.ContainsKey(field), $"'{field}' is missing from {string.Join(", ", o.Select(p => p.Key))}");
        }
    }
}
