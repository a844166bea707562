using System.Text.Json.Nodes;
using Flowline.Kernels;
using Flowline.Plugins;

namespace Flowline.ControlPlane;

/// <summary>The kinds and their parameter descriptions as JSON: <c>flowline kinds --json</c> and <c>GET /kinds</c> write the same objects.</summary>
internal static class KindsJson
{
    /// <summary><c>{kernels, sources, sinks}</c>: every kind of <paramref name="registry"/>, sorted by name.</summary>
    public static JsonObject All(KindRegistry registry) => new()
    {
        ["kernels"] = Array(registry.Kernels.Values, registry),
        ["sources"] = Array(registry.Sources.Values, registry),
        ["sinks"] = Array(registry.Sinks.Values, registry),
    };

    /// <summary>The definitions, sorted by kind.</summary>
    public static JsonArray Array(IEnumerable<KindDefinition> definitions, KindRegistry registry) =>
        new([.. definitions.OrderBy(d => d.Kind, StringComparer.Ordinal).Select(d => (JsonNode)Describe(d, registry))]);

    /// <summary>One kind: name, description, origin, its streams and its parameters (name, type, required, default, description).</summary>
    public static JsonObject Describe(KindDefinition d, KindRegistry registry)
    {
        ArgumentNullException.ThrowIfNull(d);
        ArgumentNullException.ThrowIfNull(registry);
        var o = new JsonObject
        {
            ["kind"] = d.Kind,
            ["description"] = d.Description,
            ["origin"] = registry.Origins[d.Kind],
        };
        switch (d)
        {
            case KernelDefinition k:
                o["inputs"] = k.Inputs.ToString();
                o["auxiliary"] = k.Auxiliary.ToString();
                o["outputs"] = k.Outputs.ToString();
                o["uses_operation"] = k.UsesOperation;
                break;
            case SourceDefinition s:
                o["streams"] = s.Streams.ToString();
                o["auxiliary"] = s.Auxiliary.ToString();
                o["required_feedback_aliases"] = new JsonArray([.. s.RequiredFeedbackAliases.Select(a => (JsonNode)JsonValue.Create(a))]);
                break;
            case SinkDefinition s:
                o["auxiliary"] = s.Auxiliary.ToString();
                o["outputs"] = s.Outputs.ToString();
                break;
            default:
                break;
        }

        o["parameters"] = new JsonArray([.. d.Parameters.Select(p => (JsonNode)new JsonObject
        {
            ["name"] = p.Name,
            ["type"] = p.Type,
            ["required"] = p.Required,
            ["default"] = p.Default,
            ["description"] = p.Description,
            ["minimum"] = p.Minimum,
            ["maximum"] = p.Maximum,
            ["choices"] = p.Choices is null ? null : new JsonArray([.. p.Choices.Select(c => (JsonNode)JsonValue.Create(c)!)]),
            ["unit"] = p.Unit,
            ["live"] = p.Live,
        })]);
        return o;
    }
}
