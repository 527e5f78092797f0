// Package sqldedup is a dedup.Store in PostgreSQL, MySQL or MariaDB: the
// inbox of the transactional outbox pattern.
//
// Used like dedup/redisdedup, it is a shared store of claims and handled
// keys (dedup.Middleware(store)). Its point is the transactional mode: with
// Transactional, each handler attempt runs in a database transaction that
// the handler reaches with Tx(ctx); the claim, the handler's own writes
// and the record that the message was handled commit together, or not at
// all. A consumer that crashes (or fails) between its effects and the
// record rolls both back, so the redelivered message is handled again and
// its effects happen once; a consumer whose acknowledgement is lost after
// the commit finds the key handled and acknowledges the duplicate without
// calling the handler. This is effectively-once processing for handlers
// whose effects are in the same database. Messages the handler writes to
// an outbox.Outbox in that transaction are sent if and only if it commits.
//
//	store, _ := sqldedup.New(db)
//	_ = store.Migrate(ctx)
//	mw, _ := store.Transactional(dedup.WithNamespace("billing"))
//	client.Subscribe(ctx, "orders", "billing", func(ctx context.Context, m *messaging.Message) error {
//		_, err := sqldedup.Tx(ctx).ExecContext(ctx, "UPDATE accounts SET ...")
//		return err
//	}, messaging.WithMiddleware(mw))
//
// Rows: one per key, in a table (DefaultTable, or WithTable) created by
// Migrate or by the files schema/postgres.sql and schema/mysql.sql. Times
// come from the database's clock, so consumers on machines with skewed
// clocks agree. Expired rows are ignored and overwritten; Purge deletes
// them. Keys longer than 255 bytes are stored as "sha256:" and the hex
// SHA-256 of the key.
//
// In the transactional mode, a second consumer of the same key waits (in
// Begin) for the first one's transaction to end, then finds the key
// handled or claims it; a claim lives exactly as long as its transaction,
// so the lease does not matter and a crashed consumer's claim goes with
// its connection.
package sqldedup

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/switchboard-go/switchboard/dedup"
	"github.com/switchboard-go/switchboard/internal/sqldb"
	"github.com/switchboard-go/switchboard/messaging"
)

// DefaultTable is the inbox table's name when WithTable is not given.
const DefaultTable = "switchboard_inbox"

// maxKey is the longest key stored as is.
const maxKey = 255

// Dialect is an SQL dialect: Postgres or MySQL (MySQL and MariaDB).
type Dialect = sqldb.Dialect

// Dialects.
const (
	AutoDialect = sqldb.Auto     // detect from the driver (the default)
	Postgres    = sqldb.Postgres // PostgreSQL 14 or later
	MySQL       = sqldb.MySQL    // MySQL 8.0 or later, MariaDB 10.6 or later
)

//go:embed schema/*.sql
var schemaFS embed.FS

// Store is a dedup.Store in an SQL table. It is safe for concurrent use.
type Store struct {
	db    *sql.DB
	d     Dialect
	table string
	now   string // SQL expression: the database's clock in Unix milliseconds
}

var _ dedup.Store = (*Store)(nil)

// Option configures New.
type Option func(*config)

type config struct {
	dialect Dialect
	table   string
}

// WithDialect sets the SQL dialect instead of detecting it from the
// driver.
func WithDialect(d Dialect) Option { return func(c *config) { c.dialect = d } }

// WithTable sets the inbox table's name: 1 to 40 characters from
// [a-z0-9_], starting with a letter or underscore. The default is
// DefaultTable.
func WithTable(name string) Option { return func(c *config) { c.table = name } }

// New returns a store in db's inbox table. It does not touch the database
// (see Migrate). It fails with an error matching messaging.ErrInvalid for a
// nil db, a bad table name or a driver whose dialect it cannot tell.
func New(db *sql.DB, opts ...Option) (*Store, error) {
	c := config{table: DefaultTable}
	for _, o := range opts {
		o(&c)
	}
	if db == nil {
		return nil, fmt.Errorf("%w: sqldedup: nil database", messaging.ErrInvalid)
	}
	d, err := sqldb.Detect(c.dialect, db.Driver())
	if err != nil {
		return nil, fmt.Errorf("%w: sqldedup: %w", messaging.ErrInvalid, err)
	}
	if err := sqldb.CheckTable(c.table); err != nil {
		return nil, fmt.Errorf("%w: sqldedup: %w", messaging.ErrInvalid, err)
	}
	s := &Store{db: db, d: d, table: c.table, now: "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"}
	if d == MySQL {
		s.now = "CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)"
	}
	return s, nil
}

// Table returns the inbox table's name.
func (s *Store) Table() string { return s.table }

// Schema returns the statements that create an inbox table named table in
// dialect d: the embedded schema/postgres.sql or schema/mysql.sql with
// DefaultTable replaced by table.
func Schema(d Dialect, table string) ([]string, error) {
	if err := sqldb.CheckTable(table); err != nil {
		return nil, fmt.Errorf("%w: sqldedup: %w", messaging.ErrInvalid, err)
	}
	file := map[Dialect]string{Postgres: "schema/postgres.sql", MySQL: "schema/mysql.sql"}[d]
	if file == "" {
		return nil, fmt.Errorf("%w: sqldedup: schema of dialect %v", messaging.ErrInvalid, d)
	}
	b, err := schemaFS.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return sqldb.SplitStatements(strings.ReplaceAll(string(b), DefaultTable, table)), nil
}

// Migrate creates the inbox table if it does not exist.
func (s *Store) Migrate(ctx context.Context) error {
	stmts, err := Schema(s.d, s.table)
	if err != nil {
		return err
	}
	for _, q := range stmts {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("sqldedup: migrate %s: %w", s.table, err)
		}
	}
	return nil
}

