using System.Net;
using Flowline.SharedMemory.Liveness;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Flowline.ControlPlane;

/// <summary>Settings of a <see cref="ControlServer"/>.</summary>
public sealed record ControlServerOptions
{
    /// <summary>The address to listen on: an IP address or <c>localhost</c> (default 127.0.0.1).</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>The port (default 8765; 0 picks a free one).</summary>
    public int Port { get; init; } = 8765;

    /// <summary>The accepted bearer tokens; none means no authentication, which only a loopback address allows.</summary>
    public AccessTokens Tokens { get; init; } = AccessTokens.None;

    /// <summary>Settings of the service (manager options, load roots, event history).</summary>
    public ControlServiceOptions Service { get; init; } = new();

    /// <summary>Settings of the endpoints (keepalive, previews).</summary>
    public ControlApiOptions Api { get; init; } = new();

    /// <summary>The discovery directory to register in; null for the default, <see cref="string.Empty"/> for none.</summary>
    public string? DiscoveryDirectory { get; init; }

    /// <summary>How the console's <c>POST /servers</c> launches other local servers; null (the default) refuses with 501.</summary>
    public ServerLaunchOptions? Launch { get; init; }

    /// <summary>Writes the server's warnings and errors to the console (never request headers or tokens).</summary>
    public bool LogToConsole { get; init; }
}

/// <summary>
/// A running control plane: Kestrel serving one <see cref="ControlService"/> with the endpoints of
/// <see cref="ControlApi"/>, registered in the discovery directory while it runs. Disposing it stops
/// the server, shuts the pipeline down (removing its streams) and removes the discovery record.
/// </summary>
public sealed class ControlServer : IAsyncDisposable
{
    private readonly WebApplication app;
    private readonly string? record;
    private readonly ServerLauncher launcher;
    private int disposed;

    private ControlServer(WebApplication app, ControlService service, Uri address, string? record, ServerLauncher launcher)
    {
        this.app = app;
        this.launcher = launcher;
        Service = service;
        Address = address;
        this.record = record;
    }

    /// <summary>The service behind the endpoints.</summary>
    public ControlService Service { get; }

    /// <summary>The base address clients use.</summary>
    public Uri Address { get; }

    /// <summary>The discovery record's file, or null when not registered.</summary>
    public string? RecordFile => record;

    /// <summary>The host's services (the tests read its endpoints).</summary>
    internal IServiceProvider Services => app.Services;

    /// <summary>Completes when the host stops (SIGTERM, Ctrl-C or <see cref="DisposeAsync"/>).</summary>
    public Task WaitForShutdownAsync(CancellationToken cancellationToken = default) => app.WaitForShutdownAsync(cancellationToken);

