namespace Flowline.Client;

/// <summary>
/// Reads a file of control-plane tokens. One entry per line; blank lines and lines starting with
/// <c>#</c> are ignored, and surrounding whitespace is trimmed:
/// <code>
/// # a token alone is an admin token
/// 3f9c0e...
/// # or scoped tokens: read (status, events), control (start, stop, synthetic inputs), admin (everything)
/// read: 8d2a41...
/// control: 51bb7c...
/// </code>
/// A line with a colon is <c>scope: token</c>, so a token alone cannot contain a colon. Tokens are
/// printable ASCII without whitespace. Error messages name the file and the line, never the token.
/// </summary>
public static class TokenFile
{
    /// <summary>The scope of a token given alone on its line.</summary>
    private const string BareScope = "admin";

    /// <summary>The scopes, weakest first; each includes the ones before it.</summary>
    private static readonly string[] ScopesWeakestFirst = ["read", "control", "admin"];

    /// <summary>The strongest token in the file (admin, else control, else read), or null if it has none.</summary>
    /// <param name="path">The token file.</param>
    /// <exception cref="InvalidDataException">A line is malformed, or two lines give a token of the same scope.</exception>
    /// <exception cref="IOException">The file cannot be read (<see cref="FileNotFoundException"/> if it does not exist).</exception>
    public static string? Read(string path)
    {
        var tokens = ReadScoped(path);
        for (var i = ScopesWeakestFirst.Length - 1; i >= 0; i--)
        {
            if (tokens.TryGetValue(ScopesWeakestFirst[i], out var token))
            {
                return token;
            }
        }

        return null;
    }

    /// <summary>
    /// Every token in the file by scope (<c>read</c>, <c>control</c>, <c>admin</c>); a token alone on its
    /// line is the <c>admin</c> token. Empty if the file has no tokens.
    /// </summary>
    /// <param name="path">The token file.</param>
    /// <exception cref="InvalidDataException">A line is malformed, or two lines give a token of the same scope.</exception>
    /// <exception cref="IOException">The file cannot be read (<see cref="FileNotFoundException"/> if it does not exist).</exception>
    public static IReadOnlyDictionary<string, string> ReadScoped(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var tokens = new Dictionary<string, string>(StringComparer.Ordinal);
        var lineOfScope = new Dictionary<string, int>(StringComparer.Ordinal);
        var lines = File.ReadAllLines(path);
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].Trim();
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }

            var lineNumber = i + 1;
            string scope;
            string token;
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon < 0)
            {
                scope = BareScope;
                token = line;
            }
            else
            {
                scope = line[..colon].Trim();
                token = line[(colon + 1)..].Trim();
                if (Array.IndexOf(ScopesWeakestFirst, scope) < 0)
                {
                    // The text before the colon is not echoed: it may be part of a secret.
                    throw Malformed(path, lineNumber, "unknown scope name; a line is a token alone (an admin token) or 'read: TOKEN', 'control: TOKEN' or 'admin: TOKEN'");
                }
            }

            if (BearerToken.Problem(token) is { } problem)
            {
                throw Malformed(path, lineNumber, $"the {scope} token {problem}");
            }

            if (lineOfScope.TryGetValue(scope, out var first))
            {
                throw Malformed(path, lineNumber, $"a second {scope} token (the first is on line {first}); give one token per scope");
            }

            tokens.Add(scope, token);
            lineOfScope.Add(scope, lineNumber);
        }

        return tokens;
    }

    private static InvalidDataException Malformed(string path, int line, string problem) =>
        new($"{path}, line {line}: {problem}");
}
