using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Flowline.Documents;
using Flowline.Runtime;
using Flowline.SharedMemory;
using Flowline.Status;

namespace Flowline.Cli.Commands;

/// <summary>
/// <c>flowline agent</c>: a host agent of the coordinator (docs/coordinator.md). It fetches and verifies a
/// release's artifacts, registers itself, heartbeats, claims executions one at a time, runs each pipeline
/// with Flowline's runtime (the manager in-process, workers as processes, as <c>flowline run</c>), asks the
/// run request's gates as interactions, and reports RUNNING and then the result with its lease epoch.
/// </summary>
internal static partial class AgentCommand
{
    public static Command Create()
    {
        var coordinator = new Option<string>("--coordinator") { Description = "The coordinator's URL (http://host:8780).", Required = true };
        var tokenFile = new Option<FileInfo>("--token-file") { Description = "A file holding the agent's token (an agent or admin token of the coordinator).", Required = true };
        var tenant = new Option<string>("--tenant") { Description = "The tenant.", DefaultValueFactory = _ => "default" };
        var pipeline = new Option<string>("--pipeline") { Description = "The pipeline id whose executions this agent runs.", Required = true };
        var id = new Option<string?>("--id") { Description = "The worker id (default: the host name)." };
        var release = new Option<string?>("--release") { Description = "The release version to run (default: the active one at start)." };
        var workDir = new Option<string?>("--work-dir") { Description = "Where the release's artifacts are fetched (default: a directory under the temporary directory, removed at exit)." };
        var heartbeat = new Option<double>("--heartbeat") { Description = "Seconds between heartbeats (keep it well under the coordinator's --stale-after).", DefaultValueFactory = _ => 10 };
        var poll = new Option<double>("--poll") { Description = "Seconds between claims while idle.", DefaultValueFactory = _ => 1 };
        var maxExecutions = new Option<int>("--max-executions") { Description = "How many executions this agent runs at once (each its own pipeline and namespace); the coordinator refuses claims beyond.", DefaultValueFactory = _ => 1 };
        var command = new Command("agent", "Run a host agent: register with a coordinator, heartbeat, claim executions of a release and run them with Flowline's runtime, until SIGTERM or Ctrl-C.")
        {
            coordinator, tokenFile, tenant, pipeline, id, release, workDir, heartbeat, poll, maxExecutions,
        };
        command.SetAction(parse =>
        {
            try
            {
                var settings = new AgentSettings(
                    CoordinatorClient.Address(parse.GetValue(coordinator)!),
                    CoordinatorClient.ReadToken(parse.GetValue(tokenFile)!.FullName),
                    Id(parse.GetValue(tenant)!, "--tenant"),
                    Id(parse.GetValue(pipeline)!, "--pipeline"),
                    Id(parse.GetValue(id) ?? DefaultId(), "--id"),
                    parse.GetValue(release) is { } r ? Id(r, "--release") : null,
                    parse.GetValue(workDir),
                    Seconds(parse.GetValue(heartbeat), "--heartbeat"),
                    Seconds(parse.GetValue(poll), "--poll"),
                    MaxExecutions(parse.GetValue(maxExecutions)));
                return new Agent(settings).RunAsync().GetAwaiter().GetResult();
            }
            catch (ArgumentException e)
            {
                Console.Error.WriteLine($"flowline agent: {e.Message}");
                return ExitCodes.Failed;
            }
        });
        return command;
    }

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
    private static partial Regex IdPattern();

    private static string Id(string value, string option) =>
        IdPattern().IsMatch(value) ? value : throw new ArgumentException($"{option} '{value}' must be letters, digits, '.', '_' or '-' (starting with a letter or digit), at most 128");

