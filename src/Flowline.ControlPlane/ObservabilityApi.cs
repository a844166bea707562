using System.Globalization;
using System.Net.ServerSentEvents;
using System.Text.Json.Nodes;
using Flowline.Runtime;
using Flowline.Status;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Flowline.ControlPlane;

/// <summary>
/// The observability plane's endpoints (issue 12): <c>GET /processes</c>, routed requests
/// (<c>POST /processes/{id}/requests</c>, <c>POST /nodes/{node}/requests</c>), settings
/// (<c>GET /settings</c>, <c>/settings/schema</c>, <c>/settings/events</c>, <c>PATCH /settings/{node}</c>)
/// and topology (<c>GET /topology</c>, <c>/topology/events</c>).
/// </summary>
internal static class ObservabilityApi
{
    /// <summary>Operations that change nothing: a read token may send them; any other needs the control scope.</summary>
    private static readonly HashSet<string> ReadOnlyOps = new(StringComparer.Ordinal) { "ping", "process_stats", "profiling_snapshot", "profiling_trace_batch" };

    /// <summary>Maps the endpoints.</summary>
    public static void Map(IEndpointRouteBuilder read, IEndpointRouteBuilder control, ControlService service, AccessTokens tokens, ControlApiOptions options, TraceHub traces)
    {
        read.MapGet("/processes", () => Json(200, new ProcessList { Processes = service.Manager.Processes() }));
        read.MapPost("/processes/{id}/requests", (string id, HttpContext http) =>
            RouteAsync(http, service, tokens, traces, (op, args, timeout, ct) => service.Manager.RequestProcessAsync(id, op, args, timeout, ct)));
        read.MapPost("/nodes/{node}/requests", (string node, HttpContext http) =>
            RouteAsync(http, service, tokens, traces, (op, args, timeout, ct) => service.Manager.RequestNodeAsync(node, op, args, timeout, ct)));

        read.MapGet("/settings", () => Json(200, service.Manager.Settings()));
        read.MapGet("/settings/schema", () => Json(200, service.Manager.SettingsSchema()));
        read.MapGet("/settings/events", (Delegate)((HttpContext http) => EventsAsync(http, service.Manager.SettingsLog, e => e.Type == "document_replaced" ? e.Type : "setting", options, log => new SettingsEventList { Events = [.. log.Events.Select(e => e.Event)], Lost = log.Lost })));
        control.MapPatch("/settings/{node}", (string node, HttpContext http) => PatchAsync(http, service, tokens, node));

        read.MapGet("/topology", () => Json(200, service.Manager.Topology()));
        read.MapGet("/topology/events", (Delegate)((HttpContext http) => EventsAsync(http, service.Manager.TopologyLog, e => e.Type == "document_replaced" ? e.Type : "topology", options, log => new TopologyEventList { Events = [.. log.Events.Select(e => e.Event)], Lost = log.Lost })));
    }

    private static async Task<IResult> RouteAsync(HttpContext http, ControlService service, AccessTokens tokens, TraceHub traces, Func<string, JsonObject?, TimeSpan, CancellationToken, Task<RequestReply>> send)
    {
        JsonObject? body;
        try
        {
            body = await ControlJson.ReadObjectAsync(http.Request, 64 * 1024, http.RequestAborted).ConfigureAwait(false);
        }
        catch (BadBodyException e)
        {
            return RequestError(422, RequestErrorCode.InvalidRequest, e.Message); // not JSON, or not an object: no field to name
        }
        catch (ControlException e)
        {
            return RequestError(e.StatusCode, RequestErrorCode.InvalidRequest, e.Message); // 413 too large, 415 not sent as JSON
        }

        string op;
        JsonObject? args;
        TimeSpan timeout;
        try
        {
            op = ControlJson.Text(body, "op", required: true)!;
            args = body?["args"] switch
            {
                null => null,
                JsonObject o => o,
                _ => throw new BadBodyException("'args' must be an object"),
            };
            var ms = ControlJson.Number(body, "timeout_ms", 2000)!.Value;
            if (!(ms >= 1 && ms <= 300_000))
            {
                throw new BadBodyException($"'timeout_ms' must be between 1 and 300000, not {ms}");
            }

            timeout = TimeSpan.FromMilliseconds(ms);
        }
        catch (BadBodyException e)
        {
            return RequestError(422, RequestErrorCode.InvalidRequest, e.Message);
        }

        if (!ReadOnlyOps.Contains(op) && ScopeOf(http, tokens) is { } scope && scope < Scope.Control)
        {
            return ControlApi.Error(403, $"this token's scope is '{scope.ToString().ToLowerInvariant()}'; the operation '{op}' needs 'control'");
        }

        try
        {
            var reply = await send(op, args, timeout, http.RequestAborted).ConfigureAwait(false);
            if (op == "set_profiling_trace" && reply.Result is JsonObject result && result["enabled"] is JsonValue enabled && enabled.TryGetValue(out bool on) && on)
            {
                traces.Wake(); // as POST /profiling/traces does: traffic may start at full rate, read soon rather than after up to 100 ms
            }

            return Json(200, reply);
        }
        catch (RequestException e)
        {
            return RequestError(StatusOf(e), e.Code, e.Message, e.Field);
        }
    }

