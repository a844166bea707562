using Flowline.Coordinator.Storage;

namespace Flowline.Coordinator;

/// <summary>Chooses the store from <c>--store</c>.</summary>
public static class CoordinatorStores
{
    /// <summary>The SQLite file's name in a data directory.</summary>
    public const string DatabaseFile = "coordinator.db";

    /// <summary>The default data directory: <c>$XDG_DATA_HOME/flowline/coordinator</c>, else <c>~/.local/share/flowline/coordinator</c>.</summary>
    public static string DefaultDataDirectory()
    {
        var xdg = Environment.GetEnvironmentVariable("XDG_DATA_HOME");
        var root = string.IsNullOrEmpty(xdg) ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "share") : xdg;
        return Path.Combine(root, "flowline", "coordinator");
    }

    /// <summary>
    /// The store of <paramref name="store"/>: PostgreSQL for a <c>postgres://</c> URI or a connection string
    /// (<c>Host=…</c>); SQLite for a path (a file ending in .db, .sqlite or .sqlite3, or a directory holding
    /// <see cref="DatabaseFile"/>); SQLite in <paramref name="dataDirectory"/> when null.
    /// </summary>
    public static ICoordinatorStore Open(string? store, string dataDirectory)
    {
        if (string.IsNullOrWhiteSpace(store))
        {
            return new SqliteCoordinatorStore(Path.Combine(dataDirectory, DatabaseFile));
        }

        if (PostgresCoordinatorStore.IsPostgres(store))
        {
            return new PostgresCoordinatorStore(store);
        }

        var extension = Path.GetExtension(store);
        return extension is ".db" or ".sqlite" or ".sqlite3" || File.Exists(store)
            ? new SqliteCoordinatorStore(store)
            : new SqliteCoordinatorStore(Path.Combine(store, DatabaseFile));
    }
}