    private static string DefaultId()
    {
        var name = new string([.. Environment.MachineName.Select(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' ? c : '-')]).Trim('-', '.', '_');
        return name.Length == 0 ? "agent" : name;
    }

    private static int MaxExecutions(int value) =>
        value is >= 1 and <= 256 ? value : throw new ArgumentException($"--max-executions must be from 1 to 256, not {value}");

    private static TimeSpan Seconds(double value, string option) =>
        double.IsFinite(value) && value > 0 ? TimeSpan.FromSeconds(value) : throw new ArgumentException($"{option} must be a positive number of seconds, not {value}");
}

/// <summary>The agent's settings.</summary>
internal sealed record AgentSettings(Uri Coordinator, string Token, string Tenant, string Pipeline, string WorkerId, string? Release, string? WorkDirectory, TimeSpan Heartbeat, TimeSpan Poll, int MaxExecutions = 1);

/// <summary>The agent's loop: up to <see cref="AgentSettings.MaxExecutions"/> executions at a time.</summary>
internal sealed class Agent(AgentSettings s)
{
    private static readonly TimeSpan Renewal = TimeSpan.FromSeconds(1);

    private const int FinalAttempts = 60;

    private string AgentBase => $"tpf/agent/tenants/{s.Tenant}/pipelines/{s.Pipeline}";

    private string WorkerBase => $"{AgentBase}/workers/{s.WorkerId}";

    private string AdminBase => $"tpf/admin/tenants/{s.Tenant}/pipelines/{s.Pipeline}";

    private static void Log(string message) => Console.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} agent: {message}");

    public async Task<int> RunAsync()
    {
        using var stop = new CancellationTokenSource();
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Cancel);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Cancel);
        void Cancel(PosixSignalContext context)
        {
            context.Cancel = true;
            stop.Cancel();
        }

        using var client = new CoordinatorClient(s.Coordinator, s.Token);
        var ownWorkDir = s.WorkDirectory is null;
        var work = Path.GetFullPath(s.WorkDirectory ?? Path.Combine(Path.GetTempPath(), $"flowline-agent-{Environment.ProcessId}"));
        try
        {
            var release = (await client.GetAsync($"{AgentBase}/releases/{s.Release ?? "active"}", stop.Token).ConfigureAwait(false))!.AsObject();
            var version = (string)release["releaseVersion"]!;
            var (document, documentArtifact) = await FetchAsync(client, release, Path.Combine(work, version), stop.Token).ConfigureAwait(false);
            var check = PipelineDocument.CheckFile(document);
            await client.PostAsync($"{AdminBase}/workers/register", new JsonObject
            {
                ["workerId"] = s.WorkerId,
                ["protocol"] = "flowline-agent",
                ["endpoint"] = $"pid:{Environment.ProcessId}@{Environment.MachineName}",
                ["contractVersion"] = (string)release["contractVersion"]!,
                ["releaseVersion"] = version,
                ["artifactId"] = (string)documentArtifact["artifactId"]!,
                ["artifactDigest"] = (string)documentArtifact["digest"]!,
                ["maxExecutions"] = s.MaxExecutions,
            }, stop.Token).ConfigureAwait(false);
            Log($"registered as '{s.WorkerId}' for release {version} of {s.Tenant}/{s.Pipeline} at {s.Coordinator}");
            if (check.Pipeline is null)
            {
                DocumentCommands.WriteErrors(check);
                await UnavailableAsync(client, $"the release's pipeline document does not validate on this host: {string.Join("; ", check.Errors.Take(3))}").ConfigureAwait(false);
                return ExitCodes.Failed;
            }

            var heartbeats = HeartbeatAsync(client, stop.Token);
            var runs = new List<Task<string?>>();
            while (!stop.IsCancellationRequested)
            {
                // Runs that ended: one whose pipeline cannot start on this host makes the agent UNAVAILABLE (the others stop).
                foreach (var ended in runs.Where(r => r.IsCompleted).ToList())
                {
                    runs.Remove(ended);
                    if (await ended.ConfigureAwait(false) is { } cannotStart)
                    {
                        await UnavailableAsync(client, cannotStart).ConfigureAwait(false);
                        await stop.CancelAsync().ConfigureAwait(false);
                        await Task.WhenAll(runs).ConfigureAwait(false);
                        await heartbeats.ConfigureAwait(false);
                        return ExitCodes.StartFailed;
                    }
                }

                if (runs.Count >= s.MaxExecutions)
                {
                    await Task.WhenAny([.. runs, Task.Delay(s.Poll, stop.Token)]).ContinueWith(_ => { }, TaskScheduler.Default).ConfigureAwait(false);
                    continue;
                }

                JsonObject? claim = null;
                try
                {
                    claim = (await client.PostAsync($"{WorkerBase}/claim", null, stop.Token).ConfigureAwait(false))?.AsObject();
                }
                catch (Exception e) when (e is CoordinatorProblemException or HttpRequestException or TaskCanceledException && !stop.IsCancellationRequested)
                {
                    Log($"claim failed: {e.Message}");
                }

                if (claim is null)
                {
                    await Task.Delay(s.Poll, stop.Token).ContinueWith(_ => { }, TaskScheduler.Default).ConfigureAwait(false);
                    continue;
                }

                var run = new Run(client, WorkerBase, claim, document, stop.Token);
                runs.Add(Task.Run(run.ExecuteAsync));
            }

            await Task.WhenAll(runs).ConfigureAwait(false);
            await heartbeats.ConfigureAwait(false);
            Log("stopped");
            return ExitCodes.Ok;
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            Log("stopped");
            return ExitCodes.Ok;
        }
        catch (Exception e) when (e is CoordinatorProblemException or HttpRequestException or IOException or InvalidDataException)
        {
            await Console.Error.WriteLineAsync($"flowline agent: {e.Message}").ConfigureAwait(false);
            return ExitCodes.Failed;
        }
        finally
        {
            if (ownWorkDir && Directory.Exists(work))
            {
                Directory.Delete(work, recursive: true);
            }
        }
    }

