using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Flowline.Cli.Commands;

/// <summary>
/// The coordinator's client verbs (docs/cli.md): <c>releases</c>, <c>executions</c>, <c>interactions</c> and
/// <c>workers</c>, each with <c>--coordinator</c>, <c>--token-file</c>, <c>--tenant</c> and <c>--json</c>.
/// </summary>
internal static class CoordinatorVerbs
{
    /// <summary>The coordinator's URL when <c>--coordinator</c> is not given.</summary>
    public const string UrlVariable = "FLOWLINE_COORDINATOR_URL";

    /// <summary>The token file when <c>--token-file</c> is not given.</summary>
    public const string TokenFileVariable = "FLOWLINE_COORDINATOR_TOKEN_FILE";

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    private sealed record Common(Option<string?> Url, Option<FileInfo?> TokenFile, Option<string> Tenant, Option<bool> Json);

    private static Common NewCommon() => new(
        new Option<string?>("--coordinator") { Description = $"The coordinator (default: {UrlVariable}, else http://127.0.0.1:8780)." },
        new Option<FileInfo?>("--token-file") { Description = $"A file holding the bearer token (default: {TokenFileVariable}, else the coordinator's generated admin.token or control-plane.token in its default data directory)." },
        new Option<string>("--tenant") { Description = "The tenant.", DefaultValueFactory = _ => "default" },
        new Option<bool>("--json") { Description = "Print the coordinator's JSON response." });

    public static IEnumerable<Command> Create()
    {
        yield return Releases();
        yield return Executions();
        yield return Interactions();
        yield return Workers();
    }

    /// <summary>A verb: its options plus the common ones; the action gets a client, the tenant and the parse result; prints the JSON or a summary line.</summary>
    private static Command Verb(string name, string description, bool admin, Func<ParseResult, CoordinatorClient, string, Task<JsonNode?>> call, Func<JsonNode?, string> text, params Symbol[] symbols)
    {
        var common = NewCommon();
        var command = new Command(name, description);
        foreach (var symbol in symbols)
        {
            switch (symbol)
            {
                case Argument a: command.Arguments.Add(a); break;
                case Option o: command.Options.Add(o); break;
            }
        }

        command.Options.Add(common.Url);
        command.Options.Add(common.TokenFile);
        command.Options.Add(common.Tenant);
        command.Options.Add(common.Json);
        command.SetAction(parse =>
        {
            try
            {
                var url = parse.GetValue(common.Url) ?? Environment.GetEnvironmentVariable(UrlVariable) ?? "http://127.0.0.1:8780";
                var tokenFile = parse.GetValue(common.TokenFile)?.FullName ?? Environment.GetEnvironmentVariable(TokenFileVariable)
                    ?? Path.Combine(Flowline.Coordinator.CoordinatorStores.DefaultDataDirectory(), admin ? "admin.token" : "control-plane.token");
                using var client = new CoordinatorClient(CoordinatorClient.Address(url), CoordinatorClient.ReadToken(tokenFile));
                var answer = call(parse, client, parse.GetValue(common.Tenant)!).GetAwaiter().GetResult();
                Console.WriteLine(parse.GetValue(common.Json) ? answer?.ToJsonString(Indented) ?? "null" : text(answer));
                return ExitCodes.Ok;
            }
            catch (Exception e) when (e is ArgumentException or CoordinatorProblemException or HttpRequestException or IOException or JsonException or TaskCanceledException or TimeoutException)
            {
                var verb = parse.CommandResult.Parent is System.CommandLine.Parsing.CommandResult parent ? $"{parent.Command.Name} {name}" : name;
                Console.Error.WriteLine($"flowline {verb}: {e.Message}");
                return ExitCodes.Failed;
            }
        });
        return command;
    }

    private static Option<string> Pipeline() => new("--pipeline") { Description = "The pipeline id.", Required = true };

    private static string Admin(string tenant, string pipeline) => $"tpf/admin/tenants/{tenant}/pipelines/{pipeline}";

    private static string Control(string tenant) => $"tpf/control-plane/tenants/{tenant}";

    private static string Items(JsonNode? answer, Func<JsonNode, string> line) =>
        (answer?["items"] is JsonArray items && items.Count > 0 ? string.Join(Environment.NewLine, items.Select(i => line(i!))) : "(none)") +
        (answer?["nextCursor"] is JsonValue next ? $"{Environment.NewLine}(more: --cursor {next})" : "");

