namespace Flowline.Client.Tests;

/// <summary>Token files: a token alone (admin) or scoped lines, comments and blank lines; each malformed line named by file and line, without the token.</summary>
public sealed class TokenFileTests : IDisposable
{
    private readonly string directory = Path.Combine(Path.GetTempPath(), $"flowline-client-tests-{Guid.NewGuid():N}");

    public TokenFileTests() => Directory.CreateDirectory(directory);

    public void Dispose() => Directory.Delete(directory, recursive: true);

    private string Write(string text)
    {
        var path = Path.Combine(directory, "tokens");
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void ReadScoped_TokenAlone_IsTheAdminToken()
    {
        var path = Write("s3cr3t-admin\n");

        Assert.Equal(new Dictionary<string, string> { ["admin"] = "s3cr3t-admin" }, TokenFile.ReadScoped(path));
        Assert.Equal("s3cr3t-admin", TokenFile.Read(path));
    }

    [Fact]
    public void ReadScoped_EveryScope_ReturnsEachToken()
    {
        var path = Write("read: r-token\ncontrol: c-token\nadmin: a-token\n");

        var tokens = TokenFile.ReadScoped(path);

        Assert.Equal(new Dictionary<string, string> { ["read"] = "r-token", ["control"] = "c-token", ["admin"] = "a-token" }, tokens);
    }

    [Theory]
    [InlineData("read: r-token\ncontrol: c-token\nadmin: a-token\n", "a-token")]
    [InlineData("admin: a-token\nread: r-token\n", "a-token")]
    [InlineData("read: r-token\ncontrol: c-token\n", "c-token")]
    [InlineData("read: r-token\n", "r-token")]
    [InlineData("read: r-token\nbare-token\n", "bare-token")]
    public void Read_SeveralScopes_ReturnsTheStrongest(string text, string expected)
    {
        Assert.Equal(expected, TokenFile.Read(Write(text)));
    }

    [Fact]
    public void ReadScoped_CommentsBlankLinesAndWhitespace_AreIgnored()
    {
        var path = Write("# tokens for the lab\r\n\r\n   \t\n  # indented comment\n   read:\tr-token  \r\n\tcontrol :c-token\n");

        var tokens = TokenFile.ReadScoped(path);

        Assert.Equal(new Dictionary<string, string> { ["read"] = "r-token", ["control"] = "c-token" }, tokens);
    }

    [Fact]
    public void ReadScoped_ScopedTokenWithColon_KeepsTheColon()
    {
        Assert.Equal("a:b:c", TokenFile.ReadScoped(Write("admin: a:b:c\n"))["admin"]);
    }

    [Theory]
    [InlineData("")]
    [InlineData("# only a comment\n\n")]
    public void Read_NoTokens_ReturnsNull(string text)
    {
        var path = Write(text);

        Assert.Null(TokenFile.Read(path));
        Assert.Empty(TokenFile.ReadScoped(path));
    }

    [Theory]
    [InlineData("# tokens\n\nwrite: s3cr3t-1\n", 3, "unknown scope name")]
    [InlineData("Admin: s3cr3t-1\n", 1, "unknown scope name")]
    [InlineData(": s3cr3t-1\n", 1, "unknown scope name")]
    [InlineData("s3cr3t-1:s3cr3t-2\n", 1, "unknown scope name")]
    [InlineData("read: r\nadmin:\n", 2, "the admin token is empty")]
    [InlineData("control:    \n", 1, "the control token is empty")]
    [InlineData("control: s3cr3t-1 s3cr3t-2\n", 1, "the control token contains whitespace")]
    [InlineData("s3cr3t-1 s3cr3t-2\n", 1, "the admin token contains whitespace")]
    [InlineData("read: s3cr3t-\u00e9\n", 1, "the read token contains a character that is not printable ASCII")]
    [InlineData("s3cr3t-1\nadmin: s3cr3t-2\n", 2, "a second admin token (the first is on line 1)")]
    [InlineData("read: s3cr3t-1\n# again\nread: s3cr3t-2\n", 3, "a second read token (the first is on line 1)")]
    public void ReadScoped_MalformedLine_ThrowsNamingFileAndLineButNotTheToken(string text, int line, string problem)
    {
        var path = Write(text);

        var e = Assert.Throws<InvalidDataException>(() => TokenFile.ReadScoped(path));

        Assert.StartsWith($"{path}, line {line}: {problem}", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("s3cr3t", e.Message, StringComparison.Ordinal);
        Assert.Throws<InvalidDataException>(() => TokenFile.Read(path));
    }

    [Fact]
    public void Read_MissingFile_ThrowsFileNotFound()
    {
        var path = Path.Combine(directory, "absent");

        var e = Assert.Throws<FileNotFoundException>(() => TokenFile.Read(path));

        Assert.Contains(path, e.Message, StringComparison.Ordinal);
    }
}
