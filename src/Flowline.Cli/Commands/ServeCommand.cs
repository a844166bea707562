using System.CommandLine;
using Flowline.Client;
using Flowline.ControlPlane;
using Flowline.Documents;
using Flowline.Runtime;
using Flowline.SharedMemory.Liveness;

namespace Flowline.Cli.Commands;

/// <summary><c>flowline serve</c>: the HTTP control plane of one pipeline.</summary>
internal static class ServeCommand
{
    /// <summary>The environment variable holding an admin token.</summary>
    public const string TokenVariable = "FLOWLINE_TOKEN";

    /// <summary>The environment variable naming a token file.</summary>
    public const string TokenFileVariable = "FLOWLINE_TOKEN_FILE";

    public static Command Create()
    {
        var file = new Argument<FileInfo>("file") { Description = "The pipeline document (YAML) to serve." };
        var host = new Option<string>("--host") { Description = "Address to listen on: an IP address or localhost. Anything but loopback needs a token.", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "Port to listen on (0 picks a free one).", DefaultValueFactory = _ => 8765 };
        var token = new Option<string?>("--token") { Description = $"An admin bearer token. Visible to `ps`: prefer --token-file or {TokenVariable}." };
        var tokenFile = new Option<FileInfo?>("--token-file") { Description = $"A file of tokens: one bare token (admin), or lines 'read: T', 'control: T', 'admin: T'. Also {TokenFileVariable}." };
        var loadRoot = new Option<string[]>("--load-root") { Description = "A directory POST /document/load may read from, besides the served document's own (repeatable).", AllowMultipleArgumentsPerToken = false };
        var ns = new Option<string?>("--namespace") { Description = "Shared-memory namespace of the pipeline (default: the document's)." };
        var placement = new Option<string>("--placement") { Description = "CPU placement: none (default) or round-robin.", DefaultValueFactory = _ => "none" };
        placement.AcceptOnlyFromAmong("none", "round-robin");
        var maxDocumentBytes = new Option<int>("--max-document-bytes")
        {
            Description = "The largest document accepted, in bytes: a request body (longer ones get 413) or a file of POST /document/load.",
            DefaultValueFactory = _ => new ControlServiceOptions().MaxDocumentBytes,
        };
        var parent = new Option<int>("--parent") { Description = "Shut down (as on SIGTERM) when this process exits.", Hidden = true };
        var discoveryDir = new Option<string?>("--discovery-dir") { Description = "Register in this discovery directory (a server launched by another uses its directory).", Hidden = true };
        var command = new Command("serve", "Serve a pipeline over HTTP (JSON and Server-Sent Events, shmpipeline's wire format) until Ctrl-C or SIGTERM.")
        {
            file, host, port, token, tokenFile, loadRoot, ns, placement, maxDocumentBytes, parent, discoveryDir,
        };
        command.SetAction(parse => Serve(
            parse.GetValue(file)!.FullName,
            new ControlServerOptions
            {
                Host = parse.GetValue(host)!,
                Port = parse.GetValue(port),
                LogToConsole = true,
                DiscoveryDirectory = parse.GetValue(discoveryDir),
                // The console launches servers as this process was started: the apphost, or `dotnet Flowline.Cli.dll`.
                Launch = new ServerLaunchOptions { Command = LaunchCommand() },
                Service = new ControlServiceOptions
                {
                    LoadRoots = parse.GetValue(loadRoot) ?? [],
                    MaxDocumentBytes = parse.GetValue(maxDocumentBytes),
                    Manager = new PipelineManagerOptions
                    {
                        Namespace = parse.GetValue(ns),
                        Placement = parse.GetValue(placement) == "round-robin" ? PlacementPolicy.RoundRobin : PlacementPolicy.None,
                    },
                },
            },
            parse.GetValue(token),
            parse.GetValue(tokenFile)?.FullName,
            parse.GetValue(parent)).GetAwaiter().GetResult());
        return command;
    }

    // The host handles SIGINT and SIGTERM itself (ConsoleLifetime): the action is synchronous so that the
    // command line library does not race it with its own termination handling.
    private static async Task<int> Serve(string path, ControlServerOptions options, string? token, string? tokenFile, int parent)
    {
        AccessTokens tokens;
        try
        {
            tokens = Tokens(token, tokenFile);
        }
        catch (Exception e) when (e is ArgumentException or FormatException or IOException or InvalidDataException or UnauthorizedAccessException)
        {
            await Console.Error.WriteLineAsync($"flowline serve: {e.Message}").ConfigureAwait(false);
            return ExitCodes.Failed;
        }

        ControlServer server;
        try
        {
            server = await ControlServer.StartAsync(path, options with { Tokens = tokens }).ConfigureAwait(false);
        }
        catch (DocumentValidationException e)
        {
            await Console.Error.WriteLineAsync(e.Message).ConfigureAwait(false);
            return ExitCodes.Failed;
        }
        catch (Exception e) when (e is ArgumentException or IOException or InvalidOperationException)
        {
            var message = e is IOException && e.Message.Contains("address already in use", StringComparison.OrdinalIgnoreCase)
                ? $"port {options.Port} on {options.Host} is already in use; give another with --port (0 picks a free one)"
                : e.Message;
            await Console.Error.WriteLineAsync($"flowline serve: {message}").ConfigureAwait(false);
            return ExitCodes.Failed;
        }

        await using (server.ConfigureAwait(false))
        {
            var scopes = tokens.Required ? string.Join(", ", tokens.Scopes.Select(s => s.ToString().ToLowerInvariant())) : "none (loopback only)";
            Console.WriteLine($"serving {path} at {server.Address} (namespace {server.Service.Manager.Namespace}; tokens: {scopes}); Ctrl-C or SIGTERM stops");
            if (parent > 0)
            {
                // A server started by a benchmark stops with it, through the same path as SIGTERM.
                ParentWatch.Watch(parent, () => ThisProcess.SendSignal(Environment.ProcessId, 15));
            }

            await server.WaitForShutdownAsync().ConfigureAwait(false);
        }

        Console.WriteLine("stopped; the pipeline is shut down and its streams removed");
        return ExitCodes.Ok;
    }

    /// <summary>The program (and assembly) that runs this command line again.</summary>
    internal static string[] LaunchCommand()
    {
        var host = Environment.ProcessPath!;
        return Path.GetFileNameWithoutExtension(host) == "dotnet" ? [host, typeof(ServeCommand).Assembly.Location] : [host];
    }

    /// <summary>The tokens from --token, --token-file, then the environment; none when nothing is given.</summary>
    /// <remarks>What the command line gives wins over the environment; the environment is read only when the command line gives nothing.</remarks>
    internal static AccessTokens Tokens(string? token, string? tokenFile)
    {
        if (token is not null && tokenFile is not null)
        {
            throw new ArgumentException("give either --token or --token-file, not both");
        }

        if (token is null && tokenFile is null)
        {
            tokenFile = Environment.GetEnvironmentVariable(TokenFileVariable) is { Length: > 0 } f ? f : null;
            token = tokenFile is null && Environment.GetEnvironmentVariable(TokenVariable) is { Length: > 0 } t ? t : null;
        }

        if (token is not null)
        {
            token = token.Trim();
            if (token.Length == 0 || token.Any(char.IsWhiteSpace))
            {
                throw new ArgumentException("a token must not be empty or contain spaces");
            }
        }

        return tokenFile is not null ? AccessTokens.Scoped(TokenFile.ReadScoped(tokenFile))
            : token is not null ? AccessTokens.Single(token)
            : AccessTokens.None;
    }
}
