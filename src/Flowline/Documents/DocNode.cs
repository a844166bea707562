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

/// <summary>A document is beyond one of <see cref="DocumentLimits"/>: it was not read further.</summary>
internal sealed class DocumentLimitException(SpecError error) : Exception(error.Message)
{
    /// <summary>The error, naming the bound.</summary>
    public SpecError Error { get; } = error;
}

/// <summary>Turns YAML and JSON into <see cref="DocNode"/>s, within <see cref="DocumentLimits"/>.</summary>
internal static class DocNodes
{
    /// <summary>
    /// Parses YAML text into nodes with positions, from YamlDotNet's event stream (so that duplicate keys
    /// reach the binder, which reports them with their path). Syntax errors become a
    /// <see cref="DocumentSyntaxException"/> in plain words with the line and column; a document beyond
    /// <see cref="DocumentLimits"/> a <see cref="DocumentLimitException"/>.
    /// </summary>
    public static DocNode? ParseYaml(string text, string? file)
    {
        var scanner = new Scanner(new StringReader(text));
        var reader = new EventReader(new Parser(scanner), file);
        List<DocNode?> documents;
        try
        {
            documents = reader.ReadStream();
        }
        catch (Exception e) when (e is YamlException or InvalidOperationException or ArgumentException or FormatException)
        {
            throw new DocumentSyntaxException(YamlSyntax.Describe(e, text, file, scanner.CurrentPosition, reader.OpenFlow));
        }

        if (documents.Count > 1)
        {
            throw new DocumentSyntaxException(new SpecError("", "the file holds more than one YAML document; a pipeline is one document", file, reader.SecondDocument));
        }

        return documents.Count == 0 ? null : documents[0];
    }

    /// <summary>A list or mapping written in flow style (<c>[...]</c> or <c>{...}</c>) that is open.</summary>
    /// <param name="Opener">'[' or '{'.</param>
    /// <param name="Position">Where it opens.</param>
    internal readonly record struct FlowCollection(char Opener, SourcePosition Position);

    /// <summary>
    /// Builds nodes from parser events, resolving anchors and aliases. An alias shares the node of its
    /// anchor and counts as all the values and text that node holds, so that aliases of aliases cannot stand
    /// for more than <see cref="DocumentLimits.MaxValues"/> values or <see cref="DocumentLimits.MaxExpandedText"/> characters.
    /// </summary>
    private sealed class EventReader(IParser parser, string? file)
    {
        private readonly Dictionary<string, (DocNode Node, long Values, long Text)> anchors = new(StringComparer.Ordinal);
        private readonly List<FlowCollection> openFlow = [];
        private long values;
        private long text;
        private int depth;

        public SourcePosition SecondDocument { get; private set; }

        /// <summary>The flow collections open where reading stopped, innermost last.</summary>
        public IReadOnlyList<FlowCollection> OpenFlow => openFlow;

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
            var (valuesBefore, textBefore) = (values, text);
            Count(1, current is Scalar s ? s.Value.Length : 0, position);
            DocNode node;
            string? anchor = null;
            switch (current)
            {
                case Scalar scalar:
                    if (scalar.Value.Length > DocumentLimits.MaxTextLength)
                    {
                        throw new DocumentLimitException(new SpecError("", TooLong(scalar.Value.Length), file, position));
                    }

                    Next();
                    var quoted = scalar.Style is ScalarStyle.SingleQuoted or ScalarStyle.DoubleQuoted or ScalarStyle.Literal or ScalarStyle.Folded
                                 || (!scalar.Tag.IsEmpty && !scalar.Tag.IsNonSpecific && scalar.Tag.Value is "tag:yaml.org,2002:str" or "!!str");
                    anchor = scalar.Anchor.IsEmpty ? null : scalar.Anchor.Value;
                    node = new DocScalar(scalar.Value, quoted, position);
                    break;

                case SequenceStart sequence:
                    Enter(sequence.Style == SequenceStyle.Flow ? '[' : null, position);
                    Next();
                    anchor = sequence.Anchor.IsEmpty ? null : sequence.Anchor.Value;
                    var items = new List<DocNode>();
                    while (parser.Current is not SequenceEnd)
                    {
                        items.Add(Read());
                    }

                    Leave(sequence.Style == SequenceStyle.Flow);
                    Next();
                    node = new DocSequence(items, position);
                    break;

                case MappingStart mapping:
                    Enter(mapping.Style == MappingStyle.Flow ? '{' : null, position);
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

                    Leave(mapping.Style == MappingStyle.Flow);
                    Next();
                    node = new DocMapping(entries, position);
                    break;

                case AnchorAlias alias:
                    Next();
                    if (!anchors.TryGetValue(alias.Value.Value, out var target))
                    {
                        throw new YamlException(current.Start, current.End, $"alias *{alias.Value.Value} refers to no anchor defined before it");
                    }

                    // The alias stands for every value of its anchor; the 1 counted above stands for the alias itself.
                    Count(target.Values - 1, target.Text, position);
                    return target.Node;

                default:
                    throw new YamlException(current.Start, current.End, $"unexpected {current.GetType().Name}");
            }

