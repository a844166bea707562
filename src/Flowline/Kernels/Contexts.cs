using System.Globalization;
using Flowline.Documents;
using Flowline.SharedMemory;

namespace Flowline.Kernels;

/// <summary>
/// What a kind sees of one node, to validate it or to create it: the node's spec, its streams, and
/// typed access to its parameters that reports problems with the field's path and line.
/// </summary>
public abstract class NodeContext
{
    private readonly Action<string, string>? report;

    private protected NodeContext(NodeSpec node, IReadOnlyList<(AuxiliaryBinding Binding, StreamSpec Stream)> auxiliary, Action<string, string>? report)
    {
        Node = node;
        Auxiliary = auxiliary;
        this.report = report;
    }

    /// <summary>The node's spec.</summary>
    public NodeSpec Node { get; }

    /// <summary>The node's parameters.</summary>
    public Parameters Parameters => Node.Parameters;

    /// <summary>The document's directory (relative paths of the node resolve against it), or null for a document without a file.</summary>
    public string? BaseDirectory { get; init; }

    /// <summary>The auxiliary inputs, in binding order.</summary>
    public IReadOnlyList<(AuxiliaryBinding Binding, StreamSpec Stream)> Auxiliary { get; }

    /// <summary>True once a problem has been reported.</summary>
    public bool HasErrors { get; private set; }

    /// <summary>
    /// Reports a problem with <paramref name="field"/> (relative to the node, such as <c>parameters.factor</c>
    /// or <c>output</c>). When creating rather than validating, a problem is a bug and throws.
    /// </summary>
    public void Error(string field, string message)
    {
        HasErrors = true;
        if (report is null)
        {
            throw new InvalidOperationException($"{Node.Kind} '{Node.Name}': {field}: {message}");
        }

        report(field, message);
    }

    /// <summary>The auxiliary stream bound to <paramref name="alias"/>, or null.</summary>
    public StreamSpec? AuxiliaryStream(string alias) => Auxiliary.FirstOrDefault(a => a.Binding.Alias == alias).Stream;

    /// <summary>The index of the auxiliary input bound to <paramref name="alias"/>, or -1.</summary>
    public int AuxiliaryIndex(string alias)
    {
        for (var i = 0; i < Auxiliary.Count; i++)
        {
            if (Auxiliary[i].Binding.Alias == alias)
            {
                return i;
            }
        }

        return -1;
    }

    /// <summary>A number parameter; reports a missing required one, a non-number, or one out of range.</summary>
    public double? Number(string name, double? defaultValue = null, bool required = false, double? min = null, bool minExclusive = false, double? max = null)
    {
        if (!Parameters.Contains(name))
        {
            if (required)
            {
                Error($"parameters.{name}", $"missing required parameter '{name}' (a number)");
            }

            return defaultValue;
        }

        if (!Parameters.TryGetDouble(name, out var value))
        {
            Error($"parameters.{name}", $"must be a number, not {Parameters.Get(name)?.ToJsonString() ?? "null"}");
            return defaultValue;
        }

        if (double.IsNaN(value) || (min is { } lo && (minExclusive ? value <= lo : value < lo)) || (max is { } hi && value > hi))
        {
            var range = (min, max) switch
            {
                ({ } a, { } b) => $"from {Fmt(a)} to {Fmt(b)}",
                ({ } a, null) => minExclusive ? $"greater than {Fmt(a)}" : $"at least {Fmt(a)}",
                (null, { } b) => $"at most {Fmt(b)}",
                _ => "a number",
            };
            Error($"parameters.{name}", $"{Fmt(value)} is out of range; it must be {range}");
            return defaultValue;
        }

        return value;
    }

    /// <summary>An integer parameter.</summary>
    public long? Integer(string name, long? defaultValue = null, bool required = false, long? min = null, long? max = null)
    {
        if (!Parameters.Contains(name))
        {
            if (required)
            {
                Error($"parameters.{name}", $"missing required parameter '{name}' (an integer)");
            }

            return defaultValue;
        }

        if (!Parameters.TryGetLong(name, out var value))
        {
            Error($"parameters.{name}", $"must be an integer, not {Parameters.Get(name)?.ToJsonString() ?? "null"}");
            return defaultValue;
        }

        if ((min is { } lo && value < lo) || (max is { } hi && value > hi))
        {
            Error($"parameters.{name}", $"{value} is out of range; it must be {(min, max) switch { ({ } a, { } b) => $"from {a} to {b}", ({ } a, null) => $"at least {a}", (null, { } b) => $"at most {b}", _ => "an integer" }}");
            return defaultValue;
        }

        return value;
    }

