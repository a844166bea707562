using YamlDotNet.Core;

namespace Flowline.Documents;

/// <summary>
/// Turns YamlDotNet's errors into plain words at the right place: an unclosed <c>[</c> or <c>{</c> is
/// reported where it opens, a tab where it indents, an unclosed quote where the string starts, and
/// each message says what to change.
/// </summary>
internal static class YamlSyntax
{
    private const string Prefix = "YAML syntax error: ";

    /// <summary>
    /// The error for <paramref name="e"/>, thrown while reading <paramref name="text"/>.
    /// <paramref name="scanner"/> is where YamlDotNet stopped reading (the only position some of its errors have);
    /// <paramref name="openFlow"/> the flow collections open at that point, innermost last.
    /// </summary>
    public static SpecError Describe(Exception e, string text, string? file, Mark scanner, IReadOnlyList<DocNodes.FlowCollection> openFlow)
    {
        var yaml = e as YamlException;
        var message = e.Message;

        // YamlDotNet's errors without a position carry Mark.Empty (1:1); the scanner knows where it stopped.
        var start = yaml is null || (yaml.Start.Equals(Mark.Empty) && yaml.End.Equals(Mark.Empty)) ? scanner : yaml.Start;
        var at = DocNodes.Position(start);
        SpecError Error(string words, SourcePosition where) => new("", Prefix + words, file, where);

        if (openFlow.Count > 0 && IsUnclosedFlow(e, message, start, text))
        {
            var open = openFlow[^1];
            var (what, closer) = open.Opener == '[' ? ("list", ']') : ("mapping", '}');
            return Error(
                NextContent(text, start) is not { } next
                    ? $"the {what} opened here with '{open.Opener}' is not closed: the text ends before its '{closer}'"
                    : $"the {what} opened here with '{open.Opener}' is not closed: '{closer}' (or ',' between two items) is missing before '{ErrorCollector.Quote(next.Text)}' at line {next.Line}, column {next.Column}",
                open.Position);
        }

        if (e is InvalidOperationException)
        {
            // YamlDotNet's scanner throws this bare exception for a line inside [...] or {...} indented less than the line that opens it.
            return Error("this line is inside a '[' or '{' that is not closed: add the ']' or '}' on the line that opens it, or indent this line more", at);
        }

        if (message.Contains("tab", StringComparison.Ordinal))
        {
            // "invalid tab as indentation" has no position; "a tab character that violate indentation" ends at the tab.
            var tab = yaml is not null && !yaml.End.Equals(Mark.Empty) ? yaml.End : scanner;
            return Error("a tab indents this line; YAML indents with spaces only: replace the tab with spaces", DocNodes.Position(tab));
        }

        if (message.Contains("quoted scalar, found unexpected end of stream", StringComparison.Ordinal) ||
            message.Contains("quoted scalar, found unexpected document indicator", StringComparison.Ordinal))
        {
            var quote = CharAt(text, start) == '\'' ? '\'' : '"';
            return Error($"the string that starts here with {quote} is not closed: add the closing {quote}", at);
        }

        var words = message switch
        {
            _ when message.Contains("found unknown escape character", StringComparison.Ordinal) =>
                "unknown escape sequence in a double-quoted string: write \\\\ for a backslash, or use single quotes",
            _ when message.Contains("block mapping, did not find expected key", StringComparison.Ordinal) =>
                $"this line does not fit the mapping it is in{Found(text, start)}: check its indentation, and that every '[' and '{{' before it is closed once",
            _ when message.Contains("block collection, did not find expected '-' indicator", StringComparison.Ordinal) =>
                $"this line does not fit the list it is in{Found(text, start)}: a list item starts with '- ' at the list's indentation",
            _ when message.Contains("found invalid mapping", StringComparison.Ordinal) =>
                "': ' inside a value: quote the value, or write the mapping it starts on lines of its own",
            _ when message.Contains("could not find expected ':'", StringComparison.Ordinal) =>
                "a key without ':': each line of a mapping is 'key: value'",
            _ when message.Contains("found character that cannot start any token", StringComparison.Ordinal) =>
                $"'{CharAt(text, start)}' cannot start a value: quote the value",
            _ when message.Contains("did not find expected node content", StringComparison.Ordinal) ||
                   message.Contains("did not find expected token", StringComparison.Ordinal) =>
                $"a value is missing here{Found(text, start)}",
            _ when message.Contains("found more than one anchor", StringComparison.Ordinal) =>
                "a value has two anchors ('&'); give it one",
            _ when message.Contains("found undefined tag handle", StringComparison.Ordinal) =>
                "unknown tag ('!'): remove it",
            _ when message.Contains("did not find expected ',' or ']'", StringComparison.Ordinal) =>
                $"expected ',' or ']' in this list{Found(text, start)}",
            _ when message.Contains("did not find expected ',' or '}'", StringComparison.Ordinal) =>
                $"expected ',' or '}}' in this mapping{Found(text, start)}",
            _ when e is YamlException => Plain(message),
            _ => "the YAML cannot be read here",
        };
        return Error(words, at);
    }

    /// <summary>Whether the error means an open <c>[</c> or <c>{</c> was never closed.</summary>
    private static bool IsUnclosedFlow(Exception e, string message, Mark start, string text) =>
        message.Contains("While parsing a flow sequence", StringComparison.Ordinal) ||
        message.Contains("While parsing a flow mapping", StringComparison.Ordinal) ||

        // The scanner's bare InvalidOperationException: a line inside a flow collection indented less than it.
        e is InvalidOperationException ||

        // A value expected, and the text ended.
        (message.Contains("did not find expected node content", StringComparison.Ordinal) && NextContent(text, start) is null);

    /// <summary>", found 'xyz'": what stands at <paramref name="mark"/>, up to the end of its line; nothing at the end of the text.</summary>
    private static string Found(string text, Mark mark) => Rest(text, mark) is { Length: > 0 } rest ? $", found '{ErrorCollector.Quote(rest)}'" : "";

    /// <summary>The text from <paramref name="mark"/> to the end of its line, trimmed.</summary>
    private static string Rest(string text, Mark mark)
    {
        var index = (int)Math.Min(mark.Index, text.Length);
        var end = text.IndexOfAny(['\r', '\n'], index);
        return text[index..(end < 0 ? text.Length : end)].Trim();
    }

    /// <summary>The first text at or after <paramref name="mark"/> that is not blank, to the end of its line, with its line and column; null at the end.</summary>
    private static (string Text, int Line, int Column)? NextContent(string text, Mark mark)
    {
        var index = (int)Math.Min(mark.Index, text.Length);
        while (index < text.Length && char.IsWhiteSpace(text[index]))
        {
            index++;
        }

        if (index == text.Length)
        {
            return null;
        }

        var lineStart = text.LastIndexOf('\n', Math.Max(0, index - 1)) + 1;
        var line = text.AsSpan(0, lineStart).Count('\n') + 1;
        return (Rest(text, new Mark(index, line, index - lineStart + 1)), line, index - lineStart + 1);
    }

    private static char CharAt(string text, Mark mark) => mark.Index < text.Length ? text[(int)mark.Index] : ' ';

    /// <summary>YamlDotNet's own words without its "While scanning a ..., " preamble.</summary>
    private static string Plain(string message)
    {
        var comma = message.IndexOf(", ", StringComparison.Ordinal);
        var text = message.StartsWith("While ", StringComparison.Ordinal) && comma > 0 ? message[(comma + 2)..].Trim() : message;
        return text.TrimEnd('.');
    }
}
