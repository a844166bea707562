using Flowline.SharedMemory.Regions;
using Flowline.SharedMemory.Tests.Infrastructure;

namespace Flowline.SharedMemory.Tests.Regions;

/// <summary>Directories that may not be trusted, namespace leases, and the collection of dead processes' leftovers.</summary>
public sealed class NamespaceOwnershipTests : ShmTest
{
    private static readonly FrameFormat Format = new(ElementType.UInt8, 64);

    private string Dir => SharedMemoryNamespace.DirectoryOf(Ns);

    [Fact]
    public void Open_InANamespaceDirectoryOpenToOthers_IsRefused_SayingHowToFixIt()
    {
        Directory.CreateDirectory(Dir);
        File.SetUnixFileMode(Dir, (UnixFileMode)0b111_111_111);

        var create = Assert.Throws<UntrustedDirectoryException>(() => SharedStream.Open(Ns, "frames", Format));
        Assert.Contains("mode 0777", create.Message, StringComparison.Ordinal);
        Assert.Contains($"chmod 700 {Dir}", create.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(Dir)); // refused before anything was written
    }

    [Fact]
    public void Attach_InANamespaceDirectoryOpenToOthers_IsRefused()
    {
        using (SharedStream.Open(Ns, "frames", Format, RegionMode.Create))
        {
            File.SetUnixFileMode(Dir, (UnixFileMode)0b111_101_101);
            var attach = Assert.Throws<UntrustedDirectoryException>(() => SharedStream.Attach(Ns, "frames"));
            Assert.Contains("mode 0755", attach.Message, StringComparison.Ordinal);
            File.SetUnixFileMode(Dir, (UnixFileMode)0b111_000_000);
        }
    }

    [Fact]
    public void Open_WhereTheNamespaceIsASymbolicLink_IsRefused()
    {
        var elsewhere = Directory.CreateTempSubdirectory("flowline-elsewhere-");
        try
        {
            File.SetUnixFileMode(elsewhere.FullName, (UnixFileMode)0b111_000_000);
            Directory.CreateSymbolicLink(Dir, elsewhere.FullName);

            var error = Assert.Throws<UntrustedDirectoryException>(() => SharedStream.Open(Ns, "frames", Format));
            Assert.Contains("is a symbolic link", error.Message, StringComparison.Ordinal);
            Assert.Empty(elsewhere.GetFiles()); // nothing was written through the link
        }
        finally
        {
            File.Delete(Dir);
            elsewhere.Delete(recursive: true);
        }
    }

    [Fact]
    public void Open_InAnotherUsersNamespaceDirectory_IsRefused()
    {
        Assert.SkipUnless(Environment.UserName == "root", "needs root to give a directory to another user");
        Directory.CreateDirectory(Dir, (UnixFileMode)0b111_000_000);
        Assert.Equal(0, Chown(Dir, 65534));

        var error = Assert.Throws<UntrustedDirectoryException>(() => SharedStream.Open(Ns, "frames", Format));
        Assert.Contains("belongs to uid 65534", error.Message, StringComparison.Ordinal);
        Assert.Contains("another namespace", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RootChecks_RefuseALink_AWorldWritableRootWithoutStickyBit_AndAcceptAStickyOne()
    {
        var root = Directory.CreateTempSubdirectory("flowline-root-");
        var link = root.FullName + ".link";
        try
        {
            File.SetUnixFileMode(root.FullName, (UnixFileMode)0b111_111_111);
            Assert.Contains("no sticky bit", TrustedDirectory.RootProblem(root.FullName), StringComparison.Ordinal);
            Assert.Contains("chmod 1777", TrustedDirectory.RootProblem(root.FullName), StringComparison.Ordinal);

            File.SetUnixFileMode(root.FullName, (UnixFileMode)0b1_111_111_111);
            Assert.Null(TrustedDirectory.RootProblem(root.FullName));

            File.CreateSymbolicLink(link, root.FullName);
            Assert.Contains("symbolic link", TrustedDirectory.RootProblem(link), StringComparison.Ordinal);
            Assert.Null(TrustedDirectory.RootProblem(root.FullName + ".missing"));
        }
        finally
        {
            File.Delete(link);
            root.Delete(recursive: true);
        }
    }

    [Fact]
    public void Lease_IsExclusive_AndNamesItsHolder_ThenFreeOnceReleased()
    {
        var first = NamespaceLease.Acquire(Ns, "http://127.0.0.1:9999");
        try
        {
            var refused = Assert.Throws<NamespaceInUseException>(() => NamespaceLease.Acquire(Ns));
            Assert.Equal(Environment.ProcessId, refused.Holder.Pid);
            Assert.Equal("http://127.0.0.1:9999", refused.Holder.ServerUrl);
            Assert.Contains($"another pipeline manager of this process ({Environment.ProcessId})", refused.Message, StringComparison.Ordinal);
            Assert.Contains("served at http://127.0.0.1:9999", refused.Message, StringComparison.Ordinal);
            Assert.Equal(Environment.ProcessId, NamespaceLease.HolderOf(Ns)?.Pid);

            first.ServerUrl = "http://127.0.0.1:1234";
            Assert.Equal("http://127.0.0.1:1234", NamespaceLease.HolderOf(Ns)?.ServerUrl);
        }
        finally
        {
            first.Dispose();
        }

        Assert.Null(NamespaceLease.HolderOf(Ns));
        Assert.False(Directory.Exists(Dir)); // the lease leaves no empty namespace behind
        using var second = NamespaceLease.Acquire(Ns);
        Assert.Null(second.Previous);
    }

    [Fact]
    public void Lease_OfAnotherLiveProcess_IsRefusedWithItsPid_AndTakenOverOnceItIsKilled()
    {
        var peer = StartPeer("lease", "--name", "frames", "--url", "http://127.0.0.1:4242");
        peer.Expect("leased");

        var refused = Assert.Throws<NamespaceInUseException>(() => NamespaceLease.Acquire(Ns));
        Assert.Equal(peer.Pid, refused.Holder.Pid);
        Assert.Contains($"process {peer.Pid}", refused.Message, StringComparison.Ordinal);
        Assert.Contains("served at http://127.0.0.1:4242", refused.Message, StringComparison.Ordinal);

        peer.Kill();
        Assert.True(peer.WaitForExit(Bound));
        using var lease = Own(NamespaceLease.Acquire(Ns));
        Assert.Equal(peer.Pid, lease.Previous?.Pid);
    }

    [Fact]
    public void Collect_RemovesADeadProcessesRegionsAndLease_AfterADryRunThatRemovesNothing()
    {
        var peer = StartPeer("lease", "--name", "frames");
        peer.Expect("leased");
        peer.Kill();
        Assert.True(peer.WaitForExit(Bound));

        var dry = SharedMemoryCollector.Collect(Ns, dryRun: true);
        Assert.True(dry.DryRun);
        Assert.Equal([(".manager", "lease"), ("frames", "stream")], dry.Garbage.Select(g => (g.Name, g.Kind)).Order().ToList());
        Assert.Contains($"pid {peer.Pid}", dry.Garbage.Single(g => g.Name == "frames").Reason, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(Dir, "frames")));

        var done = SharedMemoryCollector.Collect(Ns);
        Assert.Equal(2, done.Garbage.Count);
        Assert.True(done.GarbageBytes > 0);
        Assert.False(Directory.Exists(Dir));
    }

    [Fact]
    public void Collect_KeepsARegionALiveProcessUses_AndFilesThatAreNotFlowlines()
    {
        var peer = StartPeer("create", "--name", "shared", "--hang", "true");
        peer.Expect("created");
        using var stream = Own(SharedStream.Attach(Ns, "shared"));
        using var reader = Own(stream.OpenReader<ulong>());

        // The creator has exited, but a live reader keeps the stream in use.
        peer.Kill();
        Assert.True(peer.WaitForExit(Bound));
        File.WriteAllText(Path.Combine(Dir, "notes"), "not a region");

        var result = SharedMemoryCollector.Collect(Ns);
        Assert.Equal(["shared.evt"], result.Garbage.Select(g => g.Name));
        var kept = result.Kept.ToDictionary(k => k.Name);
        Assert.Contains($"its reader (pid {Environment.ProcessId}) is alive", kept["shared"].Reason, StringComparison.Ordinal);
        Assert.Contains("not a Flowline region", kept["notes"].Reason, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(Dir, "shared")));
        File.Delete(Path.Combine(Dir, "notes"));
    }

