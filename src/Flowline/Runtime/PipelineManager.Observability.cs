using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Flowline.Documents;
using Flowline.Kernels;
using Flowline.SharedMemory;

namespace Flowline.Runtime;

/// <summary>Who changes a setting: the client's address, its token's scope.</summary>
/// <param name="Client">The client's address, or <c>local</c>.</param>
/// <param name="Scope">The token's scope, or null without tokens.</param>
public sealed record ChangeSource(string Client, string? Scope)
{
    /// <summary>A change made in process.</summary>
    public static ChangeSource Local { get; } = new("local", null);
}

/// <summary>The observability plane of a manager (issue 12): its processes, routed requests, live settings and topology.</summary>
public sealed partial class PipelineManager
{
    /// <summary>How long a settings change waits for the worker's acknowledgement.</summary>
    public static readonly TimeSpan SettingsTimeout = TimeSpan.FromSeconds(5);

    private static readonly DateTimeOffset ProcessStart = StartOfThisProcess();
    private readonly ProcessRegistry registry = new();
    private readonly object settingsGate = new();
    private Dictionary<string, JsonObject>? settingValues;
    private Dictionary<string, NodeSettingsSchema>? settingSchemas;
    private readonly Dictionary<string, SemaphoreSlim> nodeChangeGates = new(StringComparer.Ordinal);

    /// <summary>The UUID of the manager's own process in the registry.</summary>
    public Guid ProcessId { get; } = Guid.NewGuid();

    private readonly HashSet<(string Node, string Field)> changedFields = [];
    private readonly ObservabilityLogs logs;

    /// <summary>The settings event log (<c>GET /settings/events</c>): the manager's own, or the one its options gave (a control service's).</summary>
    public SequencedLog<SettingsEvent> SettingsLog => logs.Settings;

    /// <summary>The topology event log (<c>GET /topology/events</c>): the manager's own, or the one its options gave.</summary>
    public SequencedLog<TopologyEvent> TopologyLog => logs.Topology;

    /// <summary>Every process of the pipeline: the manager, each worker's current launch, and external processes.</summary>
    public IReadOnlyList<ProcessRecord> Processes()
    {
        var list = new List<ProcessRecord>
        {
            new()
            {
                Id = ProcessId.ToString(),
                Pid = Environment.ProcessId,
                StartTime = Iso(ProcessStart),
                Host = Environment.MachineName,
                Role = "manager",
                Nodes = [],
                State = disposed ? "exited" : "running",
            },
        };
        for (var i = 0; i < slots.Length; i++)
        {
            if (Volatile.Read(ref slots[i]) is not { } slot)
            {
                continue;
            }

            var (written, read) = StreamsOf(slot.Plan.Node);
            list.Add(new ProcessRecord
            {
                Id = slot.ProcessId.ToString(),
                Pid = slot.Pid,
                StartTime = Iso(slot.StartedAt),
                Host = Environment.MachineName,
                Role = "worker",
                Placement = slot.IsThread ? "thread" : "process",
                Nodes = [slot.Plan.Name],
                StreamsWritten = written,
                StreamsRead = read,
                State = slot.HasExited ? "exited" : slot.Control.State.ToString().ToLowerInvariant(),
            });
        }

        list.AddRange(registry.Externals());
        return list;
    }

    /// <summary>
    /// Registers a process outside the pipeline (a code-first program, an external reader or writer) that
    /// owns <paramref name="nodes"/> and writes <paramref name="written"/>; returns the UUID the manager
    /// gives it. A claim that collides with a worker's or another process's fails as a whole, naming what collides.
    /// </summary>
    public Guid RegisterExternalProcess(int pid, IReadOnlyList<string> nodes, IReadOnlyList<string> written, IReadOnlyList<string> read)
    {
        ArgumentNullException.ThrowIfNull(nodes);
        ArgumentNullException.ThrowIfNull(written);
        ArgumentNullException.ThrowIfNull(read);
        var id = registry.RegisterExternal(pid, nodes, written, read);
        Topology("process_registered", id, nodes, [.. written, .. read]);
        return id;
    }

