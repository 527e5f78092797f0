package harness

import (
	"context"
	"fmt"
	"io"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-go/switchboard/inmem"
	"github.com/switchboard-go/switchboard/messaging"
)

// scaleTables lists the scale table's parts in report order.
var scaleTables = []scaleTableDef{
	{
		name: "keys", title: "Distinct keys in flight",
		intro: "n messages published in calls of 100 and consumed by one subscription with key ordering on (the default) and `WithMaxInFlight(256)`; " +
			"message i has key i mod keys (n = 1,000,000 in memory, 10,000 on Kafka, 5,000 on RabbitMQ, 2,000 on SQS; brokers: 1, 1,000 and n keys). " +
			"Peak live heap: the largest heap after a collection during the run (in memory it includes the broker's queue); " +
			"retained: live heap after the run less before it, both after `runtime.GC()` — the per-key state left behind.",
		param: func(n int) string { return thousands(n) },
		run:   keysRows,
		cols: []scaleCol{
			{header: "msgs/s", value: metric("msgs/s")},
			{header: "÷ 1,000 keys", format: "%.2f×", value: relTo("msgs/s", 1000)},
			{header: "peak live heap, MiB", format: "%.1f", value: mibOf("peak live heap")},
			{header: "retained, MiB", format: "%.2f", value: mibOf("retained")},
		},
	},
	{
		name: "subscriptions", title: "Subscriptions in one process",
		intro: "One client with s subscriptions, each on its own topic (group g, default options). " +
			"Idle: goroutines and memory (live heap + goroutine stacks, after `runtime.GC()`) per subscription, " +
			"just subscribed and again 2.5 s after the busy run (messaging stops a worker after 1 s without work). Busy: n messages published round-robin over the topics " +
			"(100 per call) and consumed (n = 100,000 in memory, 5,000 on Kafka and RabbitMQ, 2,000 on SQS); s = 1, 100, 1,000 in memory, 1 and 100 on Kafka and SQS, 1 and 10 on RabbitMQ (each RabbitMQ group is 5 quorum queues). " +
			"In memory the broker is in the process, so its queues count too.",
		param: func(n int) string { return thousands(n) },
		run:   subsRows,
		cols: []scaleCol{
			{header: "goroutines / sub, idle", format: "%.1f", value: metric("goroutines/sub")},
			{header: "KiB / sub, idle", format: "%.1f", value: kibOf("bytes/sub")},
			{header: "goroutines / sub, idle after busy", format: "%.1f", value: metric("goroutines/sub after")},
			{header: "KiB / sub, idle after busy", format: "%.1f", value: kibOf("bytes/sub after")},
			{header: "busy msgs/s", value: metric("msgs/s")},
			{header: "÷ 1 sub", format: "%.2f×", value: relTo("msgs/s", 1)},
		},
	},
	{
		name: "body", title: "Body size",
		intro: "The comparison's pubsub case (publish in calls of 100 → one consumer, key ordering off, 256 in flight) with bodies of each size, " +
			"Switchboard and the raw client back to back (the raw client as in the tables above; in memory the bare transport). " +
			"the largest size is 1000 KiB, the most the inmem and Kafka adapters accept with the headers (SQS takes 256 KiB). n = 256 MiB ÷ size in memory (at most 50,000), 32 MiB ÷ size on brokers (at most 5,000 on Kafka/RabbitMQ, 2,000 on SQS), at least 10.",
		param: sizeName,
		run:   bodyRows,
		cols: []scaleCol{
			{header: "switchboard MB/s", format: "%.1f", value: metric("sb MB/s")},
			{header: "raw MB/s", format: "%.1f", value: metric("raw MB/s")},
			{header: "sb / raw", format: "%.2f×", value: over("sb MB/s", "raw MB/s")},
			{header: "sb msgs/s", value: metric("sb msgs/s")},
		},
	},
	{
		name: "members", title: "Members per consumer group",
		intro: "m members of one group (each its own client, as separate processes would be; in memory on one broker), " +
			"keyed messages (256 keys), key ordering on, `WithMaxInFlight(4)` per member, a handler that works 2 ms (sleeping, so that members overlap on 2 cores): " +
			"one member handles at most ~2,000 msgs/s. Before the measured run, messages are published until every member that can get work has handled one " +
			"(Kafka: at most 3, the partitions; others: every member). n = 10,000 in memory, 5,000 on Kafka and RabbitMQ, 2,000 on SQS.",
		param: func(n int) string { return fmt.Sprint(n) },
		run:   membersRows,
		cols: []scaleCol{
			{header: "msgs/s", value: metric("msgs/s")},
			{header: "÷ 1 member", format: "%.2f×", value: relTo("msgs/s", 1)},
			{header: "members that handled messages", format: "%.0f", value: metric("active")},
		},
	},
}

