using System.Collections.Immutable;
using System.Text.Json.Nodes;

namespace Flowline.Documents;

/// <summary>How a task's function is run.</summary>
public enum TaskControl
{
    /// <summary>Called once; the function owns its loop.</summary>
    Plain,

    /// <summary>Waits for its event, then reruns the function as long as the event stays set (never resets it).</summary>
    Switchable,

    /// <summary>Waits for its event, resets it, and runs the function once per activation.</summary>
    Toggleable,

    /// <summary>A built-in reader that stops holding its streams' writers back and returns.</summary>
    Terminator,
}

/// <summary>
/// A task of a code-first pipeline (<c>Pipeline.AddTask</c>): a function that owns its loop and receives
/// typed readers, writers and events by its own parameter names. Runs in a worker like any node.
/// </summary>
public sealed record TaskSpec : NodeSpec
{
    /// <summary>Streams it reads: the function's parameter name to the stream's name.</summary>
    public ImmutableSortedDictionary<string, string> Reads { get; init; } = ImmutableSortedDictionary<string, string>.Empty.WithComparers(StringComparer.Ordinal);

    /// <summary>Streams it writes: parameter name to stream name.</summary>
    public ImmutableSortedDictionary<string, string> Writes { get; init; } = ImmutableSortedDictionary<string, string>.Empty.WithComparers(StringComparer.Ordinal);

    /// <summary>Events it uses: parameter name to event name.</summary>
    public ImmutableSortedDictionary<string, string> Events { get; init; } = ImmutableSortedDictionary<string, string>.Empty.WithComparers(StringComparer.Ordinal);

    /// <summary>How the function is run.</summary>
    public TaskControl Control { get; init; }

    /// <summary>The parameter name of the event a switchable or toggleable task waits for.</summary>
    public string? ActivateOn { get; init; }

    /// <summary>The assembly-qualified name of the type declaring the task's static method (null for a delegate run on a thread).</summary>
    public string? TypeName { get; init; }

    /// <summary>The name of the static method.</summary>
    public string? Method { get; init; }

    /// <summary>The file of the assembly declaring the type, loaded by a worker process.</summary>
    public string? AssemblyPath { get; init; }

    /// <summary>What the task does, for people.</summary>
    public string? Description { get; init; }

    /// <inheritdoc/>
    public bool Equals(TaskSpec? other) =>
        other is not null && Name == other.Name && Control == other.Control && ActivateOn == other.ActivateOn
        && TypeName == other.TypeName && Method == other.Method && Description == other.Description && Placement == other.Placement
        && Reads.SequenceEqual(other.Reads) && Writes.SequenceEqual(other.Writes) && Events.SequenceEqual(other.Events);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Name, Control, TypeName, Method);

    /// <summary>As JSON (how a worker process is told about it).</summary>
    public JsonObject ToJson() => new()
    {
        ["name"] = Name,
        ["kind"] = Kind,
        ["control"] = Control.ToString().ToLowerInvariant(),
        ["activate_on"] = ActivateOn,
        ["type"] = TypeName,
        ["method"] = Method,
        ["assembly"] = AssemblyPath,
        ["description"] = Description,
        ["placement"] = Placement?.ToString().ToLowerInvariant(),
        ["cpu"] = Cpu,
        ["reads"] = Map(Reads),
        ["writes"] = Map(Writes),
        ["events"] = Map(Events),
    };

    /// <summary>Reads what <see cref="ToJson"/> wrote.</summary>
    public static TaskSpec FromJson(JsonObject o)
    {
        ArgumentNullException.ThrowIfNull(o);
        return new TaskSpec
        {
            Name = (string)o["name"]!,
            Kind = (string?)o["kind"] ?? "task",
            Control = Enum.Parse<TaskControl>((string?)o["control"] ?? "plain", ignoreCase: true),
            ActivateOn = (string?)o["activate_on"],
            TypeName = (string?)o["type"],
            Method = (string?)o["method"],
            AssemblyPath = (string?)o["assembly"],
            Description = (string?)o["description"],
            Placement = (string?)o["placement"] is { } p ? Enum.Parse<WorkerPlacement>(p, ignoreCase: true) : null,
            Cpu = (int?)o["cpu"],
            Reads = Unmap(o["reads"]),
            Writes = Unmap(o["writes"]),
            Events = Unmap(o["events"]),
        };
    }

    private static JsonObject Map(ImmutableSortedDictionary<string, string> map) =>
        new(map.Select(p => KeyValuePair.Create(p.Key, (JsonNode?)JsonValue.Create(p.Value))));

    private static ImmutableSortedDictionary<string, string> Unmap(JsonNode? node) =>
        (node as JsonObject ?? []).ToImmutableSortedDictionary(p => p.Key, p => (string)p.Value!, StringComparer.Ordinal);
}

/// <summary>An event of a code-first pipeline: a process-shared flag with counted activations.</summary>
/// <param name="Name">Its name, unique in the pipeline.</param>
/// <param name="InitialState">Set when the pipeline is built.</param>
/// <param name="Description">What it is for, for people.</param>
public sealed record EventSpec(string Name, bool InitialState = false, string? Description = null)
{
    /// <summary>As JSON.</summary>
    public JsonObject ToJson() => new() { ["name"] = Name, ["initial_state"] = InitialState, ["description"] = Description };

    /// <summary>Reads what <see cref="ToJson"/> wrote.</summary>
    public static EventSpec FromJson(JsonObject o)
    {
        ArgumentNullException.ThrowIfNull(o);
        return new EventSpec((string)o["name"]!, (bool?)o["initial_state"] ?? false, (string?)o["description"]);
    }
}
