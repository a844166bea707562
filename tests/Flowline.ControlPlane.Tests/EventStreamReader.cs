using System.Text;
using System.Text.Json.Nodes;

namespace Flowline.ControlPlane.Tests;

/// <summary>One block of an event stream (up to and including its blank line), as received and as parsed.</summary>
/// <param name="Raw">The block's text exactly as sent, ending with "\n\n".</param>
internal sealed record SseFrame(string Raw)
{
    private IEnumerable<(string Field, string Value)> Lines =>
        Raw[..^2].Split('\n').Select(line =>
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon < 0)
            {
                return (line, "");
            }

            var value = line[(colon + 1)..];
            return (line[..colon], value.StartsWith(' ') ? value[1..] : value);
        });

    /// <summary>True for a comment-only block (<c>: keepalive</c>).</summary>
    public bool IsComment => Raw.StartsWith(':');

    /// <summary>The <c>event:</c> field.</summary>
    public string? Event => Lines.Where(l => l.Field == "event").Select(l => l.Value).FirstOrDefault();

    /// <summary>The <c>id:</c> field, or null when the block has none.</summary>
    public string? Id => Lines.Where(l => l.Field == "id").Select(l => l.Value).FirstOrDefault();

    /// <summary>The <c>data:</c> lines joined by "\n".</summary>
    public string Data => string.Join('\n', Lines.Where(l => l.Field == "data").Select(l => l.Value));

    /// <summary>The data as a JSON object.</summary>
    public JsonObject Json => JsonNode.Parse(Data)!.AsObject();

    /// <summary>The id as a number.</summary>
    public long Number => long.Parse(Id!, System.Globalization.CultureInfo.InvariantCulture);

    public override string ToString() => Raw.Length > 300 ? Raw[..300] + "..." : Raw;
}

/// <summary>Reads <c>GET /events</c> as raw bytes, block by block, with a bound on every wait.</summary>
internal sealed class EventStreamReader : IDisposable
{
    private readonly HttpResponseMessage response;
    private readonly Stream stream;
    private readonly Decoder decoder = Encoding.UTF8.GetDecoder();
    private readonly StringBuilder pending = new();
    private readonly byte[] buffer = new byte[64 * 1024];
    private readonly char[] chars = new char[(64 * 1024) + 8];

    private EventStreamReader(HttpResponseMessage response, Stream stream)
    {
        this.response = response;
        this.stream = stream;
    }

    /// <summary>The response (status, headers).</summary>
    public HttpResponseMessage Response => response;

    /// <summary>Every block received so far.</summary>
    public List<SseFrame> Seen { get; } = [];

    /// <summary>Opens the stream (headers read, body not yet).</summary>
    public static async Task<EventStreamReader> OpenAsync(HttpClient client, string? lastEventId = null, string path = "/events")
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        if (lastEventId is not null)
        {
            request.Headers.TryAddWithoutValidation("Last-Event-ID", lastEventId);
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
        var stream = await response.Content.ReadAsStreamAsync(timeout.Token);
        return new EventStreamReader(response, stream);
    }

    /// <summary>The next block; fails the test if none arrives within <paramref name="timeout"/> or the stream ends.</summary>
    public async Task<SseFrame> NextAsync(TimeSpan? timeout = null) =>
        await TryNextAsync(timeout ?? TimeSpan.FromSeconds(10)) ?? throw new Xunit.Sdk.XunitException($"the event stream ended; seen: {Describe()}");

    /// <summary>The next block, or null when the stream ends; fails the test on timeout.</summary>
    public async Task<SseFrame?> TryNextAsync(TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        while (true)
        {
            var text = pending.ToString();
            var end = text.IndexOf("\n\n", StringComparison.Ordinal);
            if (end >= 0)
            {
                pending.Remove(0, end + 2);
                var frame = new SseFrame(text[..(end + 2)]);
                Seen.Add(frame);
                return frame;
            }

            int read;
            try
            {
                read = await stream.ReadAsync(buffer, cancel.Token);
            }
            catch (OperationCanceledException) when (cancel.IsCancellationRequested)
            {
                throw new Xunit.Sdk.XunitException($"no complete event within {timeout.TotalSeconds} s; pending: '{pending}'; seen: {Describe()}");
            }
            catch (IOException)
            {
                return null;
            }
            catch (HttpRequestException)
            {
                return null;
            }

            if (read == 0)
            {
                return null;
            }

            var n = decoder.GetChars(buffer, 0, read, chars, 0);
            pending.Append(chars, 0, n);
        }
    }

    /// <summary>Skips blocks until one matches <paramref name="match"/>; fails the test after <paramref name="seconds"/>.</summary>
    public async Task<SseFrame> WaitForAsync(Func<SseFrame, bool> match, string what, double seconds = 10)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(seconds);
        while (true)
        {
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero)
            {
                throw new Xunit.Sdk.XunitException($"timed out after {seconds} s waiting for {what}; seen: {Describe()}");
            }

            SseFrame frame;
            try
            {
                frame = await NextAsync(left);
            }
            catch (Xunit.Sdk.XunitException e) when (e.Message.StartsWith("no complete event", StringComparison.Ordinal))
            {
                throw new Xunit.Sdk.XunitException($"timed out after {seconds} s waiting for {what}; seen: {Describe()}");
            }

            if (match(frame))
            {
                return frame;
            }
        }
    }

    /// <summary>Skips blocks until an event named <paramref name="type"/> whose data satisfies <paramref name="match"/>.</summary>
    public Task<SseFrame> WaitForEventAsync(string type, Func<JsonObject, bool>? match = null, double seconds = 10) =>
        WaitForAsync(f => f.Event == type && (match is null || match(f.Json)), $"a '{type}' event", seconds);

    private string Describe() => string.Join(" | ", Seen.Select(f => f.IsComment ? "(comment)" : $"{f.Id ?? "-"}:{f.Event}"));

    public void Dispose()
    {
        stream.Dispose();
        response.Dispose();
    }
}
