using System.Text.Json;
using System.Text.Json.Nodes;

namespace Flowline.ControlPlane;

/// <summary>JSON settings and request-body readers of the control plane.</summary>
internal static class ControlJson
{
    /// <summary>Compact output; metrics that are not finite numbers are written as strings rather than failing.</summary>
    public static readonly JsonSerializerOptions Options = new()
    {
        WriteIndented = false,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping, // as Python's json.dumps: quotes and non-ASCII text stay readable
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>The body as text, bounded as <see cref="ReadObjectAsync"/> reads it.</summary>
    public static async Task<string> ReadTextAsync(Microsoft.AspNetCore.Http.HttpRequest request, int maxBytes, CancellationToken cancellationToken)
    {
        if (request.ContentLength > maxBytes)
        {
            throw TooLarge(maxBytes);
        }

        string text;
        using (var body = new MemoryStream((int)(request.ContentLength ?? 0)))
        {
            var chunk = new byte[16 * 1024];
            try
            {
                int read;
                while ((read = await request.Body.ReadAsync(chunk, cancellationToken).ConfigureAwait(false)) > 0)
                {
                    if (body.Length + read > maxBytes)
                    {
                        throw TooLarge(maxBytes);
                    }

                    body.Write(chunk, 0, read);
                }
            }
            catch (Microsoft.AspNetCore.Http.BadHttpRequestException e)
            {
                // Kestrel's own limit (ControlServer sets it to the same), a malformed chunk, a client too slow.
                throw e.StatusCode == 413 ? TooLarge(maxBytes) : new ControlException(e.StatusCode, $"the request body could not be read: {e.Message}");
            }

            body.Position = 0;
            using var reader = new StreamReader(body);
            text = await reader.ReadToEndAsync(cancellationToken).ConfigureAwait(false);
        }

        return text;
    }

    /// <summary>
    /// The body as a JSON object: null when there is none; <see cref="BadBodyException"/> (422) when it is
    /// not an object; <see cref="ControlException"/> 413 when it is longer than <paramref name="maxBytes"/>
    /// (found from its Content-Length, else before more than <paramref name="maxBytes"/> bytes are held),
    /// or with Kestrel's status when the body cannot be read.
    /// </summary>
    public static async Task<JsonObject?> ReadObjectAsync(Microsoft.AspNetCore.Http.HttpRequest request, int maxBytes, CancellationToken cancellationToken)
    {
        var text = await ReadTextAsync(request, maxBytes, cancellationToken).ConfigureAwait(false);
        if (string.IsNullOrWhiteSpace(text))
        {
            return null;
        }

        // A JSON body says so: a browser form or a plain-text fetch from another site (no preflight) is refused.
        var type = request.ContentType ?? "";
        var mediaType = type.Split(';', 2)[0].Trim();
        if (!mediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase) && !mediaType.EndsWith("+json", StringComparison.OrdinalIgnoreCase))
        {
            throw new ControlException(415, $"the request body must be sent as application/json, not '{(type.Length == 0 ? "(no Content-Type)" : type)}'");
        }

        JsonNode? node;
        try
        {
            node = JsonNode.Parse(text);
        }
        catch (JsonException e)
        {
            throw new BadBodyException($"the request body is not valid JSON: {e.Message}");
        }

        return node switch
        {
            null => null,
            JsonObject o => o,
            _ => throw new BadBodyException($"the request body must be a JSON object, not {node.GetValueKind().ToString().ToLowerInvariant()}"),
        };
    }

    /// <summary>The 413 of a body longer than <paramref name="maxBytes"/>.</summary>
    public static ControlException TooLarge(long maxBytes) =>
        new(413, $"the request body is larger than the server's {maxBytes}-byte limit (flowline serve --max-document-bytes)");

    /// <summary>Field <paramref name="name"/> as a number, or <paramref name="fallback"/> when absent or null.</summary>
    public static double? Number(JsonObject? body, string name, double? fallback)
    {
        if (body?[name] is not { } node)
        {
            return fallback;
        }

        return node.GetValueKind() == JsonValueKind.Number
            ? node.GetValue<double>()
            : throw new BadBodyException($"'{name}' must be a number, not {node.ToJsonString()}");
    }

    /// <summary>Field <paramref name="name"/> as an integer, or <paramref name="fallback"/> when absent or null.</summary>
    public static long Integer(JsonObject? body, string name, long fallback)
    {
        if (Number(body, name, null) is not { } value)
        {
            return fallback;
        }

        return value == Math.Floor(value) && Math.Abs(value) < 9e15
            ? (long)value
            : throw new BadBodyException($"'{name}' must be an integer, not {value}");
    }

    /// <summary>Field <paramref name="name"/> as a boolean, or <paramref name="fallback"/> when absent or null.</summary>
    public static bool Boolean(JsonObject? body, string name, bool fallback)
    {
        if (body?[name] is not { } node)
        {
            return fallback;
        }

        return node.GetValueKind() switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new BadBodyException($"'{name}' must be true or false, not {node.ToJsonString()}"),
        };
    }

    /// <summary>Field <paramref name="name"/> as a string; <see cref="BadBodyException"/> when required and absent.</summary>
    public static string? Text(JsonObject? body, string name, bool required, string? fallback = null)
    {
        if (body?[name] is not { } node)
        {
            return required ? throw new BadBodyException($"the request body needs '{name}'") : fallback;
        }

        return node.GetValueKind() == JsonValueKind.String
            ? node.GetValue<string>()
            : throw new BadBodyException($"'{name}' must be a string, not {node.ToJsonString()}");
    }
}

/// <summary>A request body that is not JSON or has fields of the wrong type (422).</summary>
internal sealed class BadBodyException(string message) : Exception(message);

/// <summary>A request the service refuses with a given status and body.</summary>
internal sealed class ControlException(int statusCode, string detail, JsonObject? extra = null) : Exception(detail)
{
    /// <summary>The HTTP status.</summary>
    public int StatusCode { get; } = statusCode;

    /// <summary>Fields added beside <c>detail</c> in the body.</summary>
    public JsonObject? Extra { get; } = extra;
}