    private static string Release(JsonNode? r) => $"{r?["releaseVersion"]}  {r?["status"]}  contract {r?["contractVersion"]}  {r?["contentDigest"]}  registered {r?["registeredAt"]} by {r?["registeredBy"]}";

    private static string Execution(JsonNode? e) =>
        $"{e?["executionId"]}  {e?["status"]}  {e?["pipelineId"]}@{e?["releaseVersion"]}  worker {e?["workerId"] ?? (JsonNode)"-"}  submitted {e?["submittedAt"]}" +
        (e?["errorCode"] is { } code ? $"  {code}: {e["errorMessage"]}" : "");

    private static string Interaction(JsonNode? i) => $"{i?["interactionId"]}  {i?["status"]}  execution {i?["executionId"]}  gate {i?["stepId"]}  {i?["requestPayload"]?.ToJsonString()}";

    private static string Worker(JsonNode? w) => $"{w?["workerId"]}  {w?["state"]}  release {w?["releaseVersion"]} (contract {w?["contractVersion"]})  at most {w?["maxExecutions"]} at once  last heartbeat {w?["lastHeartbeatAt"]}" +
        (w?["unavailableReason"] is { } why ? $"  ({why})" : "");

    private static Command Releases()
    {
        var descriptor = new Argument<FileInfo>("descriptor") { Description = "The pipeline-release.json (its artifacts, at relative uris, are uploaded in the body)." };
        var byPath = new Option<bool>("--by-path") { Description = "Send only the descriptor's absolute path: the coordinator reads it and its artifacts from its own disk (under its --release-root)." };
        var p1 = Pipeline();
        var register = Verb("register", "Register a release (upload its descriptor and artifacts).", true, async (parse, c, tenant) =>
        {
            var file = parse.GetValue(descriptor)!;
            JsonObject body;
            if (parse.GetValue(byPath))
            {
                body = new JsonObject { ["releaseDescriptorPath"] = file.FullName };
            }
            else
            {
                var json = JsonNode.Parse(await File.ReadAllTextAsync(file.FullName).ConfigureAwait(false)) as JsonObject ?? throw new ArgumentException($"{file}: not a JSON object");
                var contents = new JsonObject();
                foreach (var artifact in (json["artifacts"] as JsonArray ?? []).OfType<JsonObject>().Where(a => (string?)a["kind"] != "container-image"))
                {
                    var uri = (string?)artifact["uri"] ?? "";
                    if (uri.Contains("://", StringComparison.Ordinal) || Path.IsPathRooted(uri))
                    {
                        throw new ArgumentException($"{file}: artifact '{artifact["artifactId"]}' has uri '{uri}'; uploads need paths relative to the descriptor (or use --by-path)");
                    }

                    contents[(string)artifact["artifactId"]!] = Convert.ToBase64String(await File.ReadAllBytesAsync(Path.Combine(file.DirectoryName!, uri)).ConfigureAwait(false));
                }

                body = new JsonObject { ["descriptor"] = json, ["artifacts"] = contents };
            }

            return await c.PostAsync($"{Admin(tenant, parse.GetValue(p1)!)}/releases/register", body, CancellationToken.None).ConfigureAwait(false);
        }, Release, descriptor, byPath, p1);

        var p2 = Pipeline();
        var list = Verb("list", "List the releases of a pipeline.", true, (parse, c, tenant) =>
            c.GetAsync($"{Admin(tenant, parse.GetValue(p2)!)}/releases?limit=500", CancellationToken.None), a => Items(a, Release), p2);

        var version = new Argument<string>("version") { Description = "The release version." };
        var p3 = Pipeline();
        var get = Verb("get", "Show a release.", true, (parse, c, tenant) =>
            c.GetAsync($"{Admin(tenant, parse.GetValue(p3)!)}/releases/{parse.GetValue(version)}", CancellationToken.None), Release, version, p3);

        var p4 = Pipeline();
        var active = Verb("active", "Show the active release of a pipeline.", true, (parse, c, tenant) =>
            c.GetAsync($"{Admin(tenant, parse.GetValue(p4)!)}/releases/active", CancellationToken.None), Release, p4);

        var activateVersion = new Argument<string>("version") { Description = "The release version to activate (an older one rolls back)." };
        var reason = new Option<string?>("--reason") { Description = "Why (recorded in the activation log)." };
        var ifMatch = new Option<string?>("--if-match") { Description = "Activate only if the active head is still this ETag (\"0\": nothing active)." };
        var p5 = Pipeline();
        var activate = Verb("activate", "Activate a release (append to the activation log).", true, (parse, c, tenant) =>
            c.SendAsync(HttpMethod.Post, $"{Admin(tenant, parse.GetValue(p5)!)}/releases/{parse.GetValue(activateVersion)}/activate",
                parse.GetValue(reason) is { } r ? new JsonObject { ["reason"] = r } : new JsonObject(), CancellationToken.None,
                parse.GetValue(ifMatch) is { } m ? [new("If-Match", m.StartsWith('"') ? m : $"\"{m}\"")] : null),
            a => $"activated {a?["releaseVersion"]} (activation {a?["activationId"]}, previous {a?["previousReleaseVersion"] ?? (JsonNode)"none"})", activateVersion, reason, ifMatch, p5);

        return new Command("releases", "Register, list, show and activate a coordinator's releases.") { register, list, get, active, activate };
    }

