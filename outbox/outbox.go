// Package outbox is a transactional outbox over database/sql: a service
// writes its messages into a table of its own database in the same
// transaction as its data, and a relay forwards the committed rows to the
// broker. A message is sent if and only if its transaction commits (at
// least once: a relay that crashes after the broker accepted a batch and
// before it removed the rows sends them again), so a crash between the
// write and the publish can no longer lose a message, and a rolled-back
// write can no longer publish one.
//
//	ob, err := outbox.New(db, client)          // client: a *messaging.Client
//	err = ob.Migrate(ctx)                       // or apply schema/*.sql yourself
//	tx, err := db.BeginTx(ctx, nil)
//	_, err = tx.ExecContext(ctx, "INSERT INTO orders ...")
//	err = ob.Publish(ctx, tx, "orders", &messaging.Message{Key: "o-1", Body: body})
//	err = tx.Commit()                           // the message exists from here on
//	go ob.Relay(ctx)                            // in the service, or `switchboard outbox relay`
//
// Databases: PostgreSQL 14 or later (driver github.com/jackc/pgx/v5/stdlib;
// github.com/lib/pq works too, without LISTEN and without ErrMissingTable)
// and MySQL 8.0 or later or MariaDB 10.6 or later (driver
// github.com/go-sql-driver/mysql), detected from the driver or set with
// WithDialect.
//
// Writing: Publish and Notify take the same messages as
// messaging.Client.Publish and Notify and check them the same way, against
// the limits of the client's transport, before anything is written: bad
// names and headers fail with messaging.ErrInvalid, messages over the
// transport's limits with messaging.ErrMessageTooLarge. A message's ID and
// Time are fixed when it is written (generated when empty), so that every
// send of it, duplicates included, carries the same ID. A nil or finished
// transaction fails with an error matching sql.ErrTxDone, a missing table
// with ErrMissingTable; on PostgreSQL a failed statement aborts the
// caller's transaction, which must then be rolled back.
//
// Relaying: Relay runs until its context ends. Each round it reads the
// oldest rows, takes the per-key ownership of their keys (a session-level
// advisory lock on its own connection: pg_try_advisory_lock on PostgreSQL,
// GET_LOCK on MySQL and MariaDB; the database drops it when the relay's
// connection dies, so a crashed relay's keys are free at once), reads the
// owned keys' rows again in sequence order, marks them as attempted, sends
// them (one Publish or Notify per destination, in order) and deletes them
// once the broker accepted them. Any number of relays may run on one
// table: a key is relayed by one relay at a time, in order. (Session-level
// locks need a real session: on PostgreSQL, connect relays directly or
// through a pooler in session mode, not PgBouncer's transaction mode.) On
// PostgreSQL
// a trigger notifies the relays (LISTEN/NOTIFY) when a transaction that
// wrote rows commits; otherwise, and as a fallback, they poll
// (WithPollInterval).
//
// Order: rows of one key are relayed in the order of their sequence
// numbers, which is their commit order when the transactions writing a key
// are serialized: by the application (as when each updates the row of the
// entity the key names, the usual case) or by WithKeyLock. Otherwise rows
// of one key written by concurrent transactions are relayed in the order
// the relay finds them committed, and in sequence order when it finds
// them committed together.
// Order holds per key and destination: a send failing for one destination
// holds back the key's later rows in that round, but not rows it already
// sent to other destinations.
//
// Failures: a send the broker refuses for good (messaging.ErrMessageTooLarge
// or messaging.ErrInvalid, for example a message over the limits of the
// relay's transport) moves the row to the dead table (Dead) with its error:
// it is never retried. Any other error leaves the rows in place, records
// the error in last_error and retries them with exponential backoff. A row
// read with attempts above zero may have been sent before by a relay that
// crashed: it is sent again (the consumer sees the same message ID; use
// package dedup) and counted as redelivered.
//
// Schema: Migrate creates the tables (CREATE ... IF NOT EXISTS); the same
// statements are in schema/postgres.sql and schema/mysql.sql (Schema
// returns them with the configured names). The inbox, for handlers whose
// effects are in the same database, is package dedup/sqldedup.
package outbox

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/switchboard-go/switchboard/internal/sqldb"
	"github.com/switchboard-go/switchboard/messaging"
	"go.opentelemetry.io/otel/metric"
)