    /// <summary>Tells the coordinator this agent cannot run its release (state UNAVAILABLE until it registers again).</summary>
    private async Task UnavailableAsync(CoordinatorClient client, string reason)
    {
        Log($"UNAVAILABLE: {reason}");
        try
        {
            await client.PostAsync($"{AdminBase}/workers/{s.WorkerId}/unavailable", new JsonObject { ["reason"] = reason }, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e) when (e is CoordinatorProblemException or HttpRequestException or TaskCanceledException)
        {
            Log($"cannot report UNAVAILABLE: {e.Message}");
        }
    }

    private async Task HeartbeatAsync(CoordinatorClient client, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(s.Heartbeat, stop).ConfigureAwait(false);
                await client.PostAsync($"{AdminBase}/workers/{s.WorkerId}/heartbeat", null, stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is CoordinatorProblemException or HttpRequestException or TaskCanceledException)
            {
                Log($"heartbeat failed: {e.Message}");
            }
        }
    }

    /// <summary>Fetches every stored artifact into <paramref name="directory"/> by its source path, verifying each SHA-256; returns the document's path and artifact.</summary>
    private async Task<(string Document, JsonObject Artifact)> FetchAsync(CoordinatorClient client, JsonObject release, string directory, CancellationToken ct)
    {
        var version = (string)release["releaseVersion"]!;
        (string, JsonObject)? document = null;
        foreach (var artifact in release["artifacts"]!.AsArray().OfType<JsonObject>())
        {
            var kind = (string)artifact["kind"]!;
            if (kind == "container-image")
            {
                continue;
            }

            var id = (string)artifact["artifactId"]!;
            var relative = (string?)artifact["sourceUri"] ?? id;
            if (relative.StartsWith("file://", StringComparison.Ordinal) || Path.IsPathRooted(relative) || relative.Split('/', '\\').Contains(".."))
            {
                relative = Path.Combine("artifacts", id, Path.GetFileName(relative.StartsWith("file://", StringComparison.Ordinal) ? new Uri(relative).LocalPath : relative));
            }

            var path = Path.Combine(directory, relative);
            var digest = await client.DownloadAsync($"{WorkerBase}/releases/{version}/artifacts/{id}", path, ct).ConfigureAwait(false);
            if (digest != (string)artifact["digest"]!)
            {
                File.Delete(path);
                throw new InvalidDataException($"artifact '{id}' of release {version} has digest {digest}, not the {(string)artifact["digest"]!} the release pins: refusing to run it");
            }

            if (kind == "pipeline-document")
            {
                document = (path, artifact);
            }
        }

        Log($"fetched and verified release {version} into {directory}");
        return document ?? throw new InvalidDataException($"release {version} has no pipeline document");
    }

    /// <summary>One claimed execution, from start to its final report.</summary>
    private sealed class Run(CoordinatorClient client, string workerBase, JsonObject claim, string document, CancellationToken agentStop)
    {
        private const string GateKind = "flowline.gate";

        private readonly string id = (string)claim["executionId"]!;
        private readonly long epoch = (long)claim["leaseEpoch"]!;
        private readonly Stopwatch sinceRenewal = Stopwatch.StartNew();
        private bool cancelRequested;
        private bool leaseLost;

        private string ExecutionBase => $"{workerBase}/executions/{id}";

