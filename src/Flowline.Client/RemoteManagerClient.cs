using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Flowline.Status;

namespace Flowline.Client;

/// <summary>
/// A typed client of Flowline's control plane (shmpipeline's HTTP API): the document, commands, status,
/// synthetic inputs and the event stream of one pipeline manager. Status, snapshots and command answers
/// are returned as the records of <see cref="Flowline.Status"/>; the document, the graph and other
/// free-form answers as the server's snake_case JSON objects. Safe to use from several threads at once.
/// </summary>
/// <remarks>
/// Every call has its own time limit, as shmpipeline's client: 60 s for build and start, 15 s for other
/// changes, the stop timeout plus 5 s for stop, 10 s for reads. A call that fails throws
/// <see cref="RemoteManagerException"/>; a call cancelled through its token throws
/// <see cref="OperationCanceledException"/>. The token is sent as <c>Authorization: Bearer</c> and
/// appears in no message.
/// </remarks>
public sealed partial class RemoteManagerClient : IDisposable
{
    /// <summary>The time limit of reads.</summary>
    internal static readonly TimeSpan ReadTimeout = TimeSpan.FromSeconds(10);

    /// <summary>The time limit of changes other than build, start and stop.</summary>
    internal static readonly TimeSpan ChangeTimeout = TimeSpan.FromSeconds(15);

    /// <summary>The time limit of build and start, which start worker processes.</summary>
    internal static readonly TimeSpan LifecycleTimeout = TimeSpan.FromSeconds(60);

    /// <summary>Added to a stop timeout the server waits for, for the answer to come back.</summary>
    internal static readonly TimeSpan StopMargin = TimeSpan.FromSeconds(5);

    /// <summary>Error bodies longer than this are cut in messages.</summary>
    private const int MaxDetailChars = 2000;

    private readonly HttpClient http;
    private readonly Uri baseAddress;

    /// <summary>Makes a client of the control plane at <paramref name="baseAddress"/>.</summary>
    /// <param name="baseAddress">The server's address, e.g. <c>http://127.0.0.1:8765</c>; a path is kept as a prefix of every endpoint.</param>
    /// <param name="token">The bearer token; null when the server needs none. Printable ASCII without whitespace.</param>
    /// <param name="handler">The HTTP handler to send through (owned by the caller); null uses a new one owned by the client.</param>
    /// <exception cref="ArgumentException">The address is not an absolute http or https URL, or the token is malformed.</exception>
    public RemoteManagerClient(Uri baseAddress, string? token = null, HttpMessageHandler? handler = null)
    {
        ArgumentNullException.ThrowIfNull(baseAddress);
        if (!baseAddress.IsAbsoluteUri || (baseAddress.Scheme != Uri.UriSchemeHttp && baseAddress.Scheme != Uri.UriSchemeHttps))
        {
            throw new ArgumentException($"the control plane's address must be an absolute http or https URL, not '{baseAddress}'", nameof(baseAddress));
        }

        if (token is not null && BearerToken.Problem(token) is { } problem)
        {
            throw new ArgumentException($"the token {problem}", nameof(token));
        }

        // Relative endpoint paths resolve under the base path only when it ends with a slash.
        var text = baseAddress.GetLeftPart(UriPartial.Path);
        this.baseAddress = new Uri(text.EndsWith('/') ? text : text + "/");
        http = handler is null
            ? new HttpClient(new SocketsHttpHandler { ConnectTimeout = ReadTimeout, AllowAutoRedirect = false }, disposeHandler: true)
            : new HttpClient(handler, disposeHandler: false);

        // Each call bounds itself; the event stream stays open as long as its reader wants.
        http.Timeout = Timeout.InfiniteTimeSpan;
        if (token is not null)
        {
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }
    }

    /// <summary>Makes a client of the control plane at <paramref name="url"/>.</summary>
    /// <param name="url">The server's address, e.g. <c>http://127.0.0.1:8765</c>; <c>host:port</c> alone means http.</param>
    /// <param name="token">The bearer token; null when the server needs none.</param>
    /// <exception cref="ArgumentException">The address is not an http or https URL, or the token is malformed.</exception>
    public RemoteManagerClient(string url, string? token = null)
        : this(ParseUrl(url), token)
    {
    }

    /// <summary>The server's address (ending with a slash).</summary>
    public Uri BaseAddress => baseAddress;

