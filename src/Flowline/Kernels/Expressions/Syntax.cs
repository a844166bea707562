using System.Globalization;

namespace Flowline.Kernels.Expressions;

/// <summary>An error in an expression, with the 1-based character position it refers to.</summary>
public sealed class ExpressionException(string message, int position) : Exception(message)
{
    /// <summary>The 1-based position in the expression text.</summary>
    public int Position { get; } = position;
}

/// <summary>A node of a parsed expression; <see cref="Position"/> is 1-based in the text.</summary>
internal abstract record Expr(int Position);

internal sealed record NumberExpr(double Value, int Position) : Expr(Position);

internal sealed record NameExpr(string Name, int Position) : Expr(Position);

internal sealed record UnaryExpr(char Operator, Expr Operand, int Position) : Expr(Position);

internal sealed record BinaryExpr(char Operator, Expr Left, Expr Right, int Position) : Expr(Position);

internal sealed record CallExpr(string Function, IReadOnlyList<Expr> Arguments, int Position) : Expr(Position);

/// <summary>
/// Parses shmpipeline's <c>custom_operation</c> language: names, numbers, unary <c>+ -</c>, binary
/// <c>+ - * / @</c> with Python's precedence, parentheses, and the calls <c>abs</c>, <c>min</c>/<c>minimum</c>,
/// <c>max</c>/<c>maximum</c> and <c>clip</c> (positional arguments only). An expression is at most
/// <see cref="Documents.DocumentLimits.MaxTextLength"/> characters and nests at most <see cref="MaxDepth"/>
/// parentheses, signs and calls, so that parsing, shape inference and compiling stay small.
/// </summary>
internal sealed class ExpressionParser
{
    /// <summary>How deeply parentheses, unary signs and calls may nest.</summary>
    public const int MaxDepth = 64;

    /// <summary>The functions and how many arguments each takes.</summary>
    public static readonly IReadOnlyDictionary<string, int> Functions = new Dictionary<string, int>(StringComparer.Ordinal)
    {
        ["abs"] = 1,
        ["min"] = 2,
        ["minimum"] = 2,
        ["max"] = 2,
        ["maximum"] = 2,
        ["clip"] = 3,
    };

    private readonly string text;
    private int index;
    private int depth;

    private ExpressionParser(string text) => this.text = text;

    public static Expr Parse(string text)
    {
        if (text.Length > Documents.DocumentLimits.MaxTextLength)
        {
            throw new ExpressionException($"the expression has {text.Length:N0} characters; the longest accepted is {Documents.DocumentLimits.MaxTextLength:N0}", 1);
        }

        var parser = new ExpressionParser(text);
        parser.SkipSpace();
        if (parser.index >= text.Length)
        {
            throw new ExpressionException("the expression is empty", 1);
        }

        var expr = parser.Additive();
        parser.SkipSpace();
        if (parser.index < text.Length)
        {
            throw parser.Unexpected();
        }

        return expr;
    }

    private Expr Additive()
    {
        var left = Multiplicative();
        while (true)
        {
            SkipSpace();
            if (index < text.Length && text[index] is '+' or '-')
            {
                var op = text[index];
                var at = index + 1;
                index++;
                left = new BinaryExpr(op, left, Multiplicative(), at);
            }
            else
            {
                return left;
            }
        }
    }

    private Expr Multiplicative()
    {
        var left = Unary();
        while (true)
        {
            SkipSpace();
            if (index < text.Length && text[index] is '*' or '/' or '@')
            {
                var op = text[index];
                var at = index + 1;
                if (op == '*' && Peek(1) == '*')
                {
                    throw new ExpressionException("'**' is not supported; the operators are + - * / @", at);
                }

                if (op == '/' && Peek(1) == '/')
                {
                    throw new ExpressionException("'//' is not supported; the operators are + - * / @", at);
                }

                index++;
                left = new BinaryExpr(op, left, Unary(), at);
            }
            else
            {
                return left;
            }
        }
    }

    private Expr Unary()
    {
        SkipSpace();
        if (index < text.Length && text[index] is '+' or '-')
        {
            var op = text[index];
            var at = index + 1;
            index++;
            Enter(at);
            var operand = Unary();
            depth--;
            return new UnaryExpr(op, operand, at);
        }

        return Atom();
    }

