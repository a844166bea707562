using System.CommandLine;
using Flowline.Coordinator;

namespace Flowline.Cli.Commands;

/// <summary><c>flowline coordinator</c>: releases per tenant over HTTP, with the state in SQLite or PostgreSQL (docs/coordinator.md).</summary>
internal static class CoordinatorCommand
{
    public static Command Create()
    {
        var store = new Option<string?>("--store") { Description = "Where the state is: a SQLite file or directory (default: coordinator.db in the data directory), or PostgreSQL (postgres://user:password@host:port/database, or a connection string)." };
        var dataDir = new Option<string?>("--data-dir") { Description = "The data directory: artifact store, generated tokens and the default SQLite file (default $XDG_DATA_HOME/flowline/coordinator or ~/.local/share/flowline/coordinator)." };
        var host = new Option<string>("--host") { Description = "Address to listen on: an IP address or localhost.", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "Port to listen on (0 picks a free one).", DefaultValueFactory = _ => 8780 };
        var tokensFile = new Option<FileInfo?>("--tokens-file") { Description = $"A file of tokens, one a line: 'ROLE TENANTS TOKEN' (ROLE admin, control-plane or agent; TENANTS * or a,b). Also {CoordinatorTokens.Variable} (the same text). Without either, admin.token, control-plane.token and agent.token in the data directory (created on first start)." };
        var maxRequest = new Option<long>("--max-request-bytes") { Description = "The largest request body (uploaded artifacts travel in it, in base64).", DefaultValueFactory = _ => 64L << 20 };
        var maxArtifact = new Option<long>("--max-artifact-bytes") { Description = "The largest artifact a release may pin.", DefaultValueFactory = _ => 256L << 20 };
        var staleAfter = new Option<double>("--stale-after") { Description = "Seconds without a heartbeat after which a worker is STALE (0: never).", DefaultValueFactory = _ => 120 };
        var releaseRoot = new Option<string[]>("--release-root") { Description = "A directory register-by-path may read release descriptors and artifacts from (repeatable; without it, register-by-path is refused and releases are uploaded in the body).", AllowMultipleArgumentsPerToken = false };
        var maxAttempts = new Option<int>("--max-attempts") { Description = "How many times an execution whose agent was lost is claimed at most (1: not retried, it fails with AGENT_LOST).", DefaultValueFactory = _ => 1 };
        var keyRetention = new Option<double>("--idempotency-retention") { Description = "Hours an idempotency key is kept (0: forever).", DefaultValueFactory = _ => 168 };
        var command = new Command("coordinator", "Run the coordinator: releases, agents, executions and interactions per tenant over HTTP (the seed's /tpf paths), until Ctrl-C or SIGTERM.")
        {
            store, dataDir, host, port, tokensFile, maxRequest, maxArtifact, staleAfter, releaseRoot, maxAttempts, keyRetention,
        };
        command.SetAction(parse => Run(
            parse.GetValue(store), parse.GetValue(dataDir), parse.GetValue(host)!, parse.GetValue(port),
            parse.GetValue(tokensFile)?.FullName, parse.GetValue(maxRequest), parse.GetValue(maxArtifact), parse.GetValue(staleAfter),
            new Extra(parse.GetValue(releaseRoot) ?? [], parse.GetValue(maxAttempts), parse.GetValue(keyRetention))).GetAwaiter().GetResult());
        return command;
    }

    private sealed record Extra(string[] ReleaseRoots, int MaxAttempts, double RetentionHours);