    private static Command Executions()
    {
        var p1 = Pipeline();
        var release = new Option<string?>("--release") { Description = "Pin a release version (default: the active one)." };
        var duration = new Option<double?>("--duration") { Description = "Seconds to run (default: until cancelled, unless --frames)." };
        var frames = new Option<long?>("--frames") { Description = "Run until every worker processed this many frames." };
        var gate = new Option<string[]>("--gate") { Description = "A gate asked before the run goes on: ID or ID=question (repeatable)." };
        var key = new Option<string?>("--idempotency-key") { Description = "The same key with the same request returns the first execution." };
        var input = new Option<string?>("--input") { Description = "The input (JSON)." };
        var submit = Verb("submit", "Submit an execution of a pipeline's release.", false, (parse, c, tenant) =>
        {
            var run = new JsonObject();
            if (parse.GetValue(duration) is { } d)
            {
                run["durationSeconds"] = d > 0 ? d : throw new ArgumentException("--duration must be positive");
            }

            if (parse.GetValue(frames) is { } f)
            {
                run["frames"] = f > 0 ? f : throw new ArgumentException("--frames must be positive");
            }

            if (parse.GetValue(gate) is { Length: > 0 } gates)
            {
                run["gates"] = new JsonArray([.. gates.Select(g => (JsonNode)new JsonObject
                {
                    ["gateId"] = g.Split('=', 2)[0],
                    ["question"] = g.Contains('=', StringComparison.Ordinal) ? g.Split('=', 2)[1] : $"approve '{g}'?",
                })]);
            }

            var body = new JsonObject { ["pipelineId"] = parse.GetValue(p1), ["run"] = run };
            if (parse.GetValue(release) is { } r)
            {
                body["releaseVersion"] = r;
            }

            if (parse.GetValue(input) is { } i)
            {
                body["input"] = JsonNode.Parse(i);
            }

            if (parse.GetValue(key) is { } k)
            {
                body["idempotencyKey"] = k;
            }

            return c.PostAsync($"{Control(tenant)}/executions", body, CancellationToken.None);
        }, a => Execution(a) + ((bool?)a?["duplicate"] == true ? "  (duplicate: the key's first execution)" : ""), p1, release, duration, frames, gate, key, input);

        var id1 = new Argument<string>("execution") { Description = "The execution id." };
        var status = Verb("status", "Show an execution.", false, (parse, c, tenant) =>
            c.GetAsync($"{Control(tenant)}/executions/{parse.GetValue(id1)}", CancellationToken.None), Execution, id1);

        var id2 = new Argument<string>("execution") { Description = "The execution id." };
        var result = Verb("result", "Print an execution's result (JSON; null until it ends).", false, (parse, c, tenant) =>
            c.GetAsync($"{Control(tenant)}/executions/{parse.GetValue(id2)}/result", CancellationToken.None), a => a?.ToJsonString(Indented) ?? "null", id2);

        var id3 = new Argument<string>("execution") { Description = "The execution id." };
        var cancel = Verb("cancel", "Cancel an execution (a running one is stopped by its agent).", false, (parse, c, tenant) =>
            c.PostAsync($"{Control(tenant)}/executions/{parse.GetValue(id3)}/cancel", null, CancellationToken.None), Execution, id3);

        var listStatus = new Option<string?>("--status") { Description = "Only executions in this status." };
        var listPipeline = new Option<string?>("--pipeline") { Description = "Only this pipeline's executions." };
        var limit = new Option<int>("--limit") { Description = "At most this many (newest first).", DefaultValueFactory = _ => 50 };
        var cursor = new Option<string?>("--cursor") { Description = "Continue after the page that printed it (its nextCursor)." };
        var list = Verb("list", "List the tenant's latest executions.", false, (parse, c, tenant) =>
        {
            var query = $"limit={parse.GetValue(limit)}" + (parse.GetValue(listStatus) is { } s ? $"&status={Uri.EscapeDataString(s)}" : "") + (parse.GetValue(listPipeline) is { } p ? $"&pipelineId={Uri.EscapeDataString(p)}" : "")
                + (parse.GetValue(cursor) is { } k ? $"&cursor={Uri.EscapeDataString(k)}" : "");
            return c.GetAsync($"{Control(tenant)}/executions?{query}", CancellationToken.None);
        }, a => Items(a, Execution), listStatus, listPipeline, limit, cursor);

        var id4 = new Argument<string>("execution") { Description = "The execution id." };
        var timeout = new Option<double>("--timeout") { Description = "Seconds to wait at most.", DefaultValueFactory = _ => 300 };
        var wait = Verb("wait", "Wait until an execution ends (or waits for an interaction); exit 1 on timeout.", false, async (parse, c, tenant) =>
        {
            var deadline = DateTime.UtcNow.AddSeconds(parse.GetValue(timeout));
            while (true)
            {
                var e = await c.GetAsync($"{Control(tenant)}/executions/{parse.GetValue(id4)}", CancellationToken.None).ConfigureAwait(false);
                if ((string?)e?["status"] is "SUCCEEDED" or "FAILED" or "CANCELLED" or "AWAITING_INTERACTION")
                {
                    return e;
                }

                if (DateTime.UtcNow > deadline)
                {
                    throw new TimeoutException($"execution {parse.GetValue(id4)} is still {e?["status"]} after {parse.GetValue(timeout)} s");
                }

                await Task.Delay(250).ConfigureAwait(false);
            }
        }, Execution, id4, timeout);

        return new Command("executions", "Submit, show, list, wait for and cancel a coordinator's executions.") { submit, status, result, cancel, list, wait };
    }

