using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Flowline.Coordinator.Storage;

namespace Flowline.Coordinator.Tests;

/// <summary>
/// The release endpoints over HTTP against a real coordinator (Kestrel on a free port), on SQLite
/// (<see cref="SqliteReleaseApiTests"/>) and PostgreSQL (<see cref="PostgresReleaseApiTests"/>).
/// </summary>
public abstract class ReleaseApiTests : IAsyncLifetime
{
    protected const string AdminToken = "admin-token-all-tenants-0001";
    protected const string AcmeAdminToken = "admin-token-acme-only-00002";
    protected const string ControlToken = "control-plane-token-all-0003";

    private readonly List<HttpClient> clients = [];

    /// <summary>The test's directory: the coordinator's data directory and the release files.</summary>
    protected string TestDirectory { get; } = Path.Combine(Path.GetTempPath(), "flowline-coord-http-" + Guid.NewGuid().ToString("N")[..10]);

    protected CoordinatorServer Server { get; private set; } = null!;

    protected abstract Task<ICoordinatorStore> CreateStoreAsync();

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static string ExampleYaml => File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "examples", "copy-64", "pipeline.yaml"));

    private string DataDirectory => Path.Combine(TestDirectory, "data");

    public async ValueTask InitializeAsync()
    {
        Directory.CreateDirectory(TestDirectory);
        Server = await CoordinatorServer.StartAsync(await CreateStoreAsync(), new CoordinatorOptions
        {
            Port = 0,
            DataDirectory = DataDirectory,
            ReleaseRoots = [TestDirectory],
            Tokens = CoordinatorTokens.Of(
                (Role.Admin, ["*"], AdminToken),
                (Role.Admin, ["acme"], AcmeAdminToken),
                (Role.ControlPlane, ["*"], ControlToken)),
        }, Ct);
    }

    public virtual async ValueTask DisposeAsync()
    {
        foreach (var client in clients)
        {
            client.Dispose();
        }

        if (Server is not null)
        {
            await Server.DisposeAsync();
        }

        Directory.Delete(TestDirectory, recursive: true);
    }

    protected HttpClient Client(string? token = AdminToken)
    {
        var client = new HttpClient { BaseAddress = Server.Address, Timeout = TimeSpan.FromSeconds(30) };
        if (token is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        clients.Add(client);
        return client;
    }

    private static string Releases(string tenant = "acme", string pipeline = "copy") => $"/tpf/admin/tenants/{tenant}/pipelines/{pipeline}/releases";

    private static string Sha(string text) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));

    /// <summary>Writes a release directory (the document and its descriptor) and returns the descriptor's path.</summary>
    private string WriteRelease(string version, string yaml, string? digest = null, string pipeline = "copy", string? extra = null)
    {
        var dir = Path.Combine(TestDirectory, "releases", Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "pipeline.yaml"), yaml);
        var descriptor = Descriptor(version, digest ?? Sha(yaml), pipeline);
        if (extra is not null)
        {
            descriptor[extra] = true;
        }

        var path = Path.Combine(dir, "pipeline-release.json");
        File.WriteAllText(path, descriptor.ToJsonString());
        return path;
    }

    private static JsonObject Descriptor(string version, string digest, string pipeline = "copy") => new()
    {
        ["schemaVersion"] = 1,
        ["pipelineId"] = pipeline,
        ["contractVersion"] = "1",
        ["releaseVersion"] = version,
        ["artifacts"] = new JsonArray(new JsonObject { ["artifactId"] = "document", ["kind"] = "pipeline-document", ["uri"] = "pipeline.yaml", ["digest"] = digest }),
    };

    private static Task<HttpResponseMessage> Register(HttpClient client, string descriptorPath, string tenant = "acme", string pipeline = "copy") =>
        client.PostAsJsonAsync($"{Releases(tenant, pipeline)}/register", new { releaseDescriptorPath = descriptorPath }, Ct);

    /// <summary>Asserts an RFC 9457 body with <paramref name="code"/> and returns it.</summary>
    private static async Task<JsonObject> AssertProblem(HttpResponseMessage response, HttpStatusCode status, string code)
    {
        var text = await response.Content.ReadAsStringAsync(Ct);
        Assert.True(status == response.StatusCode, $"expected {(int)status}, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var body = JsonNode.Parse(text)!.AsObject();
        Assert.Equal(code, (string?)body["code"]);
        Assert.Equal((int)status, (int)body["status"]!);
        Assert.False(string.IsNullOrEmpty((string?)body["title"]));
        Assert.False(string.IsNullOrEmpty((string?)body["detail"]));
        Assert.StartsWith("urn:flowline:coordinator:problem:", (string?)body["type"]);
        Assert.Equal(response.RequestMessage!.RequestUri!.AbsolutePath, (string?)body["instance"]);
        return body;
    }

    [Fact]
    public async Task A_symbolic_link_inside_the_release_root_that_points_outside_it_is_refused()
    {
        var admin = Client();
        var outside = Path.Combine(Path.GetTempPath(), "flowline-coord-outside-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(outside);
        try
        {
            // The document is a link to a file outside the root.
            File.WriteAllText(Path.Combine(outside, "pipeline.yaml"), ExampleYaml);
            var path = WriteRelease("1.0.0", ExampleYaml);
            var document = Path.Combine(Path.GetDirectoryName(path)!, "pipeline.yaml");
            File.Delete(document);
            File.CreateSymbolicLink(document, Path.Combine(outside, "pipeline.yaml"));
            var refused = await AssertProblem(await Register(admin, path), HttpStatusCode.Forbidden, ProblemCodes.PathNotAllowed);
            Assert.Contains("artifacts.document", (string)refused["detail"]!, StringComparison.Ordinal);

            // The descriptor is reached through a directory link inside the root.
            File.WriteAllText(Path.Combine(outside, "pipeline-release.json"), Descriptor("1.0.1", Sha(ExampleYaml)).ToJsonString());
            var linked = Path.Combine(TestDirectory, "releases", "linked-" + Guid.NewGuid().ToString("N")[..6]);
            Directory.CreateSymbolicLink(linked, outside);
            var viaDirectory = await AssertProblem(await Register(admin, Path.Combine(linked, "pipeline-release.json")), HttpStatusCode.Forbidden, ProblemCodes.PathNotAllowed);
            Assert.Contains("releaseDescriptorPath", (string)viaDirectory["detail"]!, StringComparison.Ordinal);

            // A link that stays inside the root is followed.
            var inside = WriteRelease("1.0.2", ExampleYaml);
            var insideDocument = Path.Combine(Path.GetDirectoryName(inside)!, "pipeline.yaml");
            File.Move(insideDocument, Path.Combine(Path.GetDirectoryName(inside)!, "real.yaml"));
            File.CreateSymbolicLink(insideDocument, "real.yaml");
            Assert.Equal(HttpStatusCode.Created, (await Register(admin, inside)).StatusCode);
            Assert.Equal(HttpStatusCode.NotFound, (await admin.GetAsync($"{Releases()}/1.0.0", Ct)).StatusCode);
        }
        finally
        {
            Directory.Delete(outside, recursive: true);
        }
    }

    [Fact]
    public async Task Activation_hashes_the_stored_artifacts_again_and_refuses_a_tampered_one()
    {
        var admin = Client();
        var created = await Register(admin, WriteRelease("1.0.0", ExampleYaml));
        var stored = new Uri((string)(await created.Content.ReadFromJsonAsync<JsonObject>(Ct))!["artifacts"]![0]!["uri"]!).LocalPath;
        File.AppendAllText(stored, "\n# changed behind the coordinator's back\n");

        var refused = await AssertProblem(await admin.PostAsync($"{Releases()}/1.0.0/activate", null, Ct), HttpStatusCode.UnprocessableEntity, ProblemCodes.DigestMismatch);
        Assert.Contains("artifact 'document'", (string)refused["detail"]!, StringComparison.Ordinal);
        await AssertProblem(await admin.GetAsync($"{Releases()}/active", Ct), HttpStatusCode.NotFound, ProblemCodes.NoActiveRelease);

        File.Delete(stored);
        await AssertProblem(await admin.PostAsync($"{Releases()}/1.0.0/activate", null, Ct), HttpStatusCode.UnprocessableEntity, ProblemCodes.ArtifactUnavailable);

        File.WriteAllText(stored, ExampleYaml); // the registered bytes again: it activates
        Assert.Equal(HttpStatusCode.OK, (await admin.PostAsync($"{Releases()}/1.0.0/activate", null, Ct)).StatusCode);
    }

    [Fact]
    public async Task Requests_without_a_valid_token_are_401_and_the_token_never_comes_back()
    {
        var none = await Client(null).GetAsync(Releases(), Ct);
        await AssertProblem(none, HttpStatusCode.Unauthorized, ProblemCodes.Unauthenticated);
        Assert.Equal("Bearer", none.Headers.WwwAuthenticate.Single().Scheme);

        var wrong = await Client("not-a-token-of-this-coordinator").GetAsync(Releases(), Ct);
        var body = await AssertProblem(wrong, HttpStatusCode.Unauthorized, ProblemCodes.Unauthenticated);
        Assert.DoesNotContain("not-a-token", body.ToJsonString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_control_plane_token_or_another_tenants_token_is_403()
    {
        await AssertProblem(await Client(ControlToken).GetAsync(Releases(), Ct), HttpStatusCode.Forbidden, ProblemCodes.RoleNotAllowed);
        await AssertProblem(await Client(AcmeAdminToken).GetAsync(Releases("globex"), Ct), HttpStatusCode.Forbidden, ProblemCodes.TenantNotAllowed);
        Assert.Equal(HttpStatusCode.OK, (await Client(AcmeAdminToken).GetAsync(Releases("acme"), Ct)).StatusCode);
    }

    [Fact]
    public async Task Register_stores_the_verified_artifact_and_is_idempotent_then_immutable()
    {
        var admin = Client();
        var path = WriteRelease("1.0.0", ExampleYaml);
        var created = await Register(admin, path);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.Equal($"{Releases()}/1.0.0", created.Headers.Location!.OriginalString);
        var release = (await created.Content.ReadFromJsonAsync<JsonObject>(Ct))!;
        Assert.Equal("REGISTERED", (string?)release["status"]);
        var artifact = release["artifacts"]![0]!;
        Assert.Equal(Sha(ExampleYaml), (string?)artifact["digest"]);
        Assert.Equal(Encoding.UTF8.GetByteCount(ExampleYaml), (long)artifact["sizeBytes"]!);

        // The managed copy is content-addressed and holds exactly the registered bytes, whatever happens to the source.
        var stored = new Uri((string)artifact["uri"]!).LocalPath;
        Assert.StartsWith(Path.Combine(DataDirectory, "artifacts", "sha256"), stored, StringComparison.Ordinal);
        File.WriteAllText(Path.Combine(Path.GetDirectoryName(path)!, "pipeline.yaml"), "changed");
        Assert.Equal(ExampleYaml, File.ReadAllText(stored));

        var again = await Register(admin, WriteRelease("1.0.0", ExampleYaml));
        Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        Assert.Equal((string?)release["contentDigest"], (string?)(await again.Content.ReadFromJsonAsync<JsonObject>(Ct))!["contentDigest"]);

        var changed = ExampleYaml + "\n# another release\n";
        var conflict = await AssertProblem(await Register(admin, WriteRelease("1.0.0", changed)), HttpStatusCode.Conflict, ProblemCodes.ReleaseImmutable);
        Assert.Equal((string?)release["contentDigest"], (string?)conflict["existingContentDigest"]);

        var get = (await admin.GetFromJsonAsync<JsonObject>($"{Releases()}/1.0.0", Ct))!;
        Assert.Equal(Sha(ExampleYaml), (string?)get["artifacts"]![0]!["digest"]);
    }

    [Fact]
    public async Task Registration_refuses_a_wrong_digest_an_invalid_document_and_a_bad_descriptor()
    {
        var admin = Client();
        var mismatch = await AssertProblem(await Register(admin, WriteRelease("1.0.0", ExampleYaml, digest: Sha("something else"))), (HttpStatusCode)422, ProblemCodes.DigestMismatch);
        Assert.Contains(Sha(ExampleYaml), (string?)mismatch["detail"], StringComparison.Ordinal);

        var broken = ExampleYaml.Replace("kernels:", "kernelz:", StringComparison.Ordinal);
        var invalid = await AssertProblem(await Register(admin, WriteRelease("1.0.1", broken)), (HttpStatusCode)422, ProblemCodes.InvalidPipeline);
        Assert.NotEmpty(invalid["errors"]!.AsArray());

        var unknown = await AssertProblem(await Register(admin, WriteRelease("1.0.2", ExampleYaml, extra: "scope")), (HttpStatusCode)422, ProblemCodes.InvalidDescriptor);
        Assert.Contains("scope: unknown member", (string?)unknown["detail"], StringComparison.Ordinal);

        await AssertProblem(await Register(admin, WriteRelease("1.0.3", ExampleYaml, pipeline: "other")), (HttpStatusCode)422, ProblemCodes.InvalidDescriptor);
        await AssertProblem(await Register(admin, "relative/pipeline-release.json"), HttpStatusCode.BadRequest, ProblemCodes.InvalidRequest);
        await AssertProblem(await admin.PostAsync($"{Releases()}/register", new StringContent("{not json", Encoding.UTF8, "application/json"), Ct), HttpStatusCode.BadRequest, ProblemCodes.InvalidRequest);

        // Nothing was registered, and nothing was left in the artifact store.
        Assert.Empty((await admin.GetFromJsonAsync<JsonObject>(Releases(), Ct))!["items"]!.AsArray());
        Assert.Empty(Directory.GetFiles(Path.Combine(DataDirectory, "artifacts"), "*", SearchOption.AllDirectories));
    }

    [Fact]
    public async Task A_descriptor_and_its_artifacts_can_come_in_the_body()
    {
        var admin = Client();
        var body = new JsonObject
        {
            ["descriptor"] = Descriptor("2.0.0", Sha(ExampleYaml)),
            ["artifacts"] = new JsonObject { ["document"] = Convert.ToBase64String(Encoding.UTF8.GetBytes(ExampleYaml)) },
        };
        var created = await admin.PostAsJsonAsync($"{Releases()}/register", body, Ct);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);

        var wrong = new JsonObject
        {
            ["descriptor"] = Descriptor("2.0.1", Sha(ExampleYaml)),
            ["artifacts"] = new JsonObject { ["document"] = Convert.ToBase64String(Encoding.UTF8.GetBytes(ExampleYaml + " ")) },
        };
        await AssertProblem(await admin.PostAsJsonAsync($"{Releases()}/register", wrong, Ct), (HttpStatusCode)422, ProblemCodes.DigestMismatch);
        var missing = new JsonObject { ["descriptor"] = Descriptor("2.0.2", Sha(ExampleYaml)) };
        await AssertProblem(await admin.PostAsJsonAsync($"{Releases()}/register", missing, Ct), (HttpStatusCode)422, ProblemCodes.ArtifactUnavailable);
    }

    [Fact]
    public async Task Activation_moves_the_active_release_with_etags_and_412_on_a_race()
    {
        var admin = Client();
        Assert.Equal(HttpStatusCode.Created, (await Register(admin, WriteRelease("1.0.0", ExampleYaml))).StatusCode);
        Assert.Equal(HttpStatusCode.Created, (await Register(admin, WriteRelease("1.1.0", ExampleYaml + "\n# 1.1\n"))).StatusCode);
        await AssertProblem(await admin.GetAsync($"{Releases()}/active", Ct), HttpStatusCode.NotFound, ProblemCodes.NoActiveRelease);
        await AssertProblem(await admin.PostAsync($"{Releases()}/9.9.9/activate", null, Ct), HttpStatusCode.NotFound, ProblemCodes.ReleaseNotFound);

        var first = await admin.PostAsJsonAsync($"{Releases()}/1.0.0/activate", new { reason = "first" }, Ct);
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        var etag = first.Headers.ETag!.Tag;

        var active = await admin.GetAsync($"{Releases()}/active", Ct);
        Assert.Equal(etag, active.Headers.ETag!.Tag);
        var body = (await active.Content.ReadFromJsonAsync<JsonObject>(Ct))!;
        Assert.Equal("1.0.0", (string?)body["releaseVersion"]);
        Assert.Equal("ACTIVE", (string?)body["status"]);
        Assert.Equal("first", (string?)body["activation"]!["reason"]);
        Assert.StartsWith("admin/", (string?)body["activation"]!["actor"], StringComparison.Ordinal);

        using var ok = new HttpRequestMessage(HttpMethod.Post, $"{Releases()}/1.1.0/activate");
        ok.Headers.IfMatch.Add(new EntityTagHeaderValue(etag));
        var second = await admin.SendAsync(ok, Ct);
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.Equal("1.0.0", (string?)(await second.Content.ReadFromJsonAsync<JsonObject>(Ct))!["previousReleaseVersion"]);

        // The same If-Match again is stale now: 412, and the head stays.
        using var stale = new HttpRequestMessage(HttpMethod.Post, $"{Releases()}/1.0.0/activate");
        stale.Headers.IfMatch.Add(new EntityTagHeaderValue(etag));
        var refused = await admin.SendAsync(stale, Ct);
        await AssertProblem(refused, HttpStatusCode.PreconditionFailed, ProblemCodes.ActivationConflict);
        Assert.Equal(second.Headers.ETag!.Tag, refused.Headers.ETag!.Tag);
        Assert.Equal("1.1.0", (string?)(await admin.GetFromJsonAsync<JsonObject>($"{Releases()}/active", Ct))!["releaseVersion"]);

        var statuses = (await admin.GetFromJsonAsync<JsonObject>(Releases(), Ct))!["items"]!.AsArray().ToDictionary(r => (string)r!["releaseVersion"]!, r => (string)r!["status"]!);
        Assert.Equal(new Dictionary<string, string> { ["1.0.0"] = "REGISTERED", ["1.1.0"] = "ACTIVE" }, statuses);
        var log = (await admin.GetFromJsonAsync<JsonObject>("/tpf/admin/tenants/acme/pipelines/copy/activations", Ct))!["items"]!.AsArray();
        Assert.Equal(["1.0.0", "1.1.0"], log.Select(e => (string)e!["releaseVersion"]!));
    }

    [Fact]
    public async Task Workers_register_drain_and_undrain_over_http()
    {
        var admin = Client();
        const string Workers = "/tpf/admin/tenants/acme/pipelines/copy/workers";
        var registered = await admin.PostAsJsonAsync($"{Workers}/register", new { workerId = "host-1", protocol = "Flowline", contractVersion = "1", releaseVersion = "1.0.0" }, Ct);
        Assert.Equal(HttpStatusCode.OK, registered.StatusCode);
        var body = (await registered.Content.ReadFromJsonAsync<JsonObject>(Ct))!;
        Assert.Equal("HEALTHY", (string?)body["state"]);
        Assert.Equal("flowline", (string?)body["protocol"]);

        Assert.Equal("DRAINING", (string?)(await (await admin.PostAsync($"{Workers}/host-1/drain", null, Ct)).Content.ReadFromJsonAsync<JsonObject>(Ct))!["state"]);
        Assert.Equal("DRAINING", (string?)(await (await admin.PostAsync($"{Workers}/host-1/heartbeat", null, Ct)).Content.ReadFromJsonAsync<JsonObject>(Ct))!["state"]);
        Assert.Equal("HEALTHY", (string?)(await (await admin.PostAsync($"{Workers}/host-1/undrain", null, Ct)).Content.ReadFromJsonAsync<JsonObject>(Ct))!["state"]);
        var listed = (await admin.GetFromJsonAsync<JsonObject>($"{Workers}?releaseVersion=1.0.0", Ct))!["items"]!.AsArray();
        Assert.Equal("host-1", (string?)Assert.Single(listed)!["workerId"]);
        Assert.Empty((await admin.GetFromJsonAsync<JsonObject>($"{Workers}?releaseVersion=2.0.0", Ct))!["items"]!.AsArray());

        await AssertProblem(await admin.PostAsync($"{Workers}/nobody/heartbeat", null, Ct), HttpStatusCode.NotFound, ProblemCodes.WorkerNotFound);
        await AssertProblem(await admin.PostAsync("/tpf/admin/tenants/globex/pipelines/copy/workers/host-1/drain", null, Ct), HttpStatusCode.NotFound, ProblemCodes.WorkerNotFound);
        var invalid = await AssertProblem(await admin.PostAsJsonAsync($"{Workers}/register", new { workerId = "host 2", speed = 3 }, Ct), HttpStatusCode.BadRequest, ProblemCodes.InvalidRequest);
        Assert.Equal(5, invalid["errors"]!.AsArray().Count); // workerId, speed, protocol, contractVersion, releaseVersion
        await AssertProblem(await Client(AcmeAdminToken).GetAsync("/tpf/admin/tenants/globex/pipelines/copy/workers", Ct), HttpStatusCode.Forbidden, ProblemCodes.TenantNotAllowed);
    }

    [Fact]
    public async Task Tenants_are_isolated_and_listings_page_with_cursors()
    {
        var admin = Client();
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(HttpStatusCode.Created, (await Register(admin, WriteRelease($"1.{i}.0", ExampleYaml + $"\n# {i}\n"))).StatusCode);
        }

        await AssertProblem(await admin.GetAsync($"{Releases("globex")}/1.0.0", Ct), HttpStatusCode.NotFound, ProblemCodes.ReleaseNotFound);
        Assert.Empty((await admin.GetFromJsonAsync<JsonObject>(Releases("globex"), Ct))!["items"]!.AsArray());
        await AssertProblem(await admin.PostAsync($"{Releases("globex")}/1.0.0/activate", null, Ct), HttpStatusCode.NotFound, ProblemCodes.ReleaseNotFound);

        var seen = new List<string>();
        string? cursor = null;
        do
        {
            var page = (await admin.GetFromJsonAsync<JsonObject>($"{Releases()}?limit=2" + (cursor is null ? "" : $"&cursor={cursor}"), Ct))!;
            seen.AddRange(page["items"]!.AsArray().Select(r => (string)r!["releaseVersion"]!));
            cursor = (string?)page["nextCursor"];
        }
        while (cursor is not null);
        Assert.Equal(["1.0.0", "1.1.0", "1.2.0"], seen);

        await AssertProblem(await admin.GetAsync($"{Releases()}?cursor=bogus", Ct), HttpStatusCode.BadRequest, ProblemCodes.InvalidRequest);
        await AssertProblem(await admin.GetAsync($"{Releases()}?limit=0", Ct), HttpStatusCode.BadRequest, ProblemCodes.InvalidRequest);
        await AssertProblem(await admin.GetAsync("/tpf/admin/nothing-here", Ct), HttpStatusCode.NotFound, ProblemCodes.NotFound);
    }
}

/// <summary>The release endpoints on SQLite.</summary>
public sealed class SqliteReleaseApiTests : ReleaseApiTests
{
    protected override Task<ICoordinatorStore> CreateStoreAsync() =>
        Task.FromResult<ICoordinatorStore>(new SqliteCoordinatorStore(Path.Combine(TestDirectory, "data", CoordinatorStores.DatabaseFile)));
}

/// <summary>The release endpoints on the real PostgreSQL server.</summary>
public sealed class PostgresReleaseApiTests(PostgresServer server) : ReleaseApiTests
{
    protected override async Task<ICoordinatorStore> CreateStoreAsync() => new PostgresCoordinatorStore(await server.CreateDatabaseAsync());
}
