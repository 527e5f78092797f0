package codec_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/switchboard-go/switchboard/codec"
	_ "github.com/switchboard-go/switchboard/inmem" // mem://
	"github.com/switchboard-go/switchboard/messaging"
)

// A Router hands each message type, decoded, to its typed handler, after
// upgrading old versions: here version 1 of order.created (euros as a
// float) is upgraded to version 2 (integer cents) before the handler sees
// it.
func ExampleRouter() {
	ctx := context.Background()
	c, err := messaging.Open(ctx, "mem://")
	if err != nil {
		panic(err)
	}
	defer c.Close()

	type orderV2 struct {
		ID    string `json:"id"`
		Cents int    `json:"cents"`
	}
	got := make(chan string, 2)
	r := codec.NewRouter(codec.JSON)
	r.Upgrade("order.created", "1", "2", func(m *messaging.Message) error {
		var v1 struct {
			ID    string  `json:"id"`
			Euros float64 `json:"euros"`
		}
		if err := json.Unmarshal(m.Body, &v1); err != nil {
			return err
		}
		m.Body, err = json.Marshal(orderV2{ID: v1.ID, Cents: int(v1.Euros*100 + 0.5)})
		return err
	})
	codec.Route(r, "order.created", "2", func(ctx context.Context, m *messaging.Message, o orderV2) error {
		got <- fmt.Sprintf("%s: %d cents (sent as v%s)", o.ID, o.Cents, m.Header("sent-as"))
		return nil
	})
	if _, err := c.Subscribe(ctx, "orders", "billing", r.Handler()); err != nil {
		panic(err)
	}

	old, err := codec.Encode(codec.JSON, "order.created", "1", map[string]any{"id": "a-1", "euros": 2.5})
	if err != nil {
		panic(err)
	}
	old.Key = "a"
	old.SetHeader("sent-as", "1")
	cur, err := codec.Encode(codec.JSON, "order.created", "2", orderV2{ID: "a-2", Cents: 700})
	if err != nil {
		panic(err)
	}
	cur.Key = "a"
	cur.SetHeader("sent-as", "2")
	if err := c.Publish(ctx, "orders", old, cur); err != nil {
		panic(err)
	}
	fmt.Println(<-got)
	fmt.Println(<-got)
	// Output:
	// a-1: 250 cents (sent as v1)
	// a-2: 700 cents (sent as v2)
}
