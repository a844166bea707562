using System.Reflection;
using Flowline.SharedMemory;
using Flowline.Documents;

namespace Flowline.Pipelines;

public sealed partial class Pipeline
{
    /// <summary>Every rule of the declaration; returns the tasks in start order (reverse topological: readers first).</summary>
    private List<TaskDeclaration> Check()
    {
        var streamNames = streams.Select(s => s.Name).ToHashSet(StringComparer.Ordinal);
        var eventNames = events.Select(e => e.Name).ToHashSet(StringComparer.Ordinal);
        var writers = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        var readers = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        var eventUsers = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var (spec, _, method) in tasks)
        {
            var locals = spec.Reads.Keys.Concat(spec.Writes.Keys).Concat(spec.Events.Keys).GroupBy(k => k, StringComparer.Ordinal).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
            if (locals.Count > 0)
            {
                throw new ArgumentException($"task '{spec.Name}': the parameter name(s) {string.Join(", ", locals.Select(l => $"'{l}'"))} are bound more than once across reads, writes and events");
            }

            foreach (var (local, stream) in spec.Reads.Concat(spec.Writes))
            {
                if (!streamNames.Contains(stream))
                {
                    throw new KeyNotFoundException($"task '{spec.Name}': parameter '{local}' is bound to unknown stream '{stream}'; streams are: {Listing(streamNames)}");
                }
            }

            foreach (var (local, e) in spec.Events)
            {
                if (!eventNames.Contains(e))
                {
                    throw new KeyNotFoundException($"task '{spec.Name}': parameter '{local}' is bound to unknown event '{e}'; events are: {Listing(eventNames)}");
                }

                Add(eventUsers, e, spec.Name);
            }

            if (spec.Control is TaskControl.Switchable or TaskControl.Toggleable && !spec.Events.ContainsKey(spec.ActivateOn ?? ""))
            {
                throw new ArgumentException($"task '{spec.Name}': activateOn '{spec.ActivateOn}' is not one of its event bindings");
            }

            var both = spec.Reads.Values.Intersect(spec.Writes.Values, StringComparer.Ordinal).ToList();
            if (both.Count > 0)
            {
                throw new ArgumentException($"task '{spec.Name}' both reads and writes stream '{both[0]}'");
            }

            foreach (var stream in spec.Reads.Values.Distinct(StringComparer.Ordinal))
            {
                Add(readers, stream, spec.Name);
            }

            foreach (var stream in spec.Writes.Values.Distinct(StringComparer.Ordinal))
            {
                Add(writers, stream, spec.Name);
            }

            if (method is not null)
            {
                Functions.CheckBindings(spec, method, name => streams.First(s => s.Name == name).Format);
            }
        }

        foreach (var s in streams)
        {
            var w = writers.GetValueOrDefault(s.Name) ?? [];
            if (w.Count > 1)
            {
                throw new ArgumentException($"stream '{s.Name}' has {w.Count} writers ({string.Join(", ", w)}); a stream has exactly one writer task");
            }

            if (w.Count == 0)
            {
                throw new ArgumentException($"stream '{s.Name}' has no writer task");
            }

            if (!readers.ContainsKey(s.Name))
            {
                throw new ArgumentException($"stream '{s.Name}' has no reader task; add one, or a terminator (AddTerminator) if nothing should hold its writer back");
            }

            // A latest reader holds the slot it reads (decision 100): the writer needs one more to fill and one for the newest frame.
            var latest = tasks.Where(t => t.Spec.Control == TaskControl.Terminator && t.Spec.Reads.ContainsValue(s.Name)).Select(t => $"'{t.Spec.Name}'").ToList();
            if (latest.Count > 0 && s.Frames < latest.Count + 2)
            {
                throw new ArgumentException(
                    $"stream '{s.Name}': frames {s.Frames} is too small for its latest reader{(latest.Count == 1 ? "" : "s")} (terminator {string.Join(", ", latest)}): " +
                    $"a latest reader holds the slot it reads, and the writer needs one slot to fill and one for the newest frame; declare it with frames: {PipelineSpec.LeastLatestDepth(latest.Count)} or more");
            }
        }

        foreach (var (e, users) in eventUsers.Where(p => p.Value.Count > 2))
        {
            Warn($"event '{e}' is bound to {users.Count} tasks ({string.Join(", ", users)}); one consumer per event is the intended pattern, consider separate events");
        }

