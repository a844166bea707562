using System.Text.Json;
using System.Text.Json.Nodes;
using Flowline.SharedMemory.Liveness;

namespace Flowline.ControlPlane;

/// <summary>A local server's discovery record (shmpipeline's fields plus the document path and the process start time).</summary>
/// <param name="Pid">The server's process id.</param>
/// <param name="Host">The address it listens on.</param>
/// <param name="Port">Its port.</param>
/// <param name="TokenRequired">True when requests need a bearer token.</param>
/// <param name="StartedAt">When it started (Unix seconds).</param>
/// <param name="ConfigPath">The document it serves.</param>
/// <param name="PidStartTicks">The process' start time in clock ticks since boot (tells a reused pid apart).</param>
public sealed record ServerRecord(int Pid, string Host, int Port, bool TokenRequired, double StartedAt, string? ConfigPath, ulong PidStartTicks)
{
    /// <summary>The URL a local client connects to (a wildcard address becomes 127.0.0.1).</summary>
    public string Url => $"http://{ConnectHost(Host)}:{Port}";

    /// <summary>shmpipeline's <c>connect_host</c>: <c>0.0.0.0</c>, <c>::</c> and empty map to 127.0.0.1; IPv6 literals get brackets.</summary>
    public static string ConnectHost(string host) => host switch
    {
        "" or "0.0.0.0" or "::" or "[::]" => "127.0.0.1",
        _ when host.Contains(':', StringComparison.Ordinal) && !host.StartsWith('[') => $"[{host}]",
        _ => host,
    };

    /// <summary>The record as JSON (sorted keys, as shmpipeline writes them).</summary>
    public JsonObject ToJson() => new()
    {
        ["config_path"] = ConfigPath,
        ["host"] = Host,
        ["pid"] = Pid,
        ["pid_start_ticks"] = PidStartTicks,
        ["port"] = Port,
        ["started_at"] = StartedAt,
        ["token_required"] = TokenRequired,
        ["url"] = Url,
    };

    /// <summary>Reads a record; null when it is malformed.</summary>
    public static ServerRecord? FromJson(JsonNode? node)
    {
        try
        {
            if (node is not JsonObject o || o["pid"] is null || o["port"] is null || o["host"] is null)
            {
                return null;
            }

            return new ServerRecord(
                o["pid"]!.GetValue<int>(),
                o["host"]!.GetValue<string>(),
                o["port"]!.GetValue<int>(),
                o["token_required"]?.GetValue<bool>() ?? false,
                o["started_at"]?.GetValue<double>() ?? 0,
                o["config_path"]?.GetValue<string>(),
                o["pid_start_ticks"]?.GetValue<ulong>() ?? 0);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            return null;
        }
    }
}

/// <summary>
/// Discovery records of the local servers: one JSON file per server (<c>&lt;pid&gt;-&lt;port&gt;.json</c>)
/// in a directory only the user can read (<c>$XDG_RUNTIME_DIR/flowline/servers</c>, else
/// <c>/tmp/flowline-servers-&lt;user&gt;</c>, mode 0700; records 0600). A record is written once the
/// server listens and removed when it stops; records of dead servers and malformed files are pruned
/// whenever the directory is listed.
/// </summary>
public sealed class ServerDirectory
{
    private const UnixFileMode UserOnlyDirectory = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const UnixFileMode UserOnlyFile = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>Uses <paramref name="path"/>, or the default directory when null.</summary>
    public ServerDirectory(string? path = null) => Path = path ?? DefaultPath();

    private static readonly System.Text.RegularExpressions.Regex RecordName = new(@"^\d+-\d+\.json$", System.Text.RegularExpressions.RegexOptions.CultureInvariant);

    /// <summary>The directory.</summary>
    public string Path { get; }

    /// <summary>The default directory of this user.</summary>
    public static string DefaultPath()
    {
        var runtime = Environment.GetEnvironmentVariable("XDG_RUNTIME_DIR");
        return !string.IsNullOrEmpty(runtime) && Directory.Exists(runtime)
            ? System.IO.Path.Combine(runtime, "flowline", "servers")
            : System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"flowline-servers-{Environment.UserName}");
    }

    /// <summary>Writes <paramref name="record"/> (atomically) and returns its file.</summary>
    public string Register(ServerRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        EnsureExists();
        _ = List(); // prunes the records of servers that died without removing theirs
        var file = System.IO.Path.Combine(Path, $"{record.Pid}-{record.Port}.json");
        var temp = file + $".{Environment.ProcessId}.tmp";
        using (var stream = new FileStream(temp, new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write, UnixCreateMode = UserOnlyFile }))
        {
            JsonSerializer.Serialize(stream, record.ToJson(), ControlJson.Options);
        }

        File.Move(temp, file, overwrite: true);
        return file;
    }

    /// <summary>Removes a record file (no error if it is gone).</summary>
    public static void Unregister(string file)
    {
        try
        {
            File.Delete(file);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Already gone or unreachable: nothing to clean.
        }
    }

    /// <summary>The live servers' records, sorted by port then pid; malformed files and dead servers' records are deleted.</summary>
    public IReadOnlyList<ServerRecord> List()
    {
        if (!IsTrusted())
        {
            return [];
        }

        var live = new List<ServerRecord>();
        foreach (var file in Directory.EnumerateFiles(Path, "*.json").Where(f => RecordName.IsMatch(System.IO.Path.GetFileName(f))))
        {
            ServerRecord? record;
            try
            {
                record = ServerRecord.FromJson(JsonNode.Parse(File.ReadAllText(file)));
            }
            catch (Exception e) when (e is JsonException or IOException)
            {
                record = null;
            }

            if (record is not null && IsAlive(record))
            {
                live.Add(record);
            }
            else
            {
                Unregister(file);
            }
        }

        return [.. live.OrderBy(r => r.Port).ThenBy(r => r.Pid)];
    }

    private static bool IsAlive(ServerRecord record) =>
        record.PidStartTicks != 0 ? new ProcessIdentity(record.Pid, record.PidStartTicks).IsAlive() : ProcessIdentity.Of(record.Pid) is not null;

    /// <summary>
    /// Creates the directory with mode 0700, or checks an existing one: a symbolic link is refused (it
    /// could lead into another directory of the user's), and a directory that is not 0700 is made so,
    /// which only its owner can do (one planted by another user is refused).
    /// </summary>
    public string EnsureExists()
    {
        if (new DirectoryInfo(Path).LinkTarget is not null)
        {
            throw new InvalidOperationException($"the discovery directory '{Path}' is a symbolic link; remove it or set XDG_RUNTIME_DIR");
        }

        Directory.CreateDirectory(Path, UserOnlyDirectory);
        try
        {
            if (File.GetUnixFileMode(Path) != UserOnlyDirectory)
            {
                File.SetUnixFileMode(Path, UserOnlyDirectory);
            }
        }
        catch (UnauthorizedAccessException e)
        {
            throw new InvalidOperationException($"the discovery directory '{Path}' belongs to another user; remove it or set XDG_RUNTIME_DIR", e);
        }

        return Path;
    }

    /// <summary>
    /// True when the directory can be believed: it exists, is not a symbolic link and has mode 0700
    /// (another user's directory with that mode cannot be read, so a readable one is ours).
    /// </summary>
    private bool IsTrusted()
    {
        try
        {
            var info = new DirectoryInfo(Path);
            return info.Exists && info.LinkTarget is null && File.GetUnixFileMode(Path) == UserOnlyDirectory;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }
}
