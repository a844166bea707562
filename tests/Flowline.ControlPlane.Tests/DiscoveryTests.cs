using System.Text.Json.Nodes;
using Flowline.SharedMemory.Liveness;

namespace Flowline.ControlPlane.Tests;

/// <summary>Discovery records in a directory of the test's own.</summary>
public sealed class DiscoveryTests : IDisposable
{
    private readonly string path = Path.Combine(Path.GetTempPath(), "flowline-cp-discovery-" + Guid.NewGuid().ToString("N")[..10], "servers");

    private static ServerRecord Mine(int port) =>
        new(Environment.ProcessId, "127.0.0.1", port, false, 1_700_000_000.5, "/tmp/x/pipeline.yaml", ProcessIdentity.Current.StartTicks);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path.GetDirectoryName(path)!, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    [Fact]
    public void Register_WritesPidPortJson_AndListReturnsIt()
    {
        var directory = new ServerDirectory(path);
        var record = Mine(40001);
        var file = directory.Register(record);
        Assert.Equal(Path.Combine(path, $"{Environment.ProcessId}-40001.json"), file);
        Assert.Equal([record], directory.List());
        Assert.Equal([file], Directory.EnumerateFiles(path));
    }

    [Fact]
    public void List_ASymlinkedDirectory_IsNotTrusted_AndNothingItPointsAtIsDeleted()
    {
        var elsewhere = Directory.CreateDirectory(Path.Combine(Path.GetDirectoryName(path)!, "elsewhere")).FullName;
        var precious = Path.Combine(elsewhere, "settings.json");
        File.WriteAllText(precious, "{\"not\": \"a record\"}");
        File.WriteAllText(Path.Combine(elsewhere, "1-2.json"), "not json");
        File.CreateSymbolicLink(path, elsewhere);

        var directory = new ServerDirectory(path);
        Assert.Empty(directory.List());
        Assert.True(File.Exists(precious));
        Assert.True(File.Exists(Path.Combine(elsewhere, "1-2.json")));
        var e = Assert.Throws<InvalidOperationException>(() => directory.Register(Mine(40010)));
        Assert.Contains("symbolic link", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void List_ADirectoryOpenToOthers_IsNotTrusted()
    {
        var directory = new ServerDirectory(path);
        directory.Register(Mine(40012));
        File.SetUnixFileMode(path, (UnixFileMode)0b111_111_111);
        Assert.Empty(directory.List());
    }

    [Fact]
    public void Register_DirectoryIs0700_AndRecordIs0600()
    {
        var directory = new ServerDirectory(path);
        var file = directory.Register(Mine(40002));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(path));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
    }

    [Fact]
    public void Register_ExistingDirectoryOpenToOthers_IsMade0700()
    {
        Directory.CreateDirectory(path);
        File.SetUnixFileMode(path, (UnixFileMode)0b111_101_101);
        new ServerDirectory(path).Register(Mine(40003));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(path));
    }

    [Fact]
    public void Register_RecordJson_HasSortedKeysAndTheUrl()
    {
        var file = new ServerDirectory(path).Register(Mine(40004) with { Host = "0.0.0.0", TokenRequired = true });
        var json = JsonNode.Parse(File.ReadAllText(file))!.AsObject();
        Assert.Equal(["config_path", "host", "pid", "pid_start_ticks", "port", "started_at", "token_required", "url"], json.Select(p => p.Key));
        Assert.Equal(Environment.ProcessId, (int)json["pid"]!);
        Assert.Equal("0.0.0.0", (string?)json["host"]);
        Assert.Equal(40004, (int)json["port"]!);
        Assert.True((bool)json["token_required"]!);
        Assert.Equal(1_700_000_000.5, (double)json["started_at"]!);
        Assert.Equal("http://127.0.0.1:40004", (string?)json["url"]);
        Assert.Equal(ProcessIdentity.Current.StartTicks, (ulong)json["pid_start_ticks"]!);
    }

    [Fact]
    public void Unregister_RemovesTheFile_AndAMissingFileIsNoError()
    {
        var directory = new ServerDirectory(path);
        var file = directory.Register(Mine(40005));
        ServerDirectory.Unregister(file);
        Assert.False(File.Exists(file));
        ServerDirectory.Unregister(file);
        Assert.Empty(directory.List());
    }

    [Fact]
    public void List_MissingDirectory_IsEmpty()
    {
        Assert.Empty(new ServerDirectory(path).List());
        Assert.False(Directory.Exists(path));
    }

    [Fact]
    public void List_DeadPid_IsPrunedWithAndWithoutStartTicks()
    {
        var directory = new ServerDirectory(path);
        var live = directory.Register(Mine(40006));
        var dead = directory.Register(Mine(40007) with { Pid = DeadPid() });
        var deadNoTicks = directory.Register(Mine(40008) with { Pid = DeadPid(), PidStartTicks = 0 });
        Assert.Equal([40006], directory.List().Select(r => r.Port));
        Assert.True(File.Exists(live));
        Assert.False(File.Exists(dead));
        Assert.False(File.Exists(deadNoTicks));
    }

    [Fact]
    public void List_RightPidWrongStartTicks_IsPruned()
    {
        var directory = new ServerDirectory(path);
        var reused = directory.Register(Mine(40009) with { PidStartTicks = ProcessIdentity.Current.StartTicks + 12345 });
        Assert.Empty(directory.List());
        Assert.False(File.Exists(reused));
    }

