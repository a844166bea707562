using System.Text.Json.Serialization;

namespace Flowline.Client;

/// <summary>Request bodies in the control plane's snake_case, serialised without reflection.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(SyntheticInputRequest))]
internal sealed partial class ClientJsonContext : JsonSerializerContext;
