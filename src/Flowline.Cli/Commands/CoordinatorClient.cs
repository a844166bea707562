using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Flowline.Cli.Commands;

/// <summary>A coordinator's problem+json answer: its status, stable code and detail.</summary>
internal sealed class CoordinatorProblemException(int status, string code, string detail)
    : Exception($"{status} {code}: {detail}")
{
    public int Status { get; } = status;

    public string Code { get; } = code;
}

/// <summary>
/// A small typed client of the coordinator (docs/coordinator.md): bearer token, JSON bodies, problem+json
/// errors as <see cref="CoordinatorProblemException"/>. Used by <c>flowline agent</c> and the
/// <c>releases</c>, <c>executions</c>, <c>interactions</c> and <c>workers</c> verbs.
/// </summary>
internal sealed class CoordinatorClient : IDisposable
{
    private readonly HttpClient http;

    public CoordinatorClient(Uri baseAddress, string token, TimeSpan? timeout = null)
    {
        http = new HttpClient { BaseAddress = baseAddress, Timeout = timeout ?? TimeSpan.FromSeconds(30) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
    }

    /// <summary>The token of <c>--token-file</c> (its first line, trimmed); errors name the file.</summary>
    public static string ReadToken(string path)
    {
        try
        {
            var token = File.ReadLines(path).FirstOrDefault()?.Trim();
            return string.IsNullOrEmpty(token) ? throw new ArgumentException($"{path}: the token file is empty") : token;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"{path}: cannot read the token file: {e.Message}", e);
        }
    }

    /// <summary>The base address from <c>--coordinator</c>.</summary>
    public static Uri Address(string text) =>
        Uri.TryCreate(text.EndsWith('/') ? text : text + "/", UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https"
            ? uri
            : throw new ArgumentException($"--coordinator must be an http:// or https:// URL, not '{text}'");

    public Task<JsonNode?> GetAsync(string path, CancellationToken ct) => SendAsync(HttpMethod.Get, path, null, ct);

    public Task<JsonNode?> PostAsync(string path, JsonNode? body, CancellationToken ct) => SendAsync(HttpMethod.Post, path, body ?? new JsonObject(), ct);

    /// <summary>Sends a request; null for 204; throws <see cref="CoordinatorProblemException"/> for an error status.</summary>
    public async Task<JsonNode?> SendAsync(HttpMethod method, string path, JsonNode? body, CancellationToken ct, IEnumerable<KeyValuePair<string, string>>? headers = null)
    {
        using var request = new HttpRequestMessage(method, path.TrimStart('/'));
        if (body is not null)
        {
            request.Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
        }

        foreach (var (name, value) in headers ?? [])
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        using var response = await http.SendAsync(request, ct).ConfigureAwait(false);
        var text = await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            throw Problem(response.StatusCode, text);
        }

        return response.StatusCode == HttpStatusCode.NoContent || text.Length == 0 ? null : JsonNode.Parse(text);
    }

    /// <summary>Downloads <paramref name="path"/> into <paramref name="file"/>, returning the SHA-256 of what was written (<c>sha256:</c> and hex).</summary>
    public async Task<string> DownloadAsync(string path, string file, CancellationToken ct)
    {
        using var response = await http.GetAsync(path.TrimStart('/'), HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            throw Problem(response.StatusCode, await response.Content.ReadAsStringAsync(ct).ConfigureAwait(false));
        }

        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(file))!);
        using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        var source = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        await using (source.ConfigureAwait(false))
        {
            var target = File.Create(file);
            await using (target.ConfigureAwait(false))
            {
                var buffer = new byte[1 << 16];
                int read;
                while ((read = await source.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
                {
                    hash.AppendData(buffer, 0, read);
                    await target.WriteAsync(buffer.AsMemory(0, read), ct).ConfigureAwait(false);
                }
            }
        }

        return "sha256:" + Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    private static CoordinatorProblemException Problem(HttpStatusCode status, string text)
    {
        try
        {
            if (JsonNode.Parse(text) is JsonObject o)
            {
                return new CoordinatorProblemException((int)status, (string?)o["code"] ?? "UNKNOWN", (string?)o["detail"] ?? text);
            }
        }
        catch (JsonException)
        {
        }

        return new CoordinatorProblemException((int)status, "HTTP_" + (int)status, text.Length > 200 ? text[..200] : text);
    }

    public void Dispose() => http.Dispose();
}
