namespace Flowline.Coordinator.Storage;

/// <summary>One versioned change of the schema, in each provider's SQL.</summary>
/// <param name="Version">Its number: applied in order, each once, recorded in <c>schema_migrations</c>.</param>
/// <param name="Name">What it does.</param>
/// <param name="Sqlite">The statements for SQLite.</param>
/// <param name="Postgres">The statements for PostgreSQL.</param>
internal sealed record Migration(int Version, string Name, string Sqlite, string Postgres);

/// <summary>The schema's history. Never edit an applied migration: append a new one.</summary>
internal static class Migrations
{
    public static IReadOnlyList<Migration> All { get; } =
    [
        new(1, "releases, activation log and active head",
            """
            CREATE TABLE releases (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                tenant_id TEXT NOT NULL,
                pipeline_id TEXT NOT NULL,
                release_version TEXT NOT NULL,
                contract_version TEXT NOT NULL,
                content_digest TEXT NOT NULL,
                descriptor_json TEXT NOT NULL,
                artifacts_json TEXT NOT NULL,
                registered_by TEXT NOT NULL,
                registered_at INTEGER NOT NULL,
                UNIQUE (tenant_id, pipeline_id, release_version));
            CREATE TABLE activation_events (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                tenant_id TEXT NOT NULL,
                pipeline_id TEXT NOT NULL,
                release_version TEXT NOT NULL,
                previous_event_id INTEGER NULL REFERENCES activation_events (id),
                previous_release_version TEXT NULL,
                actor TEXT NOT NULL,
                reason TEXT NULL,
                activated_at INTEGER NOT NULL,
                FOREIGN KEY (tenant_id, pipeline_id, release_version) REFERENCES releases (tenant_id, pipeline_id, release_version));
            CREATE INDEX activation_events_pipeline ON activation_events (tenant_id, pipeline_id, id);
            CREATE TABLE active_releases (
                tenant_id TEXT NOT NULL,
                pipeline_id TEXT NOT NULL,
                event_id INTEGER NOT NULL REFERENCES activation_events (id),
                release_version TEXT NOT NULL,
                PRIMARY KEY (tenant_id, pipeline_id));
            """,
            """
            CREATE TABLE releases (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                tenant_id TEXT NOT NULL,
                pipeline_id TEXT NOT NULL,
                release_version TEXT NOT NULL,
                contract_version TEXT NOT NULL,
                content_digest TEXT NOT NULL,
                descriptor_json TEXT NOT NULL,
                artifacts_json TEXT NOT NULL,
                registered_by TEXT NOT NULL,
                registered_at BIGINT NOT NULL,
                UNIQUE (tenant_id, pipeline_id, release_version));
            CREATE TABLE activation_events (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                tenant_id TEXT NOT NULL,
                pipeline_id TEXT NOT NULL,
                release_version TEXT NOT NULL,
                previous_event_id BIGINT NULL REFERENCES activation_events (id),
                previous_release_version TEXT NULL,
                actor TEXT NOT NULL,
                reason TEXT NULL,
                activated_at BIGINT NOT NULL,
                FOREIGN KEY (tenant_id, pipeline_id, release_version) REFERENCES releases (tenant_id, pipeline_id, release_version));
            CREATE INDEX activation_events_pipeline ON activation_events (tenant_id, pipeline_id, id);
            CREATE TABLE active_releases (
                tenant_id TEXT NOT NULL,
                pipeline_id TEXT NOT NULL,
                event_id BIGINT NOT NULL REFERENCES activation_events (id),
                release_version TEXT NOT NULL,
                PRIMARY KEY (tenant_id, pipeline_id));
            """),
    ];
}
