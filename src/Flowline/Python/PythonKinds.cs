using System.Collections.Immutable;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Flowline.Documents;
using Flowline.Kernels;

namespace Flowline.Python;

/// <summary>
/// What a <c>python.*</c> node runs: a function of a Python module, in a Python worker process (the package
/// <c>flowline</c>, <c>python -m flowline.worker</c>). Its settings are parameters of the node; the others
/// are the function's own parameters, handed to it as a dict.
/// </summary>
/// <param name="Interpreter">The interpreter: a name looked up on PATH or a path (relative to the document's directory).</param>
/// <param name="Module">The module, dotted (<c>kernels.scale</c>).</param>
/// <param name="Function">The function in the module (dotted for a class attribute).</param>
/// <param name="SearchPath">Directories put first on the module search path, absolute.</param>
/// <param name="Arguments">The function's parameters: the node's parameters but the settings above (and <c>rate_hz</c>).</param>
public sealed record PythonSettings(string Interpreter, string Module, string Function, ImmutableArray<string> SearchPath, JsonObject Arguments)
{
    /// <summary>The kernel kind.</summary>
    public const string KernelKind = "python.kernel";

    /// <summary>The source kind.</summary>
    public const string SourceKind = "python.source";

    /// <summary>The sink kind.</summary>
    public const string SinkKind = "python.sink";

    /// <summary>The interpreter when a node does not name one.</summary>
    public const string DefaultInterpreter = "python3";

    /// <summary>The parameters that configure the worker rather than the function.</summary>
    internal static readonly ImmutableArray<string> Reserved = ["module", "function", "path", "interpreter", "rate_hz"];

    private static readonly Regex DottedName = new(@"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$", RegexOptions.CultureInvariant);

    /// <summary>True for the kinds a Python worker runs.</summary>
    public static bool IsPythonKind(string kind) => kind is KernelKind or SourceKind or SinkKind;

    /// <summary>The settings of a validated node (the document's directory resolves relative paths).</summary>
    public static PythonSettings Of(NodeSpec node, string? baseDirectory)
    {
        ArgumentNullException.ThrowIfNull(node);
        var p = node.Parameters;
        var module = p.TryGetString("module", out var m) ? m : throw new InvalidOperationException($"{node.Kind} '{node.Name}' has no module");
        var function = p.TryGetString("function", out var f) ? f : throw new InvalidOperationException($"{node.Kind} '{node.Name}' has no function");
        var interpreter = p.TryGetString("interpreter", out var i) ? i : DefaultInterpreter;
        var arguments = new JsonObject();
        foreach (var name in p.Names.Where(n => !Reserved.Contains(n)))
        {
            arguments[name] = p.Get(name);
        }

        return new PythonSettings(ResolveInterpreter(interpreter, baseDirectory) ?? interpreter, module, function, [.. SearchPathOf(p.Get("path"), baseDirectory) ?? []], arguments);
    }

