using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Flowline.Testing;

namespace Flowline.ControlPlane.Tests;

/// <summary>
/// Base of the tests that run a real <see cref="ControlServer"/> on a free port: a copy of
/// examples/copy-64 in a directory of its own, a namespace no other test uses, a discovery directory
/// of its own; at the end the server is disposed and no region and no worker process may be left.
/// </summary>
/// <remarks>These tests run one at a time: each may start worker processes on a 2-core machine.</remarks>
[Collection(nameof(ServerTest))]
public abstract class ServerTest : IAsyncLifetime
{
    /// <summary>How long one request may take (a start launches three worker processes).</summary>
    protected static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(15);

    private readonly List<HttpClient> clients = [];

    /// <summary>A namespace no other test uses.</summary>
    protected string Namespace { get; } = "cp-" + Guid.NewGuid().ToString("N")[..10];

    /// <summary>The test's own directory, holding <see cref="ConfigPath"/>.</summary>
    protected string TestDirectory { get; } = Path.Combine(Path.GetTempPath(), "flowline-cp-tests-" + Guid.NewGuid().ToString("N")[..10]);

    /// <summary>The test's discovery directory.</summary>
    protected string DiscoveryDirectory => Path.Combine(TestDirectory, "servers");

    /// <summary>The served document (a copy of examples/copy-64/pipeline.yaml).</summary>
    protected string ConfigPath => Path.Combine(TestDirectory, "config", "pipeline.yaml");

    /// <summary>The path the server is started with (<see cref="ConfigPath"/> unless overridden).</summary>
    protected virtual string ServedPath => ConfigPath;

    /// <summary>The server (null before <see cref="InitializeAsync"/> or when <see cref="StartServer"/> is false).</summary>
    protected ControlServer Server { get; private set; } = null!;

    /// <summary>A client of <see cref="Server"/> without a token.</summary>
    protected HttpClient Http { get; private set; } = null!;