// Drop drops the inbox table. For tests and tear-down.
func (s *Store) Drop(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, "DROP TABLE IF EXISTS "+s.table); err != nil {
		return fmt.Errorf("sqldedup: drop %s: %w", s.table, err)
	}
	return nil
}

// Purge deletes the expired rows (lapsed claims, keys past their
// retention) and returns how many. Run it now and then; expired rows are
// ignored meanwhile.
func (s *Store) Purge(ctx context.Context) (int64, error) {
	res, err := s.db.ExecContext(ctx, "DELETE FROM "+s.table+" WHERE expires_at <= "+s.now)
	if err != nil {
		return 0, fmt.Errorf("sqldedup: purge %s: %w", s.table, err)
	}
	return res.RowsAffected()
}

// execer is what *sql.DB and *sql.Tx share.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *Store) on(ctx context.Context) (execer, *txState) {
	if st, ok := ctx.Value(txKey{}).(*txState); ok && st.store == s {
		return st.tx, st
	}
	return s.db, nil
}

func storedKey(key string) []byte {
	if len(key) <= maxKey {
		return []byte(key)
	}
	sum := sha256.Sum256([]byte(key))
	return []byte("sha256:" + hex.EncodeToString(sum[:]))
}

func (s *Store) wrap(op, key string, err error) error {
	if sqldb.IsMissingTable(err) {
		return fmt.Errorf("sqldedup: %s %s: table %s does not exist (run Migrate): %w", op, key, s.table, err)
	}
	return fmt.Errorf("sqldedup: %s %s: %w", op, key, err)
}

// Begin implements dedup.Store. Within Transactional's transaction it
// claims the key in that transaction (waiting for another transaction
// holding the same key to end).
func (s *Store) Begin(ctx context.Context, key, token string, lease time.Duration) (dedup.State, error) {
	ex, st := s.on(ctx)
	k := storedKey(key)
	ms := max(lease.Milliseconds(), 1)
	p := s.d.P
	insert := "INSERT INTO " + s.table + " (dedup_key, token, done, expires_at) VALUES (" + p(1) + ", " + p(2) + ", FALSE, " + s.now + " + " + p(3) + ")"
	if s.d == Postgres {
		insert += " ON CONFLICT (dedup_key) DO NOTHING"
	} else {
		insert += " ON DUPLICATE KEY UPDATE dedup_key = dedup_key"
	}
	takeOver := "UPDATE " + s.table + " SET token = " + p(1) + ", done = FALSE, expires_at = " + s.now + " + " + p(2) +
		" WHERE dedup_key = " + p(3) + " AND (expires_at <= " + s.now + " OR (done = FALSE AND token = " + p(4) + "))"
	read := "SELECT done, token, CASE WHEN expires_at > " + s.now + " THEN 1 ELSE 0 END FROM " + s.table + " WHERE dedup_key = " + p(1)
	if st != nil {
		read += " FOR UPDATE"
	}
	// Between a failed insert and the read, the row may be released or
	// expire: try again, a few times.
	for range 3 {
		res, err := ex.ExecContext(ctx, insert, k, token, ms)
		if err != nil {
			return 0, s.wrap("claim", key, err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			return dedup.Claimed, nil
		}
		res, err = ex.ExecContext(ctx, takeOver, token, ms, k, token)
		if err != nil {
			return 0, s.wrap("claim", key, err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			return dedup.Claimed, nil
		}
		var done bool
		var holder string
		var live int
		err = ex.QueryRowContext(ctx, read, k).Scan(&done, &holder, &live)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			continue
		case err != nil:
			return 0, s.wrap("read", key, err)
		case live == 0:
			continue // expired meanwhile: take it over
		case done:
			return dedup.Done, nil
		case holder == token:
			return dedup.Claimed, nil // our own claim, extended in the same millisecond
		default:
			return dedup.Busy, nil
		}
	}
	return dedup.Busy, nil
}

// Complete implements dedup.Store. Within Transactional's transaction the
// record is written in that transaction; if it fails, the transaction is
// rolled back and the attempt fails.
func (s *Store) Complete(ctx context.Context, key string, ttl time.Duration) error {
	ex, st := s.on(ctx)
	q := "INSERT INTO " + s.table + " (dedup_key, token, done, expires_at) VALUES (" + s.d.P(1) + ", '', TRUE, " + s.now + " + " + s.d.P(2) + ")"
	if s.d == Postgres {
		q += " ON CONFLICT (dedup_key) DO UPDATE SET token = '', done = TRUE, expires_at = EXCLUDED.expires_at"
	} else {
		q += " ON DUPLICATE KEY UPDATE token = '', done = TRUE, expires_at = VALUES(expires_at)"
	}
	if _, err := ex.ExecContext(ctx, q, storedKey(key), max(ttl.Milliseconds(), 1)); err != nil {
		err = s.wrap("complete", key, err)
		if st != nil {
			st.err = err
		}
		return err
	}
	return nil
}

// Release implements dedup.Store: it deletes the key's row only while it
// holds token's claim. Within Transactional's transaction it does nothing:
// the rollback drops the claim.
func (s *Store) Release(ctx context.Context, key, token string) error {
	if _, st := s.on(ctx); st != nil {
		return nil
	}
	q := "DELETE FROM " + s.table + " WHERE dedup_key = " + s.d.P(1) + " AND done = FALSE AND token = " + s.d.P(2)
	if _, err := s.db.ExecContext(ctx, q, storedKey(key), token); err != nil {
		return s.wrap("release", key, err)
	}
	return nil
}
