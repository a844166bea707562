using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Flowline.Client;
using Flowline.ControlPlane;
using Flowline.Documents;
using Flowline.Status;
using Spectre.Console;

namespace Flowline.Cli.Commands;

/// <summary>
/// The client verbs: drive a running <c>flowline serve</c> over HTTP (status, snapshot, lifecycle
/// commands, the document, synthetic inputs, events).
/// </summary>
internal static partial class RemoteCommands
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    internal static readonly Option<string?> Url = new("--url")
    {
        Description = "The server (default: FLOWLINE_URL, else the only local server found, else http://127.0.0.1:8765).",
    };

    internal static readonly Option<FileInfo?> TokenFileOption = new("--token-file")
    {
        Description = $"A file holding the bearer token (default: {ServeCommand.TokenFileVariable}, else {ServeCommand.TokenVariable}).",
    };

    internal static readonly Option<bool> Json = new("--json") { Description = "Print the server's JSON response." };

    /// <summary>Every client verb, each with --url, --token-file and --json.</summary>
    public static IEnumerable<Command> Create() => Verbs().Select(WithClientOptions);

    internal static Command WithClientOptions(Command command)
    {
        if (command.Subcommands.Count > 0)
        {
            foreach (var sub in command.Subcommands)
            {
                WithClientOptions(sub);
            }

            return command;
        }

        command.Options.Add(Url);
        command.Options.Add(TokenFileOption);
        command.Options.Add(Json);
        return command;
    }

    private static IEnumerable<Command> Verbs()
    {
        yield return Simple("status", "Show the pipeline's state and workers.", c => c.StatusAsync(), PrintStatus);
        yield return Simple("snapshot", "Print the runtime snapshot (JSON).", c => c.SnapshotAsync(), PrintJson);
        yield return Simple("build", "Build the pipeline (create its streams).", c => c.BuildAsync(), PrintState);
        yield return Simple("start", "Start the pipeline (building it first if needed).", c => c.StartAsync(), PrintState);
        yield return Simple("pause", "Pause every worker.", c => c.PauseAsync(), PrintState);
        yield return Simple("resume", "Resume paused workers.", c => c.ResumeAsync(), PrintState);

        var restartTimeout = new Option<double?>("--timeout") { Description = "Seconds to wait for each worker to stop." };
        var restart = new Command("restart", "Restart failed or dead workers.") { restartTimeout };
        restart.SetAction(p => Call(p, c => c.RestartAsync(p.GetValue(restartTimeout)), PrintState));
        yield return restart;

        var stopTimeout = new Option<double>("--timeout") { Description = "Seconds to wait for workers to stop.", DefaultValueFactory = _ => 5.0 };
        var stopForce = new Option<bool>("--force") { Description = "Kill workers that do not stop in time." };
        var stop = new Command("stop", "Stop the workers (the streams stay).") { stopTimeout, stopForce };
        stop.SetAction(p => Call(p, c => c.StopAsync(p.GetValue(stopTimeout), p.GetValue(stopForce)), PrintState));
        yield return stop;

        var keep = new Option<bool>("--keep-streams") { Description = "Leave the pipeline's streams in shared memory." };
        var external = new Option<bool>("--unlink-external") { Description = "Also remove streams the pipeline attached to but did not create." };
        var force = new Option<bool>("--force") { Description = "Kill workers that do not stop in time." };
        var shutdown = new Command("shutdown", "Stop the workers and remove the streams.") { keep, external, force };
        shutdown.SetAction(p => Call(p, c => c.ShutdownAsync(!p.GetValue(keep), p.GetValue(external), p.GetValue(force)), PrintState));
        yield return shutdown;

        yield return DocumentCommand();
        yield return TopCommand();
        yield return SyntheticCommand();
        yield return EventsCommand();
    }

    private static Command DocumentCommand()
    {
        var get = new Command("get", "Print the served document (JSON) and its revision.");
        get.SetAction(p => Call(p, c => c.DocumentAsync(), PrintJson));

        var putFile = new Argument<FileInfo>("file") { Description = "A pipeline document, YAML or JSON." };
        var put = new Command("put", "Replace the served document (refused while the pipeline is active).") { putFile };
        put.SetAction(p => Call(p, async c => await c.UpdateDocumentAsync(ReadDocument(p.GetValue(putFile)!)).ConfigureAwait(false), PrintChange));

        var validateFile = new Argument<FileInfo?>("file") { Description = "A document to check (default: the served one).", Arity = ArgumentArity.ZeroOrOne };
        var validate = new Command("validate", "Check a document against the server's kinds.") { validateFile };
        validate.SetAction(p => Call(
            p,
            c => c.ValidateDocumentAsync(p.GetValue(validateFile) is { } f ? ReadDocument(f) : null),
            (r, json) => PrintValidation(r.Valid, null, r.Errors, r, json) && r.Valid));

        var loadPath = new Argument<string>("path") { Description = "A YAML file on the server's machine, under the served document's directory or a --load-root." };
        var load = new Command("load", "Make the server load and serve another document file.") { loadPath };
        load.SetAction(p => Call(p, c => c.LoadDocumentAsync(p.GetValue(loadPath)!), PrintChange));

        return new Command("document", "Get, replace, validate or load the served document.") { get, put, validate, load };
    }

    private static Command SyntheticCommand()
    {
        var stream = new Argument<string>("stream") { Description = "A stream no node writes." };
        var pattern = new Option<string>("--pattern") { Description = "constant, random, ramp, sine, impulse or checkerboard.", DefaultValueFactory = _ => "random" };
        var rate = new Option<double?>("--rate-hz") { Description = "Frames per second (default: as fast as possible)." };
        var seed = new Option<long>("--seed") { Description = "Seed of the random pattern." };
        var amplitude = new Option<double>("--amplitude") { DefaultValueFactory = _ => 1.0, Description = "Amplitude." };
        var offset = new Option<double>("--offset") { Description = "Offset." };
        var period = new Option<double>("--period") { DefaultValueFactory = _ => 64.0, Description = "Period of ramp and sine, tile of checkerboard." };
        var constant = new Option<double>("--constant") { Description = "Value of the constant pattern." };
        var interval = new Option<long>("--impulse-interval") { DefaultValueFactory = _ => 64, Description = "Frames between impulses." };
        var start = new Command("start", "Start writing a pattern into a stream.") { stream, pattern, rate, seed, amplitude, offset, period, constant, interval };
        start.SetAction(p => Call(
            p,
            c => c.StartSyntheticInputAsync(new SyntheticInputRequest
            {
                StreamName = p.GetValue(stream)!,
                Pattern = p.GetValue(pattern)!,
                RateHz = p.GetValue(rate),
                Seed = p.GetValue(seed),
                Amplitude = p.GetValue(amplitude),
                Offset = p.GetValue(offset),
                Period = p.GetValue(period),
                Constant = p.GetValue(constant),
                ImpulseInterval = p.GetValue(interval),
            }),
            (r, json) => Print(r, json, $"synthetic input on '{p.GetValue(stream)}' started ({p.GetValue(pattern)})")));

        var stopStream = new Argument<string>("stream") { Description = "The stream." };
        var timeout = new Option<double>("--timeout") { DefaultValueFactory = _ => 2.0, Description = "Seconds to wait for it to stop." };
        var stop = new Command("stop", "Stop the synthetic input of a stream.") { stopStream, timeout };
        stop.SetAction(p => Call(
            p,
            c => c.StopSyntheticInputAsync(p.GetValue(stopStream)!, p.GetValue(timeout)),
            (r, json) => Print(r, json, $"synthetic input on '{p.GetValue(stopStream)}' stopped")));
        return new Command("synthetic", "Start or stop synthetic inputs.") { start, stop };
    }

    private static Command EventsCommand()
    {
        var last = new Option<long?>("--last-event-id") { Description = "Replay the events after this id first." };
        var once = new Option<bool>("--no-reconnect") { Description = "Exit when the connection drops instead of reconnecting." };
        var count = new Option<int?>("--count", "-n") { Description = "Exit after this many events." };
        var command = new Command("events", "Follow the server's event stream (one line per event; Ctrl-C stops).") { last, once, count };
        command.SetAction(p =>
        {
            using var client = Connect(p, out var error);
            if (client is null)
            {
                Console.Error.WriteLine(error);
                return ExitCodes.Failed;
            }

            using var stop = new CancellationTokenSource();
            Console.CancelKeyPress += (_, e) =>
            {
                e.Cancel = true;
                stop.Cancel();
            };
            return Follow(client, p.GetValue(last), !p.GetValue(once), p.GetValue(count), p.GetValue(Json), stop.Token).GetAwaiter().GetResult();
        });
        return command;
    }

    private static async Task<int> Follow(RemoteManagerClient client, long? last, bool reconnect, int? count, bool json, CancellationToken cancellationToken)
    {
        var seen = 0;
        try
        {
            await foreach (var e in client.EventsAsync(last, reconnect, cancellationToken).ConfigureAwait(false))
            {
                var data = e.Data?.ToJsonString() ?? "null";
                Console.WriteLine(json
                    ? new JsonObject { ["id"] = e.Id, ["event"] = e.Type, ["data"] = e.Data?.DeepClone() }.ToJsonString()
                    : $"{(e.Id is { } id ? id.ToString(System.Globalization.CultureInfo.InvariantCulture) : "-"),6} {e.Type,-16} {Cut(data, 160)}");
                if (count is { } n && ++seen >= n)
                {
                    return ExitCodes.Ok;
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return ExitCodes.Ok;
        }
        catch (RemoteManagerException e)
        {
            Console.Error.WriteLine(e.Message);
            return ExitCodes.Failed;
        }

        return ExitCodes.Ok;
    }

    private static Command Simple<T>(string name, string description, Func<RemoteManagerClient, Task<T>> call, Func<T, bool, bool> print)
    {
        var command = new Command(name, description);
        command.SetAction(p => Call(p, call, print));
        return command;
    }

    /// <summary>Connects, calls, prints; exit 0 on success, 1 on a refused request or an unreachable server.</summary>
    private static int Call<T>(ParseResult parse, Func<RemoteManagerClient, Task<T>> call, Func<T, bool, bool> print)
    {
        using var client = Connect(parse, out var error);
        if (client is null)
        {
            Console.Error.WriteLine(error);
            return ExitCodes.Failed;
        }

        try
        {
            var result = call(client).GetAwaiter().GetResult();
            return print(result, parse.GetValue(Json)) ? ExitCodes.Ok : ExitCodes.Failed;
        }
        catch (RemoteManagerException e)
        {
            Console.Error.WriteLine(e.Message);
            return ExitCodes.Failed;
        }
        catch (Exception e) when (e is DocumentValidationException or IOException or JsonException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine(e.Message);
            return ExitCodes.Failed;
        }
    }

    internal static RemoteManagerClient? Connect(ParseResult parse, out string error)
    {
        error = "";
        string? token;
        try
        {
            var file = parse.GetValue(TokenFileOption)?.FullName
                ?? (Environment.GetEnvironmentVariable(ServeCommand.TokenFileVariable) is { Length: > 0 } f ? f : null);
            token = file is not null ? TokenFile.Read(file) : Environment.GetEnvironmentVariable(ServeCommand.TokenVariable) is { Length: > 0 } t ? t.Trim() : null;
        }
        catch (Exception e) when (e is IOException or InvalidDataException or FormatException or ArgumentException or UnauthorizedAccessException)
        {
            error = e.Message;
            return null;
        }

        var url = parse.GetValue(Url) ?? (Environment.GetEnvironmentVariable("FLOWLINE_URL") is { Length: > 0 } u ? u : null);
        if (url is null)
        {
            var servers = new ServerDirectory().List();
            url = servers.Count == 1 ? servers[0].Url : "http://127.0.0.1:8765";
        }

        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != "http" && uri.Scheme != "https"))
        {
            error = $"--url must be an http:// or https:// address, not '{url}'";
            return null;
        }

        return new RemoteManagerClient(uri, token);
    }

    /// <summary>A YAML or JSON document file as the JSON mapping the server takes (YAML is checked here first).</summary>
    private static JsonObject ReadDocument(FileInfo file)
    {
        var text = File.ReadAllText(file.FullName);
        if (file.Extension.Equals(".json", StringComparison.OrdinalIgnoreCase))
        {
            return JsonNode.Parse(text) as JsonObject ?? throw new FormatException($"{file.FullName}: a document must be a JSON object");
        }

        var pipeline = PipelineDocument.Parse(text, file.FullName, file.DirectoryName);
        return PipelineDocument.ToJson(pipeline.Spec);
    }

    private static bool PrintJson<T>(T result, bool json)
    {
        Console.WriteLine(Indent(result));
        return true;
    }

    private static bool Print<T>(T result, bool json, string text)
    {
        Console.WriteLine(json ? Indent(result) : text);
        return true;
    }

    private static bool PrintState(PipelineStatus result, bool json) => Print(result, json, $"state: {result.State}");

    /// <summary>A JSON tree or a status record, indented.</summary>
    private static string Indent<T>(T result) =>
        result is JsonNode node ? node.ToJsonString(Indented) : StatusJson.SerializeIndented(result);

    private static bool PrintChange(DocumentChangeReply result, bool json) => PrintValidation(result.Valid, result.Revision, result.Errors, result, json);

    private static bool PrintValidation<T>(bool valid, long? revision, IReadOnlyList<string> errors, T result, bool json)
    {
        if (json)
        {
            return PrintJson(result, json);
        }

        Console.WriteLine(valid ? $"valid{(revision is { } r ? $"; revision {r}" : "")}" : "not valid:");
        foreach (var error in errors)
        {
            Console.WriteLine($"  {error}");
        }

        return true;
    }

    private static bool PrintStatus(PipelineStatus status, bool json)
    {
        if (json)
        {
            return PrintJson(status, json);
        }

        AnsiConsole.MarkupLine($"state [bold]{Markup.Escape(status.State)}[/], namespace {Markup.Escape(status.Namespace)}, document revision {status.DocumentRevision}");
        AnsiConsole.Write(WorkerTable.Of(status));
        WorkerTable.WriteFailures(status);
        return true;
    }

    private static string Cut(string text, int max) => text.Length <= max ? text : string.Concat(text.AsSpan(0, max - 1), "…");
}
