using System.Security.Cryptography;
using System.Text;

namespace Flowline.ControlPlane;

/// <summary>What a bearer token allows; each scope includes the ones before it.</summary>
public enum Scope
{
    /// <summary>Health, info, document, status, snapshot, graph, events, streams, metrics, validation.</summary>
    Read = 1,

    /// <summary>Start, pause, resume, stop, restart, synthetic inputs.</summary>
    Control = 2,

    /// <summary>Build, shutdown, replacing or loading the document.</summary>
    Admin = 3,
}

/// <summary>
/// The bearer tokens a server accepts, each with its scope. Tokens are kept only as SHA-256 digests and
/// compared in constant time; they are never logged or written anywhere.
/// </summary>
public sealed class AccessTokens
{
    private readonly (Scope Scope, byte[] Digest)[] tokens;

    private AccessTokens((Scope, byte[])[] tokens) => this.tokens = tokens;

    /// <summary>No tokens: authentication is off (only allowed on loopback).</summary>
    public static AccessTokens None { get; } = new([]);

    /// <summary>True when requests must carry a token.</summary>
    public bool Required => tokens.Length > 0;

    /// <summary>The scopes that have a token.</summary>
    public IEnumerable<Scope> Scopes => tokens.Select(t => t.Scope);

    /// <summary>One admin token (<c>--token</c>).</summary>
    public static AccessTokens Single(string token) => Scoped(new Dictionary<string, string> { ["admin"] = token });

    /// <summary>Tokens by scope name (<c>read</c>, <c>control</c>, <c>admin</c>); an unknown scope or an empty token is an error.</summary>
    public static AccessTokens Scoped(IReadOnlyDictionary<string, string> byScope)
    {
        ArgumentNullException.ThrowIfNull(byScope);
        var list = new List<(Scope, byte[])>();
        foreach (var (name, token) in byScope)
        {
            var scope = name switch
            {
                "read" => Scope.Read,
                "control" => Scope.Control,
                "admin" => Scope.Admin,
                _ => throw new ArgumentException($"unknown token scope '{name}'; scopes are read, control, admin", nameof(byScope)),
            };
            if (string.IsNullOrWhiteSpace(token))
            {
                throw new ArgumentException($"the {name} token is empty", nameof(byScope));
            }

            list.Add((scope, Digest(token)));
        }

        if (list.Select(t => Convert.ToHexString(t.Item2)).Distinct().Count() != list.Count)
        {
            throw new ArgumentException("two scopes have the same token; give each scope its own", nameof(byScope));
        }

        return new AccessTokens([.. list]);
    }

    /// <summary>The scope of <paramref name="token"/>, or null if no token matches. Every token is compared, in constant time.</summary>
    public Scope? ScopeOf(string token)
    {
        var digest = Digest(token);
        Scope? found = null;
        foreach (var (scope, expected) in tokens)
        {
            if (CryptographicOperations.FixedTimeEquals(digest, expected))
            {
                found = scope;
            }
        }

        return found;
    }

    private static byte[] Digest(string token) => SHA256.HashData(Encoding.UTF8.GetBytes(token));
}
