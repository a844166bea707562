using System.Collections.Immutable;
using System.Text.Json.Nodes;
using Flowline.Graph;
using Flowline.Plugins;

namespace Flowline.Documents;

/// <summary>A pipeline whose document passed every check: its spec, its graph, and the kinds it uses.</summary>
/// <param name="Spec">The spec.</param>
/// <param name="Graph">Its graph.</param>
/// <param name="Kinds">The built-in kinds plus those of the document's plugins.</param>
public sealed record ValidatedPipeline(PipelineSpec Spec, PipelineGraph Graph, KindRegistry Kinds)
{
    /// <summary>Creates the runnable kernel of the kernel named <paramref name="name"/>.</summary>
    public Kernels.IKernel CreateKernel(string name)
    {
        var spec = Spec.Kernels.FirstOrDefault(k => k.Name == name) ?? throw new ArgumentException($"the pipeline has no kernel named '{name}'", nameof(name));
        return Kinds.Kernels[spec.Kind].Create(Kernels.KernelContext.For(Spec, spec));
    }

    /// <summary>Creates the runnable source of source <paramref name="name"/>.</summary>
    public Kernels.ISource CreateSource(string name)
    {
        var spec = Spec.Sources.FirstOrDefault(k => k.Name == name) ?? throw new ArgumentException($"the pipeline has no source named '{name}'", nameof(name));
        return Kinds.Sources[spec.Kind].Create(Kernels.SourceContext.For(Spec, spec));
    }

    /// <summary>Creates the runnable sink of sink <paramref name="name"/>.</summary>
    public Kernels.ISink CreateSink(string name)
    {
        var spec = Spec.Sinks.FirstOrDefault(k => k.Name == name) ?? throw new ArgumentException($"the pipeline has no sink named '{name}'", nameof(name));
        return Kinds.Sinks[spec.Kind].Create(Kernels.SinkContext.For(Spec, spec));
    }
}

/// <summary>The outcome of checking a document without throwing.</summary>
/// <param name="Pipeline">The validated pipeline, or null when there are errors.</param>
/// <param name="Errors">Every problem found, in document order; empty when valid.</param>
public sealed record DocumentCheck(ValidatedPipeline? Pipeline, IReadOnlyList<SpecError> Errors)
{
    /// <summary>True when the document is valid.</summary>
    public bool IsValid => Errors.Count == 0;

    /// <summary>True when the text is not well-formed YAML (nothing else was checked).</summary>
    public bool IsSyntaxError { get; init; }
}

/// <summary>
/// Reading, checking and writing pipeline documents: shmpipeline's YAML schema plus Flowline's
/// extensions. Every error of a document is reported at once, each with its path, file and line.
/// </summary>
public static class PipelineDocument
{
    /// <summary>Loads and validates a YAML file. Throws <see cref="DocumentValidationException"/> listing every problem.</summary>
    public static ValidatedPipeline Load(string path, KindRegistry? kinds = null) => Throw(CheckFile(path, kinds));

