using System.Collections.Immutable;
using Flowline.SharedMemory;

namespace Flowline.Documents;

/// <summary>
/// A validated pipeline document: shmpipeline's schema (<c>shared_memory</c>, <c>kernels</c>,
/// <c>sources</c>, <c>sinks</c>, <c>namespace</c>) plus Flowline's extensions. Immutable; edit with
/// <c>with</c> expressions and validate again.
/// </summary>
/// <remarks>Optional fields are null when the document leaves them out, so that saving writes back exactly what was given.</remarks>
public sealed record PipelineSpec
{
    /// <summary>The namespace of the pipeline's shared-memory regions; null derives one from the document.</summary>
    public string? Namespace { get; init; }

    /// <summary>
    /// <c>spin_budget</c> (Flowline): the most a predictive wait spins per frame, as a fraction of the frame
    /// interval, for every stream that does not say; null means the default (0.03).
    /// </summary>
    public double? SpinBudget { get; init; }

    /// <summary>The streams (<c>shared_memory</c>).</summary>
    public ImmutableArray<StreamSpec> Streams { get; init; } = [];

    /// <summary>The kernels.</summary>
    public ImmutableArray<KernelSpec> Kernels { get; init; } = [];

    /// <summary>The sources.</summary>
    public ImmutableArray<SourceSpec> Sources { get; init; } = [];

    /// <summary>The sinks.</summary>
    public ImmutableArray<SinkSpec> Sinks { get; init; } = [];

    /// <summary>Tasks of a code-first pipeline (<c>Pipeline.AddTask</c>); documents have none.</summary>
    public ImmutableArray<TaskSpec> Tasks { get; init; } = [];

    /// <summary>Events of a code-first pipeline (<c>Pipeline.AddEvent</c>); documents have none.</summary>
    public ImmutableArray<EventSpec> Events { get; init; } = [];

    /// <summary>Assemblies that provide kernels, sources and sinks, relative to <see cref="BaseDirectory"/> (a Flowline extension).</summary>
    public ImmutableArray<string> Plugins { get; init; } = [];

    /// <summary>The directory plugin paths are relative to: the document's own directory. Not saved.</summary>
    public string? BaseDirectory { get; init; }

    /// <summary>The file the document was read from, for error messages. Not saved.</summary>
    public string? File { get; init; }

    /// <summary>The stream of that name, or null.</summary>
    public StreamSpec? FindStream(string name) => Streams.FirstOrDefault(s => s.Name == name);

    /// <summary>
    /// The readers of <paramref name="stream"/> that hold the slot they read (decision 100), so that the
    /// stream needs at least that many slots + 2: the nodes that read it as a trigger input with latest
    /// delivery ("kernel 'name'", "sink 'name'"), and, when <paramref name="written"/> (a node of the
    /// pipeline writes it), the NATS bridge that publishes a <c>remote</c> stream with latest delivery
    /// (its local reader copies each frame out of a held slot, decision 157). Auxiliary inputs and the
    /// control plane's previews peek without holding and are not listed.
    /// </summary>
    internal IReadOnlyList<string> LatestReadersOf(string stream, bool written)
    {
        var spec = FindStream(stream);
        var fallback = spec?.Delivery ?? Runtime.PipelinePlan.DefaultDelivery;
        return [
            .. Kernels.Where(k => k.Inputs.Contains(stream) && (k.Delivery?.For(stream) ?? fallback) == Delivery.Latest).Select(k => $"kernel '{k.Name}'"),
            .. Sinks.Where(s => s.Stream == stream && (s.Delivery ?? fallback) == Delivery.Latest).Select(s => $"sink '{s.Name}'"),
            .. written && spec?.Remote is { } remote && (remote.Delivery ?? Delivery.Latest) == Delivery.Latest
                ? [$"the NATS bridge publishing it to subject '{remote.Subject}' (remote)"]
                : Array.Empty<string>(),
        ];
    }

    /// <summary>The fewest slots a stream read by <paramref name="latestReaders"/> latest readers needs: one held by each, one to fill, one for the newest frame, as a power of two.</summary>
    internal static int LeastLatestDepth(int latestReaders) => latestReaders == 0 ? 2 : (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)(latestReaders + 2));

    /// <summary>Two specs are equal when they make the same document (file and base directory aside).</summary>
    public bool Equals(PipelineSpec? other) =>
        other is not null && System.Text.Json.Nodes.JsonNode.DeepEquals(DocumentWriter.ToJson(this), DocumentWriter.ToJson(other))
        && Tasks.SequenceEqual(other.Tasks) && Events.SequenceEqual(other.Events);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Namespace, Streams.Length, Kernels.Length, Sources.Length, Sinks.Length);
}

