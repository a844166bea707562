using System.Collections.Immutable;
using Flowline.Documents;
using Flowline.SharedMemory;
using Tomlyn;
using Tomlyn.Model;

namespace Flowline.Pipelines;

public sealed partial class Pipeline
{
    /// <summary>The version of the saved format (PYTHUSA's <c>format_version = 1</c>).</summary>
    public const int FormatVersion = 1;

    /// <summary>
    /// Saves the declaration (not the runtime) as TOML: <c>format_version</c>, <c>name</c>, then
    /// <c>[[streams]]</c>, <c>[[events]]</c> and <c>[[tasks]]</c> sorted by name, so the output is
    /// deterministic. A task is saved by its type and method; a closure or lambda cannot be saved and is
    /// named in the error. Creates the parent directories; returns the full path.
    /// </summary>
    public string Save(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var unsaveable = tasks.Where(t => t.Spec.Control != TaskControl.Terminator && (t.Method is null || !Functions.IsLoadable(t.Method))).ToList();
        if (unsaveable.Count > 0)
        {
            var t = unsaveable[0];
            throw new InvalidOperationException(
                $"task '{t.Spec.Name}' cannot be saved: {(t.Method is null ? "it has no function" : Functions.WhyNotLoadable(t.Method))}; only static methods of named types can be saved and reconstructed");
        }

        var root = new TomlTable
        {
            ["format_version"] = (long)FormatVersion,
            ["name"] = Name,
        };
        if (options.Namespace is { } ns)
        {
            root["namespace"] = ns;
        }

        var streamTables = new TomlTableArray();
        foreach (var s in streams.OrderBy(s => s.Name, StringComparer.Ordinal))
        {
            var table = new TomlTable
            {
                ["name"] = s.Name,
                ["shape"] = Array(s.Format.Shape.Select(d => (long)d)),
                ["dtype"] = s.Format.ElementType.ToName(),
                ["frames"] = (long)s.Frames,
                ["cache_align"] = true,
            };
            Optional(table, "description", s.Description);
            streamTables.Add(table);
        }

        var eventTables = new TomlTableArray();
        foreach (var e in events.OrderBy(e => e.Name, StringComparer.Ordinal))
        {
            var table = new TomlTable { ["name"] = e.Name, ["initial_state"] = e.InitialState };
            Optional(table, "description", e.Description);
            eventTables.Add(table);
        }

        var taskTables = new TomlTableArray();
        foreach (var (spec, _, method) in tasks.OrderBy(t => t.Spec.Name, StringComparer.Ordinal))
        {
            var table = new TomlTable { ["name"] = spec.Name };
            if (spec.Control != TaskControl.Terminator)
            {
                table["type"] = method!.DeclaringType!.AssemblyQualifiedName!;
                table["method"] = method.Name;
                Optional(table, "assembly", spec.AssemblyPath);
            }

            Optional(table, "description", spec.Description);
            if (spec.Control != TaskControl.Plain)
            {
                table["control_mode"] = spec.Control.ToString().ToLowerInvariant();
            }

            if (spec.ActivateOn is { } activateOn)
            {
                table["control_event"] = activateOn;
            }

            table["placement"] = (spec.Placement ?? WorkerPlacement.Process).ToString().ToLowerInvariant();
            table["reads"] = Table(spec.Reads);
            table["writes"] = Table(spec.Writes);
            table["events"] = Table(spec.Events);
            taskTables.Add(table);
        }

        root["streams"] = streamTables;
        root["events"] = eventTables;
        root["tasks"] = taskTables;
        var full = System.IO.Path.GetFullPath(path);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(full)!);
        File.WriteAllText(full, TomlSerializer.Serialize(root, typeof(TomlTable)));
        return full;
    }

    /// <summary>
    /// Rebuilds a declaration saved by <see cref="Save"/> (not its runtime). Errors name the file and what
    /// is wrong: malformed TOML (with its line), another format version, a missing field, an unknown
    /// element type or control mode, a task whose type or method cannot be found.
    /// </summary>
    public static Pipeline Reconstruct(string path, PipelineOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var full = System.IO.Path.GetFullPath(path);
        TomlTable root;
        try
        {
            root = TomlSerializer.Deserialize<TomlTable>(File.ReadAllText(full)) ?? throw new FormatException($"{full}: the file is empty");
        }
        catch (TomlException e)
        {
            throw new FormatException($"{full}{(e.Line is { } line ? $":{line}" : "")}: not valid TOML: {e.Message}", e);
        }

        var version = root.TryGetValue("format_version", out var v) ? Convert.ToInt64(v, System.Globalization.CultureInfo.InvariantCulture) : FormatVersion;
        if (version != FormatVersion)
        {
            throw new FormatException($"{full}: format_version {version} is not supported; this version of Flowline reads format_version {FormatVersion}");
        }

        var name = Text(root, "name", full, "the pipeline") ?? throw new FormatException($"{full}: the pipeline needs a 'name'");
        var ns = root.TryGetValue("namespace", out var n) ? n as string : null;
        var pipeline = new Pipeline(name, (options ?? new PipelineOptions()) with { Namespace = options?.Namespace ?? ns });
        try
        {
            foreach (var table in Tables(root, "streams", full))
            {
                var stream = Text(table, "name", full, "each saved stream") ?? throw Missing(full, "stream", "name");
                var shape = table.TryGetValue("shape", out var s) && s is TomlArray array
                    ? array.Select(d => Convert.ToInt32(d, System.Globalization.CultureInfo.InvariantCulture)).ToArray()
                    : throw Missing(full, "stream", "shape");
                var dtype = Text(table, "dtype", full, "each saved stream") ?? throw Missing(full, "stream", "dtype");
                if (!ElementTypes.TryParse(NumpyName(dtype), out var type))
                {
                    throw new FormatException($"{full}: stream '{stream}' has unknown dtype '{dtype}'");
                }

                var frames = table.TryGetValue("frames", out var f) ? Convert.ToInt32(f, System.Globalization.CultureInfo.InvariantCulture) : DefaultFrames;
                pipeline.AddStream(stream, shape, type, frames, cacheAlign: true, table.TryGetValue("description", out var d) ? d as string : null);
            }

            foreach (var table in Tables(root, "events", full))
            {
                var e = Text(table, "name", full, "each saved event") ?? throw Missing(full, "event", "name");
                pipeline.AddEvent(e, table.TryGetValue("initial_state", out var i) && i is true, table.TryGetValue("description", out var d) ? d as string : null);
            }

            foreach (var table in Tables(root, "tasks", full))
            {
                pipeline.AddSaved(SavedTask(table, full));
            }
        }
        catch (Exception e) when (e is ArgumentException or InvalidCastException or OverflowException)
        {
            pipeline.Dispose();
            throw new FormatException($"{full}: {e.Message}", e);
        }

        return pipeline;
    }

    private static TaskSpec SavedTask(TomlTable table, string file)
    {
        var name = Text(table, "name", file, "each saved task") ?? throw Missing(file, "task", "name");
        var mode = table.TryGetValue("control_mode", out var m) ? m as string : null;
        var control = mode switch
        {
            null or "plain" => TaskControl.Plain,
            "switchable" => TaskControl.Switchable,
            "toggleable" => TaskControl.Toggleable,
            "terminator" => TaskControl.Terminator,
            _ => throw new FormatException($"{file}: task '{name}' has unknown control_mode '{mode}'; modes are switchable, toggleable, terminator"),
        };
        var typeName = Text(table, "type", file, "each saved task");
        var method = Text(table, "method", file, "each saved task");
        if (control != TaskControl.Terminator && (typeName is null || method is null))
        {
            throw new FormatException($"{file}: each saved task must include 'type' and 'method' (task '{name}')");
        }

        var placement = table.TryGetValue("placement", out var p) && p is string where
            ? Enum.Parse<WorkerPlacement>(where, ignoreCase: true)
            : WorkerPlacement.Process;
        return new TaskSpec
        {
            Name = name,
            Kind = control switch { TaskControl.Plain => "task", _ => $"task.{control.ToString().ToLowerInvariant()}" },
            Control = control,
            ActivateOn = table.TryGetValue("control_event", out var c) ? c as string : null,
            TypeName = typeName,
            Method = method,
            AssemblyPath = table.TryGetValue("assembly", out var a) ? a as string : null,
            Description = table.TryGetValue("description", out var d) ? d as string : null,
            Placement = control == TaskControl.Terminator ? WorkerPlacement.Thread : placement,
            Reads = Map(table, "reads"),
            Writes = Map(table, "writes"),
            Events = Map(table, "events"),
        };
    }

    private static IEnumerable<TomlTable> Tables(TomlTable root, string key, string file) =>
        !root.TryGetValue(key, out var value) ? []
        : value as TomlTableArray ?? throw new FormatException($"{file}: '{key}' must be an array of tables ([[{key}]])");

    private static string? Text(TomlTable table, string key, string file, string what) =>
        !table.TryGetValue(key, out var value) ? null
        : value as string ?? throw new FormatException($"{file}: {what}'s '{key}' must be a string");

    private static FormatException Missing(string file, string what, string field) => new($"{file}: each saved {what} must include '{field}'");

    private static ImmutableSortedDictionary<string, string> Map(TomlTable table, string key) =>
        table.TryGetValue(key, out var value) && value is TomlTable map
            ? map.ToImmutableSortedDictionary(p => p.Key, p => p.Value as string ?? throw new InvalidCastException($"'{key}.{p.Key}' must be a string"), StringComparer.Ordinal)
            : ImmutableSortedDictionary<string, string>.Empty.WithComparers(StringComparer.Ordinal);

    private static TomlTable Table(ImmutableSortedDictionary<string, string> map)
    {
        var table = new TomlTable();
        foreach (var (key, value) in map)
        {
            table[key] = value;
        }

        return table;
    }

    private static TomlArray Array(IEnumerable<long> values)
    {
        var array = new TomlArray();
        foreach (var value in values)
        {
            array.Add(value);
        }

        return array;
    }

    private static void Optional(TomlTable table, string key, string? value)
    {
        if (value is not null)
        {
            table[key] = value;
        }
    }

    /// <summary>PYTHUSA saves NumPy's type strings (<c>&lt;f4</c>); Flowline's names are accepted as they are.</summary>
    private static string NumpyName(string dtype) => dtype switch
    {
        "<f4" or "=f4" or "f4" => "float32",
        "<f8" or "=f8" or "f8" => "float64",
        "|i1" or "i1" => "int8",
        "|u1" or "u1" => "uint8",
        "<i2" or "i2" => "int16",
        "<u2" or "u2" => "uint16",
        "<i4" or "i4" => "int32",
        "<u4" or "u4" => "uint32",
        "<i8" or "i8" => "int64",
        "<u8" or "u8" => "uint64",
        "|b1" or "b1" => "bool",
        "<c8" or "c8" => "complex64",
        "<c16" or "c16" => "complex128",
        _ => dtype,
    };
}
