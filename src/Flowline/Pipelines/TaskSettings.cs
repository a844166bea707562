using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Flowline.Runtime;

namespace Flowline.Pipelines;

/// <summary>
/// Declares a property of a task's settings record as a setting (decision 113): its bounds, unit,
/// description and whether a change applies while the task runs. A property without it is a setting
/// too, live, with no bounds.
/// </summary>
[AttributeUsage(AttributeTargets.Property, AllowMultiple = false, Inherited = true)]
public sealed class SettingAttribute : Attribute
{
    /// <summary>The smallest value allowed (a number); NaN for none.</summary>
    public double Minimum { get; set; } = double.NaN;

    /// <summary>The largest value allowed (a number); NaN for none.</summary>
    public double Maximum { get; set; } = double.NaN;

    /// <summary>The unit, or null.</summary>
    public string? Unit { get; set; }

    /// <summary>One line on what it does.</summary>
    public string Description { get; set; } = "";

    /// <summary>True (default) if a change applies while the task runs; false if it applies when the task starts again.</summary>
    public bool Live { get; set; } = true;
}

/// <summary>
/// A code-first task's live settings (decision 113): a function that takes a parameter of this type gets
/// the current values as one immutable record of type <typeparamref name="T"/>, whose public properties
/// are the node's settings (names in snake_case; <c>GET /settings/schema</c> shows them with what
/// <see cref="SettingAttribute"/> says). A change (<c>PATCH /settings/{task}</c>) is validated by the
/// manager, then replaces <see cref="Current"/> with a new record as a whole: read it once per frame and a
/// frame computes with the old values or the new ones, never half of them.
/// </summary>
/// <typeparam name="T">The settings record: a class with a public parameterless constructor whose property initialisers are the defaults.</typeparam>
public sealed class TaskSettings<T> : ILiveSettings
    where T : class, new()
{
    private T current;
    private long version;

    internal TaskSettings(JsonObject? values = null)
    {
        current = values is null || values.Count == 0 ? new T() : Merge(new T(), values);
    }

    /// <summary>The current settings: a record replaced as a whole by each change.</summary>
    public T Current => Volatile.Read(ref current);

    /// <summary>How many changes were applied (0 at start): compare it to a value kept to see whether something changed.</summary>
    public long Version => Interlocked.Read(ref version);

    /// <inheritdoc />
    void ILiveSettings.ApplySettings(JsonObject values)
    {
        ArgumentNullException.ThrowIfNull(values);
        var next = Merge(Current, values);
        Volatile.Write(ref current, next);
        Interlocked.Increment(ref version);
    }

    private static T Merge(T basis, JsonObject values)
    {
        var json = JsonSerializer.SerializeToNode(basis, TaskSettingsSchema.Options)!.AsObject();
        foreach (var (name, value) in values)
        {
            if (!json.ContainsKey(name))
            {
                throw new RequestException(RequestErrorCode.InvalidRequest, $"{typeof(T).Name} has no setting '{name}' (it has: {string.Join(", ", json.Select(p => p.Key))})", name);
            }

            json[name] = value?.DeepClone();
        }

        try
        {
            return json.Deserialize<T>(TaskSettingsSchema.Options) ?? throw new RequestException(RequestErrorCode.InvalidRequest, $"{typeof(T).Name} cannot be null");
        }
        catch (JsonException e)
        {
            var field = e.Path is { Length: > 2 } path ? path[2..] : null;
            throw new RequestException(RequestErrorCode.InvalidRequest, $"{typeof(T).Name}: {e.Message}", field);
        }
    }
}

/// <summary>The schema of a task's settings record, from its own properties (decision 113).</summary>
public static class TaskSettingsSchema
{
    /// <summary>How settings records are written and read: snake_case names, enums by name.</summary>
    public static JsonSerializerOptions Options { get; } = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
        NumberHandling = JsonNumberHandling.Strict,
    };

    /// <summary>The settings record type a task's function takes (<see cref="TaskSettings{T}"/>), or null.</summary>
    public static Type? RecordTypeOf(MethodInfo method)
    {
        ArgumentNullException.ThrowIfNull(method);
        return method.GetParameters().Select(p => p.ParameterType)
            .FirstOrDefault(t => t.IsGenericType && t.GetGenericTypeDefinition() == typeof(TaskSettings<>))?.GetGenericArguments()[0];
    }

    /// <summary>The fields of settings record <paramref name="type"/> and their defaults.</summary>
    public static (IReadOnlyList<SettingField> Fields, JsonObject Defaults) Of(Type type)
    {
        ArgumentNullException.ThrowIfNull(type);
        var defaults = JsonSerializer.SerializeToNode(Activator.CreateInstance(type), type, Options)!.AsObject();
        var fields = new List<SettingField>();
        foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanRead && p.GetIndexParameters().Length == 0))
        {
            var name = Options.PropertyNamingPolicy!.ConvertName(property.Name);
            var attribute = property.GetCustomAttribute<SettingAttribute>();
            var t = Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType;
            var choices = t.IsEnum ? Enum.GetNames(t).Select(n => JsonNamingPolicy.SnakeCaseLower.ConvertName(n)).ToList() : null;
            var kind = t.IsEnum ? "choice"
                : t == typeof(double) || t == typeof(float) || t == typeof(decimal) ? "number"
                : t == typeof(int) || t == typeof(long) || t == typeof(short) || t == typeof(uint) || t == typeof(byte) ? "integer"
                : t == typeof(bool) ? "boolean"
                : t == typeof(string) ? "string"
                : t.IsArray || (t.IsGenericType && typeof(System.Collections.IEnumerable).IsAssignableFrom(t)) ? "array"
                : throw new InvalidOperationException($"{type.Name}.{property.Name} is a {t.Name}: a setting is a number, an integer, a boolean, a string, an enum or an array");
            fields.Add(new SettingField
            {
                Name = name,
                Type = kind,
                Default = defaults[name]?.DeepClone(),
                Minimum = attribute is { Minimum: var min } && !double.IsNaN(min) ? min : null,
                Maximum = attribute is { Maximum: var max } && !double.IsNaN(max) ? max : null,
                Choices = choices,
                Unit = attribute?.Unit,
                Description = attribute?.Description ?? "",
                Live = attribute?.Live ?? true,
            });
        }

        return (fields, defaults);
    }
}