    /// <summary>Checks a node's settings, reporting each problem against its field.</summary>
    internal static void Validate(NodeContext context)
    {
        var node = context.Node;
        if (node.Placement == WorkerPlacement.Thread)
        {
            context.Error("placement", $"{node.Kind} runs in a Python worker process; 'placement: thread' is not possible (remove it or use 'process')");
        }

        var module = context.Text("module", required: true);
        var function = context.Text("function", required: true);
        var interpreter = context.Text("interpreter") ?? DefaultInterpreter;
        if (module is not null && !DottedName.IsMatch(module))
        {
            context.Error("parameters.module", $"'{module}' is not a module name (dotted Python identifiers, such as 'kernels.scale')");
            module = null;
        }

        if (function is not null && !DottedName.IsMatch(function))
        {
            context.Error("parameters.function", $"'{function}' is not a function name (a Python identifier)");
            function = null;
        }

        if (context.Parameters.Contains("interpreter") && interpreter.Length == 0)
        {
            context.Error("parameters.interpreter", "must not be empty");
        }
        else if (ResolveInterpreter(interpreter, context.BaseDirectory) is null)
        {
            context.Error("parameters.interpreter", interpreter.Contains('/')
                ? $"the interpreter '{interpreter}' is not an executable file{RelativeTo(interpreter, context.BaseDirectory)}"
                : $"the interpreter '{interpreter}' is not on PATH; install it or give its path");
        }

        var pathNode = context.Parameters.Get("path");
        var directories = SearchPathOf(pathNode, context.BaseDirectory);
        if (directories is null)
        {
            context.Error("parameters.path", $"must be a directory or a list of directories, not {pathNode?.ToJsonString() ?? "null"}");
            return;
        }

        for (var d = 0; d < directories.Count; d++)
        {
            if (!Directory.Exists(directories[d]))
            {
                context.Error(pathNode is JsonArray ? $"parameters.path[{d}]" : "parameters.path", $"the directory '{directories[d]}' does not exist");
            }
        }

        if (module is not null && function is not null && FindModule(module, directories) is { } file)
        {
            // Checkable where the module is a file on the search path (an installed module is checked when the worker starts).
            var name = function.Split('.')[0];
            if (!Regex.IsMatch(File.ReadAllText(file), $@"\b{Regex.Escape(name)}\b", RegexOptions.CultureInvariant))
            {
                context.Error("parameters.function", $"module '{module}' ({file}) does not define '{name}'");
            }
        }
    }

    /// <summary>The file of <paramref name="module"/> in one of <paramref name="directories"/>, or null.</summary>
    internal static string? FindModule(string module, IEnumerable<string> directories)
    {
        var relative = Path.Combine(module.Split('.'));
        foreach (var directory in directories)
        {
            foreach (var candidate in new[] { Path.Combine(directory, relative + ".py"), Path.Combine(directory, relative, "__init__.py") })
            {
                if (File.Exists(candidate))
                {
                    return candidate;
                }
            }
        }

        return null;
    }

    /// <summary>The interpreter's full path, or null if there is no such executable.</summary>
    internal static string? ResolveInterpreter(string interpreter, string? baseDirectory)
    {
        if (interpreter.Length == 0)
        {
            return null;
        }

        if (interpreter.Contains('/'))
        {
            var path = Path.GetFullPath(interpreter, baseDirectory ?? Directory.GetCurrentDirectory());
            return IsExecutable(path) ? path : null;
        }

        foreach (var directory in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var path = Path.Combine(directory, interpreter);
            if (IsExecutable(path))
            {
                return path;
            }
        }

        return null;
    }

    private static bool IsExecutable(string path) =>
        File.Exists(path) && (File.GetUnixFileMode(path) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0;

    /// <summary>The search path: the document's directory by default; a string or a list of strings, relative to it. Null if malformed.</summary>
    private static List<string>? SearchPathOf(JsonNode? node, string? baseDirectory)
    {
        var root = baseDirectory ?? Directory.GetCurrentDirectory();
        switch (node)
        {
            case null:
                return [Path.GetFullPath(root)];
            case JsonValue v when v.TryGetValue<string>(out var one):
                return [Path.GetFullPath(one, root)];
            case JsonArray list:
                var result = new List<string>();
                foreach (var item in list)
                {
                    if (item is not JsonValue iv || !iv.TryGetValue<string>(out var text))
                    {
                        return null;
                    }

                    result.Add(Path.GetFullPath(text, root));
                }

                return result;
            default:
                return null;
        }
    }

    private static string RelativeTo(string path, string? baseDirectory) =>
        Path.IsPathRooted(path) || baseDirectory is null ? "" : $" (relative to {baseDirectory})";
}

/// <summary>The settings every <c>python.*</c> kind declares.</summary>
internal static class PythonParameters
{
    public static readonly IReadOnlyList<ParameterInfo> Common =
    [
        new("module", "string", true, null, "the Python module, found on 'path' or installed (dotted, such as 'kernels.scale')"),
        new("function", "string", true, null, "the function in the module"),
        new("path", "string or list", false, ".", "directories put first on the module search path, relative to the document's directory"),
        new("interpreter", "string", false, PythonSettings.DefaultInterpreter, "the Python interpreter: a name on PATH or a path (it needs numpy)"),
    ];
}

/// <summary><c>python.kernel</c>: <c>function(inputs, outputs, parameters)</c> computes one frame in place.</summary>
public sealed class PythonKernelDefinition : KernelDefinition
{
    /// <inheritdoc />
    public override string Kind => PythonSettings.KernelKind;

