package rabbitmq

import (
	"bytes"
	"context"
	"net/url"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/dedup"
	"github.com/switchboard-go/switchboard/internal/testenv"
	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/transport"
)

// amqpToolsURL returns the broker URL as rabbitmq-c's tools read it: they
// take "amqp://host/" as the empty vhost; without a path they use "/".
func amqpToolsURL(t *testing.T) string {
	u := brokerURL(t)
	if pu, err := url.Parse(u); err == nil && (pu.Path == "/" || pu.Path == "") {
		pu.Path, pu.RawPath = "", ""
		u = pu.String()
	}
	return u
}

// TestInteropPlainMessagesDedup is issue 12's input 5 (R84): three plain
// messages published with amqp-publish, without message-id as most
// existing services send them, to a queue whose consumer deduplicates with
// dedup.Middleware: all three are handled (none is taken for a duplicate
// of another), each with an empty ID.
func TestInteropPlainMessagesDedup(t *testing.T) {
	pubBin, err := exec.LookPath("amqp-publish")
	if err != nil {
		testenv.Missing(t, "amqp-tools", "amqp-publish not found (apt-get install amqp-tools): %v", err)
	}
	p := uniq(t)
	tr := openT(t, p, "")
	ctx := ctxT(t, 60*time.Second)
	c, err := messaging.New(tr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mw, err := dedup.Middleware(dedup.NewMemoryStore(dedup.MemoryOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	handled := map[string]string{}
	done := make(chan struct{})
	q := p + "plain"
	l, err := c.Listen(ctx, q, func(_ context.Context, m *messaging.Message) error {
		mu.Lock()
		defer mu.Unlock()
		handled[string(m.Body)] = m.ID
		if len(handled) == 3 {
			close(done)
		}
		return nil
	}, messaging.WithMiddleware(mw))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, body := range []string{"one", "two", "three"} {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		out, err := exec.CommandContext(cctx, pubBin, "-u", amqpToolsURL(t), "-r", tr.QueueName(q), "-p", "-b", body).CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("amqp-publish: %v: %s", err, out)
		}
	}
	select {
	case <-done:
	case <-ctx.Done():
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("handled %v of three plain messages: dedup dropped the others", handled)
	}
	for body, id := range handled {
		if id != "" {
			t.Errorf("plain message %q got ID %q; AMQP gives no identity without message-id", body, id)
		}
	}
}

// TestInterop exchanges messages with Debian's amqp-tools (rabbitmq-c):
// amqp-publish → Switchboard, and Switchboard → amqp-consume.
func TestInterop(t *testing.T) {
	pubBin, err1 := exec.LookPath("amqp-publish")
	consBin, err2 := exec.LookPath("amqp-consume")
	if err1 != nil || err2 != nil {
		testenv.Missing(t, "amqp-tools", "amqp-publish/amqp-consume not found (apt-get install amqp-tools): %v %v", err1, err2)
	}
	u := brokerURL(t)
	p := uniq(t)
	tr := openT(t, p, "")
	ctx := ctxT(t, 60*time.Second)
	// rabbitmq-c reads "amqp://host/" as the empty vhost; without a path
	// it uses "/".
	if pu, err := url.Parse(u); err == nil && (pu.Path == "/" || pu.Path == "") {
		pu.Path, pu.RawPath = "", ""
		u = pu.String()
	}
	run := func(t *testing.T, name string, args ...string) []byte {
		t.Helper()
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(cctx, name, args...).Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("%s: %v: %s", name, err, stderr)
		}
		return out
	}

	t.Run("amqp-publish to Switchboard", func(t *testing.T) {
		q := transport.Queue(p + "from-tools")
		s, err := tr.Subscribe(ctx, q, "", transport.SubscribeOptions{MaxInFlight: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		run(t, pubBin, "-u", u, "-r", tr.QueueName(q.Name), "-p", "-C", "text/plain",
			"-t", "reply-here", "-H", "h1: v1", "-H", "sb-attempt: 2", "-b", "hello from rabbitmq-c")
		ms := recvN(t, ctx, s, 1, true)
		m := ms[0]
		if string(m.Body) != "hello from rabbitmq-c" || m.ContentType != "text/plain" || m.ReplyTo != "reply-here" {
			t.Fatalf("got %+v", m)
		}
		if m.Headers["h1"] != "v1" || m.Headers["sb-attempt"] != "2" || len(m.Headers) != 2 {
			t.Fatalf("headers %v", m.Headers)
		}
		if m.DeliveryCount != 1 {
			t.Fatalf("DeliveryCount %d", m.DeliveryCount)
		}
	})

	t.Run("Switchboard to amqp-consume", func(t *testing.T) {
		q := transport.Queue(p + "to-tools")
		if err := tr.Declare(ctx, q); err != nil {
			t.Fatal(err)
		}
		msg := &transport.Message{ID: "m-1", Body: []byte("hello from switchboard\n"), ContentType: "text/plain",
			Headers: map[string]string{"h1": "v1"}, Type: "greeting"}
		if err := tr.Send(ctx, q, []*transport.Message{msg}); err != nil {
			t.Fatal(err)
		}
		out := run(t, consBin, "-u", u, "-q", tr.QueueName(q.Name), "-c", "1", "-p", "1", "cat")
		if !bytes.Equal(out, msg.Body) {
			t.Fatalf("amqp-consume printed %q", out)
		}
	})
}