/// <summary>A stream: an entry of <c>shared_memory</c>.</summary>
public sealed record StreamSpec
{
    /// <summary>The stream's name, unique in the pipeline.</summary>
    public required string Name { get; init; }

    /// <summary>The frame shape: 1 to 8 positive dimensions.</summary>
    public required ImmutableArray<int> Shape { get; init; }

    /// <summary>The element type (<c>dtype</c>).</summary>
    public required ElementType Dtype { get; init; }

    /// <summary><c>storage</c>: only <c>cpu</c> in this build; null when not given.</summary>
    public string? Storage { get; init; }

    /// <summary><c>notify</c>: shmpipeline's wake-up switch. Accepted for compatibility; Flowline readers always wake promptly.</summary>
    public bool? Notify { get; init; }

    /// <summary><c>mode</c>: how the manager opens the stream; null means <c>create_or_attach</c>.</summary>
    public RegionMode? Mode { get; init; }

    /// <summary>
    /// <c>namespace</c> (Flowline): the namespace of a stream another pipeline creates (with
    /// <c>mode: attach</c> only); null means the pipeline's own namespace.
    /// </summary>
    public string? Namespace { get; init; }

    /// <summary><c>initial</c>: the frame written into the stream at every build.</summary>
    public InitialSpec? Initial { get; init; }

    /// <summary><c>depth</c> (Flowline): ring slots, a power of two; null means the default.</summary>
    public int? Depth { get; init; }

    /// <summary><c>delivery</c> (Flowline): what this stream's readers receive unless they say otherwise.</summary>
    public Delivery? Delivery { get; init; }

    /// <summary><c>wait</c> (Flowline): how this stream's readers and writer wait unless they say otherwise.</summary>
    public WaitPolicy? Wait { get; init; }

    /// <summary><c>spin_budget</c> (Flowline): the most a predictive reader of this stream spins per frame, as a fraction of the frame interval.</summary>
    public double? SpinBudget { get; init; }

    /// <summary>
    /// <c>remote</c> (Flowline): the stream also lives on another host, joined over NATS; null for a stream of
    /// this host only. A stream a node of the pipeline writes is published; one no node writes is received.
    /// </summary>
    public RemoteSpec? Remote { get; init; }

    /// <summary>The frame format.</summary>
    public FrameFormat Format => new(Dtype, Shape.AsSpan());

    /// <summary>The number of elements in a frame.</summary>
    public int ElementCount => Shape.Aggregate(1, (a, d) => a * d);
}

/// <summary>What <c>initial</c> writes into a stream at build.</summary>
public abstract record InitialSpec
{
    /// <summary>The pattern name: constant, normal, values or identity.</summary>
    public abstract string Pattern { get; }
}

/// <summary><c>pattern: constant</c>: every element is <paramref name="Value"/>.</summary>
public sealed record ConstantInitial(double Value) : InitialSpec
{
    /// <inheritdoc/>
    public override string Pattern => "constant";
}

/// <summary><c>pattern: normal</c>: seeded normal noise (float types only).</summary>
public sealed record NormalInitial(long? Seed, double? Mean, double? Std) : InitialSpec
{
    /// <inheritdoc/>
    public override string Pattern => "normal";
}

/// <summary><c>pattern: values</c>: explicit values of exactly the stream's shape, flattened row-major.</summary>
public sealed record ValuesInitial(ImmutableArray<double> Values) : InitialSpec
{
    /// <inheritdoc/>
    public override string Pattern => "values";

    /// <inheritdoc/>
    public bool Equals(ValuesInitial? other) => other is not null && Values.SequenceEqual(other.Values);

    /// <inheritdoc/>
    public override int GetHashCode() => Values.Length;
}

/// <summary><c>pattern: identity</c>: a scaled identity matrix (2-D streams).</summary>
public sealed record IdentityInitial(double? Scale) : InitialSpec
{
    /// <inheritdoc/>
    public override string Pattern => "identity";
}

/// <summary>How a kernel's trigger inputs start a computation.</summary>
public enum TriggerPolicy
{
    /// <summary><c>any_new</c>: any trigger input has a new frame (the default for one input).</summary>
    AnyNew,

    /// <summary><c>all_new</c>: every trigger input has a new frame (the default for several).</summary>
    AllNew,
}

/// <summary><c>synchronization.mode</c>.</summary>
public enum SynchronizationMode
{
    /// <summary><c>count</c>: inputs are matched by arrival.</summary>
    Count,

    /// <summary><c>matching_frame_id</c>: inputs are matched by frame id (needs <c>all_new</c>).</summary>
    MatchingFrameId,
}

/// <summary><c>synchronization</c> of a kernel with several trigger inputs.</summary>
public sealed record SynchronizationSpec
{
    /// <summary><c>mode</c>; null means <c>count</c>.</summary>
    public SynchronizationMode? Mode { get; init; }

