using System.Globalization;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Flowline.Runtime;

namespace Flowline.Pipelines;

/// <summary>
/// Describes one property of a code-first task's settings record (<see cref="TaskSettings{T}"/>): its
/// bounds, unit, description, and whether a change applies while the task runs. A property without it
/// is a live setting with no bounds.
/// </summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Parameter, AllowMultiple = false)]
public sealed class SettingAttribute : Attribute
{
    /// <summary>Creates a description.</summary>
    public SettingAttribute()
    {
    }

    /// <summary>Creates a description with a text.</summary>
    public SettingAttribute(string description) => Description = description;

    /// <summary>One line on what the setting does.</summary>
    public string? Description { get; set; }

    /// <summary>The unit (Hz, ms, dB ...), or null.</summary>
    public string? Unit { get; set; }

    /// <summary>The smallest value allowed (numbers only); NaN for none.</summary>
    public double Minimum { get; set; } = double.NaN;

    /// <summary>The largest value allowed (numbers only); NaN for none.</summary>
    public double Maximum { get; set; } = double.NaN;

    /// <summary>True (the default) if a change applies while the task runs; false if it waits for the next start.</summary>
    public bool Live { get; set; } = true;
}

/// <summary>
/// The settings of a code-first task (issue 12): a typed record <typeparamref name="T"/> whose public
/// properties are the node's settings (schema: <c>GET /settings/schema</c>; names in snake_case; a
/// <see cref="SettingAttribute"/> gives bounds, unit, description, live). The task takes it as a parameter
/// of its function (no binding needed) and reads <see cref="Value"/>, a whole record swapped at once: a
/// change made with <c>PATCH /settings/{node}</c> is applied by the task's own thread at its next binding
/// call (a read, write, look or wait, i.e. between two frames) and acknowledged only then. Take
/// <see cref="Value"/> once per frame so that a frame computes with one record throughout.
/// </summary>
/// <typeparam name="T">A record (a class) of numbers, integers, booleans, strings and enums, with default values.</typeparam>
public sealed class TaskSettings<T> : ILiveSettings
    where T : class
{
    private readonly TaskSettingsType type;
    private T current;
    private long version;

    internal TaskSettings(TaskSettingsType type, T initial)
    {
        this.type = type;
        current = initial;
    }

    /// <summary>The settings now (the same record until a change is applied, between two frames).</summary>
    public T Value => Volatile.Read(ref current);

    /// <summary>How many changes were applied since the task started (0 before any).</summary>
    public long Version => Volatile.Read(ref version);

    /// <summary>Applies changed fields between two frames (called by the worker on the task's thread); throws to refuse, naming the field.</summary>
    void ILiveSettings.ApplySettings(JsonObject values)
    {
        ArgumentNullException.ThrowIfNull(values);
        Volatile.Write(ref current, (T)type.Merge(Volatile.Read(ref current), values));
        Interlocked.Increment(ref version);
    }
}

