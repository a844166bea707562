using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;
using Flowline.SharedMemory.Liveness;

namespace Flowline.SharedMemory.Diagnostics;

/// <summary>
/// A child process that reports by lines on its standard output: the peer of a benchmark or of a
/// multi-process test. Lines are queued as they come; <see cref="Expect"/> waits for one with a given
/// prefix; standard error is kept for messages. Disposing kills it (SIGKILL) if it still runs.
/// </summary>
public sealed class LineProcess : IDisposable
{
    private readonly Process process;
    private readonly BlockingCollection<string> lines = [];
    private readonly ConcurrentQueue<string> errors = new();
    private bool disposed;
    private bool exitedAtDispose;

    private LineProcess(Process process, string name)
    {
        this.process = process;
        Name = name;
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

    /// <summary>What the process is, in messages (for example "the benchmark peer").</summary>
    public string Name { get; }

    /// <summary>Its process id.</summary>
    public int Pid { get; }

    /// <summary>True once it has exited.</summary>
    public bool HasExited => disposed ? exitedAtDispose : process.HasExited;

    /// <summary>Its exit code (once exited).</summary>
    public int ExitCode => process.ExitCode;

    /// <summary>What it wrote on standard error so far.</summary>
    public string ErrorOutput => string.Join(Environment.NewLine, errors);

    /// <summary>Starts <paramref name="info"/> with its output redirected.</summary>
    public static LineProcess Start(ProcessStartInfo info, string name)
    {
        ArgumentNullException.ThrowIfNull(info);
        info.RedirectStandardOutput = true;
        info.RedirectStandardError = true;
        info.UseShellExecute = false;
        var process = Process.Start(info) ?? throw new InvalidOperationException($"cannot start {name}");
        return new LineProcess(process, name);
    }

    /// <summary>Restricts it to the CPUs of <paramref name="mask"/>.</summary>
    public void SetAffinity(long mask) => process.ProcessorAffinity = (nint)mask;

    /// <summary>Waits for a line starting with <paramref name="prefix"/> and returns the whole line; <see cref="TimeoutException"/> if none comes in time.</summary>
    public string Expect(string prefix, TimeSpan timeout)
    {
        var watch = Stopwatch.StartNew();
        while (true)
        {
            var left = timeout - watch.Elapsed;
            if (left <= TimeSpan.Zero || !lines.TryTake(out var line, left))
            {
                throw new TimeoutException(
                    $"{Name} (pid {Pid}) did not report '{prefix.Trim()}' within {timeout.TotalSeconds:0.#} s" +
                    (process.HasExited ? $" (it exited with code {process.ExitCode}: {ErrorOutput})" : $" (stderr: {ErrorOutput})"));
            }

            if (line.StartsWith(prefix, StringComparison.Ordinal))
            {
                return line;
            }
        }
    }

    /// <summary>Kills it with SIGKILL and waits for it to be gone.</summary>
    public void Kill()
    {
        if (!process.HasExited)
        {
            ThisProcess.SendSignal(process.Id, 9);
            process.WaitForExit(10_000);
        }
    }

    /// <summary>Waits for it to exit; true if it did within <paramref name="timeout"/>.</summary>
    public bool WaitForExit(TimeSpan timeout) => process.WaitForExit(timeout);

    /// <summary>Kills it if it still runs, and lets go of it.</summary>
    public void Dispose()
    {
        if (disposed)
        {
            return;
        }

        Kill();
        exitedAtDispose = process.HasExited;
        disposed = true;
        process.Dispose();
        lines.Dispose();
    }
}

/// <summary>The <c>dotnet</c> host that starts .NET programs (worker processes, benchmark and test peers).</summary>
public static class DotnetHost
{
    /// <summary>The host's path: the SDK's when run under it, else this process's if it is the host, else the one of this runtime's installation, else "dotnet".</summary>
    public static string Path { get; } = Find();

    private static string Find()
    {
        var fromSdk = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (!string.IsNullOrEmpty(fromSdk) && File.Exists(fromSdk))
        {
            return fromSdk;
        }

        if (Environment.ProcessPath is { } self && System.IO.Path.GetFileNameWithoutExtension(self) == "dotnet")
        {
            return self;
        }

        // The runtime lives in <dotnet root>/shared/Microsoft.NETCore.App/<version>/.
        var root = System.IO.Path.GetFullPath(System.IO.Path.Combine(RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", ".."));
        var host = System.IO.Path.Combine(root, "dotnet");
        return File.Exists(host) ? host : "dotnet";
    }
}
