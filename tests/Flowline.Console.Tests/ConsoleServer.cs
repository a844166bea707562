using System.Diagnostics;
using Flowline.ControlPlane;
using Flowline.Testing;

namespace Flowline.Console.Tests;

/// <summary>
/// A real control server on a free port serving a copy of examples/ao-basic in a directory of its own, with a
/// namespace and a discovery directory no other test uses; disposing it stops it and checks that no region
/// and no worker process of its namespace is left.
/// </summary>
public sealed class ConsoleServer : IAsyncDisposable
{
    private ConsoleServer(string directory, string @namespace, ControlServer server)
    {
        TestDirectory = directory;
        Namespace = @namespace;
        Server = server;
    }

    /// <summary>The test's directory (the document is <see cref="ConfigPath"/>).</summary>
    public string TestDirectory { get; }

    /// <summary>The namespace of the served pipeline.</summary>
    public string Namespace { get; }

    /// <summary>The server.</summary>
    public ControlServer Server { get; }

    /// <summary>The served document.</summary>
    public string ConfigPath => Path.Combine(TestDirectory, "pipeline.yaml");

    /// <summary>The discovery directory of this server and those it launches.</summary>
    public string DiscoveryDirectory => Path.Combine(TestDirectory, "servers");

    /// <summary>The console's URL.</summary>
    public string Url => Server.Address.ToString();

    /// <summary>The example document.</summary>
    public static string ExampleYaml => File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "examples", "ao-basic", "pipeline.yaml"));

    /// <summary>The program that runs the command line (for launched servers).</summary>
    public static string[] CliCommand => ["dotnet", Path.Combine(AppContext.BaseDirectory, "Flowline.Cli.dll")];

    /// <summary>Starts a server; <paramref name="configure"/> may add tokens or launching.</summary>
    public static async Task<ConsoleServer> StartAsync(Func<ControlServerOptions, ControlServerOptions>? configure = null)
    {
        var directory = Path.Combine(Path.GetTempPath(), "flowline-console-tests-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(directory);
        var ns = "con-" + Guid.NewGuid().ToString("N")[..10];
        File.WriteAllText(Path.Combine(directory, "pipeline.yaml"), ExampleYaml);
        var options = new ControlServerOptions
        {
            Port = 0,
            DiscoveryDirectory = Path.Combine(directory, "servers"),
            Service = new ControlServiceOptions { Manager = new Runtime.PipelineManagerOptions { Namespace = ns } },
            Api = new ControlApiOptions { KeepaliveInterval = TimeSpan.FromMilliseconds(500) },
        };
        options = configure?.Invoke(options) ?? options;
        try
        {
            var server = await ControlServer.StartAsync(Path.Combine(directory, "pipeline.yaml"), options);
            return new ConsoleServer(directory, ns, server);
        }
        catch
        {
            Directory.Delete(directory, recursive: true);
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await Server.DisposeAsync();
            AssertNothingLeft(Namespace);
        }
        finally
        {
            try
            {
                Directory.Delete(TestDirectory, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>No region of <paramref name="namespace"/> and no process started for it (a worker, a launched server) alive; processes get 10 s to exit.</summary>
    public static void AssertNothingLeft(string @namespace)
    {
        var watch = Stopwatch.StartNew();
        while (ProcessesWith(@namespace).Count > 0 && watch.Elapsed < TimeSpan.FromSeconds(10))
        {
            Thread.Sleep(20);
        }

        Assert.Empty(ProcessesWith(@namespace));
        Leftovers.AssertNothingLeft(TimeSpan.Zero, @namespace);
    }

    /// <summary>Live (not zombie) processes whose command line names <paramref name="namespace"/>.</summary>
    public static IReadOnlyList<int> ProcessesWith(string @namespace) => Leftovers.ProcessesNaming([@namespace]);
}
