
namespace Flowline.Runtime;

/// <summary>Two processes claimed the same node, or a second writer claimed a stream.</summary>
public sealed class OwnershipConflictException : InvalidOperationException
{
    /// <summary>Creates an exception.</summary>
    public OwnershipConflictException(string message)
        : base(message)
    {
    }

    /// <summary>Creates an exception.</summary>
    public OwnershipConflictException()
    {
    }

    /// <summary>Creates an exception.</summary>
    public OwnershipConflictException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>
/// Who owns what: each node and each written stream has at most one live owner (a worker launch or an
/// external process). A claim that collides fails as a whole, naming every collision and its owner.
/// External processes are registered explicitly (<see cref="PipelineManager.RegisterExternalProcess"/>)
/// or seen in the streams' reader and writer tables (pids that are no worker's).
/// </summary>
internal sealed class ProcessRegistry
{
    private readonly object gate = new();
    private readonly Dictionary<string, Guid> nodeOwners = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Guid> writerOwners = new(StringComparer.Ordinal);
    private readonly Dictionary<Guid, string> descriptions = [];
    private readonly Dictionary<int, External> externals = [];
    private readonly HashSet<Guid> exited = [];

    /// <summary>True if <paramref name="id"/> was a process that exited.</summary>
    public bool HasExited(Guid id)
    {
        lock (gate)
        {
            return exited.Contains(id);
        }
    }

    /// <summary>Claims <paramref name="nodes"/> and <paramref name="written"/> for <paramref name="id"/>; throws naming every collision.</summary>
    public void Claim(Guid id, string description, IEnumerable<string> nodes, IEnumerable<string> written)
    {
        lock (gate)
        {
            var collisions = new List<string>();
            var nodeList = nodes.ToList();
            var writtenList = written.ToList();
            foreach (var n in nodeList)
            {
                if (nodeOwners.TryGetValue(n, out var owner) && owner != id)
                {
                    collisions.Add($"node '{n}' is owned by {descriptions.GetValueOrDefault(owner, "?")} (process {owner})");
                }
            }

            foreach (var s in writtenList)
            {
                if (writerOwners.TryGetValue(s, out var owner) && owner != id)
                {
                    collisions.Add($"stream '{s}' is written by {descriptions.GetValueOrDefault(owner, "?")} (process {owner})");
                }
            }

            if (collisions.Count > 0)
            {
                throw new OwnershipConflictException($"{description} cannot own what it claims: {string.Join("; ", collisions)}");
            }

            descriptions[id] = description;
            foreach (var n in nodeList)
            {
                nodeOwners[n] = id;
            }

            foreach (var s in writtenList)
            {
                writerOwners[s] = id;
            }
        }
    }

    /// <summary>Lets go of everything <paramref name="id"/> owns, and remembers that it exited.</summary>
    public void Release(Guid id)
    {
        lock (gate)
        {
            foreach (var key in nodeOwners.Where(p => p.Value == id).Select(p => p.Key).ToList())
            {
                nodeOwners.Remove(key);
            }

            foreach (var key in writerOwners.Where(p => p.Value == id).Select(p => p.Key).ToList())
            {
                writerOwners.Remove(key);
            }

            exited.Add(id);
            foreach (var pid in externals.Where(p => p.Value.Id == id).Select(p => p.Key).ToList())
            {
                externals.Remove(pid);
            }
        }
    }

    /// <summary>Registers an external process (claims checked as for workers); returns its id.</summary>
    public Guid RegisterExternal(int pid, IReadOnlyList<string> nodes, IReadOnlyList<string> written, IReadOnlyList<string> read)
    {
        lock (gate)
        {
            var id = externals.TryGetValue(pid, out var known) ? known.Id : Guid.NewGuid();
            Claim(id, $"external process {pid}", nodes, written);
            externals[pid] = new External(id, pid, DateTimeOffset.UtcNow, [.. nodes], [.. written], [.. read], Declared: true);
            return id;
        }
    }

    /// <summary>
    /// Notes the pids seen in the streams' tables that are no worker's (<paramref name="known"/>): each gets
    /// an id the first time it is seen; one that is no longer seen (and was not registered) is dropped.
    /// Returns the events to report: (type, id, stream).
    /// </summary>
    public List<(string Type, Guid Id, string Stream)> Observe(IReadOnlyDictionary<string, (int WriterPid, IReadOnlyList<int> ReaderPids)> streams, ISet<int> known)
    {
        var events = new List<(string, Guid, string)>();
        lock (gate)
        {
            var seen = new Dictionary<int, (SortedSet<string> Written, SortedSet<string> Read)>();
            foreach (var (stream, (writer, readers)) in streams)
            {
                if (writer > 0 && !known.Contains(writer))
                {
                    Entry(seen, writer).Written.Add(stream);
                }

                foreach (var reader in readers.Where(r => r > 0 && !known.Contains(r)))
                {
                    Entry(seen, reader).Read.Add(stream);
                }
            }

            foreach (var (pid, (written, read)) in seen)
            {
                if (externals.TryGetValue(pid, out var e))
                {
                    foreach (var s in read.Except(e.Read))
                    {
                        events.Add(("reader_attached", e.Id, s));
                    }

                    if (!e.Declared)
                    {
                        foreach (var s in e.Read.Except(read))
                        {
                            events.Add(("reader_detached", e.Id, s));
                        }

                        externals[pid] = e with { Written = [.. written], Read = [.. read] };
                    }
                }
                else
                {
                    var id = Guid.NewGuid();
                    externals[pid] = new External(id, pid, StartOf(pid), [], [.. written], [.. read], Declared: false);
                    descriptions[id] = $"external process {pid}";
                    events.Add(("process_registered", id, ""));
                    events.AddRange(read.Select(s => ("reader_attached", id, s)));
                }
            }

            foreach (var (pid, e) in externals.Where(p => !p.Value.Declared && !seen.ContainsKey(p.Key)).ToList())
            {
                externals.Remove(pid);
                exited.Add(e.Id);
                events.AddRange(e.Read.Select(s => ("reader_detached", e.Id, s)));
                events.Add(("process_exited", e.Id, ""));
            }
        }

        return events;
    }

    /// <summary>The external processes.</summary>
    public List<ProcessRecord> Externals()
    {
        lock (gate)
        {
            return [.. externals.Values.OrderBy(e => e.Pid).Select(e => new ProcessRecord
            {
                Id = e.Id.ToString(),
                Pid = e.Pid,
                StartTime = e.Started?.ToString("O", System.Globalization.CultureInfo.InvariantCulture),
                Host = Environment.MachineName,
                Role = "external",
                Nodes = e.Nodes,
                StreamsWritten = e.Written,
                StreamsRead = e.Read,
                State = "running",
            })];
        }
    }

    private static (SortedSet<string> Written, SortedSet<string> Read) Entry(Dictionary<int, (SortedSet<string>, SortedSet<string>)> seen, int pid)
    {
        if (!seen.TryGetValue(pid, out var entry))
        {
            entry = (new SortedSet<string>(StringComparer.Ordinal), new SortedSet<string>(StringComparer.Ordinal));
            seen[pid] = entry;
        }

        return entry;
    }

    private static DateTimeOffset? StartOf(int pid)
    {
        try
        {
            using var p = System.Diagnostics.Process.GetProcessById(pid);
            return p.StartTime.ToUniversalTime();
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception or NotSupportedException)
        {
            return null;
        }
    }

    private sealed record External(Guid Id, int Pid, DateTimeOffset? Started, IReadOnlyList<string> Nodes, IReadOnlyList<string> Written, IReadOnlyList<string> Read, bool Declared);
}
