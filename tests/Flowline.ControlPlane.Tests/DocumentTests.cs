using System.Net;
using System.Text.Json.Nodes;

namespace Flowline.ControlPlane.Tests;

/// <summary><c>PUT /document</c> and <c>POST /document/load</c>: validated first, atomic, refused while active, confined to the roots.</summary>
public sealed class DocumentTests : ServerTest
{
    private async Task<JsonObject> CurrentDocumentAsync() => (await GetOkAsync("/document"))["document"]!.AsObject();

    private string WriteBeside(string name, string yaml)
    {
        var path = Path.Combine(Path.GetDirectoryName(ConfigPath)!, name);
        File.WriteAllText(path, yaml);
        return path;
    }

    [Fact]
    public async Task Put_ValidDocument_IncrementsRevisionAndReturnsDocumentValidErrorsGraph()
    {
        var document = await CurrentDocumentAsync();
        document["kernels"]![0]!["name"] = "copier";
        var reply = await PutAsync("/document", document);
        Assert.Equal(HttpStatusCode.OK, reply.Status);
        var body = reply.Json;
        foreach (var key in new[] { "config_path", "config_base_path", "revision", "document", "valid", "errors", "graph" })
        {
            Assert.True(body.ContainsKey(key), $"'{key}' is missing from {reply.Text}");
        }

        Assert.Equal(2, (long)body["revision"]!);
        Assert.True((bool)body["valid"]!);
        Assert.Empty(body["errors"]!.AsArray());
        Assert.Equal("copier", (string?)body["graph"]!["kernels"]![0]!["name"]);
        Assert.Equal("copier", (string?)body["document"]!["kernels"]![0]!["name"]);
        Assert.Equal(Path.GetDirectoryName(ConfigPath), (string?)body["config_base_path"]);

        var now = await GetOkAsync("/document");
        Assert.Equal(2, (long)now["revision"]!);
        Assert.Equal("copier", (string?)now["document"]!["kernels"]![0]!["name"]);
        Assert.Equal(2, (long)(await GetOkAsync("/health"))["document_revision"]!);
        Assert.True((await GetOkAsync("/status"))["workers"]!.AsObject().ContainsKey("copier"), "the new manager runs the new document");
    }

    [Fact]
    public async Task Put_InvalidDocument_Is400WithErrors_AndRevisionUnchanged()
    {
        var document = await CurrentDocumentAsync();
        document["kernels"]![0]!["kind"] = "cpu.does_not_exist";
        var reply = await PutAsync("/document", document);
        var detail = AssertError(reply, HttpStatusCode.BadRequest);
        Assert.Contains("cpu.does_not_exist", detail, StringComparison.Ordinal);
        Assert.False((bool)reply.Json["valid"]!);
        Assert.NotEmpty(reply.Json["errors"]!.AsArray());
        Assert.Equal(1, (long)(await GetOkAsync("/document"))["revision"]!);
        Assert.Equal("cpu.copy", (string?)(await CurrentDocumentAsync())["kernels"]![0]!["kind"]);
    }

    [Fact]
    public async Task Put_NoBody_Is422()
    {
        var reply = await SendAsync(Http, HttpMethod.Put, "/document");
        AssertError(reply, HttpStatusCode.UnprocessableEntity);
        Assert.Equal(1, (long)(await GetOkAsync("/document"))["revision"]!);
    }

    [Fact]
    public async Task Put_WhileRunning_Is409NamingTheState_AndTheDocumentStays()
    {
        await PostOkAsync("/commands/start");
        var document = await CurrentDocumentAsync();
        document["kernels"]![0]!["name"] = "copier";
        var reply = await PutAsync("/document", document);
        Assert.Contains("running", AssertError(reply, HttpStatusCode.Conflict), StringComparison.Ordinal);
        Assert.Equal(1, (long)(await GetOkAsync("/document"))["revision"]!);
        Assert.Equal("running", await StateAsync());
        Assert.True((await GetOkAsync("/status"))["workers"]!.AsObject().ContainsKey("copy"));
    }

    [Fact]
    public async Task Put_WhenBuilt_ShutsTheOldPipelineDownAndServesTheNewOneInitialized()
    {
        await PostOkAsync("/commands/build");
        Assert.True(Directory.Exists(Flowline.SharedMemory.SharedMemoryNamespace.DirectoryOf(Namespace)));
        var reply = await PutAsync("/document", SourcelessDocument(await CurrentDocumentAsync()));
        Assert.Equal(HttpStatusCode.OK, reply.Status);
        Assert.Equal("initialized", await StateAsync());
        Assert.Empty((await GetOkAsync("/status"))["sources"]!.AsObject());
    }

    [Fact]
    public async Task Load_FileBesideTheServedOne_Is200AndChangesConfigPath()
    {
        var path = WriteBeside("other.yaml", ExampleYaml.Replace("name: copy\n", "name: loaded\n", StringComparison.Ordinal));
        var reply = await PostAsync("/document/load", new JsonObject { ["path"] = "other.yaml" });
        Assert.True(reply.Status == HttpStatusCode.OK, reply.Text);
        Assert.Equal(path, (string?)reply.Json["config_path"]);
        Assert.Equal(2, (long)reply.Json["revision"]!);
        Assert.True((bool)reply.Json["valid"]!);
        Assert.Equal("loaded", (string?)reply.Json["graph"]!["kernels"]![0]!["name"]);
        Assert.Equal(path, (string?)(await GetOkAsync("/info"))["config_path"]);
        Assert.Equal(path, (string?)(await GetOkAsync("/status"))["config_path"]);
    }

