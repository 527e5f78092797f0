package outbox

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// errNotPgx is returned when the database's driver is not pgx: the relay
// then polls.
var errNotPgx = errors.New("outbox: LISTEN needs the pgx driver (github.com/jackc/pgx/v5/stdlib)")

// listen LISTENs on the table's channel on a connection of its own and
// wakes the relay on every notification, until ctx ends. When it cannot
// (another driver, a lost connection) the relay polls; a lost connection
// is reopened after the relay's backoff.
func (r *relay) listen(ctx context.Context) {
	ob := r.ob
	backoff := ob.o.minBackoff
	for ctx.Err() == nil {
		err := r.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errNotPgx) {
			ob.o.logger.Info("outbox: polling only", "table", ob.table, "reason", err)
			return
		}
		ob.o.logger.Warn("outbox: LISTEN failed; polling until it is back", "table", ob.table, "error", err)
		if !sleep(ctx, backoff, nil) {
			return
		}
		backoff = min(2*backoff, ob.o.maxBackoff)
	}
}

func (r *relay) listenOnce(ctx context.Context) error {
	conn, err := r.ob.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	// The connection is discarded afterwards (driver.ErrBadConn): it may
	// still be listening, and a cancelled wait leaves it unusable.
	var werr error
	conn.Raw(func(dc any) error {
		pc, ok := dc.(interface{ Conn() *pgx.Conn })
		if !ok {
			werr = errNotPgx
			return driver.ErrBadConn
		}
		c := pc.Conn()
		if _, err := c.Exec(ctx, "LISTEN "+r.ob.table); err != nil {
			werr = fmt.Errorf("LISTEN %s: %w", r.ob.table, err)
			return driver.ErrBadConn
		}
		r.notify() // rows committed before LISTEN took effect
		for {
			if _, err := c.WaitForNotification(ctx); err != nil {
				werr = err
				return driver.ErrBadConn
			}
			r.notify()
		}
	})
	return werr
}

func (r *relay) notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}
