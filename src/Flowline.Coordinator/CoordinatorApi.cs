using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Flowline.Coordinator.Storage;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Flowline.Coordinator;

/// <summary>The coordinator's endpoints, on the seed's paths (docs/coordinator.md).</summary>
public static partial class CoordinatorApi
{
    /// <summary>The OpenAPI document's name: it is served at <c>/tpf/openapi/v1.json</c>.</summary>
    public const string OpenApiName = "v1";

    /// <summary>The default page size of listings.</summary>
    public const int DefaultLimit = 50;

    /// <summary>The largest page size.</summary>
    public const int MaxLimit = 500;

    private const string PrincipalKey = "flowline.coordinator.principal";

    /// <summary>Maps the endpoints.</summary>
    /// <param name="app">The routes.</param>
    /// <param name="store">The store.</param>
    /// <param name="registrar">Registers releases.</param>
    /// <param name="tokens">The accepted tokens.</param>
    /// <param name="staleAfter">A worker without a heartbeat for this long is STALE (default 2 minutes; zero: never).</param>
    public static void MapCoordinatorEndpoints(this IEndpointRouteBuilder app, ICoordinatorStore store, ReleaseRegistrar registrar, CoordinatorTokens tokens, TimeSpan? staleAfter = null)
    {
        ArgumentNullException.ThrowIfNull(app);
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(registrar);
        ArgumentNullException.ThrowIfNull(tokens);

        var pipelines = app.MapGroup("/tpf/admin/tenants/{tenantId}/pipelines/{pipelineId}").AddEndpointFilter(new TokenFilter(tokens, Role.Admin));
        var releases = pipelines.MapGroup("/releases");

        releases.MapPost("/register", async (string tenantId, string pipelineId, HttpContext context, CancellationToken ct) =>
        {
            var body = await ReadObjectAsync(context.Request, ct).ConfigureAwait(false);
            var actor = Principal(context).Name;
            var path = body["releaseDescriptorPath"];
            var descriptor = body["descriptor"];
            if ((path is null) == (descriptor is null) || (path is not null && body["artifacts"] is not null) || body.Any(m => m.Key is not ("releaseDescriptorPath" or "descriptor" or "artifacts")))
            {
                throw new ProblemException(400, ProblemCodes.InvalidRequest, "the body is {\"releaseDescriptorPath\": \"/absolute/pipeline-release.json\"} or {\"descriptor\": {...}, \"artifacts\": {\"<artifactId>\": \"<base64>\"}}");
            }

            var (release, created) = path is not null
                ? await registrar.RegisterFromPathAsync(tenantId, pipelineId, Text(path, "releaseDescriptorPath"), actor, ct).ConfigureAwait(false)
                : await registrar.RegisterFromBodyAsync(tenantId, pipelineId, descriptor, body["artifacts"] as JsonObject ?? (body["artifacts"] is null ? null : throw new ProblemException(400, ProblemCodes.InvalidRequest, "artifacts must be an object of base64 contents by artifact id")), actor, ct).ConfigureAwait(false);
            var dto = await ReleaseDto(store, release, ct).ConfigureAwait(false);
            return created
                ? Results.Created(ReleasePath(tenantId, pipelineId, release.ReleaseVersion), dto)
                : Results.Ok(dto);
        });

        releases.MapGet("", async (string tenantId, string pipelineId, HttpRequest request, CancellationToken ct) =>
        {
            var (after, limit) = Paging(request, "r");
            var page = await store.ListReleasesAsync(tenantId, pipelineId, after, limit, ct).ConfigureAwait(false);
            var active = await store.GetActiveAsync(tenantId, pipelineId, ct).ConfigureAwait(false);
            return Results.Json(new JsonObject
            {
                ["items"] = new JsonArray([.. page.Items.Select(r => (JsonNode)ReleaseDto(r, active))]),
                ["nextCursor"] = Cursor("r", page.NextAfter),
            });
        });

        releases.MapGet("/active", async (string tenantId, string pipelineId, HttpContext context, CancellationToken ct) =>
        {
            var active = await store.GetActiveAsync(tenantId, pipelineId, ct).ConfigureAwait(false)
                ?? throw new ProblemException(404, ProblemCodes.NoActiveRelease, $"pipeline '{pipelineId}' of tenant '{tenantId}' has no active release; activate one with POST .../releases/{{releaseVersion}}/activate");
            var release = await store.GetReleaseAsync(tenantId, pipelineId, active.ReleaseVersion, ct).ConfigureAwait(false);
            context.Response.Headers.ETag = ETag(active.Id);
            return Results.Json(ReleaseDto(release!, active).With("activation", ActivationDto(active)));
        });

        releases.MapGet("/{releaseVersion}", async (string tenantId, string pipelineId, string releaseVersion, CancellationToken ct) =>
        {
            var release = await store.GetReleaseAsync(tenantId, pipelineId, releaseVersion, ct).ConfigureAwait(false) ?? throw NotFound(pipelineId, releaseVersion);
            return Results.Json(await ReleaseDto(store, release, ct).ConfigureAwait(false));
        });

        releases.MapPost("/{releaseVersion}/activate", async (string tenantId, string pipelineId, string releaseVersion, HttpContext context, CancellationToken ct) =>
        {
            var body = await ReadObjectAsync(context.Request, ct, allowEmpty: true).ConfigureAwait(false);
            var reason = body["reason"] is { } r ? Text(r, "reason") : null;
            if (body.Any(m => m.Key != "reason"))
            {
                throw new ProblemException(400, ProblemCodes.InvalidRequest, "the body is empty or {\"reason\": \"...\"}");
            }

            var expected = IfMatch(context.Request);

            // The stored artifacts are hashed again: a release whose copy changed on disk is not made active.
            await registrar.VerifyStoredAsync(await store.GetReleaseAsync(tenantId, pipelineId, releaseVersion, ct).ConfigureAwait(false) ?? throw NotFound(pipelineId, releaseVersion), ct).ConfigureAwait(false);
            var activation = await store.ActivateAsync(tenantId, pipelineId, releaseVersion, expected, Principal(context).Name, reason, ct).ConfigureAwait(false)
                ?? throw NotFound(pipelineId, releaseVersion);
            context.Response.Headers.ETag = ETag(activation.Id);
            return Results.Json(ActivationDto(activation));
        });

        // The OpenAPI document (paths, methods, parameters; bodies are untyped JSON objects): any valid token may read it.
        app.MapGroup("/tpf/openapi").AddEndpointFilter(new TokenFilter(tokens, Role.Admin, Role.ControlPlane, Role.Agent))
            .MapOpenApi("/{documentName}.json");

        MapExecutionEndpoints(app, store, tokens, staleAfter ?? TimeSpan.FromMinutes(2));
        var agentPipelines = app.MapGroup("/tpf/admin/tenants/{tenantId}/pipelines/{pipelineId}").AddEndpointFilter(new TokenFilter(tokens, Role.Admin, Role.Agent));
        MapWorkerEndpoints(pipelines, agentPipelines, store, staleAfter ?? TimeSpan.FromMinutes(2));
        MapAgentEndpoints(app, store, registrar, tokens, staleAfter ?? TimeSpan.FromMinutes(2));

        pipelines.MapGet("/activations", async (string tenantId, string pipelineId, HttpRequest request, CancellationToken ct) =>
        {
            var (after, limit) = Paging(request, "a");
            var page = await store.ListActivationsAsync(tenantId, pipelineId, after, limit, ct).ConfigureAwait(false);
            return Results.Json(new JsonObject
            {
                ["items"] = new JsonArray([.. page.Items.Select(e => (JsonNode)ActivationDto(e))]),
                ["nextCursor"] = Cursor("a", page.NextAfter),
            });
        });
    }