    /// <summary>Forgets an external process registered with <see cref="RegisterExternalProcess"/>.</summary>
    public void UnregisterExternalProcess(Guid id)
    {
        registry.Release(id);
        Topology("process_exited", id, [], []);
    }

    /// <summary>Sends <paramref name="op"/> to the worker of node <paramref name="node"/>; throws <see cref="RequestException"/> with a typed code.</summary>
    public Task<RequestReply> RequestNodeAsync(string node, string op, JsonObject? args, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(node);
        var index = Plan.Workers.FirstOrDefault(w => w.Name == node)?.Index
            ?? throw new RequestException(RequestErrorCode.UnknownTarget, $"no process owns node '{node}': the pipeline has no such node");
        var slot = Volatile.Read(ref slots[index])
            ?? throw new RequestException(RequestErrorCode.ProcessExited, $"node '{node}' has no worker now (the pipeline is {State.ToName()})");
        return Route(slot, op, args, timeout, cancellationToken);
    }

    /// <summary>Sends <paramref name="op"/> to process <paramref name="processId"/> (a UUID of <see cref="Processes"/>).</summary>
    public Task<RequestReply> RequestProcessAsync(string processId, string op, JsonObject? args, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(processId);
        if (!Guid.TryParse(processId, out var id))
        {
            throw new RequestException(RequestErrorCode.UnknownTarget, $"'{processId}' is not a process id (a UUID of GET /processes)");
        }

        if (id == ProcessId)
        {
            return Task.FromResult(ManagerRequest(op, args));
        }

        for (var i = 0; i < slots.Length; i++)
        {
            if (Volatile.Read(ref slots[i]) is { } slot && slot.ProcessId == id)
            {
                return Route(slot, op, args, timeout, cancellationToken);
            }
        }

        if (registry.HasExited(id))
        {
            throw new RequestException(RequestErrorCode.ProcessExited, $"process {id} exited");
        }

        if (registry.Externals().Any(p => p.Id == id.ToString()))
        {
            throw new RequestException(RequestErrorCode.NoHandler, $"process {id} is external: it has no request mailbox");
        }

        throw new RequestException(RequestErrorCode.UnknownTarget, $"no process has id {id}");
    }

    /// <summary>Every node's settings schema, from its kind's own declaration.</summary>
    public SettingsSchema SettingsSchema()
    {
        EnsureSettings();
        lock (settingsGate)
        {
            return new SettingsSchema { Nodes = new Dictionary<string, NodeSettingsSchema>(settingSchemas!, StringComparer.Ordinal) };
        }
    }

    /// <summary>Every node's current settings (the server's truth).</summary>
    public SettingsSnapshot Settings()
    {
        EnsureSettings();
        lock (settingsGate)
        {
            return new SettingsSnapshot
            {
                Seq = SettingsLog.Seq,
                Nodes = settingValues!.ToDictionary(p => p.Key, p => (JsonObject)p.Value.DeepClone(), StringComparer.Ordinal),
            };
        }
    }

