package outbox

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-go/switchboard/internal/sqldb"
	"github.com/switchboard-go/switchboard/messaging"
)

// maxLocksPerRound bounds the keys a relay tries to own in one round.
const maxLocksPerRound = 256

// hdrDeliverAt carries a delayed message's Message.DeliverAt (Unix
// nanoseconds) in its row's headers, from Publish or Notify to the relay.
const hdrDeliverAt = "sb-deliver-at"

// rowColumns are the columns a relay reads, in scan order.
const rowColumns = "seq, kind, destination, msg_id, msg_key, headers, body, content_type, msg_type, msg_version, msg_time, correlation_id, reply_to, attempts"

type row struct {
	seq                         int64
	kind, dest, id              string
	key                         []byte
	headers                     string
	body                        []byte
	ct, typ, ver, corr, replyTo string
	nanos                       int64
	attempts                    int
	name                        string // the ownership name: the key, or "#seq" for a row without key
}

func (r *row) message() (*messaging.Message, error) {
	m := &messaging.Message{ID: r.id, Key: string(r.key), Body: r.body, ContentType: r.ct, Type: r.typ,
		Version: r.ver, Time: time.Unix(0, r.nanos), CorrelationID: r.corr, ReplyTo: r.replyTo}
	if r.headers != "" && r.headers != "{}" {
		if err := json.Unmarshal([]byte(r.headers), &m.Headers); err != nil {
			return nil, fmt.Errorf("%w: row %d: headers: %w", messaging.ErrInvalid, r.seq, err)
		}
		if v, ok := m.Headers[hdrDeliverAt]; ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%w: row %d: %s %q: %w", messaging.ErrInvalid, r.seq, hdrDeliverAt, v, err)
			}
			m.DeliverAt = time.Unix(0, n) // the client delays it if still due later
			delete(m.Headers, hdrDeliverAt)
		}
	}
	return m, nil
}

// Relay forwards the outbox's committed rows to the client's transport
// until ctx ends, then returns nil. It returns an error at once when the
// table does not exist (ErrMissingTable) or the database cannot be
// reached; later database and broker errors are logged, recorded and
// retried with backoff. Run it in the service (go ob.Relay(ctx)) or as
// `switchboard outbox relay`; any number of relays may run on one table
// (see the package documentation for order and duplicates). A relay
// holds one connection of the database's pool while it runs (two on
// PostgreSQL, where one LISTENs): size the pool (db.SetMaxOpenConns) for
// them and the service's own transactions.
//
// Metrics, with WithMeterProvider (attribute outbox.table):
// switchboard.outbox.relayed (rows the broker accepted),
// switchboard.outbox.failed (rows moved to the dead table),
// switchboard.outbox.redelivered (rows sent again after a relay crashed
// or failed mid-send), switchboard.outbox.send_errors (transient send
// failures), and the gauges switchboard.outbox.backlog (rows waiting) and
// switchboard.outbox.oldest_age (seconds since the oldest waiting row was
// written), read from the database at each collection.
func (ob *Outbox) Relay(ctx context.Context) error {
	if err := ob.check(ctx); err != nil {
		return err
	}
	r := &relay{ob: ob, wake: make(chan struct{}, 1)}
	done := make(chan struct{})
	if ob.d == Postgres && ob.o.listen {
		go func() {
			defer close(done)
			r.listen(ctx)
		}()
	} else {
		close(done)
	}
	defer func() { <-done }()
	defer r.closeConn(nil)

	backoff := ob.o.minBackoff
	for {
		busy, err := r.round(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			ob.o.logger.Warn("outbox: relay round failed; retrying", "table", ob.table, "backoff", backoff, "error", err)
			if !sleep(ctx, backoff, nil) {
				return nil
			}
			backoff = min(2*backoff, ob.o.maxBackoff)
			continue
		}
		backoff = ob.o.minBackoff
		if busy {
			continue
		}
		if !sleep(ctx, r.idleWait, r.wake) {
			return nil
		}
	}
}

