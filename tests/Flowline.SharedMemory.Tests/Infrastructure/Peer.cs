using System.Collections.Concurrent;
using System.Diagnostics;
using Flowline.SharedMemory.Diagnostics;

namespace Flowline.SharedMemory.Tests.Infrastructure;

/// <summary>A child process running Flowline.SharedMemory.TestPeer, killed when the test ends.</summary>
public sealed class Peer : IDisposable
{
    private static readonly ConcurrentDictionary<int, Peer> Running = new();
    private readonly LineProcess process;

    private Peer(LineProcess process)
    {
        this.process = process;
    }

    public int Pid => process.Pid;

    public bool HasExited => process.HasExited;

    public int ExitCode => process.ExitCode;

    public string ErrorOutput => process.ErrorOutput;

    /// <summary>Peers that have not been disposed yet (for the leak check).</summary>
    public static IReadOnlyCollection<int> Alive => Running.Keys.Where(pid => Running[pid] is { HasExited: false }).ToList();

    /// <summary>Starts the peer with a role and key/value arguments; it exits if this process dies.</summary>
    public static Peer Start(string role, params string[] arguments)
    {
        var info = new ProcessStartInfo(DotnetHost.Path);
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Flowline.SharedMemory.TestPeer.dll"));
        info.ArgumentList.Add(role);
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        info.ArgumentList.Add("--parent");
        info.ArgumentList.Add(Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var peer = new Peer(LineProcess.Start(info, $"peer '{role}'"));
        Running[peer.Pid] = peer;
        return peer;
    }

    /// <summary>Waits for a line starting with <paramref name="prefix"/>; fails the test if the peer exits or the time runs out.</summary>
    public string Expect(string prefix, TimeSpan? timeout = null) => process.Expect(prefix, timeout ?? TimeSpan.FromSeconds(30));

    /// <summary>Kills the peer with SIGKILL and waits for it to be gone.</summary>
    public void Kill() => process.Kill();

    /// <summary>Waits for the peer to exit; true if it did within the timeout.</summary>
    public bool WaitForExit(TimeSpan timeout) => process.WaitForExit(timeout);

    public void Dispose()
    {
        process.Dispose();
        Running.TryRemove(Pid, out _);
    }
}
