using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Flowline.Documents;
using Flowline.Graph;
using Flowline.SharedMemory;
using Spectre.Console;

namespace Flowline.Cli.Commands;

/// <summary><c>flowline validate</c> and <c>flowline describe</c>: check and summarise a pipeline document.</summary>
internal static class DocumentCommands
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static Command Validate()
    {
        var file = new Argument<FileInfo>("file") { Description = "The pipeline document (YAML)." };
        var json = new Option<bool>("--json") { Description = "Print {\"valid\", \"errors\"} as JSON." };
        var command = new Command("validate", "Check a pipeline document and list every problem with its path, file and line (exit code 1 when invalid).") { file, json };
        command.SetAction(parse =>
        {
            var path = parse.GetValue(file)!.ToString();
            var check = PipelineDocument.CheckFile(path);
            if (parse.GetValue(json))
            {
                Console.Out.WriteLine(new JsonObject
                {
                    ["valid"] = check.IsValid,
                    ["errors"] = new JsonArray([.. check.Errors.Select(e => (JsonNode)ErrorJson(e))]),
                    ["total_errors"] = check.TotalErrors,
                }.ToJsonString(Indented));
            }
            else if (check.Pipeline is { } pipeline)
            {
                var s = pipeline.Spec;
                Console.Out.WriteLine($"{path}: valid ({s.Streams.Length} streams, {s.Sources.Length} sources, {s.Kernels.Length} kernels, {s.Sinks.Length} sinks)");
            }
            else
            {
                WriteErrors(check);
                Console.Error.WriteLine($"{path}: {check.TotalErrors:N0} problem{(check.TotalErrors == 1 ? "" : "s")}");
            }

            return check.IsValid ? ExitCodes.Ok : ExitCodes.Failed;
        });
        return command;
    }

    public static Command Describe()
    {
        var file = new Argument<FileInfo>("file") { Description = "The pipeline document (YAML)." };
        var json = new Option<bool>("--json") { Description = "Print the graph as JSON (shmpipeline's graph shape)." };
        var command = new Command("describe", "Summarise a pipeline: its streams with their roles, producers and consumers, and its nodes.") { file, json };
        command.SetAction(parse =>
        {
            var path = parse.GetValue(file)!.ToString();
            var check = PipelineDocument.CheckFile(path);
            if (check.Pipeline is not { } pipeline)
            {
                WriteErrors(check);
                return ExitCodes.Failed;
            }

            if (parse.GetValue(json))
            {
                Console.Out.WriteLine(pipeline.Graph.ToJson().ToJsonString(Indented));
            }
            else
            {
                Render(pipeline);
            }

            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>Writes the errors of a check to standard error, and how many more there are beyond them.</summary>
    public static void WriteErrors(DocumentCheck check)
    {
        foreach (var error in check.Errors)
        {
            Console.Error.WriteLine(error);
        }

        if (check.TotalErrors > check.Errors.Count)
        {
            Console.Error.WriteLine($"... and {check.TotalErrors - check.Errors.Count:N0} more");
        }
    }

    private static JsonObject ErrorJson(SpecError e) => new()
    {
        ["path"] = e.Path,
        ["message"] = e.Message,
        ["file"] = e.File,
        ["line"] = e.Position.IsKnown ? e.Position.Line : null,
        ["column"] = e.Position.IsKnown ? e.Position.Column : null,
    };

    private static void Render(ValidatedPipeline pipeline)
    {
        var spec = pipeline.Spec;
        var graph = pipeline.Graph;
        var console = AnsiConsole.Console;
        if (Console.IsOutputRedirected)
        {
            console.Profile.Width = 160;
        }

        console.MarkupLine($"[bold]{Markup.Escape(spec.File ?? "pipeline")}[/]  namespace {Markup.Escape(spec.Namespace ?? "(derived at run time)")}");
        var streams = new Table().Title("Streams").AddColumns("stream", "frame", "role", "written by", "read by");
        foreach (var s in spec.Streams)
        {
            streams.AddRow(
                Markup.Escape(s.Name),
                Markup.Escape($"{s.Dtype.ToName()}[{string.Join(", ", s.Shape)}]"),
                PipelineGraph.RoleName(graph.RoleOf(s.Name)),
                Markup.Escape(string.Join(", ", graph.ProducersOf(s.Name))),
                Markup.Escape(string.Join(", ", graph.ConsumersOf(s.Name))));
        }

        console.Write(streams);
        var nodes = new Table().Title("Nodes").AddColumns("node", "kind", "reads", "writes");
        foreach (var s in spec.Sources)
        {
            nodes.AddRow(Markup.Escape(s.Name), Markup.Escape(s.Kind), Markup.Escape(string.Join(", ", s.Auxiliary.Select(a => a.Stream))), Markup.Escape(string.Join(", ", s.Streams)));
        }

        foreach (var k in spec.Kernels)
        {
            var reads = k.Inputs.Concat(k.Auxiliary.Select(a => $"{a.Stream} (aux)"));
            nodes.AddRow(Markup.Escape(k.Name), Markup.Escape(k.Kind), Markup.Escape(string.Join(", ", reads)), Markup.Escape(string.Join(", ", k.Outputs)));
        }

        foreach (var s in spec.Sinks)
        {
            nodes.AddRow(Markup.Escape(s.Name), Markup.Escape(s.Kind), Markup.Escape(string.Join(", ", new[] { s.Stream }.Concat(s.Auxiliary.Select(a => $"{a.Stream} (aux)")))), Markup.Escape(string.Join(", ", s.Outputs)));
        }

        console.Write(nodes);
    }
}
