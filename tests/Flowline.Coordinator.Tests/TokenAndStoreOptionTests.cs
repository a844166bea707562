using Flowline.Coordinator.Storage;
using Npgsql;

namespace Flowline.Coordinator.Tests;

/// <summary>Token files and the --store forms.</summary>
public sealed class TokenAndStoreOptionTests : IDisposable
{
    private readonly string directory = Path.Combine(Path.GetTempPath(), "flowline-coord-tokens-" + Guid.NewGuid().ToString("N")[..10]);

    public TokenAndStoreOptionTests() => Directory.CreateDirectory(directory);

    public void Dispose() => Directory.Delete(directory, recursive: true);

    [Fact]
    public void Default_tokens_are_created_once_with_mode_0600_and_read_again()
    {
        var (tokens, created) = CoordinatorTokens.LoadOrCreateDefaults(directory);
        Assert.Equal([Path.Combine(directory, "admin.token"), Path.Combine(directory, "control-plane.token"), Path.Combine(directory, "agent.token")], created);
        foreach (var file in created)
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
        }

        var admin = File.ReadAllText(created[0]).Trim();
        var control = File.ReadAllText(created[1]).Trim();
        Assert.NotEqual(admin, control);
        Assert.Equal(Role.Admin, tokens.Authenticate(admin)!.Role);
        Assert.Equal(Role.ControlPlane, tokens.Authenticate(control)!.Role);
        Assert.True(tokens.Authenticate(admin)!.Allows("any-tenant"));

        var (again, createdAgain) = CoordinatorTokens.LoadOrCreateDefaults(directory);
        Assert.Empty(createdAgain);
        Assert.Equal(Role.Admin, again.Authenticate(admin)!.Role);
        Assert.Null(again.Authenticate(admin + "x"));
    }

    [Fact]
    public void The_text_form_binds_tokens_to_tenants_and_names_the_line_of_an_error()
    {
        var tokens = CoordinatorTokens.Parse("# comment\nadmin * aaaaaaaaaaaaaaaaaaaa\ncontrol-plane acme,globex bbbbbbbbbbbbbbbbbbbb\n", "tokens.txt");
        var control = tokens.Authenticate("bbbbbbbbbbbbbbbbbbbb")!;
        Assert.True(control.Allows("globex"));
        Assert.False(control.Allows("initech"));
        Assert.DoesNotContain("bbbb", control.Name, StringComparison.Ordinal);

        Assert.Equal("tokens.txt, line 2: unknown role 'root'; roles are admin, control-plane, agent",
            Assert.Throws<FormatException>(() => CoordinatorTokens.Parse("\nroot * aaaaaaaaaaaaaaaaaaaa", "tokens.txt")).Message);
        Assert.Contains("line 1: a token is at least 16", Assert.Throws<FormatException>(() => CoordinatorTokens.Parse("admin * short", "f")).Message, StringComparison.Ordinal);
        Assert.Contains("line 2: this token is given twice", Assert.Throws<FormatException>(() => CoordinatorTokens.Parse("admin * aaaaaaaaaaaaaaaaaaaa\ncontrol-plane * aaaaaaaaaaaaaaaaaaaa", "f")).Message, StringComparison.Ordinal);
        Assert.Contains("no tokens", Assert.Throws<FormatException>(() => CoordinatorTokens.Parse("# nothing\n", "f")).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Store_option_forms()
    {
        var uri = new NpgsqlConnectionStringBuilder(PostgresCoordinatorStore.ConnectionString("postgres://flow%40line:p%3Ass@db.example:6543/coord?sslmode=Require"));
        Assert.Equal(("flow@line", "p:ss", "db.example", 6543, "coord", SslMode.Require), (uri.Username, uri.Password, uri.Host, uri.Port, uri.Database, uri.SslMode));
        Assert.Equal(5432, new NpgsqlConnectionStringBuilder(PostgresCoordinatorStore.ConnectionString("postgresql://db/coord")).Port);
        Assert.Throws<ArgumentException>(() => PostgresCoordinatorStore.ConnectionString("postgres://db/coord?colour=red"));
        Assert.True(PostgresCoordinatorStore.IsPostgres("Host=db;Username=u"));
        Assert.False(PostgresCoordinatorStore.IsPostgres("/var/lib/coordinator.db"));

        Assert.Equal(Path.Combine(directory, "state.db"), ((SqliteCoordinatorStore)CoordinatorStores.Open(Path.Combine(directory, "state.db"), "/unused")).Path);
        Assert.Equal(Path.Combine(directory, "dir", CoordinatorStores.DatabaseFile), ((SqliteCoordinatorStore)CoordinatorStores.Open(Path.Combine(directory, "dir"), "/unused")).Path);
        Assert.Equal(Path.Combine(directory, CoordinatorStores.DatabaseFile), ((SqliteCoordinatorStore)CoordinatorStores.Open(null, directory)).Path);
    }
}
