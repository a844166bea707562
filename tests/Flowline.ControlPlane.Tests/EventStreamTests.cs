using System.Net;
using System.Text.Json.Nodes;

namespace Flowline.ControlPlane.Tests;

/// <summary><c>GET /events</c>: headers, framing, the initial snapshot, keepalives, replay and the events of a pipeline's life.</summary>
public sealed class EventStreamTests : ServerTest
{
    private Task<EventStreamReader> OpenAsync(string? lastEventId = null) => EventStreamReader.OpenAsync(Http, lastEventId);

    /// <summary>Opens a stream and reads its initial snapshot.</summary>
    private async Task<EventStreamReader> OpenPastInitialAsync()
    {
        var events = await OpenAsync();
        var first = await events.NextAsync();
        Assert.Equal("initial", (string?)first.Json["reason"]);
        return events;
    }

    private static bool Reason(SseFrame f, string reason) => f.Event == "snapshot" && (string?)f.Json["reason"] == reason;

    [Fact]
    public async Task Events_Headers_AreEventStreamNoCacheNoBuffering()
    {
        using var events = await OpenAsync();
        var response = events.Response;
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        Assert.True(response.Headers.CacheControl?.NoCache, $"Cache-Control: {response.Headers.CacheControl}");
        Assert.Equal(["no"], response.Headers.GetValues("X-Accel-Buffering"));
    }

    [Fact]
    public async Task Events_FirstEvent_IsTheUnnumberedInitialSnapshot()
    {
        using var events = await OpenAsync();
        var first = await events.NextAsync();
        Assert.Equal("snapshot", first.Event);
        Assert.Null(first.Id);
        Assert.DoesNotContain("\nid:", "\n" + first.Raw, StringComparison.Ordinal);
        Assert.StartsWith("event: snapshot\ndata: {\"reason\":\"initial\",", first.Raw, StringComparison.Ordinal);
        var data = first.Json;
        Assert.Equal("initialized", (string?)data["snapshot"]!["state"]);
        Assert.Equal(1, (long)data["snapshot"]!["document_revision"]!);
        Assert.NotNull(data["snapshot"]!["graph"]);
    }

    [Fact]
    public async Task Events_AfterBuild_ANumberedBuildSnapshotArrives_AfterStateChanged()
    {
        using var events = await OpenPastInitialAsync();
        await PostOkAsync("/commands/build");
        var changed = await events.WaitForEventAsync("state_changed");
        Assert.Equal("built", (string?)changed.Json["state"]);
        Assert.Equal("initialized", (string?)changed.Json["previous"]);
        var build = await events.WaitForAsync(f => Reason(f, "build"), "the build snapshot");
        Assert.NotNull(build.Id);
        Assert.True(build.Number > changed.Number);
        Assert.Equal("built", (string?)build.Json["snapshot"]!["state"]);
    }

    [Fact]
    public async Task Events_OneEvent_IsFramedAsEventDataIdLinesEndedByABlankLine()
    {
        using var events = await OpenPastInitialAsync();
        await PostOkAsync("/commands/build");
        var changed = await events.WaitForEventAsync("state_changed");

        // The framework's SseFormatter writes "event:", then "data:", then "id:", each line ending in
        // "\n", and a blank line; the JSON is compact, on one line.
        Assert.Equal($"event: state_changed\ndata: {{\"state\":\"built\",\"previous\":\"initialized\"}}\nid: {changed.Id}\n\n", changed.Raw);
        Assert.DoesNotContain('\r', changed.Raw);
        var build = await events.WaitForAsync(f => Reason(f, "build"), "the build snapshot");
        Assert.Matches("^event: snapshot\ndata: \\{[^\n]*\\}\nid: [0-9]+\n\n$", build.Raw);
    }

    [Fact]
    public async Task Events_Idle_KeepaliveCommentsArriveEveryInterval()
    {
        // The server waits one idle interval (200 ms here) before each keepalive, so three take at
        // least 600 ms from the request; with the default 1 s interval they would take 3 s.
        var watch = System.Diagnostics.Stopwatch.StartNew();
        using var events = await OpenPastInitialAsync();
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(": keepalive\n\n", (await events.NextAsync(TimeSpan.FromSeconds(3))).Raw);
        }

