using System.Collections.Immutable;
using System.Security.Cryptography;
using System.Text;

namespace Flowline.Coordinator;

/// <summary>The roles of the coordinator's tokens (the seed's two).</summary>
public enum Role
{
    /// <summary>The control-plane endpoints (<c>/tpf/control-plane/...</c>): executions, interactions.</summary>
    ControlPlane,

    /// <summary>The admin endpoints (<c>/tpf/admin/...</c>): releases, workers.</summary>
    Admin,

    /// <summary>A host agent (<c>flowline agent</c>): registers and heartbeats itself, claims executions, reports, downloads artifacts; nothing else.</summary>
    Agent,
}

/// <summary>Who a request's token says it is: a role bound to tenants, and a name safe to record.</summary>
/// <param name="Role">The role.</param>
/// <param name="Tenants">The tenants it may act on; empty means every tenant (<c>*</c>).</param>
/// <param name="Name">Recorded as the actor of changes: the role and the first 8 hex digits of the token's SHA-256, never the token.</param>
public sealed record TokenPrincipal(Role Role, ImmutableHashSet<string> Tenants, string Name)
{
    /// <summary>True when the token may act on <paramref name="tenantId"/>.</summary>
    public bool Allows(string tenantId) => Tenants.IsEmpty || Tenants.Contains(tenantId);
}

/// <summary>
/// The bearer tokens the coordinator accepts. Each is kept as a SHA-256 digest and compared in constant
/// time against every entry; tokens are never logged or echoed. The text form (a file or the environment):
/// one token a line, <c>ROLE TENANTS TOKEN</c>, where ROLE is <c>admin</c> or <c>control-plane</c> and
/// TENANTS is <c>*</c> or a comma-separated list; blank lines and lines starting with <c>#</c> are ignored.
/// </summary>
public sealed class CoordinatorTokens
{
    /// <summary>The environment variable holding tokens in the text form.</summary>
    public const string Variable = "FLOWLINE_COORDINATOR_TOKENS";

    /// <summary>The smallest token accepted, in characters.</summary>
    public const int MinLength = 16;

    private readonly (TokenPrincipal Principal, byte[] Digest)[] entries;

    private CoordinatorTokens((TokenPrincipal, byte[])[] entries) => this.entries = entries;

    /// <summary>How many tokens there are.</summary>
    public int Count => entries.Length;

    /// <summary>The principals (for the start-up message: roles and tenants, no token).</summary>
    public IEnumerable<TokenPrincipal> Principals => entries.Select(e => e.Principal);

    /// <summary>Tokens from code: (role, tenants or empty for all, token).</summary>
    public static CoordinatorTokens Of(params (Role Role, string[] Tenants, string Token)[] tokens)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        return Build(tokens.Select((t, i) => (t.Role, t.Tenants.Contains("*") ? [] : t.Tenants, t.Token, $"token {i + 1}")));
    }

    /// <summary>Parses the text form; errors name <paramref name="source"/> and the line.</summary>
    public static CoordinatorTokens Parse(string text, string source)
    {
        ArgumentNullException.ThrowIfNull(text);
        var list = new List<(Role, string[], string, string)>();
        var lines = text.Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].Trim();
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }

            var parts = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            var at = $"{source}, line {i + 1}";
            if (parts.Length != 3)
            {
                throw new FormatException($"{at}: expected 'ROLE TENANTS TOKEN' (three fields), found {parts.Length}");
            }

            var role = parts[0] switch
            {
                "admin" => Role.Admin,
                "control-plane" => Role.ControlPlane,
                "agent" => Role.Agent,
                _ => throw new FormatException($"{at}: unknown role '{parts[0]}'; roles are admin, control-plane, agent"),
            };
            var tenants = parts[1] == "*" ? [] : parts[1].Split(',', StringSplitOptions.RemoveEmptyEntries);
            foreach (var tenant in tenants)
            {
                if (!ReleaseDescriptor.Identifier().IsMatch(tenant))
                {
                    throw new FormatException($"{at}: '{tenant}' is not a tenant id (letters, digits, '.', '_', '-')");
                }
            }

            list.Add((role, tenants, parts[2], at));
        }

        return list.Count == 0 ? throw new FormatException($"{source}: no tokens") : Build(list);
    }

    /// <summary>
    /// The default tokens in <paramref name="directory"/>: <c>admin.token</c> and <c>control-plane.token</c>
    /// (each the bare token, for every tenant), read when they exist, else created with mode 0600. Returns
    /// the tokens and the files created (empty when they existed).
    /// </summary>
    public static (CoordinatorTokens Tokens, IReadOnlyList<string> Created) LoadOrCreateDefaults(string directory)
    {
        Directory.CreateDirectory(directory);
        var created = new List<string>();
        var list = new List<(Role, string[], string, string)>();
        foreach (var (role, file) in new[] { (Role.Admin, "admin.token"), (Role.ControlPlane, "control-plane.token"), (Role.Agent, "agent.token") })
        {
            var path = Path.Combine(directory, file);
            if (!File.Exists(path))
            {
                var token = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
                using (var stream = new FileStream(path, new FileStreamOptions
                {
                    Mode = FileMode.CreateNew,
                    Access = FileAccess.Write,
                    UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
                }))
                {
                    stream.Write(Encoding.ASCII.GetBytes(token + "\n"));
                }

                created.Add(path);
            }

            list.Add((role, [], File.ReadAllText(path).Trim(), path));
        }

        return (Build(list), created);
    }

    /// <summary>The principal of <paramref name="token"/>, or null. Every entry is compared, in constant time.</summary>
    public TokenPrincipal? Authenticate(string token)
    {
        ArgumentNullException.ThrowIfNull(token);
        var digest = Digest(token);
        TokenPrincipal? found = null;
        foreach (var (principal, expected) in entries)
        {
            if (CryptographicOperations.FixedTimeEquals(digest, expected))
            {
                found = principal;
            }
        }

        return found;
    }

    private static CoordinatorTokens Build(IEnumerable<(Role Role, string[] Tenants, string Token, string At)> tokens)
    {
        var list = new List<(TokenPrincipal, byte[])>();
        foreach (var (role, tenants, token, at) in tokens)
        {
            if (token.Length < MinLength || token.Any(char.IsWhiteSpace))
            {
                throw new FormatException($"{at}: a token is at least {MinLength} characters without spaces");
            }

            var digest = Digest(token);
            if (list.Any(e => CryptographicOperations.FixedTimeEquals(e.Item2, digest)))
            {
                throw new FormatException($"{at}: this token is given twice; each role and tenant set needs its own token");
            }

            var name = RoleName(role) + "/" + Convert.ToHexStringLower(digest)[..8];
            list.Add((new TokenPrincipal(role, [.. tenants], name), digest));
        }

        return new CoordinatorTokens([.. list]);
    }

    /// <summary>The role's name in token files and messages.</summary>
    public static string RoleName(Role role) => role switch { Role.Admin => "admin", Role.Agent => "agent", _ => "control-plane" };

    private static byte[] Digest(string token) => SHA256.HashData(Encoding.UTF8.GetBytes(token));
}
