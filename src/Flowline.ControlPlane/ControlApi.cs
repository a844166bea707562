using System.Net.ServerSentEvents;
using System.Text.Json.Nodes;
using Flowline.Documents;
using Flowline.Runtime;
using Flowline.SharedMemory;
using Flowline.Status;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Flowline.ControlPlane;

/// <summary>Settings of the HTTP endpoints.</summary>
public sealed record ControlApiOptions
{
    /// <summary>An idle event stream gets a <c>: keepalive</c> comment this often (default 1 s).</summary>
    public TimeSpan KeepaliveInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary><c>GET /streams/{name}/latest</c> reads a stream at most this often; requests in between get the same frame (default 100 ms).</summary>
    public TimeSpan PreviewInterval { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Values a preview sends at most (the rest is cut, with <c>truncated: true</c>; default 65,536).</summary>
    public int PreviewMaxElements { get; init; } = 65_536;

    /// <summary>Encoded trace batches a <c>GET /profiling/traces</c> subscriber may have waiting, in bytes; past it, batches are dropped and counted (default 16 MiB).</summary>
    public int TraceQueueBytes { get; init; } = TraceFanout.QueueBytes;
}

/// <summary>
/// The endpoints of the control plane, with shmpipeline's paths, bodies, responses and status codes
/// (docs/http-api.md), plus <c>/commands/restart</c>, <c>/streams/{name}/latest</c> and <c>/metrics</c>
/// (which needs <see cref="ControlTelemetry.AddControlTelemetry"/> on the application's services).
/// </summary>
public static partial class ControlApi
{
    private static readonly byte[] Keepalive = ": keepalive\n\n"u8.ToArray();

    /// <summary>Maps every endpoint of <paramref name="service"/>, guarded by <paramref name="tokens"/>.</summary>
    public static void MapControlEndpoints(this IEndpointRouteBuilder app, ControlService service, AccessTokens tokens, ControlApiOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(app);
        ArgumentNullException.ThrowIfNull(service);
        ArgumentNullException.ThrowIfNull(tokens);
        options ??= new ControlApiOptions();
        if (options.KeepaliveInterval < TimeSpan.FromMilliseconds(10) || options.PreviewInterval < TimeSpan.Zero || options.PreviewMaxElements < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(options), "the keepalive interval must be at least 10 ms, the preview interval not negative, and previews at least one value long");
        }

        var preview = new StreamPreview(service, options);

        var read = app.MapGroup("").AddEndpointFilter(new ScopeFilter(tokens, Scope.Read));
        var control = app.MapGroup("").AddEndpointFilter(new ScopeFilter(tokens, Scope.Control));
        var admin = app.MapGroup("").AddEndpointFilter(new ScopeFilter(tokens, Scope.Admin));

        read.MapGet("/health", () => Reply(service, service.Health));
        read.MapGet("/info", () => Reply(service, service.Info));
        read.MapGet("/document", () => Reply(service, service.Document));
        read.MapGet("/status", () => Reply(service, service.Status));
        read.MapGet("/snapshot", () => Reply(service, service.Snapshot));
        read.MapGet("/graph", () => Reply(service, service.Graph));
        read.MapPost("/document/validate", async (HttpRequest request, CancellationToken ct) =>
            await ReplyAsync(service, request, ct, body => service.Validate(Unwrap(body))).ConfigureAwait(false));
        // As a Delegate, not a RequestDelegate, so that the route is described in the OpenAPI document too.
        read.MapGet("/events", (Delegate)((HttpContext context) => StreamEventsAsync(context, service, options)))
            .Produces(StatusCodes.Status200OK, contentType: "text/event-stream");
        read.MapGet("/streams/{name}/latest", (string name) => Guard(service, () => Results.Bytes(preview.Latest(name), "application/json; charset=utf-8")));
        // One trace stream for both ways of switching traces on (POST /profiling/traces and a routed set_profiling_trace): each wakes it.
        var traces = new TraceHub(service, options.TraceQueueBytes);
        service.Traces = traces;
        MapProfiling(read, control, service, options, traces);
        ObservabilityApi.Map(read, control, service, tokens, options, traces); // issue 12: processes, requests, settings, topology

