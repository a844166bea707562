using System.Text.Json;

namespace Flowline.Coordinator;

/// <summary>The JSON settings of the coordinator's bodies and stored records: camelCase, as the seed's.</summary>
internal static class CoordinatorJson
{
    public static JsonSerializerOptions Options { get; } = new(JsonSerializerDefaults.Web);
}