    /// <summary>One level deeper: a parenthesis, a sign or a call.</summary>
    private void Enter(int at)
    {
        if (++depth > MaxDepth)
        {
            throw new ExpressionException($"the expression nests more than {MaxDepth} parentheses, signs and calls deep", at);
        }
    }

    private Expr Atom()
    {
        SkipSpace();
        if (index >= text.Length)
        {
            throw new ExpressionException("the expression ends where a value was expected", text.Length + 1);
        }

        var c = text[index];
        var at = index + 1;
        if (c == '(')
        {
            index++;
            Enter(at);
            var inner = Additive();
            depth--;
            SkipSpace();
            if (index >= text.Length || text[index] != ')')
            {
                throw new ExpressionException($"missing ')' to close the '(' at {at}", index + 1);
            }

            index++;
            return inner;
        }

        if (char.IsAsciiDigit(c) || (c == '.' && char.IsAsciiDigit(Peek(1))))
        {
            return Number();
        }

        if (char.IsAsciiLetter(c) || c == '_')
        {
            var start = index;
            while (index < text.Length && (char.IsAsciiLetterOrDigit(text[index]) || text[index] == '_'))
            {
                index++;
            }

            var name = text[start..index];
            SkipSpace();
            if (index < text.Length && text[index] == '(')
            {
                return Call(name, at);
            }

            return new NameExpr(name, at);
        }

        throw Unexpected();
    }

    private Expr Call(string name, int at)
    {
        if (!Functions.TryGetValue(name, out var arity))
        {
            throw new ExpressionException($"unknown function '{name}'; the functions are {string.Join(", ", Functions.Keys)}", at);
        }

        index++; // '('
        Enter(at);
        var arguments = new List<Expr>();
        SkipSpace();
        if (index < text.Length && text[index] == ')')
        {
            index++;
        }
        else
        {
            while (true)
            {
                SkipSpace();
                var argumentStart = index;
                while (index < text.Length && (char.IsAsciiLetterOrDigit(text[index]) || text[index] == '_'))
                {
                    index++;
                }

                SkipSpace();
                if (index < text.Length && text[index] == '=' && Peek(1) != '=')
                {
                    throw new ExpressionException($"keyword arguments are not supported in {name}(); give the arguments in order", argumentStart + 1);
                }

                index = argumentStart;
                arguments.Add(Additive());
                SkipSpace();
                if (index < text.Length && text[index] == ',')
                {
                    index++;
                    continue;
                }

                if (index < text.Length && text[index] == ')')
                {
                    index++;
                    break;
                }

                throw new ExpressionException($"expected ',' or ')' in the call to {name}()", index + 1);
            }
        }

        depth--;
        if (arguments.Count != arity)
        {
            throw new ExpressionException($"{name}() takes {arity} argument{(arity == 1 ? "" : "s")}, not {arguments.Count}", at);
        }

        return new CallExpr(name, arguments, at);
    }

    private NumberExpr Number()
    {
        var start = index;
        while (index < text.Length && char.IsAsciiDigit(text[index]))
        {
            index++;
        }

        if (index < text.Length && text[index] == '.')
        {
            index++;
            while (index < text.Length && char.IsAsciiDigit(text[index]))
            {
                index++;
            }
        }

        if (index < text.Length && text[index] is 'e' or 'E')
        {
            var save = index;
            index++;
            if (index < text.Length && text[index] is '+' or '-')
            {
                index++;
            }

            if (index < text.Length && char.IsAsciiDigit(text[index]))
            {
                while (index < text.Length && char.IsAsciiDigit(text[index]))
                {
                    index++;
                }
            }
            else
            {
                index = save;
            }
        }

        var token = text[start..index];
        if (!double.TryParse(token, NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
        {
            throw new ExpressionException($"'{token}' is not a number", start + 1);
        }

        return new NumberExpr(value, start + 1);
    }

    private ExpressionException Unexpected()
    {
        var c = text[index];
        var hint = c switch
        {
            '[' or ']' => "; indexing is not supported",
            '=' or '<' or '>' or '!' => "; comparisons are not supported",
            '.' => "; attributes are not supported",
            '%' or '^' or '&' or '|' or '~' => "; the operators are + - * / @",
            _ => "",
        };
        return new ExpressionException($"unexpected '{c}'{hint}", index + 1);
    }

    private char Peek(int ahead) => index + ahead < text.Length ? text[index + ahead] : '\0';

    private void SkipSpace()
    {
        while (index < text.Length && char.IsWhiteSpace(text[index]))
        {
            index++;
        }
    }
}
