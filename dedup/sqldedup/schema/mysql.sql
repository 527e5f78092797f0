-- Switchboard inbox (dedup/sqldedup), MySQL 8.0 or later, MariaDB 10.6 or
-- later (InnoDB).
--
-- Run as is (mysql < mysql.sql) for the default table name, or through
-- sqldedup.Store.Migrate / sqldedup.Schema, which replace the prefix
-- "switchboard_inbox" of every name below with the configured table name.
-- Statements are separated by lines holding only "-- ;".
--
-- One row per deduplication key: a live claim (done false, the holder's
-- token, expires_at the end of its lease) or a handled key (done true,
-- expires_at the end of its retention). expires_at is Unix milliseconds by
-- the database's clock.
CREATE TABLE IF NOT EXISTS switchboard_inbox (
	dedup_key  VARBINARY(255) NOT NULL PRIMARY KEY,
	token      VARCHAR(255)   NOT NULL,
	done       BOOLEAN        NOT NULL,
	expires_at BIGINT         NOT NULL,
	INDEX switchboard_inbox_expires (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
