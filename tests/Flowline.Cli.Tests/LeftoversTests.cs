using System.Diagnostics;
using Flowline.SharedMemory;

namespace Flowline.Cli.Tests;

/// <summary>The shared leftover check (tests/Flowline.Testing) sees what it must: a worker process of a namespace and a region left in it.</summary>
public sealed class LeftoversTests
{
    [Fact]
    public void AssertNothingLeft_AWorkerOfTheNamespaceAlive_Throws_AndPassesOnceItIsGone()
    {
        var ns = $"leftover-{Guid.NewGuid():N}"[..20];
        // A process whose command line looks like a worker's: `sh -c 'sleep 60' <this build's Flowline.Worker.dll> <namespace>`.
        var info = new ProcessStartInfo("/bin/sh") { ArgumentList = { "-c", "sleep 60", Path.Combine(AppContext.BaseDirectory, "Flowline.Worker.dll"), ns } };
        using var fake = Process.Start(info)!;
        try
        {
            Assert.Equal([fake.Id], Flowline.Testing.Leftovers.WorkerProcesses([ns]));
            Assert.Empty(Flowline.Testing.Leftovers.WorkerProcesses(["another-namespace"]));
            var e = Assert.Throws<Flowline.Testing.LeftBehindException>(() => Flowline.Testing.Leftovers.AssertNothingLeft(TimeSpan.Zero, ns));
            Assert.Contains(fake.Id.ToString(System.Globalization.CultureInfo.InvariantCulture), e.Message, StringComparison.Ordinal);
        }
        finally
        {
            fake.Kill();
            fake.WaitForExit(TimeSpan.FromSeconds(10));
        }

        Flowline.Testing.Leftovers.AssertNothingLeft(TimeSpan.FromSeconds(5), ns);
    }

    [Fact]
    public void AssertNothingLeft_ARegionOfTheNamespace_Throws()
    {
        var ns = $"leftover-{Guid.NewGuid():N}"[..20];
        using (var stream = SharedStream.Open(ns, "left", new FrameFormat(ElementType.Float32, 4)))
        {
            var e = Assert.Throws<Flowline.Testing.LeftBehindException>(() => Flowline.Testing.Leftovers.AssertNothingLeft(TimeSpan.Zero, ns));
            Assert.Contains(SharedMemoryNamespace.DirectoryOf(ns), e.Message, StringComparison.Ordinal);
            Assert.True(stream.Unlink());
        }

        Flowline.Testing.Leftovers.AssertNothingLeft(TimeSpan.Zero, ns);
    }
}
