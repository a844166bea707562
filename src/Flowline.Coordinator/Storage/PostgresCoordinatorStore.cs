using System.Data.Common;
using Dapper;
using Npgsql;

namespace Flowline.Coordinator.Storage;

/// <summary>The store in a PostgreSQL database, shared by any number of coordinators.</summary>
public sealed class PostgresCoordinatorStore : SqlCoordinatorStore
{
    // Any constant: the advisory lock that serialises migrations of coordinators starting at once.
    private const long MigrationLock = 0x466C6F774C696E;

    private readonly NpgsqlDataSource source;

    /// <summary>A store at <paramref name="connection"/>: a <c>postgres://</c> URI or an Npgsql connection string.</summary>
    public PostgresCoordinatorStore(string connection)
    {
        var builder = new NpgsqlConnectionStringBuilder(ConnectionString(connection));
        Description = $"PostgreSQL {builder.Username}@{builder.Host}:{builder.Port}/{builder.Database}";
        source = NpgsqlDataSource.Create(builder);
    }

    /// <inheritdoc/>
    public override string Provider => "postgresql";

    /// <inheritdoc/>
    public override string Description { get; }

    /// <inheritdoc/>
    protected override string NowMs => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)";

    /// <inheritdoc/>
    internal override string Ddl(Migration migration) => migration.Postgres;

    /// <inheritdoc/>
    protected override string ForUpdate => " FOR UPDATE";

    /// <inheritdoc/>
    protected override string SkipLocked(string alias) => $" FOR UPDATE OF {alias} SKIP LOCKED";

    /// <inheritdoc/>
    protected override async Task<DbConnection> OpenAsync(CancellationToken cancellationToken) =>
        await source.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);

    /// <inheritdoc/>
    protected override Task LockForMigrationAsync(DbConnection connection, DbTransaction transaction, CancellationToken cancellationToken) =>
        connection.ExecuteAsync(new CommandDefinition("SELECT pg_advisory_xact_lock(@key)", new { key = MigrationLock }, transaction, cancellationToken: cancellationToken));

    /// <summary>True for <c>postgres://</c> and <c>postgresql://</c> URIs and for connection strings (<c>Host=…</c>).</summary>
    public static bool IsPostgres(string store)
    {
        ArgumentNullException.ThrowIfNull(store);
        return store.StartsWith("postgres://", StringComparison.OrdinalIgnoreCase)
            || store.StartsWith("postgresql://", StringComparison.OrdinalIgnoreCase)
            || store.Contains("Host=", StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>An Npgsql connection string from a <c>postgres://user:password@host:port/database?key=value</c> URI, or the string itself.</summary>
    public static string ConnectionString(string store)
    {
        ArgumentNullException.ThrowIfNull(store);
        if (!store.StartsWith("postgres://", StringComparison.OrdinalIgnoreCase) && !store.StartsWith("postgresql://", StringComparison.OrdinalIgnoreCase))
        {
            return store;
        }

        if (!Uri.TryCreate(store, UriKind.Absolute, out var uri) || string.IsNullOrEmpty(uri.Host))
        {
            throw new ArgumentException("--store: not a valid postgres:// URI (postgres://user:password@host:port/database)");
        }

        var builder = new NpgsqlConnectionStringBuilder { Host = uri.Host, Port = uri.IsDefaultPort || uri.Port < 0 ? 5432 : uri.Port };
        if (uri.UserInfo.Length > 0)
        {
            var parts = uri.UserInfo.Split(':', 2);
            builder.Username = Uri.UnescapeDataString(parts[0]);
            if (parts.Length == 2)
            {
                builder.Password = Uri.UnescapeDataString(parts[1]);
            }
        }

        var database = Uri.UnescapeDataString(uri.AbsolutePath.TrimStart('/'));
        if (database.Length > 0)
        {
            builder.Database = database;
        }

        foreach (var pair in uri.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var kv = pair.Split('=', 2);
            var key = Uri.UnescapeDataString(kv[0]);
            var value = kv.Length == 2 ? Uri.UnescapeDataString(kv[1]) : "";
            try
            {
                builder[key switch { "sslmode" => "SSL Mode", "host" => "Host", _ => key }] = value;
            }
            catch (ArgumentException e)
            {
                throw new ArgumentException($"--store: unknown connection parameter '{key}' ({e.Message})", e);
            }
        }

        return builder.ConnectionString;
    }

    /// <inheritdoc/>
    public override async ValueTask DisposeAsync()
    {
        await source.DisposeAsync().ConfigureAwait(false);
        await base.DisposeAsync().ConfigureAwait(false);
    }
}