    /// <summary>Checks a YAML file without throwing.</summary>
    public static DocumentCheck CheckFile(string path, KindRegistry? kinds = null)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return new DocumentCheck(null, [new SpecError("", $"cannot read the document: {e.Message}", path, SourcePosition.None)]);
        }

        return Check(text, path, Path.GetDirectoryName(Path.GetFullPath(path)), kinds);
    }

    /// <summary>Parses and validates YAML text. Throws <see cref="DocumentValidationException"/> listing every problem.</summary>
    public static ValidatedPipeline Parse(string yaml, string? file = null, string? baseDirectory = null, KindRegistry? kinds = null) =>
        Throw(Check(yaml, file, baseDirectory, kinds));

    /// <summary>Checks YAML text without throwing.</summary>
    public static DocumentCheck Check(string yaml, string? file = null, string? baseDirectory = null, KindRegistry? kinds = null)
    {
        DocNode? root;
        try
        {
            root = DocNodes.ParseYaml(yaml, file);
        }
        catch (DocumentSyntaxException e)
        {
            return new DocumentCheck(null, e.Errors) { IsSyntaxError = true };
        }

        return Check(root, file, baseDirectory, kinds);
    }

    /// <summary>Validates a document given as JSON (an HTTP body). Throws <see cref="DocumentValidationException"/> listing every problem.</summary>
    public static ValidatedPipeline FromJson(JsonNode? json, string? baseDirectory = null, KindRegistry? kinds = null) =>
        Throw(Check(DocNodes.FromJson(json), null, baseDirectory, kinds));

    /// <summary>Checks a document given as JSON without throwing.</summary>
    public static DocumentCheck CheckJson(JsonNode? json, string? baseDirectory = null, KindRegistry? kinds = null) =>
        Check(DocNodes.FromJson(json), null, baseDirectory, kinds);

    /// <summary>Validates a spec built or edited in code (it goes through the same checks as a file).</summary>
    public static ValidatedPipeline Validate(PipelineSpec spec, KindRegistry? kinds = null) =>
        Throw(Check(DocNodes.FromJson(DocumentWriter.ToJson(spec)), spec.File, spec.BaseDirectory, kinds));

    /// <summary>The document as JSON with shmpipeline's keys.</summary>
    public static JsonObject ToJson(PipelineSpec spec) => DocumentWriter.ToJson(spec);

    /// <summary>The document as YAML.</summary>
    public static string ToYaml(PipelineSpec spec) => DocumentWriter.ToYaml(spec);

    /// <summary>Writes the document as YAML (atomically: a temporary file renamed over <paramref name="path"/>).</summary>
    public static void Save(PipelineSpec spec, string path)
    {
        var full = Path.GetFullPath(path);
        var temporary = full + ".tmp";
        File.WriteAllText(temporary, ToYaml(spec));
        File.Move(temporary, full, overwrite: true);
    }

    /// <summary>
    /// Checks the document part of a code-first pipeline (its streams), then adds its tasks and events,
    /// which documents do not carry.
    /// </summary>
    internal static DocumentCheck CheckWithTasks(JsonNode? json, string? baseDirectory, KindRegistry? kinds, IEnumerable<TaskSpec> tasks, IEnumerable<EventSpec> events)
    {
        var taskList = tasks.ToImmutableArray();
        var check = Check(DocNodes.FromJson(json), null, baseDirectory, kinds, allowNoNodes: !taskList.IsEmpty);
        if (check.Pipeline is not { } pipeline || (taskList.IsEmpty && !events.Any()))
        {
            return check;
        }

        var spec = pipeline.Spec with { Tasks = taskList, Events = [.. events] };
        return check with { Pipeline = pipeline with { Spec = spec, Graph = new PipelineGraph(spec) } };
    }

    private static DocumentCheck Check(DocNode? root, string? file, string? baseDirectory, KindRegistry? kinds, bool allowNoNodes = false)
    {
        var binder = new DocumentBinder(file) { AllowNoNodes = allowNoNodes };
        var spec = binder.Bind(root) with { BaseDirectory = baseDirectory };
        var errors = new List<SpecError>(binder.Errors);
        var registry = kinds ?? KindRegistry.BuiltIn;
        for (var i = 0; i < spec.Plugins.Length; i++)
        {
            try
            {
                registry = PluginLoader.Extend(registry, [spec.Plugins[i]], baseDirectory);
            }
            catch (Exception e) when (e is PluginLoadException or InvalidOperationException)
            {
                var path = $"plugins[{i}]";
                errors.Add(new SpecError(path, e.Message, file, binder.Positions.TryGetValue(path, out var p) ? p : SourcePosition.None));
            }
        }

        errors.AddRange(new PipelineValidator(spec, registry, binder.Positions, binder.BrokenStreams, binder.Paths).Validate());
        if (errors.Count > 0)
        {
            var ordered = errors.OrderBy(e => e.Position.IsKnown ? e.Position.Line : int.MaxValue).ThenBy(e => e.Position.Column).ToList();
            return new DocumentCheck(null, ordered);
        }

        return new DocumentCheck(new ValidatedPipeline(spec, new PipelineGraph(spec), registry), []);
    }

    private static ValidatedPipeline Throw(DocumentCheck check) =>
        check.Pipeline ?? throw (check.IsSyntaxError ? new DocumentSyntaxException(check.Errors[0]) : new DocumentValidationException(check.Errors));
}
