using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Flowline.Client;

namespace Flowline.ControlPlane.Tests;

/// <summary>Opt-in traces (decision 94): switched on and off over HTTP, streamed to several consumers that each get every sample, one of them never reading.</summary>
public sealed class TraceStreamTests : ServerTest
{
    [Fact]
    public async Task Traces_ReachEveryConsumer_DecimatedAndFiltered_WhileASlowSubscriberReadsNothing()
    {
        var ct = TestContext.Current.CancellationToken;
        using var client = new RemoteManagerClient(Server.Address);
        await client.BuildAsync(cancellationToken: ct);
        await client.StartAsync(cancellationToken: ct);

        // Bad requests name what is wrong and change nothing.
        var unknown = await PostAsync("{\"nodes\": [\"nope\"]}", ct);
        Assert.Equal(HttpStatusCode.BadRequest, unknown.Status);
        Assert.Contains("'nope'", unknown.Text, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.BadRequest, (await PostAsync("{\"every\": 0}", ct)).Status);
        Assert.Equal((HttpStatusCode)422, (await PostAsync("{\"nodes\": \"copy\"}", ct)).Status);

        // A subscriber that never reads: it must hold nobody back.
        using var slow = await EventStreamReader.OpenAsync(Client(), path: "/profiling/traces");
        using var a = await EventStreamReader.OpenAsync(Client(), path: "/profiling/traces");
        using var b = await EventStreamReader.OpenAsync(Client(), path: "/profiling/traces");

        var on = await PostAsync("{\"nodes\": [\"copy\"], \"streams\": [\"input_vector\"], \"every\": 2, \"seconds\": 60}", ct);
        Assert.Equal(HttpStatusCode.OK, on.Status);
        Assert.True((bool)on.Json["enabled"]!);
        Assert.Equal(["copy"], on.Json["nodes"]!.AsArray().Select(n => (string)n!).ToArray());

        var seenA = await CollectAsync(a, 40);
        var seenB = await CollectAsync(b, 40);
        Assert.All(seenA.Concat(seenB), s =>
        {
            Assert.Equal("input_vector", (string?)s["stream"]);
            Assert.Equal("copy", (string?)s["node"]);
            Assert.True((long)s["read_ns"]! >= (long)s["publish_ns"]!);
            Assert.True((long)s["compute_ns"]! >= 0);
        });

        // Every other frame computed: consecutive traced sequences are at least 2 apart.
        var seqA = seenA.Select(s => (long)s["seq"]!).ToList();
        Assert.All(seqA.Zip(seqA.Skip(1)), p => Assert.True(p.Second - p.First >= 2, $"frames {p.First} and {p.Second} were both traced with every: 2"));

        // Nobody took samples from anybody: over the span both saw, each saw the other's samples too.
        var seqB = seenB.Select(s => (long)s["seq"]!).ToList();
        var (from, to) = (Math.Max(seqA.Min(), seqB.Min()), Math.Min(seqA.Max(), seqB.Max()));
        Assert.True(from <= to, "the two consumers saw no common span");
        Assert.Equal(seqA.Where(s => s >= from && s <= to), seqB.Where(s => s >= from && s <= to));

        var off = await SendAsync(HttpMethod.Delete, null, ct);
        Assert.Equal(HttpStatusCode.OK, off.Status);
        Assert.False((bool)off.Json["enabled"]!);
        await client.StopAsync(cancellationToken: ct);
    }

    /// <summary>Reads trace batches until <paramref name="count"/> samples came (or fails after 30 s).</summary>
    private static async Task<List<JsonObject>> CollectAsync(EventStreamReader reader, int count)
    {
        var samples = new List<JsonObject>();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (samples.Count < count)
        {
            Assert.True(DateTime.UtcNow < deadline, $"only {samples.Count} trace samples within 30 s");
            var frame = await reader.NextAsync(TimeSpan.FromSeconds(30));
            if (frame.Event == "trace")
            {
                samples.AddRange(JsonNode.Parse(frame.Data)!.AsArray().Select(n => n!.AsObject()));
            }
        }

        return samples;
    }

    private Task<(HttpStatusCode Status, string Text, JsonObject Json)> PostAsync(string body, CancellationToken ct) => SendAsync(HttpMethod.Post, body, ct);

    private async Task<(HttpStatusCode Status, string Text, JsonObject Json)> SendAsync(HttpMethod method, string? body, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(method, "/profiling/traces");
        if (body is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        }

        using var response = await Http.SendAsync(request, ct);
        var text = await response.Content.ReadAsStringAsync(ct);
        return (response.StatusCode, text, JsonNode.Parse(text) as JsonObject ?? []);
    }
}
