using System.Globalization;
using System.Text.Json.Nodes;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Flowline.Documents;

/// <summary>Where a node came from: a line and column (1-based) of a file, or nowhere (JSON bodies).</summary>
public readonly record struct SourcePosition(int Line, int Column)
{
    /// <summary>No position known.</summary>
    public static SourcePosition None => default;

    /// <summary>True if a line is known.</summary>
    public bool IsKnown => Line > 0;
}

/// <summary>
/// A document node with its position: what the binder reads, whether the document came from YAML (with
/// lines) or from JSON (without). Mappings keep their key order and may hold duplicate keys, which the
/// binder reports.
/// </summary>
internal abstract record DocNode(SourcePosition Position);

/// <summary>A scalar: its text, and whether it was quoted (a quoted scalar is always a string).</summary>
internal sealed record DocScalar(string? Text, bool Quoted, SourcePosition Position) : DocNode(Position)
{
    /// <summary>True for YAML's null: <c>~</c>, <c>null</c>, or nothing.</summary>
    public bool IsNull => !Quoted && (Text is null or "" or "~" or "null" or "Null" or "NULL");

    /// <summary>The scalar as YAML 1.2 core-schema bool, if it is one.</summary>
    public bool? AsBool() => Quoted ? null : Text switch
    {
        "true" or "True" or "TRUE" => true,
        "false" or "False" or "FALSE" => false,
        _ => null,
    };

    /// <summary>The scalar as an integer, if it is one.</summary>
    public long? AsLong()
    {
        if (Quoted || Text is null)
        {
            return null;
        }

        if (Text.StartsWith("0x", StringComparison.OrdinalIgnoreCase) && long.TryParse(Text.AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var hex))
        {
            return hex;
        }

        return long.TryParse(Text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value) ? value : null;
    }

    /// <summary>The scalar as a number (integers included, and .inf / .nan), if it is one.</summary>
    public double? AsDouble()
    {
        if (Quoted || Text is null)
        {
            return null;
        }

        switch (Text)
        {
            case ".inf" or ".Inf" or ".INF" or "+.inf" or "+.Inf" or "+.INF":
                return double.PositiveInfinity;
            case "-.inf" or "-.Inf" or "-.INF":
                return double.NegativeInfinity;
            case ".nan" or ".NaN" or ".NAN":
                return double.NaN;
        }

        if (AsLong() is { } l)
        {
            return l;
        }

        return double.TryParse(Text, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && !Text.Contains(',', StringComparison.Ordinal) ? d : null;
    }
}

/// <summary>A sequence.</summary>
internal sealed record DocSequence(IReadOnlyList<DocNode> Items, SourcePosition Position) : DocNode(Position);

/// <summary>A mapping, in document order.</summary>
internal sealed record DocMapping(IReadOnlyList<DocEntry> Entries, SourcePosition Position) : DocNode(Position)
{
    /// <summary>The first value of <paramref name="key"/>, or null.</summary>
    public DocEntry? Find(string key) => Entries.FirstOrDefault(e => e.Key == key);
}

/// <summary>A key and its value.</summary>
internal sealed record DocEntry(string Key, SourcePosition KeyPosition, DocNode Value);

/// <summary>Turns YAML and JSON into <see cref="DocNode"/>s.</summary>
internal static class DocNodes
{
    /// <summary>Parses YAML text. Syntax errors become a <see cref="DocumentSyntaxException"/> with the line.</summary>
    public static DocNode? ParseYaml(string text, string? file)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(text));
        }
        catch (YamlException e)
        {
            var where = new SourcePosition((int)e.Start.Line, (int)e.Start.Column);
            var message = e.InnerException is { } inner && inner.Message != e.Message ? $"{e.Message} {inner.Message}" : e.Message;
            throw new DocumentSyntaxException(new SpecError("", $"YAML syntax error: {Clean(message)}", file, where));
        }

        if (stream.Documents.Count == 0)
        {
            return null;
        }

        if (stream.Documents.Count > 1)
        {
            var second = stream.Documents[1].RootNode.Start;
            throw new DocumentSyntaxException(new SpecError("", "the file holds more than one YAML document; a pipeline is one document", file, new SourcePosition((int)second.Line, (int)second.Column)));
        }

        return FromYaml(stream.Documents[0].RootNode);
    }

    /// <summary>Converts a JSON value (an HTTP body); nodes have no position.</summary>
    public static DocNode FromJson(JsonNode? node) => node switch
    {
        null => new DocScalar(null, false, SourcePosition.None),
        JsonObject o => new DocMapping(o.Select(p => new DocEntry(p.Key, SourcePosition.None, FromJson(p.Value))).ToList(), SourcePosition.None),
        JsonArray a => new DocSequence(a.Select(FromJson).ToList(), SourcePosition.None),
        JsonValue v => FromJsonValue(v),
        _ => throw new ArgumentException($"unsupported JSON node {node.GetType().Name}"),
    };

    private static DocScalar FromJsonValue(JsonValue value)
    {
        var kind = value.GetValueKind();
        return kind switch
        {
            System.Text.Json.JsonValueKind.String => new DocScalar(value.GetValue<string>(), true, SourcePosition.None),
            System.Text.Json.JsonValueKind.True => new DocScalar("true", false, SourcePosition.None),
            System.Text.Json.JsonValueKind.False => new DocScalar("false", false, SourcePosition.None),
            System.Text.Json.JsonValueKind.Null => new DocScalar(null, false, SourcePosition.None),
            _ => new DocScalar(value.ToJsonString(), false, SourcePosition.None),
        };
    }

    private static DocNode FromYaml(YamlNode node)
    {
        var position = new SourcePosition((int)node.Start.Line, (int)node.Start.Column);
        switch (node)
        {
            case YamlScalarNode scalar:
                return new DocScalar(scalar.Value, scalar.Style is ScalarStyle.SingleQuoted or ScalarStyle.DoubleQuoted or ScalarStyle.Literal or ScalarStyle.Folded, position);
            case YamlSequenceNode sequence:
                return new DocSequence(sequence.Children.Select(FromYaml).ToList(), position);
            case YamlMappingNode mapping:
                var entries = new List<DocEntry>();
                foreach (var (key, value) in mapping.Children)
                {
                    var keyText = key is YamlScalarNode k ? k.Value ?? "" : key.ToString();
                    entries.Add(new DocEntry(keyText, new SourcePosition((int)key.Start.Line, (int)key.Start.Column), FromYaml(value)));
                }

                return new DocMapping(entries, position);
            default:
                return new DocScalar(null, false, position);
        }
    }

    private static string Clean(string message)
    {
        // YamlDotNet prefixes "(Line: 3, Col: 5, Idx: 20) - (Line: ...): "; the position is reported separately.
        var index = message.LastIndexOf("): ", StringComparison.Ordinal);
        return index >= 0 ? message[(index + 3)..] : message;
    }
}
