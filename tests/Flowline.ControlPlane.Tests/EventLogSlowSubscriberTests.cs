using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Flowline.Runtime;
using Flowline.Status;

namespace Flowline.ControlPlane.Tests;

/// <summary>
/// <c>/topology/events</c> and <c>/settings/events</c> under a subscriber that reads nothing (decision 147):
/// a raw HTTP/1.0 client with a tiny receive buffer, so that the server's writes block after a few kilobytes
/// rather than disappearing into loopback socket buffers; enough event volume to fill its queue past its
/// bound. It is told it lost events, how many and where to resume, and what it got before has no gap.
/// </summary>
public sealed class EventLogSlowSubscriberTests : ServerTest
{
    /// <summary>Events appended while the subscriber reads nothing: 4 MB of them, several times what any buffer on the way holds.</summary>
    private const int Burst = 1000;

    private static readonly string Padding = new('x', 4000);

    [Fact]
    public Task TopologyEvents_ASubscriberThatFallsBehind_IsToldWhatItMissedAndWhereToResume() =>
        FallBehindAsync("/topology/events", Server.Service.Manager.TopologyLog, () => Server.Service.Manager.TopologyLog.Append(
            1, (seq, _) => new TopologyEvent { Seq = seq, Time = "2026-12-07T00:00:00Z", Type = "reader_attached", Nodes = [Padding], Streams = ["input_vector"] }));

    [Fact]
    public Task SettingsEvents_ASubscriberThatFallsBehind_IsToldWhatItMissedAndWhereToResume() =>
        FallBehindAsync("/settings/events", Server.Service.Manager.SettingsLog, () => Server.Service.Manager.SettingsLog.Append(
            1, (seq, _) => new SettingsEvent { Seq = seq, Time = "2026-12-07T00:00:00Z", Node = "copy", Field = "padding", Old = Padding, New = Padding }));

    private async Task FallBehindAsync<T>(string path, SequencedLog<T> log, Action append)
        where T : class
    {
        var start = log.Seq;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(60));
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 1024 };
        await socket.ConnectAsync(Server.Address.Host, Server.Address.Port, timeout.Token);

        // HTTP/1.0: the body comes raw (no chunks) and the connection closes when the stream ends.
        var request = $"GET {path}?after_seq={start} HTTP/1.0\r\nHost: {Server.Address.Authority}\r\nAccept: text/event-stream\r\n\r\n";
        await socket.SendAsync(Encoding.ASCII.GetBytes(request), SocketFlags.None, timeout.Token);
        var received = new StringBuilder();
        var buffer = new byte[16 * 1024];
        while (!received.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
        {
            var n = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token);
            Assert.True(n > 0, $"the server closed the connection before its headers: {received}");
            received.Append(Encoding.UTF8.GetString(buffer, 0, n));
        }

        Assert.StartsWith("HTTP/1.1 200", received.ToString(), StringComparison.Ordinal);

        // The burst, while the subscriber reads nothing.
        for (var i = 0; i < Burst; i++)
        {
            append();
        }

        var end = log.Seq;

        // Now read everything until the server ends the stream.
        while (true)
        {
            var n = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token);
            if (n == 0)
            {
                break;
            }

            received.Append(Encoding.UTF8.GetString(buffer, 0, n));
        }

        var text = received.ToString();
        var body = text[(text.IndexOf("\r\n\r\n", StringComparison.Ordinal) + 4)..];
        var blocks = body.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Where(b => !b.StartsWith(':')).ToList();
        var ids = new List<long>();
        JsonObject? lost = null;
        foreach (var block in blocks)
        {
            var lines = block.Split('\n');
            var type = lines.FirstOrDefault(l => l.StartsWith("event: ", StringComparison.Ordinal))?["event: ".Length..];
            var data = lines.FirstOrDefault(l => l.StartsWith("data: ", StringComparison.Ordinal))?["data: ".Length..];
            Assert.Null(lost); // nothing after the lost notice: the stream ends there
            if (type == "lost")
            {
                lost = JsonNode.Parse(data!)!.AsObject();
            }
            else
            {
                ids.Add(long.Parse(lines.First(l => l.StartsWith("id: ", StringComparison.Ordinal))["id: ".Length..], System.Globalization.CultureInfo.InvariantCulture));
            }
        }

        // It fell behind and was told so, at the end of what it got.
        Assert.NotNull(lost);
        Assert.True(ids.Count < Burst, $"the subscriber got all {ids.Count} events: nothing held the server back");

        // What it got has no gap, from the first event on; what it missed is counted from there, and where to resume is said.
        Assert.Equal(Enumerable.Range(0, ids.Count).Select(i => start + 1 + i), ids);
        var resume = (long)lost["resume_after_seq"]!;
        Assert.Equal(ids.Count == 0 ? start : ids[^1], resume);
        Assert.Equal(end - resume, (long)lost["missed"]!);

        // Resuming there gives the rest, or says that the log no longer keeps all of it.
        using var rest = await Http.GetAsync($"{path}?after_seq={resume}", timeout.Token);
        var list = JsonNode.Parse(await rest.Content.ReadAsStringAsync(timeout.Token))!.AsObject();
        var events = list["events"]!.AsArray();
        var kept = Math.Min(end - resume, log.Capacity);
        Assert.Equal(kept, events.Count);
        Assert.Equal(end, (long)events[^1]!["seq"]!);
        Assert.Equal(kept < end - resume, (bool?)list["lost"] ?? false);
    }
}
