using Flowline.Documents;

namespace Flowline.Tests.Documents;

/// <summary>
/// YAML that does not parse: one error, in plain words (not YamlDotNet's, nor a .NET exception's), at the
/// line and column where the mistake is.
/// </summary>
public sealed class YamlSyntaxTests
{
    private static SpecError SyntaxError(string yaml)
    {
        var check = PipelineDocument.Check(yaml, "test.yaml");
        Assert.True(check.IsSyntaxError, $"expected a syntax error, got: {string.Join('\n', check.Errors)}");
        var error = Assert.Single(check.Errors);
        Assert.Equal("", error.Path);
        Assert.Equal("test.yaml", error.File);
        Assert.StartsWith("YAML syntax error: ", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("While parsing", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("While scanning", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("Operation is not valid", error.Message, StringComparison.Ordinal);
        return error;
    }

    private static void At(SpecError error, int line, int column)
    {
        Assert.True(line == error.Position.Line && column == error.Position.Column, $"expected {line}:{column}, got {error}");
    }

    [Fact]
    public void UnclosedList_BeforeMoreLines_IsReportedWhereItOpens()
    {
        // YamlDotNet's scanner throws a bare InvalidOperationException for this one.
        var error = SyntaxError("shared_memory:\n  - name: a\n    shape: [4\n    dtype: float32\nkernels:\n  - name: k\n");

        At(error, 3, 12);
        Assert.Contains("the list opened here with '[' is not closed", error.Message, StringComparison.Ordinal);
        Assert.Contains("before 'dtype: float32' at line 4, column 5", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("a: [1, 2\n", 1, 4, "the list opened here with '[' is not closed: the text ends before its ']'")]
    [InlineData("a: {b: 1\n", 1, 4, "the mapping opened here with '{' is not closed: the text ends before its '}'")]
    [InlineData("shared_memory:\n  - {name: a, shape: [4}\n", 2, 22, "'[' is not closed: ']' (or ',' between two items) is missing before '}' at line 2, column 24")]
    [InlineData("x: [a,\n  b\ny: z\n", 1, 4, "is missing before 'y: z' at line 3, column 1")]
    [InlineData("a:\n  - [1,\n", 2, 5, "the text ends before its ']'")]
    public void UnclosedFlowCollection_IsReportedWhereItOpens(string yaml, int line, int column, string text)
    {
        var error = SyntaxError(yaml);

        At(error, line, column);
        Assert.Contains(text, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void UnclosedList_WhoseOpeningIsNotYetRead_SaysWhatToDoAtTheLineThatStoppedIt()
    {
        var error = SyntaxError("- [a\n- b\n");

        At(error, 2, 1);
        Assert.Contains("inside a '[' or '{' that is not closed", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("shared_memory:\n  - name: a\n\tshape: [4]\n", 3, 1)]
    [InlineData("shared_memory:\n  - name: a\n    shape: [4]\n\t  dtype: float32\n", 4, 1)]
    [InlineData("a: 1\n\tb: 2\n", 2, 1)]
    [InlineData("a:\n  b: 1\n\tc: 2\n", 3, 1)]
    public void Tab_IsReportedOnItsLine(string yaml, int line, int column)
    {
        var error = SyntaxError(yaml);

        At(error, line, column);
        Assert.Contains("a tab indents this line; YAML indents with spaces only", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("a: \"x\n", "the string that starts here with \" is not closed: add the closing \"")]
    [InlineData("a: 'x\n---\n", "the string that starts here with ' is not closed: add the closing '")]
    public void UnclosedQuote_IsReportedWhereTheStringStarts(string yaml, string text)
    {
        var error = SyntaxError(yaml);

        At(error, 1, 4);
        Assert.Contains(text, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("a: [1, 2]]\n", 1, 10, "this line does not fit the mapping it is in, found ']'")]
    [InlineData("a:\n  - b\n - c\n", 3, 2, "this line does not fit the mapping it is in, found '- c'")]
    [InlineData("a: b: c\n", 1, 5, "': ' inside a value: quote the value")]
    [InlineData("a: @b\n", 1, 4, "'@' cannot start a value: quote the value")]
    [InlineData("a: \"\\q\"\n", 1, 4, "unknown escape sequence in a double-quoted string")]
    [InlineData("a:\n- b\nc", 3, 1, "a key without ':'")]
    [InlineData("a: *b\n", 1, 4, "alias *b refers to no anchor defined before it")]
    public void OtherMistakes_AreSaidInPlainWordsAtTheirPlace(string yaml, int line, int column, string text)
    {
        var error = SyntaxError(yaml);

        At(error, line, column);
        Assert.Contains(text, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void SyntaxError_FromAFile_GivesFileLineAndColumn()
    {
        var path = Path.Combine(Path.GetTempPath(), $"flowline-syntax-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(path, "shared_memory:\n  - name: a\n\tshape: [4]\n");
        try
        {
            var error = Assert.Single(PipelineDocument.CheckFile(path).Errors);

            Assert.StartsWith($"{path}:3:1: YAML syntax error: a tab indents this line", error.ToString(), StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
