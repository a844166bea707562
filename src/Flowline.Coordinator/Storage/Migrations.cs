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
        new(2, "executions, idempotency keys and the dispatch queue",
            """
            CREATE TABLE executions (
                execution_id TEXT PRIMARY KEY,
                tenant_id TEXT NOT NULL,
                pipeline_id TEXT NOT NULL,
                release_version TEXT NOT NULL,
                contract_version TEXT NOT NULL,
                status TEXT NOT NULL,
                request_json TEXT NOT NULL,
                idempotency_key TEXT NULL,
                submitted_by TEXT NOT NULL,
                submitted_at INTEGER NOT NULL,
                updated_at INTEGER NOT NULL,
                lease_epoch INTEGER NOT NULL DEFAULT 0,
                result_json TEXT NULL,
                error_code TEXT NULL,
                error_message TEXT NULL,
                FOREIGN KEY (tenant_id, pipeline_id, release_version) REFERENCES releases (tenant_id, pipeline_id, release_version));
            CREATE INDEX executions_tenant ON executions (tenant_id, submitted_at);
            CREATE TABLE idempotency_keys (
                tenant_id TEXT NOT NULL,
                pipeline_id TEXT NOT NULL,
                idempotency_key TEXT NOT NULL,
                fingerprint TEXT NOT NULL,
                execution_id TEXT NOT NULL REFERENCES executions (execution_id),
                created_at INTEGER NOT NULL,
                PRIMARY KEY (tenant_id, pipeline_id, idempotency_key));
            CREATE TABLE dispatch_queue (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                execution_id TEXT NOT NULL REFERENCES executions (execution_id),
                due_at INTEGER NOT NULL,
                claimed_by TEXT NULL,
                claimed_at INTEGER NULL);
            CREATE INDEX dispatch_queue_due ON dispatch_queue (due_at) WHERE claimed_by IS NULL;
            """,
            """
            CREATE TABLE executions (
                execution_id TEXT PRIMARY KEY,
                tenant_id TEXT NOT NULL,
                pipeline_id TEXT NOT NULL,
                release_version TEXT NOT NULL,
                contract_version TEXT NOT NULL,
                status TEXT NOT NULL,
                request_json TEXT NOT NULL,
                idempotency_key TEXT NULL,
                submitted_by TEXT NOT NULL,
                submitted_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL,
                lease_epoch BIGINT NOT NULL DEFAULT 0,
                result_json TEXT NULL,
                error_code TEXT NULL,
                error_message TEXT NULL,
                FOREIGN KEY (tenant_id, pipeline_id, release_version) REFERENCES releases (tenant_id, pipeline_id, release_version));
            CREATE INDEX executions_tenant ON executions (tenant_id, submitted_at);
            CREATE TABLE idempotency_keys (
                tenant_id TEXT NOT NULL,
                pipeline_id TEXT NOT NULL,
                idempotency_key TEXT NOT NULL,
                fingerprint TEXT NOT NULL,
                execution_id TEXT NOT NULL REFERENCES executions (execution_id),
                created_at BIGINT NOT NULL,
                PRIMARY KEY (tenant_id, pipeline_id, idempotency_key));
            CREATE TABLE dispatch_queue (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                execution_id TEXT NOT NULL REFERENCES executions (execution_id),
                due_at BIGINT NOT NULL,
                claimed_by TEXT NULL,
                claimed_at BIGINT NULL);
            CREATE INDEX dispatch_queue_due ON dispatch_queue (due_at) WHERE claimed_by IS NULL;
            """),
        new(3, "the worker (host agent) registry",
            """
            CREATE TABLE workers (
                tenant_id TEXT NOT NULL,
                pipeline_id TEXT NOT NULL,
                worker_id TEXT NOT NULL,
                protocol TEXT NOT NULL,
                endpoint TEXT NULL,
                contract_version TEXT NOT NULL,
                release_version TEXT NOT NULL,
                artifact_id TEXT NULL,
                artifact_digest TEXT NULL,
                registered_at INTEGER NOT NULL,
                last_heartbeat_at INTEGER NOT NULL,
                draining_since INTEGER NULL,
                PRIMARY KEY (tenant_id, pipeline_id, worker_id));
            """,
            """
            CREATE TABLE workers (
                tenant_id TEXT NOT NULL,
                pipeline_id TEXT NOT NULL,
                worker_id TEXT NOT NULL,
                protocol TEXT NOT NULL,
                endpoint TEXT NULL,
                contract_version TEXT NOT NULL,
                release_version TEXT NOT NULL,
                artifact_id TEXT NULL,
                artifact_digest TEXT NULL,
                registered_at BIGINT NOT NULL,
                last_heartbeat_at BIGINT NOT NULL,
                draining_since BIGINT NULL,
                PRIMARY KEY (tenant_id, pipeline_id, worker_id));
            """),
        new(4, "claims with a fenced lease, cancellation, interactions",
            """
            ALTER TABLE executions ADD COLUMN lease_owner TEXT NULL;
            ALTER TABLE executions ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE executions ADD COLUMN cancel_requested_at INTEGER NULL;
            ALTER TABLE executions ADD COLUMN started_at INTEGER NULL;
            ALTER TABLE executions ADD COLUMN ended_at INTEGER NULL;
            ALTER TABLE workers ADD COLUMN unavailable_reason TEXT NULL;
            CREATE INDEX executions_live ON executions (status) WHERE status IN ('DISPATCHED', 'RUNNING', 'AWAITING_INTERACTION');
            CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);
            CREATE INDEX dispatch_queue_unclaimed ON dispatch_queue (id) WHERE claimed_by IS NULL;
            CREATE TABLE interactions (
                interaction_id TEXT PRIMARY KEY,
                tenant_id TEXT NOT NULL,
                execution_id TEXT NOT NULL REFERENCES executions (execution_id),
                gate_id TEXT NOT NULL,
                status TEXT NOT NULL,
                request_json TEXT NOT NULL,
                response_json TEXT NULL,
                actor TEXT NULL,
                created_at INTEGER NOT NULL,
                completed_at INTEGER NULL,
                UNIQUE (execution_id, gate_id));
            CREATE INDEX interactions_pending ON interactions (tenant_id, created_at) WHERE status = 'WAITING';
            """,
            """
            ALTER TABLE executions ADD COLUMN lease_owner TEXT NULL;
            ALTER TABLE executions ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
            ALTER TABLE executions ADD COLUMN cancel_requested_at BIGINT NULL;
            ALTER TABLE executions ADD COLUMN started_at BIGINT NULL;
            ALTER TABLE executions ADD COLUMN ended_at BIGINT NULL;
            ALTER TABLE workers ADD COLUMN unavailable_reason TEXT NULL;
            CREATE INDEX executions_live ON executions (status) WHERE status IN ('DISPATCHED', 'RUNNING', 'AWAITING_INTERACTION');
            CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);
            CREATE INDEX dispatch_queue_unclaimed ON dispatch_queue (id) WHERE claimed_by IS NULL;
            CREATE TABLE interactions (
                interaction_id TEXT PRIMARY KEY,
                tenant_id TEXT NOT NULL,
                execution_id TEXT NOT NULL REFERENCES executions (execution_id),
                gate_id TEXT NOT NULL,
                status TEXT NOT NULL,
                request_json TEXT NOT NULL,
                response_json TEXT NULL,
                actor TEXT NULL,
                created_at BIGINT NOT NULL,
                completed_at BIGINT NULL,
                UNIQUE (execution_id, gate_id));
            CREATE INDEX interactions_pending ON interactions (tenant_id, created_at) WHERE status = 'WAITING';
            """),
        new(5, "an index of dispatch entries by execution (the claim's join and the end of an execution look entries up by it)",
            """
            CREATE INDEX dispatch_queue_execution ON dispatch_queue (execution_id);
            """,
            """
            CREATE INDEX dispatch_queue_execution ON dispatch_queue (execution_id);
            """),
        new(6, "agents run several executions at once (workers.max_executions); dispatch entries of ended executions removed; the executions listing's keyset",
            """
            ALTER TABLE workers ADD COLUMN max_executions INTEGER NOT NULL DEFAULT 1;
            CREATE INDEX executions_leased_by ON executions (tenant_id, pipeline_id, lease_owner) WHERE status IN ('DISPATCHED', 'RUNNING', 'AWAITING_INTERACTION');
            CREATE INDEX executions_listing ON executions (tenant_id, submitted_at DESC, execution_id);
            DELETE FROM dispatch_queue WHERE execution_id IN (SELECT execution_id FROM executions WHERE status IN ('SUCCEEDED', 'FAILED', 'CANCELLED'));
            """,
            """
            ALTER TABLE workers ADD COLUMN max_executions BIGINT NOT NULL DEFAULT 1;
            CREATE INDEX executions_leased_by ON executions (tenant_id, pipeline_id, lease_owner) WHERE status IN ('DISPATCHED', 'RUNNING', 'AWAITING_INTERACTION');
            CREATE INDEX executions_listing ON executions (tenant_id, submitted_at DESC, execution_id);
            DELETE FROM dispatch_queue WHERE execution_id IN (SELECT execution_id FROM executions WHERE status IN ('SUCCEEDED', 'FAILED', 'CANCELLED'));
            """),
    ];
}
