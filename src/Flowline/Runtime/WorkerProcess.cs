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
/// What a worker process is told on its standard input: the document, which worker it is, where the
/// streams and its control block are, who its parent is, and the assemblies that define kinds the
/// document's own plugins do not (kinds a program registered in code).
/// </summary>
public sealed record WorkerManifest
{
    /// <summary>The pipeline document, as JSON.</summary>
    public required JsonObject Document { get; init; }

    /// <summary>The directory relative plugin paths are resolved against.</summary>
    public string? BaseDirectory { get; init; }

    /// <summary>Assemblies to load kinds from before validating the document.</summary>
    public IReadOnlyList<string> Assemblies { get; init; } = [];

    /// <summary>The tasks of a code-first pipeline (<see cref="TaskSpec.ToJson"/>), which documents do not carry.</summary>
    public JsonArray? Tasks { get; init; }

    /// <summary>The events of a code-first pipeline (<see cref="EventSpec.ToJson"/>).</summary>
    public JsonArray? Events { get; init; }

    /// <summary>The namespace of the streams.</summary>
    public required string Namespace { get; init; }

    /// <summary>The placement policy the plan was made with.</summary>
    public PlacementPolicy Placement { get; init; }

    /// <summary>The worker's index in the plan.</summary>
    public required int Worker { get; init; }

    /// <summary>The worker's node name (checked against the plan).</summary>
    public required string Node { get; init; }

    /// <summary>The namespace of the control blocks.</summary>
    public required string ControlNamespace { get; init; }

    /// <summary>The worker's control block.</summary>
    public required string ControlName { get; init; }

    /// <summary>The manager's process id: the worker exits when it dies.</summary>
    public required int ParentPid { get; init; }

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
            try
            {
                var kinds = KindRegistry.BuiltIn;
                foreach (var path in manifest.Assemblies)
                {
                    kinds = kinds.With(PluginLoader.Load(path).Where(d => !kinds.Origins.ContainsKey(d.Kind)), path);
                }

                var check = PipelineDocument.CheckWithTasks(
                    manifest.Document,
                    manifest.BaseDirectory,
                    kinds,
                    (manifest.Tasks ?? []).Select(t => TaskSpec.FromJson(t!.AsObject())),
                    (manifest.Events ?? []).Select(e => EventSpec.FromJson(e!.AsObject())));
                var pipeline = check.Pipeline ?? throw new DocumentValidationException(check.Errors);

                plan = new PipelinePlan(pipeline, manifest.Placement, manifest.Namespace);
                if (manifest.Worker < 0 || manifest.Worker >= plan.Workers.Count || plan.Workers[manifest.Worker].Name != manifest.Node)
                {
                    throw new InvalidOperationException($"worker {manifest.Worker} of the document is not '{manifest.Node}'");
                }
            }
            catch (Exception e)
            {
                return WorkerHost.Fail(control, WorkerError.From(e));
            }

            return WorkerHost.Run(plan, plan.Workers[manifest.Worker], control);
        }
    }
}