func mibOf(name string) func(ScaleRow, []ScaleRow) (float64, bool) {
	return func(r ScaleRow, _ []ScaleRow) (float64, bool) { v, ok := r.M[name]; return v / (1 << 20), ok }
}

func kibOf(name string) func(ScaleRow, []ScaleRow) (float64, bool) {
	return func(r ScaleRow, _ []ScaleRow) (float64, bool) { v, ok := r.M[name]; return v / (1 << 10), ok }
}

func sortedKeys(m map[string]float64) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// scaleDivisor divides every message count and key count of the scale
// table (at least 10 remain); the smoke test sets it.
var scaleDivisor = 1

func scaled(n int) int { return max(n/scaleDivisor, 10) }

// brokerN is the message count of a row on each broker.
func brokerN(tr string, kafka, rabbit, sqs int) int {
	switch tr {
	case "kafka":
		return kafka
	case "sqs":
		return sqs
	}
	return rabbit
}

// client opens a Switchboard client of tr; done closes it and deletes the
// broker objects of the names given.
func scaleClient(ctx context.Context, tr string, ep Endpoints) (*messaging.Client, func(names ...string), error) {
	open, err := sbOpener(tr, ep)
	if err != nil {
		return nil, nil, err
	}
	c, cleanup, err := open(ctx)
	if err != nil {
		return nil, nil, err
	}
	return c, func(names ...string) {
		c.Close()
		for _, n := range names {
			_ = cleanup(n)
		}
	}, nil
}

// peakHeap samples the live heap (as of the last collection) every 10ms
// until stopped, and returns the largest.
func peakHeap() (stop func() uint64) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 { close(done); wg.Wait(); return peak.Load() }
}

// publishKeyed publishes n messages to topic in calls of Batch, message i
// with key keyOf(i) (none if nil).
func publishKeyed(ctx context.Context, c *messaging.Client, topicOf func(call int) string, n int, keyOf func(i int) string) error {
	msgs := make([]*messaging.Message, Batch)
	for i := range msgs {
		msgs[i] = &messaging.Message{Body: body}
	}
	for i, call := 0, 0; i < n; call++ {
		k := min(Batch, n-i)
		for j := range msgs[:k] {
			if keyOf != nil {
				msgs[j].Key = keyOf(i + j)
			}
		}
		if err := c.Publish(ctx, topicOf(call), msgs[:k]...); err != nil {
			return err
		}
		i += k
	}
	return nil
}

func keysRows(ctx context.Context, tr string, ep Endpoints, _ io.Writer) []ScaleRow {
	n := scaled(perTransport(tr, 1_000_000, brokerN(tr, 10_000, 5_000, 2_000)))
	keys := []int{1, 1000, 100_000, 1_000_000}
	if tr != "inmem" || scaleDivisor > 1 {
		keys = []int{1, 1000, n}
	}
	var rows []ScaleRow
	for _, k := range keys {
		r := ScaleRow{Table: "keys", Transport: tr, Param: k}
		r.M, r.Err = keysRow(ctx, tr, ep, n, k)
		rows = append(rows, r)
	}
	return rows
}

func keysRow(ctx context.Context, tr string, ep Endpoints, n, keys int) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, rowTimeout)
	defer cancel()
	c, done, err := scaleClient(ctx, tr, ep)
	if err != nil {
		return nil, err
	}
	topic := uniq(prefix + "keys")
	defer done(topic)
	cnt := newCounter()
	if _, err := c.Subscribe(ctx, topic, "g", func(context.Context, *messaging.Message) error {
		cnt.hit()
		return nil
	}, messaging.WithMaxInFlight(Prefetch)); err != nil {
		return nil, err
	}
	to := func(int) string { return topic }
	run := func(n, offset int) (time.Duration, error) {
		doneCh := cnt.arm(n)
		start := time.Now()
		if err := publishKeyed(ctx, c, to, n, func(i int) string { return "k" + strconv.Itoa((offset+i)%keys) }); err != nil {
			return 0, err
		}
		err := waitDone(ctx, doneCh, cnt)
		return time.Since(start), err
	}
	if _, err := run(max(n/100, min(n, 1000)), 0); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	before := measureMem()
	stop := peakHeap()
	el, err := run(n, 0)
	peak := stop()
	if err != nil {
		return nil, err
	}
	after := measureMem()
	return map[string]float64{
		"msgs/s":         float64(n) / el.Seconds(),
		"peak live heap": float64(peak),
		"retained":       float64(after.Heap) - float64(before.Heap),
	}, nil
}