// DefaultTable is the outbox table's name when WithTable is not given. The
// dead table is the name followed by "_dead".
const DefaultTable = "switchboard_outbox"

// MaxKeyLength is the longest message key the outbox stores, in bytes
// (the width of the key column in MySQL's index).
const MaxKeyLength = 512

// Errors of this package, tested with errors.Is. Message errors are
// messaging's: messaging.ErrInvalid, messaging.ErrMessageTooLarge.
var (
	// ErrMissingTable is returned when the outbox table does not exist:
	// run Migrate, or apply the schema files.
	ErrMissingTable = errors.New("outbox: table does not exist (run Migrate)")
)

// Dialect is an SQL dialect: Postgres or MySQL (MySQL and MariaDB).
type Dialect = sqldb.Dialect

// Dialects.
const (
	// AutoDialect (the default) detects the dialect from the driver.
	AutoDialect = sqldb.Auto
	// Postgres is PostgreSQL 14 or later.
	Postgres = sqldb.Postgres
	// MySQL is MySQL 8.0 or later or MariaDB 10.6 or later.
	MySQL = sqldb.MySQL
)

//go:embed schema/*.sql
var schemaFS embed.FS

// Outbox writes messages into a table within the caller's transactions
// and relays them to the broker. It is safe for concurrent use.
type Outbox struct {
	db     *sql.DB
	client *messaging.Client
	d      Dialect
	table  string
	dead   string
	o      options
	m      *metrics

	mu     sync.Mutex
	insert map[int]string // number of messages -> INSERT statement
}

// Option configures New.
type Option func(*options)

type options struct {
	dialect      Dialect
	table        string
	batch        int
	pollInterval time.Duration
	minBackoff   time.Duration
	maxBackoff   time.Duration
	sendTimeout  time.Duration
	listen       bool
	meter        metric.MeterProvider
	logger       *slog.Logger
	onRedelivery func(seq int64, id string, attempts int)
	keyLock      bool
}

// WithDialect sets the SQL dialect instead of detecting it from the
// driver.
func WithDialect(d Dialect) Option { return func(o *options) { o.dialect = d } }

// WithTable sets the outbox table's name (the dead table is name+"_dead",
// and on PostgreSQL the notification channel, trigger and function are
// named after it too): 1 to 40 characters from [a-z0-9_], starting with a
// letter or underscore. The default is DefaultTable.
func WithTable(name string) Option { return func(o *options) { o.table = name } }

// WithBatchSize sets the most rows a relay reads and sends per round. The
// default is 100.
func WithBatchSize(n int) Option { return func(o *options) { o.batch = n } }

// WithPollInterval sets how long an idle relay waits before it reads the
// table again when no notification wakes it (on MySQL, always; on
// PostgreSQL, as a fallback to LISTEN/NOTIFY). The default is 250ms on
// MySQL and 2s on PostgreSQL.
func WithPollInterval(d time.Duration) Option { return func(o *options) { o.pollInterval = d } }

// WithBackoff sets the waits of a relay after a failed round: from min,
// doubling, up to max. The defaults are 100ms and 5s.
func WithBackoff(min, max time.Duration) Option {
	return func(o *options) { o.minBackoff, o.maxBackoff = min, max }
}

// WithSendTimeout bounds each send of a relay to the broker. The default
// is 30 seconds.
func WithSendTimeout(d time.Duration) Option { return func(o *options) { o.sendTimeout = d } }

// WithListen turns PostgreSQL's LISTEN/NOTIFY on (the default) or off (the
// relay then only polls). It has no effect on MySQL.
func WithListen(on bool) Option { return func(o *options) { o.listen = on } }

// WithMeterProvider turns the relay's metrics on (see Relay). Off by
// default.
func WithMeterProvider(mp metric.MeterProvider) Option { return func(o *options) { o.meter = mp } }

