using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Flowline.Kernels;
using Flowline.Plugins;
using Spectre.Console;

namespace Flowline.Cli.Commands;

/// <summary><c>flowline kinds</c>, <c>sources</c> and <c>sinks</c>: the kinds available, with their parameters.</summary>
internal static class KindCommands
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static Command Kinds() => Create("kinds", "List the kernel kinds, with their inputs, outputs and parameters.", r => r.Kernels.Values);

    public static Command Sources() => Create("sources", "List the source kinds, with their parameters.", r => r.Sources.Values);

    public static Command Sinks() => Create("sinks", "List the sink kinds, with their parameters.", r => r.Sinks.Values);

    private static Command Create(string name, string description, Func<KindRegistry, IEnumerable<KindDefinition>> select)
    {
        var json = new Option<bool>("--json") { Description = "Print the kinds as JSON." };
        var plugins = new Option<string[]>("--plugin") { Description = "Also load the kinds of this plugin assembly (repeatable).", AllowMultipleArgumentsPerToken = false };
        var command = new Command(name, description) { json, plugins };
        command.SetAction(parse =>
        {
            KindRegistry registry;
            try
            {
                registry = PluginLoader.Extend(KindRegistry.BuiltIn, parse.GetValue(plugins) ?? [], Environment.CurrentDirectory);
            }
            catch (Exception e) when (e is PluginLoadException or InvalidOperationException)
            {
                Console.Error.WriteLine($"flowline {name}: {e.Message}");
                return ExitCodes.Failed;
            }

            var definitions = select(registry).OrderBy(d => d.Kind, StringComparer.Ordinal).ToList();
            if (parse.GetValue(json))
            {
                Console.Out.WriteLine(new JsonArray([.. definitions.Select(d => (JsonNode)Json(d, registry))]).ToJsonString(Indented));
                return ExitCodes.Ok;
            }

            var console = AnsiConsole.Console;
            if (Console.IsOutputRedirected)
            {
                console.Profile.Width = 160;
            }

            var table = new Table().AddColumns("kind", "streams", "parameters", "what it does");
            foreach (var d in definitions)
            {
                table.AddRow(Markup.Escape(d.Kind), Markup.Escape(Streams(d)), Markup.Escape(Parameters(d)), Markup.Escape(d.Description));
            }

            console.Write(table);
            return ExitCodes.Ok;
        });
        return command;
    }

    private static string Streams(KindDefinition d) => d switch
    {
        KernelDefinition k => $"inputs: {k.Inputs}; auxiliary: {k.Auxiliary}; outputs: {k.Outputs}",
        SourceDefinition s => $"streams: {s.Streams}; auxiliary: {s.Auxiliary}",
        SinkDefinition s => $"auxiliary: {s.Auxiliary}; feedback outputs: {s.Outputs}",
        _ => "",
    };

    private static string Parameters(KindDefinition d) =>
        d.Parameters.Count == 0 ? "-" : string.Join("; ", d.Parameters.Select(p => $"{p.Name} ({p.Type}{(p.Required ? ", required" : p.Default is null ? ", optional" : $", default {p.Default}")})"));

    private static JsonObject Json(KindDefinition d, KindRegistry registry)
    {
        var o = new JsonObject
        {
            ["kind"] = d.Kind,
            ["description"] = d.Description,
            ["origin"] = registry.Origins[d.Kind],
        };
        switch (d)
        {
            case KernelDefinition k:
                o["inputs"] = k.Inputs.ToString();
                o["auxiliary"] = k.Auxiliary.ToString();
                o["outputs"] = k.Outputs.ToString();
                o["uses_operation"] = k.UsesOperation;
                break;
            case SourceDefinition s:
                o["streams"] = s.Streams.ToString();
                o["auxiliary"] = s.Auxiliary.ToString();
                o["required_feedback_aliases"] = new JsonArray([.. s.RequiredFeedbackAliases.Select(a => (JsonNode)JsonValue.Create(a))]);
                break;
            case SinkDefinition s:
                o["auxiliary"] = s.Auxiliary.ToString();
                o["outputs"] = s.Outputs.ToString();
                break;
            default:
                break;
        }

        o["parameters"] = new JsonArray([.. d.Parameters.Select(p => (JsonNode)new JsonObject
        {
            ["name"] = p.Name,
            ["type"] = p.Type,
            ["required"] = p.Required,
            ["default"] = p.Default,
            ["description"] = p.Description,
            ["minimum"] = p.Minimum,
            ["maximum"] = p.Maximum,
            ["choices"] = p.Choices is null ? null : new JsonArray([.. p.Choices.Select(c => (JsonNode)JsonValue.Create(c)!)]),
            ["unit"] = p.Unit,
            ["live"] = p.Live,
        })]);
        return o;
    }
}