    /// <summary>True for <c>localhost</c> and loopback IP addresses.</summary>
    public static bool IsLoopback(string host) =>
        string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase)
        || (IPAddress.TryParse(host.Trim('[', ']'), out var ip) && IPAddress.IsLoopback(ip));

    /// <summary>
    /// Loads the document, listens, and registers the server. Refuses a non-loopback address without a
    /// token. On any failure, nothing is left running or registered.
    /// </summary>
    public static Task<ControlServer> StartAsync(string configPath, ControlServerOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new ControlServerOptions();
        return StartAsync(() => new ControlService(configPath, options.Service), adopted: false, options, cancellationToken);
    }

    /// <summary>
    /// Serves <paramref name="manager"/> (a code-first pipeline's, for example): the server adopts it and
    /// shuts it down when disposed. Same rules as for a document.
    /// </summary>
    public static Task<ControlServer> StartAsync(Runtime.PipelineManager manager, ControlServerOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new ControlServerOptions();
        return StartAsync(() => new ControlService(manager, options.Service), adopted: true, options, cancellationToken);
    }

    private static async Task<ControlServer> StartAsync(Func<ControlService> createService, bool adopted, ControlServerOptions options, CancellationToken cancellationToken)
    {
        if (!IsLoopback(options.Host) && !options.Tokens.Required)
        {
            throw new ArgumentException($"refusing to listen on '{options.Host}' without a token: anyone who reaches it could drive the pipeline; give --token, --token-file or FLOWLINE_TOKEN, or listen on 127.0.0.1");
        }

        var address = string.Equals(options.Host, "localhost", StringComparison.OrdinalIgnoreCase)
            ? IPAddress.Loopback
            : IPAddress.TryParse(options.Host.Trim('[', ']'), out var ip)
                ? ip
                : throw new ArgumentException($"--host must be an IP address or localhost, not '{options.Host}'");
        if (options.Port is < 0 or > 65535)
        {
            throw new ArgumentException($"--port must be between 0 and 65535, not {options.Port}");
        }

        if (options.Service.MaxDocumentBytes < 1)
        {
            throw new ArgumentException($"--max-document-bytes must be at least 1, not {options.Service.MaxDocumentBytes}");
        }

        var service = createService();
        WebApplication? app = null;
        var directory = options.DiscoveryDirectory == "" ? null : new ServerDirectory(options.DiscoveryDirectory);
        var launcher = new ServerLauncher(options.Launch, directory, service);
        try
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            if (options.LogToConsole)
            {
                builder.Logging.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning);
            }

            builder.Services.Configure<ConsoleLifetimeOptions>(o => o.SuppressStatusMessages = true);
            builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(5));
            builder.Services.AddControlTelemetry(service);
            builder.WebHost.ConfigureKestrel(k =>
            {
                k.Listen(address, options.Port);
                k.AddServerHeader = false;

                // Every body is bounded, whoever reads it; the endpoints answer a longer one with a JSON 413.
                k.Limits.MaxRequestBodySize = options.Service.MaxDocumentBytes;
            });
            builder.Services.AddOpenApi(OpenApiDocument.Configure);
            app = builder.Build();

            // Unknown paths (404) and methods (405) answer with a JSON detail too, as FastAPI does.
            app.UseStatusCodePages(context => context.HttpContext.Response.HasStarted
                ? Task.CompletedTask
                : ControlApi.Error(context.HttpContext.Response.StatusCode, Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(context.HttpContext.Response.StatusCode)).ExecuteAsync(context.HttpContext));
            if (!options.Tokens.Required)
            {
                app.Use(ControlApi.LocalRequestsOnly);
            }

            app.MapControlEndpoints(service, options.Tokens, options.Api);
            app.MapConsoleEndpoints(service, options.Tokens, launcher, directory);
            app.MapOpenApiDocument(options.Tokens);
            app.Lifetime.ApplicationStopping.Register(service.Events.CompleteAll);
            await app.StartAsync(cancellationToken).ConfigureAwait(false);

            var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            var port = new Uri(bound).Port;
            var uri = new Uri($"http://{ServerRecord.ConnectHost(address.ToString())}:{port}/");
            service.ServerUrl = uri.ToString().TrimEnd('/');
            string? file = null;
            if (options.DiscoveryDirectory != "")
            {
                file = new ServerDirectory(options.DiscoveryDirectory).Register(new ServerRecord(
                    Environment.ProcessId, options.Host, port, options.Tokens.Required,
                    DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0, service.ConfigPath, ProcessIdentity.Current.StartTicks));
            }

            return new ControlServer(app, service, uri, file, launcher);
        }
        catch
        {
            if (app is not null)
            {
                await app.DisposeAsync().ConfigureAwait(false);
            }

            if (adopted)
            {
                service.Detach(); // the caller's pipeline keeps running: only the server failed
            }
            else
            {
                service.Dispose();
            }

            throw;
        }
    }

    /// <summary>Stops listening, ends event streams, shuts the pipeline down and removes the discovery record.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref disposed, 1) != 0)
        {
            return;
        }

        try
        {
            Service.Events.CompleteAll();
            await app.StopAsync().ConfigureAwait(false);
        }
        finally
        {
            launcher.Dispose();
            Service.Dispose();
            if (record is not null)
            {
                ServerDirectory.Unregister(record);
            }

            await app.DisposeAsync().ConfigureAwait(false);
        }
    }
}
