using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Flowline.Client;
using Flowline.SharedMemory;

namespace Flowline.ControlPlane.Tests;

/// <summary>
/// Traces of every frame of an unpaced, lossless copy pipeline served in-process (decision 146): the trace
/// stream reads the workers' rings as often as their traffic needs, so a consumer gets most records, where
/// a read every 100 ms would lose most; and whatever is lost is counted, never silently missing.
/// </summary>
public sealed class TraceRateTests : ServerTest
{
    private string UnpacedPath => Path.Combine(TestDirectory, "unpaced", "pipeline.yaml");

    protected override string ServedPath => UnpacedPath;

    public override ValueTask InitializeAsync()
    {
        WriteUnpaced(UnpacedPath);
        return base.InitializeAsync();
    }

    /// <summary>Copy-64 with an unpaced source and lossless streams: every frame of copy and sink, as fast as they go.</summary>
    internal static void WriteUnpaced(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, """
            shared_memory:
              - name: input_vector
                shape: [64]
                dtype: float32
                delivery: lossless
              - name: output_vector
                shape: [64]
                dtype: float32
                delivery: lossless
            sources:
              - name: camera
                kind: synthetic.array
                stream: input_vector
                parameters:
                  pattern: random
                  seed: 1
            kernels:
              - name: copy
                kind: cpu.copy
                input: input_vector
                output: output_vector
            sinks:
              - name: sink
                kind: null.sink
                stream: output_vector
            """);
    }

    [Fact]
    public async Task EveryFrameTraced_TheConsumerGetsMostRecords_AndEveryGapIsCounted()
    {
        var ct = TestContext.Current.CancellationToken;
        using var client = new RemoteManagerClient(Server.Address);
        await client.BuildAsync(cancellationToken: ct);
        await client.StartAsync(cancellationToken: ct);
        using var reader = await EventStreamReader.OpenAsync(Client(), path: "/profiling/traces");
        using (var on = new StringContent("{\"every\": 1, \"seconds\": 120}", Encoding.UTF8, "application/json"))
        {
            using var response = await Http.PostAsync("/profiling/traces", on, ct);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        // Read until 12 rings' worth of records per worker came (or 60 s passed): the first read, 100 ms after
        // the start, may overflow; what follows is the steady state.
        var target = 2 * 12 * ProfileBlock.TraceCapacity;
        var last = new Dictionary<string, long>();
        var first = new Dictionary<string, (long Seq, long PublishNs)>();
        var lastPublish = new Dictionary<string, long>();
        long delivered = 0, gaps = 0, ringLost = 0, queueLost = 0, lostBefore = 0;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (delivered < target && DateTime.UtcNow < deadline)
        {
            var frame = await reader.NextAsync(TimeSpan.FromSeconds(30));
            if (frame.Event == "lost")
            {
                var data = frame.Json;
                Assert.Equal((long)data["samples"]!, (long)data["ring"]! + (long)data["queue"]!);
                ringLost += (long)data["ring"]!;
                queueLost += (long)data["queue"]!;
            }
            else if (frame.Event == "trace")
            {
                foreach (var sample in JsonNode.Parse(frame.Data)!.AsArray().Select(n => n!.AsObject()))
                {
                    var node = (string)sample["node"]!;
                    var seq = (long)sample["seq"]!;
                    delivered++;
                    if (last.TryGetValue(node, out var previous))
                    {
                        Assert.True(seq > previous, $"{node}: seq {seq} after {previous}");
                        gaps += seq - previous - 1;
                    }
                    else
                    {
                        first[node] = (seq, (long)sample["publish_ns"]!);
                        lostBefore = ringLost + queueLost;
                    }

                    last[node] = seq;
                    lastPublish[node] = (long)sample["publish_ns"]!;
                }
            }
        }

        using (await Http.DeleteAsync("/profiling/traces", ct))
        {
        }

        await client.StopAsync(cancellationToken: ct);
        Assert.Equal(["copy", "sink"], last.Keys.Order());

        // Nothing silently missing: every frame between a node's first and last traced one is delivered or counted.
        Assert.True(gaps <= ringLost + queueLost, $"{gaps} frames missing between traced ones, {ringLost + queueLost} reported lost");

        // The rate the workers traced at (from the frames' own timestamps), and what a read every 100 ms could take of it.
        var rates = last.Keys.Select(n => (last[n] - first[n].Seq) / ((lastPublish[n] - first[n].PublishNs) / 1e9)).ToList();
        var fixedShare = Math.Min(1.0, ProfileBlock.TraceCapacity / (rates.Max() * 0.1));
        var read = delivered + queueLost; // what the server read from the rings
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"rates {string.Join(", ", rates.Select(r => $"{r:F0}/s"))}; delivered {delivered}, ring lost {ringLost} ({lostBefore} before both nodes' first), queue lost {queueLost}; a 100 ms read could take {fixedShare:P0}");

        // The server read most of what the workers recorded, whatever the rate (a fixed 100 ms read takes at most
        // 4,096 records per worker per read: 27 % at 150 k frames/s).
        Assert.True(ringLost < read, $"the rings lost {ringLost} records and the server read {read}");
    }
}