    private static async Task<int> Run(string? storeText, string? dataDir, string host, int port, string? tokensFile, long maxRequest, long maxArtifact, double staleAfter, Extra extra)
    {
        var data = Path.GetFullPath(dataDir ?? CoordinatorStores.DefaultDataDirectory());
        CoordinatorServer server;
        try
        {
            if (maxRequest < 1 || maxArtifact < 1)
            {
                throw new ArgumentException("--max-request-bytes and --max-artifact-bytes must be at least 1");
            }

            if (!double.IsFinite(staleAfter) || staleAfter < 0)
            {
                throw new ArgumentException($"--stale-after must be a number of seconds, at least 0, not {staleAfter}");
            }

            if (!double.IsFinite(extra.RetentionHours) || extra.RetentionHours < 0)
            {
                throw new ArgumentException($"--idempotency-retention must be a number of hours, at least 0, not {extra.RetentionHours}");
            }

            foreach (var root in extra.ReleaseRoots)
            {
                if (!Directory.Exists(root))
                {
                    throw new ArgumentException($"--release-root {root}: no such directory");
                }
            }

            Directory.CreateDirectory(data);
            var tokens = Tokens(tokensFile, data);
            var store = CoordinatorStores.Open(storeText, data);
            server = await CoordinatorServer.StartAsync(store, new CoordinatorOptions
            {
                Host = host,
                Port = port,
                DataDirectory = data,
                Tokens = tokens,
                MaxRequestBytes = maxRequest,
                MaxArtifactBytes = maxArtifact,
                StaleAfter = TimeSpan.FromSeconds(staleAfter),
                ReleaseRoots = [.. extra.ReleaseRoots.Select(Path.GetFullPath)],
                MaxAttempts = extra.MaxAttempts,
                IdempotencyRetention = TimeSpan.FromHours(extra.RetentionHours),
                LogToConsole = true,
            }).ConfigureAwait(false);
        }
        catch (Exception e) when (e is ArgumentException or FormatException or IOException or UnauthorizedAccessException or InvalidOperationException or System.Data.Common.DbException)
        {
            var message = e is IOException && e.Message.Contains("address already in use", StringComparison.OrdinalIgnoreCase)
                ? $"port {port} on {host} is already in use; give another with --port (0 picks a free one)"
                : e is System.Data.Common.DbException
                    ? $"cannot open the store given by --store ({(storeText is null ? "SQLite in " + data : PostgresCoordinatorDescription(storeText))}): {e.Message}"
                    : e.Message;
            await Console.Error.WriteLineAsync($"flowline coordinator: {message}").ConfigureAwait(false);
            return ExitCodes.Failed;
        }

        await using (server.ConfigureAwait(false))
        {
            var version = await server.Store.SchemaVersionAsync().ConfigureAwait(false);
            Console.WriteLine($"coordinator at {server.Address} (store: {server.Store.Description}, schema version {version}; artifacts in {Path.Combine(data, "artifacts")}); Ctrl-C or SIGTERM stops");
            await server.WaitForShutdownAsync().ConfigureAwait(false);
        }

        Console.WriteLine("stopped");
        return ExitCodes.Ok;
    }

    /// <summary>The store's description without its password.</summary>
    private static string PostgresCoordinatorDescription(string store)
    {
        try
        {
            var b = new Npgsql.NpgsqlConnectionStringBuilder(Flowline.Coordinator.Storage.PostgresCoordinatorStore.ConnectionString(store));
            return b.Host is null ? store : $"PostgreSQL {b.Username}@{b.Host}:{b.Port}/{b.Database}";
        }
        catch (ArgumentException)
        {
            return "the given store";
        }
    }

    /// <summary>--tokens-file, else the environment, else the token files of the data directory (created and announced on first start).</summary>
    private static CoordinatorTokens Tokens(string? file, string data)
    {
        if (file is not null)
        {
            return CoordinatorTokens.Parse(File.ReadAllText(file), file);
        }

        if (Environment.GetEnvironmentVariable(CoordinatorTokens.Variable) is { Length: > 0 } text)
        {
            return CoordinatorTokens.Parse(text, CoordinatorTokens.Variable);
        }

        var (tokens, created) = CoordinatorTokens.LoadOrCreateDefaults(data);
        foreach (var path in created)
        {
            Console.WriteLine($"created token file {path} (mode 0600): send its content as 'Authorization: Bearer <token>'");
        }

        if (created.Count == 0)
        {
            Console.WriteLine($"tokens: {Path.Combine(data, "admin.token")}, {Path.Combine(data, "control-plane.token")} and {Path.Combine(data, "agent.token")} (every tenant)");
        }

        return tokens;
    }
}
