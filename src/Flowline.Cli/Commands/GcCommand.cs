using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Flowline.ControlPlane;
using Flowline.SharedMemory;
using Spectre.Console;

namespace Flowline.Cli.Commands;

/// <summary>
/// <c>flowline gc</c>: removes what dead pipelines left in shared memory (regions whose creator has exited
/// and that no live process uses, dead managers' leases, half-made regions, empty namespaces) and the
/// discovery records of servers that died.
/// </summary>
internal static class GcCommand
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static Command Create()
    {
        var dryRun = new Option<bool>("--dry-run") { Description = "Only list what would be removed." };
        var ns = new Option<string?>("--namespace") { Description = "Look at this namespace only (default: every namespace)." };
        var json = new Option<bool>("--json") { Description = "Print what was found as JSON." };
        var command = new Command(
            "gc",
            "Remove what dead pipelines left under /dev/shm/flowline (regions nobody alive uses, dead managers' leases) and dead servers' records.")
        {
            dryRun, ns, json,
        };
        command.SetAction(p => Run(p.GetValue(ns), p.GetValue(dryRun), p.GetValue(json)));
        return command;
    }

    private static int Run(string? @namespace, bool dryRun, bool json)
    {
        if (@namespace is not null && SharedMemoryNamespace.Check(@namespace) is { } problem)
        {
            Console.Error.WriteLine($"invalid namespace '{@namespace}': {problem}");
            return ExitCodes.Failed;
        }

        var result = SharedMemoryCollector.Collect(@namespace, dryRun);

        // Listing the servers prunes the records of dead ones, so a dry run does not list them.
        int? liveServers = dryRun ? null : new ServerDirectory().List().Count;
        if (json)
        {
            var output = new JsonObject
            {
                ["dry_run"] = dryRun,
                ["garbage"] = Items(result.Garbage),
                ["garbage_bytes"] = result.GarbageBytes,
                ["kept"] = Items(result.Kept),
                ["problems"] = new JsonArray([.. result.Problems.Select(p => (JsonNode)p)]),
                ["live_servers"] = liveServers,
            };
            Console.WriteLine(output.ToJsonString(Indented));
        }
        else
        {
            Print(result);
        }

        foreach (var p in result.Problems)
        {
            Console.Error.WriteLine(p);
        }

        return result.Problems.Count == 0 ? ExitCodes.Ok : ExitCodes.Failed;
    }

    private static JsonArray Items(IReadOnlyList<CollectedItem> items) => new([.. items.Select(i => (JsonNode)new JsonObject
    {
        ["namespace"] = i.Namespace,
        ["name"] = i.Name,
        ["kind"] = i.Kind,
        ["bytes"] = i.Bytes,
        ["reason"] = i.Reason,
    })]);

    private static void Print(CollectResult result)
    {
        var verb = result.DryRun ? "would remove" : "removed";
        if (result.Garbage.Count == 0)
        {
            Console.WriteLine($"nothing to remove ({result.Kept.Count} regions in use)");
            return;
        }

        var table = new Table().AddColumns("namespace", "name", "kind", "bytes", "why");
        foreach (var g in result.Garbage)
        {
            table.AddRow(Markup.Escape(g.Namespace), Markup.Escape(g.Name), g.Kind, g.Bytes.ToString("N0", CultureInfo.InvariantCulture), Markup.Escape(g.Reason));
        }

        AnsiConsole.Write(table);
        Console.WriteLine(
            $"{verb} {result.Garbage.Count} leftovers ({result.GarbageBytes.ToString("N0", CultureInfo.InvariantCulture)} bytes); " +
            $"{result.Kept.Count} regions in use were kept");
    }
}
