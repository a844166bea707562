using System.Text.RegularExpressions;
using CsCheck;
using Flowline.Documents;
using Flowline.Tests.Kernels;

namespace Flowline.Tests.Documents;

/// <summary>
/// Fuzzing of the two parsers that take text from <c>PUT /document</c>: the document reader (YAML, the
/// binder, the checks) and the <c>custom_operation</c> expression compiler. Generated inputs are valid
/// documents and expressions with random mutations; whatever they are, a check returns errors (it never
/// throws), parsing throws only <see cref="DocumentValidationException"/>, a valid kernel computes, and
/// no case hangs or takes memory out of proportion to its size.
/// </summary>
/// <remarks>
/// The number of cases is fixed so that the run is bounded (a few seconds); CsCheck prints the seed of a
/// failing case, which <c>CsCheck_Seed</c> replays.
/// </remarks>
public sealed partial class DocumentFuzzTests
{
    private const int Cases = 1500;

    /// <summary>The most bytes one small case may allocate: far above what any takes, far below a blow-up.</summary>
    private const long MaxAllocatedBytes = 256L << 20;

    private static readonly string[] Seeds =
    [
        Docs.Minimal,
        """
        namespace: fuzz
        shared_memory:
          - {name: x, shape: [4], dtype: float32, depth: 4, delivery: lossless, wait: spin}
          - {name: m, shape: [4, 4], dtype: float64, initial: {pattern: identity, scale: 2}}
          - name: v
            shape: [2, 2]
            dtype: int16
            initial: {pattern: values, values: [[1, 2], [3, 4]]}
          - {name: y, shape: [4], dtype: float32, initial: {pattern: normal, seed: 3, mean: 0, std: 1}}
          - {name: z, shape: [4], dtype: float32, initial: {pattern: constant, value: .nan}}
        sources:
          - {name: src, kind: synthetic.array, stream: x, parameters: {pattern: sine, rate_hz: 100}}
        kernels:
          - name: op
            kind: cpu.custom_operation
            input: x
            auxiliary: {m: m}
            output: y
            operation: "clip(m @ input * 2 - 1, -1, 1)"
            read_timeout: 0.5
            trigger_policy: any_new
            propagate_frame_id: true
            delivery: {x: latest}
            wait: {x: hybrid}
            placement: thread
            cpu: 0
          - name: scale
            kind: cpu.scale
            inputs: [y]
            outputs: [z]
            parameters: {factor: 2.5}
            synchronization: {mode: count, on_skew: drop_older, max_skew_generations: 4, timeout: 1}
        sinks:
          - {name: out, kind: null.sink, stream: z, parameters: {sample_window: 10}, consume_timeout: 1, delivery: latest}
        """,
        .. Directory.EnumerateFiles(Path.Combine(AppContext.BaseDirectory, "examples"), "*.yaml", SearchOption.AllDirectories).Order().Select(File.ReadAllText),
    ];

    private static readonly string[] Tokens =
    [
        "[", "]", "{", "}", ":", ": ", ",", "- ", "\n", "\t", " ", "    ", "#", "&a ", "*a", "&b ", "*b", "!!str ", "!!int ", "!tag ", "? ",
        "|", ">-", "'", "\"", "\\", "%", "@", "`", "---\n", "...\n", "~", "null", "true", "no", "-1", "0", "1e309", "-1e309", ".nan", ".inf",
        "0x7fffffffffffffff", "99999999999999999999", "2147483648", "[65536, 65536]", "[0]", "[]", "{}", "float99", "complex128", "<f4",
        "cpu.custom_operation", "cpu.copy", "input * 2", "name", "kind", "shape", "dtype", "depth", "initial", "parameters", "auxiliary", "inputs",
        "outputs", "operation", "{pattern: values, values: [[1, 2], [3]]}", "é", "\u0000", "\uFEFF", "\r\n", "\u2028",
    ];

    /// <summary>One change to a text: what (0..7), where (a fraction of the text), how long, and a token to insert.</summary>
    private static readonly Gen<(int Kind, double At, int Length, string Token)> Mutation =
        Gen.Select(Gen.Int[0, 7], Gen.Double[0, 1], Gen.Int[0, 40], Gen.OneOfConst(Tokens));

