package outbox_test

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/inmem"
	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/outbox"
	"github.com/switchboard-go/switchboard/outbox/outboxtest"
)

// BenchmarkOutbox measures, per database and against a direct Publish on
// the in-memory transport: "throughput", messages relayed per second from
// rows already committed (b.N rows, 100 a transaction) to the handler;
// "latency", the time from a transaction's commit (or the direct
// Publish's call) to the handler, one message at a time, with the relay
// idle in between (PostgreSQL wakes it with LISTEN/NOTIFY; MySQL polls
// every 250ms by default). Run: go test -run '^$' -bench Outbox ./outbox/
func BenchmarkOutbox(b *testing.B) {
	b.Run("direct", func(b *testing.B) {
		b.Run("throughput", func(b *testing.B) { benchThroughput(b, nil) })
		b.Run("latency", func(b *testing.B) { benchLatency(b, nil) })
	})
	for _, name := range []string{"postgres", "mysql"} {
		b.Run(name, func(b *testing.B) {
			db := outboxtest.Open(b, name)
			b.Run("throughput", func(b *testing.B) { benchThroughput(b, db) })
			b.Run("latency", func(b *testing.B) { benchLatency(b, db) })
		})
	}
}

type benchSetup struct {
	c    *messaging.Client
	ob   *outbox.Outbox
	got  chan time.Time
	stop func()
}

func setupBench(b *testing.B, db *outboxtest.DB) *benchSetup {
	ctx := context.Background()
	br, err := inmem.NewBroker()
	if err != nil {
		b.Fatal(err)
	}
	c, err := messaging.New(br.Transport())
	if err != nil {
		b.Fatal(err)
	}
	s := &benchSetup{c: c, got: make(chan time.Time, 1<<16), stop: func() {}}
	b.Cleanup(func() { c.Close() })
	if _, err := c.Subscribe(ctx, "bench", "g", func(context.Context, *messaging.Message) error {
		s.got <- time.Now()
		return nil
	}, messaging.WithMaxInFlight(512)); err != nil {
		b.Fatal(err)
	}
	if db == nil {
		return s
	}
	s.ob, err = outbox.New(db.DB, c, outbox.WithTable(outboxtest.Table(b)))
	if err != nil {
		b.Fatal(err)
	}
	if err := s.ob.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.ob.Drop(context.Background()) })
	return s
}

func (s *benchSetup) startRelay(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.ob.Relay(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
}

func benchThroughput(b *testing.B, db *outboxtest.DB) {
	ctx := context.Background()
	s := setupBench(b, db)
	n := b.N
	msgs := make([]*messaging.Message, 0, 100)
	b.StopTimer()
	for i := 0; i < n; i += 100 {
		msgs = msgs[:0]
		for j := i; j < min(i+100, n); j++ {
			msgs = append(msgs, &messaging.Message{Key: fmt.Sprint("k", j%64), Body: make([]byte, 256)})
		}
		if db == nil {
			continue
		}
		inTx(b, ctx, db.DB, func(tx *sql.Tx) error { return s.ob.Publish(ctx, tx, "bench", msgs...) })
	}
	b.StartTimer()
	start := time.Now()
	if db == nil {
		for i := 0; i < n; i += 100 {
			batch := make([]*messaging.Message, 0, 100)
			for j := i; j < min(i+100, n); j++ {
				batch = append(batch, &messaging.Message{Key: fmt.Sprint("k", j%64), Body: make([]byte, 256)})
			}
			if err := s.c.Publish(ctx, "bench", batch...); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		s.startRelay(b)
	}
	for range n {
		<-s.got
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "msgs/s")
}

func benchLatency(b *testing.B, db *outboxtest.DB) {
	ctx := context.Background()
	s := setupBench(b, db)
	if db != nil {
		s.startRelay(b)
	}
	lat := make([]time.Duration, 0, b.N)
	for range b.N {
		m := &messaging.Message{Key: "k", Body: make([]byte, 256)}
		var start time.Time
		if db == nil {
			start = time.Now()
			if err := s.c.Publish(ctx, "bench", m); err != nil {
				b.Fatal(err)
			}
		} else {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				b.Fatal(err)
			}
			if err := s.ob.Publish(ctx, tx, "bench", m); err != nil {
				b.Fatal(err)
			}
			start = time.Now()
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
		}
		lat = append(lat, (<-s.got).Sub(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
