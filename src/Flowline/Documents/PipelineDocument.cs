using System.Collections.Immutable;
using System.Text;
using System.Text.Json.Nodes;
using Flowline.Graph;
using Flowline.Plugins;
using Flowline.SharedMemory;

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
/// <param name="Errors">
/// The problems found, in document order: all of them, or the first <see cref="DocumentLimits.MaxErrors"/>
/// when there are more (<see cref="TotalErrors"/> counts them all); empty when valid.
/// </param>
public sealed record DocumentCheck(ValidatedPipeline? Pipeline, IReadOnlyList<SpecError> Errors)
{
    /// <summary>True when the document is valid.</summary>
    public bool IsValid => Errors.Count == 0;

    /// <summary>How many problems were found: <see cref="Errors"/> holds the first of them, at most <see cref="DocumentLimits.MaxErrors"/>.</summary>
    public int TotalErrors { get; init; } = Errors.Count;

    /// <summary>True when the text is not well-formed YAML (nothing else was checked).</summary>
    public bool IsSyntaxError { get; init; }

    /// <summary>
    /// True when the document is beyond one of <see cref="DocumentLimits"/> (too large, too many streams or
    /// nodes, too deep...): it was refused before the rest was read, and its one error names the bound.
    /// </summary>
    public bool IsBeyondLimits { get; init; }
}

/// <summary>
/// Reading, checking and writing pipeline documents: shmpipeline's YAML schema plus Flowline's
/// extensions. Every error of a document is reported at once (up to <see cref="DocumentLimits.MaxErrors"/>),
/// each with its path, file and line. Documents beyond <see cref="DocumentLimits"/> are refused early.
/// </summary>
public static class PipelineDocument
{
    /// <summary>Loads and validates a YAML file. Throws <see cref="DocumentValidationException"/> listing every problem.</summary>
    public static ValidatedPipeline Load(string path, KindRegistry? kinds = null) => Throw(CheckFile(path, kinds));

