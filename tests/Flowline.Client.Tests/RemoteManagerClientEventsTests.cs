using System.Net;
using System.Text.Json.Nodes;

namespace Flowline.Client.Tests;

/// <summary>
/// The event stream against a fake handler: SSE frames parsed into events, reconnection with
/// <c>Last-Event-ID</c> and exponential backoff (the backoff hook records waits instead of waiting),
/// errors that are not retried, and cancellation.
/// </summary>
public sealed class RemoteManagerClientEventsTests
{
    private const int TestTimeoutMs = 10_000;

    private const int MaxReconnects = 50;

    private readonly List<TimeSpan> delays = [];

    private RemoteManagerClient Client(FakeHandler handler, string? token = null)
    {
        var client = new RemoteManagerClient(new Uri("http://127.0.0.1:8765"), token, handler)
        {
            Delay = (delay, _) =>
            {
                lock (delays)
                {
                    // A client that retries what it should not would otherwise loop here without end.
                    if (delays.Count == MaxReconnects)
                    {
                        throw new InvalidOperationException($"more than {MaxReconnects} reconnections");
                    }

                    delays.Add(delay);
                }

                return Task.CompletedTask;
            },
        };
        return client;
    }

    private static TimeSpan[] Seconds(params double[] seconds) => [.. seconds.Select(TimeSpan.FromSeconds)];

    /// <summary>Reads events until <paramref name="until"/> accepts one (which is included) or the stream ends.</summary>
    private static async Task<List<RemoteEvent>> ReadAsync(
        IAsyncEnumerable<RemoteEvent> events, Func<RemoteEvent, bool>? until = null)
    {
        var received = new List<RemoteEvent>();
        await foreach (var e in events)
        {
            received.Add(e);
            if (until?.Invoke(e) == true)
            {
                break;
            }
        }

        return received;
    }

    [Fact(Timeout = TestTimeoutMs)]
    public async Task EventsAsync_Frames_ParsesIdTypeAndData()
    {
        const string Stream = """
            id: 1
            event: worker_started
            data: {"worker": "copy"}

            : keepalive

            event: snapshot
            data: {"reason": "initial"}

            data: not json

            id: 2
            event: worker_metrics
            data: {"frames":
            data:  42}


            """;
        var handler = FakeHandler.Sequence(() => FakeHandler.Sse(Stream.ReplaceLineEndings("\n")));
        using var client = Client(handler);

        var events = await ReadAsync(client.EventsAsync(reconnect: false));

        Assert.Equal(4, events.Count);
        Assert.Equal((1L, "worker_started"), (events[0].Id!.Value, events[0].Type));
        Assert.Equal("copy", (string?)events[0].Data!["worker"]);
        Assert.Equal((null, "snapshot"), (events[1].Id, events[1].Type));
        Assert.Equal("initial", (string?)events[1].Data!["reason"]);
        Assert.Equal((null, "message"), (events[2].Id, events[2].Type));
        Assert.Equal("not json", events[2].Data!.GetValue<string>());
        Assert.Equal((2L, "worker_metrics"), (events[3].Id!.Value, events[3].Type));
        Assert.Equal(42, (int)events[3].Data!["frames"]!);
        Assert.Single(handler.Requests);
        Assert.Empty(delays);
    }

    [Fact(Timeout = TestTimeoutMs)]
    public async Task EventsAsync_Request_SendsGetEventsWithAcceptAndBearer()
    {
        var handler = FakeHandler.Sequence(() => FakeHandler.Sse(""));
        using var client = Client(handler, "s3cr3t-token");

        await ReadAsync(client.EventsAsync(reconnect: false));

        var request = handler.Single;
        Assert.Equal(("GET", "/events"), (request.Method, request.Path));
        Assert.Equal("text/event-stream", request.Accept);
        Assert.Equal("Bearer s3cr3t-token", request.Authorization);
        Assert.Null(request.LastEventId);
    }

    [Fact(Timeout = TestTimeoutMs)]
    public async Task EventsAsync_LastEventIdGiven_SendsItOnTheFirstRequest()
    {
        var handler = FakeHandler.Sequence(() => FakeHandler.Sse(""));
        using var client = Client(handler);

        await ReadAsync(client.EventsAsync(lastEventId: 41, reconnect: false));

        Assert.Equal("41", handler.Single.LastEventId);
        Assert.Null(handler.Single.Authorization);
    }

