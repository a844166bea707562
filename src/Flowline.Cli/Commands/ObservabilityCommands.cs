using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Flowline.Client;
using Flowline.Status;

namespace Flowline.Cli.Commands;

/// <summary>
/// The observability plane's client verbs (issue 12): <c>processes</c>, <c>request</c>, <c>settings</c>
/// and <c>topology</c>, each with <c>--url</c>, <c>--token-file</c> and <c>--json</c>.
/// </summary>
internal static class ObservabilityCommands
{
    /// <summary>The verbs.</summary>
    public static IEnumerable<Command> Create() => new[] { Processes(), Request(), Settings(), Topology() }.Select(RemoteCommands.WithClientOptions);

    private static Command Processes()
    {
        var command = new Command("processes", "List the pipeline's processes: the manager, each worker, external readers and writers.");
        command.SetAction(p => Run(p, async c =>
        {
            var list = await c.ProcessesAsync().ConfigureAwait(false);
            if (p.GetValue(RemoteCommands.Json))
            {
                Console.WriteLine(StatusJson.SerializeIndented(list));
                return ExitCodes.Ok;
            }

            Console.WriteLine($"{"ID",-36}  {"ROLE",-8}  {"PID",7}  {"STATE",-8}  NODES");
            foreach (var process in list.Processes)
            {
                Console.WriteLine($"{process.Id,-36}  {process.Role,-8}  {process.Pid,7}  {process.State,-8}  {string.Join(",", process.Nodes)}");
            }

            return ExitCodes.Ok;
        }));
        return command;
    }

    private static Command Request()
    {
        var target = new Argument<string>("target") { Description = "The node (or, with --process, the process's UUID)." };
        var op = new Argument<string>("op") { Description = "The operation: ping, process_stats, update_setting, profiling_snapshot, set_profiling_trace, profiling_trace_batch, or one a kind added." };
        var args = new Option<string?>("--args") { Description = "The arguments, a JSON object." };
        var process = new Option<bool>("--process") { Description = "TARGET is a process id, not a node." };
        var timeout = new Option<int>("--timeout-ms") { Description = "How long the server waits for the answer.", DefaultValueFactory = _ => 2000 };
        var command = new Command("request", "Send a routed request to the process that owns a node (or to a process).") { target, op, args, process, timeout };
        command.SetAction(p => Run(p, async c =>
        {
            JsonObject? arguments = null;
            if (p.GetValue(args) is { } text)
            {
                arguments = JsonNode.Parse(text) as JsonObject ?? throw new FormatException("--args must be a JSON object");
            }

            var reply = p.GetValue(process)
                ? await c.RequestProcessAsync(p.GetValue(target)!, p.GetValue(op)!, arguments, p.GetValue(timeout)).ConfigureAwait(false)
                : await c.RequestNodeAsync(p.GetValue(target)!, p.GetValue(op)!, arguments, p.GetValue(timeout)).ConfigureAwait(false);
            Console.WriteLine(p.GetValue(RemoteCommands.Json)
                ? StatusJson.SerializeIndented(reply)
                : $"{reply.Op} answered by {(reply.Node.Length > 0 ? reply.Node : "the manager")} ({reply.ProcessId}) in {reply.ElapsedUs.ToString("0.0", CultureInfo.InvariantCulture)} us\n{reply.Result?.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) ?? "null"}");
            return ExitCodes.Ok;
        }));
        return command;
    }