// sleep waits d, or until wake fires, and reports false when ctx ended.
func sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-wake:
		return true
	case <-t.C:
		return true
	}
}

// check verifies that the table exists.
func (ob *Outbox) check(ctx context.Context) error {
	rows, err := ob.db.QueryContext(ctx, "SELECT seq FROM "+ob.table+" WHERE 1=0")
	if err != nil {
		if sqldb.IsMissingTable(err) {
			return fmt.Errorf("%w: %s: %w", ErrMissingTable, ob.table, err)
		}
		return fmt.Errorf("outbox: %s: %w", ob.table, err)
	}
	return rows.Close()
}

// relay is one running Relay.
type relay struct {
	ob       *Outbox
	conn     *sql.Conn // holds the key locks; used for every statement
	wake     chan struct{}
	idleWait time.Duration
}

func (r *relay) closeConn(err error) {
	if r.conn == nil {
		return
	}
	if err != nil {
		// The session may still hold locks: discard it rather than return
		// it to the pool.
		r.conn.Raw(func(any) error { return driver.ErrBadConn })
	}
	r.conn.Close()
	r.conn = nil
}

// round relays at most one batch. busy reports that the relay should go
// on at once (it relayed rows); otherwise it waits for a notification or
// r.idleWait.
func (r *relay) round(ctx context.Context) (busy bool, err error) {
	ob := r.ob
	if r.conn == nil {
		if r.conn, err = ob.db.Conn(ctx); err != nil {
			return false, fmt.Errorf("outbox: connect: %w", err)
		}
	}
	defer func() {
		if err != nil {
			r.closeConn(err)
		}
	}()
	r.idleWait = ob.o.pollInterval

	// 1. The oldest rows, and the ownership names they need.
	cands, err := r.scan(ctx)
	if err != nil || len(cands) == 0 {
		return false, err
	}
	// 2. Own the first names whose rows fill a batch.
	owned, err := r.own(ctx, cands)
	if err != nil {
		return false, err
	}
	if len(owned) == 0 {
		// Every candidate is held by another relay: look again soon.
		r.idleWait = min(ob.o.pollInterval, 20*time.Millisecond)
		return false, nil
	}
	defer func() {
		if uerr := r.unlock(context.WithoutCancel(ctx), owned); uerr != nil && err == nil {
			err = uerr
		}
	}()
	// 3. The owned keys' rows, read again now that they are owned.
	rows, err := r.fetch(ctx, owned)
	if err != nil || len(rows) == 0 {
		return false, err
	}
	// 4. Mark them attempted, so that a relay reading them after a crash
	// knows they may have been sent.
	seqs := make([]int64, len(rows))
	for i := range rows {
		seqs[i] = rows[i].seq
	}
	if err := r.execSeqs(ctx, "UPDATE "+ob.table+" SET attempts = attempts + 1 WHERE seq IN ", seqs); err != nil {
		return false, err
	}
	again, first := 0, int64(0)
	for _, rw := range rows {
		if rw.attempts > 0 {
			if again == 0 {
				first = rw.seq
			}
			again++
			if ob.o.onRedelivery != nil {
				ob.o.onRedelivery(rw.seq, rw.id, rw.attempts)
			}
		}
	}
	if again > 0 {
		ob.m.redelivered(ctx, again)
		ob.o.logger.Warn("outbox: sending rows again that an earlier relay started sending (it crashed or failed): consumers may see them twice",
			"table", ob.table, "rows", again, "first_seq", first)
	}
	// 5. Send, per destination in order of first appearance; delete what
	// the broker accepted.
	sent, sendErr := r.send(ctx, rows)
	if len(sent) > 0 {
		if err := r.execSeqs(context.WithoutCancel(ctx), "DELETE FROM "+ob.table+" WHERE seq IN ", sent); err != nil {
			return false, err
		}
		ob.m.relayed(ctx, len(sent))
	}
	if sendErr != nil {
		return false, sendErr
	}
	return true, nil
}

type candidate struct {
	name string
	rows int
}

