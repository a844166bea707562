using System.Collections.Immutable;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Flowline.Documents;

/// <summary>
/// A node's <c>parameters</c>: named values as the document gave them (numbers, strings, booleans,
/// lists, mappings), in document order, with the position of each for error messages. Immutable: values
/// are copied in and copied out.
/// </summary>
public sealed class Parameters : IEquatable<Parameters>
{
    private readonly ImmutableArray<(string Name, JsonNode? Value, SourcePosition Position)> entries;

    private Parameters(ImmutableArray<(string Name, JsonNode? Value, SourcePosition Position)> entries) => this.entries = entries;

    /// <summary>No parameters.</summary>
    public static Parameters Empty { get; } = new([]);

    /// <summary>The names, in document order.</summary>
    public IEnumerable<string> Names => entries.Select(e => e.Name);

    /// <summary>The number of parameters.</summary>
    public int Count => entries.Length;

    /// <summary>Makes parameters from name/value pairs (values are copied).</summary>
    public static Parameters From(IEnumerable<KeyValuePair<string, JsonNode?>> values) =>
        new([.. values.Select(p => (p.Key, p.Value?.DeepClone(), SourcePosition.None))]);

    internal static Parameters From(IEnumerable<(string Name, JsonNode? Value, SourcePosition Position)> values) => new([.. values]);

    /// <summary>True if the parameter is given.</summary>
    public bool Contains(string name) => entries.Any(e => e.Name == name);

    /// <summary>A copy of the parameter's value (null if absent or given as null).</summary>
    public JsonNode? Get(string name) => entries.FirstOrDefault(e => e.Name == name).Value?.DeepClone();

    /// <summary>Where the parameter was written, if known.</summary>
    public SourcePosition PositionOf(string name) => entries.FirstOrDefault(e => e.Name == name).Position;

    /// <summary>The parameter as a number, if it is one.</summary>
    public bool TryGetDouble(string name, out double value)
    {
        value = 0;
        var node = entries.FirstOrDefault(e => e.Name == name).Value;
        if (node is JsonValue v && v.GetValueKind() == JsonValueKind.Number)
        {
            if (v.TryGetValue(out double d))
            {
                value = d;
            }
            else if (v.TryGetValue(out long l))
            {
                value = l;
            }
            else
            {
                value = double.Parse(v.ToJsonString(), System.Globalization.CultureInfo.InvariantCulture);
            }

            return true;
        }

        if (node is JsonValue s && s.GetValueKind() == JsonValueKind.String && s.GetValue<string>() is ".nan" or ".inf" or "-.inf")
        {
            value = s.GetValue<string>() switch { ".nan" => double.NaN, ".inf" => double.PositiveInfinity, _ => double.NegativeInfinity };
            return true;
        }

        return false;
    }

    /// <summary>The parameter as an integer, if it is one.</summary>
    public bool TryGetLong(string name, out long value)
    {
        value = 0;
        var node = entries.FirstOrDefault(e => e.Name == name).Value;
        if (node is not JsonValue v || v.GetValueKind() != JsonValueKind.Number)
        {
            return false;
        }

        return v.TryGetValue(out value) || long.TryParse(v.ToJsonString(), System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out value);
    }

    /// <summary>The parameter as a string, if it is one.</summary>
    public bool TryGetString(string name, out string value)
    {
        value = "";
        var node = entries.FirstOrDefault(e => e.Name == name).Value;
        if (node is JsonValue v && v.GetValueKind() == JsonValueKind.String)
        {
            value = v.GetValue<string>();
            return true;
        }

        return false;
    }

    /// <summary>The parameter as a boolean, if it is one.</summary>
    public bool TryGetBool(string name, out bool value)
    {
        value = false;
        var node = entries.FirstOrDefault(e => e.Name == name).Value;
        if (node is JsonValue v && v.GetValueKind() is JsonValueKind.True or JsonValueKind.False)
        {
            value = v.GetValue<bool>();
            return true;
        }

        return false;
    }

    /// <summary>A new JSON object holding copies of every parameter, in document order.</summary>
    public JsonObject ToJsonObject()
    {
        var o = new JsonObject();
        foreach (var (name, value, _) in entries)
        {
            o[name] = value?.DeepClone();
        }

        return o;
    }

    /// <inheritdoc/>
    public bool Equals(Parameters? other) =>
        other is not null && other.entries.Length == entries.Length &&
        entries.Zip(other.entries).All(p => p.First.Name == p.Second.Name && JsonNode.DeepEquals(p.First.Value, p.Second.Value));

    /// <inheritdoc/>
    public override bool Equals(object? obj) => Equals(obj as Parameters);

    /// <inheritdoc/>
    public override int GetHashCode() => entries.Length;

    /// <inheritdoc/>
    public override string ToString() => ToJsonObject().ToJsonString();
}