    private static Command Settings()
    {
        var node = new Argument<string?>("node") { Description = "The node (default: every node).", Arity = ArgumentArity.ZeroOrOne };
        var set = new Option<string[]>("--set") { Description = "field=value (a JSON value, else text); may repeat. Needs NODE.", AllowMultipleArgumentsPerToken = false };
        var watch = new Option<bool>("--watch") { Description = "Keep printing settings changes as they happen, who made them, old and new values (Ctrl-C stops)." };
        var command = new Command("settings", "Show the nodes' settings, or change some of a node's live (--set field=value).") { node, set, watch };
        command.SetAction((p, ct) => Task.FromResult(Run(p, async c =>
        {
            var json = p.GetValue(RemoteCommands.Json);
            var name = p.GetValue(node);
            var changes = p.GetValue(set) ?? [];
            if (changes.Length > 0)
            {
                if (name is null)
                {
                    Console.Error.WriteLine("--set needs the node: flowline settings NODE --set field=value");
                    return ExitCodes.Failed;
                }

                var patch = new JsonObject();
                foreach (var change in changes)
                {
                    var eq = change.IndexOf('=', StringComparison.Ordinal);
                    if (eq <= 0)
                    {
                        Console.Error.WriteLine($"--set takes field=value, not '{change}'");
                        return ExitCodes.Failed;
                    }

                    patch[change[..eq]] = Value(change[(eq + 1)..]);
                }

                var result = await c.PatchSettingsAsync(name, patch).ConfigureAwait(false);
                Console.WriteLine(json ? StatusJson.SerializeIndented(result) : $"{name}: applied ({result.AppliedBy}), seq {result.Seq}\n{result.Values.ToJsonString(new JsonSerializerOptions { WriteIndented = true })}");
                return ExitCodes.Ok;
            }

            var snapshot = await c.SettingsAsync().ConfigureAwait(false);
            var schema = await c.SettingsSchemaAsync().ConfigureAwait(false);
            if (name is not null && !snapshot.Nodes.ContainsKey(name))
            {
                Console.Error.WriteLine($"no node '{name}' has settings (nodes: {string.Join(", ", snapshot.Nodes.Keys)})");
                return ExitCodes.Failed;
            }

            if (json)
            {
                Console.WriteLine(name is null ? StatusJson.SerializeIndented(snapshot) : snapshot.Nodes[name].ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
                return ExitCodes.Ok;
            }

            Console.WriteLine($"seq {snapshot.Seq}");
            foreach (var (n, values) in snapshot.Nodes.Where(p => name is null || p.Key == name))
            {
                Console.WriteLine($"{n} ({schema.Nodes.GetValueOrDefault(n)?.Kind})");
                foreach (var (field, value) in values)
                {
                    var info = schema.Nodes.GetValueOrDefault(n)?.Fields.FirstOrDefault(f => f.Name == field);
                    Console.WriteLine($"  {field,-24} {value?.ToJsonString() ?? "null",-16} {(info is null ? "" : info.Live ? "live" : "restart")}{(info?.Unit is { } u ? " " + u : "")}");
                }
            }

            // --watch: the changes as the server logs them (GET /settings/events?after_seq=N), polled twice a second.
            var seq = snapshot.Seq;
            while (p.GetValue(watch) && !ct.IsCancellationRequested)
            {
                SettingsEventList events;
                try
                {
                    events = await c.SettingsEventsAsync(seq, ct).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested)
                {
                    break;
                }

                if (events.Lost)
                {
                    Console.WriteLine("lost: some events were dropped from the log; showing the newest (take flowline settings again for the values)");
                }

                foreach (var e in events.Events)
                {
                    seq = e.Seq;
                    if (name is not null && e.Node != name && e.Type == "changed")
                    {
                        continue;
                    }

                    Console.WriteLine(e.Type == "changed"
                        ? $"{e.Time} #{e.Seq} {e.Node}.{e.Field}: {e.Old?.ToJsonString() ?? "null"} -> {e.New?.ToJsonString() ?? "null"} by {e.Client}{(e.Scope is { } scope ? $" ({scope})" : "")}"
                        : $"{e.Time} #{e.Seq} {e.Type}{(e.Revision is { } r ? $" revision {r}" : "")}: every node's settings are the new document's");
                }

                try
                {
                    await Task.Delay(500, ct).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }

            return ExitCodes.Ok;
        })));
        return command;
    }

    private static Command Topology()
    {
        var watch = new Option<bool>("--watch") { Description = "Keep printing topology changes as they happen (Ctrl-C stops)." };
        var command = new Command("topology", "Show the pipeline's graph: nodes, the process owning each, edges, external readers and writers.") { watch };
        command.SetAction((p, ct) => Task.FromResult(Run(p, async c =>
        {
            var topology = await c.TopologyAsync(ct).ConfigureAwait(false);
            var json = p.GetValue(RemoteCommands.Json);
            if (json)
            {
                Console.WriteLine(StatusJson.SerializeIndented(topology));
            }
            else
            {
                foreach (var n in topology.Nodes)
                {
                    Console.WriteLine($"{n.Name} ({n.Kind}) process {n.ProcessId ?? "-"}: {string.Join(",", n.Inputs)} -> {string.Join(",", n.Outputs)}");
                }

                foreach (var e in topology.Edges)
                {
                    Console.WriteLine($"  {e.From} -[{e.Stream}]-> {e.To}");
                }

                foreach (var x in topology.External)
                {
                    Console.WriteLine($"  external {x.Role} of {x.Stream}: process {x.ProcessId}");
                }
            }

            var seq = topology.Seq;
            while (p.GetValue(watch) && !ct.IsCancellationRequested)
            {
                var events = await c.TopologyEventsAsync(seq, ct).ConfigureAwait(false);
                if (events.Lost)
                {
                    Console.WriteLine("lost: some events were dropped from the log; showing the newest");
                }

                foreach (var e in events.Events)
                {
                    Console.WriteLine(json ? StatusJson.Serialize(e) : $"{e.Time} #{e.Seq} {e.Type} process {e.ProcessId ?? "-"} nodes [{string.Join(",", e.Nodes)}] streams [{string.Join(",", e.Streams)}]");
                    seq = e.Seq;
                }

                await Task.Delay(500, ct).ConfigureAwait(false);
            }

            return ExitCodes.Ok;
        })));
        return command;
    }

    /// <summary>A --set value: JSON if it parses (numbers, booleans, arrays), else the text.</summary>
    private static JsonNode? Value(string text)
    {
        try
        {
            return JsonNode.Parse(text);
        }
        catch (JsonException)
        {
            return JsonValue.Create(text);
        }
    }

    private static int Run(ParseResult parse, Func<RemoteManagerClient, Task<int>> action)
    {
        using var client = RemoteCommands.Connect(parse, out var error);
        if (client is null)
        {
            Console.Error.WriteLine(error);
            return ExitCodes.Failed;
        }

        try
        {
            return action(client).GetAwaiter().GetResult();
        }
        catch (RemoteManagerException e)
        {
            Console.Error.WriteLine(e.Code is null && e.Field is null ? e.Message : $"{e.Message} [{string.Join(", ", new[] { e.Code, e.Field is null ? null : $"field {e.Field}" }.OfType<string>())}]");
            return ExitCodes.Failed;
        }
        catch (OperationCanceledException)
        {
            return ExitCodes.Ok;
        }
        catch (Exception e) when (e is JsonException or FormatException)
        {
            Console.Error.WriteLine(e.Message);
            return ExitCodes.Failed;
        }
    }
}
