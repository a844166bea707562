using System.Collections.Immutable;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Flowline.Coordinator;

/// <summary>The kinds of artifact a release pins.</summary>
public static class ArtifactKinds
{
    /// <summary>The pipeline document (YAML); exactly one per release.</summary>
    public const string PipelineDocument = "pipeline-document";

    /// <summary>A .NET plugin assembly providing kinds the document uses.</summary>
    public const string PluginAssembly = "plugin-assembly";

    /// <summary>A code-first program (an assembly or an archive of one).</summary>
    public const string Program = "program";

    /// <summary>A container image, referenced by OCI digest (<c>registry/name@sha256:…</c>); recorded, not fetched.</summary>
    public const string ContainerImage = "container-image";

    /// <summary>Every kind.</summary>
    public static ImmutableArray<string> All { get; } = [PipelineDocument, PluginAssembly, Program, ContainerImage];

    /// <summary>True for kinds whose content the coordinator copies into its artifact store.</summary>
    public static bool IsStored(string kind) => kind != ContainerImage;
}

/// <summary>One artifact of a descriptor.</summary>
/// <param name="ArtifactId">Its name, unique in the release.</param>
/// <param name="Kind">One of <see cref="ArtifactKinds"/>.</param>
/// <param name="Uri">Where it is: a path relative to the descriptor, or an OCI reference for images.</param>
/// <param name="Digest"><c>sha256:</c> and 64 lowercase hexadecimal digits.</param>
public sealed record ArtifactDescriptor(string ArtifactId, string Kind, string Uri, string Digest);

/// <summary>An artifact as the coordinator keeps it.</summary>
/// <param name="ArtifactId">Its name.</param>
/// <param name="Kind">Its kind.</param>
/// <param name="Digest">Its verified digest.</param>
/// <param name="SizeBytes">Its size (null for images, which are not fetched).</param>
/// <param name="Uri">The managed location: <c>file://…/artifacts/sha256/&lt;hex&gt;</c>, or the OCI reference.</param>
/// <param name="SourceUri">The descriptor's <c>uri</c>.</param>
public sealed record StoredArtifact(string ArtifactId, string Kind, string Digest, long? SizeBytes, string Uri, string SourceUri);

/// <summary>
/// A release descriptor (<c>pipeline-release.json</c>, schema version 1; docs/coordinator.md): the
/// pipeline, its contract and release versions, and its artifacts pinned by SHA-256. Unknown members
/// are errors, so a misspelt field never passes unnoticed.
/// </summary>
/// <param name="PipelineId">The pipeline.</param>
/// <param name="ContractVersion">The contract version.</param>
/// <param name="ReleaseVersion">The release version.</param>
/// <param name="Artifacts">The artifacts.</param>
public sealed partial record ReleaseDescriptor(string PipelineId, string ContractVersion, string ReleaseVersion, ImmutableArray<ArtifactDescriptor> Artifacts)
{
    /// <summary>The only schema version.</summary>
    public const int SchemaVersion = 1;

    private static readonly string[] TopMembers = ["schemaVersion", "pipelineId", "contractVersion", "releaseVersion", "artifacts"];
    private static readonly string[] ArtifactMembers = ["artifactId", "kind", "uri", "digest"];

    /// <summary>The pattern of identifiers and versions (they appear in paths): letters, digits, <c>. _ -</c>, at most 128.</summary>
    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
    public static partial Regex Identifier();

    [GeneratedRegex("^sha256:[0-9a-f]{64}$")]
    private static partial Regex DigestPattern();