    private static Command Interactions()
    {
        var execution = new Option<string?>("--execution") { Description = "Only this execution's interactions." };
        var pending = Verb("pending", "List the tenant's interactions waiting for an answer.", false, (parse, c, tenant) =>
            c.GetAsync($"{Control(tenant)}/interactions/pending" + (parse.GetValue(execution) is { } e ? $"?executionId={Uri.EscapeDataString(e)}" : ""), CancellationToken.None),
            a => Items(a, Interaction), execution);

        var id = new Argument<string>("interaction") { Description = "The interaction id." };
        var answer = new Option<string?>("--answer") { Description = "The answer (JSON), for example '{\"approved\": true}'." };
        var reject = new Option<bool>("--reject") { Description = "Answer {\"approved\": false} (the default answer is {\"approved\": true})." };
        var complete = Verb("complete", "Answer an interaction: the waiting pipeline goes on.", false, (parse, c, tenant) =>
            c.PostAsync($"{Control(tenant)}/interactions/complete", new JsonObject
            {
                ["interactionId"] = parse.GetValue(id),
                ["responsePayload"] = parse.GetValue(answer) is { } a ? JsonNode.Parse(a) : new JsonObject { ["approved"] = !parse.GetValue(reject) },
            }, CancellationToken.None),
            a => $"{Interaction(a)}  answered {a?["responsePayload"]?.ToJsonString()}" + ((bool?)a?["duplicate"] == true ? "  (duplicate)" : ""), id, answer, reject);

        return new Command("interactions", "List and answer a coordinator's pending interactions.") { pending, complete };
    }

    private static Command Workers()
    {
        var p1 = Pipeline();
        var list = Verb("list", "List the agents of a pipeline and their states.", true, (parse, c, tenant) =>
            c.GetAsync($"{Admin(tenant, parse.GetValue(p1)!)}/workers?limit=500", CancellationToken.None), a => Items(a, Worker), p1);

        Command Change(string verb, string description)
        {
            var id = new Argument<string>("worker") { Description = "The worker (agent) id." };
            var p = Pipeline();
            return Verb(verb, description, true, (parse, c, tenant) =>
                c.PostAsync($"{Admin(tenant, parse.GetValue(p)!)}/workers/{parse.GetValue(id)}/{verb}", null, CancellationToken.None), Worker, id, p);
        }

        return new Command("workers", "List, drain and undrain a coordinator's agents.")
        {
            list,
            Change("drain", "Drain an agent: it takes no new executions until undrained."),
            Change("undrain", "Undrain an agent."),
        };
    }
}
