using System.Net;
using Flowline.Client;
using Flowline.Pipelines;

namespace Flowline.ControlPlane.Tests;

/// <summary>Task functions of the served code-first pipeline (static, so the counter task can run in a worker process).</summary>
public static class ServedTasks
{
    /// <summary>Writes a counter until stopped.</summary>
    public static void Count(TaskWriter<long> output, CancellationToken stopping)
    {
        var frame = new long[1];
        while (!stopping.IsCancellationRequested)
        {
            output.Write(frame);
            frame[0]++;
            Thread.Sleep(2);
        }
    }
}

/// <summary>A pipeline declared in code (<see cref="Pipeline"/>) served by the control plane.</summary>
[Collection(nameof(ServerTestCollection))]
public sealed class CodeFirstTests : ServerTest
{
    protected override bool StartServer => false;

    [Fact]
    public async Task Serve_ACodeFirstPipeline_RunsItsTasks_AndRefusesToReplaceItsDocument()
    {
        long seen = 0;
        using var pipe = new Pipeline(Namespace);
        pipe.AddStream<long>("counter", [1], frames: 8);
        pipe.AddTask("count", ServedTasks.Count, writes: new() { ["output"] = "counter" });
        pipe.AddTask("tally", (TaskReader<long> input, CancellationToken stopping) =>
        {
            while (!stopping.IsCancellationRequested)
            {
                if (input.Read(TimeSpan.FromMilliseconds(100)) is { } frame)
                {
                    Interlocked.Exchange(ref seen, frame[0]);
                }
            }
        }, reads: new() { ["input"] = "counter" });
        pipe.Compile();

        await using (var server = await ControlServer.StartAsync(pipe.Manager, Complete(new ControlServerOptions()), TestContext.Current.CancellationToken))
        {
            using var client = new RemoteManagerClient(server.Address);
            Assert.Equal("running", (await client.StartAsync()).State);
            await WaitUntilAsync(() => Task.FromResult(Interlocked.Read(ref seen) > 20), "the thread task sees the process task's frames");

            var status = await client.StatusAsync();
            var count = status.Workers["count"];
            Assert.True(count.Task);
            Assert.Equal("process", count.Placement);
            Assert.Equal("thread", status.Workers["tally"].Placement);
            Assert.Equal(["counter"], count.Writes);

            var document = (await client.DocumentAsync()).Document;
            Assert.Equal(["count", "tally"], document["tasks"]!.AsArray().Select(t => (string?)t!["name"]).Order());

            var refused = await Assert.ThrowsAsync<RemoteManagerException>(() => client.UpdateDocumentAsync(document));
            Assert.Equal((int)HttpStatusCode.Conflict, refused.StatusCode);
            Assert.Contains("declared in code", refused.Detail, StringComparison.Ordinal);

            Assert.Equal("built", (await client.StopAsync(force: true)).State);
        }

        AssertNothingLeft(Namespace);
    }
}