func subsRows(ctx context.Context, tr string, ep Endpoints, _ io.Writer) []ScaleRow {
	counts := []int{1, 100, 1000}
	switch tr {
	case "inmem":
	case "rabbitmq":
		// A RabbitMQ group is GroupPartitions quorum queues and a members
		// queue: 100 subscriptions would declare ~500 quorum queues on
		// the shared broker (one such run coincided with it wedging).
		counts = []int{1, 10}
	default:
		counts = []int{1, 100}
	}
	n := scaled(perTransport(tr, 100_000, brokerN(tr, 5_000, 5_000, 2_000)))
	var rows []ScaleRow
	for _, s := range counts {
		r := ScaleRow{Table: "subscriptions", Transport: tr, Param: s}
		r.M, r.Err = subsRow(ctx, tr, ep, n, s)
		rows = append(rows, r)
	}
	return rows
}

func subsRow(ctx context.Context, tr string, ep Endpoints, n, subs int) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, rowTimeout)
	defer cancel()
	c, done, err := scaleClient(ctx, tr, ep)
	if err != nil {
		return nil, err
	}
	base := uniq(prefix + "subs")
	topics := make([]string, subs)
	for i := range topics {
		topics[i] = base + "-" + strconv.Itoa(i)
	}
	defer done(topics...)
	cnt := newCounter()
	h := func(context.Context, *messaging.Message) error { cnt.hit(); return nil }
	before := measureMem()
	for _, t := range topics {
		if _, err := c.Subscribe(ctx, t, "g", h); err != nil {
			return nil, err
		}
	}
	idle := measureMem()
	per := func(a, b memNow) (goroutines, bytes float64) {
		return float64(b.Goroutines-a.Goroutines) / float64(subs),
			(float64(b.Heap+b.Stacks) - float64(a.Heap+a.Stacks)) / float64(subs)
	}
	run := func(n int) (time.Duration, error) {
		doneCh := cnt.arm(n)
		start := time.Now()
		if err := publishKeyed(ctx, c, func(call int) string { return topics[call%subs] }, n, nil); err != nil {
			return 0, err
		}
		err := waitDone(ctx, doneCh, cnt)
		return time.Since(start), err
	}
	if _, err := run(max(n/10, subs*Batch/10)); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	el, err := run(n)
	if err != nil {
		return nil, err
	}
	// Idle again: messaging stops a worker after 1s without work.
	time.Sleep(idleSettle)
	after := measureMem()
	g0, b0 := per(before, idle)
	g1, b1 := per(before, after)
	return map[string]float64{
		"goroutines/sub": g0, "bytes/sub": b0,
		"goroutines/sub after": g1, "bytes/sub after": b1,
		"msgs/s": float64(n) / el.Seconds(),
	}, nil
}

// bodySizes are the body table's sizes: 16 B, 1 KiB, 64 KiB and 1000 KiB
// (1 MiB less room for the CloudEvents attributes and headers: the inmem
// transport caps a whole message at 1 MiB, the Kafka adapter at 1,032,204
// bytes, kafka-go's default batch size less its framing; SQS at 256 KiB,
// so the last row is n/a there).
var bodySizes = []int{16, 1 << 10, 64 << 10, 1000 << 10}

func bodyRows(ctx context.Context, tr string, ep Endpoints, _ io.Writer) []ScaleRow {
	var rows []ScaleRow
	for _, size := range bodySizes {
		budget := perTransport(tr, 256<<20, 32<<20)
		limit := perTransport(tr, 50_000, brokerN(tr, 5000, 5000, 2000))
		n := scaled(max(min(budget/size, limit), 10))
		r := ScaleRow{Table: "body", Transport: tr, Param: size, M: map[string]float64{}}
		sb, raw, err := bodyCases(tr, ep)
		if err != nil {
			r.Err = err
			rows = append(rows, r)
			continue
		}
		var errs []string
		for _, side := range []struct {
			name  string
			setup func(context.Context) (Runner, error)
		}{{"sb", sb}, {"raw", raw}} {
			res := withBody(size, func() Result {
				return Run(ctx, Case{Transport: tr, Pattern: PubSub, Impl: side.name, N: n, Setup: side.setup})
			})
			if res.Err != nil {
				errs = append(errs, side.name+": "+res.Err.Error())
				continue
			}
			r.M[side.name+" MB/s"] = res.MsgsPerSec * float64(size) / 1e6
			r.M[side.name+" msgs/s"] = res.MsgsPerSec
		}
		if len(errs) > 0 {
			r.Err = fmt.Errorf("%s", strings.Join(errs, "; "))
		}
		rows = append(rows, r)
	}
	return rows
}

