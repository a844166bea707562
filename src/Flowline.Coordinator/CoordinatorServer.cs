using System.Data.Common;
using System.Net;
using Flowline.Coordinator.Storage;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Flowline.Coordinator;

/// <summary>Settings of a <see cref="CoordinatorServer"/>.</summary>
public sealed record CoordinatorOptions
{
    /// <summary>The address to listen on: an IP address or <c>localhost</c> (default 127.0.0.1).</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>The port (default 8780; 0 picks a free one).</summary>
    public int Port { get; init; } = 8780;

    /// <summary>The data directory: the artifact store (<c>artifacts/</c>) and the generated tokens.</summary>
    public required string DataDirectory { get; init; }

    /// <summary>The accepted tokens; at least one.</summary>
    public required CoordinatorTokens Tokens { get; init; }

    /// <summary>The largest request body, in bytes (default 64 MiB; uploaded artifacts travel in base64 inside it).</summary>
    public long MaxRequestBytes { get; init; } = 64L << 20;

    /// <summary>The largest artifact, in bytes (default 256 MiB).</summary>
    public long MaxArtifactBytes { get; init; } = 256L << 20;

    /// <summary>A worker without a heartbeat for this long is STALE (default 2 minutes; zero: never).</summary>
    public TimeSpan StaleAfter { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>How many times an execution whose agent was lost is claimed at most (1: never retried, it FAILS with AGENT_LOST).</summary>
    public int MaxAttempts { get; init; } = 1;

    /// <summary>How long an idempotency key is kept (default 7 days; zero: forever). After it, the same key makes a new execution.</summary>
    public TimeSpan IdempotencyRetention { get; init; } = TimeSpan.FromDays(7);

    /// <summary>How often the sweeper looks for lost agents and expired keys (default: a quarter of <see cref="StaleAfter"/>, between 100 ms and 15 s).</summary>
    public TimeSpan? SweepInterval { get; init; }

    /// <summary>Directories register-by-path may read descriptors from (empty: register-by-path is refused; the body form always works).</summary>
    public IReadOnlyList<string> ReleaseRoots { get; init; } = [];

    /// <summary>Writes warnings and errors to the console (never request headers or tokens).</summary>
    public bool LogToConsole { get; init; }
}

/// <summary>
/// A running coordinator: Kestrel serving <see cref="CoordinatorApi"/> over a migrated
/// <see cref="ICoordinatorStore"/>. Disposing it stops the server and disposes the store.
/// </summary>
public sealed class CoordinatorServer : IAsyncDisposable
{
    private readonly WebApplication app;
    private readonly CancellationTokenSource stopSweeper = new();
    private readonly Task sweeper;
    private int disposed;

    private CoordinatorServer(WebApplication app, ICoordinatorStore store, Uri address, CoordinatorOptions options, ILogger log)
    {
        this.app = app;
        Store = store;
        Address = address;
        var interval = options.SweepInterval ?? TimeSpan.FromMilliseconds(Math.Clamp(options.StaleAfter.TotalMilliseconds / 4, 100, 15_000));
        sweeper = Task.Run(() => SweepAsync(store, options, interval, log, stopSweeper.Token));
    }

    /// <summary>
    /// The sweeper: executions whose agent stopped heartbeating are retried or failed (never left RUNNING
    /// forever), expired idempotency keys are deleted. Every coordinator runs one; the store makes them safe together.
    /// </summary>
    private static async Task SweepAsync(ICoordinatorStore store, CoordinatorOptions options, TimeSpan interval, ILogger log, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(interval, stop).ConfigureAwait(false);
                var swept = await store.SweepAsync(options.StaleAfter, options.MaxAttempts, options.IdempotencyRetention, stop).ConfigureAwait(false);
                if (swept.Requeued + swept.Failed + swept.Cancelled > 0)
                {
                    log.LogWarning("lost agents: {Requeued} execution(s) queued again, {Failed} failed, {Cancelled} cancelled", swept.Requeued, swept.Failed, swept.Cancelled);
                }
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
#pragma warning disable CA1031 // the sweeper outlives a failed sweep (the store may be briefly unreachable): it logs and tries again
            catch (Exception e)
#pragma warning restore CA1031
            {
                log.LogWarning("sweep failed (tried again in {Interval}): {Message}", interval, e.Message);
            }
        }
    }

