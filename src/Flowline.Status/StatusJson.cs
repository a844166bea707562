using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;

namespace Flowline.Status;

/// <summary>The status records in shmpipeline's snake_case JSON, serialised without reflection.</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals)]
[JsonSerializable(typeof(PipelineStatus))]
[JsonSerializable(typeof(WorkerFigures))]
[JsonSerializable(typeof(FailureRecord))]
[JsonSerializable(typeof(SyntheticInputStatus))]
[JsonSerializable(typeof(IReadOnlyDictionary<string, SyntheticInputStatus>))]
[JsonSerializable(typeof(SnapshotEvent))]
[JsonSerializable(typeof(StreamMetricsEvent))]
[JsonSerializable(typeof(SyntheticInputRequest))]
[JsonSerializable(typeof(SyntheticStartResult))]
[JsonSerializable(typeof(SyntheticStopResult))]
[JsonSerializable(typeof(HealthReply))]
[JsonSerializable(typeof(ServerInfo))]
[JsonSerializable(typeof(DocumentReply))]
[JsonSerializable(typeof(ValidationReply))]
[JsonSerializable(typeof(DocumentChangeReply))]
[JsonSerializable(typeof(ProfilingSnapshot))]
[JsonSerializable(typeof(IReadOnlyList<TraceSample>))]
[JsonSerializable(typeof(TraceRequest))]
[JsonSerializable(typeof(TraceState))]
[JsonSerializable(typeof(ProcessList))]
[JsonSerializable(typeof(RequestReply))]
[JsonSerializable(typeof(SettingsSchema))]
[JsonSerializable(typeof(SettingsSnapshot))]
[JsonSerializable(typeof(SettingsPatchResult))]
[JsonSerializable(typeof(SettingsEvent))]
[JsonSerializable(typeof(SettingsEventList))]
[JsonSerializable(typeof(TopologySnapshot))]
[JsonSerializable(typeof(TopologyEvent))]
[JsonSerializable(typeof(TopologyEventList))]
internal sealed partial class StatusJsonContext : JsonSerializerContext;

/// <summary>
/// Reads and writes the status records: <see cref="Options"/> is the context's, plus one rule the
/// attributes cannot say: a worker's figures are written only when it has them (<see cref="WorkerFigures.HasFigures"/>),
/// as shmpipeline merges them into the worker's entry only once the worker reported.
/// </summary>
public static class StatusJson
{
    /// <summary>The options of every status record (compact; quotes and non-ASCII text as Python's json.dumps writes them).</summary>
    public static JsonSerializerOptions Options { get; } = CreateOptions();

    private static readonly JsonSerializerOptions IndentedOptions = new(Options) { WriteIndented = true };

    /// <summary>The JSON text of <paramref name="value"/>.</summary>
    public static string Serialize<T>(T value) => JsonSerializer.Serialize(value, Info<T>());

    /// <summary>The JSON text of <paramref name="value"/>, indented for people to read.</summary>
    public static string SerializeIndented<T>(T value) => JsonSerializer.Serialize(value, (JsonTypeInfo<T>)IndentedOptions.GetTypeInfo(typeof(T)));

    /// <summary>The JSON tree of <paramref name="value"/> (for merging into other JSON, e.g. an event's payload).</summary>
    public static JsonObject ToJsonObject<T>(T value) => (JsonObject)JsonSerializer.SerializeToNode(value, Info<T>())!;

    /// <summary>Reads <paramref name="json"/> as a <typeparamref name="T"/>.</summary>
    /// <exception cref="JsonException">The text is not JSON of that shape.</exception>
    public static T Deserialize<T>(string json) => JsonSerializer.Deserialize(json, Info<T>()) ?? throw new JsonException($"null is not a {typeof(T).Name}");

    /// <summary>Reads <paramref name="node"/> as a <typeparamref name="T"/>.</summary>
    /// <exception cref="JsonException">The tree is not of that shape.</exception>
    public static T Deserialize<T>(JsonNode node) => node.Deserialize(Info<T>()) ?? throw new JsonException($"null is not a {typeof(T).Name}");

    /// <summary>The contract of <typeparamref name="T"/> under <see cref="Options"/>.</summary>
    public static JsonTypeInfo<T> Info<T>() => (JsonTypeInfo<T>)Options.GetTypeInfo(typeof(T));

    private static JsonSerializerOptions CreateOptions()
    {
        var options = new JsonSerializerOptions(StatusJsonContext.Default.Options)
        {
            Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
            TypeInfoResolver = new StatusJsonContext().WithAddedModifier(FiguresOnlyWhenMeasured),
        };
        options.MakeReadOnly();
        return options;
    }

    /// <summary>Figure fields are written only when measured; a worker entry's pid and cpu_slot always, and an endpoint's own throughput_hz too.</summary>
    private static void FiguresOnlyWhenMeasured(JsonTypeInfo info)
    {
        if (info.Type == typeof(PipelineStatus))
        {
            // config_path may be null, and is written whenever the control plane added the document's revision.
            info.Properties.Single(p => p.Name == "config_path").ShouldSerialize = static (o, _) => ((PipelineStatus)o).DocumentRevision is not null;
            return;
        }

        if (info.Kind != JsonTypeInfoKind.Object || !typeof(WorkerFigures).IsAssignableFrom(info.Type))
        {
            return;
        }

        var entry = typeof(WorkerEntry).IsAssignableFrom(info.Type);
        var endpoint = typeof(EndpointStatus).IsAssignableFrom(info.Type);
        foreach (var property in info.Properties)
        {
            switch (property.Name)
            {
                case "pid" when entry:
                    property.Order = -7;
                    break;
                case "cpu_slot" when entry:
                    property.Order = -4;
                    break;
                case "throughput_hz" when endpoint:
                    property.Order = -1;
                    break;
                case "latency_us" or "skipped_per_input":
                    property.ShouldSerialize = static (o, v) => ((WorkerFigures)o).HasFigures && v is not null;
                    break;
                default:
                    if (property.DeclaringType == typeof(WorkerFigures))
                    {
                        property.ShouldSerialize = static (o, _) => ((WorkerFigures)o).HasFigures;
                    }

                    break;
            }
        }
    }
}

/// <summary>Building JSON payloads.</summary>
public static class JsonObjectExtensions
{
    /// <summary>Sets <paramref name="key"/> to <paramref name="value"/> and returns the object.</summary>
    public static JsonObject With(this JsonObject o, string key, JsonNode? value)
    {
        ArgumentNullException.ThrowIfNull(o);
        o[key] = value;
        return o;
    }
}
