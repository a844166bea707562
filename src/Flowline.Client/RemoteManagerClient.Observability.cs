using System.Globalization;
using System.Text.Json.Nodes;
using Flowline.Status;

namespace Flowline.Client;

/// <summary>The observability plane's calls (issue 12): processes, routed requests, settings, topology.</summary>
public sealed partial class RemoteManagerClient
{
    /// <summary><c>GET /processes</c>: the manager, each worker and external processes, with their UUIDs.</summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    public Task<ProcessList> ProcessesAsync(CancellationToken cancellationToken = default) =>
        SendAsync<ProcessList>(HttpMethod.Get, "processes", null, ReadTimeout, cancellationToken);

    /// <summary>
    /// <c>POST /nodes/{node}/requests</c>: sends <paramref name="op"/> to the process that owns
    /// <paramref name="node"/>. A failure is a <see cref="RemoteManagerException"/> whose
    /// <see cref="RemoteManagerException.Code"/> is the typed code (<c>unknown_target</c>, <c>no_handler</c>,
    /// <c>timeout</c>, <c>process_exited</c>, <c>invalid_request</c>, <c>handler_error</c>).
    /// </summary>
    /// <param name="node">The node.</param>
    /// <param name="op">The operation (<c>ping</c>, <c>process_stats</c>, <c>update_setting</c>, ...).</param>
    /// <param name="args">Its arguments, or null.</param>
    /// <param name="timeoutMs">How long the server waits for the answer.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public Task<RequestReply> RequestNodeAsync(string node, string op, JsonObject? args = null, int timeoutMs = 2000, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(node);
        return RequestAsync($"nodes/{Uri.EscapeDataString(node)}/requests", op, args, timeoutMs, cancellationToken);
    }

    /// <summary><c>POST /processes/{id}/requests</c>: sends <paramref name="op"/> to the process <paramref name="processId"/> (see <see cref="RequestNodeAsync"/>).</summary>
    /// <param name="processId">The process's UUID.</param>
    /// <param name="op">The operation.</param>
    /// <param name="args">Its arguments, or null.</param>
    /// <param name="timeoutMs">How long the server waits for the answer.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public Task<RequestReply> RequestProcessAsync(string processId, string op, JsonObject? args = null, int timeoutMs = 2000, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(processId);
        return RequestAsync($"processes/{Uri.EscapeDataString(processId)}/requests", op, args, timeoutMs, cancellationToken);
    }

    /// <summary><c>GET /settings</c>: every node's current settings and the last change's sequence number.</summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    public Task<SettingsSnapshot> SettingsAsync(CancellationToken cancellationToken = default) =>
        SendAsync<SettingsSnapshot>(HttpMethod.Get, "settings", null, ReadTimeout, cancellationToken);

    /// <summary><c>GET /settings/schema</c>: every node's settings schema.</summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    public Task<SettingsSchema> SettingsSchemaAsync(CancellationToken cancellationToken = default) =>
        SendAsync<SettingsSchema>(HttpMethod.Get, "settings/schema", null, ReadTimeout, cancellationToken);

    /// <summary><c>GET /settings/events?after_seq=N</c>: the changes after <paramref name="afterSeq"/>.</summary>
    /// <param name="afterSeq">The last sequence number seen.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public Task<SettingsEventList> SettingsEventsAsync(long afterSeq = 0, CancellationToken cancellationToken = default) =>
        SendAsync<SettingsEventList>(HttpMethod.Get, "settings/events?after_seq=" + afterSeq.ToString(CultureInfo.InvariantCulture), null, ReadTimeout, cancellationToken);

    /// <summary>
    /// <c>PATCH /settings/{node}</c>: a JSON merge patch of some of the node's settings; returns once the
    /// running worker applied it (or stored it for its next start). A field the schema refuses is a 422
    /// whose <see cref="RemoteManagerException.Field"/> names it; nothing changed then.
    /// </summary>
    /// <param name="node">The node.</param>
    /// <param name="patch">The fields to change.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public Task<SettingsPatchResult> PatchSettingsAsync(string node, JsonObject patch, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(node);
        ArgumentNullException.ThrowIfNull(patch);
        return SendAsync<SettingsPatchResult>(HttpMethod.Patch, $"settings/{Uri.EscapeDataString(node)}", patch, ChangeTimeout, cancellationToken);
    }

    /// <summary><c>GET /topology</c>: streams, nodes, edges, owners and external readers and writers.</summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    public Task<TopologySnapshot> TopologyAsync(CancellationToken cancellationToken = default) =>
        SendAsync<TopologySnapshot>(HttpMethod.Get, "topology", null, ReadTimeout, cancellationToken);

    /// <summary><c>GET /topology/events?after_seq=N</c>: the topology changes after <paramref name="afterSeq"/>.</summary>
    /// <param name="afterSeq">The last sequence number seen.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public Task<TopologyEventList> TopologyEventsAsync(long afterSeq = 0, CancellationToken cancellationToken = default) =>
        SendAsync<TopologyEventList>(HttpMethod.Get, "topology/events?after_seq=" + afterSeq.ToString(CultureInfo.InvariantCulture), null, ReadTimeout, cancellationToken);

    private Task<RequestReply> RequestAsync(string path, string op, JsonObject? args, int timeoutMs, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(op);
        ArgumentOutOfRangeException.ThrowIfLessThan(timeoutMs, 1);
        var body = new JsonObject { ["op"] = op, ["timeout_ms"] = timeoutMs };
        if (args is not null)
        {
            body["args"] = args.DeepClone();
        }

        return SendAsync<RequestReply>(HttpMethod.Post, path, body, ReadTimeout + TimeSpan.FromMilliseconds(timeoutMs), cancellationToken);
    }
}
