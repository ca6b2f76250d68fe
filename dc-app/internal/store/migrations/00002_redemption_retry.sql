-- What the background retry of a PENDING import needs beyond 00001.
--
-- token_expires_at: when the imported token expires. After that (plus a
-- day's grace) no answer can make the import succeed any more, so the retry
-- stops; the sealed token cannot be read without opening it.
--
-- lease_until: while a redemption attempt is in flight, the time until which
-- it holds the row. next_attempt_at alone cannot tell "an attempt is running"
-- from "the next attempt is scheduled later", and removing a PENDING import
-- must wait for a running attempt but not for a scheduled one.
--
-- Both nullable so that the columns can be added on both databases.

-- +goose Up
ALTER TABLE synced_spaces ADD COLUMN token_expires_at TIMESTAMP;
ALTER TABLE synced_spaces ADD COLUMN lease_until TIMESTAMP;

-- +goose Down
ALTER TABLE synced_spaces DROP COLUMN lease_until;
ALTER TABLE synced_spaces DROP COLUMN token_expires_at;