    /// <summary><c>on_skew</c>: only <c>drop_older</c> exists; null when not given.</summary>
    public string? OnSkew { get; init; }

    /// <summary><c>max_skew_generations</c> (at least 1, default 16).</summary>
    public int? MaxSkewGenerations { get; init; }

    /// <summary><c>max_wait_s</c> (alias <c>timeout</c>): how long to wait for the other inputs.</summary>
    public double? MaxWaitS { get; init; }

    /// <summary>True if the document spelled <see cref="MaxWaitS"/> as <c>timeout</c> (kept for saving).</summary>
    public bool MaxWaitSpelledTimeout { get; init; }
}

/// <summary>Where a node's worker runs (Flowline extension <c>placement</c>).</summary>
public enum WorkerPlacement
{
    /// <summary>A separate OS process (the default).</summary>
    Process,

    /// <summary>A thread of the manager's process.</summary>
    Thread,
}

/// <summary>A value given either once for every input (a scalar) or per input stream (a mapping).</summary>
/// <typeparam name="T">The value's type.</typeparam>
/// <param name="All">The value for every input, when given as a scalar.</param>
/// <param name="ByStream">Values per input stream, when given as a mapping.</param>
public sealed record PerInput<T>(T? All, ImmutableDictionary<string, T> ByStream)
    where T : struct
{
    /// <summary>The value for <paramref name="stream"/>, or null if none was given for it.</summary>
    public T? For(string stream) => ByStream.TryGetValue(stream, out var v) ? v : All;

    /// <inheritdoc/>
    public bool Equals(PerInput<T>? other) =>
        other is not null && Nullable.Equals(All, other.All) && ByStream.Count == other.ByStream.Count && ByStream.All(p => other.ByStream.TryGetValue(p.Key, out var v) && v.Equals(p.Value));

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(All, ByStream.Count);
}

/// <summary>An auxiliary input: a stream read whenever the node runs, under an alias.</summary>
/// <param name="Alias">The name the node knows it by (the stream name when given as a list).</param>
/// <param name="Stream">The stream.</param>
public sealed record AuxiliaryBinding(string Alias, string Stream);

/// <summary>Fields every node (kernel, source, sink) has.</summary>
public abstract record NodeSpec
{
    /// <summary>The node's name, unique across kernels, sources and sinks.</summary>
    public required string Name { get; init; }

    /// <summary>The kind, such as <c>cpu.scale</c>.</summary>
    public required string Kind { get; init; }

    /// <summary><c>auxiliary</c> inputs.</summary>
    public ImmutableArray<AuxiliaryBinding> Auxiliary { get; init; } = [];

    /// <summary>True if <c>auxiliary</c> was given as a mapping of aliases (kept for saving).</summary>
    public bool AuxiliaryAsMapping { get; init; }

    /// <summary><c>parameters</c>.</summary>
    public Parameters Parameters { get; init; } = Parameters.Empty;

    /// <summary><c>placement</c> (Flowline): process or thread; null means process.</summary>
    public WorkerPlacement? Placement { get; init; }

    /// <summary><c>cpu</c> (Flowline): the CPU to pin the worker to; null leaves it to the placement policy.</summary>
    public int? Cpu { get; init; }
}

/// <summary>A kernel: computes its outputs from its trigger inputs (and auxiliary inputs) once per frame.</summary>
public sealed record KernelSpec : NodeSpec
{
    /// <summary>The trigger inputs (<c>input</c> or <c>inputs</c>).</summary>
    public required ImmutableArray<string> Inputs { get; init; }

    /// <summary>True if the document used <c>inputs</c> (a list) rather than <c>input</c>.</summary>
    public bool InputsAsList { get; init; }

    /// <summary>The outputs (<c>output</c> or <c>outputs</c>).</summary>
    public required ImmutableArray<string> Outputs { get; init; }

    /// <summary>True if the document used <c>outputs</c> (a list) rather than <c>output</c>.</summary>
    public bool OutputsAsList { get; init; }

    /// <summary><c>operation</c>: the expression of <c>cpu.custom_operation</c>.</summary>
    public string? Operation { get; init; }

    /// <summary><c>read_timeout</c> in seconds (default 1.0).</summary>
    public double? ReadTimeout { get; init; }

    /// <summary><c>pause_sleep</c> in seconds (default 0.01). Accepted for compatibility; a paused Flowline worker sleeps on an event.</summary>
    public double? PauseSleep { get; init; }

    /// <summary><c>poll_interval</c> in seconds (default 1e-5). Accepted for compatibility; Flowline workers do not poll.</summary>
    public double? PollInterval { get; init; }

    /// <summary><c>trigger_policy</c>; null means <c>any_new</c> for one input, <c>all_new</c> for several.</summary>
    public TriggerPolicy? TriggerPolicy { get; init; }

