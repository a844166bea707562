using System.Text.Json.Nodes;
using Flowline.Status;

namespace Flowline.Client;

/// <summary>One event of the control plane's event stream (<c>GET /events</c>).</summary>
/// <param name="Id">The event's number, or null for unnumbered events (the <c>snapshot</c> sent on connecting).</param>
/// <param name="Type">The event name: <c>snapshot</c>, <c>document_updated</c>, <c>worker_started</c>, ...; <c>message</c> when the server gave none.</param>
/// <param name="Data">The event's JSON payload; a string value when the data is not JSON; null when there is no data.</param>
public sealed record RemoteEvent(long? Id, string Type, JsonNode? Data)
{
    /// <summary>The event's name for a snapshot: the one sent on connecting and after each command.</summary>
    public const string SnapshotType = "snapshot";

    /// <summary>The event's name for the streams' figures pushed once a second (Flowline).</summary>
    public const string StreamMetricsType = "stream_metrics";

    /// <summary>
    /// The typed snapshot (its reason and the pipeline's status) when this is a <c>snapshot</c> event; null
    /// for any other event.
    /// </summary>
    /// <exception cref="System.Text.Json.JsonException">A <c>snapshot</c> event whose data is not a snapshot.</exception>
    public SnapshotEvent? AsSnapshot() =>
        Type == SnapshotType && Data is JsonObject data ? StatusJson.Deserialize<SnapshotEvent>(data) : null;

    /// <summary>The typed streams' figures when this is a <c>stream_metrics</c> event; null for any other event.</summary>
    /// <exception cref="System.Text.Json.JsonException">A <c>stream_metrics</c> event whose data is not of that shape.</exception>
    public StreamMetricsEvent? AsStreamMetrics() =>
        Type == StreamMetricsType && Data is JsonObject data ? StatusJson.Deserialize<StreamMetricsEvent>(data) : null;
}