    private static readonly Gen<string> Document =
        Gen.Select(Gen.Int[0, Seeds.Length - 1], Mutation.Array[0, 6]).Select(c => Mutate(Seeds[c.Item1], c.Item2));

    private static string Mutate(string text, (int Kind, double At, int Length, string Token)[] mutations)
    {
        foreach (var (kind, at, length, token) in mutations)
        {
            var i = (int)(at * text.Length);
            var lines = text.Split('\n').ToList();
            var line = Math.Min((int)(at * lines.Count), lines.Count - 1);
            switch (kind)
            {
                case 0:
                    text = text.Insert(i, token);
                    break;
                case 1:
                    text = text.Remove(i, Math.Min(length, text.Length - i));
                    break;
                case 2:
                    lines.Insert(line, lines[line]);
                    text = string.Join('\n', lines);
                    break;
                case 3:
                    lines.RemoveAt(line);
                    text = string.Join('\n', lines);
                    break;
                case 4 when line + 1 < lines.Count:
                    (lines[line], lines[line + 1]) = (lines[line + 1], lines[line]);
                    text = string.Join('\n', lines);
                    break;
                case 5:
                    lines[line] = length % 2 == 0 ? new string(' ', length % 5) + lines[line] : lines[line].TrimStart();
                    text = string.Join('\n', lines);
                    break;
                case 6:
                    text = text.Remove(i, Math.Min(length, text.Length - i)).Insert(i, token);
                    break;
                default:
                    text = text[..i];
                    break;
            }
        }

        return text;
    }

    private static void CheckIsSound(DocumentCheck check, string text)
    {
        Assert.Equal(check.Pipeline is not null, check.IsValid);
        Assert.InRange(check.Errors.Count, check.IsValid ? 0 : 1, DocumentLimits.MaxErrors);
        Assert.True(check.TotalErrors >= check.Errors.Count);
        var lines = LineBreak().Split(text).Length + 1;
        foreach (var error in check.Errors)
        {
            Assert.False(string.IsNullOrWhiteSpace(error.Message), $"an error without a message: {error}");
            Assert.DoesNotContain("Exception", error.Message, StringComparison.Ordinal);
            Assert.DoesNotContain("Operation is not valid", error.Message, StringComparison.Ordinal);
            Assert.True(!error.Position.IsKnown || (error.Position.Line <= lines && error.Position.Column >= 1), $"an error outside the text: {error}");
        }
    }

    [Fact]
    public void Documents_Mutated_AreCheckedWithoutThrowing_AndValidOnesWriteBackValid()
    {
        Document.Sample(
            text => Bounded.Run(text, MaxAllocatedBytes, () =>
            {
                var check = PipelineDocument.Check(text, "fuzz.yaml", AppContext.BaseDirectory);
                CheckIsSound(check, text);
                try
                {
                    PipelineDocument.Parse(text, "fuzz.yaml", AppContext.BaseDirectory);
                    Assert.True(check.IsValid);
                }
                catch (DocumentValidationException)
                {
                    Assert.False(check.IsValid);
                }

                if (check.Pipeline is { } pipeline)
                {
                    // What a valid document writes back is valid, as YAML and as JSON, and the same pipeline.
                    var again = PipelineDocument.Check(PipelineDocument.ToYaml(pipeline.Spec), "fuzz.yaml", AppContext.BaseDirectory);
                    Assert.True(again.IsValid, string.Join('\n', again.Errors));
                    Assert.Equal(pipeline.Spec, again.Pipeline!.Spec);
                    var json = PipelineDocument.CheckJson(PipelineDocument.ToJson(pipeline.Spec), AppContext.BaseDirectory);
                    Assert.True(json.IsValid, string.Join('\n', json.Errors));
                }
            }),
            iter: Cases,
            threads: 1);
    }

    /// <summary>Mostly names and numbers of the kernel below (m and w change the shape), sometimes ones that are not.</summary>
    private static readonly Gen<string> Atom = Gen.Frequency(
        (18, Gen.OneOfConst("input", "v", "0", "1", "2.5", ".5", "5.", "1e3")),
        (1, Gen.OneOfConst("m", "w")),
        (1, Gen.OneOfConst("nope", "1e309", "1e-320", "0.0", "_", "input1")));