    /// <summary>The store.</summary>
    public ICoordinatorStore Store { get; }

    /// <summary>The base address clients use.</summary>
    public Uri Address { get; }

    /// <summary>Completes when the host stops (SIGTERM, Ctrl-C or <see cref="DisposeAsync"/>).</summary>
    public Task WaitForShutdownAsync(CancellationToken cancellationToken = default) => app.WaitForShutdownAsync(cancellationToken);

    /// <summary>
    /// Migrates <paramref name="store"/>, then listens. The server owns the store from here on: on a
    /// failure it is disposed, and nothing is left running.
    /// </summary>
    public static async Task<CoordinatorServer> StartAsync(ICoordinatorStore store, CoordinatorOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(options);
        WebApplication? app = null;
        try
        {
            if (options.Tokens.Count == 0)
            {
                throw new ArgumentException("the coordinator needs at least one token");
            }

            var address = string.Equals(options.Host, "localhost", StringComparison.OrdinalIgnoreCase)
                ? IPAddress.Loopback
                : IPAddress.TryParse(options.Host.Trim('[', ']'), out var ip)
                    ? ip
                    : throw new ArgumentException($"--host must be an IP address or localhost, not '{options.Host}'");
            if (options.StaleAfter < TimeSpan.Zero)
            {
                throw new ArgumentException("--stale-after must not be negative");
            }

            if (options.MaxAttempts < 1)
            {
                throw new ArgumentException("--max-attempts must be at least 1");
            }

            if (options.Port is < 0 or > 65535)
            {
                throw new ArgumentException($"--port must be between 0 and 65535, not {options.Port}");
            }

            await store.MigrateAsync(cancellationToken).ConfigureAwait(false);
            var registrar = new ReleaseRegistrar(store, new ArtifactStore(Path.Combine(options.DataDirectory, "artifacts")), options.MaxArtifactBytes) { ReleaseRoots = options.ReleaseRoots };

            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            if (options.LogToConsole)
            {
                builder.Logging.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning);
            }

            builder.Services.AddOpenApi(CoordinatorApi.OpenApiName, o => o.AddDocumentTransformer((document, _, _) =>
            {
                document.Info.Title = "Flowline coordinator";
                document.Info.Version = typeof(CoordinatorServer).Assembly.GetName().Version?.ToString(3) ?? "0";
                document.Info.Description =
                    "Releases, host agents, executions and interactions on TPF's /tpf paths (docs/coordinator.md). Every request carries " +
                    "`Authorization: Bearer TOKEN`: admin tokens for /tpf/admin, control-plane tokens for /tpf/control-plane, agent (or admin) " +
                    "tokens for /tpf/agent and an agent's own registration and heartbeat. Bodies are JSON objects (camelCase), described in " +
                    "docs/coordinator.md; errors are RFC 9457 problem+json with a stable `code`.";
                return Task.CompletedTask;
            }));
            builder.Services.Configure<ConsoleLifetimeOptions>(o => o.SuppressStatusMessages = true);
            builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(5));
            builder.WebHost.ConfigureKestrel(k =>
            {
                k.Listen(address, options.Port);
                k.AddServerHeader = false;
                k.Limits.MaxRequestBodySize = options.MaxRequestBytes;
            });
            app = builder.Build();
            var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Flowline.Coordinator");
            app.Use((context, next) => HandleErrorsAsync(context, next, log));
            app.UseStatusCodePages(context => context.HttpContext.Response.HasStarted
                ? Task.CompletedTask
                : Problem.Result(
                    context.HttpContext.Response.StatusCode,
                    context.HttpContext.Response.StatusCode == 405 ? ProblemCodes.MethodNotAllowed : ProblemCodes.NotFound,
                    context.HttpContext.Response.StatusCode == 405 ? $"{context.HttpContext.Request.Method} is not allowed on {context.HttpContext.Request.Path}" : $"no endpoint at {context.HttpContext.Request.Path}",
                    context.HttpContext.Request.Path).ExecuteAsync(context.HttpContext));
            app.MapCoordinatorEndpoints(store, registrar, options.Tokens, options.StaleAfter);
            await app.StartAsync(cancellationToken).ConfigureAwait(false);