            if (anchor is not null)
            {
                anchors[anchor] = (node, values - valuesBefore, text - textBefore);
            }

            return node;
        }

        private void Count(long addedValues, long addedText, SourcePosition position)
        {
            values += addedValues;
            text += addedText;
            if (Oversized(values, text) is { } problem)
            {
                throw new DocumentLimitException(new SpecError("", $"{problem} (an alias counts as all it repeats); a pipeline document is far smaller", file, position));
            }
        }

        private void Enter(char? flowOpener, SourcePosition position)
        {
            if (++depth > DocumentLimits.MaxDepth)
            {
                throw new DocumentLimitException(new SpecError(
                    "",
                    $"lists and mappings nest more than {DocumentLimits.MaxDepth} deep here; a pipeline document nests a few levels",
                    file,
                    position));
            }

            if (flowOpener is { } opener)
            {
                openFlow.Add(new FlowCollection(opener, position));
            }
        }

        private void Leave(bool flow)
        {
            depth--;
            if (flow)
            {
                openFlow.RemoveAt(openFlow.Count - 1);
            }
        }

        private void Next() => parser.MoveNext();

        private void Expect<T>()
            where T : ParsingEvent
        {
            if (parser.Current is not T)
            {
                var at = parser.Current;
                throw new YamlException(at?.Start ?? Mark.Empty, at?.End ?? Mark.Empty, $"expected {typeof(T).Name}, found {at?.GetType().Name ?? "the end"}");
            }
        }
    }

    /// <summary>What is too large about a document holding <paramref name="values"/> values and <paramref name="text"/> characters, or null.</summary>
    private static string? Oversized(long values, long text) =>
        values > DocumentLimits.MaxValues ? $"the document holds more than {DocumentLimits.MaxValues:N0} values"
        : text > DocumentLimits.MaxExpandedText ? $"the document holds more than {DocumentLimits.MaxExpandedText:N0} characters of text"
        : null;

    private static string TooLong(int length) =>
        $"this text is {length:N0} characters long; the longest accepted is {DocumentLimits.MaxTextLength:N0} (names, kinds, paths and expressions are far shorter)";

    /// <summary>A YamlDotNet position as a <see cref="SourcePosition"/>.</summary>
    internal static SourcePosition Position(Mark mark) => new((int)Math.Min(mark.Line, int.MaxValue), (int)Math.Min(mark.Column, int.MaxValue));

    /// <summary>
    /// Converts a JSON value (an HTTP body); nodes have no position. Throws <see cref="DocumentLimitException"/>
    /// when it is beyond <see cref="DocumentLimits"/>: too deep, too many values, too much text, or too long a text.
    /// </summary>
    public static DocNode FromJson(JsonNode? node)
    {
        var (values, text) = (0L, 0L);
        return Convert(node, 0);

        DocNode Convert(JsonNode? json, int depth)
        {
            values++;
            text += json switch
            {
                JsonObject o => o.Sum(p => (long)p.Key.Length),
                JsonValue v when v.GetValueKind() == System.Text.Json.JsonValueKind.String => v.GetValue<string>().Length,
                _ => 0,
            };
            if (Oversized(values, text) is { } problem)
            {
                throw new DocumentLimitException(new SpecError("", $"{problem}; a pipeline document is far smaller", null, SourcePosition.None));
            }

            if (json is JsonObject or JsonArray && depth >= DocumentLimits.MaxDepth)
            {
                throw new DocumentLimitException(new SpecError("", $"lists and mappings nest more than {DocumentLimits.MaxDepth} deep; a pipeline document nests a few levels", null, SourcePosition.None));
            }

            if (json is JsonObject map && map.Select(p => p.Key.Length).DefaultIfEmpty().Max() is var longest && longest > DocumentLimits.MaxTextLength)
            {
                throw new DocumentLimitException(new SpecError("", TooLong(longest), null, SourcePosition.None));
            }

            return json switch
            {
                null => new DocScalar(null, false, SourcePosition.None),
                JsonObject o => new DocMapping([.. o.Select(p => new DocEntry(p.Key, SourcePosition.None, Convert(p.Value, depth + 1)))], SourcePosition.None),
                JsonArray a => new DocSequence([.. a.Select(item => Convert(item, depth + 1))], SourcePosition.None),
                JsonValue v => FromJsonValue(v),
                _ => throw new ArgumentException($"unsupported JSON node {json.GetType().Name}"),
            };
        }
    }

    private static DocScalar FromJsonValue(JsonValue value)
    {
        var kind = value.GetValueKind();
        if (kind == System.Text.Json.JsonValueKind.String && value.GetValue<string>().Length is var length && length > DocumentLimits.MaxTextLength)
        {
            throw new DocumentLimitException(new SpecError("", TooLong(length), null, SourcePosition.None));
        }

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
}