    private static async Task<IResult> PatchAsync(HttpContext http, ControlService service, AccessTokens tokens, string node)
    {
        JsonObject? body;
        try
        {
            body = await ControlJson.ReadObjectAsync(http.Request, 1024 * 1024, http.RequestAborted).ConfigureAwait(false);
        }
        catch (BadBodyException e)
        {
            return ControlApi.Error(422, e.Message);
        }
        catch (ControlException e)
        {
            return ControlApi.Error(e.StatusCode, e.Message);
        }

        if (body is null)
        {
            return ControlApi.Error(422, "the body must be a JSON object: a merge patch of the node's settings");
        }

        var scope = ScopeOf(http, tokens);
        var who = new ChangeSource(http.Connection.RemoteIpAddress?.ToString() ?? "unknown", scope?.ToString().ToLowerInvariant());
        try
        {
            return Json(200, await service.Manager.PatchSettingsAsync(node, body, who, http.RequestAborted).ConfigureAwait(false));
        }
        catch (SettingsValidationException e)
        {
            return ControlApi.Error(422, e.Message, new JsonObject { ["error"] = e.Message, ["field"] = e.Field });
        }
        catch (KeyNotFoundException e)
        {
            return ControlApi.Error(404, e.Message);
        }
        catch (RequestException e)
        {
            return RequestError(e.Code == RequestErrorCode.InvalidRequest ? 422 : StatusOf(e.Code), e.Code, $"not applied: {e.Message}", e.Field);
        }
    }

    /// <summary>
    /// An event log after <c>after_seq</c> (or <c>Last-Event-ID</c>): as JSON, or, with
    /// <c>Accept: text/event-stream</c>, as SSE (<c>id:</c> the sequence number) followed by live events.
    /// A subscriber that falls behind gets <c>event: lost</c> with how many events it missed, and the stream ends.
    /// </summary>
    private static async Task EventsAsync<T, TList>(HttpContext http, SequencedLog<T> log, Func<T, string> type, ControlApiOptions options, Func<(IReadOnlyList<(long Seq, T Event)> Events, bool Lost, long Missed), TList> list)
        where T : class
    {
        long after = 0;
        var header = http.Request.Headers["Last-Event-ID"].ToString();
        var query = http.Request.Query["after_seq"].ToString();
        var text = header.Length > 0 ? header : query;
        if (text.Length > 0 && !long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out after))
        {
            await ControlApi.Error(400, $"after_seq (or Last-Event-ID) must be an integer, not '{text}'").ExecuteAsync(http).ConfigureAwait(false);
            return;
        }

        if (!http.Request.Headers.Accept.ToString().Contains("text/event-stream", StringComparison.Ordinal))
        {
            await Json(200, list(log.After(after))).ExecuteAsync(http).ConfigureAwait(false);
            return;
        }