// WithLogger sets the logger of the relay. The default discards
// everything.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithRedeliveryHook sets a function the relay calls for each row it sends
// again after an earlier relay started sending it (attempts is the count
// before this one): the message may reach consumers twice. Its calls are
// counted by the switchboard.outbox.redelivered metric as well.
func WithRedeliveryHook(f func(seq int64, id string, attempts int)) Option {
	return func(o *options) { o.onRedelivery = f }
}

// WithKeyLock makes Publish and Notify lock each key of their messages (a
// row of the table "<table>_keys", until the transaction ends) before
// writing them, so that transactions writing one key are serialized and
// the key's sequence order is its commit order even when the application
// does not serialize them itself. It costs one statement per call and a
// wait when another open transaction wrote the same key; two transactions
// writing two keys in opposite orders can deadlock (the database then
// fails one of them: retry it). Off by default.
func WithKeyLock(on bool) Option { return func(o *options) { o.keyLock = on } }

// New returns an Outbox writing to db's outbox table and relaying through
// client, which also sets the limits messages are checked against. It
// does not touch the database. It fails with an error matching
// messaging.ErrInvalid for a nil db or client, a bad table name or option,
// or a driver whose dialect it cannot tell (use WithDialect).
func New(db *sql.DB, client *messaging.Client, opts ...Option) (*Outbox, error) {
	o := options{table: DefaultTable, batch: 100, minBackoff: 100 * time.Millisecond, maxBackoff: 5 * time.Second,
		sendTimeout: 30 * time.Second, listen: true, logger: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	if db == nil || client == nil {
		return nil, fmt.Errorf("%w: outbox: nil database or client", messaging.ErrInvalid)
	}
	d, err := sqldb.Detect(o.dialect, db.Driver())
	if err != nil {
		return nil, fmt.Errorf("%w: outbox: %w", messaging.ErrInvalid, err)
	}
	if o.pollInterval == 0 {
		o.pollInterval = 250 * time.Millisecond
		if d == Postgres && o.listen {
			o.pollInterval = 2 * time.Second
		}
	}
	switch {
	case o.logger == nil:
		return nil, fmt.Errorf("%w: outbox: WithLogger(nil)", messaging.ErrInvalid)
	case o.batch < 1 || o.batch > 1000:
		return nil, fmt.Errorf("%w: outbox: batch size %d; it must be 1 to 1000", messaging.ErrInvalid, o.batch)
	case o.pollInterval <= 0, o.minBackoff <= 0, o.maxBackoff < o.minBackoff, o.sendTimeout <= 0:
		return nil, fmt.Errorf("%w: outbox: poll interval, backoff and send timeout must be positive (and max backoff at least min)", messaging.ErrInvalid)
	}
	if err := sqldb.CheckTable(o.table); err != nil {
		return nil, fmt.Errorf("%w: outbox: %w", messaging.ErrInvalid, err)
	}
	ob := &Outbox{db: db, client: client, d: d, table: o.table, dead: o.table + "_dead", o: o, insert: map[int]string{}}
	if ob.m, err = newMetrics(ob); err != nil {
		return nil, fmt.Errorf("outbox: metrics: %w", err)
	}
	return ob, nil
}

// Dialect returns the outbox's SQL dialect.
func (ob *Outbox) Dialect() Dialect { return ob.d }

// Table returns the outbox table's name.
func (ob *Outbox) Table() string { return ob.table }

// DeadTable returns the dead table's name.
func (ob *Outbox) DeadTable() string { return ob.dead }

// Schema returns the statements that create the tables of an outbox
// named table in dialect d (Postgres or MySQL): the embedded
// schema/postgres.sql or schema/mysql.sql with DefaultTable replaced by
// table.
func Schema(d Dialect, table string) ([]string, error) {
	if err := sqldb.CheckTable(table); err != nil {
		return nil, fmt.Errorf("%w: outbox: %w", messaging.ErrInvalid, err)
	}
	var file string
	switch d {
	case Postgres:
		file = "schema/postgres.sql"
	case MySQL:
		file = "schema/mysql.sql"
	default:
		return nil, fmt.Errorf("%w: outbox: schema of dialect %v", messaging.ErrInvalid, d)
	}
	b, err := schemaFS.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return sqldb.SplitStatements(strings.ReplaceAll(string(b), DefaultTable, table)), nil
}

// Migrate creates the outbox's tables (and, on PostgreSQL, its
// notification trigger) if they do not exist. It is idempotent; run it at
// startup or apply Schema's statements with your migration tool instead.
func (ob *Outbox) Migrate(ctx context.Context) error {
	stmts, err := Schema(ob.d, ob.table)
	if err != nil {
		return err
	}
	for _, s := range stmts {
		if _, err := ob.db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("outbox: migrate %s: %w", ob.table, err)
		}
	}
	return nil
}

