using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Reflection;

namespace Flowline.Cli.Bench;

/// <summary>The second process of a benchmark: this same program running <c>bench-peer</c>.</summary>
internal sealed class BenchChild : IDisposable
{
    private readonly Process process;
    private readonly BlockingCollection<string> lines = [];
    private readonly ConcurrentQueue<string> errors = new();

    private BenchChild(Process process)
    {
        this.process = process;
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

    /// <summary>Starts <c>flowline bench-peer</c> with <paramref name="arguments"/>, on the CPUs of <paramref name="affinity"/> if given.</summary>
    public static BenchChild Start(long? affinity, params string[] arguments)
    {
        var host = Environment.ProcessPath ?? throw new InvalidOperationException("cannot find this program's path");
        var info = new ProcessStartInfo(host) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(host) == "dotnet")
        {
            // Run as `dotnet flowline.dll`: the child needs the assembly too.
            info.ArgumentList.Add(Assembly.GetEntryAssembly()!.Location);
        }

        info.ArgumentList.Add("bench-peer");
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        info.ArgumentList.Add("--parent");
        info.ArgumentList.Add(Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
        var process = Process.Start(info) ?? throw new InvalidOperationException("cannot start the benchmark peer");
        if (affinity is { } mask)
        {
            process.ProcessorAffinity = (nint)mask;
        }

        return new BenchChild(process);
    }

    /// <summary>Waits for a line starting with <paramref name="prefix"/> and returns the rest of it.</summary>
    public string Expect(string prefix, TimeSpan timeout)
    {
        var watch = Stopwatch.StartNew();
        while (true)
        {
            var left = timeout - watch.Elapsed;
            if (left <= TimeSpan.Zero || !lines.TryTake(out var line, left))
            {
                throw new TimeoutException(
                    $"the benchmark peer did not report '{prefix.Trim()}' within {timeout.TotalSeconds:0} s" +
                    (process.HasExited ? $" (it exited with code {process.ExitCode}: {string.Join(" ", errors)})" : "."));
            }

            if (line.StartsWith(prefix, StringComparison.Ordinal))
            {
                return line[prefix.Length..];
            }
        }
    }

    public void Dispose()
    {
        if (!process.HasExited)
        {
            process.Kill();
            process.WaitForExit(10_000);
        }

        process.Dispose();
        lines.Dispose();
    }
}
