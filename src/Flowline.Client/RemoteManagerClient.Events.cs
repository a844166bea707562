using System.Globalization;
using System.Net.Http.Headers;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Flowline.Client;

/// <summary>The event stream (<c>GET /events</c>): Server-Sent Events, resumed after a dropped connection.</summary>
public sealed partial class RemoteManagerClient
{
    /// <summary>The first wait before reconnecting; it doubles after each failed attempt.</summary>
    internal static readonly TimeSpan InitialBackoff = TimeSpan.FromSeconds(0.5);

    /// <summary>The longest wait before reconnecting.</summary>
    internal static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(30);

    /// <summary>Waits before reconnecting; replaced by tests so that they need not wait.</summary>
    internal Func<TimeSpan, CancellationToken, Task> Delay { get; set; } = (delay, cancellationToken) => Task.Delay(delay, cancellationToken);

    /// <summary>
    /// A connection that delivers nothing (not even the server's once-a-second <c>: keepalive</c>) for this
    /// long is taken as dropped, so that a half-open connection does not wait forever.
    /// </summary>
    internal TimeSpan EventIdleTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The server's events as they happen: on connecting, the retained events after
    /// <paramref name="lastEventId"/>, then an unnumbered <c>snapshot</c>, then live events.
    /// </summary>
    /// <remarks>
    /// <para>
    /// With <paramref name="reconnect"/>, a dropped connection (a transport failure, the server ending the
    /// stream, a 5xx, 408 or 429 answer, or 30 s without a byte) is opened again after 0.5 s, doubling after
    /// each failed attempt up to 30 s, and back to 0.5 s once connected; it resumes with
    /// <c>Last-Event-ID</c> set to the last numbered event received, so no retained event is lost. Other
    /// error answers (400, 401, 403, 404, ...) are not retried: they throw <see cref="RemoteManagerException"/>.
    /// Without <paramref name="reconnect"/>, the enumeration ends when the server ends the stream and a
    /// transport failure throws <see cref="RemoteManagerException"/> (status 0).
    /// </para>
    /// <para>
    /// Cancelling <paramref name="cancellationToken"/> (or the token given to <c>WithCancellation</c>) ends
    /// the enumeration normally: the <c>await foreach</c> loop exits without an
    /// <see cref="OperationCanceledException"/>.
    /// </para>
    /// </remarks>
    /// <param name="lastEventId">The number of the last event already seen, sent as <c>Last-Event-ID</c>; null to start with the live events.</param>
    /// <param name="reconnect">Reconnect when the connection drops (default), or end.</param>
    /// <param name="cancellationToken">Ends the enumeration.</param>
    public async IAsyncEnumerable<RemoteEvent> EventsAsync(
        long? lastEventId = null, bool reconnect = true, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var backoff = InitialBackoff;
        while (true)
        {
            EventConnection? connection = null;
            try
            {
                connection = await ConnectEventsAsync(lastEventId, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                yield break;
            }
            catch (RemoteManagerException e) when (reconnect && IsWorthRetrying(e.StatusCode))
            {
                // Waits below, then tries again.
            }

            if (connection is not null)
            {
                backoff = InitialBackoff;
                await using (connection.ConfigureAwait(false))
                {
                    while (true)
                    {
                        SseItem<string> item;
                        try
                        {
                            if (!await connection.Items.MoveNextAsync().ConfigureAwait(false))
                            {
                                break;
                            }

                            item = connection.Items.Current;
                        }
                        catch (Exception) when (cancellationToken.IsCancellationRequested)
                        {
                            yield break;
                        }
                        catch (Exception e) when (e is IOException or HttpRequestException or OperationCanceledException)
                        {
                            if (!reconnect)
                            {
                                throw EventsDropped(connection.IdleTimedOut, e);
                            }

                            break;
                        }

                        var remoteEvent = ToEvent(item);
                        if (remoteEvent.Id is { } id)
                        {
                            lastEventId = id;
                        }

                        yield return remoteEvent;
                    }
                }
            }

            if (!reconnect)
            {
                yield break;
            }

            try
            {
                await Delay(backoff, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                yield break;
            }

            backoff = backoff * 2 < MaxBackoff ? backoff * 2 : MaxBackoff;
        }
    }

    /// <summary>Opens <c>GET /events</c>; waits for the response headers at most as long as a read.</summary>
    private async Task<EventConnection> ConnectEventsAsync(long? lastEventId, CancellationToken cancellationToken)
    {
        const string Path = "events";
        HttpRequestMessage? request = new(HttpMethod.Get, new Uri(baseAddress, Path));
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        request.Headers.CacheControl = new CacheControlHeaderValue { NoCache = true };
        if (lastEventId is { } id)
        {
            request.Headers.Add("Last-Event-ID", id.ToString(CultureInfo.InvariantCulture));
        }

        HttpResponseMessage? response = null;
        Stream stream;
        try
        {
            using (var timeoutSource = new CancellationTokenSource(ReadTimeout, Time))
            using (var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeoutSource.Token))
            {
                try
                {
                    response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, linked.Token).ConfigureAwait(false);
                    if (!response.IsSuccessStatusCode)
                    {
                        var body = await response.Content.ReadAsStringAsync(linked.Token).ConfigureAwait(false);
                        throw Failure(HttpMethod.Get, Path, response, body);
                    }

                    if (response.Content.Headers.ContentType?.MediaType != "text/event-stream")
                    {
                        var type = response.Content.Headers.ContentType?.MediaType ?? "no content type";
                        var detail = $"expected text/event-stream, got {type}; is this a Flowline control plane?";
                        throw new RemoteManagerException((int)response.StatusCode, detail, $"GET /{Path}: {(int)response.StatusCode} {detail}");
                    }

                    stream = await response.Content.ReadAsStreamAsync(linked.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException e) when (timeoutSource.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
                {
                    throw TimedOut(HttpMethod.Get, Path, ReadTimeout, e);
                }
                catch (Exception e) when (e is HttpRequestException or IOException)
                {
                    throw Unreachable(HttpMethod.Get, Path, e);
                }
            }

            var connection = new EventConnection(request, response, stream, EventIdleTimeout, Time, cancellationToken);
            response = null;
            request = null;
            return connection;
        }
        finally
        {
            response?.Dispose();
            request?.Dispose();
        }
    }

    /// <summary>4xx answers other than 408 and 429 say something a retry cannot fix (a bad token, a bad <c>Last-Event-ID</c>).</summary>
    private static bool IsWorthRetrying(int statusCode) => statusCode is 0 or 408 or 429 or >= 500;

    private RemoteManagerException EventsDropped(bool idle, Exception e)
    {
        var url = new Uri(baseAddress, "events").GetComponents(UriComponents.AbsoluteUri & ~UriComponents.UserInfo, UriFormat.UriEscaped);
        var detail = idle
            ? $"nothing received from {url} for {EventIdleTimeout.TotalSeconds.ToString(CultureInfo.InvariantCulture)} s"
            : $"the connection to {url} dropped: {e.Message}";
        return new RemoteManagerException(0, detail, $"GET /events: {detail}", e);
    }

    private static RemoteEvent ToEvent(SseItem<string> item)
    {
        long? id = long.TryParse(item.EventId, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var number) ? number : null;
        JsonNode? data = null;
        if (!string.IsNullOrEmpty(item.Data))
        {
            try
            {
                data = JsonNode.Parse(item.Data);
            }
            catch (JsonException)
            {
                data = JsonValue.Create(item.Data);
            }
        }

        return new RemoteEvent(id, item.EventType, data);
    }

    /// <summary>One open event stream: the response, its parser, and the idle timer that cancels its reads.</summary>
    private sealed class EventConnection : IAsyncDisposable
    {
        private readonly HttpRequestMessage request;
        private readonly HttpResponseMessage response;
        private readonly CancellationTokenSource idle;
        private readonly CancellationTokenSource linked;

        public EventConnection(
            HttpRequestMessage request, HttpResponseMessage response, Stream stream, TimeSpan idleTimeout, TimeProvider time, CancellationToken cancellationToken)
        {
            this.request = request;
            this.response = response;
            idle = new CancellationTokenSource(Timeout.InfiniteTimeSpan, time);
            linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, idle.Token);
            var watched = new IdleTimeoutStream(stream, idle, idleTimeout);
            Items = SseParser.Create(watched).EnumerateAsync(linked.Token).GetAsyncEnumerator(linked.Token);
        }

        /// <summary>The events, read as they are asked for.</summary>
        public IAsyncEnumerator<SseItem<string>> Items { get; }

        /// <summary>True when the idle timer cancelled a read.</summary>
        public bool IdleTimedOut => idle.IsCancellationRequested;

        public async ValueTask DisposeAsync()
        {
            await Items.DisposeAsync().ConfigureAwait(false);
            response.Dispose();
            request.Dispose();
            linked.Dispose();
            idle.Dispose();
        }
    }

    /// <summary>
    /// A read-only view of a stream whose reads are cancelled through <c>idle</c> when one waits longer
    /// than the idle timeout. The timer runs only while a read waits, so a slow reader of events is not
    /// taken for a dead connection.
    /// </summary>
    private sealed class IdleTimeoutStream(Stream inner, CancellationTokenSource idle, TimeSpan idleTimeout) : Stream
    {
        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            idle.CancelAfter(idleTimeout);
            try
            {
                return await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                idle.CancelAfter(Timeout.InfiniteTimeSpan);
            }
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
