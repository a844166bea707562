using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Flowline.Cli.Commands;

/// <summary>Numbers of status and report JSON, as tables show them.</summary>
internal static class Numbers
{
    /// <summary>The value of a JSON number of any CLR type (a count is a long, a rate a double); 0 for anything else.</summary>
    public static double Value(JsonNode? node) =>
        node is JsonValue value && value.GetValueKind() == JsonValueKind.Number
            ? double.Parse(value.ToJsonString(), CultureInfo.InvariantCulture)
            : 0;

    /// <summary>A JSON number formatted with <paramref name="format"/>; other JSON as its text; null as empty.</summary>
    public static string Format(JsonNode? node, string format = "0.0") => node switch
    {
        null => "",
        JsonValue value when value.GetValueKind() == JsonValueKind.Number => Value(value).ToString(format, CultureInfo.InvariantCulture),
        _ => node.ToString(),
    };

    /// <summary>A number formatted with <paramref name="format"/>.</summary>
    public static string Format(double value, string format = "0.0") => value.ToString(format, CultureInfo.InvariantCulture);
}
