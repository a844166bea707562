using System.Collections.Immutable;
using System.Globalization;
using System.Text.Json.Nodes;
using Flowline.SharedMemory;

namespace Flowline.Documents;

/// <summary>
/// Turns a <see cref="DocNode"/> tree into a <see cref="PipelineSpec"/>, collecting every schema error
/// (unknown keys, wrong types, bad ranges, missing fields) with its path and position, and recording the
/// position of every field for the errors found later by the graph and kind checks.
/// </summary>
internal sealed class DocumentBinder(string? file, ErrorCollector errors)
{
    /// <summary>Accepts a document without kernels, sources or sinks (a code-first pipeline whose nodes are tasks).</summary>
    public bool AllowNoNodes { get; init; }

    private static readonly string[] TopKeys = ["shared_memory", "kernels", "sources", "sinks", "namespace", "plugins", "spin_budget"];
    private static readonly string[] StreamKeys =
        ["name", "shape", "dtype", "storage", "gpu_device", "cpu_mirror", "notify", "mode", "namespace", "initial", "depth", "delivery", "wait", "spin_budget", "remote"];
    private static readonly string[] RemoteKeys =
        ["nats", "subject", "delivery", "durable", "token_file", "token_env", "user", "password_file", "password_env", "creds", "nkey", "tls_ca", "tls_cert", "tls_key", "tls_required"];
    private static readonly string[] KernelKeys =
    [
        "name", "kind", "input", "inputs", "output", "outputs", "auxiliary", "operation", "parameters", "read_timeout", "pause_sleep",
        "poll_interval", "trigger_policy", "synchronization", "propagate_frame_id", "delivery", "wait", "placement", "cpu",
    ];

    private static readonly string[] SourceKeys = ["name", "kind", "stream", "streams", "auxiliary", "parameters", "poll_interval", "read_timeout", "placement", "cpu"];
    private static readonly string[] SinkKeys =
        ["name", "kind", "stream", "outputs", "auxiliary", "parameters", "read_timeout", "pause_sleep", "consume_timeout", "delivery", "wait", "placement", "cpu"];

    private static readonly string[] SynchronizationKeys = ["mode", "on_skew", "max_skew_generations", "max_wait_s", "timeout"];

    private readonly Dictionary<string, SourcePosition> positions = new(StringComparer.Ordinal);
    private readonly HashSet<string> brokenStreams = new(StringComparer.Ordinal);
    private readonly Dictionary<object, string> paths = new(ReferenceEqualityComparer.Instance);

    /// <summary>True when the document is beyond <see cref="DocumentLimits"/>: nothing else of it was checked.</summary>
    public bool OverLimits { get; private set; }

    /// <summary>The position of each field path that was bound.</summary>
    public IReadOnlyDictionary<string, SourcePosition> Positions => positions;

    /// <summary>Names of streams declared with errors: references to them are not reported again.</summary>
    public IReadOnlySet<string> BrokenStreams => brokenStreams;

    /// <summary>The document path of each bound stream and node (by reference), such as <c>kernels[2]</c>.</summary>
    public IReadOnlyDictionary<object, string> Paths => paths;

    /// <summary>Binds a document; returns the spec of everything that bound (nodes with errors are left out).</summary>
    public PipelineSpec Bind(DocNode? root)
    {
        if (root is null || (root is DocScalar s && s.IsNull))
        {
            Error("", root, "the document is empty; a pipeline needs at least 'shared_memory' and one of 'kernels', 'sources' or 'sinks'");
            return new PipelineSpec { File = file };
        }

        if (root is not DocMapping top)
        {
            Error("", root, "the document must be a mapping with the keys shared_memory, kernels, sources, sinks, namespace and plugins");
            return new PipelineSpec { File = file };
        }

        DuplicateKeys(top, "");
        CheckKeys(top, "", TopKeys);
        if (OverLimits = !WithinLimits(top))
        {
            return new PipelineSpec { File = file };
        }

        var streams = List(top, "shared_memory", "", required: !AllowNoNodes, item: BindStream);
        var kernels = List(top, "kernels", "", required: false, item: BindKernel);
        var sources = List(top, "sources", "", required: false, item: BindSource);
        var sinks = List(top, "sinks", "", required: false, item: BindSink);
        var plugins = List(top, "plugins", "", required: false, item: (node, path) => String(node, path, "a path to a .dll file"));

        var hasNodes = Present(top, "kernels") || Present(top, "sources") || Present(top, "sinks");
        if (!AllowNoNodes && (!hasNodes || (kernels.Count == 0 && sources.Count == 0 && sinks.Count == 0 && errors.Count == 0)))
        {
            Error("", top, "the pipeline has no kernels, sources or sinks; give at least one");
        }

        string? ns = null;
        if (top.Find("namespace") is { } nsEntry)
        {
            Track("namespace", nsEntry.Value);
            ns = String(nsEntry.Value, "namespace", "a name of letters, digits, '_', '-' and '.'");
            if (ns is not null && SharedMemoryNamespace.Check(ns) is { } problem)
            {
                Error("namespace", nsEntry.Value, $"'{ErrorCollector.Quote(ns)}' cannot name a namespace: {problem}");
                ns = null;
            }
        }

        var spinBudget = SpinBudget(top, "");
        return new PipelineSpec
        {
            Namespace = ns,
            SpinBudget = spinBudget,
            Streams = [.. streams.OfType<StreamSpec>()],
            Kernels = [.. kernels.OfType<KernelSpec>()],
            Sources = [.. sources.OfType<SourceSpec>()],
            Sinks = [.. sinks.OfType<SinkSpec>()],
            Plugins = [.. plugins.OfType<string>()],
            File = file,
        };
    }

