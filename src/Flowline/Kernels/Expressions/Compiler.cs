using System.Numerics;
using System.Numerics.Tensors;
using Flowline.SharedMemory;

namespace Flowline.Kernels.Expressions;

/// <summary>A name an expression can use: the trigger input or an auxiliary input.</summary>
/// <param name="Name">The name in the expression (<c>input</c>, or the auxiliary alias).</param>
/// <param name="Shape">The frame shape.</param>
/// <param name="Dtype">The element type.</param>
/// <param name="IsAuxiliary">True for an auxiliary input.</param>
/// <param name="Index">Its index among trigger or auxiliary inputs.</param>
internal sealed record Operand(string Name, int[] Shape, ElementType Dtype, bool IsAuxiliary, int Index);

/// <summary>Shape inference with NumPy's broadcasting and matrix-product rules.</summary>
internal static class ExpressionShapes
{
    /// <summary>
    /// The most elements the intermediate results of one expression may hold together (each is a buffer
    /// of the compiled kernel): 32 Mi, 128 MiB of float32.
    /// </summary>
    public const long MaxIntermediateElements = 1L << 25;

    /// <summary>
    /// The shape of <paramref name="expr"/>'s result; throws <see cref="ExpressionException"/> at the offending
    /// position, or when its intermediate results would hold more than <see cref="MaxIntermediateElements"/>.
    /// </summary>
    public static int[] Infer(Expr expr, IReadOnlyDictionary<string, Operand> names)
    {
        // A double: broadcasting several operands can make shapes whose element count overflows a long.
        var intermediate = 0.0;
        return Walk(expr, isRoot: true);

        int[] Walk(Expr e, bool isRoot)
        {
            var shape = e switch
            {
                NumberExpr => [],
                NameExpr n => names.TryGetValue(n.Name, out var operand)
                    ? operand.Shape
                    : throw new ExpressionException($"unknown name '{n.Name}'; the names are {string.Join(", ", names.Keys.Order(StringComparer.Ordinal))}", n.Position),
                UnaryExpr u => Walk(u.Operand, false),
                BinaryExpr { Operator: '@' } b => MatMul(Walk(b.Left, false), Walk(b.Right, false), b.Position),
                BinaryExpr b => Broadcast(Walk(b.Left, false), Walk(b.Right, false), $"'{b.Operator}'", b.Position),
                CallExpr { Function: "abs" } c => Walk(c.Arguments[0], false),
                CallExpr { Function: "clip" } c => Broadcast(Broadcast(Walk(c.Arguments[0], false), Walk(c.Arguments[1], false), "clip()", c.Position), Walk(c.Arguments[2], false), "clip()", c.Position),
                CallExpr c => Broadcast(Walk(c.Arguments[0], false), Walk(c.Arguments[1], false), $"{c.Function}()", c.Position),
                _ => throw new ExpressionException("unsupported expression", e.Position),
            };

            if (!isRoot && e is not (NumberExpr or NameExpr))
            {
                intermediate += shape.Aggregate(1.0, (a, d) => a * d);
                if (intermediate > MaxIntermediateElements)
                {
                    throw new ExpressionException(
                        $"the intermediate results up to here hold {intermediate:N0} elements, more than the {MaxIntermediateElements:N0} an expression may; split it into several kernels",
                        e.Position);
                }
            }

            return shape;
        }
    }

    public static int[] Broadcast(int[] a, int[] b, string what, int position)
    {
        var rank = Math.Max(a.Length, b.Length);
        var result = new int[rank];
        for (var i = 0; i < rank; i++)
        {
            var da = i < rank - a.Length ? 1 : a[i - (rank - a.Length)];
            var db = i < rank - b.Length ? 1 : b[i - (rank - b.Length)];
            if (da != db && da != 1 && db != 1)
            {
                throw new ExpressionException($"cannot broadcast shapes {Text(a)} and {Text(b)} for {what}", position);
            }

            result[i] = Math.Max(da, db);
        }

        return result;
    }

    public static int[] MatMul(int[] a, int[] b, int position)
    {
        if (a.Length is < 1 or > 2 || b.Length is < 1 or > 2)
        {
            throw new ExpressionException($"'@' needs 1-D or 2-D operands, not {Text(a)} @ {Text(b)}", position);
        }

        var inner = a[^1];
        var other = b.Length == 1 ? b[0] : b[0];
        if (inner != other)
        {
            throw new ExpressionException($"{Text(a)} @ {Text(b)}: inner dimensions differ ({inner} and {other})", position);
        }

        return (a.Length, b.Length) switch
        {
            (2, 1) => [a[0]],
            (1, 2) => [b[1]],
            (2, 2) => [a[0], b[1]],
            _ => [],
        };
    }

