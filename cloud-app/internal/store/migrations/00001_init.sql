-- cloud-app schema. Portable SQL for Postgres and SQLite: every time is UTC.

-- +goose Up
CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    client_key TEXT NOT NULL UNIQUE,
    base_url TEXT NOT NULL,
    display_url TEXT NOT NULL DEFAULT '',
    product_type TEXT NOT NULL DEFAULT '',
    shared_secret_sealed TEXT NOT NULL,
    -- installed, enabled, disabled or uninstalled
    state TEXT NOT NULL,
    -- increases with every accepted lifecycle event; guards racing callbacks
    event_seq BIGINT NOT NULL DEFAULT 0,
    installed_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    uninstalled_at TIMESTAMP
);
CREATE INDEX tenants_base_url ON tenants (base_url);

CREATE TABLE syncs (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    space_id TEXT NOT NULL,
    space_key TEXT NOT NULL,
    space_name TEXT NOT NULL,
    name TEXT NOT NULL,
    -- JSON array of {type, id, name}
    permissions TEXT NOT NULL,
    sync_comments BOOLEAN NOT NULL,
    sync_labels BOOLEAN NOT NULL,
    -- NOT_SYNCED_YET or SYNCED
    status TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    deleted_at TIMESTAMP
);
CREATE INDEX syncs_tenant_space ON syncs (tenant_id, space_key);

CREATE TABLE tokens (
    jti TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    sync_id TEXT NOT NULL REFERENCES syncs (id),
    kid TEXT NOT NULL,
    -- SHA-256 (hex) of the redemption secret; the secret itself is only in the token
    rs_hash TEXT NOT NULL,
    -- download or email
    channel TEXT NOT NULL,
    recipient TEXT NOT NULL DEFAULT '',
    issued_by TEXT NOT NULL,
    issued_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP,
    revoked_at TIMESTAMP,
    -- revoked, superseded or sync_deleted
    revoke_reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX tokens_sync ON tokens (sync_id);

CREATE TABLE links (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    sync_id TEXT NOT NULL REFERENCES syncs (id),
    token_jti TEXT NOT NULL REFERENCES tokens (jti),
    instance_id TEXT NOT NULL,
    instance_name TEXT NOT NULL,
    instance_base_url TEXT NOT NULL,
    name TEXT NOT NULL,
    -- SHA-256 (hex) of the dc-app generated link secret
    secret_hash TEXT NOT NULL UNIQUE,
    -- active or unlinked
    status TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    unlinked_at TIMESTAMP
);
CREATE UNIQUE INDEX links_one_active_per_sync ON links (sync_id) WHERE status = 'active';
CREATE UNIQUE INDEX links_token ON links (token_jti);

CREATE TABLE token_emails (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    sync_id TEXT NOT NULL REFERENCES syncs (id),
    token_jti TEXT NOT NULL REFERENCES tokens (jti),
    to_addr TEXT NOT NULL,
    subject TEXT NOT NULL,
    message TEXT NOT NULL,
    -- the token, sealed with the secret key, until the mail is sent or fails
    token_sealed TEXT NOT NULL DEFAULT '',
    -- queued, sent, failed or outbox
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    locked_until TIMESTAMP,
    provider_message_id TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX token_emails_due ON token_emails (status, next_attempt_at);
CREATE INDEX token_emails_sender ON token_emails (tenant_id, created_by, created_at);

CREATE TABLE audit_events (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    sync_id TEXT NOT NULL DEFAULT '',
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    -- JSON object with details; never a secret
    detail TEXT NOT NULL DEFAULT '{}',
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX audit_events_sync ON audit_events (tenant_id, sync_id, created_at);

-- +goose Down
DROP TABLE audit_events;
DROP TABLE token_emails;
DROP TABLE links;
DROP TABLE tokens;
DROP TABLE syncs;
DROP TABLE tenants;