        // OpenTelemetry's Prometheus exporter (registered by ControlTelemetry.AddControlTelemetry), behind the read scope.
        app.MapPrometheusScrapingEndpoint("/metrics", meterProvider: null, configureBranchedPipeline: branch => branch.Use(async (context, next) =>
        {
            if (Refusal(context, tokens, Scope.Read) is { } refusal)
            {
                await refusal.ExecuteAsync(context).ConfigureAwait(false);
                return;
            }

            await next(context).ConfigureAwait(false);
        }), optionsName: null).WithMetadata(new HttpMethodMetadata([HttpMethods.Get]));

        // The document as JSON, or as YAML text (application/yaml), which is then kept with its comments (GET /document/yaml).
        admin.MapPut("/document", async (HttpRequest request, CancellationToken ct) => IsYaml(request)
            ? await ReplyYamlAsync(service, request, ct, yaml => service.ReplaceDocumentYaml(yaml, ct)).ConfigureAwait(false)
            : await ReplyAsync(service, request, ct, body => service.ReplaceDocument(Unwrap(body) ?? throw new BadBodyException("the request body must be the document, a JSON object"), ct)).ConfigureAwait(false));
        admin.MapPost("/document/load", async (HttpRequest request, CancellationToken ct) =>
            await ReplyAsync(service, request, ct, body => service.LoadDocument(ControlJson.Text(body, "path", required: true)!, ct)).ConfigureAwait(false));
        admin.MapPost("/commands/build", (CancellationToken ct) => Reply(service, () => service.Build(ct), ct));
        admin.MapPost("/commands/shutdown", async (HttpRequest request, CancellationToken ct) =>
            await ReplyAsync(service, request, ct, body => service.Shutdown(
                ControlJson.Boolean(body, "unlink", true),
                ControlJson.Boolean(body, "unlink_external", false),
                ControlJson.Boolean(body, "force", false),
                ct)).ConfigureAwait(false));

        control.MapPost("/commands/start", (CancellationToken ct) => Reply(service, () => service.Start(ct), ct));
        control.MapPost("/commands/pause", (CancellationToken ct) => Reply(service, () => service.Pause(ct), ct));
        control.MapPost("/commands/resume", (CancellationToken ct) => Reply(service, () => service.Resume(ct), ct));
        control.MapPost("/commands/stop", async (HttpRequest request, CancellationToken ct) =>
            await ReplyAsync(service, request, ct, body => service.Stop(
                Seconds(body, "timeout", 5.0)!.Value,
                ControlJson.Boolean(body, "force", false),
                ct)).ConfigureAwait(false));
        control.MapPost("/commands/restart", async (HttpRequest request, CancellationToken ct) =>
            await ReplyAsync(service, request, ct, body => service.Restart(Seconds(body, "timeout", null), ct)).ConfigureAwait(false));
        control.MapPost("/synthetic/start", async (HttpRequest request, CancellationToken ct) =>
            await ReplyAsync(service, request, ct, body => service.StartSynthetic(
                ControlJson.Text(body, "stream_name", required: true)!,
                SyntheticFrom(body),
                ct)).ConfigureAwait(false));
        control.MapPost("/synthetic/stop", async (HttpRequest request, CancellationToken ct) =>
            await ReplyAsync(service, request, ct, body => service.StopSynthetic(
                ControlJson.Text(body, "stream_name", required: true)!,
                Seconds(body, "timeout", 2.0)!.Value,
                ct)).ConfigureAwait(false));
    }

    /// <summary>The document of a body: the body itself, or the object under <c>document</c> when that is its only field (as GET /document returns it).</summary>
    private static JsonObject? Unwrap(JsonObject? body)
    {
        if (body is { Count: 1 } && body["document"] is JsonObject inner)
        {
            body.Remove("document");
            return inner;
        }

        return body;
    }