        var response = http.Response;
        var cancel = http.RequestAborted;
        response.StatusCode = 200;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        var (replay, lost, missed, live, unsubscribe) = log.Subscribe(after);
        try
        {
            if (lost)
            {
                await WriteAsync(response.Body, "lost", new JsonObject { ["missed"] = missed }.ToJsonString(), null, cancel).ConfigureAwait(false);
            }

            var last = after;
            foreach (var (seq, e) in replay)
            {
                await WriteAsync(response.Body, type(e), StatusJson.Serialize(e), seq, cancel).ConfigureAwait(false);
                last = seq;
            }

            await response.Body.FlushAsync(cancel).ConfigureAwait(false);
            while (!cancel.IsCancellationRequested)
            {
                using var idle = CancellationTokenSource.CreateLinkedTokenSource(cancel);
                idle.CancelAfter(options.KeepaliveInterval);
                try
                {
                    if (!await live.WaitToReadAsync(idle.Token).ConfigureAwait(false))
                    {
                        return;
                    }
                }
                catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
                {
                    await response.Body.WriteAsync(": keepalive\n\n"u8.ToArray(), cancel).ConfigureAwait(false);
                    await response.Body.FlushAsync(cancel).ConfigureAwait(false);
                    continue;
                }
                catch (SubscriberLaggedException)
                {
                    await WriteAsync(response.Body, "lost", new JsonObject { ["missed"] = log.Seq - last, ["resume_after_seq"] = last }.ToJsonString(), null, cancel).ConfigureAwait(false);
                    await response.Body.FlushAsync(cancel).ConfigureAwait(false);
                    return;
                }

                while (live.TryRead(out var item))
                {
                    if (item.Seq > last)
                    {
                        await WriteAsync(response.Body, type(item.Event!), StatusJson.Serialize(item.Event!), item.Seq, cancel).ConfigureAwait(false);
                        last = item.Seq;
                    }
                }

                await response.Body.FlushAsync(cancel).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
        }
        catch (IOException) when (cancel.IsCancellationRequested)
        {
        }
        finally
        {
            unsubscribe();
        }
    }

    private static Task WriteAsync(Stream body, string type, string json, long? id, CancellationToken cancellationToken) =>
        SseFormatter.WriteAsync(One(new SseItem<string>(json, type) { EventId = id?.ToString(CultureInfo.InvariantCulture) }), body, cancellationToken);

    private static async IAsyncEnumerable<SseItem<string>> One(SseItem<string> item)
    {
        await Task.CompletedTask.ConfigureAwait(false);
        yield return item;
    }

    private static Scope? ScopeOf(HttpContext http, AccessTokens tokens)
    {
        if (!tokens.Required)
        {
            return null;
        }

        var header = http.Request.Headers.Authorization.ToString();
        const string Bearer = "Bearer ";
        return header.StartsWith(Bearer, StringComparison.OrdinalIgnoreCase) ? tokens.ScopeOf(header[Bearer.Length..].Trim()) : null;
    }

    /// <summary>
    /// The HTTP status of a failed routed request: <c>invalid_request</c> is a 400 when it names the argument
    /// whose value was refused (<c>field</c>), and a 422 when it names none (the request's shape: an argument
    /// missing, a request the handler cannot take as sent), as docs/http-api.md's errors say.
    /// </summary>
    private static int StatusOf(RequestException e) => e.Code == RequestErrorCode.InvalidRequest
        ? e.Field is null ? 422 : 400
        : StatusOf(e.Code);

    private static int StatusOf(RequestErrorCode code) => code switch
    {
        RequestErrorCode.UnknownTarget or RequestErrorCode.NoHandler => 404,
        RequestErrorCode.Timeout => 504,
        RequestErrorCode.ProcessExited => 503,
        RequestErrorCode.InvalidRequest => 400,
        _ => 500,
    };

    private static IResult RequestError(int status, RequestErrorCode code, string message, string? field = null)
    {
        var extra = new JsonObject { ["error"] = message, ["code"] = RequestException.WireName(code) };
        if (field is not null)
        {
            extra["field"] = field;
        }

        return ControlApi.Error(status, message, extra);
    }

    private static IResult Json<T>(int status, T body) =>
        Results.Content(StatusJson.Serialize(body), "application/json; charset=utf-8", System.Text.Encoding.UTF8, status);
}