// bodyCases returns the comparison's pubsub setups of tr: Switchboard's
// and the raw client's.
func bodyCases(tr string, ep Endpoints) (sb, raw func(context.Context) (Runner, error), err error) {
	open, err := sbOpener(tr, ep)
	if err != nil {
		return nil, nil, err
	}
	switch tr {
	case "inmem":
		return sbSetup(PubSub, open), inmemRaw(PubSub), nil
	case "rabbitmq":
		return sbSetup(PubSub, open), rabbitRaw(ep.AMQP, PubSub), nil
	case "kafka":
		return sbSetup(PubSub, open), kafkaRaw(ep.Kafka, PubSub), nil
	case "sqs":
		return sbSetupMode(PubSub, open, true), sqsRaw(ep.SQS, PubSub, true, true), nil
	}
	return nil, nil, fmt.Errorf("unknown transport %q", tr)
}

func membersRows(ctx context.Context, tr string, ep Endpoints, _ io.Writer) []ScaleRow {
	n := scaled(perTransport(tr, 10_000, brokerN(tr, 5_000, 5_000, 2_000)))
	var rows []ScaleRow
	for _, m := range []int{1, 2, 4} {
		r := ScaleRow{Table: "members", Transport: tr, Param: m}
		r.M, r.Err = membersRow(ctx, tr, ep, n, m)
		rows = append(rows, r)
	}
	return rows
}

// idleSettle is how long the subscriptions table waits after its busy
// run before measuring idle again: longer than messaging's worker idle
// timeout (1s).
const idleSettle = 2500 * time.Millisecond

// memberWork is what each handler call of the members table costs.
const memberWork = 2 * time.Millisecond

func membersRow(ctx context.Context, tr string, ep Endpoints, n, members int) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, rowTimeout)
	defer cancel()
	// Each member is its own client (its own connection), as separate
	// processes would be; in memory they share one broker.
	var open func(ctx context.Context) (*messaging.Client, error)
	topic := uniq(prefix + "members")
	var cleanup func()
	if tr == "inmem" {
		br, err := inmem.NewBroker(inmem.WithMaxQueueLength(10_000_000))
		if err != nil {
			return nil, err
		}
		open = func(context.Context) (*messaging.Client, error) { return messaging.New(br.Transport()) }
		cleanup = func() {}
	} else {
		o, err := sbOpener(tr, ep)
		if err != nil {
			return nil, err
		}
		var last func(string) error
		open = func(ctx context.Context) (*messaging.Client, error) {
			c, cl, err := o(ctx)
			last = cl
			return c, err
		}
		cleanup = func() {
			if last != nil {
				_ = last(topic)
			}
		}
	}
	var clients []*messaging.Client
	defer func() {
		for _, c := range clients {
			c.Close()
		}
		cleanup()
	}()
	cnt := newCounter()
	perMember := make([]atomic.Int64, members)
	for i := range members {
		c, err := open(ctx)
		if err != nil {
			return nil, err
		}
		clients = append(clients, c)
		if _, err := c.Subscribe(ctx, topic, "g", func(context.Context, *messaging.Message) error {
			time.Sleep(memberWork)
			perMember[i].Add(1)
			cnt.hit()
			return nil
		}, messaging.WithMaxInFlight(4)); err != nil {
			return nil, err
		}
	}
	pub, err := open(ctx)
	if err != nil {
		return nil, err
	}
	clients = append(clients, pub)
	to := func(int) string { return topic }
	key := func(i int) string { return "k" + strconv.Itoa(i%256) }
	// Warm up until every member that can get work has handled a message:
	// group joins and rebalances are over.
	want := members
	if tr == "kafka" {
		want = min(members, KafkaPartitions)
	}
	active := func() int {
		a := 0
		for i := range perMember {
			if perMember[i].Load() > 0 {
				a++
			}
		}
		return a
	}
	for active() < want {
		doneCh := cnt.arm(200)
		if err := publishKeyed(ctx, pub, to, 200, key); err != nil {
			return nil, fmt.Errorf("warm-up: %w", err)
		}
		if err := waitDone(ctx, doneCh, cnt); err != nil {
			return nil, fmt.Errorf("warm-up (%d of %d members active): %w", active(), want, err)
		}
	}
	for i := range perMember {
		perMember[i].Store(0)
	}
	doneCh := cnt.arm(n)
	start := time.Now()
	if err := publishKeyed(ctx, pub, to, n, key); err != nil {
		return nil, err
	}
	if err := waitDone(ctx, doneCh, cnt); err != nil {
		return nil, err
	}
	el := time.Since(start)
	return map[string]float64{"msgs/s": float64(n) / el.Seconds(), "active": float64(active())}, nil
}