    [Fact(Timeout = TestTimeoutMs)]
    public async Task EventsAsync_StreamEnds_ReconnectsWithTheLastNumberedId()
    {
        var handler = FakeHandler.Sequence(
            () => FakeHandler.Sse("id: 3\nevent: a\ndata: {}\n\nid: 4\nevent: b\ndata: {}\n\nevent: snapshot\ndata: {}\n\n"),
            () => FakeHandler.Sse("event: snapshot\ndata: {}\n\nid: 5\nevent: c\ndata: {}\n\n"),
            () => FakeHandler.SseThenSilence("id: 6\nevent: d\ndata: {}\n\n"));
        using var client = Client(handler);

        var events = await ReadAsync(client.EventsAsync(), e => e.Id == 6);

        Assert.Equal(["a", "b", "snapshot", "snapshot", "c", "d"], events.Select(e => e.Type));
        Assert.Equal([null, "4", "5"], handler.Requests.Select(r => r.LastEventId));
        // Each connection succeeded, so each wait is the first one again.
        Assert.Equal(Seconds(0.5, 0.5), delays);
    }

    [Fact(Timeout = TestTimeoutMs)]
    public async Task EventsAsync_ConnectionDropsMidStream_ReconnectsAndResumes()
    {
        var handler = FakeHandler.Sequence(
            () => FakeHandler.SseThenDrop("id: 10\nevent: a\ndata: {}\n\n"),
            () => FakeHandler.SseThenSilence("id: 11\nevent: b\ndata: {}\n\n"));
        using var client = Client(handler);

        var events = await ReadAsync(client.EventsAsync(lastEventId: 9), e => e.Id == 11);

        Assert.Equal([10L, 11L], events.Select(e => e.Id!.Value));
        Assert.Equal(["9", "10"], handler.Requests.Select(r => r.LastEventId));
        Assert.Equal(Seconds(0.5), delays);
    }

    [Fact(Timeout = TestTimeoutMs)]
    public async Task EventsAsync_ConsecutiveFailures_BackoffDoublesUpToThirtySeconds()
    {
        var attempts = 0;
        var handler = new FakeHandler((_, _) =>
        {
            var attempt = Interlocked.Increment(ref attempts);
            return attempt switch
            {
                <= 9 when attempt % 2 == 1 => throw new HttpRequestException("Connection refused"),
                <= 9 => Task.FromResult(FakeHandler.Response(HttpStatusCode.ServiceUnavailable, """{"detail": "busy"}""", "application/json")),
                _ => Task.FromResult(FakeHandler.SseThenSilence("id: 1\nevent: up\ndata: {}\n\n")),
            };
        });
        using var client = Client(handler);

        var events = await ReadAsync(client.EventsAsync(), e => e.Type == "up");

        Assert.Single(events);
        Assert.Equal(10, handler.Requests.Count);
        Assert.Equal(Seconds(0.5, 1, 2, 4, 8, 16, 30, 30, 30), delays);
    }

    [Fact(Timeout = TestTimeoutMs)]
    public async Task EventsAsync_SuccessAfterFailures_ResetsTheBackoff()
    {
        var handler = FakeHandler.Sequence(
            () => throw new HttpRequestException("Connection refused"),
            () => throw new HttpRequestException("Connection refused"),
            () => FakeHandler.Sse("id: 1\nevent: a\ndata: {}\n\n"),
            () => throw new HttpRequestException("Connection refused"),
            () => FakeHandler.SseThenSilence("id: 2\nevent: b\ndata: {}\n\n"));
        using var client = Client(handler);

        await ReadAsync(client.EventsAsync(), e => e.Id == 2);

        Assert.Equal(Seconds(0.5, 1, 0.5, 1), delays);
        Assert.Equal([null, null, null, "1", "1"], handler.Requests.Select(r => r.LastEventId));
    }

    [Theory(Timeout = TestTimeoutMs)]
    [InlineData(HttpStatusCode.BadRequest, "Last-Event-ID must be an integer")]
    [InlineData(HttpStatusCode.Unauthorized, "missing or unknown bearer token")]
    [InlineData(HttpStatusCode.Forbidden, "the token's scope does not allow this")]
    [InlineData(HttpStatusCode.NotFound, "Not Found")]
    public async Task EventsAsync_ClientError_ThrowsWithoutRetrying(HttpStatusCode status, string detail)
    {
        var handler = FakeHandler.Json(new JsonObject { ["detail"] = detail }.ToJsonString(), status);
        using var client = Client(handler);

        var e = await Assert.ThrowsAsync<RemoteManagerException>(() => ReadAsync(client.EventsAsync()));

        Assert.Equal((int)status, e.StatusCode);
        Assert.Equal(detail, e.Detail);
        Assert.StartsWith($"GET /events: {(int)status} ", e.Message, StringComparison.Ordinal);
        Assert.Single(handler.Requests);
        Assert.Empty(delays);
    }

    [Fact(Timeout = TestTimeoutMs)]
    public async Task EventsAsync_NotAnEventStream_ThrowsWithoutRetrying()
    {
        var handler = FakeHandler.Json("""{"ok": true}""");
        using var client = Client(handler);

        var e = await Assert.ThrowsAsync<RemoteManagerException>(() => ReadAsync(client.EventsAsync()));

        Assert.Contains("expected text/event-stream, got application/json", e.Message, StringComparison.Ordinal);
        Assert.Single(handler.Requests);
    }