    /// <summary>A parameter that is one of <paramref name="choices"/>.</summary>
    public string? Choice(string name, IReadOnlyList<string> choices, string? defaultValue = null, bool required = false)
    {
        if (!Parameters.Contains(name))
        {
            if (required)
            {
                Error($"parameters.{name}", $"missing required parameter '{name}' (one of {string.Join(", ", choices)})");
            }

            return defaultValue;
        }

        if (!Parameters.TryGetString(name, out var value) || !choices.Contains(value))
        {
            Error($"parameters.{name}", $"must be one of {string.Join(", ", choices)}, not {Parameters.Get(name)?.ToJsonString() ?? "null"}");
            return defaultValue;
        }

        return value;
    }

    /// <summary>A text parameter.</summary>
    public string? Text(string name, bool required = false)
    {
        if (!Parameters.Contains(name))
        {
            if (required)
            {
                Error($"parameters.{name}", $"missing required parameter '{name}' (a string)");
            }

            return null;
        }

        if (!Parameters.TryGetString(name, out var value))
        {
            Error($"parameters.{name}", $"must be a string, not {Parameters.Get(name)?.ToJsonString() ?? "null"}");
            return null;
        }

        return value;
    }

    /// <summary>A boolean parameter.</summary>
    public bool? Boolean(string name, bool? defaultValue = null)
    {
        if (!Parameters.Contains(name))
        {
            return defaultValue;
        }

        if (!Parameters.TryGetBool(name, out var value))
        {
            Error($"parameters.{name}", $"must be true or false, not {Parameters.Get(name)?.ToJsonString() ?? "null"}");
            return defaultValue;
        }

        return value;
    }

    /// <summary>Reports unless <paramref name="actual"/> has the shape and element type of <paramref name="expected"/>.</summary>
    public bool RequireSameFormat(StreamSpec actual, StreamSpec expected, string field, string what)
    {
        if (actual.Dtype == expected.Dtype && actual.Shape.SequenceEqual(expected.Shape))
        {
            return true;
        }

        Error(field, $"{what} '{actual.Name}' is {Describe(actual)}; it must match '{expected.Name}' ({Describe(expected)})");
        return false;
    }

    /// <summary>Reports unless <paramref name="stream"/>'s element type is one of <paramref name="allowed"/>.</summary>
    public bool RequireDtype(StreamSpec stream, string field, params ElementType[] allowed)
    {
        if (allowed.Contains(stream.Dtype))
        {
            return true;
        }

        Error(field, $"stream '{stream.Name}' is {stream.Dtype.ToName()}; {Node.Kind} works on {string.Join(", ", allowed.Select(t => t.ToName()))}");
        return false;
    }

    /// <summary>The stream <paramref name="node"/> names <paramref name="name"/>; throws if the pipeline does not declare it.</summary>
    private protected static StreamSpec Lookup(PipelineSpec pipeline, NodeSpec node, string name) =>
        pipeline.FindStream(name) ?? throw new ArgumentException($"{node.Kind} '{node.Name}' names stream '{name}', which the pipeline does not declare");

    /// <summary>Describes a stream's format: <c>float32[120, 120]</c>.</summary>
    public static string Describe(StreamSpec stream) => $"{stream.Dtype.ToName()}[{string.Join(", ", stream.Shape)}]";

    private static string Fmt(double value) => value.ToString("G", CultureInfo.InvariantCulture);
}

/// <summary>A kernel's view of its node: trigger inputs, auxiliary inputs and outputs with their streams.</summary>
public sealed class KernelContext : NodeContext
{
    /// <summary>Creates a context; <paramref name="report"/> receives problems (null when creating: problems throw).</summary>
    public KernelContext(
        KernelSpec spec,
        IReadOnlyList<StreamSpec> inputs,
        IReadOnlyList<(AuxiliaryBinding Binding, StreamSpec Stream)> auxiliary,
        IReadOnlyList<StreamSpec> outputs,
        Action<string, string>? report = null)
        : base(spec, auxiliary, report)
    {
        Spec = spec;
        Inputs = inputs;
        Outputs = outputs;
    }