    private static readonly Gen<string> Operator = Gen.Frequency(
        (28, Gen.OneOfConst("+", "-", "*", "/")),
        (1, Gen.Const("@")),
        (1, Gen.OneOfConst("**", "//", ">", "%")));

    private static readonly Gen<string> Function = Gen.Frequency(
        (19, Gen.OneOfConst("abs", "min", "minimum", "max", "maximum", "clip")),
        (1, Gen.Const("sqrt")));

    /// <summary>Expressions of the language (names, numbers, operators, calls, parentheses), nested up to a few levels.</summary>
    private static readonly Gen<string> Expression = Gen.Recursive<string>((depth, self) =>
        depth >= 5
            ? Atom
            : Gen.Frequency(
                (3, Atom),
                (4, Gen.Select(self, Operator, self).Select(t => $"{t.Item1} {t.Item2} {t.Item3}")),
                (2, Gen.Select(Gen.OneOfConst("-", "+", "- -"), self).Select(t => t.Item1 + t.Item2)),
                (2, self.Select(e => $"({e})")),
                (3, Gen.Select(Function, self.Array[3], Gen.Int[0, 19]).Select(t => Call(t.Item1, t.Item2, t.Item3)))));

    /// <summary>A call with the arguments its function takes, or (once in twenty) with one too few.</summary>
    private static string Call(string function, string[] arguments, int wrong)
    {
        var arity = function switch { "abs" or "sqrt" => 1, "clip" => 3, _ => 2 };
        return $"{function}({string.Join(", ", arguments.Take(wrong == 0 ? arity - 1 : arity))})";
    }

    /// <summary>Expressions, a quarter of them with a mutation or two of printable characters (the document around them stays valid YAML).</summary>
    private static readonly Gen<string> MutatedExpression =
        Gen.Select(Expression, Gen.Frequency((3, Gen.Const(Array.Empty<(int Kind, double At, int Length, string Token)>())), (1, Mutation.Array[1, 2])))
            .Select(t => Mutate(t.Item1, [.. t.Item2.Select(m => m with { Token = Printable(m.Token) })]));

    private static string Printable(string token) => new([.. token.Select(c => c is >= ' ' and <= '~' ? c : ' ')]);

    private static string OperationDocument(string operation, string outputDtype) =>
        OneKernel.Document(
            [("x", "float32", [4]), ("m", "float64", [4, 4]), ("v", "int16", [4]), ("w", "float32", [1, 4]), ("y", outputDtype, [4])],
            $"name: k\nkind: cpu.custom_operation\ninput: x\nauxiliary: {{m: m, v: v, w: w}}\noutput: y\noperation: '{operation.Replace("'", "''", StringComparison.Ordinal)}'");

    [Fact]
    public void Expressions_Generated_AreCompiledWithoutThrowing_AndValidOnesCompute()
    {
        Gen.Select(MutatedExpression, Gen.OneOfConst("float32", "float64"), Gen.Float[-10, 10].Array[4]).Sample(
            (operation, dtype, x) =>
            {
                var yaml = OperationDocument(operation, dtype);
                Bounded.Run(yaml, MaxAllocatedBytes, () =>
                {
                    var check = PipelineDocument.Check(yaml, "op.yaml");
                    CheckIsSound(check, yaml);
                    if (check.IsValid)
                    {
                        var run = KernelRun.Of(yaml).Input(x).Auxiliary(new double[16]).Auxiliary(new short[] { 1, 2, 3, 4 }, 1).Auxiliary(new float[4], 2);
                        run.Compute();
                    }
                    else
                    {
                        Assert.All(check.Errors, e => Assert.StartsWith("kernels[0].", e.Path, StringComparison.Ordinal));
                    }
                });
            },
            iter: Cases,
            threads: 1);
    }

    /// <summary>What YAML counts as a line break.</summary>
    [GeneratedRegex("\r\n|[\r\n\u0085\u2028\u2029]")]
    private static partial Regex LineBreak();
}
