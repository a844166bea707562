using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;

namespace Flowline.Coordinator;

/// <summary>The stable codes of the coordinator's errors (the <c>code</c> member of every problem+json body).</summary>
public static class ProblemCodes
{
    /// <summary>400: the request is malformed (body, query, header).</summary>
    public const string InvalidRequest = "INVALID_REQUEST";

    /// <summary>401: no bearer token, or not one the coordinator knows.</summary>
    public const string Unauthenticated = "UNAUTHENTICATED";

    /// <summary>403: the token's role does not allow this endpoint.</summary>
    public const string RoleNotAllowed = "ROLE_NOT_ALLOWED";

    /// <summary>403: the token is not bound to this tenant.</summary>
    public const string TenantNotAllowed = "TENANT_NOT_ALLOWED";

    /// <summary>404: no such path.</summary>
    public const string NotFound = "NOT_FOUND";

    /// <summary>404: no release of that version.</summary>
    public const string ReleaseNotFound = "RELEASE_NOT_FOUND";

    /// <summary>404 (GET .../releases/active) or 409 (submitting an execution): the pipeline has no active release.</summary>
    public const string NoActiveRelease = "NO_ACTIVE_RELEASE";

    /// <summary>404: the pipeline has no worker of that id.</summary>
    public const string WorkerNotFound = "WORKER_NOT_FOUND";

    /// <summary>404: the tenant has no execution of that id.</summary>
    public const string ExecutionNotFound = "EXECUTION_NOT_FOUND";

    /// <summary>409: an idempotency key reused with a different request.</summary>
    public const string IdempotencyConflict = "IDEMPOTENCY_CONFLICT";

    /// <summary>405: the path exists, not with this method.</summary>
    public const string MethodNotAllowed = "METHOD_NOT_ALLOWED";

    /// <summary>409: the version is registered with other content.</summary>
    public const string ReleaseImmutable = "RELEASE_IMMUTABLE";

    /// <summary>412: If-Match does not name the current active head.</summary>
    public const string ActivationConflict = "ACTIVATION_CONFLICT";

    /// <summary>413: the body is larger than the coordinator accepts.</summary>
    public const string PayloadTooLarge = "PAYLOAD_TOO_LARGE";

    /// <summary>422: the descriptor does not follow its schema.</summary>
    public const string InvalidDescriptor = "INVALID_DESCRIPTOR";

    /// <summary>422: an artifact's content does not have the digest the descriptor pins.</summary>
    public const string DigestMismatch = "DIGEST_MISMATCH";

    /// <summary>422: an artifact named by the descriptor cannot be read.</summary>
    public const string ArtifactUnavailable = "ARTIFACT_UNAVAILABLE";

    /// <summary>422: the pipeline document does not validate.</summary>
    public const string InvalidPipeline = "INVALID_PIPELINE";

    /// <summary>500: a fault of the coordinator.</summary>
    public const string Internal = "INTERNAL";

    /// <summary>503 (with Retry-After): no HEALTHY worker runs the release an execution needs.</summary>
    public const string NoHealthyWorker = "NO_HEALTHY_WORKER";

    /// <summary>409: an agent report or question carries a lease epoch (or agent) that no longer holds the execution.</summary>
    public const string StaleEpoch = "STALE_EPOCH";

    /// <summary>409: the execution already ended (SUCCEEDED, FAILED or CANCELLED).</summary>
    public const string ExecutionTerminal = "EXECUTION_TERMINAL";

    /// <summary>409: a status change the execution's state machine does not allow.</summary>
    public const string IllegalTransition = "ILLEGAL_TRANSITION";

    /// <summary>409: a DRAINING or STALE agent asked for work.</summary>
    public const string WorkerNotHealthy = "WORKER_NOT_HEALTHY";

    /// <summary>409: an agent that holds as many executions as its maxExecutions asked for another.</summary>
    public const string WorkerAtCapacity = "WORKER_AT_CAPACITY";

    /// <summary>409: an interaction already completed with another answer, or whose execution ended.</summary>
    public const string InteractionTerminal = "INTERACTION_TERMINAL";

    /// <summary>404: the tenant has no interaction of that id.</summary>
    public const string InteractionNotFound = "INTERACTION_NOT_FOUND";

    /// <summary>404: the release has no stored artifact of that id.</summary>
    public const string ArtifactNotFound = "ARTIFACT_NOT_FOUND";

    /// <summary>403: register-by-path names a file outside the directories the coordinator allows.</summary>
    public const string PathNotAllowed = "PATH_NOT_ALLOWED";

    /// <summary>503: the store cannot be reached.</summary>
    public const string StoreUnavailable = "STORE_UNAVAILABLE";
}

/// <summary>An error that becomes an RFC 9457 problem+json response.</summary>
/// <param name="status">The HTTP status.</param>
/// <param name="code">One of <see cref="ProblemCodes"/>.</param>
/// <param name="detail">What happened, for a person.</param>
/// <param name="extra">More members of the body (for example the validation errors).</param>
public sealed class ProblemException(int status, string code, string detail, JsonObject? extra = null) : Exception(detail)
{
    /// <summary>The HTTP status.</summary>
    public int Status { get; } = status;

    /// <summary>The stable code.</summary>
    public string Code { get; } = code;

    /// <summary>More members of the body.</summary>
    public JsonObject? Extra { get; } = extra;
}

/// <summary>Writes problem+json bodies.</summary>
public static class Problem
{
    private static readonly System.Text.Json.JsonSerializerOptions Relaxed = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>The media type of the bodies.</summary>
    public const string MediaType = "application/problem+json";

    /// <summary>
    /// A problem body: <c>type</c> (a URN naming the code), <c>title</c> (the status's phrase), <c>status</c>,
    /// <c>detail</c>, <c>instance</c> (the request path), <c>code</c>, and <paramref name="extra"/>'s members.
    /// </summary>
    public static IResult Result(int status, string code, string detail, string? instance, JsonObject? extra = null)
    {
        var body = new JsonObject
        {
            ["type"] = "urn:flowline:coordinator:problem:" + code.ToLowerInvariant().Replace('_', '-'),
            ["title"] = Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(status),
            ["status"] = status,
            ["detail"] = detail,
            ["code"] = code,
        };
        if (instance is not null)
        {
            body["instance"] = instance;
        }

        if (extra is not null)
        {
            foreach (var (key, value) in extra)
            {
                body[key] = value?.DeepClone();
            }
        }

        return Results.Text(body.ToJsonString(Relaxed), MediaType, System.Text.Encoding.UTF8, status);
    }

    /// <summary>The response of <paramref name="e"/>.</summary>
    public static IResult Of(ProblemException e, HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(e);
        ArgumentNullException.ThrowIfNull(context);
        return Result(e.Status, e.Code, e.Message, context.Request.Path, e.Extra);
    }
}