    public static string Text(int[] shape) => $"[{string.Join(", ", shape)}]";
}

/// <summary>
/// A compiled <c>custom_operation</c>: a list of vectorised steps over buffers allocated once, that writes
/// its result straight into the output frame.
/// </summary>
internal sealed class CompiledExpression<T> : IKernel
    where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly List<Step> steps = [];
    private readonly List<T[]> buffers = [];

    private CompiledExpression()
    {
    }

    private enum Kind
    {
        Buffer,
        Input,
        Auxiliary,
        Output,
    }

    /// <summary>Compiles <paramref name="root"/> whose result has <paramref name="outputShape"/>.</summary>
    public static CompiledExpression<T> Build(Expr root, IReadOnlyDictionary<string, Operand> names, int[] outputShape)
    {
        var program = new CompiledExpression<T>();
        var converted = new Dictionary<string, Value>(StringComparer.Ordinal);
        var result = program.Emit(root, names, converted, isRoot: true);
        if (result.Kind != Kind.Output)
        {
            // A leaf (or a constant) at the root: broadcast it into the output.
            program.steps.Add(new BinaryStep(program, '+', result, program.Constant(T.Zero, []), new Value(Kind.Output, 0, outputShape), outputShape));
        }

        return program;
    }

    public void Compute(KernelIo io)
    {
        foreach (var step in steps)
        {
            step.Run(io);
        }
    }

    private Value Emit(Expr expr, IReadOnlyDictionary<string, Operand> names, Dictionary<string, Value> converted, bool isRoot)
    {
        switch (expr)
        {
            case NumberExpr n:
                return Constant(T.CreateChecked(n.Value), []);

            case NameExpr n:
                return Leaf(names[n.Name], converted);

            case UnaryExpr u:
            {
                var operand = Emit(u.Operand, names, converted, false);
                if (u.Operator == '+' && !isRoot)
                {
                    return operand;
                }

                var target = Target(operand.Shape, isRoot);
                steps.Add(new UnaryStep(this, u.Operator == '-' ? UnaryOp.Negate : UnaryOp.Copy, operand, target));
                return target;
            }

            case BinaryExpr { Operator: '@' } b:
            {
                var left = Emit(b.Left, names, converted, false);
                var right = Emit(b.Right, names, converted, false);
                var target = Target(ExpressionShapes.MatMul(left.Shape, right.Shape, b.Position), isRoot);
                steps.Add(new MatMulStep(this, left, right, target));
                return target;
            }

            case BinaryExpr b:
                return Binary(b.Operator, b.Left, b.Right, names, converted, isRoot);

            case CallExpr { Function: "abs" } c:
            {
                var operand = Emit(c.Arguments[0], names, converted, false);
                var target = Target(operand.Shape, isRoot);
                steps.Add(new UnaryStep(this, UnaryOp.Abs, operand, target));
                return target;
            }

            case CallExpr { Function: "clip" } c:
            {
                // clip(x, lo, hi) = minimum(maximum(x, lo), hi), with broadcasting at each step.
                var lower = Binary('>', c.Arguments[0], c.Arguments[1], names, converted, isRoot: false);
                var upper = Emit(c.Arguments[2], names, converted, false);
                var shape = ExpressionShapes.Broadcast(lower.Shape, upper.Shape, "clip()", c.Position);
                var target = Target(shape, isRoot);
                steps.Add(new BinaryStep(this, '<', lower, upper, target, shape));
                return target;
            }

            case CallExpr c:
                return Binary(c.Function is "min" or "minimum" ? '<' : '>', c.Arguments[0], c.Arguments[1], names, converted, isRoot);

            default:
                throw new ExpressionException("unsupported expression", expr.Position);
        }
    }

    private Value Binary(char op, Expr leftExpr, Expr rightExpr, IReadOnlyDictionary<string, Operand> names, Dictionary<string, Value> converted, bool isRoot)
    {
        var left = Emit(leftExpr, names, converted, false);
        var right = Emit(rightExpr, names, converted, false);
        var shape = ExpressionShapes.Broadcast(left.Shape, right.Shape, $"'{op}'", leftExpr.Position);
        var target = Target(shape, isRoot);
        steps.Add(new BinaryStep(this, op, left, right, target, shape));
        return target;
    }

    /// <summary>An input read in place, or converted once per frame into a buffer when its type differs.</summary>
    private Value Leaf(Operand operand, Dictionary<string, Value> converted)
    {
        var kind = operand.IsAuxiliary ? Kind.Auxiliary : Kind.Input;
        var value = new Value(kind, operand.Index, operand.Shape);
        if (operand.Dtype.ClrType() == typeof(T))
        {
            return value;
        }

        if (!converted.TryGetValue(operand.Name, out var buffer))
        {
            buffer = NewBuffer(operand.Shape);
            steps.Insert(0, new ConvertStep(this, operand, buffer));
            converted[operand.Name] = buffer;
        }

        return buffer;
    }

    private Value Constant(T value, int[] shape)
    {
        var buffer = NewBuffer(shape);
        buffers[buffer.Index][0] = value;
        return buffer;
    }

    private Value Target(int[] shape, bool isRoot) => isRoot ? new Value(Kind.Output, 0, shape) : NewBuffer(shape);

    private Value NewBuffer(int[] shape)
    {
        buffers.Add(new T[Math.Max(1, Count(shape))]);
        return new Value(Kind.Buffer, buffers.Count - 1, shape);
    }

    private static int Count(int[] shape) => shape.Aggregate(1, (a, d) => a * d);

    private ReadOnlySpan<T> Read(KernelIo io, Value v) => v.Kind switch
    {
        Kind.Buffer => buffers[v.Index],
        Kind.Input => io.Input<T>(v.Index),
        Kind.Auxiliary => io.Auxiliary<T>(v.Index),
        _ => io.Output<T>(),
    };

    private Span<T> Write(KernelIo io, Value v) => v.Kind == Kind.Output ? io.Output<T>() : buffers[v.Index];

    private readonly record struct Value(Kind Kind, int Index, int[] Shape)
    {
        public int Length => Count(Shape);
    }

    private abstract class Step
    {
        public abstract void Run(KernelIo io);
    }

    private sealed class ConvertStep(CompiledExpression<T> program, Operand operand, Value target) : Step
    {
        public override void Run(KernelIo io) =>
            Numeric.ConvertInto(operand.Dtype, operand.IsAuxiliary ? io.Auxiliary<byte>(operand.Index) : io.Input<byte>(operand.Index), program.Write(io, target));
    }

    private enum UnaryOp
    {
        Copy,
        Negate,
        Abs,
    }

    private sealed class UnaryStep(CompiledExpression<T> program, UnaryOp op, Value source, Value target) : Step
    {
        public override void Run(KernelIo io)
        {
            var x = program.Read(io, source);
            var y = program.Write(io, target);
            switch (op)
            {
                case UnaryOp.Negate: TensorPrimitives.Negate(x, y); break;
                case UnaryOp.Abs: TensorPrimitives.Abs(x, y); break;
                default: x.CopyTo(y); break;
            }
        }
    }

    /// <summary>
    /// Element-wise binary operation with broadcasting: spans of equal length, or one side a single
    /// value, go straight to TensorPrimitives; other broadcasts use index maps computed at compile time.
    /// </summary>
    private sealed class BinaryStep : Step
    {
        private readonly CompiledExpression<T> program;
        private readonly char op;
        private readonly Value left;
        private readonly Value right;
        private readonly Value target;
        private readonly int[]? leftMap;
        private readonly int[]? rightMap;
        private readonly int length;

        public BinaryStep(CompiledExpression<T> program, char op, Value left, Value right, Value target, int[] shape)
        {
            this.program = program;
            this.op = op;
            this.left = left;
            this.right = right;
            this.target = target;
            length = Count(shape);
            if (left.Length != length && left.Length != 1)
            {
                leftMap = Map(left.Shape, shape);
            }

            if (right.Length != length && right.Length != 1)
            {
                rightMap = Map(right.Shape, shape);
            }
        }

        public override void Run(KernelIo io)
        {
            var a = program.Read(io, left);
            var b = program.Read(io, right);
            var y = program.Write(io, target)[..length];
            if (leftMap is null && rightMap is null)
            {
                if (a.Length == length && b.Length == length)
                {
                    Apply(a, b, y);
                }
                else if (a.Length == length)
                {
                    Apply(a, b[0], y);
                }
                else if (b.Length == length)
                {
                    Apply(a[0], b, y);
                }
                else
                {
                    y.Fill(Apply(a[0], b[0]));
                }

                return;
            }

            for (var i = 0; i < length; i++)
            {
                y[i] = Apply(leftMap is null ? a[a.Length == 1 ? 0 : i] : a[leftMap[i]], rightMap is null ? b[b.Length == 1 ? 0 : i] : b[rightMap[i]]);
            }
        }

        private void Apply(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> y)
        {
            switch (op)
            {
                case '+': TensorPrimitives.Add(a, b, y); break;
                case '-': TensorPrimitives.Subtract(a, b, y); break;
                case '*': TensorPrimitives.Multiply(a, b, y); break;
                case '/': TensorPrimitives.Divide(a, b, y); break;
                case '<': TensorPrimitives.Min(a, b, y); break;
                default: TensorPrimitives.Max(a, b, y); break;
            }
        }

        private void Apply(ReadOnlySpan<T> a, T b, Span<T> y)
        {
            switch (op)
            {
                case '+': TensorPrimitives.Add(a, b, y); break;
                case '-': TensorPrimitives.Subtract(a, b, y); break;
                case '*': TensorPrimitives.Multiply(a, b, y); break;
                case '/': TensorPrimitives.Divide(a, b, y); break;
                case '<': TensorPrimitives.Min(a, b, y); break;
                default: TensorPrimitives.Max(a, b, y); break;
            }
        }

        private void Apply(T a, ReadOnlySpan<T> b, Span<T> y)
        {
            switch (op)
            {
                case '+': TensorPrimitives.Add(b, a, y); break;
                case '-': TensorPrimitives.Subtract(a, b, y); break;
                case '*': TensorPrimitives.Multiply(b, a, y); break;
                case '/': TensorPrimitives.Divide(a, b, y); break;
                case '<': TensorPrimitives.Min(b, a, y); break;
                default: TensorPrimitives.Max(b, a, y); break;
            }
        }

        private T Apply(T a, T b) => op switch
        {
            '+' => a + b,
            '-' => a - b,
            '*' => a * b,
            '/' => a / b,
            '<' => T.Min(a, b),
            _ => T.Max(a, b),
        };

        /// <summary>For each element of the result, the index of the operand element NumPy broadcasting reads.</summary>
        private static int[] Map(int[] operand, int[] result)
        {
            var rank = result.Length;
            var strides = new int[rank];
            var stride = 1;
            for (var d = operand.Length - 1; d >= 0; d--)
            {
                var r = d + (rank - operand.Length);
                strides[r] = operand[d] == 1 ? 0 : stride;
                stride *= operand[d];
            }

            var map = new int[Count(result)];
            var index = new int[rank];
            for (var i = 0; i < map.Length; i++)
            {
                var offset = 0;
                for (var d = 0; d < rank; d++)
                {
                    offset += index[d] * strides[d];
                }

                map[i] = offset;
                for (var d = rank - 1; d >= 0; d--)
                {
                    if (++index[d] < result[d])
                    {
                        break;
                    }

                    index[d] = 0;
                }
            }

            return map;
        }
    }

    /// <summary>Matrix products of 1-D and 2-D operands, row by row with vectorised dot products and multiply-adds.</summary>
    private sealed class MatMulStep(CompiledExpression<T> program, Value left, Value right, Value target) : Step
    {
        public override void Run(KernelIo io)
        {
            var a = program.Read(io, left);
            var b = program.Read(io, right);
            var y = program.Write(io, target);
            switch (left.Shape.Length, right.Shape.Length)
            {
                case (2, 1):
                {
                    var k = left.Shape[1];
                    for (var i = 0; i < left.Shape[0]; i++)
                    {
                        y[i] = TensorPrimitives.Dot(a.Slice(i * k, k), b);
                    }

                    break;
                }

                case (1, 2):
                {
                    var n = right.Shape[1];
                    y[..n].Clear();
                    for (var p = 0; p < left.Shape[0]; p++)
                    {
                        TensorPrimitives.MultiplyAdd(b.Slice(p * n, n), a[p], y[..n], y[..n]);
                    }

                    break;
                }

                case (2, 2):
                {
                    var (m, k, n) = (left.Shape[0], left.Shape[1], right.Shape[1]);
                    for (var i = 0; i < m; i++)
                    {
                        var row = y.Slice(i * n, n);
                        row.Clear();
                        for (var p = 0; p < k; p++)
                        {
                            TensorPrimitives.MultiplyAdd(b.Slice(p * n, n), a[(i * k) + p], row, row);
                        }
                    }

                    break;
                }

                default:
                    y[0] = TensorPrimitives.Dot(a, b);
                    break;
            }
        }
    }
}
