-- +goose Up
CREATE TABLE things (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    active BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX things_one_active ON things (name) WHERE active;

-- +goose Down
DROP TABLE things;
