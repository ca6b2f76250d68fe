-- A token email attempt that got no answer after it was sent (a timeout or
-- a reset connection) may still have been delivered by SendGrid. The flag
-- keeps that known across attempts, so that a final failure never claims
-- the token was not sent when it may have been.

-- +goose Up
ALTER TABLE token_emails ADD COLUMN unconfirmed BOOLEAN NOT NULL DEFAULT FALSE;

-- +goose Down
ALTER TABLE token_emails DROP COLUMN unconfirmed;
