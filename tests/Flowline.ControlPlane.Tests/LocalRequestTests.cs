using System.Net;

namespace Flowline.ControlPlane.Tests;

/// <summary>
/// A server without tokens answers only local programs: no web page (cross-site request, DNS-rebound
/// Host) can drive it, and bodies must be JSON.
/// </summary>
[Collection(nameof(ServerTestCollection))]
public sealed class LocalRequestTests : ServerTest
{
    [Fact]
    public async Task CrossSiteOrigin_Is403_AndNothingChanges()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/commands/build");
        request.Headers.Add("Origin", "https://evil.example");
        var reply = await Http.SendAsync(request, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.Forbidden, reply.StatusCode);
        Assert.Contains("evil.example", await reply.Content.ReadAsStringAsync(TestContext.Current.CancellationToken), StringComparison.Ordinal);
        Assert.Equal("initialized", await StateAsync());
    }

    [Fact]
    public async Task CrossSiteFetchMetadata_Is403()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/document");
        request.Headers.Add("Sec-Fetch-Site", "cross-site");
        var reply = await Http.SendAsync(request, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.Forbidden, reply.StatusCode);
    }

    [Fact]
    public async Task ReboundHostName_Is403()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/document");
        request.Headers.Host = $"attacker.example:{Server.Address.Port}";
        var reply = await Http.SendAsync(request, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.Forbidden, reply.StatusCode);
        Assert.Contains("is not this machine", await reply.Content.ReadAsStringAsync(TestContext.Current.CancellationToken), StringComparison.Ordinal);
    }

    [Fact]
    public async Task LocalOriginAndLocalhostHost_AreServed()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/health");
        request.Headers.Add("Origin", $"http://localhost:{Server.Address.Port}");
        request.Headers.Host = $"localhost:{Server.Address.Port}";
        var reply = await Http.SendAsync(request, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, reply.StatusCode);
    }

    [Fact]
    public async Task PlainTextBody_Is415()
    {
        var reply = await SendAsync(Http, HttpMethod.Post, "/commands/stop", "{\"timeout\": 1}", "text/plain");
        Assert.Contains("application/json", AssertError(reply, HttpStatusCode.UnsupportedMediaType), StringComparison.Ordinal);
    }
}
