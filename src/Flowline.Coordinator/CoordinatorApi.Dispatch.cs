using System.Globalization;
using System.Text.Json.Nodes;
using Flowline.Coordinator.Storage;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Flowline.Coordinator;

/// <summary>Claims, reports, cancellation, interactions and artifact downloads (docs/coordinator.md).</summary>
public static partial class CoordinatorApi
{
    /// <summary>The largest page of pending interactions (the default is 100, as TPF's).</summary>
    public const int MaxInteractionLimit = 1000;

    private static readonly string[] ReportMembers = ["epoch", "status", "result", "errorCode", "errorMessage"];

    private static void MapAgentEndpoints(IEndpointRouteBuilder app, ICoordinatorStore store, ReleaseRegistrar registrar, CoordinatorTokens tokens, TimeSpan staleAfter)
    {
        var agent = app.MapGroup("/tpf/agent/tenants/{tenantId}/pipelines/{pipelineId}/workers/{workerId}").AddEndpointFilter(new TokenFilter(tokens, Role.Agent, Role.Admin));

        agent.MapPost("/claim", async (string tenantId, string pipelineId, string workerId, CancellationToken ct) =>
        {
            ExecutionRecord? claimed;
            try
            {
                claimed = await store.ClaimAsync(tenantId, pipelineId, workerId, staleAfter, ct).ConfigureAwait(false);
            }
            catch (WorkerNotAdmittedException e) when (e.State is null)
            {
                throw WorkerNotFound(pipelineId, workerId);
            }
            catch (WorkerNotAdmittedException e)
            {
                throw new ProblemException(409, ProblemCodes.WorkerNotHealthy, e.Message);
            }
            catch (WorkerAtCapacityException e)
            {
                throw new ProblemException(409, ProblemCodes.WorkerAtCapacity, e.Message, new JsonObject { ["held"] = e.Held, ["maxExecutions"] = e.MaxExecutions });
            }

            if (claimed is null)
            {
                return Results.NoContent();
            }

            var release = (await store.GetReleaseAsync(tenantId, pipelineId, claimed.ReleaseVersion, ct).ConfigureAwait(false))!;
            return Results.Json(ExecutionDto(claimed)
                .With("request", JsonNode.Parse(claimed.RequestJson))
                .With("artifacts", JsonNode.Parse(release.ArtifactsJson)));
        });

        agent.MapPost("/executions/{executionId}/report", async (string tenantId, string workerId, string executionId, HttpContext context, CancellationToken ct) =>
        {
            var body = await ReadObjectAsync(context.Request, ct).ConfigureAwait(false);
            if (body.FirstOrDefault(m => !ReportMembers.Contains(m.Key)) is { Key: { } unknown })
            {
                throw new ProblemException(400, ProblemCodes.InvalidRequest, $"{unknown}: unknown member; members are {string.Join(", ", ReportMembers)}");
            }

            var epoch = Epoch(body);
            var status = body["status"] is { } s ? Text(s, "status") : throw new ProblemException(400, ProblemCodes.InvalidRequest, "status is required");
            if (status is not (ExecutionStatus.Running or ExecutionStatus.Succeeded or ExecutionStatus.Failed or ExecutionStatus.Cancelled))
            {
                throw new ProblemException(400, ProblemCodes.InvalidRequest, $"status must be RUNNING, SUCCEEDED, FAILED or CANCELLED, not '{status}' (AWAITING_INTERACTION comes from asking a question)");
            }

            var result = body["result"] is { } r ? Canonical(r)!.ToJsonString() : null;
            var code = body["errorCode"] is { } c ? Text(c, "errorCode") : null;
            var message = body["errorMessage"] is { } m ? Text(m, "errorMessage") : null;
            var updated = await Fenced(() => store.ReportAsync(new ExecutionReport(tenantId, executionId, workerId, epoch, status, result, code, message), ct)).ConfigureAwait(false)
                ?? throw ExecutionNotFound(executionId);
            return Results.Json(ExecutionDto(updated));
        });

        agent.MapPost("/executions/{executionId}/interactions", async (string tenantId, string workerId, string executionId, HttpContext context, CancellationToken ct) =>
        {
            var body = await ReadObjectAsync(context.Request, ct).ConfigureAwait(false);
            if (body.FirstOrDefault(m => m.Key is not ("epoch" or "gateId" or "request")) is { Key: { } unknown })
            {
                throw new ProblemException(400, ProblemCodes.InvalidRequest, $"{unknown}: unknown member; members are epoch, gateId, request");
            }

            var epoch = Epoch(body);
            var gate = body["gateId"] is { } g ? Text(g, "gateId") : throw new ProblemException(400, ProblemCodes.InvalidRequest, "gateId is required");
            if (!ReleaseDescriptor.Identifier().IsMatch(gate))
            {
                throw new ProblemException(400, ProblemCodes.InvalidRequest, $"gateId '{gate}' must be letters, digits, '.', '_' or '-', at most 128");
            }

            var request = Canonical(body["request"] ?? new JsonObject())!.ToJsonString();
            var interaction = await Fenced(() => store.OpenInteractionAsync(tenantId, executionId, workerId, epoch, gate, request, ct)).ConfigureAwait(false)
                ?? throw ExecutionNotFound(executionId);
            return Results.Json(InteractionDto(interaction));
        });

        agent.MapGet("/interactions/{interactionId}", async (string tenantId, string interactionId, CancellationToken ct) =>
            Results.Json(InteractionDto(await store.GetInteractionAsync(tenantId, interactionId, ct).ConfigureAwait(false) ?? throw InteractionNotFound(interactionId))));

        agent.MapGet("/releases/{releaseVersion}/artifacts/{artifactId}", async (string tenantId, string pipelineId, string releaseVersion, string artifactId, HttpContext context, CancellationToken ct) =>
        {
            var release = await store.GetReleaseAsync(tenantId, pipelineId, releaseVersion, ct).ConfigureAwait(false) ?? throw NotFound(pipelineId, releaseVersion);
            var artifact = (JsonNode.Parse(release.ArtifactsJson) as JsonArray ?? []).OfType<JsonObject>().FirstOrDefault(a => (string?)a["artifactId"] == artifactId)
                ?? throw new ProblemException(404, ProblemCodes.ArtifactNotFound, $"release '{releaseVersion}' has no artifact '{artifactId}'");
            var digest = (string)artifact["digest"]!;
            var path = registrar.Artifacts.PathOf(digest);
            if ((string?)artifact["kind"] == ArtifactKinds.ContainerImage || !File.Exists(path))
            {
                throw new ProblemException(404, ProblemCodes.ArtifactNotFound, $"artifact '{artifactId}' of release '{releaseVersion}' is not in the coordinator's artifact store (a container image is pulled from its registry)");
            }

            context.Response.Headers["Flowline-Artifact-Digest"] = digest;
            return Results.File(path, "application/octet-stream", enableRangeProcessing: false);
        });

        // The release an agent should run when it is not told: the active one, with its artifacts.
        app.MapGroup("/tpf/agent/tenants/{tenantId}/pipelines/{pipelineId}").AddEndpointFilter(new TokenFilter(tokens, Role.Agent, Role.Admin))
            .MapGet("/releases/{releaseVersion}", async (string tenantId, string pipelineId, string releaseVersion, CancellationToken ct) =>
            {
                var version = releaseVersion;
                if (version == "active")
                {
                    version = (await store.GetActiveAsync(tenantId, pipelineId, ct).ConfigureAwait(false)
                        ?? throw new ProblemException(404, ProblemCodes.NoActiveRelease, $"pipeline '{pipelineId}' of tenant '{tenantId}' has no active release")).ReleaseVersion;
                }

                var release = await store.GetReleaseAsync(tenantId, pipelineId, version, ct).ConfigureAwait(false) ?? throw NotFound(pipelineId, version);
                return Results.Json(await ReleaseDto(store, release, ct).ConfigureAwait(false));
            });

        var tenant = app.MapGroup("/tpf/control-plane/tenants/{tenantId}").AddEndpointFilter(new TokenFilter(tokens, Role.ControlPlane));

        tenant.MapPost("/executions/{executionId}/cancel", async (string tenantId, string executionId, CancellationToken ct) =>
        {
            try
            {
                return Results.Json(ExecutionDto(await store.CancelAsync(tenantId, executionId, ct).ConfigureAwait(false) ?? throw ExecutionNotFound(executionId)));
            }
            catch (ExecutionStateException e)
            {
                throw new ProblemException(409, ProblemCodes.ExecutionTerminal, e.Message);
            }
        });

        tenant.MapGet("/executions", async (string tenantId, HttpRequest request, CancellationToken ct) =>
        {
            var limit = Limit(request, DefaultLimit, MaxLimit);
            string? pipelineId = request.Query["pipelineId"], status = request.Query["status"];
            if (status is not null && !ExecutionStatuses.Contains(status))
            {
                throw new ProblemException(400, ProblemCodes.InvalidRequest, $"status must be one of {string.Join(", ", ExecutionStatuses)}, not '{status}'");
            }

            ExecutionKey? after = null;
            if (request.Query.TryGetValue("cursor", out var c))
            {
                after = DecodeExecutionCursor(c.ToString()) ?? throw new ProblemException(400, ProblemCodes.InvalidRequest, "cursor is not one the executions listing returned (pass nextCursor unchanged)");
            }

            var (items, next) = await store.ListExecutionsAsync(tenantId, pipelineId, status, after, limit, ct).ConfigureAwait(false);
            return Results.Json(new JsonObject
            {
                ["items"] = new JsonArray([.. items.Select(e => (JsonNode)ExecutionDto(e))]),
                ["nextCursor"] = next is null ? null : EncodeCursor("x", $"{next.SubmittedAt.ToString(CultureInfo.InvariantCulture)}:{next.ExecutionId}"),
            });
        });

        tenant.MapGet("/interactions/pending", async (string tenantId, HttpRequest request, CancellationToken ct) =>
        {
            var limit = Limit(request, 100, MaxInteractionLimit);
            var items = await store.ListPendingInteractionsAsync(tenantId, request.Query["executionId"].FirstOrDefault(), limit, ct).ConfigureAwait(false);
            return Results.Json(new JsonObject { ["items"] = new JsonArray([.. items.Select(i => (JsonNode)InteractionDto(i))]) });
        });

        tenant.MapPost("/interactions/complete", async (string tenantId, HttpContext context, CancellationToken ct) =>
        {
            var body = await ReadObjectAsync(context.Request, ct).ConfigureAwait(false);
            if (body.FirstOrDefault(m => m.Key is not ("interactionId" or "responsePayload" or "actor" or "idempotencyKey")) is { Key: { } unknown })
            {
                throw new ProblemException(400, ProblemCodes.InvalidRequest, $"{unknown}: unknown member; members are interactionId, responsePayload, actor, idempotencyKey");
            }

            var id = body["interactionId"] is { } i ? Text(i, "interactionId") : throw new ProblemException(400, ProblemCodes.InvalidRequest, "interactionId is required (correlationId and resumeToken are not supported)");
            var response = body["responsePayload"] is { } p ? Canonical(p)!.ToJsonString() : throw new ProblemException(400, ProblemCodes.InvalidRequest, "responsePayload is required");
            var actor = Principal(context).Name + (body["actor"] is { } a ? " (" + Text(a, "actor") + ")" : "");
            try
            {
                var (interaction, duplicate) = await store.CompleteInteractionAsync(tenantId, id, response, actor, ct).ConfigureAwait(false) ?? throw InteractionNotFound(id);
                return Results.Json(InteractionDto(interaction).With("duplicate", duplicate));
            }
            catch (InteractionTerminalException e)
            {
                throw new ProblemException(409, ProblemCodes.InteractionTerminal, e.Message);
            }
        });
    }

