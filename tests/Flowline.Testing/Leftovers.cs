using System.Diagnostics;
using Flowline.SharedMemory;

namespace Flowline.Testing;

/// <summary>
/// What a test checks was left behind by the pipelines it ran: regions of their namespaces under
/// <c>/dev/shm/flowline</c> and live worker processes (this build's <c>Flowline.Worker.dll</c>, or Python's
/// <c>flowline.worker</c>) started for them. A failed check throws <see cref="LeftBehindException"/>, which any
/// test framework reports as a failure.
/// </summary>
public static class Leftovers
{
    /// <summary>How long <see cref="AssertNothingLeft(string[])"/> lets workers take to exit after their manager stopped them.</summary>
    public static TimeSpan DefaultWorkerGrace { get; } = TimeSpan.FromSeconds(10);

    /// <summary>No region and no worker of <paramref name="namespaces"/> (workers get <see cref="DefaultWorkerGrace"/> to exit).</summary>
    /// <param name="namespaces">The pipelines' namespaces; their <c>.control</c> namespaces are checked too.</param>
    /// <exception cref="LeftBehindException">Something was left.</exception>
    public static void AssertNothingLeft(params string[] namespaces) => AssertNothingLeft(DefaultWorkerGrace, namespaces);

    /// <summary>No region and no worker of <paramref name="namespaces"/>, waiting up to <paramref name="workerGrace"/> for workers to exit.</summary>
    /// <param name="workerGrace">How long workers may take to exit.</param>
    /// <param name="namespaces">The pipelines' namespaces; their <c>.control</c> namespaces are checked too.</param>
    /// <exception cref="LeftBehindException">Something was left.</exception>
    public static void AssertNothingLeft(TimeSpan workerGrace, params string[] namespaces)
    {
        var watch = Stopwatch.StartNew();
        var workers = WorkerProcesses(namespaces);
        while (workers.Count > 0 && watch.Elapsed < workerGrace)
        {
            Thread.Sleep(20);
            workers = WorkerProcesses(namespaces);
        }

        var regions = Regions(namespaces);
        if (workers.Count > 0 || regions.Count > 0)
        {
            throw new LeftBehindException(
                $"left behind: {(workers.Count > 0 ? $"worker processes {string.Join(", ", workers)}; " : "")}" +
                $"{(regions.Count > 0 ? $"namespace directories {string.Join(", ", regions)}" : "")}".TrimEnd(' ', ';'));
        }
    }

    /// <summary>
    /// The directories of <paramref name="namespaces"/> and of their <c>.control</c> namespaces that still
    /// exist with something in them (an empty directory is what a namespace's lease may leave for a moment).
    /// </summary>
    public static IReadOnlyList<string> Regions(IEnumerable<string> namespaces)
    {
        ArgumentNullException.ThrowIfNull(namespaces);
        var left = new List<string>();
        foreach (var ns in namespaces.SelectMany(n => new[] { n, n + ".control" }))
        {
            var dir = SharedMemoryNamespace.DirectoryOf(ns);
            if (Directory.Exists(dir) && Directory.EnumerateFileSystemEntries(dir).Any())
            {
                left.Add(dir);
            }
        }

        return left;
    }

    /// <summary>Live (not zombie) worker processes whose command line names one of <paramref name="namespaces"/>.</summary>
    public static IReadOnlyList<int> WorkerProcesses(IEnumerable<string> namespaces) =>
        Processes(namespaces, arguments => arguments.Any(IsWorkerProgram));

    /// <summary>
    /// Live (not zombie) processes of any program whose command line has one of <paramref name="namespaces"/>
    /// as an argument: workers, and servers or other programs started for those namespaces.
    /// </summary>
    public static IReadOnlyList<int> ProcessesNaming(IEnumerable<string> namespaces) => Processes(namespaces, _ => true);

    private static List<int> Processes(IEnumerable<string> namespaces, Func<string[], bool> program)
    {
        ArgumentNullException.ThrowIfNull(namespaces);
        var wanted = namespaces.ToHashSet(StringComparer.Ordinal);
        var found = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid) || pid == Environment.ProcessId)
            {
                continue;
            }

            try
            {
                var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                var state = stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[0];
                var arguments = File.ReadAllText(Path.Combine(dir, "cmdline")).Split('\0');
                if (state != "Z" && arguments.Any(wanted.Contains) && program(arguments))
                {
                    found.Add(pid);
                }
            }
            catch (IOException)
            {
                // The process exited while it was read.
            }
            catch (UnauthorizedAccessException)
            {
            }
        }

        return found;
    }

    /// <summary>
    /// This build's worker program (beside the tests), not any build's: tests of other checkouts running at the
    /// same time may use the same namespace (an example document's own), and their workers are not ours.
    /// </summary>
    private static readonly string WorkerDll = Path.Combine(AppContext.BaseDirectory, "Flowline.Worker.dll");

    private static bool IsWorkerProgram(string argument) => argument == WorkerDll || argument == "flowline.worker";
}

/// <summary>A test left shared memory or processes behind.</summary>
public sealed class LeftBehindException(string message) : Exception(message);
