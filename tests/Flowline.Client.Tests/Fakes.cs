using System.Net;
using System.Text;

namespace Flowline.Client.Tests;

/// <summary>A request as the fake handler saw it.</summary>
internal sealed record RecordedRequest(
    string Method, string Path, string? Authorization, string? Accept, string? LastEventId, string? ContentType, string? Body);

/// <summary>An HTTP handler that records each request and answers it with <c>respond</c> (no server involved).</summary>
internal sealed class FakeHandler(Func<HttpRequestMessage, CancellationToken, Task<HttpResponseMessage>> respond) : HttpMessageHandler
{
    private readonly List<RecordedRequest> requests = [];

    /// <summary>The requests so far, in order.</summary>
    public IReadOnlyList<RecordedRequest> Requests
    {
        get
        {
            lock (requests)
            {
                return [.. requests];
            }
        }
    }

    /// <summary>The only request so far.</summary>
    public RecordedRequest Single => Assert.Single(Requests);

    /// <summary>Answers every request with <paramref name="status"/> and a JSON body.</summary>
    public static FakeHandler Json(string json, HttpStatusCode status = HttpStatusCode.OK) =>
        new((_, _) => Task.FromResult(Response(status, json, "application/json")));

    /// <summary>Answers the requests in turn with the given answers; the last one answers every later request.</summary>
    public static FakeHandler Sequence(params Func<HttpResponseMessage>[] answers)
    {
        var next = 0;
        return new((_, _) =>
        {
            var index = Math.Min(Interlocked.Increment(ref next) - 1, answers.Length - 1);
            return Task.FromResult(answers[index]());
        });
    }

    public static HttpResponseMessage Response(HttpStatusCode status, string body, string contentType) =>
        new(status) { Content = new StringContent(body, Encoding.UTF8, contentType) };

    /// <summary>An event stream that ends after <paramref name="text"/>.</summary>
    public static HttpResponseMessage Sse(string text) => SseOf(new MemoryStream(Encoding.UTF8.GetBytes(text)));

    /// <summary>An event stream that delivers <paramref name="text"/>, then nothing, without ending (until cancelled).</summary>
    public static HttpResponseMessage SseThenSilence(string text) => SseOf(new ScriptedStream(text, failAtEnd: false));

    /// <summary>An event stream that delivers <paramref name="text"/>, then fails as a dropped connection does.</summary>
    public static HttpResponseMessage SseThenDrop(string text) => SseOf(new ScriptedStream(text, failAtEnd: true));

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var body = request.Content is null ? null : await request.Content.ReadAsStringAsync(cancellationToken);
        var recorded = new RecordedRequest(
            request.Method.Method,
            request.RequestUri!.AbsolutePath,
            request.Headers.Authorization?.ToString(),
            request.Headers.Accept.ToString(),
            request.Headers.TryGetValues("Last-Event-ID", out var ids) ? string.Join(",", ids) : null,
            request.Content?.Headers.ContentType?.MediaType,
            body);
        lock (requests)
        {
            requests.Add(recorded);
        }

        return await respond(request, cancellationToken);
    }

    private static HttpResponseMessage SseOf(Stream stream)
    {
        var content = new StreamContent(stream);
        content.Headers.ContentType = new("text/event-stream");
        return new HttpResponseMessage(HttpStatusCode.OK) { Content = content };
    }

    /// <summary>Delivers its text, then either waits until the read is cancelled or throws an <see cref="IOException"/>.</summary>
    private sealed class ScriptedStream(string text, bool failAtEnd) : Stream
    {
        private readonly byte[] bytes = Encoding.UTF8.GetBytes(text);
        private int position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (position < bytes.Length)
            {
                var count = Math.Min(buffer.Length, bytes.Length - position);
                bytes.AsMemory(position, count).CopyTo(buffer);
                position += count;
                return count;
            }

            if (failAtEnd)
            {
                throw new IOException("The connection was reset.");
            }

            await Task.Delay(Timeout.Infinite, cancellationToken);
            return 0;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}

/// <summary>
/// The system clock, recording the due time of every timer set through it (the client's per-call time
/// limits); with <c>fireAfter</c>, every finite timer fires after that instead.
/// </summary>
internal sealed class RecordingTimeProvider(TimeSpan? fireAfter = null) : TimeProvider
{
    private readonly List<TimeSpan> dueTimes = [];

    /// <summary>The finite due times set so far.</summary>
    public IReadOnlyList<TimeSpan> DueTimes
    {
        get
        {
            lock (dueTimes)
            {
                return [.. dueTimes];
            }
        }
    }

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
        new RecordingTimer(this, System.CreateTimer(callback, state, Record(dueTime), period));

    private TimeSpan Record(TimeSpan dueTime)
    {
        if (dueTime == Timeout.InfiniteTimeSpan)
        {
            return dueTime;
        }

        lock (dueTimes)
        {
            dueTimes.Add(dueTime);
        }

        return fireAfter ?? dueTime;
    }

    private sealed class RecordingTimer(RecordingTimeProvider provider, ITimer inner) : ITimer
    {
        public bool Change(TimeSpan dueTime, TimeSpan period) => inner.Change(provider.Record(dueTime), period);

        public void Dispose() => inner.Dispose();

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}