        Assert.InRange(watch.Elapsed, TimeSpan.FromMilliseconds(550), TimeSpan.FromSeconds(2.5));
    }

    [Fact]
    public async Task Events_LastEventId_ReplaysLaterEventsBeforeTheInitialSnapshot()
    {
        SseFrame build;
        using (var events = await OpenPastInitialAsync())
        {
            await PostOkAsync("/commands/build");
            build = await events.WaitForAsync(f => Reason(f, "build"), "the build snapshot");
        }

        using var replay = await OpenAsync(Invariant(build.Number - 1));
        var first = await replay.NextAsync();
        Assert.Equal(build.Raw, first.Raw);
        var second = await replay.NextAsync();
        Assert.Equal("snapshot", second.Event);
        Assert.Null(second.Id);
        Assert.Equal("initial", (string?)second.Json["reason"]);
        Assert.Equal("built", (string?)second.Json["snapshot"]!["state"]);
    }

    [Fact]
    public async Task Events_LastEventIdZero_ReplaysTheWholeHistoryInOrder()
    {
        await PostOkAsync("/commands/build");
        await PostOkAsync("/commands/shutdown");
        using var replay = await OpenAsync("0");
        var ids = new List<long>();
        SseFrame frame;
        while ((frame = await replay.NextAsync()).Id is not null)
        {
            ids.Add(frame.Number);
        }

        Assert.Equal("initial", (string?)frame.Json["reason"]);
        Assert.Equal(Enumerable.Range(1, ids.Count).Select(i => (long)i), ids);
        Assert.True(ids.Count >= 4, $"build and shutdown make at least 4 events, got {ids.Count}");
    }

    [Fact]
    public async Task Events_LastEventIdNotANumber_Is400()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/events");
        request.Headers.TryAddWithoutValidation("Last-Event-ID", "abc");
        var reply = await SendAsync(Http, request);
        Assert.Contains("abc", AssertError(reply, HttpStatusCode.BadRequest), StringComparison.Ordinal);
    }

    private static async Task<Reply> SendAsync(HttpClient client, HttpRequestMessage request)
    {
        using var timeout = new CancellationTokenSource(RequestTimeout);
        var response = await client.SendAsync(request, timeout.Token);
        var text = await response.Content.ReadAsStringAsync(timeout.Token);
        return new Reply(response.StatusCode, JsonNode.Parse(text), text, response);
    }

    [Fact]
    public async Task Events_Start_StateChangedAndWorkerStartedForEveryWorker()
    {
        using var events = await OpenPastInitialAsync();
        await PostOkAsync("/commands/start");
        var start = await events.WaitForAsync(f => Reason(f, "start"), "the start snapshot");

        // Every worker reports started while the start waits for them: before the snapshot of the start.
        var before = events.Seen.Where(f => f.Id is not null && f.Number < start.Number).ToList();
        var started = before.Where(f => f.Event == "worker_started").ToList();
        Assert.Equal(["camera", "copy", "sink"], started.Select(f => (string)f.Json["kernel"]!).Order(StringComparer.Ordinal));
        Assert.All(started, f => Assert.True((int?)f.Json["pid"] > 0));
        Assert.Contains(before, f => f.Event == "state_changed" && (string?)f.Json["state"] == "built" && (string?)f.Json["previous"] == "initialized");
        Assert.Contains(before, f => f.Event == "state_changed" && (string?)f.Json["state"] == "running" && (string?)f.Json["previous"] == "built");
        var metrics = await events.WaitForEventAsync("worker_metrics");
        Assert.NotNull(metrics.Json["kernel"]);

        await PostOkAsync("/commands/stop");
        await events.WaitForEventAsync("worker_stopped");
        await events.WaitForAsync(f => Reason(f, "stop"), "the stop snapshot");
    }

    [Fact]
    public async Task Events_NumberedEvents_HaveIncreasingIds()
    {
        using var events = await OpenPastInitialAsync();
        await PostOkAsync("/commands/start");
        await events.WaitForAsync(f => Reason(f, "start"), "the start snapshot");
        await PostOkAsync("/commands/stop");
        await events.WaitForAsync(f => Reason(f, "stop"), "the stop snapshot");
        var ids = events.Seen.Where(f => f.Id is not null).Select(f => f.Number).ToList();
        Assert.True(ids.Count >= 6);
        Assert.Equal(ids.Order(), ids);
        Assert.Equal(ids.Distinct().Count(), ids.Count);
    }

    [Fact]
    public async Task Events_KernelRaises_WorkerFailedThenStateChangedToFailed()
    {
        var document = (await GetOkAsync("/document"))["document"]!.AsObject();
        document["kernels"]![0]!["kind"] = "cpu.raise_error";
        document["kernels"]![0]!["parameters"] = new JsonObject { ["message"] = "deliberate failure" };
        Assert.Equal(HttpStatusCode.OK, (await PutAsync("/document", document)).Status);

        using var events = await OpenPastInitialAsync();
        await PostOkAsync("/commands/start");
        var failed = await events.WaitForEventAsync("worker_failed");
        Assert.Equal("copy", (string?)failed.Json["kernel"]);
        Assert.Equal("deliberate failure", (string?)failed.Json["error"]);
        var changed = await events.WaitForEventAsync("state_changed", d => (string?)d["state"] == "failed");
        Assert.True(changed.Number > failed.Number);
        Assert.Equal("failed", await StateAsync());
        Assert.Equal("copy", (string?)Assert.Single((await GetOkAsync("/status"))["failures"]!.AsArray())!["kernel"]);
    }

    [Fact]
    public async Task Events_SinkKilled_SinkFailedThenStateChangedToFailed()
    {
        using var events = await OpenPastInitialAsync();
        var snapshot = await PostOkAsync("/commands/start");
        var sink = Pids(snapshot)["sink"];
        Assert.True(Flowline.SharedMemory.Liveness.ThisProcess.SendSignal(sink, 9));
        var failed = await events.WaitForEventAsync("sink_failed");
        Assert.Equal("sink", (string?)failed.Json["kernel"]);
        Assert.Contains("SIGKILL", (string?)failed.Json["error"], StringComparison.Ordinal);
        await events.WaitForEventAsync("state_changed", d => (string?)d["state"] == "failed");
    }

    [Fact]
    public async Task Events_PutDocument_DocumentUpdatedWithRevision()
    {
        using var events = await OpenPastInitialAsync();
        var document = (await GetOkAsync("/document"))["document"]!;
        Assert.Equal(HttpStatusCode.OK, (await PutAsync("/document", document)).Status);
        var updated = await events.WaitForEventAsync("document_updated");
        Assert.Equal("document_updated", (string?)updated.Json["reason"]);
        Assert.Equal(2, (long)updated.Json["revision"]!);
        Assert.True((bool)updated.Json["valid"]!);
        Assert.NotNull(updated.Json["document"]);
        Assert.NotNull(updated.Json["graph"]);
        Assert.Equal(ConfigPath, (string?)updated.Json["config_path"]);

        Assert.Equal(HttpStatusCode.OK, (await PostAsync("/document/load", new JsonObject { ["path"] = "pipeline.yaml" })).Status);
        var loaded = await events.WaitForEventAsync("document_updated");
        Assert.Equal("document_loaded", (string?)loaded.Json["reason"]);
        Assert.Equal(3, (long)loaded.Json["revision"]!);
    }

    [Fact]
    public async Task Events_SyntheticStartAndStop_SnapshotReasons()
    {
        var document = (await GetOkAsync("/document"))["document"]!.AsObject();
        Assert.Equal(HttpStatusCode.OK, (await PutAsync("/document", SourcelessDocument(document))).Status);
        await PostOkAsync("/commands/build");
        using var events = await OpenPastInitialAsync();
        await PostOkAsync("/synthetic/start", new JsonObject { ["stream_name"] = "input_vector", ["rate_hz"] = 100 });
        await events.WaitForAsync(f => Reason(f, "synthetic_start"), "the synthetic_start snapshot");
        await PostOkAsync("/synthetic/stop", new JsonObject { ["stream_name"] = "input_vector" });
        await events.WaitForAsync(f => Reason(f, "synthetic_stop"), "the synthetic_stop snapshot");
    }

    [Fact]
    public async Task Events_ServerDisposed_TheStreamEnds()
    {
        using var events = await OpenPastInitialAsync();
        var dispose = Server.DisposeAsync().AsTask();
        SseFrame? frame;
        do
        {
            frame = await events.TryNextAsync(TimeSpan.FromSeconds(10));
        }
        while (frame is not null && frame.IsComment);

        Assert.Null(frame);
        Assert.True(await Task.WhenAny(dispose, Task.Delay(TimeSpan.FromSeconds(10))) == dispose, "the server stops within 10 s with a stream open");
        await dispose;
    }

    [Fact]
    public async Task Events_ClientDisconnects_TheSubscriberIsRemoved()
    {
        var hub = Server.Service.Events;
        using (var events = await OpenPastInitialAsync())
        {
            Assert.Equal(1, hub.SubscriberCount);
        }

        // The server notices the disconnect at its next write (a keepalive every 200 ms).
        var watch = System.Diagnostics.Stopwatch.StartNew();
        while (hub.SubscriberCount != 0 && watch.Elapsed < TimeSpan.FromSeconds(5))
        {
            await Task.Delay(20);
        }

        Assert.Equal(0, hub.SubscriberCount);
    }
}