// Drop drops the outbox's tables (and trigger and function). For tests and
// tear-down; the rows in them are lost.
func (ob *Outbox) Drop(ctx context.Context) error {
	stmts := []string{"DROP TABLE IF EXISTS " + ob.table, "DROP TABLE IF EXISTS " + ob.dead, "DROP TABLE IF EXISTS " + ob.table + "_keys"}
	if ob.d == Postgres {
		stmts = append(stmts, "DROP FUNCTION IF EXISTS "+ob.table+"_notify()")
	}
	for _, s := range stmts {
		if _, err := ob.db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("outbox: drop: %w", err)
		}
	}
	return nil
}

// Publish writes msgs, in order, into the outbox within tx, to be
// published to topic once tx commits (see messaging.Client.Publish).
// Nothing is written when an error is returned; nothing is sent if tx
// rolls back. It fails with messaging.ErrInvalid or
// messaging.ErrMessageTooLarge for messages Publish would refuse,
// sql.ErrTxDone for a nil or finished transaction, ErrMissingTable when
// the table does not exist, and the database's error otherwise.
func (ob *Outbox) Publish(ctx context.Context, tx *sql.Tx, topic string, msgs ...*messaging.Message) error {
	if err := messaging.ValidateTopic(topic); err != nil {
		return fmt.Errorf("outbox: publish: %w", err)
	}
	return ob.write(ctx, tx, kindTopic, topic, msgs)
}

// Notify writes msgs, in order, into the outbox within tx, to be sent to
// recipient once tx commits (see messaging.Client.Notify). Errors are
// Publish's.
func (ob *Outbox) Notify(ctx context.Context, tx *sql.Tx, recipient string, msgs ...*messaging.Message) error {
	if err := messaging.ValidateRecipient(recipient); err != nil {
		return fmt.Errorf("outbox: notify: %w", err)
	}
	return ob.write(ctx, tx, kindQueue, recipient, msgs)
}

const (
	kindTopic = "topic"
	kindQueue = "queue"
)

// columns of a row as written, in INSERT order.
const insertColumns = "kind, destination, msg_id, msg_key, headers, body, content_type, msg_type, msg_version, msg_time, correlation_id, reply_to"

const nInsertColumns = 12