    /// <summary>Reports lists longer than <see cref="DocumentLimits"/> allow, before anything of them is bound.</summary>
    private bool WithinLimits(DocMapping top)
    {
        static int Length(DocMapping map, string key) => map.Find(key)?.Value is DocSequence seq ? seq.Items.Count : 0;
        var ok = true;
        if (Length(top, "shared_memory") is var streams && streams > DocumentLimits.MaxStreams)
        {
            Error("shared_memory", top.Find("shared_memory")!.Value, $"declares {streams:N0} streams; a pipeline has at most {DocumentLimits.MaxStreams:N0}");
            ok = false;
        }

        var nodes = (long)Length(top, "kernels") + Length(top, "sources") + Length(top, "sinks");
        if (nodes > DocumentLimits.MaxNodes)
        {
            Error("", top, $"the document declares {nodes:N0} kernels, sources and sinks; a pipeline has at most {DocumentLimits.MaxNodes:N0}");
            ok = false;
        }

        if (Length(top, "plugins") is var plugins && plugins > DocumentLimits.MaxPlugins)
        {
            Error("plugins", top.Find("plugins")!.Value, $"lists {plugins:N0} plugins; a pipeline loads at most {DocumentLimits.MaxPlugins:N0}");
            ok = false;
        }

        return ok;
    }

    private StreamSpec? BindStream(DocNode node, string path)
    {
        if (Mapping(node, path, "a stream: a mapping with name, shape and dtype") is not { } map)
        {
            return null;
        }

        CheckKeys(map, path, StreamKeys);
        var name = RequiredString(map, path, "name", "a stream name");
        if (name is not null && SharedMemoryNamespace.Check(name) is { } problem)
        {
            Error($"{path}.name", map.Find("name")!.Value, $"'{ErrorCollector.Quote(name)}' cannot name a stream: {problem}");
        }

        var shape = Shape(map, path);
        ElementType? dtype = null;
        if (Field(map, path, "dtype", required: true) is { } dtypeNode)
        {
            var text = String(dtypeNode, $"{path}.dtype", "an element type");
            if (text is not null)
            {
                if (ElementTypes.TryParse(text, out var parsed))
                {
                    dtype = parsed;
                    var bytes = (shape?.Aggregate(1L, (a, d) => a * d) ?? 0) * parsed.SizeOf();
                    if (bytes > FrameFormat.MaxFrameBytes)
                    {
                        Error($"{path}.shape", map.Find("shape")!.Value, $"a frame of {parsed.ToName()}[{string.Join(", ", shape!.Value)}] holds {bytes:N0} bytes, larger than the largest frame ({FrameFormat.MaxFrameBytes:N0} bytes)");
                        shape = null;
                    }
                }
                else
                {
                    Error($"{path}.dtype", dtypeNode, $"unknown element type '{ErrorCollector.Quote(text)}'; valid types are {ElementTypes.ValidNames}");
                }
            }
        }

        string? storage = null;
        if (Field(map, path, "storage", required: false) is { } storageNode)
        {
            storage = String(storageNode, $"{path}.storage", "cpu");
            if (storage == "gpu")
            {
                Error($"{path}.storage", storageNode, "no GPU backend in this build; use storage: cpu");
            }
            else if (storage is not null and not "cpu")
            {
                Error($"{path}.storage", storageNode, $"unknown storage '{ErrorCollector.Quote(storage)}'; valid storages are cpu (gpu is recognised but this build has no GPU backend)");
            }
        }

        foreach (var gpuKey in new[] { "gpu_device", "cpu_mirror" })
        {
            if (Field(map, path, gpuKey, required: false) is { } gpuNode)
            {
                Error($"{path}.{gpuKey}", gpuNode, "no GPU backend in this build: GPU fields cannot be used; remove it and use storage: cpu");
            }
        }

        var notify = OptionalBool(map, path, "notify");
        RegionMode? mode = null;
        if (Field(map, path, "mode", required: false) is { } modeNode && String(modeNode, $"{path}.mode", "a mode") is { } modeText)
        {
            if (RegionModes.TryParse(modeText, out var m))
            {
                mode = m;
            }
            else
            {
                Error($"{path}.mode", modeNode, $"unknown mode '{ErrorCollector.Quote(modeText)}'; valid modes are create_or_attach, create, attach, replace");
            }
        }

        string? streamNamespace = null;
        if (Field(map, path, "namespace", required: false) is { } nsNode && String(nsNode, $"{path}.namespace", "a namespace name") is { } nsText)
        {
            if (SharedMemoryNamespace.Check(nsText) is { } nsProblem)
            {
                Error($"{path}.namespace", nsNode, $"namespace '{ErrorCollector.Quote(nsText)}' is not valid: {nsProblem}");
            }
            else if (mode != RegionMode.Attach)
            {
                Error($"{path}.namespace", nsNode, "a stream of another namespace belongs to the pipeline that creates it: give it mode: attach");
            }
            else if (map.Find("initial") is not null)
            {
                Error($"{path}.namespace", nsNode, "a stream of another namespace belongs to the pipeline that creates it: this one cannot write initial values into it");
            }
            else
            {
                streamNamespace = nsText;
            }
        }

        int? depth = null;
        if (Field(map, path, "depth", required: false) is { } depthNode && Int(depthNode, $"{path}.depth", "a power of two from 2 to 1,048,576") is { } d)
        {
            if (d < 2 || d > StreamOptions.MaxCapacityFrames || (d & (d - 1)) != 0)
            {
                Error($"{path}.depth", depthNode, $"depth {d} is not valid; it must be a power of two from 2 to {StreamOptions.MaxCapacityFrames:N0}");
            }
            else
            {
                depth = (int)d;
            }
        }

        var delivery = OptionalEnum(map, path, "delivery", DeliveryNames);
        var wait = OptionalEnum(map, path, "wait", WaitNames);
        var spinBudget = SpinBudget(map, path);
        RemoteSpec? remote = null;
        if (Field(map, path, "remote", required: false) is { } remoteNode)
        {
            remote = Remote(remoteNode, $"{path}.remote");
        }

        InitialSpec? initial = null;
        if (Field(map, path, "initial", required: false) is { } initialNode)
        {
            initial = Initial(initialNode, $"{path}.initial", shape, dtype);
        }

        // A stream whose name, shape and type are known takes part in the graph checks even if other fields are wrong.
        if (name is null || dtype is null || shape is null)
        {
            if (name is not null)
            {
                brokenStreams.Add(name);
            }

            return null;
        }

        return new StreamSpec
        {
            Name = name,
            Shape = shape.Value,
            Dtype = dtype.Value,
            Storage = storage,
            Notify = notify,
            Mode = mode,
            Namespace = streamNamespace,
            Initial = initial,
            Depth = depth,
            Delivery = delivery is null ? null : (Delivery)delivery,
            Wait = wait is null ? null : (WaitPolicy)wait,
            SpinBudget = spinBudget,
            Remote = remote,
        };
    }