func (r *relay) scan(ctx context.Context) ([]candidate, error) {
	ob := r.ob
	q := "SELECT seq, msg_key FROM " + ob.table + " ORDER BY seq LIMIT " + strconv.Itoa(4*ob.o.batch)
	rs, err := r.conn.QueryContext(ctx, q)
	if err != nil {
		if sqldb.IsMissingTable(err) {
			return nil, fmt.Errorf("%w: %s: %w", ErrMissingTable, ob.table, err)
		}
		return nil, fmt.Errorf("outbox: read %s: %w", ob.table, err)
	}
	defer rs.Close()
	idx := map[string]int{}
	var out []candidate
	for rs.Next() {
		var seq int64
		var key []byte
		if err := rs.Scan(&seq, &key); err != nil {
			return nil, fmt.Errorf("outbox: read %s: %w", ob.table, err)
		}
		name := string(key)
		if name == "" {
			name = "#" + strconv.FormatInt(seq, 10)
		} else {
			name = "k" + name
		}
		if i, ok := idx[name]; ok {
			out[i].rows++
			continue
		}
		if len(out) == maxLocksPerRound {
			continue
		}
		idx[name] = len(out)
		out = append(out, candidate{name: name, rows: 1})
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("outbox: read %s: %w", ob.table, err)
	}
	return out, nil
}

// own tries to lock every candidate's name, keeps the first ones owned
// whose rows fill a batch and unlocks the others.
func (r *relay) own(ctx context.Context, cands []candidate) ([]string, error) {
	names := make([]string, len(cands))
	for i, c := range cands {
		names[i] = c.name
	}
	got, err := r.tryLock(ctx, names)
	if err != nil {
		return nil, err
	}
	var owned, extra []string
	n := 0
	for i, c := range cands {
		if !got[i] {
			continue
		}
		if n >= r.ob.o.batch {
			extra = append(extra, c.name)
			continue
		}
		owned = append(owned, c.name)
		n += c.rows
	}
	if len(extra) > 0 {
		if err := r.unlock(ctx, extra); err != nil {
			return nil, err
		}
	}
	return owned, nil
}

// lockArg returns the advisory lock identifier of an ownership name: an
// int64 on PostgreSQL, a string of at most 64 characters on MySQL. Both
// are hashes of the table and the name; a collision only makes two keys
// share one owner.
func (r *relay) lockArg(name string) any {
	return lockID(r.ob.d, r.ob.table, name)
}

func (r *relay) tryLock(ctx context.Context, names []string) ([]bool, error) {
	fn := "pg_try_advisory_lock"
	if r.ob.d == MySQL {
		fn = "GET_LOCK"
	}
	return r.lockCall(ctx, fn, names)
}

func (r *relay) unlock(ctx context.Context, names []string) error {
	fn := "pg_advisory_unlock"
	if r.ob.d == MySQL {
		fn = "RELEASE_LOCK"
	}
	_, err := r.lockCall(ctx, fn, names)
	return err
}

// lockCall runs SELECT fn(id1), fn(id2), ... in one statement and returns
// each result as a boolean.
func (r *relay) lockCall(ctx context.Context, fn string, names []string) ([]bool, error) {
	if len(names) == 0 {
		return nil, nil
	}
	var b strings.Builder
	b.WriteString("SELECT ")
	args := make([]any, len(names))
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(fn)
		b.WriteByte('(')
		b.WriteString(r.ob.d.P(i + 1))
		if r.ob.d == MySQL && fn == "GET_LOCK" {
			b.WriteString(",0")
		}
		b.WriteByte(')')
		args[i] = r.lockArg(n)
	}
	rs, err := r.conn.QueryContext(ctx, b.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("outbox: %s: %w", fn, err)
	}
	defer rs.Close()
	out := make([]bool, len(names))
	if !rs.Next() {
		return nil, fmt.Errorf("outbox: %s: no result: %w", fn, rs.Err())
	}
	ptrs := make([]any, len(names))
	if r.ob.d == Postgres {
		bools := make([]sql.NullBool, len(names))
		for i := range bools {
			ptrs[i] = &bools[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("outbox: %s: %w", fn, err)
		}
		for i := range bools {
			out[i] = bools[i].Valid && bools[i].Bool
		}
	} else {
		vals := make([]sql.NullInt64, len(names))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("outbox: %s: %w", fn, err)
		}
		for i := range vals {
			out[i] = vals[i].Valid && vals[i].Int64 == 1
		}
	}
	return out, rs.Close()
}

