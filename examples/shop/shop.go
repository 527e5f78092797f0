package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
)

// Order is what the shop sells: one item, shipped to a city.
type Order struct {
	ID       string `json:"id"`
	Customer string `json:"customer"`
	Item     string `json:"item"`
	Cents    int    `json:"cents"`
	City     string `json:"city"`
}

// Shop runs the shop's services on one client and places orders through
// them, reporting each pattern's outcome to out.
type Shop struct {
	c   *messaging.Client
	out io.Writer

	mu       sync.Mutex
	stock    map[string]int
	events   chan string // what the pub/sub subscribers and the mailer saw
	services []*messaging.Subscription
}

// StartServices starts every service of the shop: inventory (request/
// reply), payments (async request), three carriers (scatter-gather),
// billing and analytics (pub/sub groups) and the mailer (notifications).
func StartServices(ctx context.Context, c *messaging.Client, out io.Writer) (*Shop, error) {
	s := &Shop{c: c, out: out, stock: map[string]int{"book": 2, "pen": 0}, events: make(chan string, 16)}
	start := func(sub *messaging.Subscription, err error) error {
		if err == nil {
			s.services = append(s.services, sub)
		}
		return err
	}
	if err := start(c.Serve(ctx, "inventory", s.reserve)); err != nil {
		return nil, err
	}
	if err := start(c.Serve(ctx, "payments", s.charge)); err != nil {
		return nil, err
	}
	for _, carrier := range []struct {
		name  string
		cents int
	}{{"dhl", 990}, {"ups", 750}, {"fedex", 1200}} {
		carrier := carrier
		err := start(c.Respond(ctx, "shipping-quotes", carrier.name, func(ctx context.Context, req *messaging.Message) (*messaging.Message, error) {
			return &messaging.Message{Body: []byte(carrier.name + ":" + strconv.Itoa(carrier.cents))}, nil
		}))
		if err != nil {
			return nil, err
		}
	}
	for _, group := range []string{"billing", "analytics"} {
		group := group
		err := start(c.Subscribe(ctx, "orders", group, func(ctx context.Context, m *messaging.Message) error {
			var o Order
			if err := json.Unmarshal(m.Body, &o); err != nil {
				return messaging.Permanent(err) // undecodable: dead-letter it, don't retry
			}
			s.events <- fmt.Sprintf("%s saw %s %s", group, m.Type, o.ID)
			return nil
		}))
		if err != nil {
			return nil, err
		}
	}
	err := start(c.Listen(ctx, "mailer", func(ctx context.Context, m *messaging.Message) error {
		s.events <- "mailer sent: " + string(m.Body)
		return nil
	}))
	if err != nil {
		return nil, err
	}
	return s, nil
}

// reserve takes one item from stock, or fails with code out_of_stock.
func (s *Shop) reserve(ctx context.Context, req *messaging.Message) (*messaging.Message, error) {
	item := string(req.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stock[item] == 0 {
		return nil, messaging.WithCode(fmt.Errorf("%s is out of stock", item), "out_of_stock")
	}
	s.stock[item]--
	return &messaging.Message{Body: []byte(strconv.Itoa(s.stock[item]))}, nil
}

// charge pretends to charge a card.
func (s *Shop) charge(ctx context.Context, req *messaging.Message) (*messaging.Message, error) {
	return &messaging.Message{Body: []byte("paid " + string(req.Body) + " cents")}, nil
}

// PlaceOrder runs one order through all five patterns.
func (s *Shop) PlaceOrder(ctx context.Context, o Order) error {
	c := s.c
	fmt.Fprintf(s.out, "order %s: %s for %s, shipped to %s\n", o.ID, o.Item, o.Customer, o.City)

	// 1. Request with synchronous response.
	reply, err := c.Request(ctx, "inventory", &messaging.Message{Body: []byte(o.Item)})
	var remote *messaging.RemoteError
	if errors.As(err, &remote) {
		fmt.Fprintf(s.out, "  request/reply     inventory refused: [%s] %s\n", remote.Code, remote.Message)
		return nil
	}
	if err != nil {
		return fmt.Errorf("inventory: %w", err)
	}
	fmt.Fprintf(s.out, "  request/reply     inventory reserved one %s, %s left\n", o.Item, reply.Body)

	// 2. Request with asynchronous response: charge while we get quotes.
	payment, err := c.RequestAsync(ctx, "payments", &messaging.Message{Key: o.Customer, Body: []byte(strconv.Itoa(o.Cents))})
	if err != nil {
		return fmt.Errorf("payments: %w", err)
	}

	// 3. Publish with asynchronous responses: scatter-gather quotes.
	quotes, err := c.Gather(ctx, "shipping-quotes", &messaging.Message{Body: []byte(o.City)},
		messaging.WantReplies(3), messaging.GatherTimeout(5*time.Second))
	if err != nil && quotes == nil {
		return fmt.Errorf("shipping quotes: %w", err)
	}
	var offers []string
	for _, r := range quotes.Replies {
		offers = append(offers, string(r.Body))
	}
	sort.Slice(offers, func(i, j int) bool { return cents(offers[i]) < cents(offers[j]) })
	fmt.Fprintf(s.out, "  scatter-gather    %d carriers quoted %v; cheapest %s\n", quotes.Count(), offers, offers[0])

	paid, err := payment.Wait(ctx)
	if err != nil {
		return fmt.Errorf("payment: %w", err)
	}
	fmt.Fprintf(s.out, "  async request     payments replied %q\n", paid.Body)

	// 4. Publish/subscribe: every group hears about the order.
	body, _ := json.Marshal(o)
	err = c.Publish(ctx, "orders", &messaging.Message{Key: o.ID, Type: "order.created", Version: "1",
		ContentType: "application/json", Body: body})
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	// 5. Notification: fire-and-forget to the mailer.
	if err := c.Notify(ctx, "mailer", &messaging.Message{Body: []byte("order " + o.ID + " confirmed for " + o.Customer)}); err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	var seen []string
	for len(seen) < 3 {
		select {
		case e := <-s.events:
			seen = append(seen, e)
		case <-ctx.Done():
			return fmt.Errorf("waiting for subscribers: %w", ctx.Err())
		}
	}
	sort.Strings(seen)
	fmt.Fprintf(s.out, "  publish/subscribe %s; %s\n", seen[1], seen[0])
	fmt.Fprintf(s.out, "  notification      %s\n", seen[2])
	return nil
}

func cents(offer string) int {
	for i := len(offer) - 1; i >= 0; i-- {
		if offer[i] == ':' {
			n, _ := strconv.Atoi(offer[i+1:])
			return n
		}
	}
	return 0
}

// Run starts the services and places two orders: one that succeeds and
// one refused for lack of stock.
func Run(ctx context.Context, c *messaging.Client, out io.Writer) error {
	s, err := StartServices(ctx, c, out)
	if err != nil {
		return err
	}
	if err := s.PlaceOrder(ctx, Order{ID: "o-1", Customer: "alice", Item: "book", Cents: 1999, City: "Paris"}); err != nil {
		return err
	}
	return s.PlaceOrder(ctx, Order{ID: "o-2", Customer: "bob", Item: "pen", Cents: 199, City: "Lyon"})
}