    [Fact]
    public async Task Load_AbsolutePathUnderALoadRoot_Is200()
    {
        var reply = await PostAsync("/document/load", new JsonObject { ["path"] = WriteBeside("abs.yaml", ExampleYaml) });
        Assert.True(reply.Status == HttpStatusCode.OK, reply.Text);
    }

    [Fact]
    public async Task Load_MissingFile_Is404()
    {
        var reply = await PostAsync("/document/load", new JsonObject { ["path"] = "missing.yaml" });
        Assert.Contains("missing.yaml", AssertError(reply, HttpStatusCode.NotFound), StringComparison.Ordinal);
        Assert.Equal(1, (long)(await GetOkAsync("/document"))["revision"]!);
    }

    [Fact]
    public async Task Load_InvalidFile_Is400AndRevisionUnchanged()
    {
        WriteBeside("broken.yaml", ExampleYaml.Replace("kind: cpu.copy", "kind: cpu.nope", StringComparison.Ordinal));
        var reply = await PostAsync("/document/load", new JsonObject { ["path"] = "broken.yaml" });
        AssertError(reply, HttpStatusCode.BadRequest);
        Assert.False((bool)reply.Json["valid"]!);
        Assert.Equal(1, (long)(await GetOkAsync("/document"))["revision"]!);
        Assert.Equal(ConfigPath, (string?)(await GetOkAsync("/document"))["config_path"]);
    }

    [Fact]
    public async Task Load_PathOutsideTheRoots_Is403()
    {
        var reply = await PostAsync("/document/load", new JsonObject { ["path"] = "/etc/hostname" });
        Assert.Contains("outside", AssertError(reply, HttpStatusCode.Forbidden), StringComparison.Ordinal);
        Assert.Equal(1, (long)(await GetOkAsync("/document"))["revision"]!);
    }

    [Fact]
    public async Task Load_DotDotOutOfTheRoot_Is403()
    {
        File.WriteAllText(Path.Combine(TestDirectory, "parent.yaml"), ExampleYaml);
        var reply = await PostAsync("/document/load", new JsonObject { ["path"] = "../parent.yaml" });
        AssertError(reply, HttpStatusCode.Forbidden);
    }

    [Fact]
    public async Task Load_FileSymlinkPointingOutside_Is403()
    {
        File.WriteAllText(Path.Combine(TestDirectory, "outside.yaml"), ExampleYaml);
        File.CreateSymbolicLink(Path.Combine(Path.GetDirectoryName(ConfigPath)!, "link.yaml"), Path.Combine(TestDirectory, "outside.yaml"));
        var reply = await PostAsync("/document/load", new JsonObject { ["path"] = "link.yaml" });
        AssertError(reply, HttpStatusCode.Forbidden);
    }

    [Fact]
    public async Task Load_DirectorySymlinkPointingOutside_Is403()
    {
        var outside = Path.Combine(TestDirectory, "outside");
        Directory.CreateDirectory(outside);
        File.WriteAllText(Path.Combine(outside, "secret.yaml"), ExampleYaml);
        Directory.CreateSymbolicLink(Path.Combine(Path.GetDirectoryName(ConfigPath)!, "escape"), outside);
        var reply = await PostAsync("/document/load", new JsonObject { ["path"] = "escape/secret.yaml" });
        AssertError(reply, HttpStatusCode.Forbidden);
        Assert.Equal(1, (long)(await GetOkAsync("/document"))["revision"]!);
    }

    [Fact]
    public async Task Load_BodyWithoutPath_Is422()
    {
        var reply = await PostAsync("/document/load", new JsonObject { ["file"] = "other.yaml" });
        Assert.Contains("'path'", AssertError(reply, HttpStatusCode.UnprocessableEntity), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Load_NoBody_Is422()
    {
        var reply = await PostAsync("/document/load");
        AssertError(reply, HttpStatusCode.UnprocessableEntity);
    }
}

/// <summary>A server whose document path goes through a symlinked directory.</summary>
public sealed class SymlinkedDocumentTests : ServerTest
{
    private string LinkedDirectory => Path.Combine(TestDirectory, "linked");

    protected override string ServedPath => Path.Combine(LinkedDirectory, "pipeline.yaml");

    public override async ValueTask InitializeAsync()
    {
        Directory.CreateDirectory(Path.GetDirectoryName(ConfigPath)!);
        Directory.CreateSymbolicLink(LinkedDirectory, Path.GetDirectoryName(ConfigPath)!);
        await base.InitializeAsync();
    }

    [Fact]
    public async Task Load_FileBesideADocumentServedThroughASymlinkedDirectory_Is200()
    {
        Assert.Equal(ServedPath, (string?)(await GetOkAsync("/info"))["config_path"]);
        File.WriteAllText(Path.Combine(LinkedDirectory, "other.yaml"), ExampleYaml);
        var reply = await PostAsync("/document/load", new JsonObject { ["path"] = "other.yaml" });
        Assert.True(reply.Status == HttpStatusCode.OK, reply.Text);
    }
}