// fetch reads the rows of the owned names, oldest first, at most a batch.
func (r *relay) fetch(ctx context.Context, owned []string) ([]row, error) {
	ob := r.ob
	var keys []any
	var seqs []any
	for _, n := range owned {
		if strings.HasPrefix(n, "#") {
			s, _ := strconv.ParseInt(n[1:], 10, 64)
			seqs = append(seqs, s)
		} else {
			keys = append(keys, []byte(n[1:]))
		}
	}
	var where []string
	if len(keys) > 0 {
		where = append(where, "msg_key IN ("+ob.d.Placeholders(1, len(keys))+")")
	}
	if len(seqs) > 0 {
		where = append(where, "seq IN ("+ob.d.Placeholders(1+len(keys), len(seqs))+")")
	}
	q := "SELECT " + rowColumns + " FROM " + ob.table + " WHERE " + strings.Join(where, " OR ") +
		" ORDER BY seq LIMIT " + strconv.Itoa(ob.o.batch)
	rs, err := r.conn.QueryContext(ctx, q, append(keys, seqs...)...)
	if err != nil {
		return nil, fmt.Errorf("outbox: read %s: %w", ob.table, err)
	}
	defer rs.Close()
	var out []row
	for rs.Next() {
		var w row
		if err := rs.Scan(&w.seq, &w.kind, &w.dest, &w.id, &w.key, &w.headers, &w.body, &w.ct, &w.typ, &w.ver,
			&w.nanos, &w.corr, &w.replyTo, &w.attempts); err != nil {
			return nil, fmt.Errorf("outbox: read %s: %w", ob.table, err)
		}
		if len(w.key) == 0 {
			w.name = "#" + strconv.FormatInt(w.seq, 10)
		} else {
			w.name = "k" + string(w.key)
		}
		out = append(out, w)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("outbox: read %s: %w", ob.table, err)
	}
	return out, nil
}

func (r *relay) execSeqs(ctx context.Context, prefix string, seqs []int64) error {
	args := make([]any, len(seqs))
	for i, s := range seqs {
		args[i] = s
	}
	if _, err := r.conn.ExecContext(ctx, prefix+"("+r.ob.d.Placeholders(1, len(seqs))+")", args...); err != nil {
		return fmt.Errorf("outbox: update %s: %w", r.ob.table, err)
	}
	return nil
}

// permanent reports whether a send error cannot be fixed by retrying.
func permanent(err error) bool {
	return errors.Is(err, messaging.ErrMessageTooLarge) || errors.Is(err, messaging.ErrInvalid)
}

type group struct {
	kind, dest string
	rows       []*row
}