    /// <summary>The example document the server starts with.</summary>
    protected static string ExampleYaml => File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "examples", "copy-64", "pipeline.yaml"));

    /// <summary>The example without its source: input_vector is written by nothing (for synthetic inputs).</summary>
    protected static JsonObject SourcelessDocument(JsonObject document)
    {
        var copy = (JsonObject)document.DeepClone();
        copy.Remove("sources");
        return copy;
    }

    /// <summary>False for tests that start their own servers.</summary>
    protected virtual bool StartServer => true;

    /// <summary>Options of the server (override to add tokens); discovery, namespace and keepalive are set by the base.</summary>
    protected virtual ControlServerOptions Options => new();

    /// <summary>The options with this test's namespace, discovery directory and a 200 ms keepalive.</summary>
    protected ControlServerOptions Complete(ControlServerOptions options) => options with
    {
        Port = 0,
        DiscoveryDirectory = DiscoveryDirectory,
        Service = options.Service with { Manager = options.Service.Manager with { Namespace = Namespace } },
        Api = options.Api with { KeepaliveInterval = TimeSpan.FromMilliseconds(200) },
    };

    public virtual async ValueTask InitializeAsync()
    {
        System.IO.Directory.CreateDirectory(Path.GetDirectoryName(ConfigPath)!);
        File.WriteAllText(ConfigPath, ExampleYaml);
        if (StartServer)
        {
            Server = await ControlServer.StartAsync(ServedPath, Complete(Options), TestContext.Current.CancellationToken);
            Http = Client();
        }
    }

    /// <summary>A new client of <see cref="Server"/>, with <paramref name="token"/> as its bearer token.</summary>
    protected HttpClient Client(string? token = null, Uri? address = null)
    {
        var client = new HttpClient { BaseAddress = address ?? Server.Address, Timeout = TimeSpan.FromSeconds(30) };
        if (token is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        clients.Add(client);
        return client;
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

        try
        {
            AssertNothingLeft(Namespace);
        }
        finally
        {
            try
            {
                System.IO.Directory.Delete(TestDirectory, recursive: true);
            }
            catch (IOException)
            {
            }
        }

        GC.SuppressFinalize(this);
    }

    /// <summary>No region of <paramref name="namespace"/> under /dev/shm/flowline and no worker process of it alive (waits up to 10 s for workers to exit).</summary>
    protected static void AssertNothingLeft(string @namespace) => Leftovers.AssertNothingLeft(@namespace);

    /// <summary>Live (not zombie) worker processes whose command line names <paramref name="namespace"/>.</summary>
    protected static List<int> WorkerProcesses(string @namespace) => [.. Leftovers.WorkerProcesses([@namespace])];

    // ---- requests ----------------------------------------------------------------------------

    /// <summary>A response's status and JSON body (null when the body is not JSON).</summary>
    protected sealed record Reply(HttpStatusCode Status, JsonNode? Body, string Text, HttpResponseMessage Response)
    {
        public JsonObject Json => Body as JsonObject ?? throw new Xunit.Sdk.XunitException($"the body is not a JSON object: {Text}");

        public string? Detail => (string?)Json["detail"];
    }

    protected static async Task<Reply> SendAsync(HttpClient client, HttpMethod method, string path, string? body = null, string contentType = "application/json")
    {
        using var request = new HttpRequestMessage(method, path);
        if (body is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8, contentType);
        }

        using var timeout = new CancellationTokenSource(RequestTimeout);
        var response = await client.SendAsync(request, timeout.Token);
        var text = await response.Content.ReadAsStringAsync(timeout.Token);
        JsonNode? json = null;
        try
        {
            json = text.Length == 0 ? null : JsonNode.Parse(text);
        }
        catch (System.Text.Json.JsonException)
        {
        }

        return new Reply(response.StatusCode, json, text, response);
    }

    protected Task<Reply> GetAsync(string path) => SendAsync(Http, HttpMethod.Get, path);

    protected Task<Reply> PostAsync(string path, string? body = null) => SendAsync(Http, HttpMethod.Post, path, body);

    protected Task<Reply> PostAsync(string path, JsonNode body) => SendAsync(Http, HttpMethod.Post, path, body.ToJsonString());

    protected Task<Reply> PutAsync(string path, JsonNode body) => SendAsync(Http, HttpMethod.Put, path, body.ToJsonString());

    /// <summary>GETs <paramref name="path"/> and asserts a 200.</summary>
    protected async Task<JsonObject> GetOkAsync(string path)
    {
        var reply = await GetAsync(path);
        Assert.True(reply.Status == HttpStatusCode.OK, $"GET {path}: {(int)reply.Status} {reply.Text}");
        return reply.Json;
    }

    /// <summary>POSTs <paramref name="path"/> and asserts a 200.</summary>
    protected async Task<JsonObject> PostOkAsync(string path, JsonNode? body = null)
    {
        var reply = body is null ? await PostAsync(path) : await PostAsync(path, body);
        Assert.True(reply.Status == HttpStatusCode.OK, $"POST {path}: {(int)reply.Status} {reply.Text}");
        return reply.Json;
    }

    /// <summary>Asserts the status and that the body is JSON with a non-empty string <c>detail</c>; returns the detail.</summary>
    protected static string AssertError(Reply reply, HttpStatusCode expected)
    {
        Assert.True(reply.Status == expected, $"expected {(int)expected}, got {(int)reply.Status}: {reply.Text}");
        Assert.StartsWith("application/json", reply.Response.Content.Headers.ContentType?.ToString(), StringComparison.Ordinal);
        var detail = reply.Detail;
        Assert.False(string.IsNullOrWhiteSpace(detail), $"no detail in {reply.Text}");
        return detail!;
    }

    /// <summary>The state in <c>/health</c>.</summary>
    protected async Task<string?> StateAsync() => (string?)(await GetOkAsync("/health"))["state"];

    /// <summary>The frames a worker (kernel, source or sink) processed, from <c>/status</c>.</summary>
    protected async Task<long> FramesAsync(string worker)
    {
        var status = await GetOkAsync("/status");
        foreach (var group in new[] { "workers", "sources", "sinks" })
        {
            if (status[group]?[worker] is { } node)
            {
                return (long?)node["frames_processed"] ?? 0;
            }
        }

        throw new ArgumentException($"no worker named '{worker}' in {status.ToJsonString()}");
    }

    /// <summary>Polls <paramref name="condition"/> every 20 ms; fails with <paramref name="what"/> after <paramref name="seconds"/>.</summary>
    protected static async Task WaitUntilAsync(Func<Task<bool>> condition, string what, double seconds = 10)
    {
        var watch = Stopwatch.StartNew();
        while (!await condition())
        {
            if (watch.Elapsed.TotalSeconds > seconds)
            {
                Assert.Fail($"timed out after {seconds} s waiting until {what}");
            }

            await Task.Delay(20);
        }
    }

    /// <summary>The worker pids in <paramref name="status"/>, by name.</summary>
    protected static Dictionary<string, int> Pids(JsonObject status)
    {
        var pids = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var group in new[] { "workers", "sources", "sinks" })
        {
            foreach (var (name, node) in status[group]!.AsObject())
            {
                if ((int?)node?["pid"] is { } pid)
                {
                    pids[name] = pid;
                }
            }
        }

        return pids;
    }

    protected static string Invariant(long value) => value.ToString(CultureInfo.InvariantCulture);
}

/// <summary>The collection of server tests, run one at a time.</summary>
[CollectionDefinition(nameof(ServerTest), DisableParallelization = true)]
public sealed class ServerTestCollection;
