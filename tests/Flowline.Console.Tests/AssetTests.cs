using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Flowline.Console.Tests;

/// <summary>The console's files and endpoints over plain HTTP: types, caching, compression, CSP, and the JSON they answer.</summary>
[Collection(nameof(ConsoleCollection))]
public sealed partial class AssetTests
{
    [Fact]
    public async Task TheIndex_IsRevalidated_AndNamesEveryAssetByItsHash_WhichIsCachedForAYear()
    {
        await using var served = await ConsoleServer.StartAsync();
        using var http = new HttpClient(new HttpClientHandler { AutomaticDecompression = DecompressionMethods.None }) { BaseAddress = served.Server.Address };
        using var index = await http.GetAsync("/");
        Assert.Equal(HttpStatusCode.OK, index.StatusCode);
        Assert.Equal("text/html; charset=utf-8", index.Content.Headers.ContentType!.ToString());
        Assert.Equal("no-cache", index.Headers.CacheControl!.ToString());
        var csp = index.Headers.GetValues("Content-Security-Policy").Single();
        Assert.Contains("script-src 'self'", csp, StringComparison.Ordinal);
        Assert.Contains("style-src 'self'", csp, StringComparison.Ordinal);
        Assert.DoesNotContain("unsafe-inline", csp, StringComparison.Ordinal);
        var html = await index.Content.ReadAsStringAsync();
        Assert.DoesNotMatch("<script>|<style|style=\"| on[a-z]+=\"", html);

        var assets = Reference().Matches(html).Select(m => m.Groups[1].Value).ToList();
        Assert.Contains(assets, a => a.StartsWith("/console/app/console.js?v=", StringComparison.Ordinal));
        Assert.Contains(assets, a => a.StartsWith("/console/lib/uplot/1.6.32/uPlot.iife.min.js?v=", StringComparison.Ordinal));
        foreach (var asset in assets)
        {
            using var response = await http.GetAsync(asset);
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"{asset}: {(int)response.StatusCode}");
            Assert.Equal("public, max-age=31536000, immutable", response.Headers.CacheControl!.ToString());
            Assert.Equal(asset.Contains(".js?", StringComparison.Ordinal) ? "text/javascript; charset=utf-8" : "text/css; charset=utf-8", response.Content.Headers.ContentType!.ToString());
        }

        // Without the hash (or with an old one), an asset is revalidated; its ETag answers 304.
        using var plain = await http.GetAsync("/console/app/console.js");
        Assert.Equal("no-cache", plain.Headers.CacheControl!.ToString());
        using var again = new HttpRequestMessage(HttpMethod.Get, "/console/app/console.js");
        again.Headers.IfNoneMatch.Add(plain.Headers.ETag!);
        using var notModified = await http.SendAsync(again);
        Assert.Equal(HttpStatusCode.NotModified, notModified.StatusCode);