    [Fact]
    public void List_MalformedFiles_ArePruned_AndOtherFilesAreLeft()
    {
        var directory = new ServerDirectory(path);
        directory.Register(Mine(40010));
        var files = new Dictionary<string, string>
        {
            ["1-1.json"] = "not json {",
            ["1-2.json"] = "[1, 2]",
            ["1-3.json"] = "{\"host\":\"127.0.0.1\",\"port\":1}",
            ["1-4.json"] = "{\"pid\":\"x\",\"host\":\"127.0.0.1\",\"port\":1}",
            ["1-5.json"] = "",
        };
        foreach (var (name, text) in files)
        {
            File.WriteAllText(Path.Combine(path, name), text);
        }

        File.WriteAllText(Path.Combine(path, "notes.txt"), "not a record");
        File.WriteAllText(Path.Combine(path, "garbage.json"), "not named like a record: not the directory's to delete");
        Assert.Equal([40010], directory.List().Select(r => r.Port));
        foreach (var name in files.Keys)
        {
            Assert.False(File.Exists(Path.Combine(path, name)), $"{name} was not pruned");
        }

        Assert.True(File.Exists(Path.Combine(path, "notes.txt")));
        Assert.True(File.Exists(Path.Combine(path, "garbage.json")));
    }

    [Fact]
    public void List_IsSortedByPortThenPid()
    {
        var directory = new ServerDirectory(path);
        directory.Register(Mine(40013));
        directory.Register(Mine(40011));
        directory.Register(Mine(40012));
        Assert.Equal([40011, 40012, 40013], directory.List().Select(r => r.Port));
    }

    [Theory]
    [InlineData("0.0.0.0", "127.0.0.1")]
    [InlineData("::", "127.0.0.1")]
    [InlineData("[::]", "127.0.0.1")]
    [InlineData("", "127.0.0.1")]
    [InlineData("127.0.0.1", "127.0.0.1")]
    [InlineData("localhost", "localhost")]
    [InlineData("::1", "[::1]")]
    [InlineData("[::1]", "[::1]")]
    [InlineData("192.168.1.5", "192.168.1.5")]
    public void ConnectHost_MapsWildcardsToLoopbackAndBracketsIPv6(string host, string expected)
    {
        Assert.Equal(expected, ServerRecord.ConnectHost(host));
    }

    [Fact]
    public void FromJson_RoundTripsToJson()
    {
        var record = Mine(40014) with { TokenRequired = true, ConfigPath = null };
        Assert.Equal(record, ServerRecord.FromJson(JsonNode.Parse(record.ToJson().ToJsonString())));
    }

    [Fact]
    public void FromJson_ShmpipelineRecordWithoutPathOrTicks_IsRead()
    {
        var record = ServerRecord.FromJson(JsonNode.Parse("{\"host\":\"0.0.0.0\",\"pid\":12,\"port\":8765,\"started_at\":1.5,\"token_required\":true}"));
        Assert.Equal(new ServerRecord(12, "0.0.0.0", 8765, true, 1.5, null, 0), record);
        Assert.Equal("http://127.0.0.1:8765", record!.Url);
    }

    /// <summary>The pid of a process that has exited (and been reaped).</summary>
    private static int DeadPid()
    {
        using var process = System.Diagnostics.Process.Start("true")!;
        Assert.True(process.WaitForExit(10_000));
        var pid = process.Id;
        Assert.Null(ProcessIdentity.Of(pid));
        return pid;
    }
}

/// <summary>The running server's own record.</summary>
public sealed class ServerRecordTests : ServerTest
{
    [Fact]
    public async Task RecordFile_WhileRunning_DescribesTheServer_AndIsGoneAfterDispose()
    {
        var file = Server.RecordFile;
        Assert.NotNull(file);
        Assert.Equal(Path.Combine(DiscoveryDirectory, $"{Environment.ProcessId}-{Server.Address.Port}.json"), file);
        var json = JsonNode.Parse(await File.ReadAllTextAsync(file!))!;
        Assert.Equal(Environment.ProcessId, (int)json["pid"]!);
        Assert.Equal("127.0.0.1", (string?)json["host"]);
        Assert.Equal(Server.Address.Port, (int)json["port"]!);
        Assert.False((bool)json["token_required"]!);
        Assert.Equal(ConfigPath, (string?)json["config_path"]);
        Assert.InRange((double)json["started_at"]!, (DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0) - 60, (DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0) + 1);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file!));

        var listed = Assert.Single(new ServerDirectory(DiscoveryDirectory).List());
        Assert.Equal(Server.Address.Port, listed.Port);
        Assert.Equal(new Uri(listed.Url + "/"), Server.Address);

        await Server.DisposeAsync();
        Assert.False(File.Exists(file));
        Assert.Empty(new ServerDirectory(DiscoveryDirectory).List());
    }

    [Fact]
    public async Task Dispose_AfterStart_RemovesTheStreamsAndWorkers()
    {
        var snapshot = await PostOkAsync("/commands/start");
        Assert.Equal(3, WorkerProcesses(Namespace).Count);
        Assert.Equal("running", (string?)snapshot["state"]);
        await Server.DisposeAsync();
        AssertNothingLeft(Namespace);
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => Http.GetAsync("/health"));
    }
}