    /// <inheritdoc />
    public override string Description => "runs function(inputs, outputs, parameters) of a Python module in a Python worker; inputs and outputs are numpy views of the stream slots";

    /// <inheritdoc />
    public override Arity Inputs => Arity.AtLeast(1);

    /// <inheritdoc />
    public override Arity Outputs => Arity.AtLeast(1);

    /// <inheritdoc />
    public override IReadOnlyList<ParameterInfo> Parameters => PythonParameters.Common;

    /// <inheritdoc />
    public override bool AcceptsUndeclaredParameters => true;

    /// <inheritdoc />
    public override void Validate(KernelContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        PythonSettings.Validate(context);
        if (context.Spec.Synchronization?.Mode == SynchronizationMode.MatchingFrameId)
        {
            context.Error("synchronization.mode", "python.kernel does not line frame ids up (matching_frame_id); use count");
        }
    }

    /// <inheritdoc />
    public override IKernel Create(KernelContext context) =>
        throw new InvalidOperationException($"{Kind} '{context?.Node.Name}' runs in a Python worker process, not in .NET");
}

/// <summary><c>python.source</c>: <c>function(outputs, parameters)</c> fills one frame of each stream (returning False skips it).</summary>
public sealed class PythonSourceDefinition : SourceDefinition
{
    /// <inheritdoc />
    public override string Kind => PythonSettings.SourceKind;

    /// <inheritdoc />
    public override string Description => "runs function(outputs, parameters) of a Python module in a Python worker, at rate_hz or as fast as its readers take frames";

    /// <inheritdoc />
    public override Arity Streams => Arity.AtLeast(1);

    /// <inheritdoc />
    public override IReadOnlyList<ParameterInfo> Parameters =>
        [.. PythonParameters.Common, new("rate_hz", "number", false, null, "frames per second (default: as fast as the readers take them)")];

    /// <inheritdoc />
    public override bool AcceptsUndeclaredParameters => true;

    /// <inheritdoc />
    public override void Validate(SourceContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        PythonSettings.Validate(context);
        context.Number("rate_hz", min: 0, minExclusive: true);
    }

    /// <inheritdoc />
    public override ISource Create(SourceContext context) =>
        throw new InvalidOperationException($"{Kind} '{context?.Node.Name}' runs in a Python worker process, not in .NET");
}

/// <summary><c>python.sink</c>: <c>function(inputs, parameters)</c> consumes one frame.</summary>
public sealed class PythonSinkDefinition : SinkDefinition
{
    /// <inheritdoc />
    public override string Kind => PythonSettings.SinkKind;

    /// <inheritdoc />
    public override string Description => "runs function(inputs, parameters) of a Python module in a Python worker for every frame of its stream";

    /// <inheritdoc />
    public override IReadOnlyList<ParameterInfo> Parameters => PythonParameters.Common;

    /// <inheritdoc />
    public override bool AcceptsUndeclaredParameters => true;

    /// <inheritdoc />
    public override void Validate(SinkContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        PythonSettings.Validate(context);
    }

    /// <inheritdoc />
    public override ISink Create(SinkContext context) =>
        throw new InvalidOperationException($"{Kind} '{context?.Node.Name}' runs in a Python worker process, not in .NET");
}