        /// <summary>Runs the execution to its final report; returns why the pipeline cannot start on this host, or null.</summary>
        public async Task<string?> ExecuteAsync()
        {
            var run = claim["request"]?["run"] as JsonObject ?? [];
            var duration = run["durationSeconds"] is { } d ? TimeSpan.FromSeconds((double)d) : (TimeSpan?)null;
            var frames = run["frames"] is { } f ? (long)f : (long?)null;
            var gates = run["gates"] as JsonArray ?? [];
            Log($"claimed execution {id} (epoch {epoch}): {run.ToJsonString()}");

            var check = PipelineDocument.CheckFile(document);
            if (check.Pipeline is not { } pipeline)
            {
                var errors = string.Join("; ", check.Errors.Select(e => e.ToString()));
                await FinalAsync("FAILED", null, "INVALID_PIPELINE", errors).ConfigureAwait(false);
                return "the pipeline document does not validate: " + errors;
            }

            using var manager = new PipelineManager(pipeline, new PipelineManagerOptions { Namespace = $"agent-{id[..8]}" });
            try
            {
                manager.Build();
                manager.Start();
            }
            catch (Exception e) when (e is InvalidOperationException or WorkerFailedException or TimeoutException or DocumentValidationException or IOException or SharedMemoryException)
            {
                manager.Shutdown(force: true);
                await FinalAsync("FAILED", null, "START_FAILED", e.Message).ConfigureAwait(false);
                return "the pipeline failed to start: " + e.Message;
            }

            var started = Stopwatch.StartNew();
            string outcome;
            var answers = new JsonArray();
            try
            {
                await ReportAsync("RUNNING").ConfigureAwait(false);
                outcome = await GatesAsync(manager, Gates(pipeline.Spec, gates), answers).ConfigureAwait(false) ?? await WaitAsync(manager, duration, frames, started).ConfigureAwait(false);
            }
            catch (CoordinatorProblemException e) when (e.Code is "STALE_EPOCH" or "EXECUTION_TERMINAL")
            {
                leaseLost = true;
                outcome = "lease-lost";
            }

            var snapshot = manager.RuntimeSnapshot();
            manager.Shutdown(force: false);
            if (leaseLost)
            {
                Log($"execution {id}: the lease was lost (another agent or the sweeper has it): stopped without reporting");
                return null;
            }

            var result = Result(snapshot, outcome, started.Elapsed, answers);
            var (status, code, message) = outcome switch
            {
                "failed" => ("FAILED", "WORKER_FAILED", string.Join("; ", snapshot.Failures.Select(x => $"{x.ComponentType} '{x.Kernel}' failed: {x.Error}"))),
                "cancelled" => ("CANCELLED", null, "cancelled on request"),
                "gate-rejected" => ("CANCELLED", "GATE_REJECTED", "a gate's answer did not approve the run"),
                "gate-failed" => ("FAILED", "GATE_FAILED", "an approved gate of the document could not be opened (its worker did not take the change)"),
                "agent-stopped" => ("FAILED", "AGENT_STOPPED", "the agent was stopped (SIGTERM) during the run"),
                _ => ("SUCCEEDED", (string?)null, (string?)null),
            };
            await FinalAsync(status, result, code, message).ConfigureAwait(false);
            return null;
        }

        /// <summary>
        /// The gates to ask, in order: the run request's (<c>run.gates</c>), then the document's closed
        /// <c>flowline.gate</c> kernels (gate id = the node's name), which hold their frames until opened.
        /// </summary>
        private static List<Gate> Gates(PipelineSpec spec, JsonArray requested)
        {
            var gates = requested.OfType<JsonObject>().Select(g => new Gate((string?)g["gateId"] ?? "gate", (JsonObject)g.DeepClone(), null)).ToList();
            foreach (var kernel in spec.Kernels.Where(k => k.Kind == GateKind))
            {
                if (kernel.Parameters.TryGetBool("open", out var open) && open)
                {
                    continue;
                }

                var question = kernel.Parameters.TryGetString("question", out var q) ? q : $"open gate '{kernel.Name}'?";
                gates.Add(new Gate(kernel.Name, new JsonObject
                {
                    ["gateId"] = kernel.Name,
                    ["question"] = question,
                    ["node"] = kernel.Name,
                    ["source"] = "document",
                }, kernel.Name));
            }

            return gates;
        }

