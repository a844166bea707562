using System.Net;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Flowline.ControlPlane.Tests;

/// <summary>The OpenAPI document at /openapi/v1.json against the endpoints the server really maps.</summary>
public sealed class OpenApiTests : ServerTest
{
    /// <summary>Every mapped route as "METHOD /path", from the host's own endpoint data source (the document's own route left out).</summary>
    internal static SortedSet<string> MappedRoutes(ControlServer server)
    {
        var routes = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var endpoint in server.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>())
        {
            // "{**path}" (catch-all) and "{pid:int}" (constrained) are documented as "{path}" and "{pid}".
            var path = System.Text.RegularExpressions.Regex.Replace("/" + endpoint.RoutePattern.RawText!.TrimStart('/'), @"\{\*{0,2}(\w+)(:[^}]*)?\}", "{$1}");
            if (path.StartsWith("/openapi/", StringComparison.Ordinal))
            {
                continue;
            }

            var methods = endpoint.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods;
            Assert.True(methods is { Count: > 0 }, $"{path} is mapped for every method; the document could not say which");
            foreach (var method in methods!)
            {
                routes.Add($"{method} {path}");
            }
        }

        return routes;
    }

    /// <summary>Every operation of the document as "METHOD /path".</summary>
    internal static SortedSet<string> DocumentedRoutes(JsonObject document)
    {
        var routes = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var (path, item) in document["paths"]!.AsObject())
        {
            foreach (var (method, _) in item!.AsObject())
            {
                routes.Add($"{method.ToUpperInvariant()} {path}");
            }
        }

        return routes;
    }

    [Fact]
    public async Task TheDocument_DescribesEveryMappedRoute_AndNoOther()
    {
        var reply = await SendAsync(Http, HttpMethod.Get, "/openapi/v1.json");
        Assert.Equal(HttpStatusCode.OK, reply.Status);
        var document = reply.Json;
        Assert.StartsWith("3.", (string?)document["openapi"], StringComparison.Ordinal);
        Assert.Equal("Flowline control plane", (string?)document["info"]!["title"]);

        var mapped = MappedRoutes(Server);
        var documented = DocumentedRoutes(document);

        // The control plane's known surface is there (so an empty data source cannot pass), then the two sets agree.
        Assert.Contains("GET /status", mapped);
        Assert.Contains("POST /commands/start", mapped);
        Assert.Contains("GET /streams/{name}/latest", mapped);
        Assert.Equal(mapped, documented);
    }
}

/// <summary>/openapi/v1.json on a server with tokens: the read scope, like /info.</summary>
public sealed class OpenApiScopeTests : ServerTest
{
    private const string ReadToken = "read-token-openapi";

    protected override ControlServerOptions Options => new()
    {
        Tokens = AccessTokens.Scoped(new Dictionary<string, string> { ["read"] = ReadToken }),
    };

    [Fact]
    public async Task TheDocument_NeedsAReadToken()
    {
        AssertError(await SendAsync(Http, HttpMethod.Get, "/openapi/v1.json"), HttpStatusCode.Unauthorized);
        var reply = await SendAsync(Client(ReadToken), HttpMethod.Get, "/openapi/v1.json");
        Assert.Equal(HttpStatusCode.OK, reply.Status);
        Assert.NotNull(reply.Json["paths"]!["/status"]);
    }
}
