using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Flowline.Coordinator.Storage;
using Flowline.Documents;

namespace Flowline.Coordinator;

/// <summary>
/// The content-addressed artifact store: each artifact once, at <c>&lt;root&gt;/sha256/&lt;hex&gt;</c>,
/// written through a temporary file and an atomic rename, so a reader never sees half an artifact.
/// </summary>
public sealed class ArtifactStore
{
    /// <summary>A store under <paramref name="root"/> (created when missing).</summary>
    public ArtifactStore(string root)
    {
        Root = Path.GetFullPath(root);
        Directory.CreateDirectory(Path.Combine(Root, "sha256"));
        Directory.CreateDirectory(Path.Combine(Root, "tmp"));
    }

    /// <summary>The store's directory.</summary>
    public string Root { get; }

    /// <summary>The path of the artifact with <paramref name="digest"/> (<c>sha256:&lt;hex&gt;</c>).</summary>
    public string PathOf(string digest) => Path.Combine(Root, "sha256", digest["sha256:".Length..]);

    /// <summary>Copies <paramref name="source"/> to a temporary file, hashing it; at most <paramref name="maxBytes"/>.</summary>
    public async Task<(string TempPath, string Digest, long Size)> StageAsync(Stream source, long maxBytes, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(source);
        var temp = Path.Combine(Root, "tmp", Guid.NewGuid().ToString("N"));
        try
        {
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var output = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true);
            long size = 0;
            await using (output.ConfigureAwait(false))
            {
                var buffer = new byte[1 << 16];
                int n;
                while ((n = await source.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
                {
                    size += n;
                    if (size > maxBytes)
                    {
                        throw new ProblemException(413, ProblemCodes.PayloadTooLarge, $"an artifact is larger than the {maxBytes:N0} bytes the coordinator accepts (--max-artifact-bytes)");
                    }

                    hash.AppendData(buffer, 0, n);
                    await output.WriteAsync(buffer.AsMemory(0, n), cancellationToken).ConfigureAwait(false);
                }

                await output.FlushAsync(cancellationToken).ConfigureAwait(false);
                output.Flush(flushToDisk: true);
            }

            return (temp, "sha256:" + Convert.ToHexStringLower(hash.GetHashAndReset()), size);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }

    /// <summary>Moves a verified temporary file to its content address (or drops it when the content is already there).</summary>
    public string Commit(string tempPath, string digest)
    {
        var target = PathOf(digest);
        try
        {
            File.Move(tempPath, target, overwrite: false);
        }
        catch (IOException) when (File.Exists(target))
        {
            File.Delete(tempPath);
        }

        return target;
    }
}

/// <summary>
/// Registers releases: reads the descriptor, verifies every artifact's SHA-256, validates the pipeline
/// document with Flowline's own validator (the plugins it loads must be pinned by the release), copies
/// the artifacts into the <see cref="ArtifactStore"/> and records the release in the store.
/// </summary>
public sealed class ReleaseRegistrar(ICoordinatorStore store, ArtifactStore artifacts, long maxArtifactBytes)
{
    /// <summary>The content-addressed artifact store (agents download from it).</summary>
    public ArtifactStore Artifacts => artifacts;

    /// <summary>
    /// The directories register-by-path may read from (the descriptor and every artifact it names); empty:
    /// register-by-path is refused, so a token cannot make the coordinator read any file on its disk.
    /// </summary>
    public IReadOnlyList<string> ReleaseRoots { get; init; } = [];

    /// <summary>
    /// 403 PATH_NOT_ALLOWED unless <paramref name="path"/> is inside one of <paramref name="roots"/>, both
    /// compared with every symbolic link resolved: a link inside a root that points outside it is outside.
    /// </summary>
    private static void RequireInside(string path, IEnumerable<string> roots, string what)
    {
        var full = RealPath(path);
        if (!roots.Any(r => full.StartsWith(Path.TrimEndingDirectorySeparator(RealPath(r)) + Path.DirectorySeparatorChar, StringComparison.Ordinal)))
        {
            throw new ProblemException(403, ProblemCodes.PathNotAllowed, $"{what} '{path}' is outside the directories this coordinator registers releases from (--release-root); upload the descriptor and artifacts in the body instead");
        }
    }

    /// <summary>
    /// <paramref name="path"/> made absolute with every symbolic link of every component resolved (as
    /// realpath(3)); components that do not exist are kept as written. A loop of links is an error.
    /// </summary>
    internal static string RealPath(string path, int depth = 0)
    {
        if (depth > 40)
        {
            throw new ProblemException(403, ProblemCodes.PathNotAllowed, $"'{path}': too many levels of symbolic links");
        }

        var current = Path.GetPathRoot(Path.GetFullPath(path))!;
        foreach (var part in Path.GetFullPath(path)[current.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries))
        {
            var next = Path.Combine(current, part);
            FileSystemInfo? target;
            try
            {
                target = new FileInfo(next).LinkTarget is null ? null : new FileInfo(next).ResolveLinkTarget(returnFinalTarget: true);
            }
            catch (IOException e)
            {
                throw new ProblemException(403, ProblemCodes.PathNotAllowed, $"'{path}': {e.Message}");
            }

            current = target is null ? next : RealPath(target.FullName, depth + 1);
        }

        return current;
    }

    /// <summary>
    /// Hashes every stored artifact of <paramref name="release"/> in the artifact store again: 422
    /// DIGEST_MISMATCH naming each one whose content changed, ARTIFACT_UNAVAILABLE for one that is gone.
    /// </summary>
    public async Task VerifyStoredAsync(ReleaseRecord release, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(release);
        var problems = new List<string>();
        var missing = new List<string>();
        foreach (var artifact in (JsonNode.Parse(release.ArtifactsJson) as JsonArray ?? []).OfType<JsonObject>())
        {
            if (!ArtifactKinds.IsStored((string?)artifact["kind"] ?? ""))
            {
                continue;
            }

            var (id, digest) = ((string?)artifact["artifactId"], (string)artifact["digest"]!);
            var path = artifacts.PathOf(digest);
            try
            {
                var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, useAsync: true);
                await using (stream.ConfigureAwait(false))
                {
                    var actual = "sha256:" + Convert.ToHexStringLower(await SHA256.HashDataAsync(stream, cancellationToken).ConfigureAwait(false));
                    if (actual != digest)
                    {
                        problems.Add($"artifact '{id}': the stored copy has digest {actual}, not the {digest} the release pins (it was changed on the coordinator's disk)");
                    }
                }
            }
            catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
            {
                missing.Add($"artifact '{id}': its stored copy {path} is gone");
            }
        }

        if (problems.Count > 0)
        {
            throw new ProblemException(422, ProblemCodes.DigestMismatch, $"release '{release.ReleaseVersion}' cannot be activated: " + string.Join("; ", problems), new JsonObject { ["errors"] = new JsonArray([.. problems.Select(p => (JsonNode)p)]) });
        }

        if (missing.Count > 0)
        {
            throw new ProblemException(422, ProblemCodes.ArtifactUnavailable, $"release '{release.ReleaseVersion}' cannot be activated: " + string.Join("; ", missing));
        }
    }

    /// <summary>The largest descriptor file read from disk.</summary>
    public const int MaxDescriptorBytes = 1 << 20;

    /// <summary>
    /// The seed's form: <paramref name="descriptorPath"/> is an absolute path of a <c>pipeline-release.json</c>
    /// readable by the coordinator; relative artifact uris are relative to its directory.
    /// </summary>
    public async Task<(ReleaseRecord Release, bool Created)> RegisterFromPathAsync(string tenantId, string pipelineId, string descriptorPath, string actor, CancellationToken cancellationToken)
    {
        if (!Path.IsPathFullyQualified(descriptorPath))
        {
            throw new ProblemException(400, ProblemCodes.InvalidRequest, $"releaseDescriptorPath must be an absolute path, not '{descriptorPath}'");
        }

        if (ReleaseRoots.Count == 0)
        {
            throw new ProblemException(403, ProblemCodes.PathNotAllowed, "this coordinator registers releases by path from no directory (start it with --release-root DIR); upload the descriptor and artifacts in the body instead");
        }

        RequireInside(descriptorPath, ReleaseRoots, "releaseDescriptorPath");

        JsonNode? json;
        try
        {
            var info = new FileInfo(descriptorPath);
            if (info.Exists && info.Length > MaxDescriptorBytes)
            {
                throw new ProblemException(422, ProblemCodes.InvalidDescriptor, $"{descriptorPath}: larger than {MaxDescriptorBytes:N0} bytes");
            }

            json = JsonNode.Parse(await File.ReadAllTextAsync(descriptorPath, cancellationToken).ConfigureAwait(false));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ProblemException(422, ProblemCodes.ArtifactUnavailable, $"cannot read the release descriptor {descriptorPath}: {e.Message}");
        }
        catch (JsonException e)
        {
            throw new ProblemException(422, ProblemCodes.InvalidDescriptor, $"{descriptorPath}: not JSON ({e.Message})");
        }

        return await RegisterAsync(tenantId, pipelineId, json, Path.GetDirectoryName(descriptorPath)!, ReleaseRoots, actor, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The body form: the descriptor and the content of its stored artifacts (base64 by artifact id),
    /// laid out by their uris in a staging directory that is removed afterwards.
    /// </summary>
    public async Task<(ReleaseRecord Release, bool Created)> RegisterFromBodyAsync(string tenantId, string pipelineId, JsonNode? descriptor, JsonObject? contents, string actor, CancellationToken cancellationToken)
    {
        var parsed = ReleaseDescriptor.Parse(descriptor);
        var staging = Path.Combine(artifacts.Root, "tmp", "stage-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(staging);
        try
        {
            foreach (var (id, value) in contents ?? [])
            {
                var artifact = parsed.Artifacts.FirstOrDefault(a => a.ArtifactId == id)
                    ?? throw new ProblemException(400, ProblemCodes.InvalidRequest, $"artifacts.{id}: the descriptor has no artifact '{id}'");
                if (!ArtifactKinds.IsStored(artifact.Kind))
                {
                    throw new ProblemException(400, ProblemCodes.InvalidRequest, $"artifacts.{id}: a {artifact.Kind} is referenced, not uploaded");
                }

                var target = Path.GetFullPath(Path.Combine(staging, artifact.Uri));
                if (Path.IsPathRooted(artifact.Uri) || artifact.Uri.StartsWith("file:", StringComparison.Ordinal) || !target.StartsWith(staging + Path.DirectorySeparatorChar, StringComparison.Ordinal))
                {
                    throw new ProblemException(422, ProblemCodes.InvalidDescriptor, $"artifacts[{parsed.Artifacts.IndexOf(artifact)}].uri: an uploaded artifact's uri must be a relative path inside the release, not '{artifact.Uri}'");
                }

                byte[] bytes;
                try
                {
                    bytes = Convert.FromBase64String(value?.GetValue<string>() ?? "");
                }
                catch (Exception e) when (e is FormatException or InvalidOperationException)
                {
                    throw new ProblemException(400, ProblemCodes.InvalidRequest, $"artifacts.{id}: must be the artifact's content in base64");
                }

                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                await File.WriteAllBytesAsync(target, bytes, cancellationToken).ConfigureAwait(false);
            }

            return await RegisterAsync(tenantId, pipelineId, descriptor, staging, [staging], actor, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Directory.Delete(staging, recursive: true);
        }
    }

    private async Task<(ReleaseRecord Release, bool Created)> RegisterAsync(string tenantId, string pipelineId, JsonNode? json, string baseDirectory, IEnumerable<string> roots, string actor, CancellationToken cancellationToken)
    {
        var descriptor = ReleaseDescriptor.Parse(json);
        if (descriptor.PipelineId != pipelineId)
        {
            throw new ProblemException(422, ProblemCodes.InvalidDescriptor, $"pipelineId: the descriptor is for '{descriptor.PipelineId}', the request for '{pipelineId}'");
        }

        var digest = descriptor.ContentDigest();

        // A version already registered is answered without reading an artifact: the same content is idempotent, other content is refused.
        if (await store.GetReleaseAsync(tenantId, pipelineId, descriptor.ReleaseVersion, cancellationToken).ConfigureAwait(false) is { } existing)
        {
            return existing.ContentDigest == digest ? (existing, false) : throw new ReleaseImmutableException(existing);
        }

        var staged = new List<(ArtifactDescriptor Artifact, string Path, string Temp, long Size)>();
        try
        {
            var problems = new List<string>();
            foreach (var artifact in descriptor.Artifacts.Where(a => ArtifactKinds.IsStored(a.Kind)))
            {
                var path = Resolve(baseDirectory, artifact.Uri);
                RequireInside(path, roots, $"artifacts.{artifact.ArtifactId}");
                FileStream input;
                try
                {
                    input = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, useAsync: true);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    throw new ProblemException(422, ProblemCodes.ArtifactUnavailable, $"artifact '{artifact.ArtifactId}': cannot read {artifact.Uri}: {e.Message}");
                }

                await using (input.ConfigureAwait(false))
                {
                    var (temp, actual, size) = await artifacts.StageAsync(input, maxArtifactBytes, cancellationToken).ConfigureAwait(false);
                    staged.Add((artifact, path, temp, size));
                    if (actual != artifact.Digest)
                    {
                        problems.Add($"artifact '{artifact.ArtifactId}' ({artifact.Uri}) has digest {actual}, the descriptor pins {artifact.Digest}");
                    }
                }
            }

            if (problems.Count > 0)
            {
                throw new ProblemException(422, ProblemCodes.DigestMismatch, string.Join("; ", problems), new JsonObject { ["errors"] = new JsonArray([.. problems.Select(p => (JsonNode)p)]) });
            }

            var document = staged.Single(s => s.Artifact.Kind == ArtifactKinds.PipelineDocument);
            await ValidateAsync(document.Artifact, document.Path, document.Temp, staged.Where(s => s.Artifact.Kind == ArtifactKinds.PluginAssembly).Select(s => s.Path), cancellationToken).ConfigureAwait(false);

            var stored = new List<StoredArtifact>();
            foreach (var artifact in descriptor.Artifacts)
            {
                if (!ArtifactKinds.IsStored(artifact.Kind))
                {
                    stored.Add(new StoredArtifact(artifact.ArtifactId, artifact.Kind, artifact.Digest, null, artifact.Uri, artifact.Uri));
                    continue;
                }

                var s = staged.Single(x => x.Artifact == artifact);
                var target = artifacts.Commit(s.Temp, artifact.Digest);
                stored.Add(new StoredArtifact(artifact.ArtifactId, artifact.Kind, artifact.Digest, s.Size, new Uri(target).AbsoluteUri, artifact.Uri));
            }

            return await store.RegisterReleaseAsync(
                new NewRelease(tenantId, pipelineId, descriptor.ReleaseVersion, descriptor.ContractVersion, digest,
                    descriptor.ToJson().ToJsonString(), JsonSerializer.Serialize(stored, CoordinatorJson.Options), actor),
                cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            foreach (var s in staged)
            {
                File.Delete(s.Temp); // nothing when committed
            }
        }
    }

    private static async Task ValidateAsync(ArtifactDescriptor artifact, string path, string verifiedCopy, IEnumerable<string> pinnedPlugins, CancellationToken cancellationToken)
    {
        // The verified copy's text is validated, with the document's own directory as the base of its plugin paths.
        var text = await File.ReadAllTextAsync(verifiedCopy, Encoding.UTF8, cancellationToken).ConfigureAwait(false);
        var check = PipelineDocument.Check(text, artifact.Uri, Path.GetDirectoryName(path));
        if (!check.IsValid)
        {
            var errors = check.Errors.Select(e => e.ToString()).ToList();
            throw new ProblemException(422, ProblemCodes.InvalidPipeline,
                $"the pipeline document '{artifact.ArtifactId}' is not valid: {string.Join("; ", errors.Take(10))}" + (check.TotalErrors > 10 ? $"; and {check.TotalErrors - 10} more" : ""),
                new JsonObject { ["errors"] = new JsonArray([.. errors.Select(e => (JsonNode)e)]), ["errorCount"] = check.TotalErrors });
        }

        var pinned = pinnedPlugins.Select(Path.GetFullPath).ToHashSet();
        var unpinned = check.Pipeline!.Spec.Plugins.Where(p => !pinned.Contains(Path.GetFullPath(Path.Combine(Path.GetDirectoryName(path)!, p)))).ToList();
        if (unpinned.Count > 0)
        {
            throw new ProblemException(422, ProblemCodes.InvalidPipeline,
                $"the pipeline document loads plugins the release does not pin: {string.Join(", ", unpinned)}; add each as a '{ArtifactKinds.PluginAssembly}' artifact with that path as its uri");
        }
    }

    private static string Resolve(string baseDirectory, string uri) =>
        uri.StartsWith("file://", StringComparison.Ordinal) ? new Uri(uri).LocalPath : Path.GetFullPath(Path.Combine(baseDirectory, uri));
}