    /// <summary>Reads a descriptor; every problem is reported at once, each as <c>field: message</c>.</summary>
    /// <exception cref="ProblemException">422 INVALID_DESCRIPTOR listing the problems.</exception>
    public static ReleaseDescriptor Parse(JsonNode? json)
    {
        var errors = new List<string>();
        if (json is not JsonObject root)
        {
            throw Invalid(["(root): the descriptor must be a JSON object"]);
        }

        Unknown(root, TopMembers, "", errors);
        if (root["schemaVersion"] is not JsonValue v || !v.TryGetValue<int>(out var schema) || schema != SchemaVersion)
        {
            errors.Add($"schemaVersion: must be {SchemaVersion}");
        }

        var pipelineId = Text(root, "pipelineId", "", errors, identifier: true);
        var contractVersion = Text(root, "contractVersion", "", errors, identifier: true);
        var releaseVersion = Text(root, "releaseVersion", "", errors, identifier: true);
        var artifacts = ImmutableArray.CreateBuilder<ArtifactDescriptor>();
        if (root["artifacts"] is not JsonArray list || list.Count == 0)
        {
            errors.Add("artifacts: must be a non-empty array");
        }
        else
        {
            for (var i = 0; i < list.Count; i++)
            {
                var at = $"artifacts[{i}].";
                if (list[i] is not JsonObject a)
                {
                    errors.Add($"artifacts[{i}]: must be an object");
                    continue;
                }

                Unknown(a, ArtifactMembers, at, errors);
                var id = Text(a, "artifactId", at, errors, identifier: true);
                var kind = Text(a, "kind", at, errors, identifier: false);
                var uri = Text(a, "uri", at, errors, identifier: false);
                var digest = Text(a, "digest", at, errors, identifier: false);
                if (kind.Length > 0 && !ArtifactKinds.All.Contains(kind))
                {
                    errors.Add($"{at}kind: '{kind}' is not a kind; kinds are {string.Join(", ", ArtifactKinds.All)}");
                }

                if (digest.Length > 0 && !DigestPattern().IsMatch(digest))
                {
                    errors.Add($"{at}digest: must be 'sha256:' and 64 lowercase hexadecimal digits");
                }

                if (kind == ArtifactKinds.ContainerImage && uri.Length > 0 && digest.Length > 0 && !uri.EndsWith("@" + digest, StringComparison.Ordinal))
                {
                    errors.Add($"{at}uri: a container image is referenced by digest: the uri must end with '@{digest}'");
                }
                else if (kind.Length > 0 && ArtifactKinds.IsStored(kind) && uri.Length > 0 && (uri.Contains("://", StringComparison.Ordinal) && !uri.StartsWith("file://", StringComparison.Ordinal)))
                {
                    errors.Add($"{at}uri: must be a file path (relative to the descriptor) or a file:// URI");
                }

                artifacts.Add(new ArtifactDescriptor(id, kind, uri, digest));
            }

            foreach (var dup in artifacts.GroupBy(a => a.ArtifactId).Where(g => g.Key.Length > 0 && g.Count() > 1))
            {
                errors.Add($"artifacts: artifactId '{dup.Key}' is used {dup.Count()} times; ids are unique in a release");
            }

            var documents = artifacts.Count(a => a.Kind == ArtifactKinds.PipelineDocument);
            if (documents != 1)
            {
                errors.Add($"artifacts: a release has exactly one '{ArtifactKinds.PipelineDocument}' artifact, not {documents}");
            }
        }

        return errors.Count > 0 ? throw Invalid(errors) : new ReleaseDescriptor(pipelineId, contractVersion, releaseVersion, artifacts.ToImmutable());
    }

    /// <summary>The canonical JSON: members in schema order, artifacts in descriptor order.</summary>
    public JsonObject ToJson() => new()
    {
        ["schemaVersion"] = SchemaVersion,
        ["pipelineId"] = PipelineId,
        ["contractVersion"] = ContractVersion,
        ["releaseVersion"] = ReleaseVersion,
        ["artifacts"] = new JsonArray([.. Artifacts.Select(a => (JsonNode)new JsonObject
        {
            ["artifactId"] = a.ArtifactId,
            ["kind"] = a.Kind,
            ["uri"] = a.Uri,
            ["digest"] = a.Digest,
        })]),
    };

    /// <summary>
    /// The release's identity: SHA-256 of the canonical JSON without the artifacts' uris (where an artifact
    /// was read from does not change the release; its digest does).
    /// </summary>
    public string ContentDigest()
    {
        var json = ToJson();
        foreach (var a in json["artifacts"]!.AsArray())
        {
            a!.AsObject().Remove("uri");
        }

        return "sha256:" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(json.ToJsonString())));
    }

    private static ProblemException Invalid(List<string> errors) =>
        new(422, ProblemCodes.InvalidDescriptor, "the release descriptor is not valid: " + string.Join("; ", errors), new JsonObject { ["errors"] = new JsonArray([.. errors.Select(e => (JsonNode)e)]) });

    private static void Unknown(JsonObject o, string[] known, string at, List<string> errors)
    {
        foreach (var (key, _) in o)
        {
            if (!known.Contains(key))
            {
                errors.Add($"{at}{key}: unknown member; members are {string.Join(", ", known)}");
            }
        }
    }

    private static string Text(JsonObject o, string name, string at, List<string> errors, bool identifier)
    {
        if (o[name] is not JsonValue value || !value.TryGetValue<string>(out var text) || string.IsNullOrWhiteSpace(text))
        {
            errors.Add($"{at}{name}: required, a non-empty string");
            return "";
        }

        if (identifier && !Identifier().IsMatch(text))
        {
            errors.Add($"{at}{name}: '{text}' must be letters, digits, '.', '_' or '-' (starting with a letter or digit), at most 128");
        }

        return text;
    }
}
