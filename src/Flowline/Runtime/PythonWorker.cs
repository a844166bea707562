using System.Diagnostics;
using System.Text.Json.Nodes;
using Flowline.Documents;
using Flowline.Python;
using Flowline.SharedMemory;

namespace Flowline.Runtime;

/// <summary>
/// Starts the worker of a <c>python.*</c> node: <c>python3 -m flowline.worker</c>, told on its standard input
/// (one JSON object) what it needs of its own node only: its streams (namespace, name, delivery, wait
/// policy), its kind, module, function and parameters, its control block and its manager's pid. It
/// speaks the control block protocol of C# workers (python/flowline/worker.py).
/// </summary>
internal static class PythonWorker
{
    /// <summary>The directory of the <c>flowline</c> package copied beside Flowline's assemblies (put first on PYTHONPATH).</summary>
    public static string BundledPackageRoot => Path.Combine(AppContext.BaseDirectory, "python");

    /// <summary>True for a worker a Python process runs.</summary>
    public static bool Runs(WorkerPlan worker) => PythonSettings.IsPythonKind(worker.Node.Kind);

    /// <summary>Starts the Python worker of <paramref name="slot"/>.</summary>
    public static void Start(WorkerSlot slot, PipelinePlan plan)
    {
        var (start, input) = Prepare(plan, slot.Plan);
        try
        {
            slot.StartProcess(start, input);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"cannot start the Python interpreter '{start.FileName}' of {slot.Plan.Node.Kind} '{slot.Plan.Name}': {e.Message}", e);
        }
    }

    /// <summary>How to start <paramref name="worker"/> of <paramref name="plan"/>, and what to write on its standard input.</summary>
    public static (ProcessStartInfo Start, string Input) Prepare(PipelinePlan plan, WorkerPlan worker)
    {
        var node = worker.Node;
        var settings = PythonSettings.Of(node, plan.Pipeline.Spec.BaseDirectory);
        var info = new ProcessStartInfo(settings.Interpreter)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add("-m");
        info.ArgumentList.Add("flowline.worker");
        info.ArgumentList.Add(plan.Namespace); // for ps only
        info.ArgumentList.Add(worker.Name);
        if (Directory.Exists(Path.Combine(BundledPackageRoot, "flowline")))
        {
            var existing = Environment.GetEnvironmentVariable("PYTHONPATH");
            info.Environment["PYTHONPATH"] = string.IsNullOrEmpty(existing) ? BundledPackageRoot : $"{BundledPackageRoot}:{existing}";
        }

        info.Environment["PYTHONUNBUFFERED"] = "1";
        var (role, inputs, outputs) = node switch
        {
            KernelSpec k => ("kernel", k.Inputs.Select(s => Input(plan, node, s)), k.Outputs.Select(s => Output(plan, s))),
            SourceSpec s => ("source", [], s.Streams.Select(n => Output(plan, n))),
            SinkSpec s => ("sink", [Input(plan, node, s.Stream)], s.Outputs.Select(n => Output(plan, n))),
            _ => throw new InvalidOperationException($"{node.Kind} '{node.Name}' is not a kernel, source or sink"),
        };
        var manifest = new JsonObject
        {
            ["node"] = node.Name,
            ["role"] = role,
            ["kind"] = node.Kind,
            ["module"] = settings.Module,
            ["function"] = settings.Function,
            ["path"] = new JsonArray([.. settings.SearchPath.Select(p => (JsonNode?)p)]),
            ["parameters"] = settings.Arguments,
            ["inputs"] = new JsonArray([.. inputs]),
            ["outputs"] = new JsonArray([.. outputs]),
            ["trigger_policy"] = node is KernelSpec kernel && kernel.EffectiveTriggerPolicy == TriggerPolicy.AnyNew ? "any_new" : "all_new",
            ["propagate_frame_id"] = node is KernelSpec { PropagateFrameId: true },
            ["rate_hz"] = node is SourceSpec && node.Parameters.TryGetDouble("rate_hz", out var rate) ? rate : null,
            ["spin_time_s"] = PipelinePlan.SpinTime.TotalSeconds,
            ["cpu"] = worker.Cpu,
            ["control"] = new JsonObject { ["namespace"] = plan.ControlNamespace, ["name"] = worker.ControlName },
            ["parent_pid"] = Environment.ProcessId,
        };
        return (info, manifest.ToJsonString());
    }

    private static JsonNode Input(PipelinePlan plan, NodeSpec node, string stream)
    {
        var options = plan.TriggerReader(node, stream);
        return new JsonObject
        {
            ["namespace"] = plan.NamespaceOf(stream),
            ["name"] = stream,
            ["delivery"] = options.Delivery == Delivery.Lossless ? "lossless" : "latest",
            ["wait"] = Name(options.WaitPolicy),
        };
    }

    private static JsonNode Output(PipelinePlan plan, string stream) => new JsonObject
    {
        ["namespace"] = plan.NamespaceOf(stream),
        ["name"] = stream,
        ["wait"] = Name(plan.Writer(stream).WaitPolicy),
    };

    private static string Name(WaitPolicy policy) => policy switch
    {
        WaitPolicy.Spin => "spin",
        WaitPolicy.Block => "block",
        WaitPolicy.Predictive => "predictive", // the Python reader answers early wake-ups (decision 150)
        _ => "hybrid",
    };
}