/// <summary>A subscriber that stops reading is cut off at the server without slowing the others, and resumes from the history.</summary>
public sealed class SlowSubscriberTests : ServerTest
{
    private const int Count = 300;

    protected override ControlServerOptions Options => new() { Service = new ControlServiceOptions { SubscriberQueue = 8 } };

    [Fact]
    public async Task Events_SubscriberStopsReading_IsCutOffAndResumesWithLastEventId_WhileAnotherGetsEveryEvent()
    {
        var hub = Server.Service.Events;
        using var fast = await EventStreamReader.OpenAsync(Http);
        using var slow = await EventStreamReader.OpenAsync(Http);
        Assert.Equal("initial", (string?)(await fast.NextAsync()).Json["reason"]);
        Assert.Equal("initial", (string?)(await slow.NextAsync()).Json["reason"]);

        // 300 events of 32 KB (9.6 MB): more than the sockets and Kestrel buffer for a client that does
        // not read, so the slow subscriber's queue of 8 fills; the fast one reads each as it comes.
        var received = new List<long>();
        var reader = Task.Run(async () =>
        {
            while (received.Count < Count)
            {
                var frame = await fast.NextAsync(TimeSpan.FromSeconds(10));
                if (frame.Event == "test")
                {
                    lock (received)
                    {
                        received.Add(frame.Number);
                    }
                }
            }
        });
        var pad = new string('x', 32_000);
        for (var i = 1; i <= Count; i++)
        {
            hub.Publish("test", new JsonObject { ["i"] = i, ["pad"] = pad });
            var watch = System.Diagnostics.Stopwatch.StartNew();
            while (CountOf(received) < i - 2 && !reader.IsCompleted)
            {
                Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), $"the fast subscriber is stuck at {CountOf(received)} events");
                await Task.Delay(1);
            }
        }

        await reader.WaitAsync(TimeSpan.FromSeconds(15));
        Assert.Equal(Enumerable.Range(1, Count).Select(i => (long)i), received);
        Assert.Equal(1, hub.SubscribersCutOff);
        Assert.Equal(1, hub.SubscriberCount);

        // The slow one gets what was queued for it, in order, then its stream ends.
        var got = new List<long>();
        SseFrame? frame;
        while ((frame = await slow.TryNextAsync(TimeSpan.FromSeconds(10))) is not null)
        {
            if (!frame.IsComment)
            {
                got.Add(frame.Number);
            }
        }

        Assert.InRange(got.Count, 1, Count - 1);
        Assert.Equal(Enumerable.Range(1, got.Count).Select(i => (long)i), got);

        // Reconnecting with the last id it got resumes from the history with no gap and no repeat.
        using var resumed = await EventStreamReader.OpenAsync(Http, Invariant(got[^1]));
        while ((frame = await resumed.NextAsync()).Id is not null)
        {
            got.Add(frame.Number);
        }

        Assert.Equal("initial", (string?)frame.Json["reason"]);
        Assert.Equal(Enumerable.Range(1, Count).Select(i => (long)i), got);
    }

    private static int CountOf(List<long> list)
    {
        lock (list)
        {
            return list.Count;
        }
    }

    [Fact]
    public async Task Events_History_ReplaysTheLast512Events()
    {
        // The fixture's server keeps the default history (512 events).
        for (var i = 1; i <= 600; i++)
        {
            Server.Service.Events.Publish("test", new JsonObject { ["i"] = i });
        }

        using var replay = await EventStreamReader.OpenAsync(Http, "0");
        var lost = await replay.NextAsync();
        Assert.Equal("events_lost", lost.Event);
        Assert.Null(lost.Id);
        Assert.Contains("\"first_kept\":89", lost.Data, StringComparison.Ordinal);
        var ids = new List<long>();
        SseFrame frame;
        while ((frame = await replay.NextAsync()).Id is not null)
        {
            ids.Add(frame.Number);
        }

        Assert.Equal(Enumerable.Range(89, 512).Select(i => (long)i), ids);
    }
}
