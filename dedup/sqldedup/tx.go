package sqldedup

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/switchboard-go/switchboard/dedup"
	"github.com/switchboard-go/switchboard/messaging"
)

type txKey struct{}

// txState is the transaction of one handler attempt.
type txState struct {
	store *Store
	tx    *sql.Tx
	err   error // a failed Complete: the attempt must not commit
}

// Tx returns the transaction of the handler attempt running with ctx, set
// up by Transactional or Transaction, or nil outside one. Write the
// handler's effects with it (and outbox.Outbox.Publish with it, to send
// messages if and only if the attempt commits). Do not commit or roll it
// back: the middleware does, after recording the message as handled.
func Tx(ctx context.Context) *sql.Tx {
	if st, ok := ctx.Value(txKey{}).(*txState); ok {
		return st.tx
	}
	return nil
}

// Transaction returns middleware that runs each handler attempt in a
// transaction of the store's database (begun with opts, which may be
// nil), reachable with Tx, and in which the store's Begin, Complete and
// Release take part. It commits when the attempt succeeds and rolls back
// when it fails or panics (the panic goes on). A failed commit fails the
// attempt, which is then retried: its effects were rolled back with the
// record. Install it outside dedup.Middleware over s, as Transactional
// does.
func (s *Store) Transaction(opts *sql.TxOptions) messaging.Middleware {
	return func(next messaging.Handler) messaging.Handler {
		return func(ctx context.Context, m *messaging.Message) (err error) {
			tx, err := s.db.BeginTx(ctx, opts)
			if err != nil {
				return fmt.Errorf("sqldedup: begin transaction: %w", err)
			}
			st := &txState{store: s, tx: tx}
			done := false
			defer func() {
				if !done {
					tx.Rollback()
				}
			}()
			if err := next(context.WithValue(ctx, txKey{}, st), m); err != nil {
				return err
			}
			if st.err != nil {
				return st.err
			}
			done = true
			if err := tx.Commit(); err != nil && !errors.Is(err, sql.ErrTxDone) {
				return fmt.Errorf("sqldedup: commit: %w", err)
			} else if errors.Is(err, sql.ErrTxDone) {
				return fmt.Errorf("sqldedup: the handler ended the transaction itself: %w", err)
			}
			return nil
		}
	}
}

// Transactional returns dedup.Middleware over s (with opts) inside
// s.Transaction(nil): each attempt's claim, effects and record commit
// together. See the package documentation.
func (s *Store) Transactional(opts ...dedup.Option) (messaging.Middleware, error) {
	dm, err := dedup.Middleware(s, opts...)
	if err != nil {
		return nil, err
	}
	txm := s.Transaction(nil)
	return func(next messaging.Handler) messaging.Handler { return txm(dm(next)) }, nil
}
