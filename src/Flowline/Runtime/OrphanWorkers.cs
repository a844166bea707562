using System.Diagnostics;
using System.Globalization;

namespace Flowline.Runtime;

/// <summary>
/// The worker processes a killed manager left in a namespace. They end by themselves once they notice
/// that their manager died (within about a second), but a manager that takes the namespace over must not
/// clean up or build while they still hold its streams: it waits for them, and ends those that linger.
/// </summary>
internal static class OrphanWorkers
{
    /// <summary>Waits up to <paramref name="grace"/> for the workers of <paramref name="namespace"/> to exit, then kills the rest; returns how many were found.</summary>
    public static int End(string @namespace, TimeSpan grace)
    {
        var found = Find(@namespace);
        if (found.Count == 0)
        {
            return 0;
        }

        var watch = Stopwatch.StartNew();
        var left = found;
        while (left.Count > 0 && watch.Elapsed < grace)
        {
            Thread.Sleep(10);
            left = Find(@namespace);
        }

        foreach (var pid in left)
        {
            try
            {
                using var process = Process.GetProcessById(pid);
                process.Kill();
                process.WaitForExit(TimeSpan.FromSeconds(2));
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
            {
                // Gone meanwhile, or not ours to end.
            }
        }

        return found.Count;
    }

    /// <summary>Live worker processes (not this process's children) whose command line names <paramref name="namespace"/>.</summary>
    private static List<int> Find(string @namespace) =>
        [.. Scan([@namespace]).Where(w => w.ParentPid != Environment.ProcessId).Select(w => w.Pid)];

    /// <summary>Live (not zombie) worker processes (.NET and Python), with their parent, whose command line names one of <paramref name="namespaces"/>.</summary>
    internal static List<(int Pid, int ParentPid)> Scan(IReadOnlyCollection<string> namespaces)
    {
        var found = new List<(int, int)>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid))
            {
                continue;
            }

            try
            {
                var arguments = File.ReadAllText(Path.Combine(dir, "cmdline")).Split('\0');
                var worker = Array.FindIndex(arguments, a => a.EndsWith("Flowline.Worker.dll", StringComparison.Ordinal) || a == "flowline.worker"); // python -m flowline.worker
                if (worker < 0 || worker + 1 >= arguments.Length || !namespaces.Contains(arguments[worker + 1]))
                {
                    continue;
                }

                var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                if (fields[0] != "Z")
                {
                    found.Add((pid, int.Parse(fields[1], CultureInfo.InvariantCulture)));
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Exited meanwhile, or another user's.
            }
        }

        return found;
    }
}
