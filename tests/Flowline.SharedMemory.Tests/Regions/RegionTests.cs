using Flowline.SharedMemory.Regions;
using Flowline.SharedMemory.Streams;
using Flowline.SharedMemory.Liveness;
using Flowline.SharedMemory.Tests.Infrastructure;

namespace Flowline.SharedMemory.Tests.Regions;

public sealed class RegionTests : ShmTest
{
    private static readonly FrameFormat Format = new(ElementType.UInt8, 64);

    [Theory]
    [InlineData("", "empty")]
    [InlineData("..", "starts with '.'")]
    [InlineData(".hidden", "starts with '.'")]
    [InlineData("a/b", "character '/'")]
    [InlineData("../escape", "starts with '.'")]
    [InlineData("a b", "character ' '")]
    [InlineData("tab\there", "character '\t'")]
    [InlineData("é", "character 'é'")]
    public void Open_WithAnInvalidName_ThrowsSayingWhy(string name, string reason)
    {
        var error = Assert.Throws<ArgumentException>(() => SharedStream.Open(Ns, name, Format));
        Assert.Contains(reason, error.Message, StringComparison.Ordinal);
        Assert.Contains("letters, digits", SharedMemoryNamespace.Check("a/b"), StringComparison.Ordinal);
    }

    [Fact]
    public void Open_WithAnInvalidNamespace_Throws()
    {
        var error = Assert.Throws<ArgumentException>(() => SharedStream.Open("../etc", "x", Format));
        Assert.Contains("invalid namespace", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Names_OfLettersDigitsAndPunctuation_AreAccepted_UpToTheLimit()
    {
        Assert.Null(SharedMemoryNamespace.Check("wfs_slopes-2.raw"));
        Assert.Null(SharedMemoryNamespace.Check(new string('a', SharedMemoryNamespace.MaxNameLength)));
        Assert.Contains("limit", SharedMemoryNamespace.Check(new string('a', SharedMemoryNamespace.MaxNameLength + 1)), StringComparison.Ordinal);
    }

    [Fact]
    public async Task CreatingAndClosingTheOnlyRegionsOfANamespace_FromTwoThreads_NeverFails()
    {
        // Unlinking a namespace's last region removes its directory while another thread creates a region in it: the
        // creator finds the directory (mkdir: EEXIST) and then finds it gone. Every create must still succeed.
        const int Rounds = 2_000;
        using var bound = new CancellationTokenSource(Bound);
        Task Churn(string name) => Task.Run(
            () =>
            {
                for (var i = 0; i < Rounds && !bound.IsCancellationRequested; i++)
                {
                    using var stream = SharedStream.Open(Ns, name, Format, RegionMode.Create);
                    Assert.True(stream.Unlink());
                }
            },
            bound.Token);

        await Task.WhenAll(Churn("a"), Churn("b"));
        Assert.False(bound.IsCancellationRequested, "the churn did not finish in its bound");
        Assert.Empty(SharedMemoryNamespace.List(Ns));
    }

    [Fact]
    public void Create_PlacesTheRegionUnderTheNamespaceDirectory()
    {
        using var stream = SharedStream.Open(Ns, "frames", Format, RegionMode.Create);
        Assert.True(stream.Created);
        Assert.Equal($"/dev/shm/flowline/{Ns}/frames", stream.Path);
        Assert.True(File.Exists(stream.Path));
        Assert.Equal(Environment.ProcessId, stream.Owner.Pid);
        Assert.Equal(["frames"], SharedMemoryNamespace.List(Ns));
        Assert.Contains(Ns, SharedMemoryNamespace.ListNamespaces());
    }

    [Fact]
    public void Create_WhenTheRegionExists_ThrowsRegionExists()
    {
        using var first = SharedStream.Open(Ns, "dup", Format, RegionMode.Create);
        var error = Assert.Throws<RegionExistsException>(() => SharedStream.Open(Ns, "dup", Format, RegionMode.Create));
        Assert.Contains("already exists", error.Message, StringComparison.Ordinal);
        Assert.Contains($"pid {Environment.ProcessId}, alive", error.Message, StringComparison.Ordinal);
        Assert.Contains("create_or_attach or replace", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Attach_WhenTheRegionIsMissing_ThrowsRegionNotFound()
    {
        var error = Assert.Throws<RegionNotFoundException>(() => SharedStream.Open(Ns, "missing", Format, RegionMode.Attach));
        Assert.Contains($"'{Ns}/missing' does not exist", error.Message, StringComparison.Ordinal);
        Assert.Throws<RegionNotFoundException>(() => SharedStream.Attach(Ns, "missing"));
    }

    [Fact]
    public void Attach_ToAStreamOfAnotherFormat_SaysWhatWasFoundAndWhatWasExpected()
    {
        using var created = SharedStream.Open(Ns, "shape", new FrameFormat(ElementType.Float32, 8, 8), RegionMode.Create);
        var error = Assert.Throws<RegionLayoutException>(() =>
            SharedStream.Open(Ns, "shape", new FrameFormat(ElementType.Float64, 64), RegionMode.Attach, new StreamOptions { CapacityFrames = 16 }));
        Assert.Contains("float32[8, 8] frames in 32 slots for 8 readers", error.Message, StringComparison.Ordinal);
        Assert.Contains("expected float64[64] frames in 16 slots for 8 readers", error.Message, StringComparison.Ordinal);
        Assert.Throws<RegionLayoutException>(() => SharedStream.Open(Ns, "shape", new FrameFormat(ElementType.Float64, 64), RegionMode.CreateOrAttach));
    }

    [Fact]
    public void Attach_WithoutAFormat_ReadsTheFormatFromTheRegion()
    {
        using var created = SharedStream.Open(Ns, "any", new FrameFormat(ElementType.Complex64, 3, 5), RegionMode.Create, new StreamOptions { CapacityFrames = 4, MaxReaders = 3 });
        using var attached = SharedStream.Attach(Ns, "any");
        Assert.False(attached.Created);
        Assert.Equal(created.Format, attached.Format);
        Assert.Equal(4, attached.Options.CapacityFrames);
        Assert.Equal(3, attached.Options.MaxReaders);
    }

    [Fact]
    public void Attach_ToAnEventAsAStream_ReportsTheKinds()
    {
        using var evt = SharedEvent.Open(Ns, "evt", RegionMode.Create);
        var error = Assert.Throws<RegionLayoutException>(() => SharedStream.Open(Ns, "evt", Format, RegionMode.Attach));
        Assert.Contains("kind event", error.Message, StringComparison.Ordinal);
        Assert.Contains("expected layout version 2, kind stream", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public unsafe void Attach_ToARegionOfAnotherLayout_ReportsFoundAndExpectedVersionAndHash()
    {
        using (var stream = SharedStream.Open(Ns, "old", Format, RegionMode.Create))
        {
            // Pretend another Flowline build made it: layout version 2 with another hash.
            using var file = new FileStream(stream.Path, FileMode.Open, FileAccess.ReadWrite);
            file.Position = RegionHeader.VersionOffset;
            file.Write(BitConverter.GetBytes(2u));
            file.Position = RegionHeader.HashOffset;
            file.Write(BitConverter.GetBytes(0x1234UL));
        }

        var error = Assert.Throws<RegionLayoutException>(() => SharedStream.Open(Ns, "old", Format, RegionMode.Attach));
        Assert.Contains("has layout version 2, kind stream, layout hash 0x0000000000001234", error.Message, StringComparison.Ordinal);
        Assert.Contains($"expected layout version 2, kind stream, layout hash 0x{StreamLayout.Hash:X16}", error.Message, StringComparison.Ordinal);

        // The owner (this process) is alive, so create_or_attach must not destroy it either.
        Assert.Throws<RegionLayoutException>(() => SharedStream.Open(Ns, "old", Format, RegionMode.CreateOrAttach));
        using var replaced = SharedStream.Open(Ns, "old", Format, RegionMode.Replace);
        Assert.True(replaced.Created);
    }

    [Fact]
    public void Attach_ToAFileThatIsNotARegion_SaysSo()
    {
        Directory.CreateDirectory(SharedMemoryNamespace.DirectoryOf(Ns), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        File.WriteAllBytes(SharedMemoryNamespace.PathOf(Ns, "junk"), new byte[300]);
        var error = Assert.Throws<RegionLayoutException>(() => SharedStream.Open(Ns, "junk", Format, RegionMode.CreateOrAttach));
        Assert.Contains("is not a Flowline region", error.Message, StringComparison.Ordinal);

        File.WriteAllBytes(SharedMemoryNamespace.PathOf(Ns, "tiny"), new byte[3]);
        error = Assert.Throws<RegionLayoutException>(() => SharedStream.Open(Ns, "tiny", Format, RegionMode.Attach));
        Assert.Contains("3 bytes", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CreateOrAttach_CreatesOnce_ThenAttaches()
    {
        using var first = SharedStream.Open(Ns, "coa", Format);
        using var second = SharedStream.Open(Ns, "coa", Format);
        Assert.True(first.Created);
        Assert.False(second.Created);
    }

    [Fact]
    public void CreateOrAttach_FromManyThreadsAtOnce_CreatesExactlyOneRegion()
    {
        var streams = new SharedStream[8];
        using var start = new Barrier(streams.Length);
        var threads = Enumerable.Range(0, streams.Length).Select(i => new Thread(() =>
        {
            start.SignalAndWait(Bound);
            streams[i] = SharedStream.Open(Ns, "race", Format);
        })).ToList();
        threads.ForEach(t => t.Start());
        Assert.All(threads, t => Assert.True(t.Join(Bound)));

        Assert.Single(streams, s => s.Created);
        using var writer = streams[0].OpenWriter<byte>();
        using var reader = streams[^1].OpenReader<byte>();
        writer.Write(new byte[64]);
        Assert.Equal(1, reader.FramesAvailable);
        foreach (var stream in streams)
        {
            stream.Dispose();
        }
    }

    [Fact]
    public void Replace_MakesANewRegion_WhileTheOldMappingStaysUsable()
    {
        using var old = SharedStream.Open(Ns, "rep", Format, RegionMode.Create);
        using var oldWriter = old.OpenWriter<byte>();
        using var oldReader = old.OpenReader<byte>();
        using var fresh = SharedStream.Open(Ns, "rep", Format, RegionMode.Replace);

        Assert.True(fresh.Created);
        oldWriter.Write(new byte[64]);
        Assert.Equal(ReadStatus.Ok, oldReader.ReadInto(new byte[64], Bound));
        Assert.Equal(0, fresh.GetStatistics().Cursor);
        Assert.False(old.Unlink()); // the name now belongs to the replacement
        Assert.True(fresh.Unlink());
        Assert.False(SharedMemoryNamespace.Exists(Ns, "rep"));
    }

    [Fact]
    public void Unlink_RemovesTheRegionAndTheEmptyNamespace_AndMappingsSurvive()
    {
        using var stream = SharedStream.Open(Ns, "gone", Format, RegionMode.Create);
        using var writer = stream.OpenWriter<byte>();
        using var reader = stream.OpenReader<byte>();
        Assert.True(stream.Unlink());

        Assert.False(File.Exists(stream.Path));
        Assert.False(Directory.Exists(SharedMemoryNamespace.DirectoryOf(Ns)));
        writer.Write(new byte[64]);
        Assert.Equal(ReadStatus.Ok, reader.ReadInto(new byte[64], Bound));
        Assert.False(SharedMemoryNamespace.Unlink(Ns, "gone"));
    }

    [Fact]
    public void DisposingTheStreamFirst_KeepsItsReadersAndWritersWorking()
    {
        var stream = SharedStream.Open(Ns, "order", Format, RegionMode.Create);
        using var writer = stream.OpenWriter<byte>();
        using var reader = stream.OpenReader<byte>();
        stream.Dispose();

        writer.Write(new byte[64]);
        Assert.Equal(ReadStatus.Ok, reader.ReadInto(new byte[64], Bound));
        Assert.Throws<ObjectDisposedException>(() => stream.OpenReader<byte>());
    }

    [Fact]
    public void StreamOptions_OutOfRange_AreRejectedWithTheRule()
    {
        Assert.Contains("power of two", Assert.Throws<ArgumentException>(() => SharedStream.Open(Ns, "c", Format, options: new StreamOptions { CapacityFrames = 3 })).Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => SharedStream.Open(Ns, "c", Format, options: new StreamOptions { CapacityFrames = 1 }));
        Assert.Contains("1 to 64", Assert.Throws<ArgumentException>(() => SharedStream.Open(Ns, "c", Format, options: new StreamOptions { MaxReaders = 65 })).Message, StringComparison.Ordinal);
        Assert.False(SharedMemoryNamespace.Exists(Ns, "c"));
    }

    [Fact]
    public void RegionHeader_RecordsOwnerKindVersionAndSize()
    {
        using var stream = SharedStream.Open(Ns, "hdr", Format, RegionMode.Create, new StreamOptions { CapacityFrames = 2, MaxReaders = 1 });
        var bytes = File.ReadAllBytes(stream.Path);
        Assert.Equal("FLOWLINE", System.Text.Encoding.ASCII.GetString(bytes, 0, 8));
        Assert.Equal(2u, BitConverter.ToUInt32(bytes, RegionHeader.VersionOffset));
        Assert.Equal((uint)RegionKind.Stream, BitConverter.ToUInt32(bytes, RegionHeader.KindOffset));
        Assert.Equal(StreamLayout.Hash, BitConverter.ToUInt64(bytes, RegionHeader.HashOffset));
        Assert.Equal(bytes.Length, BitConverter.ToInt64(bytes, RegionHeader.TotalBytesOffset));
        Assert.Equal(768 + 128 + 128 + (2 * 128), bytes.Length);
        Assert.Equal(stream.Owner, ProcessIdentity.Current with { });
    }
}
