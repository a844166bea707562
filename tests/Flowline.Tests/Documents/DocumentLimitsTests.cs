using System.Text;
using System.Text.Json.Nodes;
using Flowline.Documents;

namespace Flowline.Tests.Documents;

/// <summary>
/// Hostile documents: too large, too many streams or nodes, too deep, aliases that multiply, too long a
/// text, too many errors. Each is refused with one error that names the bound, before the structures the
/// bound protects are built.
/// </summary>
public sealed class DocumentLimitsTests
{
    private const string TwoStreams = "shared_memory:\n  - {name: a, shape: [4], dtype: float32}\n  - {name: b, shape: [4], dtype: float32}\n";

    private static SpecError SingleError(DocumentCheck check, string text)
    {
        var error = Assert.Single(check.Errors);
        Assert.Contains(text, error.Message, StringComparison.Ordinal);
        return error;
    }

    private static string Streams(int count)
    {
        var yaml = new StringBuilder("shared_memory:\n");
        for (var i = 0; i < count; i++)
        {
            yaml.Append("  - {name: s").Append(i).Append(", shape: [4], dtype: float32}\n");
        }

        return yaml.ToString();
    }

    // ---------------------------------------------------------------- bytes

    [Fact]
    public void Text_LargerThanTheLimit_IsRefusedUnparsed()
    {
        var yaml = Docs.Minimal + "\n#" + new string('x', DocumentLimits.MaxBytes);

        var check = PipelineDocument.Check(yaml, "big.yaml");

        var error = SingleError(check, $"larger than {DocumentLimits.MaxBytes:N0} bytes, the largest accepted");
        Assert.False(check.IsSyntaxError);
        Assert.True(check.IsBeyondLimits);
        Assert.Equal("big.yaml", error.File);
    }