    [Fact]
    public void Collect_InAnUntrustedNamespace_ReportsIt_AndTouchesNothing()
    {
        var peer = StartPeer("create", "--name", "left");
        peer.Expect("created");
        Assert.True(peer.WaitForExit(Bound));
        File.SetUnixFileMode(Dir, (UnixFileMode)0b111_111_111);

        var result = SharedMemoryCollector.Collect(Ns);
        Assert.Empty(result.Garbage);
        Assert.Contains("mode 0777", Assert.Single(result.Problems), StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(Dir, "left")));
        File.SetUnixFileMode(Dir, (UnixFileMode)0b111_000_000);
    }

    [Fact]
    public void LeaseRecord_LeavesTokensOutOfTheCommandLineItQuotes()
    {
        var program = NamespaceLease.Program(["/usr/bin/Flowline.Cli.dll", "serve", "ao.yaml", "--token", "ADMIN-SECRET", "--token-file=/run/t", "--port", "8765"]);
        Assert.Equal("Flowline.Cli.dll serve ao.yaml --token *** --token-file=*** --port 8765", program);
    }

    [Fact]
    public async Task AFifoInANamespace_HangsNeitherTheLeaseNorGc()
    {
        Directory.CreateDirectory(Dir, (UnixFileMode)0b111_000_000);
        Assert.Equal(0, MkFifo(Path.Combine(Dir, NamespaceLease.FileName), 0b110_000_000));
        Assert.Equal(0, MkFifo(Path.Combine(Dir, "frames"), 0b110_000_000));

        // Each call is bounded: a blocking open of a FIFO would never return.
        var collected = await Task.Run(() => SharedMemoryCollector.Collect(Ns)).WaitAsync(Bound, TestContext.Current.CancellationToken);
        Assert.Contains("not a regular file", collected.Kept.Single(k => k.Name == "frames").Reason, StringComparison.Ordinal);
        var refused = await Task.Run(() => Record.Exception(() => NamespaceLease.Acquire(Ns))).WaitAsync(Bound, TestContext.Current.CancellationToken);
        Assert.IsType<SharedMemoryException>(refused, exactMatch: false);
        File.Delete(Path.Combine(Dir, NamespaceLease.FileName));
        File.Delete(Path.Combine(Dir, "frames"));
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "mkfifo", SetLastError = true)]
#pragma warning disable CA2101, SYSLIB1054 // A test-only call.
    private static extern int MkFifo(string path, int mode);
#pragma warning restore CA2101, SYSLIB1054

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "chown", SetLastError = true)]
#pragma warning disable CA2101, SYSLIB1054 // A test-only call.
    private static extern int Chown(string path, int owner, int group = -1);
#pragma warning restore CA2101, SYSLIB1054
}
