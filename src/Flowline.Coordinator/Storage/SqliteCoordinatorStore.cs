using System.Data.Common;
using Microsoft.Data.Sqlite;

namespace Flowline.Coordinator.Storage;

/// <summary>
/// The store in one SQLite file (WAL: readers do not block the writer; writers take the lock at
/// <c>BEGIN IMMEDIATE</c>, so several coordinator processes on one host share it safely).
/// </summary>
public sealed class SqliteCoordinatorStore : SqlCoordinatorStore
{
    private readonly string connectionString;

    /// <summary>A store in <paramref name="path"/> (created with its directory when missing).</summary>
    public SqliteCoordinatorStore(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        Path = System.IO.Path.GetFullPath(path);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(Path)!);
        connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = Path,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = true,
            DefaultTimeout = 30,
        }.ToString();
    }

    /// <summary>The database file.</summary>
    public string Path { get; }

    /// <inheritdoc/>
    public override string Provider => "sqlite";

    /// <inheritdoc/>
    public override string Description => $"SQLite {Path}";

    /// <inheritdoc/>
    protected override string NowMs => "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)";

    /// <inheritdoc/>
    internal override string Ddl(Migration migration) => migration.Sqlite;

    /// <inheritdoc/>
    protected override async Task<DbConnection> OpenAsync(CancellationToken cancellationToken)
    {
        var connection = new SqliteConnection(connectionString);
        try
        {
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            using var pragmas = connection.CreateCommand();
            pragmas.CommandText = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 30000;";
            await pragmas.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <inheritdoc/>
    public override ValueTask DisposeAsync()
    {
        // Pooled connections keep the file (and its -wal, -shm) open: release them so the file can be removed.
        SqliteConnection.ClearAllPools();
        return base.DisposeAsync();
    }
}
