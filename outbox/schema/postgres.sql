-- Switchboard transactional outbox, PostgreSQL 14 or later.
--
-- Run as is (psql -f) for the default table names, or through
-- outbox.Migrate / outbox.Schema, which replace the prefix
-- "switchboard_outbox" of every name below with the configured table name.
-- Statements are separated by lines holding only "-- ;".
--
-- switchboard_outbox holds the messages written by committed transactions
-- and not yet accepted by the broker, in commit order per key (seq).
CREATE TABLE IF NOT EXISTS switchboard_outbox (
	seq            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	kind           VARCHAR(8)   NOT NULL,                -- 'topic' (Publish) or 'queue' (Notify)
	destination    VARCHAR(128) NOT NULL,                -- topic or recipient name
	msg_id         TEXT         NOT NULL,
	msg_key        BYTEA        NOT NULL,                -- '' when the message has no key
	headers        TEXT         NOT NULL,                -- JSON object of string values
	body           BYTEA        NOT NULL,
	content_type   TEXT         NOT NULL,
	msg_type       TEXT         NOT NULL,
	msg_version    TEXT         NOT NULL,
	msg_time       BIGINT       NOT NULL,                -- Unix nanoseconds
	correlation_id TEXT         NOT NULL,
	reply_to       TEXT         NOT NULL,
	attempts       INTEGER      NOT NULL DEFAULT 0,      -- sends started by relays
	last_error     TEXT,                                 -- last transient send error
	created_at     TIMESTAMPTZ  NOT NULL DEFAULT now()
)
-- ;
CREATE INDEX IF NOT EXISTS switchboard_outbox_key_seq ON switchboard_outbox (msg_key, seq)
-- ;
-- switchboard_outbox_dead holds the rows the broker refused for good (too
-- large, invalid), with the error; they are never retried by a relay.
CREATE TABLE IF NOT EXISTS switchboard_outbox_dead (
	seq            BIGINT       PRIMARY KEY,
	kind           VARCHAR(8)   NOT NULL,
	destination    VARCHAR(128) NOT NULL,
	msg_id         TEXT         NOT NULL,
	msg_key        BYTEA        NOT NULL,
	headers        TEXT         NOT NULL,
	body           BYTEA        NOT NULL,
	content_type   TEXT         NOT NULL,
	msg_type       TEXT         NOT NULL,
	msg_version    TEXT         NOT NULL,
	msg_time       BIGINT       NOT NULL,
	correlation_id TEXT         NOT NULL,
	reply_to       TEXT         NOT NULL,
	attempts       INTEGER      NOT NULL,
	created_at     TIMESTAMPTZ  NOT NULL,
	error          TEXT         NOT NULL,
	failed_at      TIMESTAMPTZ  NOT NULL DEFAULT now()
)
-- ;
-- Relays LISTEN on the channel named like the table: one notification per
-- committed inserting transaction wakes them at once.
CREATE OR REPLACE FUNCTION switchboard_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('switchboard_outbox', '');
	RETURN NULL;
END
$$
-- ;
CREATE OR REPLACE TRIGGER switchboard_outbox_notify AFTER INSERT ON switchboard_outbox
	FOR EACH STATEMENT EXECUTE FUNCTION switchboard_outbox_notify()
-- ;
-- switchboard_outbox_keys serializes the transactions writing one key when
-- the outbox is built WithKeyLock: each locks its key's row here before
-- its rows get their sequence numbers, so a key's sequence order is its
-- commit order. One row per key ever written that way.
CREATE TABLE IF NOT EXISTS switchboard_outbox_keys (
	msg_key BYTEA PRIMARY KEY
)