    /// <summary>Maps a stale lease to 409 STALE_EPOCH and an illegal move to 409 EXECUTION_TERMINAL or ILLEGAL_TRANSITION.</summary>
    private static async Task<T> Fenced<T>(Func<Task<T>> work)
    {
        try
        {
            return await work().ConfigureAwait(false);
        }
        catch (StaleEpochException e)
        {
            throw new ProblemException(409, ProblemCodes.StaleEpoch, e.Message, new JsonObject { ["currentEpoch"] = e.Current });
        }
        catch (ExecutionStateException e)
        {
            throw new ProblemException(409, e.Terminal ? ProblemCodes.ExecutionTerminal : ProblemCodes.IllegalTransition, e.Message);
        }
    }

    private static long Epoch(JsonObject body) =>
        body["epoch"] is JsonValue v && v.TryGetValue<long>(out var epoch) && epoch > 0
            ? epoch
            : throw new ProblemException(400, ProblemCodes.InvalidRequest, "epoch is required: the leaseEpoch the claim returned (a positive integer)");

    private static readonly string[] ExecutionStatuses =
        [ExecutionStatus.Queued, ExecutionStatus.Dispatched, ExecutionStatus.Running, ExecutionStatus.AwaitingInteraction, ExecutionStatus.Succeeded, ExecutionStatus.Failed, ExecutionStatus.Cancelled];