        /// <summary>Asks each gate in turn and waits for its answer (a document's gate is then opened); null when every gate approved, else why the run ends.</summary>
        private async Task<string?> GatesAsync(PipelineManager manager, List<Gate> gates, JsonArray answers)
        {
            foreach (var gate in gates)
            {
                var gateId = gate.GateId;
                var interaction = (await client.PostAsync($"{ExecutionBase}/interactions", new JsonObject
                {
                    ["epoch"] = epoch,
                    ["gateId"] = gateId,
                    ["request"] = gate.Request.DeepClone(),
                }, agentStop).ConfigureAwait(false))!;
                var interactionId = (string)interaction["interactionId"]!;
                Log($"execution {id}: gate '{gateId}' waits for interaction {interactionId}");
                while (true)
                {
                    if (await StopReasonAsync(manager) is { } reason)
                    {
                        return reason;
                    }

                    JsonNode now;
                    try
                    {
                        now = (await client.GetAsync($"{workerBase}/interactions/{interactionId}", CancellationToken.None).ConfigureAwait(false))!;
                    }
                    catch (Exception e) when (e is HttpRequestException or TaskCanceledException || e is CoordinatorProblemException { Status: >= 500 })
                    {
                        await Task.Delay(500, CancellationToken.None).ConfigureAwait(false);
                        continue;
                    }

                    var status = (string)now["status"]!;
                    if (status == "COMPLETED")
                    {
                        var answer = now["responsePayload"];
                        var record = new JsonObject { ["gateId"] = gateId, ["interactionId"] = interactionId, ["answer"] = answer?.DeepClone() };
                        answers.Add(record);
                        Log($"execution {id}: gate '{gateId}' answered {answer?.ToJsonString()}");
                        if (answer is JsonObject o && (o["approved"] ?? o["approve"]) is JsonValue v && v.TryGetValue<bool>(out var approved) && !approved)
                        {
                            return "gate-rejected";
                        }

                        if (gate.Node is { } node && await OpenAsync(manager, node, interactionId, record).ConfigureAwait(false) is { } failed)
                        {
                            return failed;
                        }

                        break;
                    }

                    if (status != "WAITING")
                    {
                        return "cancelled";
                    }

                    await Task.Delay(250, CancellationToken.None).ConfigureAwait(false);
                }
            }

            return null;
        }

        /// <summary>
        /// Opens a document's gate: reads what it held while closed (<c>gate_status</c>), then changes its live
        /// setting <c>open</c> to true, which its worker applies between two frames; null, or "failed".
        /// </summary>
        private async Task<string?> OpenAsync(PipelineManager manager, string node, string interactionId, JsonObject record)
        {
            try
            {
                var status = (await manager.RequestNodeAsync(node, "gate_status", null, PipelineManager.SettingsTimeout).ConfigureAwait(false)).Result as JsonObject;
                record["node"] = node;
                record["heldFrames"] = status?["held"]?.DeepClone();
                record["passedBeforeOpen"] = status?["passed"]?.DeepClone();
                await manager.PatchSettingsAsync(node, new JsonObject { ["open"] = true }, new ChangeSource("coordinator", interactionId)).ConfigureAwait(false);
                Log($"execution {id}: gate '{node}' opened (it held {record["heldFrames"]} frames)");
                return null;
            }
            catch (Exception e) when (e is RequestException or KeyNotFoundException or SettingsValidationException or InvalidOperationException)
            {
                Log($"execution {id}: gate '{node}' cannot be opened: {e.Message}");
                record["openError"] = e.Message;
                return manager.State == PipelineState.Failed ? "failed" : "gate-failed";
            }
        }

        private async Task<string> WaitAsync(PipelineManager manager, TimeSpan? duration, long? frames, Stopwatch started)
        {
            var gated = started.Elapsed; // the duration counts from the last gate's answer
            while (true)
            {
                if (await StopReasonAsync(manager) is { } reason)
                {
                    return reason;
                }

                if (duration is { } d && started.Elapsed - gated >= d)
                {
                    return "duration";
                }

                if (frames is { } n && manager.RuntimeSnapshot().Metrics.Values.Where(m => m.HasFigures).Select(m => m.FramesProcessed).DefaultIfEmpty(0).Min() >= n)
                {
                    return "frames";
                }

                await Task.Delay(200, CancellationToken.None).ConfigureAwait(false);
            }
        }

