using System.Net;

namespace Flowline.ControlPlane.Tests;

/// <summary>Two servers of one namespace: the second cannot build over the first's streams.</summary>
public sealed class NamespaceTests : ServerTest
{
    [Fact]
    public async Task Build_OnTheNamespaceOfAnotherServersPipeline_Is409_NamingThatServer()
    {
        var cancel = TestContext.Current.CancellationToken;
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(Http, HttpMethod.Post, "/commands/build")).Status);
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(Http, HttpMethod.Post, "/commands/start")).Status);

        var options = Complete(new ControlServerOptions()) with { DiscoveryDirectory = "" };
        await using var second = await ControlServer.StartAsync(ConfigPath, options, cancel);
        using var client = Client(address: second.Address);

        var refused = await SendAsync(client, HttpMethod.Post, "/commands/build");

        Assert.Equal(HttpStatusCode.Conflict, refused.Status);
        var url = Server.Address.ToString().TrimEnd('/');
        Assert.Contains($"namespace '{Namespace}' is in use by another pipeline manager of this process", refused.Detail, StringComparison.Ordinal);
        Assert.Contains($"served at {url}", refused.Detail, StringComparison.Ordinal);
        Assert.Equal(url, (string?)refused.Json["holder_url"]);
        Assert.Equal("initialized", (string?)(await SendAsync(client, HttpMethod.Get, "/status")).Json["state"]);
        Assert.Equal("running", (string?)(await SendAsync(Http, HttpMethod.Get, "/status")).Json["state"]);
    }
}