    /// <summary>Measures the time limits of calls; replaced by tests.</summary>
    internal TimeProvider Time { get; set; } = TimeProvider.System;

    // ---------------------------------------------------------------- reads

    /// <summary><c>GET /health</c>: <c>{ok, state, document_revision}</c>.</summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    public Task<HealthReply> HealthAsync(CancellationToken cancellationToken = default) =>
        SendAsync<HealthReply>(HttpMethod.Get, "health", null, ReadTimeout, cancellationToken);

    /// <summary><c>GET /info</c>: the config path, state, commands, kinds, synthetic patterns and document revision.</summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    public Task<ServerInfo> InfoAsync(CancellationToken cancellationToken = default) =>
        SendAsync<ServerInfo>(HttpMethod.Get, "info", null, ReadTimeout, cancellationToken);

    /// <summary><c>GET /document</c>: <c>{config_path, config_base_path, revision, document}</c>.</summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    public Task<DocumentReply> DocumentAsync(CancellationToken cancellationToken = default) =>
        SendAsync<DocumentReply>(HttpMethod.Get, "document", null, ReadTimeout, cancellationToken);

    /// <summary><c>GET /status</c>: the manager's status, with <c>document_revision</c>, <c>config_path</c> and <c>config_base_path</c>.</summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    public Task<PipelineStatus> StatusAsync(CancellationToken cancellationToken = default) =>
        SendAsync<PipelineStatus>(HttpMethod.Get, "status", null, ReadTimeout, cancellationToken);

    /// <summary><c>GET /snapshot</c>: the runtime snapshot, with <c>document_revision</c> and <c>config_path</c>.</summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    public Task<PipelineStatus> SnapshotAsync(CancellationToken cancellationToken = default) =>
        SendAsync<PipelineStatus>(HttpMethod.Get, "snapshot", null, ReadTimeout, cancellationToken);

    /// <summary><c>GET /graph</c>: the graph of the current document.</summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    public Task<JsonObject> GraphAsync(CancellationToken cancellationToken = default) =>
        SendJsonAsync(HttpMethod.Get, "graph", null, ReadTimeout, cancellationToken);