    /// <summary>The context of kernel <paramref name="spec"/> of <paramref name="pipeline"/>: its streams looked up by name.</summary>
    public static KernelContext For(PipelineSpec pipeline, KernelSpec spec, Action<string, string>? report = null)
    {
        ArgumentNullException.ThrowIfNull(pipeline);
        ArgumentNullException.ThrowIfNull(spec);
        StreamSpec Stream(string name) => Lookup(pipeline, spec, name);
        return new KernelContext(
            spec,
            [.. spec.Inputs.Select(Stream)],
            [.. spec.Auxiliary.Select(a => (a, Stream(a.Stream)))],
            [.. spec.Outputs.Select(Stream)],
            report);
    }

    /// <summary>The kernel's spec.</summary>
    public KernelSpec Spec { get; }

    /// <summary>The trigger inputs' streams, in order.</summary>
    public IReadOnlyList<StreamSpec> Inputs { get; }

    /// <summary>The outputs' streams, in order.</summary>
    public IReadOnlyList<StreamSpec> Outputs { get; }

    /// <summary>The document field naming output <paramref name="index"/>.</summary>
    public string OutputField(int index = 0) => Spec.OutputsAsList ? $"outputs[{index}]" : "output";

    /// <summary>The document field naming input <paramref name="index"/>.</summary>
    public string InputField(int index = 0) => Spec.InputsAsList ? $"inputs[{index}]" : "input";

    /// <summary>The document field naming the auxiliary input <paramref name="alias"/>.</summary>
    public string AuxiliaryField(string alias)
    {
        if (Spec.AuxiliaryAsMapping)
        {
            return $"auxiliary.{alias}";
        }

        var index = AuxiliaryIndex(alias);
        return index >= 0 ? $"auxiliary[{index}]" : "auxiliary";
    }
}

/// <summary>A source's view of its node.</summary>
public sealed class SourceContext : NodeContext
{
    /// <summary>Creates a context; <paramref name="report"/> receives problems (null when creating: problems throw).</summary>
    public SourceContext(SourceSpec spec, IReadOnlyList<StreamSpec> streams, IReadOnlyList<(AuxiliaryBinding Binding, StreamSpec Stream)> auxiliary, Action<string, string>? report = null)
        : base(spec, auxiliary, report)
    {
        Spec = spec;
        Streams = streams;
    }

    /// <summary>The context of source <paramref name="spec"/> of <paramref name="pipeline"/>: its streams looked up by name.</summary>
    public static SourceContext For(PipelineSpec pipeline, SourceSpec spec)
    {
        ArgumentNullException.ThrowIfNull(pipeline);
        ArgumentNullException.ThrowIfNull(spec);
        return new SourceContext(spec, [.. spec.Streams.Select(n => Lookup(pipeline, spec, n))], [.. spec.Auxiliary.Select(a => (a, Lookup(pipeline, spec, a.Stream)))]);
    }

    /// <summary>The source's spec.</summary>
    public SourceSpec Spec { get; }

    /// <summary>The streams it writes, in order.</summary>
    public IReadOnlyList<StreamSpec> Streams { get; }
}

/// <summary>A sink's view of its node.</summary>
public sealed class SinkContext : NodeContext
{
    /// <summary>Creates a context; <paramref name="report"/> receives problems (null when creating: problems throw).</summary>
    public SinkContext(SinkSpec spec, StreamSpec stream, IReadOnlyList<StreamSpec> outputs, IReadOnlyList<(AuxiliaryBinding Binding, StreamSpec Stream)> auxiliary, Action<string, string>? report = null)
        : base(spec, auxiliary, report)
    {
        Spec = spec;
        Stream = stream;
        Outputs = outputs;
    }

    /// <summary>The context of sink <paramref name="spec"/> of <paramref name="pipeline"/>: its streams looked up by name.</summary>
    public static SinkContext For(PipelineSpec pipeline, SinkSpec spec)
    {
        ArgumentNullException.ThrowIfNull(pipeline);
        ArgumentNullException.ThrowIfNull(spec);
        return new SinkContext(
            spec,
            Lookup(pipeline, spec, spec.Stream),
            [.. spec.Outputs.Select(n => Lookup(pipeline, spec, n))],
            [.. spec.Auxiliary.Select(a => (a, Lookup(pipeline, spec, a.Stream)))]);
    }

    /// <summary>The sink's spec.</summary>
    public SinkSpec Spec { get; }

    /// <summary>The stream it consumes.</summary>
    public StreamSpec Stream { get; }

    /// <summary>Its feedback outputs, in order.</summary>
    public IReadOnlyList<StreamSpec> Outputs { get; }
}