    /// <summary>A stream's <c>remote</c> entry; secrets only by file or environment variable.</summary>
    private RemoteSpec? Remote(DocNode node, string path)
    {
        if (Mapping(node, path, "a mapping with nats (a URL) and subject") is not { } map)
        {
            return null;
        }

        foreach (var inline in new[] { "token", "password" })
        {
            if (map.Find(inline) is { } secret)
            {
                errors.Add(new SpecError(
                    $"{path}.{inline}",
                    $"a {inline} is never written in a document: give {inline}_file (a file holding it) or {inline}_env (an environment variable holding it)",
                    file,
                    secret.KeyPosition));
            }
        }

        CheckKeys(map.Entries.Any(e => e.Key is "token" or "password") ? new DocMapping([.. map.Entries.Where(e => e.Key is not ("token" or "password"))], map.Position) : map, path, RemoteKeys);
        var ok = true;
        var url = RequiredString(map, path, "nats", "a URL such as nats://hub:4222");
        if (url is not null && (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("nats" or "tls")))
        {
            Error($"{path}.nats", map.Find("nats")!.Value, $"'{ErrorCollector.Quote(url)}' is not a NATS URL such as nats://hub:4222 or tls://hub:4222");
            ok = false;
        }

        var subject = RequiredString(map, path, "subject", "a subject such as rig1.wfs");
        if (subject is not null && (subject.Any(char.IsWhiteSpace) || subject.Contains('*', StringComparison.Ordinal) || subject.Contains('>', StringComparison.Ordinal)
            || subject.StartsWith('.') || subject.EndsWith('.') || subject.Contains("..", StringComparison.Ordinal)))
        {
            Error($"{path}.subject", map.Find("subject")!.Value, $"'{ErrorCollector.Quote(subject)}' is not one concrete subject (tokens separated by '.', no spaces, no wildcards '*' or '>')");
            ok = false;
        }

        var delivery = OptionalEnum(map, path, "delivery", DeliveryNames);
        string? Optional(string key, string expected) => Field(map, path, key, required: false) is { } n ? String(n, $"{path}.{key}", expected) : null;
        var durable = Optional("durable", "a consumer name");
        if (durable is not null && !durable.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
        {
            Error($"{path}.durable", map.Find("durable")!.Value, $"'{ErrorCollector.Quote(durable)}' cannot name a durable consumer: use letters, digits, '-' and '_'");
            ok = false;
        }

        var user = Optional("user", "a user name");
        var passwordFile = Optional("password_file", "a file path");
        var passwordEnv = Optional("password_env", "an environment variable name");
        if (user is not null && passwordFile is null && passwordEnv is null)
        {
            Error($"{path}.user", map.Find("user")!.Value, "a user needs a password: give password_file or password_env");
            ok = false;
        }
        else if (user is null && (passwordFile ?? passwordEnv) is not null)
        {
            Error(path, map, "a password needs a user: give user");
            ok = false;
        }

        var tokenFile = Optional("token_file", "a file path");
        var tokenEnv = Optional("token_env", "an environment variable name");
        var remote = new RemoteSpec
        {
            Nats = url ?? "",
            Subject = subject ?? "",
            Delivery = delivery is null ? null : (Delivery)delivery,
            Durable = durable,
            TokenFile = tokenFile,
            TokenEnv = tokenEnv,
            User = user,
            PasswordFile = passwordFile,
            PasswordEnv = passwordEnv,
            Creds = Optional("creds", "a file path"),
            NKey = Optional("nkey", "a file path"),
            TlsCa = Optional("tls_ca", "a file path"),
            TlsCert = Optional("tls_cert", "a file path"),
            TlsKey = Optional("tls_key", "a file path"),
            TlsRequired = OptionalBool(map, path, "tls_required"),
        };
        return ok && url is not null && subject is not null ? remote : null;
    }

    private ImmutableArray<int>? Shape(DocMapping map, string path)
    {
        const string Expected = "a list of 1 to 8 positive integers, such as [120, 120]";
        if (Field(map, path, "shape", required: true) is not { } node)
        {
            return null;
        }

        if (node is not DocSequence seq || seq.Items.Count == 0 || seq.Items.Count > FrameFormat.MaxRank)
        {
            Error($"{path}.shape", node, $"must be {Expected}");
            return null;
        }

        var dims = new List<int>();
        for (var i = 0; i < seq.Items.Count; i++)
        {
            if (seq.Items[i] is DocScalar { } sc && sc.AsLong() is { } v && v >= 1 && v <= int.MaxValue)
            {
                dims.Add((int)v);
            }
            else
            {
                Error($"{path}.shape[{i}]", seq.Items[i], $"must be a positive integer; the shape must be {Expected}");
                return null;
            }
        }

        long elements = 1;
        foreach (var d in dims)
        {
            elements *= d;
            if (elements > FrameFormat.MaxFrameBytes)
            {
                Error($"{path}.shape", node, $"[{string.Join(", ", dims)}] is larger than the largest frame ({FrameFormat.MaxFrameBytes:N0} bytes)");
                return null;
            }
        }

        return [.. dims];
    }

    private InitialSpec? Initial(DocNode node, string path, ImmutableArray<int>? shape, ElementType? dtype)
    {
        if (Mapping(node, path, "a mapping with a pattern: constant, normal, values or identity") is not { } map)
        {
            return null;
        }

        var pattern = RequiredString(map, path, "pattern", "constant, normal, values or identity");
        switch (pattern)
        {
            case "constant":
                CheckKeys(map, path, ["pattern", "value"]);
                return Field(map, path, "value", required: true) is { } v && Number(v, $"{path}.value", "a number") is { } value ? new ConstantInitial(value) : null;

            case "normal":
                CheckKeys(map, path, ["pattern", "seed", "mean", "std"]);
                if (dtype is { } t && t is not (ElementType.Float32 or ElementType.Float64))
                {
                    Error($"{path}.pattern", map.Find("pattern")!.Value, $"pattern normal needs a float dtype (float32 or float64), not {t.ToName()}");
                }

                long? seed = Field(map, path, "seed", required: false) is { } seedNode ? Int(seedNode, $"{path}.seed", "an integer") : null;
                var mean = OptionalNumber(map, path, "mean");
                var std = OptionalNumber(map, path, "std");
                if (std is < 0)
                {
                    Error($"{path}.std", map.Find("std")!.Value, $"std must be at least 0, not {Fmt(std.Value)}");
                }

                return new NormalInitial(seed, mean, std);

            case "values":
                CheckKeys(map, path, ["pattern", "values"]);
                if (Field(map, path, "values", required: true) is not { } valuesNode)
                {
                    return null;
                }

                var flat = new List<double>();
                var found = new List<int>();
                var leafDepth = -1;
                if (!NestedValues(valuesNode, $"{path}.values", flat, found, 0, ref leafDepth))
                {
                    return null;
                }

                if (shape is { } sh && !found.SequenceEqual(sh))
                {
                    Error($"{path}.values", valuesNode, $"values have shape [{string.Join(", ", found)}]; the stream's shape is [{string.Join(", ", sh)}]");
                    return null;
                }

                return new ValuesInitial([.. flat]);

            case "identity":
                CheckKeys(map, path, ["pattern", "scale"]);
                if (shape is { } s2 && s2.Length != 2)
                {
                    Error($"{path}.pattern", map.Find("pattern")!.Value, $"pattern identity needs a 2-D stream; this one has shape [{string.Join(", ", s2)}]");
                }

                return new IdentityInitial(OptionalNumber(map, path, "scale"));

            case null:
                return null;

            default:
                Error($"{path}.pattern", map.Find("pattern")!.Value, $"unknown pattern '{ErrorCollector.Quote(pattern)}'; valid patterns are constant, normal, values, identity");
                return null;
        }
    }

    /// <summary>Flattens nested lists, checking every list at a depth has one length and every number sits at one depth.</summary>
    private bool NestedValues(DocNode node, string path, List<double> flat, List<int> shape, int depth, ref int leafDepth)
    {
        if (node is DocSequence seq)
        {
            if (leafDepth >= 0 && depth >= leafDepth)
            {
                Error(path, node, "is ragged: a list where the others at this depth are numbers");
                return false;
            }

            if (shape.Count == depth)
            {
                shape.Add(seq.Items.Count);
            }
            else if (shape[depth] != seq.Items.Count)
            {
                Error(path, node, $"is ragged: a list of {seq.Items.Count} where the others at this depth hold {shape[depth]}");
                return false;
            }

            for (var i = 0; i < seq.Items.Count; i++)
            {
                if (!NestedValues(seq.Items[i], $"{path}[{i}]", flat, shape, depth + 1, ref leafDepth))
                {
                    return false;
                }
            }

            return true;
        }

        if (leafDepth < 0)
        {
            leafDepth = depth;
        }

        if (shape.Count != depth || leafDepth != depth)
        {
            Error(path, node, "is ragged: a number where the others at this depth are lists");
            return false;
        }

        if (node is DocScalar sc && (sc.AsDouble() ?? (sc.AsBool() is { } b ? (b ? 1 : 0) : null)) is { } value)
        {
            flat.Add(value);
            return true;
        }

        Error(path, node, $"must be a number, not {Describe(node)}");
        return false;
    }

    private KernelSpec? BindKernel(DocNode node, string path)
    {
        if (Mapping(node, path, "a kernel: a mapping with name, kind, input and output") is not { } map)
        {
            return null;
        }

        CheckKeys(map, path, KernelKeys);
        var common = CommonFields(map, path, "a kernel kind such as cpu.copy");
        var (inputs, inputsAsList) = OneOrMany(map, path, "input", "inputs", "stream");
        var (outputs, outputsAsList) = OneOrMany(map, path, "output", "outputs", "stream");
        string? operation = null;
        if (Field(map, path, "operation", required: false) is { } opNode)
        {
            operation = String(opNode, $"{path}.operation", "an expression such as 'input * 2'");
        }

        var readTimeout = OptionalPositive(map, path, "read_timeout", allowZero: false);
        var pauseSleep = OptionalPositive(map, path, "pause_sleep", allowZero: true);
        var pollInterval = OptionalPositive(map, path, "poll_interval", allowZero: false);
        var trigger = OptionalEnum(map, path, "trigger_policy", TriggerNames);
        var syncNode = Field(map, path, "synchronization", required: false);
        var sync = syncNode is null ? null : Synchronization(syncNode, $"{path}.synchronization");
        var propagate = OptionalBool(map, path, "propagate_frame_id");
        var delivery = PerInputValues(map, path, "delivery", DeliveryNames, v => (Delivery)v);
        var wait = PerInputValues(map, path, "wait", WaitNames, v => (WaitPolicy)v);

        if (sync?.Mode == SynchronizationMode.MatchingFrameId && inputs is { } ins)
        {
            var effective = trigger is null ? (ins.Length > 1 ? TriggerPolicy.AllNew : TriggerPolicy.AnyNew) : (TriggerPolicy)trigger;
            if (effective != TriggerPolicy.AllNew)
            {
                Error($"{path}.synchronization.mode", syncNode, "matching_frame_id needs trigger_policy: all_new (and at least two inputs)");
            }
        }

        // A node whose name, kind and streams are known takes part in the graph checks even if other fields are wrong.
        if (common.Name is null || common.Kind is null || inputs is null || outputs is null)
        {
            return null;
        }

        return WithCommon(common, new KernelSpec
        {
            Name = common.Name,
            Kind = common.Kind,
            Inputs = inputs.Value,
            InputsAsList = inputsAsList,
            Outputs = outputs.Value,
            OutputsAsList = outputsAsList,
            Operation = operation,
            ReadTimeout = readTimeout,
            PauseSleep = pauseSleep,
            PollInterval = pollInterval,
            TriggerPolicy = trigger is null ? null : (TriggerPolicy)trigger,
            Synchronization = sync,
            PropagateFrameId = propagate,
            Delivery = delivery,
            Wait = wait,
        });
    }

    private SourceSpec? BindSource(DocNode node, string path)
    {
        if (Mapping(node, path, "a source: a mapping with name, kind and stream") is not { } map)
        {
            return null;
        }

        CheckKeys(map, path, SourceKeys);
        var common = CommonFields(map, path, "a source kind such as synthetic.array");
        var (streams, asList) = OneOrMany(map, path, "stream", "streams", "stream");
        var pollInterval = OptionalPositive(map, path, "poll_interval", allowZero: false);
        var readTimeout = OptionalPositive(map, path, "read_timeout", allowZero: false);
        if (common.Name is null || common.Kind is null || streams is null)
        {
            return null;
        }

        return WithCommon(common, new SourceSpec
        {
            Name = common.Name,
            Kind = common.Kind,
            Streams = streams.Value,
            StreamsAsList = asList,
            PollInterval = pollInterval,
            ReadTimeout = readTimeout,
        });
    }

    private SinkSpec? BindSink(DocNode node, string path)
    {
        if (Mapping(node, path, "a sink: a mapping with name, kind and stream") is not { } map)
        {
            return null;
        }

        CheckKeys(map, path, SinkKeys);
        var common = CommonFields(map, path, "a sink kind such as null.sink");
        var stream = RequiredString(map, path, "stream", "the stream it consumes");
        ImmutableArray<string> outputs = [];
        if (Field(map, path, "outputs", required: false) is { } outputsNode)
        {
            outputs = StringList(outputsNode, $"{path}.outputs", "a list of stream names") ?? [];
        }

        var readTimeout = OptionalPositive(map, path, "read_timeout", allowZero: false);
        var pauseSleep = OptionalPositive(map, path, "pause_sleep", allowZero: true);
        var consumeTimeout = OptionalPositive(map, path, "consume_timeout", allowZero: false);
        var delivery = OptionalEnum(map, path, "delivery", DeliveryNames);
        var wait = OptionalEnum(map, path, "wait", WaitNames);
        if (common.Name is null || common.Kind is null || stream is null)
        {
            return null;
        }

        return WithCommon(common, new SinkSpec
        {
            Name = common.Name,
            Kind = common.Kind,
            Stream = stream,
            Outputs = outputs,
            ReadTimeout = readTimeout,
            PauseSleep = pauseSleep,
            ConsumeTimeout = consumeTimeout,
            Delivery = delivery is null ? null : (Delivery)delivery,
            Wait = wait is null ? null : (WaitPolicy)wait,
        });
    }

    /// <summary>The fields every node has: name, kind, auxiliary inputs, parameters, placement and CPU.</summary>
    private readonly record struct NodeFields(
        string? Name,
        string? Kind,
        ImmutableArray<AuxiliaryBinding> Auxiliary,
        bool AuxiliaryAsMapping,
        Parameters Parameters,
        WorkerPlacement? Placement,
        int? Cpu);

    private NodeFields CommonFields(DocMapping map, string path, string kindExample)
    {
        var name = NodeName(map, path);
        var kind = RequiredString(map, path, "kind", kindExample);
        var (auxiliary, auxAsMap) = Auxiliary(map, path);
        var parameters = BindParameters(map, path);
        var placement = OptionalEnum(map, path, "placement", PlacementNames);
        return new NodeFields(name, kind, auxiliary, auxAsMap, parameters, placement is null ? null : (WorkerPlacement)placement, OptionalCpu(map, path));
    }

    private static T WithCommon<T>(NodeFields fields, T node)
        where T : NodeSpec =>
        (T)((NodeSpec)node with
        {
            Auxiliary = fields.Auxiliary,
            AuxiliaryAsMapping = fields.AuxiliaryAsMapping,
            Parameters = fields.Parameters,
            Placement = fields.Placement,
            Cpu = fields.Cpu,
        });

    private SynchronizationSpec? Synchronization(DocNode node, string path)
    {
        if (Mapping(node, path, "a mapping with mode, on_skew, max_skew_generations and max_wait_s") is not { } map)
        {
            return null;
        }

        CheckKeys(map, path, SynchronizationKeys);
        var mode = OptionalEnum(map, path, "mode", SyncModeNames);
        string? onSkew = null;
        if (Field(map, path, "on_skew", required: false) is { } skewNode && String(skewNode, $"{path}.on_skew", "drop_older") is { } skew)
        {
            if (skew != "drop_older")
            {
                Error($"{path}.on_skew", skewNode, $"unknown on_skew '{ErrorCollector.Quote(skew)}'; the only valid value is drop_older");
            }

            onSkew = skew;
        }

        int? maxSkew = null;
        if (Field(map, path, "max_skew_generations", required: false) is { } msNode && Int(msNode, $"{path}.max_skew_generations", "an integer of at least 1") is { } ms)
        {
            if (ms < 1 || ms > int.MaxValue)
            {
                Error($"{path}.max_skew_generations", msNode, $"must be at least 1, not {ms}");
            }
            else
            {
                maxSkew = (int)ms;
            }
        }

        var hasMaxWait = map.Find("max_wait_s") is not null;
        var hasTimeout = map.Find("timeout") is not null;
        if (hasMaxWait && hasTimeout)
        {
            Error($"{path}.timeout", map.Find("timeout")!.Value, "give max_wait_s or its alias timeout, not both");
        }

        var maxWait = OptionalPositive(map, path, hasTimeout && !hasMaxWait ? "timeout" : "max_wait_s", allowZero: false);
        return new SynchronizationSpec
        {
            Mode = mode is null ? null : (SynchronizationMode)mode,
            OnSkew = onSkew,
            MaxSkewGenerations = maxSkew,
            MaxWaitS = maxWait,
            MaxWaitSpelledTimeout = hasTimeout && !hasMaxWait,
        };
    }

    private string? NodeName(DocMapping map, string path)
    {
        var name = RequiredString(map, path, "name", "a name");
        if (name is not null && (name.Trim().Length == 0 || name.Any(char.IsControl)))
        {
            Error($"{path}.name", map.Find("name")!.Value, "must be a non-empty name without control characters");
            return null;
        }

        return name;
    }

    private (ImmutableArray<string>? Values, bool AsList) OneOrMany(DocMapping map, string path, string single, string many, string what)
    {
        var one = map.Find(single);
        var list = map.Find(many);
        if (one is not null && list is not null)
        {
            Error($"{path}.{many}", list.Value, $"give '{single}' or '{many}', not both");
            return (null, false);
        }

        if (one is null && list is null)
        {
            Error(path, map, $"missing '{single}' (one {what}) or '{many}' (a list of {what}s)");
            return (null, false);
        }

        if (one is not null)
        {
            Track($"{path}.{single}", one.Value);
            var value = String(one.Value, $"{path}.{single}", $"a {what} name");
            return value is null ? (null, false) : ([value], false);
        }

        Track($"{path}.{many}", list!.Value);
        var values = StringList(list.Value, $"{path}.{many}", $"a non-empty list of {what} names");
        if (values is { Length: 0 })
        {
            Error($"{path}.{many}", list.Value, $"must list at least one {what}");
            return (null, true);
        }

        return (values, true);
    }

    private (ImmutableArray<AuxiliaryBinding> Bindings, bool AsMapping) Auxiliary(DocMapping map, string path)
    {
        if (Field(map, path, "auxiliary", required: false) is not { } node)
        {
            return ([], false);
        }

        var apath = $"{path}.auxiliary";
        switch (node)
        {
            case DocSequence:
                var names = StringList(node, apath, "a list of stream names, or a mapping of alias to stream");
                return (names is null ? [] : [.. names.Value.Select(n => new AuxiliaryBinding(n, n))], false);
            case DocMapping m:
                var bindings = new List<AuxiliaryBinding>();
                foreach (var entry in m.Entries)
                {
                    Track($"{apath}.{entry.Key}", entry.Value);
                    if (String(entry.Value, $"{apath}.{entry.Key}", "a stream name") is { } stream)
                    {
                        bindings.Add(new AuxiliaryBinding(entry.Key, stream));
                    }
                }

                DuplicateKeys(m, apath);
                return ([.. bindings], true);
            default:
                if (node is DocScalar sc && sc.IsNull)
                {
                    return ([], false);
                }

                Error(apath, node, $"must be a list of stream names, or a mapping of alias to stream, not {Describe(node)}");
                return ([], false);
        }
    }

    private Parameters BindParameters(DocMapping map, string path)
    {
        if (Field(map, path, "parameters", required: false) is not { } node || node is DocScalar { IsNull: true })
        {
            return Parameters.Empty;
        }

        if (node is not DocMapping m)
        {
            Error($"{path}.parameters", node, $"must be a mapping of parameter names to values, not {Describe(node)}");
            return Parameters.Empty;
        }

        DuplicateKeys(m, $"{path}.parameters");
        var entries = new List<(string, JsonNode?, SourcePosition)>();
        foreach (var entry in m.Entries)
        {
            Track($"{path}.parameters.{entry.Key}", entry.Value);
            entries.Add((entry.Key, ToJson(entry.Value), entry.KeyPosition));
        }

        return Parameters.From(entries);
    }

    private PerInput<T>? PerInputValues<T>(DocMapping map, string path, string key, string[] names, Func<int, T> convert)
        where T : struct
    {
        if (Field(map, path, key, required: false) is not { } node)
        {
            return null;
        }

        if (node is DocMapping m)
        {
            DuplicateKeys(m, $"{path}.{key}");
            var values = ImmutableDictionary.CreateBuilder<string, T>(StringComparer.Ordinal);
            foreach (var entry in m.Entries)
            {
                Track($"{path}.{key}.{entry.Key}", entry.Value);
                if (EnumValue(entry.Value, $"{path}.{key}.{entry.Key}", names) is { } v)
                {
                    values[entry.Key] = convert(v);
                }
            }

            return new PerInput<T>(null, values.ToImmutable());
        }

        return EnumValue(node, $"{path}.{key}", names) is { } all ? new PerInput<T>(convert(all), ImmutableDictionary<string, T>.Empty) : null;
    }

    private int? OptionalCpu(DocMapping map, string path)
    {
        if (Field(map, path, "cpu", required: false) is not { } node || Int(node, $"{path}.cpu", "a CPU number (0, 1, ...)") is not { } cpu)
        {
            return null;
        }

        if (cpu < 0 || cpu > 4095)
        {
            Error($"{path}.cpu", node, $"CPU {cpu} is not valid; CPUs are numbered from 0");
            return null;
        }

        return (int)cpu;
    }

    private static readonly string[] DeliveryNames = ["lossless", "latest"];
    private static readonly string[] WaitNames = ["hybrid", "spin", "block", "predictive"];
    private static readonly string[] TriggerNames = ["any_new", "all_new"];
    private static readonly string[] SyncModeNames = ["count", "matching_frame_id"];
    private static readonly string[] PlacementNames = ["process", "thread"];

    private int? OptionalEnum(DocMapping map, string path, string key, string[] names) =>
        Field(map, path, key, required: false) is { } node ? EnumValue(node, $"{path}.{key}", names) : null;

    private int? EnumValue(DocNode node, string path, string[] names)
    {
        var text = String(node, path, string.Join(", ", names));
        if (text is null)
        {
            return null;
        }

        var index = Array.IndexOf(names, text);
        if (index < 0)
        {
            Error(path, node, $"unknown value '{ErrorCollector.Quote(text)}'; valid values are {string.Join(", ", names)}{errors.Suggest(text, names)}");
            return null;
        }

        return index;
    }

    private bool? OptionalBool(DocMapping map, string path, string key)
    {
        if (Field(map, path, key, required: false) is not { } node)
        {
            return null;
        }

        if (node is DocScalar sc && sc.AsBool() is { } b)
        {
            return b;
        }

        Error($"{path}.{key}", node, $"must be true or false, not {Describe(node)}");
        return null;
    }

    private double? OptionalNumber(DocMapping map, string path, string key) =>
        Field(map, path, key, required: false) is { } node ? Number(node, $"{path}.{key}", "a number") : null;

    /// <summary><c>spin_budget</c>: a fraction of a core, above 0 and at most 1.</summary>
    private double? SpinBudget(DocMapping map, string path)
    {
        var key = path.Length == 0 ? "spin_budget" : $"{path}.spin_budget";
        if (Field(map, path, "spin_budget", required: false) is not { } node || Number(node, key, "a fraction of a core") is not { } value)
        {
            return null;
        }

        if (!(value > 0 && value <= 1))
        {
            Error(key, node, $"{Fmt(value)} is not valid; the spin budget is a fraction of a core (of the frame interval), above 0 and at most 1, such as 0.03");
            return null;
        }

        return value;
    }

    private double? OptionalPositive(DocMapping map, string path, string key, bool allowZero)
    {
        if (Field(map, path, key, required: false) is not { } node || Number(node, $"{path}.{key}", "a number of seconds") is not { } value)
        {
            return null;
        }

        if (double.IsNaN(value) || double.IsInfinity(value) || value < 0 || (!allowZero && value == 0))
        {
            Error($"{path}.{key}", node, $"{Fmt(value)} is not valid; it must be a {(allowZero ? "non-negative" : "positive")} finite number of seconds");
            return null;
        }

        return value;
    }

    private List<T?> List<T>(DocMapping map, string key, string parent, bool required, Func<DocNode, string, T?> item)
    {
        var results = new List<T?>();
        var path = parent.Length == 0 ? key : $"{parent}.{key}";
        if (Field(map, parent, key, required) is not { } node)
        {
            return results;
        }

        if (node is DocScalar { IsNull: true } && !required)
        {
            return results;
        }

        if (node is not DocSequence seq)
        {
            Error(path, node, $"must be a list, not {Describe(node)}");
            return results;
        }

        if (required && seq.Items.Count == 0)
        {
            Error(path, node, "must list at least one entry");
        }

        for (var i = 0; i < seq.Items.Count; i++)
        {
            var itemPath = $"{path}[{i}]";
            Track(itemPath, seq.Items[i]);
            var bound = item(seq.Items[i], itemPath);
            if (bound is not null && bound is not string)
            {
                paths[bound] = itemPath;
            }

            results.Add(bound);
        }

        return results;
    }

    private ImmutableArray<string>? StringList(DocNode node, string path, string expected)
    {
        if (node is not DocSequence seq)
        {
            Error(path, node, $"must be {expected}, not {Describe(node)}");
            return null;
        }

        var values = new List<string>();
        for (var i = 0; i < seq.Items.Count; i++)
        {
            Track($"{path}[{i}]", seq.Items[i]);
            if (String(seq.Items[i], $"{path}[{i}]", "a stream name") is { } s)
            {
                values.Add(s);
            }
        }

        return values.Count == seq.Items.Count ? [.. values] : null;
    }

    private string? RequiredString(DocMapping map, string path, string key, string expected) =>
        Field(map, path, key, required: true) is { } node ? String(node, $"{path}.{key}", expected) : null;

    private string? String(DocNode node, string path, string expected)
    {
        if (node is DocScalar sc && !sc.IsNull && sc.Text is { Length: > 0 } text)
        {
            return text;
        }

        Error(path, node, $"must be {expected}, not {Describe(node)}");
        return null;
    }

    private long? Int(DocNode node, string path, string expected)
    {
        if (node is DocScalar sc && sc.AsLong() is { } v)
        {
            return v;
        }

        Error(path, node, $"must be {expected}, not {Describe(node)}");
        return null;
    }

    private double? Number(DocNode node, string path, string expected)
    {
        if (node is DocScalar sc && sc.AsDouble() is { } v)
        {
            return v;
        }

        Error(path, node, $"must be {expected}, not {Describe(node)}");
        return null;
    }

    private DocMapping? Mapping(DocNode node, string path, string expected)
    {
        if (node is DocMapping m)
        {
            DuplicateKeys(m, path);
            return m;
        }

        Error(path, node, $"must be {expected}, not {Describe(node)}");
        return null;
    }

    /// <summary>The value of <paramref name="key"/>, recording its position; reports a missing required key.</summary>
    private DocNode? Field(DocMapping map, string path, string key, bool required)
    {
        var entry = map.Find(key);
        var fieldPath = path.Length == 0 ? key : $"{path}.{key}";
        if (entry is null)
        {
            if (required)
            {
                Error(path, map, $"missing required key '{key}'");
            }

            return null;
        }

        Track(fieldPath, entry.Value);
        return entry.Value;
    }

    private static bool Present(DocMapping map, string key) => map.Find(key) is { Value: not DocScalar { IsNull: true } };

    private void CheckKeys(DocMapping map, string path, string[] allowed)
    {
        foreach (var entry in map.Entries)
        {
            if (Array.IndexOf(allowed, entry.Key) < 0)
            {
                var where = path.Length == 0 ? entry.Key : $"{path}.{entry.Key}";
                errors.Add(new SpecError(where, $"unknown key '{ErrorCollector.Quote(entry.Key)}'{errors.Suggest(entry.Key, allowed)}; valid keys are {string.Join(", ", allowed)}", file, entry.KeyPosition));
            }
        }
    }

    private void DuplicateKeys(DocMapping map, string path)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var entry in map.Entries)
        {
            if (!seen.Add(entry.Key))
            {
                var where = path.Length == 0 ? entry.Key : $"{path}.{entry.Key}";
                errors.Add(new SpecError(where, $"key '{ErrorCollector.Quote(entry.Key)}' is given twice; give it once", file, entry.KeyPosition));
            }
        }
    }

    private void Track(string path, DocNode node)
    {
        if (node.Position.IsKnown)
        {
            positions.TryAdd(path, node.Position);
        }
    }

    private void Error(string path, DocNode? node, string message) =>
        errors.Add(new SpecError(path, message, file, node?.Position ?? SourcePosition.None));

    /// <summary>Converts a document value to JSON: plain scalars become booleans, numbers or null; quoted ones stay strings.</summary>
    internal static JsonNode? ToJson(DocNode node)
    {
        switch (node)
        {
            case DocScalar sc when sc.IsNull:
                return null;
            case DocScalar sc when sc.AsBool() is { } b:
                return JsonValue.Create(b);
            case DocScalar sc when sc.AsLong() is { } l:
                return JsonValue.Create(l);
            case DocScalar sc when sc.AsDouble() is { } d:
                return double.IsFinite(d) ? JsonValue.Create(d) : JsonValue.Create(double.IsNaN(d) ? ".nan" : d > 0 ? ".inf" : "-.inf");
            case DocScalar sc:
                return JsonValue.Create(sc.Text ?? "");
            case DocSequence seq:
                return new JsonArray([.. seq.Items.Select(ToJson)]);
            case DocMapping m:
                var o = new JsonObject();
                foreach (var e in m.Entries)
                {
                    o[e.Key] = ToJson(e.Value);
                }

                return o;
            default:
                return null;
        }
    }

    private static string Describe(DocNode? node) => node switch
    {
        null => "nothing",
        DocScalar { IsNull: true } => "null",
        DocScalar sc => $"'{ErrorCollector.Quote(sc.Text ?? "")}'",
        DocSequence => "a list",
        DocMapping => "a mapping",
        _ => "something else",
    };

    private static string Fmt(double value) => value.ToString("G", CultureInfo.InvariantCulture);
}
