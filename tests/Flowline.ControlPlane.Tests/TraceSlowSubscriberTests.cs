using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Flowline.Client;

namespace Flowline.ControlPlane.Tests;

/// <summary>
/// <c>GET /profiling/traces</c> under a subscriber that reads nothing for a while (decision 147): a raw
/// HTTP/1.0 client with a 1 KiB receive buffer (so the server's writes block rather than filling loopback
/// buffers) and a 64 KiB queue at the server. When it reads again it is told how many samples it lost, and
/// every frame missing between the ones it got is counted.
/// </summary>
public sealed class TraceSlowSubscriberTests : ServerTest
{
    private string UnpacedPath => Path.Combine(TestDirectory, "unpaced", "pipeline.yaml");

    protected override string ServedPath => UnpacedPath;

    protected override ControlServerOptions Options => new() { Api = new ControlApiOptions { TraceQueueBytes = 64 * 1024 } };

    public override ValueTask InitializeAsync()
    {
        TraceRateTests.WriteUnpaced(UnpacedPath);
        return base.InitializeAsync();
    }

    [Fact]
    public async Task ASubscriberThatReadsNothing_IsToldWhatItLost_AndNoGapGoesUncounted()
    {
        var ct = TestContext.Current.CancellationToken;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(90));
        using var client = new RemoteManagerClient(Server.Address);
        await client.BuildAsync(cancellationToken: ct);
        await client.StartAsync(cancellationToken: ct);

        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 1024 };
        await socket.ConnectAsync(Server.Address.Host, Server.Address.Port, timeout.Token);
        await socket.SendAsync(Encoding.ASCII.GetBytes($"GET /profiling/traces HTTP/1.0\r\nHost: {Server.Address.Authority}\r\n\r\n"), SocketFlags.None, timeout.Token);
        var text = new StringBuilder();
        var buffer = new byte[64 * 1024];
        while (!text.ToString().Contains(": traces\n\n", StringComparison.Ordinal))
        {
            var n = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token);
            Assert.True(n > 0, $"the server closed the stream: {text}");
            text.Append(Encoding.UTF8.GetString(buffer, 0, n));
        }

        using (var on = new StringContent("{\"every\": 1, \"seconds\": 120}", Encoding.UTF8, "application/json"))
        {
            using var response = await Http.PostAsync("/profiling/traces", on, ct);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        // Read nothing for 2 s: at even 10 k frames/s that is megabytes of traces, far more than the 64 KiB queue
        // and the few kilobytes the sockets hold with this receive buffer.
        await Task.Delay(TimeSpan.FromSeconds(2), ct);

        // Then read, at full speed now, until a lost notice with queue losses came and 5,000 samples after it.
        socket.ReceiveBufferSize = 1 << 20;
        var pending = "";
        var last = new Dictionary<string, long>();
        long gaps = 0, counted = 0, queueLost = 0, after = 0;
        while (after < 5_000)
        {
            var n = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token);
            Assert.True(n > 0, "the server ended the trace stream");
            pending += Encoding.UTF8.GetString(buffer, 0, n);
            int end;
            while ((end = pending.IndexOf("\n\n", StringComparison.Ordinal)) >= 0)
            {
                var block = pending[..end];
                pending = pending[(end + 2)..];
                var lines = block.Split('\n');
                var type = lines.FirstOrDefault(l => l.StartsWith("event: ", StringComparison.Ordinal))?["event: ".Length..];
                var data = lines.FirstOrDefault(l => l.StartsWith("data: ", StringComparison.Ordinal))?["data: ".Length..];
                if (type == "lost")
                {
                    var lost = JsonNode.Parse(data!)!.AsObject();
                    Assert.Equal((long)lost["samples"]!, (long)lost["ring"]! + (long)lost["queue"]!);
                    counted += (long)lost["samples"]!;
                    queueLost += (long)lost["queue"]!;
                }
                else if (type == "trace")
                {
                    foreach (var sample in JsonNode.Parse(data!)!.AsArray().Select(s => s!.AsObject()))
                    {
                        var node = (string)sample["node"]!;
                        var seq = (long)sample["seq"]!;
                        if (last.TryGetValue(node, out var previous))
                        {
                            Assert.True(seq > previous, $"{node}: seq {seq} after {previous}");
                            gaps += seq - previous - 1;
                        }

                        last[node] = seq;
                        after += queueLost > 0 ? 1 : 0;
                    }
                }
            }
        }

        // It was told it lost samples from its own queue, and every frame missing between two it got was counted.
        Assert.True(queueLost > 0, "no samples lost from the queue of a subscriber that read nothing for 2 s");
        Assert.True(gaps > 0, "no gap in what a subscriber that read nothing for 2 s got");
        Assert.True(gaps <= counted, $"{gaps} frames missing between traced ones, {counted} reported lost");

        using (await Http.DeleteAsync("/profiling/traces", ct))
        {
        }

        await client.StopAsync(cancellationToken: ct);
    }
}
