namespace Flowline.Client;

/// <summary>What a bearer token may contain: printable ASCII without whitespace, so that it fits an HTTP header as it is.</summary>
internal static class BearerToken
{
    /// <summary>What is wrong with the token (completing "the token ..."), or null if nothing; never quotes the token.</summary>
    public static string? Problem(string token)
    {
        if (token.Length == 0)
        {
            return "is empty";
        }

        foreach (var c in token)
        {
            if (char.IsWhiteSpace(c))
            {
                return "contains whitespace";
            }

            if (c < '!' || c > '~')
            {
                return "contains a character that is not printable ASCII";
            }
        }

        return null;
    }
}
