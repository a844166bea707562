using System.Diagnostics;
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
    public async Task Status_ThreeIdleEventSubscribersWhileRunning_AnswersWithinFiveSeconds()
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

            // worker_metrics events flow to the subscribers, which never read them.
            var watch = Stopwatch.StartNew();
            while (watch.Elapsed < TimeSpan.FromSeconds(2))
            {
                var request = Stopwatch.StartNew();
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                using var response = await Http.GetAsync("/status", timeout.Token);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                Assert.True(request.Elapsed < TimeSpan.FromSeconds(5), $"/status took {request.Elapsed.TotalSeconds:0.0} s");
                await Task.Delay(100);
            }

            Assert.Equal("running", await StateAsync());
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
