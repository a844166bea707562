using System.Net;
using System.Text.Json.Nodes;

namespace Flowline.ControlPlane.Tests;

/// <summary>Bearer tokens with read, control and admin scopes.</summary>
public sealed class AuthTests : ServerTest
{
    private const string ReadToken = "read-token-1";
    private const string ControlToken = "control-token-2";
    private const string AdminToken = "admin-token-3";

    protected override ControlServerOptions Options => new()
    {
        Tokens = AccessTokens.Scoped(new Dictionary<string, string> { ["read"] = ReadToken, ["control"] = ControlToken, ["admin"] = AdminToken }),
    };

    [Fact]
    public async Task NoHeader_Is401WithBearerChallengeAndDetail()
    {
        var reply = await GetAsync("/status");
        Assert.Contains("bearer", AssertError(reply, HttpStatusCode.Unauthorized), StringComparison.OrdinalIgnoreCase);
        Assert.Equal("Bearer", Assert.Single(reply.Response.Headers.WwwAuthenticate).Scheme);
    }

    [Fact]
    public async Task Metrics_NoOrWrongToken_Is401_ReadTokenGetsTheSeries()
    {
        var reply = await GetAsync("/metrics");
        Assert.Contains("bearer", AssertError(reply, HttpStatusCode.Unauthorized), StringComparison.OrdinalIgnoreCase);
        Assert.Equal("Bearer", Assert.Single(reply.Response.Headers.WwwAuthenticate).Scheme);
        AssertError(await SendAsync(Client("not-a-token"), HttpMethod.Get, "/metrics"), HttpStatusCode.Unauthorized);
        var read = await SendAsync(Client(ReadToken), HttpMethod.Get, "/metrics");
        Assert.Equal(HttpStatusCode.OK, read.Status);
        Assert.Contains("flowline_pipeline_state{", read.Text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WrongToken_Is401()
    {
        var reply = await SendAsync(Client("not-a-token"), HttpMethod.Get, "/health");
        Assert.Contains("invalid", AssertError(reply, HttpStatusCode.Unauthorized), StringComparison.Ordinal);
        Assert.Equal("Bearer", Assert.Single(reply.Response.Headers.WwwAuthenticate).Scheme);
    }

    [Fact]
    public async Task NotBearerScheme_Is401()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/health");
        request.Headers.TryAddWithoutValidation("Authorization", "Basic " + AdminToken);
        using var response = await Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
    }

    [Fact]
    public async Task ReadToken_ReadsButCannotControl()
    {
        var read = Client(ReadToken);
        foreach (var path in new[] { "/health", "/info", "/document", "/status", "/snapshot", "/graph" })
        {
            Assert.Equal(HttpStatusCode.OK, (await SendAsync(read, HttpMethod.Get, path)).Status);
        }

        Assert.Equal(HttpStatusCode.OK, (await SendAsync(read, HttpMethod.Post, "/document/validate")).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await SendAsync(read, HttpMethod.Get, "/streams/nope/latest")).Status);
        Assert.NotEqual(HttpStatusCode.Forbidden, (await SendAsync(read, HttpMethod.Get, "/metrics")).Status);
        Assert.NotEqual(HttpStatusCode.Unauthorized, (await SendAsync(read, HttpMethod.Get, "/metrics")).Status);
        var detail = AssertError(await SendAsync(read, HttpMethod.Post, "/commands/start"), HttpStatusCode.Forbidden);
        Assert.Contains("'read'", detail, StringComparison.Ordinal);
        Assert.Contains("'control'", detail, StringComparison.Ordinal);
        AssertError(await SendAsync(read, HttpMethod.Post, "/synthetic/start", "{\"stream_name\":\"input_vector\"}"), HttpStatusCode.Forbidden);
        Assert.Equal("initialized", (string?)(await SendAsync(read, HttpMethod.Get, "/health")).Json["state"]);
    }