    /// <summary>Checks a YAML file without throwing; a file larger than <see cref="DocumentLimits.MaxBytes"/> is refused unread.</summary>
    public static DocumentCheck CheckFile(string path, KindRegistry? kinds = null)
    {
        string text;
        try
        {
            text = ReadBounded(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return new DocumentCheck(null, [new SpecError("", $"cannot read the document: {e.Message}", path, SourcePosition.None)]);
        }
        catch (DocumentLimitException e)
        {
            return new DocumentCheck(null, [e.Error with { File = path }]) { IsBeyondLimits = true };
        }

        return Check(text, path, Path.GetDirectoryName(Path.GetFullPath(path)), kinds);
    }

    /// <summary>Parses and validates YAML text. Throws <see cref="DocumentValidationException"/> listing every problem.</summary>
    public static ValidatedPipeline Parse(string yaml, string? file = null, string? baseDirectory = null, KindRegistry? kinds = null) =>
        Throw(Check(yaml, file, baseDirectory, kinds));

    /// <summary>Checks YAML text without throwing.</summary>
    public static DocumentCheck Check(string yaml, string? file = null, string? baseDirectory = null, KindRegistry? kinds = null)
    {
        ArgumentNullException.ThrowIfNull(yaml);

        // Characters are at most as many as UTF-8 bytes: the bytes are counted only below the limit.
        if (yaml.Length > DocumentLimits.MaxBytes)
        {
            return TooLarge($"{yaml.Length:N0} characters", file);
        }

        if (Encoding.UTF8.GetByteCount(yaml) is var bytes && bytes > DocumentLimits.MaxBytes)
        {
            return TooLarge($"{bytes:N0} bytes", file);
        }

        DocNode? root;
        try
        {
            root = DocNodes.ParseYaml(yaml, file);
        }
        catch (DocumentSyntaxException e)
        {
            return new DocumentCheck(null, e.Errors) { IsSyntaxError = true };
        }
        catch (DocumentLimitException e)
        {
            return new DocumentCheck(null, [e.Error]) { IsBeyondLimits = true };
        }

        return Check(root, file, baseDirectory, kinds, checkCapacity: true);
    }

    /// <summary>Validates a document given as JSON (an HTTP body). Throws <see cref="DocumentValidationException"/> listing every problem.</summary>
    public static ValidatedPipeline FromJson(JsonNode? json, string? baseDirectory = null, KindRegistry? kinds = null) => Throw(CheckJson(json, baseDirectory, kinds));

    /// <summary>Checks a document given as JSON without throwing.</summary>
    public static DocumentCheck CheckJson(JsonNode? json, string? baseDirectory = null, KindRegistry? kinds = null) =>
        CheckJson(json, null, baseDirectory, kinds, allowNoNodes: false, checkCapacity: true);

    /// <summary>Validates a spec built or edited in code (it goes through the same checks as a file).</summary>
    public static ValidatedPipeline Validate(PipelineSpec spec, KindRegistry? kinds = null) =>
        Throw(CheckJson(DocumentWriter.ToJson(spec), spec.File, spec.BaseDirectory, kinds, allowNoNodes: false, checkCapacity: true));

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
    /// which documents do not carry. The runtime checks its pipeline again with this at every build and in
    /// every worker, when its streams may already exist: the capacity of <c>/dev/shm</c> is not checked.
    /// </summary>
    internal static DocumentCheck CheckWithTasks(JsonNode? json, string? baseDirectory, KindRegistry? kinds, IEnumerable<TaskSpec> tasks, IEnumerable<EventSpec> events)
    {
        var taskList = tasks.ToImmutableArray();
        var check = CheckJson(json, null, baseDirectory, kinds, allowNoNodes: !taskList.IsEmpty, checkCapacity: false);
        if (check.Pipeline is not { } pipeline || (taskList.IsEmpty && !events.Any()))
        {
            return check;
        }

        var spec = pipeline.Spec with { Tasks = taskList, Events = [.. events] };
        return check with { Pipeline = pipeline with { Spec = spec, Graph = new PipelineGraph(spec) } };
    }

    /// <summary>
    /// The document of one node, as its manager sends it to the node's worker process: the node alone
    /// (its kind, settings, placement), the streams it reads and writes (names, formats, namespaces,
    /// delivery, wait; not their initial values, which the manager writes at build) and, for a task, the
    /// events it uses. No plugin list: the worker loads the assembly of its kind itself.
    /// </summary>
    internal static (JsonObject Document, JsonArray? Tasks, JsonArray? Events) NodeDocument(ValidatedPipeline pipeline, NodeSpec node)
    {
        var spec = pipeline.Spec;
        var streams = pipeline.Graph.Edges.Where(e => e.Source == node.Name || e.Target == node.Name).Select(e => e.Stream).ToHashSet(StringComparer.Ordinal);
        var task = node as TaskSpec;
        var events = task is null ? [] : spec.Events.Where(e => task.Events.ContainsValue(e.Name)).ToImmutableArray();

        // The worker sees its node alone: the spin budget that the whole pipeline's workers share is resolved here.
        var workers = spec.Kernels.Length + spec.Sources.Length + spec.Sinks.Length + spec.Tasks.Length;
        var shared = workers > Environment.ProcessorCount;
        var alone = spec with
        {
            Streams =
            [
                .. spec.Streams.Where(s => streams.Contains(s.Name)).Select(s => s with
                {
                    Initial = null,
                    SpinBudget = shared
                        ? WaitTuning.SharedSpinBudget(s.SpinBudget ?? spec.SpinBudget ?? WaitTuning.DefaultSpinBudget, workers, Environment.ProcessorCount)
                        : s.SpinBudget,
                }),
            ],
            Kernels = [.. spec.Kernels.Where(k => k.Name == node.Name)],
            Sources = [.. spec.Sources.Where(s => s.Name == node.Name)],
            Sinks = [.. spec.Sinks.Where(s => s.Name == node.Name)],
            Tasks = [],
            Events = [],
            Plugins = [],
        };
        return (
            DocumentWriter.ToJson(alone),
            task is null ? null : [task.ToJson()],
            events.IsEmpty ? null : [.. events.Select(e => (JsonNode)e.ToJson())]);
    }

    /// <summary>
    /// Reads a document written by <see cref="NodeDocument"/> into a pipeline of that one node. Its manager
    /// checked the whole pipeline, so the pipeline's checks (parameters, references, the graph) are not run
    /// again: only a document that does not bind (a manifest from another version) or a node whose kind
    /// <paramref name="kinds"/> lacks (its assembly was not given) is an error.
    /// </summary>
    internal static ValidatedPipeline BindNode(JsonNode? json, string? baseDirectory, KindRegistry kinds, IEnumerable<TaskSpec> tasks, IEnumerable<EventSpec> events)
    {
        var taskList = tasks.ToImmutableArray();
        var errors = new ErrorCollector();
        var binder = new DocumentBinder(null, errors) { AllowNoNodes = !taskList.IsEmpty };
        var spec = binder.Bind(DocNodes.FromJson(json)) with { BaseDirectory = baseDirectory, Tasks = taskList, Events = [.. events] };
        if (errors.Count > 0)
        {
            throw new DocumentValidationException(errors.InOrder(), errors.Count);
        }

        var unknown = spec.Kernels.Where(k => !kinds.Kernels.ContainsKey(k.Kind)).Select(k => (NodeSpec)k)
            .Concat(spec.Sources.Where(s => !kinds.Sources.ContainsKey(s.Kind)))
            .Concat(spec.Sinks.Where(s => !kinds.Sinks.ContainsKey(s.Kind)))
            .FirstOrDefault();
        if (unknown is not null)
        {
            throw new InvalidOperationException($"'{unknown.Name}' is of kind '{unknown.Kind}', which is not built in and which no assembly given to the worker defines");
        }

        return new ValidatedPipeline(spec, new PipelineGraph(spec), kinds);
    }

    /// <summary>
    /// Reads at most <see cref="DocumentLimits.MaxBytes"/> of a file, whatever it is (a file that grows, a pipe,
    /// a device); throws <see cref="DocumentLimitException"/> beyond.
    /// </summary>
    private static string ReadBounded(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 0);
        if (stream.CanSeek && stream.Length > DocumentLimits.MaxBytes)
        {
            throw TooLargeFile($"is {stream.Length:N0} bytes, ");
        }

        using var bytes = new MemoryStream();
        var buffer = new byte[64 * 1024];
        int read;
        while ((read = stream.Read(buffer)) > 0)
        {
            if (bytes.Length + read > DocumentLimits.MaxBytes)
            {
                throw TooLargeFile("is ");
            }

            bytes.Write(buffer, 0, read);
        }

        bytes.Position = 0;
        using var reader = new StreamReader(bytes, Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
        return reader.ReadToEnd();
    }

    private static DocumentLimitException TooLargeFile(string size) =>
        new(new SpecError("", $"the file {size}larger than {DocumentLimits.MaxBytes:N0} bytes, the largest document accepted", null, SourcePosition.None));

    private static DocumentCheck TooLarge(string size, string? file) =>
        new(null, [new SpecError("", $"the document is {size}, larger than {DocumentLimits.MaxBytes:N0} bytes, the largest accepted", file, SourcePosition.None)]) { IsBeyondLimits = true };

    private static DocumentCheck CheckJson(JsonNode? json, string? file, string? baseDirectory, KindRegistry? kinds, bool allowNoNodes, bool checkCapacity)
    {
        DocNode root;
        try
        {
            root = DocNodes.FromJson(json);
        }
        catch (DocumentLimitException e)
        {
            return new DocumentCheck(null, [e.Error with { File = file }]) { IsBeyondLimits = true };
        }

        return Check(root, file, baseDirectory, kinds, checkCapacity, allowNoNodes);
    }

    private static DocumentCheck Check(DocNode? root, string? file, string? baseDirectory, KindRegistry? kinds, bool checkCapacity, bool allowNoNodes = false)
    {
        var errors = new ErrorCollector();
        var binder = new DocumentBinder(file, errors) { AllowNoNodes = allowNoNodes };
        var spec = binder.Bind(root) with { BaseDirectory = baseDirectory };
        if (binder.OverLimits)
        {
            return Failed(errors) with { IsBeyondLimits = true };
        }

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

        new PipelineValidator(spec, registry, errors, binder.Positions, binder.BrokenStreams, binder.Paths).Validate();
        var pipeline = new ValidatedPipeline(spec, new PipelineGraph(spec), registry);
        if (checkCapacity && SharedMemoryCapacity.AvailableBytes() is { } available &&
            SharedMemoryCapacity.Problem(SharedMemoryCapacity.NeededBytes(pipeline), available) is { } problem)
        {
            errors.Add(new SpecError("shared_memory", problem, file, binder.Positions.TryGetValue("shared_memory", out var at) ? at : SourcePosition.None));
        }

        return errors.Count > 0 ? Failed(errors) : new DocumentCheck(pipeline, []);
    }

    private static DocumentCheck Failed(ErrorCollector errors) => new(null, errors.InOrder()) { TotalErrors = errors.Count };

    private static ValidatedPipeline Throw(DocumentCheck check) =>
        check.Pipeline ?? throw (check.IsSyntaxError ? new DocumentSyntaxException(check.Errors[0]) : new DocumentValidationException(check.Errors, check.TotalErrors));
}
