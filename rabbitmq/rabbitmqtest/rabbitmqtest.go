// Package rabbitmqtest gives tests a RabbitMQ broker to talk to and cleans
// up after them: URL finds the broker in SWITCHBOARD_AMQP_URL or on
// 127.0.0.1:5672, and DeleteDeclared deletes the queues and exchanges that
// the rabbitmq adapter declared in this process. Only tests should import
// it: importing it turns on the recording of declarations.
package rabbitmqtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchboard-go/switchboard/internal/testenv"
	"github.com/switchboard-go/switchboard/rabbitmq/internal/declared"
)

func init() { declared.Enable() }

// EnvURL is the environment variable naming the broker's amqp:// URL.
const EnvURL = "SWITCHBOARD_AMQP_URL"

// LocalURL is the broker tried when EnvURL is unset.
const LocalURL = "amqp://guest:guest@127.0.0.1:5672/"

var probe struct {
	once sync.Once
	err  error
}

// URL returns the broker's URL: SWITCHBOARD_AMQP_URL, else LocalURL when
// a broker answers the AMQP protocol header there within 3 seconds (a
// wedged broker accepts connections and never answers); else it reports
// the broker missing (testenv.Missing).
func URL(t testing.TB) string {
	t.Helper()
	if u := os.Getenv(EnvURL); u != "" {
		return u
	}
	probe.once.Do(func() { probe.err = answers("127.0.0.1:5672") })
	if probe.err != nil {
		testenv.Missing(t, "rabbitmq", "%s is unset and 127.0.0.1:5672 does not answer: %v", EnvURL, probe.err)
	}
	return LocalURL
}

func answers(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := conn.Write([]byte("AMQP\x00\x00\x09\x01")); err != nil {
		return err
	}
	var b [1]byte
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		return fmt.Errorf("no answer to the AMQP protocol header: %w", err)
	}
	return nil
}

// DeleteDeclared deletes every queue and exchange that a rabbitmq
// Transport of this process declared on the broker and virtual host of
// rawURL, whose name begins with the URL's "prefix" parameter followed by
// prefix.
func DeleteDeclared(ctx context.Context, rawURL, prefix string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("rabbitmqtest: bad URL")
	}
	broker := u.Host + "/" + strings.TrimPrefix(u.Path, "/")
	queues, exchanges := declared.List(broker, u.Query().Get("prefix")+prefix)
	if len(queues)+len(exchanges) == 0 {
		return nil
	}
	dial := *u
	dial.RawQuery = ""
	conn, err := amqp.DialConfig(dial.String(), amqp.Config{Dial: amqp.DefaultDial(10 * time.Second)})
	if err != nil {
		return fmt.Errorf("rabbitmqtest: dial %s: %w", u.Host, err)
	}
	defer conn.Close()
	var ch *amqp.Channel
	var errs []error
	del := func(name string, fn func(ch *amqp.Channel) error) {
		if ctx.Err() != nil {
			return
		}
		if ch == nil || ch.IsClosed() {
			if ch, err = conn.Channel(); err != nil {
				errs = append(errs, err)
				return
			}
		}
		err := fn(ch)
		var ae *amqp.Error
		if err != nil && !(errors.As(err, &ae) && ae.Code == amqp.NotFound) {
			errs = append(errs, fmt.Errorf("rabbitmqtest: delete %s: %w", name, err))
			return
		}
		declared.Forget(broker, name)
	}
	for _, q := range queues {
		del(q, func(ch *amqp.Channel) error { _, err := ch.QueueDelete(q, false, false, false); return err })
	}
	for _, x := range exchanges {
		del(x, func(ch *amqp.Channel) error { return ch.ExchangeDelete(x, false, false) })
	}
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