/// <summary>What a settings record type gives: its schema fields, its default instance, and merges of changes into a new instance.</summary>
internal sealed class TaskSettingsType
{
    private static readonly Dictionary<Type, TaskSettingsType> Cache = [];
    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower, allowIntegerValues: false) },
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        NumberHandling = JsonNumberHandling.Strict,
    };

    private readonly (string Name, PropertyInfo Property, SettingField Field)[] properties;

    private TaskSettingsType(Type type)
    {
        Type = type;
        if (!type.IsClass || type.IsAbstract || type.IsGenericTypeDefinition)
        {
            throw new ArgumentException($"{type.Name} must be a record (a non-abstract class) of settings");
        }

        var instance = CreateDefault(type);
        var list = new List<(string, PropertyInfo, SettingField)>();
        foreach (var p in type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.GetMethod is not null && p.GetIndexParameters().Length == 0))
        {
            if (p.Name == "EqualityContract" || p.IsDefined(typeof(JsonIgnoreAttribute)))
            {
                continue;
            }

            var name = p.GetCustomAttribute<JsonPropertyNameAttribute>()?.Name ?? JsonNamingPolicy.SnakeCaseLower.ConvertName(p.Name);
            var a = p.GetCustomAttribute<SettingAttribute>() ?? ConstructorParameter(type, p)?.GetCustomAttribute<SettingAttribute>() ?? new SettingAttribute();
            var t = Nullable.GetUnderlyingType(p.PropertyType) ?? p.PropertyType;
            var kind = t == typeof(double) || t == typeof(float) || t == typeof(decimal) ? "number"
                : t == typeof(int) || t == typeof(long) || t == typeof(short) || t == typeof(byte) || t == typeof(uint) ? "integer"
                : t == typeof(bool) ? "boolean"
                : t == typeof(string) ? "string"
                : t.IsEnum ? "choice"
                : throw new ArgumentException($"setting '{name}' ({type.Name}.{p.Name}) is a {p.PropertyType.Name}; a task's setting is a number, an integer, a boolean, a string or an enum");
            if (p.SetMethod is null && ConstructorParameter(type, p) is null)
            {
                throw new ArgumentException($"setting '{name}' ({type.Name}.{p.Name}) has no setter or init accessor: it could never change");
            }

            if (kind is not ("number" or "integer") && (!double.IsNaN(a.Minimum) || !double.IsNaN(a.Maximum)))
            {
                throw new ArgumentException($"setting '{name}' ({type.Name}.{p.Name}) is a {kind}: only numbers have a minimum or a maximum");
            }

            if (a.Minimum > a.Maximum)
            {
                throw new ArgumentException($"setting '{name}' ({type.Name}.{p.Name}): minimum {a.Minimum.ToString(CultureInfo.InvariantCulture)} is above maximum {a.Maximum.ToString(CultureInfo.InvariantCulture)}");
            }

            var value = p.GetValue(instance);
            var field = new SettingField
            {
                Name = name,
                Type = kind,
                Default = JsonSerializer.SerializeToNode(value, p.PropertyType, Json),
                Minimum = double.IsNaN(a.Minimum) ? null : a.Minimum,
                Maximum = double.IsNaN(a.Maximum) ? null : a.Maximum,
                Choices = t.IsEnum ? [.. Enum.GetNames(t).Select(JsonNamingPolicy.SnakeCaseLower.ConvertName)] : null,
                Unit = a.Unit,
                Description = a.Description ?? "",
                Live = a.Live,
            };
            if (field.Default is JsonValue d && d.TryGetValue(out double v) && ((field.Minimum is { } lo && v < lo) || (field.Maximum is { } hi && v > hi)))
            {
                throw new ArgumentException($"setting '{name}' ({type.Name}.{p.Name}): its default {d.ToJsonString()} is out of its bounds");
            }

            list.Add((name, p, field));
        }

        if (list.Count == 0)
        {
            throw new ArgumentException($"{type.Name} has no public properties: a settings record declares each setting as a property");
        }

        properties = [.. list];
        Default = instance;
    }

    public Type Type { get; }

    /// <summary>The record with every default value.</summary>
    public object Default { get; }

    /// <summary>The schema's fields, in declaration order.</summary>
    public IReadOnlyList<SettingField> Fields => [.. properties.Select(p => p.Field)];

    /// <summary>The description of <paramref name="type"/> (checked once; a clear error if it cannot be a task's settings).</summary>
    public static TaskSettingsType Of(Type type)
    {
        lock (Cache)
        {
            if (!Cache.TryGetValue(type, out var described))
            {
                described = new TaskSettingsType(type);
                Cache[type] = described;
            }

            return described;
        }
    }

    /// <summary>The settings record type of a <see cref="TaskSettings{T}"/> parameter, or null for any other type.</summary>
    public static Type? RecordOf(Type parameterType) =>
        parameterType.IsGenericType && parameterType.GetGenericTypeDefinition() == typeof(TaskSettings<>) ? parameterType.GetGenericArguments()[0] : null;

    /// <summary>The values of <paramref name="settings"/> as a JSON object (field to value).</summary>
    public JsonObject ToJson(object settings)
    {
        var o = new JsonObject();
        foreach (var (name, property, _) in properties)
        {
            o[name] = JsonSerializer.SerializeToNode(property.GetValue(settings), property.PropertyType, Json);
        }

        return o;
    }

    /// <summary>A new record: <paramref name="settings"/> with <paramref name="changes"/> (field to value) applied; a change that does not fit names its field.</summary>
    public object Merge(object settings, JsonObject changes)
    {
        var merged = ToJson(settings);
        foreach (var (name, value) in changes)
        {
            var entry = properties.FirstOrDefault(p => p.Name == name);
            if (entry.Property is null)
            {
                throw new RequestException(RequestErrorCode.InvalidRequest, $"{Type.Name} has no setting '{name}' (it has: {string.Join(", ", properties.Select(p => p.Name))})", name);
            }

            try
            {
                // Each field alone first, so that a bad one is named.
                _ = value.Deserialize(entry.Property.PropertyType, Json);
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException or NotSupportedException)
            {
                throw new RequestException(RequestErrorCode.InvalidRequest, $"'{name}' does not fit {Type.Name}.{entry.Property.Name} ({entry.Field.Type}): {e.Message}", name);
            }

            merged[name] = value?.DeepClone();
        }

        return merged.Deserialize(Type, Json) ?? throw new RequestException(RequestErrorCode.InvalidRequest, $"the settings do not make a {Type.Name}");
    }

    /// <summary>The record with <paramref name="values"/> (field to value, as the manager keeps them) over its defaults.</summary>
    public object With(JsonObject? values) => values is null || values.Count == 0 ? Default : Merge(Default, values);

    private static object CreateDefault(Type type)
    {
        if (type.GetConstructor(Type.EmptyTypes) is { } empty)
        {
            return empty.Invoke(null);
        }

        // A positional record whose parameters all have defaults: record Gain(double Value = 1.0).
        var ctor = type.GetConstructors().Where(c => c.GetParameters().All(p => p.HasDefaultValue)).MaxBy(c => c.GetParameters().Length)
            ?? throw new ArgumentException($"{type.Name} needs a public parameterless constructor or a constructor whose every parameter has a default: the defaults are the settings' initial values");
        return ctor.Invoke([.. ctor.GetParameters().Select(p => p.DefaultValue)]);
    }

    private static System.Reflection.ParameterInfo? ConstructorParameter(Type type, PropertyInfo property) =>
        type.GetConstructors().SelectMany(c => c.GetParameters()).FirstOrDefault(p => p.Name == property.Name && p.ParameterType == property.PropertyType);
}
