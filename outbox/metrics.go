package outbox

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// instrumentation names the meter of this package.
const instrumentation = "github.com/switchboard-go/switchboard/outbox"

// metrics holds the outbox's instruments; without a meter provider they
// are nil and cost nothing.
type metrics struct {
	attrs metric.MeasurementOption

	relayedC, failedC, redeliveredC, sendErrorsC metric.Int64Counter
}

func newMetrics(ob *Outbox) (*metrics, error) {
	m := &metrics{attrs: metric.WithAttributes(attribute.String("outbox.table", ob.table))}
	if ob.o.meter == nil {
		return m, nil
	}
	mt := ob.o.meter.Meter(instrumentation)
	var err error
	counter := func(name, unit, desc string) metric.Int64Counter {
		if err != nil {
			return nil
		}
		var c metric.Int64Counter
		c, err = mt.Int64Counter(name, metric.WithDescription(desc), metric.WithUnit(unit))
		return c
	}
	m.relayedC = counter("switchboard.outbox.relayed", "{message}", "Outbox rows the broker accepted and the relay removed.")
	m.failedC = counter("switchboard.outbox.failed", "{message}", "Outbox rows the broker refused for good, moved to the dead table.")
	m.redeliveredC = counter("switchboard.outbox.redelivered", "{message}", "Outbox rows sent again after an earlier relay started sending them (possible duplicates).")
	m.sendErrorsC = counter("switchboard.outbox.send_errors", "{error}", "Transient failures of relay sends, retried.")
	if err != nil {
		return nil, err
	}
	backlog, err := mt.Int64ObservableGauge("switchboard.outbox.backlog", metric.WithUnit("{message}"),
		metric.WithDescription("Outbox rows committed and not yet relayed."))
	if err != nil {
		return nil, err
	}
	age, err := mt.Float64ObservableGauge("switchboard.outbox.oldest_age", metric.WithUnit("s"),
		metric.WithDescription("Age of the oldest outbox row not yet relayed; 0 when there is none."))
	if err != nil {
		return nil, err
	}
	_, err = mt.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		n, oldest, err := ob.Backlog(ctx)
		if err != nil {
			return err
		}
		o.ObserveInt64(backlog, int64(n), m.attrs)
		o.ObserveFloat64(age, oldest.Seconds(), m.attrs)
		return nil
	}, backlog, age)
	return m, err
}

func (m *metrics) relayed(ctx context.Context, n int) {
	if m.relayedC != nil {
		m.relayedC.Add(ctx, int64(n), m.attrs)
	}
}

func (m *metrics) failed(ctx context.Context) {
	if m.failedC != nil {
		m.failedC.Add(ctx, 1, m.attrs)
	}
}

func (m *metrics) redelivered(ctx context.Context, n int) {
	if m.redeliveredC != nil {
		m.redeliveredC.Add(ctx, int64(n), m.attrs)
	}
}

func (m *metrics) sendError(ctx context.Context) {
	if m.sendErrorsC != nil {
		m.sendErrorsC.Add(ctx, 1, m.attrs)
	}
}

// Backlog returns how many rows wait in the outbox and the age of the
// oldest (0 when none), by the database's clock.
func (ob *Outbox) Backlog(ctx context.Context) (rows int, oldest time.Duration, err error) {
	q := "SELECT COUNT(*), COALESCE(EXTRACT(EPOCH FROM (now() - MIN(created_at))), 0) FROM " + ob.table
	if ob.d == MySQL {
		q = "SELECT COUNT(*), COALESCE(TIMESTAMPDIFF(MICROSECOND, MIN(created_at), NOW(6)) / 1000000, 0) FROM " + ob.table
	}
	var secs sql.NullFloat64
	if err := ob.db.QueryRowContext(ctx, q).Scan(&rows, &secs); err != nil {
		return 0, 0, fmt.Errorf("outbox: backlog of %s: %w", ob.table, err)
	}
	return rows, time.Duration(max(secs.Float64, 0) * float64(time.Second)), nil
}

// DeadRow is a row the broker refused for good, as kept in the dead table.
type DeadRow struct {
	Seq         int64  // the row's sequence number in the outbox
	Kind        string // "topic" (Publish) or "queue" (Notify)
	Destination string // topic or recipient
	ID          string // message ID
	Key         string // message key
	Error       string // the broker's error
}

// Dead returns the rows of the dead table, oldest first, at most limit.
func (ob *Outbox) Dead(ctx context.Context, limit int) ([]DeadRow, error) {
	rs, err := ob.db.QueryContext(ctx, fmt.Sprintf("SELECT seq, kind, destination, msg_id, msg_key, error FROM %s ORDER BY seq LIMIT %d", ob.dead, max(limit, 0)))
	if err != nil {
		return nil, fmt.Errorf("outbox: read %s: %w", ob.dead, err)
	}
	defer rs.Close()
	var out []DeadRow
	for rs.Next() {
		var d DeadRow
		var key []byte
		if err := rs.Scan(&d.Seq, &d.Kind, &d.Destination, &d.ID, &key, &d.Error); err != nil {
			return nil, fmt.Errorf("outbox: read %s: %w", ob.dead, err)
		}
		d.Key = string(key)
		out = append(out, d)
	}
	return out, rs.Err()
}