    /// <summary>
    /// Changes node <paramref name="node"/>'s settings by a JSON merge patch: validated against the kind's
    /// schema (<see cref="SettingsValidationException"/> naming the field, nothing changed), sent to the
    /// running worker, which applies it between two frames, and recorded only once it acknowledged. With no
    /// worker running, it is stored: the worker gets it when it starts.
    /// </summary>
    public async Task<SettingsPatchResult> PatchSettingsAsync(string node, JsonObject patch, ChangeSource? source = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(node);
        ArgumentNullException.ThrowIfNull(patch);
        EnsureSettings();
        source ??= ChangeSource.Local;
        NodeSettingsSchema? schema;
        lock (settingsGate)
        {
            settingSchemas!.TryGetValue(node, out schema);
        }

        if (schema is null)
        {
            throw new KeyNotFoundException($"the pipeline has no node '{node}' with settings");
        }

        SemaphoreSlim nodeGate;
        lock (settingsGate)
        {
            if (!nodeChangeGates.TryGetValue(node, out nodeGate!))
            {
                nodeGate = new SemaphoreSlim(1, 1);
                nodeChangeGates[node] = nodeGate;
            }
        }

        // One change of a node at a time (the log's order is the order of application); nodes never wait for each other.
        await nodeGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            JsonObject current;
            lock (settingsGate)
            {
                current = (JsonObject)settingValues![node].DeepClone();
            }

            var index = Plan.Workers.First(w => w.Name == node).Index;
            var slot = Volatile.Read(ref slots[index]);
            var running = slot is not null && !slot.HasExited;
            var changes = Validate(node, schema, current, patch);
            string? processId = null;
            var appliedBy = "next_start";
            if (changes.Count > 0 && running)
            {
                try
                {
                    await SendAsync(slot!, "update_setting", new JsonObject { ["values"] = changes.DeepClone() }, SettingsTimeout, cancellationToken).ConfigureAwait(false);
                    processId = slot!.ProcessId.ToString();
                    appliedBy = "live";
                }
                catch (RequestException e) when (e.Code == RequestErrorCode.ProcessExited)
                {
                    // The worker ended meanwhile: stored, its next launch gets it.
                }
            }
            else if (running)
            {
                appliedBy = "live";
            }

            var time = Iso(DateTimeOffset.UtcNow);
            long seq;
            JsonObject values;
            lock (settingsGate)
            {
                var stored = settingValues![node];
                var fields = changes.Select(p => (p.Key, Old: stored[p.Key]?.DeepClone(), New: p.Value?.DeepClone())).ToList();
                foreach (var (field, _, value) in fields)
                {
                    stored[field] = value?.DeepClone();
                    changedFields.Add((node, field));
                }

                seq = fields.Count == 0 ? SettingsLog.Seq : SettingsLog.Append(fields.Count, (s, i) => new SettingsEvent
                {
                    Seq = s,
                    Time = time,
                    Node = node,
                    Field = fields[i].Key,
                    Old = fields[i].Old?.DeepClone(),
                    New = fields[i].New?.DeepClone(),
                    Client = source.Client,
                    Scope = source.Scope,
                    ProcessId = processId,
                });
                values = (JsonObject)stored.DeepClone();
            }

            return new SettingsPatchResult { Seq = seq, Node = node, Values = values, Applied = true, AppliedBy = appliedBy };
        }
        finally
        {
            nodeGate.Release();
        }
    }

    /// <summary>The current settings of <paramref name="node"/> that differ from its document's, or null.</summary>
    internal JsonObject? ChangedSettings(string node)
    {
        if (settingValues is null)
        {
            return null;
        }

        var spec = Plan.Workers.FirstOrDefault(w => w.Name == node)?.Node;
        lock (settingsGate)
        {
            if (spec is null || !settingValues.TryGetValue(node, out var values))
            {
                return null;
            }

            var changed = new JsonObject();
            foreach (var (field, value) in values)
            {
                // A field the document leaves out starts at its default: only a value other than that is sent.
                var original = spec.Parameters.Contains(field) ? spec.Parameters.Get(field) : settingSchemas?.GetValueOrDefault(node)?.Fields.FirstOrDefault(f => f.Name == field)?.Default;
                if (!JsonNode.DeepEquals(original, value) && IsLive(node, field))
                {
                    changed[field] = value?.DeepClone();
                }
            }

            return changed.Count == 0 ? null : changed;
        }
    }

    /// <summary>True if field <paramref name="field"/> of <paramref name="node"/> was changed since the manager was made.</summary>
    public bool SettingChanged(string node, string field)
    {
        lock (settingsGate)
        {
            return changedFields.Contains((node, field));
        }
    }

    /// <summary>
    /// Takes over the settings <paramref name="previous"/> changed (a control service renewing the manager of
    /// the same document after a stop), so that the next start runs with them rather than the document's.
    /// </summary>
    public void AdoptSettings(PipelineManager previous)
    {
        ArgumentNullException.ThrowIfNull(previous);
        var snapshot = previous.Settings().Nodes;
        List<(string Node, string Field)> changed;
        lock (previous.settingsGate)
        {
            changed = [.. previous.changedFields];
        }

        EnsureSettings();
        lock (settingsGate)
        {
            foreach (var (node, field) in changed)
            {
                if (settingValues!.TryGetValue(node, out var values) && snapshot.TryGetValue(node, out var old) && old.ContainsKey(field))
                {
                    values[field] = old[field]?.DeepClone();
                    changedFields.Add((node, field));
                }
            }
        }
    }

    /// <summary>The topology now.</summary>
    public TopologySnapshot Topology()
    {
        var owners = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < slots.Length; i++)
        {
            if (Volatile.Read(ref slots[i]) is { HasExited: false } slot)
            {
                owners[slot.Plan.Name] = slot.ProcessId.ToString();
            }
        }

        var nodes = Plan.Workers.Select(w =>
        {
            var (written, read) = StreamsOf(w.Node);
            return new TopologyNode { Name = w.Name, Kind = w.Node.Kind, ProcessId = owners.GetValueOrDefault(w.Name), Inputs = read, Outputs = written };
        }).ToList();
        var edges = new List<TopologyEdge>();
        foreach (var from in nodes)
        {
            foreach (var stream in from.Outputs)
            {
                edges.AddRange(nodes.Where(to => to.Inputs.Contains(stream)).Select(to => new TopologyEdge { From = from.Name, To = to.Name, Stream = stream }));
            }
        }

        var external = registry.Externals().SelectMany(p =>
            p.StreamsRead.Select(s => new TopologyExternal { ProcessId = p.Id, Stream = s, Role = "reader" })
            .Concat(p.StreamsWritten.Select(s => new TopologyExternal { ProcessId = p.Id, Stream = s, Role = "writer" }))).ToList();
        return new TopologySnapshot
        {
            Seq = TopologyLog.Seq,
            Streams = [.. Pipeline.Spec.Streams.Select(s => new TopologyStream { Name = s.Name, Shape = [.. s.Shape], Dtype = s.Dtype.ToName() })],
            Nodes = nodes,
            Edges = edges,
            External = external,
        };
    }

    /// <summary>Records a topology change.</summary>
    internal void Topology(string type, Guid? process, IReadOnlyList<string> nodes, IReadOnlyList<string> streams)
    {
        var time = Iso(DateTimeOffset.UtcNow);
        TopologyLog.Append(1, (s, _) => new TopologyEvent { Seq = s, Time = time, Type = type, ProcessId = process?.ToString(), Nodes = nodes, Streams = streams });
    }

    /// <summary>Called when a worker launch starts: claims its node and streams, and reports it.</summary>
    private void Registered(WorkerSlot slot)
    {
        var (written, _) = StreamsOf(slot.Plan.Node);
        registry.Claim(slot.ProcessId, Describe(slot.Plan), [slot.Plan.Name], written);
        Topology("process_registered", slot.ProcessId, [slot.Plan.Name], written);
        Topology("ownership_changed", slot.ProcessId, [slot.Plan.Name], written);
    }

    /// <summary>Called when a worker launch is let go of (exited, or replaced): lets go of what it owned, and reports it.</summary>
    private void Unregistered(WorkerSlot slot)
    {
        if (registry.HasExited(slot.ProcessId))
        {
            return;
        }

        registry.Release(slot.ProcessId);
        Topology("process_exited", slot.ProcessId, [slot.Plan.Name], []);
    }

    /// <summary>Notes external readers and writers seen in the streams' tables (under the lock, with the streams' statistics).</summary>
    private void ObserveExternal(IReadOnlyDictionary<string, (int WriterPid, IReadOnlyList<int> ReaderPids)> seen)
    {
        var known = new HashSet<int> { Environment.ProcessId };
        foreach (var slot in slots)
        {
            if (slot is { HasExited: false, Pid: > 0 })
            {
                known.Add(slot.Pid);
            }
        }

        foreach (var (type, id, stream) in registry.Observe(seen, known))
        {
            Topology(type, id, [], stream.Length == 0 ? [] : [stream]);
        }
    }

    /// <summary>Sends the current settings that differ from the document to freshly launched workers (under the lock, once they are ready).</summary>
    private void PushSettings(IEnumerable<int> indices)
    {
        foreach (var i in indices)
        {
            if (slots[i] is { } python && Python.PythonSettings.IsPythonKind(python.Plan.Node.Kind))
            {
                LearnPythonSettings(python);
            }

            if (slots[i] is not { } slot || ChangedSettings(slot.Plan.Name) is not { } changed)
            {
                continue;
            }

            try
            {
                SendAsync(slot, "update_setting", new JsonObject { ["values"] = changed }, SettingsTimeout, CancellationToken.None).GetAwaiter().GetResult();
            }
            catch (RequestException e)
            {
                throw new InvalidOperationException($"{Describe(slot.Plan)} could not take its current settings: {e.Message}", e);
            }
        }
    }

    /// <summary>
    /// Asks a freshly launched Python worker for the settings its function declared (<c>settings_schema</c>)
    /// and adds them to its node's schema: a Python node's own settings come from its function's code, known
    /// once its worker started (under the lock, once it is ready). A field not in the snapshot yet gets the
    /// document's value or its default.
    /// </summary>
    private void LearnPythonSettings(WorkerSlot slot)
    {
        EnsureSettings();
        RequestReply reply;
        try
        {
            reply = SendAsync(slot, "settings_schema", null, SettingsTimeout, CancellationToken.None).GetAwaiter().GetResult();
        }
        catch (RequestException e)
        {
            throw new InvalidOperationException($"{Describe(slot.Plan)} did not say which settings it declares: {e.Message}", e);
        }

        var declared = new List<SettingField>();
        foreach (var item in (reply.Result?["fields"] as JsonArray ?? []).OfType<JsonObject>())
        {
            declared.Add(new SettingField
            {
                Name = (string?)item["name"] ?? "",
                Type = (string?)item["type"] ?? "string",
                Default = item["default"]?.DeepClone(),
                Minimum = (double?)item["minimum"],
                Maximum = (double?)item["maximum"],
                Choices = item["choices"] is JsonArray choices ? [.. choices.Select(c => (string?)c ?? "")] : null,
                Unit = (string?)item["unit"],
                Description = (string?)item["description"] ?? "",
                Live = (bool?)item["live"] ?? false,
            });
        }

        var node = slot.Plan.Node;
        lock (settingsGate)
        {
            var schema = settingSchemas![node.Name];
            var names = declared.Select(f => f.Name).ToHashSet(StringComparer.Ordinal);
            settingSchemas[node.Name] = schema with { Fields = [.. schema.Fields.Where(f => !names.Contains(f.Name)), .. declared] };
            var values = settingValues![node.Name];
            foreach (var field in declared.Where(f => !values.ContainsKey(f.Name) || values[f.Name] is null))
            {
                values[field.Name] = node.Parameters.Contains(field.Name) ? node.Parameters.Get(field.Name) : field.Default?.DeepClone();
            }
        }
    }

    private bool IsLive(string node, string field) =>
        settingSchemas is not null && settingSchemas.TryGetValue(node, out var s) && s.Fields.Any(f => f.Name == field && f.Live);

    private RequestReply ManagerRequest(string op, JsonObject? args)
    {
        if (IsProfilingOp(op))
        {
            return ProfilingRequest(null, op, args);
        }

        var started = Stopwatch.GetTimestamp();
        JsonNode result = op switch
        {
            "ping" => new JsonObject { ["pid"] = Environment.ProcessId, ["host"] = Environment.MachineName, ["monotonic_ns"] = MonotonicClock.NowNs() },
            "process_stats" => WorkerRequestService.ProcessStats(),
            _ => throw new RequestException(RequestErrorCode.NoHandler, $"the manager has no handler for '{op}' (it has: ping, process_stats, profiling_snapshot)"),
        };
        _ = args;
        return new RequestReply
        {
            CorrelationId = MailboxClient.NextCorrelationId(),
            Op = op,
            Result = result,
            ElapsedUs = Stopwatch.GetElapsedTime(started).TotalMicroseconds,
            ProcessId = ProcessId.ToString(),
            Node = "",
        };
    }

    private static async Task<RequestReply> SendAsync(WorkerSlot slot, string op, JsonObject? args, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(op))
        {
            throw new RequestException(RequestErrorCode.InvalidRequest, "the request has no 'op'");
        }

        if (timeout <= TimeSpan.Zero || timeout > TimeSpan.FromMinutes(5))
        {
            throw new RequestException(RequestErrorCode.InvalidRequest, $"a request's timeout must be between 1 ms and 300 s, not {timeout.TotalMilliseconds} ms");
        }

        if (slot.HasExited)
        {
            throw new RequestException(RequestErrorCode.ProcessExited, $"{Describe(slot.Plan)} exited");
        }

        var payload = Encoding.UTF8.GetBytes(new JsonObject { ["op"] = op, ["args"] = args?.DeepClone() ?? new JsonObject() }.ToJsonString());
        if (payload.Length > RequestMailbox.PayloadCapacity)
        {
            throw new RequestException(RequestErrorCode.InvalidRequest, $"the request is {payload.Length} bytes; a mailbox slot holds {RequestMailbox.PayloadCapacity}");
        }

        var correlation = MailboxClient.NextCorrelationId();
        var started = Stopwatch.GetTimestamp();
        var (status, answer) = await slot.Requests.SendAsync(correlation, payload, timeout, cancellationToken).ConfigureAwait(false);
        var elapsed = Stopwatch.GetElapsedTime(started).TotalMicroseconds;
        JsonObject? body;
        try
        {
            body = JsonNode.Parse(answer) as JsonObject;
        }
        catch (JsonException e)
        {
            throw new RequestException(RequestErrorCode.HandlerError, $"{Describe(slot.Plan)} answered with invalid JSON: {e.Message}");
        }

        if (status != MailboxStatus.Ok)
        {
            var code = status switch
            {
                MailboxStatus.NoHandler => RequestErrorCode.NoHandler,
                MailboxStatus.InvalidRequest => RequestErrorCode.InvalidRequest,
                MailboxStatus.Timeout => RequestErrorCode.Timeout,
                _ => RequestErrorCode.HandlerError,
            };
            throw new RequestException(code, (string?)body?["error"] ?? status.ToString(), (string?)body?["field"]);
        }

        return new RequestReply
        {
            CorrelationId = correlation,
            Op = op,
            Result = body?["result"]?.DeepClone(),
            ElapsedUs = Math.Round(elapsed, 1),
            ProcessId = slot.ProcessId.ToString(),
            Node = slot.Plan.Name,
        };
    }

    private void EnsureSettings()
    {
        if (Volatile.Read(ref settingSchemas) is not null)
        {
            return;
        }

        lock (settingsGate)
        {
            if (settingSchemas is not null)
            {
                return;
            }

            var schemas = new Dictionary<string, NodeSettingsSchema>(StringComparer.Ordinal);
            var values = new Dictionary<string, JsonObject>(StringComparer.Ordinal);
            foreach (var worker in Plan.Workers)
            {
                var node = worker.Node;
                KindDefinition? kind = node switch
                {
                    KernelSpec => Pipeline.Kinds.Kernels.GetValueOrDefault(node.Kind),
                    SourceSpec => Pipeline.Kinds.Sources.GetValueOrDefault(node.Kind),
                    SinkSpec => Pipeline.Kinds.Sinks.GetValueOrDefault(node.Kind),
                    _ => null,
                };
                var fields = node is TaskSpec task ? TaskSettingFields(task) : (kind?.Parameters ?? []).Select(Field).ToList();
                schemas[node.Name] = new NodeSettingsSchema { Kind = node.Kind, Fields = fields };
                var current = new JsonObject();
                foreach (var field in fields)
                {
                    current[field.Name] = node.Parameters.Contains(field.Name) ? node.Parameters.Get(field.Name) : field.Default?.DeepClone();
                }

                foreach (var name in node.Parameters.Names.Where(n => !current.ContainsKey(n)))
                {
                    current[name] = node.Parameters.Get(name);
                }

                values[node.Name] = current;
            }

            settingValues = values;
            Volatile.Write(ref settingSchemas, schemas);
        }
    }

    /// <summary>A code-first task's settings: the properties of its <see cref="Pipelines.TaskSettings{T}"/> record, or none.</summary>
    private List<SettingField> TaskSettingFields(TaskSpec task)
    {
        if (task.Control == TaskControl.Terminator)
        {
            return [];
        }

        System.Reflection.MethodInfo method;
        try
        {
            method = TaskRunner.Resolve(Plan, task).Method;
        }
        catch (InvalidOperationException)
        {
            return []; // a function this process cannot find (its worker says why when it starts)
        }

        return [.. Pipelines.Functions.CheckSettings(task, method)?.Fields ?? []];
    }

    /// <summary>A kind's parameter as a schema field.</summary>
    internal static SettingField Field(Kernels.ParameterInfo p)
    {
        var choices = p.Choices ?? (p.Type.Contains('|', StringComparison.Ordinal) ? [.. p.Type.Split('|', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)] : null);
        // Kinds write types as "number", "integer >= 1", "number from 0 to 1", "number > 0, or null": the
        // first word is the type, the rest its bounds (an explicit Minimum/Maximum wins).
        var words = p.Type.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var first = words.Length > 0 ? words[0].TrimEnd(',') : "";
        var type = choices is not null ? "choice" : first switch
        {
            "number" or "integer" or "boolean" or "string" => first,
            _ when p.Type.StartsWith("list", StringComparison.Ordinal) || p.Type.Contains("array", StringComparison.Ordinal) || p.Type.StartsWith('[') => "array",
            _ => "string",
        };
        double? minimum = p.Minimum, maximum = p.Maximum;
        for (var i = 1; i + 1 < words.Length; i++)
        {
            if (double.TryParse(words[i + 1].TrimEnd(','), NumberStyles.Float, CultureInfo.InvariantCulture, out var bound))
            {
                switch (words[i])
                {
                    case ">=" or ">" or "from":
                        minimum ??= bound;
                        break;
                    case "<=" or "<" or "to":
                        maximum ??= bound;
                        break;
                }
            }
        }
        JsonNode? defaultValue = null;
        if (p.Default is { } text)
        {
            try
            {
                defaultValue = type == "string" || type == "choice" ? JsonValue.Create(text) : JsonNode.Parse(text);
            }
            catch (JsonException)
            {
                defaultValue = JsonValue.Create(text);
            }
        }

        return new SettingField
        {
            Name = p.Name,
            Type = type,
            Default = defaultValue,
            Minimum = minimum,
            Maximum = maximum,
            Choices = choices,
            Unit = p.Unit,
            Description = p.Description,
            Live = p.Live,
        };
    }

    /// <summary>The fields of <paramref name="patch"/> that change <paramref name="current"/>, each checked against the schema.</summary>
    private static JsonObject Validate(string node, NodeSettingsSchema schema, JsonObject current, JsonObject patch)
    {
        var changes = new JsonObject();
        foreach (var (name, value) in patch)
        {
            var field = schema.Fields.FirstOrDefault(f => f.Name == name)
                ?? throw new SettingsValidationException(name, $"node '{node}' ({schema.Kind}) has no setting '{name}' (it has: {string.Join(", ", schema.Fields.Select(f => f.Name))})");
            if (value is null)
            {
                throw new SettingsValidationException(name, $"'{name}' cannot be removed (null); give a value");
            }

            var ok = field.Type switch
            {
                "number" => value is JsonValue v && v.GetValueKind() == JsonValueKind.Number,
                "integer" => value is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue(out long _),
                "boolean" => value is JsonValue v && v.GetValueKind() is JsonValueKind.True or JsonValueKind.False,
                "string" => value is JsonValue v && v.GetValueKind() == JsonValueKind.String,
                "choice" => value is JsonValue v && v.GetValueKind() == JsonValueKind.String && field.Choices!.Contains(v.GetValue<string>()),
                "array" => value is JsonArray,
                _ => true,
            };
            if (!ok)
            {
                throw new SettingsValidationException(name, field.Type == "choice"
                    ? $"'{name}' must be one of {string.Join(", ", field.Choices!)}, not {value.ToJsonString()}"
                    : $"'{name}' must be a{(field.Type is "integer" or "array" ? "n" : "")} {field.Type}, not {value.ToJsonString()}");
            }

            if (field.Type is "number" or "integer")
            {
                var d = value.GetValue<double>();
                if (!double.IsFinite(d) || (field.Minimum is { } min && d < min) || (field.Maximum is { } max && d > max))
                {
                    throw new SettingsValidationException(name, $"'{name}' must be a finite number{(field.Minimum is { } lo ? $" at least {lo.ToString(CultureInfo.InvariantCulture)}" : "")}{(field.Maximum is { } hi ? $" at most {hi.ToString(CultureInfo.InvariantCulture)}" : "")}, not {value.ToJsonString()}");
                }
            }

            if (JsonNode.DeepEquals(current[name], value))
            {
                continue;
            }

            if (!field.Live)
            {
                throw new SettingsValidationException(name, $"'{name}' of node '{node}' is not a live setting (live: false): change it in the document (PUT /document)");
            }

            changes[name] = value.DeepClone();
        }

        return changes;
    }

    private static (IReadOnlyList<string> Written, IReadOnlyList<string> Read) StreamsOf(NodeSpec node)
    {
        IEnumerable<string> aux = node.Auxiliary.Select(a => a.Stream);
        return node switch
        {
            KernelSpec k => ([.. k.Outputs], [.. k.Inputs.Concat(aux).Distinct()]),
            SourceSpec s => ([.. s.Streams], [.. aux]),
            SinkSpec s => ([.. s.Outputs], [.. aux.Prepend(s.Stream).Distinct()]),
            TaskSpec t => ([.. t.Writes.Values.Distinct()], [.. t.Reads.Values.Concat(aux).Distinct()]),
            _ => ([], [.. aux]),
        };
    }

    private static string Iso(DateTimeOffset time) => time.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture);

    private static DateTimeOffset StartOfThisProcess()
    {
        using var self = Process.GetCurrentProcess();
        return self.StartTime.ToUniversalTime();
    }
}

/// <summary>A settings change refused by the schema: names the field; nothing changed.</summary>
public sealed class SettingsValidationException : ArgumentException
{
    /// <summary>Creates an exception naming <paramref name="field"/>.</summary>
    public SettingsValidationException(string field, string message)
        : base(message)
    {
        Field = field;
    }

    /// <summary>Creates an exception.</summary>
    public SettingsValidationException()
    {
        Field = "";
    }

    /// <summary>Creates an exception.</summary>
    public SettingsValidationException(string message, Exception innerException)
        : base(message, innerException)
    {
        Field = "";
    }

    /// <summary>The field at fault.</summary>
    public string Field { get; }
}
