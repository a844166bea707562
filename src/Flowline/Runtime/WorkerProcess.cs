using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Flowline.Documents;
using Flowline.Plugins;
using Flowline.SharedMemory;
using Flowline.SharedMemory.Liveness;

namespace Flowline.Runtime;

/// <summary>
/// What a worker process is told on its standard input: the plan of its own node, not the pipeline's.
/// The node's document (the node, its settings, the streams it reads and writes with their formats;
/// <see cref="PipelineDocument.NodeDocument"/>), where the streams and its control block are, its CPU, who
/// its parent is, and the assembly that defines its kind when that kind is not built in. The worker does
/// not check the pipeline again: its manager did.
/// </summary>
public sealed record WorkerManifest
{
    /// <summary>The document of the node alone, as JSON.</summary>
    public required JsonObject Document { get; init; }

    /// <summary>The directory relative paths of the node's settings are resolved against.</summary>
    public string? BaseDirectory { get; init; }

    /// <summary>Assemblies to load kinds from: the one defining the node's kind, when it is not built in.</summary>
    public IReadOnlyList<string> Assemblies { get; init; } = [];

    /// <summary>The task of a code-first pipeline (<see cref="TaskSpec.ToJson"/>), which documents do not carry.</summary>
    public JsonArray? Tasks { get; init; }

    /// <summary>The events the task uses (<see cref="EventSpec.ToJson"/>).</summary>
    public JsonArray? Events { get; init; }

    /// <summary>The namespace of the streams.</summary>
    public required string Namespace { get; init; }

    /// <summary>The worker's node name.</summary>
    public required string Node { get; init; }

    /// <summary>The CPU the worker pins itself to, or null.</summary>
    public int? Cpu { get; init; }

    /// <summary>The namespace of the control blocks.</summary>
    public required string ControlNamespace { get; init; }

    /// <summary>The worker's control block.</summary>
    public required string ControlName { get; init; }

    /// <summary>The manager's process id: the worker exits when it dies.</summary>
    public required int ParentPid { get; init; }

    /// <summary>The manifest of <paramref name="worker"/> of <paramref name="plan"/>.</summary>
    public static WorkerManifest For(PipelinePlan plan, WorkerPlan worker)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(worker);
        var (document, tasks, events) = PipelineDocument.NodeDocument(plan.Pipeline, worker.Node);
        return new WorkerManifest
        {
            Document = document,
            Tasks = tasks,
            Events = events,
            BaseDirectory = plan.Pipeline.Spec.BaseDirectory,
            Assemblies = KindAssembly(plan.Pipeline, worker.Node) is { } assembly ? [assembly] : [],
            Namespace = plan.Namespace,
            Node = worker.Name,
            Cpu = worker.Cpu,
            ControlNamespace = plan.ControlNamespace,
            ControlName = worker.ControlName,
            ParentPid = Environment.ProcessId,
        };
    }

    /// <summary>
    /// The assembly a worker process loads for <paramref name="node"/>'s kind: the document plugin that
    /// defines it, or the assembly of a kind registered in code; null for a built-in kind (or a task).
    /// </summary>
    private static string? KindAssembly(ValidatedPipeline pipeline, NodeSpec node)
    {
        var kinds = pipeline.Kinds;
        if (node is TaskSpec || kinds.Origins.GetValueOrDefault(node.Kind) is not { } origin || origin == KindRegistry.BuiltInOrigin)
        {
            return null;
        }

        var documentPlugin = pipeline.Spec.Plugins
            .Select(p => Path.GetFullPath(Path.Combine(pipeline.Spec.BaseDirectory ?? Environment.CurrentDirectory, p)))
            .Any(p => p == origin);
        if (documentPlugin)
        {
            return origin;
        }

        var definition = (object?)kinds.Kernels.GetValueOrDefault(node.Kind) ?? (object?)kinds.Sources.GetValueOrDefault(node.Kind) ?? kinds.Sinks.GetValueOrDefault(node.Kind);
        var assembly = definition?.GetType().Assembly;
        return assembly is null || assembly == typeof(WorkerManifest).Assembly || string.IsNullOrEmpty(assembly.Location) ? null : assembly.Location;
    }

    internal static JsonSerializerOptions Json { get; } = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };

    /// <summary>As one line of JSON.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>Reads a manifest written by <see cref="ToJson"/>.</summary>
    public static WorkerManifest Parse(string json) =>
        JsonSerializer.Deserialize<WorkerManifest>(json, Json) ?? throw new JsonException("the manifest is null");
}

/// <summary>The entry point of a worker process (<c>Flowline.Worker</c>): reads its manifest and runs its worker.</summary>
public static class WorkerProcess
{
    /// <summary>Reads a manifest from <paramref name="input"/> and runs the worker; returns the process's exit code.</summary>
    public static int Run(TextReader input)
    {
        ArgumentNullException.ThrowIfNull(input);

        // A worker's life belongs to its manager (commands, then SIGKILL) and ends with it (ParentWatch):
        // Ctrl-C in a terminal, which signals the whole process group, or a group-wide SIGTERM must not end
        // it behind the manager's back, which would be recorded as a failure.
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => c.Cancel = true);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => c.Cancel = true);
        using var sigquit = PosixSignalRegistration.Create(PosixSignal.SIGQUIT, c => c.Cancel = true);
        WorkerManifest manifest;
        ControlBlock control;
        try
        {
            manifest = WorkerManifest.Parse(input.ReadToEnd());
            ParentWatch.ExitWhenParentDies(manifest.ParentPid);
            control = ControlBlock.Attach(manifest.ControlNamespace, manifest.ControlName);
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"flowline worker: cannot start: {e.Message}");
            return WorkerHost.UnusableExitCode;
        }

        using (control)
        {
            PipelinePlan plan;
            WorkerPlan worker;
            try
            {
                var kinds = KindRegistry.BuiltIn;
                foreach (var path in manifest.Assemblies)
                {
                    kinds = kinds.With(PluginLoader.Load(path).Where(d => !kinds.Origins.ContainsKey(d.Kind)), path);
                }

                var pipeline = PipelineDocument.BindNode(
                    manifest.Document,
                    manifest.BaseDirectory,
                    kinds,
                    (manifest.Tasks ?? []).Select(t => TaskSpec.FromJson(t!.AsObject())),
                    (manifest.Events ?? []).Select(e => EventSpec.FromJson(e!.AsObject())));
                plan = new PipelinePlan(pipeline, PlacementPolicy.None, manifest.Namespace);
                worker = plan.Workers.SingleOrDefault(w => w.Name == manifest.Node)
                    ?? throw new InvalidOperationException($"the manifest does not describe node '{manifest.Node}'");
                worker = worker with { Cpu = manifest.Cpu, ControlName = manifest.ControlName };
            }
            catch (Exception e)
            {
                return WorkerHost.Fail(control, WorkerError.From(e));
            }

            return WorkerHost.Run(plan, worker, control);
        }
    }
}
