using Flowline.Documents;
using Flowline.Kernels.Expressions;

namespace Flowline.Tests.Kernels;

public sealed class CustomOperationTests
{
    private static string Doc(string operation, int[] inShape, int[] outShape, string dtype = "float64", params (string Name, string Dtype, int[] Shape)[] auxiliary)
    {
        var aux = auxiliary.Length == 0 ? "" : $"auxiliary: [{string.Join(", ", auxiliary.Select(a => a.Name))}]\n";
        return OneKernel.Unary("cpu.custom_operation", dtype, inShape, dtype, outShape, $"{aux}operation: \"{operation}\"", auxiliary);
    }

    private static double[] Run(string operation, double[] x, int[] inShape, int[] outShape, params (string Name, int[] Shape, double[] Values)[] auxiliary)
    {
        var run = KernelRun.Of(Doc(operation, inShape, outShape, "float64", [.. auxiliary.Select(a => (a.Name, "float64", a.Shape))]));
        run.Input(x);
        for (var i = 0; i < auxiliary.Length; i++)
        {
            run.Auxiliary(auxiliary[i].Values, i);
        }

        var y = run.Compute().Output<double>();
        Assert.Equal(0, run.AllocatedPerRun());
        return y;
    }

    private static readonly double[] X = [-2, -0.5, 0, 1.5, 3, 10];

    [Theory]
    [InlineData("input * 2 + 1")]
    [InlineData("2 * 3 + input")]
    [InlineData("-input")]
    [InlineData("+input")]
    [InlineData("input")]
    [InlineData("abs(input)")]
    [InlineData("clip(input, -1, 1)")]
    [InlineData("min(input, 0.5)")]
    [InlineData("minimum(0.5, input)")]
    [InlineData("max(input, 1)")]
    [InlineData("maximum(input, -input)")]
    [InlineData("input / 4 - input * input")]
    [InlineData("(input + 1) * (input - 1)")]
    [InlineData("1 - - input")]
    [InlineData("1.5e1 / (input * input + 1)")]
    public void Operation_ComputesLikeItsMeaning(string operation)
    {
        Func<double, double> meaning = operation switch
        {
            "input * 2 + 1" => x => (x * 2) + 1,
            "2 * 3 + input" => x => 6 + x,
            "-input" => x => -x,
            "+input" or "input" => x => x,
            "abs(input)" => Math.Abs,
            "clip(input, -1, 1)" => x => Math.Clamp(x, -1, 1),
            "min(input, 0.5)" or "minimum(0.5, input)" => x => Math.Min(x, 0.5),
            "max(input, 1)" => x => Math.Max(x, 1),
            "maximum(input, -input)" => Math.Abs,
            "input / 4 - input * input" => x => (x / 4) - (x * x),
            "(input + 1) * (input - 1)" => x => (x + 1) * (x - 1),
            "1 - - input" => x => 1 + x,
            _ => x => 15 / ((x * x) + 1),
        };
        var y = Run(operation, X, [6], [6]);
        for (var i = 0; i < X.Length; i++)
        {
            Assert.Equal(meaning(X[i]), y[i], 12);
        }
    }

    [Fact]
    public void Operation_WithAuxiliaryFrames_FlatFieldsAnImage()
    {
        double[] raw = [10, 20, 30, 40];
        double[] dark = [1, 2, 3, 4];
        double[] flat = [0.5, 1, 2, 4];
        var y = Run("(input - dark) / flat", raw, [2, 2], [2, 2], ("dark", [2, 2], dark), ("flat", [2, 2], flat));
        Assert.Equal([18.0, 18, 13.5, 9], y);
    }

    [Fact]
    public void Operation_Broadcasts_ARowOverAMatrix_AndAColumnOverAMatrix()
    {
        double[] x = [1, 2, 3, 4, 5, 6];
        Assert.Equal([0.0, 0, 0, 3, 3, 3], Run("input - row", x, [2, 3], [2, 3], ("row", [3], [1.0, 2, 3])));
        Assert.Equal([0.0, 1, 2, 0, 1, 2], Run("input - col", x, [2, 3], [2, 3], ("col", [2, 1], [1.0, 4])));
    }