    private static SyntheticSettings SyntheticFrom(JsonObject? body) => new()
    {
        Pattern = ControlJson.Text(body, "pattern", required: false, "random")!,
        RateHz = ControlJson.Number(body, "rate_hz", null),
        Seed = ControlJson.Integer(body, "seed", 0),
        Amplitude = ControlJson.Number(body, "amplitude", 1.0)!.Value,
        Offset = ControlJson.Number(body, "offset", 0.0)!.Value,
        Period = ControlJson.Number(body, "period", 64.0)!.Value,
        Constant = ControlJson.Number(body, "constant", 0.0)!.Value,
        ImpulseInterval = ControlJson.Integer(body, "impulse_interval", 64),
    };

    private static TimeSpan? Seconds(JsonObject? body, string name, double? fallback)
    {
        var value = ControlJson.Number(body, name, fallback);
        return value switch
        {
            null => null,
            < 0 or double.NaN or > 86_400 => throw new BadBodyException($"'{name}' must be between 0 and 86400 seconds, not {value}"),
            _ => TimeSpan.FromSeconds(value.Value),
        };
    }

    internal static IResult Reply<T>(ControlService service, Func<T> action, CancellationToken requestAborted = default) =>
        Guard(service, () => Json(200, action()), requestAborted);

    private static async Task<IResult> ReplyAsync<T>(ControlService service, HttpRequest request, CancellationToken cancellationToken, Func<JsonObject?, T> action)
    {
        JsonObject? body;
        try
        {
            body = await ControlJson.ReadObjectAsync(request, service.MaxDocumentBytes, cancellationToken).ConfigureAwait(false);
        }
        catch (BadBodyException e)
        {
            return Error(422, e.Message);
        }
        catch (ControlException e)
        {
            return Error(e.StatusCode, e.Message);
        }

        return Guard(service, () => Json(200, action(body)), cancellationToken);
    }

    /// <summary>Whether the request's body is YAML text (<c>application/yaml</c>, <c>application/x-yaml</c> or <c>text/yaml</c>).</summary>
    internal static bool IsYaml(HttpRequest request) =>
        (request.ContentType ?? "").Split(';', 2)[0].Trim().ToLowerInvariant() is "application/yaml" or "application/x-yaml" or "text/yaml";

    private static async Task<IResult> ReplyYamlAsync<T>(ControlService service, HttpRequest request, CancellationToken cancellationToken, Func<string, T> action)
    {
        string yaml;
        try
        {
            yaml = await ControlJson.ReadTextAsync(request, service.MaxDocumentBytes, cancellationToken).ConfigureAwait(false);
        }
        catch (ControlException e)
        {
            return Error(e.StatusCode, e.Message);
        }

        return Guard(service, () => Json(200, action(yaml)), cancellationToken);
    }

    /// <summary>Runs <paramref name="action"/> and maps what it throws to shmpipeline's status codes.</summary>
    internal static IResult Guard(ControlService service, Func<IResult> action, CancellationToken requestAborted = default)
    {
        try
        {
            return action();
        }
        catch (BadBodyException e)
        {
            return Error(422, e.Message);
        }
        catch (ControlException e)
        {
            return Error(e.StatusCode, e.Message, e.Extra);
        }
        catch (StateTransitionException e)
        {
            return Error(409, e.Message);
        }
        catch (DocumentValidationException e)
        {
            return Error(400, ControlService.InvalidDetail(e.Errors, e.TotalErrors), ControlService.ValidationResult(e.Errors, e.TotalErrors));
        }
        catch (NamespaceInUseException e)
        {
            return Error(409, e.Message, new JsonObject { ["holder_pid"] = e.Holder.Pid, ["holder_url"] = e.Holder.ServerUrl });
        }
        catch (WorkerFailedException e)
        {
            return Error(500, e.Message, new JsonObject { ["failures"] = new JsonArray([.. e.Failures.Select(f => (JsonNode)StatusJson.ToJsonObject(f))]) });
        }
        catch (Exception e) when (e is KeyNotFoundException or FileNotFoundException or DirectoryNotFoundException)
        {
            return Error(404, e.Message);
        }
        catch (ObjectDisposedException)
        {
            return Error(503, "the server is shutting down");
        }
        catch (OperationCanceledException) when (requestAborted.IsCancellationRequested)
        {
            return Error(StatusCodes.Status499ClientClosedRequest, "not run: the client went away while the command waited for its turn");
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException)
        {
            return Error(400, e.Message);
        }
#pragma warning disable CA1031 // Every other failure is reported to the caller and to event subscribers, not thrown into Kestrel.
        catch (Exception e)
#pragma warning restore CA1031
        {
            var detail = $"{e.GetType().Name}: {e.Message}";
            service.Events.Publish("service_error", new JsonObject { ["error"] = detail });
            return Error(500, detail);
        }
    }