        return Order(writers, readers);
    }

    /// <summary>Tasks in reverse topological order (each task before the tasks that write what it reads); a cycle is an error.</summary>
    private List<TaskDeclaration> Order(Dictionary<string, List<string>> writers, Dictionary<string, List<string>> readers)
    {
        var downstream = tasks.ToDictionary(t => t.Spec.Name, _ => new HashSet<string>(StringComparer.Ordinal), StringComparer.Ordinal);
        var pending = tasks.ToDictionary(t => t.Spec.Name, _ => 0, StringComparer.Ordinal);
        foreach (var (stream, from) in writers)
        {
            foreach (var reader in readers.GetValueOrDefault(stream) ?? [])
            {
                if (downstream[from[0]].Add(reader))
                {
                    pending[reader]++;
                }
            }
        }

        var ready = new Queue<string>(tasks.Select(t => t.Spec.Name).Where(n => pending[n] == 0));
        var order = new List<string>();
        while (ready.TryDequeue(out var name))
        {
            order.Add(name);
            foreach (var next in downstream[name])
            {
                if (--pending[next] == 0)
                {
                    ready.Enqueue(next);
                }
            }
        }

        if (order.Count < tasks.Count)
        {
            // What is left is the cycles and what they feed: drop, again and again, a task none of the rest reads from.
            var left = pending.Where(p => p.Value > 0).Select(p => p.Key).ToHashSet(StringComparer.Ordinal);
            while (left.FirstOrDefault(t => !downstream[t].Any(left.Contains)) is { } leaf)
            {
                left.Remove(leaf);
            }

            var cycle = left.Order(StringComparer.Ordinal);
            throw new ArgumentException($"the tasks form a cycle ({string.Join(", ", cycle)}); a pipeline's tasks must not feed back into themselves");
        }

        order.Reverse();
        return [.. order.Select(n => tasks.First(t => t.Spec.Name == n))];
    }

    private static void Add(Dictionary<string, List<string>> map, string key, string value)
    {
        if (!map.TryGetValue(key, out var list))
        {
            map[key] = list = [];
        }

        list.Add(value);
    }

    private static string Listing(IEnumerable<string> names) => names.Any() ? string.Join(", ", names) : "(none)";
}

/// <summary>Attribute form of <see cref="Pipeline.AddTask"/> (PYTHUSA's decorator): mark static methods, then <see cref="Pipeline.AddTasksFrom(Type)"/>.</summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class PipelineTaskAttribute : Attribute
{
    /// <summary>Marks a task named after the method.</summary>
    public PipelineTaskAttribute()
    {
    }

    /// <summary>Marks a task named <paramref name="name"/>.</summary>
    public PipelineTaskAttribute(string name) => Name = name;

    /// <summary>The task's name (default: the method's).</summary>
    public string? Name { get; }

    /// <summary>Streams read: <c>"param=stream"</c>, or <c>"name"</c> when both are the same.</summary>
    public string[]? Reads { get; set; }

    /// <summary>Streams written, in the same form.</summary>
    public string[]? Writes { get; set; }

    /// <summary>Events used, in the same form.</summary>
    public string[]? Events { get; set; }

    /// <summary>The event parameter that controls the task (switchable, or toggleable with <see cref="Toggle"/>).</summary>
    public string? ActivateOn { get; set; }

    /// <summary>Run once per activation of <see cref="ActivateOn"/> (toggleable) rather than while it is set (switchable).</summary>
    public bool Toggle { get; set; }

    /// <summary>Run on a thread rather than in a process of its own.</summary>
    public bool Thread { get; set; }

    /// <summary>What the task does.</summary>
    public string? Description { get; set; }
}

/// <summary>Task functions: which can run in a process of their own, how a saved one is found, and whether their parameters fit their bindings.</summary>
internal static class Functions
{
    /// <summary>True for a static method of a named (not compiler-generated) type: a worker process can find it by type and name.</summary>
    public static bool IsLoadable(MethodInfo method) => WhyNotLoadable(method) is null;