// send sends rows grouped by destination, in order, and returns the
// sequence numbers the broker accepted. Rows refused for good are moved to
// the dead table. A transient failure holds back the failing keys' later
// rows and is returned once the other groups were sent.
func (r *relay) send(ctx context.Context, rows []row) (sent []int64, err error) {
	ob := r.ob
	var groups []*group
	gi := map[string]*group{}
	for i := range rows {
		w := &rows[i]
		k := w.kind + "\x00" + w.dest
		g := gi[k]
		if g == nil {
			g = &group{kind: w.kind, dest: w.dest}
			gi[k] = g
			groups = append(groups, g)
		}
		g.rows = append(g.rows, w)
	}
	blocked := map[string]bool{} // keys held back after a transient failure
	var errs []error
	for _, g := range groups {
		var batch []*row
		var msgs []*messaging.Message
		for _, w := range g.rows {
			if blocked[w.name] {
				continue
			}
			m, err := w.message()
			if err == nil {
				err = ob.client.Validate(m)
			}
			if err != nil {
				if derr := r.bury(ctx, w, err); derr != nil {
					return sent, derr
				}
				continue
			}
			batch = append(batch, w)
			msgs = append(msgs, m)
		}
		if len(msgs) == 0 {
			continue
		}
		err := r.deliver(ctx, g, msgs)
		switch {
		case err == nil:
			for _, w := range batch {
				sent = append(sent, w.seq)
			}
		case permanent(err) && ctx.Err() == nil:
			// Find the refused rows: send one at a time, in order.
			for i, w := range batch {
				if blocked[w.name] {
					continue
				}
				e := r.deliver(ctx, g, msgs[i:i+1])
				switch {
				case e == nil:
					sent = append(sent, w.seq)
				case permanent(e) && ctx.Err() == nil:
					if derr := r.bury(ctx, w, e); derr != nil {
						return sent, derr
					}
				default:
					blocked[w.name] = true
					errs = append(errs, r.recordError(ctx, []*row{w}, e))
				}
			}
		default:
			for _, w := range batch {
				blocked[w.name] = true
			}
			errs = append(errs, r.recordError(ctx, batch, err))
		}
	}
	return sent, errors.Join(errs...)
}

func (r *relay) deliver(ctx context.Context, g *group, msgs []*messaging.Message) error {
	ctx, cancel := context.WithTimeout(ctx, r.ob.o.sendTimeout)
	defer cancel()
	if g.kind == kindQueue {
		return r.ob.client.Notify(ctx, g.dest, msgs...)
	}
	return r.ob.client.Publish(ctx, g.dest, msgs...)
}

// recordError stores a transient send error on the rows and returns it.
func (r *relay) recordError(ctx context.Context, rows []*row, err error) error {
	ob := r.ob
	ob.m.sendError(ctx)
	msg := truncate(err.Error(), 2000)
	args := []any{msg}
	for _, w := range rows {
		args = append(args, w.seq)
	}
	q := "UPDATE " + ob.table + " SET last_error = " + ob.d.P(1) + " WHERE seq IN (" + ob.d.Placeholders(2, len(rows)) + ")"
	if _, uerr := r.conn.ExecContext(context.WithoutCancel(ctx), q, args...); uerr != nil {
		ob.o.logger.Warn("outbox: could not record a send error", "table", ob.table, "error", uerr)
	}
	return fmt.Errorf("outbox: send to %s: %w", rows[0].dest, err)
}

// bury moves a row the broker refused for good to the dead table, with
// its error, in one transaction.
func (r *relay) bury(ctx context.Context, w *row, cause error) error {
	ob := r.ob
	ctx = context.WithoutCancel(ctx)
	tx, err := r.conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("outbox: move row %d to %s: %w", w.seq, ob.dead, err)
	}
	defer tx.Rollback()
	cols := "seq, " + insertColumns + ", attempts, created_at"
	q := "INSERT INTO " + ob.dead + " (" + cols + ", error) SELECT " + cols + ", " + ob.d.P(1) + " FROM " + ob.table + " WHERE seq = " + ob.d.P(2)
	if _, err := tx.ExecContext(ctx, q, truncate(cause.Error(), 2000), w.seq); err != nil {
		return fmt.Errorf("outbox: move row %d to %s: %w", w.seq, ob.dead, err)
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM "+ob.table+" WHERE seq = "+ob.d.P(1), w.seq); err != nil {
		return fmt.Errorf("outbox: move row %d to %s: %w", w.seq, ob.dead, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("outbox: move row %d to %s: %w", w.seq, ob.dead, err)
	}
	ob.m.failed(ctx)
	ob.o.logger.Error("outbox: the broker refused a row for good; moved to the dead table", "table", ob.table,
		"dead_table", ob.dead, "seq", w.seq, "id", w.id, "destination", w.dest, "error", cause)
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
