package codec_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/switchboard-go/switchboard/codec"
	"github.com/switchboard-go/switchboard/messaging"
)

type orderV2 struct {
	ID    string `json:"id"`
	Cents int    `json:"cents"`
}

func TestRouterUpgradesAndDeadLettersBadMessages(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := messaging.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	r := codec.NewRouter(codec.JSON, codec.Protobuf)
	got := make(chan orderV2, 4)
	codec.Route(r, "order.created", "2", func(ctx context.Context, m *messaging.Message, o orderV2) error {
		got <- o
		return nil
	})
	// v1 carried a price in euros as a float.
	r.Upgrade("order.created", "1", "2", func(m *messaging.Message) error {
		var v1 struct {
			ID    string  `json:"id"`
			Euros float64 `json:"euros"`
		}
		if err := json.Unmarshal(m.Body, &v1); err != nil {
			return err
		}
		m.Body, err = json.Marshal(orderV2{ID: v1.ID, Cents: int(v1.Euros * 100)})
		return err
	})
	names := make(chan *messaging.Message, 4)
	codec.Route(r, "name", "1", func(ctx context.Context, m *messaging.Message, v *wrapperspb.StringValue) error {
		names <- m
		return nil
	})
	dead := make(chan *messaging.DeadLetter, 8)
	if _, err := c.Listen(ctx, messaging.DeadLetterQueue("orders", "g"), func(ctx context.Context, m *messaging.Message) error {
		dl, err := messaging.ParseDeadLetter(m)
		if err != nil {
			return messaging.Permanent(err)
		}
		dead <- dl
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe(ctx, "orders", "g", r.Handler()); err != nil {
		t.Fatal(err)
	}

	v2, _ := codec.Encode(codec.JSON, "order.created", "2", orderV2{ID: "a", Cents: 5})
	v1 := &messaging.Message{Type: "order.created", Version: "1", ContentType: "application/json; charset=utf-8", Body: []byte(`{"id":"b","euros":1.5}`)}
	pb, _ := codec.Encode(codec.Protobuf, "name", "1", wrapperspb.String("alice"))
	for _, m := range []*messaging.Message{v2, v1, pb} {
		m.Key = "k" // one key: handled in order
		if err := c.Publish(ctx, "orders", m); err != nil {
			t.Fatal(err)
		}
	}
	if o := <-got; o != (orderV2{"a", 5}) {
		t.Fatalf("v2: %+v", o)
	}
	if o := <-got; o != (orderV2{"b", 150}) {
		t.Fatalf("upgraded v1: %+v", o)
	}
	<-names

	bad := []*messaging.Message{
		{Type: "order.refunded", Version: "1", Body: []byte(`{}`)},                                  // unknown type
		{Type: "order.created", Version: "7", Body: []byte(`{}`)},                                   // unknown version
		{Type: "order.created", Version: "2", Body: []byte(`{"id":`)},                               // undecodable
		{Type: "order.created", Version: "2", ContentType: "text/csv", Body: []byte("a,b")},         // no codec
		{Type: "order.created", Version: "1", ContentType: "application/json", Body: []byte(`"x"`)}, // upgrade fails
	}
	for _, m := range bad {
		m.Key = "k"
		if err := c.Publish(ctx, "orders", m); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"no route for type", "no upgrade from version", "undecodable", "no codec for content type", "upgrade order.created from v1"}
	for i := range bad {
		dl := <-dead
		if dl.LastAttempt != 1 || !dl.Permanent || !strings.Contains(dl.LastError, want[i]) {
			t.Errorf("dead letter %d: %+v; want reason containing %q", i, dl, want[i])
		}
	}
	if _, err := codec.Encode(codec.Protobuf, "x", "1", "not a proto"); !errors.Is(err, messaging.ErrInvalid) {
		t.Fatalf("Encode of a non-proto: %v", err)
	}
}