    /// <summary>The path of an execution's status.</summary>
    public static string ExecutionPath(string tenantId, string executionId) => $"/tpf/control-plane/tenants/{tenantId}/executions/{executionId}";

    /// <summary>The largest idempotency key, in characters.</summary>
    public const int MaxIdempotencyKeyLength = 255;

    private static readonly string[] SubmitMembers = ["pipelineId", "releaseVersion", "idempotencyKey", "input", "run"];

    private static void MapExecutionEndpoints(IEndpointRouteBuilder app, ICoordinatorStore store, CoordinatorTokens tokens, TimeSpan staleAfter)
    {
        var tenant = app.MapGroup("/tpf/control-plane/tenants/{tenantId}").AddEndpointFilter(new TokenFilter(tokens, Role.ControlPlane));

        tenant.MapPost("/executions", async (string tenantId, HttpContext context, CancellationToken ct) =>
        {
            var body = await ReadObjectAsync(context.Request, ct).ConfigureAwait(false);
            foreach (var (member, _) in body)
            {
                if (!SubmitMembers.Contains(member))
                {
                    throw new ProblemException(400, ProblemCodes.InvalidRequest, $"{member}: unknown member; members are {string.Join(", ", SubmitMembers)}");
                }
            }

            var pipelineId = body["pipelineId"] is { } p ? Text(p, "pipelineId") : throw new ProblemException(400, ProblemCodes.InvalidRequest, "pipelineId is required");
            var pinned = body["releaseVersion"] is { } v ? Text(v, "releaseVersion") : null;
            foreach (var (name, value) in new[] { ("pipelineId", pipelineId), ("releaseVersion", pinned) })
            {
                if (value is not null && !ReleaseDescriptor.Identifier().IsMatch(value))
                {
                    throw new ProblemException(400, ProblemCodes.InvalidRequest, $"{name} '{value}' must be letters, digits, '.', '_' or '-', at most 128");
                }
            }

            var key = IdempotencyKey(context.Request, body);
            body.Remove("idempotencyKey");

            // The execution is pinned now: the version asked for, else the active one.
            string releaseVersion;
            if (pinned is not null)
            {
                releaseVersion = pinned;
            }
            else
            {
                releaseVersion = (await store.GetActiveAsync(tenantId, pipelineId, ct).ConfigureAwait(false)
                    ?? throw new ProblemException(409, ProblemCodes.NoActiveRelease, $"pipeline '{pipelineId}' of tenant '{tenantId}' has no active release; activate one, or pin releaseVersion")).ReleaseVersion;
            }

            var release = await store.GetReleaseAsync(tenantId, pipelineId, releaseVersion, ct).ConfigureAwait(false) ?? throw NotFound(pipelineId, releaseVersion);
            await RequireHealthyWorkerAsync(store, tenantId, release, staleAfter, context, ct).ConfigureAwait(false);
            var canonical = Canonical(body)!.ToJsonString();
            var fingerprint = "sha256:" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(canonical)));
            var (execution, duplicate) = await store.SubmitExecutionAsync(new NewExecution(
                Guid.NewGuid().ToString(), tenantId, pipelineId, release.ReleaseVersion, release.ContractVersion, canonical, key, fingerprint, Principal(context).Name), ct).ConfigureAwait(false);
            var location = ExecutionPath(tenantId, execution.ExecutionId);
            context.Response.Headers.Location = location;
            return Results.Json(ExecutionDto(execution).With("duplicate", duplicate).With("statusUrl", location), statusCode: 202);
        });

        tenant.MapGet("/executions/{executionId}", async (string tenantId, string executionId, CancellationToken ct) =>
            Results.Json(ExecutionDto(await store.GetExecutionAsync(tenantId, executionId, ct).ConfigureAwait(false) ?? throw ExecutionNotFound(executionId))));

        tenant.MapGet("/executions/{executionId}/result", async (string tenantId, string executionId, CancellationToken ct) =>
        {
            var e = await store.GetExecutionAsync(tenantId, executionId, ct).ConfigureAwait(false) ?? throw ExecutionNotFound(executionId);
            return Results.Json(new JsonObject
            {
                ["executionId"] = e.ExecutionId,
                ["status"] = e.Status,
                ["result"] = e.ResultJson is null ? null : JsonNode.Parse(e.ResultJson),
            });
        });
    }

    private static readonly string[] WorkerMembers = ["workerId", "protocol", "endpoint", "contractVersion", "releaseVersion", "artifactId", "artifactDigest", "maxExecutions"];

    /// <summary>The most executions one worker may say it runs at once.</summary>
    private const int MaxExecutionsPerWorker = 256;

    private static void MapWorkerEndpoints(RouteGroupBuilder pipelines, RouteGroupBuilder agentPipelines, ICoordinatorStore store, TimeSpan staleAfter)
    {
        agentPipelines.MapPost("/workers/register", async (string tenantId, string pipelineId, HttpContext context, CancellationToken ct) =>
        {
            var body = await ReadObjectAsync(context.Request, ct).ConfigureAwait(false);
            var errors = body.Where(m => !WorkerMembers.Contains(m.Key)).Select(m => $"{m.Key}: unknown member; members are {string.Join(", ", WorkerMembers)}").ToList();
            string? Field(string name, bool required, bool identifier)
            {
                if (body[name] is null)
                {
                    if (required)
                    {
                        errors.Add($"{name}: required");
                    }

                    return null;
                }

                if (body[name] is not JsonValue v || !v.TryGetValue<string>(out var text) || text.Length == 0 || text.Length > 1024)
                {
                    errors.Add($"{name}: must be a non-empty string (at most 1,024 characters)");
                    return null;
                }

                if (identifier && !ReleaseDescriptor.Identifier().IsMatch(text))
                {
                    errors.Add($"{name}: '{text}' must be letters, digits, '.', '_' or '-', at most 128");
                }

                return text;
            }

            var maxExecutions = 1;
            if (body["maxExecutions"] is { } m && (m is not JsonValue mv || !mv.TryGetValue(out maxExecutions) || maxExecutions < 1 || maxExecutions > MaxExecutionsPerWorker))
            {
                errors.Add($"maxExecutions: must be an integer from 1 to {MaxExecutionsPerWorker}, not {m.ToJsonString()}");
            }

            var registration = new WorkerRegistration(
                tenantId, pipelineId,
                Field("workerId", true, true)!,
                Field("protocol", true, true)?.ToLowerInvariant()!,
                Field("endpoint", false, false),
                Field("contractVersion", true, true)!,
                Field("releaseVersion", true, true)!,
                Field("artifactId", false, true),
                Field("artifactDigest", false, false),
                maxExecutions);
            if (errors.Count > 0)
            {
                throw new ProblemException(400, ProblemCodes.InvalidRequest, "the worker registration is not valid: " + string.Join("; ", errors), new JsonObject { ["errors"] = new JsonArray([.. errors.Select(e => (JsonNode)e)]) });
            }

            return Results.Json(WorkerDto(await store.RegisterWorkerAsync(registration, staleAfter, ct).ConfigureAwait(false)));
        });

        agentPipelines.MapPost("/workers/{workerId}/heartbeat", async (string tenantId, string pipelineId, string workerId, CancellationToken ct) =>
            Results.Json(WorkerDto(await store.HeartbeatAsync(tenantId, pipelineId, workerId, staleAfter, ct).ConfigureAwait(false) ?? throw WorkerNotFound(pipelineId, workerId))));
        agentPipelines.MapPost("/workers/{workerId}/unavailable", async (string tenantId, string pipelineId, string workerId, HttpContext context, CancellationToken ct) =>
        {
            var body = await ReadObjectAsync(context.Request, ct).ConfigureAwait(false);
            if (body.Any(m => m.Key != "reason") || body["reason"] is null)
            {
                throw new ProblemException(400, ProblemCodes.InvalidRequest, "the body is {\"reason\": \"why this agent cannot run its release\"}");
            }

            var reason = Text(body["reason"]!, "reason");
            return Results.Json(WorkerDto(await store.SetUnavailableAsync(tenantId, pipelineId, workerId, reason.Length > 1024 ? reason[..1024] : reason, staleAfter, ct).ConfigureAwait(false) ?? throw WorkerNotFound(pipelineId, workerId)));
        });
        pipelines.MapPost("/workers/{workerId}/drain", async (string tenantId, string pipelineId, string workerId, CancellationToken ct) =>
            Results.Json(WorkerDto(await store.SetDrainingAsync(tenantId, pipelineId, workerId, true, staleAfter, ct).ConfigureAwait(false) ?? throw WorkerNotFound(pipelineId, workerId))));
        pipelines.MapPost("/workers/{workerId}/undrain", async (string tenantId, string pipelineId, string workerId, CancellationToken ct) =>
            Results.Json(WorkerDto(await store.SetDrainingAsync(tenantId, pipelineId, workerId, false, staleAfter, ct).ConfigureAwait(false) ?? throw WorkerNotFound(pipelineId, workerId))));

        pipelines.MapGet("/workers", async (string tenantId, string pipelineId, HttpRequest request, CancellationToken ct) =>
        {
            var limit = DefaultLimit;
            if (request.Query.TryGetValue("limit", out var l) && (!int.TryParse(l, NumberStyles.None, CultureInfo.InvariantCulture, out limit) || limit < 1 || limit > MaxLimit))
            {
                throw new ProblemException(400, ProblemCodes.InvalidRequest, $"limit must be an integer from 1 to {MaxLimit}, not '{l}'");
            }

            var after = "";
            if (request.Query.TryGetValue("cursor", out var c))
            {
                after = DecodeCursor(c.ToString(), "w") ?? throw new ProblemException(400, ProblemCodes.InvalidRequest, "cursor is not one this listing returned (pass nextCursor unchanged)");
            }

            string? contract = request.Query["contractVersion"], release = request.Query["releaseVersion"];
            var (items, next) = await store.ListWorkersAsync(tenantId, pipelineId, after, limit, staleAfter, contract, release, ct).ConfigureAwait(false);
            return Results.Json(new JsonObject
            {
                ["items"] = new JsonArray([.. items.Select(w => (JsonNode)WorkerDto(w))]),
                ["nextCursor"] = next is null ? null : EncodeCursor("w", next),
            });
        });
    }

    private static ProblemException WorkerNotFound(string pipelineId, string workerId) =>
        new(404, ProblemCodes.WorkerNotFound, $"pipeline '{pipelineId}' has no worker '{workerId}'; register it first");

    private static JsonObject WorkerDto(WorkerRecord w) => new()
    {
        ["workerId"] = w.WorkerId,
        ["tenantId"] = w.TenantId,
        ["pipelineId"] = w.PipelineId,
        ["protocol"] = w.Protocol,
        ["endpoint"] = w.Endpoint,
        ["contractVersion"] = w.ContractVersion,
        ["releaseVersion"] = w.ReleaseVersion,
        ["artifactId"] = w.ArtifactId,
        ["artifactDigest"] = w.ArtifactDigest,
        ["state"] = w.State,
        ["registeredAt"] = Time(w.RegisteredAt),
        ["lastHeartbeatAt"] = Time(w.LastHeartbeatAt),
        ["drainingSince"] = w.DrainingSince is { } d ? Time(d) : null,
        ["unavailableReason"] = w.UnavailableReason,
        ["maxExecutions"] = w.MaxExecutions,
    };

    /// <summary>503 NO_HEALTHY_WORKER (with Retry-After) unless a HEALTHY worker runs the release's contract and version.</summary>
    private static async Task RequireHealthyWorkerAsync(ICoordinatorStore store, string tenantId, ReleaseRecord release, TimeSpan staleAfter, HttpContext context, CancellationToken ct)
    {
        var after = "";
        var states = new List<string>();
        while (true)
        {
            var (items, next) = await store.ListWorkersAsync(tenantId, release.PipelineId, after, MaxLimit, staleAfter, release.ContractVersion, release.ReleaseVersion, ct).ConfigureAwait(false);
            if (items.Any(w => w.State == "HEALTHY"))
            {
                return;
            }

            states.AddRange(items.Take(10 - Math.Min(10, states.Count)).Select(w => $"{w.WorkerId}={w.State}"));
            if (next is null)
            {
                break;
            }

            after = next;
        }

        context.Response.Headers.RetryAfter = "5";
        throw new ProblemException(503, ProblemCodes.NoHealthyWorker,
            $"no HEALTHY worker runs release '{release.ReleaseVersion}' (contract {release.ContractVersion}) of pipeline '{release.PipelineId}'" +
            (states.Count == 0 ? ": none is registered" : $": {string.Join(", ", states)}"));
    }

    private static ProblemException ExecutionNotFound(string executionId) =>
        new(404, ProblemCodes.ExecutionNotFound, $"this tenant has no execution '{executionId}'");

    /// <summary>The key of the Idempotency-Key header or of the body's idempotencyKey (TPF's); both must agree.</summary>
    private static string? IdempotencyKey(HttpRequest request, JsonObject body)
    {
        var header = request.Headers["Idempotency-Key"].ToString();
        var member = body["idempotencyKey"] is { } k ? Text(k, "idempotencyKey") : null;
        if (header.Length > 0 && member is not null && header != member)
        {
            throw new ProblemException(400, ProblemCodes.InvalidRequest, "the Idempotency-Key header and the body's idempotencyKey differ; send one");
        }

        var key = header.Length > 0 ? header : member;
        return key is { Length: > MaxIdempotencyKeyLength }
            ? throw new ProblemException(400, ProblemCodes.InvalidRequest, $"an idempotency key is at most {MaxIdempotencyKeyLength} characters")
            : key;
    }

    /// <summary>The JSON with object members sorted by name at every level: equal requests have equal text.</summary>
    private static JsonNode? Canonical(JsonNode? node) => node switch
    {
        JsonObject o => new JsonObject(o.OrderBy(m => m.Key, StringComparer.Ordinal).Select(m => KeyValuePair.Create(m.Key, Canonical(m.Value)))),
        JsonArray a => new JsonArray([.. a.Select(Canonical)]),
        _ => node?.DeepClone(),
    };

    private static JsonObject ExecutionDto(ExecutionRecord e) => new()
    {
        ["executionId"] = e.ExecutionId,
        ["tenantId"] = e.TenantId,
        ["pipelineId"] = e.PipelineId,
        ["releaseVersion"] = e.ReleaseVersion,
        ["contractVersion"] = e.ContractVersion,
        ["status"] = e.Status,
        ["idempotencyKey"] = e.IdempotencyKey,
        ["submittedBy"] = e.SubmittedBy,
        ["submittedAt"] = Time(e.SubmittedAt),
        ["updatedAt"] = Time(e.UpdatedAt),
        ["errorCode"] = e.ErrorCode,
        ["errorMessage"] = e.ErrorMessage,
        ["workerId"] = e.LeaseOwner,
        ["leaseEpoch"] = e.LeaseEpoch,
        ["attempts"] = e.Attempts,
        ["cancelRequested"] = e.CancelRequestedAt is not null,
        ["startedAt"] = e.StartedAt is { } s ? Time(s) : null,
        ["endedAt"] = e.EndedAt is { } x ? Time(x) : null,
    };

    /// <summary>The path of a release.</summary>
    public static string ReleasePath(string tenantId, string pipelineId, string releaseVersion) =>
        $"/tpf/admin/tenants/{tenantId}/pipelines/{pipelineId}/releases/{releaseVersion}";

    internal static TokenPrincipal Principal(HttpContext context) => (TokenPrincipal)context.Items[PrincipalKey]!;

    private static ProblemException NotFound(string pipelineId, string releaseVersion) =>
        new(404, ProblemCodes.ReleaseNotFound, $"pipeline '{pipelineId}' has no release '{releaseVersion}'");

    private static async Task<JsonObject> ReleaseDto(ICoordinatorStore store, ReleaseRecord release, CancellationToken ct) =>
        ReleaseDto(release, await store.GetActiveAsync(release.TenantId, release.PipelineId, ct).ConfigureAwait(false));

    private static JsonObject ReleaseDto(ReleaseRecord r, ActivationEvent? active) => new()
    {
        ["tenantId"] = r.TenantId,
        ["pipelineId"] = r.PipelineId,
        ["releaseVersion"] = r.ReleaseVersion,
        ["contractVersion"] = r.ContractVersion,
        ["status"] = active?.ReleaseVersion == r.ReleaseVersion ? "ACTIVE" : "REGISTERED",
        ["contentDigest"] = r.ContentDigest,
        ["descriptor"] = JsonNode.Parse(r.DescriptorJson),
        ["artifacts"] = JsonNode.Parse(r.ArtifactsJson),
        ["registeredBy"] = r.RegisteredBy,
        ["registeredAt"] = Time(r.RegisteredAt),
    };

    private static JsonObject ActivationDto(ActivationEvent e) => new()
    {
        ["activationId"] = e.Id,
        ["releaseVersion"] = e.ReleaseVersion,
        ["previousActivationId"] = e.PreviousEventId,
        ["previousReleaseVersion"] = e.PreviousReleaseVersion,
        ["actor"] = e.Actor,
        ["reason"] = e.Reason,
        ["activatedAt"] = Time(e.ActivatedAt),
    };

    private static JsonObject With(this JsonObject o, string key, JsonNode? value)
    {
        o[key] = value;
        return o;
    }

    private static string Time(long unixMs) => DateTimeOffset.FromUnixTimeMilliseconds(unixMs).ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);

    private static string ETag(long id) => $"\"{id}\"";

    /// <summary>If-Match: a quoted activation id (from an ETag), or <c>"0"</c> for "nothing active yet"; absent: null.</summary>
    private static long? IfMatch(HttpRequest request)
    {
        var header = request.Headers.IfMatch.ToString();
        if (header.Length == 0)
        {
            return null;
        }

        var value = header.Trim();
        if (value.StartsWith("W/", StringComparison.Ordinal))
        {
            value = value[2..];
        }

        return value.Length > 2 && value[0] == '"' && value[^1] == '"' && long.TryParse(value[1..^1], NumberStyles.None, CultureInfo.InvariantCulture, out var id)
            ? id
            : throw new ProblemException(400, ProblemCodes.InvalidRequest, $"If-Match must be the active release's ETag (a quoted activation id such as \"12\", or \"0\" when none is active), not {header}");
    }

    private static (long After, int Limit) Paging(HttpRequest request, string kind)
    {
        var limit = DefaultLimit;
        if (request.Query.TryGetValue("limit", out var l) && (!int.TryParse(l, NumberStyles.None, CultureInfo.InvariantCulture, out limit) || limit < 1 || limit > MaxLimit))
        {
            throw new ProblemException(400, ProblemCodes.InvalidRequest, $"limit must be an integer from 1 to {MaxLimit}, not '{l}'");
        }

        long after = 0;
        if (request.Query.TryGetValue("cursor", out var c))
        {
            if (DecodeCursor(c.ToString(), kind) is not { } text || !long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out after))
            {
                throw new ProblemException(400, ProblemCodes.InvalidRequest, "cursor is not one this listing returned (pass nextCursor unchanged)");
            }
        }

        return (after, limit);
    }

    private static string? Cursor(string kind, long? after) => after is { } a ? EncodeCursor(kind, a.ToString(CultureInfo.InvariantCulture)) : null;

    private static string EncodeCursor(string kind, string value) =>
        Convert.ToBase64String(Encoding.UTF8.GetBytes($"{kind}:{value}")).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    /// <summary>The value of a cursor of <paramref name="kind"/>, or null when it is not one.</summary>
    private static string? DecodeCursor(string cursor, string kind)
    {
        try
        {
            var text = Encoding.UTF8.GetString(Convert.FromBase64String(cursor.Replace('-', '+').Replace('_', '/').PadRight((cursor.Length + 3) / 4 * 4, '=')));
            return text.StartsWith(kind + ":", StringComparison.Ordinal) && text.Length > kind.Length + 1 ? text[(kind.Length + 1)..] : null;
        }
        catch (FormatException)
        {
            return null;
        }
    }

    private static string Text(JsonNode node, string name) =>
        node is JsonValue v && v.TryGetValue<string>(out var s) && s.Length > 0 ? s : throw new ProblemException(400, ProblemCodes.InvalidRequest, $"{name} must be a non-empty string");

    private static async Task<JsonObject> ReadObjectAsync(HttpRequest request, CancellationToken ct, bool allowEmpty = false)
    {
        if (allowEmpty && request.ContentLength is 0 or null && !request.Headers.TransferEncoding.Any())
        {
            return [];
        }

        try
        {
            var node = await JsonNode.ParseAsync(request.Body, cancellationToken: ct).ConfigureAwait(false);
            return node as JsonObject ?? throw new ProblemException(400, ProblemCodes.InvalidRequest, "the body must be a JSON object");
        }
        catch (JsonException e)
        {
            throw new ProblemException(400, ProblemCodes.InvalidRequest, $"the body is not JSON: {e.Message}");
        }
    }

    /// <summary>Checks the bearer token (401), its role (403) and its tenant (403), and the ids in the path (400).</summary>
    private sealed class TokenFilter(CoordinatorTokens tokens, params Role[] roles) : IEndpointFilter
    {
        public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
        {
            var http = context.HttpContext;
            var header = http.Request.Headers.Authorization.ToString();
            var principal = header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? tokens.Authenticate(header[7..].Trim()) : null;
            if (principal is null)
            {
                http.Response.Headers.WWWAuthenticate = "Bearer";
                return Problem.Result(401, ProblemCodes.Unauthenticated, header.Length == 0 ? "missing bearer token (send 'Authorization: Bearer <token>')" : "invalid bearer token", http.Request.Path);
            }

            if (!roles.Contains(principal.Role))
            {
                return Problem.Result(403, ProblemCodes.RoleNotAllowed, $"this token's role is '{Name(principal.Role)}'; {http.Request.Path} needs '{string.Join("' or '", roles.Select(Name))}'", http.Request.Path);
            }

            foreach (var key in new[] { "tenantId", "pipelineId", "releaseVersion", "executionId", "workerId", "interactionId", "artifactId" })
            {
                if (http.Request.RouteValues[key] is string value && !ReleaseDescriptor.Identifier().IsMatch(value))
                {
                    return Problem.Result(400, ProblemCodes.InvalidRequest, $"{key} '{value}' must be letters, digits, '.', '_' or '-' (starting with a letter or digit), at most 128", http.Request.Path);
                }
            }

            if (http.Request.RouteValues["tenantId"] is string tenant && !principal.Allows(tenant))
            {
                return Problem.Result(403, ProblemCodes.TenantNotAllowed, $"this token is not bound to tenant '{tenant}'", http.Request.Path);
            }

            http.Items[PrincipalKey] = principal;
            return await next(context).ConfigureAwait(false);
        }

        private static string Name(Role r) => CoordinatorTokens.RoleName(r);
    }
}