    [Fact]
    public void Text_OfFewerCharactersThanTheLimit_ButMoreBytes_IsRefused()
    {
        var comment = new string('é', (DocumentLimits.MaxBytes / 2) + 1);
        var yaml = Docs.Minimal + "\n#" + comment;

        var error = SingleError(PipelineDocument.Check(yaml), "bytes, larger than");

        Assert.Contains($"{Encoding.UTF8.GetByteCount(yaml):N0} bytes", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Text_JustUnderTheLimit_IsRead()
    {
        var yaml = Docs.Minimal + "\n#";
        yaml += new string('x', DocumentLimits.MaxBytes - Encoding.UTF8.GetByteCount(yaml));

        Assert.True(PipelineDocument.Check(yaml).IsValid);
    }

    [Fact]
    public void File_LargerThanTheLimit_IsRefused()
    {
        var path = Path.Combine(Path.GetTempPath(), $"flowline-big-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(path, Docs.Minimal + "\n#" + new string('x', DocumentLimits.MaxBytes));
        try
        {
            var check = PipelineDocument.CheckFile(path);

            var error = SingleError(check, $"the file is {new FileInfo(path).Length:N0} bytes, larger than {DocumentLimits.MaxBytes:N0} bytes, the largest document accepted");
            Assert.Equal(path, error.File);
            Assert.True(check.IsBeyondLimits);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void File_ThatNeverEnds_IsRefusedAfterTheLimit()
    {
        SingleError(PipelineDocument.CheckFile("/dev/zero"), $"the file is larger than {DocumentLimits.MaxBytes:N0} bytes, the largest document accepted");
    }

    // ---------------------------------------------------------------- counts

    [Fact]
    public void Streams_MoreThanTheLimit_AreRefusedWithOneError()
    {
        var yaml = Streams(DocumentLimits.MaxStreams + 1) + "kernels:\n  - {name: k, kind: cpu.copy, input: nowhere, output: s0}\n";

        var check = PipelineDocument.Check(yaml, "many.yaml");

        var error = SingleError(check, $"declares {DocumentLimits.MaxStreams + 1:N0} streams; a pipeline has at most {DocumentLimits.MaxStreams:N0}");
        Assert.True(check.IsBeyondLimits);

        Assert.Equal("shared_memory", error.Path);
        Assert.Equal(2, error.Position.Line);
    }

    [Fact]
    public void Streams_AsManyAsTheLimit_AreAccepted()
    {
        var yaml = Streams(DocumentLimits.MaxStreams) + "kernels:\n  - {name: k, kind: cpu.copy, input: s0, output: s1}\n";

        var check = PipelineDocument.Check(yaml);

        Assert.True(check.IsValid, string.Join('\n', check.Errors));
        Assert.Equal(DocumentLimits.MaxStreams, check.Pipeline!.Spec.Streams.Length);
    }

    [Fact]
    public void Nodes_MoreThanTheLimit_AreRefusedWithOneError()
    {
        var yaml = new StringBuilder(TwoStreams).Append("kernels:\n  - {name: k, kind: cpu.copy, input: a, output: b}\nsinks:\n");
        for (var i = 0; i < DocumentLimits.MaxNodes; i++)
        {
            yaml.Append("  - {name: out").Append(i).Append(", kind: null.sink, stream: b}\n");
        }

        var error = SingleError(PipelineDocument.Check(yaml.ToString()), $"declares {DocumentLimits.MaxNodes + 1:N0} kernels, sources and sinks; a pipeline has at most {DocumentLimits.MaxNodes:N0}");

        Assert.Equal(1, error.Position.Line);
    }

    [Fact]
    public void Plugins_MoreThanTheLimit_AreRefusedUnloaded()
    {
        var plugins = string.Join(", ", Enumerable.Repeat("plugins/Flowline.Tests.Plugin.dll", DocumentLimits.MaxPlugins + 1));

        var error = SingleError(PipelineDocument.Check($"plugins: [{plugins}]\n{Docs.Minimal}", "p.yaml", AppContext.BaseDirectory), $"lists {DocumentLimits.MaxPlugins + 1} plugins");

        Assert.Equal("plugins", error.Path);
    }

    // ---------------------------------------------------------------- nesting, aliases, text

    [Theory]
    [InlineData(DocumentLimits.MaxDepth + 1)]
    [InlineData(100_000)]
    public void Yaml_NestedDeeperThanTheLimit_IsRefused(int depth)
    {
        var yaml = $"{Docs.Minimal}\nx: {new string('[', depth)}{new string(']', depth)}\n";

        var check = PipelineDocument.Check(yaml);

        var error = SingleError(check, $"lists and mappings nest more than {DocumentLimits.MaxDepth} deep here");
        Assert.Equal(13, error.Position.Line);
        Assert.True(check.IsBeyondLimits);
        Assert.False(check.IsSyntaxError);
    }

    [Fact]
    public void Yaml_NestedAsDeepAsTheLimit_IsRead()
    {
        // The top-level mapping is the first level.
        var depth = DocumentLimits.MaxDepth - 1;
        var yaml = $"{Docs.Minimal}\nx: {new string('[', depth)}{new string(']', depth)}\n";

        var error = Assert.Single(Docs.Errors(yaml));

        Assert.Equal("x", error.Path);
        Assert.Contains("unknown key 'x'", error.Message, StringComparison.Ordinal);
    }

    /// <summary>A JSON document nested <paramref name="depth"/> lists deep, built in code (a parser would refuse it sooner).</summary>
    private static JsonObject DeepJson(int depth)
    {
        JsonNode node = JsonValue.Create(1);
        for (var i = 0; i < depth; i++)
        {
            node = new JsonArray(node);
        }

        return new JsonObject { ["x"] = node };
    }

    [Fact]
    public void Json_NestedDeeperThanTheLimit_IsRefused()
    {
        SingleError(PipelineDocument.CheckJson(DeepJson(100_000)), $"lists and mappings nest more than {DocumentLimits.MaxDepth} deep");
        Assert.True(PipelineDocument.CheckJson(DeepJson(100_000)).IsBeyondLimits);
        Assert.Throws<DocumentValidationException>(() => PipelineDocument.FromJson(DeepJson(100_000)));
    }

    /// <summary>Aliases of aliases (the "billion laughs"): each level repeats the one before ten times.</summary>
    private static string Laughs(int levels)
    {
        var yaml = new StringBuilder(TwoStreams).Append("kernels:\n  - name: k\n    kind: cpu.copy\n    input: a\n    output: b\n    parameters:\n");
        yaml.Append("      l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for (var i = 1; i < levels; i++)
        {
            yaml.Append($"      l{i}: &l{i} [").AppendJoin(", ", Enumerable.Repeat($"*l{i - 1}", 10)).Append("]\n");
        }

        return yaml.ToString();
    }

    [Fact]
    public void Aliases_ThatStandForMoreValuesThanTheLimit_AreRefused()
    {
        // l5 (line 15) repeats 10^5 lists of ten: 1,111,111 values in all.
        var check = PipelineDocument.Check(Laughs(6), "laughs.yaml");

        var error = SingleError(check, $"the document holds more than {DocumentLimits.MaxValues:N0} values (an alias counts as all it repeats)");
        Assert.Equal(15, error.Position.Line);
    }

    [Fact]
    public void Aliases_BillionLaughs_AreRefusedAtOnce()
    {
        SingleError(PipelineDocument.Check(Laughs(9)), $"more than {DocumentLimits.MaxValues:N0} values");
    }

    [Fact]
    public void Aliases_UnderTheLimit_AreResolved()
    {
        var errors = Docs.Errors(Laughs(3));

        // The aliases are read (as the kind's unknown parameters), not refused.
        Assert.Equal(["kernels[0].parameters.l0", "kernels[0].parameters.l1", "kernels[0].parameters.l2"], errors.Select(e => e.Path));
    }

    [Fact]
    public void Text_LongerThanTheLimit_IsRefusedAtItsLine()
    {
        var yaml = Docs.Minimal.Replace("kind: cpu.copy", $"kind: cpu.{new string('x', DocumentLimits.MaxTextLength)}", StringComparison.Ordinal);

        var error = SingleError(PipelineDocument.Check(yaml), $"this text is {DocumentLimits.MaxTextLength + 4:N0} characters long; the longest accepted is {DocumentLimits.MaxTextLength:N0}");

        Assert.Equal(10, error.Position.Line);
    }

    [Fact]
    public void Json_TextLongerThanTheLimit_IsRefused()
    {
        var json = new JsonObject { ["namespace"] = new string('n', DocumentLimits.MaxTextLength + 1) };

        SingleError(PipelineDocument.CheckJson(json), $"the longest accepted is {DocumentLimits.MaxTextLength:N0}");
    }

    [Fact]
    public void Aliases_ThatRepeatMoreTextThanTheLimit_AreRefused()
    {
        var count = (DocumentLimits.MaxExpandedText / DocumentLimits.MaxTextLength) + 1;
        var yaml = $"{Docs.Minimal}\nx: &x {new string('x', DocumentLimits.MaxTextLength)}\ny: [{string.Join(", ", Enumerable.Repeat("*x", count))}]\n";

        SingleError(PipelineDocument.Check(yaml), $"the document holds more than {DocumentLimits.MaxExpandedText:N0} characters of text");
    }

    [Fact]
    public void Messages_QuoteLongTextsShortly()
    {
        var kind = "cpu." + new string('x', 4000);

        var error = Assert.Single(Docs.Errors(Docs.Minimal.Replace("kind: cpu.copy", $"kind: {kind}", StringComparison.Ordinal)));

        Assert.Equal("kernels[0].kind", error.Path);
        Assert.Contains("... (4,004 characters)", error.Message, StringComparison.Ordinal);
        Assert.True(error.Message.Length < 1000, error.Message);
    }

    [Fact]
    public void Messages_ListAtMostTenValidNames()
    {
        var yaml = Streams(50) + "kernels:\n  - {name: k, kind: cpu.copy, input: nowhere, output: s1}\n";

        var error = Assert.Single(Docs.Errors(yaml));

        Assert.EndsWith("streams are s0, s1, s2, s3, s4, s5, s6, s7, s8, s9 and 40 more", error.Message, StringComparison.Ordinal);
    }

    // ---------------------------------------------------------------- hostile documents within the limits

    /// <summary>Checks a document under the hang detector, with at most 2 GiB allocated (garbage included).</summary>
    private static DocumentCheck CheckBounded(string yaml)
    {
        DocumentCheck? check = null;
        Bounded.Run(yaml, 2L << 30, () => check = PipelineDocument.Check(yaml, "hostile.yaml"));
        return check!;
    }

    [Fact]
    public void Hostile_ANodeListingOneOutputHundredsOfThousandsOfTimes_IsCheckedInBoundedTime()
    {
        var yaml = TwoStreams + "kernels:\n  - {name: k, kind: cpu.copy, input: a, outputs: [" + string.Join(", ", Enumerable.Repeat("b", 300_000)) + "]}\n";

        var check = CheckBounded(yaml);

        Assert.Contains(check.Errors, e => e.Message == "output 'b' is listed 300000 times; list it once");
        Assert.Contains(check.Errors, e => e.Message.StartsWith("stream 'b' already has a producer: 'k' and 'k' and", StringComparison.Ordinal) && e.Message.Contains("and 299,990 more all write it", StringComparison.Ordinal));
    }

    [Fact]
    public void Hostile_ThousandsOfNodesReadingAndWritingTheSameStreams_AreCheckedInBoundedTime()
    {
        var names = string.Join(", ", Enumerable.Range(0, 64).Select(i => $"s{i}"));
        var yaml = new StringBuilder(Streams(64)).Append("kernels:\n");
        for (var i = 0; i < 4000; i++)
        {
            yaml.Append("  - {name: k").Append(i).Append(", kind: cpu.concatenate, inputs: [").Append(names).Append("], outputs: [").Append(names).Append("]}\n");
        }

        var check = CheckBounded(yaml.ToString());

        Assert.Equal(DocumentLimits.MaxErrors, check.Errors.Count);
        Assert.True(check.TotalErrors > 4000 * 64, $"{check.TotalErrors} errors");
        Assert.Equal("kernels[0]", check.Errors[0].Path);
    }

    [Fact]
    public void Hostile_HundredsOfThousandsOfUnknownStreams_AreCheckedInBoundedTime()
    {
        var yaml = Streams(DocumentLimits.MaxStreams) + "kernels:\n  - {name: k, kind: cpu.copy, inputs: [" + string.Join(", ", Enumerable.Range(0, 300_000).Select(i => $"x{i}")) + "], output: s1}\n";

        var check = CheckBounded(yaml);

        Assert.Equal(300_001, check.TotalErrors);
        Assert.Contains(check.Errors, e => e.Message == "unknown stream 'x0' (did you mean 's0'?); streams are s0, s1, s2, s3, s4, s5, s6, s7, s8, s9 and 4,086 more");
    }

    // ---------------------------------------------------------------- errors

    [Fact]
    public void Errors_BeyondTheLimit_AreCountedAndTheFirstInDocumentOrderKept()
    {
        var yaml = new StringBuilder("shared_memory:\n");
        var streams = DocumentLimits.MaxErrors * 3;
        for (var i = 0; i < streams; i++)
        {
            yaml.Append("  - {name: s").Append(i).Append(", shape: [4], dtype: float99}\n");
        }

        // The kernel's error comes first in the document, and is found last.
        var check = PipelineDocument.Check("kernels:\n  - {name: k, kind: cpu.nothing, input: s0, output: s1}\n" + yaml, "many.yaml");

        Assert.Equal(DocumentLimits.MaxErrors, check.Errors.Count);
        Assert.Equal(streams + 1, check.TotalErrors);
        Assert.Equal("kernels[0].kind", check.Errors[0].Path);
        Assert.Equal(Enumerable.Range(0, DocumentLimits.MaxErrors - 1).Select(i => $"shared_memory[{i}].dtype"), check.Errors.Skip(1).Select(e => e.Path));
        Assert.Equal(check.Errors.OrderBy(e => e.Position.Line).ThenBy(e => e.Position.Column), check.Errors);

        var e = Assert.Throws<DocumentValidationException>(() => PipelineDocument.Parse("kernels:\n  - {name: k, kind: cpu.nothing, input: s0, output: s1}\n" + yaml));
        Assert.Equal(streams + 1, e.TotalErrors);
        Assert.Equal(DocumentLimits.MaxErrors, e.Errors.Count);
        Assert.Contains($"({streams + 1:N0} problems)", e.Message, StringComparison.Ordinal);
        Assert.EndsWith($"... and {streams + 1 - DocumentLimits.MaxErrors:N0} more", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Errors_FewerThanTheLimit_AreAllKept()
    {
        var check = PipelineDocument.Check(Docs.Minimal.Replace("dtype: float32", "dtype: float99", StringComparison.Ordinal));

        Assert.Equal(2, check.Errors.Count);
        Assert.Equal(2, check.TotalErrors);
    }
}