    [Fact]
    public void Operation_MatrixProducts_FollowNumPy()
    {
        double[] a = [1, 2, 3, 4, 5, 6];
        Assert.Equal([14.0, 32], Run("m @ input", [1, 2, 3], [3], [2], ("m", [2, 3], a)));
        Assert.Equal([9.0, 12, 15], Run("input @ m", [1, 2], [2], [3], ("m", [2, 3], a)));
        Assert.Equal([22.0, 28, 49, 64], Run("m @ n", [0], [1], [2, 2], ("m", [2, 3], a), ("n", [3, 2], a)));
        Assert.Equal([2 * 14.0, 2 * 32], Run("2 * (m @ input)", [1, 2, 3], [3], [2], ("m", [2, 3], a)));
    }

    [Fact]
    public void Operation_OnIntegerFrames_ComputesInTheOutputsFloatType()
    {
        var run = KernelRun.Of(OneKernel.Document(
            [("x", "uint16", [3]), ("dark", "int16", [3]), ("y", "float32", [3])],
            "name: k\nkind: cpu.custom_operation\ninput: x\nauxiliary: [dark]\noutput: y\noperation: (input - dark) * 0.5"));
        var y = run.Input(new ushort[] { 100, 200, 50 }).Auxiliary(new short[] { 10, -20, 60 }).Compute().Output<float>();
        Assert.Equal([45f, 110f, -5f], y);
        Assert.Equal(0, run.AllocatedPerRun());
    }

    [Theory]
    [InlineData("input + dark2", "at character 9", "unknown name 'dark2'; the names are dark, input")]
    [InlineData("sqrt(input)", "at character 1", "unknown function 'sqrt'")]
    [InlineData("clip(input, 1)", "at character 1", "clip() takes 3 arguments, not 2")]
    [InlineData("input ** 2", "at character 7", "'**' is not supported")]
    [InlineData("min(input, b=2)", "at character 12", "keyword arguments are not supported")]
    [InlineData("(input + 1", "at character 11", "missing ')'")]
    [InlineData("input + ", "at character 9", "the expression ends where a value was expected")]
    [InlineData("input[0]", "at character 6", "indexing is not supported")]
    [InlineData("input > 0", "at character 7", "comparisons are not supported")]
    [InlineData("input + wide", "at character 7", "cannot broadcast shapes [4] and [3] for '+'")]
    [InlineData("wide @ input", "at character 6", "inner dimensions differ (3 and 4)")]
    [InlineData("input @ input @ input", "at character 15", "'@' needs 1-D or 2-D operands")]
    public void Operation_Errors_SayWhereInTheExpression(string operation, string where, string what)
    {
        var yaml = OneKernel.Document(
            [("x", "float32", [4]), ("dark", "float32", [4]), ("wide", "float32", [3]), ("y", "float32", [4])],
            $"name: k\nkind: cpu.custom_operation\ninput: x\nauxiliary: {{dark: dark, wide: wide}}\noutput: y\noperation: \"{operation}\"");
        var error = Assert.Single(PipelineDocument.Check(yaml, "op.yaml").Errors);
        Assert.Equal("kernels[0].operation", error.Path);
        Assert.Contains(where, error.Message, StringComparison.Ordinal);
        Assert.Contains(what, error.Message, StringComparison.Ordinal);
        Assert.Equal(12, error.Position.Line);
    }