    public static string? WhyNotLoadable(MethodInfo method)
    {
        if (method.DeclaringType is not { } type || type.IsGenericType || IsCompilerGenerated(type) || method.Name.Contains('<', StringComparison.Ordinal))
        {
            return $"{method.Name} is a lambda, a local function or a closure";
        }

        if (!method.IsStatic)
        {
            return $"{method.Name} is an instance method";
        }

        return type.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static).Count(m => m.Name == method.Name) > 1
            ? $"{type.FullName}.{method.Name} is overloaded"
            : null;
    }

    /// <summary>The static method a saved task names; a clear error if it is gone.</summary>
    public static MethodInfo Find(TaskSpec spec)
    {
        var type = Type.GetType(spec.TypeName ?? "", throwOnError: false)
            ?? (spec.AssemblyPath is { } path && File.Exists(path) ? Plugins.PluginLoader.LoadAssembly(path).GetType(spec.TypeName!.Split(',')[0].Trim(), throwOnError: false) : null)
            ?? throw new ArgumentException($"task '{spec.Name}': cannot find type '{spec.TypeName}'");
        var methods = type.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static).Where(m => m.Name == spec.Method).ToList();
        return methods.Count == 1
            ? methods[0]
            : throw new ArgumentException($"task '{spec.Name}': {type.FullName} has {(methods.Count == 0 ? "no" : methods.Count.ToString(System.Globalization.CultureInfo.InvariantCulture))} static method(s) named '{spec.Method}'");
    }

    /// <summary>Every binding names a parameter of the right type, and every required parameter is bound.</summary>
    public static void CheckBindings(TaskSpec spec, MethodInfo method, Func<string, SharedMemory.FrameFormat> formatOf)
    {
        var parameters = method.GetParameters().ToDictionary(p => p.Name ?? "", StringComparer.Ordinal);
        var controlEvent = spec.Control is TaskControl.Switchable or TaskControl.Toggleable ? spec.ActivateOn : null;
        foreach (var (local, stream) in spec.Reads.Concat(spec.Writes))
        {
            if (!parameters.TryGetValue(local, out var p))
            {
                throw new ArgumentException($"task '{spec.Name}': '{local}' is not a parameter of {method.Name}({string.Join(", ", parameters.Keys)})");
            }

            var reading = spec.Reads.ContainsKey(local);
            var binding = reading ? typeof(TaskReader<>) : typeof(TaskWriter<>);
            var type = p.ParameterType;
            if (!type.IsGenericType || type.GetGenericTypeDefinition() != binding)
            {
                throw new ArgumentException($"task '{spec.Name}': parameter '{local}' is bound to stream '{stream}', so its type must be {binding.Name[..^2]}<T>, not {type.Name}");
            }

            var element = type.GetGenericArguments()[0];
            var format = formatOf(stream);
            if (element != typeof(byte) && element != format.ElementType.ClrType())
            {
                throw new ArgumentException($"task '{spec.Name}': stream '{stream}' holds {format.ElementType.ToName()}, so parameter '{local}' must be {binding.Name[..^2]}<{format.ElementType.ClrType().Name}> (or <Byte>), not <{element.Name}>");
            }
        }

        foreach (var (local, _) in spec.Events)
        {
            if (parameters.TryGetValue(local, out var p))
            {
                if (p.ParameterType != typeof(TaskEvent))
                {
                    throw new ArgumentException($"task '{spec.Name}': parameter '{local}' is bound to an event, so its type must be TaskEvent, not {p.ParameterType.Name}");
                }
            }
            else if (local != controlEvent)
            {
                throw new ArgumentException($"task '{spec.Name}': '{local}' is not a parameter of {method.Name}({string.Join(", ", parameters.Keys)})");
            }
        }

        CheckSettings(spec, method);
        foreach (var p in parameters.Values)
        {
            var bound = spec.Reads.ContainsKey(p.Name!) || spec.Writes.ContainsKey(p.Name!) || spec.Events.ContainsKey(p.Name!);
            if (!bound && !p.HasDefaultValue && p.ParameterType != typeof(CancellationToken) && p.ParameterType != typeof(TaskContext) && TaskSettingsType.RecordOf(p.ParameterType) is null)
            {
                throw new ArgumentException($"task '{spec.Name}': parameter '{p.Name}' of {method.Name} is not bound (bind it in reads, writes or events, or give it a default)");
            }
        }
    }

    /// <summary>
    /// The task's settings record type (its one <see cref="TaskSettings{T}"/> parameter), or null; a clear
    /// error if it has more than one, binds one to a stream or an event, or its record cannot be settings.
    /// </summary>
    public static TaskSettingsType? CheckSettings(TaskSpec spec, MethodInfo method)
    {
        var found = method.GetParameters().Where(p => TaskSettingsType.RecordOf(p.ParameterType) is not null).ToList();
        if (found.Count == 0)
        {
            return null;
        }

        if (found.Count > 1)
        {
            throw new ArgumentException($"task '{spec.Name}': {method.Name} takes {found.Count} TaskSettings parameters ({string.Join(", ", found.Select(p => p.Name))}); a task has one settings record");
        }

        var parameter = found[0];
        if (spec.Reads.ContainsKey(parameter.Name!) || spec.Writes.ContainsKey(parameter.Name!) || spec.Events.ContainsKey(parameter.Name!))
        {
            throw new ArgumentException($"task '{spec.Name}': parameter '{parameter.Name}' is its settings (TaskSettings<{parameter.ParameterType.GetGenericArguments()[0].Name}>), so it must not be bound to a stream or an event");
        }

        try
        {
            return TaskSettingsType.Of(TaskSettingsType.RecordOf(parameter.ParameterType)!);
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"task '{spec.Name}': parameter '{parameter.Name}': {e.Message}", e);
        }
    }

    private static bool IsCompilerGenerated(Type type) =>
        type.IsDefined(typeof(System.Runtime.CompilerServices.CompilerGeneratedAttribute), inherit: false) || (type.DeclaringType is { } outer && IsCompilerGenerated(outer));
}