func (ob *Outbox) write(ctx context.Context, tx *sql.Tx, kind, dest string, msgs []*messaging.Message) error {
	if tx == nil {
		return fmt.Errorf("outbox: nil transaction: %w", sql.ErrTxDone)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(msgs) == 0 {
		return nil
	}
	now := time.Now()
	args := make([]any, 0, len(msgs)*nInsertColumns)
	for _, m := range msgs {
		row, err := ob.encode(m, now)
		if err != nil {
			return fmt.Errorf("outbox: %s to %s: %w", kind, dest, err)
		}
		args = append(args, kind, dest)
		args = append(args, row...)
	}
	if ob.o.keyLock {
		if err := ob.lockKeys(ctx, tx, msgs); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, ob.insertStmt(len(msgs)), args...); err != nil {
		if sqldb.IsMissingTable(err) {
			return fmt.Errorf("%w: %s: %w", ErrMissingTable, ob.table, err)
		}
		return fmt.Errorf("outbox: write to %s: %w", ob.table, err)
	}
	return nil
}

// encode checks m as the client would before sending and returns its
// column values from msg_id on.
func (ob *Outbox) encode(m *messaging.Message, now time.Time) ([]any, error) {
	if m == nil {
		return nil, fmt.Errorf("%w: nil message", messaging.ErrInvalid)
	}
	c := *m // fix the ID and time, without changing the caller's message
	if c.ID == "" {
		c.ID = uuid.NewString()
	}
	if c.Time.IsZero() {
		c.Time = now
	}
	if err := ob.client.Validate(&c); err != nil {
		return nil, err
	}
	if len(c.Key) > MaxKeyLength {
		return nil, fmt.Errorf("%w: message %s: key is %d bytes; the outbox stores at most %d", messaging.ErrInvalid, c.ID, len(c.Key), MaxKeyLength)
	}
	for name, v := range map[string]string{"ID": c.ID, "ContentType": c.ContentType, "Type": c.Type, "Version": c.Version,
		"CorrelationID": c.CorrelationID, "ReplyTo": c.ReplyTo} {
		if !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
			return nil, fmt.Errorf("%w: message %s: %s is not valid UTF-8 without NUL bytes", messaging.ErrInvalid, c.ID, name)
		}
	}
	hs := c.Headers
	if c.DeliverAt.After(now) {
		// A delayed message keeps its due time in the reserved header
		// the relay turns back into DeliverAt (no column for it).
		hs = make(map[string]string, len(c.Headers)+1)
		maps.Copy(hs, c.Headers)
		hs[hdrDeliverAt] = strconv.FormatInt(c.DeliverAt.UnixNano(), 10)
	}
	headers := []byte("{}")
	if len(hs) > 0 {
		var err error
		if headers, err = json.Marshal(hs); err != nil {
			return nil, fmt.Errorf("%w: headers: %w", messaging.ErrInvalid, err)
		}
	}
	body := c.Body
	if body == nil {
		body = []byte{}
	}
	return []any{c.ID, []byte(c.Key), string(headers), body, c.ContentType, c.Type, c.Version,
		c.Time.UnixNano(), c.CorrelationID, c.ReplyTo}, nil
}

func (ob *Outbox) insertStmt(n int) string {
	if n > 64 {
		return ob.buildInsert(n)
	}
	ob.mu.Lock()
	defer ob.mu.Unlock()
	s, ok := ob.insert[n]
	if !ok {
		s = ob.buildInsert(n)
		ob.insert[n] = s
	}
	return s
}

func (ob *Outbox) buildInsert(n int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO ")
	b.WriteString(ob.table)
	b.WriteString(" (" + insertColumns + ") VALUES ")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		b.WriteString(ob.d.Placeholders(1+i*nInsertColumns, nInsertColumns))
		b.WriteByte(')')
	}
	return b.String()
}

// lockKeys locks the rows of msgs' keys in the keys table within tx, in
// sorted order, creating them when missing.
func (ob *Outbox) lockKeys(ctx context.Context, tx *sql.Tx, msgs []*messaging.Message) error {
	var keys []string
	seen := map[string]bool{}
	for _, m := range msgs {
		if m.Key != "" && !seen[m.Key] {
			seen[m.Key] = true
			keys = append(keys, m.Key)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString("INSERT INTO " + ob.table + "_keys (msg_key) VALUES ")
	args := make([]any, len(keys))
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(" + ob.d.P(i+1) + ")")
		args[i] = []byte(k)
	}
	if ob.d == Postgres {
		b.WriteString(" ON CONFLICT (msg_key) DO UPDATE SET msg_key = EXCLUDED.msg_key")
	} else {
		b.WriteString(" ON DUPLICATE KEY UPDATE msg_key = VALUES(msg_key)")
	}
	if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
		if sqldb.IsMissingTable(err) {
			return fmt.Errorf("%w: %s_keys: %w", ErrMissingTable, ob.table, err)
		}
		return fmt.Errorf("outbox: lock keys in %s_keys: %w", ob.table, err)
	}
	return nil
}