    [Fact(Timeout = TestTimeoutMs)]
    public async Task EventsAsync_NoReconnectAndUnreachable_ThrowsStatusZero()
    {
        var handler = new FakeHandler((_, _) => throw new HttpRequestException("Connection refused"));
        using var client = Client(handler);

        var e = await Assert.ThrowsAsync<RemoteManagerException>(() => ReadAsync(client.EventsAsync(reconnect: false)));

        Assert.Equal(0, e.StatusCode);
        Assert.Contains("http://127.0.0.1:8765/events", e.Message, StringComparison.Ordinal);
        Assert.Empty(delays);
    }

    [Fact(Timeout = TestTimeoutMs)]
    public async Task EventsAsync_NoReconnectAndDropped_ThrowsStatusZero()
    {
        var handler = FakeHandler.Sequence(() => FakeHandler.SseThenDrop("id: 1\nevent: a\ndata: {}\n\n"));
        using var client = Client(handler);
        var received = new List<RemoteEvent>();

        var e = await Assert.ThrowsAsync<RemoteManagerException>(async () =>
        {
            await foreach (var item in client.EventsAsync(reconnect: false))
            {
                received.Add(item);
            }
        });

        Assert.Single(received);
        Assert.Equal(0, e.StatusCode);
        Assert.Contains("dropped", e.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = TestTimeoutMs)]
    public async Task EventsAsync_SilentConnection_ReconnectsAfterTheIdleTimeout()
    {
        var handler = FakeHandler.Sequence(
            () => FakeHandler.SseThenSilence("id: 7\nevent: a\ndata: {}\n\n"),
            () => FakeHandler.SseThenSilence("id: 8\nevent: b\ndata: {}\n\n"));
        using var client = Client(handler);
        client.EventIdleTimeout = TimeSpan.FromMilliseconds(200);

        var events = await ReadAsync(client.EventsAsync(), e => e.Id == 8);

        Assert.Equal([7L, 8L], events.Select(e => e.Id!.Value));
        Assert.Equal([null, "7"], handler.Requests.Select(r => r.LastEventId));
        Assert.Equal(Seconds(0.5), delays);
    }

    [Fact(Timeout = TestTimeoutMs)]
    public async Task EventsAsync_SlowReader_IsNotTakenForASilentConnection()
    {
        var handler = FakeHandler.Sequence(() => FakeHandler.Sse("id: 1\nevent: a\ndata: {}\n\nid: 2\nevent: b\ndata: {}\n\n"));
        using var client = Client(handler);
        client.EventIdleTimeout = TimeSpan.FromMilliseconds(100);
        var received = new List<RemoteEvent>();

        await foreach (var item in client.EventsAsync(reconnect: false))
        {
            received.Add(item);
            await Task.Delay(300);
        }

        Assert.Equal([1L, 2L], received.Select(e => e.Id!.Value));
        Assert.Single(handler.Requests);
    }

    [Fact(Timeout = TestTimeoutMs)]
    public async Task EventsAsync_CancelledWhileWaitingForEvents_EndsWithoutThrowing()
    {
        var handler = FakeHandler.Sequence(() => FakeHandler.SseThenSilence("id: 1\nevent: a\ndata: {}\n\n"));
        using var client = Client(handler);
        using var cancellation = new CancellationTokenSource();
        var received = new List<RemoteEvent>();

        await foreach (var item in client.EventsAsync(cancellationToken: cancellation.Token))
        {
            received.Add(item);
            cancellation.CancelAfter(TimeSpan.FromMilliseconds(50));
        }

        Assert.Single(received);
        Assert.Single(handler.Requests);
        Assert.Empty(delays);
    }

    [Fact(Timeout = TestTimeoutMs)]
    public async Task EventsAsync_CancelledThroughWithCancellation_EndsWithoutThrowing()
    {
        var handler = FakeHandler.Sequence(() => FakeHandler.SseThenSilence("id: 1\nevent: a\ndata: {}\n\n"));
        using var client = Client(handler);
        using var cancellation = new CancellationTokenSource();
        var received = 0;

        await foreach (var item in client.EventsAsync().WithCancellation(cancellation.Token))
        {
            received++;
            cancellation.CancelAfter(TimeSpan.FromMilliseconds(50));
        }

        Assert.Equal(1, received);
    }

    [Fact(Timeout = TestTimeoutMs)]
    public async Task EventsAsync_CancelledDuringBackoff_EndsWithoutThrowing()
    {
        var handler = new FakeHandler((_, _) => throw new HttpRequestException("Connection refused"));
        using var client = Client(handler);
        client.Delay = (delay, cancellationToken) => Task.Delay(Timeout.Infinite, cancellationToken);
        using var cancellation = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));

        var events = await ReadAsync(client.EventsAsync(cancellationToken: cancellation.Token));

        Assert.Empty(events);
        Assert.Single(handler.Requests);
    }
}