    /// <summary>A JSON answer: a status record in its wire format, or a JSON tree.</summary>
    internal static IResult Json<T>(int status, T body) =>
        Results.Content(body is JsonNode node ? node.ToJsonString(ControlJson.Options) : StatusJson.Serialize(body), "application/json; charset=utf-8", System.Text.Encoding.UTF8, status);

    /// <summary>An error body: <c>{"detail": "..."}</c> plus <paramref name="extra"/> fields.</summary>
    internal static IResult Error(int status, string detail, JsonObject? extra = null)
    {
        var body = new JsonObject { ["detail"] = detail };
        if (extra is not null)
        {
            foreach (var (key, value) in extra.ToList())
            {
                if (key != "detail")
                {
                    extra.Remove(key);
                    body[key] = value;
                }
            }
        }

        return Json(status, body);
    }

    /// <summary>
    /// <c>GET /events</c>: the history after <c>Last-Event-ID</c>, one unnumbered <c>snapshot</c>
    /// (<c>reason: initial</c>), then live events, with a keepalive comment after each idle interval.
    /// </summary>
    private static async Task StreamEventsAsync(HttpContext context, ControlService service, ControlApiOptions options)
    {
        long? lastEventId = null;
        if (context.Request.Headers.TryGetValue("Last-Event-ID", out var header) && !string.IsNullOrWhiteSpace(header))
        {
            if (!long.TryParse(header.ToString().Trim(), System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var parsed))
            {
                await Error(400, $"Last-Event-ID must be an integer, not '{header}'").ExecuteAsync(context).ConfigureAwait(false);
                return;
            }

            lastEventId = parsed;
        }

        var response = context.Response;
        var cancel = context.RequestAborted;
        response.StatusCode = 200;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        var body = response.Body;

        var (replay, queue) = service.Events.Subscribe(lastEventId);
        try
        {
            foreach (var e in replay)
            {
                await WriteAsync(body, e, cancel).ConfigureAwait(false);
            }

            string initial;
            try
            {
                initial = StatusJson.Serialize(new SnapshotEvent { Reason = "initial", Snapshot = service.Snapshot() });
            }
            catch (ObjectDisposedException)
            {
                return;
            }

            await WriteAsync(body, new ServiceEvent(null, "snapshot", initial), cancel).ConfigureAwait(false);
            await body.FlushAsync(cancel).ConfigureAwait(false);

            var reader = queue.Reader;
            while (!cancel.IsCancellationRequested)
            {
                using var idle = CancellationTokenSource.CreateLinkedTokenSource(cancel);
                idle.CancelAfter(options.KeepaliveInterval);
                bool more;
                try
                {
                    more = await reader.WaitToReadAsync(idle.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
                {
                    await body.WriteAsync(Keepalive, cancel).ConfigureAwait(false);
                    await body.FlushAsync(cancel).ConfigureAwait(false);
                    continue;
                }
                catch (SubscriberTooSlowException)
                {
                    return;
                }

                if (!more)
                {
                    return;
                }

                while (reader.TryRead(out var e))
                {
                    await WriteAsync(body, e, cancel).ConfigureAwait(false);
                }

                await body.FlushAsync(cancel).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            // The client went away.
        }
        catch (IOException) when (cancel.IsCancellationRequested)
        {
            // The client went away mid-write.
        }
        finally
        {
            service.Events.Unsubscribe(queue);
        }
    }

    /// <summary>Writes one event with the framework's SSE formatter (<c>event:</c>, <c>data:</c>, <c>id:</c> lines).</summary>
    private static Task WriteAsync(Stream body, ServiceEvent e, CancellationToken cancellationToken) =>
        SseFormatter.WriteAsync(One(new SseItem<string>(e.Json, e.Type) { EventId = e.Id?.ToString(System.Globalization.CultureInfo.InvariantCulture) }), body, cancellationToken);

    private static async IAsyncEnumerable<SseItem<string>> One(SseItem<string> item)
    {
        await Task.CompletedTask.ConfigureAwait(false);
        yield return item;
    }

    /// <summary>
    /// Without tokens, the server answers only requests that come from this machine's own programs: the
    /// Host must be a loopback name or address (a DNS-rebound name is refused), and a browser request from
    /// another site (an Origin that is not loopback, or Sec-Fetch-Site: cross-site) is refused, so that no
    /// web page can drive the pipeline.
    /// </summary>
    public static async Task LocalRequestsOnly(HttpContext context, Func<Task> next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        var request = context.Request;
        var origin = request.Headers.Origin.ToString();
        var why = !IsLoopbackHost(request.Host.Host) ? $"Host '{request.Host}' is not this machine"
            : request.Headers["Sec-Fetch-Site"].ToString() == "cross-site" ? "a cross-site browser request"
            : origin.Length > 0 && !(Uri.TryCreate(origin, UriKind.Absolute, out var o) && IsLoopbackHost(o.Host)) ? $"Origin '{origin}' is not this machine"
            : null;
        if (why is not null)
        {
            await Error(403, $"refused: {why}; a server without tokens answers local programs only (start it with a token to serve others)").ExecuteAsync(context).ConfigureAwait(false);
            return;
        }

        await next().ConfigureAwait(false);
    }

    private static bool IsLoopbackHost(string host) =>
        host.Equals("localhost", StringComparison.OrdinalIgnoreCase)
        || (System.Net.IPAddress.TryParse(host.Trim('[', ']'), out var ip) && System.Net.IPAddress.IsLoopback(ip));

    /// <summary>The 401 of a request without a known bearer token, the 403 of one whose scope is below <paramref name="required"/>; null when it may pass.</summary>
    private static IResult? Refusal(HttpContext http, AccessTokens tokens, Scope required)
    {
        if (!tokens.Required)
        {
            return null;
        }

        var header = http.Request.Headers.Authorization.ToString();
        const string Bearer = "Bearer ";
        var scope = header.StartsWith(Bearer, StringComparison.OrdinalIgnoreCase) ? tokens.ScopeOf(header[Bearer.Length..].Trim()) : null;
        if (scope is null)
        {
            http.Response.Headers.WWWAuthenticate = "Bearer";
            return Error(401, header.Length == 0 ? "missing bearer token (send 'Authorization: Bearer <token>')" : "invalid bearer token");
        }

        return scope < required
            ? Error(403, $"this token's scope is '{scope.Value.ToString().ToLowerInvariant()}'; {http.Request.Method} {http.Request.Path} needs '{required.ToString().ToLowerInvariant()}'")
            : null;
    }

    /// <summary>401 without a known bearer token, 403 when its scope is below the endpoint's.</summary>
    internal sealed class ScopeFilter(AccessTokens tokens, Scope required) : IEndpointFilter
    {
        public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next) =>
            Refusal(context.HttpContext, tokens, required) ?? await next(context).ConfigureAwait(false);
    }
}