    [Fact]
    public async Task ControlToken_StartsButCannotBuildOrReplaceTheDocument()
    {
        var control = Client(ControlToken);
        var build = AssertError(await SendAsync(control, HttpMethod.Post, "/commands/build"), HttpStatusCode.Forbidden);
        Assert.Contains("'admin'", build, StringComparison.Ordinal);
        var document = (await SendAsync(control, HttpMethod.Get, "/document")).Json["document"]!;
        AssertError(await SendAsync(control, HttpMethod.Put, "/document", document.ToJsonString()), HttpStatusCode.Forbidden);
        AssertError(await SendAsync(control, HttpMethod.Post, "/document/load", "{\"path\":\"pipeline.yaml\"}"), HttpStatusCode.Forbidden);
        AssertError(await SendAsync(control, HttpMethod.Post, "/commands/shutdown"), HttpStatusCode.Forbidden);

        var start = await SendAsync(control, HttpMethod.Post, "/commands/start");
        Assert.True(start.Status == HttpStatusCode.OK, start.Text);
        Assert.Equal("running", (string?)start.Json["state"]);
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(control, HttpMethod.Post, "/commands/stop")).Status);
    }

    [Fact]
    public async Task AdminToken_DoesEverything()
    {
        var admin = Client(AdminToken);
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(admin, HttpMethod.Get, "/status")).Status);
        var document = (await SendAsync(admin, HttpMethod.Get, "/document")).Json["document"]!;
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(admin, HttpMethod.Put, "/document", document.ToJsonString())).Status);
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(admin, HttpMethod.Post, "/document/load", "{\"path\":\"pipeline.yaml\"}")).Status);
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(admin, HttpMethod.Post, "/commands/build")).Status);
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(admin, HttpMethod.Post, "/commands/start")).Status);
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(admin, HttpMethod.Post, "/commands/stop")).Status);
        var shutdown = await SendAsync(admin, HttpMethod.Post, "/commands/shutdown");
        Assert.Equal(HttpStatusCode.OK, shutdown.Status);
        Assert.Equal("stopped", (string?)shutdown.Json["state"]);
    }

    [Fact]
    public async Task Events_WithoutToken_Is401_WithReadToken_Streams()
    {
        var anonymous = await SendAsync(Http, HttpMethod.Get, "/events");
        AssertError(anonymous, HttpStatusCode.Unauthorized);

        using var events = await EventStreamReader.OpenAsync(Client(ReadToken));
        Assert.Equal(HttpStatusCode.OK, events.Response.StatusCode);
        var first = await events.NextAsync();
        Assert.Equal("snapshot", first.Event);
    }

    [Fact]
    public async Task Unauthorized_BodyIsNotRead_MalformedBodyStill401()
    {
        var reply = await SendAsync(Http, HttpMethod.Post, "/commands/stop", "{not json");
        AssertError(reply, HttpStatusCode.Unauthorized);
    }

    [Fact]
    public async Task Record_TokenRequired_IsTrue()
    {
        Assert.NotNull(Server.RecordFile);
        var record = JsonNode.Parse(await File.ReadAllTextAsync(Server.RecordFile!))!;
        Assert.True((bool)record["token_required"]!);
        Assert.DoesNotContain(AdminToken, record.ToJsonString(), StringComparison.Ordinal);
        Assert.DoesNotContain(ReadToken, record.ToJsonString(), StringComparison.Ordinal);
    }
}

/// <summary>Starting a server: the binding rules, and what a failed start leaves behind.</summary>
public sealed class BindingTests : ServerTest
{
    protected override bool StartServer => false;

    [Fact]
    public async Task StartAsync_WildcardHostWithoutToken_ThrowsAndLeavesNothing()
    {
        var e = await Assert.ThrowsAsync<ArgumentException>(() =>
            ControlServer.StartAsync(ConfigPath, Complete(new ControlServerOptions { Host = "0.0.0.0" })));
        Assert.Contains("token", e.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(DiscoveryDirectory) && Directory.EnumerateFiles(DiscoveryDirectory).Any(), "no discovery record is left");
        Assert.False(Directory.Exists(Flowline.SharedMemory.SharedMemoryNamespace.DirectoryOf(Namespace)));
    }

    [Fact]
    public async Task StartAsync_WildcardHostWithToken_Starts_AndConnectsThroughLoopback()
    {
        var server = await ControlServer.StartAsync(ConfigPath, Complete(new ControlServerOptions { Host = "0.0.0.0", Tokens = AccessTokens.Single("secret") }));
        try
        {
            Assert.Equal("127.0.0.1", server.Address.Host);
            var reply = await SendAsync(Client("secret", server.Address), HttpMethod.Get, "/health");
            Assert.Equal(HttpStatusCode.OK, reply.Status);
            var record = JsonNode.Parse(await File.ReadAllTextAsync(server.RecordFile!))!;
            Assert.Equal("0.0.0.0", (string?)record["host"]);
            Assert.Equal($"http://127.0.0.1:{server.Address.Port}", (string?)record["url"]);
            Assert.True((bool)record["token_required"]!);
        }
        finally
        {
            await server.DisposeAsync();
        }
    }

    [Fact]
    public async Task StartAsync_InvalidDocument_ThrowsAndLeavesNothing()
    {
        File.WriteAllText(ConfigPath, ExampleYaml.Replace("kind: cpu.copy", "kind: cpu.nope", StringComparison.Ordinal));
        await Assert.ThrowsAnyAsync<Exception>(() => ControlServer.StartAsync(ConfigPath, Complete(new ControlServerOptions())));
        Assert.False(Directory.Exists(DiscoveryDirectory) && Directory.EnumerateFiles(DiscoveryDirectory).Any(), "no discovery record is left");
    }