    [Fact]
    public void Operation_WhoseResultHasAnotherShape_IsRejected()
    {
        var errors = PipelineDocument.Check(Doc("m @ input", [3], [3], "float64", ("m", "float64", [2, 3])), "op.yaml").Errors;
        var error = Assert.Single(errors);
        Assert.Contains("the expression gives shape [2]; output 'y' has shape [3]", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Operation_Missing_OrAliasInput_IsRejected()
    {
        var missing = PipelineDocument.Check(OneKernel.Unary("cpu.custom_operation", "float32", [2], "float32", [2]), "op.yaml").Errors;
        Assert.Contains(missing, e => e.Path == "kernels[0].operation" && e.Message.Contains("needs an 'operation'", StringComparison.Ordinal));

        var reserved = PipelineDocument.Check(
            OneKernel.Unary("cpu.custom_operation", "float32", [2], "float32", [2], "auxiliary: {input: z}\noperation: input", ("z", "float32", [2])), "op.yaml").Errors;
        Assert.Contains(reserved, e => e.Path == "kernels[0].auxiliary.input" && e.Message.Contains("reserved", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(2000, "(", ")")]
    [InlineData(2000, "-", "")]
    [InlineData(600, "abs(", ")")]
    public void Operation_NestedDeeperThanTheLimit_IsRejectedWhereItGoesTooDeep(int depth, string open, string close)
    {
        var operation = string.Concat(Enumerable.Repeat(open, depth)) + "input" + string.Concat(Enumerable.Repeat(close, depth));

        var error = Assert.Single(PipelineDocument.Check(Doc(operation, [4], [4]), "op.yaml").Errors);

        Assert.Equal("kernels[0].operation", error.Path);
        Assert.Contains($"at character {(ExpressionParser.MaxDepth * open.Length) + 1}", error.Message, StringComparison.Ordinal);
        Assert.Contains($"the expression nests more than {ExpressionParser.MaxDepth} parentheses, signs and calls deep", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Operation_NestedAsDeepAsTheLimit_Computes()
    {
        var depth = ExpressionParser.MaxDepth;
        var operation = new string('(', depth - 1) + "-input" + new string(')', depth - 1);

        Assert.Equal(X.Select(x => -x), Run(operation, X, [6], [6]));
    }

    [Fact]
    public void Operation_LongerThanTheLimit_IsRejected()
    {
        var operation = "input" + string.Concat(Enumerable.Repeat(" + input", DocumentLimits.MaxTextLength / 8));

        var e = Assert.Throws<ExpressionException>(() => ExpressionParser.Parse(operation));
        Assert.Equal($"the expression has {operation.Length:N0} characters; the longest accepted is {DocumentLimits.MaxTextLength:N0}", e.Message);

        // In a document, the text is refused as too long before it reaches the kind.
        var error = Assert.Single(PipelineDocument.Check(Doc(operation, [4], [4]), "op.yaml").Errors);
        Assert.Contains($"this text is {operation.Length:N0} characters long", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Operation_AsLongAsTheLimit_Computes()
    {
        var terms = (DocumentLimits.MaxTextLength - 5) / 8;
        var operation = "input" + string.Concat(Enumerable.Repeat(" + input", terms));

        var y = KernelRun.Of(Doc(operation, [6], [6])).Input(X).Compute().Output<double>();

        Assert.Equal(X.Select(x => x * (terms + 1)), y);
    }

    [Fact]
    public void Operation_WhoseIntermediateResultsAreTooLarge_IsRejected()
    {
        // col + row broadcasts to 8192 x 8192 = 67,108,864 elements before the product brings it back to 8192.
        var yaml = Doc("(input + row) @ v", [8192, 1], [8192], "float32", ("row", "float32", [1, 8192]), ("v", "float32", [8192]));

        var error = Assert.Single(PipelineDocument.Check(yaml, "op.yaml").Errors);

        Assert.Equal("kernels[0].operation", error.Path);
        Assert.Contains("at character 8", error.Message, StringComparison.Ordinal);
        Assert.Contains($"the intermediate results up to here hold 67,108,864 elements, more than the {ExpressionShapes.MaxIntermediateElements:N0} an expression may", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Operation_WithLargeButBoundedIntermediateResults_IsValid()
    {
        var yaml = Doc("(input + row) @ v", [2048, 1], [2048], "float32", ("row", "float32", [1, 2048]), ("v", "float32", [2048]));

        Assert.Empty(PipelineDocument.Check(yaml, "op.yaml").Errors);
    }
}
