using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Flowline.SharedMemory.Tests.Infrastructure;

/// <summary>A child process running Flowline.SharedMemory.TestPeer, killed when the test ends.</summary>
public sealed class Peer : IDisposable
{
    private static readonly ConcurrentDictionary<int, Peer> Running = new();
    private readonly Process process;
    private readonly BlockingCollection<string> lines = [];
    private readonly ConcurrentQueue<string> errors = new();
    private bool disposed;
    private bool exitedAtDispose;

    private Peer(Process process)
    {
        this.process = process;
        Pid = process.Id;
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                lines.CompleteAdding();
            }
            else
            {
                lines.Add(e.Data);
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                errors.Enqueue(e.Data);
            }
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public int Pid { get; }

    public bool HasExited => disposed ? exitedAtDispose : process.HasExited;

    public int ExitCode => process.ExitCode;

    public string ErrorOutput => string.Join(Environment.NewLine, errors);

    /// <summary>Peers that have not been disposed yet (for the leak check).</summary>
    public static IReadOnlyCollection<int> Alive => Running.Keys.Where(pid => Running[pid] is { HasExited: false }).ToList();

    /// <summary>Starts the peer with a role and key/value arguments; it exits if this process dies.</summary>
    public static Peer Start(string role, params string[] arguments)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "Flowline.SharedMemory.TestPeer.dll");
        var info = new ProcessStartInfo(DotnetHost())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(dll);
        info.ArgumentList.Add(role);
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        info.ArgumentList.Add("--parent");
        info.ArgumentList.Add(Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var process = Process.Start(info) ?? throw new InvalidOperationException("cannot start the test peer");
        var peer = new Peer(process);
        Running[process.Id] = peer;
        return peer;
    }

    /// <summary>Waits for a line starting with <paramref name="prefix"/>; fails the test if the peer exits or the time runs out.</summary>
    public string Expect(string prefix, TimeSpan? timeout = null)
    {
        var limit = timeout ?? TimeSpan.FromSeconds(30);
        var watch = Stopwatch.StartNew();
        while (true)
        {
            var left = limit - watch.Elapsed;
            if (left <= TimeSpan.Zero || !lines.TryTake(out var line, left))
            {
                throw new TimeoutException($"peer {Pid} did not print '{prefix}' within {limit.TotalSeconds:0.#} s (exited: {HasExited}; stderr: {ErrorOutput})");
            }

            if (line.StartsWith(prefix, StringComparison.Ordinal))
            {
                return line;
            }
        }
    }

    /// <summary>Kills the peer with SIGKILL and waits for it to be gone.</summary>
    public void Kill()
    {
        if (!process.HasExited)
        {
            _ = kill(process.Id, 9);
            process.WaitForExit(10_000);
        }
    }

    /// <summary>Waits for the peer to exit; true if it did within the timeout.</summary>
    public bool WaitForExit(TimeSpan timeout) => process.WaitForExit(timeout);

    public void Dispose()
    {
        if (disposed)
        {
            return;
        }

        Kill();
        exitedAtDispose = process.HasExited;
        disposed = true;
        Running.TryRemove(Pid, out _);
        process.Dispose();
        lines.Dispose();
    }

    internal static string DotnetHost()
    {
        var fromSdk = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(fromSdk) && File.Exists(fromSdk))
        {
            return fromSdk;
        }

        // The runtime lives in <dotnet root>/shared/Microsoft.NETCore.App/<version>/.
        var root = Path.GetFullPath(Path.Combine(RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", ".."));
        var host = Path.Combine(root, "dotnet");
        return File.Exists(host) ? host : "dotnet";
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int signal);
}
