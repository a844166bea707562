using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Flowline.Status;

/// <summary>A process of a pipeline (<c>GET /processes</c>, and <c>processes</c> in the snapshot).</summary>
public sealed record ProcessRecord
{
    /// <summary>The UUID the manager assigned (never chosen by the process).</summary>
    public string Id { get; init; } = "";

    /// <summary>The operating system's process id.</summary>
    public int Pid { get; init; }

    /// <summary>When the process (or the worker's launch, for a thread worker) started, ISO 8601 UTC; null when unknown.</summary>
    public string? StartTime { get; init; }

    /// <summary>The host's name.</summary>
    public string Host { get; init; } = "";

    /// <summary><c>manager</c>, <c>worker</c> or <c>external</c>.</summary>
    public string Role { get; init; } = "";

    /// <summary><c>process</c> or <c>thread</c> (a worker on a thread of the manager's process); null for the manager and external processes.</summary>
    public string? Placement { get; init; }

    /// <summary>The nodes it owns.</summary>
    public IReadOnlyList<string> Nodes { get; init; } = [];

    /// <summary>The streams it writes.</summary>
    public IReadOnlyList<string> StreamsWritten { get; init; } = [];

    /// <summary>The streams it reads.</summary>
    public IReadOnlyList<string> StreamsRead { get; init; } = [];

    /// <summary><c>running</c>, <c>exited</c> (a worker's last launch), or a worker's state (<c>starting</c>, <c>ready</c>, <c>paused</c>, ...).</summary>
    public string State { get; init; } = "";
}

/// <summary>The answer of <c>GET /processes</c>.</summary>
public sealed record ProcessList
{
    /// <summary>The processes: the manager first, then the workers in start order, then external ones.</summary>
    public IReadOnlyList<ProcessRecord> Processes { get; init; } = [];
}

/// <summary>The answer of a routed request (<c>POST /processes/{id}/requests</c>, <c>POST /nodes/{node}/requests</c>).</summary>
public sealed record RequestReply
{
    /// <summary>The request's correlation id.</summary>
    public long CorrelationId { get; init; }

    /// <summary>The operation.</summary>
    public string Op { get; init; } = "";

    /// <summary>True (failures are errors with a code).</summary>
    public bool Ok { get; init; } = true;

    /// <summary>What the handler returned.</summary>
    public JsonNode? Result { get; init; }

    /// <summary>The round trip, from posting to taking the answer, in microseconds.</summary>
    public double ElapsedUs { get; init; }

    /// <summary>The process that answered.</summary>
    public string ProcessId { get; init; } = "";

    /// <summary>The node whose worker answered.</summary>
    public string Node { get; init; } = "";
}

/// <summary>One field of a node's settings schema.</summary>
public sealed record SettingField
{
    /// <summary>The field's name.</summary>
    public string Name { get; init; } = "";

    /// <summary><c>number</c>, <c>integer</c>, <c>boolean</c>, <c>string</c>, <c>choice</c> or <c>array</c>.</summary>
    public string Type { get; init; } = "";

    /// <summary>The default, or null.</summary>
    public JsonNode? Default { get; init; }

    /// <summary>The smallest value allowed, or null.</summary>
    public double? Minimum { get; init; }

    /// <summary>The largest value allowed, or null.</summary>
    public double? Maximum { get; init; }

    /// <summary>The values allowed (a choice), or null.</summary>
    public IReadOnlyList<string>? Choices { get; init; }

    /// <summary>The unit, or null.</summary>
    public string? Unit { get; init; }

    /// <summary>One line on what it does.</summary>
    public string Description { get; init; } = "";

    /// <summary>True if a change applies while the node runs (between two frames); false if it applies at the next start.</summary>
    public bool Live { get; init; }
}

/// <summary>A node's settings schema.</summary>
public sealed record NodeSettingsSchema
{
    /// <summary>The node's kind.</summary>
    public string Kind { get; init; } = "";

    /// <summary>Its fields, in the kind's order.</summary>
    public IReadOnlyList<SettingField> Fields { get; init; } = [];
}

/// <summary>The answer of <c>GET /settings/schema</c>.</summary>
public sealed record SettingsSchema
{
    /// <summary>Every node's schema, by node.</summary>
    public IReadOnlyDictionary<string, NodeSettingsSchema> Nodes { get; init; } = new Dictionary<string, NodeSettingsSchema>();
}

/// <summary>The answer of <c>GET /settings</c>: every node's current settings.</summary>
public sealed record SettingsSnapshot
{
    /// <summary>The sequence number of the last change (0 before any).</summary>
    public long Seq { get; init; }

    /// <summary>Every node's settings (field to value), by node.</summary>
    public IReadOnlyDictionary<string, JsonObject> Nodes { get; init; } = new Dictionary<string, JsonObject>();
}

/// <summary>The answer of <c>PATCH /settings/{node}</c>.</summary>
public sealed record SettingsPatchResult
{
    /// <summary>The sequence number of the change's last event (unchanged when nothing changed).</summary>
    public long Seq { get; init; }

    /// <summary>The node.</summary>
    public string Node { get; init; } = "";

    /// <summary>Every field of the node now.</summary>
    public JsonObject Values { get; init; } = [];

    /// <summary>True once the change is applied: by the running worker between two frames, or stored for its next start when it does not run.</summary>
    public bool Applied { get; init; }

    /// <summary><c>live</c> (the running worker applied it) or <c>next_start</c> (no worker runs, or a field is not live: the worker gets it when it starts).</summary>
    public string AppliedBy { get; init; } = "";
}