            var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            var host = IPAddress.Any.Equals(address) ? "127.0.0.1" : IPAddress.IPv6Any.Equals(address) ? "[::1]" : address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{address}]" : address.ToString();
            return new CoordinatorServer(app, store, new Uri($"http://{host}:{new Uri(bound).Port}/"), options, log);
        }
        catch
        {
            if (app is not null)
            {
                await app.DisposeAsync().ConfigureAwait(false);
            }

            await store.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Every failure becomes a problem+json response; faults of the coordinator are logged without the request's headers.</summary>
    private static async Task HandleErrorsAsync(HttpContext context, Func<Task> next, ILogger log)
    {
        IResult? problem;
        try
        {
            await next().ConfigureAwait(false);
            return;
        }
        catch (ProblemException e)
        {
            problem = Problem.Of(e, context);
        }
        catch (ReleaseImmutableException e)
        {
            problem = Problem.Result(409, ProblemCodes.ReleaseImmutable, e.Message, context.Request.Path, new() { ["existingContentDigest"] = e.Existing.ContentDigest });
        }
        catch (IdempotencyConflictException e)
        {
            problem = Problem.Result(409, ProblemCodes.IdempotencyConflict, e.Message, context.Request.Path, new() { ["executionId"] = e.ExecutionId });
        }
        catch (ActivationConflictException e)
        {
            if (e.Current is { } current)
            {
                context.Response.Headers.ETag = $"\"{current}\"";
            }

            problem = Problem.Result(412, ProblemCodes.ActivationConflict, e.Message, context.Request.Path, new() { ["currentActivationId"] = e.Current });
        }
        catch (BadHttpRequestException e) when (e.StatusCode == 413)
        {
            problem = Problem.Result(413, ProblemCodes.PayloadTooLarge, "the request body is larger than the coordinator accepts (--max-request-bytes)", context.Request.Path);
        }
        catch (BadHttpRequestException e)
        {
            problem = Problem.Result(400, ProblemCodes.InvalidRequest, e.Message, context.Request.Path);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            return;
        }
        catch (DbException e) when (e.IsTransient || e is Npgsql.NpgsqlException and not Npgsql.PostgresException)
        {
            log.LogWarning("store unavailable on {Method} {Path}: {Message}", context.Request.Method, context.Request.Path, e.Message);
            context.Response.Headers.RetryAfter = "1";
            problem = Problem.Result(503, ProblemCodes.StoreUnavailable, "the coordinator's store cannot be reached; retry later", context.Request.Path);
        }
#pragma warning disable CA1031 // the last resort: any fault is a 500 with a body, and logged
        catch (Exception e)
#pragma warning restore CA1031
        {
            log.LogError(e, "fault on {Method} {Path}", context.Request.Method, context.Request.Path);
            problem = Problem.Result(500, ProblemCodes.Internal, "the coordinator failed on this request; its log has the details", context.Request.Path);
        }

        if (!context.Response.HasStarted)
        {
            await problem.ExecuteAsync(context).ConfigureAwait(false);
        }
    }

    /// <summary>Stops listening and disposes the store.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref disposed, 1) != 0)
        {
            return;
        }

        try
        {
            await stopSweeper.CancelAsync().ConfigureAwait(false);
            await sweeper.ConfigureAwait(false);
            await app.StopAsync().ConfigureAwait(false);
        }
        finally
        {
            stopSweeper.Dispose();
            await app.DisposeAsync().ConfigureAwait(false);
            await Store.DisposeAsync().ConfigureAwait(false);
        }
    }
}
