using System.Text.Json.Nodes;

namespace Flowline.Tests;

/// <summary>The tests read the status as its users' tools do: in its JSON wire format.</summary>
internal static class StatusJsonExtensions
{
    /// <summary>The status or snapshot as the control plane sends it.</summary>
    public static JsonObject Json(this PipelineStatus status) => StatusJson.ToJsonObject(status);

    /// <summary>A failure record as the control plane sends it.</summary>
    public static JsonObject Json(this FailureRecord failure) => StatusJson.ToJsonObject(failure);

    /// <summary>Synthetic input statuses as the control plane sends them.</summary>
    public static JsonObject Json(this IReadOnlyDictionary<string, SyntheticInputStatus> inputs) => StatusJson.ToJsonObject(inputs);

    /// <summary>A synthetic input's status as the control plane sends it.</summary>
    public static JsonObject Json(this SyntheticInputStatus input) => StatusJson.ToJsonObject(input);
}
