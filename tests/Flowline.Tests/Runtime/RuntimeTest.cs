using System.Diagnostics;
using Flowline.Documents;
using Flowline.Runtime;
using Flowline.SharedMemory;

namespace Flowline.Tests.Runtime;

/// <summary>
/// Base of the tests that run pipelines with real worker processes: a namespace of their own, every
/// manager shut down at the end, and a check that no region and no worker process is left behind.
/// </summary>
/// <remarks>These tests run one at a time, after the others: each starts several processes on a 2-core machine.</remarks>
[Collection(nameof(RuntimeTest))]
public abstract class RuntimeTest : IDisposable
{
    private readonly List<PipelineManager> managers = [];

    /// <summary>A namespace no other test uses.</summary>
    protected string Namespace { get; } = "rt-" + Guid.NewGuid().ToString("N")[..10];

    /// <summary>Parses <paramref name="yaml"/> (relative plugin paths resolve beside the tests).</summary>
    protected static ValidatedPipeline Parse(string yaml) => PipelineDocument.Parse(yaml, "runtime-test.yaml", AppContext.BaseDirectory);

    /// <summary>A manager for <paramref name="yaml"/> in this test's namespace (or <paramref name="namespace"/>), shut down at the end.</summary>
    protected PipelineManager Manager(string yaml, PipelineManagerOptions? options = null, string? @namespace = null)
    {
        var manager = new PipelineManager(Parse(yaml), (options ?? new PipelineManagerOptions()) with { Namespace = @namespace ?? Namespace });
        managers.Add(manager);
        return manager;
    }

    /// <summary>A manager for <paramref name="pipeline"/> in this test's namespace, shut down at the end.</summary>
    protected PipelineManager Manager(ValidatedPipeline pipeline)
    {
        var manager = new PipelineManager(pipeline, new PipelineManagerOptions { Namespace = Namespace });
        managers.Add(manager);
        return manager;
    }

    /// <summary>Waits until <paramref name="condition"/> holds; fails the test with <paramref name="what"/> after <paramref name="seconds"/>.</summary>
    protected static void WaitUntil(Func<bool> condition, string what, double seconds = 20)
    {
        var watch = Stopwatch.StartNew();
        while (!condition())
        {
            if (watch.Elapsed.TotalSeconds > seconds)
            {
                Assert.Fail($"timed out after {seconds} s waiting until {what}");
            }

            Thread.Sleep(10);
        }
    }

    /// <summary>The frames a worker (kernel, source or sink) has processed, from the status.</summary>
    protected static long Frames(PipelineManager manager, string name)
    {
        var status = manager.Status().Json();
        foreach (var group in new[] { "workers", "sources", "sinks" })
        {
            if (status[group]![name] is { } node)
            {
                return (long?)node["frames_processed"] ?? 0;
            }
        }

        throw new ArgumentException($"no worker named '{name}'");
    }

    /// <summary>Worker processes of this test's pipelines still alive (not zombies).</summary>
    protected IReadOnlyList<int> WorkerChildren() => WorkerChildren(managers.Select(m => m.Namespace).Append(Namespace));

    /// <summary>Worker processes of this test process, in one of <paramref name="namespaces"/>, still alive (not zombies).</summary>
    private static List<int> WorkerChildren(IEnumerable<string> namespaces) =>
        [.. OrphanWorkers.Scan(namespaces.ToHashSet(StringComparer.Ordinal)).Where(w => w.ParentPid == Environment.ProcessId).Select(w => w.Pid)];

    /// <summary>Shuts every manager down and checks that nothing is left.</summary>
    public void Dispose()
    {
        foreach (var manager in managers)
        {
            manager.Dispose();
        }

        var namespaces = managers.Select(m => m.Namespace).Append(Namespace).Distinct().ToList();
        WaitUntil(() => WorkerChildren().Count == 0, "every worker process has exited", 10);
        foreach (var ns in namespaces)
        {
            Assert.False(Directory.Exists(SharedMemoryNamespace.DirectoryOf(ns)), $"namespace {ns} was left in /dev/shm/flowline");
            Assert.False(Directory.Exists(SharedMemoryNamespace.DirectoryOf(ns + ".control")), $"namespace {ns}.control was left in /dev/shm/flowline");
        }

        GC.SuppressFinalize(this);
    }
}

/// <summary>The collection of pipeline tests, run without parallelism.</summary>
[CollectionDefinition(nameof(RuntimeTest), DisableParallelization = true)]
public sealed class RuntimeTestCollection;
