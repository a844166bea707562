using System.Text;
using Flowline.Documents;
using Flowline.SharedMemory;

namespace Flowline.Runtime;

/// <summary>What a worker runs.</summary>
public enum WorkerRole
{
    /// <summary>A sink.</summary>
    Sink,

    /// <summary>A kernel.</summary>
    Kernel,

    /// <summary>A source.</summary>
    Source,

    /// <summary>A task of a code-first pipeline: a function that owns its loop.</summary>
    Task,
}

/// <summary>One worker of a plan: a node, where it runs, and its control block.</summary>
/// <param name="Index">Its place in the plan (start order: sinks, kernels, sources).</param>
/// <param name="Role">What it runs.</param>
/// <param name="Node">The node's spec.</param>
/// <param name="Placement">A process of its own, or a thread of the manager's process.</param>
/// <param name="Cpu">The CPU it is pinned to, or null.</param>
/// <param name="ControlName">The name of its control block in the plan's control namespace.</param>
public sealed record WorkerPlan(int Index, WorkerRole Role, NodeSpec Node, WorkerPlacement Placement, int? Cpu, string ControlName)
{
    /// <summary>The node's name.</summary>
    public string Name => Node.Name;
}

/// <summary>How workers are placed on CPUs.</summary>
public enum PlacementPolicy
{
    /// <summary>No pinning, except where a node names its <c>cpu</c>.</summary>
    None,

    /// <summary>Pin workers to CPUs in turn (0, 1, ..., then again), except where a node names its <c>cpu</c>.</summary>
    RoundRobin,
}

/// <summary>
/// A validated pipeline resolved for running: its namespace, the options of every stream and reader
/// (documents default to latest delivery, 8-slot rings and hybrid waiting), and its workers in start
/// order with their placement.
/// </summary>
public sealed class PipelinePlan
{
    /// <summary>Ring depth of a stream that does not say.</summary>
    public const int DefaultDepth = 8;

    /// <summary>
    /// Ring depth of a stream that does not say, has an <c>initial</c> value and that no node writes: a
    /// constant operand (a matrix, a calibration frame), written once at build. Two slots, the least a
    /// ring has, instead of eight copies of what can be a large matrix.
    /// </summary>
    public const int ConstantDepth = 2;

    /// <summary>
    /// How long a worker's hybrid wait stays awake (spinning, then yielding) before it sleeps: 20 µs, not
    /// the 50 µs of a lone pair of processes. A pipeline has more workers than cores, and a worker that
    /// stays awake after its frame holds a core the next stage needs (the AO loop in lock step runs
    /// about 25 % faster on two cores; see docs/performance.md).
    /// </summary>
    public static readonly TimeSpan SpinTime = TimeSpan.FromMicroseconds(20);

    /// <summary>Delivery of a reader whose stream and node do not say (shmpipeline's streams hold the latest value).</summary>
    public const Delivery DefaultDelivery = Delivery.Latest;

    private readonly Dictionary<string, StreamOptions> streamOptions = new(StringComparer.Ordinal);

    /// <summary>Resolves <paramref name="pipeline"/>, in <paramref name="namespace"/> if given (else the document's, or one from its file name).</summary>
    public PipelinePlan(ValidatedPipeline pipeline, PlacementPolicy placement = PlacementPolicy.None, string? @namespace = null)
    {
        ArgumentNullException.ThrowIfNull(pipeline);
        Pipeline = pipeline;
        Placement = placement;
        Namespace = @namespace ?? pipeline.Spec.Namespace ?? DeriveNamespace(pipeline.Spec.File);
        ControlNamespace = Namespace + ".control";
        foreach (var stream in pipeline.Spec.Streams)
        {
            var readers = pipeline.Graph.ConsumersOf(stream.Name).Count;
            streamOptions[stream.Name] = new StreamOptions
            {
                CapacityFrames = stream.Depth ?? (stream.Initial is not null && pipeline.Graph.ProducersOf(stream.Name).Count == 0
                    ? ConstantDepth
                    : Math.Max(DefaultDepth, PipelineSpec.LeastLatestDepth(pipeline.Spec.LatestReadersOf(stream.Name).Count))),
                MaxReaders = Math.Clamp(readers + 4, StreamOptions.DefaultMaxReaders, StreamOptions.MaxReadersLimit),
            };
        }

        var nodes = pipeline.Spec.Sinks.Select(n => (WorkerRole.Sink, (NodeSpec)n))
            .Concat(pipeline.Spec.Tasks.Select(n => (WorkerRole.Task, (NodeSpec)n)))
            .Concat(pipeline.Spec.Kernels.Select(n => (WorkerRole.Kernel, (NodeSpec)n)))
            .Concat(pipeline.Spec.Sources.Select(n => (WorkerRole.Source, (NodeSpec)n)));
        var workers = new List<WorkerPlan>();
        var nextCpu = 0;
        foreach (var (role, node) in nodes)
        {
            int? cpu = node.Cpu;
            if (cpu is null && placement == PlacementPolicy.RoundRobin)
            {
                cpu = nextCpu++ % Environment.ProcessorCount;
            }

            workers.Add(new WorkerPlan(workers.Count, role, node, node.Placement ?? WorkerPlacement.Process, cpu, $"w{workers.Count}"));
        }

        Workers = workers;
    }

