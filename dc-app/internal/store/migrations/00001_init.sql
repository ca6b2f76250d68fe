-- dc-app schema. Portable SQL for Postgres and SQLite: every time is UTC.

-- +goose Up
CREATE TABLE installation (
    -- always 1: one row per dc-app installation
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    instance_id TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE admins (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    password_changed_at TIMESTAMP NOT NULL
);

CREATE TABLE sessions (
    -- SHA-256 (hex) of the session cookie value
    id_hash TEXT PRIMARY KEY,
    admin_id TEXT NOT NULL REFERENCES admins (id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX sessions_admin ON sessions (admin_id);

CREATE TABLE synced_spaces (
    id TEXT PRIMARY KEY,
    -- the token id; one synced space per token, ever
    jti TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    cloud_url TEXT NOT NULL,
    site_base_url TEXT NOT NULL,
    site_display_url TEXT NOT NULL DEFAULT '',
    space_id TEXT NOT NULL,
    space_key TEXT NOT NULL,
    space_name TEXT NOT NULL,
    sync_id TEXT NOT NULL,
    sync_name TEXT NOT NULL,
    -- JSON arrays of {type, id, name}
    cloud_permissions TEXT NOT NULL,
    local_permissions TEXT NOT NULL DEFAULT '[]',
    sync_comments BOOLEAN NOT NULL,
    sync_labels BOOLEAN NOT NULL,
    -- PENDING, LINKED, UNLINKED or FAILED
    status TEXT NOT NULL,
    status_reason TEXT NOT NULL DEFAULT '',
    -- sealed with DC_APP_SECRET_KEY; the token is cleared once linked
    token_sealed TEXT NOT NULL DEFAULT '',
    link_secret_sealed TEXT NOT NULL,
    link_id TEXT NOT NULL DEFAULT '',
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP,
    imported_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    linked_at TIMESTAMP
);
CREATE INDEX synced_spaces_pending ON synced_spaces (status, next_attempt_at);

CREATE TABLE audit_events (
    id TEXT PRIMARY KEY,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    synced_space_id TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '{}',
    created_at TIMESTAMP NOT NULL
);

-- +goose Down
DROP TABLE audit_events;
DROP TABLE synced_spaces;
DROP TABLE sessions;
DROP TABLE admins;
DROP TABLE installation;
