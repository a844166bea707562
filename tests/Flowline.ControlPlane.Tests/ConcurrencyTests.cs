using System.Net;

namespace Flowline.ControlPlane.Tests;

/// <summary>Concurrent commands, and readers that do not keep up.</summary>
public sealed class ConcurrencyTests : ServerTest
{
    [Fact]
    public async Task StartAndStop_EightConcurrentRequests_OnlyOkOrConflict_AndTheFinalStateIsCoherent()
    {
        var requests = Enumerable.Range(0, 8)
            .Select(i => PostAsync(i % 2 == 0 ? "/commands/start" : "/commands/stop"))
            .ToList();
        var replies = await Task.WhenAll(requests);
        foreach (var reply in replies)
        {
            Assert.True(reply.Status is HttpStatusCode.OK or HttpStatusCode.Conflict, $"{(int)reply.Status}: {reply.Text}");
        }

        Assert.Contains(replies, r => r.Status == HttpStatusCode.OK);
        var status = await GetOkAsync("/status");
        var state = (string?)status["state"];
        var workers = WorkerProcesses(Namespace);
        var alive = Pids(status).Values.Where(pid => workers.Contains(pid)).ToList();
        switch (state)
        {
            case "running":
                Assert.Equal(3, workers.Count);
                Assert.Equal(3, alive.Count);
                break;
            case "built":
                Assert.Empty(workers);
                break;
            default:
                Assert.Fail($"after starts and stops the pipeline is {state}");
                break;
        }

        Assert.Empty(status["failures"]!.AsArray());

        // Whatever the order was, the pipeline still answers commands.
        await PostOkAsync("/commands/stop");
        Assert.Equal("built", await StateAsync());
        await PostOkAsync("/commands/start");
        Assert.Equal("running", await StateAsync());
    }

    [Fact]
    public async Task Status_ThreeIdleEventSubscribersWhileRunning_AnswersWithMovingFiguresWhileEventsQueueUp()
    {
        await PostOkAsync("/commands/start");
        var idle = new List<EventStreamReader>();
        try
        {
            for (var i = 0; i < 3; i++)
            {
                idle.Add(await EventStreamReader.OpenAsync(Http));
            }

            Assert.Equal(3, Server.Service.Events.SubscriberCount);

            // worker_metrics events flow to the subscribers, which never read them; every /status answers
            // (each request is bounded by RequestTimeout) with figures that keep moving.
            var firstEvent = Server.Service.Events.NextId;
            var frames = await FramesAsync("copy");
            await WaitUntilAsync(async () =>
            {
                var status = await GetOkAsync("/status");
                Assert.Equal("running", (string?)status["state"]);
                return Server.Service.Events.NextId - firstEvent >= 10;
            }, "ten events were published to the idle subscribers", seconds: 60);
            Assert.True(await FramesAsync("copy") > frames, "the status of a running pipeline shows new frames");
        }
        finally
        {
            foreach (var reader in idle)
            {
                reader.Dispose();
            }
        }
    }

    [Fact]
    public async Task Build_QueuedBehindACommandWhoseClientWentAway_IsNotRun()
    {
        using var held = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var holder = Task.Run(() => Server.Service.Serialised(CancellationToken.None, () =>
        {
            held.Set();
            return release.Wait(RequestTimeout);
        }));
        try
        {
            Assert.True(held.Wait(RequestTimeout), "the holder got the command lock");
            using var cancel = new CancellationTokenSource();
            var build = Http.PostAsync("/commands/build", null, cancel.Token);
            await WaitUntilAsync(() => Task.FromResult(Server.Service.WaitingCommands == 1), "the build waits for its turn");

            await cancel.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => build);
            await WaitUntilAsync(() => Task.FromResult(Server.Service.WaitingCommands == 0), "the server saw the client go and dropped the build");
        }
        finally
        {
            release.Set();
            Assert.True(await holder, "the holder was released before its timeout");
        }

        Assert.Equal("initialized", await StateAsync());
        await PostOkAsync("/commands/build");
        Assert.Equal("built", await StateAsync());
    }

    [Fact]
    public async Task Status_ConcurrentWithAStart_DoesNotFail()
    {
        var start = PostAsync("/commands/start");
        var reads = Enumerable.Range(0, 10).Select(_ => GetAsync("/status")).ToList();
        foreach (var reply in await Task.WhenAll(reads))
        {
            Assert.True(reply.Status == HttpStatusCode.OK, reply.Text);
            Assert.Contains((string?)reply.Json["state"], new[] { "initialized", "built", "running" });
        }

        Assert.Equal(HttpStatusCode.OK, (await start).Status);
    }
}