    /// <summary>The pipeline.</summary>
    public ValidatedPipeline Pipeline { get; }

    /// <summary>How workers are placed on CPUs.</summary>
    public PlacementPolicy Placement { get; }

    /// <summary>The namespace of the streams: the document's, or one derived from its file name.</summary>
    public string Namespace { get; }

    /// <summary>The namespace of the workers' control blocks.</summary>
    public string ControlNamespace { get; }

    /// <summary>Functions of tasks run on threads (closures included), by task name.</summary>
    public IReadOnlyDictionary<string, Delegate> TaskDelegates { get; init; } = new Dictionary<string, Delegate>();

    /// <summary>The workers, in start order: sinks, tasks, kernels, then sources.</summary>
    public IReadOnlyList<WorkerPlan> Workers { get; }

    /// <summary>The namespace of <paramref name="stream"/>: its own <c>namespace</c> (a stream another pipeline creates), else the pipeline's.</summary>
    public string NamespaceOf(string stream) => Pipeline.Spec.FindStream(stream)?.Namespace ?? Namespace;

    /// <summary>The ring options of a stream.</summary>
    public StreamOptions OptionsOf(string stream) => streamOptions[stream];

    /// <summary>The options of <paramref name="node"/>'s reader of trigger input <paramref name="stream"/>.</summary>
    public ReaderOptions TriggerReader(NodeSpec node, string stream)
    {
        var spec = Pipeline.Spec.FindStream(stream)!;
        var (delivery, wait) = node switch
        {
            KernelSpec k => (k.Delivery?.For(stream), k.Wait?.For(stream)),
            SinkSpec s => (s.Delivery, s.Wait),
            _ => ((Delivery?)null, (WaitPolicy?)null),
        };
        return new ReaderOptions
        {
            Delivery = delivery ?? spec.Delivery ?? DefaultDelivery,
            WaitPolicy = wait ?? spec.Wait ?? DefaultWait,
            WaitThroughWriterChanges = true,
            SpinTime = SpinTime,
            SpinBudget = SpinBudgetOf(spec),
        };
    }

    /// <summary>
    /// The spin budget of a predictive reader of <paramref name="stream"/>: the stream's, else the
    /// pipeline's, else the default; shrunk in proportion when the pipeline has more workers than the
    /// machine has cores (<see cref="WaitTuning.SharedSpinBudget"/>).
    /// </summary>
    public double SpinBudgetOf(StreamSpec stream) =>
        WaitTuning.SharedSpinBudget(stream.SpinBudget ?? Pipeline.Spec.SpinBudget ?? WaitTuning.DefaultSpinBudget, Workers.Count, Environment.ProcessorCount);

    /// <summary>
    /// How a worker's reader waits when neither its node nor its stream says: <c>predictive</c> (decision
    /// 140), which answers the early wake-ups of paced sources and stages and otherwise waits as <c>hybrid</c>.
    /// Writers waiting for space still wait as <c>hybrid</c>.
    /// </summary>
    public const WaitPolicy DefaultWait = WaitPolicy.Predictive;

    /// <summary>The options of a reader of an auxiliary input: latest delivery, never holding the writer back.</summary>
    public static ReaderOptions AuxiliaryReader { get; } = new() { Delivery = Delivery.Latest, WaitPolicy = WaitPolicy.Block, WaitThroughWriterChanges = true, SpinTime = SpinTime };

    /// <summary>The options of the writer of <paramref name="stream"/>.</summary>
    public WriterOptions Writer(string stream) => new() { WaitPolicy = Pipeline.Spec.FindStream(stream)!.Wait ?? WaitPolicy.Hybrid, SpinTime = SpinTime };

    /// <summary>A namespace from a document's file name: its letters, digits, '_', '-' and '.', or "pipeline".</summary>
    public static string DeriveNamespace(string? file)
    {
        var stem = file is null ? "" : Path.GetFileNameWithoutExtension(file);
        if (stem is "" or "pipeline")
        {
            var directory = file is null ? null : Path.GetFileName(Path.GetDirectoryName(Path.GetFullPath(file)));
            stem = string.IsNullOrEmpty(directory) ? "pipeline" : directory;
        }

        var name = new StringBuilder();
        foreach (var c in stem)
        {
            name.Append(char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.' ? c : '_');
        }

        var text = name.ToString().TrimStart('.');
        return text.Length == 0 ? "pipeline" : text[..Math.Min(text.Length, 100)];
    }
}
