package rabbitmq

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/internal/testenv"
	"github.com/switchboard-go/switchboard/transport"
)

func rabbitmqctl(t testing.TB, args ...string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "rabbitmqctl", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("rabbitmqctl %v: %v: %s", args, err, out)
	}
	return nil
}

// TestBrokerRestart publishes and consumes 10,000 messages while the
// broker application is stopped and started twice. Every confirmed
// message must be consumed at least once; the publisher and the consumer
// must resume by themselves. It restarts the broker, so it runs only with
// SWITCHBOARD_RABBITMQ_RESTART=1.
func TestBrokerRestart(t *testing.T) {
	if os.Getenv("SWITCHBOARD_RABBITMQ_RESTART") != "1" {
		t.Skip("restarts the broker: set SWITCHBOARD_RABBITMQ_RESTART=1 to run")
	}
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		testenv.Missing(t, "rabbitmq", "rabbitmqctl not found: %v", err)
	}
	brokerURL(t)
	t.Cleanup(func() {
		if err := rabbitmqctl(t, "start_app"); err != nil {
			t.Errorf("leaving the broker running: %v", err)
		}
		_ = rabbitmqctl(t, "await_startup")
	})
	p := uniq(t)
	pubT := openT(t, p, "reconnect_max=1s")
	subT := openT(t, "", "reconnect_max=1s")
	ctx := ctxT(t, 5*time.Minute)
	q := transport.Queue(p + "work")
	if err := pubT.Declare(ctx, q); err != nil {
		t.Fatal(err)
	}
	sub, err := subT.Subscribe(ctx, q, "", transport.SubscribeOptions{MaxInFlight: 200})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	// Request/reply through an inbox opened before the restarts.
	rpcQ := transport.Queue(p + "svc.rpc")
	responder, err := subT.Subscribe(ctx, rpcQ, "", transport.SubscribeOptions{MaxInFlight: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer responder.Close()
	respCtx, stopResp := context.WithCancel(ctx)
	defer stopResp()
	var respWG sync.WaitGroup
	respWG.Add(1)
	go func() {
		defer respWG.Done()
		for {
			ms, err := responder.Receive(respCtx, 10)
			if err != nil {
				return
			}
			for _, m := range ms {
				_ = subT.Send(respCtx, transport.Reply(m.ReplyTo), []*transport.Message{{ID: "re-" + m.ID, CorrelationID: m.ID}})
				_ = responder.Ack(respCtx, []any{m.AckID})
			}
		}
	}()
	defer respWG.Wait()
	defer stopResp()
	ib, err := pubT.OpenInbox(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ib.Close()
	request := func(id string) {
		t.Helper()
		// The request may be lost while the broker is coming back: ask
		// again, as package messaging would after its timeout.
		for attempt := 0; attempt < 20; attempt++ {
			if err := pubT.Send(ctx, rpcQ, []*transport.Message{{ID: id, ReplyTo: ib.Address()}}); err != nil {
				t.Fatalf("request %s: %v", id, err)
			}
			rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			rs, err := ib.Receive(rctx)
			cancel()
			if err == nil {
				for _, r := range rs {
					if r.CorrelationID == id {
						return
					}
				}
			}
		}
		t.Fatalf("no reply to %s", id)
	}
	request("before")

	const total, batch = 10000, 20
	var (
		mu         sync.Mutex
		confirmed  = make(map[int]bool, total)
		seen       = make(map[int]int, total)
		deliveries int
		nConfirmed atomic.Int64
		sendErrs   atomic.Int64
	)
	allSeen := make(chan struct{})
	pubDone := make(chan struct{})
	consCtx, stopCons := context.WithCancel(ctx)
	defer stopCons()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // publisher
		defer wg.Done()
		defer close(pubDone)
		// Paced (about 2,000 messages a second) so that both restarts
		// happen while messages are in flight.
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < total; i += batch {
			<-tick.C
			msgs := make([]*transport.Message, 0, batch)
			for j := i; j < i+batch; j++ {
				msgs = append(msgs, &transport.Message{ID: strconv.Itoa(j), Body: []byte("payload")})
			}
			for {
				sctx, cancel := context.WithTimeout(ctx, 90*time.Second)
				err := pubT.Send(sctx, q, msgs)
				cancel()
				if err == nil {
					break
				}
				// Send waits through reconnects; an error here means it gave up.
				sendErrs.Add(1)
				t.Logf("send %d..%d: %v (sending again)", i, i+batch-1, err)
				if ctx.Err() != nil {
					return
				}
			}
			mu.Lock()
			for j := i; j < i+batch; j++ {
				confirmed[j] = true
			}
			mu.Unlock()
			nConfirmed.Add(batch)
		}
	}()
	go func() { // consumer
		defer wg.Done()
		closed := false
		for {
			ms, err := sub.Receive(consCtx, 100)
			if err != nil {
				return
			}
			ids := make([]any, len(ms))
			mu.Lock()
			for k, m := range ms {
				ids[k] = m.AckID
				n, _ := strconv.Atoi(m.ID)
				seen[n]++
				deliveries++
			}
			if !closed && len(seen) == total {
				closed = true
				close(allSeen)
			}
			mu.Unlock()
			_ = sub.Ack(consCtx, ids)
		}
	}()
	waitFor := func(n int64) {
		for nConfirmed.Load() < n {
			select {
			case <-pubDone:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	for round, at := range []int64{2000, 6000} {
		waitFor(at)
		t.Logf("restart %d: stop_app at %d confirmed", round+1, nConfirmed.Load())
		if err := rabbitmqctl(t, "stop_app"); err != nil {
			t.Fatal(err)
		}
		if err := rabbitmqctl(t, "start_app"); err != nil {
			t.Fatal(err)
		}
		t.Logf("restart %d: broker back", round+1)
	}
	<-pubDone
	select {
	case <-allSeen:
	case <-time.After(2 * time.Minute):
	}
	stopCons()
	wg.Wait()
	request("after")
	t.Logf("request/reply through an inbox opened before the restarts: ok")
	mu.Lock()
	defer mu.Unlock()
	lost := 0
	for id := range confirmed {
		if seen[id] == 0 {
			lost++
		}
	}
	dups := deliveries - len(seen)
	t.Logf("confirmed %d, consumed %d distinct in %d deliveries: %d duplicates, %d lost, %d failed Send calls",
		len(confirmed), len(seen), deliveries, dups, lost, sendErrs.Load())
	if len(confirmed) != total {
		t.Errorf("only %d of %d messages confirmed", len(confirmed), total)
	}
	if n := sendErrs.Load(); n != 0 {
		t.Errorf("%d Send calls failed: the publisher should have waited through the restarts", n)
	}
	if lost != 0 {
		t.Errorf("%d confirmed messages lost", lost)
	}
}