        /// <summary>Renews the lease about once a second (learning of a cancel); why the run must end now, or null.</summary>
        private async Task<string?> StopReasonAsync(PipelineManager manager)
        {
            if (sinceRenewal.Elapsed >= Renewal)
            {
                await ReportAsync("RUNNING").ConfigureAwait(false);
            }

            return agentStop.IsCancellationRequested ? "agent-stopped"
                : manager.State == PipelineState.Failed ? "failed"
                : cancelRequested ? "cancelled"
                : null;
        }

        /// <summary>Reports RUNNING (a renewal). The coordinator being unreachable (restarting) is not fatal: the run goes on and the next renewal tries again.</summary>
        private async Task ReportAsync(string status)
        {
            sinceRenewal.Restart();
            try
            {
                var answer = await client.PostAsync($"{ExecutionBase}/report", new JsonObject { ["epoch"] = epoch, ["status"] = status }, CancellationToken.None).ConfigureAwait(false);
                cancelRequested |= answer?["cancelRequested"]?.GetValue<bool>() == true;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException || e is CoordinatorProblemException { Status: >= 500 })
            {
                Log($"execution {id}: cannot reach the coordinator ({e.Message}); the run goes on");
            }
        }

        private async Task FinalAsync(string status, JsonObject? result, string? code, string? message)
        {
            var body = new JsonObject { ["epoch"] = epoch, ["status"] = status, ["result"] = result };
            if (code is not null)
            {
                body["errorCode"] = code;
            }

            if (message is { Length: > 0 })
            {
                body["errorMessage"] = message;
            }

            // The result must not be lost to a coordinator restarting: unreachable, it is sent again for up to a minute.
            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    await client.PostAsync($"{ExecutionBase}/report", body, CancellationToken.None).ConfigureAwait(false);
                    Log($"execution {id}: {status}{(code is null ? "" : " " + code)}");
                    return;
                }
                catch (Exception e) when ((e is HttpRequestException or TaskCanceledException || e is CoordinatorProblemException { Status: >= 500 }) && attempt < FinalAttempts)
                {
                    Log($"execution {id}: the final report ({status}) failed ({e.Message}); trying again");
                    await Task.Delay(1000, CancellationToken.None).ConfigureAwait(false);
                }
                catch (Exception e) when (e is CoordinatorProblemException or HttpRequestException or TaskCanceledException)
                {
                    Log($"execution {id}: the final report ({status}) failed: {e.Message}");
                    return;
                }
            }
        }

        /// <summary>The run's summary: why it stopped, how long, per-worker figures, the end-to-end latency, failures, sinks, gate answers.</summary>
        private static JsonObject Result(PipelineStatus snapshot, string outcome, TimeSpan elapsed, JsonArray answers)
        {
            var json = StatusJson.ToJsonObject(snapshot);
            var figured = snapshot.Metrics.Where(m => m.Value.HasFigures).ToList();

            // The end-to-end latency is the worker furthest from the sources: the one with the largest median latency.
            var last = figured.Where(m => m.Value.LatencyUs is not null).OrderByDescending(m => m.Value.LatencyUs!.P50).FirstOrDefault();
            return new JsonObject
            {
                ["stopReason"] = outcome,
                ["runSeconds"] = Math.Round(elapsed.TotalSeconds, 3),
                ["state"] = snapshot.State,
                ["frames"] = figured.Count == 0 ? 0 : figured.Min(m => m.Value.FramesProcessed),
                ["endToEndLatencyUs"] = last.Value?.LatencyUs is { } l
                    ? new JsonObject { ["worker"] = last.Key, ["p50"] = l.P50, ["p90"] = l.P90, ["p99"] = l.P99, ["max"] = l.Max }
                    : null,
                ["workers"] = json["metrics"]?.DeepClone(),
                ["sinks"] = json["sinks"]?.DeepClone(),
                ["failures"] = json["failures"]?.DeepClone(),
                ["interactions"] = answers,
                ["finishedAt"] = DateTime.UtcNow.ToString("o", CultureInfo.InvariantCulture),
            };
        }
    }
}

/// <summary>A gate an execution waits on: from the run request (<see cref="Node"/> null) or a document's <c>flowline.gate</c> node.</summary>
internal sealed record Gate(string GateId, JsonObject Request, string? Node);
