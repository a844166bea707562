using System.Runtime.ExceptionServices;
using System.Text.Json.Nodes;
using Flowline.Documents;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Flowline.ControlPlane;

/// <summary>
/// The browser console (docs/console.md): its files at <c>/</c> and <c>/console/...</c>, and the endpoints
/// it needs beyond shmpipeline's API, which any client may use too: <c>GET /auth</c>, <c>GET /kinds</c>,
/// <c>GET /document/yaml</c>, <c>POST /document/yaml/validate</c>, <c>GET /servers</c>, <c>POST /servers</c> and <c>DELETE /servers/{pid}</c>.
/// </summary>
internal static class ConsoleApi
{
    /// <summary>Maps the console's files (no token: they hold no data) and endpoints (scoped as their neighbours).</summary>
    public static void MapConsoleEndpoints(this IEndpointRouteBuilder app, ControlService service, AccessTokens tokens, ServerLauncher launcher, ServerDirectory? directory)
    {
        var assets = ConsoleAssets.Instance;
        app.MapGet("/", (Delegate)((HttpContext context) => assets.Serve(context, "index.html"))).Produces(StatusCodes.Status200OK, contentType: "text/html");
        app.MapGet("/console/{**path}", (HttpContext context, string path) => assets.Serve(context, path));

        var read = app.MapGroup("").AddEndpointFilter(new ControlApi.ScopeFilter(tokens, Scope.Read));
        var admin = app.MapGroup("").AddEndpointFilter(new ControlApi.ScopeFilter(tokens, Scope.Admin));

        read.MapGet("/auth", (HttpContext context) => ControlApi.Reply(service, () => new JsonObject
        {
            ["token_required"] = tokens.Required,
            ["scope"] = (tokens.Required ? tokens.ScopeOf(BearerToken(context)) ?? Scope.Read : Scope.Admin).ToString().ToLowerInvariant(),
        }));
        read.MapGet("/document/yaml", (Delegate)((HttpContext context) =>
        {
            var (yaml, revision, isSource) = service.DocumentYaml();
            context.Response.Headers.CacheControl = "no-store";
            context.Response.Headers["X-Document-Source"] = isSource ? "text" : "generated";
            context.Response.Headers["X-Document-Revision"] = revision.ToString(System.Globalization.CultureInfo.InvariantCulture);
            return Results.Text(yaml, "application/yaml; charset=utf-8");
        })).Produces(StatusCodes.Status200OK, contentType: "application/yaml");
        read.MapGet("/kinds", () => ControlApi.Reply(service, () => KindsJson.All(service.Kinds)));
        read.MapPost("/document/yaml/validate", async (HttpRequest request, CancellationToken ct) =>
            await GuardAsync(service, async () => ValidateYaml(service, await ReadYamlAsync(service, request, ct).ConfigureAwait(false))).ConfigureAwait(false));
        read.MapGet("/servers", () => ControlApi.Reply(service, () => new JsonObject
        {
            ["self_pid"] = Environment.ProcessId,
            ["directory"] = directory?.Path,
            ["servers"] = new JsonArray([.. (directory?.List() ?? []).Select(r => (JsonNode)r.ToJson())]),
        }));
        admin.MapPost("/servers", async (HttpRequest request, CancellationToken ct) => await GuardAsync(service, async () =>
        {
            var body = await ControlJson.ReadObjectAsync(request, service.MaxDocumentBytes, ct).ConfigureAwait(false);
            return await launcher.LaunchAsync(ControlJson.Text(body, "path", required: true)!, ControlJson.Text(body, "namespace", required: false), ct).ConfigureAwait(false);
        }).ConfigureAwait(false));
        admin.MapDelete("/servers/{pid:int}", async (int pid, CancellationToken ct) =>
            await GuardAsync(service, () => launcher.KillAsync(pid, ct)).ConfigureAwait(false));
    }

    private static string BearerToken(HttpContext context)
    {
        var header = context.Request.Headers.Authorization.ToString();
        return header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? header["Bearer ".Length..].Trim() : "";
    }

    private static async Task<string> ReadYamlAsync(ControlService service, HttpRequest request, CancellationToken cancellationToken)
    {
        // Not a type a page of another site may send without asking first (CORS preflight), as for JSON bodies.
        var type = (request.ContentType ?? "").Split(';', 2)[0].Trim();
        if (type is not ("application/yaml" or "application/x-yaml" or "text/yaml"))
        {
            throw new ControlException(415, $"the request body must be sent as application/yaml, not '{(type.Length == 0 ? "(no Content-Type)" : type)}'");
        }

        return await ControlJson.ReadTextAsync(request, service.MaxDocumentBytes, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// <c>POST /document/yaml/validate</c>: checks YAML text as a file would be checked (relative paths
    /// against the served document's directory): <c>{valid, errors, error_count, document}</c>, each error
    /// with its <c>line</c> and <c>column</c> (null when unknown), <c>path</c> and <c>message</c>; <c>document</c>
    /// is the JSON a <c>PUT /document</c> takes (null when invalid).
    /// </summary>
    private static JsonObject ValidateYaml(ControlService service, string yaml)
    {
        var check = PipelineDocument.Check(yaml, null, service.ConfigBasePath);
        var errors = check.Errors.Take(ControlService.MaxReportedErrors).Select(e => (JsonNode)new JsonObject
        {
            ["line"] = e.Position.IsKnown ? e.Position.Line : null,
            ["column"] = e.Position.IsKnown ? e.Position.Column : null,
            ["path"] = e.Path,
            ["message"] = e.Message,
            ["text"] = e.ToString(),
        });
        return new JsonObject
        {
            ["valid"] = check.IsValid,
            ["errors"] = new JsonArray([.. errors]),
            ["error_count"] = Math.Max(check.TotalErrors, check.Errors.Count),
            ["document"] = check.Pipeline is { } p && check.IsValid ? PipelineDocument.ToJson(p.Spec) : null,
        };
    }

    /// <summary>Runs <paramref name="action"/>; what it throws is answered as <see cref="ControlApi"/> answers it.</summary>
    private static async Task<IResult> GuardAsync(ControlService service, Func<Task<JsonObject>> action)
    {
        JsonObject result;
        try
        {
            result = await action().ConfigureAwait(false);
        }
#pragma warning disable CA1031 // Mapped to a status by ControlApi.Guard, which rethrows nothing.
        catch (Exception e)
#pragma warning restore CA1031
        {
            return ControlApi.Guard(service, () =>
            {
                ExceptionDispatchInfo.Throw(e);
                return null!;
            });
        }

        return ControlApi.Json(200, result);
    }
}
