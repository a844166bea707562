using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;

namespace Flowline.Coordinator.Tests;

/// <summary>The body of a release registration that carries its pipeline document inline (base64), pinned by its SHA-256.</summary>
internal static class InlineRelease
{
    /// <summary>Release <paramref name="version"/> of <paramref name="pipelineId"/> whose one artifact is the document <paramref name="yaml"/>.</summary>
    public static JsonObject Body(string pipelineId, string version, string yaml) => new()
    {
        ["descriptor"] = new JsonObject
        {
            ["schemaVersion"] = 1,
            ["pipelineId"] = pipelineId,
            ["contractVersion"] = "1",
            ["releaseVersion"] = version,
            ["artifacts"] = new JsonArray(new JsonObject
            {
                ["artifactId"] = "document",
                ["kind"] = "pipeline-document",
                ["uri"] = "pipeline.yaml",
                ["digest"] = "sha256:" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(yaml))),
            }),
        },
        ["artifacts"] = new JsonObject { ["document"] = Convert.ToBase64String(Encoding.UTF8.GetBytes(yaml)) },
    };

    /// <summary>An example's document, as copied beside the tests.</summary>
    public static string Example(string name) => File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "examples", name, "pipeline.yaml"));
}