    /// <summary><c>synchronization</c>.</summary>
    public SynchronizationSpec? Synchronization { get; init; }

    /// <summary><c>propagate_frame_id</c>.</summary>
    public bool? PropagateFrameId { get; init; }

    /// <summary><c>delivery</c> (Flowline): per input, or for every input.</summary>
    public PerInput<Delivery>? Delivery { get; init; }

    /// <summary><c>wait</c> (Flowline): per input, or for every input.</summary>
    public PerInput<WaitPolicy>? Wait { get; init; }

    /// <summary>The trigger policy in effect.</summary>
    public TriggerPolicy EffectiveTriggerPolicy => TriggerPolicy ?? (Inputs.Length > 1 ? Documents.TriggerPolicy.AllNew : Documents.TriggerPolicy.AnyNew);
}

/// <summary>A source: writes frames into its streams from outside the pipeline (or a generator).</summary>
public sealed record SourceSpec : NodeSpec
{
    /// <summary>The streams it writes (<c>stream</c> or <c>streams</c>).</summary>
    public required ImmutableArray<string> Streams { get; init; }

    /// <summary>True if the document used <c>streams</c> (a list) rather than <c>stream</c>.</summary>
    public bool StreamsAsList { get; init; }

    /// <summary><c>poll_interval</c> in seconds (default 0.01).</summary>
    public double? PollInterval { get; init; }

    /// <summary><c>read_timeout</c> in seconds.</summary>
    public double? ReadTimeout { get; init; }
}

/// <summary>A sink: consumes one stream, and a stateful sink writes feedback <c>outputs</c>.</summary>
public sealed record SinkSpec : NodeSpec
{
    /// <summary>The stream it consumes.</summary>
    public required string Stream { get; init; }

    /// <summary><c>outputs</c>: feedback streams of a stateful sink.</summary>
    public ImmutableArray<string> Outputs { get; init; } = [];

    /// <summary><c>read_timeout</c> in seconds (default 1.0).</summary>
    public double? ReadTimeout { get; init; }

    /// <summary><c>pause_sleep</c> in seconds (default 0.01).</summary>
    public double? PauseSleep { get; init; }

    /// <summary><c>consume_timeout</c> in seconds.</summary>
    public double? ConsumeTimeout { get; init; }

    /// <summary><c>delivery</c> (Flowline) of its input.</summary>
    public Delivery? Delivery { get; init; }

    /// <summary><c>wait</c> (Flowline) of its input.</summary>
    public WaitPolicy? Wait { get; init; }
}

/// <summary>
/// A stream's <c>remote</c> entry: the NATS server and subject that join it to another host, and how to
/// authenticate. Secrets are never inline: a token or password comes from a file or an environment variable.
/// Files are relative to the document's directory.
/// </summary>
public sealed record RemoteSpec
{
    /// <summary><c>nats</c>: the server's URL (<c>nats://</c> or <c>tls://</c>).</summary>
    public required string Nats { get; init; }

    /// <summary><c>subject</c>: the subject the frames travel on.</summary>
    public required string Subject { get; init; }

    /// <summary><c>delivery</c>: latest (core NATS) or lossless (JetStream); null means latest.</summary>
    public Delivery? Delivery { get; init; }

    /// <summary><c>durable</c>: the durable consumer of a received lossless stream; null for the default.</summary>
    public string? Durable { get; init; }

    /// <summary><c>token_file</c>: a file holding the token.</summary>
    public string? TokenFile { get; init; }

    /// <summary><c>token_env</c>: an environment variable holding the token.</summary>
    public string? TokenEnv { get; init; }

    /// <summary><c>user</c>: the user name (with a password from a file or a variable).</summary>
    public string? User { get; init; }

    /// <summary><c>password_file</c>: a file holding the password.</summary>
    public string? PasswordFile { get; init; }

    /// <summary><c>password_env</c>: an environment variable holding the password.</summary>
    public string? PasswordEnv { get; init; }

    /// <summary><c>creds</c>: a NATS credentials file.</summary>
    public string? Creds { get; init; }

    /// <summary><c>nkey</c>: an nkey seed file.</summary>
    public string? NKey { get; init; }

    /// <summary><c>tls_ca</c>: a CA certificate (PEM).</summary>
    public string? TlsCa { get; init; }

    /// <summary><c>tls_cert</c>: a client certificate (PEM).</summary>
    public string? TlsCert { get; init; }

    /// <summary><c>tls_key</c>: the client certificate's key (PEM).</summary>
    public string? TlsKey { get; init; }

    /// <summary><c>tls_required</c>: require TLS even when the URL says <c>nats://</c>.</summary>
    public bool? TlsRequired { get; init; }
}