/// <summary>A change of one field (the settings event log), or the document's replacement.</summary>
public sealed record SettingsEvent
{
    /// <summary>Its sequence number (monotonic, from 1; it goes on across document replacements).</summary>
    public long Seq { get; init; }

    /// <summary>
    /// <c>changed</c> (a field's change), or <c>document_replaced</c> (<c>PUT /document</c> or a load: every
    /// node's settings are now the new document's; take <c>GET /settings</c> again).
    /// </summary>
    public string Type { get; init; } = "changed";

    /// <summary>The document's revision after a <c>document_replaced</c>; null otherwise.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public long? Revision { get; init; }

    /// <summary>When, ISO 8601 UTC.</summary>
    public string Time { get; init; } = "";

    /// <summary>The node.</summary>
    public string Node { get; init; } = "";

    /// <summary>The field.</summary>
    public string Field { get; init; } = "";

    /// <summary>The value before.</summary>
    public JsonNode? Old { get; init; }

    /// <summary>The value after.</summary>
    public JsonNode? New { get; init; }

    /// <summary>Who asked: the client's address (or <c>local</c> for a call in process).</summary>
    public string? Client { get; init; }

    /// <summary>The token's scope (<c>control</c>, <c>admin</c>), or null without tokens.</summary>
    public string? Scope { get; init; }

    /// <summary>The process that applied it, or null when no worker ran (applied at its next start).</summary>
    public string? ProcessId { get; init; }
}

/// <summary>The answer of <c>GET /settings/events</c>.</summary>
public sealed record SettingsEventList
{
    /// <summary>The events after the given sequence number, oldest first.</summary>
    public IReadOnlyList<SettingsEvent> Events { get; init; } = [];

    /// <summary>True if events after the given sequence number were dropped from the log (it keeps the newest): take <c>GET /settings</c> again.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool Lost { get; init; }
}

/// <summary>A stream in the topology.</summary>
public sealed record TopologyStream
{
    /// <summary>Its name.</summary>
    public string Name { get; init; } = "";

    /// <summary>Its frame shape.</summary>
    public IReadOnlyList<int> Shape { get; init; } = [];

    /// <summary>Its element type.</summary>
    public string Dtype { get; init; } = "";
}

/// <summary>A node in the topology.</summary>
public sealed record TopologyNode
{
    /// <summary>Its name.</summary>
    public string Name { get; init; } = "";

    /// <summary>Its kind.</summary>
    public string Kind { get; init; } = "";

    /// <summary>The process that owns it now, or null when none runs.</summary>
    public string? ProcessId { get; init; }

    /// <summary>The streams it reads.</summary>
    public IReadOnlyList<string> Inputs { get; init; } = [];

    /// <summary>The streams it writes.</summary>
    public IReadOnlyList<string> Outputs { get; init; } = [];
}

/// <summary>An edge between two nodes, through a stream.</summary>
public sealed record TopologyEdge
{
    /// <summary>The writing node.</summary>
    public string From { get; init; } = "";

    /// <summary>The reading node.</summary>
    public string To { get; init; } = "";

    /// <summary>The stream.</summary>
    public string Stream { get; init; } = "";
}

/// <summary>A process outside the pipeline that reads or writes one of its streams.</summary>
public sealed record TopologyExternal
{
    /// <summary>Its process id in the registry.</summary>
    public string ProcessId { get; init; } = "";

    /// <summary>The stream.</summary>
    public string Stream { get; init; } = "";

    /// <summary><c>reader</c> or <c>writer</c>.</summary>
    public string Role { get; init; } = "";
}

/// <summary>The answer of <c>GET /topology</c>.</summary>
public sealed record TopologySnapshot
{
    /// <summary>The sequence number of the last topology event.</summary>
    public long Seq { get; init; }

    /// <summary>The streams.</summary>
    public IReadOnlyList<TopologyStream> Streams { get; init; } = [];

    /// <summary>The nodes.</summary>
    public IReadOnlyList<TopologyNode> Nodes { get; init; } = [];

    /// <summary>The edges.</summary>
    public IReadOnlyList<TopologyEdge> Edges { get; init; } = [];

    /// <summary>External readers and writers.</summary>
    public IReadOnlyList<TopologyExternal> External { get; init; } = [];
}

/// <summary>A topology change.</summary>
public sealed record TopologyEvent
{
    /// <summary>Its sequence number (monotonic, from 1).</summary>
    public long Seq { get; init; }

    /// <summary>When, ISO 8601 UTC.</summary>
    public string Time { get; init; } = "";

    /// <summary><c>document_replaced</c>, <c>process_registered</c>, <c>process_exited</c>, <c>ownership_changed</c>, <c>reader_attached</c> or <c>reader_detached</c>.</summary>
    public string Type { get; init; } = "";

    /// <summary>The process concerned, if any.</summary>
    public string? ProcessId { get; init; }

    /// <summary>The nodes concerned.</summary>
    public IReadOnlyList<string> Nodes { get; init; } = [];

    /// <summary>The streams concerned.</summary>
    public IReadOnlyList<string> Streams { get; init; } = [];

    /// <summary>The document's revision after a <c>document_replaced</c>; null otherwise.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public long? Revision { get; init; }
}

/// <summary>The answer of <c>GET /topology/events</c>.</summary>
public sealed record TopologyEventList
{
    /// <summary>The events after the given sequence number, oldest first.</summary>
    public IReadOnlyList<TopologyEvent> Events { get; init; } = [];

    /// <summary>True if events after the given sequence number were dropped from the log: take <c>GET /topology</c> again.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool Lost { get; init; }
}
