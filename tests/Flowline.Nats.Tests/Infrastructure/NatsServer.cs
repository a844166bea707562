using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Flowline.Nats.Tests.Infrastructure;

/// <summary>
/// A real <c>nats-server</c> on a free loopback port, started by the test and killed when it is disposed
/// (also when the test fails). A machine without <c>nats-server</c> fails the test: CI installs it.
/// </summary>
public sealed class NatsServer : IDisposable
{
    private static readonly ConcurrentDictionary<NatsServer, bool> Running = new();
    private readonly string? token;
    private readonly string? storeDirectory;
    private readonly string[] extraArguments;
    private Process? process;

    private NatsServer(int port, string? token, bool jetStream, string[] extraArguments)
    {
        Port = port;
        this.token = token;
        this.extraArguments = extraArguments;
        storeDirectory = jetStream ? Directory.CreateTempSubdirectory("flowline-nats-").FullName : null;
    }

    /// <summary>The server's port on 127.0.0.1.</summary>
    public int Port { get; }

    /// <summary>The server's URL.</summary>
    public string Url => $"nats://127.0.0.1:{Port}";

    /// <summary>Servers not disposed yet whose process still runs (for the leak check).</summary>
    public static int Alive => Running.Keys.Count(s => s.process is { HasExited: false });

    /// <summary>Starts a server; with <paramref name="token"/> it refuses clients without that token; <paramref name="extraArguments"/> go to nats-server as they are (--user, --tls...).</summary>
    public static NatsServer Start(string? token = null, bool jetStream = false, params string[] extraArguments)
    {
        var server = new NatsServer(FreePort(), token, jetStream, extraArguments);
        Running[server] = true;
        try
        {
            server.Launch();
        }
        catch
        {
            server.Dispose();
            throw;
        }

        return server;
    }

    /// <summary>Kills the server (SIGKILL) and waits until it is gone.</summary>
    public void Kill()
    {
        if (process is { HasExited: false })
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit(10_000);
        }

        process?.Dispose();
        process = null;
    }

    /// <summary>Starts the server again on the same port.</summary>
    public void Restart()
    {
        Kill();
        Launch();
    }

    private void Launch()
    {
        var path = FindOnPath("nats-server")
            ?? throw new InvalidOperationException(
                "nats-server was not found on PATH: the NATS bridge tests need a real server. Install it (Debian: apt-get install -y nats-server); .ci/run does.");
        var info = new ProcessStartInfo(path) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        info.ArgumentList.Add("-a");
        info.ArgumentList.Add("127.0.0.1");
        info.ArgumentList.Add("-p");
        info.ArgumentList.Add(Port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (token is not null)
        {
            info.ArgumentList.Add("--auth");
            info.ArgumentList.Add(token);
        }

        if (storeDirectory is not null)
        {
            info.ArgumentList.Add("-js");
            info.ArgumentList.Add("-sd");
            info.ArgumentList.Add(storeDirectory);
        }

        foreach (var argument in extraArguments)
        {
            info.ArgumentList.Add(argument);
        }

        process = Process.Start(info)!;
        process.ErrorDataReceived += (_, _) => { };
        process.OutputDataReceived += (_, _) => { };
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(20))
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"nats-server exited with code {process.ExitCode} at start (port {Port})");
            }

            try
            {
                using var client = new TcpClient();
                client.Connect(IPAddress.Loopback, Port);
                return;
            }
            catch (SocketException)
            {
                Thread.Sleep(20);
            }
        }

        throw new InvalidOperationException($"nats-server did not listen on port {Port} within 20 s");
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Append("/usr/sbin").Append("/usr/bin")
            .Select(dir => Path.Combine(dir, name))
            .FirstOrDefault(File.Exists);

    public void Dispose()
    {
        Kill();
        Running.TryRemove(this, out _);
        if (storeDirectory is not null && Directory.Exists(storeDirectory))
        {
            Directory.Delete(storeDirectory, recursive: true);
        }
    }
}
