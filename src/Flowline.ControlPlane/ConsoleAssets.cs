using System.Collections.Frozen;
using System.IO.Compression;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Http;

namespace Flowline.ControlPlane;

/// <summary>
/// The browser console's files (<c>wwwroot/</c>, embedded in this assembly so that every host of the control
/// plane, the installed <c>flowline</c> tool too, serves them): held in memory with their gzip and Brotli
/// encodings made once, each with a strong ETag. <c>index.html</c> names every asset with <c>?v=</c> and the
/// first characters of its hash, and an asset asked for with its current hash may be cached for a year
/// (immutable); <c>index.html</c> and an asset without the hash are revalidated on every use (no-cache).
/// </summary>
internal sealed partial class ConsoleAssets
{
    /// <summary>No inline script or style, nothing from another origin; images of canvases and data URLs only.</summary>
    public const string ContentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; " +
        "font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; object-src 'none'";

    private const string Prefix = "wwwroot/";

    private static readonly FrozenDictionary<string, string> Types = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
    {
        [".html"] = "text/html; charset=utf-8",
        [".js"] = "text/javascript; charset=utf-8",
        [".css"] = "text/css; charset=utf-8",
        [".json"] = "application/json; charset=utf-8",
        [".svg"] = "image/svg+xml",
        [".png"] = "image/png",
        [".ico"] = "image/x-icon",
        [".txt"] = "text/plain; charset=utf-8",
        [".md"] = "text/plain; charset=utf-8",
    }.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase);

    private static readonly Lazy<ConsoleAssets> Shared = new(() => new ConsoleAssets(typeof(ConsoleAssets).Assembly));

    private readonly FrozenDictionary<string, Asset> assets;

    private ConsoleAssets(Assembly assembly)
    {
        var files = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var name in assembly.GetManifestResourceNames().Where(n => n.StartsWith(Prefix, StringComparison.Ordinal)))
        {
            using var stream = assembly.GetManifestResourceStream(name)!;
            using var copy = new MemoryStream();
            stream.CopyTo(copy);
            files[name[Prefix.Length..].Replace('\\', '/')] = copy.ToArray();
        }

        var built = files.Where(f => f.Key != "index.html").ToDictionary(f => f.Key, f => Asset.Of(f.Key, f.Value), StringComparer.Ordinal);
        if (files.TryGetValue("index.html", out var index))
        {
            // Every local reference gets its content's hash, so that a new build is never served from a stale cache.
            var html = Reference().Replace(Encoding.UTF8.GetString(index), m =>
                built.TryGetValue(m.Groups["path"].Value, out var asset) ? $"{m.Groups["attr"].Value}=\"/console/{m.Groups["path"].Value}?v={asset.Version}\"" : m.Value);
            built["index.html"] = Asset.Of("index.html", Encoding.UTF8.GetBytes(html));
        }

        assets = built.ToFrozenDictionary(StringComparer.Ordinal);
    }

    /// <summary>The files of this assembly.</summary>
    public static ConsoleAssets Instance => Shared.Value;

    /// <summary>How many files there are.</summary>
    public int Count => assets.Count;

    /// <summary>Answers <c>GET</c> of <paramref name="path"/> (relative to wwwroot): 200, 304, or a JSON 404.</summary>
    public IResult Serve(HttpContext context, string path)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (!assets.TryGetValue(path, out var asset))
        {
            return ControlApi.Error(404, $"the console has no file '{path}'");
        }

        var response = context.Response;
        var headers = response.Headers;
        headers.ContentSecurityPolicy = ContentSecurityPolicy;
        headers.XContentTypeOptions = "nosniff";
        headers["Referrer-Policy"] = "no-referrer";
        headers["Cross-Origin-Opener-Policy"] = "same-origin";
        headers.ETag = asset.ETag;
        headers.Vary = "Accept-Encoding";
        headers.CacheControl = path != "index.html" && context.Request.Query["v"] == asset.Version
            ? "public, max-age=31536000, immutable"
            : "no-cache";
        if (context.Request.Headers.IfNoneMatch.Any(v => v is not null && v.Split(',').Any(t => t.Trim() == asset.ETag || t.Trim() == "*")))
        {
            return Results.StatusCode(304);
        }

        var accept = context.Request.Headers.AcceptEncoding.ToString();
        var (bytes, encoding) = asset.Brotli is not null && Accepts(accept, "br") ? (asset.Brotli, "br")
            : asset.Gzip is not null && Accepts(accept, "gzip") ? (asset.Gzip, "gzip")
            : (asset.Bytes, null);
        if (encoding is not null)
        {
            headers.ContentEncoding = encoding;
        }

        return Results.Bytes(bytes, asset.ContentType);
    }

    private static bool Accepts(string header, string coding) =>
        header.Split(',').Select(p => p.Split(';')).Any(p => p[0].Trim().Equals(coding, StringComparison.OrdinalIgnoreCase) && !(p.Length > 1 && p[1].Trim() is "q=0" or "q=0.0"));

    [GeneratedRegex("(?<attr>src|href)=\"(?<path>(?:lib|app)/[^\"?#]+)\"", RegexOptions.CultureInvariant)]
    private static partial Regex Reference();

    private sealed record Asset(byte[] Bytes, byte[]? Gzip, byte[]? Brotli, string ContentType, string ETag, string Version)
    {
        public static Asset Of(string path, byte[] bytes)
        {
            var type = Types.TryGetValue(Path.GetExtension(path), out var t) ? t : "application/octet-stream";
            var hash = Convert.ToHexStringLower(SHA256.HashData(bytes));
            var compressible = bytes.Length > 512 && (type.StartsWith("text/", StringComparison.Ordinal) || type.Contains("json", StringComparison.Ordinal) || type.Contains("svg", StringComparison.Ordinal));
            return new Asset(bytes, compressible ? Compress(bytes, s => new GZipStream(s, CompressionLevel.SmallestSize)) : null,
                compressible ? Compress(bytes, s => new BrotliStream(s, CompressionLevel.SmallestSize)) : null,
                type, $"\"{hash[..32]}\"", hash[..12]);
        }

        private static byte[] Compress(byte[] bytes, Func<Stream, Stream> encoder)
        {
            using var output = new MemoryStream();
            using (var stream = encoder(output))
            {
                stream.Write(bytes);
            }

            return output.ToArray();
        }
    }
}