    [Fact]
    public async Task StartAsync_PortInUse_ThrowsAndLeavesNoRecord()
    {
        var first = await ControlServer.StartAsync(ConfigPath, Complete(new ControlServerOptions()));
        try
        {
            var ns2 = Namespace + "b";
            var options = Complete(new ControlServerOptions()) with { Port = first.Address.Port };
            options = options with { Service = options.Service with { Manager = options.Service.Manager with { Namespace = ns2 } } };
            await Assert.ThrowsAnyAsync<Exception>(() => ControlServer.StartAsync(ConfigPath, options));
            Assert.Equal([first.RecordFile], Directory.EnumerateFiles(DiscoveryDirectory));
            AssertNothingLeft(ns2);
        }
        finally
        {
            await first.DisposeAsync();
        }

        Assert.Empty(Directory.EnumerateFiles(DiscoveryDirectory));
    }

    [Fact]
    public async Task StartAsync_HostNotAnAddress_ThrowsArgumentException()
    {
        await Assert.ThrowsAsync<ArgumentException>(() =>
            ControlServer.StartAsync(ConfigPath, Complete(new ControlServerOptions { Host = "example.com", Tokens = AccessTokens.Single("t") })));
    }

    [Fact]
    public void IsLoopback_KnowsLoopbackAddresses()
    {
        Assert.True(ControlServer.IsLoopback("localhost"));
        Assert.True(ControlServer.IsLoopback("127.0.0.1"));
        Assert.True(ControlServer.IsLoopback("127.1.2.3"));
        Assert.True(ControlServer.IsLoopback("::1"));
        Assert.True(ControlServer.IsLoopback("[::1]"));
        Assert.False(ControlServer.IsLoopback("0.0.0.0"));
        Assert.False(ControlServer.IsLoopback("::"));
        Assert.False(ControlServer.IsLoopback("192.168.1.1"));
        Assert.False(ControlServer.IsLoopback("example.com"));
    }
}

/// <summary><see cref="AccessTokens"/> on its own.</summary>
public sealed class AccessTokensTests
{
    [Fact]
    public void Scoped_UnknownScope_Throws()
    {
        var e = Assert.Throws<ArgumentException>(() => AccessTokens.Scoped(new Dictionary<string, string> { ["superuser"] = "x" }));
        Assert.Contains("superuser", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    public void Scoped_EmptyToken_Throws(string token)
    {
        var e = Assert.Throws<ArgumentException>(() => AccessTokens.Scoped(new Dictionary<string, string> { ["read"] = token }));
        Assert.Contains("read", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Scoped_SameTokenInTwoScopes_Throws()
    {
        var e = Assert.Throws<ArgumentException>(() => AccessTokens.Scoped(new Dictionary<string, string> { ["read"] = "same", ["admin"] = "same" }));
        Assert.Contains("same token", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ScopeOf_EachToken_GivesItsScope_AndUnknownGivesNull()
    {
        var tokens = AccessTokens.Scoped(new Dictionary<string, string> { ["read"] = "r", ["control"] = "c", ["admin"] = "a" });
        Assert.True(tokens.Required);
        Assert.Equal(Scope.Read, tokens.ScopeOf("r"));
        Assert.Equal(Scope.Control, tokens.ScopeOf("c"));
        Assert.Equal(Scope.Admin, tokens.ScopeOf("a"));
        Assert.Null(tokens.ScopeOf("x"));
        Assert.Null(tokens.ScopeOf(""));
        Assert.Null(tokens.ScopeOf("R"));
        Assert.Equal([Scope.Read, Scope.Control, Scope.Admin], tokens.Scopes.Order());
    }

    [Fact]
    public void Single_IsOneAdminToken()
    {
        var tokens = AccessTokens.Single("t");
        Assert.Equal(Scope.Admin, tokens.ScopeOf("t"));
        Assert.Equal([Scope.Admin], tokens.Scopes);
    }

    [Fact]
    public void None_RequiresNothing()
    {
        Assert.False(AccessTokens.None.Required);
        Assert.Null(AccessTokens.None.ScopeOf("anything"));
        Assert.False(AccessTokens.Scoped(new Dictionary<string, string>()).Required);
    }

    [Fact]
    public void Scopes_AreOrderedReadControlAdmin()
    {
        Assert.True(Scope.Read < Scope.Control);
        Assert.True(Scope.Control < Scope.Admin);
    }
}