    /// <summary>The key in an executions cursor (<c>x:</c> submission time <c>:</c> id), or null when it is not one.</summary>
    private static ExecutionKey? DecodeExecutionCursor(string cursor) =>
        DecodeCursor(cursor, "x") is { } text && text.IndexOf(':', StringComparison.Ordinal) is > 0 and var colon
            && long.TryParse(text.AsSpan(0, colon), NumberStyles.None, CultureInfo.InvariantCulture, out var at)
            && text[(colon + 1)..] is { Length: > 0 and <= 64 } id
            ? new ExecutionKey(at, id)
            : null;

    private static int Limit(HttpRequest request, int fallback, int max)
    {
        var limit = fallback;
        return request.Query.TryGetValue("limit", out var l) && (!int.TryParse(l, NumberStyles.None, CultureInfo.InvariantCulture, out limit) || limit < 1 || limit > max)
            ? throw new ProblemException(400, ProblemCodes.InvalidRequest, $"limit must be an integer from 1 to {max}, not '{l}'")
            : limit;
    }

    private static ProblemException InteractionNotFound(string interactionId) =>
        new(404, ProblemCodes.InteractionNotFound, $"this tenant has no interaction '{interactionId}'");

    private static JsonObject InteractionDto(InteractionRecord i) => new()
    {
        ["interactionId"] = i.InteractionId,
        ["executionId"] = i.ExecutionId,
        ["stepId"] = i.GateId,
        ["status"] = i.Status,
        ["requestPayload"] = JsonNode.Parse(i.RequestJson),
        ["responsePayload"] = i.ResponseJson is null ? null : JsonNode.Parse(i.ResponseJson),
        ["actor"] = i.Actor,
        ["createdAt"] = Time(i.CreatedAt),
        ["completedAt"] = i.CompletedAt is { } c ? Time(c) : null,
    };
}
