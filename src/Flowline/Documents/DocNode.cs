using System.Globalization;
using System.Text.Json.Nodes;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;

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
    /// <summary>
    /// Parses YAML text into nodes with positions, from YamlDotNet's event stream (so that duplicate keys
    /// reach the binder, which reports them with their path). Syntax errors become a
    /// <see cref="DocumentSyntaxException"/> with the line.
    /// </summary>
    public static DocNode? ParseYaml(string text, string? file)
    {
        var parser = new Parser(new StringReader(text));
        var reader = new EventReader(parser);
        List<DocNode?> documents;
        try
        {
            documents = reader.ReadStream();
        }
        catch (YamlException e)
        {
            var where = new SourcePosition((int)e.Start.Line, (int)e.Start.Column);
            var message = e.InnerException is { } inner && inner.Message != e.Message ? $"{e.Message} {inner.Message}" : e.Message;
            throw new DocumentSyntaxException(new SpecError("", $"YAML syntax error: {Clean(message)}", file, where));
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException or FormatException)
        {
            throw new DocumentSyntaxException(new SpecError("", $"YAML syntax error: {e.Message}", file, reader.LastPosition));
        }

        if (documents.Count > 1)
        {
            throw new DocumentSyntaxException(new SpecError("", "the file holds more than one YAML document; a pipeline is one document", file, reader.SecondDocument));
        }

        return documents.Count == 0 ? null : documents[0];
    }

    /// <summary>Builds nodes from parser events, resolving anchors and aliases.</summary>
    private sealed class EventReader(IParser parser)
    {
        private readonly Dictionary<string, DocNode> anchors = new(StringComparer.Ordinal);

        public SourcePosition LastPosition { get; private set; } = new(1, 1);

        public SourcePosition SecondDocument { get; private set; }

        public List<DocNode?> ReadStream()
        {
            var documents = new List<DocNode?>();
            Next();
            Expect<StreamStart>();
            Next();
            while (parser.Current is DocumentStart)
            {
                Next();
                if (documents.Count == 1 && parser.Current is { } root)
                {
                    SecondDocument = Position(root.Start);
                }

                documents.Add(parser.Current is DocumentEnd ? null : Read());
                Expect<DocumentEnd>();
                Next();
            }

            Expect<StreamEnd>();
            return documents;
        }

        private DocNode Read()
        {
            var current = parser.Current ?? throw new InvalidOperationException("the YAML ends in the middle of a value");
            var position = Position(current.Start);
            DocNode node;
            string? anchor = null;
            switch (current)
            {
                case Scalar scalar:
                    Next();
                    var quoted = scalar.Style is ScalarStyle.SingleQuoted or ScalarStyle.DoubleQuoted or ScalarStyle.Literal or ScalarStyle.Folded
                                 || (!scalar.Tag.IsEmpty && !scalar.Tag.IsNonSpecific && scalar.Tag.Value is "tag:yaml.org,2002:str" or "!!str");
                    anchor = scalar.Anchor.IsEmpty ? null : scalar.Anchor.Value;
                    node = new DocScalar(scalar.Value, quoted, position);
                    break;

                case SequenceStart sequence:
                    Next();
                    anchor = sequence.Anchor.IsEmpty ? null : sequence.Anchor.Value;
                    var items = new List<DocNode>();
                    while (parser.Current is not SequenceEnd)
                    {
                        items.Add(Read());
                    }

                    Next();
                    node = new DocSequence(items, position);
                    break;

                case MappingStart mapping:
                    Next();
                    anchor = mapping.Anchor.IsEmpty ? null : mapping.Anchor.Value;
                    var entries = new List<DocEntry>();
                    while (parser.Current is not MappingEnd)
                    {
                        var key = Read();
                        var value = Read();
                        var keyText = key is DocScalar k ? k.Text ?? "" : "(a key that is not a scalar)";
                        entries.Add(new DocEntry(keyText, key.Position, value));
                    }

                    Next();
                    node = new DocMapping(entries, position);
                    break;

                case AnchorAlias alias:
                    Next();
                    return anchors.TryGetValue(alias.Value.Value, out var target)
                        ? target
                        : throw new YamlException(current.Start, current.End, $"alias *{alias.Value.Value} refers to no anchor defined before it");

                default:
                    throw new YamlException(current.Start, current.End, $"unexpected {current.GetType().Name}");
            }

            if (anchor is not null)
            {
                anchors[anchor] = node;
            }

            return node;
        }

        private void Next()
        {
            if (parser.Current is { } current)
            {
                LastPosition = Position(current.End);
            }

            parser.MoveNext();
        }

        private void Expect<T>()
            where T : ParsingEvent
        {
            if (parser.Current is not T)
            {
                var at = parser.Current;
                throw new YamlException(at?.Start ?? Mark.Empty, at?.End ?? Mark.Empty, $"expected {typeof(T).Name}, found {at?.GetType().Name ?? "the end"}");
            }
        }

        private static SourcePosition Position(Mark mark) => new((int)mark.Line, (int)mark.Column);
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
            // Numbers JSON cannot hold travel as YAML's tokens (see DocumentWriter): read them back as numbers.
            System.Text.Json.JsonValueKind.String when value.GetValue<string>() is ".nan" or ".inf" or "-.inf" => new DocScalar(value.GetValue<string>(), false, SourcePosition.None),
            System.Text.Json.JsonValueKind.String => new DocScalar(value.GetValue<string>(), true, SourcePosition.None),
            System.Text.Json.JsonValueKind.True => new DocScalar("true", false, SourcePosition.None),
            System.Text.Json.JsonValueKind.False => new DocScalar("false", false, SourcePosition.None),
            System.Text.Json.JsonValueKind.Null => new DocScalar(null, false, SourcePosition.None),
            _ => new DocScalar(value.ToJsonString(), false, SourcePosition.None),
        };
    }

    private static string Clean(string message)
    {
        // YamlDotNet prefixes "(Line: 3, Col: 5, Idx: 20) - (Line: ...): "; the position is reported separately.
        var index = message.LastIndexOf("): ", StringComparison.Ordinal);
        return index >= 0 ? message[(index + 3)..] : message;
    }
}
