-- Switchboard transactional outbox, MySQL 8.0 or later, MariaDB 10.6 or
-- later (InnoDB).
--
-- Run as is (mysql < mysql.sql) for the default table names, or through
-- outbox.Migrate / outbox.Schema, which replace the prefix
-- "switchboard_outbox" of every name below with the configured table name.
-- Statements are separated by lines holding only "-- ;".
--
-- switchboard_outbox holds the messages written by committed transactions
-- and not yet accepted by the broker, in commit order per key (seq).
CREATE TABLE IF NOT EXISTS switchboard_outbox (
	seq            BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
	kind           VARCHAR(8)   NOT NULL,                -- 'topic' (Publish) or 'queue' (Notify)
	destination    VARCHAR(128) NOT NULL,                -- topic or recipient name
	msg_id         TEXT         NOT NULL,
	msg_key        VARBINARY(512) NOT NULL,              -- '' when the message has no key
	headers        MEDIUMTEXT   NOT NULL,                -- JSON object of string values
	body           LONGBLOB     NOT NULL,
	content_type   TEXT         NOT NULL,
	msg_type       TEXT         NOT NULL,
	msg_version    TEXT         NOT NULL,
	msg_time       BIGINT       NOT NULL,                -- Unix nanoseconds
	correlation_id TEXT         NOT NULL,
	reply_to       TEXT         NOT NULL,
	attempts       INT          NOT NULL DEFAULT 0,      -- sends started by relays
	last_error     TEXT         NULL,                    -- last transient send error
	created_at     TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
	INDEX switchboard_outbox_key_seq (msg_key, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
-- ;
-- switchboard_outbox_dead holds the rows the broker refused for good (too
-- large, invalid), with the error; they are never retried by a relay.
CREATE TABLE IF NOT EXISTS switchboard_outbox_dead (
	seq            BIGINT       NOT NULL PRIMARY KEY,
	kind           VARCHAR(8)   NOT NULL,
	destination    VARCHAR(128) NOT NULL,
	msg_id         TEXT         NOT NULL,
	msg_key        VARBINARY(512) NOT NULL,
	headers        MEDIUMTEXT   NOT NULL,
	body           LONGBLOB     NOT NULL,
	content_type   TEXT         NOT NULL,
	msg_type       TEXT         NOT NULL,
	msg_version    TEXT         NOT NULL,
	msg_time       BIGINT       NOT NULL,
	correlation_id TEXT         NOT NULL,
	reply_to       TEXT         NOT NULL,
	attempts       INT          NOT NULL,
	created_at     TIMESTAMP(6) NOT NULL,
	error          TEXT         NOT NULL,
	failed_at      TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
-- ;
-- switchboard_outbox_keys serializes the transactions writing one key when
-- the outbox is built WithKeyLock: each locks its key's row here before
-- its rows get their sequence numbers, so a key's sequence order is its
-- commit order. One row per key ever written that way.
CREATE TABLE IF NOT EXISTS switchboard_outbox_keys (
	msg_key VARBINARY(512) NOT NULL PRIMARY KEY
) ENGINE=InnoDB
