package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchboard-go/switchboard/transport"
)

// TestProducerKeyOrderUnderLoadAndFaults: many goroutines send keyed
// messages one at a time, so that Sends to a partition arrive while its
// produce request is in flight and are batched into the next one, while a
// third of produce requests fail with a retriable error and one in ten
// drops its connection. Every acknowledged message is consumed, and each
// key's messages arrive in the order they were sent: a retried request is
// resent before anything queued behind it.
func TestProducerKeyOrderUnderLoadAndFaults(t *testing.T) {
	c, brokers := faultCluster(t)
	var n atomic.Int64
	c.ControlKey(int16(kmsg.Produce), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		switch k := n.Add(1); {
		case k%10 == 0:
			return nil, errors.New("fault: drop connection"), true
		case k%3 == 0:
			return produceErrorResponse(kr.(*kmsg.ProduceRequest), kerr.NotLeaderForPartition.Code), nil, true
		}
		return nil, nil, false
	})
	tr := openAt(t, brokers)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	to := transport.Topic(unique("porder"))
	sub, err := tr.Subscribe(ctx, to, "g", transport.SubscribeOptions{MaxInFlight: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	const senders, perSender = 12, 40
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for g := range senders {
		wg.Go(func() {
			key := "k" + strconv.Itoa(g)
			for i := range perSender {
				m := &transport.Message{ID: fmt.Sprintf("%s/%d", key, i), Key: key, Body: []byte("x")}
				if err := tr.Send(ctx, to, []*transport.Message{m}); err != nil {
					errs <- fmt.Errorf("send %s: %w", m.ID, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	last := map[string]int{}
	seen := map[string]bool{}
	for len(seen) < senders*perSender {
		ms, err := sub.Receive(ctx, 100)
		if err != nil {
			t.Fatalf("receive (%d of %d seen): %v", len(seen), senders*perSender, err)
		}
		ids := make([]any, len(ms))
		for i, m := range ms {
			ids[i] = m.AckID
			key, num, _ := strings.Cut(m.ID, "/")
			k, _ := strconv.Atoi(num)
			if prev, ok := last[key]; ok && k < prev {
				t.Fatalf("key %s: message %d after %d: reordered", key, k, prev)
			}
			last[key] = k
			seen[m.ID] = true
		}
		if err := sub.Ack(ctx, ids); err != nil {
			t.Fatal(err)
		}
	}
	if n.Load() == 0 {
		t.Fatal("no produce request seen")
	}
}