        // Compressed for a client that accepts it; plain for one that does not.
        foreach (var coding in new[] { "br", "gzip" })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/console/lib/codemirror/5.65.18/codemirror.js");
            request.Headers.AcceptEncoding.Add(new StringWithQualityHeaderValue(coding));
            using var compressed = await http.SendAsync(request);
            Assert.Equal(coding, compressed.Content.Headers.ContentEncoding.Single());
            Assert.True((await compressed.Content.ReadAsByteArrayAsync()).Length < (await (await http.GetAsync("/console/lib/codemirror/5.65.18/codemirror.js")).Content.ReadAsByteArrayAsync()).Length / 2);
        }

        using var missing = await http.GetAsync("/console/app/nothing.js");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.StartsWith("application/json", missing.Content.Headers.ContentType!.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheConsoleEndpoints_AnswerKindsYamlCheckingAuthAndTheCommandsTheStateAllows()
    {
        await using var served = await ConsoleServer.StartAsync();
        using var http = new HttpClient { BaseAddress = served.Server.Address };
        var info = JsonNode.Parse(await http.GetStringAsync("/info"))!;
        Assert.Equal(["build", "start", "shutdown"], info["allowed_commands"]!.AsArray().Select(c => (string)c!));

        var kinds = JsonNode.Parse(await http.GetStringAsync("/kinds"))!;
        var integrator = kinds["kernels"]!.AsArray().Single(k => (string?)k!["kind"] == "cpu.leaky_integrator")!;
        Assert.Contains(integrator["parameters"]!.AsArray(), p => (string?)p!["name"] == "leak");
        Assert.NotEmpty(kinds["sources"]!.AsArray());

        var auth = JsonNode.Parse(await http.GetStringAsync("/auth"))!;
        Assert.Equal("admin", (string?)auth["scope"]);
        Assert.False((bool)auth["token_required"]!);

        var yaml = await http.GetStringAsync("/document/yaml");
        using var valid = await http.PostAsync("/document/yaml/validate", new StringContent(yaml, Encoding.UTF8, "application/yaml"));
        var check = JsonNode.Parse(await valid.Content.ReadAsStringAsync())!;
        Assert.True((bool)check["valid"]!);
        Assert.Equal("integrate", (string?)check["document"]!["kernels"]!.AsArray()[3]!["name"]);

        var broken = yaml.Replace("shape: [450]", "shape: [450", StringComparison.Ordinal);
        var line = broken.Split('\n').ToList().FindIndex(l => l.Contains("[450", StringComparison.Ordinal)) + 1;
        using var invalid = await http.PostAsync("/document/yaml/validate", new StringContent(broken, Encoding.UTF8, "application/yaml"));
        var errors = JsonNode.Parse(await invalid.Content.ReadAsStringAsync())!;
        Assert.False((bool)errors["valid"]!);
        Assert.True((int)errors["errors"]![0]!["line"]! >= line, errors.ToJsonString());
        Assert.Null(errors["document"]);

        using var wrongType = await http.PostAsync("/document/yaml/validate", new StringContent(yaml, Encoding.UTF8, "text/plain"));
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, wrongType.StatusCode);

        var servers = JsonNode.Parse(await http.GetStringAsync("/servers"))!;
        Assert.Equal(Environment.ProcessId, (int)servers["self_pid"]!);
        Assert.Contains(servers["servers"]!.AsArray(), s => (int)s!["pid"]! == Environment.ProcessId);

        // Launching needs a launch command (the CLI gives it); killing this very server is refused.
        using var launch = await http.PostAsync("/servers", JsonContent("{\"path\": \"pipeline.yaml\"}"));
        Assert.Equal(HttpStatusCode.NotImplemented, launch.StatusCode);
        using var self = await http.DeleteAsync($"/servers/{Environment.ProcessId}");
        Assert.Equal(HttpStatusCode.Conflict, self.StatusCode);
    }

    [Fact]
    public async Task Launching_TakesOnlyValidDocumentsUnderTheLoadRoots()
    {
        await using var served = await ConsoleServer.StartAsync(o => o with { Launch = new Flowline.ControlPlane.ServerLaunchOptions { Command = ConsoleServer.CliCommand } });
        using var http = new HttpClient { BaseAddress = served.Server.Address };
        using var outside = await http.PostAsync("/servers", JsonContent("{\"path\": \"/etc/passwd\"}"));
        Assert.Equal(HttpStatusCode.Forbidden, outside.StatusCode);
        using var missing = await http.PostAsync("/servers", JsonContent("{\"path\": \"nothing.yaml\"}"));
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        File.WriteAllText(Path.Combine(served.TestDirectory, "bad.yaml"), "namespace: [");
        using var invalid = await http.PostAsync("/servers", JsonContent("{\"path\": \"bad.yaml\"}"));
        Assert.Equal(HttpStatusCode.BadRequest, invalid.StatusCode);
        using var badNamespace = await http.PostAsync("/servers", JsonContent("{\"path\": \"pipeline.yaml\", \"namespace\": \"../x\"}"));
        Assert.Equal(HttpStatusCode.UnprocessableEntity, badNamespace.StatusCode);
    }

    [Fact]
    public async Task TheDocumentsOwnYaml_IsServedWithItsComments_AndAYamlPutKeepsThem_WhileAJsonPutIsWrittenOut()
    {
        await using var served = await ConsoleServer.StartAsync();
        using var http = new HttpClient { BaseAddress = served.Server.Address };

        // Served from its file: the file's text, comments and all.
        using (var first = await http.GetAsync("/document/yaml"))
        {
            Assert.Equal("text", first.Headers.GetValues("X-Document-Source").Single());
            Assert.Equal(ConsoleServer.ExampleYaml, await first.Content.ReadAsStringAsync());
        }

        // A YAML PUT: applied, and its text kept (as the next load of the editor shows it).
        var edited = ConsoleServer.ExampleYaml.Replace("parameters: {leak: 0.99, gain: 0.3}", "parameters: {leak: 0.98, gain: 0.3} # slower leak, tried on the bench", StringComparison.Ordinal);
        Assert.NotEqual(ConsoleServer.ExampleYaml, edited);
        using (var put = await http.PutAsync("/document", new StringContent(edited, Encoding.UTF8, "application/yaml")))
        {
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
            Assert.Equal(2, (long)JsonNode.Parse(await put.Content.ReadAsStringAsync())!["revision"]!);
        }

        using (var again = await http.GetAsync("/document/yaml"))
        {
            Assert.Equal("text", again.Headers.GetValues("X-Document-Source").Single());
            Assert.Equal("2", again.Headers.GetValues("X-Document-Revision").Single());
            Assert.Equal(edited, await again.Content.ReadAsStringAsync());
        }

        var document = JsonNode.Parse(await http.GetStringAsync("/document"))!;
        var integrate = document["document"]!["kernels"]!.AsArray().Single(k => (string?)k!["name"] == "integrate")!;
        Assert.Equal(0.98, (double)integrate["parameters"]!["leak"]!);

        // Invalid YAML is refused with its errors and changes nothing.
        using (var bad = await http.PutAsync("/document", new StringContent(edited.Replace("dtype: float32", "dtype: float33", StringComparison.Ordinal), Encoding.UTF8, "application/yaml")))
        {
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
            Assert.Contains("float33", await bad.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        Assert.Equal(edited, await http.GetStringAsync("/document/yaml"));

        // A JSON PUT has no text of its own: the YAML is written from the document (no comments).
        using (var json = await http.PutAsync("/document", JsonContent(document["document"]!.ToJsonString())))
        {
            Assert.Equal(HttpStatusCode.OK, json.StatusCode);
        }

        using var written = await http.GetAsync("/document/yaml");
        Assert.Equal("generated", written.Headers.GetValues("X-Document-Source").Single());
        var text = await written.Content.ReadAsStringAsync();
        Assert.DoesNotContain("# slower leak", text, StringComparison.Ordinal);
        Assert.Contains("integrate", text, StringComparison.Ordinal);
    }

    private static StringContent JsonContent(string json) => new(json, Encoding.UTF8, "application/json");

    [GeneratedRegex("(?:src|href)=\"(/console/[^\"]+)\"")]
    private static partial Regex Reference();
}