    /// <summary><c>GET /streams/{name}/latest</c>: the newest frame of a stream.</summary>
    /// <param name="stream">The stream's name (escaped into the path).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public Task<JsonObject> LatestFrameAsync(string stream, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(stream);
        return SendJsonAsync(HttpMethod.Get, $"streams/{Uri.EscapeDataString(stream)}/latest", null, ReadTimeout, cancellationToken);
    }

    /// <summary><c>GET /metrics</c>: the metrics in Prometheus' text format.</summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    public async Task<string> MetricsTextAsync(CancellationToken cancellationToken = default)
    {
        var (_, text) = await SendAsync(HttpMethod.Get, "metrics", null, "text/plain", ReadTimeout, cancellationToken).ConfigureAwait(false);
        return text;
    }

    // ---------------------------------------------------------------- the document

    /// <summary>
    /// <c>PUT /document</c>: replaces the document (refused with 409 while the pipeline is active, 400 if
    /// invalid). Returns <c>{config_path, config_base_path, revision, document, valid, errors, graph}</c>.
    /// </summary>
    /// <param name="document">The document mapping, sent as the body.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public Task<DocumentChangeReply> UpdateDocumentAsync(JsonObject document, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(document);
        return SendAsync<DocumentChangeReply>(HttpMethod.Put, "document", document, ChangeTimeout, cancellationToken);
    }

    /// <summary>
    /// <c>PUT /document</c> with YAML text (<c>application/yaml</c>): checked as a file is, and kept by the server as
    /// the document's text, comments and all (<see cref="DocumentYamlAsync"/>); returns what <see cref="UpdateDocumentAsync"/> returns.
    /// </summary>
    /// <param name="yaml">The document's YAML text.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public async Task<DocumentChangeReply> UpdateDocumentYamlAsync(string yaml, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(yaml);
        var (status, text) = await SendAsync(HttpMethod.Put, "document", null, "application/json", ChangeTimeout, cancellationToken, yaml).ConfigureAwait(false);
        try
        {
            return StatusJson.Deserialize<DocumentChangeReply>(text);
        }
        catch (JsonException e)
        {
            throw new RemoteManagerException(status, $"the response is not a {nameof(DocumentChangeReply)} ({e.Message})", $"PUT /document: {status}: {Cut(text)}");
        }
    }

    /// <summary>
    /// <c>GET /document/yaml</c>: the served document as YAML, its own text (with its comments) when it came as
    /// text (a file, a load, <see cref="UpdateDocumentYamlAsync"/>), otherwise written from the document.
    /// </summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    public async Task<string> DocumentYamlAsync(CancellationToken cancellationToken = default)
    {
        var (_, text) = await SendAsync(HttpMethod.Get, "document/yaml", null, "application/yaml", ReadTimeout, cancellationToken).ConfigureAwait(false);
        return text;
    }

    /// <summary><c>POST /document/validate</c>: <c>{valid, errors, graph?}</c> of a document, or of the current one.</summary>
    /// <param name="document">The document to check; null checks the server's current document (the request has no body).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public Task<ValidationReply> ValidateDocumentAsync(JsonObject? document = null, CancellationToken cancellationToken = default) =>
        SendAsync<ValidationReply>(HttpMethod.Post, "document/validate", document, ChangeTimeout, cancellationToken);

    /// <summary><c>POST /document/load</c>: replaces the document with a file on the server's machine; returns what <see cref="UpdateDocumentAsync"/> returns.</summary>
    /// <param name="path">The document's path on the server's machine.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public Task<DocumentChangeReply> LoadDocumentAsync(string path, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return SendAsync<DocumentChangeReply>(HttpMethod.Post, "document/load", new JsonObject { ["path"] = path }, ChangeTimeout, cancellationToken);
    }

    // ---------------------------------------------------------------- commands

    /// <summary><c>POST /commands/build</c>: builds the pipeline (streams and workers); returns the snapshot. Time limit 60 s.</summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    public Task<PipelineStatus> BuildAsync(CancellationToken cancellationToken = default) => CommandAsync("build", null, LifecycleTimeout, cancellationToken);

    /// <summary><c>POST /commands/start</c>: starts the pipeline, building it first if needed; returns the snapshot. Time limit 60 s.</summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    public Task<PipelineStatus> StartAsync(CancellationToken cancellationToken = default) => CommandAsync("start", null, LifecycleTimeout, cancellationToken);

    /// <summary><c>POST /commands/pause</c>: pauses the running pipeline; returns the snapshot.</summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    public Task<PipelineStatus> PauseAsync(CancellationToken cancellationToken = default) => CommandAsync("pause", null, ChangeTimeout, cancellationToken);

    /// <summary><c>POST /commands/resume</c>: resumes the paused pipeline; returns the snapshot.</summary>
    /// <param name="cancellationToken">Cancels the call.</param>
    public Task<PipelineStatus> ResumeAsync(CancellationToken cancellationToken = default) => CommandAsync("resume", null, ChangeTimeout, cancellationToken);

    /// <summary><c>POST /commands/stop</c> <c>{timeout, force}</c>: stops the pipeline; returns the snapshot. Time limit: the timeout plus 5 s.</summary>
    /// <param name="timeoutSeconds">How long the server waits for each worker to stop. Default 5.</param>
    /// <param name="force">Kill workers that do not stop in time.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public Task<PipelineStatus> StopAsync(double timeoutSeconds = 5.0, bool force = false, CancellationToken cancellationToken = default)
    {
        var timeout = Seconds(timeoutSeconds, nameof(timeoutSeconds));
        var body = new JsonObject { ["timeout"] = timeoutSeconds, ["force"] = force };
        return CommandAsync("stop", body, timeout + StopMargin, cancellationToken);
    }

    /// <summary><c>POST /commands/shutdown</c> <c>{unlink, unlink_external, force}</c>: stops the pipeline and releases its streams; returns the snapshot.</summary>
    /// <param name="unlink">Remove the streams the pipeline created. Default true.</param>
    /// <param name="unlinkExternal">Also remove streams it attached to. Default false.</param>
    /// <param name="force">Kill workers that do not stop in time.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public Task<PipelineStatus> ShutdownAsync(bool unlink = true, bool unlinkExternal = false, bool force = false, CancellationToken cancellationToken = default)
    {
        var body = new JsonObject { ["unlink"] = unlink, ["unlink_external"] = unlinkExternal, ["force"] = force };
        return CommandAsync("shutdown", body, ChangeTimeout, cancellationToken);
    }

    /// <summary>
    /// <c>POST /commands/restart</c> <c>{timeout}</c>: stops and starts the pipeline; returns the snapshot.
    /// Time limit: the stop's (the timeout, 5 s if null, plus 5 s) and the start's (60 s).
    /// </summary>
    /// <param name="timeoutSeconds">How long the server waits for each worker to stop; null (no body) leaves it to the server.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public Task<PipelineStatus> RestartAsync(double? timeoutSeconds = null, CancellationToken cancellationToken = default)
    {
        var stop = timeoutSeconds is { } t ? Seconds(t, nameof(timeoutSeconds)) : TimeSpan.FromSeconds(5);
        var body = timeoutSeconds is { } seconds ? new JsonObject { ["timeout"] = seconds } : null;
        return CommandAsync("restart", body, stop + StopMargin + LifecycleTimeout, cancellationToken);
    }

    // ---------------------------------------------------------------- synthetic inputs

    /// <summary><c>POST /synthetic/start</c>: starts writing a pattern to a stream; returns <c>{synthetic_source, snapshot}</c>.</summary>
    /// <param name="request">The stream and pattern.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public Task<SyntheticStartResult> StartSyntheticInputAsync(SyntheticInputRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentException.ThrowIfNullOrEmpty(request.StreamName, nameof(request));
        return SendAsync<SyntheticStartResult>(HttpMethod.Post, "synthetic/start", StatusJson.ToJsonObject(request), ChangeTimeout, cancellationToken);
    }

    /// <summary>
    /// <c>POST /synthetic/stop</c> <c>{stream_name, timeout}</c>: stops the synthetic input of a stream;
    /// returns <c>{stream_name, snapshot}</c>. Time limit: 15 s, or the timeout plus 5 s if longer.
    /// </summary>
    /// <param name="streamName">The stream.</param>
    /// <param name="timeoutSeconds">How long the server waits for the writer to stop. Default 2.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public Task<SyntheticStopResult> StopSyntheticInputAsync(string streamName, double timeoutSeconds = 2.0, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(streamName);
        var timeout = Seconds(timeoutSeconds, nameof(timeoutSeconds)) + StopMargin;
        var body = new JsonObject { ["stream_name"] = streamName, ["timeout"] = timeoutSeconds };
        return SendAsync<SyntheticStopResult>(HttpMethod.Post, "synthetic/stop", body, timeout > ChangeTimeout ? timeout : ChangeTimeout, cancellationToken);
    }

    /// <summary>Closes the client's connections (and its handler, if it made one).</summary>
    public void Dispose() => http.Dispose();

    // ---------------------------------------------------------------- sending

    private Task<PipelineStatus> CommandAsync(string command, JsonNode? body, TimeSpan timeout, CancellationToken cancellationToken) =>
        SendAsync<PipelineStatus>(HttpMethod.Post, "commands/" + command, body, timeout, cancellationToken);

    /// <summary>Sends a request whose answer is a status record.</summary>
    private async Task<T> SendAsync<T>(HttpMethod method, string path, JsonNode? body, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var (status, text) = await SendAsync(method, path, body, "application/json", timeout, cancellationToken).ConfigureAwait(false);
        try
        {
            return StatusJson.Deserialize<T>(text);
        }
        catch (JsonException e)
        {
            var what = IsObject(text) ? $"the response is not a {typeof(T).Name} ({e.Message})" : "the response is not a JSON object";
            throw new RemoteManagerException(status, what, $"{Call(method, path)}: {status} {what}: {Cut(text)}");
        }
    }

    private async Task<JsonObject> SendJsonAsync(HttpMethod method, string path, JsonNode? body, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var (status, text) = await SendAsync(method, path, body, "application/json", timeout, cancellationToken).ConfigureAwait(false);
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(text);
        }
        catch (JsonException)
        {
            node = null;
        }

        return node as JsonObject
            ?? throw new RemoteManagerException(status, "the response is not a JSON object", $"{Call(method, path)}: {status} the response is not a JSON object: {Cut(text)}");
    }

    private static bool IsObject(string text)
    {
        try
        {
            return JsonNode.Parse(text) is JsonObject;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>Sends one request and reads the whole answer; throws for an error status, a transport failure or the time limit.</summary>
    private async Task<(int Status, string Text)> SendAsync(
        HttpMethod method, string path, JsonNode? body, string accept, TimeSpan timeout, CancellationToken cancellationToken, string? yaml = null)
    {
        using var timeoutSource = new CancellationTokenSource(timeout, Time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeoutSource.Token);
        using var request = new HttpRequestMessage(method, new Uri(baseAddress, path));
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(accept));
        if (body is not null)
        {
            request.Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
        }
        else if (yaml is not null)
        {
            request.Content = new StringContent(yaml, Encoding.UTF8, "application/yaml");
        }

        try
        {
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseContentRead, linked.Token).ConfigureAwait(false);
            var text = await response.Content.ReadAsStringAsync(linked.Token).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                throw Failure(method, path, response, text);
            }

            return ((int)response.StatusCode, text);
        }
        catch (OperationCanceledException e) when (timeoutSource.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw TimedOut(method, path, timeout, e);
        }
        catch (Exception e) when (e is HttpRequestException or IOException)
        {
            throw Unreachable(method, path, e);
        }
    }

    // ---------------------------------------------------------------- errors

    /// <summary>The exception for an error response: the server's <c>detail</c>, else its body, else the reason phrase.</summary>
    private static RemoteManagerException Failure(HttpMethod method, string path, HttpResponseMessage response, string body)
    {
        var status = (int)response.StatusCode;
        string? detail = null;
        string? code = null;
        string? field = null;
        try
        {
            if (JsonNode.Parse(body) is JsonObject json)
            {
                detail = json["detail"] is JsonValue value && value.TryGetValue(out string? text) ? text : null;
                code = json["code"] is JsonValue c && c.TryGetValue(out string? codeText) ? codeText : null;
                field = json["field"] is JsonValue f && f.TryGetValue(out string? fieldText) ? fieldText : null;
            }
        }
        catch (JsonException)
        {
            // Not JSON: the body's text is the detail.
        }

        detail ??= body.Trim().Length > 0 ? Cut(body.Trim()) : response.ReasonPhrase ?? "";
        var message = detail.Length > 0 ? $"{Call(method, path)}: {status} {detail}" : $"{Call(method, path)}: {status}";
        return new RemoteManagerException(status, detail, message) { Code = code, Field = field };
    }

    private RemoteManagerException Unreachable(HttpMethod method, string path, Exception e)
    {
        var url = new Uri(baseAddress, path).GetComponents(UriComponents.AbsoluteUri & ~UriComponents.UserInfo, UriFormat.UriEscaped);
        return new RemoteManagerException(0, e.Message, $"{Call(method, path)}: cannot reach {url}: {e.Message}", e);
    }

    private RemoteManagerException TimedOut(HttpMethod method, string path, TimeSpan timeout, Exception e)
    {
        var url = new Uri(baseAddress, path).GetComponents(UriComponents.AbsoluteUri & ~UriComponents.UserInfo, UriFormat.UriEscaped);
        var detail = $"no answer from {url} within {timeout.TotalSeconds.ToString(CultureInfo.InvariantCulture)} s";
        return new RemoteManagerException(0, detail, $"{Call(method, path)}: {detail}", new TimeoutException(detail, e));
    }

    /// <summary>How messages name a call: <c>POST /commands/start</c>.</summary>
    private static string Call(HttpMethod method, string path) => $"{method.Method} /{path}";

    private static string Cut(string text) => text.Length <= MaxDetailChars ? text : string.Concat(text.AsSpan(0, MaxDetailChars), " ...");

    private static TimeSpan Seconds(double seconds, string name)
    {
        if (!double.IsFinite(seconds) || seconds < 0 || seconds > 86_400)
        {
            throw new ArgumentOutOfRangeException(name, seconds, "a timeout is a number of seconds from 0 to 86400");
        }

        return TimeSpan.FromSeconds(seconds);
    }

    private static Uri ParseUrl(string url)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(url);
        var text = url.Contains("://", StringComparison.Ordinal) ? url : "http://" + url;
        return Uri.TryCreate(text, UriKind.Absolute, out var uri)
            ? uri
            : throw new ArgumentException($"'{url}' is not a URL; give the control plane's address, e.g. http://127.0.0.1:8765", nameof(url));
    }
}
